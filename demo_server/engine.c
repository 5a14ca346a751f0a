/*
 * engine.c - sessions, order validation, price-time matching, market data.
 *
 * The outbound order for one inbound message is fixed (PROTOCOL.md):
 * Accepted/Rejected/Replaced/Canceled first, then per match Executed to the
 * aggressor, Executed to the resting order, Trade to the subscribers, then a
 * Canceled for an IOC/market remainder, then at most one TopOfBook.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "book.h"
#include "engine.h"
#include "protocol.h"

/* ===== live orders: cl_ord_id -> resting order ===== */

/*
 * Open addressing with linear probing over one array of (id, order) pairs,
 * so a lookup usually reads one cache line of the table and then the order.
 * Id 0 marks an empty slot (0 is never a valid cl_ord_id). The table holds
 * only the session's resting orders: it starts empty (16 slots on the first
 * one) and doubles above a load of 1/2, so it is sized to the most orders
 * the session has had resting at once. It never shrinks: a session that
 * returns to that level then allocates nothing.
 */
struct live_slot {
	uint64_t id;
	struct order *order;
};

struct live_map {
	struct live_slot *slots;
	uint32_t cap;		/* power of two, or 0 */
	uint32_t count;
	uint8_t shift;		/* 64 - log2(cap) */
};

#define LIVE_MIN_CAP	16u

static inline uint32_t live_slot_of(const struct live_map *map, uint64_t id)
{
	/*
	 * Fibonacci hashing: one multiply, the top bits. Consecutive ids
	 * spread evenly, and ids with a common stride (a client packing a
	 * slot number into the low bits, say) do not pile up in one chain.
	 */
	return (uint32_t)((id * 0x9e3779b97f4a7c15ULL) >> map->shift);
}

static struct order *live_get(const struct live_map *map, uint64_t id)
{
	uint32_t mask = map->cap - 1;

	if (!map->count)
		return NULL;
	for (uint32_t i = live_slot_of(map, id);; i = (i + 1) & mask) {
		if (map->slots[i].id == id)
			return map->slots[i].order;
		if (!map->slots[i].id)
			return NULL;
	}
}

static void live_place(struct live_map *map, uint64_t id, struct order *order)
{
	uint32_t mask = map->cap - 1, i = live_slot_of(map, id);

	while (map->slots[i].id)
		i = (i + 1) & mask;
	map->slots[i].id = id;
	map->slots[i].order = order;
	map->count++;
}

/* live_grow - rehash into cap slots; 0 or -ENOMEM (map unchanged). */
static int live_grow(struct live_map *map, uint32_t cap)
{
	struct live_map grown = {
		.cap = cap,
		.shift = (uint8_t)(64 - __builtin_ctz(cap)),
	};

	grown.slots = calloc(cap, sizeof(*grown.slots));
	if (!grown.slots)
		return -ENOMEM;
	for (uint32_t i = 0; i < map->cap; i++)
		if (map->slots[i].id)
			live_place(&grown, map->slots[i].id,
				   map->slots[i].order);
	free(map->slots);
	*map = grown;
	return 0;
}

/* live_reserve - room for one more live_place(); 0 or -ENOMEM. */
static int live_reserve(struct live_map *map)
{
	if ((uint64_t)(map->count + 1) * 2 <= map->cap)
		return 0;
	if (map->cap > UINT32_MAX / 2)
		return -ENOMEM;
	return live_grow(map, map->cap ? map->cap * 2 : LIVE_MIN_CAP);
}

/* live_del - remove id (present); backward shift leaves no tombstones. */
static void live_del(struct live_map *map, uint64_t id)
{
	uint32_t mask = map->cap - 1, i, j;

	for (i = live_slot_of(map, id); map->slots[i].id != id;
	     i = (i + 1) & mask)
		;
	for (j = (i + 1) & mask; map->slots[j].id; j = (j + 1) & mask) {
		uint32_t home = live_slot_of(map, map->slots[j].id);

		/* Move j into the hole at i unless its home lies in (i, j]. */
		if (((j - home) & mask) >= ((j - i) & mask)) {
			map->slots[i] = map->slots[j];
			i = j;
		}
	}
	map->slots[i].id = 0;
	map->slots[i].order = NULL;
	map->count--;
}

