"""UringWriter (pybroker/log/uring_writer.py) and its ring binding (pybroker_core.uring): byte-exact
content and completion order across interleaved writes to several files, one io_uring_enter per
loop turn, fsync ordering, short writes (fault hook and a real RLIMIT_FSIZE one), error delivery,
calls on the helper thread, drain/close, the event loop never blocked, the Log on top of it, and
the fallback to ThreadedWriter (pure mode, a missing binding, io_uring refused by seccomp)."""
import asyncio
import errno
import os
import random
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from pbtest import PURE, REPO
from pybroker.log import LogConfig, LogManager, uring_writer
from pybroker.log.uring_writer import UringWriter, new_writer
from pybroker.log.writer import SyncWriter, ThreadedWriter
from log_helpers import all_batches, batch

REASON = uring_writer.unavailable_reason()
needs_uring = pytest.mark.skipif(REASON is not None, reason=f"io_uring unavailable: {REASON}")


def _files(tmp_path, n):
    return [os.open(str(tmp_path / f"f{i}"), os.O_RDWR | os.O_CREAT, 0o644) for i in range(n)]


def _close_all(fds):
    for fd in fds:
        os.close(fd)


def _per_file(seq, file_of):
    """seq split into one list per file, keeping its order (the writers order each file's
    writes; writes to different files may complete in either order)."""
    out = {}
    for item in seq:
        out.setdefault(file_of(item), []).append(item)
    return out


def _subprocess(code):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "core"), str(REPO), str(REPO / "tests")]))
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True,
                          text=True, timeout=60)


# ---- availability and the fallback ------------------------------------------------------------

def test_binding_loaded_matches_the_mode():
    if PURE:
        assert uring_writer._uring is None
        assert "PYBROKER_PURE" in REASON
    else:
        import pybroker_core.uring
        assert uring_writer._uring is pybroker_core.uring


def test_factory_gives_uring_when_available_else_threaded():
    w = new_writer("uring", name="log-writer:test")
    try:
        assert isinstance(w, UringWriter if REASON is None else ThreadedWriter)
        assert w.is_async
    finally:
        w.close()


def test_factory_falls_back_when_probe_says_no(monkeypatch):
    monkeypatch.setattr(uring_writer, "_unavailable", ["io_uring_setup: Operation not permitted"])
    w = new_writer("uring")
    try:
        assert type(w) is ThreadedWriter
    finally:
        w.close()


def test_factory_falls_back_when_ring_setup_fails(monkeypatch):
    def refuse(**kw):
        raise OSError(errno.ENOMEM, "Cannot allocate memory")
    monkeypatch.setattr(uring_writer, "_unavailable", [None])
    monkeypatch.setattr(uring_writer, "UringWriter", refuse)
    w = new_writer("uring")
    try:
        assert type(w) is ThreadedWriter
    finally:
        w.close()


def test_factory_other_kinds():
    assert type(new_writer("sync")) is SyncWriter
    w = new_writer("thread")
    assert type(w) is ThreadedWriter
    w.close()
    with pytest.raises(ValueError):
        new_writer("aio")


def test_without_the_binding_the_writer_refuses_to_build(monkeypatch):
    monkeypatch.setattr(uring_writer, "_uring", None)
    with pytest.raises(OSError) as info:
        UringWriter()
    assert info.value.errno == errno.ENOSYS


@pytest.mark.skipif(PURE, reason="the compiled binding is not used in pure mode")
@pytest.mark.skipif(sys.platform != "linux", reason="seccomp is Linux-only")
def test_seccomp_refusal_is_detected_and_falls_back():
    """A seccomp filter returning EPERM for io_uring_setup (what container runtimes do)."""
    out = _subprocess("""
        import ctypes, struct
        libc = ctypes.CDLL(None, use_errno=True)
        # BPF: load seccomp_data.nr; == 425 (io_uring_setup) -> ERRNO(EPERM), else ALLOW
        prog = [(0x20, 0, 0, 0), (0x15, 0, 1, 425), (0x06, 0, 0, 0x00050000 | 1),
                (0x06, 0, 0, 0x7fff0000)]
        raw = b"".join(struct.pack("HBBI", *ins) for ins in prog)
        buf = ctypes.create_string_buffer(raw)
        class Fprog(ctypes.Structure):
            _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
        fprog = Fprog(len(prog), ctypes.addressof(buf))
        assert libc.prctl(38, 1, 0, 0, 0) == 0                        # PR_SET_NO_NEW_PRIVS
        assert libc.prctl(22, 2, ctypes.byref(fprog), 0, 0) == 0      # SECCOMP_MODE_FILTER
        from pybroker.log import uring_writer
        from pybroker.log.writer import ThreadedWriter
        w = uring_writer.new_writer("uring")
        print(type(w).__name__, "|", uring_writer.unavailable_reason())
        w.close()
    """)
    assert out.returncode == 0, out.stderr
    kind, reason = out.stdout.strip().split(" | ")
    assert kind == "ThreadedWriter"
    assert "Operation not permitted" in reason and "errno 1" in reason
    assert "seccomp" in reason or "io_uring_disabled" in reason


