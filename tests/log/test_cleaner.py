"""Log compaction (pybroker/log/cleaner.py over pybroker_core.cleaner / its pure twin).

Checked through the log's own read path after cleaning: exactly the latest value of every live
key, offsets strictly increasing, deleted keys gone once their delete horizon passed; the offset
map's memory bound (several rounds, each making progress); min/max compaction lag and the dirty
ratio; the last batch of an active producer kept as an empty header (producer state survives a
restart); transaction markers kept until their transaction is empty and their horizon passed;
crash-safe swap (a crash after every rename/fsync step recovers to a consistent log with every
latest value); malformed data marks the log uncleanable and changes nothing; a reader running
during compaction always sees every key's latest value; compiled and pure cleaners write the same
bytes."""
import asyncio
import os
import random
import time

import pytest

from pbtest import PURE
from pybroker.codec import records as R
from pybroker.log import LogConfig, LogManager
from pybroker.log import cleaner as cleaner_mod
from pybroker.log.cleaner import CLEANER_OFFSET_CHECKPOINT, CleanerConfig
from pybroker.log.producer_state import AppendOrigin

NOW = int(time.time() * 1000)


def compact_config(**kw):
    base = dict(cleanup_policy="compact", segment_bytes=16_000, index_interval_bytes=400,
                delete_retention_ms=0, min_cleanable_dirty_ratio=0.0, file_delete_delay_ms=0)
    base.update(kw)
    return LogConfig(**base)


def manager(storage, tmp_path, **cleaner):
    dirs = [str(tmp_path / "data")] if storage == "disk" else []
    mgr = LogManager(dirs, storage=storage, writer="sync")
    mgr.startup()
    mgr.cleaner.config = CleanerConfig(**cleaner)
    return mgr


def put(log, items, ts=NOW, compression=0, **kw):
    """Append one batch of (key, value) records."""
    recs = [(k, v, [], ts) for k, v in items]
    return log.append_as_leader(bytearray(R.build_batch(recs, compression=compression, **kw)))


def read_all(log, start=None):
    """[(offset, key, value)] of every data record readable, through Log.read."""
    out = []
    offset = log.log_start_offset if start is None else start
    while offset < log.high_watermark:
        data = log.read(offset, 1 << 20).tobytes()
        if not data:
            break
        for b in R.iter_batches(data):
            for r in ([] if b.is_control else b.records()):   # consumers never see markers
                if r.offset >= offset:
                    out.append((r.offset, r.key, r.value))
            offset = max(offset, b.last_offset + 1)
    return out


def latest(records):
    seen = {}
    for _, k, v in records:
        seen[k] = v
    return seen


def fill(log, rng, batches, keys, tombstone_rate=0.1, codecs=(0,)):
    expected = {}
    for i in range(batches):
        items = []
        for j in range(10):
            k = b"key-%d" % rng.randrange(keys)
            v = None if rng.random() < tombstone_rate else b"value-%d-%d" % (i, j)
            items.append((k, v))
            expected[k] = v
        put(log, items, compression=rng.choice(codecs))
    return expected


def check_compacted(log, expected, tombstones_gone=False, unique=True):
    got = read_all(log)
    offsets = [o for o, _, _ in got]
    assert offsets == sorted(set(offsets))
    live = {k: v for k, v in expected.items() if v is not None}
    seen = latest(got)
    assert {k: v for k, v in seen.items() if v is not None} == live
    keys = [k for _, k, _ in got]
    if unique:
        assert len(keys) == len(set(keys)), "a key appears twice after cleaning"
    if tombstones_gone:
        assert all(v is not None for v in seen.values())
    return got


# ---- offset map -------------------------------------------------------------------------------

def test_offset_map_put_get_capacity_and_clear():
    m = cleaner_mod._core.OffsetMap(24 * 100, 0.5)
    assert (m.slots, m.max_entries, m.size, m.latest_offset) == (100, 50, 0, -1)
    for i in range(50):
        m.put(b"k%d" % i, i)
    m.put(b"k3", 99)                                   # an existing key never overflows
    assert m.get(b"k3") == 99 and m.get(b"k49") == 49 and m.get(b"nope") == -1
    with pytest.raises(OverflowError):
        m.put(b"new", 100)
    assert m.latest_offset == 99 and len(m) == 50
    m.clear()
    assert (m.size, m.get(b"k3"), m.latest_offset) == (0, -1, -1)
    with pytest.raises(ValueError):
        cleaner_mod._core.OffsetMap(10)                  # smaller than one slot


