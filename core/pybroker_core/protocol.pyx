# cython: freethreading_compatible = False
"""Compiled interpreter of message programs (twin of pybroker/codec/_pure/protocol.py).

Each messages.Program is lowered once into a CProgram: a C array of COp per section (fields in
wire order, tagged fields by tag, fields absent from the version). Attributes of the generated
classes are __slots__; their byte offsets are read from the class's member descriptors once,
so objects are allocated with PyType_GenericAlloc and filled by storing into the slots directly
(only for exact instances of the generated class; anything else goes through getattr).

Layouts (big-endian; ../shared/protocol.md section 2):

    struct          := field* [tagged_fields]            tagged section only in flexible versions
    tagged_fields   := uvarint count, (uvarint tag, uvarint size, value[size])*   ascending tags
    STRING          := int16 n (-1 = null), n bytes UTF-8
    COMPACT_STRING  := uvarint n+1 (0 = null), n bytes UTF-8
    BYTES/RECORDS   := int32 n (-1 = null), n bytes         COMPACT_*: uvarint n+1 (0 = null)
    ARRAY           := int32 n (-1 = null), n elements      COMPACT_ARRAY: uvarint n+1 (0 = null)
    nullable STRUCT := int8 marker (< 0 null, else present), struct
                       tagged: uvarint marker (0 null, else present), struct
    UUID            := 16 bytes;  BOOL := 1 byte, non-zero = true

Every length and count is checked against the bytes left (Reader.need / check_count) before
anything is allocated; records decode to memoryview slices of the input (no copy). Like Kafka's
generated code, a string (compact or not) may hold at most 32767 bytes, read or written.
"""
cimport cython
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.list cimport PyList_New, PyList_SET_ITEM
from cpython.long cimport PyLong_Check
from cpython.number cimport PyNumber_Index
from cpython.mem cimport PyMem_Calloc, PyMem_Free
from cpython.object cimport Py_EQ, Py_TYPE, PyObject_RichCompareBool
from cpython.ref cimport Py_DECREF, Py_INCREF, Py_XDECREF
from cpython.unicode cimport PyUnicode_AsUTF8AndSize
from libc.stdint cimport int8_t, int16_t, int32_t, uint8_t, uint32_t, uint64_t
from libc.string cimport memcpy

import types
import uuid as _uuid

from pybroker.codec import messages as _m
from pybroker.codec.errors import DecodeError, EncodeError
from pybroker.codec.messages import FileRegion

__all__ = ["decode", "decode_pair", "decode_request_frame", "decode_struct", "encode",
           "encode_frame", "encode_response_frame", "encode_struct", "peek_key_version"]

cdef extern from "Python.h":
    ctypedef struct PyMemberDef:
        const char* name
        int type
        Py_ssize_t offset
        int flags
    ctypedef struct PyMemberDescrObject:
        PyMemberDef* d_member
    PyObject* PyType_GenericAlloc(PyTypeObject* t, Py_ssize_t nitems) except NULL

cdef int T_OBJECT_EX = 16   # structmember.h: the member type CPython gives every __slots__ entry
cdef int READONLY = 1

cdef tuple ENCODE_ERRORS = (OverflowError, TypeError, ValueError, AttributeError, BufferError)
cdef object MemberDescriptorType = types.MemberDescriptorType
cdef object UUIDType = _uuid.UUID
cdef Py_ssize_t MAX_FRAME = 0x7FFFFFFF
cdef uint32_t MAX_STRING = 0x7FFF   # Kafka caps every string, compact or not, at 32767 bytes


def _check_kinds():
    names = ("BOOL INT8 INT16 UINT16 INT32 UINT32 INT64 FLOAT64 UUID STRING COMPACT_STRING "
             "BYTES COMPACT_BYTES RECORDS COMPACT_RECORDS ARRAY COMPACT_ARRAY STRUCT").split()
    for i, name in enumerate(names, 1):
        if getattr(_m, name) != i:
            raise ImportError(f"pybroker_core.protocol: kind {name} differs from messages.py")


_check_kinds()


# --- slots of the generated classes --------------------------------------------------------

