/*
 * spin_wait - what URINGSHIM_SPIN_US promises a waiting thread.
 *
 *   spin_wait budget MS   an accelerated connection with no traffic; one
 *                         epoll_wait(MS ms) that times out.  Prints the
 *                         CPU time the process used during it (us) and
 *                         the wall time (ms): a spin of N us then sleeps.
 *   spin_wait eintr       a SIGALRM handler (no SA_RESTART) and alarm-like
 *                         timer 100 ms into an epoll_wait(-1) and a
 *                         poll(-1) on an idle connection: both must return
 *                         -1 EINTR, as a sleeping wait does.
 *   spin_wait timeout     epoll_wait, epoll_pwait2 and poll with 20 ms
 *                         timeouts on an idle connection must return 0,
 *                         after at least 20 ms and well before 1 s, even
 *                         when the spin budget is longer (or for ever).
 *
 * Exits 0 when its checks pass, 1 otherwise; prints what it measured.
 * The bats suite (shim_spin.bats) sets the budget and compares.
 */
#include "conform.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <unistd.h>

static int ep, client, server;

static void setup(void)
{
	struct epoll_event ev;

	ep = tcp_pair_epoll(&client, &server, EPOLLIN, 7);
	/* One exchange, so the shim's ring holds the socket. */
	put_text(client, "x");
	expect(epoll_wait(ep, &ev, 1, WAIT_MS) == 1);
	expect(read(server, (char[4]){ 0 }, 4) == 1);
}

static long cpu_us(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000L +
	       ru.ru_utime.tv_usec + ru.ru_stime.tv_usec;
}

static int budget(int ms)
{
	struct epoll_event ev;
	struct timespec t0;
	long c0, c1;
	int n;

	setup();
	clock_gettime(CLOCK_MONOTONIC, &t0);
	c0 = cpu_us();
	n = epoll_wait(ep, &ev, 1, ms);
	c1 = cpu_us();
	expect(n == 0);
	printf("cpu_us %ld wall_ms %ld\n", c1 - c0, elapsed_ms(&t0));
	return conform_finish();
}

static volatile sig_atomic_t alarms;

static void on_alarm(int sig)
{
	(void)sig;
	alarms++;
}

/* A one-shot SIGALRM in ms milliseconds, to this process. */
static void alarm_in(int ms)
{
	struct itimerval it = { .it_value = { 0, ms * 1000 } };

	expect(!setitimer(ITIMER_REAL, &it, NULL));
}

static int eintr(void)
{
	struct sigaction sa;
	struct epoll_event ev;
	struct pollfd p = { .fd = server, .events = POLLIN };
	int n, e;

	setup();
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alarm;
	sigemptyset(&sa.sa_mask);
	expect(!sigaction(SIGALRM, &sa, NULL));
	alarm_in(100);
	n = epoll_wait(ep, &ev, 1, -1);
	e = errno;
	say("epoll_wait: %s", result_text(n == -1 ? (errno = e, -1) : n));
	expect(n == -1 && e == EINTR && alarms == 1);
	p.fd = server;
	alarm_in(100);
	n = poll(&p, 1, -1);
	e = errno;
	say("poll: %s", result_text(n == -1 ? (errno = e, -1) : n));
	expect(n == -1 && e == EINTR && alarms == 2);
	return conform_finish();
}

static void timed(const char *what, int n, const struct timespec *t0)
{
	long ms = elapsed_ms(t0);

	say("%s: ret=%d", what, n);
	expect(n == 0);
	expect(ms >= 20);
	expect(ms < 1000);
}

static int timeout(void)
{
	struct timespec t0, ts = { 0, 20 * 1000 * 1000 };
	struct epoll_event ev;
	struct pollfd p;

	setup();
	p.fd = server;
	p.events = POLLIN;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	timed("epoll_wait 20 ms", epoll_wait(ep, &ev, 1, 20), &t0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	timed("epoll_pwait2 20 ms", epoll_pwait2(ep, &ev, 1, &ts, NULL), &t0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	timed("poll 20 ms", poll(&p, 1, 20), &t0);
	return conform_finish();
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "budget"))
		return budget(atoi(argv[2]));
	if (argc == 2 && !strcmp(argv[1], "eintr"))
		return eintr();
	if (argc == 2 && !strcmp(argv[1], "timeout"))
		return timeout();
	fprintf(stderr, "usage: spin_wait budget MS | eintr | timeout\n");
	return 2;
}
