/*
 * peer_reset - the peer resets the connection while we have sent data.
 *
 * We write (the shim may still hold the bytes), then the peer closes with
 * SO_LINGER {1, 0}, sending RST. The error surfaces as the kernel has it:
 * epoll reports IN|OUT|ERR|HUP|RDHUP, the next read fails with ECONNRESET
 * and later reads return 0; a first send fails with ECONNRESET without
 * SIGPIPE, the next with EPIPE and SIGPIPE unless MSG_NOSIGNAL or SIG_IGN;
 * SO_ERROR reports ECONNRESET once; input that arrived before the reset is
 * still read first. Writing to a peer that closed normally is accepted,
 * its RST shows as ERR|HUP and the next send fails with EPIPE. The number
 * of SIGPIPEs handled is printed: the kernel delivers it before send
 * returns.
 */
#include "conform.h"

#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static atomic_int sigpipes;

static void on_sigpipe(int sig)
{
	(void)sig;
	atomic_fetch_add(&sigpipes, 1);
}

/* A connection whose peer has reset it after we wrote "pending". */
static int reset_pair(int *epfd)
{
	struct linger hard = { .l_onoff = 1, .l_linger = 0 };
	int peer, conn;

	tcp_pair(AF_INET, &peer, &conn);
	*epfd = epoll_new();
	epoll_add(*epfd, conn, EPOLLIN | EPOLLOUT | EPOLLRDHUP, 8);
	put_text(conn, "pending");
	if (setsockopt(peer, SOL_SOCKET, SO_LINGER, &hard, sizeof(hard)) < 0)
		die_errno("SO_LINGER");
	close(peer);
	return conn;
}

/* Wait until the reset is visible, then print that report. */
static void report_reset(int epfd)
{
	struct epoll_event ev;

	expect(epoll_wait_for(epfd, EPOLLERR | EPOLLHUP, &ev));
	say("reset report: [0x%llx %s]", (unsigned long long)ev.data.u64,
	    epoll_event_names(ev.events));
}

static void step(const char *label, ssize_t ret)
{
	say("%s: %s, SIGPIPEs so far %d", label, result_text(ret),
	    atomic_load(&sigpipes));
}

int main(void)
{
	struct sigaction sa = { .sa_handler = on_sigpipe };
	char buf[16];
	int conn, epfd, soerr;
	ssize_t ret;
	socklen_t len = sizeof(soerr);

	sigemptyset(&sa.sa_mask);
	sigaction(SIGPIPE, &sa, NULL);

	/* Read first: ECONNRESET, then EOF; sends then fail. */
	conn = reset_pair(&epfd);
	report_reset(epfd);
	step("read", read(conn, buf, sizeof(buf)));
	step("read again", read(conn, buf, sizeof(buf)));
	step("send MSG_NOSIGNAL", send(conn, "x", 1, MSG_NOSIGNAL));
	step("write", write(conn, "x", 1));
	expect(errno == EPIPE && sigpipes == 1);
	epoll_report(epfd, 0, "after errors", NULL, 0);
	close(epfd);
	close(conn);

	/* Write first: the pending error comes out of send, no SIGPIPE. */
	atomic_store(&sigpipes, 0);
	conn = reset_pair(&epfd);
	report_reset(epfd);
	step("write", write(conn, "x", 1));
	expect(errno == ECONNRESET && sigpipes == 0);
	step("write again", write(conn, "x", 1));
	expect(errno == EPIPE && sigpipes == 1);
	step("read", read(conn, buf, sizeof(buf)));
	close(epfd);
	close(conn);

	/* SO_ERROR consumes the error; SIG_IGN suppresses SIGPIPE. */
	atomic_store(&sigpipes, 0);
	conn = reset_pair(&epfd);
	report_reset(epfd);
	soerr = -1;
	getsockopt(conn, SOL_SOCKET, SO_ERROR, &soerr, &len);
	say("SO_ERROR: %s", errno_name(soerr));
	expect(soerr == ECONNRESET);
	getsockopt(conn, SOL_SOCKET, SO_ERROR, &soerr, &len);
	say("SO_ERROR again: %s", errno_name(soerr));
	step("recv", recv(conn, buf, sizeof(buf), 0));
	signal(SIGPIPE, SIG_IGN);
	step("send, SIGPIPE ignored", send(conn, "x", 1, 0));
	expect(errno == EPIPE && sigpipes == 0);
	close(epfd);
	close(conn);

	/* Input sent before the reset is read first, then ECONNRESET. */
	{
		struct linger hard = { .l_onoff = 1, .l_linger = 0 };
		int peer;

		epfd = tcp_pair_epoll(&peer, &conn, EPOLLIN | EPOLLRDHUP, 9);
		put_text(peer, "last words");
		setsockopt(peer, SOL_SOCKET, SO_LINGER, &hard, sizeof(hard));
		close(peer);
		report_reset(epfd);
		ret = read(conn, buf, sizeof(buf));
		say("read: %s '%.*s'", result_text(ret),
		    (int)(ret > 0 ? ret : 0), buf);
		step("read again", read(conn, buf, sizeof(buf)));
		step("read once more", read(conn, buf, sizeof(buf)));
		close(epfd);
		close(conn);
	}

	/*
	 * The peer closed normally (FIN) before we wrote: the write is
	 * accepted and the peer answers it with RST (in CLOSE_WAIT the kernel
	 * records EPIPE). How soon the RST comes back is network timing, so
	 * the program waits until the socket shows it, then the next send
	 * fails with EPIPE.
	 */
	{
		int peer;

		epfd = tcp_pair_epoll(&peer, &conn,
				      EPOLLIN | EPOLLOUT | EPOLLRDHUP, 10);
		close(peer);
		epoll_report(epfd, WAIT_MS, "peer closed", NULL, 0);
		ret = send(conn, "x", 1, MSG_NOSIGNAL);
		say("send to a closed peer: %s", result_text(ret));
		report_reset(epfd);
		ret = send(conn, "x", 1, MSG_NOSIGNAL);
		say("send after its RST: %s", result_text(ret));
		expect(ret == -1 && errno == EPIPE);
		epoll_report(epfd, 0, "after the error", NULL, 0);
		step("read", read(conn, buf, sizeof(buf)));
		close(epfd);
		close(conn);
	}
	return conform_finish();
}
