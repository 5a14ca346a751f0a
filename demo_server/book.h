/*
 * book.h - limit order book of one symbol and the order pool behind it.
 *
 * A book keeps, per side, an array of price levels sorted so that the best
 * price is the LAST element: the top of the book is touched on almost every
 * message, and popping or pushing at the end of an array is O(1). Each level
 * holds a FIFO of orders (time priority). Orders come from a pool that grows
 * in large chunks and recycles through a free list, so matching allocates
 * nothing in steady state and order pointers stay valid for their lifetime.
 *
 * book.c knows nothing of sessions or messages; engine.c does the matching.
 */
#ifndef DEMO_BOOK_H
#define DEMO_BOOK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct session;

struct order {
	uint64_t order_id;
	uint64_t cl_ord_id;
	int64_t price;
	struct session *sess;	/* NULL once its session has gone */
	struct order *prev;	/* FIFO links inside the price level; */
	struct order *next;	/* next also links the pool's free list */
	uint32_t symbol;
	uint32_t qty;		/* open quantity */
	uint8_t side;		/* SIDE_* */
};

struct level {
	int64_t price;
	uint64_t qty;		/* sum of the open quantity of its orders */
	struct order *head;	/* oldest: matched first */
	struct order *tail;
	uint32_t count;
};

struct book_side {
	struct level *levels;	/* sorted, best price last */
	uint32_t nr_levels;
	uint32_t cap_levels;
};

struct top_of_book {
	int64_t bid_price;	/* 0 when the side is empty */
	uint64_t bid_qty;
	int64_t ask_price;
	uint64_t ask_qty;
};

struct book {
	uint32_t symbol;
	uint32_t order_seq;	/* low half of the next order_id */
	uint32_t match_seq;	/* low half of the next match_id */
	struct book_side bids;
	struct book_side asks;
	struct top_of_book published;	/* last TopOfBook sent */
	struct session **subs;	/* market data subscribers */
	uint32_t nr_subs;
	uint32_t cap_subs;
};

struct order_pool {
	struct order **chunks;
	uint32_t nr_chunks;
	uint32_t max_orders;	/* hard cap: REJ_CAPACITY beyond it */
	uint32_t nr_live;
	struct order *free_list;
};

/* order_pool_init - empty pool allowing up to max_orders live orders. */
void order_pool_init(struct order_pool *pool, uint32_t max_orders);
void order_pool_free(struct order_pool *pool);
/* order_pool_get - a zeroed order, or NULL when the cap or memory is hit. */
struct order *order_pool_get(struct order_pool *pool);
void order_pool_put(struct order_pool *pool, struct order *order);

void book_init(struct book *book, uint32_t symbol);
void book_free(struct book *book);

static inline struct book_side *book_side_of(struct book *book, uint8_t side)
{
	return side == 'B' ? &book->bids : &book->asks;
}

/* book_best - the best level of a side, or NULL when the side is empty. */
static inline struct level *book_best(struct book_side *bs)
{
	return bs->nr_levels ? &bs->levels[bs->nr_levels - 1] : NULL;
}

/*
 * book_insert - append an order (price, qty, side set) at the back of its
 * price level, creating the level. Returns 0 or -ENOMEM.
 */
int book_insert(struct book *book, struct order *order);

/*
 * book_remove - unlink an order from its level, dropping the level when it
 * empties. The order itself is not freed.
 */
void book_remove(struct book *book, struct order *order);

/* book_reduce - lower an order's open quantity in place (keeps priority). */
void book_reduce(struct book *book, struct order *order, uint32_t new_qty);

/* book_top - current best prices and their aggregate quantities. */
void book_top(struct book *book, struct top_of_book *top);

/* book_find_level - the level at a price on a side, or NULL. */
struct level *book_find_level(struct book_side *bs, uint8_t side,
			      int64_t price);

#endif
