# The compiled interpreter of message programs (pybroker/codec/messages.py); twin of
# pybroker/codec/_pure/protocol.py. Other Cython modules may cimport decode_struct_c /
# encode_struct_c to run a program on their own Reader/Writer.
from cpython.object cimport PyObject, PyTypeObject
from libc.stdint cimport int64_t
from pybroker_core.buffer cimport Reader, Writer


cdef enum Kind:            # must equal the constants in pybroker/codec/messages.py (checked)
    K_BOOL = 1
    K_INT8 = 2
    K_INT16 = 3
    K_UINT16 = 4
    K_INT32 = 5
    K_UINT32 = 6
    K_INT64 = 7
    K_FLOAT64 = 8
    K_UUID = 9
    K_STRING = 10
    K_COMPACT_STRING = 11
    K_BYTES = 12
    K_COMPACT_BYTES = 13
    K_RECORDS = 14
    K_COMPACT_RECORDS = 15
    K_ARRAY = 16
    K_COMPACT_ARRAY = 17
    K_STRUCT = 18


cdef enum FactoryKind:     # how a fresh default value is made
    F_NONE = 0             # share `dflt` (immutable)
    F_LIST = 1             # a new empty list
    F_STRUCT = 2           # a new struct of defaults (`factory` is its ClassInfo)
    F_CALL = 3             # call `factory`


# One field of one struct version, lowered from messages.Op. The PyObject* members are borrowed;
# the owning ClassInfo/CProgram keeps them alive in its `keep` list.
cdef struct COp:
    int kind
    int elem
    bint nullable
    bint ignorable
    int factory_kind
    Py_ssize_t elem_size
    Py_ssize_t offset      # byte offset of the attribute's slot in instances of the class
    int64_t tag
    PyObject* attr
    PyObject* field
    PyObject* dflt
    PyObject* factory
    PyObject* sub          # CProgram of a struct / struct element, or NULL


cdef class ClassInfo:
    cdef object cls
    cdef PyTypeObject* type
    cdef Py_ssize_t n_fields
    cdef COp* fields       # attr, offset, dflt, factory of every field of the class
    cdef Py_ssize_t unknown_offset   # slot of `unknown_tagged`, -1 if the class has none
    cdef dict offsets      # attr -> slot offset
    cdef list keep
    cdef setup(self, object cls)
    cdef object new_default(self)


cdef class CProgram:
    cdef readonly object prog
    cdef ClassInfo info
    cdef object name
    cdef int version
    cdef bint flexible
    cdef Py_ssize_t n_ops, n_tagged, n_absent
    cdef COp* ops
    cdef COp* tagged
    cdef COp* absent
    cdef list keep
    cdef setup(self, object prog)
    cdef COp* lower_ops(self, tuple ops, Py_ssize_t* count) except NULL
    cdef int lower_op(self, COp* c, object op) except -1


cdef CProgram lower(object prog)
cdef object decode_struct_c(CProgram p, Reader r)
cdef int encode_struct_c(CProgram p, object obj, Writer w, list regions) except -1
