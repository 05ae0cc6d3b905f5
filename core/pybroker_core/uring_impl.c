/* io_uring over the raw syscalls; see uring_impl.h for the ring layout and the contract. */
#include "uring_impl.h"

#include <errno.h>
#include <string.h>

#if defined(__linux__) && defined(__has_include)
#if __has_include(<linux/io_uring.h>)
#define PB_HAVE_URING 1
#endif
#endif

#ifdef PB_HAVE_URING
#include <linux/io_uring.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

/* The io_uring syscalls were added after the per-arch tables were unified: same numbers everywhere. */
#ifndef __NR_io_uring_setup
#define __NR_io_uring_setup 425
#endif
#ifndef __NR_io_uring_enter
#define __NR_io_uring_enter 426
#endif
#ifndef __NR_io_uring_register
#define __NR_io_uring_register 427
#endif

#define LOAD_ACQ(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define STORE_REL(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)

static int sys_setup(unsigned entries, struct io_uring_params *p)
{
    long rc = syscall(__NR_io_uring_setup, entries, p);
    return rc < 0 ? -errno : (int)rc;
}

static int sys_enter(int fd, unsigned to_submit, unsigned min_complete, unsigned flags)
{
    long rc = syscall(__NR_io_uring_enter, fd, to_submit, min_complete, flags, NULL, (size_t)0);
    return rc < 0 ? -errno : (int)rc;
}

static int sys_register(int fd, unsigned opcode, void *arg, unsigned nr_args)
{
    long rc = syscall(__NR_io_uring_register, fd, opcode, arg, nr_args);
    return rc < 0 ? -errno : (int)rc;
}

static void *map_ring(int fd, size_t len, long long offset)
{
    return mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, offset);
}

static int map_rings(pb_uring *r, const struct io_uring_params *p)
{
    r->sq_len = p->sq_off.array + p->sq_entries * sizeof(unsigned);
    r->cq_len = p->cq_off.cqes + p->cq_entries * sizeof(struct io_uring_cqe);
    if (p->features & IORING_FEAT_SINGLE_MMAP) {            /* 5.4+: SQ and CQ rings share one map */
        if (r->cq_len > r->sq_len)
            r->sq_len = r->cq_len;
        r->cq_len = r->sq_len;
    }
    r->sq_ptr = map_ring(r->ring_fd, r->sq_len, IORING_OFF_SQ_RING);
    if (r->sq_ptr == MAP_FAILED)
        return -errno;
    r->cq_ptr = r->sq_ptr;
    if (!(p->features & IORING_FEAT_SINGLE_MMAP)) {
        r->cq_ptr = map_ring(r->ring_fd, r->cq_len, IORING_OFF_CQ_RING);
        if (r->cq_ptr == MAP_FAILED)
            return -errno;
    }
    r->sqes_len = p->sq_entries * sizeof(struct io_uring_sqe);
    r->sqes = map_ring(r->ring_fd, r->sqes_len, IORING_OFF_SQES);
    return r->sqes == MAP_FAILED ? -errno : 0;
}

static void set_pointers(pb_uring *r, const struct io_uring_params *p)
{
    char *sq = r->sq_ptr, *cq = r->cq_ptr;
    r->sq_head = (unsigned *)(sq + p->sq_off.head);
    r->sq_tail = (unsigned *)(sq + p->sq_off.tail);
    r->sq_mask = (unsigned *)(sq + p->sq_off.ring_mask);
    r->sq_array = (unsigned *)(sq + p->sq_off.array);
    r->cq_head = (unsigned *)(cq + p->cq_off.head);
    r->cq_tail = (unsigned *)(cq + p->cq_off.tail);
    r->cq_mask = (unsigned *)(cq + p->cq_off.ring_mask);
    r->cq_overflow = (unsigned *)(cq + p->cq_off.overflow);
    r->cqes = cq + p->cq_off.cqes;
    /* The SQ array is an indirection we do not use: slot i always names SQE i. */
    for (unsigned i = 0; i < p->sq_entries; i++)
        r->sq_array[i] = i;
    r->local_tail = *r->sq_tail;
}

int pb_uring_init(pb_uring *r, unsigned entries, unsigned cq_entries)
{
    struct io_uring_params p;
    memset(r, 0, sizeof(*r));
    r->ring_fd = -1;
    r->sq_ptr = r->cq_ptr = r->sqes = MAP_FAILED;
    memset(&p, 0, sizeof(p));
    if (cq_entries) {
        p.flags |= IORING_SETUP_CQSIZE;
        p.cq_entries = cq_entries;
    }
    int fd = sys_setup(entries, &p);
    if (fd < 0)
        return fd;
    r->ring_fd = fd;
    r->sq_entries = p.sq_entries;
    r->cq_entries = p.cq_entries;
    r->features = p.features;
    int rc = map_rings(r, &p);
    if (rc < 0) {
        pb_uring_exit(r);
        return rc;
    }
    set_pointers(r, &p);
    return 0;
}

