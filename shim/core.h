/*
 * core.h - layer 2: every rule about what the application sees.
 *
 * Files, each calling only the ones listed before it (and L1, L0):
 *
 *   fdtab.c  fd number -> the shim's state for it; type-stable pools
 *   loop.c   one loop per event-loop thread: its ring, its lock, its
 *            dirty list, and the one loop_turn (flush, enter, reap)
 *   drain.c  a thread that finishes sends nobody will wait for
 *   ready.c  epoll registrations and ready lists (the kernel's rdllist)
 *   fd.c     an accelerated socket: receive segments, send queue,
 *            readiness, completions, release, close, shutdown
 *   epoll.c  emulated epoll sets: ctl, binding to loops, nested sets,
 *            the wait inside the ring
 *   wait.c   poll/select over a mix of the shim's fds and the kernel's
 *
 * Upward calls go only through tables filled in at setup (init.c): the
 * ring's completion table and the loop's flush hook.
 *
 * Locks.  Each loop has a mutex (struct loop.lock) guarding its sockets,
 * their registrations and the ready lists of the epoll sets they are in
 * (a set's emulated part belongs to one loop at a time, ep->owner).  The
 * loop thread takes only its own lock on its fast path (read, write, its
 * wait); another thread reaches a socket through the same lock.  The
 * process lock shim.lock serialises the rare decisions that span loops
 * (binding a set to a loop, epoll fds closing, nested sets, fork, kill
 * switch).  Order: shim.lock before any loop lock; never two loop locks
 * at once; nobody waits for a loop thread while holding shim.lock.
 * struct sfd, struct sep and struct loop are type-stable (pools, never
 * returned to malloc while the process lives), so a pointer read without
 * a lock can always be locked through and then re-checked.
 */
#ifndef SHIM_CORE_H
#define SHIM_CORE_H

#include "base.h"
#include "ring.h"

struct loop;
struct sfd;
struct sep;

/* Completion kinds: rows of the ring's table (init.c fills it). */
enum {
	UD_RECV = 1,		/* token: struct sfd */
	UD_SEND,		/* token: struct sfd */
	UD_CANCEL,		/* token: struct sfd, the cancel's own CQE */
	UD_EPPOLL,		/* token: struct sep, POLL_ADD on its epfd */
	UD_WAKE,		/* token: struct loop, its eventfd read */
	UD_ERREP,		/* token: struct loop, its error set polled */
	UD_NOP,			/* nothing to do */
};

/* ===== process-wide state ===== */

struct shim_core {
	int state;			/* enum shim_state */
	pthread_mutex_t lock;		/* see "Locks" above */
	pid_t pid;
	struct loop *loops;		/* every live loop */
	bool ring_made;			/* one was ever made (this process) */
	bool eps_known;			/* an epoll set was ever recorded:
					   only then may a poll array hold
					   one of ours (wait.c) */
	int accel_now;			/* accelerated sockets open (atomic) */
	int owned_n;			/* fds with state in the table (atomic) */
	int64_t send_budget;		/* URINGSHIM_SEND_MAX_TOTAL not yet
					   handed to loops (atomic) */
};

extern struct shim_core shim;
extern __thread struct loop *shim__loop;	/* this thread's loop */

static inline void shim_lock(void)
{
	shim_mutex_lock(&shim.lock);
}

static inline void shim_unlock(void)
{
	shim_mutex_unlock(&shim.lock);
}

/* The live count in the stats file (several threads write it). */
static inline void stats_accel_now(int n)
{
	__atomic_store_n(&shim__stats->accel_now, n, __ATOMIC_RELAXED);
}

/* True once init ran and acceleration is allowed (init.c). */
bool shim__ready(void);

/* ===== fdtab.c ===== */

/*
 * The table: fd -> { socket state, epoll set state, kernel registration
 * count, kernel waiters }.  Chunks are made on first use (under
 * shim.lock) and never freed, so RLIMIT_NOFILE raised after start is
 * covered up to fs.nr_open; readers need no lock.
 */
#define FDTAB_CHUNK_SHIFT	12
#define FDTAB_CHUNK		(1 << FDTAB_CHUNK_SHIFT)

