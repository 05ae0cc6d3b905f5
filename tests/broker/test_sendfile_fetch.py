"""Zero-copy fetch (pybroker/network/sendfile.py): a Fetch response much larger than the socket
buffer goes out by sendfile from start to end while the client reads slowly: when the socket
stops taking a region the broker waits until it is writable and goes on, instead of reading the
rest into memory. The bytes are those stored, and a request pipelined behind the Fetch is answered
after it, in order. A client that disconnects mid-response leaves nothing behind.
"""
from __future__ import annotations

import os
import socket
import struct
import time

import pytest

from broker_conftest import create_topic, fetch_batches, now_ms, unique, wait_until
from pybroker.codec import messages as m
from pybroker.codec.protocol import decode_response, encode_request
from pybroker.codec.records import build_batch, iter_batches
from pybroker.network.sendfile import STATS
from pybroker.testing import Broker
from rawclient import RawClient

PARTITIONS = 3
BATCHES = 6           # per partition, ~256 KiB each: a response of ~4.5 MiB
SNDBUF = 64 * 1024    # the broker's socket send buffer, so the response outgrows it many times


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    with Broker(storage="disk", data_dir=str(tmp_path_factory.mktemp("sendfile")),
                config={"socket.send.buffer.bytes": SNDBUF}) as b:
        yield b


@pytest.fixture(scope="module")
def stored(broker):
    """A topic of PARTITIONS x BATCHES batches; returns (topic, {partition: stored bytes})."""
    bootstrap = broker.bootstrap_servers
    topic = unique("sendfile")
    create_topic(bootstrap, topic, PARTITIONS)
    PR = m.ProduceRequest
    with RawClient(bootstrap) as c:
        for i in range(BATCHES):
            values = [os.urandom(1024) for _ in range(250)]
            body = PR(acks=-1, timeout_ms=10000, topic_data=[PR.TopicProduceData(
                name=topic, partition_data=[
                    PR.PartitionProduceData(index=p, records=build_batch(
                        [(b"k%d" % i, v, [], now_ms()) for v in values]))
                    for p in range(PARTITIONS)])])
            resp = c.request(0, 9, body)
            assert all(pr.error_code == 0 for t in resp.responses for pr in t.partition_responses)
    expected = {p: b"".join(raw for _, raw in fetch_batches(bootstrap, topic, p))
                for p in range(PARTITIONS)}
    return topic, expected


def fetch_body(topic):
    F = m.FetchRequest
    return F(max_wait_ms=0, min_bytes=0, max_bytes=64 << 20, topics=[F.FetchTopic(
        topic=topic, partitions=[F.FetchPartition(partition=p, fetch_offset=0,
                                                  partition_max_bytes=16 << 20)
                                 for p in range(PARTITIONS)])])


def slow_client(bootstrap):
    host, port = bootstrap.rsplit(":", 1)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
    sock.connect((host, int(port)))
    sock.settimeout(10)
    return sock


def read_exact(sock, n, chunk=16 * 1024, pause=0.0):
    out = bytearray()
    while len(out) < n:
        data = sock.recv(min(chunk, n - len(out)))
        assert data, "broker closed the connection"
        out += data
        if pause:
            time.sleep(pause)
    return bytes(out)


def read_frame(sock, **kw):
    (size,) = struct.unpack(">i", read_exact(sock, 4))
    return read_exact(sock, size, **kw)


