"""The consumer protocol (KIP-848): ConsumerGroupHeartbeat and ConsumerGroupDescribe over the
consumer groups of one coordinator shard (Kafka's consumer half of GroupMetadataManager).

One heartbeat: (1) validate, find or create the group and member (epoch 0 joins; -1 leaves; -2 a
static member leaves for a while and keeps its partitions until its session expires); (2) update
the member's subscription — a change, or a change of the subscribed topics' metadata, bumps the
group epoch; (3) when the group epoch is ahead of the target assignment, run the server-side
assignor (`uniform` default, `range`) and store the new target; (4) move the member one
reconciliation step towards its target (reconciliation.py); (5) answer with its epoch and, when it
changed or the request was a full one, its assignment. The changes are records, applied to the
group and then written; the answer leaves once they are durable.

Timers: session-<group>-<member> (group.consumer.session.timeout.ms: the member is fenced and
removed), rebalance-<group>-<member> (a member that does not revoke within its rebalance timeout
is fenced).

Regex subscriptions (v1) are resolved against the topic names with Python's `re` (full match, as
Java's Pattern.matches; RE2 syntax is a subset in practice), internal topics excluded, and
re-resolved at most every 10 s or when the number of topics changes.

Classic-protocol members in a consumer group, and the online upgrade of a classic group, are in
consumer_classic.py. Not implemented: rack-aware assignment.
"""
from __future__ import annotations

import logging
import re
import uuid

from pybroker.codec.messages import ConsumerGroupDescribeResponse, ConsumerGroupHeartbeatResponse
from pybroker.coordinator import records as rec
from pybroker.coordinator.assignors import MemberSpec, assign
from pybroker.coordinator.consumer_classic import ClassicMembers
from pybroker.coordinator.consumer import (LEAVE_GROUP_MEMBER_EPOCH, LEAVE_GROUP_STATIC_MEMBER_EPOCH,
                                           UNREVOKED_PARTITIONS, ConsumerGroup,
                                           ConsumerGroupMember, freeze)
from pybroker.coordinator.errors import (FENCED_INSTANCE_ID, FENCED_MEMBER_EPOCH,
                                         GROUP_ID_NOT_FOUND, GROUP_MAX_SIZE_REACHED,
                                         INVALID_REGULAR_EXPRESSION,
                                         INVALID_REQUEST, UNKNOWN_MEMBER_ID, UNRELEASED_INSTANCE_ID,
                                         UNSUPPORTED_ASSIGNOR, GroupError, append_error_code)
from pybroker.coordinator.reconciliation import reconcile
from pybroker.coordinator.topics import INTERNAL_TOPICS

log = logging.getLogger("pybroker.coordinator")
HB = ConsumerGroupHeartbeatResponse
CGD = ConsumerGroupDescribeResponse
CLIENT_MEMBER_ID_VERSION = 1   # ConsumerGroupHeartbeat v1+: the client generates its member id
MEMBER_TYPE_VERSION = 1        # ConsumerGroupDescribe v1+: MemberType (0 classic, 1 consumer)


