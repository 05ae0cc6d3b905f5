"""KIP-227 fetch session cache semantics, independent of the network."""
import pytest

from pybroker.api.fetch_session import (FETCH_SESSION_ID_NOT_FOUND, INVALID_FETCH_SESSION_EPOCH,
                                        FetchSessionCache, FetchSessionError, SessionPartition)


def parts(*offsets):
    return [(("t", i), SessionPartition(fetch_offset=o, max_bytes=1000)) for i, o in enumerate(offsets)]


def test_full_then_incremental_names_only_changes():
    cache = FetchSessionCache(10)
    ctx = cache.new_context(0, 0, parts(0, 0), [])
    assert ctx.session_id != 0 and not ctx.incremental
    # full response: everything is included and remembered
    assert ctx.include(("t", 0), False, 0, 5, 5, 0)
    assert ctx.include(("t", 1), False, 0, 0, 0, 0)
    sid = ctx.session_id
    ctx2 = cache.new_context(sid, 1, [], [])
    assert ctx2.incremental and list(ctx2.partitions) == [("t", 0), ("t", 1)]
    assert not ctx2.include(("t", 0), False, 0, 5, 5, 0)      # nothing new
    assert ctx2.include(("t", 1), False, 0, 3, 3, 0)          # high watermark moved
    assert ctx2.include(("t", 0), True, 0, 5, 5, 0)           # records
    ctx3 = cache.new_context(sid, 2, [(("t", 0), SessionPartition(7, 1000))], [("t", 1)])
    assert list(ctx3.partitions) == [("t", 0)] and ctx3.partitions[("t", 0)].fetch_offset == 7
    # the cached high watermark survives the update, so an unchanged partition is not resent
    assert not ctx3.include(("t", 0), False, 0, 5, 5, 0)


def test_bad_session_id_and_epoch():
    cache = FetchSessionCache(10)
    ctx = cache.new_context(0, 0, parts(0), [])
    with pytest.raises(FetchSessionError) as e:
        cache.new_context(ctx.session_id + 12345, 1, [], [])
    assert e.value.code == FETCH_SESSION_ID_NOT_FOUND
    with pytest.raises(FetchSessionError) as e:
        cache.new_context(ctx.session_id, 5, [], [])
    assert e.value.code == INVALID_FETCH_SESSION_EPOCH


def test_final_epoch_is_sessionless_and_closes():
    cache = FetchSessionCache(10)
    ctx = cache.new_context(0, 0, parts(0), [])
    ctx2 = cache.new_context(ctx.session_id, -1, parts(0), [])
    assert ctx2.session_id == 0 and not ctx2.incremental
    with pytest.raises(FetchSessionError):
        cache.new_context(ctx.session_id, 1, [], [])


def test_lru_eviction_and_zero_slots():
    cache = FetchSessionCache(2)
    ids = [cache.new_context(0, 0, parts(0), []).session_id for _ in range(3)]
    assert ids[0] not in cache.sessions and ids[1] in cache.sessions and ids[2] in cache.sessions
    assert FetchSessionCache(0).new_context(0, 0, parts(0), []).session_id == 0