/* ===== sessions ===== */

struct session {
	void *owner;		/* output goes to it; NULL discards */
	uint32_t no;		/* 0 until logged in */
	/*
	 * Client order ids must strictly increase within a session (as
	 * OUCH's UserRefNum): one compare against the last accepted id
	 * replaces any record of used ids (see PROTOCOL.md, "Identifiers").
	 */
	uint64_t last_id;
	struct live_map live;	/* resting orders by current cl_ord_id */
	uint32_t *subs;		/* subscribed symbols */
	uint32_t nr_subs;
	uint32_t cap_subs;
};

struct engine {
	struct engine_config cfg;
	engine_send_fn send;
	struct book **books;	/* indexed by symbol, allocated lazily */
	struct order_pool pool;
	uint32_t next_session_no;
	struct engine_stats stats;
};

/* An id is fresh when it is above every id the session has accepted. */
static inline bool id_is_fresh(const struct session *sess, uint64_t id)
{
	return id > sess->last_id;
}

struct session *engine_session_create(struct engine *eng, void *owner)
{
	struct session *sess = calloc(1, sizeof(*sess));

	(void)eng;
	if (sess)
		sess->owner = owner;
	return sess;
}

static void book_unsubscribe(struct book *book, struct session *sess)
{
	for (uint32_t i = 0; i < book->nr_subs; i++) {
		if (book->subs[i] != sess)
			continue;
		/* Keep the fan-out order stable: it is part of the output. */
		memmove(&book->subs[i], &book->subs[i + 1],
			(book->nr_subs - i - 1) * sizeof(*book->subs));
		book->nr_subs--;
		return;
	}
}

void engine_session_destroy(struct engine *eng, struct session *sess)
{
	if (!sess)
		return;
	for (uint32_t i = 0; i < sess->live.cap; i++)
		if (sess->live.slots[i].id)
			sess->live.slots[i].order->sess = NULL;
	for (uint32_t i = 0; i < sess->nr_subs; i++)
		book_unsubscribe(eng->books[sess->subs[i]], sess);
	free(sess->live.slots);
	free(sess->subs);
	free(sess);
}

uint32_t engine_session_no(const struct session *sess)
{
	return sess->no;
}

/* ===== engine ===== */

struct engine *engine_create(const struct engine_config *cfg,
			     engine_send_fn send)
{
	struct engine *eng;

	if (!cfg->symbols || !cfg->max_orders) {
		errno = EINVAL;
		return NULL;
	}
	eng = calloc(1, sizeof(*eng));
	if (!eng)
		return NULL;
	eng->cfg = *cfg;
	eng->send = send;
	eng->next_session_no = 1;
	eng->books = calloc(cfg->symbols, sizeof(*eng->books));
	if (!eng->books) {
		free(eng);
		return NULL;
	}
	order_pool_init(&eng->pool, cfg->max_orders);
	return eng;
}

void engine_destroy(struct engine *eng)
{
	if (!eng)
		return;
	for (uint32_t i = 0; i < eng->cfg.symbols; i++) {
		if (!eng->books[i])
			continue;
		book_free(eng->books[i]);
		free(eng->books[i]);
	}
	free(eng->books);
	order_pool_free(&eng->pool);
	free(eng);
}

void engine_get_stats(const struct engine *eng, struct engine_stats *st)
{
	*st = eng->stats;
	st->live_orders = eng->pool.nr_live;
}

static struct book *get_book(struct engine *eng, uint32_t symbol)
{
	struct book *book = eng->books[symbol];

	if (!book) {
		book = malloc(sizeof(*book));
		if (!book)
			return NULL;
		book_init(book, symbol);
		eng->books[symbol] = book;
	}
	return book;
}

