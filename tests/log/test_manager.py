"""LogManager: log dirs, lock, meta.properties, clean-shutdown marker, checkpoints, partition
creation and deletion, restarts, offline dirs, and the in-memory storage through the same API."""
import asyncio
import os
import threading
import time

import pytest

from pybroker.log import KafkaStorageError, LogConfig, LogManager
from pybroker.log.checkpoint import OffsetCheckpointFile
from pybroker.log.errors import InconsistentTopicIdError, LogDirOfflineError
from log_helpers import all_batches, batch

TOPIC_ID = "Fg7WbZ7tQtWS6Y1ZQz0b0A"


def _manager(dirs, **kw):
    kw.setdefault("config", LogConfig(segment_bytes=1000))
    return LogManager([str(d) for d in dirs], **kw)


def test_startup_creates_dir_files_and_shutdown_writes_checkpoints(tmp_path):
    async def main():
        mgr = _manager([tmp_path / "a"], node_id=3, cluster_id="Q2x1c3RlcklkLTEyMzQ1Ng")
        mgr.startup()
        d = tmp_path / "a"
        assert (d / ".lock").exists() and not (d / ".kafka_cleanshutdown").exists()
        props = dict(line.split("=", 1) for line in (d / "meta.properties").read_text().splitlines()
                     if not line.startswith("#"))
        assert props["node.id"] == "3" and props["cluster.id"] == "Q2x1c3RlcklkLTEyMzQ1Ng"
        assert props["version"] == "1" and len(props["directory.id"]) == 22
        log = mgr.get_or_create_log("orders", 2, topic_id=TOPIC_ID)
        for i in range(12):
            await log.append(batch(2, size=200, tag=i))
        log.maybe_increment_log_start_offset(4)
        end = log.log_end_offset
        await mgr.shutdown()
        assert (d / ".kafka_cleanshutdown").read_bytes() == b'{"broker_epoch":"-1","version":"0"}'
        assert (d / "recovery-point-offset-checkpoint").read_bytes() == f"0\n1\norders 2 {end}\n".encode()
        assert (d / "replication-offset-checkpoint").read_bytes() == f"0\n1\norders 2 {end}\n".encode()
        assert (d / "log-start-offset-checkpoint").read_bytes() == b"0\n1\norders 2 4\n"
        assert (d / "orders-2" / "partition.metadata").read_bytes() == f"version: 0\ntopic_id: {TOPIC_ID}".encode()
        return end
    end = asyncio.run(main())

    mgr = _manager([tmp_path / "a"], node_id=3, writer="sync")
    mgr.startup()
    assert mgr.cluster_id == "Q2x1c3RlcklkLTEyMzQ1Ng"
    assert not (tmp_path / "a" / ".kafka_cleanshutdown").exists()      # deleted at startup
    log = mgr.get_log("orders", 2)
    assert (log.log_end_offset, log.log_start_offset, log.topic_id) == (end, 4, None)
    assert log.load_report == []
    with pytest.raises(InconsistentTopicIdError):
        log.assign_topic_id("AAAAAAAAAAAAAAAAAAAAAQ")
    mgr.shutdown_sync()


def test_second_manager_on_a_locked_dir_is_refused(tmp_path):
    first = _manager([tmp_path / "a", tmp_path / "b"], writer="sync")
    first.startup()
    with pytest.raises(KafkaStorageError):
        _manager([tmp_path / "a"], writer="sync").startup()          # its only dir is locked
    second = _manager([tmp_path / "a", tmp_path / "c"], writer="sync")
    second.startup()
    assert second.offline_dirs == [str(tmp_path / "a")]
    assert os.path.dirname(second.get_or_create_log("t", 0).dir_path) == str(tmp_path / "c")
    second.shutdown_sync()
    first.shutdown_sync()


def test_partitions_spread_over_dirs_and_deletion_renames_then_removes(tmp_path):
    async def main():
        mgr = _manager([tmp_path / "a", tmp_path / "b"],
                       config=LogConfig(segment_bytes=1000, file_delete_delay_ms=50))
        mgr.startup()
        logs = [mgr.get_or_create_log("t", p) for p in range(4)]
        assert sorted(os.path.dirname(lg.dir_path) for lg in logs) == \
            sorted([str(tmp_path / "a")] * 2 + [str(tmp_path / "b")] * 2)
        await logs[1].append(batch(3))
        assert await mgr.delete_log("t", 1)
        assert mgr.get_log("t", 1) is None
        parent = os.path.dirname(logs[1].dir_path)
        assert logs[1].dir_path.endswith("-delete") and "t-1." in logs[1].dir_path
        assert [n for n in os.listdir(parent) if n.startswith("t-1")] == \
            [os.path.basename(logs[1].dir_path)]                # renamed, kept file.delete.delay.ms
        await asyncio.sleep(0.3)                                 # the delay is 50 ms here
        assert not any(n.startswith("t-1") for n in os.listdir(parent))
        await mgr.shutdown()
    asyncio.run(main())


