# cython: freethreading_compatible = False
"""Record batches, magic v2 (compiled twin of pybroker/codec/_pure/records.py; same names, same
behaviour, same errors). Per-record and per-byte work lives here; compression is one call per
batch into pybroker.codec.compression.

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

Errors: batch framing (truncated header, batch length, magic, CRC, corrupt compressed data) raises
CorruptRecordError; malformed records in a CRC-valid batch, or a count that does not match its
offsets, raise InvalidRecordError; an unknown codec raises UnsupportedCompressionError.
"""
cimport cython
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.unicode cimport PyUnicode_AsUTF8AndSize, PyUnicode_DecodeUTF8
from libc.stdint cimport (INT32_MAX, INT64_MAX, INT64_MIN, int8_t, int16_t, int32_t, int64_t,
                          uint8_t, uint16_t, uint32_t, uint64_t)
from libc.string cimport memcpy, memset

from pybroker_core.buffer cimport Writer
from pybroker_core.crc32c cimport crc32c_update

import time

from pybroker.codec import compression as _compression
from pybroker.codec.errors import (CorruptRecordError, EncodeError,
                                   InvalidRecordError, UnsupportedCompressionError)

__all__ = ["RecordBatch", "Record", "iter_batches", "assign_offsets", "build_batch",
           "build_control_batch", "CONTROL_ABORT", "CONTROL_COMMIT", "COMPRESSION_NONE",
           "COMPRESSION_GZIP", "COMPRESSION_SNAPPY", "COMPRESSION_LZ4", "COMPRESSION_ZSTD",
           "HEADER_SIZE"]

COMPRESSION_NONE = 0
COMPRESSION_GZIP = 1
COMPRESSION_SNAPPY = 2
COMPRESSION_LZ4 = 3
COMPRESSION_ZSTD = 4
CONTROL_ABORT = 0
CONTROL_COMMIT = 1
HEADER_SIZE = 61

cdef enum:
    _HEADER_SIZE = 61
    _LOG_OVERHEAD = 12                  # base_offset + batch_length
    _MIN_BATCH_LENGTH = 49              # header bytes after batch_length
    _MIN_RECORD_SIZE = 7                # one byte each: length, attrs, ts, offset, key, value, headers
    _CRC_START = 21
    _MAGIC = 2
    _TIMESTAMP_TYPE_MASK = 0x08
    _TRANSACTIONAL_MASK = 0x10
    _CONTROL_MASK = 0x20
    _DELETE_HORIZON_MASK = 0x40
    _NOGIL_CRC_BYTES = 65536            # release the GIL for CRCs at least this long


# -- byte helpers (no bounds checks: callers have checked the span) ---------------------------

cdef inline uint16_t be16(const uint8_t* p) noexcept nogil:
    return (<uint16_t>p[0] << 8) | p[1]

cdef inline uint32_t be32(const uint8_t* p) noexcept nogil:
    return (<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16) | (<uint32_t>p[2] << 8) | p[3]

cdef inline uint64_t be64(const uint8_t* p) noexcept nogil:
    return (<uint64_t>be32(p) << 32) | be32(p + 4)

cdef inline void put16(uint8_t* p, uint16_t v) noexcept nogil:
    p[0] = <uint8_t>(v >> 8); p[1] = <uint8_t>v

cdef inline void put32(uint8_t* p, uint32_t v) noexcept nogil:
    p[0] = <uint8_t>(v >> 24); p[1] = <uint8_t>(v >> 16); p[2] = <uint8_t>(v >> 8); p[3] = <uint8_t>v

cdef inline void put64(uint8_t* p, uint64_t v) noexcept nogil:
    put32(p, <uint32_t>(v >> 32)); put32(p + 4, <uint32_t>v)

cdef inline int64_t wrap_add(int64_t a, int64_t b) noexcept nogil:
    """a + b with Java long wrap-around (no signed-overflow UB)."""
    return <int64_t>(<uint64_t>a + <uint64_t>b)

cdef inline uint64_t zigzag64(int64_t v) noexcept nogil:
    return (<uint64_t>v << 1) ^ <uint64_t>(v >> 63)

