/*
 * hostprof - the host's unit costs, as JSON, for the A/B cost model.
 *
 * bench/ab runs this at the start of every run and puts its output in
 * report.json under "host_profile". The A/B ratios depend on the host:
 * the same server saves 6% of its CPU with io_uring where a null syscall
 * costs 200 ns and nothing where it costs 90 ns. These figures are what
 * bench/ab_model.py multiplies the per-request counts of each condition by.
 *
 * Each figure is measured in repeated samples and printed as the median
 * with its spread ({"median", "q1", "q3", "min", "max", "n"}). The measuring
 * thread runs on --cpu (the A/B's server CPU), its peer on --peer-cpu (the
 * load generator's). Costs are read from the thread's own CPU clock, which
 * is what the A/B reads for the server (/proc/PID/schedstat), so time
 * other tasks take on a shared machine does not count; latencies are
 * wall-clock.
 *
 *   null_syscall_ns        getppid(), the entry and exit of any syscall
 *   uring_enter_1op_ns     io_uring_enter submitting one NOP and reaping it
 *   uring_op_ns            each further NOP submitted in the same enter
 *   ctx_switch_ns          one switch between two threads on one CPU
 *   wakeup_us              a thread asleep in epoll_wait woken by a write
 *                          to its socket on another CPU, until it returns
 *   uring_wakeup_us        the same, asleep in io_uring_enter on a
 *                          multishot receive
 *   epoll_sleep_cpu_ns     CPU charged to the sleeper for going to sleep in
 *                          epoll_wait and waking, beyond a wait that finds
 *                          data at once
 *   uring_sleep_cpu_ns     the same for io_uring_enter
 *   uring_sleep_extra_ns   io_uring_enter's sleep minus epoll_wait's,
 *                          paired round by round
 *   loopback_oneway_us     half the round trip of one byte over TCP
 *                          loopback, both sides blocking in read
 *   loopback_oneway_spin_us  the same with both sides polling
 *   tcp_segment_ns         CPU a sender pays for one more small TCP
 *                          segment on loopback, the same calls and bytes
 *                          sent (build, deliver, the peer's receive
 *                          processing)
 *   wake_remote_ns         what the same write costs more when the peer
 *                          sleeps on another CPU: the wake-up and its IPI
 *   tcp_ack_ns             CPU for one more pure ACK on loopback (sent,
 *                          delivered, processed)
 *   syscall_indirect_ns    what a syscall costs the code around it when
 *                          user and kernel work alternate, against the same
 *                          work batched (the caches each side refills)
 *   epoll_event_ns         each ready TCP socket an epoll_wait reports
 *
 * With --shim-calls (run with LD_PRELOAD=liburingshim.so), only what the
 * shim costs in user space per call that stays out of the kernel:
 *   write_call_ns          a 64-byte write the shim queues
 *   read_call_ns           a 64-byte read it serves from its buffer
 *   calls, shim_sends_queued, shim_served_from_buffer
 *                          the calls of each kind made, and what the
 *                          shim's stats file says it queued and served
 *                          (-1 without one): were they really the shim's?
 *
 * Exit status 0; a figure that cannot be measured (io_uring denied) is
 * null with the reason in "errors".
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <liburing.h>
#include <netinet/in.h>
#include <linux/tcp.h>	/* tcpi_segs_out, which glibc lacks */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>
#include <arpa/inet.h>

#include "../shim/stats.h"

#define MAX_SAMPLES	1024
#define BATCH_OPS	16	/* NOPs in the "many ops" enter */

struct samples {
	double v[MAX_SAMPLES];
	int n;
};

static int opt_cpu;
static int opt_peer_cpu = 1;
static int opt_scale = 4;	/* 1 with --quick */
static bool opt_shim_calls;
static bool first_field = true;
static char errors[1024];

/* ---- clocks, pinning, output ---- */

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + ts.tv_nsec;
}

static uint64_t thread_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + ts.tv_nsec;
}

static void pin(int cpu)
{
	cpu_set_t set;

	if (cpu < 0)
		return;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	/* Not fatal: an unpinned figure is still a figure. */
	sched_setaffinity(0, sizeof(set), &set);
}

static void note_error(const char *what, int err)
{
	size_t len = strlen(errors);

	snprintf(errors + len, sizeof(errors) - len, "%s%s: %s",
		 len ? "; " : "", what, strerror(err));
}

/*
 * A ring torn down a moment ago may still send this thread task work,
 * which ends the next interruptible wait with EINTR: such calls retry.
 */
static ssize_t write_retry(int fd, const void *buf, size_t len)
{
	ssize_t n;

	do
		n = write(fd, buf, len);
	while (n < 0 && errno == EINTR);
	return n;
}

static ssize_t read_retry(int fd, void *buf, size_t len)
{
	ssize_t n;

	do
		n = read(fd, buf, len);
	while (n < 0 && errno == EINTR);
	return n;
}

