"""Record batches v2 in one run: validate a 1 MiB batch vs a plain CRC-32C of it, and build/parse
1,000 records of 1 KiB for each codec: ours compiled, ours pure, aiokafka's Cython codec.
Best of N timeit repeats of process CPU time; rounds interleave implementations so a noisy neighbour hits all alike.

    python bench/records_bench.py [--repeat N] [--no-pure]

Ratios: "crc/validate" is plain-crc time / validate time (1.0 = validation costs nothing beyond the
CRC); "aiokafka/ours" is aiokafka's time / ours compiled (above 1 = ours is faster).
Compression levels differ from aiokafka's: ours follow Kafka's defaults (gzip 6, lz4 fast
compressor as Kafka uses for its default level, zstd 3); aiokafka writes gzip 9 and lz4 HC 9,
so its gzip/lz4 builds do more codec work. The "codec" column shows our codec's share.
asv twin: benchmarks/bench_records.py.
"""
import argparse
import os
import sys
import time
import timeit

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
# Measure this checkout (its pybroker and its built core), not whatever tree is pip-installed.
sys.path[:0] = [BENCH, ROOT, os.path.join(ROOT, "core")]
from benchmarks.bench_records import (CODECS, make_builder, make_parser, make_records,  # noqa: E402
                                      make_validator, one_mib_batch)

TARGET_SECONDS = 0.02          # per timeit repeat
TIMER = time.process_time      # CPU time of this process: a busy shared machine preempts us


def interleaved(cases, repeat):
    """cases: {name: (fn, arg)} -> {name: best seconds per call}, interleaving the repeats."""
    numbers = {}
    for name, (fn, arg) in cases.items():
        one = min(timeit.timeit(lambda: fn(arg), number=1, timer=TIMER) for _ in range(2))
        numbers[name] = max(1, int(TARGET_SECONDS / max(one, 1e-9)))
    best = {name: float("inf") for name in cases}
    for _ in range(repeat):
        for name, (fn, arg) in cases.items():
            t = timeit.timeit(lambda: fn(arg), number=numbers[name], timer=TIMER) / numbers[name]
            best[name] = min(best[name], t)
    return best


def bench_validate(repeat):
    buf = one_mib_batch()
    t = interleaved({n: (make_validator(n), buf) for n in ("compiled", "crc32c")}, repeat)
    print(f"validate: batch of {len(buf)} bytes (header + CRC-32C, no record decode)")
    print(f"  {'ours validate()':>22} {t['compiled'] * 1e6:10.1f} us  "
          f"{len(buf) / t['compiled'] / 1e9:6.2f} GB/s")
    print(f"  {'plain crc32c(buf)':>22} {t['crc32c'] * 1e6:10.1f} us  "
          f"{len(buf) / t['crc32c'] / 1e9:6.2f} GB/s")
    print(f"  {'crc/validate':>22} {t['crc32c'] / t['compiled']:10.2f}")


def bench_build_parse(repeat, names):
    records = make_records()
    from pybroker_core import records as ours
    from pybroker.codec import compression
    print(f"\nbuild / parse: {len(records)} records, 1 KiB values, 16-byte keys; microseconds per batch")
    print("('codec' = our compress() / decompress() call alone, included in ours' time)")
    cols = "".join(f"{n:>12}" for n in names)
    print(f"{'op':>6} {'codec':>7} {'bytes':>9}{cols}{'codec':>10}{'aiokafka/ours':>15}")
    for codec_name, codec in CODECS.items():
        plain = ours.build_batch(records)[61:]
        buf = ours.build_batch(records, compression=codec)
        builds = interleaved({n: (make_builder(n, codec), records) for n in names},
                             repeat if "pure" not in names else max(3, repeat // 3))
        zip_only = _codec_time(lambda d: compression.compress(codec, d), plain, codec, repeat)
        _row("build", codec_name, len(buf), names, builds, zip_only)
        parses = interleaved({n: (make_parser(n), buf) for n in names}, repeat)
        unzip_only = _codec_time(lambda d: compression.decompress(codec, d), buf[61:], codec, repeat)
        _row("parse", codec_name, len(buf), names, parses, unzip_only)


def _codec_time(fn, data, codec, repeat):
    return interleaved({"codec": (fn, data)}, repeat)["codec"] if codec else 0.0


def _row(op, codec_name, size, names, times, codec_time):
    cells = "".join(f"{times[n] * 1e6:12.1f}" for n in names)
    print(f"{op:>6} {codec_name:>7} {size:>9}{cells}{codec_time * 1e6:10.1f}"
          f"{times['aiokafka'] / times['compiled']:15.2f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--no-pure", action="store_true", help="skip the (slow) pure twin")
    args = parser.parse_args()
    import pybroker
    import pybroker.codec  # noqa: F401  (package first, then its compiled modules)
    from pybroker_core import crc32c, records
    print(f"pybroker from {os.path.dirname(pybroker.__file__)}, core from {os.path.dirname(records.__file__)}")
    print(f"pybroker_core.crc32c path: {crc32c.implementation()}")
    bench_validate(args.repeat)
    names = ["compiled", "aiokafka"] if args.no_pure else ["compiled", "pure", "aiokafka"]
    bench_build_parse(args.repeat, names)


if __name__ == "__main__":
    main()
