/*
 * epoll.c - emulated epoll sets: ctl, binding sets to loops, nested sets,
 * and the wait inside the ring.
 *
 * Each thread that waits on an epoll set gets a loop of its own; the set
 * becomes "bound" to that loop, and sockets added to a bound set are
 * accelerated on it, whichever thread adds them.  A set another thread
 * then waits on gets its accelerated members handed back to the kernel
 * first; one that two threads take turns waiting on stays kernel-only.
 * A socket whose registrations are all gone (EPOLL_CTL_DEL) and that is
 * added to a set of another loop moves to that loop with the bytes it
 * holds (the proxy and memcached hand-off).
 *
 * The kernel set (listening sockets, pipes, timers...) is watched from
 * inside the ring by a one-shot POLL_ADD on the epfd; only when it fires
 * is the real epoll_wait(timeout 0) called, so kernel events are fetched
 * at the moment they are returned and can never be stale.
 *
 * Locks: binding decisions and the nested-set table under shim.lock; a
 * set's ready list under its owner loop's lock; never two loop locks, so
 * the wait collects its events one lock at a time, after the ring turn.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "core.h"

/* ---- set records ---- */

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
 * The record of epfd, made on first sight (shim.lock held).  known: the
 * caller just made epfd with epoll_create*; otherwise a record is made
 * only for a real epoll fd, so a bogus epfd still gets its error from the
 * kernel.
 */
struct sep *ep_get(int epfd, bool known)
{
	struct sep *ep = fdtab_ep(epfd);

	if (ep || epfd < 0 || (unsigned int)epfd >= shim__fdtab_max)
		return ep;
	if (!known && !fd_is_epoll(epfd))
		return NULL;
	if (!fdtab_slot(epfd, true))
		return NULL;
	ep = sep_alloc();
	if (!ep)
		return NULL;
	ep->epfd = epfd;
	fdtab_set_ep(epfd, ep);
	WR(shim.eps_known, true);
	return ep;
}

void ep_note_created(int epfd)
{
	if (epfd < 0 || shim__depth || !shim__ready())
		return;
	shim_lock();
	ep_get(epfd, true);
	shim_unlock();
}

static bool can_bind(void)
{
	return shim__loop || (!RD(shim.ring_made) && loop_possible());
}

/*
 * Bind an unbound set to the calling thread's loop (shim.lock held).
 * Loops are made by a thread's first wait; here only the process's
 * first, so that a program that adds sockets before it ever waits is
 * accelerated from the start.
 */
static void bind_here(struct sep *ep, bool waiting)
{
	struct loop *l = shim__loop;

	if (ep->loop || RD(ep->nobind))
		return;
	if (!l && (waiting || !shim.ring_made))
		l = loop_get();
	if (l && RD(shim.state) == SHIM_STATE_ACTIVE)
		WR(ep->loop, l);
}

static uint8_t *kreg_of(int fd)
{
	struct fdslot *s = fdtab_peek(fd);

	return s ? &s->kreg : NULL;
}

static void kreg_track(int op, int fd, int ret)
{
	uint8_t *k;

	if (ret || (op != EPOLL_CTL_ADD && op != EPOLL_CTL_DEL))
		return;
	if (op == EPOLL_CTL_ADD && !fdtab_peek(fd)) {
		shim_lock();
		fdtab_slot(fd, true);
		shim_unlock();
	}
	k = kreg_of(fd);
	if (!k || RD(*k) == UINT8_MAX)
		return;
	if (op == EPOLL_CTL_ADD)
		__atomic_add_fetch(k, 1, __ATOMIC_RELAXED);
	else if (RD(*k))
		__atomic_sub_fetch(k, 1, __ATOMIC_RELAXED);
}

static uint8_t kwait_of(int epfd)
{
	struct fdslot *s = fdtab_peek(epfd);

	return s ? RD(s->kwait) : 0;
}

/* ---- kicks: a thread blocked in the kernel's wait ---- */

/*
 * A thread blocked in the kernel's epoll_wait on a set cannot see the
 * set's emulated registrations.  When one joins such a set, a ready
 * eventfd joins its kernel part with a data value only the shim uses (the
 * address of the set's record), so that wait returns.  Every kernel wait
 * result of the set drops that event and takes the eventfd out again; a
 * wait it woke for nothing else starts over, and then sees the emulated
 * members.  kick_lock is a leaf: taken under any other lock, none inside.
 */
static uint64_t kick_data(const struct sep *ep)
{
	return (uint64_t)(uintptr_t)ep;
}

static void kick(struct sep *ep)
{
	struct epoll_event ev = { .events = EPOLLIN,
				  .data.u64 = kick_data(ep) };
	int fd;

	shim_mutex_lock(&ep->kick_lock);
	if (ep->kicked)
		goto out;
	STAT_ADD(shim_syscalls, 4);	/* eventfd, its move, the ADD */
	fd = shim__fd_high(eventfd(1, EFD_CLOEXEC | EFD_NONBLOCK));
	if (fd < 0)
		goto out_warn;
	/* Set first: the waiter returns as soon as the ADD is done. */
	ep->kick_fd = fd;
	WR(ep->kicked, true);
	if (!real_epoll_ctl(ep->epfd, EPOLL_CTL_ADD, fd, &ev))
		goto out;
	WR(ep->kicked, false);
	real_close(fd);
out_warn:
	shim__log(LOG_WARN, "uringshim: cannot wake the kernel wait on "
		  "epoll fd %d\n", ep->epfd);
out:
	shim_mutex_unlock(&ep->kick_lock);
}

/* Kick ep if a thread is in the kernel's wait on it. */
static void kick_waiter(struct sep *ep)
{
	struct fdslot *s = fdtab_peek(ep->epfd);

	if (s && RD(s->kwait))
		kick(ep);
}

static void kick_end(struct sep *ep)
{
	shim_mutex_lock(&ep->kick_lock);
	if (ep->kicked) {
		STAT_ADD(shim_syscalls, 2);
		real_epoll_ctl(ep->epfd, EPOLL_CTL_DEL, ep->kick_fd, NULL);
		real_close(ep->kick_fd);
		WR(ep->kicked, false);
	}
	shim_mutex_unlock(&ep->kick_lock);
}

/* Drop the kick from n kernel events; returns how many are left. */
static int unkick(struct sep *ep, struct epoll_event *ev, int n, bool *seen)
{
	int i, left = 0;

	*seen = false;
	if (!RD(ep->kicked) || n <= 0)
		return n;
	for (i = 0; i < n; i++) {
		if (ev[i].data.u64 == kick_data(ep))
			*seen = true;
		else
			ev[left++] = ev[i];
	}
	if (*seen)
		kick_end(ep);
	return left;
}

/* ---- nested sets ---- */

