"""The group coordinator service: one shard per led partition of __consumer_offsets, request-level
checks, and routing of each group to its shard (Kafka's GroupCoordinatorService).

A group belongs to partition `partition_for(group_id, n)`; this broker coordinates it while it
leads that partition: `on_elected(p)` loads the partition's shard, `on_resigned(p)` drops it. A
request for a group whose shard is not here gets NOT_COORDINATOR, one whose shard is still
loading COORDINATOR_LOAD_IN_PROGRESS, and any request before `start()` COORDINATOR_NOT_AVAILABLE
— the codes that make clients look the coordinator up again and retry.

    coordinator = GroupCoordinator(GroupCoordinatorConfig.from_broker(cfg), offsets_log,
                                   MetadataTopics(metadata_store))
    coordinator.start(num_partitions)            # the actual partition count of __consumer_offsets
    await coordinator.on_elected(p)              # for each partition this broker leads
    ...
    await coordinator.stop()
"""
from __future__ import annotations

import asyncio
import inspect
import logging
from dataclasses import dataclass

from pybroker.codec.messages import (ConsumerGroupHeartbeatResponse, HeartbeatResponse,
                                     JoinGroupResponse, LeaveGroupResponse, OffsetCommitResponse,
                                     OffsetDeleteResponse, OffsetFetchResponse, SyncGroupResponse)
from pybroker.coordinator.clock import LoopClock
from pybroker.coordinator.errors import (COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE,
                                         INVALID_GROUP_ID, INVALID_SESSION_TIMEOUT, NOT_COORDINATOR,
                                         UNKNOWN_MEMBER_ID, GroupError)
from pybroker.coordinator.shard import ACTIVE, LOADING, GroupCoordinatorShard
from pybroker.coordinator.topics import partition_for

log = logging.getLogger("pybroker.coordinator")
GROUP_KEY = 0
TRANSACTION_KEY = 1


@dataclass(frozen=True)
class RequestInfo:
    """What the coordinator needs of a request's context."""
    client_id: str = ""
    client_host: str = ""
    api_version: int = 0

    @classmethod
    def from_context(cls, ctx) -> "RequestInfo":
        peer = getattr(ctx.conn, "peer", None)
        host = f"/{peer[0]}" if peer else ""
        return cls(ctx.client_id, host, ctx.api_version)


