/*
 * worker.c - connections and the per-thread event loop: connect and log
 * in, read and write, pace the open loop, and notice a stalled server.
 * Per loop iteration a connection gets one big read and at most one write.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "loadgen.h"

/* ===== run-wide stop, connection state and output ===== */

/* kick_workers - wake every worker from its wait (eventfd). */
void kick_workers(void)
{
	uint64_t one = 1;
	unsigned i;

	for (i = 0; i < opt.threads; i++)
		if (write(run.workers[i].kickfd, &one, sizeof(one)) < 0 &&
		    errno != EAGAIN)
			perror("loadgen: eventfd write");
}

/* run_abort - end the run now: every worker stops at its next turn. */
void run_abort(void)
{
	if (!atomic_exchange(&run.abort, true))
		kick_workers();
}

/*
 * conn_error - count a verification error on @c and print the first few.
 * The run goes on: one wrong byte should not hide what else is wrong.
 */
__attribute__((format(printf, 2, 3)))
void conn_error(struct conn *c, const char *fmt, ...)
{
	va_list ap;

	c->w->st.errors++;
	atomic_fetch_add(&run.errors, 1);
	pthread_mutex_lock(&run.err_lock);
	if (run.err_printed++ < DETAIL_ERRORS) {
		fprintf(stderr, "loadgen: error: %s %u: ",
			c->role == ROLE_TRADER ? "connection" : "subscriber",
			c->index);
		va_start(ap, fmt);
		vfprintf(stderr, fmt, ap);
		va_end(ap);
		fputc('\n', stderr);
	}
	pthread_mutex_unlock(&run.err_lock);
}

void conn_close(struct conn *c)
{
	if (c->fd >= 0) {
		close(c->fd);
		c->fd = -1;
	}
}

void conn_set_done(struct conn *c)
{
	struct worker *w = c->w;

	c->state = CS_DONE;
	conn_close(c);
	w->active--;
	if (c->role == ROLE_TRADER) {
		w->active_traders--;
		if (atomic_fetch_sub(&run.traders_left, 1) == 1)
			kick_workers();	/* subscribers may finish now */
	}
}

/*
 * conn_fail - the connection is unusable (server gone, bad framing): count
 * an error and abort the whole run, so a dead server ends it promptly.
 */
__attribute__((format(printf, 2, 3)))
void conn_fail(struct conn *c, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (c->state != CS_FAILED && c->state != CS_DONE) {
		conn_error(c, "%s", msg);
		c->state = CS_FAILED;
		c->w->active--;
		if (c->role == ROLE_TRADER)
			c->w->active_traders--;
	}
	conn_close(c);
	run_abort();
}

static void conn_mark_dirty(struct conn *c)
{
	if (!c->dirty) {
		c->dirty = true;
		c->w->dirty[c->w->ndirty++] = c;
	}
}

/* Ensure room for @n more bytes in the send buffer. Returns -errno. */
static int tx_reserve(struct conn *c, size_t n)
{
	size_t cap;
	uint8_t *tx;

	if (c->tx_off && c->tx_off == c->tx_len)
		c->tx_off = c->tx_len = 0;
	if (c->tx_len + n <= c->tx_cap)
		return 0;
	if (c->tx_off) {
		memmove(c->tx, c->tx + c->tx_off, c->tx_len - c->tx_off);
		c->tx_len -= c->tx_off;
		c->tx_off = 0;
		if (c->tx_len + n <= c->tx_cap)
			return 0;
	}
	cap = c->tx_cap ? c->tx_cap : 256;
	while (cap < c->tx_len + n)
		cap *= 2;
	tx = realloc(c->tx, cap);
	if (!tx)
		return -ENOMEM;
	c->tx = tx;
	c->tx_cap = cap;
	return 0;
}

