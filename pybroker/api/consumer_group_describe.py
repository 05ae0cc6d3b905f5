"""ConsumerGroupDescribe (key 69), versions 0-1: consumer-protocol groups with their epochs,
assignor, members, current and target assignments (v1: member type, 1 consumer / 0 classic).
A group that does not exist or is not a consumer group gets GROUP_ID_NOT_FOUND (an admin client
then falls back to DescribeGroups). Authorized operations keep the "not requested" value.
"""
from pybroker.codec.messages import ConsumerGroupDescribeResponse
from pybroker.coordinator import RequestInfo

API_KEY = 69
VERSIONS = (0, 1)


def handle(ctx, req):
    groups = ctx.state.group_coordinator.consumer_group_describe(RequestInfo.from_context(ctx),
                                                                 req.group_ids)
    return ConsumerGroupDescribeResponse(groups=groups)
