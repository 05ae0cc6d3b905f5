"""The record walk shared by the pure-Python validator and cleaner: twin of
core/pybroker_core/record_cursor.pxd (the layout is documented there), plus the record-length
checks each compiled walker keeps for itself (read_record, records). Errors are CursorError
with a kind (a key of REASONS) and the position they are reported at: the start of a bad varint,
the field that does not fit, the record whose length is wrong."""

REASONS = {
    "varint": "truncated or over-long varint",
    "record_length": "record length outside its batch",
    "field": "record field runs past the record's declared length",
    "trailing": "record fields do not fill its declared length",
    "count": "record count does not match the records in the batch",
    "neg_len": "negative length",
}
_M64 = (1 << 64) - 1


class CursorError(Exception):
    def __init__(self, kind, pos):
        super().__init__(kind, pos)
        self.kind, self.pos = kind, pos


class Record:
    __slots__ = ("start", "end", "body_len", "ts_start", "ts_end", "ts_delta", "offset_delta",
                 "key_pos", "key_len", "value_len")

    def key(self, buf):
        """The key's bytes, None for a null key."""
        return None if self.key_len < 0 else bytes(buf[self.key_pos:self.key_pos + self.key_len])


def uvarint(buf, pos, end, max_bytes):
    at, value, shift, n = pos, 0, 0, 0
    while True:
        if pos >= end or n == max_bytes:
            raise CursorError("varint", at)
        b = buf[pos]
        pos += 1
        n += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7


def varint(buf, pos, end):
    u, nxt = uvarint(buf, pos, end, 5)
    if u > 0xFFFFFFFF:
        raise CursorError("varint", pos)
    return (u >> 1) ^ -(u & 1), nxt


def varlong(buf, pos, end):
    u, nxt = uvarint(buf, pos, end, 10)
    u &= _M64
    return (u >> 1) ^ -(u & 1), nxt


def skip(pos, end, n, nullable):
    if n < 0:
        if nullable and n == -1:
            return pos
        raise CursorError("neg_len", pos)
    if n > end - pos:
        raise CursorError("field", pos)
    return pos + n


def read_record(buf, pos, end):
    """(Record, next position) of the record at pos; its fields must fill its declared length."""
    r = Record()
    r.start = pos
    length, pos = varint(buf, pos, end)
    if length < 0 or length > end - pos:
        raise CursorError("record_length", r.start)
    r.body_len = length
    r.end = rend = pos + length
    if pos >= rend:
        raise CursorError("field", pos)
    pos += 1                                          # record attributes
    r.ts_start = pos
    r.ts_delta, pos = varlong(buf, pos, rend)
    r.ts_end = pos
    r.offset_delta, pos = varint(buf, pos, rend)
    r.key_len, pos = varint(buf, pos, rend)
    r.key_pos = pos
    pos = skip(pos, rend, r.key_len, True)
    r.value_len, pos = varint(buf, pos, rend)
    pos = skip(pos, rend, r.value_len, True)
    count, pos = varint(buf, pos, rend)
    if count < 0:
        raise CursorError("neg_len", pos)
    for _ in range(count):
        n, pos = varint(buf, pos, rend)
        pos = skip(pos, rend, n, False)
        n, pos = varint(buf, pos, rend)
        pos = skip(pos, rend, n, True)
    if pos != rend:
        raise CursorError("trailing", r.start)
    return r, pos


def records(buf, start, end, count):
    """The `count` records of buf[start:end], which they must fill exactly."""
    pos = start
    for _ in range(count):
        if pos >= end:
            raise CursorError("count", pos)
        r, pos = read_record(buf, pos, end)
        yield r
    if pos != end:
        raise CursorError("count", pos)
