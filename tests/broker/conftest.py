"""Shared helpers for the broker tests that drive pybroker with real clients and raw sockets.

The broker under test is in-process (`pybroker.testing.Broker`) unless a test needs a separate
process (restart, kill -9, CLI). Everything the clients wrote is checked a second time with our own
codec over a raw socket (`fetch_batches`), so a test fails when the broker stored something other
than what the client sent, not only when the client misreads it.

Message model: `Msg(key, value, headers, timestamp)` with bytes/None fields; `sample_messages`
gives a deterministic mix of null keys, null and empty values, headers, sizes and explicit
CreateTime timestamps.
"""
from __future__ import annotations

import re
import socket
import sys
import time
import uuid
from dataclasses import dataclass, field

import pytest

from pybroker.codec import messages as m
from pybroker.codec.records import iter_batches
from pybroker.testing import Broker
from rawclient import RawClient

# Test modules import these helpers as `broker_conftest`: the name `conftest` is shared by every
# directory's conftest module, and pytest swaps sys.modules["conftest"] as it collects.
sys.modules["broker_conftest"] = sys.modules[__name__]

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
CODEC_ID = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
WAIT = 15.0  # seconds: the bound on every wait in these tests


@dataclass(frozen=True)
class Msg:
    key: bytes | None
    value: bytes | None
    headers: tuple = ()          # ((str, bytes), ...)
    timestamp: int | None = None  # ms; None = not checked


@dataclass
class Got:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple = ()
    timestamp: int = -1
    timestamp_type: int = 0      # 0 CreateTime, 1 LogAppendTime
    extra: dict = field(default_factory=dict)


def unique(prefix: str) -> str:
    """A topic name no other test uses."""
    prefix = re.sub(r"[^a-zA-Z0-9._-]", "-", prefix)[:80]
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def now_ms() -> int:
    return int(time.time() * 1000)


def sample_messages(tag: str, n: int = 20, base_ts: int | None = None, headers=True) -> list:
    """n messages: every 5th key null, values null (i%7==3, key set) / empty (i%7==5) / up to
    ~3 KB of compressible text, headers on 2 of 3, strictly increasing CreateTime timestamps."""
    base_ts = now_ms() - 600_000 if base_ts is None else base_ts
    out = []
    for i in range(n):
        key = None if i % 5 == 0 else f"{tag}-key-{i}".encode()
        if i % 7 == 3 and key is not None:  # (kafka-python refuses a null key with a null value)
            value = None
        elif i % 7 == 5:
            value = b""
        else:
            value = (f"{tag} value {i} " * (1 + (i * 37) % 90)).encode()
        hdrs = () if (i % 3 == 0 or not headers) else \
            (("trace", f"t{i}".encode()), ("n", bytes([i % 256])))
        out.append(Msg(key, value, hdrs, base_ts + 1000 * i))
    return out


