/*
 * connect - a non-blocking connect driven by epoll, as proxies do.
 *
 * A SOCK_NONBLOCK socket registered in epoll before connect() reports
 * OUT|HUP (not connected); connect() returns EINPROGRESS; completion is
 * reported as EPOLLOUT with SO_ERROR 0, and the socket then carries data
 * both ways. A connect to a closed port reports IN|OUT|ERR|HUP|RDHUP with
 * SO_ERROR ECONNREFUSED (once), then read returns 0 and send EPIPE.
 */
#include "conform.h"

#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int so_error(int fd)
{
	socklen_t len = sizeof(int);
	int err = -1;

	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		return -errno;
	return err;
}

int main(void)
{
	struct sockaddr_storage addr;
	socklen_t len = sizeof(addr);
	struct epoll_event ev[2];
	int listener, epfd, client, server, n, err;
	char buf[8];
	ssize_t ret;
	size_t got;
	bool eof;

	listener = tcp_listener(AF_INET);
	if (getsockname(listener, (struct sockaddr *)&addr, &len) < 0)
		die_errno("getsockname");
	epfd = epoll_new();

	client = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (client < 0)
		die_errno("socket");
	epoll_add(epfd, client, EPOLLIN | EPOLLOUT | EPOLLRDHUP, 1);
	epoll_report(epfd, 0, "before connect", NULL, 0);
	ret = connect(client, (struct sockaddr *)&addr, len);
	say("connect: %s", result_text(ret));
	expect(ret == -1 && errno == EINPROGRESS);
	n = epoll_report(epfd, WAIT_MS, "connected", ev, 2);
	expect(n == 1 && ev[0].events == EPOLLOUT);
	say("SO_ERROR: %s", errno_name(so_error(client)));
	ret = connect(client, (struct sockaddr *)&addr, len);
	say("connect again: %s", result_text(ret));
	ret = connect(client, (struct sockaddr *)&addr, len);
	say("and again: %s", result_text(ret));
	ret = write(client, "hi", 2);
	say("write: %s", result_text(ret));

	server = accept(listener, NULL, NULL);
	if (server < 0)
		die_errno("accept");
	got = read_stream(server, buf, 2, &eof, &err);
	say("server got: %zu '%.*s'", got, (int)got, buf);
	expect(got == 2 && !memcmp(buf, "hi", 2));
	put_text(server, "yo");
	n = epoll_report(epfd, WAIT_MS, "reply", ev, 2);
	expect(n == 1 && (ev[0].events & EPOLLIN));
	ret = read(client, buf, sizeof(buf));
	say("read: %s '%.*s'", result_text(ret), (int)(ret > 0 ? ret : 0),
	    buf);
	close(server);
	close(client);
	close(listener);

	/* The listener is gone: the port refuses. */
	client = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (client < 0)
		die_errno("socket");
	epoll_add(epfd, client, EPOLLIN | EPOLLOUT | EPOLLRDHUP, 2);
	ret = connect(client, (struct sockaddr *)&addr, len);
	say("connect to a closed port: %s", result_text(ret));
	n = epoll_report(epfd, WAIT_MS, "refused", ev, 2);
	expect(n == 1 && (ev[0].events & EPOLLERR));
	say("SO_ERROR: %s", errno_name(so_error(client)));
	say("SO_ERROR again: %s", errno_name(so_error(client)));
	ret = read(client, buf, sizeof(buf));
	say("read: %s", result_text(ret));
	ret = send(client, "x", 1, MSG_NOSIGNAL);
	say("send: %s", result_text(ret));
	epoll_report(epfd, 0, "after", NULL, 0);

	close(client);
	close(epfd);
	return conform_finish();
}
