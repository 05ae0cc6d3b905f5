"""confluent-kafka (librdkafka) against the in-process broker: every codec, keys, null values,
headers, CreateTime and LogAppendTime, partitions, acks, idempotence, ListOffsets/seek, admin, and
fetch long-poll. No consumer groups: partitions are assigned (librdkafka insists on a group.id
even then; it is never joined and offsets are never committed)."""
from __future__ import annotations

import threading
import time

import pytest

from broker_conftest import (CODECS, WAIT, Got, Msg, assert_partition_matches, assert_stored,
                      fetch_batches, fetch_records, librdkafka_lz4_check, log_end_offset, now_ms,
                      sample_messages, unique)

ck = pytest.importorskip("confluent_kafka")
admin_mod = pytest.importorskip("confluent_kafka.admin")
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import (AdminClient, ConfigResource,  # noqa: E402
                                   NewPartitions, NewTopic, OffsetSpec)

CREATE_TIME, LOG_APPEND_TIME = ck.TIMESTAMP_CREATE_TIME, ck.TIMESTAMP_LOG_APPEND_TIME


def produce(bootstrap, topic, msgs, partition=None, **conf):
    """Produce msgs in order; returns the delivery reports [(err, partition, offset, ts)] in the
    order the messages were produced (reports of different partitions complete in any order)."""
    reports = [None] * len(msgs)
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "socket.timeout.ms": 10000,
                  "message.timeout.ms": 15000, **conf})

    def cb(i, err, msg):
        reports[i] = (err, msg.partition(), msg.offset(), msg.timestamp())
    for i, msg in enumerate(msgs):
        kw = {} if partition is None else {"partition": partition}
        if msg.timestamp is not None:
            kw["timestamp"] = msg.timestamp
        p.produce(topic, value=msg.value, key=msg.key, headers=list(msg.headers) or None,
                  on_delivery=lambda err, msg, i=i: cb(i, err, msg), **kw)
        p.poll(0)
    assert p.flush(WAIT) == 0, "messages still queued after flush"
    assert None not in reports
    return reports


def consumer(bootstrap, **conf):
    return Consumer({"bootstrap.servers": bootstrap, "group.id": "pybroker-tests-unused",
                     "enable.auto.commit": False, "enable.auto.offset.store": False,
                     "fetch.wait.max.ms": 100, **conf})


def consume(bootstrap, topic, count, partitions=(0,), offset=0, **conf) -> list:
    """Assign partitions at `offset` and read exactly `count` messages (bounded wait)."""
    c = consumer(bootstrap, **conf)
    try:
        c.assign([TopicPartition(topic, p, offset) for p in partitions])
        out = []
        deadline = time.monotonic() + WAIT
        while len(out) < count and time.monotonic() < deadline:
            for msg in c.consume(count - len(out), 0.5):
                assert msg.error() is None, msg.error()
                ts_type, ts = msg.timestamp()
                out.append(Got(msg.partition(), msg.offset(), msg.key(), msg.value(),
                               tuple(msg.headers() or ()), ts,
                               {CREATE_TIME: 0, LOG_APPEND_TIME: 1}.get(ts_type, -1)))
        assert len(out) == count, f"got {len(out)} of {count} messages from {topic}"
        # nothing beyond what was expected
        extra = c.consume(10, 0.2)
        assert [e for e in extra if e.error() is None] == []
        return out
    finally:
        c.close()


def by_partition(got):
    parts = {}
    for g in got:
        parts.setdefault(g.partition, []).append(g)
    return parts


# -- produce / consume ----------------------------------------------------------------------------

@pytest.mark.parametrize("codec", CODECS)
def test_codec_roundtrip_keys_nulls_headers_timestamps(bootstrap, topic, codec):
    msgs = sample_messages(codec, 40)
    reports = produce(bootstrap, topic, msgs, **{"compression.type": codec})  # auto-created
    assert [r[0] for r in reports] == [None] * len(msgs)
    assert [r[2] for r in reports] == list(range(len(msgs)))
    got = consume(bootstrap, topic, len(msgs))
    assert_partition_matches(got, msgs)
    assert_stored(bootstrap, topic, 0, msgs)
    librdkafka_lz4_check(bootstrap, codec)
    assert_stored(bootstrap, topic, 0, msgs, codec=codec)


