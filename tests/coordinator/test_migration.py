"""Groups that mix protocols (KIP-848 online migration): classic members in a consumer group, and a
classic group upgraded when its first consumer-protocol member arrives."""
from coordinator_harness import T_ID, Harness, run

from pybroker.codec.messages import ConsumerProtocolAssignment, ConsumerProtocolSubscription
from pybroker.codec.protocol import decode, encode
from pybroker.coordinator.consumer_classic import parse_assignment

MEMBER_ID_REQUIRED = 79
REBALANCE_IN_PROGRESS = 27
ILLEGAL_GENERATION = 22
UNKNOWN_MEMBER_ID = 25
INCONSISTENT_GROUP_PROTOCOL = 23
ALL = set(range(6))


def subscription_v1(topics, owned=()):
    S = ConsumerProtocolSubscription
    body = encode(("data", "ConsumerProtocolSubscription"), 1, S(
        topics=list(topics), owned_partitions=[S.TopicPartition(topic="t", partitions=sorted(owned))]
        if owned else []))
    return b"\x00\x01" + body


def assignment_bytes(partitions):
    A = ConsumerProtocolAssignment
    return b"\x00\x01" + encode(("data", "ConsumerProtocolAssignment"), 1, A(
        assigned_partitions=[A.TopicPartition(topic="t", partitions=sorted(partitions))]))


def partitions_of(data):
    return {p for tp in parse_assignment(data).assigned_partitions for p in tp.partitions}


class ClassicClient:
    """A cooperative classic consumer: reports what it owns, keeps what it is given."""

    def __init__(self, h, instance=None):
        self.h, self.instance = h, instance
        self.member_id, self.generation, self.owned = "", -1, set()

    async def join(self):
        while True:
            response = await self.h.joined(member_id=self.member_id, instance=self.instance,
                                           protocols=[("cooperative-sticky", subscription_v1(
                                               ["t"], self.owned))])
            if response.error_code != MEMBER_ID_REQUIRED:
                break
            self.member_id = response.member_id
        assert response.error_code == 0, response
        self.member_id, self.generation = response.member_id, response.generation_id
        return response

    async def sync(self):
        response = await self.h.sync("g", self.generation, self.member_id, instance=self.instance,
                                     protocol_type="consumer", protocol_name="cooperative-sticky")
        if response.error_code == 0:
            self.owned = partitions_of(response.assignment)
        return response

    def heartbeat(self):
        return self.h.heartbeat("g", self.generation, self.member_id, instance=self.instance)

    async def rejoin_until_settled(self, rounds=6):
        for _ in range(rounds):
            if self.heartbeat() == 0:
                return
            await self.join()
            await self.sync()


@run
async def test_classic_members_join_a_consumer_group_and_share_with_consumer_members():
    h = Harness()
    await h.start()
    modern = await h.cgh(member_id="m1")                  # a consumer-protocol group
    assert modern.member_epoch == 1
    classic = ClassicClient(h)
    joined = await classic.join()
    assert joined.protocol_type == "consumer" and joined.protocol_name == "cooperative-sticky"
    assert joined.leader == "" and joined.members == []   # the server assigns, not a leader
    assert h.group("g").type == "consumer"
    assert h.group("g").members[classic.member_id].uses_classic_protocol
    await classic.sync()
    assert classic.owned == set()                         # m1 still holds everything
    owned = {T_ID: ALL}
    for _ in range(6):                                    # m1 revokes, classic collects
        member = h.group("g").members["m1"]
        r = await h.cgh(member_id="m1", epoch=member.member_epoch, owned=owned, full=False)
        if r.assignment is not None:
            owned = {tp.topic_id: set(tp.partitions) for tp in r.assignment.topic_partitions}
        await classic.rejoin_until_settled()
    assert len(owned[T_ID]) == 3 and len(classic.owned) == 3
    assert owned[T_ID] | classic.owned == ALL
    left = await h.co.leave_group(h.info(), "g", [(classic.member_id, None, None)])
    assert [m.error_code for m in left.members] == [0]
    assert classic.member_id not in h.group("g").members


@run
async def test_classic_member_errors_in_a_consumer_group():
    h = Harness()
    await h.start()
    await h.cgh(member_id="m1")
    first = await h.joined(protocols=[("range", subscription_v1(["t"]))])
    assert first.error_code == MEMBER_ID_REQUIRED
    wrong_type = await h.joined(protocol_type="connect", protocols=[("x", b"\x00\x00")])
    assert wrong_type.error_code == INCONSISTENT_GROUP_PROTOCOL
    classic = ClassicClient(h)
    await classic.join()
    bad_gen = await h.sync("g", classic.generation + 5, classic.member_id)
    assert bad_gen.error_code == ILLEGAL_GENERATION
    bad_name = await h.sync("g", classic.generation, classic.member_id, protocol_name="range")
    assert bad_name.error_code == INCONSISTENT_GROUP_PROTOCOL
    assert h.heartbeat("g", 1, "m1") == UNKNOWN_MEMBER_ID          # not a classic member
    assert h.heartbeat("g", classic.generation + 1, classic.member_id) == ILLEGAL_GENERATION
    other = await h.joined(member_id="", protocols=[("roundrobin", subscription_v1(["t"]))],
                           version=3)
    assert other.error_code == INCONSISTENT_GROUP_PROTOCOL         # no protocol in common


