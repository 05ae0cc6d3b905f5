"""The protocol codec's public API: worked bytes, header rules, tagged fields, zero-copy records,
encode errors and the typed classes. Runs against the loaded implementation (PYBROKER_PURE=1 for
the twin); test_protocol_impls.py compares the two directly."""
import os
import struct
import subprocess
import sys
import uuid

import pytest

from pbtest import PURE, REPO
from pybroker.codec import (DecodeError, EncodeError, FileRegion, UnsupportedVersionError,
                            decode_request, decode_response, encode_request, encode_response,
                            encode_response_parts)
from pybroker.codec import messages, protocol
from pybroker.codec.messages import (ZERO_UUID, ApiVersionsRequest, ApiVersionsResponse,
                                     ConsumerProtocolSubscription, FetchRequest, FetchResponse,
                                     MetadataRequest, ProduceRequest, ProduceResponse)

H = bytes.fromhex


def hexb(text):
    return H("".join(text.split()))


# --- worked bytes (../shared/protocol.md section 1.5) ---------------------------------------

API_VERSIONS_V3_REQUEST = hexb("""
    00 00 00 25
    00 12 00 03 00 00 00 01
    00 07 72 64 6b 61 66 6b 61
    00
    0b 6c 69 62 72 64 6b 61 66 6b 61
    07 32 2e 31 35 2e 30
    00""")
API_VERSIONS_V0_REQUEST = hexb("00 00 00 11 00 12 00 00 00 00 00 01 00 07 72 64 6b 61 66 6b 61")
API_VERSIONS_V3_RESPONSE = hexb("""
    00 00 00 1a
    00 00 00 01
    00 00
    03
    00 00 00 00 00 0c 00
    00 12 00 00 00 04 00
    00 00 00 00
    00""")
API_VERSIONS_UNSUPPORTED = hexb("00 00 00 10 | 00 00 00 01 | 00 23 | 00 00 00 01 | 00 12 00 00 00 04"
                                .replace("|", ""))


def test_implementation_is_the_expected_one():
    core = protocol._default.core.__name__
    assert core == ("pybroker.codec._pure.protocol" if PURE else "pybroker_core.protocol")


@pytest.mark.skipif(PURE, reason="import order only matters for the compiled module")
@pytest.mark.parametrize("first", ["pybroker_core.protocol", "pybroker.codec.messages",
                                   "pybroker.codec.protocol", "pybroker.codec"])
def test_any_import_order_works(first):
    # pybroker_core.protocol imports pybroker.codec, whose __init__ loads the facade, which
    # loads pybroker_core.protocol: whichever comes first, the facade ends up on the compiled core
    code = (f"import {first}\n"
            "import pybroker_core.protocol as core\n"
            "from pybroker.codec import protocol, decode_request, encode_request\n"
            "from pybroker.codec.messages import ApiVersionsRequest\n"
            "assert protocol._default.core is core, protocol._default.core\n"
            "out = encode_request(18, 3, 1, 'x', ApiVersionsRequest())\n"
            "assert decode_request(out[4:])[0].client_id == 'x'\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(REPO / "core"), str(REPO), os.environ.get("PYTHONPATH", "")]))
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=60)


def test_api_versions_v3_request_worked_bytes():
    header, body = decode_request(API_VERSIONS_V3_REQUEST[4:])
    assert (header.request_api_key, header.request_api_version) == (18, 3)
    assert (header.correlation_id, header.client_id) == (1, "rdkafka")
    assert header.unknown_tagged is None
    assert body == ApiVersionsRequest(client_software_name="librdkafka",
                                      client_software_version="2.15.0")
    assert encode_request(18, 3, 1, "rdkafka", body) == API_VERSIONS_V3_REQUEST


def test_api_versions_v0_request_worked_bytes():
    header, body = decode_request(API_VERSIONS_V0_REQUEST[4:])
    assert (header.request_api_version, header.correlation_id, header.client_id) == (0, 1, "rdkafka")
    assert body == ApiVersionsRequest()
    assert encode_request(18, 0, 1, "rdkafka", ApiVersionsRequest()) == API_VERSIONS_V0_REQUEST


def test_api_versions_v3_response_worked_bytes_use_header_v0():
    body = ApiVersionsResponse(error_code=0, throttle_time_ms=0, api_keys=[
        ApiVersionsResponse.ApiVersion(api_key=0, min_version=0, max_version=12),
        ApiVersionsResponse.ApiVersion(api_key=18, min_version=0, max_version=4)])
    assert encode_response(18, 3, 1, body) == API_VERSIONS_V3_RESPONSE
    header, got = decode_response(18, 3, API_VERSIONS_V3_RESPONSE[4:])
    assert header.correlation_id == 1 and got == body


