"""kafka-python 3 (pure Python; idempotent by default) against the in-process broker: every codec,
keys, null values, headers, timestamps, LogAppendTime, partitions, acks, ListOffsets and seek, the
admin client. Consumers assign partitions (group_id=None: no coordinator)."""
from __future__ import annotations

import time

import pytest

from broker_conftest import (CODECS, WAIT, Got, Msg, assert_partition_matches, assert_stored,
                      fetch_batches, fetch_records, now_ms, sample_messages, unique)

kafka = pytest.importorskip("kafka")
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition  # noqa: E402
from kafka.admin import ConfigResource, ConfigResourceType, NewPartitions, NewTopic  # noqa: E402
from kafka.errors import (InvalidPartitionsError, InvalidReplicationFactorError,  # noqa: E402
                          TopicAlreadyExistsError, UnknownTopicOrPartitionError)

CODEC_NAMES = {"none": None, "gzip": "gzip", "snappy": "snappy", "lz4": "lz4", "zstd": "zstd"}


def producer(bootstrap, **conf):
    return KafkaProducer(bootstrap_servers=bootstrap, request_timeout_ms=10000,
                         max_block_ms=10000, **conf)


def produce(bootstrap, topic, msgs, partition=None, **conf):
    """Send msgs in order and wait for every ack; returns the RecordMetadata list."""
    p = producer(bootstrap, linger_ms=5, **conf)
    try:
        futs = [p.send(topic, value=msg.value, key=msg.key, headers=list(msg.headers),
                       partition=partition, timestamp_ms=msg.timestamp) for msg in msgs]
        p.flush(WAIT)
        return [f.get(WAIT) for f in futs]
    finally:
        p.close(WAIT)


def consumer(bootstrap, **conf):
    return KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                         auto_offset_reset="earliest", request_timeout_ms=10000,
                         fetch_max_wait_ms=100, **conf)


def take(c, count):
    out = []
    deadline = time.monotonic() + WAIT
    while len(out) < count and time.monotonic() < deadline:
        for recs in c.poll(timeout_ms=200, max_records=count - len(out)).values():
            out += [Got(r.partition, r.offset, r.key, r.value, tuple(r.headers or ()),
                        r.timestamp, r.timestamp_type) for r in recs]
    assert len(out) == count, f"got {len(out)} of {count}"
    return out


def consume(bootstrap, topic, count, partitions=(0,), offset=None):
    c = consumer(bootstrap)
    try:
        tps = [TopicPartition(topic, p) for p in partitions]
        c.assign(tps)
        if offset is None:
            c.seek_to_beginning(*tps)
        else:
            for tp in tps:
                c.seek(tp, offset)
        out = take(c, count)
        assert c.poll(timeout_ms=200) == {}  # nothing beyond
        return out
    finally:
        c.close()


@pytest.mark.parametrize("codec", CODECS)
def test_codec_roundtrip_default_idempotent_producer(bootstrap, topic, codec):
    msgs = sample_messages(codec, 30)
    meta = produce(bootstrap, topic, msgs, compression_type=CODEC_NAMES[codec])  # auto-created
    assert [r.offset for r in meta] == list(range(30))
    got = consume(bootstrap, topic, 30)
    assert_partition_matches(got, msgs)
    stored = assert_stored(bootstrap, topic, 0, msgs, codec=codec)
    # kafka-python 3 is idempotent by default: InitProducerId gave it a producer id
    assert {g.extra["producer_id"] for g in stored} != {-1}
    assert min(g.extra["base_sequence"] for g in stored) == 0


def test_log_append_time_topic(bootstrap, topic):
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(topic, 1, 1, topic_configs={
            "message.timestamp.type": "LogAppendTime"})])
    finally:
        admin.close()
    msgs = [Msg(b"k%d" % i, b"v%d" % i, (("h", b"1"),), now_ms() - 7_200_000) for i in range(8)]
    before = now_ms()
    meta = produce(bootstrap, topic, msgs, compression_type="zstd")
    after = now_ms()
    assert all(before - 5 <= r.timestamp <= after + 5 for r in meta), [r.timestamp for r in meta]
    got = consume(bootstrap, topic, 8)
    assert_partition_matches(got, msgs, check_timestamps=False)
    assert all(g.timestamp_type == 1 and before - 5 <= g.timestamp <= after + 5 for g in got)


