"""Pure-Python twin of pybroker_core.records: record batches, magic v2 (the readable spec).

Batch header (61 bytes, big-endian; Kafka's DefaultRecordBatch):

    0 base_offset i64 | 8 batch_length i32 | 12 partition_leader_epoch i32 | 16 magic i8 (=2)
    17 crc u32 (CRC-32C of bytes 21..end) | 21 attributes i16 | 23 last_offset_delta i32
    27 base_timestamp i64 | 35 max_timestamp i64 | 43 producer_id i64 | 51 producer_epoch i16
    53 base_sequence i32 | 57 records_count i32 | 61 records (one compressed blob if compressed)

    attributes: bits 0-2 compression, 3 timestamp type (1 = LogAppendTime), 4 transactional,
                5 control, 6 delete horizon present

Record (Kafka's DefaultRecord; varints are zig-zag base-128):

    length varint | attributes i8 | timestamp_delta varlong | offset_delta varint
    | key_length varint (-1 = null) | key | value_length varint (-1 = null) | value
    | headers_count varint | headers: key_length varint (>= 0) | key utf-8
                                     | value_length varint (-1 = null) | value

Errors: the batch framing (truncated header, batch length, magic, CRC, corrupt compressed data)
raises CorruptRecordError; a CRC-valid batch whose records are malformed, or whose count does not
match its offsets, raises InvalidRecordError (Kafka's InvalidRecordException); an unknown codec
raises UnsupportedCompressionError. Every error carries the byte position and a reason.
"""
import struct
import time

from pybroker.codec import compression
from pybroker.codec import crc32c as _crc32c        # the fastest CRC the switch allows
from pybroker.codec._pure.buffer import Reader, Writer
from pybroker.codec.errors import (CorruptRecordError, DecodeError, EncodeError,
                                   InvalidRecordError, UnsupportedCompressionError)

__all__ = ["RecordBatch", "Record", "iter_batches", "assign_offsets", "build_batch",
           "build_control_batch", "CONTROL_ABORT", "CONTROL_COMMIT", "COMPRESSION_NONE",
           "COMPRESSION_GZIP", "COMPRESSION_SNAPPY", "COMPRESSION_LZ4", "COMPRESSION_ZSTD",
           "HEADER_SIZE"]

COMPRESSION_NONE, COMPRESSION_GZIP, COMPRESSION_SNAPPY, COMPRESSION_LZ4, COMPRESSION_ZSTD = range(5)
CONTROL_ABORT = 0
CONTROL_COMMIT = 1

HEADER_SIZE = 61
LOG_OVERHEAD = 12                 # base_offset + batch_length
MIN_BATCH_LENGTH = HEADER_SIZE - LOG_OVERHEAD
MIN_RECORD_SIZE = 7               # one byte each: length, attrs, ts, offset, key, value, headers
CRC_START = 21
MAGIC = 2
TIMESTAMP_TYPE_MASK = 0x08
TRANSACTIONAL_MASK = 0x10
CONTROL_MASK = 0x20
DELETE_HORIZON_MASK = 0x40

_HEADER = struct.Struct(">qiibIhiqqqhii")
_I16, _I32, _U32, _I64 = (struct.Struct(f">{c}") for c in "hiIq")
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1


def _wrap64(v):
    """Two's-complement int64 wrap-around (Java long arithmetic)."""
    return v if _INT64_MIN <= v <= _INT64_MAX else ((v + (1 << 63)) % (1 << 64)) - (1 << 63)


def _as_bytes_view(buf):
    mv = memoryview(buf)
    return mv if mv.format == "B" and mv.ndim == 1 else mv.cast("B")


class Record:
    """One decoded record: key/value are bytes or None, headers a list of (str, bytes|None)."""

    __slots__ = ("offset", "timestamp", "key", "value", "headers", "attributes",
                 "offset_delta", "timestamp_delta")

    def __repr__(self):
        return (f"Record(offset={self.offset}, timestamp={self.timestamp}, key={self.key!r}, "
                f"value={self.value!r}, headers={self.headers!r})")


