/*
 * hist.h - log-linear latency histogram with bounded relative error.
 *
 * Values (nanoseconds, or any unsigned 64-bit quantity) below 2^HIST_SUB_BITS
 * are counted exactly; above that, each power of two is split into
 * 2^HIST_SUB_BITS equal buckets, so a bucket is never wider than 1/128 of its
 * lower bound. Reporting the bucket midpoint keeps every percentile within
 * 0.4% of the exact value of the same rank. Recording is a few instructions
 * and never allocates; histograms of different threads merge by addition.
 */
#ifndef BENCH_HIST_H
#define BENCH_HIST_H

#include <stdint.h>

#define HIST_SUB_BITS	7
#define HIST_SUB_COUNT	(1u << HIST_SUB_BITS)
/* Exact buckets, then 57 octaves (shift 0..56) of HIST_SUB_COUNT buckets. */
#define HIST_BUCKETS	(HIST_SUB_COUNT * (64 - HIST_SUB_BITS + 1))

struct hist {
	uint64_t count;
	uint64_t min;
	uint64_t max;
	double sum;
	uint64_t buckets[HIST_BUCKETS];
};

/* hist_init - empty @h. */
void hist_init(struct hist *h);

/* hist_record - count one value. Thread-compatible (one writer per hist). */
static inline void hist_record(struct hist *h, uint64_t value);

/* hist_merge - add every count of @src into @dst. */
void hist_merge(struct hist *dst, const struct hist *src);

/*
 * hist_percentile - the value of rank ceil(@pct/100 * count) (1-based, at
 * least 1), i.e. the smallest recorded value v such that at least @pct
 * percent of the values are <= v, within the bucket error; clamped to the
 * exact [min, max]. Returns 0 for an empty histogram. @pct in [0, 100].
 */
uint64_t hist_percentile(const struct hist *h, double pct);

/* hist_mean - the exact mean, 0 when empty. */
double hist_mean(const struct hist *h);

/* hist_bucket_index - which bucket holds @value (exposed for the tests). */
static inline unsigned hist_bucket_index(uint64_t value)
{
	unsigned msb, shift;

	if (value < HIST_SUB_COUNT)
		return (unsigned)value;
	msb = 63 - (unsigned)__builtin_clzll(value);
	shift = msb - HIST_SUB_BITS;
	/* value >> shift is in [HIST_SUB_COUNT, 2 * HIST_SUB_COUNT). */
	return (shift + 1) * HIST_SUB_COUNT +
	       (unsigned)(value >> shift) - HIST_SUB_COUNT;
}

static inline void hist_record(struct hist *h, uint64_t value)
{
	h->buckets[hist_bucket_index(value)]++;
	h->count++;
	h->sum += (double)value;
	if (value < h->min)
		h->min = value;
	if (value > h->max)
		h->max = value;
}

#endif
