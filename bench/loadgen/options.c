/*
 * options.c - the command line.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "loadgen.h"

static const char *const mix_names[MIX_KINDS] = {
	"new", "cancel", "replace", "market",
};

struct options opt = {
	.host = "127.0.0.1",
	.connections = 1,
	.threads = 1,
	.symbols = 16,
	.mix = { 70, 15, 10, 5 },
	.mix_total = 100,
	.max_open = 32,
	.stall_s = 10,
	.seed = 1,
};

static void usage(FILE *out)
{
	fprintf(out,
"usage: loadgen --host ADDR --port P [options]\n"
"  --connections N     trading connections, 1..%u (default 1)\n"
"  --inflight K        closed loop: requests in flight per connection\n"
"                      (default 1); open loop: the most in flight (256)\n"
"  --duration SECONDS  run that long (default 5 unless --orders)\n"
"  --orders M          each connection sends exactly M requests, then\n"
"                      cancels what rests and waits for every outcome\n"
"  --rate R            open loop: R requests/s in total; latency counts\n"
"                      from the intended send time\n"
"  --mix SPEC          new=70,cancel=15,replace=10,market=5 (weights)\n"
"  --symbols S         symbols traded without --deterministic (16)\n"
"  --symbol-base B     first symbol id (0)\n"
"  --max-open O        resting orders per connection before cancelling\n"
"                      instead of adding (32)\n"
"  --deterministic     connection i trades only symbol B+i with itself;\n"
"                      with --orders and a fresh server the digest is\n"
"                      reproducible (closed loop only)\n"
"  --seed S            PRNG seed, 0..2^63-1 (1)\n"
"  --subscribers S     extra connections subscribed to every traded\n"
"                      symbol that only read market data (0)\n"
"  --threads T         worker threads (1)\n"
"  --cpu LIST          pin worker t to the t-th CPU of LIST (e.g. 1 or 2,3)\n"
"  --stall-timeout S   fail when the server answers nothing for S s (10)\n"
"  --spin              never sleep: poll epoll without a timeout (and pace\n"
"                      the open loop) in a busy loop, as a latency-critical\n"
"                      client does; each worker thread burns a whole CPU\n"
"  --json FILE         write every figure as JSON\n"
"  --label TEXT        free text (UTF-8) stored as \"label\" in the JSON,\n"
"                      e.g. the condition a harness measures\n"
"  --quiet             no progress lines\n"
"exit status: 0 ok, 1 verification errors or a failed run, 2 bad usage\n",
		MAX_CONNECTIONS);
}

static uint64_t parse_u64(const char *name, const char *s, uint64_t min,
			  uint64_t max)
{
	unsigned long long v;
	char *end;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *end || *s == '-' || v < min || v > max)
		die("%s: '%s' is not a number in %" PRIu64 "..%" PRIu64, name,
		    s, min, max);
	return v;
}

static double parse_double(const char *name, const char *s)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !(v > 0) || isinf(v))
		die("%s: '%s' is not a positive number", name, s);
	return v;
}

static void parse_mix(const char *spec)
{
	char *copy = strdup(spec), *item, *save = NULL;
	unsigned i;

	if (!copy)
		die("out of memory");
	memset(opt.mix, 0, sizeof(opt.mix));
	for (item = strtok_r(copy, ",", &save); item;
	     item = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(item, '=');

		if (!eq)
			die("--mix: '%s' is not NAME=WEIGHT", item);
		*eq = 0;
		for (i = 0; i < MIX_KINDS; i++)
			if (!strcmp(item, mix_names[i]))
				break;
		if (i == MIX_KINDS)
			die("--mix: unknown kind '%s' (new, cancel, replace, "
			    "market)", item);
		opt.mix[i] = (unsigned)parse_u64("--mix", eq + 1, 0, 1000000);
	}
	free(copy);
	opt.mix_total = 0;
	for (i = 0; i < MIX_KINDS; i++)
		opt.mix_total += opt.mix[i];
	if (!opt.mix[MIX_NEW] && !opt.mix[MIX_MARKET])
		die("--mix: needs some new or market orders");
}

static void parse_cpus(const char *list)
{
	const char *p = list;
	char *end;
	long a, b;

	while (*p) {
		a = strtol(p, &end, 10);
		if (end == p || a < 0 || a >= CPU_SETSIZE)
			die("--cpu: bad list '%s'", list);
		b = a;
		if (*end == '-') {
			p = end + 1;
			b = strtol(p, &end, 10);
			if (end == p || b < a || b >= CPU_SETSIZE)
				die("--cpu: bad list '%s'", list);
		}
		for (; a <= b && opt.ncpus < MAX_THREADS; a++)
			opt.cpus[opt.ncpus++] = (int)a;
		if (*end == ',')
			end++;
		else if (*end)
			die("--cpu: bad list '%s'", list);
		p = end;
	}
	if (!opt.ncpus)
		die("--cpu: empty list");
}

/* JSON strings are UTF-8: refuse a label that is not, rather than mangle. */
static void parse_label(const char *text)
{
	json_t *s = json_string(text);

	if (!s)
		die("--label: not valid UTF-8");
	json_decref(s);
	opt.label = text;
}

