"""Classic-protocol members inside a consumer group (KIP-848's online migration): JoinGroup,
SyncGroup, Heartbeat and LeaveGroup from clients still on the classic protocol, and the
conversion of a classic group into a consumer group when its first consumer-protocol member
arrives (online upgrade).

A classic member is a consumer-group member that carries its session timeout and protocols
(ConsumerGroupMemberMetadata's ClassicMemberMetadata). Its JoinGroup is answered at once: it is
not the leader (no member list), its generation is its member epoch, and its subscription and
owned partitions come from the embedded ConsumerProtocolSubscription; the server-side assignor
decides and SyncGroup returns the member's partitions as a ConsumerProtocolAssignment. Its
Heartbeat asks it to rejoin (REBALANCE_IN_PROGRESS) while the group epoch is ahead of it, while
it must revoke partitions, or when partitions it waits for are free. Timers: join-<group>-<member>
and sync-<group>-<member> fence a member that does not rejoin / sync within its rebalance timeout;
its session timeout is its classic one.

Not implemented: the downgrade (a consumer group left with only classic members stays a consumer
group instead of becoming a classic group again).
"""
from __future__ import annotations

import uuid
from collections import namedtuple

from pybroker.codec.errors import DecodeError
from pybroker.codec.messages import (ConsumerProtocolAssignment, HeartbeatResponse,
                                     JoinGroupResponse, LeaveGroupResponse, SyncGroupResponse)
from pybroker.codec.protocol import decode, encode
from pybroker.coordinator import records as rec
from pybroker.coordinator.classic import CONSUMER_PROTOCOL_TYPE
from pybroker.coordinator.classic_ops import MEMBER_ID_REQUIRED_VERSION, join_error, resolve
from pybroker.coordinator.consumer import (UNRELEASED_PARTITIONS, UNREVOKED_PARTITIONS, STABLE,
                                           ConsumerGroup, ConsumerGroupMember, freeze)
from pybroker.coordinator.errors import (FENCED_INSTANCE_ID, GROUP_ID_NOT_FOUND,
                                         ILLEGAL_GENERATION, INCONSISTENT_GROUP_PROTOCOL,
                                         MEMBER_ID_REQUIRED, REBALANCE_IN_PROGRESS,
                                         UNKNOWN_MEMBER_ID, GroupError, append_error_code)

Owned = namedtuple("Owned", "topic_id partitions")
SUBSCRIPTION_VERSIONS = (0, 3)
ASSIGNMENT_VERSIONS = (0, 3)


