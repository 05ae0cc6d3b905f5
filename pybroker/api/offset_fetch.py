"""OffsetFetch (key 9), versions 1-10: committed offsets of groups.

v1-7 ask for one group (`topics` null from v2 = every committed partition), v8+ for several
groups at once; v7+ `require_stable` waits for commits still being written; v9+ carry the
consumer-protocol member id/epoch (UNKNOWN_MEMBER_ID / STALE_MEMBER_EPOCH); v10 names topics by
id (UNKNOWN_TOPIC_ID per partition for an unknown id). A partition without a committed offset
answers offset -1, leader epoch -1, metadata "". Group-level errors go to the top-level error
code (v2-7), every requested partition (v1), or the group (v8+).
"""
from pybroker.codec.messages import OffsetFetchResponse
from pybroker.coordinator import RequestInfo

API_KEY = 9
VERSIONS = (1, 10)
MULTI_GROUP_VERSION = 8
TOPIC_ID_VERSION = 10
TOP_LEVEL_ERROR_VERSION = 2
R = OffsetFetchResponse


async def handle(ctx, req):
    coordinator = ctx.state.group_coordinator
    info = RequestInfo.from_context(ctx)
    if ctx.api_version < MULTI_GROUP_VERSION:
        topics = None if req.topics is None else [(t.name, None, t.partition_indexes)
                                                  for t in req.topics]
        group = await coordinator.fetch_offsets(info, req.group_id, topics,
                                                require_stable=req.require_stable)
        if group.error_code and ctx.api_version < TOP_LEVEL_ERROR_VERSION:
            return _error_per_partition(req, group.error_code)
        return _single_group(group, ctx.api_version)
    by_id = ctx.api_version >= TOPIC_ID_VERSION
    out = R(groups=[])
    for g in req.groups:
        topics = None if g.topics is None else [
            (None if by_id else t.name, t.topic_id if by_id else None, t.partition_indexes)
            for t in g.topics]
        out.groups.append(await coordinator.fetch_offsets(
            info, g.group_id, topics, g.member_id, g.member_epoch, req.require_stable, by_id))
    return out


def _error_per_partition(req, code):
    """v1 has no group-level error: every requested partition carries it (offset -1)."""
    return R(topics=[R.OffsetFetchResponseTopic(name=t.name, partitions=[
        R.OffsetFetchResponsePartition(partition_index=p, committed_offset=-1, metadata="",
                                       error_code=code) for p in t.partition_indexes])
        for t in req.topics or ()])


def _single_group(group, version):
    """The v1-7 shape of one OffsetFetchResponseGroup."""
    out = R(topics=[])
    if version >= TOP_LEVEL_ERROR_VERSION:
        out.error_code = group.error_code
    for t in group.topics:
        topic = R.OffsetFetchResponseTopic(name=t.name, partitions=[])
        for p in t.partitions:
            topic.partitions.append(R.OffsetFetchResponsePartition(
                partition_index=p.partition_index, committed_offset=p.committed_offset,
                committed_leader_epoch=p.committed_leader_epoch, metadata=p.metadata,
                error_code=p.error_code))
        out.topics.append(topic)
    return out
