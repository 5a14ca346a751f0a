/*
 * report.c - the run's totals, the printed summary and the JSON figures.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

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
	hist_merge(&dst->lat, &src->lat);
}

void totals_compute(struct totals *tot, uint64_t t_wall_end)
{
	static const double pcts[5] = { 50, 90, 99, 99.9, 99.99 };
	uint64_t end = run.t_start;
	unsigned t, i;

	memset(tot, 0, sizeof(*tot));
	hist_init(&tot->st.lat);
	tot->digest = 0xcbf29ce484222325ull;
	for (t = 0; t < opt.threads; t++) {
		struct worker *w = &run.workers[t];

		stats_add(&tot->st, &w->st);
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
	for (i = 0; i < 5; i++)
		tot->lat_ns[i] = hist_percentile(&tot->st.lat, pcts[i]);
	tot->lat_ns[5] = tot->st.lat.count ? tot->st.lat.max : 0;
}

static bool digest_reproducible(void)
{
	return opt.deterministic && opt.orders && !opt.rate;
}

void print_summary(const struct totals *tot)
{
	const struct stats *st = &tot->st;

	printf("loadgen: %s loop, %u connections x %u in flight%s, "
	       "%u subscribers, %u threads%s\n",
	       opt.rate ? "open" : "closed", opt.connections, opt.inflight,
	       opt.rate ? " max" : "", opt.subscribers, opt.threads,
	       opt.deterministic ? ", deterministic" : "");
	printf("requests   %" PRIu64 " in %.3f s = %.0f req/s "
	       "(new %" PRIu64 " market %" PRIu64 " cancel %" PRIu64
	       " replace %" PRIu64 ")\n", st->requests, tot->duration_s,
	       tot->throughput, st->sent[REQ_NEW], st->sent[REQ_MARKET],
	       st->sent[REQ_CANCEL], st->sent[REQ_REPLACE]);
	if (opt.rate)
		printf("rate       %.0f req/s asked, %" PRIu64 " due but never "
		       "sent (the window was full)\n", opt.rate, tot->unsent);
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
	printf("errors     %" PRIu64 "\n", st->errors);
	if (opt.orders && !digest_reproducible())
		printf("note       the digest is not reproducible: that needs "
		       "--deterministic and a closed loop\n");
	if (opt.orders)
		printf("digest: %016" PRIx64 "\n", tot->digest);
	fflush(stdout);
}

int write_json(const struct totals *tot)
{
	const struct stats *st = &tot->st;
	FILE *f = fopen(opt.json_path, "w");

	if (!f) {
		fprintf(stderr, "loadgen: %s: %s\n", opt.json_path,
			strerror(errno));
		return -1;
	}
	fprintf(f, "{\n  \"requests\": %" PRIu64 ",\n  \"errors\": %" PRIu64
		",\n  \"throughput\": %.1f,\n", st->requests, st->errors,
		tot->throughput);
	fprintf(f, "  \"latency_us\": {\"p50\": %.3f, \"p90\": %.3f, "
		"\"p99\": %.3f, \"p99_9\": %.3f, \"p99_99\": %.3f, "
		"\"max\": %.3f, \"mean\": %.3f},\n",
		tot->lat_ns[0] / 1e3, tot->lat_ns[1] / 1e3,
		tot->lat_ns[2] / 1e3, tot->lat_ns[3] / 1e3,
		tot->lat_ns[4] / 1e3, tot->lat_ns[5] / 1e3,
		hist_mean(&st->lat) / 1e3);
	if (opt.orders)
		fprintf(f, "  \"digest\": \"%016" PRIx64 "\",\n", tot->digest);
	else
		fprintf(f, "  \"digest\": null,\n");
	fprintf(f, "  \"digest_reproducible\": %s,\n",
		digest_reproducible() ? "true" : "false");
	fprintf(f, "  \"connections\": %u,\n  \"subscribers\": %u,\n"
		"  \"threads\": %u,\n  \"inflight\": %u,\n"
		"  \"mode\": \"%s\",\n  \"rate\": %.1f,\n"
		"  \"deterministic\": %s,\n  \"seed\": %" PRIu64 ",\n"
		"  \"orders_per_connection\": %" PRIu64 ",\n"
		"  \"unsent\": %" PRIu64 ",\n",
		opt.connections, opt.subscribers, opt.threads, opt.inflight,
		opt.rate ? "open" : "closed", opt.rate,
		opt.deterministic ? "true" : "false", opt.seed, opt.orders,
		tot->unsent);
	fprintf(f, "  \"duration_s\": %.6f,\n  \"wall_s\": %.6f,\n"
		"  \"bytes_in\": %" PRIu64 ",\n  \"bytes_out\": %" PRIu64
		",\n  \"md_bytes\": %" PRIu64 ",\n  \"md_messages\": %" PRIu64
		",\n  \"trades\": %" PRIu64 ",\n", tot->duration_s,
		tot->wall_s, st->bytes_in, st->bytes_out, st->md_bytes,
		st->md_messages, st->trades);
	fprintf(f, "  \"sent\": {\"new\": %" PRIu64 ", \"market\": %" PRIu64
		", \"cancel\": %" PRIu64 ", \"replace\": %" PRIu64
		", \"cleanup_cancel\": %" PRIu64 "},\n", st->sent[REQ_NEW],
		st->sent[REQ_MARKET], st->sent[REQ_CANCEL],
		st->sent[REQ_REPLACE], st->sent[REQ_CLEANUP]);
	fprintf(f, "  \"outcomes\": {\"filled\": %" PRIu64 ", \"canceled\": %"
		PRIu64 ", \"ioc_canceled\": %" PRIu64 ", \"rejected\": %"
		PRIu64 ", \"replaced\": %" PRIu64 ", \"cancel_rejected\": %"
		PRIu64 ", \"replace_rejected\": %" PRIu64 "}\n}\n",
		st->filled, st->canceled, st->ioc_canceled, st->rejected,
		st->replaced, st->cancel_rejected, st->replace_rejected);
	if (fclose(f)) {
		fprintf(stderr, "loadgen: %s: %s\n", opt.json_path,
			strerror(errno));
		return -1;
	}
	return 0;
}
