/*
 * sigwatch.c - a spinning wait must return EINTR when a handler ran.
 *
 * A thread blocked in epoll_wait learns of a signal from the kernel: the
 * wait ends with EINTR once the handler has run.  A thread spinning in
 * user space (URINGSHIM_SPIN_US) is interrupted the same way, but the
 * handler returns into our loop and nothing tells us.  So, with spinning
 * on, the kernel runs a trampoline for every handled signal: it counts
 * the delivery on the thread (shim__sig_gen) and calls the application's
 * handler with the same arguments.  The kernel still applies the
 * application's mask and flags (SA_RESTART, SA_NODEFER, SA_ONSTACK,
 * SA_RESETHAND), since the trampoline is installed with them; sigaction()
 * and signal() report the application's own action.  The five fatal
 * signals are crash.c's, which counts them too.  Off (the default), this
 * file does nothing and every call goes straight to libc.
 */
#include <string.h>

#include "base.h"

/* The application's actions, by signal; busy: a short spinlock. */
struct watched {
	int busy;
	struct sigaction sa;
};
static struct watched watched[_NSIG];
static pthread_mutex_t watch_lock = PTHREAD_MUTEX_INITIALIZER;
static bool watch_on;

static bool is_handler(const struct sigaction *a)
{
	return a->sa_handler != SIG_DFL && a->sa_handler != SIG_IGN;
}

static void get(int sig, struct sigaction *out)
{
	while (__atomic_exchange_n(&watched[sig].busy, 1, __ATOMIC_ACQUIRE))
		;
	memcpy(out, &watched[sig].sa, sizeof(*out));
	__atomic_store_n(&watched[sig].busy, 0, __ATOMIC_RELEASE);
}

static void put(int sig, const struct sigaction *sa)
{
	while (__atomic_exchange_n(&watched[sig].busy, 1, __ATOMIC_ACQUIRE))
		;
	memcpy(&watched[sig].sa, sa, sizeof(*sa));
	__atomic_store_n(&watched[sig].busy, 0, __ATOMIC_RELEASE);
}

static void trampoline(int sig, siginfo_t *si, void *uc)
{
	struct sigaction a;

	shim__sig_gen++;
	get(sig, &a);
	if (a.sa_flags & SA_RESETHAND) {
		/* The kernel reset ours to SIG_DFL on this delivery. */
		struct sigaction dfl = a;

		dfl.sa_handler = SIG_DFL;
		put(sig, &dfl);
	}
	if (a.sa_flags & SA_SIGINFO)
		a.sa_sigaction(sig, si, uc);
	else if (is_handler(&a))
		a.sa_handler(sig);
}

/*
 * Through libc's sigaction (REAL), never crash.c's direct one: in a TSan
 * build the handler must be TSan's to defer, since the application's
 * handler calls intercepted functions and must not run inside TSan's own
 * runtime (it deadlocks there).  Elsewhere the two are the same call.
 */
static int handler_action(int sig, const struct sigaction *a,
			  struct sigaction *old)
{
	return REAL(sigaction)(sig, a, old);
}

/* The kernel's action for the application's a on sig (watch_lock). */
static int install(int sig, const struct sigaction *a)
{
	struct sigaction k;

	if (!is_handler(a))
		return handler_action(sig, a, NULL);
	k = *a;
	k.sa_sigaction = trampoline;
	k.sa_flags |= SA_SIGINFO;
	return handler_action(sig, &k, NULL);
}

/* glibc keeps these two for itself (cancellation, setxid). */
static bool watchable(int sig)
{
	return sig > 0 && sig < _NSIG && sig != SIGKILL && sig != SIGSTOP &&
	       (sig < __SIGRTMIN || sig >= SIGRTMIN);
}

void shim__sigwatch_enable(void)
{
	struct sigaction cur;
	int sig;

	pthread_mutex_lock(&watch_lock);
	for (sig = 1; sig < _NSIG; sig++) {
		if (!watchable(sig) || sig == SIGSEGV || sig == SIGBUS ||
		    sig == SIGFPE || sig == SIGILL || sig == SIGABRT)
			continue;
		memset(&cur, 0, sizeof(cur));
		if (handler_action(sig, NULL, &cur))
			continue;
		put(sig, &cur);
		if (is_handler(&cur))
			install(sig, &cur);
	}
	__atomic_store_n(&watch_on, true, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&watch_lock);
}

int shim__sigwatch_action(int sig, const struct sigaction *act,
			  struct sigaction *old)
{
	struct sigaction a, prev;
	int ret = 0;

	if (!__atomic_load_n(&watch_on, __ATOMIC_ACQUIRE) || !watchable(sig))
		return REAL(sigaction)(sig, act, old);
	if (act)
		memcpy(&a, act, sizeof(a));	/* faults here, as libc */
	pthread_mutex_lock(&watch_lock);
	get(sig, &prev);
	if (act) {
		ret = install(sig, &a);
		if (!ret) {
			/* The flags as the kernel keeps them. */
			struct sigaction kept;

			handler_action(sig, NULL, &kept);
			if (is_handler(&a)) {
				kept.sa_handler = a.sa_handler;
				kept.sa_flags = (kept.sa_flags & ~SA_SIGINFO) |
						(a.sa_flags & SA_SIGINFO);
			}
			put(sig, &kept);
		}
	}
	pthread_mutex_unlock(&watch_lock);
	if (!ret && old)
		memcpy(old, &prev, sizeof(prev));
	return ret;
}

__sighandler_t shim__sigwatch_signal(int sig, __sighandler_t handler)
{
	struct sigaction a, prev;

	if (!__atomic_load_n(&watch_on, __ATOMIC_ACQUIRE) || !watchable(sig) ||
	    handler == SIG_ERR)
		return REAL(signal)(sig, handler);
	/* What glibc's signal() asks for: BSD semantics. */
	memset(&a, 0, sizeof(a));
	a.sa_handler = handler;
	sigemptyset(&a.sa_mask);
	sigaddset(&a.sa_mask, sig);
	a.sa_flags = SA_RESTART;
	if (shim__sigwatch_action(sig, &a, &prev))
		return SIG_ERR;
	return prev.sa_handler;
}
