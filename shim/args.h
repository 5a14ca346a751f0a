/*
 * args.h - the kernel's argument checks, for the wrappers (layer 3) that
 * serve a call themselves (args.c).
 *
 * A wrapper that answers a call without the kernel must answer hostile
 * arguments as the kernel would: the same errno (EFAULT, EINVAL,
 * EMSGSIZE...), in the kernel's order, and never a fault of its own.  So
 * it validates first, copies the caller's structures into locals under
 * the fault guard (safecopy.c), and hands layer 2 only the copies.  A
 * wrapper for an fd the shim does not own reads nothing and lets the real
 * call answer.  Every helper returns 0 (or a count) or -errno and touches
 * no shim state.
 */
#ifndef SHIM_ARGS_H
#define SHIM_ARGS_H

#include <limits.h>
#include <stdlib.h>

#include "core.h"

#define SHIM_UIO_MAXIOV		1024		/* UIO_MAXIOV */
#define SHIM_UIO_FASTIOV	8		/* iovecs kept on the stack */
#define SHIM_MAX_RW_COUNT	(INT_MAX & ~4095L)	/* MAX_RW_COUNT */
#define SHIM_EP_MAX_EVENTS	(INT_MAX / (int)sizeof(struct epoll_event))
/* The kernel refuses this flag from 64-bit callers (EINVAL). */
#define SHIM_MSG_CMSG_COMPAT	0x80000000

/* Where user space ends (TASK_SIZE_MAX), once probed (args.c). */
extern uintptr_t args_user_end;
uintptr_t args_user_end_probe(void);

/* access_ok(): [p, p + len) lies in user space (it may be unmapped). */
static inline bool args_range_ok(const void *p, size_t len)
{
	uintptr_t end = RD(args_user_end), a = (uintptr_t)p;

	if (unlikely(!end))
		end = args_user_end_probe();
	return a + len >= a && a + len <= end;
}

/* Fault-guarded copies from and to the caller's memory. */
static inline bool args_get(void *dst, const void *usrc, size_t n)
{
	return shim__ucopy(dst, usrc, n);
}

static inline bool args_put(void *udst, const void *src, size_t n)
{
	return shim__ucopy(udst, src, n);
}

/*
 * The caller's iovec array into *kiov (fast when it fits, else malloc'd:
 * args_iov_free it), as import_iovec() checks it: at most UIO_MAXIOV
 * segments (-EINVAL), readable (-EFAULT), no length negative as ssize_t
 * (-EINVAL), each segment inside user space (-EFAULT), the total clamped
 * to MAX_RW_COUNT.  Returns the total.
 */
ssize_t args_iov_import(const struct iovec *uiov, unsigned long nr,
		   struct iovec fast[SHIM_UIO_FASTIOV], struct iovec **kiov);

static inline void args_iov_free(struct iovec *kiov, struct iovec *fast)
{
	if (kiov != fast)
		free(kiov);
}

/* A single buffer as recv/send see it (import_ubuf): clamped, in range. */
static inline int args_ubuf(const void *buf, size_t *len)
{
	if (*len > (size_t)SHIM_MAX_RW_COUNT)
		*len = SHIM_MAX_RW_COUNT;
	return args_range_ok(buf, *len) ? 0 : -EFAULT;
}

/*
 * The caller's msghdr into *kmsg as copy_msghdr_from_user() checks it:
 * readable (-EFAULT), a name's length not negative (-EINVAL; no name
 * means length 0), at most UIO_MAXIOV segments (-EMSGSIZE).  The name,
 * the control data and the iovec array are not read.
 */
int args_msghdr(const struct msghdr *umsg, struct msghdr *kmsg);

/* A timespec argument: readable (-EFAULT), valid (-EINVAL). */
int args_timespec(const struct timespec *uts, struct timespec *ts);

/* A sigset_t argument, the kernel's _NSIG bits of it: readable (-EFAULT). */
int args_sigset(const sigset_t *umask, sigset_t *mask);

#endif
