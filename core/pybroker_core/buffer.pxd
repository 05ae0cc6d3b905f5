# Primitive readers and writers shared by every compiled codec (cimported by records/protocol).
# All integers are big-endian; varints are Kafka's zig-zag base-128 encodings.
from libc.stdint cimport int8_t, int16_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t


cdef class Reader:
    cdef readonly object obj            # the exported buffer, kept alive for zero-copy slices
    cdef const uint8_t[::1] mv
    cdef const uint8_t* p
    cdef public Py_ssize_t pos
    cdef public Py_ssize_t end

    cdef int fail(self, str reason, Py_ssize_t at=*) except -1
    cdef inline int need(self, Py_ssize_t n) except -1
    cpdef int8_t read_int8(self) except? -1
    cpdef int16_t read_int16(self) except? -1
    cpdef uint16_t read_uint16(self) except? 0xffff
    cpdef int32_t read_int32(self) except? -1
    cpdef uint32_t read_uint32(self) except? 0xffffffff
    cpdef int64_t read_int64(self) except? -1
    cpdef double read_float64(self) except? -1
    cpdef uint32_t read_uvarint(self) except? 0xffffffff
    cpdef int32_t read_varint(self) except? -1
    cpdef int64_t read_varlong(self) except? -1
    cpdef object read_slice(self, Py_ssize_t n)
    cpdef bytes read_bytes(self, Py_ssize_t n)
    cpdef str read_str(self, Py_ssize_t n)
    cpdef int skip(self, Py_ssize_t n) except -1
    cpdef Py_ssize_t remaining(self)
    cpdef int check_count(self, Py_ssize_t count, Py_ssize_t min_size) except -1


cdef class Writer:
    cdef char* buf
    cdef Py_ssize_t length
    cdef Py_ssize_t cap

    cdef int grow(self, Py_ssize_t n) except -1
    cpdef int write_int8(self, int8_t v) except -1
    cpdef int write_int16(self, int16_t v) except -1
    cpdef int write_uint16(self, uint16_t v) except -1
    cpdef int write_int32(self, int32_t v) except -1
    cpdef int write_uint32(self, uint32_t v) except -1
    cpdef int write_int64(self, int64_t v) except -1
    cpdef int write_float64(self, double v) except -1
    cpdef int write_uvarint(self, uint32_t v) except -1
    cpdef int write_varint(self, int32_t v) except -1
    cpdef int write_varlong(self, int64_t v) except -1
    cpdef int write(self, object data) except -1
    cpdef int patch_int32(self, Py_ssize_t at, int32_t v) except -1
    cpdef Py_ssize_t tell(self)
    cpdef bytes getvalue(self)
    cdef char* ptr(self)
