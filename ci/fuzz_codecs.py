#!/usr/bin/env python3
"""Fuzz every request and response decoder with mutated valid frames for a time budget.

    python ci/fuzz_codecs.py                     # 60 s; compiled and pure, compared
    python ci/fuzz_codecs.py --seconds 10 --impl pure
    python ci/fuzz_codecs.py --seconds 300 --seed 1234

Seeds are valid frames of every (API, version) in both directions, built from the definitions
(every field non-default; and every nullable field null). Hypothesis draws a seed and a list of
byte-level mutations (bit flips, interesting bytes, inserted/deleted runs, overwritten length
words, truncation, splices of another seed), so a failure is shrunk to a small mutation list and
printed. A run fails (exit 1) on any exception other than DecodeError/UnsupportedVersionError,
or — with both implementations — when compiled and pure disagree on the decoded object or on
the error type and position.

Against the ASan/UBSan build (build it in a copy of the tree, not in the shared one):

    cp -r . /tmp/pybroker-asan && cd /tmp/pybroker-asan
    PYBROKER_DEBUG_BUILD=1 python setup.py build_ext --inplace -q
    PYTHONPATH=$PWD/core:$PWD ASAN_OPTIONS=detect_leaks=0 \\
        LD_PRELOAD=$(gcc -print-file-name=libasan.so) python ci/fuzz_codecs.py --seconds 60
"""
from __future__ import annotations

import argparse
import importlib
import os
import struct
import sys
import time
import traceback

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from hypothesis import HealthCheck, Phase, given, seed as hyp_seed, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from pybroker.codec import DecodeError, UnsupportedVersionError  # noqa: E402
from pybroker.codec import messages as m  # noqa: E402
from pybroker.codec.protocol import ProtocolCodec  # noqa: E402

TYPED = (DecodeError, UnsupportedVersionError)
INTERESTING = (0x00, 0x01, 0x7F, 0x80, 0xFE, 0xFF)
WORDS = (b"\x7f\xff\xff\xff", b"\xff\xff\xff\xff", b"\x80\x80\x80\x80", b"\x00\x00\x00\x00",
         b"\xff\xff\xff\xff\x0f", b"\x00\x00\x00\x01")
BATCH = 64


class Disagreement(AssertionError):
    pass


# --- seeds -------------------------------------------------------------------------------------

def _value(op, kind, variant, salt):
    if variant == 1 and op.nullable and kind == op.kind:
        return None
    if kind in (m.ARRAY, m.COMPACT_ARRAY):
        return [] if variant == 1 else [_value(op, op.elem, variant, salt + i) for i in range(2)]
    if kind == m.STRUCT:
        return _sample(op.sub, variant, salt)
    if kind == m.BOOL:
        return True
    if kind == m.FLOAT64:
        return 1.5
    if kind == m.UUID:
        return bytes(range(16))
    if kind in (m.STRING, m.COMPACT_STRING):
        return f"v{salt}"
    if kind in (m.BYTES, m.COMPACT_BYTES, m.RECORDS, m.COMPACT_RECORDS):
        return b"\x01\x02\x03"
    return 3 + salt % 50


def _sample(prog, variant, salt=0):
    kw = {op.attr: _value(op, op.kind, variant, salt + i) for i, op in enumerate(prog.ops)}
    if variant == 0:
        kw.update({op.attr: _value(op, op.kind, 0, salt + i) for i, op in enumerate(prog.tagged)})
        if prog.flexible:
            kw["unknown_tagged"] = [(max(prog.by_tag, default=-1) + 1, b"\x09")]
    return prog.cls(**kw)


def build_seeds(codec):
    """[(direction, api_key, version, frame)] for every API version, both directions."""
    seeds = []
    for (kind, name), msg in sorted(m.REGISTRY.messages.items()):
        if kind not in ("request", "response") or msg.versions is None:
            continue
        for version in range(msg.versions[0], msg.versions[1] + 1):
            prog = m.REGISTRY.program(kind, name, version)
            for variant in (0, 1):
                body = _sample(prog, variant)
                if kind == "request":
                    frame = codec.encode_request(msg.api_key, version, 1, "fuzz", body)
                else:
                    frame = codec.encode_response(msg.api_key, version, 1, body)
                seeds.append((kind, msg.api_key, version, frame[4:]))
    return seeds


# --- mutations ---------------------------------------------------------------------------------

mutation = st.tuples(st.integers(0, 6), st.integers(0, 1 << 16), st.integers(0, 255),
                     st.binary(min_size=1, max_size=6))


