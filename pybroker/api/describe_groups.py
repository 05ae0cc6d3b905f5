"""DescribeGroups (key 15), versions 0-6: state, protocol and members of classic groups.

Members carry their metadata (in the selected protocol) only while the group is Stable. A group
that does not exist, or is not a classic group, is `Dead`; v6+ also answer GROUP_ID_NOT_FOUND
with a message (KIP-1043). Authorized operations (v3+) keep Kafka's "not requested" value until
ACLs exist.
"""
from pybroker.codec.messages import DescribeGroupsResponse
from pybroker.coordinator import RequestInfo

API_KEY = 15
VERSIONS = (0, 6)


def handle(ctx, req):
    groups = ctx.state.group_coordinator.describe_groups(RequestInfo.from_context(ctx), req.groups)
    return DescribeGroupsResponse(groups=groups)
