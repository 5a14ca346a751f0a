/*
 * epoll.c - the emulated epoll interest list and the wait inside the ring.
 *
 * Accelerated sockets are never in the kernel's epoll set: the shim pulls
 * their data, so the kernel's readiness for them would be wrong.  Their
 * registrations live here, and a per-epfd ready list (like the kernel's
 * rdllist) holds the ones to re-evaluate.  The kernel set (listening
 * sockets, pipes, timers...) is watched from inside the ring by a one-shot
 * POLL_ADD on the epfd; only when it fires do we call the real
 * epoll_wait(timeout 0), so kernel events are fetched at the moment they
 * are returned and can never be stale (IORING_OP_EPOLL_WAIT would buffer
 * events across calls, and an fd closed in between would get one).
 *
 * An epoll set nested in another one is a kernel member of it, but may
 * still hold emulated members with pulled bytes; the outer set's waits
 * report it themselves while it does ("nested sets" below).
 */
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "internal.h"

void shim__on_eppoll(struct shim_ep *ep, int res)
{
	ep->kpoll = NULL;
	if (ep->dead) {
		free(ep);
		return;
	}
	if (res >= 0 || res == -ECANCELED)
		ep->kready = res >= 0;
	else
		ep->kready = true;	/* let the real epoll_wait tell */
}

/* ---- kicks: a thread blocked in the kernel's wait ---- */

/*
 * A thread blocked in the kernel's epoll_wait on a set cannot see the
 * set's emulated registrations.  When one joins such a set, a ready
 * eventfd joins its kernel part with a data value only the shim uses (the
 * address of the set's record), so that wait returns.  Every kernel wait
 * result of the set drops that event and takes the eventfd out again; a
 * wait it woke for nothing else starts over, and then sees the emulated
 * members.
 */
static uint64_t kick_data(const struct shim_ep *ep)
{
	return (uint64_t)(uintptr_t)ep;
}

void shim__ep_kick(struct shim_ep *ep)
{
	struct epoll_event ev = { .events = EPOLLIN,
				  .data.u64 = kick_data(ep) };
	int fd;

	if (ep->kicked)
		return;
	STAT_ADD(shim_syscalls, 2);
	fd = eventfd(1, EFD_CLOEXEC | EFD_NONBLOCK);
	if (fd < 0)
		goto fail;
	/* Set first: the waiter may return before the ADD does. */
	ep->kick_fd = fd;
	WR(ep->kicked, true);
	if (!real_epoll_ctl(ep->epfd, EPOLL_CTL_ADD, fd, &ev)) {
		shim__log(LOG_DEBUG, "uringshim: waking the kernel wait on "
			  "epoll fd %d\n", ep->epfd);
		return;
	}
	WR(ep->kicked, false);
	real_close(fd);
fail:
	shim__log(LOG_WARN, "uringshim: cannot wake the kernel wait on epoll "
		  "fd %d\n", ep->epfd);
}

void shim__ep_kick_end(struct shim_ep *ep)
{
	if (!ep->kicked)
		return;
	STAT_ADD(shim_syscalls, 2);
	real_epoll_ctl(ep->epfd, EPOLL_CTL_DEL, ep->kick_fd, NULL);
	real_close(ep->kick_fd);
	WR(ep->kicked, false);
}

/* Drop the kick from n kernel events; returns how many are left. */
int shim__ep_unkick(struct shim_ep *ep, struct epoll_event *ev, int n,
		    bool *seen)
{
	int i, left = 0;

	if (!ep->kicked)
		return n;
	for (i = 0; i < n; i++) {
		if (ev[i].data.u64 == kick_data(ep))
			*seen = true;
		else
			ev[left++] = ev[i];
	}
	if (*seen)
		shim__ep_kick_end(ep);
	return left;
}

/* ---- nested sets ---- */

/*
 * A set E added to another set O goes back to the kernel
 * (ep_make_kernel_only in wrap_epoll.c), but a member whose bytes the ring
 * had already pulled stays emulated until they are read, and the kernel
 * cannot count those bytes for E.  O's waits, and polls of O, therefore
 * report E themselves while E has such events, as the kernel would:
 * EPOLLIN with O's registration data, level-triggered, or once per
 * ADD/MOD for EPOLLET and EPOLLONESHOT.  The table holds every
 * registration of a known epoll fd in another set: epoll_ctl and close
 * change it (lock held), and it is walked only when it is not empty.
 */