def test_deleting_many_partitions_checkpoints_each_dir_once(tmp_path, monkeypatch):
    # three fsynced files and a dir fsync per partition made a 256-partition deletion take seconds
    from pybroker.log import checkpoint
    from pybroker.log.checkpoint import RECOVERY_POINT_CHECKPOINT

    async def main():
        mgr = _manager([tmp_path / "a", tmp_path / "b"])
        mgr.startup()
        doomed = [mgr.get_or_create_log("t", p) for p in range(8)]
        kept = [mgr.get_or_create_log("k", p) for p in range(2)]
        for log in doomed + kept:
            await log.append(batch(2))
        await mgr.checkpoint()
        writes = []
        real = checkpoint.write_atomic

        def counted(path, data):
            writes.append(os.path.dirname(path))
            real(path, data)
        monkeypatch.setattr(checkpoint, "write_atomic", counted)
        assert await mgr.delete_logs("t", range(8)) == 8
        assert sorted(writes) == sorted([str(tmp_path / "a")] * 3 + [str(tmp_path / "b")] * 3)
        assert await mgr.delete_logs("t", range(8)) == 0
        for d in ("a", "b"):
            named = OffsetCheckpointFile(str(tmp_path / d / RECOVERY_POINT_CHECKPOINT)).read()
            assert all(topic == "k" for topic, _ in named)
        assert sorted(mgr.all_logs()) == [("k", 0), ("k", 1)]
        await mgr.shutdown()
    asyncio.run(main())


def test_shutdown_leaves_a_pending_deletion_to_the_next_start_up(tmp_path):
    # Kafka's way: until file.delete.delay.ms has passed, a deleted log's files stay linked, so a
    # shutdown does not wait for the kernel to free their page cache (0.1 s per GiB), neither in
    # the reaper nor at process exit; the next start-up removes the renamed dir.
    async def main():
        mgr = _manager([tmp_path / "a"], config=LogConfig(segment_bytes=1000, file_delete_delay_ms=60_000))
        mgr.startup()
        log = mgr.get_or_create_log("t", 0)
        await log.append(batch(3))
        assert await mgr.delete_log("t", 0)
        doomed = log.dir_path
        await mgr.shutdown()
        return doomed
    doomed = asyncio.run(main())
    assert doomed.endswith("-delete") and any(n.endswith(".log") for n in os.listdir(doomed))
    again = _manager([tmp_path / "a"], writer="sync")
    again.startup()
    assert not os.path.exists(doomed) and again.all_logs() == {}
    again.shutdown_sync()


def test_leftover_delete_dirs_are_removed_at_startup(tmp_path):
    leftover = tmp_path / "a" / "t-0.0123456789abcdef0123456789abcdef-delete"
    leftover.mkdir(parents=True)
    (leftover / "00000000000000000000.log").write_bytes(b"x")
    mgr = _manager([tmp_path / "a"], writer="sync")
    mgr.startup()
    assert not leftover.exists() and mgr.all_logs() == {}
    mgr.shutdown_sync()


def test_unclean_restart_recovers_from_checkpointed_recovery_point(tmp_path):
    async def main():
        mgr = _manager([tmp_path / "a"])
        mgr.startup()
        log = mgr.get_or_create_log("t", 0)
        for i in range(10):
            await log.append(batch(2, size=200, tag=i))
        await log.flush()
        await mgr.checkpoint()
        rp = log.recovery_point
        for i in range(10, 14):
            await log.append(batch(2, size=200, tag=i))
        expected = all_batches(log)
        await log.writer.adrain()
        mgr.abandon()                                                      # crash
        return rp, expected
    rp, expected = asyncio.run(main())
    cp = OffsetCheckpointFile(str(tmp_path / "a" / "recovery-point-offset-checkpoint")).read()
    assert cp == {("t", 0): rp} and rp == 20
    mgr = _manager([tmp_path / "a"], writer="sync")
    mgr.startup()
    log = mgr.get_log("t", 0)
    assert all_batches(log) == expected and log.recovery_point == rp
    mgr.shutdown_sync()


