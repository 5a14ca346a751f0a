/*
 * ring.c - layer 1: the only file that touches io_uring memory.
 *
 * user_data = token | kind << 56 | fault bit 63: x86-64 user pointers fit
 * in 47 bits, so any pointer works as a token and the layer above picks
 * its kinds freely; completions go out through r->ops->complete[kind].
 *
 * Setup ladder: SINGLE_ISSUER|COOP_TASKRUN|TASKRUN_FLAG|SUBMIT_ALL (6.0+;
 * DEFER_TASKRUN instead of COOP with URINGSHIM_TASKRUN=defer), retried
 * without them on -EINVAL (5.10+), then without CQSIZE.  TASKRUN_FLAG
 * lets ring_enter skip the kernel when nothing waits there: the kernel
 * raises IORING_SQ_TASKRUN while task work (a receive that completed in
 * softirq) is pending.  DEFER_TASKRUN is not the default: measured here
 * it doubles the TCP segments per request (DESIGN.md).
 *
 * Provided buffers (multishot receives, 6.0+): with incremental
 * consumption (6.12+) the kernel packs receives one after the other into
 * a large buffer, so the bytes of many small messages share cache lines;
 * without it each receive takes a whole small buffer.  Either way a
 * buffer goes back to the kernel when the kernel is done filling it
 * (no IORING_CQE_F_BUF_MORE) and the layer above has released every
 * segment it held (ring_buf_release).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "ring.h"

#define UD_PTR_MASK	((1ULL << 56) - 1)
#define UD_KIND_SHIFT	56
#define UD_FAULT	(1ULL << 63)

#define BUF_GROUP	0
/* Incremental: few large buffers, packed.  Classic: many small ones. */
#define BUF_INC_COUNT	64
#define BUF_INC_SIZE	(64 * 1024)
#define BUF_COUNT	1024
#define BUF_SIZE	4096

static inline uint64_t ud_make(void *token, int kind)
{
	return (uint64_t)(uintptr_t)token | (uint64_t)kind << UD_KIND_SHIFT;
}

/* ---- fault injection (URINGSHIM_FAULT, test only, inert unless set) ---- */

enum { FAULT_NONE, FAULT_SQ_FULL, FAULT_CQ_SMALL, FAULT_ERRNO };
static int fault_kind;
static int fault_errno;
static unsigned int fault_every, fault_count;

/*
 * Spec: "sq-full" (every SQE grab first finds the SQ full), "cq-overflow"
 * (a CQ no larger than the SQ), or "enomem:N" / "enobufs:N" / "eagain:N"
 * (every Nth send/receive fails with that error before it runs).
 */
static void fault_parse(const char *spec)
{
	static const struct { const char *name; int err; } errs[] = {
		{ "enomem:", ENOMEM }, { "enobufs:", ENOBUFS },
		{ "eagain:", EAGAIN },
	};
	static bool parsed;
	size_t i;

	if (parsed || !spec || !*spec)
		return;
	parsed = true;
	if (!strcmp(spec, "sq-full")) {
		fault_kind = FAULT_SQ_FULL;
		return;
	}
	if (!strcmp(spec, "cq-overflow")) {
		fault_kind = FAULT_CQ_SMALL;
		return;
	}
	for (i = 0; i < ARRAY_SIZE(errs); i++) {
		size_t len = strlen(errs[i].name);

		if (!strncmp(spec, errs[i].name, len) &&
		    atoi(spec + len) > 0) {
			fault_kind = FAULT_ERRNO;
			fault_errno = errs[i].err;
			fault_every = atoi(spec + len);
			return;
		}
	}
	shim__say("uringshim: ignoring URINGSHIM_FAULT=%s (bad value)\n",
		  spec);
}

/*
 * Should this send/receive fail instead of running?  It then becomes a
 * NOP whose completion reports the error.  Real completions are never
 * rewritten: a result that moved bytes cannot pretend to fail, and an EOF
 * or a real error turned into a retryable one would be retried for ever.
 */
