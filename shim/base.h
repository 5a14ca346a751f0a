/*
 * base.h - layer 0 of the shim: what every file may use.
 *
 * The real libc entry points (real.c), the settings (init.c fills them
 * before anything else runs), the log (log.c), the counters (stats.c),
 * fault-guarded copies (safecopy.c) and the numbers of the shim's own
 * fds (fdnum.c).  Nothing here knows about rings, sockets or epoll.  The
 * layers above, each calling only down:
 *
 *   L3  args wrap_io wrap_fd wrap_epoll     check, look up, convert
 *   L2  fdtab loop drain ready fd epoll wait   what the app sees (core.h)
 *   L1  ring.c                              io_uring memory (ring.h)
 *   L0  real log stats safecopy fdnum       this file
 *
 * Conventions: functions return -errno internally and the wrappers
 * convert once at the libc edge; shim__depth > 0 while a thread is inside
 * the shim's own machinery (a lock held, a ring driven), so a wrapper that
 * a signal handler reaches then goes straight to the real call.
 */
#ifndef SHIM_BASE_H
#define SHIM_BASE_H

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "stats.h"

#define likely(x)	__builtin_expect(!!(x), 1)
#define unlikely(x)	__builtin_expect(!!(x), 0)
#define SHIM_EXPORT	__attribute__((visibility("default")))
/* Hints read without a lock (written under one): relaxed atomics. */
#define RD(x)		__atomic_load_n(&(x), __ATOMIC_RELAXED)
#define WR(x, v)	__atomic_store_n(&(x), (v), __ATOMIC_RELAXED)
#define ARRAY_SIZE(a)	(sizeof(a) / sizeof((a)[0]))

/* ---- real libc entry points (real.c) ---- */
#define SHIM_CALL(ret, name, params) extern ret (*real_##name) params;
#include "syscalls.def"
#undef SHIM_CALL

enum shim_call_id {
#define SHIM_CALL(ret, name, params) SHIM_ID_##name,
#include "syscalls.def"
#undef SHIM_CALL
	SHIM_NCALLS
};
_Static_assert(SHIM_NCALLS <= SHIM_STATS_CALLS,
	       "stats.h: SHIM_STATS_CALLS below the syscalls.def entries");

extern const char *const shim__call_names[SHIM_NCALLS];
int shim__resolve_real(void);