static void add(struct samples *s, double v)
{
	if (s->n < MAX_SAMPLES)
		s->v[s->n++] = v;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Quantile of sorted values, linear between the nearest ranks. */
static double quantile(const struct samples *s, double q)
{
	double pos = q * (s->n - 1);
	int lo = (int)pos;

	if (lo + 1 >= s->n)
		return s->v[s->n - 1];
	return s->v[lo] + (pos - lo) * (s->v[lo + 1] - s->v[lo]);
}

static double median(struct samples *s)
{
	qsort(s->v, s->n, sizeof(s->v[0]), cmp_double);
	return quantile(s, 0.5);
}

static void field_name(const char *name)
{
	printf("%s\n \"%s\": ", first_field ? "" : ",", name);
	first_field = false;
}

static void put_json_string(const char *str)
{
	const unsigned char *p;

	putchar('"');
	for (p = (const unsigned char *)str; *p; p++) {
		if (*p == '"' || *p == '\\')
			printf("\\%c", *p);
		else if (*p < 0x20)
			printf("\\u%04x", *p);
		else
			putchar(*p);
	}
	putchar('"');
}

static void put_string(const char *name, const char *value)
{
	field_name(name);
	put_json_string(value);
}

/* The samples' spread; null when nothing was measured. */
static void put_samples(const char *name, struct samples *s)
{
	field_name(name);
	if (s->n == 0) {
		printf("null");
		return;
	}
	qsort(s->v, s->n, sizeof(s->v[0]), cmp_double);
	printf("{\"median\": %.4g, \"q1\": %.4g, \"q3\": %.4g, "
	       "\"min\": %.4g, \"max\": %.4g, \"n\": %d}",
	       quantile(s, 0.5), quantile(s, 0.25), quantile(s, 0.75),
	       s->v[0], s->v[s->n - 1], s->n);
}

/* ---- the host: CPU, kernel, mitigations, io_uring permission ---- */

static void read_line(const char *path, const char *prefix, char *out,
		      size_t size)
{
	char line[512];
	FILE *f = fopen(path, "r");
	size_t plen = strlen(prefix);

	out[0] = '\0';
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, prefix, plen))
			continue;
		char *v = line + plen;

		while (*v == ' ' || *v == '\t' || *v == ':')
			v++;
		v[strcspn(v, "\n")] = '\0';
		snprintf(out, size, "%s", v);
		break;
	}
	fclose(f);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void put_vulnerabilities(void)
{
	const char *dir = "/sys/devices/system/cpu/vulnerabilities";
	char *names[64], path[512], value[256];
	struct dirent *e;
	DIR *d = opendir(dir);
	int n = 0, i;

	field_name("vulnerabilities");
	if (!d) {
		printf("null");
		return;
	}
	while ((e = readdir(d)) && n < 64)
		if (e->d_name[0] != '.')
			names[n++] = strdup(e->d_name);
	closedir(d);
	qsort(names, n, sizeof(names[0]), cmp_str);
	printf("{");
	for (i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		read_line(path, "", value, sizeof(value));
		printf("%s\n  ", i ? "," : "");
		put_json_string(names[i]);
		printf(": ");
		put_json_string(value);
		free(names[i]);
	}
	printf("}");
}

static void put_host(void)
{
	struct utsname u;
	char buf[256];

	read_line("/proc/cpuinfo", "model name", buf, sizeof(buf));
	put_string("cpu_model", buf);
	uname(&u);
	snprintf(buf, sizeof(buf), "%s %s", u.sysname, u.release);
	put_string("kernel", buf);
	field_name("cpus");
	printf("%ld", sysconf(_SC_NPROCESSORS_ONLN));
	put_vulnerabilities();
	read_line("/proc/sys/kernel/io_uring_disabled", "", buf, sizeof(buf));
	put_string("io_uring_disabled_sysctl", buf[0] ? buf : "absent");
	read_line("/proc/self/status", "Seccomp:", buf, sizeof(buf));
	put_string("seccomp", buf);
	field_name("cpu");
	printf("%d", opt_cpu);
	field_name("peer_cpu");
	printf("%d", opt_peer_cpu);
}

/* ---- syscalls and the ring ---- */

static void measure_null_syscall(struct samples *s)
{
	int iters = 20000, i, k;

	for (k = 0; k < 6 * opt_scale; k++) {
		uint64_t t0 = thread_cpu_ns();

		for (i = 0; i < iters; i++)
			syscall(SYS_getppid);
		add(s, (double)(thread_cpu_ns() - t0) / iters);
	}
}

static int ring_init(struct io_uring *ring, unsigned int entries)
{
	struct io_uring_params p;
	int ret;

	/* The flags the shim asks for (shim/ring.c), the same fallback. */
	memset(&p, 0, sizeof(p));
	p.flags = IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN |
		  IORING_SETUP_SINGLE_ISSUER;
	ret = io_uring_queue_init_params(entries, ring, &p);
	if (ret == -EINVAL) {
		memset(&p, 0, sizeof(p));
		ret = io_uring_queue_init_params(entries, ring, &p);
	}
	return ret;
}

/* Nanoseconds per io_uring_enter that submits and reaps nops NOPs. */
static double time_nop_enters(struct io_uring *ring, int nops, int iters)
{
	struct io_uring_cqe *cqe;
	uint64_t t0 = thread_cpu_ns();
	int i, k;

	for (i = 0; i < iters; i++) {
		for (k = 0; k < nops; k++)
			io_uring_prep_nop(io_uring_get_sqe(ring));
		io_uring_submit_and_wait(ring, nops);
		for (k = 0; k < nops; k++) {
			if (io_uring_peek_cqe(ring, &cqe))
				break;
			io_uring_cqe_seen(ring, cqe);
		}
	}
	return (double)(thread_cpu_ns() - t0) / iters;
}

static bool measure_ring(struct samples *one, struct samples *each)
{
	struct io_uring ring;
	int ret = ring_init(&ring, 64), k;

	if (ret < 0) {
		note_error("io_uring_setup", -ret);
		return false;
	}
	time_nop_enters(&ring, 1, 1000);	/* warm */
	for (k = 0; k < 6 * opt_scale; k++) {
		double t1 = time_nop_enters(&ring, 1, 5000);
		double tn = time_nop_enters(&ring, BATCH_OPS, 2000);

		add(one, t1);
		add(each, (tn - t1) / (BATCH_OPS - 1));
	}
	io_uring_queue_exit(&ring);
	return true;
}