class RecordBatch:
    """View of the v2 batch at buf[pos]: header fields only; records are decoded on demand."""

    __slots__ = ("obj", "mv", "pos", "base_offset", "batch_length", "partition_leader_epoch",
                 "magic", "crc", "attributes", "last_offset_delta", "base_timestamp",
                 "max_timestamp", "producer_id", "producer_epoch", "base_sequence",
                 "records_count")

    def __init__(self, buf, pos=0):
        mv = _as_bytes_view(buf)
        avail = len(mv) - pos
        if pos < 0 or avail < HEADER_SIZE:
            raise CorruptRecordError(
                f"truncated batch header: need {HEADER_SIZE} bytes, {max(avail, 0)} left", pos)
        (self.base_offset, self.batch_length, self.partition_leader_epoch, self.magic, self.crc,
         self.attributes, self.last_offset_delta, self.base_timestamp, self.max_timestamp,
         self.producer_id, self.producer_epoch, self.base_sequence,
         self.records_count) = _HEADER.unpack_from(mv, pos)
        _check_batch_length(self.batch_length, avail, pos)
        self.obj, self.mv, self.pos = buf, mv, pos

    size = property(lambda self: LOG_OVERHEAD + self.batch_length)
    compression = property(lambda self: self.attributes & 0x07)
    timestamp_type = property(lambda self: (self.attributes & TIMESTAMP_TYPE_MASK) >> 3)
    is_transactional = property(lambda self: bool(self.attributes & TRANSACTIONAL_MASK))
    is_control = property(lambda self: bool(self.attributes & CONTROL_MASK))
    has_delete_horizon = property(lambda self: bool(self.attributes & DELETE_HORIZON_MASK))
    last_offset = property(lambda self: _wrap64(self.base_offset + self.last_offset_delta))
    next_offset = property(lambda self: _wrap64(self.last_offset + 1))

    @property
    def raw(self):
        return self.mv[self.pos:self.pos + self.size]

    def compute_crc(self):
        return _crc32c(self.mv[self.pos + CRC_START:self.pos + self.size])

    def validate(self):
        """Check magic, CRC, codec, count against offsets, control rules; header only."""
        pos, count = self.pos, self.records_count
        if self.magic != MAGIC:
            raise CorruptRecordError(f"unsupported magic {self.magic} (only v2 batches)", pos + 16)
        computed = self.compute_crc()
        if computed != self.crc:
            raise CorruptRecordError(
                f"CRC mismatch: stored 0x{self.crc:08x}, computed 0x{computed:08x}", pos + 17)
        if self.compression > COMPRESSION_ZSTD:
            raise UnsupportedCompressionError(
                f"unknown compression codec {self.compression}", pos + CRC_START)
        if count < 0:
            raise CorruptRecordError(f"negative record count {count}", pos + 57)
        if count and count != self.last_offset_delta + 1:
            raise InvalidRecordError(f"record count {count} does not match last offset delta "
                                     f"{self.last_offset_delta} + 1", pos + 57)
        if self.is_control and count > 1:
            raise InvalidRecordError(f"control batch holds {count} records (at most 1)", pos + 57)
        payload = self.batch_length - MIN_BATCH_LENGTH
        if self.compression == COMPRESSION_NONE and count > payload // MIN_RECORD_SIZE:
            raise CorruptRecordError(
                f"record count {count} cannot fit in {payload} bytes of records", pos + 57)

    def records(self, max_decompressed_size=None):
        """Iterator over the records; decompresses once (bounded) before returning."""
        count, start, end = self.records_count, self.pos + HEADER_SIZE, self.pos + self.size
        if count < 0:
            raise CorruptRecordError(f"negative record count {count}", self.pos + 57)
        data = self.mv
        if self.compression:
            data = compression.decompress(self.compression, self.mv[start:end],
                                          max_decompressed_size, start)
            start, end = 0, len(data)
        ts = self.max_timestamp if self.attributes & TIMESTAMP_TYPE_MASK else None
        return _iter_records(Reader(data, start, end), count, self.base_offset,
                             self.base_timestamp, ts)

    def __repr__(self):
        return (f"RecordBatch(base_offset={self.base_offset}, count={self.records_count}, "
                f"size={self.size}, compression={self.compression})")


def _check_batch_length(batch_length, avail, pos):
    if batch_length < MIN_BATCH_LENGTH:
        raise CorruptRecordError(
            f"batch length {batch_length} below the {MIN_BATCH_LENGTH}-byte minimum", pos + 8)
    if batch_length > avail - LOG_OVERHEAD:
        raise CorruptRecordError(f"batch length {batch_length} past end of buffer "
                                 f"({avail - LOG_OVERHEAD} bytes follow the length)", pos + 8)


# -- record iteration -------------------------------------------------------------------------

def _iter_records(r, count, base_offset, base_timestamp, log_append_time):
    end = r.end
    try:
        for i in range(count):
            if r.pos >= end:
                raise InvalidRecordError(f"batch declares {count} records but holds {i}", r.pos)
            yield _read_record(r, end, base_offset, base_timestamp, log_append_time)
    except DecodeError as exc:
        if type(exc) is DecodeError:
            raise InvalidRecordError(exc.reason, exc.position) from exc
        raise
    if r.pos != end:
        raise InvalidRecordError(f"{end - r.pos} bytes after the last of {count} records", r.pos)