def test_memory_storage_roundtrip(pybroker_broker):
    topic = unique("memory")
    msgs = sample_messages("mem", 25)
    produce(pybroker_broker.bootstrap_servers, topic, msgs, **{"compression.type": "zstd"})
    got = consume(pybroker_broker.bootstrap_servers, topic, len(msgs))
    assert_partition_matches(got, msgs)


def test_null_header_value_and_empty_key(bootstrap, topic):
    msgs = [Msg(b"", b"v0", (("h", None), ("h", b"dup")), now_ms()), Msg(b"k", None, (), None)]
    produce(bootstrap, topic, msgs)
    got = consume(bootstrap, topic, 2)
    assert_partition_matches(got, msgs)
    assert_stored(bootstrap, topic, 0, msgs)


def test_multiple_partitions_keep_order_and_contiguous_offsets(bootstrap, topic):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 4, 1)])[topic].result(WAIT)
    msgs = sample_messages("mp", 120)
    expected = {p: [] for p in range(4)}
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 2})
    for i, msg in enumerate(msgs):
        producer.produce(topic, value=msg.value, key=msg.key, headers=list(msg.headers) or None,
                         timestamp=msg.timestamp, partition=i % 4)
        expected[i % 4].append(msg)
    assert producer.flush(WAIT) == 0
    got = by_partition(consume(bootstrap, topic, len(msgs), partitions=range(4)))
    assert sorted(got) == [0, 1, 2, 3]
    for p in range(4):
        assert_partition_matches(got[p], expected[p])
        assert log_end_offset(bootstrap, topic, p) == 30


def test_keyed_messages_land_in_one_partition_each(bootstrap, topic):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 3, 1)])[topic].result(WAIT)
    msgs = [Msg(f"key-{i % 5}".encode(), f"v{i}".encode(), (), None) for i in range(60)]
    reports = produce(bootstrap, topic, msgs)
    placed = {}
    for msg, (err, part, _, _) in zip(msgs, reports):
        assert err is None
        placed.setdefault(msg.key, set()).add(part)
    assert all(len(s) == 1 for s in placed.values())
    got = consume(bootstrap, topic, 60, partitions=range(3))
    for p, recs in by_partition(got).items():
        assert [g.offset for g in recs] == list(range(len(recs)))
        want = [msg.value for msg, r in zip(msgs, reports) if r[1] == p]
        assert [g.value for g in recs] == want


def test_log_append_time_topic(bootstrap, topic):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1, config={"message.timestamp.type": "LogAppendTime"})]
                        )[topic].result(WAIT)
    old = now_ms() - 3_600_000
    msgs = [Msg(b"k%d" % i, b"v%d" % i, (), old + i) for i in range(10)]
    before = now_ms()
    reports = produce(bootstrap, topic, msgs, **{"compression.type": "lz4"})
    after = now_ms()
    for _, _, _, (ts_type, ts) in reports:
        assert ts_type == LOG_APPEND_TIME and before - 5 <= ts <= after + 5
    got = consume(bootstrap, topic, 10)
    assert_partition_matches(got, msgs, check_timestamps=False)
    for g in got:
        assert g.timestamp_type == 1 and before - 5 <= g.timestamp <= after + 5, g
    stored = fetch_records(bootstrap, topic, 0)
    assert {g.timestamp_type for g in stored} == {1}
    assert [g.timestamp for g in stored] == [g.timestamp for g in got]


@pytest.mark.parametrize("acks", [0, 1, -1])
def test_acks(bootstrap, topic, acks):
    msgs = [Msg(b"k%d" % i, b"acks %d value %d" % (acks, i), (), None) for i in range(50)]
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(WAIT)
    reports = produce(bootstrap, topic, msgs, acks=acks, **{"enable.idempotence": False})
    assert [r[0] for r in reports] == [None] * 50
    if acks == 0:
        assert {r[2] for r in reports} <= {None, -1, -1001}  # no offsets without a response
    else:
        assert [r[2] for r in reports] == list(range(50))
    got = consume(bootstrap, topic, 50)
    assert [g.value for g in got] == [msg.value for msg in msgs]
    assert [g.offset for g in got] == list(range(50))


