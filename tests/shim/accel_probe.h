/*
 * accel_probe.h - are this program's sockets really in the shim's ring?
 *
 * A conformance corner proves nothing about the shim if its sockets
 * stayed with the kernel.  Under LD_PRELOAD=liburingshim.so the program
 * reads its own stats file ($URINGSHIM_STATS_DIR/uringshim.<pid>, or
 * /dev/shm) and expects the shim active with at least n sockets
 * accelerated.  Without the shim, or with the shim in passthrough,
 * disabled or killed (io_uring denied: nothing to accelerate), or
 * spinning on plain epoll_wait (URINGSHIM_SPIN_RING=0 with
 * URINGSHIM_SPIN_US: no ring is made), nothing is expected.  Nothing is
 * printed, so transcripts stay identical.
 */
#ifndef ACCEL_PROBE_H
#define ACCEL_PROBE_H

#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../../shim/stats.h"
#include "conform.h"

/* Does the shim spin on plain epoll_wait, making no ring? */
static inline bool shim_spins_plain(void)
{
	const char *ring = getenv("URINGSHIM_SPIN_RING");
	const char *us = getenv("URINGSHIM_SPIN_US");

	return ring && !strcmp(ring, "0") && us && *us && strcmp(us, "0");
}

/* Accelerated sockets now, or -1 when no active shim is loaded here. */
static inline long shim_accel_now(void)
{
	const char *pre = getenv("LD_PRELOAD"), *dir;
	struct shim_stats_file *s;
	char path[PATH_MAX];
	long n = -1;
	int fd;

	if (!pre || !strstr(pre, "uringshim") || shim_spins_plain() ||
	    ((dir = getenv("URINGSHIM_STATS")) && !strcmp(dir, "0")))
		return -1;
	dir = getenv("URINGSHIM_STATS_DIR");
	snprintf(path, sizeof(path), "%s/uringshim.%d", dir ? dir : "/dev/shm",
		 (int)getpid());
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;	/* loaded, yet no stats: nothing accelerated */
	s = mmap(NULL, sizeof(*s), PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	if (s == MAP_FAILED)
		return 0;
	if (s->state == SHIM_STATE_INIT || s->state == SHIM_STATE_ACTIVE)
		n = s->accel_now;
	munmap(s, sizeof(*s));
	return n;
}

/* Expect at least n accelerated sockets, when an active shim is here. */
#define expect_accelerated(n)						\
	do {								\
		long now_ = shim_accel_now();				\
		expect(now_ < 0 || now_ >= (n));			\
	} while (0)

#endif
