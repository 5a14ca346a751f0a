/*
 * accel.c - life of an accelerated socket: receive buffer, send queue,
 * readiness, release, close.  Every function runs with shim.lock held.
 *
 * Receive: one recv is kept armed into the free tail of rbuf, so new data
 * produces a completion (an edge) even while older bytes are unread, as
 * the kernel's own readiness would.  Send: bytes are copied to sbuf and go
 * out as one ring send per fd at the next flush point, in order (one send
 * in flight per fd); errors come back on the next call (deferred errors).
 */
#include <fcntl.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* Queued bytes that trigger a send before the next wait point. */
#define SEND_FLUSH_BYTES	(64 * 1024)

void shim__fd_mark_dirty(struct shim_fd *f)
{
	if (f->dirty)
		return;
	f->dirty = true;
	f->dirty_next = f->loop->dirty;
	WR(f->loop->dirty, f);
}

/*
 * Is fd a connected non-blocking TCP socket?  Two syscalls, once per
 * connection: TCP_INFO only works on TCP sockets (AF_INET/AF_INET6) and
 * tells the state; F_GETFL tells O_NONBLOCK.
 */
bool shim__fd_accelerable(int fd)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);
	int fl;

	STAT_ADD(shim_syscalls, 2);
	if (real_getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) ||
	    ti.tcpi_state != TCP_ESTABLISHED)
		return false;
	fl = real_fcntl(fd, F_GETFL);
	return fl >= 0 && (fl & O_NONBLOCK);
}

struct shim_fd *shim__accel_try(int fd, struct shim_loop *l, bool checked)
{
	struct shim_fd *f;

	if (!l || l->dead || fd < 0 || fd >= shim.nfds || shim.fds[fd] ||
	    shim.state != SHIM_STATE_ACTIVE ||
	    shim.cfg.recv_mode == MODE_RECV_DIRECT ||
	    (!checked && !shim__fd_accelerable(fd)))
		return NULL;
	f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	f->rbuf = malloc(shim.cfg.recv_buf);
	/* The send queue too, now: a write may come from a signal handler. */
	f->sbuf = malloc(shim.cfg.send_max_fd);
	if (!f->rbuf || !f->sbuf) {
		free(f->rbuf);
		free(f->sbuf);
		free(f);
		return NULL;
	}
	shim__safecopy_install();
	f->fd = fd;
	f->state = FD_ACCEL;
	f->loop = l;
	l->refs++;
	l->accel_n++;
	f->rcap = shim.cfg.recv_buf;
	f->peek_off = -1;
	f->alias = -1;
	f->scap = shim.cfg.send_max_fd;
	__atomic_store_n(&shim.fds[fd], f, __ATOMIC_RELEASE);
	__atomic_add_fetch(&shim.owned_n, 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&shim.accel_now, 1, __ATOMIC_RELAXED);
	shim__stats->accel_now = shim.accel_now;
	STAT_INC(accel_total);
	shim__fd_mark_dirty(f);
	shim__ring_wake(l);
	return f;
}

void shim__fd_free(struct shim_fd *f)
{
	struct shim_loop *l = f->loop;

	if (f->state == FD_ORPHAN)
		__atomic_sub_fetch(&l->orphans_n, 1, __ATOMIC_RELAXED);
	if (l->closing == f)
		l->closing = NULL;
	if (f->own_fd)
		real_close(f->fd);
	queued_add(f, -(int64_t)(f->stail - f->shead));
	free(f->rbuf);
	free(f->sbuf);
	free(f);
	shim__loop_unref(l);
}

/* ---- readiness ---- */

uint32_t shim__fd_mask(struct shim_fd *f)
{
	uint32_t m = 0;

	if (f->roff < f->rlen || f->eof || f->err || f->hup)
		m |= EPOLLIN | EPOLLRDNORM;
	if (f->eof || f->hup)
		m |= EPOLLRDHUP;
	if (f->err)
		m |= EPOLLERR;
	if (f->hup || (f->eof && f->shut_wr))
		m |= EPOLLHUP;
	if (f->state == FD_ACCEL &&
	    (f->shut_wr || f->err || f->hup ||
	     (f->stail - f->shead < f->scap && !f->out_blocked)))
		m |= EPOLLOUT | EPOLLWRNORM;
	return m;
}

void shim__reg_ready(struct shim_reg *r)
{
	struct shim_ep *ep = r->ep;

	if (r->on_ready)
		return;
	r->on_ready = true;
	r->rnext = NULL;
	r->rprev = ep->ready_tail;
	if (ep->ready_tail)
		ep->ready_tail->rnext = r;
	else
		ep->ready_head = r;
	ep->ready_tail = r;
}

void shim__reg_unready(struct shim_reg *r)
{
	struct shim_ep *ep = r->ep;

	if (!r->on_ready)
		return;
	if (r->rprev)
		r->rprev->rnext = r->rnext;
	else
		ep->ready_head = r->rnext;
	if (r->rnext)
		r->rnext->rprev = r->rprev;
	else
		ep->ready_tail = r->rprev;
	r->on_ready = false;
	r->rnext = r->rprev = NULL;
}

