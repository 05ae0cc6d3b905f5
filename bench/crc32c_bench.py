"""CRC-32C throughput in one run: ours (best CPU path, SSE4.2 path, portable fallback, pure twin)
against the `crc32c` and `google_crc32c` packages. Best of N timeit repeats, in GB/s (1e9 bytes/s).

    python bench/crc32c_bench.py [--repeat N] [--sizes 16384,65536,1048576]

The last column is ours (best path) divided by the faster of the two packages. Rounds interleave the
implementations so that a noisy neighbour hits them all alike. asv twin: benchmarks/bench_crc32c.py.
"""
import argparse
import os
import random
import sys
import timeit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchmarks.bench_crc32c import IMPLEMENTATIONS, SIZES, make_function, restore  # noqa: E402

PACKAGES = ("crc32c", "google_crc32c")
PURE_MAX_SIZE = 16 * 1024      # the pure twin runs at ~10 MB/s: time it on the smallest size only
TARGET_SECONDS = 0.01          # per timeit repeat


def available_implementations():
    names = []
    for name in IMPLEMENTATIONS:
        try:
            make_function(name)
        except NotImplementedError:
            continue
        finally:
            restore()
        names.append(name)
    return names


def time_one(name, data, number):
    """Seconds per call, one timeit repeat of `number` calls (path forced for this repeat only)."""
    fn = make_function(name)
    try:
        return timeit.timeit(lambda: fn(data), number=number) / number
    finally:
        restore()


def calls_per_repeat(name, data):
    """Calls that take about TARGET_SECONDS (from the best of three single calls; the first is cold)."""
    one = min(time_one(name, data, 1) for _ in range(3))
    return max(1, int(TARGET_SECONDS / max(one, 1e-9)))


def measure(names, size, repeat):
    data = random.Random(size).randbytes(size)
    names = [n for n in names if n != "ours-pure" or size <= PURE_MAX_SIZE]
    numbers = {n: calls_per_repeat(n, data) for n in names}
    best = {n: float("inf") for n in names}
    for _ in range(repeat):
        for n in names:
            best[n] = min(best[n], time_one(n, data, numbers[n]))
    return {n: size / t / 1e9 for n, t in best.items()}


def print_table(names, results):
    header = f"{'size':>9} " + " ".join(f"{n:>14}" for n in names) + f" {'ours/best pkg':>14}"
    print("GB/s, best of the repeats")
    print(header)
    for size, gbps in results.items():
        cells = " ".join(f"{gbps[n]:14.{2 if gbps[n] >= 0.1 else 4}f}" if n in gbps else f"{'-':>14}"
                         for n in names)
        ratio = gbps["ours"] / max(gbps[p] for p in PACKAGES)
        print(f"{size:>9} {cells} {ratio:14.2f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    args = parser.parse_args()
    from pybroker_core import crc32c as ours
    print(f"pybroker_core.crc32c path: {ours.implementation()} (available: {', '.join(ours.available())})")
    names = available_implementations()
    results = {size: measure(names, size, args.repeat) for size in map(int, args.sizes.split(","))}
    print_table(names, results)


if __name__ == "__main__":
    main()
