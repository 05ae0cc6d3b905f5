"""Malformed input gets DecodeError (or UnsupportedVersionError for an unknown key/version), never
another exception, a huge allocation or a read past the end.

Hand-made frames check each encoding's failure (lengths past the end, negative and huge counts,
bad varints, invalid UTF-8, bad struct markers, tagged sections); every strict prefix of a valid
frame of every (API, version) must fail; random garbage and mutated valid frames may decode or
fail, but only with our typed errors. Hand-made cases run on both interpreters when both load.
"""
import importlib
import random
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pybroker.codec import DecodeError, UnsupportedVersionError, protocol
from pybroker.codec import _pure
from pybroker.codec.messages import Registry
from pybroker.protocol import schema
from test_protocol_gen import all_cases, case_id, program, sample

TYPED = (DecodeError, UnsupportedVersionError)


def _cores():
    cores = [importlib.import_module("pybroker.codec._pure.protocol")]
    try:
        cores.append(importlib.import_module("pybroker_core.protocol"))
    except ImportError:
        pass
    return cores


CORES = _cores()
assert _pure  # the twin package is importable on its own

PROBES = schema.parse("""
data OneString versions=0-1 flexible=1+
  Value: string
data OneNullableString versions=0-1 flexible=1+
  Value: string nullable=0+
data OneBytes versions=0-1 flexible=1+
  Value: bytes
data OneRecords versions=0-1 flexible=1+
  Value: records
data OneArray versions=0-1 flexible=1+
  Value: []int32
data OneStructArray versions=0-1 flexible=1+
  Value: []Item
    X: int32
data OneNullableStruct versions=0-1 flexible=1+
  Value: Item nullable=0+
    X: int32
data OneTagged versions=0 flexible=0+
  Value: int64 tag=0 tagged=0+ default=-1
data OneTaggedStruct versions=0 flexible=0+
  Value: Item tag=0 tagged=0+ nullable=0+
    X: int32
data OneUuid versions=0
  Value: uuid
""", "<probes>")
REGISTRY = Registry(messages={(m.kind, m.name): m for m in PROBES})


def decode_probe(core, name, version, data):
    return core.decode(REGISTRY.program("data", name, version), data)


BAD = [
    # (message, version, bytes, what)
    ("OneString", 0, b"", "empty input"),
    ("OneString", 0, b"\x00\x05ab", "string length past the end"),
    ("OneString", 1, b"\x06ab", "compact string length past the end"),
    ("OneString", 0, b"\xff\xff", "null in a non-nullable string"),
    ("OneString", 0, b"\xff\xfe", "negative length in a non-nullable string"),
    ("OneString", 1, b"\x00\x00", "compact null in a non-nullable string"),
    ("OneString", 0, b"\x00\x02\xc3\x28", "invalid UTF-8"),
    ("OneNullableString", 1, b"\x03\xff\xfe\x00", "invalid UTF-8 (compact)"),
    ("OneString", 1, b"\xff\xff\xff\xff\xff\x01", "uvarint longer than 5 bytes"),
    ("OneString", 1, b"\xff\xff\xff\xff\x7f", "uvarint over 32 bits"),
    ("OneString", 1, b"\x80\x80", "truncated uvarint"),
    ("OneString", 1, b"\x81\x80\x02" + b"a" * 32768, "compact string over 32767 bytes"),
    ("OneBytes", 0, b"\x7f\xff\xff\xffabc", "bytes length past the end"),
    ("OneBytes", 0, b"\xff\xff\xff\xff", "null bytes"),
    ("OneBytes", 1, b"\xff\xff\xff\xff\x0fab", "huge compact bytes length"),
    ("OneRecords", 0, b"\x7f\xff\xff\xffabc", "records length past the end"),
    ("OneRecords", 1, b"\x80\x80\x80\x80\x08abc", "compact records length past the end"),
    ("OneRecords", 0, b"\xff\xff\xff\xff", "null records in a non-nullable field"),
    ("OneArray", 0, b"\x7f\xff\xff\xff\x00\x00\x00\x01", "huge array count"),
    ("OneArray", 0, b"\x00\x00\x00\x02\x00\x00\x00\x01", "array shorter than its count"),
    ("OneArray", 0, b"\xff\xff\xff\xfe", "negative count in a non-nullable array"),
    ("OneArray", 1, b"\xff\xff\xff\xff\x0f", "huge compact array count"),
    ("OneArray", 1, b"\x00\x00", "compact null in a non-nullable array"),
    ("OneStructArray", 0, b"\x40\x00\x00\x00" + b"\x00" * 12, "struct count past the end"),
    ("OneStructArray", 1, b"\x03\x00\x00\x00\x01\x00\x00\x00", "struct element truncated"),
    ("OneNullableStruct", 0, b"", "missing nullable-struct marker"),
    ("OneNullableStruct", 0, b"\x01\x00\x00", "nullable struct truncated"),
    ("OneTagged", 0, b"\xe8\x07\x00", "tagged count past the end"),
    ("OneTagged", 0, b"\x01\x00\x09" + b"\x00" * 8, "tagged size past the end"),
    ("OneTagged", 0, b"\x01\x00\x04" + b"\x00" * 8, "tagged value past its size"),
    ("OneTagged", 0, b"\x01\x07\x7f", "unknown tag size past the end"),
    ("OneTaggedStruct", 0, b"\x01\x00\x01\x01", "tagged struct past its size"),
    ("OneUuid", 0, b"\x00" * 15, "short uuid"),
]


@pytest.mark.parametrize("core", CORES, ids=lambda c: c.__name__)
@pytest.mark.parametrize("name,version,data,what", BAD, ids=[b[3] for b in BAD])
def test_hand_made_bad_input(core, name, version, data, what):
    with pytest.raises(DecodeError) as info:
        decode_probe(core, name, version, data)
    assert isinstance(info.value.position, int) and 0 <= info.value.position <= len(data)


