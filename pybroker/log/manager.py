"""LogManager: the log dirs (`log.dirs`), every partition log in them, checkpoints and shutdown.

Per log dir: `.lock` (flock, held while running), `meta.properties`, `.kafka_cleanshutdown`
(read and deleted at startup, written at clean shutdown), `recovery-point-offset-checkpoint`,
`log-start-offset-checkpoint`, `replication-offset-checkpoint`, `cleaner-offset-checkpoint` (the
log cleaner's progress, pybroker/log/cleaner.py). Partition logs live in
`<dir>/<topic>-<partition>`; deleting one renames it to `<topic>-<partition>.<uuid>-delete` and
removes it file.delete.delay.ms later (or at the next start-up). One writer (thread) per log dir.
An I/O error in a dir takes the whole dir offline: its logs answer KAFKA_STORAGE_ERROR; a log
found corrupt at load is offline on its own.

`storage="memory"` keeps every log in memory with the same interface (nothing touches a disk).
"""
import asyncio
import concurrent.futures
import fcntl
import logging
import os
import re
import shutil
import time
import uuid

from pybroker.log.cleaner import CLEANER_OFFSET_CHECKPOINT, LogCleaner
from pybroker.log.checkpoint import (
    LOCK_FILE, LOG_START_OFFSET_CHECKPOINT, RECOVERY_POINT_CHECKPOINT, REPLICATION_OFFSET_CHECKPOINT,
    CleanShutdownFile, MetaProperties, OffsetCheckpointFile, random_uuid)
from pybroker.log.config import LogConfig
from pybroker.log.errors import (
    InconsistentClusterIdError, KafkaStorageError, LogDirOfflineError, LogError)
from pybroker.log.log import Log
from pybroker.log.writer import SyncWriter, ThreadedWriter

_log = logging.getLogger("pybroker.log")
_DELETE_DIR = re.compile(r"^(.+)-(\d+)\.([0-9a-f]{32})-delete$")
_PARTITION_DIR = re.compile(r"^(.+)-(\d+)$")


def parse_partition_dir(name):
    """(topic, partition) of `<topic>-<partition>`, or None for anything else."""
    m = _PARTITION_DIR.match(name)
    if m is None or "." in name.rsplit("-", 1)[1]:
        return None
    return m.group(1), int(m.group(2))


def _now_ms():
    return int(time.time() * 1000)


class LogDir:
    def __init__(self, path, writer):
        self.path = path
        self.writer = writer
        self.lock_fd = -1
        self.offline_reason = None
        self.had_clean_shutdown = False
        self.directory_id = None

    @property
    def online(self):
        return self.offline_reason is None


