"""The consumer protocol (KIP-848): ConsumerGroupHeartbeat, server-side assignment, incremental
reconciliation, fencing, static members, regex subscriptions, ConsumerGroupDescribe."""
from coordinator_harness import T_ID, U_ID, Harness, assigned, run

from pybroker.coordinator.consumer import (UNRELEASED_PARTITIONS, UNREVOKED_PARTITIONS,
                                           GROUP_ASSIGNING, GROUP_RECONCILING, GROUP_STABLE)

INVALID_REQUEST = 42
UNKNOWN_MEMBER_ID = 25
GROUP_ID_NOT_FOUND = 69
FENCED_MEMBER_EPOCH = 110
UNRELEASED_INSTANCE_ID = 111
UNSUPPORTED_ASSIGNOR = 112
INVALID_REGULAR_EXPRESSION = 128
FENCED_INSTANCE_ID = 82
GROUP_MAX_SIZE_REACHED = 81
ALL_T = {T_ID: set(range(6))}


class Member:
    """A client-side view: member id, epoch and owned partitions, heartbeating."""

    def __init__(self, h, member_id, topics=("t",), **kw):
        self.h, self.member_id, self.topics, self.kw = h, member_id, topics, kw
        self.epoch = 0
        self.owned = {}
        self.last = None

    async def beat(self, full=False):
        response = await self.h.cgh(member_id=self.member_id, epoch=self.epoch,
                                    topics=self.topics, owned=self.owned, full=full or
                                    self.epoch == 0, **self.kw)
        self.last = response
        if response.error_code == 0:
            self.epoch = response.member_epoch
            new = assigned(response)
            if new is not None:
                self.owned = new   # the client revokes/assigns at once, reported next beat
        return response


async def converge(members, rounds=6):
    for _ in range(rounds):
        for m in members:
            response = await m.beat()
            assert response.error_code == 0, response
    return {m.member_id: m.owned for m in members}


def _flat(owned):
    return {(tid, p) for tid, ps in owned.items() for p in ps}


@run
async def test_first_member_gets_every_partition():
    h = Harness()
    await h.start()
    response = await h.cgh(member_id="m1")
    assert response.error_code == 0
    assert response.member_id == "m1" and response.member_epoch == 1
    assert response.heartbeat_interval_ms == 5000
    assert assigned(response) == ALL_T
    group = h.group("g")
    assert group.type == "consumer" and group.state() == GROUP_STABLE
    assert group.group_epoch == group.assignment_epoch == 1


@run
async def test_v0_join_gets_a_member_id_from_the_coordinator():
    h = Harness()
    await h.start()
    response = await h.cgh(member_id="", version=0)
    assert response.error_code == 0 and len(response.member_id) == 36
    again = await h.cgh(member_id="", version=1)
    assert again.error_code == INVALID_REQUEST


@run
async def test_second_member_gets_partitions_only_after_the_first_revokes_them():
    h = Harness()
    await h.start()
    m1, m2 = Member(h, "m1"), Member(h, "m2")
    await m1.beat()
    assert m1.owned == ALL_T
    r2 = await m2.beat()
    assert r2.member_epoch == 2 and assigned(r2) == {}       # its partitions are still m1's
    group = h.group("g")
    assert group.members["m2"].state == UNRELEASED_PARTITIONS
    assert group.state() == GROUP_RECONCILING
    target_m2 = group.target_assignment["m2"][T_ID]
    assert len(target_m2) == 3
    r1 = await m1.beat()                                      # m1 is told to give 3 up
    assert r1.member_epoch == 1                               # stays at its epoch meanwhile
    assert m1.owned == {T_ID: set(range(6)) - target_m2}
    assert group.members["m1"].state == UNREVOKED_PARTITIONS
    assert assigned(await m2.beat()) is None                  # m1 has not confirmed yet
    r1 = await m1.beat()                                      # owned no longer lists them
    assert r1.member_epoch == 2
    r2 = await m2.beat()
    assert assigned(r2) == {T_ID: target_m2}
    assert group.state() == GROUP_STABLE
    assert _flat(m1.owned) | _flat(m2.owned) == _flat(ALL_T)
    assert not _flat(m1.owned) & _flat(m2.owned)


@run
async def test_three_members_share_six_partitions_and_a_leaver_returns_them():
    h = Harness()
    await h.start()
    members = [Member(h, f"m{i}") for i in range(3)]
    result = await converge(members)
    sizes = sorted(len(_flat(o)) for o in result.values())
    assert sizes == [2, 2, 2]
    assert set().union(*map(_flat, result.values())) == _flat(ALL_T)
    left = await h.cgh(member_id="m2", epoch=-1, full=False)
    assert (left.error_code, left.member_id, left.member_epoch) == (0, "m2", -1)
    result = await converge(members[:2])
    assert sorted(len(_flat(o)) for o in result.values()) == [3, 3]
    assert "m2" not in h.group("g").members


