/*
 * book.c - price levels, FIFO queues and the order pool (see book.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "book.h"

/* Orders per pool chunk: big enough that growth is rare, 4-5 MiB each. */
#define POOL_CHUNK_ORDERS	65536u

void order_pool_init(struct order_pool *pool, uint32_t max_orders)
{
	memset(pool, 0, sizeof(*pool));
	pool->max_orders = max_orders;
}

void order_pool_free(struct order_pool *pool)
{
	for (uint32_t i = 0; i < pool->nr_chunks; i++)
		free(pool->chunks[i]);
	free(pool->chunks);
	memset(pool, 0, sizeof(*pool));
}

static int order_pool_grow(struct order_pool *pool)
{
	struct order **chunks;
	struct order *chunk;

	chunks = realloc(pool->chunks,
			 (pool->nr_chunks + 1) * sizeof(*pool->chunks));
	if (!chunks)
		return -ENOMEM;
	pool->chunks = chunks;
	chunk = malloc(POOL_CHUNK_ORDERS * sizeof(*chunk));
	if (!chunk)
		return -ENOMEM;
	pool->chunks[pool->nr_chunks++] = chunk;
	/* Thread the chunk onto the free list in address order. */
	for (uint32_t i = 0; i < POOL_CHUNK_ORDERS; i++)
		chunk[i].next = i + 1 < POOL_CHUNK_ORDERS ? &chunk[i + 1]
							  : pool->free_list;
	pool->free_list = chunk;
	return 0;
}

struct order *order_pool_get(struct order_pool *pool)
{
	struct order *order;

	if (pool->nr_live >= pool->max_orders)
		return NULL;
	if (!pool->free_list && order_pool_grow(pool))
		return NULL;
	order = pool->free_list;
	pool->free_list = order->next;
	pool->nr_live++;
	memset(order, 0, sizeof(*order));
	return order;
}

void order_pool_put(struct order_pool *pool, struct order *order)
{
	order->next = pool->free_list;
	pool->free_list = order;
	pool->nr_live--;
}

void book_init(struct book *book, uint32_t symbol)
{
	memset(book, 0, sizeof(*book));
	book->symbol = symbol;
}

void book_free(struct book *book)
{
	free(book->bids.levels);
	free(book->asks.levels);
	free(book->subs);
}

/*
 * Levels are sorted by ascending key, where the key grows towards the best
 * price: the price itself for bids, its negation for asks.
 */
static inline int64_t level_key(uint8_t side, int64_t price)
{
	return side == 'B' ? price : -price;
}

/* Index of the level at price, or of where it would be inserted. */
static uint32_t level_search(struct book_side *bs, uint8_t side,
			     int64_t price, bool *found)
{
	int64_t key = level_key(side, price);
	uint32_t lo = 0, hi = bs->nr_levels;

	/* Most traffic is at the top: check the best level first. */
	if (hi && level_key(side, bs->levels[hi - 1].price) <= key) {
		*found = bs->levels[hi - 1].price == price;
		return *found ? hi - 1 : hi;
	}
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (level_key(side, bs->levels[mid].price) < key)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = lo < bs->nr_levels && bs->levels[lo].price == price;
	return lo;
}

struct level *book_find_level(struct book_side *bs, uint8_t side,
			      int64_t price)
{
	bool found;
	uint32_t i = level_search(bs, side, price, &found);

	return found ? &bs->levels[i] : NULL;
}

int book_insert(struct book *book, struct order *order)
{
	struct book_side *bs = book_side_of(book, order->side);
	struct level *lvl;
	bool found;
	uint32_t i = level_search(bs, order->side, order->price, &found);

	if (!found) {
		if (bs->nr_levels == bs->cap_levels) {
			uint32_t cap = bs->cap_levels ? bs->cap_levels * 2 : 16;
			struct level *levels;

			levels = realloc(bs->levels, cap * sizeof(*levels));
			if (!levels)
				return -ENOMEM;
			bs->levels = levels;
			bs->cap_levels = cap;
		}
		memmove(&bs->levels[i + 1], &bs->levels[i],
			(bs->nr_levels - i) * sizeof(*bs->levels));
		bs->nr_levels++;
		lvl = &bs->levels[i];
		memset(lvl, 0, sizeof(*lvl));
		lvl->price = order->price;
	} else {
		lvl = &bs->levels[i];
	}
	order->next = NULL;
	order->prev = lvl->tail;
	if (lvl->tail)
		lvl->tail->next = order;
	else
		lvl->head = order;
	lvl->tail = order;
	lvl->count++;
	lvl->qty += order->qty;
	return 0;
}

void book_remove(struct book *book, struct order *order)
{
	struct book_side *bs = book_side_of(book, order->side);
	bool found;
	uint32_t i = level_search(bs, order->side, order->price, &found);
	struct level *lvl = &bs->levels[i];

	if (order->prev)
		order->prev->next = order->next;
	else
		lvl->head = order->next;
	if (order->next)
		order->next->prev = order->prev;
	else
		lvl->tail = order->prev;
	order->prev = order->next = NULL;
	lvl->qty -= order->qty;
	if (--lvl->count == 0) {
		memmove(&bs->levels[i], &bs->levels[i + 1],
			(bs->nr_levels - i - 1) * sizeof(*bs->levels));
		bs->nr_levels--;
	}
}

void book_reduce(struct book *book, struct order *order, uint32_t new_qty)
{
	struct book_side *bs = book_side_of(book, order->side);
	struct level *lvl = book_find_level(bs, order->side, order->price);

	lvl->qty -= order->qty - new_qty;
	order->qty = new_qty;
}

void book_top(struct book *book, struct top_of_book *top)
{
	struct level *bid = book_best(&book->bids);
	struct level *ask = book_best(&book->asks);

	top->bid_price = bid ? bid->price : 0;
	top->bid_qty = bid ? bid->qty : 0;
	top->ask_price = ask ? ask->price : 0;
	top->ask_qty = ask ? ask->qty : 0;
}
