/*
 * loadgen - order-entry load generator and verifier for matching_server.
 *
 * Opens N trading connections (plus optional market-data subscribers),
 * drives a realistic order flow through them in a closed loop (K requests in
 * flight per connection) or an open loop (a fixed total rate, latency taken
 * from the intended send time so that a slow server cannot hide its queueing
 * delay), and checks every byte that comes back: framing, the type and order
 * of each direct response, one terminal outcome per order, fill arithmetic,
 * bought = sold per symbol, and market data against the trades seen.
 *
 * Worker threads each own a set of connections and an epoll instance; per
 * loop iteration a connection gets one big read and at most one write.
 *
 * Determinism (--deterministic): connection i trades only symbol base + i,
 * against itself, with a PRNG seeded from (seed, i). Every decision is made
 * while handling a given message of that connection's own stream (the first
 * K at start, then one per direct response), never at a read boundary, so
 * the stream a connection receives is a function of (seed, i, options) only.
 * The digest hashes each connection's stream, then combines them in order.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../demo_server/protocol.h"
#include "hist.h"

#define MAX_CONNECTIONS		20000
#define MAX_SUBSCRIBERS		1000
#define MAX_THREADS		64
#define RXBUF_SIZE		(256 * 1024)
#define EPOLL_BATCH		256
/* Outstanding non-blocking connects per worker: avoid SYN storms. */
#define CONNECT_WINDOW		128
/* cl_ord_id = sequence << SLOT_BITS | pool slot: O(1) lookup, never reused. */
#define SLOT_BITS		20
#define SLOT_MASK		((1u << SLOT_BITS) - 1)
#define NO_INDEX		UINT32_MAX
/* The barrier a subscriber uses: a Cancel nobody can own. */
#define BARRIER_ID_SYNC		(UINT64_MAX - 1)
#define BARRIER_ID_FINAL	UINT64_MAX
#define MID_CENTER		10000
#define MID_RANGE		50
#define DETAIL_ERRORS		10

enum mix_kind { MIX_NEW, MIX_CANCEL, MIX_REPLACE, MIX_MARKET, MIX_KINDS };
static const char *const mix_names[MIX_KINDS] = {
	"new", "cancel", "replace", "market",
};

/* What a request awaiting its direct response was. */
enum req_kind {
	REQ_NEW, REQ_CANCEL, REQ_REPLACE, REQ_MARKET,	/* = enum mix_kind */
	REQ_CLEANUP,		/* end-of-run cancel of a resting order */
	REQ_HELLO,
	REQ_BARRIER,		/* subscriber's Cancel of BARRIER_ID_* */
	REQ_KINDS
};

enum order_state {
	OS_FREE,
	OS_PENDING_NEW,		/* sent, no Accepted/Rejected yet */
	OS_OPEN,		/* accepted limit order with leaves > 0 */
	OS_IOC,			/* accepted market order, awaiting its end */
	OS_DONE,		/* terminal; kept while a request names it */
};

enum conn_state {
	CS_IDLE,		/* not connected yet */
	CS_CONNECTING,
	CS_SETUP,		/* Hello (and subscriptions) in flight */
	CS_READY,		/* waiting for the start */
	CS_RUNNING,
	CS_CLEANUP,		/* cancelling what rests, awaiting outcomes */
	CS_MD_FINAL,		/* subscriber: final barrier in flight */
	CS_DONE,
	CS_FAILED,
};

enum conn_role { ROLE_TRADER, ROLE_SUBSCRIBER };

struct options {
	const char *host;
	const char *port;
	unsigned connections;
	unsigned subscribers;
	unsigned threads;
	unsigned inflight;
	double duration_s;
	uint64_t orders;	/* per connection; 0 = run for duration_s */
	double rate;		/* total requests/s; 0 = closed loop */
	bool deterministic;
	uint64_t seed;
	const char *json_path;
	unsigned symbols;
	unsigned symbol_base;
	unsigned mix[MIX_KINDS];
	unsigned mix_total;
	unsigned max_open;
	double stall_s;
	bool quiet;
	int cpus[MAX_THREADS];
	unsigned ncpus;
};

struct order {
	uint64_t cl_ord_id;
	uint64_t replace_id;	/* new_cl_ord_id of a pending replace */
	uint64_t order_id;
	int64_t price;
	uint32_t symbol;
	uint32_t leaves;
	uint32_t link;		/* free list while OS_FREE, else idle index */
	uint8_t state;
	uint8_t side;
	uint8_t ord_type;
	uint8_t pending;	/* a cancel or replace awaits its response */
};

/* One request awaiting its direct response, in send order. */
struct inflight {
	uint64_t sent_ns;	/* closed loop: just before the write */
	uint64_t id;		/* new: its id; cancel: target; replace: orig */
	uint64_t new_id;	/* replace */
	int64_t price;		/* replace */
	uint32_t qty;		/* replace */
	uint8_t kind;
};

struct stats {
	uint64_t requests;		/* measured direct responses */
	uint64_t sent[REQ_KINDS];
	uint64_t filled, canceled, ioc_canceled, rejected;
	uint64_t replaced, cancel_rejected, replace_rejected;
	uint64_t trades;		/* matches: aggressor executions */
	uint64_t passive_fills;		/* resting-side executions */
	uint64_t bytes_in, bytes_out, md_bytes, md_messages;
	uint64_t errors;
	struct hist lat;
};

struct worker;

struct conn {
	int fd;
	uint8_t role;
	uint8_t state;
	bool dirty;
	bool want_out;
	unsigned index;		/* global index among traders or subscribers */
	unsigned local;		/* index among its worker's traders */
	struct worker *w;

	uint8_t carry[MSG_MAX_SIZE];	/* a partial frame between reads */
	unsigned carry_len;
	uint64_t hash;

	uint8_t *tx;
	size_t tx_len, tx_off, tx_cap;

	struct inflight *fifo;	/* a ring; grows for the final cancels */
	unsigned fifo_cap, fifo_head, fifo_count;
	unsigned unstamped;	/* newest entries lacking sent_ns */

	struct order *orders;
	uint32_t orders_cap, orders_hw, orders_used, free_head;
	uint32_t *idle;		/* open orders with nothing pending */
	uint32_t idle_count;
	uint64_t id_seq;

	uint64_t sent;		/* mix requests sent */
	uint64_t scheduled;	/* open loop: sends due so far */
	uint64_t rng;
	int64_t mid;		/* deterministic: own symbol's mid */

	/* subscriber */
	uint8_t *top_nonempty;	/* per symbol: last top had a bid or ask */
	uint32_t nonempty;
	uint64_t md_trades;
};

struct worker {
	unsigned id;
	pthread_t thread;
	int epfd;
	int kickfd;
	struct conn *traders;
	unsigned ntraders;
	struct conn *subs;
	unsigned nsubs;
	unsigned next_connect;		/* over traders then subs */
	unsigned connecting;
	unsigned not_ready;
	unsigned active;		/* connections not done */
	unsigned active_traders;
	unsigned cleaning;		/* connections in CS_CLEANUP */
	unsigned fifo_total;
	bool md_final_sent;
	bool sending_stopped;
	struct conn **dirty;
	unsigned ndirty;
	uint8_t *rxbuf;
	int64_t *mids;			/* per symbol, shared-symbol mode */
	int64_t *bought, *sold;		/* per tracked symbol */
	uint64_t now;
	uint64_t last_rx_ns;
	uint64_t last_response_ns;
	double period_ns;		/* open loop: between sends */
	uint64_t sched_next;		/* open loop: next event index */
	uint64_t sched_events;		/* open loop: total, 0 = unbounded */
	_Atomic uint64_t progress;
	struct stats st;
};

static struct options opt = {
	.host = "127.0.0.1",
	.connections = 1,
	.threads = 1,
	.symbols = 16,
	.mix = { 70, 15, 10, 5 },
	.mix_total = 100,
	.max_open = 32,
	.stall_s = 10,
	.seed = 1,
};

