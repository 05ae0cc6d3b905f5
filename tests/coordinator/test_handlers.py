"""The API handlers of the coordinator at every version they serve: requests encoded and decoded by
the protocol codec, handled, and the responses encoded for that version (and decoded back)."""
import asyncio
import inspect
from types import SimpleNamespace

import pytest
from coordinator_harness import T_ID, Harness, run, subscription

from pybroker.api import (consumer_group_describe, consumer_group_heartbeat, delete_groups,
                          describe_groups, find_coordinator, heartbeat, join_group, leave_group,
                          list_groups, offset_commit, offset_delete, offset_fetch, sync_group)
from pybroker.api.context import RequestContext
from pybroker.codec import messages as M
from pybroker.codec.protocol import (decode_request, decode_response, encode_request,
                                     encode_response)

HANDLERS = [find_coordinator, join_group, sync_group, heartbeat, leave_group, offset_commit,
            offset_fetch, offset_delete, describe_groups, list_groups, delete_groups,
            consumer_group_heartbeat, consumer_group_describe]


class Wire:
    """Sends typed requests through the codec to a handler, as the broker's dispatcher does."""

    def __init__(self, h):
        self.h = h
        network = SimpleNamespace(advertised=lambda listener: ("broker.test", 9093))
        self.state = SimpleNamespace(group_coordinator=h.co, node_id=7,
                                     broker=SimpleNamespace(network=network))
        self.conn = SimpleNamespace(peer=("127.0.0.1", 50000), listener="PLAINTEXT")

    async def call(self, module, version, request, client_id="wire-client"):
        frame = encode_request(module.API_KEY, version, 1, client_id, request)
        header, body = decode_request(frame[4:])
        ctx = RequestContext(self.state, self.conn, header, module.API_KEY, version)
        result = module.handle(ctx, body)
        if inspect.isawaitable(result):
            result = await result
        out = encode_response(module.API_KEY, version, 1, result)
        _, back = decode_response(module.API_KEY, version, out[4:])
        return back


def test_versions_match_the_advertised_ranges():
    assert {m.API_KEY: m.VERSIONS for m in HANDLERS} == {
        10: (0, 6), 11: (0, 9), 14: (0, 5), 12: (0, 4), 13: (0, 5), 8: (2, 10), 9: (1, 10),
        47: (0, 0), 15: (0, 6), 16: (0, 5), 42: (0, 2), 68: (0, 1), 69: (0, 1)}
    for module in HANDLERS:
        assert module.__doc__ and str(module.API_KEY) in module.__doc__.split("\n")[0]


@pytest.mark.parametrize("version", range(0, 7))
def test_find_coordinator_every_version(version):
    @run
    async def scenario():
        h = Harness()
        await h.start()
        wire = Wire(h)
        R = M.FindCoordinatorRequest
        if version < 4:
            response = await wire.call(find_coordinator, version, R(key="g", key_type=0))
            assert (response.error_code, response.node_id, response.host, response.port) == \
                (0, 7, "broker.test", 9093)
            if version >= 1:
                txn = await wire.call(find_coordinator, version, R(key="tx", key_type=1))
                assert txn.error_code == 15 and txn.node_id == -1
        else:
            response = await wire.call(find_coordinator, version, R(
                key_type=0, coordinator_keys=["g", "h", ""]))
            assert [(c.key, c.error_code, c.node_id) for c in response.coordinators] == \
                [("g", 0, 7), ("h", 0, 7), ("", 0, 7)]
            share = await wire.call(find_coordinator, version, R(key_type=2,
                                                                 coordinator_keys=["x"]))
            assert share.coordinators[0].error_code == 15
            other = await wire.call(find_coordinator, version, R(key_type=3,
                                                                 coordinator_keys=["x"]))
            assert other.coordinators[0].error_code == 42
        h.co.active = False
        late = await wire.call(find_coordinator, version,
                               R(key="g") if version < 4 else R(coordinator_keys=["g"]))
        code = late.error_code if version < 4 else late.coordinators[0].error_code
        assert code == 15
    scenario()


