"""Cross-client: each client produces one topic (its own codec), every client consumes all of them,
and all must read exactly what was written — keys, null values, headers, timestamps, offsets.
(The Java client's side is in test_java_tools.py.)"""
from __future__ import annotations

import asyncio

import pytest

from broker_conftest import (WAIT, Got, Msg, assert_partition_matches, assert_stored,
                             log_end_offset, sample_messages, unique, wait_until)

pytest.importorskip("confluent_kafka")
pytest.importorskip("kafka")
pytest.importorskip("aiokafka")
import test_clients_aiokafka as aio  # noqa: E402
import test_clients_confluent as ck  # noqa: E402
import test_clients_kafka_python as kp  # noqa: E402
import test_clients_kcat as kc  # noqa: E402

N = 15


def _kcat_produce(bootstrap, topic):
    lines = kc.lines_for("kcat-cross", N)
    kc.kcat_produce(bootstrap, topic, lines, "-z", "gzip", "-H", "from=kcat")
    return kc.as_msgs(lines, (("from", b"kcat"),))


def _python_producer(produce_fn, codec_key, codec, asynchronous=False):
    def go(bootstrap, topic):
        msgs = sample_messages(topic, N)
        res = produce_fn(bootstrap, topic, msgs, **{codec_key: codec})
        if asynchronous:
            asyncio.run(asyncio.wait_for(res, 60))
        return msgs
    return go


PRODUCERS = {
    "confluent": (_python_producer(ck.produce, "compression.type", "zstd"), "zstd"),
    "kafka-python": (_python_producer(kp.produce, "compression_type", "lz4"), "lz4"),
    "aiokafka": (_python_producer(aio.produce, "compression_type", "snappy", True), "snappy"),
}
if kc.KCAT is not None:
    PRODUCERS["kcat"] = (_kcat_produce, "gzip")


@pytest.fixture(scope="module")
def produced(bootstrap):
    """{producer name: (topic, expected messages)}, each checked as stored by our codec."""
    out = {}
    for name, (fn, codec) in PRODUCERS.items():
        topic = unique(f"cross-from-{name}")
        msgs = fn(bootstrap, topic)
        wait_until(lambda: log_end_offset(bootstrap, topic) == N, what=f"{name}'s messages")
        assert_stored(bootstrap, topic, 0, msgs, codec=codec)
        out[name] = (topic, msgs)
    return out


def _consume_kcat(bootstrap, topic, count):
    out = []
    for g in kc.kcat_consume(bootstrap, topic):
        h = g.get("headers") or []
        enc = (lambda s: None if s is None else s.encode("utf-8", "surrogateescape"))
        out.append(Got(g["partition"], g["offset"], enc(g["key"]), enc(g["payload"]),
                       tuple((h[i], enc(h[i + 1])) for i in range(0, len(h), 2)), g["ts"],
                       {"create": 0, "logappend": 1}[g["tstype"]]))
    assert len(out) == count
    return out


CONSUMERS = {
    "confluent": lambda bs, t, n: ck.consume(bs, t, n),
    "kafka-python": lambda bs, t, n: kp.consume(bs, t, n),
    "aiokafka": lambda bs, t, n: asyncio.run(asyncio.wait_for(aio.consume(bs, t, n), WAIT * 2)),
}
if kc.KCAT is not None:
    CONSUMERS["kcat"] = _consume_kcat


@pytest.mark.parametrize("consumer", list(CONSUMERS))
def test_consumer_reads_every_producer(produced, bootstrap, consumer):
    for producer, (topic, msgs) in produced.items():
        got = CONSUMERS[consumer](bootstrap, topic, len(msgs))
        try:
            assert_partition_matches(got, msgs)
        except AssertionError as exc:
            raise AssertionError(f"{consumer} reading what {producer} wrote: {exc}") from exc


def test_kcat_sees_python_keys_and_binary_headers(produced, bootstrap):
    if kc.KCAT is None:
        pytest.skip("kcat is not installed")
    topic, msgs = produced["confluent"]
    got = _consume_kcat(bootstrap, topic, len(msgs))
    assert [g.key for g in got] == [msg.key for msg in msgs]
    assert any(msg.key is None for msg in msgs) and any(msg.value is None for msg in msgs)
    assert [Msg(g.key, g.value, g.headers, g.timestamp) for g in got] == msgs
