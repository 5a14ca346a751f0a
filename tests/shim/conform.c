/*
 * conform.c - transcript, check and socket helpers for the shim
 * conformance programs (see conform.h).
 */
#include "conform.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Atomic: checks also run on helper threads. */
static atomic_int failures;

void say(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

void expect_at(bool ok, const char *what, const char *file, int line)
{
	if (ok)
		return;
	atomic_fetch_add(&failures, 1);
	/* stdout too, so the failing check sits in the transcript diff. */
	printf("CHECK FAILED %s:%d: %s\n", file, line, what);
	fflush(stdout);
}

int conform_finish(void)
{
	int failed = atomic_load(&failures);

	if (failed)
		say("FAIL (%d checks)", failed);
	else
		say("PASS");
	fflush(stdout);
	return failed ? 1 : 0;
}

void die_errno(const char *what)
{
	printf("FATAL %s: %s\n", what, errno_name(errno));
	fflush(stdout);
	exit(1);
}

void skip(const char *why)
{
	printf("%s\n", why);
	fflush(stdout);
	exit(77);
}

/*
 * keep_shim_stats - with CONFORM_KEEP_STATS=dir, link the shim's stats
 * file of this process into dir under the same name, so the suite can
 * read this run's counters (did the sockets go through the ring?) after
 * the process is gone: the shim removes its file at exit, but the link
 * keeps the inode, and the shim's shared mapping counts into it to the
 * end. A constructor of the program runs after the preloaded shim's,
 * which made the file. Without the shim (or with URINGSHIM_STATS=0)
 * there is no file and nothing is linked; the suite says so.
 */
__attribute__((constructor)) static void keep_shim_stats(void)
{
	const char *keep = getenv("CONFORM_KEEP_STATS");
	const char *dir = getenv("URINGSHIM_STATS_DIR");
	char from[512], to[512];

	if (!keep || !*keep)
		return;
	if (!dir || !*dir)
		dir = "/dev/shm";
	snprintf(from, sizeof(from), "%s/uringshim.%d", dir, (int)getpid());
	snprintf(to, sizeof(to), "%s/uringshim.%d", keep, (int)getpid());
	if (link(from, to) && errno != ENOENT)
		fprintf(stderr, "conform: cannot keep %s as %s: %s\n", from,
			to, strerror(errno));
}

const char *errno_name(int err)
{
	static __thread char unknown[24];
	const char *name;

	if (err == 0)
		return "0";
	name = strerrorname_np(err);
	if (name)
		return name;
	snprintf(unknown, sizeof(unknown), "errno%d", err);
	return unknown;
}

const char *epoll_event_names(uint32_t events)
{
	static const struct {
		uint32_t bit;
		const char *name;
	} bits[] = {
		{ EPOLLIN, "IN" }, { EPOLLPRI, "PRI" }, { EPOLLOUT, "OUT" },
		{ EPOLLERR, "ERR" }, { EPOLLHUP, "HUP" },
		{ EPOLLRDHUP, "RDHUP" }, { EPOLLRDNORM, "RDNORM" },
		{ EPOLLWRNORM, "WRNORM" },
	};
	/* Per thread: corners print from several. */
	static __thread char ring[4][96];
	static __thread unsigned next;
	char *buf = ring[next++ % 4];
	size_t used = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < sizeof(bits) / sizeof(bits[0]); i++) {
		if (!(events & bits[i].bit))
			continue;
		used += snprintf(buf + used, 96 - used, "%s%s",
				 used ? "|" : "", bits[i].name);
		events &= ~bits[i].bit;
	}
	if (events)
		snprintf(buf + used, 96 - used, "%s0x%x", used ? "|" : "",
			 events);
	else if (!used)
		snprintf(buf, 96, "none");
	return buf;
}

const char *result_text(ssize_t ret)
{
	static __thread char ring[4][64];
	static __thread unsigned next;
	char *buf = ring[next++ % 4];

	if (ret < 0)
		snprintf(buf, 64, "ret=%zd %s", ret, errno_name(errno));
	else
		snprintf(buf, 64, "ret=%zd", ret);
	return buf;
}

