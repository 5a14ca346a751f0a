/*
 * book_match - the matching rules of the engine, message by message.
 *
 * Drives the engine directly (no sockets) with sessions whose output is
 * captured, and checks every outbound message and its fields for:
 * price-time priority across and within levels, partial fills, IOC and
 * market remainders, cancel, replace keeping priority (reduce at the same
 * price) and losing it (price change, quantity increase), a replace that
 * crosses, top-of-book publication only on change, strictly increasing
 * client ids (equal, lower, after a rejected message), cancel and replace
 * among many resting orders, and orders outliving their session.
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

/* An IOC buy at 1 on symbol 5 (empty): accepted, then wholly canceled. */
static void check_fresh(uint64_t cl, uint32_t seq)
{
	CHECK_EQ(new_order(eng, a, 5, SIDE_BUY, ORD_LIMIT, TIF_IOC, 1, 1, cl),
		 ENGINE_JOURNAL);
	check_accepted(&ca, cl, oid(5, seq));
	check_canceled(&ca, cl, 1, CXL_IOC_REMAINDER);
}

static void check_stale(uint64_t cl)
{
	CHECK_EQ(limit(eng, a, 5, SIDE_BUY, 1, 1, cl), 0);
	check_rejected(&ca, REJ_DUPLICATE_ID, cl);
}

/*
 * Ids strictly increase per session: an id at or below the last accepted
 * one is REJ_DUPLICATE_ID, used before or not; gaps are fine; a rejected
 * message leaves the last accepted id where it was.
 */
static void test_increasing_ids(void)
{
	/* a's last accepted id is 54 (test_top_of_book_only_on_change). */
	check_stale(1);		/* used and filled long ago */
	check_stale(54);	/* equal to the last */
	check_stale(53);	/* used, still resting */
	check_stale(0);		/* never valid */
	check_fresh(100, 1);
	check_stale(100);	/* equal */
	check_stale(99);	/* lower, although never used */
	check_fresh(101, 2);
	check_fresh(200, 3);	/* a gap is fine */
	check_stale(102);
	drained();

	/* Rejected orders: the next id may reuse theirs, or go lower. */
	CHECK_EQ(limit(eng, b, 5, SIDE_BUY, 0, 1, 1000), 0);
	check_rejected(&cb, REJ_BAD_PRICE, 1000);
	CHECK_EQ(limit(eng, b, 5, SIDE_BUY, 1, 0, 2000), 0);
	check_rejected(&cb, REJ_BAD_QTY, 2000);
	CHECK_EQ(limit(eng, b, 5, SIDE_BUY, 1, 1, 1000), ENGINE_JOURNAL);
	check_accepted(&cb, 1000, oid(5, 4));
	CHECK_EQ(limit(eng, b, 5, SIDE_BUY, 1, 1, 1000), 0);
	check_rejected(&cb, REJ_DUPLICATE_ID, 1000);
	drained();

	/*
	 * Replace: new_cl_ord_id obeys the same rule, a rejected Replace
	 * leaves it alone, an accepted one raises it. Cancel and
	 * orig_cl_ord_id name live orders and are not bound by it.
	 */
	CHECK_EQ(replace(eng, b, 1000, 1000, 2, 1), 0);
	check_rejected(&cb, REJ_DUPLICATE_ID, 1000);
	CHECK_EQ(replace(eng, b, 1000, 999, 2, 1), 0);
	check_rejected(&cb, REJ_DUPLICATE_ID, 999);
	CHECK_EQ(replace(eng, b, 777, 3000, 2, 1), 0);
	check_rejected(&cb, REJ_UNKNOWN_ORDER, 3000);
	CHECK_EQ(replace(eng, b, 1000, 3000, 0, 1), 0);
	check_rejected(&cb, REJ_BAD_QTY, 3000);
	CHECK_EQ(limit(eng, b, 5, SIDE_BUY, 1, 1, 1500), ENGINE_JOURNAL);
	check_accepted(&cb, 1500, oid(5, 5));
	CHECK_EQ(replace(eng, b, 1000, 1600, 1, 1), ENGINE_JOURNAL);
	check_replaced(&cb, 1000, 1600, oid(5, 4), 1, 1);
	CHECK_EQ(limit(eng, b, 5, SIDE_BUY, 1, 1, 1599), 0);
	check_rejected(&cb, REJ_DUPLICATE_ID, 1599);
	CHECK_EQ(cancel(eng, b, 1500), ENGINE_JOURNAL);
	check_canceled(&cb, 1500, 1, CXL_USER);
	CHECK_EQ(cancel(eng, b, 1600), ENGINE_JOURNAL);
	check_canceled(&cb, 1600, 1, CXL_USER);
	drained();

	/* Each session has its own sequence: b at 1600 leaves a at 200. */
	check_fresh(201, 6);
	CHECK_EQ(limit(eng, b, 5, SIDE_BUY, 1, 1, 202), 0);
	check_rejected(&cb, REJ_DUPLICATE_ID, 202);
	drained();
}

