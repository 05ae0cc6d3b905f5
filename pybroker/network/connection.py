"""One client connection: frame splitting, in-order responses, backpressure, idle reaping.

Wire framing: `u32 size | size bytes (request header + body)`; responses likewise.
Requests on a connection are handled one at a time in arrival order (as Kafka mutes a channel
while its request is in flight), so a pipelined Produce is appended before the Fetch behind it is
served and responses leave in request order. One exception: a Produce whose handler has appended
its batches and only waits for them to be written lets the next request start if that is a
Produce too (PIPELINED_API_KEYS). Its batches are appended after the first one's, so the order
of appends is unchanged; but a write the kernel parks on one partition (75-180 ms measured on
ext4) no longer holds up the producer's other partitions, whose writes complete and become
readable meanwhile. Requests received in full before the peer
disconnects are still handled (their responses dropped), as Kafka does. Reading continues while
requests are in flight, up to `queued.max.requests` frames queued or waiting for their response
(so pipelined Produces waiting on a parked write cannot pile up without bound); beyond that,
and while the transport's write buffer is above its high-water mark (a slow reader), reading is
paused.

Reading is a BufferedProtocol: the socket is read straight into our buffers. Small frames and
size prefixes land in a per-connection read buffer and are copied out once; a frame larger than
`_LARGE_FRAME` that is not yet complete gets a buffer of its own (allocated when its size prefix
arrives, as Kafka's NetworkReceive does) and the rest of it is read into that buffer in place.
Every frame handed to the dispatcher is a bytearray nobody else holds, so the records in a
Produce reach the log as writable views of it, with no further copy.
"""
from __future__ import annotations

import asyncio
import collections
import inspect
import logging
import os
import socket
import time

from pybroker.network.sendfile import write_parts

log = logging.getLogger("pybroker.network")

_SIZE = 4
_READ_BUFFER = 32 * 1024   # per connection: size prefixes and small frames
_LARGE_FRAME = 8 * 1024    # an incomplete frame above this is read into a buffer of its own
# Requests that may start while the one before them (of these keys too) still waits: their
# handler does every state change before it returns, the awaitable only waits for the writes
# (pybroker/api/produce.py). The first two bytes of a frame are its API key.
PIPELINED_API_KEYS = frozenset({0})


def _api_key(frame) -> int:
    return (frame[0] << 8 | frame[1]) if len(frame) >= 2 else -1


class _Waiting:
    """A handled request whose response is not written yet (kept in request order)."""
    __slots__ = ("task", "done", "response")

    def __init__(self):
        self.task = None
        self.done = False
        self.response = None


