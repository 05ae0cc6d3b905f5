"""OffsetCommit / OffsetFetch / OffsetDelete and offset expiry."""
import asyncio

from coordinator_harness import T_ID, Harness, run

from pybroker.codec.messages import OffsetCommitRequest, OffsetDeleteRequest
from pybroker.coordinator.classic import EMPTY

UNKNOWN_TOPIC_OR_PARTITION = 3
OFFSET_METADATA_TOO_LARGE = 12
NOT_COORDINATOR = 16
COORDINATOR_NOT_AVAILABLE = 15
ILLEGAL_GENERATION = 22
UNKNOWN_MEMBER_ID = 25
REBALANCE_IN_PROGRESS = 27
UNSUPPORTED_VERSION = 35
NON_EMPTY_GROUP = 68
GROUP_ID_NOT_FOUND = 69
GROUP_SUBSCRIBED_TO_TOPIC = 86
UNKNOWN_TOPIC_ID = 100
STALE_MEMBER_EPOCH = 113
DAY = 24 * 3600 * 1000


@run
async def test_standalone_commit_and_fetch_keep_metadata():
    h = Harness()
    await h.start()
    errors = await h.commit("g", {("t", 0): (10, "first"), ("t", 5): (99, None),
                                  ("u", 1): (7, "é" * 10)})
    assert set(errors.values()) == {0}
    group = h.group("g")
    assert group.type == "classic" and group.state == EMPTY and group.protocol_type is None
    code, fetched = await h.fetch("g", [("t", None, [0, 1, 5]), ("u", None, [1])])
    assert code == 0
    assert fetched[("t", 0)] == (10, "first", 0)
    assert fetched[("t", 1)] == (-1, "", 0)
    assert fetched[("t", 5)] == (99, "", 0)
    assert fetched[("u", 1)] == (7, "é" * 10, 0)
    _, everything = await h.fetch("g", None)
    assert set(everything) == {("t", 0), ("t", 5), ("u", 1)}
    _, unknown_group = await h.fetch("nobody", [("t", None, [0])])
    assert unknown_group[("t", 0)] == (-1, "", 0)


@run
async def test_commit_overwrites_and_records_carry_leader_epoch_and_timestamp():
    h = Harness()
    await h.start()
    await h.commit("g", {("t", 0): (10, "a")})
    await h.advance(500)
    await h.commit("g", {("t", 0): (20, "b")})
    _, fetched = await h.fetch("g", [("t", None, [0])])
    assert fetched[("t", 0)] == (20, "b", 0)
    last = h.records("g")[-1]
    assert (last.key.group, last.key.topic, last.key.partition) == ("g", "t", 0)
    assert last.value.offset == 20 and last.value.leader_epoch == 3
    assert last.value.commit_timestamp == h.clock.now_ms()


@run
async def test_commit_errors_per_partition():
    h = Harness(offset_metadata_max_bytes=8)
    await h.start()
    errors = await h.commit("g", {("t", 0): (1, "12345678"), ("t", 1): (1, "123456789"),
                                  ("t", 6): (1, ""), ("nope", 0): (1, ""),
                                  ("u", 2): (1, "\U0001F600" * 4), ("u", 1): (1, "\U0001F600" * 5)})
    assert errors == {("t", 0): 0, ("t", 1): OFFSET_METADATA_TOO_LARGE,
                      ("t", 6): UNKNOWN_TOPIC_OR_PARTITION, ("nope", 0): UNKNOWN_TOPIC_OR_PARTITION,
                      ("u", 2): 0, ("u", 1): OFFSET_METADATA_TOO_LARGE}  # UTF-16 length, as Java
    _, fetched = await h.fetch("g", [("t", None, [1])])
    assert fetched[("t", 1)][0] == -1