def apply(data, mutations, other):
    buf = bytearray(data)
    for op, where, byte, blob in mutations:
        pos = where % (len(buf) + 1)
        if op == 0 and buf:
            buf[pos % len(buf)] ^= 1 << (byte % 8)
        elif op == 1 and buf:
            buf[pos % len(buf)] = INTERESTING[byte % len(INTERESTING)]
        elif op == 2:
            buf[pos:pos] = blob
        elif op == 3:
            del buf[pos:pos + 1 + byte % 16]
        elif op == 4:
            buf[pos:pos + 4] = WORDS[byte % len(WORDS)]
        elif op == 5:
            del buf[pos:]
        else:
            cut = where % (len(other) + 1)
            buf[pos:] = other[cut:]
    return bytes(buf)


# --- the target --------------------------------------------------------------------------------

def shape(value):
    if isinstance(value, m.Struct):
        return (type(value).__qualname__, tuple(shape(getattr(value, n)) for n in value._fields),
                shape(getattr(value, "unknown_tagged", None)))
    if isinstance(value, (list, tuple)):
        return type(value).__name__, tuple(shape(v) for v in value)
    if isinstance(value, memoryview):
        return "mv", value.tobytes()
    if isinstance(value, float):                 # NaN != NaN: compare the bits
        return "float", struct.pack(">d", value)
    return type(value).__name__, value


def outcome(codec, seed, data):
    kind, key, version, _ = seed
    try:
        if kind == "request":
            result = codec.decode_request(data)
        else:
            result = codec.decode_response(key, version, data)
        return "ok", shape(result)
    except TYPED as exc:
        return type(exc).__name__, getattr(exc, "position", None)


class Stats:
    def __init__(self):
        self.runs = 0
        self.counts = {}


def random_mutations(rnd):
    return [(rnd.randrange(7), rnd.randrange(1 << 16), rnd.randrange(256),
             bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 6))))
            for _ in range(rnd.randint(1, 6))]


def check(codecs, seed, data, stats):
    results = [outcome(codec, seed, data) for codec in codecs]
    stats.runs += 1
    stats.counts[results[0][0]] = stats.counts.get(results[0][0], 0) + 1
    if any(r != results[0] for r in results[1:]):
        raise Disagreement(f"implementations disagree on {seed[0]} {data.hex()}: "
                           f"{[r[0] for r in results]}")


def make_target(codecs, seeds, stats, max_examples, batch=BATCH):
    """Each example: hypothesis picks a seed frame and a mutation list (shrinkable), then a
    Random seeded by hypothesis makes `batch` more mutants of the same seed (fast, and
    reproducible from the printed falsifying example)."""
    @settings(max_examples=max_examples, deadline=None, database=None,
              phases=[Phase.generate, Phase.shrink], suppress_health_check=list(HealthCheck))
    @given(st.sampled_from(seeds), st.lists(mutation, min_size=1, max_size=6),
           st.sampled_from(seeds), st.randoms(use_true_random=True))
    def target(seed, mutations, other, rnd):
        check(codecs, seed, apply(seed[3], mutations, other[3]), stats)
        for i in range(batch):
            base = seed[3] if i % 10 else b""      # one input in ten starts from nothing
            data = apply(base, random_mutations(rnd), rnd.choice(seeds)[3])
            try:
                check(codecs, seed, data, stats)
            except Exception as exc:
                raise AssertionError(f"input {seed[0]} key={seed[1]} v{seed[2]} "
                                     f"{data.hex()}") from exc
    return target


def load_codecs(impl):
    cores = []
    if impl in ("pure", "both"):
        cores.append(importlib.import_module("pybroker.codec._pure.protocol"))
    if impl in ("compiled", "both"):
        try:
            cores.append(importlib.import_module("pybroker_core.protocol"))
        except ImportError as exc:
            if impl == "compiled":
                raise
            print(f"fuzz_codecs: compiled core unavailable ({exc}); pure only", file=sys.stderr)
    return [ProtocolCodec(core) for core in cores]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="time budget (default 60)")
    ap.add_argument("--impl", choices=("both", "compiled", "pure"), default="both")
    ap.add_argument("--seed", type=int, default=None, help="hypothesis seed of the first round")
    args = ap.parse_args(argv)

    codecs = load_codecs(args.impl)
    seeds = build_seeds(codecs[0])
    stats = Stats()
    print(f"fuzz_codecs: {len(seeds)} seed frames, {[c.core.__name__ for c in codecs]}, "
          f"{args.seconds:g} s", flush=True)
    start = time.monotonic()
    rounds = 0
    try:
        while time.monotonic() - start < args.seconds:
            target = make_target(codecs, seeds, stats, max_examples=200)
            if args.seed is not None:
                target = hyp_seed(args.seed + rounds)(target)
            target()
            rounds += 1
    except Exception:
        traceback.print_exc()
        print(f"fuzz_codecs: FAILED after {stats.runs} inputs", file=sys.stderr)
        return 1
    elapsed = time.monotonic() - start
    print(f"fuzz_codecs: ok, {stats.runs} inputs in {elapsed:.1f} s "
          f"({stats.runs / elapsed:.0f}/s), outcomes {stats.counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
