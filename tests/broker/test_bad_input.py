"""Bad input over raw sockets: garbage, truncated and split frames, absurd and negative length
prefixes, unknown API keys, unsupported versions, ApiVersions from the future, corrupt and
oversized record batches, pipelining without reading, hundreds of connections dropped at every
stage. After every test (autouse `still_healthy`) a fresh client is served and the sentinel topic
written at the start is intact: the broker keeps serving and loses nothing already written.
"""
from __future__ import annotations

import random
import resource
import socket
import struct
import threading
import time

import pytest

from broker_conftest import (create_topic, fetch_batches, fetch_records, log_end_offset, now_ms,
                             unique, wait_until)
from pybroker.codec import messages as m
from pybroker.codec.messages import REGISTRY
from pybroker.codec.protocol import decode_response, encode_request
from pybroker.codec.records import build_batch
from pybroker.testing import Broker
from rawclient import RawClient

REQUEST_MAX = 4 << 20  # socket.request.max.bytes of this module's broker
CORRUPT_MESSAGE, MESSAGE_TOO_LARGE, INVALID_RECORD, UNSUPPORTED_VERSION = 2, 10, 87, 35
PR = m.ProduceRequest


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    with Broker(storage="disk", data_dir=str(tmp_path_factory.mktemp("bad-input")),
                config={"socket.request.max.bytes": REQUEST_MAX}) as b:
        yield b


@pytest.fixture(scope="module")
def sentinel(bootstrap):
    """A topic written before anything bad happens; its batches must survive every test."""
    name = unique("sentinel")
    create_topic(bootstrap, name, partitions=2)
    with RawClient(bootstrap) as c:
        for p in range(2):
            for i in range(3):
                r = produce(c, name, p, batch([b"sentinel %d-%d" % (p, i)] * (i + 1)))
                assert r.error_code == 0
    return name, {p: fetch_batches(bootstrap, name, p) for p in range(2)}


@pytest.fixture(autouse=True)
def still_healthy(bootstrap, sentinel, broker):
    yield
    name, before = sentinel
    with RawClient(bootstrap, timeout=5) as c:
        resp = c.request(18, 3, m.ApiVersionsRequest(client_software_name="after",
                                                     client_software_version="1"))
        assert resp.error_code == 0
    for p, batches in before.items():
        assert [raw for _, raw in fetch_batches(bootstrap, name, p)] == [raw for _, raw in batches]


# -- helpers --------------------------------------------------------------------------------------

def batch(values, **kw):
    return build_batch([(b"k", v, [("h", b"v")], now_ms()) for v in values], **kw)


def produce_body(topic, partition, records, acks=-1):
    return PR(acks=acks, timeout_ms=5000, topic_data=[PR.TopicProduceData(
        name=topic, partition_data=[PR.PartitionProduceData(index=partition, records=records)])])


def produce(client, topic, partition, records, version=9):
    resp = client.request(0, version, produce_body(topic, partition, records))
    return resp.responses[0].partition_responses[0]


def raw_header(api_key, version, correlation_id=1, client_id=b"bad"):
    """A non-flexible (v1) request header for any key/version."""
    return struct.pack(">hhih", api_key, version, correlation_id, len(client_id)) + client_id


