"""OffsetForLeaderEpoch (key 23), versions 2-4: the end offset of a leader epoch, from the
partition's leader-epoch cache (the start offset of the next larger epoch, or the log end offset
for the current epoch); UNDEFINED (-1/-1) for an epoch before the first one.
Errors: UNKNOWN_TOPIC_OR_PARTITION 3, FENCED_LEADER_EPOCH 74, UNKNOWN_LEADER_EPOCH 75."""
from pybroker.codec.messages import OffsetForLeaderEpochResponse
from pybroker.replica.errors import PartitionError

API_KEY = 23
VERSIONS = (2, 4)
R = OffsetForLeaderEpochResponse


def handle(ctx, req):
    topics = []
    for t in req.topics:
        parts = [_one(ctx, t.topic, p) for p in t.partitions]
        topics.append(R.OffsetForLeaderTopicResult(topic=t.topic, partitions=parts))
    return R(throttle_time_ms=0, topics=topics)


def _one(ctx, topic, p):
    part = ctx.state.replicas.partition(topic, p.partition)
    if part is None:
        return R.EpochEndOffset(error_code=3, partition=p.partition, leader_epoch=-1, end_offset=-1)
    try:
        part.check_leader_epoch(p.current_leader_epoch)
        epoch, end = part.end_offset_for_epoch(p.leader_epoch)
    except PartitionError as exc:
        return R.EpochEndOffset(error_code=exc.code, partition=p.partition, leader_epoch=-1,
                                end_offset=-1)
    return R.EpochEndOffset(error_code=0, partition=p.partition, leader_epoch=epoch, end_offset=end)
