"""Segment writers: how appended bytes reach the files without blocking the event loop.

The seam (every writer implements it; an io_uring writer will too):

  submit_write(fd, data, position, done)   pwrite `data` (a buffer, kept alive until done) at
                                           `position` of `fd`
  submit_fsync(fd, done)                   fdatasync/fsync `fd` after every earlier op
  submit_call(fn, done)                    run fn() in the writer's context after every earlier op
                                           (the ops behind it wait: segment trims, flushes)
  submit_side_call(fn, done)               run fn() on the log dir's file lane (SideLane): in
                                           order with the other side calls, but neither after
                                           the queued writes nor ahead of the ones behind it
                                           (checkpoints, epoch cache, producer snapshots)
  drain() / async adrain()                 wait until every submitted op has completed
  close()

Completion order: the writes to one fd complete in submission order, and an fsync or call
completes after every op submitted before it; writes to different fds may complete in either
order (UringWriter lets a write parked in the kernel hold up its own file only; the writers
here keep the whole submission order, which satisfies the same contract). `done(exc)` is called
on the event-loop thread (exc is None on success, else the OSError), so the log's state is only
ever touched by the loop: no locks.

SyncWriter  — does the syscall inline (the "plain write" baseline; also used with no loop, e.g.
              tools and recovery).
ThreadedWriter — one background thread per log dir; each wake-up takes every queued op, merges
              consecutive writes to the same fd at contiguous positions into one `os.pwritev`,
              and posts all completions back to the loop with a single `call_soon_threadsafe`.
              An io_uring writer would replace the thread with a ring: the same queue, one
              submission per wake-up, completions read from the CQ on the loop.
"""
import asyncio
import collections
import concurrent.futures
import os
import threading

from asyncio.events import _get_running_loop   # public in asyncio.events.__all__; C-accelerated

_IOV_MAX = 1024
_MAX_COALESCE = 8 * 1024 * 1024
_WRITE, _FSYNC, _CALL, _BARRIER = range(4)


def _pwrite_all(fd, data, position):
    view = memoryview(data).cast("B")
    while view:
        n = os.pwrite(fd, view, position)
        view = view[n:]
        position += n


def _pwritev_all(fd, buffers, position):
    views = [memoryview(b).cast("B") for b in buffers]
    while views:
        n = os.pwritev(fd, views[:_IOV_MAX], position)
        position += n
        while n and views:
            if n >= len(views[0]):
                n -= len(views[0])
                views.pop(0)
            else:
                views[0] = views[0][n:]
                n = 0


def _fsync(fd):
    os.fsync(fd)


class SyncWriter:
    """Performs each op immediately on the caller's thread."""

    is_async = False

    def submit_write(self, fd, data, position, done):
        self._run(lambda: _pwrite_all(fd, data, position), done)

    def submit_fsync(self, fd, done):
        self._run(lambda: _fsync(fd), done)

    def submit_call(self, fn, done):
        self._run(fn, done)

    submit_side_call = submit_call

    @staticmethod
    def _run(fn, done):
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 — reported to the op's owner (log goes offline)
            done(exc)
            return
        done(None)

    def drain(self):
        return None

    async def adrain(self):
        return None

    def close(self):
        return None


