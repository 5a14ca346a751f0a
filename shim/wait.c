/*
 * wait.c - poll and select over a mix of the shim's sockets and the
 * kernel's fds.
 *
 * Accelerated sockets get the shim's readiness, every other fd the
 * kernel's.  The kernel part is polled in slices of at most 1 ms while
 * the calling thread's ring runs, so neither side starves the other.
 * The same path is taken whenever a loop thread would block in poll or
 * select with ring work pending (queued bytes, closes to finish).  An
 * epoll fd polled here gets the kernel's readiness only (epoll.c), plus
 * POLLIN while a member still holds bytes the kernel cannot see.
 */
#include <stdlib.h>
#include <string.h>

#include "core.h"

/*
 * When a spinning wait (URINGSHIM_SPIN_US) that would end at end (0: never)
 * must stop spinning and sleep; 0 when it does not spin.
 */
static uint64_t spin_stop(uint64_t end)
{
	uint64_t stop;

	if (!shim__cfg.spin_ns)
		return 0;
	stop = shim__cfg.spin_ns < 0 ? UINT64_MAX :
	       mono_ns() + shim__cfg.spin_ns;
	return end && end < stop ? end : stop;
}

/*
 * A plain poll that would block, spinning first: zero-timeout ppolls
 * until something is ready, a handler ran (-EINTR), or the spin ends (0).
 */
int wait_poll_spin(struct pollfd *fds, nfds_t n, const struct timespec *ts,
		   const sigset_t *sigmask)
{
	static const struct timespec zero;
	uint64_t end = ts ? mono_ns() + ts->tv_sec * 1000000000ull +
			    ts->tv_nsec : 0;
	uint64_t stop = spin_stop(end), t0 = mono_ns();
	unsigned long gen = shim__sig_gen;
	int ret;

	if (!stop || (ts && !ts->tv_sec && !ts->tv_nsec))
		return 0;
	do {
		ret = REAL(ppoll)(fds, n, &zero, sigmask);
		if (ret)
			break;
		if (shim__sig_gen != gen) {
			ret = -EINTR;
			break;
		}
		cpu_relax();
	} while (mono_ns() < stop);
	if (ret < 0 && ret != -EINTR)
		ret = -errno;
	STAT_ADD(spin_ns, mono_ns() - t0);
	if (ret > 0)
		STAT_INC(spin_hits);
	else if (!ret)
		STAT_INC(spin_misses);
	return ret;
}

