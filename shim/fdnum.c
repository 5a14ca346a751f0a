/*
 * fdnum.c - the numbers of the shim's own fds.
 *
 * The kernel hands out the lowest free number, and a number the
 * application closed must stay closed until the application itself reuses
 * it: an epoll_ctl on it answers EBADF, not ENOENT, and a read EBADF, not
 * bytes of the shim's.  So the fds the shim makes while the application
 * runs (a ring, its eventfds, the error-watch epoll set, the private dups
 * of closing sockets) take the top 16 numbers of the kernel's fd table as
 * it is (FDSize).  Not higher: the table would grow past what the
 * application alone makes it, and select() reads as many bits as the
 * table has, so a select with an nfds larger than its sets would read
 * memory it does not read without the shim.  When those numbers are
 * taken (an application with that many fds open), a shim fd lands where
 * the table grows, as one more of the application's would, and a closed
 * number can be met again (DESIGN.md, Known limits).
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"

#define NR_OPEN_DEFAULT	64	/* a new process's table */
#define TOP		16	/* numbers the shim takes at its top */

static int table_size;		/* cached FDSize; it only grows */

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

/* The lowest number the shim's fds take: the top of the table. */
static int top_base(void)
{
	int size = RD(table_size);

	if (!size) {
		size = shim__fd_table_size();
		if (size <= 0)
			size = NR_OPEN_DEFAULT;
		WR(table_size, size);
	}
	return size - (size / 4 < TOP ? size / 4 : TOP);
}

int shim__fd_table_cap(int n)
{
	int size = RD(table_size);

	if (n <= size)
		return n;
	/* Unknown, or grown since: ask (only for an nfds past it). */
	size = shim__fd_table_size();
	if (size <= 0)
		return n;
	WR(table_size, size);
	return n < size ? n : size;
}

int shim__fd_dup_high(int fd)
{
	int n = real_fcntl(fd, F_DUPFD_CLOEXEC, top_base());

	if (n >= RD(table_size))
		WR(table_size, 0);	/* it grew: ask again next time */
	/* No room there (a lowered RLIMIT_NOFILE): anywhere. */
	return n >= 0 ? n : real_fcntl(fd, F_DUPFD_CLOEXEC, 0);
}

int shim__fd_high(int fd)
{
	int hi;

	if (fd < 0)
		return fd;
	hi = shim__fd_dup_high(fd);
	if (hi < fd) {
		if (hi >= 0)
			real_close(hi);
		return fd;
	}
	real_close(fd);
	return hi;
}
