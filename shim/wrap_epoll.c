/*
 * wrap_epoll.c - epoll, poll and select: readiness and wait points.
 *
 * Each thread that waits on an epoll set gets a ring of its own (loop.c);
 * the set becomes "bound" to that ring, and sockets added to a bound set
 * afterwards are accelerated on it, whichever thread adds them.  A set
 * another thread then waits on gets its accelerated members handed back
 * to the kernel first; one that two threads take turns waiting on stays
 * kernel-only from then on.
 * poll/select are flush points; accelerated fds in them get the shim's
 * readiness, the others the kernel's.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define REAL(name)	(likely(real_##name) ? real_##name :		\
			 (shim__resolve_real(), real_##name))


/* ---- epoll_create / epoll_ctl ---- */

static void ep_note(int epfd)
{
	if (epfd < 0 || shim__depth || !shim__ready())
		return;
	shim_lock();
	shim__ep_get_known_locked(epfd, true);
	shim_unlock();
}

SHIM_EXPORT int epoll_create(int size)
{
	int ret;

	STAT_CALL(epoll_create);
	ret = REAL(epoll_create)(size);
	ep_note(ret);
	return ret;
}

SHIM_EXPORT int epoll_create1(int flags)
{
	int ret;

	STAT_CALL(epoll_create1);
	ret = REAL(epoll_create1)(flags);
	ep_note(ret);
	return ret;
}

/* May the calling thread bind an epoll set to its ring? (a hint) */
static bool can_bind(void)
{
	return shim__loop ||
	       (!RD(shim.ring_made) && shim__loop_possible());
}

/*
 * Bind an unbound set to the calling thread's ring (lock held).  Rings are
 * made by a thread's first wait; here only the process's first, so that a
 * program that adds sockets before it ever waits is accelerated from the
 * start.  A thread that adds to a set another thread waits on loses it at
 * that thread's first wait (wait_common).
 */
static void ep_bind_here(struct shim_ep *ep, bool waiting)
{
	struct shim_loop *l = shim__loop;

	if (ep->loop || ep->nobind)
		return;
	if (!l && (waiting || !shim.ring_made))
		l = shim__loop_get();
	if (l && shim.state == SHIM_STATE_ACTIVE)
		WR(ep->loop, l);
}

static struct shim_reg *reg_find(struct shim_fd *f, struct shim_ep *ep)
{
	int i;

	for (i = 0; i < f->nregs; i++)
		if (f->regs[i].ep == ep)
			return &f->regs[i];
	return NULL;
}

static void reg_add(struct shim_fd *f, struct shim_ep *ep,
		    const struct epoll_event *ev)
{
	struct shim_reg *r = &f->regs[f->nregs++];

	memset(r, 0, sizeof(*r));
	r->ep = ep;
	r->f = f;
	r->events = ev->events;
	r->data = ev->data;
	ep->nemul++;
	shim__reg_ready(r);
}

/*
 * An emulated registration of ep was added or changed, maybe by a thread
 * other than its waiter: that waiter looks again, in its ring or in the
 * kernel's wait, as the kernel wakes its waiters on an ADD or MOD.
 */
static void waiter_recheck(struct shim_ep *ep)
{
	if (ep->loop && !shim__on_loop(ep->loop))
		shim__ring_wake(ep->loop);
	if (RD(shim.kwait[ep->epfd]))
		shim__ep_kick(ep);
}

/*
 * epoll_ctl on an fd the shim owns, lock held.  Returns 0/-errno, 1 when
 * the real call must be made, or 2 when f changed hands with the lock
 * dropped: look it up again (may_move: the first time only).
 */
static int ctl_emulated(struct shim_ep *ep, struct shim_fd *f, int op,
			struct epoll_event *ev, bool may_move)
{
	struct shim_reg *r = reg_find(f, ep);

