"""UringWriter: the writer seam (pybroker/log/writer.py) over io_uring, with no writer thread.

How a turn of the event loop goes:
  * submit_write / submit_fsync / submit_call only queue an op (and, for the first op of a turn,
    `loop.call_soon(self._flush)`): nothing reaches the kernel while the loop runs callbacks.
  * `_flush`, once per turn, turns the queue into SQEs — consecutive writes to one fd at
    contiguous positions become one IORING_OP_WRITE(V) (<= 1024 buffers, <= 8 MiB) — and hands
    them all to the kernel with ONE io_uring_enter. It then reaps whatever completed inline.
  * Completions: the ring's eventfd (IORING_REGISTER_EVENTFD) is watched with loop.add_reader;
    the reader reaps the whole CQ in one pass and calls the `done` callbacks in submission
    order, except that writes to different fds between two fsyncs/calls/barriers are not ordered
    with each other: a write the kernel parks (ext4 waits on the inode's i_data_sem while
    writeback converts its extents, ~75 ms measured here) holds up its own file only, not every
    partition of the log dir.

Ordering:
  * Writes are independent of each other in the kernel (they target disjoint ranges: the log
    writes each byte of a segment once, and drains the writer before it truncates).
  * fsync carries IOSQE_IO_DRAIN: the kernel starts it only after every SQE submitted before it
    has completed, and starts nothing submitted after it until it completes. IOSQE_IO_LINK is no
    substitute: a link chain exists only inside one submission (the writes the fsync must cover
    may have gone in on earlier turns), it serialises the writes themselves, and a failed link
    cancels the rest of the chain instead of reporting each op's own outcome. Flushes are rare
    (segment roll, flush.ms / flush.messages), so the barrier costs little.
  * IORING_FSYNC_DATASYNC (fdatasync) by default: it persists the data and the metadata needed
    to read it back (the file size), which is what segment recovery needs. Pass
    `datasync=False` to submit_fsync (or the constructor) for a full fsync.
  * submit_call(fn) has no io_uring op: fn runs on a small helper thread once every earlier op
    has completed (the ring is empty), and the ops behind it wait in the queue until it
    returns. Consecutive calls go to the helper together. The helper signals the same eventfd.
  * adrain() is a barrier in the completion order; drain() does the same work blocking.

Short writes: the rest is resubmitted (a 0-byte result is an error). An fsync that completes
while a write ordered before it still has a resubmitted rest outstanding did not cover that
rest: it is run again (IO_DRAIN once more) when every such write has finished. Errors: a negative CQE result becomes done(OSError(errno, ...)) for every
op of that SQE. Buffers stay exported by the ring (bytearrays cannot be resized) until reaped.

Availability: the compiled binding (pybroker_core.uring) and a kernel that lets us set up a ring
and supports WRITE/WRITEV/FSYNC. There is no pure-Python twin: with PYBROKER_PURE=1, without
the compiled module, or when io_uring_setup fails (ENOSYS, EPERM from io_uring_disabled or a
seccomp filter), `new_writer("uring")` returns a ThreadedWriter and `unavailable_reason()`
says why.
"""
import asyncio
import collections
import errno
import logging
import os
import queue
import select
import threading

from asyncio.events import _get_running_loop   # public in asyncio.events.__all__; C-accelerated

from pybroker._impl import PURE
from pybroker.log.writer import SideLane, SyncWriter, ThreadedWriter

try:
    if PURE:
        raise ImportError("PYBROKER_PURE=1: the compiled io_uring binding is not loaded")
    from pybroker_core import uring as _uring
    _IMPORT_ERROR = None
except ImportError as _exc:  # pure mode, or the extension was not built
    _uring = None
    _IMPORT_ERROR = _exc

log = logging.getLogger(__name__)

