"""What every client does in a capture run (tests/golden/capture.py), so the frames of different
clients are comparable. GoldenClient.java does the same with the same values.

1. admin: create PREFIX-<codec> for each codec (1 partition) and PREFIX-tmp; describe the configs
   of PREFIX-none; delete PREFIX-tmp;
2. one idempotent producer (acks=all) per codec, each sending RECORDS to PREFIX-<codec>;
3. a consumer in group PREFIX-group subscribed to the five topics reads all records from the
   earliest offset, commits synchronously, keeps polling for a few seconds so that a Heartbeat
   goes out, and closes (LeaveGroup).
"""
import time

CODECS = ("none", "gzip", "snappy", "lz4", "zstd")

# (key, value, headers): a keyed record with headers, a tombstone (null value) whose header has a
# null value, and an unkeyed record. Values repeat so that compression has something to do.
RECORDS = [
    (b"key-1", b"golden value one " * 4, [("h1", b"header-one"), ("h-empty", b"")]),
    (b"key-2", None, [("h-null", None)]),
    (None, b"golden value three " * 4, []),
]

HEARTBEAT_WAIT = 4.0   # > heartbeat.interval.ms default (3 s)
DEADLINE = 60.0


def records(null_header_values=True):
    """RECORDS, or for a client that refuses null header values (kafka-python) the same with
    the null header value replaced by an empty one."""
    if null_header_values:
        return RECORDS
    return [(k, v, [(hk, b"" if hv is None else hv) for hk, hv in h]) for k, v, h in RECORDS]


def topics(prefix):
    return [f"{prefix}-{codec}" for codec in CODECS]


def expected(produced=RECORDS):
    """What the consumer must have read: (topic suffix, key, value, headers) for each record."""
    return sorted(((codec, k, v, tuple(h)) for codec in CODECS for k, v, h in produced), key=repr)


def check(prefix, got, produced=RECORDS):
    """got: iterable of (topic, key, value, headers); raises unless it is `produced` x codecs."""
    norm = sorted(((t[len(prefix) + 1:], k, v, tuple((hk, hv) for hk, hv in (h or [])))
                   for t, k, v, h in got), key=repr)
    if norm != expected(produced):
        raise SystemExit(f"consumed records differ from produced ones:\n{norm}\n!=\n{expected(produced)}")


class Deadline:
    def __init__(self, seconds=DEADLINE):
        self.end = time.monotonic() + seconds

    def __bool__(self):
        return time.monotonic() < self.end
