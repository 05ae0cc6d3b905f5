"""Our protocol definitions against Kafka's JSON specs, field by field and version by version.

For every JSON message in ../shared/kafka-protocol-spec/message-4.3 and every version in its
`validVersions`, the ordered list of fields present in that version (recursing into inline and
common structs) must match ours in: path and name, type, nullable in this version, tagged in this
version, tag number, default (normalised: "0x7fffffff" == 2147483647, "null", absent == the type's
implicit default), field-level flexible override in this version, ignorable and mapKey. Message
level: apiKey, validVersions, flexibleVersions, listeners, latestVersionUnstable, common struct
names and versions. Every JSON message must have a definition and every definition a JSON message.

The JSON side is read here with its own small interpreter (ranges, defaults), not with
`pybroker.protocol.schema`, so a bug there cannot cancel itself out.
"""
import copy
import json
import os
import subprocess
import sys

import pytest

from pbtest import REPO, SHARED
from pybroker.protocol import schema

SPEC_SUBDIR = os.path.join("kafka-protocol-spec", "message-4.3")
SPEC_DIR = SHARED / SPEC_SUBDIR
# APIs the 4.3 client-facing folder lacks (KIP-848 consumer groups) are checked against the
# 2024 trunk specs in message/; every file there that we define joins the comparison.
EXTRA_SUBDIR = os.path.join("kafka-protocol-spec", "message")
EXTRA_FILES = ("ConsumerGroupHeartbeatRequest.json", "ConsumerGroupHeartbeatResponse.json",
               "ConsumerGroupDescribeRequest.json", "ConsumerGroupDescribeResponse.json")
SPEC_FILES = (sorted(f for f in os.listdir(SPEC_DIR) if f.endswith(".json"))
              + [os.path.join("..", "message", f) for f in EXTRA_FILES]) if SPEC_DIR.is_dir() \
    else ["<spec absent>"]
INT_TYPES = ("int8", "int16", "uint16", "int32", "uint32", "int64")
OPEN = None  # the upper bound of an open range ("3+")


# --- reading the JSON side -------------------------------------------------------------------

def strip_comments(text: str) -> str:
    """Drop `//` comments (to end of line) that are outside JSON strings."""
    return "\n".join(_strip_line(line) for line in text.splitlines())


def _strip_line(line: str) -> str:
    i, in_str = 0, False
    while i < len(line):
        ch = line[i]
        if in_str and ch == "\\":
            i += 2
            continue
        if ch == '"':
            in_str = not in_str
        elif not in_str and line.startswith("//", i):
            return line[:i]
        i += 1
    return line


def load_json(path) -> dict:
    with open(path, encoding="utf-8") as fh:
        return json.loads(strip_comments(fh.read()))


def json_range(text):
    """Kafka's version-range text -> (lo, hi) with hi None if open; None if empty."""
    text = str(text).strip()
    if text == "none":
        return None
    if text.endswith("+"):
        return (int(text[:-1]), OPEN)
    lo, _, hi = text.partition("-")
    return (int(lo), int(hi or lo))


def json_has(r, v: int) -> bool:
    return r is not None and r[0] <= v and (r[1] is OPEN or v <= r[1])


def our_range(r):
    """Our (lo, hi) with MAX_VERSION as open end, NEVER/None as empty -> json_range's form."""
    if r is None or r[0] > r[1]:
        return None
    return (r[0], OPEN if r[1] == schema.MAX_VERSION else r[1])


def spec_key(spec: dict) -> tuple:
    kind, name = spec["type"], spec["name"]
    suffix = kind.capitalize()
    if kind in ("request", "response") and name.endswith(suffix):
        name = name[: -len(suffix)]
    return (kind, name)


# --- defaults ----------------------------------------------------------------------------------

NULL = ("<null>",)


def norm_default(typ: str, value):
    """A default as a comparable value; None (absent) becomes the type's implicit default."""
    if value == "null":
        return NULL
    if typ.startswith("[]") or typ[:1].isupper():
        return ("<empty>",) if value in (None, "") else ("<bad>", value)
    if typ in INT_TYPES:
        if value is None:
            return 0
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        neg = text.startswith("-")
        digits = text.lstrip("-")
        n = int(digits[2:], 16) if digits.startswith("0x") else int(digits, 10)
        return -n if neg else n
    if typ == "bool":
        return False if value is None else str(value).lower() == "true"
    if typ == "float64":
        return 0.0 if value is None else float(value)
    if typ in ("string",):
        return "" if value is None else str(value)
    return ("<implicit>",) if value is None else str(value)   # uuid, bytes, records


# --- flattening: the fields present in one version, recursively ------------------------------