/* The shim's answer for fd (its loop locked by the caller), or -1. */
static short poll_mask(struct sfd *f, short want)
{
	uint32_t m = fd_events(f);
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
 * revents for fd when the shim answers for it; false when the kernel
 * does (not ours, or a released socket with nothing held).
 */
static bool shim_revents(int fd, short want, short *revents)
{
	struct sfd *f = fd_lock(fd);
	bool ours = false;

	if (!f)
		return false;
	if (f->state == FD_ACCEL ||
	    (f->state == FD_DRAINING && fd_has_input(f))) {
		*revents = poll_mask(f, want);
		ours = true;
	}
	loop_unlock(f->loop);
	return ours;
}

/*
 * poll over a set holding accelerated fds: the shim's entries are
 * answered by the shim, and hidden from the kernel's ppoll by a negative
 * fd, which the kernel skips (and we restore).
 */
static int poll_mixed(struct pollfd *fds, nfds_t n, const struct timespec *ts,
		      const sigset_t *sigmask)
{
	uint64_t end = ts ? mono_ns() + ts->tv_sec * 1000000000ull +
			    ts->tv_nsec : 0;
	uint64_t spin_end = spin_stop(end);
	unsigned long gen = shim__sig_gen;
	bool forever = !ts;
	nfds_t i;

	for (;;) {
		struct timespec slice = { 0, 0 };
		uint64_t left_ns = 1000000;
		int ready = 0, kernel;

		if (shim__loop) {
			loop_lock(shim__loop);
			fd_spill_holding(shim__loop);
			loop_turn(shim__loop, 0, NULL, NULL);
			loop_unlock(shim__loop);
		}
		for (i = 0; i < n; i++) {
			short re;

			if (fds[i].fd < 0)
				continue;
			if (shim_revents(fds[i].fd, fds[i].events, &re)) {
				fds[i].revents = re;
				ready += re != 0;
			} else if (ep_poll_extra(fds[i].fd, fds[i].events)) {
				ready++;
			}
		}
		if (!forever) {
			uint64_t now = mono_ns();

			left_ns = now < end ? end - now : 0;
			if (left_ns > 1000000)
				left_ns = 1000000;
		}
		/* Spinning (URINGSHIM_SPIN_US): zero slices until it ends. */
		slice.tv_nsec = ready || mono_ns() < spin_end ? 0 : left_ns;
		/* Kernel fds: poll them with accelerated ones masked out. */
		for (i = 0; i < n; i++)
			if (fds[i].fd >= 0 && fdtab_fd(fds[i].fd))
				fds[i].fd = -fds[i].fd - 2;
		kernel = REAL(ppoll)(fds, n, &slice, sigmask);
		for (i = 0; i < n; i++)
			if (fds[i].fd <= -2)
				fds[i].fd = -fds[i].fd - 2;
		if (kernel < 0)
			return -errno;
		if (kernel || ready) {
			/* ppoll cleared the masked entries' revents. */
			ready = 0;
			for (i = 0; i < n; i++) {
				short re;

				if (fds[i].fd >= 0 &&
				    shim_revents(fds[i].fd, fds[i].events,
						 &re))
					fds[i].revents = re;
				else if (fds[i].fd >= 0)
					fds[i].revents |= ep_poll_extra(
						fds[i].fd, fds[i].events);
				ready += fds[i].revents != 0;
			}
			if (ready)
				return ready;
		}
		if (!forever && !left_ns)
			return 0;
		if (shim__sig_gen != gen && spin_end)
			return -EINTR;	/* a handler ran while we spun */
	}
}

static bool any_owned(const struct pollfd *fds, nfds_t n)
{
	bool held = false;
	nfds_t i;

	for (i = 0; i < n; i++)
		if (fdtab_ep(fds[i].fd))
			held |= ep_polled(fds[i].fd, fds[i].events);
	if (held)
		return true;
	/* A loop thread must keep its ring moving while it blocks here. */
	if (loop_has_work(shim__loop))
		return true;
	if (!RD(shim.owned_n))
		return false;
	for (i = 0; i < n; i++)
		if (fdtab_fd(fds[i].fd))
			return true;
	return false;
}

int wait_poll(struct pollfd *fds, nfds_t n, const struct timespec *ts,
	      const sigset_t *sigmask, bool *handled)
{
	loop_flush_before_block();
	*handled = !shim__depth && any_owned(fds, n);
	if (!*handled)
		return 0;
	return poll_mixed(fds, n, ts, sigmask);
}

static bool sets_owned(int nfds, fd_set *r, fd_set *w, fd_set *e)
{
	bool held = false;
	int fd;

	for (fd = 0; fd < nfds; fd++) {
		bool rd = r && FD_ISSET(fd, r);

		if ((rd || (w && FD_ISSET(fd, w))) && fdtab_ep(fd))
			held |= ep_polled(fd, rd ? POLLIN : 0);
	}
	if (held || loop_has_work(shim__loop))
		return true;
	if (!RD(shim.owned_n))
		return false;
	for (fd = 0; fd < nfds; fd++)
		if (((r && FD_ISSET(fd, r)) || (w && FD_ISSET(fd, w)) ||
		     (e && FD_ISSET(fd, e))) && fdtab_fd(fd))
			return true;
	return false;
}

/* select through poll_mixed; only reached with accelerated fds inside. */
static int select_mixed(int nfds, fd_set *r, fd_set *w, fd_set *e,
			const struct timespec *ts, const sigset_t *sigmask)
{
	struct pollfd *pfd = calloc(nfds ? nfds : 1, sizeof(*pfd));
	nfds_t n = 0, i;
	int ret, count = 0, fd;

	if (!pfd)
		return -ENOMEM;
	for (fd = 0; fd < nfds; fd++) {
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
		goto out;
	for (fd = 0; fd < nfds; fd++) {
		if (r)
			FD_CLR(fd, r);
		if (w)
			FD_CLR(fd, w);
		if (e)
			FD_CLR(fd, e);
	}
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
	ret = count;
out:
	free(pfd);
	return ret;
}

int wait_select(int nfds, fd_set *r, fd_set *w, fd_set *e,
		const struct timespec *ts, const sigset_t *sigmask,
		bool *handled)
{
	loop_flush_before_block();
	*handled = !shim__depth && sets_owned(nfds, r, w, e);
	if (!*handled)
		return 0;
	return select_mixed(nfds, r, w, e, ts, sigmask);
}
