"""Topic-level configs: Kafka's names, types, defaults and their broker-level synonyms.

Used to validate CreateTopics configs (INVALID_CONFIG names the key) and to answer DescribeConfigs
with Kafka's defaults and sources. Value precedence: topic override → broker config (static) →
built-in default. (Dynamic broker configs and AlterConfigs arrive with the log-lifecycle issue.)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

LONG_MAX = 9223372036854775807

# ConfigSource values in DescribeConfigs v1+
DYNAMIC_TOPIC_CONFIG = 1
STATIC_BROKER_CONFIG = 4
DEFAULT_CONFIG = 5

# ConfigType values in DescribeConfigs v3+
BOOLEAN, STRING, INT, SHORT, LONG, DOUBLE, LIST, CLASS, PASSWORD = range(1, 10)


@dataclass(frozen=True)
class TopicConfigDef:
    name: str
    type: int
    default: Optional[str]
    synonym: Optional[str] = None        # broker key supplying the default
    at_least: Optional[float] = None
    choices: Optional[tuple] = None
    at_most: Optional[float] = None


_CLEANUP = ("delete", "compact")
_COMPRESSION = ("uncompressed", "zstd", "lz4", "snappy", "gzip", "producer")

DEFS = {d.name: d for d in [
    TopicConfigDef("cleanup.policy", LIST, "delete", "log.cleanup.policy", choices=_CLEANUP),
    TopicConfigDef("compression.type", STRING, "producer", "compression.type", choices=_COMPRESSION),
    TopicConfigDef("compression.gzip.level", INT, "-1", "compression.gzip.level", at_least=-1, at_most=9),
    TopicConfigDef("compression.lz4.level", INT, "9", "compression.lz4.level", at_least=1, at_most=17),
    TopicConfigDef("compression.zstd.level", INT, "3", "compression.zstd.level", at_least=-131072, at_most=22),
    TopicConfigDef("delete.retention.ms", LONG, "86400000", "log.cleaner.delete.retention.ms", at_least=0),
    TopicConfigDef("file.delete.delay.ms", LONG, "60000", "log.segment.delete.delay.ms", at_least=0),
    TopicConfigDef("flush.messages", LONG, str(LONG_MAX), "log.flush.interval.messages", at_least=1),
    TopicConfigDef("flush.ms", LONG, str(LONG_MAX), "log.flush.interval.ms", at_least=0),
    TopicConfigDef("follower.replication.throttled.replicas", LIST, "",
                   "follower.replication.throttled.replicas"),
    TopicConfigDef("index.interval.bytes", INT, "4096", "log.index.interval.bytes", at_least=0),
    TopicConfigDef("leader.replication.throttled.replicas", LIST, "",
                   "leader.replication.throttled.replicas"),
    TopicConfigDef("local.retention.bytes", LONG, "-2", "log.local.retention.bytes", at_least=-2),
    TopicConfigDef("local.retention.ms", LONG, "-2", "log.local.retention.ms", at_least=-2),
    TopicConfigDef("max.compaction.lag.ms", LONG, str(LONG_MAX), "log.cleaner.max.compaction.lag.ms",
                   at_least=1),
    TopicConfigDef("max.message.bytes", INT, "1048588", "message.max.bytes", at_least=0),
    TopicConfigDef("message.timestamp.after.max.ms", LONG, "3600000",
                   "log.message.timestamp.after.max.ms", at_least=0),
    TopicConfigDef("message.timestamp.before.max.ms", LONG, str(LONG_MAX),
                   "log.message.timestamp.before.max.ms", at_least=0),
    TopicConfigDef("message.timestamp.type", STRING, "CreateTime", "log.message.timestamp.type",
                   choices=("CreateTime", "LogAppendTime")),
    TopicConfigDef("min.cleanable.dirty.ratio", DOUBLE, "0.5", "log.cleaner.min.cleanable.ratio",
                   at_least=0, at_most=1),
    TopicConfigDef("min.compaction.lag.ms", LONG, "0", "log.cleaner.min.compaction.lag.ms", at_least=0),
    TopicConfigDef("min.insync.replicas", INT, "1", "min.insync.replicas", at_least=1),
    TopicConfigDef("preallocate", BOOLEAN, "false", "log.preallocate"),
    TopicConfigDef("remote.storage.enable", BOOLEAN, "false", None),
    TopicConfigDef("retention.bytes", LONG, "-1", "log.retention.bytes"),
    TopicConfigDef("retention.ms", LONG, "604800000", "log.retention.ms", at_least=-1),
    TopicConfigDef("segment.bytes", INT, "1073741824", "log.segment.bytes", at_least=14),
    TopicConfigDef("segment.index.bytes", INT, "10485760", "log.index.size.max.bytes", at_least=4),
    TopicConfigDef("segment.jitter.ms", LONG, "0", "log.roll.jitter.ms", at_least=0),
    TopicConfigDef("segment.ms", LONG, "604800000", "log.roll.ms", at_least=1),
    TopicConfigDef("unclean.leader.election.enable", BOOLEAN, "false",
                   "unclean.leader.election.enable"),
]}


class InvalidConfigError(ValueError):
    code = 40  # INVALID_CONFIG


def validate(name: str, value: Optional[str]) -> str:
    """Check one topic config value; returns the normalised string or raises InvalidConfigError."""
    d = DEFS.get(name)
    if d is None:
        raise InvalidConfigError(f"Unknown topic config name: {name}")
    if value is None:
        raise InvalidConfigError(f"Null value not supported for topic configs: {name}")
    v = value.strip()
    try:
        if d.type == BOOLEAN:
            if v.lower() not in ("true", "false"):
                raise ValueError("expected true or false")
            return v.lower()
        if d.type in (INT, LONG, SHORT):
            num = int(v)
            _bounds(d, num)
            if d.type == INT and not -(1 << 31) <= num < (1 << 31):
                raise ValueError("out of int range")
            return str(num)
        if d.type == DOUBLE:
            num = float(v)
            _bounds(d, num)
            return v
        if d.type == LIST:
            items = [s.strip() for s in v.split(",") if s.strip()]
            if d.choices and any(i not in d.choices for i in items):
                raise ValueError(f"must be a list of {', '.join(d.choices)}")
            return ",".join(items)
        if d.choices and v not in d.choices:
            raise ValueError(f"must be one of {', '.join(d.choices)}")
        return v
    except ValueError as exc:
        raise InvalidConfigError(f"Invalid value {value} for configuration {name}: {exc}") from None


def _bounds(d, num):
    if d.at_least is not None and num < d.at_least:
        raise ValueError(f"Value must be at least {d.at_least:g}")
    if d.at_most is not None and num > d.at_most:
        raise ValueError(f"Value must be no more than {d.at_most:g}")


def broker_value(name: str, broker_config) -> Optional[str]:
    """The broker-level value for a topic config (static config), or None when not set there."""
    d = DEFS[name]
    if d.synonym is None:
        return None
    if name == "retention.ms":
        raw = broker_config.raw
        if any(k in raw for k in ("log.retention.ms", "log.retention.minutes", "log.retention.hours")):
            return str(broker_config.log_retention_ms)
        return None
    if name == "segment.ms":
        raw = broker_config.raw
        if any(k in raw for k in ("log.roll.ms", "log.roll.hours")):
            return str(broker_config.log_roll_ms)
        return None
    raw = broker_config.raw.get(d.synonym)
    return None if raw is None else str(raw)


def effective(name: str, topic_configs: dict, broker_config):
    """(value, source) of a topic config: topic override, static broker config, or default."""
    if name in topic_configs:
        return topic_configs[name], DYNAMIC_TOPIC_CONFIG
    v = broker_value(name, broker_config)
    if v is not None:
        return v, STATIC_BROKER_CONFIG
    return DEFS[name].default, DEFAULT_CONFIG
