"""The classic rebalance protocol: JoinGroup / SyncGroup / Heartbeat / LeaveGroup state machine,
timers on a manual clock."""
from coordinator_harness import Harness, run, subscription

from pybroker.coordinator.classic import COMPLETING_REBALANCE, EMPTY, PREPARING_REBALANCE, STABLE

MEMBER_ID_REQUIRED = 79
UNKNOWN_MEMBER_ID = 25
ILLEGAL_GENERATION = 22
REBALANCE_IN_PROGRESS = 27
INCONSISTENT_GROUP_PROTOCOL = 23
INVALID_SESSION_TIMEOUT = 26
INVALID_GROUP_ID = 24
GROUP_MAX_SIZE_REACHED = 81
FENCED_INSTANCE_ID = 82


@run
async def test_member_id_required_then_join_sync_heartbeat():
    h = Harness()
    await h.start()
    first = await h.join()
    assert first.error_code == MEMBER_ID_REQUIRED
    assert first.member_id.startswith("client-") and len(first.member_id) > 20
    assert h.group("g").pending_members == {first.member_id}
    response = await h.joined(member_id=first.member_id)
    assert response.error_code == 0
    assert response.generation_id == 1
    assert response.leader == first.member_id
    assert response.protocol_name == "range" and response.protocol_type == "consumer"
    assert [m.member_id for m in response.members] == [first.member_id]
    assert response.members[0].metadata == subscription(["t"])
    assert h.group("g").state == COMPLETING_REBALANCE
    sync = await h.sync("g", 1, first.member_id, {first.member_id: b"\x00\x01opaque"})
    assert (sync.error_code, sync.assignment) == (0, b"\x00\x01opaque")
    assert h.group("g").state == STABLE
    assert h.heartbeat("g", 1, first.member_id) == 0


@run
async def test_old_versions_join_without_member_id_round_trip():
    h = Harness()
    await h.start()
    response = await h.joined(version=3)
    assert response.error_code == 0 and response.generation_id == 1
    assert h.group("g").has_member(response.member_id)


@run
async def test_two_members_leader_gets_metadata_followers_get_own_assignment():
    h = Harness()
    await h.start()
    ids, leader, generation = await h.stable_group(n=2)
    assert leader == ids[0]
    group = h.group("g")
    assert group.state == STABLE and generation == 1
    assert {m.member_id: m.assignment for m in group.members.values()} == \
        {x: x.encode() for x in ids}


@run
async def test_follower_sync_waits_for_the_leader():
    h = Harness()
    await h.start()
    a_id, a = await h.join_new()
    b_id, b = await h.join_new()
    await h.advance(1)
    ra, rb = await a, await b
    follower = h.sync("g", 1, b_id)
    await h.settle()
    assert not follower.done()
    leader = await h.sync("g", 1, a_id, {a_id: b"A", b_id: b"B"})
    assert leader.assignment == b"A"
    assert (await follower).assignment == b"B"
    assert rb.members == [] and len(ra.members) == 2


@run
async def test_initial_rebalance_delay_is_extended_while_members_join():
    h = Harness(group_initial_rebalance_delay_ms=3000)
    await h.start()
    _, a = await h.join_new(rebalance=10000)
    await h.advance(2000)
    _, b = await h.join_new(rebalance=10000)
    await h.advance(1000)      # the first delay ends, a member joined meanwhile: extended
    assert not a.done()
    await h.advance(2999)
    assert not a.done()
    await h.advance(1)
    assert a.done() and b.done()
    assert (await a).generation_id == (await b).generation_id == 1


@run
async def test_initial_delay_is_capped_by_the_rebalance_timeout():
    h = Harness(group_initial_rebalance_delay_ms=3000)
    await h.start()
    _, a = await h.join_new(rebalance=4000)
    for _ in range(5):         # members keep arriving; the join still ends at 3000 + 1000 ms
        await h.advance(900)
        await h.join_new(rebalance=4000)
    assert a.done()
    assert h.group("g").generation_id == 1


@run
async def test_new_member_triggers_rebalance_of_a_stable_group():
    h = Harness()
    await h.start()
    ids, leader, generation = await h.stable_group(n=2)
    _, c = await h.join_new()
    await h.settle()
    group = h.group("g")
    assert group.state == PREPARING_REBALANCE
    assert h.heartbeat("g", generation, ids[1]) == REBALANCE_IN_PROGRESS
    rejoin = [h.join(member_id=m) for m in ids]
    await h.settle()
    responses = [await t for t in rejoin] + [await c]
    assert {r.generation_id for r in responses} == {2}
    assert group.state == COMPLETING_REBALANCE
    assert h.heartbeat("g", 1, ids[0]) == ILLEGAL_GENERATION
    assert h.heartbeat("g", 2, ids[0]) == 0  # CompletingRebalance: a heartbeat is fine