class ConsumerGroupManager:
    def __init__(self, shard):
        self.shard = shard
        self.config = shard.config
        self.timer = shard.timer
        self.classic = ClassicMembers(self)

    @property
    def now(self) -> int:
        return self.shard.clock.now_ms()

    # --- ConsumerGroupHeartbeat ----------------------------------------------------------------
    async def heartbeat(self, info, req) -> ConsumerGroupHeartbeatResponse:
        try:
            self._validate(info, req)
            if req.member_epoch in (LEAVE_GROUP_MEMBER_EPOCH, LEAVE_GROUP_STATIC_MEMBER_EPOCH):
                response, records = self._leave(req)
            else:
                response, records = self._heartbeat(info, req)
        except GroupError as exc:
            return HB(error_code=exc.code, error_message=exc.message)
        self.shard.apply(records)
        if records:
            try:
                await self.shard.write(records)
            except Exception as exc:  # not durable: the client retries
                return HB(error_code=append_error_code(exc), error_message=str(exc))
        return response

    def _validate(self, info, req) -> None:
        if not req.group_id:
            raise GroupError(INVALID_REQUEST, "GroupId can't be empty.")
        if req.instance_id == "":
            raise GroupError(INVALID_REQUEST, "InstanceId can't be empty.")
        if req.rack_id == "":
            raise GroupError(INVALID_REQUEST, "RackId can't be empty.")
        if info.api_version >= CLIENT_MEMBER_ID_VERSION and not req.member_id:
            raise GroupError(INVALID_REQUEST, "MemberId can't be empty.")
        epoch = req.member_epoch
        if epoch > 0 or epoch == LEAVE_GROUP_MEMBER_EPOCH:
            if not req.member_id:
                raise GroupError(INVALID_REQUEST, "MemberId can't be empty.")
        elif epoch == 0:
            self._validate_join(req)
        elif epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH:
            if not req.member_id:
                raise GroupError(INVALID_REQUEST, "MemberId can't be empty.")
            if req.instance_id is None:
                raise GroupError(INVALID_REQUEST, "InstanceId can't be null.")
        else:
            raise GroupError(INVALID_REQUEST, "MemberEpoch is invalid.")
        if req.subscribed_topic_regex:
            compile_regex(req.subscribed_topic_regex)
        if req.server_assignor is not None and req.server_assignor not in self.config.consumer_assignors:
            raise GroupError(UNSUPPORTED_ASSIGNOR, f"ServerAssignor {req.server_assignor} is not "
                             f"supported. Supported assignors: "
                             f"{', '.join(self.config.consumer_assignors)}.")

    @staticmethod
    def _validate_join(req) -> None:
        if req.rebalance_timeout_ms == -1:
            raise GroupError(INVALID_REQUEST, "RebalanceTimeoutMs must be provided in first request.")
        if req.topic_partitions is None or req.topic_partitions:
            raise GroupError(INVALID_REQUEST, "TopicPartitions must be empty when (re-)joining.")
        if not req.subscribed_topic_names and not req.subscribed_topic_regex:
            raise GroupError(INVALID_REQUEST, "SubscribedTopicNames or SubscribedTopicRegex must "
                                              "be set in first request.")

    def _heartbeat(self, info, req):
        records = []
        epoch = req.member_epoch
        group = self._get_or_create(req.group_id, epoch == 0, records)
        member_id = req.member_id or str(uuid.uuid4())
        self._check_size(group, member_id)
        if req.instance_id is None:
            member = self._dynamic_member(group, member_id, epoch, req.topic_partitions)
        else:
            member = self._static_member(group, member_id, epoch, req.instance_id,
                                         req.topic_partitions, records)
        updated = self.update_and_reconcile(group, member, self._updated_member(info, req, member),
                                            req.topic_partitions, records)
        self.schedule_session_timeout(group.group_id, updated.member_id)
        response = HB(error_code=0, member_id=updated.member_id, member_epoch=updated.member_epoch,
                      heartbeat_interval_ms=self.config.consumer_heartbeat_interval_ms)
        full = (req.rebalance_timeout_ms != -1 and req.topic_partitions is not None and
                (req.subscribed_topic_names is not None or req.subscribed_topic_regex is not None))
        if epoch == 0 or full or freeze(member.assigned) != freeze(updated.assigned):
            response.assignment = _assignment(updated.assigned)
        return response, records

    def update_and_reconcile(self, group, member, updated, owned, records):
        """Steps shared by both protocols' members: record the member's new subscription, bump the
        group epoch when subscriptions or their topics changed, recompute the target assignment
        when the group epoch is ahead of it, and move the member one reconciliation step."""
        changed = self._record_subscription(group, member, updated, records)
        regex_changed = self.refresh_regexes(group, extra=updated.subscribed_topic_regex)
        group_epoch, metadata = self._maybe_bump_epoch(group, member, updated,
                                                       changed or regex_changed, records)
        if group_epoch > group.assignment_epoch:
            target = self._update_target_assignment(group, group_epoch, member, updated, metadata,
                                                    records)
            target_epoch = group_epoch
        else:
            target_epoch = group.assignment_epoch
            target = self._current_target(group, updated)
        return self._reconcile(group, updated, target_epoch, target, metadata, owned,
                               changed or regex_changed, records)

    def _updated_member(self, info, req, member):
        changes = {"client_id": info.client_id, "client_host": info.client_host,
                   "classic_protocols": None, "classic_session_timeout_ms": 0}
        if req.instance_id is not None:
            changes["instance_id"] = req.instance_id
        if req.rack_id is not None:
            changes["rack_id"] = req.rack_id
        if req.rebalance_timeout_ms != -1:
            changes["rebalance_timeout_ms"] = req.rebalance_timeout_ms
        if req.server_assignor is not None:
            changes["server_assignor"] = req.server_assignor
        if req.subscribed_topic_names is not None:
            changes["subscribed_topic_names"] = tuple(sorted(set(req.subscribed_topic_names)))
        if req.subscribed_topic_regex is not None:
            changes["subscribed_topic_regex"] = req.subscribed_topic_regex or None
        return member.copy(**changes)

    def _record_subscription(self, group, member, updated, records) -> bool:
        """A member metadata record when anything of it changed; True when the subscription
        (topic names or regex) did."""
        if updated.subscription_key() == member.subscription_key() and \
                member.member_id in group.members:
            return False
        records.append(rec.consumer_group_member_subscription(group.group_id, updated))
        return (set(updated.subscribed_topic_names) != set(member.subscribed_topic_names)
                or updated.subscribed_topic_regex != member.subscribed_topic_regex)

    def _maybe_bump_epoch(self, group, member, updated, subscription_changed, records):
        """Recompute the subscribed topics' metadata (every heartbeat: topics may have been
        created, grown or deleted) and bump the group epoch when it or a subscription changed."""
        replaced = self._replaced_ids(group, member, updated)
        if len(replaced) == 1 and group.same_subscription(updated):
            names = group.subscribed_topic_names()          # cached: the common case
        else:
            names = group.subscribed_topic_names(replaced=replaced, with_member=updated)
        metadata = self._metadata(names)
        bump = subscription_changed or group.group_epoch == 0
        if metadata != group.subscription_metadata:
            records.append(rec.consumer_group_subscription_metadata(group.group_id, metadata))
            bump = True
        group_epoch = group.group_epoch
        if bump:
            group_epoch += 1
            records.append(rec.consumer_group_epoch(group.group_id, group_epoch))
            log.info("consumer group %s: epoch %d", group.group_id, group_epoch)
        return group_epoch, metadata

    @staticmethod
    def _replaced_ids(group, member, updated):
        """Member ids whose subscription `updated` supersedes: itself, and a static member it
        replaces."""
        ids = [updated.member_id]
        if updated.instance_id is not None:
            old = group.static_members.get(updated.instance_id)
            if old is not None and old != updated.member_id:
                ids.append(old)
        return ids

    def _metadata(self, names) -> dict:
        out = {}
        for name in names:
            meta = self.shard.topics.topic(name)
            if meta is not None and meta.partitions > 0:
                out[name] = (meta.topic_id, meta.partitions)
        return out

    def _update_target_assignment(self, group, group_epoch, member, updated, metadata, records):
        assignor = self._assignor(group, updated)
        topics = {tid: n for tid, n in metadata.values()}
        by_name = {name: tid for name, (tid, _) in metadata.items()}
        replaced = set(self._replaced_ids(group, member, updated))
        specs = {}
        for m in group.members.values():
            if m.member_id not in replaced:
                specs[m.member_id] = self._spec(group, m, by_name, group.target_assignment.get(
                    m.member_id, {}))
        specs[updated.member_id] = self._spec(group, updated, by_name,
                                              self._current_target(group, updated))
        result = assign(assignor, specs, topics)
        for member_id in specs:
            new = freeze(result.get(member_id, {}))
            if new != group.target_assignment.get(member_id):
                records.append(rec.consumer_group_target_assignment(group.group_id, member_id, new))
        records.append(rec.consumer_group_target_assignment_epoch(group.group_id, group_epoch))
        return freeze(result.get(updated.member_id, {}))

    def _assignor(self, group, updated) -> str:
        counts = {}
        for m in list(group.members.values()) + [updated]:
            if m.member_id == updated.member_id and m is not updated:
                continue
            if m.server_assignor:
                counts[m.server_assignor] = counts.get(m.server_assignor, 0) + 1
        if not counts:
            return self.config.consumer_assignors[0]
        return max(sorted(counts), key=lambda name: counts[name])

    @staticmethod
    def _spec(group, member, by_name, current) -> MemberSpec:
        topics = frozenset(by_name[n] for n in group.member_topic_names(member) if n in by_name)
        return MemberSpec(member.member_id, topics, member.instance_id, current)

    @staticmethod
    def _current_target(group, member) -> dict:
        target = group.target_assignment.get(member.member_id)
        if target is None and member.instance_id is not None:
            old = group.static_members.get(member.instance_id)
            target = group.target_assignment.get(old) if old is not None else None
        return target or {}

    def _reconcile(self, group, member, target_epoch, target, metadata, owned, changed, records):
        if member.is_reconciled_to(target_epoch) and not changed:
            return member
        subscribed = {metadata[n][0] for n in group.member_topic_names(member) if n in metadata}
        updated = reconcile(member, target_epoch, target, group.current_partition_epoch, owned,
                            subscribed, enforce_subscription=changed)
        if updated.assignment_key() != member.assignment_key() or member.member_id not in \
                group.members:
            records.append(rec.consumer_group_current_assignment(group.group_id, updated))
            if updated.uses_classic_protocol:
                pass   # classic members have join and sync timers instead
            elif updated.state == UNREVOKED_PARTITIONS:
                self._schedule_rebalance_timeout(group.group_id, updated)
            else:
                self.timer.cancel(_rebalance_key(group.group_id, updated.member_id))
        return updated

    # --- groups and members --------------------------------------------------------------------
    def _get_or_create(self, group_id, create, records) -> ConsumerGroup:
        group = self.shard.groups.get(group_id)
        if group is None:
            if not create:
                raise GroupError(GROUP_ID_NOT_FOUND, f"consumer group {group_id} not found")
            return ConsumerGroup(group_id)
        if group.type == "consumer":
            return group
        if create and group.is_empty():
            records.append(rec.group_metadata_tombstone(group_id))  # an empty classic group
            return ConsumerGroup(group_id)                          # converts; offsets stay
        if create and self.classic.can_upgrade(group):
            return self.classic.upgrade(group, records)
        raise GroupError(GROUP_ID_NOT_FOUND, f"group {group_id} is not a consumer group")

    def _check_size(self, group, member_id) -> None:
        if len(group.members) >= self.config.consumer_max_size and member_id not in group.members:
            raise GroupError(GROUP_MAX_SIZE_REACHED, "the consumer group has reached its maximum "
                             f"size of {self.config.consumer_max_size} members")

    def _dynamic_member(self, group, member_id, epoch, owned):
        member = group.members.get(member_id)
        if member is None:
            if epoch != 0:
                raise GroupError(UNKNOWN_MEMBER_ID, f"member {member_id} is not a member of "
                                                    f"group {group.group_id}")
            member = ConsumerGroupMember(member_id)
        _check_epoch(member, epoch, owned)
        return member

    def _static_member(self, group, member_id, epoch, instance_id, owned, records):
        existing = group.static_member(instance_id)
        if epoch == 0:
            if existing is None:
                return group.members.get(member_id) or ConsumerGroupMember(member_id)
            if existing.member_epoch != LEAVE_GROUP_STATIC_MEMBER_EPOCH:
                raise GroupError(UNRELEASED_INSTANCE_ID, f"instance id {instance_id} is owned "
                                                         f"by member {existing.member_id}")
            new = existing.copy(member_id=member_id, member_epoch=0, previous_member_epoch=0)
            self._replace_member(group, existing, new, records)
            return new
        if existing is None:
            raise GroupError(UNKNOWN_MEMBER_ID, f"instance id {instance_id} is unknown")
        if existing.member_id != member_id:
            raise GroupError(FENCED_INSTANCE_ID, f"instance id {instance_id} belongs to member "
                                                 f"{existing.member_id}")
        _check_epoch(existing, epoch, owned)
        return existing

    def _replace_member(self, group, old, new, records) -> None:
        records += member_tombstones(group.group_id, old.member_id)
        self._cancel_timers(group.group_id, old.member_id)
        records.append(rec.consumer_group_member_subscription(group.group_id, new))
        records.append(rec.consumer_group_target_assignment(
            group.group_id, new.member_id, group.target_assignment.get(old.member_id, {})))
        records.append(rec.consumer_group_current_assignment(group.group_id, new))

    # --- leaving and fencing ---------------------------------------------------------------------
    def _leave(self, req):
        group = self.shard.groups.get(req.group_id)
        if group is None or group.type != "consumer":
            raise GroupError(GROUP_ID_NOT_FOUND, f"consumer group {req.group_id} not found")
        if req.instance_id is None:
            member = group.member(req.member_id)
            records = self.fence_records(group, member)
            return HB(member_id=member.member_id, member_epoch=req.member_epoch), records
        member = group.static_member(req.instance_id)
        if member is None:
            raise GroupError(UNKNOWN_MEMBER_ID, f"instance id {req.instance_id} is unknown")
        if member.member_id != req.member_id:
            raise GroupError(FENCED_INSTANCE_ID, f"instance id {req.instance_id} belongs to member "
                                                 f"{member.member_id}")
        if req.member_epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH:
            leaving = member.copy(member_epoch=LEAVE_GROUP_STATIC_MEMBER_EPOCH, pending_revocation={})
            records = [rec.consumer_group_current_assignment(group.group_id, leaving)]
            return HB(member_id=member.member_id,
                      member_epoch=LEAVE_GROUP_STATIC_MEMBER_EPOCH), records
        return (HB(member_id=member.member_id, member_epoch=req.member_epoch),
                self.fence_records(group, member))

    def fence_records(self, group, member) -> list:
        """Remove a member: its records' tombstones, the subscription metadata without it, and a
        new group epoch (the others' target assignment is recomputed on their next heartbeat)."""
        return member_tombstones(group.group_id, member.member_id) + \
            self.epoch_bump_without(group, [member.member_id])

    def member_tombstones(self, group_id, member_id) -> list:
        self._cancel_timers(group_id, member_id)
        return member_tombstones(group_id, member_id)

    def epoch_bump_without(self, group, member_ids) -> list:
        for member_id in member_ids:
            self._cancel_timers(group.group_id, member_id)
        records = []
        metadata = self._metadata(group.subscribed_topic_names(replaced=tuple(member_ids)))
        if metadata != group.subscription_metadata:
            records.append(rec.consumer_group_subscription_metadata(group.group_id, metadata))
        records.append(rec.consumer_group_epoch(group.group_id, group.group_epoch + 1))
        return records

    def fence_by_timer(self, group_id, member_id, epoch=None, reason="") -> None:
        group = self.shard.groups.get(group_id)
        if group is None or group.type != "consumer":
            return
        member = group.members.get(member_id)
        if member is None or (epoch is not None and member.member_epoch != epoch):
            return
        log.info("consumer group %s: member %s fenced (%s)", group_id, member_id, reason)
        records = self.fence_records(group, member)
        self.shard.apply(records)
        self.shard.write(records).add_done_callback(_log_failure(f"fencing {member_id}"))

    def schedule_session_timeout(self, group_id, member_id, timeout_ms=None) -> None:
        timeout = self.config.consumer_session_timeout_ms if timeout_ms is None else timeout_ms
        self.timer.schedule(_session_key(group_id, member_id), timeout,
                            lambda: self.fence_by_timer(group_id, member_id,
                                                        reason="session expired"))

    def _schedule_rebalance_timeout(self, group_id, member) -> None:
        epoch, member_id = member.member_epoch, member.member_id
        self.timer.schedule(_rebalance_key(group_id, member_id), member.rebalance_timeout_ms,
                            lambda: self.fence_by_timer(group_id, member_id, epoch,
                                                        "did not revoke within rebalance timeout"))

    def _cancel_timers(self, group_id, member_id) -> None:
        for key in (_session_key, _rebalance_key, _join_key, _sync_key):
            self.timer.cancel(key(group_id, member_id))

    # --- regular expressions ---------------------------------------------------------------------
    def refresh_regexes(self, group, extra=None) -> bool:
        """Resolve the group's regex subscriptions (and `extra`) if needed; True if a resolution
        changed."""
        wanted = {m.subscribed_topic_regex for m in group.members.values()
                  if m.subscribed_topic_regex}
        if extra:
            wanted.add(extra)
        if not wanted and not group.resolved_regexes:
            return False
        names = list(self.shard.topics.names())
        now = self.now
        stale = now >= group.regex_refresh_deadline or len(names) != group.regex_topic_count
        changed = False
        resolved = {}
        for regex in wanted:
            if regex in group.resolved_regexes and not stale:
                resolved[regex] = group.resolved_regexes[regex]
                continue
            resolved[regex] = frozenset(resolve_regex(regex, names))
            changed = changed or resolved[regex] != group.resolved_regexes.get(regex)
        group.resolved_regexes = resolved
        if stale:
            group.regex_refresh_deadline = now + self.config.regex_refresh_interval_ms
            group.regex_topic_count = len(names)
        return changed

    # --- ConsumerGroupDescribe ---------------------------------------------------------------
    def describe(self, group_id, api_version):
        group = self.shard.groups.get(group_id)
        if group is None or group.type != "consumer":
            return CGD.DescribedGroup(group_id=group_id, error_code=GROUP_ID_NOT_FOUND,
                                      error_message=f"Group {group_id} not found.")
        self.refresh_regexes(group)
        out = CGD.DescribedGroup(
            error_code=0, group_id=group_id, group_state=group.state(),
            group_epoch=group.group_epoch, assignment_epoch=group.assignment_epoch,
            assignor_name=group.preferred_server_assignor(self.config.consumer_assignors[0]),
            members=[])
        for m in group.members.values():
            member = CGD.Member(
                member_id=m.member_id, instance_id=m.instance_id, rack_id=m.rack_id,
                member_epoch=m.member_epoch, client_id=m.client_id, client_host=m.client_host,
                subscribed_topic_names=list(m.subscribed_topic_names),
                subscribed_topic_regex=m.subscribed_topic_regex,
                assignment=self._described(m.assigned),
                target_assignment=self._described(group.target_assignment.get(m.member_id, {})))
            if api_version >= MEMBER_TYPE_VERSION:
                member.member_type = 0 if m.uses_classic_protocol else 1
            out.members.append(member)
        return out

    def _described(self, assignment):
        tps = []
        for tid, parts in sorted(assignment.items()):
            meta = self.shard.topics.topic_by_id(tid)
            if meta is not None:
                tps.append(CGD.TopicPartitions(topic_id=tid, topic_name=meta.name,
                                               partitions=sorted(parts)))
        return CGD.Assignment(topic_partitions=tps)

    # --- load, delete, conversion ----------------------------------------------------------------
    def on_loaded(self, group) -> None:
        for member in group.members.values():
            self.schedule_session_timeout(group.group_id, member.member_id,
                                          member.classic_session_timeout_ms or None)
            if member.state == UNREVOKED_PARTITIONS and not member.uses_classic_protocol:
                self._schedule_rebalance_timeout(group.group_id, member)

    def delete_records(self, group) -> list:
        records = []
        for member_id in group.members:
            records += self.member_tombstones(group.group_id, member_id)
        records += [rec.consumer_group_target_assignment_epoch_tombstone(group.group_id),
                    rec.consumer_group_subscription_metadata_tombstone(group.group_id),
                    rec.consumer_group_epoch_tombstone(group.group_id)]
        return records

    def delete_empty_for_conversion(self, group) -> None:
        """An empty consumer group a classic member joins becomes a classic group."""
        records = self.delete_records(group)
        self.shard.apply(records)
        self.shard.write(records).add_done_callback(_log_failure(f"deleting {group.group_id}"))

    # --- classic-protocol members (consumer_classic.py) ------------------------------------
    def classic_join(self, info, req, fut) -> None:
        self.classic.join(info, req, fut)

    async def classic_sync(self, info, req):
        return await self.classic.sync(info, req)

    def classic_heartbeat(self, info, req):
        return self.classic.heartbeat(info, req)

    def classic_leave(self, info, group, identities):
        return self.classic.leave(info, group, identities)


