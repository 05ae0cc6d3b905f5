"""Segment writers side by side in one run (asv twin: benchmarks/bench_uring.py).

    python bench/uring_bench.py [--repeat N] [--mib M] [--writer-mib W] [--fsync-mib F]

Tables (throughput: best of N runs; lag: lateness of a 1 ms loop timer, p99 and max over the
ticks of all N runs, and how many ticks that was):
  1. appends of 1 KiB and 16 KiB record batches through Log.append, 1 and 64 in flight, M MiB
  2. the writer alone: submit_write of 1 KiB / 16 KiB buffers, 64 per loop turn, W MiB
  3. the same with an fsync after every MiB, F MiB (these bytes really go to the disk)
Writers: sync (pwrite on the loop), thread (ThreadedWriter), uring (UringWriter, inline issue
allowed), uring-async (UringWriter with IOSQE_ASYNC). The last column of each row is its
throughput relative to `sync` in the same table. The machine is shared: compare within a run.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "core"))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this tree first
from benchmarks.bench_uring import (  # noqa: E402
    BATCH_SIZES, IN_FLIGHT, KIB, MIB, available_kinds, lag_summary, run_log_appends,
    run_writer_appends)


def measure(fn, repeat):
    runs = [fn() for _ in range(repeat)]
    best = min(runs, key=lambda r: r[0])
    lags = [lag for r in runs for lag in r[3]]
    return best[0], best[1], best[2], lags


def header(title):
    print(f"\n{title}")
    print(f"{'size':>6}  {'case':<26}{'MB/s':>8}{'ops/s':>10}{'p99 lag ms':>12}{'max lag ms':>12}"
          f"{'ticks':>7}{'vs sync':>9}")


def row(size, label, result, base):
    elapsed, count, nbytes, lags = result
    p99, worst = lag_summary(lags)
    rate = nbytes / elapsed
    ratio = f"{rate / base:.2f}x" if base else "-"
    print(f"{size // KIB:>4}Ki  {label:<26}{rate / 1e6:>8.0f}{count / elapsed:>10.0f}"
          f"{p99 * 1e3:>12.2f}{worst * 1e3:>12.2f}{len(lags):>7}{ratio:>9}")
    return rate


def log_table(kinds, repeat, total):
    header(f"1. Log.append of record batches, {total // MIB} MiB per run")
    for size in BATCH_SIZES:
        for in_flight in IN_FLIGHT:
            base = None
            for kind in kinds:
                res = measure(lambda: run_log_appends(kind, size, in_flight, total), repeat)
                rate = row(size, f"{kind}, {in_flight} in flight", res, base)
                base = base or rate


def writer_table(kinds, repeat, total, fsync_every, title):
    header(title)
    for size in BATCH_SIZES:
        base = None
        for kind in kinds:
            res = measure(lambda: run_writer_appends(kind, size, 64, total, fsync_every), repeat)
            rate = row(size, kind, res, base)
            base = base or rate


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--mib", type=int, default=16)
    ap.add_argument("--writer-mib", type=int, default=256)
    ap.add_argument("--fsync-mib", type=int, default=64)
    args = ap.parse_args()
    from pybroker.log import uring_writer
    kinds = available_kinds()
    reason = uring_writer.unavailable_reason()
    print(f"writers: {', '.join(kinds)}" + (f"  (io_uring unavailable: {reason})" if reason else ""))
    log_table(kinds, args.repeat, args.mib * MIB)
    total = args.writer_mib * MIB
    writer_table(kinds, args.repeat, total, 0,
                 f"2. writer alone: submit_write, 64 per loop turn, {args.writer_mib} MiB per run")
    writer_table(kinds, args.repeat, args.fsync_mib * MIB, MIB,
                 f"3. writer alone with an fsync after every MiB, {args.fsync_mib} MiB per run")


if __name__ == "__main__":
    main()