@run
async def test_follower_rejoin_with_same_metadata_gets_current_generation_leader_forces_rebalance():
    h = Harness()
    await h.start()
    ids, leader, generation = await h.stable_group(n=2)
    follower = await h.join(member_id=ids[1])
    assert follower.error_code == 0 and follower.generation_id == generation
    assert follower.members == []
    assert h.group("g").state == STABLE
    h.join(member_id=leader)
    await h.settle()
    assert h.group("g").state == PREPARING_REBALANCE


@run
async def test_changed_metadata_rebalances():
    h = Harness()
    await h.start()
    ids, _, _ = await h.stable_group(n=2)
    h.join(member_id=ids[1], protocols=[("range", subscription(["t", "u"]))])
    await h.settle()
    assert h.group("g").state == PREPARING_REBALANCE


@run
async def test_session_expiry_removes_member_and_rebalances():
    h = Harness()
    await h.start()
    ids, leader, generation = await h.stable_group(n=2, session=10000)
    await h.advance(6000)
    assert h.heartbeat("g", generation, ids[0]) == 0
    group = h.group("g")
    assert group.has_member(ids[1])
    await h.advance(4000)                     # ids[1] has been silent for 10 s
    assert not group.has_member(ids[1])
    assert group.state == PREPARING_REBALANCE
    assert h.heartbeat("g", generation, ids[0]) == REBALANCE_IN_PROGRESS
    rejoin = h.join(member_id=ids[0])
    await h.settle()
    response = await rejoin
    assert response.generation_id == generation + 1
    assert [m.member_id for m in response.members] == [ids[0]]


@run
async def test_pending_member_expires_after_session_timeout():
    h = Harness()
    await h.start()
    first = await h.join(session=7000)
    assert h.group("g").pending_members == {first.member_id}
    await h.advance(7000)
    assert h.group("g").pending_members == set()
    late = await h.join(member_id=first.member_id)
    assert late.error_code == UNKNOWN_MEMBER_ID


@run
async def test_rebalance_timeout_drops_dynamic_members_that_did_not_rejoin():
    h = Harness()
    await h.start()
    ids, leader, generation = await h.stable_group(n=3, rebalance=20000, session=60000)
    rejoin = [h.join(member_id=m, rebalance=20000, session=60000) for m in ids[:2]]
    await h.settle()
    assert not rejoin[0].done()
    await h.advance(20000)
    responses = [await t for t in rejoin]
    assert all(r.generation_id == generation + 1 for r in responses)
    assert set(h.group("g").members) == set(ids[:2])


@run
async def test_leader_leaving_elects_a_new_leader():
    h = Harness()
    await h.start()
    ids, leader, generation = await h.stable_group(n=3)
    response = await h.co.leave_group(h.info(), "g", [(leader, None, "bye")])
    assert [m.error_code for m in response.members] == [0]
    rejoin = [h.join(member_id=m) for m in ids[1:]]
    await h.settle()
    results = [await t for t in rejoin]
    assert results[0].leader in ids[1:] and results[0].leader != leader
    assert {r.generation_id for r in results} == {generation + 1}


@run
async def test_batch_leave_with_unknown_and_fenced_members():
    h = Harness()
    await h.start()
    static = h.join(instance="i-1")
    await h.advance(1)
    s = await static
    dynamic_id, dynamic = await h.join_new()
    await h.settle()
    response = await h.co.leave_group(h.info(), "g", [
        ("", "i-1", None),               # admin removal by instance id
        ("nobody", None, None),
        (dynamic_id, None, None),
        ("", "i-unknown", None),
    ])
    assert [m.error_code for m in response.members] == [0, UNKNOWN_MEMBER_ID, 0, UNKNOWN_MEMBER_ID]
    assert s.error_code == 0
    fenced = await h.co.leave_group(h.info(), "g", [("someone-else", "i-1", None)])
    assert fenced.members[0].error_code == UNKNOWN_MEMBER_ID  # i-1 is gone now
    unknown = await h.co.leave_group(h.info(), "no-such-group", [("x", None, None)])
    assert unknown.error_code == 0 and unknown.members[0].error_code == UNKNOWN_MEMBER_ID


