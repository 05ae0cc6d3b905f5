"""Errors a partition operation reports to a handler, each carrying its Kafka error code."""


class PartitionError(Exception):
    def __init__(self, code: int, message: str = None):
        super().__init__(message or f"error {code}")
        self.code = code
        self.message = message


NOT_LEADER_OR_FOLLOWER = 6
OFFSET_OUT_OF_RANGE = 1
KAFKA_STORAGE_ERROR = 56
OUT_OF_ORDER_SEQUENCE_NUMBER = 45
DUPLICATE_SEQUENCE_NUMBER = 46
INVALID_PRODUCER_EPOCH = 47
UNKNOWN_PRODUCER_ID = 59
FENCED_LEADER_EPOCH = 74
UNKNOWN_LEADER_EPOCH = 75