def test_unsupported_api_versions_answer_worked_bytes():
    body = ApiVersionsResponse(error_code=35, api_keys=[
        ApiVersionsResponse.ApiVersion(api_key=18, min_version=0, max_version=4)])
    assert encode_response(18, 0, 1, body) == API_VERSIONS_UNSUPPORTED
    assert decode_response(18, 0, API_VERSIONS_UNSUPPORTED[4:])[1] == body


def test_unknown_api_versions_version_is_read_with_header_v2_and_carries_the_header():
    # v5 is flexible by the 3+ rule: client id (int16 length) then a tagged-field count byte.
    # The body is not parsed at all (Kafka treats it as an empty v0 request).
    frame = H("0012000500000009") + b"\x00\x07rdkafka" + b"\x00" + b"\xff\xff garbage"
    with pytest.raises(UnsupportedVersionError) as info:
        decode_request(frame)
    exc = info.value
    assert (exc.api_key, exc.api_version, exc.error_code) == (18, 5, 35)
    assert (exc.header.correlation_id, exc.header.client_id) == (9, "rdkafka")
    assert exc.header.request_api_version == 5


def test_unknown_old_version_is_read_with_header_v1():
    min_produce = protocol.REGISTRY.messages[("request", "Produce")].versions[0]
    assert min_produce > 0
    frame = struct.pack(">hhih", 0, min_produce - 1, 3, 2) + b"ab" + b"\x99"
    with pytest.raises(UnsupportedVersionError) as info:
        decode_request(frame)
    assert info.value.header.client_id == "ab" and info.value.header.correlation_id == 3


def test_unknown_api_key():
    frame = struct.pack(">hhih", 999, 0, 3, -1)
    with pytest.raises(UnsupportedVersionError) as info:
        decode_request(frame)
    assert info.value.api_key == 999 and info.value.header is None
    with pytest.raises(UnsupportedVersionError):
        encode_response(999, 0, 1, ApiVersionsResponse())


def test_short_frame_is_a_decode_error_with_position():
    with pytest.raises(DecodeError) as info:
        decode_request(b"\x00\x12\x00")
    assert info.value.position is not None


# --- header versions ---------------------------------------------------------------------------

def body_bytes(cls, version, obj):
    return protocol.encode(cls, version, obj)


@pytest.mark.parametrize("version,flexible", [(8, False), (9, True), (12, True)])
def test_request_header_version_follows_flexibility(version, flexible):
    body = MetadataRequest(topics=None, allow_auto_topic_creation=True)
    out = encode_request(3, version, 77, "cid", body)
    head = struct.pack(">hhih", 3, version, 77, 3) + b"cid" + (b"\x00" if flexible else b"")
    assert out[4:] == head + body_bytes(MetadataRequest, version, body)


@pytest.mark.parametrize("key,cls,version,tag_byte", [
    (3, messages.MetadataResponse, 8, False), (3, messages.MetadataResponse, 9, True),
    (18, ApiVersionsResponse, 3, False), (18, ApiVersionsResponse, 4, False),
    (18, ApiVersionsResponse, 2, False)])
def test_response_header_version_follows_flexibility_except_api_versions(key, cls, version,
                                                                        tag_byte):
    body = cls(throttle_time_ms=5)
    out = encode_response(key, version, 1234, body)
    expect = struct.pack(">i", 1234) + (b"\x00" if tag_byte else b"") + body_bytes(cls, version, body)
    assert out == struct.pack(">i", len(expect)) + expect


def test_null_client_id_reads_as_empty_string_like_kafka():
    out = encode_request(18, 0, 1, None, ApiVersionsRequest())
    assert out[12:14] == b"\xff\xff"
    header, _ = decode_request(out[4:])
    assert header.client_id == ""


def test_trailing_bytes_after_the_request_body_are_ignored_like_kafka():
    frame = API_VERSIONS_V3_REQUEST[4:]
    assert decode_request(frame + b"\x01\x02\x03") == decode_request(frame)


# --- records: zero-copy in, bytes-like or FileRegion out --------------------------------------

def produce_request(records):
    return ProduceRequest(acks=-1, timeout_ms=1000, topic_data=[ProduceRequest.TopicProduceData(
        name="t", partition_data=[ProduceRequest.PartitionProduceData(index=0, records=records)])])


@pytest.mark.parametrize("version", [3, 8, 9, 12])
def test_records_decode_to_a_view_of_the_frame(version):
    batch = bytes(range(256)) * 4
    frame = bytearray(encode_request(0, version, 1, "c", produce_request(batch))[4:])
    _, body = decode_request(frame)
    records = body.topic_data[0].partition_data[0].records
    assert isinstance(records, memoryview) and records.obj is frame
    assert records == batch
    at = frame.index(batch)
    frame[at] ^= 0xFF                      # the view sees the frame: nothing was copied
    assert records[0] == batch[0] ^ 0xFF