class ClassicMembers:
    def __init__(self, manager):
        self.manager = manager
        self.shard = manager.shard
        self.timer = manager.timer

    # --- JoinGroup -----------------------------------------------------------------------------
    def join(self, info, req, fut) -> None:
        group = self.shard.groups[req.group_id]
        records = []
        try:
            response = self._join(info, req, group, records)
        except GroupError as exc:
            resolve(fut, join_error(req.member_id, exc.code))
            return
        if response.error_code:
            resolve(fut, response)
            return
        self.shard.apply(records)
        member = self.shard.groups[req.group_id].members[response.member_id]
        write = self.shard.write(records)
        write.add_done_callback(lambda w: self._joined(w, req.group_id, member, fut, response))

    def _join(self, info, req, group, records) -> JoinGroupResponse:
        unknown = req.member_id == ""
        member_id = req.member_id or str(uuid.uuid4())
        protocols = tuple((p.name, p.metadata) for p in req.protocols)
        self.manager._check_size(group, member_id)
        if not supports_classic_protocols(group, req.protocol_type, {n for n, _ in protocols}):
            raise GroupError(INCONSISTENT_GROUP_PROTOCOL, f"member {member_id}'s protocols are "
                                                          "not supported")
        if unknown and req.group_instance_id is None and \
                info.api_version >= MEMBER_ID_REQUIRED_VERSION:
            return join_error(member_id, MEMBER_ID_REQUIRED)
        subscription = parse_subscription(protocols[0][1])
        member = self._member(group, member_id, req.group_instance_id, unknown, records)
        updated = member.copy(
            instance_id=req.group_instance_id if req.group_instance_id is not None
            else member.instance_id,
            rack_id=subscription.rack_id or member.rack_id,
            rebalance_timeout_ms=_rebalance_timeout(req), client_id=info.client_id,
            client_host=info.client_host,
            subscribed_topic_names=tuple(sorted(set(subscription.topics or ()))),
            classic_protocols=protocols, classic_session_timeout_ms=req.session_timeout_ms)
        updated = self.manager.update_and_reconcile(
            group, member, updated, self._owned(subscription), records)
        return JoinGroupResponse(error_code=0, member_id=updated.member_id,
                                 generation_id=updated.member_epoch,
                                 protocol_type=CONSUMER_PROTOCOL_TYPE,
                                 protocol_name=protocols[0][0], leader="", members=[])

    def _member(self, group, member_id, instance_id, unknown, records):
        if instance_id is None:
            return group.members.get(member_id) or ConsumerGroupMember(member_id)
        existing = group.static_member(instance_id)
        if unknown:
            if existing is None:
                return ConsumerGroupMember(member_id)
            new = existing.copy(member_id=member_id, member_epoch=0, previous_member_epoch=0)
            self.manager._replace_member(group, existing, new, records)
            return new
        if existing is None:
            raise GroupError(UNKNOWN_MEMBER_ID, f"instance id {instance_id} is unknown")
        if existing.member_id != member_id:
            raise GroupError(FENCED_INSTANCE_ID, f"instance id {instance_id} belongs to member "
                                                 f"{existing.member_id}")
        return existing

    def _owned(self, subscription) -> list:
        owned = []
        for tp in subscription.owned_partitions or ():
            meta = self.shard.topics.topic(tp.topic)
            if meta is not None:
                owned.append(Owned(meta.topic_id, list(tp.partitions)))
        return owned

    def _joined(self, write, group_id, member, fut, response) -> None:
        if write.cancelled() or write.exception() is not None:
            code = append_error_code(write.exception()) if not write.cancelled() else 16
            resolve(fut, join_error(member.member_id, code))
            return
        self.timer.cancel(_join_key(group_id, member.member_id))
        self.manager.schedule_session_timeout(group_id, member.member_id,
                                              member.classic_session_timeout_ms)
        self.timer.schedule(_sync_key(group_id, member.member_id), member.rebalance_timeout_ms,
                            lambda: self.manager.fence_by_timer(group_id, member.member_id,
                                                                reason="did not sync in time"))
        resolve(fut, response)

    # --- SyncGroup -----------------------------------------------------------------------------
    async def sync(self, info, req) -> SyncGroupResponse:
        group = self.shard.groups[req.group_id]
        try:
            member = self._classic_member(group, req.member_id, req.group_instance_id)
            if req.generation_id != member.member_epoch:
                raise GroupError(ILLEGAL_GENERATION, f"generation {req.generation_id} is not the "
                                                     f"member's epoch {member.member_epoch}")
            self._check_protocol(member, req.protocol_type, req.protocol_name)
            self._check_rebalance(group, member)
        except GroupError as exc:
            return SyncGroupResponse(error_code=exc.code)
        await self.shard.barrier()
        self.timer.cancel(_sync_key(group.group_id, member.member_id))
        self.manager.schedule_session_timeout(group.group_id, member.member_id,
                                              member.classic_session_timeout_ms)
        return SyncGroupResponse(error_code=0, protocol_type=req.protocol_type,
                                 protocol_name=req.protocol_name,
                                 assignment=self._assignment_bytes(member))

    def _check_protocol(self, member, protocol_type, protocol_name) -> None:
        if protocol_type is not None and protocol_type != CONSUMER_PROTOCOL_TYPE:
            raise GroupError(INCONSISTENT_GROUP_PROTOCOL, f"protocol type {protocol_type}")
        if protocol_name is not None and protocol_name != member.classic_protocols[0][0]:
            raise GroupError(INCONSISTENT_GROUP_PROTOCOL, f"protocol name {protocol_name}")

    def _check_rebalance(self, group, member) -> None:
        if group.group_epoch > member.member_epoch and member.state != UNREVOKED_PARTITIONS:
            self._schedule_join_timeout(group.group_id, member)
            raise GroupError(REBALANCE_IN_PROGRESS, "a new rebalance is under way: rejoin")

    def _assignment_bytes(self, member) -> bytes:
        """The member's partitions as a ConsumerProtocolAssignment (int16 version + struct), at
        the version of the member's subscription."""
        version = subscription_version(member.classic_protocols[0][1])
        version = min(max(version, ASSIGNMENT_VERSIONS[0]), ASSIGNMENT_VERSIONS[1])
        A = ConsumerProtocolAssignment
        topics = []
        for tid, parts in sorted(member.assigned.items()):
            meta = self.shard.topics.topic_by_id(tid)
            if meta is not None:
                topics.append(A.TopicPartition(topic=meta.name, partitions=sorted(parts)))
        body = encode(("data", "ConsumerProtocolAssignment"), version,
                      A(assigned_partitions=topics, user_data=None))
        return version.to_bytes(2, "big") + body

    # --- Heartbeat -----------------------------------------------------------------------------
    def heartbeat(self, info, req) -> HeartbeatResponse:
        group = self.shard.groups[req.group_id]
        try:
            member = self._classic_member(group, req.member_id, req.group_instance_id)
            if req.generation_id != member.member_epoch:
                raise GroupError(ILLEGAL_GENERATION, "generation mismatch")
        except GroupError as exc:
            return HeartbeatResponse(error_code=exc.code)
        self.manager.schedule_session_timeout(group.group_id, member.member_id,
                                              member.classic_session_timeout_ms)
        if member.member_epoch < group.group_epoch or member.state == UNREVOKED_PARTITIONS or \
                (member.state == UNRELEASED_PARTITIONS and not _waiting(group, member)):
            self._schedule_join_timeout(group.group_id, member)
            return HeartbeatResponse(error_code=REBALANCE_IN_PROGRESS)
        return HeartbeatResponse(error_code=0)

    def _schedule_join_timeout(self, group_id, member) -> None:
        member_id = member.member_id
        self.timer.schedule_if_absent(
            _join_key(group_id, member_id), member.rebalance_timeout_ms,
            lambda: self.manager.fence_by_timer(group_id, member_id, reason="did not rejoin"))

    # --- LeaveGroup ----------------------------------------------------------------------------
    async def leave(self, info, group, identities) -> LeaveGroupResponse:
        responses, records, leaving = [], [], []
        for member_id, instance_id, _ in identities:
            try:
                member = self._leaving(group, member_id, instance_id)
            except GroupError as exc:
                responses.append(_left(member_id, instance_id, exc.code))
                continue
            records += self.manager.member_tombstones(group.group_id, member.member_id)
            leaving.append(member.member_id)
            responses.append(_left(member.member_id, instance_id, 0))
        if leaving:
            records += self.manager.epoch_bump_without(group, leaving)
            self.shard.apply(records)
            try:
                await self.shard.write(records)
            except Exception as exc:
                return LeaveGroupResponse(error_code=append_error_code(exc))
        return LeaveGroupResponse(error_code=0, members=responses)

    def _leaving(self, group, member_id, instance_id):
        if instance_id is None:
            member = group.member(member_id)
        else:
            member = group.static_member(instance_id)
            if member is None:
                raise GroupError(UNKNOWN_MEMBER_ID, f"instance id {instance_id} is unknown")
            if member_id and member.member_id != member_id:
                raise GroupError(FENCED_INSTANCE_ID, f"instance id {instance_id} belongs to "
                                                     f"member {member.member_id}")
        if not member.uses_classic_protocol:
            raise GroupError(UNKNOWN_MEMBER_ID, f"member {member.member_id} does not use the "
                                                "classic protocol")
        return member

    def _classic_member(self, group, member_id, instance_id):
        if instance_id is None:
            member = group.member(member_id)
        else:
            member = group.static_member(instance_id)
            if member is None:
                raise GroupError(UNKNOWN_MEMBER_ID, f"instance id {instance_id} is unknown")
            if member.member_id != member_id:
                raise GroupError(FENCED_INSTANCE_ID, f"instance id {instance_id} belongs to "
                                                     f"member {member.member_id}")
        if not member.uses_classic_protocol:
            raise GroupError(UNKNOWN_MEMBER_ID, f"member {member_id} does not use the classic "
                                                "protocol")
        return member

    # --- online upgrade ------------------------------------------------------------------------
    def can_upgrade(self, classic_group) -> bool:
        config = self.manager.config
        return (config.consumer_migration_policy in ("upgrade", "bidirectional")
                and classic_group.protocol_type == CONSUMER_PROTOCOL_TYPE
                and len(classic_group.members) <= config.consumer_max_size)

    def upgrade(self, classic_group, records) -> ConsumerGroup:
        """The consumer group a classic group becomes: every member keeps its partitions (its
        target assignment is its current one) at an epoch equal to the generation; parked
        JoinGroup/SyncGroup requests are told to rejoin."""
        group_id = classic_group.group_id
        generation = classic_group.generation_id
        members = [self._converted(classic_group, m, generation) for m in
                   classic_group.members.values()]
        self.shard.classic.abandon(classic_group, REBALANCE_IN_PROGRESS)
        conversion = [rec.group_metadata_tombstone(group_id)]
        conversion += [rec.consumer_group_member_subscription(group_id, m) for m in members]
        conversion.append(rec.consumer_group_epoch(group_id, generation))
        conversion += [rec.consumer_group_target_assignment(group_id, m.member_id, m.assigned)
                       for m in members]
        conversion.append(rec.consumer_group_target_assignment_epoch(group_id, generation))
        conversion += [rec.consumer_group_current_assignment(group_id, m) for m in members]
        group = ConsumerGroup(group_id)
        for record in conversion[1:]:
            group.apply(record)
        records += conversion
        for m in members:
            self.manager.schedule_session_timeout(group_id, m.member_id,
                                                  m.classic_session_timeout_ms)
        return group

    def _converted(self, group, member, generation) -> ConsumerGroupMember:
        try:
            subscription = parse_subscription(member.metadata(group.protocol_name))
            assignment = parse_assignment(member.assignment) if member.assignment else None
        except (GroupError, KeyError) as exc:
            raise GroupError(GROUP_ID_NOT_FOUND, f"cannot upgrade group {group.group_id}: "
                                                 f"{exc}") from exc
        assigned = {}
        for tp in (assignment.assigned_partitions if assignment is not None else ()):
            meta = self.shard.topics.topic(tp.topic)
            if meta is not None and tp.partitions:
                assigned[meta.topic_id] = frozenset(tp.partitions)
        return ConsumerGroupMember(
            member.member_id, instance_id=member.group_instance_id,
            rack_id=subscription.rack_id or None, client_id=member.client_id,
            client_host=member.client_host,
            subscribed_topic_names=tuple(sorted(set(subscription.topics or ()))),
            rebalance_timeout_ms=member.rebalance_timeout_ms, member_epoch=generation,
            previous_member_epoch=generation, state=STABLE, assigned=freeze(assigned),
            classic_protocols=tuple(member.protocols),
            classic_session_timeout_ms=member.session_timeout_ms)