@run
async def test_classic_member_that_never_syncs_is_fenced():
    h = Harness()
    await h.start()
    await h.cgh(member_id="m1")
    classic = ClassicClient(h)
    await classic.join()
    assert classic.member_id in h.group("g").members
    await h.advance(30000)                # its rebalance timeout
    assert classic.member_id not in h.group("g").members


@run
async def test_online_upgrade_of_a_classic_group():
    h = Harness()
    await h.start()
    a, b = ClassicClient(h), ClassicClient(h)
    first = [await h.joined(protocols=[("cooperative-sticky", subscription_v1(["t"]))])
             for _ in range(2)]
    a.member_id, b.member_id = first[0].member_id, first[1].member_id
    tasks = [h.join(member_id=c.member_id, protocols=[("cooperative-sticky",
                                                        subscription_v1(["t"]))])
             for c in (a, b)]
    await h.advance(0)
    responses = [await t for t in tasks]
    generation = responses[0].generation_id
    for c in (a, b):
        c.generation = generation
    leader = responses[0].leader
    split = {a.member_id: assignment_bytes({0, 1, 2}), b.member_id: assignment_bytes({3, 4, 5})}
    syncs = [h.sync("g", generation, c.member_id, split if c.member_id == leader else None)
             for c in (a, b)]
    for c, s in zip((a, b), syncs):
        c.owned = partitions_of((await s).assignment)
    assert h.group("g").type == "classic"
    modern = await h.cgh(member_id="m1")                   # the first KIP-848 member arrives
    assert modern.error_code == 0
    group = h.group("g")
    assert group.type == "consumer"
    assert group.members[a.member_id].assigned == {T_ID: frozenset({0, 1, 2})}
    assert group.members[a.member_id].member_epoch == generation
    assert modern.member_epoch == generation + 1
    assert a.heartbeat() == REBALANCE_IN_PROGRESS        # classic members rejoin to catch up
    owned = {}
    member_epoch = modern.member_epoch
    for _ in range(6):
        for c in (a, b):
            await c.rejoin_until_settled()
        r = await h.cgh(member_id="m1", epoch=member_epoch, owned=owned, full=False)
        member_epoch = r.member_epoch
        if r.assignment is not None:
            owned = {tp.topic_id: set(tp.partitions) for tp in r.assignment.topic_partitions}
    shares = [a.owned, b.owned, owned.get(T_ID, set())]
    assert sorted(map(len, shares)) == [2, 2, 2] and set().union(*shares) == ALL
    upgraded = [r for r in h.records("g") if r.type == 2 and r.value is None]
    assert upgraded                                       # the classic group's tombstone
    await h.restart()
    reloaded = h.group("g")
    assert reloaded.type == "consumer"
    assert reloaded.members[a.member_id].uses_classic_protocol
    assert reloaded.members[a.member_id].classic_session_timeout_ms == 10000


@run
async def test_upgrade_answers_parked_classic_requests_rebalance_in_progress():
    h = Harness()
    await h.start()
    halves = iter([{0, 1, 2}, {3, 4, 5}])
    ids, leader, generation = await h.stable_group(
        n=2, assign=lambda member_id: assignment_bytes(next(halves)))
    parked = h.join(member_id=leader)              # the leader rejoins: a classic rebalance
    await h.settle()
    assert not parked.done()
    await h.cgh(member_id="m1")
    assert (await parked).error_code == REBALANCE_IN_PROGRESS
    assert h.group("g").type == "consumer"


@run
async def test_no_upgrade_for_non_consumer_protocol_groups():
    h = Harness()
    await h.start()
    await h.stable_group(n=1, protocol_type="connect", protocols=[("default", b"x")])
    response = await h.cgh(member_id="m1")
    assert response.error_code == 69                      # GROUP_ID_NOT_FOUND, as Kafka
    assert h.group("g").type == "classic"


def test_subscription_and_assignment_helpers_round_trip():
    data = subscription_v1(["t", "u"], owned={4, 1})
    sub = decode(("data", "ConsumerProtocolSubscription"), 1, memoryview(data)[2:])
    assert sub.topics == ["t", "u"] and sub.owned_partitions[0].partitions == [1, 4]
    assert partitions_of(assignment_bytes({5, 0})) == {0, 5}


@run
async def test_upgrade_refused_for_malformed_assignments_leaves_the_classic_group_alone():
    h = Harness()
    await h.start()
    ids, leader, generation = await h.stable_group(n=1)     # assignment bytes are not a
    response = await h.cgh(member_id="m1")                  # ConsumerProtocolAssignment
    assert response.error_code == 69 and "malformed" in response.error_message
    assert h.group("g").type == "classic" and h.heartbeat("g", generation, ids[0]) == 0


@run
async def test_empty_consumer_group_becomes_classic_when_a_classic_member_joins():
    h = Harness()
    await h.start()
    await h.cgh(member_id="m1")
    await h.commit("g", {("t", 0): (9, "kept")}, generation=1, member_id="m1", version=9)
    await h.cgh(member_id="m1", epoch=-1, full=False)
    assert h.group("g").type == "consumer" and h.group("g").is_empty()
    classic = ClassicClient(h)
    await classic.join()
    assert h.group("g").type == "classic"
    assert (await h.fetch("g", None))[1] == {("t", 0): (9, "kept", 0)}
    await h.restart()
    assert h.group("g").type == "classic"
    assert (await h.fetch("g", None))[1] == {("t", 0): (9, "kept", 0)}
