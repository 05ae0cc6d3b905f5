"""Retention through real clients: segments past retention.ms (record timestamps) or beyond
retention.bytes disappear from disk, the log start offset moves (ListOffsets earliest, fetch
log_start_offset), a consumer positioned before it gets OFFSET_OUT_OF_RANGE and resets by its
policy (confluent-kafka earliest/latest, kafka-python earliest); a retention change made with
IncrementalAlterConfigs on a live topic takes effect at the next check."""
import os
import time

from lifecycle_helpers import (admin, consume_all, create_topic, fetch_batches, list_offset,
                               now_ms, produce, unique, wait_until)

SEGMENT = "16384"                 # internal.segment.bytes: Kafka's test-only small segments
SMALL_BATCHES = {"linger.ms": 0, "batch.size": 2000}   # batches a fraction of a segment


def partition_files(broker, topic):
    log = broker.broker.state.replicas.logs.get_log(topic, 0)
    return log, sorted(n for n in os.listdir(log.dir_path) if n.endswith(".log"))


def test_retention_by_time_deletes_old_segments_and_consumers_reset(broker, bootstrap, topic):
    create_topic(bootstrap, topic, config={"internal.segment.bytes": SEGMENT, "retention.ms": "60000"})
    old, fresh = now_ms() - 3_600_000, now_ms()
    items = [(b"old-%d" % i, b"x" * 200, old + i) for i in range(300)]
    items += [(b"new-%d" % i, b"y" * 200, fresh) for i in range(50)]
    assert produce(bootstrap, topic, items, **SMALL_BATCHES) == []
    log, _ = partition_files(broker, topic)
    wait_until(lambda: log.log_start_offset >= 300 - 80, what="old segments to be deleted")
    start = log.log_start_offset
    _, files = partition_files(broker, topic)
    assert int(files[0][:20]) == start == list_offset(bootstrap, topic, 0, -2)
    assert all(int(f[:20]) >= start for f in files)
    err, _ = fetch_batches(bootstrap, topic, 0, 0)
    assert err == 1                                           # OFFSET_OUT_OF_RANGE below the start
    got = consume_all(bootstrap, topic, start=0, reset="earliest")
    assert got[0][0] == start and [o for o, _, _ in got] == list(range(start, 350))
    assert {k for _, k, _ in got} >= {b"new-%d" % i for i in range(50)}


def test_latest_reset_and_kafka_python_earliest_reset(broker, bootstrap, topic):
    from confluent_kafka import Consumer, TopicPartition
    create_topic(bootstrap, topic, config={"internal.segment.bytes": SEGMENT, "retention.ms": "60000"})
    produce(bootstrap, topic, [(b"k%d" % i, b"x" * 200, now_ms() - 7_200_000) for i in range(200)]
            + [(b"fresh", b"y", now_ms())], **SMALL_BATCHES)
    log, _ = partition_files(broker, topic)
    wait_until(lambda: log.log_start_offset > 100, what="retention")
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("g"),
                  "auto.offset.reset": "latest", "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0, 0)])                 # below the log start
    for _ in range(5):
        assert c.poll(0.2) is None                              # out of range -> reset to the end
    produce(bootstrap, topic, [(b"after", b"reset")])
    msg = None
    deadline = time.time() + 10
    while msg is None and time.time() < deadline:
        msg = c.poll(0.2)
    c.close()
    assert msg is not None and msg.error() is None and (msg.offset(), msg.key()) == (201, b"after")
    from kafka import KafkaConsumer
    from kafka import TopicPartition as KTP
    kc = KafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                       enable_auto_commit=False, consumer_timeout_ms=3000)
    kc.assign([KTP(topic, 0)])
    kc.seek(KTP(topic, 0), 0)
    offsets = [msg.offset for msg in kc]
    kc.close()
    assert offsets and offsets[0] == log.log_start_offset and offsets[-1] == 201


def test_retention_by_size_keeps_the_log_under_retention_bytes(broker, bootstrap, topic):
    create_topic(bootstrap, topic, config={"internal.segment.bytes": SEGMENT, "retention.bytes": "50000"})
    produce(bootstrap, topic, [(b"k%d" % i, b"z" * 300) for i in range(600)], **SMALL_BATCHES)
    log, _ = partition_files(broker, topic)
    wait_until(lambda: log.size - log.active_segment.size <= 50000, what="size retention")
    assert log.log_start_offset > 0 and log.size < 50000 + int(SEGMENT)
    from kafka.admin import KafkaAdminClient
    client = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        dirs = client.describe_log_dirs()
    finally:
        client.close()
    parts = [p for b in dirs for d in b["log_dirs"] for t in d["topics"] if t["name"] == topic
             for p in t["partitions"]]                        # DescribeLogDirs via kafka-python
    assert [(p["partition_index"], p["partition_size"]) for p in parts] == [(0, log.size)]


def test_changing_retention_on_a_live_topic_takes_effect(broker, bootstrap, topic):
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource
    create_topic(bootstrap, topic, config={"internal.segment.bytes": SEGMENT})
    produce(bootstrap, topic, [(b"k%d" % i, b"w" * 200, now_ms() - 600_000) for i in range(300)],
            **SMALL_BATCHES)
    log, files = partition_files(broker, topic)
    time.sleep(0.5)
    assert log.log_start_offset == 0 and len(files) > 3              # 7 days: nothing expires
    a = admin(bootstrap)
    res = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[
        ConfigEntry("retention.ms", "60000", incremental_operation=AlterConfigOpType.SET)])
    a.incremental_alter_configs([res])[res].result(10)
    wait_until(lambda: log.log_start_offset > 200, what="the new retention.ms to apply")
    assert list_offset(bootstrap, topic, 0, -2) == log.log_start_offset