static struct {
	_Atomic bool abort;
	_Atomic bool interrupted;	/* SIGINT: stop sending, finish */
	_Atomic uint64_t errors;
	_Atomic unsigned traders_left;
	_Atomic unsigned workers_done;
	pthread_barrier_t ready;
	pthread_barrier_t go;
	uint64_t t_start;
	uint64_t t_end;			/* duration runs */
	bool started;			/* every connection logged in */
	struct addrinfo *addr;
	unsigned nsyms;			/* tracked symbols */
	struct worker *workers;
	pthread_mutex_t err_lock;
	unsigned err_printed;
} run;

/* ===== small helpers ===== */

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t rng_next(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint32_t rng_below(uint64_t *state, uint32_t n)
{
	return (uint32_t)(((rng_next(state) >> 32) * n) >> 32);
}

/* Mixes one 8-byte word into a stream hash (messages are 8-byte multiples). */
static inline uint64_t hash_word(uint64_t h, uint64_t word)
{
	h ^= word * 0x87c37b91114253d5ull;
	h = (h << 31) | (h >> 33);
	return h * 0x4cf5ad432745937full + 0x52dce729;
}

static void die(const char *fmt, ...)
{
	va_list ap;

	fputs("loadgen: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

static void kick_workers(void)
{
	uint64_t one = 1;
	unsigned i;

	for (i = 0; i < opt.threads; i++)
		if (write(run.workers[i].kickfd, &one, sizeof(one)) < 0 &&
		    errno != EAGAIN)
			perror("loadgen: eventfd write");
}

/* First SIGINT: finish gracefully with a summary; the second kills. */
static void on_sigint(int sig)
{
	uint64_t one = 1;
	unsigned i;

	signal(sig, SIG_DFL);
	atomic_store(&run.interrupted, true);
	for (i = 0; run.workers && i < opt.threads; i++)
		if (write(run.workers[i].kickfd, &one, sizeof(one)) < 0)
			continue;	/* async-signal-safe: nothing to do */
}

static void run_abort(void)
{
	if (!atomic_exchange(&run.abort, true))
		kick_workers();
}

/*
 * conn_error - count a verification error on @c and print the first few.
 * The run goes on: one wrong byte should not hide what else is wrong.
 */
__attribute__((format(printf, 2, 3)))
static void conn_error(struct conn *c, const char *fmt, ...)
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

static void conn_close(struct conn *c)
{
	if (c->fd >= 0) {
		close(c->fd);
		c->fd = -1;
	}
}

static void conn_set_done(struct conn *c)
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
static void conn_fail(struct conn *c, const char *fmt, ...)
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

static void tx_append(struct conn *c, const void *msg, uint8_t type)
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

/* ===== requests awaiting their direct response ===== */

static struct inflight *fifo_head(struct conn *c)
{
	return c->fifo_count ? &c->fifo[c->fifo_head] : NULL;
}

/* The closed-loop window, or the open-loop cap, is --inflight. */
static bool fifo_full(const struct conn *c)
{
	return c->fifo_count >= opt.inflight;
}

static void fifo_grow(struct conn *c)
{
	unsigned cap = c->fifo_cap * 2, i;
	struct inflight *fifo = malloc(cap * sizeof(*fifo));

	if (!fifo)
		die("out of memory");
	for (i = 0; i < c->fifo_count; i++)
		fifo[i] = c->fifo[(c->fifo_head + i) % c->fifo_cap];
	free(c->fifo);
	c->fifo = fifo;
	c->fifo_cap = cap;
	c->fifo_head = 0;
}

static struct inflight *fifo_push(struct conn *c, uint8_t kind,
				  uint64_t sent_ns)
{
	struct inflight *e;

	if (c->fifo_count == c->fifo_cap)
		fifo_grow(c);
	e = &c->fifo[(c->fifo_head + c->fifo_count) % c->fifo_cap];
	memset(e, 0, sizeof(*e));
	e->kind = kind;
	e->sent_ns = sent_ns;
	if (!sent_ns)
		c->unstamped++;
	c->fifo_count++;
	c->w->fifo_total++;
	return e;
}

/* Pops the head, recording its latency when it is a measured request. */
static void fifo_pop(struct conn *c)
{
	struct inflight *e = &c->fifo[c->fifo_head];
	struct worker *w = c->w;

	if (e->kind <= REQ_MARKET) {
		hist_record(&w->st.lat, w->now > e->sent_ns ?
					w->now - e->sent_ns : 0);
		w->st.requests++;
		w->last_response_ns = w->now;
	}
	c->fifo_head = (c->fifo_head + 1) % c->fifo_cap;
	c->fifo_count--;
	w->fifo_total--;
}

/* ===== order pool: slot = cl_ord_id & SLOT_MASK ===== */

static struct order *order_alloc(struct conn *c)
{
	struct order *o;
	uint32_t slot;

	if (c->free_head != NO_INDEX) {
		slot = c->free_head;
		c->free_head = c->orders[slot].link;
	} else {
		if (c->orders_hw == c->orders_cap) {
			uint32_t cap = c->orders_cap ? c->orders_cap * 2 : 16;
			struct order *orders;
			uint32_t *idle;

			if (cap > SLOT_MASK + 1)
				return NULL;
			orders = realloc(c->orders, cap * sizeof(*orders));
			if (!orders)
				return NULL;
			c->orders = orders;
			idle = realloc(c->idle, cap * sizeof(*idle));
			if (!idle)
				return NULL;
			c->idle = idle;
			c->orders_cap = cap;
		}
		slot = c->orders_hw++;
	}
	o = &c->orders[slot];
	memset(o, 0, sizeof(*o));
	o->link = NO_INDEX;
	o->cl_ord_id = ++c->id_seq << SLOT_BITS | slot;
	c->orders_used++;
	return o;
}

static uint32_t order_slot(const struct conn *c, const struct order *o)
{
	return (uint32_t)(o - c->orders);
}

static struct order *order_find(struct conn *c, uint64_t id)
{
	uint32_t slot = (uint32_t)(id & SLOT_MASK);
	struct order *o;

	if (!id || slot >= c->orders_hw)
		return NULL;
	o = &c->orders[slot];
	return o->state != OS_FREE && o->cl_ord_id == id ? o : NULL;
}

static void idle_add(struct conn *c, struct order *o)
{
	o->link = c->idle_count;
	c->idle[c->idle_count++] = order_slot(c, o);
}

static void idle_remove(struct conn *c, struct order *o)
{
	uint32_t last;

	if (o->link == NO_INDEX)
		return;
	last = c->idle[--c->idle_count];
	c->idle[o->link] = last;
	c->orders[last].link = o->link;
	o->link = NO_INDEX;
}

/* Frees the slot once the order is terminal and no request refers to it. */
static void order_release(struct conn *c, struct order *o)
{
	if (o->state != OS_DONE || o->pending)
		return;
	idle_remove(c, o);
	o->state = OS_FREE;
	o->link = c->free_head;
	c->free_head = order_slot(c, o);
	c->orders_used--;
}

static void order_finish(struct conn *c, struct order *o)
{
	idle_remove(c, o);
	o->state = OS_DONE;
	order_release(c, o);
}

/* ===== the order flow ===== */

static bool conn_may_send(const struct conn *c)
{
	if (c->state != CS_RUNNING || c->w->sending_stopped)
		return false;
	return !opt.orders || c->sent < opt.orders;
}

/* The mid of @symbol, walked one tick at random within a band. */
static int64_t walk_mid(struct conn *c, uint32_t symbol)
{
	int64_t *mid = opt.deterministic ? &c->mid :
			&c->w->mids[symbol - opt.symbol_base];

	*mid += (int64_t)rng_below(&c->rng, 3) - 1;
	if (*mid > MID_CENTER + MID_RANGE)
		*mid = MID_CENTER + MID_RANGE;
	if (*mid < MID_CENTER - MID_RANGE)
		*mid = MID_CENTER - MID_RANGE;
	return *mid;
}

static void send_new_order(struct conn *c, bool market, uint64_t sent_ns)
{
	struct msg_new_order m;
	struct inflight *e;
	struct order *o;
	int64_t mid;

	o = order_alloc(c);
	if (!o) {
		conn_fail(c, "more than %u open orders", SLOT_MASK);
		return;
	}
	memset(&m, 0, sizeof(m));
	m.symbol = opt.deterministic ? opt.symbol_base + c->index :
		   opt.symbol_base + rng_below(&c->rng, opt.symbols);
	m.cl_ord_id = o->cl_ord_id;
	m.side = rng_below(&c->rng, 2) ? SIDE_BUY : SIDE_SELL;
	mid = walk_mid(c, m.symbol);
	if (market) {
		m.ord_type = ORD_MARKET;
		m.tif = TIF_IOC;
		m.qty = 1 + rng_below(&c->rng, 50);
	} else {
		/* Buys from mid-4 to mid+2, sells mirrored: some cross. */
		int64_t offset = (int64_t)rng_below(&c->rng, 7) - 4;

		m.ord_type = ORD_LIMIT;
		m.tif = TIF_GTC;
		m.price = m.side == SIDE_BUY ? mid + offset : mid - offset;
		m.qty = 1 + rng_below(&c->rng, 100);
	}
	o->state = OS_PENDING_NEW;
	o->symbol = m.symbol;
	o->side = m.side;
	o->ord_type = m.ord_type;
	o->price = m.price;
	o->leaves = m.qty;
	tx_append(c, &m, MSG_NEW_ORDER);
	e = fifo_push(c, market ? REQ_MARKET : REQ_NEW, sent_ns);
	e->id = o->cl_ord_id;
}

static struct order *pick_idle(struct conn *c)
{
	struct order *o;

	o = &c->orders[c->idle[rng_below(&c->rng, c->idle_count)]];
	idle_remove(c, o);
	return o;
}

static void send_cancel(struct conn *c, struct order *o, uint8_t kind,
			uint64_t sent_ns)
{
	struct msg_cancel m = { .cl_ord_id = o->cl_ord_id };
	struct inflight *e;

	idle_remove(c, o);
	o->pending = 1;
	tx_append(c, &m, MSG_CANCEL);
	e = fifo_push(c, kind, sent_ns);
	e->id = o->cl_ord_id;
}

static void send_replace(struct conn *c, struct order *o, uint64_t sent_ns)
{
	struct msg_replace m;
	struct inflight *e;

	memset(&m, 0, sizeof(m));
	m.orig_cl_ord_id = o->cl_ord_id;
	m.new_cl_ord_id = ++c->id_seq << SLOT_BITS | order_slot(c, o);
	if (o->leaves > 1 && rng_below(&c->rng, 2)) {
		/* smaller at the same price: keeps time priority */
		m.new_price = o->price;
		m.new_qty = 1 + rng_below(&c->rng, o->leaves - 1);
	} else {
		int64_t step = 1 + rng_below(&c->rng, 2);

		m.new_price = rng_below(&c->rng, 2) ? o->price + step :
			      o->price - step;
		if (m.new_price < PRICE_MIN)
			m.new_price = o->price + step;
		m.new_qty = 1 + rng_below(&c->rng, 100);
	}
	o->pending = 1;
	o->replace_id = m.new_cl_ord_id;
	tx_append(c, &m, MSG_REPLACE);
	e = fifo_push(c, REQ_REPLACE, sent_ns);
	e->id = m.orig_cl_ord_id;
	e->new_id = m.new_cl_ord_id;
	e->price = m.new_price;
	e->qty = m.new_qty;
}

/* send_request - one request of the configured mix. */
static void send_request(struct conn *c, uint64_t sent_ns)
{
	uint32_t pick = rng_below(&c->rng, opt.mix_total);
	enum mix_kind kind = MIX_NEW;

	while (pick >= opt.mix[kind]) {
		pick -= opt.mix[kind];
		kind++;
	}
	if ((kind == MIX_CANCEL || kind == MIX_REPLACE) && !c->idle_count)
		kind = MIX_NEW;
	/* Bound the resting orders: past max_open, cancel instead. */
	if (kind == MIX_NEW && c->orders_used >= opt.max_open &&
	    c->idle_count)
		kind = MIX_CANCEL;
	switch (kind) {
	case MIX_NEW:
	case MIX_MARKET:
		send_new_order(c, kind == MIX_MARKET, sent_ns);
		break;
	case MIX_CANCEL:
		send_cancel(c, pick_idle(c), REQ_CANCEL, sent_ns);
		break;
	case MIX_REPLACE:
		send_replace(c, pick_idle(c), sent_ns);
		break;
	case MIX_KINDS:
		break;
	}
	c->sent++;
	c->w->st.sent[kind]++;
}

/* The intended time of connection @c's @n-th send (open loop). */
static uint64_t intended_ns(const struct conn *c, uint64_t n)
{
	double event = (double)n * c->w->ntraders + c->local;

	return run.t_start + (uint64_t)(event * c->w->period_ns);
}

/* Sends what is due and fits in the window (open loop). */
static void send_due(struct conn *c)
{
	while (c->sent < c->scheduled && !fifo_full(c) && conn_may_send(c))
		send_request(c, intended_ns(c, c->sent));
}

/*
 * conn_maybe_finish - once a trader will send no more and every direct
 * response is in, cancel what still rests; done when no order is left.
 * Called at message granularity so the cleanup is deterministic too.
 */
static void conn_maybe_finish(struct conn *c)
{
	uint32_t slot;

	if (c->state != CS_RUNNING && c->state != CS_CLEANUP)
		return;
	if (c->fifo_count)
		return;
	if (c->state == CS_RUNNING) {
		if (!c->w->sending_stopped &&
		    (!opt.orders || c->sent < opt.orders))
			return;
		c->state = CS_CLEANUP;
		c->w->cleaning++;
	}
	for (slot = 0; slot < c->orders_hw; slot++) {
		struct order *o = &c->orders[slot];

		if (o->state == OS_OPEN && !o->pending) {
			send_cancel(c, o, REQ_CLEANUP, 0);
			c->w->st.sent[REQ_CLEANUP]++;
		}
	}
	if (!c->fifo_count && !c->orders_used) {
		c->w->cleaning--;
		conn_set_done(c);
	}
}

/* ===== verifying what comes back ===== */

/* The head request, if it is of one of the kinds in @mask. */
static struct inflight *expect_head(struct conn *c, unsigned mask,
				    const char *what, uint64_t id)
{
	struct inflight *e = fifo_head(c);

	if (!e || !(mask & 1u << e->kind)) {
		conn_error(c, "unexpected %s (cl_ord_id %" PRIu64
			   ") with %s awaiting a response", what, id,
			   e ? "another request" : "no request");
		return NULL;
	}
	return e;
}

static void on_accepted(struct conn *c, const uint8_t *p)
{
	struct msg_accepted m;
	struct inflight *e;
	struct order *o;

	memcpy(&m, p, sizeof(m));
	e = expect_head(c, 1u << REQ_NEW | 1u << REQ_MARKET, "Accepted",
			m.cl_ord_id);
	if (!e)
		return;
	o = order_find(c, e->id);
	if (m.cl_ord_id != e->id || !o || o->state != OS_PENDING_NEW) {
		conn_error(c, "Accepted for cl_ord_id %" PRIu64 ", expected %"
			   PRIu64, m.cl_ord_id, e->id);
		fifo_pop(c);
		return;
	}
	if (m.symbol != o->symbol || m.side != o->side || m.qty != o->leaves ||
	    m.ord_type != o->ord_type ||
	    (o->ord_type == ORD_LIMIT && m.price != o->price) ||
	    m.order_id >> 32 != o->symbol)
		conn_error(c, "Accepted %" PRIu64 " does not echo the order "
			   "(symbol %u price %" PRId64 " qty %u order_id %#"
			   PRIx64 ")", m.cl_ord_id, m.symbol, m.price, m.qty,
			   m.order_id);
	o->order_id = m.order_id;
	if (o->ord_type == ORD_MARKET) {
		o->state = OS_IOC;
	} else {
		o->state = OS_OPEN;
		idle_add(c, o);
	}
	fifo_pop(c);
}

static const char *reject_name(unsigned reason)
{
	static const char *const names[] = {
		[REJ_UNKNOWN_SYMBOL] = "unknown symbol",
		[REJ_BAD_PRICE] = "bad price",
		[REJ_BAD_QTY] = "bad quantity",
		[REJ_DUPLICATE_ID] = "duplicate id",
		[REJ_UNKNOWN_ORDER] = "unknown order",
		[REJ_MALFORMED] = "malformed",
		[REJ_NOT_LOGGED_IN] = "not logged in",
		[REJ_BAD_SIDE] = "bad side",
		[REJ_BAD_TYPE] = "bad type",
		[REJ_CAPACITY] = "capacity",
	};

	if (reason < sizeof(names) / sizeof(names[0]) && names[reason])
		return names[reason];
	return "unknown reason";
}

static void on_rejected(struct conn *c, const uint8_t *p)
{
	struct msg_rejected m;
	struct inflight *e;
	struct order *o;
	struct stats *st = &c->w->st;

	memcpy(&m, p, sizeof(m));
	e = expect_head(c, 1u << REQ_NEW | 1u << REQ_MARKET |
			   1u << REQ_CANCEL | 1u << REQ_CLEANUP |
			   1u << REQ_REPLACE | 1u << REQ_BARRIER,
			"Rejected", m.cl_ord_id);
	if (!e)
		return;
	switch (e->kind) {
	case REQ_NEW:
	case REQ_MARKET:
		o = order_find(c, e->id);
		if (m.ref_type != MSG_NEW_ORDER || m.cl_ord_id != e->id || !o) {
			conn_error(c, "Rejected (type %c id %" PRIu64 ") does "
				   "not answer order %" PRIu64, m.ref_type,
				   m.cl_ord_id, e->id);
			break;
		}
		st->rejected++;
		/* Every order we send is valid; only capacity may refuse. */
		if (m.reason != REJ_CAPACITY)
			conn_error(c, "order %" PRIu64 " rejected: %s (%u)",
				   e->id, reject_name(m.reason), m.reason);
		order_finish(c, o);
		break;
	case REQ_CANCEL:
	case REQ_CLEANUP:
	case REQ_REPLACE:
		o = order_find(c, e->id);
		if (m.ref_type != (e->kind == REQ_REPLACE ? MSG_REPLACE :
							    MSG_CANCEL) ||
		    m.cl_ord_id != (e->kind == REQ_REPLACE ? e->new_id :
							     e->id) || !o) {
			conn_error(c, "Rejected (type %c id %" PRIu64 ") does "
				   "not answer the %s of %" PRIu64,
				   m.ref_type, m.cl_ord_id,
				   e->kind == REQ_REPLACE ? "replace" :
				   "cancel", e->id);
			break;
		}
		/*
		 * Only a race with a fill may refuse it, and the fill
		 * arrives first; a full server may refuse a replace.
		 */
		if ((m.reason != REJ_UNKNOWN_ORDER || o->state != OS_DONE) &&
		    (m.reason != REJ_CAPACITY || e->kind != REQ_REPLACE))
			conn_error(c, "%s of %" PRIu64 " rejected: %s (%u), "
				   "yet the order is open",
				   e->kind == REQ_REPLACE ? "replace" :
				   "cancel", e->id, reject_name(m.reason),
				   m.reason);
		if (e->kind == REQ_REPLACE)
			st->replace_rejected++;
		else
			st->cancel_rejected++;
		o->pending = 0;
		o->replace_id = 0;
		if (o->state == OS_DONE)
			order_release(c, o);
		else if (o->state == OS_OPEN)
			idle_add(c, o);
		break;
	case REQ_BARRIER:
		if (m.ref_type != MSG_CANCEL || m.cl_ord_id != e->id ||
		    m.reason != REJ_UNKNOWN_ORDER)
			conn_error(c, "unexpected Rejected (type %c: %s) "
				   "for the barrier", m.ref_type,
				   reject_name(m.reason));
		if (c->state == CS_MD_FINAL) {
			fifo_pop(c);
			conn_set_done(c);
			return;
		}
		break;
	}
	fifo_pop(c);
}

static void on_replaced(struct conn *c, const uint8_t *p)
{
	struct msg_replaced m;
	struct inflight *e;
	struct order *o;
	bool keeps;

	memcpy(&m, p, sizeof(m));
	e = expect_head(c, 1u << REQ_REPLACE, "Replaced", m.new_cl_ord_id);
	if (!e)
		return;
	o = order_find(c, e->id);
	if (m.orig_cl_ord_id != e->id || m.new_cl_ord_id != e->new_id || !o ||
	    o->state != OS_OPEN) {
		conn_error(c, "Replaced %" PRIu64 " -> %" PRIu64 " does not "
			   "answer the replace of an open %" PRIu64,
			   m.orig_cl_ord_id, m.new_cl_ord_id, e->id);
		fifo_pop(c);
		return;
	}
	if (m.qty != e->qty || m.price != e->price)
		conn_error(c, "Replaced %" PRIu64 ": qty %u price %" PRId64
			   ", asked %u at %" PRId64, m.new_cl_ord_id, m.qty,
			   m.price, e->qty, e->price);
	keeps = e->price == o->price && e->qty <= o->leaves;
	if (keeps != (m.order_id == o->order_id) ||
	    m.order_id >> 32 != o->symbol)
		conn_error(c, "Replaced %" PRIu64 ": order_id %#" PRIx64
			   " (was %#" PRIx64 ") but priority should be %s",
			   m.new_cl_ord_id, m.order_id, o->order_id,
			   keeps ? "kept" : "lost");
	c->w->st.replaced++;
	o->cl_ord_id = e->new_id;
	o->replace_id = 0;
	o->pending = 0;
	o->order_id = m.order_id;
	o->price = m.price;
	o->leaves = m.qty;
	idle_add(c, o);
	fifo_pop(c);
}

static void on_executed(struct conn *c, const uint8_t *p)
{
	struct msg_executed m;
	struct worker *w = c->w;
	struct order *o;
	bool price_ok;

	memcpy(&m, p, sizeof(m));
	o = order_find(c, m.cl_ord_id);
	if (!o || (o->state != OS_OPEN && o->state != OS_IOC)) {
		conn_error(c, "Executed for %s cl_ord_id %" PRIu64,
			   o ? "a finished" : "an unknown", m.cl_ord_id);
		return;
	}
	if (m.liquidity == LIQ_ADDED)
		price_ok = m.price == o->price;
	else if (o->ord_type == ORD_MARKET)
		price_ok = m.price >= PRICE_MIN;
	else
		price_ok = o->side == SIDE_BUY ? m.price <= o->price :
						 m.price >= o->price;
	if (m.symbol != o->symbol || m.side != o->side || !m.qty ||
	    m.qty > o->leaves || m.leaves_qty != o->leaves - m.qty ||
	    !price_ok || m.match_id >> 32 != o->symbol ||
	    (m.liquidity != LIQ_ADDED && m.liquidity != LIQ_REMOVED)) {
		conn_error(c, "Executed %" PRIu64 " inconsistent: qty %u "
			   "leaves %u (had %u) price %" PRId64 " (limit %"
			   PRId64 ") side %c liquidity %c", m.cl_ord_id,
			   m.qty, m.leaves_qty, o->leaves, m.price, o->price,
			   m.side, m.liquidity);
		if (m.qty > o->leaves)
			return;
	}
	if (m.symbol >= opt.symbol_base &&
	    m.symbol - opt.symbol_base < run.nsyms) {
		if (m.side == SIDE_BUY)
			w->bought[m.symbol - opt.symbol_base] += m.qty;
		else
			w->sold[m.symbol - opt.symbol_base] += m.qty;
	}
	if (m.liquidity == LIQ_REMOVED)
		w->st.trades++;
	else
		w->st.passive_fills++;
	o->leaves -= m.qty;
	if (!o->leaves) {
		w->st.filled++;
		order_finish(c, o);
	}
}

static void on_canceled(struct conn *c, const uint8_t *p)
{
	struct msg_canceled m;
	struct inflight *e;
	struct order *o;

	memcpy(&m, p, sizeof(m));
	if (m.reason == CXL_IOC_REMAINDER) {
		o = order_find(c, m.cl_ord_id);
		if (!o || o->state != OS_IOC || m.canceled_qty != o->leaves) {
			conn_error(c, "Canceled (IOC remainder %u) for %" PRIu64
				   " which is no open IOC with that much left",
				   m.canceled_qty, m.cl_ord_id);
			return;
		}
		c->w->st.ioc_canceled++;
		order_finish(c, o);
		return;
	}
	e = expect_head(c, 1u << REQ_CANCEL | 1u << REQ_CLEANUP, "Canceled",
			m.cl_ord_id);
	if (!e)
		return;
	o = order_find(c, e->id);
	if (m.reason != CXL_USER || m.cl_ord_id != e->id || !o ||
	    o->state != OS_OPEN || m.canceled_qty != o->leaves) {
		conn_error(c, "Canceled %" PRIu64 " (reason %u qty %u) does "
			   "not answer the cancel of open %" PRIu64
			   " (%u left)",
			   m.cl_ord_id, m.reason, m.canceled_qty, e->id,
			   o ? o->leaves : 0);
		if (o) {
			o->pending = 0;
			if (o->state == OS_OPEN)
				idle_add(c, o);
			order_release(c, o);
		}
	} else {
		c->w->st.canceled++;
		o->pending = 0;
		order_finish(c, o);
	}
	fifo_pop(c);
}

static void on_hello_ack(struct conn *c, const uint8_t *p)
{
	struct msg_hello_ack m;

	memcpy(&m, p, sizeof(m));
	if (!expect_head(c, 1u << REQ_HELLO, "HelloAck", 0))
		return;
	if (m.version != PROTO_VERSION)
		conn_error(c, "HelloAck version %u", m.version);
	fifo_pop(c);
}

static void on_market_data(struct conn *c, const uint8_t *p, uint8_t type)
{
	struct msg_top_of_book q;
	struct msg_trade t;
	uint32_t sym;
	bool nonempty;

	if (c->role != ROLE_SUBSCRIBER) {
		conn_error(c, "market data (%c) on an unsubscribed session",
			   type);
		return;
	}
	c->w->st.md_bytes += proto_msg_size(type);
	c->w->st.md_messages++;
	if (type == MSG_TRADE) {
		memcpy(&t, p, sizeof(t));
		sym = t.symbol - opt.symbol_base;
		if (t.symbol < opt.symbol_base || sym >= run.nsyms || !t.qty)
			conn_error(c, "Trade for symbol %u qty %u", t.symbol,
				   t.qty);
		c->md_trades++;
		return;
	}
	memcpy(&q, p, sizeof(q));
	sym = q.symbol - opt.symbol_base;
	if (q.symbol < opt.symbol_base || sym >= run.nsyms) {
		conn_error(c, "TopOfBook for symbol %u", q.symbol);
		return;
	}
	nonempty = q.bid_price || q.ask_price || q.bid_qty || q.ask_qty;
	if (nonempty != c->top_nonempty[sym]) {
		c->top_nonempty[sym] = nonempty;
		if (nonempty)
			c->nonempty++;
		else
			c->nonempty--;
	}
}

/* Handles one whole frame; returns false when the connection is gone. */
static bool conn_message(struct conn *c, const uint8_t *p, uint8_t type,
			 unsigned size)
{
	uint64_t word;
	unsigned i;

	if (c->role == ROLE_TRADER) {
		for (i = 0; i < size; i += 8) {
			memcpy(&word, p + i, 8);
			c->hash = hash_word(c->hash, word);
		}
	}
	switch (type) {
	case MSG_HELLO_ACK:	on_hello_ack(c, p); break;
	case MSG_ACCEPTED:	on_accepted(c, p); break;
	case MSG_REJECTED:	on_rejected(c, p); break;
	case MSG_EXECUTED:	on_executed(c, p); break;
	case MSG_CANCELED:	on_canceled(c, p); break;
	case MSG_REPLACED:	on_replaced(c, p); break;
	case MSG_TRADE:
	case MSG_TOP_OF_BOOK:	on_market_data(c, p, type); break;
	default:
		conn_fail(c, "inbound message type %#x", type);
		return false;
	}
	if (c->state == CS_SETUP && !c->fifo_count) {
		c->state = CS_READY;
		c->w->not_ready--;
	}
	if (c->role != ROLE_TRADER || c->state < CS_RUNNING)
		return c->state != CS_DONE && c->state != CS_FAILED;
	/* One new request per direct response: the closed loop. */
	if (!opt.rate) {
		while (!fifo_full(c) && conn_may_send(c))
			send_request(c, 0);
	} else {
		send_due(c);
	}
	conn_maybe_finish(c);
	return c->state != CS_DONE && c->state != CS_FAILED;
}

/* Parses whole frames out of @buf; keeps a trailing partial one. */
static void conn_input(struct conn *c, const uint8_t *buf, size_t len)
{
	size_t off = 0;

	while (len - off >= sizeof(struct msg_hdr)) {
		struct msg_hdr hdr;
		unsigned size;

		memcpy(&hdr, buf + off, sizeof(hdr));
		size = proto_msg_size(hdr.type);
		if (!size || hdr.len != size || hdr.flags) {
			conn_fail(c, "bad frame: type %#x len %u",
				  hdr.type, hdr.len);
			return;
		}
		if (len - off < size)
			break;
		if (!conn_message(c, buf + off, hdr.type, size))
			return;
		off += size;
	}
	c->carry_len = (unsigned)(len - off);
	memcpy(c->carry, buf + off, c->carry_len);
}

static void conn_read(struct conn *c)
{
	struct worker *w = c->w;
	uint8_t *buf = w->rxbuf;
	ssize_t n;

	memcpy(buf, c->carry, c->carry_len);
	do {
		n = recv(c->fd, buf + c->carry_len,
			 RXBUF_SIZE - c->carry_len, MSG_DONTWAIT);
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
	conn_input(c, buf, c->carry_len + (size_t)n);
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

/* One write of everything queued; the rest waits for EPOLLOUT. */
static void conn_flush(struct conn *c)
{
	ssize_t n;

	c->dirty = false;
	if (c->fd < 0)
		return;
	if (c->unstamped) {
		uint64_t now = now_ns();
		unsigned i, first = c->fifo_count - c->unstamped;

		for (i = first; i < c->fifo_count; i++)
			c->fifo[(c->fifo_head + i) % c->fifo_cap].sent_ns = now;
		c->unstamped = 0;
	}
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

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	unsigned i;

	if (opt.ncpus) {
		cpu_set_t set;

		CPU_ZERO(&set);
		CPU_SET(opt.cpus[w->id % opt.ncpus], &set);
		if (sched_setaffinity(0, sizeof(set), &set))
			perror("loadgen: sched_setaffinity");
	}
	w->now = w->last_rx_ns = now_ns();
	worker_loop(w, worker_all_ready);
	pthread_barrier_wait(&run.ready);
	pthread_barrier_wait(&run.go);
	if (atomic_load(&run.abort))
		goto out;

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
out:
	atomic_store(&w->progress, w->st.requests);
	atomic_fetch_add(&run.workers_done, 1);
	return NULL;
}

/* ===== setup, options, report ===== */

static void usage(FILE *out)
{
	fprintf(out,
"usage: loadgen --host ADDR --port P [options]\n"
"  --connections N     trading connections, 1..%u (default 1)\n"
"  --inflight K        closed loop: requests in flight per connection\n"
"                      (default 1); open loop: the most in flight (256)\n"
"  --duration SECONDS  run that long (default 5 unless --orders)\n"
"  --orders M          each connection sends exactly M requests, then\n"
"                      cancels what rests and waits for every outcome\n"
"  --rate R            open loop: R requests/s in total; latency counts\n"
"                      from the intended send time\n"
"  --mix SPEC          new=70,cancel=15,replace=10,market=5 (weights)\n"
"  --symbols S         symbols traded without --deterministic (16)\n"
"  --symbol-base B     first symbol id (0)\n"
"  --max-open O        resting orders per connection before cancelling\n"
"                      instead of adding (32)\n"
"  --deterministic     connection i trades only symbol B+i with itself;\n"
"                      with --orders and a fresh server the digest is\n"
"                      reproducible (closed loop only)\n"
"  --seed S            PRNG seed (1)\n"
"  --subscribers S     extra connections subscribed to every traded\n"
"                      symbol that only read market data (0)\n"
"  --threads T         worker threads (1)\n"
"  --cpu LIST          pin worker t to the t-th CPU of LIST (e.g. 1 or 2,3)\n"
"  --stall-timeout S   fail when the server answers nothing for S s (10)\n"
"  --json FILE         write every figure as JSON\n"
"  --quiet             no progress lines\n"
"exit status: 0 ok, 1 verification errors or a failed run, 2 bad usage\n",
		MAX_CONNECTIONS);
}

static uint64_t parse_u64(const char *name, const char *s, uint64_t min,
			  uint64_t max)
{
	unsigned long long v;
	char *end;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *end || *s == '-' || v < min || v > max)
		die("%s: '%s' is not a number in %" PRIu64 "..%" PRIu64, name,
		    s, min, max);
	return v;
}

static double parse_double(const char *name, const char *s)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !(v > 0) || isinf(v))
		die("%s: '%s' is not a positive number", name, s);
	return v;
}

static void parse_mix(const char *spec)
{
	char *copy = strdup(spec), *item, *save = NULL;
	unsigned i;

	if (!copy)
		die("out of memory");
	memset(opt.mix, 0, sizeof(opt.mix));
	for (item = strtok_r(copy, ",", &save); item;
	     item = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(item, '=');

		if (!eq)
			die("--mix: '%s' is not NAME=WEIGHT", item);
		*eq = 0;
		for (i = 0; i < MIX_KINDS; i++)
			if (!strcmp(item, mix_names[i]))
				break;
		if (i == MIX_KINDS)
			die("--mix: unknown kind '%s' (new, cancel, replace, "
			    "market)", item);
		opt.mix[i] = (unsigned)parse_u64("--mix", eq + 1, 0, 1000000);
	}
	free(copy);
	opt.mix_total = 0;
	for (i = 0; i < MIX_KINDS; i++)
		opt.mix_total += opt.mix[i];
	if (!opt.mix[MIX_NEW] && !opt.mix[MIX_MARKET])
		die("--mix: needs some new or market orders");
}

static void parse_cpus(const char *list)
{
	const char *p = list;
	char *end;
	long a, b;

	while (*p) {
		a = strtol(p, &end, 10);
		if (end == p || a < 0 || a >= CPU_SETSIZE)
			die("--cpu: bad list '%s'", list);
		b = a;
		if (*end == '-') {
			p = end + 1;
			b = strtol(p, &end, 10);
			if (end == p || b < a || b >= CPU_SETSIZE)
				die("--cpu: bad list '%s'", list);
		}
		for (; a <= b && opt.ncpus < MAX_THREADS; a++)
			opt.cpus[opt.ncpus++] = (int)a;
		if (*end == ',')
			end++;
		else if (*end)
			die("--cpu: bad list '%s'", list);
		p = end;
	}
	if (!opt.ncpus)
		die("--cpu: empty list");
}

static void parse_args(int argc, char **argv)
{
	enum {
		O_HOST = 256, O_PORT, O_CONN, O_INFLIGHT, O_DURATION, O_ORDERS,
		O_RATE, O_DET, O_SEED, O_JSON, O_MIX, O_SYMBOLS, O_BASE,
		O_MAXOPEN, O_SUBS, O_THREADS, O_CPU, O_STALL, O_QUIET, O_HELP,
	};
	static const struct option longopts[] = {
		{ "host", required_argument, NULL, O_HOST },
		{ "port", required_argument, NULL, O_PORT },
		{ "connections", required_argument, NULL, O_CONN },
		{ "inflight", required_argument, NULL, O_INFLIGHT },
		{ "duration", required_argument, NULL, O_DURATION },
		{ "orders", required_argument, NULL, O_ORDERS },
		{ "rate", required_argument, NULL, O_RATE },
		{ "deterministic", no_argument, NULL, O_DET },
		{ "seed", required_argument, NULL, O_SEED },
		{ "json", required_argument, NULL, O_JSON },
		{ "mix", required_argument, NULL, O_MIX },
		{ "symbols", required_argument, NULL, O_SYMBOLS },
		{ "symbol-base", required_argument, NULL, O_BASE },
		{ "max-open", required_argument, NULL, O_MAXOPEN },
		{ "subscribers", required_argument, NULL, O_SUBS },
		{ "threads", required_argument, NULL, O_THREADS },
		{ "cpu", required_argument, NULL, O_CPU },
		{ "stall-timeout", required_argument, NULL, O_STALL },
		{ "quiet", no_argument, NULL, O_QUIET },
		{ "help", no_argument, NULL, O_HELP },
		{ 0 }
	};
	int o;

	while ((o = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (o) {
		case O_HOST: opt.host = optarg; break;
		case O_PORT:
			parse_u64("--port", optarg, 1, 65535);
			opt.port = optarg;
			break;
		case O_CONN:
			opt.connections = (unsigned)parse_u64("--connections",
					optarg, 1, MAX_CONNECTIONS);
			break;
		case O_INFLIGHT:
			opt.inflight = (unsigned)parse_u64("--inflight", optarg,
							   1, 65536);
			break;
		case O_DURATION:
			opt.duration_s = parse_double("--duration", optarg);
			break;
		case O_ORDERS:
			opt.orders = parse_u64("--orders", optarg, 1,
					       UINT64_MAX / 2);
			break;
		case O_RATE: opt.rate = parse_double("--rate", optarg); break;
		case O_DET: opt.deterministic = true; break;
		case O_SEED:
			opt.seed = parse_u64("--seed", optarg, 0, UINT64_MAX);
			break;
		case O_JSON: opt.json_path = optarg; break;
		case O_MIX: parse_mix(optarg); break;
		case O_SYMBOLS:
			opt.symbols = (unsigned)parse_u64("--symbols", optarg,
							  1, 1u << 24);
			break;
		case O_BASE:
			opt.symbol_base = (unsigned)parse_u64("--symbol-base",
							optarg, 0, 1u << 30);
			break;
		case O_MAXOPEN:
			opt.max_open = (unsigned)parse_u64("--max-open", optarg,
							   1, 1u << 16);
			break;
		case O_SUBS:
			opt.subscribers = (unsigned)parse_u64("--subscribers",
					optarg, 0, MAX_SUBSCRIBERS);
			break;
		case O_THREADS:
			opt.threads = (unsigned)parse_u64("--threads", optarg,
							  1, MAX_THREADS);
			break;
		case O_CPU: parse_cpus(optarg); break;
		case O_STALL:
			opt.stall_s = parse_double("--stall-timeout", optarg);
			break;
		case O_QUIET: opt.quiet = true; break;
		case O_HELP: usage(stdout); exit(0);
		default: usage(stderr); exit(2);
		}
	}
	if (optind < argc)
		die("unexpected argument '%s' (see --help)", argv[optind]);
	if (!opt.port)
		die("--port is required (see --help)");
	if (opt.duration_s && opt.orders)
		die("--duration and --orders exclude each other");
	if (!opt.duration_s && !opt.orders)
		opt.duration_s = 5;
	if (!opt.inflight)
		opt.inflight = opt.rate ? 256 : 1;
	if (opt.threads > opt.connections + opt.subscribers)
		opt.threads = opt.connections + opt.subscribers;
	run.nsyms = opt.deterministic ? opt.connections : opt.symbols;
}

static void resolve_host(void)
{
	struct addrinfo hints = {
		.ai_family = AF_UNSPEC,
		.ai_socktype = SOCK_STREAM,
	};
	int err;

	err = getaddrinfo(opt.host, opt.port, &hints, &run.addr);
	if (err)
		die("cannot resolve %s: %s", opt.host, gai_strerror(err));
}

/* Enough descriptors for every connection: raise the soft (or hard) limit. */
static void raise_fd_limit(void)
{
	/* stdio, the JSON file, and an epoll and an eventfd per worker */
	rlim_t need = opt.connections + opt.subscribers + 2 * opt.threads + 8;
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl))
		die("getrlimit: %s", strerror(errno));
	if (rl.rlim_cur >= need)
		return;
	if (rl.rlim_max < need) {
		rl.rlim_max = need;	/* works with CAP_SYS_RESOURCE */
		rl.rlim_cur = need;
		if (!setrlimit(RLIMIT_NOFILE, &rl))
			return;
		die("need %llu file descriptors but the hard limit is lower "
		    "(raise it: ulimit -Hn)", (unsigned long long)need);
	}
	rl.rlim_cur = need;
	if (setrlimit(RLIMIT_NOFILE, &rl))
		die("setrlimit: %s", strerror(errno));
}

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

static void workers_create(void)
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
		w->epfd = epoll_create1(EPOLL_CLOEXEC);
		w->kickfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (w->epfd < 0 || w->kickfd < 0 ||
		    epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->kickfd, &ev))
			die("epoll/eventfd: %s", strerror(errno));
	}
	run.traders_left = opt.connections;
}