cdef inline PyObject** slot_ptr(object obj, Py_ssize_t off) noexcept:
    return <PyObject**>((<char*><PyObject*>obj) + off)


cdef inline void set_slot(object obj, Py_ssize_t off, object value) noexcept:
    cdef PyObject** p = slot_ptr(obj, off)
    cdef PyObject* old = p[0]
    Py_INCREF(value)
    p[0] = <PyObject*>value
    Py_XDECREF(old)


cdef inline object alloc(ClassInfo ci):
    """A new instance with every slot unset (object.__new__ without the call overhead)."""
    cdef object obj = <object>PyType_GenericAlloc(ci.type, 0)
    Py_DECREF(obj)   # the cast above took a second reference; keep exactly one
    return obj


cdef dict _class_infos = {}


cdef ClassInfo class_info(object cls):
    cdef ClassInfo ci = _class_infos.get(cls)
    if ci is None:
        ci = ClassInfo.__new__(ClassInfo)
        _class_infos[cls] = ci   # registered before fields so self-references terminate
        try:
            ci.setup(cls)
        except BaseException:
            del _class_infos[cls]
            raise
    return ci


cdef Py_ssize_t member_offset(object cls, str attr) except -1:
    descr = cls.__dict__.get(attr)
    if type(descr) is not MemberDescriptorType:
        raise TypeError(f"{cls.__qualname__}.{attr} is not a __slots__ member")
    cdef PyMemberDef* m = (<PyMemberDescrObject*><PyObject*>descr).d_member
    if m.type != T_OBJECT_EX or (m.flags & READONLY) or m.offset <= 0:
        raise TypeError(f"{cls.__qualname__}.{attr} is not a writable object slot")
    return m.offset


@cython.final
cdef class ClassInfo:
    """Slot offsets and defaults of one generated message class."""

    def __dealloc__(self):
        PyMem_Free(self.fields)

    cdef setup(self, object cls):
        if not (isinstance(cls, type) and issubclass(cls, _m.Struct)) \
                or cls.__new__ is not object.__new__:
            raise TypeError(f"{cls!r} is not a generated message class")
        self.cls = cls
        self.type = <PyTypeObject*>cls
        self.keep = [cls]
        self.offsets = {}
        defaults = cls._defaults
        self.n_fields = len(defaults)
        self.fields = <COp*>PyMem_Calloc(max(self.n_fields, 1), sizeof(COp))
        if self.fields == NULL:
            raise MemoryError()
        for i, (attr, value, factory) in enumerate(defaults):
            off = member_offset(cls, attr)
            self.offsets[attr] = off
            self.fields[i].offset = off
            set_default(&self.fields[i], value, factory, self.keep)
        self.unknown_offset = member_offset(cls, "unknown_tagged") \
            if "unknown_tagged" in cls.__slots__ else -1

    cdef object new_default(self):
        """A struct of defaults, like cls() (recursively, without calling __init__)."""
        cdef object obj = alloc(self)
        cdef Py_ssize_t i
        for i in range(self.n_fields):
            set_slot(obj, self.fields[i].offset, new_default(&self.fields[i]))
        if self.unknown_offset >= 0:
            set_slot(obj, self.unknown_offset, None)
        return obj


cdef int set_default(COp* op, object value, object factory, list keep) except -1:
    keep.append(value)
    op.dflt = <PyObject*>value
    op.factory = NULL
    if factory is None:
        op.factory_kind = F_NONE
    elif factory is list:
        op.factory_kind = F_LIST
    elif isinstance(factory, type) and issubclass(factory, _m.Struct):
        sub = class_info(factory)
        keep.append(sub)
        op.factory_kind = F_STRUCT
        op.factory = <PyObject*>sub
    else:
        keep.append(factory)
        op.factory_kind = F_CALL
        op.factory = <PyObject*>factory
    return 0


cdef inline object new_default(COp* op):
    if op.factory_kind == F_NONE:
        return <object>op.dflt
    if op.factory_kind == F_LIST:
        return PyList_New(0)
    if op.factory_kind == F_STRUCT:
        return (<ClassInfo>op.factory).new_default()
    return (<object>op.factory)()