def _check_epoch(member, received, owned) -> None:
    """FENCED_MEMBER_EPOCH unless the epoch is the member's, or its previous one with owned
    partitions within its assignment (the response carrying the new epoch was lost)."""
    if received > member.member_epoch:
        raise GroupError(FENCED_MEMBER_EPOCH, f"epoch {received} is ahead of the member's "
                                              f"{member.member_epoch}")
    if received < member.member_epoch:
        if received != member.previous_member_epoch or not _is_subset(owned, member.assigned):
            raise GroupError(FENCED_MEMBER_EPOCH, f"epoch {received} is behind the member's "
                                                  f"{member.member_epoch}")


def _is_subset(owned, assigned) -> bool:
    if owned is None:
        return False
    for tp in owned:
        parts = assigned.get(tp.topic_id)
        if parts is None or any(p not in parts for p in tp.partitions):
            return False
    return True


def member_tombstones(group_id, member_id) -> list:
    return [rec.consumer_group_current_assignment_tombstone(group_id, member_id),
            rec.consumer_group_target_assignment_tombstone(group_id, member_id),
            rec.consumer_group_member_subscription_tombstone(group_id, member_id)]


def _assignment(assigned):
    return HB.Assignment(topic_partitions=[
        HB.TopicPartitions(topic_id=tid, partitions=sorted(parts))
        for tid, parts in sorted(assigned.items())])


def compile_regex(regex):
    try:
        return re.compile(regex)
    except re.error as exc:
        raise GroupError(INVALID_REGULAR_EXPRESSION, f"SubscribedTopicRegex {regex!r} is not a "
                                                     f"valid regular expression: {exc}") from exc


def resolve_regex(regex, names) -> set:
    pattern = compile_regex(regex)
    return {n for n in names if n not in INTERNAL_TOPICS and pattern.fullmatch(n)}


def _session_key(group_id, member_id) -> str:
    return f"session-{group_id}-{member_id}"


def _rebalance_key(group_id, member_id) -> str:
    return f"rebalance-{group_id}-{member_id}"


def _join_key(group_id, member_id) -> str:
    return f"join-{group_id}-{member_id}"


def _sync_key(group_id, member_id) -> str:
    return f"sync-{group_id}-{member_id}"


def _log_failure(what):
    def callback(write):
        if not write.cancelled() and write.exception() is not None:
            log.warning("failed to write %s: %s", what, write.exception())
    return callback