struct nest {
	int outer, inner;		/* epfds: inner is a member of outer */
	uint32_t events;		/* as registered in outer */
	epoll_data_t data;
	bool fired;			/* ET/ONESHOT: reported since ADD/MOD */
	bool kernel_turn;		/* one slot left: kernel's turn */
};

#define NEST_MAX_DEPTH	5	/* the kernel allows 4 levels (EP_MAX_NESTS) */
#define NEST_EVENTS	(EPOLLIN | EPOLLRDNORM)	/* all an epoll fd reports */

static struct nest *nests;
static int nests_n, nests_cap;

static struct nest *nest_find(int outer, int inner)
{
	int i;

	for (i = 0; i < nests_n; i++)
		if (nests[i].outer == outer && nests[i].inner == inner)
			return &nests[i];
	return NULL;
}

static void nest_drop(struct nest *x)
{
	*x = nests[--nests_n];
	if (!nests_n) {
		free(nests);
		nests = NULL;
		nests_cap = 0;
	}
}

static struct nest *nest_new(int outer, int inner)
{
	struct nest *x;

	if (nests_n == nests_cap) {
		int cap = nests_cap ? 2 * nests_cap : 8;

		x = realloc(nests, cap * sizeof(*x));
		if (!x)
			return NULL;
		nests = x;
		nests_cap = cap;
	}
	x = &nests[nests_n++];
	memset(x, 0, sizeof(*x));
	x->outer = outer;
	x->inner = inner;
	return x;
}

void shim__nest_ctl(int outer, int op, int inner,
		    const struct epoll_event *ev)
{
	struct nest *x = nest_find(outer, inner);
	struct shim_ep *o;

	if (op == EPOLL_CTL_DEL) {
		if (x)
			nest_drop(x);
		return;
	}
	if (!ev || (op != EPOLL_CTL_ADD && op != EPOLL_CTL_MOD))
		return;
	if (!x && op == EPOLL_CTL_ADD)
		x = nest_new(outer, inner);
	if (!x) {
		shim__log(LOG_WARN, "uringshim: epoll fd %d nested in %d: "
			  "not tracked (no memory)\n", inner, outer);
		return;
	}
	x->events = ev->events;
	x->data = ev->data;
	x->fired = false;
	/* A loop thread waiting on outer in its ring re-checks it. */
	o = shim.eps[outer];
	if (o && o->loop && !shim__on_loop(o->loop))
		shim__ring_wake(o->loop);
}

void shim__nest_forget(int fd)
{
	int i;

	for (i = nests_n - 1; i >= 0; i--)
		if (nests[i].outer == fd || nests[i].inner == fd)
			nest_drop(&nests[i]);
}

static bool nest_any(int outer, int depth);

/* Does x's inner set have events outer must report for it now? */
static bool nest_reportable(const struct nest *x, int depth)
{
	struct shim_ep *inner;

	if (!(x->events & NEST_EVENTS) || depth >= NEST_MAX_DEPTH ||
	    (x->fired && (x->events & (EPOLLET | EPOLLONESHOT))))
		return false;
	inner = x->inner < shim.nfds ? shim.eps[x->inner] : NULL;
	return inner && (shim__ep_emul_ready(inner) ||
			 nest_any(inner->epfd, depth + 1));
}

static bool nest_any(int outer, int depth)
{
	int i;

	for (i = 0; i < nests_n; i++)
		if (nests[i].outer == outer &&
		    nest_reportable(&nests[i], depth))
			return true;
	return false;
}

static struct nest *nest_first_ready(struct shim_ep *ep)
{
	int i;

	for (i = 0; i < nests_n; i++)
		if (nests[i].outer == ep->epfd && nest_reportable(&nests[i], 0))
			return &nests[i];
	return NULL;
}

bool shim__ep_nest_ready(struct shim_ep *ep)
{
	return nests_n && nest_any(ep->epfd, 0);
}

static bool data_in(const struct epoll_event *ev, int n, epoll_data_t data)
{
	int i;

	for (i = 0; i < n; i++)
		if (ev[i].data.u64 == data.u64)
			return true;
	return false;
}

/*
 * The nested sets' events after the kernel's own (kern[0..nk)): a set the
 * kernel reported itself just now is not reported twice.  A ONESHOT report
 * disarms the kernel's registration too, as the kernel's own report would.
 */
