/*
 * kill_window - what arrives of writes that returned success when the
 * writer is SIGKILLed before its next wait point.
 *
 * A forked child registers its end of a TCP pair in an epoll set (so the
 * shim accelerates it), waits once, makes WRITES writes of CHUNK bytes
 * (each must be taken whole) and kills itself with SIGKILL at once.  The
 * parent reads to EOF and prints "written W received R".  Exit 0 when
 * nothing was lost, 1 when bytes were, 2 when the child misbehaved.
 * Plainly, and under the shim with URINGSHIM_SEND=sync, nothing may be
 * lost; with batched sends what the shim still queued dies with the
 * process: the window shim_ops.bats shows and README documents.
 */
#include "conform.h"

#include <signal.h>
#include <sys/socket.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define WRITES	64
#define CHUNK	100

static void child(int fd)
{
	struct epoll_event ev;
	char buf[CHUNK];
	int epfd = epoll_new();

	epoll_add(epfd, fd, EPOLLIN, 1);
	epoll_wait(epfd, &ev, 1, 0);
	memset(buf, 'k', sizeof(buf));
	for (int i = 0; i < WRITES; i++)
		if (write(fd, buf, sizeof(buf)) != sizeof(buf))
			_exit(2);
	raise(SIGKILL);
	_exit(2);
}

int main(void)
{
	char buf[4096];
	size_t received = 0;
	int client, server, status;
	pid_t pid;

	tcp_pair(AF_INET, &client, &server);
	pid = fork_flushed();
	if (!pid)
		child(server);
	close(server);
	for (;;) {
		ssize_t n;

		if (!wait_fd(client, POLLIN))
			break;
		n = read(client, buf, sizeof(buf));
		if (n <= 0)
			break;
		received += n;
	}
	if (waitpid(pid, &status, 0) != pid || !WIFSIGNALED(status) ||
	    WTERMSIG(status) != SIGKILL) {
		printf("child did not die by SIGKILL\n");
		return 2;
	}
	printf("written %d received %zu\n", WRITES * CHUNK, received);
	return received == WRITES * CHUNK ? 0 : 1;
}