@run
async def test_session_expiry_fences_a_silent_member():
    h = Harness()
    await h.start()
    m1, m2 = Member(h, "m1"), Member(h, "m2")
    await converge([m1, m2])
    for _ in range(9):                     # m1 keeps heartbeating, m2 is gone
        await h.advance(5000)
        assert (await m1.beat()).error_code == 0
    assert "m2" not in h.group("g").members
    await converge([m1])
    assert m1.owned == ALL_T
    stale = await m2.beat()
    assert stale.error_code == UNKNOWN_MEMBER_ID


@run
async def test_member_that_does_not_revoke_in_time_is_fenced():
    h = Harness()
    await h.start()
    m1 = Member(h, "m1", rebalance=20000)
    await m1.beat()
    m2 = Member(h, "m2")
    await m2.beat()
    await m1.beat()                              # told to revoke
    assert h.group("g").members["m1"].state == UNREVOKED_PARTITIONS
    await h.advance(20000)
    assert "m1" not in h.group("g").members
    assert (await m2.beat()).error_code == 0
    assert m2.owned == ALL_T


@run
async def test_epoch_checks():
    h = Harness()
    await h.start()
    m1 = Member(h, "m1")
    await m1.beat()
    ahead = await h.cgh(member_id="m1", epoch=m1.epoch + 1, full=False)
    assert ahead.error_code == FENCED_MEMBER_EPOCH and ahead.member_id is None
    unknown = await h.cgh(member_id="nobody", epoch=3, full=False)
    assert unknown.error_code == UNKNOWN_MEMBER_ID
    missing = await h.cgh(group="absent", member_id="x", epoch=3, full=False)
    assert missing.error_code == GROUP_ID_NOT_FOUND
    m2 = Member(h, "m2")
    await converge([m1, m2])
    member = h.group("g").members["m1"]
    # the previous epoch with owned partitions inside the assignment is tolerated (lost reply)
    lost = await h.cgh(member_id="m1", epoch=member.previous_member_epoch,
                       owned=member.assigned, full=False)
    assert lost.error_code == 0
    behind = await h.cgh(member_id="m1", epoch=member.previous_member_epoch, owned=ALL_T,
                         full=False)
    assert behind.error_code == FENCED_MEMBER_EPOCH


@run
async def test_invalid_requests():
    h = Harness()
    await h.start()
    cases = [
        dict(group=""),
        dict(rebalance=-1),
        dict(topics=None),
        dict(topics=[]),
        dict(owned={T_ID: {0}}),
        dict(epoch=-3, full=False),
        dict(epoch=-2, instance=None, full=False),
        dict(instance=""),
    ]
    for case in cases:
        kwargs = {"member_id": "m1"}
        kwargs.update(case)
        response = await h.cgh(**kwargs)
        assert response.error_code == INVALID_REQUEST, case
        assert response.error_message
    bad_assignor = await h.cgh(member_id="m1", assignor="sticky")
    assert bad_assignor.error_code == UNSUPPORTED_ASSIGNOR
    bad_regex = await h.cgh(member_id="m1", topics=None, regex="t[")
    assert bad_regex.error_code == INVALID_REGULAR_EXPRESSION
    assert h.group("g") is None                     # nothing was created by a refused join


@run
async def test_range_assignor_gives_contiguous_ranges():
    h = Harness()
    await h.start()
    members = [Member(h, f"m{i}", topics=("t", "u"), assignor="range") for i in range(2)]
    result = await converge(members)
    assert result["m0"] == {T_ID: {0, 1, 2}, U_ID: {0, 1}}
    assert result["m1"] == {T_ID: {3, 4, 5}, U_ID: {2}}
    assert h.co.consumer_group_describe(h.info(), ["g"])[0].assignor_name == "range"


@run
async def test_regex_subscription_and_new_matching_topic():
    h = Harness(regex_refresh_interval_ms=10000)
    await h.start()
    m = Member(h, "m1", topics=(), regex="[tu]")
    await converge([m])
    assert m.owned == {T_ID: set(range(6)), U_ID: set(range(3))}
    new_id = bytes([9] * 16)
    h.topics.add("v", new_id, 2)                      # matches "[tuv]"? no: "[tu]" does not
    h.topics.add("tt", bytes([8] * 16), 1)            # no full match either
    await converge([m])
    assert set(m.owned) == {T_ID, U_ID}
    h.topics.add("u2", bytes([7] * 16), 2)
    m.kw["regex"] = "u.*|t"
    await converge([m])
    assert m.owned == {T_ID: set(range(6)), U_ID: set(range(3)), bytes([7] * 16): {0, 1}}


