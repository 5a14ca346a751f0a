/*
 * wrap_epoll.c - epoll, poll and select: readiness and wait points.
 *
 * Thin: validate, hand to the emulation (epoll.c, wait.c), convert.  The
 * three epoll_wait entry points share one path (wait_common), which makes
 * the real call with the caller's own arguments when the shim does not
 * serve the wait.
 */
#include <limits.h>

#include "args.h"

SHIM_EXPORT int epoll_create(int size)
{
	int ret;

	STAT_CALL(epoll_create);
	ret = REAL(epoll_create)(size);
	ep_note_created(ret);
	return ret;
}

SHIM_EXPORT int epoll_create1(int flags)
{
	int ret;

	STAT_CALL(epoll_create1);
	ret = REAL(epoll_create1)(flags);
	ep_note_created(ret);
	return ret;
}

SHIM_EXPORT int epoll_ctl(int epfd, int op, int fd, struct epoll_event *uev)
{
	struct epoll_event ev;

	STAT_CALL(epoll_ctl);
	if (!shim__ready() || shim__depth)
		return REAL(epoll_ctl)(epfd, op, fd, uev);
	/* do_epoll_ctl reads the event first, for every op but DEL. */
	if (op == EPOLL_CTL_DEL)
		return to_libc(ep_ctl(epfd, op, fd, NULL));
	if (!args_get(&ev, uev, sizeof(ev)))
		return to_libc(-EFAULT);
	return to_libc(ep_ctl(epfd, op, fd, &ev));
}

/* How the real call is made when the shim does not serve a wait. */
enum wait_kind { WAIT_MS, WAIT_PMS, WAIT_TS };

static int real_wait(enum wait_kind kind, int epfd, struct epoll_event *ev,
		     int maxev, int ms, const struct timespec *ts,
		     const sigset_t *sigmask)
{
	switch (kind) {
	case WAIT_MS:
		return REAL(epoll_wait)(epfd, ev, maxev, ms);
	case WAIT_PMS:
		return REAL(epoll_pwait)(epfd, ev, maxev, ms, sigmask);
	default:
		return REAL(epoll_pwait2)(epfd, ev, maxev, ts, sigmask);
	}
}

/*
 * URINGSHIM_SPIN_US without the ring (URINGSHIM_SPIN_RING=0, or io_uring
 * refused): zero-timeout waits until something is ready, a handler ran
 * (EINTR, as the sleeping wait would say), or stop passes.  Returns the
 * events, -1 with errno, or 0 when the spin ran out.
 */
static int plain_spin(enum wait_kind kind, int epfd, struct epoll_event *ev,
		      int maxev, const sigset_t *sigmask, uint64_t stop)
{
	static const struct timespec zero;
	unsigned long gen = shim__sig_gen;
	uint64_t t0 = mono_ns(), now;
	int n;

	do {
		n = real_wait(kind, epfd, ev, maxev, 0, &zero, sigmask);
		if (n)
			break;
		if (shim__sig_gen != gen) {
			errno = EINTR;
			n = -1;
			break;
		}
		cpu_relax();
	} while ((now = mono_ns()) < stop);
	STAT_ADD(spin_ns, mono_ns() - t0);
	if (n > 0)
		STAT_INC(spin_hits);
	else if (!n)
		STAT_INC(spin_misses);
	return n;
}

static bool spin_plain_on(void)
{
	int state = RD(shim.state);

	return shim__cfg.spin_ns && !shim__depth &&
	       state != SHIM_STATE_DISABLED && state != SHIM_STATE_KILLED;
}

/*
 * The events of a wait the shim serves are collected into a buffer of
 * its own, then copied to the caller's array under the guard: the kernel
 * writes them one by one and stops at the first slot it cannot write,
 * answering the count so far, or EFAULT with the event kept.  Events past
 * such a slot go back (ep_unwait).  At most BOUNCE_MAX per wait.
 */
#define BOUNCE_MAX	256

