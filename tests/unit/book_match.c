/*
 * book_match - the matching rules of the engine, message by message.
 *
 * Drives the engine directly (no sockets) with sessions whose output is
 * captured, and checks every outbound message and its fields for:
 * price-time priority across and within levels, partial fills, IOC and
 * market remainders, cancel, replace keeping priority (reduce at the same
 * price) and losing it (price change, quantity increase), a replace that
 * crosses, top-of-book publication only on change, duplicate ids (also
 * after a fill and out of order), the bounded window of remembered ids,
 * and orders outliving their session.
 */
#include "engine_util.h"

static struct engine *eng;
static struct capture ca, cb, cs;
static struct session *a, *b, *s;

static void check_exec(struct capture *c, uint64_t cl, uint64_t match_id,
		       int64_t px, uint32_t qty, uint32_t leaves,
		       uint8_t side, uint8_t liq)
{
	const struct msg_executed *e = next_msg(c, MSG_EXECUTED);

	if (!e)
		return;
	CHECK_EQ(e->cl_ord_id, cl);
	CHECK_EQ(e->match_id, match_id);
	CHECK_EQ(e->symbol, match_id >> 32);
	CHECK_EQ(e->price, px);
	CHECK_EQ(e->qty, qty);
	CHECK_EQ(e->leaves_qty, leaves);
	CHECK_EQ(e->side, side);
	CHECK_EQ(e->liquidity, liq);
}

static void check_accepted(struct capture *c, uint64_t cl, uint64_t order_id)
{
	const struct msg_accepted *m = next_msg(c, MSG_ACCEPTED);

	if (!m)
		return;
	CHECK_EQ(m->cl_ord_id, cl);
	CHECK_EQ(m->order_id, order_id);
}

static void check_canceled(struct capture *c, uint64_t cl, uint32_t qty,
			   uint8_t reason)
{
	const struct msg_canceled *m = next_msg(c, MSG_CANCELED);

	if (!m)
		return;
	CHECK_EQ(m->cl_ord_id, cl);
	CHECK_EQ(m->canceled_qty, qty);
	CHECK_EQ(m->reason, reason);
}

static void check_replaced(struct capture *c, uint64_t orig_cl,
			   uint64_t new_cl, uint64_t order_id, uint32_t qty,
			   int64_t px)
{
	const struct msg_replaced *r = next_msg(c, MSG_REPLACED);

	if (!r)
		return;
	CHECK_EQ(r->orig_cl_ord_id, orig_cl);
	CHECK_EQ(r->new_cl_ord_id, new_cl);
	CHECK_EQ(r->order_id, order_id);
	CHECK_EQ(r->qty, qty);
	CHECK_EQ(r->price, px);
}

static void check_rejected(struct capture *c, uint16_t reason, uint64_t cl)
{
	const struct msg_rejected *m = next_msg(c, MSG_REJECTED);

	if (!m)
		return;
	CHECK_EQ(m->reason, reason);
	CHECK_EQ(m->cl_ord_id, cl);
}

static void check_tob(struct capture *c, int64_t bid, uint32_t bid_qty,
		      int64_t ask, uint32_t ask_qty)
{
	const struct msg_top_of_book *q = next_msg(c, MSG_TOP_OF_BOOK);

	if (!q)
		return;
	CHECK_EQ(q->bid_price, bid);
	CHECK_EQ(q->bid_qty, bid_qty);
	CHECK_EQ(q->ask_price, ask);
	CHECK_EQ(q->ask_qty, ask_qty);
}

static void check_trade(struct capture *c, uint64_t match_id, int64_t px,
			uint32_t qty, uint8_t aggressor)
{
	const struct msg_trade *t = next_msg(c, MSG_TRADE);

	if (!t)
		return;
	CHECK_EQ(t->match_id, match_id);
	CHECK_EQ(t->price, px);
	CHECK_EQ(t->qty, qty);
	CHECK_EQ(t->aggressor_side, aggressor);
}

static void drained(void)
{
	CHECK_DRAINED(&ca);
	CHECK_DRAINED(&cb);
	CHECK_DRAINED(&cs);
	capture_reset(&ca);
	capture_reset(&cb);
	capture_reset(&cs);
}