def test_the_factorys_writer_keeps_the_seam_in_either_mode(tmp_path):
    """Whatever new_writer("uring") returns here (UringWriter, or ThreadedWriter in pure mode or
    without io_uring) writes byte-exact, completes each file's writes in submission order, and
    an fsync or call after every op before it and before every op after it."""
    fds = _files(tmp_path, 3)
    expected = [bytearray() for _ in fds]
    order = []

    async def main():
        w = new_writer("uring")
        for i in range(200):
            f = (i * 7) % len(fds)
            data = bytearray(b"%05d" % i * (1 + i % 9))
            w.submit_write(fds[f], data, len(expected[f]), lambda exc, i=i: order.append((i, exc)))
            expected[f] += data
            if i % 50 == 49:
                w.submit_fsync(fds[f], lambda exc, i=i: order.append((f"sync{i}", exc)))
                w.submit_call(lambda: None, lambda exc, i=i: order.append((f"call{i}", exc)))
        await w.adrain()
        w.close()
    asyncio.run(main())
    names = [name for name, _ in order]
    assert all(exc is None for _, exc in order)
    ints = [n for n in names if isinstance(n, int)]
    assert sorted(ints) == list(range(200))
    assert _per_file(ints, lambda i: (i * 7) % len(fds)) == _per_file(range(200), lambda i: (i * 7) % len(fds))
    for k in (49, 99, 149, 199):
        at = names.index(f"sync{k}")
        assert names[at + 1] == f"call{k}"
        assert all(n <= k for n in names[:at] if isinstance(n, int))
        assert all(n > k for n in names[at:] if isinstance(n, int))
    for fd, exp in zip(fds, expected):
        assert os.pread(fd, len(exp) + 1, 0) == exp
    _close_all(fds)


# ---- the ring binding --------------------------------------------------------------------------

@needs_uring
def test_ring_pins_buffers_until_reaped(tmp_path):
    from pybroker_core import uring
    (fd,) = _files(tmp_path, 1)
    ring = uring.Ring(4)
    data = bytearray(b"abc")
    assert ring.prep_writev(fd, [data, b"def"], 0, 7)
    with pytest.raises(BufferError):
        data.extend(b"x")          # exported to the kernel: cannot move
    ring.submit(1)
    assert ring.reap() == [(7, 6)]
    data.extend(b"x")              # released once reaped
    assert os.pread(fd, 10, 0) == b"abcdef"
    with pytest.raises(ValueError):
        ring.prep_writev(fd, [], 0, 8)
    ring.close()
    with pytest.raises(ValueError):
        ring.submit()
    os.close(fd)


@needs_uring
def test_ring_reports_full_sq_and_errors(tmp_path):
    from pybroker_core import uring
    ring = uring.Ring(2)
    assert ring.entries == 2 and ring.sq_space == 2
    assert ring.prep_nop(1) and ring.prep_nop(2)
    assert not ring.prep_nop(3) and not ring.prep_writev(0, [b"x"], 0, 3)
    assert ring.sq_pending == 2
    assert ring.submit(2) == 2
    assert sorted(ring.reap()) == [(1, 0), (2, 0)]
    rfd = os.open(str(tmp_path / "ro"), os.O_RDONLY | os.O_CREAT, 0o644)
    assert ring.prep_writev(rfd, [b"x"], 0, 9)
    ring.submit(1)
    assert ring.reap() == [(9, -errno.EBADF)]
    ring.close()
    os.close(rfd)