static void workers_free(void)
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

struct totals {
	struct stats st;
	uint64_t digest;
	uint64_t unsent;	/* open loop: due by the end but never sent */
	double duration_s, wall_s, throughput;
	uint64_t lat_ns[6];	/* p50 p90 p99 p99.9 p99.99 max */
};

static void stats_add(struct stats *dst, const struct stats *src)
{
	unsigned i;

	dst->requests += src->requests;
	for (i = 0; i < REQ_KINDS; i++)
		dst->sent[i] += src->sent[i];
	dst->filled += src->filled;
	dst->canceled += src->canceled;
	dst->ioc_canceled += src->ioc_canceled;
	dst->rejected += src->rejected;
	dst->replaced += src->replaced;
	dst->cancel_rejected += src->cancel_rejected;
	dst->replace_rejected += src->replace_rejected;
	dst->trades += src->trades;
	dst->passive_fills += src->passive_fills;
	dst->bytes_in += src->bytes_in;
	dst->bytes_out += src->bytes_out;
	dst->md_bytes += src->md_bytes;
	dst->md_messages += src->md_messages;
	dst->errors += src->errors;
	hist_merge(&dst->lat, &src->lat);
}

/* Run-wide checks that no single connection can make. */
static void check_totals(struct totals *tot)
{
	struct conn *first = NULL;
	uint64_t bought, sold;
	unsigned t, i, bad = 0;

	for (t = 0; t < opt.threads && !first; t++)
		if (run.workers[t].ntraders)
			first = &run.workers[t].traders[0];
	/* One terminal outcome per order (replaces do not add orders). */
	if (tot->st.sent[REQ_NEW] + tot->st.sent[REQ_MARKET] !=
	    tot->st.filled + tot->st.canceled + tot->st.ioc_canceled +
	    tot->st.rejected)
		conn_error(first, "%" PRIu64 " orders sent but %" PRIu64
			   " terminal outcomes", tot->st.sent[REQ_NEW] +
			   tot->st.sent[REQ_MARKET], tot->st.filled +
			   tot->st.canceled + tot->st.ioc_canceled +
			   tot->st.rejected);
	if (tot->st.trades != tot->st.passive_fills)
		conn_error(first, "%" PRIu64 " aggressor executions but %"
			   PRIu64 " resting-side executions", tot->st.trades,
			   tot->st.passive_fills);
	for (i = 0; i < run.nsyms; i++) {
		bought = sold = 0;
		for (t = 0; t < opt.threads; t++) {
			bought += (uint64_t)run.workers[t].bought[i];
			sold += (uint64_t)run.workers[t].sold[i];
		}
		if (bought != sold && bad++ < 3)
			conn_error(first, "symbol %u: bought %" PRIu64
				   " but sold %" PRIu64, opt.symbol_base + i,
				   bought, sold);
	}
	for (t = 0; t < opt.threads; t++) {
		struct worker *w = &run.workers[t];

		for (i = 0; i < w->nsubs; i++) {
			struct conn *c = &w->subs[i];

			if (c->md_trades != tot->st.trades)
				conn_error(c, "saw %" PRIu64 " trades, the "
					   "traders saw %" PRIu64, c->md_trades,
					   tot->st.trades);
			if (c->nonempty)
				conn_error(c, "%u books not empty at the end "
					   "by the last TopOfBook",
					   c->nonempty);
		}
	}
}

