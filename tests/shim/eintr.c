/*
 * eintr - a signal interrupts epoll_wait with EINTR, SA_RESTART or not.
 *
 * With a handler installed without SA_RESTART, a signal arriving during an
 * idle epoll_wait makes it return -1 EINTR; with SA_RESTART it still does,
 * because the kernel never restarts epoll_wait (signal(7)). A blocking
 * recv is restarted under SA_RESTART and interrupted without it, and
 * epoll_pwait with a mask unblocking a blocked signal is interrupted by it.
 * Writes made before an interrupted wait are not lost. A helper thread
 * keeps sending the signal every few milliseconds until the main thread is
 * done, so there is no race against entering the wait; how many signals
 * were handled is timing and only checked to be at least one. Waits that
 * time out return 0 no earlier than their timeout.
 */
#include "conform.h"

#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static atomic_int handled;
static atomic_bool stop_kicking;
static pthread_t main_thread;

static void on_signal(int sig)
{
	(void)sig;
	atomic_fetch_add(&handled, 1);
}

static void *kicker_run(void *arg)
{
	struct timespec tick = { 0, 20 * 1000 * 1000 };

	(void)arg;
	while (!atomic_load(&stop_kicking)) {
		nanosleep(&tick, NULL);
		pthread_kill(main_thread, SIGUSR1);
	}
	return NULL;
}

static void install(int flags)
{
	struct sigaction sa = { .sa_handler = on_signal, .sa_flags = flags };

	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGUSR1, &sa, NULL) < 0)
		die_errno("sigaction");
}

/* Run fn while the kicker thread signals us; returns fn's result. */
static ssize_t kicked(ssize_t (*fn)(int), int fd)
{
	pthread_t kicker;
	ssize_t ret;
	int saved;

	atomic_store(&handled, 0);
	atomic_store(&stop_kicking, false);
	pthread_create(&kicker, NULL, kicker_run, NULL);
	ret = fn(fd);
	saved = errno;
	atomic_store(&stop_kicking, true);
	pthread_join(kicker, NULL);
	errno = saved;
	return ret;
}

static ssize_t epoll_wait_idle(int epfd)
{
	struct epoll_event ev;

	return epoll_wait(epfd, &ev, 1, WAIT_MS * 2);
}

static const sigset_t *pwait_mask;

static ssize_t epoll_pwait_idle(int epfd)
{
	struct epoll_event ev;

	return epoll_pwait(epfd, &ev, 1, WAIT_MS * 2, pwait_mask);
}

/* Blocking recv that the peer answers only after several signals. */
static ssize_t recv_blocking(int fd)
{
	char buf[16];
	ssize_t ret = recv(fd, buf, sizeof(buf), 0);

	return ret;
}

/*
 * A wait returns 0 only once its timeout has passed, even while the shim
 * completes a send in the background during it. A lower bound on elapsed
 * time is the semantic (not a performance figure); 5 ms of slack covers
 * clock granularity.
 */
static void timeouts_are_kept(int epfd, int conn, int peer)
{
	struct pollfd pfd = { .fd = conn, .events = POLLIN };
	struct timespec start;
	struct epoll_event ev;
	char buf[16];
	long elapsed;
	int n;

	put_text(conn, "during");
	clock_gettime(CLOCK_MONOTONIC, &start);
	n = epoll_wait(epfd, &ev, 1, 200);
	elapsed = elapsed_ms(&start);
	say("epoll_wait(200) with a send pending: n=%d, not early: %s", n,
	    n != 0 || elapsed >= 195 ? "yes" : "NO");
	expect(n == 0 && elapsed >= 195);
	expect(read_stream(peer, buf, 6, &(bool){ false }, &(int){ 0 }) == 6);

	put_text(conn, "during");
	clock_gettime(CLOCK_MONOTONIC, &start);
	n = poll(&pfd, 1, 200);
	elapsed = elapsed_ms(&start);
	say("poll(200) with a send pending: n=%d, not early: %s", n,
	    n != 0 || elapsed >= 195 ? "yes" : "NO");
	expect(n == 0 && elapsed >= 195);
	expect(read_stream(peer, buf, 6, &(bool){ false }, &(int){ 0 }) == 6);
}

int main(void)
{
	char buf[16];
	struct late_write late;
	int peer, conn, epfd, err;
	ssize_t ret;
	size_t got;
	bool eof;

	main_thread = pthread_self();
	epfd = tcp_pair_epoll(&peer, &conn, EPOLLIN, 1);

	install(0);
	put_text(conn, "before-wait");
	ret = kicked(epoll_wait_idle, epfd);
	say("epoll_wait, no SA_RESTART: %s; handler ran: %s",
	    result_text(ret), handled > 0 ? "yes" : "no");
	expect(ret == -1 && errno == EINTR && handled > 0);

	install(SA_RESTART);
	ret = kicked(epoll_wait_idle, epfd);
	say("epoll_wait, SA_RESTART: %s; handler ran: %s",
	    result_text(ret), handled > 0 ? "yes" : "no");
	expect(ret == -1 && errno == EINTR && handled > 0);

	/* epoll_pwait: blocked outside, unblocked only during the wait. */
	{
		sigset_t blocked, during;

		sigemptyset(&blocked);
		sigaddset(&blocked, SIGUSR1);
		pthread_sigmask(SIG_BLOCK, &blocked, NULL);
		pwait_mask = &during;
		sigemptyset(&during);
		ret = kicked(epoll_pwait_idle, epfd);
		say("epoll_pwait unblocking the signal: %s; handler ran: %s",
		    result_text(ret), handled > 0 ? "yes" : "no");
		expect(ret == -1 && errno == EINTR && handled > 0);
		pthread_sigmask(SIG_UNBLOCK, &blocked, NULL);
	}

	got = read_stream(peer, buf, 11, &eof, &err);
	say("peer got the write made before the waits: %zu '%.*s'", got,
	    (int)got, buf);
	expect(got == 11 && !memcmp(buf, "before-wait", 11));

	/* Ready data wins over a pending signal: no EINTR. */
	put_text(peer, "ready");
	wait_fd(conn, POLLIN);
	ret = kicked(epoll_wait_idle, epfd);
	say("epoll_wait with data ready: %s", result_text(ret));
	expect(ret == 1);
	ret = read(conn, buf, sizeof(buf));
	expect(ret == 5);

	/* A blocking recv: restarted with SA_RESTART, EINTR without. */
	set_nonblock(conn, false);
	late_write_start(&late, peer, "late", 150);
	ret = kicked(recv_blocking, conn);
	say("blocking recv, SA_RESTART: %s", result_text(ret));
	expect(ret == 4);
	late_write_join(&late);
	install(0);
	ret = kicked(recv_blocking, conn);
	say("blocking recv, no SA_RESTART: %s", result_text(ret));
	expect(ret == -1 && errno == EINTR);

	signal(SIGUSR1, SIG_DFL);
	set_nonblock(conn, true);
	timeouts_are_kept(epfd, conn, peer);
	close(epfd);
	close(conn);
	close(peer);
	return conform_finish();
}