/* Remove registration r from its fd and its epoll instance. */
void shim__reg_unlink(struct shim_reg *r)
{
	struct shim_fd *f = r->f;
	int i = r - f->regs;

	shim__reg_unready(r);
	r->ep->nemul--;
	f->nregs--;
	if (i != f->nregs) {
		/* Move the last one into the hole, fixing its list links. */
		struct shim_reg *last = &f->regs[f->nregs];
		bool was_ready = last->on_ready;

		shim__reg_unready(last);
		*r = *last;
		if (was_ready)
			shim__reg_ready(r);
	}
	memset(&f->regs[f->nregs], 0, sizeof(f->regs[0]));
}

/* Something changed on f: every registration gets re-evaluated. */
void shim__fd_notify(struct shim_fd *f)
{
	int i;

	for (i = 0; i < f->nregs; i++)
		shim__reg_ready(&f->regs[i]);
}

/* ---- receive ---- */

static size_t iov_total(const struct iovec *iov, int iovcnt)
{
	size_t total = 0;
	int i;

	for (i = 0; i < iovcnt; i++)
		total += iov[i].iov_len;
	return total;
}

static void drained_draining(struct shim_fd *f);

/*
 * Serve a read from the buffer.  Returns bytes, 0 at EOF, or -errno
 * (-EAGAIN when empty: the armed recv will bring data and readiness).
 */
ssize_t shim__fd_recv(struct shim_fd *f, const struct iovec *iov, int iovcnt,
		      int flags)
{
	size_t avail = f->rlen - f->roff, done = 0, from = f->roff;
	int i, e;

	if ((flags & MSG_PEEK) && f->peek_off > 0) {
		/* SO_PEEK_OFF: each peek starts where the last one ended. */
		size_t skip = (size_t)f->peek_off < avail ?
			      (size_t)f->peek_off : avail;

		from += skip;
		avail -= skip;
		if (!avail && !f->err && !f->eof)
			return -EAGAIN;
	}

	if (!avail) {
		if (f->err) {
			/* One socket error, reported once, to any call. */
			e = f->err;
			f->err = 0;
			f->eof = true;
			if (f->state == FD_DRAINING)
				drained_draining(f);
			return -e;
		}
		if (f->eof)
			return 0;
		return -EAGAIN;
	}
	for (i = 0; i < iovcnt && done < avail; i++) {
		size_t n = iov[i].iov_len;

		if (n > avail - done)
			n = avail - done;
		if (!(flags & MSG_TRUNC) &&
		    !shim__copy(iov[i].iov_base, f->rbuf + from + done, n)) {
			/*
			 * Bad buffer: the kernel copies a whole skb or
			 * none of it, and what the shim holds came as one;
			 * EFAULT, nothing consumed.
			 */
			return -EFAULT;
		}
		done += n;
	}
	if ((flags & MSG_TRUNC) && !iovcnt)
		done = 0;
	STAT_INC(served_from_buffer);
	if (flags & MSG_PEEK) {
		if (f->peek_off >= 0)
			f->peek_off += done;
		return done;
	}
	if (f->peek_off > 0)
		f->peek_off = (size_t)f->peek_off > done ?
			      f->peek_off - (int)done : 0;
	f->roff += done;
	if (f->roff == f->rlen && !f->recv_single)
		f->roff = f->rlen = 0;
	if (f->state == FD_ACCEL)
		shim__fd_mark_dirty(f);
	else if (f->roff == f->rlen)
		drained_draining(f);
	return done;
}

/* ---- send ---- */

static void send_compact(struct shim_fd *f)
{
	if (f->send_inflight || !f->shead)
		return;
	if (f->stail > f->shead)
		memmove(f->sbuf, f->sbuf + f->shead, f->stail - f->shead);
	f->stail -= f->shead;
	f->shead = f->sinfl = 0;
}

/*
 * Push everything prepared and run completions now (loop thread, lock
 * held; dropped around the enter).  Returns false when f was closed by
 * another thread meanwhile.
 */
static bool kick_locked(struct shim_fd *f)
{
	int fd = f->fd;

	shim__ring_turn(f->loop, 0, NULL);
	return shim.fds[fd] == f;
}

static size_t send_room(struct shim_fd *f)
{
	size_t room;

	send_compact(f);
	room = f->scap - f->stail;
	if (shim.queued_total + room > shim.cfg.send_max_total)
		room = shim.queued_total < shim.cfg.send_max_total ?
		       shim.cfg.send_max_total - shim.queued_total : 0;
	return room;
}

/*
 * A thread other than f's loop thread writes, or closes, with bytes queued
 * and nothing in flight: push them with plain sends until the kernel has
 * no room, so it never depends on the loop thread reaching a wait point
 * (it may be blocked anywhere).  Order holds: nothing is in flight.
 * Returns true when bytes moved.
 */