static void totals_compute(struct totals *tot, uint64_t t_wall_end)
{
	static const double pcts[5] = { 50, 90, 99, 99.9, 99.99 };
	uint64_t end = run.t_start;
	unsigned t, i;

	memset(tot, 0, sizeof(*tot));
	hist_init(&tot->st.lat);
	tot->digest = 0xcbf29ce484222325ull;
	for (t = 0; t < opt.threads; t++) {
		struct worker *w = &run.workers[t];

		stats_add(&tot->st, &w->st);
		if (w->last_response_ns > end)
			end = w->last_response_ns;
		if (opt.rate && !opt.orders && w->ntraders) {
			uint64_t due = (uint64_t)((double)(run.t_end -
					run.t_start - 1) / w->period_ns) + 1;
			uint64_t sent = 0;

			for (i = 0; i < REQ_CLEANUP; i++)
				sent += w->st.sent[i];
			if (due > sent)
				tot->unsent += due - sent;
		}
		for (i = 0; i < w->ntraders; i++)
			tot->digest = hash_word(tot->digest,
						w->traders[i].hash);
	}
	if (!atomic_load(&run.abort))
		check_totals(tot);
	tot->st.errors = atomic_load(&run.errors);
	tot->duration_s = (double)(end - run.t_start) / 1e9;
	tot->wall_s = (double)(t_wall_end - run.t_start) / 1e9;
	tot->throughput = tot->duration_s > 0 ?
			  (double)tot->st.requests / tot->duration_s : 0;
	for (i = 0; i < 5; i++)
		tot->lat_ns[i] = hist_percentile(&tot->st.lat, pcts[i]);
	tot->lat_ns[5] = tot->st.lat.count ? tot->st.lat.max : 0;
}

