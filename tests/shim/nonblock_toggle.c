/*
 * nonblock_toggle - O_NONBLOCK switched on and off with data in flight.
 *
 * Input that arrived while the socket was non-blocking (the shim may hold
 * it) is returned first by a read after switching to blocking; a blocking
 * read then waits for new input. Writes made non-blocking (possibly
 * deferred) and then blocking keep their order. FIONBIO toggles the same
 * flag, F_GETFL reports it, and after switching back a read with nothing
 * there fails with EAGAIN. Input held when the socket turns blocking is
 * still reported by epoll (after a MOD), poll and select.
 */
#include "conform.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int late_peer = -1;

static void *late_writer_run(void *arg)
{
	struct timespec delay = { 0, 100 * 1000 * 1000 };

	(void)arg;
	nanosleep(&delay, NULL);
	if (write(late_peer, "second", 6) != 6)
		expect(!"late write");
	return NULL;
}

/*
 * Input held when the socket turns blocking is still readiness: epoll
 * (after a MOD changing events and data), poll and select all report it.
 */
static void readiness_after_toggle(void)
{
	struct timeval zero = { 0, 0 };
	struct epoll_event ev;
	int peer, conn, epfd, n;
	fd_set readable;

	tcp_pair(AF_INET, &peer, &conn);
	epfd = epoll_new();
	epoll_add(epfd, conn, EPOLLIN | EPOLLET, 1);
	expect(write(peer, "held", 4) == 4);
	expect(epoll_wait(epfd, &ev, 1, WAIT_MS) == 1);
	set_nonblock(conn, false);
	epoll_mod(epfd, conn, EPOLLIN, 2);
	n = epoll_report(epfd, 0, "blocking, held input, after MOD", NULL, 0);
	expect(n == 1);
	say("poll: %s", epoll_event_names(wait_fd(conn, POLLIN)));
	FD_ZERO(&readable);
	FD_SET(conn, &readable);
	n = select(conn + 1, &readable, NULL, NULL, &zero);
	say("select: %d readable %d", n, !!FD_ISSET(conn, &readable));
	read_print(conn, 64, "read");
	n = epoll_report(epfd, 0, "drained", NULL, 0);
	expect(n == 0);
	close(epfd);
	close(conn);
	close(peer);
}

int main(void)
{
	struct epoll_event ev;
	pthread_t late;
	char buf[64];
	int peer, conn, epfd, on, err;
	ssize_t ret;
	size_t got;
	bool eof;

	tcp_pair(AF_INET, &peer, &conn);
	epfd = epoll_new();
	epoll_add(epfd, conn, EPOLLIN, 1);
	say("O_NONBLOCK: %d", !!(fcntl(conn, F_GETFL) & O_NONBLOCK));

	expect(write(peer, "first", 5) == 5);
	expect(epoll_wait(epfd, &ev, 1, WAIT_MS) == 1);
	set_nonblock(conn, false);
	say("O_NONBLOCK: %d", !!(fcntl(conn, F_GETFL) & O_NONBLOCK));
	read_print(conn, 64, "blocking read of earlier input");
	late_peer = peer;
	pthread_create(&late, NULL, late_writer_run, NULL);
	read_print(conn, 64, "blocking read waits");
	pthread_join(late, NULL);

	/* Writes: non-blocking, then blocking, order kept. */
	set_nonblock(conn, true);
	ret = write(conn, "third;", 6);
	expect(ret == 6);
	set_nonblock(conn, false);
	ret = write(conn, "fourth;", 7);
	expect(ret == 7);
	on = 1;
	ret = ioctl(conn, FIONBIO, &on);
	say("FIONBIO on: %s, O_NONBLOCK: %d", result_text(ret),
	    !!(fcntl(conn, F_GETFL) & O_NONBLOCK));
	ret = write(conn, "fifth;", 6);
	expect(ret == 6);
	read_print(conn, 64, "nonblocking read, nothing there");
	expect(errno == EAGAIN);
	on = 0;
	ret = ioctl(conn, FIONBIO, &on);
	say("FIONBIO off: %s, O_NONBLOCK: %d", result_text(ret),
	    !!(fcntl(conn, F_GETFL) & O_NONBLOCK));
	ret = shutdown(conn, SHUT_WR);
	expect(ret == 0);
	got = read_stream(peer, buf, sizeof(buf), &eof, &err);
	say("peer got: '%.*s' eof=%d %s", (int)got, buf, eof,
	    errno_name(err));
	expect(got == 19 && !memcmp(buf, "third;fourth;fifth;", 19) && eof);

	/* Held input survives a toggle to blocking and back. */
	expect(write(peer, "held", 4) == 4);
	set_nonblock(conn, true);
	expect(epoll_wait(epfd, &ev, 1, WAIT_MS) == 1);
	set_nonblock(conn, false);
	set_nonblock(conn, true);
	read_print(conn, 64, "read after two toggles");
	read_print(conn, 64, "read again");
	expect(errno == EAGAIN);

	close(epfd);
	close(conn);
	close(peer);
	readiness_after_toggle();
	return conform_finish();
}
