"""Kafka error codes the group coordinator answers with, and the exception that carries one.

Coordinator code raises `GroupError(code, message)`; the operation that owns the request turns it
into the response's error code (one place per API, as Kafka's `Errors.forException`).
"""
from __future__ import annotations

NONE = 0
UNKNOWN_SERVER_ERROR = -1
UNKNOWN_TOPIC_OR_PARTITION = 3
NOT_LEADER_OR_FOLLOWER = 6
REQUEST_TIMED_OUT = 7
MESSAGE_TOO_LARGE = 10
OFFSET_METADATA_TOO_LARGE = 12
COORDINATOR_LOAD_IN_PROGRESS = 14
COORDINATOR_NOT_AVAILABLE = 15
NOT_COORDINATOR = 16
RECORD_LIST_TOO_LARGE = 18
NOT_ENOUGH_REPLICAS = 19
ILLEGAL_GENERATION = 22
INCONSISTENT_GROUP_PROTOCOL = 23
INVALID_GROUP_ID = 24
UNKNOWN_MEMBER_ID = 25
INVALID_SESSION_TIMEOUT = 26
REBALANCE_IN_PROGRESS = 27
UNSUPPORTED_VERSION = 35
INVALID_REQUEST = 42
KAFKA_STORAGE_ERROR = 56
NON_EMPTY_GROUP = 68
GROUP_ID_NOT_FOUND = 69
MEMBER_ID_REQUIRED = 79
GROUP_MAX_SIZE_REACHED = 81
FENCED_INSTANCE_ID = 82
GROUP_SUBSCRIBED_TO_TOPIC = 86
UNSTABLE_OFFSET_COMMIT = 88
UNKNOWN_TOPIC_ID = 100
FENCED_MEMBER_EPOCH = 110
UNRELEASED_INSTANCE_ID = 111
UNSUPPORTED_ASSIGNOR = 112
STALE_MEMBER_EPOCH = 113
INVALID_REGULAR_EXPRESSION = 128

NAMES = {v: k for k, v in list(globals().items()) if k.isupper() and isinstance(v, int)}


class GroupError(Exception):
    """A request the coordinator refuses with a Kafka error code."""

    def __init__(self, code: int, message: str | None = None):
        super().__init__(message or NAMES.get(code, str(code)))
        self.code = code
        self.message = message


def append_error_code(exc: BaseException) -> int:
    """The code a failed append to __consumer_offsets is answered with (Kafka's
    appendGroupMetadataErrorToResponseError): storage codes become coordinator codes, so the client
    looks the coordinator up again instead of failing."""
    code = getattr(exc, "error_code", None)
    if code is None:
        code = getattr(exc, "code", UNKNOWN_SERVER_ERROR)
    if code in (UNKNOWN_TOPIC_OR_PARTITION, NOT_ENOUGH_REPLICAS, REQUEST_TIMED_OUT):
        return COORDINATOR_NOT_AVAILABLE
    if code in (NOT_LEADER_OR_FOLLOWER, KAFKA_STORAGE_ERROR):
        return NOT_COORDINATOR
    if code in (MESSAGE_TOO_LARGE, RECORD_LIST_TOO_LARGE, 4):  # 4: INVALID_FETCH_SIZE
        return UNKNOWN_SERVER_ERROR
    return code if isinstance(code, int) else UNKNOWN_SERVER_ERROR