def test_io_error_takes_the_whole_dir_offline(tmp_path):
    async def main():
        mgr = _manager([tmp_path / "a", tmp_path / "b"])
        mgr.startup()
        l0, l1 = mgr.get_or_create_log("t", 0), mgr.get_or_create_log("t", 1)
        await l0.append(batch(1))
        bad_dir = os.path.dirname(l0.dir_path)
        fd = l0.active_segment.log.fd
        os.close(fd)
        with pytest.raises(KafkaStorageError):
            await l0.append(batch(1))
        l0.active_segment.log.fd = -1
        assert mgr.offline_dirs == [bad_dir]
        with pytest.raises(LogDirOfflineError):
            mgr.get_log("t", 0)
        assert (await l1.append(batch(1))).first_offset == 0               # the other dir works
        await mgr.shutdown()
        assert not os.path.exists(os.path.join(bad_dir, ".kafka_cleanshutdown"))
        assert os.path.exists(os.path.join(os.path.dirname(l1.dir_path), ".kafka_cleanshutdown"))
    asyncio.run(main())


def test_memory_storage_same_interface(tmp_path):
    async def main():
        mgr = LogManager(storage="memory", config=LogConfig(segment_bytes=1000))
        mgr.startup()
        log = mgr.get_or_create_log("t", 0, topic_id=TOPIC_ID)
        infos = [await log.append(batch(2, size=200, tag=i)) for i in range(10)]
        assert [i.first_offset for i in infos] == list(range(0, 20, 2))
        assert len(log.segments) > 1 and isinstance(log.read(0, 100).records, memoryview)
        assert len(all_batches(log)) == 10
        assert await mgr.delete_log("t", 0) and mgr.get_log("t", 0) is None
        await mgr.shutdown()
        assert list(tmp_path.iterdir()) == []
    asyncio.run(main())


def test_background_tasks_checkpoint_periodically(tmp_path):
    async def main():
        mgr = _manager([tmp_path / "a"], config=LogConfig(flush_ms=0))
        mgr.startup()
        log = mgr.get_or_create_log("t", 0)
        await log.append(batch(2))
        mgr.start_background(checkpoint_interval_s=0.05, flush_check_s=0.01)
        for _ in range(100):
            await asyncio.sleep(0.02)
            cp = OffsetCheckpointFile(str(tmp_path / "a" / "recovery-point-offset-checkpoint")).read()
            if cp.get(("t", 0)) == 2:
                break
        assert cp == {("t", 0): 2} and log.flushed_offset == 2
        await mgr.shutdown()
    asyncio.run(main())


@pytest.mark.parametrize("writer", ["uring", "thread"])
def test_closing_deleted_files_stalls_neither_the_loop_nor_appends(tmp_path, monkeypatch, writer):
    # Closing the last descriptor of a big unlinked file frees its page cache inside close()
    # (0.1 s per GiB). Stand-in: a close that takes 0.6 s. While the deleted topic's and the
    # retention-deleted segment's files close, the loop keeps ticking and another log's appends
    # complete, and the closes ran on the reaper thread.
    from pybroker.log.file_records import FileRecords

    slow_threads = []
    real_close = FileRecords.close

    def slow_close(self):
        if self.fd >= 0 and self.path and ("-delete" in self.path or self.path.endswith(".deleted")):
            slow_threads.append(threading.current_thread().name)
            time.sleep(0.6)
        real_close(self)
    monkeypatch.setattr(FileRecords, "close", slow_close)

    async def main():
        cfg = LogConfig(segment_bytes=1000, retention_bytes=1500, file_delete_delay_ms=50)
        mgr = LogManager([str(tmp_path / "a")], config=cfg, writer=writer)
        mgr.startup()
        doomed, aged, busy = (mgr.get_or_create_log(t, 0) for t in ("doomed", "aged", "busy"))
        for i in range(6):
            await doomed.append(batch(2, size=200, tag=i))
            await aged.append(batch(2, size=200, tag=i))
        assert await mgr.delete_log("doomed", 0)
        assert aged.delete_old_segments() >= 1
        loop = asyncio.get_running_loop()
        worst_tick, worst_append, t_end = 0.0, 0.0, loop.time() + 1.5
        i = 0
        while loop.time() < t_end:
            t0 = loop.time()
            await asyncio.sleep(0.01)
            worst_tick = max(worst_tick, loop.time() - t0 - 0.01)
            t0 = loop.time()
            await busy.append(batch(1, size=100, tag=i))
            worst_append = max(worst_append, loop.time() - t0)
            i += 1
        await mgr.shutdown()
        return worst_tick, worst_append

    worst_tick, worst_append = asyncio.run(main())
    assert len(slow_threads) >= 2, slow_threads                 # the log's and a segment's file
    assert all(name.startswith("pybroker-file-reaper") for name in slow_threads), slow_threads
    assert worst_tick < 0.3 and worst_append < 0.3, (worst_tick, worst_append)
