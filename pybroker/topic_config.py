"""Topic-level configs: Kafka's names, types, defaults, validation and broker synonyms.

One row per topic config Kafka 4.x describes (`TopicConfigDef`); `synonyms` are the broker keys
that supply its default, highest precedence first, each with the factor converting its unit
(`log.retention.hours` x 3600000 -> ms). Value precedence (pybroker/dynamic_config.py resolves it):
topic override → dynamic per-broker config → dynamic cluster-default config → static broker
config (server.properties / --override) → built-in default.

Every row is enforced (the `effect` column says by what). Rows for features a single-node broker
without tiered storage or share groups does not have (replication throttles, unclean election,
local.* retention, remote copy, DLQ) behave as they do in Kafka with those features off: accepted,
described, and without effect; enabling tiered storage is rejected, as Kafka does when the broker
has no remote log storage.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

LONG_MAX = 9223372036854775807
INT_MAX = 2147483647

# ConfigSource values in DescribeConfigs v1+
DYNAMIC_TOPIC_CONFIG = 1
DYNAMIC_BROKER_CONFIG = 2
DYNAMIC_DEFAULT_BROKER_CONFIG = 3
STATIC_BROKER_CONFIG = 4
DEFAULT_CONFIG = 5

# ConfigType values in DescribeConfigs v3+
BOOLEAN, STRING, INT, SHORT, LONG, DOUBLE, LIST, CLASS, PASSWORD = range(1, 10)
TYPE_NAMES = {BOOLEAN: "BOOLEAN", STRING: "STRING", INT: "INT", SHORT: "SHORT", LONG: "LONG",
              DOUBLE: "DOUBLE", LIST: "LIST", CLASS: "CLASS", PASSWORD: "PASSWORD"}


@dataclass(frozen=True)
class TopicConfigDef:
    name: str
    type: int
    default: Optional[str]
    synonyms: tuple = ()                 # ((broker key, factor), ...) highest precedence first
    at_least: Optional[float] = None
    at_most: Optional[float] = None
    choices: Optional[tuple] = None
    effect: str = ""
    internal: bool = False               # accepted, never described (Kafka's internal configs)
    check: Optional[object] = None       # extra check(value) -> error text or None

    @property
    def synonym(self) -> Optional[str]:
        """The first broker synonym (what older callers used)."""
        return self.synonyms[0][0] if self.synonyms else None


def _syn(*keys):
    return tuple((k, 1) if isinstance(k, str) else k for k in keys)


def _gzip_level(v):
    return None if v == -1 or 1 <= v <= 9 else "Value must be -1 or between 1 and 9"


def _throttled_replicas(v):
    if v.strip() == "*" or not v.strip():
        return None
    for item in v.split(","):
        parts = item.strip().split(":")
        if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
            return ("Value must be '*' or a list of partitionId:brokerId pairs "
                    "(e.g. 0:1,1:1)")
    return None


def _no_remote_storage(v):
    if v != "false":
        raise InvalidConfigError("Tiered Storage functionality is disabled in the broker. Topic "
                                 "cannot be configured with remote log storage.")


_CLEANUP = ("compact", "delete")
_COMPRESSION = ("uncompressed", "zstd", "lz4", "snappy", "gzip", "producer")
_NO_REMOTE = "no effect without tiered storage (as in Kafka with remote storage off)"
_ONE_NODE = "no effect on a single node (no followers), as in a one-broker Kafka cluster"

DEFS = {d.name: d for d in [
    TopicConfigDef("cleanup.policy", LIST, "delete", _syn("log.cleanup.policy"), choices=_CLEANUP,
                   effect="retention task (delete) and log cleaner (compact); keyless records "
                          "rejected on compacted topics"),
    TopicConfigDef("compression.gzip.level", INT, "-1", _syn("compression.gzip.level"),
                   check=_gzip_level, effect="broker-side recompression to gzip"),
    TopicConfigDef("compression.lz4.level", INT, "9", _syn("compression.lz4.level"), at_least=1,
                   at_most=17, effect="broker-side recompression to lz4"),
    TopicConfigDef("compression.type", STRING, "producer", _syn("compression.type"),
                   choices=_COMPRESSION, effect="produce: batches recompressed when their codec "
                                                "differs"),
    TopicConfigDef("compression.zstd.level", INT, "3", _syn("compression.zstd.level"),
                   at_least=-131072, at_most=22, effect="broker-side recompression to zstd"),
    TopicConfigDef("delete.retention.ms", LONG, "86400000", _syn("log.cleaner.delete.retention.ms"),
                   at_least=0, effect="log cleaner: tombstones and markers kept this long"),
    TopicConfigDef("errors.deadletterqueue.group.enable", BOOLEAN, "false",
                   effect="no effect without share groups (as in Kafka with none)"),
    TopicConfigDef("file.delete.delay.ms", LONG, "60000", _syn("log.segment.delete.delay.ms"),
                   at_least=0, effect="deleted segments keep their .deleted files this long"),
    TopicConfigDef("flush.messages", LONG, str(LONG_MAX), _syn("log.flush.interval.messages"),
                   at_least=1, effect="fsync after this many messages"),
    TopicConfigDef("flush.ms", LONG, str(LONG_MAX), _syn("log.flush.interval.ms"), at_least=0,
                   effect="fsync when the last flush is this old"),
    TopicConfigDef("follower.replication.throttled.replicas", LIST, "",
                   _syn("follower.replication.throttled.replicas"), check=_throttled_replicas,
                   effect=_ONE_NODE),
    TopicConfigDef("index.interval.bytes", INT, "4096", _syn("log.index.interval.bytes"),
                   at_least=0, effect="offset/time index entry every this many bytes"),
    TopicConfigDef("leader.replication.throttled.replicas", LIST, "",
                   _syn("leader.replication.throttled.replicas"), check=_throttled_replicas,
                   effect=_ONE_NODE),
    TopicConfigDef("local.retention.bytes", LONG, "-2", _syn("log.local.retention.bytes"),
                   at_least=-2, effect=_NO_REMOTE),
    TopicConfigDef("local.retention.ms", LONG, "-2", _syn("log.local.retention.ms"), at_least=-2,
                   effect=_NO_REMOTE),
    TopicConfigDef("max.compaction.lag.ms", LONG, str(LONG_MAX),
                   _syn("log.cleaner.max.compaction.lag.ms"), at_least=1,
                   effect="log cleaner: a dirty segment older than this is cleaned regardless "
                          "of the dirty ratio; the active segment rolls by then"),
    TopicConfigDef("max.decompressed.message.bytes", INT, "2147483639",
                   _syn("max.decompressed.message.bytes"), at_least=0,
                   effect="produce: a compressed batch inflating beyond this is rejected"),
    TopicConfigDef("max.message.bytes", INT, "1048588", _syn("message.max.bytes"), at_least=0,
                   effect="produce: larger batches get MESSAGE_TOO_LARGE"),
    TopicConfigDef("message.timestamp.after.max.ms", LONG, "3600000",
                   _syn("log.message.timestamp.after.max.ms"), at_least=0,
                   effect="produce: CreateTime records further in the future are rejected"),
    TopicConfigDef("message.timestamp.before.max.ms", LONG, str(LONG_MAX),
                   _syn("log.message.timestamp.before.max.ms"), at_least=0,
                   effect="produce: CreateTime records further in the past are rejected"),
    TopicConfigDef("message.timestamp.type", STRING, "CreateTime",
                   _syn("log.message.timestamp.type"), choices=("CreateTime", "LogAppendTime"),
                   effect="LogAppendTime: the broker stamps batches"),
    TopicConfigDef("min.cleanable.dirty.ratio", DOUBLE, "0.5",
                   _syn("log.cleaner.min.cleanable.ratio"), at_least=0, at_most=1,
                   effect="log cleaner: clean once the dirty share of the log exceeds this"),
    TopicConfigDef("min.compaction.lag.ms", LONG, "0", _syn("log.cleaner.min.compaction.lag.ms"),
                   at_least=0, effect="log cleaner: records younger than this stay uncompacted"),
    TopicConfigDef("min.insync.replicas", INT, "1", _syn("min.insync.replicas"), at_least=1,
                   effect="produce acks=all: NOT_ENOUGH_REPLICAS when above 1 (one replica)"),
    TopicConfigDef("preallocate", BOOLEAN, "false", _syn("log.preallocate"),
                   effect="new segments reserve segment.bytes of disk (fallocate, size kept)"),
    TopicConfigDef("remote.copy.lag.bytes", LONG, "-1", _syn("log.remote.copy.lag.bytes"),
                   at_least=-1, effect=_NO_REMOTE),
    TopicConfigDef("remote.copy.lag.ms", LONG, "0", _syn("log.remote.copy.lag.ms"), at_least=0,
                   effect=_NO_REMOTE),
    TopicConfigDef("remote.log.copy.disable", BOOLEAN, "false", effect=_NO_REMOTE),
    TopicConfigDef("remote.log.delete.on.disable", BOOLEAN, "false", effect=_NO_REMOTE),
    TopicConfigDef("remote.storage.enable", BOOLEAN, "false",
                   check=_no_remote_storage,
                   effect="true is rejected: this broker has no remote log storage"),
    TopicConfigDef("retention.bytes", LONG, "-1", _syn("log.retention.bytes"),
                   effect="retention task: oldest segments deleted beyond this size"),
    TopicConfigDef("retention.ms", LONG, "604800000",
                   _syn("log.retention.ms", ("log.retention.minutes", 60000),
                        ("log.retention.hours", 3600000)), at_least=-1,
                   effect="retention task: segments older than this deleted"),
    TopicConfigDef("segment.bytes", INT, "1073741824", _syn("log.segment.bytes"),
                   at_least=1048576, effect="roll at this size"),
    TopicConfigDef("segment.index.bytes", INT, "10485760", _syn("log.index.size.max.bytes"),
                   at_least=4, effect="index file size; roll when an index is full"),
    TopicConfigDef("segment.jitter.ms", LONG, "0",
                   _syn("log.roll.jitter.ms", ("log.roll.jitter.hours", 3600000)), at_least=0,
                   effect="random jitter subtracted from segment.ms per segment"),
    TopicConfigDef("segment.ms", LONG, "604800000",
                   _syn("log.roll.ms", ("log.roll.hours", 3600000)), at_least=1,
                   effect="roll when the segment's first batch is this old"),
    TopicConfigDef("unclean.leader.election.enable", BOOLEAN, "false",
                   _syn("unclean.leader.election.enable"), effect=_ONE_NODE),
    TopicConfigDef("internal.segment.bytes", INT, None, at_least=14, internal=True,
                   effect="Kafka's test-only override of segment.bytes (below its 1 MiB minimum)"),
]}

DESCRIBED = tuple(sorted(n for n, d in DEFS.items() if not d.internal))


class InvalidConfigError(ValueError):
    code = 40  # INVALID_CONFIG


def validate(name: str, value: Optional[str]) -> str:
    """Check one topic config value; returns the normalised string or raises InvalidConfigError
    with Kafka's message naming the key."""
    d = DEFS.get(name)
    if d is None:
        raise InvalidConfigError(f"Unknown topic config name: {name}")
    if value is None:
        raise InvalidConfigError(f"Null value not supported for topic configs: {name}")
    return check_value(d, value)


