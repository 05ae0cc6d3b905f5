"""LogSegment: one `<base>.log` with its `.index` and `.timeindex` (Kafka's LogSegment).

File names are the base offset zero-padded to 20 digits. Batches are stored exactly as appended
(after offset assignment). Every `index.interval.bytes` of appended data the offset index gets an
entry (batch last offset -> position where that batch starts) and the time index an entry
(max timestamp so far -> its offset); the check runs before adding the batch's size, so the first
batch of a segment never gets an entry.
"""
import os
import time
from dataclasses import dataclass
from typing import Optional

from pybroker import _impl
from pybroker.codec import records as _records
from pybroker.codec.errors import CodecError, CorruptRecordError
from pybroker.log.errors import (
    CorruptIndexError, LogCorruptedError, LogSegmentOffsetOverflowError)
from pybroker.log.file_records import FileRecords
from pybroker.log.index import OffsetIndex, TimeIndex
from pybroker.log.memory import MemoryRecords

_core = _impl.load("index")

LOG_SUFFIX = ".log"
INDEX_SUFFIX = ".index"
TIME_INDEX_SUFFIX = ".timeindex"
TXN_INDEX_SUFFIX = ".txnindex"
DELETED_SUFFIX = ".deleted"
CLEANED_SUFFIX = ".cleaned"
SWAP_SUFFIX = ".swap"
NO_TIMESTAMP = -1
_INT32_MAX = 0x7FFFFFFF


def filename_prefix(offset):
    return f"{offset:020d}"


def offset_from_filename(name):
    return int(name.split(".", 1)[0])


def _now_ms():
    return int(time.time() * 1000)


@dataclass(frozen=True)
class LogOffsetMetadata:
    """An offset, and where it is: segment base offset and byte position (-1 when unknown)."""

    message_offset: int
    segment_base_offset: int = -1
    relative_position_in_segment: int = -1

    def on_older_segment(self, other):
        return self.segment_base_offset < other.segment_base_offset


@dataclass
class FetchDataInfo:
    """What a read returns. `records` is a FileRegion (sendfile it, or `.tobytes()`), a memoryview
    (in-memory storage) or b"" when there is nothing to read. The last batch may be cut short by
    max_bytes, as Kafka does; clients drop a partial trailing batch."""

    fetch_offset_metadata: LogOffsetMetadata
    records: object = b""
    first_entry_incomplete: bool = False
    aborted_transactions: Optional[list] = None

    @property
    def size(self):
        return len(self.records)

    def tobytes(self):
        r = self.records
        return r.tobytes() if hasattr(r, "tobytes") else bytes(r)


@dataclass(frozen=True)
class TimestampAndOffset:
    timestamp: int
    offset: int
    leader_epoch: Optional[int] = None


@dataclass(frozen=True)
class RollParams:
    max_segment_ms: int
    max_segment_bytes: int
    max_timestamp_in_messages: int
    max_offset_in_messages: int
    messages_size: int
    now: int