void tx_append(struct conn *c, const void *msg, uint8_t type)
{
	unsigned size = proto_msg_size(type);
	struct msg_hdr hdr = { .len = (uint16_t)size, .type = type };

	if (tx_reserve(c, size)) {
		conn_fail(c, "out of memory for the send buffer");
		return;
	}
	memcpy(c->tx + c->tx_len, msg, size);
	memcpy(c->tx + c->tx_len, &hdr, sizeof(hdr));
	c->tx_len += size;
	conn_mark_dirty(c);
}

/* ===== reading and writing ===== */

static void conn_read(struct conn *c)
{
	struct worker *w = c->w;
	uint8_t *buf = w->rxbuf;
	ssize_t n;

	do {
		n = recv(c->fd, buf, RXBUF_SIZE, MSG_DONTWAIT);
	} while (n < 0 && errno == EINTR);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return;
	if (n <= 0) {
		conn_fail(c, "lost the server while %s: %s",
			  c->state == CS_SETUP ? "logging in" : "running",
			  n ? strerror(errno) : "connection closed");
		return;
	}
	w->now = now_ns();
	w->last_rx_ns = w->now;
	if (c->role == ROLE_TRADER)
		w->st.bytes_in += (uint64_t)n;
	conn_input(c, buf, (size_t)n);
}

static void conn_update_events(struct conn *c, bool want_out)
{
	struct epoll_event ev = {
		.events = EPOLLIN | (want_out ? EPOLLOUT : 0),
		.data.ptr = c,
	};

	if (c->want_out == want_out || c->fd < 0)
		return;
	c->want_out = want_out;
	if (epoll_ctl(c->w->epfd, EPOLL_CTL_MOD, c->fd, &ev))
		conn_fail(c, "epoll_ctl: %s", strerror(errno));
}

/*
 * The requests queued since the last write go out now: a closed-loop
 * request's latency counts from here; an open-loop one counts from its
 * intended time, and how late this write is for it is the send lag.
 */
static void conn_stamp(struct conn *c)
{
	unsigned i, first = c->fifo_count - c->unflushed;
	uint64_t now = now_ns();

	for (i = first; i < c->fifo_count; i++) {
		struct inflight *e = &c->fifo[(c->fifo_head + i) % c->fifo_cap];

		if (!e->sent_ns)
			e->sent_ns = now;
		else if (e->kind <= REQ_MARKET)
			hist_record(&c->w->st.send_lag, now > e->sent_ns ?
						       now - e->sent_ns : 0);
	}
	c->unflushed = 0;
}

/* One write of everything queued; the rest waits for EPOLLOUT. */
static void conn_flush(struct conn *c)
{
	ssize_t n;

	c->dirty = false;
	if (c->fd < 0)
		return;
	if (c->unflushed)
		conn_stamp(c);
	while (c->tx_off < c->tx_len) {
		n = send(c->fd, c->tx + c->tx_off, c->tx_len - c->tx_off,
			 MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n > 0) {
			c->tx_off += (size_t)n;
			c->w->st.bytes_out += (uint64_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			conn_update_events(c, true);
			return;
		}
		conn_fail(c, "send: %s", strerror(errno));
		return;
	}
	c->tx_off = c->tx_len = 0;
	conn_update_events(c, false);
}

/* ===== connection setup ===== */

static void conn_login(struct conn *c)
{
	struct msg_hello hello = { .version = PROTO_VERSION };
	struct msg_subscribe sub;
	struct msg_cancel barrier;
	unsigned i;

	memcpy(hello.user, "loadgen", 7);
	tx_append(c, &hello, MSG_HELLO);
	fifo_push(c, REQ_HELLO, 1);
	if (c->role == ROLE_SUBSCRIBER) {
		for (i = 0; i < run.nsyms; i++) {
			memset(&sub, 0, sizeof(sub));
			sub.symbol = opt.symbol_base + i;
			tx_append(c, &sub, MSG_SUBSCRIBE);
		}
		/* Its Rejected proves every subscription is in place. */
		memset(&barrier, 0, sizeof(barrier));
		barrier.cl_ord_id = BARRIER_ID_SYNC;
		tx_append(c, &barrier, MSG_CANCEL);
		fifo_push(c, REQ_BARRIER, 1)->id = BARRIER_ID_SYNC;
	}
	c->state = CS_SETUP;
}

static void conn_connected(struct conn *c)
{
	int err = 0, one = 1;
	socklen_t len = sizeof(err);

	c->w->connecting--;
	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) || err) {
		conn_fail(c, "cannot connect to %s:%s: %s", opt.host, opt.port,
			  strerror(err ? err : errno));
		return;
	}
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	/* The login is written at once; EPOLLOUT goes with the flush. */
	c->want_out = true;
	conn_login(c);
}

