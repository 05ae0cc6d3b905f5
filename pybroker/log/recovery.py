"""LogLoader: open a partition directory and bring it to a consistent state (Kafka's LogLoader).

1. Delete temporary files (`.cleaned`, `.deleted`, `*.tmp`); complete interrupted swaps
   (`.log.swap` replaces the segments it covers; swap index files are dropped and rebuilt).
2. Delete orphan index files; load every `.log` in offset order. A segment whose `.index` is
   missing or whose indexes fail their sanity check is rebuilt at once.
3. After an unclean shutdown, recover every segment from the one holding the recovery point:
   check every batch (CRC, structure, increasing offsets), rebuild the indexes, truncate at the first
   invalid batch and delete every later segment (Kafka's behaviour).
4. Segments that are not recovered (before the recovery point, or all after a clean shutdown) get
   a cheap structural check: indexes sane, the batch-header chain from the last index entry ends
   exactly at the end of the file, and segments do not overlap; with verify="full" every batch's
   CRC is checked too. A failure there is a LogCorruptedError (KAFKA_STORAGE_ERROR): that data is
   never silently truncated nor served. (Reads walk batch headers too: a damaged header met by a
   fetch takes the log offline; a bad index entry met there makes the segment rebuild its index.)
5. Log end offset below the log start offset checkpoint -> start empty at the log start offset.
   Make sure an active segment exists, with indexes grown back to segment.index.bytes.
6. Truncate the leader-epoch cache to the log, rebuild producer state from the newest snapshot
   <= log end offset plus replay of the batches after it.
"""
import logging
import os
from dataclasses import dataclass, field

from pybroker.log.checkpoint import LEADER_EPOCH_CHECKPOINT, TMP_SUFFIX, LeaderEpochCheckpointFile
from pybroker.log.epoch_cache import LeaderEpochFileCache
from pybroker.log.errors import CorruptIndexError, LogCorruptedError
from pybroker.log.producer_state import ProducerStateManager, SNAPSHOT_SUFFIX
from pybroker.log.segment import (
    CLEANED_SUFFIX, DELETED_SUFFIX, INDEX_SUFFIX, LOG_SUFFIX, SWAP_SUFFIX, TIME_INDEX_SUFFIX,
    TXN_INDEX_SUFFIX, LogSegment, iter_checked_batches, offset_from_filename)

_log = logging.getLogger("pybroker.log")
_INDEX_SUFFIXES = (INDEX_SUFFIX, TIME_INDEX_SUFFIX, TXN_INDEX_SUFFIX)


@dataclass
class LoadedLog:
    segments: list
    log_start_offset: int
    recovery_point: int
    next_offset: int
    leader_epoch_cache: LeaderEpochFileCache
    producer_state: ProducerStateManager
    report: list = field(default_factory=list)   # what recovery did, one line per action


