# cython: freethreading_compatible = False
"""Per-record checks of a produced batch (compiled twin of pybroker/codec/_pure/validator.py):
the record loop of Kafka's LogValidator. Python (pybroker/log/validator.py) decides which rules
apply to a topic and turns the findings into error codes; this walks the records once.

    scan_records(data, start, end, count, base_timestamp, *, require_key, min_timestamp,
                 max_timestamp, max_record_size, check_offsets) -> [(index, kind, detail)]

`data[start:end]` is a batch's records section (the decompressed blob for a compressed batch):

    length varint | attributes i8 | timestamp_delta varlong | offset_delta varint
    | key_length varint (-1 = null) | key | value_length varint | value | headers_count varint
    | headers: key_length varint | key | value_length varint | value

Findings, in record order, at most one per record (the first rule it breaks):
    KIND_NO_KEY        a null key where one is required (compacted topic)       detail: -1
    KIND_TIMESTAMP     base_timestamp + delta outside [min_timestamp, max_timestamp]; a record
                       timestamp of -1 (none) is exempt, as in Kafka           detail: timestamp
    KIND_TOO_LARGE     record body longer than max_record_size                  detail: length
    KIND_OFFSET        offset delta != record index (check_offsets)             detail: delta
A malformed record, or a count that does not match the records, raises InvalidRecordError with
the position in `data`. The loop runs without the GIL.
"""
cimport cython
from libc.stdint cimport INT64_MIN, int32_t, int64_t, uint8_t, uint32_t, uint64_t

from pybroker.codec.errors import InvalidRecordError

__all__ = ["scan_records", "KIND_NO_KEY", "KIND_TIMESTAMP", "KIND_TOO_LARGE", "KIND_OFFSET"]

cdef enum:
    K_NO_KEY = 0
    K_TIMESTAMP = 1
    K_TOO_LARGE = 2
    K_OFFSET = 3

KIND_NO_KEY = K_NO_KEY
KIND_TIMESTAMP = K_TIMESTAMP
KIND_TOO_LARGE = K_TOO_LARGE
KIND_OFFSET = K_OFFSET
DEF MAX_FINDINGS = 1024

cdef enum:
    OK = 0
    E_VARINT = 1
    E_LENGTH = 2
    E_FIELD = 3
    E_TRAILING = 4
    E_COUNT = 5
    E_NEG = 6

_REASONS = {E_VARINT: "truncated or over-long varint", E_LENGTH: "record length outside its batch",
            E_FIELD: "record field runs past the record's declared length",
            E_TRAILING: "record fields do not fill its declared length",
            E_COUNT: "record count does not match the records in the batch",
            E_NEG: "negative length"}


cdef struct Cur:
    const uint8_t* p
    Py_ssize_t pos
    Py_ssize_t end
    Py_ssize_t err


cdef struct Finding:
    int32_t index
    int32_t kind
    int64_t detail


cdef inline int uvarint(Cur* c, uint64_t* out, int max_bytes) noexcept nogil:
    cdef uint64_t v = 0
    cdef int shift = 0, n = 0
    cdef uint8_t b
    cdef Py_ssize_t at = c.pos
    while True:
        if c.pos >= c.end or n == max_bytes:
            c.err = at
            return E_VARINT
        b = c.p[c.pos]
        c.pos += 1
        n += 1
        v |= (<uint64_t>(b & 0x7F)) << shift
        if not (b & 0x80):
            out[0] = v
            return OK
        shift += 7


cdef inline int varint(Cur* c, int32_t* out) noexcept nogil:
    cdef uint64_t u
    cdef Py_ssize_t at = c.pos
    if uvarint(c, &u, 5) != OK or u > 0xFFFFFFFFULL:
        c.err = at
        return E_VARINT
    out[0] = <int32_t>((<uint32_t>u >> 1) ^ (-(<int32_t>(u & 1))))
    return OK


cdef inline int varlong(Cur* c, int64_t* out) noexcept nogil:
    cdef uint64_t u
    if uvarint(c, &u, 10) != OK:
        return E_VARINT
    out[0] = <int64_t>((u >> 1) ^ (-(<int64_t>(u & 1))))
    return OK


