/*
 * backpressure - a peer that does not read pushes back on our writes.
 *
 * Writing to a peer that does not read eventually returns EAGAIN (perhaps
 * after short writes); with the peer still not reading, EPOLLOUT is not
 * reported (watched for QUIET_MS). Once the peer drains, EPOLLOUT is
 * reported, the rest of the stream is written, and every byte arrives in
 * order (checked against a position-dependent pattern). How many bytes
 * fit before EAGAIN depends on buffer autotuning, so it is checked, not
 * printed.
 */
#include "conform.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define SEED	0xb4c4
#define CHUNK	(64 * 1024)
/* Far above any loopback socket buffer: EAGAIN must come before it. */
#define CAP	(64ull << 20)
/* Written after the drain starts: several more buffers' worth. */
#define QUIET_MS 100
#define MORE	(8ull * 1024 * 1024 + 17)

int main(void)
{
	struct epoll_event ev[4];
	struct stream_check reader;
	uint8_t *chunk = malloc(CHUNK);
	uint64_t sent = 0, total;
	int peer, conn, epfd, n, rounds;
	bool saw_eagain = false, quiet = false;
	ssize_t ret;

	if (!chunk)
		die_errno("malloc");
	epfd = tcp_pair_epoll(&peer, &conn, EPOLLOUT, 3);

	/*
	 * Fill until EAGAIN, then check that no room appears within QUIET_MS.
	 * Room can still appear once (ACKs freeing send memory after the
	 * EAGAIN), so this repeats a bounded number of times.
	 */
	for (rounds = 0; rounds < 20 && !quiet; rounds++) {
		while (sent < CAP) {
			pattern_fill(chunk, CHUNK, SEED, sent);
			ret = write(conn, chunk, CHUNK);
			if (ret < 0) {
				saw_eagain = errno == EAGAIN;
				expect(errno == EAGAIN);
				break;
			}
			sent += ret;
		}
		quiet = epoll_wait(epfd, ev, 4, QUIET_MS) == 0;
	}
	say("writes to a non-reading peer end in EAGAIN: %s",
	    saw_eagain ? "yes" : "no");
	say("and EPOLLOUT stays off: %s", quiet ? "yes" : "no");
	expect(sent > 0 && sent < CAP && quiet);

	total = sent + MORE;
	stream_check_start(&reader, peer, SEED);
	n = epoll_report(epfd, WAIT_MS * 5, "peer draining", ev, 4);
	expect(n == 1 && ev[0].events == EPOLLOUT);

	while (sent < total) {
		size_t len = total - sent < CHUNK ? total - sent : CHUNK;

		pattern_fill(chunk, len, SEED, sent);
		ret = write(conn, chunk, len);
		if (ret < 0) {
			expect(errno == EAGAIN);
			if (errno != EAGAIN)
				break;
			n = epoll_wait(epfd, ev, 4, WAIT_MS * 5);
			expect(n == 1 && ev[0].events == EPOLLOUT);
			if (n != 1)
				break;
			continue;
		}
		sent += ret;
	}
	ret = close(conn);
	say("close: %s", result_text(ret));
	stream_check_join(&reader);
	/* The total depends on where EAGAIN struck: compare, do not print. */
	say("peer received all %s bytes: %s, first bad byte %s, eof %s",
	    sent == total ? "written" : "INCOMPLETE",
	    reader.got == total ? "yes" : "no",
	    reader.bad_at == UINT64_MAX ? "none" : "FOUND",
	    reader.eof ? "yes" : "no");
	expect(sent == total && reader.got == total);
	expect(reader.bad_at == UINT64_MAX && reader.eof && !reader.err);

	close(epfd);
	close(peer);
	free(chunk);
	return conform_finish();
}
