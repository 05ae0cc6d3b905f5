"""LogCleaner: compaction of `cleanup.policy=compact` logs (Kafka's LogCleaner, LogCleanerManager
and Cleaner), driven from the event loop, working in threads.

Choosing a log (on the loop, every `log.cleaner.backoff.ms` when idle):
  first dirty offset    the log's entry in `cleaner-offset-checkpoint` (reset to the log start
                        when missing, below the start or past the end)
  first uncleanable     min(active segment base, last stable offset, base of the first dirty
                        segment holding a record younger than min.compaction.lag.ms)
  dirty ratio           cleanable bytes [first dirty, first uncleanable) / bytes [start, first
                        uncleanable); the filthiest log above min.cleanable.dirty.ratio is cleaned,
                        or any log whose oldest dirty batch is older than max.compaction.lag.ms.
Cleaning (pybroker_core.cleaner in a worker thread, the GIL released for the record loops):
  1. offset map of the dirty section: key hash -> latest offset, bounded by
     log.cleaner.dedupe.buffer.size / log.cleaner.threads (x load factor); when it fills, this
     round ends at the last offset mapped and the rest waits for the next round.
  2. segments [log start, end of the map) in groups of at most segment.bytes (and index size),
     each copied through the record filter into one `<base>.log.cleaned` (+ .index.cleaned,
     .timeindex.cleaned) at the I/O rate log.cleaner.io.max.bytes.per.second, fsynced.
  3. crash-safe swap: rename the .cleaned files to .swap, fsync the dir, rename the replaced
     segments to .deleted, fsync the dir, rename .swap to the final names; the loop then swaps
     the in-memory segment list in one step (a reader sees the old or the new segments, never a
     mix) and closes the old files after file.delete.delay.ms. A crash anywhere in between is
     completed by recovery (pybroker/log/recovery.py: .cleaned deleted, .swap completed).
  4. `cleaner-offset-checkpoint` gets the round's end offset (written atomically).
Transaction markers: data of aborted transactions (from the log's aborted-transaction list, once
transactions exist) is removed; a marker is kept until its transaction has no data left and its
delete horizon (delete.retention.ms after the clean that found it so) has passed.

While a log is being cleaned, retention skips it (as Kafka: the two never touch a log at once).
A log whose data the cleaner cannot parse is marked uncleanable (logged, never touched again until
restart): its data is served unchanged and nothing is lost.
"""
import asyncio
import concurrent.futures
import logging
import os
import threading
import time
from dataclasses import dataclass

from pybroker import _impl
from pybroker.codec.errors import CodecError, CorruptRecordError
from pybroker.log.checkpoint import OffsetCheckpointFile, fsync_dir
from pybroker.log.errors import LogError
from pybroker.log.segment import (
    CLEANED_SUFFIX, DELETED_SUFFIX, INDEX_SUFFIX, LOG_SUFFIX, SWAP_SUFFIX, TIME_INDEX_SUFFIX,
    LogSegment, filename_prefix)

_core = _impl.load("cleaner")
_log = logging.getLogger("pybroker.log.cleaner")
CLEANER_OFFSET_CHECKPOINT = "cleaner-offset-checkpoint"
_INT32_MAX = 0x7FFFFFFF
_SUFFIXES = (INDEX_SUFFIX, TIME_INDEX_SUFFIX, LOG_SUFFIX)   # the .log is renamed last