@run
async def test_commit_generation_checks_for_classic_groups():
    h = Harness()
    await h.start()
    ids, leader, generation = await h.stable_group(n=2)
    ok = await h.commit("g", {("t", 0): (5, "")}, generation=generation, member_id=ids[1])
    assert ok == {("t", 0): 0}
    wrong_gen = await h.commit("g", {("t", 0): (6, "")}, generation=generation + 1,
                               member_id=ids[1])
    assert wrong_gen == {("t", 0): ILLEGAL_GENERATION}
    unknown = await h.commit("g", {("t", 0): (6, "")}, generation=generation, member_id="x")
    assert unknown == {("t", 0): UNKNOWN_MEMBER_ID}
    standalone = await h.commit("g", {("t", 0): (6, "")})
    assert standalone == {("t", 0): UNKNOWN_MEMBER_ID}      # the group has members
    no_group = await h.commit("other", {("t", 0): (6, "")}, generation=3, member_id="m",
                              version=8)
    assert no_group == {("t", 0): ILLEGAL_GENERATION}
    no_group_v9 = await h.commit("other", {("t", 0): (6, "")}, generation=3, member_id="m",
                                 version=9)
    assert no_group_v9 == {("t", 0): GROUP_ID_NOT_FOUND}
    h.join(member_id=leader)                                 # a rebalance starts
    await h.settle()
    during = await h.commit("g", {("t", 0): (7, "")}, generation=generation, member_id=ids[1])
    assert during == {("t", 0): 0}                           # PreparingRebalance still commits
    _, fetched = await h.fetch("g", [("t", None, [0])])
    assert fetched[("t", 0)][0] == 7
    h.join(member_id=ids[1])
    await h.settle()
    completing = await h.commit("g", {("t", 0): (8, "")}, generation=generation + 1,
                                member_id=ids[1])
    assert completing == {("t", 0): REBALANCE_IN_PROGRESS}


@run
async def test_commit_keeps_a_classic_member_alive():
    h = Harness()
    await h.start()
    ids, leader, generation = await h.stable_group(n=1, session=10000)
    for _ in range(4):
        await h.advance(8000)
        assert await h.commit("g", {("t", 0): (1, "")}, generation=generation,
                              member_id=ids[0]) == {("t", 0): 0}
    assert h.group("g").has_member(ids[0])


@run
async def test_commit_member_epoch_checks_for_consumer_groups():
    h = Harness()
    await h.start()
    r = await h.cgh(member_id="m1")
    ok = await h.commit("g", {("t", 0): (3, "")}, generation=r.member_epoch, member_id="m1",
                        version=9)
    assert ok == {("t", 0): 0}
    stale = await h.commit("g", {("t", 0): (3, "")}, generation=r.member_epoch - 1,
                           member_id="m1", version=9)
    assert stale == {("t", 0): STALE_MEMBER_EPOCH}
    old_version = await h.commit("g", {("t", 0): (3, "")}, generation=r.member_epoch,
                                 member_id="m1", version=8)
    assert old_version == {("t", 0): UNSUPPORTED_VERSION}
    unknown = await h.commit("g", {("t", 0): (3, "")}, generation=1, member_id="zz", version=9)
    assert unknown == {("t", 0): UNKNOWN_MEMBER_ID}
    code, _ = await h.fetch("g", [("t", None, [0])], member_id="m1", epoch=r.member_epoch + 1)
    assert code == STALE_MEMBER_EPOCH
    code, fetched = await h.fetch("g", [("t", None, [0])], member_id="m1", epoch=r.member_epoch)
    assert code == 0 and fetched[("t", 0)][0] == 3


@run
async def test_commit_by_topic_id_v10():
    h = Harness()
    await h.start()
    R = OffsetCommitRequest
    req = R(group_id="g", generation_id_or_member_epoch=-1, member_id="", topics=[
        R.OffsetCommitRequestTopic(topic_id=T_ID, partitions=[
            R.OffsetCommitRequestPartition(partition_index=2, committed_offset=77,
                                           committed_metadata="x")]),
        R.OffsetCommitRequestTopic(topic_id=bytes(16 * [5]), partitions=[
            R.OffsetCommitRequestPartition(partition_index=0, committed_offset=1)])])
    response = await h.co.commit_offsets(h.info(10), req)
    assert [(t.topic_id, [p.error_code for p in t.partitions]) for t in response.topics] == \
        [(T_ID, [0]), (bytes(16 * [5]), [UNKNOWN_TOPIC_ID])]
    group = await h.co.fetch_offsets(h.info(10), "g", [(None, T_ID, [2])], by_id=True)
    assert group.topics[0].topic_id == T_ID and group.topics[0].partitions[0].committed_offset == 77
    everything = await h.co.fetch_offsets(h.info(10), "g", None, by_id=True)
    assert [t.topic_id for t in everything.topics] == [T_ID]