class Connection(asyncio.BufferedProtocol):
    """Protocol instance per accepted socket; `dispatcher(conn, frame)` returns bytes, None, or an
    awaitable of either. A dispatcher raising CloseConnection closes just this connection."""

    def __init__(self, server, listener_name: str):
        self.server = server
        self.listener = listener_name
        self.dispatcher = server.dispatch
        self.max_request = server.config["socket.request.max.bytes"]
        self.max_queued = server.config["queued.max.requests"]
        self.transport = None
        self.peer = None
        self._rbuf = bytearray(_READ_BUFFER)
        self._rview = memoryview(self._rbuf)
        self._start = 0          # first byte of _rbuf not yet split into a frame
        self._end = 0            # end of the bytes received into _rbuf
        self._frame = None       # memoryview of the large frame being read in place, or None
        self._frame_got = 0      # bytes of it received so far
        self.pending = collections.deque()
        self.waiting = collections.deque()   # _Waiting, in request order
        self._pipelined = False              # every request in `waiting` is pipelinable
        self.write_paused = False
        self.read_paused = False
        self.closed = False
        self.peer_closed = False  # the peer disconnected; queued requests are still handled
        self.last_active = time.monotonic()
        self.context = {}  # per-connection state for handlers (e.g. SASL, client software)
        self.sendfile_fd = -1  # the socket's fd when responses may use sendfile (plaintext)
        self._unsent = None      # the rest of a response, waiting until the socket takes more
        self._writable_fd = -1   # a dup of the socket to watch for writability (the transport
                                 # owns the socket's own fd in the event loop)

    # -- asyncio.Protocol -------------------------------------------------------------------
    def connection_made(self, transport):
        self.transport = transport
        self.peer = transport.get_extra_info("peername")
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            _set_buffer_sizes(sock, self.server.config)
            if transport.get_extra_info("sslcontext") is None and \
                    self.server.config["socket.sendfile.enable"]:
                self.sendfile_fd = sock.fileno()
        self.server.connections.add(self)

    def connection_lost(self, exc):
        self._drop_unsent()
        self._frame = None
        self._start = self._end = 0
        self.write_paused = False
        if self.closed or not (self.busy or self.pending):
            self._finished()
            return
        # The peer is gone, but what it sent in full is still handled, as Kafka does (a producer
        # with acks=0 often disconnects right after its last Produce); responses are dropped.
        self.peer_closed = True
        self.process()

    @property
    def busy(self) -> bool:
        """A handled request still waits for its response."""
        return bool(self.waiting)

    def _finished(self):
        self.closed = True
        self.server.connections.discard(self)
        for w in self.waiting:
            if w.task is not None and not w.task.done():
                w.task.cancel()
        self.waiting.clear()
        self.pending.clear()

    def get_buffer(self, sizehint):
        if self._frame is not None:
            return self._frame[self._frame_got:]
        return self._rview[self._end:]

    def buffer_updated(self, nbytes):
        self.last_active = time.monotonic()
        if self._frame is not None:
            self._frame_got += nbytes
            if self._frame_got < len(self._frame):
                return
            self.pending.append(self._frame.obj)
            self._frame = None
        else:
            self._end += nbytes
            if not self._split_frames():
                return
        if len(self.pending) + len(self.waiting) >= self.max_queued and not self.read_paused:
            self.read_paused = True
            self.transport.pause_reading()
        self.process()

    def _split_frames(self) -> bool:
        """Queue every whole frame in _rbuf; start reading a large incomplete one in place, or
        keep a small one's beginning at the front of _rbuf. False when the connection closed."""
        rbuf, start, end = self._rbuf, self._start, self._end
        while end - start >= _SIZE:
            size = int.from_bytes(rbuf[start:start + _SIZE], "big", signed=True)
            if size < 0 or size > self.max_request:
                log.warning("closing %s: request size %d outside 0..socket.request.max.bytes=%d",
                            self.peer, size, self.max_request)
                self.close()
                return False
            begin = start + _SIZE
            if end - begin >= size:
                self.pending.append(bytearray(self._rview[begin:begin + size]))
                start = begin + size
            elif size > _LARGE_FRAME:
                frame = bytearray(size)
                frame[:end - begin] = self._rview[begin:end]
                self._frame, self._frame_got = memoryview(frame), end - begin
                start = end
                break
            else:
                break
        if start == end:
            start = end = 0
        elif start > 0 and (end == len(rbuf) or start + _SIZE + _LARGE_FRAME > len(rbuf)):
            rbuf[:end - start] = self._rview[start:end].tobytes()  # room for a small frame's rest
            start, end = 0, end - start
        self._start, self._end = start, end
        return True

    def pause_writing(self):
        self.write_paused = True

    def resume_writing(self):
        self.write_paused = False
        self.process()

    def eof_received(self):
        return False  # close our side too once pending responses are written

    # -- request processing -----------------------------------------------------------------
    def process(self):
        """Write the responses that are ready, in request order, then handle queued frames in
        order until one needs to wait (see PIPELINED_API_KEYS) or the writer is saturated."""
        waiting = self.waiting
        while waiting and waiting[0].done and self._unsent is None and not self.closed:
            response = waiting.popleft().response
            if response is not None:
                self.write(response)
        while self.pending and not self.write_paused and self._unsent is None and not self.closed:
            key = _api_key(self.pending[0])
            if waiting and not (self._pipelined and key in PIPELINED_API_KEYS):
                return
            frame = self.pending.popleft()
            try:
                result = self.dispatcher(self, frame)
            except CloseConnection as exc:
                log.info("closing %s: %s", self.peer, exc)
                self.close()
                return
            if inspect.isawaitable(result):
                w = _Waiting()
                self._pipelined = (not waiting or self._pipelined) and key in PIPELINED_API_KEYS
                waiting.append(w)
                w.task = asyncio.ensure_future(self._finish(result, w))
            elif waiting:
                w = _Waiting()          # answered at once, but after the ones before it
                w.done, w.response = True, result
                waiting.append(w)
            elif result is not None:
                self.write(result)
        if self.peer_closed:
            if not self.pending and not waiting:
                self._finished()
            return
        self._maybe_resume_reading()

    async def _finish(self, awaitable, w):
        try:
            result = await awaitable
        except CloseConnection as exc:
            log.info("closing %s: %s", self.peer, exc)
            self.close()
            return
        except asyncio.CancelledError:
            return
        w.done, w.response = True, result
        if self.closed:
            return
        if w is self.waiting[0]:
            self.process()

    def write(self, response):
        """Queue one encoded response: bytes, or a list of bytes and file regions."""
        if self.peer_closed:
            return
        if isinstance(response, list):
            self._write_parts(response)
        else:
            self.transport.write(response)

    def _write_parts(self, parts):
        """Write a response of bytes and file regions; when the socket stops taking a region
        mid-sendfile, wait until it is writable and go on (no other request is handled, and so
        nothing else written, until the response is out)."""
        rest = write_parts(self.transport, parts, self.sendfile_fd)
        if rest is None:
            if self._unsent is not None:
                self._unsent = None
                asyncio.get_running_loop().remove_writer(self._writable_fd)
                self.process()
            return
        if self._unsent is None:
            if self._writable_fd < 0:
                self._writable_fd = os.dup(self.sendfile_fd)
            asyncio.get_running_loop().add_writer(self._writable_fd, self._resume_parts)
        self._unsent = rest

    def _resume_parts(self):
        if self.closed or self.peer_closed:
            self._drop_unsent()
            return
        self._write_parts(self._unsent)

    def _drop_unsent(self):
        if self._unsent is not None:
            self._unsent = None
            asyncio.get_running_loop().remove_writer(self._writable_fd)
        if self._writable_fd >= 0:
            os.close(self._writable_fd)
            self._writable_fd = -1

    def _maybe_resume_reading(self):
        if self.read_paused and len(self.pending) + len(self.waiting) < self.max_queued // 2 \
                and not self.closed:
            self.read_paused = False
            self.transport.resume_reading()

    def close(self):
        if self.peer_closed:
            self._finished()
        elif not self.closed:
            self.closed = True
            self.pending.clear()
            if self.transport is not None:
                self.transport.close()

    @property
    def idle_for(self) -> float:
        return time.monotonic() - self.last_active if not self.busy else 0.0


def _set_buffer_sizes(sock, config):
    """socket.send.buffer.bytes / socket.receive.buffer.bytes on each accepted socket, as Kafka
    (-1: the OS default). They bound what a client that stops reading holds in the kernel."""
    for key, opt in (("socket.send.buffer.bytes", socket.SO_SNDBUF),
                     ("socket.receive.buffer.bytes", socket.SO_RCVBUF)):
        size = config[key]
        if size > 0:
            sock.setsockopt(socket.SOL_SOCKET, opt, size)


class CloseConnection(Exception):
    """Raised by a dispatcher to close the connection without a response (Kafka's behaviour for
    malformed requests, unknown API keys and unsupported versions other than ApiVersions)."""
