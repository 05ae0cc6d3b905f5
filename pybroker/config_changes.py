"""Config changes for AlterConfigs (key 33) and IncrementalAlterConfigs (key 44).

One resource at a time: validate every operation against the registry (topic configs in
pybroker/topic_config.py, dynamic broker configs in pybroker/dynamic_config.py), compute the new set
of dynamic configs for the resource, persist the difference as ConfigRecords in the metadata log,
then apply it to the running broker (live LogConfigs, cleaner settings). Nothing is written when
any operation is rejected, nor with validate_only.

AlterConfigs replaces the resource's whole set of dynamic configs; IncrementalAlterConfigs applies
SET (0), DELETE (1), APPEND (2), SUBTRACT (3) to it. APPEND/SUBTRACT work on LIST configs only,
starting from the current override or else the default (Kafka's ConfigAdminManager).

Errors (code, message) follow Kafka's: UNKNOWN_TOPIC_OR_PARTITION 3 (no such topic),
INVALID_CONFIG 40 (unknown name, bad value, APPEND to a non-list), INVALID_REQUEST 42 (duplicate
keys, null SET, unknown operation or resource type, another broker's id, a static-only broker key).
Deviation: an unknown broker config name is INVALID_CONFIG here (Kafka stores it unused).
"""
from __future__ import annotations

from pybroker import dynamic_config as dc
from pybroker import topic_config as tc
from pybroker.dynamic_config import INVALID_CONFIG, INVALID_REQUEST, AlterError
from pybroker.metadata.store import BROKER_RESOURCE, TOPIC_RESOURCE

SET, DELETE, APPEND, SUBTRACT = 0, 1, 2, 3
UNKNOWN_TOPIC_OR_PARTITION = 3
_OP_NAMES = {APPEND: "APPEND", SUBTRACT: "SUBTRACT"}


def alter(state, resource_type, resource_name, ops, *, incremental, validate_only):
    """Apply `ops` [(name, operation, value)] to one resource; returns (error_code, message)."""
    try:
        if resource_type == TOPIC_RESOURCE:
            _alter_topic(state, resource_name, ops, incremental, validate_only)
        elif resource_type == BROKER_RESOURCE:
            _alter_broker(state, resource_name, ops, incremental, validate_only)
        else:
            raise AlterError(INVALID_REQUEST, f"Unknown resource type {resource_type}")
    except AlterError as exc:
        return exc.code, exc.message
    return 0, None


# ---- topics -------------------------------------------------------------------------------------

def _alter_topic(state, name, ops, incremental, validate_only):
    info = state.metadata.topics.get(name)
    if info is None:
        raise AlterError(UNKNOWN_TOPIC_OR_PARTITION, f"The topic '{name}' does not exist.")
    _no_duplicates(ops)
    new = dict(info.configs) if incremental else {}
    for key, op, value in ops:
        _apply_op(new, key, op, value, _topic_def, _check_topic)
    try:
        tc.validate_set(new)
    except tc.InvalidConfigError as exc:
        raise AlterError(INVALID_CONFIG, str(exc)) from None
    changes = _diff(info.configs, new)
    if validate_only or not changes:
        return
    state.metadata.set_configs(TOPIC_RESOURCE, name, changes)
    state.replicas.reconfigure_topic(name)


def _topic_def(key):
    d = tc.DEFS.get(key)
    if d is None:
        raise AlterError(INVALID_CONFIG, f"Unknown topic config name: {key}")
    return d


def _check_topic(key, value):
    try:
        return tc.validate(key, value)
    except tc.InvalidConfigError as exc:
        raise AlterError(INVALID_CONFIG, str(exc)) from None


# ---- brokers ------------------------------------------------------------------------------------

def _alter_broker(state, scope, ops, incremental, validate_only):
    node = str(state.node_id)
    if scope not in ("", node):
        raise AlterError(INVALID_REQUEST,
                         f"Unexpected broker id, expected {node}, but received {scope}")
    _no_duplicates(ops)
    registry = state.replicas.registry
    current = registry.dynamic(scope)
    new = dict(current) if incremental else {}
    for key, op, value in ops:
        _apply_op(new, key, op, value, _broker_def, dc.check_broker_value)
    changes = _diff(current, new)
    if validate_only or not changes:
        return
    state.metadata.set_configs(BROKER_RESOURCE, scope, changes)
    state.replicas.reconfigure_all()


def _broker_def(key):
    d = dc.BROKER_DYNAMIC.get(key)
    if d is None:
        dc.check_broker_value(key, "")          # raises the right error for this key
    return d


# ---- operations ---------------------------------------------------------------------------------

def _no_duplicates(ops):
    names = [key for key, _, _ in ops]
    if len(names) != len(set(names)):
        raise AlterError(INVALID_REQUEST, "Error due to duplicate config keys")


def _apply_op(configs, key, op, value, lookup, check):
    if op == SET:
        if value is None:
            raise AlterError(INVALID_REQUEST, f"Null value not supported for : {key}")
        configs[key] = check(key, value)
    elif op == DELETE:
        configs.pop(key, None)
    elif op in (APPEND, SUBTRACT):
        d = lookup(key)
        if d.type != tc.LIST:
            raise AlterError(INVALID_CONFIG, f"Can't {_OP_NAMES[op]} to key {key} because its "
                                             f"type is not LIST.")
        configs[key] = check(key, _edit_list(configs.get(key, d.default or ""), value, op))
    else:
        raise AlterError(INVALID_REQUEST, f"Unknown config operation {op} for {key}")


def _edit_list(current, value, op):
    items = [s.strip() for s in current.split(",") if s.strip()]
    given = [s.strip() for s in (value or "").split(",") if s.strip()]
    if op == APPEND:
        items += [g for g in given if g not in items]
    else:
        items = [i for i in items if i not in given]
    return ",".join(items)


def _diff(old, new):
    changes = {k: v for k, v in new.items() if old.get(k) != v}
    changes.update({k: None for k in old if k not in new})
    return changes


def respond(ctx, req, response, ops_of, *, incremental):
    """The (Incremental)AlterConfigs response: `alter` per resource, each on its own.
    ops_of(config entry) -> (name, operation, value)."""
    out = []
    for r in req.resources:
        code, message = alter(ctx.state, r.resource_type, r.resource_name,
                              [ops_of(c) for c in r.configs], incremental=incremental,
                              validate_only=req.validate_only)
        out.append(response.AlterConfigsResourceResponse(
            error_code=code, error_message=message, resource_type=r.resource_type,
            resource_name=r.resource_name))
    return response(throttle_time_ms=0, responses=out)
