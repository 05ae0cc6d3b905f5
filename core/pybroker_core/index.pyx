# cython: freethreading_compatible = False
"""Offset/time index lookups over memory-mapped index files, and batch-header scans over a segment
(compiled twin of pybroker/codec/_pure/index.py).

Layouts (all big-endian, exactly Kafka's):
  offset index entry: u32 relative_offset | u32 position                      8 bytes
  time index entry:   i64 timestamp | u32 relative_offset                     12 bytes
  batch header read by the scans (first 43 bytes of a magic-2 batch):
    0 i64 base_offset | 8 i32 batch_length | 12 i32 partition_leader_epoch | 16 i8 magic |
    17 u32 crc | 21 i16 attributes | 23 i32 last_offset_delta | 27 i64 base_timestamp |
    35 i64 max_timestamp
  a batch occupies 12 + batch_length bytes; batch_length >= 49 (61-byte header minus 12).

A "source" is either an int file descriptor (read with pread, GIL released) or a contiguous buffer
(bytes, bytearray, mmap, memoryview) holding the whole segment.
"""
cimport cython
from libc.stdint cimport int32_t, int64_t, uint8_t, uint32_t, uint64_t
from libc.errno cimport errno
from libc.string cimport memcpy, strerror
from posix.unistd cimport pread

from pybroker.codec.errors import CorruptRecordError

DEF OFFSET_ENTRY = 8
DEF TIME_ENTRY = 12
DEF HEADER_READ = 43
DEF MIN_BATCH_LENGTH = 49

OFFSET_INDEX_ENTRY_SIZE = OFFSET_ENTRY
TIME_INDEX_ENTRY_SIZE = TIME_ENTRY


cdef inline uint32_t be32(const uint8_t* p) noexcept nogil:
    return (<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16) | (<uint32_t>p[2] << 8) | p[3]

cdef inline int64_t be64(const uint8_t* p) noexcept nogil:
    return <int64_t>((<uint64_t>be32(p) << 32) | be32(p + 4))


cdef inline const uint8_t[::1] as_bytes_view(object buf):
    if isinstance(buf, memoryview) and (<memoryview>buf).format != "B":
        buf = (<memoryview>buf).cast("B")
    return buf


cdef int check_entries(Py_ssize_t buf_len, Py_ssize_t entries, Py_ssize_t entry_size) except -1:
    if entries < 0 or entries * entry_size > buf_len:
        raise ValueError(f"{entries} index entries do not fit in {buf_len} bytes")
    return 0


cdef Py_ssize_t first_bad_offset_entry(const uint8_t* p, Py_ssize_t entries, int64_t log_size) noexcept nogil:
    cdef Py_ssize_t i
    cdef int64_t prev_off = -1, prev_pos = -1, off, pos
    for i in range(entries):
        off = be32(p + i * OFFSET_ENTRY)
        pos = be32(p + i * OFFSET_ENTRY + 4)
        if off <= prev_off or off > 0x7fffffff or pos <= prev_pos or pos >= log_size:
            return i
        prev_off = off
        prev_pos = pos
    return -1


cdef Py_ssize_t first_bad_time_entry(const uint8_t* p, Py_ssize_t entries, int64_t max_rel) noexcept nogil:
    cdef Py_ssize_t i
    cdef int64_t ts, off, prev_ts = 0, prev_off = 0
    for i in range(entries):
        ts = be64(p + i * TIME_ENTRY)
        off = be32(p + i * TIME_ENTRY + 8)
        if (i > 0 and (ts <= prev_ts or off < prev_off)) or off > max_rel:
            return i
        prev_ts = ts
        prev_off = off
    return -1


# ---- offset index -----------------------------------------------------------------------------

@cython.boundscheck(False)  # every slot is < entries, and entries*8 <= len(buf) was checked
@cython.wraparound(False)
def offset_index_lookup(object buf, Py_ssize_t entries, int64_t relative_offset):
    """Slot of the greatest entry whose relative offset is <= relative_offset, or -1 (Kafka's
    largestLowerBoundSlotFor)."""
    cdef const uint8_t[::1] mv = as_bytes_view(buf)
    check_entries(mv.shape[0], entries, OFFSET_ENTRY)
    if entries == 0:
        return -1
    cdef const uint8_t* p = &mv[0]
    cdef Py_ssize_t lo = 0, hi = entries - 1, mid
    if <int64_t>be32(p) > relative_offset:
        return -1
    while lo < hi:
        mid = (lo + hi + 1) >> 1
        if <int64_t>be32(p + mid * OFFSET_ENTRY) <= relative_offset:
            lo = mid
        else:
            hi = mid - 1
    return lo


