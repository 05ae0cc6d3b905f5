"""Metadata (key 3), versions 0-13.

Brokers (this node, advertised address of the listener the request came in on), cluster id,
controller id (this node), and topics: all topics when `topics` is null (v1+) or empty (v0);
otherwise the named ones (or, v10+, by topic id). Unknown names are auto-created when the request
allows it (v4+, always before) and `auto.create.topics.enable` is on (LEADER_NOT_AVAILABLE 5, which
clients retry, while a deleted topic of that name is still being removed); otherwise
UNKNOWN_TOPIC_OR_PARTITION (3). Illegal names get INVALID_TOPIC_EXCEPTION (17); an unknown id gets
UNKNOWN_TOPIC_ID (100). Every partition is led by this node at leader epoch 0 with itself as the
only replica and ISR member. Authorized operations are not computed (ACLs are a later issue):
the fields keep Kafka's "not requested" sentinel.
"""
from pybroker.codec.messages import ZERO_UUID, MetadataResponse
from pybroker.metadata.store import TopicError, validate_topic_name

API_KEY = 3
VERSIONS = (0, 13)
UNKNOWN_TOPIC_OR_PARTITION = 3
LEADER_NOT_AVAILABLE = 5
UNKNOWN_TOPIC_ID = 100
R = MetadataResponse


def handle(ctx, req):
    state = ctx.state
    host, port = state.broker.network.advertised(ctx.listener)
    resp = R(throttle_time_ms=0, cluster_id=state.cluster_id, controller_id=state.node_id,
             brokers=[R.MetadataResponseBroker(node_id=state.node_id, host=host, port=port,
                                               rack=state.config["broker.rack"])])
    if req.topics is None or (ctx.api_version == 0 and not req.topics):
        resp.topics = [_topic(state, t) for t in sorted(state.metadata.topics.values(),
                                                        key=lambda t: t.name)]
        return resp
    auto = (req.allow_auto_topic_creation if ctx.api_version >= 4 else True) and \
        state.config["auto.create.topics.enable"]
    resp.topics = [_requested(state, t, auto) for t in req.topics]
    return resp


def _requested(state, t, auto):
    if t.name is None:
        info = state.metadata.by_id.get(t.topic_id)
        if info is None:
            return R.MetadataResponseTopic(error_code=UNKNOWN_TOPIC_ID, name=None, topic_id=t.topic_id)
        return _topic(state, info)
    info = state.metadata.topics.get(t.name)
    if info is not None:
        return _topic(state, info)
    try:
        validate_topic_name(t.name)
    except TopicError as exc:
        return R.MetadataResponseTopic(error_code=exc.code, name=t.name, topic_id=ZERO_UUID)
    if not auto:
        return R.MetadataResponseTopic(error_code=UNKNOWN_TOPIC_OR_PARTITION, name=t.name,
                                       topic_id=ZERO_UUID)
    if state.replicas.deletion_in_progress(t.name) is not None:
        return R.MetadataResponseTopic(error_code=LEADER_NOT_AVAILABLE, name=t.name,
                                       topic_id=ZERO_UUID)  # retriable: auto-create once deleted
    try:
        info = state.replicas.create_topic(t.name, state.config["num.partitions"], {})
    except TopicError as exc:
        return R.MetadataResponseTopic(error_code=exc.code, name=t.name, topic_id=ZERO_UUID)
    return _topic(state, info)


def _topic(state, info):
    node = state.node_id
    parts = []
    for p in range(info.partitions):
        part = state.replicas.partition(info.name, p)
        parts.append(R.MetadataResponsePartition(
            error_code=0, partition_index=p, leader_id=node,
            leader_epoch=part.leader_epoch if part is not None else 0,
            replica_nodes=[node], isr_nodes=[node], offline_replicas=[]))
    return R.MetadataResponseTopic(error_code=0, name=info.name, topic_id=info.topic_id,
                                   is_internal=info.internal, partitions=parts)
