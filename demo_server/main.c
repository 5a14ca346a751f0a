/*
 * main.c - matching_server: command line, listening socket, signals, summary.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server.h"

#define DEFAULT_PORT		9000
#define DEFAULT_MAX_CONNS	16384
#define DEFAULT_MAX_OUTBUF	(8u << 20)

static void usage(FILE *out)
{
	fprintf(out,
"usage: matching_server [options]\n"
"An exchange matching engine on a single-threaded epoll loop.\n"
"\n"
"  --port N            TCP port (default %d; 0 picks a free one)\n"
"  --bind ADDR         IPv4 or IPv6 literal to listen on (default 127.0.0.1)\n"
"  --io epoll|uring    I/O backend: epoll (default) or native io_uring\n"
"                      (multishot recv, batched sends; fails at start\n"
"                      if the kernel cannot run it)\n"
"  --edge-triggered    edge-triggered epoll, reading until EAGAIN (ignored\n"
"                      with --io uring)\n"
"  --symbols N         symbol ids 0..N-1 are valid (default %u)\n"
"  --max-orders N      resting orders at once (default %u)\n"
"  --max-conns N       concurrent connections (default %d)\n"
"  --max-outbuf BYTES  disconnect a client whose unsent output exceeds it\n"
"                      (default %u; K, M, G suffixes)\n"
"  --journal FILE      journal state-changing input; replay FILE at start\n"
"  --fsync none|batch  batch: one fdatasync per loop iteration before its\n"
"                      responses are sent (default none)\n"
"  --quiet             no per-connection log lines on stderr\n"
"  --help              this text\n"
"\n"
"Prints 'listening on ADDR:PORT' first on stdout; on SIGINT/SIGTERM prints\n"
"'summary: msgs_in=N msgs_out=N trades=N connections=N' and exits 0.\n",
		DEFAULT_PORT, ENGINE_DEFAULT_SYMBOLS, ENGINE_DEFAULT_MAX_ORDERS,
		DEFAULT_MAX_CONNS, DEFAULT_MAX_OUTBUF);
}

static void __attribute__((noreturn)) die(const char *fmt, const char *arg)
{
	fprintf(stderr, "matching_server: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\n");
	exit(2);
}

static uint64_t parse_u64(const char *opt, const char *s, uint64_t min,
			  uint64_t max, bool suffixes)
{
	char *end;
	uint64_t v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (suffixes && end != s) {
		switch (*end) {
		case 'K': case 'k': v <<= 10; end++; break;
		case 'M': case 'm': v <<= 20; end++; break;
		case 'G': case 'g': v <<= 30; end++; break;
		}
	}
	if (errno || end == s || *end || *s == '-' || v < min || v > max) {
		fprintf(stderr, "matching_server: bad value for %s: '%s'\n",
			opt, s);
		exit(2);
	}
	return v;
}

/* Bind and listen; prints the listening line. Returns the fd. */
static int listen_on(const char *addr, uint16_t port)
{
	struct sockaddr_storage ss = { 0 };
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
	socklen_t len;
	char text[INET6_ADDRSTRLEN];
	int one = 1, fd;

	if (inet_pton(AF_INET, addr, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		len = sizeof(*sin);
	} else if (inet_pton(AF_INET6, addr, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		len = sizeof(*sin6);
	} else {
		die("--bind: not an IPv4 or IPv6 literal: '%s'", addr);
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
		    0);
	if (fd < 0)
		die("socket: %s", strerror(errno));
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, len))
		die("bind: %s", strerror(errno));
	if (listen(fd, SOMAXCONN))
		die("listen: %s", strerror(errno));
	if (getsockname(fd, (struct sockaddr *)&ss, &len))
		die("getsockname: %s", strerror(errno));
	if (ss.ss_family == AF_INET) {
		inet_ntop(AF_INET, &sin->sin_addr, text, sizeof(text));
		printf("listening on %s:%u\n", text, ntohs(sin->sin_port));
	} else {
		inet_ntop(AF_INET6, &sin6->sin6_addr, text, sizeof(text));
		printf("listening on [%s]:%u\n", text, ntohs(sin6->sin6_port));
	}
	fflush(stdout);
	return fd;
}

/* 10,000 connections need more descriptors than the usual soft limit. */
static void raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/* Block the stop signals and return a signalfd that reports them. */
static int stop_signal_fd(void)
{
	sigset_t set;
	int fd;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	if (sigprocmask(SIG_BLOCK, &set, NULL))
		die("sigprocmask: %s", strerror(errno));
	fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (fd < 0)
		die("signalfd: %s", strerror(errno));
	return fd;
}

