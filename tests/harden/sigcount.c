/*
 * sigcount - a preload that gives a server a SIGUSR1 handler it lacks.
 *
 * The stress suite sends SIGUSR1 to the demo server every millisecond to
 * drive the EINTR paths of its wait (and of the shim's emulated wait). The
 * server itself only handles SIGINT/SIGTERM through a signalfd, and a
 * signal without a handler either kills it or never interrupts anything.
 * This library installs a counting handler WITHOUT SA_RESTART, and prints
 * the count to stderr at exit so the test can prove the signals landed.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t delivered;

static void count_signal(int signo)
{
	(void)signo;
	delivered++;
}

__attribute__((constructor)) static void sigcount_install(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = count_signal;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0;	/* no SA_RESTART: interrupted calls fail */
	sigaction(SIGUSR1, &sa, NULL);
}

__attribute__((destructor)) static void sigcount_report(void)
{
	char line[64];
	int n = snprintf(line, sizeof(line), "sigcount: %d SIGUSR1 handled\n",
			 (int)delivered);

	if (n > 0 && write(STDERR_FILENO, line, n) < 0)
		return;
}
