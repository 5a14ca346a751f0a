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

#include "args.h"

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
 * EPOLLEXCLUSIVE as do_epoll_ctl checks it, before looking the fd up:
 * never with MOD, and with ADD only beside these bits.
 */
#define EXCLUSIVE_OK	(EPOLLIN | EPOLLOUT | EPOLLERR | EPOLLHUP | \
			 EPOLLWAKEUP | EPOLLET | EPOLLEXCLUSIVE)

static bool exclusive_bad(int op, const struct epoll_event *ev)
{
	return ev && (ev->events & EPOLLEXCLUSIVE) &&
	       (op == EPOLL_CTL_MOD ||
		(op == EPOLL_CTL_ADD && (ev->events & ~EXCLUSIVE_OK)));
}

/*
 * epoll_ctl on an fd the shim owns, lock held; ev is the caller's event,
 * already copied (NULL for DEL).  Returns 0/-errno, or 1 when the real
 * call must be made (the fd was handed back).
 */
static int ctl_emulated(struct shim_ep *ep, struct shim_fd *f, int op,
			const struct epoll_event *ev)
{
	struct shim_reg *r = reg_find(f, ep);

	if (exclusive_bad(op, ev))
		return -EINVAL;
	switch (op) {
	case EPOLL_CTL_ADD:
		if (r)
			return -EEXIST;
		if (f->state == FD_DRAINING && f->nregs == SHIM_MAX_REGS)
			return 1;
		if (f->state == FD_ACCEL && !RD(shim.kwait[ep->epfd]))
			ep_bind_here(ep, false);
		/* Only sets of the ring that does f's I/O can emulate it. */
		if (f->state == FD_ACCEL &&
		    (ep->loop != f->loop || f->nregs == SHIM_MAX_REGS ||
		     RD(shim.kwait[ep->epfd]))) {
			shim__fd_release(f);
			return 1;
		}
		reg_add(f, ep, ev);
		return 0;
	case EPOLL_CTL_MOD:
		if (!r)
			return -ENOENT;
		if (r->events & EPOLLEXCLUSIVE)
			return -EINVAL;
		r->events = ev->events;
		r->data = ev->data;
		r->oneshot_fired = false;
		shim__reg_ready(r);
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
static void nest_track(int epfd, int op, int fd,
		       const struct epoll_event *ev, int ret)
{
	if (ret || !is_known_ep(fd))
		return;
	shim_lock();
	if (shim__ep_get_locked(epfd))
		shim__nest_ctl(epfd, op, fd, ev);
	shim_unlock();
}

/* The real epoll_ctl, and what the shim tracks of the kernel's sets. */
static int ctl_real(int epfd, int op, int fd, struct epoll_event *uev)
{
	struct epoll_event kev;
	int ret = REAL(epoll_ctl)(epfd, op, fd, uev);

	kreg_track(op, fd, ret);
	/* The kernel read the event: it is readable (barring a race). */
	if (!ret && is_known_ep(fd) &&
	    (op == EPOLL_CTL_DEL || shim__uget(&kev, uev, sizeof(kev))))
		nest_track(epfd, op, fd, op == EPOLL_CTL_DEL ? NULL : &kev,
			   ret);
	return ret;
}

SHIM_EXPORT int epoll_ctl(int epfd, int op, int fd, struct epoll_event *uev)
{
	struct epoll_event kev, *ev = NULL;
	struct shim_ep *ep;
	struct shim_fd *f;
	int ret;

	STAT_CALL(epoll_ctl);
	if (unlikely(shim__child_readd_pending()) && !shim__depth)
		shim__child_readd();
	if (!shim__ready() || shim__depth || epfd < 0 || epfd >= shim.nfds)
		return REAL(epoll_ctl)(epfd, op, fd, uev);
	if (op == EPOLL_CTL_ADD && is_known_ep(fd))
		ep_make_kernel_only(fd);
	if (!fd_lookup_racy(fd) &&
	    (op == EPOLL_CTL_DEL || !uev || !RD(shim.eps[epfd]) ||
	     (!RD(RD(shim.eps[epfd])->loop) && !can_bind()) ||
	     !shim__ready()))
		return ctl_real(epfd, op, fd, uev);
	/* The shim may answer: the event is read first, as the kernel does. */
	if (op != EPOLL_CTL_DEL) {
		if (!shim__uget(&kev, uev, sizeof(kev))) {
			errno = EFAULT;
			return -1;
		}
		ev = &kev;
	}
	shim_lock();
	ep = shim__ep_get_locked(epfd);
	f = shim__fd_get_locked(fd);
	if (ep && f && (f->state == FD_ACCEL || f->state == FD_DRAINING)) {
		ret = ctl_emulated(ep, f, op, ev);
		if (ret <= 0) {
			shim_unlock();
			if (ret < 0) {
				errno = -ret;
				return -1;
			}
			return 0;
		}
	} else if (ep && !f && ev && fd >= 0 && fd < shim.nfds &&
		   !exclusive_bad(op, ev) &&
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
	return ctl_real(epfd, op, fd, uev);
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
 * An emulated event the caller could not be handed (its array is not
 * writable) goes back on its registration's ready list, as the kernel
 * keeps it.  A kernel event fetched for it is gone (lock held).
 */
static void ep_requeue(struct shim_ep *ep, const struct epoll_event *ev)
{
	int fd, i;

	for (fd = 0; fd < shim.nfds && ep->nemul > 0; fd++) {
		struct shim_fd *f = shim.fds[fd];

		for (i = 0; f && i < f->nregs; i++) {
			struct shim_reg *r = &f->regs[i];

			if (r->ep != ep || r->data.u64 != ev->data.u64)
				continue;
			r->oneshot_fired = false;
			shim__reg_ready(r);
			return;
		}
	}
}

/*
 * The ring wait for a caller's array.  The kernel writes events one by
 * one and stops at the first slot it cannot write: the count so far, or
 * EFAULT with the event kept.  The emulated wait writes the array
 * directly, so it is first told how many slots are writable (probed a
 * page at a time, at most 64 pages: a wait hands over no more than that
 * many events); with none, the wait runs into one local slot and answers
 * EFAULT when it fills it.
 */
#define EVENTS_PROBE_MAX	(64 * 4096 / (int)sizeof(struct epoll_event))

static int wait_ring(struct shim_loop *l, struct shim_ep *ep,
		     struct epoll_event *ev, int maxev,
		     const struct timespec *ts, const sigset_t *sigmask)
{
	struct epoll_event one;
	int n;

	n = shim__events_writable(ev, maxev < EVENTS_PROBE_MAX ? maxev :
				  EVENTS_PROBE_MAX);
	if (n > 0)
		return shim__epoll_wait(l, ep, ev, n, ts, sigmask);
	n = shim__epoll_wait(l, ep, &one, 1, ts, sigmask);
	if (n <= 0)
		return n;
	shim_lock();
	ep_requeue(ep, &one);
	shim_unlock();
	return -EFAULT;
}

/*
 * Returns the event count / -errno from the ring path, or INT_MIN when
 * the caller must make the real call (*kwaited: kwait_end after it).  The
 * kernel's own checks of maxevents (EINVAL) and of the array's range
 * (EFAULT) come first, and the real call answers them.
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
	if (!shim__ready() || shim__depth || maxev <= 0 ||
	    maxev > SHIM_EP_MAX_EVENTS ||
	    !shim__user_range_ok(ev, (size_t)maxev * sizeof(*ev)) ||
	    epfd < 0 || epfd >= shim.nfds)
		return INT_MIN;
	shim_lock();
	l = shim__loop_get();
	ep = shim__ep_get_locked(epfd);
	if (!ep) {
		shim_unlock();
		return INT_MIN;
	}
	if (ep->loop && ep->loop != l) {
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
		n = shim__events_writable(ev, maxev < EVENTS_PROBE_MAX ?
					  maxev : EVENTS_PROBE_MAX);
		n = n ? shim__epoll_collect_now(ep, ev, n) : 0;
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
	return wait_ring(l, ep, ev, maxev, ts, sigmask);
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

SHIM_EXPORT int epoll_wait(int epfd, struct epoll_event *ev, int maxev,
			   int timeout)
{
	struct timespec ts;
	bool kwaited = false;
	int ret;

	STAT_CALL(epoll_wait);
	ret = wait_common(epfd, ev, maxev, ms_to_ts(timeout, &ts), NULL,
			  &kwaited);
	if (ret != INT_MIN)
		return ret_libc(ret);
	shim__flush_before_block();
	STAT_INC(passthrough);
	ret = REAL(epoll_wait)(epfd, ev, maxev, timeout);
	kwait_end(epfd, kwaited);
	return ret;
}

SHIM_EXPORT int epoll_pwait(int epfd, struct epoll_event *ev, int maxev,
			    int timeout, const sigset_t *sigmask)
{
	struct timespec ts;
	bool kwaited = false;
	sigset_t mask;
	int ret = INT_MIN;

	STAT_CALL(epoll_pwait);
	/* The mask is read before anything else; a bad one is EFAULT. */
	if (!sigmask || !shim__sigset_get(sigmask, &mask))
		ret = wait_common(epfd, ev, maxev, ms_to_ts(timeout, &ts),
				  sigmask, &kwaited);
	if (ret != INT_MIN)
		return ret_libc(ret);
	shim__flush_before_block();
	STAT_INC(passthrough);
	ret = REAL(epoll_pwait)(epfd, ev, maxev, timeout, sigmask);
	kwait_end(epfd, kwaited);
	return ret;
}

SHIM_EXPORT int epoll_pwait2(int epfd, struct epoll_event *ev, int maxev,
			     const struct timespec *timeout,
			     const sigset_t *sigmask)
{
	struct timespec ts;
	bool kwaited = false;
	sigset_t mask;
	int ret = INT_MIN;

	STAT_CALL(epoll_pwait2);
	/* The timeout (EFAULT, EINVAL), then the mask, as the kernel. */
	if ((!timeout || !shim__timespec_get(timeout, &ts)) &&
	    (!sigmask || !shim__sigset_get(sigmask, &mask)))
		ret = wait_common(epfd, ev, maxev, timeout ? &ts : NULL,
				  sigmask, &kwaited);
	if (ret != INT_MIN)
		return ret_libc(ret);
	shim__flush_before_block();
	STAT_INC(passthrough);
	ret = REAL(epoll_pwait2)(epfd, ev, maxev, timeout, sigmask);
	kwait_end(epfd, kwaited);
	return ret;
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
 * Does the shim report fd's readiness itself? (lock held)  A released
 * socket too, while it holds pulled bytes or the error the ring took.
 */
static struct shim_fd *poll_owned(int fd)
{
	struct shim_fd *f = shim__fd_get_locked(fd);

	return f && f->state != FD_ORPHAN &&
	       (f->state == FD_ACCEL || f->roff < f->rlen || f->err) ?
	       f : NULL;
}

/*
 * poll over a set holding accelerated fds (fds: the shim's own copy):
 * their readiness is the shim's, the others' the kernel's.  The kernel
 * part is polled in short slices while the ring runs, so neither side
 * can starve the other; it gets its own array (kern), where the shim's
 * entries are -1 and every other entry, negative ones included, is the
 * caller's.  A released socket still holding pulled bytes is asked of
 * both: its input is the shim's, its output the kernel's.  relevant
 * (select): per entry, the revents bits that make it ready; an entry the
 * kernel keeps reporting only other bits for (an error in an exception
 * set) is not polled again, or the slices would spin.
 */
static int poll_mixed(struct pollfd *fds, nfds_t n, const struct timespec *ts,
		      const sigset_t *sigmask, const short *relevant)
{
	struct pollfd stack[16], *kern = stack;
	struct timespec end, now, slice;
	bool forever = !ts;
	int ready, ret, pass;
	nfds_t i;

	if (n > sizeof(stack) / sizeof(stack[0])) {
		kern = malloc(n * sizeof(*kern));
		if (!kern)
			return -ENOMEM;
	}
	if (ts) {
		clock_gettime(CLOCK_MONOTONIC, &end);
		end.tv_sec += ts->tv_sec;
		end.tv_nsec += ts->tv_nsec;
		if (end.tv_nsec >= 1000000000L) {
			end.tv_sec++;
			end.tv_nsec -= 1000000000L;
		}
	}
	for (pass = 0;; pass++) {
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
			struct shim_fd *f = poll_owned(fds[i].fd);

			if (!relevant || kern[i].fd != -2 || !pass)
				kern[i] = fds[i];
			fds[i].revents = 0;
			if (f) {
				/* Released: its send side is the kernel's. */
				if (f->state == FD_ACCEL)
					kern[i].fd = -1;
				fds[i].revents = poll_mask(f, fds[i].events);
				if (relevant)
					fds[i].revents &= relevant[i];
				ready += fds[i].revents != 0;
			} else if (!shim__fd_get_locked(fds[i].fd) &&
				   ep_poll_extra(fds[i].fd, fds[i].events)) {
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
		kernel = REAL(ppoll)(kern, n, &slice, sigmask);
		if (kernel < 0) {
			ret = -errno;
			break;
		}
		if (kernel || ready) {
			shim_lock();
			ready = 0;
			for (i = 0; i < n; i++) {
				struct shim_fd *f = poll_owned(fds[i].fd);

				if (f)
					fds[i].revents =
						poll_mask(f, fds[i].events) |
						(kern[i].fd == -1 ? 0 :
						 kern[i].revents);
				else if (shim__fd_get_locked(fds[i].fd))
					fds[i].revents = kern[i].revents;
				else
					fds[i].revents = kern[i].revents |
						ep_poll_extra(fds[i].fd,
							      fds[i].events);
				if (relevant) {
					if (kern[i].revents && !f &&
					    !(kern[i].revents & relevant[i]))
						kern[i].fd = -2;
					fds[i].revents &= relevant[i];
				}
				ready += fds[i].revents != 0;
			}
			shim_unlock();
			if (ready) {
				ret = ready;
				break;
			}
		}
		if (!forever && !left_ns) {
			ret = 0;
			break;
		}
	}
	if (kern != stack)
		free(kern);
	return ret;
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

	for (i = 0; i < n; i++)
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

/* Entries a poll copies onto the stack; more are malloc'd. */
#define POLL_STACK	32

/*
 * poll/ppoll: the caller's array is read into a copy first, and only the
 * copy is worked on: the caller's entries keep their fd and events
 * fields, and get only revents back, also after a signal (each under the
 * fault guard: a read-only array is the kernel's EFAULT, after the wait).  nfds above
 * RLIMIT_NOFILE (EINVAL) and an unreadable array (EFAULT) are answered by
 * the real call, as is an array with nothing of ours.  Returns INT_MIN
 * for the real call.
 */
static int poll_shim(struct pollfd *ufds, nfds_t n, const struct timespec *ts,
		     const sigset_t *sigmask)
{
	struct pollfd stack[POLL_STACK], *k = stack;
	int ret = INT_MIN;
	nfds_t i;

	if (shim__depth || !shim.eps)
		return INT_MIN;
	if (n > POLL_STACK) {
		if (n > shim__nofile_limit() ||
		    !(k = malloc(n * sizeof(*k))))
			return INT_MIN;
	}
	if ((n && !shim__uget(k, ufds, n * sizeof(*k))) || !any_owned(k, n))
		goto out;
	ret = poll_mixed(k, n, ts, sigmask, NULL);
	/* The kernel writes revents back after a signal too (do_sys_poll). */
	for (i = 0; (ret >= 0 || ret == -EINTR) && i < n; i++)
		if (!shim__uput(UFIELD(UELEM(ufds, struct pollfd, i),
				       struct pollfd, revents),
				&k[i].revents, sizeof(k[i].revents)))
			ret = -EFAULT;
out:
	if (k != stack)
		free(k);
	return ret;
}

SHIM_EXPORT int poll(struct pollfd *fds, nfds_t n, int timeout)
{
	struct timespec ts;
	int ret;

	STAT_CALL(poll);
	shim__flush_before_block();
	ret = poll_shim(fds, n, ms_to_ts(timeout, &ts), NULL);
	if (ret != INT_MIN)
		return ret_libc(ret);
	STAT_INC(passthrough);
	return REAL(poll)(fds, n, timeout);
}

SHIM_EXPORT int __poll_chk(struct pollfd *fds, nfds_t n, int timeout,
			   size_t fdslen)
{
	struct timespec ts;
	int ret;

	STAT_CALL(__poll_chk);
	if (fdslen / sizeof(*fds) < n)
		return REAL(__poll_chk)(fds, n, timeout, fdslen);
	shim__flush_before_block();
	ret = poll_shim(fds, n, ms_to_ts(timeout, &ts), NULL);
	if (ret != INT_MIN)
		return ret_libc(ret);
	STAT_INC(passthrough);
	return REAL(__poll_chk)(fds, n, timeout, fdslen);
}

SHIM_EXPORT int ppoll(struct pollfd *fds, nfds_t n, const struct timespec *ts,
		      const sigset_t *sigmask)
{
	struct timespec kts;
	sigset_t mask;
	int ret = INT_MIN;

	STAT_CALL(ppoll);
	shim__flush_before_block();
	/* Timeout (EFAULT, EINVAL) and mask (EFAULT) first: the real call. */
	if ((!ts || !shim__timespec_get(ts, &kts)) &&
	    (!sigmask || !shim__sigset_get(sigmask, &mask)))
		ret = poll_shim(fds, n, ts ? &kts : NULL, sigmask);
	if (ret != INT_MIN)
		return ret_libc(ret);
	STAT_INC(passthrough);
	return REAL(ppoll)(fds, n, ts, sigmask);
}

#define LONG_BITS	(8 * (int)sizeof(long))

static bool bit_get(const unsigned long *set, int fd)
{
	return set && (set[fd / LONG_BITS] >> (fd % LONG_BITS) & 1);
}

/*
 * select/pselect through poll_mixed, for sets holding an fd of ours
 * (core_sys_select): nfds capped at the kernel's fd table, ceil(nfds/64)
 * longs of each set read (EFAULT) and written back, a set bit of a
 * closed fd is EBADF, the count is of bits set.  Sets of any size: a
 * caller may pass more than FD_SETSIZE.  Returns INT_MIN for the real
 * call (also for what the kernel answers alone: a negative nfds, an
 * unreadable set, a set with nothing of ours).
 */
static int select_shim(int nfds, fd_set *ur, fd_set *uw, fd_set *ue,
		       const struct timespec *ts, const sigset_t *sigmask)
{
	fd_set *uset[3] = { ur, uw, ue };
	unsigned long stack[3][FD_SETSIZE / LONG_BITS], *set[3] = { NULL };
	unsigned long *buf = &stack[0][0];
	struct pollfd *pfd = NULL;
	short *relevant = NULL;
	int ret = INT_MIN, n = nfds, count = 0, fd, k;
	size_t bytes;
	nfds_t np = 0, i;
	bool held = false, mine = false;

	if (shim__depth || !shim.eps || nfds < 0)
		return INT_MIN;
	if (n > FD_SETSIZE) {
		/* The kernel reads no bit beyond its fd table. */
		int top = shim__fd_table_size();

		n = top > 0 && top < n ? top : n;
	}
	bytes = (size_t)(n + LONG_BITS - 1) / LONG_BITS * sizeof(long);
	if (n > FD_SETSIZE && !(buf = malloc(3 * bytes)))
		return INT_MIN;
	for (k = 0; k < 3; k++) {
		if (!uset[k])
			continue;
		set[k] = (unsigned long *)((char *)buf + k * bytes);
		if (bytes && !shim__uget(set[k], uset[k], bytes))
			goto out;
	}
	for (fd = 0; fd < n; fd++) {
		bool rd = bit_get(set[0], fd), wr = bit_get(set[1], fd);

		if (rd || wr || bit_get(set[2], fd)) {
			np++;
			if (rd || wr)
				held |= ep_polled(fd, rd ? POLLIN : 0);
			mine |= fd_lookup_racy(fd) != NULL;
		}
	}
	if (!held && !mine && !shim__ring_has_work(shim__loop))
		goto out;
	pfd = calloc(np ? np : 1, sizeof(*pfd) + sizeof(*relevant));
	if (!pfd)
		goto out;
	relevant = (short *)(pfd + (np ? np : 1));
	for (fd = 0, i = 0; fd < n; fd++) {
		short ev = (bit_get(set[0], fd) ? POLLIN : 0) |
			   (bit_get(set[1], fd) ? POLLOUT : 0) |
			   (bit_get(set[2], fd) ? POLLPRI : 0);

		if (!ev)
			continue;
		/*
		 * POLLIN_SET, POLLOUT_SET, POLLEX_SET (fs/select.c), and
		 * POLLNVAL: a closed fd is EBADF.
		 */
		relevant[i] = POLLNVAL |
			      (ev & POLLIN ? POLLIN | POLLRDNORM | POLLRDBAND |
				POLLHUP | POLLERR : 0) |
			      (ev & POLLOUT ? POLLOUT | POLLWRNORM |
				POLLWRBAND | POLLERR : 0) |
			      (ev & POLLPRI ? POLLPRI : 0);
		pfd[i++] = (struct pollfd){ .fd = fd, .events = ev };
	}
	ret = poll_mixed(pfd, np, ts, sigmask, relevant);
	for (i = 0; ret >= 0 && i < np; i++)
		if (pfd[i].revents & POLLNVAL)
			ret = -EBADF;
	if (ret < 0)
		goto out;
	for (k = 0; k < 3; k++)
		if (set[k])
			memset(set[k], 0, bytes);
	for (i = 0; i < np; i++) {
		short re = pfd[i].revents;
		short want[3] = { POLLIN | POLLRDNORM | POLLRDBAND | POLLHUP |
				  POLLERR,
				  POLLOUT | POLLWRNORM | POLLWRBAND | POLLERR,
				  POLLPRI };

		for (k = 0; k < 3; k++) {
			if (!set[k] || !(pfd[i].events &
					 (k == 0 ? POLLIN : k == 1 ?
					  POLLOUT : POLLPRI)) ||
			    !(re & want[k]))
				continue;
			set[k][pfd[i].fd / LONG_BITS] |=
				1UL << (pfd[i].fd % LONG_BITS);
			count++;
		}
	}
	/* In order, stopping at the first that faults (set_fd_set). */
	ret = count;
	for (k = 0; k < 3 && ret >= 0; k++)
		if (set[k] && bytes && !shim__uput(uset[k], set[k], bytes))
			ret = -EFAULT;
out:
	free(pfd);
	if (buf != &stack[0][0])
		free(buf);
	return ret;
}

static long ts_ns(const struct timespec *t)
{
	return t->tv_sec * 1000000000L + t->tv_nsec;
}

SHIM_EXPORT int select(int nfds, fd_set *r, fd_set *w, fd_set *e,
		       struct timeval *tv)
{
	struct timespec ts, t0, t1;
	struct timeval k;
	long left;
	int ret;

	STAT_CALL(select);
	shim__flush_before_block();
	/*
	 * glibc reads the timeval itself, refuses a negative one, carries
	 * surplus microseconds into seconds, and writes the time left back
	 * (a timeval it cannot read or write faults there: the real call
	 * meets that as plain libc would).
	 */
	if (tv && (!shim__uget(&k, tv, sizeof(k)) ||
		   !shim__uput(tv, &k, sizeof(k)) || k.tv_sec < 0 ||
		   k.tv_usec < 0))
		goto real;
	if (tv) {
		ts.tv_sec = k.tv_sec + k.tv_usec / 1000000;
		ts.tv_nsec = k.tv_usec % 1000000 * 1000L;
		clock_gettime(CLOCK_MONOTONIC, &t0);
	}
	ret = select_shim(nfds, r, w, e, tv ? &ts : NULL, NULL);
	if (ret == INT_MIN)
		goto real;
	if (tv && (ts.tv_sec || ts.tv_nsec)) {
		clock_gettime(CLOCK_MONOTONIC, &t1);
		left = ts_ns(&ts) - (ts_ns(&t1) - ts_ns(&t0));
		left = left > 0 ? left : 0;
		k.tv_sec = left / 1000000000L;
		k.tv_usec = left % 1000000000L / 1000;
		shim__uput(tv, &k, sizeof(k));
	}
	return ret_libc(ret);
real:
	STAT_INC(passthrough);
	return REAL(select)(nfds, r, w, e, tv);
}

SHIM_EXPORT int pselect(int nfds, fd_set *r, fd_set *w, fd_set *e,
			const struct timespec *ts, const sigset_t *sigmask)
{
	struct timespec kts;
	sigset_t mask;
	int ret = INT_MIN;

	STAT_CALL(pselect);
	shim__flush_before_block();
	if ((!ts || !shim__timespec_get(ts, &kts)) &&
	    (!sigmask || !shim__sigset_get(sigmask, &mask)))
		ret = select_shim(nfds, r, w, e, ts ? &kts : NULL, sigmask);
	if (ret != INT_MIN)
		return ret_libc(ret);
	STAT_INC(passthrough);
	return REAL(pselect)(nfds, r, w, e, ts, sigmask);
}