@dataclass(frozen=True)
class CleanerConfig:
    enable: bool = True                               # log.cleaner.enable (static)
    threads: int = 1                                  # log.cleaner.threads
    dedupe_buffer_size: int = 134217728               # log.cleaner.dedupe.buffer.size
    io_buffer_size: int = 524288                      # log.cleaner.io.buffer.size
    io_buffer_load_factor: float = 0.9                # log.cleaner.io.buffer.load.factor
    backoff_ms: int = 15000                           # log.cleaner.backoff.ms
    max_io_bytes_per_second: float = 1.7976931348623157e308   # log.cleaner.io.max.bytes.per.second

    _KEYS = {"threads": "log.cleaner.threads", "dedupe_buffer_size": "log.cleaner.dedupe.buffer.size",
             "io_buffer_size": "log.cleaner.io.buffer.size",
             "io_buffer_load_factor": "log.cleaner.io.buffer.load.factor",
             "backoff_ms": "log.cleaner.backoff.ms",
             "max_io_bytes_per_second": "log.cleaner.io.max.bytes.per.second"}

    @classmethod
    def from_values(cls, get, enable=True):
        """From a lookup of broker keys (the registry's typed getter)."""
        changes = {attr: get(key) for attr, key in cls._KEYS.items() if get(key) is not None}
        return cls(enable=enable, **changes)

    @property
    def map_memory(self):
        return self.dedupe_buffer_size // max(1, self.threads)


class Throttler:
    """Keeps a byte rate by sleeping the calling worker thread (Kafka's Throttler). One per
    cleaner, shared by its threads: the rate is the cleaner's total I/O. The budget is
    recomputed over windows of `window` seconds, so an idle period earns no burst credit."""

    def __init__(self, rate, clock=time.monotonic, sleep=time.sleep, window=1.0):
        self.rate = rate
        self.clock = clock
        self.sleep = sleep
        self.window = window
        self.period_start = clock()
        self.observed = 0
        self.slept = 0.0
        self._lock = threading.Lock()

    def maybe_throttle(self, nbytes):
        if self.rate >= 1e300 or nbytes <= 0:
            return
        with self._lock:
            now = self.clock()
            if now - self.period_start > self.window:
                self.period_start, self.observed = now, 0
            self.observed += nbytes
            delay = self.observed / self.rate - (now - self.period_start)
        if delay > 0:
            self.sleep(delay)
            self.slept += delay


class CleaningAborted(Exception):
    pass


@dataclass
class LogToClean:
    tp: tuple
    log: object
    first_dirty: int
    first_uncleanable: int
    clean_bytes: int
    cleanable_bytes: int
    needs_compaction_now: bool
    aborted: bool = False

    @property
    def total_bytes(self):
        return self.clean_bytes + self.cleanable_bytes

    @property
    def ratio(self):
        return self.cleanable_bytes / self.total_bytes if self.total_bytes else 0.0


@dataclass
class CleanerStats:
    rounds: int = 0
    bytes_read: int = 0
    bytes_written: int = 0
    messages_read: int = 0
    messages_retained: int = 0
    seconds: float = 0.0
    last_error: str = ""


# ---- choosing what to clean ---------------------------------------------------------------------

def cleanable_offsets(log, checkpoint, now):
    """(first dirty offset, first uncleanable offset, checkpoint needs a reset)."""
    start, end = log.log_start_offset, log.log_end_offset
    first_dirty, reset = checkpoint, False
    if first_dirty is None or first_dirty < start or first_dirty > end:
        first_dirty, reset = start, first_dirty is not None
    candidates = [log.last_stable_offset, log.active_segment.base_offset]
    lag = max(log.config.min_compaction_lag_ms, 0)
    if lag > 0:
        for seg in _non_active_from(log, first_dirty):
            if seg.max_timestamp_so_far > now - lag:
                candidates.append(seg.base_offset)
                break
    return first_dirty, max(first_dirty, min(candidates)), reset


def _non_active_from(log, offset):
    segs = log.segments[:-1]
    return [s for i, s in enumerate(segs)
            if (segs[i + 1].base_offset if i + 1 < len(segs) else log.active_segment.base_offset) > offset]


def _overlapping(log, lo, hi):
    """Segments holding offsets in [lo, hi) (Kafka's logSegments(from, to))."""
    segs = log.segments
    return [s for i, s in enumerate(segs)
            if s.base_offset < hi and (i + 1 == len(segs) or segs[i + 1].base_offset > lo)]


def _max_compaction_delay(log, first_dirty, now):
    lag = max(log.config.max_compaction_lag_ms, 0)
    stamps = [_first_batch_timestamp(seg) for seg in _non_active_from(log, first_dirty)]
    stamps = [ts for ts in stamps if ts is not None and ts > 0]
    if not stamps:
        return 0
    until = now - lag
    return until - min(stamps) if min(stamps) < until else 0


