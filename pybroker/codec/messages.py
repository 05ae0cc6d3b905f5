"""Typed message classes and per-version codec programs, built from our protocol definitions.

Two things come out of `pybroker/protocol/defs/*.txt` (parsed by `pybroker.protocol.schema`):

* **Typed classes**, one per struct: `ProduceRequest`, `ProduceRequest.TopicProduceData`,
  `ProduceRequest.PartitionProduceData`, `RequestHeader`, `ConsumerProtocolSubscription`, ...
  Attributes are Kafka's field names in snake_case, the union over every version of the message;
  `__slots__` only; keyword-only constructor whose defaults are the spec's (numbers, bools,
  strings, `None` for "null", `[]` for arrays, `ZERO_UUID`, a struct of defaults for a
  non-nullable struct). Structs of flexible messages also have `unknown_tagged`: `None`, or a
  list of `(tag, bytes)` for tagged fields this definition does not know (kept on decode and
  written back, in tag order, on encode). Classes compare by value (`==`) and print readably.

      from pybroker.codec.messages import ProduceRequest
      req = ProduceRequest(acks=-1, timeout_ms=30000,
                           topic_data=[ProduceRequest.TopicProduceData(name="t", partition_data=[
                               ProduceRequest.PartitionProduceData(index=0, records=batch)])])

* **Programs**, one per (struct, version), compiled on first use and cached: the fields of that
  version in wire order as `Op`s (type, attribute, nullability, element type or sub-program,
  default), the tagged-field section (`tagged`, sorted by tag) and the fields absent from that
  version (`absent`: the decoder gives them their default; the encoder refuses a non-default value
  in one that is not `ignorable`). The two interpreters — `pybroker_core.protocol` (Cython) and
  `pybroker/codec/_pure/protocol.py` — run the same programs.

Value representation:
  int8..int64, uint16, uint32 -> int; float64 -> float; bool -> bool; string -> str (UTF-8);
  bytes -> bytes (a copy); records -> memoryview slice of the input buffer (zero-copy; keep the
  frame alive as long as you use it; encode accepts bytes/bytearray/memoryview/None or a
  `FileRegion`); uuid -> 16-byte `bytes` (most significant byte first, like Java's
  `Uuid`; `ZERO_UUID` means "no id"); encode also accepts a `uuid.UUID`.
"""
from __future__ import annotations

import keyword

from pybroker.codec.errors import UnsupportedVersionError
from pybroker.protocol import schema

ZERO_UUID = bytes(16)

# --- op kinds: one per wire encoding (docs: ../shared/protocol.md section 2) -----------------
BOOL = 1             # 1 byte, non-zero = true
INT8 = 2
INT16 = 3
UINT16 = 4
INT32 = 5
UINT32 = 6
INT64 = 7
FLOAT64 = 8          # IEEE-754 binary64, big-endian
UUID = 9             # 16 bytes
STRING = 10          # int16 length (-1 = null) + UTF-8
COMPACT_STRING = 11  # uvarint length+1 (0 = null) + UTF-8
BYTES = 12           # int32 length (-1 = null) + bytes
COMPACT_BYTES = 13   # uvarint length+1 (0 = null) + bytes
RECORDS = 14         # as BYTES, decoded zero-copy
COMPACT_RECORDS = 15  # as COMPACT_BYTES, decoded zero-copy
ARRAY = 16           # int32 count (-1 = null) + elements
COMPACT_ARRAY = 17   # uvarint count+1 (0 = null) + elements
STRUCT = 18          # the struct inline; when nullable a marker first: int8 -1 null / 1 present,
                     # but uvarint 0 null / 1 present when the field is tagged (Kafka's generator)

KIND_NAMES = {v: k for k, v in list(globals().items()) if k.isupper() and isinstance(v, int)
              and 1 <= v <= 18}

