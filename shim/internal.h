/*
 * internal.h - private declarations shared by the shim's translation units.
 *
 * Conventions: shim__ names are internal but not static; functions return
 * -errno internally and the wrappers convert once at the libc edge.  All
 * mutable accelerated-fd state is guarded by shim.lock.  Each thread that
 * runs an event loop gets a ring of its own (struct shim_loop); only that
 * thread touches its io_uring memory (ring.c), other threads queue work
 * and wake it.
 */
#ifndef SHIM_INTERNAL_H
#define SHIM_INTERNAL_H

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <liburing.h>

#include "stats.h"

#define likely(x)	__builtin_expect(!!(x), 1)
#define unlikely(x)	__builtin_expect(!!(x), 0)
#define SHIM_EXPORT	__attribute__((visibility("default")))
/* Hints read without the lock (written under it): relaxed atomics. */
#define RD(x)		__atomic_load_n(&(x), __ATOMIC_RELAXED)
#define WR(x, v)	__atomic_store_n(&(x), (v), __ATOMIC_RELAXED)

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

extern const char *const shim__call_names[SHIM_NCALLS];
int shim__resolve_real(void);

/* ---- configuration (init.c) ---- */
enum { MODE_SEND_BATCH, MODE_SEND_DIRECT, MODE_SEND_SYNC };
enum { MODE_RECV_MULTISHOT, MODE_RECV_SINGLE, MODE_RECV_DIRECT };
enum { MODE_WAIT_RING, MODE_WAIT_DIRECT };
enum { MODE_TASKRUN_COOP, MODE_TASKRUN_DEFER };

struct shim_config {
	bool disable;
	int send_mode;
	int recv_mode;
	int wait_mode;
	int taskrun_mode;		/* MODE_TASKRUN_*: ring setup flags */
	int sqpoll_cpu;			/* -1: off */
	bool adaptive;
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

/* ---- per-fd state (fdtab.c) ---- */
enum fd_state {
	FD_ACCEL,	/* shim owns readiness and I/O */
	FD_DRAINING,	/* released; leftover bytes served before real calls */
	FD_ORPHAN,	/* closed by the app, ring ops still in flight */
};

#define SHIM_MAX_REGS	4

struct shim_ep;
struct shim_fd;
struct shim_loop;

/* One epoll registration of an accelerated fd, emulated by the shim. */
struct shim_reg {
	struct shim_ep *ep;
	struct shim_fd *f;
	uint32_t events;		/* as the app asked */
	epoll_data_t data;
	bool oneshot_fired;
	bool on_ready;
	struct shim_reg *rnext, *rprev;	/* ep ready list */
};

struct shim_fd {
	int fd;
	int state;			/* enum fd_state */
	struct shim_loop *loop;		/* the ring that does its I/O */
	unsigned int inflight;		/* ring ops referencing this struct */

	/* receive side */
	char *rbuf;
	uint32_t rcap, roff, rlen;
	bool eof;
	int peek_off;			/* SO_PEEK_OFF, -1: off */
	int alias;			/* a dup sharing the held bytes */
	bool recv_armed;
	bool recv_cancel;		/* cancel submitted */
	bool recv_single;		/* armed into rbuf (not multishot) */
	bool err_watch;			/* in shim.err_epfd (after EOF) */

	/* send side: bytes [shead, stail) queued, [shead, sinfl) in flight */
	char *sbuf;
	uint32_t scap, shead, stail, sinfl;
	bool send_inflight;
	bool out_wanted;		/* app saw a full queue: edge later */
	bool out_blocked;		/* SEND=sync: kernel full, POLLOUT armed */
	bool wait_cancel;		/* that POLLOUT's cancel submitted */
	bool shut_wr;			/* shutdown(SHUT_WR) pending/done */
	int err;			/* pending socket error (SO_ERROR) */
	bool shut_wr_pending;		/* SHUT_WR once the queue drains */
	bool hup;			/* connection dead: EPOLLHUP, EPIPE */
	bool own_fd;			/* fd is our private dup (orphans) */
	bool release_req;		/* hand back to the kernel */
	uint8_t ring_fails;		/* transient ring errors in a row */

	bool dirty;			/* on shim.dirty list */
	struct shim_fd *dirty_next;

	int nregs;
	struct shim_reg regs[SHIM_MAX_REGS];
};

/* An epoll instance the shim knows about (created through epoll_create*). */
struct shim_ep {
	int epfd;
	struct shim_loop *loop;		/* bound: its waiter's ring, or NULL */
	bool waited;			/* a loop thread has waited on it */
	struct shim_loop *kpoll;	/* ring with a POLL_ADD on epfd */
	bool kready;			/* kernel set has events */
	bool dead;			/* app closed it; free on poll CQE */
	bool nobind;			/* polled or nested: kernel only */
	bool kfirst;			/* kernel events first this time */
	struct shim_ep *dead_next;	/* waiting for the loop's cancel */
	int nemul;			/* emulated registrations */
	struct shim_reg *ready_head, *ready_tail;
};

/*
 * One event-loop thread's ring and the work queued for it.  Created by the
 * thread's first epoll use, torn down when the thread exits (its ring ops
 * die with it) or in a fork child.
 */
struct shim_loop {
	pid_t tid;
	struct io_uring ring;
	unsigned int pending_sqes;
	uint64_t wake_buf;
	int wake_fd;			/* eventfd the ring reads: wakes it */
	struct io_uring_buf_ring *buf_ring;
	char *bufs;
	bool multishot;			/* multishot recv + buffer ring */

