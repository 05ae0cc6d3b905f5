"""Config registry through real clients: every topic config DescribeConfigs lists round-trips
through IncrementalAlterConfigs (confluent-kafka) and reaches the partition's live LogConfig;
dynamic broker defaults (cluster-wide and per broker) apply to topics without an override with
Kafka's precedence and sources, persist across a restart and reach the cleaner; AlterConfigs
(kafka-python) replaces a resource's set; APPEND/SUBTRACT; bad input answered with Kafka's codes
and messages naming the key; Kafka's kafka-configs tool."""
import pytest

from lifecycle_helpers import (FAST, create_topic, describe, incremental, unique, wait_until)
from pybroker.testing import Broker
from pybroker import topic_config as tc

TOPIC, BROKER = 2, 4
SET, DELETE, APPEND, SUBTRACT = 0, 1, 2, 3

# every described topic config: a non-default value and how the partition's LogConfig shows it
ROUND_TRIP = {
    "cleanup.policy": ("compact,delete", lambda c: c.compact and c.delete),
    "compression.gzip.level": ("5", lambda c: c.compression_gzip_level == 5),
    "compression.lz4.level": ("12", lambda c: c.compression_lz4_level == 12),
    "compression.type": ("zstd", lambda c: c.compression_type == "zstd"),
    "compression.zstd.level": ("10", lambda c: c.compression_zstd_level == 10),
    "delete.retention.ms": ("1234", lambda c: c.delete_retention_ms == 1234),
    "errors.deadletterqueue.group.enable": ("true", lambda c: c.extra[
        "errors.deadletterqueue.group.enable"] == "true"),
    "file.delete.delay.ms": ("999", lambda c: c.file_delete_delay_ms == 999),
    "flush.messages": ("1000", lambda c: c.flush_messages == 1000),
    "flush.ms": ("5000", lambda c: c.flush_ms == 5000),
    "follower.replication.throttled.replicas": ("0:1", lambda c: c.extra[
        "follower.replication.throttled.replicas"] == "0:1"),
    "index.interval.bytes": ("1024", lambda c: c.index_interval_bytes == 1024),
    "leader.replication.throttled.replicas": ("*", lambda c: c.extra[
        "leader.replication.throttled.replicas"] == "*"),
    "local.retention.bytes": ("1000", lambda c: c.extra["local.retention.bytes"] == "1000"),
    "local.retention.ms": ("1000", lambda c: c.extra["local.retention.ms"] == "1000"),
    "max.compaction.lag.ms": ("600000", lambda c: c.max_compaction_lag_ms == 600000),
    "max.decompressed.message.bytes": ("1000000", lambda c: c.max_decompressed_message_bytes == 10 ** 6),
    "max.message.bytes": ("2000000", lambda c: c.max_message_bytes == 2 * 10 ** 6),
    "message.timestamp.after.max.ms": ("5000", lambda c: c.message_timestamp_after_max_ms == 5000),
    "message.timestamp.before.max.ms": ("6000", lambda c: c.message_timestamp_before_max_ms == 6000),
    "message.timestamp.type": ("LogAppendTime", lambda c: c.log_append_time),
    "min.cleanable.dirty.ratio": ("0.25", lambda c: c.min_cleanable_dirty_ratio == 0.25),
    "min.compaction.lag.ms": ("100", lambda c: c.min_compaction_lag_ms == 100),
    "min.insync.replicas": ("2", lambda c: c.min_insync_replicas == 2),
    "preallocate": ("true", lambda c: c.preallocate),
    "remote.copy.lag.bytes": ("100", lambda c: c.extra["remote.copy.lag.bytes"] == "100"),
    "remote.copy.lag.ms": ("100", lambda c: c.extra["remote.copy.lag.ms"] == "100"),
    "remote.log.copy.disable": ("true", lambda c: c.extra["remote.log.copy.disable"] == "true"),
    "remote.log.delete.on.disable": ("true", lambda c: c.extra["remote.log.delete.on.disable"] == "true"),
    "remote.storage.enable": ("false", lambda c: c.extra["remote.storage.enable"] == "false"),
    "retention.bytes": ("1000000", lambda c: c.retention_bytes == 10 ** 6),
    "retention.ms": ("3600000", lambda c: c.retention_ms == 3600000),
    "segment.bytes": ("2097152", lambda c: c.segment_bytes == 2097152),
    "segment.index.bytes": ("4096", lambda c: c.segment_index_bytes == 4096),
    "segment.jitter.ms": ("10", lambda c: c.segment_jitter_ms == 10),
    "segment.ms": ("7200000", lambda c: c.segment_ms == 7200000),
    "unclean.leader.election.enable": ("true", lambda c: c.extra[
        "unclean.leader.election.enable"] == "true"),
}


