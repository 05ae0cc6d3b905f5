"""OffsetIndex and TimeIndex: Kafka's sparse, memory-mapped segment indexes (AbstractIndex).

  offset index entry: u32 relative_offset | u32 position (big-endian), 8 bytes
  time index entry:   i64 timestamp | u32 relative_offset (big-endian), 12 bytes

A new index file is pre-allocated to `max_index_size` rounded down to a multiple of the entry size;
an existing file is taken as full of entries up to its rounded length (nothing is checksummed:
indexes are caches, `sanity_check` finds a damaged one and the loader rebuilds it from the log).
The file is trimmed to its used size when the segment becomes inactive or is closed.

Binary searches and checks run in the compiled core (pybroker_core.index, pure twin
pybroker/codec/_pure/index.py). With `path=None` the index lives in a bytearray (in-memory storage).
"""
import mmap
import os
import struct

from pybroker import _impl
from pybroker.log.errors import CorruptIndexError, InvalidOffsetError

_core = _impl.load("index")

_OFFSET_ENTRY = struct.Struct(">II")
_TIME_ENTRY = struct.Struct(">qI")


class AbstractIndex:
    """Entries in a fixed-size mapped file (or bytearray). Not thread-safe: the event loop owns it;
    the writer thread only calls `flush`."""

    entry_size = 0

    def __init__(self, path, base_offset, max_index_size, writable=True):
        self.path = path
        self.base_offset = base_offset
        self._fd = -1
        self._buf = None
        self.entries = 0
        self._length = 0
        if path is None:
            self._init_memory(max_index_size)
        else:
            self._open_file(max_index_size, writable)

    # ---- setup ----------------------------------------------------------------------------

    def _round(self, size):
        return size - size % self.entry_size

    def _init_memory(self, max_index_size):
        self._length = self._round(max_index_size)
        self._buf = bytearray(self._length)

    def _open_file(self, max_index_size, writable):
        new = not os.path.exists(self.path)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        if new:
            os.ftruncate(self._fd, self._round(max_index_size))
        length = self._round(os.fstat(self._fd).st_size)
        self.entries = 0 if new else length // self.entry_size
        if not new and writable and self._round(max_index_size) > length:
            os.ftruncate(self._fd, self._round(max_index_size))
            length = self._round(max_index_size)
        self._map(length)

    def _map(self, length):
        self._length = length
        self._buf = mmap.mmap(self._fd, length) if length > 0 else None
        if self._buf is not None and hasattr(mmap, "MADV_RANDOM"):
            # Lookups are binary searches and appends fill one page at a time. Without this hint
            # the first write into a fresh (sparse) index faults in a whole readahead window of
            # zeroed pages (read_ahead_kb; 8 MiB on the benchmark machine: ~2.7 ms per file).
            self._buf.madvise(mmap.MADV_RANDOM)

    # ---- state ----------------------------------------------------------------------------

    @property
    def max_entries(self):
        return self._length // self.entry_size

    def is_full(self):
        return self.entries >= self.max_entries

    @property
    def size_in_bytes(self):
        return self.entries * self.entry_size

    def _view(self):
        return self._buf if self._buf is not None else b""

    def relative(self, offset):
        rel = offset - self.base_offset
        if rel < 0 or rel > 0x7FFFFFFF:
            raise InvalidOffsetError(f"offset {offset} does not fit in an index based at {self.base_offset}")
        return rel

    def can_append_offset(self, offset):
        return 0 <= offset - self.base_offset <= 0x7FFFFFFF

    # ---- file management --------------------------------------------------------------------

    def resize(self, new_size):
        """Remap to `new_size` rounded down (never below the used size); True when it changed."""
        length = max(self._round(new_size), self.size_in_bytes)
        if length == self._length:
            return False
        if self.path is None:
            buf = bytearray(length)
            buf[:self.size_in_bytes] = self._buf[:self.size_in_bytes]
            self._buf, self._length = buf, length
            return True
        self._unmap()
        os.ftruncate(self._fd, length)
        self._map(length)
        return True

    def trim_to_valid_size(self):
        return self.resize(self.size_in_bytes)

    def _unmap(self):
        if isinstance(self._buf, mmap.mmap):
            self._buf.close()
        self._buf = None

    def flush(self):
        """fsync the index file (writer thread or shutdown). fsync of the fd, not msync of the
        map: the loop may remap the file (roll, trim) meanwhile, and the fd outlives any map."""
        if self._fd >= 0:
            os.fsync(self._fd)

    def reset(self):
        self.truncate_entries(0)

    def truncate_entries(self, entries):
        self.entries = max(0, min(entries, self.entries))

    def close(self):
        if self.path is None:
            return
        if self._fd >= 0:
            self.trim_to_valid_size()
            self._unmap()
            os.close(self._fd)
            self._fd = -1

    def close_handler(self):
        """Close without trimming (the file is about to be deleted or renamed)."""
        if self._fd >= 0:
            self._unmap()
            os.close(self._fd)
            self._fd = -1

    def delete_if_exists(self):
        self.close_handler()
        if self.path is not None:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                return False
        return True

    def rename_to(self, path):
        if self.path is not None:
            os.rename(self.path, path)
            self.path = path


