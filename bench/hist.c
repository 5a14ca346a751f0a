/*
 * hist.c - log-linear latency histogram (see hist.h for the error bound).
 */
#include <string.h>

#include "hist.h"

void hist_init(struct hist *h)
{
	memset(h, 0, sizeof(*h));
	h->min = UINT64_MAX;
}

void hist_merge(struct hist *dst, const struct hist *src)
{
	unsigned i;

	if (!src->count)
		return;
	for (i = 0; i < HIST_BUCKETS; i++)
		dst->buckets[i] += src->buckets[i];
	dst->count += src->count;
	dst->sum += src->sum;
	if (src->min < dst->min)
		dst->min = src->min;
	if (src->max > dst->max)
		dst->max = src->max;
}

/* The midpoint of bucket @index: the value it reports. */
static uint64_t bucket_midpoint(unsigned index)
{
	unsigned shift;
	uint64_t low;

	if (index < HIST_SUB_COUNT)
		return index;
	shift = index / HIST_SUB_COUNT - 1;
	low = (uint64_t)(HIST_SUB_COUNT + index % HIST_SUB_COUNT) << shift;
	/* Width is 1 << shift; the midpoint of [low, low + width - 1]. */
	return low + (((uint64_t)1 << shift) - 1) / 2;
}

uint64_t hist_percentile(const struct hist *h, double pct)
{
	uint64_t rank, seen = 0, value;
	double exact_rank;
	unsigned i;

	if (!h->count)
		return 0;
	if (pct <= 0)
		return h->min;
	if (pct >= 100)
		return h->max;
	exact_rank = pct / 100.0 * (double)h->count;
	rank = (uint64_t)exact_rank;
	/* ceil, tolerant of 99.9 * 1000 landing on 99899.99999 */
	if ((double)rank < exact_rank - 1e-9 * (double)h->count)
		rank++;
	if (rank < 1)
		rank = 1;
	for (i = 0; i < HIST_BUCKETS; i++) {
		seen += h->buckets[i];
		if (seen >= rank)
			break;
	}
	value = bucket_midpoint(i < HIST_BUCKETS ? i : HIST_BUCKETS - 1);
	if (value < h->min)
		value = h->min;
	if (value > h->max)
		value = h->max;
	return value;
}

double hist_mean(const struct hist *h)
{
	return h->count ? h->sum / (double)h->count : 0;
}
