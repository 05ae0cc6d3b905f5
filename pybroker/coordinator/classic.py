"""The classic group (Kafka's ClassicGroup / GroupMetadata): members, state, generation, leader,
protocol votes. Pure bookkeeping with invariants; the flows that drive it live in classic_ops.py.

States (transition: allowed previous states):
    Empty               <- PreparingRebalance                 no members (offsets may remain)
    PreparingRebalance  <- Stable, CompletingRebalance, Empty  members (re)joining
    CompletingRebalance <- PreparingRebalance                 waiting for the leader's SyncGroup
    Stable              <- CompletingRebalance                 assignment handed out
    Dead                <- any                                 removed (deleted, unloaded)
"""
from __future__ import annotations

import uuid

from pybroker.coordinator.errors import (COORDINATOR_NOT_AVAILABLE, FENCED_INSTANCE_ID,
                                         GROUP_ID_NOT_FOUND, ILLEGAL_GENERATION, NON_EMPTY_GROUP,
                                         REBALANCE_IN_PROGRESS, UNKNOWN_MEMBER_ID, GroupError)

EMPTY = "Empty"
PREPARING_REBALANCE = "PreparingRebalance"
COMPLETING_REBALANCE = "CompletingRebalance"
STABLE = "Stable"
DEAD = "Dead"

VALID_PREVIOUS = {
    EMPTY: {PREPARING_REBALANCE},
    PREPARING_REBALANCE: {STABLE, COMPLETING_REBALANCE, EMPTY},
    COMPLETING_REBALANCE: {PREPARING_REBALANCE},
    STABLE: {COMPLETING_REBALANCE},
    DEAD: {STABLE, PREPARING_REBALANCE, COMPLETING_REBALANCE, EMPTY, DEAD},
}
CONSUMER_PROTOCOL_TYPE = "consumer"


class ClassicGroupMember:
    """A member: identity, timeouts, the protocols it supports ([(name, metadata bytes)] in
    preference order), its assignment, and the futures of a parked JoinGroup / SyncGroup."""

    __slots__ = ("member_id", "group_instance_id", "client_id", "client_host",
                 "rebalance_timeout_ms", "session_timeout_ms", "protocol_type", "protocols",
                 "assignment", "join_future", "sync_future", "is_new")

    def __init__(self, member_id, group_instance_id, client_id, client_host, rebalance_timeout_ms,
                 session_timeout_ms, protocol_type, protocols, assignment=b""):
        self.member_id = member_id
        self.group_instance_id = group_instance_id
        self.client_id = client_id
        self.client_host = client_host
        self.rebalance_timeout_ms = rebalance_timeout_ms
        self.session_timeout_ms = session_timeout_ms
        self.protocol_type = protocol_type
        self.protocols = list(protocols)
        self.assignment = assignment
        self.join_future = None
        self.sync_future = None
        self.is_new = False

    @property
    def is_static(self) -> bool:
        return self.group_instance_id is not None

    @property
    def is_awaiting_join(self) -> bool:
        return self.join_future is not None

    @property
    def is_awaiting_sync(self) -> bool:
        return self.sync_future is not None

    def protocol_names(self) -> set:
        return {name for name, _ in self.protocols}

    def metadata(self, protocol_name):
        for name, md in self.protocols:
            if name == protocol_name:
                return md
        raise KeyError(f"member {self.member_id} does not support protocol {protocol_name}")

    def matches(self, protocols) -> bool:
        return list(protocols) == self.protocols

    def vote(self, candidates) -> str:
        for name, _ in self.protocols:
            if name in candidates:
                return name
        raise KeyError(f"member {self.member_id} supports none of {sorted(candidates)}")

    def has_satisfied_heartbeat(self) -> bool:
        """On session expiry: a member parked in a rebalance counts as alive, unless it is new
        (a new member's join timeout expires even while it waits)."""
        if self.is_new:
            return False
        return self.is_awaiting_join or self.is_awaiting_sync


