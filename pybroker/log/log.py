"""Log: one partition's log (Kafka's UnifiedLog + LocalLog over LogSegments).

Offsets (all "next offset" values, i.e. exclusive ends, like Kafka's log end offset):
  dirty_offset    — after the last batch queued to the writer (== log_end_offset; offsets are
                    assigned from here)
  stable_offset   — after the last batch written to the segment file: readable
  flushed_offset  — after the last batch fsynced (== recovery_point)
  high_watermark  — what consumers may read; single node: follows stable_offset; with
                    `replicated=True` the replica manager moves it (`update_high_watermark`)
  log_start_offset, last_stable_offset (== high_watermark until transactions land)

Appends never block the event loop: `append_nowait` assigns offsets, updates indexes and producer
state and queues the bytes on the log dir's writer (pybroker/log/writer.py); `await append(...)`
also waits until they are written (and fsynced when flush.messages asks for it).
Reads return a FileRegion (sendfile) or a memoryview (in-memory storage), bounded by the requested
isolation's offset, never past stable_offset.
"""
import bisect
import collections
import os
import random
import shutil
import time
from dataclasses import dataclass

from pybroker.codec import records as _records_api
from pybroker.codec.errors import CorruptRecordError
from pybroker.log import recovery
from pybroker.log.checkpoint import LEADER_EPOCH_CHECKPOINT, PartitionMetadataFile, write_atomic
from pybroker.log.config import LogConfig
from pybroker.log.errors import (
    InconsistentTopicIdError, KafkaStorageError, LogCorruptedError, OffsetOutOfRangeError)
from pybroker.log.producer_state import AppendOrigin
from pybroker.log.segment import (
    DELETED_SUFFIX, FetchDataInfo, LogOffsetMetadata, LogSegment, TimestampAndOffset,
    filename_prefix)
from pybroker.log.writer import SyncWriter

EARLIEST_TIMESTAMP = -2
LATEST_TIMESTAMP = -1
MAX_TIMESTAMP = -3
EARLIEST_LOCAL_TIMESTAMP = -4
LATEST_TIERED_TIMESTAMP = -5
NO_TIMESTAMP = -1


class FetchIsolation:
    LOG_END = "log_end"                  # follower fetch: up to stable_offset
    HIGH_WATERMARK = "high_watermark"    # consumers, read_uncommitted
    TXN_COMMITTED = "txn_committed"      # consumers, read_committed: up to last_stable_offset


@dataclass
class LogAppendInfo:
    """What an append did. For a duplicate (idempotent retry) the original batch's offsets are
    returned with `duplicate=True` and nothing was appended."""

    first_offset: int
    last_offset: int
    max_timestamp: int
    offset_of_max_timestamp: int
    log_append_time: int
    log_start_offset: int
    records_count: int
    valid_bytes: int
    duplicate: bool = False
    flush: bool = False                  # flush.messages reached: the append waits for fsync


def _now_ms():
    return int(time.time() * 1000)


