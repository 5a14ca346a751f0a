/*
 * fd.c - life of an accelerated socket: receive segments, send queue,
 * readiness, completions, release, close, shutdown.  Every function that
 * takes a struct sfd runs with its loop locked (core.h, "Locks").
 *
 * Receive: a multishot receive stays armed; each completion's bytes stay
 * in the ring buffer the kernel put them in (a segment) and a read copies
 * them straight into the application's buffer, once, handing the ring
 * buffer back when its last segment is consumed.  Bytes still unread at
 * the next wait point are copied into the socket's own buffer (a spill),
 * so ring buffers never wait on a slow reader.  Order: own buffer first
 * (older), then segments.  Single-shot receives (URINGSHIM_RECV=single, or
 * no buffer ring) land in the own buffer directly.
 *
 * Send: bytes are copied to the send queue and go out as one ring send
 * per socket at the next flush point, in order (one send in flight per
 * socket); errors come back on the next call (deferred errors).
 */
#include <fcntl.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "core.h"

/* Queued bytes that trigger a send before the next wait point. */
#define SEND_FLUSH_BYTES	(64 * 1024)
/* Transient ring errors in a row before the plain syscall takes over. */
#define RING_RETRY_MAX		4
#define DIRECT_IOV_MAX		16

static void drained_draining(struct sfd *f);
static void finish_release(struct sfd *f);

/*
 * f needs SQEs at the next flush.  In order: the sends of one turn leave
 * in the order the app wrote, as they would without the shim (the peers
 * then answer in that order too).
 */
static void mark_dirty(struct sfd *f)
{
	struct loop *l = f->loop;

	if (f->dirty)
		return;
	f->dirty = true;
	f->dirty_next = NULL;
	if (!l->dirty) {
		WR(l->dirty, f);
	} else {
		*l->dirty_tail = f;
	}
	l->dirty_tail = &f->dirty_next;
}

/* Take f off l's dirty list (l locked; a walk, for the rare move). */
static void dirty_remove(struct loop *l, struct sfd *f)
{
	struct sfd **pp;

	if (!f->dirty)
		return;
	for (pp = &l->dirty; *pp; pp = &(*pp)->dirty_next)
		if (*pp == f) {
			WR(*pp, f->dirty_next);
			if (l->dirty_tail == &f->dirty_next)
				l->dirty_tail = pp;
			break;
		}
	f->dirty = false;
	f->dirty_next = NULL;
}

struct sfd *fd_lock(int fd)
{
	struct sfd *f = fdtab_fd(fd);

	while (f) {
		struct loop *l = __atomic_load_n(&f->loop, __ATOMIC_ACQUIRE);

		if (!l)
			return NULL;
		loop_lock(l);
		if (fdtab_fd(fd) == f && f->loop == l)
			return f;
		loop_unlock(l);
		f = fdtab_fd(fd);
	}
	return NULL;
}

/*
 * fd_lock for the calls that only look after an fd of ours: NULL at once
 * for any other fd, and inside a signal handler that interrupted the shim.
 */
static struct sfd *fd_lock_ours(int fd)
{
	if (likely(!fdtab_fd(fd)) || shim__depth)
		return NULL;
	return fd_lock(fd);
}

/* f moved between loops or went away while l was unlocked? */
static bool still_mine(struct sfd *f, int fd, struct loop *l)
{
	return fdtab_fd(fd) == f && f->loop == l;
}

/*
 * Is fd a connected non-blocking TCP socket?  Two syscalls, once per
 * connection: TCP_INFO only works on TCP sockets (AF_INET/AF_INET6) and
 * tells the state; F_GETFL tells O_NONBLOCK.
 */
bool fd_accelerable(int fd)
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

/* The error set: sockets past EOF wait there for a reset (see below). */
static void err_watch(struct sfd *f, bool on);

struct sfd *fd_accel(int fd, struct loop *l, bool checked)
{
	struct sfd *f;

	if (!l || l->dead || fdtab_fd(fd) ||
	    RD(shim.state) != SHIM_STATE_ACTIVE ||
	    shim__cfg.recv_mode == MODE_RECV_DIRECT ||
	    (shim__cfg.spin_ns && !shim__cfg.spin_ring) ||
	    (!checked && !fd_accelerable(fd)) || !fdtab_peek(fd))
		return NULL;
	f = sfd_alloc();
	if (!f)
		return NULL;
	/* The send queue now: a write may come from a signal handler. */
	f->sbuf = malloc(shim__cfg.send_max_fd);
	if (!f->sbuf) {
		sfd_free(f);
		return NULL;
	}
	shim__crash_arm();
	f->fd = fd;
	f->state = FD_ACCEL;
	f->peek_off = -1;
	f->alias = -1;
	f->scap = shim__cfg.send_max_fd;
	__atomic_store_n(&f->loop, l, __ATOMIC_RELEASE);
	loop_ref(l);
	WR(l->accel_n, l->accel_n + 1);
	fdtab_set_fd(fd, f);
	__atomic_add_fetch(&shim.owned_n, 1, __ATOMIC_RELAXED);
	stats_accel_now(__atomic_add_fetch(&shim.accel_now, 1,
					     __ATOMIC_RELAXED));
	STAT_INC(accel_total);
	mark_dirty(f);
	loop_wake(l);
	return f;
}

/* Segments back to the ring, own buffer freed. */
static void drop_input(struct sfd *f)
{
	while (f->seg_n) {
		ring_buf_release(&f->loop->ring, f->seg[f->seg_head].bid);
		f->seg_head = (f->seg_head + 1) % SFD_SEGS;
		f->seg_n--;
	}
}

static void holding_add(struct sfd *f)
{
	struct loop *l = f->loop;

	if (f->holding)
		return;
	f->holding = true;
	f->hold_prev = NULL;
	f->hold_next = l->holding;
	if (l->holding)
		l->holding->hold_prev = f;
	l->holding = f;
}

static void holding_remove(struct sfd *f)
{
	if (!f->holding)
		return;
	if (f->hold_prev)
		f->hold_prev->hold_next = f->hold_next;
	else
		f->loop->holding = f->hold_next;
	if (f->hold_next)
		f->hold_next->hold_prev = f->hold_prev;
	f->holding = false;
	f->hold_next = f->hold_prev = NULL;
}

static void fd_free(struct sfd *f)
{
	struct loop *l = f->loop;

	if (f->state == FD_ORPHAN)
		WR(l->orphans_n, l->orphans_n - 1);
	if (l->closing == f)
		l->closing = NULL;
	if (f->own_fd)
		real_close(f->fd);
	holding_remove(f);
	drop_input(f);
	loop_queued_sub(l, f->stail - f->shead);
	free(f->rbuf);
	free(f->sbuf);
	f->rbuf = f->sbuf = NULL;
	loop_unref(l);
	sfd_free(f);
}

/* ---- readiness ---- */

uint32_t fd_unread(struct sfd *f)
{
	uint32_t n = f->rlen - f->roff;
	int i;

	for (i = 0; i < f->seg_n; i++)
		n += f->seg[(f->seg_head + i) % SFD_SEGS].len;
	return n;
}

bool fd_has_input(struct sfd *f)
{
	return f->roff < f->rlen || f->seg_n;
}

