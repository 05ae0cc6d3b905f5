"""The config registry's resolver: dynamic broker configs and the effective value of every config.

Tables:
  topic configs       pybroker/topic_config.py (DEFS)
  static broker keys  pybroker/config.py (KEYS: server.properties / --override)
  dynamic broker keys BROKER_DYNAMIC below: the broker configs that may change at run time, per
                      broker (resource "<node id>") or cluster-wide (resource ""), persisted in the
                      metadata log as ConfigRecords with resourceType 4 (as KRaft does).

Precedence (DescribeConfigs sources): topic override (1) → dynamic per-broker (2) → dynamic
cluster default (3) → static broker config (4) → built-in default (5). `Registry` answers the
value and synonym chain of any topic or broker config, and builds the LogConfig defaults that every
topic without an override uses.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from pybroker import config as static_config
from pybroker import topic_config as tc
from pybroker.log.config import LogConfig

DOUBLE_MAX = "1.7976931348623157E308"


@dataclass(frozen=True)
class BrokerConfigDef:
    name: str
    type: int
    default: Optional[str]
    at_least: Optional[float] = None
    at_most: Optional[float] = None
    choices: Optional[tuple] = None
    check: Optional[object] = None
    effect: str = ""


def _from_topic_defs():
    """Every topic config's first broker synonym is a dynamic broker config of the same type and
    validation (Kafka's DynamicLogConfig), with a null default where Kafka's is null."""
    out = {}
    null_default = {"log.retention.ms", "log.roll.ms", "log.roll.jitter.ms", "log.flush.interval.ms"}
    for d in tc.DEFS.values():
        if not d.synonyms or d.synonyms[0][1] != 1:
            continue
        key = d.synonyms[0][0]
        if key in ("follower.replication.throttled.replicas", "leader.replication.throttled.replicas"):
            continue
        default = None if key in null_default else d.default
        out[key] = BrokerConfigDef(key, d.type, default, d.at_least, d.at_most, d.choices, d.check,
                                   f"default of topic config {d.name}")
    return out


BROKER_DYNAMIC = _from_topic_defs()
BROKER_DYNAMIC.update({d.name: d for d in [
    BrokerConfigDef("log.cleaner.threads", tc.INT, "1", at_least=0,
                    effect="log cleaner worker threads (0: compaction off)"),
    BrokerConfigDef("log.cleaner.io.max.bytes.per.second", tc.DOUBLE, DOUBLE_MAX, at_least=0,
                    effect="log cleaner I/O throttle (read + write)"),
    BrokerConfigDef("log.cleaner.dedupe.buffer.size", tc.LONG, "134217728", at_least=1 << 20,
                    effect="memory of the cleaners' key maps (shared by the threads)"),
    BrokerConfigDef("log.cleaner.io.buffer.size", tc.INT, "524288", at_least=0,
                    effect="log cleaner read/write buffer per thread"),
    BrokerConfigDef("log.cleaner.io.buffer.load.factor", tc.DOUBLE, "0.9", at_least=0.01,
                    at_most=1, effect="key map fill limit"),
    BrokerConfigDef("log.cleaner.backoff.ms", tc.LONG, "15000", at_least=0,
                    effect="cleaner sleep when no log needs cleaning"),
]})
BROKER_ALL = {}      # every broker key we describe: static keys plus dynamic-only ones


class AlterError(Exception):
    """A rejected config change: Kafka error code and message."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


INVALID_CONFIG = 40
INVALID_REQUEST = 42


def check_broker_value(name: str, value: Optional[str]) -> str:
    d = BROKER_DYNAMIC.get(name)
    if d is None:
        if name in static_config.KEYS:
            raise AlterError(INVALID_REQUEST, f"Cannot update these configs dynamically: [{name}]")
        raise AlterError(INVALID_CONFIG, f"Unknown broker config name: {name}")
    if value is None:
        raise AlterError(INVALID_REQUEST, f"Null value not supported for : {name}")
    try:
        return tc.check_value(d, value)
    except tc.InvalidConfigError as exc:
        raise AlterError(INVALID_CONFIG, str(exc)) from None


def _fmt(value) -> Optional[str]:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return str(value)


class Registry:
    """Effective values over the static config and the dynamic broker configs in `store`
    (`store.broker_configs`: {"" | "<node id>": {key: value}})."""

    def __init__(self, static, store, node_id):
        self.static = static
        self.store = store
        self.node_id = node_id

    # ---- broker keys --------------------------------------------------------------------------

    def dynamic(self, scope: str) -> dict:
        return dict(getattr(self.store, "broker_configs", {}).get(scope, {}))

    def broker_chain(self, key: str) -> list:
        """[(value, source)] for a broker key, highest precedence first (values as strings)."""
        chain = []
        for scope, source in ((str(self.node_id), tc.DYNAMIC_BROKER_CONFIG),
                              ("", tc.DYNAMIC_DEFAULT_BROKER_CONFIG)):
            v = self.dynamic(scope).get(key)
            if v is not None:
                chain.append((v, source))
        if key in self.static.raw:
            chain.append((_fmt(self.static.get(key, self.static.raw[key])), tc.STATIC_BROKER_CONFIG))
        default = self._default(key)
        if default is not None:
            chain.append((default, tc.DEFAULT_CONFIG))
        return chain

    def _default(self, key):
        if key in BROKER_DYNAMIC:
            return BROKER_DYNAMIC[key].default
        k = static_config.KEYS.get(key)
        return None if k is None else _fmt(k.default)

    def broker_value(self, key: str):
        """(value, source) of a broker key; (None, DEFAULT_CONFIG) when unset with no default."""
        chain = self.broker_chain(key)
        return chain[0] if chain else (None, tc.DEFAULT_CONFIG)

    def broker_typed(self, key: str, parse=None):
        value, _ = self.broker_value(key)
        if value is None:
            return None
        if parse is not None:
            return parse(value)
        d = BROKER_DYNAMIC.get(key)
        t = d.type if d is not None else tc.STRING
        if t in (tc.INT, tc.LONG, tc.SHORT):
            return int(value)
        if t == tc.DOUBLE:
            return float(value)
        if t == tc.BOOLEAN:
            return value == "true"
        return value

    # ---- topic configs ------------------------------------------------------------------------

    def topic_chain(self, name: str, overrides: dict) -> list:
        """[(config name, raw value, source, factor)] for a topic config, highest first: the topic
        override, then each broker synonym's dynamic/static/default values."""
        d = tc.DEFS[name]
        chain = []
        if name in overrides:
            chain.append((name, overrides[name], tc.DYNAMIC_TOPIC_CONFIG, 1))
        for key, factor in d.synonyms:
            for value, source in self.broker_chain(key):
                chain.append((key, value, source, factor))
        return chain

    def topic_value(self, name: str, overrides: dict):
        """(value, source) of a topic config."""
        for _key, value, source, factor in self.topic_chain(name, overrides):
            if value is not None:
                return (_scale(value, factor), source)
        return tc.DEFS[name].default, tc.DEFAULT_CONFIG

    def topic_values(self, overrides: dict) -> dict:
        """Every topic config (internal ones when set) -> effective value string."""
        out = {name: self.topic_value(name, overrides)[0] for name in tc.DESCRIBED}
        out.update({k: v for k, v in overrides.items()
                    if k in tc.DEFS and tc.DEFS[k].internal})
        return {k: v for k, v in out.items() if v is not None}

    def log_defaults(self) -> LogConfig:
        """The LogConfig of a topic without overrides."""
        base = LogConfig(producer_id_expiration_ms=int(
            self.static.get("producer.id.expiration.ms", 86400000)))
        return LogConfig.from_dict(self.topic_values({}), base)

    def log_config(self, overrides: dict) -> LogConfig:
        return LogConfig.from_dict(self.topic_values(overrides), self.log_defaults())


def _scale(value, factor):
    return value if factor == 1 else str(int(value) * factor)
