"""Retention by policy (Kafka's deleteOldSegments): retention.ms / retention.bytes only when
cleanup.policy has `delete`; below-log-start deletion always; segments go through the .deleted
rename and are removed file.delete.delay.ms later; segments without timestamps age by mtime; the
retention task skips a log the cleaner is working on and checkpoints the new log start; preallocate
reserves disk blocks that roll gives back."""
import asyncio
import os
import time

import pytest

from log_helpers import batch, open_log
from pybroker.log import LogConfig, LogManager


def grow(log, n=30, ts=40_000, size=300):
    for i in range(n):
        log.append_as_leader(batch(1, size=size, ts=ts + i, tag=i))


def test_compact_policy_ignores_time_and_size_but_honours_the_log_start(storage, tmp_path):
    now = [10 ** 9]
    cfg = LogConfig(segment_bytes=1000, retention_bytes=100, retention_ms=1, cleanup_policy="compact")
    log = open_log(storage, tmp_path, cfg, clock=lambda: now[0])
    grow(log)
    segments = len(log.segments)
    assert log.delete_old_segments() == 0 and len(log.segments) == segments
    log.maybe_increment_log_start_offset(log.segments[2].base_offset)
    assert log.delete_old_segments() == 2 and log.segments[0].base_offset == log.log_start_offset
    log.config = LogConfig(segment_bytes=1000, retention_bytes=100, retention_ms=1,
                           cleanup_policy="compact,delete")
    assert log.delete_old_segments() > 0 and len(log.segments) == 1


def test_delete_records_style_start_offset_deletes_without_retention(storage, tmp_path):
    cfg = LogConfig(segment_bytes=1000, retention_ms=1)
    log = open_log(storage, tmp_path, cfg, clock=lambda: 10 ** 9)
    grow(log)
    log.maybe_increment_log_start_offset(log.segments[1].base_offset)
    assert log.delete_old_segments(retention=False) == 1       # only what is below the start
    assert len(log.segments) > 2


def test_deleted_segments_are_renamed_then_removed_after_the_delay(tmp_path):
    scheduled = []
    cfg = LogConfig(segment_bytes=1000, retention_bytes=1500, file_delete_delay_ms=2500)
    log = open_log("disk", tmp_path, cfg, scheduler=lambda delay, fn, writer, on_error: scheduled.append((delay, fn)))
    grow(log)
    region = log.read(0, 100).records                       # a fetch in flight on segment 0
    expected = region.tobytes()
    first = log.segments[0].log.path
    log.delete_old_segments()
    assert not os.path.exists(first) and os.path.exists(first + ".deleted")
    assert scheduled and all(delay == 2.5 for delay, _ in scheduled)
    assert region.tobytes() == expected                     # still readable until the delay passes
    for _, fn in scheduled:
        fn()
    assert not [n for n in os.listdir(log.dir_path) if n.endswith(".deleted")]


def test_segments_without_timestamps_age_by_modification_time(tmp_path):
    now = [int(time.time() * 1000)]
    cfg = LogConfig(segment_bytes=1000, retention_ms=60_000)
    log = open_log("disk", tmp_path, cfg, clock=lambda: now[0])
    for i in range(10):
        log.append_as_leader(batch(1, size=300, ts=-1, tag=i))  # no timestamps at all
    assert log.delete_old_segments() == 0
    old = time.time() - 3600
    for seg in log.segments[:-1]:
        os.utime(seg.log.path, (old, old))
    assert log.delete_old_segments() == len(log.segments) - 1 or len(log.segments) == 1


def test_retention_task_skips_a_log_being_cleaned(tmp_path):
    async def run():
        mgr = LogManager([str(tmp_path / "d")], clock=lambda: 10 ** 9)
        await asyncio.get_running_loop().run_in_executor(None, mgr.startup)
        cfg = LogConfig(segment_bytes=1000, retention_ms=1)
        a = mgr.get_or_create_log("a", 0, config=cfg)
        b = mgr.get_or_create_log("b", 0, config=cfg)
        for log in (a, b):
            for i in range(10):
                await log.append(batch(1, size=300, ts=1000 + i, tag=i))
        mgr.cleaner.in_progress[("b", 0)] = object()
        mgr.start_background(retention_check_s=0.05, initial_delay_s=0)
        for _ in range(100):
            if a.log_start_offset == 10:
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.1)
        assert a.log_start_offset == 10 and b.log_start_offset == 0
        mgr.cleaner.in_progress.clear()
        await mgr.shutdown()
    asyncio.run(run())
    # the start is the first segment's base: Kafka checkpoints a start only above it
    logs = sorted(n for n in os.listdir(tmp_path / "d" / "a-0") if n.endswith(".log"))
    assert logs == ["00000000000000000010.log"]
    assert "00000000000000000000.log" in os.listdir(tmp_path / "d" / "b-0")


def test_preallocate_reserves_blocks_and_roll_gives_them_back(tmp_path):
    cfg = LogConfig(segment_bytes=4 << 20, preallocate=True)
    log = open_log("disk", tmp_path, cfg)
    log.append_as_leader(batch(1, size=300))
    active = log.active_segment.log
    if not active.preallocated:
        pytest.skip("the file system cannot preallocate (fallocate KEEP_SIZE)")
    st = os.fstat(active.fd)
    assert st.st_size == active.size and st.st_blocks * 512 >= 4 << 20
    log.roll()
    st = os.fstat(active.fd)
    assert st.st_blocks * 512 < 1 << 20 and st.st_size == active.size
    assert log.read(0, 10_000).tobytes()                    # data intact