int tcp_listener(int family)
{
	struct sockaddr_storage addr = { 0 };
	socklen_t len;
	int fd, one = 1;

	fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		die_errno("socket");
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (family == AF_INET6) {
		struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&addr;

		a6->sin6_family = AF_INET6;
		a6->sin6_addr = in6addr_loopback;
		len = sizeof(*a6);
	} else {
		struct sockaddr_in *a4 = (struct sockaddr_in *)&addr;

		a4->sin_family = AF_INET;
		a4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		len = sizeof(*a4);
	}
	if (bind(fd, (struct sockaddr *)&addr, len) < 0) {
		if (family == AF_INET6 && errno == EADDRNOTAVAIL)
			skip("::1 is not configured");
		die_errno("bind");
	}
	if (listen(fd, 64) < 0)
		die_errno("listen");
	return fd;
}

int tcp_connect_to(int listener)
{
	struct sockaddr_storage addr;
	socklen_t len = sizeof(addr);
	int fd;

	if (getsockname(listener, (struct sockaddr *)&addr, &len) < 0)
		die_errno("getsockname");
	fd = socket(addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		die_errno("socket");
	if (connect(fd, (struct sockaddr *)&addr, len) < 0)
		die_errno("connect");
	return fd;
}

void tcp_pair_from(int listener, int *client, int *server)
{
	*client = tcp_connect_to(listener);
	/* The handshake is complete once connect() returns on loopback. */
	if (!(wait_fd(listener, POLLIN) & POLLIN)) {
		errno = ETIMEDOUT;
		die_errno("accept wait");
	}
	*server = accept4(listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (*server < 0)
		die_errno("accept4");
}

void tcp_pair(int family, int *client, int *server)
{
	int listener = tcp_listener(family);

	tcp_pair_from(listener, client, server);
	close(listener);
}

void set_nonblock(int fd, bool on)
{
	int flags = fcntl(fd, F_GETFL);

	if (flags < 0)
		die_errno("F_GETFL");
	flags = on ? flags | O_NONBLOCK : flags & ~O_NONBLOCK;
	if (fcntl(fd, F_SETFL, flags) < 0)
		die_errno("F_SETFL");
}

void close_fds(const int *fds, size_t count)
{
	for (size_t i = 0; i < count; i++)
		close(fds[i]);
}

int epoll_new(void)
{
	int epfd = epoll_create1(EPOLL_CLOEXEC);

	if (epfd < 0)
		die_errno("epoll_create1");
	return epfd;
}

void serve_fd(int fd)
{
	static int server_epfd = -1;

	if (server_epfd < 0)
		server_epfd = epoll_new();
	epoll_add(server_epfd, fd, EPOLLIN | EPOLLOUT | EPOLLET, fd);
}

static void epoll_ctl_or_die(int epfd, int op, int fd, uint32_t events,
			     uint64_t data)
{
	struct epoll_event ev = { .events = events, .data.u64 = data };

	if (epoll_ctl(epfd, op, fd, &ev) < 0)
		die_errno("epoll_ctl");
}

void epoll_add(int epfd, int fd, uint32_t events, uint64_t data)
{
	epoll_ctl_or_die(epfd, EPOLL_CTL_ADD, fd, events, data);
}

int tcp_pair_epoll(int *client, int *server, uint32_t events, uint64_t data)
{
	int epfd;

	tcp_pair(AF_INET, client, server);
	epfd = epoll_new();
	epoll_add(epfd, *server, events, data);
	return epfd;
}

void epoll_mod(int epfd, int fd, uint32_t events, uint64_t data)
{
	epoll_ctl_or_die(epfd, EPOLL_CTL_MOD, fd, events, data);
}

static int compare_event_data(const void *a, const void *b)
{
	const struct epoll_event *x = a, *y = b;

	return x->data.u64 < y->data.u64 ? -1 : x->data.u64 > y->data.u64;
}

int epoll_report(int epfd, int timeout_ms, const char *label,
		 struct epoll_event *out, int max)
{
	struct epoll_event evs[16];
	int n;

	n = epoll_wait(epfd, evs, 16, timeout_ms);
	if (n < 0) {
		say("%s: %s", label, result_text(n));
		return n;
	}
	qsort(evs, n, sizeof(evs[0]), compare_event_data);
	printf("%s: n=%d", label, n);
	for (int i = 0; i < n; i++)
		printf(" [0x%llx %s]", (unsigned long long)evs[i].data.u64,
		       epoll_event_names(evs[i].events));
	putchar('\n');
	if (out)
		memcpy(out, evs, sizeof(evs[0]) * (n < max ? n : max));
	return n;
}

void expect_no_report_at(int epfd, int timeout_ms, const char *label,
			 const char *file, int line)
{
	int n = epoll_report(epfd, timeout_ms, label, NULL, 0);

	expect_at(n == 0, "expect_no_report: nothing ready", file, line);
}

long elapsed_ms(const struct timespec *start)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - start->tv_sec) * 1000 +
	       (now.tv_nsec - start->tv_nsec) / 1000000;
}

