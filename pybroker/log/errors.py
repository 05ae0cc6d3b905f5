"""Typed storage errors. Each carries the Kafka error code the replica manager answers with; the
mapping lives here, once. I/O failures and corruption found on disk are KAFKA_STORAGE_ERROR: the
log (or its whole log dir) is taken offline and never served again until a restart recovers it."""


class LogError(Exception):
    """Base of every error raised by pybroker.log."""

    error_code = -1  # UNKNOWN_SERVER_ERROR


class OffsetOutOfRangeError(LogError):
    error_code = 1  # OFFSET_OUT_OF_RANGE


class KafkaStorageError(LogError):
    """A log dir or log is offline (I/O error, corruption); the partition answers 56."""

    error_code = 56  # KAFKA_STORAGE_ERROR


class LogDirOfflineError(KafkaStorageError):
    def __init__(self, log_dir, reason):
        self.log_dir = log_dir
        super().__init__(f"log dir {log_dir} is offline: {reason}")


class LogCorruptedError(KafkaStorageError):
    """Data that recovery may not silently drop (a segment before the recovery point, an overlap
    between segments, a header chain that does not end where the file ends) is damaged."""

    def __init__(self, path, position, reason):
        self.path = path
        self.position = position
        self.reason = reason
        super().__init__(f"{path}: corrupt at byte {position}: {reason}")


class CorruptIndexError(LogError):
    """An index file breaks its invariants; the loader rebuilds it from the log."""


class CorruptSnapshotError(LogError):
    """A producer-state snapshot fails its version or CRC check; it is deleted and an older one used."""


class LogSegmentOffsetOverflowError(LogError):
    """A batch's offsets do not fit in the segment's 32-bit relative offsets."""


class InvalidOffsetError(LogError):
    """An index append or truncation target goes backwards."""


class RecordBatchTooLargeError(LogError):
    error_code = 10  # MESSAGE_TOO_LARGE


class OutOfOrderSequenceError(LogError):
    error_code = 45  # OUT_OF_ORDER_SEQUENCE_NUMBER


class InvalidProducerEpochError(LogError):
    error_code = 47  # INVALID_PRODUCER_EPOCH


class InvalidTxnStateError(LogError):
    error_code = 48  # INVALID_TXN_STATE


class UnknownProducerIdError(LogError):
    """Kept for callers mapping errors by name. Since KIP-360 (Kafka 2.5) the broker no longer
    raises it on append: an unknown producer's first batch is accepted with any sequence."""

    error_code = 59  # UNKNOWN_PRODUCER_ID


class InconsistentTopicIdError(LogError):
    error_code = 103  # INCONSISTENT_TOPIC_ID


class InconsistentClusterIdError(LogError):
    error_code = 104  # INCONSISTENT_CLUSTER_ID
