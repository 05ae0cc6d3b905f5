"""LeaveGroup (key 13), versions 0-5: members leave a classic group (a rebalance follows).

v0-2 name one member (`member_id`); the member's error is the top-level error. v3+ remove a batch
(KIP-345), each by member id and/or group instance id (an admin removes static members by
instance id with an empty member id); per-member errors UNKNOWN_MEMBER_ID / FENCED_INSTANCE_ID.
An unknown group answers UNKNOWN_MEMBER_ID for every member.
"""
from pybroker.coordinator import RequestInfo

API_KEY = 13
VERSIONS = (0, 5)
BATCH_VERSION = 3


async def handle(ctx, req):
    if ctx.api_version < BATCH_VERSION:
        identities = [(req.member_id, None, None)]
    else:
        identities = [(m.member_id, m.group_instance_id, m.reason) for m in req.members]
    response = await ctx.state.group_coordinator.leave_group(RequestInfo.from_context(ctx),
                                                             req.group_id, identities)
    if ctx.api_version < BATCH_VERSION:
        if response.error_code == 0:
            response.error_code = next((m.error_code for m in response.members if m.error_code), 0)
        response.members = []
    return response
