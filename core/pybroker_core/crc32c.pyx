"""CRC-32C (Castagnoli) over any contiguous buffer; compiled twin of pybroker/codec/_pure/crc32c.py.

The C side (crc32c_impl.c) picks the fastest path the CPU has: AVX-512 VPCLMULQDQ folding,
SSE4.2 crc32 in three streams, or portable slice-by-8 tables.
"""
from cpython.number cimport PyNumber_Index
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from libc.stdint cimport uint32_t


cdef extern from "crc32c_impl.h":
    uint32_t impl_update "pybroker_crc32c_update" (uint32_t crc, const unsigned char* p, size_t n) noexcept nogil
    int impl_hw "pybroker_crc32c_hw" () noexcept nogil
    void impl_force_portable "pybroker_crc32c_force_portable" (int on) noexcept nogil
    int impl_tier "pybroker_crc32c_tier" () noexcept nogil
    int impl_best_tier "pybroker_crc32c_best_tier" () noexcept nogil
    void impl_limit_tier "pybroker_crc32c_limit_tier" (int tier) noexcept nogil

# Inputs this large are checksummed without the GIL (at ~50 GB/s, 64 KiB takes ~1.3 us, well
# above the cost of releasing and re-taking it).
cdef enum:
    NOGIL_MIN_LEN = 65536

_TIER_NAMES = ("portable", "sse4.2", "avx512")


cdef uint32_t crc32c_update(uint32_t crc, const unsigned char* p, size_t n) noexcept nogil:
    return impl_update(crc, p, n)


cdef int crc32c_hw() noexcept nogil:
    return impl_hw()


cdef inline uint32_t _start_crc(object crc) except? 0xFFFFFFFF:
    """`crc` as uint32: an int (or __index__ object) in 0..0xFFFFFFFF, else TypeError/OverflowError."""
    if type(crc) is not int:
        crc = PyNumber_Index(crc)  # rejects float, str, None like the pure twin's operator.index
    return crc


def crc32c(data, crc=0):
    """crc32c(data, crc=0) -> int: CRC-32C of `data`, continuing from `crc` (0 to start).

    `data` is any C-contiguous buffer (bytes, bytearray, memoryview of any format, mmap, array);
    its raw bytes are checksummed. A non-contiguous buffer raises BufferError.
    """
    cdef uint32_t value = _start_crc(crc)
    cdef Py_buffer view
    # PyBUF_SIMPLE: raw bytes of any format; the export pins bytearray/mmap while we read them.
    PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
    cdef const unsigned char* p = <const unsigned char*>view.buf
    cdef size_t n = <size_t>view.len
    try:
        if n >= NOGIL_MIN_LEN:
            with nogil:
                value = impl_update(value, p, n)
        else:
            value = impl_update(value, p, n)
    finally:
        PyBuffer_Release(&view)
    return value


def hardware():
    """True when a CPU instruction path (SSE4.2 or AVX-512) is in use."""
    return bool(impl_hw())


def implementation():
    """Name of the path in use: 'avx512', 'sse4.2' or 'portable'."""
    return _TIER_NAMES[impl_tier()]


def available():
    """Names of the paths this CPU can run, slowest first."""
    return _TIER_NAMES[:impl_best_tier() + 1]


def force_portable(bint on):
    """Tests only: use the portable path even where the hardware path exists."""
    impl_force_portable(on)


def force_implementation(name):
    """Tests and benchmarks only: use path `name` (or the best one when None).

    Raises ValueError for an unknown name or one this CPU cannot run.
    """
    if name is None:
        impl_limit_tier(-1)
        return
    if name not in available():
        raise ValueError(f"crc32c path {name!r} is not available here (have {available()})")
    impl_limit_tier(_TIER_NAMES.index(name))