@needs_uring
def test_ring_close_cancels_a_write_parked_on_a_full_pipe():
    from pybroker_core import uring
    r, w = os.pipe()
    ring = uring.Ring(4)
    os.write(w, b"f" * 65536)            # the pipe buffer is full: the next write parks
    payload = bytearray(4096)
    assert ring.prep_writev(w, [payload], 0, 1)
    ring.submit()
    time.sleep(0.05)
    assert ring.reap() == [] and ring.outstanding == 1
    t = time.perf_counter()
    ring.close()                          # cancels it, then waits for its completion
    assert time.perf_counter() - t < 5
    payload.extend(b"x")                  # the buffer was released
    os.close(r)
    os.close(w)


# ---- order and content ---------------------------------------------------------------------------

@needs_uring
def test_interleaved_writes_to_several_files_are_byte_exact_and_delivered_in_order(tmp_path):
    fds = _files(tmp_path, 5)
    rng = random.Random(5)
    expected = [bytearray() for _ in fds]
    delivered, submitted, files = [], [], []

    async def main():
        w = UringWriter(entries=32)
        for i in range(3000):
            f = rng.randrange(len(fds))
            size = rng.choice([1, 7, 100, 1024, 4096, 16384, 70000])
            payload = bytes([i % 251]) * size
            data = rng.choice([bytes, bytearray, memoryview])(payload)
            w.submit_write(fds[f], data, len(expected[f]), lambda exc, i=i: delivered.append((i, exc)))
            expected[f] += payload
            submitted.append(i)
            files.append(f)
            if rng.random() < 0.02:
                await asyncio.sleep(0)     # a new loop turn
        await w.adrain()
        w.close()
        return w.stats
    stats = asyncio.run(main())
    assert all(exc is None for _, exc in delivered)
    got = [i for i, _ in delivered]
    assert sorted(got) == submitted
    file_of = dict(zip(submitted, files))
    assert _per_file(got, file_of.get) == _per_file(submitted, file_of.get)
    for fd, exp in zip(fds, expected):
        assert os.fstat(fd).st_size == len(exp)
        assert os.pread(fd, len(exp) + 1, 0) == exp
    assert stats["sqes"] < stats["ops"]           # contiguous runs per fd were merged
    _close_all(fds)


@needs_uring
def test_one_submission_per_loop_turn(tmp_path):
    fds = _files(tmp_path, 4)

    async def main():
        w = UringWriter()
        pos = [0] * len(fds)
        for turn in range(20):
            for i in range(50):                   # 50 ops in one turn, interleaved over 4 files
                f = (i * 3 + turn) % len(fds)
                w.submit_write(fds[f], b"%04d" % i, pos[f], lambda exc: None)
                pos[f] += 4
            before = w.stats["submits"]
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            assert w.stats["submits"] <= before + 1
        await w.adrain()
        stats = dict(w.stats)
        w.close()
        return stats, pos
    stats, pos = asyncio.run(main())
    assert stats["submits"] == 20 and stats["turns"] >= 20
    assert stats["sqes"] == 20 * len(fds)         # one SQE per file per turn
    assert [os.fstat(fd).st_size for fd in fds] == pos
    _close_all(fds)


@needs_uring
def test_fsync_is_ordered_after_earlier_writes_and_before_later_ones(tmp_path):
    fds = _files(tmp_path, 2)
    order = []

    async def main():
        w = UringWriter()
        w.trace = []
        w.submit_write(fds[0], b"a" * 5000, 0, lambda exc: order.append(("w0", exc)))
        w.submit_write(fds[1], b"b" * 5000, 0, lambda exc: order.append(("w1", exc)))
        w.submit_fsync(fds[0], lambda exc: order.append(("sync0", exc)))
        w.submit_write(fds[0], b"c" * 10, 5000, lambda exc: order.append(("w2", exc)))
        w.submit_fsync(fds[1], lambda exc: order.append(("sync1", exc)), datasync=False)
        await w.adrain()
        trace = w.trace
        w.close()
        return trace
    trace = asyncio.run(main())
    # w0 and w1 (different files) may complete in either order; each fsync after both
    assert sorted(order[:2]) == [("w0", None), ("w1", None)]
    assert order[2:] == [("sync0", None), ("w2", None), ("sync1", None)]
    assert [t[0] for t in trace] == ["write", "write", "fsync", "write", "fsync"]
    assert os.pread(fds[0], 6000, 0) == b"a" * 5000 + b"c" * 10
    _close_all(fds)


