"""Record-batch compression codecs (called once per batch, never per record).

Both record implementations (compiled and pure) use this module: compressing or inflating a
batch's records section is one library call per batch, so Python is the right place for it.

Codec ids are the low three bits of a v2 batch's attributes:

    0 none | 1 gzip | 2 snappy | 3 lz4 | 4 zstd

Framings on the wire (what Apache Kafka's Java client writes and reads):

  gzip    RFC 1952 gzip stream(s). Like java.util.zip.GZIPInputStream we read concatenated
          members and ignore trailing bytes that do not start with the gzip magic 1f 8b.
  snappy  xerial snappy-java stream (SnappyOutputStream):
              magic 82 53 4E 41 50 50 59 00 | int32 version | int32 min-compatible version
              then blocks: int32 compressed length | raw snappy block   (repeated)
          Written with 32 KiB uncompressed blocks (snappy-java's default). On read, a stream that
          does not start with the magic is a single raw snappy block (what some non-Java clients
          send); a second header inside the stream (concatenated streams) is skipped.
  lz4     LZ4 frame format (magic 04 22 4D 18), independent 64 KiB blocks, no content size,
          no content checksum (Kafka's Lz4BlockOutputStream). One frame is read; trailing bytes
          after its end mark are ignored, as Kafka's Lz4BlockInputStream does.
  zstd    standard zstd frames (one or more, concatenated); level 3 (Kafka's default).

Decompression is bounded: output beyond `max_size` bytes (default MAX_DECOMPRESSED_SIZE) raises
CorruptRecordError before more memory is committed, so a small "zip bomb" cannot exhaust memory.
Corrupt or truncated input raises CorruptRecordError; an unknown codec id raises
UnsupportedCompressionError. Every error carries the byte `position` the caller passed (the start
of the compressed section) and a reason naming the codec.
"""
import struct
import threading
import zlib

import cramjam
import lz4.frame
import zstandard

from pybroker.codec.errors import CorruptRecordError, UnsupportedCompressionError

COMPRESSION_NONE = 0
COMPRESSION_GZIP = 1
COMPRESSION_SNAPPY = 2
COMPRESSION_LZ4 = 3
COMPRESSION_ZSTD = 4
CODEC_NAMES = {0: "none", 1: "gzip", 2: "snappy", 3: "lz4", 4: "zstd"}

MAX_DECOMPRESSED_SIZE = 64 << 20
GZIP_LEVEL = 6              # java.util.zip.Deflater's default
ZSTD_LEVEL = 3              # Kafka's compression.zstd.level default
XERIAL_MAGIC = b"\x82SNAPPY\x00"
XERIAL_HEADER = XERIAL_MAGIC + struct.pack(">ii", 1, 1)
XERIAL_BLOCK_SIZE = 32 * 1024
_ZSTD_MAX_RATIO = 32768     # a 4-byte RLE block can expand to 128 KiB: at most 32 KiB per input byte
_zstd_local = threading.local()   # per-thread zstd contexts (not thread-safe to share)

__all__ = ["compress", "decompress", "codec_name", "CODEC_NAMES", "MAX_DECOMPRESSED_SIZE",
           "COMPRESSION_NONE", "COMPRESSION_GZIP", "COMPRESSION_SNAPPY", "COMPRESSION_LZ4",
           "COMPRESSION_ZSTD"]


def codec_name(codec):
    return CODEC_NAMES.get(codec, f"codec {codec}")


def _unknown(codec, position):
    return UnsupportedCompressionError(f"unknown compression codec {codec}", position)


# -- compress ---------------------------------------------------------------------------------