# --- lowering ------------------------------------------------------------------------------

@cython.final
cdef class CProgram:
    """A messages.Program lowered to C arrays (attached to the Program as `native`)."""

    def __dealloc__(self):
        PyMem_Free(self.ops)
        PyMem_Free(self.tagged)
        PyMem_Free(self.absent)

    cdef setup(self, object prog):
        self.prog = prog
        self.info = class_info(prog.cls)
        self.name = prog.name
        self.version = prog.version
        self.flexible = prog.flexible
        self.keep = []
        self.ops = self.lower_ops(prog.ops, &self.n_ops)
        self.tagged = self.lower_ops(prog.tagged, &self.n_tagged)
        self.absent = self.lower_ops(prog.absent, &self.n_absent)

    cdef COp* lower_ops(self, tuple ops, Py_ssize_t* count) except NULL:
        cdef Py_ssize_t n = len(ops)
        cdef COp* out = <COp*>PyMem_Calloc(max(n, 1), sizeof(COp))
        if out == NULL:
            raise MemoryError()
        count[0] = n
        try:
            for i, op in enumerate(ops):
                self.lower_op(&out[i], op)
        except BaseException:
            PyMem_Free(out)
            raise
        return out

    cdef int lower_op(self, COp* c, object op) except -1:
        keep = self.keep
        c.kind = op.kind
        c.elem = op.elem
        c.nullable = op.nullable
        c.ignorable = op.ignorable
        c.elem_size = op.elem_size
        c.tag = op.tag
        c.offset = self.info.offsets[op.attr]
        attr, field = op.attr, op.field
        keep.append(attr)
        keep.append(field)
        c.attr = <PyObject*>attr
        c.field = <PyObject*>field
        set_default(c, op.default, op.factory, keep)
        c.sub = NULL
        if op.sub is not None:
            sub = lower(op.sub)
            keep.append(sub)
            c.sub = <PyObject*>sub
        return 0


cdef CProgram lower(object prog):
    native = prog.native
    if type(native) is CProgram:
        return <CProgram>native
    cdef CProgram cp = CProgram.__new__(CProgram)
    cp.setup(prog)
    prog.native = cp
    return cp


# --- decoding ------------------------------------------------------------------------------

cdef object decode_struct_c(CProgram p, Reader r):
    cdef ClassInfo ci = p.info
    cdef object obj = alloc(ci)
    cdef Py_ssize_t i
    cdef COp* op
    for i in range(p.n_ops):
        op = &p.ops[i]
        set_slot(obj, op.offset, read_value(r, op.kind, op.nullable, op))
    if p.flexible:
        read_tagged(p, r, obj)
    elif ci.unknown_offset >= 0:
        set_slot(obj, ci.unknown_offset, None)
    for i in range(p.n_absent):
        op = &p.absent[i]
        set_slot(obj, op.offset, new_default(op))
    return obj


cdef object null_value(Reader r, bint nullable, COp* op, Py_ssize_t at):
    if not nullable:
        raise DecodeError(f"null in non-nullable field {<object>op.field}", at)
    return None