def live_config(broker, topic, partition=0):
    return broker.broker.state.replicas.logs.get_log(topic, partition).config


def test_every_described_config_round_trips_and_reaches_the_live_log(broker, bootstrap, topic):
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource
    create_topic(bootstrap, topic, 2)
    described = describe(bootstrap, TOPIC, topic)
    assert set(described) == set(ROUND_TRIP) == set(tc.DESCRIBED)
    a = __import__("lifecycle_helpers").admin(bootstrap)
    ops = [ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET)
           for k, (v, _) in ROUND_TRIP.items()]
    res = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=ops)
    a.incremental_alter_configs([res])[res].result(15)
    got = a.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, topic)])
    entries = list(got.values())[0].result(15)
    for name, (value, check) in ROUND_TRIP.items():
        e = entries[name]
        assert (e.value, int(e.source)) == (value, tc.DYNAMIC_TOPIC_CONFIG), name
        for p in (0, 1):
            assert check(live_config(broker, topic, p)), name
    ops = [ConfigEntry(k, None, incremental_operation=AlterConfigOpType.DELETE) for k in ROUND_TRIP]
    res = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=ops)
    a.incremental_alter_configs([res])[res].result(15)
    after = describe(bootstrap, TOPIC, topic)
    for name in ROUND_TRIP:                              # back to the broker-level values
        assert (after[name].value, after[name].config_source) == \
            (described[name].value, described[name].config_source) != (None, 1), name
    assert live_config(broker, topic) == broker.broker.state.replicas.defaults


def test_broker_dynamic_defaults_precede_static_and_yield_to_topic_overrides(tmp_path):
    data = str(tmp_path / "data")
    with Broker(storage="disk", data_dir=data, config={**FAST, "log.retention.hours": "10"}) as b:
        bs = b.bootstrap_servers
        plain, custom = unique("plain"), unique("custom")
        create_topic(bs, plain)
        create_topic(bs, custom, config={"retention.ms": "77"})
        d = describe(bs, TOPIC, plain)["retention.ms"]
        assert (d.value, d.config_source) == ("36000000", tc.STATIC_BROKER_CONFIG)
        assert [(s.name, s.value, s.source) for s in d.synonyms] == \
            [("log.retention.hours", "10", 4), ("log.retention.hours", "168", 5)]
        assert incremental(bs, BROKER, "", [("log.retention.ms", SET, "12345")]) == (0, None)
        d = describe(bs, TOPIC, plain)["retention.ms"]
        assert (d.value, d.config_source) == ("12345", tc.DYNAMIC_DEFAULT_BROKER_CONFIG)
        assert live_config(b, plain).retention_ms == 12345
        assert live_config(b, custom).retention_ms == 77                # the override wins
        assert incremental(bs, BROKER, "1", [("log.retention.ms", SET, "555")]) == (0, None)
        d = describe(bs, TOPIC, plain)["retention.ms"]
        assert (d.value, d.config_source) == ("555", tc.DYNAMIC_BROKER_CONFIG)
        assert [s.source for s in d.synonyms] == [2, 3, 4, 5]
        bd = describe(bs, BROKER, "1")["log.retention.ms"]
        assert (bd.value, bd.config_source, bd.read_only) == ("555", 2, False)
        assert describe(bs, BROKER, "1")["log.dirs"].read_only
        assert set(describe(bs, BROKER, "")) == {"log.retention.ms"}    # only the set defaults
        assert incremental(bs, BROKER, "", [("log.cleaner.threads", SET, "2")]) == (0, None)
        wait_until(lambda: len(b.broker.state.replicas.logs.cleaner._tasks) == 2,
                   what="the cleaner to restart with 2 threads")
    with Broker(storage="disk", data_dir=data, config=FAST) as b:           # persisted
        d = describe(b.bootstrap_servers, TOPIC, plain)["retention.ms"]
        assert (d.value, d.config_source) == ("555", tc.DYNAMIC_BROKER_CONFIG)
        assert live_config(b, plain).retention_ms == 555
        assert live_config(b, custom).retention_ms == 77     # topic overrides reach loaded logs
        assert b.broker.state.replicas.logs.cleaner.config.threads == 2
        assert incremental(b.bootstrap_servers, BROKER, "1", [("log.retention.ms", DELETE, None)]) == (0, None)
        assert live_config(b, plain).retention_ms == 12345


