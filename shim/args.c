/*
 * args.c - the kernel's argument checks, made before a wrapper reads an
 * application structure (see args.h).
 *
 * Everything here copies under the fault guard and mirrors the order of
 * the kernel's own checks (lib/iov_iter.c import_iovec, net/socket.c
 * copy_msghdr_from_user, access_ok), so that an accelerated socket answers
 * a hostile argument with the errno the kernel gives a plain one.
 */
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>

#include "args.h"

#define PAGE	4096UL

static uintptr_t user_end;	/* TASK_SIZE_MAX, once known */

/*
 * 4-level paging ends user space at 2^47 - 4096, 5-level at 2^56 - 4096.
 * Only a 5-level kernel honours a mapping hint above 2^47: ask once.
 */
static uintptr_t user_end_probe(void)
{
	void *p = mmap((void *)(1UL << 48), PAGE, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uintptr_t end = (1UL << 47) - PAGE;

	if (p != MAP_FAILED) {
		if ((uintptr_t)p >= 1UL << 47)
			end = (1UL << 56) - PAGE;
		munmap(p, PAGE);
	}
	return end;
}

bool shim__user_range_ok(const void *p, size_t len)
{
	uintptr_t end = RD(user_end), a = (uintptr_t)p;

	if (unlikely(!end)) {
		end = user_end_probe();
		WR(user_end, end);
	}
	return a + len >= a && a + len <= end;
}

void shim__iov_free(struct iovec *kiov, struct iovec *fast)
{
	if (kiov != fast)
		free(kiov);
}

ssize_t shim__iov_import(const struct iovec *uiov, unsigned long nr,
			 struct iovec fast[SHIM_UIO_FASTIOV],
			 struct iovec **kiov)
{
	struct iovec *v = fast;
	ssize_t total = 0;
	unsigned long i;
	bool whole;

	*kiov = fast;
	nr = (unsigned int)nr;		/* the kernel takes an unsigned */
	if (!nr)
		return 0;
	if (nr > SHIM_UIO_MAXIOV)
		return -EINVAL;
	if (nr > SHIM_UIO_FASTIOV) {
		v = malloc(nr * sizeof(*v));
		if (!v)
			return -ENOMEM;
		*kiov = v;
	}
	if (!shim__user_range_ok(uiov, nr * sizeof(*uiov)))
		return -EFAULT;
	/* Entry by entry only when the whole array faults: the order. */
	whole = shim__uget(v, uiov, nr * sizeof(*uiov));
	for (i = 0; i < nr; i++) {
		if (!whole && !shim__uget(&v[i], &uiov[i], sizeof(v[i])))
			return -EFAULT;
		if ((ssize_t)v[i].iov_len < 0)
			return -EINVAL;
	}
	if (nr == 1) {
		/* import_ubuf: clamped first, then the range. */
		if (shim__ubuf_import(v[0].iov_base, &v[0].iov_len))
			return -EFAULT;
		return v[0].iov_len;
	}
	for (i = 0; i < nr; i++) {
		ssize_t len = v[i].iov_len;

		if (!shim__user_range_ok(v[i].iov_base, len))
			return -EFAULT;
		if (len > SHIM_MAX_RW_COUNT - total) {
			len = SHIM_MAX_RW_COUNT - total;
			v[i].iov_len = len;
		}
		total += len;
	}
	return total;
}

int shim__msghdr_get(const struct msghdr *umsg, struct msghdr *kmsg)
{
	if (!shim__uget(kmsg, umsg, sizeof(*kmsg)))
		return -EFAULT;
	if (!kmsg->msg_name)
		kmsg->msg_namelen = 0;
	if ((int)kmsg->msg_namelen < 0)
		return -EINVAL;
	if (kmsg->msg_iovlen > SHIM_UIO_MAXIOV)
		return -EMSGSIZE;
	return 0;
}

int shim__timespec_get(const struct timespec *uts, struct timespec *ts)
{
	if (!shim__uget(ts, uts, sizeof(*ts)))
		return -EFAULT;
	if (ts->tv_sec < 0 || ts->tv_nsec < 0 || ts->tv_nsec >= 1000000000L)
		return -EINVAL;
	return 0;
}

int shim__sigset_get(const sigset_t *umask, sigset_t *mask)
{
	/* The kernel's sigset_t: _NSIG bits. */
	memset(mask, 0, sizeof(*mask));
	return shim__uget(mask, umask, _NSIG / 8) ? 0 : -EFAULT;
}

int shim__events_writable(struct epoll_event *ev, int max)
{
	char *p = (char *)ev, *end = (char *)(ev + max);
	char *page = (char *)((uintptr_t)p & ~(PAGE - 1));
	char b;

	if (!shim__user_range_ok(p, (size_t)max * sizeof(*ev)))
		return 0;
	for (; page < end; page += PAGE) {
		char *at = page < p ? p : page;

		if (!shim__uget(&b, at, 1) || !shim__uput(at, &b, 1))
			return (int)((at - p) / (ptrdiff_t)sizeof(*ev));
	}
	return max;
}

bool shim__range_readable(const void *p, size_t len)
{
	const char *q = p, *end = q + len;
	char b;

	for (; q < end; q = (const char *)(((uintptr_t)q & ~(PAGE - 1)) +
					     PAGE))
		if (!shim__uget(&b, q, 1))
			return false;
	return true;
}

unsigned long shim__nofile_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl))
		return ULONG_MAX;
	return rl.rlim_cur;
}
