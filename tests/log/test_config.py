"""LogConfig: Kafka's defaults and names, topic overrides over broker defaults."""
from pybroker.config import BrokerConfig
from pybroker.log import LogConfig


def test_kafka_defaults():
    c = LogConfig()
    assert (c.segment_bytes, c.segment_ms, c.segment_index_bytes, c.index_interval_bytes) == \
        (1073741824, 604800000, 10485760, 4096)
    assert c.flush_messages == 2**63 - 1 and c.retention_bytes == -1 and c.max_message_bytes == 1048588
    assert c.message_timestamp_type == "CreateTime" and not c.log_append_time


def test_topic_overrides_use_kafka_names_and_keep_unknown_keys():
    base = LogConfig(segment_bytes=5000)
    c = LogConfig.from_dict({"segment.ms": "100", "message.timestamp.type": "LogAppendTime",
                             "preallocate": "true", "min.insync.replicas": "2",
                             "remote.log.copy.disable": "true"}, base)
    assert (c.segment_bytes, c.segment_ms, c.log_append_time, c.preallocate) == (5000, 100, True, True)
    assert c.min_insync_replicas == 2
    assert c.extra == {"remote.log.copy.disable": "true"}
    assert c.to_dict()["segment.ms"] == 100 and c.to_dict()["remote.log.copy.disable"] == "true"


def test_cleanup_policy_and_compaction_settings():
    c = LogConfig.from_dict({"cleanup.policy": "compact,delete", "min.cleanable.dirty.ratio": "0.25",
                             "max.compaction.lag.ms": "500", "segment.ms": "9000"})
    assert c.compact and c.delete and c.min_cleanable_dirty_ratio == 0.25
    assert c.max_segment_ms == 500                       # the active segment rolls by the max lag
    assert not LogConfig.from_dict({"cleanup.policy": ""}).delete
    assert LogConfig.from_dict({"cleanup.policy": "delete", "max.compaction.lag.ms": "5"}).max_segment_ms \
        == 604800000                                     # only compacted logs roll for the lag


def test_internal_segment_bytes_overrides_segment_bytes():
    c = LogConfig.from_dict({"internal.segment.bytes": "2048", "segment.bytes": "1048576"})
    assert c.segment_bytes == 2048


def test_from_broker_config():
    bc = BrokerConfig({"log.segment.bytes": "2048", "log.roll.hours": "2", "log.retention.minutes": "5",
                       "log.index.interval.bytes": "128", "log.message.timestamp.type": "LogAppendTime",
                       "producer.id.expiration.ms": "1000"})
    c = LogConfig.from_broker(bc)
    assert (c.segment_bytes, c.segment_ms, c.retention_ms, c.index_interval_bytes) == (2048, 7_200_000, 300_000, 128)
    assert c.log_append_time and c.producer_id_expiration_ms == 1000