uint32_t fd_events(struct sfd *f)
{
	uint32_t m = 0;

	if (fd_has_input(f) || f->eof || f->err || f->hup)
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

/* ---- receive ---- */

/* Make room for len more bytes at rbuf's tail; false: no memory. */
static bool rbuf_reserve(struct sfd *f, size_t len)
{
	size_t cap;
	char *p;

	if (f->roff && f->rlen + len > f->rcap && !f->recv_single) {
		memmove(f->rbuf, f->rbuf + f->roff, f->rlen - f->roff);
		f->rlen -= f->roff;
		f->roff = 0;
	}
	if (f->rlen + len <= f->rcap)
		return true;
	cap = f->rcap ? f->rcap : shim__cfg.recv_buf;
	while (cap < f->rlen + len)
		cap *= 2;
	p = realloc(f->rbuf, cap);
	if (!p)
		return false;
	f->rbuf = p;
	f->rcap = cap;
	return true;
}

/* The stream cannot be kept whole: the connection is broken. */
static void input_broken(struct sfd *f)
{
	f->err = ENOMEM;
	f->hup = f->eof = true;
	drop_input(f);
	holding_remove(f);
}

/* Segments become the socket's own copy, ring buffers go back. */
static void spill(struct sfd *f)
{
	uint32_t n = fd_unread(f) - (f->rlen - f->roff);

	if (!f->seg_n)
		return;
	if (!rbuf_reserve(f, n)) {
		input_broken(f);
		return;
	}
	while (f->seg_n) {
		struct rseg *s = &f->seg[f->seg_head];

		memcpy(f->rbuf + f->rlen, s->p, s->len);
		f->rlen += s->len;
		ring_buf_release(&f->loop->ring, s->bid);
		f->seg_head = (f->seg_head + 1) % SFD_SEGS;
		f->seg_n--;
	}
	holding_remove(f);
}

void fd_spill_holding(struct loop *l)
{
	while (l->holding)
		spill(l->holding);
}

/* A multishot receive's bytes, left where the kernel put them. */
static void seg_append(struct sfd *f, const char *p, uint32_t len, int bid)
{
	struct rseg *last = f->seg_n ?
		&f->seg[(f->seg_head + f->seg_n - 1) % SFD_SEGS] : NULL;

	if (last && last->bid == bid && last->p + last->len == p) {
		last->len += len;	/* packed right after: one segment */
		return;
	}
	if (f->seg_n == SFD_SEGS)
		spill(f);
	if (f->hup)
		return;
	f->seg[(f->seg_head + f->seg_n) % SFD_SEGS] =
		(struct rseg){ .p = p, .len = len, .bid = bid };
	f->seg_n++;
	ring_buf_hold(&f->loop->ring, bid);
	holding_add(f);
}

/*
 * Copy up to want bytes, starting skip bytes into the unread input, to
 * iov (NULL: count only, MSG_TRUNC).  Returns bytes copied, or -EFAULT
 * when any could not be: tcp_recvmsg copies an skb whole or not at all,
 * and the bytes the ring pulled came as one, so a read that faults part
 * way consumes nothing.
 */
static ssize_t input_copy(struct sfd *f, size_t skip, const struct iovec *iov,
			  int iovcnt, size_t want)
{
	size_t done = 0, vi_off = 0;
	int vi = 0, si = 0;
	const char *src;
	size_t avail;

	/* Walk: own buffer, then each segment. */
	src = f->rbuf + f->roff;
	avail = f->rlen - f->roff;
	for (;;) {
		if (skip >= avail) {
			skip -= avail;
		} else {
			src += skip;
			avail -= skip;
			skip = 0;
			while (avail && done < want) {
				size_t n = avail < want - done ?
					   avail : want - done;

				if (iov) {
					while (vi < iovcnt &&
					       vi_off == iov[vi].iov_len) {
						vi++;
						vi_off = 0;
					}
					if (vi == iovcnt)
						return done;
					if (n > iov[vi].iov_len - vi_off)
						n = iov[vi].iov_len - vi_off;
					if (!shim__copy((char *)iov[vi].iov_base +
							vi_off, src, n))
						return -EFAULT;
					vi_off += n;
				}
				src += n;
				avail -= n;
				done += n;
			}
		}
		if (done == want || si == f->seg_n)
			return done;
		src = f->seg[(f->seg_head + si) % SFD_SEGS].p;
		avail = f->seg[(f->seg_head + si) % SFD_SEGS].len;
		si++;
	}
}

/* n bytes were read: let them go. */
static void input_consume(struct sfd *f, size_t n)
{
	size_t own = f->rlen - f->roff;

	if (own) {
		size_t k = n < own ? n : own;

		f->roff += k;
		n -= k;
		if (f->roff == f->rlen && !f->recv_single)
			f->roff = f->rlen = 0;
	}
	while (n && f->seg_n) {
		struct rseg *s = &f->seg[f->seg_head];
		size_t k = n < s->len ? n : s->len;

		s->p += k;
		s->len -= k;
		n -= k;
		if (!s->len) {
			ring_buf_release(&f->loop->ring, s->bid);
			f->seg_head = (f->seg_head + 1) % SFD_SEGS;
			f->seg_n--;
		}
	}
	if (!f->seg_n)
		holding_remove(f);
}

static size_t iov_total(const struct iovec *iov, int iovcnt)
{
	size_t total = 0;
	int i;

	for (i = 0; i < iovcnt; i++)
		total += iov[i].iov_len;
	return total;
}

/*
 * Serve a read from what was pulled.  Returns bytes, 0 at EOF, or -errno
 * (-EAGAIN when empty: the armed receive brings data and readiness).
 */
static ssize_t fd_recv(struct sfd *f, const struct iovec *iov, int iovcnt,
		       int flags)
{
	size_t avail = fd_unread(f), skip = 0, want = iov_total(iov, iovcnt);
	ssize_t done;
	int e;

	/*
	 * Nothing asked is still a receive (tcp_recvmsg): 0 when bytes or
	 * EOF are there, else the pending error or EAGAIN.  read() of 0
	 * bytes never gets here (sock_read_iter answers 0 first).
	 */
	if ((flags & MSG_PEEK) && f->peek_off > 0) {
		/* SO_PEEK_OFF: each peek starts where the last one ended. */
		skip = (size_t)f->peek_off < avail ? (size_t)f->peek_off :
						     avail;
		if (skip == avail && !f->err && !f->eof)
			return -EAGAIN;
	}
	if (avail == skip) {
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
	if (want > avail - skip)
		want = avail - skip;
	done = input_copy(f, skip, (flags & MSG_TRUNC) ? NULL : iov, iovcnt,
			  want);
	if (done < 0)
		return done;
	STAT_INC(served_from_buffer);
	if (flags & MSG_PEEK) {
		if (f->peek_off >= 0)
			f->peek_off += done;
		return done;
	}
	if (f->peek_off > 0)
		f->peek_off = (size_t)f->peek_off > (size_t)done ?
			      f->peek_off - (int)done : 0;
	input_consume(f, done);
	if (f->state == FD_ACCEL) {
		/* Pulling paused at the limit resumes at the flush. */
		if (!f->recv_armed)
			mark_dirty(f);
	} else if (!fd_has_input(f)) {
		drained_draining(f);
	}
	return done;
}

static bool transient(int res)
{
	return res == -EAGAIN || res == -EINTR || res == -ENOBUFS ||
	       res == -ENOMEM;
}

/* One more transient ring error on f: has it become persistent? */
static bool ring_failing(struct sfd *f)
{
	if (f->ring_fails < RING_RETRY_MAX)
		f->ring_fails++;
	return f->ring_fails >= RING_RETRY_MAX;
}

/* Wait for input with a poll, completed as a receive of no bytes. */
static int arm_recv_wait(struct sfd *f)
{
	int ret = ring_prep_poll(&f->loop->ring, UD_RECV, f, f->fd, POLLIN);

	if (!ret) {
		f->recv_armed = true;
		f->inflight++;
	}
	return ret;
}

/*
 * The ring's receive keeps failing: a plain non-blocking recv into the
 * own buffer (no receive armed; segments spilled first, they are older).
 * Returns bytes, 0 at EOF, or -errno; -EAGAIN arms a poll for input.
 */
static int recv_direct(struct sfd *f)
{
	size_t room;
	ssize_t n;

	spill(f);
	if (f->hup)
		return -ENOMEM;
	if (!rbuf_reserve(f, 1))
		return -EAGAIN;
	room = f->rcap - f->rlen;
	STAT_INC(fallbacks);
	STAT_INC(shim_syscalls);
	n = real_recv(f->fd, f->rbuf + f->rlen, room, MSG_DONTWAIT);
	if (n > 0) {
		f->rlen += n;
		return n;
	}
	if (n == 0)
		return 0;
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
		arm_recv_wait(f);
		return -EAGAIN;
	}
	return -errno;
}

static void arm_recv(struct sfd *f)
{
	struct loop *l = f->loop;
	int ret;

	if (l->ring.br) {
		ret = ring_prep_recv_multishot(&l->ring, UD_RECV, f, f->fd);
	} else {
		spill(f);
		if (f->hup || !rbuf_reserve(f, 1))
			return;
		ret = ring_prep_recv(&l->ring, UD_RECV, f, f->fd,
				     f->rbuf + f->rlen, f->rcap - f->rlen);
		f->recv_single = !ret;
	}
	if (!ret) {
		f->recv_armed = true;
		f->inflight++;
	}
}

static void maybe_free_orphan(struct sfd *f)
{
	if (f->state != FD_ORPHAN || f->inflight)
		return;
	if (f->stail > f->shead && !f->hup) {
		mark_dirty(f);
		return;
	}
	if (f->dirty)
		return;		/* freed when the flush gets to it */
	fd_free(f);
}

void fd_on_recv(struct ring *r, const struct ring_cqe *c)
{
	struct sfd *f = c->token;
	bool more = c->flags & IORING_CQE_F_MORE;
	bool was_single = f->recv_single, direct = false;
	int res = c->res;

	(void)r;
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
		else if (c->data)
			seg_append(f, c->data, res, c->bid);
		else if (was_single)
			f->rlen += res;
		else
			res = 0;	/* buffer-less: a poll */
		if (res && !direct)
			f->ring_fails = 0;
		STAT_ADD(bytes_recv, res);
	} else if (direct && res == -EAGAIN) {
		/* counted by recv_direct; a poll or the app re-arms */
	} else if (res == -EINVAL && !more && r->br && !was_single) {
		/* Multishot refused (before 6.0): single-shot from now on. */
		ring_bufs_off(r);
		shim__log(LOG_INFO, "uringshim: multishot recv refused: "
			  "single-shot receives\n");
		STAT_INC(fallbacks);
	} else if (res == 0) {
		f->eof = true;
		if (f->state == FD_ACCEL && !f->hup)
			err_watch(f, true);
	} else if (res == -ECANCELED) {
		/* cancelled by close or release */
	} else if (transient(res)) {
		STAT_INC(fallbacks);
	} else if (res < 0) {
		if (!f->err)
			f->err = -res;
		f->hup = true;
		f->eof = true;
		STAT_INC(deferred_errors);
	}
	if (f->state == FD_ACCEL) {
		regs_notify(f);
		if (!more)
			mark_dirty(f);
	}
	if (f->release_req && !more)
		finish_release(f);
}

