/*
 * et - edge-triggered epoll: one report per arrival.
 *
 * With EPOLLET a socket is reported once when data arrives; waiting again
 * without new data reports nothing, even while bytes are still unread, and
 * a partial read does not re-arm it. Each new arrival reports again, whether
 * or not older bytes are still unread. The application reads to EAGAIN.
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

	epfd = tcp_pair_epoll(&peer, &conn, EPOLLIN | EPOLLET, 9);

	put_text(peer, "first");
	n = epoll_report(epfd, WAIT_MS, "arrival", ev, 4);
	expect(n == 1 && ev[0].events == EPOLLIN && ev[0].data.u64 == 9);
	expect_no_report(epfd, 0, "no new data");

	read_print(conn, 2, "read 2");
	expect_no_report(epfd, 0, "after partial read");
	read_print(conn, 64, "read rest");
	read_print(conn, 64, "read to EAGAIN");
	expect(errno == EAGAIN);
	expect_no_report(epfd, 0, "drained");

	put_text(peer, "second");
	n = epoll_report(epfd, WAIT_MS, "second arrival", ev, 4);
	expect(n == 1 && ev[0].events == EPOLLIN);
	expect_no_report(epfd, 0, "second, again");
	read_print(conn, 64, "read second");

	/* A new arrival reports again although "third" is still unread. */
	put_text(peer, "third");
	n = epoll_report(epfd, WAIT_MS, "third arrival", ev, 4);
	expect(n == 1 && ev[0].events == EPOLLIN);
	put_text(peer, "fourth");
	n = epoll_report(epfd, WAIT_MS, "fourth arrival, third unread", ev, 4);
	expect(n == 1 && ev[0].events == EPOLLIN);
	expect_no_report(epfd, 0, "fourth, again");
	read_print(conn, 64, "read both");
	read_print(conn, 64, "read to EAGAIN");
	expect(errno == EAGAIN);

	/* Edge-triggered EPOLLOUT: reported once, not again while idle. */
	epoll_mod(epfd, conn, EPOLLIN | EPOLLOUT | EPOLLET, 10);
	n = epoll_report(epfd, WAIT_MS, "out edge", ev, 4);
	expect(n == 1 && ev[0].events == EPOLLOUT);
	expect_no_report(epfd, 0, "out, again");

	/* Peer EOF is a new edge too. */
	shutdown(peer, SHUT_WR);
	n = epoll_report(epfd, WAIT_MS, "peer shutdown", ev, 4);
	expect(n == 1 && (ev[0].events & EPOLLIN));
	read_print(conn, 64, "read EOF");

	close(epfd);
	close(conn);
	close(peer);
	return conform_finish();
}