@pytest.mark.parametrize("version", range(0, 10))
def test_join_sync_heartbeat_leave_every_version(version):
    @run
    async def scenario():
        h = Harness()
        await h.start()
        wire = Wire(h)
        J = M.JoinGroupRequest
        req = J(group_id="g", session_timeout_ms=10000, rebalance_timeout_ms=20000,
                member_id="", protocol_type="consumer",
                protocols=[J.JoinGroupRequestProtocol(name="range", metadata=subscription(["t"]))])
        task = asyncio.ensure_future(wire.call(join_group, version, req))
        await h.advance(0)
        response = await task
        if version >= 4:
            assert response.error_code == 79
            req.member_id = response.member_id
            task = asyncio.ensure_future(wire.call(join_group, version, req))
            await h.advance(0)
            response = await task
        assert response.error_code == 0 and response.generation_id == 1
        assert response.protocol_name == "range" and response.leader == response.member_id
        assert response.member_id.startswith("wire-client-")
        member = response.member_id
        S = M.SyncGroupRequest
        sync = await wire.call(sync_group, min(version, 5), S(
            group_id="g", generation_id=1, member_id=member,
            protocol_type="consumer" if version >= 5 else None,
            protocol_name="range" if version >= 5 else None,
            assignments=[S.SyncGroupRequestAssignment(member_id=member, assignment=b"\x01")]))
        assert sync.error_code == 0 and sync.assignment == b"\x01"
        hb = await wire.call(heartbeat, min(version, 4), M.HeartbeatRequest(
            group_id="g", generation_id=1, member_id=member))
        assert hb.error_code == 0
        bad = await wire.call(heartbeat, min(version, 4), M.HeartbeatRequest(
            group_id="g", generation_id=2, member_id=member))
        assert bad.error_code == 22
        described = await wire.call(describe_groups, min(version, 6),
                                    M.DescribeGroupsRequest(groups=["g"]))
        g = described.groups[0]
        assert (g.group_state, g.protocol_type, g.protocol_data) == ("Stable", "consumer", "range")
        assert g.members[0].client_host == "/127.0.0.1"
        assert g.members[0].member_metadata == subscription(["t"])
        lv = min(version, 5)
        L = M.LeaveGroupRequest
        if lv < 3:
            left = await wire.call(leave_group, lv, L(group_id="g", member_id="nobody"))
            assert left.error_code == 25
            left = await wire.call(leave_group, lv, L(group_id="g", member_id=member))
            assert left.error_code == 0
        else:
            left = await wire.call(leave_group, lv, L(group_id="g", members=[
                L.MemberIdentity(member_id=member), L.MemberIdentity(member_id="nobody")]))
            assert left.error_code == 0
            assert [m.error_code for m in left.members] == [0, 25]
        assert h.group("g").state == "Empty"
    scenario()


@pytest.mark.parametrize("version", range(2, 11))
def test_offset_commit_and_fetch_every_version(version):
    @run
    async def scenario():
        h = Harness()
        await h.start()
        wire = Wire(h)
        C = M.OffsetCommitRequest
        by_id = version >= 10
        topic = C.OffsetCommitRequestTopic(partitions=[
            C.OffsetCommitRequestPartition(partition_index=1, committed_offset=33,
                                           committed_metadata="md"),
            C.OffsetCommitRequestPartition(partition_index=60, committed_offset=1)])
        if by_id:
            topic.topic_id = T_ID
        else:
            topic.name = "t"
        committed = await wire.call(offset_commit, version, C(
            group_id="g", generation_id_or_member_epoch=-1, member_id="", topics=[topic]))
        assert [p.error_code for p in committed.topics[0].partitions] == [0, 3]
        for fv in sorted({1, 2, 7, 8, 9, 10} & set(range(1, version + 1)) | {version}):
            if fv > 10:
                continue
            await _check_fetch(wire, fv)
    scenario()


async def _check_fetch(wire, version):
    F = M.OffsetFetchRequest
    if version < 8:
        response = await wire.call(offset_fetch, version, F(group_id="g", topics=[
            F.OffsetFetchRequestTopic(name="t", partition_indexes=[1, 2])]))
        got = {p.partition_index: (p.committed_offset, p.metadata)
               for p in response.topics[0].partitions}
        if version >= 2:
            everything = await wire.call(offset_fetch, version, F(group_id="g", topics=None))
            assert [t.name for t in everything.topics] == ["t"]
    else:
        topic = F.OffsetFetchRequestTopics(partition_indexes=[1, 2])
        if version >= 10:
            topic.topic_id = T_ID
        else:
            topic.name = "t"
        response = await wire.call(offset_fetch, version, F(groups=[
            F.OffsetFetchRequestGroup(group_id="g", topics=[topic]),
            F.OffsetFetchRequestGroup(group_id="other", topics=None)], require_stable=True))
        assert [g.group_id for g in response.groups] == ["g", "other"]
        assert response.groups[1].topics == []
        got = {p.partition_index: (p.committed_offset, p.metadata)
               for p in response.groups[0].topics[0].partitions}
    assert got == {1: (33, "md"), 2: (-1, "")}, version


