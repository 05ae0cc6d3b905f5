"""CreateTopics (key 19), versions 2-7.

Per topic: name validation (INVALID_TOPIC_EXCEPTION 17), TOPIC_ALREADY_EXISTS (36) also for a
'.'/'_' collision, partitions (-1 = num.partitions; 0 or < -1 → INVALID_PARTITIONS 37),
replication factor (-1 = default.replication.factor; anything but 1 on a single node →
INVALID_REPLICATION_FACTOR 38), manual assignments (must name only this broker →
INVALID_REPLICA_ASSIGNMENT 39), configs (INVALID_CONFIG 40 naming the key), validate_only.
v5+ results carry the partition count, replication factor and the topic's configs.
A name whose deletion is still removing its logs is created once that finishes (within timeout_ms).
"""
import asyncio

from pybroker import topic_config
from pybroker.codec.messages import ZERO_UUID, CreateTopicsResponse
from pybroker.metadata.store import TopicError, validate_topic_name

API_KEY = 19
VERSIONS = (2, 7)
R = CreateTopicsResponse
TOPIC_ALREADY_EXISTS = 36
INVALID_PARTITIONS = 37
INVALID_REPLICATION_FACTOR = 38
INVALID_REPLICA_ASSIGNMENT = 39
INVALID_REQUEST = 42


def handle(ctx, req):
    deleting = [task for task in map(ctx.state.replicas.deletion_in_progress,
                                     {t.name for t in req.topics}) if task is not None]
    if deleting:
        return _after_deletions(ctx, req, deleting)
    return _handle(ctx, req)


async def _after_deletions(ctx, req, tasks):
    """A name deleted a moment ago is created once its old logs are gone (bounded by the
    request's timeout; past it the topic is reported as still marked for deletion)."""
    await asyncio.wait(tasks, timeout=max(req.timeout_ms, 0) / 1000)
    return _handle(ctx, req)


def _handle(ctx, req):
    seen = {}
    for t in req.topics:
        seen[t.name] = seen.get(t.name, 0) + 1
    results = []
    for t in req.topics:
        if seen[t.name] > 1:
            results.append(_error(t.name, INVALID_REQUEST, "Duplicate topic name."))
            continue
        results.append(_create(ctx, t, req.validate_only))
    return R(throttle_time_ms=0, topics=results)


def _error(name, code, message):
    return R.CreatableTopicResult(name=name, topic_id=ZERO_UUID, error_code=code,
                                  error_message=message, configs=None)


def _create(ctx, t, validate_only):
    state = ctx.state
    try:
        partitions, configs = _check(state, t)
    except TopicError as exc:
        return _error(t.name, exc.code, exc.message)
    except topic_config.InvalidConfigError as exc:
        return _error(t.name, exc.code, str(exc))
    if validate_only:
        topic_id = ZERO_UUID
    else:
        info = state.replicas.create_topic(t.name, partitions, configs)
        topic_id = info.topic_id
    return R.CreatableTopicResult(
        name=t.name, topic_id=topic_id, error_code=0, error_message=None,
        num_partitions=partitions, replication_factor=1,
        configs=[R.CreatableTopicConfigs(name=name, value=value, read_only=False,
                                         config_source=source, is_sensitive=False)
                 for name, (value, source) in _described(state, configs)])


def _check(state, t):
    validate_topic_name(t.name)
    if t.name in state.metadata.topics:
        raise TopicError(TOPIC_ALREADY_EXISTS, f"Topic '{t.name}' already exists.")
    other = state.metadata.colliding_topic(t.name)
    if other is not None:
        raise TopicError(17, f"Topic '{t.name}' collides with existing topic: {other}")
    if t.assignments:
        if t.num_partitions != -1 or t.replication_factor != -1:
            raise TopicError(INVALID_REQUEST, "Both numPartitions or replicationFactor and "
                                              "replicasAssignments were set. Both cannot be used at the same time.")
        for i, a in enumerate(sorted(t.assignments, key=lambda a: a.partition_index)):
            if a.partition_index != i:
                raise TopicError(INVALID_REPLICA_ASSIGNMENT, "Partitions should be a consecutive 0-based integer sequence")
            if list(a.broker_ids) != [state.node_id]:
                raise TopicError(INVALID_REPLICA_ASSIGNMENT,
                                 f"Replica assignment {list(a.broker_ids)} names brokers that are not registered")
        partitions = len(t.assignments)
    else:
        partitions = state.config["num.partitions"] if t.num_partitions == -1 else t.num_partitions
        if partitions <= 0:
            raise TopicError(INVALID_PARTITIONS, "Number of partitions was set to an invalid non-positive value.")
        rf = state.config["default.replication.factor"] if t.replication_factor == -1 else t.replication_factor
        if rf <= 0:
            raise TopicError(INVALID_REPLICATION_FACTOR, "Replication factor must be larger than 0.")
        if rf > 1:
            raise TopicError(INVALID_REPLICATION_FACTOR,
                             f"Unable to replicate the partition {rf} time(s): The target replication "
                             "factor of " f"{rf} cannot be reached because only 1 broker(s) are registered.")
    configs = {}
    for c in t.configs:
        configs[c.name] = topic_config.validate(c.name, c.value)
    topic_config.validate_set(configs)
    return partitions, configs


def _described(state, configs):
    registry = state.replicas.registry
    for name in topic_config.DESCRIBED:
        yield name, registry.topic_value(name, configs)
