/*
 * polled_epoll - an epoll fd that is itself polled or nested in another
 * epoll set still reports its members under the shim.
 *
 * The shim keeps accelerated sockets out of the kernel's epoll set, so
 * the kernel alone cannot say the epoll fd is readable.  It must notice
 * the epoll fd being polled (poll) or nested (EPOLL_CTL_ADD of an epoll
 * fd) and hand that set's members back to the kernel.  The program
 * re-executes itself under build/liburingshim.so (found next to the
 * build tree it lives in) and checks both cases; it also checks that the
 * shim really accelerated the socket before the epoll fd was polled.
 * Exit 0 pass, 1 fail (nothing accelerated although io_uring works here
 * is a failure too), 77 when the library is missing or io_uring refused.
 */
#include <errno.h>
#include <limits.h>
#include <linux/io_uring.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

static int failures;

#define check(cond)							\
	do {								\
		if (!(cond)) {						\
			printf("FAIL %s:%d: %s\n", __FILE__, __LINE__,	\
			       #cond);					\
			failures++;					\
		}							\
	} while (0)

/* A connected loopback TCP pair, server side non-blocking. */
static void tcp_pair(int *client, int *server)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int l = socket(AF_INET, SOCK_STREAM, 0);

	if (l < 0 || bind(l, (struct sockaddr *)&a, len) || listen(l, 4) ||
	    getsockname(l, (struct sockaddr *)&a, &len)) {
		perror("listener");
		exit(1);
	}
	*client = socket(AF_INET, SOCK_STREAM, 0);
	if (connect(*client, (struct sockaddr *)&a, len)) {
		perror("connect");
		exit(1);
	}
	*server = accept4(l, NULL, NULL, SOCK_NONBLOCK);
	if (*server < 0) {
		perror("accept4");
		exit(1);
	}
	close(l);
}

/* epfd with server registered for EPOLLIN, after one emulated wait. */
static int bound_set(int server)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u32 = 7 };
	int epfd = epoll_create1(0);

	check(epoll_ctl(epfd, EPOLL_CTL_ADD, server, &ev) == 0);
	check(epoll_wait(epfd, &ev, 1, 0) == 0);
	return epfd;
}

static void polled(void)
{
	struct epoll_event ev;
	struct pollfd p;
	int client, server, epfd;
	char buf[8];

	tcp_pair(&client, &server);
	epfd = bound_set(server);
	p.fd = epfd;
	p.events = POLLIN;
	check(write(client, "ping", 4) == 4);
	check(poll(&p, 1, 2000) == 1 && (p.revents & POLLIN));
	check(epoll_wait(epfd, &ev, 1, 0) == 1 && ev.data.u32 == 7);
	check(read(server, buf, sizeof(buf)) == 4 && !memcmp(buf, "ping", 4));
	close(epfd);
	close(server);
	close(client);
}

static void nested(void)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u32 = 9 };
	int client, server, inner, outer;
	char buf[8];

	tcp_pair(&client, &server);
	inner = bound_set(server);
	outer = epoll_create1(0);
	check(epoll_ctl(outer, EPOLL_CTL_ADD, inner, &ev) == 0);
	check(write(client, "pong", 4) == 4);
	check(epoll_wait(outer, &ev, 1, 2000) == 1 && ev.data.u32 == 9);
	check(epoll_wait(inner, &ev, 1, 0) == 1 && ev.data.u32 == 7);
	check(read(server, buf, sizeof(buf)) == 4 && !memcmp(buf, "pong", 4));
	close(outer);
	close(inner);
	close(server);
	close(client);
}

/* Was anything accelerated?  Reads the shim's own stats file. */
static long accelerated(void)
{
	char cmd[PATH_MAX + 64], *dir = getenv("POLLED_EPOLL_BIN"), line[128];
	long n = -1;
	FILE *f;

	snprintf(cmd, sizeof(cmd), "%s/uringshim-stat %d", dir, (int)getpid());
	f = popen(cmd, "r");
	while (f && fgets(line, sizeof(line), f))
		sscanf(line, "accel_total: %ld", &n);
	if (f)
		pclose(f);
	return n;
}

/* Why this process cannot set up a ring (0: it can), the shim aside. */
static int uring_refused(void)
{
	struct io_uring_params p = { 0 };
	long fd = syscall(__NR_io_uring_setup, 4, &p);

	if (fd < 0)
		return errno;
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	char self[PATH_MAX], lib[PATH_MAX + 32], *slash;
	ssize_t len;

	(void)argc;
	if (!getenv("POLLED_EPOLL_BIN")) {
		len = readlink("/proc/self/exe", self, sizeof(self) - 1);
		if (len <= 0)
			return 1;
		self[len] = 0;
		/* $(BUILD)/shim/tests/polled_epoll -> $(BUILD) */
		for (int i = 0; i < 3 && (slash = strrchr(self, '/')); i++)
			*slash = 0;
		snprintf(lib, sizeof(lib), "%s/liburingshim.so", self);
		if (access(lib, R_OK)) {
			printf("no %s\n", lib);
			return 77;
		}
		setenv("POLLED_EPOLL_BIN", self, 1);
		setenv("LD_PRELOAD", lib, 1);
		setenv("URINGSHIM_STATS_DIR", "/tmp", 1);
		execv("/proc/self/exe", argv);
		perror("execv");
		return 1;
	}
	polled();
	if (accelerated() < 1) {
		int why = uring_refused();

		if (!why) {
			printf("FAIL nothing accelerated, though io_uring "
			       "works here\n");
			return 1;
		}
		printf("io_uring refused here (%s): nothing accelerated\n",
		       strerror(why));
		return failures ? 1 : 77;
	}
	nested();
	printf(failures ? "FAIL\n" : "PASS\n");
	return failures ? 1 : 0;
}
