"""Pure-Python twin of pybroker_core.protocol: the interpreter of message programs.

A program (pybroker/codec/messages.py) lists one struct version's fields in wire order. This
module is the readable specification of how each kind is read and written; the Cython module
does exactly the same with C structs. Layouts (big-endian; see ../shared/protocol.md section 2):

    struct          := field* [tagged_fields]            tagged section only in flexible versions
    tagged_fields   := uvarint count, (uvarint tag, uvarint size, value[size])*   ascending tags
    STRING          := int16 n (-1 = null), n bytes UTF-8
    COMPACT_STRING  := uvarint n+1 (0 = null), n bytes UTF-8
    BYTES/RECORDS   := int32 n (-1 = null), n bytes         COMPACT_*: uvarint n+1 (0 = null)
    ARRAY           := int32 n (-1 = null), n elements      COMPACT_ARRAY: uvarint n+1 (0 = null)
    nullable STRUCT := int8 marker (< 0 null, else present), struct
                       tagged: uvarint marker (0 null, else present), struct
    UUID            := 16 bytes;  BOOL := 1 byte, non-zero = true

Like Kafka's generated code, a string (compact or not) holds at most 32767 bytes.

Decoding: every length and count is checked against the bytes left before anything is allocated
(`Reader.check_count`); a tagged value is decoded inside its own window and the reader then moves
to the window's end; unknown tags are kept as (tag, bytes) in `unknown_tagged`; fields absent
from the version get their default. Bytes after the struct are left alone (Kafka ignores
trailing bytes after a request body; the caller decides).

Encoding: a non-default value in a field the version lacks raises EncodeError unless the field is
ignorable; tagged fields are written only when they differ from their default, merged with
`unknown_tagged` in tag order (non-empty `unknown_tagged` in a version without tagged fields is
an EncodeError, as in Kafka). A `FileRegion` in a records field becomes a separate part
(`encode_frame(..., parts=True)`), for sendfile.
"""
import struct
import uuid as _uuid

from pybroker.codec._pure.buffer import Reader, Writer
from pybroker.codec.errors import DecodeError, EncodeError
from pybroker.codec.messages import (ARRAY, BOOL, BYTES, COMPACT_ARRAY, COMPACT_BYTES,
                                     COMPACT_RECORDS, COMPACT_STRING, FLOAT64, INT8, INT16,
                                     INT32, INT64, RECORDS, STRING, STRUCT, UINT16, UINT32, UUID,
                                     FileRegion)

__all__ = ["decode", "decode_pair", "decode_request_frame", "decode_struct", "encode",
           "encode_frame", "encode_response_frame", "encode_struct", "peek_key_version"]

_ENCODE_ERRORS = (struct.error, OverflowError, TypeError, ValueError, AttributeError,
                  BufferError)
_MAX_FRAME = 0x7FFFFFFF
MAX_STRING = 0x7FFF   # Kafka caps every string, compact or not, at 32767 bytes (read and write)


# --- decoding ----------------------------------------------------------------------------------

def decode_struct(prog, r):
    """Read one struct of `prog` from Reader r (advancing it) and return the typed object."""
    obj = object.__new__(prog.cls)
    for op in prog.ops:
        setattr(obj, op.attr, _read_value(r, op.kind, op))
    if prog.flexible:
        _read_tagged(prog, r, obj)
    elif prog.has_unknown:
        obj.unknown_tagged = None
    for op in prog.absent:
        setattr(obj, op.attr, op.new_default())
    return obj


def _null(r, op, at):
    if not op.nullable:
        raise DecodeError(f"null in non-nullable field {op.field}", at)
    return None


def _read_value(r, kind, op):
    """One value of `kind`; `op` supplies nullability, sub-program and field name."""
    return _READERS[kind](r, op)


def _read_string(r, op):
    at = r.pos
    n = r.read_int16()
    return _null(r, op, at) if n < 0 else r.read_str(n)


def _read_compact_string(r, op):
    at = r.pos
    n = r.read_uvarint()
    if n == 0:
        return _null(r, op, at)
    if n - 1 > MAX_STRING:
        raise DecodeError(f"string length {n - 1} over {MAX_STRING}", at)
    return r.read_str(n - 1)


def _read_bytes(r, op):
    at = r.pos
    n = r.read_int32()
    return _null(r, op, at) if n < 0 else r.read_bytes(n)


