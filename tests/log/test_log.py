"""Log behaviour on disk and in memory (same tests, parametrized): append, read, roll, indexes,
offsets by timestamp and epoch, truncation, retention, the async writer and its three offsets."""
import asyncio
import os
import time

import pytest

from pybroker.codec import records
from pybroker.log import (
    EARLIEST_TIMESTAMP, LATEST_TIMESTAMP, MAX_TIMESTAMP, FetchIsolation, KafkaStorageError, LogConfig,
    OffsetOutOfRangeError, ThreadedWriter)
from pybroker.log.segment import RollParams
from log_helpers import all_batches, batch, open_log


def test_append_assigns_offsets_and_reads_back_byte_exact(storage, tmp_path):
    log = open_log(storage, tmp_path)
    sent = [batch(3, ts=1000 + 10 * i, tag=i) for i in range(20)]
    infos = [log.append_as_leader(bytearray(b), leader_epoch=5) for b in sent]
    assert [(i.first_offset, i.last_offset) for i in infos] == [(3 * k, 3 * k + 2) for k in range(20)]
    assert infos[-1].max_timestamp == 1192 and infos[-1].log_append_time == -1
    assert infos[-1].records_count == 3 and infos[-1].valid_bytes == len(sent[-1])
    assert log.log_end_offset == log.high_watermark == log.stable_offset == 60
    got = all_batches(log)
    assert [(b, l) for b, l, _ in got] == [(3 * k, 3 * k + 2) for k in range(20)]
    for (base, _, raw), original in zip(got, sent):
        view = records.RecordBatch(raw)
        view.validate()
        assert view.partition_leader_epoch == 5
        assert raw[12 + 4:] == bytes(original[12 + 4:])    # everything but offset/epoch untouched


def test_log_append_time_stamps_batches(storage, tmp_path):
    log = open_log(storage, tmp_path, LogConfig(message_timestamp_type="LogAppendTime"), clock=lambda: 77_000)
    info = log.append_as_leader(batch(2, ts=5))
    assert info.log_append_time == 77_000 and info.max_timestamp == 77_000
    (_, _, raw), = all_batches(log)
    view = records.RecordBatch(raw)
    view.validate()
    assert view.timestamp_type == 1 and view.max_timestamp == 77_000


def test_roll_by_size_and_reads_across_segments(storage, tmp_path):
    log = open_log(storage, tmp_path, LogConfig(segment_bytes=2000, index_interval_bytes=300))
    for i in range(40):
        log.append_as_leader(batch(2, size=200, tag=i))
    bases = [s.base_offset for s in log.segments]
    assert len(bases) > 3 and bases[0] == 0
    assert all(s.size <= 2000 for s in log.segments)
    for seg, nxt in zip(log.segments, bases[1:]):
        assert seg.read_next_offset() == nxt                # no gaps, no overlap
        assert seg.offset_index.entries >= 1                # indexed every ~300 bytes
    for offset in range(0, 80):
        data = log.read(offset, 1).tobytes()                # min_one_message: the whole batch
        view = records.RecordBatch(data)
        assert view.base_offset <= offset <= view.last_offset and len(data) == view.size
    if storage == "disk":
        names = sorted(os.listdir(log.dir_path))
        assert f"{bases[1]:020d}.log" in names and f"{bases[1]:020d}.index" in names


def test_index_entries_follow_kafka_interval_rule(storage, tmp_path):
    log = open_log(storage, tmp_path, LogConfig(index_interval_bytes=1000))
    sizes = []
    for i in range(12):
        sizes.append(log.append_as_leader(batch(1, size=400, tag=i)).valid_bytes)
    seg = log.active_segment
    expected, since, pos = [], 0, 0
    for offset, size in enumerate(sizes):
        if since > 1000:
            expected.append((offset, pos))
            since = 0
        since += size
        pos += size
    assert [seg.offset_index.entry(i) for i in range(seg.offset_index.entries)] == expected
    assert expected and expected[0][1] > 0                  # the first batch never gets an entry


def test_roll_by_time_uses_message_timestamps(storage, tmp_path):
    now = [1_000_000]
    log = open_log(storage, tmp_path, LogConfig(segment_ms=100), clock=lambda: now[0])
    log.append_as_leader(batch(1, ts=5000))
    log.append_as_leader(batch(1, ts=5100))                 # waited exactly segment.ms: no roll
    assert len(log.segments) == 1
    log.append_as_leader(batch(1, ts=5101))
    assert [s.base_offset for s in log.segments] == [0, 2]