def supports_classic_protocols(group, protocol_type, names) -> bool:
    """Kafka's ConsumerGroup.supportsClassicProtocols: the consumer protocol type, and a protocol
    every classic member of the group supports."""
    if protocol_type != CONSUMER_PROTOCOL_TYPE or not names:
        return False
    classic = [m for m in group.members.values() if m.uses_classic_protocol]
    if not classic:
        return True
    return any(all(name in {n for n, _ in m.classic_protocols} for m in classic) for name in names)


def subscription_version(metadata) -> int:
    if metadata is None or len(metadata) < 2:
        raise GroupError(INCONSISTENT_GROUP_PROTOCOL, "subscription shorter than its version")
    return int.from_bytes(metadata[:2], "big", signed=True)


def parse_subscription(metadata):
    """A ConsumerProtocolSubscription (its version clamped to the ones we know, as Kafka reads a
    newer client's subscription by its known prefix)."""
    version = subscription_version(metadata)
    if version < 0:
        raise GroupError(INCONSISTENT_GROUP_PROTOCOL, f"subscription version {version}")
    try:
        return decode(("data", "ConsumerProtocolSubscription"),
                      min(version, SUBSCRIPTION_VERSIONS[1]), memoryview(metadata)[2:])
    except DecodeError as exc:
        raise GroupError(INCONSISTENT_GROUP_PROTOCOL, f"malformed subscription: {exc}") from exc


