/*
 * safecopy.c - copy to/from application buffers without crashing on a bad
 * pointer.
 *
 * The kernel answers a bad buffer with EFAULT; the shim copies into and
 * out of its own buffers in user space, where a bad pointer would fault.
 * Copies run under a per-thread jump buffer that a SIGSEGV/SIGBUS handler
 * (installed once, when the first socket is accelerated or a wrapper first
 * reads a caller's structure) jumps back to;
 * any other fault is passed to the handler that was there before, or
 * re-raised with the default action.  SA_NODEFER keeps the signal mask
 * untouched, so the jump needs no sigprocmask (sigsetjmp(.., 0)).
 */
#include <sched.h>
#include <setjmp.h>
#include <string.h>

#include "internal.h"

#ifdef SHIM_TSAN
#include <dlfcn.h>
#include <gnu/lib-names.h>
#endif

/* volatile: the stores around memcpy must not be merged away. */
static __thread sigjmp_buf *volatile copy_jmp;
static struct sigaction prev_segv, prev_bus;
static bool installed;

#ifdef SHIM_TSAN
/*
 * TSan builds only.  TSan's sigaction gives the kernel its own wrapper,
 * which runs our handler with every signal blocked and TSan's per-thread
 * ignore counters cleared, restoring both only when the handler returns.
 * Ours never returns from a caught fault, so SIGSEGV stayed blocked (the
 * next bad buffer killed the process) and TSan's counters unbalanced.
 * libc's own sigaction, found past TSan, makes the kernel run the handler
 * directly, as in production; siglongjmp, which TSan wraps, still unwinds
 * TSan's shadow stack to the sigsetjmp.
 */
static int set_action(int sig, const struct sigaction *sa,
		      struct sigaction *old)
{
	static int (*libc_sigaction)(int, const struct sigaction *,
				     struct sigaction *);
	void *libc;

	if (!libc_sigaction) {
		libc = dlopen(LIBC_SO, RTLD_LAZY | RTLD_NOLOAD);
		if (libc)
			libc_sigaction = dlsym(libc, "sigaction");
	}
	if (!libc_sigaction)
		return sigaction(sig, sa, old);
	return libc_sigaction(sig, sa, old);
}
#else
#define set_action sigaction
#endif

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
		set_action(sig, prev, NULL);
	} else if (prev->sa_handler != SIG_IGN) {
		prev->sa_handler(sig);
	}
}

/*
 * Once per process: when the first socket is accelerated, or by the first
 * guarded copy (a wrapper checking a poll array, say), whichever is first.
 */
void shim__safecopy_install(void)
{
	static bool claimed;
	struct sigaction sa;
	int i;

	if (__atomic_load_n(&installed, __ATOMIC_ACQUIRE) ||
	    __atomic_exchange_n(&claimed, true, __ATOMIC_ACQ_REL)) {
		/* Bounded: the installer may be this thread, interrupted. */
		for (i = 0; i < 1000 &&
		     !__atomic_load_n(&installed, __ATOMIC_ACQUIRE); i++)
			sched_yield();
		return;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = fault_handler;
	sa.sa_flags = SA_SIGINFO | SA_NODEFER | SA_ONSTACK;
	sigemptyset(&sa.sa_mask);
	set_action(SIGSEGV, &sa, &prev_segv);
	set_action(SIGBUS, &sa, &prev_bus);
	__atomic_store_n(&installed, true, __ATOMIC_RELEASE);
}

#if defined(__SANITIZE_ADDRESS__)
#define SHIM_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SHIM_ASAN 1
#endif
#endif

#ifdef SHIM_ASAN
/*
 * ASan builds only: ASan's memcpy checks the shadow of a wild pointer
 * itself and faults or reports there; the guarded copy must meet the
 * fault itself.
 */
__attribute__((no_sanitize_address))
static void copy_raw(void *dst, const void *src, size_t n)
{
	volatile char *d = dst;
	const volatile char *s = src;

	while (n--)
		*d++ = *s++;
}
#else
#define copy_raw memcpy
#endif

/* memcpy that returns false (having copied an unknown part) on a fault. */
bool shim__copy(void *dst, const void *src, size_t n)
{
	sigjmp_buf j;

	if (!n)
		return true;
	if (!dst || !src)
		return false;	/* the first page is never mapped */
	if (unlikely(!__atomic_load_n(&installed, __ATOMIC_ACQUIRE)))
		shim__safecopy_install();
	if (sigsetjmp(j, 0))
		return false;
	copy_jmp = &j;
	copy_raw(dst, src, n);
	copy_jmp = NULL;
	return true;
}