def test_roll_when_index_full_and_on_offset_overflow(storage, tmp_path):
    log = open_log(storage, tmp_path, LogConfig(segment_index_bytes=8 * 3, index_interval_bytes=0))
    for i in range(8):
        log.append_as_leader(batch(1, tag=i))
    assert len(log.segments) >= 2
    assert all(s.offset_index.entries <= 3 for s in log.segments)
    seg = open_log(storage, tmp_path, name="other-0").active_segment
    params = RollParams(10**12, 10**12, 0, seg.base_offset + 2**31, 100, 0)
    assert seg.should_roll(params)                          # relative offset would not fit in 32 bits
    ok = RollParams(10**12, 10**12, 0, seg.base_offset + 2**31 - 1, 100, 0)
    assert not seg.should_roll(ok)


def test_read_bounds_and_min_one_message(storage, tmp_path):
    log = open_log(storage, tmp_path)
    sizes = [log.append_as_leader(batch(4, size=500, tag=i)).valid_bytes for i in range(5)]
    assert log.read(5, 10).size == sizes[1]                 # larger than max_bytes: one whole batch
    partial = log.read(5, 10, min_one_message=False)         # Kafka: a cut first batch, flagged
    assert partial.size == 10 and partial.first_entry_incomplete
    assert log.read(5, 0, min_one_message=False).size == 0
    cut = log.read(4, sizes[1] + 100)
    assert cut.size == sizes[1] + 100 and cut.fetch_offset_metadata.relative_position_in_segment == sizes[0]
    assert log.read(20, 1000).size == 0                     # at the log end: empty
    with pytest.raises(OffsetOutOfRangeError):
        log.read(21, 1000)
    log.maybe_increment_log_start_offset(8)
    with pytest.raises(OffsetOutOfRangeError):
        log.read(7, 1000)
    assert records.RecordBatch(log.read(8, 1).tobytes()).base_offset == 8


