"""Our protocol definition language and its parser.

Every request/response a broker serves is written in `pybroker/protocol/defs/*.txt` in a compact,
indentation-based form (facts from Kafka's public spec: names, types, version ranges, tags,
nullability, defaults). This module parses it into `Message` / `Field` objects that the codecs
compile into per-version programs.

Grammar (one message block per header line; nesting by two-space indentation):

    request  Produce key=0 versions=3-13 flexible=9+ [listeners=broker,controller] [unstable]
    response Produce key=0 versions=3-13 flexible=9+
    header   RequestHeader versions=1-2 flexible=2+
    data     ConsumerProtocolSubscription versions=0-3 flexible=none
      struct Name [v<range>]          # a common struct, usable as a type below (commonStructs)
        Field: type ...
      FieldName: type [v<range>] [nullable=<range>] [tag=N] [tagged=<range>] [default=<value>]
                      [flexible=<range>] [ignorable] [mapkey]
        NestedField: ...             # fields of an inline struct type (`Type` or `[]Type`)

Types: bool int8 int16 uint16 int32 uint32 int64 float64 string uuid bytes records, `[]T` for
arrays, or a capitalised struct name. Ranges: `3`, `3-7`, `3+`, `none`. A field without `v`
exists in every version of its parent (`0+`) — or, if it has `tagged=`, in its tagged versions.
`default=` takes the value up to the next space, as Kafka writes it (`-1`, `0x7fffffff`, `true`,
`null`); a string default with spaces, or the empty string, is written in double quotes
(`default=""`).
`#` starts a comment (outside quotes). `unstable` on a request header line is Kafka's
`latestVersionUnstable`: the highest version is not advertised by default.

Semantics worth knowing when compiling a codec:

* Versions of nested fields are written as in Kafka's spec (not intersected with the parent's);
  a nested field exists in version v only if its parent does too.
* `Field.flexible` is the field-level `flexibleVersions` override (string/bytes only): None means
  "inherit the message's flexible versions"; an explicit `flexible=none` is stored as `NEVER`, an
  empty range that `in_range` never matches (None could not be used: it already means "inherit").
  `Field.uses_compact(v, message)` applies the rule. RequestHeader.ClientId is the one user.
* `nullable=` on a struct-typed (non-array) field means an INT8 presence prefix (-1 = null).
* `Message.structs` maps a common struct's name to its field list; `Message.struct_versions`
  maps it to the struct's `v` range (default `0+`). Fields whose type names a common struct
  share that list object. Struct type names (inline or common) are unique within a message.

The parser rejects: bad indentation, unknown types, unknown attributes, struct-typed fields
without fields or a common struct, nested fields under primitives, duplicate field names or tags
within one struct, a struct type defined twice in one message, `tag`/`tagged` one without the
other, `nullable`/`flexible` on a type that cannot carry them, and defaults that do not parse
for the field's type.
"""
from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass, field
from typing import Optional

MAX_VERSION = 0x7FFF
PRIMITIVES = frozenset(
    "bool int8 int16 uint16 int32 uint32 int64 float64 string uuid bytes records".split())
INT_BOUNDS = {
    "int8": (-(1 << 7), (1 << 7) - 1), "int16": (-(1 << 15), (1 << 15) - 1),
    "uint16": (0, (1 << 16) - 1), "int32": (-(1 << 31), (1 << 31) - 1),
    "uint32": (0, (1 << 32) - 1), "int64": (-(1 << 63), (1 << 63) - 1),
}
NULLABLE_TYPES = frozenset(("string", "bytes", "records"))  # plus arrays and structs

Range = Optional[tuple]  # (lo, hi) inclusive, or None for the empty set
NEVER = (1, 0)           # an explicitly empty range, where None already means "inherit"


def parse_range(text: str) -> Range:
    """'3' -> (3, 3); '3-7' -> (3, 7); '3+' -> (3, MAX_VERSION); 'none' -> None."""
    text = text.strip()
    if text == "none":
        return None
    try:
        if text.endswith("+"):
            return (int(text[:-1]), MAX_VERSION)
        if "-" in text:
            lo, hi = text.split("-", 1)
            return (int(lo), int(hi))
        return (int(text), int(text))
    except ValueError:
        raise SchemaError(f"bad version range {text!r}") from None