/*
 * Out of capacity (REJ_CAPACITY) does not use the id up either. The
 * largest id is accepted, and then no other New Order can be.
 */
static void test_capacity_keeps_id(void)
{
	struct engine_config cfg = { .symbols = 1, .max_orders = 1 };
	struct capture cd = { 0 };
	struct engine *small = engine_create(&cfg, capture_send);
	struct session *d = small ? engine_session_create(small, &cd) : NULL;

	CHECK(d != NULL);
	if (!d)
		return;
	CHECK_EQ(hello(small, d), ENGINE_JOURNAL);
	next_msg(&cd, MSG_HELLO_ACK);
	CHECK_EQ(limit(small, d, 0, SIDE_BUY, 10, 1, 5), ENGINE_JOURNAL);
	check_accepted(&cd, 5, oid(0, 1));
	CHECK_EQ(limit(small, d, 0, SIDE_BUY, 10, 1, 7), 0);
	check_rejected(&cd, REJ_CAPACITY, 7);
	CHECK_EQ(cancel(small, d, 5), ENGINE_JOURNAL);
	check_canceled(&cd, 5, 1, CXL_USER);
	CHECK_EQ(limit(small, d, 0, SIDE_BUY, 10, 1, 6), ENGINE_JOURNAL);
	check_accepted(&cd, 6, oid(0, 2));
	CHECK_EQ(new_order(small, d, 0, SIDE_SELL, ORD_LIMIT, TIF_IOC, 11, 1,
			   UINT64_MAX), ENGINE_JOURNAL);
	check_accepted(&cd, UINT64_MAX, oid(0, 3));
	check_canceled(&cd, UINT64_MAX, 1, CXL_IOC_REMAINDER);
	CHECK_EQ(new_order(small, d, 0, SIDE_SELL, ORD_LIMIT, TIF_IOC, 11, 1,
			   UINT64_MAX), 0);
	check_rejected(&cd, REJ_DUPLICATE_ID, UINT64_MAX);
	CHECK_EQ(cancel(small, d, 6), ENGINE_JOURNAL);
	check_canceled(&cd, 6, 1, CXL_USER);
	CHECK_DRAINED(&cd);
	engine_session_destroy(small, d);
	engine_destroy(small);
	capture_free(&cd);
}

/*
 * Cancel and Replace find their order among many: 20,000 resting orders
 * whose ids share a stride of 2^20 (as when a client packs a slot number in
 * the low bits). Every third is canceled, every third replaced (then
 * answering only to its new id), ids next to live ones are unknown, and a
 * final sweep fills exactly what is left, in price-time order.
 */
#define MANY		20000u
#define MANY_ID(i)	((uint64_t)(i) << 20 | 3)
#define MANY_NEW(i)	MANY_ID(MANY + (i))

