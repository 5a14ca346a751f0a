/*
 * loop.c - one ring per event-loop thread.
 *
 * A thread gets its ring on its first epoll use, so SINGLE_ISSUER (and
 * DEFER_TASKRUN, when chosen) hold by construction, and threads that each
 * run their own epoll loop (memcached workers) never share a ring or wait
 * for each other in the kernel.  io_uring cancels a task's requests when
 * it exits, so a loop thread that ends first pushes its queued bytes out
 * and hands its sockets back to the kernel; the struct outlives the ring
 * until the last fd that names it is freed.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

__thread struct shim_loop *shim__loop;
static __thread bool loop_failed;	/* no ring for this thread */
static pthread_key_t loop_key;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;
static bool key_ok;

static void loop_thread_exit(void *arg);

static void key_make(void)
{
	key_ok = !pthread_key_create(&loop_key, loop_thread_exit);
}

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

static void first_ring_up(void)
{
	WR(shim.state, SHIM_STATE_ACTIVE);
	shim__stats->features = SHIM_FEAT_RECV_RING | SHIM_FEAT_WAIT_RING |
		(shim.cfg.send_mode == MODE_SEND_BATCH ?
		 SHIM_FEAT_SEND_BATCH : 0) |
		(shim.cfg.sqpoll_cpu >= 0 ? SHIM_FEAT_SQPOLL : 0);
	shim__stats_set_state(SHIM_STATE_ACTIVE, "");
}

/*
 * The calling thread's loop, its ring created on first use (lock held).
 * NULL when the shim is not accelerating or this thread could not get a
 * ring.  The first failure in a process makes it passthrough with one
 * line; a later thread's failure only keeps that thread's sockets plain.
 */
struct shim_loop *shim__loop_get(void)
{
	struct shim_loop *l = shim__loop;
	int state = shim.state, ret;