bool shim__fd_push(struct shim_fd *f)
{
	bool moved = false;
	ssize_t n = 0;

	while (!f->send_inflight && f->stail > f->shead && !f->hup) {
		STAT_INC(shim_syscalls);
		n = real_send(f->fd, f->sbuf + f->shead, f->stail - f->shead,
			      MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n <= 0)
			break;
		f->shead += n;
		queued_add(f, -(int64_t)n);
		STAT_ADD(bytes_sent, n);
		moved = true;
		if (f->shead == f->stail)
			f->shead = f->stail = f->sinfl = 0;
	}
	if (f->stail > f->shead && n < 0 && errno != EAGAIN &&
	    errno != EWOULDBLOCK && errno != EINTR) {
		f->err = errno;
		f->hup = true;
		STAT_INC(deferred_errors);
		queued_add(f, -(int64_t)(f->stail - f->shead));
		f->shead = f->stail = f->sinfl = 0;
		shim__fd_notify(f);
	}
	return moved;
}

/* A send f cannot take: its pending error (reported once), or EPIPE. */
static int send_refused(struct shim_fd *f)
{
	int e = f->err;

	if (e) {
		f->err = 0;
		return -e;
	}
	return f->shut_wr || f->hup ? -EPIPE : 0;
}

/*
 * Queue bytes for sending.  Returns bytes taken (possibly short), or
 * -errno: a deferred error, -EPIPE after shutdown, -EAGAIN when full.
 * "Full" means the kernel's socket buffer is full as well: before saying
 * so, the loop thread pushes the queue into the kernel, so EAGAIN and
 * EPOLLOUT keep meaning what they mean without the shim (the peer has to
 * read before room appears).
 */
ssize_t shim__fd_send(struct shim_fd *f, const struct iovec *iov, int iovcnt,
		      int flags)
{
	size_t total = iov_total(iov, iovcnt), room, done = 0, skip;
	size_t round_start;
	int i, e;

	(void)flags;
	e = send_refused(f);
	if (e || !total)
		return e;
	if (!f->sbuf) {
		f->sbuf = malloc(f->scap);
		if (!f->sbuf)
			return -ENOMEM;
	}
	for (;;) {
		room = send_room(f);
		if (room) {
			size_t want = total - done, n;

			n = want < room ? want : room;
			skip = done;
			round_start = done;
			for (i = 0; i < iovcnt && n; i++) {
				size_t len = iov[i].iov_len, take;

				if (skip >= len) {
					skip -= len;
					continue;
				}
				take = len - skip < n ? len - skip : n;
				if (!shim__copy(f->sbuf + f->stail,
						(char *)iov[i].iov_base + skip,
						take)) {
					/*
					 * Bad buffer: like the kernel, the
					 * bytes sharing its segment go too.
					 */
					f->stail -= done - round_start;
					queued_add(f, -(int64_t)(done -
								 round_start));
					done = round_start;
					if (!done)
						return -EFAULT;
					total = done;
					break;
				}
				f->stail += take;
				queued_add(f, take);
				done += take;
				n -= take;
				skip = 0;
			}
			shim__fd_mark_dirty(f);
		}
		if (done == total || f->send_inflight || f->stail == f->shead)
			break;
		/* Queue full, nothing in flight: hand it to the kernel. */
		if (!shim__on_loop(f->loop)) {
			if (!shim__fd_push(f))
				break;
			continue;
		}
		if (!kick_locked(f))
			return done ? (ssize_t)done : -EBADF;
		if (f->hup || f->err)
			break;
	}
	if (!done) {
		f->out_wanted = true;
		return -EAGAIN;
	}
	if (done < total)
		f->out_wanted = true;
	STAT_INC(sends_queued);
	if (f->stail - f->shead >= SEND_FLUSH_BYTES && !f->send_inflight &&
	    shim__on_loop(f->loop))
		kick_locked(f);
	else if (!shim__on_loop(f->loop))
		shim__ring_wake(f->loop);
	return done;
}

/*
 * URINGSHIM_SEND=sync: nothing is ever queued, so no byte a write reported
 * lives only in shim memory (nothing to lose to SIGKILL).  The kernel's
 * answer is the app's answer; when it is short or EAGAIN, EPOLLOUT is
 * withheld until a POLLOUT armed in the ring fires, as the kernel would.
 */
ssize_t shim__fd_send_sync(struct shim_fd *f, const struct iovec *iov,
			   int iovcnt, int flags)
{
	struct msghdr msg = { .msg_iov = (struct iovec *)iov,
			      .msg_iovlen = iovcnt };
	size_t total = iov_total(iov, iovcnt);
	ssize_t n;
	int e;

	e = send_refused(f);
	if (e)
		return e;
	STAT_INC(shim_syscalls);
	n = real_sendmsg(f->fd, &msg, flags | MSG_DONTWAIT | MSG_NOSIGNAL);
	e = errno;
	if (n > 0)
		STAT_ADD(bytes_sent, n);
	if ((n >= 0 && (size_t)n < total) || (n < 0 && e == EAGAIN)) {
		f->out_blocked = true;
		shim__fd_mark_dirty(f);
		if (!shim__on_loop(f->loop))
			shim__ring_wake(f->loop);
	}
	return n < 0 ? -e : n;
}

/* ---- completions (from ring.c) ---- */

static void maybe_free_orphan(struct shim_fd *f)
{
	if (f->state != FD_ORPHAN || f->inflight)
		return;
	if (f->stail > f->shead && !f->hup) {
		shim__fd_mark_dirty(f);
		return;
	}
	if (f->dirty)
		return;		/* freed when the dirty list gets to it */
	shim__fd_free(f);
}

