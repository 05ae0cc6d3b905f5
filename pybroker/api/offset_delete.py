"""OffsetDelete (key 47), version 0: delete a group's committed offsets for some partitions.

GROUP_ID_NOT_FOUND for an unknown group; NON_EMPTY_GROUP for a classic group with members that
does not use the consumer protocol; per partition UNKNOWN_TOPIC_OR_PARTITION, or
GROUP_SUBSCRIBED_TO_TOPIC while the group subscribes to the topic.
"""
from pybroker.coordinator import RequestInfo

API_KEY = 47
VERSIONS = (0, 0)


async def handle(ctx, req):
    return await ctx.state.group_coordinator.delete_offsets(RequestInfo.from_context(ctx), req)