static int events_out(int epfd, struct epoll_event *uev,
		      const struct epoll_event *kev, int n)
{
	int k;

	if (likely(args_put(uev, kev, n * sizeof(*kev))))
		return n;
	for (k = 0; k < n; k++)
		if (!args_put(UELEM(uev, struct epoll_event, k), &kev[k],
			      sizeof(kev[k])))
			break;
	ep_unwait(epfd, kev + k, n - k);
	return k ? k : -EFAULT;
}

/*
 * The caller's arguments as the kernel checks them: the timeout (EFAULT,
 * EINVAL), the mask (EFAULT), maxevents (EINVAL) and the array's range
 * (EFAULT), in that order.  false: a bad one, which the real call
 * answers.  Copies of the timeout and the mask go to *kts and *kmask.
 */
static bool wait_args_ok(enum wait_kind kind, struct epoll_event *ev,
			 int maxev, int ms, const struct timespec **ts,
			 struct timespec *kts, const sigset_t **sigmask,
			 sigset_t *kmask)
{
	if (kind != WAIT_TS) {
		*ts = NULL;
		if (ms >= 0) {
			kts->tv_sec = ms / 1000;
			kts->tv_nsec = (long)(ms % 1000) * 1000000L;
			*ts = kts;
		}
	} else if (*ts) {
		/* A disabled shim arms no guard (the copy's first use). */
		if (!shim__ready() || args_timespec(*ts, kts))
			return false;
		*ts = kts;
	}
	if (*sigmask) {
		if (!shim__ready() || args_sigset(*sigmask, kmask))
			return false;
		*sigmask = kmask;
	}
	return maxev > 0 && maxev <= SHIM_EP_MAX_EVENTS &&
	       args_range_ok(ev, (size_t)maxev * sizeof(*ev));
}

static int wait_common(enum wait_kind kind, int epfd, struct epoll_event *ev,
		       int maxev, int ms, const struct timespec *uts,
		       const sigset_t *usigmask)
{
	struct epoll_event kev[BOUNCE_MAX];
	const struct timespec *ts = uts;
	const sigset_t *sigmask = usigmask;
	struct timespec kts, left;
	uint64_t end = 0;
	bool handled, kwaited, again, spin = spin_plain_on(), ok;
	sigset_t kmask;
	int ret;

	/* Only once the shim may serve it are the caller's arguments read. */
	ok = !shim__depth &&
	     wait_args_ok(kind, ev, maxev, ms, &ts, &kts, &sigmask, &kmask);
	if (ok && ts)
		end = mono_ns() + ts->tv_sec * 1000000000ull + ts->tv_nsec;
	for (;;) {
		kwaited = false;
		if (ok) {
			ret = ep_wait(epfd, kev, maxev < BOUNCE_MAX ? maxev :
				      BOUNCE_MAX, ts, sigmask, &handled,
				      &kwaited);
			if (handled)
				return to_libc(ret > 0 ? events_out(epfd, ev,
								    kev, ret) :
					       ret);
		}
		loop_flush_before_block();
		STAT_INC(passthrough);
		ret = 0;
		if (spin && ok && (!ts || ts->tv_sec || ts->tv_nsec)) {
			uint64_t stop = shim__cfg.spin_ns < 0 ? UINT64_MAX :
					mono_ns() + shim__cfg.spin_ns;

			spin = false;
			ret = plain_spin(kind, epfd, ev, maxev, sigmask,
					 end && end < stop ? end : stop);
			if (!ret && end && mono_ns() >= end)
				return 0;
		}
		if (!ret) {
			if (ts && end) {
				/* What is left of the caller's timeout. */
				uint64_t now = mono_ns(), rest = now < end ?
								end - now : 0;

				left.tv_sec = rest / 1000000000ull;
				left.tv_nsec = rest % 1000000000ull;
				ts = &left;
				ms = (rest + 999999) / 1000000;
			}
			ret = real_wait(kind, epfd, ev, maxev, ms,
					ts == &left ? ts : uts, usigmask);
		}
		ret = ep_wait_done(epfd, kwaited, ev, ret, &again);
		if (!again)
			return ret;
		/* Only the shim's kick ended it: wait again, for what's left. */
		if (end && mono_ns() >= end)
			return 0;
	}
}

