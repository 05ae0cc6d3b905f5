"""DeleteGroups (key 42), versions 0-2: delete empty groups with all their committed offsets.

Per group: GROUP_ID_NOT_FOUND when it does not exist, NON_EMPTY_GROUP while it has members,
coordinator errors (NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS) otherwise 0.
"""
from pybroker.codec.messages import DeleteGroupsResponse
from pybroker.coordinator import RequestInfo

API_KEY = 42
VERSIONS = (0, 2)
R = DeleteGroupsResponse


async def handle(ctx, req):
    results = await ctx.state.group_coordinator.delete_groups(RequestInfo.from_context(ctx),
                                                              req.groups_names)
    return R(results=[R.DeletableGroupResult(group_id=g, error_code=code) for g, code in results])
