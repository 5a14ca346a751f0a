/*
 * nonblock_toggle - O_NONBLOCK switched on and off with data in flight.
 *
 * Input that arrived while the socket was non-blocking (the shim may hold
 * it) is returned first by a read after switching to blocking; a blocking
 * read then waits for new input. Writes made non-blocking (possibly
 * deferred) and then blocking keep their order. FIONBIO toggles the same
 * flag, F_GETFL reports it, and after switching back a read with nothing
 * there fails with EAGAIN. Input held when the socket turns blocking is
 * still reported by epoll (after a MOD), poll and select.
 */
#include "conform.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/*
 * Input held when the socket turns blocking is still readiness: epoll
 * (after a MOD changing events and data), poll and select all report it.
 */
static void readiness_after_toggle(void)
{
	struct timeval zero = { 0, 0 };
	struct epoll_event ev;
	int peer, conn, epfd, n;
	fd_set readable;

	epfd = tcp_pair_epoll(&peer, &conn, EPOLLIN | EPOLLET, 1);
	put_text(peer, "held");
	expect(epoll_wait(epfd, &ev, 1, WAIT_MS) == 1);
	set_nonblock(conn, false);
	epoll_mod(epfd, conn, EPOLLIN, 2);
	n = epoll_report(epfd, 0, "blocking, held input, after MOD", NULL, 0);
	expect(n == 1);
	say("poll: %s", epoll_event_names(wait_fd(conn, POLLIN)));
	FD_ZERO(&readable);
	FD_SET(conn, &readable);
	n = select(conn + 1, &readable, NULL, NULL, &zero);
	say("select: %d readable %d", n, !!FD_ISSET(conn, &readable));
	read_print(conn, 64, "read");
	expect_no_report(epfd, 0, "drained");
	close(epfd);
	close(conn);
	close(peer);
}

int main(void)
{
	struct epoll_event ev;
	struct late_write late;
	char buf[64];
	int peer, conn, epfd, on, err;
	ssize_t ret;
	size_t got;
	bool eof;

	epfd = tcp_pair_epoll(&peer, &conn, EPOLLIN, 1);
	say("O_NONBLOCK: %d", !!(fcntl(conn, F_GETFL) & O_NONBLOCK));

	put_text(peer, "first");
	expect(epoll_wait(epfd, &ev, 1, WAIT_MS) == 1);
	set_nonblock(conn, false);
	say("O_NONBLOCK: %d", !!(fcntl(conn, F_GETFL) & O_NONBLOCK));
	read_print(conn, 64, "blocking read of earlier input");
	late_write_start(&late, peer, "second", 100);
	read_print(conn, 64, "blocking read waits");
	late_write_join(&late);

	/* Writes: non-blocking, then blocking, order kept. */
	set_nonblock(conn, true);
	put_text(conn, "third;");
	set_nonblock(conn, false);
	put_text(conn, "fourth;");
	on = 1;
	ret = ioctl(conn, FIONBIO, &on);
	say("FIONBIO on: %s, O_NONBLOCK: %d", result_text(ret),
	    !!(fcntl(conn, F_GETFL) & O_NONBLOCK));
	put_text(conn, "fifth;");
	read_print(conn, 64, "nonblocking read, nothing there");
	expect(errno == EAGAIN);
	on = 0;
	ret = ioctl(conn, FIONBIO, &on);
	say("FIONBIO off: %s, O_NONBLOCK: %d", result_text(ret),
	    !!(fcntl(conn, F_GETFL) & O_NONBLOCK));
	ret = shutdown(conn, SHUT_WR);
	expect(ret == 0);
	got = read_stream(peer, buf, sizeof(buf), &eof, &err);
	say("peer got: '%.*s' eof=%d %s", (int)got, buf, eof,
	    errno_name(err));
	expect(got == 19 && !memcmp(buf, "third;fourth;fifth;", 19) && eof);

	/* Held input survives a toggle to blocking and back. */
	put_text(peer, "held");
	set_nonblock(conn, true);
	expect(epoll_wait(epfd, &ev, 1, WAIT_MS) == 1);
	set_nonblock(conn, false);
	set_nonblock(conn, true);
	read_print(conn, 64, "read after two toggles");
	read_print(conn, 64, "read again");
	expect(errno == EAGAIN);

	close(epfd);
	close(conn);
	close(peer);
	readiness_after_toggle();
	return conform_finish();
}