def parse_assignment(data):
    version = subscription_version(data)
    try:
        return decode(("data", "ConsumerProtocolAssignment"),
                      min(max(version, 0), ASSIGNMENT_VERSIONS[1]), memoryview(data)[2:])
    except DecodeError as exc:
        raise GroupError(INCONSISTENT_GROUP_PROTOCOL, f"malformed assignment: {exc}") from exc


def _waiting(group, member) -> bool:
    """Whether partitions of its target that the member does not have yet are still held by
    others (then it keeps waiting; else it should rejoin to collect them)."""
    for tid, parts in group.target_assignment.get(member.member_id, {}).items():
        have = member.assigned.get(tid, ())
        for p in parts:
            if p not in have and group.current_partition_epoch(tid, p) != -1:
                return True
    return False


def _rebalance_timeout(req) -> int:
    return req.session_timeout_ms if req.rebalance_timeout_ms == -1 else req.rebalance_timeout_ms


def _left(member_id, instance_id, code):
    return LeaveGroupResponse.MemberResponse(member_id=member_id, group_instance_id=instance_id,
                                             error_code=code)


def _join_key(group_id, member_id) -> str:
    return f"join-{group_id}-{member_id}"


def _sync_key(group_id, member_id) -> str:
    return f"sync-{group_id}-{member_id}"
