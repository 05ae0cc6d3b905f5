"""The compiled interpreter and its pure twin give identical bytes, objects and errors.

Same programs, same inputs, both interpreters side by side: deterministic samples of every
program, hypothesis-drawn objects, mutated frames (same object or same error type and position),
and values that cannot be encoded. Skipped when pybroker_core.protocol is not built.
"""
import random
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pybroker.codec import DecodeError, EncodeError
from pybroker.codec import messages as m
from pybroker.codec._pure import protocol as pure
from pybroker.codec.protocol import ProtocolCodec
from test_protocol_gen import all_cases, case_id, program, sample, strategy
from test_protocol_malformed import mutate

compiled = pytest.importorskip("pybroker_core.protocol")

PURE = ProtocolCodec(pure)
COMPILED = ProtocolCodec(compiled)
CASES = all_cases()


def shape(value):
    """The value with every leaf replaced by (type, value), so `==` also compares types."""
    if isinstance(value, m.Struct):
        fields = tuple(shape(getattr(value, name)) for name in value._fields)
        return type(value), fields, shape(getattr(value, "unknown_tagged", None))
    if isinstance(value, list):
        return list, [shape(v) for v in value]
    if isinstance(value, tuple):
        return tuple, tuple(shape(v) for v in value)
    if isinstance(value, memoryview):
        return memoryview, value.tobytes()
    if isinstance(value, float):                 # NaN != NaN: compare the bits
        return float, struct.pack(">d", value)
    return type(value), value


def both_encode(prog, obj):
    a, b = pure.encode(prog, obj), compiled.encode(prog, obj)
    assert a == b
    return a


def both_decode(prog, data):
    a, b = pure.decode(prog, data), compiled.decode(prog, data)
    assert shape(a) == shape(b)
    return a


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_samples_encode_and_decode_identically(case):
    prog = program(case)
    for variant in (0, 1):
        obj = sample(prog, variant)
        data = both_encode(prog, obj)
        got = both_decode(prog, data)
        assert got == obj


def test_default_objects_are_built_identically():
    # fields absent from v11 (tagged structs of v12+) get defaults built by the compiled decoder
    # itself, without calling __init__: they must equal what the constructor makes
    fetch = m.REGISTRY.message_class("response", "Fetch")
    obj = fetch(responses=[fetch.FetchableTopicResponse(partitions=[fetch.PartitionData()])])
    for version in (4, 11, 12):
        prog = program(("response", "Fetch", version))
        got = compiled.decode(prog, pure.encode(prog, obj))
        assert shape(got) == shape(pure.decode(prog, pure.encode(prog, obj))) == shape(obj)
        assert got.responses[0].partitions[0].diverging_epoch is not \
            obj.responses[0].partitions[0].diverging_epoch


SETTINGS = settings(max_examples=400, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])


@SETTINGS
@given(st.sampled_from(CASES), st.data())
def test_random_objects_encode_and_decode_identically(case, data):
    prog = program(case)
    obj = data.draw(strategy(prog))
    both_decode(prog, both_encode(prog, obj))


def outcome(core, prog, data):
    try:
        return "ok", shape(core.decode(prog, data))
    except DecodeError as exc:
        return "error", exc.position


@SETTINGS
@given(st.sampled_from(CASES), st.integers(0, 1), st.randoms(use_true_random=False))
def test_mutated_bytes_give_the_same_result_or_error(case, variant, rnd):
    prog = program(case)
    bad = mutate(pure.encode(prog, sample(prog, variant)), rnd)
    assert outcome(pure, prog, bad) == outcome(compiled, prog, bad)


@pytest.mark.parametrize("case", all_cases(("request", "response")), ids=case_id)
def test_frames_are_identical(case):
    kind, name, version = case
    key = m.REGISTRY.messages[("request", name)].api_key
    body = sample(program(case), 0)
    if kind == "request":
        a = PURE.encode_request(key, version, 5, "c", body)
        assert a == COMPILED.encode_request(key, version, 5, "c", body)
        assert shape(PURE.decode_request(a[4:])) == shape(COMPILED.decode_request(a[4:]))
    else:
        a = PURE.encode_response(key, version, 5, body)
        assert a == COMPILED.encode_response(key, version, 5, body)
        assert shape(PURE.decode_response(key, version, a[4:])) == \
            shape(COMPILED.decode_response(key, version, a[4:]))


@pytest.mark.parametrize("frame", [b"", b"\x00", b"\x00\x19", b"\x00\x19\x00", b"\x00\x12\x00\x03\x00"])
def test_short_request_frames_fail_at_the_same_position(frame):
    errors = []
    for codec in (PURE, COMPILED):
        with pytest.raises(DecodeError) as info:
            codec.decode_request(frame)
        errors.append(info.value.position)
    assert errors[0] == errors[1]


def encode_error(core, prog, obj):
    try:
        core.encode(prog, obj)
    except EncodeError:
        return True
    return False


def test_unencodable_values_fail_in_both():
    rnd = random.Random(7)
    bad_values = [None, 2 ** 70, -1, "x", b"\x00" * 3, 1.5, [None], ["\ud800"], object()]
    checked = 0
    for case in CASES:
        prog = program(case)
        for op in prog.ops:
            obj = sample(prog, 0)
            setattr(obj, op.attr, rnd.choice(bad_values))
            assert encode_error(pure, prog, obj) == encode_error(compiled, prog, obj), (case, op)
            checked += 1
    assert checked > 1000
