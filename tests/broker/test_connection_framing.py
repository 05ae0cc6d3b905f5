"""Frame splitting of the buffered-protocol Connection, driven directly (no socket): every way a
stream of frames can be cut into reads yields the same frames, in order, each a bytearray of its
own; large frames are read in place into a buffer of their own; bad size prefixes close the
connection. (Real sockets with split, truncated and pipelined frames: test_bad_input.py.)
"""
from __future__ import annotations

import asyncio
import random
import struct

import pytest

from pybroker.network import connection as connection_mod
from pybroker.network.connection import Connection, _Waiting

MAX_REQUEST = 1 << 20


class FakeTransport:
    def __init__(self):
        self.closed = False
        self.paused = False

    def get_extra_info(self, name, default=None):
        return default

    def pause_reading(self):
        self.paused = True

    def resume_reading(self):
        self.paused = False

    def write(self, data):
        pass

    def close(self):
        self.closed = True


class FakeServer:
    def __init__(self, max_queued=500):
        self.config = {"socket.request.max.bytes": MAX_REQUEST, "queued.max.requests": max_queued,
                       "socket.sendfile.enable": False}
        self.connections = set()
        self.frames = []

    def dispatch(self, conn, frame):
        self.frames.append(frame)
        return None


def connect(max_queued=500):
    server = FakeServer(max_queued)
    conn = Connection(server, "PLAINTEXT")
    transport = FakeTransport()
    conn.connection_made(transport)
    return server, conn, transport


def feed(conn, data, cuts):
    """Deliver `data` through get_buffer/buffer_updated in reads of the sizes `cuts` yields
    (each bounded by the buffer the protocol offers, as a transport does)."""
    pos = 0
    while pos < len(data) and not conn.closed:
        buf = conn.get_buffer(-1)
        assert len(buf) > 0, "get_buffer must never offer an empty buffer"
        n = min(len(buf), len(data) - pos, next(cuts))
        buf[:n] = data[pos:pos + n]
        pos += n
        conn.buffer_updated(n)
    return pos


def frames_of(payloads):
    return b"".join(struct.pack(">i", len(p)) + p for p in payloads)


def sizes(seed, n):
    """A mix around every threshold: empty, tiny, just below/above the large-frame bound, larger
    than the read buffer, and large."""
    rng = random.Random(seed)
    large, rbuf = connection_mod._LARGE_FRAME, connection_mod._READ_BUFFER
    pool = [0, 1, 3, 4, 5, 100, large - 1, large, large + 1, rbuf - 4, rbuf, rbuf + 7, 300_000]
    return [rng.choice(pool) for _ in range(n)]


def payloads_for(seed, n):
    rng = random.Random(seed)
    return [rng.randbytes(size) for size in sizes(seed, n)]


@pytest.mark.parametrize("cut", ["whole", "bytes", "random", "prime", "read_buffer"])
def test_any_cutting_of_the_stream_gives_the_same_frames(cut):
    payloads = payloads_for(7, 60)
    data = frames_of(payloads)
    rng = random.Random(3)
    cuts = {"whole": lambda: len(data), "bytes": lambda: 1, "random": lambda: rng.randint(1, 70_000),
            "prime": lambda: 8191, "read_buffer": lambda: connection_mod._READ_BUFFER}[cut]
    if cut == "bytes":
        payloads = payloads[:12]
        data = frames_of(payloads)
    server, conn, _ = connect()
    assert feed(conn, data, iter(cuts, None)) == len(data)
    assert [bytes(f) for f in server.frames] == payloads
    assert all(type(f) is bytearray for f in server.frames)
    assert not conn.closed


def test_each_frame_is_a_buffer_of_its_own():
    payloads = [b"a" * 10, b"b" * 200_000, b"c" * 10]
    server, conn, _ = connect()
    feed(conn, frames_of(payloads), iter(lambda: 5000, None))
    first, big, last = server.frames
    big[0:1] = b"Z"  # the log assigns offsets in place: no other frame may change
    assert bytes(first) == payloads[0] and bytes(last) == payloads[2]
    assert len({id(f) for f in server.frames}) == 3


def test_large_frame_is_read_in_place():
    """After the first read, the rest of a large frame goes straight into its own buffer: the
    protocol offers exactly the missing bytes (no read past the frame's end)."""
    payload = bytes(range(256)) * 4000
    data = frames_of([payload, b"next"])
    server, conn, _ = connect()
    first = conn.get_buffer(-1)
    n = len(first)
    first[:n] = data[:n]
    conn.buffer_updated(n)
    offered = conn.get_buffer(-1)
    assert len(offered) == len(payload) - (n - 4)
    offered[:] = data[n:4 + len(payload)]
    conn.buffer_updated(len(offered))
    assert bytes(server.frames[0]) == payload
    feed(conn, data[4 + len(payload):], iter(lambda: 3, None))
    assert bytes(server.frames[1]) == b"next"


