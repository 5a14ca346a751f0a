/*
 * writev_large - partial and large writev with iovecs of odd sizes.
 *
 * A small writev is accepted whole; writev of 1, 4 and 16 MiB through
 * iovecs of odd sizes (1 byte up to 1 MiB + 3) may be partial, and the
 * application advances its iovec array by the count returned and waits for
 * EPOLLOUT on EAGAIN. The peer must receive the exact byte stream. Edge
 * cases: iovcnt 0 returns 0, iovcnt > IOV_MAX fails with EINVAL, zero-length
 * iovecs are skipped. How a large writev is split is timing-dependent and
 * only checked.
 */
#include "conform.h"

#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define SEED 0x71e5

static const size_t odd_sizes[] = {
	1, 7, 0, 4093, 65537, 3, 131071, 1048579, 12289, 511, 262147,
};

/* Fill iov[] with odd-sized slices of buf covering total bytes. */
static int build_iovecs(struct iovec *iov, int max, uint8_t *buf,
			size_t total)
{
	size_t off = 0;
	int cnt = 0;

	for (int i = 0; off < total && cnt < max; i++) {
		size_t len = odd_sizes[i % (sizeof(odd_sizes) /
					    sizeof(odd_sizes[0]))];

		if (len > total - off || cnt == max - 1)
			len = total - off;
		iov[cnt++] = (struct iovec){ buf + off, len };
		off += len;
	}
	return cnt;
}

/*
 * Write the whole iovec array, advancing it over short writes (which may
 * end inside an iovec) and waiting for EPOLLOUT on EAGAIN.
 */
static uint64_t writev_all(int fd, int epfd, struct iovec *iov, int cnt)
{
	struct epoll_event ev;
	uint64_t done = 0;

	while (cnt > 0) {
		ssize_t ret = writev(fd, iov, cnt > IOV_MAX ? IOV_MAX : cnt);

		if (ret < 0) {
			expect(errno == EAGAIN);
			if (errno != EAGAIN || epoll_wait(epfd, &ev, 1,
							  WAIT_MS * 5) != 1)
				break;
			continue;
		}
		done += ret;
		while (cnt > 0 && (size_t)ret >= iov->iov_len) {
			ret -= iov->iov_len;
			iov++;
			cnt--;
		}
		if (cnt > 0 && ret > 0) {
			iov->iov_base = (char *)iov->iov_base + ret;
			iov->iov_len -= ret;
		}
	}
	return done;
}

int main(void)
{
	static const size_t totals[] = { 1 << 20, 4 << 20, 16 << 20 };
	struct iovec iov[IOV_MAX + 1];
	struct stream_check reader;
	uint8_t *buf = malloc(16 << 20);
	uint64_t offset = 0, done;
	int peer, conn, epfd, cnt;
	ssize_t ret;

	if (!buf)
		die_errno("malloc");
	epfd = tcp_pair_epoll(&peer, &conn, EPOLLOUT | EPOLLET, 1);
	stream_check_start(&reader, peer, SEED);

	/* Valid iovecs, so only the count can be what is refused. */
	buf[0] = 0;
	for (int i = 0; i <= IOV_MAX; i++)
		iov[i] = (struct iovec){ buf, 1 };
	ret = writev(conn, iov, 0);
	say("writev iovcnt 0: %s", result_text(ret));
	expect(ret == 0);
	ret = writev(conn, iov, IOV_MAX + 1);
	say("writev iovcnt IOV_MAX+1: %s", result_text(ret));
	expect(ret == -1 && errno == EINVAL);

	/* A small writev fits in the socket buffer: accepted whole. */
	pattern_fill(buf, 100, SEED, offset);
	iov[0] = (struct iovec){ buf, 1 };
	iov[1] = (struct iovec){ buf + 1, 0 };
	iov[2] = (struct iovec){ buf + 1, 33 };
	iov[3] = (struct iovec){ buf + 34, 66 };
	ret = writev(conn, iov, 4);
	say("writev 1+0+33+66: %s", result_text(ret));
	expect(ret == 100);
	offset += 100;

	for (size_t t = 0; t < sizeof(totals) / sizeof(totals[0]); t++) {
		pattern_fill(buf, totals[t], SEED, offset);
		cnt = build_iovecs(iov, IOV_MAX, buf, totals[t]);
		done = writev_all(conn, epfd, iov, cnt);
		say("writev %zu MiB in %d iovecs: all written %s",
		    totals[t] >> 20, cnt, done == totals[t] ? "yes" : "no");
		expect(done == totals[t]);
		offset += done;
	}
	/*
	 * Whether a writev was short is not checked: with the peer draining
	 * on another CPU the kernel may take 16 MiB in one call.
	 */

	/* Many tiny iovecs, then close at once: still byte-exact. */
	pattern_fill(buf, IOV_MAX, SEED, offset);
	for (int i = 0; i < IOV_MAX; i++)
		iov[i] = (struct iovec){ buf + i, 1 };
	done = writev_all(conn, epfd, iov, IOV_MAX);
	say("writev %d one-byte iovecs: all written %s", IOV_MAX,
	    done == IOV_MAX ? "yes" : "no");
	offset += done;

	ret = close(conn);
	say("close: %s", result_text(ret));
	stream_check_join(&reader);
	say("peer received %llu bytes, first bad byte %s, eof %s",
	    (unsigned long long)reader.got,
	    reader.bad_at == UINT64_MAX ? "none" : "FOUND",
	    reader.eof ? "yes" : "no");
	expect(reader.got == offset && reader.bad_at == UINT64_MAX);
	expect(reader.eof && !reader.err);

	close(epfd);
	close(peer);
	free(buf);
	return conform_finish();
}
