/*
 * shimcost - what one intercepted call costs the application, against
 * the system calls the shim removes.
 *
 * Run it plainly and under LD_PRELOAD=liburingshim.so (`make bench-shim`
 * does both): N loopback connections whose server ends sit in an epoll
 * set, a first epoll_wait hands them to the shim's ring, then each figure
 * is the median over many batches of the time one call takes:
 *
 *   null_syscall   getppid() through syscall(2), never intercepted: what
 *                  a kernel entry costs on this host
 *   write          48 bytes to a connection (plain: a TCP send; shim: a
 *                  copy into the send queue, sent at the next wait)
 *   read           48 bytes that are already there (plain: a TCP
 *                  receive; shim: served from the pulled bytes)
 *   epoll_wait     a wait that finds every connection ready (per call
 *                  and per event reported)
 *   epoll_wait_idle  a zero-timeout wait that finds nothing
 *   wait_recv      per connection, the wait that finds N new messages
 *                  (includes the kernel's receive work, for both)
 *   wait_flush     per connection, the wait right after N writes (the
 *                  shim sends them there; plainly it finds nothing)
 *
 * Under the shim (with URINGSHIM_ADAPTIVE=0: this loop is idle enough
 * between batches for adaptive parking to hand it back to plain syscalls)
 * the write, read and ready-wait figures are user-space work (no system
 * call is made; hostprof --shim-calls checks that against the shim's
 * stats), so their
 * margin against null_syscall is what the shim leaves for the kernel's
 * batched work.  Each batch is timed with CLOCK_MONOTONIC around all N
 * calls; the output is one JSON object on stdout.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define MSG_LEN		48

static int nconns = 64;
static int batches = 2000;

static void die(const char *what)
{
	fprintf(stderr, "shimcost: %s: %s\n", what, strerror(errno));
	exit(1);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double median(double *v, int n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

struct conns {
	int ep;
	int *cli;	/* blocking client ends, never in an epoll set */
	int *srv;	/* non-blocking server ends, in ep */
};

static void connect_all(struct conns *c)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof(a);
	int lfd, i, one = 1;

	lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) ||
	    listen(lfd, nconns) ||
	    getsockname(lfd, (struct sockaddr *)&a, &alen))
		die("listener");
	c->ep = epoll_create1(0);
	c->cli = calloc(nconns, sizeof(int));
	c->srv = calloc(nconns, sizeof(int));
	if (c->ep < 0 || !c->cli || !c->srv)
		die("setup");
	for (i = 0; i < nconns; i++) {
		struct epoll_event ev = { .events = EPOLLIN, .data.u32 = i };

		c->cli[i] = socket(AF_INET, SOCK_STREAM, 0);
		if (c->cli[i] < 0 ||
		    connect(c->cli[i], (struct sockaddr *)&a, sizeof(a)))
			die("connect");
		c->srv[i] = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
		if (c->srv[i] < 0)
			die("accept");
		setsockopt(c->srv[i], IPPROTO_TCP, TCP_NODELAY, &one,
			   sizeof(one));
		setsockopt(c->cli[i], IPPROTO_TCP, TCP_NODELAY, &one,
			   sizeof(one));
		if (epoll_ctl(c->ep, EPOLL_CTL_ADD, c->srv[i], &ev))
			die("epoll_ctl");
	}
	close(lfd);
}

/* Wait (bounded) until every server end has reported EPOLLIN at once. */
static int wait_all_ready(struct conns *c, struct epoll_event *ev)
{
	int tries, n = 0;

	for (tries = 0; tries < 1000; tries++) {
		n = epoll_wait(c->ep, ev, nconns, 10);
		if (n == nconns)
			return n;
	}
	fprintf(stderr, "shimcost: only %d of %d ready\n", n, nconns);
	exit(1);
}

static void client_send_all(struct conns *c)
{
	char msg[MSG_LEN];
	int i;

	memset(msg, 'q', sizeof(msg));
	for (i = 0; i < nconns; i++)
		if (write(c->cli[i], msg, sizeof(msg)) != sizeof(msg))
			die("client write");
}

static void client_drain_all(struct conns *c, size_t per_conn)
{
	char buf[65536];
	int i;

	for (i = 0; i < nconns; i++) {
		size_t got = 0;

		while (got < per_conn) {
			ssize_t n = read(c->cli[i], buf,
					 per_conn - got < sizeof(buf) ?
					 per_conn - got : sizeof(buf));
			if (n <= 0)
				die("client read");
			got += n;
		}
	}
}

static double bench_null(void)
{
	double *v = calloc(batches, sizeof(double));
	int b, i;

	for (b = 0; b < batches; b++) {
		uint64_t t0 = now_ns();

		for (i = 0; i < nconns; i++)
			syscall(SYS_getppid);
		v[b] = (double)(now_ns() - t0) / nconns;
	}
	return median(v, batches);
}