class GroupCoordinator:
    def __init__(self, config, offsets_log, topics, clock=None):
        self.config = config
        self.log = offsets_log
        self.topics = topics
        self.clock = clock or LoopClock()
        self.num_partitions = config.offsets_topic_num_partitions
        self.shards = {}
        self.active = False
        self.offsets_topic_creator = None   # callable creating __consumer_offsets on first use
        self._creating = None

    # --- lifecycle -----------------------------------------------------------------------------
    def start(self, num_partitions=None) -> None:
        if num_partitions is not None:
            self.num_partitions = num_partitions
        self.active = True

    async def stop(self) -> None:
        self.active = False
        for partition in list(self.shards):
            self.on_resigned(partition)

    async def on_elected(self, partition: int, leader_epoch: int = 0) -> None:
        """This broker now leads `partition` of __consumer_offsets: load its groups."""
        if partition in self.shards:
            return
        shard = GroupCoordinatorShard(partition, self.config, self.clock, self.log, self.topics)
        self.shards[partition] = shard
        try:
            await shard.load()
        except Exception:
            log.exception("loading __consumer_offsets-%d failed", partition)
            if self.shards.get(partition) is shard:
                del self.shards[partition]
            shard.unload()
            raise

    def on_resigned(self, partition: int) -> None:
        """This broker no longer leads `partition`: drop its groups."""
        shard = self.shards.pop(partition, None)
        if shard is not None:
            shard.unload()

    async def load_all(self) -> None:
        """Single node: this broker leads every partition."""
        for partition in range(self.num_partitions):
            await self.on_elected(partition)

    async def on_topics_deleted(self, topics) -> None:
        """Topics were deleted: their committed offsets go, in every group (call from
        DeleteTopics after the metadata change)."""
        writes = [shard.on_topics_deleted(set(topics)) for shard in list(self.shards.values())
                  if shard.state == ACTIVE]
        results = await asyncio.gather(*(w for w in writes if w is not None),
                                       return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                log.warning("dropping offsets of deleted topics failed: %s", result)

    # --- routing -------------------------------------------------------------------------------
    def partition_for(self, group_id: str) -> int:
        return partition_for(group_id, self.num_partitions)

    def coordinator_error(self, group_id: str) -> int:
        """0 when this broker coordinates `group_id` now, else the error code to answer with."""
        if not self.active:
            return COORDINATOR_NOT_AVAILABLE
        shard = self.shards.get(self.partition_for(group_id))
        if shard is None:
            return NOT_COORDINATOR
        if shard.state == LOADING:
            return COORDINATOR_LOAD_IN_PROGRESS
        return 0 if shard.state == ACTIVE else NOT_COORDINATOR

    def shard(self, group_id: str) -> GroupCoordinatorShard:
        code = self.coordinator_error(group_id)
        if code:
            raise GroupError(code)
        return self.shards[self.partition_for(group_id)]

    def find_coordinator(self, key: str, key_type: int = GROUP_KEY) -> int:
        """FindCoordinator's error for a key: 0 when this broker leads the key's partition of
        __consumer_offsets (its shard may still be loading: the group requests then answer
        COORDINATOR_LOAD_IN_PROGRESS); transactional ids get COORDINATOR_NOT_AVAILABLE (no
        transaction coordinator yet)."""
        if key_type != GROUP_KEY or not self.active:
            return COORDINATOR_NOT_AVAILABLE
        if self.partition_for(key) in self.shards:
            return 0
        self._maybe_create_offsets_topic()
        return COORDINATOR_NOT_AVAILABLE

    def _maybe_create_offsets_topic(self) -> None:
        if self.shards or self.offsets_topic_creator is None:
            return
        if self._creating is None or self._creating.done():
            self._creating = self.offsets_topic_creator()

    # --- classic protocol ----------------------------------------------------------------------
    async def join_group(self, info: RequestInfo, req) -> JoinGroupResponse:
        if not req.group_id:
            return _join_error(req.member_id, INVALID_GROUP_ID)
        if not (self.config.group_min_session_timeout_ms <= req.session_timeout_ms
                <= self.config.group_max_session_timeout_ms):
            return _join_error(req.member_id, INVALID_SESSION_TIMEOUT)
        try:
            shard = self.shard(req.group_id)
        except GroupError as exc:
            return _join_error(req.member_id, exc.code)
        return await shard.classic.join(info, req)

    async def sync_group(self, info: RequestInfo, req) -> SyncGroupResponse:
        if not req.group_id:
            return SyncGroupResponse(error_code=INVALID_GROUP_ID)
        try:
            shard = self.shard(req.group_id)
        except GroupError as exc:
            return SyncGroupResponse(error_code=exc.code)
        return await shard.classic.sync(info, req)

    def heartbeat(self, info: RequestInfo, req) -> HeartbeatResponse:
        if not req.group_id:
            return HeartbeatResponse(error_code=INVALID_GROUP_ID)
        try:
            shard = self.shard(req.group_id)
        except GroupError as exc:
            code = 0 if exc.code == COORDINATOR_LOAD_IN_PROGRESS else exc.code
            return HeartbeatResponse(error_code=code)  # loading: Kafka answers blindly
        return shard.classic.heartbeat(info, req)

    async def leave_group(self, info: RequestInfo, group_id, identities) -> LeaveGroupResponse:
        """identities: [(member_id, group_instance_id, reason)]."""
        if not group_id:
            return LeaveGroupResponse(error_code=INVALID_GROUP_ID)
        try:
            shard = self.shard(group_id)
            response = shard.classic.leave(info, group_id, identities)
            if inspect.isawaitable(response):          # classic members of a consumer group
                response = await response
        except GroupError as exc:
            if exc.code != UNKNOWN_MEMBER_ID:
                return LeaveGroupResponse(error_code=exc.code)
            return LeaveGroupResponse(error_code=0, members=[
                LeaveGroupResponse.MemberResponse(member_id=m, group_instance_id=i,
                                                  error_code=UNKNOWN_MEMBER_ID)
                for m, i, _ in identities])
        await shard.barrier()
        return response

    # --- consumer protocol ---------------------------------------------------------------------
    async def consumer_group_heartbeat(self, info: RequestInfo, req):
        if not req.group_id:
            return ConsumerGroupHeartbeatResponse(error_code=42,  # INVALID_REQUEST
                                                  error_message="GroupId can't be empty.")
        try:
            shard = self.shard(req.group_id)
        except GroupError as exc:
            return ConsumerGroupHeartbeatResponse(error_code=exc.code)
        return await shard.consumer.heartbeat(info, req)

    def consumer_group_describe(self, info: RequestInfo, group_ids) -> list:
        from pybroker.codec.messages import ConsumerGroupDescribeResponse as CGD
        out = []
        for group_id in group_ids:
            if not group_id:
                out.append(CGD.DescribedGroup(group_id=group_id, error_code=INVALID_GROUP_ID))
                continue
            try:
                shard = self.shard(group_id)
            except GroupError as exc:
                out.append(CGD.DescribedGroup(group_id=group_id, error_code=exc.code))
                continue
            out.append(shard.consumer.describe(group_id, info.api_version))
        return out

    # --- offsets -------------------------------------------------------------------------------
    async def commit_offsets(self, info: RequestInfo, req) -> OffsetCommitResponse:
        try:
            if req.group_id is None:
                raise GroupError(INVALID_GROUP_ID)
            shard = self.shard(req.group_id)
        except GroupError as exc:
            return _commit_error(req, exc.code, info.api_version)
        return await shard.offsets.commit(info, req)

    async def fetch_offsets(self, info: RequestInfo, group_id, topics, member_id=None,
                            member_epoch=-1, require_stable=False, by_id=False):
        """One OffsetFetchResponseGroup; topics None = all committed partitions, else
        [(name, topic_id, [partitions])]."""
        try:
            if group_id is None:
                raise GroupError(INVALID_GROUP_ID)
            shard = self.shard(group_id)
        except GroupError as exc:
            return OffsetFetchResponse.OffsetFetchResponseGroup(group_id=group_id,
                                                                error_code=exc.code, topics=[])
        if require_stable:
            await shard.barrier()
        return shard.offsets.fetch(group_id, topics, member_id, member_epoch, by_id)

    async def delete_offsets(self, info: RequestInfo, req) -> OffsetDeleteResponse:
        if not req.group_id:
            return OffsetDeleteResponse(error_code=INVALID_GROUP_ID)
        try:
            shard = self.shard(req.group_id)
        except GroupError as exc:
            return OffsetDeleteResponse(error_code=exc.code)
        return await shard.offsets.delete(req)

    # --- admin ---------------------------------------------------------------------------------
    def list_groups(self, info: RequestInfo, states=None, types=None):
        """(error code, [ListedGroup]) over every loaded shard."""
        if not self.active:
            return COORDINATOR_NOT_AVAILABLE, []
        out = []
        for partition in sorted(self.shards):
            shard = self.shards[partition]
            if shard.state == ACTIVE:
                out += shard.list_groups(states, types)
        return 0, out

    def describe_groups(self, info: RequestInfo, group_ids) -> list:
        from pybroker.codec.messages import DescribeGroupsResponse as DG
        out = []
        for group_id in group_ids:
            try:
                shard = self.shard(group_id)
            except GroupError as exc:
                out.append(DG.DescribedGroup(group_id=group_id, error_code=exc.code,
                                             group_state="", protocol_type="", protocol_data=""))
                continue
            out.append(shard.describe_group(group_id, info.api_version))
        return out

    async def delete_groups(self, info: RequestInfo, group_ids) -> list:
        """[(group id, error code)], in request order."""
        by_shard, results = {}, {}
        for group_id in group_ids:
            try:
                by_shard.setdefault(self.shard(group_id), []).append(group_id)
            except GroupError as exc:
                results[group_id] = exc.code
        done = await asyncio.gather(*(shard.delete_groups(ids) for shard, ids in by_shard.items()))
        for shard_results in done:
            results.update(dict(shard_results))
        return [(group_id, results[group_id]) for group_id in group_ids]


def _join_error(member_id, code) -> JoinGroupResponse:
    return JoinGroupResponse(error_code=code, member_id=member_id, protocol_name=None)


def _commit_error(req, code, api_version) -> OffsetCommitResponse:
    R = OffsetCommitResponse
    by_id = api_version >= 10
    return R(topics=[R.OffsetCommitResponseTopic(
        name="" if by_id else t.name, topic_id=t.topic_id if by_id else R.OffsetCommitResponseTopic().topic_id,
        partitions=[R.OffsetCommitResponsePartition(partition_index=p.partition_index, error_code=code)
                    for p in t.partitions]) for t in req.topics])
