/*
 * loop_epoll.c - the epoll I/O backend: accept4, read, write, EPOLLOUT
 * backpressure. One thread; level-triggered unless edge_triggered is set,
 * in which case every readable socket is read until EAGAIN.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server.h"

#define MAX_EVENTS		256
#define READ_BUF_SIZE		65536
/* Accepts per wakeup, so a connection storm cannot starve trading. */
#define MAX_ACCEPTS		256

/* Tags in epoll_event.data for the two fds that are not connections. */
static char listen_tag, stop_tag;

struct epoll_loop {
	struct server *srv;
	const struct backend_config *cfg;
	int epfd;
	bool stop;
	unsigned char *read_buf;
};

static uint32_t base_events(const struct epoll_loop *loop)
{
	return loop->cfg->edge_triggered ? EPOLLET : 0;
}

static void close_conn(struct epoll_loop *loop, struct conn *conn)
{
	if (!server_quiet(loop->srv))
		fprintf(stderr, "matching_server: conn %u closed\n", conn->id);
	close(conn->fd);	/* also drops it from the epoll set */
	server_conn_close(loop->srv, conn);
}

static void accept_conns(struct epoll_loop *loop)
{
	for (int i = 0; i < MAX_ACCEPTS; i++) {
		struct epoll_event ev;
		struct conn *conn;
		int one = 1;
		int fd;

		fd = accept4(loop->cfg->listen_fd, NULL, NULL,
			     SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			/* EMFILE and friends: retry on the next wakeup. */
			fprintf(stderr, "matching_server: accept4: %s\n",
				strerror(errno));
			return;
		}
		conn = server_conn_open(loop->srv, fd);
		if (!conn) {
			fprintf(stderr, "matching_server: connection refused: "
				"--max-conns reached\n");
			close(fd);
			continue;
		}
		/* Responses are latency-critical and already batched. */
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		ev.events = EPOLLIN | base_events(loop);
		ev.data.ptr = conn;
		conn->backend_flags = ev.events;
		if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev)) {
			fprintf(stderr, "matching_server: epoll_ctl: %s\n",
				strerror(errno));
			close(fd);
			server_conn_close(loop->srv, conn);
			continue;
		}
		if (!server_quiet(loop->srv))
			fprintf(stderr, "matching_server: conn %u open\n",
				conn->id);
	}
}

static void read_conn(struct epoll_loop *loop, struct conn *conn)
{
	do {
		ssize_t n = read(conn->fd, loop->read_buf, READ_BUF_SIZE);

		if (n > 0) {
			conn_input(conn, loop->read_buf, n);
		} else if (n == 0) {
			conn_eof(conn);
		} else if (errno == EAGAIN || errno == EWOULDBLOCK) {
			return;
		} else if (errno != EINTR) {
			conn_eof(conn);
		}
	} while (loop->cfg->edge_triggered && !conn->dead && !conn->closing);
}

static void conn_event(struct epoll_loop *loop, struct conn *conn,
		       uint32_t events)
{
	/* Errors and hangups surface through read(), as with ae. */
	if ((events & (EPOLLIN | EPOLLERR | EPOLLHUP)) && !conn->dead &&
	    !conn->closing)
		read_conn(loop, conn);
	if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
		conn_mark_dirty(conn);
}

/* One write per dirty connection, then arm EPOLLOUT if it fell short. */
static void flush_conn(struct epoll_loop *loop, struct conn *conn)
{
	struct epoll_event ev;
	const void *data;
	size_t pending;

	if (conn_must_close(conn)) {
		close_conn(loop, conn);
		return;
	}
	pending = conn_out_peek(conn, &data);
	if (pending) {
		ssize_t n = write(conn->fd, data, pending);

		if (n > 0) {
			conn_out_consume(conn, n);
			pending -= n;
		} else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK &&
			   errno != EINTR) {
			close_conn(loop, conn);
			return;
		}
	}
	if (conn_must_close(conn)) {
		close_conn(loop, conn);
		return;
	}
	/* A closing connection reads nothing more: do not poll for it. */
	ev.events = (pending ? EPOLLOUT : 0) | (conn->closing ? 0 : EPOLLIN) |
		    base_events(loop);
	if (ev.events == conn->backend_flags)
		return;
	ev.data.ptr = conn;
	if (epoll_ctl(loop->epfd, EPOLL_CTL_MOD, conn->fd, &ev)) {
		close_conn(loop, conn);
		return;
	}
	conn->backend_flags = ev.events;
}

static int add_fd(int epfd, int fd, void *tag)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = tag };

	return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
}

int loop_epoll_run(struct server *srv, const struct backend_config *cfg)
{
	struct epoll_event events[MAX_EVENTS];
	struct epoll_loop loop = { .srv = srv, .cfg = cfg };
	struct conn *conn;
	int err = 0;

	loop.read_buf = malloc(READ_BUF_SIZE);
	if (!loop.read_buf)
		return -ENOMEM;
	loop.epfd = epoll_create1(EPOLL_CLOEXEC);
	if (loop.epfd < 0 || add_fd(loop.epfd, cfg->listen_fd, &listen_tag) ||
	    add_fd(loop.epfd, cfg->stop_fd, &stop_tag)) {
		err = -errno;
		fprintf(stderr, "matching_server: epoll: %s\n",
			strerror(errno));
		goto out_close_epoll;
	}

	while (!loop.stop) {
		int n = epoll_wait(loop.epfd, events, MAX_EVENTS, -1);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			err = -errno;
			fprintf(stderr, "matching_server: epoll_wait: %s\n",
				strerror(errno));
			break;
		}
		for (int i = 0; i < n; i++) {
			void *tag = events[i].data.ptr;

			if (tag == &listen_tag)
				accept_conns(&loop);
			else if (tag == &stop_tag)
				loop.stop = true;
			else
				conn_event(&loop, tag, events[i].events);
		}
		/* Group commit: the journal first, then the responses. */
		err = server_commit(srv);
		if (err) {
			fprintf(stderr, "matching_server: journal: %s\n",
				strerror(-err));
			break;
		}
		while ((conn = server_next_dirty(srv)))
			flush_conn(&loop, conn);
	}

	while ((conn = server_first_conn(srv))) {
		close(conn->fd);
		server_conn_close(srv, conn);
	}
out_close_epoll:
	if (loop.epfd >= 0)
		close(loop.epfd);
	free(loop.read_buf);
	return err;
}
