"""CRC-32C (Castagnoli) over any contiguous buffer; compiled twin of pybroker/codec/_pure/crc32c.py."""
from libc.stdint cimport uint8_t, uint32_t

from pybroker_core.crc32c cimport crc32c_update, crc32c_hw, crc32c_force_portable


def crc32c(data, uint32_t crc=0):
    """crc32c(data, crc=0) -> int: CRC-32C of `data`, continuing from `crc` (0 to start)."""
    cdef const uint8_t[::1] mv
    if isinstance(data, memoryview) and data.format != "B":
        data = data.cast("B")
    mv = data
    cdef size_t n = mv.shape[0]
    if n == 0:
        return crc
    if n >= 65536:
        with nogil:
            crc = crc32c_update(crc, &mv[0], n)
        return crc
    return crc32c_update(crc, &mv[0], n)


def hardware():
    """True when the CPU's CRC32 instruction path is in use."""
    return bool(crc32c_hw())


def force_portable(bint on):
    """Tests only: use the portable path even where the hardware path exists."""
    crc32c_force_portable(on)
