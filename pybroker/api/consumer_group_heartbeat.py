"""ConsumerGroupHeartbeat (key 68), versions 0-1: the consumer protocol of KIP-848.

Epoch 0 joins (v0: the coordinator assigns the member id; v1: the client sends its own, KIP-1082),
-1 leaves, -2 makes a static member leave temporarily; otherwise the member heartbeats with its
epoch and owned partitions and receives its next assignment step (server-side assignors `uniform`
and `range`, incremental reconciliation). v1 adds regex subscriptions. Errors: INVALID_REQUEST,
UNSUPPORTED_ASSIGNOR, INVALID_REGULAR_EXPRESSION, GROUP_ID_NOT_FOUND, UNKNOWN_MEMBER_ID,
FENCED_MEMBER_EPOCH, FENCED_INSTANCE_ID, UNRELEASED_INSTANCE_ID, GROUP_MAX_SIZE_REACHED.
See pybroker/coordinator/consumer_ops.py.
"""
from pybroker.coordinator import RequestInfo

API_KEY = 68
VERSIONS = (0, 1)


async def handle(ctx, req):
    return await ctx.state.group_coordinator.consumer_group_heartbeat(
        RequestInfo.from_context(ctx), req)
