/*
 * epoll_del_closed - epoll_ctl on a number the application closed answers
 * EBADF, however the shim made its own fds since (issue 10, item 4).
 *
 * The kernel hands out the lowest free number.  First: a blocking socket
 * is registered, dup'd (the dup keeps the file alive) and closed; then
 * the first accelerable socket is registered and waited on, which makes
 * the shim's ring, eventfd and error-watch set.  DEL and MOD of the closed
 * number must answer EBADF, not ENOENT (a number the shim took).  Second:
 * an fd is closed, then an accelerated socket with bytes still queued
 * (the peer not reading yet) is closed, for which the shim keeps a private
 * dup to finish the send; DEL of the first number is EBADF again, and the
 * peer still gets every byte, then EOF.
 */
#include "conform.h"
#include "accel_probe.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#define SEED 0x10d4u

int main(void)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 1 };
	struct stream_check reader;
	int listener, peer1, a, keep, peer2, b, peer3, c, spare, epfd;
	uint64_t sent;
	int ret;

	listener = tcp_listener(AF_INET);
	tcp_pair_from(listener, &peer1, &a);
	tcp_pair_from(listener, &peer2, &b);
	epfd = epoll_new();

	/*
	 * A registered (blocking, so the shim leaves it to the kernel and
	 * makes no ring yet), dup'd, closed: its number is free.
	 */
	set_nonblock(a, false);
	epoll_add(epfd, a, EPOLLIN, 1);
	keep = dup(a);
	expect(keep >= 0);
	close(a);
	/* The first socket the shim takes: its ring and fds are made. */
	epoll_add(epfd, b, EPOLLIN | EPOLLOUT, 2);
	put_text(peer2, "x");
	expect(epoll_wait_for(epfd, EPOLLIN, &ev));
	expect_accelerated(1);
	ret = epoll_ctl(epfd, EPOLL_CTL_DEL, a, NULL);
	say("DEL of the closed number: %s", result_text(ret));
	expect(ret == -1 && errno == EBADF);
	ev = (struct epoll_event){ .events = EPOLLIN, .data.u64 = 1 };
	ret = epoll_ctl(epfd, EPOLL_CTL_MOD, a, &ev);
	say("MOD of the closed number: %s", result_text(ret));
	expect(ret == -1 && errno == EBADF);

	/* A closed number, then a close that leaves bytes to send. */
	tcp_pair_from(listener, &peer3, &c);
	epoll_add(epfd, c, EPOLLIN | EPOLLOUT, 3);
	expect(epoll_wait_for(epfd, EPOLLOUT, &ev));
	expect_accelerated(2);
	spare = dup(keep);
	close(spare);
	stream_check_start_late(&reader, peer3, SEED, 300);
	sent = fill_until_eagain(c, SEED);
	ret = close(c);
	say("close with bytes queued: %s", result_text(ret));
	ret = epoll_ctl(epfd, EPOLL_CTL_DEL, spare, NULL);
	say("DEL of the number closed before it: %s", result_text(ret));
	expect(ret == -1 && errno == EBADF);
	ret = epoll_ctl(epfd, EPOLL_CTL_ADD, spare, &ev);
	say("ADD of it: %s", result_text(ret));
	expect(ret == -1 && errno == EBADF);
	stream_check_expect_all(&reader, sent, "queued at close");
	close_all(listener, peer1, keep, peer2, b, peer3, epfd);
	return conform_finish();
}