/* ---- context switches: two threads on one CPU, pipe ping-pong ---- */

struct pingpong {
	int to_peer[2], to_main[2];
	int rounds;
};

static void *pipe_peer(void *arg)
{
	struct pingpong *pp = arg;
	char c;
	int i;

	pin(opt_cpu);
	for (i = 0; i < pp->rounds; i++) {
		if (read_retry(pp->to_peer[0], &c, 1) != 1 ||
		    write_retry(pp->to_main[1], &c, 1) != 1)
			break;
	}
	return NULL;
}

static void measure_ctx_switch(struct samples *s)
{
	struct pingpong pp = { .rounds = 2000 };
	int k, i;
	char c = 'x';

	for (k = 0; k < 4 * opt_scale; k++) {
		pthread_t t;
		uint64_t t0, one_thread, two_threads;

		if (pipe(pp.to_peer) || pipe(pp.to_main)) {
			note_error("pipe", errno);
			return;
		}
		/* The same writes and reads without a switch. */
		t0 = now_ns();
		for (i = 0; i < pp.rounds; i++) {
			if (write_retry(pp.to_peer[1], &c, 1) != 1 ||
			    read_retry(pp.to_peer[0], &c, 1) != 1 ||
			    write_retry(pp.to_main[1], &c, 1) != 1 ||
			    read_retry(pp.to_main[0], &c, 1) != 1)
				break;
		}
		one_thread = now_ns() - t0;
		pthread_create(&t, NULL, pipe_peer, &pp);
		t0 = now_ns();
		for (i = 0; i < pp.rounds; i++) {
			if (write_retry(pp.to_peer[1], &c, 1) != 1 ||
			    read_retry(pp.to_main[0], &c, 1) != 1)
				break;
		}
		two_threads = now_ns() - t0;
		pthread_join(t, NULL);
		/* Two switches per round. */
		add(s, ((double)two_threads - (double)one_thread) /
		       (2.0 * pp.rounds));
		close(pp.to_peer[0]);
		close(pp.to_peer[1]);
		close(pp.to_main[0]);
		close(pp.to_main[1]);
	}
}

/* ---- wake-ups through a socket: epoll_wait and io_uring_enter ---- */

enum wait_kind { WAIT_EPOLL, WAIT_URING };

struct waker {
	int fd;			/* the peer's end of the socket pair */
	int cycles;
	bool sleeping;		/* write only after the waiter waits */
	_Atomic int phase;	/* 1: waiter about to wait, 2: written */
	_Atomic uint64_t sent_ns;
	_Atomic int done;	/* cycles the waiter finished */
};

static void spin_until(_Atomic int *v, int want)
{
	while (atomic_load(v) < want)
		;
}

static void *waker_main(void *arg)
{
	struct waker *w = arg;
	struct timespec gap = { 0, 100000 };	/* let the waiter sleep */
	char c = 'w';
	int i;

	pin(opt_peer_cpu);
	for (i = 0; i < w->cycles; i++) {
		if (w->sleeping) {
			spin_until(&w->phase, 1);
			nanosleep(&gap, NULL);
		}
		atomic_store(&w->sent_ns, now_ns());
		if (write_retry(w->fd, &c, 1) != 1)
			break;
		atomic_store(&w->phase, 2);
		spin_until(&w->done, i + 1);
	}
	return NULL;
}

#define BUF_COUNT	16
#define BUF_SIZE	256

/*
 * A multishot receive into a provided-buffer ring, armed once, the way the
 * shim receives; each wait is one io_uring_enter for one completion.
 */
struct uring_rx {
	struct io_uring ring;
	struct io_uring_buf_ring *br;
	char bufs[BUF_COUNT][BUF_SIZE];
};

static int uring_rx_setup(struct uring_rx *u, int fd)
{
	struct io_uring_buf_reg reg = { 0 };
	size_t size = BUF_COUNT * sizeof(struct io_uring_buf);
	struct io_uring_sqe *sqe;
	int ret, i;

	ret = ring_init(&u->ring, 16);
	if (ret < 0)
		return ret;
	if (posix_memalign((void **)&u->br, 4096, size)) {
		io_uring_queue_exit(&u->ring);
		return -ENOMEM;
	}
	reg.ring_addr = (uintptr_t)u->br;
	reg.ring_entries = BUF_COUNT;
	reg.bgid = 1;
	ret = io_uring_register_buf_ring(&u->ring, &reg, 0);
	if (ret < 0) {
		free(u->br);
		io_uring_queue_exit(&u->ring);
		return ret;
	}
	io_uring_buf_ring_init(u->br);
	for (i = 0; i < BUF_COUNT; i++)
		io_uring_buf_ring_add(u->br, u->bufs[i], BUF_SIZE, i,
				      io_uring_buf_ring_mask(BUF_COUNT), i);
	io_uring_buf_ring_advance(u->br, BUF_COUNT);
	sqe = io_uring_get_sqe(&u->ring);
	io_uring_prep_recv_multishot(sqe, fd, NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = 1;
	io_uring_submit(&u->ring);
	return 0;
}

static void uring_rx_exit(struct uring_rx *u)
{
	io_uring_queue_exit(&u->ring);
	free(u->br);
}

/* One wait for one receive completion; the buffer goes back at once. */
static int uring_rx_wait(struct uring_rx *u, int fd)
{
	struct io_uring_cqe *cqe;
	int res, ret;

	do
		ret = io_uring_wait_cqe(&u->ring, &cqe);
	while (ret == -EINTR);
	if (ret < 0)
		return ret;
	res = cqe->res;
	if (res > 0 && (cqe->flags & IORING_CQE_F_BUFFER)) {
		int bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;

		io_uring_buf_ring_add(u->br, u->bufs[bid], BUF_SIZE, bid,
				      io_uring_buf_ring_mask(BUF_COUNT), 0);
		io_uring_buf_ring_advance(u->br, 1);
	}
	if (!(cqe->flags & IORING_CQE_F_MORE)) {
		/* Re-armed when the kernel ended the multishot. */
		struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);

		io_uring_prep_recv_multishot(sqe, fd, NULL, 0, 0);
		sqe->flags |= IOSQE_BUFFER_SELECT;
		sqe->buf_group = 1;
		io_uring_submit(&u->ring);
	}
	io_uring_cqe_seen(&u->ring, cqe);
	return res;
}

