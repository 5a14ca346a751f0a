/*
 * engine_determinism - the same inbound sequence gives the same bytes out.
 *
 * Generates a pseudo-random but fixed stream of 300,000 inbound messages
 * from 6 sessions (limit GTC/IOC, market, cancels and replaces of earlier
 * ids, subscriptions, some invalid orders and ids out of order; one
 * session disconnects half way), runs it through two fresh engines and
 * compares every session's output byte for byte. A seventh session trades
 * only its own symbol: its output must be the same with all the other
 * traffic as when it is alone.
 */
#include "engine_util.h"

#define NR_SESSIONS	7
#define LONER		6	/* trades symbol 7 only */
#define NR_MSGS		300000
#define QUITTER		3	/* disconnects half way */

struct inbound {
	uint8_t sess;
	uint8_t len;
	unsigned char frame[MSG_MAX_SIZE];
};

static struct inbound *stream;
static unsigned nr_stream;

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rnd(uint64_t n)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state % n;
}

static void push(uint8_t sess, void *msg, uint8_t type)
{
	struct msg_hdr *h = msg;
	struct inbound *in = &stream[nr_stream++];

	h->len = proto_msg_size(type);
	h->type = type;
	h->flags = 0;
	in->sess = sess;
	in->len = h->len;
	memcpy(in->frame, msg, h->len);
}

static void generate(void)
{
	uint64_t next_cl[NR_SESSIONS];

	stream = calloc(NR_MSGS + NR_SESSIONS, sizeof(*stream));
	if (!stream)
		abort();
	for (int s = 0; s < NR_SESSIONS; s++) {
		struct msg_hello m = { .version = PROTO_VERSION };

		push(s, &m, MSG_HELLO);
		next_cl[s] = 1;
	}
	while (nr_stream < NR_MSGS) {
		uint8_t s = rnd(NR_SESSIONS);
		uint32_t sym = s == LONER ? 7 : rnd(6);
		uint64_t op = rnd(100);
		uint64_t old = next_cl[s] > 50 ? next_cl[s] - 1 - rnd(50)
					       : 1 + rnd(next_cl[s]);

		if (s == QUITTER && nr_stream >= NR_MSGS / 2)
			continue;
		if (op < 60) {
			struct msg_new_order m = {
				.symbol = sym,
				.cl_ord_id = next_cl[s]++,
				.price = 1000 + rnd(21) - 10,
				.qty = 1 + rnd(100),
				.side = rnd(2) ? SIDE_BUY : SIDE_SELL,
				.ord_type = ORD_LIMIT,
				.tif = rnd(6) ? TIF_GTC : TIF_IOC,
			};

			if (op < 4) {
				m.ord_type = ORD_MARKET;
				m.price = 0;
			} else if (op < 6) {
				m.price = -5;	/* rejected */
			} else if (op < 8) {
				m.cl_ord_id = old;	/* not above: rejected */
			}
			push(s, &m, MSG_NEW_ORDER);
		} else if (op < 80) {
			struct msg_cancel m = { .cl_ord_id = old };

			push(s, &m, MSG_CANCEL);
		} else if (op < 98) {
			struct msg_replace m = {
				.orig_cl_ord_id = old,
				.new_cl_ord_id = next_cl[s]++,
				.new_qty = 1 + rnd(100),
				.new_price = 1000 + rnd(21) - 10,
			};

			push(s, &m, MSG_REPLACE);
		} else if (s != LONER) {
			struct msg_subscribe m = { .symbol = rnd(6) };

			push(s, &m, MSG_SUBSCRIBE);
		}
	}
}

/* Run the stream (or only one session's part of it); fills out[]. */
static void run(struct capture *out, int only)
{
	struct engine_config cfg = { .symbols = 16, .max_orders = 1 << 20 };
	struct engine *eng = engine_create(&cfg, capture_send);
	struct session *sess[NR_SESSIONS];
	struct engine_stats st;

	for (int s = 0; s < NR_SESSIONS; s++) {
		sess[s] = engine_session_create(eng, &out[s]);
		out[s].len = out[s].rd = 0;
	}
	for (unsigned i = 0; i < nr_stream; i++) {
		const struct inbound *in = &stream[i];

		if (only >= 0 && in->sess != only)
			continue;
		if (i == NR_MSGS / 2 && sess[QUITTER]) {
			engine_session_destroy(eng, sess[QUITTER]);
			sess[QUITTER] = NULL;
		}
		if (sess[in->sess])
			engine_handle(eng, sess[in->sess], in->frame, in->len);
	}
	engine_get_stats(eng, &st);
	if (only < 0)
		CHECK(st.trades > 10000);
	for (int s = 0; s < NR_SESSIONS; s++)
		engine_session_destroy(eng, sess[s]);
	engine_destroy(eng);
}

int main(void)
{
	struct capture first[NR_SESSIONS] = { 0 };
	struct capture second[NR_SESSIONS] = { 0 };
	struct capture alone[NR_SESSIONS] = { 0 };

	generate();
	run(first, -1);
	run(second, -1);
	for (int s = 0; s < NR_SESSIONS; s++) {
		CHECK(first[s].len > 100000);
		CHECK_EQ(first[s].len, second[s].len);
		CHECK(first[s].len == second[s].len &&
		      !memcmp(first[s].buf, second[s].buf, first[s].len));
	}
	run(alone, LONER);
	CHECK_EQ(alone[LONER].len, first[LONER].len);
	CHECK(alone[LONER].len == first[LONER].len &&
	      !memcmp(alone[LONER].buf, first[LONER].buf, first[LONER].len));

	for (int s = 0; s < NR_SESSIONS; s++) {
		capture_free(&first[s]);
		capture_free(&second[s]);
		capture_free(&alone[s]);
	}
	free(stream);
	return finish("engine_determinism");
}