@pytest.mark.parametrize("prefix", [-1, MAX_REQUEST + 1, 0x7FFFFFFF])
def test_size_prefix_out_of_range_closes(prefix):
    server, conn, transport = connect()
    feed(conn, frames_of([b"ok"]) + struct.pack(">i", prefix) + b"x" * 10, iter(lambda: 1, None))
    assert transport.closed and conn.closed
    assert [bytes(f) for f in server.frames] == [b"ok"]


def test_reading_pauses_at_queued_max_requests():
    server, conn, transport = connect(max_queued=4)
    in_flight = _Waiting()
    conn.waiting.append(in_flight)  # a request in flight: frames queue up
    feed(conn, frames_of([b"x"] * 4), iter(lambda: 100, None))
    assert transport.paused and len(conn.pending) == 4
    in_flight.done = True
    conn.process()
    assert not transport.paused and len(server.frames) == 4


# -- pipelined Produce ----------------------------------------------------------------------------

class PipelineServer(FakeServer):
    """Each frame is `api key (2 bytes) + name`; a name starting with "wait" returns an
    awaitable that finishes when the test resolves its future; others answer at once."""

    def __init__(self):
        super().__init__()
        self.futures = {}

    def dispatch(self, conn, frame):
        name = bytes(frame[2:]).decode()
        self.frames.append(name)
        if not name.startswith("wait"):
            return b"resp-" + name.encode()
        fut = self.futures[name] = asyncio.get_running_loop().create_future()

        async def wait():
            await fut
            return b"resp-" + name.encode()
        return wait()


class RecordingTransport(FakeTransport):
    def __init__(self):
        super().__init__()
        self.written = []

    def write(self, data):
        self.written.append(bytes(data).decode())


def test_a_waiting_produce_lets_the_next_produce_start_and_responses_keep_their_order():
    PRODUCE, FETCH = b"\x00\x00", b"\x00\x01"

    async def main():
        server = PipelineServer()
        conn = Connection(server, "PLAINTEXT")
        transport = RecordingTransport()
        conn.connection_made(transport)
        feed(conn, frames_of([PRODUCE + b"wait-p1", PRODUCE + b"wait-p2", FETCH + b"f1",
                              PRODUCE + b"p3", FETCH + b"wait-f2", PRODUCE + b"p4"]),
             iter(lambda: 1000, None))
        # p1 waits for its writes: p2 (a Produce) is handled; the Fetch behind them is not
        assert server.frames == ["wait-p1", "wait-p2"] and conn.busy
        server.futures["wait-p2"].set_result(None)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert transport.written == [] and server.frames == ["wait-p1", "wait-p2"]  # p1 first
        server.futures["wait-p1"].set_result(None)
        for _ in range(5):
            await asyncio.sleep(0)
        # a Fetch that waits holds up even a Produce behind it
        assert server.frames == ["wait-p1", "wait-p2", "f1", "p3", "wait-f2"]
        assert transport.written == ["resp-wait-p1", "resp-wait-p2", "resp-f1", "resp-p3"]
        server.futures["wait-f2"].set_result(None)
        for _ in range(5):
            await asyncio.sleep(0)
        assert server.frames[-1] == "p4" and not conn.busy
        assert transport.written[4:] == ["resp-wait-f2", "resp-p4"]
    asyncio.run(main())


def test_produces_waiting_for_their_writes_count_toward_queued_max_requests():
    # pipelined Produces held up by a parked write must not pile up without bound: reading
    # pauses once queued plus waiting requests reach queued.max.requests, and resumes below half
    PRODUCE = b"\x00\x00"

    async def main():
        server = PipelineServer()
        server.config["queued.max.requests"] = 4
        conn = Connection(server, "PLAINTEXT")
        transport = RecordingTransport()
        conn.connection_made(transport)
        for i in range(3):
            feed(conn, frames_of([PRODUCE + b"wait-%d" % i]), iter(lambda: 1000, None))
        assert len(conn.waiting) == 3 and not transport.paused
        feed(conn, frames_of([PRODUCE + b"wait-3"]), iter(lambda: 1000, None))
        assert len(conn.waiting) == 4 and transport.paused
        for i in range(4):
            server.futures["wait-%d" % i].set_result(None)
            for _ in range(3):
                await asyncio.sleep(0)
            assert transport.paused == (i < 2), i     # resumed once fewer than 2 are left
        assert transport.written == ["resp-wait-%d" % i for i in range(4)]
    asyncio.run(main())
