"""ListOffsets (key 2), versions 1-11.

Timestamps: -1 latest (high watermark, or the last stable offset under read_committed), -2 earliest
(log start offset), -3 max timestamp (v7+: offset of the record with the largest timestamp),
-4 earliest local (v8+: the log start, no tiered storage), -5 latest tiered (v9+: none → -1),
≥ 0: the first offset whose timestamp is ≥ the target (or -1 if none). Errors per partition:
UNKNOWN_TOPIC_OR_PARTITION 3, FENCED_LEADER_EPOCH 74 / UNKNOWN_LEADER_EPOCH 75, INVALID_REQUEST 42
for a partition named twice, UNSUPPORTED_VERSION 35 for a special timestamp newer than the version.
"""
from pybroker.codec.messages import ListOffsetsResponse
from pybroker.replica.errors import PartitionError

API_KEY = 2
VERSIONS = (1, 11)
R = ListOffsetsResponse
LATEST, EARLIEST, MAX_TIMESTAMP, EARLIEST_LOCAL, LATEST_TIERED = -1, -2, -3, -4, -5
_MIN_VERSION = {MAX_TIMESTAMP: 7, EARLIEST_LOCAL: 8, LATEST_TIERED: 9}


def handle(ctx, req):
    seen = set()
    topics = []
    for t in req.topics:
        parts = []
        for p in t.partitions:
            key = (t.name, p.partition_index)
            if key in seen:
                parts.append(_error(p, 42))
                continue
            seen.add(key)
            parts.append(_one(ctx, t.name, p, req.isolation_level == 1))
        topics.append(R.ListOffsetsTopicResponse(name=t.name, partitions=parts))
    return R(throttle_time_ms=0, topics=topics)


def _error(p, code):
    return R.ListOffsetsPartitionResponse(partition_index=p.partition_index, error_code=code,
                                          timestamp=-1, offset=-1, leader_epoch=-1)


def _one(ctx, topic, p, committed):
    part = ctx.state.replicas.partition(topic, p.partition_index)
    if part is None:
        return _error(p, 3)
    ts = p.timestamp
    if ts < 0 and ctx.api_version < _MIN_VERSION.get(ts, 0):
        return _error(p, 35)
    try:
        part.check_leader_epoch(p.current_leader_epoch)
        offset, timestamp, epoch = _lookup(part, ts, committed)
    except PartitionError as exc:
        return _error(p, exc.code)
    return R.ListOffsetsPartitionResponse(partition_index=p.partition_index, error_code=0,
                                          timestamp=timestamp, offset=offset,
                                          leader_epoch=epoch if ctx.api_version >= 4 else -1)


def _lookup(part, ts, committed):
    """(offset, timestamp, leader epoch) for one ListOffsets timestamp."""
    if ts == LATEST:
        return (part.last_stable_offset if committed else part.high_watermark), -1, part.leader_epoch
    if ts in (EARLIEST, EARLIEST_LOCAL):
        return part.log_start_offset, -1, part.epoch_for_offset(part.log_start_offset)
    if ts == LATEST_TIERED:
        return -1, -1, -1
    if ts == MAX_TIMESTAMP:
        found = part.offset_of_max_timestamp()
    else:
        found = part.offset_for_timestamp(ts)
    if found is None:
        return -1, -1, -1
    offset, timestamp = found
    return offset, timestamp, part.epoch_for_offset(offset)
