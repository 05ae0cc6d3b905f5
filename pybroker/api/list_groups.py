"""ListGroups (key 16), versions 0-5: every group this broker coordinates, with protocol type,
state (v4+; `states_filter` keeps only the named states, case-insensitively) and type (v5+,
"classic" or "consumer"; `types_filter`).
"""
from pybroker.codec.messages import ListGroupsResponse
from pybroker.coordinator import RequestInfo

API_KEY = 16
VERSIONS = (0, 5)


def handle(ctx, req):
    code, groups = ctx.state.group_coordinator.list_groups(RequestInfo.from_context(ctx),
                                                           req.states_filter, req.types_filter)
    return ListGroupsResponse(error_code=code, groups=groups)
