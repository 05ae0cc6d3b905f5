"""Record batches v2 through the facade (compiled, or the pure twin under PYBROKER_PURE=1):
the protocol.md 5.2 example, header fields, records, LogAppendTime, offsets, control batches,
iter_batches, build errors, compression framings and hypothesis round trips for every codec."""
import gzip
import struct
import zlib

import cramjam
import lz4.frame
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from pbtest import PURE
from pybroker.codec import compression, crc32c, records as R
from pybroker.codec.errors import (CorruptRecordError, EncodeError, InvalidRecordError,
                                   UnsupportedCompressionError)

CODECS = [R.COMPRESSION_NONE, R.COMPRESSION_GZIP, R.COMPRESSION_SNAPPY, R.COMPRESSION_LZ4,
          R.COMPRESSION_ZSTD]

# protocol.md 5.2: one record, key null, value "hi", timestamp 1700000000000, uncompressed.
EXAMPLE = bytes.fromhex(
    "0000000000000000 0000003a ffffffff 02 bbcc4115 0000 00000000"
    "0000018bcfe56800 0000018bcfe56800 ffffffffffffffff ffff ffffffff"
    "00000001 10 00 00 00 01 04 6869 00")


def recrc(buf, pos=0):
    """Rewrite the CRC of the batch at buf[pos] (after a deliberate edit inside the CRC range)."""
    size = 12 + struct.unpack_from(">i", buf, pos + 8)[0]
    struct.pack_into(">I", buf, pos + 17, crc32c(bytes(buf[pos + 21:pos + size])))
    return buf


def patched(batch, offset, fmt, value, fix_crc=True):
    buf = bytearray(batch)
    struct.pack_into(fmt, buf, offset, value)
    return bytes(recrc(buf)) if fix_crc else bytes(buf)


def as_tuples(batch):
    return [(r.key, r.value, r.headers, r.timestamp) for r in batch.records()]


SAMPLE = [
    (b"k0", b"v0", [], 1_700_000_000_000),
    (None, b"tombstone-key-null", [("h1", b"x"), ("empty", b""), ("null", None)], 1_700_000_000_005),
    (b"k2", None, [("\u00e9t\u00e9", b"\x00\xff")], 1_699_999_999_990),    # earlier: negative delta
    (b"", b"", [], 1_700_000_000_001),
]


def test_expected_implementation_loaded():
    expected = "pybroker.codec._pure.records" if PURE else "pybroker_core.records"
    assert R._mod.__name__ == expected


# -- the documented example -------------------------------------------------------------------

def test_example_batch_header_fields():
    b = R.RecordBatch(EXAMPLE)
    b.validate()
    assert (b.base_offset, b.batch_length, b.size, b.partition_leader_epoch, b.magic) == (0, 58, 70, -1, 2)
    assert b.crc == 0xBBCC4115 == b.compute_crc()
    assert (b.attributes, b.compression, b.timestamp_type) == (0, 0, 0)
    assert not (b.is_transactional or b.is_control or b.has_delete_horizon)
    assert (b.last_offset_delta, b.records_count, b.last_offset, b.next_offset) == (0, 1, 0, 1)
    assert b.base_timestamp == b.max_timestamp == 1_700_000_000_000
    assert (b.producer_id, b.producer_epoch, b.base_sequence) == (-1, -1, -1)
    assert bytes(b.raw) == EXAMPLE


def test_example_batch_record():
    (rec,) = list(R.RecordBatch(EXAMPLE).records())
    assert (rec.offset, rec.timestamp, rec.key, rec.value, rec.headers) == (0, 1_700_000_000_000, None, b"hi", [])
    assert (rec.attributes, rec.offset_delta, rec.timestamp_delta) == (0, 0, 0)


def test_build_reproduces_example_bytes():
    assert R.build_batch([(None, b"hi", [], 1_700_000_000_000)]) == EXAMPLE


# -- header fields and records ----------------------------------------------------------------