static void finish_release(struct shim_fd *f);

static bool transient(int res)
{
	return res == -EAGAIN || res == -EINTR || res == -ENOBUFS ||
	       res == -ENOMEM;
}

/*
 * Transient ring errors in a row on one fd before its I/O takes the plain
 * syscall instead: retrying is bounded, a persistent failure degrades to
 * the direct path and progress is always made.
 */
#define RING_RETRY_MAX	4

/* One more transient ring error on f: has it become persistent? */
static bool ring_failing(struct shim_fd *f)
{
	if (f->ring_fails < RING_RETRY_MAX)
		f->ring_fails++;
	return f->ring_fails >= RING_RETRY_MAX;
}

/*
 * The ring's receive keeps failing: a plain non-blocking recv into rbuf
 * (no receive is armed, so rbuf is ours to compact).  Returns bytes, 0 at
 * EOF, or -errno; -EAGAIN with nothing to read arms a poll for input, or
 * nothing when rbuf is full (the app's read re-arms).
 */
static int recv_direct(struct shim_fd *f)
{
	ssize_t n;

	if (f->roff) {
		memmove(f->rbuf, f->rbuf + f->roff, f->rlen - f->roff);
		f->rlen -= f->roff;
		f->roff = 0;
	}
	if (f->rlen == f->rcap)
		return -EAGAIN;
	STAT_INC(fallbacks);
	STAT_INC(shim_syscalls);
	n = real_recv(f->fd, f->rbuf + f->rlen, f->rcap - f->rlen,
		      MSG_DONTWAIT);
	if (n > 0) {
		f->rlen += n;
		return n;
	}
	if (n == 0)
		return 0;
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
		shim__ring_prep_recv_wait(f);
		return -EAGAIN;
	}
	return -errno;
}

/*
 * The ring's send keeps failing: a plain non-blocking send of the queue
 * (nothing in flight).  Returns bytes or -errno; when the kernel is full
 * a poll waits for room and 0 is returned.
 */
static int send_direct(struct shim_fd *f)
{
	ssize_t n;

	STAT_INC(fallbacks);
	STAT_INC(shim_syscalls);
	n = real_send(f->fd, f->sbuf + f->shead, f->stail - f->shead,
		      MSG_DONTWAIT | MSG_NOSIGNAL);
	if (n >= 0)
		return n;
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
		shim__ring_prep_send_wait(f);
		return 0;
	}
	return -errno;
}

/*
 * Append bytes a multishot receive left in a ring buffer.  rbuf belongs to
 * us alone in that mode, so it may move: compact, else grow (only when
 * the app lags; the arm condition stops pulling past one rcap unread).
 */
static void recv_append(struct shim_fd *f, const char *data, size_t len)
{
	if (f->rlen + len > f->rcap && f->roff) {
		memmove(f->rbuf, f->rbuf + f->roff, f->rlen - f->roff);
		f->rlen -= f->roff;
		f->roff = 0;
	}
	if (f->rlen + len > f->rcap) {
		size_t cap = f->rcap * 2;
		char *p;

		while (cap < f->rlen + len)
			cap *= 2;
		p = realloc(f->rbuf, cap);
		if (!p) {
			/* Nowhere to put them: the stream is broken. */
			f->err = ENOMEM;
			f->hup = f->eof = true;
			return;
		}
		f->rbuf = p;
		f->rcap = cap;
	}
	memcpy(f->rbuf + f->rlen, data, len);
	f->rlen += len;
}

/*
 * A receive completion.  more: a multishot receive stays armed.  data:
 * the ring buffer holding the bytes (multishot), NULL when the kernel
 * wrote them into rbuf directly (single-shot).
 */
void shim__on_recv(struct shim_fd *f, int res, bool more, const char *data)
{
	bool was_single = f->recv_single, direct = false;

	if (!more) {
		f->inflight--;
		f->recv_armed = false;
		f->recv_single = false;
	}
	if (f->state == FD_ORPHAN) {
		if (!more)
			maybe_free_orphan(f);
		return;
	}
	if (transient(res) && !more && f->state == FD_ACCEL &&
	    !f->release_req && !f->eof && !f->hup && ring_failing(f)) {
		res = recv_direct(f);
		direct = true;
	}
	if (res > 0) {
		if (direct)
			;		/* already in rbuf */
		else if (data)
			recv_append(f, data, res);
		else if (was_single)
			f->rlen += res;
		else
			res = 0;	/* buffer-less: multishot or a poll */
		if (res && !direct)
			f->ring_fails = 0;
		STAT_ADD(bytes_recv, res);
	} else if (direct && res == -EAGAIN) {
		/* counted by recv_direct; a poll or the app re-arms */
	} else if (res == -EINVAL && !more && f->loop->multishot &&
		   !was_single) {
		/* Multishot refused (before 6.0): single-shot from now on. */
		f->loop->multishot = false;
		shim__log(LOG_INFO, "uringshim: multishot recv refused: "
			  "single-shot receives\n");
		STAT_INC(fallbacks);
	} else if (res == 0) {
		f->eof = true;
		if (f->state == FD_ACCEL && !f->hup)
			shim__err_watch(f, true);
	} else if (res == -ECANCELED) {
		/* cancelled by close or release */
	} else if (transient(res)) {
		STAT_INC(fallbacks);
	} else {
		if (!f->err)
			f->err = -res;
		f->hup = true;
		f->eof = true;
		STAT_INC(deferred_errors);
	}
	if (f->state == FD_ACCEL) {
		shim__fd_notify(f);
		if (!more)
			shim__fd_mark_dirty(f);
	}
	if (f->release_req && !more)
		finish_release(f);
}

