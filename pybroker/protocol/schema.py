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

Types: bool int8 int16 uint16 int32 uint32 int64 float64 string uuid bytes records, `[]T` for arrays,
or a capitalised struct name. Ranges: `3`, `3-7`, `3+`, `none`. A field without `v` exists in
every version of its parent (`0+`). `default=` takes the value up to the next space; a string
default with spaces is written in double quotes.
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

Range = Optional[tuple]  # (lo, hi) inclusive, or None for the empty set


def parse_range(text: str) -> Range:
    """'3' -> (3, 3); '3-7' -> (3, 7); '3+' -> (3, MAX_VERSION); 'none' -> None."""
    text = text.strip()
    if text == "none":
        return None
    if text.endswith("+"):
        return (int(text[:-1]), MAX_VERSION)
    if "-" in text:
        lo, hi = text.split("-", 1)
        return (int(lo), int(hi))
    return (int(text), int(text))


def format_range(r: Range) -> str:
    if r is None:
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
_FIELD = re.compile(r"^(\w+):\s*(\S+)\s*(.*)$")
_STRUCT = re.compile(r"^struct\s+(\w+)\s*(.*)$")


def _attrs(text: str, where: str) -> dict:
    out = {}
    for tok in shlex.split(text, comments=True):
        if "=" in tok:
            k, v = tok.split("=", 1)
            out[k] = v
        elif tok.startswith("v") and tok[1:2].isdigit():
            out["v"] = tok[1:]
        else:
            out[tok] = True
    return out


def _make_field(name: str, typ: str, attrs: dict, where: str) -> Field:
    is_array = typ.startswith("[]")
    elem = typ[2:] if is_array else typ
    if elem not in PRIMITIVES and not elem[:1].isupper():
        raise SchemaError(f"{where}: unknown type {typ!r}")
    f = Field(name=name, type=elem, is_array=is_array)
    known = {"v", "nullable", "tag", "tagged", "default", "flexible", "ignorable", "mapkey"}
    unknown = set(attrs) - known
    if unknown:
        raise SchemaError(f"{where}: unknown attributes {sorted(unknown)}")
    if "tagged" in attrs:
        f.tagged = parse_range(attrs["tagged"])
    f.versions = parse_range(attrs["v"]) if "v" in attrs else (f.tagged or (0, MAX_VERSION))
    if "nullable" in attrs:
        f.nullable = parse_range(attrs["nullable"])
    if "tag" in attrs:
        f.tag = int(attrs["tag"])
        if f.tagged is None:
            raise SchemaError(f"{where}: tag without tagged=")
    if "default" in attrs:
        f.default = attrs["default"]
    if "flexible" in attrs:
        f.flexible = parse_range(attrs["flexible"])
    f.ignorable = bool(attrs.get("ignorable"))
    f.map_key = bool(attrs.get("mapkey"))
    return f


def parse(text: str, source: str = "<defs>") -> list:
    """Parse definition text into a list of Message."""
    messages = []
    stack = []  # (indent, list-to-append-to)
    msg = None
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].rstrip() if "#" in raw and '"' not in raw else raw.rstrip()
        if not line.strip():
            continue
        where = f"{source}:{lineno}"
        indent = len(line) - len(line.lstrip(" "))
        body = line.strip()
        if indent == 0:
            m = _HEAD.match(body)
            if not m:
                raise SchemaError(f"{where}: expected a message header line")
            kind, name, rest = m.groups()
            attrs = _attrs(rest, where)
            msg = Message(
                kind=kind, name=name,
                api_key=int(attrs["key"]) if "key" in attrs else None,
                versions=parse_range(attrs.get("versions", "0")),
                flexible=parse_range(attrs.get("flexible", "none")),
                listeners=tuple(attrs["listeners"].split(",")) if "listeners" in attrs else (),
                unstable=bool(attrs.get("unstable")),
            )
            messages.append(msg)
            stack = [(0, msg.fields)]
            continue
        if msg is None:
            raise SchemaError(f"{where}: field outside a message")
        if indent % 2:
            raise SchemaError(f"{where}: indentation must be a multiple of two spaces")
        while stack and stack[-1][0] >= indent:
            stack.pop()
        if not stack:
            raise SchemaError(f"{where}: bad indentation")
        parent = stack[-1][1]
        sm = _STRUCT.match(body)
        if sm and indent == 2:
            sname, rest = sm.groups()
            attrs = _attrs(rest, where)
            fields = []
            msg.structs[sname] = fields
            stack.append((indent, fields))
            continue
        fm = _FIELD.match(body)
        if not fm:
            raise SchemaError(f"{where}: expected 'Name: type ...'")
        name, typ, rest = fm.groups()
        f = _make_field(name, typ, _attrs(rest, where), where)
        parent.append(f)
        stack.append((indent, f.fields))
    for m in messages:
        _link(m, source)
    return messages


def _link(msg: Message, source: str) -> None:
    """Resolve struct-typed fields without inline fields to the message's common structs."""
    def walk(fields, parent_versions):
        for f in fields:
            eff = intersect(f.versions, parent_versions)
            if f.is_struct and not f.fields:
                if f.type not in msg.structs:
                    raise SchemaError(f"{source}: {msg.name}.{f.name}: unknown struct {f.type}")
                f.fields = msg.structs[f.type]
            elif not f.is_struct and f.fields:
                raise SchemaError(f"{source}: {msg.name}.{f.name}: primitive with nested fields")
            if f.is_struct and f.fields is not msg.structs.get(f.type):
                walk(f.fields, eff)
    walk(msg.fields, msg.versions)
    for fields in msg.structs.values():
        walk(fields, msg.versions)


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