def test_alter_configs_replaces_the_whole_set(bootstrap, topic, broker):
    from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient
    from lifecycle_helpers import raw
    from pybroker.codec import messages as m
    create_topic(bootstrap, topic, config={"retention.ms": "1000", "cleanup.policy": "compact"})
    # kafka-python's AlterConfigs path sends the topic's other dynamic configs along (it merges)
    client = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    try:
        client.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic,
                                             configs={"segment.ms": "60000"})], incremental=False)
    finally:
        client.close()
    d = describe(bootstrap, TOPIC, topic)
    assert [(d[k].value, d[k].config_source) for k in ("segment.ms", "retention.ms")] == \
        [("60000", 1), ("1000", 1)]
    # the request itself replaces the set: what it does not name goes back to the defaults
    R = m.AlterConfigsRequest
    resp = raw(bootstrap, 33, 2, R(resources=[R.AlterConfigsResource(
        resource_type=TOPIC, resource_name=topic,
        configs=[R.AlterableConfig(name="segment.ms", value="70000")])], validate_only=False))
    assert resp.responses[0].error_code == 0
    d = describe(bootstrap, TOPIC, topic)
    assert (d["segment.ms"].value, d["segment.ms"].config_source) == ("70000", 1)
    assert d["retention.ms"].config_source != 1 and d["cleanup.policy"].value == "delete"
    assert not live_config(broker, topic).compact and live_config(broker, topic).segment_ms == 70000
    resp = raw(bootstrap, 33, 2, R(resources=[R.AlterConfigsResource(
        resource_type=TOPIC, resource_name=topic,
        configs=[R.AlterableConfig(name="segment.ms", value="soon")])], validate_only=False))
    assert resp.responses[0].error_code == 40 and "segment.ms" in resp.responses[0].error_message
    assert live_config(broker, topic).segment_ms == 70000


def test_append_and_subtract_edit_list_configs(bootstrap, topic, broker):
    create_topic(bootstrap, topic)
    assert incremental(bootstrap, TOPIC, topic, [("cleanup.policy", APPEND, "compact")]) == (0, None)
    assert describe(bootstrap, TOPIC, topic)["cleanup.policy"].value == "delete,compact"
    assert live_config(broker, topic).compact and live_config(broker, topic).delete
    assert incremental(bootstrap, TOPIC, topic, [("cleanup.policy", SUBTRACT, "delete")]) == (0, None)
    assert describe(bootstrap, TOPIC, topic)["cleanup.policy"].value == "compact"
    assert not live_config(broker, topic).delete
    assert incremental(bootstrap, TOPIC, topic, [("retention.ms", APPEND, "5")]) == \
        (40, "Can't APPEND to key retention.ms because its type is not LIST.")


