/*
 * fortify - reads through glibc's _FORTIFY_SOURCE entry points.
 *
 * Servers built with -D_FORTIFY_SOURCE=2 call __read_chk, __recv_chk and
 * __recvfrom_chk (not read, recv, recvfrom) when the buffer size is known
 * and the length is not. Those must see shim-held input like the plain
 * calls: the bytes in order, then EAGAIN, then EOF as 0.
 */
#ifndef _FORTIFY_SOURCE
#define _FORTIFY_SOURCE 2
#endif
#include "conform.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* A length the compiler cannot see, so the _chk variants are called. */
static volatile size_t runtime_len = 48;

int main(void)
{
	struct epoll_event ev;
	char buf[64];
	int peer, conn, epfd;
	ssize_t ret;

	epfd = tcp_pair_epoll(&peer, &conn, EPOLLIN, 1);

	put_text(peer, "one;");
	expect(epoll_wait(epfd, &ev, 1, WAIT_MS) == 1);
	ret = read(conn, buf, runtime_len);
	say("read: %s '%.*s'", result_text(ret), (int)(ret > 0 ? ret : 0),
	    buf);
	expect(ret == 4);

	put_text(peer, "two;");
	expect(epoll_wait(epfd, &ev, 1, WAIT_MS) == 1);
	ret = recv(conn, buf, runtime_len, MSG_PEEK);
	say("recv peek: %s '%.*s'", result_text(ret),
	    (int)(ret > 0 ? ret : 0), buf);
	ret = recv(conn, buf, runtime_len, 0);
	say("recv: %s '%.*s'", result_text(ret), (int)(ret > 0 ? ret : 0),
	    buf);
	expect(ret == 4);

	put_text(peer, "three;");
	expect(epoll_wait(epfd, &ev, 1, WAIT_MS) == 1);
	ret = recvfrom(conn, buf, runtime_len, 0, NULL, NULL);
	say("recvfrom: %s '%.*s'", result_text(ret),
	    (int)(ret > 0 ? ret : 0), buf);
	expect(ret == 6);
	ret = read(conn, buf, runtime_len);
	say("read: %s", result_text(ret));
	expect(ret == -1 && errno == EAGAIN);

	shutdown(peer, SHUT_WR);
	expect(epoll_wait(epfd, &ev, 1, WAIT_MS) == 1);
	ret = recv(conn, buf, runtime_len, 0);
	say("recv at EOF: %s", result_text(ret));
	expect(ret == 0);

	close(epfd);
	close(conn);
	close(peer);
	return conform_finish();
}
