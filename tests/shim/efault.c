/*
 * efault - a bad buffer gets EFAULT, never a crash.
 *
 * write, writev, send and read with a buffer the process cannot access
 * (a PROT_NONE page) fail with -1 EFAULT, as the kernel checks the memory
 * when it copies: the shim must not fault in its own copy. The socket is
 * still usable afterwards: input is read, the peer sees EOF.
 */
#include "conform.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

/* Valgrind rightly flags the bad buffers: quiet it around them only. */
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define BAD_BUFFERS_BEGIN() VALGRIND_DISABLE_ERROR_REPORTING
#define BAD_BUFFERS_END() VALGRIND_ENABLE_ERROR_REPORTING
#else
#define BAD_BUFFERS_BEGIN() do { } while (0)
#define BAD_BUFFERS_END() do { } while (0)
#endif

int main(void)
{
	struct epoll_event ev;
	int peer, conn, epfd, err;
	struct iovec iov[2];
	char buf[16], *bad;
	ssize_t ret;
	size_t got;
	bool eof;

	bad = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (bad == MAP_FAILED)
		die_errno("mmap");
	epfd = tcp_pair_epoll(&peer, &conn, EPOLLIN | EPOLLOUT | EPOLLET, 1);
	expect(epoll_wait(epfd, &ev, 1, WAIT_MS) == 1);
	iov[0] = (struct iovec){ "ok", 2 };
	iov[1] = (struct iovec){ bad, 10 };

	fflush(stdout);
	BAD_BUFFERS_BEGIN();
	ret = write(conn, bad, 10);
	say("write from a bad buffer: %s", result_text(ret));
	fflush(stdout);
	ret = writev(conn, iov, 2);
	say("writev good + bad: %s", result_text(ret));
	fflush(stdout);
	ret = send(conn, bad, 10, MSG_NOSIGNAL);
	say("send from a bad buffer: %s", result_text(ret));
	fflush(stdout);
	put_text(peer, "input");
	expect(epoll_wait(epfd, &ev, 1, WAIT_MS) == 1);
	ret = read(conn, bad, 10);
	say("read into a bad buffer: %s", result_text(ret));
	fflush(stdout);
	BAD_BUFFERS_END();

	got = read_stream(conn, buf, 5, &eof, &err);
	say("read after: '%.*s'", (int)got, buf);
	expect(got == 5 && !memcmp(buf, "input", 5));
	close(conn);
	got = read_stream(peer, buf, sizeof(buf), &eof, &err);
	say("peer got: %zu '%.*s' eof=%d", got, (int)got, buf, eof);
	close(peer);
	close(epfd);
	munmap(bad, 4096);
	return conform_finish();
}