class Log:
    def __init__(self, dir_path, topic, partition, config, loaded, *, writer=None, topic_id=None,
                 clock=_now_ms, replicated=False, on_offline=None, scheduler=None):
        self.dir_path = dir_path
        self.topic = topic
        self.partition = partition
        self.config = config
        self.writer = writer or SyncWriter()
        self.clock = clock
        self.replicated = replicated
        self.on_offline = on_offline
        self.scheduler = scheduler        # callable(delay_s, fn, writer, on_error): delayed deletes
        self.segments = loaded.segments
        self._bases = [s.base_offset for s in self.segments]
        self.log_start_offset = loaded.log_start_offset
        self.recovery_point = loaded.recovery_point
        self.leader_epoch_cache = loaded.leader_epoch_cache
        self.producer_state = loaded.producer_state
        self.load_report = loaded.report
        self._next_offset = loaded.next_offset
        end = self._end_metadata()
        self._stable = end
        self.high_watermark_metadata = end if not replicated else LogOffsetMetadata(self.log_start_offset)
        self._flushed_offset = self.recovery_point
        self._write_waiters = collections.deque()
        self._flush_waiters = collections.deque()
        self._unwritten = collections.deque()   # [done, segment, end position, next offset]
        self._background_flushes = set()  # roll fsyncs running off the writer
        self.offline_error = None
        self.last_flush_ms = clock()
        self.topic_id = None
        if topic_id is not None:
            self.assign_topic_id(topic_id)

    # ---- construction ---------------------------------------------------------------------

    @classmethod
    def open(cls, dir_path, topic, partition, config=None, *, had_clean_shutdown=True,
             recovery_point=0, log_start_offset=0, writer=None, topic_id=None, clock=_now_ms,
             replicated=False, on_offline=None, scheduler=None, verify="structure"):
        """Open (creating if needed) the log in `dir_path` (`<log_dir>/<topic>-<partition>`),
        recovering it as Kafka's LogLoader does. `dir_path=None` gives an in-memory log.
        `verify="full"` also CRC-checks the segments that recovery does not rewrite."""
        config = config or LogConfig()
        loaded = recovery.LogLoader(dir_path, f"{topic}-{partition}", config, had_clean_shutdown,
                                    recovery_point, log_start_offset, clock(), verify).load()
        return cls(dir_path, topic, partition, config, loaded, writer=writer, topic_id=topic_id,
                   clock=clock, replicated=replicated, on_offline=on_offline, scheduler=scheduler)

    @property
    def name(self):
        return f"{self.topic}-{self.partition}"

    def assign_topic_id(self, topic_id):
        """Record the topic id in `partition.metadata` (checked against an existing one)."""
        if self.dir_path is None:
            self.topic_id = topic_id
            return
        f = PartitionMetadataFile(os.path.join(self.dir_path, "partition.metadata"))
        existing = f.read()
        if existing is not None and existing != topic_id:
            raise InconsistentTopicIdError(
                f"{self.name}: topic id {topic_id} does not match the stored {existing}")
        if existing is None:
            f.write(topic_id)
        self.topic_id = topic_id

    # ---- offsets ----------------------------------------------------------------------------

    @property
    def active_segment(self):
        return self.segments[-1]

    @property
    def log_end_offset(self):
        return self._next_offset

    @property
    def dirty_offset(self):
        return self._next_offset

    @property
    def stable_offset(self):
        return self._stable.message_offset

    @property
    def flushed_offset(self):
        return self._flushed_offset

    @property
    def high_watermark(self):
        return self.high_watermark_metadata.message_offset

    @property
    def last_stable_offset(self):
        first_unstable = self.producer_state.first_unstable_offset()
        hw = self.high_watermark
        return hw if first_unstable is None else min(first_unstable, hw)

    @property
    def size(self):
        return sum(s.size for s in self.segments)

    def _end_metadata(self):
        seg = self.active_segment
        return LogOffsetMetadata(self._next_offset, seg.base_offset, seg.size)

    def _check_online(self):
        if self.offline_error is not None:
            raise self.offline_error

    # ---- append -----------------------------------------------------------------------------

    async def append(self, records, *, leader_epoch=-1, origin=AppendOrigin.CLIENT):
        """Append record batches (offsets assigned here) and wait until they are written."""
        info = self.append_nowait(records, leader_epoch=leader_epoch, origin=origin)
        await self.wait_written(info.last_offset + 1)
        if info.flush:
            await self.wait_flushed(info.last_offset + 1)
        return info

    def append_as_leader(self, records, leader_epoch=-1, origin=AppendOrigin.CLIENT):
        """Blocking form for callers without an event loop (tools, tests) on a SyncWriter."""
        if self.writer.is_async:
            raise RuntimeError("append_as_leader needs a SyncWriter; use `await log.append(...)`")
        return self.append_nowait(records, leader_epoch=leader_epoch, origin=origin)

    def append_nowait(self, records, *, leader_epoch=-1, origin=AppendOrigin.CLIENT):
        """Assign offsets, index and queue the batches; returns LogAppendInfo at once. The log
        takes ownership of `records` (a writable buffer is modified in place; anything else is
        copied once). Raises the producer-state errors before anything is appended."""
        self._check_online()
        buf = _writable(records)
        batches = _parse_batches(buf)
        duplicate = self._find_duplicate(batches, origin)
        if duplicate is not None:
            return duplicate
        now = self.clock()
        append_time = now if self.config.log_append_time else None
        plan = _plan_offsets(batches, self._next_offset, append_time)
        producer_infos = self._validate_producers(batches, plan, origin)
        self._maybe_roll(plan, now)
        self._write_batches(buf, batches, plan, leader_epoch, origin, append_time)
        for info in producer_infos.values():
            self.producer_state.update(info)
        self.producer_state.update_map_end_offset(plan.next_offset)
        self._maybe_assign_epoch(batches, plan, leader_epoch, origin)
        flush = self._next_offset - self.recovery_point >= self.config.flush_messages
        if flush:
            self.flush_nowait(self._next_offset)
        return LogAppendInfo(plan.first_offset, plan.last_offset, plan.max_timestamp,
                             plan.offset_of_max_timestamp, -1 if append_time is None else append_time,
                             self.log_start_offset, plan.records_count, plan.size, flush=flush)

    def _find_duplicate(self, batches, origin):
        if origin != AppendOrigin.CLIENT:
            return None
        for batch in batches:
            if batch.producer_id < 0:
                continue
            meta = self.producer_state.find_duplicate(batch)
            if meta is not None:
                return LogAppendInfo(meta.first_offset, meta.last_offset, meta.timestamp, meta.last_offset,
                                     meta.timestamp, self.log_start_offset, 0, 0, duplicate=True)
        return None

    def _validate_producers(self, batches, plan, origin):
        infos = {}
        for batch, base in zip(batches, plan.bases):
            if batch.producer_id < 0:
                continue
            info = infos.get(batch.producer_id)
            if info is None:
                info = infos[batch.producer_id] = self.producer_state.prepare_update(batch.producer_id, origin)
            if batch.is_control:
                info.append_control_batch(batch.producer_epoch, base)
                continue
            last_seq = _last_seq(batch)
            ts = plan.append_time if plan.append_time is not None else batch.max_timestamp
            info.append_data_batch(batch.producer_epoch, batch.base_sequence, last_seq, ts, base,
                                   base + batch.last_offset_delta, batch.is_transactional)
        return infos

    def _maybe_roll(self, plan, now):
        cfg = self.config
        if self.segments[-1].should_roll_for(cfg.max_segment_ms, cfg.segment_bytes, plan.max_timestamp,
                                             plan.last_offset, plan.size, now):
            try:
                self.roll(plan.first_offset)
            except OSError as exc:
                self._mark_offline(exc)
                raise self.offline_error from exc

    def _write_batches(self, buf, batches, plan, leader_epoch, origin, append_time):
        records_api = _records_api
        seg = self.active_segment
        epoch_to_stamp = leader_epoch if origin != AppendOrigin.REPLICATION else None
        for batch, base, pos in zip(batches, plan.bases, plan.positions):
            epoch = batch.partition_leader_epoch if epoch_to_stamp is None else epoch_to_stamp
            records_api.assign_offsets(buf, pos, base, epoch, append_time)
            last = base + batch.last_offset_delta
            max_ts = append_time if append_time is not None else batch.max_timestamp
            raw = buf[pos:pos + batch.size]
            end_position = seg.dirty_size + batch.size
            seg.append_batch(raw, last, max_ts, self.writer,
                             self._written_callback(seg, end_position, last + 1))
            self._next_offset = last + 1

    def _maybe_assign_epoch(self, batches, plan, leader_epoch, origin):
        changed = False
        for batch, base in zip(batches, plan.bases):
            epoch = leader_epoch if origin != AppendOrigin.REPLICATION else batch.partition_leader_epoch
            latest = self.leader_epoch_cache.latest_epoch
            if epoch >= 0 and (latest is None or epoch > latest):
                changed |= self.leader_epoch_cache.assign(epoch, base)
        if changed:
            self._persist_epoch_cache()

    def _written_callback(self, segment, end_position, next_offset):
        # The writer completes the writes of one file in order, but not those of different
        # files (a write parked in the kernel must not hold up the other partitions): the last
        # writes to a rolled segment may complete after the first ones to the next. Offsets
        # become readable only up to the first write still outstanding.
        entry = [False, segment, end_position, next_offset]
        pending = self._unwritten
        pending.append(entry)

        def done(exc):
            if exc is not None:
                self._mark_offline(exc)
                return
            entry[0] = True
            if not pending or pending[0] is not entry:
                return      # an earlier write is outstanding (or a truncation dropped this one)
            start = reached = self._stable.message_offset
            while pending and pending[0][0]:
                _, seg, end, nxt = pending.popleft()
                seg.log.on_written(end)
                if nxt > reached:
                    reached = nxt
                    self._stable = LogOffsetMetadata(nxt, seg.base_offset, end)
            if reached > start:
                if not self.replicated:
                    self.high_watermark_metadata = self._stable
                self._wake(self._write_waiters, reached)
        return done

    # ---- waiting ----------------------------------------------------------------------------

    async def wait_written(self, offset):
        """Wait until every offset below `offset` is written (readable)."""
        await self._wait(self._write_waiters, offset, lambda: self._stable.message_offset)

    async def wait_flushed(self, offset):
        await self._wait(self._flush_waiters, offset, lambda: self._flushed_offset)

    async def _wait(self, waiters, offset, current):
        import asyncio
        self._check_online()
        if current() >= offset:
            return
        fut = asyncio.get_running_loop().create_future()
        waiters.append((offset, fut))
        await fut

    def _wake(self, waiters, reached):
        while waiters and waiters[0][0] <= reached:
            _, fut = waiters.popleft()
            if not fut.done():
                fut.set_result(None)

    def _mark_offline(self, exc):
        if self.offline_error is None:
            err = KafkaStorageError(f"{self.name}: I/O error: {exc}")
            err.__cause__ = exc
            self.offline_error = err
        for waiters in (self._write_waiters, self._flush_waiters):
            while waiters:
                _, fut = waiters.popleft()
                if not fut.done():
                    fut.set_exception(self.offline_error)
        if self.on_offline is not None:
            self.on_offline(self, exc)

    def _io_done(self, exc):
        if exc is not None:
            self._mark_offline(exc)

    # ---- roll and flush ---------------------------------------------------------------------

    def roll(self, new_offset=None):
        """Start a new active segment at `new_offset` (default: the log end offset)."""
        new_offset = self._next_offset if new_offset is None else new_offset
        old = self.active_segment
        if old.base_offset == new_offset and old.dirty_size == 0:
            return old
        old.on_become_inactive()
        if getattr(old.log, "preallocated", False):       # after its last queued write
            self.writer.submit_call(old.log.trim_preallocation, self._io_done)
        seg = self._new_segment(new_offset)
        self.segments.append(seg)
        self._bases.append(new_offset)
        self.producer_state.update_map_end_offset(new_offset)
        self.producer_state.take_snapshot(write=self._queue_file_write)
        self.flush_nowait(new_offset, background=True)
        return seg

    def _new_segment(self, base_offset):
        if self.dir_path is not None:
            prefix = os.path.join(self.dir_path, filename_prefix(base_offset))
            if os.path.exists(prefix + ".log") and os.path.getsize(prefix + ".log") > 0:
                raise KafkaStorageError(f"{self.name}: segment file {prefix}.log already exists")
            for suffix in (".index", ".timeindex", ".txnindex"):
                _unlink(prefix + suffix)
        jitter = random.randrange(self.config.segment_jitter_ms) if self.config.segment_jitter_ms > 0 else 0
        return LogSegment.open(self.dir_path, base_offset, self.config, create=True, rolling_jitter_ms=jitter)

    def _queue_file_write(self, path, data):
        self.writer.submit_side_call(lambda: write_atomic(path, data), self._io_done)

    def _persist_epoch_cache(self):
        if self.dir_path is not None:
            self._queue_file_write(os.path.join(self.dir_path, LEADER_EPOCH_CHECKPOINT),
                                   self.leader_epoch_cache.encode())

    def flush_nowait(self, offset=None, *, background=False):
        """Queue an fsync of every segment holding offsets in [recovery_point, offset).

        background=True (a roll, as Kafka's async flush of the old segment): the fsync runs on a
        worker thread once the writes queued so far have completed, and the writer goes on
        taking appends meanwhile. Through the writer, the fsync of a 1 GiB segment held every
        append of the log dir behind it (e2e p99 ~0.45 s in each benchmark cell whose latency run
        rolled a segment)."""
        target = self._next_offset if offset is None else min(offset, self._next_offset)
        if target <= self._flushed_offset:
            return
        segs = self._segments_overlapping(self.recovery_point, target)

        def flush_all():
            for seg in segs:
                seg.flush()

        def done(exc):
            if exc is not None:
                self._mark_offline(exc)
                return
            if target > self._flushed_offset:
                self._flushed_offset = target
                self.recovery_point = max(self.recovery_point, target)
                self.last_flush_ms = self.clock()
                self._wake(self._flush_waiters, target)
        if background and self.writer.is_async and self._flush_in_background(flush_all, done):
            return
        self.writer.submit_call(flush_all, done)

    def _flush_in_background(self, flush_all, done):
        import asyncio
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return False

        async def run():
            try:
                await self.writer.adrain()      # the rolled segment's writes have all landed
                await loop.run_in_executor(None, flush_all)
            except Exception as exc:  # noqa: BLE001 - the log goes offline, as for any I/O error
                done(exc)
                return
            done(None)

        task = loop.create_task(run())
        self._background_flushes.add(task)
        task.add_done_callback(self._background_flushes.discard)
        return True

    async def flush(self, offset=None):
        """fsync up to `offset` (default: everything appended) and advance the recovery point."""
        target = self._next_offset if offset is None else offset
        self.flush_nowait(target)
        await self.wait_flushed(min(target, self._next_offset))

    def _segments_overlapping(self, start, end):
        i = max(0, bisect.bisect_right(self._bases, start) - 1)
        return [s for s in self.segments[i:] if s.base_offset < end]

    # ---- reads ------------------------------------------------------------------------------

    def _isolation_bound(self, isolation):
        if isolation == FetchIsolation.LOG_END:
            return self._stable
        if isolation == FetchIsolation.TXN_COMMITTED and self.last_stable_offset < self.high_watermark:
            return self.offset_metadata(self.last_stable_offset)
        hw = self.high_watermark_metadata
        if hw.segment_base_offset < 0 and hw.message_offset > self.log_start_offset:
            hw = self.high_watermark_metadata = self.offset_metadata(hw.message_offset)
        return hw

    def read(self, start_offset, max_length, isolation=FetchIsolation.HIGH_WATERMARK,
             min_one_message=True):
        """FetchDataInfo for a fetch at start_offset. Raises OffsetOutOfRangeError outside
        [log_start_offset, log_end_offset]; empty records at or above the isolation bound."""
        self._check_online()
        if start_offset < self.log_start_offset or start_offset > self._next_offset:
            raise OffsetOutOfRangeError(
                f"Received request for offset {start_offset} for partition {self.name}, but we only "
                f"have log segments in the range {self.log_start_offset} to {self._next_offset}.")
        bound = self._isolation_bound(isolation)
        if start_offset >= bound.message_offset:
            return FetchDataInfo(LogOffsetMetadata(start_offset))
        i = max(0, bisect.bisect_right(self._bases, start_offset) - 1)
        for seg in self.segments[i:]:
            info = self._read_segment(seg, start_offset, max_length, bound, min_one_message)
            if info is not None:
                return info
        return FetchDataInfo(LogOffsetMetadata(start_offset))

    def _read_segment(self, seg, start_offset, max_length, bound, min_one_message):
        if seg.base_offset > bound.segment_base_offset >= 0:
            return None
        max_position = bound.relative_position_in_segment \
            if seg.base_offset == bound.segment_base_offset else seg.size
        try:
            return seg.read(start_offset, max_length, max_position, min_one_message)
        except LogCorruptedError as exc:
            self._mark_corrupt(exc)
            raise
        except OSError as exc:
            self._mark_offline(exc)
            raise self.offline_error from exc

    def _mark_corrupt(self, exc):
        self.offline_error = exc
        if self.on_offline is not None:
            self.on_offline(self, exc)

    def offset_metadata(self, offset):
        """LogOffsetMetadata (segment and byte position) of the batch holding `offset`."""
        if offset >= self._stable.message_offset:
            return self._stable if offset == self._stable.message_offset else LogOffsetMetadata(offset)
        i = max(0, bisect.bisect_right(self._bases, offset) - 1)
        seg = self.segments[i]
        found = seg.translate_offset(offset)
        if found is None:
            return LogOffsetMetadata(offset, seg.base_offset, seg.size)
        return LogOffsetMetadata(offset, seg.base_offset, found[0])

    def read_bytes(self, start_offset, max_length, isolation=FetchIsolation.HIGH_WATERMARK):
        """Convenience: the bytes of `read(...)`."""
        return self.read(start_offset, max_length, isolation).tobytes()

    # ---- offsets by timestamp and epoch -------------------------------------------------------

    def fetch_offset_by_timestamp(self, timestamp, max_offset=None):
        """ListOffsets: TimestampAndOffset or None. `timestamp` may be EARLIEST_TIMESTAMP (-2),
        LATEST_TIMESTAMP (-1), MAX_TIMESTAMP (-3), EARLIEST_LOCAL_TIMESTAMP (-4),
        LATEST_TIERED_TIMESTAMP (-5) or a timestamp in ms. `max_offset` (the caller's last fetchable
        offset: high watermark or LSO) caps the result as Kafka's Partition does; LATEST returns it."""
        self._check_online()
        cap = self.stable_offset if max_offset is None else max_offset
        epoch_of = self.leader_epoch_cache.epoch_for_offset
        if timestamp in (EARLIEST_TIMESTAMP, EARLIEST_LOCAL_TIMESTAMP):
            return TimestampAndOffset(NO_TIMESTAMP, self.log_start_offset, epoch_of(self.log_start_offset))
        if timestamp == LATEST_TIMESTAMP:
            return TimestampAndOffset(NO_TIMESTAMP, cap, self.leader_epoch_cache.latest_epoch)
        if timestamp == LATEST_TIERED_TIMESTAMP:
            return TimestampAndOffset(NO_TIMESTAMP, -1, None)
        found = self._max_timestamp_offset() if timestamp == MAX_TIMESTAMP else self._offset_for_time(timestamp)
        if found is None or found.offset >= cap:
            return None
        return found

    def _max_timestamp_offset(self):
        best = None
        for seg in self.segments:
            if seg.max_timestamp_so_far >= 0 and (best is None or seg.max_timestamp_so_far > best.max_timestamp_so_far):
                best = seg
        return None if best is None else best.max_timestamp_record()

    def _offset_for_time(self, timestamp):
        for seg in self.segments:
            if seg.max_timestamp_so_far >= timestamp:
                found = seg.find_offset_by_timestamp(timestamp, self.log_start_offset)
                if found is not None:
                    return found
        return None

    def end_offset_for_epoch(self, leader_epoch):
        """OffsetForLeaderEpoch: (epoch, end_offset); (-1, -1) when unknown."""
        return self.leader_epoch_cache.end_offset_for(leader_epoch, self.stable_offset)

    def latest_epoch(self):
        return self.leader_epoch_cache.latest_epoch

    # ---- high watermark and log start offset --------------------------------------------------

    def update_high_watermark(self, offset):
        """Set the high watermark (replication): clamped to [log_start_offset, stable_offset]."""
        offset = max(self.log_start_offset, min(offset, self.stable_offset))
        self.high_watermark_metadata = self.offset_metadata(offset)
        return offset

    def maybe_increment_log_start_offset(self, new_offset):
        """DeleteRecords: raise the log start offset (not above the high watermark); segments
        wholly below it are deleted by `delete_old_segments`."""
        if new_offset > self.high_watermark:
            raise OffsetOutOfRangeError(
                f"Cannot increment the log start offset to {new_offset} of partition {self.name} "
                f"since it is larger than the high watermark {self.high_watermark}")
        if new_offset > self.log_start_offset:
            self.log_start_offset = new_offset
            if self.leader_epoch_cache.truncate_from_start(new_offset):
                self._persist_epoch_cache()
            return True
        return False

    # ---- retention ----------------------------------------------------------------------------

    def delete_old_segments(self, now=None, *, retention=True):
        """Delete segments below the log start offset and, when cleanup.policy has `delete` (and
        `retention`), past retention.ms / retention.bytes (the active one too, after rolling,
        when it is wholly expired). Returns the number deleted. Kafka's deleteOldSegments."""
        now = self.clock() if now is None else now
        doomed = self._segments_to_delete(now, retention and self.config.delete)
        if not doomed:
            return 0
        if doomed[-1] is self.active_segment:
            self.roll()                    # Kafka: keep an (empty) active segment at the log end
        for seg in doomed:
            self._remove_segment(seg)
        new_start = self.segments[0].base_offset
        if new_start > self.log_start_offset:
            self.log_start_offset = new_start
            if self.leader_epoch_cache.truncate_from_start(new_start):
                self._persist_epoch_cache()
            self.producer_state.delete_snapshots_before(new_start)
        return len(doomed)

    def _segments_to_delete(self, now, by_retention=True):
        remaining = self.size
        doomed = []
        cfg = self.config
        for i, seg in enumerate(self.segments):
            last = i == len(self.segments) - 1
            if last and (seg.size == 0 or self.stable_offset != self._next_offset):
                break
            next_base = self._next_offset if last else self.segments[i + 1].base_offset
            expired = by_retention and cfg.retention_ms >= 0 and \
                _largest_timestamp(seg) < now - cfg.retention_ms
            too_big = by_retention and cfg.retention_bytes >= 0 and \
                remaining - seg.size >= cfg.retention_bytes
            below_start = next_base <= self.log_start_offset
            if not (expired or too_big or below_start) or next_base > self.high_watermark:
                break
            doomed.append(seg)
            remaining -= seg.size
        return doomed

    def _remove_segment(self, seg):
        self.segments.remove(seg)
        self._bases.remove(seg.base_offset)
        seg.change_file_suffixes("", DELETED_SUFFIX)

        if self.scheduler is not None and self.dir_path is not None:
            # closed and unlinked off the loop and off the writer (see LogManager._delete_later)
            self.scheduler(self.config.file_delete_delay_ms / 1000.0, seg.delete_if_exists,
                           self.writer, self._io_done)
        else:
            seg.delete_if_exists()

    # ---- truncation ---------------------------------------------------------------------------

    async def truncate_to(self, target_offset):
        """Remove every batch at or after target_offset (follower truncation). Returns True when
        anything was removed."""
        await self.writer.adrain()
        return self.truncate_to_drained(target_offset)

    def truncate_to_drained(self, target_offset):
        """`truncate_to` for callers that already drained the writer (or use a SyncWriter)."""
        self._check_online()
        if target_offset < 0:
            raise ValueError(f"cannot truncate {self.name} to a negative offset {target_offset}")
        if target_offset >= self._next_offset:
            return False
        if target_offset < self.active_segment.base_offset and target_offset <= self.segments[0].base_offset:
            self.truncate_fully_and_start_at(target_offset)
            return True
        for seg in [s for s in self.segments if s.base_offset > target_offset]:
            self.segments.remove(seg)
            self._bases.remove(seg.base_offset)
            seg.delete_if_exists()
        active = self.active_segment
        active.truncate_to(target_offset)
        active.resize_indexes(self.config.segment_index_bytes)
        self._after_truncation(target_offset)
        return True

    def truncate_fully_and_start_at(self, new_offset):
        """Delete every segment and start empty at new_offset (the writer must be drained)."""
        for seg in self.segments:
            seg.delete_if_exists()
        self.segments = [self._new_segment(new_offset)]
        self._bases = [new_offset]
        self.log_start_offset = new_offset
        self.leader_epoch_cache.clear()
        self._persist_epoch_cache()
        self.producer_state.truncate_fully_and_start_at(new_offset)
        self._after_truncation(new_offset)

    def _after_truncation(self, target):
        self._unwritten.clear()     # the writer was drained: nothing is outstanding
        self._next_offset = target
        self._stable = self._end_metadata()
        if self.high_watermark > target or not self.replicated:
            self.high_watermark_metadata = self._stable
        self.recovery_point = min(self.recovery_point, target)
        self._flushed_offset = min(self._flushed_offset, target)
        if self.leader_epoch_cache.truncate_from_end(target):
            self._persist_epoch_cache()
        recovery.rebuild_producer_state(self.producer_state, self.segments, self.log_start_offset,
                                        target, self.clock())

    # ---- lifecycle ----------------------------------------------------------------------------

    async def close(self):
        """Drain the writer, snapshot producer state at the log end, flush, close the files."""
        if self._background_flushes:
            import asyncio
            await asyncio.gather(*self._background_flushes, return_exceptions=True)
        if self.offline_error is None:
            await self.writer.adrain()
            self.flush_nowait()
            await self.writer.adrain()
            self.producer_state.update_map_end_offset(self._next_offset)
            self.producer_state.take_snapshot()
        self.close_files()

    def close_sync(self):
        """`close` for SyncWriter logs (no loop needed)."""
        if self.writer.is_async:
            raise RuntimeError("close_sync needs a SyncWriter")
        if self.offline_error is None:
            self.flush_nowait()
            self.producer_state.update_map_end_offset(self._next_offset)
            self.producer_state.take_snapshot()
        self.close_files()

    def close_files(self):
        for seg in self.segments:
            seg.close()
        if self.offline_error is None:
            self.offline_error = KafkaStorageError(f"{self.name}: the log is closed")

    def delete_files(self):
        """Close and remove the partition directory (the manager renames it first)."""
        self.close_files()
        if self.dir_path is not None and os.path.isdir(self.dir_path):
            shutil.rmtree(self.dir_path)

    def verify(self):
        """Full check of every batch in every segment (CRC, structure, offsets) without changing
        anything; raises LogCorruptedError at the first problem."""
        from pybroker.log.segment import iter_checked_batches
        prev = self.log_start_offset - 1
        for seg in self.segments:
            for position, batch, error in iter_checked_batches(seg.log, 0, seg.size):
                if error is None and batch.base_offset <= prev:
                    error = f"batch base offset {batch.base_offset} is not above {prev}"
                if error is not None:
                    raise LogCorruptedError(seg.log.path or self.name, position, error)
                prev = batch.last_offset

    def __repr__(self):
        return (f"Log({self.name}, start={self.log_start_offset}, end={self._next_offset}, "
                f"hw={self.high_watermark}, segments={len(self.segments)})")