void parse_args(int argc, char **argv)
{
	enum {
		O_HOST = 256, O_PORT, O_CONN, O_INFLIGHT, O_DURATION, O_ORDERS,
		O_RATE, O_DET, O_SEED, O_JSON, O_MIX, O_SYMBOLS, O_BASE,
		O_MAXOPEN, O_SUBS, O_THREADS, O_CPU, O_STALL, O_QUIET, O_LABEL,
		O_SPIN, O_HELP,
	};
	static const struct option longopts[] = {
		{ "host", required_argument, NULL, O_HOST },
		{ "port", required_argument, NULL, O_PORT },
		{ "connections", required_argument, NULL, O_CONN },
		{ "inflight", required_argument, NULL, O_INFLIGHT },
		{ "duration", required_argument, NULL, O_DURATION },
		{ "orders", required_argument, NULL, O_ORDERS },
		{ "rate", required_argument, NULL, O_RATE },
		{ "deterministic", no_argument, NULL, O_DET },
		{ "seed", required_argument, NULL, O_SEED },
		{ "json", required_argument, NULL, O_JSON },
		{ "mix", required_argument, NULL, O_MIX },
		{ "symbols", required_argument, NULL, O_SYMBOLS },
		{ "symbol-base", required_argument, NULL, O_BASE },
		{ "max-open", required_argument, NULL, O_MAXOPEN },
		{ "subscribers", required_argument, NULL, O_SUBS },
		{ "threads", required_argument, NULL, O_THREADS },
		{ "cpu", required_argument, NULL, O_CPU },
		{ "stall-timeout", required_argument, NULL, O_STALL },
		{ "quiet", no_argument, NULL, O_QUIET },
		{ "label", required_argument, NULL, O_LABEL },
		{ "spin", no_argument, NULL, O_SPIN },
		{ "help", no_argument, NULL, O_HELP },
		{ 0 }
	};
	int o;

	while ((o = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (o) {
		case O_HOST: opt.host = optarg; break;
		case O_PORT:
			parse_u64("--port", optarg, 1, 65535);
			opt.port = optarg;
			break;
		case O_CONN:
			opt.connections = (unsigned)parse_u64("--connections",
					optarg, 1, MAX_CONNECTIONS);
			break;
		case O_INFLIGHT:
			opt.inflight = (unsigned)parse_u64("--inflight", optarg,
							   1, 65536);
			break;
		case O_DURATION:
			opt.duration_s = parse_double("--duration", optarg);
			break;
		case O_ORDERS:
			opt.orders = parse_u64("--orders", optarg, 1,
					       UINT64_MAX / 2);
			break;
		case O_RATE: opt.rate = parse_double("--rate", optarg); break;
		case O_DET: opt.deterministic = true; break;
		case O_SEED:
			opt.seed = parse_u64("--seed", optarg, 0, INT64_MAX);
			break;
		case O_JSON: opt.json_path = optarg; break;
		case O_MIX: parse_mix(optarg); break;
		case O_SYMBOLS:
			opt.symbols = (unsigned)parse_u64("--symbols", optarg,
							  1, 1u << 24);
			break;
		case O_BASE:
			opt.symbol_base = (unsigned)parse_u64("--symbol-base",
							optarg, 0, 1u << 30);
			break;
		case O_MAXOPEN:
			opt.max_open = (unsigned)parse_u64("--max-open", optarg,
							   1, 1u << 16);
			break;
		case O_SUBS:
			opt.subscribers = (unsigned)parse_u64("--subscribers",
					optarg, 0, MAX_SUBSCRIBERS);
			break;
		case O_THREADS:
			opt.threads = (unsigned)parse_u64("--threads", optarg,
							  1, MAX_THREADS);
			break;
		case O_CPU: parse_cpus(optarg); break;
		case O_STALL:
			opt.stall_s = parse_double("--stall-timeout", optarg);
			break;
		case O_QUIET: opt.quiet = true; break;
		case O_LABEL: parse_label(optarg); break;
		case O_SPIN: opt.spin = true; break;
		case O_HELP: usage(stdout); exit(0);
		default: usage(stderr); exit(2);
		}
	}
	if (optind < argc)
		die("unexpected argument '%s' (see --help)", argv[optind]);
	if (!opt.port)
		die("--port is required (see --help)");
	if (opt.duration_s && opt.orders)
		die("--duration and --orders exclude each other");
	if (!opt.duration_s && !opt.orders)
		opt.duration_s = 5;
	if (!opt.inflight)
		opt.inflight = opt.rate ? 256 : 1;
	if (opt.threads > opt.connections + opt.subscribers)
		opt.threads = opt.connections + opt.subscribers;
	run.nsyms = opt.deterministic ? opt.connections : opt.symbols;
}