def json_rows(fields: list, v: int, structs: dict, prefix: str = "") -> list:
    rows = []
    for f in fields:
        versions = json_range(f.get("versions", f.get("taggedVersions", "0+")))
        if not json_has(versions, v):
            continue
        tagged = json_range(f.get("taggedVersions", "none"))
        flex = f.get("flexibleVersions")
        path = prefix + f["name"]
        rows.append((
            path, f["type"],
            json_has(json_range(f.get("nullableVersions", "none")), v),
            json_has(tagged, v),
            f.get("tag") if tagged is not None else None,
            norm_default(f["type"], f.get("default")),
            None if flex is None else json_has(json_range(flex), v),
            bool(f.get("ignorable", False)),
            bool(f.get("mapKey", False)),
        ))
        elem = f["type"][2:] if f["type"].startswith("[]") else f["type"]
        children = f.get("fields") or (structs.get(elem, []) if elem[:1].isupper() else [])
        suffix = "[]." if f["type"].startswith("[]") else "."
        rows += json_rows(children, v, structs, path + suffix)
    return rows


def our_rows(fields: list, v: int, prefix: str = "") -> list:
    rows = []
    for f in fields:
        if not f.exists(v):
            continue
        typ = ("[]" if f.is_array else "") + f.type
        path = prefix + f.name
        rows.append((
            path, typ, f.is_nullable(v), f.is_tagged(v),
            f.tag if f.tagged is not None else None,
            norm_default(typ, f.default),
            None if f.flexible is None else schema.in_range(v, f.flexible),
            f.ignorable, f.map_key,
        ))
        rows += our_rows(f.fields, v, path + ("[]." if f.is_array else "."))
    return rows


ROW_NAMES = ("path", "type", "nullable", "tagged", "tag", "default", "flexible", "ignorable",
             "mapkey")


def diff_rows(label: str, ours: list, theirs: list) -> list:
    for i, (a, b) in enumerate(zip(ours, theirs)):
        if a != b:
            what = [f"{n}: ours {x!r} spec {y!r}" for n, x, y in zip(ROW_NAMES, a, b) if x != y]
            return [f"{label}: field #{i} {b[0]}: " + "; ".join(what)]
    if len(ours) != len(theirs):
        extra = [r[0] for r in ours[len(theirs):]] or [r[0] for r in theirs[len(ours):]]
        side = "ours has extra" if len(ours) > len(theirs) else "ours lacks"
        return [f"{label}: {side} {extra}"]
    return []


# --- comparing one message -------------------------------------------------------------------

def diff_header(spec: dict, msg: schema.Message) -> list:
    checks = [
        ("apiKey", spec.get("apiKey"), msg.api_key),
        ("validVersions", json_range(spec["validVersions"]), our_range(msg.versions)),
        ("flexibleVersions", json_range(spec["flexibleVersions"]), our_range(msg.flexible)),
        ("listeners", tuple(spec.get("listeners", ())), msg.listeners),
        ("latestVersionUnstable", bool(spec.get("latestVersionUnstable")), msg.unstable),
        ("commonStructs", {s["name"]: json_range(s.get("versions", "0+"))
                           for s in spec.get("commonStructs", [])},
         {n: our_range(r) for n, r in msg.struct_versions.items()}),
    ]
    return [f"{msg.class_name}: {what}: ours {o!r} spec {s!r}" for what, s, o in checks if s != o]


def diff_message(spec: dict, msg: schema.Message) -> list:
    """Every difference between a JSON spec and our message, as readable lines."""
    problems = diff_header(spec, msg)
    structs = {s["name"]: s["fields"] for s in spec.get("commonStructs", [])}
    lo, hi = json_range(spec["validVersions"])
    for v in range(lo, hi + 1):
        theirs = json_rows(spec["fields"], v, structs)
        problems += diff_rows(f"{msg.class_name} v{v}", our_rows(msg.fields, v), theirs)
    return problems


# --- fixtures --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def spec_dir(shared_dir):
    path = shared_dir / SPEC_SUBDIR
    if not path.is_dir():
        pytest.skip(f"{path} is not present")
    return path


@pytest.fixture(scope="module")
def specs(spec_dir):
    out = {}
    for fname in sorted(os.listdir(spec_dir)):
        if fname.endswith(".json"):
            spec = load_json(spec_dir / fname)
            out[spec_key(spec)] = spec
    for fname in EXTRA_FILES:
        spec = load_json(spec_dir.parent / "message" / fname)
        out[spec_key(spec)] = spec
    return out


@pytest.fixture(scope="module")
def defs():
    return schema.load_all()


