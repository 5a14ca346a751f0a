/*
 * poll_array - poll and ppoll leave the caller's array as the kernel
 * leaves it, and select takes sets larger than FD_SETSIZE (issue 10,
 * item 2).
 *
 * An array holding an accelerated socket (in the ring, checked from the
 * stats file under the shim), with input pending, beside entries disabled
 * the way poll(2) documents (fd -1, and ~fd of the socket and of a pipe),
 * an entry for a pipe with input and one for a closed fd: after poll and
 * ppoll every fd and events field is what the caller wrote, a negative
 * entry has revents 0, the others have the kernel's revents.  Then select
 * and pselect with nfds above FD_SETSIZE, over sets allocated for it,
 * holding the socket and a pipe moved to an fd above FD_SETSIZE: both are
 * reported, the count is right, bits beyond nfds are untouched.
 */
#include "conform.h"
#include "accel_probe.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <unistd.h>

#define HIGH_FD	(FD_SETSIZE + 300)	/* a pipe end above FD_SETSIZE */
#define NFDS	(HIGH_FD + 1)
#define LONGS	((NFDS + 63) / 64 + 2)	/* sets for NFDS bits, and more */

static void print_array(const char *label, const struct pollfd *p, int n,
			const int *fds, const char *const *names)
{
	printf("%s:", label);
	for (int i = 0; i < n; i++) {
		const char *name = "?";

		for (int k = 0; names[k]; k++)
			if (p[i].fd == fds[k])
				name = names[k];
		printf(" [%s events=%#x revents=%s]", name,
		       (unsigned short)p[i].events,
		       epoll_event_names((uint16_t)p[i].revents));
	}
	putchar('\n');
}

static void bit_set(unsigned long *set, int fd)
{
	set[fd / 64] |= 1UL << (fd % 64);
}

static int bit(const unsigned long *set, int fd)
{
	return set[fd / 64] >> (fd % 64) & 1;
}

int main(void)
{
	struct timespec zero = { 0, 0 };
	struct timeval tv = { 0, 0 };
	struct epoll_event ev;
	struct rlimit rl;
	struct pollfd want[7], p[7];
	unsigned long rd[LONGS], wr[LONGS];
	int peer, conn, epfd, pipefd[2], high, closed, n, i;
	char name_conn[] = "conn", name_pipe[] = "pipe", name_closed[] =
		"closed";

	/* The pipe end above FD_SETSIZE needs the room. */
	if (getrlimit(RLIMIT_NOFILE, &rl))
		die_errno("getrlimit");
	if (rl.rlim_cur <= HIGH_FD) {
		rl.rlim_cur = rl.rlim_max > HIGH_FD + 1 ? HIGH_FD + 1 :
			      rl.rlim_max;
		if (rl.rlim_cur <= HIGH_FD || setrlimit(RLIMIT_NOFILE, &rl))
			skip("RLIMIT_NOFILE too low for an fd above FD_SETSIZE");
	}
	if (pipe(pipefd))
		die_errno("pipe");
	epfd = tcp_pair_epoll(&peer, &conn, EPOLLIN | EPOLLOUT, 1);
	put_text(peer, "input");
	put_text(pipefd[1], "x");
	expect(epoll_wait_for(epfd, EPOLLIN, &ev));
	expect_accelerated(1);
	closed = dup(pipefd[1]);
	close(closed);

	{
		const int fds[] = { conn, pipefd[0], closed, -1, ~conn,
				    ~pipefd[0], -7, 0 };
		const char *const names[] = { name_conn, name_pipe,
					      name_closed, "-1", "~conn",
					      "~pipe", "-7", NULL };

		want[0] = (struct pollfd){ conn, POLLIN | POLLOUT, 0x5a };
		want[1] = (struct pollfd){ -1, POLLIN, 0x5a };
		want[2] = (struct pollfd){ ~conn, POLLIN | POLLOUT, 0x5a };
		want[3] = (struct pollfd){ pipefd[0], POLLIN, 0x5a };
		want[4] = (struct pollfd){ ~pipefd[0], POLLIN, 0x5a };
		want[5] = (struct pollfd){ closed, POLLIN, 0x5a };
		want[6] = (struct pollfd){ -7, POLLOUT, 0x5a };

		memcpy(p, want, sizeof(p));
		n = poll(p, 7, WAIT_MS);
		say("poll: %s", result_text(n));
		print_array("poll array", p, 7, fds, names);
		for (i = 0; i < 7; i++) {
			expect(p[i].fd == want[i].fd);
			expect(p[i].events == want[i].events);
			if (want[i].fd < 0)
				expect(p[i].revents == 0);
		}
		memcpy(p, want, sizeof(p));
		n = ppoll(p, 7, &zero, NULL);
		say("ppoll: %s", result_text(n));
		print_array("ppoll array", p, 7, fds, names);
		for (i = 0; i < 7; i++) {
			expect(p[i].fd == want[i].fd);
			expect(p[i].events == want[i].events);
			if (want[i].fd < 0)
				expect(p[i].revents == 0);
		}
	}

	/* select over sets larger than FD_SETSIZE. */
	high = fcntl(pipefd[0], F_DUPFD_CLOEXEC, HIGH_FD);
	say("pipe moved above FD_SETSIZE: %s", high == HIGH_FD ? "yes" : "no");
	expect(high == HIGH_FD);
	memset(rd, 0, sizeof(rd));
	memset(wr, 0, sizeof(wr));
	bit_set(rd, conn);
	bit_set(rd, high);
	bit_set(wr, conn);
	rd[LONGS - 1] = wr[LONGS - 1] = ~0UL;	/* beyond nfds: left alone */
	n = select(NFDS, (fd_set *)rd, (fd_set *)wr, NULL, &tv);
	say("select nfds %d: %s conn r%d w%d pipe r%d, beyond nfds %s", NFDS,
	    result_text(n), bit(rd, conn), bit(wr, conn), bit(rd, high),
	    rd[LONGS - 1] == ~0UL && wr[LONGS - 1] == ~0UL ? "untouched" :
	    "CHANGED");
	expect(n == 3 && bit(rd, high) && bit(rd, conn) && bit(wr, conn));
	memset(rd, 0, sizeof(rd));
	bit_set(rd, conn);
	bit_set(rd, high);
	n = pselect(NFDS, (fd_set *)rd, NULL, NULL, &zero, NULL);
	say("pselect nfds %d: %s conn r%d pipe r%d", NFDS, result_text(n),
	    bit(rd, conn), bit(rd, high));
	expect(n == 2 && bit(rd, high) && bit(rd, conn));
	expect_accelerated(1);
	read_print(conn, 16, "input after");
	close_all(peer, conn, epfd, pipefd[0], pipefd[1], high);
	return conform_finish();
}
