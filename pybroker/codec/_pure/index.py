"""Pure-Python twin of pybroker_core.index: offset/time index lookups and batch-header scans.

Layouts (all big-endian, exactly Kafka's):
  offset index entry: u32 relative_offset | u32 position                      8 bytes
  time index entry:   i64 timestamp | u32 relative_offset                     12 bytes
  batch header read by the scans (first 43 bytes of a magic-2 batch):
    0 i64 base_offset | 8 i32 batch_length | 12 i32 partition_leader_epoch | 16 i8 magic |
    17 u32 crc | 21 i16 attributes | 23 i32 last_offset_delta | 27 i64 base_timestamp |
    35 i64 max_timestamp
  a batch occupies 12 + batch_length bytes; batch_length >= 49 (61-byte header minus 12).

A "source" is either an int file descriptor (read with os.pread) or a contiguous buffer holding
the whole segment.
"""
import os
import struct

from pybroker.codec.errors import CorruptRecordError

OFFSET_INDEX_ENTRY_SIZE = 8
TIME_INDEX_ENTRY_SIZE = 12
_HEADER_READ = 43
_MIN_BATCH_LENGTH = 49

_U32 = struct.Struct(">I").unpack_from
_I64 = struct.Struct(">q").unpack_from
_OFFSET_ENTRY = struct.Struct(">II").unpack_from
_TIME_ENTRY = struct.Struct(">qI").unpack_from
_HEADER = struct.Struct(">qi4xb6xi8xq").unpack_from   # base, length, magic, delta, max_ts


def _view(buf, entries, entry_size):
    mv = memoryview(buf)
    if mv.format != "B" or mv.ndim != 1:
        mv = mv.cast("B")
    if entries < 0 or entries * entry_size > len(mv):
        raise ValueError(f"{entries} index entries do not fit in {len(mv)} bytes")
    return mv


def offset_index_lookup(buf, entries, relative_offset):
    """Slot of the greatest entry whose relative offset is <= relative_offset, or -1 (Kafka's
    largestLowerBoundSlotFor)."""
    mv = _view(buf, entries, 8)
    if entries == 0 or _U32(mv, 0)[0] > relative_offset:
        return -1
    lo, hi = 0, entries - 1
    while lo < hi:
        mid = (lo + hi + 1) >> 1
        if _U32(mv, mid * 8)[0] <= relative_offset:
            lo = mid
        else:
            hi = mid - 1
    return lo


def offset_index_upper_bound(buf, entries, relative_offset):
    """Slot of the smallest entry whose relative offset is >= relative_offset, or -1 (Kafka's
    smallestUpperBoundSlotFor)."""
    mv = _view(buf, entries, 8)
    if entries == 0 or _U32(mv, (entries - 1) * 8)[0] < relative_offset:
        return -1
    lo, hi = 0, entries - 1
    while lo < hi:
        mid = (lo + hi) >> 1
        if _U32(mv, mid * 8)[0] >= relative_offset:
            hi = mid
        else:
            lo = mid + 1
    return lo


def offset_index_check(buf, entries, log_size):
    """First slot that breaks the index invariants (relative offsets strictly increasing and
    <= 2^31-1, positions strictly increasing and < log_size), or -1 when all entries are sound."""
    mv = _view(buf, entries, 8)
    prev_off = prev_pos = -1
    for i in range(entries):
        off, pos = _OFFSET_ENTRY(mv, i * 8)
        if off <= prev_off or off > 0x7FFFFFFF or pos <= prev_pos or pos >= log_size:
            return i
        prev_off, prev_pos = off, pos
    return -1


def time_index_lookup(buf, entries, timestamp):
    """Slot of the greatest entry whose timestamp is <= timestamp, or -1."""
    mv = _view(buf, entries, 12)
    if entries == 0 or _I64(mv, 0)[0] > timestamp:
        return -1
    lo, hi = 0, entries - 1
    while lo < hi:
        mid = (lo + hi + 1) >> 1
        if _I64(mv, mid * 12)[0] <= timestamp:
            lo = mid
        else:
            hi = mid - 1
    return lo


