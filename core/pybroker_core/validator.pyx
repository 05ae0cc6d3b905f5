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

from pybroker_core.record_cursor cimport (
    CUR_FIELD, CUR_LENGTH, CUR_NEG, CUR_OK, CUR_TRAILING, CUR_VARINT, Cur, RecordFields, cur_record_fields, cur_varint)

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
    OK = CUR_OK
    E_VARINT = CUR_VARINT
    E_LENGTH = CUR_LENGTH
    E_FIELD = CUR_FIELD
    E_TRAILING = CUR_TRAILING
    E_COUNT = 5
    E_NEG = CUR_NEG

_REASONS = {E_VARINT: "truncated or over-long varint", E_LENGTH: "record length outside its batch",
            E_FIELD: "record field runs past the record's declared length",
            E_TRAILING: "record fields do not fill its declared length",
            E_COUNT: "record count does not match the records in the batch",
            E_NEG: "negative length"}


cdef struct Finding:
    int32_t index
    int32_t kind
    int64_t detail


cdef int walk(Cur* c, int32_t count, int64_t base_ts, bint require_key, int64_t min_ts,
              int64_t max_ts, int64_t max_size, bint check_offsets, Finding* found,
              int32_t* n_found) noexcept nogil:
    cdef int32_t i
    cdef int64_t ts
    cdef Py_ssize_t outer = c.end
    cdef RecordFields f
    cdef int32_t length
    cdef Py_ssize_t start, rend
    cdef int rc
    cdef int32_t kind
    cdef int64_t detail
    for i in range(count):
        if c.pos >= outer:
            c.err = c.pos
            return E_COUNT
        start = c.pos
        rc = cur_varint(c, &length)
        if rc:
            return rc
        if length < 0 or length > outer - c.pos:
            c.err = start
            return E_LENGTH
        rend = c.pos + length
        c.end = rend
        rc = cur_record_fields(c, &f)
        c.end = outer
        if rc:
            return rc
        if c.pos != rend:
            c.err = start
            return E_TRAILING
        kind = -1
        ts = <int64_t>(<uint64_t>base_ts + <uint64_t>f.ts_delta)
        if require_key and f.key_len < 0:
            kind, detail = K_NO_KEY, -1
        elif ts != -1 and (ts < min_ts or ts > max_ts):
            kind, detail = K_TIMESTAMP, ts
        elif length > max_size:
            kind, detail = K_TOO_LARGE, length
        elif check_offsets and f.offset_delta != i:
            kind, detail = K_OFFSET, f.offset_delta
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
