"""One hosted partition: the leader's view over its Log.

Handlers call `append_records` (Produce), `read` (Fetch), the offset lookups (ListOffsets,
OffsetForLeaderEpoch) and `check_leader_epoch`. Storage errors become PartitionError with the
Kafka code the storage layer attached (KAFKA_STORAGE_ERROR, OUT_OF_ORDER_SEQUENCE_NUMBER, ...).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from pybroker.codec.messages import FileRegion
from pybroker.log.errors import LogError
from pybroker.log.log import FetchIsolation
from pybroker.replica.errors import FENCED_LEADER_EPOCH, UNKNOWN_LEADER_EPOCH, PartitionError


@dataclass
class AppendResult:
    base_offset: int
    log_append_time: int
    log_start_offset: int


@dataclass
class PartitionRead:
    records: object            # bytes / memoryview / FileRegion
    size: int
    high_watermark: int
    last_stable_offset: int
    log_start_offset: int
    aborted_transactions: Optional[list]
    # What the Fetch handler built from this read: a caught-up read is reused while the
    # partition does not change (Partition.read), and so is its response entry.
    response: object = None


class Partition:
    leader_epoch = 0

    def __init__(self, info, index, log, manager):
        self.topic = info.name
        self.topic_info = info
        self.index = index
        self.key = (info.name, index)
        self.log = log
        self.manager = manager
        self.deleted = False
        self._caught_up = None   # the PartitionRead answered to a caught-up read_uncommitted fetch

    # -- config-derived limits ----------------------------------------------------------------
    @property
    def max_message_bytes(self) -> int:
        return self.log.config.max_message_bytes

    @property
    def log_append_time(self) -> bool:
        return self.log.config.log_append_time

    @property
    def timestamp_after_max_ms(self) -> int:
        raw = self.topic_info.configs.get("message.timestamp.after.max.ms")
        if raw is not None:
            return int(raw)
        return self.manager.config["log.message.timestamp.after.max.ms"]

    # -- offsets ------------------------------------------------------------------------------
    @property
    def high_watermark(self) -> int:
        return self.log.high_watermark

    @property
    def last_stable_offset(self) -> int:
        return self.log.last_stable_offset

    @property
    def log_start_offset(self) -> int:
        return self.log.log_start_offset

    @property
    def log_end_offset(self) -> int:
        return self.log.log_end_offset

    def check_leader_epoch(self, current_leader_epoch: int) -> None:
        """Kafka's checks of a client's current_leader_epoch (-1 = not given)."""
        if current_leader_epoch < 0:
            return
        if current_leader_epoch < self.leader_epoch:
            raise PartitionError(FENCED_LEADER_EPOCH)
        if current_leader_epoch > self.leader_epoch:
            raise PartitionError(UNKNOWN_LEADER_EPOCH)

    # -- produce ------------------------------------------------------------------------------
    def append_records(self, records, batch):
        """Append one validated batch; returns an awaitable of AppendResult (written)."""
        if self.deleted:
            raise PartitionError(3, "This partition was deleted")
        try:
            info = self.log.append_nowait(records, leader_epoch=self.leader_epoch)
        except LogError as exc:
            raise PartitionError(exc.error_code, str(exc)) from exc
        result = AppendResult(info.first_offset, info.log_append_time, info.log_start_offset)
        if info.duplicate:
            return result
        return self._written(info, result)

    async def _written(self, info, result):
        try:
            await self.log.wait_written(info.last_offset + 1)
            if info.flush:
                await self.log.wait_flushed(info.last_offset + 1)
        except LogError as exc:
            raise PartitionError(exc.error_code, str(exc)) from exc
        self.manager.notify_append(self)
        return result

    # -- fetch --------------------------------------------------------------------------------
    def read(self, fetch_offset, max_bytes, *, min_one=True, read_committed=False,
             current_leader_epoch=-1) -> PartitionRead:
        self.check_leader_epoch(current_leader_epoch)
        log = self.log
        hw = log.high_watermark
        if fetch_offset == hw and log.offline_error is None and fetch_offset >= log.log_start_offset:
            # Caught up, the usual state of most partitions in a long poll over many: what
            # log.read would answer (nothing; the isolation bound is at or below the high
            # watermark), without its lookups. A 256-partition consumer re-reads every partition
            # of its session on each wake-up, and librdkafka (no fetch sessions) gets all of them
            # back in every response: the same read, and so its response entry, is reused until
            # the partition's offsets change.
            if not read_committed:
                cached, lso, start = self._caught_up, log.last_stable_offset, log.log_start_offset
                if cached is not None and cached.high_watermark == hw \
                        and cached.last_stable_offset == lso and cached.log_start_offset == start:
                    return cached
                cached = self._caught_up = PartitionRead(b"", 0, hw, lso, start, None)
                return cached
            records, size = b"", 0
        else:
            isolation = FetchIsolation.TXN_COMMITTED if read_committed else FetchIsolation.HIGH_WATERMARK
            try:
                info = log.read(fetch_offset, max_bytes, isolation, min_one_message=min_one)
            except LogError as exc:
                raise PartitionError(exc.error_code, str(exc)) from exc
            records = info.records
            # The first batch did not fit what is left of the response (min_one is off once an
            # earlier partition returned data): send nothing rather than a cut batch, as Kafka
            # does for Fetch v3+. A partition holding only a partial batch makes the Java
            # consumer fail ("Failed to make progress ... no complete records were found").
            size = 0 if info.first_entry_incomplete else len(records)
            if not size:
                records = b""
            elif not isinstance(records, (bytes, bytearray, memoryview)):
                records = FileRegion(records, records.position, size)  # sent with sendfile
        return PartitionRead(records, size, log.high_watermark, log.last_stable_offset,
                             log.log_start_offset, [] if read_committed else None)

    # -- offset lookups -----------------------------------------------------------------------
    def epoch_for_offset(self, offset: int) -> int:
        epoch = self.log.leader_epoch_cache.epoch_for_offset(offset)
        return -1 if epoch is None else epoch

    def offset_for_timestamp(self, timestamp: int):
        found = self._lookup(timestamp)
        return None if found is None else (found.offset, found.timestamp)

    def offset_of_max_timestamp(self):
        return self.offset_for_timestamp(-3)

    def _lookup(self, timestamp):
        try:
            return self.log.fetch_offset_by_timestamp(timestamp, self.log.high_watermark)
        except LogError as exc:
            raise PartitionError(exc.error_code, str(exc)) from exc

    def end_offset_for_epoch(self, leader_epoch: int):
        try:
            return self.log.end_offset_for_epoch(leader_epoch)
        except LogError as exc:
            raise PartitionError(exc.error_code, str(exc)) from exc