cdef inline uint64_t zigzag32(int32_t v) noexcept nogil:
    return <uint32_t>((<uint32_t>v << 1) ^ <uint32_t>(v >> 31))

cdef inline Py_ssize_t uvarint_size(uint64_t u) noexcept nogil:
    cdef Py_ssize_t n = 1
    while u >= 0x80:
        u >>= 7
        n += 1
    return n

cdef inline uint8_t* put_uvarint(uint8_t* q, uint64_t u) noexcept nogil:
    while u >= 0x80:
        q[0] = <uint8_t>((u & 0x7F) | 0x80)
        q += 1
        u >>= 7
    q[0] = <uint8_t>u
    return q + 1

cdef inline uint32_t crc_of(const uint8_t* p, Py_ssize_t n) noexcept:
    cdef uint32_t crc
    if n >= _NOGIL_CRC_BYTES:
        with nogil:
            crc = crc32c_update(0, p, <size_t>n)
        return crc
    return crc32c_update(0, p, <size_t>n)


cdef object _bytes_view(object buf):
    if isinstance(buf, memoryview) and (<memoryview>buf).format != "B":
        return (<memoryview>buf).cast("B")
    return buf


# -- records ----------------------------------------------------------------------------------

@cython.final
@cython.freelist(32)
cdef class Record:
    """One decoded record: key/value are bytes or None, headers a list of (str, bytes|None)."""
    cdef readonly int64_t offset
    cdef readonly int64_t timestamp
    cdef readonly object key
    cdef readonly object value
    cdef readonly list headers
    cdef readonly int8_t attributes
    cdef readonly int32_t offset_delta
    cdef readonly int64_t timestamp_delta

    def __repr__(self):
        return (f"Record(offset={self.offset}, timestamp={self.timestamp}, key={self.key!r}, "
                f"value={self.value!r}, headers={self.headers!r})")


# Record cursor: a bounds-checked reader over the records section, inlined for the per-record
# hot path. Its error reasons and positions are those of pybroker_core.buffer.Reader (the pure
# twin iterates with that Reader), so both implementations report identical errors.

cdef struct Cursor:
    const uint8_t* p          # start of the data (the batch buffer or the decompressed blob)
    Py_ssize_t pos
    Py_ssize_t end


cdef int _fail(str reason, Py_ssize_t at) except -1:
    raise InvalidRecordError(reason, at)


cdef inline int _need(Cursor* c, Py_ssize_t n) except -1:
    if n < 0 or n > c.end - c.pos:
        _fail(f"need {n} bytes, {c.end - c.pos} left", c.pos)
    return 0


cdef int _uvarint_slow(Cursor* c, uint32_t* out) except -1:
    cdef uint32_t value = 0
    cdef int shift = 0
    cdef uint8_t b
    cdef Py_ssize_t start = c.pos
    while True:
        if c.pos >= c.end:
            _fail("truncated varint", start)
        b = c.p[c.pos]
        c.pos += 1
        if shift == 28 and (b & 0xF0):
            _fail("varint longer than 5 bytes or over 32 bits", start)
        value |= <uint32_t>(b & 0x7F) << shift
        if not (b & 0x80):
            out[0] = value
            return 0
        shift += 7


cdef inline int _varint(Cursor* c, int32_t* out) except -1:
    """Zig-zag varint; one-byte values (the common case) take the inlined path."""
    cdef uint32_t u
    if c.pos < c.end and c.p[c.pos] < 0x80:
        u = c.p[c.pos]
        c.pos += 1
    else:
        _uvarint_slow(c, &u)
    out[0] = <int32_t>((u >> 1) ^ (-(<int32_t>(u & 1))))
    return 0


cdef int _varlong(Cursor* c, int64_t* out) except -1:
    cdef uint64_t value = 0
    cdef int shift = 0
    cdef uint8_t b
    cdef Py_ssize_t start = c.pos
    while True:
        if c.pos >= c.end:
            _fail("truncated varlong", start)
        b = c.p[c.pos]
        c.pos += 1
        if shift == 63 and (b & 0xFE):
            _fail("varlong longer than 10 bytes or over 64 bits", start)
        value |= <uint64_t>(b & 0x7F) << shift
        if not (b & 0x80):
            out[0] = <int64_t>((value >> 1) ^ (-(<int64_t>(value & 1))))
            return 0
        shift += 7