	if (op != EPOLL_CTL_DEL && !ev)
		return -EFAULT;
	switch (op) {
	case EPOLL_CTL_ADD:
		if (r)
			return -EEXIST;
		if (f->state == FD_DRAINING && f->nregs == SHIM_MAX_REGS)
			return 1;
		if (f->state == FD_ACCEL && !RD(shim.kwait[ep->epfd])) {
			ep_bind_here(ep, false);
			/* Nobody's yet: f's, until its first waiter's. */
			if (!ep->loop && !ep->nobind &&
			    shim.state == SHIM_STATE_ACTIVE)
				WR(ep->loop, f->loop);
		}
		/*
		 * Only sets of the ring that does f's I/O can emulate it.  A
		 * socket in no set of its ring any more (a thread hand-off)
		 * moves to the new set's ring; otherwise it goes back to the
		 * kernel.  Either way the bytes its ring already pulled are
		 * read first, and the new registration reports them: as
		 * emulated, or as draining while they last.
		 */
		if (f->state == FD_ACCEL &&
		    (ep->loop != f->loop || f->nregs == SHIM_MAX_REGS)) {
			if (may_move && ep->loop && !f->nregs)
				shim__fd_move(f, ep->loop);
			else
				shim__fd_release(f);
			return 2;
		}
		reg_add(f, ep, ev);
		waiter_recheck(ep);
		return 0;
	case EPOLL_CTL_MOD:
		if (!r)
			return -ENOENT;
		if (ev->events & EPOLLEXCLUSIVE)
			return -EINVAL;
		r->events = ev->events;
		r->data = ev->data;
		r->oneshot_fired = false;
		shim__reg_ready(r);
		waiter_recheck(ep);
		return 0;
	case EPOLL_CTL_DEL:
		if (!r)
			return -ENOENT;
		shim__reg_unlink(r);
		return 0;
	}
	return -EINVAL;
}

static void kreg_track(int op, int fd, int ret)
{
	uint8_t *k;

	if (ret || fd < 0 || fd >= shim.nfds || !shim.kreg)
		return;
	k = &shim.kreg[fd];
	if (RD(*k) == UINT8_MAX)
		return;
	if (op == EPOLL_CTL_ADD)
		WR(*k, RD(*k) + 1);
	else if (op == EPOLL_CTL_DEL && RD(*k))
		WR(*k, RD(*k) - 1);
}

/* Hand every emulated member of ep back to the kernel (lock held). */
static void ep_unbind(struct shim_ep *ep);

/*
 * An epoll fd that is itself polled or nested in another epoll set gets
 * its readiness from the kernel alone, which knows nothing of emulated
 * members: such a set is never bound again.
 */
static void ep_make_kernel_only(int epfd)
{
	struct shim_ep *ep;

	shim_lock();
	ep = shim__fd_get_locked(epfd) ? NULL : shim__ep_get_locked(epfd);
	if (ep && !ep->nobind) {
		ep->nobind = true;
		ep_unbind(ep);
		shim__log(LOG_INFO, "uringshim: epoll fd %d is polled or "
			  "nested: kernel readiness only\n", epfd);
	}
	shim_unlock();
}

/* Is fd an epoll instance the shim may have bound? (no lock) */
static inline bool is_known_ep(int fd)
{
	return fd >= 0 && fd < shim.nfds && shim.eps && RD(shim.eps[fd]);
}

/*
 * A registration of an epoll fd in another set changed: the outer set's
 * waits report the inner one while it holds emulated events (epoll.c).
 */
static void nest_track(int epfd, int op, int fd, struct epoll_event *ev,
		       int ret)
{
	if (ret || !is_known_ep(fd))
		return;
	shim_lock();
	if (shim__ep_get_locked(epfd))
		shim__nest_ctl(epfd, op, fd, ev);
	shim_unlock();
}

