/*
 * close_flush - write then close at once: the peer gets every byte, then EOF.
 *
 * close() right after writes must neither drop nor reorder bytes the
 * application was told were written: a single small write, a thousand tiny
 * writes, a 64 KiB stream written while the peer reads, writes to a socket
 * still registered in an epoll set, and writes until EAGAIN with the peer
 * not reading yet (every accepted byte arrives once it reads). close()
 * itself returns 0.
 */
#include "conform.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define SEED 0xc105e

static void report(const char *label, struct stream_check *reader,
		   uint64_t written)
{
	stream_check_join(reader);
	say("%s: peer got %llu of %llu bytes, first bad byte %s, eof %s, %s",
	    label, (unsigned long long)reader->got,
	    (unsigned long long)written,
	    reader->bad_at == UINT64_MAX ? "none" : "FOUND",
	    reader->eof ? "yes" : "no", errno_name(reader->err));
	expect(reader->got == written && reader->bad_at == UINT64_MAX);
	expect(reader->eof && !reader->err);
}

/*
 * Fill the connection until EAGAIN (socket buffers full, the peer not
 * reading yet), then close at once: every byte a write accepted must still
 * arrive once the peer reads, then EOF.
 */
static void close_when_full(void)
{
	struct stream_check reader;
	uint64_t sent;
	int peer, conn;
	ssize_t ret;

	tcp_pair(AF_INET, &peer, &conn);
	serve_fd(conn);
	stream_check_start_late(&reader, peer, SEED, 200);
	sent = fill_until_eagain(conn, SEED);
	ret = close(conn);
	say("close with full buffers: %s", result_text(ret));
	stream_check_expect_all(&reader, sent, "full buffers");
	close(peer);
}

int main(void)
{
	struct stream_check reader;
	uint8_t buf[64 * 1024];
	int peer, conn, epfd;
	uint64_t off;
	ssize_t ret;

	/* One small write, closed at once. */
	tcp_pair(AF_INET, &peer, &conn);
	serve_fd(conn);
	stream_check_start(&reader, peer, SEED);
	pattern_fill(buf, 10, SEED, 0);
	ret = write(conn, buf, 10);
	say("write 10: %s", result_text(ret));
	ret = close(conn);
	say("close: %s", result_text(ret));
	ret = close(conn);
	say("close again: %s", result_text(ret));
	expect(ret == -1 && errno == EBADF);
	report("single write", &reader, 10);
	close(peer);

	/* A thousand 7-byte writes, closed at once. */
	tcp_pair(AF_INET, &peer, &conn);
	serve_fd(conn);
	stream_check_start(&reader, peer, SEED);
	for (off = 0; off < 7000; off += 7) {
		pattern_fill(buf, 7, SEED, off);
		ret = write(conn, buf, 7);
		expect(ret == 7);
		if (ret != 7)
			break;
	}
	ret = close(conn);
	say("close after 1000 writes: %s", result_text(ret));
	report("tiny writes", &reader, off);
	close(peer);

	/* 64 KiB (plus odd tail) through write_all, then close. */
	tcp_pair(AF_INET, &peer, &conn);
	serve_fd(conn);
	stream_check_start(&reader, peer, SEED);
	pattern_fill(buf, sizeof(buf), SEED, 0);
	write_all(conn, buf, sizeof(buf));
	pattern_fill(buf, 333, SEED, sizeof(buf));
	write_all(conn, buf, 333);
	ret = close(conn);
	say("close after 64 KiB: %s", result_text(ret));
	report("stream", &reader, sizeof(buf) + 333);
	close(peer);

	/* Registered in epoll (close removes it); written, then closed. */
	epfd = tcp_pair_epoll(&peer, &conn, EPOLLIN | EPOLLOUT | EPOLLET, 4);
	epoll_report(epfd, WAIT_MS, "registered", NULL, 0);
	stream_check_start(&reader, peer, SEED);
	pattern_fill(buf, 4000, SEED, 0);
	ret = write(conn, buf, 1000);
	expect(ret == 1000);
	ret = send(conn, buf + 1000, 3000, MSG_NOSIGNAL);
	expect(ret == 3000);
	ret = close(conn);
	say("close while in epoll set: %s", result_text(ret));
	epoll_report(epfd, 0, "after close", NULL, 0);
	report("epoll member", &reader, 4000);
	close(epfd);
	close(peer);

	close_when_full();
	return conform_finish();
}
