"""Per-record checks of a produced batch: pure-Python twin of pybroker_core.validator (same
names, findings and errors; the record layout and the rules are documented there)."""
from pybroker.codec.errors import InvalidRecordError

__all__ = ["scan_records", "KIND_NO_KEY", "KIND_TIMESTAMP", "KIND_TOO_LARGE", "KIND_OFFSET"]

KIND_NO_KEY = 0
KIND_TIMESTAMP = 1
KIND_TOO_LARGE = 2
KIND_OFFSET = 3
MAX_FINDINGS = 1024
_LONG_MIN, _LONG_MAX = -(1 << 63), (1 << 63) - 1
_M64 = (1 << 64) - 1


class _Fail(Exception):
    def __init__(self, reason, pos):
        self.reason, self.pos = reason, pos


def _uvarint(buf, pos, end, max_bytes):
    at, value, shift, n = pos, 0, 0, 0
    while True:
        if pos >= end or n == max_bytes:
            raise _Fail("truncated or over-long varint", at)
        b = buf[pos]
        pos += 1
        n += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7


def _varint(buf, pos, end):
    u, nxt = _uvarint(buf, pos, end, 5)
    if u > 0xFFFFFFFF:
        raise _Fail("truncated or over-long varint", pos)
    return (u >> 1) ^ -(u & 1), nxt


def _varlong(buf, pos, end):
    u, nxt = _uvarint(buf, pos, end, 10)
    u &= _M64
    return (u >> 1) ^ -(u & 1), nxt


def _skip(pos, end, n, nullable):
    if n < 0:
        if nullable and n == -1:
            return pos
        raise _Fail("negative length", pos)
    if n > end - pos:
        raise _Fail("record field runs past the record's declared length", pos)
    return pos + n


def _fields(buf, pos, end):
    if pos >= end:
        raise _Fail("record field runs past the record's declared length", pos)
    pos += 1
    ts_delta, pos = _varlong(buf, pos, end)
    offset_delta, pos = _varint(buf, pos, end)
    key_len, pos = _varint(buf, pos, end)
    pos = _skip(pos, end, key_len, True)
    n, pos = _varint(buf, pos, end)
    pos = _skip(pos, end, n, True)
    count, pos = _varint(buf, pos, end)
    if count < 0:
        raise _Fail("negative length", pos)
    for _ in range(count):
        n, pos = _varint(buf, pos, end)
        pos = _skip(pos, end, n, False)
        n, pos = _varint(buf, pos, end)
        pos = _skip(pos, end, n, True)
    return pos, ts_delta, offset_delta, key_len


def _wrap(v):
    v &= _M64
    return v - (1 << 64) if v >> 63 else v


def scan_records(data, start, end, count, base_timestamp, *, require_key=False,
                 min_timestamp=_LONG_MIN, max_timestamp=_LONG_MAX, max_record_size=_LONG_MAX,
                 check_offsets=False):
    buf = memoryview(data).cast("B")
    if not 0 <= start <= end <= len(buf):
        raise ValueError(f"records window {start}..{end} outside {len(buf)} bytes")
    if count < 0:
        raise InvalidRecordError(f"negative record count {count}", start)
    found, pos = [], start
    try:
        for i in range(count):
            if pos >= end:
                raise _Fail("record count does not match the records in the batch", pos)
            rstart = pos
            length, pos = _varint(buf, pos, end)
            if length < 0 or length > end - pos:
                raise _Fail("record length outside its batch", rstart)
            rend = pos + length
            pos, ts_delta, offset_delta, key_len = _fields(buf, pos, rend)
            if pos != rend:
                raise _Fail("record fields do not fill its declared length", rstart)
            ts = _wrap(base_timestamp + ts_delta)
            finding = None
            if require_key and key_len < 0:
                finding = (i, KIND_NO_KEY, -1)
            elif ts != -1 and not min_timestamp <= ts <= max_timestamp:
                finding = (i, KIND_TIMESTAMP, ts)
            elif length > max_record_size:
                finding = (i, KIND_TOO_LARGE, length)
            elif check_offsets and offset_delta != i:
                finding = (i, KIND_OFFSET, offset_delta)
            if finding is not None and len(found) < MAX_FINDINGS:
                found.append(finding)
        if pos != end:
            raise _Fail("record count does not match the records in the batch", pos)
    except _Fail as exc:
        raise InvalidRecordError(exc.reason, exc.pos) from None
    return found