# --- the checks ------------------------------------------------------------------------------

def test_every_spec_message_has_a_definition_and_back(specs, defs):
    assert len(specs) == 112  # 52 APIs x 2, 2 headers, 2 data schemas (Kafka 4.3) + KIP-848 x 4
    assert sorted(set(specs) - set(defs)) == [], "spec messages without a definition"
    assert sorted(set(defs) - set(specs)) == [], "definitions without a spec message"


# The trunk-2024 KIP-848 files predate Kafka 4.0, which dropped the zkBroker listener, made
# ConsumerGroupHeartbeat stable and added ConsumerGroupDescribe v1 (../shared/protocol.md §4).
# Only those header attributes are allowed to differ; every field of every version they have must match.
_PRE_4_0 = ("listeners:", "latestVersionUnstable:", "validVersions: ours (0, 1) spec (0, 0)")


@pytest.mark.parametrize("fname", SPEC_FILES)
def test_definition_matches_spec(fname, spec_dir, defs):
    spec = load_json(spec_dir / fname)
    key = spec_key(spec)
    assert key in defs, f"{fname}: no definition {key}"
    problems = diff_message(spec, defs[key])
    if fname.startswith(".."):
        problems = [p for p in problems if not any(t in p for t in _PRE_4_0)]
    assert problems == [], "\n".join(problems[:20])


def test_comparison_walks_every_version_and_nested_field(specs, defs):
    """Guard against a vacuous comparison: it must see deep fields in late versions."""
    rows = our_rows(defs[("response", "Fetch")].fields, 18)
    paths = [r[0] for r in rows]
    assert "Responses[].Partitions[].AbortedTransactions[].ProducerId" in paths
    assert ("Responses[].Partitions[].Records", "records", True) == rows[paths.index(
        "Responses[].Partitions[].Records")][:3]
    spec = specs[("response", "AddPartitionsToTxn")]
    structs = {s["name"]: s["fields"] for s in spec["commonStructs"]}
    deep = [r[0] for r in json_rows(spec["fields"], 5, structs)]
    assert "ResultsByTransaction[].TopicResults[].ResultsByPartition[].PartitionErrorCode" in deep


# --- the comparison must catch drift ---------------------------------------------------------

def _field(fields: list, path: str) -> schema.Field:
    head, _, rest = path.partition(".")
    f = next(f for f in fields if f.name == head)
    return _field(f.fields, rest) if rest else f


def _set(path, attr, value):
    def mutate(msg):
        setattr(_field(msg.fields, path), attr, value)
    return mutate


def _swap_first_two(msg):
    msg.fields[0], msg.fields[1] = msg.fields[1], msg.fields[0]


def _drop_last(msg):
    msg.fields.pop()


MUTATIONS = {
    "nested type": (("request", "Produce"), _set("TopicData.PartitionData.Index", "type", "int64")),
    "array-ness": (("request", "Produce"), _set("TopicData.PartitionData", "is_array", False)),
    "versions": (("response", "Produce"),
                 _set("Responses.PartitionResponses.LogStartOffset", "versions", (6, 0x7FFF))),
    "nullable": (("request", "Produce"), _set("TopicData.PartitionData.Records", "nullable", None)),
    "tag number": (("response", "ApiVersions"), _set("FinalizedFeaturesEpoch", "tag", 4)),
    "tagged range": (("response", "ApiVersions"), _set("ZkMigrationReady", "tagged", (4, 0x7FFF))),
    "default": (("response", "ApiVersions"), _set("FinalizedFeaturesEpoch", "default", "0")),
    "default null": (("request", "Produce"), _set("TransactionalId", "default", None)),
    "flexible override": (("header", "RequestHeader"), _set("ClientId", "flexible", None)),
    "ignorable": (("request", "ApiVersions"), _set("ClientSoftwareName", "ignorable", False)),
    "mapkey": (("response", "ApiVersions"), _set("ApiKeys.ApiKey", "map_key", False)),
    "name": (("response", "Metadata"), _set("Brokers.NodeId", "name", "BrokerId")),
    "order": (("request", "Produce"), _swap_first_two),
    "missing field": (("response", "Produce"), _drop_last),
    "common struct field": (("request", "AddPartitionsToTxn"),
                            _set("V3AndBelowTopics.Partitions", "type", "int64")),
    "message flexible": (("request", "Fetch"), lambda m: setattr(m, "flexible", (11, 0x7FFF))),
    "valid versions": (("response", "Fetch"), lambda m: setattr(m, "versions", (4, 17))),
    "api key": (("request", "Heartbeat"), lambda m: setattr(m, "api_key", 13)),
    "listeners": (("request", "Fetch"), lambda m: setattr(m, "listeners", ("broker",))),
    "unstable": (("request", "InitProducerId"), lambda m: setattr(m, "unstable", False)),
    "struct versions": (("response", "DescribeQuorum"),
                        lambda m: m.struct_versions.update(ReplicaState=(1, 0x7FFF))),
}


