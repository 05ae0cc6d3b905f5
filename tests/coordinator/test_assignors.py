"""Server-side assignors (uniform, range), the group -> partition hash, and the manual clock."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pybroker.coordinator.assignors import MemberSpec, assign, range_assign, uniform
from pybroker.coordinator.clock import ManualClock, Timer
from pybroker.coordinator.errors import GroupError
from pybroker.coordinator.topics import java_abs, java_string_hash, partition_for

A, B, C = b"A" * 16, b"B" * 16, b"C" * 16


def _flat(result):
    return [(tid, p) for parts in result.values() for tid, ps in parts.items() for p in ps]


def _counts(result):
    return sorted(sum(len(ps) for ps in parts.values()) for parts in result.values())


def test_uniform_same_subscription_is_balanced_and_complete():
    members = {f"m{i}": MemberSpec(f"m{i}", frozenset({A, B})) for i in range(4)}
    result = uniform(members, {A: 5, B: 6})
    flat = _flat(result)
    assert sorted(flat) == sorted([(A, p) for p in range(5)] + [(B, p) for p in range(6)])
    assert len(flat) == len(set(flat))
    assert _counts(result) == [2, 3, 3, 3]


def test_uniform_is_sticky_when_a_member_joins():
    members = {f"m{i}": MemberSpec(f"m{i}", frozenset({A})) for i in range(2)}
    before = uniform(members, {A: 6})
    members = {mid: MemberSpec(mid, frozenset({A}), current=before[mid]) for mid in before}
    members["m9"] = MemberSpec("m9", frozenset({A}))
    after = uniform(members, {A: 6})
    assert _counts(after) == [2, 2, 2]
    for mid in ("m0", "m1"):
        assert after[mid][A] <= before[mid][A]      # they only give partitions away


def test_uniform_sticky_when_a_member_leaves():
    members = {f"m{i}": MemberSpec(f"m{i}", frozenset({A})) for i in range(3)}
    before = uniform(members, {A: 9})
    survivors = {mid: MemberSpec(mid, frozenset({A}), current=before[mid]) for mid in ("m0", "m1")}
    after = uniform(survivors, {A: 9})
    for mid in survivors:
        assert before[mid][A] <= after[mid][A]
    assert _counts(after) == [4, 5]


def test_uniform_different_subscriptions_respects_them():
    members = {"x": MemberSpec("x", frozenset({A})), "y": MemberSpec("y", frozenset({A, B})),
               "z": MemberSpec("z", frozenset({C}))}
    result = uniform(members, {A: 4, B: 2, C: 3})
    assert set(result["x"]) <= {A} and set(result["z"]) <= {C}
    assert sorted(_flat(result)) == sorted([(A, p) for p in range(4)] + [(B, p) for p in range(2)]
                                           + [(C, p) for p in range(3)])
    assert sum(len(v) for v in result["x"].values()) == 3       # x and y share A and B evenly
    assert sum(len(v) for v in result["y"].values()) == 3


def test_uniform_ignores_current_partitions_that_no_longer_exist():
    members = {"m": MemberSpec("m", frozenset({A}), current={A: {0, 7}, B: {1}})}
    assert uniform(members, {A: 3}) == {"m": {A: {0, 1, 2}}}


def test_range_is_contiguous_and_puts_static_members_first():
    members = {"b": MemberSpec("b", frozenset({A, B})),
               "a": MemberSpec("a", frozenset({A, B})),
               "s": MemberSpec("s", frozenset({A}), instance_id="inst")}
    result = range_assign(members, {A: 7, B: 3})
    assert result["s"] == {A: {0, 1, 2}}
    assert result["a"] == {A: {3, 4}, B: {0, 1}}
    assert result["b"] == {A: {5, 6}, B: {2}}


def test_unknown_assignor():
    with pytest.raises(GroupError) as info:
        assign("sticky", {}, {})
    assert info.value.code == 112


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_assignors_assign_each_subscribed_partition_exactly_once(data):
    topics = {bytes([i]) * 16: data.draw(st.integers(0, 12)) for i in range(data.draw(
        st.integers(1, 4)))}
    tids = sorted(topics)
    n = data.draw(st.integers(1, 6))
    members = {}
    for i in range(n):
        subs = frozenset(data.draw(st.lists(st.sampled_from(tids), min_size=1, unique=True)))
        current = {t: set(data.draw(st.lists(st.integers(0, 14), max_size=4))) for t in subs}
        members[f"m{i}"] = MemberSpec(f"m{i}", subs, current=current)
    for name in ("uniform", "range"):
        result = assign(name, members, topics)
        flat = _flat(result)
        assert len(flat) == len(set(flat)), name
        subscribed = {t for m in members.values() for t in m.topics}
        assert set(flat) == {(t, p) for t in subscribed for p in range(topics[t])}, name
        for mid, parts in result.items():
            assert set(parts) <= members[mid].topics, name
    if len({m.topics for m in members.values()}) == 1:
        counts = _counts(uniform(members, topics))
        assert counts[-1] - counts[0] <= 1


def test_java_string_hash_and_partition():
    assert java_string_hash("") == 0
    assert java_string_hash("hello") == 99162322
    assert java_string_hash("polygenelubricants") == -(1 << 31)
    assert java_abs(-(1 << 31)) == 0
    assert partition_for("polygenelubricants", 50) == 0
    assert java_string_hash("\U0001F600") == 31 * 0xD83D + 0xDE00   # UTF-16 surrogates, as Java
    assert [partition_for(f"g{i}", 50) for i in range(3)] == \
        [abs(java_string_hash(f"g{i}")) % 50 for i in range(3)]


def test_manual_clock_and_keyed_timer():
    clock = ManualClock(start_ms=0)
    timer = Timer(clock)
    fired = []
    timer.schedule("a", 100, lambda: fired.append(("a", clock.now_ms())))
    timer.schedule("b", 50, lambda: fired.append(("b", clock.now_ms())))
    timer.schedule("a", 200, lambda: fired.append(("a2", clock.now_ms())))   # replaces "a"
    timer.schedule("c", 10, lambda: fired.append("c"))
    timer.cancel("c")
    assert clock.advance(150) == 1 and fired == [("b", 50)]
    assert timer.is_scheduled("a") and not timer.is_scheduled("b")
    clock.advance(100)
    assert fired == [("b", 50), ("a2", 200)] and clock.now_ms() == 250
    timer.schedule("boom", 1, lambda: 1 / 0)            # a failing callback is logged, not raised
    clock.advance(1)
    assert len(timer) == 0