_IOV_MAX = 1024
_MAX_COALESCE = 8 * 1024 * 1024
_WRITE, _FSYNC, _CALL, _BARRIER = range(4)
_RETRY_ERRNOS = (errno.EAGAIN, errno.EBUSY, errno.EINTR)
_unavailable = []       # cached probe result: [reason or None]


def unavailable_reason():
    """None when UringWriter works here, else why not (cached after the first probe)."""
    if not _unavailable:
        if _uring is None:
            _unavailable.append(f"pybroker_core.uring unavailable: {_IMPORT_ERROR}")
        else:
            reason = _uring.probe()
            if reason is not None and "errno 1)" in reason:     # EPERM: say whether it is the sysctl
                reason += _sysctl_hint()
            _unavailable.append(reason)
    return _unavailable[0]


def _sysctl_hint():
    try:
        with open("/proc/sys/kernel/io_uring_disabled") as f:
            value = f.read().strip()
    except OSError:
        return " (probably a seccomp filter)"
    if value == "0":
        return " (kernel.io_uring_disabled = 0: probably a seccomp filter)"
    return f" (kernel.io_uring_disabled = {value})"


def available():
    return unavailable_reason() is None


def new_writer(kind="uring", name="log-writer"):
    """The writer for one log dir. kind: "uring" (a ThreadedWriter when io_uring is unavailable,
    see unavailable_reason()), "thread" or "sync"."""
    if kind == "sync":
        return SyncWriter()
    if kind == "thread":
        return ThreadedWriter(name=name)
    if kind != "uring":
        raise ValueError(f"log writer must be 'uring', 'thread' or 'sync', not {kind!r}")
    reason = unavailable_reason()
    if reason is None:
        try:
            return UringWriter(name=name)
        except OSError as exc:  # e.g. RLIMIT_MEMLOCK or out of rings on an old kernel
            reason = f"ring setup failed: {exc}"
    log.info("%s: io_uring unavailable (%s); using a writer thread", name, reason)
    return ThreadedWriter(name=name)


class _Op:
    """One submitted op; `data` is the buffer of a write or the function of a call."""
    __slots__ = ("kind", "fd", "data", "position", "done", "exc", "finished", "datasync", "nbytes",
                 "delivered", "seq")

    def __init__(self, kind, fd, data, position, done, datasync=True, nbytes=0):
        self.kind = kind
        self.fd = fd
        self.data = data
        self.position = position
        self.done = done
        self.exc = None
        self.finished = False
        self.datasync = datasync
        self.nbytes = nbytes
        self.delivered = False
        self.seq = 0


class _Sqe:
    """What one SQE carries: a write of `buffers` (the unwritten rest of `ops`' data) at
    `position`, or the fsync of `ops[0]`."""
    __slots__ = ("kind", "fd", "ops", "buffers", "position", "remaining")

    def __init__(self, kind, fd, ops, buffers=None, position=0, remaining=0):
        self.kind = kind
        self.fd = fd
        self.ops = ops
        self.buffers = buffers
        self.position = position
        self.remaining = remaining


def _end(op):
    return op.position + op.nbytes


def _skip(buffers, n):
    """The buffers after their first n bytes (byte memoryviews, no copies)."""
    out = []
    for b in buffers:
        view = memoryview(b).cast("B")
        if n >= len(view):
            n -= len(view)
            continue
        out.append(view[n:])
        n = 0
    return out


def _head(buffers, n):
    """The first n bytes of buffers (fault hook: forces short writes)."""
    out = []
    for b in buffers:
        if n <= 0:
            break
        view = memoryview(b).cast("B")[:n]
        out.append(view)
        n -= len(view)
    return out