def test_large_response_goes_out_by_sendfile_in_order(broker, stored):
    topic, expected = stored
    total = sum(len(v) for v in expected.values())
    assert total > 40 * SNDBUF
    sendfile_before, copied_before = STATS.sendfile_bytes, STATS.copied_bytes
    sock = slow_client(broker.bootstrap_servers)
    try:
        sock.sendall(encode_request(1, 12, 1, "slow", fetch_body(topic)) +
                     encode_request(18, 3, 2, "slow", m.ApiVersionsRequest(
                         client_software_name="t", client_software_version="1")))
        time.sleep(0.3)  # the broker fills the socket and has to wait for room
        fetch = read_frame(sock, pause=0.001)
        versions = read_frame(sock)
    finally:
        sock.close()
    header, resp = decode_response(1, 12, fetch)
    assert header.correlation_id == 1
    got = {p.partition_index: bytes(p.records) for p in resp.responses[0].partitions}
    assert got == expected
    assert all(sum(1 for _ in iter_batches(v)) == BATCHES for v in got.values())
    header, _ = decode_response(18, 3, versions)
    assert header.correlation_id == 2
    assert STATS.copied_bytes == copied_before, "part of the response was read into memory"
    assert STATS.sendfile_bytes - sendfile_before == total


def open_fds():
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")
def test_client_gone_mid_response_leaves_nothing_behind(broker, stored):
    topic, expected = stored
    bootstrap = broker.bootstrap_servers
    connections = broker.broker.network.connections
    # earlier clients' connections may still be closing: count from a settled broker (measured
    # mid-teardown, the base was 1 and the count then went to 0, never back to the base)
    wait_until(lambda: not connections, timeout=10)
    base_connections = len(connections)
    base_fds = open_fds()
    for _ in range(3):
        sock = slow_client(bootstrap)
        sock.sendall(encode_request(1, 12, 1, "gone", fetch_body(topic)))
        read_exact(sock, 100 * 1024)  # part of the response, then hang up
        sock.close()
    wait_until(lambda: len(broker.broker.network.connections) == base_connections, timeout=10)
    assert open_fds() <= base_fds
    with RawClient(bootstrap) as c:  # still serving, the same bytes
        resp = c.request(1, 12, fetch_body(topic))
    assert {p.partition_index: bytes(p.records) for p in resp.responses[0].partitions} == expected


class _Transport:
    """Records what write_parts hands the transport, and puts it on the socket in order."""

    def __init__(self, sock):
        self.sock, self.calls = sock, []

    def get_write_buffer_size(self):
        return 0

    def write(self, data):
        self.calls.append(("write", [bytes(data)]))
        self.sock.sendall(data)

    def writelines(self, parts):
        self.calls.append(("writelines", [bytes(p) for p in parts]))
        self.sock.sendall(b"".join(parts))


def test_small_regions_go_out_with_the_bytes_around_them_in_one_writev(tmp_path):
    # a caught-up consumer over many partitions gets a few KiB per partition: its headers and
    # small regions leave in one writelines, and only a large region goes by sendfile
    from pybroker.codec.messages import FileRegion
    from pybroker.network import sendfile

    data = os.urandom(3 * sendfile.COALESCE_BELOW)
    path = tmp_path / "segment"
    path.write_bytes(data)

    class Source:
        fd = os.open(path, os.O_RDONLY)
    small_a, small_b = FileRegion(Source, 0, 100), FileRegion(Source, 5000, 2000)
    large = FileRegion(Source, 100, sendfile.COALESCE_BELOW)
    parts = [b"h1", small_a, b"h2", small_b, large, b"tail", FileRegion(Source, 7, 9)]
    a, b = socket.socketpair()
    try:
        transport = _Transport(a)
        copied, sent = STATS.copied_bytes, STATS.sendfile_bytes
        assert sendfile.write_parts(transport, parts, a.fileno()) is None
        expected = (b"h1" + data[:100] + b"h2" + data[5000:7000] + data[100:100 + large.size]
                    + b"tail" + data[7:16])
        assert read_exact(b, len(expected)) == expected
    finally:
        a.close(), b.close(), os.close(Source.fd)
    assert transport.calls == [("writelines", [b"h1", data[:100], b"h2", data[5000:7000]]),
                               ("writelines", [b"tail", data[7:16]])]
    assert STATS.copied_bytes - copied == 2109 and STATS.sendfile_bytes - sent == large.size
