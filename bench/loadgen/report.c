/*
 * report.c - the run's totals, the printed summary and the JSON figures.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <string.h>

#include <jansson.h>

#include "loadgen.h"

static void stats_add(struct stats *dst, const struct stats *src)
{
	unsigned i;

	dst->requests += src->requests;
	for (i = 0; i < REQ_KINDS; i++)
		dst->sent[i] += src->sent[i];
	dst->filled += src->filled;
	dst->canceled += src->canceled;
	dst->ioc_canceled += src->ioc_canceled;
	dst->rejected += src->rejected;
	dst->replaced += src->replaced;
	dst->cancel_rejected += src->cancel_rejected;
	dst->replace_rejected += src->replace_rejected;
	dst->trades += src->trades;
	dst->passive_fills += src->passive_fills;
	dst->bytes_in += src->bytes_in;
	dst->bytes_out += src->bytes_out;
	dst->md_bytes += src->md_bytes;
	dst->md_messages += src->md_messages;
	dst->errors += src->errors;
	dst->sleeping_waits += src->sleeping_waits;
	hist_merge(&dst->lat, &src->lat);
	hist_merge(&dst->send_lag, &src->send_lag);
}

/* p50 p90 p99 p99.9 p99.99 and max of @h into @ns[6]. */
static void percentiles(const struct hist *h, uint64_t ns[6])
{
	static const double pcts[5] = { 50, 90, 99, 99.9, 99.99 };
	unsigned i;

	for (i = 0; i < 5; i++)
		ns[i] = hist_percentile(h, pcts[i]);
	ns[5] = h->count ? h->max : 0;
}

void totals_compute(struct totals *tot, uint64_t t_wall_end)
{
	uint64_t end = run.t_start;
	unsigned t, i;

	memset(tot, 0, sizeof(*tot));
	hist_init(&tot->st.lat);
	hist_init(&tot->st.send_lag);
	tot->digest = 0xcbf29ce484222325ull;
	for (t = 0; t < opt.threads; t++) {
		struct worker *w = &run.workers[t];

		stats_add(&tot->st, &w->st);
		tot->cpu_s += w->cpu_ns / 1e9;
		tot->voluntary_switches += w->voluntary_switches;
		if (w->last_response_ns > end)
			end = w->last_response_ns;
		if (opt.rate && !opt.orders && w->ntraders) {
			uint64_t due = (uint64_t)((double)(run.t_end -
					run.t_start - 1) / w->period_ns) + 1;
			uint64_t sent = 0;

			for (i = 0; i < REQ_CLEANUP; i++)
				sent += w->st.sent[i];
			if (due > sent)
				tot->unsent += due - sent;
		}
		for (i = 0; i < w->ntraders; i++)
			tot->digest = hash_word(tot->digest,
						w->traders[i].hash);
	}
	if (!atomic_load(&run.abort))
		check_totals(tot);
	tot->st.errors = atomic_load(&run.errors);
	tot->duration_s = (double)(end - run.t_start) / 1e9;
	tot->wall_s = (double)(t_wall_end - run.t_start) / 1e9;
	tot->throughput = tot->duration_s > 0 ?
			  (double)tot->st.requests / tot->duration_s : 0;
	percentiles(&tot->st.lat, tot->lat_ns);
	percentiles(&tot->st.send_lag, tot->lag_ns);
}

static bool digest_reproducible(void)
{
	return opt.deterministic && opt.orders && !opt.rate;
}

