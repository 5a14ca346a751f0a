/*
 * args.h - the kernel's argument checks, for wrappers that serve a call
 * themselves (args.c).
 *
 * A wrapper that answers a call without the kernel must answer hostile
 * arguments as the kernel would: the same errno (EFAULT, EINVAL,
 * EMSGSIZE...), in the kernel's order, and never a fault of its own.  So
 * it validates first, copies the caller's structures into locals under
 * the fault guard (safecopy.c), and works on the copies.  A wrapper for an
 * fd the shim does not own reads nothing and lets the real call answer.
 * Every helper returns 0 (or a count) or -errno and touches no shim state.
 */
#ifndef SHIM_ARGS_H
#define SHIM_ARGS_H

#include <limits.h>
#include <stddef.h>

#include "internal.h"

#define SHIM_UIO_MAXIOV		1024		/* UIO_MAXIOV */
#define SHIM_UIO_FASTIOV	8		/* iovecs kept on the stack */
#define SHIM_MAX_RW_COUNT	(INT_MAX & ~4095L)	/* MAX_RW_COUNT */
#define SHIM_EP_MAX_EVENTS	(INT_MAX / (int)sizeof(struct epoll_event))
/* The kernel refuses this flag from 64-bit callers (EINVAL). */
#define SHIM_MSG_CMSG_COMPAT	0x80000000

/* access_ok(): [p, p + len) lies in user space (it may be unmapped). */
bool shim__user_range_ok(const void *p, size_t len);

/*
 * The address of a field of the caller's structure, by arithmetic: the
 * structure may be misaligned, and &p->field would already be undefined.
 */
#define UFIELD(p, type, field)						\
	((void *)((char *)(p) + offsetof(type, field)))
#define UELEM(p, type, i)	((type *)((char *)(p) + (i) * sizeof(type)))

/* Fault-guarded copies from and to the caller's memory. */
static inline bool shim__uget(void *dst, const void *usrc, size_t n)
{
	return shim__copy(dst, usrc, n);
}

static inline bool shim__uput(void *udst, const void *src, size_t n)
{
	return shim__copy(udst, src, n);
}

/*
 * The caller's iovec array into *kiov (fast when it fits, else malloc'd:
 * free it when it is not fast), as import_iovec() checks it: at most
 * UIO_MAXIOV segments (-EINVAL), readable (-EFAULT), no length negative as
 * ssize_t (-EINVAL), each segment inside user space (-EFAULT), the total
 * clamped to MAX_RW_COUNT.  Returns the total.
 */
ssize_t shim__iov_import(const struct iovec *uiov, unsigned long nr,
			 struct iovec fast[SHIM_UIO_FASTIOV],
			 struct iovec **kiov);
void shim__iov_free(struct iovec *kiov, struct iovec *fast);

/* A single buffer as recv/send see it (import_ubuf): clamped, in range. */
static inline int shim__ubuf_import(const void *buf, size_t *len)
{
	if (*len > (size_t)SHIM_MAX_RW_COUNT)
		*len = SHIM_MAX_RW_COUNT;
	return shim__user_range_ok(buf, *len) ? 0 : -EFAULT;
}

/*
 * The caller's msghdr into *kmsg as copy_msghdr_from_user() checks it:
 * readable (-EFAULT), a name's length not negative (-EINVAL; no name
 * means length 0), at most UIO_MAXIOV segments (-EMSGSIZE).  The name,
 * the control data and the iovec array are not read.
 */
int shim__msghdr_get(const struct msghdr *umsg, struct msghdr *kmsg);

/* A timespec argument: readable (-EFAULT), valid (-EINVAL). */
int shim__timespec_get(const struct timespec *uts, struct timespec *ts);

/* A sigset_t argument: readable (-EFAULT). */
int shim__sigset_get(const sigset_t *umask, sigset_t *mask);

/*
 * How many epoll_event slots from ev on are writable, at most max: a
 * guarded read-and-write-back of one byte per page (so a wait never
 * collects more events than it can hand over).
 */
int shim__events_writable(struct epoll_event *ev, int max);

/* Can [p, p + len) be read? (a guarded read of one byte a page) */
bool shim__range_readable(const void *p, size_t len);

/* RLIMIT_NOFILE now (poll's limit on nfds). */
unsigned long shim__nofile_limit(void);

#endif