cdef object _nullable(Cursor* c, str what):
    """key_length varint (-1 = null) | bytes"""
    cdef Py_ssize_t at = c.pos
    cdef int32_t n
    _varint(c, &n)
    if n == -1:
        return None
    if n < -1:
        _fail(f"negative {what} length {n}", at)
    _need(c, n)
    c.pos += n
    return PyBytes_FromStringAndSize(<const char*>c.p + c.pos - n, n)


cdef list _headers(Cursor* c):
    """headers_count varint | [key_length varint (>= 0) | utf-8 key | nullable value]*"""
    cdef Py_ssize_t at = c.pos
    cdef int32_t count, i, klen
    _varint(c, &count)
    if count < 0:
        _fail(f"negative header count {count}", at)
    if count == 0:
        return []
    if <Py_ssize_t>count * 2 > c.end - c.pos or count > c.end - c.pos + 1:
        _fail(f"count {count} cannot fit in {c.end - c.pos} remaining bytes", c.pos)
    headers = []
    for i in range(count):
        at = c.pos
        _varint(c, &klen)
        if klen < 0:
            _fail(f"negative header key length {klen}", at)
        _need(c, klen)
        try:
            key = PyUnicode_DecodeUTF8(<const char*>c.p + c.pos, klen, NULL)
        except UnicodeDecodeError as exc:
            raise InvalidRecordError("invalid UTF-8 in string", c.pos) from exc
        c.pos += klen
        headers.append((key, _nullable(c, "header value")))
    return headers


@cython.final
cdef class _RecordIterator:
    """Iterates a batch's records out of `data` (the batch buffer, or the decompressed blob)."""
    cdef object data
    cdef const uint8_t[::1] mv
    cdef Cursor c
    cdef int32_t count
    cdef int32_t index
    cdef int64_t base_offset
    cdef int64_t base_timestamp
    cdef int64_t log_append_time
    cdef bint log_append
    cdef bint finished

    def __iter__(self):
        return self

    def __next__(self):
        if self.finished:
            raise StopIteration
        if self.index >= self.count:
            self.finished = True
            if self.c.pos != self.c.end:
                _fail(f"{self.c.end - self.c.pos} bytes after the last of {self.count} records",
                      self.c.pos)
            raise StopIteration
        self.finished = True                         # until this record parses
        if self.c.pos >= self.c.end:
            _fail(f"batch declares {self.count} records but holds {self.index}", self.c.pos)
        rec = self.read_record(&self.c)
        self.finished = False
        self.index += 1
        return rec

    cdef Record read_record(self, Cursor* c):
        cdef Py_ssize_t start = c.pos, body_start, batch_end = c.end
        cdef int32_t length
        cdef Record rec
        _varint(c, &length)
        body_start = c.pos
        if length < 0 or length > batch_end - body_start:
            _fail(f"record length {length} outside the {batch_end - body_start} bytes left "
                  f"in the batch", start)
        c.end = body_start + length                  # the record's fields must stay inside it
        rec = Record.__new__(Record)
        _need(c, 1)
        rec.attributes = <int8_t>c.p[c.pos]
        c.pos += 1
        _varlong(c, &rec.timestamp_delta)
        _varint(c, &rec.offset_delta)
        rec.key = _nullable(c, "key")
        rec.value = _nullable(c, "value")
        rec.headers = _headers(c)
        if c.pos != c.end:
            _fail(f"record declares {length} bytes but its fields take {c.pos - body_start}",
                  start)
        c.end = batch_end
        rec.offset = wrap_add(self.base_offset, rec.offset_delta)
        rec.timestamp = (self.log_append_time if self.log_append
                         else wrap_add(self.base_timestamp, rec.timestamp_delta))
        return rec


# -- the batch view ---------------------------------------------------------------------------