@run
async def test_failed_append_answers_with_a_coordinator_error_and_keeps_old_offsets():
    h = Harness()
    await h.start()
    await h.commit("g", {("t", 0): (1, "")})
    h.log.fail_appends = 6          # NOT_LEADER_OR_FOLLOWER from the log
    assert await h.commit("g", {("t", 0): (2, "")}) == {("t", 0): NOT_COORDINATOR}
    h.log.fail_appends = 19         # NOT_ENOUGH_REPLICAS
    assert await h.commit("g", {("t", 0): (2, "")}) == {("t", 0): COORDINATOR_NOT_AVAILABLE}
    h.log.fail_appends = None
    _, fetched = await h.fetch("g", [("t", None, [0])])
    assert fetched[("t", 0)][0] == 1


@run
async def test_require_stable_waits_for_commits_in_flight():
    h = Harness()
    await h.start()
    release = asyncio.Event()
    original = h.log.append

    async def slow_append(partition, batch):
        await release.wait()
        return await original(partition, batch)

    h.log.append = slow_append
    commit = asyncio.ensure_future(h.commit("g", {("t", 0): (5, "")}))
    await h.settle()
    _, unstable = await h.fetch("g", [("t", None, [0])])
    assert unstable[("t", 0)][0] == -1          # not durable yet: not visible
    stable = asyncio.ensure_future(h.fetch("g", [("t", None, [0])], require_stable=True))
    await h.settle()
    assert not stable.done()
    release.set()
    await commit
    _, fetched = (await stable)
    assert fetched[("t", 0)][0] == 5


@run
async def test_offset_delete():
    h = Harness()
    await h.start()
    await h.commit("g", {("t", 0): (1, ""), ("t", 1): (2, ""), ("u", 0): (3, "")})
    D = OffsetDeleteRequest
    req = D(group_id="g", topics=[
        D.OffsetDeleteRequestTopic(name="t", partitions=[D.OffsetDeleteRequestPartition(
            partition_index=0), D.OffsetDeleteRequestPartition(partition_index=9)]),
        D.OffsetDeleteRequestTopic(name="zz", partitions=[D.OffsetDeleteRequestPartition(
            partition_index=0)])])
    response = await h.co.delete_offsets(h.info(0), req)
    assert response.error_code == 0
    assert [(t.name, [(p.partition_index, p.error_code) for p in t.partitions])
            for t in response.topics] == [("t", [(0, 0), (9, UNKNOWN_TOPIC_OR_PARTITION)]),
                                          ("zz", [(0, UNKNOWN_TOPIC_OR_PARTITION)])]
    _, fetched = await h.fetch("g", None)
    assert set(fetched) == {("t", 1), ("u", 0)}
    missing = await h.co.delete_offsets(h.info(0), D(group_id="nope", topics=[]))
    assert missing.error_code == GROUP_ID_NOT_FOUND


@run
async def test_offset_delete_refused_for_subscribed_topics_and_non_consumer_groups():
    h = Harness()
    await h.start()
    ids, leader, generation = await h.stable_group(n=1)       # subscribes to "t"
    await h.commit("g", {("t", 0): (1, ""), ("u", 0): (1, "")}, generation=generation,
                   member_id=ids[0])
    D = OffsetDeleteRequest
    req = D(group_id="g", topics=[D.OffsetDeleteRequestTopic(name=n, partitions=[
        D.OffsetDeleteRequestPartition(partition_index=0)]) for n in ("t", "u")])
    response = await h.co.delete_offsets(h.info(0), req)
    assert [(t.name, t.partitions[0].error_code) for t in response.topics] == \
        [("t", GROUP_SUBSCRIBED_TO_TOPIC), ("u", 0)]
    await h.stable_group(group="connect", n=1, protocol_type="connect",
                         protocols=[("default", b"x")])
    other = await h.co.delete_offsets(h.info(0), D(group_id="connect", topics=[]))
    assert other.error_code == NON_EMPTY_GROUP


