/*
 * fdtab.c - fd number -> state the shim owns.
 *
 * Two pointer arrays indexed by fd, sized from RLIMIT_NOFILE at init, zero
 * pages touched only where used.  A NULL slot means "pure
 * passthrough": that one load is all a non-accelerated fd costs.  Slots
 * change only under shim.lock; wrappers read them racily first and
 * re-check under the lock.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "internal.h"

#define FDTAB_MAX	(1 << 20)

int shim__fdtab_init(void)
{
	struct rlimit rl;
	size_t n = 65536, bytes;
	void *p;

	if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur != RLIM_INFINITY &&
	    rl.rlim_cur > n)
		n = rl.rlim_cur;
	if (n > FDTAB_MAX)
		n = FDTAB_MAX;
	bytes = n * sizeof(void *);
	/*
	 * calloc, not mmap: big enough to come from fresh zero pages
	 * anyway, and leak checkers then see the structs it points to.
	 */
	p = calloc(1, 2 * bytes + 2 * n);
	if (!p)
		return -ENOMEM;
	shim.eps = (struct shim_ep **)((char *)p + bytes);
	shim.kreg = (uint8_t *)p + 2 * bytes;
	shim.kwait = shim.kreg + n;
	shim.nfds = n;
	__atomic_store_n(&shim.fds, (struct shim_fd **)p, __ATOMIC_RELEASE);
	return 0;
}

struct shim_fd *shim__fd_get_locked(int fd)
{
	if (fd < 0 || fd >= shim.nfds || !shim.fds)
		return NULL;
	return shim.fds[fd];
}

/* Is fd an epoll instance?  One readlink, once per record. */
static bool fd_is_epoll(int fd)
{
	static const char want[] = "anon_inode:[eventpoll]";
	char path[32], link[sizeof(want) + 1];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	STAT_INC(shim_syscalls);
	n = readlink(path, link, sizeof(link));
	return n == (ssize_t)sizeof(want) - 1 && !memcmp(link, want, n);
}

/*
 * The epoll instance record of epfd, created on first sight.  known: the
 * caller just made epfd with epoll_create*; otherwise a new record is
 * made only for a real epoll fd, so a bogus epfd still gets its error
 * from the kernel.
 */
struct shim_ep *shim__ep_get_known_locked(int epfd, bool known)
{
	struct shim_ep *ep;

	if (epfd < 0 || epfd >= shim.nfds || !shim.eps)
		return NULL;
	ep = shim.eps[epfd];
	if (!ep) {
		if (!known && !fd_is_epoll(epfd))
			return NULL;
		ep = calloc(1, sizeof(*ep));
		if (!ep)
			return NULL;
		ep->epfd = epfd;
		WR(shim.eps[epfd], ep);
	}
	return ep;
}

struct shim_ep *shim__ep_get_locked(int epfd)
{
	return shim__ep_get_known_locked(epfd, false);
}

bool shim__fd_table_has(int fd)
{
	return fd_lookup_racy(fd) != NULL;
}
