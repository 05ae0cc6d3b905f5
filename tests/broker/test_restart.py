"""`pybroker serve` as a separate process: kill -9 and clean SIGTERM restarts keep every
acknowledged batch byte for byte (keys, values, headers, offsets) and the idempotent-producer
state; torn writes in the active segment (garbage appended, a batch cut in the middle, a partial
batch) are truncated at restart and everything before is served; and the CLI: a server.properties
file plus --override, bad values and a busy port rejected with a message naming them, SIGTERM and
SIGINT exit 0 after writing the clean-shutdown marker.

The subprocess runs the console script when it is installed (else `python -m pybroker`) with this
interpreter's pybroker first on PYTHONPATH, so it runs the code under test.
"""
from __future__ import annotations

import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

import pybroker
from broker_conftest import (assert_partition_matches, create_topic, fetch_batches,
                             fetch_records, free_port, log_end_offset, now_ms, sample_messages,
                             unique)
from pybroker.codec import messages as m
from pybroker.codec.records import build_batch
from rawclient import RawClient

START_TIMEOUT = 20.0
ROOT = pathlib.Path(pybroker.__file__).resolve().parents[1]


def _command():
    script = shutil.which("pybroker")
    return [script] if script else [sys.executable, "-m", "pybroker"]


def _env():
    env = dict(os.environ)
    inherited = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    paths = [str(ROOT), str(ROOT / "core"), *inherited]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