/* ---- send ---- */

static void queued_add(struct sfd *f, uint32_t n)
{
	f->loop->queued += n;
}

static void queued_sub(struct sfd *f, uint32_t n)
{
	loop_queued_sub(f->loop, n);
}

static void send_compact(struct sfd *f)
{
	if (f->send_inflight || !f->shead)
		return;
	if (f->stail > f->shead)
		memmove(f->sbuf, f->sbuf + f->shead, f->stail - f->shead);
	f->stail -= f->shead;
	f->shead = f->sinfl = 0;
}

/*
 * Push everything prepared and run completions now (the loop thread, f
 * locked; dropped around the enter).  false: f was closed or moved by
 * another thread meanwhile, and is not to be touched.
 */
static bool kick(struct sfd *f)
{
	struct loop *l = f->loop;
	int fd = f->fd;

	loop_turn(l, 0, NULL, NULL);
	return still_mine(f, fd, l);
}

static size_t send_room(struct sfd *f, size_t want)
{
	size_t room;

	send_compact(f);
	room = f->scap - f->stail;
	if (room > want)
		room = want;
	return loop_budget_room(f->loop, room);
}

/* The kernel's verdict on a queue it would not take: a dead socket. */
static void send_failed(struct sfd *f, int err)
{
	f->err = err;
	f->hup = true;
	STAT_INC(deferred_errors);
	queued_sub(f, f->stail - f->shead);
	f->shead = f->stail = f->sinfl = 0;
	regs_notify(f);
}

/*
 * A thread other than f's loop thread writes, or closes, with bytes queued
 * and nothing in flight: push them with plain sends until the kernel has
 * no room, so it never depends on the loop thread reaching a wait point.
 * Order holds: nothing is in flight.  Returns true when bytes moved.
 */
static bool fd_push(struct sfd *f)
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
		queued_sub(f, n);
		STAT_ADD(bytes_sent, n);
		moved = true;
		if (f->shead == f->stail)
			f->shead = f->stail = f->sinfl = 0;
	}
	if (f->stail > f->shead && n < 0 && errno != EAGAIN &&
	    errno != EWOULDBLOCK && errno != EINTR)
		send_failed(f, errno);
	return moved;
}

/* A send f cannot take: its pending error (reported once), or EPIPE. */
static int send_refused(struct sfd *f)
{
	int e = f->err;

	if (e) {
		f->err = 0;
		return -e;
	}
	return f->shut_wr || f->hup ? -EPIPE : 0;
}

/*
 * Copy up to n bytes of iov, from byte skip on, to the queue's tail.
 * Returns bytes queued, or -EFAULT when a bad buffer left none; like the
 * kernel, the bytes sharing the bad buffer's round are dropped.
 */
static ssize_t queue_copy(struct sfd *f, const struct iovec *iov, int iovcnt,
			  size_t skip, size_t n)
{
	size_t done = 0;
	int i;

	for (i = 0; i < iovcnt && done < n; i++) {
		size_t len = iov[i].iov_len, take;

		if (skip >= len) {
			skip -= len;
			continue;
		}
		take = len - skip < n - done ? len - skip : n - done;
		if (!shim__copy(f->sbuf + f->stail + done,
				(char *)iov[i].iov_base + skip, take))
			return -EFAULT;
		done += take;
		skip = 0;
	}
	f->stail += done;
	queued_add(f, done);
	return done;
}

/*
 * Queue bytes for sending.  Returns bytes taken (possibly short), or
 * -errno: a deferred error, -EPIPE after shutdown, -EAGAIN when full.
 * "Full" means the kernel's socket buffer is full as well: before saying
 * so, the loop thread pushes the queue into the kernel, so EAGAIN and
 * EPOLLOUT keep meaning what they mean without the shim (the peer has to
 * read before room appears).
 */
static ssize_t fd_send(struct sfd *f, const struct iovec *iov, int iovcnt)
{
	size_t total = iov_total(iov, iovcnt), done = 0;
	bool mine = loop_is_mine(f->loop);
	int fd = f->fd;
	ssize_t e;

	e = send_refused(f);
	if (e || !total)
		return e;
	for (;;) {
		size_t room = send_room(f, total - done);

		if (room) {
			e = queue_copy(f, iov, iovcnt, done, room);
			if (e < 0) {
				if (!done)
					return e;
				break;
			}
			done += e;
			mark_dirty(f);
		}
		if (done == total || f->send_inflight || f->stail == f->shead)
			break;
		/* Queue full, nothing in flight: hand it to the kernel. */
		if (!mine) {
			if (!fd_push(f))
				break;
			continue;
		}
		if (!kick(f))
			return done ? (ssize_t)done : -EBADF;
		if (f->hup || f->err)
			break;
	}
	if (done < total)
		f->out_wanted = true;
	if (!done)
		return -EAGAIN;
	STAT_INC(sends_queued);
	if (mine && f->stail - f->shead >= SEND_FLUSH_BYTES &&
	    !f->send_inflight)
		kick(f);
	else if (!mine)
		loop_wake(f->loop);
	(void)fd;
	return done;
}