cdef int _check_batch_length(int32_t batch_length, Py_ssize_t avail, Py_ssize_t pos) except -1:
    if batch_length < _MIN_BATCH_LENGTH:
        raise CorruptRecordError(
            f"batch length {batch_length} below the {_MIN_BATCH_LENGTH}-byte minimum", pos + 8)
    if batch_length > avail - _LOG_OVERHEAD:
        raise CorruptRecordError(f"batch length {batch_length} past end of buffer "
                                 f"({avail - _LOG_OVERHEAD} bytes follow the length)", pos + 8)
    return 0


@cython.final
cdef class RecordBatch:
    """View of the v2 batch at buf[pos]: header fields only; records are decoded on demand."""
    cdef readonly object obj
    cdef const uint8_t[::1] mv
    cdef const uint8_t* p
    cdef readonly Py_ssize_t pos
    cdef readonly int64_t base_offset
    cdef readonly int32_t batch_length
    cdef readonly int32_t partition_leader_epoch
    cdef readonly int8_t magic
    cdef readonly uint32_t crc
    cdef readonly int16_t attributes
    cdef readonly int32_t last_offset_delta
    cdef readonly int64_t base_timestamp
    cdef readonly int64_t max_timestamp
    cdef readonly int64_t producer_id
    cdef readonly int16_t producer_epoch
    cdef readonly int32_t base_sequence
    cdef readonly int32_t records_count

    def __cinit__(self, object buf, Py_ssize_t pos=0):
        buf = _bytes_view(buf)
        self.mv = buf
        cdef Py_ssize_t avail = self.mv.shape[0] - pos
        if pos < 0 or avail < _HEADER_SIZE:
            raise CorruptRecordError(f"truncated batch header: need {_HEADER_SIZE} bytes, "
                                     f"{avail if avail > 0 else 0} left", pos)
        cdef const uint8_t* p = &self.mv[pos]
        self.obj, self.p, self.pos = buf, p, pos
        self.base_offset = <int64_t>be64(p)
        self.batch_length = <int32_t>be32(p + 8)
        self.partition_leader_epoch = <int32_t>be32(p + 12)
        self.magic = <int8_t>p[16]
        self.crc = be32(p + 17)
        self.attributes = <int16_t>be16(p + 21)
        self.last_offset_delta = <int32_t>be32(p + 23)
        self.base_timestamp = <int64_t>be64(p + 27)
        self.max_timestamp = <int64_t>be64(p + 35)
        self.producer_id = <int64_t>be64(p + 43)
        self.producer_epoch = <int16_t>be16(p + 51)
        self.base_sequence = <int32_t>be32(p + 53)
        self.records_count = <int32_t>be32(p + 57)
        _check_batch_length(self.batch_length, avail, pos)

    @property
    def size(self):
        return _LOG_OVERHEAD + <Py_ssize_t>self.batch_length

    @property
    def compression(self):
        return self.attributes & 0x07

    @property
    def timestamp_type(self):
        return (self.attributes & _TIMESTAMP_TYPE_MASK) >> 3

    @property
    def is_transactional(self):
        return bool(self.attributes & _TRANSACTIONAL_MASK)

    @property
    def is_control(self):
        return bool(self.attributes & _CONTROL_MASK)

    @property
    def has_delete_horizon(self):
        return bool(self.attributes & _DELETE_HORIZON_MASK)

    @property
    def last_offset(self):
        return wrap_add(self.base_offset, self.last_offset_delta)

    @property
    def next_offset(self):
        return wrap_add(wrap_add(self.base_offset, self.last_offset_delta), 1)

    @property
    def raw(self):
        return memoryview(self.obj)[self.pos:self.pos + _LOG_OVERHEAD + self.batch_length]

    cpdef uint32_t compute_crc(self) except? 0xffffffff:
        return crc_of(self.p + _CRC_START, _LOG_OVERHEAD + self.batch_length - _CRC_START)

    def validate(self):
        """Check magic, CRC, codec, count against offsets, control rules; header only."""
        cdef Py_ssize_t pos = self.pos
        cdef int32_t count = self.records_count
        cdef int codec = self.attributes & 0x07
        cdef uint32_t computed
        cdef Py_ssize_t payload = <Py_ssize_t>self.batch_length - _MIN_BATCH_LENGTH
        if self.magic != _MAGIC:
            raise CorruptRecordError(f"unsupported magic {self.magic} (only v2 batches)", pos + 16)
        computed = self.compute_crc()
        if computed != self.crc:
            raise CorruptRecordError(
                f"CRC mismatch: stored 0x{self.crc:08x}, computed 0x{computed:08x}", pos + 17)
        if codec > COMPRESSION_ZSTD:
            raise UnsupportedCompressionError(f"unknown compression codec {codec}", pos + _CRC_START)
        if count < 0:
            raise CorruptRecordError(f"negative record count {count}", pos + 57)
        if count and <int64_t>count != <int64_t>self.last_offset_delta + 1:
            raise InvalidRecordError(f"record count {count} does not match last offset delta "
                                     f"{self.last_offset_delta} + 1", pos + 57)
        if self.attributes & _CONTROL_MASK and count > 1:
            raise InvalidRecordError(f"control batch holds {count} records (at most 1)", pos + 57)
        if codec == COMPRESSION_NONE and count > payload // _MIN_RECORD_SIZE:
            raise CorruptRecordError(
                f"record count {count} cannot fit in {payload} bytes of records", pos + 57)

    def records(self, max_decompressed_size=None):
        """Iterator over the records; decompresses once (bounded) before returning."""
        cdef Py_ssize_t start = self.pos + _HEADER_SIZE
        cdef Py_ssize_t end = self.pos + _LOG_OVERHEAD + self.batch_length
        cdef int codec = self.attributes & 0x07
        cdef _RecordIterator it = _RecordIterator.__new__(_RecordIterator)
        if self.records_count < 0:
            raise CorruptRecordError(f"negative record count {self.records_count}", self.pos + 57)
        data = self.obj
        if codec:
            data = _compression.decompress(codec, memoryview(self.obj)[start:end],
                                           max_decompressed_size, start)
            start, end = 0, len(data)
        it.data = data
        it.mv = data
        it.c.p = &it.mv[0] if it.mv.shape[0] else NULL
        it.c.pos = start
        it.c.end = end
        it.count = self.records_count
        it.base_offset = self.base_offset
        it.base_timestamp = self.base_timestamp
        it.log_append = (self.attributes & _TIMESTAMP_TYPE_MASK) != 0
        it.log_append_time = self.max_timestamp
        return it

    def __repr__(self):
        return (f"RecordBatch(base_offset={self.base_offset}, count={self.records_count}, "
                f"size={self.size}, compression={self.compression})")