@run
async def test_static_member_restart_replaces_member_without_rebalance():
    h = Harness()
    await h.start()
    a = h.join(instance="i-a")
    b = h.join(instance="i-b")
    await h.advance(1)
    ra, rb = await a, await b
    leader = ra.leader
    await h.sync("g", 1, ra.member_id, {ra.member_id: b"A", rb.member_id: b"B"}
                 if leader == ra.member_id else None)
    if leader != ra.member_id:
        await h.sync("g", 1, rb.member_id, {ra.member_id: b"A", rb.member_id: b"B"})
    follower = rb if leader == ra.member_id else ra
    follower_instance = "i-b" if follower is rb else "i-a"
    group = h.group("g")
    assert group.state == STABLE
    restarted = await h.join(instance=follower_instance)        # same metadata, new process
    assert restarted.error_code == 0
    assert restarted.member_id != follower.member_id
    assert restarted.generation_id == 1                         # no new generation
    assert group.state == STABLE
    assert group.static_member_id(follower_instance) == restarted.member_id
    sync = await h.sync("g", 1, restarted.member_id, instance=follower_instance)
    assert sync.assignment == (b"B" if follower is rb else b"A")
    # the old process is fenced
    assert h.heartbeat("g", 1, follower.member_id, instance=follower_instance) == FENCED_INSTANCE_ID
    old_sync = await h.sync("g", 1, follower.member_id, instance=follower_instance)
    assert old_sync.error_code == FENCED_INSTANCE_ID
    # the replacement was persisted
    last = h.records("g")[-1]
    assert follower_instance in [m.group_instance_id for m in last.value.members]
    assert restarted.member_id in [m.member_id for m in last.value.members]


@run
async def test_static_leader_restart_with_v9_skips_assignment():
    h = Harness()
    await h.start()
    a = h.join(instance="i-a")
    await h.advance(1)
    ra = await a
    await h.sync("g", 1, ra.member_id, {ra.member_id: b"A"})
    restarted = await h.join(instance="i-a", version=9)
    assert restarted.skip_assignment is True
    assert restarted.leader == restarted.member_id
    assert [m.member_id for m in restarted.members] == [restarted.member_id]
    assert h.group("g").state == STABLE


@run
async def test_static_member_with_changed_protocol_triggers_rebalance():
    h = Harness()
    await h.start()
    a = h.join(instance="i-a", protocols=[("range", b"x")])
    await h.advance(1)
    ra = await a
    await h.sync("g", 1, ra.member_id, {ra.member_id: b"A"})
    group = h.group("g")
    rejected = await h.join(instance="i-a", protocols=[("roundrobin", b"x")])
    assert rejected.error_code == INCONSISTENT_GROUP_PROTOCOL   # nothing in common
    assert group.state == STABLE
    restarted = h.join(instance="i-a", protocols=[("roundrobin", b"x"), ("range", b"x")])
    await h.advance(0)
    assert (await restarted).generation_id == 2                  # a new generation
    assert group.protocol_name == "roundrobin"


@run
async def test_static_member_parked_join_is_fenced_by_replacement():
    h = Harness()
    await h.start()
    s = h.join(instance="i-s")
    d_id, d = await h.join_new()
    await h.advance(0)
    rs, rd = await s, await d
    await h.sync("g", 1, rs.leader, {rs.member_id: b"S", d_id: b"D"})
    await h.join_new()                                  # a new member: rebalance, d lags
    await h.settle()
    old_process = h.join(member_id=rs.member_id, instance="i-s")             # parked
    await h.settle()
    assert not old_process.done()
    new_process = h.join(instance="i-s")
    await h.settle()
    fenced = await old_process
    assert fenced.error_code == FENCED_INSTANCE_ID
    h.join(member_id=d_id)
    await h.settle()
    joined = await new_process
    assert joined.error_code == 0 and joined.generation_id == 2
    assert h.group("g").static_member_id("i-s") == joined.member_id


@run
async def test_sync_errors():
    h = Harness()
    await h.start()
    ids, leader, generation = await h.stable_group(n=2)
    assert (await h.sync("g", generation + 1, ids[0])).error_code == ILLEGAL_GENERATION
    assert (await h.sync("g", generation, "nobody")).error_code == UNKNOWN_MEMBER_ID
    assert (await h.sync("nogroup", 1, "x")).error_code == UNKNOWN_MEMBER_ID
    assert (await h.sync("g", generation, ids[0], protocol_type="other")).error_code == \
        INCONSISTENT_GROUP_PROTOCOL
    assert (await h.sync("g", generation, ids[0], protocol_name="roundrobin")).error_code == \
        INCONSISTENT_GROUP_PROTOCOL
    assert (await h.sync("", generation, ids[0])).error_code == INVALID_GROUP_ID
    h.join(member_id=leader)
    await h.settle()
    assert (await h.sync("g", generation, ids[1])).error_code == REBALANCE_IN_PROGRESS


