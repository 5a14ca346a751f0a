/*
 * loadgen.h - the load generator's private types, state and module calls.
 *
 * Modules: options.c (command line), flow.c (the order flow each trader
 * sends and its bookkeeping), verify.c (every response checked against
 * what was sent), worker.c (connections, I/O and the per-thread event
 * loop), report.c (totals, summary, JSON) and main.c (startup, threads,
 * progress). Each worker thread owns its connections; between threads
 * only the _Atomic fields and the error lock are used while running; the
 * rest of struct run_state is written before the start barrier.
 */
#ifndef BENCH_LOADGEN_H
#define BENCH_LOADGEN_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "../../demo_server/protocol.h"
#include "../hist.h"

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
	const char *label;	/* free text copied to the JSON */
	unsigned symbols;
	unsigned symbol_base;
	unsigned mix[MIX_KINDS];
	unsigned mix_total;
	unsigned max_open;
	double stall_s;
	bool quiet;
	bool spin;		/* poll without ever sleeping */
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
	uint64_t sleeping_waits;	/* waits that may sleep (not --spin) */
	struct hist lat;
	struct hist send_lag;		/* open loop: write time - intended */
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

	struct proto_reader reader;	/* a frame cut by a read */
	uint64_t hash;

	uint8_t *tx;
	size_t tx_len, tx_off, tx_cap;

	struct inflight *fifo;	/* a ring; grows for the final cancels */
	unsigned fifo_cap, fifo_head, fifo_count;
	unsigned unflushed;	/* newest entries not yet written */

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
	uint64_t cpu_ns;		/* this thread's CPU time over the run */
	uint64_t voluntary_switches;	/* and its sleeps, as the kernel saw */
	struct stats st;
};

/* Run-wide state, shared by main and the workers (see the top). */
struct run_state {
	_Atomic bool abort;
	_Atomic bool interrupted;	/* SIGINT: stop sending, finish */
	_Atomic uint64_t errors;
	_Atomic unsigned traders_left;
	unsigned workers_done;		/* under done_lock */
	pthread_mutex_t done_lock;
	pthread_cond_t done_cond;	/* a worker finished */
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
};

extern struct options opt;
extern struct run_state run;

/* ===== small helpers ===== */

static inline uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline uint64_t rng_next(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static inline uint32_t rng_below(uint64_t *state, uint32_t n)
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

/* The oldest request awaiting its direct response, or NULL. */
static inline struct inflight *fifo_head(struct conn *c)
{
	return c->fifo_count ? &c->fifo[c->fifo_head] : NULL;
}

/* The closed-loop window, or the open-loop cap, is --inflight. */
static inline bool fifo_full(const struct conn *c)
{
	return c->fifo_count >= opt.inflight;
}

struct totals {
	struct stats st;
	uint64_t digest;
	uint64_t unsent;	/* open loop: due by the end but never sent */
	double duration_s, wall_s, throughput;
	uint64_t lat_ns[6];	/* p50 p90 p99 p99.9 p99.99 max */
	uint64_t lag_ns[6];	/* the same of send_lag */
	double cpu_s;		/* worker threads' CPU time over the run */
	uint64_t voluntary_switches;
};

/* ===== main.c ===== */

/* die - print "loadgen: <message>" and exit 2 (startup and usage errors). */
__attribute__((format(printf, 1, 2), noreturn))
void die(const char *fmt, ...);

/* ===== options.c ===== */

/* parse_args - fill opt from the command line; dies on bad usage. */
void parse_args(int argc, char **argv);

/* ===== worker.c ===== */

void kick_workers(void);
void run_abort(void);
__attribute__((format(printf, 2, 3)))
void conn_error(struct conn *c, const char *fmt, ...);
__attribute__((format(printf, 2, 3)))
void conn_fail(struct conn *c, const char *fmt, ...);
void conn_close(struct conn *c);
void conn_set_done(struct conn *c);
void tx_append(struct conn *c, const void *msg, uint8_t type);
void workers_create(void);
void workers_free(void);
void *worker_main(void *arg);

/* ===== flow.c ===== */

struct inflight *fifo_push(struct conn *c, uint8_t kind, uint64_t sent_ns);
void fifo_pop(struct conn *c);
struct order *order_find(struct conn *c, uint64_t id);
void idle_add(struct conn *c, struct order *o);
void order_release(struct conn *c, struct order *o);
void order_finish(struct conn *c, struct order *o);
bool conn_may_send(const struct conn *c);
void send_request(struct conn *c, uint64_t sent_ns);
void send_due(struct conn *c);
void conn_maybe_finish(struct conn *c);

/* ===== verify.c ===== */

void conn_input(struct conn *c, const uint8_t *buf, size_t len);
void check_totals(struct totals *tot);

/* ===== report.c ===== */

void totals_compute(struct totals *tot, uint64_t t_wall_end);
void print_summary(const struct totals *tot);
int write_json(const struct totals *tot);

#endif