/* Levels best first, oldest first inside a level; partial fills. */
static void test_price_time_priority(void)
{
	CHECK_EQ(subscribe(eng, s, 0), 0);
	check_tob(&cs, 0, 0, 0, 0);
	CHECK_EQ(limit(eng, a, 0, SIDE_SELL, 101, 5, 1), ENGINE_JOURNAL);
	CHECK_EQ(limit(eng, a, 0, SIDE_SELL, 100, 5, 2), ENGINE_JOURNAL);
	CHECK_EQ(limit(eng, a, 0, SIDE_SELL, 100, 3, 3), ENGINE_JOURNAL);
	check_accepted(&ca, 1, oid(0, 1));
	check_accepted(&ca, 2, oid(0, 2));
	check_accepted(&ca, 3, oid(0, 3));
	check_tob(&cs, 0, 0, 101, 5);
	check_tob(&cs, 0, 0, 100, 5);
	check_tob(&cs, 0, 0, 100, 8);
	drained();

	CHECK_EQ(limit(eng, b, 0, SIDE_BUY, 101, 12, 1), ENGINE_JOURNAL);
	check_accepted(&cb, 1, oid(0, 4));
	check_exec(&cb, 1, oid(0, 1), 100, 5, 7, SIDE_BUY, LIQ_REMOVED);
	check_exec(&cb, 1, oid(0, 2), 100, 3, 4, SIDE_BUY, LIQ_REMOVED);
	check_exec(&cb, 1, oid(0, 3), 101, 4, 0, SIDE_BUY, LIQ_REMOVED);
	check_exec(&ca, 2, oid(0, 1), 100, 5, 0, SIDE_SELL, LIQ_ADDED);
	check_exec(&ca, 3, oid(0, 2), 100, 3, 0, SIDE_SELL, LIQ_ADDED);
	check_exec(&ca, 1, oid(0, 3), 101, 4, 1, SIDE_SELL, LIQ_ADDED);
	check_trade(&cs, oid(0, 1), 100, 5, SIDE_BUY);
	check_trade(&cs, oid(0, 2), 100, 3, SIDE_BUY);
	check_trade(&cs, oid(0, 3), 101, 4, SIDE_BUY);
	check_tob(&cs, 0, 0, 101, 1);
	drained();

	/* The filled ones are gone: only cl=1 (1 left) remains. */
	CHECK_EQ(cancel(eng, a, 2), 0);
	check_rejected(&ca, REJ_UNKNOWN_ORDER, 2);
	drained();
}

/* IOC and market orders never rest; their remainder is canceled. */
static void test_ioc_and_market(void)
{
	CHECK_EQ(limit(eng, b, 0, SIDE_BUY, 99, 3, 2), ENGINE_JOURNAL);
	check_accepted(&cb, 2, oid(0, 5));
	check_tob(&cs, 99, 3, 101, 1);
	drained();

	CHECK_EQ(new_order(eng, b, 0, SIDE_BUY, ORD_LIMIT, TIF_IOC, 101, 4, 3),
		 ENGINE_JOURNAL);
	check_accepted(&cb, 3, oid(0, 6));
	check_exec(&cb, 3, oid(0, 4), 101, 1, 3, SIDE_BUY, LIQ_REMOVED);
	check_canceled(&cb, 3, 3, CXL_IOC_REMAINDER);
	check_exec(&ca, 1, oid(0, 4), 101, 1, 0, SIDE_SELL, LIQ_ADDED);
	check_trade(&cs, oid(0, 4), 101, 1, SIDE_BUY);
	check_tob(&cs, 99, 3, 0, 0);
	drained();

	/* Market sell of 5 against a 3 bid: fill 3, cancel 2. */
	CHECK_EQ(new_order(eng, a, 0, SIDE_SELL, ORD_MARKET, TIF_GTC, 0, 5, 4),
		 ENGINE_JOURNAL);
	check_accepted(&ca, 4, oid(0, 7));
	check_exec(&ca, 4, oid(0, 5), 99, 3, 2, SIDE_SELL, LIQ_REMOVED);
	check_canceled(&ca, 4, 2, CXL_IOC_REMAINDER);
	check_exec(&cb, 2, oid(0, 5), 99, 3, 0, SIDE_BUY, LIQ_ADDED);
	check_trade(&cs, oid(0, 5), 99, 3, SIDE_SELL);
	check_tob(&cs, 0, 0, 0, 0);
	drained();

	/* Market into an empty book: accepted, then wholly canceled. */
	CHECK_EQ(new_order(eng, a, 0, SIDE_BUY, ORD_MARKET, TIF_IOC, 0, 7, 5),
		 ENGINE_JOURNAL);
	check_accepted(&ca, 5, oid(0, 8));
	check_canceled(&ca, 5, 7, CXL_IOC_REMAINDER);
	drained();
}

