"""A coordinator on a manual clock, an in-memory __consumer_offsets and a fixed set of topics, with
request builders. Tests are plain functions running a scenario with `run(...)`."""
import asyncio
import functools

from pybroker.codec.messages import (ConsumerGroupHeartbeatRequest, ConsumerProtocolSubscription,
                                     HeartbeatRequest, JoinGroupRequest, OffsetCommitRequest,
                                     SyncGroupRequest)
from pybroker.codec.protocol import encode
from pybroker.coordinator import (GroupCoordinator, GroupCoordinatorConfig, MemoryOffsetsLog,
                                  RequestInfo, StaticTopics)
from pybroker.coordinator.clock import ManualClock

T_ID = bytes(range(1, 17))      # topic "t", 6 partitions
U_ID = bytes(range(17, 33))     # topic "u", 3 partitions
JP = JoinGroupRequest.JoinGroupRequestProtocol


def run(coro_fn):
    """Decorator: run an async test on a fresh event loop, bounded in time."""
    @functools.wraps(coro_fn)
    def wrapper(*args, **kwargs):
        return asyncio.run(asyncio.wait_for(coro_fn(*args, **kwargs), 10))
    return wrapper


def subscription(topics, version=0) -> bytes:
    """ConsumerProtocolSubscription bytes (int16 version + body), as classic clients send."""
    body = encode(("data", "ConsumerProtocolSubscription"), version,
                  ConsumerProtocolSubscription(topics=list(topics)))
    return version.to_bytes(2, "big") + body