# ---- short writes and errors ---------------------------------------------------------------------

@needs_uring
def test_short_writes_are_resubmitted_and_a_covering_fsync_rerun(tmp_path):
    fds = _files(tmp_path, 2)
    expected = [bytearray(), bytearray()]
    order = []

    async def main():
        w = UringWriter()
        w.fault_max_write = 1000         # every write SQE moves at most 1000 bytes
        w.trace = []
        for i in range(40):
            f = i % 2
            data = bytearray(os.urandom(300 + 97 * i))
            w.submit_write(fds[f], data, len(expected[f]), lambda exc, i=i: order.append((i, exc)))
            expected[f] += data
        w.submit_fsync(fds[0], lambda exc: order.append(("sync", exc)))
        await w.adrain()
        stats, trace = dict(w.stats), w.trace
        w.close()
        return stats, trace
    stats, trace = asyncio.run(main())
    assert all(exc is None for _, exc in order) and order[-1] == ("sync", None)
    writes = [i for i, _ in order[:-1]]
    assert sorted(writes) == list(range(40))
    assert _per_file(writes, lambda i: i % 2) == _per_file(range(40), lambda i: i % 2)
    for fd, exp in zip(fds, expected):
        assert os.pread(fd, len(exp) + 1, 0) == exp
    assert stats["short_writes"] > 0
    # the fsync went into the ring with the first short write: it must run again after the rest
    assert stats["fsync_reruns"] >= 1
    last_fsync = max(i for i, t in enumerate(trace) if t[0] == "fsync")
    assert all(t[0] != "write" for t in trace[last_fsync:])
    _close_all(fds)


@needs_uring
def test_real_short_write_at_the_file_size_limit_then_efbig(tmp_path):
    """RLIMIT_FSIZE makes the kernel itself return a short write; the rest fails with EFBIG."""
    out = _subprocess(f"""
        import asyncio, os, resource, signal
        from pybroker.log.uring_writer import UringWriter
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        fd = os.open({str(tmp_path / "limited")!r}, os.O_RDWR | os.O_CREAT, 0o644)
        resource.setrlimit(resource.RLIMIT_FSIZE, (10000, resource.RLIM_INFINITY))
        got = []
        async def main():
            w = UringWriter()
            w.submit_write(fd, b"x" * 4096, 0, got.append)
            w.submit_write(fd, b"y" * 8000, 4096, got.append)
            w.submit_write(fd, b"z" * 10, 20000, got.append)
            await w.adrain()
            print(w.stats["short_writes"])
            w.close()
        asyncio.run(main())
        print(got[0], type(got[1]).__name__, got[1].errno, got[2].errno)
        print(os.fstat(fd).st_size, os.pread(fd, 20000, 0) == b"x" * 4096 + b"y" * 5904)
    """)
    assert out.returncode == 0, out.stderr
    shorts, results, content = out.stdout.strip().splitlines()
    assert int(shorts) == 1
    assert results == f"None OSError {errno.EFBIG} {errno.EFBIG}"
    assert content == "10000 True"


@needs_uring
def test_errors_reach_their_op_and_the_writer_goes_on(tmp_path):
    (fd,) = _files(tmp_path, 1)
    ro = os.open(str(tmp_path / "f0"), os.O_RDONLY)
    got = []

    async def main():
        w = UringWriter()
        closed = os.open(str(tmp_path / "gone"), os.O_RDWR | os.O_CREAT)
        os.close(closed)           # after the loop and the ring took their fds: stays closed
        w.submit_write(fd, b"ok1", 0, lambda exc: got.append(("ok1", exc)))
        w.submit_write(ro, b"bad", 3, lambda exc: got.append(("ro", exc)))
        w.submit_write(closed, b"bad", 0, lambda exc: got.append(("closed", exc)))
        w.submit_fsync(closed, lambda exc: got.append(("fsync", exc)))
        w.submit_write(fd, b"ok2", 3, lambda exc: got.append(("ok2", exc)))
        await w.adrain()
        w.close()
    asyncio.run(main())
    names = [name for name, _ in got]
    assert sorted(names[:3]) == ["closed", "ok1", "ro"] and names[3:] == ["fsync", "ok2"]
    result = dict(got)
    assert result["ok1"] is None and result["ok2"] is None
    for name in ("ro", "closed", "fsync"):
        exc = result[name]
        assert isinstance(exc, OSError) and exc.errno == errno.EBADF, (name, exc)
    assert "fd" in str(result["ro"])
    assert os.pread(fd, 10, 0) == b"ok1ok2"
    os.close(ro)
    os.close(fd)