static void test_cancel(void)
{
	CHECK_EQ(limit(eng, a, 0, SIDE_SELL, 105, 10, 10), ENGINE_JOURNAL);
	check_accepted(&ca, 10, oid(0, 9));
	check_tob(&cs, 0, 0, 105, 10);
	CHECK_EQ(cancel(eng, a, 10), ENGINE_JOURNAL);
	check_canceled(&ca, 10, 10, CXL_USER);
	check_tob(&cs, 0, 0, 0, 0);
	CHECK_EQ(cancel(eng, a, 10), 0);
	check_rejected(&ca, REJ_UNKNOWN_ORDER, 10);
	/* Another session cannot address it (ids are per session). */
	CHECK_EQ(limit(eng, a, 0, SIDE_SELL, 105, 10, 11), ENGINE_JOURNAL);
	check_accepted(&ca, 11, oid(0, 10));
	check_tob(&cs, 0, 0, 105, 10);
	CHECK_EQ(cancel(eng, b, 11), 0);
	check_rejected(&cb, REJ_UNKNOWN_ORDER, 11);
	CHECK_EQ(cancel(eng, a, 11), ENGINE_JOURNAL);
	check_canceled(&ca, 11, 10, CXL_USER);
	check_tob(&cs, 0, 0, 0, 0);
	drained();
}