/*
 * URINGSHIM_SEND=sync: nothing is ever queued, so no byte a write reported
 * lives only in shim memory (nothing to lose to SIGKILL).  The kernel's
 * answer is the app's answer; when it is short or EAGAIN, EPOLLOUT is
 * withheld until a POLLOUT armed in the ring fires, as the kernel would.
 */
static ssize_t fd_send_sync(struct sfd *f, const struct iovec *iov,
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
		mark_dirty(f);
		if (!loop_is_mine(f->loop))
			loop_wake(f->loop);
	}
	return n < 0 ? -e : n;
}

/*
 * The direct path (URINGSHIM_SEND=direct, adaptive with small batches,
 * another thread's write): one real send while the kernel has room;
 * whatever it does not take goes to the queue, so EAGAIN and EPOLLOUT
 * keep their meaning.  The queue is empty.
 */
static ssize_t send_now(struct sfd *f, const struct iovec *iov, int iovcnt,
			int flags)
{
	struct msghdr msg = { .msg_iov = (struct iovec *)iov,
			      .msg_iovlen = iovcnt };
	struct iovec rest[DIRECT_IOV_MAX];
	size_t total = iov_total(iov, iovcnt), skip;
	ssize_t n, more;
	int i, cnt = 0;

	STAT_INC(shim_syscalls);
	n = real_sendmsg(f->fd, &msg, (flags & ~MSG_MORE) | MSG_DONTWAIT |
			 MSG_NOSIGNAL);
	if (n < 0 && errno != EAGAIN)
		return -errno;
	if (n < 0)
		n = 0;
	if (n)
		STAT_ADD(bytes_sent, n);
	if ((size_t)n == total)
		return n;
	for (i = 0, skip = n; i < iovcnt; i++) {
		if (skip >= iov[i].iov_len) {
			skip -= iov[i].iov_len;
			continue;
		}
		rest[cnt].iov_base = (char *)iov[i].iov_base + skip;
		rest[cnt++].iov_len = iov[i].iov_len - skip;
		skip = 0;
	}
	more = fd_send(f, rest, cnt);
	if (more < 0)
		return n ? n : more;
	return n + more;
}

/*
 * The ring's send keeps failing: a plain non-blocking send of the queue
 * (nothing in flight).  Returns bytes or -errno; when the kernel is full
 * a poll waits for room and 0 is returned.
 */
static int send_direct_fallback(struct sfd *f)
{
	ssize_t n;

	STAT_INC(fallbacks);
	STAT_INC(shim_syscalls);
	n = real_send(f->fd, f->sbuf + f->shead, f->stail - f->shead,
		      MSG_DONTWAIT | MSG_NOSIGNAL);
	if (n >= 0)
		return n;
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
		if (!ring_prep_poll(&f->loop->ring, UD_SEND, f, f->fd,
				    POLLOUT)) {
			f->sinfl = f->shead;
			f->send_inflight = true;
			f->inflight++;
		}
		return 0;
	}
	return -errno;
}

static void arm_send(struct sfd *f)
{
	/*
	 * MSG_WAITALL makes 5.19+ retry short stream sends in the kernel;
	 * MSG_NOSIGNAL because SIGPIPE is raised by the wrapper that
	 * surfaces the error, as the kernel would have done at that call.
	 */
	if (ring_prep_send(&f->loop->ring, UD_SEND, f, f->fd,
			   f->sbuf + f->shead, f->stail - f->shead,
			   MSG_NOSIGNAL | MSG_WAITALL))
		return;
	f->sinfl = f->stail;
	f->send_inflight = true;
	f->inflight++;
}

/*
 * SEND=sync after a short write: wait for room with a poll, completed as
 * a send of no bytes (nothing is in flight, so its result counts for
 * nothing).
 */
static void arm_send_wait(struct sfd *f)
{
	if (ring_prep_poll(&f->loop->ring, UD_SEND, f, f->fd, POLLOUT))
		return;
	f->sinfl = f->shead;
	f->send_inflight = true;
	f->inflight++;
}

void fd_on_send(struct ring *r, const struct ring_cqe *c)
{
	struct sfd *f = c->token;
	uint32_t inflight_len = f->sinfl - f->shead;
	int res = c->res;

	(void)r;
	f->inflight--;
	f->send_inflight = false;
	f->wait_cancel = false;
	if (transient(res) && !f->hup && f->stail > f->shead &&
	    ring_failing(f)) {
		res = send_direct_fallback(f);
		inflight_len = f->stail - f->shead;
	} else if (res > 0 && inflight_len) {
		f->ring_fails = 0;
	}
	if (res >= 0) {
		if ((uint32_t)res > inflight_len)
			res = inflight_len;
		f->shead += res;
		queued_sub(f, res);
		STAT_ADD(bytes_sent, res);
	} else if (transient(res)) {
		STAT_INC(fallbacks);
	} else if (res != -ECANCELED) {
		if (!f->err)
			f->err = -res;
		f->hup = true;
		STAT_INC(deferred_errors);
		queued_sub(f, f->stail - f->shead);
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
		mark_dirty(f);
	}
	if (f->state == FD_ORPHAN) {
		maybe_free_orphan(f);
		return;
	}
	if (f->out_wanted || f->out_blocked || f->hup) {
		f->out_wanted = false;
		f->out_blocked = false;
		regs_notify(f);
	}
	if (f->release_req)
		finish_release(f);
}

void fd_on_cancel(struct ring *r, const struct ring_cqe *c)
{
	struct sfd *f = c->token;

	(void)r;
	f->inflight--;
	if (f->state == FD_ORPHAN)
		maybe_free_orphan(f);
	else if (f->release_req)
		finish_release(f);
}

static void cancel_recv(struct sfd *f)
{
	if (!ring_prep_cancel(&f->loop->ring, UD_RECV, f, UD_CANCEL, f)) {
		f->recv_cancel = true;
		f->inflight++;
	}
}

static void cancel_send(struct sfd *f)
{
	if (!ring_prep_cancel(&f->loop->ring, UD_SEND, f, UD_CANCEL, f))
		f->inflight++;
}

/* ---- the data path ---- */

static __thread unsigned int eagain_streak;

/*
 * An app that spins on EAGAIN without ever reaching a wait point would
 * never let the ring move: after a streak, push and reap once.
 */
static void eagain_spin_guard(void)
{
	struct loop *l = shim__loop;

	if (++eagain_streak < 32 || !l)
		return;
	eagain_streak = 0;
	loop_lock(l);
	loop_turn(l, 0, NULL, NULL);
	loop_unlock(l);
}

static void io_done(ssize_t ret)
{
	if (ret == -EAGAIN)
		eagain_spin_guard();
	else
		eagain_streak = 0;
}