@needs_uring
def test_a_failing_done_callback_does_not_stall_the_others(tmp_path):
    (fd,) = _files(tmp_path, 1)
    got, handled = [], []

    async def main():
        asyncio.get_running_loop().set_exception_handler(lambda loop, ctx: handled.append(ctx))
        w = UringWriter()
        w.submit_write(fd, b"a", 0, lambda exc: 1 / 0)
        w.submit_write(fd, b"b", 1, got.append)
        await w.adrain()
        w.close()
    asyncio.run(main())
    assert got == [None]
    assert isinstance(handled[0]["exception"], ZeroDivisionError)
    os.close(fd)


# ---- calls ---------------------------------------------------------------------------------------

@needs_uring
def test_calls_run_off_the_loop_after_earlier_ops_and_before_later_ones(tmp_path):
    (fd,) = _files(tmp_path, 1)
    seen, order = {}, []

    def call():
        seen["thread"] = threading.get_ident()
        seen["content"] = os.pread(fd, 100, 0)    # every earlier write is in the file
        os.pwrite(fd, b"CALL", 0)

    def failing():
        raise ValueError("checkpoint broke")

    async def main():
        loop_thread = threading.get_ident()
        w = UringWriter()
        for i in range(10):
            w.submit_write(fd, b"%d" % i, i, lambda exc, i=i: order.append(i))
        w.submit_call(call, lambda exc: order.append(("call", exc)))
        w.submit_call(failing, lambda exc: order.append(("failing", type(exc))))
        w.submit_write(fd, b"AFTER", 2, lambda exc: order.append("after"))  # must follow the call
        await w.adrain()
        w.close()
        return loop_thread
    loop_thread = asyncio.run(main())
    assert order == list(range(10)) + [("call", None), ("failing", ValueError), "after"]
    assert seen["content"] == b"0123456789" and seen["thread"] != loop_thread
    assert os.pread(fd, 100, 0) == b"CAAFTER789"
    os.close(fd)


# ---- drain and close -----------------------------------------------------------------------------

@needs_uring
def test_blocking_drain_and_close_deliver_everything(tmp_path):
    (fd,) = _files(tmp_path, 1)
    got = []

    async def main():
        w = UringWriter()
        for i in range(100):
            w.submit_write(fd, b"x" * 100, 100 * i, got.append)
        w.drain()                          # on the loop thread: blocks, delivers inline
        assert len(got) == 100
        w.submit_write(fd, b"y", 10000, got.append)
        w.submit_call(lambda: time.sleep(0.05), got.append)
        w.close()                          # finishes both before releasing the ring
        assert len(got) == 102
        w.close()                          # idempotent
        with pytest.raises(RuntimeError):
            w.submit_write(fd, b"z", 0, got.append)
    asyncio.run(main())
    assert got == [None] * 102 and os.fstat(fd).st_size == 10001
    os.close(fd)


@needs_uring
def test_drain_from_another_thread_waits_for_the_loop(tmp_path):
    (fd,) = _files(tmp_path, 1)
    got = []

    async def main():
        w = UringWriter()
        w.submit_call(lambda: time.sleep(0.1), got.append)
        w.submit_write(fd, b"abc", 0, got.append)
        await asyncio.to_thread(w.drain)
        assert got == [None, None]
        w.submit_write(fd, b"d", 3, got.append)
        await asyncio.to_thread(w.close)
    asyncio.run(main())
    assert got == [None] * 3 and os.pread(fd, 10, 0) == b"abcd"
    os.close(fd)