@run
async def test_offset_fetch_v1_puts_a_group_error_on_every_partition():
    h = Harness()
    await h.start()
    wire = Wire(h)
    await h.cgh(member_id="m1")
    h.co.active = False
    F = M.OffsetFetchRequest
    response = await wire.call(offset_fetch, 1, F(group_id="g", topics=[
        F.OffsetFetchRequestTopic(name="t", partition_indexes=[0])]))
    assert response.topics[0].partitions[0].error_code == 15
    response = await wire.call(offset_fetch, 5, F(group_id="g", topics=[
        F.OffsetFetchRequestTopic(name="t", partition_indexes=[0])]))
    assert response.error_code == 15


@run
async def test_admin_apis_over_the_wire():
    h = Harness()
    await h.start()
    wire = Wire(h)
    await h.stable_group(group="busy", n=1)
    await h.commit("idle", {("t", 0): (1, "")})
    await h.cgh(group="modern", member_id="m1")
    for version in range(0, 6):
        listed = await wire.call(list_groups, version, M.ListGroupsRequest(
            states_filter=["stable"] if version >= 4 else [],
            types_filter=["Classic"] if version >= 5 else []))
        names = sorted(g.group_id for g in listed.groups)
        expected = {0: ["busy", "idle", "modern"], 4: ["busy", "modern"], 5: ["busy"]}
        assert names == expected[max(v for v in expected if v <= version)], version
    for version in range(0, 2):
        described = await wire.call(consumer_group_describe, version,
                                    M.ConsumerGroupDescribeRequest(group_ids=["modern", "busy"]))
        assert [g.error_code for g in described.groups] == [0, 69]
        assert described.groups[0].members[0].member_type == (1 if version >= 1 else -1)
    v5 = await wire.call(describe_groups, 5, M.DescribeGroupsRequest(groups=["modern", "none"]))
    assert [(g.error_code, g.group_state) for g in v5.groups] == [(0, "Dead"), (0, "Dead")]
    v6 = await wire.call(describe_groups, 6, M.DescribeGroupsRequest(groups=["modern", "none"]))
    assert [(g.error_code, g.error_message) for g in v6.groups] == [
        (69, "Group modern is not a classic group."), (69, "Group none not found.")]
    for version in range(0, 3):
        deleted = await wire.call(delete_groups, version, M.DeleteGroupsRequest(
            groups_names=["busy", "nothing"]))
        assert [(r.group_id, r.error_code) for r in deleted.results] == [("busy", 68),
                                                                         ("nothing", 69)]
    deleted = await wire.call(delete_groups, 2, M.DeleteGroupsRequest(groups_names=["idle"]))
    assert deleted.results[0].error_code == 0
    D = M.OffsetDeleteRequest
    gone = await wire.call(offset_delete, 0, D(group_id="idle", topics=[]))
    assert gone.error_code == 69


@pytest.mark.parametrize("version", [0, 1])
def test_consumer_group_heartbeat_every_version(version):
    @run
    async def scenario():
        h = Harness()
        await h.start()
        wire = Wire(h)
        Q = M.ConsumerGroupHeartbeatRequest
        req = Q(group_id="g", member_id="" if version == 0 else "member-1", member_epoch=0,
                rebalance_timeout_ms=30000, subscribed_topic_names=["t"], topic_partitions=[])
        response = await wire.call(consumer_group_heartbeat, version, req)
        assert response.error_code == 0 and response.member_epoch == 1
        assert [(tp.topic_id, tp.partitions) for tp in response.assignment.topic_partitions] == \
            [(T_ID, [0, 1, 2, 3, 4, 5])]
        if version == 1:
            regex = await wire.call(consumer_group_heartbeat, 1, Q(
                group_id="g2", member_id="member-2", member_epoch=0, rebalance_timeout_ms=1,
                subscribed_topic_regex="u", topic_partitions=[]))
            assert regex.error_code == 0 and len(regex.assignment.topic_partitions) == 1
        bad = await wire.call(consumer_group_heartbeat, version, Q(
            group_id="g", member_id=response.member_id, member_epoch=99))
        assert bad.error_code == 110 and bad.error_message
    scenario()