/*
 * cycles wake-ups of this thread by a write on another CPU. latency gets
 * the time from the write to the wait's return (sleeping runs only), cpu
 * the CPU this thread was charged inside each wait call.
 */
static int run_wakeups(enum wait_kind kind, bool sleeping, int cycles,
		       struct samples *latency, struct samples *cpu)
{
	struct waker w = { .cycles = cycles, .sleeping = sleeping };
	struct epoll_event ev = { .events = EPOLLIN };
	struct uring_rx *u = NULL;
	int sv[2], ep = -1, i, ret = 0;
	pthread_t t;
	char c;

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
		return -errno;
	w.fd = sv[1];
	if (kind == WAIT_EPOLL) {
		ep = epoll_create1(0);
		epoll_ctl(ep, EPOLL_CTL_ADD, sv[0], &ev);
	} else {
		u = calloc(1, sizeof(*u));
		ret = u ? uring_rx_setup(u, sv[0]) : -ENOMEM;
		if (ret < 0) {
			free(u);
			close(sv[0]);
			close(sv[1]);
			return ret;
		}
	}
	pthread_create(&t, NULL, waker_main, &w);
	for (i = 0; i < cycles; i++) {
		uint64_t c0, c1, t1;

		if (sleeping)
			atomic_store(&w.phase, 1);
		else
			spin_until(&w.phase, 2);
		c0 = thread_cpu_ns();
		if (kind == WAIT_EPOLL) {
			do
				ret = epoll_wait(ep, &ev, 1, -1);
			while (ret < 0 && errno == EINTR);
			ret = ret == 1 ? 0 : -errno;
			c1 = thread_cpu_ns();
			t1 = now_ns();
			if (read_retry(sv[0], &c, 1) != 1)
				ret = -EIO;
		} else {
			ret = uring_rx_wait(u, sv[0]);
			c1 = thread_cpu_ns();
			t1 = now_ns();
			ret = ret == 1 ? 0 : ret < 0 ? ret : -EIO;
		}
		atomic_store(&w.phase, 0);
		if (sleeping)
			add(latency, (t1 - atomic_load(&w.sent_ns)) / 1e3);
		add(cpu, (double)(c1 - c0));
		atomic_store(&w.done, i + 1);
		if (ret < 0)
			break;
	}
	if (ret < 0) {
		/* Let the waker finish its cycle loop. */
		atomic_store(&w.phase, 2);
		atomic_store(&w.done, cycles);
	}
	pthread_join(t, NULL);
	if (u) {
		uring_rx_exit(u);
		free(u);
	}
	if (ep >= 0)
		close(ep);
	close(sv[0]);
	close(sv[1]);
	return ret;
}

/*
 * Wake-up latency and the CPU the sleeper pays for sleeping (the CPU
 * inside a wait that slept minus one that found the data already there),
 * for epoll_wait and io_uring_enter in alternating rounds, so that the
 * drift of a shared machine hits both alike; extra gets the paired
 * difference, ring minus epoll.
 */
static void measure_sleeps(bool ring_ok, struct samples latency[2],
			   struct samples sleep_cpu[2], struct samples *extra)
{
	static const char *what[2] = { "epoll wake-up", "io_uring wake-up" };
	bool failed[2] = { false, !ring_ok };
	int k, j;

	for (k = 0; k < 2 * opt_scale; k++) {
		double cost[2];
		bool got[2] = { false, false };

		for (j = 0; j < 2; j++) {
			enum wait_kind kind = (k + j) % 2 ? WAIT_URING :
							    WAIT_EPOLL;
			struct samples r = { .n = 0 }, s = { .n = 0 };
			int ret;

			if (failed[kind])
				continue;
			ret = run_wakeups(kind, false, 25 * opt_scale, NULL,
					  &r);
			if (!ret)
				ret = run_wakeups(kind, true, 25 * opt_scale,
						  &latency[kind], &s);
			if (ret) {
				note_error(what[kind], -ret);
				failed[kind] = true;
				continue;
			}
			cost[kind] = median(&s) - median(&r);
			add(&sleep_cpu[kind], cost[kind]);
			got[kind] = true;
		}
		if (got[WAIT_EPOLL] && got[WAIT_URING])
			add(extra, cost[WAIT_URING] - cost[WAIT_EPOLL]);
	}
}

/* ---- TCP over loopback ---- */

