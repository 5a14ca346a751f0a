/*
 * verify.c - every response checked against what was sent: framing, the
 * type and order of each direct response, one terminal outcome per order,
 * fill arithmetic, market data, and the run-wide totals.
 */
#include <inttypes.h>
#include <string.h>

#include "loadgen.h"

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
				   e->id, proto_reject_name(m.reason),
				   m.reason);
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
				   "cancel", e->id, proto_reject_name(m.reason),
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
				   proto_reject_name(m.reason));
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

/*
 * conn_input - handle the frames of one read; a frame cut by the read's
 * end waits in the connection's reader for the next one.
 */
void conn_input(struct conn *c, const uint8_t *buf, size_t len)
{
	const uint8_t *frame;
	int n;

	while ((n = proto_read_frame(&c->reader, &buf, &len, PROTO_TO_CLIENT,
				     &frame)) > 0) {
		/* The reserved flags byte: a server sends 0. */
		if (frame[3]) {
			n = -1;
			break;
		}
		if (!conn_message(c, frame, frame[2], (unsigned)n))
			return;
	}
	if (n < 0) {
		struct msg_hdr hdr;

		memcpy(&hdr, frame, sizeof(hdr));
		conn_fail(c, "bad frame: type %#x len %u flags %#x", hdr.type,
			  hdr.len, hdr.flags);
	}
}

/* ===== run-wide checks ===== */

/* check_totals - what no single connection can check, once all are done. */
void check_totals(struct totals *tot)
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
