"""Pure-Python twin of pybroker_core.crc32c: CRC-32C (Castagnoli), the checksum of Kafka record
batches v2 (the `crc` field covers everything from `attributes` to the end of the batch).

The readable specification of the compiled module:
- polynomial 0x1EDC6F41, processed reflected (least significant bit first), i.e. 0x82F63B78;
- the register starts at 0xFFFFFFFF and the result is complemented, so `crc32c(b"") == 0`;
- crc32c(b, crc32c(a)) == crc32c(a + b): passing a finished CRC continues it.
"""
import operator

_POLY = 0x82F63B78  # x^32 + x^28 + x^27 + ... + 1 without its x^32 term, bit-reversed
_MASK = 0xFFFFFFFF


def _make_table():
    """table[b] = register after shifting byte b through eight steps of the bitwise algorithm."""
    table = []
    for byte in range(256):
        c = byte
        for _ in range(8):
            c = (c >> 1) ^ _POLY if c & 1 else c >> 1
        table.append(c)
    return tuple(table)


_TABLE = _make_table()


def _as_bytes(data):
    """The raw bytes of a C-contiguous buffer of any format (BufferError if not contiguous)."""
    view = memoryview(data)
    if not view.c_contiguous:
        raise BufferError("crc32c needs a C-contiguous buffer")
    return view.cast("B") if view.format != "B" or view.ndim != 1 else view


def _check_crc(crc):
    crc = operator.index(crc)
    if not 0 <= crc <= _MASK:
        raise OverflowError(f"crc must be in 0..0xFFFFFFFF, got {crc}")
    return crc


def crc32c(data, crc=0):
    """crc32c(data, crc=0) -> int: CRC-32C of `data`, continuing from `crc` (0 to start).

    `data` is any C-contiguous buffer (bytes, bytearray, memoryview of any format, mmap, array);
    its raw bytes are checksummed. A non-contiguous buffer raises BufferError.
    """
    view = _as_bytes(data)
    table = _TABLE
    register = _check_crc(crc) ^ _MASK
    for byte in view:
        register = table[(register ^ byte) & 0xFF] ^ (register >> 8)
    return register ^ _MASK


def hardware():
    """Always False: this twin is plain Python."""
    return False


def implementation():
    """Name of the path in use; the twin has one."""
    return "python"


def available():
    """Names of the paths that can run here."""
    return ("python",)


def force_portable(on):
    """Tests only: no effect, this twin is always portable."""
    return None


def force_implementation(name):
    """Tests and benchmarks only: `name` must be None or "python" (ValueError otherwise)."""
    if name not in (None, "python"):
        raise ValueError(f"crc32c path {name!r} is not available here (have {available()})")
