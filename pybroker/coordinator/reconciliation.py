"""Incremental reconciliation of a consumer-group member towards its target assignment (Kafka's
CurrentAssignmentBuilder, KIP-848).

A member moves to the target in steps, and a partition changes owner only through the owner
giving it up first:

  1. partitions it holds but the target does not -> pending revocation: the member stays at its
     epoch in UNREVOKED_PARTITIONS until a heartbeat's owned partitions no longer list them;
  2. then it moves to the target epoch and receives the target partitions that are free (no
     other member holds them: current partition epoch -1);
  3. partitions still held by others are withheld (UNRELEASED_PARTITIONS) and handed over on a
     later heartbeat once released.

When the member's subscription changed, partitions of topics it no longer subscribes to are
revoked at once, even before a new target assignment exists (subscription consistency).
"""
from __future__ import annotations

from pybroker.coordinator.consumer import (STABLE, UNRELEASED_PARTITIONS, UNREVOKED_PARTITIONS,
                                           freeze)
from pybroker.coordinator.errors import FENCED_MEMBER_EPOCH, GroupError


class Reconciliation:
    """One reconciliation step of `member`.

    target_epoch, target  the member's target assignment {topic id: set(partitions)} and its epoch
    partition_epoch       (topic id, partition) -> epoch of the member holding it, -1 when free
    owned                 the heartbeat's owned partitions ([TopicPartitions], None = not sent)
    subscribed            topic ids the member subscribes to now
    enforce_subscription  the subscription changed: drop unsubscribed topics right away
    """

    def __init__(self, member, target_epoch, target, partition_epoch, owned, subscribed,
                 enforce_subscription=False):
        self.member = member
        self.target_epoch = target_epoch
        self.target = target
        self.partition_epoch = partition_epoch
        self.owned = owned
        self.subscribed = subscribed
        self.enforce = enforce_subscription

    def build(self):
        m = self.member
        if m.state == STABLE:
            if m.member_epoch != self.target_epoch:
                return self._next(m.member_epoch)
            return self._consistent() if self.enforce else m
        if m.state == UNREVOKED_PARTITIONS:
            if self._owns_any(m.pending_revocation):
                return self._consistent() if self.enforce else m
            return self._next(m.member_epoch)
        if m.state == UNRELEASED_PARTITIONS:
            return self._next(m.member_epoch)
        if self.owned is None or self.owned:
            raise GroupError(FENCED_MEMBER_EPOCH, "the member is in an unknown state; it must "
                                                  "abandon its partitions and rejoin")
        return self._next(self.target_epoch)

    def _owns_any(self, assignment) -> bool:
        """Whether the owned partitions list any of `assignment` (not sent counts as yes)."""
        if self.owned is None:
            return True
        for tp in self.owned:
            pending = assignment.get(tp.topic_id)
            if pending and any(p in pending for p in tp.partitions):
                return True
        return False

    def _consistent(self):
        """Move partitions of topics no longer subscribed to pending revocation."""
        m = self.member
        dropped = {tid: ps for tid, ps in m.assigned.items() if tid not in self.subscribed}
        if not dropped:
            return m
        assigned = {tid: ps for tid, ps in m.assigned.items() if tid in self.subscribed}
        revoking = {tid: set(ps) for tid, ps in m.pending_revocation.items()}
        for tid, ps in dropped.items():
            revoking.setdefault(tid, set()).update(ps)
        if self._owns_any(revoking):
            return m.copy(state=UNREVOKED_PARTITIONS, previous_member_epoch=m.member_epoch,
                          assigned=freeze(assigned), pending_revocation=freeze(revoking))
        return m.copy(previous_member_epoch=m.member_epoch, assigned=freeze(assigned))

    def _next(self, epoch):
        m = self.member
        assigned, revoking, adding = {}, {}, {}
        unreleased = False
        for tid in set(self.target) | set(m.assigned):
            want = set(self.target.get(tid, ())) if tid in self.subscribed else set()
            have = set(m.assigned.get(tid, ()))
            keep = have & want
            take = want - keep
            own_pending = m.pending_revocation.get(tid, ())
            free = {p for p in take
                    if self.partition_epoch(tid, p) == -1 or p in own_pending}
            unreleased = unreleased or len(free) != len(take)
            if keep:
                assigned[tid] = keep
            if have - keep:
                revoking[tid] = have - keep
            if free:
                adding[tid] = free
        if revoking and self._owns_any(revoking):
            return m.copy(state=UNREVOKED_PARTITIONS, member_epoch=epoch,
                          previous_member_epoch=m.member_epoch,
                          assigned=freeze(assigned), pending_revocation=freeze(revoking))
        for tid, parts in adding.items():
            assigned.setdefault(tid, set()).update(parts)
        state = UNRELEASED_PARTITIONS if unreleased else STABLE
        return m.copy(state=state, member_epoch=self.target_epoch,
                      previous_member_epoch=m.member_epoch,
                      assigned=freeze(assigned), pending_revocation={})


def reconcile(member, target_epoch, target, partition_epoch, owned, subscribed,
              enforce_subscription=False):
    return Reconciliation(member, target_epoch, target, partition_epoch, owned, subscribed,
                          enforce_subscription).build()