SHIM_EXPORT int epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
	struct shim_ep *ep;
	struct shim_fd *f;
	int ret, pass;

	STAT_CALL(epoll_ctl);
	if (unlikely(shim__child_readd_pending()) && !shim__depth)
		shim__child_readd();
	if (!shim__ready() || shim__depth || epfd < 0 || epfd >= shim.nfds)
		return REAL(epoll_ctl)(epfd, op, fd, ev);
	if (op == EPOLL_CTL_ADD && is_known_ep(fd))
		ep_make_kernel_only(fd);
	if (!fd_lookup_racy(fd) &&
	    (op == EPOLL_CTL_DEL || !ev || !RD(shim.eps[epfd]) ||
	     (!RD(RD(shim.eps[epfd])->loop) && !can_bind()) ||
	     !shim__ready())) {
		ret = REAL(epoll_ctl)(epfd, op, fd, ev);
		kreg_track(op, fd, ret);
		nest_track(epfd, op, fd, ev, ret);
		return ret;
	}
	shim_lock();
	for (pass = 0;; pass++) {
		ep = shim__ep_get_locked(epfd);
		f = shim__fd_get_locked(fd);
		if (!ep || !f ||
		    (f->state != FD_ACCEL && f->state != FD_DRAINING))
			break;
		ret = ctl_emulated(ep, f, op, ev, pass == 0);
		if (ret == 2 && pass < 2)
			continue;
		if (ret > 0)
			break;		/* the real call */
		shim_unlock();
		if (ret < 0) {
			errno = -ret;
			return -1;
		}
		return 0;
	}
	/* Not (or no longer) ours: a socket may be accelerated now. */
	if (!f && ep && ev && fd >= 0 && fd < shim.nfds &&
		   (op == EPOLL_CTL_ADD ? RD(shim.kreg[fd]) == 0 :
		    op == EPOLL_CTL_MOD && RD(shim.kreg[fd]) == 1) &&
		   (ep->loop || can_bind()) && !RD(shim.kwait[epfd]) &&
		   shim__fd_accelerable(fd)) {
		/*
		 * Only sockets no other kernel epoll set watches.  An
		 * unbound set is bound to the adding thread's ring.
		 */
		ep_bind_here(ep, false);
		if (ep->loop)
			f = shim__accel_try(fd, ep->loop, true);
		if (f && op == EPOLL_CTL_MOD) {
			STAT_INC(shim_syscalls);
			if (real_epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL)) {
				/* It was in another set: give it back. */
				shim__fd_release(f);
				f = NULL;
			} else {
				WR(shim.kreg[fd], 0);
			}
		}
		if (f) {
			reg_add(f, ep, ev);
			shim_unlock();
			return 0;
		}
	}
	shim_unlock();
	ret = REAL(epoll_ctl)(epfd, op, fd, ev);
	kreg_track(op, fd, ret);
	nest_track(epfd, op, fd, ev, ret);
	return ret;
}

/* ---- epoll_wait family ---- */

/* Hand every emulated member of ep back to the kernel (lock held). */
static void ep_unbind(struct shim_ep *ep)
{
	int fd;

	WR(ep->loop, NULL);
	for (fd = 0; fd < shim.nfds && ep->nemul > 0; fd++) {
		struct shim_fd *f = shim.fds[fd];

		if (f && f->state == FD_ACCEL && reg_find(f, ep))
			shim__fd_release(f);
	}
}

/*
 * The first thread to wait on a set bound by others (threads that only
 * added to it) takes it over: members in no other set move to its ring,
 * the others go back to the kernel (lock held, dropped meanwhile).
 */
static void ep_adopt(struct shim_ep *ep, struct shim_loop *l)
{
	int fd;

	WR(ep->loop, l);
	for (fd = 0; fd < shim.nfds && ep->nemul > 0; fd++) {
		struct shim_fd *f = shim.fds[fd];

		if (!f || f->state != FD_ACCEL || f->loop == l ||
		    !reg_find(f, ep))
			continue;
		if (f->nregs == 1)
			shim__fd_move(f, l);
		else
			shim__fd_release(f);
	}
}

/*
 * A thread about to block in the kernel's epoll_wait on epfd: until it
 * returns, sockets added to that set stay in the kernel set, where it can
 * see them (lock held).
 */
static void kwait_begin(int epfd, bool *kwaited)
{
	uint8_t *k = &shim.kwait[epfd];

	if (RD(*k) < UINT8_MAX) {
		__atomic_add_fetch(k, 1, __ATOMIC_RELAXED);
		*kwaited = true;
	}
}

static void kwait_end(int epfd, bool kwaited)
{
	if (kwaited)
		__atomic_sub_fetch(&shim.kwait[epfd], 1, __ATOMIC_RELAXED);
}

/*
 * Returns the event count / -errno from the ring path, or INT_MIN when
 * the caller must make the real call (*kwaited: kwait_end after it).
 */