static bool fault_now(void)
{
	return fault_kind == FAULT_ERRNO && !(++fault_count % fault_every);
}

/* ---- provided buffers ---- */

static char *buf_addr(struct ring *r, unsigned int bid)
{
	return r->bufs + (size_t)bid * r->buf_size;
}

static void buf_give_back(struct ring *r, unsigned int bid)
{
	r->buf_off[bid] = 0;
	r->buf_kdone[bid] = 0;
	io_uring_buf_ring_add(r->br, buf_addr(r, bid), r->buf_size, bid,
			      io_uring_buf_ring_mask(r->buf_count), 0);
	io_uring_buf_ring_advance(r->br, 1);
	r->buf_free++;
}

static void buf_maybe_give_back(struct ring *r, unsigned int bid)
{
	if (r->buf_kdone[bid] && !r->buf_refs[bid])
		buf_give_back(r, bid);
}

void ring_buf_hold(struct ring *r, int bid)
{
	r->buf_refs[bid]++;
}

void ring_buf_release(struct ring *r, int bid)
{
	if (!--r->buf_refs[bid])
		buf_maybe_give_back(r, bid);
}

static size_t buf_meta_bytes(uint32_t count)
{
	return count * (sizeof(uint32_t) + sizeof(uint16_t) + 1);
}

static void buf_unmap(struct ring *r)
{
	size_t ring_bytes = r->buf_count * sizeof(struct io_uring_buf);

	if (!r->br)
		return;
	munmap(r->br, ring_bytes + (size_t)r->buf_count * r->buf_size +
		      buf_meta_bytes(r->buf_count));
	r->br = NULL;
	r->bufs = NULL;
}

void ring_bufs_off(struct ring *r)
{
	if (!r->br)
		return;
	io_uring_unregister_buf_ring(&r->uring, BUF_GROUP);
	buf_unmap(r);
}

/* Try one layout; 0 or -errno (then nothing is left mapped). */
static int buf_try(struct ring *r, uint32_t count, uint32_t size, bool inc)
{
	size_t ring_bytes = count * sizeof(struct io_uring_buf);
	size_t bytes = ring_bytes + (size_t)count * size +
		       buf_meta_bytes(count);
	struct io_uring_buf_reg reg;
	char *mem;
	uint32_t i;
	int ret;

	mem = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		return -ENOMEM;
	memset(&reg, 0, sizeof(reg));
	reg.ring_addr = (uintptr_t)mem;
	reg.ring_entries = count;
	reg.bgid = BUF_GROUP;
	reg.pad = inc ? RING_PBUF_INC : 0;	/* "flags" in newer headers */
	ret = io_uring_register_buf_ring(&r->uring, &reg, 0);
	if (ret) {
		munmap(mem, bytes);
		return ret;
	}
	r->br = (struct io_uring_buf_ring *)mem;
	r->buf_count = count;
	r->buf_size = size;
	r->buf_inc = inc;
	r->bufs = mem + ring_bytes;
	r->buf_off = (uint32_t *)(r->bufs + (size_t)count * size);
	r->buf_refs = (uint16_t *)(r->buf_off + count);
	r->buf_kdone = (uint8_t *)(r->buf_refs + count);
	io_uring_buf_ring_init(r->br);
	r->buf_free = 0;
	for (i = 0; i < count; i++)
		buf_give_back(r, i);
	return 0;
}

static int buf_setup(struct ring *r)
{
	int ret = buf_try(r, BUF_INC_COUNT, BUF_INC_SIZE, true);

	if (ret == -EINVAL)	/* before 6.12: no incremental buffers */
		ret = buf_try(r, BUF_COUNT, BUF_SIZE, false);
	return ret;
}

/* ---- setup ---- */

