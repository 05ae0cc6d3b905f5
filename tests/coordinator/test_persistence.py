"""__consumer_offsets: record encoding, our record schemas against Kafka's, and reloading groups and
offsets from the log (a broker restart, or a partition's leadership arriving here)."""
import importlib.util

import pytest
from coordinator_harness import T_ID, U_ID, Harness, run
from pbtest import REPO, SHARED

from pybroker.codec import records as batches
from pybroker.codec.errors import DecodeError
from pybroker.coordinator import records as rec
from pybroker.coordinator.classic import EMPTY, STABLE
from pybroker.coordinator.storage import encode_batch, iter_records
from pybroker.protocol import schema

COORDINATOR_SPEC = SHARED / "kafka-protocol-spec" / "coordinator"
RECORD_SCHEMAS = ["OffsetCommitKey", "OffsetCommitValue", "GroupMetadataKey", "GroupMetadataValue",
                  "ConsumerGroupMetadataKey", "ConsumerGroupMetadataValue",
                  "ConsumerGroupPartitionMetadataKey", "ConsumerGroupPartitionMetadataValue",
                  "ConsumerGroupMemberMetadataKey", "ConsumerGroupMemberMetadataValue",
                  "ConsumerGroupTargetAssignmentMetadataKey",
                  "ConsumerGroupTargetAssignmentMetadataValue",
                  "ConsumerGroupTargetAssignmentMemberKey",
                  "ConsumerGroupTargetAssignmentMemberValue",
                  "ConsumerGroupCurrentMemberAssignmentKey",
                  "ConsumerGroupCurrentMemberAssignmentValue"]


