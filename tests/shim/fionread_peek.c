/*
 * fionread_peek - FIONREAD, MSG_PEEK and MSG_WAITALL see held input.
 *
 * Once a socket has been reported readable (the shim may by then hold the
 * bytes in its own memory), FIONREAD/SIOCINQ count them, MSG_PEEK returns
 * them without consuming, recvmsg with MSG_PEEK fills several iovecs, and
 * reads then consume them in order. MSG_WAITALL on a non-blocking socket
 * returns what is there; on a blocking socket it returns held bytes plus
 * later arrivals, waiting for the full count. MSG_TRUNC discards, SO_PEEK_OFF
 * makes peeks walk forward, SO_RCVLOWAT holds readiness below its mark.
 * readv and recvmsg scatter held input into odd-sized iovecs exactly.
 */
#include "conform.h"

#include <errno.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

static int queued(int fd, unsigned long request)
{
	int count = -1;

	if (ioctl(fd, request, &count) < 0)
		return -errno;
	return count;
}

static void recv_print(int fd, size_t len, int flags, const char *label)
{
	char buf[64];
	ssize_t ret = recv(fd, buf, len, flags);

	say("%s: %s '%.*s'", label, result_text(ret), (int)(ret > 0 ? ret : 0),
	    buf);
}

/*
 * Receive options that change what peeking and readiness see: MSG_TRUNC
 * (TCP discards the bytes), SO_PEEK_OFF (successive peeks walk forward) and
 * SO_RCVLOWAT (not readable below the mark; watched for QUIET_MS).
 */
#define QUIET_MS 200
static void peek_options(void)
{
	struct epoll_event ev;
	int peer, conn, epfd, value;
	char scratch[8];
	ssize_t ret;

	epfd = tcp_pair_epoll(&peer, &conn, EPOLLIN, 2);
	put_text(peer, "0123456789");
	expect(epoll_wait(epfd, &ev, 1, WAIT_MS) == 1);
	ret = recv(conn, scratch, 4, MSG_TRUNC);
	say("recv MSG_TRUNC 4: %s", result_text(ret));
	recv_print(conn, 64, 0, "recv after MSG_TRUNC");

	value = 0;
	ret = setsockopt(conn, SOL_SOCKET, SO_PEEK_OFF, &value, sizeof(value));
	say("SO_PEEK_OFF 0: %s", result_text(ret));
	put_text(peer, "abcdef");
	expect(epoll_wait(epfd, &ev, 1, WAIT_MS) == 1);
	recv_print(conn, 2, MSG_PEEK, "peek 2 with SO_PEEK_OFF");
	recv_print(conn, 2, MSG_PEEK, "peek 2 again");
	recv_print(conn, 3, 0, "recv 3");
	recv_print(conn, 2, MSG_PEEK, "peek 2 after recv");
	recv_print(conn, 64, 0, "recv rest");
	value = -1;
	setsockopt(conn, SOL_SOCKET, SO_PEEK_OFF, &value, sizeof(value));

	value = 5;
	ret = setsockopt(conn, SOL_SOCKET, SO_RCVLOWAT, &value, sizeof(value));
	say("SO_RCVLOWAT 5: %s", result_text(ret));
	put_text(peer, "ab");
	epoll_report(epfd, QUIET_MS, "2 bytes, low mark 5", NULL, 0);
	put_text(peer, "cdef");
	epoll_report(epfd, WAIT_MS, "6 bytes, low mark 5", NULL, 0);
	recv_print(conn, 64, 0, "recv");

	close(epfd);
	close(conn);
	close(peer);
}

/*
 * Held input read with readv and recvmsg into iovecs of odd sizes (one of
 * them empty): the byte stream comes out exact, whatever each call returns.
 */