	struct shim_fd *dirty;		/* need SQEs at the next flush */
	struct shim_ep *dead_eps;	/* closed epfds with a poll armed */
	struct shim_fd *closing;	/* fd close() is finishing */
	int orphans_n;			/* closed fds with ring work left */
	int accel_n;			/* its accelerated fds */
	uint64_t queued;		/* bytes in its fds' send queues */

	int err_epfd;			/* watches EOF'd sockets for ERR/HUP */
	bool err_poll_armed;
	int err_watch_n;		/* sockets in err_epfd */

	unsigned int iter_sends;	/* writes since the last wait point */
	unsigned int send_batch_avg;	/* EWMA of iter_sends, x16 */
	bool direct_sends;		/* adaptive: batches too small */
	unsigned int killfile_tick;
	int refs;			/* fds whose loop this is */
	bool dead;			/* thread gone; freed with its last fd */
	struct shim_loop *next;		/* shim.loops (live ones) */
};

struct shim_global {
	struct shim_config cfg;
	int state;			/* enum shim_state */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	pid_t pid;
	struct shim_loop *loops;	/* every live ring */
	bool ring_made;			/* one was ever made (this process) */

	int nfds;			/* table size */
	struct shim_fd **fds;		/* accelerated/draining, by fd */
	struct shim_ep **eps;		/* known epoll instances, by fd */
	uint8_t *kreg;			/* kernel epoll ADDs, 255: unknown */
	uint8_t *kwait;			/* threads in the kernel's wait, by epfd */