@pytest.mark.parametrize("codec", CODECS)
def test_build_header_fields(codec):
    raw = R.build_batch(SAMPLE, base_offset=100, compression=codec, producer_id=77,
                        producer_epoch=3, base_sequence=9, is_transactional=True,
                        partition_leader_epoch=5)
    b = R.RecordBatch(raw)
    b.validate()
    assert (b.base_offset, b.partition_leader_epoch, b.compression) == (100, 5, codec)
    assert (b.producer_id, b.producer_epoch, b.base_sequence) == (77, 3, 9)
    assert b.is_transactional and not b.is_control and b.timestamp_type == 0
    assert (b.records_count, b.last_offset_delta, b.last_offset, b.next_offset) == (4, 3, 103, 104)
    assert b.base_timestamp == 1_700_000_000_000                 # the first record's timestamp
    assert b.max_timestamp == 1_700_000_000_005
    assert b.size == len(raw) and b.batch_length == len(raw) - 12


@pytest.mark.parametrize("codec", CODECS)
def test_records_round_trip_fields(codec):
    b = R.RecordBatch(R.build_batch(SAMPLE, base_offset=100, compression=codec))
    recs = list(b.records())
    assert as_tuples(b) == SAMPLE
    assert [r.offset for r in recs] == [100, 101, 102, 103]
    assert [r.offset_delta for r in recs] == [0, 1, 2, 3]
    assert [r.timestamp_delta for r in recs] == [0, 5, -10, 1]
    assert all(r.attributes == 0 for r in recs)
    assert recs[2].headers == [("\u00e9t\u00e9", b"\x00\xff")]
    assert recs[1].key is None and recs[2].value is None and recs[3].key == b""


def test_explicit_base_timestamp_and_default_now():
    b = R.RecordBatch(R.build_batch([(b"a", b"b", None, 50), (b"c", b"d", None, 70)], base_timestamp=40))
    assert b.base_timestamp == 40 and [r.timestamp_delta for r in b.records()] == [10, 30]
    import time
    before = time.time_ns() // 1_000_000
    b = R.RecordBatch(R.build_batch([(b"a", b"b", None, None)]))
    after = time.time_ns() // 1_000_000
    assert before <= b.base_timestamp <= after and b.max_timestamp == b.base_timestamp


def test_buffer_types_for_key_and_value():
    raw = R.build_batch([(bytearray(b"key"), memoryview(b"value"), [(b"hk", bytearray(b"hv"))], 1)])
    (rec,) = R.RecordBatch(raw).records()
    assert (rec.key, rec.value, rec.headers) == (b"key", b"value", [("hk", b"hv")])


def test_view_over_memoryview_at_offset():
    two = bytearray(b"\x00" * 7 + R.build_batch(SAMPLE) + EXAMPLE)
    b = R.RecordBatch(memoryview(two), 7)
    b.validate()
    assert as_tuples(b) == SAMPLE
    assert b.pos == 7
    b2 = R.RecordBatch(two, 7 + b.size)
    b2.validate()
    assert bytes(b2.raw) == EXAMPLE


# -- LogAppendTime ----------------------------------------------------------------------------

def test_log_append_time_batch_reports_max_timestamp_for_every_record():
    b = R.RecordBatch(R.build_batch(SAMPLE, timestamp_type=1))
    b.validate()
    assert b.timestamp_type == 1
    assert [r.timestamp for r in b.records()] == [1_700_000_000_005] * 4


@pytest.mark.parametrize("codec", CODECS)
def test_assign_offsets_with_log_append_time(codec):
    buf = bytearray(R.build_batch(SAMPLE, compression=codec))
    nxt = R.assign_offsets(buf, 0, 5000, partition_leader_epoch=7, log_append_time=1_800_000_000_000)
    assert nxt == 5004
    b = R.RecordBatch(buf)
    b.validate()                                                   # the CRC was rewritten
    assert (b.base_offset, b.partition_leader_epoch, b.timestamp_type) == (5000, 7, 1)
    assert b.max_timestamp == 1_800_000_000_000 and b.compression == codec
    assert [(r.offset, r.timestamp) for r in b.records()] == [(5000 + i, 1_800_000_000_000) for i in range(4)]