static int tcp_pair(int sv[2])
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	int lfd, one = 1;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (lfd < 0)
		return -errno;
	if (bind(lfd, (struct sockaddr *)&a, sizeof(a)) ||
	    listen(lfd, 1) || getsockname(lfd, (struct sockaddr *)&a, &len))
		goto fail_close;
	sv[1] = socket(AF_INET, SOCK_STREAM, 0);
	if (sv[1] < 0)
		goto fail_close;
	if (connect(sv[1], (struct sockaddr *)&a, sizeof(a)))
		goto fail_close_client;
	sv[0] = accept(lfd, NULL, NULL);
	if (sv[0] < 0)
		goto fail_close_client;
	close(lfd);
	setsockopt(sv[0], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(sv[1], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return 0;

fail_close_client:
	close(sv[1]);
fail_close:
	close(lfd);
	return -errno;
}

static uint64_t segs_out(int fd)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len))
		return 0;
	return ti.tcpi_segs_out;
}

struct echo {
	int fd;
	int rounds;
	bool spin;
	int size;	/* bytes per message */
};

static ssize_t read_some(int fd, void *buf, size_t len, bool spin)
{
	ssize_t n;

	do
		n = recv(fd, buf, len, spin ? MSG_DONTWAIT : 0);
	while (n < 0 && (errno == EAGAIN || errno == EINTR));
	return n;
}

/* Read exactly len bytes; false at EOF or on an error. */
static bool read_full(int fd, char *buf, size_t len, bool spin)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = read_some(fd, buf + got, len - got, spin);

		if (n <= 0)
			return false;
		got += n;
	}
	return true;
}

/* The peer: answers every message with one of the same size. */
static void *echo_main(void *arg)
{
	struct echo *e = arg;
	char buf[256];
	int i;

	pin(opt_peer_cpu);
	for (i = 0; i < e->rounds; i++) {
		if (!read_full(e->fd, buf, e->size, e->spin) ||
		    write_retry(e->fd, buf, e->size) != e->size)
			break;
	}
	return NULL;
}

enum write_mode {
	WRITE_ONE,	/* the request in one write: one segment */
	WRITE_TWO,	/* in two writes: two segments */
	WRITE_CORKED,	/* two writes, the first with MSG_MORE: one segment */
};

static bool send_request(int fd, const char *buf, int size,
			 enum write_mode mode)
{
	int half = size / 2;
	ssize_t n;

	if (mode == WRITE_ONE)
		return write_retry(fd, buf, size) == size;
	do
		n = send(fd, buf, half, mode == WRITE_CORKED ? MSG_MORE : 0);
	while (n < 0 && errno == EINTR);
	return n == half && write_retry(fd, buf + half, size - half) ==
			    size - half;
}

/*
 * rounds request/response exchanges of size bytes with the peer thread.
 * oneway gets half of each round trip in microseconds; send_cpu the CPU
 * this thread was charged for writing each request, which on loopback
 * includes delivering the segments to the peer's socket and waking the
 * peer; segs the segments this side sent.
 */
static int exchange(bool spin, int size, int rounds, enum write_mode mode,
		    struct samples *oneway, struct samples *send_cpu,
		    uint64_t *segs)
{
	struct echo e = { .rounds = rounds, .spin = spin, .size = size };
	char buf[256] = { 0 };
	int sv[2] = { -1, -1 }, i, ret;
	uint64_t s0;
	pthread_t t;

	ret = tcp_pair(sv);
	if (ret)
		return ret;
	e.fd = sv[1];
	pthread_create(&t, NULL, echo_main, &e);
	s0 = segs_out(sv[0]);
	for (i = 0; i < rounds; i++) {
		uint64_t t0 = now_ns(), c0 = thread_cpu_ns(), c1;

		if (!send_request(sv[0], buf, size, mode))
			break;
		c1 = thread_cpu_ns();
		if (!read_full(sv[0], buf, size, spin))
			break;
		if (i < 20)	/* the first rounds warm the path */
			continue;
		if (oneway)
			add(oneway, (now_ns() - t0) / 2e3);
		if (send_cpu)
			add(send_cpu, (double)(c1 - c0));
	}
	*segs = segs_out(sv[0]) - s0;
	shutdown(sv[0], SHUT_RDWR);
	pthread_join(t, NULL);
	close(sv[0]);
	close(sv[1]);
	return i == rounds ? 0 : -EIO;
}

static void measure_loopback(bool spin, struct samples *s)
{
	uint64_t segs;
	int ret = exchange(spin, 1, 200 * opt_scale, WRITE_ONE, s, NULL,
			   &segs);

	if (ret)
		note_error("loopback TCP", -ret);
}

/*
 * What one more TCP segment costs its sender on loopback, the peer
 * polling: a 64-byte request written in two writes that make two segments,
 * against two writes the first of which says MSG_MORE, which make one:
 * the same calls and bytes, one segment fewer (its build, transmission,
 * delivery and the peer's receive processing, which loopback runs on the
 * sender's CPU). And what waking the peer costs the sender when it sleeps
 * on another CPU: one write to a sleeping peer against one to a polling
 * peer (on a VM the inter-processor interrupt is the dear part).
 */
static void measure_tcp_segment(struct samples *seg,
				struct samples *wake_remote)
{
	int rounds = 250 * opt_scale, k, ret = 0;

	for (k = 0; k < 2 + opt_scale && !ret; k++) {
		struct samples two = { .n = 0 }, corked = { .n = 0 };
		struct samples polled = { .n = 0 }, slept = { .n = 0 };
		uint64_t s_two = 0, s_corked = 0, s_p = 0, s_s = 0;

		ret = exchange(true, 64, rounds, WRITE_TWO, NULL, &two,
			       &s_two);
		if (!ret)
			ret = exchange(true, 64, rounds, WRITE_CORKED, NULL,
				       &corked, &s_corked);
		if (!ret)
			ret = exchange(true, 64, rounds, WRITE_ONE, NULL,
				       &polled, &s_p);
		if (!ret)
			ret = exchange(false, 64, rounds, WRITE_ONE, NULL,
				       &slept, &s_s);
		if (ret)
			break;
		/* Per extra segment, counted rather than assumed. */
		if (s_two > s_corked)
			add(seg, (median(&two) - median(&corked)) * rounds /
				 (double)(s_two - s_corked));
		add(wake_remote, median(&slept) - median(&polled));
	}
	if (ret)
		note_error("loopback TCP", -ret);
}

