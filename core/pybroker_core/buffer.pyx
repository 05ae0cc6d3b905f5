# cython: freethreading_compatible = False
"""Bounds-checked big-endian readers and a growable writer (compiled twin of
pybroker/codec/_pure/buffer.py). Bounds are checked here, once; callers never do length math.
A short buffer raises DecodeError carrying the position and what was missing."""
cimport cython
from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.mem cimport PyMem_Malloc, PyMem_Realloc, PyMem_Free
from cpython.unicode cimport PyUnicode_DecodeUTF8
from libc.string cimport memcpy

from pybroker.codec.errors import DecodeError


cdef inline uint16_t be16(const uint8_t* p) noexcept nogil:
    return (<uint16_t>p[0] << 8) | p[1]

cdef inline uint32_t be32(const uint8_t* p) noexcept nogil:
    return (<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16) | (<uint32_t>p[2] << 8) | p[3]

cdef inline uint64_t be64(const uint8_t* p) noexcept nogil:
    return (<uint64_t>be32(p) << 32) | be32(p + 4)


@cython.final
cdef class Reader:
    """Reader(buf, pos=0, end=None): reads `buf[pos:end]` (any contiguous byte buffer)."""

    def __cinit__(self, object buf, Py_ssize_t pos=0, object end=None):
        if isinstance(buf, memoryview) and (<memoryview>buf).format != "B":
            buf = (<memoryview>buf).cast("B")
        self.obj = buf
        self.mv = buf
        self.p = &self.mv[0] if self.mv.shape[0] > 0 else NULL
        self.end = self.mv.shape[0] if end is None else <Py_ssize_t>end
        if self.end < 0 or self.end > self.mv.shape[0] or pos < 0 or pos > self.end:
            raise DecodeError(f"reader window {pos}..{self.end} outside buffer of {self.mv.shape[0]}", pos)
        self.pos = pos

    cdef int fail(self, str reason, Py_ssize_t at=-1) except -1:
        raise DecodeError(reason, self.pos if at < 0 else at)

    cdef inline int need(self, Py_ssize_t n) except -1:
        if n < 0 or n > self.end - self.pos:
            self.fail(f"need {n} bytes, {self.end - self.pos} left")
        return 0

    cpdef int8_t read_int8(self) except? -1:
        self.need(1)
        self.pos += 1
        return <int8_t>self.p[self.pos - 1]

    cpdef int16_t read_int16(self) except? -1:
        self.need(2)
        self.pos += 2
        return <int16_t>be16(self.p + self.pos - 2)

    cpdef uint16_t read_uint16(self) except? 0xffff:
        self.need(2)
        self.pos += 2
        return be16(self.p + self.pos - 2)

    cpdef int32_t read_int32(self) except? -1:
        self.need(4)
        self.pos += 4
        return <int32_t>be32(self.p + self.pos - 4)

    cpdef uint32_t read_uint32(self) except? 0xffffffff:
        self.need(4)
        self.pos += 4
        return be32(self.p + self.pos - 4)

    cpdef int64_t read_int64(self) except? -1:
        self.need(8)
        self.pos += 8
        return <int64_t>be64(self.p + self.pos - 8)

    cpdef double read_float64(self) except? -1:
        cdef uint64_t bits
        cdef double out
        self.need(8)
        bits = be64(self.p + self.pos)
        self.pos += 8
        memcpy(&out, &bits, 8)
        return out

    cpdef uint32_t read_uvarint(self) except? 0xffffffff:
        cdef uint32_t value = 0
        cdef int shift = 0
        cdef uint8_t b
        cdef Py_ssize_t start = self.pos
        while True:
            if self.pos >= self.end:
                self.fail("truncated varint", start)
            b = self.p[self.pos]
            self.pos += 1
            if shift == 28 and (b & 0xF0):
                self.fail("varint longer than 5 bytes or over 32 bits", start)
            value |= <uint32_t>(b & 0x7F) << shift
            if not (b & 0x80):
                return value
            shift += 7

    cpdef int32_t read_varint(self) except? -1:
        cdef uint32_t u = self.read_uvarint()
        return <int32_t>((u >> 1) ^ (-(<int32_t>(u & 1))))

    cpdef int64_t read_varlong(self) except? -1:
        cdef uint64_t value = 0
        cdef int shift = 0
        cdef uint8_t b
        cdef Py_ssize_t start = self.pos
        while True:
            if self.pos >= self.end:
                self.fail("truncated varlong", start)
            b = self.p[self.pos]
            self.pos += 1
            if shift == 63 and (b & 0xFE):
                self.fail("varlong longer than 10 bytes or over 64 bits", start)
            value |= <uint64_t>(b & 0x7F) << shift
            if not (b & 0x80):
                return <int64_t>((value >> 1) ^ (-(<int64_t>(value & 1))))
            shift += 7

    cpdef object read_slice(self, Py_ssize_t n):
        """Zero-copy memoryview of the next n bytes."""
        self.need(n)
        self.pos += n
        return memoryview(self.obj)[self.pos - n:self.pos]

    cpdef bytes read_bytes(self, Py_ssize_t n):
        self.need(n)
        self.pos += n
        return PyBytes_FromStringAndSize(<const char*>self.p + self.pos - n, n)

    cpdef str read_str(self, Py_ssize_t n):
        self.need(n)
        try:
            s = PyUnicode_DecodeUTF8(<const char*>self.p + self.pos, n, NULL)
        except UnicodeDecodeError as exc:
            raise DecodeError("invalid UTF-8 in string", self.pos) from exc
        self.pos += n
        return s

    cpdef int skip(self, Py_ssize_t n) except -1:
        self.need(n)
        self.pos += n
        return 0

    cpdef Py_ssize_t remaining(self):
        return self.end - self.pos

    cpdef int check_count(self, Py_ssize_t count, Py_ssize_t min_size) except -1:
        """Reject an element count that cannot fit in what is left (before allocating)."""
        if count < 0 or count * min_size > self.end - self.pos or count > self.end - self.pos + 1:
            self.fail(f"count {count} cannot fit in {self.end - self.pos} remaining bytes")
        return 0