def _read_compact_bytes(r, op):
    at = r.pos
    n = r.read_uvarint()
    return _null(r, op, at) if n == 0 else r.read_bytes(n - 1)


def _read_records(r, op):
    at = r.pos
    n = r.read_int32()
    return _null(r, op, at) if n < 0 else r.read_slice(n)   # zero-copy view of the input


def _read_compact_records(r, op):
    at = r.pos
    n = r.read_uvarint()
    return _null(r, op, at) if n == 0 else r.read_slice(n - 1)


def _read_array(r, op):
    at = r.pos
    n = r.read_int32()
    return _null(r, op, at) if n < 0 else _read_elements(r, op, n)


def _read_compact_array(r, op):
    at = r.pos
    n = r.read_uvarint()
    return _null(r, op, at) if n == 0 else _read_elements(r, op, n - 1)


def _read_elements(r, op, n):
    r.check_count(n, op.elem_size)
    if op.elem == STRUCT:
        sub = op.sub
        return [decode_struct(sub, r) for _ in range(n)]
    read = _READERS[op.elem]
    return [read(r, _ELEMENT) for _ in range(n)]


def _read_struct(r, op):
    if op.nullable:
        if op.tag >= 0:
            if r.read_uvarint() == 0:
                return None
        elif r.read_int8() < 0:
            return None
    return decode_struct(op.sub, r)


def _read_uuid(r, op):
    return r.read_bytes(16)


_READERS = {
    BOOL: lambda r, op: r.read_int8() != 0,
    INT8: lambda r, op: r.read_int8(),
    INT16: lambda r, op: r.read_int16(),
    UINT16: lambda r, op: r.read_uint16(),
    INT32: lambda r, op: r.read_int32(),
    UINT32: lambda r, op: r.read_uint32(),
    INT64: lambda r, op: r.read_int64(),
    FLOAT64: lambda r, op: r.read_float64(),
    UUID: _read_uuid,
    STRING: _read_string, COMPACT_STRING: _read_compact_string,
    BYTES: _read_bytes, COMPACT_BYTES: _read_compact_bytes,
    RECORDS: _read_records, COMPACT_RECORDS: _read_compact_records,
    ARRAY: _read_array, COMPACT_ARRAY: _read_compact_array,
    STRUCT: _read_struct,
}


class _ElementOp:
    """Array elements are never null."""
    nullable = False
    field = "array element"


_ELEMENT = _ElementOp()


def _read_tagged(prog, r, obj):
    """tagged_fields := uvarint count, (uvarint tag, uvarint size, value[size])*"""
    count = r.read_uvarint()
    r.check_count(count, 2)
    seen = set()
    unknown = None
    for _ in range(count):
        tag = r.read_uvarint()
        size = r.read_uvarint()
        start = r.pos
        if size > r.remaining():
            raise DecodeError(f"tagged field {tag} of {size} bytes, {r.remaining()} left", start)
        op = prog.by_tag.get(tag)
        if op is None:
            if unknown is None:
                unknown = []
            unknown.append((tag, r.read_bytes(size)))
            continue
        end = r.end
        r.end = start + size          # the value may not read past its own window
        try:
            value = _read_value(r, op.kind, op)
        finally:
            r.end = end
        r.pos = start + size
        setattr(obj, op.attr, value)
        seen.add(tag)
    for op in prog.tagged:
        if op.tag not in seen:
            setattr(obj, op.attr, op.new_default())
    obj.unknown_tagged = unknown


def decode(prog, buf):
    """Decode one struct from the start of `buf` (trailing bytes are ignored)."""
    return decode_struct(prog, Reader(buf))


def decode_pair(first, second, buf):
    """Decode two consecutive structs (a header and a body) from `buf`."""
    r = Reader(buf)
    a = decode_struct(first, r)
    return a, decode_struct(second, r)


def peek_key_version(buf):
    """(api key, api version) of a request frame (the bytes after the size prefix)."""
    r = Reader(buf)
    return r.read_int16(), r.read_int16()


def decode_request_frame(table, buf):
    """(header, body) of a request frame using table[(api_key, api_version)] = (header program,
    body program); None when the table has no entry (the caller fills it or rejects the key)."""
    entry = table.get(peek_key_version(buf))
    if entry is None:
        return None
    return decode_pair(entry[0], entry[1], buf)


