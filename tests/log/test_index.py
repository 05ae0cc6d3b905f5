"""Offset/time indexes: compiled lookups against the pure twin and a bisect model, Kafka's sizes,
append/lookup/truncate/resize semantics, sanity checks, and the batch-header scans."""
import bisect
import importlib
import os
import random
import struct

import pytest

from pybroker import _impl
from pybroker.codec import records
from pybroker.codec.errors import CorruptRecordError
from pybroker.log.errors import CorruptIndexError, InvalidOffsetError
from pybroker.log.index import OffsetIndex, TimeIndex
from pybroker._impl import PURE

pure = importlib.import_module("pybroker.codec._pure.index")
core = _impl.load("index")


def test_expected_implementation_loaded():
    assert core.__name__ == ("pybroker.codec._pure.index" if PURE else "pybroker_core.index")


def _offset_entries(rels):
    return b"".join(struct.pack(">II", r, 100 + 7 * i) for i, r in enumerate(rels))


def _time_entries(tss):
    return b"".join(struct.pack(">qI", t, 3 * i) for i, t in enumerate(tss))


@pytest.mark.parametrize("impl", [core, pure], ids=["loaded", "pure"])
def test_offset_lookups_match_bisect_model(impl):
    rng = random.Random(7)
    for n in (0, 1, 2, 3, 10, 257):
        rels = sorted(rng.sample(range(1, 5000), n))
        buf = _offset_entries(rels) + b"\x00" * 64          # slack after the used entries
        for target in [-1, 0] + rels + [r + 1 for r in rels] + [6000]:
            lower = bisect.bisect_right(rels, target) - 1
            assert impl.offset_index_lookup(buf, n, target) == lower
            upper = bisect.bisect_left(rels, target)
            assert impl.offset_index_upper_bound(buf, n, target) == (upper if upper < n else -1)


@pytest.mark.parametrize("impl", [core, pure], ids=["loaded", "pure"])
def test_time_lookup_matches_bisect_model(impl):
    rng = random.Random(3)
    for n in (0, 1, 5, 300):
        tss = sorted(rng.sample(range(10**12, 10**12 + 10**6), n))
        buf = _time_entries(tss)
        for target in [-5, 10**12 - 1] + tss + [t + 1 for t in tss] + [2 * 10**12]:
            assert impl.time_index_lookup(buf, n, target) == bisect.bisect_right(tss, target) - 1


@pytest.mark.parametrize("impl", [core, pure], ids=["loaded", "pure"])
def test_entry_count_larger_than_buffer_is_rejected(impl):
    with pytest.raises(ValueError):
        impl.offset_index_lookup(b"\x00" * 15, 2, 0)
    with pytest.raises(ValueError):
        impl.time_index_lookup(b"\x00" * 23, 2, 0)


@pytest.mark.parametrize("impl", [core, pure], ids=["loaded", "pure"])
def test_index_checks_find_the_first_bad_entry(impl):
    good = _offset_entries([1, 5, 9])
    assert impl.offset_index_check(good, 3, 1000) == -1
    assert impl.offset_index_check(_offset_entries([1, 5, 5]), 3, 1000) == 2   # not increasing
    assert impl.offset_index_check(good, 3, 105) == 1                          # position past the log
    zeros = b"\x00" * 80                                                       # pre-allocated, never written
    assert impl.offset_index_check(zeros, 10, 1000) == 1
    assert impl.time_index_check(_time_entries([5, 6, 7]), 3, 100) == -1
    assert impl.time_index_check(_time_entries([5, 5, 7]), 3, 100) == 1
    assert impl.time_index_check(_time_entries([5, 6, 7]), 3, 3) == 2          # offset beyond the log


def test_new_index_files_are_preallocated_like_kafka(tmp_path):
    oi = OffsetIndex(str(tmp_path / "0.index"), 0, 10 * 1024 * 1024)
    ti = TimeIndex(str(tmp_path / "0.timeindex"), 0, 10 * 1024 * 1024)
    assert oi.max_entries == 1_310_720 and os.path.getsize(oi.path) == 10_485_760
    assert ti.max_entries == 873_813 and os.path.getsize(ti.path) == 10_485_756
    oi.append(10, 4100)
    ti.maybe_append(1_700_000_000_000, 10)
    oi.close()
    ti.close()
    assert open(oi.path, "rb").read() == struct.pack(">II", 10, 4100)         # trimmed on close
    assert open(ti.path, "rb").read() == struct.pack(">qI", 1_700_000_000_000, 10)


@pytest.mark.parametrize("where", ["file", "memory"])
def test_offset_index_append_lookup_truncate(tmp_path, where):
    path = str(tmp_path / "00000000000000000100.index") if where == "file" else None
    idx = OffsetIndex(path, 100, 8 * 4)
    assert idx.lookup(150) == (100, 0)                 # empty: base offset, position 0
    for off, pos in ((110, 4000), (120, 8000), (130, 12000)):
        idx.append(off, pos)
    assert idx.is_full() is False
    idx.append(140, 16000)
    assert idx.is_full()
    with pytest.raises(InvalidOffsetError):
        idx.append(150, 20000)
    assert idx.lookup(99) == (100, 0)
    assert idx.lookup(109) == (100, 0)
    assert idx.lookup(110) == (110, 4000)
    assert idx.lookup(129) == (120, 8000)
    assert idx.lookup(10**9) == (140, 16000)
    idx.truncate_to(130)
    assert idx.entries == 2 and idx.lookup(135) == (120, 8000)
    idx.truncate_to(125)
    assert idx.entries == 2
    with pytest.raises(InvalidOffsetError):
        idx.append(115, 9000)                          # not above the last offset
    idx.close()