@cython.final
cdef class Writer:
    """A growable output buffer; getvalue() returns the bytes written."""

    def __cinit__(self, Py_ssize_t capacity=256):
        self.cap = capacity if capacity > 16 else 16
        self.buf = <char*>PyMem_Malloc(self.cap)
        if self.buf == NULL:
            raise MemoryError()
        self.length = 0

    def __dealloc__(self):
        PyMem_Free(self.buf)

    cdef int grow(self, Py_ssize_t n) except -1:
        cdef Py_ssize_t want = self.length + n
        cdef Py_ssize_t cap = self.cap
        cdef char* nbuf
        if want <= cap:
            return 0
        while cap < want:
            cap *= 2
        nbuf = <char*>PyMem_Realloc(self.buf, cap)
        if nbuf == NULL:
            raise MemoryError()
        self.buf = nbuf
        self.cap = cap
        return 0

    cdef char* ptr(self):
        return self.buf

    cpdef int write_int8(self, int8_t v) except -1:
        self.grow(1)
        self.buf[self.length] = <char>v
        self.length += 1
        return 0

    cpdef int write_int16(self, int16_t v) except -1:
        return self.write_uint16(<uint16_t>v)

    cpdef int write_uint16(self, uint16_t v) except -1:
        self.grow(2)
        self.buf[self.length] = <char>(v >> 8)
        self.buf[self.length + 1] = <char>v
        self.length += 2
        return 0

    cpdef int write_int32(self, int32_t v) except -1:
        return self.write_uint32(<uint32_t>v)

    cpdef int write_uint32(self, uint32_t v) except -1:
        cdef unsigned char* q
        self.grow(4)
        q = <unsigned char*>self.buf + self.length
        q[0] = v >> 24; q[1] = v >> 16; q[2] = v >> 8; q[3] = v
        self.length += 4
        return 0

    cpdef int write_int64(self, int64_t v) except -1:
        self.write_uint32(<uint32_t>((<uint64_t>v) >> 32))
        return self.write_uint32(<uint32_t>v)

    cpdef int write_float64(self, double v) except -1:
        cdef int64_t bits
        memcpy(&bits, &v, 8)
        return self.write_int64(bits)

    cpdef int write_uvarint(self, uint32_t v) except -1:
        self.grow(5)
        while v >= 0x80:
            self.buf[self.length] = <char>((v & 0x7F) | 0x80)
            self.length += 1
            v >>= 7
        self.buf[self.length] = <char>v
        self.length += 1
        return 0

    cpdef int write_varint(self, int32_t v) except -1:
        return self.write_uvarint(<uint32_t>((v << 1) ^ (v >> 31)))

    cpdef int write_varlong(self, int64_t v) except -1:
        cdef uint64_t u = <uint64_t>((v << 1) ^ (v >> 63))
        self.grow(10)
        while u >= 0x80:
            self.buf[self.length] = <char>((u & 0x7F) | 0x80)
            self.length += 1
            u >>= 7
        self.buf[self.length] = <char>u
        self.length += 1
        return 0

    cpdef int write(self, object data) except -1:
        cdef const uint8_t[::1] mv
        cdef Py_ssize_t n
        if isinstance(data, memoryview) and (<memoryview>data).format != "B":
            data = (<memoryview>data).cast("B")
        mv = data
        n = mv.shape[0]
        if n:
            self.grow(n)
            memcpy(self.buf + self.length, &mv[0], n)
            self.length += n
        return 0

    cpdef int patch_int32(self, Py_ssize_t at, int32_t v) except -1:
        cdef unsigned char* q
        cdef uint32_t u = <uint32_t>v
        if at < 0 or at + 4 > self.length:
            raise IndexError("patch outside written range")
        q = <unsigned char*>self.buf + at
        q[0] = u >> 24; q[1] = u >> 16; q[2] = u >> 8; q[3] = u
        return 0

    cpdef Py_ssize_t tell(self):
        return self.length

    cpdef bytes getvalue(self):
        return PyBytes_FromStringAndSize(self.buf, self.length)
