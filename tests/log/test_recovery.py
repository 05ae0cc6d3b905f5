"""Crash safety: cut files mid-write, append garbage, damage or delete indexes, kill an appending
process. After recovery every batch acknowledged before the damage is there byte for byte and
nothing partial or corrupt is served; damage recovery may not silently drop is a typed error."""
import os
import shutil
import signal
import subprocess
import sys
import textwrap

import pytest

from pybroker.codec import records
from pybroker.log import KafkaStorageError, Log, LogConfig, LogCorruptedError, LogManager
from log_helpers import all_batches, batch, drop, open_log, reopen

CFG = LogConfig(segment_bytes=700, index_interval_bytes=150, segment_index_bytes=4096)


def _build(tmp_path, n=14, cfg=CFG):
    """A crashed log directory (no clean shutdown) with n small batches over several segments."""
    log = open_log("disk", tmp_path / "template", cfg)
    for i in range(n):
        log.append_as_leader(batch(2, size=120, tag=i), leader_epoch=1)
    expected = all_batches(log)
    path, segments = log.dir_path, [(s.base_offset, s.log.path) for s in log.segments]
    drop(log)
    return path, segments, expected


def _copy(template, dest):
    if os.path.exists(dest):
        shutil.rmtree(dest)
    shutil.copytree(template, dest)
    return dest


def _open(path, clean=False, recovery_point=0, cfg=CFG, **kw):
    return Log.open(path, "t", 0, cfg, had_clean_shutdown=clean, recovery_point=recovery_point, **kw)


def _assert_prefix(log, expected, count):
    got = all_batches(log)
    assert got == expected[:count]
    assert log.log_end_offset == (expected[count - 1][1] + 1 if count else 0)
    log.verify()


def _batch_starts(expected):
    starts, pos = [], 0
    for _, _, raw in expected:
        starts.append(pos)
        pos += len(raw)
    return starts


@pytest.mark.parametrize("recovery_point", [0, "last-segment"])
def test_truncate_last_segment_at_every_byte_of_its_last_batches(tmp_path, recovery_point):
    template, segments, expected = _build(tmp_path)
    last_base, last_path = segments[-1]
    in_last = [b for b in expected if b[0] >= last_base]
    before = len(expected) - len(in_last)
    rp = 0 if recovery_point == 0 else last_base
    starts = _batch_starts(in_last)
    cut_from = starts[-2] if len(starts) > 1 else 0
    full = os.path.getsize(last_path)
    for cut in range(cut_from, full + 1):
        path = _copy(template, str(tmp_path / f"work{cut}"))
        os.truncate(os.path.join(path, os.path.basename(last_path)), cut)
        log = _open(path, recovery_point=rp)
        whole = sum(1 for s, (_, _, raw) in zip(starts, in_last) if s + len(raw) <= cut)
        _assert_prefix(log, expected, before + whole)
        assert log.append_as_leader(batch(1, tag=99)).first_offset == log.log_end_offset - 1
        drop(log)


def test_truncate_a_middle_segment_after_the_recovery_point_drops_later_segments(tmp_path):
    template, segments, expected = _build(tmp_path)
    base, seg_path = segments[1]
    in_seg = [b for b in expected if segments[1][0] <= b[0] < segments[2][0]]
    starts = _batch_starts(in_seg)
    path = _copy(template, str(tmp_path / "work"))
    os.truncate(os.path.join(path, os.path.basename(seg_path)), starts[-1] + 5)
    log = _open(path, recovery_point=0)
    first = expected.index(in_seg[0])
    _assert_prefix(log, expected, first + len(in_seg) - 1)          # Kafka: later segments deleted
    assert [s.base_offset for s in log.segments] == [segments[0][0], base]
    assert any("truncated" in line for line in log.load_report)


def test_garbage_appended_is_truncated(tmp_path):
    template, segments, expected = _build(tmp_path)
    _, last_path = segments[-1]
    garbage_cases = [b"\x00", b"\x00" * 61, os.urandom(200), b"\xff" * 80,
                     _fake_header(len_field=200), _fake_header(len_field=20)]
    # a well-formed batch with a broken CRC
    bad = bytearray(batch(1, tag=7))
    records.assign_offsets(bad, 0, expected[-1][1] + 1)
    bad[-1] ^= 0x55
    garbage_cases.append(bytes(bad))
    for garbage in garbage_cases:
        path = _copy(template, str(tmp_path / "work"))
        with open(os.path.join(path, os.path.basename(last_path)), "ab") as f:
            f.write(garbage)
        log = _open(path, recovery_point=0)
        _assert_prefix(log, expected, len(expected))
        log.close_sync()


def _fake_header(len_field):
    return (b"\x00" * 7 + b"\x50") + len_field.to_bytes(4, "big") + b"\x00" * 4 + b"\x02" + b"\x00" * 60


