"""One coordinator shard: the groups and offsets of one partition of __consumer_offsets (Kafka's
GroupCoordinatorShard). It is loaded by replaying that partition's records when this broker
becomes the partition's leader, and dropped (parked requests answered NOT_COORDINATOR) when it
stops being the leader — so coordination moves with the partition's leadership.

Writes are queued and appended in order, one record batch per operation; `write()` returns a
future that resolves once the batch is durable. Records of consumer groups and offsets are
applied to memory by the operation that makes them (consumer groups) or once written (offsets);
classic groups are kept in memory directly and persisted as GroupMetadata records at the points
Kafka does (group created, assignment stored, group emptied, static member replaced).
"""
from __future__ import annotations

import asyncio
import collections
import logging

from pybroker.codec.messages import DescribeGroupsResponse, ListGroupsResponse
from pybroker.coordinator import records as rec
from pybroker.coordinator.classic import DEAD, EMPTY, ClassicGroup, STABLE
from pybroker.coordinator.classic_ops import ClassicGroupManager
from pybroker.coordinator.clock import Timer
from pybroker.coordinator.consumer import ConsumerGroup
from pybroker.coordinator.consumer_ops import ConsumerGroupManager
from pybroker.coordinator.errors import GROUP_ID_NOT_FOUND, GroupError, append_error_code
from pybroker.coordinator.offsets import OffsetManager
from pybroker.coordinator.storage import encode_batch, iter_records

log = logging.getLogger("pybroker.coordinator")

LOADING = "loading"
ACTIVE = "active"
CLOSED = "closed"
CONSUMER_TYPES = (rec.CONSUMER_GROUP_METADATA, rec.CONSUMER_GROUP_PARTITION_METADATA,
                  rec.CONSUMER_GROUP_MEMBER_METADATA, rec.CONSUMER_GROUP_TARGET_ASSIGNMENT_METADATA,
                  rec.CONSUMER_GROUP_TARGET_ASSIGNMENT_MEMBER,
                  rec.CONSUMER_GROUP_CURRENT_MEMBER_ASSIGNMENT)
ERROR_MESSAGE_VERSION = 6   # DescribeGroups v6+: GROUP_ID_NOT_FOUND with a message (KIP-1043)
DG = DescribeGroupsResponse