static void test_replace(void)
{
	/* Reduce at the same price: same order id, still first in line. */
	CHECK_EQ(limit(eng, a, 1, SIDE_BUY, 50, 10, 20), ENGINE_JOURNAL);
	CHECK_EQ(limit(eng, a, 1, SIDE_BUY, 50, 10, 21), ENGINE_JOURNAL);
	CHECK_EQ(replace(eng, a, 20, 22, 4, 50), ENGINE_JOURNAL);
	check_accepted(&ca, 20, oid(1, 1));
	check_accepted(&ca, 21, oid(1, 2));
	check_replaced(&ca, 20, 22, oid(1, 1), 4, 50);
	CHECK_EQ(cancel(eng, a, 20), 0);
	check_rejected(&ca, REJ_UNKNOWN_ORDER, 20);
	CHECK_EQ(new_order(eng, b, 1, SIDE_SELL, ORD_LIMIT, TIF_IOC, 50, 5, 30),
		 ENGINE_JOURNAL);
	check_accepted(&cb, 30, oid(1, 3));
	check_exec(&cb, 30, oid(1, 1), 50, 4, 1, SIDE_SELL, LIQ_REMOVED);
	check_exec(&cb, 30, oid(1, 2), 50, 1, 0, SIDE_SELL, LIQ_REMOVED);
	check_exec(&ca, 22, oid(1, 1), 50, 4, 0, SIDE_BUY, LIQ_ADDED);
	check_exec(&ca, 21, oid(1, 2), 50, 1, 9, SIDE_BUY, LIQ_ADDED);
	drained();

	/*
	 * Away and back: cl=23 goes to 51 and back to 50, with a new order
	 * id each time. Then cl=21 (9 left), ahead of it until now, grows to
	 * 10 and so goes behind it.
	 */
	CHECK_EQ(limit(eng, a, 1, SIDE_BUY, 50, 5, 23), ENGINE_JOURNAL);
	check_accepted(&ca, 23, oid(1, 4));
	CHECK_EQ(replace(eng, a, 23, 24, 5, 51), ENGINE_JOURNAL);
	check_replaced(&ca, 23, 24, oid(1, 5), 5, 51);
	CHECK_EQ(replace(eng, a, 24, 25, 5, 50), ENGINE_JOURNAL);
	check_replaced(&ca, 24, 25, oid(1, 6), 5, 50);
	/* A quantity increase at the same price also loses priority. */
	CHECK_EQ(replace(eng, a, 21, 26, 10, 50), ENGINE_JOURNAL);
	check_replaced(&ca, 21, 26, oid(1, 7), 10, 50);
	CHECK_EQ(new_order(eng, b, 1, SIDE_SELL, ORD_MARKET, TIF_IOC, 0, 6, 31),
		 ENGINE_JOURNAL);
	check_accepted(&cb, 31, oid(1, 8));
	check_exec(&cb, 31, oid(1, 3), 50, 5, 1, SIDE_SELL, LIQ_REMOVED);
	check_exec(&cb, 31, oid(1, 4), 50, 1, 0, SIDE_SELL, LIQ_REMOVED);
	check_exec(&ca, 25, oid(1, 3), 50, 5, 0, SIDE_BUY, LIQ_ADDED);
	check_exec(&ca, 26, oid(1, 4), 50, 1, 9, SIDE_BUY, LIQ_ADDED);
	drained();

	/* A replace that crosses trades at once, as the aggressor. */
	CHECK_EQ(limit(eng, b, 1, SIDE_SELL, 52, 4, 32), ENGINE_JOURNAL);
	CHECK_EQ(replace(eng, a, 26, 27, 3, 52), ENGINE_JOURNAL);
	check_accepted(&cb, 32, oid(1, 9));
	check_replaced(&ca, 26, 27, oid(1, 10), 3, 52);
	check_exec(&ca, 27, oid(1, 5), 52, 3, 0, SIDE_BUY, LIQ_REMOVED);
	check_exec(&cb, 32, oid(1, 5), 52, 3, 1, SIDE_SELL, LIQ_ADDED);
	CHECK_EQ(cancel(eng, a, 27), 0);	/* filled: gone */
	check_rejected(&ca, REJ_UNKNOWN_ORDER, 27);
	CHECK_EQ(cancel(eng, b, 32), ENGINE_JOURNAL);
	check_canceled(&cb, 32, 1, CXL_USER);

	/* Replace rejects: unknown, bad price, bad qty, duplicate id. */
	CHECK_EQ(replace(eng, a, 999, 40, 1, 50), 0);
	check_rejected(&ca, REJ_UNKNOWN_ORDER, 40);
	CHECK_EQ(limit(eng, a, 1, SIDE_BUY, 40, 5, 41), ENGINE_JOURNAL);
	check_accepted(&ca, 41, oid(1, 11));
	CHECK_EQ(replace(eng, a, 41, 42, 1, 0), 0);
	check_rejected(&ca, REJ_BAD_PRICE, 42);
	CHECK_EQ(replace(eng, a, 41, 42, 0, 40), 0);
	check_rejected(&ca, REJ_BAD_QTY, 42);
	CHECK_EQ(replace(eng, a, 41, 20, 1, 40), 0);
	check_rejected(&ca, REJ_DUPLICATE_ID, 20);
	CHECK_EQ(cancel(eng, a, 41), ENGINE_JOURNAL);
	check_canceled(&ca, 41, 5, CXL_USER);
	drained();
}

/* TopOfBook only when the best prices or their quantities change. */
static void test_top_of_book_only_on_change(void)
{
	CHECK_EQ(subscribe(eng, s, 4), 0);
	check_tob(&cs, 0, 0, 0, 0);
	CHECK_EQ(limit(eng, a, 4, SIDE_BUY, 10, 1, 50), ENGINE_JOURNAL);
	check_tob(&cs, 10, 1, 0, 0);
	CHECK_EQ(limit(eng, a, 4, SIDE_BUY, 9, 1, 51), ENGINE_JOURNAL);
	CHECK_EQ(limit(eng, a, 4, SIDE_SELL, 20, 1, 52), ENGINE_JOURNAL);
	check_tob(&cs, 10, 1, 20, 1);
	CHECK_EQ(limit(eng, a, 4, SIDE_SELL, 21, 1, 53), ENGINE_JOURNAL);
	CHECK_EQ(cancel(eng, a, 51), ENGINE_JOURNAL);
	CHECK_EQ(limit(eng, a, 4, SIDE_BUY, 10, 2, 54), ENGINE_JOURNAL);
	check_tob(&cs, 10, 3, 20, 1);
	CHECK_EQ(cancel(eng, a, 50), ENGINE_JOURNAL);
	check_tob(&cs, 10, 2, 20, 1);
	check_accepted(&ca, 50, oid(4, 1));
	check_accepted(&ca, 51, oid(4, 2));
	check_accepted(&ca, 52, oid(4, 3));
	check_accepted(&ca, 53, oid(4, 4));
	check_canceled(&ca, 51, 1, CXL_USER);
	check_accepted(&ca, 54, oid(4, 5));
	check_canceled(&ca, 50, 1, CXL_USER);
	drained();
}