static int setup_uring(struct ring *r, const struct ring_params *p)
{
	struct io_uring_params ip;
	unsigned int extra = IORING_SETUP_SUBMIT_ALL |
			     IORING_SETUP_SINGLE_ISSUER;
	int ret;

	/*
	 * COOP: task work waits for our next kernel entry, which the flag
	 * announces; DEFER: likewise, run only inside io_uring_enter;
	 * SIGNAL (neither): the kernel interrupts us to run it.
	 */
	if (p->taskrun == RING_TASKRUN_COOP)
		extra |= IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG;
	else if (p->taskrun == RING_TASKRUN_DEFER)
		extra |= IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_TASKRUN_FLAG;
	memset(&ip, 0, sizeof(ip));
	if (fault_kind != FAULT_CQ_SMALL) {
		ip.flags |= IORING_SETUP_CQSIZE;
		ip.cq_entries = p->entries * 4;
	}
	if (p->sqpoll_cpu >= 0) {
		/* SQPOLL cannot be combined with the task-run modes. */
		ip.flags |= IORING_SETUP_SQPOLL | IORING_SETUP_SQ_AFF;
		ip.sq_thread_cpu = p->sqpoll_cpu;
		ip.sq_thread_idle = 1000;
		extra = IORING_SETUP_SUBMIT_ALL | IORING_SETUP_SINGLE_ISSUER;
	}
	ip.flags |= extra;
	ret = io_uring_queue_init_params(p->entries, &r->uring, &ip);
	if (ret == -EINVAL) {
		ip.flags &= ~extra;
		ret = io_uring_queue_init_params(p->entries, &r->uring, &ip);
	}
	if (ret == -EINVAL && (ip.flags & IORING_SETUP_CQSIZE)) {
		ip.flags &= ~IORING_SETUP_CQSIZE;
		ret = io_uring_queue_init_params(p->entries, &r->uring, &ip);
	}
	if (ret == -EINVAL && p->sqpoll_cpu >= 0) {
		shim__log(LOG_WARN, "uringshim: SQPOLL refused: not used\n");
		ip.flags &= ~(IORING_SETUP_SQPOLL | IORING_SETUP_SQ_AFF);
		ret = io_uring_queue_init_params(p->entries, &r->uring, &ip);
	}
	if (!ret) {
		r->taskrun_flag = ip.flags & IORING_SETUP_TASKRUN_FLAG;
		/* The kernel interrupts us to run task work (the default). */
		r->taskrun_signal = !(ip.flags & (IORING_SETUP_COOP_TASKRUN |
						  IORING_SETUP_DEFER_TASKRUN));
	}
	return ret;
}

static bool probe_ok(struct ring *r)
{
	static const int needed[] = {
		IORING_OP_RECV, IORING_OP_SEND, IORING_OP_POLL_ADD,
		IORING_OP_ASYNC_CANCEL, IORING_OP_READ,
	};
	struct io_uring_probe *probe = io_uring_get_probe_ring(&r->uring);
	bool ok = probe != NULL;
	size_t i;

	for (i = 0; ok && i < ARRAY_SIZE(needed); i++)
		ok = io_uring_opcode_supported(probe, needed[i]);
	if (probe)
		io_uring_free_probe(probe);
	return ok;
}

int ring_setup(struct ring *r, const struct ring_params *p,
	       const struct ring_ops *ops, void *owner)
{
	int ret;

	memset(r, 0, sizeof(*r));
	r->ops = ops;
	r->owner = owner;
	fault_parse(p->fault);
	ret = setup_uring(r, p);
	if (ret)
		return ret;
	/* Its fd at the top of the table (fdnum.c). */
	r->uring.ring_fd = r->uring.enter_ring_fd =
		shim__fd_high(r->uring.ring_fd);
	if (!probe_ok(r)) {
		io_uring_queue_exit(&r->uring);
		return -EOPNOTSUPP;
	}
	io_uring_ring_dontfork(&r->uring);
	if (p->recv_bufs) {
		ret = buf_setup(r);
		if (ret)
			shim__log(LOG_INFO, "uringshim: no buffer ring (%s): "
				  "single-shot receives\n", strerror(-ret));
	}
	return 0;
}