/* Room for one more level on a side, so a later insert cannot fail. */
static int book_reserve_level(struct book_side *bs)
{
	struct level *levels;
	uint32_t cap;

	if (bs->nr_levels < bs->cap_levels)
		return 0;
	cap = bs->cap_levels ? bs->cap_levels * 2 : 16;
	levels = realloc(bs->levels, cap * sizeof(*levels));
	if (!levels)
		return -ENOMEM;
	bs->levels = levels;
	bs->cap_levels = cap;
	return 0;
}

/* ===== output ===== */

static inline void send_to(struct engine *eng, struct session *sess,
			   void *msg, uint8_t type)
{
	struct msg_hdr *h = msg;

	h->len = proto_msg_size(type);
	h->type = type;
	h->flags = 0;
	if (sess && sess->owner)
		eng->send(sess->owner, msg, h->len);
}

static void send_reject(struct engine *eng, struct session *sess,
			uint16_t reason, uint8_t ref_type, uint64_t cl_ord_id)
{
	struct msg_rejected m = {
		.reason = reason,
		.ref_type = ref_type,
		.cl_ord_id = cl_ord_id,
	};

	send_to(eng, sess, &m, MSG_REJECTED);
}

static void fill_top(struct msg_top_of_book *m, uint32_t symbol,
		     const struct top_of_book *top)
{
	memset(m, 0, sizeof(*m));
	m->symbol = symbol;
	m->bid_price = top->bid_price;
	m->bid_qty = top->bid_qty > UINT32_MAX ? UINT32_MAX : top->bid_qty;
	m->ask_price = top->ask_price;
	m->ask_qty = top->ask_qty > UINT32_MAX ? UINT32_MAX : top->ask_qty;
}

/* Send one TopOfBook to the subscribers if the top changed. */
static void publish_top(struct engine *eng, struct book *book)
{
	struct top_of_book top;
	struct msg_top_of_book m;

	book_top(book, &top);
	if (!memcmp(&top, &book->published, sizeof(top)))
		return;
	book->published = top;
	fill_top(&m, book->symbol, &top);
	for (uint32_t i = 0; i < book->nr_subs; i++)
		send_to(eng, book->subs[i], &m, MSG_TOP_OF_BOOK);
}

static void send_executed(struct engine *eng, struct session *sess,
			  uint32_t symbol, uint64_t cl_ord_id,
			  uint64_t match_id, int64_t price, uint32_t qty,
			  uint32_t leaves, uint8_t side, uint8_t liquidity)
{
	struct msg_executed m = {
		.symbol = symbol,
		.cl_ord_id = cl_ord_id,
		.match_id = match_id,
		.price = price,
		.qty = qty,
		.leaves_qty = leaves,
		.side = side,
		.liquidity = liquidity,
	};

	send_to(eng, sess, &m, MSG_EXECUTED);
}

/* ===== matching ===== */

struct aggressor {
	struct session *sess;
	uint64_t cl_ord_id;
	uint8_t side;
	bool market;
	int64_t price;		/* limit; unused for market */
	uint32_t qty;		/* open, decremented by fills */
};

static void retire_order(struct engine *eng, struct order *order)
{
	if (order->sess)
		live_del(&order->sess->live, order->cl_ord_id);
	order_pool_put(&eng->pool, order);
}

/* Match an incoming order against the opposite side, best price first. */
static void match(struct engine *eng, struct book *book, struct aggressor *a)
{
	struct book_side *opp = book_side_of(book,
					     a->side == SIDE_BUY ? SIDE_SELL
								 : SIDE_BUY);
	struct level *lvl;

	while (a->qty && (lvl = book_best(opp))) {
		struct order *rest = lvl->head;
		uint32_t fill;
		uint64_t match_id;
		struct msg_trade t;

		if (!a->market && (a->side == SIDE_BUY ? lvl->price > a->price
						       : lvl->price < a->price))
			break;
		fill = a->qty < rest->qty ? a->qty : rest->qty;
		a->qty -= fill;
		match_id = (uint64_t)book->symbol << 32 | ++book->match_seq;
		eng->stats.trades++;

		send_executed(eng, a->sess, book->symbol, a->cl_ord_id,
			      match_id, lvl->price, fill, a->qty, a->side,
			      LIQ_REMOVED);
		send_executed(eng, rest->sess, book->symbol, rest->cl_ord_id,
			      match_id, lvl->price, fill, rest->qty - fill,
			      rest->side, LIQ_ADDED);
		memset(&t, 0, sizeof(t));
		t.symbol = book->symbol;
		t.match_id = match_id;
		t.price = lvl->price;
		t.qty = fill;
		t.aggressor_side = a->side;
		for (uint32_t i = 0; i < book->nr_subs; i++)
			send_to(eng, book->subs[i], &t, MSG_TRADE);

		if (fill == rest->qty) {
			book_remove(book, rest);	/* may drop lvl */
			retire_order(eng, rest);
		} else {
			rest->qty -= fill;
			lvl->qty -= fill;
		}
	}
}

