"""Where the coordinator's records go: the partitions of `__consumer_offsets`, behind a tiny
interface so the same coordinator runs over the broker's partition log or an in-memory fake.

    class OffsetsLog(Protocol):
        async def append(self, partition: int, batch: bytes) -> int
            # append one record batch (v2, built here) to that partition of __consumer_offsets;
            # returns its base offset once it is durable; raises an exception carrying a Kafka
            # `error_code` (or `code`) when it cannot be written
        def read(self, partition: int) -> AsyncIterator[bytes | memoryview]
            # the partition's record batches from the log start: each item holds whole batches

One coordinator operation's records become one batch (`encode_batch`); loading walks the batches
(`iter_records`) and replays records in log order, later records overriding earlier ones and a
tombstone (null value) deleting its key, as compaction would.
"""
from __future__ import annotations

import logging

from pybroker.codec import records as batches
from pybroker.codec.errors import DecodeError
from pybroker.coordinator import records as rec

log = logging.getLogger("pybroker.coordinator")


def encode_batch(records, timestamp_ms: int) -> bytes:
    """One uncompressed record batch holding `records` (CoordinatorRecord), in order."""
    items = [(r.key_bytes(), r.value_bytes(), [], timestamp_ms) for r in records]
    return batches.build_batch(items, base_timestamp=timestamp_ms)


def iter_records(chunk):
    """The CoordinatorRecords of the batches in `chunk` (bytes holding whole batches). Control
    batches (transaction markers) are skipped; so are records of types this coordinator does not
    keep. A corrupt batch raises CorruptRecordError; an undecodable record DecodeError."""
    for batch in batches.iter_batches(chunk):
        if batch.is_control:
            continue
        for record in batch.records():
            if record.key is None:
                raise DecodeError("coordinator record without a key", record.offset)
            decoded = rec.decode(record.key, record.value)
            if decoded is not None:
                yield decoded


class MemoryOffsetsLog:
    """An OffsetsLog in memory (tests, ephemeral brokers). `fail_appends` makes the next appends
    raise an error with the given Kafka code, to test failure paths."""

    def __init__(self):
        self.partitions = {}        # partition -> list of batch bytes
        self.next_offset = {}       # partition -> next offset
        self.fail_appends = None    # an int error code: the next appends fail with it
        self.appends = 0

    async def append(self, partition: int, batch: bytes) -> int:
        if self.fail_appends is not None:
            raise AppendError(self.fail_appends)
        view = batches.RecordBatch(batch)
        base = self.next_offset.get(partition, 0)
        self.partitions.setdefault(partition, []).append(bytes(batch))
        self.next_offset[partition] = base + view.last_offset_delta + 1
        self.appends += 1
        return base

    async def read(self, partition: int):
        for batch in list(self.partitions.get(partition, ())):
            yield batch

    def records(self, partition: int) -> list:
        """Every CoordinatorRecord written to a partition, in order (tests)."""
        out = []
        for batch in self.partitions.get(partition, ()):
            out.extend(iter_records(batch))
        return out


class AppendError(Exception):
    def __init__(self, code: int):
        super().__init__(f"append failed with error {code}")
        self.error_code = code


class PartitionOffsetsLog:
    """An OffsetsLog over the broker's partitions of __consumer_offsets (a ReplicaManager, or
    anything with `partition(topic, index)` giving objects with `append_records(records, batch)`,
    `read(offset, max_bytes)`, `log_start_offset` and `high_watermark`). A partition this broker
    does not host fails with NOT_LEADER_OR_FOLLOWER, which the coordinator answers as
    NOT_COORDINATOR."""

    def __init__(self, replicas, topic="__consumer_offsets", read_bytes=4 * 1024 * 1024):
        self.replicas = replicas
        self.topic = topic
        self.read_bytes = read_bytes

    def _partition(self, index):
        part = self.replicas.partition(self.topic, index)
        if part is None:
            raise AppendError(6)  # NOT_LEADER_OR_FOLLOWER
        return part

    async def append(self, partition: int, batch: bytes) -> int:
        part = self._partition(partition)
        data = bytearray(batch)
        result = part.append_records(data, batches.RecordBatch(data))
        if hasattr(result, "__await__"):
            result = await result
        return result.base_offset

    async def read(self, partition: int):
        part = self._partition(partition)
        offset = part.log_start_offset
        while offset < part.high_watermark:
            data = _readable(part.read(offset, self.read_bytes, min_one=True).records)
            last = None
            for last in batches.iter_batches(data):
                pass
            if last is None:
                return
            yield data
            offset = last.next_offset


def _readable(records):
    """Bytes of what a partition read returns: bytes or a memoryview as is; a file region (the
    zero-copy fetch form, possibly wrapping the segment's own region) read from its file."""
    if isinstance(records, (bytes, bytearray, memoryview)):
        return records
    if hasattr(records, "tobytes"):
        return records.tobytes()
    source = getattr(records, "source", None)
    if hasattr(source, "tobytes"):
        return source.tobytes()
    if hasattr(source, "read"):
        return source.read(records.position, records.size)
    raise TypeError(f"cannot read records from {type(records).__name__}")