static int collect_nested(struct shim_ep *ep, struct epoll_event *out,
			  int room, const struct epoll_event *kern, int nk)
{
	struct epoll_event off;
	int i, n = 0;

	for (i = 0; i < nests_n && n < room; i++) {
		struct nest *x = &nests[i];

		if (x->outer != ep->epfd || !nest_reportable(x, 0))
			continue;
		if (!data_in(kern, nk, x->data)) {
			out[n].events = x->events & NEST_EVENTS;
			out[n].data = x->data;
			n++;
		}
		if (!(x->events & (EPOLLET | EPOLLONESHOT)))
			continue;
		x->fired = true;
		if (x->events & EPOLLONESHOT) {
			off.events = 0;
			off.data = x->data;
			STAT_INC(shim_syscalls);
			real_epoll_ctl(ep->epfd, EPOLL_CTL_MOD, x->inner, &off);
		}
	}
	return n;
}

/*
 * Kernel-set events, fetched at the moment they are returned, then the
 * nested sets' (which keep a slot: with one slot they take turns).
 */
static int collect_kernel(struct shim_ep *ep, struct epoll_event *out,
			  int room)
{
	struct nest *x = nests_n ? nest_first_ready(ep) : NULL;
	int n = 0, kroom = room;

	if (x && room > 0) {
		x->kernel_turn = !x->kernel_turn;
		if (room > 1 || !x->kernel_turn)
			kroom = room - 1;
	}
	/* No room: still ready next time. */
	if (ep->kready && kroom > 0) {
		bool kick = false;

		ep->kready = false;
		STAT_INC(shim_syscalls);
		n = real_epoll_wait(ep->epfd, out, kroom, 0);
		if (n < 0)
			n = 0;
		n = shim__ep_unkick(ep, out, n, &kick);
	}
	if (x)
		n += collect_nested(ep, out + n, room - n, out, n);
	return n;
}

static int collect_emulated(struct shim_ep *ep, struct epoll_event *out,
			    int max);

/*
 * Move up to max events into out.  Kernel events and the emulated ready
 * list take turns going first, and level-triggered entries rotate to the
 * tail, so nothing starves even with maxevents 1.
 */
static int collect(struct shim_ep *ep, struct epoll_event *out, int max)
{
	int n;

	ep->kfirst = !ep->kfirst;
	if (ep->kfirst) {
		n = collect_kernel(ep, out, max);
		return n + collect_emulated(ep, out + n, max - n);
	}
	n = collect_emulated(ep, out, max);
	return n + collect_kernel(ep, out + n, max - n);
}

static int collect_emulated(struct shim_ep *ep, struct epoll_event *out,
			    int max)
{
	struct shim_reg *r, *next, *stop;
	int n = 0;

	if (max <= 0)
		return 0;
	stop = ep->ready_tail;
	for (r = ep->ready_head; r && n < max; r = next) {
		uint32_t m;
		bool last = r == stop;

		next = r->rnext;
		m = shim__fd_mask(r->f) &
		    (r->events | EPOLLERR | EPOLLHUP);
		if (r->oneshot_fired || !m) {
			shim__reg_unready(r);
		} else {
			out[n].events = m;
			out[n].data = r->data;
			n++;
			shim__reg_unready(r);
			if (r->events & EPOLLONESHOT)
				r->oneshot_fired = true;
			else if (!(r->events & EPOLLET))
				shim__reg_ready(r);	/* to the tail */
		}
		if (last)
			break;
	}
	return n;
}

bool shim__ep_emul_ready(struct shim_ep *ep)
{
	struct shim_reg *r;

	for (r = ep->ready_head; r; r = r->rnext)
		if (!r->oneshot_fired &&
		    (shim__fd_mask(r->f) & (r->events | EPOLLERR | EPOLLHUP)))
			return true;
	return false;
}

static bool ep_has_ready(struct shim_ep *ep)
{
	return ep->kready || shim__ep_emul_ready(ep) ||
	       shim__ep_nest_ready(ep);
}

/*
 * A wait on ep that cannot go through our ring while a nested set or an
 * emulated member (bytes pulled before a release) holds events the kernel
 * cannot see: the kernel's events without blocking, plus the shim's (lock
 * held).  Returns the count; 0 when nothing is ready, and the caller makes
 * the real wait.
 */