def _gzip_compress(data, level=None):
    level = GZIP_LEVEL if level is None or level < 0 else level  # Kafka's -1: the codec default
    c = zlib.compressobj(level, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return c.compress(data) + c.flush()


def _snappy_compress(data, level=None):
    mv = memoryview(data)
    out = [XERIAL_HEADER]
    for start in range(0, len(mv), XERIAL_BLOCK_SIZE):
        block = bytes(cramjam.snappy.compress_raw(mv[start:start + XERIAL_BLOCK_SIZE]))
        out.append(struct.pack(">i", len(block)))
        out.append(block)
    return b"".join(out)


def _lz4_compress(data, level=None):
    return lz4.frame.compress(data, block_size=lz4.frame.BLOCKSIZE_MAX64KB, block_linked=False,
                              content_checksum=False, store_size=False,
                              compression_level=0 if level is None else level)


def _zstd_compress(data, level=None):
    # One compressor per thread: its multi-MiB workspace stays mapped between batches instead of
    # being faulted in again on every call (a ZstdCompressor must not be shared across threads).
    if level is not None and level != ZSTD_LEVEL:
        return zstandard.ZstdCompressor(level=level).compress(data)
    cctx = getattr(_zstd_local, "cctx", None)
    if cctx is None:
        cctx = _zstd_local.cctx = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
    return cctx.compress(data)


_COMPRESSORS = {COMPRESSION_GZIP: _gzip_compress, COMPRESSION_SNAPPY: _snappy_compress,
                COMPRESSION_LZ4: _lz4_compress, COMPRESSION_ZSTD: _zstd_compress}


def compress(codec, data, level=None):
    """compress(codec, data) -> bytes in the wire framing for `codec` (0 returns data as bytes).
    `level`: the topic's compression.<codec>.level (None: Kafka's default; snappy has none)."""
    if codec == COMPRESSION_NONE:
        return bytes(data)
    fn = _COMPRESSORS.get(codec)
    if fn is None:
        raise _unknown(codec, None)
    return fn(data) if level is None else fn(data, level)


# -- decompress -------------------------------------------------------------------------------

class _Bounded:
    """Collects decompressed chunks and fails as soon as their total passes the limit."""

    __slots__ = ("name", "limit", "position", "parts", "total")

    def __init__(self, name, limit, position):
        self.name, self.limit, self.position = name, limit, position
        self.parts, self.total = [], 0

    def budget(self):
        return self.limit - self.total

    def add(self, chunk):
        self.total += len(chunk)
        if self.total > self.limit:
            raise self.error(f"decompressed size exceeds the {self.limit}-byte limit")
        self.parts.append(chunk)

    def error(self, reason):
        return CorruptRecordError(f"{self.name}: {reason}", self.position)

    def result(self):
        return self.parts[0] if len(self.parts) == 1 else b"".join(self.parts)


def _gzip_decompress(data, out):
    # gzip member: 1f 8b | method | flags | mtime u32 | xfl | os | [extras] | deflate | crc32 | isize
    rest = data
    while True:
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            out.add(d.decompress(rest, out.budget() + 1))
        except zlib.error as exc:
            raise out.error(f"corrupt data ({exc})") from exc
        if not d.eof:
            raise out.error("truncated stream")
        rest = d.unused_data
        if rest[:2] != b"\x1f\x8b":
            return out.result()


def _snappy_blocks(mv, out):
    """Raw snappy blocks of a stream: the whole input, or the blocks of a xerial stream
    (16-byte header, then [int32 block length | raw snappy block]*, maybe concatenated)."""
    if bytes(mv[:8]) != XERIAL_MAGIC or len(mv) < 16:
        return [mv]
    blocks, pos = [], 16
    while pos < len(mv):
        if bytes(mv[pos:pos + 8]) == XERIAL_MAGIC:      # concatenated stream: skip its header
            pos += 16
            continue
        if len(mv) - pos < 4:
            raise out.error(f"truncated xerial block length at stream byte {pos}")
        (length,) = struct.unpack_from(">i", mv, pos)
        if length < 0 or length > len(mv) - pos - 4:
            raise out.error(f"xerial block length {length} at stream byte {pos} past end")
        blocks.append(mv[pos + 4:pos + 4 + length])
        pos += 4 + length
    return blocks


def _snappy_decompress(data, out):
    # Sizes first (each raw block starts with its uncompressed length), then one output buffer.
    blocks = _snappy_blocks(memoryview(data), out)
    try:
        sizes = [cramjam.snappy.decompress_raw_len(b) for b in blocks]
    except cramjam.DecompressionError as exc:
        raise out.error(f"corrupt block header ({exc})") from exc
    if sum(sizes) > out.limit:
        raise out.error(f"decompressed size exceeds the {out.limit}-byte limit")
    result = bytearray(sum(sizes))
    view, at = memoryview(result), 0
    try:
        for block, size in zip(blocks, sizes):
            if cramjam.snappy.decompress_raw_into(block, view[at:at + size]) != size:
                raise out.error(f"block at output byte {at} is shorter than its declared {size}")
            at += size
    except cramjam.DecompressionError as exc:
        raise out.error(f"corrupt block ({exc})") from exc
    return result


def _lz4_decompress(data, out):
    # Ask for bounded pieces: LZ4FrameDecompressor allocates max_length up front.
    d = lz4.frame.LZ4FrameDecompressor()
    piece = max(256 << 10, 4 * len(data))
    try:
        while True:
            out.add(d.decompress(data, max_length=min(piece, out.budget() + 1)))
            data = b""
            if d.eof or d.needs_input:
                break
    except RuntimeError as exc:
        raise out.error(f"corrupt frame ({exc})") from exc
    if not d.eof:
        raise out.error("truncated frame")
    return out.result()


def _zstd_frame(mv, out):
    """Inflate one zstd frame from mv; returns the bytes after it. A frame that declares its
    content size within budget is fed whole (zstd stops a frame that outgrows its declared size);
    otherwise input goes in slices small enough that one slice cannot overshoot the budget by
    more than ~2 MiB."""
    dctx = getattr(_zstd_local, "dctx", None) or _zstd_dctx()
    try:
        declared = zstandard.frame_content_size(mv[:18])
    except zstandard.ZstdError:
        declared = -1           # skippable or corrupt: the slow path decides
    whole = 0 <= declared <= out.budget()
    d = dctx.decompressobj(write_size=max(declared, 1 << 17) if whole else 1 << 17)
    pos = 0
    while pos < len(mv) and not d.eof:
        step = len(mv) if whole else max(64, min(1 << 20, out.budget() // _ZSTD_MAX_RATIO))
        try:
            out.add(d.decompress(mv[pos:pos + step]))
        except zstandard.ZstdError as exc:
            raise out.error(f"corrupt frame ({exc})") from exc
        pos += step
    if not d.eof:
        raise out.error("truncated frame")
    return d.unused_data + bytes(mv[pos:]) if d.unused_data else mv[pos:]


def _zstd_dctx():
    _zstd_local.dctx = zstandard.ZstdDecompressor()
    return _zstd_local.dctx


def _zstd_decompress(data, out):
    rest = memoryview(data)
    while True:
        rest = memoryview(_zstd_frame(rest, out))
        if not len(rest):
            return out.result()


_DECOMPRESSORS = {COMPRESSION_GZIP: _gzip_decompress, COMPRESSION_SNAPPY: _snappy_decompress,
                  COMPRESSION_LZ4: _lz4_decompress, COMPRESSION_ZSTD: _zstd_decompress}


def decompress(codec, data, max_size=None, position=None):
    """decompress(codec, data, max_size=MAX_DECOMPRESSED_SIZE, position=None) -> bytes-like.

    `position` is only used in errors (the batch-relative byte where `data` starts)."""
    limit = MAX_DECOMPRESSED_SIZE if max_size is None else max_size
    if codec == COMPRESSION_NONE:
        return bytes(data)
    fn = _DECOMPRESSORS.get(codec)
    if fn is None:
        raise _unknown(codec, position)
    return fn(data, _Bounded(CODEC_NAMES[codec], limit, position))