def _first_batch_timestamp(seg):
    if seg.rolling_based_timestamp is not None:
        return seg.rolling_based_timestamp
    return seg._first_batch_max_timestamp()


def to_clean(tp, log, checkpoint, now):
    """Kafka's LogToClean: the dirty range and its sizes."""
    first_dirty, first_uncleanable, _ = cleanable_offsets(log, checkpoint, now)
    holding = [s for s in _non_active_from(log, first_uncleanable)]
    uncleanable_base = holding[0].base_offset if holding else log.active_segment.base_offset
    clean = sum(s.size for s in _overlapping(log, -1, first_dirty))
    cleanable = sum(s.size for s in _overlapping(log, min(first_dirty, uncleanable_base),
                                                 uncleanable_base))
    return LogToClean(tp, log, first_dirty, first_uncleanable, clean, cleanable,
                      _max_compaction_delay(log, first_dirty, now) > 0)


# ---- the cleaner --------------------------------------------------------------------------------

class LogCleaner:
    """Compaction for every compacted log of a LogManager. `start()` on the loop; `stop()`."""

    def __init__(self, manager, config=None, clock=None):
        self.manager = manager
        self.config = config or CleanerConfig()
        self.clock = clock or manager.clock
        self.checkpoints = {}           # (topic, partition) -> first dirty offset
        self.in_progress = {}           # (topic, partition) -> LogToClean
        self.uncleanable = {}           # (topic, partition) -> reason
        self.stats = CleanerStats()
        self._tasks = []
        self._executor = None
        self._wake = None
        self._stopping = False
        self._checkpoint_lock = threading.Lock()
        self._maps = []
        self._schedule = manager._delete_later      # delayed deletes of replaced segments
        self.throttler = None

    # ---- lifecycle ------------------------------------------------------------------------------

    def load_checkpoints(self):
        for d in self.manager.dirs:
            if d.online:
                path = os.path.join(d.path, CLEANER_OFFSET_CHECKPOINT)
                try:
                    self.checkpoints.update(OffsetCheckpointFile(path).read())
                except LogError as exc:
                    _log.error("ignoring unreadable %s: %s", path, exc)

    def start(self):
        if not self.config.enable or self.config.threads <= 0:
            return
        self._stopping = False
        self._wake = asyncio.Event()
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=self.config.threads, thread_name_prefix="log-cleaner")
        self._maps = [None] * self.config.threads
        self._tasks = [asyncio.ensure_future(self._run(i)) for i in range(self.config.threads)]

    async def stop(self):
        self._stopping = True
        for ltc in list(self.in_progress.values()):
            ltc.aborted = True
        if self._wake is not None:
            self._wake.set()
        tasks, self._tasks = self._tasks, []
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    async def reconfigure(self, config):
        """New settings (dynamic broker configs): threads and map memory restart the workers."""
        if config == self.config:
            return
        restart = (config.threads, config.dedupe_buffer_size, config.enable) != \
            (self.config.threads, self.config.dedupe_buffer_size, self.config.enable)
        if not restart:
            self.config = config
            return
        running = bool(self._tasks)
        await self.stop()
        self.config = config
        if running:
            self.start()

    def wakeup(self):
        """Look for work now (tests; a config change)."""
        if self._wake is not None:
            self._wake.set()

    # ---- the loop -------------------------------------------------------------------------------

    async def _run(self, slot):
        while not self._stopping:
            ltc = self.grab_filthiest_log()
            if ltc is None:
                try:
                    await asyncio.wait_for(self._wake.wait(), self.config.backoff_ms / 1000)
                except asyncio.TimeoutError:
                    pass
                self._wake.clear()
                continue
            try:
                await self.clean_log(ltc, slot)
            except CleaningAborted:
                _log.info("cleaning of %s-%d aborted", *ltc.tp)
            except (CodecError, LogError, OSError, ValueError, MemoryError) as exc:
                if self._gone(ltc):
                    _log.info("cleaning of %s-%d stopped: the log was closed or deleted", *ltc.tp)
                else:
                    self._mark_uncleanable(ltc, exc)
            finally:
                self.in_progress.pop(ltc.tp, None)

    def _gone(self, ltc):
        return ltc.log.offline_error is not None or self.manager.logs.get(ltc.tp) is not ltc.log

    def _mark_uncleanable(self, ltc, exc):
        self.uncleanable[ltc.tp] = str(exc)
        self.stats.last_error = f"{ltc.tp[0]}-{ltc.tp[1]}: {exc}"
        _log.error("log %s-%d is uncleanable (left as it is, nothing removed): %s", *ltc.tp, exc)

    def grab_filthiest_log(self, now=None):
        """The compacted log most in need of cleaning, marked in progress; None when none is."""
        now = self.clock() if now is None else now
        best = None
        for tp, log in self.manager.all_logs().items():
            if not log.config.compact or tp in self.in_progress or tp in self.uncleanable \
                    or log.offline_error is not None:
                continue
            ltc = to_clean(tp, log, self.checkpoints.get(tp), now)
            if ltc.total_bytes == 0:
                continue
            if not ((ltc.needs_compaction_now and ltc.cleanable_bytes > 0)
                    or ltc.ratio > log.config.min_cleanable_dirty_ratio):
                continue
            if best is None or ltc.ratio > best.ratio:
                best = ltc
        if best is not None:
            self.in_progress[best.tp] = best
        return best

    def is_cleaning(self, tp):
        return tp in self.in_progress

    def abort(self, tp):
        """Stop cleaning this log (deletion); its partial files are removed by the worker."""
        ltc = self.in_progress.get(tp)
        if ltc is not None:
            ltc.aborted = True

    def forget(self, tp):
        self.checkpoints.pop(tp, None)
        self.uncleanable.pop(tp, None)

    # ---- one log ----------------------------------------------------------------------------

    async def clean_log(self, ltc, slot=0, now=None):
        """One round of cleaning `ltc` (marked in progress by grab_filthiest_log); `now` is the
        time delete horizons are set from and compared with (default: the clock)."""
        loop = asyncio.get_running_loop()
        log = ltc.log
        t0 = time.monotonic()
        m = self._map(slot)
        now = self.clock() if now is None else now
        job = _Job(ltc, log, self.config, now, self._throttler())
        try:
            job.open_readers()
            end_offset = await loop.run_in_executor(self._executor, job.build_map, m)
            if end_offset <= log.log_start_offset or not job.segments_below(end_offset):
                await self._done(ltc, max(end_offset, ltc.first_dirty))
                return
            txn = _core.TxnMetadata(log_aborted_transactions(log, log.log_start_offset, end_offset))
            sc = _core.SegmentCleaner(m, now, log.config.delete_retention_ms,
                                      active_producers(log), txn, ltc.first_uncleanable)
            for group in job.groups(end_offset):
                self._check(ltc)
                cleaned = await loop.run_in_executor(self._executor, job.clean_group, group, sc)
                if self._gone(ltc):          # deleted meanwhile: nothing left to swap into
                    raise CleaningAborted()
                job.swap(group, cleaned, self._schedule)
            self.stats.messages_read += sc.messages_read
            self.stats.messages_retained += sc.messages_retained
            await self._done(ltc, end_offset)
        finally:
            job.close()
            self.stats.bytes_read += job.bytes_read
            self.stats.bytes_written += job.bytes_written
            self.stats.seconds += time.monotonic() - t0

    def _throttler(self):
        rate = self.config.max_io_bytes_per_second
        if self.throttler is None or self.throttler.rate != rate:
            self.throttler = Throttler(rate)
        return self.throttler

    def _check(self, ltc):
        if ltc.aborted or self._stopping or ltc.log.offline_error is not None or \
                self.manager.logs.get(ltc.tp) is not ltc.log:
            raise CleaningAborted()

    def _map(self, slot):
        want = self.config.map_memory
        if slot >= len(self._maps):
            self._maps.extend([None] * (slot + 1 - len(self._maps)))
        m = self._maps[slot]
        if m is None or m.memory != want - want % _core.SLOT_SIZE or \
                m.load_factor != self.config.io_buffer_load_factor:
            m = self._maps[slot] = _core.OffsetMap(want, self.config.io_buffer_load_factor)
        return m

    async def _done(self, ltc, end_offset):
        """Record the round's end; the checkpoint file (write, fsync, rename, fsync of the dir)
        is written by a worker thread, never on the loop."""
        self.stats.rounds += 1
        self.checkpoints[ltc.tp] = end_offset
        d = self.manager.log_dirs_of.get(ltc.tp)
        await asyncio.get_running_loop().run_in_executor(self._executor, self.write_checkpoint, d)

    def write_checkpoint(self, d):
        """cleaner-offset-checkpoint of one log dir (the logs it holds), written atomically."""
        if d is None or not d.online:
            return
        with self._checkpoint_lock:
            offsets = {tp: o for tp, o in list(self.checkpoints.items())
                       if self.manager.log_dirs_of.get(tp) is d}
            OffsetCheckpointFile(os.path.join(d.path, CLEANER_OFFSET_CHECKPOINT)).write(offsets)

    # ---- synchronous use (tools, tests without a loop) ------------------------------------------

    def clean_now(self, topic, partition, now=None):
        """Clean one log right away on the calling thread (ignores the dirty ratio); returns the
        round's end offset. For SyncWriter managers without a running loop."""
        tp = (topic, partition)
        log = self.manager.logs[tp]
        now = self.clock() if now is None else now
        ltc = to_clean(tp, log, self.checkpoints.get(tp), now)
        self.in_progress[tp] = ltc
        self._schedule = lambda delay, fn, writer=None, on_error=None: fn()  # no loop outlives this call
        try:
            return asyncio.run(self._clean_inline(ltc, now))
        finally:
            self._schedule = self.manager._delete_later
            self.in_progress.pop(tp, None)

    async def _clean_inline(self, ltc, now):
        await self.clean_log(ltc, now=now)
        return self.checkpoints[ltc.tp]