def test_assign_offsets_without_append_time_leaves_crc_range_untouched():
    original = R.build_batch(SAMPLE, partition_leader_epoch=-1)
    buf = bytearray(b"\xaa" * 3 + original)
    assert R.assign_offsets(memoryview(buf), 3, 2**40, partition_leader_epoch=12) == 2**40 + 4
    assert buf[:3] == b"\xaa" * 3
    assert buf[3 + 17:] == original[17:]                           # CRC and everything after
    b = R.RecordBatch(buf, 3)
    b.validate()
    assert (b.base_offset, b.partition_leader_epoch) == (2**40, 12)
    assert [r.offset for r in b.records()] == [2**40 + i for i in range(4)]


def test_assign_offsets_errors():
    with pytest.raises(TypeError):
        R.assign_offsets(EXAMPLE, 0, 1)                             # bytes are read-only
    with pytest.raises(CorruptRecordError):
        R.assign_offsets(bytearray(EXAMPLE[:60]), 0, 1)
    bad_magic = bytearray(patched(EXAMPLE, 16, ">b", 1, fix_crc=False))
    with pytest.raises(CorruptRecordError) as e:
        R.assign_offsets(bad_magic, 0, 1)
    assert e.value.position == 16
    buf = bytearray(EXAMPLE)
    with pytest.raises(EncodeError):
        R.assign_offsets(buf, 0, 2**63)
    with pytest.raises(EncodeError):
        R.assign_offsets(buf, 0, 1, partition_leader_epoch=2**31)
    assert bytes(buf) == EXAMPLE                                    # nothing written on error


# -- control batches --------------------------------------------------------------------------

@pytest.mark.parametrize("control_type", [R.CONTROL_ABORT, R.CONTROL_COMMIT])
def test_control_batch(control_type):
    raw = R.build_control_batch(control_type, producer_id=4000, producer_epoch=2,
                                coordinator_epoch=9, base_offset=31, timestamp=1234,
                                partition_leader_epoch=3)
    b = R.RecordBatch(raw)
    b.validate()
    assert b.is_control and b.is_transactional and b.attributes == 0x30
    assert (b.producer_id, b.producer_epoch, b.base_sequence) == (4000, 2, -1)
    assert (b.base_offset, b.records_count, b.partition_leader_epoch) == (31, 1, 3)
    (rec,) = b.records()
    assert rec.key == struct.pack(">hh", 0, control_type)
    assert rec.value == struct.pack(">hi", 0, 9)
    assert (rec.offset, rec.timestamp) == (31, 1234)


def test_control_batch_errors():
    with pytest.raises(EncodeError):
        R.build_control_batch(2, producer_id=1, producer_epoch=0)
    with pytest.raises(EncodeError):
        R.build_control_batch(0, producer_id=1, producer_epoch=0, coordinator_epoch=2**31)


def test_control_batch_with_two_records_is_invalid():
    raw = R.build_batch([(b"\0\0\0\0", b"\0" * 6, None, 1)] * 2, producer_id=1, producer_epoch=0)
    raw = patched(raw, 21, ">h", 0x30)
    with pytest.raises(InvalidRecordError) as e:
        R.RecordBatch(raw).validate()
    assert e.value.position == 57 and e.value.error_code == 87


# -- iter_batches -----------------------------------------------------------------------------

def test_iter_batches_stops_before_a_partial_trailing_batch():
    parts = [R.build_batch(SAMPLE, base_offset=0), EXAMPLE, R.build_batch(SAMPLE, base_offset=5, compression=1)]
    log = b"".join(parts)
    got = list(R.iter_batches(log))
    assert [b.size for b in got] == [len(p) for p in parts]
    assert [b.pos for b in got] == [0, len(parts[0]), len(parts[0]) + len(parts[1])]
    for cut in range(len(log) - len(parts[2]), len(log)):
        assert len(list(R.iter_batches(log[:cut]))) == 2
    assert [b.pos for b in R.iter_batches(log, len(parts[0]), len(log) - 1)] == [len(parts[0])]
    assert list(R.iter_batches(log, 0, 0)) == []