/* ---- epoll ---- */

#define EPOLL_READY	32

/*
 * What each ready socket adds to an epoll_wait that reports it (checking
 * its readiness, copying the event out, requeueing it for level-triggered
 * mode): a wait over EPOLL_READY readable TCP sockets against one over a
 * single readable socket. A ring's completions replace these events.
 */
static void measure_epoll_event(struct samples *s)
{
	struct epoll_event ev[EPOLL_READY];
	int sv[EPOLL_READY][2], ep_all, ep_one, n = 0, k, i, ret = 0;

	ep_all = epoll_create1(0);
	ep_one = epoll_create1(0);
	for (n = 0; n < EPOLL_READY; n++) {
		struct epoll_event e = { .events = EPOLLIN };

		ret = tcp_pair(sv[n]);
		if (ret)
			break;
		if (write_retry(sv[n][1], "x", 1) != 1) {
			ret = -errno;
			n++;
			break;
		}
		epoll_ctl(ep_all, EPOLL_CTL_ADD, sv[n][0], &e);
		if (n == 0)
			epoll_ctl(ep_one, EPOLL_CTL_ADD, sv[n][0], &e);
	}
	/* The byte written last must have arrived. */
	for (k = 0; !ret && k < 1000 &&
	     epoll_wait(ep_all, ev, EPOLL_READY, 0) < EPOLL_READY; k++)
		usleep(100);
	for (k = 0; !ret && k < 6 * opt_scale; k++) {
		uint64_t t0 = thread_cpu_ns(), t1, t2;

		for (i = 0; i < 2000; i++)
			epoll_wait(ep_all, ev, EPOLL_READY, 0);
		t1 = thread_cpu_ns();
		for (i = 0; i < 2000; i++)
			epoll_wait(ep_one, ev, EPOLL_READY, 0);
		t2 = thread_cpu_ns();
		add(s, ((double)(t1 - t0) - (double)(t2 - t1)) /
		       (2000.0 * (EPOLL_READY - 1)));
	}
	if (ret)
		note_error("loopback TCP", -ret);
	for (i = 0; i < n; i++) {
		close(sv[i][0]);
		close(sv[i][1]);
	}
	close(ep_all);
	close(ep_one);
}

/* ---- alternating user and kernel work ---- */

#define WORK_WORDS	16384	/* 64 KiB: beyond L1d, like a server's state */
#define ALT_BATCH	16	/* messages per group */

static uint32_t work_table[WORK_WORDS];

/* About a microsecond of user work: a pseudo-random walk over the table. */
static uint32_t user_work(uint32_t seed)
{
	uint32_t x = seed, sum = 0;
	int i;

	for (i = 0; i < 300; i++) {
		x = x * 1664525u + 1013904223u;
		sum += work_table[x % WORK_WORDS];
		work_table[(x >> 7) % WORK_WORDS] ^= sum;
	}
	return sum;
}

/*
 * groups * ALT_BATCH rounds of user work plus a 64-byte TCP write and the
 * read of it on loopback (both ends in this thread), either each write
 * and read right after its user work (interleaved, as an epoll server
 * does) or the user work of a whole group first and then its writes and
 * reads (batched, as a ring does). Returns this thread's CPU nanoseconds
 * (time other tasks took the CPU does not count), 0 on an error.
 */
static uint64_t alternate(int sv[2], int groups, bool interleaved,
			  uint32_t *sink)
{
	char buf[64] = { 0 };
	uint64_t t0 = thread_cpu_ns();
	int g, i;

	for (g = 0; g < groups; g++) {
		for (i = 0; i < ALT_BATCH; i++) {
			*sink += user_work(g * ALT_BATCH + i);
			if (interleaved &&
			    (write_retry(sv[0], buf, 64) != 64 ||
			     !read_full(sv[1], buf, 64, false)))
				return 0;
		}
		for (i = 0; !interleaved && i < ALT_BATCH; i++)
			if (write_retry(sv[0], buf, 64) != 64)
				return 0;
		for (i = 0; !interleaved && i < ALT_BATCH; i++)
			if (!read_full(sv[1], buf, 64, false))
				return 0;
	}
	return thread_cpu_ns() - t0;
}

/*
 * One round of the interleaved-against-batched comparison on a socket
 * pair: nanoseconds per message the interleaved order costs more, and
 * the segments both ends sent more (0 on a UNIX socket). Returns false on
 * an error.
 */
static bool alternation_round(int sv[2], bool tcp, int k, double *extra_ns,
			      double *extra_segs)
{
	int groups = 50, n = groups * ALT_BATCH;
	bool first = k % 2;
	uint64_t s0, s1, s2, a, b;
	uint32_t sink = 0;

	s0 = tcp ? segs_out(sv[0]) + segs_out(sv[1]) : 0;
	a = alternate(sv, groups, first, &sink);
	s1 = tcp ? segs_out(sv[0]) + segs_out(sv[1]) : 0;
	b = alternate(sv, groups, !first, &sink);
	s2 = tcp ? segs_out(sv[0]) + segs_out(sv[1]) : 0;
	/* Keeps the user work from being optimised away. */
	if (sink == 0x5eed)
		fputc(' ', stderr);
	if (!a || !b)
		return false;
	if (first) {
		*extra_ns = ((double)a - (double)b) / n;
		*extra_segs = ((double)(s1 - s0) - (double)(s2 - s1)) / n;
	} else {
		*extra_ns = ((double)b - (double)a) / n;
		*extra_segs = ((double)(s2 - s1) - (double)(s1 - s0)) / n;
	}
	return true;
}

