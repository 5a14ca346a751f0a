/*
 * wrap_epoll.c - epoll, poll and select: readiness and wait points.
 *
 * Thin: validate, hand to the emulation (epoll.c, wait.c), convert.  The
 * three epoll_wait entry points share one path (wait_common), which makes
 * the real call with the caller's own arguments when the shim does not
 * serve the wait.
 */
#include <limits.h>

#include "core.h"

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

SHIM_EXPORT int epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
	STAT_CALL(epoll_ctl);
	return to_libc(ep_ctl(epfd, op, fd, ev));
}

/* How the real call is made when the shim does not serve a wait. */
enum wait_kind { WAIT_MS, WAIT_PMS, WAIT_TS };

static int wait_common(enum wait_kind kind, int epfd, struct epoll_event *ev,
		       int maxev, int ms, const struct timespec *ts,
		       const sigset_t *sigmask)
{
	struct timespec ms_ts, left;
	uint64_t end = 0;
	bool handled, kwaited, again;
	int ret;

	if (kind != WAIT_TS) {
		ts = NULL;
		if (ms >= 0) {
			ms_ts.tv_sec = ms / 1000;
			ms_ts.tv_nsec = (long)(ms % 1000) * 1000000L;
			ts = &ms_ts;
		}
	}
	if (ts && ts->tv_nsec >= 0 && ts->tv_nsec < 1000000000L &&
	    ts->tv_sec >= 0)
		end = mono_ns() + ts->tv_sec * 1000000000ull + ts->tv_nsec;
	for (;;) {
		kwaited = false;
		if (maxev > 0 && ev && (!ts || end)) {
			ret = ep_wait(epfd, ev, maxev, ts, sigmask, &handled,
				      &kwaited);
			if (handled)
				return to_libc(ret);
		}
		loop_flush_before_block();
		STAT_INC(passthrough);
		switch (kind) {
		case WAIT_MS:
			ret = REAL(epoll_wait)(epfd, ev, maxev, ms);
			break;
		case WAIT_PMS:
			ret = REAL(epoll_pwait)(epfd, ev, maxev, ms, sigmask);
			break;
		default:
			ret = REAL(epoll_pwait2)(epfd, ev, maxev, ts, sigmask);
			break;
		}
		ret = ep_wait_done(epfd, kwaited, ev, ret, &again);
		if (!again)
			return ret;
		/* Only the shim's kick ended it: wait again, for what's left. */
		if (ts && (ts->tv_sec || ts->tv_nsec)) {
			uint64_t now = mono_ns(), rest = now < end ?
							end - now : 0;

			left.tv_sec = rest / 1000000000ull;
			left.tv_nsec = rest % 1000000000ull;
			ts = &left;
			ms = (rest + 999999) / 1000000;
			if (!rest)
				return 0;
		}
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

static struct timespec *ms_to_ts(int ms, struct timespec *ts)
{
	if (ms < 0)
		return NULL;
	ts->tv_sec = ms / 1000;
	ts->tv_nsec = (long)(ms % 1000) * 1000000L;
	return ts;
}

SHIM_EXPORT int poll(struct pollfd *fds, nfds_t n, int timeout)
{
	struct timespec ts;
	bool handled;
	int ret;

	STAT_CALL(poll);
	ret = wait_poll(fds, n, ms_to_ts(timeout, &ts), NULL, &handled);
	if (handled)
		return to_libc(ret);
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
	bool handled;
	int ret;

	STAT_CALL(ppoll);
	ret = wait_poll(fds, n, ts, sigmask, &handled);
	if (handled)
		return to_libc(ret);
	STAT_INC(passthrough);
	return REAL(ppoll)(fds, n, ts, sigmask);
}

SHIM_EXPORT int select(int nfds, fd_set *r, fd_set *w, fd_set *e,
		       struct timeval *tv)
{
	struct timespec ts;
	bool handled;
	int ret;

	STAT_CALL(select);
	if (tv) {
		ts.tv_sec = tv->tv_sec;
		ts.tv_nsec = tv->tv_usec * 1000L;
	}
	ret = wait_select(nfds, r, w, e, tv ? &ts : NULL, NULL, &handled);
	if (handled)
		return to_libc(ret);
	STAT_INC(passthrough);
	return REAL(select)(nfds, r, w, e, tv);
}

SHIM_EXPORT int pselect(int nfds, fd_set *r, fd_set *w, fd_set *e,
			const struct timespec *ts, const sigset_t *sigmask)
{
	bool handled;
	int ret;

	STAT_CALL(pselect);
	ret = wait_select(nfds, r, w, e, ts, sigmask, &handled);
	if (handled)
		return to_libc(ret);
	STAT_INC(passthrough);
	return REAL(pselect)(nfds, r, w, e, ts, sigmask);
}