def test_iter_batches_rejects_length_below_minimum_and_bad_windows():
    bad = patched(EXAMPLE, 8, ">i", 48, fix_crc=False)
    with pytest.raises(CorruptRecordError) as e:
        list(R.iter_batches(EXAMPLE + bad))
    assert e.value.position == len(EXAMPLE) + 8
    with pytest.raises(ValueError):
        list(R.iter_batches(EXAMPLE, 5, 3))
    with pytest.raises(ValueError):
        list(R.iter_batches(EXAMPLE, 0, len(EXAMPLE) + 1))


# -- validation errors ------------------------------------------------------------------------

def test_header_truncated_or_length_past_end():
    for cut in range(len(EXAMPLE)):
        with pytest.raises(CorruptRecordError):
            R.RecordBatch(EXAMPLE[:cut])
    with pytest.raises(CorruptRecordError) as e:
        R.RecordBatch(EXAMPLE, 10)
    assert e.value.position == 10
    with pytest.raises(CorruptRecordError):
        R.RecordBatch(EXAMPLE, -1)
    longer = patched(EXAMPLE, 8, ">i", 59, fix_crc=False)
    with pytest.raises(CorruptRecordError) as e:
        R.RecordBatch(longer)
    assert e.value.position == 8 and "past end" in e.value.reason
    with pytest.raises(CorruptRecordError):
        R.RecordBatch(patched(EXAMPLE, 8, ">i", -5, fix_crc=False))


def test_magic_crc_codec_count_errors():
    with pytest.raises(CorruptRecordError) as e:
        R.RecordBatch(patched(EXAMPLE, 16, ">b", 1, fix_crc=False)).validate()
    assert e.value.position == 16 and "magic" in e.value.reason
    with pytest.raises(CorruptRecordError) as e:
        R.RecordBatch(patched(EXAMPLE, 17, ">I", 0xBBCC4116, fix_crc=False)).validate()
    assert e.value.position == 17 and "CRC" in e.value.reason and e.value.error_code == 2
    for codec in (5, 6, 7):
        bad = R.RecordBatch(patched(EXAMPLE, 21, ">h", codec))
        with pytest.raises(UnsupportedCompressionError) as e:
            bad.validate()
        assert e.value.position == 21 and e.value.error_code == 76
        with pytest.raises(UnsupportedCompressionError):
            bad.records()
    with pytest.raises(InvalidRecordError) as e:
        R.RecordBatch(patched(EXAMPLE, 23, ">i", 1)).validate()        # count 1, delta 1
    assert e.value.position == 57
    with pytest.raises(CorruptRecordError) as e:
        R.RecordBatch(patched(EXAMPLE, 57, ">i", -1)).validate()
    assert e.value.position == 57
    with pytest.raises(CorruptRecordError):
        R.RecordBatch(patched(EXAMPLE, 57, ">i", -1)).records()


def test_huge_record_count_is_rejected_without_allocating():
    raw = patched(patched(EXAMPLE, 57, ">i", 2**31 - 1), 23, ">i", 2**31 - 2)
    b = R.RecordBatch(raw)
    with pytest.raises(CorruptRecordError) as e:
        b.validate()                                           # 9 bytes cannot hold 2**31-1 records
    assert e.value.position == 57
    it = b.records()
    assert next(it).value == b"hi"
    with pytest.raises(InvalidRecordError) as e:
        next(it)
    assert "holds 1" in e.value.reason and e.value.position == 70
    zipped = patched(patched(R.build_batch(SAMPLE, compression=1), 57, ">i", 2**31 - 1), 23, ">i", 2**31 - 2)
    with pytest.raises(InvalidRecordError):
        list(R.RecordBatch(zipped).records())