/*
 * The same user work, writes and reads, interleaved against batched.
 * On a UNIX socket the difference per syscall is what a syscall costs the
 * code around it beyond its own entry and work: the caches and branch
 * predictors each side refills after the other (FlexSC's "indirect
 * cost"). On TCP the interleaved order also makes the reader acknowledge
 * every message while the batched one acknowledges a group at once, as a
 * ring's batched receives do: the extra time, less the indirect cost of
 * its syscalls, over the extra segments is the cost of a pure ACK.
 */
static void measure_alternation(struct samples *indirect,
				struct samples *ack)
{
	int ux[2] = { -1, -1 }, tcp[2] = { -1, -1 }, k, ret;
	uint32_t sink = 0;

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, ux)) {
		note_error("socketpair", errno);
		return;
	}
	ret = tcp_pair(tcp);
	if (ret) {
		note_error("loopback TCP", -ret);
		close(ux[0]);
		close(ux[1]);
		return;
	}
	alternate(ux, 10, true, &sink);		/* warm */
	alternate(tcp, 10, true, &sink);
	for (k = 0; k < 2 + 2 * opt_scale; k++) {
		double ux_ns, ux_segs, tcp_ns, tcp_segs;

		if (!alternation_round(ux, false, k, &ux_ns, &ux_segs) ||
		    !alternation_round(tcp, true, k, &tcp_ns, &tcp_segs)) {
			note_error("alternation", EIO);
			break;
		}
		/* two syscalls per message */
		add(indirect, ux_ns / 2);
		if (tcp_segs > 0.1)
			add(ack, (tcp_ns - ux_ns) / tcp_segs);
	}
	close(ux[0]);
	close(ux[1]);
	close(tcp[0]);
	close(tcp[1]);
}

/* ---- the shim's own calls (run with the shim preloaded) ---- */

#define SHIM_CALLS	128	/* 64-byte calls per sample: 8 KiB queued */

struct drainer {
	int fd;
	_Atomic int stop;
};

/* The peer of the write test: reads whatever arrives until told to stop. */
static void *drain_main(void *arg)
{
	struct drainer *d = arg;
	char buf[65536];

	pin(opt_peer_cpu);
	while (!atomic_load(&d->stop))
		if (recv(d->fd, buf, sizeof(buf), MSG_DONTWAIT) == 0)
			break;
	return NULL;
}

/*
 * The shim's own counters for this process (its stats file), so the
 * report can tell whether the calls measured were the shim's: queued
 * writes and reads served from its buffer. -1 without a stats file.
 */
/* Is path mapped into this process (the shim maps its stats file)? */
static bool mapped_here(const char *path)
{
	char line[1024];
	size_t len = strlen(path);
	bool found = false;
	FILE *maps = fopen("/proc/self/maps", "r");

	if (!maps)
		return false;
	while (!found && fgets(line, sizeof(line), maps)) {
		char *name = strchr(line, '/');

		found = name && !strncmp(name, path, len) &&
			(name[len] == '\n' || name[len] == ' ');
	}
	fclose(maps);
	return found;
}

static void shim_counters(long long *queued, long long *served)
{
	static struct shim_stats_file st;
	const char *dir = getenv("URINGSHIM_STATS_DIR");
	char path[512];
	int fd, i;

	*queued = *served = -1;
	snprintf(path, sizeof(path), "%s/uringshim.%d", dir ? dir : "/dev/shm",
		 (int)getpid());
	/* A file left by a killed process whose pid we reuse is not ours. */
	if (!mapped_here(path))
		return;
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return;
	if (read(fd, &st, sizeof(st)) == sizeof(st) &&
	    st.magic == SHIM_STATS_MAGIC && st.version == SHIM_STATS_VERSION) {
		*queued = *served = 0;
		for (i = 0; i < SHIM_STATS_SLOTS; i++) {
			*queued += st.slot[i].sends_queued;
			*served += st.slot[i].served_from_buffer;
		}
	}
	close(fd);
}

/*
 * What the preloaded shim costs in user space per call that never enters
 * the kernel: a 64-byte write it queues for the next wait point, and a
 * 64-byte read it serves from the bytes it already received. The socket
 * is made the way a server's is: accepted, non-blocking, in an epoll set.
 * Without the shim (or when it does not take the socket) the same calls
 * are syscalls and cost ten times more: bench/ab checks which it was.
 */