def frame(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


def closed_without_response(client, timeout=5.0) -> bool:
    """True when the broker closes the connection and sends nothing first."""
    client.sock.settimeout(timeout)
    try:
        data = client.sock.recv(4)
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False
    return data == b""


def send_and_expect_close(bootstrap, data: bytes):
    with RawClient(bootstrap) as c:
        t0 = time.monotonic()
        c.send_raw(data)
        assert closed_without_response(c), f"connection still open after {data[:40]!r}"
        return time.monotonic() - t0


def rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize()


# -- framing ------------------------------------------------------------------------------------

def test_garbage_bytes_close_the_connection(bootstrap):
    send_and_expect_close(bootstrap, frame(b"\xff" * 16))                 # api key -1
    send_and_expect_close(bootstrap, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # size 'GET ' = 1.1 GB
    send_and_expect_close(bootstrap, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\0" * 64)


def test_random_frames_never_crash_or_hang(bootstrap, broker):
    """Seeded random bodies behind valid headers of served APIs: each gets a response or a close."""
    rng = random.Random(20240611)
    keys = sorted(k for k, mod in broker.broker.state.handlers.items())
    outcomes = {"response": 0, "closed": 0}
    for i in range(120):
        key = rng.choice(keys)
        lo, hi = broker.broker.state.handlers[key].VERSIONS
        version = rng.randint(lo, hi)
        body = rng.randbytes(rng.randint(0, 200))
        with RawClient(bootstrap) as c:
            c.send_raw(frame(raw_header(key, version, i) + body))
            c.sock.settimeout(5)
            try:
                head = c.sock.recv(4)
            except ConnectionResetError:
                head = b""
            outcomes["response" if head else "closed"] += 1
    assert outcomes["closed"] > 0 and sum(outcomes.values()) == 120


def test_truncated_frame_then_drop_appends_nothing(bootstrap, topic):
    create_topic(bootstrap, topic)
    full = encode_request(0, 9, 1, "trunc", produce_body(topic, 0, batch([b"never"] * 3)))
    for cut in (5, len(full) // 2, len(full) - 1):
        with RawClient(bootstrap) as c:
            c.send_raw(full[:cut])
            time.sleep(0.05)
    time.sleep(0.2)
    assert log_end_offset(bootstrap, topic) == 0


def test_frame_shorter_than_its_request_closes_and_appends_nothing(bootstrap, topic):
    create_topic(bootstrap, topic)
    full = encode_request(0, 9, 1, "short", produce_body(topic, 0, batch([b"never"] * 3)))
    payload = full[4:]
    for keep in (8, 20, len(payload) - 30, len(payload) - 1):
        send_and_expect_close(bootstrap, frame(payload[:keep]))
    assert log_end_offset(bootstrap, topic) == 0


def test_request_split_into_single_bytes_is_served(bootstrap, topic):
    create_topic(bootstrap, topic)
    data = encode_request(0, 9, 42, "slow", produce_body(topic, 0, batch([b"byte by byte"])))
    with RawClient(bootstrap) as c:
        for i in range(len(data)):
            c.send_raw(data[i:i + 1])
        resp_frame = c.recv_frame()
        header, resp = decode_response(0, 9, resp_frame)
    assert header.correlation_id == 42
    assert resp.responses[0].partition_responses[0].error_code == 0
    assert [g.value for g in fetch_records(bootstrap, topic, 0)] == [b"byte by byte"]


def test_partial_frame_waits_for_the_rest(bootstrap):
    data = encode_request(18, 3, 9, "half", m.ApiVersionsRequest(
        client_software_name="half", client_software_version="1"))
    with RawClient(bootstrap) as c:
        c.send_raw(data[:7])
        c.sock.settimeout(0.3)
        with pytest.raises(socket.timeout):
            c.sock.recv(1)  # neither an answer nor a close while the frame is incomplete
        c.sock.settimeout(5)
        c.send_raw(data[7:])
        header, resp = decode_response(18, 3, c.recv_frame())
        assert header.correlation_id == 9 and resp.error_code == 0


def test_two_gib_length_prefix_is_refused_without_allocating(bootstrap):
    before = rss_bytes()
    elapsed = send_and_expect_close(bootstrap, b"\x7f\xff\xff\xff" + b"\0" * 100)
    assert elapsed < 2.0
    assert rss_bytes() - before < 64 << 20


def test_length_prefix_above_socket_request_max_bytes_is_refused(bootstrap):
    before = rss_bytes()
    send_and_expect_close(bootstrap, struct.pack(">i", REQUEST_MAX + 1) + b"\0" * 1000)
    assert rss_bytes() - before < 64 << 20
    # just under the limit: the broker reads it (then fails to parse junk and closes)
    with RawClient(bootstrap) as c:
        c.send_raw(struct.pack(">i", REQUEST_MAX - 1) + raw_header(18, 3))
        c.sock.settimeout(0.3)
        with pytest.raises(socket.timeout):
            c.sock.recv(1)  # still waiting for the rest of an acceptable frame


@pytest.mark.parametrize("prefix", [b"\xff\xff\xff\xff", b"\x80\x00\x00\x00", b"\xff\xff\xff\x00"])
def test_negative_length_prefix_closes(bootstrap, prefix):
    send_and_expect_close(bootstrap, prefix + b"\0" * 32)


# -- API keys and versions -------------------------------------------------------------------------

def test_unknown_api_keys_close_the_connection(bootstrap, broker):
    served = set(broker.broker.state.handlers)
    # a Kafka API our codec knows but this broker does not serve (yet), at a version Kafka has
    known_not_served = next(k for k in range(0, 100) if k not in served and
                            REGISTRY.by_api_key("request", k) is not None)
    lo = REGISTRY.by_api_key("request", known_not_served).versions[0]
    for key, version in ((9999, 0), (200, 0), (-5, 0), (4, 0), (known_not_served, lo)):
        send_and_expect_close(bootstrap, frame(raw_header(key, version) + b"\0" * 16))


@pytest.mark.parametrize("key,version", [(0, 14), (0, 2), (1, 3), (1, 19), (3, 14), (19, 1),
                                         (2, 0), (22, 99)])
def test_unsupported_versions_close_the_connection(bootstrap, key, version):
    # the body is irrelevant: the broker must not answer a version it does not serve
    send_and_expect_close(bootstrap, frame(raw_header(key, version) + b"\0" * 40))


@pytest.mark.parametrize("version", [5, 99, 32767])
def test_api_versions_from_the_future_get_a_v0_answer(bootstrap, version):
    # ApiVersions v3+ uses the flexible header v2: key, version, correlation id, client id,
    # empty tagged fields; then a v3-style body (compact strings, no tags)
    payload = struct.pack(">hhih", 18, version, 77, 3) + b"new" + b"\x00" + \
        b"\x04abc\x021\x00"
    with RawClient(bootstrap) as c:
        c.send_raw(frame(payload))
        header, resp = decode_response(18, 0, c.recv_frame())
        assert header.correlation_id == 77
        assert resp.error_code == UNSUPPORTED_VERSION
        assert [(k.api_key, k.min_version, k.max_version) for k in resp.api_keys] == [(18, 0, 4)]
        # the connection stays usable: the client retries with a version we serve
        again = c.request(18, 3, m.ApiVersionsRequest(client_software_name="retry",
                                                      client_software_version="1"))
        assert again.error_code == 0 and len(again.api_keys) > 5


# -- record batches --------------------------------------------------------------------------------

def test_corrupt_crc_is_corrupt_message_and_appends_nothing(bootstrap, topic):
    create_topic(bootstrap, topic)
    good = batch([b"good"])
    with RawClient(bootstrap) as c:
        assert produce(c, topic, 0, good).error_code == 0
        bad = bytearray(batch([b"payload to corrupt"] * 4))
        bad[-3] ^= 0x55  # inside the records, after the CRC
        r = produce(c, topic, 0, bytes(bad))
        assert (r.error_code, r.base_offset) == (CORRUPT_MESSAGE, -1)
        assert log_end_offset(bootstrap, topic) == 1
        # a lying batch length, a truncated batch, and junk are refused too, nothing appended
        lying = bytearray(batch([b"x"]))
        lying[8:12] = struct.pack(">i", len(lying) + 100)
        for records in (bytes(lying), good[:40], b"\x00" * 70, b"not a batch at all"):
            r = produce(c, topic, 0, records)
            assert r.error_code in (CORRUPT_MESSAGE, INVALID_RECORD), (records[:20], r)
        # the same connection still works
        assert produce(c, topic, 0, batch([b"after"])).base_offset == 1
    assert [g.value for g in fetch_records(bootstrap, topic, 0)] == [b"good", b"after"]


def test_oversized_batch_is_message_too_large(bootstrap, topic):
    create_topic(bootstrap, topic, configs={"max.message.bytes": 2000})
    with RawClient(bootstrap) as c:
        r = produce(c, topic, 0, batch([b"x" * 5000]))
        assert r.error_code == MESSAGE_TOO_LARGE
        assert produce(c, topic, 0, batch([b"y" * 500])).error_code == 0
    assert log_end_offset(bootstrap, topic) == 1


def test_oversized_batch_through_confluent(bootstrap, topic):
    ck = pytest.importorskip("confluent_kafka")
    create_topic(bootstrap, topic, configs={"max.message.bytes": 4096})
    errors = []
    p = ck.Producer({"bootstrap.servers": bootstrap, "message.max.bytes": 200000,
                     "compression.type": "none", "message.timeout.ms": 10000})
    p.produce(topic, b"z" * 100_000, on_delivery=lambda err, msg: errors.append(err))
    p.flush(15)
    assert len(errors) == 1 and errors[0].code() == ck.KafkaError.MSG_SIZE_TOO_LARGE
    assert log_end_offset(bootstrap, topic) == 0


# -- connections -----------------------------------------------------------------------------------

def test_hundreds_of_connections_dropped_at_every_stage(bootstrap, broker, topic):
    create_topic(bootstrap, topic)
    host, port = bootstrap.rsplit(":", 1)
    baseline = len(broker.broker.network.connections)
    produce_frame = encode_request(0, 9, 1, "drop", produce_body(topic, 0, batch([b"kept"])))
    av = encode_request(18, 3, 1, "drop", m.ApiVersionsRequest(client_software_name="d",
                                                               client_software_version="1"))
    socks = []
    for i in range(300):
        s = socket.create_connection((host, int(port)), timeout=5)
        stage = i % 5
        if stage == 1:
            s.sendall(av[:3])                    # mid size prefix
        elif stage == 2:
            s.sendall(av[:len(av) // 2])         # mid frame
        elif stage == 3:
            s.sendall(av * 3)                    # full requests, responses never read
        elif stage == 4:
            s.sendall(produce_frame)             # a full Produce, then gone
        if i % 2:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST
        socks.append(s)
        if len(socks) >= 50:
            for x in socks:
                x.close()
            socks.clear()
    for x in socks:
        x.close()
    with RawClient(bootstrap) as c:  # served meanwhile
        assert c.request(18, 3, m.ApiVersionsRequest(client_software_name="x",
                                                     client_software_version="1")).error_code == 0
    wait_until(lambda: len(broker.broker.network.connections) <= baseline, timeout=10,
               what="dropped connections to be released")
    # every complete Produce sent before a drop was appended (Kafka handles completed requests)
    wait_until(lambda: log_end_offset(bootstrap, topic) == 60, timeout=10,
               what="the 60 complete Produce requests")


def test_pipelined_requests_without_reading_get_ordered_responses(bootstrap, broker):
    """20000 requests sent before reading any response: the broker stops writing when the socket
    is full and stops reading when its queue is, holds bounded memory, then answers every
    request in order once the client reads."""
    n = 20000
    reqs = b"".join(encode_request(18, 3, i, "pipe", m.ApiVersionsRequest(
        client_software_name="pipe", client_software_version="1")) for i in range(n))
    before = rss_bytes()
    with RawClient(bootstrap, timeout=20) as c:
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        sender = threading.Thread(target=c.send_raw, args=(reqs,))
        sender.start()
        local = c.sock.getsockname()
        conn = wait_until(lambda: next((x for x in broker.broker.network.connections
                                        if x.peer == local), None), timeout=5)
        wait_until(lambda: conn.write_paused and conn.read_paused, timeout=5,
                   what="the broker to pause writing and reading")
        assert len(conn.pending) < n
        assert rss_bytes() - before < 64 << 20
        ids = []
        for _ in range(n):
            header, resp = decode_response(18, 3, c.recv_frame())
            assert resp.error_code == 0
            ids.append(header.correlation_id)
        sender.join(20)
    assert ids == list(range(n))


def test_idle_connections_are_reaped():
    with Broker(config={"connections.max.idle.ms": 300}) as b:
        with RawClient(b.bootstrap_servers) as c:
            c.request(18, 3, m.ApiVersionsRequest(client_software_name="idle",
                                                  client_software_version="1"))
            t0 = time.monotonic()
            assert closed_without_response(c, timeout=5)
            assert 0.25 <= time.monotonic() - t0 < 3