def test_every_crc_covered_byte_flip_is_caught():
    raw = R.build_batch(SAMPLE[:2], compression=0)
    for i in range(21, len(raw)):
        buf = bytearray(raw)
        buf[i] ^= 0x41
        with pytest.raises(CorruptRecordError) as e:
            R.RecordBatch(bytes(buf)).validate()
        assert e.value.position == 17


def test_base_offset_and_epoch_are_outside_the_crc():
    buf = bytearray(EXAMPLE)
    buf[0:8] = b"\x01" * 8
    buf[12:16] = b"\x02" * 4
    R.RecordBatch(bytes(buf)).validate()


def test_empty_batch_is_accepted_by_validate():
    raw = patched(patched(EXAMPLE, 57, ">i", 0), 23, ">i", 9)   # compacted away: count 0
    b = R.RecordBatch(raw)
    b.validate()
    with pytest.raises(InvalidRecordError) as e:
        list(b.records())                                      # but 9 record bytes remain
    assert "after the last of 0 records" in e.value.reason


# -- malformed records inside a CRC-valid batch -----------------------------------------------

def _with_records(body, count=1):
    """A CRC-valid uncompressed batch whose records section is `body`."""
    head = bytearray(EXAMPLE[:61])
    struct.pack_into(">i", head, 8, 49 + len(body))
    struct.pack_into(">i", head, 23, count - 1)
    struct.pack_into(">i", head, 57, count)
    return bytes(recrc(bytearray(head + body)))


@pytest.mark.parametrize("body, reason, position", [
    (b"\x10\x00\x00\x00\x03\x04hi\x00", "negative key length -2", 65),
    (b"\x10\x00\x00\x00\x01\x05hi\x00", "negative value length -3", 66),
    (b"\x10\x00\x00\x00\x01\x04hi\x01", "negative header count -1", 69),
    (b"\x10\x00\x00\x00\x01\x04hi\x7e", "count 63 cannot fit", 70),
    (b"\x12\x00\x00\x00\x01\x00\x02\x03a\x00", "negative header key length -2", 68),
    (b"\x12\x00\x00\x00\x01\x00\x02\x02\xff\x00", "invalid UTF-8", 69),
    (b"\x0a\x00\x00\x00\x04hi\x00\x00", "need 2 bytes, 1 left", 66),
    (b"\x12\x00\x00\x00\x01\x04hi\x00\x00", "fields take 8", 61),
    (b"\x11\x00\x00\x00\x01\x04hi\x00", "record length -9", 61),
    (b"\x40\x00\x00\x00\x01\x04hi\x00", "record length 32 outside", 61),
    (b"\xff\xff\xff\xff\x7f", "varint longer than 5 bytes", 61),
    (b"\x80\x80", "truncated varint", 61),
    (b"\x20\x00" + b"\xff" * 10 + b"\x01\x00\x00\x00\x00", "varlong longer than 10 bytes", 63),
    (b"\x10\x00\x00\x00\x01\x04hi\x00\x00", "1 bytes after the last of 1 records", 70),
])
def test_malformed_record_is_a_typed_error(body, reason, position):
    b = R.RecordBatch(_with_records(body))
    if len(body) >= 7:                  # shorter bodies already fail validate's size check
        b.validate()
    with pytest.raises(InvalidRecordError) as e:
        list(b.records())
    assert reason in e.value.reason and e.value.position == position and e.value.error_code == 87


def test_record_truncated_at_every_byte_is_a_typed_error():
    full = _with_records(R.build_batch(SAMPLE)[61:], count=4)
    body = full[61:]
    for cut in range(len(body)):
        b = R.RecordBatch(_with_records(body[:cut], count=4))
        with pytest.raises(InvalidRecordError):
            list(b.records())
    assert as_tuples(R.RecordBatch(full)) == SAMPLE