cdef object read_value(Reader r, int kind, bint nullable, COp* op):
    """One value of `kind` (for arrays: the whole array)."""
    cdef Py_ssize_t at = r.pos
    cdef int32_t n
    cdef uint32_t u
    if kind == K_INT32:
        return r.read_int32()
    elif kind == K_INT64:
        return r.read_int64()
    elif kind == K_INT16:
        return r.read_int16()
    elif kind == K_INT8:
        return r.read_int8()
    elif kind == K_BOOL:
        return r.read_int8() != 0
    elif kind == K_UINT16:
        return r.read_uint16()
    elif kind == K_UINT32:
        return r.read_uint32()
    elif kind == K_FLOAT64:
        return r.read_float64()
    elif kind == K_UUID:
        return r.read_bytes(16)
    elif kind == K_STRING:
        n = r.read_int16()
        return null_value(r, nullable, op, at) if n < 0 else r.read_str(n)
    elif kind == K_COMPACT_STRING:
        u = r.read_uvarint()
        if u == 0:
            return null_value(r, nullable, op, at)
        if u - 1 > MAX_STRING:
            raise DecodeError(f"string length {u - 1} over {MAX_STRING}", at)
        return r.read_str(<Py_ssize_t>u - 1)
    elif kind == K_BYTES:
        n = r.read_int32()
        return null_value(r, nullable, op, at) if n < 0 else r.read_bytes(n)
    elif kind == K_COMPACT_BYTES:
        u = r.read_uvarint()
        return null_value(r, nullable, op, at) if u == 0 else r.read_bytes(<Py_ssize_t>u - 1)
    elif kind == K_RECORDS:
        n = r.read_int32()
        return null_value(r, nullable, op, at) if n < 0 else r.read_slice(n)
    elif kind == K_COMPACT_RECORDS:
        u = r.read_uvarint()
        return null_value(r, nullable, op, at) if u == 0 else r.read_slice(<Py_ssize_t>u - 1)
    elif kind == K_ARRAY:
        n = r.read_int32()
        return null_value(r, nullable, op, at) if n < 0 else read_elements(r, op, n)
    elif kind == K_COMPACT_ARRAY:
        u = r.read_uvarint()
        return null_value(r, nullable, op, at) if u == 0 else \
            read_elements(r, op, <Py_ssize_t>u - 1)
    elif kind == K_STRUCT:
        if nullable:
            if op.tag >= 0:
                if r.read_uvarint() == 0:
                    return None
            elif r.read_int8() < 0:
                return None
        return decode_struct_c(<CProgram>op.sub, r)
    raise AssertionError(f"unknown kind {kind}")


cdef list read_elements(Reader r, COp* op, Py_ssize_t n):
    r.check_count(n, op.elem_size)          # before allocating n slots
    cdef list out = PyList_New(n)
    cdef Py_ssize_t i
    cdef object item
    cdef CProgram sub
    cdef int elem = op.elem
    if elem == K_STRUCT:
        sub = <CProgram>op.sub
        for i in range(n):
            item = decode_struct_c(sub, r)
            Py_INCREF(item)
            PyList_SET_ITEM(out, i, item)
    else:
        for i in range(n):
            item = read_value(r, elem, False, op)
            Py_INCREF(item)
            PyList_SET_ITEM(out, i, item)
    return out


cdef int read_tagged(CProgram p, Reader r, object obj) except -1:
    """tagged_fields := uvarint count, (uvarint tag, uvarint size, value[size])*"""
    cdef uint32_t count = r.read_uvarint()
    cdef uint32_t tag, size, k
    cdef Py_ssize_t start, end, j
    cdef uint64_t seen = 0
    cdef COp* op
    cdef list unknown = None
    r.check_count(count, 2)
    for k in range(count):
        tag = r.read_uvarint()
        size = r.read_uvarint()
        start = r.pos
        if size > r.end - r.pos:
            raise DecodeError(f"tagged field {tag} of {size} bytes, {r.end - r.pos} left", start)
        op = NULL
        for j in range(p.n_tagged):
            if p.tagged[j].tag == tag:
                op = &p.tagged[j]
                break
        if op == NULL:
            if unknown is None:
                unknown = []
            unknown.append((tag, r.read_bytes(size)))
            continue
        end = r.end
        r.end = start + size          # the value may not read past its own window
        try:
            value = read_value(r, op.kind, op.nullable, op)
        finally:
            r.end = end
        r.pos = start + size
        set_slot(obj, op.offset, value)
        seen |= (<uint64_t>1) << j
    for j in range(p.n_tagged):
        if not (seen >> j) & 1:
            set_slot(obj, p.tagged[j].offset, new_default(&p.tagged[j]))
    set_slot(obj, p.info.unknown_offset, unknown)
    return 0


# --- encoding ------------------------------------------------------------------------------

cdef inline object get_field(object obj, COp* op, bint exact):
    cdef PyObject* v
    if exact:
        v = slot_ptr(obj, op.offset)[0]
        if v == NULL:
            raise AttributeError(f"{<object>op.attr} is not set")
        return <object>v
    return getattr(obj, <object>op.attr)