enum {
	OPT_PORT = 256, OPT_BIND, OPT_IO, OPT_EDGE, OPT_SYMBOLS, OPT_MAX_ORDERS,
	OPT_MAX_CONNS, OPT_MAX_OUTBUF, OPT_JOURNAL, OPT_FSYNC, OPT_QUIET,
	OPT_HELP,
};

static const struct option options[] = {
	{ "port",		required_argument, NULL, OPT_PORT },
	{ "bind",		required_argument, NULL, OPT_BIND },
	{ "io",			required_argument, NULL, OPT_IO },
	{ "edge-triggered",	no_argument,	   NULL, OPT_EDGE },
	{ "symbols",		required_argument, NULL, OPT_SYMBOLS },
	{ "max-orders",		required_argument, NULL, OPT_MAX_ORDERS },
	{ "max-conns",		required_argument, NULL, OPT_MAX_CONNS },
	{ "max-outbuf",		required_argument, NULL, OPT_MAX_OUTBUF },
	{ "journal",		required_argument, NULL, OPT_JOURNAL },
	{ "fsync",		required_argument, NULL, OPT_FSYNC },
	{ "quiet",		no_argument,	   NULL, OPT_QUIET },
	{ "help",		no_argument,	   NULL, OPT_HELP },
	{ NULL, 0, NULL, 0 },
};

int main(int argc, char **argv)
{
	struct server_config cfg = {
		.engine = {
			.symbols = ENGINE_DEFAULT_SYMBOLS,
			.max_orders = ENGINE_DEFAULT_MAX_ORDERS,
		},
		.max_conns = DEFAULT_MAX_CONNS,
		.max_outbuf = DEFAULT_MAX_OUTBUF,
		.fsync = FSYNC_NONE,
	};
	struct backend_config bcfg = { 0 };
	const char *bind_addr = "127.0.0.1";
	uint16_t port = DEFAULT_PORT;
	struct server_stats st;
	struct server *srv;
	bool use_uring = false;
	int opt, err;

	while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
		switch (opt) {
		case OPT_PORT:
			port = parse_u64("--port", optarg, 0, 65535, false);
			break;
		case OPT_BIND:
			bind_addr = optarg;
			break;
		case OPT_IO:
			if (!strcmp(optarg, "uring"))
				use_uring = true;
			else if (!strcmp(optarg, "epoll"))
				use_uring = false;
			else
				die("--io %s: unknown backend (epoll or "
				    "uring)", optarg);
			break;
		case OPT_EDGE:
			bcfg.edge_triggered = true;
			break;
		case OPT_SYMBOLS:
			cfg.engine.symbols = parse_u64("--symbols", optarg, 1,
						       UINT32_MAX, false);
			break;
		case OPT_MAX_ORDERS:
			cfg.engine.max_orders = parse_u64("--max-orders",
							  optarg, 1,
							  UINT32_MAX, false);
			break;
		case OPT_MAX_CONNS:
			cfg.max_conns = parse_u64("--max-conns", optarg, 1,
						  UINT32_MAX, false);
			break;
		case OPT_MAX_OUTBUF:
			cfg.max_outbuf = parse_u64("--max-outbuf", optarg,
						   MSG_MAX_SIZE, SIZE_MAX / 4,
						   true);
			break;
		case OPT_JOURNAL:
			cfg.journal_path = optarg;
			break;
		case OPT_FSYNC:
			if (!strcmp(optarg, "none"))
				cfg.fsync = FSYNC_NONE;
			else if (!strcmp(optarg, "batch"))
				cfg.fsync = FSYNC_BATCH;
			else
				die("--fsync %s: expected none or batch",
				    optarg);
			break;
		case OPT_QUIET:
			cfg.quiet = true;
			break;
		case 'h':
		case OPT_HELP:
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc)
		die("unexpected argument '%s'", argv[optind]);

	/* Refuse before listening, so a caller can tell it is missing. */
	if (use_uring && loop_uring_probe())
		return 1;
	raise_nofile();
	signal(SIGPIPE, SIG_IGN);
	bcfg.stop_fd = stop_signal_fd();
	srv = server_create(&cfg);
	if (!srv)
		return 1;
	bcfg.listen_fd = listen_on(bind_addr, port);

	err = use_uring ? loop_uring_run(srv, &bcfg)
			: loop_epoll_run(srv, &bcfg);

	server_get_stats(srv, &st);
	printf("summary: msgs_in=%" PRIu64 " msgs_out=%" PRIu64
	       " trades=%" PRIu64 " connections=%" PRIu64 "\n",
	       st.msgs_in, st.msgs_out, st.trades, st.connections);
	fflush(stdout);
	server_destroy(srv);
	close(bcfg.listen_fd);
	close(bcfg.stop_fd);
	return err ? 1 : 0;
}