static void test_duplicate_ids(void)
{
	/* cl=1 was used and fully filled long ago: still a duplicate. */
	CHECK_EQ(limit(eng, a, 5, SIDE_BUY, 1, 1, 1), 0);
	check_rejected(&ca, REJ_DUPLICATE_ID, 1);
	/* Out-of-order ids: 100, 99, 101, 60 are fresh; repeats are not. */
	static const uint64_t fresh[] = { 100, 99, 101, 60, 98, 61 };
	static const uint64_t dup[] = { 99, 100, 101, 60, 98, 61, 0 };

	for (unsigned i = 0; i < sizeof(fresh) / sizeof(fresh[0]); i++) {
		CHECK_EQ(new_order(eng, a, 5, SIDE_BUY, ORD_LIMIT, TIF_IOC, 1,
				   1, fresh[i]), ENGINE_JOURNAL);
		check_accepted(&ca, fresh[i], oid(5, i + 1));
		check_canceled(&ca, fresh[i], 1, CXL_IOC_REMAINDER);
	}
	for (unsigned i = 0; i < sizeof(dup) / sizeof(dup[0]); i++) {
		CHECK_EQ(limit(eng, a, 5, SIDE_BUY, 1, 1, dup[i]), 0);
		check_rejected(&ca, REJ_DUPLICATE_ID, dup[i]);
	}
	/* A rejected order does not use its id up. */
	CHECK_EQ(limit(eng, a, 5, SIDE_BUY, 0, 1, 200), 0);
	check_rejected(&ca, REJ_BAD_PRICE, 200);
	CHECK_EQ(new_order(eng, a, 5, SIDE_BUY, ORD_LIMIT, TIF_IOC, 1, 1, 200),
		 ENGINE_JOURNAL);
	check_accepted(&ca, 200, oid(5, 7));
	check_canceled(&ca, 200, 1, CXL_IOC_REMAINDER);
	/* Filling the gap 62..97 merges 60 and 61 into the run. */
	for (uint64_t id = 97, seq = 8; id >= 62; id--, seq++) {
		CHECK_EQ(new_order(eng, a, 5, SIDE_BUY, ORD_LIMIT, TIF_IOC, 1,
				   1, id), ENGINE_JOURNAL);
		check_accepted(&ca, id, oid(5, seq));
		check_canceled(&ca, id, 1, CXL_IOC_REMAINDER);
	}
	for (uint64_t id = 60; id <= 101; id++) {
		CHECK_EQ(limit(eng, a, 5, SIDE_BUY, 1, 1, id), 0);
		check_rejected(&ca, REJ_DUPLICATE_ID, id);
	}
	CHECK_EQ(new_order(eng, a, 5, SIDE_BUY, ORD_LIMIT, TIF_IOC, 1, 1, 59),
		 ENGINE_JOURNAL);
	check_accepted(&ca, 59, oid(5, 44));
	check_canceled(&ca, 59, 1, CXL_IOC_REMAINDER);
	drained();
}

/*
 * A session remembers its last 4096 ids one by one and, below them, only
 * the highest id it forgot: ids 2, 4, ..., 10000 leave 1810..10000 (even)
 * remembered and the floor at 1808.
 */