def test_fetch_offset_by_timestamp(storage, tmp_path):
    log = open_log(storage, tmp_path, LogConfig(segment_bytes=1500, index_interval_bytes=200))
    for i in range(30):
        log.append_as_leader(batch(3, ts=10_000 + 100 * i, tag=i), leader_epoch=i // 10)
    earliest = log.fetch_offset_by_timestamp(EARLIEST_TIMESTAMP)
    assert (earliest.offset, earliest.timestamp, earliest.leader_epoch) == (0, -1, 0)
    latest = log.fetch_offset_by_timestamp(LATEST_TIMESTAMP)
    assert (latest.offset, latest.leader_epoch) == (90, 2)
    top = log.fetch_offset_by_timestamp(MAX_TIMESTAMP)
    assert (top.timestamp, top.offset) == (10_000 + 2900 + 2, 89)
    hit = log.fetch_offset_by_timestamp(10_000 + 1700 + 1)        # second record of batch 17
    assert (hit.offset, hit.timestamp, hit.leader_epoch) == (52, 11_701, 1)
    hit = log.fetch_offset_by_timestamp(10_000 + 1703)            # between batches: next batch's first
    assert (hit.offset, hit.timestamp) == (54, 11_800)
    assert log.fetch_offset_by_timestamp(0).offset == 0
    assert log.fetch_offset_by_timestamp(10**13) is None
    assert log.fetch_offset_by_timestamp(11_800, max_offset=54) is None   # at/after the cap


def test_end_offset_for_epoch(storage, tmp_path):
    log = open_log(storage, tmp_path)
    for epoch in (1, 1, 3, 3, 3):
        log.append_as_leader(batch(2), leader_epoch=epoch)
    assert log.leader_epoch_cache.entries == [(1, 0), (3, 4)]
    assert log.end_offset_for_epoch(3) == (3, 10)
    assert log.end_offset_for_epoch(1) == (1, 4)
    assert log.end_offset_for_epoch(2) == (1, 4)
    assert log.end_offset_for_epoch(0) == (0, 0)
    assert log.end_offset_for_epoch(4) == (-1, -1)
    assert log.end_offset_for_epoch(-1) == (-1, -1)


def test_truncate_to_removes_later_segments_and_continues(storage, tmp_path):
    log = open_log(storage, tmp_path, LogConfig(segment_bytes=1200, index_interval_bytes=100))
    for i in range(20):
        log.append_as_leader(batch(2, size=300, tag=i), leader_epoch=1 if i < 10 else 2)
    before = all_batches(log)
    assert log.truncate_to_drained(14)
    assert log.log_end_offset == 14 == log.high_watermark
    assert all_batches(log) == before[:7]
    assert log.leader_epoch_cache.entries == [(1, 0)]
    assert log.segments[-1].base_offset <= 14 and all(s.base_offset <= 14 for s in log.segments)
    info = log.append_as_leader(batch(2, tag=99), leader_epoch=3)
    assert info.first_offset == 14
    assert all_batches(log)[-1][0] == 14
    assert not log.truncate_to_drained(100)


def test_truncate_fully_and_start_at(storage, tmp_path):
    log = open_log(storage, tmp_path)
    for i in range(5):
        log.append_as_leader(batch(2, tag=i))
    log.truncate_fully_and_start_at(100)
    assert (log.log_start_offset, log.log_end_offset, log.high_watermark) == (100, 100, 100)
    assert log.append_as_leader(batch(1)).first_offset == 100
    assert [b for b, _, _ in all_batches(log)] == [100]


def test_retention_by_size_and_time(storage, tmp_path):
    now = [50_000]
    cfg = LogConfig(segment_bytes=1000, retention_bytes=2500, retention_ms=10_000)
    log = open_log(storage, tmp_path, cfg, clock=lambda: now[0])
    for i in range(30):
        log.append_as_leader(batch(1, size=300, ts=40_000 + i, tag=i))
    total_before = log.size
    deleted = log.delete_old_segments()
    assert deleted > 0 and log.size < total_before
    assert log.size - log.active_segment.size < 2500
    assert log.log_start_offset == log.segments[0].base_offset > 0
    with pytest.raises(OffsetOutOfRangeError):
        log.read(0, 100)
    now[0] = 40_000 + 10_000 + 100                          # everything is now too old
    log.delete_old_segments()
    assert len(log.segments) == 1 and log.active_segment.size == 0   # rolled, then deleted
    assert log.log_start_offset == log.log_end_offset == 30
    assert log.append_as_leader(batch(1, ts=now[0])).first_offset == 30


def test_threaded_writer_concurrent_appends(storage, tmp_path):
    async def main():
        writer = ThreadedWriter()
        try:
            log = open_log(storage, tmp_path, LogConfig(segment_bytes=20_000), writer=writer)
            sent = [batch(2, size=700, tag=i) for i in range(60)]
            infos = await asyncio.gather(*(log.append(bytearray(b)) for b in sent))
            assert sorted(i.first_offset for i in infos) == list(range(0, 120, 2))
            assert [i.first_offset for i in infos] == list(range(0, 120, 2))   # call order kept
            assert log.dirty_offset == log.stable_offset == log.high_watermark == 120
            got = all_batches(log)
            assert [raw[17:] for _, _, raw in got] == [bytes(b[17:]) for b in sent]
            await log.close()
        finally:
            writer.close()
    asyncio.run(main())


def test_unwritten_offsets_are_not_readable(tmp_path):
    async def main():
        writer = ThreadedWriter()
        try:
            log = open_log("disk", tmp_path, writer=writer)
            info = log.append_nowait(batch(2))
            assert log.dirty_offset == 2
            if log.stable_offset < 2:                      # the writer thread has not run yet
                assert log.read(0, 1000).size == 0
            await log.wait_written(info.last_offset + 1)
            assert log.stable_offset == 2 and log.read(0, 1000).size == len(batch(2))
            assert log.flushed_offset == 0
            await log.flush()
            assert log.flushed_offset == log.recovery_point == 2
            await log.close()
        finally:
            writer.close()
    asyncio.run(main())


class _HeldWriter:
    """Holds every write until the test releases it, in any order: UringWriter completes the
    writes of different files (two segments) in either order. Calls run at once."""
    is_async = False

    def __init__(self):
        self.held = []

    def submit_write(self, fd, data, position, done):
        self.held.append((fd, bytes(data), position, done))

    def submit_call(self, fn, done):
        fn()
        done(None)

    submit_side_call = submit_call

    def release(self, i):
        fd, data, position, done = self.held[i]
        os.pwrite(fd, data, position)
        done(None)

    def drain(self):
        pass

    async def adrain(self):
        pass

    def close(self):
        pass


def test_writes_completing_out_of_order_become_readable_in_offset_order(tmp_path):
    async def main():
        writer = _HeldWriter()
        log = open_log("disk", tmp_path, LogConfig(segment_bytes=1500), writer=writer)
        sent = [batch(2, size=1000, tag=i) for i in range(4)]
        for b in sent:
            log.append_nowait(bytearray(b))
        assert [s.base_offset for s in log.segments] == [0, 2, 4, 6]    # one batch per segment
        assert len(writer.held) == 4 and log.dirty_offset == 8
        readable = []
        for i in (3, 1, 0, 2):                  # the last segment's write completes first
            writer.release(i)
            readable.append((log.stable_offset, log.high_watermark, len(all_batches(log))))
        assert readable == [(0, 0, 0), (0, 0, 0), (4, 4, 2), (8, 8, 4)]
        assert [raw[17:] for _, _, raw in all_batches(log)] == [bytes(b[17:]) for b in sent]
        writer.held.clear()
        log.close_sync()
    asyncio.run(main())


def test_flush_messages_one_fsyncs_every_append(tmp_path):
    async def main():
        writer = ThreadedWriter()
        try:
            log = open_log("disk", tmp_path, LogConfig(flush_messages=1), writer=writer)
            info = await log.append(batch(3))
            assert info.flush and log.flushed_offset == log.recovery_point == 3
            await log.close()
        finally:
            writer.close()
    asyncio.run(main())


def test_write_error_takes_the_log_offline(tmp_path):
    async def main():
        writer = ThreadedWriter()
        try:
            offline = []
            log = open_log("disk", tmp_path, writer=writer, on_offline=lambda lg, exc: offline.append(exc))
            await log.append(batch(1))
            seg = log.active_segment
            os.close(seg.log.fd)                            # the next pwrite fails with EBADF
            with pytest.raises(KafkaStorageError) as err:
                await log.append(batch(1))
            assert err.value.error_code == 56 and isinstance(offline[0], OSError)
            with pytest.raises(KafkaStorageError):
                log.read(0, 100)
            with pytest.raises(KafkaStorageError):
                log.append_nowait(batch(1))
            seg.log.fd = -1
        finally:
            writer.close()
    asyncio.run(main())


def test_isolation_bounds(storage, tmp_path):
    log = open_log(storage, tmp_path, replicated=True)
    for i in range(4):
        log.append_as_leader(batch(2, tag=i))
    assert log.high_watermark == 0                          # replicated: the replica manager moves it
    assert log.read(0, 10_000).size == 0
    assert log.read(0, 10_000, isolation=FetchIsolation.LOG_END).size > 0
    log.update_high_watermark(4)
    data = log.read(0, 10_000).tobytes()
    assert [b.base_offset for b in records.iter_batches(data)] == [0, 2]
    assert log.last_stable_offset == 4
    assert log.update_high_watermark(100) == 8


def test_slow_disk_does_not_block_the_event_loop(tmp_path, monkeypatch):
    import time
    from pybroker.log import writer as writer_mod
    real = writer_mod._pwritev_all, writer_mod._pwrite_all

    def slow_vec(fd, bufs, pos):
        time.sleep(0.05)
        real[0](fd, bufs, pos)

    def slow_one(fd, data, pos):
        time.sleep(0.05)
        real[1](fd, data, pos)
    monkeypatch.setattr(writer_mod, "_pwritev_all", slow_vec)
    monkeypatch.setattr(writer_mod, "_pwrite_all", slow_one)

    async def main():
        writer = ThreadedWriter()
        try:
            log = open_log("disk", tmp_path, writer=writer)
            ticks = []

            async def ticker():
                while True:
                    ticks.append(time.perf_counter())
                    await asyncio.sleep(0.002)
            tick = asyncio.ensure_future(ticker())
            t0 = time.perf_counter()
            pending = [log.append(batch(2, tag=i)) for i in range(3)]
            waiting = asyncio.gather(*pending)
            await asyncio.sleep(0)
            queued_in = time.perf_counter() - t0
            await waiting
            elapsed = time.perf_counter() - t0
            tick.cancel()
            gaps = [b - a for a, b in zip(ticks, ticks[1:])]
            assert elapsed >= 0.05 and queued_in < 0.04       # the write took 50 ms, queuing did not
            assert len(ticks) >= 10 and max(gaps) < 0.04      # the loop kept running meanwhile
            assert log.stable_offset == 6
            await log.close()
        finally:
            writer.close()
    asyncio.run(main())


@pytest.mark.parametrize("kind", ["uring", "thread"])
def test_a_rolls_fsync_does_not_hold_up_appends(tmp_path, monkeypatch, kind):
    # Kafka flushes a rolled segment asynchronously. Stand-in for the fsync of a 1 GiB segment:
    # one that takes 0.6 s. Appends to the new segment keep completing meanwhile, and the
    # recovery point reaches the roll once the fsync is done.
    from pybroker.log.file_records import FileRecords
    from pybroker.log.uring_writer import new_writer

    real_flush = FileRecords.flush
    synced = []

    def slow_flush(self):
        time.sleep(0.6)
        real_flush(self)
        synced.append(self.path)
    monkeypatch.setattr(FileRecords, "flush", slow_flush)

    async def main():
        writer = new_writer(kind)
        try:
            log = open_log("disk", tmp_path, LogConfig(segment_bytes=3000), writer=writer)
            while len(log.segments) < 2:
                await log.append(batch(2, size=700))
            rolled_at = log.segments[1].base_offset
            assert log.recovery_point < rolled_at
            loop = asyncio.get_running_loop()
            worst = 0.0
            for i in range(20):
                t0 = loop.time()
                await log.append(batch(1, size=100, tag=i))
                worst = max(worst, loop.time() - t0)
            assert worst < 0.3, worst
            assert not synced                              # the fsync was still running
            for _ in range(100):
                if log.recovery_point >= rolled_at:
                    break
                await asyncio.sleep(0.02)
            assert log.recovery_point >= rolled_at and synced
            await log.close()
        finally:
            writer.close()
    asyncio.run(main())


@pytest.mark.parametrize("kind", ["uring", "thread"])
def test_epoch_cache_and_dir_checkpoints_do_not_hold_up_appends(tmp_path, monkeypatch, kind):
    # Stand-in for fsyncs of small files under a GiB of dirty page cache (30-280 ms measured):
    # atomic file writes that wait for a gate. The first append of a new leader epoch queues the
    # leader-epoch checkpoint, and the manager writes its three offset checkpoints; appends of
    # the dir go on meanwhile, and the files land once the gate opens.
    import threading

    from pybroker.log import LogManager, checkpoint
    from pybroker.log.checkpoint import LEADER_EPOCH_CHECKPOINT
    from pybroker.log.uring_writer import unavailable_reason

    if kind == "uring" and unavailable_reason() is not None:
        pytest.skip(unavailable_reason())
    gate, real = threading.Event(), checkpoint.write_atomic
    pending = []

    def gated(path, data, fsync=True):
        pending.append(os.path.basename(path))
        gate.wait(10)
        real(path, data, fsync)

    async def main():
        manager = LogManager([str(tmp_path / "data")], writer=kind)
        manager.startup()
        try:
            log = manager.get_or_create_log("t", 0)
            monkeypatch.setattr("pybroker.log.log.write_atomic", gated)
            monkeypatch.setattr(checkpoint, "write_atomic", gated)
            loop = asyncio.get_running_loop()
            checkpointing = asyncio.ensure_future(manager.checkpoint())
            t0 = loop.time()
            for i in range(20):
                await log.append(batch(1, size=100, tag=i), leader_epoch=3)
            assert loop.time() - t0 < 5 and log.high_watermark == 20
            assert LEADER_EPOCH_CHECKPOINT in pending and not checkpointing.done()
            gate.set()
            await checkpointing
            await log.writer.adrain()
            with open(os.path.join(log.dir_path, LEADER_EPOCH_CHECKPOINT)) as f:
                assert f.read().split() == ["0", "1", "3", "0"]
        finally:
            gate.set()
            await manager.shutdown()
    asyncio.run(main())