bool fd_io_recv(int fd, const struct iovec *iov, int iovcnt, int flags,
		ssize_t *ret)
{
	struct loop *l;
	struct sfd *f;
	bool draining;

	f = fd_lock(fd);
	if (!f)
		return false;
	l = f->loop;
	if (f->state == FD_ORPHAN)
		goto out_real;
	if (flags & (MSG_OOB | MSG_ERRQUEUE)) {
		fd_release(f);
		goto out_real;
	}
	draining = f->state == FD_DRAINING;
	*ret = fd_recv(f, iov, iovcnt, flags);
	if (*ret == -EAGAIN && draining)
		goto out_real;
	if (draining && *ret > 0 && iovcnt == 1 && (flags & MSG_WAITALL) &&
	    !(flags & MSG_PEEK) && (size_t)*ret < iov[0].iov_len) {
		/* Now blocking: the rest from the kernel. */
		ssize_t more;

		loop_unlock(l);
		more = REAL(recv)(fd, (char *)iov[0].iov_base + *ret,
				  iov[0].iov_len - *ret, flags);
		if (more > 0)
			*ret += more;
		return true;
	}
	loop_unlock(l);
	io_done(*ret);
	return true;

out_real:
	loop_unlock(l);
	return false;
}

bool fd_io_send(int fd, const struct iovec *iov, int iovcnt, int flags,
		ssize_t *ret)
{
	struct loop *l;
	struct sfd *f;
	bool foreign;

	f = fd_lock(fd);
	if (!f)
		return false;
	l = f->loop;
	if (f->state != FD_ACCEL)
		goto out_real;
	if (flags & (MSG_OOB | MSG_ERRQUEUE | MSG_FASTOPEN)) {
		fd_release(f);
		goto out_real;
	}
	if (shim__cfg.send_mode == MODE_SEND_SYNC) {
		*ret = fd_send_sync(f, iov, iovcnt, flags);
		goto out;
	}
	/*
	 * Batching pays on the loop thread only; another thread's write
	 * goes straight out, so it never waits for that loop.
	 */
	foreign = !loop_is_mine(l);
	if (foreign)
		fd_push(f);
	else
		l->iter_sends++;
	if ((shim__cfg.send_mode == MODE_SEND_DIRECT || foreign ||
	     l->direct_sends) && !f->send_inflight &&
	    f->stail == f->shead && !f->err && !f->hup && !f->shut_wr &&
	    iovcnt <= DIRECT_IOV_MAX)
		*ret = send_now(f, iov, iovcnt, flags);
	else
		*ret = fd_send(f, iov, iovcnt);
	if (unlikely(*ret == -EFAULT)) {
		/*
		 * A buffer that faults part way: how much of it a send takes
		 * is the kernel's copy granularity (its page fragments), so
		 * the kernel decides, after the queue (handed back first
		 * when there is one; otherwise the socket stays ours).
		 */
		if (f->send_inflight || f->stail != f->shead)
			fd_release(f);
		goto out_real;
	}
out:
	loop_unlock(l);
	io_done(*ret);
	return true;

out_real:
	loop_unlock(l);
	return false;
}

struct sfd *fd_move(struct sfd *f, struct loop *to)
{
	struct loop *from = f->loop;
	int fd = f->fd;

	if (f->nregs || f->inflight || f->send_inflight || f->alias >= 0 ||
	    f->state != FD_DRAINING || f->stail != f->shead || to->dead ||
	    RD(shim.state) != SHIM_STATE_ACTIVE) {
		loop_unlock(from);
		return NULL;
	}
	dirty_remove(from, f);
	holding_remove(f);
	f->recv_cancel = false;
	f->ring_fails = 0;
	loop_ref(to);
	loop_unref(from);
	__atomic_store_n(&f->loop, to, __ATOMIC_RELEASE);
	loop_unlock(from);
	loop_lock(to);
	if (!still_mine(f, fd, to)) {
		loop_unlock(to);
		return NULL;
	}
	f->state = FD_ACCEL;
	WR(to->accel_n, to->accel_n + 1);
	stats_accel_now(__atomic_add_fetch(&shim.accel_now, 1,
					     __ATOMIC_RELAXED));
	fd_rearm(f);
	return f;
}

void fd_rearm(struct sfd *f)
{
	mark_dirty(f);
	if (f->eof && !f->hup)
		err_watch(f, true);
	loop_wake(f->loop);
}

/* ---- errors after EOF ---- */

/*
 * After EOF no receive is armed, yet the kernel would still report a
 * later reset (the peer answering our write with RST) as ERR|HUP.  An
 * io_uring poll cannot wait for just that (it always unmasks RDHUP, which
 * a half-closed socket has), so EOF'd sockets sit in a private epoll set
 * of their loop asking for nothing (ERR and HUP are always reported), and
 * that set is polled from the ring.
 */
static void err_poll_arm(struct loop *l)
{
	if (l->err_poll_armed || l->err_watch_n <= 0 || !loop_is_mine(l))
		return;
	if (!ring_prep_poll(&l->ring, UD_ERREP, l, l->err_epfd, POLLIN))
		l->err_poll_armed = true;
}

static void err_watch(struct sfd *f, bool on)
{
	struct epoll_event ev = { .events = EPOLLONESHOT, .data.fd = f->fd };
	struct loop *l = f->loop;

	if (l->err_epfd < 0 || f->err_watch == on)
		return;
	STAT_INC(shim_syscalls);
	if (real_epoll_ctl(l->err_epfd, on ? EPOLL_CTL_ADD : EPOLL_CTL_DEL,
			   f->fd, &ev) && on)
		return;
	f->err_watch = on;
	l->err_watch_n += on ? 1 : -1;
	if (on)
		err_poll_arm(l);
}

void fd_on_err_events(struct ring *r, const struct ring_cqe *c)
{
	struct loop *l = RD(r->owner);
	struct epoll_event ev[32];
	int n, i;

	(void)c;
	l->err_poll_armed = false;
	STAT_INC(shim_syscalls);
	n = real_epoll_wait(l->err_epfd, ev, 32, 0);
	for (i = 0; i < n; i++) {
		struct sfd *f = fdtab_fd(ev[i].data.fd);

		if (!f || f->loop != l || f->state != FD_ACCEL ||
		    !f->err_watch)
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
		err_watch(f, false);
		regs_notify(f);
	}
	/* Others still watched: keep the set polled. */
	err_poll_arm(l);
}

/* ---- release: hand the fd back to the kernel's epoll sets ---- */

static void table_clear(int fd)
{
	fdtab_set_fd(fd, NULL);
	__atomic_sub_fetch(&shim.owned_n, 1, __ATOMIC_RELAXED);
}

static void accel_gone(struct sfd *f)
{
	WR(f->loop->accel_n, f->loop->accel_n - 1);
	stats_accel_now(__atomic_sub_fetch(&shim.accel_now, 1,
					     __ATOMIC_RELAXED));
}

/*
 * A draining fd whose held bytes (and pending error) are gone becomes
 * pure passthrough: only now do its registrations go back into the
 * kernel epoll sets, so the held bytes and the kernel never report the
 * same fd twice.
 */
static void drained_draining(struct sfd *f)
{
	int i;

	if (f->err)
		return;		/* keep it until the error is reported */
	for (i = 0; i < f->nregs; i++) {
		struct reg *r = &f->regs[i];
		struct epoll_event ev = {
			.events = r->oneshot_fired ? 0 : r->events,
			.data = r->data,
		};

		STAT_INC(shim_syscalls);
		real_epoll_ctl(r->ep->epfd, EPOLL_CTL_ADD, f->fd, &ev);
	}
	while (f->nregs)
		reg_unlink(&f->regs[0]);
	table_clear(f->fd);
	if (f->alias >= 0)
		table_clear(f->alias);
	f->alias = -1;
	if (f->inflight || f->dirty) {
		f->state = FD_ORPHAN;	/* last completion frees it */
		WR(f->loop->orphans_n, f->loop->orphans_n + 1);
		return;
	}
	fd_free(f);
}

