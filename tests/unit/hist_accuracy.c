/*
 * hist_accuracy - bench/hist percentiles agree with exact percentiles.
 *
 * Feeds known distributions (uniform, exponential, log-normal, a bimodal
 * latency-like mix, values sitting on bucket edges, tiny exact values and a
 * constant) into a histogram, sorts the same data, and checks that p0.1 ..
 * p100 (including p99.9 and p99.99) are within 1% of the exact value of the
 * same rank, that min/max/count/mean are exact, and that merging per-part
 * histograms gives the same answers as one histogram of everything.
 * Round trips of 5-50 us are what the latency runs measure: there every
 * percentile must be within 128 ns of the exact value, well below a
 * microsecond. Exits 0 on pass, 1 on failure.
 */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "../../bench/hist.h"

#define SAMPLES 200000

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng_next(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Uniform in (0, 1). */
static double rng_unit(void)
{
	return ((double)(rng_next() >> 11) + 0.5) / 9007199254740992.0;
}

static double rng_normal(void)
{
	return sqrt(-2 * log(rng_unit())) * cos(2 * M_PI * rng_unit());
}

enum dist { UNIFORM, EXPONENTIAL, LOGNORMAL, BIMODAL, EDGES, TINY, CONSTANT,
	    DIST_COUNT };
static const char *const dist_names[] = {
	"uniform", "exponential", "lognormal", "bimodal", "edges", "tiny",
	"constant",
};

static uint64_t draw(enum dist d)
{
	unsigned shift;
	uint64_t low;

	switch (d) {
	case UNIFORM:
		return 1 + rng_next() % 10000000;
	case EXPONENTIAL:
		return (uint64_t)(-50000.0 * log(rng_unit()));
	case LOGNORMAL:
		return (uint64_t)exp(10.0 + 1.5 * rng_normal());
	case BIMODAL:
		/* 99% fast around 20 us, 1% slow tail around 5 ms */
		if (rng_next() % 100)
			return (uint64_t)(20000 + 2000 * rng_normal() + 10000);
		return (uint64_t)(5e6 * rng_unit()) + 1000000;
	case EDGES:
		/* the first or last value of a bucket, where error peaks */
		shift = (unsigned)(rng_next() % 40);
		low = (uint64_t)(HIST_SUB_COUNT + rng_next() % HIST_SUB_COUNT)
		      << shift;
		return rng_next() & 1 ? low : low + ((uint64_t)1 << shift) - 1;
	case TINY:
		return rng_next() % 300;
	case CONSTANT:
	case DIST_COUNT:
		break;
	}
	return 123456789;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Percentiles in hundredths of a percent, so exact ranks use integers. */
static const unsigned pct_x100[] = {
	10, 100, 1000, 2500, 5000, 7500, 9000, 9900, 9990, 9999, 10000,
};

static bool check_one(const char *name, const struct hist *h,
		      const uint64_t *sorted, size_t n)
{
	bool ok = true;
	unsigned i;

	for (i = 0; i < sizeof(pct_x100) / sizeof(pct_x100[0]); i++) {
		uint64_t rank = ((uint64_t)pct_x100[i] * n + 9999) / 10000;
		uint64_t exact = sorted[(rank ? rank : 1) - 1];
		uint64_t got = hist_percentile(h, pct_x100[i] / 100.0);
		double err = exact ? fabs((double)got - (double)exact) /
				     (double)exact
				   : (double)got;

		if (err > 0.01) {
			printf("FAIL %s p%g: hist %llu exact %llu (%.3f%%)\n",
			       name, pct_x100[i] / 100.0,
			       (unsigned long long)got,
			       (unsigned long long)exact, err * 100);
			ok = false;
		}
	}
	if (h->count != n || h->min != sorted[0] || h->max != sorted[n - 1]) {
		printf("FAIL %s: count/min/max %llu/%llu/%llu, "
		       "want %zu/%llu/%llu\n",
		       name, (unsigned long long)h->count,
		       (unsigned long long)h->min, (unsigned long long)h->max,
		       n, (unsigned long long)sorted[0],
		       (unsigned long long)sorted[n - 1]);
		ok = false;
	}
	return ok;
}

static bool check_dist(enum dist d, uint64_t *data, struct hist *whole,
		       struct hist *parts)
{
	struct hist *merged = parts + 4;
	double sum = 0;
	bool ok = true;
	size_t i;

	hist_init(whole);
	for (i = 0; i < 4; i++)
		hist_init(&parts[i]);
	for (i = 0; i < SAMPLES; i++) {
		data[i] = draw(d);
		sum += (double)data[i];
		hist_record(whole, data[i]);
		hist_record(&parts[i % 4], data[i]);
	}
	hist_init(merged);
	for (i = 0; i < 4; i++)
		hist_merge(merged, &parts[i]);
	qsort(data, SAMPLES, sizeof(*data), cmp_u64);

	ok &= check_one(dist_names[d], whole, data, SAMPLES);
	for (i = 0; i < sizeof(pct_x100) / sizeof(pct_x100[0]); i++) {
		double pct = pct_x100[i] / 100.0;

		if (hist_percentile(merged, pct) !=
		    hist_percentile(whole, pct)) {
			printf("FAIL %s: merged p%g differs\n",
			       dist_names[d], pct);
			ok = false;
		}
	}
	if (fabs(hist_mean(whole) - sum / SAMPLES) > 1e-6 * sum / SAMPLES) {
		printf("FAIL %s: mean %f, want %f\n", dist_names[d],
		       hist_mean(whole), sum / SAMPLES);
		ok = false;
	}
	printf("%-12s p50 %llu p99 %llu p99.99 %llu max %llu: %s\n",
	       dist_names[d], (unsigned long long)hist_percentile(whole, 50),
	       (unsigned long long)hist_percentile(whole, 99),
	       (unsigned long long)hist_percentile(whole, 99.99),
	       (unsigned long long)whole->max, ok ? "ok" : "FAIL");
	return ok;
}

/*
 * Every value from 5 to 50 us (in ns) once: the value of rank k is known,
 * 5000 + k - 1, so each percentile's absolute error can be checked.
 */
static bool check_resolution(struct hist *h)
{
	const uint64_t lo = 5000, hi = 50000, n = hi - lo + 1;
	uint64_t v, worst = 0;
	unsigned step;

	hist_init(h);
	for (v = lo; v <= hi; v++)
		hist_record(h, v);
	for (step = 1; step < 10000; step++) {
		double pct = step / 100.0;
		uint64_t rank = (step * n + 9999) / 10000;
		uint64_t exact = lo + rank - 1;
		uint64_t got = hist_percentile(h, pct);
		uint64_t err = got > exact ? got - exact : exact - got;

		if (err > worst)
			worst = err;
	}
	printf("%-12s worst error %llu ns between 5 and 50 us: %s\n",
	       "resolution", (unsigned long long)worst,
	       worst <= 128 ? "ok" : "FAIL");
	return worst <= 128;
}

/* Bucket indexes never decrease with the value and stay in range. */
static bool check_index_monotonic(void)
{
	unsigned prev = 0, idx;
	uint64_t v;

	for (v = 0; v < 1u << 20; v++) {
		idx = hist_bucket_index(v);
		if (idx < prev || idx >= HIST_BUCKETS) {
			printf("FAIL index(%llu) = %u after %u\n",
			       (unsigned long long)v, idx, prev);
			return false;
		}
		prev = idx;
	}
	if (hist_bucket_index(UINT64_MAX) != HIST_BUCKETS - 1) {
		printf("FAIL index(UINT64_MAX) = %u\n",
		       hist_bucket_index(UINT64_MAX));
		return false;
	}
	return true;
}

int main(void)
{
	struct hist *hists = malloc(6 * sizeof(*hists));
	uint64_t *data = malloc(SAMPLES * sizeof(*data));
	struct hist empty;
	bool ok = true;
	int d;

	if (!hists || !data) {
		printf("FAIL out of memory\n");
		return 1;
	}
	for (d = 0; d < DIST_COUNT; d++)
		ok &= check_dist(d, data, &hists[0], &hists[1]);
	ok &= check_resolution(&hists[0]);
	ok &= check_index_monotonic();
	hist_init(&empty);
	if (hist_percentile(&empty, 99) != 0 || hist_mean(&empty) != 0) {
		printf("FAIL empty histogram\n");
		ok = false;
	}
	free(data);
	free(hists);
	printf("%s\n", ok ? "PASS" : "FAIL");
	return ok ? 0 : 1;
}
