"""Topic policies enforced on produce, through real clients, and checked in what is stored
(raw fetch with our codec): compression.type recompresses to every codec (and `producer` keeps
the client's), message.timestamp.before/after.max.ms per record, LogAppendTime, max.message.bytes
changed on a live topic, min.insync.replicas with acks=all on one replica, and the segment
settings (segment.bytes, segment.ms, segment.index.bytes, flush.messages, preallocate) seen in the
partition's files."""
import os
import time

import pytest

from lifecycle_helpers import (consume_all, create_topic, fetch_batches, incremental, now_ms,
                               produce, raw, unique)
from pybroker.codec import messages as m
from pybroker.codec.records import build_batch

TOPIC = 2
CODEC = {"uncompressed": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}


def raw_produce(bootstrap, topic, batch, acks=-1):
    P = m.ProduceRequest
    resp = raw(bootstrap, 0, 9, P(acks=acks, timeout_ms=5000, topic_data=[P.TopicProduceData(
        name=topic, partition_data=[P.PartitionProduceData(index=0, records=batch)])]))
    return resp.responses[0].partition_responses[0]


@pytest.mark.parametrize("target", ["producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"])
def test_compression_type_decides_the_stored_codec(bootstrap, target):
    topic = unique(f"codec-{target}")
    create_topic(bootstrap, topic, config={"compression.type": target})
    values = [(b"k%d" % i, b"value %d " % i * 30) for i in range(200)]
    assert produce(bootstrap, topic, values, **{"compression.type": "gzip", "linger.ms": 100}) == []
    err, batches = fetch_batches(bootstrap, topic)
    assert err == 0 and batches
    want = CODEC["gzip"] if target == "producer" else CODEC[target]
    assert {b.compression for b in batches} == {want}
    assert [(k, v) for _, k, v in consume_all(bootstrap, topic)] == values


def test_timestamp_bounds_per_record(bootstrap, topic):
    from confluent_kafka import KafkaError
    create_topic(bootstrap, topic, config={"message.timestamp.before.max.ms": "60000",
                                           "message.timestamp.after.max.ms": "60000"})
    errors = produce(bootstrap, topic, [(b"old", b"1", now_ms() - 3_600_000)],
                     **{"message.send.max.retries": 0})
    assert [e.code() for e in errors] == [KafkaError.INVALID_TIMESTAMP]
    batch = build_batch([(b"ok", b"1", [], now_ms()), (b"future", b"2", [], now_ms() + 600_000)])
    pr = raw_produce(bootstrap, topic, batch)
    assert pr.error_code == 32 and [e.batch_index for e in pr.record_errors] == [1]
    assert "is out of range" in pr.record_errors[0].batch_index_error_message
    assert produce(bootstrap, topic, [(b"now", b"1", now_ms())]) == []
    assert [k for _, k, _ in consume_all(bootstrap, topic)] == [b"now"]
    incremental(bootstrap, TOPIC, topic, [("message.timestamp.type", 0, "LogAppendTime")])
    before = now_ms()
    assert produce(bootstrap, topic, [(b"stamped", b"1", now_ms() - 3_600_000)]) == []
    _, batches = fetch_batches(bootstrap, topic, 0, 1)
    assert batches[0].timestamp_type == 1 and batches[0].max_timestamp >= before


def test_max_message_bytes_changed_on_a_live_topic(bootstrap, topic):
    create_topic(bootstrap, topic)
    big = build_batch([(b"k", b"x" * 5000, [], None)])
    assert raw_produce(bootstrap, topic, big).error_code == 0
    assert incremental(bootstrap, TOPIC, topic, [("max.message.bytes", 0, "1000")]) == (0, None)
    pr = raw_produce(bootstrap, topic, big)
    assert pr.error_code == 10 and "max.message.bytes" in pr.error_message


def test_min_insync_replicas_with_acks_all_on_one_replica(bootstrap, topic):
    create_topic(bootstrap, topic, config={"min.insync.replicas": "2"})
    batch = build_batch([(b"k", b"v", [], None)])
    assert raw_produce(bootstrap, topic, batch, acks=-1).error_code == 19    # NOT_ENOUGH_REPLICAS
    assert raw_produce(bootstrap, topic, batch, acks=1).error_code == 0
    assert incremental(bootstrap, TOPIC, topic, [("min.insync.replicas", 1, None)]) == (0, None)
    assert raw_produce(bootstrap, topic, batch, acks=-1).error_code == 0


def test_segment_settings_shape_the_files(broker, bootstrap, topic):
    create_topic(bootstrap, topic, config={"internal.segment.bytes": "4096", "flush.messages": "1",
                                           "segment.index.bytes": "24", "index.interval.bytes": "1"})
    produce(bootstrap, topic, [(b"k%d" % i, b"v" * 500) for i in range(40)],
            **{"linger.ms": 0, "batch.size": 600})
    log = broker.broker.state.replicas.logs.get_log(topic, 0)
    assert len(log.segments) >= 10                                   # 4 KiB segments
    assert all(s.size <= 4096 for s in log.segments)
    assert log.recovery_point == log.log_end_offset                  # flush.messages=1
    # segment.index.bytes 24: three offset entries, and one batch per entry, so at most 4 batches
    assert all(s.offset_index.entries <= 3 for s in log.segments)
    incremental(bootstrap, TOPIC, topic, [("segment.ms", 0, "1000"), ("internal.segment.bytes", 1, None)])
    produce(bootstrap, topic, [(b"a", b"1", now_ms())])
    a_segment = log.active_segment
    time.sleep(1.1)
    produce(bootstrap, topic, [(b"b", b"1", now_ms())])              # a second later: rolls
    assert log.active_segment is not a_segment
    assert log.active_segment.base_offset == log.log_end_offset - 1


def test_preallocate_reserves_the_segment(broker, bootstrap, topic):
    create_topic(bootstrap, topic, config={"preallocate": "true", "segment.bytes": str(4 << 20)})
    produce(bootstrap, topic, [(b"k", b"v")])
    active = broker.broker.state.replicas.logs.get_log(topic, 0).active_segment.log
    if not active.preallocated:
        pytest.skip("the file system cannot preallocate")
    st = os.fstat(active.fd)
    assert st.st_blocks * 512 >= 4 << 20 and st.st_size == active.size