def check_value(d, value: str) -> str:
    """Type, bounds, choices and the row's own check for a def (topic or broker)."""
    try:
        out = parse_value(d.type, d.choices, value)
        if d.type in (INT, LONG, SHORT, DOUBLE):
            _bounds(d, float(out) if d.type == DOUBLE else int(out))
        if d.check is not None:
            problem = d.check(int(out) if d.type in (INT, LONG, SHORT) else out)
            if problem:
                raise ValueError(problem)
        return out
    except InvalidConfigError:
        raise
    except ValueError as exc:
        raise InvalidConfigError(f"Invalid value {value} for configuration {d.name}: {exc}") from None


def parse_value(type_, choices, value: str) -> str:
    """Normalised string form of `value` for a config type; ValueError with Kafka's reason."""
    v = value.strip()
    if type_ == BOOLEAN:
        if v.lower() not in ("true", "false"):
            raise ValueError("Expected value to be either true or false")
        return v.lower()
    if type_ in (INT, LONG, SHORT):
        bits = {INT: 32, LONG: 64, SHORT: 16}[type_]
        try:
            num = int(v)
        except ValueError:
            raise ValueError(f"Not a number of type {TYPE_NAMES[type_]}") from None
        if not -(1 << (bits - 1)) <= num < (1 << (bits - 1)):
            raise ValueError(f"Not a number of type {TYPE_NAMES[type_]}")
        return str(num)
    if type_ == DOUBLE:
        try:
            num = float(v)
        except ValueError:
            raise ValueError("Not a number of type DOUBLE") from None
        if num != num:
            raise ValueError("Not a number of type DOUBLE")
        return v
    if type_ == LIST:
        items = [s.strip() for s in v.split(",") if s.strip()]
        if choices and any(i not in choices for i in items):
            raise ValueError(f"String must be one of: {', '.join(choices)}")
        return ",".join(items)
    if choices and v not in choices:
        raise ValueError(f"String must be one of: {', '.join(choices)}")
    return v


