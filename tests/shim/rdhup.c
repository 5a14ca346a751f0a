/*
 * rdhup - peer shutdown(SHUT_WR): EPOLLIN|EPOLLRDHUP, data then 0.
 *
 * Bytes sent before the peer's FIN are read first, then read returns 0 and
 * keeps returning 0; level-triggered readiness stays on after EOF. Our
 * direction still works (half-close); once we shut it too the socket also
 * reports EPOLLHUP and a send fails with EPIPE.
 *
 * Timing: the shim may learn of the data before the FIN, so the program
 * waits until a report carries EPOLLRDHUP (internally bounded) and prints
 * that report; plainly the first report already carries it.
 */
#include "conform.h"

#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(void)
{
	struct epoll_event ev[4];
	int peer, conn, epfd, n;
	ssize_t ret;
	bool eof;
	int err;
	char buf[64];
	size_t got;

	epfd = tcp_pair_epoll(&peer, &conn, EPOLLIN | EPOLLRDHUP, 5);

	put_text(peer, "tail data");
	ret = shutdown(peer, SHUT_WR);
	say("peer shutdown: %s", result_text(ret));

	expect(epoll_wait_for(epfd, EPOLLRDHUP, &ev[0]));
	say("report with RDHUP: %s", epoll_event_names(ev[0].events));
	n = epoll_report(epfd, 0, "level, unread", ev, 4);
	expect(n == 1 && ev[0].events == (EPOLLIN | EPOLLRDHUP));

	read_print(conn, 64, "read data");
	read_print(conn, 64, "read at EOF");
	read_print(conn, 64, "read at EOF again");
	n = epoll_report(epfd, 0, "level, at EOF", ev, 4);
	expect(n == 1 && ev[0].events == (EPOLLIN | EPOLLRDHUP));

	/* Half-close: our direction still carries data. */
	ret = write(conn, "reply", 5);
	say("write after peer FIN: %s", result_text(ret));
	expect(ret == 5);
	got = read_stream(peer, buf, 5, &eof, &err);
	say("peer got: %zu '%.*s'", got, (int)got, buf);
	expect(got == 5 && !memcmp(buf, "reply", 5));

	ret = shutdown(conn, SHUT_WR);
	say("our shutdown: %s", result_text(ret));
	got = read_stream(peer, buf, sizeof(buf), &eof, &err);
	say("peer read: %zu eof=%d %s", got, eof, errno_name(err));
	expect(got == 0 && eof);

	epoll_mod(epfd, conn, EPOLLIN | EPOLLOUT | EPOLLRDHUP, 6);
	n = epoll_report(epfd, WAIT_MS, "both shut", ev, 4);
	expect(n == 1 && (ev[0].events & EPOLLHUP));
	ret = send(conn, "late", 4, MSG_NOSIGNAL);
	say("send after our shutdown: %s", result_text(ret));
	expect(ret == -1 && errno == EPIPE);

	/* EPOLLRDHUP not requested: EOF reports plain EPOLLIN. */
	close(epfd);
	close(conn);
	close(peer);
	epfd = tcp_pair_epoll(&peer, &conn, EPOLLIN, 7);
	close(peer);
	n = epoll_report(epfd, WAIT_MS, "peer closed, no RDHUP asked", ev, 4);
	expect(n == 1 && ev[0].events == EPOLLIN);
	read_print(conn, 64, "read");

	close(epfd);
	close(conn);
	return conform_finish();
}
