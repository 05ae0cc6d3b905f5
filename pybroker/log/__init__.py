"""Partition storage: Kafka's on-disk log layout (LogManager -> Log -> LogSegment -> OffsetIndex /
TimeIndex), producer state for idempotence, crash recovery, and an in-memory twin.

Entry points for the broker:
  LogManager(log_dirs, config=LogConfig(...), node_id=..., storage="disk"|"memory").startup()
  manager.get_or_create_log(topic, partition, topic_id=...) -> Log
  await log.append(batches, leader_epoch=...) -> LogAppendInfo
  log.read(offset, max_bytes, isolation=FetchIsolation.HIGH_WATERMARK) -> FetchDataInfo
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