def _bounds(d, num):
    if d.at_least is not None and num < d.at_least:
        raise ValueError(f"Value must be at least {_number(d.at_least)}")
    if d.at_most is not None and num > d.at_most:
        raise ValueError(f"Value must be no more than {_number(d.at_most)}")


def _number(x):
    return int(x) if float(x).is_integer() else x


def validate_set(configs: dict) -> None:
    """Checks across keys of one topic's resulting configs (Kafka's LogConfig.validateValues)."""
    lo = int(configs.get("min.compaction.lag.ms", DEFS["min.compaction.lag.ms"].default))
    hi = int(configs.get("max.compaction.lag.ms", DEFS["max.compaction.lag.ms"].default))
    if lo > hi:
        raise InvalidConfigError(f"conflict topic config setting min.compaction.lag.ms ({lo}) > "
                                 f"max.compaction.lag.ms ({hi})")


# ---- static-only resolution (no dynamic configs): kept for callers without a registry --------

def broker_value(name: str, broker_config) -> Optional[str]:
    """The static broker-level value for a topic config, or None when not set there."""
    for key, factor in DEFS[name].synonyms:
        raw = broker_config.raw.get(key)
        if raw is not None:
            return str(int(raw) * factor) if factor != 1 else str(raw)
    return None


def effective(name: str, topic_configs: dict, broker_config):
    """(value, source) of a topic config: topic override, static broker config, or default."""
    if name in topic_configs:
        return topic_configs[name], DYNAMIC_TOPIC_CONFIG
    v = broker_value(name, broker_config)
    if v is not None:
        return v, STATIC_BROKER_CONFIG
    return DEFS[name].default, DEFAULT_CONFIG
