"""asv benchmarks for the storage layer (pybroker.log).

* Index lookups: a 100,000-entry offset index and time index, random targets, compiled
  (pybroker_core.index) against the pure twin; plus the forward scan over batch headers that turns
  an index entry into the batch holding an offset (~4 KiB of 1 KiB batches, from a file).
* Append throughput of 1 KiB and 16 KiB batches into a disk log: the plain path (SyncWriter:
  pwrite on the event loop) against the async path (ThreadedWriter: a writer thread, coalesced
  pwritev, completions batched back to the loop), with one append in flight and with 64.

The plain-script twin, printing one table per group, is bench/log_bench.py.
"""
import asyncio
import importlib
import os
import random
import shutil
import struct
import tempfile

KIB = 1024
INDEX_ENTRIES = 100_000
LOOKUPS = 2_000
IMPLEMENTATIONS = ["compiled", "pure"]
BATCH_SIZES = [1 * KIB, 16 * KIB]
WRITERS = ["plain", "async"]
IN_FLIGHT = [1, 64]
APPEND_BYTES = 16 * 1024 * KIB      # per measured run


def index_module(name):
    return importlib.import_module("pybroker_core.index" if name == "compiled" else "pybroker.codec._pure.index")


def make_offset_index(entries=INDEX_ENTRIES):
    """(buffer, entries, targets): relative offsets 0, 10, 20... at positions 4 KiB apart."""
    buf = b"".join(struct.pack(">II", 10 * i, 4096 * i) for i in range(entries))
    rng = random.Random(1)
    return buf, entries, [rng.randrange(0, 10 * entries) for _ in range(LOOKUPS)]


def make_time_index(entries=INDEX_ENTRIES):
    base = 1_700_000_000_000
    buf = b"".join(struct.pack(">qI", base + 7 * i, 10 * i) for i in range(entries))
    rng = random.Random(2)
    return buf, entries, [base + rng.randrange(0, 7 * entries) for _ in range(LOOKUPS)]


def make_segment(path, batch_size=KIB, batches=64):
    """A segment file of `batches` batches of ~batch_size bytes; returns (size, last offset)."""
    from pybroker.codec import records
    out = bytearray()
    offset = 0
    for i in range(batches):
        b = bytearray(make_batch(batch_size, i))
        records.assign_offsets(b, 0, offset)
        offset += 4
        out += b
    with open(path, "wb") as f:
        f.write(out)
    return len(out), offset - 1


def make_batch(size, tag=0):
    """One uncompressed 4-record batch of about `size` bytes."""
    from pybroker.codec import records
    value = b"%08d" % tag + b"v" * max(0, (size - 61) // 4 - 20)
    return records.build_batch([(b"key", value, [], 1_700_000_000_000 + i) for i in range(4)])


def run_appends(writer_kind, batch_size, in_flight, total_bytes=APPEND_BYTES, workdir=None):
    """Append total_bytes of batch_size batches; returns (seconds, appends, p99_loop_lag_s)."""
    import time
    from pybroker.log import Log, LogConfig, SyncWriter, ThreadedWriter
    template = make_batch(batch_size)
    count = max(1, total_bytes // len(template))
    workdir = workdir or tempfile.mkdtemp(prefix="pybroker-logbench-")
    writer = SyncWriter() if writer_kind == "plain" else ThreadedWriter()

    async def main():
        log = Log.open(os.path.join(workdir, "bench-0"), "bench", 0, LogConfig(), writer=writer)
        lags = []
        stop = asyncio.Event()

        async def ticker():          # how late the loop runs a 1 ms timer while appending
            while not stop.is_set():
                t = time.perf_counter()
                await asyncio.sleep(0.001)
                lags.append(time.perf_counter() - t - 0.001)
        tick = asyncio.ensure_future(ticker())
        await asyncio.sleep(0.005)
        t0 = time.perf_counter()
        done = 0
        while done < count:
            n = min(in_flight, count - done)
            await asyncio.gather(*(log.append(bytearray(template)) for _ in range(n)))
            done += n
        elapsed = time.perf_counter() - t0
        stop.set()
        await tick
        await log.close()
        lags.sort()
        return elapsed, count, lags[int(len(lags) * 0.99)] if lags else 0.0
    try:
        return asyncio.run(main())
    finally:
        writer.close()
        shutil.rmtree(workdir, ignore_errors=True)


class IndexLookup:
    params = (IMPLEMENTATIONS,)
    param_names = ["implementation"]

    def setup(self, name):
        self.mod = index_module(name)
        self.obuf, self.n, self.otargets = make_offset_index()
        self.tbuf, _, self.ttargets = make_time_index()

    def time_offset_index_lookup(self, name):
        lookup, buf, n = self.mod.offset_index_lookup, self.obuf, self.n
        for t in self.otargets:
            lookup(buf, n, t)

    def time_time_index_lookup(self, name):
        lookup, buf, n = self.mod.time_index_lookup, self.tbuf, self.n
        for t in self.ttargets:
            lookup(buf, n, t)


class TranslateOffset:
    params = (IMPLEMENTATIONS,)
    param_names = ["implementation"]

    def setup(self, name):
        self.mod = index_module(name)
        self.dir = tempfile.mkdtemp(prefix="pybroker-logbench-")
        path = os.path.join(self.dir, "seg.log")
        self.size, self.last = make_segment(path, KIB, 5)     # ~4 KiB: one index interval
        self.fd = os.open(path, os.O_RDONLY)

    def teardown(self, name):
        os.close(self.fd)
        shutil.rmtree(self.dir, ignore_errors=True)

    def time_scan_one_index_interval(self, name):
        self.mod.find_batch_by_offset(self.fd, 0, self.size, self.last)


class Append:
    params = (WRITERS, BATCH_SIZES, IN_FLIGHT)
    param_names = ["writer", "batch_size", "in_flight"]
    timeout = 120
    number = 1
    repeat = 3

    def time_append(self, writer, batch_size, in_flight):
        run_appends(writer, batch_size, in_flight, total_bytes=4 * 1024 * KIB)