struct fdslot {
	struct sfd *f;			/* accelerated or draining socket */
	struct sep *ep;			/* an epoll set we know */
	uint8_t kreg;			/* kernel epoll ADDs of it, 255: unknown */
	uint8_t kwait;			/* threads in the kernel's wait on it */
	/* parked (epoll.c): handed to the kernel while batches were too
	   small, with its one registration, to be taken back later */
	bool parked;
	uint32_t pk_events;
	int pk_epfd;
	epoll_data_t pk_data;
	struct loop *pk_loop;
};

extern struct fdslot **shim__fdtab;
extern unsigned int shim__fdtab_max;	/* fds the table can hold */

int fdtab_init(void);
/* The slot of fd, made when make is true (shim.lock held); or NULL. */
struct fdslot *fdtab_slot(int fd, bool make);

static inline struct fdslot *fdtab_peek(int fd)
{
	struct fdslot *c;

	if (unlikely((unsigned int)fd >= shim__fdtab_max))
		return NULL;
	c = __atomic_load_n(&shim__fdtab[fd >> FDTAB_CHUNK_SHIFT],
			    __ATOMIC_ACQUIRE);
	return c ? &c[fd & (FDTAB_CHUNK - 1)] : NULL;
}

/* The socket state of fd, read without a lock (re-check under it). */
static inline struct sfd *fdtab_fd(int fd)
{
	struct fdslot *s = fdtab_peek(fd);

	return s ? __atomic_load_n(&s->f, __ATOMIC_ACQUIRE) : NULL;
}

static inline struct sep *fdtab_ep(int fd)
{
	struct fdslot *s = fdtab_peek(fd);

	return s ? __atomic_load_n(&s->ep, __ATOMIC_ACQUIRE) : NULL;
}

void fdtab_set_fd(int fd, struct sfd *f);
void fdtab_set_ep(int fd, struct sep *ep);

/* Type-stable allocation (zeroed; shim.lock not needed). */
struct sfd *sfd_alloc(void);
void sfd_free(struct sfd *f);
struct sep *sep_alloc(void);
void sep_free(struct sep *ep);

/* ===== loop.c ===== */

struct loop {
	pthread_mutex_t lock;
	pthread_cond_t cond;		/* releases wait here for the loop */
	struct ring ring;
	pid_t tid;
	bool dead;			/* thread gone; reused with refs 0 */
	int refs;			/* sockets naming this loop (atomic) */
	struct loop *next;		/* shim.loops, or the reuse list */

	struct sfd *dirty;		/* need SQEs at the next flush, in */
	struct sfd **dirty_tail;	/* the order the app touched them */
	struct sfd *holding;		/* hold bytes in ring buffers */
	struct sep *dead_eps;		/* closed sets whose poll to cancel */
	struct sfd *closing;		/* the socket close() is finishing */
	int orphans_n;			/* closed sockets with ring work left */
	int accel_n;			/* its accelerated sockets */
	uint64_t queued;		/* bytes in its send queues */
	uint64_t budget;		/* of shim.send_budget, taken */

	uint64_t wake_buf;
	int wake_fd;			/* eventfd the ring reads: wakes it */

	int err_epfd;			/* EOF'd sockets watched for ERR/HUP */
	bool err_poll_armed;
	int err_watch_n;

	unsigned int iter_sends;	/* writes since the last wait point */
	unsigned int send_batch_avg;	/* EWMA of iter_sends, x16 */
	bool direct_sends;		/* adaptive: batches too small */
	unsigned int events_avg;	/* EWMA of events per wait, x16 */
	unsigned int mode_waits;	/* waits since parking changed */
	unsigned int park_flips;	/* times it came back: backoff */
	bool parked;			/* adaptive: its sockets plain */
	unsigned int killfile_tick;
};

/* Hooks the layers above fill in (init.c). */
struct loop_ops {
	/* Turn l's dirty sockets and dead sets into SQEs (l locked). */
	void (*flush)(struct loop *l);
	/* l's thread is ending (pthread key destructor, nothing locked). */
	void (*thread_exit)(struct loop *l);
};
extern const struct loop_ops *shim__loop_ops;
extern const struct ring_ops *shim__ring_ops;

static inline void loop_lock(struct loop *l)
{
	shim_mutex_lock(&l->lock);
}

static inline void loop_unlock(struct loop *l)
{
	shim_mutex_unlock(&l->lock);
}

/* Is the calling thread the one that drives l's ring? */
static inline bool loop_is_mine(const struct loop *l)
{
	return l && l == shim__loop;
}