def time_index_check(buf, entries, max_relative_offset):
    """First slot that breaks the time index invariants (timestamps strictly increasing, relative
    offsets non-decreasing and <= max_relative_offset), or -1."""
    mv = _view(buf, entries, 12)
    prev_ts = prev_off = 0
    for i in range(entries):
        ts, off = _TIME_ENTRY(mv, i * 12)
        if (i > 0 and (ts <= prev_ts or off < prev_off)) or off > max_relative_offset:
            return i
        prev_ts, prev_off = ts, off
    return -1


class _Source:
    __slots__ = ("fd", "mv")

    def __init__(self, src, start, end):
        if isinstance(src, int):
            self.fd, self.mv = src, None
        else:
            mv = memoryview(src)
            self.fd, self.mv = -1, mv if mv.format == "B" and mv.ndim == 1 else mv.cast("B")
        if start < 0 or end < start or (self.mv is not None and end > len(self.mv)):
            raise ValueError(f"scan window {start}..{end} is not inside the segment"
                             + (f" of {len(self.mv)} bytes" if self.mv is not None else ""))

    def read(self, pos, n):
        if self.mv is not None:
            return self.mv[pos:pos + n]
        return os.pread(self.fd, n, pos)


def _read_header(src, pos, end, strict):
    """(base_offset, last_offset, max_timestamp, size) of the batch at pos, or None when no
    complete, well-formed batch starts there (strict=True raises CorruptRecordError instead)."""
    def bad(reason):
        if strict:
            raise CorruptRecordError(reason, pos)
        return None
    if end - pos < _HEADER_READ:
        return bad(f"{end - pos} bytes left before the segment end, a batch header needs 61")
    raw = src.read(pos, _HEADER_READ)
    if len(raw) < _HEADER_READ:
        return bad("segment file is shorter than its recorded size")
    base, length, magic, delta, max_ts = _HEADER(raw, 0)
    if length < _MIN_BATCH_LENGTH or magic != 2 or delta < 0:
        return bad(f"invalid batch header (length {length}, magic {magic}, last offset delta {delta})")
    size = 12 + length
    if size > end - pos:
        return bad(f"batch of {size} bytes overruns the segment end {end}")
    return base, base + delta, max_ts, size


def find_batch_by_offset(source, start, end, target_offset):
    """First batch in [start, end) whose last offset is >= target_offset:
    (position, base_offset, last_offset, size), or None when every batch ends before it.
    Raises CorruptRecordError on a malformed header or a batch that overruns `end`."""
    src = _Source(source, start, end)
    pos = start
    while pos < end:
        base, last, _, size = _read_header(src, pos, end, True)
        if last >= target_offset:
            return (pos, base, last, size)
        pos += size
    return None


def find_batch_by_timestamp(source, start, end, target_timestamp):
    """First batch in [start, end) whose max timestamp is >= target_timestamp:
    (position, base_offset, last_offset, size, max_timestamp), or None."""
    src = _Source(source, start, end)
    pos = start
    while pos < end:
        base, last, max_ts, size = _read_header(src, pos, end, True)
        if max_ts >= target_timestamp:
            return (pos, base, last, size, max_ts)
        pos += size
    return None


def walk_batches(source, start, end):
    """Follow the batch-header chain from start while each header is well formed and its batch ends
    by `end`: (stop_position, batches, last_offset). stop_position == end means the chain is whole;
    last_offset is -1 when no batch was found. CRCs are not checked."""
    src = _Source(source, start, end)
    pos, count, last = start, 0, -1
    while pos < end:
        h = _read_header(src, pos, end, False)
        if h is None:
            break
        pos += h[3]
        last = h[1]
        count += 1
    return (pos, count, last)


def max_timestamp_scan(source, start, end):
    """(max_timestamp, offset_of_max_timestamp_batch_last_offset) over whole batches in [start, end);
    (-1, -1) when there is none. Used to rebuild a segment's max timestamp."""
    src = _Source(source, start, end)
    pos, best, best_off = start, -1, -1
    while pos < end:
        h = _read_header(src, pos, end, False)
        if h is None:
            break
        if h[2] > best:
            best, best_off = h[2], h[1]
        pos += h[3]
    return (best, best_off)
