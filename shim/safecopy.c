/*
 * safecopy.c - copy to/from application buffers without crashing on a bad
 * pointer.
 *
 * The kernel answers a bad buffer with EFAULT; the shim copies into and
 * out of its own buffers in user space, where a bad pointer would fault.
 * Copies run under a per-thread jump buffer that a SIGSEGV/SIGBUS handler
 * (installed once, when the first socket is accelerated) jumps back to;
 * any other fault is passed to the handler that was there before, or
 * re-raised with the default action.  SA_NODEFER keeps the signal mask
 * untouched, so the jump needs no sigprocmask (sigsetjmp(.., 0)).
 */
#include <setjmp.h>
#include <string.h>

#include "internal.h"

/* volatile: the stores around memcpy must not be merged away. */
static __thread sigjmp_buf *volatile copy_jmp;
static struct sigaction prev_segv, prev_bus;
static bool installed;

static void fault_handler(int sig, siginfo_t *si, void *uc)
{
	sigjmp_buf *j = copy_jmp;
	struct sigaction *prev = sig == SIGSEGV ? &prev_segv : &prev_bus;

	if (j) {
		copy_jmp = NULL;
		siglongjmp(*j, 1);
	}
	if ((prev->sa_flags & SA_SIGINFO) && prev->sa_sigaction) {
		prev->sa_sigaction(sig, si, uc);
	} else if (prev->sa_handler == SIG_DFL) {
		/* Returning re-runs the faulting instruction: default dies. */
		sigaction(sig, prev, NULL);
	} else if (prev->sa_handler != SIG_IGN) {
		prev->sa_handler(sig);
	}
}

/* Lock held (once per process). */
void shim__safecopy_install(void)
{
	struct sigaction sa;

	if (installed)
		return;
	installed = true;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = fault_handler;
	sa.sa_flags = SA_SIGINFO | SA_NODEFER | SA_ONSTACK;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGSEGV, &sa, &prev_segv);
	sigaction(SIGBUS, &sa, &prev_bus);
}

/* memcpy that returns false (having copied an unknown part) on a fault. */
bool shim__copy(void *dst, const void *src, size_t n)
{
	sigjmp_buf j;

	if (!installed)
		return memcpy(dst, src, n), true;
	if (sigsetjmp(j, 0))
		return false;
	copy_jmp = &j;
	memcpy(dst, src, n);
	copy_jmp = NULL;
	return true;
}
