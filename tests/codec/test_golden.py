"""Golden frames from real clients (tests/golden/): every captured request and response decodes
with pybroker's codec and re-encodes to the same bytes; a few decoded values are checked against
what the clients did (tests/golden/clients/scenario.py).

Frames are stored without their 4-byte size prefix (tests/golden/README.md); the encoders return
the prefix, so the expected encoding is `size + frame`.
"""
import collections
import functools
import importlib.util
import json
import pathlib
import re
import struct

import pytest

GOLDEN = pathlib.Path(__file__).resolve().parents[1] / "golden"
FRAMES = GOLDEN / "frames"
INDEX = json.loads((FRAMES / "index.json").read_text())["frames"]

protocol = pytest.importorskip("pybroker.codec.protocol",
                               reason="pybroker.codec.protocol (the codec engine) is not there yet")
records = pytest.importorskip("pybroker.codec.records")
from pybroker.protocol.apis import API_BY_KEY  # noqa: E402

PRODUCE, FETCH, OFFSET_COMMIT, JOIN_GROUP, API_VERSIONS, INIT_PRODUCER_ID = 0, 1, 8, 11, 18, 22
CLIENTS = sorted({e["client"] for e in INDEX})
CODECS = {0, 1, 2, 3, 4}   # none, gzip, snappy, lz4, zstd
SOFTWARE_NAMES = {"confluent-kafka": "confluent-kafka-python", "kafka-python": "kafka-python",
                  "aiokafka": "aiokafka", "java": "apache-kafka-java"}