def active_producers(log):
    """{producer id: (last data offset or -1, epoch)} of the log's producer state."""
    return {pid: (e.last_data_offset, e.producer_epoch)
            for pid, e in log.producer_state.producers.items()}


def log_aborted_transactions(log, start, end):
    """(producer id, first offset, last offset) of aborted transactions in [start, end): from the
    log's transaction index once transactions exist; none before that."""
    collect = getattr(log, "collect_aborted_transactions", None)
    return list(collect(start, end)) if collect is not None else []


# ---- the work of one round ------------------------------------------------------------------

class _Reader:
    """A segment's bytes for a worker thread: its own descriptor (dup) so a concurrent close of the
    segment never hands a reused fd to the cleaner; in-memory segments read their buffer."""

    def __init__(self, seg):
        self.seg = seg
        self.size = seg.size
        self.fd = os.dup(seg.log.fd) if seg.log.path is not None else -1

    def read(self, pos, n):
        n = max(0, min(n, self.size - pos))
        if self.fd < 0:
            return self.seg.log.read(pos, n)
        chunks, got = [], 0
        while got < n:
            chunk = os.pread(self.fd, n - got, pos + got)
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)

    def close(self):
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


@dataclass
class _Cleaned:
    base_offset: int
    paths: dict                 # suffix -> final path (disk) | None
    segment: object = None      # the in-memory LogSegment (memory storage)