def test_iterator_ends_after_an_error():
    it = R.RecordBatch(_with_records(b"\x80\x80")).records()
    with pytest.raises(InvalidRecordError):
        next(it)
    assert list(it) == []


# -- build errors -----------------------------------------------------------------------------

def test_build_errors():
    with pytest.raises(EncodeError):
        R.build_batch([])
    with pytest.raises(UnsupportedCompressionError):
        R.build_batch(SAMPLE, compression=5)
    with pytest.raises(EncodeError):
        R.build_batch(SAMPLE, timestamp_type=2)
    with pytest.raises(TypeError):
        R.build_batch([("key", b"v", None, 1)])
    with pytest.raises(TypeError):
        R.build_batch([(b"k", "value", None, 1)])
    with pytest.raises(TypeError):
        R.build_batch([(b"k", b"v", [(None, b"x")], 1)])
    with pytest.raises(EncodeError):
        R.build_batch([(b"k", b"v", None, 2**63)])
    with pytest.raises(EncodeError):
        R.build_batch([(b"k", b"v", None, 2**62), (b"k", b"v", None, -2**62 - 1)])
    for field, value in [("producer_epoch", 2**15), ("producer_id", 2**63),
                         ("base_sequence", -2**31 - 1), ("base_offset", -2**63 - 1),
                         ("partition_leader_epoch", 2**31)]:
        with pytest.raises(EncodeError):
            R.build_batch(SAMPLE, **{field: value})


# -- compression framings ---------------------------------------------------------------------

PAYLOAD = b"".join(b"record %05d payload " % i * 3 for i in range(3000))