class Harness:
    def __init__(self, **config):
        defaults = dict(offsets_topic_num_partitions=4, group_initial_rebalance_delay_ms=0,
                        consumer_session_timeout_ms=45000, consumer_heartbeat_interval_ms=5000)
        defaults.update(config)
        self.config = GroupCoordinatorConfig(**defaults)
        self.clock = ManualClock()
        self.log = MemoryOffsetsLog()
        self.topics = StaticTopics({"t": (T_ID, 6), "u": (U_ID, 3)})
        self.co = self.new_coordinator()

    def new_coordinator(self):
        return GroupCoordinator(self.config, self.log, self.topics, self.clock)

    async def start(self, co=None):
        co = co or self.co
        co.start()
        await co.load_all()
        return co

    async def restart(self):
        """Drop the coordinator and load a new one from the same log (a broker restart)."""
        await self.co.stop()
        self.co = self.new_coordinator()
        await self.start()
        return self.co

    @staticmethod
    async def settle(rounds=40):
        for _ in range(rounds):
            await asyncio.sleep(0)

    async def advance(self, ms):
        """Let pending tasks run, move the clock (firing due timers), let them run again."""
        await self.settle()
        self.clock.advance(ms)
        await self.settle()

    @staticmethod
    def info(version=9, client_id="client"):
        return RequestInfo(client_id, "/127.0.0.1", version)

    def shard(self, group_id):
        return self.co.shards[self.co.partition_for(group_id)]

    def group(self, group_id):
        return self.shard(group_id).groups.get(group_id)

    def records(self, group_id):
        return self.log.records(self.co.partition_for(group_id))

    # --- classic protocol ----------------------------------------------------------------------
    def join(self, group="g", member_id="", version=9, session=10000, rebalance=30000,
             instance=None, protocols=None, protocol_type="consumer", client_id="client"):
        protocols = protocols if protocols is not None else [("range", subscription(["t"]))]
        req = JoinGroupRequest(group_id=group, session_timeout_ms=session,
                               rebalance_timeout_ms=rebalance, member_id=member_id,
                               group_instance_id=instance, protocol_type=protocol_type,
                               protocols=[JP(name=n, metadata=m) for n, m in protocols])
        return asyncio.ensure_future(self.co.join_group(self.info(version, client_id), req))

    async def joined(self, group="g", **kw):
        """Join and let due timers (a zero initial delay) fire; the response."""
        task = self.join(group, **kw)
        await self.advance(0)
        return await task

    async def join_new(self, group="g", **kw):
        """A dynamic member's two-step join (v4+): MEMBER_ID_REQUIRED, then the real JoinGroup
        (returned as a pending task)."""
        first = await self.join(group, **kw)
        assert first.error_code == 79, first
        return first.member_id, self.join(group, member_id=first.member_id, **kw)

    def sync(self, group, generation, member_id, assignments=None, instance=None,
             protocol_type=None, protocol_name=None):
        req = SyncGroupRequest(group_id=group, generation_id=generation, member_id=member_id,
                               group_instance_id=instance, protocol_type=protocol_type,
                               protocol_name=protocol_name, assignments=[
                                   SyncGroupRequest.SyncGroupRequestAssignment(member_id=m,
                                                                               assignment=a)
                                   for m, a in (assignments or {}).items()])
        return asyncio.ensure_future(self.co.sync_group(self.info(), req))

    def heartbeat(self, group, generation, member_id, instance=None):
        return self.co.heartbeat(self.info(), HeartbeatRequest(
            group_id=group, generation_id=generation, member_id=member_id,
            group_instance_id=instance)).error_code

    async def stable_group(self, group="g", n=2, assign=None, **kw):
        """n dynamic members through join and sync; returns (members ids, leader, generation).
        The leader assigns `assign(member_id)` bytes to each (default: the id's bytes)."""
        tasks = []
        for _ in range(n):
            _, task = await self.join_new(group, **kw)
            tasks.append(task)
            await self.settle()
        await self.advance(1)
        responses = [await t for t in tasks]
        assert all(r.error_code == 0 for r in responses), responses
        generation = responses[0].generation_id
        leader = responses[0].leader
        ids = [r.member_id for r in responses]
        assign = assign or (lambda member_id: member_id.encode())
        syncs = [self.sync(group, generation, m, {x: assign(x) for x in ids} if m == leader
                           else None) for m in ids]
        results = [await s for s in syncs]
        assert all(r.error_code == 0 for r in results), results
        return ids, leader, generation

    # --- consumer protocol ---------------------------------------------------------------------
    async def cgh(self, group="g", member_id="m1", epoch=0, topics=("t",), owned=None, regex=None,
                  instance=None, assignor=None, rebalance=30000, version=1, full=True):
        if epoch == 0 and owned is None:
            owned = []
        req = ConsumerGroupHeartbeatRequest(
            group_id=group, member_id=member_id, member_epoch=epoch, instance_id=instance,
            rebalance_timeout_ms=rebalance if (full or epoch == 0) else -1,
            subscribed_topic_names=list(topics) if topics is not None and (full or epoch == 0)
            else None,
            subscribed_topic_regex=regex, server_assignor=assignor,
            topic_partitions=_owned(owned))
        return await self.co.consumer_group_heartbeat(self.info(version), req)

    # --- offsets -------------------------------------------------------------------------------
    async def commit(self, group, offsets, generation=-1, member_id="", instance=None, version=8,
                     retention=-1):
        """offsets: {(topic, partition): (offset, metadata)}"""
        R = OffsetCommitRequest
        by_topic = {}
        for (topic, p), (off, md) in offsets.items():
            by_topic.setdefault(topic, []).append(R.OffsetCommitRequestPartition(
                partition_index=p, committed_offset=off, committed_metadata=md,
                committed_leader_epoch=3))
        req = R(group_id=group, generation_id_or_member_epoch=generation, member_id=member_id,
                group_instance_id=instance, retention_time_ms=retention,
                topics=[R.OffsetCommitRequestTopic(name=t, partitions=ps)
                        for t, ps in by_topic.items()])
        response = await self.co.commit_offsets(self.info(version), req)
        return {(t.name, p.partition_index): p.error_code
                for t in response.topics for p in t.partitions}

    async def fetch(self, group, topics=None, require_stable=False, member_id=None, epoch=-1):
        """{(topic, partition): (offset, metadata, error)} plus the group error."""
        group_resp = await self.co.fetch_offsets(self.info(8), group, topics, member_id, epoch,
                                                 require_stable)
        return group_resp.error_code, {
            (t.name, p.partition_index): (p.committed_offset, p.metadata, p.error_code)
            for t in group_resp.topics for p in t.partitions}


def _owned(owned):
    if owned is None:
        return None
    TP = ConsumerGroupHeartbeatRequest.TopicPartitions
    return [TP(topic_id=tid, partitions=sorted(ps)) for tid, ps in owned.items()] \
        if isinstance(owned, dict) else list(owned)


def assigned(response) -> dict:
    """{topic id: set(partitions)} of a ConsumerGroupHeartbeat response's assignment."""
    if response.assignment is None:
        return None
    return {tp.topic_id: set(tp.partitions) for tp in response.assignment.topic_partitions}