class ThreadedWriter:
    """A background writer thread; completions are delivered on `loop` (bound at first use)."""

    is_async = True

    def __init__(self, name="log-writer"):
        self._ops = collections.deque()
        self._cv = threading.Condition()
        self._closed = False
        self._loop = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()
        self.stats = {"wakeups": 0, "ops": 0, "syscalls": 0}
        self.side = SideLane(f"{name}:files")

    # ---- submission (loop thread) ---------------------------------------------------------

    def _submit(self, op):
        if self._loop is None:
            try:
                self._loop = asyncio.get_running_loop()
            except RuntimeError:
                raise RuntimeError("ThreadedWriter: the first op must be submitted from the event "
                                   "loop's thread (completions are delivered there)") from None
        with self._cv:
            if self._closed:
                raise RuntimeError("writer is closed")
            self._ops.append(op)
            self._cv.notify()

    def submit_write(self, fd, data, position, done):
        self._submit((_WRITE, fd, data, position, done))

    def submit_fsync(self, fd, done):
        self._submit((_FSYNC, fd, None, 0, done))

    def submit_call(self, fn, done):
        self._submit((_CALL, -1, fn, 0, done))

    def submit_side_call(self, fn, done):
        self.side.submit(fn, done)

    async def adrain(self):
        fut = asyncio.get_running_loop().create_future()
        self._submit((_BARRIER, -1, None, 0, lambda exc: fut.done() or fut.set_result(None)))
        await fut
        await self.side.adrain()

    def drain(self):
        """Blocking drain for callers without a loop (or outside it). Completions that must run
        on the loop are still delivered there."""
        done = threading.Event()
        with self._cv:
            self._ops.append((_BARRIER, -1, None, 0, None, done))
            self._cv.notify()
        done.wait()
        self.side.drain()

    def close(self):
        self.side.close()
        with self._cv:
            self._closed = True
            self._cv.notify()
        self._thread.join()

    # ---- writer thread --------------------------------------------------------------------

    def _run(self):
        while True:
            with self._cv:
                while not self._ops and not self._closed:
                    self._cv.wait()
                if not self._ops and self._closed:
                    return
                ops = list(self._ops)
                self._ops.clear()
            self.stats["wakeups"] += 1
            self.stats["ops"] += len(ops)
            self._deliver(self._execute(ops))

    def _execute(self, ops):
        results = []
        i = 0
        while i < len(ops):
            kind = ops[i][0]
            if kind == _WRITE:
                j = self._coalesce_end(ops, i)
                exc = self._guard(_pwritev_all if j - i > 1 else None, ops, i, j)
                results.extend((op[4], exc) for op in ops[i:j])
                i = j
                continue
            op = ops[i]
            if kind == _FSYNC:
                results.append((op[4], self._call(lambda: _fsync(op[1]))))
            elif kind == _CALL:
                results.append((op[4], self._call(op[2])))
            else:
                if len(op) > 5:
                    op[5].set()
                if op[4] is not None:
                    results.append((op[4], None))
            i += 1
        return results

    @staticmethod
    def _coalesce_end(ops, i):
        _, fd, data, position, _ = ops[i]
        end = position + len(data)
        total = len(data)
        j = i + 1
        while (j < len(ops) and ops[j][0] == _WRITE and ops[j][1] == fd and ops[j][3] == end
               and total < _MAX_COALESCE):
            end += len(ops[j][2])
            total += len(ops[j][2])
            j += 1
        return j

    def _guard(self, vector, ops, i, j):
        self.stats["syscalls"] += 1
        fd, position = ops[i][1], ops[i][3]
        if vector is None:
            return self._call(lambda: _pwrite_all(fd, ops[i][2], position))
        return self._call(lambda: _pwritev_all(fd, [op[2] for op in ops[i:j]], position))

    @staticmethod
    def _call(fn):
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 — any failure is reported to the op's owner,
            return exc            # which takes its log offline; the writer thread must survive
        return None

    def _deliver(self, results):
        if not results:
            return
        loop = self._loop
        if loop is None or loop.is_closed():
            for done, exc in results:
                done(exc)
            return
        try:
            loop.call_soon_threadsafe(_complete_all, results)
        except RuntimeError:  # loop closed between the check and the call
            for done, exc in results:
                done(exc)


def _complete_all(results):
    for done, exc in results:
        done(exc)


class SideLane:
    """Small-file writes of one log dir (offset checkpoints, the leader-epoch checkpoint, producer
    snapshots) on a thread of their own, in submission order; `done(exc)` is called on the loop.

    Each such write fsyncs the file and its directory. Through the writer's ordered queue, that
    fsync held every append of the log dir behind it: with GiBs of dirty page cache an fsync here
    took 30-280 ms, the first append of each of 256 new partitions queued one (the epoch cache),
    and appends stalled for seconds. The lane keeps what recovery needs: the side calls stay in
    order among themselves, so a recovery-point checkpoint is written after the epoch-cache and
    snapshot writes queued before it (the data it covers was appended after those were queued).
    The writer's drain()/adrain()/close() wait for the lane too (a log dir is renamed or
    truncated only once its side writes have landed)."""

    def __init__(self, name):
        self.name = name
        self._executor = None
        self._loop = None
        self._completed = collections.deque()   # (done, exc), appended by the lane thread
        self._pending = 0                       # submitted, done not yet called (loop thread)
        self._idle_waiters = []

    def submit(self, fn, done):
        if self._pending == 0:
            self._loop = asyncio.get_running_loop()
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=self.name)
        self._pending += 1
        self._executor.submit(self._run, fn, done)

    def _run(self, fn, done):
        self._completed.append((done, ThreadedWriter._call(fn)))
        try:
            self._loop.call_soon_threadsafe(self._deliver)
        except RuntimeError:  # the loop is closed: drain() delivers
            pass

    def _deliver(self):
        while self._completed:
            done, exc = self._completed.popleft()
            self._pending -= 1
            done(exc)
        if self._pending == 0:
            waiters, self._idle_waiters = self._idle_waiters, []
            for fut in waiters:
                if not fut.done():
                    fut.set_result(None)

    async def adrain(self):
        if self._pending:
            fut = asyncio.get_running_loop().create_future()
            self._idle_waiters.append(fut)
            await fut

    def drain(self):
        """Wait until every side call has run; on the loop's thread (or with no loop running)
        deliver their `done` inline, from another thread leave that to the loop."""
        if self._executor is None:
            return
        self._executor.submit(lambda: None).result()
        loop = self._loop
        if loop is None or _get_running_loop() is loop or not loop.is_running():
            self._deliver()

    def close(self):
        self.drain()
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
