"""Our definitions against the wire schemas Apache Kafka's own client library compiles.

DumpSchemas.java (beside this file) prints, from the kafka-clients jar fetched by ci/fetch_kafka,
every API's versions, listeners and header versions and, for every version, each struct's fields
in wire order with their exact wire type (INT32, COMPACT_NULLABLE_STRING, COMPACT_ARRAY(STRUCT),
NULLABLE_STRUCT, ...) and tag numbers. Here we derive the same listing from our definitions and
compare. This is independent of our reading of the JSON: it checks the generated Java code.

The jar may be newer than the 4.3 specs we follow, so versions are compared where both exist
(a stable Kafka version never changes once released); a version that is `latestVersionUnstable`
on either side is left out, since unstable versions may still change.
"""
import copy
import subprocess
from collections import defaultdict
from pathlib import Path

import pytest

import kafka_tools
from pybroker.protocol import schema
from pybroker.protocol.apis import API_BY_KEY, DATA, HEADERS

pytestmark = pytest.mark.java

DUMPER = Path(__file__).with_name("DumpSchemas.java")
# Field renames in Kafka after 4.3 (same wire layout): (API, our name) -> the jar's name.
RENAMED_LATER = {
    ("TxnOffsetCommit", "generation_id"): "generation_id_or_member_epoch",  # Kafka 4.4
}
PRIMITIVE_WIRE = {
    "bool": "BOOLEAN", "int8": "INT8", "int16": "INT16", "uint16": "UINT16", "int32": "INT32",
    "uint32": "UINT32", "int64": "INT64", "float64": "FLOAT64", "uuid": "UUID",
}