class LogLoader:
    def __init__(self, dir_path, name, config, had_clean_shutdown, recovery_point, log_start_offset,
                 now_ms, verify="structure"):
        self.dir = dir_path
        self.name = name
        self.config = config
        self.clean = had_clean_shutdown
        self.recovery_point = recovery_point
        self.log_start_offset = log_start_offset
        self.now_ms = now_ms
        self.verify = verify          # "structure" (cheap, default) or "full" (CRC of every batch)
        self.recovered = []
        self.report = []

    def _note(self, msg):
        self.report.append(msg)
        _log.warning("[%s] %s", self.name, msg)

    # ---- entry point ----------------------------------------------------------------------

    def load(self):
        epoch_cache, producer_state = self._state_holders()
        if self.dir is None:
            segments = [LogSegment.open(None, self.log_start_offset, self.config, create=True)]
            return LoadedLog(segments, self.log_start_offset, self.log_start_offset,
                             self.log_start_offset, epoch_cache, producer_state, self.report)
        os.makedirs(self.dir, exist_ok=True)
        self._remove_temp_files_and_complete_swaps()
        segments = self._load_segments()
        if not self.clean:
            segments = self._recover(segments, epoch_cache)
        self._check_unrecovered(segments)
        segments, next_offset = self._ensure_active(segments, epoch_cache, producer_state)
        self.log_start_offset = max(self.log_start_offset, segments[0].base_offset)
        self._truncate_epochs(epoch_cache, next_offset)
        producer_state.delete_snapshots_before(segments[0].base_offset)
        rebuild_producer_state(producer_state, segments, self.log_start_offset, next_offset, self.now_ms)
        recovery_point = next_offset if self.clean else min(self.recovery_point, next_offset)
        return LoadedLog(segments, self.log_start_offset, recovery_point, next_offset, epoch_cache,
                         producer_state, self.report)

    def _state_holders(self):
        checkpoint = None
        if self.dir is not None:
            checkpoint = LeaderEpochCheckpointFile(os.path.join(self.dir, LEADER_EPOCH_CHECKPOINT))
        epoch_cache = LeaderEpochFileCache.load(checkpoint)
        producer_state = ProducerStateManager(self.name, self.dir, self.config.producer_id_expiration_ms)
        return epoch_cache, producer_state

    # ---- step 1: temporary files and swaps --------------------------------------------------

    def _remove_temp_files_and_complete_swaps(self):
        swaps = []
        for name in sorted(os.listdir(self.dir)):
            path = os.path.join(self.dir, name)
            if name.endswith(DELETED_SUFFIX) or name.endswith(CLEANED_SUFFIX) or name.endswith(TMP_SUFFIX):
                os.unlink(path)
                self._note(f"deleted temporary file {name}")
            elif name.endswith(SWAP_SUFFIX):
                if name.endswith(LOG_SUFFIX + SWAP_SUFFIX):
                    swaps.append(name)
                else:
                    os.unlink(path)  # index swap files are rebuilt from the log
                    self._note(f"deleted temporary file {name}")
        for name in swaps:
            self._complete_swap(name)

    def _complete_swap(self, name):
        base = offset_from_filename(name)
        swap_path = os.path.join(self.dir, name)
        # the swapped-in segment replaces every segment whose base offset lies in its range
        seg = LogSegment.open(self.dir, base, self.config, file_suffix=SWAP_SUFFIX)
        try:
            seg.recover()
            end = seg.read_next_offset()
        finally:
            seg.close()
        for other in self._log_files():
            other_base = offset_from_filename(other)
            if base <= other_base < end:
                self._delete_segment_files(other_base)
        for suffix in _INDEX_SUFFIXES:
            _unlink(os.path.join(self.dir, f"{base:020d}{suffix}{SWAP_SUFFIX}"))
        os.rename(swap_path, swap_path[:-len(SWAP_SUFFIX)])
        self._note(f"completed interrupted swap of {name}")

    # ---- step 2: load -----------------------------------------------------------------------

    def _log_files(self):
        return sorted((n for n in os.listdir(self.dir) if n.endswith(LOG_SUFFIX)
                       and n[:-len(LOG_SUFFIX)].isdigit()), key=offset_from_filename)

    def _delete_segment_files(self, base):
        for suffix in (LOG_SUFFIX,) + _INDEX_SUFFIXES:
            _unlink(os.path.join(self.dir, f"{base:020d}{suffix}"))

    def _load_segments(self):
        bases = {offset_from_filename(n) for n in self._log_files()}
        for name in os.listdir(self.dir):
            stem, dot, suffix = name.partition(".")
            if stem.isdigit() and "." + suffix in _INDEX_SUFFIXES and int(stem) not in bases:
                os.unlink(os.path.join(self.dir, name))
                self._note(f"deleted orphan index file {name}")
        ordered = sorted(bases)
        # after an unclean shutdown, segments from the one holding the recovery point are rebuilt
        # by _recover anyway: their index contents are not checked here (as Kafka)
        recover_from = max((b for b in ordered if b <= self.recovery_point), default=-1) \
            if not self.clean else None
        return [self._load_segment(base, i == len(ordered) - 1,
                                   recover_from is not None and base >= recover_from)
                for i, base in enumerate(ordered)]

    def _load_segment(self, base, is_last, will_recover):
        index_path = os.path.join(self.dir, f"{base:020d}{INDEX_SUFFIX}")
        had_index = os.path.exists(index_path)
        seg = LogSegment.open(self.dir, base, self.config)
        if is_last:
            seg.resize_indexes(self.config.segment_index_bytes)
        if will_recover:
            return seg
        problem = None if had_index else "offset index missing"
        if problem is None:
            try:
                seg.sanity_check()
            except CorruptIndexError as exc:
                problem = str(exc)
        if problem is not None:
            self._rebuild_indexes(seg, problem)
        return seg

    def _rebuild_indexes(self, seg, problem):
        """Rebuild a segment's indexes; data loss here is corruption, not a crash tail — unless the
        segment is at or after the recovery point, where the unclean-shutdown recovery would
        truncate it anyway."""
        seg.offset_index.resize(self.config.segment_index_bytes)
        seg.time_index.resize(self.config.segment_index_bytes)
        size_before = seg.log.file_size()
        truncated, reason = seg.recover()
        self._note(f"rebuilt indexes of segment {seg.base_offset} ({problem})")
        if truncated and (self.clean or seg.read_next_offset() < self.recovery_point):
            raise LogCorruptedError(seg.log.path, size_before - truncated, reason)

    # ---- step 3: recovery after an unclean shutdown -------------------------------------------

    def _recover(self, segments, epoch_cache):
        start = max((i for i, s in enumerate(segments) if s.base_offset <= self.recovery_point),
                    default=0)
        for i in range(start, len(segments)):
            seg = segments[i]
            seg.resize_indexes(self.config.segment_index_bytes)
            truncated, reason = seg.recover(on_batch=lambda b: epoch_cache.assign(b.partition_leader_epoch, b.base_offset))
            self.recovered.append(seg)
            if i < len(segments) - 1:
                seg.offset_index.trim_to_valid_size()
                seg.time_index.trim_to_valid_size()
            if truncated:
                self._note(f"truncated {truncated} bytes of segment {seg.base_offset}: {reason}")
                for later in segments[i + 1:]:
                    later.delete_if_exists()
                    self._note(f"deleted segment {later.base_offset} after the truncation point")
                segments = segments[:i + 1]
                seg.resize_indexes(self.config.segment_index_bytes)
                break
        if segments:
            segments[-1].resize_indexes(self.config.segment_index_bytes)
        return segments

    # ---- step 4: structural check of what was not recovered ------------------------------------

    def _check_unrecovered(self, segments):
        from pybroker import _impl
        core = _impl.load("index")
        for i, seg in enumerate(segments):
            start = seg.offset_index.last_entry()[1]
            stop, _, last = core.walk_batches(seg.log.source(), start, seg.size)
            if stop != seg.size:
                raise LogCorruptedError(seg.log.path, stop, "batch-header chain does not end at the end "
                                        "of the file (damage in a segment that was not recovered)")
            if i + 1 < len(segments) and last >= segments[i + 1].base_offset:
                raise LogCorruptedError(seg.log.path, stop, f"last offset {last} overlaps the next "
                                        f"segment at {segments[i + 1].base_offset}")
            if self.verify == "full" and seg not in self.recovered:
                for position, _, error in iter_checked_batches(seg.log, 0, seg.size):
                    if error is not None:
                        raise LogCorruptedError(seg.log.path, position, error)

    # ---- step 5: active segment -----------------------------------------------------------------

    def _ensure_active(self, segments, epoch_cache, producer_state):
        next_offset = segments[-1].read_next_offset() if segments else self.log_start_offset
        if segments and next_offset < self.log_start_offset:
            self._note(f"log end offset {next_offset} is below the log start offset "
                       f"{self.log_start_offset}: deleting every segment")
            for seg in segments:
                seg.delete_if_exists()
            segments = []
            epoch_cache.clear()
            producer_state.truncate_fully_and_start_at(self.log_start_offset)
        if not segments:
            next_offset = self.log_start_offset
            segments = [LogSegment.open(self.dir, next_offset, self.config, create=True)]
        segments[-1].resize_indexes(self.config.segment_index_bytes)
        return segments, next_offset

    def _truncate_epochs(self, epoch_cache, next_offset):
        changed = epoch_cache.truncate_from_end(next_offset)
        changed |= epoch_cache.truncate_from_start(self.log_start_offset)
        if changed or not self.clean:
            epoch_cache.persist()


def rebuild_producer_state(producer_state, segments, log_start_offset, log_end_offset, now_ms):
    """Newest snapshot <= log_end_offset, then replay every batch after it."""
    start = producer_state.load_from_snapshot(log_start_offset, log_end_offset, now_ms)
    for seg in segments:
        if seg.size == 0 or (seg is not segments[-1] and _next_base(segments, seg) <= start):
            continue
        for _, batch, error in iter_checked_batches(seg.log, 0, seg.size, validate=False):
            if error is not None or batch.base_offset >= log_end_offset:
                break
            if batch.last_offset >= start:
                producer_state.apply_batch(batch)
    producer_state.update_map_end_offset(log_end_offset)
    if producer_state.dir_path is not None and log_end_offset > start:
        producer_state.take_snapshot()


def _next_base(segments, seg):
    i = segments.index(seg)
    return segments[i + 1].base_offset


def _unlink(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