_FIXED = {"bool": (BOOL, 1), "int8": (INT8, 1), "int16": (INT16, 2), "uint16": (UINT16, 2),
          "int32": (INT32, 4), "uint32": (UINT32, 4), "int64": (INT64, 8),
          "float64": (FLOAT64, 8), "uuid": (UUID, 16)}
_MIN_SIZE = {STRING: 2, COMPACT_STRING: 1, BYTES: 4, COMPACT_BYTES: 1, RECORDS: 4,
             COMPACT_RECORDS: 1, ARRAY: 4, COMPACT_ARRAY: 1}
_MIN_SIZE.update({k: n for k, n in _FIXED.values()})

MAX_TAGGED_PER_STRUCT = 64  # the compiled decoder tracks seen tags in a 64-bit mask


class FileRegion:
    """A records payload the encoder must not copy (the zero-copy fetch seam).

    Put one in a `records` field and call `encode_response_parts`: the encoder writes the length
    prefix and leaves `size` bytes to be sent from `source` (e.g. a segment file via sendfile)
    at `position`. The frame's size prefix counts them. Plain `encode_response` refuses regions.
    """

    __slots__ = ("source", "position", "size")

    def __init__(self, source, position, size):
        if size < 0:
            raise ValueError("negative region size")
        self.source, self.position, self.size = source, position, size

    def __repr__(self):
        return f"FileRegion({self.source!r}, position={self.position}, size={self.size})"

    def __eq__(self, other):
        return (isinstance(other, FileRegion) and (self.source, self.position, self.size)
                == (other.source, other.position, other.size))

    __hash__ = None


class Op:
    """One field of one version of a struct, as both interpreters run it.

    kind      one of the kinds above (for arrays: ARRAY/COMPACT_ARRAY)
    attr      attribute name (snake_case)
    nullable  null allowed in this version
    elem      for arrays: the element kind (STRUCT for arrays of structs), else 0
    sub       for STRUCT kinds and arrays of structs: the element/struct Program
    elem_size minimum encoded size of one element (arrays) or of the value (others)
    default   the default value (for lists/structs an instance used only for comparison)
    factory   callable returning a fresh default (list, struct class) or None to share `default`
    tag       tag number for tagged fields, else -1
    field     Kafka's field name, for error messages
    ignorable (absent fields) a non-default value may be silently dropped
    """

    __slots__ = ("kind", "attr", "nullable", "elem", "sub", "elem_size", "default", "factory",
                 "tag", "field", "ignorable")

    def __init__(self, kind, attr, nullable=False, elem=0, sub=None, elem_size=0,
                 default=None, factory=None, tag=-1, field="", ignorable=False):
        self.kind, self.attr, self.nullable, self.elem, self.sub = kind, attr, nullable, elem, sub
        self.elem_size, self.default, self.factory, self.tag = elem_size, default, factory, tag
        self.field, self.ignorable = field, ignorable

    def new_default(self):
        return self.factory() if self.factory is not None else self.default

    def __repr__(self):
        kind = KIND_NAMES.get(self.kind, self.kind)
        extra = f" elem={KIND_NAMES.get(self.elem, self.elem)}" if self.elem else ""
        tag = f" tag={self.tag}" if self.tag >= 0 else ""
        null = " nullable" if self.nullable else ""
        return f"<Op {self.attr} {kind}{extra}{null}{tag}>"


class Program:
    """The codec program of one struct at one version (see the module docstring)."""

    __slots__ = ("name", "version", "cls", "ops", "tagged", "by_tag", "flexible", "absent",
                 "checks", "has_unknown", "min_size", "native", "__weakref__")

    def __init__(self, name, version, cls, ops, tagged, flexible, absent):
        self.name, self.version, self.cls = name, version, cls
        self.ops = tuple(ops)
        self.tagged = tuple(sorted(tagged, key=lambda op: op.tag))
        self.by_tag = {op.tag: op for op in self.tagged}
        self.flexible = flexible
        self.absent = tuple(absent)
        self.checks = tuple(op for op in self.absent if not op.ignorable)
        self.has_unknown = "unknown_tagged" in getattr(cls, "__slots__", ())
        self.min_size = sum(_op_min_size(op) for op in self.ops) + (1 if flexible else 0)
        self.native = None  # the compiled interpreter's lowered form, attached on first use

    def __repr__(self):
        return f"<Program {self.name} v{self.version}: {len(self.ops)} ops, {len(self.tagged)} tagged>"


