"""DescribeConfigs (key 32), versions 1-4, for topics (resource type 2) and this broker (4).

Topic configs: every topic config with its effective value and source (topic override →
static broker config → default) and, when asked, synonyms in precedence order. Broker configs:
every broker key we know with its value and source (static when set in the config file or an
override, else default); the broker resource name must be this node's id ("" = default
resource). Errors per resource: UNKNOWN_TOPIC_OR_PARTITION 3, INVALID_REQUEST 42 for another
broker id or a resource type we do not serve. Documentation is not included.
"""
from pybroker import config as broker_config
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
    if r.resource_type == TOPIC:
        info = ctx.state.metadata.topics.get(r.resource_name)
        if info is None:
            return _result(r, 3, f"Topic {r.resource_name} does not exist.")
        return _result(r, configs=_topic_configs(ctx.state.config, info.configs, keys, synonyms))
    if r.resource_type == BROKER:
        if r.resource_name not in ("", str(ctx.state.node_id)):
            return _result(r, 42, f"Unexpected broker id, expected {ctx.state.node_id} or empty "
                                  f"string, but received {r.resource_name}")
        return _result(r, configs=_broker_configs(ctx.state.config, keys, synonyms))
    return _result(r, 42, f"Unsupported resource type {r.resource_type}")


def _topic_configs(bcfg, overrides, keys, synonyms):
    out = []
    for name in sorted(tc.DEFS):
        if keys is not None and name not in keys:
            continue
        d = tc.DEFS[name]
        value, source = tc.effective(name, overrides, bcfg)
        syn = []
        if synonyms:
            if name in overrides:
                syn.append(R.DescribeConfigsSynonym(name=name, value=overrides[name],
                                                    source=tc.DYNAMIC_TOPIC_CONFIG))
            bv = tc.broker_value(name, bcfg)
            if bv is not None:
                syn.append(R.DescribeConfigsSynonym(name=d.synonym, value=bv,
                                                    source=tc.STATIC_BROKER_CONFIG))
            if d.synonym is not None:
                syn.append(R.DescribeConfigsSynonym(name=d.synonym, value=d.default,
                                                    source=tc.DEFAULT_CONFIG))
        out.append(R.DescribeConfigsResourceResult(
            name=name, value=value, read_only=False, config_source=source,
            is_sensitive=False, synonyms=syn, config_type=d.type))
    return out


def _broker_configs(bcfg, keys, synonyms):
    out = []
    for name, key in sorted(broker_config.KEYS.items()):
        if keys is not None and name not in keys:
            continue
        sensitive = any(h in name for h in _SENSITIVE_HINTS)
        value = bcfg.values[name]
        text = None if value is None or sensitive else _fmt(value)
        source = tc.STATIC_BROKER_CONFIG if name in bcfg.raw else tc.DEFAULT_CONFIG
        syn = [R.DescribeConfigsSynonym(name=name, value=text, source=source)] if synonyms else []
        out.append(R.DescribeConfigsResourceResult(
            name=name, value=text, read_only=True, config_source=source,
            is_sensitive=sensitive, synonyms=syn, config_type=_type(key)))
    return out


def _fmt(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(map(str, value))
    return str(value)


def _type(key):
    return {broker_config._bool: tc.BOOLEAN, broker_config._int: tc.LONG,
            broker_config._list: tc.LIST, broker_config._float: tc.DOUBLE}.get(key.parse, tc.STRING)
