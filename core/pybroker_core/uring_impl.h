/* A minimal io_uring binding over the raw syscalls (io_uring_setup / io_uring_enter /
 * io_uring_register and three mmaps): no liburing, so a plain `pip install` builds it anywhere.
 *
 * Ring memory (as the kernel lays it out; offsets come from io_uring_params):
 *   SQ ring  u32 head | u32 tail | u32 ring_mask | u32 ring_entries | u32 flags | u32 dropped |
 *            u32 array[ring_entries]            (array[i] = index of an SQE in the SQE table)
 *   CQ ring  u32 head | u32 tail | u32 ring_mask | u32 ring_entries | u32 overflow |
 *            io_uring_cqe cqes[ring_entries]    (u64 user_data | s32 res | u32 flags, 16 bytes)
 *   SQEs     io_uring_sqe sqes[sq_entries]      (64 bytes each)
 * We own the SQ tail and the CQ head; the kernel owns the SQ head and the CQ tail. Stores we
 * publish use release ordering, loads of the kernel's indexes acquire ordering.
 *
 * Not thread-safe: one thread prepares, submits and reaps (the event loop's), except that
 * pb_uring_wait may be called by whoever owns the ring at the time.
 * Every function returning int returns >= 0 on success and -errno on failure.
 * Where <linux/io_uring.h> is absent (not Linux) every entry point returns -ENOSYS. */
#ifndef PYBROKER_URING_IMPL_H
#define PYBROKER_URING_IMPL_H
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

typedef struct pb_uring {
    int ring_fd;
    unsigned sq_entries, cq_entries, features;
    unsigned *sq_head, *sq_tail, *sq_mask, *sq_array;
    unsigned *cq_head, *cq_tail, *cq_mask, *cq_overflow;
    void *sqes;                 /* struct io_uring_sqe[sq_entries] */
    void *cqes;                 /* struct io_uring_cqe[cq_entries] */
    void *sq_ptr, *cq_ptr;
    size_t sq_len, cq_len, sqes_len;
    unsigned local_tail;        /* SQEs prepared (published to the kernel at submit) */
} pb_uring;

/* Set up a ring of `entries` SQEs and `cq_entries` CQEs (0: twice `entries`). */
int pb_uring_init(pb_uring *r, unsigned entries, unsigned cq_entries);
void pb_uring_exit(pb_uring *r);

/* Free SQ slots (prepared-but-unsubmitted SQEs count as used). */
unsigned pb_uring_sq_space(const pb_uring *r);
/* Prepared SQEs the kernel has not consumed yet (not submitted, or left over by a submit that
 * stopped early): they will never complete until a later submit takes them. */
unsigned pb_uring_sq_pending(const pb_uring *r);

/* Prepare one SQE (returns -EBUSY when the SQ is full). `sqe_flags` are IOSQE_* flags. */
int pb_uring_prep_writev(pb_uring *r, int fd, const struct iovec *iov, unsigned nr_iov,
                         uint64_t offset, unsigned sqe_flags, uint64_t user_data);
int pb_uring_prep_fsync(pb_uring *r, int fd, int datasync, unsigned sqe_flags,
                        uint64_t user_data);
int pb_uring_prep_nop(pb_uring *r, unsigned sqe_flags, uint64_t user_data);
/* Cancel every request that can still be cancelled (one parked waiting for a pipe or socket to
 * become writable; not a write already running in a kernel worker). Linux 5.19+. */
int pb_uring_prep_cancel_all(pb_uring *r, uint64_t user_data);

/* Publish every prepared SQE and enter the kernel once (retrying EINTR), waiting for at least
 * `wait_nr` completions. Returns how many SQEs the kernel consumed. */
int pb_uring_submit(pb_uring *r, unsigned wait_nr);
/* Wait for at least `wait_nr` completions without submitting. */
int pb_uring_wait(pb_uring *r, unsigned wait_nr);

/* Copy up to `max` completions out of the CQ and advance its head; returns how many. */
unsigned pb_uring_reap(pb_uring *r, uint64_t *user_data, int32_t *res, unsigned max);
/* Completions the kernel could not post (CQ full, kept on its overflow list). */
unsigned pb_uring_cq_overflow(const pb_uring *r);

int pb_uring_register_eventfd(pb_uring *r, int efd);
/* 0 when the kernel supports every opcode in ops[0..n), -EOPNOTSUPP when one is missing,
 * another -errno when it cannot tell (IORING_REGISTER_PROBE needs Linux 5.6). */
int pb_uring_probe_ops(pb_uring *r, const int *ops, int n);

/* Opcode / flag numbers for the Python side (stable kernel ABI). */
enum {
    PB_OP_NOP = 0, PB_OP_WRITEV = 2, PB_OP_FSYNC = 3, PB_OP_WRITE = 23,
    PB_SQE_IO_DRAIN = 1u << 1, PB_SQE_IO_LINK = 1u << 2, PB_SQE_ASYNC = 1u << 4,
};

#endif