/*
 * The calling thread's loop, its ring made on first use (shim.lock
 * held).  NULL when the shim is not accelerating or this thread could
 * not get a ring; the process's first failure makes it passthrough.
 */
struct loop *loop_get(void);
/* Could the calling thread get a loop?  (a hint, no lock) */
bool loop_possible(void);
void loop_ref(struct loop *l);
/* A socket or set that named l is gone (l locked). */
void loop_unref(struct loop *l);
/*
 * One turn of l's ring (l's thread, l locked, dropped for the enter):
 * flush, submit, wait for wait_nr completions (ts: at most that long,
 * sigmask applied), run the completions.  Returns ring_enter's result.
 */
int loop_turn(struct loop *l, unsigned int wait_nr,
	      const struct timespec *ts, const sigset_t *sigmask);
/* Wake l's thread out of its ring wait (any thread but l's). */
void loop_wake(struct loop *l);
/* Work l's ring must still do even if the app never waits again. */
static inline bool loop_has_work(struct loop *l)
{
	return l && (RD(l->queued) || RD(l->orphans_n) || RD(l->dirty));
}
/* The calling thread's sends on their way before it may block. */
void loop_flush_before_block(void);
/* Flush the calling thread's send queues, at most slices x 0.1 s. */
void loop_flush_sync(int slices);
/* Exit or exec from one thread: wake the others to flush (2 s). */
void loop_flush_others(void);
/* The thread leaves: its ring goes (shim.lock and l locked). */
void loop_retire(struct loop *l);
/* Fork child: no ring of the parent's is ours. */
void loop_forget_child(void);
/* Take send budget for n more queued bytes; false when exhausted. */
bool loop_budget_take(struct loop *l, uint64_t n);
void loop_budget_give(struct loop *l, uint64_t n);
/* Room under the budget for up to want more bytes (l locked). */
uint64_t loop_budget_room(struct loop *l, uint64_t want);
/* n queued bytes left l's send queues (l locked). */
void loop_queued_sub(struct loop *l, uint64_t n);
/* Completion handler (the ring's table): the wake eventfd was read. */
void loop_on_wake(struct ring *r, const struct ring_cqe *c);

/* ===== drain.c ===== */

/*
 * Send len bytes of buf on fd (a descriptor the drainer then owns and
 * closes; SHUT_WR first when shut_wr) from a background thread.
 * Returns 0, or -errno and nothing is taken.
 */
int drain_handoff(int fd, const char *buf, size_t len, bool shut_wr);
void drain_wait(int seconds);
/* Nothing handed over is still being sent (never blocks: a crash). */
bool drain_idle(void);
void drain_atfork_prepare(void);
void drain_atfork_parent(void);
void drain_forget_child(void);

/* ===== ready.c ===== */

#define SFD_MAX_REGS	4

/* One emulated registration of a socket in an epoll set. */
struct reg {
	struct sep *ep;
	struct sfd *f;
	uint32_t events;		/* as the app asked */
	epoll_data_t data;
	bool oneshot_fired;
	bool on_ready;
	struct reg *rnext, *rprev;	/* the set's ready list */
};

/* An epoll instance the shim knows about. */
struct sep {
	int epfd;
	struct loop *loop;		/* bound: its waiter's ring, or NULL */
	struct loop *owner;		/* its emulated members' loop */
	bool waited;			/* a loop thread has waited on it */
	struct loop *kpoll;		/* ring with a POLL_ADD on epfd */
	bool kready;			/* kernel set has events */
	bool dead;			/* app closed it; freed on poll CQE */
	bool nobind;			/* polled or nested: kernel only */
	bool kfirst;			/* kernel events first this time */
	struct sep *dead_next;		/* waiting for the loop's cancel */
	int nemul;			/* emulated registrations */
	struct reg *ready_head, *ready_tail;
	pthread_mutex_t kick_lock;	/* a leaf lock: the kick's state */
	bool kicked;			/* an eventfd wakes its kernel wait */
	int kick_fd;
	struct sep *free_next;
};

void reg_ready(struct reg *r);
void reg_unready(struct reg *r);
/* Remove r from its socket and its set (owner locked). */
void reg_unlink(struct reg *r);
struct reg *reg_find(struct sfd *f, struct sep *ep);
struct reg *reg_add(struct sfd *f, struct sep *ep,
		    const struct epoll_event *ev);