cdef inline object get_optional(object obj, COp* op, bint exact):
    """A field the version lacks or a tagged one: unset means default."""
    cdef PyObject* v
    if exact:
        v = slot_ptr(obj, op.offset)[0]
        return <object>op.dflt if v == NULL else <object>v
    return getattr(obj, <object>op.attr, <object>op.dflt)


cdef int is_default(COp* op, object value) except -1:
    cdef object dflt = <object>op.dflt
    if dflt is None:
        return value is None
    if value is dflt:
        return 1
    if op.factory_kind == F_STRUCT and type(value) is type(dflt):
        return struct_equal(<ClassInfo>op.factory, value, dflt)
    return PyObject_RichCompareBool(value, dflt, Py_EQ)


cdef int struct_equal(ClassInfo ci, object a, object b) except -1:
    """a == b for two instances of ci's class, slot by slot (Struct.__eq__ without the calls)."""
    cdef Py_ssize_t i
    cdef PyObject* x
    cdef PyObject* y
    for i in range(ci.n_fields):
        x = slot_ptr(a, ci.fields[i].offset)[0]
        y = slot_ptr(b, ci.fields[i].offset)[0]
        if x == y:
            continue
        if x == NULL or y == NULL:
            return a == b      # an unset slot: let Struct.__eq__ raise its AttributeError
        if not PyObject_RichCompareBool(<object>x, <object>y, Py_EQ):
            return 0
    if ci.unknown_offset >= 0:
        x = slot_ptr(a, ci.unknown_offset)[0]
        y = slot_ptr(b, ci.unknown_offset)[0]
        ux = <object>x if x != NULL else None
        uy = <object>y if y != NULL else None
        return (ux or None) == (uy or None)
    return 1


cdef int encode_struct_c(CProgram p, object obj, Writer w, list regions) except -1:
    cdef bint exact = Py_TYPE(obj) == p.info.type
    cdef Py_ssize_t i
    cdef COp* op = NULL
    try:
        for i in range(p.n_absent):
            op = &p.absent[i]
            if op.ignorable:
                continue
            value = get_optional(obj, op, exact)
            if not is_default(op, value):
                raise EncodeError(f"{p.name}.{<object>op.field} is not in version {p.version} "
                                  f"and holds a non-default value {value!r}")
        for i in range(p.n_ops):
            op = &p.ops[i]
            write_value(w, op.kind, op.nullable, op, get_field(obj, op, exact), regions)
        op = NULL
        if p.flexible:
            write_tagged(p, obj, exact, w)
        elif p.info.unknown_offset >= 0 and unknown_tags(p, obj, exact):
            raise EncodeError(f"{p.name}: tagged fields are set but version {p.version} "
                              "has none")
    except EncodeError:
        raise
    except ENCODE_ERRORS as exc:
        where = f"{p.name}.{<object>op.field}" if op != NULL else p.name
        raise EncodeError(f"cannot write {where} (v{p.version}): {exc}") from exc
    return 0


cdef inline int write_raw(Writer w, const char* data, Py_ssize_t n) except -1:
    if n:
        w.grow(n)
        memcpy(w.buf + w.length, data, n)
        w.length += n
    return 0


cdef int write_null(Writer w, int kind) except -1:
    if kind == K_STRING:
        return w.write_int16(-1)
    if kind == K_BYTES or kind == K_RECORDS or kind == K_ARRAY:
        return w.write_int32(-1)
    if kind == K_COMPACT_STRING or kind == K_COMPACT_BYTES or kind == K_COMPACT_RECORDS \
            or kind == K_COMPACT_ARRAY:
        return w.write_uvarint(0)
    raise TypeError("null is not a value of a fixed-size type")