# -- batches in a buffer, offsets -------------------------------------------------------------

def iter_batches(buf, Py_ssize_t pos=0, end=None):
    """Yield a RecordBatch for each complete batch in buf[pos:end]; stop before a partial one."""
    buf = _bytes_view(buf)
    cdef const uint8_t[::1] mv = buf
    cdef Py_ssize_t n = mv.shape[0]
    cdef Py_ssize_t stop = n if end is None else <Py_ssize_t>end
    cdef int32_t batch_length
    if not (0 <= pos <= stop <= n):
        raise ValueError(f"window {pos}..{stop} outside buffer of {n} bytes")
    while stop - pos >= _LOG_OVERHEAD:
        batch_length = <int32_t>be32(&mv[pos + 8])
        if batch_length < _MIN_BATCH_LENGTH:
            _check_batch_length(batch_length, stop - pos, pos)
        if batch_length > stop - pos - _LOG_OVERHEAD:
            return
        yield RecordBatch(buf, pos)
        pos += _LOG_OVERHEAD + batch_length


def assign_offsets(buf, Py_ssize_t pos, base_offset, partition_leader_epoch=-1,
                   log_append_time=None):
    """Stamp base_offset and partition_leader_epoch in place (both outside the CRC). With
    log_append_time, also set MaxTimestamp and the LogAppendTime bit and rewrite the CRC: call
    validate() first, since the new CRC covers whatever bytes are there. Returns next offset."""
    cdef uint8_t[::1] mv
    cdef uint8_t* p
    cdef int64_t offset, append_time = 0
    cdef int32_t epoch
    buf = _bytes_view(buf)
    if memoryview(buf).readonly:
        raise TypeError("assign_offsets needs a writable buffer")
    cdef RecordBatch batch = RecordBatch(buf, pos)
    if batch.magic != _MAGIC:
        raise CorruptRecordError(f"unsupported magic {batch.magic} (only v2 batches)", pos + 16)
    try:
        offset = base_offset
        epoch = partition_leader_epoch
        if log_append_time is not None:
            append_time = log_append_time
    except OverflowError as exc:
        raise EncodeError(f"header field out of range: {exc}") from exc
    mv = buf
    p = &mv[pos]
    put64(p, <uint64_t>offset)
    put32(p + 12, <uint32_t>epoch)
    if log_append_time is not None:
        put64(p + 35, <uint64_t>append_time)
        put16(p + _CRC_START, <uint16_t>(batch.attributes | _TIMESTAMP_TYPE_MASK))
        put32(p + 17, crc_of(p + _CRC_START, batch.size - _CRC_START))
    return wrap_add(offset, <int64_t>batch.last_offset_delta + 1)