class LogSegment:
    def __init__(self, records, offset_index, time_index, base_offset, index_interval_bytes,
                 rolling_jitter_ms=0, created_ms=None):
        self.log = records
        self.offset_index = offset_index
        self.time_index = time_index
        self.base_offset = base_offset
        self.index_interval_bytes = index_interval_bytes
        self.rolling_jitter_ms = rolling_jitter_ms
        self.max_index_size = max(offset_index._length, time_index._length)
        self.created_ms = _now_ms() if created_ms is None else created_ms
        self.bytes_since_last_index_entry = 0
        self.rolling_based_timestamp = None
        ts, off = time_index.last_entry()
        self.max_timestamp_so_far = ts
        self.offset_of_max_timestamp_so_far = off if ts >= 0 else -1

    # ---- construction ---------------------------------------------------------------------

    @classmethod
    def open(cls, dir_path, base_offset, config, *, file_suffix="", create=False, rolling_jitter_ms=0):
        """Open (or create) the segment files in `dir_path`; `dir_path=None` builds an in-memory
        segment."""
        if dir_path is None:
            records = MemoryRecords()
            oi = OffsetIndex(None, base_offset, config.segment_index_bytes)
            ti = TimeIndex(None, base_offset, config.segment_index_bytes)
        else:
            prefix = os.path.join(dir_path, filename_prefix(base_offset))
            records = FileRecords(prefix + LOG_SUFFIX + file_suffix, create=create)
            oi = OffsetIndex(prefix + INDEX_SUFFIX + file_suffix, base_offset, config.segment_index_bytes,
                             writable=create)
            ti = TimeIndex(prefix + TIME_INDEX_SUFFIX + file_suffix, base_offset, config.segment_index_bytes,
                           writable=create)
        seg = cls(records, oi, ti, base_offset, config.index_interval_bytes, rolling_jitter_ms)
        seg.max_index_size = config.segment_index_bytes
        if create and config.preallocate:
            records.preallocate(config.segment_bytes)
        return seg

    # ---- sizes ----------------------------------------------------------------------------

    @property
    def size(self):
        """Bytes written and visible to readers."""
        return self.log.size

    @property
    def dirty_size(self):
        """Bytes queued to the writer (where the next append goes)."""
        return self.log.dirty_size

    def can_convert_to_relative_offset(self, offset):
        return 0 <= offset - self.base_offset <= _INT32_MAX

    # ---- append ---------------------------------------------------------------------------

    def should_roll(self, p):
        return self.should_roll_for(p.max_segment_ms, p.max_segment_bytes, p.max_timestamp_in_messages,
                                    p.max_offset_in_messages, p.messages_size, p.now)

    def should_roll_for(self, max_segment_ms, max_segment_bytes, max_timestamp, max_offset,
                        messages_size, now):
        size = self.log.dirty_size
        if size > max_segment_bytes - messages_size:
            return True
        if size > 0 and self._time_waited_for_roll(now, max_timestamp) > max_segment_ms - self.rolling_jitter_ms:
            return True
        return (self.offset_index.is_full() or self.time_index.is_full()
                or not 0 <= max_offset - self.base_offset <= _INT32_MAX)

    def _time_waited_for_roll(self, now, message_timestamp):
        if self.rolling_based_timestamp is None and self.dirty_size > 0:
            self.rolling_based_timestamp = self._first_batch_max_timestamp()
        ts = self.rolling_based_timestamp
        if ts is not None and ts >= 0:
            return message_timestamp - ts
        return now - self.created_ms

    def _first_batch_max_timestamp(self):
        if self.size == 0:
            return None
        found = _core.find_batch_by_offset(self.log.source(), 0, self.size, self.base_offset)
        return None if found is None else self._read_batch(found[0], found[3]).max_timestamp

    def append_batch(self, raw, last_offset, max_timestamp, writer, done):
        """Index then queue one batch (bytes after offset assignment). Returns its position."""
        if not self.can_convert_to_relative_offset(last_offset):
            raise LogSegmentOffsetOverflowError(
                f"offset {last_offset} does not fit in segment {self.base_offset}")
        if self.dirty_size == 0 and self.rolling_based_timestamp is None:
            self.rolling_based_timestamp = max_timestamp
        if max_timestamp > self.max_timestamp_so_far:
            self.max_timestamp_so_far = max_timestamp
            self.offset_of_max_timestamp_so_far = last_offset
        position = self.dirty_size
        if self.bytes_since_last_index_entry > self.index_interval_bytes:
            self.offset_index.append(last_offset, position)
            self.time_index.maybe_append(self.max_timestamp_so_far, self.offset_of_max_timestamp_so_far)
            self.bytes_since_last_index_entry = 0
        self.bytes_since_last_index_entry += len(raw)
        self.log.append_async(writer, raw, done)
        return position

    def on_become_inactive(self):
        """Roll: force the final time index entry, trim both indexes to their used size."""
        if self.max_timestamp_so_far >= 0:
            self.time_index.maybe_append(self.max_timestamp_so_far, self.offset_of_max_timestamp_so_far,
                                         skip_full_check=True)
        self.offset_index.trim_to_valid_size()
        self.time_index.trim_to_valid_size()

    def resize_indexes(self, size):
        self.offset_index.resize(size)
        self.time_index.resize(size)

    # ---- reads ----------------------------------------------------------------------------

    def translate_offset(self, offset, start_position=0):
        """(position, base_offset, last_offset, size) of the first batch whose last offset is
        >= offset, or None. A malformed header on the way is reported as LogCorruptedError."""
        position = max(start_position, self.offset_index.lookup(offset)[1])
        try:
            return _core.find_batch_by_offset(self.log.source(), position, self.size, offset)
        except CorruptRecordError as exc:
            if position == start_position:
                raise self._corrupt(exc) from exc
        # the scan started at an index entry that does not point at a batch: the index is bad
        # (indexes are caches), not necessarily the log. Rebuild it from the log and retry.
        self.rebuild_indexes()
        try:
            return _core.find_batch_by_offset(self.log.source(), start_position, self.size, offset)
        except CorruptRecordError as exc:
            raise self._corrupt(exc) from exc

    def _corrupt(self, exc):
        return LogCorruptedError(self.log.path or f"<memory segment {self.base_offset}>",
                                 exc.position, exc.reason)

    def rebuild_indexes(self):
        """Rebuild both indexes from the log without changing it; a batch that fails the
        structural check raises LogCorruptedError (nothing is truncated here)."""
        trimmed = self.offset_index.is_full()
        self.offset_index.reset()
        self.time_index.reset()
        self.resize_indexes(self.max_index_size)
        self.max_timestamp_so_far, self.offset_of_max_timestamp_so_far = NO_TIMESTAMP, -1
        valid, last_entry = 0, 0
        for position, batch, error in iter_checked_batches(self.log, 0, self.size, validate=False):
            if error is not None:
                raise LogCorruptedError(self.log.path or f"<memory segment {self.base_offset}>",
                                        position, error)
            self._index_recovered(batch, valid, last_entry)
            if valid - last_entry > self.index_interval_bytes:
                last_entry = valid
            valid += batch.size
        self.bytes_since_last_index_entry = valid - last_entry
        if trimmed:  # an inactive segment's indexes stay trimmed to their used size
            self.offset_index.trim_to_valid_size()
            self.time_index.trim_to_valid_size()

    def read(self, start_offset, max_size, max_position=None, min_one_message=False):
        """FetchDataInfo starting at the batch holding start_offset, or None when this segment has
        no batch at or after start_offset below max_position."""
        max_position = self.size if max_position is None else min(max_position, self.size)
        found = self.translate_offset(start_offset)
        if found is None or found[0] >= max_position:
            return None
        position, _, _, batch_size = found
        meta = LogOffsetMetadata(start_offset, self.base_offset, position)
        adjusted = max(max_size, batch_size) if min_one_message else max_size
        if adjusted <= 0:
            return FetchDataInfo(meta)
        length = min(max_position - position, adjusted)
        return FetchDataInfo(meta, self.log.region(position, length), adjusted < batch_size)

    def _read_batch(self, position, size):
        return _records.RecordBatch(self.log.read(position, size), 0)

    def find_offset_by_timestamp(self, timestamp, start_offset=0):
        """First record with timestamp >= target and offset >= start_offset, or None."""
        ts_offset = self.time_index.lookup(timestamp)[1]
        position = self.offset_index.lookup(max(ts_offset, start_offset))[1]
        while position < self.size:
            found = _core.find_batch_by_timestamp(self.log.source(), position, self.size, timestamp)
            if found is None:
                return None
            hit = self._first_record_at_or_after(found, timestamp, start_offset)
            if hit is not None:
                return hit
            position = found[0] + found[3]
        return None

    def _first_record_at_or_after(self, found, timestamp, start_offset):
        batch = self._read_batch(found[0], found[3])
        epoch = batch.partition_leader_epoch if batch.partition_leader_epoch >= 0 else None
        if batch.timestamp_type == 1:  # LogAppendTime: every record carries the batch max timestamp
            if batch.last_offset < start_offset:
                return None
            return TimestampAndOffset(batch.max_timestamp, max(batch.base_offset, start_offset), epoch)
        for record in batch.records():
            if record.timestamp >= timestamp and record.offset >= start_offset:
                return TimestampAndOffset(record.timestamp, record.offset, epoch)
        return None

    def max_timestamp_record(self):
        """TimestampAndOffset of the first record carrying this segment's max timestamp."""
        if self.max_timestamp_so_far < 0:
            return None
        return self.find_offset_by_timestamp(self.max_timestamp_so_far, self.base_offset)

    def read_next_offset(self):
        """The offset after the last whole batch (base_offset when empty)."""
        _, position = self.offset_index.last_entry()
        stop, _, last = _core.walk_batches(self.log.source(), position, self.size)
        return self.base_offset if last < 0 else last + 1

    # ---- recovery and truncation ----------------------------------------------------------

    def sanity_check(self):
        """Raise CorruptIndexError when either index is inconsistent with this segment."""
        self.offset_index.sanity_check(self.log.file_size())
        self.time_index.sanity_check(self.read_next_offset())

    def recover(self, on_batch=None):
        """Rebuild both indexes from the log, checking every batch (CRC, structure, offsets);
        truncate at the first invalid batch. Returns (bytes_truncated, reason_or_None).
        `on_batch(batch)` is called for each valid batch (producer state, leader epochs)."""
        self.offset_index.reset()
        self.time_index.reset()
        self.max_timestamp_so_far, self.offset_of_max_timestamp_so_far = NO_TIMESTAMP, -1
        valid, last_entry, prev_last, reason = 0, 0, self.base_offset - 1, None
        for position, batch, error in iter_checked_batches(self.log, 0, self.log.file_size()):
            if error is None:
                error = self._offset_problem(batch, prev_last)
            if error is not None:
                reason = f"{error} at byte {position}"
                break
            self._index_recovered(batch, valid, last_entry)
            if valid - last_entry > self.index_interval_bytes:
                last_entry = valid
            valid += batch.size
            prev_last = batch.last_offset
            if on_batch is not None:
                on_batch(batch)
        truncated = self.log.file_size() - valid
        if truncated > 0:
            self.log.truncate_to(valid)
        self.log.size = self.log.dirty_size = valid
        self.bytes_since_last_index_entry = valid - last_entry
        self.offset_index.trim_to_valid_size()
        if self.max_timestamp_so_far >= 0:
            self.time_index.maybe_append(self.max_timestamp_so_far, self.offset_of_max_timestamp_so_far,
                                         skip_full_check=True)
        self.time_index.trim_to_valid_size()
        return truncated, reason

    def _offset_problem(self, batch, prev_last):
        if batch.base_offset <= prev_last:
            return f"batch base offset {batch.base_offset} is not above the previous last offset {prev_last}"
        if not self.can_convert_to_relative_offset(batch.last_offset):
            return f"batch last offset {batch.last_offset} is out of range for segment {self.base_offset}"
        return None

    def _index_recovered(self, batch, valid, last_entry):
        if batch.max_timestamp > self.max_timestamp_so_far:
            self.max_timestamp_so_far = batch.max_timestamp
            self.offset_of_max_timestamp_so_far = batch.last_offset
        if valid - last_entry > self.index_interval_bytes:
            self.offset_index.append(batch.last_offset, valid)
            self.time_index.maybe_append(self.max_timestamp_so_far, self.offset_of_max_timestamp_so_far)

    def truncate_to(self, offset):
        """Drop every batch whose last offset is >= offset (the writer must be drained). Returns
        the number of bytes removed."""
        found = self.translate_offset(offset)
        if found is None:
            return 0
        self.offset_index.truncate_to(offset)
        self.time_index.truncate_to(offset)
        removed = self.log.truncate_to(found[0])
        self._reset_after_truncation()
        return removed

    def _reset_after_truncation(self):
        ts, off = self.time_index.last_entry()
        self.max_timestamp_so_far = ts
        self.offset_of_max_timestamp_so_far = off if ts >= 0 else -1
        best, best_off = _core.max_timestamp_scan(self.log.source(), self.offset_index.last_entry()[1],
                                                  self.size)
        if best > self.max_timestamp_so_far:
            self.max_timestamp_so_far, self.offset_of_max_timestamp_so_far = best, best_off
        self.bytes_since_last_index_entry = self.size - self.offset_index.last_entry()[1]
        if self.size == 0:
            self.rolling_based_timestamp = None
            self.created_ms = _now_ms()

    # ---- flush and files ------------------------------------------------------------------

    def flush(self):
        """fsync the log and msync both indexes (writer thread)."""
        self.log.flush()
        self.offset_index.flush()
        self.time_index.flush()

    def close(self):
        if self.max_timestamp_so_far >= 0 and self.time_index.path is not None and self.time_index._fd >= 0:
            self.time_index.maybe_append(self.max_timestamp_so_far, self.offset_of_max_timestamp_so_far,
                                         skip_full_check=True)
        self.offset_index.close()
        self.time_index.close()
        self.log.close()

    def change_file_suffixes(self, old, new):
        for f in (self.log, self.offset_index, self.time_index):
            if f.path is not None:
                base = f.path[:-len(old)] if old and f.path.endswith(old) else f.path
                if os.path.exists(f.path):
                    f.rename_to(base + new)

    def delete_if_exists(self):
        self.offset_index.delete_if_exists()
        self.time_index.delete_if_exists()
        self.log.delete_if_exists()

    def __repr__(self):
        return f"LogSegment(base_offset={self.base_offset}, size={self.size})"