cdef int write_value(Writer w, int kind, bint nullable, COp* op, object value,
                     list regions) except -1:
    if value is None and kind != K_STRUCT:
        if not nullable:
            raise EncodeError(f"null in non-nullable field {<object>op.field}")
        return write_null(w, kind)
    if kind == K_INT32:
        return w.write_int32(as_int(value))
    elif kind == K_INT64:
        return w.write_int64(as_int(value))
    elif kind == K_INT16:
        return w.write_int16(as_int(value))
    elif kind == K_INT8:
        return w.write_int8(as_int(value))
    elif kind == K_BOOL:
        return w.write_int8(1 if value else 0)
    elif kind == K_UINT16:
        return w.write_uint16(as_int(value))
    elif kind == K_UINT32:
        return w.write_uint32(as_int(value))
    elif kind == K_FLOAT64:
        return w.write_float64(value)
    elif kind == K_UUID:
        return write_uuid(w, value)
    elif kind == K_STRING or kind == K_COMPACT_STRING:
        return write_string(w, value, kind == K_COMPACT_STRING)
    elif kind == K_BYTES or kind == K_COMPACT_BYTES:
        return write_bytes(w, value, kind == K_COMPACT_BYTES)
    elif kind == K_RECORDS or kind == K_COMPACT_RECORDS:
        if isinstance(value, FileRegion):
            return write_region(w, op, value, kind == K_COMPACT_RECORDS, regions)
        return write_bytes(w, value, kind == K_COMPACT_RECORDS)
    elif kind == K_ARRAY or kind == K_COMPACT_ARRAY:
        return write_array(w, op, value, kind == K_COMPACT_ARRAY, regions)
    elif kind == K_STRUCT:
        if nullable:
            if value is None:
                return w.write_uvarint(0) if op.tag >= 0 else w.write_int8(-1)
            if op.tag >= 0:
                w.write_uvarint(1)
            else:
                w.write_int8(1)
        elif value is None:
            raise EncodeError(f"null in non-nullable field {<object>op.field}")
        return encode_struct_c(<CProgram>op.sub, value, w, regions)
    raise AssertionError(f"unknown kind {kind}")


cdef inline object as_int(object value):
    """An int, or anything with __index__ (never a float: as struct.pack in the twin)."""
    if PyLong_Check(value):
        return value
    return PyNumber_Index(value)


cdef int write_string(Writer w, object value, bint compact) except -1:
    cdef Py_ssize_t n
    cdef const char* data
    if not isinstance(value, str):
        raise TypeError(f"expected str, got {type(value).__name__}")
    data = PyUnicode_AsUTF8AndSize(value, &n)
    if n > MAX_STRING:
        raise ValueError(f"string of {n} bytes is longer than {MAX_STRING}")
    if compact:
        w.write_uvarint(<uint32_t>(n + 1))
    else:
        w.write_int16(<int16_t>n)
    return write_raw(w, data, n)


cdef int write_bytes(Writer w, object value, bint compact) except -1:
    cdef Py_buffer view
    if type(value) is bytes:
        return write_len_data(w, PyBytes_AS_STRING(value), PyBytes_GET_SIZE(value), compact)
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise TypeError(f"expected bytes, bytearray or memoryview, got {type(value).__name__}")
    PyObject_GetBuffer(value, &view, PyBUF_SIMPLE)   # BufferError if not contiguous
    try:
        write_len_data(w, <const char*>view.buf, view.len, compact)
    finally:
        PyBuffer_Release(&view)
    return 0


cdef int write_len_data(Writer w, const char* data, Py_ssize_t n, bint compact) except -1:
    if n > 0x7FFFFFFE:
        raise ValueError(f"{n} bytes is too long")
    if compact:
        w.write_uvarint(<uint32_t>(n + 1))
    else:
        w.write_int32(<int32_t>n)
    return write_raw(w, data, n)


cdef int write_region(Writer w, COp* op, object region, bint compact, list regions) except -1:
    if regions is None:
        raise EncodeError(f"{<object>op.field}: a FileRegion needs encode_frame(..., parts=True) "
                          "and cannot sit in a tagged field")
    size = region.size
    if compact:
        w.write_uvarint(size + 1)
    else:
        w.write_int32(size)
    regions.append((w.length, region))
    return 0


cdef int write_uuid(Writer w, object value) except -1:
    cdef Py_buffer view
    if isinstance(value, UUIDType):
        value = value.bytes
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise TypeError(f"expected 16 bytes or uuid.UUID, got {type(value).__name__}")
    PyObject_GetBuffer(value, &view, PyBUF_SIMPLE)
    try:
        if view.len != 16:
            raise ValueError(f"a uuid is 16 bytes, got {view.len}")
        write_raw(w, <const char*>view.buf, 16)
    finally:
        PyBuffer_Release(&view)
    return 0


