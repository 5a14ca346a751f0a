/*
 * mixed_set - TCP sockets share an epoll set with other kinds of fds.
 *
 * One epoll set holds two TCP sockets, a pipe (both ends), a UDP socket, an
 * eventfd, a timerfd and another epoll set (nested epoll: ready when a TCP
 * socket in it is); adding a regular file fails with EPERM as the kernel
 * has it. Each source is made ready and the set must report each
 * with its own epoll_data and events; after draining, only the always-
 * writable ends are reported. The timer may expire on a later wait than the
 * other sources, so reports are gathered (bounded) and their union printed.
 * With maxevents 1, an always-ready pipe must not starve the TCP sockets.
 */
#include "conform.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

enum {
	TCP_A = 1, TCP_B, PIPE_R, PIPE_W, UDP, EVENT, TIMER, INNER_EPOLL,
	SOURCES
};

static const char *const names[] = {
	[TCP_A] = "tcp-a", [TCP_B] = "tcp-b", [PIPE_R] = "pipe-r",
	[PIPE_W] = "pipe-w", [UDP] = "udp", [EVENT] = "eventfd",
	[TIMER] = "timerfd", [INNER_EPOLL] = "inner-epoll",
};

/*
 * The shim may learn of tcp-a's data before its FIN, so gathering goes on
 * until tcp-a has shown EPOLLRDHUP too; plainly the first report has it.
 */
static void gather(int epfd, const char *label, uint32_t want_seen)
{
	uint32_t seen[SOURCES] = { 0 }, have = 0;
	struct epoll_event ev[16];

	struct timespec start, now;

	clock_gettime(CLOCK_MONOTONIC, &start);
	now = start;
	/* Level-triggered: spin on the ready ones, bounded by WAIT_MS. */
	while (((have & want_seen) != want_seen ||
		!(seen[TCP_A] & EPOLLRDHUP)) &&
	       (now.tv_sec - start.tv_sec) * 1000 +
	       (now.tv_nsec - start.tv_nsec) / 1000000 < WAIT_MS) {
		int n = epoll_wait(epfd, ev, 16, WAIT_MS);

		clock_gettime(CLOCK_MONOTONIC, &now);

		for (int i = 0; i < n; i++) {
			uint64_t tag = ev[i].data.u64;

			expect(tag > 0 && tag < SOURCES);
			if (tag > 0 && tag < SOURCES) {
				seen[tag] |= ev[i].events;
				have |= 1u << tag;
			}
		}
	}
	say("%s:", label);
	for (int tag = 1; tag < SOURCES; tag++)
		if (seen[tag])
			say("  %s %s", names[tag],
			    epoll_event_names(seen[tag]));
	expect((have & want_seen) == want_seen);
}

/*
 * maxevents 1 with a pipe that stays readable and two TCP sockets with
 * unread input: level-triggered reports go round all three (the kernel
 * strictly in turn). The exact order and counts are the ready list's, so
 * the program checks only that none starves over nine waits.
 */
static void no_starvation(void)
{
	int peer_a, tcp_a, peer_b, tcp_b, pipefd[2], epfd;
	int seen[4] = { 0 };
	struct epoll_event ev;

	tcp_pair(AF_INET, &peer_a, &tcp_a);
	tcp_pair(AF_INET, &peer_b, &tcp_b);
	if (pipe2(pipefd, O_NONBLOCK) < 0)
		die_errno("pipe2");
	epfd = epoll_new();
	epoll_add(epfd, tcp_a, EPOLLIN, 1);
	epoll_add(epfd, pipefd[0], EPOLLIN, 2);
	epoll_add(epfd, tcp_b, EPOLLIN, 3);
	expect(write(pipefd[1], "p", 1) == 1);
	put_text(peer_a, "a");
	put_text(peer_b, "b");
	wait_fd(tcp_a, POLLIN);
	wait_fd(tcp_b, POLLIN);
	for (int i = 0; i < 9; i++)
		if (epoll_wait(epfd, &ev, 1, WAIT_MS) == 1 &&
		    ev.data.u64 < 4)
			seen[ev.data.u64]++;
	say("maxevents 1, nine waits, three ready: none starves %s",
	    seen[1] && seen[2] && seen[3] ? "yes" : "NO");
	expect(seen[1] && seen[2] && seen[3]);
	close_all(epfd, pipefd[0], pipefd[1], tcp_a, tcp_b, peer_a, peer_b);
}

