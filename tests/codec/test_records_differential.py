"""The compiled records module and its pure-Python twin agree byte for byte and error for error:
same built bytes, and for valid or mutated batches the same records or the same exception type,
reason and position. Runs whenever the compiled module is importable (in both CI passes)."""
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pbtest import PURE
from pybroker.codec import crc32c
from pybroker.codec._pure import records as pure
from pybroker.codec.errors import DecodeError

compiled = pytest.importorskip("pybroker_core.records")

blobs = st.one_of(st.none(), st.binary(max_size=40))
headers = st.one_of(st.none(), st.lists(
    st.tuples(st.text(max_size=6), st.one_of(st.none(), st.binary(max_size=10))), max_size=3))
record_lists = st.lists(st.tuples(blobs, blobs, headers, st.integers(-(2**45), 2**45)),
                        min_size=1, max_size=8)
build_kwargs = st.fixed_dictionaries({
    "compression": st.sampled_from([0, 1, 2, 3, 4]),
    "timestamp_type": st.sampled_from([0, 1]),
    "base_offset": st.integers(-(2**63), 2**63 - 1),
    "producer_id": st.integers(-(2**63), 2**63 - 1),
    "producer_epoch": st.integers(-(2**15), 2**15 - 1),
    "base_sequence": st.integers(-(2**31), 2**31 - 1),
    "is_transactional": st.booleans(),
    "partition_leader_epoch": st.integers(-(2**31), 2**31 - 1),
})
EXAMPLES = 40 if PURE else 150


def outcome(mod, buf):
    """Everything observable about decoding buf with mod, or the error it raised."""
    seen = []
    try:
        for b in mod.iter_batches(buf):
            seen.append((b.base_offset, b.size, b.crc, b.attributes, b.records_count,
                         b.last_offset, b.next_offset, b.compute_crc()))
            b.validate()
            seen.extend((r.offset, r.timestamp, r.key, r.value, r.headers, r.attributes,
                         r.offset_delta, r.timestamp_delta) for r in b.records(max_decompressed_size=1 << 16))
    except DecodeError as exc:
        seen.append((type(exc).__name__, exc.reason, exc.position))
    return seen


@settings(max_examples=EXAMPLES, deadline=None)
@given(records=record_lists, kwargs=build_kwargs)
def test_builders_produce_identical_bytes(records, kwargs):
    a = compiled.build_batch(records, **kwargs)
    assert a == pure.build_batch(records, **kwargs)
    assert outcome(compiled, a) == outcome(pure, a)


@settings(max_examples=EXAMPLES, deadline=None)
@given(records=record_lists, codec=st.sampled_from([0, 1, 2, 3, 4]), data=st.data())
def test_mutated_batches_fail_identically(records, codec, data):
    buf = bytearray(compiled.build_batch(records, compression=codec))
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(buf) - 1))
        buf[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(buf)))
    buf = buf[:cut] if data.draw(st.booleans()) else buf
    if data.draw(st.booleans()) and len(buf) >= 61:          # keep the CRC valid: reach the records
        struct.pack_into(">i", buf, 8, len(buf) - 12)
        struct.pack_into(">I", buf, 17, crc32c(bytes(buf[21:])))
    assert outcome(compiled, bytes(buf)) == outcome(pure, bytes(buf))


@settings(max_examples=EXAMPLES, deadline=None)
@given(records=record_lists, offset=st.integers(-(2**63), 2**63 - 1),
       epoch=st.integers(-(2**31), 2**31 - 1),
       append_time=st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)))
def test_assign_offsets_identical(records, offset, epoch, append_time):
    raw = compiled.build_batch(records)
    a, b = bytearray(raw), bytearray(raw)
    ra = compiled.assign_offsets(a, 0, offset, epoch, append_time)
    rb = pure.assign_offsets(b, 0, offset, epoch, append_time)
    assert (ra, a) == (rb, b)


def test_same_public_names():
    assert sorted(compiled.__all__) == sorted(pure.__all__)
    for name in compiled.__all__:
        assert hasattr(compiled, name) and hasattr(pure, name)
        if name.isupper():
            assert getattr(compiled, name) == getattr(pure, name)
