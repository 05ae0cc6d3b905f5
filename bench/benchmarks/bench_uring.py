"""asv benchmarks for the segment writers (pybroker/log/writer.py, pybroker/log/uring_writer.py).

Writers compared (the same seam):
  sync         SyncWriter: pwrite on the event loop (the plain-write baseline)
  thread       ThreadedWriter: one writer thread, coalesced pwritev, completions posted back
  uring        UringWriter: one io_uring_enter per loop turn, the kernel may issue the write
               inline in that call (buffered writes it can do without blocking)
  uring-async  UringWriter(force_async=True): IOSQE_ASYNC, every write goes to a kernel worker

Two workloads:
  * Log appends: 1 KiB and 16 KiB record batches through `Log.append` (offsets, indexes, the
    writer), with 1 and 64 appends in flight.
  * Writer only: `submit_write` of 1 KiB / 16 KiB buffers at increasing positions, 64 per loop
    turn, optionally with `submit_fsync` after every MiB — what each writer costs by itself.
Both report time, and the lateness of a 1 ms loop timer (p99 and max) while running.

The plain-script twin, printing tables with ratios, is bench/uring_bench.py.
"""
import asyncio
import os
import shutil
import tempfile
import time

KIB = 1024
MIB = 1024 * KIB
BATCH_SIZES = [1 * KIB, 16 * KIB]
IN_FLIGHT = [1, 64]
WRITER_KINDS = ["sync", "thread", "uring", "uring-async"]
APPEND_BYTES = 16 * MIB     # per measured run


def make_writer(kind):
    from pybroker.log.uring_writer import UringWriter
    from pybroker.log.writer import SyncWriter, ThreadedWriter
    if kind == "sync":
        return SyncWriter()
    if kind == "thread":
        return ThreadedWriter()
    return UringWriter(force_async=(kind == "uring-async"))


def available_kinds():
    from pybroker.log import uring_writer
    if uring_writer.available():
        return list(WRITER_KINDS)
    return [k for k in WRITER_KINDS if not k.startswith("uring")]


class LagProbe:
    """A 1 ms asyncio timer; records how late each tick fires (how long the loop was busy)."""

    def __init__(self, period=0.001):
        self.period = period
        self.lags = []
        self._stop = None
        self._task = None

    async def __aenter__(self):
        self._stop = asyncio.Event()
        self._task = asyncio.ensure_future(self._run())
        await asyncio.sleep(0.005)
        self.lags.clear()
        return self

    async def __aexit__(self, *exc):
        self._stop.set()
        await self._task

    async def _run(self):
        while not self._stop.is_set():
            t = time.perf_counter()
            await asyncio.sleep(self.period)
            self.lags.append(time.perf_counter() - t - self.period)



def lag_summary(lags):
    """(p99, max) of timer lateness samples, in seconds."""
    if not lags:
        return 0.0, 0.0
    lags = sorted(lags)
    return lags[min(len(lags) - 1, int(len(lags) * 0.99))], lags[-1]


def run_log_appends(kind, batch_size, in_flight, total_bytes=APPEND_BYTES):
    """Append total_bytes of batch_size batches to a disk log; returns
    (seconds, appends, bytes, [timer lateness samples, s])."""
    from pybroker.log import Log, LogConfig
    from benchmarks.bench_log import make_batch
    template = make_batch(batch_size)
    count = max(1, total_bytes // len(template))
    workdir = tempfile.mkdtemp(prefix="pybroker-uringbench-")
    writer = make_writer(kind)

    async def main():
        log = Log.open(os.path.join(workdir, "bench-0"), "bench", 0, LogConfig(), writer=writer)
        async with LagProbe() as probe:
            t0 = time.perf_counter()
            done = 0
            while done < count:
                n = min(in_flight, count - done)
                await asyncio.gather(*(log.append(bytearray(template)) for _ in range(n)))
                done += n
            elapsed = time.perf_counter() - t0
        await log.close()
        return elapsed, count, count * len(template), probe.lags
    try:
        return asyncio.run(main())
    finally:
        writer.close()
        shutil.rmtree(workdir, ignore_errors=True)


def run_writer_appends(kind, size, per_turn=64, total_bytes=APPEND_BYTES, fsync_every=0):
    """submit_write `size`-byte buffers at increasing positions, `per_turn` per loop turn, with
    an fsync after every `fsync_every` bytes (0: none); returns
    (seconds, writes, bytes, [timer lateness samples, s])."""
    count = max(1, total_bytes // size)
    data = os.urandom(size)
    workdir = tempfile.mkdtemp(prefix="pybroker-uringbench-")
    fd = os.open(os.path.join(workdir, "seg.log"), os.O_RDWR | os.O_CREAT, 0o644)
    writer = make_writer(kind)

    async def main():
        errors = []

        def done(exc):
            if exc is not None:
                errors.append(exc)
        async with LagProbe() as probe:
            t0 = time.perf_counter()
            position, since_sync = 0, 0
            for i in range(count):
                writer.submit_write(fd, data, position, done)
                position += size
                since_sync += size
                if fsync_every and since_sync >= fsync_every:
                    writer.submit_fsync(fd, done)
                    since_sync = 0
                if i % per_turn == per_turn - 1:
                    await asyncio.sleep(0)
            await writer.adrain()
            elapsed = time.perf_counter() - t0
        if errors:
            raise errors[0]
        return elapsed, count, count * size, probe.lags
    try:
        return asyncio.run(main())
    finally:
        writer.close()
        os.close(fd)
        shutil.rmtree(workdir, ignore_errors=True)


class LogAppend:
    params = (WRITER_KINDS, BATCH_SIZES, IN_FLIGHT)
    param_names = ["writer", "batch_size", "in_flight"]
    timeout = 120
    number = 1
    repeat = 3

    def setup(self, kind, batch_size, in_flight):
        if kind not in available_kinds():
            raise NotImplementedError(f"{kind}: io_uring unavailable here")

    def time_log_append(self, kind, batch_size, in_flight):
        run_log_appends(kind, batch_size, in_flight, total_bytes=4 * MIB)


class WriterAppend:
    params = (WRITER_KINDS, BATCH_SIZES, [0, MIB])
    param_names = ["writer", "size", "fsync_every"]
    timeout = 120
    number = 1
    repeat = 3

    def setup(self, kind, size, fsync_every):
        if kind not in available_kinds():
            raise NotImplementedError(f"{kind}: io_uring unavailable here")

    def time_writer_append(self, kind, size, fsync_every):
        run_writer_appends(kind, size, total_bytes=4 * MIB, fsync_every=fsync_every)