static bool digest_reproducible(void)
{
	return opt.deterministic && opt.orders && !opt.rate;
}

static void print_summary(const struct totals *tot)
{
	const struct stats *st = &tot->st;

	printf("loadgen: %s loop, %u connections x %u in flight%s, "
	       "%u subscribers, %u threads%s\n",
	       opt.rate ? "open" : "closed", opt.connections, opt.inflight,
	       opt.rate ? " max" : "", opt.subscribers, opt.threads,
	       opt.deterministic ? ", deterministic" : "");
	printf("requests   %" PRIu64 " in %.3f s = %.0f req/s "
	       "(new %" PRIu64 " market %" PRIu64 " cancel %" PRIu64
	       " replace %" PRIu64 ")\n", st->requests, tot->duration_s,
	       tot->throughput, st->sent[REQ_NEW], st->sent[REQ_MARKET],
	       st->sent[REQ_CANCEL], st->sent[REQ_REPLACE]);
	if (opt.rate)
		printf("rate       %.0f req/s asked, %" PRIu64 " due but never "
		       "sent (the window was full)\n", opt.rate, tot->unsent);
	printf("latency us p50 %.1f p90 %.1f p99 %.1f p99.9 %.1f "
	       "p99.99 %.1f max %.1f mean %.1f\n",
	       tot->lat_ns[0] / 1e3, tot->lat_ns[1] / 1e3,
	       tot->lat_ns[2] / 1e3, tot->lat_ns[3] / 1e3,
	       tot->lat_ns[4] / 1e3, tot->lat_ns[5] / 1e3,
	       hist_mean(&st->lat) / 1e3);
	printf("outcomes   filled %" PRIu64 " canceled %" PRIu64
	       " ioc-remainder %" PRIu64 " rejected %" PRIu64
	       " replaced %" PRIu64 " (cleanup cancels %" PRIu64 ")\n",
	       st->filled, st->canceled, st->ioc_canceled, st->rejected,
	       st->replaced, st->sent[REQ_CLEANUP]);
	printf("trades     %" PRIu64 "\n", st->trades);
	printf("bytes      in %" PRIu64 " out %" PRIu64 " md %" PRIu64 "\n",
	       st->bytes_in, st->bytes_out, st->md_bytes);
	printf("errors     %" PRIu64 "\n", st->errors);
	if (opt.orders && !digest_reproducible())
		printf("note       the digest is not reproducible: that needs "
		       "--deterministic and a closed loop\n");
	if (opt.orders)
		printf("digest: %016" PRIx64 "\n", tot->digest);
	fflush(stdout);
}

