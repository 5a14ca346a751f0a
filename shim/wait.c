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
 *
 * The caller's array (or sets) is read only when the shim may answer for
 * one of its fds, into a copy under the fault guard (a bad one is the
 * real call's to refuse), and only what the kernel writes goes back:
 * revents, or the sets' bits up to nfds.
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

/* Whose readiness is fd's?  (shim_revents) */
enum { KERNEL_FD, SHIM_FD, SHIM_INPUT_FD };

/*
 * revents for fd when the shim answers for it: SHIM_FD for an
 * accelerated socket; SHIM_INPUT_FD for a released one still holding
 * pulled bytes or the error the ring took (its input is the shim's, its
 * output the kernel's); KERNEL_FD otherwise.
 */
static int shim_revents(int fd, short want, short *revents)
{
	struct sfd *f = fd_lock(fd);
	int who = KERNEL_FD;

	if (!f)
		return KERNEL_FD;
	if (f->state == FD_ACCEL)
		who = SHIM_FD;
	else if (f->state == FD_DRAINING && (fd_has_input(f) || f->err))
		who = SHIM_INPUT_FD;
	if (who != KERNEL_FD)
		*revents = poll_mask(f, want);
	loop_unlock(f->loop);
	return who;
}

/*
 * poll over a set holding accelerated fds (fds: the shim's own copy):
 * their readiness is the shim's, the others' the kernel's.  The kernel
 * part gets an array of its own (kern), where the shim's entries are -1
 * and every other entry, negative ones included, is the caller's.
 * relevant (select): per entry, the revents bits that make it ready; an
 * entry the kernel keeps reporting only other bits for (an error in an
 * exception set) is not polled again (-2), or the slices would spin.
 */
static int poll_mixed(struct pollfd *fds, nfds_t n, const struct timespec *ts,
		      const sigset_t *sigmask, const short *relevant)
{
	uint64_t end = ts ? mono_ns() + ts->tv_sec * 1000000000ull +
			    ts->tv_nsec : 0;
	uint64_t spin_end = spin_stop(end);
	unsigned long gen = shim__sig_gen;
	struct pollfd stack[16], *kern = stack;
	bool forever = !ts;
	int ret, pass;
	nfds_t i;

	if (n > ARRAY_SIZE(stack)) {
		kern = malloc(n * sizeof(*kern));
		if (!kern)
			return -ENOMEM;
	}
	for (pass = 0;; pass++) {
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
			short re = 0;
			int who;

			if (!relevant || kern[i].fd != -2 || !pass)
				kern[i] = fds[i];
			fds[i].revents = 0;
			if (fds[i].fd < 0)
				continue;
			who = shim_revents(fds[i].fd, fds[i].events, &re);
			if (who != KERNEL_FD) {
				if (who == SHIM_FD)
					kern[i].fd = -1;
				fds[i].revents = relevant ? re & relevant[i] :
							    re;
				ready += fds[i].revents != 0;
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
		kernel = REAL(ppoll)(kern, n, &slice, sigmask);
		if (kernel < 0) {
			ret = -errno;
			break;
		}
		if (kernel || ready) {
			ready = 0;
			for (i = 0; i < n; i++) {
				short re = 0;
				int who = fds[i].fd < 0 ? KERNEL_FD :
					  shim_revents(fds[i].fd,
						       fds[i].events, &re);

				if (who == SHIM_FD)
					fds[i].revents = re;
				else if (who == SHIM_INPUT_FD)
					fds[i].revents = re | kern[i].revents;
				else if (fds[i].fd < 0 || fdtab_fd(fds[i].fd))
					fds[i].revents = kern[i].revents;
				else
					fds[i].revents = kern[i].revents |
						ep_poll_extra(fds[i].fd,
							      fds[i].events);
				if (relevant) {
					if (who == KERNEL_FD && kern[i].revents &&
					    !(kern[i].revents & relevant[i]))
						kern[i].fd = -2;
					fds[i].revents &= relevant[i];
				}
				ready += fds[i].revents != 0;
			}
			if (ready) {
				ret = ready;
				break;
			}
		}
		if (!forever && !left_ns) {
			ret = 0;
			break;
		}
		if (shim__sig_gen != gen && spin_end) {
			ret = -EINTR;	/* a handler ran while we spun */
			break;
		}
	}
	if (kern != stack)
		free(kern);
	return ret;
}

/* May the shim answer for one of the caller's fds at all? */
static bool may_own(void)
{
	return !shim__depth && RD(shim.eps_known);
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

/* Entries a poll copies onto the stack; more are malloc'd. */
#define POLL_STACK	32
/* No RLIMIT_NOFILE reaches this (fs.nr_open's ceiling): EINVAL. */
#define POLL_NFDS_MAX	(1UL << 30)

/*
 * poll/ppoll: the caller's array is read into a copy, and only the copy
 * is worked on: the caller's entries keep their fd and events fields,
 * negative entries get revents 0, and revents go back entry by entry,
 * also after a signal (do_sys_poll), stopping at the first that cannot
 * be written (EFAULT).  nfds above RLIMIT_NOFILE is the kernel's ppoll's
 * to refuse, here or in the real call; so is an unreadable array.
 */
int wait_poll(struct pollfd *ufds, nfds_t n, const struct timespec *ts,
	      const sigset_t *sigmask, bool *handled)
{
	struct pollfd stack[POLL_STACK], *fds = stack;
	int ret = 0;
	nfds_t i;

	loop_flush_before_block();
	*handled = false;
	if (!may_own() || n > POLL_NFDS_MAX)
		return 0;
	if (n > POLL_STACK && !(fds = malloc(n * sizeof(*fds))))
		return 0;
	if (!shim__ucopy(fds, ufds, n * sizeof(*fds)) || !any_owned(fds, n))
		goto out;
	*handled = true;
	ret = poll_mixed(fds, n, ts, sigmask, NULL);
	for (i = 0; (ret >= 0 || ret == -EINTR) && i < n; i++)
		if (!shim__ucopy(UFIELD(UELEM(ufds, struct pollfd, i),
				       struct pollfd, revents),
				&fds[i].revents, sizeof(fds[i].revents)))
			ret = -EFAULT;
out:
	if (fds != stack)
		free(fds);
	return ret;
}

#define LONG_BITS	(8 * (int)sizeof(long))

static bool bit_get(const unsigned long *set, int fd)
{
	return set && (set[fd / LONG_BITS] >> (fd % LONG_BITS) & 1);
}

/* What select asks of each set: POLLIN_SET, POLLOUT_SET, POLLEX_SET. */
static const short set_events[3] = { POLLIN, POLLOUT, POLLPRI };
static const short set_bits[3] = {
	POLLIN | POLLRDNORM | POLLRDBAND | POLLHUP | POLLERR,
	POLLOUT | POLLWRNORM | POLLWRBAND | POLLERR,
	POLLPRI,
};

/*
 * select/pselect through poll_mixed, for sets holding an fd of ours
 * (core_sys_select): nfds capped at the kernel's fd table, the longs of
 * each set up to it read and written back, a set bit of a closed fd is
 * EBADF, the count is of bits set.  Sets of any size: a caller may pass
 * more than FD_SETSIZE.
 */
static int select_mixed(int n, unsigned long *set[3], size_t bytes,
			fd_set *uset[3], const struct timespec *ts,
			const sigset_t *sigmask)
{
	struct pollfd *pfd;
	short *relevant;
	nfds_t np = 0, i;
	int ret, count = 0, fd, k;

	for (fd = 0; fd < n; fd++)
		np += bit_get(set[0], fd) || bit_get(set[1], fd) ||
		      bit_get(set[2], fd);
	pfd = calloc(np ? np : 1, sizeof(*pfd) + sizeof(*relevant));
	if (!pfd)
		return -ENOMEM;
	relevant = (short *)(pfd + (np ? np : 1));
	for (fd = 0, i = 0; fd < n; fd++) {
		short ev = 0, rel = POLLNVAL;	/* closed: EBADF */

		for (k = 0; k < 3; k++)
			if (bit_get(set[k], fd)) {
				ev |= set_events[k];
				rel |= set_bits[k];
			}
		if (!ev)
			continue;
		relevant[i] = rel;
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
		fd = pfd[i].fd;
		for (k = 0; k < 3; k++) {
			if (!set[k] || !(pfd[i].events & set_events[k]) ||
			    !(pfd[i].revents & set_bits[k]))
				continue;
			set[k][fd / LONG_BITS] |= 1UL << (fd % LONG_BITS);
			count++;
		}
	}
	/* In order, stopping at the first that faults (set_fd_set). */
	ret = count;
	for (k = 0; k < 3 && ret >= 0; k++)
		if (set[k] && bytes && !shim__ucopy(uset[k], set[k], bytes))
			ret = -EFAULT;
out:
	free(pfd);
	return ret;
}

int wait_select(int nfds, fd_set *r, fd_set *w, fd_set *e,
		const struct timespec *ts, const sigset_t *sigmask,
		bool *handled)
{
	fd_set *uset[3] = { r, w, e };
	unsigned long stack[3][FD_SETSIZE / LONG_BITS], *set[3] = { NULL };
	unsigned long *buf = &stack[0][0];
	bool held = false, mine = false;
	int ret = 0, n, fd, k;
	size_t bytes;

	loop_flush_before_block();
	*handled = false;
	if (!may_own() || nfds < 0)
		return 0;
	/* The kernel reads no bit beyond its fd table. */
	n = shim__fd_table_cap(nfds);
	bytes = (size_t)(n + LONG_BITS - 1) / LONG_BITS * sizeof(long);
	if (n > FD_SETSIZE && !(buf = malloc(3 * bytes)))
		return 0;
	for (k = 0; k < 3; k++) {
		if (!uset[k])
			continue;
		set[k] = (unsigned long *)((char *)buf + k * bytes);
		if (bytes && !shim__ucopy(set[k], uset[k], bytes))
			goto out;	/* the real call's EFAULT */
	}
	for (fd = 0; fd < n; fd++) {
		bool rd = bit_get(set[0], fd), wr = bit_get(set[1], fd);

		if (!rd && !wr && !bit_get(set[2], fd))
			continue;
		if ((rd || wr) && fdtab_ep(fd))
			held |= ep_polled(fd, rd ? POLLIN : 0);
		mine |= fdtab_fd(fd) != NULL;
	}
	if (!held && !mine && !loop_has_work(shim__loop))
		goto out;
	*handled = true;
	ret = select_mixed(n, set, bytes, uset, ts, sigmask);
out:
	if (buf != &stack[0][0])
		free(buf);
	return ret;
}