def test_idempotent_producer_uses_producer_id_and_sequences(bootstrap, topic):
    msgs = sample_messages("idem", 30)
    conf = {"enable.idempotence": True, "compression.type": "lz4"}
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 1, **conf})
    for i, msg in enumerate(msgs):
        p.produce(topic, value=msg.value, key=msg.key, timestamp=msg.timestamp,
                  headers=list(msg.headers) or None)
        if i % 7 == 6:
            assert p.flush(WAIT) == 0  # several batches
    assert p.flush(WAIT) == 0
    batches = [b for b, _ in fetch_batches(bootstrap, topic, 0)]
    assert len(batches) >= 4
    pids = {b.producer_id for b in batches}
    assert len(pids) == 1 and min(pids) >= 0, pids
    assert {b.producer_epoch for b in batches} == {0}
    seq = 0
    for b in batches:  # sequences continue batch after batch, starting at 0
        assert b.base_sequence == seq and b.base_offset == seq
        seq += b.records_count
    assert seq == 30
    produce(bootstrap, topic, [Msg(None, b"second producer", (), None)], **conf)
    last = fetch_batches(bootstrap, topic, 0, 30)
    assert len(last) == 1 and last[0][0].producer_id not in pids and last[0][0].base_sequence == 0
    assert_partition_matches(consume(bootstrap, topic, 31)[:30], msgs)


def test_list_offsets_and_seek(bootstrap, topic):
    base = now_ms() - 100_000
    msgs = [Msg(b"k%d" % i, b"v%d" % i, (), base + 1000 * i) for i in range(20)]
    produce(bootstrap, topic, msgs, **{"compression.type": "gzip"})
    c = consumer(bootstrap)
    try:
        tp = TopicPartition(topic, 0)
        assert c.get_watermark_offsets(tp, WAIT) == (0, 20)
        q = [TopicPartition(topic, 0, base + 7000)]
        assert c.offsets_for_times(q, WAIT)[0].offset == 7
        assert c.offsets_for_times([TopicPartition(topic, 0, base + 7500)], WAIT)[0].offset == 8
        assert c.offsets_for_times([TopicPartition(topic, 0, 0)], WAIT)[0].offset == 0
        assert c.offsets_for_times([TopicPartition(topic, 0, base + 10**6)], WAIT)[0].offset < 0
        # seek: assign at 13, read to the end, then seek back to 4
        c.assign([TopicPartition(topic, 0, 13)])
        got = _take(c, 7)
        assert [g.offset() for g in got] == list(range(13, 20))
        assert [g.value() for g in got] == [msg.value for msg in msgs[13:]]
        c.seek(TopicPartition(topic, 0, 4))
        got = _take(c, 3)
        assert [(g.offset(), g.key()) for g in got] == [(4, b"k4"), (5, b"k5"), (6, b"k6")]
    finally:
        c.close()
    admin = AdminClient({"bootstrap.servers": bootstrap})
    specs = {"earliest": OffsetSpec.earliest(), "latest": OffsetSpec.latest(),
             "ts": OffsetSpec.for_timestamp(base + 11_000), "max": OffsetSpec.max_timestamp()}
    res = {}
    for name, spec in specs.items():
        fut = admin.list_offsets({TopicPartition(topic, 0): spec})
        res[name] = next(iter(fut.values())).result(WAIT)
    assert res["earliest"].offset == 0 and res["latest"].offset == 20
    assert res["ts"].offset == 11 and res["ts"].timestamp == base + 11_000
    assert res["max"].offset == 19 and res["max"].timestamp == base + 19_000


def _take(c, n):
    out = []
    deadline = time.monotonic() + WAIT
    while len(out) < n and time.monotonic() < deadline:
        out += [msg for msg in c.consume(n - len(out), 0.5) if msg.error() is None]
    return out


# -- admin ----------------------------------------------------------------------------------------

