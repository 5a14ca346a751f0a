/*
 * fuzz_shim_io - libFuzzer target for the shim's buffered receive and
 * deferred send logic, driven through its public (interposed) calls.
 *
 * The shim is dlopen()ed (FUZZ_SHIM_LIB, default $BUILD/liburingshim.so
 * next to this binary's directory) rather than preloaded, so only the
 * calls this target makes through the handle go through it; libFuzzer's
 * own I/O stays plain. One loopback TCP connection is set up once: the
 * "app" end is accepted through the shim's accept4 (non-blocking, so the
 * shim accelerates it: receives pulled through the ring into its buffer,
 * sends copied and deferred) and watched with the shim's epoll; the "peer"
 * end is a plain socket.
 *
 * Each input is a sequence of operations (one byte opcode + argument
 * bytes): the peer writes bytes; the app reads them with read, readv of odd
 * iovec sizes, recv with MSG_PEEK, or FIONREAD; the app writes with write,
 * writev or send; the peer reads; the app waits with epoll_wait (a flush
 * point). The model checks, at every step, that what the app reads is
 * exactly the next bytes the peer wrote (MSG_PEEK: without consuming them;
 * FIONREAD never exceeds what is outstanding), and what the peer reads is
 * exactly the next bytes the app's writes accepted. At the end of each input
 * both directions are drained through epoll_wait, so nothing may be lost,
 * duplicated or reordered across inputs either. Any mismatch aborts.
 *
 * Fuzzing a shim that passes everything through would prove nothing, so
 * before the first input the target reads the shim's own stats: the
 * connection must be accelerated, and a first exchange must have gone
 * through the ring both ways. Where io_uring is refused (seccomp, an old
 * kernel) it exits 77 saying so; any other fallback is a failure.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/io_uring.h>
#include <stdbool.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "../../shim/stats.h"

static int (*shim_accept4)(int, struct sockaddr *, socklen_t *, int);
static ssize_t (*shim_read)(int, void *, size_t);
static ssize_t (*shim_readv)(int, const struct iovec *, int);
static ssize_t (*shim_recv)(int, void *, size_t, int);
static ssize_t (*shim_write)(int, const void *, size_t);
static ssize_t (*shim_writev)(int, const struct iovec *, int);
static ssize_t (*shim_send)(int, const void *, size_t, int);
static int (*shim_epoll_create1)(int);
static int (*shim_epoll_ctl)(int, int, int, struct epoll_event *);
static int (*shim_epoll_wait)(int, struct epoll_event *, int, int);
static int (*shim_ioctl)(int, unsigned long, ...);

static int app_fd, peer_fd, epfd;
/* The shim's stats file of this process, mapped (its name already gone). */
static const struct shim_stats_file *stats;

/* The model: the bytes in flight each way, by stream offset. */
#define STREAM_CAP (1 << 22)
static uint8_t *to_app, *to_peer;
static uint64_t to_app_sent, to_app_read;	/* peer wrote / app read */
static uint64_t to_peer_sent, to_peer_read;	/* app queued / peer read */


static void die(const char *what)
{
	fprintf(stderr, "fuzz_shim_io: %s (to app: %llu sent, %llu read; "
		"to peer: %llu queued, %llu read)\n", what,
		(unsigned long long)to_app_sent,
		(unsigned long long)to_app_read,
		(unsigned long long)to_peer_sent,
		(unsigned long long)to_peer_read);
	abort();
}

static void *must_sym(void *lib, const char *name)
{
	void *p = dlsym(lib, name);

	if (!p) {
		fprintf(stderr, "fuzz_shim_io: %s missing in the shim\n", name);
		exit(1);
	}
	return p;
}