# -- building ---------------------------------------------------------------------------------

cdef struct Span:
    const char* p
    Py_ssize_t n              # -1 = null


cdef int _span_of(object obj, Span* s, Py_buffer* view, str what) except -1:
    """Point s at obj's bytes; returns 1 when `view` must be released."""
    if obj is None:
        s.n = -1
        return 0
    if type(obj) is bytes:
        s.p = PyBytes_AS_STRING(obj)
        s.n = PyBytes_GET_SIZE(obj)
        return 0
    if isinstance(obj, str):
        raise TypeError(f"record {what} must be bytes-like or None, not str")
    PyObject_GetBuffer(obj, view, PyBUF_SIMPLE)
    s.p = <const char*>view.buf
    s.n = view.len
    return 1


cdef inline int _check_int32(Py_ssize_t n, str what) except -1:
    if n > INT32_MAX:
        raise EncodeError(f"{what} of {n} bytes is too large for a record")
    return 0


cdef inline Py_ssize_t _span_size(Span* s) noexcept nogil:
    if s.n < 0:
        return 1
    return uvarint_size(zigzag32(<int32_t>s.n)) + s.n


cdef inline uint8_t* _put_span(uint8_t* q, Span* s) noexcept nogil:
    if s.n < 0:
        q[0] = 1                      # zig-zag(-1)
        return q + 1
    q = put_uvarint(q, zigzag32(<int32_t>s.n))
    if s.n:
        memcpy(q, s.p, s.n)
    return q + s.n


cdef int _put(Writer w, const void* p, Py_ssize_t n) except -1:
    w.grow(n)
    memcpy(w.buf + w.length, p, n)
    w.length += n
    return 0


cdef int _write_nullable(Writer w, object obj, str what) except -1:
    cdef Span s
    cdef Py_buffer view
    cdef int release = _span_of(obj, &s, &view, what)
    try:
        _check_int32(s.n, what)
        w.grow(5 + (s.n if s.n > 0 else 0))
        w.length = <char*>_put_span(<uint8_t*>w.buf + w.length, &s) - w.buf
    finally:
        if release:
            PyBuffer_Release(&view)
    return 0


cdef Py_ssize_t _encode_headers(Writer scratch, object headers) except -1:
    """Headers (without their count) into scratch; returns the count."""
    cdef const char* kp
    cdef Py_ssize_t klen, count = 0
    cdef Span ks
    cdef Py_buffer view
    cdef int release
    scratch.length = 0
    for key, value in headers:
        if key is None:
            raise TypeError("header key must be str or bytes-like, not None")
        if isinstance(key, str):
            kp = PyUnicode_AsUTF8AndSize(key, &klen)
            _check_int32(klen, "header key")
            scratch.write_varint(<int32_t>klen)
            _put(scratch, kp, klen)
        else:
            release = _span_of(key, &ks, &view, "header key")
            try:
                _check_int32(ks.n, "header key")
                scratch.write_varint(<int32_t>ks.n)
                _put(scratch, ks.p, ks.n)
            finally:
                if release:
                    PyBuffer_Release(&view)
        _write_nullable(scratch, value, "header value")
        count += 1
    return count