def test_admin_create_describe_configs_partitions_delete(bootstrap):
    a, b, bad = unique("adm-a"), unique("adm-b"), unique("adm-bad")
    admin = AdminClient({"bootstrap.servers": bootstrap})
    fs = admin.create_topics([NewTopic(a, 2, 1, config={"retention.ms": "12345",
                                                        "cleanup.policy": "compact"}),
                              NewTopic(b, 1, 1)])
    for f in fs.values():
        f.result(WAIT)
    with pytest.raises(ck.KafkaException) as e:
        admin.create_topics([NewTopic(a, 2, 1)])[a].result(WAIT)
    assert e.value.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS
    with pytest.raises(ck.KafkaException) as e:
        admin.create_topics([NewTopic(bad, 1, 3)])[bad].result(WAIT)
    assert e.value.args[0].code() == KafkaError.INVALID_REPLICATION_FACTOR
    with pytest.raises(ck.KafkaException) as e:
        admin.create_topics([NewTopic(bad, 1, 1, config={"retention.ms": "soon"})]
                            )[bad].result(WAIT)
    assert e.value.args[0].code() == KafkaError.INVALID_CONFIG
    admin.create_topics([NewTopic(bad, 1, 1)], validate_only=True)[bad].result(WAIT)

    md = admin.list_topics(timeout=WAIT)
    assert len(md.topics[a].partitions) == 2 and len(md.topics[b].partitions) == 1
    assert bad not in md.topics  # validate_only created nothing
    part = md.topics[a].partitions[1]
    assert part.leader == 1 and part.replicas == [1] and part.isrs == [1]

    desc = admin.describe_topics(ck.TopicCollection([a]))[a].result(WAIT)
    assert desc.name == a and [p.id for p in desc.partitions] == [0, 1]

    res = ConfigResource(ConfigResource.Type.TOPIC, a)
    cfg = admin.describe_configs([res])[res].result(WAIT)
    assert cfg["retention.ms"].value == "12345" and not cfg["retention.ms"].is_default
    assert cfg["cleanup.policy"].value == "compact"
    assert cfg["max.message.bytes"].value == "1048588" and cfg["max.message.bytes"].is_default
    assert cfg["message.timestamp.type"].value == "CreateTime"
    bres = ConfigResource(ConfigResource.Type.BROKER, "1")
    bcfg = admin.describe_configs([bres])[bres].result(WAIT)
    assert bcfg["num.partitions"].value == "1" and bcfg["log.segment.bytes"].value == "1073741824"

    cluster = admin.describe_cluster().result(WAIT) if hasattr(admin, "describe_cluster") else None
    if cluster is not None:
        assert [n.id for n in cluster.nodes] == [1] and cluster.controller.id == 1

    admin.create_partitions([NewPartitions(a, 5)])[a].result(WAIT)
    assert len(admin.list_topics(a, timeout=WAIT).topics[a].partitions) == 5
    with pytest.raises(ck.KafkaException) as e:
        admin.create_partitions([NewPartitions(a, 3)])[a].result(WAIT)
    assert e.value.args[0].code() == KafkaError.INVALID_PARTITIONS
    produce(bootstrap, a, [Msg(b"k", b"to partition 4", (), None)], partition=4)
    assert log_end_offset(bootstrap, a, 4) == 1

    for f in admin.delete_topics([a, b]).values():
        f.result(WAIT)
    remaining = admin.list_topics(timeout=WAIT).topics
    assert a not in remaining and b not in remaining
    with pytest.raises(ck.KafkaException) as e:
        admin.delete_topics([a])[a].result(WAIT)
    assert e.value.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART


def test_recreated_topic_starts_empty(bootstrap, topic):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(WAIT)
    produce(bootstrap, topic, [Msg(b"old", b"old", (), None)] * 3)
    admin.delete_topics([topic])[topic].result(WAIT)
    deadline = time.monotonic() + WAIT
    while True:  # deletion of the log directory finishes in the background
        try:
            admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(WAIT)
            break
        except ck.KafkaException:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    produce(bootstrap, topic, [Msg(b"new", b"new", (), None)])
    got = consume(bootstrap, topic, 1)
    assert (got[0].offset, got[0].value) == (0, b"new")


# -- fetch long poll (the raw-protocol checks are in test_clients_raw.py) ---------------------

def test_consumer_waiting_gets_a_later_message(bootstrap, topic):
    produce(bootstrap, topic, [Msg(None, b"first", (), None)])
    c = consumer(bootstrap, **{"fetch.wait.max.ms": 5000})
    try:
        c.assign([TopicPartition(topic, 0, 1)])
        c.consume(1, 0.3)  # let the consumer start its long poll
        timer = threading.Timer(0.3, produce, (bootstrap, topic, [Msg(b"k", b"arrived", (), None)]))
        t0 = time.monotonic()
        timer.start()
        got = _take(c, 1)
        elapsed = time.monotonic() - t0
        timer.join(WAIT)
    finally:
        c.close()
    assert [(g.offset(), g.value()) for g in got] == [(1, b"arrived")]
    assert elapsed < 4.0, elapsed