static void finish_release(struct sfd *f)
{
	struct loop *l = f->loop;

	if (f->inflight || f->send_inflight || f->stail > f->shead)
		return;
	f->release_req = false;
	err_watch(f, false);
	/* Held bytes must outlive the ring's buffers. */
	spill(f);
	f->state = FD_DRAINING;
	accel_gone(f);
	STAT_INC(fallbacks);
	/* Not an edge: registrations keep their ready-list state. */
	if (!fd_has_input(f) && !f->err)
		drained_draining(f);
	pthread_cond_broadcast(&l->cond);
}

bool fd_release(struct sfd *f)
{
	struct loop *l = f->loop, *me = shim__loop;
	int fd = f->fd;

	if (f->state != FD_ACCEL)
		return true;
	f->release_req = true;
	mark_dirty(f);
	finish_release(f);
	while (still_mine(f, fd, l) && f->state == FD_ACCEL) {
		struct timespec ts;

		if (loop_is_mine(l)) {
			loop_turn(l, 1, NULL, NULL);
			continue;
		}
		loop_wake(l);
		if (me && !me->dead && loop_has_work(me)) {
			/*
			 * Keep our own ring turning meanwhile: l's thread may
			 * be waiting for us the same way (two threads
			 * swapping sockets).
			 */
			struct timespec ms = { 0, 1000 * 1000 };

			loop_unlock(l);
			loop_lock(me);
			loop_turn(me, 1, &ms, NULL);
			loop_unlock(me);
			loop_lock(l);
			continue;
		}
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 1;
		shim_cond_wait_until(&l->cond, &l->lock, &ts);
	}
	return still_mine(f, fd, l);
}

void fd_release_fd(int fd)
{
	struct sfd *f;
	struct loop *l;

	f = fd_lock_ours(fd);
	if (!f)
		return;
	l = f->loop;
	fd_release(f);
	loop_unlock(l);
}

/* Kill switch / thread exit: l's sockets back to the kernel (l's thread). */
void fd_release_loop(struct loop *l)
{
	unsigned int c, i;

	for (c = 0; RD(l->accel_n) > 0 && c < shim__fdtab_max / FDTAB_CHUNK;
	     c++) {
		struct fdslot *chunk = RD(shim__fdtab[c]);

		for (i = 0; chunk && i < FDTAB_CHUNK && RD(l->accel_n) > 0; i++) {
			struct sfd *f = RD(chunk[i].f);

			if (f && f->loop == l && f->state == FD_ACCEL &&
			    f->fd == (int)(c * FDTAB_CHUNK + i))
				fd_release(f);
		}
	}
}

void fd_alias_dup(int oldfd, int newfd)
{
	struct sfd *f;
	struct loop *l;

	if (likely(!fdtab_fd(oldfd)) || shim__depth || newfd < 0)
		return;
	shim_lock();
	fdtab_slot(newfd, true);
	shim_unlock();
	f = fd_lock(oldfd);
	if (!f)
		return;
	l = f->loop;
	if (f->state == FD_DRAINING && f->alias < 0 && !fdtab_fd(newfd) &&
	    fdtab_peek(newfd)) {
		f->alias = newfd;
		fdtab_set_fd(newfd, f);
		__atomic_add_fetch(&shim.owned_n, 1, __ATOMIC_RELAXED);
	}
	loop_unlock(l);
}

/* ---- close / shutdown ---- */

/*
 * The peer is not reading and the app will not wait on the ring for it:
 * stop the ring send (a cancelled send reports the bytes it did move) and
 * let the drainer thread finish on a descriptor of its own.  shut_wr:
 * f stays open (shutdown), the drainer gets a fresh dup and sends the
 * FIN; otherwise f->fd is already our private dup (close).  Loop thread,
 * f locked; f may be freed on return when it was an orphan.
 */
static void drain_in_background(struct sfd *f, bool shut_wr)
{
	struct loop *l = f->loop;
	int fd;

	if (f->send_inflight) {
		bool alive;

		cancel_send(f);
		alive = kick(f);
		if (shut_wr ? !alive : l->closing != f)
			return;
	}
	if ((!shut_wr && l->closing != f) || f->send_inflight ||
	    f->stail == f->shead || f->hup)
		return;
	fd = shut_wr ? shim__fd_dup_high(f->fd) : f->fd;
	if (fd < 0)
		return;
	if (drain_handoff(fd, f->sbuf + f->shead, f->stail - f->shead,
			  shut_wr)) {
		if (shut_wr)
			real_close(fd);
		return;
	}
	queued_sub(f, f->stail - f->shead);
	f->shead = f->stail = f->sinfl = 0;
	if (shut_wr) {
		f->shut_wr_pending = false;
	} else {
		f->own_fd = false;	/* the drainer closes it */
		mark_dirty(f);
		fd_flush_dirty(l);	/* frees f if nothing is left */
	}
}

/*
 * Is input left unread at close: held, in a completion the ring already
 * posted (loop thread: dispatched first), or in the kernel's receive
 * queue (SIOCINQ; a received FIN does not count)?
 */
static bool close_has_unread(struct sfd *f, int fd)
{
	int inq = 0;

	if (fd_has_input(f))
		return true;
	if (loop_is_mine(f->loop) && !f->release_req) {
		ring_reap(&f->loop->ring);	/* cannot free f: not closing */
		if (fd_has_input(f))
			return true;
	}
	STAT_INC(shim_syscalls);
	return !real_ioctl(fd, SIOCINQ, &inq) && inq > 0;
}

void fd_close_locked(struct sfd *f, int fd)
{
	struct loop *l = f->loop;
	/* First: dispatching may still put f on the error watch. */
	bool abort = f->state == FD_ACCEL ? close_has_unread(f, fd) :
		     f->state == FD_DRAINING && fd_has_input(f);

	err_watch(f, false);
	if (f->state == FD_DRAINING && f->alias >= 0) {
		/* A dup still holds the socket: only this number goes. */
		if (fd == f->alias) {
			f->alias = -1;
		} else {
			f->fd = f->alias;
			f->alias = -1;
		}
		table_clear(fd);
		return;
	}
	if (abort) {
		/*
		 * Closing with unread input makes the kernel reset the
		 * connection at once and discard what it could not send
		 * (tcp_close).  Do the same: our queue goes to the kernel
		 * as far as it has room (without the shim those bytes would
		 * already be there), the rest is dropped, and no private dup
		 * is kept, so the real close sends the RST.
		 */
		struct linger rst = { .l_onoff = 1, .l_linger = 0 };

		if (!f->send_inflight && f->stail > f->shead) {
			ssize_t n = real_send(fd, f->sbuf + f->shead,
					      f->stail - f->shead,
					      MSG_DONTWAIT | MSG_NOSIGNAL);

			STAT_INC(shim_syscalls);
			if (n > 0) {
				f->shead += n;
				queued_sub(f, n);
				STAT_ADD(bytes_sent, n);
			}
		}
		STAT_INC(shim_syscalls);
		real_setsockopt(fd, SOL_SOCKET, SO_LINGER, &rst, sizeof(rst));
		f->hup = true;
		if (f->send_inflight && loop_is_mine(l))
			cancel_send(f);
	}
	while (f->nregs)
		reg_unlink(&f->regs[0]);
	if (f->state != FD_ORPHAN)
		table_clear(fd);
	if (f->state == FD_ACCEL)
		accel_gone(f);
	if (f->state == FD_ORPHAN)
		return;		/* a draining fd already handed over */
	drop_input(f);
	holding_remove(f);
	if (!loop_is_mine(l))
		fd_push(f);
	if (f->stail > f->shead && !f->hup) {
		int dupfd = shim__fd_dup_high(fd);

		STAT_INC(shim_syscalls);
		if (dupfd >= 0) {
			f->fd = dupfd;
			f->own_fd = true;
		} else {
			queued_sub(f, f->stail - f->shead);
			f->shead = f->stail = 0;
		}
	}
	f->state = FD_ORPHAN;
	WR(l->orphans_n, l->orphans_n + 1);
	f->release_req = false;
	/* The kernel would keep sending after close: the drainer does. */
	if (!loop_is_mine(l) && f->own_fd && !f->send_inflight &&
	    f->stail > f->shead &&
	    !drain_handoff(f->fd, f->sbuf + f->shead, f->stail - f->shead,
			   false)) {
		queued_sub(f, f->stail - f->shead);
		f->shead = f->stail = f->sinfl = 0;
		f->own_fd = false;
	}
	if (!f->inflight && (f->stail == f->shead || f->hup)) {
		if (!f->dirty)
			fd_free(f);
		return;
	}
	mark_dirty(f);
	if (loop_is_mine(l)) {
		struct timespec ms = { 0, 1000 * 1000 };
		int round;

		/*
		 * Cancel the receive and push the queue now, and give the
		 * completions a moment, so the socket really closes (FIN
		 * after our bytes) with this close, not at the next wait.
		 */
		l->closing = f;
		for (round = 0; round < 5 && l->closing == f; round++)
			loop_turn(l, round ? 1 : 0, &ms, NULL);
		if (l->closing == f && f->stail > f->shead && !f->hup &&
		    f->own_fd)
			drain_in_background(f, false);
		if (l->closing == f)
			l->closing = NULL;
	} else {
		loop_wake(l);
	}
}

