/*
 * shutdown_flush - write then shutdown(SHUT_WR): every byte, then EOF.
 *
 * The peer reads all bytes written before shutdown(SHUT_WR), then EOF, while
 * our read direction still works: the peer's reply is read after our
 * shutdown. A write after SHUT_WR fails with EPIPE. SHUT_RDWR right after
 * writes flushes too, and a read after it returns 0. After SHUT_RD, input
 * that had arrived is still returned, then 0, and writing still works.
 * Shutting down with full buffers (peer not reading yet) loses nothing.
 */
#include "conform.h"

#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define SEED 0x5d07

int main(void)
{
	struct stream_check reader;
	uint8_t buf[32 * 1024];
	char text[64];
	int peer, conn, err;
	ssize_t ret;
	size_t got;
	bool eof;

	tcp_pair(AF_INET, &peer, &conn);
	serve_fd(conn);
	pattern_fill(buf, sizeof(buf), SEED, 0);
	ret = write(conn, buf, 100);
	say("write 100: %s", result_text(ret));
	ret = write(conn, buf + 100, 900);
	say("write 900: %s", result_text(ret));
	ret = shutdown(conn, SHUT_WR);
	say("shutdown SHUT_WR: %s", result_text(ret));
	ret = send(conn, "x", 1, MSG_NOSIGNAL);
	say("send after SHUT_WR: %s", result_text(ret));
	expect(ret == -1 && errno == EPIPE);

	stream_check_start(&reader, peer, SEED);
	stream_check_join(&reader);
	say("peer got %llu bytes, first bad byte %s, eof %s",
	    (unsigned long long)reader.got,
	    reader.bad_at == UINT64_MAX ? "none" : "FOUND",
	    reader.eof ? "yes" : "no");
	expect(reader.got == 1000 && reader.bad_at == UINT64_MAX && reader.eof);

	/* Our read side is still open. */
	put_text(peer, "reply after FIN");
	got = read_stream(conn, text, 15, &eof, &err);
	say("read reply: %zu '%.*s'", got, (int)got, text);
	expect(got == 15 && !memcmp(text, "reply after FIN", 15));
	close(peer);
	got = read_stream(conn, text, sizeof(text), &eof, &err);
	say("read after peer close: %zu eof=%d %s", got, eof, errno_name(err));
	expect(got == 0 && eof);
	close(conn);

	/* SHUT_RDWR after a write larger than one segment. */
	tcp_pair(AF_INET, &peer, &conn);
	serve_fd(conn);
	stream_check_start(&reader, peer, SEED);
	write_all(conn, buf, sizeof(buf));
	ret = shutdown(conn, SHUT_RDWR);
	say("shutdown SHUT_RDWR: %s", result_text(ret));
	ret = read(conn, text, sizeof(text));
	say("read after SHUT_RDWR: %s", result_text(ret));
	expect(ret == 0);
	stream_check_join(&reader);
	say("peer got %llu bytes, first bad byte %s, eof %s",
	    (unsigned long long)reader.got,
	    reader.bad_at == UINT64_MAX ? "none" : "FOUND",
	    reader.eof ? "yes" : "no");
	expect(reader.got == sizeof(buf) && reader.bad_at == UINT64_MAX);
	expect(reader.eof);
	ret = shutdown(conn, SHUT_WR);
	say("shutdown again: %s", result_text(ret));
	close(conn);
	close(peer);

	/* SHUT_RD: input already there is still read, then 0. */
	tcp_pair(AF_INET, &peer, &conn);
	{
		int epfd = epoll_new();
		struct epoll_event ev;

		epoll_add(epfd, conn, EPOLLIN | EPOLLRDHUP, 3);
		put_text(peer, "held");
		expect(epoll_wait(epfd, &ev, 1, WAIT_MS) == 1);
		ret = shutdown(conn, SHUT_RD);
		say("shutdown SHUT_RD: %s", result_text(ret));
		ret = read(conn, text, sizeof(text));
		say("read after SHUT_RD: %s '%.*s'", result_text(ret),
		    (int)(ret > 0 ? ret : 0), text);
		ret = read(conn, text, sizeof(text));
		say("read again: %s", result_text(ret));
		expect(ret == 0);
		epoll_report(epfd, 0, "after SHUT_RD", NULL, 0);
		ret = write(conn, "still writable", 14);
		say("write after SHUT_RD: %s", result_text(ret));
		close(epfd);
	}
	close(conn);
	close(peer);

	/*
	 * Buffers full, the peer not reading yet: shutdown(SHUT_WR) still
	 * delivers every accepted byte, then EOF, once the peer reads.
	 */
	{
		uint64_t sent;

		tcp_pair(AF_INET, &peer, &conn);
		serve_fd(conn);
		stream_check_start_late(&reader, peer, SEED, 200);
		sent = fill_until_eagain(conn, SEED);
		ret = shutdown(conn, SHUT_WR);
		say("shutdown with full buffers: %s", result_text(ret));
		stream_check_expect_all(&reader, sent, "full buffers");
		close(conn);
		close(peer);
	}

	/* shutdown on a socket that is not connected. */
	conn = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	ret = shutdown(conn, SHUT_WR);
	say("shutdown unconnected: %s", result_text(ret));
	expect(ret == -1 && errno == ENOTCONN);
	close(conn);
	return conform_finish();
}