static int wait_common(int epfd, struct epoll_event *ev, int maxev,
		       const struct timespec *ts, const sigset_t *sigmask,
		       bool *kwaited)
{
	struct shim_loop *l;
	struct shim_ep *ep;
	int n;

	if (unlikely(shim__child_readd_pending()) && !shim__depth)
		shim__child_readd();
	if (!shim__ready() || shim__depth || maxev <= 0 || !ev ||
	    epfd < 0 || epfd >= shim.nfds)
		return INT_MIN;
	shim_lock();
	l = shim__loop_get();
	ep = shim__ep_get_locked(epfd);
	if (!ep) {
		shim_unlock();
		return INT_MIN;
	}
	if (ep->loop && ep->loop != l && l && !ep->waited && !ep->nobind) {
		ep_adopt(ep, l);
	} else if (ep->loop && ep->loop != l) {
		/* Another thread's ring emulates it: give the members back. */
		if (ep->nemul)
			ep_unbind(ep);
		WR(ep->loop, NULL);
		if (ep->waited) {
			ep->nobind = true;
			shim__log(LOG_INFO, "uringshim: epoll fd %d is waited "
				  "on by several threads: kernel readiness "
				  "only\n", epfd);
		}
	}
	ep_bind_here(ep, true);
	/*
	 * An unbound set (polled, nested, killed) still reports members
	 * whose pulled bytes are unread; its kernel part needs a poll in
	 * our ring, not another's.
	 */
	if (!l || (ep->loop != l && (ep->loop || !ep->nemul)) ||
	    (ep->kpoll && ep->kpoll != l)) {
		/* The kernel's wait would not see a nested set's events. */
		n = shim__epoll_collect_now(ep, ev, maxev);
		if (n) {
			shim_unlock();
			return n;
		}
		kwait_begin(epfd, kwaited);
		shim_unlock();
		return INT_MIN;
	}
	ep->waited = true;
	if (shim.state == SHIM_STATE_KILLED && l->accel_n)
		shim__release_loop(l);
	if (!l->accel_n && !shim__ring_has_work(l) && !ep->ready_head &&
	    !shim__ep_nest_ready(ep)) {
		/* Nothing of ours anywhere: the plain wait costs less. */
		kwait_begin(epfd, kwaited);
		shim_unlock();
		return INT_MIN;
	}
	shim_unlock();
	return shim__epoll_wait(l, ep, ev, maxev, ts, sigmask);
}

static int ret_libc(int ret)
{
	if (ret < 0) {
		errno = -ret;
		return -1;
	}
	return ret;
}

static struct timespec *ms_to_ts(int ms, struct timespec *ts)
{
	if (ms < 0)
		return NULL;
	ts->tv_sec = ms / 1000;
	ts->tv_nsec = (long)(ms % 1000) * 1000000L;
	return ts;
}

/*
 * After a kernel wait on epfd: drop a kick (epoll.c) from its events.
 * True when the kick was all it returned: wait again.
 */
static bool kick_only(int epfd, struct epoll_event *ev, int *n)
{
	struct shim_ep *ep;
	bool seen = false;

	if (*n <= 0 || shim__depth || epfd < 0 || epfd >= shim.nfds ||
	    !shim.eps)
		return false;
	ep = RD(shim.eps[epfd]);
	if (!ep || !RD(ep->kicked))
		return false;
	shim_lock();
	ep = shim.eps[epfd];
	if (ep)
		*n = shim__ep_unkick(ep, ev, *n, &seen);
	shim_unlock();
	return seen && !*n;
}

/*
 * When a wait of ts that starts now ends (only needed, and only taken,
 * for a finite wait that is not a poll).
 */
static void wait_end(const struct timespec *ts, struct timespec *end)
{
	if (!ts || (!ts->tv_sec && !ts->tv_nsec))
		return;
	clock_gettime(CLOCK_MONOTONIC, end);
	end->tv_sec += ts->tv_sec;
	end->tv_nsec += ts->tv_nsec;
	if (end->tv_nsec >= 1000000000L) {
		end->tv_sec++;
		end->tv_nsec -= 1000000000L;
	}
}

/* What is left of a wait ending at end (0 when past). */
static struct timespec *wait_left(const struct timespec *end,
				  struct timespec *left)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	left->tv_sec = end->tv_sec - now.tv_sec;
	left->tv_nsec = end->tv_nsec - now.tv_nsec;
	if (left->tv_nsec < 0) {
		left->tv_sec--;
		left->tv_nsec += 1000000000L;
	}
	if (left->tv_sec < 0)
		left->tv_sec = left->tv_nsec = 0;
	return left;
}

static int ts_to_ms(const struct timespec *ts)
{
	if (ts->tv_sec >= INT_MAX / 1000)
		return INT_MAX;
	return ts->tv_sec * 1000 + (ts->tv_nsec + 999999) / 1000000;
}

