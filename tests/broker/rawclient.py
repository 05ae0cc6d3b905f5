"""A minimal blocking Kafka client over a raw socket, for protocol-level broker tests."""
from __future__ import annotations

import socket
import struct

from pybroker.codec.protocol import decode_response, encode_request


class RawClient:
    def __init__(self, bootstrap: str, timeout: float = 10.0):
        host, port = bootstrap.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.correlation_id = 0

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv_frame(self) -> bytes:
        """The next response frame without its size prefix; b'' when the broker closed."""
        head = self._recv_exact(4)
        if len(head) < 4:
            return b""
        (size,) = struct.unpack(">i", head)
        return self._recv_exact(size)

    def _recv_exact(self, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            if not chunk:
                break
            out += chunk
        return bytes(out)

    def send(self, api_key: int, api_version: int, body, client_id: str = "raw-test") -> int:
        self.correlation_id += 1
        self.send_raw(encode_request(api_key, api_version, self.correlation_id, client_id, body))
        return self.correlation_id

    def request(self, api_key: int, api_version: int, body, client_id: str = "raw-test"):
        cid = self.send(api_key, api_version, body, client_id)
        frame = self.recv_frame()
        assert frame, "broker closed the connection"
        header, resp = decode_response(api_key, api_version, frame)
        assert header.correlation_id == cid
        return resp

    def is_closed(self, timeout: float = 5.0) -> bool:
        """True when the broker has closed this connection (recv returns EOF)."""
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False
