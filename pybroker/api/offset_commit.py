"""OffsetCommit (key 8), versions 2-10: commit a group's consumed positions.

Per partition: UNKNOWN_TOPIC_OR_PARTITION for a topic or partition that does not exist (v10,
topics by id: UNKNOWN_TOPIC_ID), OFFSET_METADATA_TOO_LARGE past offset.metadata.max.bytes; for the
group: generation -1 with no member is a standalone commit (creates a simple group), else the
classic generation (ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID, REBALANCE_IN_PROGRESS,
FENCED_INSTANCE_ID) or the consumer-protocol member epoch (STALE_MEMBER_EPOCH; such members must
use v9+) is checked; an unknown group with a generation gets ILLEGAL_GENERATION (v9+:
GROUP_ID_NOT_FOUND). v2-4's retention_time_ms sets an explicit expiry. The answer leaves once the
offsets are durable in __consumer_offsets.
"""
from pybroker.coordinator import RequestInfo

API_KEY = 8
VERSIONS = (2, 10)


async def handle(ctx, req):
    return await ctx.state.group_coordinator.commit_offsets(RequestInfo.from_context(ctx), req)
