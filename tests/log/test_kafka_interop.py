"""On-disk compatibility with Apache Kafka, both ways:
  * Kafka's DumpLogSegments reads our .log/.index/.timeindex/.snapshot files and finds them valid,
    compacted segments too (record counts below the offset range, delete horizons, emptied
    headers kept for producer state, transaction markers);
  * our `pybroker dump-log` prints Kafka's segments as kafka-dump-log does (same batch fields) and
    `pybroker verify-log` finds a Kafka data dir clean;
  * a log dir written by a real Kafka broker (then stopped cleanly) loads in our LogManager: every
    record is there, Kafka's checkpoints, leader-epoch cache, partition.metadata and producer
    snapshot parse.
Skipped when java or the Kafka jars (ci/fetch_kafka) are missing."""
import os
import re
import subprocess
import sys
import time

import pytest

from pybroker.codec import records
from pybroker.log import LogConfig, LogManager
from pybroker.log.checkpoint import OffsetCheckpointFile, PartitionMetadataFile
from pybroker.log.producer_state import read_snapshot
from log_helpers import all_batches, batch, open_log

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from tests.kafka_tools import kafka_reference, run_tool  # noqa: E402

pytestmark = pytest.mark.java


def test_kafka_dump_log_segments_accepts_our_files(tmp_path):
    log = open_log("disk", tmp_path, LogConfig(segment_bytes=3000, index_interval_bytes=300))
    now = int(time.time() * 1000)
    for i in range(30):
        log.append_as_leader(batch(3, size=250, ts=now + i, producer_id=77, producer_epoch=1,
                                   base_sequence=3 * i, tag=i), leader_epoch=4)
    seg, nxt = log.segments[1], log.segments[2].base_offset
    ours = [b for b in all_batches(log) if seg.base_offset <= b[0] < nxt]
    log.close_sync()
    files = [seg.log.path, seg.offset_index.path, seg.time_index.path]
    out = run_tool("kafka-dump-log", "--files", ",".join(files), "--verify-index-only")
    assert out.returncode == 0, out.stderr
    assert "Mismatches" not in out.stdout and "not found" not in out.stdout.lower(), out.stdout
    out = run_tool("kafka-dump-log", "--deep-iteration", "--files", seg.log.path)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("baseOffset:")]
    assert len(lines) == len(ours) and all("isvalid: true" in ln for ln in lines)
    assert all(f"partitionLeaderEpoch: 4" in ln and "producerId: 77" in ln for ln in lines)
    assert [int(re.search(r"baseOffset: (\d+)", ln).group(1)) for ln in lines] == [b for b, _, _ in ours]
    snap = os.path.join(log.dir_path, f"{log.log_end_offset:020d}.snapshot")
    out = run_tool("kafka-dump-log", "--files", snap)
    assert re.search(r"producerId: 77 producerEpoch: 1 .*lastSequence: 89 lastOffset: 89", out.stdout), out.stdout


def _batch_fields(text):
    """(baseOffset, lastOffset, count, crc) of every batch line of a dump."""
    return [tuple(int(re.search(rf"{f}: (-?\d+)", ln).group(1))
                  for f in ("baseOffset", "lastOffset", "count", "crc"))
            for ln in text.splitlines() if ln.startswith("baseOffset:")]


def _pybroker(*args):
    return subprocess.run([sys.executable, "-m", "pybroker", *map(str, args)], capture_output=True,
                          text=True, timeout=120)


def test_kafka_dump_log_reads_our_compacted_segments(tmp_path):
    from test_tools import make_dir
    _, part = make_dir(tmp_path)
    logs = sorted(str(p) for p in part.glob("*.log") if p.stat().st_size)
    out = run_tool("kafka-dump-log", "--deep-iteration", "--files", ",".join(logs))
    ours = _pybroker("dump-log", "--deep-iteration", "--files", ",".join(logs))
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("baseOffset:")]
    assert lines and all("isvalid: true" in ln for ln in lines), out.stdout
    assert any("count: 0" in ln for ln in lines) and any("isControl: true" in ln for ln in lines)
    assert any("deleteHorizonMs: OptionalLong[" in ln for ln in lines)
    assert _batch_fields(out.stdout) == _batch_fields(ours.stdout)
    assert "endTxnMarker: ABORT" in out.stdout
    indexes = sorted(str(p) for p in part.glob("*.index")) + sorted(str(p) for p in part.glob("*.timeindex"))
    out = run_tool("kafka-dump-log", "--verify-index-only", "--files", ",".join(indexes))
    assert "Mismatches" not in out.stdout and "not found" not in out.stdout.lower(), out.stdout


def test_log_dir_written_by_kafka_loads_here(tmp_path):
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    ref = kafka_reference(workdir=tmp_path / "kafka", overrides={"log.index.interval.bytes": "200"})
    values = [b"value-%05d" % i * 5 for i in range(400)]
    with ref:
        admin = AdminClient({"bootstrap.servers": ref.bootstrap_servers})
        admin.create_topics([NewTopic("interop", 1, 1, config={"segment.ms": "300"})])["interop"].result(30)
        producer = Producer({"bootstrap.servers": ref.bootstrap_servers, "enable.idempotence": True,
                             "linger.ms": 5, "batch.num.messages": 50})
        for half in (values[:200], values[200:]):
            for i, v in enumerate(half):
                producer.produce("interop", key=b"k%d" % i, value=v)
            assert producer.flush(30) == 0
            time.sleep(0.6)                                  # segment.ms: the next batch rolls
        del producer, admin                                  # close the clients before the broker
        ref.stop()                                           # SIGTERM: Kafka's clean shutdown
        data_dir = str(tmp_path / "kafka" / "data")
        assert os.path.exists(os.path.join(data_dir, ".kafka_cleanshutdown"))
        kafka_rp = OffsetCheckpointFile(os.path.join(data_dir, "recovery-point-offset-checkpoint")).read()
        assert kafka_rp[("interop", 0)] == 400
        part_dir = os.path.join(data_dir, "interop-0")
        first = os.path.join(part_dir, "00000000000000000000.log")
        theirs = run_tool("kafka-dump-log", "--files", first)
        ours = _pybroker("dump-log", "--files", first)
        assert _batch_fields(theirs.stdout) and _batch_fields(ours.stdout) == _batch_fields(theirs.stdout)
        checked = _pybroker("verify-log", part_dir)
        assert checked.returncode == 0, checked.stdout
        topic_id = PartitionMetadataFile(os.path.join(part_dir, "partition.metadata")).read()
        snaps = sorted(n for n in os.listdir(part_dir) if n.endswith(".snapshot"))
        entries = read_snapshot(os.path.join(part_dir, snaps[-1]))
        assert [(e.last_seq, e.last_data_offset) for e in entries] == [(399, 399)]

        mgr = LogManager([data_dir], node_id=1, cluster_id=ref.cluster_id, writer="sync")
        mgr.startup()
        log = mgr.get_log("interop", 0)
        assert log.load_report == [] and log.log_end_offset == 400 and len(log.segments) >= 2
        got = []
        for _, _, raw in all_batches(log):
            got.extend(r.value for r in records.RecordBatch(raw).records())
        assert got == values
        assert log.leader_epoch_cache.entries and log.leader_epoch_cache.entries[0][1] == 0
        assert log.producer_state.last_entry(entries[0].producer_id).last_seq == 399
        log.assign_topic_id(topic_id)                        # matches Kafka's partition.metadata
        hit = log.fetch_offset_by_timestamp(0)
        assert hit.offset == 0
        mgr.shutdown_sync()
