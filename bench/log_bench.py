"""Storage-layer benchmarks in one run (asv twin: benchmarks/bench_log.py).

    python bench/log_bench.py [--repeat N] [--mib M]

Tables:
  1. index lookups (100,000-entry offset and time index, random targets): compiled vs pure, ns/lookup
  2. forward scan over batch headers for one index interval (~4 KiB of 1 KiB batches, pread):
     compiled vs pure, us/scan
  3. appends of 1 KiB and 16 KiB batches into a disk log, M MiB per run: raw os.write of the same
     bytes (no log) as the floor, the plain path (SyncWriter: pwrite on the event loop) and the
     async path (ThreadedWriter), with 1 and 64 appends in flight; MB/s, appends/s and the 99th
     percentile lateness of a 1 ms loop timer during the run (how long the loop was blocked).
Best of N repeats. The machine is shared: compare columns of one run, not runs.
"""
import argparse
import os
import shutil
import sys
import tempfile
import time
import timeit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this tree, not an installed copy
from benchmarks.bench_log import (  # noqa: E402
    BATCH_SIZES, IMPLEMENTATIONS, KIB, index_module, make_batch, make_offset_index, make_segment,
    make_time_index, run_appends)


def best(fn, repeat, number):
    return min(timeit.repeat(fn, repeat=repeat, number=number)) / number


def index_table(repeat):
    obuf, n, otargets = make_offset_index()
    tbuf, _, ttargets = make_time_index()
    rows = []
    for name in IMPLEMENTATIONS:
        mod = index_module(name)
        per_o = best(lambda: [mod.offset_index_lookup(obuf, n, t) for t in otargets], repeat, 3) / len(otargets)
        per_t = best(lambda: [mod.time_index_lookup(tbuf, n, t) for t in ttargets], repeat, 3) / len(ttargets)
        rows.append((name, per_o * 1e9, per_t * 1e9))
    print(f"\n1. index lookup, {n:,} entries (ns per lookup)")
    print(f"{'implementation':<16}{'offset index':>14}{'time index':>14}")
    for name, o, t in rows:
        print(f"{name:<16}{o:>14.0f}{t:>14.0f}")
    print(f"{'pure/compiled':<16}{rows[1][1] / rows[0][1]:>13.1f}x{rows[1][2] / rows[0][2]:>13.1f}x")


def scan_table(repeat):
    d = tempfile.mkdtemp(prefix="pybroker-logbench-")
    try:
        path = os.path.join(d, "seg.log")
        size, last = make_segment(path, KIB, 5)
        fd = os.open(path, os.O_RDONLY)
        print(f"\n2. translate offset: scan {size} bytes of batch headers from an index entry (us per scan)")
        res = {}
        for name in IMPLEMENTATIONS:
            mod = index_module(name)
            res[name] = best(lambda: mod.find_batch_by_offset(fd, 0, size, last), repeat, 200) * 1e6
            print(f"{name:<16}{res[name]:>10.2f}")
        print(f"{'pure/compiled':<16}{res['pure'] / res['compiled']:>9.1f}x")
        os.close(fd)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def raw_write(batch_size, total):
    """Floor: os.write of the same batches to a file, no log at all."""
    data = make_batch(batch_size)
    count = max(1, total // len(data))
    d = tempfile.mkdtemp(prefix="pybroker-logbench-")
    try:
        fd = os.open(os.path.join(d, "raw"), os.O_WRONLY | os.O_CREAT)
        t0 = time.perf_counter()
        for _ in range(count):
            os.write(fd, data)
        elapsed = time.perf_counter() - t0
        os.close(fd)
        return elapsed, count, 0.0
    finally:
        shutil.rmtree(d, ignore_errors=True)


def append_table(repeat, mib):
    total = mib * 1024 * KIB
    impl = "pure" if os.environ.get("PYBROKER_PURE") else "compiled"
    print(f"\n3. append {mib} MiB per run into a disk log (records module: {impl})")
    print(f"{'batch':>7}  {'path':<24}{'MB/s':>9}{'appends/s':>12}{'p99 loop lag ms':>17}")
    for size in BATCH_SIZES:
        cases = [("os.write, no log", lambda: raw_write(size, total))]
        for writer, label in (("plain", "plain (pwrite on loop)"), ("async", "async (writer thread)")):
            for in_flight in (1, 64):
                cases.append((f"{label[:-1]}, {in_flight})", lambda w=writer, f=in_flight: run_appends(w, size, f, total)))
        for label, fn in cases:
            runs = [fn() for _ in range(repeat)]
            elapsed, count, _ = min(runs)
            lag = min(r[2] for r in runs)
            nbytes = count * len(make_batch(size))
            print(f"{size // KIB:>5}Ki  {label:<24}{nbytes / elapsed / 1e6:>9.0f}{count / elapsed:>12.0f}"
                  f"{lag * 1e3:>17.2f}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--mib", type=int, default=16)
    args = ap.parse_args()
    index_table(args.repeat)
    scan_table(args.repeat)
    append_table(args.repeat, args.mib)


if __name__ == "__main__":
    main()
