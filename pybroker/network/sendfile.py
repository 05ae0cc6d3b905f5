"""Writing a response made of bytes and file regions (zero-copy fetch).

A Fetch response is encoded as parts: bytes, and `FileRegion`s naming a byte range of a segment
file. Each region is sent with `os.sendfile` straight from the page cache when the connection is
plaintext and the transport has nothing queued (so ordering is kept); the part of a region the
socket does not take at once — or all of it when sendfile cannot be used — is read with pread and
queued on the transport like any other bytes. Nothing here blocks the event loop.
"""
from __future__ import annotations

import os


class SendStats:
    """Bytes sent by sendfile vs copied through user space (for benchmarks and tests)."""

    __slots__ = ("sendfile_bytes", "copied_bytes")

    def __init__(self):
        self.sendfile_bytes = 0
        self.copied_bytes = 0


STATS = SendStats()


def write_parts(transport, parts, sock_fd: int) -> None:
    """Write `parts` (bytes or FileRegion with .source.fd/.position/.size) in order.
    sock_fd < 0 disables sendfile (TLS, or not a socket)."""
    for part in parts:
        if isinstance(part, (bytes, bytearray, memoryview)):
            if part:
                transport.write(part)
            continue
        _write_region(transport, part, sock_fd)


def _write_region(transport, region, sock_fd):
    src = region.source
    position, remaining = region.position, region.size
    if sock_fd >= 0 and transport.get_write_buffer_size() == 0:
        try:
            while remaining > 0:
                sent = os.sendfile(sock_fd, src.fd, position, remaining)
                if sent == 0:
                    break
                position += sent
                remaining -= sent
                STATS.sendfile_bytes += sent
        except (BlockingIOError, InterruptedError):
            pass
    if remaining > 0:
        data = os.pread(src.fd, remaining, position)
        if len(data) != remaining:
            raise OSError(f"short read from segment file: {len(data)} of {remaining} bytes")
        STATS.copied_bytes += remaining
        transport.write(data)