cdef inline int skip(Cur* c, int32_t n, bint nullable) noexcept nogil:
    if n < 0:
        if nullable and n == -1:
            return OK
        c.err = c.pos
        return E_NEG
    if n > c.end - c.pos:
        c.err = c.pos
        return E_FIELD
    c.pos += n
    return OK


cdef int fields(Cur* c, int64_t* ts_delta, int32_t* offset_delta, int32_t* key_len) noexcept nogil:
    cdef int32_t n, count, i
    cdef int rc
    if c.pos >= c.end:
        c.err = c.pos
        return E_FIELD
    c.pos += 1
    rc = varlong(c, ts_delta)
    if rc:
        return rc
    rc = varint(c, offset_delta)
    if rc:
        return rc
    rc = varint(c, key_len)
    if rc:
        return rc
    rc = skip(c, key_len[0], True)
    if rc:
        return rc
    rc = varint(c, &n)
    if rc:
        return rc
    rc = skip(c, n, True)
    if rc:
        return rc
    rc = varint(c, &count)
    if rc:
        return rc
    if count < 0:
        c.err = c.pos
        return E_NEG
    for i in range(count):
        rc = varint(c, &n)
        if rc:
            return rc
        rc = skip(c, n, False)
        if rc:
            return rc
        rc = varint(c, &n)
        if rc:
            return rc
        rc = skip(c, n, True)
        if rc:
            return rc
    return OK


cdef int walk(Cur* c, int32_t count, int64_t base_ts, bint require_key, int64_t min_ts,
              int64_t max_ts, int64_t max_size, bint check_offsets, Finding* found,
              int32_t* n_found) noexcept nogil:
    cdef int32_t i, length, offset_delta, key_len
    cdef int64_t ts_delta, ts
    cdef Py_ssize_t start, outer = c.end, rend
    cdef int rc
    cdef int32_t kind
    cdef int64_t detail
    for i in range(count):
        if c.pos >= outer:
            c.err = c.pos
            return E_COUNT
        start = c.pos
        rc = varint(c, &length)
        if rc:
            return rc
        if length < 0 or length > outer - c.pos:
            c.err = start
            return E_LENGTH
        rend = c.pos + length
        c.end = rend
        rc = fields(c, &ts_delta, &offset_delta, &key_len)
        c.end = outer
        if rc:
            return rc
        if c.pos != rend:
            c.err = start
            return E_TRAILING
        kind = -1
        ts = <int64_t>(<uint64_t>base_ts + <uint64_t>ts_delta)
        if require_key and key_len < 0:
            kind, detail = K_NO_KEY, -1
        elif ts != -1 and (ts < min_ts or ts > max_ts):
            kind, detail = K_TIMESTAMP, ts
        elif length > max_size:
            kind, detail = K_TOO_LARGE, length
        elif check_offsets and offset_delta != i:
            kind, detail = K_OFFSET, offset_delta
        if kind >= 0 and n_found[0] < MAX_FINDINGS:
            found[n_found[0]].index = i
            found[n_found[0]].kind = kind
            found[n_found[0]].detail = detail
            n_found[0] += 1
    if c.pos != outer:
        c.err = c.pos
        return E_COUNT
    return OK


def scan_records(data, Py_ssize_t start, Py_ssize_t end, int32_t count, int64_t base_timestamp, *,
                 bint require_key=False, int64_t min_timestamp=INT64_MIN,
                 int64_t max_timestamp=9223372036854775807,
                 int64_t max_record_size=9223372036854775807, bint check_offsets=False):
    cdef const uint8_t[::1] mv = memoryview(data).cast("B")
    cdef Cur c
    cdef Finding found[MAX_FINDINGS]
    cdef int32_t n_found = 0, i
    cdef int rc
    if not (0 <= start <= end <= mv.shape[0]):
        raise ValueError(f"records window {start}..{end} outside {mv.shape[0]} bytes")
    if count < 0:
        raise InvalidRecordError(f"negative record count {count}", start)
    c.p = &mv[0] if mv.shape[0] else NULL
    c.pos = start
    c.end = end
    c.err = start
    with nogil:
        rc = walk(&c, count, base_timestamp, require_key, min_timestamp, max_timestamp,
                  max_record_size, check_offsets, found, &n_found)
    if rc:
        raise InvalidRecordError(_REASONS[rc], c.err)
    return [(found[i].index, found[i].kind, found[i].detail) for i in range(n_found)]
