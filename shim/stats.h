/*
 * stats.h - layout of the live stats file $URINGSHIM_STATS_DIR/uringshim.<pid>.
 *
 * Shared by the shim (writer, one mmap'd file per process) and
 * uringshim-stat (reader).  Counters live in per-thread slots so the hot
 * path never touches a shared cache line; the reader sums the slots.
 * Bump SHIM_STATS_VERSION whenever this layout changes.
 */
#ifndef SHIM_STATS_H
#define SHIM_STATS_H

#include <stdint.h>

#define SHIM_STATS_MAGIC	0x5348494d53544154ULL	/* "SHIMSTAT" */
#define SHIM_STATS_VERSION	1
#define SHIM_STATS_SLOTS	64	/* slot 0 is shared (atomic) overflow */
#define SHIM_STATS_CALLS	64	/* >= number of syscalls.def entries */
#define SHIM_STATS_BATCH_BUCKETS 16	/* log2 buckets: 1, 2-3, 4-7, ... */

enum shim_state {
	SHIM_STATE_INIT		= 0,	/* no wait point seen yet */
	SHIM_STATE_ACTIVE	= 1,	/* ring up, accelerating */
	SHIM_STATE_PASSTHROUGH	= 2,	/* io_uring unusable: see reason */
	SHIM_STATE_DISABLED	= 3,	/* URINGSHIM_DISABLE=1 */
	SHIM_STATE_KILLED	= 4,	/* URINGSHIM_KILLFILE appeared */
};

struct shim_stats_slot {
	uint64_t calls[SHIM_STATS_CALLS];	/* intercepted, by kind */
	uint64_t passthrough;		/* calls forwarded unchanged */
	uint64_t shim_syscalls;		/* syscalls the shim issued itself */
	uint64_t enters;		/* io_uring_enter calls */
	uint64_t sqes;			/* SQEs submitted */
	uint64_t batch_hist[SHIM_STATS_BATCH_BUCKETS];
	uint64_t bytes_sent;		/* through the ring */
	uint64_t bytes_recv;		/* through the ring */
	uint64_t served_from_buffer;	/* reads answered with no syscall */
	uint64_t sends_queued;		/* writes answered with no syscall */
	uint64_t deferred_errors;
	uint64_t fallbacks;		/* released fds, setup fallbacks */
	uint64_t accel_total;		/* fds ever accelerated */
	uint64_t wait_points;		/* emulated epoll/poll waits */
	uint64_t parks;			/* loops that went plain (adaptive) */
	uint64_t unparks;		/* and took their sockets back */
	uint64_t spin_hits;		/* spinning waits that found work */
	uint64_t spin_misses;		/* spinning waits that went to sleep */
	uint64_t spin_ns;		/* time spent spinning */
	uint64_t reserved[11];
};

struct shim_stats_file {
	uint64_t magic;
	uint32_t version;
	uint32_t size;			/* sizeof(struct shim_stats_file) */
	int32_t pid;
	uint32_t state;			/* enum shim_state */
	char reason[96];		/* why passthrough / killed */
	uint32_t ring_flags;		/* IORING_SETUP_* in use */
	uint32_t features;		/* SHIM_FEAT_* */
	int64_t accel_now;		/* accelerated fds open now */
	uint32_t ncalls;		/* valid entries of calls[] */
	uint32_t nslots;		/* slots handed out so far */
	char call_names[SHIM_STATS_CALLS][24];
	struct shim_stats_slot slot[SHIM_STATS_SLOTS];
};

/* Features in use, for the reader. */
#define SHIM_FEAT_RECV_RING	(1U << 0)
#define SHIM_FEAT_SEND_BATCH	(1U << 1)
#define SHIM_FEAT_WAIT_RING	(1U << 2)
#define SHIM_FEAT_SQPOLL	(1U << 3)
#define SHIM_FEAT_ADAPTIVE	(1U << 4)
#define SHIM_FEAT_POLL_MULTI	(1U << 5)

#endif