@pytest.mark.parametrize("codec", CODECS[1:])
def test_codec_round_trip_and_bounds(codec):
    blob = compression.compress(codec, PAYLOAD)
    assert len(blob) < len(PAYLOAD) // 3
    assert compression.decompress(codec, blob) == PAYLOAD
    assert compression.decompress(codec, blob, max_size=len(PAYLOAD)) == PAYLOAD
    with pytest.raises(CorruptRecordError) as e:
        compression.decompress(codec, blob, max_size=len(PAYLOAD) - 1, position=61)
    assert "limit" in e.value.reason and e.value.position == 61
    for cut in (0, 1, len(blob) // 2, len(blob) - 1):
        with pytest.raises(CorruptRecordError):
            compression.decompress(codec, blob[:cut])
    with pytest.raises(CorruptRecordError):
        compression.decompress(codec, b"\x00" * 40 + blob)


def test_unknown_codec():
    for fn in (lambda: compression.compress(7, b"x"), lambda: compression.decompress(5, b"x", position=21)):
        with pytest.raises(UnsupportedCompressionError):
            fn()


@pytest.mark.parametrize("codec", CODECS[1:])
def test_decompression_bomb_is_bounded(codec):
    bomb = compression.compress(codec, bytes(16 << 20))
    assert len(bomb) < (1 << 20)
    with pytest.raises(CorruptRecordError) as e:
        compression.decompress(codec, bomb, max_size=1 << 20)
    assert "limit" in e.value.reason
    head = bytearray(EXAMPLE[:61])
    struct.pack_into(">h", head, 21, codec)
    struct.pack_into(">i", head, 8, 49 + len(bomb))
    batch = R.RecordBatch(bytes(recrc(bytearray(head + bomb))))
    batch.validate()
    with pytest.raises(CorruptRecordError) as e:
        batch.records(max_decompressed_size=1 << 20)
    assert e.value.position == 61


def test_snappy_writes_xerial_framing_in_32k_blocks():
    blob = compression.compress(R.COMPRESSION_SNAPPY, PAYLOAD)
    assert blob[:16] == b"\x82SNAPPY\x00" + struct.pack(">ii", 1, 1)
    pos, out = 16, b""
    while pos < len(blob):
        (n,) = struct.unpack_from(">i", blob, pos)
        block = bytes(cramjam.snappy.decompress_raw(blob[pos + 4:pos + 4 + n]))
        assert len(block) == min(32768, len(PAYLOAD) - len(out))
        out += block
        pos += 4 + n
    assert out == PAYLOAD


def test_snappy_reads_raw_blocks_and_concatenated_xerial_streams():
    raw = bytes(cramjam.snappy.compress_raw(PAYLOAD))
    assert compression.decompress(R.COMPRESSION_SNAPPY, raw) == PAYLOAD
    two = compression.compress(2, PAYLOAD[:5000]) + compression.compress(2, PAYLOAD[5000:])
    assert compression.decompress(R.COMPRESSION_SNAPPY, two) == PAYLOAD
    bad_len = bytearray(compression.compress(2, PAYLOAD))
    struct.pack_into(">i", bad_len, 16, -4)
    with pytest.raises(CorruptRecordError):
        compression.decompress(R.COMPRESSION_SNAPPY, bytes(bad_len))


def test_lz4_frame_descriptor_matches_kafka_writer():
    blob = compression.compress(R.COMPRESSION_LZ4, PAYLOAD)
    assert blob[:4] == b"\x04\x22\x4d\x18"
    assert blob[4] == 0x60           # version 01, independent blocks, no checksums, no content size
    assert blob[5] == 0x40           # 64 KiB maximum block size
    assert lz4.frame.decompress(blob) == PAYLOAD
    stored_size = lz4.frame.compress(PAYLOAD, store_size=True, content_checksum=True)
    assert compression.decompress(R.COMPRESSION_LZ4, stored_size) == PAYLOAD


def test_gzip_and_zstd_read_concatenated_members_and_frames():
    g = gzip.compress(PAYLOAD[:100]) + gzip.compress(PAYLOAD[100:])
    assert compression.decompress(R.COMPRESSION_GZIP, g) == PAYLOAD
    assert compression.decompress(R.COMPRESSION_GZIP, g + b"trailing") == PAYLOAD  # as Java does
    z = zstandard.ZstdCompressor(write_content_size=False).compress
    assert compression.decompress(R.COMPRESSION_ZSTD, z(PAYLOAD[:7]) + z(PAYLOAD[7:])) == PAYLOAD
    with pytest.raises(CorruptRecordError):
        compression.decompress(R.COMPRESSION_ZSTD, z(PAYLOAD) + b"junk")
    assert zlib.decompress(compression.compress(1, PAYLOAD), 31) == PAYLOAD


@pytest.mark.parametrize("codec", CODECS[1:])
def test_corrupt_compressed_records_with_valid_crc(codec):
    raw = bytearray(R.build_batch(SAMPLE * 20, compression=codec))
    for i in range(70, len(raw), max(1, len(raw) // 25)):
        buf = bytearray(raw)
        buf[i] ^= 0xFF
        b = R.RecordBatch(bytes(recrc(buf)))
        try:
            recs = list(b.records())
        except (CorruptRecordError, InvalidRecordError):
            continue
        assert len(recs) == 80                        # a flip the codec cannot see (e.g. literals)


# -- hypothesis round trips -------------------------------------------------------------------

blobs = st.one_of(st.none(), st.binary(max_size=64))
headers = st.lists(st.tuples(st.text(max_size=8), st.one_of(st.none(), st.binary(max_size=16))), max_size=3)
timestamps = st.integers(min_value=-(2**50), max_value=2**50)
record_lists = st.lists(st.tuples(blobs, blobs, headers, timestamps), min_size=1, max_size=12)


@settings(max_examples=60 if PURE else 200, deadline=None)
@given(records=record_lists, codec=st.sampled_from(CODECS),
       base_offset=st.integers(0, 2**62), producer_id=st.integers(-1, 2**62),
       producer_epoch=st.integers(-1, 2**15 - 1), base_sequence=st.integers(-1, 2**31 - 1),
       transactional=st.booleans(), epoch=st.integers(-1, 2**31 - 1))
def test_round_trip(records, codec, base_offset, producer_id, producer_epoch, base_sequence,
                    transactional, epoch):
    raw = R.build_batch(records, base_offset=base_offset, compression=codec,
                        producer_id=producer_id, producer_epoch=producer_epoch,
                        base_sequence=base_sequence, is_transactional=transactional,
                        partition_leader_epoch=epoch)
    (b,) = list(R.iter_batches(raw))
    b.validate()
    assert (b.base_offset, b.compression, b.producer_id, b.producer_epoch, b.base_sequence,
            b.is_transactional, b.partition_leader_epoch) == (
        base_offset, codec, producer_id, producer_epoch, base_sequence, transactional, epoch)
    assert b.records_count == len(records) and b.next_offset == base_offset + len(records)
    assert b.base_timestamp == records[0][3]
    assert b.max_timestamp == max(-1, *(r[3] for r in records))
    assert as_tuples(b) == [(k, v, h, t) for k, v, h, t in records]
    assert [r.offset for r in b.records()] == list(range(base_offset, base_offset + len(records)))


@settings(max_examples=100 if PURE else 400, deadline=None)
@given(data=st.binary(min_size=0, max_size=300))
def test_arbitrary_bytes_raise_only_typed_errors(data):
    raw = EXAMPLE[:61] + data
    for buf in (data, raw, bytes(recrc(bytearray(patched(raw, 8, ">i", 49 + len(data), False))))):
        try:
            for b in R.iter_batches(buf):
                b.validate()
                list(b.records(max_decompressed_size=1 << 16))
        except (CorruptRecordError, InvalidRecordError, UnsupportedCompressionError) as exc:
            assert isinstance(exc.position, int) and exc.reason


def test_zstd_declared_content_size_is_enforced_and_skippable_frames_pass():
    blob = bytearray(zstandard.ZstdCompressor().compress(PAYLOAD))
    params = zstandard.get_frame_parameters(bytes(blob))
    assert params.content_size == len(PAYLOAD)
    header = zstandard.frame_header_size(bytes(blob))
    blob[header - 4:header] = (1000).to_bytes(4, "little")     # lie: declare 1,000 bytes
    assert zstandard.frame_content_size(bytes(blob)) == 1000
    with pytest.raises(CorruptRecordError):
        compression.decompress(R.COMPRESSION_ZSTD, bytes(blob))
    skippable = b"\x50\x2a\x4d\x18" + struct.pack("<I", 3) + b"abc"
    good = zstandard.ZstdCompressor().compress(PAYLOAD)
    assert compression.decompress(R.COMPRESSION_ZSTD, skippable + good) == PAYLOAD


@pytest.mark.parametrize("codec", CODECS[1:])
def test_iteration_decompresses_once(codec, monkeypatch):
    calls = []
    real = compression.decompress

    def counting(*args, **kwargs):
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(compression, "decompress", counting)
    b = R.RecordBatch(R.build_batch(SAMPLE * 50, compression=codec))
    assert len(list(b.records())) == 200
    assert calls == [codec]


def test_assign_offsets_in_a_writable_mmap():
    import mmap
    raw = R.build_batch(SAMPLE) + EXAMPLE
    with mmap.mmap(-1, len(raw) + 5) as m:
        m[5:] = raw
        assert R.assign_offsets(m, 5 + len(raw) - len(EXAMPLE), 77, 2, log_append_time=99) == 78
        (first, second) = list(R.iter_batches(m, 5))
        second.validate()
        assert (second.base_offset, second.partition_leader_epoch, second.max_timestamp) == (77, 2, 99)
        assert [r.timestamp for r in second.records()] == [99]
        del first, second                              # release the exported views before close


@pytest.mark.parametrize("first", ["pybroker_core.records", "pybroker.codec._pure.records",
                                   "pybroker.codec.compression", "pybroker.codec.records"])
def test_any_records_module_can_be_imported_first(first):
    import subprocess
    import sys
    code = f"import {first}\nimport pybroker.codec as c\nprint(c.RecordBatch.__module__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == R._mod.__name__