class Serve:
    """One `pybroker serve` process; restartable on the same port and data directory."""

    def __init__(self, workdir: pathlib.Path, *, config_file=None, overrides=(), port=None,
                 data_dir=None):
        self.workdir = workdir
        self.port = port or free_port()
        self.data_dir = data_dir or workdir / "data"
        self.config_file = config_file
        self.overrides = list(overrides)
        self.proc = None
        self.runs = 0

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def argv(self):
        args = [*_command(), "serve"]
        if self.config_file is not None:
            args.append(str(self.config_file))
        for kv in [f"listeners=PLAINTEXT://127.0.0.1:{self.port}", f"log.dirs={self.data_dir}",
                   *self.overrides]:
            args += ["--override", kv]
        return args

    def start(self):
        self.runs += 1
        self.out = self.workdir / f"serve-{self.runs}.out"
        self.err = self.workdir / f"serve-{self.runs}.err"
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.proc = subprocess.Popen(self.argv(), stdout=out, stderr=err, env=_env())
        deadline = time.monotonic() + START_TIMEOUT
        while "started:" not in self.out.read_text():
            if self.proc.poll() is not None:
                raise AssertionError(f"pybroker serve exited {self.proc.returncode}:\n"
                                     f"{self.err.read_text()[-3000:]}")
            assert time.monotonic() < deadline, f"not started:\n{self.err.read_text()[-3000:]}"
            time.sleep(0.02)
        return self

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, sig=signal.SIGTERM) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(20)

    def close(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stderr(self) -> str:
        return self.err.read_text()


@pytest.fixture
def serve(tmp_path):
    servers = []

    def make(**kw):
        s = Serve(tmp_path, **kw)
        servers.append(s)
        return s
    yield make
    for s in servers:
        s.close()


def raw_produce(bootstrap, topic, partition, records):
    PR = m.ProduceRequest
    with RawClient(bootstrap) as c:
        resp = c.request(0, 9, PR(acks=-1, timeout_ms=10000, topic_data=[PR.TopicProduceData(
            name=topic,
            partition_data=[PR.PartitionProduceData(index=partition, records=records)])]))
    return resp.responses[0].partition_responses[0]


def batch(tag, n=3, **kw):
    return build_batch([(b"%s-k%d" % (tag, i), b"%s value %d " % (tag, i) * 20,
                         [("h", b"%d" % i)], now_ms()) for i in range(n)], **kw)


def snapshot(bootstrap, topic, partitions):
    return {p: [raw for _, raw in fetch_batches(bootstrap, topic, p)] for p in range(partitions)}


# -- kill -9 ---------------------------------------------------------------------------------------

def test_kill9_keeps_every_acknowledged_message_byte_for_byte(serve):
    ck = pytest.importorskip("confluent_kafka")
    s = serve(overrides=["log.segment.bytes=1024"]).start()
    topic = unique("kill9")
    create_topic(s.bootstrap, topic, partitions=3)
    msgs = sample_messages("kill9", 300)
    acked = []
    p = ck.Producer({"bootstrap.servers": s.bootstrap, "acks": "all", "enable.idempotence": True,
                     "compression.type": "zstd", "linger.ms": 2})
    for i, msg in enumerate(msgs):
        p.produce(topic, key=msg.key, value=msg.value, headers=list(msg.headers) or None,
                  timestamp=msg.timestamp, partition=i % 3,
                  on_delivery=lambda err, rec, i=i: acked.append((i, err, rec.offset())))
        if i % 50 == 49:
            p.flush(15)
    assert p.flush(15) == 0
    assert len(acked) == 300 and all(err is None for _, err, _ in acked)
    before = snapshot(s.bootstrap, topic, 3)
    assert sum(len(v) for v in before.values()) > 10
    s.kill9()  # right after the last acknowledgement
    assert len(list((s.data_dir / f"{topic}-0").glob("*.log"))) > 1  # several segments

    s.start()
    assert snapshot(s.bootstrap, topic, 3) == before
    for part in range(3):
        assert_partition_matches(fetch_records(s.bootstrap, topic, part), msgs[part::3])
        assert log_end_offset(s.bootstrap, topic, part) == 100
    # and the log goes on from there
    assert raw_produce(s.bootstrap, topic, 1, batch(b"after")).base_offset == 100
    assert s.stop() == 0


def test_idempotent_producer_state_survives_kill9(serve):
    s = serve().start()
    topic = unique("pid-state")
    create_topic(s.bootstrap, topic)
    with RawClient(s.bootstrap) as c:
        resp = c.request(22, 4, m.InitProducerIdRequest(transactional_id=None,
                                                        transaction_timeout_ms=60000,
                                                        producer_id=-1, producer_epoch=-1))
    pid = resp.producer_id
    first = batch(b"idem", 4, producer_id=pid, producer_epoch=0, base_sequence=0)
    assert raw_produce(s.bootstrap, topic, 0, first).base_offset == 0
    second = batch(b"idem2", 2, producer_id=pid, producer_epoch=0, base_sequence=4)
    assert raw_produce(s.bootstrap, topic, 0, second).base_offset == 4
    s.kill9()
    s.start()
    # a retry of an acknowledged batch after the restart is recognised as a duplicate
    r = raw_produce(s.bootstrap, topic, 0, second)
    assert (r.error_code, r.base_offset) == (0, 4)
    assert log_end_offset(s.bootstrap, topic) == 6
    r = raw_produce(s.bootstrap, topic, 0, batch(b"gap", 1, producer_id=pid, producer_epoch=0,
                                                 base_sequence=9))
    assert r.error_code == 45  # OUT_OF_ORDER_SEQUENCE_NUMBER: the sequence state is back
    r = raw_produce(s.bootstrap, topic, 0, batch(b"next", 1, producer_id=pid, producer_epoch=0,
                                                 base_sequence=6))
    assert (r.error_code, r.base_offset) == (0, 6)
    # producer ids are never handed out twice across restarts
    with RawClient(s.bootstrap) as c:
        again = c.request(22, 4, m.InitProducerIdRequest(transactional_id=None,
                                                         transaction_timeout_ms=60000,
                                                         producer_id=-1, producer_epoch=-1))
    assert again.producer_id > pid


# -- clean shutdown --------------------------------------------------------------------------------

@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_clean_shutdown_exits_zero_and_writes_the_marker(serve, sig):
    s = serve().start()
    topic = unique("clean")
    create_topic(s.bootstrap, topic, partitions=2)
    for i in range(5):
        assert raw_produce(s.bootstrap, topic, i % 2, batch(b"c%d" % i)).error_code == 0
    before = snapshot(s.bootstrap, topic, 2)
    assert s.stop(sig) == 0
    assert (s.data_dir / ".kafka_cleanshutdown").is_file()
    assert "Traceback" not in s.stderr()
    for name in ("recovery-point-offset-checkpoint", "replication-offset-checkpoint",
                 "meta.properties"):
        assert (s.data_dir / name).is_file(), name
    assert "shutting down" in s.stderr()
    s.start()
    assert not (s.data_dir / ".kafka_cleanshutdown").exists()  # consumed at start-up
    assert snapshot(s.bootstrap, topic, 2) == before
    assert s.stop() == 0


def test_sigterm_answers_a_request_in_flight(serve):
    """A long-poll Fetch waiting when SIGTERM arrives is answered before the process exits."""
    s = serve().start()
    topic = unique("inflight")
    create_topic(s.bootstrap, topic)
    F = m.FetchRequest
    req = F(max_wait_ms=1500, min_bytes=1, max_bytes=1 << 20, topics=[F.FetchTopic(
        topic=topic, partitions=[F.FetchPartition(partition=0, fetch_offset=0,
                                                  partition_max_bytes=1 << 20)])])
    with RawClient(s.bootstrap) as c:
        cid = c.send(1, 12, req)
        time.sleep(0.2)
        s.proc.send_signal(signal.SIGTERM)
        frame = c.recv_frame()
        assert frame, "closed without answering the fetch in flight"
        from pybroker.codec.protocol import decode_response
        header, resp = decode_response(1, 12, frame)
        assert header.correlation_id == cid and resp.responses[0].partitions[0].error_code == 0
    assert s.proc.wait(20) == 0


# -- torn writes -----------------------------------------------------------------------------------

def _active_segment(s, topic) -> pathlib.Path:
    return sorted((s.data_dir / f"{topic}-0").glob("*.log"))[-1]


def test_torn_writes_are_truncated_at_restart(serve):
    s = serve().start()
    topic = unique("torn")
    create_topic(s.bootstrap, topic)
    for i in range(10):
        assert raw_produce(s.bootstrap, topic, 0, batch(b"t%d" % i)).base_offset == 3 * i
    good = snapshot(s.bootstrap, topic, 1)[0]
    s.kill9()
    seg = _active_segment(s, topic)
    assert seg.stat().st_size == sum(map(len, good))

    # 1. garbage appended after the last batch
    with open(seg, "ab") as fh:
        fh.write(os.urandom(100))
    s.start()
    assert snapshot(s.bootstrap, topic, 1)[0] == good
    assert log_end_offset(s.bootstrap, topic) == 30
    assert raw_produce(s.bootstrap, topic, 0, batch(b"t10")).base_offset == 30
    good = snapshot(s.bootstrap, topic, 1)[0]
    s.kill9()

    # 2. the last batch cut in the middle
    size = seg.stat().st_size
    assert size == sum(map(len, good))
    os.truncate(seg, size - len(good[-1]) // 2)
    s.start()
    assert snapshot(s.bootstrap, topic, 1)[0] == good[:-1]
    assert log_end_offset(s.bootstrap, topic) == 30
    assert raw_produce(s.bootstrap, topic, 0, batch(b"t10 again")).base_offset == 30
    good = snapshot(s.bootstrap, topic, 1)[0]
    s.kill9()

    # 3. a partial batch: a valid header announcing more bytes than follow
    tail = bytearray(good[-1])
    tail[0:8] = (33).to_bytes(8, "big")
    with open(seg, "ab") as fh:
        fh.write(bytes(tail[:len(tail) - 7]))
    s.start()
    assert snapshot(s.bootstrap, topic, 1)[0] == good
    assert log_end_offset(s.bootstrap, topic) == 33
    assert raw_produce(s.bootstrap, topic, 0, batch(b"t11")).base_offset == 33
    got = fetch_records(s.bootstrap, topic, 0)
    assert [g.offset for g in got] == list(range(36))
    assert s.stop() == 0


def _damage_after_clean_shutdown(serve):
    s = serve().start()
    topic = unique("torn-clean")
    create_topic(s.bootstrap, topic)
    for i in range(4):
        raw_produce(s.bootstrap, topic, 0, batch(b"c%d" % i))
    good = snapshot(s.bootstrap, topic, 1)[0]
    assert s.stop() == 0
    seg = _active_segment(s, topic)
    with open(seg, "ab") as fh:
        fh.write(b"\x00" * 20 + os.urandom(80))
    return s, topic, good, seg


def test_garbage_after_a_clean_shutdown_is_never_served(serve):
    """Kafka trusts a cleanly shut down log and does not recover it; a tail damaged while stopped
    must then either stop the broker with the damaged file named, or be cut off — never be served
    as records or have new batches appended behind it."""
    s, topic, good, seg = _damage_after_clean_shutdown(serve)
    try:
        s.start()
    except AssertionError as exc:
        assert s.proc.returncode != 0 and str(seg) in str(exc), exc
        return
    assert snapshot(s.bootstrap, topic, 1)[0] == good
    r = raw_produce(s.bootstrap, topic, 0, batch(b"after"))
    assert (r.error_code, r.base_offset) == (0, 12)
    assert [g.offset for g in fetch_records(s.bootstrap, topic, 0)] == list(range(15))


def test_corrupt_log_at_startup_is_a_clean_error(serve):
    s, topic, good, seg = _damage_after_clean_shutdown(serve)
    with pytest.raises(AssertionError):
        s.start()
    assert s.proc.returncode != 0 and str(seg) in s.stderr()
    assert "Traceback" not in s.stderr(), s.stderr()[-2000:]


# -- CLI -------------------------------------------------------------------------------------------

def test_config_file_and_overrides(serve, tmp_path):
    port = free_port()
    props = tmp_path / "server.properties"
    props.write_text(
        "# written for Kafka\n"
        "process.roles=broker,controller\n"
        "node.id=7\n"
        f"listeners=PLAINTEXT://127.0.0.1:{port}\n"
        f"log.dirs={tmp_path / 'from-file'}\n"
        "num.partitions=3\n"
        "log.retention.hours=24\n"
        "controller.quorum.voters=7@localhost:9093\n")  # a Kafka key we do not use: kept, warned
    s = serve(config_file=props, port=port, data_dir=tmp_path / "from-override",
              overrides=["num.partitions=2", "log.segment.bytes=65536"]).start()
    with RawClient(s.bootstrap) as c:
        md = c.request(3, 12, m.MetadataRequest(topics=[m.MetadataRequest.MetadataRequestTopic(
            name="auto-created")], allow_auto_topic_creation=True))
        D = m.DescribeConfigsRequest
        cfg = c.request(32, 4, D(resources=[D.DescribeConfigsResource(
            resource_type=4, resource_name="7", configuration_keys=None)],
            include_synonyms=False, include_documentation=False))
    assert [b.node_id for b in md.brokers] == [7] and md.controller_id == 7
    assert len(md.topics[0].partitions) == 2  # --override beats the file
    values = {e.name: e.value for e in cfg.results[0].configs}
    assert cfg.results[0].error_code == 0
    assert values["num.partitions"] == "2" and values["log.retention.hours"] == "24"
    assert values["log.segment.bytes"] == "65536"
    assert (tmp_path / "from-override" / "meta.properties").is_file()
    assert not (tmp_path / "from-file").exists()
    assert "controller.quorum.voters" in s.stderr()  # reported as unknown, not fatal
    assert s.stop() == 0


def _serve_once(*args, timeout=20):
    return subprocess.run([*_command(), "serve", *map(str, args)], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=timeout, env=_env())


@pytest.mark.parametrize("override,key", [("num.partitions=abc", "num.partitions"),
                                          ("node.id=-4", "node.id"),
                                          ("log.message.timestamp.type=Sometimes",
                                           "log.message.timestamp.type"),
                                          ("auto.create.topics.enable=perhaps",
                                           "auto.create.topics.enable")])
def test_bad_config_value_is_rejected_naming_the_key(tmp_path, override, key):
    out = _serve_once("--override", f"log.dirs={tmp_path}", "--override", override)
    assert out.returncode != 0
    assert key in out.stderr and "Traceback" not in out.stderr, out.stderr


def test_bad_config_file(tmp_path):
    out = _serve_once(tmp_path / "missing.properties")
    assert out.returncode != 0 and "missing.properties" in out.stderr
    assert "Traceback" not in out.stderr
    bad = tmp_path / "bad.properties"
    bad.write_text(f"log.dirs={tmp_path}\nlog.segment.bytes=big\n")
    out = _serve_once(bad)
    assert out.returncode != 0 and "log.segment.bytes" in out.stderr


def test_busy_port_is_a_clear_error(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        out = _serve_once("--override", f"listeners=PLAINTEXT://127.0.0.1:{port}",
                          "--override", f"log.dirs={tmp_path}")
    assert out.returncode != 0
    assert "address already in use" in out.stderr.lower() and str(port) in out.stderr
    assert "Traceback" not in out.stderr


def _second_broker(serve):
    s = serve().start()
    out = _serve_once("--override", f"listeners=PLAINTEXT://127.0.0.1:{free_port()}",
                      "--override", f"log.dirs={s.data_dir}")
    assert out.returncode != 0 and str(s.data_dir) in out.stderr
    assert s.stop() == 0
    return out


def test_second_broker_on_the_same_data_dir_is_refused(serve):
    _second_broker(serve)


def test_second_broker_on_the_same_data_dir_is_a_clean_error(serve):
    assert "Traceback" not in _second_broker(serve).stderr


def test_logs_left_by_a_crash_during_topic_deletion_are_not_reused(serve, tmp_path):
    """A kill -9 while a deleted topic's log directories are still being removed leaves some on
    disk. At restart they must not come back as partitions of a new topic of that name."""
    s = serve().start()
    topic = unique("stray")
    create_topic(s.bootstrap, topic, partitions=2)
    for p in range(2):
        assert raw_produce(s.bootstrap, topic, p, batch(b"old", 4)).error_code == 0
    s.kill9()
    saved = tmp_path / "saved-partition"
    shutil.copytree(s.data_dir / f"{topic}-1", saved)
    s.start()
    D = m.DeleteTopicsRequest
    with RawClient(s.bootstrap) as c:
        resp = c.request(20, 6, D(timeout_ms=5000, topics=[D.DeleteTopicState(name=topic)]))
    assert resp.responses[0].error_code == 0
    assert s.stop() == 0
    shutil.copytree(saved, s.data_dir / f"{topic}-1")  # the directory the crash left behind
    s.start()
    assert not (s.data_dir / f"{topic}-1").exists()
    with RawClient(s.bootstrap) as c:
        md = c.request(3, 12, m.MetadataRequest(topics=None, allow_auto_topic_creation=False))
    assert topic not in [t.name for t in md.topics]
    create_topic(s.bootstrap, topic, partitions=2)
    assert [log_end_offset(s.bootstrap, topic, p) for p in range(2)] == [0, 0]
    assert raw_produce(s.bootstrap, topic, 1, batch(b"new", 1)).base_offset == 0
    assert s.stop() == 0