/* ===== handlers ===== */

static int handle_new_order(struct engine *eng, struct session *sess,
			    const struct msg_new_order *m)
{
	struct aggressor a = {
		.sess = sess,
		.cl_ord_id = m->cl_ord_id,
		.side = m->side,
		.market = m->ord_type == ORD_MARKET,
		.price = m->price,
		.qty = m->qty,
	};
	bool rests = m->ord_type == ORD_LIMIT && m->tif == TIF_GTC;
	struct order *order = NULL;
	struct msg_accepted acc;
	struct book *book;
	uint16_t reason = 0;

	if (m->symbol >= eng->cfg.symbols)
		reason = REJ_UNKNOWN_SYMBOL;
	else if (m->side != SIDE_BUY && m->side != SIDE_SELL)
		reason = REJ_BAD_SIDE;
	else if ((m->ord_type != ORD_LIMIT && m->ord_type != ORD_MARKET) ||
		 (m->tif != TIF_GTC && m->tif != TIF_IOC))
		reason = REJ_BAD_TYPE;
	else if (a.market ? m->price != 0
			  : m->price < PRICE_MIN || m->price > PRICE_MAX)
		reason = REJ_BAD_PRICE;
	else if (m->qty < QTY_MIN || m->qty > QTY_MAX)
		reason = REJ_BAD_QTY;
	else if (!id_is_fresh(sess, m->cl_ord_id))
		reason = REJ_DUPLICATE_ID;
	if (reason) {
		send_reject(eng, sess, reason, MSG_NEW_ORDER, m->cl_ord_id);
		return 0;
	}

	/* Take every resource first: once accepted, nothing may fail. */
	book = get_book(eng, m->symbol);
	if (!book || book_reserve_level(book_side_of(book, m->side)) ||
	    (rests && (live_reserve(&sess->live) ||
		       !(order = order_pool_get(&eng->pool))))) {
		send_reject(eng, sess, REJ_CAPACITY, MSG_NEW_ORDER,
			    m->cl_ord_id);
		return 0;
	}
	sess->last_id = m->cl_ord_id;

	memset(&acc, 0, sizeof(acc));
	acc.symbol = m->symbol;
	acc.cl_ord_id = m->cl_ord_id;
	acc.order_id = (uint64_t)m->symbol << 32 | ++book->order_seq;
	acc.price = m->price;
	acc.qty = m->qty;
	acc.side = m->side;
	acc.ord_type = m->ord_type;
	acc.tif = m->tif;
	send_to(eng, sess, &acc, MSG_ACCEPTED);

	match(eng, book, &a);

	if (a.qty && rests) {
		order->order_id = acc.order_id;
		order->cl_ord_id = m->cl_ord_id;
		order->price = m->price;
		order->sess = sess;
		order->symbol = m->symbol;
		order->qty = a.qty;
		order->side = m->side;
		book_insert(book, order);	/* reserved: cannot fail */
		live_place(&sess->live, m->cl_ord_id, order);
	} else {
		if (order)
			order_pool_put(&eng->pool, order);
		if (a.qty) {
			struct msg_canceled c = {
				.canceled_qty = a.qty,
				.cl_ord_id = m->cl_ord_id,
				.reason = CXL_IOC_REMAINDER,
			};

			send_to(eng, sess, &c, MSG_CANCELED);
		}
	}
	publish_top(eng, book);
	return ENGINE_JOURNAL;
}

