"""CreatePartitions (key 37), versions 0-3: grow a topic's partition count.
UNKNOWN_TOPIC_OR_PARTITION (3); INVALID_PARTITIONS (37) when the count does not grow;
INVALID_REPLICA_ASSIGNMENT (39) for assignments naming other brokers or of the wrong length;
validate_only checks without changing anything; duplicate names → INVALID_REQUEST (42)."""
from pybroker.codec.messages import CreatePartitionsResponse

API_KEY = 37
VERSIONS = (0, 3)
R = CreatePartitionsResponse


def handle(ctx, req):
    counts = {}
    for t in req.topics:
        counts[t.name] = counts.get(t.name, 0) + 1
    results = []
    for t in req.topics:
        code, msg = (42, "Duplicate topic in request.") if counts[t.name] > 1 else \
            _grow(ctx.state, t, req.validate_only)
        results.append(R.CreatePartitionsTopicResult(name=t.name, error_code=code, error_message=msg))
    return R(throttle_time_ms=0, results=results)


def _grow(state, t, validate_only):
    info = state.metadata.topics.get(t.name)
    if info is None:
        return 3, f"The topic '{t.name}' does not exist."
    if t.count < info.partitions:
        return 37, (f"Topic currently has {info.partitions} partitions, which is higher than "
                    f"the requested {t.count}.")
    if t.count == info.partitions:
        return 37, f"Topic already has {info.partitions} partitions."
    if t.assignments is not None:
        if len(t.assignments) != t.count - info.partitions:
            return 39, (f"Increasing the number of partitions by {t.count - info.partitions} but "
                        f"{len(t.assignments)} assignments provided.")
        if any(list(a.broker_ids) != [state.node_id] for a in t.assignments):
            return 39, "The manual partition assignment includes a broker that is not registered."
    if not validate_only:
        state.replicas.add_partitions(t.name, t.count)
    return 0, None
