"""Helpers for the log-lifecycle tests (configs, retention, compaction, DeleteRecords, log dirs):
an on-disk in-process broker with fast background tasks, real clients, and raw-protocol checks
with our codec (so a test fails when the broker stores something other than what it reports).

Test modules import these as `lifecycle_helpers` (pytest swaps sys.modules["conftest"]).
"""
from __future__ import annotations

import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid

import pytest

import pybroker
from pybroker.codec import messages as m
from pybroker.codec.records import iter_batches
from pybroker.testing import Broker

sys.modules["lifecycle_helpers"] = sys.modules[__name__]
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "broker"))
from rawclient import RawClient  # noqa: E402

WAIT = 20.0
FAST = {"log.retention.check.interval.ms": 100, "log.initial.task.delay.ms": 0,
        "log.cleaner.backoff.ms": 100, "log.segment.delete.delay.ms": 100,
        "log.cleaner.dedupe.buffer.size": 8 << 20}
ROOT = pathlib.Path(pybroker.__file__).resolve().parents[1]


def unique(prefix: str) -> str:
    return f"{re.sub(r'[^a-zA-Z0-9._-]', '-', prefix)[:60]}-{uuid.uuid4().hex[:8]}"


def now_ms() -> int:
    return int(time.time() * 1000)


def wait_until(pred, timeout=WAIT, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        result = pred()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


# ---- clients ----------------------------------------------------------------------------------

def admin(bootstrap):
    from confluent_kafka.admin import AdminClient
    return AdminClient({"bootstrap.servers": bootstrap})


def create_topic(bootstrap, name, partitions=1, config=None):
    from confluent_kafka.admin import NewTopic
    client = admin(bootstrap)                     # kept alive until the future resolves
    client.create_topics([NewTopic(name, partitions, 1, config=config or {})])[name].result(15)


def produce(bootstrap, topic, items, partition=0, **conf):
    """Produce (key, value[, timestamp]) items with confluent-kafka; returns delivery errors."""
    from confluent_kafka import Producer
    errors = []
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "batch.num.messages": 2000,
                  "queue.buffering.max.messages": 500000, **conf})

    def done(err, msg):
        if err is not None:
            errors.append(err)
    for item in items:
        key, value = item[0], item[1]
        kwargs = {"timestamp": item[2]} if len(item) > 2 else {}
        while True:
            try:
                p.produce(topic, key=key, value=value, partition=partition, on_delivery=done, **kwargs)
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
    assert p.flush(60) == 0
    return errors


def consume_all(bootstrap, topic, partition=0, start=None, reset="earliest", timeout=WAIT):
    """Every record from `start` (default: the beginning) to the high watermark as
    (offset, key, value), with a confluent consumer assigned to the partition."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("g"), "enable.auto.commit": False,
                  "auto.offset.reset": reset, "fetch.wait.max.ms": 50})
    try:
        lo, hi = c.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
        c.assign([TopicPartition(topic, partition, OFFSET_BEGINNING if start is None else start)])
        out = []
        deadline = time.monotonic() + timeout
        while (not out or out[-1][0] < hi - 1) and hi > lo:
            assert time.monotonic() < deadline, f"read {len(out)} records, stuck before {hi}"
            for msg in c.consume(10000, 0.5):
                assert msg.error() is None, msg.error()
                out.append((msg.offset(), msg.key(), msg.value()))
            if out and out[-1][0] >= hi - 1:
                break
        return out
    finally:
        c.close()


# ---- raw protocol -------------------------------------------------------------------------------

def raw(bootstrap, key, version, body):
    with RawClient(bootstrap) as c:
        return c.request(key, version, body)


def list_offset(bootstrap, topic, partition, timestamp):
    resp = raw(bootstrap, 2, 7, m.ListOffsetsRequest(replica_id=-1, isolation_level=0, topics=[
        m.ListOffsetsRequest.ListOffsetsTopic(name=topic, partitions=[
            m.ListOffsetsRequest.ListOffsetsPartition(partition_index=partition, timestamp=timestamp)])]))
    p = resp.topics[0].partitions[0]
    assert p.error_code == 0
    return p.offset


def fetch_batches(bootstrap, topic, partition=0, offset=0):
    """(error code, [RecordBatch]) of one Fetch v12 at `offset` (1 MiB)."""
    resp = raw(bootstrap, 1, 12, m.FetchRequest(max_wait_ms=0, min_bytes=0, max_bytes=1 << 20, topics=[
        m.FetchRequest.FetchTopic(topic=topic, partitions=[m.FetchRequest.FetchPartition(
            partition=partition, fetch_offset=offset, partition_max_bytes=1 << 20)])]))
    pd = resp.responses[0].partitions[0]
    return pd.error_code, list(iter_batches(bytes(pd.records or b"")))


def describe(bootstrap, rtype, name, keys=None, synonyms=True):
    R = m.DescribeConfigsRequest
    resp = raw(bootstrap, 32, 4, R(resources=[R.DescribeConfigsResource(
        resource_type=rtype, resource_name=name, configuration_keys=keys)],
        include_synonyms=synonyms, include_documentation=False))
    r = resp.results[0]
    assert r.error_code == 0, (r.error_code, r.error_message)
    return {c.name: c for c in r.configs}


def incremental(bootstrap, rtype, name, ops, validate_only=False):
    """[(key, op, value)] -> (error code, message)."""
    R = m.IncrementalAlterConfigsRequest
    resp = raw(bootstrap, 44, 1, R(resources=[R.AlterConfigsResource(
        resource_type=rtype, resource_name=name,
        configs=[R.AlterableConfig(name=k, config_operation=op, value=v) for k, op, v in ops])],
        validate_only=validate_only))
    r = resp.responses[0]
    return r.error_code, r.error_message


# ---- brokers --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    """One on-disk in-process broker per module, with fast retention and cleaner loops."""
    with Broker(storage="disk", data_dir=str(tmp_path_factory.mktemp("lifecycle")), config=FAST) as b:
        yield b


@pytest.fixture(scope="module")
def bootstrap(broker) -> str:
    return broker.bootstrap_servers


@pytest.fixture
def topic(request) -> str:
    return unique(request.node.name)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Serve:
    """`pybroker serve` as a separate process (kill -9 tests), restartable on one data dir."""

    def __init__(self, workdir, overrides=()):
        self.workdir = pathlib.Path(workdir)
        self.port = free_port()
        self.data_dir = self.workdir / "data"
        self.overrides = list(overrides)
        self.proc = None
        self.runs = 0

    @property
    def bootstrap(self):
        return f"127.0.0.1:{self.port}"

    def start(self, extra=()):
        self.runs += 1
        out = self.workdir / f"serve-{self.runs}.out"
        self.err = self.workdir / f"serve-{self.runs}.err"
        argv = [sys.executable, "-m", "pybroker", "serve"]
        for kv in [f"listeners=PLAINTEXT://127.0.0.1:{self.port}", f"log.dirs={self.data_dir}",
                   *self.overrides, *extra]:
            argv += ["--override", kv]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "core"), env.get("PYTHONPATH", "")])
        with open(out, "wb") as o, open(self.err, "wb") as e:
            self.proc = subprocess.Popen(argv, stdout=o, stderr=e, env=env)
        wait_until(lambda: "started:" in out.read_text() or self.proc.poll() is not None,
                   what="pybroker serve to start")
        assert self.proc.poll() is None, self.err.read_text()[-3000:]
        return self

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(30)

    def close(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


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
    shutil.rmtree(tmp_path / "data", ignore_errors=True)