void shim__on_send(struct shim_fd *f, int res)
{
	uint32_t inflight_len = f->sinfl - f->shead;

	f->inflight--;
	f->send_inflight = false;
	f->wait_cancel = false;
	if (transient(res) && !f->hup && f->stail > f->shead &&
	    ring_failing(f)) {
		res = send_direct(f);
		inflight_len = f->stail - f->shead;
	} else if (res > 0 && inflight_len) {
		f->ring_fails = 0;
	}
	if (res >= 0) {
		if ((uint32_t)res > inflight_len)
			res = inflight_len;
		f->shead += res;
		queued_add(f, -(int64_t)(res));
		STAT_ADD(bytes_sent, res);
	} else if (transient(res)) {
		STAT_INC(fallbacks);
	} else if (res != -ECANCELED) {
		if (!f->err)
			f->err = -res;
		f->hup = true;
		STAT_INC(deferred_errors);
		queued_add(f, -(int64_t)(f->stail - f->shead));
		f->shead = f->stail = f->sinfl = 0;
	}
	if (f->shead == f->stail) {
		f->shead = f->stail = f->sinfl = 0;
		if (f->shut_wr_pending) {
			f->shut_wr_pending = false;
			STAT_INC(shim_syscalls);
			real_shutdown(f->fd, SHUT_WR);
		}
	} else {
		shim__fd_mark_dirty(f);
	}
	if (f->state == FD_ORPHAN) {
		maybe_free_orphan(f);
		return;
	}
	if (f->out_wanted || f->out_blocked || f->hup) {
		f->out_wanted = false;
		f->out_blocked = false;
		shim__fd_notify(f);
	}
	if (f->release_req)
		finish_release(f);
}

/* The private ERR/HUP set fired: update those sockets (lock held). */
void shim__on_err_events(struct shim_loop *l)
{
	struct epoll_event ev[32];
	int n, i;

	STAT_INC(shim_syscalls);
	n = real_epoll_wait(l->err_epfd, ev, 32, 0);
	for (i = 0; i < n; i++) {
		struct shim_fd *f = shim__fd_get_locked(ev[i].data.fd);

		if (!f || f->state != FD_ACCEL || !f->err_watch)
			continue;
		if (ev[i].events & EPOLLERR) {
			int e = 0;
			socklen_t len = sizeof(e);

			STAT_INC(shim_syscalls);
			if (!real_getsockopt(f->fd, SOL_SOCKET, SO_ERROR, &e,
					     &len) && e && !f->err)
				f->err = e;
		}
		f->hup = true;
		shim__err_watch(f, false);
		shim__fd_notify(f);
	}
	/* Others still watched: keep the set polled. */
	shim__err_poll_arm(l);
}

void shim__on_cancel(struct shim_fd *f)
{
	f->inflight--;
	if (f->state == FD_ORPHAN)
		maybe_free_orphan(f);
	else if (f->release_req)
		finish_release(f);
}

/* ---- release: hand the fd back to the kernel's epoll sets ---- */

static void table_clear(int fd)
{
	__atomic_store_n(&shim.fds[fd], NULL, __ATOMIC_RELEASE);
	__atomic_sub_fetch(&shim.owned_n, 1, __ATOMIC_RELAXED);
}

/* newfd (a dup of a draining fd) shares its held bytes. */
void shim__fd_alias(struct shim_fd *f, int newfd)
{
	if (f->state != FD_DRAINING || f->alias >= 0 || newfd < 0 ||
	    newfd >= shim.nfds || shim.fds[newfd])
		return;
	f->alias = newfd;
	__atomic_store_n(&shim.fds[newfd], f, __ATOMIC_RELEASE);
	__atomic_add_fetch(&shim.owned_n, 1, __ATOMIC_RELAXED);
}

/*
 * A draining fd whose held bytes (and pending error) are gone becomes
 * pure passthrough: only now do its registrations go back into the
 * kernel epoll sets, so the held bytes and the kernel never report the
 * same fd twice.
 */
static void drained_draining(struct shim_fd *f)
{
	int i;

	if (f->err)
		return;		/* keep it until the error is reported */
	for (i = 0; i < f->nregs; i++) {
		struct shim_reg *r = &f->regs[i];
		struct epoll_event ev = {
			.events = r->oneshot_fired ? 0 : r->events,
			.data = r->data,
		};

		STAT_INC(shim_syscalls);
		real_epoll_ctl(r->ep->epfd, EPOLL_CTL_ADD, f->fd, &ev);
	}
	while (f->nregs)
		shim__reg_unlink(&f->regs[0]);
	table_clear(f->fd);
	if (f->alias >= 0)
		table_clear(f->alias);
	f->alias = -1;
	if (f->inflight || f->dirty) {
		f->state = FD_ORPHAN;	/* last completion frees it */
		__atomic_add_fetch(&f->loop->orphans_n, 1, __ATOMIC_RELAXED);
		return;
	}
	shim__fd_free(f);
}