@needs_uring
def test_submitting_outside_a_loop_is_refused_and_a_new_loop_takes_over(tmp_path):
    (fd,) = _files(tmp_path, 1)
    w = UringWriter()
    with pytest.raises(RuntimeError):
        w.submit_write(fd, b"a", 0, lambda exc: None)
    got = []

    async def write(data, pos):
        w.submit_write(fd, data, pos, got.append)
        await w.adrain()
    asyncio.run(write(b"one", 0))
    asyncio.run(write(b"two", 3))           # a second loop, as after asyncio.run again
    w.close()
    assert got == [None, None] and os.pread(fd, 10, 0) == b"onetwo"
    os.close(fd)


# ---- the loop is never blocked -------------------------------------------------------------------

async def _ticker(lags, stop, period=0.001):
    while not stop.is_set():
        t = time.perf_counter()
        await asyncio.sleep(period)
        lags.append(time.perf_counter() - t - period)


@needs_uring
def test_a_write_blocked_in_the_kernel_does_not_block_the_loop():
    """A pipe nobody reads: the kernel parks the write; the loop keeps ticking; once a reader
    drains the pipe the write completes."""
    r, wfd = os.pipe()
    payload = os.urandom(1 << 20)             # far more than the 64 KiB pipe buffer
    got, lags, received = [], [], bytearray()

    async def main():
        w = UringWriter()
        stop = asyncio.Event()
        tick = asyncio.ensure_future(_ticker(lags, stop))
        w.submit_write(wfd, payload, 0, got.append)
        await asyncio.sleep(0.3)
        assert got == []                       # still parked
        ticks_while_parked = len(lags)

        def reader():
            while len(received) < len(payload):
                received.extend(os.read(r, 1 << 16))
        thread = threading.Thread(target=reader)
        thread.start()
        await w.adrain()
        stop.set()
        await tick
        thread.join(10)
        w.close()
        return ticks_while_parked
    ticks = asyncio.run(main())
    assert got == [None] and bytes(received) == payload
    assert ticks > 50                          # ~300 ticks of 1 ms if nothing blocked the loop
    os.close(r)
    os.close(wfd)