void print_summary(const struct totals *tot)
{
	const struct stats *st = &tot->st;

	printf("loadgen: %s loop, %u connections x %u in flight%s, "
	       "%u subscribers, %u threads%s%s\n",
	       opt.rate ? "open" : "closed", opt.connections, opt.inflight,
	       opt.rate ? " max" : "", opt.subscribers, opt.threads,
	       opt.deterministic ? ", deterministic" : "",
	       opt.spin ? ", spinning" : "");
	printf("requests   %" PRIu64 " in %.3f s = %.0f req/s "
	       "(new %" PRIu64 " market %" PRIu64 " cancel %" PRIu64
	       " replace %" PRIu64 ")\n", st->requests, tot->duration_s,
	       tot->throughput, st->sent[REQ_NEW], st->sent[REQ_MARKET],
	       st->sent[REQ_CANCEL], st->sent[REQ_REPLACE]);
	if (opt.rate) {
		printf("rate       %.0f req/s asked, %" PRIu64 " due but never "
		       "sent (the window was full)\n", opt.rate, tot->unsent);
		printf("send lag   us p50 %.1f p99 %.1f p99.9 %.1f max %.1f "
		       "(write time - intended time)\n", tot->lag_ns[0] / 1e3,
		       tot->lag_ns[2] / 1e3, tot->lag_ns[3] / 1e3,
		       tot->lag_ns[5] / 1e3);
	}
	printf("latency us p50 %.1f p90 %.1f p99 %.1f p99.9 %.1f "
	       "p99.99 %.1f max %.1f mean %.1f\n",
	       tot->lat_ns[0] / 1e3, tot->lat_ns[1] / 1e3,
	       tot->lat_ns[2] / 1e3, tot->lat_ns[3] / 1e3,
	       tot->lat_ns[4] / 1e3, tot->lat_ns[5] / 1e3,
	       hist_mean(&st->lat) / 1e3);
	printf("outcomes   filled %" PRIu64 " canceled %" PRIu64
	       " ioc-remainder %" PRIu64 " rejected %" PRIu64
	       " replaced %" PRIu64 " (cleanup cancels %" PRIu64 ")\n",
	       st->filled, st->canceled, st->ioc_canceled, st->rejected,
	       st->replaced, st->sent[REQ_CLEANUP]);
	printf("trades     %" PRIu64 "\n", st->trades);
	printf("bytes      in %" PRIu64 " out %" PRIu64 " md %" PRIu64 "\n",
	       st->bytes_in, st->bytes_out, st->md_bytes);
	printf("cpu        %.3f s in %.3f s = %.2f cores busy, %" PRIu64
	       " sleeps (voluntary switches)\n", tot->cpu_s, tot->wall_s,
	       tot->wall_s > 0 ? tot->cpu_s / tot->wall_s : 0,
	       tot->voluntary_switches);
	printf("errors     %" PRIu64 "\n", st->errors);
	if (opt.orders && !digest_reproducible())
		printf("note       the digest is not reproducible: that needs "
		       "--deterministic and a closed loop\n");
	if (opt.orders)
		printf("digest: %016" PRIx64 "\n", tot->digest);
	fflush(stdout);
}

/* @x rounded to @decimals places: the JSON shows what was measured. */
static double places(double x, int decimals)
{
	double scale = pow(10, decimals);

	return round(x * scale) / scale;
}

static json_int_t count(uint64_t n)
{
	return n > INT64_MAX ? INT64_MAX : (json_int_t)n;
}

/* Percentiles in microseconds, to the nanosecond. */
static json_t *latency_json(const uint64_t ns[6], const struct hist *h)
{
	return json_pack("{s:f, s:f, s:f, s:f, s:f, s:f, s:f}",
		"p50", places(ns[0] / 1e3, 3),
		"p90", places(ns[1] / 1e3, 3),
		"p99", places(ns[2] / 1e3, 3),
		"p99_9", places(ns[3] / 1e3, 3),
		"p99_99", places(ns[4] / 1e3, 3),
		"max", places(ns[5] / 1e3, 3),
		"mean", places(hist_mean(h) / 1e3, 3));
}

