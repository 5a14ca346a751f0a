/*
 * ring.c - the only file that touches io_uring memory.
 *
 * One ring per event-loop thread (struct shim_loop, loop.c).  Every
 * function here runs on the ring's own thread with shim.lock held, except
 * submit_wait, which is called with the lock dropped so other threads can
 * queue work while we sleep in the kernel.  user_data = pointer | kind
 * (structs are malloc'd, so the low 4 bits are free); stale completions of
 * closed fds find an orphaned struct, never a reused fd number.
 *
 * Setup ladder: SINGLE_ISSUER|COOP_TASKRUN|SUBMIT_ALL (6.0+; plus
 * DEFER_TASKRUN, 6.1+, with URINGSHIM_TASKRUN=defer), retried without them
 * on -EINVAL (5.10+), then without CQSIZE.  DEFER_TASKRUN is not the
 * default: measured here it doubles the TCP segments per request (the
 * deferred receives run too late for the response to carry the ACK), which
 * costs more server CPU than all the syscalls the shim saves.  Any other
 * failure (ENOSYS, EPERM from seccomp or io_uring_disabled, ENOMEM) of the
 * process's first ring makes the whole process passthrough.
 */
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>

#include "internal.h"

#define UD_KIND_MASK	0xfULL

/*
 * Provided buffer ring for multishot receives (5.19+ registration, 6.0+
 * multishot): completions name a buffer, whose bytes are copied to the
 * fd's own buffer and the buffer handed straight back.
 */
#define BUF_GROUP	0
#define BUF_COUNT	1024
#define BUF_SIZE	4096
#define BUF_RING_BYTES	(BUF_COUNT * sizeof(struct io_uring_buf) + \
			 (size_t)BUF_COUNT * BUF_SIZE)

static void buf_recycle(struct shim_loop *l, unsigned int bid)
{
	if (bid >= BUF_COUNT)
		return;
	io_uring_buf_ring_add(l->buf_ring, l->bufs + (size_t)bid * BUF_SIZE,
			      BUF_SIZE, bid, io_uring_buf_ring_mask(BUF_COUNT),
			      0);
	io_uring_buf_ring_advance(l->buf_ring, 1);
}

