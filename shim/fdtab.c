/*
 * fdtab.c - fd number -> state the shim owns.
 *
 * Two pointer arrays indexed by fd, sized from RLIMIT_NOFILE at init, zero
 * pages touched only where used.  A NULL slot means "pure
 * passthrough": that one load is all a non-accelerated fd costs.  Slots
 * change only under shim.lock; wrappers read them racily first and
 * re-check under the lock.
 */
#include <stdlib.h>
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
	p = calloc(1, 2 * bytes + n);
	if (!p)
		return -ENOMEM;
	shim.eps = (struct shim_ep **)((char *)p + bytes);
	shim.kreg = (uint8_t *)p + 2 * bytes;
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

/* The epoll instance record of epfd, created on first sight. */
struct shim_ep *shim__ep_get_locked(int epfd)
{
	struct shim_ep *ep;

	if (epfd < 0 || epfd >= shim.nfds || !shim.eps)
		return NULL;
	ep = shim.eps[epfd];
	if (!ep) {
		ep = calloc(1, sizeof(*ep));
		if (!ep)
			return NULL;
		ep->epfd = epfd;
		WR(shim.eps[epfd], ep);
	}
	return ep;
}

bool shim__fd_table_has(int fd)
{
	return fd_lookup_racy(fd) != NULL;
}