def _op_min_size(op):
    if op.kind == STRUCT:
        return 1 if op.nullable else op.sub.min_size
    return _MIN_SIZE[op.kind]


# --- typed classes -----------------------------------------------------------------------------

_MISSING = object()


class Struct:
    """Base of every generated message class: value equality and a readable repr."""

    __slots__ = ()
    _fields = ()          # attribute names, declaration order (unknown_tagged excluded)
    _kafka_names = ()     # Kafka's field names, same order
    _defaults = ()        # (attr, default, factory): factory() makes a fresh default if not None
    _message = None       # (kind, name) of the message the class belongs to

    def __eq__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        for name in self._fields:
            a, b = getattr(self, name), getattr(other, name)
            if a is not b and a != b:
                return False
        if hasattr(type(self), "unknown_tagged"):
            return (self.unknown_tagged or None) == (other.unknown_tagged or None)
        return True

    __hash__ = None

    def __repr__(self):
        parts = [f"{name}={_short_repr(getattr(self, name, '<unset>'))}" for name in self._fields]
        if getattr(self, "unknown_tagged", None):
            parts.append(f"unknown_tagged={self.unknown_tagged!r}")
        return f"{type(self).__qualname__}({', '.join(parts)})"

    def to_dict(self):
        """Field values as a dict (nested structs and lists of structs converted too)."""
        return {name: _plain(getattr(self, name)) for name in self._fields}


def _plain(value):
    if isinstance(value, Struct):
        return value.to_dict()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _short_repr(value):
    if isinstance(value, memoryview):
        return f"<memoryview {value.nbytes} bytes>"
    if isinstance(value, (bytes, bytearray)) and len(value) > 32:
        return f"<{type(value).__name__} {len(value)} bytes>"
    return repr(value)


def _attr_name(field_name):
    name = schema.snake_case(field_name)
    return name + "_" if keyword.iskeyword(name) or name == "unknown_tagged" else name


def _make_class(name, qualname, module_key, fields, defaults, flexible):
    """A Struct subclass with slots for `fields` ([(attr, kafka_name)]) and a generated
    keyword-only __init__ (defaults: {attr: (value, factory)})."""
    attrs = [a for a, _ in fields]
    slots = tuple(attrs) + (("unknown_tagged",) if flexible else ())
    ns, params, body = {"_MISSING": _MISSING}, [], []
    for i, attr in enumerate(attrs):
        value, factory = defaults[attr]
        if factory is None:
            ns[f"_d{i}"] = value
            params.append(f"{attr}=_d{i}")
            body.append(f"    self.{attr} = {attr}")
        else:
            ns[f"_f{i}"] = factory
            params.append(f"{attr}=_MISSING")
            body.append(f"    self.{attr} = _f{i}() if {attr} is _MISSING else {attr}")
    if flexible:
        params.append("unknown_tagged=None")
        body.append("    self.unknown_tagged = unknown_tagged")
    if params:
        src = f"def __init__(self, *, {', '.join(params)}):\n" + "\n".join(body)
    else:
        src = "def __init__(self):\n    pass"
    exec(compile(src, f"<pybroker message {qualname}>", "exec"), ns)
    init = ns["__init__"]
    init.__qualname__ = f"{qualname}.__init__"
    cls = type(name, (Struct,), {
        "__slots__": slots, "__init__": init, "__module__": __name__, "__qualname__": qualname,
        "_fields": tuple(attrs), "_kafka_names": tuple(k for _, k in fields),
        "_defaults": tuple((a, *defaults[a]) for a in attrs), "_message": module_key,
    })
    return cls