cdef int write_array(Writer w, COp* op, object value, bint compact, list regions) except -1:
    cdef list items
    cdef Py_ssize_t i, n
    cdef CProgram sub
    cdef int elem = op.elem
    if type(value) is list:
        items = <list>value
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise TypeError(f"expected a list, got {type(value).__name__}")
    n = len(items)
    if compact:
        w.write_uvarint(<uint32_t>(n + 1))
    else:
        w.write_int32(<int32_t>n)
    if elem == K_STRUCT:
        sub = <CProgram>op.sub
        for i in range(n):
            item = items[i]
            if item is None:
                raise EncodeError(f"null element in {<object>op.field}")
            encode_struct_c(sub, item, w, regions)
    else:
        for i in range(n):
            write_value(w, elem, False, op, items[i], regions)
    return 0


cdef int write_tagged(CProgram p, object obj, bint exact, Writer w) except -1:
    """Known tagged fields that differ from their default, and unknown ones, by tag."""
    cdef uint64_t present = 0
    cdef Py_ssize_t i, j, count = 0
    cdef COp* op
    for j in range(p.n_tagged):           # pass 1: which differ from their default
        op = &p.tagged[j]
        if not is_default(op, get_optional(obj, op, exact)):
            present |= (<uint64_t>1) << j
            count += 1
    unknown = unknown_tags(p, obj, exact) if p.info.unknown_offset >= 0 else None
    if not unknown:                        # pass 2: write them (no allocation when none)
        w.write_uvarint(<uint32_t>count)
        for j in range(p.n_tagged):
            if (present >> j) & 1:
                op = &p.tagged[j]
                write_tagged_value(w, op, op.tag, get_optional(obj, op, exact))
        return 0
    items = []
    for j in range(p.n_tagged):
        if (present >> j) & 1:
            op = &p.tagged[j]
            items.append((op.tag, j, get_optional(obj, op, exact)))
    for entry in unknown:
        tag, data = entry
        if not isinstance(tag, int) or tag < 0 or tag > 0xFFFFFFFF:
            raise EncodeError(f"{p.name}: bad unknown tag {tag!r}")
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"unknown tagged data must be bytes, got {type(data).__name__}")
        items.append((tag, -1, data))
    items.sort(key=_first)
    for i in range(1, len(items)):
        if items[i - 1][0] == items[i][0]:
            raise EncodeError(f"{p.name}: tag {items[i][0]} written twice")
    w.write_uvarint(<uint32_t>len(items))
    for tag, j, value in items:
        if j < 0:
            w.write_uvarint(tag)
            write_unknown(w, value)
        else:
            write_tagged_value(w, &p.tagged[j], tag, value)
    return 0


cdef object unknown_tags(CProgram p, object obj, bint exact):
    cdef PyObject* u
    if exact:
        u = slot_ptr(obj, p.info.unknown_offset)[0]
        return <object>u if u != NULL else None
    return getattr(obj, "unknown_tagged", None)


def _first(item):
    return item[0]


cdef int write_unknown(Writer w, object data) except -1:
    cdef Py_buffer view
    PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
    try:
        w.write_uvarint(<uint32_t>view.len)
        write_raw(w, <const char*>view.buf, view.len)
    finally:
        PyBuffer_Release(&view)
    return 0


cdef int write_tagged_value(Writer w, COp* op, uint64_t tag, object value) except -1:
    cdef Writer scratch = Writer(64)
    write_value(scratch, op.kind, op.nullable, op, value, None)
    w.write_uvarint(<uint32_t>tag)
    w.write_uvarint(<uint32_t>scratch.length)
    return write_raw(w, scratch.buf, scratch.length)


# --- the module API (same names as the pure twin) ------------------------------------------

def decode_struct(prog, Reader r):
    """Read one struct of `prog` from Reader r (advancing it) and return the typed object."""
    return decode_struct_c(lower(prog), r)


