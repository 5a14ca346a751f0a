/*
 * fd_reuse - a reused fd number inherits nothing from its last owner.
 *
 * A socket with unread input, a pending write and an epoll registration is
 * closed; the next accept() returns the same number (lowest free fd). The
 * new socket must show no stale data, no stale events, and its peer must not
 * receive the old socket's bytes (those go to the old peer, then EOF). The
 * same for a number reused by socket() + connect(), and by pipe(). An
 * epoll fd number reused by a new set carries none of the old set's
 * registrations, and a socket at a high fd number works as any other.
 */
#include "conform.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

/* Give fd unread input, a pending write and an epoll registration. */
static void dirty(int epfd, int fd, int peer)
{

	epoll_add(epfd, fd, EPOLLIN | EPOLLOUT, 1);
	put_text(peer, "stale-input");
	wait_fd(fd, POLLIN);
	put_text(fd, "stale-output");
}

static void check_clean(int epfd, int fd, int peer, bool answer)
{
	char buf[32];
	ssize_t ret;

	epoll_report(epfd, 0, "set after close", NULL, 0);
	ret = read(fd, buf, sizeof(buf));
	say("read on new fd: %s", result_text(ret));
	expect(ret == -1 && errno == EAGAIN);
	epoll_add(epfd, fd, EPOLLIN, 2);
	epoll_report(epfd, 0, "new fd registered", NULL, 0);
	put_text(peer, "fresh");
	epoll_report(epfd, WAIT_MS, "new fd, fresh data", NULL, 0);
	ret = read(fd, buf, sizeof(buf));
	say("read on new fd: %s '%.*s'", result_text(ret),
	    (int)(ret > 0 ? ret : 0), buf);
	expect(ret == 5 && !memcmp(buf, "fresh", 5));
	if (answer) {
		put_text(fd, "new-output");
	}
}

/*
 * An epoll fd number reused by a new set must not carry the old set's
 * registrations; a socket moved to a high fd number (near RLIMIT_NOFILE,
 * at most 4000) works like any other.
 */
static void epoll_fd_reuse_and_high_fd(void)
{
	int old_peer, old_conn, peer, conn, old_set, set, number, high;
	struct rlimit limit;
	char buf[8];
	ssize_t ret;

	old_set = tcp_pair_epoll(&old_peer, &old_conn, EPOLLIN, 1);
	number = old_set;
	close(old_set);
	set = epoll_new();
	say("epoll fd number reused: %s", set == number ? "yes" : "no");
	tcp_pair(AF_INET, &peer, &conn);
	epoll_add(set, conn, EPOLLIN, 3);
	put_text(old_peer, "old");
	wait_fd(old_conn, POLLIN);
	epoll_report(set, 0, "new set, old set's socket has input", NULL, 0);
	put_text(peer, "new");
	epoll_report(set, WAIT_MS, "new set, its socket has input", NULL, 0);
	close(conn);
	close(peer);

	if (getrlimit(RLIMIT_NOFILE, &limit) < 0)
		die_errno("getrlimit");
	high = limit.rlim_cur > 4001 ? 4000 : (int)limit.rlim_cur - 1;
	tcp_pair(AF_INET, &peer, &conn);
	ret = dup2(conn, high);
	say("socket moved to a high fd: %s", ret == high ? "ok" :
						     result_text(ret));
	close(conn);
	epoll_add(set, high, EPOLLIN, 4);
	put_text(peer, "hi");
	epoll_report(set, WAIT_MS, "high fd has input", NULL, 0);
	ret = read(high, buf, sizeof(buf));
	say("read on the high fd: %s", result_text(ret));
	close(high);
	close(peer);
	close(set);
	close(old_conn);
	close(old_peer);
}

/*
 * The socket fd now has the number of a dirty socket that was closed with
 * unread input, so the kernel reset the old connection: the old peer reads
 * the bytes sent before, then ECONNRESET; the new socket is clean and only
 * its own bytes reach its peer. Closes all three.
 */
static void check_socket_reused(int epfd, int fd, int peer, int old_peer)
{
	check_clean(epfd, fd, peer, true);
	close(fd);
	expect_stream(old_peer, "old peer", "stale-output", ECONNRESET);
	expect_stream(peer, "new peer", "new-output", 0);
	close(old_peer);
	close(peer);
}

int main(void)
{
	struct sockaddr_storage addr;
	socklen_t len = sizeof(addr);
	int listener, epfd, old_peer, old, peer, fd, number, pipefd[2];
	ssize_t ret;

	listener = tcp_listener(AF_INET);
	epfd = epoll_new();

	/* Reused by accept(): the client socket exists before the close. */
	tcp_pair_from(listener, &old_peer, &old);
	dirty(epfd, old, old_peer);
	if (getsockname(listener, (struct sockaddr *)&addr, &len) < 0)
		die_errno("getsockname");
	peer = socket(AF_INET, SOCK_STREAM, 0);
	if (peer < 0 || connect(peer, (struct sockaddr *)&addr, len) < 0)
		die_errno("connect");
	number = old;
	close(old);
	wait_fd(listener, POLLIN);
	fd = accept4(listener, NULL, NULL, SOCK_NONBLOCK);
	say("accept reused the number: %s", fd == number ? "yes" : "no");
	expect(fd == number);
	check_socket_reused(epfd, fd, peer, old_peer);

	/* Reused by socket() + connect(). */
	tcp_pair_from(listener, &old, &old_peer);
	set_nonblock(old, true);
	dirty(epfd, old, old_peer);
	number = old;
	close(old);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	say("socket reused the number: %s", fd == number ? "yes" : "no");
	expect(fd == number);
	ret = connect(fd, (struct sockaddr *)&addr, len);
	say("nonblocking connect: %s", result_text(ret));
	expect(ret == 0 || errno == EINPROGRESS);
	wait_fd(fd, POLLOUT);
	wait_fd(listener, POLLIN);
	peer = accept(listener, NULL, NULL);
	check_socket_reused(epfd, fd, peer, old_peer);

	/* Reused by pipe(): a non-socket must pass through cleanly. */
	tcp_pair_from(listener, &old_peer, &old);
	dirty(epfd, old, old_peer);
	number = old;
	close(old);
	if (pipe2(pipefd, O_NONBLOCK) < 0)
		die_errno("pipe");
	say("pipe reused the number: %s", pipefd[0] == number ? "yes" : "no");
	expect(pipefd[0] == number);
	check_clean(epfd, pipefd[0], pipefd[1], false);
	close(pipefd[0]);
	close(pipefd[1]);
	expect_stream(old_peer, "old peer", "stale-output", ECONNRESET);
	close(old_peer);

	close(epfd);
	close(listener);
	epoll_fd_reuse_and_high_fd();
	return conform_finish();
}
