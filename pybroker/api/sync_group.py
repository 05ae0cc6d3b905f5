"""SyncGroup (key 14), versions 0-5: the leader hands over every member's assignment (opaque
bytes, passed through untouched); each member's SyncGroup is answered with its own once the group
metadata is written. v5+ carry protocol type/name, checked against the group's
(INCONSISTENT_GROUP_PROTOCOL). Errors: UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION,
REBALANCE_IN_PROGRESS, FENCED_INSTANCE_ID, INVALID_GROUP_ID, coordinator errors.
"""
from pybroker.coordinator import RequestInfo

API_KEY = 14
VERSIONS = (0, 5)


async def handle(ctx, req):
    return await ctx.state.group_coordinator.sync_group(RequestInfo.from_context(ctx), req)