def encode_response_frame(header_prog, correlation_id, body_prog, body, parts=False):
    """encode_frame with a response header of defaults and `correlation_id`."""
    if not -2**31 <= correlation_id < 2**31:
        raise OverflowError(f"correlation id {correlation_id} out of int32 range")
    header = header_prog.cls(correlation_id=correlation_id)
    return encode_frame(header_prog, header, body_prog, body, parts)


# --- encoding ----------------------------------------------------------------------------------

def encode_struct(prog, obj, w, regions=None):
    """Write `obj` as struct `prog` to Writer w. `regions` collects (offset, FileRegion)."""
    op = None
    try:
        for op in prog.checks:
            value = getattr(obj, op.attr, op.default)
            if not _is_default(op, value):
                raise EncodeError(f"{prog.name}.{op.field} is not in version {prog.version} "
                                  f"and holds a non-default value {value!r}")
        for op in prog.ops:
            _write_value(w, op.kind, op, getattr(obj, op.attr), regions)
        op = None
        if prog.flexible:
            _write_tagged(prog, obj, w)
        elif prog.has_unknown and getattr(obj, "unknown_tagged", None):
            raise EncodeError(f"{prog.name}: tagged fields are set but version {prog.version} "
                              "has none")
    except EncodeError:
        raise
    except _ENCODE_ERRORS as exc:
        where = f"{prog.name}.{op.field}" if op is not None else prog.name
        raise EncodeError(f"cannot write {where} (v{prog.version}): {exc}") from exc


def _is_default(op, value):
    default = op.default
    if default is None:
        return value is None
    return value is default or value == default


def _write_value(w, kind, op, value, regions):
    if value is None and kind != STRUCT:
        if not op.nullable:
            raise EncodeError(f"null in non-nullable field {op.field}")
        _NULL_WRITERS[kind](w)
        return
    _WRITERS[kind](w, op, value, regions)


def _utf8(value):
    if not isinstance(value, str):
        raise TypeError(f"expected str, got {type(value).__name__}")
    data = value.encode("utf-8")
    if len(data) > MAX_STRING:
        raise ValueError(f"string of {len(data)} bytes is longer than {MAX_STRING}")
    return data


def _write_string(w, op, value, regions):
    data = _utf8(value)
    w.write_int16(len(data))
    w.write(data)


def _write_compact_string(w, op, value, regions):
    data = _utf8(value)
    w.write_uvarint(len(data) + 1)
    w.write(data)


def _as_buffer(value):
    if isinstance(value, (bytes, bytearray, memoryview)):
        mv = memoryview(value)
        if not mv.c_contiguous:
            raise BufferError("a non-contiguous buffer cannot be written")
        return mv if mv.format == "B" and mv.ndim == 1 else mv.cast("B")
    raise TypeError(f"expected bytes, bytearray or memoryview, got {type(value).__name__}")


def _write_bytes(w, op, value, regions):
    data = _as_buffer(value)
    w.write_int32(len(data))
    w.write(data)


def _write_compact_bytes(w, op, value, regions):
    data = _as_buffer(value)
    w.write_uvarint(len(data) + 1)
    w.write(data)


def _write_records(w, op, value, regions, compact=False):
    if isinstance(value, FileRegion):
        if regions is None:
            raise EncodeError(f"{op.field}: a FileRegion needs encode_frame(..., parts=True) "
                              "and cannot sit in a tagged field")
        if compact:
            w.write_uvarint(value.size + 1)
        else:
            w.write_int32(value.size)
        regions.append((w.tell(), value))
        return
    (_write_compact_bytes if compact else _write_bytes)(w, op, value, regions)


def _write_array(w, op, value, regions, compact=False):
    if not isinstance(value, (list, tuple)):
        raise TypeError(f"expected a list, got {type(value).__name__}")
    if compact:
        w.write_uvarint(len(value) + 1)
    else:
        w.write_int32(len(value))
    if op.elem == STRUCT:
        for item in value:
            if item is None:
                raise EncodeError(f"null element in {op.field}")
            encode_struct(op.sub, item, w, regions)
        return
    kind = op.elem
    for item in value:
        _write_value(w, kind, _ELEMENT, item, regions)