def test_corrupt_batch_followed_by_valid_ones_truncates_there_like_kafka(tmp_path):
    template, segments, expected = _build(tmp_path)
    last_base, last_path = segments[-1]
    in_last = [b for b in expected if b[0] >= last_base]
    starts = _batch_starts(in_last)
    path = _copy(template, str(tmp_path / "work"))
    with open(os.path.join(path, os.path.basename(last_path)), "r+b") as f:
        f.seek(starts[0] + 70)                                       # a record byte: CRC breaks
        byte = f.read(1)
        f.seek(starts[0] + 70)
        f.write(bytes([byte[0] ^ 1]))
    log = _open(path, recovery_point=last_base)
    _assert_prefix(log, expected, len(expected) - len(in_last))


def test_clean_restart_needs_no_recovery(tmp_path):
    log = open_log("disk", tmp_path, CFG)
    for i in range(10):
        log.append_as_leader(batch(2, size=120, tag=i), leader_epoch=2)
    expected = all_batches(log)
    log = reopen(log, clean=True)
    assert log.load_report == [] and all_batches(log) == expected
    assert log.recovery_point == log.log_end_offset
    assert log.leader_epoch_cache.entries == [(2, 0)]


def test_damage_before_the_recovery_point_is_reported_not_served(tmp_path):
    template, segments, expected = _build(tmp_path)
    mid_base, mid_path = segments[1]
    rp = segments[-1][0]
    # 1. garbage appended to a segment that recovery will not rewrite
    path = _copy(template, str(tmp_path / "w1"))
    with open(os.path.join(path, os.path.basename(mid_path)), "ab") as f:
        f.write(b"\x00" * 100)
    with pytest.raises(LogCorruptedError) as err:
        _open(path, recovery_point=rp)
    assert err.value.error_code == 56 and err.value.path.endswith(os.path.basename(mid_path))
    # 2. a middle segment cut short (its tail lost)
    path = _copy(template, str(tmp_path / "w2"))
    os.truncate(os.path.join(path, os.path.basename(mid_path)), os.path.getsize(mid_path) - 10)
    with pytest.raises(LogCorruptedError):
        _open(path, recovery_point=rp)
    # 3. a flipped payload byte: only a full verification sees it
    path = _copy(template, str(tmp_path / "w3"))
    with open(os.path.join(path, os.path.basename(mid_path)), "r+b") as f:
        f.seek(100)
        b = f.read(1)
        f.seek(100)
        f.write(bytes([b[0] ^ 0x10]))
    with pytest.raises(LogCorruptedError):
        _open(path, recovery_point=rp, verify="full")
    # ... and the same after a clean shutdown, through the manager: partition offline, others fine
    _to_manager_layout(path, tmp_path / "dirs", clean=True)
    mgr = LogManager([str(tmp_path / "dirs")], config=CFG, writer="sync", verify="full")
    mgr.startup()
    with pytest.raises(KafkaStorageError):
        mgr.get_log("t", 0)
    assert mgr.get_or_create_log("u", 0).append_as_leader(batch(1)).first_offset == 0
    mgr.shutdown_sync()


def _to_manager_layout(partition_dir, log_dir, clean):
    os.makedirs(log_dir, exist_ok=True)
    shutil.copytree(partition_dir, os.path.join(log_dir, "t-0"))
    if clean:
        with open(os.path.join(log_dir, ".kafka_cleanshutdown"), "w") as f:
            f.write('{"broker_epoch":"-1","version":"0"}')


