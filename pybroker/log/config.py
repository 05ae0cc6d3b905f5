"""Per-log configuration with Kafka's topic-level names and defaults (LogConfig.java).

The broker builds it from the config registry (`pybroker/topic_config.py`: topic override →
dynamic broker config → static broker config → default) with `LogConfig.from_dict(values,
defaults)`; `LogConfig.from_broker(broker_config)` reads the static `log.*` keys alone (tools,
tests). Every field here is enforced by the storage layer, the log validator or the cleaner; keys
this layer does not act on are kept in `extra` so nothing is silently lost.
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
    "message.timestamp.before.max.ms": ("message_timestamp_before_max_ms",
                                        "log.message.timestamp.before.max.ms"),
    "message.timestamp.after.max.ms": ("message_timestamp_after_max_ms",
                                       "log.message.timestamp.after.max.ms"),
    "max.message.bytes": ("max_message_bytes", "message.max.bytes"),
    "max.decompressed.message.bytes": ("max_decompressed_message_bytes",
                                       "max.decompressed.message.bytes"),
    "cleanup.policy": ("cleanup_policy", "log.cleanup.policy"),
    "delete.retention.ms": ("delete_retention_ms", "log.cleaner.delete.retention.ms"),
    "min.compaction.lag.ms": ("min_compaction_lag_ms", "log.cleaner.min.compaction.lag.ms"),
    "max.compaction.lag.ms": ("max_compaction_lag_ms", "log.cleaner.max.compaction.lag.ms"),
    "min.cleanable.dirty.ratio": ("min_cleanable_dirty_ratio", "log.cleaner.min.cleanable.ratio"),
    "compression.type": ("compression_type", "compression.type"),
    "compression.gzip.level": ("compression_gzip_level", "compression.gzip.level"),
    "compression.lz4.level": ("compression_lz4_level", "compression.lz4.level"),
    "compression.zstd.level": ("compression_zstd_level", "compression.zstd.level"),
    "min.insync.replicas": ("min_insync_replicas", "min.insync.replicas"),
    "file.delete.delay.ms": ("file_delete_delay_ms", "log.segment.delete.delay.ms"),
    "preallocate": ("preallocate", "log.preallocate"),
    # Kafka's internal (test-only, undocumented) override of segment.bytes below its 1 MiB minimum
    "internal.segment.bytes": ("segment_bytes", None),
}
_APPLIED_LAST = ("internal.segment.bytes",)


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
    message_timestamp_before_max_ms: int = _LONG_MAX   # message.timestamp.before.max.ms
    message_timestamp_after_max_ms: int = 3600000      # message.timestamp.after.max.ms
    max_message_bytes: int = 1048588           # max.message.bytes
    max_decompressed_message_bytes: int = 2147483639   # max.decompressed.message.bytes
    cleanup_policy: str = "delete"             # cleanup.policy ("delete", "compact", "compact,delete")
    delete_retention_ms: int = 86400000        # delete.retention.ms (tombstones, markers)
    min_compaction_lag_ms: int = 0             # min.compaction.lag.ms
    max_compaction_lag_ms: int = _LONG_MAX     # max.compaction.lag.ms
    min_cleanable_dirty_ratio: float = 0.5     # min.cleanable.dirty.ratio
    compression_type: str = "producer"         # compression.type (broker-side recompression)
    compression_gzip_level: int = -1           # compression.gzip.level
    compression_lz4_level: int = 9             # compression.lz4.level
    compression_zstd_level: int = 3            # compression.zstd.level
    min_insync_replicas: int = 1               # min.insync.replicas (acks=all on one node)
    file_delete_delay_ms: int = 60000          # file.delete.delay.ms
    preallocate: bool = False                  # preallocate (disk blocks reserved per segment)
    producer_id_expiration_ms: int = 86400000  # broker: producer.id.expiration.ms
    extra: dict = field(default_factory=dict, compare=False)

    # ---- derived ------------------------------------------------------------------------------

    @property
    def log_append_time(self):
        return self.message_timestamp_type == LOG_APPEND_TIME

    @property
    def policies(self):
        return frozenset(p.strip() for p in self.cleanup_policy.split(",") if p.strip())

    @property
    def compact(self):
        return "compact" in self.policies

    @property
    def delete(self):
        return "delete" in self.policies

    @property
    def max_segment_ms(self):
        """How long the active segment may stay open: segment.ms, or max.compaction.lag.ms when
        that is shorter on a compacted log (the cleaner never touches the active segment)."""
        if self.compact and self.max_compaction_lag_ms > 0:
            return min(self.max_compaction_lag_ms, self.segment_ms)
        return self.segment_ms

    # ---- construction ---------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, configs, defaults=None):
        """Topic configs (Kafka names, string or typed values) over `defaults` (a LogConfig)."""
        base = defaults or cls()
        changes, extra = {}, dict(base.extra)
        items = sorted((configs or {}).items(), key=lambda kv: kv[0] in _APPLIED_LAST)
        for key, raw in items:
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
        out = {key: getattr(self, attr) for key, (attr, _) in _KEYS.items()
               if key not in _APPLIED_LAST}
        out.update(self.extra)
        return out


def _convert(template, raw):
    if isinstance(raw, (list, tuple)):
        raw = ",".join(map(str, raw))
    if isinstance(template, bool):
        return raw if isinstance(raw, bool) else str(raw).strip().lower() == "true"
    if isinstance(template, int):
        return int(raw)
    if isinstance(template, float):
        return float(raw)
    return str(raw)


CONFIG_NAMES = tuple(k for k in _KEYS if k not in _APPLIED_LAST)
assert {f.name for f in fields(LogConfig)} >= {a for a, _ in _KEYS.values()}
