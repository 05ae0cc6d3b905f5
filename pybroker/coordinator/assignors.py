"""Server-side assignors of the consumer protocol (KIP-848): `uniform` (the default) and `range`.

    assign(name, members, topics) -> {member id: {topic id: set(partitions)}}
    members: {member id: MemberSpec(member_id, instance_id, topics=frozenset(topic ids),
                                    current={topic id: set(partitions)})}   current = the member's
             present target assignment, used to keep partitions where they are
    topics:  {topic id: number of partitions} (only topics that exist)

uniform: every member gets floor(P/M) or ceil(P/M) of the partitions it can take, keeping as
many of its current partitions as that allows (sticky). With identical subscriptions this is a
quota fill (O(P log P)); with differing ones, the most constrained partitions are placed first on
the least loaded eligible member, then partitions move from the most to the least loaded eligible
member until no move narrows the spread.
range: per topic, the subscribed members (static members by instance id first, then by member id)
take contiguous ranges, the first P % M of them one partition more — co-partitioned topics line up.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from pybroker.coordinator.errors import UNSUPPORTED_ASSIGNOR, GroupError

ASSIGNORS = ("uniform", "range")


@dataclass(frozen=True)
class MemberSpec:
    member_id: str
    topics: frozenset
    instance_id: Optional[str] = None
    current: dict = field(default_factory=dict)


def assign(name, members: dict, topics: dict) -> dict:
    if name == "uniform":
        return uniform(members, topics)
    if name == "range":
        return range_assign(members, topics)
    raise GroupError(UNSUPPORTED_ASSIGNOR, f"assignor {name} is not supported")


# --- uniform ----------------------------------------------------------------------------------

def uniform(members: dict, topics: dict) -> dict:
    if not members:
        return {}
    subscriptions = {frozenset(t for t in m.topics if t in topics) for m in members.values()}
    if len(subscriptions) == 1:
        return _uniform_same(members, topics, next(iter(subscriptions)))
    return _uniform_mixed(members, topics)


def _valid_current(member, topics, allowed) -> list:
    return sorted((tid, p) for tid, parts in member.current.items()
                  if tid in allowed for p in parts if p < topics[tid])


def _uniform_same(members, topics, subscribed) -> dict:
    partitions = [(tid, p) for tid in sorted(subscribed) for p in range(topics[tid])]
    base, extra = divmod(len(partitions), len(members))
    current = {mid: _valid_current(m, topics, subscribed) for mid, m in members.items()}
    quota, result, taken = {}, {mid: [] for mid in members}, set()
    for mid in sorted(members, key=lambda m: (-len(current[m]), m)):
        q = base + (1 if extra > 0 and len(current[mid]) > base else 0)
        extra -= q - base
        quota[mid] = q
        for tp in current[mid]:
            if len(result[mid]) >= q:
                break
            if tp not in taken:
                taken.add(tp)
                result[mid].append(tp)
    for mid in sorted(members):
        if extra > 0 and quota[mid] == base:
            quota[mid] += 1
            extra -= 1
    _fill_round_robin([tp for tp in partitions if tp not in taken], result, quota)
    return {mid: _as_map(tps) for mid, tps in result.items()}


def _fill_round_robin(unassigned, result, quota) -> None:
    """Deal the free partitions to members below their quota in turn (spreads each topic)."""
    open_members = [mid for mid in sorted(result) if len(result[mid]) < quota[mid]]
    turn = 0
    for tp in unassigned:
        for _ in range(len(open_members)):
            mid = open_members[turn % len(open_members)]
            turn += 1
            if len(result[mid]) < quota[mid]:
                break
        result[mid].append(tp)


def _uniform_mixed(members, topics) -> dict:
    eligible = {tid: sorted(mid for mid, m in members.items() if tid in m.topics)
                for tid in topics}
    result = {mid: set() for mid in members}
    taken = set()
    for mid, m in sorted(members.items()):
        for tp in _valid_current(m, topics, m.topics):
            if tp not in taken:
                taken.add(tp)
                result[mid].add(tp)
    unassigned = sorted(((tid, p) for tid, n in topics.items() if eligible[tid]
                         for p in range(n) if (tid, p) not in taken),
                        key=lambda tp: (len(eligible[tp[0]]), tp))
    for tid, p in unassigned:
        mid = min(eligible[tid], key=lambda m: (len(result[m]), m))
        result[mid].add((tid, p))
    _balance(result, eligible)
    return {mid: _as_map(tps) for mid, tps in result.items()}


def _balance(result, eligible) -> None:
    """Move partitions from loaded to lightly loaded eligible members while that narrows the
    spread (each move lowers the sum of squared loads, so this ends)."""
    limit = sum(len(v) for v in result.values()) * max(1, len(result))
    for _ in range(limit):
        if not _move_one(result, eligible):
            return


def _move_one(result, eligible) -> bool:
    for donor in sorted(result, key=lambda m: (-len(result[m]), m)):
        load = len(result[donor])
        for tid, p in sorted(result[donor], reverse=True):
            receivers = [m for m in eligible[tid] if len(result[m]) < load - 1]
            if receivers:
                receiver = min(receivers, key=lambda m: (len(result[m]), m))
                result[donor].discard((tid, p))
                result[receiver].add((tid, p))
                return True
    return False


def _as_map(tps) -> dict:
    out = {}
    for tid, p in tps:
        out.setdefault(tid, set()).add(p)
    return out


# --- range ------------------------------------------------------------------------------------

def _range_order(m: MemberSpec):
    return (0, m.instance_id, m.member_id) if m.instance_id is not None else (1, "", m.member_id)


def range_assign(members: dict, topics: dict) -> dict:
    ordered = sorted(members.values(), key=_range_order)
    result = {mid: {} for mid in members}
    for tid in sorted(topics):
        subscribers = [m for m in ordered if tid in m.topics]
        if not subscribers:
            continue
        base, extra = divmod(topics[tid], len(subscribers))
        start = 0
        for i, m in enumerate(subscribers):
            count = base + (1 if i < extra else 0)
            if count:
                result[m.member_id][tid] = set(range(start, start + count))
            start += count
    return result
