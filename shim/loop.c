/*
 * loop.c - one loop per event-loop thread: its ring, its lock, its turn.
 *
 * A thread gets its loop on its first epoll use, so SINGLE_ISSUER holds by
 * construction, and threads that each run an epoll loop (memcached
 * workers) never share a ring, a lock or a kernel wait.  loop_turn is the
 * one place a ring is driven: the layer above's flush hook turns dirty
 * sockets into SQEs, the enter submits them (and waits, without the
 * lock), the reap runs the completions through the ring's table.
 *
 * io_uring cancels a task's requests when it exits, so a loop thread that
 * ends first hands its sockets back (the thread_exit hook, init.c); the
 * struct stays, type-stable, and is reused once nothing names it.
 */
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>

#include "core.h"

__thread struct loop *shim__loop;
static __thread bool loop_failed;	/* no ring for this thread */
static struct loop *retired;		/* dead loops, reused at refs 0 */

const struct loop_ops *shim__loop_ops;
const struct ring_ops *shim__ring_ops;

static void first_ring_failed(int err)
{
	char reason[96];

	if (err == -EOPNOTSUPP) {
		shim__say("uringshim: io_uring lacks recv/send/poll/cancel: "
			  "passthrough\n");
		snprintf(reason, sizeof(reason), "io_uring lacks needed ops");
	} else {
		shim__say("uringshim: io_uring unavailable (%s): passthrough\n",
			  strerror(-err));
		snprintf(reason, sizeof(reason), "io_uring unavailable (%s)",
			 strerror(-err));
	}
	WR(shim.state, SHIM_STATE_PASSTHROUGH);
	shim__stats_set_state(SHIM_STATE_PASSTHROUGH, reason);
}

static void first_ring_up(struct loop *l)
{
	WR(shim.state, SHIM_STATE_ACTIVE);
	shim__stats->ring_flags = ring_setup_flags(&l->ring);
	shim__stats->features = SHIM_FEAT_RECV_RING | SHIM_FEAT_WAIT_RING |
		(shim__cfg.send_mode == MODE_SEND_BATCH ?
		 SHIM_FEAT_SEND_BATCH : 0) |
		(shim__cfg.sqpoll_cpu >= 0 ? SHIM_FEAT_SQPOLL : 0) |
		(shim__cfg.adaptive ? SHIM_FEAT_ADAPTIVE : 0);
	shim__stats_set_state(SHIM_STATE_ACTIVE, "");
}

/* The eventfd read armed in the ring: completing it is the wake. */
static int arm_wake(struct loop *l)
{
	return ring_prep_read(&l->ring, UD_WAKE, l, l->wake_fd, &l->wake_buf,
			      sizeof(l->wake_buf));
}

void loop_on_wake(struct ring *r, const struct ring_cqe *c)
{
	(void)c;
	arm_wake(r->owner);
}

_Static_assert(offsetof(struct loop, lock) == 0 &&
	       offsetof(struct loop, cond) == sizeof(pthread_mutex_t),
	       "loop_struct keeps the lock and the cond");

/* A struct for a new loop: a retired one nothing names, or a new one. */
static struct loop *loop_struct(void)
{
	struct loop **pp, *l;

	for (pp = &retired; (l = *pp); pp = &l->next) {
		loop_lock(l);	/* nobody still inside it */
		if (!RD(l->refs)) {
			*pp = l->next;
			memset((char *)l + sizeof(l->lock) + sizeof(l->cond),
			       0, sizeof(*l) - sizeof(l->lock) -
			       sizeof(l->cond));
			loop_unlock(l);
			return l;
		}
		loop_unlock(l);
	}
	l = calloc(1, sizeof(*l));
	if (l) {
		pthread_mutex_init(&l->lock, NULL);
		pthread_cond_init(&l->cond, NULL);
	}
	return l;
}

static int loop_setup(struct loop *l)
{
	struct ring_params p = {
		.entries = shim__cfg.ring_entries,
		.taskrun = shim__cfg.taskrun_mode == MODE_TASKRUN_DEFER ?
			   RING_TASKRUN_DEFER :
			   shim__cfg.taskrun_mode == MODE_TASKRUN_SIGNAL ?
			   RING_TASKRUN_SIGNAL : RING_TASKRUN_COOP,
		.sqpoll_cpu = shim__cfg.sqpoll_cpu,
		.recv_bufs = shim__cfg.recv_mode == MODE_RECV_MULTISHOT,
		.fault = shim__cfg.fault,
	};
	int ret;

	l->wake_fd = l->err_epfd = -1;
	ret = ring_setup(&l->ring, &p, shim__ring_ops, l);
	if (ret)
		return ret;
	/* The shim's own fds at the top of the table (fdnum.c). */
	l->wake_fd = shim__fd_high(eventfd(0, EFD_CLOEXEC));
	if (l->wake_fd < 0) {
		ret = -errno;
		goto out_exit_ring;
	}
	ret = arm_wake(l);
	if (ret)
		goto out_close_wake;
	l->err_epfd = shim__fd_high(REAL(epoll_create1)(EPOLL_CLOEXEC));
	return 0;

out_close_wake:
	real_close(l->wake_fd);
	l->wake_fd = -1;
out_exit_ring:
	ring_exit(&l->ring);
	return ret;
}