static void finish_release(struct shim_fd *f)
{
	if (f->inflight || f->send_inflight || f->stail > f->shead)
		return;
	f->release_req = false;
	shim__err_watch(f, false);
	f->state = FD_DRAINING;
	f->loop->accel_n--;
	__atomic_sub_fetch(&shim.accel_now, 1, __ATOMIC_RELAXED);
	shim__stats->accel_now = shim.accel_now;
	STAT_INC(fallbacks);
	/* Not an edge: registrations keep their ready-list state. */
	if (f->roff == f->rlen && !f->err)
		drained_draining(f);
	pthread_cond_broadcast(&shim.cond);
}

/*
 * Give f back to the kernel: drain its send queue, cancel its receive,
 * re-add its registrations to the kernel epoll sets.  Bytes already
 * buffered are still served first (FD_DRAINING).  Blocks the caller until
 * done; the loop thread drives the ring itself, others wait for it.
 */
int shim__fd_release(struct shim_fd *f)
{
	int fd = f->fd;

	if (f->state != FD_ACCEL)
		return 0;
	f->release_req = true;
	shim__fd_mark_dirty(f);
	finish_release(f);
	while (shim.fds[fd] == f && f->state == FD_ACCEL) {
		struct shim_loop *l = f->loop;

		if (shim__on_loop(l)) {
			shim__ring_turn(l, 1, NULL);
		} else {
			struct timespec ts;

			shim__ring_wake(l);
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += 1;
			tsan_release(&shim.lock);
			pthread_cond_timedwait(&shim.cond, &shim.lock, &ts);
			tsan_acquire(&shim.lock);
		}
	}
	return 0;
}

/* Kill switch / thread exit: l's sockets back to the kernel (l's thread). */
void shim__release_loop(struct shim_loop *l)
{
	int fd;

	for (fd = 0; fd < shim.nfds && l->accel_n > 0; fd++) {
		struct shim_fd *f = shim.fds[fd];

		if (f && f->state == FD_ACCEL && f->loop == l)
			shim__fd_release(f);
	}
}

/* Registrations a fork child re-adds to the kernel on its first epoll use. */
struct child_readd {
	int epfd, fd;
	struct epoll_event ev;
};
static struct child_readd *child_readd;
static int child_readd_n;

/*
 * Fork child: the parent's ring and everything in flight are not ours.
 * Every fd the shim held becomes plain passthrough.  Its registrations go
 * back into the kernel epoll sets only when the child itself first uses
 * epoll: those sets are shared with the parent, which keeps emulating
 * them, and would otherwise start seeing kernel events for its own
 * accelerated sockets.
 */
void shim__forget_all_child(void)
{
	int fd, i, n = 0;

	for (fd = 0; fd < shim.nfds; fd++) {
		struct shim_fd *f = shim.fds[fd];

		if (f && f->state != FD_ORPHAN)
			n += f->nregs;
	}
	child_readd = n ? calloc(n, sizeof(*child_readd)) : NULL;
	for (fd = 0; fd < shim.nfds; fd++) {
		struct shim_fd *f = shim.fds[fd];

		if (!f)
			continue;
		if (f->alias >= 0) {
			/* Both numbers point here: free it once. */
			shim.fds[f->alias == fd ? f->fd : f->alias] = NULL;
			f->alias = -1;
		}
		for (i = 0; child_readd && i < f->nregs; i++) {
			struct shim_reg *r = &f->regs[i];
			struct child_readd *c = &child_readd[child_readd_n++];

			c->epfd = r->ep->epfd;
			c->fd = fd;
			c->ev.events = r->oneshot_fired ? 0 : r->events;
			c->ev.data = r->data;
		}
		shim.fds[fd] = NULL;
		free(f->rbuf);
		free(f->sbuf);
		free(f);
	}
	for (fd = 0; fd < shim.nfds; fd++) {
		struct shim_ep *ep = shim.eps[fd];

		if (!ep)
			continue;
		ep->ready_head = ep->ready_tail = NULL;
		ep->nemul = 0;
		ep->kpoll = NULL;
		ep->kready = false;
		ep->loop = NULL;
		ep->waited = false;
	}
	shim.accel_now = 0;
	shim.owned_n = 0;
	shim.queued_total = 0;
	shim__stats->accel_now = 0;
}

/* The child's first epoll call: its registrations back to the kernel. */
void shim__child_readd(void)
{
	int i;

	shim_lock();
	for (i = 0; i < child_readd_n; i++) {
		struct child_readd *c = &child_readd[i];

		STAT_INC(shim_syscalls);
		real_epoll_ctl(c->epfd, EPOLL_CTL_ADD, c->fd, &c->ev);
	}
	free(child_readd);
	child_readd = NULL;
	WR(child_readd_n, 0);
	shim_unlock();
}

bool shim__child_readd_pending(void)
{
	return RD(child_readd_n) != 0;
}

/* ---- close / shutdown ---- */

