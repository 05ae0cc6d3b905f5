"""asv benchmark for writing Fetch responses of bytes and file regions (pybroker/network/sendfile.py).

A caught-up consumer over 256 partitions gets a few KiB per partition: one response is a header
and a small region per partition. Parametrized by `COALESCE_BELOW`: 0 sends every region by
sendfile with its header written on its own (two syscalls and two TCP segments per partition,
the behaviour before regions were coalesced); 16384 reads small regions with pread and sends
headers and data in one writev. Over TCP loopback with a reader thread draining the socket, so
the receiver's share of the per-segment cost is in the process CPU time too.
"""
import os
import socket
import tempfile
import threading
import time

from pybroker.codec.messages import FileRegion
from pybroker.network import sendfile

PARTITIONS = 256


class _SocketTransport:
    """What write_parts needs of an asyncio transport, over a blocking socket."""

    def __init__(self, sock):
        self.sock = sock

    def get_write_buffer_size(self):
        return 0

    def write(self, data):
        self.sock.sendall(data)

    def writelines(self, parts):
        self.sock.sendmsg(parts)


class WriteParts:
    params = ([0, 16384], [2048, 8192])
    param_names = ["coalesce_below", "region_bytes"]
    timer = time.process_time   # sender and receiver CPU, not wall time

    def setup(self, coalesce_below, region_bytes):
        self.saved = sendfile.COALESCE_BELOW
        sendfile.COALESCE_BELOW = coalesce_below
        self.file = tempfile.TemporaryFile()
        self.file.write(os.urandom(PARTITIONS * region_bytes))
        self.file.flush()

        class Source:
            fd = self.file.fileno()
        self.parts = []
        for p in range(PARTITIONS):
            self.parts += [b"h" * 40, FileRegion(Source, p * region_bytes, region_bytes)]
        self.total = PARTITIONS * (40 + region_bytes)
        server = socket.create_server(("127.0.0.1", 0))
        self.client = socket.create_connection(server.getsockname())
        self.sock, _ = server.accept()
        server.close()
        for s in (self.client, self.sock):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.transport = _SocketTransport(self.sock)
        self.received = threading.Semaphore(0)
        self.reader = threading.Thread(target=self._drain, daemon=True)
        self.reader.start()

    def _drain(self):
        got = 0
        while True:
            data = self.client.recv(1 << 22)
            if not data:
                return
            got += len(data)
            while got >= self.total:
                got -= self.total
                self.received.release()

    def teardown(self, coalesce_below, region_bytes):
        sendfile.COALESCE_BELOW = self.saved
        self.sock.close()
        self.reader.join()
        self.client.close()
        self.file.close()

    def time_response_of_256_small_regions(self, coalesce_below, region_bytes):
        assert sendfile.write_parts(self.transport, self.parts, self.sock.fileno()) is None
        self.received.acquire()