def format_range(r: Range) -> str:
    if r is None or r[0] > r[1]:
        return "none"
    lo, hi = r
    if hi == MAX_VERSION:
        return f"{lo}+"
    return str(lo) if lo == hi else f"{lo}-{hi}"


def in_range(v: int, r: Range) -> bool:
    return r is not None and r[0] <= v <= r[1]


def intersect(a: Range, b: Range) -> Range:
    if a is None or b is None:
        return None
    lo, hi = max(a[0], b[0]), min(a[1], b[1])
    return (lo, hi) if lo <= hi else None


def snake_case(name: str) -> str:
    """Kafka's CamelCase field names to Python attribute names: GenerationId -> generation_id."""
    s = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    s = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", s)
    return s.lower()


@dataclass
class Field:
    name: str
    type: str                      # primitive name or struct name (element type for arrays)
    is_array: bool = False
    versions: Range = (0, MAX_VERSION)
    nullable: Range = None
    tag: Optional[int] = None
    tagged: Range = None
    default: Optional[str] = None
    flexible: Optional[Range] = None  # field-level override (string/bytes only); None = message's
    ignorable: bool = False
    map_key: bool = False
    fields: list = field(default_factory=list)  # for struct types: the struct's fields

    @property
    def py_name(self) -> str:
        return snake_case(self.name)

    @property
    def is_struct(self) -> bool:
        return self.type not in PRIMITIVES

    def exists(self, v: int) -> bool:
        return in_range(v, self.versions)

    def is_tagged(self, v: int) -> bool:
        return in_range(v, self.tagged)

    def is_nullable(self, v: int) -> bool:
        return in_range(v, self.nullable)

    def uses_compact(self, v: int, message: "Message") -> bool:
        """True if this field's length prefix is compact (uvarint) in version v of `message`."""
        return in_range(v, message.flexible if self.flexible is None else self.flexible)


@dataclass
class Message:
    kind: str                      # request | response | header | data
    name: str                      # e.g. "Produce" (no Request/Response suffix), "RequestHeader"
    api_key: Optional[int]
    versions: Range
    flexible: Range
    listeners: tuple = ()
    unstable: bool = False
    fields: list = field(default_factory=list)
    structs: dict = field(default_factory=dict)  # common structs: name -> list[Field]
    struct_versions: dict = field(default_factory=dict)  # common structs: name -> Range

    @property
    def class_name(self) -> str:
        if self.kind == "request":
            return self.name + "Request"
        if self.kind == "response":
            return self.name + "Response"
        return self.name

    def is_flexible(self, v: int) -> bool:
        return in_range(v, self.flexible)


class SchemaError(ValueError):
    pass


_HEAD = re.compile(r"^(request|response|header|data)\s+(\w+)\s*(.*)$")
_FIELD = re.compile(r"^([A-Za-z]\w*):\s*(\S+)\s*(.*)$")
_STRUCT = re.compile(r"^struct\s+(\w+)\s*(.*)$")
_HEAD_ATTRS = frozenset(("key", "versions", "flexible", "listeners", "unstable"))
_FIELD_ATTRS = frozenset(
    ("v", "nullable", "tag", "tagged", "default", "flexible", "ignorable", "mapkey"))
_FLAGS = frozenset(("unstable", "ignorable", "mapkey"))  # bare words; all others take `=value`


def _tokens(text: str) -> list:
    """Split attributes on spaces; quoted values (and `#` inside them) only via shlex."""
    if '"' in text or "'" in text:
        return shlex.split(text, comments=True)
    cut = text.find("#")
    return (text if cut < 0 else text[:cut]).split()


