"""Value generators for the protocol codec tests, built from the programs themselves.

`strategy(prog)` draws valid objects for one struct version (hypothesis): nullability as the
version allows, tagged fields sometimes non-default, unknown tags, fields absent from the version
left at their default. `sample(prog, variant)` builds one deterministic object: variant 0 sets
every field (tagged ones too) to a non-default, non-null value; variant 1 uses null wherever the
version allows it and empty arrays elsewhere. `all_cases()` lists every (kind, name, version).
Other test_protocol_* modules import this one; its own tests check the generators.
"""
import functools

from hypothesis import strategies as st

from pybroker.codec import messages as m
from pybroker.codec.messages import REGISTRY

INT_RANGES = {m.INT8: (-2**7, 2**7 - 1), m.INT16: (-2**15, 2**15 - 1), m.UINT16: (0, 2**16 - 1),
              m.INT32: (-2**31, 2**31 - 1), m.UINT32: (0, 2**32 - 1),
              m.INT64: (-2**63, 2**63 - 1)}


def all_cases(kinds=("request", "response", "header", "data")):
    out = []
    for (kind, name), msg in sorted(REGISTRY.messages.items()):
        if kind in kinds and msg.versions is not None:
            out.extend((kind, name, v) for v in range(msg.versions[0], msg.versions[1] + 1))
    return out


def case_id(case):
    return f"{case[0]}-{case[1]}-v{case[2]}"


def program(case):
    return REGISTRY.program(*case)


# --- hypothesis strategies -----------------------------------------------------------------

def _value(kind, op, sub):
    if kind in INT_RANGES:
        return st.integers(*INT_RANGES[kind])
    if kind == m.BOOL:
        return st.booleans()
    if kind == m.FLOAT64:
        return st.floats(allow_nan=False)
    if kind == m.UUID:
        return st.binary(min_size=16, max_size=16)
    if kind in (m.STRING, m.COMPACT_STRING):
        return st.text(max_size=8)
    if kind in (m.BYTES, m.COMPACT_BYTES, m.RECORDS, m.COMPACT_RECORDS):
        return st.binary(max_size=24)
    if kind in (m.ARRAY, m.COMPACT_ARRAY):
        return st.lists(_value(op.elem, op, sub), max_size=3)
    if kind == m.STRUCT:
        return strategy(sub)
    raise AssertionError(kind)


def _field(op):
    s = _value(op.kind, op, op.sub)
    return st.one_of(st.none(), s) if op.nullable else s


@functools.lru_cache(maxsize=None)
def strategy(prog):
    fields = {op.attr: _field(op) for op in prog.ops}
    for op in prog.tagged:
        fields[op.attr] = st.one_of(st.builds(op.new_default), _field(op))
    if prog.flexible:
        known = set(prog.by_tag)
        tag = st.integers(0, 2**32 - 1).filter(lambda t: t not in known)
        fields["unknown_tagged"] = st.lists(st.tuples(tag, st.binary(max_size=6)), max_size=2,
                                            unique_by=lambda e: e[0]).map(sorted)
    return st.fixed_dictionaries(fields).map(lambda kw: prog.cls(**kw))


# --- deterministic samples -------------------------------------------------------------------

def _other(kind, default, salt):
    """A value of `kind` different from `default`."""
    if kind in INT_RANGES:
        lo, hi = INT_RANGES[kind]
        v = 7 + salt
        return v if v != default else v + 1
    if kind == m.BOOL:
        return not default
    if kind == m.FLOAT64:
        return 2.5 + salt
    if kind == m.UUID:
        return bytes(range(salt, salt + 16))
    if kind in (m.STRING, m.COMPACT_STRING):
        return f"s{salt}-é"
    return bytes([salt % 256]) * 3


def _sample_value(op, kind, variant, salt):
    if variant == 1 and op.nullable and kind == op.kind:
        return None
    if kind in (m.ARRAY, m.COMPACT_ARRAY):
        if variant == 1:
            return []
        return [_sample_value(op, op.elem, variant, salt + i) for i in range(2)]
    if kind == m.STRUCT:
        return sample(op.sub, variant, salt)
    default = op.default if kind == op.kind else None
    return _other(kind, default, salt)


def sample(prog, variant=0, salt=0):
    kw = {}
    for i, op in enumerate(prog.ops):
        kw[op.attr] = _sample_value(op, op.kind, variant, salt + i)
    for i, op in enumerate(prog.tagged):
        kw[op.attr] = _sample_value(op, op.kind, 0, salt + i) if variant == 0 \
            else op.new_default()
    if prog.flexible and variant == 0:
        kw["unknown_tagged"] = [(max(prog.by_tag, default=-1) + 1, b"\x05\x06"), (2**31, b"")]
    return prog.cls(**kw)


# --- the generators' own checks ----------------------------------------------------------------

def test_cases_cover_every_api_and_both_directions():
    cases = all_cases()
    kinds = {k for k, _, _ in cases}
    assert {"request", "response", "header"} <= kinds
    requests = {n for k, n, _ in cases if k == "request"}
    assert requests == {n for k, n, _ in cases if k == "response"}
    assert "ApiVersions" in requests


def test_sample_sets_every_present_field_to_a_non_default():
    for case in all_cases():
        prog = program(case)
        obj = sample(prog)
        for op in prog.ops + prog.tagged:
            value = getattr(obj, op.attr)
            assert value is not None and value != op.default, (case, op)