/*
 * shutdown: the FIN must follow the queued bytes, never overtake them.
 * The loop thread pushes the queue first (the usual case drains at once);
 * when the kernel is full the real SHUT_WR is made by the send completion
 * that empties the queue.  Reads after SHUT_RD see held bytes, then 0.
 */
static int shutdown_locked(struct sfd *f, int how)
{
	bool mine = loop_is_mine(f->loop);
	int fd = f->fd;

	if (!mine)
		fd_push(f);
	if (how == SHUT_RD || how == SHUT_RDWR)
		f->eof = true;
	if ((how == SHUT_WR || how == SHUT_RDWR) &&
	    (f->stail > f->shead || f->send_inflight) && !f->hup) {
		if (f->shut_wr)
			return 0;
		if (mine && !kick(f))
			return -EBADF;
		if (f->stail > f->shead || f->send_inflight) {
			f->shut_wr = true;
			f->shut_wr_pending = true;
			/* Kernel full: FIN from the drainer thread. */
			if (mine)
				drain_in_background(f, true);
			if (how == SHUT_RDWR)
				real_shutdown(fd, SHUT_RD);
			regs_notify(f);
			if (!mine)
				loop_wake(f->loop);
			return 0;
		}
	}
	if (how == SHUT_WR || how == SHUT_RDWR)
		f->shut_wr = true;
	regs_notify(f);
	return real_shutdown(fd, how) ? -errno : 0;
}

int fd_shutdown(int fd, int how, bool *handled)
{
	struct sfd *f;
	struct loop *l;
	int ret;

	*handled = false;
	f = fd_lock_ours(fd);
	if (!f)
		return 0;
	l = f->loop;
	if (f->state != FD_ACCEL) {
		loop_unlock(l);
		return 0;
	}
	*handled = true;
	ret = shutdown_locked(f, how);
	loop_unlock(l);
	return ret;
}

/* ---- the flush: dirty sockets become SQEs (the loop thread) ---- */

void fd_flush_dirty(struct loop *l)
{
	struct sfd *f, *next;

	f = l->dirty;
	WR(l->dirty, NULL);
	l->dirty_tail = NULL;
	for (; f; f = next) {
		next = f->dirty_next;
		f->dirty = false;
		f->dirty_next = NULL;
		if (f->stail > f->shead && !f->send_inflight && !f->hup &&
		    f->state != FD_DRAINING)
			arm_send(f);
		else if (f->out_blocked && !f->send_inflight &&
			 f->state == FD_ACCEL && !f->release_req)
			arm_send_wait(f);
		/* Pull while less than URINGSHIM_RECV_BUF sits unread. */
		if (f->state == FD_ACCEL && !f->release_req &&
		    !f->recv_armed && !f->eof && !f->hup &&
		    fd_unread(f) < shim__cfg.recv_buf)
			arm_recv(f);
		if ((f->state == FD_ORPHAN || f->release_req) &&
		    f->recv_armed && !f->recv_cancel)
			cancel_recv(f);
		/* A POLLOUT wait (no bytes in flight) would hold the file. */
		if ((f->state == FD_ORPHAN || f->release_req) &&
		    f->send_inflight && f->sinfl == f->shead &&
		    f->stail == f->shead && !f->wait_cancel) {
			cancel_send(f);
			f->wait_cancel = true;
		}
		if (f->state == FD_ORPHAN && !f->inflight &&
		    (f->stail == f->shead || f->hup))
			fd_free(f);
		else if (f->release_req)
			finish_release(f);
	}
	err_poll_arm(l);
}

/* ---- thread exit ---- */

/*
 * Bytes the exit flush could not deliver (the peer is not reading): the
 * send in flight is cancelled (it reports what it moved) and the rest
 * goes to the drainer thread on a private dup, as after close, so the
 * thread's exit never waits on a peer.  Then every socket goes back to
 * the kernel.  l locked, its thread.
 */
void fd_loop_exit(struct loop *l)
{
	struct timespec tick = { 0, 10 * 1000 * 1000 };
	unsigned int c, i;
	int round;

	for (c = 0; l->queued && c < shim__fdtab_max / FDTAB_CHUNK; c++) {
		struct fdslot *chunk = RD(shim__fdtab[c]);

		for (i = 0; chunk && i < FDTAB_CHUNK && l->queued; i++) {
			int fd = c * FDTAB_CHUNK + i;
			struct sfd *f = RD(chunk[i].f);
			int dupfd;

			if (!f || f->loop != l || f->state != FD_ACCEL ||
			    f->fd != fd || f->stail == f->shead)
				continue;
			if (f->send_inflight)
				cancel_send(f);
			for (round = 0; round < 10 && f->send_inflight;
			     round++) {
				loop_turn(l, 1, &tick, NULL);
				if (!still_mine(f, fd, l))
					break;
			}
			if (!still_mine(f, fd, l) || f->send_inflight ||
			    f->stail == f->shead)
				continue;
			dupfd = shim__fd_dup_high(f->fd);
			if (dupfd < 0)
				continue;
			if (drain_handoff(dupfd, f->sbuf + f->shead,
					  f->stail - f->shead, false)) {
				real_close(dupfd);
				continue;
			}
			queued_sub(f, f->stail - f->shead);
			f->shead = f->stail = f->sinfl = 0;
		}
	}
	fd_release_loop(l);
}

/* ---- fork child ---- */

/*
 * The child never touches the parent's rings: every socket the parent
 * held becomes plain passthrough (bytes already pulled are lost to the
 * child; DESIGN.md, "Known limits").  Single-threaded, no lock needed.
 */
void fd_forget_child(void)
{
	unsigned int c, i;

	for (c = 0; c < shim__fdtab_max / FDTAB_CHUNK; c++) {
		struct fdslot *chunk = shim__fdtab[c];

		for (i = 0; chunk && i < FDTAB_CHUNK; i++) {
			struct sfd *f = chunk[i].f;

			if (!f)
				continue;
			chunk[i].f = NULL;
			if (f->alias >= 0 && f->alias != (int)(c *
							       FDTAB_CHUNK + i))
				continue;	/* freed through its fd */
			f->nregs = 0;
			f->seg_n = 0;	/* the rings' memory is not ours */
			free(f->rbuf);
			free(f->sbuf);
			f->rbuf = f->sbuf = NULL;
			sfd_free(f);
		}
	}
	shim.accel_now = 0;
	shim.owned_n = 0;
	shim__stats->accel_now = 0;
}