# ---- helpers --------------------------------------------------------------------------------------

def _unlink(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _largest_timestamp(seg):
    """Kafka's LogSegment.largestTimestamp: the max record timestamp, or the file's last
    modification time when the segment carries no timestamps."""
    if seg.max_timestamp_so_far >= 0:
        return seg.max_timestamp_so_far
    path = seg.log.path
    if path is not None:
        try:
            return int(os.stat(path).st_mtime * 1000)
        except OSError:
            pass
    return seg.created_ms


def _writable(records):
    mv = memoryview(records)
    if mv.readonly or mv.format != "B" or mv.ndim != 1 or not mv.c_contiguous:
        return memoryview(bytearray(mv.tobytes()))
    return mv


def _parse_batches(buf):
    """RecordBatch views over the whole buffer; a trailing partial batch is an error."""
    api = _records_api
    batches, pos = [], 0
    for batch in api.iter_batches(buf):
        batches.append(batch)
        pos += batch.size
    if pos != len(buf):
        raise CorruptRecordError(f"{len(buf) - pos} trailing bytes are not a whole batch", pos)
    if not batches:
        raise CorruptRecordError("no record batch to append", 0)
    return batches


def _last_seq(batch):
    from pybroker.log.producer_state import NO_SEQUENCE, increment_sequence
    if batch.base_sequence < 0:
        return NO_SEQUENCE
    return increment_sequence(batch.base_sequence, batch.last_offset_delta)


class _Plan:
    __slots__ = ("bases", "positions", "first_offset", "last_offset", "next_offset", "max_timestamp",
                 "offset_of_max_timestamp", "records_count", "size", "append_time")


def _plan_offsets(batches, next_offset, append_time):
    plan = _Plan()
    plan.bases, plan.positions = [], []
    plan.first_offset = next_offset
    plan.max_timestamp, plan.offset_of_max_timestamp = NO_TIMESTAMP, -1
    plan.records_count = plan.size = 0
    plan.append_time = append_time
    for batch in batches:
        plan.bases.append(next_offset)
        plan.positions.append(plan.size)
        last = next_offset + batch.last_offset_delta
        ts = append_time if append_time is not None else batch.max_timestamp
        if ts > plan.max_timestamp:
            plan.max_timestamp, plan.offset_of_max_timestamp = ts, last
        plan.records_count += batch.records_count
        plan.size += batch.size
        next_offset = last + 1
    plan.last_offset = next_offset - 1
    plan.next_offset = next_offset
    return plan
