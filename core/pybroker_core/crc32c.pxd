# CRC-32C for other compiled modules: `from pybroker_core.crc32c cimport crc32c_update`.
from libc.stdint cimport uint32_t

cdef extern from "crc32c_impl.h":
    uint32_t crc32c_update "pybroker_crc32c_update" (uint32_t crc, const unsigned char* p, size_t n) noexcept nogil
    int crc32c_hw "pybroker_crc32c_hw" () noexcept nogil
    void crc32c_force_portable "pybroker_crc32c_force_portable" (int on) noexcept nogil
    int crc32c_tier "pybroker_crc32c_tier" () noexcept nogil
    int crc32c_best_tier "pybroker_crc32c_best_tier" () noexcept nogil
    void crc32c_limit_tier "pybroker_crc32c_limit_tier" (int tier) noexcept nogil