/* real_<name>, resolved first if a wrapper runs before the constructor. */
#define REAL(name)	(likely(real_##name) ? real_##name :		\
			 (shim__resolve_real(), real_##name))

/* -errno to the libc convention, once, at the wrapper's return. */
static inline long to_libc(long ret)
{
	if (ret < 0) {
		errno = -ret;
		return -1;
	}
	return ret;
}

/* ---- settings (init.c) ---- */
enum { MODE_SEND_BATCH, MODE_SEND_DIRECT, MODE_SEND_SYNC };
enum { MODE_RECV_MULTISHOT, MODE_RECV_SINGLE, MODE_RECV_DIRECT };
enum { MODE_WAIT_RING, MODE_WAIT_DIRECT };
enum { MODE_TASKRUN_COOP, MODE_TASKRUN_DEFER, MODE_TASKRUN_SIGNAL };

struct shim_config {
	bool disable;
	int send_mode;
	int recv_mode;
	int wait_mode;
	int taskrun_mode;		/* MODE_TASKRUN_*: ring setup flags */
	int sqpoll_cpu;			/* -1: off */
	bool adaptive;
	int64_t spin_ns;		/* URINGSHIM_SPIN_US: 0 off, -1 always */
	bool spin_ring;			/* spin on the ring, else on epoll */
	uint32_t send_max_fd;
	uint64_t send_max_total;
	uint32_t recv_buf;
	uint32_t ring_entries;
	int log_level;
	bool stats;
	char stats_dir[256];
	char killfile[256];
	char fault[128];
};

extern struct shim_config shim__cfg;
extern __thread int shim__depth;

pid_t shim__gettid(void);
/* Fork child: this thread's id is new. */
void shim__gettid_forget(void);

/* ---- log.c ---- */
enum { LOG_ERR, LOG_WARN, LOG_INFO, LOG_DEBUG };
void shim__log_open(const char *spec);
void shim__log(int level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Always said: to the log, or to stderr when there is none. */
void shim__say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- stats.c ---- */
extern struct shim_stats_file *shim__stats;
struct shim_stats_slot *shim__stats_slot_slow(void);
extern __thread struct shim_stats_slot *shim__slot;
void shim__stats_open(void);
void shim__stats_close(void);
void shim__stats_set_state(int state, const char *reason);
void shim__stats_reopen_child(void);
bool shim__stats_exec_begin(void);
void shim__stats_exec_failed(void);
void shim__stats_atfork_prepare(void);
void shim__stats_atfork_parent(void);
void shim__stats_batch(unsigned int n);

static inline struct shim_stats_slot *stat_slot(void)
{
	struct shim_stats_slot *s = shim__slot;

	return likely(s) ? s : shim__stats_slot_slow();
}

/* Slot 0 is shared by threads beyond the slot count: add atomically. */
#define STAT_ADD(field, n)						\
	do {								\
		struct shim_stats_slot *s_ = stat_slot();		\
		if (likely(s_ != &shim__stats->slot[0]))		\
			s_->field += (n);				\
		else							\
			__atomic_fetch_add(&s_->field, (n),		\
					   __ATOMIC_RELAXED);		\
	} while (0)
#define STAT_INC(field)	STAT_ADD(field, 1)
#define STAT_CALL(name)	STAT_INC(calls[SHIM_ID_##name])

/* ---- safecopy.c ---- */
/* The fault handler is in the kernel (crash.c): guard copies from now. */
void shim__safecopy_enable(void);
/* From the SIGSEGV/SIGBUS handler: a guarded copy faulted?  Jump back. */
void shim__safecopy_catch(void);
/*
 * memcpy that returns false instead of faulting on a bad pointer (NULL
 * included; having copied an unknown part), once crash.c is armed: for
 * the shim's sockets' buffers.  A caller's structure that may come before
 * any accelerated socket goes through shim__ucopy (crash.c), which arms
 * it first.
 */
bool shim__copy(void *dst, const void *src, size_t n);

/*
 * The address of a field or an element of a caller's structure, by
 * arithmetic: the structure may be misaligned, and &p->field would
 * already be undefined.
 */
#define UFIELD(p, type, field)						\
	((void *)((char *)(p) + offsetof(type, field)))
#define UELEM(p, type, i)	((type *)((char *)(p) + (i) * sizeof(type)))

/* ---- fdnum.c: the shim's own fd numbers ---- */
/* The kernel's fd table size (FDSize), or 0 when /proc cannot say. */
int shim__fd_table_size(void);
/* n capped at that size, as core_sys_select caps nfds. */
int shim__fd_table_cap(int n);
/* A CLOEXEC dup of fd at the top of that table (fdnum.c says why). */
int shim__fd_dup_high(int fd);
/* fd moved there (the original closed); fd < 0 is passed through. */
int shim__fd_high(int fd);

/* ---- crash.c: fatal signals (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT) ---- */
/* The first accelerated socket (or guarded copy): the shim owns them. */
void shim__crash_arm(void);
/* shim__copy of a caller's structure, armed first if nothing armed yet. */
bool shim__ucopy(void *dst, const void *src, size_t n);
/* Inside an application's fatal-signal handler (this thread)? */
bool shim__crash_in_handler(void);
/* Push queued bytes out before a death (bounded); see crash.c. */
void shim__crash_flush(void);
/*
 * The flush itself lives with the sockets (fd.c); init.c fills this in.
 * It waits until deadline_ms at most and returns with the shim's process
 * lock held when hold is set and it could take it (released by unhold).
 */
struct crash_ops {
	bool (*flush)(uint64_t deadline_ms, bool hold);
	void (*unhold)(void);
};
extern const struct crash_ops *shim__crash_ops;
/* The kernel's own sigaction, past any sanitizer's (crash.c). */
int shim__kernel_sigaction(int sig, const struct sigaction *sa,
			   struct sigaction *old);

/* ---- sigwatch.c: spinning waits see a handler run ---- */
/* Handlers of the application that ran on this thread (all of them
   while sigwatch is on; the fatal ones always); defined in crash.c. */
extern __thread unsigned long shim__sig_gen;
void shim__sigwatch_enable(void);
int shim__sigwatch_action(int sig, const struct sigaction *act,
			  struct sigaction *old);
__sighandler_t shim__sigwatch_signal(int sig, __sighandler_t handler);

/* The five the shim keeps itself from the first accelerated socket on. */
static inline bool shim__sig_fatal(int sig)
{
	return sig == SIGSEGV || sig == SIGBUS || sig == SIGFPE ||
	       sig == SIGILL || sig == SIGABRT;
}

/* sigaction/signal as the application sees them (wrap_sig.c). */
int shim__sig_action(int sig, const struct sigaction *act,
		     struct sigaction *old);
__sighandler_t shim__sig_signal(int sig, __sighandler_t handler);

/* ---- TSan: announce our locks (see DESIGN.md, "Locks") ---- */
#if defined(__SANITIZE_THREAD__)
#define SHIM_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SHIM_TSAN 1
#endif
#endif
#ifdef SHIM_TSAN
#include <sanitizer/tsan_interface.h>
#define tsan_acquire(p)	__tsan_acquire(p)
#define tsan_release(p)	__tsan_release(p)
#else
#define tsan_acquire(p)	((void)(p))
#define tsan_release(p)	((void)(p))
#endif

/*
 * Every shim lock goes through these: shim__depth rises before the lock
 * is taken, so a signal handler that interrupts us while we hold it goes
 * straight to the real call instead of deadlocking.
 */
static inline void shim_mutex_lock(pthread_mutex_t *m)
{
	shim__depth++;
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	pthread_mutex_lock(m);
	tsan_acquire(m);
}

static inline void shim_mutex_unlock(pthread_mutex_t *m)
{
	tsan_release(m);
	pthread_mutex_unlock(m);
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	shim__depth--;
}

/* Wait on c with m held (as locked by shim_mutex_lock), at most until. */
static inline void shim_cond_wait_until(pthread_cond_t *c, pthread_mutex_t *m,
					const struct timespec *until)
{
	tsan_release(m);
	pthread_cond_timedwait(c, m, until);
	tsan_acquire(m);
}

/* A spin-wait hint to the CPU. */
static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ volatile("yield");
#endif
}

/* ---- time ---- */
static inline uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

#endif