SHIM_EXPORT int epoll_wait(int epfd, struct epoll_event *ev, int maxev,
			   int timeout)
{
	struct timespec ts, end;
	bool kwaited;
	int ret;

	STAT_CALL(epoll_wait);
	wait_end(ms_to_ts(timeout, &ts), &end);
	for (;;) {
		kwaited = false;
		ret = wait_common(epfd, ev, maxev, ms_to_ts(timeout, &ts),
				  NULL, &kwaited);
		if (ret != INT_MIN)
			return ret_libc(ret);
		shim__flush_before_block();
		STAT_INC(passthrough);
		ret = REAL(epoll_wait)(epfd, ev, maxev, timeout);
		kwait_end(epfd, kwaited);
		if (!kick_only(epfd, ev, &ret))
			return ret;
		if (timeout > 0)
			timeout = ts_to_ms(wait_left(&end, &ts));
	}
}

SHIM_EXPORT int epoll_pwait(int epfd, struct epoll_event *ev, int maxev,
			    int timeout, const sigset_t *sigmask)
{
	struct timespec ts, end;
	bool kwaited;
	int ret;

	STAT_CALL(epoll_pwait);
	wait_end(ms_to_ts(timeout, &ts), &end);
	for (;;) {
		kwaited = false;
		ret = wait_common(epfd, ev, maxev, ms_to_ts(timeout, &ts),
				  sigmask, &kwaited);
		if (ret != INT_MIN)
			return ret_libc(ret);
		shim__flush_before_block();
		STAT_INC(passthrough);
		ret = REAL(epoll_pwait)(epfd, ev, maxev, timeout, sigmask);
		kwait_end(epfd, kwaited);
		if (!kick_only(epfd, ev, &ret))
			return ret;
		if (timeout > 0)
			timeout = ts_to_ms(wait_left(&end, &ts));
	}
}

SHIM_EXPORT int epoll_pwait2(int epfd, struct epoll_event *ev, int maxev,
			     const struct timespec *timeout,
			     const sigset_t *sigmask)
{
	struct timespec left, end;
	bool kwaited;
	int ret;

	STAT_CALL(epoll_pwait2);
	if (timeout && (timeout->tv_nsec < 0 || timeout->tv_sec < 0 ||
			timeout->tv_nsec >= 1000000000L)) {
		STAT_INC(passthrough);
		return REAL(epoll_pwait2)(epfd, ev, maxev, timeout, sigmask);
	}
	wait_end(timeout, &end);
	for (;;) {
		kwaited = false;
		ret = wait_common(epfd, ev, maxev, timeout, sigmask,
				  &kwaited);
		if (ret != INT_MIN)
			return ret_libc(ret);
		shim__flush_before_block();
		STAT_INC(passthrough);
		ret = REAL(epoll_pwait2)(epfd, ev, maxev, timeout, sigmask);
		kwait_end(epfd, kwaited);
		if (!kick_only(epfd, ev, &ret))
			return ret;
		if (timeout && (timeout->tv_sec || timeout->tv_nsec))
			timeout = wait_left(&end, &left);
	}
}

/* ---- poll / select ---- */

/*
 * An epoll fd polled through poll/select: the kernel's answer, plus
 * POLLIN while an emulated member, or a nested set, still has events.
 * Members of a polled set go back to the kernel (ep_make_kernel_only), but
 * one whose bytes the ring had already pulled stays emulated until they
 * are read, and the kernel cannot see those bytes (lock held).
 */
static short ep_poll_extra(int fd, short want)
{
	struct shim_ep *ep;

	if (!is_known_ep(fd) || shim__fd_get_locked(fd))
		return 0;
	ep = shim__ep_get_locked(fd);
	return ep && (shim__ep_emul_ready(ep) || shim__ep_nest_ready(ep)) ?
	       (want & (POLLIN | POLLRDNORM)) : 0;
}

static short poll_mask(struct shim_fd *f, short want)
{
	uint32_t m = shim__fd_mask(f);
	short r = 0;

	if (m & EPOLLIN)
		r |= POLLIN | POLLRDNORM;
	if (m & EPOLLOUT)
		r |= POLLOUT | POLLWRNORM;
	if (m & EPOLLRDHUP)
		r |= POLLRDHUP;
	return (r & want) | (m & EPOLLERR ? POLLERR : 0) |
	       (m & EPOLLHUP ? POLLHUP : 0);
}

/*
 * poll over a set holding accelerated fds: their readiness is the shim's,
 * the others' the kernel's.  The kernel part is polled in short slices
 * while the ring runs, so neither side can starve the other.
 */