static void pause_briefly(void)
{
	nanosleep(&(struct timespec){ 0, 10 * 1000 * 1000 }, NULL);
}

bool epoll_wait_for(int epfd, uint32_t bits, struct epoll_event *ev)
{
	struct timespec start;

	*ev = (struct epoll_event){ 0 };
	clock_gettime(CLOCK_MONOTONIC, &start);
	do {
		if (epoll_wait(epfd, ev, 1, WAIT_MS) == 1 &&
		    (ev->events & bits))
			return true;
		pause_briefly();
	} while (elapsed_ms(&start) < WAIT_MS);
	return false;
}

bool poll_wait_for(int fd, short events, short bits, short *revents)
{
	struct pollfd pfd = { .fd = fd, .events = events };
	struct timespec start;

	clock_gettime(CLOCK_MONOTONIC, &start);
	do {
		pfd.revents = 0;
		if (poll(&pfd, 1, WAIT_MS) == 1 && (pfd.revents & bits)) {
			*revents = pfd.revents;
			return true;
		}
		pause_briefly();
	} while (elapsed_ms(&start) < WAIT_MS);
	*revents = pfd.revents;
	return false;
}

short wait_fd(int fd, short events)
{
	return wait_fd_ms(fd, events, WAIT_MS);
}

short wait_fd_ms(int fd, short events, int timeout_ms)
{
	struct pollfd pfd = { .fd = fd, .events = events };
	int n;

	do
		n = poll(&pfd, 1, timeout_ms);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		die_errno("poll");
	return n ? pfd.revents : 0;
}

size_t read_stream(int fd, void *buf, size_t len, bool *eof, int *err)
{
	size_t got = 0;

	*eof = false;
	*err = 0;
	while (got < len) {
		ssize_t n;

		/* Wait first so that blocking descriptors never hang us. */
		if (!wait_fd(fd, POLLIN)) {
			*err = ETIMEDOUT;
			break;
		}
		n = read(fd, (char *)buf + got, len - got);
		if (n > 0) {
			got += n;
			continue;
		}
		if (n == 0) {
			*eof = true;
			break;
		}
		if (errno == EINTR || errno == EAGAIN)
			continue;
		*err = errno;
		break;
	}
	return got;
}

void write_all(int fd, const void *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = write(fd, (const char *)buf + done, len - done);

		if (n > 0) {
			done += n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN && wait_fd(fd, POLLOUT))
			continue;
		die_errno("write_all");
	}
}

bool put_text_at(int fd, const char *text, const char *file, int line)
{
	ssize_t ret = write(fd, text, strlen(text));
	bool whole = ret == (ssize_t)strlen(text);

	expect_at(whole, "put_text: write returned strlen(text)", file, line);
	return whole;
}

void read_print(int fd, size_t len, const char *label)
{
	char buf[64];
	ssize_t ret = read(fd, buf, len < sizeof(buf) ? len : sizeof(buf));

	say("%s: %s '%.*s'", label, result_text(ret), (int)(ret > 0 ? ret : 0),
	    buf);
}

void expect_stream(int fd, const char *label, const char *want, int want_err)
{
	char buf[256];
	bool eof;
	int err;
	size_t got = read_stream(fd, buf, sizeof(buf) - 1, &eof, &err);

	buf[got] = '\0';
	say("%s: '%s' eof=%d %s", label, buf, eof, errno_name(err));
	expect(!strcmp(buf, want) && err == want_err && eof == !want_err);
}

pid_t fork_flushed(void)
{
	pid_t pid;

	fflush(stdout);
	pid = fork();
	if (pid < 0)
		die_errno("fork");
	return pid;
}

