/*
 * book_bench - in-process throughput of the matching engine (no sockets).
 *
 * Pre-generates a realistic order flow, then times engine_handle() over it:
 * 16 sessions (--sessions) on 64 symbols; 58% GTC limits priced around a
 * drifting mid (about one in five crosses), 8% IOC limits at the touch, 2%
 * market orders, 20% cancels and 12% replaces of the session's recent
 * orders (some already filled, which are then rejected, as in real flow).
 * Each session numbers its orders 1, 2, 3, ... Output goes to a sink that
 * only counts bytes. Prints the median of 5 runs.
 *
 *   make bench-book [SESSIONS=N]
 *   build/book_bench [--sessions N] [MESSAGES]
 */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine.h"
#include "protocol.h"

#define DEFAULT_SESSIONS	16
#define MAX_SESSIONS	65536
#define NR_SYMBOLS	64
#define RECENT		256	/* cancel/replace targets per session */
#define RUNS		5

struct inbound {
	uint16_t sess;
	uint8_t len;
	unsigned char frame[MSG_MAX_SIZE];
};

struct sink {
	uint64_t bytes;
	uint64_t msgs;
};

static unsigned nr_sessions = DEFAULT_SESSIONS;
static struct sink *sinks;
static uint64_t rng = 0x2545f4914f6cdd1dULL;

static uint64_t rnd(uint64_t n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng % n;
}

static void sink_send(void *owner, const void *msg, unsigned len)
{
	struct sink *s = owner;

	(void)msg;
	s->bytes += len;
	s->msgs++;
}

static void put(struct inbound *in, uint16_t sess, void *msg, uint8_t type)
{
	struct msg_hdr *h = msg;

	h->len = proto_msg_size(type);
	h->type = type;
	h->flags = 0;
	in->sess = sess;
	in->len = h->len;
	memcpy(in->frame, msg, h->len);
}

/* generate - fill flow[0..n-1]; returns the number of new orders. */
static uint64_t generate(struct inbound *flow, uint64_t n,
			 uint64_t (*recent)[RECENT], uint64_t *next_cl)
{
	uint64_t orders = 0;
	int64_t mid[NR_SYMBOLS];

	for (unsigned s = 0; s < nr_sessions; s++)
		next_cl[s] = 1;
	for (int y = 0; y < NR_SYMBOLS; y++)
		mid[y] = 10000;
	for (uint64_t i = 0; i < n; i++) {
		uint16_t s = rnd(nr_sessions);
		uint32_t y = rnd(NR_SYMBOLS);
		uint64_t op = rnd(100);
		uint64_t target = recent[s][rnd(RECENT)];
		bool buy = rnd(2);

		if (rnd(64) == 0)	/* a slow random walk of the mid */
			mid[y] += rnd(2) ? 1 : -1;
		if (op < 68) {
			/* Mostly passive around the mid; some cross. */
			int64_t off = (int64_t)rnd(10) - 2;
			struct msg_new_order m = {
				.symbol = y, .cl_ord_id = next_cl[s]++,
				.price = buy ? mid[y] - off : mid[y] + off,
				.qty = 1 + rnd(20) * 10,
				.side = buy ? SIDE_BUY : SIDE_SELL,
				.ord_type = ORD_LIMIT, .tif = TIF_GTC,
			};

			if (op >= 58) {		/* IOC at the touch */
				m.tif = TIF_IOC;
				m.price = buy ? mid[y] + 2 : mid[y] - 2;
			}
			if (op >= 66) {		/* market */
				m.ord_type = ORD_MARKET;
				m.price = 0;
			}
			recent[s][m.cl_ord_id % RECENT] = m.cl_ord_id;
			put(&flow[i], s, &m, MSG_NEW_ORDER);
			orders++;
		} else if (op < 88) {
			struct msg_cancel m = { .cl_ord_id = target };

			put(&flow[i], s, &m, MSG_CANCEL);
		} else {
			struct msg_replace m = {
				.orig_cl_ord_id = target,
				.new_cl_ord_id = next_cl[s]++,
				.new_qty = 1 + rnd(20) * 10,
				.new_price = mid[y] + (int64_t)rnd(9) - 4,
			};

			recent[s][m.new_cl_ord_id % RECENT] = m.new_cl_ord_id;
			put(&flow[i], s, &m, MSG_REPLACE);
		}
	}
	return orders;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static void usage(void)
{
	fprintf(stderr, "usage: book_bench [--sessions N] [MESSAGES]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "sessions", required_argument, NULL, 's' },
		{ 0 }
	};
	uint64_t n = 2000000;
	struct engine_config cfg = {
		.symbols = NR_SYMBOLS, .max_orders = 1u << 24,
	};
	struct inbound *flow;
	struct session **sess;
	uint64_t (*recent)[RECENT];
	uint64_t *next_cl;
	double secs[RUNS];
	uint64_t orders, trades = 0, out_msgs = 0;
	int opt;

	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		char *end;

		if (opt != 's')
			usage();
		nr_sessions = strtoul(optarg, &end, 10);
		if (*end || !nr_sessions || nr_sessions > MAX_SESSIONS)
			usage();
	}
	if (optind + 1 < argc)
		usage();
	if (optind < argc)
		n = strtoull(argv[optind], NULL, 10);
	flow = calloc(n ? n : 1, sizeof(*flow));
	sess = calloc(nr_sessions, sizeof(*sess));
	sinks = calloc(nr_sessions, sizeof(*sinks));
	recent = calloc(nr_sessions, sizeof(*recent));
	next_cl = calloc(nr_sessions, sizeof(*next_cl));
	if (!flow || !sess || !sinks || !recent || !next_cl || !n) {
		fprintf(stderr, "book_bench: bad size or out of memory\n");
		return 1;
	}
	orders = generate(flow, n, recent, next_cl);
	for (int r = 0; r < RUNS; r++) {
		struct engine *eng = engine_create(&cfg, sink_send);
		struct engine_stats st;
		struct msg_hello hello = {
			.h = { .len = sizeof(hello), .type = MSG_HELLO },
			.version = PROTO_VERSION,
		};
		double t0;

		memset(sinks, 0, nr_sessions * sizeof(*sinks));
		for (unsigned s = 0; s < nr_sessions; s++) {
			sess[s] = engine_session_create(eng, &sinks[s]);
			engine_handle(eng, sess[s], &hello, sizeof(hello));
		}
		t0 = now();
		for (uint64_t i = 0; i < n; i++)
			engine_handle(eng, sess[flow[i].sess], flow[i].frame,
				      flow[i].len);
		secs[r] = now() - t0;
		engine_get_stats(eng, &st);
		trades = st.trades;
		out_msgs = 0;
		for (unsigned s = 0; s < nr_sessions; s++) {
			out_msgs += sinks[s].msgs;
			engine_session_destroy(eng, sess[s]);
		}
		engine_destroy(eng);
	}
	qsort(secs, RUNS, sizeof(secs[0]), cmp_double);
	printf("book_bench: %llu messages on %u sessions (%llu new orders, "
	       "%llu trades, %llu responses) per run, median of %d runs\n",
	       (unsigned long long)n, nr_sessions, (unsigned long long)orders,
	       (unsigned long long)trades, (unsigned long long)out_msgs, RUNS);
	printf("book_bench: %.0f orders/s, %.0f messages/s, %.0f ns/message "
	       "(best run %.0f messages/s)\n", orders / secs[RUNS / 2],
	       n / secs[RUNS / 2], secs[RUNS / 2] * 1e9 / n, n / secs[0]);
	free(next_cl);
	free(recent);
	free(sinks);
	free(sess);
	free(flow);
	return 0;
}