def _attrs(text: str, where: str, known: frozenset) -> dict:
    out = {}
    try:
        tokens = _tokens(text)
    except ValueError as exc:  # unbalanced quotes
        raise SchemaError(f"{where}: {exc}") from None
    for tok in tokens:
        if "=" in tok:
            k, v = tok.split("=", 1)
        elif tok[:1] == "v" and tok[1:2].isdigit():
            k, v = "v", tok[1:]
        else:
            k, v = tok, True
        if k not in known:
            raise SchemaError(f"{where}: unknown attribute {k!r}")
        if (v is True) != (k in _FLAGS):
            need = "takes no value" if k in _FLAGS else "needs a value"
            raise SchemaError(f"{where}: attribute {k!r} {need}")
        if k in out:
            raise SchemaError(f"{where}: attribute {k!r} given twice")
        out[k] = v
    return out


def _range_attr(attrs: dict, key: str, where: str) -> Range:
    try:
        return parse_range(attrs[key])
    except SchemaError as exc:
        raise SchemaError(f"{where}: {key}: {exc}") from None


def _make_field(name: str, typ: str, attrs: dict, where: str) -> Field:
    is_array = typ.startswith("[]")
    elem = typ[2:] if is_array else typ
    if elem not in PRIMITIVES and not (elem[:1].isupper() and elem.isidentifier()):
        raise SchemaError(f"{where}: unknown type {typ!r}")
    f = Field(name=name, type=elem, is_array=is_array)
    if "tagged" in attrs:
        f.tagged = _range_attr(attrs, "tagged", where)
    f.versions = _range_attr(attrs, "v", where) if "v" in attrs else (f.tagged or (0, MAX_VERSION))
    if "nullable" in attrs:
        f.nullable = _range_attr(attrs, "nullable", where)
    if "tag" in attrs:
        if not str(attrs["tag"]).isdigit():
            raise SchemaError(f"{where}: tag must be a non-negative integer")
        f.tag = int(attrs["tag"])
    if (f.tag is None) != (f.tagged is None):
        raise SchemaError(f"{where}: tag= and tagged= go together")
    if "default" in attrs:
        f.default = attrs["default"]
    if "flexible" in attrs:
        f.flexible = _range_attr(attrs, "flexible", where) or NEVER
    f.ignorable = bool(attrs.get("ignorable"))
    f.map_key = bool(attrs.get("mapkey"))
    _check_field(f, where)
    return f


def _check_field(f: Field, where: str) -> None:
    nullable_ok = f.is_array or f.is_struct or f.type in NULLABLE_TYPES
    if f.nullable is not None and not nullable_ok:
        raise SchemaError(f"{where}: {f.type} cannot be nullable")
    if f.flexible is not None and (f.is_array or f.type not in ("string", "bytes")):
        raise SchemaError(f"{where}: flexible= is only allowed on string and bytes fields")
    if f.default is not None and not _default_ok(f):
        raise SchemaError(f"{where}: default {f.default!r} does not fit type {f.type}")


def _default_ok(f: Field) -> bool:
    d = f.default
    if d == "null":
        return f.nullable is not None
    if f.is_array or f.is_struct:
        return False
    if f.type in INT_BOUNDS:
        lo, hi = INT_BOUNDS[f.type]
        try:
            n = int(d, 16) if d.lower().lstrip("-").startswith("0x") else int(d)
        except ValueError:
            return False
        return lo <= n <= hi
    if f.type == "bool":
        return d in ("true", "false")
    if f.type == "float64":
        try:
            float(d)
        except ValueError:
            return False
    return True


def _strip_comment(raw: str) -> str:
    """Drop a trailing comment; lines with quotes keep theirs for shlex to handle."""
    if "#" not in raw:
        return raw.rstrip()
    if raw.lstrip().startswith("#"):
        return ""
    if '"' in raw or "'" in raw:
        return raw.rstrip()
    return raw.split("#", 1)[0].rstrip()


def _head(body: str, where: str) -> Message:
    m = _HEAD.match(body)
    if not m:
        raise SchemaError(f"{where}: expected a message header line")
    kind, name, rest = m.groups()
    attrs = _attrs(rest, where, _HEAD_ATTRS)
    key = attrs.get("key")
    if key is not None and not str(key).lstrip("-").isdigit():
        raise SchemaError(f"{where}: key must be an integer")
    return Message(
        kind=kind, name=name,
        api_key=int(key) if key is not None else None,
        versions=_range_attr(attrs, "versions", where) if "versions" in attrs else (0, 0),
        flexible=_range_attr(attrs, "flexible", where) if "flexible" in attrs else None,
        listeners=tuple(attrs["listeners"].split(",")) if "listeners" in attrs else (),
        unstable=bool(attrs.get("unstable")),
    )