static void test_lookup_among_many(void)
{
	struct engine_config cfg = { .symbols = 1, .max_orders = 2 * MANY };
	struct capture cd = { 0 }, ce = { 0 };
	struct engine *big = engine_create(&cfg, capture_send);
	struct session *d = big ? engine_session_create(big, &cd) : NULL;
	struct session *e = big ? engine_session_create(big, &ce) : NULL;
	struct engine_stats st;
	uint32_t left = 0, fills = 0;

	CHECK(d && e);
	if (!d || !e)
		return;
	hello(big, d);
	hello(big, e);
	capture_reset(&cd);
	capture_reset(&ce);
	/* Order i rests at 1000 - i % 100: a hundred levels. */
	for (uint32_t i = 1; i <= MANY; i++) {
		CHECK_EQ(limit(big, d, 0, SIDE_BUY, 1000 - i % 100, 1,
			       MANY_ID(i)), ENGINE_JOURNAL);
		check_accepted(&cd, MANY_ID(i), oid(0, i));
	}
	for (uint32_t i = 1; i <= MANY; i++) {
		CHECK_EQ(cancel(big, d, MANY_ID(i) + 1), 0);
		check_rejected(&cd, REJ_UNKNOWN_ORDER, MANY_ID(i) + 1);
		if (i % 3 == 0) {
			CHECK_EQ(cancel(big, d, MANY_ID(i)), ENGINE_JOURNAL);
			check_canceled(&cd, MANY_ID(i), 1, CXL_USER);
		} else if (i % 3 == 1) {
			/* Same price and quantity: keeps its place. */
			CHECK_EQ(replace(big, d, MANY_ID(i), MANY_NEW(i), 1,
					 1000 - i % 100), ENGINE_JOURNAL);
			check_replaced(&cd, MANY_ID(i), MANY_NEW(i), oid(0, i),
				       1, 1000 - i % 100);
			left++;
		} else {
			left++;
		}
	}
	engine_get_stats(big, &st);
	CHECK_EQ(st.live_orders, left);
	for (uint32_t i = 1; i <= MANY; i += 3) {
		CHECK_EQ(cancel(big, d, MANY_ID(i)), 0);
		check_rejected(&cd, REJ_UNKNOWN_ORDER, MANY_ID(i));
	}
	CHECK_DRAINED(&cd);
	capture_reset(&cd);

	/* Best price first (i % 100 == 0 first), oldest first within it. */
	CHECK_EQ(new_order(big, e, 0, SIDE_SELL, ORD_MARKET, TIF_IOC, 0,
			   QTY_MAX, 1), ENGINE_JOURNAL);
	next_msg(&ce, MSG_ACCEPTED);
	for (uint32_t r = 0; r < 100; r++) {
		uint32_t first = r ? r : 100;

		for (uint32_t i = first; i <= MANY; i += 100) {
			if (i % 3 == 0)
				continue;
			fills++;
			check_exec(&ce, 1, oid(0, fills), 1000 - r, 1,
				   QTY_MAX - fills, SIDE_SELL, LIQ_REMOVED);
			check_exec(&cd, i % 3 == 1 ? MANY_NEW(i) : MANY_ID(i),
				   oid(0, fills), 1000 - r, 1, 0, SIDE_BUY,
				   LIQ_ADDED);
		}
	}
	CHECK_EQ(fills, left);
	check_canceled(&ce, 1, QTY_MAX - left, CXL_IOC_REMAINDER);
	CHECK_DRAINED(&cd);
	CHECK_DRAINED(&ce);
	engine_get_stats(big, &st);
	CHECK_EQ(st.live_orders, 0);
	CHECK_EQ(st.trades, left);
	engine_session_destroy(big, d);
	engine_session_destroy(big, e);
	engine_destroy(big);
	capture_free(&cd);
	capture_free(&ce);
}

/* Orders outlive their session; fills then go to nobody. */
static void test_orders_outlive_session(void)
{
	struct engine_stats before, st;

	CHECK_EQ(limit(eng, a, 6, SIDE_SELL, 30, 5, 3000), ENGINE_JOURNAL);
	CHECK_EQ(subscribe(eng, a, 6), 0);
	capture_reset(&ca);
	engine_get_stats(eng, &before);
	engine_session_destroy(eng, a);
	a = NULL;
	engine_get_stats(eng, &st);
	CHECK_EQ(st.live_orders, before.live_orders);
	CHECK_EQ(limit(eng, b, 6, SIDE_BUY, 30, 2, 3001), ENGINE_JOURNAL);
	check_accepted(&cb, 3001, oid(6, 2));
	check_exec(&cb, 3001, oid(6, 1), 30, 2, 0, SIDE_BUY, LIQ_REMOVED);
	CHECK_EQ(ca.len, 0);	/* the closed session got nothing */
	engine_get_stats(eng, &st);
	CHECK_EQ(st.live_orders, before.live_orders);
	CHECK_EQ(st.trades, before.trades + 1);
	/* The rest (3) still trades, then the level is gone. */
	CHECK_EQ(limit(eng, b, 6, SIDE_BUY, 30, 3, 3002), ENGINE_JOURNAL);
	check_accepted(&cb, 3002, oid(6, 3));
	check_exec(&cb, 3002, oid(6, 2), 30, 3, 0, SIDE_BUY, LIQ_REMOVED);
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
	test_increasing_ids();
	test_capacity_keeps_id();
	test_lookup_among_many();
	test_orders_outlive_session();

	engine_session_destroy(eng, b);
	engine_session_destroy(eng, s);
	engine_destroy(eng);
	capture_free(&ca);
	capture_free(&cb);
	capture_free(&cs);
	return finish("book_match");
}