@pytest.mark.parametrize("damage", ["garbage", "truncate", "delete", "zero-fill", "wrong-positions"])
def test_damaged_index_files_are_rebuilt(tmp_path, damage):
    log = open_log("disk", tmp_path, CFG)
    for i in range(14):
        log.append_as_leader(batch(2, size=120, tag=i))
    expected = all_batches(log)
    log.close_sync()
    victim = log.segments[0]
    idx, tidx = victim.offset_index.path, victim.time_index.path
    size = os.path.getsize(idx)
    assert size >= 16
    if damage == "garbage":
        open(idx, "wb").write(os.urandom(size))
        open(tidx, "wb").write(os.urandom(os.path.getsize(tidx)))
    elif damage == "truncate":
        os.truncate(idx, size - 3)
    elif damage == "delete":
        os.unlink(idx)
        os.unlink(tidx)
    elif damage == "zero-fill":
        open(idx, "r+b").write(b"\x00" * size)
    else:   # plausible entries (increasing, inside the file) that point into the middle of batches
        import struct
        open(idx, "wb").write(b"".join(struct.pack(">II", 2 * i + 1, 40 * i + 7) for i in range(size // 8)))
    log = Log.open(log.dir_path, "t", 0, CFG, had_clean_shutdown=True, recovery_point=log.log_end_offset)
    assert all_batches(log) == expected
    for offset in range(0, expected[-1][1] + 1):
        view = records.RecordBatch(log.read(offset, 1).tobytes())
        assert view.base_offset <= offset <= view.last_offset
    assert log.fetch_offset_by_timestamp(1001).offset == 1


def test_temp_and_orphan_files_are_cleaned(tmp_path):
    log = open_log("disk", tmp_path, CFG)
    for i in range(6):
        log.append_as_leader(batch(2, size=120, tag=i))
    log.close_sync()
    d = log.dir_path
    for name in ("00000000000000000999.index", "00000000000000000000.log.cleaned",
                 "00000000000000000000.log.deleted", "leader-epoch-checkpoint.tmp",
                 "00000000000000000000.index.swap"):
        open(os.path.join(d, name), "wb").write(b"junk")
    Log.open(d, "t", 0, CFG, had_clean_shutdown=True, recovery_point=log.log_end_offset)
    left = set(os.listdir(d))
    assert not any(n.endswith((".cleaned", ".deleted", ".tmp", ".swap")) for n in left)
    assert "00000000000000000999.index" not in left


_WRITER = textwrap.dedent("""
    import asyncio, sys
    sys.path.insert(0, sys.argv[2])
    from log_helpers import batch
    from pybroker.log import LogConfig, LogManager

    async def main():
        mgr = LogManager([sys.argv[1]], config=LogConfig(segment_bytes=20000, index_interval_bytes=500))
        mgr.startup()
        log = mgr.get_or_create_log("t", 0)
        i = 0
        while i < 100000:
            pending = [log.append(batch(3, size=400, tag=i + k)) for k in range(8)]
            for info in await asyncio.gather(*pending):
                print(info.last_offset, flush=True)
            i += 8
    asyncio.run(main())
""")


def test_sigkill_while_appending_loses_no_acknowledged_batch(tmp_path):
    log_dir = str(tmp_path / "logs")
    here = os.path.dirname(__file__)
    repo = os.path.dirname(os.path.dirname(here))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([repo, os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, log_dir, here], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=repo)
    acked = -1
    try:
        for line in proc.stdout:
            acked = int(line)
            if acked >= 600:
                break
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert acked >= 600, proc.stderr.read()
    mgr = LogManager([log_dir], config=LogConfig(segment_bytes=20000, index_interval_bytes=500), writer="sync")
    mgr.startup()
    log = mgr.get_log("t", 0)
    assert log.log_end_offset > acked
    got = all_batches(log)
    assert [b for b, _, _ in got] == list(range(0, log.log_end_offset, 3))
    for base, _, raw in got:
        tag = base // 3
        assert raw[17:] == bytes(batch(3, size=400, tag=tag)[17:])   # attrs..end: byte for byte
    log.verify()
    mgr.shutdown_sync()


def test_interrupted_swap_is_completed(tmp_path):
    log = open_log("disk", tmp_path, CFG)
    for i in range(12):
        log.append_as_leader(batch(2, size=120, tag=i))
    expected = all_batches(log)
    log.close_sync()
    (b0, p0), (b1, p1), (b2, _) = [(s.base_offset, s.log.path) for s in log.segments[:3]]
    merged = open(p0, "rb").read() + open(p1, "rb").read()           # what a cleaner would write
    open(p0 + ".swap", "wb").write(merged)
    log = Log.open(log.dir_path, "t", 0, CFG, had_clean_shutdown=True, recovery_point=log.log_end_offset)
    assert [s.base_offset for s in log.segments][:2] == [b0, b2]
    assert not os.path.exists(p1) and not os.path.exists(p0 + ".swap")
    assert all_batches(log) == expected
    assert any("swap" in line for line in log.load_report)


from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255)), min_size=1, max_size=4),
       cut=st.one_of(st.none(), st.integers(0, 10**6)))
def test_random_damage_to_the_tail_recovers_a_prefix(tmp_path_factory, flips, cut):
    """Flip bytes the CRC covers (or the length field) in the last segment, maybe cut it too:
    what survives is always an exact prefix of what was written, and nothing else."""
    tmp = tmp_path_factory.mktemp("fuzz")
    template, segments, expected = _build(tmp, n=8)
    last_base, last_path = segments[-1]
    in_last = [b for b in expected if b[0] >= last_base]
    starts = _batch_starts(in_last)
    path = _copy(template, str(tmp / "work"))
    target = os.path.join(path, os.path.basename(last_path))
    data = bytearray(open(target, "rb").read())
    for where, xor in flips:
        i = where % len(in_last)
        covered = list(range(starts[i] + 8, starts[i] + 12)) + \
            list(range(starts[i] + 21, starts[i] + len(in_last[i][2])))
        data[covered[(where // len(in_last)) % len(covered)]] ^= xor
    if cut is not None:
        data = data[:cut % (len(data) + 1)]
    open(target, "wb").write(bytes(data))
    log = _open(path, recovery_point=last_base)
    got = all_batches(log)
    assert got == expected[:len(got)] and len(got) >= len(expected) - len(in_last)
    log.verify()
    drop(log)
