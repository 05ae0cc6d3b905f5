"""Unit tests for the definition-language parser (pybroker/protocol/schema.py)."""
import pytest

from pybroker.protocol import schema
from pybroker.protocol.schema import MAX_VERSION, NEVER, SchemaError, parse


def one(text: str) -> schema.Message:
    (msg,) = parse(text, "t.txt")
    return msg


def fields_of(body: str) -> list:
    return one("request Frob key=99 versions=0-5 flexible=3+\n" + body).fields


# --- ranges ------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("3", (3, 3)), ("3-7", (3, 7)), ("3+", (3, MAX_VERSION)), ("0+", (0, MAX_VERSION)),
    ("none", None), (" 2-2 ", (2, 2)),
])
def test_parse_range(text, expected):
    assert schema.parse_range(text) == expected


@pytest.mark.parametrize("r, text", [
    ((3, 3), "3"), ((3, 7), "3-7"), ((3, MAX_VERSION), "3+"), (None, "none"), (NEVER, "none"),
])
def test_format_range(r, text):
    assert schema.format_range(r) == text


@pytest.mark.parametrize("text", ["x", "3-", "+", "1-2-3", ""])
def test_bad_range_is_a_schema_error(text):
    with pytest.raises(SchemaError):
        schema.parse_range(text)


def test_in_range_and_intersect():
    assert schema.in_range(3, (3, 7)) and schema.in_range(7, (3, 7))
    assert not schema.in_range(2, (3, 7)) and not schema.in_range(8, (3, 7))
    assert not schema.in_range(0, None) and not schema.in_range(0, NEVER)
    assert schema.intersect((0, 5), (3, MAX_VERSION)) == (3, 5)
    assert schema.intersect((0, 2), (3, 4)) is None
    assert schema.intersect(None, (0, 1)) is None


# --- names -------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, snake", [
    ("GenerationId", "generation_id"), ("ThrottleTimeMs", "throttle_time_ms"),
    ("V3AndBelowTopics", "v3_and_below_topics"),
    ("ResultsByTopicV3AndBelow", "results_by_topic_v3_and_below"),
    ("ZkMigrationReady", "zk_migration_ready"), ("ACLOperation", "acl_operation"),
    ("TopicId", "topic_id"), ("Name", "name"), ("IsrNodes", "isr_nodes"),
])
def test_snake_case(name, snake):
    assert schema.snake_case(name) == snake


def test_py_names_are_unique_within_every_struct_of_the_definitions():
    def walk(fields, where):
        names = [f.py_name for f in fields]
        assert len(names) == len(set(names)), where
        for f in fields:
            walk(f.fields, f"{where}.{f.name}")
    for (kind, name), msg in schema.load_all().items():
        walk(msg.fields, f"{kind} {name}")


# --- headers and fields ----------------------------------------------------------------------

def test_header_line():
    msg = one("request Produce key=0 versions=3-13 flexible=9+ "
              "listeners=broker,controller unstable")
    assert (msg.kind, msg.name, msg.api_key) == ("request", "Produce", 0)
    assert msg.versions == (3, 13) and msg.flexible == (9, MAX_VERSION)
    assert msg.listeners == ("broker", "controller") and msg.unstable
    assert msg.class_name == "ProduceRequest" and msg.is_flexible(9) and not msg.is_flexible(8)
    data = one("data ConsumerProtocolSubscription versions=0-3 flexible=none")
    assert data.api_key is None and data.flexible is None and data.class_name == data.name


def test_field_attributes():
    (f,) = fields_of("  Epoch: int64 v3+ tag=1 tagged=3+ default=-1 ignorable\n")
    assert (f.name, f.type, f.is_array) == ("Epoch", "int64", False)
    assert f.versions == (3, MAX_VERSION) and f.tag == 1 and f.tagged == (3, MAX_VERSION)
    assert f.default == "-1" and f.ignorable and not f.map_key and f.py_name == "epoch"
    assert f.exists(3) and not f.exists(2) and f.is_tagged(4) and not f.is_nullable(4)


def test_field_defaults_to_all_versions_or_its_tagged_versions():
    plain, tagged = fields_of("  A: int32\n  B: int32 tag=0 tagged=4+\n")
    assert plain.versions == (0, MAX_VERSION)
    assert tagged.versions == (4, MAX_VERSION)


def test_nullable_array_and_map_key():
    arr, key = fields_of("  Ids: []int32 v1-2 nullable=2+ default=null\n  K: string mapkey\n")
    assert arr.is_array and arr.type == "int32" and arr.versions == (1, 2)
    assert arr.is_nullable(2) and not arr.is_nullable(1) and arr.default == "null"
    assert key.map_key and not key.is_struct


def test_quoted_defaults_and_comments():
    fields = fields_of(
        '  Label: string default="a b # c"  # trailing comment\n'
        '  # a comment line\n'
        '  Empty: string default=""\n'
        "  Hex: int32 default=0x7fffffff # comment\n")
    assert [f.default for f in fields] == ["a b # c", "", "0x7fffffff"]


def test_field_level_flexible_override():
    msg = one("header H versions=1-2 flexible=2+\n"
              "  Never: string nullable=1+ flexible=none\n"
              "  Inherit: string\n"
              "  Later: bytes flexible=4+\n")
    never, inherit, later = msg.fields
    assert never.flexible == NEVER and inherit.flexible is None
    assert not never.uses_compact(2, msg) and inherit.uses_compact(2, msg)
    assert not inherit.uses_compact(1, msg)
    assert not later.uses_compact(3, msg) and later.uses_compact(4, msg)


