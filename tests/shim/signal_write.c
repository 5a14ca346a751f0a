/*
 * signal_write - write() from a signal handler, as the self-pipe trick does.
 *
 * write is async-signal-safe: a handler may call it at any moment, also
 * while the main thread is inside a socket call or epoll_wait. Here a
 * helper thread signals the main thread every 0.2 ms while it streams to
 * a TCP socket and polls its epoll set for 800 ms; the handler writes one
 * byte to a pipe (the self-pipe trick) and one to another TCP socket.
 * Every byte must arrive and nothing may deadlock: an alarm kills a hung
 * run after 10 s so it fails fast. How many signals landed is timing:
 * compared with what arrived, never printed.
 */
#include "conform.h"

#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define SEED 0x519
#define RUN_MS 800

static int self_pipe = -1, handler_sock = -1;
static atomic_int pipe_bytes, sock_bytes;
static atomic_bool stop_kicking;
static pthread_t main_thread;

static void on_signal(int sig)
{
	int saved = errno;

	(void)sig;
	if (write(self_pipe, "s", 1) == 1)
		atomic_fetch_add(&pipe_bytes, 1);
	if (write(handler_sock, "h", 1) == 1)
		atomic_fetch_add(&sock_bytes, 1);
	errno = saved;
}

static void *kicker_run(void *arg)
{
	(void)arg;
	while (!atomic_load(&stop_kicking)) {
		nanosleep(&(struct timespec){ 0, 200 * 1000 }, NULL);
		pthread_kill(main_thread, SIGUSR1);
	}
	return NULL;
}

/* Everything readable on fd until EOF or WAIT_MS of quiet: a byte count. */
static size_t drain_count(int fd)
{
	char buf[4096];
	size_t total = 0;
	ssize_t n;

	while (wait_fd(fd, POLLIN) && (n = read(fd, buf, sizeof(buf))) > 0)
		total += n;
	return total;
}

int main(void)
{
	struct sigaction sa = { .sa_handler = on_signal,
				.sa_flags = SA_RESTART };
	int peer, conn, hpeer, hconn, pipefd[2], epfd;
	struct stream_check reader;
	struct timespec start;
	struct epoll_event ev;
	uint8_t buf[512];
	uint64_t sent = 0;
	pthread_t kicker;
	size_t got_pipe, got_sock;

	alarm(10);
	tcp_pair(AF_INET, &peer, &conn);
	tcp_pair(AF_INET, &hpeer, &hconn);
	serve_fd(hconn);
	/* Blocking, as many self-pipes are: writing it is a blocking call. */
	if (pipe(pipefd) < 0)
		die_errno("pipe");
	self_pipe = pipefd[1];
	handler_sock = hconn;
	epfd = epoll_new();
	epoll_add(epfd, conn, EPOLLIN | EPOLLOUT | EPOLLET, 1);
	epoll_add(epfd, pipefd[0], EPOLLIN, 2);
	stream_check_start(&reader, peer, SEED);

	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGUSR1, &sa, NULL) < 0)
		die_errno("sigaction");
	main_thread = pthread_self();
	/* Flushed now: a deadlock below kills the process with this shown. */
	say("streaming for %d ms while signals arrive", RUN_MS);
	fflush(stdout);
	pthread_create(&kicker, NULL, kicker_run, NULL);
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (int i = 0; elapsed_ms(&start) < RUN_MS; i++) {
		ssize_t ret;

		pattern_fill(buf, sizeof(buf), SEED, sent);
		ret = write(conn, buf, sizeof(buf));
		if (ret > 0)
			sent += ret;
		else
			epoll_wait(epfd, &ev, 1, 10);
		if (i % 8 == 0)
			epoll_wait(epfd, &ev, 1, 0);
	}
	atomic_store(&stop_kicking, true);
	pthread_join(kicker, NULL);
	signal(SIGUSR1, SIG_IGN);

	close(conn);
	stream_check_join(&reader);
	say("main stream intact: %s",
	    reader.got == sent && reader.bad_at == UINT64_MAX && reader.eof ?
	    "yes" : "NO");
	expect(reader.got == sent && reader.bad_at == UINT64_MAX);
	expect(reader.eof);
	close(pipefd[1]);
	got_pipe = drain_count(pipefd[0]);
	close(hconn);
	got_sock = drain_count(hpeer);
	say("handler ran: %s", pipe_bytes > 0 ? "yes" : "no");
	say("every handler byte arrived: pipe %s, socket %s",
	    got_pipe == (size_t)pipe_bytes ? "yes" : "NO",
	    got_sock == (size_t)sock_bytes ? "yes" : "NO");
	expect(pipe_bytes > 0);
	expect(got_pipe == (size_t)pipe_bytes);
	expect(got_sock == (size_t)sock_bytes);

	close(pipefd[0]);
	close(hpeer);
	close(peer);
	close(epfd);
	return conform_finish();
}