/* ---- socket options ---- */

/* An error met after some of recvmmsg's messages: kept for later. */
void fd_keep_error(int fd, int err)
{
	struct sfd *f;

	f = fd_lock_ours(fd);
	if (!f)
		return;
	f->err = err;
	fd_unlock(f);
}

bool fd_holds_error(int fd)
{
	struct sfd *f;
	bool held;

	f = fd_lock_ours(fd);
	if (!f)
		return false;
	held = f->err != 0;
	fd_unlock(f);
	return held;
}

bool fd_take_error(int fd, int *err)
{
	struct sfd *f;
	struct loop *l;
	bool taken = false;

	f = fd_lock_ours(fd);
	if (!f)
		return false;
	l = f->loop;
	if (f->err) {
		*err = f->err;
		f->err = 0;
		taken = true;
	}
	loop_unlock(l);
	return taken;
}

void fd_set_peek_off(int fd, int val)
{
	struct sfd *f;

	f = fd_lock_ours(fd);
	if (!f)
		return;
	f->peek_off = val < 0 ? -1 : val;
	fd_unlock(f);
}

bool fd_inq(int fd, int *n)
{
	struct sfd *f;
	bool ours = false;

	f = fd_lock_ours(fd);
	if (!f)
		return false;
	if (f->state == FD_ACCEL) {
		*n = fd_unread(f);
		ours = true;
	}
	fd_unlock(f);
	return ours;
}

/* ---- fatal signals (crash.c's flush) ---- */

enum { CRASH_PUSH_DONE, CRASH_PUSH_FULL, CRASH_PUSH_INFLIGHT };
#define CRASH_TICK_MS	5
#define CRASH_POLL_MAX	64

/*
 * A fatal signal is about to end the process: move f's queued bytes into
 * the kernel with plain non-blocking sends.  Bytes a ring send carries
 * stay with it; those queued behind it go once its completion is in the
 * CQ, read there but not consumed: if the process lives on, the loop
 * thread dispatches it as usual and finds the queue consistent (the
 * bytes pushed here are cut out behind the ring send).  Never waits,
 * allocates or submits.  f locked, any thread.
 */
static int crash_push(struct sfd *f)
{
	uint32_t carried = f->sinfl - f->shead;
	ssize_t n = 0;
	int res;

	if (f->hup || f->stail == f->shead)
		return CRASH_PUSH_DONE;
	if (!f->send_inflight) {
		fd_push(f);
		if (f->stail > f->shead && !f->hup)
			return CRASH_PUSH_FULL;
		if (f->shut_wr_pending && !f->hup) {
			f->shut_wr_pending = false;
			STAT_INC(shim_syscalls);
			real_shutdown(f->fd, SHUT_WR);
		}
		return CRASH_PUSH_DONE;
	}
	/* A POLLOUT wait (sinfl == shead) carries no bytes. */
	if (carried) {
		if (ring_peek(&f->loop->ring, UD_SEND, f, &res))
			return CRASH_PUSH_INFLIGHT;
		/* An error: the connection is dead, nothing more arrives. */
		if (res < 0 && !transient(res) && res != -ECANCELED)
			return CRASH_PUSH_DONE;
		/* Short: only its own thread resends the rest. */
		if (res < 0 || (uint32_t)res < carried)
			return CRASH_PUSH_INFLIGHT;
	}
	while (f->stail > f->sinfl) {
		STAT_INC(shim_syscalls);
		n = real_send(f->fd, f->sbuf + f->sinfl, f->stail - f->sinfl,
			      MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n <= 0)
			break;
		memmove(f->sbuf + f->sinfl, f->sbuf + f->sinfl + n,
			f->stail - f->sinfl - n);
		f->stail -= n;
		queued_sub(f, n);
		STAT_ADD(bytes_sent, n);
	}
	if (f->stail > f->sinfl && n < 0 &&
	    (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return CRASH_PUSH_FULL;
	return CRASH_PUSH_DONE;
}

/* m, giving up at deadline: the holder is another thread, never waiting. */
static bool crash_trylock(pthread_mutex_t *m, uint64_t deadline_ms)
{
	shim__depth++;
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	while (pthread_mutex_trylock(m)) {
		if (mono_ns() / 1000000 >= deadline_ms) {
			__atomic_signal_fence(__ATOMIC_SEQ_CST);
			shim__depth--;
			return false;
		}
		nanosleep(&(struct timespec){ 0, 1000 * 1000 }, NULL);
	}
	tsan_acquire(m);
	return true;
}

/* One round over l's sockets (l locked); returns how many still wait. */
static int crash_round(struct loop *l, struct pollfd *pfd, int *npfd)
{
	unsigned int c, i;
	int left = 0;

	for (c = 0; l->queued && c < shim__fdtab_max / FDTAB_CHUNK; c++) {
		struct fdslot *chunk = RD(shim__fdtab[c]);

		for (i = 0; chunk && i < FDTAB_CHUNK; i++) {
			int fd = c * FDTAB_CHUNK + i, r;
			struct sfd *f = RD(chunk[i].f);

			if (!f || f->fd != fd || f->loop != l ||
			    f->state != FD_ACCEL)
				continue;
			r = crash_push(f);
			if (r == CRASH_PUSH_DONE)
				continue;
			left++;
			if (r == CRASH_PUSH_FULL && *npfd < CRASH_POLL_MAX)
				pfd[(*npfd)++] = (struct pollfd){
					.fd = fd, .events = POLLOUT };
		}
	}
	return left;
}

/*
 * Push every queued byte of every loop into the kernel, until deadline at
 * most.  Only from a thread that was not inside the shim: its state is
 * consistent then.  Nothing here allocates, frees or consumes a
 * completion (the crash may have come from inside malloc, and the process
 * may yet live on: a raise() taken for abort()); another loop's ring is
 * only read.  Returns true with shim.lock held when hold is set.
 */
bool fd_crash_flush(uint64_t deadline_ms, bool hold)
{
	struct pollfd pfd[CRASH_POLL_MAX];
	int left = -1, n;

	if (!RD(shim.ring_made) || getpid() != shim.pid)
		return false;
	for (;;) {
		bool done;
		struct loop *l;

		if (!crash_trylock(&shim.lock, deadline_ms))
			break;
		left = 0;
		n = 0;
		for (l = shim.loops; l; l = l->next) {
			if (!crash_trylock(&l->lock, deadline_ms)) {
				left++;
				continue;
			}
			if (loop_is_mine(l))
				ring_enter(&l->ring, 0, NULL, NULL);
			left += crash_round(l, pfd, &n);
			if (!loop_is_mine(l) && loop_has_work(l))
				loop_wake(l);
			loop_unlock(l);
		}
		done = !left && drain_idle();
		if (done || mono_ns() / 1000000 >= deadline_ms) {
			if (!done)
				shim__log(LOG_WARN, "uringshim: fatal signal: "
					  "%d sockets still hold queued bytes\n",
					  left);
			if (hold)
				return true;
			shim_unlock();
			return false;
		}
		shim_unlock();
		real_poll(pfd, n, CRASH_TICK_MS);
	}
	shim__log(LOG_WARN, "uringshim: fatal signal: shim lock busy, "
		  "nothing flushed\n");
	return false;
}

void fd_crash_unhold(void)
{
	shim_unlock();
}