class ClassicGroup:
    type = "classic"

    def __init__(self, group_id, now_ms, state=EMPTY, generation_id=0, protocol_type=None,
                 protocol_name=None, leader_id=None, state_timestamp_ms=None):
        self.group_id = group_id
        self.state = state
        self.previous_state = None
        self.state_timestamp_ms = now_ms if state_timestamp_ms is None else state_timestamp_ms
        self.generation_id = generation_id
        self.protocol_type = protocol_type
        self.protocol_name = protocol_name
        self.leader_id = leader_id
        self.members = {}                # member id -> ClassicGroupMember (insertion ordered)
        self.static_members = {}         # group instance id -> member id
        self.pending_members = set()     # member ids handed out with MEMBER_ID_REQUIRED
        self.pending_sync = set()        # members that have not sent SyncGroup this generation
        self.num_awaiting_join = 0
        self.supported_protocols = {}    # protocol name -> number of members supporting it
        self.subscribed_topics = None    # topics of the consumer protocol, None = unknown
        self.new_member_added = False

    # -- state ------------------------------------------------------------------------------
    def is_in(self, *states) -> bool:
        return self.state in states

    def transition_to(self, state, now_ms) -> None:
        if self.state not in VALID_PREVIOUS[state]:
            raise AssertionError(f"group {self.group_id}: illegal transition {self.state} -> {state}")
        self.previous_state = self.state
        self.state = state
        self.state_timestamp_ms = now_ms

    def can_rebalance(self) -> bool:
        return self.state in VALID_PREVIOUS[PREPARING_REBALANCE]

    def is_empty(self) -> bool:
        return self.state == EMPTY

    # -- membership -------------------------------------------------------------------------
    def has_member(self, member_id) -> bool:
        return member_id in self.members

    def is_leader(self, member_id) -> bool:
        return self.leader_id is not None and self.leader_id == member_id

    def add(self, member, join_future=None) -> None:
        if member.group_instance_id is not None:
            if member.group_instance_id in self.static_members:
                raise AssertionError(f"instance {member.group_instance_id} is already a member")
            self.static_members[member.group_instance_id] = member.member_id
        if not self.members:
            self.protocol_type = member.protocol_type
        if self.protocol_type != member.protocol_type:
            raise AssertionError("the group and member protocol types differ")
        if self.leader_id is None:
            self.leader_id = member.member_id
        self.members[member.member_id] = member
        self._count_protocols(member, 1)
        member.join_future = join_future
        if join_future is not None:
            self.num_awaiting_join += 1
        self.pending_members.discard(member.member_id)

    def remove(self, member_id) -> None:
        member = self.members.pop(member_id, None)
        if member is not None:
            self._count_protocols(member, -1)
            if member.is_awaiting_join:
                self.num_awaiting_join -= 1
            if member.group_instance_id is not None:
                self.static_members.pop(member.group_instance_id, None)
        if self.is_leader(member_id):
            self.leader_id = next(iter(self.members), None)
        self.pending_members.discard(member_id)
        self.pending_sync.discard(member_id)

    def update_member(self, member, protocols, rebalance_timeout_ms, session_timeout_ms,
                      join_future) -> None:
        self._count_protocols(member, -1)
        member.protocols = list(protocols)
        self._count_protocols(member, 1)
        member.rebalance_timeout_ms = rebalance_timeout_ms
        member.session_timeout_ms = session_timeout_ms
        if join_future is not None and not member.is_awaiting_join:
            self.num_awaiting_join += 1
        elif join_future is None and member.is_awaiting_join:
            self.num_awaiting_join -= 1
        member.join_future = join_future

    def replace_static_member(self, instance_id, old_member_id, new_member_id, fence):
        """Move a static member to a new member id; `fence(member)` answers the old id's parked
        requests with FENCED_INSTANCE_ID. Returns the new member."""
        old = self.members.pop(old_member_id)
        fence(old)
        new = ClassicGroupMember(new_member_id, old.group_instance_id, old.client_id,
                                 old.client_host, old.rebalance_timeout_ms, old.session_timeout_ms,
                                 old.protocol_type, old.protocols, old.assignment)
        if old.is_awaiting_join:
            self.num_awaiting_join -= 1
            old.join_future = None
        self.members[new_member_id] = new
        if self.is_leader(old_member_id):
            self.leader_id = new_member_id
        self.static_members[instance_id] = new_member_id
        self.pending_sync.discard(old_member_id)
        return new

    def static_member_id(self, instance_id):
        return self.static_members.get(instance_id)

    def validate_member(self, member_id, instance_id) -> None:
        """UNKNOWN_MEMBER_ID / FENCED_INSTANCE_ID as Kafka's ClassicGroup.validateMember."""
        if instance_id is not None:
            existing = self.static_members.get(instance_id)
            if existing is None:
                raise GroupError(UNKNOWN_MEMBER_ID, f"unknown group instance id {instance_id}")
            if existing != member_id:
                raise GroupError(FENCED_INSTANCE_ID,
                                 f"instance {instance_id} is owned by member {existing}")
        if member_id not in self.members:
            raise GroupError(UNKNOWN_MEMBER_ID, f"unknown member {member_id}")

    def has_all_members_joined(self) -> bool:
        return len(self.members) == self.num_awaiting_join and not self.pending_members

    def not_yet_rejoined(self) -> list:
        return [m for m in self.members.values() if not m.is_awaiting_join]

    def maybe_elect_new_joined_leader(self) -> bool:
        """If the leader has not rejoined, make a member that has the leader; False when no
        member rejoined at all."""
        if self.leader_id is None:
            return False
        leader = self.members.get(self.leader_id)
        if leader is not None and leader.is_awaiting_join:
            return True
        for member in self.members.values():
            if member.is_awaiting_join:
                self.leader_id = member.member_id
                return True
        return False

    def rebalance_timeout_ms(self) -> int:
        return max((m.rebalance_timeout_ms for m in self.members.values()), default=0)

    @staticmethod
    def generate_member_id(client_id, instance_id) -> str:
        return f"{instance_id if instance_id is not None else client_id}-{uuid.uuid4()}"

    # -- protocols --------------------------------------------------------------------------
    def _count_protocols(self, member, delta) -> None:
        for name in member.protocol_names():
            self.supported_protocols[name] = self.supported_protocols.get(name, 0) + delta

    def candidate_protocols(self) -> set:
        n = len(self.members)
        return {name for name, count in self.supported_protocols.items() if count == n}

    def supports_protocols(self, protocol_type, protocol_names) -> bool:
        if self.state == EMPTY:
            return bool(protocol_type) and bool(protocol_names)
        n = len(self.members)
        return (self.protocol_type == protocol_type
                and any(self.supported_protocols.get(p, 0) == n for p in protocol_names))

    def select_protocol(self) -> str:
        """The protocol all members support with the most first-choice votes (ties: the one that
        comes first in the leader's preference order, a deterministic stand-in for Kafka's
        hash-map order)."""
        candidates = self.candidate_protocols()
        votes = {}
        for member in self.members.values():
            choice = member.vote(candidates)
            votes[choice] = votes.get(choice, 0) + 1
        best = max(votes.values())
        leader = self.members.get(self.leader_id) or next(iter(self.members.values()))
        order = [name for name, _ in leader.protocols] + sorted(votes)
        return next(name for name in order if votes.get(name) == best)

    # -- generations --------------------------------------------------------------------------
    def init_next_generation(self, now_ms) -> None:
        self.generation_id += 1
        if self.members:
            self.protocol_name = self.select_protocol()
            self.subscribed_topics = self.compute_subscribed_topics()
            self.transition_to(COMPLETING_REBALANCE, now_ms)
        else:
            self.protocol_name = None
            self.subscribed_topics = self.compute_subscribed_topics()
            self.transition_to(EMPTY, now_ms)
        self.pending_sync.clear()

    def compute_subscribed_topics(self):
        """The topics members of the `consumer` protocol subscribe to, parsed from their
        subscription (ConsumerProtocolSubscription, read as its version-0 prefix); None when the
        group is not a consumer group or a subscription does not parse."""
        if self.protocol_type != CONSUMER_PROTOCOL_TYPE:
            return None
        if not self.members:
            return set()
        if self.protocol_name is None:
            return None
        topics = set()
        for member in self.members.values():
            parsed = parse_subscription_topics(member.metadata(self.protocol_name))
            if parsed is None:
                return None
            topics.update(parsed)
        return topics

    def is_subscribed_to(self, topic) -> bool:
        if self.subscribed_topics is not None:
            return topic in self.subscribed_topics
        return self.protocol_type == CONSUMER_PROTOCOL_TYPE and bool(self.members)

    def group_assignment(self) -> dict:
        return {m.member_id: m.assignment for m in self.members.values()}

    # -- offsets and admin (Kafka's Group interface) --------------------------------------------
    def validate_offset_commit(self, member_id, instance_id, generation_id, api_version) -> None:
        if self.state == DEAD:
            raise GroupError(COORDINATOR_NOT_AVAILABLE)
        if generation_id < 0 and self.state == EMPTY:
            return  # a standalone commit (admin client, or a consumer without group management)
        if generation_id >= 0 or member_id or instance_id is not None:
            self.validate_member(member_id, instance_id)
            if generation_id != self.generation_id:
                raise GroupError(ILLEGAL_GENERATION, f"generation {generation_id} is not "
                                                     f"{self.generation_id}")
        elif self.state != EMPTY:
            raise GroupError(UNKNOWN_MEMBER_ID, "commit without member id to a non-empty group")
        if self.state == COMPLETING_REBALANCE:
            raise GroupError(REBALANCE_IN_PROGRESS)

    def validate_offset_fetch(self, member_id, member_epoch) -> None:
        if self.state == DEAD:
            raise GroupError(GROUP_ID_NOT_FOUND)

    def validate_offset_delete(self) -> None:
        if self.state == DEAD:
            raise GroupError(GROUP_ID_NOT_FOUND)
        if self.state in (STABLE, PREPARING_REBALANCE, COMPLETING_REBALANCE) and \
                self.protocol_type != CONSUMER_PROTOCOL_TYPE:
            raise GroupError(NON_EMPTY_GROUP)

    def validate_delete_group(self) -> None:
        if self.state == DEAD:
            raise GroupError(GROUP_ID_NOT_FOUND)
        if self.state in (STABLE, PREPARING_REBALANCE, COMPLETING_REBALANCE):
            raise GroupError(NON_EMPTY_GROUP)

    def offset_expiration_base(self):
        """A function OffsetAndMetadata -> the timestamp its retention counts from, or None when
        this group's offsets do not expire now (Kafka's offsetExpirationCondition)."""
        if self.protocol_type is None:
            return lambda oam: oam.commit_timestamp_ms     # simple (standalone) consumer
        if self.state == EMPTY:
            if self.state_timestamp_ms >= 0:
                return lambda oam: self.state_timestamp_ms
            return lambda oam: oam.commit_timestamp_ms      # loaded from an old record version
        if self.protocol_type == CONSUMER_PROTOCOL_TYPE and self.subscribed_topics is not None \
                and self.state == STABLE:
            return lambda oam: oam.commit_timestamp_ms
        return None

    def state_name(self) -> str:
        return self.state


def parse_subscription_topics(metadata):
    """Topics of a ConsumerProtocolSubscription (int16 version, then v0 fields: []string topics,
    bytes user data); None when it does not parse."""
    from pybroker.codec.errors import DecodeError
    from pybroker.codec.protocol import decode
    if metadata is None or len(metadata) < 2:
        return None
    try:
        sub = decode(("data", "ConsumerProtocolSubscription"), 0, memoryview(metadata)[2:])
    except DecodeError:
        return None
    return set(sub.topics or ())