/*
 * The peer is not reading and the app will not wait on the ring for it:
 * stop the ring send (a cancelled send reports the bytes it did move) and
 * let the drainer thread finish on a descriptor of its own.  shut_wr:
 * f stays open (shutdown), the drainer gets a fresh dup and sends the
 * FIN; otherwise f->fd is already our private dup (close).  Loop thread,
 * lock held; f may be freed on return when it was an orphan.
 */
static void drain_in_background(struct shim_fd *f, bool shut_wr)
{
	int fd;

	if (f->send_inflight) {
		bool alive;

		shim__ring_prep_cancel_send(f);
		alive = kick_locked(f);
		if (shut_wr ? !alive : f->loop->closing != f)
			return;
	}
	if ((!shut_wr && f->loop->closing != f) || f->send_inflight ||
	    f->stail == f->shead || f->hup)
		return;
	fd = shut_wr ? shim__fd_dup_private(f->fd) : f->fd;
	if (fd < 0)
		return;
	if (shim__drain_handoff(f, fd, shut_wr)) {
		if (shut_wr)
			real_close(fd);
		return;
	}
	if (shut_wr) {
		f->shut_wr_pending = false;
	} else {
		struct shim_loop *l = f->loop;

		f->own_fd = false;	/* the drainer closes it */
		shim__fd_mark_dirty(f);
		shim__ring_flush_dirty(l);	/* frees f if nothing is left */
	}
}

/*
 * Is input left unread at close: in our buffer, in a completion the ring
 * already posted (loop thread: dispatched first), or in the kernel's
 * receive queue (SIOCINQ; a received FIN does not count)?
 */
static bool close_has_unread(struct shim_fd *f, int fd)
{
	int inq = 0;

	if (f->roff < f->rlen)
		return true;
	if (shim__on_loop(f->loop) && !f->release_req) {
		shim__ring_reap(f->loop);	/* cannot free f: not closing */
		if (f->roff < f->rlen)
			return true;
	}
	STAT_INC(shim_syscalls);
	return !real_ioctl(fd, SIOCINQ, &inq) && inq > 0;
}

/*
 * The app closes f->fd.  Queued bytes still go out (through a private dup
 * so a reused fd number can never receive them), the receive is
 * cancelled, registrations vanish as the kernel's would.  The caller does
 * the real close afterwards.
 */
int shim__fd_close(struct shim_fd *f, int fd)
{
	/* First: dispatching may still put f on the error watch. */
	bool abort = f->state == FD_ACCEL ? close_has_unread(f, fd) :
		     f->state == FD_DRAINING && f->roff < f->rlen;

	shim__err_watch(f, false);
	if (f->state == FD_DRAINING && f->alias >= 0) {
		/* A dup still holds the socket: only this number goes. */
		if (fd == f->alias) {
			f->alias = -1;
		} else {
			f->fd = f->alias;
			f->alias = -1;
		}
		table_clear(fd);
		return 0;
	}
	if (abort) {
		/*
		 * Closing with unread input makes the kernel reset the
		 * connection at once and discard what it could not send
		 * (tcp_close).  Do the same: our queue goes to the kernel
		 * as far as it has room (without the shim those bytes would
		 * already be there), the rest is dropped (hup: no send is
		 * made or resumed, the orphan is freed as soon as the ring
		 * lets go of it), and no private dup is kept, so the real
		 * close is the last reference and sends the RST.
		 */
		struct linger rst = { .l_onoff = 1, .l_linger = 0 };

		if (!f->send_inflight && f->stail > f->shead) {
			ssize_t n = real_send(fd, f->sbuf + f->shead,
					      f->stail - f->shead,
					      MSG_DONTWAIT | MSG_NOSIGNAL);

			STAT_INC(shim_syscalls);
			if (n > 0) {
				f->shead += n;
				queued_add(f, -(int64_t)n);
				STAT_ADD(bytes_sent, n);
			}
		}
		STAT_INC(shim_syscalls);
		real_setsockopt(fd, SOL_SOCKET, SO_LINGER, &rst, sizeof(rst));
		f->hup = true;
		if (f->send_inflight && shim__on_loop(f->loop))
			shim__ring_prep_cancel_send(f);
	}
	while (f->nregs)
		shim__reg_unlink(&f->regs[0]);
	if (f->state != FD_ORPHAN)
		table_clear(fd);
	if (f->state == FD_ACCEL) {
		f->loop->accel_n--;
		__atomic_sub_fetch(&shim.accel_now, 1, __ATOMIC_RELAXED);
		shim__stats->accel_now = shim.accel_now;
	}
	if (f->state == FD_ORPHAN)
		return 0;	/* a draining fd already handed over */
	if (!shim__on_loop(f->loop))
		shim__fd_push(f);
	if (f->stail > f->shead && !f->hup) {
		int dupfd = shim__fd_dup_private(fd);

		STAT_INC(shim_syscalls);
		if (dupfd >= 0) {
			f->fd = dupfd;
			f->own_fd = true;
		} else {
			queued_add(f, -(int64_t)(f->stail - f->shead));
			f->shead = f->stail = 0;
		}
	}
	f->state = FD_ORPHAN;
	__atomic_add_fetch(&f->loop->orphans_n, 1, __ATOMIC_RELAXED);
	f->release_req = false;
	/* The kernel would keep sending after close: the drainer does. */
	if (!shim__on_loop(f->loop) && f->own_fd && !f->send_inflight &&
	    f->stail > f->shead && !shim__drain_handoff(f, f->fd, false))
		f->own_fd = false;
	if (!f->inflight && (f->stail == f->shead || f->hup)) {
		if (!f->dirty)
			shim__fd_free(f);
		return 0;
	}
	shim__fd_mark_dirty(f);
	if (shim__on_loop(f->loop)) {
		struct shim_loop *l = f->loop;
		struct timespec ms = { 0, 1000 * 1000 };
		int round;

		/*
		 * Cancel the receive and push the queue now, and give the
		 * completions a moment, so the socket really closes (FIN
		 * after our bytes) with this close, not at the next wait.
		 */
		l->closing = f;
		shim__ring_flush_dirty(l);
		for (round = 0; round < 4 && l->closing == f; round++) {
			shim_unlock();
			shim__ring_submit_wait(l, round ? 1 : 0, &ms, NULL);
			shim_lock();
			shim__ring_reap(l);
			shim__ring_flush_dirty(l);
		}
		if (l->closing == f && f->stail > f->shead && !f->hup &&
		    f->own_fd)
			drain_in_background(f, false);
		if (l->closing == f)
			l->closing = NULL;
	} else {
		shim__ring_wake(f->loop);
	}
	return 0;
}

