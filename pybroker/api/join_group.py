"""JoinGroup (key 11), versions 0-9: the classic rebalance protocol's join phase.

Answered when the group's join phase completes (the handler awaits it): the leader gets every
member's protocol metadata, followers an empty list. v4+: a new dynamic member first gets
MEMBER_ID_REQUIRED (79) with its id (KIP-394). v5+: group.instance.id (static membership,
KIP-345). v9+: a static leader restarting into an unchanged group gets skip_assignment. Errors:
INVALID_GROUP_ID, INVALID_SESSION_TIMEOUT (outside group.min/max.session.timeout.ms),
UNKNOWN_MEMBER_ID, INCONSISTENT_GROUP_PROTOCOL, GROUP_MAX_SIZE_REACHED, FENCED_INSTANCE_ID,
COORDINATOR_LOAD_IN_PROGRESS / NOT_COORDINATOR. See pybroker/coordinator/classic_ops.py.
"""
from pybroker.coordinator import RequestInfo

API_KEY = 11
VERSIONS = (0, 9)
NULLABLE_PROTOCOL_NAME_VERSION = 7


async def handle(ctx, req):
    response = await ctx.state.group_coordinator.join_group(RequestInfo.from_context(ctx), req)
    if ctx.api_version < NULLABLE_PROTOCOL_NAME_VERSION and response.protocol_name is None:
        response.protocol_name = ""
    if response.leader is None:
        response.leader = ""
    return response
