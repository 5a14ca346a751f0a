/*
 * dup - duplicated socket descriptors share one byte stream.
 *
 * Writes through a socket and its duplicates (dup, dup2, dup3, F_DUPFD,
 * F_DUPFD_CLOEXEC) arrive in the order they were made, whichever fd they
 * went through. Closing one fd flushes nothing away and does not end the
 * connection while another fd refers to it; EOF comes after the last close.
 * dup2 over an fd with pending writes closes that fd's connection with its
 * bytes delivered. The epoll quirk: a registration belongs to the open
 * file, so after close(fd) with a duplicate alive the set still reports it
 * with the old epoll_data. Last, input that arrived before a dup is read
 * first through the duplicate and survives closing the original.
 */
#include "conform.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/*
 * Input already arrived (the shim may hold it) when the socket is
 * duplicated: reads through the duplicate return it first, then later
 * input; the registration of the original still reports once; after dup2
 * elsewhere and closing the original, the held input is still there.
 */
static void dup_with_input(void)
{
	struct epoll_event ev;
	int peer, conn, copy, epfd, n, err;
	char buf[32];
	ssize_t ret;
	size_t got;
	bool eof;

	epfd = tcp_pair_epoll(&peer, &conn, EPOLLIN, 1);
	put_text(peer, "held;");
	expect(epoll_wait(epfd, &ev, 1, WAIT_MS) == 1);
	copy = dup(conn);
	put_text(peer, "later;");
	got = read_stream(copy, buf, 11, &eof, &err);
	say("read via dup: '%.*s'", (int)got, buf);
	expect(got == 11 && !memcmp(buf, "held;later;", 11));
	put_text(peer, "x");
	n = epoll_report(epfd, WAIT_MS, "original registration", NULL, 0);
	expect(n == 1);
	ret = read(conn, buf, sizeof(buf));
	say("read via original: %s '%.*s'", result_text(ret),
	    (int)(ret > 0 ? ret : 0), buf);
	close(copy);
	close(conn);
	close(epfd);
	close(peer);

	epfd = tcp_pair_epoll(&peer, &conn, EPOLLIN, 2);
	put_text(peer, "held2;");
	expect(epoll_wait(epfd, &ev, 1, WAIT_MS) == 1);
	copy = dup2(conn, 150);
	close(conn);
	got = read_stream(copy, buf, 6, &eof, &err);
	say("read via dup2 after closing the original: '%.*s' %s", (int)got,
	    buf, errno_name(err));
	expect(got == 6 && !memcmp(buf, "held2;", 6));
	close(copy);
	close(epfd);
	close(peer);
}

int main(void)
{
	struct epoll_event ev[4];
	int peer, conn, d1, d2, d3, d4, peer2, conn2, epfd, n;
	char buf[16];
	ssize_t ret;

	tcp_pair(AF_INET, &peer, &conn);
	serve_fd(conn);
	put_text(conn, "A");
	d1 = dup(conn);
	put_text(d1, "B");
	put_text(conn, "C");
	d2 = fcntl(conn, F_DUPFD, 100);
	say("F_DUPFD 100 -> %s", d2 >= 100 ? ">= 100" : "below 100");
	put_text(d2, "D");
	d3 = fcntl(conn, F_DUPFD_CLOEXEC, 0);
	say("F_DUPFD_CLOEXEC FD_CLOEXEC: %d", fcntl(d3, F_GETFD) & FD_CLOEXEC);
	put_text(d3, "E");
	d4 = 200;
	ret = dup3(conn, d4, O_CLOEXEC);
	say("dup3 -> 200: %s", ret == d4 ? "ok" : result_text(ret));
	put_text(d4, "F");
	ret = close(conn);
	say("close original: %s", result_text(ret));
	put_text(d1, "G");
	close(d1);
	put_text(d2, "H");
	close(d2);
	put_text(d3, "I");
	close(d3);
	/* dup2 onto itself is a no-op returning the fd. */
	ret = dup2(d4, d4);
	say("dup2 onto itself: %s", ret == d4 ? "ok" : result_text(ret));
	put_text(d4, "J");
	/* Still connected: the peer can answer through any remaining fd. */
	put_text(peer, "reply");
	ret = wait_fd(d4, POLLIN) & POLLIN ? read(d4, buf, sizeof(buf)) : -1;
	say("read via dup3 fd: %s '%.*s'", result_text(ret),
	    (int)(ret > 0 ? ret : 0), buf);
	close(d4);
	expect_stream(peer, "through five fds", "ABCDEFGHIJ", 0);
	close(peer);

	/* dup2 over an fd with pending writes closes it, bytes delivered. */
	tcp_pair(AF_INET, &peer, &conn);
	tcp_pair(AF_INET, &peer2, &conn2);
	serve_fd(conn);
	serve_fd(conn2);
	put_text(conn, "to-first");
	put_text(conn2, "to-second;");
	ret = dup2(conn2, conn);
	say("dup2 over pending fd: %s", ret == conn ? "ok" : result_text(ret));
	put_text(conn, "via-dup2;");
	close(conn);
	put_text(conn2, "last");
	close(conn2);
	expect_stream(peer, "replaced connection", "to-first", 0);
	expect_stream(peer2, "target connection", "to-second;via-dup2;last",
		      0);
	close(peer);
	close(peer2);

	/* The registration outlives close(fd) while a duplicate is open. */
	epfd = tcp_pair_epoll(&peer, &conn, EPOLLIN, 42);
	d1 = dup(conn);
	close(conn);
	put_text(peer, "x");
	n = epoll_report(epfd, WAIT_MS, "closed fd, dup alive", ev, 4);
	expect(n == 1 && ev[0].data.u64 == 42);
	ret = read(d1, buf, sizeof(buf));
	say("read via dup: %s", result_text(ret));
	close(d1);
	expect_no_report(epfd, 0, "last fd closed");
	close(epfd);
	close(peer);

	dup_with_input();
	return conform_finish();
}
