"""Pure-Python twin of pybroker_core.buffer: bounds-checked big-endian reader and a writer.

Layouts: INT8/16/32/64 big-endian two's complement; UNSIGNED_VARINT base-128, least significant
group first, at most 5 bytes; VARINT/VARLONG zig-zag then base-128 (at most 5 / 10 bytes).
"""
import struct

from pybroker.codec.errors import DecodeError

_I8 = struct.Struct(">b").unpack_from
_I16 = struct.Struct(">h").unpack_from
_U16 = struct.Struct(">H").unpack_from
_I32 = struct.Struct(">i").unpack_from
_U32 = struct.Struct(">I").unpack_from
_I64 = struct.Struct(">q").unpack_from
_F64 = struct.Struct(">d").unpack_from


class Reader:
    """Reader(buf, pos=0, end=None): reads `buf[pos:end]` (any contiguous byte buffer)."""

    __slots__ = ("obj", "mv", "pos", "end")

    def __init__(self, buf, pos=0, end=None):
        mv = memoryview(buf)
        if mv.format != "B" or mv.ndim != 1:
            mv = mv.cast("B")
        self.obj = buf
        self.mv = mv
        self.end = len(mv) if end is None else end
        if self.end < 0 or self.end > len(mv) or pos < 0 or pos > self.end:
            raise DecodeError(f"reader window {pos}..{self.end} outside buffer of {len(mv)}", pos)
        self.pos = pos

    def need(self, n):
        if n < 0 or n > self.end - self.pos:
            raise DecodeError(f"need {n} bytes, {self.end - self.pos} left", self.pos)

    def _fixed(self, unpack, n):
        self.need(n)
        v = unpack(self.mv, self.pos)[0]
        self.pos += n
        return v

    def read_int8(self):
        return self._fixed(_I8, 1)

    def read_int16(self):
        return self._fixed(_I16, 2)

    def read_uint16(self):
        return self._fixed(_U16, 2)

    def read_int32(self):
        return self._fixed(_I32, 4)

    def read_uint32(self):
        return self._fixed(_U32, 4)

    def read_int64(self):
        return self._fixed(_I64, 8)

    def read_float64(self):
        return self._fixed(_F64, 8)

    def _read_base128(self, max_bytes, what):
        start = self.pos
        value = shift = 0
        mv, end = self.mv, self.end
        for i in range(max_bytes):
            if self.pos >= end:
                raise DecodeError(f"truncated {what}", start)
            b = mv[self.pos]
            self.pos += 1
            if i == max_bytes - 1 and b & (0xF0 if max_bytes == 5 else 0xFE):
                break
            value |= (b & 0x7F) << shift
            if not b & 0x80:
                return value
            shift += 7
        bits = 32 if max_bytes == 5 else 64
        raise DecodeError(f"{what} longer than {max_bytes} bytes or over {bits} bits", start)

    def read_uvarint(self):
        return self._read_base128(5, "varint")

    def read_varint(self):
        u = self._read_base128(5, "varint")
        return (u >> 1) ^ -(u & 1)

    def read_varlong(self):
        u = self._read_base128(10, "varlong")
        return (u >> 1) ^ -(u & 1)

    def read_slice(self, n):
        """Zero-copy memoryview of the next n bytes."""
        self.need(n)
        self.pos += n
        return self.mv[self.pos - n:self.pos]

    def read_bytes(self, n):
        return bytes(self.read_slice(n))

    def read_str(self, n):
        start = self.pos
        raw = self.read_slice(n)
        try:
            return str(raw, "utf-8")
        except UnicodeDecodeError as exc:
            raise DecodeError("invalid UTF-8 in string", start) from exc

    def skip(self, n):
        self.need(n)
        self.pos += n
        return 0

    def remaining(self):
        return self.end - self.pos

    def check_count(self, count, min_size):
        """Reject an element count that cannot fit in what is left (before allocating)."""
        left = self.end - self.pos
        if count < 0 or count * min_size > left or count > left + 1:
            raise DecodeError(f"count {count} cannot fit in {left} remaining bytes", self.pos)
        return 0


_P = {k: struct.Struct(f">{k}").pack for k in "bhHiIqd"}


class Writer:
    """A growable output buffer; getvalue() returns the bytes written."""

    __slots__ = ("buf",)

    def __init__(self, capacity=256):
        self.buf = bytearray()

    def write_int8(self, v):
        self.buf += _P["b"](v)

    def write_int16(self, v):
        self.buf += _P["h"](v)

    def write_uint16(self, v):
        self.buf += _P["H"](v)

    def write_int32(self, v):
        self.buf += _P["i"](v)

    def write_uint32(self, v):
        self.buf += _P["I"](v)

    def write_int64(self, v):
        self.buf += _P["q"](v)

    def write_float64(self, v):
        self.buf += _P["d"](v)

    def write_uvarint(self, v):
        if not 0 <= v <= 0xFFFFFFFF:
            raise OverflowError(f"uvarint {v} out of range")
        out = self.buf
        while v >= 0x80:
            out.append((v & 0x7F) | 0x80)
            v >>= 7
        out.append(v)

    def write_varint(self, v):
        if not -(1 << 31) <= v < (1 << 31):
            raise OverflowError(f"varint {v} out of range")
        self.write_uvarint(((v << 1) ^ (v >> 31)) & 0xFFFFFFFF)

    def write_varlong(self, v):
        if not -(1 << 63) <= v < (1 << 63):
            raise OverflowError(f"varlong {v} out of range")
        u = ((v << 1) ^ (v >> 63)) & 0xFFFFFFFFFFFFFFFF
        out = self.buf
        while u >= 0x80:
            out.append((u & 0x7F) | 0x80)
            u >>= 7
        out.append(u)

    def write(self, data):
        self.buf += data

    def patch_int32(self, at, v):
        if at < 0 or at + 4 > len(self.buf):
            raise IndexError("patch outside written range")
        self.buf[at:at + 4] = _P["i"](v)

    def tell(self):
        return len(self.buf)

    def getvalue(self):
        return bytes(self.buf)
