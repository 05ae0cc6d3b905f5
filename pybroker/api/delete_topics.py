"""DeleteTopics (key 20), versions 1-6: by name (v1-5 `topic_names`, v6 `topics[].name`) or by
topic id (v6). UNKNOWN_TOPIC_OR_PARTITION (3) / UNKNOWN_TOPIC_ID (100) for what does not exist;
TOPIC_DELETION_DISABLED (73) when delete.topic.enable=false; internal topics cannot be deleted
(INVALID_TOPIC_EXCEPTION 17). The log directories are renamed for deletion and removed, and the
committed offsets of the deleted topics are dropped from every group before the answer (as Kafka
does, so a re-created topic does not inherit stale offsets)."""
from pybroker.codec.messages import ZERO_UUID, DeleteTopicsResponse

API_KEY = 20
VERSIONS = (1, 6)
R = DeleteTopicsResponse


def handle(ctx, req):
    if ctx.api_version >= 6:
        wanted = [(t.name, t.topic_id) for t in req.topics]
    else:
        wanted = [(name, ZERO_UUID) for name in req.topic_names]
    resp = R(throttle_time_ms=0, responses=[_delete(ctx.state, n, i) for n, i in wanted])
    deleted = [r.name for r in resp.responses if r.error_code == 0]
    if not deleted:
        return resp
    return _forget_offsets(ctx.state, deleted, resp)


async def _forget_offsets(state, names, resp):
    await state.group_coordinator.on_topics_deleted(names)
    return resp


def _delete(state, name, topic_id):
    meta = state.metadata
    info = meta.topics.get(name) if name is not None else meta.by_id.get(topic_id)
    if info is None:
        code = 3 if name is not None else 100
        return R.DeletableTopicResult(name=name, topic_id=topic_id, error_code=code,
                                      error_message="This server does not host this topic."
                                      if code == 3 else "This server does not host this topic ID.")
    if not state.config["delete.topic.enable"]:
        return R.DeletableTopicResult(name=info.name, topic_id=info.topic_id, error_code=73,
                                      error_message="Topic deletion is disabled.")
    if info.internal:
        return R.DeletableTopicResult(name=info.name, topic_id=info.topic_id, error_code=17,
                                      error_message=f"Topic {info.name} is an internal topic.")
    state.replicas.delete_topic(info.name)
    return R.DeletableTopicResult(name=info.name, topic_id=info.topic_id, error_code=0)