/*
 * A set E added to another set O goes back to the kernel (kernel_only),
 * but a member whose bytes the ring had already pulled stays emulated
 * until they are read, and the kernel cannot count those bytes for E.
 * O's waits, and polls of O, therefore report E themselves while E has
 * such events, as the kernel would: EPOLLIN with O's registration data,
 * level-triggered, or once per ADD/MOD for EPOLLET and EPOLLONESHOT.  The
 * table (shim.lock) holds every registration of a known epoll fd in
 * another set, and is walked only when it is not empty.
 */
struct nest {
	int outer, inner;		/* epfds: inner is a member of outer */
	uint32_t events;		/* as registered in outer */
	epoll_data_t data;
	bool fired;			/* ET/ONESHOT: reported since ADD/MOD */
	bool kernel_turn;		/* one slot left: kernel's turn */
};

#define NEST_MAX_DEPTH	5	/* the kernel allows 4 levels (EP_MAX_NESTS) */
#define NEST_EVENTS	(EPOLLIN | EPOLLRDNORM)	/* all an epoll fd reports */

static struct nest *nests;
static int nests_n, nests_cap;

static struct nest *nest_find(int outer, int inner)
{
	int i;

	for (i = 0; i < nests_n; i++)
		if (nests[i].outer == outer && nests[i].inner == inner)
			return &nests[i];
	return NULL;
}

static void nest_drop(struct nest *x)
{
	WR(nests_n, nests_n - 1);
	*x = nests[nests_n];
	if (!nests_n) {
		free(nests);
		nests = NULL;
		nests_cap = 0;
	}
}

static struct nest *nest_new(int outer, int inner)
{
	struct nest *x;

	if (nests_n == nests_cap) {
		int cap = nests_cap ? 2 * nests_cap : 8;

		x = realloc(nests, cap * sizeof(*x));
		if (!x)
			return NULL;
		nests = x;
		nests_cap = cap;
	}
	x = &nests[nests_n];
	WR(nests_n, nests_n + 1);
	memset(x, 0, sizeof(*x));
	x->outer = outer;
	x->inner = inner;
	return x;
}

/* A registration of a known epoll fd in another set changed (shim.lock). */
static void nest_ctl(int outer, int op, int inner,
		     const struct epoll_event *ev)
{
	struct nest *x = nest_find(outer, inner);
	struct sep *o;

	if (op == EPOLL_CTL_DEL) {
		if (x)
			nest_drop(x);
		return;
	}
	if (!ev || (op != EPOLL_CTL_ADD && op != EPOLL_CTL_MOD))
		return;
	if (!x && op == EPOLL_CTL_ADD)
		x = nest_new(outer, inner);
	if (!x) {
		shim__log(LOG_WARN, "uringshim: epoll fd %d nested in %d: "
			  "not tracked (no memory)\n", inner, outer);
		return;
	}
	x->events = ev->events;
	x->data = ev->data;
	x->fired = false;
	/* A loop thread waiting on outer in its ring re-checks it. */
	o = fdtab_ep(outer);
	if (o && o->loop && !loop_is_mine(o->loop))
		loop_wake(o->loop);
}

static void nest_forget(int fd)
{
	int i;

	for (i = nests_n - 1; i >= 0; i--)
		if (nests[i].outer == fd || nests[i].inner == fd)
			nest_drop(&nests[i]);
}

/* Does an emulated member of ep have events to report? (owner locked) */
static bool emul_ready_locked(struct sep *ep)
{
	struct reg *r;

	for (r = ep->ready_head; r; r = r->rnext)
		if (!r->oneshot_fired &&
		    (fd_events(r->f) & (r->events | EPOLLERR | EPOLLHUP)))
			return true;
	return false;
}

/*
 * The same, taking the owner's lock (no other loop lock held).  The
 * owner can change while we lock it: only once nemul reached 0, and then
 * nothing is ready.
 */
static bool emul_ready(struct sep *ep)
{
	struct loop *o = RD(ep->owner);
	bool ready;

	if (!o)
		return false;
	loop_lock(o);
	ready = RD(ep->owner) == o && emul_ready_locked(ep);
	loop_unlock(o);
	return ready;
}

static bool nest_any(int outer, int depth);

/* Does x's inner set have events outer must report for it now? */
static bool nest_reportable(const struct nest *x, int depth)
{
	struct sep *inner;

	if (!(x->events & NEST_EVENTS) || depth >= NEST_MAX_DEPTH ||
	    (x->fired && (x->events & (EPOLLET | EPOLLONESHOT))))
		return false;
	inner = fdtab_ep(x->inner);
	return inner && (emul_ready(inner) ||
			 nest_any(inner->epfd, depth + 1));
}

static bool nest_any(int outer, int depth)
{
	int i;

	for (i = 0; i < nests_n; i++)
		if (nests[i].outer == outer &&
		    nest_reportable(&nests[i], depth))
			return true;
	return false;
}

/* Does a set nested in ep hold events only the shim sees?  (no locks) */
static bool nest_ready(struct sep *ep)
{
	bool ready;

	if (!RD(nests_n))
		return false;
	shim_lock();
	ready = nest_any(ep->epfd, 0);
	shim_unlock();
	return ready;
}

static bool data_in(const struct epoll_event *ev, int n, epoll_data_t data)
{
	int i;

	for (i = 0; i < n; i++)
		if (ev[i].data.u64 == data.u64)
			return true;
	return false;
}

/*
 * The nested sets' events after the kernel's own (kern[0..nk)): a set the
 * kernel reported itself just now is not reported twice.  A ONESHOT report
 * disarms the kernel's registration too, as the kernel's own report would.
 * shim.lock held.
 */
static int collect_nested(struct sep *ep, struct epoll_event *out, int room,
			  const struct epoll_event *kern, int nk)
{
	struct epoll_event off;
	int i, n = 0;

	for (i = 0; i < nests_n && n < room; i++) {
		struct nest *x = &nests[i];

		if (x->outer != ep->epfd || !nest_reportable(x, 0))
			continue;
		if (!data_in(kern, nk, x->data)) {
			out[n].events = x->events & NEST_EVENTS;
			out[n].data = x->data;
			n++;
		}
		if (!(x->events & (EPOLLET | EPOLLONESHOT)))
			continue;
		x->fired = true;
		if (x->events & EPOLLONESHOT) {
			off.events = 0;
			off.data = x->data;
			STAT_INC(shim_syscalls);
			real_epoll_ctl(ep->epfd, EPOLL_CTL_MOD, x->inner, &off);
		}
	}
	return n;
}

/* ---- collecting events (no lock held on entry) ---- */

/*
 * Kernel-set events, fetched at the moment they are returned, then the
 * nested sets' (which keep a slot: with one slot they take turns).
 * kready is read and cleared racily: a stale "ready" costs one real
 * epoll_wait(0) that finds nothing, a stale "not ready" is set again by
 * the poll's completion.
 */