static void conn_start_connect(struct conn *c)
{
	struct epoll_event ev = { .events = EPOLLOUT, .data.ptr = c };
	struct addrinfo *ai = run.addr;

	c->fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK |
		       SOCK_CLOEXEC, ai->ai_protocol);
	if (c->fd < 0) {
		conn_fail(c, "socket: %s", strerror(errno));
		return;
	}
	c->state = CS_CONNECTING;
	c->want_out = true;
	c->w->connecting++;
	if (epoll_ctl(c->w->epfd, EPOLL_CTL_ADD, c->fd, &ev)) {
		conn_fail(c, "epoll_ctl: %s", strerror(errno));
		return;
	}
	if (connect(c->fd, ai->ai_addr, ai->ai_addrlen) && errno != EINPROGRESS)
		conn_fail(c, "cannot connect to %s:%s: %s", opt.host,
			  opt.port, strerror(errno));
}

static void worker_connect_more(struct worker *w)
{
	unsigned total = w->ntraders + w->nsubs;

	while (w->next_connect < total && w->connecting < CONNECT_WINDOW &&
	       !atomic_load_explicit(&run.abort, memory_order_relaxed)) {
		unsigned i = w->next_connect++;

		conn_start_connect(i < w->ntraders ? &w->traders[i] :
			   &w->subs[i - w->ntraders]);
	}
}

static void conn_event(struct conn *c, uint32_t events)
{
	if (c->state == CS_CONNECTING) {
		conn_connected(c);
		return;
	}
	if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
		conn_read(c);
	if (c->fd >= 0 && (events & EPOLLOUT) && c->tx_off < c->tx_len)
		conn_mark_dirty(c);
}

/* ===== the worker loop ===== */

static void worker_flush(struct worker *w)
{
	unsigned i;

	for (i = 0; i < w->ndirty; i++)
		conn_flush(w->dirty[i]);
	w->ndirty = 0;
}

/* Due open-loop sends up to now: event j goes to trader j % ntraders. */
static void worker_schedule(struct worker *w)
{
	uint64_t due;
	double elapsed;

	if (w->now < run.t_start)
		return;
	elapsed = (double)(w->now - run.t_start);
	if (opt.duration_s && !opt.orders && w->now >= run.t_end)
		elapsed = (double)(run.t_end - run.t_start) - 1;
	due = (uint64_t)(elapsed / w->period_ns) + 1;
	if (w->sched_events && due > w->sched_events)
		due = w->sched_events;
	for (; w->sched_next < due; w->sched_next++) {
		struct conn *c = &w->traders[w->sched_next % w->ntraders];

		if (c->state != CS_RUNNING)
			continue;
		c->scheduled++;
		send_due(c);
		conn_maybe_finish(c);
	}
}

/* Set once epoll_pwait2 (Linux 5.11) is known missing, e.g. valgrind. */
static _Atomic bool no_epoll_pwait2;

/*
 * --spin: poll until something is ready or the timeout passes, never
 * sleeping, as a latency-critical client does on a core of its own: no
 * wake-up (scheduler, interrupt) stands between a response and its read.
 */
static int worker_spin(struct worker *w, struct epoll_event *events,
		       uint64_t timeout_ns)
{
	uint64_t deadline = now_ns() + timeout_ns;
	int n;

	do
		n = epoll_wait(w->epfd, events, EPOLL_BATCH, 0);
	while (!n && now_ns() < deadline);
	return n;
}