static int poll_mixed(struct pollfd *fds, nfds_t n, const struct timespec *ts,
		      const sigset_t *sigmask)
{
	struct timespec end, now, slice;
	bool forever = !ts;
	int ready;
	nfds_t i;

	if (ts) {
		clock_gettime(CLOCK_MONOTONIC, &end);
		end.tv_sec += ts->tv_sec;
		end.tv_nsec += ts->tv_nsec;
		if (end.tv_nsec >= 1000000000L) {
			end.tv_sec++;
			end.tv_nsec -= 1000000000L;
		}
	}
	for (;;) {
		long left_ns = 1000000L;
		int kernel;

		if (shim__loop) {
			shim_lock();
			shim__ring_turn(shim__loop, 0, NULL);
			shim_unlock();
		}
		ready = 0;
		shim_lock();
		for (i = 0; i < n; i++) {
			struct shim_fd *f = shim__fd_get_locked(fds[i].fd);

			if (f && f->state != FD_ORPHAN &&
			    (f->state == FD_ACCEL || f->roff < f->rlen)) {
				fds[i].revents = poll_mask(f, fds[i].events);
				ready += fds[i].revents != 0;
			} else if (!f && ep_poll_extra(fds[i].fd,
						       fds[i].events)) {
				ready++;
			}
		}
		shim_unlock();
		if (!forever) {
			clock_gettime(CLOCK_MONOTONIC, &now);
			left_ns = (end.tv_sec - now.tv_sec) * 1000000000L +
				  (end.tv_nsec - now.tv_nsec);
			if (left_ns < 0)
				left_ns = 0;
			if (left_ns > 1000000L)
				left_ns = 1000000L;
		}
		slice.tv_sec = 0;
		slice.tv_nsec = ready ? 0 : left_ns;
		/* Kernel fds: poll them with accelerated ones masked out. */
		shim_lock();
		for (i = 0; i < n; i++)
			if (shim__fd_get_locked(fds[i].fd) && fds[i].fd >= 0)
				fds[i].fd = -fds[i].fd - 2;
		shim_unlock();
		kernel = REAL(ppoll)(fds, n, &slice, sigmask);
		for (i = 0; i < n; i++)
			if (fds[i].fd <= -2)
				fds[i].fd = -fds[i].fd - 2;
		if (kernel < 0)
			return -errno;
		if (kernel || ready) {
			/* ppoll cleared the masked entries' revents. */
			shim_lock();
			ready = 0;
			for (i = 0; i < n; i++) {
				struct shim_fd *f =
					shim__fd_get_locked(fds[i].fd);

				if (f && f->state != FD_ORPHAN)
					fds[i].revents =
						poll_mask(f, fds[i].events);
				else if (!f)
					fds[i].revents |= ep_poll_extra(
						fds[i].fd, fds[i].events);
				ready += fds[i].revents != 0;
			}
			shim_unlock();
			if (ready)
				return ready;
		}
		if (!forever && !left_ns)
			return 0;
	}
}

/*
 * fd is about to be polled: if it is an epoll fd, its members go back to
 * the kernel.  True when one of them still holds bytes only the shim can
 * report (want: the poll events asked for it).
 */
static bool ep_polled(int fd, short want)
{
	bool held;

	if (!is_known_ep(fd))
		return false;
	if (!RD(shim.eps[fd])->nobind)
		ep_make_kernel_only(fd);
	shim_lock();
	held = ep_poll_extra(fd, want) != 0;
	shim_unlock();
	return held;
}

static bool any_owned(const struct pollfd *fds, nfds_t n)
{
	bool held = false;
	nfds_t i;

	for (i = 0; shim.eps && i < n; i++)
		held |= ep_polled(fds[i].fd, fds[i].events);
	if (held)
		return true;

	/* A loop thread must keep its ring moving while it blocks here. */
	if (shim__ring_has_work(shim__loop))
		return true;
	if (!RD(shim.owned_n))
		return false;
	for (i = 0; i < n; i++)
		if (fd_lookup_racy(fds[i].fd))
			return true;
	return false;
}

SHIM_EXPORT int poll(struct pollfd *fds, nfds_t n, int timeout)
{
	struct timespec ts;

	STAT_CALL(poll);
	shim__flush_before_block();
	if (!shim__depth && any_owned(fds, n))
		return ret_libc(poll_mixed(fds, n, ms_to_ts(timeout, &ts),
					   NULL));
	STAT_INC(passthrough);
	return REAL(poll)(fds, n, timeout);
}