def _load_scenario():
    spec = importlib.util.spec_from_file_location("golden_scenario", GOLDEN / "clients" / "scenario.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SCENARIO = _load_scenario()


@functools.lru_cache(maxsize=None)
def frame(name):
    return (FRAMES / name).read_bytes()


def entries(client=None, api_key=None, direction=None):
    return [e for e in INDEX
            if (client is None or e["client"] == client)
            and (api_key is None or e["api_key"] == api_key)
            and (direction is None or e["direction"] == direction)]


def require_supported(entry):
    """Skips frames of an (api, version) that pybroker's protocol table does not define."""
    api = API_BY_KEY.get(entry["api_key"])
    if api is None or not api.supports(entry["api_version"]):
        pytest.skip(f"{entry['api_name']} v{entry['api_version']} (sent by {entry['client_version']}) "
                    f"is not in pybroker's protocol table")


def decode(entry):
    """(header, body) of an index entry's frame."""
    data = frame(entry["file"])
    if entry["direction"] == "request":
        return protocol.decode_request(data)
    return protocol.decode_response(entry["api_key"], entry["api_version"], data)


def decoded(client, api_key, direction):
    """(entry, header, body) for the frames of one client/API/direction that our table supports."""
    out = []
    for e in entries(client, api_key, direction):
        api = API_BY_KEY.get(api_key)
        if api is not None and api.supports(e["api_version"]):
            out.append((e, *decode(e)))
    if not out:
        pytest.skip(f"no {direction} of api {api_key} from {client} that pybroker's table supports")
    return out


def _id(entry):
    return entry["file"]


# --- the captured files themselves ---------------------------------------------------------------

def test_index_covers_every_client_and_the_required_apis():
    assert set(CLIENTS) == {"confluent-kafka", "kafka-python", "aiokafka", "java"}
    required = {18, 3, 0, 1, 10, 11, 14, 12, 8, 22, 19, 20, 32}  # ApiVersions ... DescribeConfigs
    for client in CLIENTS:
        keys = {e["api_key"] for e in entries(client)}
        assert required <= keys, (client, sorted(required - keys))
    assert all((FRAMES / e["file"]).is_file() for e in INDEX)
    assert {p.relative_to(FRAMES).as_posix() for p in FRAMES.rglob("*.bin")} == {e["file"] for e in INDEX}


@pytest.mark.parametrize("entry", INDEX, ids=_id)
def test_raw_header_matches_index(entry):
    # request:  i16 api_key | i16 api_version | i32 correlation_id | i16 len + client_id | [tags]
    # response: i32 correlation_id | ...
    data = frame(entry["file"])
    assert len(data) == entry["size"]
    if entry["direction"] == "request":
        assert struct.unpack_from(">hhi", data) == (entry["api_key"], entry["api_version"],
                                                    entry["correlation_id"])
        (length,) = struct.unpack_from(">h", data, 8)
        assert data[10:10 + length].decode() == entry["client_id"]
    else:
        assert struct.unpack_from(">i", data)[0] == entry["correlation_id"]


# --- byte-identical round trips ------------------------------------------------------------------

@pytest.mark.parametrize("entry", entries(direction="request"), ids=_id)
def test_request_round_trip(entry):
    require_supported(entry)
    data = frame(entry["file"])
    header, body = protocol.decode_request(data)
    assert (header.request_api_key, header.request_api_version, header.correlation_id,
            header.client_id) == (entry["api_key"], entry["api_version"], entry["correlation_id"],
                                  entry["client_id"])
    out = protocol.encode_request(header.request_api_key, header.request_api_version,
                                  header.correlation_id, header.client_id, body)
    assert bytes(out) == struct.pack(">i", len(data)) + data


@pytest.mark.parametrize("entry", entries(direction="response"), ids=_id)
def test_response_round_trip(entry):
    require_supported(entry)
    data = frame(entry["file"])
    header, body = protocol.decode_response(entry["api_key"], entry["api_version"], data)
    assert header.correlation_id == entry["correlation_id"]
    out = protocol.encode_response(entry["api_key"], entry["api_version"], header.correlation_id, body)
    assert bytes(out) == struct.pack(">i", len(data)) + data


@pytest.mark.parametrize("entry", [e for e in entries(direction="request")
                                   if e["api_key"] in API_BY_KEY
                                   and API_BY_KEY[e["api_key"]].is_flexible(e["api_version"])], ids=_id)
def test_flexible_request_header_tags_are_empty_and_kept(entry):
    # header v2: ... | i16 len + client_id | uvarint tag count (0 = no tagged fields) | body
    data = frame(entry["file"])
    end_of_client_id = 10 + struct.unpack_from(">h", data, 8)[0]
    assert data[end_of_client_id] == 0
    require_supported(entry)
    header, body = protocol.decode_request(data)
    out = protocol.encode_request(entry["api_key"], entry["api_version"], entry["correlation_id"],
                                  header.client_id, body)
    assert bytes(out)[4 + end_of_client_id] == 0


# --- decoded values ------------------------------------------------------------------------------

@pytest.mark.parametrize("client", CLIENTS)
def test_api_versions_request_software(client):
    flexible = [(e, h, b) for e, h, b in decoded(client, API_VERSIONS, "request") if e["api_version"] >= 3]
    if not flexible:
        pytest.skip(f"{client} sends ApiVersions v{entries(client, API_VERSIONS)[0]['api_version']} "
                    f"(no software name before v3)")
    valid = re.compile(r"[a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])?\Z")   # Kafka's check
    client_version = re.search(r"\d+\.\d+\.\d+", flexible[0][0]["client_version"]).group()
    for entry, header, body in flexible:
        assert body.client_software_name == SOFTWARE_NAMES[client]
        assert client_version in body.client_software_version
        assert valid.match(body.client_software_name) and valid.match(body.client_software_version)


@pytest.mark.parametrize("client", CLIENTS)
def test_api_versions_response_covers_what_the_client_used(client):
    used = collections.defaultdict(set)
    for e in entries(client, direction="request"):
        if e["client_id"].startswith(("broker-", "AddPartitionsManager")):
            continue   # requests the broker itself sent through the proxy
        used[e["api_key"]].add(e["api_version"])
    for entry, header, body in decoded(client, API_VERSIONS, "response"):
        assert body.error_code == 0
        ranges = {k.api_key: (k.min_version, k.max_version) for k in body.api_keys}
        for key, versions in used.items():
            assert ranges[key][0] <= min(versions) and max(versions) <= ranges[key][1], (key, versions)


def _scenario_records(client):
    return SCENARIO.records(null_header_values=client != "kafka-python")


def _batches(buf):
    return list(records.iter_batches(buf)) if buf is not None else []


def _record_tuples(batch):
    return [(r.key and bytes(r.key), None if r.value is None else bytes(r.value),
             [(k, None if v is None else bytes(v)) for k, v in r.headers]) for r in batch.records()]


@pytest.mark.parametrize("client", CLIENTS)
def test_produce_requests_carry_each_codec_with_the_scenario_records(client):
    expected = [(k, v, list(h)) for k, v, h in _scenario_records(client)]
    codecs = set()
    for entry, header, body in decoded(client, PRODUCE, "request"):
        for topic in body.topic_data:
            for partition in topic.partition_data:
                for batch in _batches(partition.records):
                    batch.validate()
                    assert batch.magic == 2 and batch.producer_id >= 0   # idempotent producers
                    if batch.is_transactional:
                        continue   # the Java client's one transactional record
                    codecs.add(batch.compression)
                    assert batch.records_count == len(expected) and batch.base_sequence == 0
                    assert _record_tuples(batch) == expected
    assert codecs == CODECS


@pytest.mark.parametrize("client", CLIENTS)
def test_fetch_responses_return_each_codec(client):
    expected = [(k, v, list(h)) for k, v, h in _scenario_records(client)]
    codecs = set()
    for entry, header, body in decoded(client, FETCH, "response"):
        assert body.error_code == 0
        for topic in body.responses:
            for partition in topic.partitions:
                assert partition.error_code == 0
                for batch in _batches(partition.records):
                    batch.validate()
                    codecs.add(batch.compression)
                    assert _record_tuples(batch) == expected
    assert codecs == CODECS


@pytest.mark.parametrize("client", CLIENTS)
def test_init_producer_id_gives_a_producer_id(client):
    # librdkafka's first try can meet COORDINATOR_LOAD_IN_PROGRESS (14) on a fresh broker
    bodies = [b for _, _, b in decoded(client, INIT_PRODUCER_ID, "response")]
    assert {b.error_code for b in bodies} <= {0, 14}
    assert all(b.producer_id == -1 for b in bodies if b.error_code)
    granted = [b for b in bodies if b.error_code == 0]
    assert granted and all(b.producer_id >= 0 and b.producer_epoch >= 0 for b in granted)


@pytest.mark.parametrize("client", CLIENTS)
def test_offset_commit_commits_the_end_of_each_partition(client):
    per_partition = len(SCENARIO.RECORDS)
    for entry, header, body in decoded(client, OFFSET_COMMIT, "request"):
        offsets = [p.committed_offset for t in body.topics for p in t.partitions]
        assert offsets and set(offsets) == {per_partition}


@pytest.mark.parametrize("client", CLIENTS)
def test_join_group_single_member_becomes_leader(client):
    requests = decoded(client, JOIN_GROUP, "request")
    assert all(b.protocol_type == "consumer" and b.protocols for _, _, b in requests)
    bodies = [b for _, _, b in decoded(client, JOIN_GROUP, "response")]
    # first tries may meet NOT_COORDINATOR (16), REBALANCE_IN_PROGRESS (27), MEMBER_ID_REQUIRED (79)
    assert {b.error_code for b in bodies} <= {0, 16, 27, 79}
    assert all(b.member_id for b in bodies if b.error_code == 79)
    joined = [b for b in bodies if b.error_code == 0]
    assert joined
    for b in joined:
        assert b.generation_id >= 1 and b.protocol_name in ("range", "roundrobin", "cooperative-sticky")
        assert b.leader == b.member_id and [m.member_id for m in b.members] == [b.member_id]