class OffsetIndex(AbstractIndex):
    """Maps a batch's last offset to the file position where that append started."""

    entry_size = 8

    def entry(self, slot):
        rel, position = _OFFSET_ENTRY.unpack_from(self._buf, slot * 8)
        return self.base_offset + rel, position

    @property
    def last_offset(self):
        return self.entry(self.entries - 1)[0] if self.entries else self.base_offset

    def last_entry(self):
        return self.entry(self.entries - 1) if self.entries else (self.base_offset, 0)

    def append(self, offset, position):
        """Add (offset, position); offsets must be strictly increasing."""
        if self.is_full():
            raise InvalidOffsetError(f"attempt to append to a full index (size = {self.entries})")
        if self.entries and offset <= self.last_offset:
            raise InvalidOffsetError(f"attempt to append offset {offset} to position {self.entries} "
                                     f"no larger than the last offset appended ({self.last_offset})")
        _OFFSET_ENTRY.pack_into(self._buf, self.entries * 8, self.relative(offset), position)
        self.entries += 1

    def lookup(self, target_offset):
        """(offset, position) of the greatest entry <= target_offset, or (base_offset, 0)."""
        rel = target_offset - self.base_offset
        slot = _core.offset_index_lookup(self._view(), self.entries, rel) if rel >= 0 else -1
        return self.entry(slot) if slot >= 0 else (self.base_offset, 0)

    def fetch_upper_bound_offset(self, start_position, fetch_size):
        """(offset, position) of the first entry whose position is > start_position + fetch_size."""
        target = start_position + fetch_size
        for slot in range(self.entries):  # O(entries) is fine: only used for diagnostics
            offset, position = self.entry(slot)
            if position > target:
                return offset, position
        return None

    def truncate_to(self, offset):
        """Remove every entry whose offset is >= offset."""
        rel = offset - self.base_offset
        if rel <= 0:
            self.entries = 0
            return
        slot = _core.offset_index_lookup(self._view(), self.entries, rel)
        if slot < 0:
            self.entries = 0
        elif self.entry(slot)[0] == offset:
            self.entries = slot
        else:
            self.entries = slot + 1

    def sanity_check(self, log_size):
        if self._length % self.entry_size:
            raise CorruptIndexError(f"{self.path}: length {self._length} is not a multiple of 8")
        bad = _core.offset_index_check(self._view(), self.entries, log_size)
        if bad >= 0:
            raise CorruptIndexError(f"{self.path}: entry {bad} of {self.entries} breaks the offset "
                                    f"index invariants (log size {log_size})")


class TimeIndex(AbstractIndex):
    """Maps a timestamp to the offset after which every record has a larger timestamp."""

    entry_size = 12

    def entry(self, slot):
        timestamp, rel = _TIME_ENTRY.unpack_from(self._buf, slot * 12)
        return timestamp, self.base_offset + rel

    def last_entry(self):
        """(timestamp, offset) of the last entry, or (-1, base_offset) when empty."""
        return self.entry(self.entries - 1) if self.entries else (-1, self.base_offset)

    def is_full(self):
        # Kafka keeps one slot back for the entry forced on roll (TimeIndex.isFull: entries >= max - 1)
        return self.entries >= self.max_entries - 1

    def maybe_append(self, timestamp, offset, skip_full_check=False):
        """Append (timestamp, offset) when timestamp is larger than the last entry's."""
        if not skip_full_check and self.is_full():
            raise InvalidOffsetError(f"attempt to append to a full time index (size = {self.entries})")
        last_ts, last_offset = self.last_entry()
        if self.entries and offset < last_offset:
            raise InvalidOffsetError(f"attempt to append offset {offset} to slot {self.entries} "
                                     f"no larger than the last offset appended ({last_offset})")
        if self.entries and timestamp < last_ts:
            raise InvalidOffsetError(f"attempt to append timestamp {timestamp} no larger than the "
                                     f"last timestamp appended ({last_ts})")
        if timestamp > last_ts and self.entries < self.max_entries:
            _TIME_ENTRY.pack_into(self._buf, self.entries * 12, timestamp, self.relative(offset))
            self.entries += 1

    def lookup(self, target_timestamp):
        """(timestamp, offset) of the greatest entry with timestamp <= target, or (-1, base_offset)."""
        slot = _core.time_index_lookup(self._view(), self.entries, target_timestamp)
        return self.entry(slot) if slot >= 0 else (-1, self.base_offset)

    def truncate_to(self, offset):
        """Remove every entry whose offset is >= offset."""
        keep = 0
        lo, hi = 0, self.entries  # entries' offsets are non-decreasing: bisect in Python (rare call)
        while lo < hi:
            mid = (lo + hi) // 2
            if self.entry(mid)[1] < offset:
                lo = mid + 1
            else:
                hi = mid
        keep = lo
        self.entries = keep

    def sanity_check(self, max_offset):
        if self._length % self.entry_size:
            raise CorruptIndexError(f"{self.path}: length {self._length} is not a multiple of 12")
        bad = _core.time_index_check(self._view(), self.entries, max(0, max_offset - self.base_offset))
        if bad >= 0:
            raise CorruptIndexError(f"{self.path}: entry {bad} of {self.entries} breaks the time "
                                    f"index invariants")