@run
async def test_offsets_of_an_empty_classic_group_expire_with_the_group():
    h = Harness(offsets_retention_ms=7 * DAY, offsets_retention_check_interval_ms=600000,
                group_max_session_timeout_ms=30 * DAY)
    await h.start()
    ids, leader, generation = await h.stable_group(n=1, session=20 * DAY)
    await h.commit("g", {("t", 0): (1, "")}, generation=generation, member_id=ids[0])
    await h.advance(8 * DAY)                  # active group: offsets stay
    assert h.group("g").has_member(ids[0])
    _, fetched = await h.fetch("g", [("t", None, [0])])
    assert fetched[("t", 0)][0] == 1
    await h.co.leave_group(h.info(), "g", [(ids[0], None, None)])
    await h.advance(6 * DAY)
    assert h.group("g").state == EMPTY
    _, fetched = await h.fetch("g", [("t", None, [0])])
    assert fetched[("t", 0)][0] == 1          # retention counts from when it became Empty
    await h.advance(2 * DAY)
    _, fetched = await h.fetch("g", [("t", None, [0])])
    assert fetched[("t", 0)][0] == -1
    assert h.group("g") is None               # emptied and deleted
    kinds = [(r.type, r.value is None) for r in h.records("g")[-2:]]
    assert kinds == [(1, True), (2, True)]    # offset tombstone, group tombstone


@run
async def test_standalone_offsets_expire_from_commit_time_and_explicit_retention():
    h = Harness(offsets_retention_ms=DAY, offsets_retention_check_interval_ms=3600000)
    await h.start()
    await h.commit("simple", {("t", 0): (1, "")})
    await h.commit("retained", {("t", 0): (1, "")}, version=2, retention=3 * 3600000)
    await h.advance(2 * 3600000)
    await h.commit("simple", {("t", 1): (1, "")})
    assert (await h.fetch("retained", None))[1]
    await h.advance(2 * 3600000)              # explicit 3 h retention is over
    assert (await h.fetch("retained", None))[1] == {}
    await h.advance(20 * 3600000)             # 24 h since the first commit
    _, fetched = await h.fetch("simple", None)
    assert set(fetched) == {("t", 1)}
    assert h.group("simple") is not None
    await h.advance(3 * 3600000)
    assert h.group("simple") is None


@run
async def test_consumer_group_offsets_of_unsubscribed_topics_expire():
    h = Harness(offsets_retention_ms=DAY, offsets_retention_check_interval_ms=3600000,
                consumer_session_timeout_ms=2 * 3600000)
    await h.start()
    r = await h.cgh(member_id="m1", topics=("t",))
    for topic in ("t", "u"):
        await h.commit("g", {(topic, 0): (1, "")}, generation=r.member_epoch, member_id="m1",
                       version=9)
    for _ in range(26):
        await h.advance(3600000)
        await h.cgh(member_id="m1", epoch=r.member_epoch, full=False)
    _, fetched = await h.fetch("g", None)
    assert set(fetched) == {("t", 0)}


@run
async def test_offsets_of_deleted_topics_are_dropped():
    h = Harness()
    await h.start()
    await h.commit("a", {("t", 0): (1, ""), ("u", 0): (2, "")})
    await h.commit("b", {("t", 5): (3, "")})
    await h.co.on_topics_deleted(["t"])
    assert (await h.fetch("a", None))[1] == {("u", 0): (2, "", 0)}
    assert (await h.fetch("b", None))[1] == {}
    await h.restart()
    assert (await h.fetch("a", None))[1] == {("u", 0): (2, "", 0)}