def encode_struct(prog, obj, Writer w, list regions=None):
    """Write `obj` as struct `prog` to Writer w. `regions` collects (offset, FileRegion)."""
    encode_struct_c(lower(prog), obj, w, regions)


def decode(prog, buf):
    """Decode one struct from the start of `buf` (trailing bytes are ignored)."""
    return decode_struct_c(lower(prog), Reader(buf))


def decode_pair(first, second, buf):
    """Decode two consecutive structs (a header and a body) from `buf`."""
    cdef Reader r = Reader(buf)
    a = decode_struct_c(lower(first), r)
    return a, decode_struct_c(lower(second), r)


def peek_key_version(buf):
    """(api key, api version) of a request frame (the bytes after the size prefix)."""
    cdef int16_t key, version
    read_key_version(buf, &key, &version)
    return key, version


cdef int read_key_version(object buf, int16_t* key, int16_t* version) except -1:
    """request header := int16 api_key, int16 api_version, ... (read without a Reader)."""
    cdef Py_buffer view
    cdef const uint8_t* p
    cdef Py_ssize_t n
    if type(buf) is bytes:
        p = <const uint8_t*>PyBytes_AS_STRING(buf)
        n = PyBytes_GET_SIZE(buf)
        if n < 4:
            short_header(n)
        key[0] = <int16_t>((p[0] << 8) | p[1])
        version[0] = <int16_t>((p[2] << 8) | p[3])
        return 0
    PyObject_GetBuffer(buf, &view, PyBUF_SIMPLE)
    try:
        if view.len < 4:
            short_header(view.len)
        p = <const uint8_t*>view.buf
        key[0] = <int16_t>((p[0] << 8) | p[1])
        version[0] = <int16_t>((p[2] << 8) | p[3])
    finally:
        PyBuffer_Release(&view)
    return 0


cdef int short_header(Py_ssize_t n) except -1:
    """The error a Reader gives on the int16 that does not fit (same position as the twin)."""
    cdef Py_ssize_t at = 0 if n < 2 else 2
    raise DecodeError(f"need 2 bytes, {n - at} left", at)


def decode_request_frame(dict table, buf):
    """(header, body) of a request frame using table[(api_key, api_version)] = (header program,
    body program); None when the table has no entry (the caller fills it or rejects the key)."""
    cdef int16_t key, version
    read_key_version(buf, &key, &version)
    entry = table.get((key, version))
    if entry is None:
        return None
    cdef Reader r = Reader(buf)
    header = decode_struct_c(lower((<tuple>entry)[0]), r)
    return header, decode_struct_c(lower((<tuple>entry)[1]), r)


def encode_response_frame(header_prog, int32_t correlation_id, body_prog, body, bint parts=False):
    """encode_frame with a response header of defaults and `correlation_id`, built here."""
    cdef CProgram hp = lower(header_prog)
    header = hp.info.new_default()
    set_slot(header, hp.info.offsets["correlation_id"], correlation_id)
    return encode_frame(header_prog, header, body_prog, body, parts)


def encode(prog, obj):
    """The bytes of one struct."""
    cdef Writer w = Writer()
    encode_struct_c(lower(prog), obj, w, None)
    return w.getvalue()


def encode_frame(header_prog, header, body_prog, body, bint parts=False):
    """int32 size + header + body. With parts=True: a list of bytes and FileRegion parts
    (records that are FileRegions are not copied); the size prefix counts every part."""
    cdef Writer w = Writer(512)
    cdef list regions = [] if parts else None
    cdef Py_ssize_t size
    w.write_int32(0)
    encode_struct_c(lower(header_prog), header, w, regions)
    encode_struct_c(lower(body_prog), body, w, regions)
    size = w.length - 4
    if regions:
        for _, region in regions:
            size += <Py_ssize_t>region.size
    if size > MAX_FRAME:
        raise EncodeError(f"frame of {size} bytes is too large")
    w.patch_int32(0, <int32_t>size)
    data = w.getvalue()
    if not parts:
        return data
    out, prev = [], 0
    for at, region in regions:
        out.append(data[prev:at])
        out.append(region)
        prev = at
    out.append(data[prev:])
    return out
