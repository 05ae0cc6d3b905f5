"""FindCoordinator (key 10), versions 0-6.

The coordinator of a group is the leader of its partition of __consumer_offsets
(`abs(java hashCode(group)) % partitions`); this single node answers with itself once it hosts
that partition, else COORDINATOR_NOT_AVAILABLE (15) so the client retries. v0-3 ask for one key
(`key`, v1+ `key_type`), v4+ for a batch (`coordinator_keys`). Key type 0 is a group; key type 1
(transactional id) and 2 (share group) are answered COORDINATOR_NOT_AVAILABLE until those
coordinators exist; any other key type gets INVALID_REQUEST (42). As in Kafka, an empty group id is a key like any
other.
"""
from pybroker.codec.messages import FindCoordinatorResponse
from pybroker.coordinator.errors import INVALID_REQUEST, NAMES

API_KEY = 10
VERSIONS = (0, 6)
BATCHED_VERSION = 4
R = FindCoordinatorResponse


def handle(ctx, req):
    state = ctx.state
    host, port = state.broker.network.advertised(ctx.listener)
    node = (state.node_id, host, port)
    if ctx.api_version < BATCHED_VERSION:
        code, (node_id, h, p) = _lookup(state, req.key, req.key_type, node)
        return R(error_code=code, error_message=_message(code, ctx.api_version), node_id=node_id,
                 host=h, port=p)
    out = R(coordinators=[])
    for key in req.coordinator_keys:
        code, (node_id, h, p) = _lookup(state, key, req.key_type, node)
        out.coordinators.append(R.Coordinator(key=key, node_id=node_id, host=h, port=p,
                                              error_code=code,
                                              error_message=_message(code, ctx.api_version)))
    return out


def _lookup(state, key, key_type, node):
    if key_type not in (0, 1, 2):
        code = INVALID_REQUEST
    else:
        code = state.group_coordinator.find_coordinator(key, key_type)
    return code, (node if code == 0 else (-1, "", -1))


def _message(code, version):
    if code == 0 or version < 1:
        return None
    return NAMES.get(code)