@cython.boundscheck(False)  # as above
@cython.wraparound(False)
def offset_index_upper_bound(object buf, Py_ssize_t entries, int64_t relative_offset):
    """Slot of the smallest entry whose relative offset is >= relative_offset, or -1 (Kafka's
    smallestUpperBoundSlotFor)."""
    cdef const uint8_t[::1] mv = as_bytes_view(buf)
    check_entries(mv.shape[0], entries, OFFSET_ENTRY)
    if entries == 0:
        return -1
    cdef const uint8_t* p = &mv[0]
    cdef Py_ssize_t lo = 0, hi = entries - 1, mid
    if <int64_t>be32(p + hi * OFFSET_ENTRY) < relative_offset:
        return -1
    while lo < hi:
        mid = (lo + hi) >> 1
        if <int64_t>be32(p + mid * OFFSET_ENTRY) >= relative_offset:
            hi = mid
        else:
            lo = mid + 1
    return lo


@cython.boundscheck(False)  # entries*8 <= len(buf) was checked
@cython.wraparound(False)
def offset_index_check(object buf, Py_ssize_t entries, int64_t log_size):
    """First slot that breaks the index invariants (relative offsets strictly increasing and
    <= 2^31-1, positions strictly increasing and < log_size), or -1 when all entries are sound."""
    cdef const uint8_t[::1] mv = as_bytes_view(buf)
    check_entries(mv.shape[0], entries, OFFSET_ENTRY)
    if entries == 0:
        return -1
    return first_bad_offset_entry(&mv[0], entries, log_size)


# ---- time index -------------------------------------------------------------------------------

@cython.boundscheck(False)  # every slot is < entries, and entries*12 <= len(buf) was checked
@cython.wraparound(False)
def time_index_lookup(object buf, Py_ssize_t entries, int64_t timestamp):
    """Slot of the greatest entry whose timestamp is <= timestamp, or -1."""
    cdef const uint8_t[::1] mv = as_bytes_view(buf)
    check_entries(mv.shape[0], entries, TIME_ENTRY)
    if entries == 0:
        return -1
    cdef const uint8_t* p = &mv[0]
    cdef Py_ssize_t lo = 0, hi = entries - 1, mid
    if be64(p) > timestamp:
        return -1
    while lo < hi:
        mid = (lo + hi + 1) >> 1
        if be64(p + mid * TIME_ENTRY) <= timestamp:
            lo = mid
        else:
            hi = mid - 1
    return lo


@cython.boundscheck(False)  # entries*12 <= len(buf) was checked
@cython.wraparound(False)
def time_index_check(object buf, Py_ssize_t entries, int64_t max_relative_offset):
    """First slot that breaks the time index invariants (timestamps strictly increasing, relative
    offsets non-decreasing and <= max_relative_offset), or -1."""
    cdef const uint8_t[::1] mv = as_bytes_view(buf)
    check_entries(mv.shape[0], entries, TIME_ENTRY)
    if entries == 0:
        return -1
    return first_bad_time_entry(&mv[0], entries, max_relative_offset)


# ---- batch-header scans over a segment ---------------------------------------------------------

cdef struct Header:
    int64_t base_offset
    int64_t last_offset
    int64_t max_timestamp
    int64_t size


cdef class _Source:
    """Reads batch headers from an fd (pread) or from an in-memory buffer."""
    cdef int fd
    cdef const uint8_t[::1] mv
    cdef Py_ssize_t buf_len
    cdef bint has_buf

    def __cinit__(self, object src):
        if isinstance(src, int):
            self.fd = src
            self.has_buf = False
        else:
            self.fd = -1
            self.mv = as_bytes_view(src)
            self.buf_len = self.mv.shape[0]
            self.has_buf = True

    cdef int check_window(self, int64_t start, int64_t end) except -1:
        if start < 0 or end < start or (self.has_buf and end > self.buf_len):
            raise ValueError(f"scan window {start}..{end} is not inside the segment"
                             + (f" of {self.buf_len} bytes" if self.has_buf else ""))
        return 0

    @cython.boundscheck(False)  # pos + n <= buf_len is checked before the copy
    @cython.wraparound(False)
    cdef Py_ssize_t read(self, int64_t pos, uint8_t* out, Py_ssize_t n) except -1:
        cdef Py_ssize_t got
        cdef int err = 0
        if self.has_buf:
            if pos >= self.buf_len:
                return 0
            got = min(n, self.buf_len - <Py_ssize_t>pos)
            memcpy(out, &self.mv[pos], got)
            return got
        with nogil:
            got = pread(self.fd, out, n, pos)
            if got < 0:
                err = errno
        if got < 0:
            raise OSError(err, f"{strerror(err).decode()} (pread of a batch header at {pos})")
        return got


