"""A minimal io_uring ring for segment appends (C side: uring_impl.c, raw syscalls, no liburing).

    ring = Ring(256)                      # raises OSError (ENOSYS, EPERM, ...) when unavailable
    ring.register_eventfd(efd)            # the kernel signals efd on every completion
    ring.prep_writev(fd, [buf, ...], offset, user_data, flags)   # False when the SQ is full
    ring.prep_fsync(fd, datasync, user_data, flags)
    ring.submit()                         # one io_uring_enter for everything prepared
    ring.reap()                           # [(user_data, res), ...]: res = bytes written or -errno

Every buffer handed to prep_writev stays exported (PyObject_GetBuffer: a bytearray cannot be
resized, its memory cannot move) together with its iovec array until the completion carrying
its user_data is reaped, so the kernel never reads freed memory. close() (and dealloc) first
waits for every outstanding request. There is no pure-Python twin: without this module the
writer factory (pybroker/log/uring_writer.py) hands out the threaded writer instead.

`probe()` says whether io_uring is usable here: None, or the reason it is not (no such
syscall, io_uring_disabled / seccomp -> EPERM, a kernel older than the opcodes we need).
"""
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from libc.stdint cimport int32_t, uint64_t
from libc.stdlib cimport calloc, free
from posix.uio cimport iovec
import os


cdef extern from "uring_impl.h":
    ctypedef struct pb_uring:
        int ring_fd
        unsigned sq_entries
        unsigned cq_entries
        unsigned features
    int pb_uring_init(pb_uring *r, unsigned entries, unsigned cq_entries) noexcept nogil
    void pb_uring_exit(pb_uring *r) noexcept nogil
    unsigned pb_uring_sq_space(const pb_uring *r) noexcept nogil
    unsigned pb_uring_sq_pending(const pb_uring *r) noexcept nogil
    int pb_uring_prep_writev(pb_uring *r, int fd, const iovec *iov, unsigned nr_iov,
                             uint64_t offset, unsigned sqe_flags, uint64_t user_data) noexcept nogil
    int pb_uring_prep_fsync(pb_uring *r, int fd, int datasync, unsigned sqe_flags,
                            uint64_t user_data) noexcept nogil
    int pb_uring_prep_nop(pb_uring *r, unsigned sqe_flags, uint64_t user_data) noexcept nogil
    int pb_uring_prep_cancel_all(pb_uring *r, uint64_t user_data) noexcept nogil
    int pb_uring_submit(pb_uring *r, unsigned wait_nr) noexcept nogil
    int pb_uring_wait(pb_uring *r, unsigned wait_nr) noexcept nogil
    unsigned pb_uring_reap(pb_uring *r, uint64_t *user_data, int32_t *res, unsigned max) noexcept nogil
    unsigned pb_uring_cq_overflow(const pb_uring *r) noexcept nogil
    int pb_uring_register_eventfd(pb_uring *r, int efd) noexcept nogil
    int pb_uring_probe_ops(pb_uring *r, const int *ops, int n) noexcept nogil
    enum:
        PB_OP_NOP, PB_OP_WRITEV, PB_OP_FSYNC, PB_OP_WRITE
        PB_SQE_IO_DRAIN, PB_SQE_IO_LINK, PB_SQE_ASYNC

IOSQE_IO_DRAIN = PB_SQE_IO_DRAIN
IOSQE_IO_LINK = PB_SQE_IO_LINK
IOSQE_ASYNC = PB_SQE_ASYNC
IOV_MAX = 1024


cdef int _raise_errno(int neg_errno, str what) except -1:
    # OSError(errno, text) picks the subclass (PermissionError for EPERM, ...)
    raise OSError(-neg_errno, f"{what}: {os.strerror(-neg_errno)}")