@pytest.mark.parametrize("records", [b"abc", bytearray(b"abc"), memoryview(b"xabcx")[1:4], None])
def test_records_encode_from_bytes_like_or_null(records):
    out = encode_request(0, 9, 1, "c", produce_request(records))
    _, body = decode_request(out[4:])
    got = body.topic_data[0].partition_data[0].records
    assert (got is None) if records is None else (got == b"abc")


@pytest.mark.parametrize("version", [11, 12, 16])
def test_file_region_becomes_a_separate_part(version):
    data = b"R" * 100

    def response(records):
        return FetchResponse(responses=[FetchResponse.FetchableTopicResponse(topic="t", partitions=[
            FetchResponse.PartitionData(partition_index=0, high_watermark=5, records=records)])])

    region = FileRegion("segment.log", 4096, len(data))
    parts = encode_response_parts(1, version, 9, response(region))
    assert [type(p) for p in parts] == [bytes, FileRegion, bytes] and parts[1] is region
    joined = parts[0] + data + parts[2]
    assert joined == encode_response(1, version, 9, response(data))
    with pytest.raises(EncodeError):
        encode_response(1, version, 9, response(region))


# --- tagged fields -----------------------------------------------------------------------------

def test_tagged_fields_are_written_only_when_not_default():
    plain = body_bytes(ApiVersionsResponse, 3, ApiVersionsResponse(finalized_features_epoch=-1))
    assert plain.endswith(b"\x00\x00\x00\x00\x00")     # throttle 0, no tagged fields
    tagged = body_bytes(ApiVersionsResponse, 3, ApiVersionsResponse(finalized_features_epoch=5))
    assert tagged == plain[:-1] + b"\x01" + b"\x01\x08" + struct.pack(">q", 5)


def test_unknown_tags_are_kept_and_rewritten_in_tag_order():
    base = body_bytes(ApiVersionsResponse, 3, ApiVersionsResponse())[:-1]
    # tags 1 (known: FinalizedFeaturesEpoch), 5 and 9 (unknown) in ascending order
    section = b"\x03" + b"\x01\x08" + struct.pack(">q", 7) + b"\x05\x02ab" + b"\x09\x00"
    got = protocol.decode(ApiVersionsResponse, 3, base + section)
    assert got.finalized_features_epoch == 7
    assert got.unknown_tagged == [(5, b"ab"), (9, b"")]
    assert body_bytes(ApiVersionsResponse, 3, got) == base + section
    got.unknown_tagged = [(9, b""), (5, b"ab")]          # any order in, tag order out
    assert body_bytes(ApiVersionsResponse, 3, got) == base + section
    got.unknown_tagged = [(1, b"zz")]                     # collides with a known tag
    with pytest.raises(EncodeError):
        body_bytes(ApiVersionsResponse, 3, got)


def test_unknown_tags_cannot_be_written_in_a_version_without_tagged_fields():
    body = ApiVersionsResponse(unknown_tagged=[(9, b"")])
    body_bytes(ApiVersionsResponse, 3, body)
    with pytest.raises(EncodeError, match="tagged"):
        body_bytes(ApiVersionsResponse, 2, body)


def test_a_tagged_value_cannot_read_past_its_own_size():
    base = body_bytes(ApiVersionsResponse, 3, ApiVersionsResponse())[:-1]
    section = b"\x01" + b"\x01\x02" + struct.pack(">q", 7)   # says 2 bytes, int64 needs 8
    with pytest.raises(DecodeError):
        protocol.decode(ApiVersionsResponse, 3, base + section)


def test_unknown_tags_in_nested_structs():
    v = 12
    obj = FetchRequest(topics=[FetchRequest.FetchTopic(topic="t", partitions=[
        FetchRequest.FetchPartition(partition=1, unknown_tagged=[(40, b"\x01")])],
        unknown_tagged=[(41, b"")])], unknown_tagged=[(42, b"xyz")])
    got = protocol.decode(FetchRequest, v, body_bytes(FetchRequest, v, obj))
    assert got == obj
    assert got.topics[0].partitions[0].unknown_tagged == [(40, b"\x01")]


# --- encode errors -----------------------------------------------------------------------------

def test_non_default_value_in_a_field_the_version_lacks():
    resp = FetchResponse(responses=[FetchResponse.FetchableTopicResponse(partitions=[
        FetchResponse.PartitionData(current_leader=FetchResponse.LeaderIdAndEpoch(leader_id=3))])])
    with pytest.raises(EncodeError, match="CurrentLeader"):
        encode_response(1, 11, 1, resp)          # CurrentLeader is v12+ and not ignorable
    encode_response(1, 12, 1, resp)


def test_ignorable_field_the_version_lacks_is_dropped():
    req = produce_request(b"x")
    req.topic_data[0].topic_id = uuid.UUID(int=5).bytes   # TopicId: v13+ ignorable
    _, got = decode_request(encode_request(0, 9, 1, "c", req)[4:])
    assert got.topic_data[0].topic_id == ZERO_UUID and got.topic_data[0].name == "t"


