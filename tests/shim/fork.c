/*
 * fork - writes around fork() keep the order they have without the shim.
 *
 * The parent writes, forks; the child writes through the inherited socket
 * and exits; the parent waits for it and writes again: the peer reads
 * parent, child, parent, then EOF after both closed. Variants: the child
 * leaves with _exit() right after writing; a child writes to a connection
 * of its own and ends at once by exec, exit() or _exit(), or fills it until
 * EAGAIN (peer not reading yet) and exits; the child exits
 * while the parent has just written (the child's exit must not lose or
 * reorder the parent's bytes). A pipe sequences the processes, never
 * sleeps. Last, the prefork pattern: a child accepts and serves from its
 * own epoll loop.
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

static void wait_child(pid_t pid)
{
	int status;

	if (waitpid(pid, &status, 0) != pid)
		die_errno("waitpid");
	expect(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/*
 * The parent writes, forks; the child writes through the inherited socket
 * and ends by exit() or, when fast, _exit() (no atexit handlers run); the
 * parent waits for it and writes again.
 */
static void child_writes(bool fast)
{
	int peer, conn;
	pid_t pid;

	tcp_pair(AF_INET, &peer, &conn);
	serve_fd(conn);
	put_text(conn, "parent-1;");
	pid = fork_flushed();
	if (pid == 0) {
		if (fast)
			_exit(put_text(conn, "child;") ? 0 : 1);
		close(peer);
		exit(put_text(conn, "child;") ? 0 : 1);
	}
	wait_child(pid);
	put_text(conn, "parent-2;");
	close(conn);
	expect_stream(peer, fast ? "_exit()" : "exit()",
		      "parent-1;child;parent-2;", 0);
	close(peer);
}

enum child_end { END_EXEC, END_EXIT, END__EXIT };

/*
 * A child accepts its own connection (its own socket, so the shim may defer
 * its writes), writes and ends at once by exec, exit or _exit: the bytes
 * must all arrive, then EOF.
 */
static void own_connection_child(enum child_end how)
{
	static const char *const names[] = {
		[END_EXEC] = "exec", [END_EXIT] = "exit()",
		[END__EXIT] = "_exit()",
	};
	int listener = tcp_listener(AF_INET), peer, conn;
	char label[64];
	pid_t pid;

	pid = fork_flushed();
	if (pid == 0) {
		conn = child_accept(listener);
		serve_fd(conn);
		if (!put_text(conn, "own;") || !put_text(conn, "last"))
			_exit(1);
		if (how == END_EXEC)
			execl("/bin/true", "true", (char *)NULL);
		if (how == END_EXIT)
			exit(0);
		_exit(0);
	}
	peer = tcp_connect_to(listener);
	wait_child(pid);
	snprintf(label, sizeof(label), "own connection, child ends by %s",
		 names[how]);
	expect_stream(peer, label, "own;last", 0);
	close(peer);
	close(listener);
}

/*
 * A child fills its own connection until EAGAIN (the peer not reading yet)
 * and exits at once: every accepted byte arrives once the peer reads.
 */
static void full_buffers_child(void)
{
	int listener = tcp_listener(AF_INET), peer, conn, report[2];
	struct stream_check check;
	uint64_t sent = 0;
	pid_t pid;

	if (pipe(report) < 0)
		die_errno("pipe");
	pid = fork_flushed();
	if (pid == 0) {
		conn = child_accept(listener);
		serve_fd(conn);
		sent = fill_until_eagain(conn, 0xf011);
		if (write(report[1], &sent, sizeof(sent)) != sizeof(sent))
			_exit(4);
		exit(0);
	}
	close(report[1]);
	peer = tcp_connect_to(listener);
	if (read(report[0], &sent, sizeof(sent)) != sizeof(sent))
		die_errno("read report");
	/* Read late, and while the child exits: it may wait for the drain. */
	stream_check_start_late(&check, peer, 0xf011, 200);
	wait_child(pid);
	stream_check_expect_all(&check, sent, "child exits with full buffers");
	close(report[0]);
	close(peer);
	close(listener);
}

/*
 * The prefork pattern: a child accepts from the inherited listener and
 * serves the connection from its own epoll loop (its sockets are its own),
 * answering each request upper-cased until EOF.
 */
static void prefork_server(void)
{
	int listener = tcp_listener(AF_INET), client, status;
	char buf[64];
	bool eof;
	int err;
	size_t got;
	pid_t pid;

	pid = fork_flushed();
	if (pid == 0) {
		struct epoll_event ev;
		int epfd = epoll_new(), conn, ok = 1;

		conn = child_accept(listener);
		epoll_add(epfd, conn, EPOLLIN, 1);
		while (ok && epoll_wait(epfd, &ev, 1, WAIT_MS * 5) == 1) {
			ssize_t n = read(conn, buf, sizeof(buf));

			if (n < 0 && errno == EAGAIN)
				continue;
			if (n <= 0)
				break;
			for (ssize_t i = 0; i < n; i++)
				buf[i] &= ~0x20;
			ok = write(conn, buf, n) == n;
		}
		close(conn);
		_exit(ok ? 0 : 4);
	}
	client = tcp_connect_to(listener);
	for (int i = 0; i < 3; i++) {
		write_all(client, "abc", 3);
		got = read_stream(client, buf, 3, &eof, &err);
		say("prefork child answer %d: '%.*s'", i, (int)got, buf);
		expect(got == 3 && !memcmp(buf, "ABC", 3));
	}
	shutdown(client, SHUT_WR);
	got = read_stream(client, buf, sizeof(buf), &eof, &err);
	say("prefork child closed: %zu eof=%d %s", got, eof, errno_name(err));
	expect(got == 0 && eof);
	if (waitpid(pid, &status, 0) != pid)
		die_errno("waitpid");
	say("prefork child exit: %d", WIFEXITED(status) ? WEXITSTATUS(status)
						       : -1);
	close(client);
	close(listener);
}

int main(void)
{
	int peer, conn, go[2];
	char token;
	pid_t pid;

	child_writes(false);
	child_writes(true);

	own_connection_child(END_EXEC);
	own_connection_child(END_EXIT);
	own_connection_child(END__EXIT);
	full_buffers_child();

	/* The parent writes while the child is alive; then the child exits. */
	tcp_pair(AF_INET, &peer, &conn);
	serve_fd(conn);
	if (pipe(go) < 0)
		die_errno("pipe");
	put_text(conn, "A;");
	pid = fork_flushed();
	if (pid == 0) {
		close(go[1]);
		if (read(go[0], &token, 1) != 1)
			_exit(3);
		exit(0);
	}
	close(go[0]);
	put_text(conn, "B;");
	/* Releasing the child is a plain pipe write: not a wait point. */
	if (write(go[1], "x", 1) != 1)
		die_errno("write pipe");
	wait_child(pid);
	put_text(conn, "C;");
	close(go[1]);
	close(conn);
	expect_stream(peer, "child exits while parent has pending bytes",
		      "A;B;C;", 0);
	close(peer);

	/* The child closes its copy: the parent's socket stays usable. */
	tcp_pair(AF_INET, &peer, &conn);
	serve_fd(conn);
	put_text(conn, "before;");
	pid = fork_flushed();
	if (pid == 0) {
		close(conn);
		exit(0);
	}
	wait_child(pid);
	put_text(conn, "after;");
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
	expect_stream(peer, "child closed its copy", "before;after;", 0);
	close(peer);
	prefork_server();
	return conform_finish();
}
