/*
 * poll_select - poll, ppoll, select and pselect on TCP and plain fds.
 *
 * A TCP socket and a pipe watched together: nothing is ready at first but
 * POLLOUT; input on either is reported for that fd only, revents carrying
 * just the requested bits; after the peer's FIN POLLIN|POLLRDHUP; after a
 * reset POLLERR|POLLHUP as well, which poll reports unrequested. select
 * marks the same fds and returns their count. Waits that must report
 * something use a generous timeout; waits that must not use 0.
 */
#include "conform.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

static void poll_print(struct pollfd *pfd, int timeout, const char *label)
{
	int n;

	pfd[0].revents = pfd[1].revents = 0;
	n = poll(pfd, 2, timeout);
	say("%s: poll %s tcp %s pipe %s", label, result_text(n),
	    epoll_event_names(pfd[0].revents),
	    epoll_event_names(pfd[1].revents));
}

static void select_print(int tcp, int pipe_r, long timeout_ms,
			 const char *label)
{
	struct timeval tv = { timeout_ms / 1000, timeout_ms % 1000 * 1000 };
	fd_set rd, wr;
	int n, top = (tcp > pipe_r ? tcp : pipe_r) + 1;

	FD_ZERO(&rd);
	FD_ZERO(&wr);
	FD_SET(tcp, &rd);
	FD_SET(pipe_r, &rd);
	FD_SET(tcp, &wr);
	n = select(top, &rd, &wr, NULL, &tv);
	say("%s: select %s tcp r%d w%d pipe r%d", label, result_text(n),
	    !!FD_ISSET(tcp, &rd), !!FD_ISSET(tcp, &wr),
	    !!FD_ISSET(pipe_r, &rd));
}

int main(void)
{
	struct linger hard = { .l_onoff = 1, .l_linger = 0 };
	struct timespec zero = { 0, 0 };
	struct pollfd pfd[2];
	char buf[16];
	int peer, conn, pipefd[2], n;
	short revents;
	fd_set rd;
	sigset_t mask;
	ssize_t ret;

	tcp_pair(AF_INET, &peer, &conn);
	serve_fd(conn);
	if (pipe2(pipefd, O_NONBLOCK) < 0)
		die_errno("pipe2");
	pfd[0] = (struct pollfd){ .fd = conn, .events = POLLIN | POLLRDHUP };
	pfd[1] = (struct pollfd){ .fd = pipefd[0], .events = POLLIN };

	poll_print(pfd, 0, "idle");
	pfd[0].events |= POLLOUT;
	poll_print(pfd, 0, "idle, POLLOUT asked");
	select_print(conn, pipefd[0], 0, "idle");
	pfd[0].events &= ~POLLOUT;

	expect(write(pipefd[1], "p", 1) == 1);
	poll_print(pfd, WAIT_MS, "pipe input");
	select_print(conn, pipefd[0], 0, "pipe input");
	expect(read(pipefd[0], buf, sizeof(buf)) == 1);

	put_text(peer, "tcp");
	poll_print(pfd, WAIT_MS, "tcp input");
	select_print(conn, pipefd[0], WAIT_MS, "tcp input");
	n = ppoll(pfd, 2, &zero, NULL);
	say("ppoll: %s tcp %s", result_text(n),
	    epoll_event_names(pfd[0].revents));
	FD_ZERO(&rd);
	FD_SET(conn, &rd);
	sigemptyset(&mask);
	n = pselect(conn + 1, &rd, NULL, NULL, &zero, &mask);
	say("pselect: %s tcp r%d", result_text(n), !!FD_ISSET(conn, &rd));
	ret = read(conn, buf, sizeof(buf));
	say("read: %s", result_text(ret));
	poll_print(pfd, 0, "tcp drained");

	put_text(peer, "bye");
	shutdown(peer, SHUT_WR);
	/* The FIN may be learned after the data: wait until it shows. */
	expect(poll_wait_for(conn, pfd[0].events, POLLRDHUP, &revents));
	say("peer FIN: tcp %s", epoll_event_names(revents));
	ret = read(conn, buf, sizeof(buf));
	say("read: %s", result_text(ret));
	ret = read(conn, buf, sizeof(buf));
	say("read: %s", result_text(ret));
	poll_print(pfd, 0, "at EOF");
	select_print(conn, pipefd[0], 0, "at EOF");
	close(conn);
	close(peer);

	/* A reset shows as POLLERR|POLLHUP without asking for them. */
	tcp_pair(AF_INET, &peer, &conn);
	serve_fd(conn);
	pfd[0].fd = conn;
	pfd[0].events = POLLIN;
	setsockopt(peer, SOL_SOCKET, SO_LINGER, &hard, sizeof(hard));
	close(peer);
	expect(poll_wait_for(conn, pfd[0].events, POLLERR, &revents));
	say("peer reset: tcp %s", epoll_event_names(revents));
	select_print(conn, pipefd[0], 0, "after reset");
	ret = read(conn, buf, sizeof(buf));
	say("read: %s", result_text(ret));

	/* poll on a closed fd reports POLLNVAL. */
	close(conn);
	pfd[0].revents = 0;
	n = poll(pfd, 1, 0);
	say("closed fd: poll %s revents 0x%x", result_text(n),
	    (unsigned)pfd[0].revents);
	expect(n == 1 && pfd[0].revents == POLLNVAL);

	close(pipefd[0]);
	close(pipefd[1]);
	return conform_finish();
}