SHIM_EXPORT int epoll_wait(int epfd, struct epoll_event *ev, int maxev,
			   int timeout)
{
	STAT_CALL(epoll_wait);
	return wait_common(WAIT_MS, epfd, ev, maxev, timeout, NULL, NULL);
}

SHIM_EXPORT int epoll_pwait(int epfd, struct epoll_event *ev, int maxev,
			    int timeout, const sigset_t *sigmask)
{
	STAT_CALL(epoll_pwait);
	return wait_common(WAIT_PMS, epfd, ev, maxev, timeout, NULL,
			   sigmask);
}

SHIM_EXPORT int epoll_pwait2(int epfd, struct epoll_event *ev, int maxev,
			     const struct timespec *timeout,
			     const sigset_t *sigmask)
{
	STAT_CALL(epoll_pwait2);
	return wait_common(WAIT_TS, epfd, ev, maxev, 0, timeout, sigmask);
}

/* ---- poll / select ---- */

/* What is left of timeout ms after a spin that started at t0. */
static int ms_left(int ms, uint64_t t0)
{
	uint64_t spent = (mono_ns() - t0) / 1000000;

	if (ms < 0)
		return ms;
	return spent >= (uint64_t)ms ? 0 : ms - (int)spent;
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
 * poll and __poll_chk: the shim's wait, or a spin first.  Returns the
 * answer, or INT_MIN with *timeout what is left for the real call.
 */
static int poll_ms(struct pollfd *fds, nfds_t n, int *timeout)
{
	struct timespec ts;
	bool handled;
	int ret;

	ret = wait_poll(fds, n, ms_to_ts(*timeout, &ts), NULL, &handled);
	if (handled)
		return to_libc(ret);
	STAT_INC(passthrough);
	if (spin_plain_on() && *timeout) {
		uint64_t t0 = mono_ns();

		ret = wait_poll_spin(fds, n, ms_to_ts(*timeout, &ts), NULL);
		if (ret)
			return to_libc(ret);
		*timeout = ms_left(*timeout, t0);
	}
	return INT_MIN;
}

SHIM_EXPORT int poll(struct pollfd *fds, nfds_t n, int timeout)
{
	int ret;

	STAT_CALL(poll);
	ret = poll_ms(fds, n, &timeout);
	return ret != INT_MIN ? ret : REAL(poll)(fds, n, timeout);
}

/*
 * The real __poll_chk, not poll, for what the shim does not serve: with a
 * sanitizer, poll is its interceptor, which reads a bad array itself.
 */
SHIM_EXPORT int __poll_chk(struct pollfd *fds, nfds_t n, int timeout,
			   size_t fdslen)
{
	int ret;

	STAT_CALL(__poll_chk);
	if (fdslen / sizeof(*fds) < n)
		return REAL(__poll_chk)(fds, n, timeout, fdslen);
	ret = poll_ms(fds, n, &timeout);
	return ret != INT_MIN ? ret :
	       REAL(__poll_chk)(fds, n, timeout, fdslen);
}

/*
 * The timeout (EFAULT, EINVAL), then the mask (EFAULT), as the kernel
 * reads them, into copies; false: a bad one, the real call's to answer.
 */
static bool wait_ts_mask(const struct timespec **ts, struct timespec *kts,
			 const sigset_t **sigmask, sigset_t *kmask)
{
	if (*ts) {
		if (args_timespec(*ts, kts))
			return false;
		*ts = kts;
	}
	if (*sigmask) {
		if (args_sigset(*sigmask, kmask))
			return false;
		*sigmask = kmask;
	}
	return true;
}

SHIM_EXPORT int ppoll(struct pollfd *fds, nfds_t n, const struct timespec *uts,
		      const sigset_t *usigmask)
{
	const struct timespec *ts = uts;
	const sigset_t *sigmask = usigmask;
	struct timespec kts;
	sigset_t kmask;
	bool handled, checked;
	int ret;

	STAT_CALL(ppoll);
	checked = shim__ready() && !shim__depth &&
		  wait_ts_mask(&ts, &kts, &sigmask, &kmask);
	if (checked) {
		ret = wait_poll(fds, n, ts, sigmask, &handled);
		if (handled)
			return to_libc(ret);
	} else {
		loop_flush_before_block();
	}
	STAT_INC(passthrough);
	/* Only checked arguments are read by the spin. */
	if (checked && spin_plain_on() && (!ts || ts->tv_sec || ts->tv_nsec)) {
		uint64_t t0 = mono_ns(), want, spent, rest;
		struct timespec left;

		ret = wait_poll_spin(fds, n, ts, sigmask);
		if (ret)
			return to_libc(ret);
		if (ts) {
			want = ts->tv_sec * 1000000000ull + ts->tv_nsec;
			spent = mono_ns() - t0;
			rest = spent < want ? want - spent : 0;
			left.tv_sec = rest / 1000000000ull;
			left.tv_nsec = rest % 1000000000ull;
			return REAL(ppoll)(fds, n, &left, usigmask);
		}
	}
	return REAL(ppoll)(fds, n, uts, usigmask);
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
	bool handled;
	long left;
	int ret;

	STAT_CALL(select);
	if (!shim__ready() || shim__depth)
		goto real;
	/*
	 * glibc reads the timeval itself, refuses a negative one, carries
	 * surplus microseconds into seconds, and writes the time left back
	 * (a timeval it cannot read or write faults there: the real call
	 * meets that as plain libc would).
	 */
	if (tv && (!args_get(&k, tv, sizeof(k)) ||
		   !args_put(tv, &k, sizeof(k)) || k.tv_sec < 0 ||
		   k.tv_usec < 0))
		goto real;
	if (tv) {
		ts.tv_sec = k.tv_sec + k.tv_usec / 1000000;
		ts.tv_nsec = k.tv_usec % 1000000 * 1000L;
		clock_gettime(CLOCK_MONOTONIC, &t0);
	}
	ret = wait_select(nfds, r, w, e, tv ? &ts : NULL, NULL, &handled);
	if (!handled)
		goto real;
	if (tv && (ts.tv_sec || ts.tv_nsec)) {
		clock_gettime(CLOCK_MONOTONIC, &t1);
		left = ts_ns(&ts) - (ts_ns(&t1) - ts_ns(&t0));
		left = left > 0 ? left : 0;
		k.tv_sec = left / 1000000000L;
		k.tv_usec = left % 1000000000L / 1000;
		args_put(tv, &k, sizeof(k));
	}
	return to_libc(ret);
real:
	loop_flush_before_block();
	STAT_INC(passthrough);
	return REAL(select)(nfds, r, w, e, tv);
}

SHIM_EXPORT int pselect(int nfds, fd_set *r, fd_set *w, fd_set *e,
			const struct timespec *ts, const sigset_t *sigmask)
{
	const struct timespec *kts_p = ts;
	const sigset_t *kmask_p = sigmask;
	struct timespec kts;
	sigset_t kmask;
	bool handled;
	int ret;

	STAT_CALL(pselect);
	if (shim__ready() && !shim__depth &&
	    wait_ts_mask(&kts_p, &kts, &kmask_p, &kmask)) {
		ret = wait_select(nfds, r, w, e, kts_p, kmask_p, &handled);
		if (handled)
			return to_libc(ret);
	} else {
		loop_flush_before_block();
	}
	STAT_INC(passthrough);
	return REAL(pselect)(nfds, r, w, e, ts, sigmask);
}