static void load_shim(const char *argv0)
{
	char path[PATH_MAX];
	const char *lib = getenv("FUZZ_SHIM_LIB");
	void *h;

	if (!lib) {
		/* $BUILD/tests/fuzz/fuzz_shim_io -> $BUILD/liburingshim.so */
		snprintf(path, sizeof(path), "%s", argv0);
		char *slash = strrchr(path, '/');

		if (slash)
			*slash = '\0';
		else
			strcpy(path, ".");
		strncat(path, "/../../liburingshim.so",
			sizeof(path) - strlen(path) - 1);
		lib = path;
	}
	setenv("URINGSHIM_ADAPTIVE", "0", 1);	/* always the ring path */
	h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		fprintf(stderr, "fuzz_shim_io: %s\n", dlerror());
		exit(1);
	}
	shim_accept4 = must_sym(h, "accept4");
	shim_read = must_sym(h, "read");
	shim_readv = must_sym(h, "readv");
	shim_recv = must_sym(h, "recv");
	shim_write = must_sym(h, "write");
	shim_writev = must_sym(h, "writev");
	shim_send = must_sym(h, "send");
	shim_epoll_create1 = must_sym(h, "epoll_create1");
	shim_epoll_ctl = must_sym(h, "epoll_ctl");
	shim_epoll_wait = must_sym(h, "epoll_wait");
	shim_ioctl = must_sym(h, "ioctl");
}

static void connect_pair(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);
	struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT };
	int lfd, one = 1;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) ||
	    listen(lfd, 1) || getsockname(lfd, (struct sockaddr *)&sa, &len))
		die("listen");
	peer_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (connect(peer_fd, (struct sockaddr *)&sa, sizeof(sa)) &&
	    errno != EINPROGRESS)
		die("connect");
	app_fd = shim_accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
	if (app_fd < 0)
		die("accept4 through the shim");
	close(lfd);
	setsockopt(peer_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	epfd = shim_epoll_create1(0);
	ev.data.u64 = 42;
	if (epfd < 0 || shim_epoll_ctl(epfd, EPOLL_CTL_ADD, app_fd, &ev))
		die("epoll through the shim");
}

/*
 * stats_dir_make - point the shim's stats file at a fresh directory of our
 * own (before the shim is loaded), so that map_stats can take it away at
 * once: no file is left behind, however the fuzzer ends.
 */
static char stats_dir[] = "/tmp/fuzz_shim_io.XXXXXX";

static void stats_dir_make(void)
{
	if (!mkdtemp(stats_dir))
		die("mkdtemp");
	setenv("URINGSHIM_STATS_DIR", stats_dir, 1);
}

/* Map the shim's stats file read-only, then remove it and the directory. */
static void map_stats(void)
{
	char path[sizeof(stats_dir) + 32];
	void *map = MAP_FAILED;
	int fd;

	snprintf(path, sizeof(path), "%s/uringshim.%d", stats_dir,
		 (int)getpid());
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		map = mmap(NULL, sizeof(*stats), PROT_READ, MAP_SHARED, fd, 0);
		close(fd);
	}
	unlink(path);
	rmdir(stats_dir);
	if (map == MAP_FAILED) {
		fprintf(stderr, "fuzz_shim_io: no stats file %s from the "
			"shim\n", path);
		exit(1);
	}
	stats = map;
	if (stats->magic != SHIM_STATS_MAGIC ||
	    stats->version != SHIM_STATS_VERSION ||
	    stats->size != sizeof(*stats)) {
		fprintf(stderr, "fuzz_shim_io: %s is not a stats file of this "
			"layout\n", path);
		exit(1);
	}
}

/* Can this process tree set up a ring at all? (the shim aside) */
static int uring_refused(void)
{
	struct io_uring_params p;
	long fd;

	memset(&p, 0, sizeof(p));
	fd = syscall(__NR_io_uring_setup, 4, &p);
	if (fd < 0)
		return errno;
	close(fd);
	return 0;
}

/*
 * check_through_ring - the shim is active and took the connection: it
 * was accelerated, the ring was entered, and the first exchange went
 * through it both ways. Exit 77 where io_uring is refused, 1 otherwise.
 */
