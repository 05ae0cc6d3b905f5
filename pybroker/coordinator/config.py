"""The group coordinator's settings, under Kafka's key names and defaults.

`GroupCoordinatorConfig.from_broker(config)` reads them from the broker configuration: a key the
broker registry knows is taken from it, any other from the raw properties (so
`group.min.session.timeout.ms=...` in server.properties works before the registry lists it), else
Kafka's default. Tests build the dataclass directly with short timeouts.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

INT_MAX = 2 ** 31 - 1


@dataclass(frozen=True)
class GroupCoordinatorConfig:
    offsets_topic_num_partitions: int = 50
    # classic protocol
    group_min_session_timeout_ms: int = 6000
    group_max_session_timeout_ms: int = 1800000
    group_initial_rebalance_delay_ms: int = 3000
    group_max_size: int = INT_MAX
    new_member_join_timeout_ms: int = 300000          # Kafka's internal constant (5 minutes)
    # consumer protocol (KIP-848)
    consumer_session_timeout_ms: int = 45000
    consumer_heartbeat_interval_ms: int = 5000
    consumer_max_size: int = INT_MAX
    consumer_assignors: tuple = ("uniform", "range")  # the first is the default
    consumer_migration_policy: str = "bidirectional"
    rebalance_protocols: tuple = ("classic", "consumer")
    regex_refresh_interval_ms: int = 10000            # re-resolve regex subscriptions at most this often
    # offsets
    offset_metadata_max_bytes: int = 4096
    offsets_retention_ms: int = 7 * 24 * 60 * 60 * 1000
    offsets_retention_check_interval_ms: int = 600000

    @classmethod
    def from_broker(cls, config) -> "GroupCoordinatorConfig":
        values = {}
        for key, attr, parse in _KEYS:
            raw = _lookup(config, key)
            if raw is not None:
                values[attr] = parse(raw)
        if "offsets_retention_ms" not in values:
            minutes = _lookup(config, "offsets.retention.minutes")
            if minutes is not None:
                values["offsets_retention_ms"] = int(minutes) * 60000
        return cls(**values)

    def replace(self, **changes) -> "GroupCoordinatorConfig":
        current = {f.name: getattr(self, f.name) for f in fields(self)}
        current.update(changes)
        return GroupCoordinatorConfig(**current)


def _names(raw) -> tuple:
    if isinstance(raw, (list, tuple)):
        items = raw
    else:
        items = str(raw).split(",")
    return tuple(_assignor_name(s.strip()) for s in items if str(s).strip())


def _assignor_name(name: str) -> str:
    """Kafka lists assignors by class name (…UniformAssignor) or short name (uniform)."""
    short = name.rsplit(".", 1)[-1]
    if short.endswith("Assignor"):
        short = short[:-len("Assignor")]
    return short.lower()


def _lower_names(raw) -> tuple:
    items = raw if isinstance(raw, (list, tuple)) else str(raw).split(",")
    return tuple(str(s).strip().lower() for s in items if str(s).strip())


_KEYS = (
    ("offsets.topic.num.partitions", "offsets_topic_num_partitions", int),
    ("group.min.session.timeout.ms", "group_min_session_timeout_ms", int),
    ("group.max.session.timeout.ms", "group_max_session_timeout_ms", int),
    ("group.initial.rebalance.delay.ms", "group_initial_rebalance_delay_ms", int),
    ("group.max.size", "group_max_size", int),
    ("group.consumer.session.timeout.ms", "consumer_session_timeout_ms", int),
    ("group.consumer.heartbeat.interval.ms", "consumer_heartbeat_interval_ms", int),
    ("group.consumer.max.size", "consumer_max_size", int),
    ("group.consumer.assignors", "consumer_assignors", _names),
    ("group.consumer.migration.policy", "consumer_migration_policy", lambda v: str(v).strip().lower()),
    ("group.coordinator.rebalance.protocols", "rebalance_protocols", _lower_names),
    ("offset.metadata.max.bytes", "offset_metadata_max_bytes", int),
    ("offsets.retention.check.interval.ms", "offsets_retention_check_interval_ms", int),
)


def _lookup(config, key):
    values = getattr(config, "values", None)
    if isinstance(values, dict) and values.get(key) is not None:
        return values[key]
    raw = getattr(config, "raw", None)
    if isinstance(raw, dict) and raw.get(key) is not None:
        return raw[key]
    if isinstance(config, dict):
        return config.get(key)
    return None