def test_reopened_index_keeps_entries_and_sanity_checks(tmp_path):
    path = str(tmp_path / "00000000000000000000.index")
    idx = OffsetIndex(path, 0, 1024)
    idx.append(5, 100)
    idx.append(9, 300)
    idx.close()
    again = OffsetIndex(path, 0, 1024, writable=False)
    assert again.entries == 2 and again.lookup(7) == (5, 100)
    again.sanity_check(log_size=400)
    with pytest.raises(CorruptIndexError):
        again.sanity_check(log_size=300)               # entry points past the log
    again.close()


def test_time_index_keeps_one_slot_for_the_roll_entry():
    ti = TimeIndex(None, 0, 12 * 3)
    ti.maybe_append(10, 1)
    ti.maybe_append(10, 2)                             # same timestamp: not appended
    assert ti.entries == 1
    ti.maybe_append(20, 3)
    assert ti.is_full()                                # 3 slots, one reserved
    ti.maybe_append(30, 4, skip_full_check=True)
    assert ti.entries == 3 and ti.lookup(25) == (20, 3) and ti.lookup(5) == (-1, 0)
    with pytest.raises(InvalidOffsetError):
        ti.maybe_append(40, 5)


# ---- batch-header scans ---------------------------------------------------------------------------

def _segment_bytes(n=5):
    out = bytearray()
    for i in range(n):
        b = bytearray(records.build_batch([(None, b"x" * (10 * i), [], 1000 + 10 * i)] * 2))
        records.assign_offsets(b, 0, 2 * i)
        out += b
    return bytes(out)


@pytest.mark.parametrize("impl", [core, pure], ids=["loaded", "pure"])
@pytest.mark.parametrize("source", ["buffer", "fd"])
def test_scans_over_buffer_and_fd(impl, source, tmp_path):
    data = _segment_bytes()
    src = data
    if source == "fd":
        p = tmp_path / "seg.log"
        p.write_bytes(data)
        fd = os.open(p, os.O_RDONLY)
        src = fd
    positions = [b_pos for b_pos, _ in _positions(data)]
    try:
        assert impl.find_batch_by_offset(src, 0, len(data), 0)[:3] == (0, 0, 1)
        assert impl.find_batch_by_offset(src, 0, len(data), 5)[0] == positions[2]
        assert impl.find_batch_by_offset(src, 0, len(data), 10) is None
        assert impl.find_batch_by_timestamp(src, 0, len(data), 1021)[1:3] == (6, 7)
        assert impl.walk_batches(src, 0, len(data)) == (len(data), 5, 9)
        assert impl.walk_batches(src, 0, len(data) - 1) == (positions[4], 4, 7)
        assert impl.max_timestamp_scan(src, 0, len(data)) == (1040, 9)
        with pytest.raises(CorruptRecordError):
            impl.find_batch_by_offset(src, 0, len(data) - 1, 9)   # last batch overruns the end
    finally:
        if source == "fd":
            os.close(fd)


@pytest.mark.parametrize("impl", [core, pure], ids=["loaded", "pure"])
def test_scan_rejects_malformed_headers(impl):
    data = bytearray(_segment_bytes(2))
    struct.pack_into(">i", data, 8, 10)                            # batch_length below 49
    with pytest.raises(CorruptRecordError) as err:
        impl.find_batch_by_offset(bytes(data), 0, len(data), 0)
    assert err.value.position == 0
    assert impl.walk_batches(bytes(data), 0, len(data)) == (0, 0, -1)
    data = bytearray(_segment_bytes(2))
    data[16] = 1                                                   # magic 1
    with pytest.raises(CorruptRecordError):
        impl.find_batch_by_offset(bytes(data), 0, len(data), 0)


def _positions(data):
    pos = 0
    while pos < len(data):
        b = records.RecordBatch(data, pos)
        yield pos, b
        pos += b.size


# ---- fuzz: malformed input is a typed error, never a crash or an out-of-bounds read --------------

from hypothesis import given, settings, strategies as st  # noqa: E402


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=600), start=st.integers(-5, 700), end=st.integers(-5, 700),
       target=st.integers(-2, 2**40))
def test_scans_on_arbitrary_bytes_raise_only_typed_errors(data, start, end, target):
    for impl in (core, pure):
        for fn in (lambda: impl.find_batch_by_offset(data, start, end, target),
                   lambda: impl.find_batch_by_timestamp(data, start, end, target),
                   lambda: impl.walk_batches(data, start, end),
                   lambda: impl.max_timestamp_scan(data, start, end)):
            try:
                fn()
            except (CorruptRecordError, ValueError):
                pass


@settings(max_examples=200, deadline=None)
@given(flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255)), min_size=1, max_size=3),
       window=st.tuples(st.integers(0, 400), st.integers(0, 400)))
def test_scans_agree_between_implementations_on_damaged_segments(flips, window):
    data = bytearray(_segment_bytes(6))
    for pos, xor in flips:
        data[pos % len(data)] ^= xor
    data = bytes(data)
    start, end = sorted(window)

    def outcome(impl):
        try:
            return ("ok", impl.find_batch_by_offset(data, start, min(end, len(data)), 7),
                    impl.walk_batches(data, start, min(end, len(data))))
        except CorruptRecordError as exc:
            return ("corrupt", exc.position)
    assert outcome(core) == outcome(pure)
