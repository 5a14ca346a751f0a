/*
 * sigaction_view - the application's own view of the fatal signals'
 * actions, and its handlers running as the kernel would run them.
 *
 * The shim keeps its handler in the kernel for SIGSEGV, SIGBUS, SIGFPE,
 * SIGILL and SIGABRT once a socket is accelerated, and keeps the
 * application's actions itself.  This program sets actions before and
 * after a socket is accelerated (sigaction with odd flags and masks,
 * signal(), SIG_IGN, SA_RESETHAND), prints everything sigaction() and
 * signal() give back (handler, flags as the kernel rewrote them, the
 * mask), raises the signals so the handlers run (which signals are
 * blocked inside, SA_RESETHAND, an ignored signal), and checks that a bad
 * buffer given to write() on the accelerated socket is EFAULT without the
 * application's SIGSEGV handler ever running.  The transcript must be the
 * same plainly and under the shim.
 */
#include "conform.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const int sigs[] = { SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT };
static volatile sig_atomic_t runs[_NSIG];
static volatile sig_atomic_t blocked_self, blocked_usr1;
/* Unmapped; volatile so the compiler cannot see what write() reads. */
static void *volatile bad_ptr = (void *)16;

static void note_mask(int sig)
{
	sigset_t cur;

	pthread_sigmask(SIG_SETMASK, NULL, &cur);
	blocked_self = sigismember(&cur, sig);
	blocked_usr1 = sigismember(&cur, SIGUSR1);
}

static void on_plain(int sig)
{
	runs[sig]++;
	note_mask(sig);
}

static void on_info(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	runs[sig]++;
	note_mask(sig);
	if (si->si_signo != sig)
		runs[sig] += 100;
}

static const char *handler_name(const struct sigaction *sa)
{
	if (sa->sa_handler == SIG_DFL)
		return "DFL";
	if (sa->sa_handler == SIG_IGN)
		return "IGN";
	if (sa->sa_handler == on_plain)
		return "on_plain";
	if ((void *)sa->sa_sigaction == (void *)on_info)
		return "on_info";
	return "OTHER";
}

static void show(const char *label, int sig)
{
	struct sigaction sa;
	unsigned long word;

	memset(&sa, 0, sizeof(sa));
	expect(sigaction(sig, NULL, &sa) == 0);
	memcpy(&word, &sa.sa_mask, sizeof(word));
	say("%s %s: %s flags %#lx mask %#lx", label, strsignal(sig),
	    handler_name(&sa), (unsigned long)sa.sa_flags, word);
}

static void show_all(const char *label)
{
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		show(label, sigs[i]);
}

static void set(int sig, void *fn, int flags, int masked)
{
	struct sigaction sa, old;

	memset(&sa, 0, sizeof(sa));
	if (flags & SA_SIGINFO)
		sa.sa_sigaction = fn;
	else
		sa.sa_handler = fn;
	sa.sa_flags = flags;
	sigemptyset(&sa.sa_mask);
	if (masked)
		sigaddset(&sa.sa_mask, masked);
	memset(&old, 0, sizeof(old));
	expect(sigaction(sig, &sa, &old) == 0);
	say("set %s: was %s", strsignal(sig), handler_name(&old));
}

static void fire(int sig)
{
	runs[sig] = 0;
	blocked_self = blocked_usr1 = -1;
	raise(sig);
	say("raised %s: handler runs %d, inside: self blocked %d, "
	    "SIGUSR1 blocked %d", strsignal(sig), (int)runs[sig],
	    (int)blocked_self, (int)blocked_usr1);
}

int main(void)
{
	int client, server, epfd;
	struct epoll_event ev;
	ssize_t n;

	/* Before any socket is accelerated: the kernel's own view. */
	set(SIGSEGV, on_info, SA_SIGINFO | SA_ONSTACK, SIGUSR1);
	show_all("before");

	epfd = tcp_pair_epoll(&client, &server, EPOLLIN, 1);
	epoll_wait(epfd, &ev, 1, 0);
	show_all("accelerated");

	/* Odd flags (0x10: no such flag), a mask naming SIGKILL. */
	set(SIGBUS, on_plain, SA_RESTART | 0x10, SIGKILL);
	set(SIGFPE, SIG_IGN, 0, 0);
	set(SIGILL, on_plain, SA_RESETHAND | SA_NODEFER, SIGUSR1);
	say("signal(SIGABRT): was %s",
	    signal(SIGABRT, on_plain) == SIG_DFL ? "DFL" : "not DFL");
	say("signal(SIGABRT) again: was %s",
	    signal(SIGABRT, on_plain) == on_plain ? "on_plain" : "other");
	show_all("set");

	fire(SIGSEGV);
	fire(SIGBUS);
	fire(SIGFPE);
	fire(SIGILL);
	fire(SIGABRT);
	show_all("after");

	/* A bad buffer: EFAULT from the kernel or the shim, no SIGSEGV. */
	runs[SIGSEGV] = 0;
	n = write(server, bad_ptr, 100);
	say("write(bad buffer): %s, SIGSEGV handler runs %d",
	    result_text(n), (int)runs[SIGSEGV]);
	expect(runs[SIGSEGV] == 0);

	close_all(client, server, epfd);
	return conform_finish();
}
