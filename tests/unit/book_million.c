/*
 * book_million - one book holding 1,000,000 resting orders.
 *
 * Rests 1,000,000 buys over 5,000 price levels, cancels every tenth, then
 * sweeps the rest with one market sell and checks that every fill came in
 * price-time order (best price first, oldest first within a price) and that
 * the book ends empty. The second round repeats it and checks that the heap
 * did not grow: in steady state the engine allocates nothing per message.
 */
#include <malloc.h>

#include "engine_util.h"

#define ORDERS		1000000u
#define LEVELS		5000u
#define TOP_PRICE	100000

struct counter {
	uint64_t accepted;
	uint64_t canceled;
	uint64_t fills;		/* Executed to the aggressor */
	uint64_t passive;	/* Executed to resting orders */
	uint64_t other;
	int64_t last_price;
	uint64_t last_cl;
	bool order_ok;
};

static struct counter ctr;

/* Counts instead of storing: 2 million Executed would be ~100 MB. */
static void count_send(void *owner, const void *msg, unsigned len)
{
	const struct msg_hdr *h = msg;
	struct counter *c = owner;
	struct msg_executed e;

	(void)len;
	switch (h->type) {
	case MSG_ACCEPTED:
		c->accepted++;
		break;
	case MSG_CANCELED:
		c->canceled++;
		break;
	case MSG_EXECUTED:
		memcpy(&e, msg, sizeof(e));
		if (e.liquidity == LIQ_REMOVED) {
			c->fills++;
			break;
		}
		c->passive++;
		/* Lower prices later; same price: older (smaller cl) first. */
		if (e.price > c->last_price ||
		    (e.price == c->last_price && e.cl_ord_id <= c->last_cl))
			c->order_ok = false;
		c->last_price = e.price;
		c->last_cl = e.cl_ord_id;
		break;
	default:
		c->other++;
	}
}

/* Order i (from 1) rests at TOP_PRICE - i % LEVELS, quantity 1. */
static void round_trip(struct engine *eng, struct session *sess,
		       uint64_t base)
{
	struct engine_stats st;
	uint64_t kept = 0;

	memset(&ctr, 0, sizeof(ctr));
	for (uint64_t i = 1; i <= ORDERS; i++)
		if (limit(eng, sess, 0, SIDE_BUY, TOP_PRICE - i % LEVELS, 1,
			  base + i) != ENGINE_JOURNAL)
			failures++;
	CHECK_EQ(ctr.accepted, ORDERS);
	engine_get_stats(eng, &st);
	CHECK_EQ(st.live_orders, ORDERS);

	for (uint64_t i = 10; i <= ORDERS; i += 10)
		if (cancel(eng, sess, base + i) != ENGINE_JOURNAL)
			failures++;
	kept = ORDERS - ORDERS / 10;
	CHECK_EQ(ctr.canceled, ORDERS / 10);
	engine_get_stats(eng, &st);
	CHECK_EQ(st.live_orders, kept);

	ctr.last_price = INT64_MAX;
	ctr.order_ok = true;
	CHECK_EQ(new_order(eng, sess, 0, SIDE_SELL, ORD_MARKET, TIF_IOC, 0,
			   QTY_MAX, base + ORDERS + 1), ENGINE_JOURNAL);
	CHECK_EQ(ctr.fills, kept);
	CHECK_EQ(ctr.passive, kept);
	CHECK(ctr.order_ok);
	CHECK_EQ(ctr.last_price, TOP_PRICE - (LEVELS - 1));
	CHECK_EQ(ctr.canceled, ORDERS / 10 + 1);	/* the remainder */
	engine_get_stats(eng, &st);
	CHECK_EQ(st.live_orders, 0);
}

int main(void)
{
	struct engine_config cfg = { .symbols = 4, .max_orders = 2 * ORDERS };
	struct mallinfo2 before, after;
	struct engine *eng;
	struct session *sess;

	eng = engine_create(&cfg, count_send);
	sess = eng ? engine_session_create(eng, &ctr) : NULL;
	if (!sess) {
		fprintf(stderr, "out of memory\n");
		return 1;
	}
	hello(eng, sess);
	round_trip(eng, sess, 0);
	before = mallinfo2();
	round_trip(eng, sess, ORDERS + 1);	/* ids run on */
	after = mallinfo2();
	/* Sequential ids, recycled orders, sized levels: no growth at all. */
	CHECK_EQ(after.uordblks, before.uordblks);
	CHECK_EQ(after.hblkhd, before.hblkhd);

	engine_session_destroy(eng, sess);
	engine_destroy(eng);
	return finish("book_million");
}