static void readv_scatter(void)
{
	static uint8_t data[100000], joined[1 + 7 + 4093 + 65537];
	static uint8_t a[1], b[7], c[4093], d[65537];
	struct iovec iov[5] = {
		{ a, sizeof(a) }, { b, 0 }, { b, sizeof(b) },
		{ c, sizeof(c) }, { d, sizeof(d) },
	};
	struct msghdr msg = { .msg_iov = iov, .msg_iovlen = 5 };
	struct epoll_event ev;
	int peer, conn, epfd, bad = 0;
	uint64_t off = 0;

	epfd = tcp_pair_epoll(&peer, &conn, EPOLLIN, 3);
	pattern_fill(data, sizeof(data), 0x5ca7, 0);
	write_all(peer, data, sizeof(data));
	expect(epoll_wait(epfd, &ev, 1, WAIT_MS) == 1);
	for (int call = 0; off < sizeof(data); call++) {
		ssize_t n = call % 2 ? recvmsg(conn, &msg, 0)
				     : readv(conn, iov, 5);
		size_t at = 0;

		if (n < 0) {
			expect(errno == EAGAIN);
			if (errno != EAGAIN || !wait_fd(conn, POLLIN))
				break;
			continue;
		}
		if (n == 0)
			break;
		for (int i = 0; i < 5; i++) {
			memcpy(joined + at, iov[i].iov_base, iov[i].iov_len);
			at += iov[i].iov_len;
		}
		bad += pattern_check(joined, n, 0x5ca7, off) != (size_t)n;
		off += n;
	}
	say("readv/recvmsg scatter: %llu bytes, %s",
	    (unsigned long long)off, bad ? "WRONG BYTES" : "exact");
	expect(off == sizeof(data) && !bad);
	close(epfd);
	close(conn);
	close(peer);
}

int main(void)
{
	struct epoll_event ev;
	char a[4], b[8];
	struct iovec iov[2] = { { a, sizeof(a) }, { b, sizeof(b) } };
	struct msghdr msg = { .msg_iov = iov, .msg_iovlen = 2 };
	struct late_write late;
	int peer, conn, epfd;
	ssize_t ret;

	epfd = tcp_pair_epoll(&peer, &conn, EPOLLIN, 1);
	say("FIONREAD idle: %d", queued(conn, FIONREAD));

	put_text(peer, "hello world");
	expect(epoll_wait(epfd, &ev, 1, WAIT_MS) == 1);
	say("FIONREAD: %d", queued(conn, FIONREAD));
	say("SIOCINQ: %d", queued(conn, SIOCINQ));
	recv_print(conn, 5, MSG_PEEK, "peek 5");
	recv_print(conn, 64, MSG_PEEK, "peek all");
	ret = recvmsg(conn, &msg, MSG_PEEK);
	say("recvmsg peek 4+8: %s '%.4s' '%.*s'", result_text(ret), a,
	    (int)(ret > 4 ? ret - 4 : 0), b);
	say("FIONREAD after peeks: %d", queued(conn, FIONREAD));
	recv_print(conn, 6, 0, "recv 6");
	say("FIONREAD: %d", queued(conn, FIONREAD));
	recv_print(conn, 64, MSG_PEEK | MSG_DONTWAIT, "peek rest");
	recv_print(conn, 64, 0, "recv rest");
	say("FIONREAD drained: %d", queued(conn, FIONREAD));
	recv_print(conn, 64, MSG_PEEK, "peek drained");
	expect(errno == EAGAIN);
	expect(epoll_wait(epfd, &ev, 1, 0) == 0);

	/* MSG_WAITALL on a non-blocking socket returns what is there. */
	put_text(peer, "abc");
	expect(epoll_wait(epfd, &ev, 1, WAIT_MS) == 1);
	recv_print(conn, 8, MSG_WAITALL | MSG_PEEK, "waitall peek, nonblock");
	recv_print(conn, 8, MSG_WAITALL, "waitall, nonblocking");

	/* Blocking MSG_WAITALL: held bytes first, then the late ones. */
	put_text(peer, "abc");
	expect(epoll_wait(epfd, &ev, 1, WAIT_MS) == 1);
	say("FIONREAD held: %d", queued(conn, FIONREAD));
	set_nonblock(conn, false);
	late_write_start(&late, peer, "defgh", 100);
	recv_print(conn, 8, MSG_WAITALL, "waitall, blocking");
	late_write_join(&late);

	/* Peek sees EOF as 0 without consuming data before it. */
	put_text(peer, "end");
	shutdown(peer, SHUT_WR);
	set_nonblock(conn, true);
	expect(epoll_wait(epfd, &ev, 1, WAIT_MS) == 1);
	recv_print(conn, 64, MSG_PEEK, "peek before EOF");
	recv_print(conn, 64, 0, "recv before EOF");
	recv_print(conn, 64, MSG_PEEK, "peek at EOF");
	say("FIONREAD at EOF: %d", queued(conn, FIONREAD));

	close(epfd);
	close(conn);
	close(peer);
	peek_options();
	readv_scatter();
	return conform_finish();
}