/*
 * A millisecond wait would distort an open loop's schedule: there, wait
 * with nanosecond precision when the kernel allows it.
 */
static int worker_wait(struct worker *w, struct epoll_event *events,
		       uint64_t timeout_ns)
{
	struct timespec ts = {
		.tv_sec = (time_t)(timeout_ns / 1000000000ull),
		.tv_nsec = (long)(timeout_ns % 1000000000ull),
	};
	int n;

	if (opt.spin)
		return worker_spin(w, events, timeout_ns);
	if (timeout_ns)
		w->st.sleeping_waits++;
	if (opt.rate && !atomic_load_explicit(&no_epoll_pwait2,
					      memory_order_relaxed)) {
		n = epoll_pwait2(w->epfd, events, EPOLL_BATCH, &ts, NULL);
		if (n >= 0 || errno != ENOSYS)
			return n;
		atomic_store(&no_epoll_pwait2, true);
	}
	return epoll_wait(w->epfd, events, EPOLL_BATCH,
			  (int)((timeout_ns + 999999) / 1000000));
}

static uint64_t worker_timeout(struct worker *w)
{
	uint64_t timeout = 100000000;	/* housekeeping: stop, stall, abort */
	uint64_t next;

	if (w->ndirty)
		return 0;
	if (opt.rate && w->active_traders && !w->sending_stopped &&
	    (!w->sched_events || w->sched_next < w->sched_events) &&
	    run.t_start) {
		next = run.t_start +
		       (uint64_t)((double)w->sched_next * w->period_ns);
		if (next <= w->now)
			return 0;
		if (next - w->now < timeout)
			timeout = next - w->now;
	}
	if (opt.duration_s && !opt.orders && !w->sending_stopped &&
	    run.t_start && run.t_end > w->now && run.t_end - w->now < timeout)
		timeout = run.t_end - w->now;
	return timeout;
}

static bool worker_stalled(struct worker *w)
{
	bool waiting = w->fifo_total || w->connecting || w->cleaning;

	return waiting && w->now - w->last_rx_ns >
			  (uint64_t)(opt.stall_s * 1e9);
}

static void worker_report_stall(struct worker *w)
{
	struct conn *c = w->ntraders ? &w->traders[0] : &w->subs[0];
	unsigned i;

	for (i = 0; i < w->ntraders + w->nsubs; i++) {
		c = i < w->ntraders ? &w->traders[i] :
				      &w->subs[i - w->ntraders];
		if (c->state != CS_DONE && c->state != CS_FAILED)
			break;
	}
	conn_fail(c, "no response from the server for %.1f s (%u requests "
		  "outstanding in this thread)", opt.stall_s, w->fifo_total);
}

/* Runs until @until() holds or the run aborts. */
static void worker_loop(struct worker *w, bool (*until)(struct worker *))
{
	struct epoll_event events[EPOLL_BATCH];
	int i, n;

	while (!until(w) &&
	       !atomic_load_explicit(&run.abort, memory_order_relaxed)) {
		n = worker_wait(w, events, worker_timeout(w));
		if (n < 0 && errno != EINTR) {
			perror("loadgen: epoll_wait");
			run_abort();
			break;
		}
		w->now = now_ns();
		for (i = 0; i < n; i++) {
			struct conn *c = events[i].data.ptr;

			if (!c) {
				uint64_t v;

				if (read(w->kickfd, &v, sizeof(v)) < 0 &&
				    errno != EAGAIN)
					perror("loadgen: eventfd read");
				continue;
			}
			if (c->fd >= 0)
				conn_event(c, events[i].events);
		}
		w->now = now_ns();
		worker_connect_more(w);
		if (opt.rate && run.t_start)
			worker_schedule(w);
		if (run.t_start && !w->sending_stopped &&
		    ((opt.duration_s && !opt.orders && w->now >= run.t_end) ||
		     atomic_load_explicit(&run.interrupted,
					  memory_order_relaxed))) {
			w->sending_stopped = true;
			for (i = 0; i < (int)w->ntraders; i++)
				conn_maybe_finish(&w->traders[i]);
		}
		if (w->nsubs && !w->md_final_sent &&
		    !atomic_load(&run.traders_left)) {
			w->md_final_sent = true;
			for (i = 0; i < (int)w->nsubs; i++) {
				struct conn *c = &w->subs[i];
				struct msg_cancel barrier = {
					.cl_ord_id = BARRIER_ID_FINAL,
				};

				if (c->state != CS_READY &&
				    c->state != CS_RUNNING)
					continue;
				c->state = CS_MD_FINAL;
				tx_append(c, &barrier, MSG_CANCEL);
				fifo_push(c, REQ_BARRIER, 1)->id =
					BARRIER_ID_FINAL;
			}
		}
		worker_flush(w);
		atomic_store_explicit(&w->progress, w->st.requests,
				      memory_order_relaxed);
		if (worker_stalled(w))
			worker_report_stall(w);
	}
}

