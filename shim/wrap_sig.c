/*
 * wrap_sig.c - sigaction and signal: the application's view of the fatal
 * signals the shim keeps for itself (crash.c); every other signal goes
 * straight to libc.
 */
#include "base.h"

/*
 * Called before our constructor (a sanitizer runtime that the shim
 * brought into a program built without it installs its handlers from its
 * own start-up): glibc's own functions, and no TSan entry hook, which
 * would run before TSan can.
 */
extern int __sigaction(int, const struct sigaction *, struct sigaction *);
extern __sighandler_t bsd_signal(int, __sighandler_t);
#define EARLY_SAFE	__attribute__((no_sanitize("thread")))

SHIM_EXPORT EARLY_SAFE int sigaction(int sig, const struct sigaction *act,
				     struct sigaction *old)
{
	if (unlikely(!real_sigaction))
		return __sigaction(sig, act, old);
	STAT_CALL(sigaction);
	if (shim__sig_fatal(sig))
		return shim__sig_action(sig, act, old);
	return shim__sigwatch_action(sig, act, old);
}

SHIM_EXPORT EARLY_SAFE __sighandler_t signal(int sig, __sighandler_t handler)
{
	if (unlikely(!real_signal))
		return bsd_signal(sig, handler);
	STAT_CALL(signal);
	if (shim__sig_fatal(sig))
		return shim__sig_signal(sig, handler);
	return shim__sigwatch_signal(sig, handler);
}
