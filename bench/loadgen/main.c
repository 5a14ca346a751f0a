/*
 * loadgen - order-entry load generator and verifier for matching_server.
 *
 * Opens N trading connections (plus optional market-data subscribers),
 * drives a realistic order flow through them in a closed loop (K requests in
 * flight per connection) or an open loop (a fixed total rate, latency taken
 * from the intended send time so that a slow server cannot hide its queueing
 * delay), and checks every byte that comes back: framing, the type and order
 * of each direct response, one terminal outcome per order, fill arithmetic,
 * bought = sold per symbol, and market data against the trades seen.
 *
 * Worker threads each own a set of connections and an epoll instance; per
 * loop iteration a connection gets one big read and at most one write.
 *
 * Determinism (--deterministic): connection i trades only symbol base + i,
 * against itself, with a PRNG seeded from (seed, i). Every decision is made
 * while handling a given message of that connection's own stream (the first
 * K at start, then one per direct response), never at a read boundary, so
 * the stream a connection receives is a function of (seed, i, options) only.
 * The digest hashes each connection's stream, then combines them in order.
 *
 * main.c: startup, the worker threads, progress lines and the exit status.
 */
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "loadgen.h"

struct run_state run;

void die(const char *fmt, ...)
{
	va_list ap;

	fputs("loadgen: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

/* First SIGINT: finish gracefully with a summary; the second kills. */
static void on_sigint(int sig)
{
	uint64_t one = 1;
	unsigned i;

	signal(sig, SIG_DFL);
	atomic_store(&run.interrupted, true);
	for (i = 0; run.workers && i < opt.threads; i++)
		if (write(run.workers[i].kickfd, &one, sizeof(one)) < 0)
			continue;	/* async-signal-safe: nothing to do */
}

static void resolve_host(void)
{
	struct addrinfo hints = {
		.ai_family = AF_UNSPEC,
		.ai_socktype = SOCK_STREAM,
	};
	int err;

	err = getaddrinfo(opt.host, opt.port, &hints, &run.addr);
	if (err)
		die("cannot resolve %s: %s", opt.host, gai_strerror(err));
}

/* Enough descriptors for every connection: raise the soft (or hard) limit. */
static void raise_fd_limit(void)
{
	/* stdio, the JSON file, and an epoll and an eventfd per worker */
	rlim_t need = opt.connections + opt.subscribers + 2 * opt.threads + 8;
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl))
		die("getrlimit: %s", strerror(errno));
	if (rl.rlim_cur >= need)
		return;
	if (rl.rlim_max < need) {
		rl.rlim_max = need;	/* works with CAP_SYS_RESOURCE */
		rl.rlim_cur = need;
		if (!setrlimit(RLIMIT_NOFILE, &rl))
			return;
		die("need %llu file descriptors but the hard limit is lower "
		    "(raise it: ulimit -Hn)", (unsigned long long)need);
	}
	rl.rlim_cur = need;
	if (setrlimit(RLIMIT_NOFILE, &rl))
		die("setrlimit: %s", strerror(errno));
}

/*
 * monitor - wait until every worker is done, printing progress once a
 * second. It wakes only for those lines, so that it hardly disturbs a
 * worker sharing its CPU.
 */
static void monitor(void)
{
	bool show = !opt.quiet && (!opt.orders ? opt.duration_s > 3 : true);
	uint64_t last = 0, last_t = run.t_start;
	uint64_t next = run.t_start + 1000000000;

	pthread_mutex_lock(&run.done_lock);
	while (run.workers_done < opt.threads) {
		struct timespec at = {
			.tv_sec = (time_t)(next / 1000000000),
			.tv_nsec = (long)(next % 1000000000),
		};
		uint64_t now, done = 0;
		unsigned t;

		if (pthread_cond_timedwait(&run.done_cond, &run.done_lock,
					   &at) != ETIMEDOUT)
			continue;
		pthread_mutex_unlock(&run.done_lock);
		now = now_ns();
		next += 1000000000;
		for (t = 0; t < opt.threads; t++)
			done += atomic_load_explicit(&run.workers[t].progress,
						     memory_order_relaxed);
		/* --orders runs are announced once they pass 3 s. */
		if (show && (!opt.orders || now - run.t_start > 3000000000ull))
			fprintf(stderr, "loadgen: %5.1f s  %" PRIu64
				" requests  %.0f req/s  %" PRIu64 " errors\n",
				(now - run.t_start) / 1e9, done,
				(double)(done - last) * 1e9 /
				(double)(now - last_t),
				(uint64_t)atomic_load(&run.errors));
		last = done;
		last_t = now;
		pthread_mutex_lock(&run.done_lock);
	}
	pthread_mutex_unlock(&run.done_lock);
}

/* The monitor's deadlines are CLOCK_MONOTONIC, like now_ns(). */
static void done_signal_init(void)
{
	pthread_condattr_t attr;

	if (pthread_condattr_init(&attr) ||
	    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) ||
	    pthread_cond_init(&run.done_cond, &attr) ||
	    pthread_mutex_init(&run.done_lock, NULL))
		die("pthread_cond_init failed");
	pthread_condattr_destroy(&attr);
}

int main(int argc, char **argv)
{
	struct totals tot;
	uint64_t wall_end;
	unsigned t;
	int rc;

	parse_args(argc, argv);
	resolve_host();
	raise_fd_limit();
	signal(SIGPIPE, SIG_IGN);
	pthread_mutex_init(&run.err_lock, NULL);
	done_signal_init();
	if (opt.ncpus) {
		cpu_set_t set;

		CPU_ZERO(&set);
		CPU_SET(opt.cpus[0], &set);
		if (sched_setaffinity(0, sizeof(set), &set))
			die("--cpu: %s", strerror(errno));
	}
	workers_create();
	signal(SIGINT, on_sigint);
	pthread_barrier_init(&run.ready, NULL, opt.threads + 1);
	pthread_barrier_init(&run.go, NULL, opt.threads + 1);
	for (t = 0; t < opt.threads; t++)
		if (pthread_create(&run.workers[t].thread, NULL, worker_main,
				   &run.workers[t]))
			die("pthread_create failed");

	pthread_barrier_wait(&run.ready);
	run.started = !atomic_load(&run.abort);
	run.t_start = now_ns();
	run.t_end = run.t_start + (uint64_t)(opt.duration_s * 1e9);
	pthread_barrier_wait(&run.go);
	if (!atomic_load(&run.abort))
		monitor();
	for (t = 0; t < opt.threads; t++)
		pthread_join(run.workers[t].thread, NULL);
	wall_end = now_ns();

	if (atomic_load(&run.abort) && !atomic_load(&run.errors))
		atomic_fetch_add(&run.errors, 1);
	totals_compute(&tot, wall_end);
	if (run.err_printed > DETAIL_ERRORS)
		fprintf(stderr, "loadgen: %u errors in all (first %d shown)\n",
			run.err_printed, DETAIL_ERRORS);
	if (run.started)
		print_summary(&tot);
	rc = tot.st.errors ? 1 : 0;
	if (atomic_load(&run.abort)) {
		fprintf(stderr, "loadgen: run aborted%s\n",
			run.started ? "" : " before the start");
	} else if (atomic_load(&run.interrupted)) {
		fprintf(stderr, "loadgen: interrupted; figures cover the run "
			"so far\n");
		rc = 1;
	}
	if (opt.json_path && write_json(&tot))
		rc = 1;
	workers_free();
	pthread_barrier_destroy(&run.ready);
	pthread_barrier_destroy(&run.go);
	return rc;
}