static bool worker_all_ready(struct worker *w)
{
	return !w->not_ready;
}

static bool worker_finished(struct worker *w)
{
	return !w->active;
}

/* This thread's CPU time and voluntary context switches so far. */
static void thread_usage(uint64_t *cpu_ns, uint64_t *voluntary)
{
	struct rusage ru;

	if (getrusage(RUSAGE_THREAD, &ru)) {
		*cpu_ns = *voluntary = 0;
		return;
	}
	*cpu_ns = (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) *
		  1000000000ull + (uint64_t)(ru.ru_utime.tv_usec +
					     ru.ru_stime.tv_usec) * 1000;
	*voluntary = (uint64_t)ru.ru_nvcsw;
}

void *worker_main(void *arg)
{
	struct worker *w = arg;
	uint64_t cpu0, vol0;
	unsigned i;

	if (opt.ncpus) {
		cpu_set_t set;

		CPU_ZERO(&set);
		CPU_SET(opt.cpus[w->id % opt.ncpus], &set);
		if (sched_setaffinity(0, sizeof(set), &set))
			perror("loadgen: sched_setaffinity");
	}
	/*
	 * The kernel may defer a sleeping thread's wake-up by its timer
	 * slack (50 us by default), which would make every open-loop send
	 * late by up to that much: ask for none.
	 */
	if (opt.rate && !opt.spin && prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0))
		perror("loadgen: PR_SET_TIMERSLACK");
	w->now = w->last_rx_ns = now_ns();
	worker_loop(w, worker_all_ready);
	pthread_barrier_wait(&run.ready);
	pthread_barrier_wait(&run.go);
	if (atomic_load(&run.abort))
		goto out;

	thread_usage(&cpu0, &vol0);
	w->now = w->last_rx_ns = now_ns();
	for (i = 0; i < w->ntraders; i++) {
		struct conn *c = &w->traders[i];

		c->state = CS_RUNNING;
		if (!opt.rate)
			while (!fifo_full(c) && conn_may_send(c))
				send_request(c, 0);
		conn_maybe_finish(c);
	}
	for (i = 0; i < w->nsubs; i++)
		w->subs[i].state = CS_RUNNING;
	worker_flush(w);
	worker_loop(w, worker_finished);
	thread_usage(&w->cpu_ns, &w->voluntary_switches);
	w->cpu_ns -= cpu0;
	w->voluntary_switches -= vol0;
out:
	atomic_store(&w->progress, w->st.requests);
	pthread_mutex_lock(&run.done_lock);
	run.workers_done++;
	pthread_cond_signal(&run.done_cond);
	pthread_mutex_unlock(&run.done_lock);
	return NULL;
}

/* ===== creating and freeing the workers ===== */