@pytest.fixture(scope="module")
def java(tmp_path_factory):
    libs = kafka_tools.libs()  # skips when Kafka's jars or java are missing
    proc = subprocess.run(["java", "-cp", str(libs / "*"), str(DUMPER)],
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return parse_dump(proc.stdout)


def parse_dump(text: str) -> dict:
    apis, messages, headers = {}, defaultdict(list), {}
    current = None
    for line in text.splitlines():
        rec = line.split("\t")
        if rec[0] == "API":
            key, name, lo, hi, unstable, listeners = rec[1:]
            apis[int(key)] = (name, int(lo), int(hi), unstable == "true",
                              tuple(listeners.split(",")) if listeners else ())
        elif rec[0] == "MSG":
            current = (rec[1], rec[2], int(rec[3]))
            messages[current]  # a message may have no fields at all
            if len(rec) > 4:
                headers[(rec[2], int(rec[3]))] = (int(rec[4]), int(rec[5]))
        else:
            depth, name, wire, tag = rec[1:]
            messages[current].append((int(depth), name, wire, None if tag == "-" else int(tag)))
    return {"apis": apis, "messages": dict(messages), "headers": headers}


# --- our side: the same listing, derived from the definitions ----------------------------------

def wire_type(f: schema.Field, v: int, msg: schema.Message) -> str:
    flexible = msg.is_flexible(v)
    if f.is_array:
        kind = "COMPACT_ARRAY" if flexible else "ARRAY"
        elem = "STRUCT" if f.is_struct else scalar_wire(f.type, flexible, False)
        return f"{kind}{'?' if f.is_nullable(v) else ''}({elem})"
    if f.is_struct:
        return "NULLABLE_STRUCT" if f.is_nullable(v) else "STRUCT"
    return scalar_wire(f.type, f.uses_compact(v, msg), f.is_nullable(v))


def scalar_wire(typ: str, compact: bool, nullable: bool) -> str:
    if typ in PRIMITIVE_WIRE:
        return PRIMITIVE_WIRE[typ]
    return ("COMPACT_" if compact else "") + ("NULLABLE_" if nullable else "") + typ.upper()


def our_listing(fields: list, v: int, msg: schema.Message, depth: int = 0) -> list:
    present = [f for f in fields if f.exists(v)]
    regular = [f for f in present if not f.is_tagged(v)]
    tagged = sorted((f for f in present if f.is_tagged(v)), key=lambda f: f.tag)
    rows = []
    for f in regular + tagged:
        rows.append((depth, f.py_name, wire_type(f, v, msg), f.tag if f.is_tagged(v) else None))
        if f.is_struct:
            rows += our_listing(f.fields, v, msg, depth + 1)
    return rows


def common_versions(api, java_api) -> range:
    _, lo, hi, unstable, _ = java_api
    top = min(api.max_stable_version, hi - 1 if unstable else hi)
    return range(max(api.min_version, lo), top + 1)


# --- the checks --------------------------------------------------------------------------------

def test_api_table_agrees_with_kafka(java):
    for key, api in API_BY_KEY.items():
        assert key in java["apis"], f"Kafka has no API {key}"
        name, lo, hi, _, listeners = java["apis"][key]
        assert (name, lo, listeners) == (api.name, api.min_version, api.listeners)
        assert api.max_stable_version <= hi


def test_header_versions_agree_with_kafka(java):
    compared = 0
    for key, api in API_BY_KEY.items():
        for v in common_versions(api, java["apis"][key]):
            expected = java["headers"][(api.name, v)]
            assert (api.request_header_version(v), api.response_header_version(v)) == expected, \
                f"{api.name} v{v}"
            compared += 1
    assert compared > 200


@pytest.mark.parametrize("key", sorted(API_BY_KEY))
def test_wire_schemas_agree_with_kafka(key, java):
    api = API_BY_KEY[key]
    versions = common_versions(api, java["apis"][key])
    assert len(versions) > 0
    for v in versions:
        for msg in (api.request, api.response):
            theirs = [_as_ours(api.name, row) for row in java["messages"][(msg.kind, api.name, v)]]
            assert our_listing(msg.fields, v, msg) == theirs, f"{msg.class_name} v{v}"


def _as_ours(api_name: str, row: tuple) -> tuple:
    """Undo a known later rename in the jar's row (a jar of exactly 4.3 has none)."""
    depth, name, wire, tag = row
    earlier = {new: old for (api, old), new in RENAMED_LATER.items() if api == api_name}
    return (depth, earlier.get(name, name), wire, tag)


@pytest.mark.parametrize("name", ["RequestHeader", "ResponseHeader",
                                  "ConsumerProtocolSubscription", "ConsumerProtocolAssignment"])
def test_header_and_data_schemas_agree_with_kafka(name, java):
    msg = HEADERS.get(name) or DATA[name]
    lo, hi = msg.versions
    for v in range(lo, hi + 1):
        theirs = java["messages"][(msg.kind, name, v)]
        assert our_listing(msg.fields, v, msg) == theirs, f"{name} v{v}"


def test_a_drifted_definition_differs_from_kafka(java):
    api = API_BY_KEY[0]
    msg = copy.deepcopy(api.request)
    topic_data = next(f for f in msg.fields if f.name == "TopicData")
    partition_data = next(f for f in topic_data.fields if f.name == "PartitionData")
    records = next(f for f in partition_data.fields if f.name == "Records")
    assert our_listing(msg.fields, 9, msg) == java["messages"][("request", "Produce", 9)]
    records.nullable = None
    assert our_listing(msg.fields, 9, msg) != java["messages"][("request", "Produce", 9)]


def test_the_listing_sees_wire_details():
    """Guard against a vacuous comparison: our listing must encode compactness and nullability."""
    api = API_BY_KEY[0]
    rows = {r[1]: r for r in our_listing(api.request.fields, 9, api.request)}
    assert rows["transactional_id"] == (0, "transactional_id", "COMPACT_NULLABLE_STRING", None)
    assert rows["records"][2] == "COMPACT_NULLABLE_RECORDS"
    rows = {r[1]: r for r in our_listing(api.request.fields, 8, api.request)}
    assert rows["topic_data"][2] == "ARRAY(STRUCT)"
    header = HEADERS["RequestHeader"]
    assert our_listing(header.fields, 2, header)[-1][2] == "NULLABLE_STRING"
