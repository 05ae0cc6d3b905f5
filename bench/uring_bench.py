"""Segment writers side by side in one run (asv twin: benchmarks/bench_uring.py).

    python bench/uring_bench.py [--repeat N] [--mib M] [--writer-mib W]

Tables (best of N runs by time; lag = lateness of a 1 ms loop timer, the worst p99 and the
worst max over the N runs):
  1. appends of 1 KiB and 16 KiB record batches through Log.append, 1 and 64 in flight, M MiB
  2. the writer alone: submit_write of 1 KiB / 16 KiB buffers, 64 per loop turn, W MiB
  3. the same with an fsync after every MiB
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
    BATCH_SIZES, IN_FLIGHT, KIB, MIB, available_kinds, run_log_appends, run_writer_appends)


def measure(fn, repeat):
    runs = [fn() for _ in range(repeat)]
    best = min(runs, key=lambda r: r[0])
    return best[0], best[1], best[2], max(r[3] for r in runs), max(r[4] for r in runs)


def header(title):
    print(f"\n{title}")
    print(f"{'size':>6}  {'case':<22}{'MB/s':>8}{'ops/s':>10}{'p99 lag ms':>12}{'max lag ms':>12}"
          f"{'vs sync':>9}")


def row(size, label, result, base):
    elapsed, count, nbytes, p99, worst = result
    rate = nbytes / elapsed
    ratio = f"{rate / base:.2f}x" if base else "-"
    print(f"{size // KIB:>4}Ki  {label:<22}{rate / 1e6:>8.0f}{count / elapsed:>10.0f}"
          f"{p99 * 1e3:>12.2f}{worst * 1e3:>12.2f}{ratio:>9}")
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
    ap.add_argument("--writer-mib", type=int, default=64)
    args = ap.parse_args()
    from pybroker.log import uring_writer
    kinds = available_kinds()
    reason = uring_writer.unavailable_reason()
    print(f"writers: {', '.join(kinds)}" + (f"  (io_uring unavailable: {reason})" if reason else ""))
    log_table(kinds, args.repeat, args.mib * MIB)
    total = args.writer_mib * MIB
    writer_table(kinds, args.repeat, total, 0,
                 f"2. writer alone: submit_write, 64 per loop turn, {args.writer_mib} MiB per run")
    writer_table(kinds, args.repeat, total, MIB,
                 f"3. writer alone with an fsync after every MiB, {args.writer_mib} MiB per run")


if __name__ == "__main__":
    main()