static int collect_kernel(struct sep *ep, struct epoll_event *out, int room)
{
	struct nest *x = NULL;
	int i, n = 0, kroom = room;

	if (RD(nests_n)) {
		shim_lock();
		for (i = 0; i < nests_n && !x; i++)
			if (nests[i].outer == ep->epfd &&
			    nest_reportable(&nests[i], 0))
				x = &nests[i];
		if (x && room > 0) {
			x->kernel_turn = !x->kernel_turn;
			if (room > 1 || !x->kernel_turn)
				kroom = room - 1;
		}
		shim_unlock();
	}
	/* No room: still ready next time. */
	if (RD(ep->kready) && kroom > 0) {
		bool seen;

		WR(ep->kready, false);
		STAT_INC(shim_syscalls);
		n = real_epoll_wait(ep->epfd, out, kroom, 0);
		if (n < 0)
			n = 0;
		n = unkick(ep, out, n, &seen);
	}
	if (x) {
		shim_lock();
		n += collect_nested(ep, out + n, room - n, out, n);
		shim_unlock();
	}
	return n;
}

/*
 * The emulated ready list (owner locked).  Level-triggered entries rotate
 * to the tail, so nothing starves even with maxevents 1.
 */
static int collect_emulated_locked(struct sep *ep, struct epoll_event *out,
				   int max)
{
	struct reg *r, *next, *stop;
	int n = 0;

	if (max <= 0)
		return 0;
	stop = ep->ready_tail;
	for (r = ep->ready_head; r && n < max; r = next) {
		bool last = r == stop;
		uint32_t m;

		next = r->rnext;
		m = fd_events(r->f) & (r->events | EPOLLERR | EPOLLHUP);
		reg_unready(r);
		if (!r->oneshot_fired && m) {
			out[n].events = m;
			out[n].data = r->data;
			n++;
			if (r->events & EPOLLONESHOT)
				r->oneshot_fired = true;
			else if (!(r->events & EPOLLET))
				reg_ready(r);	/* to the tail */
		}
		if (last)
			break;
	}
	return n;
}

static int collect_emulated(struct sep *ep, struct epoll_event *out, int max)
{
	struct loop *o = RD(ep->owner);
	int n = 0;

	if (!o || max <= 0)
		return 0;
	loop_lock(o);
	if (RD(ep->owner) == o)
		n = collect_emulated_locked(ep, out, max);
	loop_unlock(o);
	return n;
}

/*
 * Move up to max events into out.  Kernel events and the emulated ready
 * list take turns going first, so neither starves the other.
 */
static int collect(struct sep *ep, struct epoll_event *out, int max)
{
	int n;

	ep->kfirst = !ep->kfirst;
	if (ep->kfirst) {
		n = collect_kernel(ep, out, max);
		return n + collect_emulated(ep, out + n, max - n);
	}
	n = collect_emulated(ep, out, max);
	return n + collect_kernel(ep, out + n, max - n);
}

/* ---- adaptive parking: lone connections on plain syscalls ---- */

/*
 * Batching pays when one wait point carries several sockets' work.  When
 * a loop's waits find about one event each (a lone connection, a quiet
 * server), a ring wait costs more than the plain epoll_wait, read and
 * write it replaces: each message wakes the thread from the ring and
 * runs its receive as task work.  Such a loop "parks": its sockets go
 * back to the kernel (each remembering its one registration), its waits
 * become the kernel's, and it counts the events they return; when they
 * grow, it takes its sockets back.  Only sockets with one level-triggered
 * registration park, so no edge is ever made or lost.  Crossover:
 * DESIGN.md, "Adaptive parking".
 */
#define PARK_BELOW_X16		20		/* 1.25 events per wait */
#define UNPARK_ABOVE_X16	40		/* 2.5 events per wait */
#define PARK_MIN_WAITS		256		/* on the ring before parking */
#define UNPARK_MIN_WAITS	16		/* parked before coming back */
#define PARK_MAX_BACKOFF	12		/* x4096 after many flips */

/*
 * Parking is slow to start and quick to end: a load that grows is served
 * by the ring within a few waits.  A loop's batches are smaller on the
 * ring than on plain syscalls (each turn is quicker), so a load near the
 * crossover could flip it back and forth: each return to the ring
 * doubles the waits it must stay there before parking again.
 */
static unsigned int park_dwell(const struct loop *l)
{
	return l->parked ? UNPARK_MIN_WAITS : PARK_MIN_WAITS << l->park_flips;
}

static void count_events(struct loop *l, int n)
{
	if (n < 0)
		return;
	if (n > 64)
		n = 64;
	l->events_avg = (l->events_avg * 15 + n * 16) / 16;
	if (l->mode_waits < park_dwell(l))
		l->mode_waits++;
}

static bool parkable(const struct sfd *f)
{
	return f->state == FD_ACCEL && f->nregs == 1 && f->alias < 0 &&
	       !(f->regs[0].events & (EPOLLET | EPOLLONESHOT |
				      EPOLLEXCLUSIVE));
}

/* l's parkable sockets to the kernel (l's thread, nothing locked). */
static void park(struct loop *l)
{
	unsigned int c, i;

	loop_lock(l);
	l->parked = true;
	l->mode_waits = 0;
	for (c = 0; c < shim__fdtab_max / FDTAB_CHUNK; c++) {
		struct fdslot *chunk = RD(shim__fdtab[c]);

		for (i = 0; chunk && i < FDTAB_CHUNK; i++) {
			struct fdslot *s = &chunk[i];
			struct sfd *f = RD(s->f);

			if (!f || f->loop != l || f->fd != (int)(c *
			    FDTAB_CHUNK + i) || !parkable(f))
				continue;
			s->pk_events = f->regs[0].events;
			s->pk_data = f->regs[0].data;
			s->pk_epfd = f->regs[0].ep->epfd;
			s->pk_loop = l;
			WR(s->parked, true);
			fd_release(f);
		}
	}
	STAT_INC(parks);
	loop_unlock(l);
	shim__log(LOG_DEBUG, "uringshim: tid %d parks its sockets\n",
		  (int)l->tid);
}

/* Take parked sockets back into l's ring (l's thread, nothing locked). */
static void unpark(struct loop *l)
{
	unsigned int c, i;

	l->parked = false;
	l->mode_waits = 0;
	if (l->park_flips < PARK_MAX_BACKOFF)
		l->park_flips++;
	for (c = 0; c < shim__fdtab_max / FDTAB_CHUNK; c++) {
		struct fdslot *chunk = RD(shim__fdtab[c]);

		for (i = 0; chunk && i < FDTAB_CHUNK; i++) {
			struct fdslot *s = &chunk[i];
			int fd = c * FDTAB_CHUNK + i;
			struct epoll_event ev;
			struct sep *ep;
			struct sfd *f;

			if (!RD(s->parked) || s->pk_loop != l)
				continue;
			WR(s->parked, false);
			ep = fdtab_ep(s->pk_epfd);
			ev.events = s->pk_events;
			ev.data = s->pk_data;
			if (RD(s->f) || !ep || RD(ep->loop) != l ||
			    (RD(ep->owner) && RD(ep->owner) != l) ||
			    RD(s->kreg) == UINT8_MAX || !fd_accelerable(fd))
				continue;
			STAT_INC(shim_syscalls);
			if (real_epoll_ctl(s->pk_epfd, EPOLL_CTL_DEL, fd, NULL))
				continue;
			WR(s->kreg, 0);
			loop_lock(l);
			f = fd_accel(fd, l, true);
			if (f)
				reg_add(f, ep, &ev);
			loop_unlock(l);
			if (!f) {
				STAT_INC(shim_syscalls);
				real_epoll_ctl(s->pk_epfd, EPOLL_CTL_ADD, fd,
					       &ev);
			}
		}
	}
	STAT_INC(unparks);
	shim__log(LOG_DEBUG, "uringshim: tid %d takes its sockets back\n",
		  (int)l->tid);
}

