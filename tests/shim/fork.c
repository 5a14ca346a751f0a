/*
 * fork - writes around fork() keep the order they have without the shim.
 *
 * The parent writes, forks; the child writes through the inherited socket
 * and exits; the parent waits for it and writes again: the peer reads
 * parent, child, parent, then EOF after both closed. Variants: the child
 * leaves with _exit() right after writing, and the child exits while the
 * parent has just written (the child's exit must not lose or reorder the
 * parent's bytes). A pipe sequences the processes, never sleeps.
 */
#include "conform.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static bool put(int fd, const char *text)
{
	ssize_t ret = write(fd, text, strlen(text));

	expect(ret == (ssize_t)strlen(text));
	return ret == (ssize_t)strlen(text);
}

static void wait_child(pid_t pid)
{
	int status;

	if (waitpid(pid, &status, 0) != pid)
		die_errno("waitpid");
	expect(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void expect_stream(int peer, const char *label, const char *want)
{
	char buf[256];
	bool eof;
	int err;
	size_t got = read_stream(peer, buf, sizeof(buf) - 1, &eof, &err);

	buf[got] = '\0';
	say("%s: '%s' eof=%d %s", label, buf, eof, errno_name(err));
	expect(!strcmp(buf, want) && eof);
}

int main(void)
{
	int peer, conn, go[2];
	char token;
	pid_t pid;

	/* Child writes and exits with exit(). */
	tcp_pair(AF_INET, &peer, &conn);
	serve_fd(conn);
	put(conn, "parent-1;");
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		die_errno("fork");
	if (pid == 0) {
		close(peer);
		exit(put(conn, "child;") ? 0 : 1);
	}
	wait_child(pid);
	put(conn, "parent-2;");
	close(conn);
	expect_stream(peer, "exit()", "parent-1;child;parent-2;");
	close(peer);

	/* Child writes and leaves with _exit(): no atexit handlers run. */
	tcp_pair(AF_INET, &peer, &conn);
	serve_fd(conn);
	put(conn, "parent-1;");
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		die_errno("fork");
	if (pid == 0) {
		_exit(put(conn, "child;") ? 0 : 1);
	}
	wait_child(pid);
	put(conn, "parent-2;");
	close(conn);
	expect_stream(peer, "_exit()", "parent-1;child;parent-2;");
	close(peer);

	/* The parent writes while the child is alive; then the child exits. */
	tcp_pair(AF_INET, &peer, &conn);
	serve_fd(conn);
	if (pipe(go) < 0)
		die_errno("pipe");
	put(conn, "A;");
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		die_errno("fork");
	if (pid == 0) {
		close(go[1]);
		if (read(go[0], &token, 1) != 1)
			_exit(3);
		exit(0);
	}
	close(go[0]);
	put(conn, "B;");
	/* Releasing the child is a plain pipe write: not a wait point. */
	if (write(go[1], "x", 1) != 1)
		die_errno("write pipe");
	wait_child(pid);
	put(conn, "C;");
	close(go[1]);
	close(conn);
	expect_stream(peer, "child exits while parent has pending bytes",
		      "A;B;C;");
	close(peer);

	/* The child closes its copy: the parent's socket stays usable. */
	tcp_pair(AF_INET, &peer, &conn);
	serve_fd(conn);
	put(conn, "before;");
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		die_errno("fork");
	if (pid == 0) {
		close(conn);
		exit(0);
	}
	wait_child(pid);
	put(conn, "after;");
	if (write(peer, "ping", 4) != 4)
		die_errno("peer write");
	{
		char buf[8];
		bool eof;
		int err;
		size_t got = read_stream(conn, buf, 4, &eof, &err);

		say("parent reads after child close: %zu '%.*s'", got,
		    (int)got, buf);
		expect(got == 4 && !memcmp(buf, "ping", 4));
	}
	close(conn);
	expect_stream(peer, "child closed its copy", "before;after;");
	close(peer);
	return conform_finish();
}