static void conn_init(struct conn *c, struct worker *w, uint8_t role,
		      unsigned index, unsigned local)
{
	c->fd = -1;
	c->w = w;
	c->role = role;
	c->index = index;
	c->local = local;
	c->free_head = NO_INDEX;
	c->hash = 0x6a09e667f3bcc908ull;
	c->rng = opt.seed * 0x9e3779b97f4a7c15ull + index * 2 + role;
	rng_next(&c->rng);
	c->mid = MID_CENTER;
	c->fifo_cap = role == ROLE_TRADER ? opt.inflight : 2;
	c->fifo = calloc(c->fifo_cap, sizeof(*c->fifo));
	if (role == ROLE_SUBSCRIBER)
		c->top_nonempty = calloc(run.nsyms, 1);
	if (!c->fifo || (role == ROLE_SUBSCRIBER && !c->top_nonempty))
		die("out of memory");
}

void workers_create(void)
{
	unsigned t, i, tb, te, sb, se;

	run.workers = calloc(opt.threads, sizeof(*run.workers));
	if (!run.workers)
		die("out of memory");
	for (t = 0; t < opt.threads; t++) {
		struct worker *w = &run.workers[t];
		struct epoll_event ev = { .events = EPOLLIN };

		w->id = t;
		tb = (unsigned)((uint64_t)opt.connections * t / opt.threads);
		te = (unsigned)((uint64_t)opt.connections * (t + 1) /
				opt.threads);
		sb = (unsigned)((uint64_t)opt.subscribers * t / opt.threads);
		se = (unsigned)((uint64_t)opt.subscribers * (t + 1) /
				opt.threads);
		w->ntraders = te - tb;
		w->nsubs = se - sb;
		w->traders = calloc(w->ntraders + 1, sizeof(*w->traders));
		w->subs = calloc(w->nsubs + 1, sizeof(*w->subs));
		w->dirty = calloc(w->ntraders + w->nsubs + 1,
				  sizeof(*w->dirty));
		w->rxbuf = malloc(RXBUF_SIZE);
		w->mids = calloc(run.nsyms, sizeof(*w->mids));
		w->bought = calloc(run.nsyms, sizeof(*w->bought));
		w->sold = calloc(run.nsyms, sizeof(*w->sold));
		if (!w->traders || !w->subs || !w->dirty || !w->rxbuf ||
		    !w->mids || !w->bought || !w->sold)
			die("out of memory");
		for (i = 0; i < run.nsyms; i++)
			w->mids[i] = MID_CENTER;
		for (i = 0; i < w->ntraders; i++)
			conn_init(&w->traders[i], w, ROLE_TRADER, tb + i, i);
		for (i = 0; i < w->nsubs; i++)
			conn_init(&w->subs[i], w, ROLE_SUBSCRIBER, sb + i, i);
		w->active = w->ntraders + w->nsubs;
		w->active_traders = w->ntraders;
		w->not_ready = w->ntraders + w->nsubs;
		if (opt.rate && w->ntraders) {
			double rate = opt.rate * w->ntraders / opt.connections;

			w->period_ns = 1e9 / rate;
			if (opt.orders)
				w->sched_events = opt.orders * w->ntraders;
		}
		hist_init(&w->st.lat);
		hist_init(&w->st.send_lag);
		w->epfd = epoll_create1(EPOLL_CLOEXEC);
		w->kickfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (w->epfd < 0 || w->kickfd < 0 ||
		    epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->kickfd, &ev))
			die("epoll/eventfd: %s", strerror(errno));
	}
	run.traders_left = opt.connections;
}

void workers_free(void)
{
	unsigned t, i;

	for (t = 0; t < opt.threads; t++) {
		struct worker *w = &run.workers[t];

		for (i = 0; i < w->ntraders + w->nsubs; i++) {
			struct conn *c = i < w->ntraders ? &w->traders[i] :
					 &w->subs[i - w->ntraders];

			conn_close(c);
			free(c->tx);
			free(c->fifo);
			free(c->orders);
			free(c->idle);
			free(c->top_nonempty);
		}
		close(w->epfd);
		close(w->kickfd);
		free(w->traders);
		free(w->subs);
		free(w->dirty);
		free(w->rxbuf);
		free(w->mids);
		free(w->bought);
		free(w->sold);
	}
	free(run.workers);
	freeaddrinfo(run.addr);
}
