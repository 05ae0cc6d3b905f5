"""Per-record checks of a produced batch: pure-Python twin of pybroker_core.validator (same
names, findings and errors; the record layout and the rules are documented there)."""
from pybroker.codec._pure.record_cursor import REASONS, CursorError, records
from pybroker.codec.errors import InvalidRecordError

__all__ = ["scan_records", "KIND_NO_KEY", "KIND_TIMESTAMP", "KIND_TOO_LARGE", "KIND_OFFSET"]

KIND_NO_KEY = 0
KIND_TIMESTAMP = 1
KIND_TOO_LARGE = 2
KIND_OFFSET = 3
MAX_FINDINGS = 1024
_LONG_MIN, _LONG_MAX = -(1 << 63), (1 << 63) - 1
_M64 = (1 << 64) - 1


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
    found = []
    try:
        for i, r in enumerate(records(buf, start, end, count)):
            ts = _wrap(base_timestamp + r.ts_delta)
            finding = None
            if require_key and r.key_len < 0:
                finding = (i, KIND_NO_KEY, -1)
            elif ts != -1 and not min_timestamp <= ts <= max_timestamp:
                finding = (i, KIND_TIMESTAMP, ts)
            elif r.body_len > max_record_size:
                finding = (i, KIND_TOO_LARGE, r.body_len)
            elif check_offsets and r.offset_delta != i:
                finding = (i, KIND_OFFSET, r.offset_delta)
            if finding is not None and len(found) < MAX_FINDINGS:
                found.append(finding)
    except CursorError as exc:
        raise InvalidRecordError(REASONS[exc.kind], exc.pos) from None
    return found