/* fd joins the kernel set of a parked loop, to be taken back later. */
static void park_record(int fd, int epfd, const struct epoll_event *ev,
			struct loop *l)
{
	struct fdslot *s = fdtab_peek(fd);

	if (!s)
		return;
	s->pk_events = ev->events;
	s->pk_data = ev->data;
	s->pk_epfd = epfd;
	s->pk_loop = l;
	WR(s->parked, true);
}

/* The app changed fd's registrations: a parked record no longer holds. */
static void park_forget(int fd)
{
	struct fdslot *s = fdtab_peek(fd);

	if (s && RD(s->parked))
		WR(s->parked, false);
}

/* At a wait point of l's thread: change modes when the load says so. */
static void park_decide(struct loop *l)
{
	if (!shim__cfg.adaptive || shim__cfg.spin_ns ||
	    l->mode_waits < park_dwell(l))
		return;
	if (!l->parked && l->events_avg < PARK_BELOW_X16 && RD(l->accel_n))
		park(l);
	else if (l->parked && l->events_avg > UNPARK_ABOVE_X16)
		unpark(l);
}

/* ---- the wait inside the ring ---- */

void ep_on_poll(struct ring *r, const struct ring_cqe *c)
{
	struct sep *ep = c->token;

	(void)r;
	WR(ep->kpoll, NULL);
	if (ep->dead) {
		sep_free(ep);
		return;
	}
	/* Fired, or failed: let the real epoll_wait tell. */
	WR(ep->kready, c->res != -ECANCELED);
}

/* Closed sets whose poll is armed in l's ring: cancel it (l locked). */
void ep_flush_dead(struct loop *l)
{
	while (l->dead_eps) {
		struct sep *ep = l->dead_eps;

		l->dead_eps = ep->dead_next;
		ring_prep_cancel(&l->ring, UD_EPPOLL, ep, UD_NOP, NULL);
	}
}

/*
 * Mechanism 5: a wait point that carries fewer than two writes on average
 * cannot pay for the ring (an enter costs about two plain syscalls, and a
 * send completion that arrives alone forces a second enter): writes then
 * go straight to the kernel while it has room.
 */
#define ADAPT_MIN_BATCH_X16	(2 * 16)

static void adapt(struct loop *l)
{
	l->send_batch_avg = (l->send_batch_avg * 7 + l->iter_sends * 16) / 8;
	l->iter_sends = 0;
	l->direct_sends = shim__cfg.adaptive &&
			  l->send_batch_avg < ADAPT_MIN_BATCH_X16;
}

/* The kill file: this loop's sockets go back at its next waits. */
static void killfile_check(struct loop *l)
{
	if (!shim__cfg.killfile[0] || (++l->killfile_tick & 255))
		return;
	STAT_INC(shim_syscalls);
	if (access(shim__cfg.killfile, F_OK))
		return;
	shim__say("uringshim: kill file %s found: passthrough\n",
		  shim__cfg.killfile);
	WR(shim.state, SHIM_STATE_KILLED);
	shim__stats_set_state(SHIM_STATE_KILLED, "kill file present");
	fd_release_loop(l);
}

/*
 * URINGSHIM_SPIN_US: watch the ring for work instead of sleeping, until
 * stop (ns, CLOCK_MONOTONIC).  Completions are looked for in the CQ
 * itself; the kernel is entered only when the ring says task work waits
 * for us (or something is to be submitted).  Returns the events found,
 * 0 when the budget ran out, or -EINTR when a handler ran meanwhile.
 */
static int ring_spin(struct loop *l, struct sep *ep, struct epoll_event *ev,
		     int maxev, uint64_t stop)
{
	unsigned long gen = shim__sig_gen;
	uint64_t t0 = mono_ns(), now = t0;
	unsigned int i = 0;
	int n = 0;

	for (;;) {
		struct loop *o = RD(ep->owner);

		if (ring_cq_ready(&l->ring) || ring_needs_enter(&l->ring) ||
		    RD(ep->kready) || (o && RD(ep->ready_head)) ||
		    RD(nests_n)) {
			loop_lock(l);
			loop_turn(l, 0, NULL, NULL);
			loop_unlock(l);
			n = collect(ep, ev, maxev);
			if (n > 0)
				break;
		}
		if (shim__sig_gen != gen) {
			n = -EINTR;
			break;
		}
		if (!(++i & 15) && (now = mono_ns()) >= stop)
			break;
		cpu_relax();
	}
	now = mono_ns();
	STAT_ADD(spin_ns, now - t0);
	if (n > 0)
		STAT_INC(spin_hits);
	else if (!n)
		STAT_INC(spin_misses);
	return n;
}

/*
 * The emulated epoll_wait, on the loop thread.  Pending sends, receive
 * re-arms and the wait all go into one io_uring_enter.  Returns the event
 * count or -errno (-EINTR when a signal interrupted the wait, never
 * restarted, as the kernel does).
 */
static int ring_wait(struct loop *l, struct sep *ep, struct epoll_event *ev,
		     int maxev, const struct timespec *ts,
		     const sigset_t *sigmask)
{
	bool forever = !ts, nowait = ts && !ts->tv_sec && !ts->tv_nsec;
	bool spin = shim__cfg.spin_ns && !nowait;
	uint64_t end = 0;
	struct timespec left;
	int n, ret;

	if (ts && !nowait)
		end = mono_ns() + ts->tv_sec * 1000000000ull + ts->tv_nsec;
	for (;;) {
		struct loop *other = RD(ep->owner);
		bool ready = !nowait &&
			     ((RD(nests_n) && nest_ready(ep)) ||
			      (other && other != l && emul_ready(ep)));
		unsigned int wait_nr;

		loop_lock(l);
		STAT_INC(wait_points);
		adapt(l);
		killfile_check(l);
		fd_spill_holding(l);
		if (!RD(ep->kpoll) && !RD(ep->kready) &&
		    !ring_prep_poll(&l->ring, UD_EPPOLL, ep, ep->epfd, POLLIN))
			WR(ep->kpoll, l);
		if (!ready && !nowait)
			ready = RD(ep->kready) ||
				(RD(ep->owner) == l && emul_ready_locked(ep));
		wait_nr = nowait || ready || spin ? 0 : 1;
		if (wait_nr && !forever) {
			uint64_t now = mono_ns(), rest = now < end ?
							end - now : 0;

			left.tv_sec = rest / 1000000000ull;
			left.tv_nsec = rest % 1000000000ull;
		}
		ret = loop_turn(l, wait_nr, forever || !wait_nr ? NULL : &left,
				sigmask);
		loop_unlock(l);
		n = collect(ep, ev, maxev);
		if (!n && spin && !ready) {
			uint64_t stop = shim__cfg.spin_ns < 0 ? UINT64_MAX :
					mono_ns() + shim__cfg.spin_ns;
			sigset_t saved;

			if (end && end < stop)
				stop = end;
			if (sigmask)
				pthread_sigmask(SIG_SETMASK, sigmask, &saved);
			n = ring_spin(l, ep, ev, maxev, stop);
			if (sigmask)
				pthread_sigmask(SIG_SETMASK, &saved, NULL);
			spin = false;	/* then sleep, for what is left */
			if (n < 0)
				return n;
		}
		if (n > 0) {
			count_events(l, n);
			return n;
		}
		if (ret == -EINTR)
			return -EINTR;
		if (nowait || (end && mono_ns() >= end)) {
			count_events(l, 0);
			return 0;
		}
		if (ret < 0 && ret != -ETIME && ret != -EAGAIN &&
		    ret != -EBUSY)
			return ret;
	}
}