@pytest.mark.parametrize("core", CORES, ids=lambda c: c.__name__)
def test_good_probe_values_decode(core):
    # the same shapes, well-formed, so the failures above are about the bad bytes only
    assert decode_probe(core, "OneString", 1, b"\x03ab\x00").value == "ab"
    assert decode_probe(core, "OneNullableString", 0, b"\xff\xff").value is None
    assert decode_probe(core, "OneArray", 0, b"\x00\x00\x00\x01\x00\x00\x00\x07").value == [7]
    assert decode_probe(core, "OneNullableStruct", 0, b"\xff").value is None
    assert decode_probe(core, "OneNullableStruct", 0, b"\x01\x00\x00\x00\x05").value.x == 5
    # like Kafka's generated reader: any non-negative marker means present
    assert decode_probe(core, "OneNullableStruct", 0, b"\x02\x00\x00\x00\x05").value.x == 5
    assert decode_probe(core, "OneNullableStruct", 0, b"\x80").value is None
    assert decode_probe(core, "OneTagged", 0, b"\x01\x00\x08" + b"\x00" * 7 + b"\x02").value == 2
    assert decode_probe(core, "OneTagged", 0, b"\x00").value == -1


@pytest.mark.parametrize("core", CORES, ids=lambda c: c.__name__)
def test_tagged_nullable_struct_uses_a_uvarint_marker(core):
    # Kafka's generator: a tagged nullable struct is prefixed by uvarint 0 (null) / 1 (present),
    # and a null is written (tag, size 1, 0) when the default is not null
    prog = REGISTRY.program("data", "OneTaggedStruct", 0)
    item = prog.tagged[0].sub.cls
    cases = [(prog.cls(), b"\x00"), (prog.cls(value=None), b"\x01\x00\x01\x00"),
             (prog.cls(value=item(x=5)), b"\x01\x00\x06\x01\x00\x00\x00\x05\x00")]
    for obj, data in cases:
        assert core.encode(prog, obj) == data
        assert core.decode(prog, data) == obj


@pytest.mark.parametrize("core", CORES, ids=lambda c: c.__name__)
def test_huge_counts_fail_before_allocating(core):
    tracemalloc.start()
    try:
        for data in (b"\x7f\xff\xff\xff" + b"\x00" * 64, b"\xff\xff\xff\xff\x0f" + b"\x00" * 64):
            with pytest.raises(DecodeError):
                decode_probe(core, "OneArray", 0 if len(data) == 68 else 1, data)
            with pytest.raises(DecodeError):
                decode_probe(core, "OneStructArray", 0 if len(data) == 68 else 1, data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


# --- every prefix of valid frames ----------------------------------------------------------------

def frames(case, variant=0):
    kind, name, version = case
    key = protocol.REGISTRY.messages[("request", name)].api_key
    body = sample(program(case), variant)
    if kind == "request":
        return key, protocol.encode_request(key, version, 1, "client", body)[4:]
    return key, protocol.encode_response(key, version, 1, body)[4:]


def decode_frame(kind, key, version, data):
    if kind == "request":
        return protocol.decode_request(data)
    return protocol.decode_response(key, version, data)


@pytest.mark.parametrize("case", all_cases(("request", "response")), ids=case_id)
def test_every_strict_prefix_of_a_valid_frame_fails(case):
    key, data = frames(case)
    decode_frame(case[0], key, case[2], data)
    for n in range(len(data)):
        with pytest.raises(DecodeError):
            decode_frame(case[0], key, case[2], data[:n])


# --- garbage and mutations -------------------------------------------------------------------------

FUZZ = settings(max_examples=300, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])
CASES = all_cases(("request", "response"))


@FUZZ
@given(st.binary(max_size=200))
def test_random_garbage_request(data):
    try:
        protocol.decode_request(data)
    except TYPED:
        pass


@FUZZ
@given(st.sampled_from(CASES), st.binary(max_size=200))
def test_random_garbage_response(case, data):
    key = protocol.REGISTRY.messages[("request", case[1])].api_key
    try:
        protocol.decode_response(key, case[2], data)
    except TYPED:
        pass


def mutate(data, rnd):
    """A few random byte-level edits of a valid frame."""
    buf = bytearray(data)
    for _ in range(rnd.randint(1, 4)):
        op = rnd.randrange(5)
        pos = rnd.randrange(len(buf)) if buf else 0
        if op == 0 and buf:
            buf[pos] ^= 1 << rnd.randrange(8)
        elif op == 1 and buf:
            buf[pos] = rnd.choice((0x00, 0x01, 0x7F, 0x80, 0xFE, 0xFF))
        elif op == 2:
            buf[pos:pos] = bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 4)))
        elif op == 3 and buf:
            del buf[pos:pos + rnd.randint(1, 8)]
        else:
            buf[pos:pos + 4] = rnd.choice((b"\x7f\xff\xff\xff", b"\xff\xff\xff\xff",
                                           b"\x80\x80\x80\x80", b"\x00\x00\x00\x00"))
    return bytes(buf)


@settings(max_examples=600, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(CASES), st.integers(0, 1), st.randoms(use_true_random=False))
def test_mutated_valid_frames(case, variant, rnd):
    key, data = frames(case, variant)
    bad = mutate(data, rnd)
    try:
        decode_frame(case[0], key, case[2], bad)
    except TYPED:
        pass


def test_mutator_makes_different_frames():
    rnd = random.Random(1)
    _, data = frames(("request", "Produce", 9))
    assert sum(mutate(data, rnd) != data for _ in range(50)) >= 45