/* Returns 0 or -errno; on failure receives stay single-shot. */
static int buf_ring_setup(struct shim_loop *l)
{
	struct io_uring_buf_reg reg;
	size_t ring_bytes = BUF_COUNT * sizeof(struct io_uring_buf);
	void *mem;
	unsigned int i;
	int ret;

	mem = mmap(NULL, BUF_RING_BYTES, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		return -ENOMEM;
	memset(&reg, 0, sizeof(reg));
	reg.ring_addr = (uintptr_t)mem;
	reg.ring_entries = BUF_COUNT;
	reg.bgid = BUF_GROUP;
	ret = io_uring_register_buf_ring(&l->ring, &reg, 0);
	if (ret) {
		munmap(mem, BUF_RING_BYTES);
		return ret;
	}
	l->buf_ring = mem;
	l->bufs = (char *)mem + ring_bytes;
	io_uring_buf_ring_init(l->buf_ring);
	for (i = 0; i < BUF_COUNT; i++)
		io_uring_buf_ring_add(l->buf_ring,
				      l->bufs + (size_t)i * BUF_SIZE,
				      BUF_SIZE, i,
				      io_uring_buf_ring_mask(BUF_COUNT), i);
	io_uring_buf_ring_advance(l->buf_ring, BUF_COUNT);
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
	static bool parsed;
	size_t i;

	if (parsed || !*spec)
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

static int try_setup(struct shim_loop *l, unsigned int entries,
		     struct io_uring_params *p)
{
	return io_uring_queue_init_params(entries, &l->ring, p);
}

static int setup_ring(struct shim_loop *l)
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
	ret = try_setup(l, c->ring_entries, &p);
	if (ret == -EINVAL) {
		p.flags &= ~extra;
		ret = try_setup(l, c->ring_entries, &p);
	}
	if (ret == -EINVAL && (p.flags & IORING_SETUP_CQSIZE)) {
		p.flags &= ~IORING_SETUP_CQSIZE;
		ret = try_setup(l, c->ring_entries, &p);
	}
	if (ret == -EINVAL && c->sqpoll_cpu >= 0) {
		shim__log(LOG_WARN, "uringshim: SQPOLL refused: not used\n");
		p.flags &= ~(IORING_SETUP_SQPOLL | IORING_SETUP_SQ_AFF);
		c->sqpoll_cpu = -1;
		ret = try_setup(l, c->ring_entries, &p);
	}
	if (!ret)
		shim__stats->ring_flags = p.flags;
	return ret;
}

static bool probe_ok(struct shim_loop *l)
{
	static const int needed[] = {
		IORING_OP_RECV, IORING_OP_SEND, IORING_OP_POLL_ADD,
		IORING_OP_ASYNC_CANCEL,
	};
	struct io_uring_probe *probe = io_uring_get_probe_ring(&l->ring);
	bool ok = probe != NULL;
	size_t i;

	for (i = 0; ok && i < sizeof(needed) / sizeof(needed[0]); i++)
		ok = io_uring_opcode_supported(probe, needed[i]);
	if (probe)
		io_uring_free_probe(probe);
	return ok;
}

static int arm_wake(struct shim_loop *l);

/*
 * Create l's ring on the calling thread.  Returns 0 or -errno; quiet, the
 * caller says what the operator must hear.
 */
int shim__ring_setup(struct shim_loop *l)
{
	int ret;

	l->wake_fd = l->err_epfd = -1;
	fault_parse(shim.cfg.fault);
	ret = setup_ring(l);
	if (ret)
		return ret;
	l->ring.ring_fd = l->ring.enter_ring_fd =
		shim__fd_park(l->ring.ring_fd);
	if (!probe_ok(l)) {
		ret = -EOPNOTSUPP;
		goto out_exit_ring;
	}
	io_uring_ring_dontfork(&l->ring);
	if (shim.cfg.recv_mode == MODE_RECV_MULTISHOT) {
		ret = buf_ring_setup(l);
		l->multishot = !ret;
		if (ret)
			shim__log(LOG_INFO, "uringshim: no buffer ring (%s): "
				  "single-shot receives\n", strerror(-ret));
	}
	l->wake_fd = shim__fd_park(eventfd(0, EFD_CLOEXEC));
	if (l->wake_fd < 0) {
		ret = -errno;
		goto out_unmap_bufs;
	}
	ret = arm_wake(l);
	if (ret)
		goto out_close_wake;
	l->err_epfd = shim__fd_park(real_epoll_create1(EPOLL_CLOEXEC));
	return 0;

out_close_wake:
	real_close(l->wake_fd);
	l->wake_fd = -1;
out_unmap_bufs:
	if (l->buf_ring)
		munmap(l->buf_ring, BUF_RING_BYTES);
	l->buf_ring = NULL;
out_exit_ring:
	io_uring_queue_exit(&l->ring);
	return ret;
}

static void close_side_fds(struct shim_loop *l)
{
	if (l->wake_fd >= 0)
		real_close(l->wake_fd);
	if (l->err_epfd >= 0)
		real_close(l->err_epfd);
	l->wake_fd = l->err_epfd = -1;
	if (l->buf_ring)
		munmap(l->buf_ring, BUF_RING_BYTES);
	l->buf_ring = NULL;
	l->bufs = NULL;
}

/* The thread is leaving: its ring goes, with whatever is still in it. */
void shim__ring_exit(struct shim_loop *l)
{
	io_uring_queue_exit(&l->ring);
	close_side_fds(l);
}

/* Child after fork: the mappings are MADV_DONTFORK; only the fd is ours. */
void shim__ring_teardown_child(struct shim_loop *l)
{
	real_close(l->ring.ring_fd);
	close_side_fds(l);
}

/* ---- SQE preparation ---- */

static struct io_uring_sqe *get_sqe(struct shim_loop *l)
{
	struct io_uring_sqe *sqe;

	if (fault_kind == FAULT_SQ_FULL && l->pending_sqes)
		sqe = NULL;
	else
		sqe = io_uring_get_sqe(&l->ring);
	if (!sqe) {
		/* SQ full: push what we have, without waiting. */
		STAT_INC(enters);
		STAT_ADD(sqes, l->pending_sqes);
		shim__stats_batch(l->pending_sqes);
		io_uring_submit(&l->ring);
		l->pending_sqes = 0;
		sqe = io_uring_get_sqe(&l->ring);
	}
	if (sqe)
		l->pending_sqes++;
	return sqe;
}

static inline uint64_t ud_make(void *p, int kind)
{
	return (uint64_t)(uintptr_t)p | kind;
}

int shim__ring_prep_recv(struct shim_fd *f)
{
	struct io_uring_sqe *sqe = get_sqe(f->loop);
	int kind = UD_RECV;

	if (!sqe)
		return -EBUSY;
	if (fault_now()) {
		io_uring_prep_nop(sqe);
		kind = UD_FAULT_RECV;
	} else if (f->loop->multishot) {
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
	struct io_uring_sqe *sqe = get_sqe(f->loop);

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
	struct io_uring_sqe *sqe = get_sqe(f->loop);

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
	struct io_uring_sqe *sqe = get_sqe(f->loop);

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
	struct io_uring_sqe *sqe = get_sqe(f->loop);

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
	struct io_uring_sqe *sqe = get_sqe(f->loop);

	if (!sqe)
		return -EBUSY;
	io_uring_prep_cancel64(sqe, ud_make(f, UD_SEND), 0);
	io_uring_sqe_set_data64(sqe, ud_make(f, UD_CANCEL));
	f->inflight++;
	return 0;
}

int shim__ring_prep_eppoll(struct shim_loop *l, struct shim_ep *ep)
{
	struct io_uring_sqe *sqe = get_sqe(l);

	if (!sqe)
		return -EBUSY;
	io_uring_prep_poll_add(sqe, ep->epfd, POLLIN);
	io_uring_sqe_set_data64(sqe, ud_make(ep, UD_EPPOLL));
	ep->kpoll = l;
	return 0;
}

int shim__ring_prep_cancel_ep(struct shim_loop *l, struct shim_ep *ep)
{
	struct io_uring_sqe *sqe = get_sqe(l);

	if (!sqe)
		return -EBUSY;
	io_uring_prep_cancel64(sqe, ud_make(ep, UD_EPPOLL), 0);
	io_uring_sqe_set_data64(sqe, ud_make(NULL, UD_NOP));
	return 0;
}

static int arm_wake(struct shim_loop *l)
{
	struct io_uring_sqe *sqe = get_sqe(l);

	if (!sqe)
		return -EBUSY;
	/*
	 * A read, not a poll: it drains the eventfd in the same step.  The
	 * eventfd is blocking so io_uring waits on it instead of failing
	 * with -EAGAIN.
	 */
	io_uring_prep_read(sqe, l->wake_fd, &l->wake_buf,
			   sizeof(l->wake_buf), 0);
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
	struct shim_loop *l = f->loop;

	if (l->err_epfd < 0 || f->err_watch == on)
		return;
	STAT_INC(shim_syscalls);
	if (real_epoll_ctl(l->err_epfd, on ? EPOLL_CTL_ADD : EPOLL_CTL_DEL,
			   f->fd, &ev) && on)
		return;
	f->err_watch = on;
	l->err_watch_n += on ? 1 : -1;
	if (on && shim__on_loop(l))
		shim__err_poll_arm(l);
}

void shim__err_poll_arm(struct shim_loop *l)
{
	struct io_uring_sqe *sqe;

	if (l->err_poll_armed || l->err_watch_n <= 0)
		return;
	sqe = get_sqe(l);
	if (!sqe)
		return;
	io_uring_prep_poll_add(sqe, l->err_epfd, POLLIN);
	io_uring_sqe_set_data64(sqe, ud_make(NULL, UD_ERREP));
	l->err_poll_armed = true;
}

/*
 * Submit everything prepared and wait for wait_nr completions (0: just
 * run completions), with an optional relative timeout and signal mask
 * applied atomically for the wait.  Called WITHOUT shim.lock.  Returns
 * >= 0, -ETIME on timeout, -EINTR on a signal, or another -errno.
 */
int shim__ring_submit_wait(struct shim_loop *l, unsigned int wait_nr,
			   const struct timespec *ts, const sigset_t *sigmask)
{
	struct __kernel_timespec kts;
	struct io_uring_cqe *cqe;
	unsigned int n = l->pending_sqes;
	int ret;

	l->pending_sqes = 0;
	STAT_INC(enters);
	STAT_ADD(sqes, n);
	shim__stats_batch(n);
	shim__depth++;
	if (!wait_nr) {
		ret = io_uring_submit_and_get_events(&l->ring);
	} else {
		if (ts) {
			kts.tv_sec = ts->tv_sec;
			kts.tv_nsec = ts->tv_nsec;
		}
		ret = io_uring_submit_and_wait_timeout(&l->ring, &cqe, wait_nr,
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
int shim__ring_reap(struct shim_loop *l)
{
	struct io_uring_cqe *cqe;
	unsigned int head, n = 0;
	bool rearm_wake = false;

	io_uring_for_each_cqe(&l->ring, head, cqe) {
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
				data = l->bufs + (size_t)bid * BUF_SIZE;
			shim__on_recv(p, res, cqe->flags & IORING_CQE_F_MORE,
				      data);
			/* After the copy: the buffer goes straight back. */
			if (has_buf)
				buf_recycle(l, bid);
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
			l->err_poll_armed = false;
			shim__on_err_events(l);
			break;
		case UD_WAKE:
			rearm_wake = true;
			break;
		default:
			break;
		}
	}
	io_uring_cq_advance(&l->ring, n);
	if (rearm_wake)
		arm_wake(l);
	return n;
}

void shim__ring_turn(struct shim_loop *l, unsigned int wait_nr,
		     const struct timespec *ts)
{
	shim__ring_flush_dirty(l);
	shim_unlock();
	shim__ring_submit_wait(l, wait_nr, ts, NULL);
	shim_lock();
	shim__ring_reap(l);
}

/* Wake l's thread out of its ring wait (any thread, lock held). */
void shim__ring_wake(struct shim_loop *l)
{
	uint64_t one = 1;

	if (l && l->wake_fd >= 0 && !shim__on_loop(l)) {
		STAT_INC(shim_syscalls);
		if (real_write(l->wake_fd, &one, sizeof(one)) < 0)
			shim__log(LOG_DEBUG, "uringshim: wake failed\n");
	}
}