@pytest.mark.parametrize("rtype,name,ops,code,text", [
    (TOPIC, None, [("retention.ms", SET, "abc")], 40,
     "Invalid value abc for configuration retention.ms: Not a number of type LONG"),
    (TOPIC, None, [("foo.bar", SET, "1")], 40, "Unknown topic config name: foo.bar"),
    (TOPIC, None, [("cleanup.policy", SET, "foo")], 40, "String must be one of: compact, delete"),
    (TOPIC, None, [("segment.bytes", SET, "5")], 40, "Value must be at least 1048576"),
    (TOPIC, None, [("segment.bytes", SET, "99999999999")], 40, "Not a number of type INT"),
    (TOPIC, None, [("min.cleanable.dirty.ratio", SET, "1.5")], 40, "Value must be no more than 1"),
    (TOPIC, None, [("preallocate", SET, "yes")], 40, "Expected value to be either true or false"),
    (TOPIC, None, [("compression.type", SET, "brotli")], 40, "compression.type"),
    (TOPIC, None, [("remote.storage.enable", SET, "true")], 40, "Tiered Storage functionality is disabled"),
    (TOPIC, None, [("min.compaction.lag.ms", SET, "10"), ("max.compaction.lag.ms", SET, "5")], 40,
     "min.compaction.lag.ms (10) > max.compaction.lag.ms (5)"),
    (TOPIC, None, [("retention.ms", SET, None)], 42, "Null value not supported for : retention.ms"),
    (TOPIC, None, [("retention.ms", SET, "5"), ("retention.ms", SET, "6")], 42,
     "Error due to duplicate config keys"),
    (TOPIC, None, [("retention.ms", 7, "1")], 42, "Unknown config operation 7"),
    (TOPIC, "no-such-topic", [("retention.ms", SET, "1")], 3, "The topic 'no-such-topic' does not exist."),
    (BROKER, "2", [("log.retention.ms", SET, "1")], 42, "Unexpected broker id, expected 1, but received 2"),
    (BROKER, "", [("log.dirs", SET, "/x")], 42, "Cannot update these configs dynamically: [log.dirs]"),
    (BROKER, "", [("foo.bar", SET, "1")], 40, "Unknown broker config name: foo.bar"),
    (BROKER, "1", [("log.retention.ms", SET, "xx")], 40, "log.retention.ms: Not a number of type LONG"),
    (9, "x", [("a", SET, "1")], 42, "Unknown resource type 9"),
])
def test_bad_changes_are_rejected_naming_the_key_and_change_nothing(bootstrap, broker, rtype, name,
                                                                   ops, code, text):
    topic = unique("bad")
    create_topic(bootstrap, topic)
    before = live_config(broker, topic)
    got_code, message = incremental(bootstrap, rtype, topic if name is None else name, ops)
    assert got_code == code and text in message, (got_code, message)
    assert live_config(broker, topic) == before
    assert describe(bootstrap, TOPIC, topic)["retention.ms"].config_source == 5


def test_validate_only_checks_without_applying(bootstrap, topic, broker):
    create_topic(bootstrap, topic)
    assert incremental(bootstrap, TOPIC, topic, [("retention.ms", SET, "10")], validate_only=True) == (0, None)
    assert incremental(bootstrap, TOPIC, topic, [("retention.ms", SET, "x")], validate_only=True)[0] == 40
    assert describe(bootstrap, TOPIC, topic)["retention.ms"].config_source == 5
    assert live_config(broker, topic).retention_ms == 604800000


@pytest.mark.java
def test_kafka_configs_tool_alters_describes_and_deletes(bootstrap, topic, broker):
    import sys
    import pathlib
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
    from tests.kafka_tools import run_tool
    create_topic(bootstrap, topic)
    run_tool("kafka-configs", "--bootstrap-server", bootstrap, "--alter", "--entity-type", "topics",
             "--entity-name", topic, "--add-config", "retention.ms=4321,cleanup.policy=[compact,delete]")
    assert live_config(broker, topic).retention_ms == 4321 and live_config(broker, topic).compact
    out = run_tool("kafka-configs", "--bootstrap-server", bootstrap, "--describe", "--entity-type",
                   "topics", "--entity-name", topic)
    assert "retention.ms=4321" in out.stdout and "cleanup.policy=compact,delete" in out.stdout
    run_tool("kafka-configs", "--bootstrap-server", bootstrap, "--alter", "--entity-type", "topics",
             "--entity-name", topic, "--delete-config", "retention.ms")
    assert live_config(broker, topic).retention_ms == 604800000
    bad = run_tool("kafka-configs", "--bootstrap-server", bootstrap, "--alter", "--entity-type", "topics",
                   "--entity-name", topic, "--add-config", "segment.bytes=12", check=False)
    assert bad.returncode != 0 and "segment.bytes" in (bad.stdout + bad.stderr)
    run_tool("kafka-configs", "--bootstrap-server", bootstrap, "--alter", "--entity-type", "brokers",
             "--entity-default", "--add-config", "log.retention.bytes=123456789")
    out = run_tool("kafka-configs", "--bootstrap-server", bootstrap, "--describe", "--entity-type",
                   "brokers", "--entity-default")
    assert "log.retention.bytes=123456789" in out.stdout
    assert live_config(broker, topic).retention_bytes == 123456789
    run_tool("kafka-configs", "--bootstrap-server", bootstrap, "--alter", "--entity-type", "brokers",
             "--entity-default", "--delete-config", "log.retention.bytes")
    assert live_config(broker, topic).retention_bytes == -1