def _read_record(r, end, base_offset, base_timestamp, log_append_time):
    start = r.pos
    length = r.read_varint()
    if length < 0 or length > end - r.pos:
        raise InvalidRecordError(
            f"record length {length} outside the {end - r.pos} bytes left in the batch", start)
    body_start = r.pos
    r.end = record_end = body_start + length
    rec = Record()
    rec.attributes = r.read_int8()
    rec.timestamp_delta = r.read_varlong()
    rec.offset_delta = r.read_varint()
    rec.key = _read_nullable(r, "key")
    rec.value = _read_nullable(r, "value")
    rec.headers = _read_headers(r)
    if r.pos != record_end:
        raise InvalidRecordError(
            f"record declares {length} bytes but its fields take {r.pos - body_start}", start)
    r.end = end
    rec.offset = _wrap64(base_offset + rec.offset_delta)
    rec.timestamp = (log_append_time if log_append_time is not None
                     else _wrap64(base_timestamp + rec.timestamp_delta))
    return rec


def _read_nullable(r, what):
    at = r.pos
    n = r.read_varint()
    if n == -1:
        return None
    if n < -1:
        raise InvalidRecordError(f"negative {what} length {n}", at)
    return r.read_bytes(n)


def _read_headers(r):
    at = r.pos
    count = r.read_varint()
    if count < 0:
        raise InvalidRecordError(f"negative header count {count}", at)
    r.check_count(count, 2)
    headers = []
    for _ in range(count):
        at = r.pos
        klen = r.read_varint()
        if klen < 0:
            raise InvalidRecordError(f"negative header key length {klen}", at)
        key = r.read_str(klen)
        headers.append((key, _read_nullable(r, "header value")))
    return headers


# -- batches in a buffer, offsets -------------------------------------------------------------

def iter_batches(buf, pos=0, end=None):
    """Yield a RecordBatch for each complete batch in buf[pos:end]; stop before a partial one."""
    mv = _as_bytes_view(buf)
    end = len(mv) if end is None else end
    if not 0 <= pos <= end <= len(mv):
        raise ValueError(f"window {pos}..{end} outside buffer of {len(mv)} bytes")
    while end - pos >= LOG_OVERHEAD:
        (batch_length,) = _I32.unpack_from(mv, pos + 8)
        if batch_length < MIN_BATCH_LENGTH:
            _check_batch_length(batch_length, end - pos, pos)
        if batch_length > end - pos - LOG_OVERHEAD:
            return
        batch = RecordBatch(buf, pos)
        yield batch
        pos += LOG_OVERHEAD + batch_length


def assign_offsets(buf, pos, base_offset, partition_leader_epoch=-1, log_append_time=None):
    """Stamp base_offset and partition_leader_epoch in place (both outside the CRC). With
    log_append_time, also set MaxTimestamp and the LogAppendTime bit and rewrite the CRC: call
    validate() first, since the new CRC covers whatever bytes are there. Returns next offset."""
    mv = _as_bytes_view(buf)
    if mv.readonly:
        raise TypeError("assign_offsets needs a writable buffer")
    batch = RecordBatch(mv, pos)
    if batch.magic != MAGIC:
        raise CorruptRecordError(f"unsupported magic {batch.magic} (only v2 batches)", pos + 16)
    try:                                        # convert everything before writing anything
        offset_bytes = _I64.pack(base_offset)
        epoch_bytes = _I32.pack(partition_leader_epoch)
        append_bytes = None if log_append_time is None else _I64.pack(log_append_time)
    except struct.error as exc:
        raise EncodeError(f"header field out of range: {exc}") from exc
    mv[pos:pos + 8] = offset_bytes
    mv[pos + 12:pos + 16] = epoch_bytes
    if append_bytes is not None:
        mv[pos + 35:pos + 43] = append_bytes
        _I16.pack_into(mv, pos + CRC_START, batch.attributes | TIMESTAMP_TYPE_MASK)
        _U32.pack_into(mv, pos + 17, _crc32c(mv[pos + CRC_START:pos + batch.size]))
    return _wrap64(base_offset + batch.last_offset_delta + 1)


# -- building ---------------------------------------------------------------------------------

def _payload(obj, what):
    if isinstance(obj, str):
        raise TypeError(f"record {what} must be bytes-like or None, not str")
    return memoryview(obj)


def _write_nullable(w, obj, what):
    if obj is None:
        w.write_varint(-1)
        return
    mv = _payload(obj, what)
    _check_int32(mv.nbytes, what)
    w.write_varint(mv.nbytes)
    w.write(mv)


