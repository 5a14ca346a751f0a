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
 */
#include <stdlib.h>
#include <string.h>
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

/* Kernel-set events, fetched at the moment they are returned. */
static int collect_kernel(struct shim_ep *ep, struct epoll_event *out,
			  int room)
{
	int n;

	if (!ep->kready || room <= 0)
		return 0;	/* still ready next time when no room */
	ep->kready = false;
	STAT_INC(shim_syscalls);
	n = real_epoll_wait(ep->epfd, out, room, 0);
	return n < 0 ? 0 : n;
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
	return ep->kready || shim__ep_emul_ready(ep);
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
