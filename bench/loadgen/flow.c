/*
 * flow.c - the order flow: what each trader sends next, and the books it
 * keeps to check the answers (requests awaiting a response, its orders).
 *
 * Every decision comes from the connection's own PRNG and is taken while
 * handling a message of its own stream, which keeps --deterministic runs
 * reproducible.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "loadgen.h"

/* ===== requests awaiting their direct response ===== */

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

struct inflight *fifo_push(struct conn *c, uint8_t kind,
				  uint64_t sent_ns)
{
	struct inflight *e;

	if (c->fifo_count == c->fifo_cap)
		fifo_grow(c);
	e = &c->fifo[(c->fifo_head + c->fifo_count) % c->fifo_cap];
	memset(e, 0, sizeof(*e));
	e->kind = kind;
	e->sent_ns = sent_ns;
	c->unflushed++;
	c->fifo_count++;
	c->w->fifo_total++;
	return e;
}

/* Pops the head, recording its latency when it is a measured request. */
void fifo_pop(struct conn *c)
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

struct order *order_find(struct conn *c, uint64_t id)
{
	uint32_t slot = (uint32_t)(id & SLOT_MASK);
	struct order *o;

	if (!id || slot >= c->orders_hw)
		return NULL;
	o = &c->orders[slot];
	return o->state != OS_FREE && o->cl_ord_id == id ? o : NULL;
}

void idle_add(struct conn *c, struct order *o)
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
void order_release(struct conn *c, struct order *o)
{
	if (o->state != OS_DONE || o->pending)
		return;
	idle_remove(c, o);
	o->state = OS_FREE;
	o->link = c->free_head;
	c->free_head = order_slot(c, o);
	c->orders_used--;
}

void order_finish(struct conn *c, struct order *o)
{
	idle_remove(c, o);
	o->state = OS_DONE;
	order_release(c, o);
}

/* ===== the order flow ===== */

bool conn_may_send(const struct conn *c)
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
void send_request(struct conn *c, uint64_t sent_ns)
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
void send_due(struct conn *c)
{
	while (c->sent < c->scheduled && !fifo_full(c) && conn_may_send(c))
		send_request(c, intended_ns(c, c->sent));
}

/*
 * conn_maybe_finish - once a trader will send no more and every direct
 * response is in, cancel what still rests; done when no order is left.
 * Called at message granularity so the cleanup is deterministic too.
 */
void conn_maybe_finish(struct conn *c)
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