cdef class _Pin:
    """The buffers of one write SQE and their iovec array, held until its completion."""
    cdef Py_buffer *views
    cdef iovec *iov
    cdef Py_ssize_t count
    cdef readonly Py_ssize_t nbytes

    def __dealloc__(self):
        cdef Py_ssize_t i
        if self.views != NULL:
            for i in range(self.count):
                PyBuffer_Release(&self.views[i])
            free(self.views)
        free(self.iov)

    cdef int pin(self, list buffers) except -1:
        cdef Py_ssize_t n = len(buffers), i
        if n == 0 or n > IOV_MAX:
            raise ValueError(f"a write takes 1..{IOV_MAX} buffers, not {n}")
        self.views = <Py_buffer *>calloc(n, sizeof(Py_buffer))
        self.iov = <iovec *>calloc(n, sizeof(iovec))
        if self.views == NULL or self.iov == NULL:
            raise MemoryError()
        for i in range(n):
            PyObject_GetBuffer(buffers[i], &self.views[i], PyBUF_SIMPLE)
            self.count = i + 1
            self.iov[i].iov_base = self.views[i].buf
            self.iov[i].iov_len = <size_t>self.views[i].len
            self.nbytes += self.views[i].len
        return 0


cdef class Ring:
    """One io_uring instance. Use it from one thread (the event loop's)."""
    cdef pb_uring r
    cdef bint opened
    cdef dict pins                   # user_data -> _Pin of an outstanding write
    cdef uint64_t *cq_user_data
    cdef int32_t *cq_res
    cdef readonly Py_ssize_t outstanding   # prepared SQEs whose completion has not been reaped

    def __cinit__(self, unsigned entries=256, unsigned cq_entries=0):
        cdef int rc = pb_uring_init(&self.r, entries, cq_entries)
        if rc < 0:
            _raise_errno(rc, "io_uring_setup")
        self.opened = True
        self.pins = {}
        self.cq_user_data = <uint64_t *>calloc(self.r.cq_entries, sizeof(uint64_t))
        self.cq_res = <int32_t *>calloc(self.r.cq_entries, sizeof(int32_t))
        if self.cq_user_data == NULL or self.cq_res == NULL:
            raise MemoryError()

    def __dealloc__(self):
        if self.opened:
            self._wait_all()
            pb_uring_exit(&self.r)
        free(self.cq_user_data)
        free(self.cq_res)

    @property
    def entries(self):
        return self.r.sq_entries

    @property
    def cq_entries(self):
        return self.r.cq_entries

    @property
    def fd(self):
        return self.r.ring_fd

    @property
    def sq_space(self):
        """SQEs that can still be prepared before the next submit frees slots."""
        return pb_uring_sq_space(&self.r) if self.opened else 0

    @property
    def sq_pending(self):
        """Prepared SQEs the kernel has not consumed yet."""
        return pb_uring_sq_pending(&self.r) if self.opened else 0

    @property
    def cq_overflow(self):
        return pb_uring_cq_overflow(&self.r) if self.opened else 0

    cdef int _check_open(self) except -1:
        if not self.opened:
            raise ValueError("ring is closed")
        return 0

    def register_eventfd(self, int efd):
        self._check_open()
        cdef int rc = pb_uring_register_eventfd(&self.r, efd)
        if rc < 0:
            _raise_errno(rc, "IORING_REGISTER_EVENTFD")

    def prep_writev(self, int fd, list buffers, uint64_t offset, uint64_t user_data,
                    unsigned flags=0):
        """Queue a write of `buffers` (1..IOV_MAX contiguous buffers) at `offset` of `fd`.
        Returns False (and queues nothing) when the SQ is full."""
        self._check_open()
        if pb_uring_sq_space(&self.r) == 0:
            return False
        if user_data in self.pins:
            raise ValueError(f"user_data {user_data} is already in flight")
        cdef _Pin pin = _Pin()
        pin.pin(buffers)
        cdef int rc = pb_uring_prep_writev(&self.r, fd, pin.iov, <unsigned>pin.count, offset,
                                           flags, user_data)
        if rc < 0:
            _raise_errno(rc, "prep_writev")
        self.pins[user_data] = pin
        self.outstanding += 1
        return True

    def prep_fsync(self, int fd, bint datasync, uint64_t user_data, unsigned flags=0):
        """Queue an fsync (fdatasync when `datasync`) of `fd`. False when the SQ is full."""
        self._check_open()
        if pb_uring_prep_fsync(&self.r, fd, datasync, flags, user_data) < 0:
            return False
        self.outstanding += 1
        return True

    def prep_nop(self, uint64_t user_data, unsigned flags=0):
        self._check_open()
        if pb_uring_prep_nop(&self.r, flags, user_data) < 0:
            return False
        self.outstanding += 1
        return True

    def prep_cancel_all(self, uint64_t user_data):
        """Queue a cancel of every cancellable request (res: how many, or -ENOENT for none)."""
        self._check_open()
        if pb_uring_prep_cancel_all(&self.r, user_data) < 0:
            return False
        self.outstanding += 1
        return True

    def submit(self, unsigned wait_nr=0):
        """Hand every prepared SQE to the kernel in one io_uring_enter (the GIL is released:
        the kernel may issue the writes inline). Returns how many it consumed."""
        self._check_open()
        cdef int rc
        with nogil:
            rc = pb_uring_submit(&self.r, wait_nr)
        if rc < 0:
            _raise_errno(rc, "io_uring_enter")
        return rc

    def wait(self, unsigned wait_nr=1):
        """Block (without the GIL) until at least `wait_nr` completions are in the CQ."""
        self._check_open()
        cdef int rc
        with nogil:
            rc = pb_uring_wait(&self.r, wait_nr)
        if rc < 0:
            _raise_errno(rc, "io_uring_enter")

    def reap(self):
        """Every completion in the CQ as [(user_data, res)], in CQ order; releases the buffers
        of the writes among them."""
        self._check_open()
        cdef unsigned n = pb_uring_reap(&self.r, self.cq_user_data, self.cq_res, self.r.cq_entries)
        cdef unsigned i
        cdef list out = []
        cdef dict pins = self.pins
        for i in range(n):
            ud = self.cq_user_data[i]
            pins.pop(ud, None)
            out.append((ud, self.cq_res[i]))
        self.outstanding -= n
        return out

    cdef void _wait_all(self) noexcept:
        """Submit what is prepared, cancel what can be cancelled (a write parked on a pipe
        nobody reads would otherwise never finish) and wait out every outstanding request
        (results dropped): the kernel must be done with our buffers before they are released."""
        cdef unsigned n
        if self.outstanding > 0:
            if pb_uring_prep_cancel_all(&self.r, 0) == 0:
                self.outstanding += 1
        if pb_uring_sq_pending(&self.r):
            pb_uring_submit(&self.r, 0)
        # SQEs the kernel never consumed will not complete (nor will it read their buffers)
        while self.outstanding > pb_uring_sq_pending(&self.r):
            if pb_uring_wait(&self.r, 1) < 0:
                break
            n = pb_uring_reap(&self.r, self.cq_user_data, self.cq_res, self.r.cq_entries)
            self.outstanding -= n
        self.pins.clear()

    def close(self):
        """Cancel what can be cancelled, wait for every outstanding request, then unmap and
        close the ring."""
        if self.opened:
            self._wait_all()
            pb_uring_exit(&self.r)
            self.opened = False


def probe():
    """None when io_uring can run our writer here, else why not (a short string)."""
    cdef pb_uring r
    cdef int ops[3]
    ops[0] = PB_OP_WRITEV
    ops[1] = PB_OP_WRITE
    ops[2] = PB_OP_FSYNC
    cdef int rc = pb_uring_init(&r, 4, 0)
    if rc < 0:
        return f"io_uring_setup: {os.strerror(-rc)} (errno {-rc})"
    rc = pb_uring_probe_ops(&r, ops, 3)
    pb_uring_exit(&r)
    if rc < 0:
        return f"IORING_REGISTER_PROBE: WRITE/WRITEV/FSYNC not all supported ({os.strerror(-rc)})"
    return None