@run
async def test_new_partitions_are_assigned_after_the_topic_grows():
    h = Harness()
    await h.start()
    m = Member(h, "m1")
    await converge([m])
    epoch = h.group("g").group_epoch
    h.topics.add("t", T_ID, 8)
    await converge([m])
    assert m.owned == {T_ID: set(range(8))}
    assert h.group("g").group_epoch == epoch + 1


@run
async def test_unsubscribed_topic_is_revoked_at_once():
    h = Harness()
    await h.start()
    m = Member(h, "m1", topics=("t", "u"))
    await converge([m])
    m.topics = ("t",)
    await m.beat(full=True)
    await converge([m])
    assert m.owned == ALL_T


@run
async def test_static_member_leaves_temporarily_and_rejoins_with_its_partitions():
    h = Harness()
    await h.start()
    s = Member(h, "s-1", instance="i-1")
    d = Member(h, "d-1")
    await converge([s, d])
    kept = s.owned
    left = await h.cgh(member_id="s-1", epoch=-2, instance="i-1", full=False)
    assert (left.error_code, left.member_epoch) == (0, -2)
    assert h.group("g").members["s-1"].member_epoch == -2
    await converge([d])
    assert _flat(d.owned).isdisjoint(_flat(kept))       # nobody takes the static member's share
    fenced = await h.cgh(member_id="intruder", epoch=1, instance="i-1", full=False)
    assert fenced.error_code == FENCED_INSTANCE_ID
    back = Member(h, "s-2", instance="i-1")             # restarted process, new member id
    response = await back.beat()
    assert response.error_code == 0
    assert back.owned == kept
    group = h.group("g")
    assert "s-1" not in group.members and group.static_members["i-1"] == "s-2"
    twin = await h.cgh(member_id="s-3", instance="i-1")
    assert twin.error_code == UNRELEASED_INSTANCE_ID


@run
async def test_static_member_session_expiry_releases_its_partitions():
    h = Harness()
    await h.start()
    s = Member(h, "s-1", instance="i-1")
    d = Member(h, "d-1")
    await converge([s, d])
    await h.cgh(member_id="s-1", epoch=-2, instance="i-1", full=False)
    for _ in range(10):
        await h.advance(5000)
        await d.beat()
    await converge([d])
    assert d.owned == ALL_T


@run
async def test_group_max_size_for_consumer_groups():
    h = Harness(consumer_max_size=1)
    await h.start()
    assert (await h.cgh(member_id="m1")).error_code == 0
    assert (await h.cgh(member_id="m2")).error_code == GROUP_MAX_SIZE_REACHED


@run
async def test_describe_consumer_group():
    h = Harness()
    await h.start()
    members = [Member(h, "m1"), Member(h, "m2", topics=("t", "u"))]
    await converge(members)
    described = h.co.consumer_group_describe(h.info(1), ["g", "nope"])
    group, missing = described
    assert missing.error_code == GROUP_ID_NOT_FOUND
    assert group.error_code == 0 and group.group_state == "Stable"
    assert group.assignor_name == "uniform"
    assert group.group_epoch == group.assignment_epoch
    by_id = {m.member_id: m for m in group.members}
    assert by_id["m2"].subscribed_topic_names == ["t", "u"]
    assert by_id["m1"].member_type == 1 and by_id["m1"].client_host == "/127.0.0.1"
    names = {tp.topic_name for m in group.members for tp in m.assignment.topic_partitions}
    assert names == {"t", "u"}
    for m in group.members:
        assert m.assignment == m.target_assignment


@run
async def test_empty_classic_group_converts_to_consumer_group_keeping_offsets():
    h = Harness()
    await h.start()
    assert await h.commit("g", {("t", 0): (42, "md")}) == {("t", 0): 0}
    assert h.group("g").type == "classic"
    response = await h.cgh(member_id="m1")
    assert response.error_code == 0
    assert h.group("g").type == "consumer"
    _, offsets = await h.fetch("g", [("t", None, [0])])
    assert offsets[("t", 0)][:2] == (42, "md")


@run
async def test_state_moves_through_assigning_and_reconciling():
    h = Harness()
    await h.start()
    m1 = Member(h, "m1")
    await m1.beat()
    group = h.group("g")
    group.group_epoch += 1                  # as if a metadata change bumped it
    assert group.state() == GROUP_ASSIGNING
    await m1.beat()
    assert group.state() == GROUP_STABLE
