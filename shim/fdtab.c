/*
 * fdtab.c - fd number -> state the shim owns.
 *
 * Two pointer arrays indexed by fd, sized from RLIMIT_NOFILE at init, zero
 * pages touched only where used.  A NULL slot means "pure
 * passthrough": that one load is all a non-accelerated fd costs.  Slots
 * change only under shim.lock; wrappers read them racily first and
 * re-check under the lock.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

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

int shim__fd_table_size(void)
{
	char buf[2048], *p;
	ssize_t n;
	int fd;

	fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = real_read(fd, buf, sizeof(buf) - 1);
	real_close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	p = strstr(buf, "\nFDSize:");
	return p ? atoi(p + 8) : 0;
}

/*
 * The kernel hands out the lowest free number, and a number the
 * application closed must stay closed until the application itself
 * reuses it (an epoll_ctl on it answers EBADF, not ENOENT): so the shim's
 * own fds take the top 16 numbers of the kernel's fd table as it is.  Not
 * higher: the table would grow past what the application alone makes it,
 * and select() reads as many bits as the table has, so a select with an
 * nfds larger than its sets would read memory it does not without the
 * shim.  When those numbers are taken (an application with that many fds
 * open), the table grows as it would for one more fd of the
 * application's, and a closed number can be met again.
 */
static int table_size;		/* cached FDSize; it only grows */

static int park_base(void)
{
	int size = RD(table_size);

	if (!size) {
		size = shim__fd_table_size();
		if (size <= 0)
			size = 64;	/* NR_OPEN_DEFAULT */
		WR(table_size, size);
	}
	return size - (size / 4 < 16 ? size / 4 : 16);
}

int shim__fd_dup_private(int fd)
{
	int n = real_fcntl(fd, F_DUPFD_CLOEXEC, park_base());

	if (n >= RD(table_size))
		WR(table_size, 0);	/* it grew: ask again next time */
	/* No room (a lowered limit): anywhere. */
	return n >= 0 ? n : real_fcntl(fd, F_DUPFD_CLOEXEC, 0);
}

int shim__fd_park(int fd)
{
	int hi;

	if (fd < 0)
		return fd;
	hi = shim__fd_dup_private(fd);
	if (hi < fd) {
		if (hi >= 0)
			real_close(hi);
		return fd;
	}
	real_close(fd);
	return hi;
}