/* ---- binding and handing members back ---- */

/*
 * Every emulated member of ep goes back to the kernel.  Called without
 * any lock: a release waits for the member's loop thread, which may need
 * shim.lock to get to its wait.  ep->loop was cleared (under shim.lock)
 * first, so no new member is accelerated into it meanwhile.
 */
static void unbind_members(struct sep *ep)
{
	unsigned int c, i;

	for (c = 0; RD(ep->nemul) > 0 && c < shim__fdtab_max / FDTAB_CHUNK;
	     c++) {
		struct fdslot *chunk = RD(shim__fdtab[c]);

		for (i = 0; chunk && i < FDTAB_CHUNK; i++) {
			int fd = c * FDTAB_CHUNK + i;
			struct sfd *f;
			struct loop *l;

			if (!RD(chunk[i].f))
				continue;
			f = fd_lock(fd);
			if (!f)
				continue;
			l = f->loop;
			if (f->state == FD_ACCEL && reg_find(f, ep))
				fd_release(f);
			loop_unlock(l);
		}
	}
}

/*
 * An epoll fd that is itself polled or nested in another epoll set gets
 * its readiness from the kernel alone, which knows nothing of emulated
 * members: such a set is never bound again.
 */
static void kernel_only(int epfd)
{
	struct sep *ep;
	bool unbind = false;

	shim_lock();
	ep = fdtab_fd(epfd) ? NULL : ep_get(epfd, false);
	if (ep && !RD(ep->nobind)) {
		WR(ep->nobind, true);
		WR(ep->loop, NULL);
		unbind = true;
		shim__log(LOG_INFO, "uringshim: epoll fd %d is polled or "
			  "nested: kernel readiness only\n", epfd);
	}
	shim_unlock();
	if (unbind)
		unbind_members(ep);
}

bool ep_polled(int fd, short want)
{
	struct sep *ep = fdtab_ep(fd);

	if (!ep)
		return false;
	if (!RD(ep->nobind))
		kernel_only(fd);
	return ep_poll_extra(fd, want) != 0;
}

short ep_poll_extra(int fd, short want)
{
	struct sep *ep = fdtab_ep(fd);

	if (!ep || fdtab_fd(fd))
		return 0;
	return emul_ready(ep) || nest_ready(ep) ?
	       (want & (POLLIN | POLLRDNORM)) : 0;
}

/* ---- fork child: the parent's registrations ---- */

/*
 * After fork the child shares the parent's epoll sets (one open file
 * description), but the parent keeps emulating its accelerated sockets,
 * which are never in the kernel set.  The child must not add them there
 * (the parent would then get kernel events for its own sockets), so its
 * registrations stay records: epoll_ctl answers for them as the kernel
 * would (ADD: EEXIST; MOD and DEL change the record) and the child's
 * waits do not report them, since the parent's ring pulls their bytes.
 */
struct phantom {
	int epfd, fd;
};

static struct phantom *phantoms;
static int phantoms_n;

static bool phantom_ctl(int epfd, int op, int fd, struct epoll_event *ev,
			int *ret)
{
	int i;

	shim_lock();
	for (i = 0; i < phantoms_n; i++)
		if (phantoms[i].epfd == epfd && phantoms[i].fd == fd)
			break;
	if (i == phantoms_n) {
		shim_unlock();
		return false;
	}
	if (op == EPOLL_CTL_ADD) {
		*ret = -EEXIST;
	} else if (op == EPOLL_CTL_MOD) {
		*ret = ev ? 0 : -EFAULT;
	} else if (op == EPOLL_CTL_DEL) {
		WR(phantoms_n, phantoms_n - 1);
		phantoms[i] = phantoms[phantoms_n];
		*ret = 0;
	} else {
		*ret = -EINVAL;
	}
	shim_unlock();
	return true;
}

/* An fd number closed in the child: its records go (shim.lock held). */
static void phantom_forget(int fd)
{
	int i;

	for (i = phantoms_n - 1; i >= 0; i--) {
		if (phantoms[i].fd != fd && phantoms[i].epfd != fd)
			continue;
		WR(phantoms_n, phantoms_n - 1);
		phantoms[i] = phantoms[phantoms_n];
	}
}

/* ---- epoll_ctl ---- */

/* What EPOLLEXCLUSIVE may come with (the kernel's EPOLLEXCLUSIVE_OK_BITS). */
#define EXCLUSIVE_OK_BITS	(EPOLLIN | EPOLLOUT | EPOLLERR | EPOLLHUP | \
				 EPOLLWAKEUP | EPOLLET | EPOLLEXCLUSIVE)

/*
 * A registration of an emulated socket (f and its loop locked).  Returns
 * 0/-errno, or 1 when the real call must be made (the fd goes to the
 * kernel: the caller releases it first when release is set).
 */
static int ctl_emulated(struct sep *ep, struct sfd *f, int op,
			struct epoll_event *ev, bool *release)
{
	struct reg *r = reg_find(f, ep);

	*release = false;
	/* The kernel's checks come before the lookup (EEXIST, ENOENT). */
	if (op != EPOLL_CTL_DEL && (ev->events & EPOLLEXCLUSIVE) &&
	    (op == EPOLL_CTL_MOD || (ev->events & ~EXCLUSIVE_OK_BITS)))
		return -EINVAL;
	switch (op) {
	case EPOLL_CTL_ADD:
		if (r)
			return -EEXIST;
		/*
		 * Only sets of the loop that owns f can emulate it; a
		 * draining socket stays emulated (its bytes held) in any set
		 * its loop owns, and is kicked into a kernel waiter's view.
		 */
		if (f->nregs == SFD_MAX_REGS ||
		    (RD(ep->owner) && RD(ep->owner) != f->loop) ||
		    (f->state == FD_ACCEL && RD(ep->loop) != f->loop)) {
			*release = f->state == FD_ACCEL;
			return 1;
		}
		reg_add(f, ep, ev);
		return 0;
	case EPOLL_CTL_MOD:
		if (!r)
			return -ENOENT;
		/* An exclusive registration cannot be modified. */
		if (r->events & EPOLLEXCLUSIVE)
			return -EINVAL;
		r->events = ev->events;
		r->data = ev->data;
		r->oneshot_fired = false;
		reg_ready(r);
		return 0;
	case EPOLL_CTL_DEL:
		if (!r)
			return -ENOENT;
		reg_unlink(r);
		return 0;
	}
	return -EINVAL;
}