def iter_checked_batches(records, start, end, validate=True, chunk_size=1 << 20):
    """Yield (position, batch, None) for each whole, valid batch in [start, end); the first
    problem yields (position, None, reason) and stops. Reads in chunks (never the whole file)."""
    api = _records
    pos = start
    while pos < end:
        data = records.read(pos, min(chunk_size, end - pos))
        off = 0
        while off < len(data):
            left = len(data) - off
            if left < 61 or left < 12 + _batch_length(data, off):
                need = 61 if left < 61 else 12 + _batch_length(data, off)
                if pos + off + need > end:
                    yield pos + off, None, (f"partial batch: {end - pos - off} bytes left, "
                                            f"{need} needed")
                    return
                if off == 0:  # one batch larger than the chunk: read exactly it
                    data = records.read(pos, need)
                    if len(data) < need:
                        yield pos, None, "segment file is shorter than its recorded size"
                        return
                    continue
                break
            if _batch_length(data, off) < 49:
                yield pos + off, None, f"batch length {_batch_length(data, off)} is below the minimum 49"
                return
            try:
                batch = api.RecordBatch(data, off)
                if validate:
                    check_stored_batch(batch)
            except CodecError as exc:
                yield pos + off, None, f"invalid batch: {exc}"
                return
            yield pos + off, batch, None
            off += batch.size
        pos += off