class UringWriter:
    """io_uring writer for one log dir; completions are delivered on the loop bound by the
    first op (a later loop takes over once the previous one has nothing pending)."""

    is_async = True

    def __init__(self, name="log-writer", entries=256, datasync=True, force_async=False):
        if _uring is None:
            raise OSError(errno.ENOSYS, f"io_uring writer unavailable: {_IMPORT_ERROR}")
        self.name = name
        self.datasync = datasync
        # IOSQE_ASYNC: never try the write inline in io_uring_enter, go straight to a kernel
        # worker (the loop then never copies data into the page cache itself).
        self._sqe_flags = _uring.IOSQE_ASYNC if force_async else 0
        self._ring = _uring.Ring(entries)
        self._efd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        try:
            self._ring.register_eventfd(self._efd)
        except OSError:
            self._ring.close()
            os.close(self._efd)
            raise
        self._max_in_flight = self._ring.cq_entries     # the CQ can never overflow
        self._order = collections.deque()       # every undelivered op, in submission order
        self._fd_writes = {}                    # fd -> deque of its undelivered writes, in order
        self._ready_fds = set()                 # fds whose first undelivered write has finished
        self._barriers = collections.deque()    # undelivered fsyncs, calls and drain barriers
        self._seq = 0
        self._backlog = collections.deque()     # ops not yet turned into SQEs
        self._resubmit = collections.deque()    # _Sqe: rest of a short write, re-run fsync
        self._in_flight = {}                    # user_data -> _Sqe
        self._partial = set()                   # id() of write _Sqe that came back short
        self._fsyncs_to_rerun = []              # _Sqe of fsyncs waiting for those to finish
        self._next_user_data = 1
        self._calls_running = None              # the batch of calls on the helper thread
        self._calls_done = collections.deque()  # batches finished by the helper thread
        self._helper = None
        self._helper_queue = None
        self._loop = None
        self._loop_thread = None
        self._flush_scheduled = False
        self._closed = False
        self._broken = None                     # OSError from io_uring_enter itself
        self.fault_max_write = None             # tests: cap every write SQE at this many bytes
        self.trace = None                       # tests: a list -> (kind, fd, position, nbytes)
        self.stats = {"turns": 0, "submits": 0, "sqes": 0, "ops": 0, "short_writes": 0,
                      "fsync_reruns": 0, "calls": 0, "submit_retries": 0}
        self.side = SideLane(f"{name}:files")

    # ---- the seam (loop thread) -----------------------------------------------------------

    def submit_write(self, fd, data, position, done):
        n = data.nbytes if type(data) is memoryview else len(data)
        op = _Op(_WRITE, fd, data, position, done, True, n)
        op.finished = n == 0                # nothing to write: just delivered in order
        self._queue(op)

    def submit_fsync(self, fd, done, datasync=None):
        self._queue(_Op(_FSYNC, fd, None, 0, done, self.datasync if datasync is None else datasync))

    def submit_call(self, fn, done):
        self._queue(_Op(_CALL, -1, fn, 0, done))

    def submit_side_call(self, fn, done):
        self.side.submit(fn, done)

    async def adrain(self):
        self._bind()
        if self._order:
            fut = self._loop.create_future()
            barrier = _Op(_BARRIER, -1, None, 0, lambda exc: fut.done() or fut.set_result(None))
            barrier.finished = True         # delivered right after every op before it
            self._queue(barrier)
            await fut
        await self.side.adrain()

    def drain(self):
        """Wait until every submitted op has completed and its `done` has run. On the loop's
        thread (or with no loop running) this blocks and delivers completions inline; from
        another thread it waits for the loop to do so."""
        if self._on_other_thread():
            asyncio.run_coroutine_threadsafe(self.adrain(), self._loop).result()
            return
        self._wait_idle()
        self.side.drain()

    def close(self):
        """Finish every submitted op (their `done` runs), then release the ring and helper."""
        if self._closed:
            return
        if self._on_other_thread():
            asyncio.run_coroutine_threadsafe(self._aclose(), self._loop).result()
            return
        self._wait_idle()
        self.side.close()
        self._closed = True
        self._release()

    async def _aclose(self):
        self.close()

    # ---- binding to the event loop --------------------------------------------------------

    def _queue(self, op):
        if self._closed:
            raise RuntimeError("writer is closed")
        self._bind()
        if self._broken is not None and not op.finished:
            op.exc, op.finished = self._broken, True
        self._seq += 1
        op.seq = self._seq
        self._order.append(op)
        if op.kind != _WRITE:
            self._barriers.append(op)
        else:
            writes = self._fd_writes.get(op.fd)
            if writes is None:
                writes = self._fd_writes[op.fd] = collections.deque()
            writes.append(op)
            if op.finished:
                self._ready_fds.add(op.fd)
        if not op.finished:
            self._backlog.append(op)
            self.stats["ops"] += 1
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)   # the one submission of this turn

    def _bind(self):
        loop = _get_running_loop()
        if loop is self._loop and loop is not None:
            return
        if loop is None:
            raise RuntimeError("UringWriter: ops must be submitted from the event loop's thread "
                               "(completions are delivered there)")
        self._rebind(loop)

    def _rebind(self, loop):
        old = self._loop
        if old is not None:
            if self._order and old.is_running():
                raise RuntimeError("UringWriter: ops are still pending on another event loop")
            self._wait_idle()
            if not old.is_closed():
                old.remove_reader(self._efd)
        loop.add_reader(self._efd, self._on_ready)
        self._loop = loop
        self._loop_thread = threading.get_ident()
        self._flush_scheduled = False

    def _on_other_thread(self):
        return (self._loop is not None and self._loop.is_running()
                and self._loop_thread != threading.get_ident())

    # ---- one turn: queue -> SQEs -> one io_uring_enter ------------------------------------

    def _flush(self):
        self._flush_scheduled = False
        if self._closed:
            return
        if self._broken is None:
            self.stats["turns"] += 1
            self._dispatch()
            self._submit()
        self._complete()

    def _schedule(self):
        if not self._flush_scheduled and self._loop is not None and not self._loop.is_closed():
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _dispatch(self):
        """Prepare SQEs for as much of the queue as order and ring space allow."""
        ring = self._ring
        while self._resubmit and self._has_room():
            self._prep(self._resubmit.popleft())
        if self._resubmit or self._calls_running:
            return
        backlog = self._backlog
        while backlog:
            kind = backlog[0].kind
            if kind == _CALL:
                if ring.outstanding == 0:
                    self._start_calls()
                return
            room = self._room()
            if room == 0:
                return
            if kind == _WRITE:
                for sqe in self._take_writes(room):
                    self._prep(sqe)
            else:
                op = backlog.popleft()
                self._prep(_Sqe(_FSYNC, op.fd, [op]))

    def _room(self):
        ring = self._ring
        return min(ring.sq_space, self._max_in_flight - ring.outstanding)

    def _has_room(self):
        return self._room() > 0

    def _take_writes(self, room):
        """Pop the writes at the head of the queue (up to the next fsync or call) as at most
        `room` SQEs: each SQE is a run of writes to one fd at contiguous positions. Writes to
        different fds may be interleaved in the queue (a produce request touching several
        partitions); they are independent, so each fd's run is gathered across the others."""
        backlog = self._backlog
        sqes, open_run = [], {}         # fd -> its latest _Sqe (still growing)
        while backlog and backlog[0].kind == _WRITE:
            op = backlog[0]
            n = op.nbytes
            run = open_run.get(op.fd)
            if (run is not None and run.position + run.remaining == op.position
                    and len(run.ops) < _IOV_MAX and run.remaining < _MAX_COALESCE):
                run.ops.append(op)
                run.buffers.append(op.data)
                run.remaining += n
            elif len(sqes) < room:
                run = open_run[op.fd] = _Sqe(_WRITE, op.fd, [op], [op.data], op.position, n)
                sqes.append(run)
            else:
                break
            backlog.popleft()
        return sqes

    def _prep(self, sqe):
        user_data = self._next_user_data
        self._next_user_data += 1
        if sqe.kind == _WRITE:
            buffers = sqe.buffers
            if self.fault_max_write is not None and sqe.remaining > self.fault_max_write:
                buffers = _head(buffers, self.fault_max_write)
            ok = self._ring.prep_writev(sqe.fd, buffers, sqe.position, user_data, self._sqe_flags)
        else:
            ok = self._ring.prep_fsync(sqe.fd, sqe.ops[0].datasync, user_data,
                                       _uring.IOSQE_IO_DRAIN | self._sqe_flags)
        assert ok, "no SQ slot although _has_room() said there was one"
        self._in_flight[user_data] = sqe
        self.stats["sqes"] += 1
        if self.trace is not None:
            self.trace.append(("write" if sqe.kind == _WRITE else "fsync", sqe.fd, sqe.position,
                               sqe.remaining))

    def _submit(self):
        if self._ring.sq_pending == 0:
            return
        try:
            self._ring.submit()
        except OSError as exc:
            if exc.errno not in _RETRY_ERRNOS:
                self._fail(exc)
                return
            self.stats["submit_retries"] += 1        # kernel short of memory / CQ backlog
            self._loop.call_later(0.001, self._schedule)
            return
        self.stats["submits"] += 1

    # ---- completions ----------------------------------------------------------------------

    def _on_ready(self):
        """The eventfd fired: the CQ has entries or the helper finished calls."""
        try:
            os.eventfd_read(self._efd)      # reset first: a later completion signals again
        except BlockingIOError:
            pass
        self._complete()

    def _complete(self):
        self._collect_calls()
        self._reap()
        self._deliver()
        if self._can_progress():
            self._schedule()

    def _reap(self):
        in_flight = self._in_flight
        for user_data, res in self._ring.reap():
            sqe = in_flight.pop(user_data, None)
            if sqe is None:             # its ops were already failed by _fail
                continue
            if sqe.kind == _WRITE:
                self._write_done(sqe, res)
            else:
                self._fsync_done(sqe, res)
        if self._fsyncs_to_rerun:
            self._rerun_fsyncs()

    def _write_done(self, sqe, res):
        if res < 0 or res >= sqe.remaining or res == 0:
            self._partial.discard(id(sqe))
        if res < 0:
            self._finish(sqe.ops, OSError(-res, f"write of {sqe.remaining} bytes at {sqe.position} "
                                                f"of fd {sqe.fd}: {os.strerror(-res)}"))
        elif res >= sqe.remaining:
            self._finish(sqe.ops, None)
        elif res == 0:
            self._finish(sqe.ops, OSError(errno.EIO, f"write at {sqe.position} of fd {sqe.fd} "
                                                     "made no progress"))
        else:
            self.stats["short_writes"] += 1
            self._partial.add(id(sqe))
            sqe.buffers = _skip(sqe.buffers, res)
            sqe.position += res
            sqe.remaining -= res
            ops = sqe.ops
            while _end(ops[0]) <= sqe.position:     # these are wholly written: done
                self._finish([ops.pop(0)], None)
            self._resubmit.append(sqe)

    def _fsync_done(self, sqe, res):
        if res >= 0 and self._partial and self._write_unfinished_before(sqe.ops[0]):
            self._fsyncs_to_rerun.append(sqe)       # it missed the rest of a short write
            return
        exc = None if res >= 0 else OSError(-res, f"fsync of fd {sqe.fd}: {os.strerror(-res)}")
        self._finish(sqe.ops, exc)

    def _write_unfinished_before(self, op):
        for other in self._order:
            if other is op:
                return False
            if other.kind == _WRITE and not other.finished:
                return True
        return False

    def _rerun_fsyncs(self):
        waiting, self._fsyncs_to_rerun = self._fsyncs_to_rerun, []
        for sqe in waiting:
            if self._write_unfinished_before(sqe.ops[0]):
                self._fsyncs_to_rerun.append(sqe)
            else:
                self.stats["fsync_reruns"] += 1
                self._resubmit.append(sqe)

    def _finish(self, ops, exc):
        for op in ops:
            op.exc = exc
            op.finished = True
            if op.kind == _WRITE:
                self._ready_fds.add(op.fd)

    def _deliver(self):
        """Each fd's finished writes in order, up to the first undelivered fsync/call/barrier;
        that one once every op before it is delivered; then the writes after it, and so on."""
        fd_writes, order, barriers = self._fd_writes, self._order, self._barriers
        while True:
            limit = barriers[0].seq if barriers else None
            if self._ready_fds:
                ready, self._ready_fds = self._ready_fds, set()
                for fd in ready:
                    writes = fd_writes.get(fd)
                    while writes and writes[0].finished:
                        if limit is not None and writes[0].seq > limit:
                            self._ready_fds.add(fd)     # after the barrier is delivered
                            break
                        self._run_done(writes.popleft())
                    if not writes:
                        fd_writes.pop(fd, None)
            while order and order[0].delivered:
                order.popleft()
            if not order or order[0].kind == _WRITE or not order[0].finished:
                return
            op = order.popleft()                    # a finished barrier with nothing before it
            barriers.popleft()
            self._run_done(op)

    def _run_done(self, op):
        op.delivered = True
        try:
            op.done(op.exc)
        except Exception as exc:  # noqa: BLE001 — one failing callback must not stall the rest
            self._report(exc)

    def _report(self, exc):
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_exception_handler({"message": f"{self.name}: a done callback failed",
                                               "exception": exc})
        else:
            log.error("%s: a done callback failed", self.name, exc_info=exc)

    def _can_progress(self):
        if self._closed or self._broken is not None:
            return False
        if self._resubmit:
            return self._has_room()
        if not self._backlog or self._calls_running:
            return False
        if self._backlog[0].kind == _CALL:
            return self._ring.outstanding == 0
        return self._has_room()

    def _fail(self, exc):
        """io_uring_enter itself failed: every op not yet completed (but the calls running on
        the helper) gets the error, and so does every later submission."""
        self._broken = exc
        running = {id(op) for op in self._calls_running or ()}
        for op in self._order:
            if not op.finished and id(op) not in running:
                self._finish([op], exc)
        self._backlog.clear()
        self._resubmit.clear()
        self._in_flight.clear()
        self._partial.clear()
        self._fsyncs_to_rerun.clear()
        self._deliver()

    # ---- calls on the helper thread -------------------------------------------------------

    def _start_calls(self):
        batch = []
        while self._backlog and self._backlog[0].kind == _CALL:
            batch.append(self._backlog.popleft())
        if self._helper is None:
            self._helper_queue = queue.SimpleQueue()
            self._helper = threading.Thread(target=self._run_calls, name=f"{self.name}:calls",
                                            daemon=True)
            self._helper.start()
        self._calls_running = batch
        self.stats["calls"] += len(batch)
        self._helper_queue.put(batch)

    def _run_calls(self):
        while True:
            batch = self._helper_queue.get()
            if batch is None:
                return
            for op in batch:
                try:
                    op.data()
                except Exception as exc:  # noqa: BLE001 — reported to the op's owner
                    op.exc = exc
            self._calls_done.append(batch)
            os.eventfd_write(self._efd, 1)

    def _collect_calls(self):
        while self._calls_done:
            for op in self._calls_done.popleft():
                op.finished = True
            self._calls_running = None

    # ---- blocking waits and teardown ------------------------------------------------------

    def _wait_idle(self):
        """Run the queue to completion on this thread, delivering every `done` inline."""
        poller = select.poll()
        poller.register(self._efd, select.POLLIN)
        while self._order:
            if self._broken is None:
                self._dispatch()
                self._submit()
            self._on_ready()
            if self._order and not self._order[0].finished:
                poller.poll(100)

    def _release(self):
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(self._efd)
        self._ring.close()
        os.close(self._efd)
        if self._helper is not None:
            self._helper_queue.put(None)
            self._helper.join()
            self._helper = None
