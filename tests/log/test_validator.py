"""Produce-time topic policies (pybroker/log/validator.py over pybroker_core.validator / twin):
keys on compacted topics, per-record timestamp bounds, record size, broker-side recompression to
every codec (the records survive byte for byte, the header keeps its producer fields), and
malformed records in a CRC-valid batch."""
import random
import time

import pytest

from pbtest import PURE
from pybroker import _impl
from pybroker.codec import compression, crc32c
from pybroker.codec import records as R
from pybroker.log import LogConfig
from pybroker.log.validator import (INVALID_RECORD, INVALID_TIMESTAMP, MESSAGE_TOO_LARGE,
                                    RecordPolicyError, validate_batch)

NOW = int(time.time() * 1000)
scan = _impl.load("validator")


def batch_of(recs, **kw):
    raw = bytearray(R.build_batch(recs, **kw))
    return R.RecordBatch(raw), raw


def test_scan_reports_each_rule_by_record_index():
    b, raw = batch_of([(b"k", b"v", [], NOW), (None, b"v", [], NOW), (b"k", b"v", [], NOW - 10_000),
                       (b"k", b"x" * 50, [], NOW), (b"k", None, [], -1 - 0)])
    found = scan.scan_records(raw, 61, len(raw), b.records_count, b.base_timestamp, require_key=True,
                              min_timestamp=NOW - 5000, max_timestamp=NOW + 5000, max_record_size=40)
    kinds = {i: k for i, k, _ in found}
    assert kinds == {1: scan.KIND_NO_KEY, 2: scan.KIND_TIMESTAMP, 3: scan.KIND_TOO_LARGE}
    assert [d for i, k, d in found if i == 2] == [NOW - 10_000]


@pytest.mark.skipif(PURE, reason="compares the compiled module with its twin")
@pytest.mark.parametrize("seed", range(5))
def test_compiled_scan_matches_the_twin_including_errors(seed):
    from pybroker.codec._pure import validator as pure
    from pybroker_core import validator as compiled
    rng = random.Random(seed)
    recs = [(None if rng.random() < 0.2 else b"k", b"v" * rng.randrange(30), [], NOW + rng.randrange(-9000, 9000))
            for _ in range(20)]
    b, raw = batch_of(recs)
    for cut in (len(raw), len(raw) - 1, len(raw) - 7, 70, 62):
        data = bytes(raw[:cut])
        results = []
        for mod in (compiled, pure):
            try:
                results.append(mod.scan_records(data, 61, cut, b.records_count, b.base_timestamp,
                                                require_key=True, min_timestamp=NOW - 5000,
                                                max_timestamp=NOW + 5000, max_record_size=20,
                                                check_offsets=True))
            except Exception as exc:  # noqa: BLE001 — the comparison is the point
                results.append((type(exc).__name__, str(exc), getattr(exc, "position", None)))
        assert results[0] == results[1], cut


def test_compacted_topic_rejects_keyless_records_with_record_errors():
    cfg = LogConfig(cleanup_policy="compact")
    b, raw = batch_of([(b"k", b"v", [], NOW), (None, b"v", [], NOW)])
    with pytest.raises(RecordPolicyError) as err:
        validate_batch(cfg, b, raw, NOW, "t-0")
    assert err.value.code == INVALID_RECORD and err.value.record_errors[0][0] == 1
    assert "without key" in err.value.message
    b, raw = batch_of([(b"k", b"v", [], NOW)], compression=4)
    assert validate_batch(cfg, b, raw, NOW) is raw                     # keyed: accepted as is


def test_timestamp_bounds_apply_per_record_and_only_to_create_time():
    cfg = LogConfig(message_timestamp_before_max_ms=60_000, message_timestamp_after_max_ms=1000)
    for codec in (0, 3):
        b, raw = batch_of([(b"a", b"1", [], NOW), (b"b", b"2", [], NOW - 120_000)], compression=codec)
        with pytest.raises(RecordPolicyError) as err:
            validate_batch(cfg, b, raw, NOW)
        assert err.value.code == INVALID_TIMESTAMP
        assert [i for i, _ in err.value.record_errors] == [1]
        assert f"[{NOW - 60_000}, {NOW + 1000}]" in err.value.message
    b, raw = batch_of([(b"a", b"1", [], NOW + 5000)])
    with pytest.raises(RecordPolicyError):
        validate_batch(LogConfig(), b, raw, NOW - 3_600_000)          # default after bound: 1 h
    b, raw = batch_of([(b"a", b"1", [], NOW - 10 ** 9)])
    assert validate_batch(LogConfig(message_timestamp_type="LogAppendTime",
                                    message_timestamp_before_max_ms=1), b, raw, NOW) is raw


def test_record_size_bound_and_malformed_records():
    cfg = LogConfig(max_decompressed_message_bytes=100)
    b, raw = batch_of([(b"k", b"x" * 200, [], NOW)], compression=1)
    with pytest.raises(RecordPolicyError) as err:
        validate_batch(cfg, b, raw, NOW)
    assert err.value.code == INVALID_RECORD
    b, raw = batch_of([(b"k", b"v", [], NOW), (b"j", b"w", [], NOW)])
    raw[61] = 0x7E                                                     # first record length: huge
    raw[17:21] = crc32c(bytes(raw[21:])).to_bytes(4, "big")
    b = R.RecordBatch(raw)
    with pytest.raises(RecordPolicyError) as err:
        validate_batch(LogConfig(), b, raw, NOW)
    assert err.value.code == INVALID_RECORD and "record length" in err.value.message


@pytest.mark.parametrize("target", ["uncompressed", "gzip", "snappy", "lz4", "zstd"])
@pytest.mark.parametrize("source", [0, 1, 4])
def test_compression_type_recompresses_to_the_topic_codec(source, target):
    recs = [(b"key-%d" % i, b"value %d " % i * 20, [("h", b"%d" % i)], NOW + i) for i in range(50)]
    b, raw = batch_of(recs, compression=source, producer_id=9, producer_epoch=2, base_sequence=40)
    out = validate_batch(LogConfig(compression_type=target, compression_zstd_level=7), b, raw, NOW)
    nb = R.RecordBatch(out)
    nb.validate()
    want = {"uncompressed": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}[target]
    assert nb.compression == want
    assert (out is raw) == (want == source)
    assert (nb.producer_id, nb.producer_epoch, nb.base_sequence, nb.last_offset_delta,
            nb.max_timestamp, nb.base_timestamp) == (9, 2, 40, 49, NOW + 49, NOW)
    assert [(r.key, r.value, r.headers, r.timestamp) for r in nb.records()] == \
        [(k, v, h, ts) for k, v, h, ts in recs]


def test_recompression_that_outgrows_max_message_bytes_is_rejected():
    recs = [(b"k", random.Random(1).randbytes(3000), [], NOW)]
    b, raw = batch_of(recs, compression=0)
    cfg = LogConfig(compression_type="gzip", max_message_bytes=len(raw) + 5)
    with pytest.raises(RecordPolicyError) as err:
        validate_batch(cfg, b, raw, NOW)                              # random bytes grow in gzip
    assert err.value.code == MESSAGE_TOO_LARGE


def test_compression_levels_reach_the_codec():
    data = b"abcdefgh" * 4000
    assert len(compression.compress(1, data, 1)) != len(compression.compress(1, data, 9))
    assert compression.decompress(4, compression.compress(4, data, 19)) == data