/* Every figure of the run, as one JSON object; NULL when out of memory. */
static json_t *totals_json(const struct totals *tot)
{
	const struct stats *st = &tot->st;
	char digest[17];
	json_t *root;

	snprintf(digest, sizeof(digest), "%016" PRIx64, tot->digest);
	root = json_pack("{s:I, s:I, s:f, s:o, s:s?, s:b, s:s?}",
		"requests", count(st->requests),
		"errors", count(st->errors),
		"throughput", places(tot->throughput, 1),
		"latency_us", latency_json(tot->lat_ns, &st->lat),
		"digest", opt.orders ? digest : NULL,
		"digest_reproducible", digest_reproducible(),
		"label", opt.label);
	if (!root)
		return NULL;
	if (json_object_update_new(root, json_pack(
		"{s:I, s:I, s:I, s:I, s:s, s:f, s:b, s:I, s:I, s:I}",
		"connections", count(opt.connections),
		"subscribers", count(opt.subscribers),
		"threads", count(opt.threads),
		"inflight", count(opt.inflight),
		"mode", opt.rate ? "open" : "closed",
		"rate", places(opt.rate, 1),
		"deterministic", opt.deterministic,
		"seed", count(opt.seed),
		"orders_per_connection", count(opt.orders),
		"unsent", count(tot->unsent))) ||
	    json_object_update_new(root, json_pack(
		"{s:f, s:f, s:I, s:I, s:I, s:I, s:I}",
		"duration_s", places(tot->duration_s, 6),
		"wall_s", places(tot->wall_s, 6),
		"bytes_in", count(st->bytes_in),
		"bytes_out", count(st->bytes_out),
		"md_bytes", count(st->md_bytes),
		"md_messages", count(st->md_messages),
		"trades", count(st->trades))) ||
	    json_object_update_new(root, json_pack(
		"{s:b, s:o, s:f, s:f, s:I, s:I}",
		"spin", opt.spin,
		"send_lag_us", opt.rate ? latency_json(tot->lag_ns,
						       &st->send_lag) :
					  json_null(),
		"cpu_s", places(tot->cpu_s, 6),
		"cpu_busy", places(tot->wall_s > 0 ? tot->cpu_s / tot->wall_s :
						     0, 3),
		"voluntary_switches", count(tot->voluntary_switches),
		"sleeping_waits", count(st->sleeping_waits))) ||
	    json_object_set_new(root, "sent", json_pack(
		"{s:I, s:I, s:I, s:I, s:I}",
		"new", count(st->sent[REQ_NEW]),
		"market", count(st->sent[REQ_MARKET]),
		"cancel", count(st->sent[REQ_CANCEL]),
		"replace", count(st->sent[REQ_REPLACE]),
		"cleanup_cancel", count(st->sent[REQ_CLEANUP]))) ||
	    json_object_set_new(root, "outcomes", json_pack(
		"{s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
		"filled", count(st->filled),
		"canceled", count(st->canceled),
		"ioc_canceled", count(st->ioc_canceled),
		"rejected", count(st->rejected),
		"replaced", count(st->replaced),
		"cancel_rejected", count(st->cancel_rejected),
		"replace_rejected", count(st->replace_rejected)))) {
		json_decref(root);
		return NULL;
	}
	return root;
}

/*
 * write_json - every figure to opt.json_path, through libjansson so that
 * any string (a --label) is escaped. Returns 0, or -1 after a message.
 */
int write_json(const struct totals *tot)
{
	/* 15 digits: enough for the rounded figures, no binary noise. */
	size_t flags = JSON_INDENT(2) | JSON_REAL_PRECISION(15);
	json_t *root = totals_json(tot);
	FILE *f;
	int err;

	if (!root) {
		fprintf(stderr, "loadgen: out of memory for the JSON\n");
		return -1;
	}
	f = fopen(opt.json_path, "w");
	if (!f) {
		fprintf(stderr, "loadgen: %s: %s\n", opt.json_path,
			strerror(errno));
		json_decref(root);
		return -1;
	}
	err = json_dumpf(root, f, flags) || fputc('\n', f) == EOF;
	json_decref(root);
	if (fclose(f) || err) {
		fprintf(stderr, "loadgen: %s: %s\n", opt.json_path,
			strerror(errno));
		return -1;
	}
	return 0;
}
