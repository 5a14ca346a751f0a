/*
 * ipv6 - the same stream and readiness semantics over ::1.
 *
 * A connection over ::1: level-triggered input with epoll_data, a partial
 * read, writes in both directions, write-then-close delivering every byte
 * and EOF, and a dual-stack listener on :: accepting an IPv4 client as a
 * v4-mapped peer. Skips (77) when ::1 is not configured.
 */
#include "conform.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define SEED 0x1b6

int main(void)
{
	struct sockaddr_in6 any = { .sin6_family = AF_INET6,
				    .sin6_addr = IN6ADDR_ANY_INIT };
	struct sockaddr_in v4 = { .sin_family = AF_INET };
	struct sockaddr_in6 from;
	socklen_t len = sizeof(any), from_len = sizeof(from);
	struct stream_check reader;
	struct epoll_event ev[2];
	uint8_t data[20000];
	char buf[64], text[64];
	int peer, conn, epfd, n, listener, off = 0, client;
	ssize_t ret;

	tcp_pair(AF_INET6, &peer, &conn);
	epfd = epoll_new();
	epoll_add(epfd, conn, EPOLLIN, 6);
	put_text(peer, "over ::1");
	n = epoll_report(epfd, WAIT_MS, "arrival", ev, 2);
	expect(n == 1 && ev[0].data.u64 == 6);
	ret = read(conn, buf, 4);
	say("read 4: %s '%.*s'", result_text(ret), (int)(ret > 0 ? ret : 0),
	    buf);
	n = epoll_report(epfd, 0, "still readable", ev, 2);
	expect(n == 1);
	ret = read(conn, buf, sizeof(buf));
	say("read rest: %s '%.*s'", result_text(ret),
	    (int)(ret > 0 ? ret : 0), buf);
	expect_no_report(epfd, 0, "drained");

	stream_check_start(&reader, peer, SEED);
	pattern_fill(data, sizeof(data), SEED, 0);
	write_all(conn, data, sizeof(data));
	ret = close(conn);
	say("close: %s", result_text(ret));
	stream_check_join(&reader);
	say("peer got %llu bytes, bad byte %s, eof %d",
	    (unsigned long long)reader.got,
	    reader.bad_at == UINT64_MAX ? "none" : "FOUND", reader.eof);
	expect(reader.got == sizeof(data) && reader.bad_at == UINT64_MAX);
	close(peer);
	close(epfd);

	/* Dual-stack: an IPv4 client shows up as ::ffff:127.0.0.1. */
	listener = socket(AF_INET6, SOCK_STREAM, 0);
	if (listener < 0 ||
	    setsockopt(listener, IPPROTO_IPV6, IPV6_V6ONLY, &off,
		       sizeof(off)) < 0 ||
	    bind(listener, (struct sockaddr *)&any, len) < 0 ||
	    listen(listener, 4) < 0 ||
	    getsockname(listener, (struct sockaddr *)&any, &len) < 0)
		die_errno("dual-stack listener");
	v4.sin_port = any.sin6_port;
	v4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	client = socket(AF_INET, SOCK_STREAM, 0);
	if (client < 0 || connect(client, (struct sockaddr *)&v4,
				  sizeof(v4)) < 0)
		die_errno("v4 connect");
	conn = accept4(listener, (struct sockaddr *)&from, &from_len,
		       SOCK_NONBLOCK);
	if (conn < 0)
		die_errno("accept4");
	serve_fd(conn);
	inet_ntop(AF_INET6, &from.sin6_addr, text, sizeof(text));
	say("accepted v4 client as %s", text);
	put_text(client, "mapped");
	wait_fd(conn, POLLIN);
	ret = read(conn, buf, sizeof(buf));
	say("read: %s '%.*s'", result_text(ret), (int)(ret > 0 ? ret : 0),
	    buf);
	put_text(conn, "ok");
	close(conn);
	ret = recv(client, buf, sizeof(buf), MSG_WAITALL);
	say("client got: %s '%.*s'", result_text(ret),
	    (int)(ret > 0 ? ret : 0), buf);
	close(client);
	close(listener);
	return conform_finish();
}