void pb_uring_exit(pb_uring *r)
{
    if (r->sqes != MAP_FAILED && r->sqes != NULL)
        munmap(r->sqes, r->sqes_len);
    if (r->cq_ptr != MAP_FAILED && r->cq_ptr != NULL && r->cq_ptr != r->sq_ptr)
        munmap(r->cq_ptr, r->cq_len);
    if (r->sq_ptr != MAP_FAILED && r->sq_ptr != NULL)
        munmap(r->sq_ptr, r->sq_len);
    if (r->ring_fd >= 0)
        close(r->ring_fd);
    r->sqes = r->cq_ptr = r->sq_ptr = NULL;
    r->ring_fd = -1;
}

unsigned pb_uring_sq_space(const pb_uring *r)
{
    return r->sq_entries - (r->local_tail - LOAD_ACQ(r->sq_head));
}

unsigned pb_uring_sq_pending(const pb_uring *r)
{
    return r->local_tail - LOAD_ACQ(r->sq_head);
}

static struct io_uring_sqe *next_sqe(pb_uring *r)
{
    if (pb_uring_sq_space(r) == 0)
        return NULL;
    struct io_uring_sqe *sqe = (struct io_uring_sqe *)r->sqes + (r->local_tail & *r->sq_mask);
    memset(sqe, 0, sizeof(*sqe));
    r->local_tail++;
    return sqe;
}

int pb_uring_prep_writev(pb_uring *r, int fd, const struct iovec *iov, unsigned nr_iov,
                         uint64_t offset, unsigned sqe_flags, uint64_t user_data)
{
    struct io_uring_sqe *sqe = next_sqe(r);
    if (!sqe)
        return -EBUSY;
    sqe->fd = fd;
    sqe->flags = (uint8_t)sqe_flags;
    sqe->off = offset;
    sqe->user_data = user_data;
    if (nr_iov == 1) {                       /* IORING_OP_WRITE (5.6) skips the iovec import */
        sqe->opcode = IORING_OP_WRITE;
        sqe->addr = (uint64_t)(uintptr_t)iov[0].iov_base;
        sqe->len = (uint32_t)iov[0].iov_len;
    } else {
        sqe->opcode = IORING_OP_WRITEV;
        sqe->addr = (uint64_t)(uintptr_t)iov;
        sqe->len = nr_iov;
    }
    return 0;
}

int pb_uring_prep_fsync(pb_uring *r, int fd, int datasync, unsigned sqe_flags, uint64_t user_data)
{
    struct io_uring_sqe *sqe = next_sqe(r);
    if (!sqe)
        return -EBUSY;
    sqe->opcode = IORING_OP_FSYNC;
    sqe->fd = fd;
    sqe->flags = (uint8_t)sqe_flags;
    sqe->fsync_flags = datasync ? IORING_FSYNC_DATASYNC : 0;
    sqe->user_data = user_data;
    return 0;
}

int pb_uring_prep_nop(pb_uring *r, unsigned sqe_flags, uint64_t user_data)
{
    struct io_uring_sqe *sqe = next_sqe(r);
    if (!sqe)
        return -EBUSY;
    sqe->opcode = IORING_OP_NOP;
    sqe->fd = -1;
    sqe->flags = (uint8_t)sqe_flags;
    sqe->user_data = user_data;
    return 0;
}

#ifndef IORING_ASYNC_CANCEL_ALL
#define IORING_ASYNC_CANCEL_ALL (1U << 0)
#endif
#ifndef IORING_ASYNC_CANCEL_ANY
#define IORING_ASYNC_CANCEL_ANY (1U << 2)
#endif

int pb_uring_prep_cancel_all(pb_uring *r, uint64_t user_data)
{
    struct io_uring_sqe *sqe = next_sqe(r);
    if (!sqe)
        return -EBUSY;
    sqe->opcode = IORING_OP_ASYNC_CANCEL;
    sqe->fd = -1;
    sqe->cancel_flags = IORING_ASYNC_CANCEL_ALL | IORING_ASYNC_CANCEL_ANY;   /* 5.19+ */
    sqe->user_data = user_data;
    return 0;
}

