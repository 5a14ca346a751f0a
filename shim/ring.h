/*
 * ring.h - layer 1: one io_uring and its provided receive buffers.
 *
 * The only code that touches io_uring memory.  It knows nothing about
 * sockets or epoll: every request carries a kind and a token chosen by
 * the layer above, and every completion goes back through that layer's
 * table (struct ring_ops), one row per kind, the way the kernel's opdef
 * table dispatches ops.  A ring is driven by one thread only (its loop,
 * core.h), with that loop's lock held, except ring_enter's kernel wait.
 */
#ifndef SHIM_RING_H
#define SHIM_RING_H

#include <liburing.h>

#include "base.h"

/* Newer than liburing 2.3's headers; the kernel is probed at setup. */
#ifndef IORING_CQE_F_BUF_MORE
#define IORING_CQE_F_BUF_MORE		(1U << 4)
#endif
#define RING_PBUF_INC			2	/* IOU_PBUF_RING_INC, 6.12 */
#ifndef IORING_SETUP_TASKRUN_FLAG
#define IORING_SETUP_TASKRUN_FLAG	(1U << 9)
#endif
#ifndef IORING_SQ_TASKRUN
#define IORING_SQ_TASKRUN		(1U << 2)
#endif

#define RING_KINDS	16

struct ring;

/* One completion, as the layer above sees it. */
struct ring_cqe {
	void *token;		/* given when the request was prepared */
	int res;
	uint32_t flags;		/* IORING_CQE_F_* */
	const char *data;	/* provided-buffer bytes (res of them), or NULL */
	int bid;		/* their buffer, -1 when none */
};

struct ring_ops {
	void (*complete[RING_KINDS])(struct ring *r, const struct ring_cqe *c);
};

/* How completions that need the submitting task reach it. */
enum { RING_TASKRUN_COOP, RING_TASKRUN_DEFER, RING_TASKRUN_SIGNAL };

struct ring_params {
	unsigned int entries;
	int taskrun;			/* RING_TASKRUN_* */
	int sqpoll_cpu;			/* -1: no SQPOLL thread */
	bool recv_bufs;			/* a provided-buffer ring for receives */
	const char *fault;		/* URINGSHIM_FAULT spec, "" when unset */
};

struct ring {
	struct io_uring uring;
	const struct ring_ops *ops;
	void *owner;			/* the layer above's, for its handlers */
	unsigned int pending;		/* SQEs prepared, not yet submitted */
	bool taskrun_flag;		/* kernel says when task work waits */
	bool taskrun_signal;		/* kernel interrupts us to run it */

	/* provided buffers for multishot receives (NULL: none) */
	struct io_uring_buf_ring *br;
	char *bufs;
	uint32_t buf_size, buf_count;
	bool buf_inc;			/* incremental consumption (6.12+) */
	uint32_t *buf_off;		/* bytes the kernel consumed of each */
	uint16_t *buf_refs;		/* segments the layer above holds */
	uint8_t *buf_kdone;		/* the kernel is done filling it */
	uint32_t buf_free;		/* buffers in the kernel's hands */
};

/* Returns 0 or -errno; quiet (the caller tells the operator). */
int ring_setup(struct ring *r, const struct ring_params *p,
	       const struct ring_ops *ops, void *owner);
/* The ring goes with whatever is still in it (its thread). */
void ring_exit(struct ring *r);
/* Fork child: the mappings are MADV_DONTFORK, only the fd is ours. */
void ring_forget_child(struct ring *r);
/* IORING_SETUP_* flags the kernel accepted. */
unsigned int ring_setup_flags(const struct ring *r);

/*
 * Requests: 0, or -EBUSY when no SQE could be had even after submitting
 * what was prepared.  Fault injection (URINGSHIM_FAULT) may turn a send
 * or receive into a NOP completing with the injected error.
 */
int ring_prep_recv_multishot(struct ring *r, int kind, void *token, int fd);
int ring_prep_recv(struct ring *r, int kind, void *token, int fd, void *buf,
		   size_t len);
int ring_prep_send(struct ring *r, int kind, void *token, int fd,
		   const void *buf, size_t len, int msg_flags);
int ring_prep_poll(struct ring *r, int kind, void *token, int fd,
		   unsigned int events);
int ring_prep_read(struct ring *r, int kind, void *token, int fd, void *buf,
		   size_t len);
/* Cancel every request of (kind, token); completes as (my_kind, mine). */
int ring_prep_cancel(struct ring *r, int kind, void *token, int my_kind,
		     void *mine);

/* Multishot receives were refused: no provided buffers from now on. */
void ring_bufs_off(struct ring *r);
/* The layer above holds bytes of buffer bid / lets them go. */
void ring_buf_hold(struct ring *r, int bid);
void ring_buf_release(struct ring *r, int bid);

/*
 * Submit what is prepared and wait for wait_nr completions (0: do not
 * wait), ts bounding the wait, sigmask applied for it.  Called without
 * the loop's lock.  Returns >= 0, -ETIME, -EINTR or another -errno.  With
 * wait_nr 0 the kernel is not entered at all when nothing is prepared and
 * the kernel has flagged no task work or CQ overflow.
 */
int ring_enter(struct ring *r, unsigned int wait_nr,
	       const struct timespec *ts, const sigset_t *sigmask);
/*
 * The result of a posted, not yet reaped completion of (kind, token),
 * without consuming it: 0 with *res set, or -ENOENT.
 */
int ring_peek(struct ring *r, int kind, void *token, int *res);
/* Dispatch every posted completion; returns how many. */
int ring_reap(struct ring *r);
/* Would ring_enter(r, 0, ..) have anything to do in the kernel? */
bool ring_needs_enter(const struct ring *r);
/* Completions posted and not yet reaped. */
static inline bool ring_cq_ready(struct ring *r)
{
	return io_uring_cq_ready(&r->uring) != 0;
}

#endif