/*
 * The hand-off: f has no registrations left and is added to a set bound
 * to another loop.  Its loop thread hands it back to the kernel (receive
 * cancelled, queue sent, pulled bytes kept), it moves, and the set's loop
 * takes it up with the bytes it holds.  ev: the ADD (an edge); or, with
 * keep, a registration it had in the set, re-added with its ready-list
 * state (a move is no edge).  f and its loop locked on entry; nothing
 * locked on return.  Returns true when f now runs on the set's loop;
 * false: the caller looks the fd up again (released, closed or gone).
 */
static bool hand_over(struct sfd *f, struct sep *ep,
		      const struct epoll_event *ev, const struct reg *keep)
{
	struct loop *to = RD(ep->loop), *from = f->loop;
	struct reg *r;

	if (!fd_release(f)) {
		loop_unlock(from);
		return false;
	}
	f = fd_move(f, to);
	if (!f)
		return false;
	if (RD(ep->loop) != to || (RD(ep->owner) && RD(ep->owner) != to)) {
		fd_release(f);		/* the set moved meanwhile */
		loop_unlock(to);
		return false;
	}
	r = reg_add(f, ep, ev);
	if (r && keep) {
		r->oneshot_fired = keep->oneshot_fired;
		if (!keep->on_ready && (r->events & EPOLLET))
			reg_unready(r);
	}
	loop_unlock(to);
	kick_waiter(ep);
	return r != NULL;
}

int ep_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
	struct sfd *f;
	struct sep *ep;
	bool release;
	int ret, tries;

	if (!shim__ready() || shim__depth)
		return REAL(epoll_ctl)(epfd, op, fd, ev) ? -errno : 0;
	if (unlikely(RD(phantoms_n)) && phantom_ctl(epfd, op, fd, ev, &ret))
		return ret;
	park_forget(fd);
	if (fdtab_ep(fd)) {
		/*
		 * A set added to a set: kernel readiness only from then on,
		 * once the kernel has taken the ADD (it refuses a set in
		 * itself, or a loop).
		 */
		if (op == EPOLL_CTL_ADD && fd != epfd)
			kernel_only(fd);
		goto out_real;
	}
	ep = fdtab_ep(epfd);
	/* Twice at most: a release makes it draining or plain. */
	for (tries = 0; fdtab_fd(fd) && tries < 2; tries++) {
		struct loop *l;

		if (!ep || (op == EPOLL_CTL_ADD && !RD(ep->loop) &&
			    !RD(ep->nobind) && !kwait_of(epfd))) {
			shim_lock();
			ep = ep_get(epfd, false);
			/* A set nobody waits on yet: the adder's loop. */
			if (ep && op == EPOLL_CTL_ADD)
				bind_here(ep, true);
			shim_unlock();
		}
		f = ep ? fd_lock(fd) : NULL;
		if (!f)
			break;
		l = f->loop;
		if (f->state == FD_ORPHAN) {
			loop_unlock(l);
			break;
		}
		if (!ev && op != EPOLL_CTL_DEL) {
			loop_unlock(l);
			return -EFAULT;
		}
		if (op == EPOLL_CTL_ADD && f->state == FD_ACCEL &&
		    !f->nregs && RD(ep->loop) && RD(ep->loop) != l &&
		    (!RD(ep->owner) || RD(ep->owner) == RD(ep->loop))) {
			if (hand_over(f, ep, ev, NULL))
				return 0;
			continue;
		}
		ret = ctl_emulated(ep, f, op, ev, &release);
		if (release) {
			fd_release(f);
			loop_unlock(l);
			continue;
		}
		loop_unlock(l);
		if (ret > 0)
			break;
		if (!ret && op != EPOLL_CTL_DEL)
			kick_waiter(ep);
		return ret;
	}
	if (ep && ev && (op == EPOLL_CTL_ADD || op == EPOLL_CTL_MOD) &&
	    !RD(ep->nobind) && (RD(ep->loop) || can_bind()) &&
	    !kwait_of(epfd)) {
		uint8_t *k = kreg_of(fd);
		uint8_t kreg = k ? RD(*k) : 0;
		struct loop *l;

		if (!(op == EPOLL_CTL_ADD ? kreg == 0 : kreg == 1) ||
		    ((ev->events & EPOLLEXCLUSIVE) &&
		     (op == EPOLL_CTL_MOD ||
		      (ev->events & ~EXCLUSIVE_OK_BITS))) ||
		    !fd_accelerable(fd))
			goto out_real;
		shim_lock();
		/* An unbound set is bound to the adding thread's loop. */
		bind_here(ep, false);
		l = RD(ep->loop);
		if (!fdtab_slot(fd, true))
			l = NULL;
		shim_unlock();
		if (!l || (RD(ep->owner) && RD(ep->owner) != l))
			goto out_real;
		if (RD(l->parked) && op == EPOLL_CTL_ADD &&
		    !(ev->events & (EPOLLET | EPOLLONESHOT | EPOLLEXCLUSIVE))) {
			park_record(fd, epfd, ev, l);
			goto out_real;
		}
		loop_lock(l);
		f = fd_accel(fd, l, true);
		if (f && op == EPOLL_CTL_MOD) {
			STAT_INC(shim_syscalls);
			if (real_epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL)) {
				/* It was in another set: give it back. */
				fd_release(f);
				f = NULL;
			} else if ((k = kreg_of(fd))) {
				WR(*k, 0);
			}
		}
		if (f && RD(ep->owner) && RD(ep->owner) != l) {
			fd_release(f);
			f = NULL;
		}
		if (f) {
			reg_add(f, ep, ev);
			loop_unlock(l);
			return 0;
		}
		loop_unlock(l);
	}
out_real:
	ret = REAL(epoll_ctl)(epfd, op, fd, ev) ? -errno : 0;
	kreg_track(op, fd, ret);
	if (!ret && fdtab_ep(fd) && fdtab_ep(epfd)) {
		shim_lock();
		nest_ctl(epfd, op, fd, ev);
		shim_unlock();
	}
	return ret;
}

/* ---- epoll_wait ---- */

/*
 * A thread about to block in the kernel's epoll_wait on epfd: until it
 * returns, sockets added to that set stay in the kernel set, where it can
 * see them.
 */