unsigned int ring_setup_flags(const struct ring *r)
{
	return r->uring.flags;
}

void ring_exit(struct ring *r)
{
	io_uring_queue_exit(&r->uring);
	buf_unmap(r);
}

void ring_forget_child(struct ring *r)
{
	real_close(r->uring.ring_fd);
	r->br = NULL;
	r->bufs = NULL;
}

/* ---- requests ---- */

static struct io_uring_sqe *get_sqe(struct ring *r)
{
	struct io_uring_sqe *sqe;

	if (fault_kind == FAULT_SQ_FULL && r->pending)
		sqe = NULL;
	else
		sqe = io_uring_get_sqe(&r->uring);
	if (!sqe) {
		/* SQ full: push what we have, without waiting. */
		STAT_INC(enters);
		STAT_ADD(sqes, r->pending);
		shim__stats_batch(r->pending);
		io_uring_submit(&r->uring);
		r->pending = 0;
		sqe = io_uring_get_sqe(&r->uring);
	}
	if (sqe)
		r->pending++;
	return sqe;
}

/* A send/receive that fault injection replaces by a failing NOP. */
static bool prep_fault(struct io_uring_sqe *sqe, int kind, void *token)
{
	if (!fault_now())
		return false;
	io_uring_prep_nop(sqe);
	io_uring_sqe_set_data64(sqe, ud_make(token, kind) | UD_FAULT);
	return true;
}