# --- defaults ------------------------------------------------------------------------------------

def _parse_int(text):
    t = text.strip()
    neg = t.startswith("-")
    body = t[1:] if neg else t
    value = int(body, 16) if body.lower().startswith("0x") else int(body, 10)
    return -value if neg else value


def _field_default(f, classes):
    """(value, factory) for a field: factory is None when `value` can be shared."""
    d = f.default
    if d == "null":
        return None, None
    if f.is_array:
        return [], list
    if f.is_struct:
        return None, classes[f.type]
    t = f.type
    if t == "bool":
        return (d == "true") if d is not None else False, None
    if t in ("int8", "int16", "uint16", "int32", "uint32", "int64"):
        return (_parse_int(d) if d else 0), None
    if t == "float64":
        return (float(d) if d else 0.0), None
    if t == "string":
        return (d if d is not None else ""), None
    if t == "bytes":
        return b"", None
    if t == "records":
        return None, None
    if t == "uuid":
        return ZERO_UUID, None
    raise schema.SchemaError(f"{f.name}: no default for type {t}")


def _comparison_default(value, factory):
    return factory() if factory is not None else value


# --- registry: classes and programs per message ------------------------------------------------

class _MessageModel:
    """Classes of one message (top-level and nested structs) and its program cache."""

    def __init__(self, msg):
        self.msg = msg
        self.key = (msg.kind, msg.name)
        self.flexible = msg.flexible is not None
        self.structs = {}   # struct name -> (fields list, class)
        self.programs = {}  # (struct name, version) -> Program
        self.top = self._build(msg.class_name, msg.class_name, msg.fields, None)

    def _build(self, name, qualname, fields, top):
        """Build the class for a struct, building nested struct classes first."""
        known = self.structs.get(name)
        if known is not None:
            if known[0] is not fields and known[0] != fields:
                raise schema.SchemaError(f"{self.msg.name}: struct {name} defined twice differently")
            return known[1]
        nested = {}
        for f in fields:
            if f.is_struct:
                nested[f.type] = self._build(f.type, f"{self.msg.class_name}.{f.type}",
                                             f.fields, top or name)
        classes = {f.type: nested[f.type] for f in fields if f.is_struct}
        attrs = [(_attr_name(f.name), f.name) for f in fields]
        if len({a for a, _ in attrs}) != len(attrs):
            raise schema.SchemaError(f"{self.msg.name}.{name}: duplicate field names")
        defaults = {_attr_name(f.name): _field_default(f, classes) for f in fields}
        cls = _make_class(name, qualname, self.key, attrs, defaults, self.flexible)
        self.structs[name] = (fields, cls)
        if top is None:  # the message class carries its nested classes as attributes
            for sname, (_, scls) in self.structs.items():
                if sname != name:
                    setattr(cls, sname, scls)
        return cls

    def program(self, version):
        return self._program(self.msg.class_name, version)

    def _program(self, struct_name, version):
        key = (struct_name, version)
        prog = self.programs.get(key)
        if prog is None:
            prog = self._compile(struct_name, version)
            self.programs[key] = prog
        return prog

    def _compile(self, struct_name, v):
        fields, cls = self.structs[struct_name]
        flexible = self.msg.is_flexible(v)
        ops, tagged, absent = [], [], []
        for f in fields:
            op = self._op(f, v, flexible)
            if not f.exists(v):
                absent.append(op)
            elif f.is_tagged(v):
                if f.tag is None or not flexible:
                    raise schema.SchemaError(f"{self.msg.name}.{f.name}: tagged field in v{v}")
                op.tag = f.tag
                tagged.append(op)
            else:
                ops.append(op)
        if len({op.tag for op in tagged}) != len(tagged) or len(tagged) > MAX_TAGGED_PER_STRUCT:
            raise schema.SchemaError(f"{self.msg.name}.{struct_name}: bad tags in v{v}")
        return Program(f"{self.msg.class_name}.{struct_name}" if struct_name != self.msg.class_name
                       else struct_name, v, cls, ops, tagged, flexible, absent)

    def _op(self, f, v, flexible):
        """The Op for field f at version v (for absent fields only attr/default matter)."""
        classes = {f.type: self.structs[f.type][1]} if f.is_struct else {}
        value, factory = _field_default(f, classes)
        op = Op(0, _attr_name(f.name), nullable=f.is_nullable(v), default=_comparison_default(
            value, factory), factory=factory, field=f.name, ignorable=f.ignorable)
        if not f.exists(v):
            return op
        sub = self._program(f.type, v) if f.is_struct else None
        if f.is_array:
            op.kind = COMPACT_ARRAY if flexible else ARRAY
            op.elem, op.sub = self._value_kind(f, v, flexible), sub
            op.elem_size = sub.min_size if sub is not None else _MIN_SIZE[op.elem]
        else:
            op.kind, op.sub = self._value_kind(f, v, flexible), sub
            op.elem_size = (1 if op.nullable else sub.min_size) if sub is not None \
                else _MIN_SIZE[op.kind]
        return op

    @staticmethod
    def _value_kind(f, v, flexible):
        """The kind of one value (an array element, or the field itself when not an array)."""
        t = f.type
        if f.is_struct:
            return STRUCT
        if t in _FIXED:
            return _FIXED[t][0]
        compact = flexible
        if t in ("string", "bytes") and f.flexible is not None:
            compact = schema.in_range(v, f.flexible)
        if t == "string":
            return COMPACT_STRING if compact else STRING
        if t == "bytes":
            return COMPACT_BYTES if compact else BYTES
        if t == "records":
            return COMPACT_RECORDS if compact else RECORDS
        raise schema.SchemaError(f"{f.name}: unknown type {t}")


