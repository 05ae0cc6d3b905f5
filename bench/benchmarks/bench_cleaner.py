"""asv benchmarks for the log lifecycle (pybroker/log/cleaner.py, retention).

* Cleaner core: the offset-map build and the record filter over 16 MiB of batches (100-record
  uncompressed batches, 120-byte values, 4 updates per key), compiled (pybroker_core.cleaner)
  against the pure twin, in MB/s of input.
* Cleaning a disk log end to end (map, filter, files, fsync, swap): 32 MiB, compiled.
* A retention pass over 1,000 partitions (LogManager.cleanup_logs): nothing to delete (the
  steady state every log.retention.check.interval.ms) and one expired segment per partition.

The plain-script twin, which also measures produce p99 latency while the cleaner runs against an
idle broker (separate `pybroker serve` process), is bench/cleaner_bench.py.
"""
import importlib
import os
import random
import shutil
import tempfile
import time

MIB = 1 << 20
IMPLEMENTATIONS = ["compiled", "pure"]
RECORDS_PER_BATCH = 100
VALUE = 120


def cleaner_module(name):
    return importlib.import_module("pybroker_core.cleaner" if name == "compiled"
                                   else "pybroker.codec._pure.cleaner")


def make_batches(total_bytes, keys_per_update=4, compression=0, seed=1):
    """Whole batches (offsets assigned) of about total_bytes: every key written keys_per_update
    times, in random order."""
    from pybroker.codec.records import build_batch
    rng = random.Random(seed)
    value = b"v" * VALUE
    out, offset = bytearray(), 0
    record_size = VALUE + 30
    keys = max(1, total_bytes // record_size // keys_per_update)
    now = int(time.time() * 1000)
    while len(out) < total_bytes:
        recs = [(b"key-%08d" % rng.randrange(keys), value, [], now) for _ in range(RECORDS_PER_BATCH)]
        out += build_batch(recs, base_offset=offset, compression=compression)
        offset += RECORDS_PER_BATCH
    return bytes(out), offset


def map_and_clean(mod, data, last_offset, memory=64 * MIB):
    """(map seconds, clean seconds, retained bytes) for one pass over `data`."""
    m = mod.OffsetMap(memory)
    t0 = time.perf_counter()
    pos, full = mod.build_offset_map(m, data, 0, 0, mod.TxnMetadata())
    t1 = time.perf_counter()
    sc = mod.SegmentCleaner(m, int(time.time() * 1000), 0, {}, mod.TxnMetadata(), last_offset)
    sc.start_segment(0, 4096)
    out, consumed = sc.clean(data, 0)
    t2 = time.perf_counter()
    assert pos == consumed == len(data) and not full
    return t1 - t0, t2 - t1, len(out)


def make_disk_log(workdir, total_bytes, segment_bytes=8 * MIB):
    from pybroker.log import LogConfig, LogManager
    mgr = LogManager([workdir], writer="sync")
    mgr.startup()
    cfg = LogConfig(cleanup_policy="compact", segment_bytes=segment_bytes, min_cleanable_dirty_ratio=0,
                    file_delete_delay_ms=0)
    log = mgr.get_or_create_log("bench", 0, config=cfg)
    data, _ = make_batches(total_bytes)
    from pybroker.codec.records import iter_batches
    for b in iter_batches(data):
        log.append_as_leader(bytearray(b.raw))
    log.roll()
    return mgr, log


def make_partitions(workdir, partitions=1000, segments=3, storage="disk"):
    """A LogManager (clock: `now[0]`) with `partitions` logs of `segments` one-batch segments:
    the older ones written 10 minutes before the active one, retention.ms one hour. Moving the
    clock 55 minutes on expires every segment but the active one."""
    from pybroker.codec.records import build_batch
    from pybroker.log import LogConfig, LogManager
    now = [int(time.time() * 1000)]
    mgr = LogManager([workdir] if storage == "disk" else [], storage=storage, writer="sync",
                     clock=lambda: now[0])
    mgr.startup()
    cfg = LogConfig(segment_bytes=400, retention_ms=3_600_000, file_delete_delay_ms=0)
    old = build_batch([(b"k", b"x" * 300, [], now[0] - 600_000)])
    fresh = build_batch([(b"k", b"x" * 300, [], now[0])])
    for p in range(partitions):
        log = mgr.get_or_create_log("retention", p, config=cfg)
        for i in range(segments):
            log.append_as_leader(bytearray(old if i < segments - 1 else fresh))
    return mgr, now


class CleanerCore:
    params = IMPLEMENTATIONS
    param_names = ["implementation"]
    timeout = 300

    def setup(self, name):
        self.mod = cleaner_module(name)
        self.data, self.last = make_batches(16 * MIB if name == "compiled" else 2 * MIB)

    def time_map_and_clean(self, name):
        map_and_clean(self.mod, self.data, self.last)

    def track_mb_per_s(self, name):
        t_map, t_clean, _ = map_and_clean(self.mod, self.data, self.last)
        return len(self.data) / MIB / (t_map + t_clean)
    track_mb_per_s.unit = "MB/s"


class CleanDiskLog:
    timeout = 300

    def setup(self):
        self.dir = tempfile.mkdtemp(prefix="bench-clean-")
        self.mgr, self.log = make_disk_log(self.dir, 32 * MIB)

    def teardown(self):
        self.mgr.shutdown_sync()
        shutil.rmtree(self.dir, ignore_errors=True)

    def track_clean_mb_per_s(self):
        size = self.log.size
        t0 = time.perf_counter()
        self.mgr.cleaner.clean_now("bench", 0)
        return size / MIB / (time.perf_counter() - t0)
    track_clean_mb_per_s.unit = "MB/s"


class RetentionPass:
    timeout = 300

    def setup(self):
        self.dir = tempfile.mkdtemp(prefix="bench-retention-")
        self.mgr, self.now = make_partitions(self.dir)

    def teardown(self):
        self.mgr.shutdown_sync()
        shutil.rmtree(self.dir, ignore_errors=True)

    def time_pass_nothing_to_delete(self):
        self.mgr.cleanup_logs()

    def track_pass_deleting_two_segments_each_ms(self):
        return retention_pass_ms(self.mgr, self.now)[0]
    track_pass_deleting_two_segments_each_ms.unit = "ms"


def retention_pass_ms(mgr, now):
    """(ms of the pass on the event loop, ms of the deferred unlinks) after moving the clock so
    that two segments of every partition expire. The pass runs on a loop, as in the broker: the
    renames to .deleted happen in it, the unlinks file.delete.delay.ms later on the writer."""
    import asyncio
    for log in mgr.logs.values():
        log.config = log.config.__class__(**{**log.config.__dict__, "file_delete_delay_ms": 0})
    now[0] += 3_300_000

    async def run():
        t0 = time.perf_counter()
        deleted = mgr.cleanup_logs()
        t1 = time.perf_counter()
        await asyncio.sleep(0)                   # the deferred deletes (delay 0) run now
        await asyncio.sleep(0)
        t2 = time.perf_counter()
        assert deleted >= 2 * len(mgr.logs)
        return (t1 - t0) * 1000, (t2 - t1) * 1000
    return asyncio.run(run())


def cleanup(path):
    shutil.rmtree(path, ignore_errors=True)
    if os.path.exists(path):
        raise RuntimeError(f"could not remove {path}")