def test_partitions_order_offsets_and_list_offsets(bootstrap, topic):
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(topic, 3, 1)])
    finally:
        admin.close()
    base = now_ms() - 50_000
    per_part = {p: [Msg(b"p%d-%d" % (p, i), b"v%d-%d" % (p, i), (), base + 100 * i + p)
                    for i in range(25)] for p in range(3)}
    p = producer(bootstrap, linger_ms=2, compression_type="lz4")
    try:
        for i in range(25):
            for part in range(3):
                msg = per_part[part][i]
                p.send(topic, value=msg.value, key=msg.key, partition=part,
                       timestamp_ms=msg.timestamp)
        p.flush(WAIT)
    finally:
        p.close(WAIT)
    got = consume(bootstrap, topic, 75, partitions=range(3))
    for part in range(3):
        assert_partition_matches([g for g in got if g.partition == part], per_part[part])
    c = consumer(bootstrap)
    try:
        tps = [TopicPartition(topic, part) for part in range(3)]
        assert c.beginning_offsets(tps) == {tp: 0 for tp in tps}
        assert c.end_offsets(tps) == {tp: 25 for tp in tps}
        found = c.offsets_for_times({tps[1]: base + 100 * 10 + 1, tps[2]: base + 100 * 10 + 3,
                                     tps[0]: base + 10**6})
        assert (found[tps[1]].offset, found[tps[1]].timestamp) == (10, base + 1001)
        assert found[tps[2]].offset == 11  # the first timestamp >= the target
        assert found[tps[0]] is None  # nothing that late
        c.assign([tps[2]])
        c.seek(tps[2], 20)
        assert [g.offset for g in take(c, 5)] == [20, 21, 22, 23, 24]
        c.seek(tps[2], 3)
        assert [(g.offset, g.key) for g in take(c, 2)] == [(3, b"p2-3"), (4, b"p2-4")]
    finally:
        c.close()


@pytest.mark.parametrize("acks", [0, 1, -1])
def test_acks(bootstrap, topic, acks):
    msgs = [Msg(b"k%d" % i, b"acks%d-%d" % (acks, i), (), None) for i in range(40)]
    conf = {"acks": acks, "enable_idempotence": acks == -1}
    meta = produce(bootstrap, topic, msgs, **conf)
    if acks != 0:
        assert [r.offset for r in meta] == list(range(40))
    got = consume(bootstrap, topic, 40)
    assert [(g.offset, g.value) for g in got] == [(i, msg.value) for i, msg in enumerate(msgs)]
    batches = [b for b, _ in fetch_batches(bootstrap, topic, 0)]
    assert ({b.producer_id for b in batches} == {-1}) == (acks != -1)


def test_admin_client(bootstrap):
    a, b, bad = unique("kp-adm-a"), unique("kp-adm-b"), unique("kp-adm-bad")
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    try:
        admin.create_topics([NewTopic(a, 2, 1, topic_configs={"retention.bytes": "1048576"}),
                             NewTopic(b, 1, 1)])
        with pytest.raises(TopicAlreadyExistsError):
            admin.create_topics([NewTopic(a, 1, 1)])
        with pytest.raises(InvalidReplicationFactorError):
            admin.create_topics([NewTopic(bad, 1, 2)])
        admin.create_topics([NewTopic(bad, 4, 1)], validate_only=True)
        listed = set(admin.list_topics())
        assert {a, b} <= listed and bad not in listed
        desc = {t["name"]: t for t in admin.describe_topics([a, b])}
        assert desc[a]["error_code"] == 0 and len(desc[a]["partitions"]) == 2
        leaders = {(p["leader_id"], tuple(p["isr_nodes"])) for p in desc[a]["partitions"]}
        assert leaders == {(1, (1,))}
        cluster = admin.describe_cluster()
        assert [n["broker_id"] for n in cluster["brokers"]] == [1]
        assert cluster["controller_id"] == 1

        modified = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, a)])
        assert {k: (v["value"], v["config_source"]) for k, v in modified["topic"][a].items()} == \
            {"retention.bytes": ("1048576", "DYNAMIC_TOPIC_CONFIG")}
        full = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, a)],
                                      config_filter="all")["topic"][a]
        assert full["cleanup.policy"]["value"] == "delete"
        assert full["cleanup.policy"]["config_source"] == "DEFAULT_CONFIG"
        assert full["message.timestamp.type"]["value"] == "CreateTime"
        broker = admin.describe_configs([ConfigResource(ConfigResourceType.BROKER, "1")],
                                        config_filter="all")
        bcfg = next(iter(broker.values()))["1"]
        assert bcfg["num.partitions"]["value"] == "1"
        assert bcfg["log.segment.bytes"]["value"] == "1073741824"

        admin.create_partitions({a: NewPartitions(4)})
        desc = {t["name"]: t for t in admin.describe_topics([a])}
        assert len(desc[a]["partitions"]) == 4
        with pytest.raises(InvalidPartitionsError):
            admin.create_partitions({a: NewPartitions(2)})

        admin.delete_topics([a, b])
        listed = set(admin.list_topics())
        assert a not in listed and b not in listed
        with pytest.raises(UnknownTopicOrPartitionError):
            admin.delete_topics([a])
    finally:
        admin.close()


def test_idempotent_producer_sequences(bootstrap, topic):
    msgs = [Msg(None, b"seq %d" % i, (), None) for i in range(25)]
    p = producer(bootstrap, linger_ms=0, batch_size=64)  # small batches: many sequences
    try:
        for msg in msgs:
            p.send(topic, value=msg.value)
        p.flush(WAIT)
    finally:
        p.close(WAIT)
    batches = [b for b, _ in fetch_batches(bootstrap, topic, 0)]
    assert len({b.producer_id for b in batches}) == 1 and batches[0].producer_id >= 0
    seq = 0
    for b in batches:
        assert b.base_sequence == seq
        seq += b.records_count
    assert [g.value for g in fetch_records(bootstrap, topic, 0)] == [msg.value for msg in msgs]