class Registry:
    """Typed classes and programs for a set of messages (default: every file in defs/)."""

    def __init__(self, messages=None, defs_dir=None):
        self._messages = messages
        self._defs_dir = defs_dir
        self._models = {}
        self._by_class_name = None
        self._by_key = None

    @property
    def messages(self):
        if self._messages is None:
            self._messages = schema.load_all(self._defs_dir or schema.DEFS_DIR)
        return self._messages

    def model(self, kind, name):
        key = (kind, name)
        model = self._models.get(key)
        if model is None:
            msg = self.messages.get(key)
            if msg is None:
                raise KeyError(f"no {kind} {name} in the protocol definitions")
            model = self._models[key] = _MessageModel(msg)
        return model

    def message_class(self, kind, name):
        return self.model(kind, name).top

    def program(self, kind, name, version):
        """The Program of a message at a version; UnsupportedVersionError outside its versions."""
        model = self.model(kind, name)
        if not schema.in_range(version, model.msg.versions):
            raise UnsupportedVersionError(model.msg.api_key, version,
                                          f"{kind} {name} has no version {version}")
        return model.program(version)

    def by_api_key(self, kind, api_key):
        """The request/response Message for an API key, or None."""
        if self._by_key is None:
            self._by_key = {(m.kind, m.api_key): m for m in self.messages.values()
                            if m.api_key is not None}
        return self._by_key.get((kind, api_key))

    def find_class_name(self, class_name):
        """(kind, name) for a class name such as "ProduceRequest" or "RequestHeader"."""
        if self._by_class_name is None:
            self._by_class_name = {m.class_name: k for k, m in self.messages.items()}
        return self._by_class_name.get(class_name)

    def get_class(self, class_name):
        key = self.find_class_name(class_name)
        if key is None:
            raise AttributeError(f"no message class {class_name!r}")
        return self.message_class(*key)


REGISTRY = Registry()


def get_class(class_name):
    """The typed class for a message, e.g. get_class("ProduceRequest")."""
    return REGISTRY.get_class(class_name)


def __getattr__(name):
    """`from pybroker.codec.messages import ProduceRequest` builds the class on first use."""
    if name[:1].isupper():
        return REGISTRY.get_class(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