	if (l || loop_failed ||
	    (state != SHIM_STATE_INIT && state != SHIM_STATE_ACTIVE))
		return l;
	l = calloc(1, sizeof(*l));
	ret = l ? shim__ring_setup(l) : -ENOMEM;
	if (ret) {
		free(l);
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
	WR(shim.ring_made, true);
	l->next = shim.loops;
	shim.loops = l;
	shim__loop = l;
	pthread_once(&key_once, key_make);
	if (key_ok)
		pthread_setspecific(loop_key, l);
	if (state == SHIM_STATE_INIT)
		first_ring_up();
	shim__log(LOG_INFO, "uringshim: ring up on tid %d\n", (int)l->tid);
	return l;
}

/* Could the calling thread get a ring?  (a hint, no lock needed) */
bool shim__loop_possible(void)
{
	int state = RD(shim.state);

	return !loop_failed &&
	       (state == SHIM_STATE_INIT || state == SHIM_STATE_ACTIVE);
}

/* An fd that named l is gone: a dead loop's struct goes with the last. */
void shim__loop_unref(struct shim_loop *l)
{
	if (l && !--l->refs && l->dead)
		free(l);
}

/*
 * Flush the calling thread's send queues and wait (at most slices x 0.1 s)
 * until the bytes are in the kernel.  Used by exec, exit, thread exit.
 */
void shim__flush_all_sync(int slices)
{
	struct timespec slice = { 0, 100 * 1000 * 1000 };
	struct shim_loop *l = shim__loop;
	int rounds;

	if (!l || shim__depth)
		return;
	shim_lock();
	for (rounds = 0; rounds < slices; rounds++) {
		shim__ring_flush_dirty(l);
		if (!l->queued && !l->pending_sqes)
			break;
		shim__ring_turn(l, 1, &slice);
	}
	if (l->queued)
		shim__log(LOG_WARN, "uringshim: %llu bytes still queued\n",
			  (unsigned long long)l->queued);
	shim_unlock();
}

/*
 * Process exit or exec from one thread while other loop threads hold
 * queued bytes: only their own thread may drive their ring, so wake them
 * and give them a bounded moment (they are usually in their wait).
 */
void shim__flush_others(void)
{
	struct timespec tick = { 0, 10 * 1000 * 1000 };
	int rounds;

	if (shim__depth || !RD(shim.loops))
		return;
	for (rounds = 0; rounds < 200; rounds++) {
		struct shim_loop *l;
		bool left = false;

		shim_lock();
		for (l = shim.loops; l; l = l->next) {
			if (l == shim__loop || !shim__ring_has_work(l))
				continue;
			left = true;
			shim__ring_wake(l);
		}
		shim_unlock();
		if (!left)
			return;
		nanosleep(&tick, NULL);
	}
	shim__log(LOG_WARN, "uringshim: other threads still hold queued "
		  "bytes\n");
}

/* Unlink l from shim.loops (lock held). */
static void loop_unlink(struct shim_loop *l)
{
	struct shim_loop **pp;

	for (pp = &shim.loops; *pp; pp = &(*pp)->next)
		if (*pp == l) {
			*pp = l->next;
			break;
		}
}

/*
 * Bytes the flush could not deliver (the peer is not reading): the send in
 * flight is cancelled (it reports what it moved) and the rest goes to the
 * drainer thread on a private dup, as after close, so the thread's exit
 * never waits on a peer (lock held, l's thread).
 */
static void hand_queues_to_drainer(struct shim_loop *l)
{
	struct timespec tick = { 0, 10 * 1000 * 1000 };
	int fd, round;

	for (fd = 0; fd < shim.nfds && l->queued; fd++) {
		struct shim_fd *f = shim.fds[fd];
		int dupfd;

		if (!f || f->loop != l || f->state != FD_ACCEL ||
		    f->stail == f->shead)
			continue;
		if (f->send_inflight)
			shim__ring_prep_cancel_send(f);
		for (round = 0; round < 10 && f->send_inflight; round++) {
			shim__ring_turn(l, 1, &tick);
			if (shim.fds[fd] != f)
				break;
		}
		if (shim.fds[fd] != f || f->send_inflight ||
		    f->stail == f->shead)
			continue;
		dupfd = shim__fd_dup_private(f->fd);
		if (dupfd >= 0 && shim__drain_handoff(f, dupfd, false))
			real_close(dupfd);
	}
}

/*
 * A loop thread exits (pthread key destructor).  Its ring ops would be
 * cancelled with it, so: queued bytes out, sockets back to the kernel,
 * epoll sets unbound (another thread may bind them), then the ring goes.
 */
static void loop_thread_exit(void *arg)
{
	struct shim_loop *l = arg;
	struct shim_ep *ep;
	int fd;

	if (l != shim__loop || shim__depth)
		return;
	shim__log(LOG_INFO, "uringshim: tid %d exits: flushing %llu bytes, "
		  "closing its ring\n", (int)l->tid,
		  (unsigned long long)RD(l->queued));
	/* Briefly: what a slow peer leaves goes to the drainer thread. */
	shim__flush_all_sync(5);
	shim_lock();
	hand_queues_to_drainer(l);
	shim__release_loop(l);
	for (fd = 0; fd < shim.nfds; fd++) {
		ep = shim.eps[fd];
		if (ep && ep->loop == l) {
			WR(ep->loop, NULL);
			ep->waited = false;
		}
		if (ep && ep->kpoll == l)
			shim__ring_prep_cancel_ep(l, ep);
	}
	shim__ring_turn(l, 0, NULL);
	loop_unlink(l);
	shim__ring_exit(l);
	/* Polls the ring can no longer complete. */
	for (fd = 0; fd < shim.nfds; fd++) {
		ep = shim.eps[fd];
		if (ep && ep->kpoll == l) {
			ep->kpoll = NULL;
			ep->kready = true;	/* let the real wait tell */
		}
	}
	while (l->dead_eps) {
		ep = l->dead_eps;
		l->dead_eps = ep->dead_next;
		free(ep);
	}
	if (l->orphans_n)
		shim__log(LOG_WARN, "uringshim: tid %d exits with %d closed "
			  "sockets unfinished\n", (int)l->tid, l->orphans_n);
	shim__loop = NULL;
	l->dead = true;
	if (!l->refs)
		free(l);
	pthread_cond_broadcast(&shim.cond);
	shim_unlock();
}

/* Fork child: no ring of the parent's is ours (lock reinitialised). */
void shim__loops_forget_child(void)
{
	struct shim_loop *l, *next;

	for (l = shim.loops; l; l = next) {
		next = l->next;
		shim__ring_teardown_child(l);
		free(l);
	}
	shim.loops = NULL;
	shim.ring_made = false;
	shim__loop = NULL;
	loop_failed = false;
	if (key_ok)
		pthread_setspecific(loop_key, NULL);
}
