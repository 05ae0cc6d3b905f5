"""Partition storage: Kafka's on-disk log layout (LogManager -> Log -> LogSegment -> OffsetIndex /
TimeIndex), producer state for idempotence, crash recovery, and an in-memory twin.

API for the broker (every error is a LogError subclass carrying `.error_code`):

  LogConfig(...) / LogConfig.from_broker(broker_config) / LogConfig.from_dict(topic_configs, defaults)
  LogManager(log_dirs, *, config, node_id, cluster_id=None, storage="disk"|"memory",
             writer="thread"|"sync", broker_epoch=-1, replicated=False, verify="structure"|"full")
    .startup()                      blocking: lock dirs, meta.properties, load + recover every log
    .get_log(topic, p) -> Log|None  raises KafkaStorageError (56) when that log/dir is offline
    .get_or_create_log(topic, p, *, config=None, topic_id=None) -> Log
    .set_topic_config(topic, LogConfig)
    await .delete_log(topic, p)     rename to <topic>-<p>.<uuid>-delete, remove after file.delete.delay.ms
    await .delete_logs(topic, ps)   the same for many, checkpointing each dir once
    await .checkpoint() / .flush_dirty_logs() / .cleanup_logs() / .start_background(...)
    await .shutdown()               flush, snapshots, checkpoints, .kafka_cleanshutdown
    .offline_dirs, .cluster_id
  Log
    await .append(records, *, leader_epoch=-1, origin=AppendOrigin.CLIENT) -> LogAppendInfo
    .append_nowait(...) -> LogAppendInfo      queue only; then `await .wait_written(last + 1)` (also
                                             for a duplicate: its original may still be in flight)
                                             and `await .wait_flushed(last + 1)` when info.flush
    .read(offset, max_bytes, isolation=FetchIsolation.HIGH_WATERMARK, min_one_message=True)
        -> FetchDataInfo(.records: FileRegion (fd, position, length; .tobytes()) | memoryview | b"")
    .fetch_offset_by_timestamp(ts | EARLIEST/LATEST/MAX_TIMESTAMP..., max_offset=hw) -> TimestampAndOffset|None
    .end_offset_for_epoch(epoch) -> (epoch, end_offset)      (-1, -1) when unknown
    .log_start_offset .log_end_offset (== dirty_offset) .stable_offset .flushed_offset
    .high_watermark .last_stable_offset .recovery_point .topic_id .leader_epoch_cache
    .update_high_watermark(o) .maybe_increment_log_start_offset(o) .delete_old_segments()
    await .truncate_to(o) .truncate_fully_and_start_at(o) await .flush() .roll() await .close()
  LogAppendInfo: first_offset last_offset max_timestamp offset_of_max_timestamp log_append_time
                 log_start_offset records_count valid_bytes duplicate flush
"""
from pybroker.log.config import LogConfig
from pybroker.log.errors import (
    CorruptIndexError, CorruptSnapshotError, InconsistentClusterIdError, InconsistentTopicIdError,
    InvalidProducerEpochError, InvalidTxnStateError, KafkaStorageError, LogCorruptedError,
    LogDirOfflineError, LogError, OffsetOutOfRangeError, OutOfOrderSequenceError,
    UnknownProducerIdError)
from pybroker.log.file_records import FileRegion
from pybroker.log.log import (
    EARLIEST_LOCAL_TIMESTAMP, EARLIEST_TIMESTAMP, LATEST_TIERED_TIMESTAMP, LATEST_TIMESTAMP,
    MAX_TIMESTAMP, FetchIsolation, Log, LogAppendInfo)
from pybroker.log.manager import LogManager
from pybroker.log.producer_state import AppendOrigin
from pybroker.log.segment import FetchDataInfo, LogOffsetMetadata, LogSegment, TimestampAndOffset
from pybroker.log.writer import SyncWriter, ThreadedWriter

UnifiedLog = Log

__all__ = [
    "LogConfig", "LogManager", "Log", "UnifiedLog", "LogSegment", "LogAppendInfo", "FetchDataInfo",
    "FileRegion", "LogOffsetMetadata", "TimestampAndOffset", "FetchIsolation", "AppendOrigin",
    "SyncWriter", "ThreadedWriter", "EARLIEST_TIMESTAMP", "LATEST_TIMESTAMP", "MAX_TIMESTAMP",
    "EARLIEST_LOCAL_TIMESTAMP", "LATEST_TIERED_TIMESTAMP", "LogError", "KafkaStorageError",
    "LogDirOfflineError", "LogCorruptedError", "OffsetOutOfRangeError", "OutOfOrderSequenceError",
    "InvalidProducerEpochError", "InvalidTxnStateError", "UnknownProducerIdError",
    "CorruptIndexError", "CorruptSnapshotError", "InconsistentTopicIdError",
    "InconsistentClusterIdError",
]
