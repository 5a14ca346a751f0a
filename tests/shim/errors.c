/*
 * errors - the error paths of epoll and socket calls are the kernel's.
 *
 * epoll_ctl: MOD/DEL of an unregistered fd (ENOENT), a bad fd (EBADF), the
 * set itself (EINVAL), EPOLLEXCLUSIVE with EPOLLONESHOT or in a MOD
 * (EINVAL), an unknown op (EINVAL), a socket used as the set (EINVAL).
 * epoll_wait: maxevents 0 (EINVAL), a socket as the set (EINVAL), a
 * bad fd (EBADF). Socket calls on accelerated or unconnected sockets:
 * recv/send unconnected (ENOTCONN, EPIPE), zero-length read and write,
 * MSG_OOB both ways, getsockopt, and read after the peer's data is held.
 */
#include "conform.h"

#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define show(label, call)						\
	do {								\
		ssize_t ret_ = (call);					\
		say("%s: %s", label, result_text(ret_));		\
	} while (0)

int main(void)
{
	struct epoll_event ev = { .events = EPOLLIN }, evs[2];
	int peer, conn, epfd, spare, lone, type, on = 1;
	socklen_t len = sizeof(type);
	char buf[16];

	tcp_pair(AF_INET, &peer, &conn);
	epfd = epoll_new();
	lone = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (lone < 0)
		die_errno("socket");

	show("mod unregistered", epoll_ctl(epfd, EPOLL_CTL_MOD, conn, &ev));
	show("del unregistered", epoll_ctl(epfd, EPOLL_CTL_DEL, conn, &ev));
	show("add bad fd", epoll_ctl(epfd, EPOLL_CTL_ADD, 999, &ev));
	/*
	 * On a set of its own: the shim may leave a set it saw added to a
	 * set (even refused) to the kernel for good, and the calls below
	 * must meet an accelerated socket.
	 */
	spare = epoll_new();
	show("add the set to itself",
	     epoll_ctl(spare, EPOLL_CTL_ADD, spare, &ev));
	close(spare);
	ev.events = EPOLLIN | EPOLLEXCLUSIVE | EPOLLONESHOT;
	show("add exclusive+oneshot",
	     epoll_ctl(epfd, EPOLL_CTL_ADD, conn, &ev));
	ev.events = EPOLLIN | EPOLLEXCLUSIVE;
	show("add exclusive", epoll_ctl(epfd, EPOLL_CTL_ADD, conn, &ev));
	show("mod exclusive", epoll_ctl(epfd, EPOLL_CTL_MOD, conn, &ev));
	ev.events = EPOLLIN;
	show("mod an exclusive one", epoll_ctl(epfd, EPOLL_CTL_MOD, conn, &ev));
	show("del", epoll_ctl(epfd, EPOLL_CTL_DEL, conn, NULL));
	show("unknown op", epoll_ctl(epfd, 99, conn, &ev));
	show("socket as the set", epoll_ctl(conn, EPOLL_CTL_ADD, peer, &ev));
	show("wait maxevents 0", epoll_wait(epfd, evs, 0, 0));
	show("wait on a socket", epoll_wait(conn, evs, 2, 0));
	show("wait on a bad fd", epoll_wait(999, evs, 2, 0));

	show("read bad fd", read(999, buf, 1));
	show("recv unconnected", recv(lone, buf, 1, 0));
	show("send unconnected", send(lone, "x", 1, MSG_NOSIGNAL));
	show("getpeername unconnected",
	     getpeername(lone, (struct sockaddr *)buf, &len));
	show("write length 0", write(conn, "", 0));
	show("read length 0", read(conn, buf, 0));
	show("recv MSG_OOB, none", recv(conn, buf, 1, MSG_OOB));
	show("getsockopt SO_TYPE",
	     getsockopt(conn, SOL_SOCKET, SO_TYPE, &type, &len) ?: type);
	show("setsockopt SO_KEEPALIVE",
	     setsockopt(conn, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on)));

	epoll_add(epfd, conn, EPOLLIN, 1);
	put_text(peer, "abc");
	expect(epoll_wait(epfd, evs, 2, WAIT_MS) == 1);
	show("read held, length 0", read(conn, buf, 0));
	show("read held", read(conn, buf, sizeof(buf)));
	show("read drained", read(conn, buf, sizeof(buf)));

	close(lone);
	close(epfd);
	close(conn);
	close(peer);
	return conform_finish();
}