def _conformance():
    """The field-by-field JSON comparison of tests/protocol (its own JSON reader)."""
    path = REPO / "tests" / "protocol" / "test_spec_conformance.py"
    spec = importlib.util.spec_from_file_location("_spec_conformance_for_coordinator", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", RECORD_SCHEMAS)
def test_record_schemas_match_kafkas(name):
    if not COORDINATOR_SPEC.is_dir():
        pytest.skip("../shared/kafka-protocol-spec/coordinator is not present")
    conformance = _conformance()
    ours = schema.load_all(str(REPO / "pybroker" / "coordinator"))
    spec = conformance.load_json(COORDINATOR_SPEC / f"{name}.json")
    problems = conformance.diff_message(spec, ours[("data", name)])
    # Kafka's JSON gives ClassicMemberMetadata `"default": null` (a JSON null, which the reader
    # takes as "no default"); we write default=null: an absent tag reads as None, i.e. not a
    # classic member. The bytes are the same both ways (see the round trip through Kafka below).
    problems = [p for p in problems if "ClassicMemberMetadata: default" not in p]
    assert problems == [], "\n".join(problems)


def test_record_round_trip_and_key_layout():
    oam = type("OAM", (), dict(offset=42, leader_epoch=7, metadata="m", commit_timestamp_ms=1000,
                               expire_timestamp_ms=None))()
    record = rec.offset_commit("grp", "topic", 3, oam)
    key = record.key_bytes()
    # int16 key version 1 | string group | string topic | int32 partition
    assert key == b"\x00\x01" + b"\x00\x03grp" + b"\x00\x05topic" + b"\x00\x00\x00\x03"
    value = record.value_bytes()
    # int16 value version 3 | int64 offset | int32 leader epoch | string metadata | int64 ts
    assert value == (b"\x00\x03" + (42).to_bytes(8, "big") + (7).to_bytes(4, "big") +
                     b"\x00\x01m" + (1000).to_bytes(8, "big"))
    back = rec.decode(key, value)
    assert (back.type, back.key.group, back.value.offset, back.value.leader_epoch) == \
        (1, "grp", 42, 7)
    tomb = rec.decode(key, None)
    assert tomb.value is None
    assert rec.decode(b"\x00\x63whatever", b"") is None          # a type we do not keep
    with pytest.raises(DecodeError):
        rec.decode(b"\x00", None)
    with pytest.raises(DecodeError):
        rec.decode(key, b"\x00\x03\x00")


def test_batch_of_records_round_trips():
    records = [rec.consumer_group_epoch("g", 5), rec.group_metadata_tombstone("h"),
               rec.consumer_group_target_assignment("g", "m", {T_ID: {1, 2}, U_ID: set()})]
    batch = encode_batch(records, 1234)
    view = batches.RecordBatch(batch)
    view.validate()
    assert view.records_count == 3 and view.base_timestamp == 1234
    back = list(iter_records(batch))
    assert [r.type for r in back] == [3, 2, 7]
    assert back[0].value.epoch == 5 and back[1].value is None
    assert [(tp.topic_id, tp.partitions) for tp in back[2].value.topic_partitions] == \
        [(T_ID, [1, 2])]


def test_expire_timestamp_is_written_as_value_version_1():
    oam = type("OAM", (), dict(offset=1, leader_epoch=5, metadata="", commit_timestamp_ms=10,
                               expire_timestamp_ms=99))()
    record = rec.offset_commit("g", "t", 0, oam)
    back = rec.decode(record.key_bytes(), record.value_bytes())
    assert back.value_version == 1 and back.value.expire_timestamp == 99


@run
async def test_reload_restores_a_stable_classic_group_and_its_offsets():
    h = Harness()
    await h.start()
    ids, leader, generation = await h.stable_group(n=2)
    await h.commit("g", {("t", 0): (11, "meta-0"), ("t", 1): (12, "")}, generation=generation,
                   member_id=ids[0])
    await h.commit("lonely", {("u", 2): (5, "x")})
    co = await h.restart()
    group = h.group("g")
    assert group.state == STABLE and group.generation_id == generation
    assert group.leader_id == leader and set(group.members) == set(ids)
    assert {m.member_id: m.assignment for m in group.members.values()} == \
        {x: x.encode() for x in ids}
    assert h.heartbeat("g", generation, ids[1]) == 0      # members carry on after a restart
    _, fetched = await h.fetch("g", None)
    assert fetched == {("t", 0): (11, "meta-0", 0), ("t", 1): (12, "", 0)}
    assert (await h.fetch("lonely", None))[1] == {("u", 2): (5, "x", 0)}
    assert h.group("lonely").state == EMPTY and co.active


@run
async def test_reload_after_restart_members_that_stay_silent_expire():
    h = Harness()
    await h.start()
    ids, leader, generation = await h.stable_group(n=2, session=10000)
    await h.restart()
    await h.advance(10000)
    assert h.group("g").state != STABLE and not h.group("g").members


@run
async def test_reload_restores_a_consumer_group():
    h = Harness()
    await h.start()
    for m in ("m1", "m2"):
        await h.cgh(member_id=m, topics=("t", "u"))
    for _ in range(4):
        for m in ("m1", "m2"):
            member = h.group("g").members[m]
            await h.cgh(member_id=m, epoch=member.member_epoch, owned=member.assigned,
                        topics=("t", "u"))
    before = h.group("g")
    snapshot = (before.group_epoch, before.assignment_epoch, dict(before.target_assignment),
                {m.member_id: m for m in before.members.values()}, before.subscription_metadata)
    await h.restart()
    after = h.group("g")
    assert after.type == "consumer"
    assert (after.group_epoch, after.assignment_epoch, after.target_assignment,
            {m.member_id: m for m in after.members.values()},
            after.subscription_metadata) == snapshot
    assert after.partition_epochs == before.partition_epochs
    member = after.members["m1"]
    again = await h.cgh(member_id="m1", epoch=member.member_epoch, owned=member.assigned,
                        topics=("t", "u"))
    assert again.error_code == 0 and again.member_epoch == member.member_epoch


@run
async def test_deleted_groups_and_left_members_stay_gone_after_reload():
    h = Harness()
    await h.start()
    await h.cgh(member_id="m1")
    await h.cgh(member_id="m1", epoch=-1, full=False)
    await h.commit("g", {("t", 0): (1, "")})
    assert await h.co.delete_groups(h.info(), ["g"]) == [("g", 0)]
    await h.commit("h", {("t", 0): (1, "")})
    await h.restart()
    assert h.group("g") is None
    assert (await h.fetch("g", None))[1] == {}
    assert (await h.fetch("h", None))[1] == {("t", 0): (1, "", 0)}


@run
async def test_groups_are_spread_over_shards_and_unloading_moves_them_away():
    h = Harness(offsets_topic_num_partitions=4)
    await h.start()
    partitions = {h.co.partition_for(f"group-{i}") for i in range(40)}
    assert partitions == {0, 1, 2, 3}
    await h.commit("g", {("t", 0): (1, "")})
    p = h.co.partition_for("g")
    h.co.on_resigned(p)
    assert (await h.commit("g", {("t", 0): (2, "")})) == {("t", 0): 16}   # NOT_COORDINATOR
    assert h.co.find_coordinator("g") == 15                                # not here anymore
    await h.co.on_elected(p)
    assert (await h.fetch("g", None))[1] == {("t", 0): (1, "", 0)}


@run
async def test_unloading_answers_parked_joins_not_coordinator():
    h = Harness()
    await h.start()
    ids, leader, generation = await h.stable_group(n=2)
    parked = h.join(member_id=ids[0])
    await h.settle()
    assert not parked.done()
    h.co.on_resigned(h.co.partition_for("g"))
    assert (await parked).error_code == 16


@run
async def test_corrupt_log_fails_the_load_with_a_typed_error():
    h = Harness()
    h.log.partitions[h.co.partition_for("g")] = [b"\x00" * 70]
    h.co.start()
    with pytest.raises(Exception) as info:
        await h.co.on_elected(h.co.partition_for("g"))
    assert type(info.value).__name__ in ("CorruptRecordError", "DecodeError", "InvalidRecordError")
    assert h.co.partition_for("g") not in h.co.shards


def test_every_group_record_type_of_kafka_has_a_definition():
    if not COORDINATOR_SPEC.is_dir():
        pytest.skip("../shared/kafka-protocol-spec/coordinator is not present")
    conformance = _conformance()
    files = [p for p in COORDINATOR_SPEC.glob("*.json")
             if p.stem.startswith(("OffsetCommit", "GroupMetadata", "ConsumerGroup"))]
    assert {conformance.load_json(p)["name"] for p in files} == set(RECORD_SCHEMAS)


# --- byte-for-byte against Apache Kafka's own record serde -------------------------------------

def _sample_records():
    from pybroker.coordinator.classic import ClassicGroup, ClassicGroupMember
    from pybroker.coordinator.consumer import ConsumerGroupMember
    from pybroker.coordinator.offsets import OffsetAndMetadata
    group = ClassicGroup("grp", 1700000000000, generation_id=4, protocol_type="consumer",
                         protocol_name="range", leader_id="m-1")
    group.add(ClassicGroupMember("m-1", None, "c1", "/10.0.0.1", 30000, 10000, "consumer",
                                 [("range", b"\x00\x00sub")], b"asg"))
    group.add(ClassicGroupMember("m-2", "inst-2", "c2", "/10.0.0.2", 60000, 45000, "consumer",
                                 [("range", b"")], b""))
    member = ConsumerGroupMember("u-1", instance_id="i-1", rack_id="r1", client_id="c",
                                 client_host="/h", subscribed_topic_names=("t", "u"),
                                 subscribed_topic_regex="x.*", rebalance_timeout_ms=30000,
                                 server_assignor="range", member_epoch=7,
                                 previous_member_epoch=6, state=1,
                                 assigned={T_ID: frozenset({0, 2})},
                                 pending_revocation={U_ID: frozenset({1})})
    classic_member = member.copy(classic_protocols=(("range", b"\x01\x02"),),
                                 classic_session_timeout_ms=45000)
    return [
        rec.offset_commit("grp", "t", 3, OffsetAndMetadata(42, 5, "meta", 1000, None)),
        rec.offset_commit("grp", "t", 3, OffsetAndMetadata(42, -1, "", 1000, 2000)),
        rec.offset_commit_tombstone("grp", "t", 3),
        rec.group_metadata(group, {"m-1": b"A", "m-2": b"B"}),
        rec.empty_group_metadata(ClassicGroup("e", 5)),
        rec.group_metadata_tombstone("grp"),
        rec.consumer_group_epoch("cg", 9),
        rec.consumer_group_epoch_tombstone("cg"),
        rec.consumer_group_subscription_metadata("cg", {"t": (T_ID, 6), "u": (U_ID, 3)}),
        rec.consumer_group_member_subscription("cg", member),
        rec.consumer_group_member_subscription("cg", classic_member),
        rec.consumer_group_member_subscription_tombstone("cg", "u-1"),
        rec.consumer_group_target_assignment_epoch("cg", 9),
        rec.consumer_group_target_assignment("cg", "u-1", {T_ID: {0, 2}, U_ID: {1}}),
        rec.consumer_group_target_assignment_tombstone("cg", "u-1"),
        rec.consumer_group_current_assignment("cg", member),
        rec.consumer_group_current_assignment_tombstone("cg", "u-1"),
    ]


@pytest.mark.java
def test_records_are_byte_identical_to_what_kafka_writes_and_reads():
    import subprocess
    import kafka_tools
    libs = kafka_tools.libs()
    records = _sample_records()
    lines = []
    for r in records:
        value = r.value_bytes()
        lines.append(f"{r.key_bytes().hex()} {value.hex() if value is not None else '-'}")
    proc = subprocess.run(["java", "-cp", str(libs / "*"),
                           str(REPO / "tests" / "coordinator" / "RoundTripRecords.java")],
                          input="\n".join(lines) + "\n", capture_output=True, text=True,
                          timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout.splitlines()
    assert len(out) == len(records)
    for ours, theirs in zip(lines, out):
        bytes_back, described = theirs.split("\t", 1)
        assert bytes_back == ours, described
    text = "\n".join(out)
    for fragment in ("offset=42", "leaderEpoch=5", "metadata='meta'", "expireTimestamp=2000",
                     "groupInstanceId='inst-2'", "sessionTimeout=45000", "generation=4",
                     "epoch=9", "numPartitions=6", "subscribedTopicRegex='x.*'",
                     "memberEpoch=7", "previousMemberEpoch=6", "state=1", "assignmentEpoch=9",
                     "sessionTimeoutMs=45000", "name='range'"):
        assert fragment in text, fragment


# --- over the broker's own partition log ---------------------------------------------------------

async def _replicas(tmp_path, memory):
    from pybroker.config import BrokerConfig
    from pybroker.metadata.store import MetadataStore
    from pybroker.replica.manager import ReplicaManager
    from pybroker.replica.purgatory import Purgatory
    values = {"storage.type": "memory"} if memory else {"log.dirs": str(tmp_path / "data")}
    config = BrokerConfig(values)
    metadata = MetadataStore(None if memory else str(tmp_path / "meta"))
    replicas = ReplicaManager(config, metadata, Purgatory(), memory=memory)
    await replicas.start()
    if "__consumer_offsets" not in metadata.topics:
        replicas.create_topic("__consumer_offsets", 4, {"cleanup.policy": "compact"})
    return replicas, metadata


@pytest.mark.parametrize("memory", [True, False])
def test_offsets_and_groups_survive_a_restart_on_the_partition_log(tmp_path, memory):
    from pybroker.coordinator import GroupCoordinator, MetadataTopics
    from pybroker.coordinator.storage import PartitionOffsetsLog

    @run
    async def scenario():
        h = Harness()
        replicas, metadata = await _replicas(tmp_path, memory)
        metadata.create_topic("t", 6, {})
        h.topics = MetadataTopics(metadata)
        h.log = PartitionOffsetsLog(replicas)
        h.co = GroupCoordinator(h.config, h.log, h.topics, h.clock)
        await h.start()
        ids, leader, generation = await h.stable_group(n=2)
        assert await h.commit("g", {("t", 4): (400, "m")}, generation=generation,
                              member_id=ids[0]) == {("t", 4): 0}
        await h.cgh(group="kip848", member_id="m1")
        if memory:       # the same log, a new coordinator: a partition moving back here
            await h.restart()
        else:            # a broker restart: new replica manager over the same directory
            await h.co.stop()
            await replicas.stop()
            metadata.close()
            replicas, metadata = await _replicas(tmp_path, memory)
            h.topics = MetadataTopics(metadata)
            h.log = PartitionOffsetsLog(replicas)
            h.co = GroupCoordinator(h.config, h.log, h.topics, h.clock)
            await h.start()
        _, fetched = await h.fetch("g", None)
        assert fetched == {("t", 4): (400, "m", 0)}
        assert h.group("g").generation_id == generation and set(h.group("g").members) == set(ids)
        assert h.group("kip848").members["m1"].member_epoch == 1
        await h.co.stop()
        await replicas.stop()
        metadata.close()
    scenario()


@run
async def test_partition_log_that_is_not_hosted_answers_not_coordinator():
    from pybroker.coordinator.storage import PartitionOffsetsLog

    class NoPartitions:
        def partition(self, topic, index):
            return None

    h = Harness()
    h.log = PartitionOffsetsLog(NoPartitions())
    h.co = h.new_coordinator()
    h.co.start()
    with pytest.raises(Exception) as info:
        await h.co.on_elected(0)
    assert getattr(info.value, "error_code", None) == 6