static int handle_cancel(struct engine *eng, struct session *sess,
			 const struct msg_cancel *m)
{
	struct order *order = live_get(&sess->live, m->cl_ord_id);
	struct book *book;
	struct msg_canceled c;

	if (!order) {
		send_reject(eng, sess, REJ_UNKNOWN_ORDER, MSG_CANCEL,
			    m->cl_ord_id);
		return 0;
	}
	book = eng->books[order->symbol];
	memset(&c, 0, sizeof(c));
	c.canceled_qty = order->qty;
	c.cl_ord_id = order->cl_ord_id;
	c.reason = CXL_USER;
	book_remove(book, order);
	retire_order(eng, order);
	send_to(eng, sess, &c, MSG_CANCELED);
	publish_top(eng, book);
	return ENGINE_JOURNAL;
}

static int handle_replace(struct engine *eng, struct session *sess,
			  const struct msg_replace *m)
{
	struct order *order = live_get(&sess->live, m->orig_cl_ord_id);
	struct msg_replaced r;
	struct book *book;
	uint16_t reason = 0;
	bool keeps_priority;

	if (!order)
		reason = REJ_UNKNOWN_ORDER;
	else if (m->new_price < PRICE_MIN || m->new_price > PRICE_MAX)
		reason = REJ_BAD_PRICE;
	else if (m->new_qty < QTY_MIN || m->new_qty > QTY_MAX)
		reason = REJ_BAD_QTY;
	else if (!id_is_fresh(sess, m->new_cl_ord_id))
		reason = REJ_DUPLICATE_ID;
	if (reason) {
		send_reject(eng, sess, reason, MSG_REPLACE, m->new_cl_ord_id);
		return 0;
	}
	book = eng->books[order->symbol];
	if (book_reserve_level(book_side_of(book, order->side))) {
		send_reject(eng, sess, REJ_CAPACITY, MSG_REPLACE,
			    m->new_cl_ord_id);
		return 0;
	}
	sess->last_id = m->new_cl_ord_id;

	/* Re-key the live order: deleting first leaves room for the put. */
	live_del(&sess->live, order->cl_ord_id);
	order->cl_ord_id = m->new_cl_ord_id;
	live_place(&sess->live, order->cl_ord_id, order);

	keeps_priority = m->new_price == order->price &&
			 m->new_qty <= order->qty;
	if (keeps_priority) {
		book_reduce(book, order, m->new_qty);
	} else {
		book_remove(book, order);
		order->order_id = (uint64_t)order->symbol << 32 |
				  ++book->order_seq;
		order->price = m->new_price;
		order->qty = m->new_qty;
	}

	memset(&r, 0, sizeof(r));
	r.qty = m->new_qty;
	r.orig_cl_ord_id = m->orig_cl_ord_id;
	r.new_cl_ord_id = m->new_cl_ord_id;
	r.order_id = order->order_id;
	r.price = m->new_price;
	send_to(eng, sess, &r, MSG_REPLACED);

	if (!keeps_priority) {
		/* A new price may cross: the order aggresses, then rests. */
		struct aggressor a = {
			.sess = sess,
			.cl_ord_id = order->cl_ord_id,
			.side = order->side,
			.price = order->price,
			.qty = order->qty,
		};

		match(eng, book, &a);
		if (a.qty) {
			order->qty = a.qty;
			book_insert(book, order);	/* reserved */
		} else {
			retire_order(eng, order);
		}
	}
	publish_top(eng, book);
	return ENGINE_JOURNAL;
}