static bool kwait_begin(int epfd)
{
	struct fdslot *s = fdtab_peek(epfd);

	if (!s || RD(s->kwait) == UINT8_MAX)
		return false;
	__atomic_add_fetch(&s->kwait, 1, __ATOMIC_RELAXED);
	return true;
}

int ep_wait_done(int epfd, bool kwaited, struct epoll_event *ev, int n,
		 bool *again)
{
	struct fdslot *s = fdtab_peek(epfd);
	struct loop *l = shim__loop;
	struct sep *ep = fdtab_ep(epfd);
	bool seen = false;

	if (kwaited && s)
		__atomic_sub_fetch(&s->kwait, 1, __ATOMIC_RELAXED);
	if (ep)
		n = unkick(ep, ev, n, &seen);
	*again = seen && n == 0;
	if (l && l->parked && !*again)
		count_events(l, n);
	return n;
}

/*
 * A wait on ep that cannot go through our ring while a nested set or an
 * emulated member holds events the kernel cannot see: the kernel's events
 * without blocking, plus the shim's.  0 when nothing is ready.
 */
static int collect_now(struct sep *ep, struct epoll_event *ev, int maxev)
{
	if (!nest_ready(ep) && !emul_ready(ep))
		return 0;
	WR(ep->kready, true);	/* no poll of ours may watch it: just ask */
	return collect(ep, ev, maxev);
}

/* Another thread waits on a set bound to a loop: take it over. */
static bool hand_over(struct sfd *f, struct sep *ep,
		      const struct epoll_event *ev, const struct reg *keep);

/*
 * A set that a thread added sockets to, and another thread now waits on:
 * its members move to the waiter's loop with their registrations (the
 * adder was only passing them on).  First every registration is taken
 * out (so the set's emulated part belongs to no loop), then each socket
 * moves; one that cannot (in another set too, closed meanwhile) is
 * registered again the ordinary way.
 */
static void adopt_members(struct sep *ep, struct loop *to)
{
	struct moving { int fd; struct reg r; } *mv = NULL;
	unsigned int c, i;
	int n = 0, cap = 0, k;

	for (c = 0; RD(ep->nemul) > 0 && c < shim__fdtab_max / FDTAB_CHUNK;
	     c++) {
		struct fdslot *chunk = RD(shim__fdtab[c]);

		for (i = 0; chunk && i < FDTAB_CHUNK; i++) {
			int fd = c * FDTAB_CHUNK + i;
			struct sfd *f;
			struct reg *r;
			struct loop *l;

			if (!RD(chunk[i].f) || !(f = fd_lock(fd)))
				continue;
			l = f->loop;
			r = reg_find(f, ep);
			if (r && f->nregs == 1 && f->state == FD_ACCEL &&
			    l != to) {
				if (n == cap) {
					void *p = realloc(mv, (cap ? 2 * cap :
							       16) *
							  sizeof(*mv));
					if (p) {
						mv = p;
						cap = cap ? 2 * cap : 16;
					}
				}
				if (n < cap) {
					mv[n].fd = fd;
					mv[n++].r = *r;
					reg_unlink(r);
				}
			} else if (r && f->state == FD_ACCEL) {
				fd_release(f);
			}
			loop_unlock(l);
		}
	}
	for (k = 0; k < n; k++) {
		struct epoll_event ev = { .events = mv[k].r.events,
					  .data = mv[k].r.data };
		struct sfd *f = fd_lock(mv[k].fd);

		if (f && f->state == FD_ACCEL && !f->nregs &&
		    hand_over(f, ep, &ev, &mv[k].r))
			continue;
		if (f)
			loop_unlock(f->loop);
		ep_ctl(ep->epfd, EPOLL_CTL_ADD, mv[k].fd, &ev);
	}
	free(mv);
}

/*
 * Another thread waits on a set bound to a loop: the set is its now.
 * Its members move along when the set was only bound by an adder; when
 * the other thread had waited on it too, the set stays with the kernel.
 */
static void take_over(struct sep *ep, struct loop *l)
{
	bool adopt = false, unbind = false;

	shim_lock();
	if (RD(ep->loop) && RD(ep->loop) != l) {
		if (RD(ep->waited) || !l) {
			unbind = RD(ep->nemul) > 0;
			WR(ep->loop, NULL);
			if (RD(ep->waited)) {
				WR(ep->nobind, true);
				shim__log(LOG_INFO, "uringshim: epoll fd %d is "
					  "waited on by several threads: "
					  "kernel readiness only\n", ep->epfd);
			}
		} else {
			adopt = RD(ep->nemul) > 0;
			WR(ep->loop, l);
		}
	}
	shim_unlock();
	if (unbind)
		unbind_members(ep);
	if (adopt)
		adopt_members(ep, l);
}

int ep_wait(int epfd, struct epoll_event *ev, int maxev,
	    const struct timespec *ts, const sigset_t *sigmask,
	    bool *handled, bool *kwaited)
{
	struct loop *l = shim__loop;
	struct sep *ep;
	int n;

	*handled = false;
	*kwaited = false;
	if (!shim__ready() || shim__depth)
		return 0;
	ep = fdtab_ep(epfd);
	if (l)
		park_decide(l);
	/* The fast path: my set, bound to my loop. */
	if (likely(ep && l && RD(ep->loop) == l && RD(ep->waited) &&
		   (!RD(ep->kpoll) || RD(ep->kpoll) == l) &&
		   RD(shim.state) == SHIM_STATE_ACTIVE)) {
		if (RD(l->accel_n) || loop_has_work(l) || RD(ep->ready_head) ||
		    RD(ep->owner) || RD(nests_n)) {
			*handled = true;
			return ring_wait(l, ep, ev, maxev, ts, sigmask);
		}
		/* Nothing of ours in it (parked, say): the kernel's wait. */
		*kwaited = kwait_begin(epfd);
		return 0;
	}
	shim_lock();
	l = loop_get();
	ep = ep_get(epfd, false);
	shim_unlock();
	if (!ep)
		return 0;
	if (RD(ep->loop) && RD(ep->loop) != l)
		take_over(ep, l);
	shim_lock();
	bind_here(ep, true);
	shim_unlock();
	/*
	 * An unbound set (polled, nested, killed) still reports members
	 * whose pulled bytes are unread; its kernel part needs a poll in
	 * our ring, not another's.
	 */
	if (!l || RD(ep->loop) != l || (RD(ep->kpoll) && RD(ep->kpoll) != l)) {
		/* The kernel's wait would not see a nested set's events. */
		n = collect_now(ep, ev, maxev);
		if (n) {
			*handled = true;
			return n;
		}
		*kwaited = kwait_begin(epfd);
		return 0;
	}
	WR(ep->waited, true);
	if (RD(shim.state) == SHIM_STATE_KILLED && RD(l->accel_n)) {
		loop_lock(l);
		fd_release_loop(l);
		loop_unlock(l);
	}
	if (!RD(l->accel_n) && !loop_has_work(l) && !RD(ep->ready_head) &&
	    !nest_ready(ep)) {
		/* Nothing of ours anywhere: the plain wait costs less. */
		*kwaited = kwait_begin(epfd);
		return 0;
	}
	*handled = true;
	return ring_wait(l, ep, ev, maxev, ts, sigmask);
}