cdef int _write_record(Writer w, Writer scratch, int32_t offset_delta, int64_t ts_delta,
                       object key, object value, object headers) except -1:
    cdef Span ks, vs
    cdef Py_buffer kview, vview
    cdef int krelease = 0, vrelease = 0
    cdef Py_ssize_t hcount = 0, size
    cdef uint8_t* q
    if headers:
        hcount = _encode_headers(scratch, headers)
    else:
        scratch.length = 0
    krelease = _span_of(key, &ks, &kview, "key")
    try:
        vrelease = _span_of(value, &vs, &vview, "value")
        _check_int32(ks.n, "key")
        _check_int32(vs.n, "value")
        size = (1 + uvarint_size(zigzag64(ts_delta)) + uvarint_size(zigzag32(offset_delta))
                + _span_size(&ks) + _span_size(&vs)
                + uvarint_size(zigzag32(<int32_t>hcount)) + scratch.length)
        _check_int32(size, "record")
        w.grow(5 + size)
        q = <uint8_t*>w.buf + w.length
        q = put_uvarint(q, zigzag32(<int32_t>size))
        q[0] = 0                                     # record attributes (unused)
        q = put_uvarint(q + 1, zigzag64(ts_delta))
        q = put_uvarint(q, zigzag32(offset_delta))
        q = _put_span(q, &ks)
        q = _put_span(q, &vs)
        q = put_uvarint(q, zigzag32(<int32_t>hcount))
        if scratch.length:
            memcpy(q, scratch.buf, scratch.length)
            q += scratch.length
        w.length = <char*>q - w.buf
    finally:
        if krelease:
            PyBuffer_Release(&kview)
        if vrelease:
            PyBuffer_Release(&vview)
    return 0


cdef int64_t _as_int64(object v, str what) except? -1:
    try:
        return v
    except OverflowError as exc:
        raise EncodeError(f"{what} {v} out of range") from exc


cdef int64_t _timestamp_delta(object ts, int64_t base) except? -1:
    cdef int64_t t
    try:
        t = ts
    except OverflowError as exc:
        raise EncodeError(f"timestamp {ts} out of range relative to base timestamp {base}") from exc
    if (base > 0 and t < INT64_MIN + base) or (base < 0 and t > INT64_MAX + base):
        raise EncodeError(f"timestamp {ts} out of range relative to base timestamp {base}")
    return t - base


cdef int _write_header(uint8_t* p, Py_ssize_t total, object base_offset,
                       object partition_leader_epoch, int16_t attributes, int32_t count,
                       int64_t base_timestamp, int64_t max_ts, object producer_id,
                       object producer_epoch, object base_sequence) except -1:
    cdef int64_t offset, pid
    cdef int32_t epoch, seq
    cdef int16_t pepoch
    try:
        offset, epoch, pid, pepoch, seq = (base_offset, partition_leader_epoch, producer_id,
                                           producer_epoch, base_sequence)
    except OverflowError as exc:
        raise EncodeError(f"header field out of range: {exc}") from exc
    put64(p, <uint64_t>offset)
    put32(p + 8, <uint32_t>(total - _LOG_OVERHEAD))
    put32(p + 12, <uint32_t>epoch)
    p[16] = _MAGIC
    put16(p + 21, <uint16_t>attributes)
    put32(p + 23, <uint32_t>(count - 1))
    put64(p + 27, <uint64_t>base_timestamp)
    put64(p + 35, <uint64_t>max_ts)
    put64(p + 43, <uint64_t>pid)
    put16(p + 51, <uint16_t>pepoch)
    put32(p + 53, <uint32_t>seq)
    put32(p + 57, <uint32_t>count)
    put32(p + 17, crc_of(p + _CRC_START, total - _CRC_START))
    return 0