static int write_json(const struct totals *tot)
{
	const struct stats *st = &tot->st;
	FILE *f = fopen(opt.json_path, "w");

	if (!f) {
		fprintf(stderr, "loadgen: %s: %s\n", opt.json_path,
			strerror(errno));
		return -1;
	}
	fprintf(f, "{\n  \"requests\": %" PRIu64 ",\n  \"errors\": %" PRIu64
		",\n  \"throughput\": %.1f,\n", st->requests, st->errors,
		tot->throughput);
	fprintf(f, "  \"latency_us\": {\"p50\": %.3f, \"p90\": %.3f, "
		"\"p99\": %.3f, \"p99_9\": %.3f, \"p99_99\": %.3f, "
		"\"max\": %.3f, \"mean\": %.3f},\n",
		tot->lat_ns[0] / 1e3, tot->lat_ns[1] / 1e3,
		tot->lat_ns[2] / 1e3, tot->lat_ns[3] / 1e3,
		tot->lat_ns[4] / 1e3, tot->lat_ns[5] / 1e3,
		hist_mean(&st->lat) / 1e3);
	if (opt.orders)
		fprintf(f, "  \"digest\": \"%016" PRIx64 "\",\n", tot->digest);
	else
		fprintf(f, "  \"digest\": null,\n");
	fprintf(f, "  \"digest_reproducible\": %s,\n",
		digest_reproducible() ? "true" : "false");
	fprintf(f, "  \"connections\": %u,\n  \"subscribers\": %u,\n"
		"  \"threads\": %u,\n  \"inflight\": %u,\n"
		"  \"mode\": \"%s\",\n  \"rate\": %.1f,\n"
		"  \"deterministic\": %s,\n  \"seed\": %" PRIu64 ",\n"
		"  \"orders_per_connection\": %" PRIu64 ",\n"
		"  \"unsent\": %" PRIu64 ",\n",
		opt.connections, opt.subscribers, opt.threads, opt.inflight,
		opt.rate ? "open" : "closed", opt.rate,
		opt.deterministic ? "true" : "false", opt.seed, opt.orders,
		tot->unsent);
	fprintf(f, "  \"duration_s\": %.6f,\n  \"wall_s\": %.6f,\n"
		"  \"bytes_in\": %" PRIu64 ",\n  \"bytes_out\": %" PRIu64
		",\n  \"md_bytes\": %" PRIu64 ",\n  \"md_messages\": %" PRIu64
		",\n  \"trades\": %" PRIu64 ",\n", tot->duration_s,
		tot->wall_s, st->bytes_in, st->bytes_out, st->md_bytes,
		st->md_messages, st->trades);
	fprintf(f, "  \"sent\": {\"new\": %" PRIu64 ", \"market\": %" PRIu64
		", \"cancel\": %" PRIu64 ", \"replace\": %" PRIu64
		", \"cleanup_cancel\": %" PRIu64 "},\n", st->sent[REQ_NEW],
		st->sent[REQ_MARKET], st->sent[REQ_CANCEL],
		st->sent[REQ_REPLACE], st->sent[REQ_CLEANUP]);
	fprintf(f, "  \"outcomes\": {\"filled\": %" PRIu64 ", \"canceled\": %"
		PRIu64 ", \"ioc_canceled\": %" PRIu64 ", \"rejected\": %"
		PRIu64 ", \"replaced\": %" PRIu64 ", \"cancel_rejected\": %"
		PRIu64 ", \"replace_rejected\": %" PRIu64 "}\n}\n",
		st->filled, st->canceled, st->ioc_canceled, st->rejected,
		st->replaced, st->cancel_rejected, st->replace_rejected);
	if (fclose(f)) {
		fprintf(stderr, "loadgen: %s: %s\n", opt.json_path,
			strerror(errno));
		return -1;
	}
	return 0;
}

