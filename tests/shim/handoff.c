/*
 * handoff - a connection one event-loop thread reads first and then hands
 * to another (the proxy and memcached pattern).
 *
 * Thread A accepts each connection into its own epoll set and reads the
 * greeting, 4 bytes a read; the first segment may also carry the start of
 * the first request.  A removes the socket from its set (EPOLL_CTL_DEL)
 * and passes it to thread B over a pipe; B adds it to its own set and must
 * be told the rest is readable, then read every byte in order (4 at a time,
 * one read an event level-triggered, until EAGAIN edge-triggered) and
 * answer.  The rest of the request comes in two more segments once B holds
 * the socket.  Two connections are handed over in each run: B sleeps in
 * epoll_wait for the first and serves the first for the second.
 *
 * Variants, each level- and edge-triggered: B's set waited on before the
 * hand-off, or not yet (B blocked in a plain read of its pipe), or nested
 * in another set (the kernel's readiness only); the request start sent
 * with the greeting, or only once B holds the socket; A reading nothing
 * (B reads first); the socket handed back to A for a second request B's
 * side already received; A adding the socket to B's set itself while B
 * sleeps in epoll_wait; A and B swapping sockets at the same moment, each
 * outside its event loop until it holds the other's.
 *
 * Under the shim, A's ring accelerates each socket: at the hand-off the
 * stats file must show a socket accelerated and a ring having received the
 * whole first segment (not only the greeting A read).  Unless B's set is
 * nested, the socket moves to B's ring: the bytes after the hand-off must
 * arrive through a ring too.  Nothing of this is printed, so the
 * transcript stays the plain one.  A hang fails after WAIT_MS.
 */
#include "conform.h"
#include "../../shim/stats.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#define GREETING	"HELO\n"
#define REQ1		"GET /alpha\r\n"
#define REQ1_SPLIT	7		/* "GET /al" | "pha\r\n" */
#define REQ2		"GET /omega\r\n"
#define STREAM		GREETING REQ1 REQ2
/* The whole stream as an array, so offsets into it index it. */
static const char stream[] = STREAM;
#define GREET_END	(sizeof(GREETING) - 1)
#define REQ1_END	(GREET_END + sizeof(REQ1) - 1)
#define REQ2_END	(REQ1_END + sizeof(REQ2) - 1)
#define CHUNK		4
#define CONNS		2
#define LOOP_MS		(WAIT_MS * 5)
#define MAX_SEEN	256

/* epoll data */
#define D_PIPE		100
#define D_LISTEN	101
#define D_CONN		0		/* + connection index */

enum b_set { B_WAITED, B_FRESH, B_NESTED };

struct variant {
	const char *name;
	int b_set;
	bool pulled;		/* request start in the greeting's segment */
	bool a_reads;		/* A reads the greeting; else B reads first */
	bool back;		/* B hands the socket back to A for REQ2 */
	bool direct;		/* A adds it to B's set itself */
	bool swap;		/* A and B pass each other one at once */
};

static const struct variant variants[] = {
	{ "waited, pulled",	B_WAITED, .pulled = true, .a_reads = true },
	{ "waited, later",	B_WAITED, .a_reads = true },
	{ "fresh, pulled",	B_FRESH, .pulled = true, .a_reads = true },
	{ "fresh, later",	B_FRESH, .a_reads = true },
	{ "nested, pulled",	B_NESTED, .pulled = true, .a_reads = true },
	{ "B reads first",	B_WAITED, .pulled = true },
	{ "back to A",		B_WAITED, .pulled = true, .a_reads = true,
				.back = true },
	{ "A adds to B's set",	B_WAITED, .pulled = true, .a_reads = true,
				.direct = true },
	{ "swapped at once",	B_WAITED, .a_reads = true, .swap = true },
};

/* Messages to a loop thread (its pipe) and to main (progress). */
enum { M_CONN, M_QUIT, M_SWAP, M_TAKE };
enum { P_READY, P_ACCEPTED, P_HANDED, P_ADDED, P_AT, P_PARKED, P_TAKEN };

struct msg {
	int kind;
	int idx;
	size_t off;
};

struct conn {
	int fd;
	int client;
	size_t off;		/* stream bytes read so far */
	uint64_t recv_mark;	/* ring bytes received at the hand-off */
};