def test_inline_struct_nesting():
    (topics,) = fields_of(
        "  Topics: []Topic\n"
        "    Name: string\n"
        "    Partitions: []Partition v1+\n"
        "      Index: int32\n"
        "    Extra: int8\n")
    assert topics.is_struct and topics.is_array and topics.type == "Topic"
    assert [f.name for f in topics.fields] == ["Name", "Partitions", "Extra"]
    assert [f.name for f in topics.fields[1].fields] == ["Index"]


def test_common_structs_are_shared_and_keep_their_versions():
    msg = one(
        "response Frob key=99 versions=0-5 flexible=3+\n"
        "  Old: []Topic v0-3\n"
        "  New: []Topic v4+\n"
        "  Cursor: Pos nullable=0+ default=null\n"
        "  struct Topic\n"
        "    Name: string\n"
        "    Parts: []Part\n"
        "  struct Part v2+\n"
        "    Index: int32\n"
        "  struct Pos\n"
        "    Offset: int64\n")
    old, new, cursor = msg.fields
    assert old.fields is new.fields is msg.structs["Topic"]
    assert old.fields[1].fields is msg.structs["Part"]
    assert cursor.fields is msg.structs["Pos"] and cursor.is_nullable(0)
    assert msg.struct_versions == {"Topic": (0, MAX_VERSION), "Part": (2, MAX_VERSION),
                                   "Pos": (0, MAX_VERSION)}


def test_several_messages_in_one_text():
    msgs = parse("request A key=1 versions=0\n  X: int8\n\nresponse A key=1 versions=0\n"
                 "  Y: int16\n", "t.txt")
    assert [(m.kind, [f.name for f in m.fields]) for m in msgs] == [
        ("request", ["X"]), ("response", ["Y"])]


# --- errors ------------------------------------------------------------------------------------

HEAD = "request Frob key=99 versions=0-5 flexible=3+\n"


@pytest.mark.parametrize("body, fragment", [
    ("   A: int32\n", "multiple of two"),
    ("  A: []T\n      B: int32\n", "bad indentation"),
    ("\tA: int32\n", "tabs"),
    ("  A: int32\n  \tB: int32\n", "tabs"),
    ("  A: foo\n", "unknown type"),
    ("  A: []foo\n", "unknown type"),
    ("  A: []Missing\n", "unknown struct Missing"),
    ("  A: Missing nullable=0+\n", "unknown struct Missing"),
    ("  A: int32\n    B: int32\n", "primitive with nested fields"),
    ("  A: int32 colour=red\n", "unknown attribute"),
    ("  A: int32 v1 v2\n", "given twice"),
    ("  A: int32 tag=0\n", "go together"),
    ("  A: int32 tagged=1+\n", "go together"),
    ("  A: int32 tag=x tagged=1+\n", "non-negative"),
    ("  A: int32\n  A: int64\n", "defined twice"),
    ("  A: int32 tag=0 tagged=3+\n  B: int32 tag=0 tagged=3+\n", "tag 0 used twice"),
    ("  A: int32 nullable=0+\n", "cannot be nullable"),
    ("  A: int32 flexible=none\n", "only allowed on string and bytes"),
    ("  A: int8 default=300\n", "does not fit"),
    ("  A: int32 default=abc\n", "does not fit"),
    ("  A: bool default=yes\n", "does not fit"),
    ("  A: string default=null\n", "does not fit"),
    ("  A: uint16 default=-1\n", "does not fit"),
    ("  A: int32 ignorable=yes\n", "takes no value"),
    ("  A: int32 default\n", "needs a value"),
    ("  A: int32 v1-x\n", "bad version range"),
    ('  A: string default="open\n', "quotation"),
    ("  struct T\n    X: int8\n  struct T\n    Y: int8\n", "struct T defined twice"),
    ("  A int32\n", "expected 'Name: type"),
    ("  A: []T\n    X: int8\n  B: []T\n    X: int8\n", "struct T defined twice"),
    ("  A: T\n    X: int8\n  struct T\n    Y: int8\n", "struct T defined twice"),
])
def test_bad_definitions_raise_schema_error_with_location(body, fragment):
    with pytest.raises(SchemaError) as info:
        parse(HEAD + body, "bad.txt")
    assert fragment in str(info.value)
    assert str(info.value).startswith("bad.txt")


@pytest.mark.parametrize("text, fragment", [
    ("  A: int32\n", "field outside a message"),
    ("reply Frob key=1\n", "header line"),
    ("request Frob key=x\n", "key must be an integer"),
    ("request Frob colour=red\n", "unknown attribute"),
    ("request Frob versions=a-b\n", "bad version range"),
])
def test_bad_header_lines(text, fragment):
    with pytest.raises(SchemaError, match=fragment):
        parse(text, "bad.txt")


def test_load_all_rejects_a_message_defined_twice(tmp_path):
    (tmp_path / "a.txt").write_text("request Frob key=99 versions=0\n")
    (tmp_path / "b.txt").write_text("request Frob key=99 versions=0\n")
    (tmp_path / "notes.md").write_text("not a definition")
    with pytest.raises(SchemaError, match="defined twice"):
        schema.load_all(str(tmp_path))


def test_load_all_reads_every_txt_file(tmp_path):
    (tmp_path / "a.txt").write_text("request Frob key=99 versions=0\n  A: int8\n")
    (tmp_path / "b.txt").write_text("response Frob key=99 versions=0\n")
    assert sorted(schema.load_all(str(tmp_path))) == [("request", "Frob"), ("response", "Frob")]
