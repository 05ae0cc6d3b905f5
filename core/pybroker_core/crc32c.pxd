# CRC-32C for other compiled modules: `from pybroker_core.crc32c cimport crc32c_update`.
#
# These are Cython functions exported by the crc32c extension (Cython's cross-module C-API: the
# cimporting module fetches the function pointers when it imports pybroker_core.crc32c), so a
# cimporting extension needs no copy of crc32c_impl.c and shares its CPU dispatch and test hooks.
from libc.stdint cimport uint32_t

# CRC-32C of p[0:n], continuing from the finished CRC `crc` (0 to start).
cdef uint32_t crc32c_update(uint32_t crc, const unsigned char* p, size_t n) noexcept nogil
# 1 when a hardware path (SSE4.2 or AVX-512) is in use.
cdef int crc32c_hw() noexcept nogil
