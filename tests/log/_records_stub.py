"""Stand-in for pybroker.codec.records used only while that module is not yet in the tree.

It implements the part of the documented contract the storage tests touch (header view, validate,
iter_batches, assign_offsets, build_batch for uncompressed batches, records()). tests/log/conftest.py
installs it only when importing the real module fails, and says so in the pytest header.
"""
import struct

import crc32c as _crc

from pybroker.codec.errors import CorruptRecordError, InvalidRecordError

_HDR = struct.Struct(">qiibIhiqqqhii")


def _crc32c(data):
    return _crc.crc32c(bytes(data))


class RecordBatch:
    def __init__(self, buf, pos=0):
        mv = memoryview(buf).cast("B") if not isinstance(buf, memoryview) or buf.format != "B" else buf
        if len(mv) - pos < 61:
            raise CorruptRecordError("batch header does not fit", pos)
        (self.base_offset, self.batch_length, self.partition_leader_epoch, self.magic, self.crc,
         self.attributes, self.last_offset_delta, self.base_timestamp, self.max_timestamp,
         self.producer_id, self.producer_epoch, self.base_sequence, self.records_count) = _HDR.unpack_from(mv, pos)
        self.size = 12 + self.batch_length
        if self.batch_length < 49 or pos + self.size > len(mv):
            raise CorruptRecordError("declared batch length does not fit", pos)
        self.raw = mv[pos:pos + self.size]
        self.compression = self.attributes & 7
        self.timestamp_type = (self.attributes >> 3) & 1
        self.is_transactional = bool(self.attributes & 0x10)
        self.is_control = bool(self.attributes & 0x20)
        self.last_offset = self.base_offset + self.last_offset_delta
        self.next_offset = self.last_offset + 1

    def compute_crc(self):
        return _crc32c(self.raw[21:])

    def validate(self):
        if self.magic != 2:
            raise CorruptRecordError(f"magic {self.magic}", 16)
        if self.compute_crc() != self.crc:
            raise CorruptRecordError("crc mismatch", 17)
        if self.last_offset_delta + 1 != self.records_count:
            raise InvalidRecordError("count mismatch", 57)

    def records(self):
        from pybroker.codec._pure.buffer import Reader
        r = Reader(self.raw, 61)
        for _ in range(self.records_count):
            r.read_varint()
            r.read_int8()
            ts_delta = r.read_varlong()
            off_delta = r.read_varint()
            klen = r.read_varint()
            key = None if klen < 0 else r.read_bytes(klen)
            vlen = r.read_varint()
            value = None if vlen < 0 else r.read_bytes(vlen)
            for _h in range(r.read_varint()):
                r.read_bytes(r.read_varint())
                hl = r.read_varint()
                if hl >= 0:
                    r.read_bytes(hl)
            ts = self.max_timestamp if self.timestamp_type else self.base_timestamp + ts_delta
            yield _Record(self.base_offset + off_delta, ts, key, value)


class _Record:
    def __init__(self, offset, timestamp, key, value):
        self.offset, self.timestamp, self.key, self.value = offset, timestamp, key, value


def iter_batches(buf, pos=0, end=None):
    mv = memoryview(buf).cast("B")
    end = len(mv) if end is None else end
    while end - pos >= 61:
        length = struct.unpack_from(">i", mv, pos + 8)[0]
        if pos + 12 + length > end:
            return
        b = RecordBatch(mv[:end], pos)
        yield b
        pos += b.size


def assign_offsets(buf, pos, base_offset, partition_leader_epoch=-1, log_append_time=None):
    struct.pack_into(">q", buf, pos, base_offset)
    struct.pack_into(">i", buf, pos + 12, partition_leader_epoch)
    if log_append_time is not None:
        attrs = struct.unpack_from(">h", buf, pos + 21)[0] | 0x08
        struct.pack_into(">h", buf, pos + 21, attrs)
        struct.pack_into(">q", buf, pos + 35, log_append_time)
        length = struct.unpack_from(">i", buf, pos + 8)[0]
        struct.pack_into(">I", buf, pos + 17, _crc32c(memoryview(buf)[pos + 21:pos + 12 + length]))


def _varint(v):
    v = (v << 1) ^ (v >> 63)
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def build_batch(records, *, base_offset=0, compression=0, timestamp_type=0, producer_id=-1,
                producer_epoch=-1, base_sequence=-1, is_transactional=False,
                partition_leader_epoch=-1, base_timestamp=None):
    records = list(records)
    assert compression == 0
    if base_timestamp is None:
        base_timestamp = records[0][3] if records else -1
    body = bytearray()
    max_ts = base_timestamp
    for i, (key, value, headers, ts) in enumerate(records):
        max_ts = max(max_ts, ts)
        rec = bytearray(b"\x00") + _varint(ts - base_timestamp) + _varint(i)
        rec += _varint(-1) if key is None else _varint(len(key)) + key
        rec += _varint(-1) if value is None else _varint(len(value)) + value
        rec += _varint(len(headers or ()))
        for hk, hv in headers or ():
            hk = hk.encode()
            rec += _varint(len(hk)) + hk
            rec += _varint(-1) if hv is None else _varint(len(hv)) + hv
        body += _varint(len(rec)) + rec
    attrs = (timestamp_type << 3) | (0x10 if is_transactional else 0)
    tail = struct.pack(">hiqqqhii", attrs, len(records) - 1, base_timestamp, max_ts, producer_id,
                       producer_epoch, base_sequence, len(records)) + bytes(body)
    crc = _crc32c(tail)
    return struct.pack(">qiibI", base_offset, len(tail) + 9, partition_leader_epoch, 2, crc) + tail


COMPRESSION_NONE = 0
__all__ = ["RecordBatch", "iter_batches", "assign_offsets", "build_batch", "COMPRESSION_NONE"]