int child_accept(int listener)
{
	int conn;

	if (!wait_fd(listener, POLLIN))
		_exit(2);
	conn = accept4(listener, NULL, NULL, SOCK_NONBLOCK);
	if (conn < 0)
		_exit(3);
	return conn;
}

uint64_t fill_until_eagain(int fd, uint32_t seed)
{
	uint8_t buf[16 * 1024];
	uint64_t sent = 0;

	for (;;) {
		ssize_t ret;

		pattern_fill(buf, sizeof(buf), seed, sent);
		ret = write(fd, buf, sizeof(buf));
		if (ret < 0)
			break;
		sent += ret;
	}
	expect(errno == EAGAIN);
	return sent;
}

uint8_t pattern_byte(uint32_t seed, uint64_t offset)
{
	uint64_t x = (offset + 1) * 0x9e3779b97f4a7c15ull ^ seed;

	return (uint8_t)(x >> 29 ^ x >> 47);
}

void pattern_fill(void *buf, size_t len, uint32_t seed, uint64_t offset)
{
	uint8_t *p = buf;

	for (size_t i = 0; i < len; i++)
		p[i] = pattern_byte(seed, offset + i);
}

size_t pattern_check(const void *buf, size_t len, uint32_t seed,
		     uint64_t offset)
{
	const uint8_t *p = buf;

	for (size_t i = 0; i < len; i++)
		if (p[i] != pattern_byte(seed, offset + i))
			return i;
	return len;
}

static void *stream_check_run(void *arg)
{
	struct stream_check *sc = arg;
	size_t size = 256 * 1024;
	uint8_t *buf = malloc(size);

	if (!buf) {
		sc->err = ENOMEM;
		return NULL;
	}
	if (sc->delay_ms)
		nanosleep(&(struct timespec){ sc->delay_ms / 1000,
				(sc->delay_ms % 1000) * 1000000L }, NULL);
	for (;;) {
		ssize_t n;
		size_t ok;

		if (!wait_fd_ms(sc->fd, POLLIN, STREAM_IDLE_MS)) {
			sc->err = ETIMEDOUT;
			break;
		}
		n = read(sc->fd, buf, size);
		if (n == 0) {
			sc->eof = true;
			break;
		}
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			sc->err = errno;
			break;
		}
		ok = pattern_check(buf, n, sc->seed, sc->got);
		if (ok < (size_t)n && sc->bad_at == UINT64_MAX)
			sc->bad_at = sc->got + ok;
		sc->got += n;
	}
	free(buf);
	return NULL;
}

void stream_check_start_late(struct stream_check *sc, int fd, uint32_t seed,
			     int delay_ms)
{
	*sc = (struct stream_check){ .fd = fd, .seed = seed,
				     .delay_ms = delay_ms,
				     .bad_at = UINT64_MAX };
	errno = pthread_create(&sc->thread, NULL, stream_check_run, sc);
	if (errno)
		die_errno("pthread_create");
}

void stream_check_start(struct stream_check *sc, int fd, uint32_t seed)
{
	stream_check_start_late(sc, fd, seed, 0);
}

void stream_check_join(struct stream_check *sc)
{
	pthread_join(sc->thread, NULL);
}

void stream_check_expect_all(struct stream_check *sc, uint64_t sent,
			     const char *label)
{
	stream_check_join(sc);
	say("%s: peer got every accepted byte %s, bad byte %s, eof %s", label,
	    sc->got == sent ? "yes" : "NO",
	    sc->bad_at == UINT64_MAX ? "none" : "FOUND",
	    sc->eof ? "yes" : "no");
	expect(sc->got == sent && sc->bad_at == UINT64_MAX && sc->eof);
}

static void *late_write_run(void *arg)
{
	struct late_write *lw = arg;

	nanosleep(&(struct timespec){ lw->delay_ms / 1000,
			(lw->delay_ms % 1000) * 1000000L }, NULL);
	put_text(lw->fd, lw->text);
	return NULL;
}

void late_write_start(struct late_write *lw, int fd, const char *text,
		      int delay_ms)
{
	*lw = (struct late_write){ .fd = fd, .text = text,
				   .delay_ms = delay_ms };
	errno = pthread_create(&lw->thread, NULL, late_write_run, lw);
	if (errno)
		die_errno("pthread_create");
}

void late_write_join(struct late_write *lw)
{
	pthread_join(lw->thread, NULL);
}
