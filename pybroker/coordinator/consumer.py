"""The consumer group of KIP-848 (Kafka's ConsumerGroup / ConsumerGroupMember): members with
epochs and server-side assignments, the group epoch, the target assignment and its epoch.

Every change to a consumer group is a record of __consumer_offsets (see records.py) and is applied
by `apply(record)` — both when the coordinator makes the change and when it loads the log — so the
state rebuilt on load is the state that was served.

Group states: Empty (no members), Assigning (group epoch > target assignment epoch), Reconciling
(some member has not reached the target assignment), Stable.
Member states (persisted as int8): STABLE 0, UNREVOKED_PARTITIONS 1 (must give partitions back
before it moves on), UNRELEASED_PARTITIONS 2 (waits for partitions others still own), UNKNOWN 127.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Optional

from pybroker.coordinator import records as rec
from pybroker.coordinator.classic import CONSUMER_PROTOCOL_TYPE
from pybroker.coordinator.errors import (ILLEGAL_GENERATION, STALE_MEMBER_EPOCH, UNKNOWN_MEMBER_ID,
                                         UNSUPPORTED_VERSION, GroupError, NON_EMPTY_GROUP)

STABLE = 0
UNREVOKED_PARTITIONS = 1
UNRELEASED_PARTITIONS = 2
UNKNOWN = 127

LEAVE_GROUP_MEMBER_EPOCH = -1
LEAVE_GROUP_STATIC_MEMBER_EPOCH = -2

GROUP_EMPTY = "Empty"
GROUP_ASSIGNING = "Assigning"
GROUP_RECONCILING = "Reconciling"
GROUP_STABLE = "Stable"
MODERN_OFFSET_COMMIT_VERSION = 9   # consumer-protocol members commit with OffsetCommit v9+


@dataclass(frozen=True)
class ConsumerGroupMember:
    member_id: str
    instance_id: Optional[str] = None
    rack_id: Optional[str] = None
    client_id: str = ""
    client_host: str = ""
    subscribed_topic_names: tuple = ()
    subscribed_topic_regex: Optional[str] = None
    rebalance_timeout_ms: int = -1
    server_assignor: Optional[str] = None
    member_epoch: int = 0
    previous_member_epoch: int = 0
    state: int = STABLE
    assigned: dict = field(default_factory=dict)            # topic id -> frozenset(partitions)
    pending_revocation: dict = field(default_factory=dict)  # topic id -> frozenset(partitions)
    classic_protocols: Optional[tuple] = None   # ((name, metadata), ...) for a classic member
    classic_session_timeout_ms: int = 0

    def copy(self, **changes) -> "ConsumerGroupMember":
        return replace(self, **changes)

    @property
    def uses_classic_protocol(self) -> bool:
        return self.classic_protocols is not None

    def is_reconciled_to(self, assignment_epoch) -> bool:
        return self.state == STABLE and self.member_epoch == assignment_epoch

    def subscription_key(self) -> tuple:
        """What a ConsumerGroupMemberMetadata record holds (a change means a new record)."""
        return (self.instance_id, self.rack_id, self.client_id, self.client_host,
                tuple(sorted(self.subscribed_topic_names)), self.subscribed_topic_regex,
                self.rebalance_timeout_ms, self.server_assignor, self.classic_protocols,
                self.classic_session_timeout_ms)

    def assignment_key(self) -> tuple:
        """What a ConsumerGroupCurrentMemberAssignment record holds."""
        return (self.member_epoch, self.previous_member_epoch, self.state,
                _frozen(self.assigned), _frozen(self.pending_revocation))


def _frozen(assignment) -> frozenset:
    return frozenset((tid, frozenset(ps)) for tid, ps in assignment.items() if ps)


def freeze(assignment) -> dict:
    return {tid: frozenset(ps) for tid, ps in assignment.items() if ps}


class ConsumerGroup:
    type = "consumer"

    def __init__(self, group_id):
        self.group_id = group_id
        self.group_epoch = 0
        self.assignment_epoch = 0
        self.members = {}               # member id -> ConsumerGroupMember
        self.static_members = {}        # instance id -> member id
        self.target_assignment = {}     # member id -> {topic id: frozenset}
        self.partition_epochs = {}      # topic id -> {partition: epoch of the member owning it}
        self.subscription_metadata = {}  # topic name -> (topic id, partitions)
        self._resolved_regexes = {}     # regex -> frozenset(topic names)
        self.regex_refresh_deadline = 0
        self.regex_topic_count = -1
        self._names = None              # cached subscribed topic names of all members

    @property
    def resolved_regexes(self) -> dict:
        return self._resolved_regexes

    @resolved_regexes.setter
    def resolved_regexes(self, value) -> None:
        if value != self._resolved_regexes:
            self._names = None
        self._resolved_regexes = value

    # -- state ----------------------------------------------------------------------------------
    def state(self) -> str:
        if not self.members:
            return GROUP_EMPTY
        if self.group_epoch > self.assignment_epoch:
            return GROUP_ASSIGNING
        for m in self.members.values():
            if not m.is_reconciled_to(self.assignment_epoch):
                return GROUP_RECONCILING
        return GROUP_STABLE

    def state_name(self) -> str:
        return self.state()

    def is_empty(self) -> bool:
        return not self.members

    def has_member(self, member_id) -> bool:
        return member_id in self.members

    def member(self, member_id) -> ConsumerGroupMember:
        m = self.members.get(member_id)
        if m is None:
            raise GroupError(UNKNOWN_MEMBER_ID, f"member {member_id} is not a member of group "
                                                f"{self.group_id}")
        return m

    def static_member(self, instance_id):
        member_id = self.static_members.get(instance_id)
        return self.members.get(member_id) if member_id is not None else None

    def current_partition_epoch(self, topic_id, partition) -> int:
        return self.partition_epochs.get(topic_id, {}).get(partition, -1)

    # -- subscriptions ----------------------------------------------------------------------------
    def subscribed_topic_names(self, replaced=(), with_member=None) -> set:
        """Every topic some member subscribes to, by name or through a resolved regex; optionally
        as if the members `replaced` (ids) were gone and `with_member` were in."""
        if isinstance(replaced, str):
            replaced = (replaced,)
        if not replaced and with_member is None:
            if self._names is None:
                self._names = frozenset(self._compute_names((), None))
            return set(self._names)
        return self._compute_names(replaced, with_member)

    def _compute_names(self, replaced, with_member) -> set:
        names = set()
        for m in self.members.values():
            if m.member_id not in replaced:
                self._member_topics(m, names)
        if with_member is not None:
            self._member_topics(with_member, names)
        return names

    def _member_topics(self, member, out) -> None:
        out.update(member.subscribed_topic_names)
        if member.subscribed_topic_regex:
            out.update(self.resolved_regexes.get(member.subscribed_topic_regex, ()))

    def member_topic_names(self, member) -> set:
        out = set()
        self._member_topics(member, out)
        return out

    def is_subscribed_to(self, topic) -> bool:
        return topic in self.subscribed_topic_names()

    def same_subscription(self, member) -> bool:
        """Whether `member` subscribes to what the group's copy of it does (so the group's
        subscribed topics stay as they are)."""
        known = self.members.get(member.member_id)
        return known is not None and \
            known.subscribed_topic_names == member.subscribed_topic_names and \
            known.subscribed_topic_regex == member.subscribed_topic_regex

    def preferred_server_assignor(self, default):
        counts = {}
        for m in self.members.values():
            if m.server_assignor:
                counts[m.server_assignor] = counts.get(m.server_assignor, 0) + 1
        if not counts:
            return default
        return max(sorted(counts), key=lambda name: counts[name])

    # -- applying records ---------------------------------------------------------------------
    def update_member(self, member) -> None:
        self._names = None
        old = self.members.get(member.member_id)
        if old is not None:
            self._forget_partition_epochs(old)
            if old.instance_id is not None and old.instance_id != member.instance_id:
                self.static_members.pop(old.instance_id, None)
        self.members[member.member_id] = member
        if member.instance_id is not None:
            self.static_members[member.instance_id] = member.member_id
        self._add_partition_epochs(member)

    def remove_member(self, member_id) -> None:
        self._names = None
        old = self.members.pop(member_id, None)
        if old is None:
            return
        self._forget_partition_epochs(old)
        if old.instance_id is not None and self.static_members.get(old.instance_id) == member_id:
            del self.static_members[old.instance_id]

    def _add_partition_epochs(self, member) -> None:
        for assignment in (member.assigned, member.pending_revocation):
            for tid, parts in assignment.items():
                epochs = self.partition_epochs.setdefault(tid, {})
                for p in parts:
                    epochs[p] = member.member_epoch

    def _forget_partition_epochs(self, member) -> None:
        for assignment in (member.assigned, member.pending_revocation):
            for tid, parts in assignment.items():
                epochs = self.partition_epochs.get(tid)
                if epochs is None:
                    continue
                for p in parts:
                    if epochs.get(p) == member.member_epoch:
                        del epochs[p]
                if not epochs:
                    del self.partition_epochs[tid]

    def apply(self, record) -> None:
        """Apply one consumer-group record (types 3-8) to this group."""
        handler = _APPLY[record.type]
        handler(self, record.key, record.value)

    def _apply_epoch(self, key, value):
        if value is not None:
            self.group_epoch = value.epoch

    def _apply_subscription_metadata(self, key, value):
        self.subscription_metadata = {} if value is None else {
            t.topic_name: (t.topic_id, t.num_partitions) for t in value.topics}

    def _apply_member_metadata(self, key, value):
        if value is None:
            self.remove_member(key.member_id)
            return
        old = self.members.get(key.member_id) or ConsumerGroupMember(key.member_id)
        classic = value.classic_member_metadata
        self.update_member(old.copy(
            instance_id=value.instance_id, rack_id=value.rack_id, client_id=value.client_id,
            client_host=value.client_host,
            subscribed_topic_names=tuple(sorted(value.subscribed_topic_names or ())),
            subscribed_topic_regex=value.subscribed_topic_regex or None,
            rebalance_timeout_ms=value.rebalance_timeout_ms,
            server_assignor=value.server_assignor or None,
            classic_protocols=None if classic is None else tuple(
                (p.name, p.metadata) for p in classic.supported_protocols),
            classic_session_timeout_ms=0 if classic is None else classic.session_timeout_ms))

    def _apply_target_epoch(self, key, value):
        self.assignment_epoch = -1 if value is None else value.assignment_epoch

    def _apply_target_member(self, key, value):
        if value is None:
            self.target_assignment.pop(key.member_id, None)
        else:
            self.target_assignment[key.member_id] = freeze(rec.partitions_from(value.topic_partitions))

    def _apply_current_assignment(self, key, value):
        old = self.members.get(key.member_id)
        if value is None:
            if old is not None:
                self.update_member(old.copy(member_epoch=LEAVE_GROUP_MEMBER_EPOCH,
                                            previous_member_epoch=LEAVE_GROUP_MEMBER_EPOCH,
                                            assigned={}, pending_revocation={}))
            return
        old = old or ConsumerGroupMember(key.member_id)
        self.update_member(old.copy(
            member_epoch=value.member_epoch, previous_member_epoch=value.previous_member_epoch,
            state=value.state, assigned=freeze(rec.partitions_from(value.assigned_partitions)),
            pending_revocation=freeze(rec.partitions_from(value.partitions_pending_revocation))))

    # -- offsets and admin (Kafka's Group interface) --------------------------------------------
    def validate_offset_commit(self, member_id, instance_id, member_epoch, api_version) -> None:
        if member_epoch < 0 and not self.members:
            return
        member = self.member(member_id)
        if not member.uses_classic_protocol and api_version < MODERN_OFFSET_COMMIT_VERSION:
            raise GroupError(UNSUPPORTED_VERSION, "OffsetCommit v9+ is required by members of the "
                                                  "consumer protocol")
        self._validate_member_epoch(member, member_epoch)

    def validate_offset_fetch(self, member_id, member_epoch) -> None:
        if member_id is None and member_epoch < 0:
            return
        self._validate_member_epoch(self.member(member_id), member_epoch)

    @staticmethod
    def _validate_member_epoch(member, received) -> None:
        if received != member.member_epoch:
            code = ILLEGAL_GENERATION if member.uses_classic_protocol else STALE_MEMBER_EPOCH
            raise GroupError(code, f"epoch {received} is not the member's {member.member_epoch}")

    def validate_offset_delete(self) -> None:
        return None

    def validate_delete_group(self) -> None:
        if self.members:
            raise GroupError(NON_EMPTY_GROUP)

    def offset_expiration_base(self):
        return lambda oam: oam.commit_timestamp_ms

    @property
    def protocol_type(self) -> str:
        return CONSUMER_PROTOCOL_TYPE


_APPLY = {
    rec.CONSUMER_GROUP_METADATA: ConsumerGroup._apply_epoch,
    rec.CONSUMER_GROUP_PARTITION_METADATA: ConsumerGroup._apply_subscription_metadata,
    rec.CONSUMER_GROUP_MEMBER_METADATA: ConsumerGroup._apply_member_metadata,
    rec.CONSUMER_GROUP_TARGET_ASSIGNMENT_METADATA: ConsumerGroup._apply_target_epoch,
    rec.CONSUMER_GROUP_TARGET_ASSIGNMENT_MEMBER: ConsumerGroup._apply_target_member,
    rec.CONSUMER_GROUP_CURRENT_MEMBER_ASSIGNMENT: ConsumerGroup._apply_current_assignment,
}