int shim__epoll_collect_now(struct shim_ep *ep, struct epoll_event *ev,
			    int maxev)
{
	if (!shim__ep_nest_ready(ep) && !shim__ep_emul_ready(ep))
		return 0;
	ep->kready = true;	/* no poll of ours may watch it: just ask */
	return collect(ep, ev, maxev);
}

/*
 * Mechanism 5: a wait point that carries fewer than two
 * writes on average cannot pay for the ring (an enter costs about two
 * plain syscalls, and a send completion that arrives alone forces a
 * second enter): writes then go straight to the kernel while it has room.
 */
#define ADAPT_MIN_BATCH_X16	(2 * 16)

static void adapt(struct shim_loop *l)
{
	l->send_batch_avg = (l->send_batch_avg * 7 + l->iter_sends * 16) / 8;
	l->iter_sends = 0;
	l->direct_sends = shim.cfg.adaptive &&
			  l->send_batch_avg < ADAPT_MIN_BATCH_X16;
}

static void ts_sub(struct timespec *a, const struct timespec *b)
{
	a->tv_sec -= b->tv_sec;
	a->tv_nsec -= b->tv_nsec;
	if (a->tv_nsec < 0) {
		a->tv_sec--;
		a->tv_nsec += 1000000000L;
	}
}

/* Other loop threads release their own sockets at their next wait. */
static void killfile_check(struct shim_loop *l)
{
	if (!shim.cfg.killfile[0] || (++l->killfile_tick & 255))
		return;
	STAT_INC(shim_syscalls);
	if (access(shim.cfg.killfile, F_OK))
		return;
	shim__say("uringshim: kill file %s found: passthrough\n",
		  shim.cfg.killfile);
	WR(shim.state, SHIM_STATE_KILLED);
	shim__stats_set_state(SHIM_STATE_KILLED, "kill file present");
	shim__release_loop(l);
}

/*
 * The emulated epoll_wait, on the loop thread.  Pending sends, receive
 * re-arms and the wait all go into one io_uring_enter.  Returns the event
 * count or -errno (-EINTR when a signal interrupted the wait, never
 * restarted, as the kernel does).
 */
int shim__epoll_wait(struct shim_loop *l, struct shim_ep *ep,
		     struct epoll_event *ev, int maxev,
		     const struct timespec *ts, const sigset_t *sigmask)
{
	struct timespec end, now, left;
	bool forever = !ts, nowait = ts && !ts->tv_sec && !ts->tv_nsec;
	int n, ret;

	if (ts && !nowait) {
		clock_gettime(CLOCK_MONOTONIC, &end);
		end.tv_sec += ts->tv_sec;
		end.tv_nsec += ts->tv_nsec;
		if (end.tv_nsec >= 1000000000L) {
			end.tv_sec++;
			end.tv_nsec -= 1000000000L;
		}
	}
	for (;;) {
		unsigned int wait_nr;

		shim_lock();
		STAT_INC(wait_points);
		adapt(l);
		killfile_check(l);
		shim__ring_flush_dirty(l);
		if (!ep->kpoll && !ep->kready)
			shim__ring_prep_eppoll(l, ep);
		wait_nr = (nowait || ep_has_ready(ep)) ? 0 : 1;
		shim_unlock();

		if (wait_nr && !forever) {
			clock_gettime(CLOCK_MONOTONIC, &now);
			left = end;
			ts_sub(&left, &now);
			if (left.tv_sec < 0)
				left.tv_sec = left.tv_nsec = 0;
		}
		if (wait_nr && shim.cfg.wait_mode == MODE_WAIT_DIRECT &&
		    l->pending_sqes) {
			/* Mechanism 3 off: submit, then wait separately. */
			shim__ring_submit_wait(l, 0, NULL, NULL);
		}
		ret = shim__ring_submit_wait(l, wait_nr, forever || !wait_nr ?
					     NULL : &left, sigmask);

		shim_lock();
		shim__ring_reap(l);
		n = collect(ep, ev, maxev);
		shim_unlock();
		if (n > 0)
			return n;
		if (ret == -EINTR)
			return -EINTR;
		if (nowait)
			return 0;
		if (!forever) {
			clock_gettime(CLOCK_MONOTONIC, &now);
			if (now.tv_sec > end.tv_sec ||
			    (now.tv_sec == end.tv_sec &&
			     now.tv_nsec >= end.tv_nsec))
				return 0;
		}
		if (ret < 0 && ret != -ETIME && ret != -EAGAIN &&
		    ret != -EBUSY)
			return ret;
	}
}