/* Sleeps until every worker is done, printing progress once a second. */
static void monitor(void)
{
	bool show = !opt.quiet && (!opt.orders ? opt.duration_s > 3 : true);
	uint64_t last = 0, last_t = run.t_start;
	uint64_t next = run.t_start + 1000000000;
	struct timespec tick = { .tv_nsec = 20000000 };

	while (atomic_load(&run.workers_done) < opt.threads) {
		uint64_t now = now_ns(), done = 0;
		unsigned t;

		nanosleep(&tick, NULL);
		if (now < next)
			continue;
		next += 1000000000;
		for (t = 0; t < opt.threads; t++)
			done += atomic_load_explicit(&run.workers[t].progress,
						     memory_order_relaxed);
		/* --orders runs are announced once they pass 3 s. */
		if (show && (!opt.orders || now - run.t_start > 3000000000ull))
			fprintf(stderr, "loadgen: %5.1f s  %" PRIu64
				" requests  %.0f req/s  %" PRIu64 " errors\n",
				(now - run.t_start) / 1e9, done,
				(double)(done - last) * 1e9 /
				(double)(now - last_t),
				(uint64_t)atomic_load(&run.errors));
		last = done;
		last_t = now;
	}
}

int main(int argc, char **argv)
{
	struct totals tot;
	uint64_t wall_end;
	unsigned t;
	int rc;

	parse_args(argc, argv);
	resolve_host();
	raise_fd_limit();
	signal(SIGPIPE, SIG_IGN);
	pthread_mutex_init(&run.err_lock, NULL);
	if (opt.ncpus) {
		cpu_set_t set;

		CPU_ZERO(&set);
		CPU_SET(opt.cpus[0], &set);
		if (sched_setaffinity(0, sizeof(set), &set))
			die("--cpu: %s", strerror(errno));
	}
	workers_create();
	signal(SIGINT, on_sigint);
	pthread_barrier_init(&run.ready, NULL, opt.threads + 1);
	pthread_barrier_init(&run.go, NULL, opt.threads + 1);
	for (t = 0; t < opt.threads; t++)
		if (pthread_create(&run.workers[t].thread, NULL, worker_main,
				   &run.workers[t]))
			die("pthread_create failed");

	pthread_barrier_wait(&run.ready);
	run.started = !atomic_load(&run.abort);
	run.t_start = now_ns();
	run.t_end = run.t_start + (uint64_t)(opt.duration_s * 1e9);
	pthread_barrier_wait(&run.go);
	if (!atomic_load(&run.abort))
		monitor();
	for (t = 0; t < opt.threads; t++)
		pthread_join(run.workers[t].thread, NULL);
	wall_end = now_ns();

	if (atomic_load(&run.abort) && !atomic_load(&run.errors))
		atomic_fetch_add(&run.errors, 1);
	totals_compute(&tot, wall_end);
	if (run.err_printed > DETAIL_ERRORS)
		fprintf(stderr, "loadgen: %u errors in all (first %d shown)\n",
			run.err_printed, DETAIL_ERRORS);
	if (run.started)
		print_summary(&tot);
	rc = tot.st.errors ? 1 : 0;
	if (atomic_load(&run.abort)) {
		fprintf(stderr, "loadgen: run aborted%s\n",
			run.started ? "" : " before the start");
	} else if (atomic_load(&run.interrupted)) {
		fprintf(stderr, "loadgen: interrupted; figures cover the run "
			"so far\n");
		rc = 1;
	}
	if (opt.json_path && write_json(&tot))
		rc = 1;
	workers_free();
	pthread_barrier_destroy(&run.ready);
	pthread_barrier_destroy(&run.go);
	return rc;
}
