"""Pure-Python twin of pybroker_core.crc32c: table-driven CRC-32C (reflected poly 0x82F63B78)."""


def _make_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return tuple(table)


_TABLE = _make_table()


def crc32c(data, crc=0):
    """crc32c(data, crc=0) -> int: CRC-32C of `data`, continuing from `crc` (0 to start)."""
    t = _TABLE
    c = crc ^ 0xFFFFFFFF
    for b in memoryview(data).cast("B"):
        c = t[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def hardware():
    return False


def force_portable(on):
    return None