class _Job:
    def __init__(self, ltc, log, config, now, throttler=None):
        self.ltc = ltc
        self.log = log
        self.config = config
        self.log_config = log.config
        self.now = now
        self.segments = [s for s in log.segments[:-1] if s.base_offset < ltc.first_uncleanable]
        self.throttler = throttler or Throttler(config.max_io_bytes_per_second)
        self.bytes_read = 0
        self.bytes_written = 0
        self._readers = None

    def open_readers(self):
        """On the loop: a reader per segment, and where the map scan starts in the first dirty
        segment (its offset index, read here rather than in the worker)."""
        self._readers = {id(s): _Reader(s) for s in self.segments}
        start = self.ltc.first_dirty
        self._start_positions = {id(s): s.offset_index.lookup(start)[1]
                                 for s in self.segments if s.base_offset <= start}

    def close(self):
        for r in (self._readers or {}).values():
            r.close()

    def segments_below(self, end_offset):
        return [s for s in self.segments if s.base_offset < end_offset]

    def _check(self):
        if self.ltc.aborted:
            raise CleaningAborted()

    # ---- 1. offset map (worker thread) --------------------------------------------------------

    def build_map(self, m):
        """Map the dirty segments; returns the round's end offset (latest mapped + 1)."""
        m.clear()
        start = self.ltc.first_dirty
        txn = _core.TxnMetadata(log_aborted_transactions(self.log, start, self.ltc.first_uncleanable))
        for i, seg in enumerate(self.segments):
            if self._next_base(i) <= start:
                continue
            position = self._start_positions.get(id(seg), 0)
            full = []

            def add(data, pos):
                consumed, is_full = _core.build_offset_map(m, data, 0, start, txn, pos)
                if is_full:
                    full.append(True)
                    return None
                return consumed
            self._scan(self._readers[id(seg)], position, add)
            if full:
                break
            m.update_latest_offset(self._next_base(i) - 1)
        return m.latest_offset + 1

    def _next_base(self, i):
        return self.segments[i + 1].base_offset if i + 1 < len(self.segments) \
            else self.ltc.first_uncleanable

    def _scan(self, reader, position, fn):
        """fn(data, file position) over chunks of whole batches from `position` to the segment
        end; fn returns the bytes it consumed (0: the next batch is larger than the chunk, which
        then grows) or None to stop."""
        base = self.config.io_buffer_size or 524288
        size = base
        while position < reader.size:
            self._check()
            data = reader.read(position, size)
            self.bytes_read += len(data)
            self.throttler.maybe_throttle(len(data))
            consumed = fn(data, position)
            if consumed is None:
                return
            if consumed == 0:
                if len(data) < size:
                    raise _corrupt_tail(position)
                size *= 2
                continue
            position += consumed
            size = base

    # ---- 2. groups (loop) and their cleaning (worker thread) --------------------------------

    def groups(self, end_offset):
        """Kafka's groupSegmentsBySize over the segments below end_offset."""
        segs = self.segments_below(end_offset)
        max_size = self.log_config.segment_bytes
        max_index = self.log_config.segment_index_bytes
        out = []
        while segs:
            group = [segs.pop(0)]
            log_size = group[0].size
            oi, ti = group[0].offset_index.size_in_bytes, group[0].time_index.size_in_bytes
            while segs and log_size + segs[0].size <= max_size and \
                    oi + segs[0].offset_index.size_in_bytes <= max_index and \
                    ti + segs[0].time_index.size_in_bytes <= max_index and \
                    (segs[0].size == 0 or
                     self._last_offset_estimate(segs) - group[0].base_offset <= _INT32_MAX):
                log_size += segs[0].size
                oi += segs[0].offset_index.size_in_bytes
                ti += segs[0].time_index.size_in_bytes
                group.append(segs.pop(0))
            out.append(group)
        return out

    def _last_offset_estimate(self, segs):
        return segs[1].base_offset - 1 if len(segs) > 1 else self.ltc.first_uncleanable - 1

    def clean_group(self, group, sc):
        """Copy a group through the filter into one cleaned segment; returns _Cleaned (for disk
        logs the files already carry their final names and the old ones .deleted)."""
        base = group[0].base_offset
        sc.start_segment(base, self.log_config.index_interval_bytes)
        if self.log.dir_path is None:
            return self._clean_to_memory(group, sc, base)
        prefix = os.path.join(self.log.dir_path, filename_prefix(base))
        try:
            self._clean_to_files(group, sc, prefix)
            self._check()
        except BaseException:
            for suffix in _SUFFIXES:
                _unlink(prefix + suffix + CLEANED_SUFFIX)
            raise
        self._swap_files(group, prefix)
        return _Cleaned(base, {s: prefix + s for s in _SUFFIXES})

    def _filter(self, group, sc, sink):
        for seg in group:
            def clean(data, pos):
                out, consumed = sc.clean(data, 0, pos)
                if out:
                    sink(out)
                    self.bytes_written += len(out)
                    self.throttler.maybe_throttle(len(out))
                return consumed
            self._scan(self._readers[id(seg)], 0, clean)

    def _clean_to_files(self, group, sc, prefix):
        fd = os.open(prefix + LOG_SUFFIX + CLEANED_SUFFIX, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            self._filter(group, sc, lambda out: _write_all(fd, out))
            os.fsync(fd)
        finally:
            os.close(fd)
        offset_index, time_index = sc.finish_segment()
        for suffix, data in ((INDEX_SUFFIX, offset_index), (TIME_INDEX_SUFFIX, time_index)):
            _write_file(prefix + suffix + CLEANED_SUFFIX, data)

    def _swap_files(self, group, prefix):
        """.cleaned -> .swap, old segments -> .deleted, .swap -> final, each step made durable
        (fsync of the directory) before the next; recovery completes a crash at any point."""
        directory = self.log.dir_path
        for suffix in _SUFFIXES:
            os.rename(prefix + suffix + CLEANED_SUFFIX, prefix + suffix + SWAP_SUFFIX)
        fsync_dir(directory)
        for seg in group:
            for f in (seg.offset_index, seg.time_index, seg.log):
                if f.path is not None and os.path.exists(f.path):
                    os.rename(f.path, f.path + DELETED_SUFFIX)
        fsync_dir(directory)
        for suffix in _SUFFIXES:
            os.rename(prefix + suffix + SWAP_SUFFIX, prefix + suffix)
        fsync_dir(directory)

    def _clean_to_memory(self, group, sc, base):
        parts = []
        self._filter(group, sc, parts.append)
        offset_index, time_index = sc.finish_segment()
        return _Cleaned(base, None, _memory_segment(base, self.log_config, b"".join(parts),
                                                    offset_index, time_index))

    # ---- 3. in-memory swap (loop) ---------------------------------------------------------------

    def swap(self, group, cleaned, schedule):
        """Replace `group` by the cleaned segment in the log's segment list, in one step."""
        log = self.log
        if cleaned.segment is not None:
            new = cleaned.segment
        else:
            for seg in group:
                _point_at_deleted(seg)
            new = LogSegment.open(log.dir_path, cleaned.base_offset, log.config)
            new.offset_index.trim_to_valid_size()
            new.time_index.trim_to_valid_size()
        i = log.segments.index(group[0])
        log.segments[i:i + len(group)] = [new]
        log._bases[i:i + len(group)] = [new.base_offset]
        if log.dir_path is not None:
            delay = log.config.file_delete_delay_ms / 1000.0
            for seg in group:                 # closed and unlinked on the reaper thread
                schedule(delay, seg.delete_if_exists, log.writer, log._io_done)


def _point_at_deleted(seg):
    for f in (seg.offset_index, seg.time_index, seg.log):
        if f.path is not None and not f.path.endswith(DELETED_SUFFIX):
            f.path = f.path + DELETED_SUFFIX


def _memory_segment(base, config, data, offset_index, time_index):
    """An in-memory LogSegment holding `data` with the given index entries."""
    from pybroker.log.writer import SyncWriter
    seg = LogSegment.open(None, base, config, create=True)
    if data:
        seg.log.append_async(SyncWriter(), data, lambda exc: None)
        seg.log.on_written(len(data))
    for index, entries, size in ((seg.offset_index, offset_index, 8), (seg.time_index, time_index, 12)):
        index.resize(max(len(entries), size))
        index._buf[:len(entries)] = entries
        index.entries = len(entries) // size
        index.trim_to_valid_size()
    ts, off = seg.time_index.last_entry()
    seg.max_timestamp_so_far, seg.offset_of_max_timestamp_so_far = ts, (off if ts >= 0 else -1)
    return seg


def _corrupt_tail(position):
    return CorruptRecordError("a batch overruns the end of the segment", position)


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _write_file(path, data):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        _write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def _unlink(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