int ring_prep_recv_multishot(struct ring *r, int kind, void *token, int fd)
{
	struct io_uring_sqe *sqe = get_sqe(r);

	if (!sqe)
		return -EBUSY;
	if (prep_fault(sqe, kind, token))
		return 0;
	io_uring_prep_recv_multishot(sqe, fd, NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = BUF_GROUP;
	io_uring_sqe_set_data64(sqe, ud_make(token, kind));
	return 0;
}

int ring_prep_recv(struct ring *r, int kind, void *token, int fd, void *buf,
		   size_t len)
{
	struct io_uring_sqe *sqe = get_sqe(r);

	if (!sqe)
		return -EBUSY;
	if (prep_fault(sqe, kind, token))
		return 0;
	io_uring_prep_recv(sqe, fd, buf, len, 0);
	io_uring_sqe_set_data64(sqe, ud_make(token, kind));
	return 0;
}

int ring_prep_send(struct ring *r, int kind, void *token, int fd,
		   const void *buf, size_t len, int msg_flags)
{
	struct io_uring_sqe *sqe = get_sqe(r);

	if (!sqe)
		return -EBUSY;
	if (prep_fault(sqe, kind, token))
		return 0;
	io_uring_prep_send(sqe, fd, buf, len, msg_flags);
	io_uring_sqe_set_data64(sqe, ud_make(token, kind));
	return 0;
}

int ring_prep_poll(struct ring *r, int kind, void *token, int fd,
		   unsigned int events)
{
	struct io_uring_sqe *sqe = get_sqe(r);

	if (!sqe)
		return -EBUSY;
	io_uring_prep_poll_add(sqe, fd, events);
	io_uring_sqe_set_data64(sqe, ud_make(token, kind));
	return 0;
}

int ring_prep_read(struct ring *r, int kind, void *token, int fd, void *buf,
		   size_t len)
{
	struct io_uring_sqe *sqe = get_sqe(r);

	if (!sqe)
		return -EBUSY;
	io_uring_prep_read(sqe, fd, buf, len, 0);
	io_uring_sqe_set_data64(sqe, ud_make(token, kind));
	return 0;
}

int ring_prep_cancel(struct ring *r, int kind, void *token, int my_kind,
		     void *mine)
{
	struct io_uring_sqe *sqe = get_sqe(r);

	if (!sqe)
		return -EBUSY;
	/* A faulted request is a NOP that already completed. */
	io_uring_prep_cancel64(sqe, ud_make(token, kind), 0);
	io_uring_sqe_set_data64(sqe, ud_make(mine, my_kind));
	return 0;
}

/* ---- submit, wait, reap ---- */

bool ring_needs_enter(const struct ring *r)
{
	unsigned int kflags, want = IORING_SQ_CQ_OVERFLOW;

	if (r->pending)
		return true;
	/* Without the flag, deferred work shows nowhere: always enter. */
	if (r->taskrun_flag)
		want |= IORING_SQ_TASKRUN;
	else if (!r->taskrun_signal)
		return true;
	kflags = IO_URING_READ_ONCE(*r->uring.sq.kflags);
	return kflags & want;
}

int ring_enter(struct ring *r, unsigned int wait_nr,
	       const struct timespec *ts, const sigset_t *sigmask)
{
	struct __kernel_timespec kts;
	struct io_uring_cqe *cqe;
	unsigned int n = r->pending;
	int ret;

	if (!wait_nr && !ring_needs_enter(r))
		return 0;
	r->pending = 0;
	STAT_INC(enters);
	STAT_ADD(sqes, n);
	shim__stats_batch(n);
	shim__depth++;
	if (!wait_nr) {
		ret = io_uring_submit_and_get_events(&r->uring);
	} else {
		if (ts) {
			kts.tv_sec = ts->tv_sec;
			kts.tv_nsec = ts->tv_nsec;
		}
		ret = io_uring_submit_and_wait_timeout(&r->uring, &cqe,
						       wait_nr,
						       ts ? &kts : NULL,
						       (sigset_t *)sigmask);
	}
	shim__depth--;
	return ret;
}

int ring_peek(struct ring *r, int kind, void *token, int *res)
{
	uint64_t want = ud_make(token, kind);
	struct io_uring_cqe *cqe;
	unsigned int head;

	io_uring_for_each_cqe(&r->uring, head, cqe) {
		if ((cqe->user_data & ~UD_FAULT) != want)
			continue;
		*res = (cqe->user_data & UD_FAULT) ? -fault_errno : cqe->res;
		return 0;
	}
	return -ENOENT;
}

int ring_reap(struct ring *r)
{
	struct io_uring_cqe *cqe;
	unsigned int head, n = 0;

	io_uring_for_each_cqe(&r->uring, head, cqe) {
		uint64_t ud = cqe->user_data;
		struct ring_cqe c = {
			.token = (void *)(uintptr_t)(ud & UD_PTR_MASK),
			.res = cqe->res,
			.flags = cqe->flags,
			.bid = -1,
		};
		int kind = (ud >> UD_KIND_SHIFT) & (RING_KINDS - 1);

		n++;
		if (ud & UD_FAULT) {
			c.res = -fault_errno;
		} else if ((c.flags & IORING_CQE_F_BUFFER) && r->br) {
			unsigned int bid = c.flags >> IORING_CQE_BUFFER_SHIFT;

			if (bid < r->buf_count) {
				c.bid = bid;
				if (c.res > 0) {
					c.data = buf_addr(r, bid) +
						 r->buf_off[bid];
					r->buf_off[bid] += c.res;
				}
				/* Classic buffers are done at once. */
				if (!r->buf_inc ||
				    !(c.flags & IORING_CQE_F_BUF_MORE)) {
					r->buf_kdone[bid] = 1;
					r->buf_free--;
				}
			}
		}
		if (r->ops->complete[kind])
			r->ops->complete[kind](r, &c);
		if (c.bid >= 0)
			buf_maybe_give_back(r, c.bid);
	}
	io_uring_cq_advance(&r->uring, n);
	return n;
}