struct run {
	const struct variant *v;
	bool et;
	int listener;
	int epa, epb, epo;
	int pipe_a[2], pipe_b[2], progress[2];
	int swap_a[2], swap_b[2];	/* swap runs: to A, to B */
	pthread_barrier_t both;		/* swap runs: both about to add */
	int accepted;
	struct conn conns[CONNS];
	pthread_t ta, tb;
	struct msg seen[MAX_SEEN];	/* progress so far */
	int nseen;
};

/* ---- the shim's stats file (only under the shim) ---- */

static const struct shim_stats_file *stats;

/* Under the shim (preloaded), its stats file must be there. */
static void stats_open(void)
{
	const char *pre = getenv("LD_PRELOAD"), *dir;
	const struct shim_stats_file *map;
	char path[4096];
	int fd;

	if (!pre || !strstr(pre, "uringshim"))
		return;
	dir = getenv("URINGSHIM_STATS_DIR");
	snprintf(path, sizeof(path), "%s/uringshim.%d", dir ? dir : "/dev/shm",
		 (int)getpid());
	fd = open(path, O_RDONLY | O_CLOEXEC);
	expect(fd >= 0);
	if (fd < 0)
		return;
	map = mmap(NULL, sizeof(*stats), PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	expect(map != MAP_FAILED);
	if (map == MAP_FAILED)
		return;
	expect(map->magic == SHIM_STATS_MAGIC &&
	       map->version == SHIM_STATS_VERSION &&
	       map->size == sizeof(*map));
	stats = map;
}

/* Is the shim accelerating (not passthrough, disabled or killed)? */
static bool shim_active(void)
{
	return stats && __atomic_load_n(&stats->state, __ATOMIC_RELAXED) ==
			SHIM_STATE_ACTIVE;
}

static int64_t stats_accel_now(void)
{
	return __atomic_load_n(&stats->accel_now, __ATOMIC_RELAXED);
}

/* Bytes every ring has received so far. */
static uint64_t stats_ring_recv(void)
{
	uint32_t n = __atomic_load_n(&stats->nslots, __ATOMIC_RELAXED);
	uint64_t sum = 0;

	for (uint32_t i = 0; i < n && i < SHIM_STATS_SLOTS; i++)
		sum += __atomic_load_n(&stats->slot[i].bytes_recv,
				       __ATOMIC_RELAXED);
	return sum;
}

/* ---- messages ---- */

static void put_msg(int fd, int kind, int idx, size_t off)
{
	struct msg m = { .kind = kind, .idx = idx, .off = off };

	if (write(fd, &m, sizeof(m)) != sizeof(m))
		die_errno("pipe write");
}

static void progress(struct run *r, int kind, int idx, size_t off)
{
	put_msg(r->progress[1], kind, idx, off);
}

/*
 * Wait for a progress message of kind for connection idx (P_AT: at offset
 * off or beyond), whenever it came.  A hang is the failure this program
 * looks for: bounded, and fatal (the threads may be stuck for good).
 */
static void await(struct run *r, int kind, int idx, size_t off)
{
	for (;;) {
		for (int i = 0; i < r->nseen; i++) {
			struct msg *m = &r->seen[i];

			if (m->kind == kind && m->idx == idx &&
			    (kind != P_AT || m->off >= off))
				return;
		}
		if (!(wait_fd(r->progress[0], POLLIN) & POLLIN)) {
			say("TIMEOUT waiting for step %d of conn%d at %zu",
			    kind, idx, off);
			expect(!"hand-off hangs");
			exit(conform_finish());
		}
		if (r->nseen == MAX_SEEN) {
			errno = ENOSPC;
			die_errno("progress log");
		}
		if (read(r->progress[0], &r->seen[r->nseen], sizeof(struct msg))
		    != sizeof(struct msg))
			die_errno("progress read");
		r->nseen++;
	}
}

/* ---- serving ---- */

static uint32_t a_events(const struct run *r)
{
	return EPOLLIN | EPOLLRDHUP | (r->et ? EPOLLET : 0);
}

/*
 * B asks for OUT too when edge-triggered (the whole mask comes with each
 * edge), except in a nested set: the socket cannot stay accelerated there,
 * and when the kernel takes it back after the pulled bytes, its new
 * registration has one edge of its own if OUT holds (a documented limit).
 */
static uint32_t b_events(const struct run *r)
{
	uint32_t ev = EPOLLIN | EPOLLRDHUP;

	if (r->et)
		ev |= EPOLLET | (r->v->b_set != B_NESTED ? EPOLLOUT : 0);
	return ev;
}

/* Bytes as text, \r and \n spelt out (a per-thread buffer). */
static const char *shown(const char *buf, ssize_t n)
{
	static __thread char text[64];
	size_t len = 0;

	for (ssize_t i = 0; i < n && len < sizeof(text) - 3; i++) {
		if (buf[i] == '\n' || buf[i] == '\r') {
			text[len++] = '\\';
			text[len++] = buf[i] == '\n' ? 'n' : 'r';
		} else {
			text[len++] = buf[i];
		}
	}
	text[len] = '\0';
	return text;
}

/* End of the message (greeting, request) the offset lies in. */
static size_t msg_end(size_t off)
{
	return off < GREET_END ? GREET_END :
	       off < REQ1_END ? REQ1_END : REQ2_END;
}

/* "OK alpha" for a request "GET /alpha\r\n" ending at end. */
static void answer(char who, struct conn *c, int idx, size_t end)
{
	const char *req = &stream[end - (sizeof(REQ1) - 1)];
	char out[32];
	int len = snprintf(out, sizeof(out), "OK %.5s\n", req + 5);

	say("%c: conn%d answers '%.5s'", who, idx, req + 5);
	write_all(c->fd, out, len);
}

/*
 * Read conn up to stop: one read an event level-triggered, until EAGAIN
 * (or stop) edge-triggered; every byte is checked against the stream.
 */
static void serve(struct run *r, char who, int idx, size_t stop)
{
	struct conn *c = &r->conns[idx];
	int err = 0;
	ssize_t n;

	do {
		size_t want = msg_end(c->off) - c->off;
		char buf[CHUNK];

		if (want > CHUNK)
			want = CHUNK;
		n = read(c->fd, buf, want);
		err = errno;
		say("%c: conn%d read %s '%s'", who, idx, result_text(n),
		    shown(buf, n));
		if (n <= 0)
			break;
		expect(!memcmp(buf, &stream[c->off], n));
		c->off += n;
		if (c->off > GREET_END && c->off == msg_end(c->off - 1))
			answer(who, c, idx, c->off);
	} while (r->et && c->off < stop);
	expect(n > 0 || (n < 0 && err == EAGAIN));
}

/*
 * Under the shim: the socket is accelerated, and a ring received (at
 * least) bytes since the mark; no other socket received any meanwhile.
 */
static void expect_on_ring(struct conn *c, size_t bytes)
{
	if (!shim_active())
		return;
	expect(stats_accel_now() >= 1);
	expect(stats_ring_recv() - c->recv_mark >= bytes);
}

/* A passes conn idx to B: over B's pipe, or into B's set directly. */
static void hand_to_b(struct run *r, int idx)
{
	struct conn *c = &r->conns[idx];
	struct epoll_event ev = { .events = b_events(r),
				  .data.u64 = D_CONN + idx };

	/* A's ring took the whole first segment, not just the greeting. */
	expect_on_ring(c, r->v->pulled ? GREET_END + REQ1_SPLIT : GREET_END);
	c->recv_mark = shim_active() ? stats_ring_recv() : 0;
	if (epoll_ctl(r->epa, EPOLL_CTL_DEL, c->fd, NULL))
		die_errno("EPOLL_CTL_DEL");
	if (r->v->direct) {
		/* Said first: B may see it at once. */
		say("A: conn%d goes into B's set", idx);
		if (epoll_ctl(r->epb, EPOLL_CTL_ADD, c->fd, &ev))
			die_errno("EPOLL_CTL_ADD B");
		progress(r, P_ADDED, idx, 0);
		return;
	}
	say("A: conn%d handed to B", idx);
	put_msg(r->pipe_b[1], M_CONN, idx, 0);
	progress(r, P_HANDED, idx, 0);
}

/* Swap runs: A keeps conn0 in its set, asking for nothing for now. */
static void park(struct run *r, int idx)
{
	epoll_mod(r->epa, r->conns[idx].fd, 0, D_CONN + idx);
	say("A: conn%d parked", idx);
	progress(r, P_PARKED, idx, 0);
}

/*
 * Swap runs, told at once to both threads: each passes the socket it holds
 * (A conn0, B conn1) to the other over a pipe of their own, waits for the
 * other's in a plain read and adds it to its own set.  Each add needs the other
 * thread's ring, and neither thread is in epoll_wait meanwhile: neither
 * may wait for the other for ever.  Quiet: the two threads run together.
 */
static void swap(struct run *r, char who)
{
	int idx = who == 'A' ? 0 : 1;
	int mine = who == 'A' ? r->epa : r->epb;
	int in = who == 'A' ? r->swap_a[0] : r->swap_b[0];
	int out = who == 'A' ? r->swap_b[1] : r->swap_a[1];
	struct msg m;

	if (epoll_ctl(mine, EPOLL_CTL_DEL, r->conns[idx].fd, NULL))
		die_errno("swap: EPOLL_CTL_DEL");
	put_msg(out, M_TAKE, idx, 0);
	if (read(in, &m, sizeof(m)) != sizeof(m) || m.kind != M_TAKE)
		die_errno("swap: pipe read");
	/* From here to the add, neither thread makes another call. */
	pthread_barrier_wait(&r->both);
	epoll_add(mine, r->conns[m.idx].fd, a_events(r), D_CONN + m.idx);
	progress(r, P_TAKEN, m.idx, 0);
}

static void *a_main(void *arg)
{
	struct run *r = arg;
	struct epoll_event evs[4];

	for (;;) {
		int n = epoll_wait(r->epa, evs, 4, LOOP_MS);

		if (n <= 0) {
			say("A: wait %s", result_text(n));
			expect(!"A: wait");
			return NULL;
		}
		for (int i = 0; i < n; i++) {
			uint64_t d = evs[i].data.u64;
			struct conn *c;
			struct msg m;
			int idx;

			if (d == D_PIPE) {
				if (read(r->pipe_a[0], &m, sizeof(m)) !=
				    sizeof(m))
					die_errno("A: pipe read");
				if (m.kind == M_QUIT)
					return NULL;
				if (m.kind == M_SWAP) {
					swap(r, 'A');
					continue;
				}
				/* B hands the socket back. */
				epoll_add(r->epa, r->conns[m.idx].fd,
					  a_events(r), D_CONN + m.idx);
				say("A: conn%d back, added", m.idx);
				progress(r, P_ADDED, m.idx, 0);
				continue;
			}
			if (d == D_LISTEN) {
				idx = r->accepted++;
				c = &r->conns[idx];
				c->fd = accept4(r->listener, NULL, NULL,
						SOCK_NONBLOCK | SOCK_CLOEXEC);
				if (c->fd < 0)
					die_errno("accept4");
				epoll_add(r->epa, c->fd, a_events(r),
					  D_CONN + idx);
				c->recv_mark = shim_active() ?
					       stats_ring_recv() : 0;
				say("A: conn%d accepted", idx);
				progress(r, P_ACCEPTED, idx, 0);
				continue;
			}
			idx = (int)(d - D_CONN);
			c = &r->conns[idx];
			say("A: conn%d %s", idx,
			    epoll_event_names(evs[i].events));
			if (c->off < GREET_END) {
				if (r->v->a_reads)
					serve(r, 'A', idx, GREET_END);
				if (r->v->swap && !idx && c->off == GREET_END)
					park(r, idx);
				else if (!r->v->a_reads || c->off == GREET_END)
					hand_to_b(r, idx);
				continue;
			}
			serve(r, 'A', idx, REQ2_END);
			progress(r, P_AT, idx, c->off);
		}
	}
}

static void b_adds(struct run *r, int idx)
{
	epoll_add(r->epb, r->conns[idx].fd, b_events(r), D_CONN + idx);
	say("B: conn%d added", idx);
	progress(r, P_ADDED, idx, 0);
}

/* B's side of one event; true when the thread is to end. */
static bool b_event(struct run *r, const struct epoll_event *ev)
{
	struct conn *c;
	struct msg m;
	size_t off;
	int idx;

	if (ev->data.u64 == D_PIPE) {
		if (read(r->pipe_b[0], &m, sizeof(m)) != sizeof(m))
			die_errno("B: pipe read");
		if (m.kind == M_QUIT)
			return true;
		if (m.kind == M_SWAP)
			swap(r, 'B');
		else
			b_adds(r, m.idx);
		return false;
	}
	idx = (int)(ev->data.u64 - D_CONN);
	c = &r->conns[idx];
	say("B: conn%d %s", idx, epoll_event_names(ev->events));
	serve(r, 'B', idx, REQ1_END);
	/* Moved to B's ring, unless B's set is nested (kernel only). */
	if (c->off == REQ1_END && r->v->b_set != B_NESTED)
		expect_on_ring(c, r->v->pulled ? 5 : 5 + REQ1_SPLIT);
	off = c->off;		/* A's once handed back */
	if (r->v->back && off == REQ1_END) {
		/* The socket goes back: B's ring may hold some of REQ2. */
		if (epoll_ctl(r->epb, EPOLL_CTL_DEL, c->fd, NULL))
			die_errno("B: EPOLL_CTL_DEL");
		say("B: conn%d handed back to A", idx);
		c->recv_mark = shim_active() ? stats_ring_recv() : 0;
		put_msg(r->pipe_a[1], M_CONN, idx, 0);
	}
	progress(r, P_AT, idx, off);
	return false;
}

static void *b_main(void *arg)
{
	struct run *r = arg;
	struct epoll_event evs[4];

	if (r->v->b_set == B_FRESH) {
		struct msg m;

		/* No epoll_wait before the socket arrives. */
		progress(r, P_READY, 0, 0);
		if (read(r->pipe_b[0], &m, sizeof(m)) != sizeof(m))
			die_errno("B: pipe read");
		b_adds(r, m.idx);
	} else {
		/* Waited on (and empty) before anything is handed over. */
		expect_no_report(r->epb, 0, "B: first wait");
		progress(r, P_READY, 0, 0);
	}
	for (;;) {
		int n = epoll_wait(r->epb, evs, 4, LOOP_MS);

		if (n <= 0) {
			say("B: wait %s", result_text(n));
			expect(!"B: wait");
			return NULL;
		}
		for (int i = 0; i < n; i++)
			if (b_event(r, &evs[i]))
				return NULL;
	}
}

/* ---- the client (main thread) ---- */

static void client_send(struct run *r, int idx, const char *text)
{
	struct conn *c = &r->conns[idx];

	if (!put_text(c->client, text))
		exit(conform_finish());
}

static void client_expect(struct run *r, int idx, const char *want)
{
	char buf[32];
	size_t len = strlen(want);
	bool eof;
	int err;
	size_t got = read_stream(r->conns[idx].client, buf, len, &eof, &err);

	say("client: conn%d got '%s'", idx, shown(buf, got));
	expect(got == len && !memcmp(buf, want, len));
}

/* The request in three segments, each once the server read the last. */
static void client_request(struct run *r, int idx)
{
	client_send(r, idx, "GET /al");
	await(r, P_AT, idx, GREET_END + REQ1_SPLIT);
	client_send(r, idx, "pha\r");
	await(r, P_AT, idx, REQ1_END - 1);
	client_send(r, idx, "\n");
	await(r, P_AT, idx, REQ1_END);
	client_expect(r, idx, "OK alpha\n");
}

/* conn0 stays with A, conn1 goes to B; then they trade, at once. */
static void swap_conns(struct run *r)
{
	for (int idx = 0; idx < CONNS; idx++) {
		r->conns[idx].client = tcp_connect_to(r->listener);
		await(r, P_ACCEPTED, idx, 0);
		client_send(r, idx, GREETING);
		await(r, idx ? P_ADDED : P_PARKED, idx, 0);
	}
	/* Edge-triggered with OUT: B sees that edge first. */
	if (r->et)
		await(r, P_AT, 1, GREET_END);
	put_msg(r->pipe_a[1], M_SWAP, 0, 0);
	put_msg(r->pipe_b[1], M_SWAP, 0, 0);
	await(r, P_TAKEN, 0, 0);
	await(r, P_TAKEN, 1, 0);
	say("client: swapped");
	client_request(r, 0);
	client_request(r, 1);
}

static void one_conn(struct run *r, int idx)
{
	struct conn *c = &r->conns[idx];
	const struct variant *v = r->v;

	c->client = tcp_connect_to(r->listener);
	await(r, P_ACCEPTED, idx, 0);
	/* One write: greeting (and request start) in one segment. */
	client_send(r, idx, v->pulled ? GREETING "GET /al" : GREETING);
	if (!v->direct)
		await(r, P_HANDED, idx, 0);
	await(r, P_ADDED, idx, 0);
	if (!v->pulled) {
		/* Edge-triggered with OUT: B sees that edge first. */
		if (r->et)
			await(r, P_AT, idx, v->a_reads ? GREET_END : 0);
		client_send(r, idx, "GET /al");
	}
	await(r, P_AT, idx, GREET_END + REQ1_SPLIT);
	/* The rest in two more segments, each once B has read the last. */
	client_send(r, idx, "pha\r");
	await(r, P_AT, idx, REQ1_END - 1);
	if (!v->back) {
		client_send(r, idx, "\n");
		await(r, P_AT, idx, REQ1_END);
		client_expect(r, idx, "OK alpha\n");
		return;
	}
	/* B answers, hands it back; REQ2 came in B's last segment. */
	client_send(r, idx, "\n" REQ2);
	await(r, P_ADDED, idx, 0);
	await(r, P_AT, idx, REQ2_END);
	client_expect(r, idx, "OK alpha\nOK omega\n");
}

static void make_pipe(int p[2])
{
	if (pipe2(p, O_CLOEXEC))
		die_errno("pipe2");
}

static void run_variant(const struct variant *v, bool et)
{
	struct run r = { .v = v, .et = et, .epo = -1 };

	say("== %s, %s", v->name, et ? "edge-triggered" : "level-triggered");
	r.listener = tcp_listener(AF_INET);
	make_pipe(r.pipe_a);
	make_pipe(r.pipe_b);
	make_pipe(r.progress);
	make_pipe(r.swap_a);
	make_pipe(r.swap_b);
	pthread_barrier_init(&r.both, NULL, 2);
	r.epa = epoll_new();
	r.epb = epoll_new();
	epoll_add(r.epa, r.pipe_a[0], EPOLLIN, D_PIPE);
	epoll_add(r.epa, r.listener, EPOLLIN, D_LISTEN);
	epoll_add(r.epb, r.pipe_b[0], EPOLLIN, D_PIPE);
	if (v->b_set == B_NESTED) {
		/* B's set inside another: readiness from the kernel alone. */
		r.epo = epoll_new();
		epoll_add(r.epo, r.epb, EPOLLIN, 0);
	}
	if (pthread_create(&r.tb, NULL, b_main, &r) ||
	    pthread_create(&r.ta, NULL, a_main, &r))
		die_errno("pthread_create");
	await(&r, P_READY, 0, 0);
	if (v->swap)
		swap_conns(&r);
	for (int i = 0; i < CONNS && !v->swap; i++)
		one_conn(&r, i);
	put_msg(r.pipe_a[1], M_QUIT, 0, 0);
	put_msg(r.pipe_b[1], M_QUIT, 0, 0);
	pthread_join(r.ta, NULL);
	pthread_join(r.tb, NULL);
	for (int i = 0; i < CONNS; i++)
		close_all(r.conns[i].fd, r.conns[i].client);
	close_all(r.listener, r.epa, r.epb, r.pipe_a[0], r.pipe_a[1],
		  r.pipe_b[0], r.pipe_b[1], r.progress[0], r.progress[1],
		  r.swap_a[0], r.swap_a[1], r.swap_b[0], r.swap_b[1]);
	if (r.epo >= 0)
		close(r.epo);
	pthread_barrier_destroy(&r.both);
}

/* handoff [N]: every variant, or only the Nth (from 0), for debugging. */
int main(int argc, char **argv)
{
	size_t n = sizeof(variants) / sizeof(variants[0]);

	setvbuf(stdout, NULL, _IOLBF, 0);
	stats_open();
	for (size_t i = 0; i < n; i++) {
		if (argc > 1 && (size_t)atoi(argv[1]) != i)
			continue;
		run_variant(&variants[i], false);
		run_variant(&variants[i], true);
	}
	return conform_finish();
}