/* Every registration of f is re-evaluated (an edge). */
void regs_notify(struct sfd *f);

/* ===== fd.c ===== */

enum sfd_state {
	FD_ACCEL,	/* shim owns readiness and I/O */
	FD_DRAINING,	/* released; bytes already pulled served first */
	FD_ORPHAN,	/* closed by the app, ring ops still in flight */
};

/* Bytes a receive left in a ring buffer, not yet read. */
struct rseg {
	const char *p;
	uint32_t len;
	int32_t bid;
};
#define SFD_SEGS	8

struct sfd {
	struct loop *loop;		/* whose lock and ring: see Locks */
	int fd;
	int state;			/* enum sfd_state */
	unsigned int inflight;		/* ring ops referencing this struct */

	/* receive, oldest first: rbuf[roff, rlen), then seg[] */
	char *rbuf;			/* own copy (spilled, or single-shot) */
	uint32_t rcap, roff, rlen;
	struct rseg seg[SFD_SEGS];
	uint8_t seg_head, seg_n;
	bool eof;
	int peek_off;			/* SO_PEEK_OFF, -1: off */
	int alias;			/* a dup sharing the held bytes */
	bool recv_armed;
	bool recv_cancel;		/* cancel submitted */
	bool recv_single;		/* armed into rbuf (not multishot) */
	bool err_watch;			/* in the loop's error set (after EOF) */
	bool holding;			/* on loop->holding */
	struct sfd *hold_next, *hold_prev;

	/* send side: bytes [shead, stail) queued, [shead, sinfl) in flight */
	char *sbuf;
	uint32_t scap, shead, stail, sinfl;
	bool send_inflight;
	bool out_wanted;		/* app saw a full queue: edge later */
	bool out_blocked;		/* SEND=sync: kernel full, POLLOUT armed */
	bool wait_cancel;		/* that POLLOUT's cancel submitted */
	bool shut_wr;			/* shutdown(SHUT_WR) pending/done */
	bool shut_wr_pending;		/* SHUT_WR once the queue drains */
	int err;			/* pending socket error (SO_ERROR) */
	bool hup;			/* connection dead: EPOLLHUP, EPIPE */
	bool own_fd;			/* fd is our private dup (orphans) */
	bool release_req;		/* hand back to the kernel */
	uint8_t ring_fails;		/* transient ring errors in a row */

	bool dirty;			/* on loop->dirty */
	struct sfd *dirty_next;

	int nregs;
	struct reg regs[SFD_MAX_REGS];
	struct sfd *free_next;
};

/*
 * Lock fd's socket: its loop locked and f still fd's state, or NULL (the
 * fd is not ours any more; nothing locked).
 */
struct sfd *fd_lock(int fd);
static inline void fd_unlock(struct sfd *f)
{
	loop_unlock(f->loop);
}

bool fd_accelerable(int fd);
/* Take fd over on loop l (l locked); NULL when it cannot be. */
struct sfd *fd_accel(int fd, struct loop *l, bool checked);
uint32_t fd_events(struct sfd *f);
bool fd_has_input(struct sfd *f);
uint32_t fd_unread(struct sfd *f);

/*
 * The data path.  Returns true with *ret (bytes or -errno) when the shim
 * served the call on an fd it owns; false when the caller makes the real
 * call (for a send: the kernel's, with the buffer it could not take
 * whole, after the socket's queue).  The wrapper has seen fd in the table
 * with shim__depth 0 (the hot path looks it up once more, not twice), and
 * iov is its checked copy (args.c); the buffers it points at are the
 * caller's.
 */
bool fd_io_recv(int fd, const struct iovec *iov, int iovcnt, int flags,
		ssize_t *ret);
bool fd_io_send(int fd, const struct iovec *iov, int iovcnt, int flags,
		ssize_t *ret);
/* Give fd back to the kernel before a call the shim cannot serve. */
void fd_release_fd(int fd);
/* SO_ERROR held by the shim: true with *err set (and cleared). */
bool fd_take_error(int fd, int *err);
/* Hold err for the next call (an error after some of recvmmsg's). */
void fd_keep_error(int fd, int err);
/* Does the shim hold a socket error the kernel no longer has? */
bool fd_holds_error(int fd);
void fd_set_peek_off(int fd, int val);
/* FIONREAD on an accelerated socket: true with *n set. */
bool fd_inq(int fd, int *n);
/* A dup of a draining fd shares its held bytes. */
void fd_alias_dup(int oldfd, int newfd);
int fd_shutdown(int fd, int how, bool *handled);
/* The app closes fd: flush, cancel, forget (f locked; returns unlocked). */
void fd_close_locked(struct sfd *f, int fd);
/* f moved to this loop: take up its I/O there (f locked). */
void fd_rearm(struct sfd *f);
/*
 * Move a released socket (DRAINING, no registrations, nothing queued or
 * in flight) to loop to, and take it up there with the bytes it holds.
 * f and its loop locked on entry; returns f with to locked, or NULL with
 * nothing locked.
 */
