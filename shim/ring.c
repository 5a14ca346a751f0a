/*
 * ring.c - the only file that touches io_uring memory.
 *
 * One ring per process, owned by the loop thread (the first thread that
 * waits on an epoll set with accelerated sockets).  Every function here
 * runs on that thread with shim.lock held, except submit_wait, which is
 * called with the lock dropped so other threads can queue work while we
 * sleep in the kernel.  user_data = pointer | kind (structs are malloc'd,
 * so the low 4 bits are free); stale completions of closed fds find an
 * orphaned struct, never a reused fd number.
 *
 * Setup ladder: SINGLE_ISSUER|COOP_TASKRUN|SUBMIT_ALL (6.0+; plus
 * DEFER_TASKRUN, 6.1+, with URINGSHIM_TASKRUN=defer), retried without them
 * on -EINVAL (5.10+), then without CQSIZE.  DEFER_TASKRUN is not the
 * default: measured here it doubles the TCP segments per request (the
 * deferred receives run too late for the response to carry the ACK), which
 * costs more server CPU than all the syscalls the shim saves.  Any other
 * failure (ENOSYS, EPERM from seccomp or io_uring_disabled, ENOMEM) makes
 * the whole process passthrough.
 */
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>

#include "internal.h"

#define UD_KIND_MASK	0xfULL

static struct io_uring ring;
static unsigned int pending_sqes;
static uint64_t wake_buf;

/*
 * Provided buffer ring for multishot receives (5.19+ registration, 6.0+
 * multishot): completions name a buffer, whose bytes are copied to the
 * fd's own buffer and the buffer handed straight back.
 */
#define BUF_GROUP	0
#define BUF_COUNT	1024
#define BUF_SIZE	4096
static struct io_uring_buf_ring *buf_ring;
static char *bufs;

static void buf_recycle(unsigned int bid)
{
	if (bid >= BUF_COUNT)
		return;
	io_uring_buf_ring_add(buf_ring, bufs + (size_t)bid * BUF_SIZE,
			      BUF_SIZE, bid, io_uring_buf_ring_mask(BUF_COUNT),
			      0);
	io_uring_buf_ring_advance(buf_ring, 1);
}