def check_stored_batch(batch):
    """A stored batch's integrity: magic, CRC, codec, counts. Unlike a produced batch's
    validate(), a record count below last_offset_delta + 1 is fine: compaction keeps a batch's
    offset range while removing records (and keeps empty headers, count 0)."""
    if batch.magic != 2:
        raise CorruptRecordError(f"unsupported magic {batch.magic} (only v2 batches)", batch.pos + 16)
    computed = batch.compute_crc()
    if computed != batch.crc:
        raise CorruptRecordError(f"CRC mismatch: stored 0x{batch.crc:08x}, computed "
                                 f"0x{computed:08x}", batch.pos + 17)
    if batch.compression > 4:
        raise CorruptRecordError(f"unknown compression codec {batch.compression}", batch.pos + 21)
    if batch.records_count < 0 or batch.records_count > batch.last_offset_delta + 1:
        raise CorruptRecordError(f"record count {batch.records_count} does not fit the offset "
                                 f"range of {batch.last_offset_delta + 1}", batch.pos + 57)
    if batch.is_control and batch.records_count > 1:
        raise CorruptRecordError(f"control batch holds {batch.records_count} records",
                                 batch.pos + 57)


def _batch_length(data, off):
    if len(data) - off < 12:
        return 0
    return int.from_bytes(data[off + 8:off + 12], "big", signed=True)