def parse(text: str, source: str = "<defs>") -> list:
    """Parse definition text into a list of Message."""
    messages = []
    stack = []  # (indent, list-to-append-to)
    msg = None
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = _strip_comment(raw)
        if not line.strip():
            continue
        where = f"{source}:{lineno}"
        body = line.lstrip(" ")
        indent = len(line) - len(body)
        if body[:1] == "\t":
            raise SchemaError(f"{where}: indent with spaces, not tabs")
        if indent == 0:
            msg = _head(body, where)
            messages.append(msg)
            stack = [(0, msg.fields)]
            continue
        if msg is None:
            raise SchemaError(f"{where}: field outside a message")
        if indent % 2:
            raise SchemaError(f"{where}: indentation must be a multiple of two spaces")
        while stack and stack[-1][0] >= indent:
            stack.pop()
        if not stack or indent > stack[-1][0] + 2:
            raise SchemaError(f"{where}: bad indentation")
        parent = stack[-1][1]
        sm = _STRUCT.match(body)
        if sm and indent == 2:
            sname, rest = sm.groups()
            if sname in msg.structs:
                raise SchemaError(f"{where}: struct {sname} defined twice")
            attrs = _attrs(rest, where, frozenset(("v",)))
            fields = []
            msg.structs[sname] = fields
            msg.struct_versions[sname] = (
                _range_attr(attrs, "v", where) if "v" in attrs else (0, MAX_VERSION))
            stack.append((indent, fields))
            continue
        fm = _FIELD.match(body)
        if not fm:
            raise SchemaError(f"{where}: expected 'Name: type ...'")
        name, typ, rest = fm.groups()
        f = _make_field(name, typ, _attrs(rest, where, _FIELD_ATTRS), where)
        parent.append(f)
        stack.append((indent, f.fields))
    for m in messages:
        _link(m, source)
    return messages


def _check_struct(fields: list, where: str) -> None:
    names, tags = set(), set()
    for f in fields:
        if f.name in names:
            raise SchemaError(f"{where}: field {f.name} defined twice")
        names.add(f.name)
        if f.tag is not None:
            if f.tag in tags:
                raise SchemaError(f"{where}: tag {f.tag} used twice")
            tags.add(f.tag)


def _link(msg: Message, source: str) -> None:
    """Resolve struct-typed fields without inline fields to the message's common structs."""
    inline = set()  # struct type names are unique within a message, as in Kafka's generator

    def walk(fields, where):
        _check_struct(fields, where)
        for f in fields:
            if f.is_struct and not f.fields:
                if f.type not in msg.structs:
                    raise SchemaError(f"{where}.{f.name}: unknown struct {f.type}")
                f.fields = msg.structs[f.type]
            elif not f.is_struct and f.fields:
                raise SchemaError(f"{where}.{f.name}: primitive with nested fields")
            if f.is_struct and f.fields is not msg.structs.get(f.type):
                if f.type in inline or f.type in msg.structs:
                    raise SchemaError(f"{where}.{f.name}: struct {f.type} defined twice")
                inline.add(f.type)
                walk(f.fields, f"{where}.{f.name}")
    walk(msg.fields, f"{source}: {msg.class_name}")
    for name, fields in msg.structs.items():
        walk(fields, f"{source}: {msg.class_name}.{name}")


DEFS_DIR = os.path.join(os.path.dirname(__file__), "defs")


def load_all(defs_dir: str = DEFS_DIR) -> dict:
    """All messages in defs/, keyed by (kind, name) — e.g. ("request", "Produce")."""
    out = {}
    for fname in sorted(os.listdir(defs_dir)):
        if not fname.endswith(".txt"):
            continue
        path = os.path.join(defs_dir, fname)
        with open(path, encoding="utf-8") as fh:
            for m in parse(fh.read(), fname):
                key = (m.kind, m.name)
                if key in out:
                    raise SchemaError(f"{fname}: {m.kind} {m.name} defined twice")
                out[key] = m
    return out