@pytest.mark.parametrize("mutate", [
    lambda r: setattr(r, "acks", None),                     # null in a non-nullable field
    lambda r: setattr(r, "acks", 2 ** 15),                  # out of int16 range
    lambda r: setattr(r, "timeout_ms", "10"),               # wrong type
    lambda r: setattr(r, "topic_data", None),               # non-nullable array
    lambda r: setattr(r, "topic_data", [None]),             # null element
    lambda r: setattr(r.topic_data[0], "name", 5),          # not a str
    lambda r: setattr(r.topic_data[0], "name", "\ud800"),   # not encodable as UTF-8
    lambda r: setattr(r.topic_data[0], "name", "n" * 40000),  # over Kafka's 32767-byte cap
    lambda r: setattr(r.topic_data[0].partition_data[0], "records", "text"),
    lambda r: delattr(r, "acks"),
])
def test_values_that_cannot_be_written(mutate):
    req = produce_request(b"x")
    mutate(req)
    with pytest.raises(EncodeError):
        encode_request(0, 8, 1, "c", req)


@pytest.mark.parametrize("version", [8, 9])
def test_strings_are_capped_at_32767_bytes_compact_or_not(version):
    req = produce_request(b"x")
    req.topic_data[0].name = "é" * 16383 + "a"             # 32767 bytes: the largest allowed
    _, got = decode_request(encode_request(0, version, 1, "c", req)[4:])
    assert got.topic_data[0].name == req.topic_data[0].name
    req.topic_data[0].name += "a"
    with pytest.raises(EncodeError):
        encode_request(0, version, 1, "c", req)


def test_uuid_accepts_uuid_objects_and_checks_length():
    topic = uuid.uuid4()
    req = produce_request(b"x")
    req.topic_data[0].topic_id = topic
    _, got = decode_request(encode_request(0, 13, 1, "c", req)[4:])
    assert got.topic_data[0].topic_id == topic.bytes
    req.topic_data[0].topic_id = b"short"
    with pytest.raises(EncodeError):
        encode_request(0, 13, 1, "c", req)


# --- typed classes -----------------------------------------------------------------------------

def test_class_defaults_come_from_the_spec():
    req = FetchRequest()
    assert req.replica_id == -1 and req.max_bytes == 0x7FFFFFFF and req.isolation_level == 0
    assert req.cluster_id is None and req.rack_id == "" and req.topics == []
    assert req.replica_state == FetchRequest.ReplicaState(replica_id=-1, replica_epoch=-1)
    part = FetchRequest.FetchPartition()
    assert part.replica_directory_id == ZERO_UUID and part.high_watermark == 2**63 - 1
    assert FetchResponse.PartitionData().records is None
    assert ProduceRequest().transactional_id is None
    assert ApiVersionsResponse().zk_migration_ready is False
    assert FetchRequest().topics is not FetchRequest().topics       # fresh lists per instance


def test_classes_are_slotted_keyword_only_and_compare_by_value():
    a = ProduceResponse(throttle_time_ms=3)
    assert a == ProduceResponse(throttle_time_ms=3) and a != ProduceResponse(throttle_time_ms=4)
    assert a != ProduceRequest()
    with pytest.raises(TypeError):
        hash(a)
    with pytest.raises(TypeError):
        ProduceResponse(3)
    with pytest.raises(TypeError):
        ProduceResponse(no_such_field=1)
    with pytest.raises(AttributeError):
        a.no_such_field = 1
    assert ProduceResponse(unknown_tagged=[]) == ProduceResponse(unknown_tagged=None)
    assert repr(a).startswith("ProduceResponse(responses=[], throttle_time_ms=3")
    assert ProduceRequest.PartitionProduceData.__qualname__ == "ProduceRequest.PartitionProduceData"
    assert "memoryview 4 bytes" in repr(ProduceRequest.PartitionProduceData(
        records=memoryview(b"abcd")))
    assert a.to_dict() == {"responses": [], "throttle_time_ms": 3, "node_endpoints": []}


def test_data_schemas_by_class_or_name():
    sub = ConsumerProtocolSubscription(topics=["a", "b"], user_data=b"u", generation_id=4)
    out = protocol.encode("ConsumerProtocolSubscription", 2, sub)
    assert protocol.decode(ConsumerProtocolSubscription, 2, out) == sub
    assert protocol.decode(ConsumerProtocolSubscription, 1, protocol.encode(
        ConsumerProtocolSubscription, 1, sub)).generation_id == -1   # v2+ ignorable: dropped
    with pytest.raises(UnsupportedVersionError):
        protocol.encode(ConsumerProtocolSubscription, 99, sub)