static void check_through_ring(void)
{
	uint64_t accel = 0, enters = 0, recvd = 0, sent = 0;
	uint32_t state = __atomic_load_n(&stats->state, __ATOMIC_ACQUIRE);
	int refused;

	for (int i = 0; i < SHIM_STATS_SLOTS; i++) {
		accel += stats->slot[i].accel_total;
		enters += stats->slot[i].enters;
		recvd += stats->slot[i].bytes_recv;
		sent += stats->slot[i].bytes_sent;
	}
	fprintf(stderr, "fuzz_shim_io: shim state %u (%.*s), accel_total "
		"%llu, enters %llu, bytes_recv %llu, bytes_sent %llu\n", state,
		(int)sizeof(stats->reason), stats->reason,
		(unsigned long long)accel, (unsigned long long)enters,
		(unsigned long long)recvd, (unsigned long long)sent);
	if (state != SHIM_STATE_ACTIVE) {
		refused = uring_refused();
		if (state == SHIM_STATE_PASSTHROUGH && refused) {
			printf("skip fuzz_shim_io: io_uring refused here (%s): "
			       "the shim runs in passthrough, nothing to "
			       "fuzz\n", strerror(refused));
			exit(77);
		}
		fprintf(stderr, "fuzz_shim_io: the shim is not active\n");
		exit(1);
	}
	if (!accel || !enters || !recvd || !sent) {
		fprintf(stderr, "fuzz_shim_io: the connection did not go "
			"through the ring\n");
		exit(1);
	}
}

static uint8_t stream_byte(uint64_t off, unsigned salt)
{
	uint64_t x = (off + 1) * 0x9e3779b97f4a7c15ULL ^ salt;

	return (uint8_t)(x >> 29);
}

/* The app got n bytes at buf: they must be the next ones the peer sent. */
static void app_got(const uint8_t *buf, size_t n, bool consume)
{
	if (n > to_app_sent - to_app_read)
		die("app read more than the peer sent");
	for (size_t i = 0; i < n; i++)
		if (buf[i] != to_app[(to_app_read + i) % STREAM_CAP])
			die("app read bytes out of order or corrupted");
	if (consume)
		to_app_read += n;
}

static void app_read_result(ssize_t r, const uint8_t *buf, bool consume)
{
	if (r < 0) {
		if (errno != EAGAIN)
			die("app read failed with an unexpected errno");
		return;
	}
	if (r == 0)
		die("app read returned EOF on a live connection");
	app_got(buf, r, consume);
}

/*
 * next_chunk - the next *n bytes (at most size) of a stream that has sent
 * and read bytes so far, into buf. False when they would put more than
 * half of STREAM_CAP in flight: the caller skips this write.
 */
static bool next_chunk(uint8_t *buf, size_t size, size_t *n, uint64_t sent,
		       uint64_t read, unsigned salt)
{
	if (*n > size)
		*n = size;
	if (sent - read + *n > STREAM_CAP / 2)
		return false;
	for (size_t i = 0; i < *n; i++)
		buf[i] = stream_byte(sent + i, salt);
	return true;
}

static void peer_write(size_t n, unsigned salt)
{
	static uint8_t buf[65536];
	ssize_t w;

	if (!next_chunk(buf, sizeof(buf), &n, to_app_sent, to_app_read, salt))
		return;
	w = write(peer_fd, buf, n);
	if (w < 0)
		return;		/* peer's socket buffer full */
	for (ssize_t i = 0; i < w; i++)
		to_app[(to_app_sent + i) % STREAM_CAP] = buf[i];
	to_app_sent += w;
}

static void peer_read(void)
{
	static uint8_t buf[65536];
	ssize_t r = read(peer_fd, buf, sizeof(buf));

	if (r <= 0) {
		if (r == 0 || errno != EAGAIN)
			die("peer read failed");
		return;
	}
	if ((uint64_t)r > to_peer_sent - to_peer_read)
		die("peer received more than the app wrote");
	for (ssize_t i = 0; i < r; i++)
		if (buf[i] != to_peer[(to_peer_read + i) % STREAM_CAP])
			die("peer received bytes out of order or corrupted");
	to_peer_read += r;
}

static void app_queued(const uint8_t *buf, ssize_t r)
{
	if (r < 0) {
		if (errno != EAGAIN)
			die("app write failed with an unexpected errno");
		return;
	}
	for (ssize_t i = 0; i < r; i++)
		to_peer[(to_peer_sent + i) % STREAM_CAP] = buf[i];
	to_peer_sent += r;
}

