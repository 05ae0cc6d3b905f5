"""Per-log configuration with Kafka's topic-level names and defaults (LogConfig.java).

The broker fills it from server.properties (`log.*` keys, via `LogConfig.from_broker`) and topic
overrides (`LogConfig.from_dict(topic_configs, defaults)`). Only the keys this storage layer honours
are here; unknown keys are kept in `extra` so nothing is silently lost.
"""
from dataclasses import dataclass, field, fields, replace

CREATE_TIME = "CreateTime"
LOG_APPEND_TIME = "LogAppendTime"
_LONG_MAX = 9223372036854775807

# topic-level key -> (attribute, broker-level key)
_KEYS = {
    "segment.bytes": ("segment_bytes", "log.segment.bytes"),
    "segment.ms": ("segment_ms", None),
    "segment.jitter.ms": ("segment_jitter_ms", "log.roll.jitter.ms"),
    "segment.index.bytes": ("segment_index_bytes", "log.index.size.max.bytes"),
    "index.interval.bytes": ("index_interval_bytes", "log.index.interval.bytes"),
    "flush.messages": ("flush_messages", "log.flush.interval.messages"),
    "flush.ms": ("flush_ms", "log.flush.interval.ms"),
    "retention.bytes": ("retention_bytes", "log.retention.bytes"),
    "retention.ms": ("retention_ms", None),
    "message.timestamp.type": ("message_timestamp_type", "log.message.timestamp.type"),
    "max.message.bytes": ("max_message_bytes", "message.max.bytes"),
    "cleanup.policy": ("cleanup_policy", "log.cleanup.policy"),
    "file.delete.delay.ms": ("file_delete_delay_ms", "log.segment.delete.delay.ms"),
    "preallocate": ("preallocate", "log.preallocate"),
}


@dataclass(frozen=True)
class LogConfig:
    segment_bytes: int = 1073741824            # segment.bytes (1 GiB)
    segment_ms: int = 604800000                # segment.ms (7 days)
    segment_jitter_ms: int = 0                 # segment.jitter.ms
    segment_index_bytes: int = 10485760        # segment.index.bytes (10 MiB)
    index_interval_bytes: int = 4096           # index.interval.bytes
    flush_messages: int = _LONG_MAX            # flush.messages (never, like Kafka)
    flush_ms: int = _LONG_MAX                  # flush.ms
    retention_bytes: int = -1                  # retention.bytes (unlimited)
    retention_ms: int = 604800000              # retention.ms (7 days)
    message_timestamp_type: str = CREATE_TIME  # message.timestamp.type
    max_message_bytes: int = 1048588           # max.message.bytes
    cleanup_policy: str = "delete"             # cleanup.policy
    file_delete_delay_ms: int = 60000          # file.delete.delay.ms
    preallocate: bool = False                  # preallocate (accepted; segments are not preallocated)
    producer_id_expiration_ms: int = 86400000  # broker: producer.id.expiration.ms
    extra: dict = field(default_factory=dict, compare=False)

    @property
    def log_append_time(self):
        return self.message_timestamp_type == LOG_APPEND_TIME

    @classmethod
    def from_dict(cls, configs, defaults=None):
        """Topic configs (Kafka names, string or typed values) over `defaults` (a LogConfig)."""
        base = defaults or cls()
        changes, extra = {}, dict(base.extra)
        for key, raw in (configs or {}).items():
            if key not in _KEYS:
                extra[key] = raw
                continue
            attr = _KEYS[key][0]
            changes[attr] = _convert(getattr(base, attr), raw)
        return replace(base, extra=extra, **changes)

    @classmethod
    def from_broker(cls, broker_config):
        """Defaults from a broker config (anything with .get(name) over Kafka's server keys)."""
        changes = {}
        for attr, broker_key in ((a, b) for a, b in _KEYS.values() if b):
            value = broker_config.get(broker_key)
            if value is not None:
                changes[attr] = _convert(getattr(cls, attr), value)
        for attr, getter in (("segment_ms", "log_roll_ms"), ("retention_ms", "log_retention_ms")):
            value = getattr(broker_config, getter, None)
            if value is not None:
                changes[attr] = int(value)
        expiration = broker_config.get("producer.id.expiration.ms")
        if expiration is not None:
            changes["producer_id_expiration_ms"] = int(expiration)
        return cls(**changes)

    def to_dict(self):
        """Kafka topic-level names -> values (for DescribeConfigs)."""
        out = {key: getattr(self, attr) for key, (attr, _) in _KEYS.items()}
        out.update(self.extra)
        return out


def _convert(template, raw):
    if isinstance(raw, (list, tuple)):
        raw = ",".join(map(str, raw))
    if isinstance(template, bool):
        return raw if isinstance(raw, bool) else str(raw).strip().lower() == "true"
    if isinstance(template, int):
        return int(raw)
    return str(raw)


CONFIG_NAMES = tuple(_KEYS)
assert {f.name for f in fields(LogConfig)} >= {a for a, _ in _KEYS.values()}