class LogManager:
    def __init__(self, log_dirs=(), *, config=None, node_id=1, cluster_id=None, storage="disk",
                 writer="thread", clock=_now_ms, broker_epoch=-1, replicated=False,
                 verify="structure"):
        if storage not in ("disk", "memory"):
            raise ValueError(f"storage must be 'disk' or 'memory', not {storage!r}")
        self.default_config = config or LogConfig()
        self.node_id = node_id
        self.cluster_id = cluster_id
        self.storage = storage
        self.clock = clock
        self.broker_epoch = broker_epoch
        self.replicated = replicated
        self.verify = verify
        self._writer_kind = writer
        self.dirs = [LogDir(os.path.abspath(d), None) for d in log_dirs] if storage == "disk" else []
        self.logs = {}                  # (topic, partition) -> Log
        self.log_dirs_of = {}           # (topic, partition) -> LogDir
        self.offline_logs = {}          # (topic, partition) -> KafkaStorageError
        self.topic_configs = {}         # topic -> LogConfig
        self._tasks = []
        self._deletes = set()           # pending _delete_later jobs
        self._reaper = None             # the thread that closes deleted files (made on first use)
        self._started = False
        self.cleaner = LogCleaner(self)
        if storage == "disk" and not self.dirs:
            raise ValueError("a disk LogManager needs at least one log dir")

    # ---- startup ----------------------------------------------------------------------------

    def startup(self):
        """Lock and load every log dir (blocking; run it before serving)."""
        for d in self.dirs:
            try:
                self._open_dir(d)
            except (OSError, LogError) as exc:
                self._dir_failed(d, exc)
        if self.dirs and not any(d.online for d in self.dirs):
            raise KafkaStorageError("no log dir could be opened: " + "; ".join(
                f"{d.path}: {d.offline_reason}" for d in self.dirs))
        for d in self.dirs:
            if d.online:
                self._load_dir(d)
        self.cleaner.load_checkpoints()
        self._started = True

    def _new_writer(self, d):
        if self._writer_kind == "sync":
            return SyncWriter()
        if self._writer_kind in ("uring", "thread"):
            from pybroker.log.uring_writer import new_writer  # falls back to threads without io_uring
            return new_writer(self._writer_kind, name=f"log-writer:{d.path}")
        return self._writer_kind()

    def _open_dir(self, d):
        os.makedirs(d.path, exist_ok=True)
        d.lock_fd = os.open(os.path.join(d.path, LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(d.lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            os.close(d.lock_fd)
            d.lock_fd = -1
            raise LogDirOfflineError(d.path, "locked by another process") from exc
        self._check_meta_properties(d)
        shutdown_file = CleanShutdownFile(d.path)
        d.had_clean_shutdown = shutdown_file.exists()
        shutdown_file.delete()
        d.writer = self._new_writer(d)

    def _check_meta_properties(self, d):
        meta = MetaProperties(d.path)
        props = meta.read()
        if props is None:
            if self.cluster_id is None:
                self.cluster_id = random_uuid()
            d.directory_id = random_uuid()
            meta.write({"version": "1", "node.id": str(self.node_id), "cluster.id": self.cluster_id,
                        "directory.id": d.directory_id})
            return
        if self.cluster_id is None:
            self.cluster_id = props.get("cluster.id")
        if props.get("cluster.id") != self.cluster_id:
            raise InconsistentClusterIdError(
                f"{d.path}: cluster.id {props.get('cluster.id')} does not match {self.cluster_id}")
        if props.get("node.id") not in (None, str(self.node_id)):
            raise LogDirOfflineError(d.path, f"node.id {props.get('node.id')} is not {self.node_id}")
        d.directory_id = props.get("directory.id")

    def _load_dir(self, d):
        recovery_points = OffsetCheckpointFile(os.path.join(d.path, RECOVERY_POINT_CHECKPOINT)).read()
        log_starts = OffsetCheckpointFile(os.path.join(d.path, LOG_START_OFFSET_CHECKPOINT)).read()
        high_watermarks = OffsetCheckpointFile(os.path.join(d.path, REPLICATION_OFFSET_CHECKPOINT)).read()
        for name in sorted(os.listdir(d.path)):
            path = os.path.join(d.path, name)
            if not os.path.isdir(path):
                continue
            if _DELETE_DIR.match(name):
                shutil.rmtree(path, ignore_errors=True)
                continue
            tp = parse_partition_dir(name)
            if tp is None:
                continue
            self._load_log(d, tp, path, recovery_points.get(tp, 0), log_starts.get(tp, 0),
                           high_watermarks.get(tp))

    def _load_log(self, d, tp, path, recovery_point, log_start, high_watermark):
        try:
            log = Log.open(path, tp[0], tp[1], self.config_for(tp[0]),
                           had_clean_shutdown=d.had_clean_shutdown, recovery_point=recovery_point,
                           log_start_offset=log_start, writer=d.writer, clock=self.clock,
                           replicated=self.replicated, on_offline=self._on_log_offline,
                           scheduler=self._delete_later, verify=self.verify)
        except KafkaStorageError as exc:
            _log.error("partition %s-%s is offline: %s", tp[0], tp[1], exc)
            self.offline_logs[tp] = exc
            self.log_dirs_of[tp] = d
            return
        if self.replicated and high_watermark is not None:
            log.update_high_watermark(high_watermark)
        self.logs[tp] = log
        self.log_dirs_of[tp] = d

    # ---- lookup and creation ----------------------------------------------------------------

    def config_for(self, topic):
        return self.topic_configs.get(topic, self.default_config)

    def set_topic_config(self, topic, config):
        """Topic overrides (a LogConfig); applies to logs opened afterwards and to open ones."""
        self.topic_configs[topic] = config
        for (t, _), log in self.logs.items():
            if t == topic:
                log.config = config

    def get_log(self, topic, partition):
        """The Log, or None when not hosted; raises KafkaStorageError when it is offline."""
        tp = (topic, partition)
        if tp in self.offline_logs:
            raise self.offline_logs[tp]
        d = self.log_dirs_of.get(tp)
        if d is not None and not d.online:
            raise LogDirOfflineError(d.path, d.offline_reason)
        return self.logs.get(tp)

    def get_or_create_log(self, topic, partition, *, config=None, topic_id=None):
        log = self.get_log(topic, partition)
        if log is not None:
            if topic_id is not None and log.topic_id is None:
                log.assign_topic_id(topic_id)
            if config is not None:          # a log loaded at startup takes its topic's configs
                self.topic_configs[topic] = config
                log.config = config
            return log
        if config is not None:
            self.topic_configs[topic] = config
        tp = (topic, partition)
        if self.storage == "memory":
            log = Log.open(None, topic, partition, self.config_for(topic), topic_id=topic_id,
                           clock=self.clock, replicated=self.replicated)
            self.logs[tp] = log
            return log
        d = self._next_log_dir()
        path = os.path.join(d.path, f"{topic}-{partition}")
        try:
            log = Log.open(path, topic, partition, self.config_for(topic), writer=d.writer,
                           topic_id=topic_id, clock=self.clock, replicated=self.replicated,
                           on_offline=self._on_log_offline, scheduler=self._delete_later)
        except OSError as exc:
            self._dir_failed(d, exc)
            raise LogDirOfflineError(d.path, str(exc)) from exc
        self.logs[tp] = log
        self.log_dirs_of[tp] = d
        return log

    def _next_log_dir(self):
        online = [d for d in self.dirs if d.online]
        if not online:
            raise KafkaStorageError("no log dir is online")
        counts = {d.path: 0 for d in online}
        for tp, d in self.log_dirs_of.items():
            if d.path in counts:
                counts[d.path] += 1
        return min(online, key=lambda d: (counts[d.path], d.path))

    def all_logs(self):
        return dict(self.logs)

    # ---- deletion -----------------------------------------------------------------------------

    async def delete_log(self, topic, partition):
        """Remove a partition: rename to `<topic>-<partition>.<uuid>-delete`, then delete."""
        return await self.delete_logs(topic, [partition]) == 1

    async def delete_logs(self, topic, partitions):
        """`delete_log` for several partitions of a topic, writing each log dir's checkpoints once
        at the end rather than once per partition: three fsynced files and a directory fsync per
        partition made deleting a 256-partition topic take seconds, and a shutdown right after
        waited for it. Returns how many logs were removed."""
        touched = {}  # log dir -> whether the cleaner checkpoint named one of the logs
        removed = 0
        try:
            for partition in partitions:
                try:
                    detached = await self._detach_log(topic, partition)
                except OSError as exc:  # the rest are still deleted; start-up finds this one stray
                    _log.error("deleting %s-%d failed: %s", topic, partition, exc)
                    continue
                if detached is None:
                    continue
                removed += 1
                d, had_checkpoint = detached
                if d is not None:
                    touched[d] = touched.get(d, False) or had_checkpoint
        finally:
            for d, had_checkpoint in touched.items():
                await self._checkpoint_dir(d)
                if had_checkpoint:
                    self._write_cleaner_checkpoint(d)
        return removed

    async def _detach_log(self, topic, partition):
        """Take one partition's log out of the manager and rename its dir for deletion; returns
        (its log dir or None, whether the cleaner checkpoint named it), or None if there was none."""
        tp = (topic, partition)
        self.cleaner.abort(tp)
        log = self.logs.pop(tp, None)
        self.offline_logs.pop(tp, None)
        d = self.log_dirs_of.pop(tp, None)
        had_checkpoint = tp in self.cleaner.checkpoints
        self.cleaner.forget(tp)
        if log is None:
            return None
        if log.dir_path is None:
            return None, False
        await log.writer.adrain()
        doomed = os.path.join(os.path.dirname(log.dir_path), f"{topic}-{partition}.{uuid.uuid4().hex}-delete")
        os.rename(log.dir_path, doomed)
        log.dir_path = doomed
        log.offline_error = KafkaStorageError(f"{topic}-{partition} was deleted")

        def remove():
            log.close_files()
            shutil.rmtree(doomed, ignore_errors=True)
        # As Kafka: the files are closed and removed after file.delete.delay.ms (a fetch still
        # sending a FileRegion of them never sees a reused descriptor). Until then they stay
        # linked, so a shutdown in between leaves the renamed dir to the next start-up instead of
        # waiting while the kernel frees the page cache of unlinked files (0.1 s per GiB here,
        # paid at process exit when the descriptors of already-unlinked files were still open).
        self._delete_later(log.config.file_delete_delay_ms / 1000.0, remove, log.writer)
        return d, had_checkpoint

    def _write_cleaner_checkpoint(self, d):
        try:
            self.cleaner.write_checkpoint(d)
        except OSError as exc:
            self._dir_failed(d, exc)

    # ---- checkpoints and periodic work --------------------------------------------------------

    def _logs_in(self, d):
        return {tp: log for tp, log in self.logs.items() if self.log_dirs_of.get(tp) is d}

    def checkpoint_contents(self, d):
        """{file name: bytes} of the three offset checkpoints of log dir `d` (current values)."""
        logs = self._logs_in(d)
        recovery = {tp: log.recovery_point for tp, log in logs.items()}
        starts = {tp: log.log_start_offset for tp, log in logs.items()
                  if log.log_start_offset > log.segments[0].base_offset}
        hws = {tp: log.high_watermark for tp, log in logs.items()}
        return {RECOVERY_POINT_CHECKPOINT: OffsetCheckpointFile.encode(recovery),
                LOG_START_OFFSET_CHECKPOINT: OffsetCheckpointFile.encode(starts),
                REPLICATION_OFFSET_CHECKPOINT: OffsetCheckpointFile.encode(hws)}

    async def _checkpoint_dir(self, d):
        if not d.online:
            return
        from pybroker.log.checkpoint import write_atomic
        contents = self.checkpoint_contents(d)
        done = asyncio.get_running_loop().create_future()
        pending = [len(contents)]

        def finished(exc):
            if exc is not None:
                self._dir_failed(d, exc)
            pending[0] -= 1
            if pending[0] == 0 and not done.done():
                done.set_result(None)
        for name, data in contents.items():
            path = os.path.join(d.path, name)
            d.writer.submit_side_call(lambda p=path, b=data: write_atomic(p, b), finished)
        await done

    async def checkpoint(self):
        """Write every dir's recovery-point, log-start-offset and replication-offset checkpoints."""
        for d in self.dirs:
            await self._checkpoint_dir(d)

    async def flush_dirty_logs(self):
        """Flush logs whose flush.ms has elapsed."""
        now = self.clock()
        for log in list(self.logs.values()):
            if log.offline_error is None and now - log.last_flush_ms >= log.config.flush_ms:
                await log.flush()

    def cleanup_logs(self):
        """Retention: delete old segments of every log (by retention.ms / retention.bytes when
        cleanup.policy has delete, else only below the log start offset), drop producers idle for
        longer than producer.id.expiration.ms. Logs the cleaner is working on are skipped this
        round (as Kafka). Returns how many segments were deleted."""
        deleted = 0
        for tp, log in list(self.logs.items()):
            if log.offline_error is None and not self.cleaner.is_cleaning(tp):
                deleted += log.delete_old_segments()
                log.producer_state.remove_expired_producers(self.clock())
        return deleted

    def start_background(self, checkpoint_interval_s=60.0, flush_check_s=1.0, retention_check_s=300.0,
                         initial_delay_s=0.0, cleaner=None):
        """Start the periodic tasks on the running loop (Kafka's scheduler jobs: the retention
        check every log.retention.check.interval.ms after log.initial.task.delay.ms) and the log
        cleaner (`cleaner`: a CleanerConfig)."""
        self._tasks = [
            asyncio.ensure_future(self._every(checkpoint_interval_s, self.checkpoint)),
            asyncio.ensure_future(self._every(flush_check_s, self.flush_dirty_logs, initial_delay_s)),
            asyncio.ensure_future(self._every(retention_check_s, self._retention, initial_delay_s))]
        if cleaner is not None:
            self.cleaner.config = cleaner
        self.cleaner.start()

    def reconfigure_cleaner(self, config):
        """Apply new cleaner settings (dynamic broker configs) on the running loop."""
        asyncio.ensure_future(self.cleaner.reconfigure(config))

    async def _retention(self):
        if self.cleanup_logs():
            await self.checkpoint()          # the new log start offsets

    async def _every(self, interval, fn, initial_delay=None):
        await asyncio.sleep(interval if initial_delay is None else initial_delay)
        while True:
            try:
                await fn()
            except LogError as exc:
                _log.error("background log task %s failed: %s", fn.__name__, exc)
            await asyncio.sleep(interval)

    def _delete_later(self, delay_s, fn, writer=None, on_error=None):
        """Run fn — closing (and unlinking) the files of a deleted segment or log — after
        delay_s, on the reaper thread, once every op submitted to `writer` before then is done.

        Closing the last descriptor of a large unlinked file frees its page cache and extents
        inside close() (0.1 s per GiB measured here): on the event loop that stalled every
        client, on the writer every append queued behind it (e2e p99 0.5-1.4 s in the benchmark
        cells that followed a topic deletion). Without a running loop fn runs at once."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            fn()
            return
        if self._reaper is None:
            self._reaper = concurrent.futures.ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="pybroker-file-reaper")

        async def job():
            await asyncio.sleep(delay_s)
            try:
                if writer is not None:
                    await writer.adrain()
                await loop.run_in_executor(self._reaper, fn)
            except Exception as exc:  # noqa: BLE001 - an I/O error takes the log offline
                if on_error is None:
                    _log.error("deleting files failed: %s", exc)
                else:
                    on_error(exc)

        task = loop.create_task(job())
        self._deletes.add(task)
        task.add_done_callback(self._deletes.discard)

    # ---- failures -----------------------------------------------------------------------------

    def _on_log_offline(self, log, exc):
        tp = (log.topic, log.partition)
        if isinstance(exc, OSError):
            d = self.log_dirs_of.get(tp)
            if d is not None:
                self._dir_failed(d, exc)
        else:
            self.offline_logs[tp] = log.offline_error

    def _dir_failed(self, d, exc):
        if d.offline_reason is None:
            d.offline_reason = str(exc)
            _log.error("log dir %s is offline: %s", d.path, exc)
            for tp, log in self._logs_in(d).items():
                if log.offline_error is None:
                    log.offline_error = LogDirOfflineError(d.path, str(exc))

    @property
    def offline_dirs(self):
        return [d.path for d in self.dirs if not d.online]

    # ---- shutdown -----------------------------------------------------------------------------

    async def shutdown(self):
        """Stop the cleaner, flush and close every log, write the checkpoints and
        `.kafka_cleanshutdown`."""
        for task in [*self._tasks, *self._deletes]:
            task.cancel()           # a delete not yet run is redone at the next start-up
        self._tasks = []
        if self._reaper is not None:
            self._reaper.shutdown(wait=True)
            self._reaper = None
        await self.cleaner.stop()
        for log in list(self.logs.values()):
            await log.close()
        for d in self.dirs:
            if d.online and d.writer is not None:
                await self._checkpoint_dir(d)
                await d.writer.adrain()
                CleanShutdownFile(d.path).write(self.broker_epoch)
            self._release_dir(d)
        self.logs.clear()

    def shutdown_sync(self):
        """Blocking shutdown for SyncWriter managers (tools, tests without a loop)."""
        from pybroker.log.checkpoint import write_atomic
        for log in list(self.logs.values()):
            log.close_sync()
        for d in self.dirs:
            if d.online:
                for name, data in self.checkpoint_contents(d).items():
                    write_atomic(os.path.join(d.path, name), data)
                CleanShutdownFile(d.path).write(self.broker_epoch)
            self._release_dir(d)
        self.logs.clear()

    def _release_dir(self, d):
        if d.writer is not None:
            d.writer.close()
        if d.lock_fd >= 0:
            os.close(d.lock_fd)
            d.lock_fd = -1

    def abandon(self):
        """Drop everything without any clean-shutdown work (simulates a crash in tests)."""
        for log in self.logs.values():
            for seg in log.segments:
                for idx in (seg.offset_index, seg.time_index):
                    idx.close_handler()
                seg.log.close()
        for d in self.dirs:
            self._release_dir(d)
        self.logs.clear()
