"""Protocol codec speed in one run: decode a one-partition Produce request (1 KiB record batch)
and encode a one-partition Fetch response (1 KiB of records), in µs per operation.

    python bench/protocol_bench.py [--repeat N]

Columns: ours compiled (pybroker_core.protocol), ours pure (the twin), kafka-python 3.x and
aiokafka. Ours works on whole frames (header + body; encode adds the size prefix too);
kafka-python's Produce decode includes the header, its Fetch encode and both aiokafka columns are
body only. "-" = that library has no such version. Best of N timeit repeats, implementations
interleaved per round. asv twin: benchmarks/bench_protocol.py.
"""
import argparse
import os
import sys
import timeit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchmarks.bench_protocol import (FETCH_VERSIONS, IMPLEMENTATIONS,  # noqa: E402
                                       PRODUCE_VERSIONS, make_decoder, make_encoder)

TARGET_SECONDS = 0.02  # per timeit repeat


def per_call(fn, number):
    return timeit.timeit(fn, number=number) / number


def measure(make, version, repeat):
    fns = {}
    for name in IMPLEMENTATIONS:
        try:
            fns[name] = make(name, version)
        except (NotImplementedError, ImportError):
            continue
    numbers = {n: max(1, int(TARGET_SECONDS / max(min(per_call(f, 1) for _ in range(3)), 1e-7)))
               for n, f in fns.items()}
    best = {n: float("inf") for n in fns}
    for _ in range(repeat):
        for n, f in fns.items():
            best[n] = min(best[n], per_call(f, numbers[n]))
    return {n: t * 1e6 for n, t in best.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    from pybroker.codec import protocol
    rows = [("Produce request decode", v, measure(make_decoder, v, args.repeat))
            for v in PRODUCE_VERSIONS]
    rows += [("Fetch response encode", v, measure(make_encoder, v, args.repeat))
             for v in FETCH_VERSIONS]
    head = f"{'µs/op':<24}{'ver':>4}" + "".join(f"{n:>14}" for n in IMPLEMENTATIONS) + \
        f"{'pure/compiled':>15}"
    print(head)
    print("-" * len(head))
    for what, v, res in rows:
        cells = "".join(f"{res[n]:>14.2f}" if n in res else f"{'-':>14}" for n in IMPLEMENTATIONS)
        ratio = res["pure"] / res["compiled"] if "compiled" in res and "pure" in res else float("nan")
        print(f"{what:<24}{v:>4}{cells}{ratio:>14.1f}x")
    print(f"(default implementation here: {protocol.IMPLEMENTATION})")


if __name__ == "__main__":
    main()
