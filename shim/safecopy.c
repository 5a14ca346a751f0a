/*
 * safecopy.c - copy to/from application buffers without crashing on a bad
 * pointer.
 *
 * The kernel answers a bad buffer with EFAULT; the shim copies into and
 * out of its own buffers in user space, where a bad pointer would fault.
 * Copies run under a per-thread jump buffer that the shim's SIGSEGV/SIGBUS
 * handler (crash.c) jumps back to; any other fault is a crash, and crash.c
 * treats it as one.  That handler is in the kernel from the first
 * accelerated socket on, or from the first copy of a caller's structure
 * (shim__ucopy, crash.c: a wrapper may read one before any socket is the
 * shim's).  It leaves the signal mask untouched (SA_NODEFER, empty mask),
 * so the jump needs no sigprocmask (sigsetjmp(.., 0)).
 */
#include <setjmp.h>
#include <string.h>

#include "base.h"

/* volatile: the stores around the copy must not be merged away. */
static __thread sigjmp_buf *volatile copy_jmp;
static bool enabled;

void shim__safecopy_enable(void)
{
	__atomic_store_n(&enabled, true, __ATOMIC_RELEASE);
}

void shim__safecopy_catch(void)
{
	sigjmp_buf *j = copy_jmp;

	if (j) {
		copy_jmp = NULL;
		siglongjmp(*j, 1);
	}
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

bool shim__copy(void *dst, const void *src, size_t n)
{
	sigjmp_buf j;

	if (unlikely(!n))
		return true;
	if (unlikely(!dst || !src))
		return false;	/* the first page is never mapped */
	if (unlikely(!__atomic_load_n(&enabled, __ATOMIC_RELAXED)))
		return memcpy(dst, src, n), true;
	if (sigsetjmp(j, 0))
		return false;
	copy_jmp = &j;
	copy_raw(dst, src, n);
	copy_jmp = NULL;
	return true;
}