@run
async def test_parked_sync_is_answered_rebalance_in_progress_when_a_member_joins():
    h = Harness()
    await h.start()
    a_id, a = await h.join_new()
    b_id, b = await h.join_new()
    await h.advance(0)
    ra, rb = await a, await b
    follower = b_id if ra.leader == a_id else a_id
    parked = h.sync("g", 1, follower)
    await h.settle()
    assert not parked.done()
    await h.join_new()              # a third member arrives before the leader syncs
    await h.settle()
    assert (await parked).error_code == REBALANCE_IN_PROGRESS
    assert h.group("g").state == PREPARING_REBALANCE


@run
async def test_members_that_never_sync_are_removed_after_the_rebalance_timeout():
    h = Harness()
    await h.start()
    a_id, a = await h.join_new(rebalance=15000, session=60000)
    b_id, b = await h.join_new(rebalance=15000, session=60000)
    await h.advance(1)
    ra, rb = await a, await b
    await h.sync("g", 1, ra.leader, {a_id: b"A", b_id: b"B"})
    await h.advance(15000)
    group = h.group("g")
    never_synced = b_id if ra.leader == a_id else a_id
    assert not group.has_member(never_synced)
    assert group.state == PREPARING_REBALANCE


@run
async def test_join_errors():
    h = Harness()
    await h.start()
    assert (await h.join(session=5999)).error_code == INVALID_SESSION_TIMEOUT
    assert (await h.join(session=1800001)).error_code == INVALID_SESSION_TIMEOUT
    assert (await h.join(group="")).error_code == INVALID_GROUP_ID
    assert (await h.join(group="fresh", member_id="made-up")).error_code == UNKNOWN_MEMBER_ID
    assert (await h.join(protocol_type="")).error_code == INCONSISTENT_GROUP_PROTOCOL
    assert (await h.join(protocols=[])).error_code == INCONSISTENT_GROUP_PROTOCOL
    ids, _, _ = await h.stable_group(group="p", n=1)
    other = await h.join(group="p", protocols=[("roundrobin", b"")])
    assert other.error_code == INCONSISTENT_GROUP_PROTOCOL
    other_type = await h.join(group="p", protocol_type="connect")
    assert other_type.error_code == INCONSISTENT_GROUP_PROTOCOL
    unknown = await h.join(group="p", member_id="stranger")
    assert unknown.error_code == UNKNOWN_MEMBER_ID
    assert h.heartbeat("p", 1, "stranger") == UNKNOWN_MEMBER_ID
    assert h.heartbeat("none", 1, "x") == UNKNOWN_MEMBER_ID
    assert h.heartbeat("", 1, "x") == INVALID_GROUP_ID


@run
async def test_group_max_size():
    h = Harness(group_max_size=2)
    await h.start()
    await h.stable_group(n=2)
    third = await h.join()
    assert third.error_code == GROUP_MAX_SIZE_REACHED
    assert len(h.group("g").members) == 2


@run
async def test_protocol_selection_by_votes_among_common_protocols():
    h = Harness()
    await h.start()
    tasks = []
    for prefs in (["roundrobin", "range"], ["range", "roundrobin"], ["range", "sticky",
                                                                      "roundrobin"]):
        _, t = await h.join_new(protocols=[(p, p.encode()) for p in prefs])
        tasks.append(t)
    await h.advance(1)
    responses = [await t for t in tasks]
    assert {r.protocol_name for r in responses} == {"range"}  # 2 votes to 1; sticky not common
    leader = next(r for r in responses if r.members)
    assert {m.metadata for m in leader.members} == {b"range"}


@run
async def test_group_becomes_empty_when_everyone_leaves():
    h = Harness()
    await h.start()
    ids, leader, generation = await h.stable_group(n=2)
    await h.co.leave_group(h.info(), "g", [(m, None, None) for m in ids])
    await h.settle()
    group = h.group("g")
    assert group.state == EMPTY and group.generation_id == generation + 1
    last = h.records("g")[-1]
    assert last.value.generation == generation + 1 and last.value.members == []