def _check_int32(n, what):
    if n > 0x7FFFFFFF:
        raise EncodeError(f"{what} of {n} bytes is too large for a record")


def _write_headers(w, headers):
    headers = headers or ()
    w.write_varint(len(headers))
    for key, value in headers:
        if key is None:
            raise TypeError("header key must be str or bytes-like, not None")
        raw = key.encode("utf-8") if isinstance(key, str) else bytes(memoryview(key))
        _check_int32(len(raw), "header key")
        w.write_varint(len(raw))
        w.write(raw)
        _write_nullable(w, value, "header value")


def _write_record(w, offset_delta, timestamp_delta, key, value, headers):
    body = Writer()
    body.write_int8(0)
    body.write_varlong(timestamp_delta)
    body.write_varint(offset_delta)
    _write_nullable(body, key, "key")
    _write_nullable(body, value, "value")
    _write_headers(body, headers)
    _check_int32(len(body.buf), "record")
    w.write_varint(len(body.buf))
    w.write(body.buf)


def _timestamp_delta(ts, base):
    delta = ts - base
    if not (_INT64_MIN <= ts <= _INT64_MAX and _INT64_MIN <= delta <= _INT64_MAX):
        raise EncodeError(f"timestamp {ts} out of range relative to base timestamp {base}")
    return delta


def _check_int64(v, what):
    if not _INT64_MIN <= v <= _INT64_MAX:
        raise EncodeError(f"{what} {v} out of range")
    return v


def _build(records, base_offset, compression_codec, attributes, producer_id, producer_epoch,
           base_sequence, partition_leader_epoch, base_timestamp):
    if compression_codec not in compression.CODEC_NAMES:
        raise UnsupportedCompressionError(f"unknown compression codec {compression_codec}")
    body = Writer()
    now = None
    max_ts = -1
    count = 0
    for key, value, headers, ts in records:
        if ts is None:
            now = time.time_ns() // 1_000_000 if now is None else now
            ts = now
        if base_timestamp is None:
            base_timestamp = _check_int64(ts, "timestamp")
        _write_record(body, count, _timestamp_delta(ts, base_timestamp), key, value, headers)
        max_ts = max(max_ts, ts)
        count += 1
    if count == 0:
        raise EncodeError("a record batch needs at least one record")
    payload = compression.compress(compression_codec, body.buf) if compression_codec else body.buf
    try:
        head = _HEADER.pack(base_offset, MIN_BATCH_LENGTH + len(payload), partition_leader_epoch,
                            MAGIC, 0, attributes | compression_codec, count - 1, base_timestamp,
                            max_ts, producer_id, producer_epoch, base_sequence, count)
    except struct.error as exc:
        raise EncodeError(f"header field out of range: {exc}") from exc
    out = bytearray(head)
    out += payload
    _U32.pack_into(out, 17, _crc32c(memoryview(out)[CRC_START:]))
    return bytes(out)


def build_batch(records, *, base_offset=0, compression=0, timestamp_type=0, producer_id=-1,
                producer_epoch=-1, base_sequence=-1, is_transactional=False,
                partition_leader_epoch=-1, base_timestamp=None):
    """Build one v2 batch from (key, value, headers, timestamp) tuples; timestamp None = now (ms).
    Offset deltas are 0..n-1; base_timestamp defaults to the first record's timestamp."""
    if timestamp_type not in (0, 1):
        raise EncodeError(f"timestamp type {timestamp_type} is not 0 (create) or 1 (log append)")
    attributes = (timestamp_type << 3) | (TRANSACTIONAL_MASK if is_transactional else 0)
    return _build(records, base_offset, compression, attributes, producer_id, producer_epoch,
                  base_sequence, partition_leader_epoch, base_timestamp)


def build_control_batch(control_type, *, producer_id, producer_epoch, coordinator_epoch=0,
                        base_offset=0, timestamp=None, partition_leader_epoch=-1):
    """A transaction marker: one control record, key = version 0 + type (ABORT 0 / COMMIT 1),
    value = version 0 + coordinator epoch; attributes transactional | control."""
    if control_type not in (CONTROL_ABORT, CONTROL_COMMIT):
        raise EncodeError(f"control type {control_type} is not ABORT (0) or COMMIT (1)")
    try:
        key = struct.pack(">hh", 0, control_type)
        value = struct.pack(">hi", 0, coordinator_epoch)
    except struct.error as exc:
        raise EncodeError(f"coordinator epoch out of range: {exc}") from exc
    return _build([(key, value, None, timestamp)], base_offset, COMPRESSION_NONE,
                  TRANSACTIONAL_MASK | CONTROL_MASK, producer_id, producer_epoch, -1,
                  partition_leader_epoch, None)