cdef bytes _build(object records, object base_offset, object compression, int16_t attributes,
                  object producer_id, object producer_epoch, object base_sequence,
                  object partition_leader_epoch, object base_timestamp):
    cdef Writer w = Writer(16384)
    cdef Writer scratch = Writer(256)
    cdef int64_t base_ts = 0, max_ts = -1, t, delta
    cdef bint have_base = base_timestamp is not None
    cdef int32_t count = 0
    cdef bytes out
    cdef int codec
    if compression not in _compression.CODEC_NAMES:
        raise UnsupportedCompressionError(f"unknown compression codec {compression}")
    codec = compression
    if have_base:
        base_ts = _as_int64(base_timestamp, "base timestamp")
    if codec == COMPRESSION_NONE:
        w.grow(_HEADER_SIZE)
        memset(w.buf, 0, _HEADER_SIZE)
        w.length = _HEADER_SIZE
    now = None
    for key, value, headers, ts in records:
        if ts is None:
            if now is None:
                now = time.time_ns() // 1_000_000
            ts = now
        if not have_base:
            base_ts = _as_int64(ts, "timestamp")
            have_base = True
        delta = _timestamp_delta(ts, base_ts)
        t = base_ts + delta
        _write_record(w, scratch, count, delta, key, value, headers)
        if t > max_ts:
            max_ts = t
        count += 1
    if count == 0:
        raise EncodeError("a record batch needs at least one record")
    if codec == COMPRESSION_NONE:
        _write_header(<uint8_t*>w.buf, w.length, base_offset, partition_leader_epoch,
                      attributes, count, base_ts, max_ts, producer_id, producer_epoch,
                      base_sequence)
        return w.getvalue()
    body = w.getvalue()
    w = None                                         # free the writer before the codec runs
    blob = _compression.compress(codec, body)
    body = None
    cdef const uint8_t[::1] cmv = blob
    cdef Py_ssize_t total = _HEADER_SIZE + cmv.shape[0]
    out = PyBytes_FromStringAndSize(NULL, total)
    cdef uint8_t* q = <uint8_t*>PyBytes_AS_STRING(out)
    memset(q, 0, _HEADER_SIZE)
    if cmv.shape[0]:
        memcpy(q + _HEADER_SIZE, &cmv[0], cmv.shape[0])
    _write_header(q, total, base_offset, partition_leader_epoch, attributes | codec, count,
                  base_ts, max_ts, producer_id, producer_epoch, base_sequence)
    return out


def build_batch(records, *, base_offset=0, compression=0, timestamp_type=0, producer_id=-1,
                producer_epoch=-1, base_sequence=-1, is_transactional=False,
                partition_leader_epoch=-1, base_timestamp=None):
    """Build one v2 batch from (key, value, headers, timestamp) tuples; timestamp None = now (ms).
    Offset deltas are 0..n-1; base_timestamp defaults to the first record's timestamp."""
    if timestamp_type not in (0, 1):
        raise EncodeError(f"timestamp type {timestamp_type} is not 0 (create) or 1 (log append)")
    cdef int16_t attributes = (timestamp_type << 3) | (_TRANSACTIONAL_MASK if is_transactional else 0)
    return _build(records, base_offset, compression, attributes, producer_id, producer_epoch,
                  base_sequence, partition_leader_epoch, base_timestamp)


def build_control_batch(control_type, *, producer_id, producer_epoch, coordinator_epoch=0,
                        base_offset=0, timestamp=None, partition_leader_epoch=-1):
    """A transaction marker: one control record, key = version 0 + type (ABORT 0 / COMMIT 1),
    value = version 0 + coordinator epoch; attributes transactional | control."""
    cdef uint8_t key[4]
    cdef uint8_t value[6]
    cdef int32_t epoch
    if control_type not in (CONTROL_ABORT, CONTROL_COMMIT):
        raise EncodeError(f"control type {control_type} is not ABORT (0) or COMMIT (1)")
    try:
        epoch = coordinator_epoch
    except OverflowError as exc:
        raise EncodeError(f"coordinator epoch out of range: {exc}") from exc
    put16(key, 0)
    put16(key + 2, <uint16_t>(<int>control_type))
    put16(value, 0)
    put32(value + 2, <uint32_t>epoch)
    records = [(PyBytes_FromStringAndSize(<char*>key, 4),
                PyBytes_FromStringAndSize(<char*>value, 6), None, timestamp)]
    return _build(records, base_offset, COMPRESSION_NONE, _TRANSACTIONAL_MASK | _CONTROL_MASK,
                  producer_id, producer_epoch, -1, partition_leader_epoch, None)
