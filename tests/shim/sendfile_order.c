/*
 * sendfile_order - the less common data paths keep the stream's order.
 *
 * Bytes written with write() (which the shim may defer) and bytes moved by
 * calls that bypass user memory or batch messages - sendfile, splice from a
 * pipe, sendmmsg, send with MSG_MORE - reach the peer in call order. On the
 * receiving side, input the shim may already hold is returned before later
 * input by recvmmsg and by splice from the socket into a pipe.
 */
#include "conform.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

int main(void)
{
	char path[] = "/tmp/uringshim-sendfile-XXXXXX", buf[64];
	struct iovec iov[2] = { { "mm", 2 }, { "sg1;", 4 } };
	struct iovec iov2 = { "msg2;", 5 };
	struct mmsghdr msgs[2] = {
		{ .msg_hdr = { .msg_iov = iov, .msg_iovlen = 2 } },
		{ .msg_hdr = { .msg_iov = &iov2, .msg_iovlen = 1 } },
	};
	struct mmsghdr rmsg[2];
	struct iovec riov[2] = { { buf, 4 }, { buf + 32, 16 } };
	struct epoll_event ev;
	int peer, conn, file, pipefd[2], epfd;
	off_t off = 0;
	ssize_t ret;

	file = mkstemp(path);
	if (file < 0)
		die_errno("mkstemp");
	unlink(path);
	if (write(file, "file-body;", 10) != 10)
		die_errno("write file");
	if (pipe2(pipefd, O_NONBLOCK) < 0)
		die_errno("pipe2");

	/* Sending side. */
	tcp_pair(AF_INET, &peer, &conn);
	serve_fd(conn);
	put_text(conn, "head;");
	ret = sendfile(conn, file, &off, 10);
	say("sendfile: %s, offset now %lld", result_text(ret),
	    (long long)off);
	put_text(conn, "after-sendfile;");
	put_text(pipefd[1], "piped;");
	ret = splice(pipefd[0], NULL, conn, NULL, 6, SPLICE_F_NONBLOCK);
	say("splice pipe -> socket: %s", result_text(ret));
	put_text(conn, "after-splice;");
	ret = sendmmsg(conn, msgs, 2, 0);
	say("sendmmsg: %s, lengths %u %u", result_text(ret), msgs[0].msg_len,
	    msgs[1].msg_len);
	ret = send(conn, "more;", 5, MSG_MORE);
	say("send MSG_MORE: %s", result_text(ret));
	ret = send(conn, "end", 3, MSG_DONTWAIT);
	say("send MSG_DONTWAIT: %s", result_text(ret));
	close(conn);
	expect_stream(peer, "peer got",
		      "head;file-body;after-sendfile;piped;after-splice;"
		      "mmsg1;msg2;more;end", 0);
	close(peer);

	/* Receiving side: held input comes first. */
	epfd = tcp_pair_epoll(&peer, &conn, EPOLLIN, 1);
	put_text(peer, "held;");
	expect(epoll_wait(epfd, &ev, 1, WAIT_MS) == 1);
	put_text(peer, "later;");
	wait_fd(conn, POLLIN);
	memset(rmsg, 0, sizeof(rmsg));
	rmsg[0].msg_hdr = (struct msghdr){ .msg_iov = riov, .msg_iovlen = 2 };
	ret = recvmmsg(conn, rmsg, 1, MSG_DONTWAIT, NULL);
	say("recvmmsg: %s, first bytes '%.4s'", result_text(ret), buf);
	expect(ret == 1 && !memcmp(buf, "held", 4));
	{
		/* The rest, whatever recvmmsg did not take, in order. */
		char all[64];
		size_t len = ret == 1 ? rmsg[0].msg_len : 0, got = 0;
		bool eof = false;
		int err = 0;

		if (len > 4) {
			memcpy(all, buf, 4);
			memcpy(all + 4, buf + 32, len - 4);
		} else {
			memcpy(all, buf, len);
		}
		if (len < 11)
			got = read_stream(conn, all + len, 11 - len, &eof,
					  &err);
		say("stream via recvmmsg then read: '%.*s' eof=%d %s",
		    (int)(len + got), all, eof, errno_name(err));
		expect(len + got == 11 && !memcmp(all, "held;later;", 11));
	}

	put_text(peer, "held2;");
	expect(epoll_wait(epfd, &ev, 1, WAIT_MS) == 1);
	put_text(peer, "later2;");
	wait_fd(conn, POLLIN);
	ret = splice(conn, NULL, pipefd[1], NULL, 64, SPLICE_F_NONBLOCK);
	expect(ret > 0);
	{
		char all[64];
		size_t got = ret > 0 ? (size_t)ret : 0;
		ssize_t n;
		bool eof = false;
		int err = 0;

		n = read(pipefd[0], all, got);
		expect(n == (ssize_t)got);
		if (got < 13)
			got += read_stream(conn, all + got, 13 - got, &eof,
					   &err);
		say("stream via splice then read: '%.*s' eof=%d %s", (int)got,
		    all, eof, errno_name(err));
		expect(got == 13 && !memcmp(all, "held2;later2;", 13));
	}

	close_all(epfd, conn, peer, pipefd[0], pipefd[1], file);
	return conform_finish();
}