cdef int read_header(_Source src, int64_t pos, int64_t end, Header* h, bint strict) except -1:
    """Fill h from the batch at pos. Returns 1 on success, 0 when no complete batch starts at pos
    (strict=False) — strict=True raises CorruptRecordError instead."""
    cdef uint8_t raw[HEADER_READ]
    cdef int32_t batch_length, delta
    if end - pos < HEADER_READ:
        if strict:
            raise CorruptRecordError(f"{end - pos} bytes left before the segment end, a batch header needs 61", pos)
        return 0
    if src.read(pos, raw, HEADER_READ) < HEADER_READ:
        if strict:
            raise CorruptRecordError("segment file is shorter than its recorded size", pos)
        return 0
    batch_length = <int32_t>be32(raw + 8)
    delta = <int32_t>be32(raw + 23)
    if batch_length < MIN_BATCH_LENGTH or raw[16] != 2 or delta < 0:
        if strict:
            raise CorruptRecordError(
                f"invalid batch header (length {batch_length}, magic {raw[16]}, last offset delta {delta})", pos)
        return 0
    h.size = 12 + <int64_t>batch_length
    if h.size > end - pos:
        if strict:
            raise CorruptRecordError(f"batch of {h.size} bytes overruns the segment end {end}", pos)
        return 0
    h.base_offset = be64(raw)
    h.last_offset = h.base_offset + delta
    h.max_timestamp = be64(raw + 35)
    return 1


def find_batch_by_offset(object source, int64_t start, int64_t end, int64_t target_offset):
    """First batch in [start, end) whose last offset is >= target_offset:
    (position, base_offset, last_offset, size), or None when every batch ends before it.
    Raises CorruptRecordError on a malformed header or a batch that overruns `end`."""
    cdef _Source src = _Source(source)
    cdef Header h
    cdef int64_t pos = start
    src.check_window(start, end)
    while pos < end:
        read_header(src, pos, end, &h, True)
        if h.last_offset >= target_offset:
            return (pos, h.base_offset, h.last_offset, h.size)
        pos += h.size
    return None


def find_batch_by_timestamp(object source, int64_t start, int64_t end, int64_t target_timestamp):
    """First batch in [start, end) whose max timestamp is >= target_timestamp:
    (position, base_offset, last_offset, size, max_timestamp), or None."""
    cdef _Source src = _Source(source)
    cdef Header h
    cdef int64_t pos = start
    src.check_window(start, end)
    while pos < end:
        read_header(src, pos, end, &h, True)
        if h.max_timestamp >= target_timestamp:
            return (pos, h.base_offset, h.last_offset, h.size, h.max_timestamp)
        pos += h.size
    return None


def walk_batches(object source, int64_t start, int64_t end):
    """Follow the batch-header chain from start while each header is well formed and its batch ends
    by `end`: (stop_position, batches, last_offset). stop_position == end means the chain is whole;
    last_offset is -1 when no batch was found. CRCs are not checked."""
    cdef _Source src = _Source(source)
    cdef Header h
    cdef int64_t pos = start, last = -1
    cdef Py_ssize_t count = 0
    src.check_window(start, end)
    while pos < end and read_header(src, pos, end, &h, False):
        pos += h.size
        last = h.last_offset
        count += 1
    return (pos, count, last)


def max_timestamp_scan(object source, int64_t start, int64_t end):
    """(max_timestamp, offset_of_max_timestamp_batch_last_offset) over whole batches in [start, end);
    (-1, -1) when there is none. Used to rebuild a segment's max timestamp."""
    cdef _Source src = _Source(source)
    cdef Header h
    cdef int64_t pos = start, best = -1, best_off = -1
    src.check_window(start, end)
    while pos < end and read_header(src, pos, end, &h, False):
        if h.max_timestamp > best:
            best = h.max_timestamp
            best_off = h.last_offset
        pos += h.size
    return (best, best_off)
