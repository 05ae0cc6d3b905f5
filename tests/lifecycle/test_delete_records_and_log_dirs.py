"""DeleteRecords (confluent-kafka, kafka-python, kafka-delete-records) and DescribeLogDirs
(kafka-python, kafka-log-dirs) with several log.dirs: the low watermark moves, ListOffsets and
consumers follow it, whole segments below it are deleted and it survives a restart; bad offsets,
compacted and unknown partitions get Kafka's errors; partitions spread over the dirs and each dir
reports exactly its partitions and their sizes."""
import json
import os
import pathlib
import sys

import pytest

from lifecycle_helpers import (FAST, consume_all, create_topic, list_offset, produce, raw, unique)
from pybroker.codec import messages as m
from pybroker.testing import Broker

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))


def delete_records(bootstrap, topic, partition_offsets, version=2):
    R = m.DeleteRecordsRequest
    resp = raw(bootstrap, 21, version, R(timeout_ms=5000, topics=[R.DeleteRecordsTopic(
        name=topic, partitions=[R.DeleteRecordsPartition(partition_index=p, offset=o)
                                for p, o in partition_offsets])]))
    return [(r.partition_index, r.error_code, r.low_watermark) for r in resp.topics[0].partitions]


def test_delete_records_moves_the_low_watermark_for_every_client(broker, bootstrap, topic):
    from confluent_kafka import TopicPartition
    from lifecycle_helpers import admin
    create_topic(bootstrap, topic, 2, config={"internal.segment.bytes": "8192"})
    produce(bootstrap, topic, [(b"k%d" % i, b"v" * 100) for i in range(300)], **{"batch.size": 1500})
    log = broker.broker.state.replicas.logs.get_log(topic, 0)
    segments = len(log.segments)
    a = admin(bootstrap)
    res = a.delete_records([TopicPartition(topic, 0, 120)])
    assert list(res.values())[0].result(10).low_watermark == 120
    assert log.log_start_offset == 120 == list_offset(bootstrap, topic, 0, -2)
    assert len(log.segments) < segments and log.segments[0].base_offset <= 120
    assert [o for o, _, _ in consume_all(bootstrap, topic)][0] == 120
    from kafka import TopicPartition as KTP
    from kafka.admin import KafkaAdminClient
    client = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        out = client.delete_records({KTP(topic, 0): 200})
    finally:
        client.close()
    assert log.log_start_offset == 200, out
    assert delete_records(bootstrap, topic, [(0, -1)]) == [(0, 0, 300)]     # -1: high watermark
    assert delete_records(bootstrap, topic, [(1, 0)]) == [(1, 0, 0)]        # nothing to delete


def test_delete_records_bad_input(bootstrap):
    topic, compacted = unique("dr"), unique("drc")
    create_topic(bootstrap, topic)
    create_topic(bootstrap, compacted, config={"cleanup.policy": "compact"})
    produce(bootstrap, topic, [(b"k", b"v")] * 10)
    assert delete_records(bootstrap, topic, [(0, 11)]) == [(0, 1, -1)]      # above the HW
    assert delete_records(bootstrap, topic, [(0, -2)]) == [(0, 1, -1)]
    assert delete_records(bootstrap, topic, [(5, 1)]) == [(5, 3, -1)]       # no such partition
    assert delete_records(bootstrap, compacted, [(0, 0)]) == [(0, 44, -1)]  # POLICY_VIOLATION
    assert delete_records(bootstrap, "__consumer_offsets", [(0, 0)], version=0) in \
        ([(0, 17, -1)], [(0, 3, -1)])
    assert list_offset(bootstrap, topic, 0, -2) == 0


def test_low_watermark_survives_a_restart(tmp_path):
    data = str(tmp_path / "d")
    topic = unique("drr")
    with Broker(storage="disk", data_dir=data, config=FAST) as b:
        create_topic(b.bootstrap_servers, topic)
        produce(b.bootstrap_servers, topic, [(b"k", b"v")] * 50)
        assert delete_records(b.bootstrap_servers, topic, [(0, 17)]) == [(0, 0, 17)]
    with Broker(storage="disk", data_dir=data, config=FAST) as b:
        assert list_offset(b.bootstrap_servers, topic, 0, -2) == 17
        assert [o for o, _, _ in consume_all(b.bootstrap_servers, topic)][0] == 17


def test_partitions_spread_over_log_dirs_and_describe_log_dirs_reports_them(tmp_path):
    from kafka.admin import KafkaAdminClient
    dirs = [str(tmp_path / "a"), str(tmp_path / "b")]
    topic = unique("dirs")
    with Broker(storage="disk", config={**FAST, "log.dirs": ",".join(dirs)}) as b:
        bs = b.bootstrap_servers
        create_topic(bs, topic, 4)
        for p in range(4):
            produce(bs, topic, [(b"k", b"x" * (100 * (p + 1)))] * 20, partition=p)
        placed = {d: sorted(n for n in os.listdir(d) if n.startswith(topic)) for d in dirs}
        assert [len(v) for v in placed.values()] == [2, 2]
        client = KafkaAdminClient(bootstrap_servers=bs)
        try:
            reply = client.describe_log_dirs()
        finally:
            client.close()
        logs = b.broker.state.replicas.logs
        for entry in reply[0]["log_dirs"]:
            assert entry["error_code"] == 0 and entry["total_bytes"] > 0 and entry["usable_bytes"] > 0
            ours = {(t["name"], p["partition_index"]): p["partition_size"]
                    for t in entry["topics"] if t["name"] == topic for p in t["partitions"]}
            expected = {tp: logs.get_log(*tp).size for tp in logs.all_logs()
                        if tp[0] == topic and logs.log_dirs_of[tp].path == entry["log_dir"]}
            assert ours == expected and len(ours) == 2
        from lifecycle_helpers import raw as _raw
        R = m.DescribeLogDirsRequest
        resp = _raw(bs, 35, 4, R(topics=[R.DescribableLogDirTopic(topic=topic, partitions=[3])]))
        hits = [(r.log_dir, [p.partition_index for t in r.topics for p in t.partitions]) for r in resp.results]
        assert sorted(p for _, ps in hits for p in ps) == [3]


@pytest.mark.java
def test_kafka_delete_records_and_log_dirs_tools(broker, bootstrap, topic, tmp_path):
    from tests.kafka_tools import run_tool
    create_topic(bootstrap, topic)
    produce(bootstrap, topic, [(b"k", b"v")] * 40)
    spec = tmp_path / "offsets.json"
    spec.write_text(json.dumps({"version": 1, "partitions": [{"topic": topic, "partition": 0, "offset": 25}]}))
    out = run_tool("kafka-delete-records", "--bootstrap-server", bootstrap, "--offset-json-file", spec)
    assert "low_watermark: 25" in out.stdout
    assert list_offset(bootstrap, topic, 0, -2) == 25
    out = run_tool("kafka-log-dirs", "--bootstrap-server", bootstrap, "--describe", "--topic-list", topic)
    report = json.loads([ln for ln in out.stdout.splitlines() if ln.startswith("{")][0])
    parts = [p for d in report["brokers"][0]["logDirs"] for p in d["partitions"]]
    log = broker.broker.state.replicas.logs.get_log(topic, 0)
    assert parts == [{"partition": f"{topic}-0", "size": log.size, "offsetLag": 0, "isFuture": False}]