int main(void)
{
	struct itimerspec soon = { .it_value = { 0, 30 * 1000 * 1000 } };
	struct sockaddr_in addr = { .sin_family = AF_INET };
	socklen_t len = sizeof(addr);
	int peer_a, tcp_a, peer_b, tcp_b, pipefd[2], udp, efd, tfd, file;
	int epfd, n, inner, peer_c, tcp_c;
	char path[] = "/tmp/uringshim-mixed-XXXXXX", buf[64];
	uint64_t count;
	ssize_t ret;

	tcp_pair(AF_INET, &peer_a, &tcp_a);
	tcp_pair(AF_INET, &peer_b, &tcp_b);
	inner = tcp_pair_epoll(&peer_c, &tcp_c, EPOLLIN, 1);
	if (pipe2(pipefd, O_NONBLOCK) < 0)
		die_errno("pipe2");
	udp = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (udp < 0 || bind(udp, (struct sockaddr *)&addr, len) < 0 ||
	    getsockname(udp, (struct sockaddr *)&addr, &len) < 0)
		die_errno("udp");
	efd = eventfd(0, EFD_NONBLOCK);
	tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
	file = mkstemp(path);
	if (efd < 0 || tfd < 0 || file < 0)
		die_errno("eventfd/timerfd/mkstemp");
	unlink(path);

	epfd = epoll_new();
	epoll_add(epfd, tcp_a, EPOLLIN | EPOLLRDHUP, TCP_A);
	epoll_add(epfd, tcp_b, EPOLLIN | EPOLLOUT, TCP_B);
	epoll_add(epfd, pipefd[0], EPOLLIN, PIPE_R);
	epoll_add(epfd, pipefd[1], EPOLLOUT, PIPE_W);
	epoll_add(epfd, udp, EPOLLIN, UDP);
	epoll_add(epfd, efd, EPOLLIN, EVENT);
	epoll_add(epfd, tfd, EPOLLIN, TIMER);
	epoll_add(epfd, inner, EPOLLIN, INNER_EPOLL);
	ret = epoll_ctl(epfd, EPOLL_CTL_ADD, file,
			&(struct epoll_event){ .events = EPOLLIN });
	say("add regular file: %s", result_text(ret));
	expect(ret == -1 && errno == EPERM);
	ret = write(file, "file data", 9);
	say("regular file write: %s", result_text(ret));

	n = epoll_report(epfd, 0, "idle", NULL, 0);
	expect(n == 2);

	put_text(peer_a, "tcp");
	expect(shutdown(peer_a, SHUT_WR) == 0);
	put_text(peer_b, "tcp-b");
	expect(write(pipefd[1], "pipe", 4) == 4);
	expect(sendto(udp, "dgram", 5, 0, (struct sockaddr *)&addr, len) == 5);
	expect(eventfd_write(efd, 5) == 0);
	put_text(peer_c, "nested");
	expect(timerfd_settime(tfd, 0, &soon, NULL) == 0);
	wait_fd(tfd, POLLIN);
	gather(epfd, "all ready", (1u << SOURCES) - 2);

	ret = read(tcp_a, buf, sizeof(buf));
	say("tcp-a read: %s '%.*s'", result_text(ret), (int)(ret > 0 ? ret : 0),
	    buf);
	ret = read(tcp_a, buf, sizeof(buf));
	say("tcp-a read: %s", result_text(ret));
	ret = read(tcp_b, buf, sizeof(buf));
	say("tcp-b read: %s '%.*s'", result_text(ret), (int)(ret > 0 ? ret : 0),
	    buf);
	ret = read(pipefd[0], buf, sizeof(buf));
	say("pipe read: %s '%.*s'", result_text(ret), (int)(ret > 0 ? ret : 0),
	    buf);
	ret = recv(udp, buf, sizeof(buf), 0);
	say("udp recv: %s '%.*s'", result_text(ret), (int)(ret > 0 ? ret : 0),
	    buf);
	ret = eventfd_read(efd, (eventfd_t *)&count);
	say("eventfd read: %s value %llu", result_text(ret),
	    (unsigned long long)count);
	ret = read(tfd, &count, sizeof(count));
	say("timerfd read: %s expired %s", result_text(ret),
	    ret == 8 && count >= 1 ? "yes" : "no");
	say("poll on the inner epoll fd: %s",
	    epoll_event_names(wait_fd(inner, POLLIN)));
	n = epoll_report(inner, 0, "inner set", NULL, 0);
	expect(n == 1);
	ret = read(tcp_c, buf, sizeof(buf));
	say("tcp-c read: %s '%.*s'", result_text(ret), (int)(ret > 0 ? ret : 0),
	    buf);

	/* Drained: tcp-a stays readable (EOF), writable ends stay on. */
	epoll_ctl(epfd, EPOLL_CTL_DEL, tcp_a, NULL);
	n = epoll_report(epfd, 0, "drained", NULL, 0);
	expect(n == 2);

	/* Data on the TCP socket only: the others stay quiet. */
	put_text(peer_b, "again");
	epoll_mod(epfd, tcp_b, EPOLLIN, TCP_B);
	n = epoll_report(epfd, WAIT_MS, "tcp-b again", NULL, 0);
	expect(n == 2);

	no_starvation();

	close_all(epfd, inner, tcp_c, peer_c, file, tfd, efd, udp, pipefd[0],
		  pipefd[1], tcp_a, tcp_b, peer_a, peer_b);
	return conform_finish();
}