static pthread_key_t loop_key;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;
static bool key_ok;

static void loop_thread_exit(void *arg)
{
	struct loop *l = arg;

	if (l == shim__loop && !shim__depth && shim__loop_ops->thread_exit)
		shim__loop_ops->thread_exit(l);
}

static void key_make(void)
{
	key_ok = !pthread_key_create(&loop_key, loop_thread_exit);
}

struct loop *loop_get(void)
{
	struct loop *l = shim__loop;
	int state = shim.state, ret;

	if (l || loop_failed ||
	    (state != SHIM_STATE_INIT && state != SHIM_STATE_ACTIVE))
		return l;
	/* Spinning on plain epoll_wait (URINGSHIM_SPIN_RING=0): no ring. */
	if (shim__cfg.spin_ns && !shim__cfg.spin_ring)
		return NULL;
	l = loop_struct();
	ret = l ? loop_setup(l) : -ENOMEM;
	if (ret) {
		if (l) {
			l->dead = true;
			l->next = retired;
			retired = l;
		}
		loop_failed = true;
		STAT_INC(fallbacks);
		if (!shim.loops)
			first_ring_failed(ret);
		else
			shim__log(LOG_WARN, "uringshim: no ring for tid %d "
				  "(%s): its sockets stay plain\n",
				  (int)shim__gettid(), strerror(-ret));
		return NULL;
	}
	l->tid = shim__gettid();
	l->refs = 1;		/* the thread itself */
	l->events_avg = 4 * 16;	/* starts on the ring (adaptive parking) */
	WR(shim.ring_made, true);
	l->next = shim.loops;
	shim.loops = l;
	shim__loop = l;
	pthread_once(&key_once, key_make);
	if (key_ok)
		pthread_setspecific(loop_key, l);
	if (state == SHIM_STATE_INIT)
		first_ring_up(l);
	shim__log(LOG_INFO, "uringshim: ring up on tid %d\n", (int)l->tid);
	return l;
}

bool loop_possible(void)
{
	int state = RD(shim.state);

	return !loop_failed &&
	       (state == SHIM_STATE_INIT || state == SHIM_STATE_ACTIVE);
}

void loop_ref(struct loop *l)
{
	__atomic_add_fetch(&l->refs, 1, __ATOMIC_RELAXED);
}

void loop_unref(struct loop *l)
{
	__atomic_sub_fetch(&l->refs, 1, __ATOMIC_RELAXED);
}

int loop_turn(struct loop *l, unsigned int wait_nr,
	      const struct timespec *ts, const sigset_t *sigmask)
{
	int ret;

	shim__loop_ops->flush(l);
	loop_unlock(l);
	if (wait_nr && shim__cfg.wait_mode == MODE_WAIT_DIRECT &&
	    l->ring.pending)
		ring_enter(&l->ring, 0, NULL, NULL);	/* mechanism 3 off */
	ret = ring_enter(&l->ring, wait_nr, ts, sigmask);
	loop_lock(l);
	ring_reap(&l->ring);
	return ret;
}

void loop_wake(struct loop *l)
{
	uint64_t one = 1;

	if (l && l->wake_fd >= 0 && !loop_is_mine(l)) {
		STAT_INC(shim_syscalls);
		if (real_write(l->wake_fd, &one, sizeof(one)) < 0)
			shim__log(LOG_DEBUG, "uringshim: wake failed\n");
	}
}

void loop_flush_before_block(void)
{
	struct loop *l = shim__loop;

	if (likely(!l || !RD(l->dirty)) || shim__depth)
		return;
	loop_lock(l);
	loop_turn(l, 0, NULL, NULL);
	loop_unlock(l);
}

void loop_flush_sync(int slices)
{
	struct timespec slice = { 0, 100 * 1000 * 1000 };
	struct loop *l = shim__loop;
	int rounds;

	if (!l || shim__depth)
		return;
	loop_lock(l);
	for (rounds = 0; rounds < slices; rounds++) {
		shim__loop_ops->flush(l);
		if (!l->queued && !l->ring.pending)
			break;
		loop_turn(l, 1, &slice, NULL);
	}
	if (l->queued)
		shim__log(LOG_WARN, "uringshim: %llu bytes still queued\n",
			  (unsigned long long)l->queued);
	loop_unlock(l);
}

