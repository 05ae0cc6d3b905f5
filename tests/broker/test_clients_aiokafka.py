"""aiokafka against the in-process broker: every codec, keys, null values, headers, timestamps,
LogAppendTime, acks, idempotence, ListOffsets and seek, admin, and a consumer waiting in a long poll
that gets a message produced later. Consumers assign partitions (group_id=None)."""
from __future__ import annotations

import asyncio
import time

import pytest

from broker_conftest import (CODECS, WAIT, Got, Msg, assert_partition_matches, assert_stored,
                      fetch_batches, now_ms, sample_messages, unique)

aiokafka = pytest.importorskip("aiokafka")
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition  # noqa: E402
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic  # noqa: E402
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType  # noqa: E402
from aiokafka.errors import TopicAlreadyExistsError  # noqa: E402

CODEC_NAMES = {"none": None, "gzip": "gzip", "snappy": "snappy", "lz4": "lz4", "zstd": "zstd"}


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


async def produce(bootstrap, topic, msgs, partition=None, **conf):
    p = AIOKafkaProducer(bootstrap_servers=bootstrap, request_timeout_ms=10000, linger_ms=5,
                         **conf)
    await p.start()
    try:
        futs = [await p.send(topic, value=msg.value, key=msg.key, partition=partition,
                             timestamp_ms=msg.timestamp, headers=list(msg.headers) or None)
                for msg in msgs]
        return [await asyncio.wait_for(f, WAIT) for f in futs]
    finally:
        await p.stop()


def consumer(bootstrap, **conf):
    return AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                            auto_offset_reset="earliest", request_timeout_ms=10000,
                            fetch_max_wait_ms=100, **conf)


async def take(c, count, timeout=WAIT):
    out = []
    deadline = time.monotonic() + timeout
    while len(out) < count and time.monotonic() < deadline:
        batch = await c.getmany(timeout_ms=200, max_records=count - len(out))
        for recs in batch.values():
            out += [Got(r.partition, r.offset, r.key, r.value, tuple(r.headers or ()),
                        r.timestamp, r.timestamp_type) for r in recs]
    assert len(out) == count, f"got {len(out)} of {count}"
    return out


async def consume(bootstrap, topic, count, partitions=(0,)):
    c = consumer(bootstrap)
    await c.start()
    try:
        tps = [TopicPartition(topic, p) for p in partitions]
        c.assign(tps)
        await c.seek_to_beginning(*tps)
        out = await take(c, count)
        assert await c.getmany(timeout_ms=200) == {}
        return out
    finally:
        await c.stop()


@pytest.mark.parametrize("codec", CODECS)
def test_codec_roundtrip(bootstrap, topic, codec):
    msgs = sample_messages(codec, 30)

    async def go():
        meta = await produce(bootstrap, topic, msgs, compression_type=CODEC_NAMES[codec])
        assert [r.offset for r in meta] == list(range(30))
        return await consume(bootstrap, topic, 30)
    got = run(go())
    assert_partition_matches(got, msgs)
    assert_stored(bootstrap, topic, 0, msgs, codec=codec)


def test_idempotent_producer_and_acks(bootstrap):
    topics = {acks: unique(f"aio-acks{acks}") for acks in (0, 1, "all")}
    idem = unique("aio-idem")
    msgs = [Msg(b"k%d" % i, b"value %d" % i, (("i", b"%d" % i),), None) for i in range(30)]

    async def go():
        for acks, t in topics.items():
            await produce(bootstrap, t, msgs, acks=acks)
        await produce(bootstrap, idem, msgs, enable_idempotence=True, compression_type="zstd")
        return {t: await consume(bootstrap, t, 30) for t in [*topics.values(), idem]}
    got = run(go())
    for t, recs in got.items():
        assert_partition_matches(recs, msgs)
    batches = [b for b, _ in fetch_batches(bootstrap, idem, 0)]
    assert len({b.producer_id for b in batches}) == 1 and batches[0].producer_id >= 0
    assert batches[0].base_sequence == 0
    plain = {b.producer_id for t in topics.values() for b, _ in fetch_batches(bootstrap, t, 0)}
    assert plain == {-1}


def test_log_append_time_list_offsets_and_seek(bootstrap):
    lat, ct = unique("aio-lat"), unique("aio-ct")
    base = now_ms() - 30_000
    msgs = [Msg(b"k%d" % i, b"v%d" % i, (), base + 10 * i) for i in range(20)]

    async def go():
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
        await admin.start()
        try:
            await admin.create_topics([
                NewTopic(lat, 1, 1, topic_configs={"message.timestamp.type": "LogAppendTime"}),
                NewTopic(ct, 1, 1)])
        finally:
            await admin.close()
        before = now_ms()
        await produce(bootstrap, lat, msgs, compression_type="gzip")
        after = now_ms()
        await produce(bootstrap, ct, msgs)
        got_lat = await consume(bootstrap, lat, 20)
        assert all(g.timestamp_type == 1 and before - 5 <= g.timestamp <= after + 5
                   for g in got_lat)
        c = consumer(bootstrap)
        await c.start()
        try:
            tp = TopicPartition(ct, 0)
            assert await c.beginning_offsets([tp]) == {tp: 0}
            assert await c.end_offsets([tp]) == {tp: 20}
            found = await c.offsets_for_times({tp: base + 125})
            assert (found[tp].offset, found[tp].timestamp) == (13, base + 130)
            c.assign([tp])
            c.seek(tp, 17)
            assert [g.offset for g in await take(c, 3)] == [17, 18, 19]
            c.seek(tp, 2)
            assert [(g.offset, g.key) for g in await take(c, 1)] == [(2, b"k2")]
        finally:
            await c.stop()
        return got_lat
    got_lat = run(go())
    assert_partition_matches(got_lat, msgs, check_timestamps=False)


def test_consumer_long_poll_gets_a_later_message(bootstrap, topic):
    async def go():
        await produce(bootstrap, topic, [Msg(None, b"first", (), None)])
        c = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                             fetch_max_wait_ms=5000, request_timeout_ms=10000)
        await c.start()
        try:
            tp = TopicPartition(topic, 0)
            c.assign([tp])
            c.seek(tp, 1)
            later = asyncio.ensure_future(_later(bootstrap, topic))
            t0 = time.monotonic()
            got = await take(c, 1, timeout=10)
            elapsed = time.monotonic() - t0
            await later
        finally:
            await c.stop()
        return got, elapsed
    got, elapsed = run(go())
    assert [(g.offset, g.value) for g in got] == [(1, b"arrived")]
    assert elapsed < 4.0, elapsed


async def _later(bootstrap, topic):
    await asyncio.sleep(0.5)
    await produce(bootstrap, topic, [Msg(b"k", b"arrived", (), None)])


def test_admin_client(bootstrap):
    a = unique("aio-adm")

    async def go():
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(a, 2, 1,
                                                topic_configs={"segment.bytes": "1048576"})])
            resp = await admin.create_topics([NewTopic(a, 2, 1)])
            errors = [e[1] for e in resp.topic_errors]
            assert errors == [TopicAlreadyExistsError.errno]
            assert a in await admin.list_topics()
            cfg = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, a)])
            entries = {e[0]: e[1] for r in cfg for res in r.resources for e in res[4]}
            assert entries["segment.bytes"] == "1048576" and entries["cleanup.policy"] == "delete"
            await admin.create_partitions({a: NewPartitions(3)})
            desc = await admin.describe_topics([a])
            assert len(desc[0]["partitions"]) == 3
            await admin.delete_topics([a])
            assert a not in await admin.list_topics()
        finally:
            await admin.close()
    run(go())