static int handle_subscribe(struct engine *eng, struct session *sess,
			    const struct msg_subscribe *m)
{
	struct top_of_book top;
	struct msg_top_of_book q;
	struct book *book;
	bool already = false;

	if (m->symbol >= eng->cfg.symbols) {
		send_reject(eng, sess, REJ_UNKNOWN_SYMBOL, MSG_SUBSCRIBE, 0);
		return 0;
	}
	book = get_book(eng, m->symbol);
	if (!book) {
		send_reject(eng, sess, REJ_CAPACITY, MSG_SUBSCRIBE, 0);
		return 0;
	}
	for (uint32_t i = 0; i < sess->nr_subs && !already; i++)
		already = sess->subs[i] == m->symbol;
	if (!already) {
		if (sess->nr_subs == sess->cap_subs) {
			uint32_t cap = sess->cap_subs ? sess->cap_subs * 2 : 4;
			uint32_t *subs = realloc(sess->subs,
						 cap * sizeof(*subs));

			if (!subs)
				goto out_capacity;
			sess->subs = subs;
			sess->cap_subs = cap;
		}
		if (book->nr_subs == book->cap_subs) {
			uint32_t cap = book->cap_subs ? book->cap_subs * 2 : 4;
			struct session **subs = realloc(book->subs,
							cap * sizeof(*subs));

			if (!subs)
				goto out_capacity;
			book->subs = subs;
			book->cap_subs = cap;
		}
		sess->subs[sess->nr_subs++] = m->symbol;
		book->subs[book->nr_subs++] = sess;
	}
	/* The snapshot doubles as the acknowledgement. */
	book_top(book, &top);
	fill_top(&q, m->symbol, &top);
	send_to(eng, sess, &q, MSG_TOP_OF_BOOK);
	return 0;

out_capacity:
	send_reject(eng, sess, REJ_CAPACITY, MSG_SUBSCRIBE, 0);
	return 0;
}

static int handle_hello(struct engine *eng, struct session *sess,
			const struct msg_hello *m)
{
	struct msg_hello_ack ack = { .version = PROTO_VERSION };

	if (m->version != PROTO_VERSION) {
		send_reject(eng, sess, REJ_MALFORMED, MSG_HELLO, 0);
		return ENGINE_CLOSE;
	}
	if (sess->no) {
		send_reject(eng, sess, REJ_BAD_TYPE, MSG_HELLO, 0);
		return 0;
	}
	sess->no = eng->next_session_no++;
	eng->stats.sessions++;
	send_to(eng, sess, &ack, MSG_HELLO_ACK);
	return ENGINE_JOURNAL;
}

/* The client's id in a message, echoed by a Rejected. */
static uint64_t ref_cl_ord_id(uint8_t type, const void *frame)
{
	const union {
		struct msg_new_order o;
		struct msg_cancel x;
		struct msg_replace u;
	} *m = frame;

	switch (type) {
	case MSG_NEW_ORDER:	return m->o.cl_ord_id;
	case MSG_CANCEL:	return m->x.cl_ord_id;
	case MSG_REPLACE:	return m->u.new_cl_ord_id;
	}
	return 0;
}

int engine_handle(struct engine *eng, struct session *sess,
		  const void *frame, unsigned len)
{
	union {
		struct msg_hdr h;
		struct msg_hello hello;
		struct msg_new_order order;
		struct msg_cancel cancel;
		struct msg_replace replace;
		struct msg_subscribe sub;
		unsigned char bytes[MSG_MAX_SIZE];
	} m;

	if (len < sizeof(m.h) || len > sizeof(m))
		return ENGINE_CLOSE;
	memcpy(&m, frame, len);		/* frames may be unaligned */
	if (!proto_inbound_type(m.h.type) ||
	    proto_msg_size(m.h.type) != len) {
		send_reject(eng, sess, REJ_MALFORMED, m.h.type, 0);
		return ENGINE_CLOSE;
	}
	if (!sess->no && m.h.type != MSG_HELLO) {
		send_reject(eng, sess, REJ_NOT_LOGGED_IN, m.h.type,
			    ref_cl_ord_id(m.h.type, &m));
		return 0;
	}
	switch (m.h.type) {
	case MSG_HELLO:		return handle_hello(eng, sess, &m.hello);
	case MSG_NEW_ORDER:	return handle_new_order(eng, sess, &m.order);
	case MSG_CANCEL:	return handle_cancel(eng, sess, &m.cancel);
	case MSG_REPLACE:	return handle_replace(eng, sess, &m.replace);
	default:	/* MSG_SUBSCRIBE, the last inbound type */
		return handle_subscribe(eng, sess, &m.sub);
	}
}