@needs_uring
def test_a_write_parked_in_the_kernel_holds_up_its_own_file_only(tmp_path):
    """A pipe nobody reads stands in for a segment whose write the kernel parks (ext4 waiting on
    the inode's i_data_sem while writeback converts its extents): the writes to other files
    queued behind it are delivered meanwhile; the next write to the pipe, an fsync and the
    writes after the fsync wait for it."""
    r, wfd = os.pipe()
    fds = _files(tmp_path, 2)
    payload = os.urandom(1 << 20)             # far more than the 64 KiB pipe buffer
    got, received = [], bytearray()

    async def main():
        w = UringWriter()
        w.submit_write(wfd, payload, 0, lambda exc: got.append(("pipe", exc)))
        for i in range(10):
            w.submit_write(fds[i % 2], b"%02d" % i * 50, 100 * (i // 2),
                           lambda exc, i=i: got.append((i, exc)))
        w.submit_write(wfd, b"tail", 0, lambda exc: got.append(("pipe tail", exc)))
        w.submit_fsync(fds[0], lambda exc: got.append(("fsync", exc)))
        w.submit_write(fds[1], b"after", 500, lambda exc: got.append(("after", exc)))
        for _ in range(200):
            if len(got) >= 10:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        parked = list(got)

        def reader():
            while len(received) < len(payload) + 4:
                received.extend(os.read(r, 1 << 16))
        thread = threading.Thread(target=reader)
        thread.start()
        await w.adrain()
        thread.join(10)
        w.close()
        return parked
    parked = asyncio.run(main())
    assert sorted(parked) == [(i, None) for i in range(10)]
    assert _per_file([i for i, _ in parked], lambda i: i % 2) == _per_file(range(10), lambda i: i % 2)
    assert got[10:] == [("pipe", None), ("pipe tail", None), ("fsync", None), ("after", None)]
    assert len(received) == len(payload) + 4
    assert os.pread(fds[1], 600, 0) == b"".join(b"%02d" % i * 50 for i in range(1, 10, 2)) + b"after"
    _close_all([r, wfd, *fds])


@needs_uring
def test_loop_lag_stays_low_while_writing_many_megabytes(tmp_path):
    fds = _files(tmp_path, 4)
    lags = []

    async def main():
        w = UringWriter()
        stop = asyncio.Event()
        tick = asyncio.ensure_future(_ticker(lags, stop))
        chunk = os.urandom(16 << 10)
        pos = [0] * len(fds)
        for i in range(2048):                  # 32 MiB in 16 KiB appends, 64 per turn
            f = i % len(fds)
            w.submit_write(fds[f], chunk, pos[f], lambda exc: None)
            pos[f] += len(chunk)
            if i % 64 == 63:
                await asyncio.sleep(0)
        w.submit_call(lambda: time.sleep(0.2), lambda exc: None)   # slow work on the helper
        await w.adrain()
        stop.set()
        await tick
        w.close()
        return pos
    pos = asyncio.run(main())
    assert [os.fstat(fd).st_size for fd in fds] == pos
    lags.sort()
    assert len(lags) > 50                      # the ticker ran during the 0.2 s call too
    assert lags[len(lags) // 2] < 0.02, lags[-5:]
    _close_all(fds)


# ---- the log on top of it ------------------------------------------------------------------------

@needs_uring
def test_log_manager_with_the_uring_writer_round_trips(tmp_path):
    async def main():
        mgr = LogManager([str(tmp_path / "a")], config=LogConfig(segment_bytes=4000),
                         writer=lambda: new_writer("uring"))
        mgr.startup()
        log = mgr.get_or_create_log("orders", 0)
        assert isinstance(log.writer, UringWriter)
        sent = []
        for i in range(30):
            b = batch(3, size=300, tag=i)
            sent.append(bytes(b[61:]))             # records part: offsets are assigned on append
            await log.append(b)
        await log.flush()
        assert len(log.segments) > 1
        got = all_batches(log)
        await mgr.shutdown()
        return sent, got
    sent, got = asyncio.run(main())
    assert [g[0] for g in got] == list(range(0, 90, 3))
    assert [g[2][61:] for g in got] == sent

    mgr = LogManager([str(tmp_path / "a")], writer="sync")
    mgr.startup()
    log = mgr.get_log("orders", 0)
    assert log.log_end_offset == 90 and [b[2] for b in all_batches(log)] == [g[2] for g in got]
    mgr.shutdown_sync()


# ---- the side lane: small-file writes beside the appends ---------------------------------------

def _writer(kind):
    if kind == "uring" and REASON is not None:
        pytest.skip(f"io_uring unavailable: {REASON}")
    return UringWriter() if kind == "uring" else ThreadedWriter()


@pytest.mark.parametrize("kind", ["uring", "thread"])
def test_a_slow_side_call_neither_waits_for_nor_holds_up_the_appends(tmp_path, kind):
    # a checkpoint's fsync took up to 280 ms with GiBs of dirty page cache; queued as a call it
    # held every append of the log dir behind it
    (fd,) = _files(tmp_path, 1)
    order, release = [], threading.Event()
    loop_thread = threading.get_ident()

    async def main():
        w = _writer(kind)
        w.submit_write(fd, b"abc", 0, lambda exc: order.append(("write1", exc)))
        w.submit_side_call(lambda: release.wait(10), lambda exc: order.append(("side1", exc)))
        w.submit_side_call(lambda: order.append(("side2 ran", threading.get_ident() != loop_thread)),
                           lambda exc: order.append(("side2", exc)))
        w.submit_write(fd, b"def", 3, lambda exc: order.append(("write2", exc)))
        t0 = time.monotonic()
        while ("write2", None) not in order:
            await asyncio.sleep(0.005)
            assert time.monotonic() - t0 < 5, order
        # side1 still runs, and side2 waits for it (the lane keeps its order): the write went past
        assert ("side1", None) not in order and ("side2 ran", True) not in order
        release.set()
        await w.adrain()                                # waits for the lane too
        assert ("side2 ran", True) in order             # on the lane's thread
        assert [e for e in order if e[0] in ("side1", "side2")] == [("side1", None), ("side2", None)]
        w.submit_side_call(lambda: 1 / 0, lambda exc: order.append(("failed", type(exc))))
        w.drain()                                       # on the loop thread: delivered inline
        assert order[-1] == ("failed", ZeroDivisionError)
        w.close()
    asyncio.run(main())
    assert os.pread(fd, 10, 0) == b"abcdef"
    os.close(fd)


def test_sync_writer_runs_side_calls_inline():
    got = []
    SyncWriter().submit_side_call(lambda: got.append("ran"), got.append)
    assert got == ["ran", None]