SHIM_EXPORT int __poll_chk(struct pollfd *fds, nfds_t n, int timeout,
			   size_t fdslen)
{
	STAT_CALL(__poll_chk);
	if (fdslen / sizeof(*fds) < n)
		return REAL(__poll_chk)(fds, n, timeout, fdslen);
	return poll(fds, n, timeout);
}

SHIM_EXPORT int ppoll(struct pollfd *fds, nfds_t n, const struct timespec *ts,
		      const sigset_t *sigmask)
{
	STAT_CALL(ppoll);
	shim__flush_before_block();
	if (!shim__depth && any_owned(fds, n))
		return ret_libc(poll_mixed(fds, n, ts, sigmask));
	STAT_INC(passthrough);
	return REAL(ppoll)(fds, n, ts, sigmask);
}

static bool sets_owned(int nfds, fd_set *r, fd_set *w, fd_set *e)
{
	bool held = false;
	int fd;

	for (fd = 0; shim.eps && fd < nfds && fd < FD_SETSIZE; fd++) {
		bool rd = r && FD_ISSET(fd, r);

		if (rd || (w && FD_ISSET(fd, w)))
			held |= ep_polled(fd, rd ? POLLIN : 0);
	}
	if (held)
		return true;
	if (shim__ring_has_work(shim__loop))
		return true;
	if (!RD(shim.owned_n))
		return false;
	for (fd = 0; fd < nfds && fd < FD_SETSIZE; fd++)
		if (((r && FD_ISSET(fd, r)) || (w && FD_ISSET(fd, w)) ||
		     (e && FD_ISSET(fd, e))) && fd_lookup_racy(fd))
			return true;
	return false;
}

/* select through poll_mixed; only reached with accelerated fds inside. */
static int select_mixed(int nfds, fd_set *r, fd_set *w, fd_set *e,
			const struct timespec *ts, const sigset_t *sigmask)
{
	struct pollfd pfd[FD_SETSIZE];
	nfds_t n = 0, i;
	int ret, count = 0;

	for (int fd = 0; fd < nfds && fd < FD_SETSIZE; fd++) {
		short ev = 0;

		if (r && FD_ISSET(fd, r))
			ev |= POLLIN;
		if (w && FD_ISSET(fd, w))
			ev |= POLLOUT;
		if (e && FD_ISSET(fd, e))
			ev |= POLLPRI;
		if (ev) {
			pfd[n].fd = fd;
			pfd[n].events = ev;
			pfd[n++].revents = 0;
		}
	}
	ret = poll_mixed(pfd, n, ts, sigmask);
	if (ret < 0)
		return ret;
	if (r)
		FD_ZERO(r);
	if (w)
		FD_ZERO(w);
	if (e)
		FD_ZERO(e);
	for (i = 0; i < n; i++) {
		short re = pfd[i].revents;

		if (r && (re & (POLLIN | POLLHUP | POLLERR))) {
			FD_SET(pfd[i].fd, r);
			count++;
		}
		if (w && (re & (POLLOUT | POLLERR))) {
			FD_SET(pfd[i].fd, w);
			count++;
		}
		if (e && (re & POLLPRI)) {
			FD_SET(pfd[i].fd, e);
			count++;
		}
	}
	return count;
}

SHIM_EXPORT int select(int nfds, fd_set *r, fd_set *w, fd_set *e,
		       struct timeval *tv)
{
	struct timespec ts;

	STAT_CALL(select);
	shim__flush_before_block();
	if (!shim__depth && sets_owned(nfds, r, w, e)) {
		if (tv) {
			ts.tv_sec = tv->tv_sec;
			ts.tv_nsec = tv->tv_usec * 1000L;
		}
		return ret_libc(select_mixed(nfds, r, w, e, tv ? &ts : NULL,
					     NULL));
	}
	STAT_INC(passthrough);
	return REAL(select)(nfds, r, w, e, tv);
}

SHIM_EXPORT int pselect(int nfds, fd_set *r, fd_set *w, fd_set *e,
			const struct timespec *ts, const sigset_t *sigmask)
{
	STAT_CALL(pselect);
	shim__flush_before_block();
	if (!shim__depth && sets_owned(nfds, r, w, e))
		return ret_libc(select_mixed(nfds, r, w, e, ts, sigmask));
	STAT_INC(passthrough);
	return REAL(pselect)(nfds, r, w, e, ts, sigmask);
}