int pb_uring_submit(pb_uring *r, unsigned wait_nr)
{
    STORE_REL(r->sq_tail, r->local_tail);
    unsigned total = 0;
    for (;;) {
        unsigned to_submit = r->local_tail - LOAD_ACQ(r->sq_head);
        unsigned flags = wait_nr ? IORING_ENTER_GETEVENTS : 0;
        if (to_submit == 0 && wait_nr == 0)
            return (int)total;
        int rc = sys_enter(r->ring_fd, to_submit, wait_nr, flags);
        if (rc == -EINTR)
            continue;
        if (rc < 0)
            return total ? (int)total : rc;
        total += (unsigned)rc;
        /* An SQE the kernel refused at submission time still consumed its slot and posted an
         * error CQE; the ones after it are left in the ring: go round for them. */
        if ((unsigned)rc >= to_submit || rc == 0)
            return (int)total;
        wait_nr = 0;
    }
}

int pb_uring_wait(pb_uring *r, unsigned wait_nr)
{
    for (;;) {
        int rc = sys_enter(r->ring_fd, 0, wait_nr, IORING_ENTER_GETEVENTS);
        if (rc != -EINTR)
            return rc;
    }
}

unsigned pb_uring_reap(pb_uring *r, uint64_t *user_data, int32_t *res, unsigned max)
{
    unsigned head = *r->cq_head, tail = LOAD_ACQ(r->cq_tail), n = 0;
    const struct io_uring_cqe *cqes = r->cqes;
    while (head != tail && n < max) {
        const struct io_uring_cqe *cqe = &cqes[head & *r->cq_mask];
        user_data[n] = cqe->user_data;
        res[n] = cqe->res;
        n++;
        head++;
    }
    STORE_REL(r->cq_head, head);
    return n;
}

unsigned pb_uring_cq_overflow(const pb_uring *r)
{
    return LOAD_ACQ(r->cq_overflow);
}

int pb_uring_register_eventfd(pb_uring *r, int efd)
{
    return sys_register(r->ring_fd, IORING_REGISTER_EVENTFD, &efd, 1);
}

int pb_uring_probe_ops(pb_uring *r, const int *ops, int n)
{
    size_t len = sizeof(struct io_uring_probe) + 256 * sizeof(struct io_uring_probe_op);
    struct io_uring_probe *probe = calloc(1, len);
    if (!probe)
        return -ENOMEM;
    int rc = sys_register(r->ring_fd, IORING_REGISTER_PROBE, probe, 256);
    for (int i = 0; rc >= 0 && i < n; i++) {
        if (ops[i] > probe->last_op || !(probe->ops[ops[i]].flags & IO_URING_OP_SUPPORTED))
            rc = -EOPNOTSUPP;
    }
    free(probe);
    return rc < 0 ? rc : 0;
}

#else /* no io_uring on this platform */

int pb_uring_init(pb_uring *r, unsigned entries, unsigned cq_entries)
{
    (void)entries; (void)cq_entries;
    memset(r, 0, sizeof(*r));
    r->ring_fd = -1;
    return -ENOSYS;
}
void pb_uring_exit(pb_uring *r) { r->ring_fd = -1; }
unsigned pb_uring_sq_space(const pb_uring *r) { (void)r; return 0; }
unsigned pb_uring_sq_pending(const pb_uring *r) { (void)r; return 0; }
int pb_uring_prep_writev(pb_uring *r, int fd, const struct iovec *iov, unsigned nr_iov,
                         uint64_t offset, unsigned sqe_flags, uint64_t user_data)
{
    (void)r; (void)fd; (void)iov; (void)nr_iov; (void)offset; (void)sqe_flags; (void)user_data;
    return -ENOSYS;
}
int pb_uring_prep_fsync(pb_uring *r, int fd, int datasync, unsigned sqe_flags, uint64_t user_data)
{
    (void)r; (void)fd; (void)datasync; (void)sqe_flags; (void)user_data;
    return -ENOSYS;
}
int pb_uring_prep_nop(pb_uring *r, unsigned sqe_flags, uint64_t user_data)
{
    (void)r; (void)sqe_flags; (void)user_data;
    return -ENOSYS;
}
int pb_uring_prep_cancel_all(pb_uring *r, uint64_t user_data)
{
    (void)r; (void)user_data;
    return -ENOSYS;
}
int pb_uring_submit(pb_uring *r, unsigned wait_nr) { (void)r; (void)wait_nr; return -ENOSYS; }
int pb_uring_wait(pb_uring *r, unsigned wait_nr) { (void)r; (void)wait_nr; return -ENOSYS; }
unsigned pb_uring_reap(pb_uring *r, uint64_t *user_data, int32_t *res, unsigned max)
{
    (void)r; (void)user_data; (void)res; (void)max;
    return 0;
}
unsigned pb_uring_cq_overflow(const pb_uring *r) { (void)r; return 0; }
int pb_uring_register_eventfd(pb_uring *r, int efd) { (void)r; (void)efd; return -ENOSYS; }
int pb_uring_probe_ops(pb_uring *r, const int *ops, int n)
{
    (void)r; (void)ops; (void)n;
    return -ENOSYS;
}

#endif
