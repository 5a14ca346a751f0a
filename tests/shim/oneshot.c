/*
 * oneshot - EPOLLONESHOT disarms after one event until EPOLL_CTL_MOD.
 *
 * After the one report, nothing is reported for the socket (neither the
 * unread bytes nor new arrivals) until the application re-arms it with
 * EPOLL_CTL_MOD, which may change the events and the epoll_data; the next
 * report then carries the new data. The check that nothing is reported
 * while disarmed waits a short while after a new arrival. Registration
 * changes with input held: DEL + ADD, and one socket in two sets.
 */
#include "conform.h"

#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* How long "no report while disarmed" is watched for. */
#define QUIET_MS 200

/*
 * Registration changes with input already held: DEL then ADD with EPOLLET
 * reports the held input once; the same socket added to a second set is
 * reported there too, each set keeping its own data and mode; a new
 * arrival reaches both. (How many bytes one read returns is not the point:
 * the stream is read whole.)
 */
static void registrations(void)
{
	struct epoll_event ev[4];
	int peer, conn, first, second, n, err;
	char buf[16];
	size_t got;
	bool eof;

	tcp_pair(AF_INET, &peer, &conn);
	first = epoll_new();
	second = epoll_new();
	epoll_add(first, conn, EPOLLIN, 1);
	put_text(peer, "held");
	expect(epoll_wait(first, ev, 1, WAIT_MS) == 1);
	epoll_ctl(first, EPOLL_CTL_DEL, conn, NULL);
	expect_no_report(first, 0, "after DEL");
	epoll_add(first, conn, EPOLLIN | EPOLLET, 2);
	n = epoll_report(first, 0, "ADD again, ET, input held", ev, 4);
	expect(n == 1 && ev[0].data.u64 == 2);
	expect_no_report(first, 0, "ET, nothing new");
	epoll_add(second, conn, EPOLLIN, 3);
	n = epoll_report(second, 0, "second set, input held", ev, 4);
	expect(n == 1 && ev[0].data.u64 == 3);
	expect_no_report(first, 0, "first set, nothing new");
	put_text(peer, "more");
	n = epoll_report(first, WAIT_MS, "first set, new arrival", ev, 4);
	expect(n == 1 && ev[0].data.u64 == 2);
	n = epoll_report(second, WAIT_MS, "second set, new arrival", ev, 4);
	expect(n == 1 && ev[0].data.u64 == 3);
	got = read_stream(conn, buf, 8, &eof, &err);
	say("read: '%.*s'", (int)got, buf);
	expect(got == 8 && !memcmp(buf, "heldmore", 8));
	expect_no_report(second, 0, "second set, drained");
	close(first);
	close(second);
	close(conn);
	close(peer);
}

int main(void)
{
	struct epoll_event ev[4];
	char buf[64];
	int peer, conn, epfd, n;
	ssize_t ret;

	epfd = tcp_pair_epoll(&peer, &conn, EPOLLIN | EPOLLONESHOT, 11);

	put_text(peer, "one");
	n = epoll_report(epfd, WAIT_MS, "first", ev, 4);
	expect(n == 1 && ev[0].events == EPOLLIN && ev[0].data.u64 == 11);
	expect_no_report(epfd, 0, "disarmed, unread");

	put_text(peer, "two");
	expect_no_report(epfd, QUIET_MS, "disarmed, new arrival");

	epoll_mod(epfd, conn, EPOLLIN | EPOLLONESHOT, 12);
	n = epoll_report(epfd, WAIT_MS, "re-armed", ev, 4);
	expect(n == 1 && ev[0].events == EPOLLIN && ev[0].data.u64 == 12);
	expect_no_report(epfd, 0, "disarmed again");

	ret = recv(conn, buf, sizeof(buf), 0);
	say("read: %s '%.*s'", result_text(ret), (int)(ret > 0 ? ret : 0),
	    buf);
	expect(ret == 6 && !memcmp(buf, "onetwo", 6));

	/* Re-armed with nothing to read: quiet until the next arrival. */
	epoll_mod(epfd, conn, EPOLLIN | EPOLLONESHOT, 13);
	expect_no_report(epfd, 0, "armed, idle");
	put_text(peer, "three");
	n = epoll_report(epfd, WAIT_MS, "armed, arrival", ev, 4);
	expect(n == 1 && ev[0].events == EPOLLIN && ev[0].data.u64 == 13);
	ret = recv(conn, buf, sizeof(buf), 0);
	say("read: %s '%.*s'", result_text(ret), (int)(ret > 0 ? ret : 0),
	    buf);

	/* One-shot EPOLLOUT, and EPOLLET|EPOLLONESHOT together. */
	epoll_mod(epfd, conn, EPOLLOUT | EPOLLONESHOT, 14);
	n = epoll_report(epfd, WAIT_MS, "out once", ev, 4);
	expect(n == 1 && ev[0].events == EPOLLOUT);
	expect_no_report(epfd, 0, "out disarmed");
	epoll_mod(epfd, conn, EPOLLIN | EPOLLET | EPOLLONESHOT, 15);
	put_text(peer, "four");
	n = epoll_report(epfd, WAIT_MS, "et+oneshot", ev, 4);
	expect(n == 1 && ev[0].events == EPOLLIN && ev[0].data.u64 == 15);
	put_text(peer, "five");
	expect_no_report(epfd, QUIET_MS, "et+oneshot disarmed");

	/* A disarmed socket is still registered: ADD fails, DEL works. */
	ret = epoll_ctl(epfd, EPOLL_CTL_ADD, conn,
			&(struct epoll_event){ .events = EPOLLIN });
	say("add while disarmed: %s", result_text(ret));
	expect(ret == -1 && errno == EEXIST);
	ret = epoll_ctl(epfd, EPOLL_CTL_DEL, conn, NULL);
	say("del: %s", result_text(ret));
	ret = epoll_ctl(epfd, EPOLL_CTL_DEL, conn, NULL);
	say("del again: %s", result_text(ret));
	expect(ret == -1 && errno == ENOENT);

	close(epfd);
	close(conn);
	close(peer);
	registrations();
	return conform_finish();
}