static double bench_write(struct conns *c, struct epoll_event *ev,
			  double *flush)
{
	double *v = calloc(batches, sizeof(double));
	double *f = calloc(batches, sizeof(double));
	char msg[MSG_LEN];
	int b, i;

	memset(msg, 'r', sizeof(msg));
	for (b = 0; b < batches; b++) {
		uint64_t t0 = now_ns(), t1;

		for (i = 0; i < nconns; i++)
			if (write(c->srv[i], msg, sizeof(msg)) != sizeof(msg))
				die("write");
		t1 = now_ns();
		v[b] = (double)(t1 - t0) / nconns;
		/* The shim sends at this wait point. */
		epoll_wait(c->ep, ev, nconns, 0);
		f[b] = (double)(now_ns() - t1) / nconns;
		client_drain_all(c, sizeof(msg));
	}
	*flush = median(f, batches);
	return median(v, batches);
}

static double bench_read(struct conns *c, struct epoll_event *ev,
			 double *wait)
{
	double *v = calloc(batches, sizeof(double));
	double *w = calloc(batches, sizeof(double));
	char buf[MSG_LEN];
	int b, i;

	for (b = 0; b < batches; b++) {
		uint64_t t0;

		client_send_all(c);
		/* Let the bytes arrive before the timed wait. */
		usleep(50);
		t0 = now_ns();
		wait_all_ready(c, ev);
		w[b] = (double)(now_ns() - t0) / nconns;
		t0 = now_ns();
		for (i = 0; i < nconns; i++)
			if (read(c->srv[i], buf, sizeof(buf)) != sizeof(buf))
				die("read");
		v[b] = (double)(now_ns() - t0) / nconns;
	}
	*wait = median(w, batches);
	return median(v, batches);
}

/* Every connection holds unread bytes (level-triggered): all ready. */
static double bench_wait_ready(struct conns *c, struct epoll_event *ev)
{
	double *v = calloc(batches, sizeof(double));
	char buf[MSG_LEN];
	int b, i;

	client_send_all(c);
	wait_all_ready(c, ev);
	for (b = 0; b < batches; b++) {
		uint64_t t0 = now_ns();
		int n = epoll_wait(c->ep, ev, nconns, 0);

		v[b] = (double)(now_ns() - t0);
		if (n != nconns) {
			fprintf(stderr, "shimcost: wait found %d of %d\n", n,
				nconns);
			exit(1);
		}
	}
	for (i = 0; i < nconns; i++)
		if (read(c->srv[i], buf, sizeof(buf)) != sizeof(buf))
			die("read");
	return median(v, batches);
}

static double bench_wait_idle(struct conns *c, struct epoll_event *ev)
{
	double *v = calloc(batches, sizeof(double));
	int b;

	for (b = 0; b < batches; b++) {
		uint64_t t0 = now_ns();

		if (epoll_wait(c->ep, ev, nconns, 0) != 0)
			die("idle wait found events");
		v[b] = (double)(now_ns() - t0);
	}
	return median(v, batches);
}

static void usage(void)
{
	fprintf(stderr, "usage: shimcost [--conns N] [--batches B]\n"
		"prints one JSON object: the median ns of each call\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "conns", required_argument, NULL, 'c' },
		{ "batches", required_argument, NULL, 'b' },
		{ NULL, 0, NULL, 0 },
	};
	const char *pre = getenv("LD_PRELOAD");
	struct epoll_event *ev;
	struct conns c;
	double null_ns, wr, rd, wready, widle, wflush, wrecv;
	int o;

	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (o == 'c')
			nconns = atoi(optarg);
		else if (o == 'b')
			batches = atoi(optarg);
		else
			usage();
	}
	if (nconns < 1 || nconns > 4096 || batches < 1)
		usage();
	ev = calloc(nconns, sizeof(*ev));
	connect_all(&c);
	/* The first wait hands every connection to the shim's ring. */
	epoll_wait(c.ep, ev, nconns, 0);

	null_ns = bench_null();
	wr = bench_write(&c, ev, &wflush);
	rd = bench_read(&c, ev, &wrecv);
	wready = bench_wait_ready(&c, ev);
	widle = bench_wait_idle(&c, ev);
	printf("{\"shim\": %s, \"conns\": %d, \"batches\": %d, "
	       "\"null_syscall_ns\": %.1f, \"write_ns\": %.1f, "
	       "\"read_ns\": %.1f, \"epoll_wait_ready_ns\": %.1f, "
	       "\"epoll_wait_ready_per_event_ns\": %.1f, "
	       "\"epoll_wait_idle_ns\": %.1f, \"wait_recv_ns\": %.1f, "
	       "\"wait_flush_ns\": %.1f}\n",
	       pre && strstr(pre, "uringshim") ? "true" : "false", nconns,
	       batches, null_ns, wr, rd, wready, wready / nconns, widle, wrecv,
	       wflush);
	return 0;
}
