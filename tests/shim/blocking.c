/*
 * blocking - blocking TCP sockets pass through and behave as usual.
 *
 * Both ends blocking: a 4 MiB write returns the full count while the peer
 * reads in another thread; a blocking read returns what has arrived (not
 * the requested length); SO_RCVTIMEO turns a read with nothing to read into
 * -1 EAGAIN; an epoll set reports a blocking socket like any other;
 * shutdown and close deliver EOF after every byte.
 */
#include "conform.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define SEED	0xb10c
#define BIG	(4 << 20)

int main(void)
{
	struct timeval timeo = { 0, 100 * 1000 };
	struct stream_check reader;
	struct epoll_event ev;
	uint8_t *big = malloc(BIG);
	char buf[64];
	int peer, conn, epfd;
	ssize_t ret;

	if (!big)
		die_errno("malloc");
	tcp_pair(AF_INET, &peer, &conn);
	set_nonblock(conn, false);

	ret = write(peer, "ping", 4);
	say("write: %s", result_text(ret));
	ret = read(conn, buf, sizeof(buf));
	say("blocking read: %s '%.*s'", result_text(ret),
	    (int)(ret > 0 ? ret : 0), buf);
	expect(ret == 4);
	ret = write(conn, "pong", 4);
	say("write back: %s", result_text(ret));
	ret = recv(peer, buf, 4, MSG_WAITALL);
	say("peer recv waitall: %s '%.*s'", result_text(ret),
	    (int)(ret > 0 ? ret : 0), buf);

	if (setsockopt(conn, SOL_SOCKET, SO_RCVTIMEO, &timeo,
		       sizeof(timeo)) < 0)
		die_errno("SO_RCVTIMEO");
	ret = read(conn, buf, sizeof(buf));
	say("read with SO_RCVTIMEO, nothing sent: %s", result_text(ret));
	expect(ret == -1 && errno == EAGAIN);

	epfd = epoll_new();
	epoll_add(epfd, conn, EPOLLIN, 77);
	expect(epoll_wait(epfd, &ev, 1, 0) == 0);
	put_text(peer, "epoll");
	epoll_report(epfd, WAIT_MS, "blocking socket in epoll", NULL, 0);
	ret = read(conn, buf, sizeof(buf));
	say("read: %s '%.*s'", result_text(ret), (int)(ret > 0 ? ret : 0),
	    buf);

	stream_check_start(&reader, peer, SEED);
	pattern_fill(big, BIG, SEED, 0);
	ret = write(conn, big, BIG);
	say("blocking write 4 MiB: %s", result_text(ret));
	expect(ret == BIG);
	ret = shutdown(conn, SHUT_WR);
	say("shutdown: %s", result_text(ret));
	stream_check_join(&reader);
	say("peer got %llu bytes, bad byte %s, eof %d",
	    (unsigned long long)reader.got,
	    reader.bad_at == UINT64_MAX ? "none" : "FOUND", reader.eof);
	expect(reader.got == BIG && reader.bad_at == UINT64_MAX && reader.eof);

	close(peer);
	ret = read(conn, buf, sizeof(buf));
	say("read after peer close: %s", result_text(ret));
	close(epfd);
	close(conn);
	free(big);
	return conform_finish();
}