def _write_struct(w, op, value, regions):
    if op.nullable:
        marker = w.write_uvarint if op.tag >= 0 else w.write_int8
        if value is None:
            marker(0 if op.tag >= 0 else -1)
            return
        marker(1)
    elif value is None:
        raise EncodeError(f"null in non-nullable field {op.field}")
    encode_struct(op.sub, value, w, regions)


def _write_uuid(w, op, value, regions):
    if isinstance(value, _uuid.UUID):
        value = value.bytes
    data = _as_buffer(value)
    if len(data) != 16:
        raise ValueError(f"a uuid is 16 bytes, got {len(data)}")
    w.write(data)


_WRITERS = {
    BOOL: lambda w, op, v, rg: w.write_int8(1 if v else 0),
    INT8: lambda w, op, v, rg: w.write_int8(v),
    INT16: lambda w, op, v, rg: w.write_int16(v),
    UINT16: lambda w, op, v, rg: w.write_uint16(v),
    INT32: lambda w, op, v, rg: w.write_int32(v),
    UINT32: lambda w, op, v, rg: w.write_uint32(v),
    INT64: lambda w, op, v, rg: w.write_int64(v),
    FLOAT64: lambda w, op, v, rg: w.write_float64(v),
    UUID: _write_uuid,
    STRING: _write_string, COMPACT_STRING: _write_compact_string,
    BYTES: _write_bytes, COMPACT_BYTES: _write_compact_bytes,
    RECORDS: _write_records,
    COMPACT_RECORDS: lambda w, op, v, rg: _write_records(w, op, v, rg, compact=True),
    ARRAY: _write_array,
    COMPACT_ARRAY: lambda w, op, v, rg: _write_array(w, op, v, rg, compact=True),
    STRUCT: _write_struct,
}

_NULL_WRITERS = {
    STRING: lambda w: w.write_int16(-1), COMPACT_STRING: lambda w: w.write_uvarint(0),
    BYTES: lambda w: w.write_int32(-1), COMPACT_BYTES: lambda w: w.write_uvarint(0),
    RECORDS: lambda w: w.write_int32(-1), COMPACT_RECORDS: lambda w: w.write_uvarint(0),
    ARRAY: lambda w: w.write_int32(-1), COMPACT_ARRAY: lambda w: w.write_uvarint(0),
}


def _write_tagged(prog, obj, w):
    """Known tagged fields that differ from their default, and unknown ones, by tag."""
    items = []
    for op in prog.tagged:
        value = getattr(obj, op.attr, op.default)
        if not _is_default(op, value):
            items.append((op.tag, op, value))
    unknown = getattr(obj, "unknown_tagged", None) if prog.has_unknown else None
    if unknown:
        for entry in unknown:
            tag, data = entry
            if not isinstance(tag, int) or tag < 0 or tag > 0xFFFFFFFF:
                raise EncodeError(f"{prog.name}: bad unknown tag {tag!r}")
            items.append((tag, None, _as_buffer(data)))
        items.sort(key=lambda item: item[0])
        for a, b in zip(items, items[1:]):
            if a[0] == b[0]:
                raise EncodeError(f"{prog.name}: tag {a[0]} written twice")
    w.write_uvarint(len(items))
    for tag, op, value in items:
        if op is None:
            data = value
        else:
            scratch = Writer()
            _write_value(scratch, op.kind, op, value, None)
            data = scratch.getvalue()
        w.write_uvarint(tag)
        w.write_uvarint(len(data))
        w.write(data)


def encode(prog, obj):
    """The bytes of one struct."""
    w = Writer()
    encode_struct(prog, obj, w, None)
    return w.getvalue()


def encode_frame(header_prog, header, body_prog, body, parts=False):
    """int32 size + header + body. With parts=True: a list of bytes and FileRegion parts
    (records that are FileRegions are not copied); the size prefix counts every part."""
    w = Writer()
    w.write_int32(0)
    regions = [] if parts else None
    encode_struct(header_prog, header, w, regions)
    encode_struct(body_prog, body, w, regions)
    size = w.tell() - 4 + (sum(region.size for _, region in regions) if regions else 0)
    if size > _MAX_FRAME:
        raise EncodeError(f"frame of {size} bytes is too large")
    w.patch_int32(0, size)
    data = w.getvalue()
    return _split(data, regions) if parts else data


def _split(data, regions):
    out, prev = [], 0
    for at, region in regions:
        out.append(data[prev:at])
        out.append(region)
        prev = at
    out.append(data[prev:])
    return out