	int accel_now;
	int owned_n;			/* fds with a table entry */
	uint64_t queued_total;		/* bytes in all send queues */
};

extern struct shim_global shim;
extern __thread int shim__depth;
extern __thread struct shim_loop *shim__loop;	/* this thread's ring */

/* Is the calling thread the one that drives l's ring? */
static inline bool shim__on_loop(const struct shim_loop *l)
{
	return l && l == shim__loop;
}

/*
 * TSan builds: TSan's own wrappers of blocking calls (epoll_wait, poll,
 * ...) ignore every interceptor called inside them, pthread_mutex_* too,
 * and our wrappers run inside them.  Tell TSan about the lock directly,
 * or it reports races between accesses that are both under shim.lock.
 */
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
 * shim__depth > 0 while this thread holds the lock or drives the ring: a
 * signal handler calling a wrapper then goes straight to real_<name>
 * instead of deadlocking or corrupting the SQ.
 */
static inline void shim_lock(void)
{
	shim__depth++;		/* before: no window with the lock held */
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	pthread_mutex_lock(&shim.lock);
	tsan_acquire(&shim.lock);
}

static inline void shim_unlock(void)
{
	tsan_release(&shim.lock);
	pthread_mutex_unlock(&shim.lock);
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	shim__depth--;
}

/* init.c */
bool shim__ready(void);
pid_t shim__gettid(void);
void shim__flush_before_block(void);

/* loop.c: lock held */
struct shim_loop *shim__loop_get(void);
void shim__loop_unref(struct shim_loop *l);
bool shim__loop_possible(void);
void shim__flush_all_sync(int slices);
void shim__flush_others(void);
void shim__loops_forget_child(void);

/* log.c */
enum { LOG_ERR, LOG_WARN, LOG_INFO, LOG_DEBUG };
void shim__log_open(const char *spec);
void shim__log(int level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void shim__say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* stats.c */
extern struct shim_stats_file *shim__stats;
extern struct shim_stats_slot shim__stats_dummy;
struct shim_stats_slot *shim__stats_slot_slow(void);
extern __thread struct shim_stats_slot *shim__slot;
void shim__stats_open(void);
void shim__stats_close(void);
void shim__stats_set_state(int state, const char *reason);
void shim__stats_reopen_child(void);
bool shim__stats_exec_begin(void);
void shim__stats_exec_failed(void);
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

/* fdtab.c */
int shim__fdtab_init(void);
static inline struct shim_fd *fd_lookup_racy(int fd)
{
	if (unlikely(fd < 0 || fd >= shim.nfds || !shim.fds))
		return NULL;
	return __atomic_load_n(&shim.fds[fd], __ATOMIC_ACQUIRE);
}
struct shim_fd *shim__fd_get_locked(int fd);
struct shim_ep *shim__ep_get_locked(int epfd);
/* Does an emulated member of ep have events to report? (lock held) */
bool shim__ep_emul_ready(struct shim_ep *ep);
struct shim_ep *shim__ep_get_known_locked(int epfd, bool known);
bool shim__fd_table_has(int fd);
/* The kernel's fd table size (FDSize), or 0 when /proc cannot say. */
int shim__fd_table_size(void);
/* The shim's own fds take the top of that table (fdtab.c). */
int shim__fd_dup_private(int fd);
int shim__fd_park(int fd);

/* Bytes queued on f's send queue (read without the lock elsewhere). */
static inline void queued_add(struct shim_fd *f, int64_t n)
{
	__atomic_add_fetch(&shim.queued_total, n, __ATOMIC_RELAXED);
	__atomic_add_fetch(&f->loop->queued, n, __ATOMIC_RELAXED);
}

/* Work l's ring must still do even if the app never waits on it again. */
static inline bool shim__ring_has_work(struct shim_loop *l)
{
	return l && (__atomic_load_n(&l->queued, __ATOMIC_RELAXED) ||
		     __atomic_load_n(&l->orphans_n, __ATOMIC_RELAXED) ||
		     __atomic_load_n(&l->dirty, __ATOMIC_RELAXED));
}

/* accel.c: fd operations, called with shim.lock held */
bool shim__fd_accelerable(int fd);
struct shim_fd *shim__accel_try(int fd, struct shim_loop *l, bool checked);
void shim__fd_mark_dirty(struct shim_fd *f);
void shim__fd_notify(struct shim_fd *f);
uint32_t shim__fd_mask(struct shim_fd *f);
ssize_t shim__fd_recv(struct shim_fd *f, const struct iovec *iov, int iovcnt,
		      int flags);
ssize_t shim__fd_send(struct shim_fd *f, const struct iovec *iov, int iovcnt,
		      int flags);
ssize_t shim__fd_send_sync(struct shim_fd *f, const struct iovec *iov,
			   int iovcnt, int flags);
int shim__fd_release(struct shim_fd *f);
bool shim__fd_push(struct shim_fd *f);
int shim__fd_close(struct shim_fd *f, int fd);
int shim__fd_shutdown(struct shim_fd *f, int how);
void shim__fd_free(struct shim_fd *f);
void shim__fd_alias(struct shim_fd *f, int newfd);
void shim__reg_unlink(struct shim_reg *r);
void shim__reg_ready(struct shim_reg *r);
void shim__reg_unready(struct shim_reg *r);
void shim__release_loop(struct shim_loop *l);
void shim__forget_all_child(void);
void shim__child_readd(void);
bool shim__child_readd_pending(void);
void shim__on_recv(struct shim_fd *f, int res, bool more, const char *data);

/* epoll.c */
int shim__epoll_wait(struct shim_loop *l, struct shim_ep *ep,
		     struct epoll_event *ev, int maxev,
		     const struct timespec *ts, const sigset_t *sigmask);
/* epoll.c, nested sets (lock held) */
void shim__nest_ctl(int outer, int op, int inner,
		    const struct epoll_event *ev);
void shim__nest_forget(int fd);
bool shim__ep_nest_ready(struct shim_ep *ep);
int shim__epoll_collect_now(struct shim_ep *ep, struct epoll_event *ev,
			    int maxev);

/* ring.c: the only file that touches io_uring memory (l's thread only) */
enum { UD_RECV = 1, UD_SEND, UD_CANCEL, UD_EPPOLL, UD_WAKE, UD_NOP,
       UD_ERREP, UD_FAULT_RECV, UD_FAULT_SEND };
int shim__ring_setup(struct shim_loop *l);
void shim__ring_exit(struct shim_loop *l);
void shim__ring_teardown_child(struct shim_loop *l);
int shim__ring_prep_recv(struct shim_fd *f);
int shim__ring_prep_send(struct shim_fd *f);
int shim__ring_prep_cancel(struct shim_fd *f);
int shim__ring_prep_eppoll(struct shim_loop *l, struct shim_ep *ep);
int shim__ring_prep_cancel_ep(struct shim_loop *l, struct shim_ep *ep);
int shim__ring_submit_wait(struct shim_loop *l, unsigned int wait_nr,
			   const struct timespec *ts, const sigset_t *sigmask);
int shim__ring_reap(struct shim_loop *l);
void shim__ring_flush_dirty(struct shim_loop *l);
int shim__ring_prep_recv_wait(struct shim_fd *f);
int shim__ring_prep_send_wait(struct shim_fd *f);
void shim__ring_wake(struct shim_loop *l);
int shim__ring_prep_cancel_send(struct shim_fd *f);
/*
 * One turn of l's ring (l's thread, lock held, dropped for the enter):
 * flush the dirty fds, submit, wait for wait_nr completions (ts: at most
 * that long), run the completions.
 */
void shim__ring_turn(struct shim_loop *l, unsigned int wait_nr,
		     const struct timespec *ts);

/* safecopy.c */
void shim__safecopy_install(void);
bool shim__copy(void *dst, const void *src, size_t n);

/* drain.c */
int shim__drain_handoff(struct shim_fd *f, int fd, bool shut_wr);
void shim__drain_wait(int seconds);
void shim__drain_child(void);
void shim__err_watch(struct shim_fd *f, bool on);
void shim__on_err_events(struct shim_loop *l);
void shim__err_poll_arm(struct shim_loop *l);

#endif