/* Returns 0 or -errno; on failure receives stay single-shot. */
static int buf_ring_setup(void)
{
	struct io_uring_buf_reg reg;
	size_t ring_bytes = BUF_COUNT * sizeof(struct io_uring_buf);
	void *mem;
	unsigned int i;
	int ret;

	mem = mmap(NULL, ring_bytes + (size_t)BUF_COUNT * BUF_SIZE,
		   PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		return -ENOMEM;
	memset(&reg, 0, sizeof(reg));
	reg.ring_addr = (uintptr_t)mem;
	reg.ring_entries = BUF_COUNT;
	reg.bgid = BUF_GROUP;
	ret = io_uring_register_buf_ring(&ring, &reg, 0);
	if (ret) {
		munmap(mem, ring_bytes + (size_t)BUF_COUNT * BUF_SIZE);
		return ret;
	}
	buf_ring = mem;
	bufs = (char *)mem + ring_bytes;
	io_uring_buf_ring_init(buf_ring);
	for (i = 0; i < BUF_COUNT; i++)
		io_uring_buf_ring_add(buf_ring, bufs + (size_t)i * BUF_SIZE,
				      BUF_SIZE, i,
				      io_uring_buf_ring_mask(BUF_COUNT), i);
	io_uring_buf_ring_advance(buf_ring, BUF_COUNT);
	return 0;
}

/* ---- fault injection (URINGSHIM_FAULT, test only, inert unless set) ---- */

enum { FAULT_NONE, FAULT_SQ_FULL, FAULT_CQ_SMALL, FAULT_ERRNO };
static int fault_kind;
static int fault_errno;
static unsigned int fault_every, fault_count;

/*
 * Spec: "sq-full" (every SQE grab first finds the SQ full), "cq-overflow"
 * (a CQ no larger than the SQ), or "enomem:N" / "enobufs:N" / "eagain:N"
 * (every Nth send/recv fails with that error before it runs).
 */
static void fault_parse(const char *spec)
{
	static const struct { const char *name; int err; } errs[] = {
		{ "enomem:", ENOMEM }, { "enobufs:", ENOBUFS },
		{ "eagain:", EAGAIN },
	};
	size_t i;

	if (!*spec)
		return;
	if (!strcmp(spec, "sq-full")) {
		fault_kind = FAULT_SQ_FULL;
		return;
	}
	if (!strcmp(spec, "cq-overflow")) {
		fault_kind = FAULT_CQ_SMALL;
		return;
	}
	for (i = 0; i < sizeof(errs) / sizeof(errs[0]); i++) {
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
 * The hook: should this send/recv fail instead of running?  It then
 * becomes a NOP whose completion reports the error.  Real completions are
 * never rewritten: a result that moved bytes cannot pretend to fail (the
 * bytes are gone or on the wire), and an EOF or a real error turned into
 * a retryable one would be retried for ever.
 */
static bool fault_now(void)
{
	return fault_kind == FAULT_ERRNO && !(++fault_count % fault_every);
}

/* ---- setup ---- */

static int try_setup(unsigned int entries, struct io_uring_params *p)
{
	return io_uring_queue_init_params(entries, &ring, p);
}

static int setup_ring(void)
{
	struct shim_config *c = &shim.cfg;
	struct io_uring_params p;
	unsigned int extra = IORING_SETUP_SUBMIT_ALL |
			     IORING_SETUP_COOP_TASKRUN |
			     IORING_SETUP_SINGLE_ISSUER;
	int ret;

	if (c->taskrun_mode == MODE_TASKRUN_DEFER)
		extra |= IORING_SETUP_DEFER_TASKRUN;

	memset(&p, 0, sizeof(p));
	if (fault_kind != FAULT_CQ_SMALL) {
		p.flags |= IORING_SETUP_CQSIZE;
		p.cq_entries = c->ring_entries * 4;
	}
	if (c->sqpoll_cpu >= 0) {
		/* SQPOLL cannot be combined with DEFER_TASKRUN. */
		p.flags |= IORING_SETUP_SQPOLL | IORING_SETUP_SQ_AFF;
		p.sq_thread_cpu = c->sqpoll_cpu;
		p.sq_thread_idle = 1000;
		extra = IORING_SETUP_SUBMIT_ALL | IORING_SETUP_SINGLE_ISSUER;
	}
	p.flags |= extra;
	ret = try_setup(c->ring_entries, &p);
	if (ret == -EINVAL) {
		p.flags &= ~extra;
		ret = try_setup(c->ring_entries, &p);
	}
	if (ret == -EINVAL && (p.flags & IORING_SETUP_CQSIZE)) {
		p.flags &= ~IORING_SETUP_CQSIZE;
		ret = try_setup(c->ring_entries, &p);
	}
	if (ret == -EINVAL && c->sqpoll_cpu >= 0) {
		shim__log(LOG_WARN, "uringshim: SQPOLL refused: not used\n");
		p.flags &= ~(IORING_SETUP_SQPOLL | IORING_SETUP_SQ_AFF);
		c->sqpoll_cpu = -1;
		ret = try_setup(c->ring_entries, &p);
	}
	if (!ret)
		shim__stats->ring_flags = p.flags;
	return ret;
}

static bool probe_ok(void)
{
	static const int needed[] = {
		IORING_OP_RECV, IORING_OP_SEND, IORING_OP_POLL_ADD,
		IORING_OP_ASYNC_CANCEL,
	};
	struct io_uring_probe *probe = io_uring_get_probe_ring(&ring);
	bool ok = probe != NULL;
	size_t i;

	for (i = 0; ok && i < sizeof(needed) / sizeof(needed[0]); i++)
		ok = io_uring_opcode_supported(probe, needed[i]);
	if (probe)
		io_uring_free_probe(probe);
	return ok;
}

static int arm_wake(void);

/*
 * Create the ring on the calling (loop) thread.  Returns 0 or -errno; on
 * failure prints the one line the operator must see even with logging off.
 */
int shim__ring_setup(void)
{
	int ret;

	fault_parse(shim.cfg.fault);
	ret = setup_ring();
	if (ret) {
		shim__say("uringshim: io_uring unavailable (%s): passthrough\n",
			  strerror(-ret));
		return ret;
	}
	if (!probe_ok()) {
		shim__say("uringshim: io_uring lacks recv/send/poll/cancel: "
			  "passthrough\n");
		ret = -EOPNOTSUPP;
		goto out_exit_ring;
	}
	io_uring_ring_dontfork(&ring);
	if (shim.cfg.recv_mode == MODE_RECV_MULTISHOT) {
		ret = buf_ring_setup();
		shim.multishot = !ret;
		if (ret)
			shim__log(LOG_INFO, "uringshim: no buffer ring (%s): "
				  "single-shot receives\n", strerror(-ret));
	}
	shim.wake_fd = eventfd(0, EFD_CLOEXEC);
	if (shim.wake_fd < 0) {
		ret = -errno;
		goto out_exit_ring;
	}
	ret = arm_wake();
	if (ret)
		goto out_close_wake;
	shim.err_epfd = epoll_create1(EPOLL_CLOEXEC);
	return 0;

out_close_wake:
	real_close(shim.wake_fd);
	shim.wake_fd = -1;
out_exit_ring:
	io_uring_queue_exit(&ring);
	return ret;
}

/* Child after fork: the mappings are MADV_DONTFORK; only the fd is ours. */
void shim__ring_teardown_child(void)
{
	real_close(ring.ring_fd);
	if (shim.wake_fd >= 0)
		real_close(shim.wake_fd);
	if (shim.err_epfd >= 0)
		real_close(shim.err_epfd);
	shim.wake_fd = shim.err_epfd = -1;
	shim.err_poll_armed = false;
	memset(&ring, 0, sizeof(ring));
	pending_sqes = 0;
	if (buf_ring)
		munmap(buf_ring, BUF_COUNT * sizeof(struct io_uring_buf) +
		       (size_t)BUF_COUNT * BUF_SIZE);
	buf_ring = NULL;
	bufs = NULL;
}

/* ---- SQE preparation ---- */

static struct io_uring_sqe *get_sqe(void)
{
	struct io_uring_sqe *sqe;

	if (fault_kind == FAULT_SQ_FULL && pending_sqes)
		sqe = NULL;
	else
		sqe = io_uring_get_sqe(&ring);
	if (!sqe) {
		/* SQ full: push what we have, without waiting. */
		STAT_INC(enters);
		STAT_ADD(sqes, pending_sqes);
		shim__stats_batch(pending_sqes);
		io_uring_submit(&ring);
		pending_sqes = 0;
		sqe = io_uring_get_sqe(&ring);
	}
	if (sqe)
		pending_sqes++;
	return sqe;
}

static inline uint64_t ud_make(void *p, int kind)
{
	return (uint64_t)(uintptr_t)p | kind;
}

int shim__ring_prep_recv(struct shim_fd *f)
{
	struct io_uring_sqe *sqe = get_sqe();
	int kind = UD_RECV;

	if (!sqe)
		return -EBUSY;
	if (fault_now()) {
		io_uring_prep_nop(sqe);
		kind = UD_FAULT_RECV;
	} else if (shim.multishot) {
		io_uring_prep_recv_multishot(sqe, f->fd, NULL, 0, 0);
		sqe->flags |= IOSQE_BUFFER_SELECT;
		sqe->buf_group = BUF_GROUP;
	} else {
		io_uring_prep_recv(sqe, f->fd, f->rbuf + f->rlen,
				   f->rcap - f->rlen, 0);
		f->recv_single = true;
	}
	io_uring_sqe_set_data64(sqe, ud_make(f, kind));
	f->recv_armed = true;
	f->inflight++;
	return 0;
}

/*
 * The receive after a direct recv found nothing: wait for input with a
 * poll, completed (and cancelled) as a receive that carried no bytes.
 */
int shim__ring_prep_recv_wait(struct shim_fd *f)
{
	struct io_uring_sqe *sqe = get_sqe();

	if (!sqe)
		return -EBUSY;
	io_uring_prep_poll_add(sqe, f->fd, POLLIN);
	io_uring_sqe_set_data64(sqe, ud_make(f, UD_RECV));
	f->recv_armed = true;
	f->inflight++;
	return 0;
}

int shim__ring_prep_send(struct shim_fd *f)
{
	struct io_uring_sqe *sqe = get_sqe();

	if (!sqe)
		return -EBUSY;
	/*
	 * MSG_WAITALL makes 5.19+ retry short stream sends in the kernel;
	 * MSG_NOSIGNAL because SIGPIPE is raised by the wrapper that
	 * surfaces the error, as the kernel would have done at that call.
	 */
	if (fault_now()) {
		io_uring_prep_nop(sqe);
		io_uring_sqe_set_data64(sqe, ud_make(f, UD_FAULT_SEND));
	} else {
		io_uring_prep_send(sqe, f->fd, f->sbuf + f->shead,
				   f->stail - f->shead,
				   MSG_NOSIGNAL | MSG_WAITALL);
		io_uring_sqe_set_data64(sqe, ud_make(f, UD_SEND));
	}
	f->sinfl = f->stail;
	f->send_inflight = true;
	f->inflight++;
	return 0;
}

/*
 * The send after a direct send found the kernel full: wait for room with
 * a poll, completed (and cancelled) as a send of no bytes (nothing is in
 * flight, so its result counts for nothing).
 */
int shim__ring_prep_send_wait(struct shim_fd *f)
{
	struct io_uring_sqe *sqe = get_sqe();

	if (!sqe)
		return -EBUSY;
	io_uring_prep_poll_add(sqe, f->fd, POLLOUT);
	io_uring_sqe_set_data64(sqe, ud_make(f, UD_SEND));
	f->sinfl = f->shead;
	f->send_inflight = true;
	f->inflight++;
	return 0;
}

int shim__ring_prep_cancel(struct shim_fd *f)
{
	struct io_uring_sqe *sqe = get_sqe();

	if (!sqe)
		return -EBUSY;
	io_uring_prep_cancel64(sqe, ud_make(f, UD_RECV), 0);
	io_uring_sqe_set_data64(sqe, ud_make(f, UD_CANCEL));
	f->recv_cancel = true;
	f->inflight++;
	return 0;
}

int shim__ring_prep_cancel_send(struct shim_fd *f)
{
	struct io_uring_sqe *sqe = get_sqe();

	if (!sqe)
		return -EBUSY;
	io_uring_prep_cancel64(sqe, ud_make(f, UD_SEND), 0);
	io_uring_sqe_set_data64(sqe, ud_make(f, UD_CANCEL));
	f->inflight++;
	return 0;
}

int shim__ring_prep_eppoll(struct shim_ep *ep)
{
	struct io_uring_sqe *sqe = get_sqe();

	if (!sqe)
		return -EBUSY;
	io_uring_prep_poll_add(sqe, ep->epfd, POLLIN);
	io_uring_sqe_set_data64(sqe, ud_make(ep, UD_EPPOLL));
	ep->kpoll_armed = true;
	return 0;
}

int shim__ring_prep_cancel_ep(struct shim_ep *ep)
{
	struct io_uring_sqe *sqe = get_sqe();

	if (!sqe)
		return -EBUSY;
	io_uring_prep_cancel64(sqe, ud_make(ep, UD_EPPOLL), 0);
	io_uring_sqe_set_data64(sqe, ud_make(NULL, UD_NOP));
	return 0;
}

static int arm_wake(void)
{
	struct io_uring_sqe *sqe = get_sqe();

	if (!sqe)
		return -EBUSY;
	/*
	 * A read, not a poll: it drains the eventfd in the same step.  The
	 * eventfd is blocking so io_uring waits on it instead of failing
	 * with -EAGAIN.
	 */
	io_uring_prep_read(sqe, shim.wake_fd, &wake_buf, sizeof(wake_buf), 0);
	io_uring_sqe_set_data64(sqe, ud_make(NULL, UD_WAKE));
	return 0;
}

/*
 * After EOF no receive is armed, yet the kernel would still report a
 * later reset (the peer answering our write with RST) as ERR|HUP.  An
 * io_uring poll cannot wait for just that (it always unmasks RDHUP, which
 * a half-closed socket has), so EOF'd sockets sit in a private epoll set
 * asking for nothing (ERR and HUP are always reported), and that set is
 * polled from the ring.
 */
void shim__err_watch(struct shim_fd *f, bool on)
{
	struct epoll_event ev = { .events = EPOLLONESHOT, .data.fd = f->fd };

	if (shim.err_epfd < 0 || f->err_watch == on)
		return;
	STAT_INC(shim_syscalls);
	if (real_epoll_ctl(shim.err_epfd, on ? EPOLL_CTL_ADD : EPOLL_CTL_DEL,
			   f->fd, &ev) && on)
		return;
	f->err_watch = on;
	shim.err_watch_n += on ? 1 : -1;
	if (on)
		shim__err_poll_arm();
}

void shim__err_poll_arm(void)
{
	struct io_uring_sqe *sqe;

	if (shim.err_poll_armed || shim.err_watch_n <= 0)
		return;
	sqe = get_sqe();
	if (!sqe)
		return;
	io_uring_prep_poll_add(sqe, shim.err_epfd, POLLIN);
	io_uring_sqe_set_data64(sqe, ud_make(NULL, UD_ERREP));
	shim.err_poll_armed = true;
}

int shim__ring_pending_sqes(void)
{
	return pending_sqes;
}

/*
 * Submit everything prepared and wait for wait_nr completions (0: just
 * run completions), with an optional relative timeout and signal mask
 * applied atomically for the wait.  Called WITHOUT shim.lock.  Returns
 * >= 0, -ETIME on timeout, -EINTR on a signal, or another -errno.
 */
int shim__ring_submit_wait(unsigned int wait_nr, const struct timespec *ts,
			   const sigset_t *sigmask)
{
	struct __kernel_timespec kts;
	struct io_uring_cqe *cqe;
	unsigned int n = pending_sqes;
	int ret;

	pending_sqes = 0;
	STAT_INC(enters);
	STAT_ADD(sqes, n);
	shim__stats_batch(n);
	shim__depth++;
	if (!wait_nr) {
		ret = io_uring_submit_and_get_events(&ring);
	} else {
		if (ts) {
			kts.tv_sec = ts->tv_sec;
			kts.tv_nsec = ts->tv_nsec;
		}
		ret = io_uring_submit_and_wait_timeout(&ring, &cqe, wait_nr,
						       ts ? &kts : NULL,
						       (sigset_t *)sigmask);
	}
	shim__depth--;
	return ret;
}

/* ---- completions ---- */

void shim__on_send(struct shim_fd *f, int res);
void shim__on_cancel(struct shim_fd *f);
void shim__on_eppoll(struct shim_ep *ep, int res);

/* Dispatch every posted CQE.  Lock held.  Returns how many. */
int shim__ring_reap(void)
{
	struct io_uring_cqe *cqe;
	unsigned int head, n = 0;
	bool rearm_wake = false;

	io_uring_for_each_cqe(&ring, head, cqe) {
		uint64_t ud = cqe->user_data;
		void *p = (void *)(uintptr_t)(ud & ~UD_KIND_MASK);
		int kind = ud & UD_KIND_MASK;
		int res = cqe->res;

		n++;
		switch (kind) {
		case UD_RECV: {
			bool has_buf = cqe->flags & IORING_CQE_F_BUFFER;
			unsigned int bid =
				cqe->flags >> IORING_CQE_BUFFER_SHIFT;
			const char *data = NULL;

			if (has_buf && res > 0 && bid < BUF_COUNT)
				data = bufs + (size_t)bid * BUF_SIZE;
			shim__on_recv(p, res, cqe->flags & IORING_CQE_F_MORE,
				      data);
			/* After the copy: the buffer goes straight back. */
			if (has_buf)
				buf_recycle(bid);
			break;
		}
		case UD_SEND:
			shim__on_send(p, res);
			break;
		case UD_FAULT_RECV:
			shim__on_recv(p, -fault_errno, false, NULL);
			break;
		case UD_FAULT_SEND:
			shim__on_send(p, -fault_errno);
			break;
		case UD_CANCEL:
			shim__on_cancel(p);
			break;
		case UD_EPPOLL:
			shim__on_eppoll(p, res);
			break;
		case UD_ERREP:
			shim.err_poll_armed = false;
			shim__on_err_events();
			break;
		case UD_WAKE:
			rearm_wake = true;
			break;
		default:
			break;
		}
	}
	io_uring_cq_advance(&ring, n);
	if (rearm_wake)
		arm_wake();
	return n;
}

/* Wake the loop thread out of its ring wait (any thread, lock held). */
void shim__ring_wake(void)
{
	uint64_t one = 1;

	if (shim.wake_fd >= 0 && !shim__on_loop_thread()) {
		STAT_INC(shim_syscalls);
		if (real_write(shim.wake_fd, &one, sizeof(one)) < 0)
			shim__log(LOG_DEBUG, "uringshim: wake failed\n");
	}
}