def wait_until(pred, timeout: float = WAIT, interval: float = 0.02, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        result = pred()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- raw protocol helpers (our codec over a socket) -----------------------------------------------

def fetch_batches(bootstrap: str, topic: str, partition: int, offset: int = 0,
                  max_bytes: int = 8 << 20) -> list:
    """Every batch from `offset` to the high watermark, as (RecordBatch, batch bytes)."""
    out = []
    with RawClient(bootstrap) as c:
        while True:
            req = m.FetchRequest(max_wait_ms=0, min_bytes=0, max_bytes=max_bytes, topics=[
                m.FetchRequest.FetchTopic(topic=topic, partitions=[m.FetchRequest.FetchPartition(
                    partition=partition, fetch_offset=offset, partition_max_bytes=max_bytes)])])
            resp = c.request(1, 12, req)
            pd = resp.responses[0].partitions[0]
            assert pd.error_code == 0, f"fetch {topic}-{partition}@{offset}: error {pd.error_code}"
            data = bytes(pd.records or b"")
            batches = list(iter_batches(data))
            if not batches:
                return out
            for b in batches:
                raw = bytes(b.raw)
                out.append((b, raw))
                offset = b.next_offset
            if offset >= pd.high_watermark:
                return out


def fetch_records(bootstrap: str, topic: str, partition: int, offset: int = 0) -> list:
    """Every record from `offset` as Got, decoded by our codec; extra holds the batch fields."""
    out = []
    for batch, _ in fetch_batches(bootstrap, topic, partition, offset):
        info = {"compression": batch.compression, "producer_id": batch.producer_id,
                "producer_epoch": batch.producer_epoch, "base_sequence": batch.base_sequence,
                "base_offset": batch.base_offset, "records_count": batch.records_count}
        for r in batch.records():
            if r.offset < offset:
                continue
            out.append(Got(partition, r.offset, r.key, r.value,
                           tuple((k, v) for k, v in r.headers), r.timestamp,
                           batch.timestamp_type, dict(info)))
    return out


def list_offsets(bootstrap: str, topic: str, partition: int, timestamp: int) -> tuple:
    """(offset, timestamp) from ListOffsets v7 for one partition; asserts no error."""
    with RawClient(bootstrap) as c:
        resp = c.request(2, 7, m.ListOffsetsRequest(replica_id=-1, isolation_level=0, topics=[
            m.ListOffsetsRequest.ListOffsetsTopic(name=topic, partitions=[
                m.ListOffsetsRequest.ListOffsetsPartition(partition_index=partition,
                                                          timestamp=timestamp)])]))
    p = resp.topics[0].partitions[0]
    assert p.error_code == 0, f"ListOffsets {topic}-{partition} ts={timestamp}: {p.error_code}"
    return p.offset, p.timestamp


def log_end_offset(bootstrap: str, topic: str, partition: int = 0) -> int:
    return list_offsets(bootstrap, topic, partition, -1)[0]


def create_topic(bootstrap: str, name: str, partitions: int = 1, configs: dict | None = None):
    """CreateTopics v7 over a raw socket; asserts success."""
    T = m.CreateTopicsRequest
    req = T(timeout_ms=10000, validate_only=False, topics=[T.CreatableTopic(
        name=name, num_partitions=partitions, replication_factor=1, assignments=[],
        configs=[T.CreatableTopicConfig(name=k, value=str(v))
                 for k, v in (configs or {}).items()])])
    with RawClient(bootstrap) as c:
        resp = c.request(19, 7, req)
    res = resp.topics[0]
    assert res.error_code == 0, f"CreateTopics {name}: {res.error_code} {res.error_message}"
    return res


def advertised_keys(bootstrap: str) -> set:
    """API keys the broker advertises in ApiVersions."""
    with RawClient(bootstrap, timeout=5) as c:
        resp = c.request(18, 3, m.ApiVersionsRequest(client_software_name="pytest",
                                                     client_software_version="1"))
    return {k.api_key for k in resp.api_keys}


def librdkafka_lz4_check(bootstrap, codec):
    """librdkafka turns lz4 on only when the broker advertises FindCoordinator (key 10: its probe
    for Kafka >= 0.8.2); without it the batches go out uncompressed. Call after checking the
    content, before checking the stored compression."""
    if codec == "lz4" and 10 not in advertised_keys(bootstrap):
        pytest.xfail("librdkafka sends lz4 uncompressed: the broker does not advertise "
                     "FindCoordinator (API key 10; consumer-groups work not merged yet)")


def api_versions_ok(bootstrap: str) -> bool:
    with RawClient(bootstrap, timeout=5) as c:
        resp = c.request(18, 3, m.ApiVersionsRequest(client_software_name="pytest",
                                                     client_software_version="1"))
    return resp.error_code == 0 and any(k.api_key == 0 for k in resp.api_keys)


# -- checks ---------------------------------------------------------------------------------------

def assert_partition_matches(got: list, expected: list, *, check_timestamps=True, start_offset=0):
    """Records of one partition in order, with contiguous offsets from start_offset, equal to the
    expected messages field by field."""
    offsets = [g.offset for g in got]
    assert offsets == list(range(start_offset, start_offset + len(expected))), offsets
    for g, e in zip(got, expected):
        assert (g.key, g.value) == (e.key, e.value), (g.offset, g.key, e.key)
        assert tuple(g.headers) == tuple(e.headers), (g.offset, g.headers, e.headers)
        if check_timestamps and e.timestamp is not None:
            assert g.timestamp == e.timestamp and g.timestamp_type == 0, (g.offset, g.timestamp)


def assert_stored(bootstrap, topic, partition, expected, codec=None, **kw):
    """What the broker serves for topic-partition, decoded by our codec, equals `expected`; when
    `codec` is given, the batches are stored with that compression."""
    got = fetch_records(bootstrap, topic, partition)
    assert_partition_matches(got, expected, **kw)
    if codec is not None:
        # (librdkafka sends a batch uncompressed when compressing does not make it smaller, as
        # for a lone short record: only batches of several records must carry the codec)
        batches = {g.extra["base_offset"]: g.extra for g in got}.values()
        seen = [(b["records_count"], b["compression"]) for b in batches]
        assert all(c == CODEC_ID[codec] for n, c in seen if n > 1) and \
            any(c == CODEC_ID[codec] for _, c in seen), \
            f"{topic}: (records, compression) of the stored batches: {seen}"
    return got


# -- fixtures -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    """One on-disk in-process broker per test module (tests use unique topic names)."""
    with Broker(storage="disk", data_dir=str(tmp_path_factory.mktemp("broker-data"))) as b:
        yield b


@pytest.fixture(scope="module")
def bootstrap(broker) -> str:
    return broker.bootstrap_servers


@pytest.fixture
def topic(request) -> str:
    return unique(request.node.name)