@pytest.mark.skipif(PURE, reason="compares the compiled module with its twin")
def test_hash_and_map_match_the_pure_twin():
    from pybroker.codec._pure import cleaner as pure
    from pybroker_core import cleaner as compiled
    rng = random.Random(7)
    for n in list(range(40)) + [1000]:
        key = bytes(rng.randrange(256) for _ in range(n))
        assert compiled.hash_key(key) == pure.hash_key(key)
    assert compiled.hash_key(b"hello")[0] == 0xcbd8a7b341bd9b02   # MurmurHash3 x64-128 vector


@pytest.mark.skipif(PURE, reason="compares the compiled module with its twin")
@pytest.mark.parametrize("seed", range(6))
def test_compiled_and_pure_cleaners_write_the_same_bytes(seed):
    from pybroker.codec._pure import cleaner as pure
    from pybroker_core import cleaner as compiled
    rng = random.Random(seed)
    data, offset = bytearray(), 0
    for i in range(60):
        n = rng.randrange(1, 12)
        recs = [(None if rng.random() < 0.05 else b"k%d" % rng.randrange(40),
                 None if rng.random() < 0.15 else b"v%d" % rng.randrange(10 ** 6),
                 [("h", b"x")] if rng.random() < 0.3 else [], NOW - rng.randrange(10 ** 6))
                for _ in range(n)]
        pid = rng.choice([-1, -1, 5, 9])
        data += R.build_batch(recs, base_offset=offset, compression=rng.choice([0, 0, 1, 3, 4]),
                              producer_id=pid, producer_epoch=0 if pid >= 0 else -1,
                              base_sequence=offset if pid >= 0 else -1)
        offset += n
    outs = []
    for mod in (compiled, pure):
        m = mod.OffsetMap(24 * 1000)
        pos, full = mod.build_offset_map(m, data, 0, rng.randrange(offset // 2) if seed % 2 else 0,
                                         mod.TxnMetadata())
        sc = mod.SegmentCleaner(m, NOW + 5, 10, {5: (offset - 1, 0)}, mod.TxnMetadata(), offset)
        sc.start_segment(0, 300)
        out, consumed = sc.clean(bytes(data), 0)
        outs.append((pos, full, m.size, m.latest_offset, consumed, out, sc.finish_segment(),
                     sc.messages_read, sc.messages_retained, sc.invalid_messages))
    assert outs[0] == outs[1]


# ---- cleaning a log ---------------------------------------------------------------------------

def test_compaction_keeps_exactly_the_latest_value_of_every_key(storage, tmp_path):
    mgr = manager(storage, tmp_path)
    log = mgr.get_or_create_log("c", 0, config=compact_config())
    rng = random.Random(1)
    expected = fill(log, rng, 400, 300, codecs=(0, 0, 1, 4))
    log.roll()
    size_before = log.size
    end = mgr.cleaner.clean_now("c", 0)
    assert end == log.active_segment.base_offset
    assert log.size < size_before / 2
    check_compacted(log, expected)
    assert any(b.has_delete_horizon for b in _batches(log))   # the tombstones' first clean
    put(log, [(b"another", b"write")])                  # new dirty data: the next round
    log.roll()
    expected[b"another"] = b"write"
    later = int(time.time() * 1000) + 10_000            # past every tombstone's horizon
    mgr.cleaner.clean_now("c", 0, now=later)
    check_compacted(log, expected, tombstones_gone=True)
    log.verify()
    if storage == "disk":
        mgr.shutdown_sync()


def test_tombstones_stay_until_delete_retention_ms_after_the_first_clean(tmp_path):
    mgr = manager("disk", tmp_path)
    log = mgr.get_or_create_log("c", 0, config=compact_config(delete_retention_ms=60_000))
    put(log, [(b"a", b"1"), (b"b", b"1")])
    put(log, [(b"a", None)])
    log.roll()
    mgr.cleaner.clean_now("c", 0, now=NOW)
    assert latest(read_all(log)) == {b"a": None, b"b": b"1"}      # horizon = now + 60 s
    put(log, [(b"c", b"1")])
    log.roll()
    mgr.cleaner.clean_now("c", 0, now=NOW + 30_000)
    assert b"a" in latest(read_all(log))                            # not yet
    put(log, [(b"d", b"1")])
    log.roll()
    mgr.cleaner.clean_now("c", 0, now=NOW + 61_000)
    assert latest(read_all(log)) == {b"b": b"1", b"c": b"1", b"d": b"1"}
    mgr.shutdown_sync()


def test_a_small_key_map_cleans_in_several_rounds_each_making_progress(tmp_path):
    # 24 bytes a slot: 600 keys of map, 2000 distinct keys in the log
    mgr = manager("disk", tmp_path, dedupe_buffer_size=24 * 600, io_buffer_load_factor=1.0)
    log = mgr.get_or_create_log("c", 0, config=compact_config(segment_bytes=8000))
    rng = random.Random(3)
    expected = fill(log, rng, 600, 2000, tombstone_rate=0.0)
    log.roll()
    ends = []
    while True:
        end = mgr.cleaner.clean_now("c", 0)
        if ends and end == ends[-1]:
            break
        ends.append(end)
        check_compacted(log, expected, unique=False)      # rounds so far: latest values intact
    check_compacted(log, expected)
    assert len(ends) >= 3 and ends == sorted(ends) and ends[-1] == log.active_segment.base_offset
    assert mgr.cleaner._maps[0] is None or mgr.cleaner._maps[0].memory <= 24 * 600
    mgr.shutdown_sync()


def test_min_compaction_lag_keeps_young_segments_dirty(tmp_path):
    mgr = manager("disk", tmp_path)
    log = mgr.get_or_create_log("c", 0, config=compact_config(min_compaction_lag_ms=60_000))
    put(log, [(b"k", b"old")], ts=NOW - 120_000)
    log.roll()
    put(log, [(b"k", b"young")], ts=NOW)
    log.roll()
    put(log, [(b"k", b"newest")], ts=NOW)
    ltc = cleaner_mod.to_clean(("c", 0), log, None, NOW)
    assert ltc.first_uncleanable == log.segments[1].base_offset   # the young segment
    mgr.cleaner.clean_now("c", 0, now=NOW)
    assert [v for _, _, v in read_all(log)] == [b"old", b"young", b"newest"]  # old is not superseded
    mgr.shutdown_sync()


def test_dirty_ratio_and_max_compaction_lag_choose_what_to_clean(tmp_path):
    mgr = manager("disk", tmp_path)
    cfg = compact_config(min_cleanable_dirty_ratio=0.9)
    log = mgr.get_or_create_log("c", 0, config=cfg)
    for i in range(20):
        put(log, [(b"k%d" % i, b"x" * 200)])
    log.roll()
    mgr.cleaner.checkpoints[("c", 0)] = 10               # half of it already clean
    assert mgr.cleaner.grab_filthiest_log(NOW) is None   # ratio 0.5 < 0.9
    mgr.set_topic_config("c", compact_config(min_cleanable_dirty_ratio=0.9, max_compaction_lag_ms=1000))
    ltc = mgr.cleaner.grab_filthiest_log(NOW + 5000)     # the oldest dirty batch is past the lag
    assert ltc is not None and ltc.needs_compaction_now
    mgr.cleaner.in_progress.clear()
    mgr.set_topic_config("c", compact_config(min_cleanable_dirty_ratio=0.4))
    assert mgr.cleaner.grab_filthiest_log(NOW).tp == ("c", 0)
    mgr.shutdown_sync()


def test_keyless_records_are_dropped_and_counted(tmp_path):
    mgr = manager("disk", tmp_path)
    log = mgr.get_or_create_log("c", 0, config=compact_config())
    put(log, [(None, b"no key"), (b"k", b"1")])
    put(log, [(b"k", b"2")])
    log.roll()
    mgr.cleaner.clean_now("c", 0)
    assert [(k, v) for _, k, v in read_all(log)] == [(b"k", b"2")]
    mgr.shutdown_sync()


def test_last_batch_of_an_active_producer_is_kept_and_state_survives_restart(tmp_path):
    mgr = manager("disk", tmp_path)
    log = mgr.get_or_create_log("c", 0, config=compact_config())
    put(log, [(b"k", b"1"), (b"j", b"1")], producer_id=42, producer_epoch=3, base_sequence=0)
    put(log, [(b"k", b"2"), (b"j", b"2")])               # supersedes the producer's records
    log.roll()
    mgr.cleaner.clean_now("c", 0)
    batches = list(R.iter_batches(log.segments[0].log.read(0, 1 << 20)))
    kept = [b for b in batches if b.producer_id == 42]
    assert len(kept) == 1 and kept[0].records_count == 0 and kept[0].last_offset == 1
    mgr.shutdown_sync()
    mgr = manager("disk", tmp_path)
    log = mgr.get_log("c", 0)
    os.unlink(os.path.join(log.dir_path, f"{log.log_end_offset:020d}.snapshot"))
    mgr.shutdown_sync()
    mgr = manager("disk", tmp_path)                      # producer state rebuilt from the log
    entry = mgr.get_log("c", 0).producer_state.last_entry(42)
    assert entry is not None and entry.last_seq == 1 and entry.producer_epoch == 3
    mgr.shutdown_sync()


def test_transaction_markers_stay_until_the_transaction_is_empty_and_past_the_horizon(tmp_path):
    mgr = manager("disk", tmp_path)
    log = mgr.get_or_create_log("c", 0, config=compact_config(delete_retention_ms=1000))

    def txn(key, seq):
        log.append_as_leader(bytearray(R.build_batch(
            [(key, b"in-txn", [], NOW)], producer_id=7, producer_epoch=0, base_sequence=seq,
            is_transactional=True)), origin=AppendOrigin.REPLICATION)
        log.append_as_leader(bytearray(R.build_control_batch(
            R.CONTROL_COMMIT, producer_id=7, producer_epoch=0, timestamp=NOW)),
            origin=AppendOrigin.REPLICATION)
    txn(b"k", 0)                                          # offsets 0 (data), 1 (marker)
    txn(b"z", 1)                                          # offsets 2, 3: the producer's last data
    put(log, [(b"k", b"after")])                          # supersedes offset 0
    log.roll()

    def markers():
        return {b.base_offset: b for b in _batches(log) if b.is_control}
    mgr.cleaner.clean_now("c", 0, now=NOW)
    assert set(markers()) == {1, 3} and not markers()[1].has_delete_horizon   # txn had data
    assert 0 not in {b.base_offset for b in _batches(log)}
    put(log, [(b"x", b"1")])
    log.roll()
    mgr.cleaner.clean_now("c", 0, now=NOW + 10)           # txn 1 is empty now: horizon set
    assert markers()[1].has_delete_horizon and markers()[1].records_count == 1
    assert not markers()[3].has_delete_horizon            # txn 2 still holds z
    put(log, [(b"y", b"1")])
    log.roll()
    mgr.cleaner.clean_now("c", 0, now=NOW + 5000)         # past the horizon: marker 1 goes
    assert set(markers()) == {3}
    assert latest(read_all(log)) == {b"k": b"after", b"z": b"in-txn", b"x": b"1", b"y": b"1"}
    mgr.shutdown_sync()


def _batches(log):
    out = []
    for seg in log.segments:
        out.extend(R.iter_batches(seg.log.read(0, seg.size)))
    return out


def test_checkpoint_is_written_and_used_after_restart(tmp_path):
    mgr = manager("disk", tmp_path)
    log = mgr.get_or_create_log("c", 0, config=compact_config())
    fill(log, random.Random(2), 50, 20, tombstone_rate=0)
    log.roll()
    end = mgr.cleaner.clean_now("c", 0)
    mgr.shutdown_sync()
    text = (tmp_path / "data" / CLEANER_OFFSET_CHECKPOINT).read_text()
    assert text == f"0\n1\nc 0 {end}\n"
    mgr = manager("disk", tmp_path)
    assert mgr.cleaner.checkpoints == {("c", 0): end}
    ltc = cleaner_mod.to_clean(("c", 0), mgr.get_log("c", 0), end, NOW)
    assert ltc.cleanable_bytes == 0 and ltc.first_dirty == end
    mgr.shutdown_sync()


def test_malformed_records_mark_the_log_uncleanable_and_change_nothing(tmp_path):
    mgr = manager("disk", tmp_path)
    log = mgr.get_or_create_log("c", 0, config=compact_config())
    put(log, [(b"a", b"1"), (b"b", b"2")])
    bad = bytearray(R.build_batch([(b"a", b"3", [], NOW), (b"c", b"4", [], NOW)]))
    bad[61] = 0x7F                                       # the first record's length: far too long
    struct_crc(bad)
    log.append_as_leader(bad)                            # CRC-valid, records malformed
    log.roll()
    before = [seg.log.read(0, seg.size) for seg in log.segments]

    async def run():
        mgr.cleaner.config = CleanerConfig(backoff_ms=10)
        mgr.cleaner.start()
        for _ in range(200):
            if ("c", 0) in mgr.cleaner.uncleanable:
                break
            await asyncio.sleep(0.01)
        await mgr.cleaner.stop()
    asyncio.run(run())
    assert "record length" in mgr.cleaner.uncleanable[("c", 0)]
    assert [seg.log.read(0, seg.size) for seg in log.segments] == before
    assert not [n for n in os.listdir(log.dir_path) if n.endswith((".cleaned", ".swap"))]
    assert mgr.cleaner.grab_filthiest_log() is None      # not retried
    mgr.shutdown_sync()


def struct_crc(buf):
    from pybroker.codec import crc32c
    buf[17:21] = crc32c(bytes(buf[21:])).to_bytes(4, "big")


# ---- crash safety ---------------------------------------------------------------------------

class Crash(Exception):
    pass


@pytest.mark.parametrize("step", range(12))
def test_a_crash_at_any_step_of_the_swap_recovers_every_latest_value(tmp_path, monkeypatch, step):
    mgr = manager("disk", tmp_path)
    log = mgr.get_or_create_log("c", 0, config=compact_config(segment_bytes=4000))
    expected = fill(log, random.Random(5), 80, 60)
    log.roll()
    calls = [0]
    real_rename, real_fsync_dir = os.rename, cleaner_mod.fsync_dir

    def counting(fn):
        def wrapped(*args):
            calls[0] += 1
            if calls[0] == step + 1:
                raise Crash(f"crash before step {step}")
            return fn(*args)
        return wrapped
    monkeypatch.setattr(cleaner_mod.os, "rename", counting(real_rename))
    monkeypatch.setattr(cleaner_mod, "fsync_dir", counting(real_fsync_dir))
    try:
        mgr.cleaner.clean_now("c", 0)
    except Crash:
        pass
    monkeypatch.undo()
    mgr.abandon()                                        # kill -9: no shutdown work at all
    mgr = manager("disk", tmp_path)
    log = mgr.get_log("c", 0)
    assert log is not None and log.offline_error is None
    log.verify()
    got = read_all(log)
    seen = latest(got)
    assert {k: v for k, v in seen.items() if v is not None} == \
        {k: v for k, v in expected.items() if v is not None}
    assert [o for o, _, _ in got] == sorted({o for o, _, _ in got})
    assert not [n for n in os.listdir(log.dir_path) if n.endswith((".cleaned", ".swap", ".deleted"))]
    mgr.cleaner.clean_now("c", 0)                         # and it can be cleaned again
    check_compacted(log, expected)
    mgr.shutdown_sync()


# ---- reads during compaction ------------------------------------------------------------------

def test_a_reader_during_compaction_always_sees_every_latest_value(tmp_path):
    mgr = manager("disk", tmp_path, io_buffer_size=4096, max_io_bytes_per_second=400_000)
    log = mgr.get_or_create_log("c", 0, config=compact_config(segment_bytes=8000))
    expected = fill(log, random.Random(9), 300, 200, tombstone_rate=0.0)
    log.roll()
    reads = []

    async def run():
        mgr.cleaner.config = CleanerConfig(io_buffer_size=4096, max_io_bytes_per_second=400_000,
                                           backoff_ms=10)
        ltc = cleaner_mod.to_clean(("c", 0), log, None, NOW)
        mgr.cleaner.in_progress[("c", 0)] = ltc
        mgr.cleaner._executor = __import__("concurrent.futures").futures.ThreadPoolExecutor(1)
        task = asyncio.ensure_future(mgr.cleaner.clean_log(ltc))
        while not task.done():
            reads.append(read_all(log))
            await asyncio.sleep(0.005)
        await task
        mgr.cleaner._executor.shutdown()
    asyncio.run(run())
    assert len(reads) >= 3, "the clean was too quick to overlap any read"
    segment_counts = set()
    for got in reads:
        assert latest(got) == expected
        assert [o for o, _, _ in got] == sorted({o for o, _, _ in got})
        segment_counts.add(len(got))
    assert len(segment_counts) >= 2, "no read saw a partly cleaned log"
    check_compacted(log, expected)
    mgr.shutdown_sync()