/*
 * Events a wait collected that the caller's array could not take (the
 * kernel puts such an event back on the ready list): an emulated one goes
 * back on its registration's ready list, armed again.  One fetched from
 * the kernel's set is gone (DESIGN.md, Known limits).  A walk of the
 * table: only a bad array comes here.
 */
void ep_unwait(int epfd, const struct epoll_event *ev, int n)
{
	struct sep *ep = fdtab_ep(epfd);
	unsigned int c, i;
	int k;

	for (c = 0; ep && n > 0 && RD(ep->nemul) > 0 &&
	     c < shim__fdtab_max / FDTAB_CHUNK; c++) {
		struct fdslot *chunk = RD(shim__fdtab[c]);

		for (i = 0; chunk && i < FDTAB_CHUNK; i++) {
			struct sfd *f;
			struct reg *r;

			if (!RD(chunk[i].f) ||
			    !(f = fd_lock(c * FDTAB_CHUNK + i)))
				continue;
			r = reg_find(f, ep);
			for (k = 0; r && k < n; k++) {
				if (ev[k].data.u64 != r->data.u64)
					continue;
				r->oneshot_fired = false;
				reg_ready(r);
				break;
			}
			fd_unlock(f);
		}
	}
}

/* ---- close, thread exit, fork ---- */

/* The set record of a closing epoll fd goes (shim.lock held). */
static void set_close(struct sep *ep)
{
	struct loop *o, *k;
	unsigned int c, i;

	fdtab_set_ep(ep->epfd, NULL);
	WR(ep->loop, NULL);
	kick_end(ep);
	/* Closing an epoll fd drops its emulated registrations too. */
	while ((o = RD(ep->owner))) {
		loop_lock(o);
		for (c = 0; RD(ep->owner) == o && ep->nemul &&
			    c < shim__fdtab_max / FDTAB_CHUNK; c++) {
			struct fdslot *chunk = RD(shim__fdtab[c]);

			for (i = 0; chunk && i < FDTAB_CHUNK; i++) {
				struct sfd *f = RD(chunk[i].f);
				struct reg *r;

				if (f && f->loop == o && (r = reg_find(f, ep)))
					reg_unlink(r);
			}
		}
		loop_unlock(o);
		if (RD(ep->owner) == o)
			break;	/* nothing of it in o's sockets: give up */
	}
	k = RD(ep->kpoll);
	if (!k) {
		sep_free(ep);
		return;
	}
	loop_lock(k);
	if (RD(ep->kpoll) != k) {		/* completed meanwhile */
		loop_unlock(k);
		sep_free(ep);
		return;
	}
	ep->dead = true;		/* freed by its poll's completion */
	ep->dead_next = k->dead_eps;
	k->dead_eps = ep;
	if (loop_is_mine(k))
		ep_flush_dead(k);
	else
		loop_wake(k);
	loop_unlock(k);
}

void ep_forget_fd(int fd)
{
	struct fdslot *s = fdtab_peek(fd);
	struct sfd *f;
	struct sep *ep;

	if (!s)
		return;
	if (RD(nests_n) || RD(phantoms_n) || RD(s->ep)) {
		shim_lock();
		nest_forget(fd);
		phantom_forget(fd);
		ep = s->ep;
		if (ep)
			set_close(ep);
		shim_unlock();
	}
	WR(s->kreg, 0);
	WR(s->parked, false);
	f = fd_lock(fd);
	if (f) {
		struct loop *l = f->loop;

		fd_close_locked(f, fd);
		loop_unlock(l);
	}
}

void ep_loop_exit(struct loop *l)
{
	unsigned int c, i;

	shim_lock();
	loop_lock(l);
	for (c = 0; c < shim__fdtab_max / FDTAB_CHUNK; c++) {
		struct fdslot *chunk = shim__fdtab[c];

		for (i = 0; chunk && i < FDTAB_CHUNK; i++) {
			struct sep *ep = chunk[i].ep;

			if (ep && ep->loop == l) {
				WR(ep->loop, NULL);
				WR(ep->waited, false);
			}
			if (ep && RD(ep->kpoll) == l)
				ring_prep_cancel(&l->ring, UD_EPPOLL, ep,
						 UD_NOP, NULL);
		}
	}
	ep_flush_dead(l);
	loop_turn(l, 0, NULL, NULL);
	loop_retire(l);
	/* Polls the ring can no longer complete: the real wait tells. */
	for (c = 0; c < shim__fdtab_max / FDTAB_CHUNK; c++) {
		struct fdslot *chunk = shim__fdtab[c];

		for (i = 0; chunk && i < FDTAB_CHUNK; i++) {
			struct sep *ep = chunk[i].ep;

			if (ep && RD(ep->kpoll) == l) {
				WR(ep->kpoll, NULL);
				WR(ep->kready, true);
			}
		}
	}
	while (l->dead_eps) {
		struct sep *ep = l->dead_eps;

		l->dead_eps = ep->dead_next;
		sep_free(ep);
	}
	loop_unlock(l);
	shim_unlock();
}

/*
 * Fork child (single-threaded): keep the parent's emulated registrations
 * as records, then every set is unbound and the sockets forgotten.
 */
void ep_forget_child(void)
{
	unsigned int c, i;
	int n = 0, j;

	for (c = 0; c < shim__fdtab_max / FDTAB_CHUNK; c++) {
		struct fdslot *chunk = shim__fdtab[c];

		for (i = 0; chunk && i < FDTAB_CHUNK; i++)
			if (chunk[i].f && chunk[i].f->state != FD_ORPHAN)
				n += chunk[i].f->nregs;
	}
	phantoms = n ? calloc(n, sizeof(*phantoms)) : NULL;
	phantoms_n = 0;
	for (c = 0; phantoms && c < shim__fdtab_max / FDTAB_CHUNK; c++) {
		struct fdslot *chunk = shim__fdtab[c];

		for (i = 0; chunk && i < FDTAB_CHUNK; i++) {
			struct sfd *f = chunk[i].f;

			for (j = 0; f && f->state != FD_ORPHAN &&
				    j < f->nregs; j++) {
				phantoms[phantoms_n].epfd = f->regs[j].ep->epfd;
				phantoms[phantoms_n++].fd =
					c * FDTAB_CHUNK + i;
			}
		}
	}
	for (c = 0; c < shim__fdtab_max / FDTAB_CHUNK; c++) {
		struct fdslot *chunk = shim__fdtab[c];

		for (i = 0; chunk && i < FDTAB_CHUNK; i++) {
			struct sep *ep = chunk[i].ep;

			if (!ep)
				continue;
			WR(ep->ready_head, NULL);
			ep->ready_tail = NULL;
			ep->nemul = 0;
			WR(ep->owner, NULL);
			WR(ep->kpoll, NULL);
			ep->kready = false;
			ep->loop = NULL;
			WR(ep->waited, false);
		}
	}
}