struct sfd *fd_move(struct sfd *f, struct loop *to);
/*
 * Hand f back to the kernel's epoll sets (f locked; waits for its loop,
 * dropping the lock).  Returns true when f is still the fd's, on the
 * same loop, afterwards.
 */
bool fd_release(struct sfd *f);
/* Every accelerated socket of l back to the kernel (l's thread). */
void fd_release_loop(struct loop *l);
/* Thread exit: queued bytes out or to the drainer (l locked). */
void fd_loop_exit(struct loop *l);
/* The loop's flush hook. */
void fd_flush_dirty(struct loop *l);
/* Fork child: the parent's sockets become plain passthrough. */
void fd_forget_child(void);
/* Completion handlers (the ring's table). */
void fd_on_recv(struct ring *r, const struct ring_cqe *c);
void fd_on_send(struct ring *r, const struct ring_cqe *c);
void fd_on_cancel(struct ring *r, const struct ring_cqe *c);
void fd_on_err_events(struct ring *r, const struct ring_cqe *c);
/* crash.c's flush (init.c's table): see fd.c, "fatal signals". */
bool fd_crash_flush(uint64_t deadline_ms, bool hold);
void fd_crash_unhold(void);
/* Ring buffers held at a wait point become the socket's own copy. */
void fd_spill_holding(struct loop *l);

/* ===== epoll.c ===== */

/* The set record of epfd (known: just made by epoll_create*). */
struct sep *ep_get(int epfd, bool known);
void ep_note_created(int epfd);
/* epoll_ctl, emulated or real: 0 or -errno. */
int ep_ctl(int epfd, int op, int fd, struct epoll_event *ev);
/* One wait: event count, -errno, or handled false (make the real call;
   then ep_wait_done(*kwaited) after it). */
int ep_wait(int epfd, struct epoll_event *ev, int maxev,
	    const struct timespec *ts, const sigset_t *sigmask,
	    bool *handled, bool *kwaited);
/*
 * After the real wait: the shim's kick events are taken out of ev[0..n)
 * (returns how many are left) and *again is set when only a kick ended
 * the wait (wait again: the shim now sees what the kick announced).
 */
int ep_wait_done(int epfd, bool kwaited, struct epoll_event *ev, int n,
		 bool *again);
/* ev[0..n) of a served wait could not be handed over: put back. */
void ep_unwait(int epfd, const struct epoll_event *ev, int n);
/* fd is closing or being replaced: forget what we knew of it. */
void ep_forget_fd(int fd);
/* An epoll fd is polled: kernel readiness only; true when one of its
   members holds bytes only the shim can report (want: asked events). */
bool ep_polled(int fd, short want);
/* POLLIN for a known epoll fd while the shim holds its events (locked
   as ep_polled). */
short ep_poll_extra(int fd, short want);
void ep_loop_exit(struct loop *l);
void ep_forget_child(void);
/* The loop's flush hook: cancel polls of closed sets (l locked). */
void ep_flush_dead(struct loop *l);
/* Completion handler (the ring's table). */
void ep_on_poll(struct ring *r, const struct ring_cqe *c);

/* ===== wait.c ===== */

int wait_poll(struct pollfd *fds, nfds_t n, const struct timespec *ts,
	      const sigset_t *sigmask, bool *handled);
/*
 * A poll the kernel serves, spinning first (URINGSHIM_SPIN_US): events,
 * -errno (-EINTR: a handler ran), or 0 when the caller must now block.
 */
int wait_poll_spin(struct pollfd *fds, nfds_t n, const struct timespec *ts,
		   const sigset_t *sigmask);
int wait_select(int nfds, fd_set *r, fd_set *w, fd_set *e,
		const struct timespec *ts, const sigset_t *sigmask,
		bool *handled);

#endif
