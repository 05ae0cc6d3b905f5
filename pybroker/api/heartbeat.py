"""Heartbeat (key 12), versions 0-4: keeps a classic member's session alive. REBALANCE_IN_PROGRESS
while the group rebalances (the member rejoins); ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID,
FENCED_INSTANCE_ID (v3+ static members), INVALID_GROUP_ID; while the coordinator is loading the
group it answers NONE, as Kafka does.
"""
from pybroker.coordinator import RequestInfo

API_KEY = 12
VERSIONS = (0, 4)


def handle(ctx, req):
    return ctx.state.group_coordinator.heartbeat(RequestInfo.from_context(ctx), req)