void loop_flush_others(void)
{
	struct timespec tick = { 0, 10 * 1000 * 1000 };
	int rounds;

	if (shim__depth || !RD(shim.loops))
		return;
	for (rounds = 0; rounds < 200; rounds++) {
		struct loop *l;
		bool left = false;

		shim_lock();
		for (l = shim.loops; l; l = l->next) {
			if (l == shim__loop || !loop_has_work(l))
				continue;
			left = true;
			loop_wake(l);
		}
		shim_unlock();
		if (!left)
			return;
		nanosleep(&tick, NULL);
	}
	shim__log(LOG_WARN, "uringshim: other threads still hold queued "
		  "bytes\n");
}

void loop_retire(struct loop *l)
{
	struct loop **pp;

	for (pp = &shim.loops; *pp; pp = &(*pp)->next)
		if (*pp == l) {
			*pp = l->next;
			break;
		}
	ring_exit(&l->ring);
	if (l->wake_fd >= 0)
		real_close(l->wake_fd);
	if (l->err_epfd >= 0)
		real_close(l->err_epfd);
	l->wake_fd = l->err_epfd = -1;
	if (l->orphans_n)
		shim__log(LOG_WARN, "uringshim: tid %d exits with %d closed "
			  "sockets unfinished\n", (int)l->tid, l->orphans_n);
	loop_budget_give(l, l->budget);
	shim__loop = NULL;
	l->dead = true;
	loop_unref(l);		/* the thread's own */
	l->next = retired;
	retired = l;
	pthread_cond_broadcast(&l->cond);
}

void loop_forget_child(void)
{
	struct loop *l, *next;

	for (l = shim.loops; l; l = next) {
		next = l->next;
		ring_forget_child(&l->ring);
		if (l->wake_fd >= 0)
			real_close(l->wake_fd);
		if (l->err_epfd >= 0)
			real_close(l->err_epfd);
		pthread_mutex_init(&l->lock, NULL);
		pthread_cond_init(&l->cond, NULL);
		l->dead = true;
		l->refs = 0;
		l->next = retired;
		retired = l;
	}
	for (l = retired; l; l = l->next) {
		pthread_mutex_init(&l->lock, NULL);
		pthread_cond_init(&l->cond, NULL);
		l->refs = 0;
	}
	shim.loops = NULL;
	shim.ring_made = false;
	shim__loop = NULL;
	loop_failed = false;
	if (key_ok)
		pthread_setspecific(loop_key, NULL);
}

/* ---- the process-wide send budget (URINGSHIM_SEND_MAX_TOTAL) ---- */

/*
 * Loops take the budget in chunks, so the per-write check is local and
 * the shared counter moves once per chunk, not once per write.
 */
static uint64_t budget_chunk(void)
{
	uint64_t c = shim__cfg.send_max_total / 64;

	return c < 65536 ? 65536 : c;
}

bool loop_budget_take(struct loop *l, uint64_t n)
{
	int64_t want, have;

	if (l->queued + n <= l->budget)
		return true;
	want = l->queued + n - l->budget;
	if ((uint64_t)want < budget_chunk())
		want = budget_chunk();
	have = __atomic_load_n(&shim.send_budget, __ATOMIC_RELAXED);
	do {
		if (have <= 0)
			return false;
		if (have < want)
			want = have;
	} while (!__atomic_compare_exchange_n(&shim.send_budget, &have,
					      have - want, true,
					      __ATOMIC_RELAXED,
					      __ATOMIC_RELAXED));
	l->budget += want;
	return l->queued + n <= l->budget;
}

void loop_budget_give(struct loop *l, uint64_t n)
{
	if (n > l->budget - l->queued)
		n = l->budget - l->queued;
	l->budget -= n;
	__atomic_add_fetch(&shim.send_budget, (int64_t)n, __ATOMIC_RELAXED);
}

/* Room for more queued bytes under the budget (may take a chunk). */
uint64_t loop_budget_room(struct loop *l, uint64_t want)
{
	if (loop_budget_take(l, want))
		return want;
	return l->budget - l->queued;
}

/* Queued bytes leave: keep at most two chunks of slack. */
void loop_queued_sub(struct loop *l, uint64_t n)
{
	l->queued -= n;
	if (l->budget - l->queued > 2 * budget_chunk())
		loop_budget_give(l, l->budget - l->queued - budget_chunk());
}
