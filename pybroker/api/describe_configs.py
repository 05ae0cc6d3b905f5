"""DescribeConfigs (key 32), versions 1-4, for topics (resource type 2) and this broker (4).

Values, sources and synonyms come from the config registry (pybroker/dynamic_config.py):
topic override (1) → dynamic per-broker (2) → dynamic cluster default (3) → static broker
config (4) → default (5). Topic configs: every topic config Kafka describes, never read-only;
synonyms (when asked) in precedence order with the broker keys' raw values (e.g.
log.retention.hours 168). Broker "<node id>": every static key and every dynamic one, read-only
unless it can change at run time; broker "": only the cluster-wide dynamic defaults that are set
(as Kafka). Errors per resource: UNKNOWN_TOPIC_OR_PARTITION 3, INVALID_REQUEST 42 for another broker
id or a resource type we do not serve. Documentation is not included.
"""
from pybroker import config as broker_config
from pybroker import dynamic_config as dc
from pybroker import topic_config as tc
from pybroker.codec.messages import DescribeConfigsResponse

API_KEY = 32
VERSIONS = (1, 4)
R = DescribeConfigsResponse
TOPIC, BROKER = 2, 4
_SENSITIVE_HINTS = ("password", "secret", "sasl.jaas.config")


def handle(ctx, req):
    return R(throttle_time_ms=0, results=[_resource(ctx, r, req.include_synonyms) for r in req.resources])


def _result(r, code=0, message=None, configs=()):
    return R.DescribeConfigsResult(error_code=code, error_message=message, resource_type=r.resource_type,
                                   resource_name=r.resource_name, configs=list(configs))


def _resource(ctx, r, synonyms):
    keys = set(r.configuration_keys) if r.configuration_keys else None
    registry = ctx.state.replicas.registry
    if r.resource_type == TOPIC:
        info = ctx.state.metadata.topics.get(r.resource_name)
        if info is None:
            return _result(r, 3, f"Topic {r.resource_name} does not exist.")
        return _result(r, configs=_topic_configs(registry, info.configs, keys, synonyms))
    if r.resource_type == BROKER:
        if r.resource_name == "":
            return _result(r, configs=_default_broker_configs(registry, keys, synonyms))
        if r.resource_name != str(ctx.state.node_id):
            return _result(r, 42, f"Unexpected broker id, expected {ctx.state.node_id} or empty "
                                  f"string, but received {r.resource_name}")
        return _result(r, configs=_broker_configs(registry, keys, synonyms))
    return _result(r, 42, f"Unsupported resource type {r.resource_type}")


def _topic_configs(registry, overrides, keys, synonyms):
    out = []
    for name in tc.DESCRIBED:
        if keys is not None and name not in keys:
            continue
        value, source = registry.topic_value(name, overrides)
        syn = [R.DescribeConfigsSynonym(name=k, value=v, source=s)
               for k, v, s, _ in registry.topic_chain(name, overrides)] if synonyms else []
        out.append(R.DescribeConfigsResourceResult(
            name=name, value=value, read_only=False, config_source=source,
            is_sensitive=False, synonyms=syn, config_type=tc.DEFS[name].type))
    return out


def _broker_configs(registry, keys, synonyms):
    out = []
    for name in sorted(set(broker_config.KEYS) | set(dc.BROKER_DYNAMIC)):
        if keys is not None and name not in keys:
            continue
        sensitive = any(h in name for h in _SENSITIVE_HINTS)
        chain = registry.broker_chain(name)
        value, source = chain[0] if chain else (None, tc.DEFAULT_CONFIG)
        syn = [R.DescribeConfigsSynonym(name=name, value=None if sensitive else v, source=s)
               for v, s in chain] if synonyms else []
        out.append(R.DescribeConfigsResourceResult(
            name=name, value=None if sensitive else value, read_only=name not in dc.BROKER_DYNAMIC,
            config_source=source, is_sensitive=sensitive, synonyms=syn, config_type=_type(name)))
    return out


def _default_broker_configs(registry, keys, synonyms):
    out = []
    for name, value in sorted(registry.dynamic("").items()):
        if keys is not None and name not in keys:
            continue
        syn = [R.DescribeConfigsSynonym(name=name, value=value,
                                        source=tc.DYNAMIC_DEFAULT_BROKER_CONFIG)] if synonyms else []
        out.append(R.DescribeConfigsResourceResult(
            name=name, value=value, read_only=False, config_source=tc.DYNAMIC_DEFAULT_BROKER_CONFIG,
            is_sensitive=False, synonyms=syn, config_type=_type(name)))
    return out


def _type(name):
    d = dc.BROKER_DYNAMIC.get(name)
    if d is not None:
        return d.type
    key = broker_config.KEYS[name]
    return {broker_config._bool: tc.BOOLEAN, broker_config._int: tc.LONG,
            broker_config._list: tc.LIST, broker_config._float: tc.DOUBLE}.get(key.parse, tc.STRING)