class GroupCoordinatorShard:
    def __init__(self, partition, config, clock, offsets_log, topics):
        self.partition = partition
        self.config = config
        self.clock = clock
        self.log = offsets_log
        self.topics = topics
        self.timer = Timer(clock)
        self.groups = {}
        self.offsets = OffsetManager(self)
        self.classic = ClassicGroupManager(self)
        self.consumer = ConsumerGroupManager(self)
        self.state = LOADING
        self._queue = collections.deque()
        self._writer = None

    # --- load / unload -------------------------------------------------------------------------
    async def load(self) -> int:
        """Replay the partition's records; returns how many were applied."""
        count = 0
        async for chunk in self.log.read(self.partition):
            for record in iter_records(chunk):
                self._replay(record)
                count += 1
        for group in list(self.groups.values()):
            if group.type == "classic":
                self.classic.on_loaded(group)
            else:
                self.consumer.on_loaded(group)
        self.state = ACTIVE
        self._schedule_expiration()
        log.info("loaded __consumer_offsets-%d: %d records, %d groups", self.partition, count,
                 len(self.groups))
        return count

    def unload(self) -> None:
        self.state = CLOSED
        self.timer.cancel_all()
        for group in self.groups.values():
            if group.type == "classic" and group.state != DEAD:
                self.classic.on_unloaded(group)
        self.groups.clear()
        for _, fut, _ in self._queue:
            if not fut.done():
                fut.set_exception(GroupError(16, "the coordinator moved"))  # NOT_COORDINATOR
        self._queue.clear()

    def _replay(self, record) -> None:
        if record.type == rec.OFFSET_COMMIT:
            self.offsets.replay(record.key, record.value)
        elif record.type == rec.GROUP_METADATA:
            self.classic.replay(record.key, record.value)
        else:
            self._apply_consumer(record)

    # --- applying live records ---------------------------------------------------------------
    def apply(self, records) -> None:
        """Apply records made by an operation (consumer groups, deletions) to memory."""
        for record in records:
            if record.type == rec.OFFSET_COMMIT:
                self.offsets.replay(record.key, record.value)
            elif record.type == rec.GROUP_METADATA:
                if record.value is None:
                    self.remove_group(record.key.group)
            else:
                self._apply_consumer(record)

    def _apply_consumer(self, record) -> None:
        group_id = record.key.group_id
        group = self.groups.get(group_id)
        if group is None or group.type != "consumer":
            if record.value is None:
                return
            group = ConsumerGroup(group_id)
            self.groups[group_id] = group
        group.apply(record)
        if record.type == rec.CONSUMER_GROUP_METADATA and record.value is None:
            self.groups.pop(group_id, None)

    # --- writes ------------------------------------------------------------------------------
    def write(self, records, on_written=None) -> asyncio.Future:
        """Append `records` as one batch after every earlier write. The future resolves with the
        batch's base offset once durable (an empty list just waits for earlier writes);
        `on_written(records)` runs first. On failure the future raises the append's error."""
        fut = asyncio.get_running_loop().create_future()
        fut.add_done_callback(_retrieve)
        if self.state == CLOSED:
            fut.set_exception(GroupError(16, "the coordinator moved"))
            return fut
        self._queue.append((list(records), fut, on_written))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.ensure_future(self._drain())
        return fut

    async def barrier(self) -> None:
        """Wait until every write queued so far is done (OffsetFetch with require_stable)."""
        try:
            await self.write([])
        except Exception:  # a failed earlier write is not this caller's error
            pass

    async def _drain(self) -> None:
        while self._queue:
            records, fut, on_written = self._queue.popleft()
            try:
                offset = await self._append(records) if records else -1
            except Exception as exc:  # the append failed: the caller maps the code
                if not fut.done():
                    fut.set_exception(exc)
                continue
            if on_written is not None:
                on_written(records)
            if not fut.done():
                fut.set_result(offset)

    async def _append(self, records) -> int:
        batch = encode_batch(records, self.clock.now_ms())
        return await self.log.append(self.partition, batch)

    # --- groups ------------------------------------------------------------------------------
    def ensure_group_for_offsets(self, group_id):
        """The group offsets are committed to; a 'simple' group (Empty classic group without a
        protocol type) when there is none."""
        group = self.groups.get(group_id)
        if group is None:
            group = ClassicGroup(group_id, self.clock.now_ms())
            self.groups[group_id] = group
        return group

    def remove_group(self, group_id) -> None:
        group = self.groups.pop(group_id, None)
        if group is not None and group.type == "classic" and group.state != DEAD:
            group.transition_to(DEAD, self.clock.now_ms())

    def replace_group(self, group) -> None:
        self.groups[group.group_id] = group

    def group_tombstones(self, group) -> list:
        if group.type == "classic":
            return [rec.group_metadata_tombstone(group.group_id)]
        return self.consumer.delete_records(group)

    # --- admin -------------------------------------------------------------------------------
    def list_groups(self, states, types) -> list:
        states = {s.strip().lower() for s in states or ()}
        types = {t.strip().lower() for t in types or ()}
        out = []
        for group in self.groups.values():
            state = group.state_name()
            if states and state.lower() not in states:
                continue
            if types and group.type not in types:
                continue
            out.append(ListGroupsResponse.ListedGroup(
                group_id=group.group_id, protocol_type=group.protocol_type or "",
                group_state=state, group_type=group.type))
        return out

    def describe_group(self, group_id, api_version):
        """DescribeGroups of one group (classic groups; others are Dead / GROUP_ID_NOT_FOUND)."""
        group = self.groups.get(group_id)
        if group is None or group.type != "classic":
            out = DG.DescribedGroup(group_id=group_id, group_state=DEAD, protocol_type="",
                                    protocol_data="", members=[])
            if api_version >= ERROR_MESSAGE_VERSION:
                out.error_code = GROUP_ID_NOT_FOUND
                out.error_message = (f"Group {group_id} not found." if group is None
                                     else f"Group {group_id} is not a classic group.")
            return out
        stable = group.state == STABLE
        members = [DG.DescribedGroupMember(
            member_id=m.member_id, group_instance_id=m.group_instance_id, client_id=m.client_id,
            client_host=m.client_host, member_assignment=m.assignment,
            member_metadata=m.metadata(group.protocol_name) if stable else b"")
            for m in group.members.values()]
        return DG.DescribedGroup(group_id=group_id, group_state=group.state,
                                 protocol_type=group.protocol_type or "",
                                 protocol_data=group.protocol_name if stable else "",
                                 members=members)

    async def delete_groups(self, group_ids) -> list:
        """[(group id, error code)] for DeleteGroups: the group and all its offsets go."""
        results, records, deleted = [], [], []
        for group_id in group_ids:
            group = self.groups.get(group_id)
            try:
                if group is None:
                    raise GroupError(GROUP_ID_NOT_FOUND, f"group {group_id} not found")
                group.validate_delete_group()
            except GroupError as exc:
                results.append([group_id, exc.code])
                continue
            records += self.offsets.delete_all_records(group_id) + self.group_tombstones(group)
            results.append([group_id, 0])
            deleted.append(group_id)
        if records:
            self.apply(records)
            try:
                await self.write(records)
            except Exception as exc:
                code = append_error_code(exc)
                for result in results:
                    if result[0] in deleted:
                        result[1] = code
        return [tuple(r) for r in results]

    def on_topics_deleted(self, topics):
        """Drop the committed offsets of deleted topics; the write future, or None."""
        records = self.offsets.deleted_topic_records(topics)
        if not records:
            return None
        self.apply(records)
        return self.write(records)

    # --- offset expiry -----------------------------------------------------------------------
    def _schedule_expiration(self) -> None:
        self.timer.schedule("offsets-expiration", self.config.offsets_retention_check_interval_ms,
                            self.expire_offsets)

    def expire_offsets(self):
        """Remove expired offsets and groups left empty without offsets (Kafka's
        cleanupGroupMetadata); returns the write future, or None when nothing expired."""
        now = self.clock.now_ms()
        records = []
        for group in list(self.groups.values()):
            if group.type == "consumer":
                self.consumer.refresh_regexes(group)
            expired, all_expired = self.offsets.expired_records(group, now)
            records += expired
            if all_expired and _is_empty(group):
                records += self.group_tombstones(group)
        self._schedule_expiration()
        if not records:
            return None
        log.info("__consumer_offsets-%d: %d tombstones from offset expiration", self.partition,
                 len(records))
        self.apply(records)
        return self.write(records)


def _is_empty(group) -> bool:
    return group.is_empty() if group.type == "consumer" else group.state == EMPTY


def _retrieve(fut) -> None:
    """Mark a write's failure as seen (callers that fire and forget log it themselves)."""
    if not fut.cancelled():
        fut.exception()