static void measure_shim_calls(struct samples *wr, struct samples *rd)
{
	struct epoll_event ev = { .events = EPOLLIN };
	struct drainer d = { .fd = -1 };
	char buf[SHIM_CALLS * 64] = { 0 };
	int sv[2] = { -1, -1 }, ep, k, i, ret, avail;
	pthread_t t;

	ret = tcp_pair(sv);
	if (ret) {
		note_error("loopback TCP", -ret);
		return;
	}
	fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
	ep = epoll_create1(0);
	epoll_ctl(ep, EPOLL_CTL_ADD, sv[0], &ev);
	epoll_wait(ep, &ev, 1, 0);	/* the shim's first wait point */
	d.fd = sv[1];
	pthread_create(&t, NULL, drain_main, &d);
	for (k = 0; k < 6 * opt_scale; k++) {
		uint64_t c0 = thread_cpu_ns(), c1;

		for (i = 0; i < SHIM_CALLS; i++)
			if (write_retry(sv[0], buf, 64) != 64)
				break;
		c1 = thread_cpu_ns();
		epoll_wait(ep, &ev, 1, 0);	/* flushes what was queued */
		if (i < SHIM_CALLS) {
			note_error("write", errno);
			break;
		}
		add(wr, (double)(c1 - c0) / SHIM_CALLS);
	}
	atomic_store(&d.stop, 1);
	pthread_join(t, NULL);
	for (k = 0; k < 6 * opt_scale; k++) {
		uint64_t c0, c1;

		if (write_retry(sv[1], buf, sizeof(buf)) != sizeof(buf))
			break;
		/* Waits until every byte is readable on this side. */
		for (i = 0; i < 10000; i++) {
			epoll_wait(ep, &ev, 1, 10);
			if (!ioctl(sv[0], FIONREAD, &avail) &&
			    avail >= (int)sizeof(buf))
				break;
		}
		c0 = thread_cpu_ns();
		for (i = 0; i < SHIM_CALLS; i++)
			if (read(sv[0], buf, 64) != 64)
				break;
		c1 = thread_cpu_ns();
		if (i < SHIM_CALLS) {
			note_error("read", errno);
			break;
		}
		add(rd, (double)(c1 - c0) / SHIM_CALLS);
	}
	close(ep);
	close(sv[0]);
	close(sv[1]);
}

/* ---- main ---- */

static void usage(FILE *f)
{
	fprintf(f, "usage: hostprof [--cpu C] [--peer-cpu C] [--quick] "
		   "[--shim-calls]\n"
		   "  --cpu C        CPU of the measuring thread (default 0)\n"
		   "  --peer-cpu C   CPU of its peer thread (default 1)\n"
		   "  --quick        fewer samples (about a second)\n"
		   "  --shim-calls   only write_call_ns and read_call_ns: "
		   "64-byte writes\n"
		   "                 and reads on an accepted non-blocking "
		   "socket in an\n"
		   "                 epoll set (run it with the shim "
		   "preloaded)\n"
		   "Prints the host's unit costs as JSON (see the source's "
		   "header).\n");
}

static bool parse_cpu(const char *s, int *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || end == s || v < -1 || v > CPU_SETSIZE - 1)
		return false;
	*out = (int)v;
	return true;
}

int main(int argc, char **argv)
{
	static struct samples null_sys, enter1, op, ctxsw, wake[2];
	static struct samples sleep_cpu[2], sleep_extra, lo, lo_spin, seg;
	static struct samples wake_remote, indirect, ack, epoll_event;
	static struct samples shim_write, shim_read;
	bool ring_ok;
	int i;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick")) {
			opt_scale = 1;
		} else if (!strcmp(argv[i], "--shim-calls")) {
			opt_shim_calls = true;
		} else if (!strcmp(argv[i], "--cpu") && i + 1 < argc) {
			if (!parse_cpu(argv[++i], &opt_cpu))
				goto bad;
		} else if (!strcmp(argv[i], "--peer-cpu") && i + 1 < argc) {
			if (!parse_cpu(argv[++i], &opt_peer_cpu))
				goto bad;
		} else if (!strcmp(argv[i], "-h") ||
			   !strcmp(argv[i], "--help")) {
			usage(stdout);
			return 0;
		} else {
			goto bad;
		}
	}
	pin(opt_cpu);

	if (opt_shim_calls) {
		long long queued, served;

		measure_shim_calls(&shim_write, &shim_read);
		shim_counters(&queued, &served);
		printf("{");
		put_samples("write_call_ns", &shim_write);
		put_samples("read_call_ns", &shim_read);
		field_name("calls");
		printf("%d", shim_write.n * SHIM_CALLS);
		field_name("shim_sends_queued");
		printf("%lld", queued);
		field_name("shim_served_from_buffer");
		printf("%lld", served);
		put_string("errors", errors);
		printf("\n}\n");
		return 0;
	}
	measure_null_syscall(&null_sys);
	ring_ok = measure_ring(&enter1, &op);
	measure_ctx_switch(&ctxsw);
	measure_sleeps(ring_ok, wake, sleep_cpu, &sleep_extra);
	measure_loopback(false, &lo);
	measure_loopback(true, &lo_spin);
	measure_tcp_segment(&seg, &wake_remote);
	measure_alternation(&indirect, &ack);
	measure_epoll_event(&epoll_event);

	printf("{");
	put_host();
	put_samples("null_syscall_ns", &null_sys);
	put_samples("uring_enter_1op_ns", &enter1);
	put_samples("uring_op_ns", &op);
	put_samples("ctx_switch_ns", &ctxsw);
	put_samples("wakeup_us", &wake[WAIT_EPOLL]);
	put_samples("uring_wakeup_us", &wake[WAIT_URING]);
	put_samples("epoll_sleep_cpu_ns", &sleep_cpu[WAIT_EPOLL]);
	put_samples("uring_sleep_cpu_ns", &sleep_cpu[WAIT_URING]);
	put_samples("uring_sleep_extra_ns", &sleep_extra);
	put_samples("loopback_oneway_us", &lo);
	put_samples("loopback_oneway_spin_us", &lo_spin);
	put_samples("tcp_segment_ns", &seg);
	put_samples("wake_remote_ns", &wake_remote);
	put_samples("tcp_ack_ns", &ack);
	put_samples("syscall_indirect_ns", &indirect);
	put_samples("epoll_event_ns", &epoll_event);
	put_string("errors", errors);
	printf("\n}\n");
	return 0;

bad:
	usage(stderr);
	return 2;
}