@pytest.mark.parametrize("what", sorted(MUTATIONS))
def test_comparison_catches_a_drifted_definition(what, specs, defs):
    key, mutate = MUTATIONS[what]
    msg = copy.deepcopy(defs[key])
    assert diff_message(specs[key], msg) == []
    mutate(msg)
    problems = diff_message(specs[key], msg)
    assert problems, f"mutation {what!r} went unnoticed"


def test_a_drifted_definition_file_is_caught(specs):
    """End to end from text: one version bound changed in produce.txt must be reported."""
    with open(os.path.join(schema.DEFS_DIR, "produce.txt"), encoding="utf-8") as fh:
        text = fh.read()
    assert "LogStartOffset: int64 v5+" in text
    drifted = {(m.kind, m.name): m
               for m in schema.parse(text.replace("LogStartOffset: int64 v5+",
                                                  "LogStartOffset: int64 v6+"), "produce.txt")}
    problems = diff_message(specs[("response", "Produce")], drifted[("response", "Produce")])
    assert len(problems) == 1 and problems[0].startswith("ProduceResponse v5: ")
    assert "LogStartOffset" in problems[0]


def test_default_normalisation():
    assert norm_default("int32", "0x7fffffff") == norm_default("int32", "2147483647") == 2**31 - 1
    assert norm_default("int64", -1) == norm_default("int64", "-1")
    assert norm_default("int32", None) == norm_default("int32", "0")
    assert norm_default("bool", False) == norm_default("bool", "false")
    assert norm_default("string", "null") == NULL != norm_default("string", None)
    assert norm_default("int32", "1") != norm_default("int32", "-1")


def test_strip_comments_keeps_slashes_inside_strings():
    text = '{ "a": "x//y", // note\n// whole line\n "b": 1 }'
    assert json.loads(strip_comments(text)) == {"a": "x//y", "b": 1}


# --- the converter ---------------------------------------------------------------------------

def test_converter_reproduces_the_committed_definitions(spec_dir):
    tool = os.path.join(REPO, "ci", "defs_from_spec.py")
    proc = subprocess.run([sys.executable, tool, "--check", str(spec_dir)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]


SYNTHETIC = {
    "apiKey": 99, "type": "request", "name": "FrobRequest", "listeners": ["broker"],
    "validVersions": "0-3", "flexibleVersions": "2+", "latestVersionUnstable": True,
    "fields": [
        {"name": "Label", "type": "string", "versions": "0+", "default": "a b#c \"q\""},
        {"name": "Empty", "type": "string", "versions": "1+", "default": ""},
        {"name": "Raw", "type": "bytes", "versions": "0+", "flexibleVersions": "none",
         "nullableVersions": "1+", "default": "null"},
        {"name": "Limit", "type": "int32", "versions": "0+", "default": "0x7fffffff"},
        {"name": "Extra", "type": "[]Thing", "versions": "2+", "tag": 0,
         "taggedVersions": "2+", "ignorable": True},
        {"name": "Inline", "type": "Box", "versions": "1+", "nullableVersions": "1+",
         "default": "null", "fields": [{"name": "Size", "type": "int8", "versions": "0+",
                                        "default": 16, "mapKey": True}]},
    ],
    "commonStructs": [{"name": "Thing", "versions": "2+", "fields": [
        {"name": "Id", "type": "uuid", "versions": "2+"},
        {"name": "On", "type": "bool", "versions": "3+", "default": True}]}],
}


def test_converter_output_parses_back_to_the_same_message(tmp_path):
    (tmp_path / "spec").mkdir()
    (tmp_path / "out").mkdir()
    (tmp_path / "spec" / "FrobRequest.json").write_text(
        "// a comment line\n" + json.dumps(SYNTHETIC, indent=1))
    tool = os.path.join(REPO, "ci", "defs_from_spec.py")
    subprocess.run([sys.executable, tool, "--out", str(tmp_path / "out"),
                    str(tmp_path / "spec")], check=True, capture_output=True, timeout=60)
    text = (tmp_path / "out" / "frob.txt").read_text()
    (msg,) = schema.parse(text, "frob.txt")
    assert diff_message(SYNTHETIC, msg) == []
    assert msg.fields[0].default == 'a b#c "q"' and msg.fields[1].default == ""
    assert msg.fields[2].flexible == schema.NEVER
