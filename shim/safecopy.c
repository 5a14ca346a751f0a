/*
 * safecopy.c - copy to/from application buffers without crashing on a bad
 * pointer.
 *
 * The kernel answers a bad buffer with EFAULT; the shim copies into and
 * out of its own buffers in user space, where a bad pointer would fault.
 * Copies run under a per-thread jump buffer that the shim's SIGSEGV/SIGBUS
 * handler (crash.c, in the kernel from the first accelerated socket on)
 * jumps back to; any other fault is a crash, and crash.c treats it as one.
 * That handler leaves the signal mask untouched (SA_NODEFER, empty mask),
 * so the jump needs no sigprocmask (sigsetjmp(.., 0)).
 */
#include <setjmp.h>
#include <string.h>

#include "base.h"

/* volatile: the stores around memcpy must not be merged away. */
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

bool shim__copy(void *dst, const void *src, size_t n)
{
	sigjmp_buf j;

	if (!__atomic_load_n(&enabled, __ATOMIC_RELAXED))
		return memcpy(dst, src, n), true;
	if (sigsetjmp(j, 0))
		return false;
	copy_jmp = &j;
	memcpy(dst, src, n);
	copy_jmp = NULL;
	return true;
}