/*
 * shutdown: the FIN must follow the queued bytes, never overtake them.
 * The loop thread pushes the queue first (the usual case drains at once);
 * when the kernel is full the real SHUT_WR is made by the send completion
 * that empties the queue.  Reads after SHUT_RD see buffered bytes, then 0.
 */
int shim__fd_shutdown(struct shim_fd *f, int how)
{
	int fd = f->fd;

	if (!shim__on_loop(f->loop))
		shim__fd_push(f);
	if (how == SHUT_RD || how == SHUT_RDWR)
		f->eof = true;
	if ((how == SHUT_WR || how == SHUT_RDWR) &&
	    (f->stail > f->shead || f->send_inflight) && !f->hup) {
		if (f->shut_wr)
			return 0;
		if (shim__on_loop(f->loop) && !kick_locked(f))
			return -EBADF;
		if (f->stail > f->shead || f->send_inflight) {
			f->shut_wr = true;
			f->shut_wr_pending = true;
			if (shim__on_loop(f->loop)) {
				/* Kernel full: FIN from the drainer thread. */
				drain_in_background(f, true);
				if (!f->shut_wr_pending) {
					if (how == SHUT_RDWR)
						real_shutdown(fd, SHUT_RD);
					shim__fd_notify(f);
					return 0;
				}
			}
			if (how == SHUT_RDWR)
				real_shutdown(fd, SHUT_RD);
			shim__fd_notify(f);
			if (!shim__on_loop(f->loop))
				shim__ring_wake(f->loop);
			return 0;
		}
	}
	if (how == SHUT_WR || how == SHUT_RDWR)
		f->shut_wr = true;
	shim__fd_notify(f);
	return real_shutdown(fd, how) ? -errno : 0;
}

/* ---- the flush: turn dirty fds into SQEs (loop thread) ---- */

void shim__ring_flush_dirty(struct shim_loop *l)
{
	struct shim_fd *f, *next;

	while (l->dead_eps) {
		struct shim_ep *ep = l->dead_eps;

		l->dead_eps = ep->dead_next;
		shim__ring_prep_cancel_ep(l, ep);
	}
	f = l->dirty;
	WR(l->dirty, NULL);
	for (; f; f = next) {
		next = f->dirty_next;
		f->dirty = false;
		f->dirty_next = NULL;
		if (f->stail > f->shead && !f->send_inflight && !f->hup &&
		    f->state != FD_DRAINING)
			shim__ring_prep_send(f);
		else if (f->out_blocked && !f->send_inflight &&
			 f->state == FD_ACCEL && !f->release_req)
			shim__ring_prep_send_wait(f);
		if (f->state == FD_ACCEL && !f->release_req &&
		    !f->recv_armed && !f->eof && !f->hup) {
			if (f->roff == f->rlen)
				f->roff = f->rlen = 0;
			/* Pause pulling while a whole buffer sits unread. */
			if (l->multishot ? f->rlen - f->roff < f->rcap :
					     f->rlen < f->rcap)
				shim__ring_prep_recv(f);
		}
		if ((f->state == FD_ORPHAN || f->release_req) &&
		    f->recv_armed && !f->recv_cancel)
			shim__ring_prep_cancel(f);
		/* A POLLOUT wait (no bytes in flight) would hold the file. */
		if ((f->state == FD_ORPHAN || f->release_req) &&
		    f->send_inflight && f->sinfl == f->shead &&
		    f->stail == f->shead && !f->wait_cancel) {
			shim__ring_prep_cancel_send(f);
			f->wait_cancel = true;
		}
		if (f->state == FD_ORPHAN && !f->inflight &&
		    (f->stail == f->shead || f->hup))
			shim__fd_free(f);
		else if (f->release_req)
			finish_release(f);
	}
}