static void test_id_window(void)
{
	struct capture cd = { 0 };
	struct session *d = engine_session_create(eng, &cd);
	static const uint64_t dup[] = { 2, 1807, 1808, 1810, 5000, 10000 };
	static const uint64_t fresh[] = { 1809, 5001, 9999, 10001 };

	CHECK_EQ(hello(eng, d), ENGINE_JOURNAL);
	for (uint64_t id = 2; id <= 10000; id += 2)
		CHECK_EQ(new_order(eng, d, 9, SIDE_BUY, ORD_LIMIT, TIF_IOC, 1,
				   1, id), ENGINE_JOURNAL);
	capture_reset(&cd);
	for (unsigned i = 0; i < sizeof(dup) / sizeof(dup[0]); i++) {
		CHECK_EQ(limit(eng, d, 9, SIDE_BUY, 1, 1, dup[i]), 0);
		check_rejected(&cd, REJ_DUPLICATE_ID, dup[i]);
	}
	for (unsigned i = 0; i < sizeof(fresh) / sizeof(fresh[0]); i++) {
		CHECK_EQ(new_order(eng, d, 9, SIDE_BUY, ORD_LIMIT, TIF_IOC, 1,
				   1, fresh[i]), ENGINE_JOURNAL);
		check_accepted(&cd, fresh[i], oid(9, 5001 + i));
		check_canceled(&cd, fresh[i], 1, CXL_IOC_REMAINDER);
	}
	CHECK_DRAINED(&cd);
	engine_session_destroy(eng, d);
	capture_free(&cd);
}

/* Orders outlive their session; fills then go to nobody. */
static void test_orders_outlive_session(void)
{
	struct engine_stats before, st;

	CHECK_EQ(limit(eng, a, 6, SIDE_SELL, 30, 5, 300), ENGINE_JOURNAL);
	CHECK_EQ(subscribe(eng, a, 6), 0);
	capture_reset(&ca);
	engine_get_stats(eng, &before);
	engine_session_destroy(eng, a);
	a = NULL;
	engine_get_stats(eng, &st);
	CHECK_EQ(st.live_orders, before.live_orders);
	CHECK_EQ(limit(eng, b, 6, SIDE_BUY, 30, 2, 301), ENGINE_JOURNAL);
	check_accepted(&cb, 301, oid(6, 2));
	check_exec(&cb, 301, oid(6, 1), 30, 2, 0, SIDE_BUY, LIQ_REMOVED);
	CHECK_EQ(ca.len, 0);	/* the closed session got nothing */
	engine_get_stats(eng, &st);
	CHECK_EQ(st.live_orders, before.live_orders);
	CHECK_EQ(st.trades, before.trades + 1);
	/* The rest (3) still trades, then the level is gone. */
	CHECK_EQ(limit(eng, b, 6, SIDE_BUY, 30, 3, 302), ENGINE_JOURNAL);
	check_accepted(&cb, 302, oid(6, 3));
	check_exec(&cb, 302, oid(6, 2), 30, 3, 0, SIDE_BUY, LIQ_REMOVED);
	engine_get_stats(eng, &st);
	CHECK_EQ(st.live_orders, before.live_orders - 1);
	drained();
}

int main(void)
{
	struct engine_config cfg = { .symbols = 16, .max_orders = 1000 };

	eng = engine_create(&cfg, capture_send);
	a = engine_session_create(eng, &ca);
	b = engine_session_create(eng, &cb);
	s = engine_session_create(eng, &cs);
	if (!eng || !a || !b || !s)
		return 1;
	CHECK_EQ(hello(eng, a), ENGINE_JOURNAL);
	CHECK_EQ(hello(eng, b), ENGINE_JOURNAL);
	CHECK_EQ(hello(eng, s), ENGINE_JOURNAL);
	CHECK_EQ(engine_session_no(a), 1);
	CHECK_EQ(engine_session_no(b), 2);
	next_msg(&ca, MSG_HELLO_ACK);
	next_msg(&cb, MSG_HELLO_ACK);
	next_msg(&cs, MSG_HELLO_ACK);
	drained();

	test_price_time_priority();
	test_ioc_and_market();
	test_cancel();
	test_replace();
	test_top_of_book_only_on_change();
	test_duplicate_ids();
	test_id_window();
	test_orders_outlive_session();

	engine_session_destroy(eng, b);
	engine_session_destroy(eng, s);
	engine_destroy(eng);
	capture_free(&ca);
	capture_free(&cb);
	capture_free(&cs);
	return finish("book_match");
}