static void app_write(int how, size_t n, unsigned salt)
{
	static uint8_t buf[65536];
	struct iovec iov[3];
	ssize_t r;

	if (!next_chunk(buf, sizeof(buf), &n, to_peer_sent, to_peer_read,
			salt ^ 0x55))
		return;
	switch (how) {
	case 0:
		r = shim_write(app_fd, buf, n);
		break;
	case 1:
		iov[0] = (struct iovec){ buf, n / 3 };
		iov[1] = (struct iovec){ buf + n / 3, 0 };
		iov[2] = (struct iovec){ buf + n / 3, n - n / 3 };
		r = shim_writev(app_fd, iov, 3);
		break;
	default:
		r = shim_send(app_fd, buf, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		break;
	}
	if (r > (ssize_t)n)
		die("write returned more than asked");
	app_queued(buf, r);
}

static void app_read(int how, size_t n)
{
	static uint8_t buf[65536];
	struct iovec iov[4];
	ssize_t r;
	int avail;

	if (n > sizeof(buf))
		n = sizeof(buf);
	if (!n)
		n = 1;
	switch (how) {
	case 0:
		r = shim_read(app_fd, buf, n);
		app_read_result(r, buf, true);
		break;
	case 1:
		/* Odd iovec sizes: 1, 0, 7, rest. */
		iov[0] = (struct iovec){ buf, 1 };
		iov[1] = (struct iovec){ buf + 1, 0 };
		iov[2] = (struct iovec){ buf + 1, n > 8 ? 7 : 0 };
		iov[3] = (struct iovec){ buf + 1 + iov[2].iov_len,
					 n - 1 - iov[2].iov_len };
		r = shim_readv(app_fd, iov, 4);
		app_read_result(r, buf, true);
		break;
	case 2:
		r = shim_recv(app_fd, buf, n, MSG_PEEK);
		app_read_result(r, buf, false);
		break;
	default:
		if (shim_ioctl(app_fd, FIONREAD, &avail))
			die("FIONREAD failed");
		if (avail < 0 || (uint64_t)avail > to_app_sent - to_app_read)
			die("FIONREAD reports bytes the peer never sent");
		break;
	}
}

static void app_wait(int ms)
{
	struct epoll_event evs[4];
	int n = shim_epoll_wait(epfd, evs, 4, ms);

	if (n < 0 && errno != EINTR)
		die("epoll_wait failed");
	for (int i = 0; i < n; i++)
		if (evs[i].data.u64 != 42)
			die("epoll_wait returned foreign epoll_data");
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/*
 * End of input: every byte each way arrives within 5 s. The app's epoll
 * set is nearly always writable, so its wait returns at once: pace the
 * rounds with a poll on the peer instead (Nagle and delayed ACKs may hold
 * a tail for tens of milliseconds).
 */
static void drain(void)
{
	static uint8_t buf[65536];
	struct pollfd pfd = { .fd = peer_fd, .events = POLLIN };
	double deadline = now() + 5;

	while (to_app_read != to_app_sent || to_peer_read != to_peer_sent) {
		if (now() > deadline)
			die("bytes lost: a direction did not drain within 5 s");
		app_wait(1);
		if (to_app_read < to_app_sent)
			app_read_result(shim_read(app_fd, buf, sizeof(buf)),
					buf, true);
		if (to_peer_read < to_peer_sent) {
			poll(&pfd, 1, 1);
			peer_read();
		}
	}
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *off = getenv("URINGSHIM_DISABLE");

	(void)argc;
	stats_dir_make();
	load_shim((*argv)[0]);
	map_stats();
	to_app = malloc(STREAM_CAP);
	to_peer = malloc(STREAM_CAP);
	if (!to_app || !to_peer)
		die("malloc");
	connect_pair();
	/* A first exchange each way, then: did it take the ring path? */
	app_wait(10);
	peer_write(64, 1);
	app_write(0, 64, 1);
	drain();
	if (!(off && !strcmp(off, "1")))
		check_through_ring();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t i = 0;

	while (i + 3 <= size) {
		unsigned op = data[i] % 8;
		size_t arg = data[i + 1] | (size_t)data[i + 2] << 8;
		unsigned salt = data[i];

		i += 3;
		switch (op) {
		case 0:
			peer_write(arg, salt);
			break;
		case 1: case 2:
			app_read(arg & 3, arg >> 2);
			break;
		case 3: case 4:
			app_write(arg % 3, arg, salt);
			break;
		case 5:
			peer_read();
			break;
		default:
			app_wait(arg & 1);
			break;
		}
	}
	drain();
	return 0;
}
