/*
 * args.c - the kernel's argument checks, made before a wrapper reads an
 * application structure (see args.h).  Layer 3: calls only layers 0
 * and 2.
 *
 * Everything here copies under the fault guard and mirrors the order of
 * the kernel's own checks (lib/iov_iter.c import_iovec, net/socket.c
 * copy_msghdr_from_user, access_ok), so that an accelerated socket answers
 * a hostile argument with the errno the kernel gives a plain one.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "args.h"

#define PAGE	4096UL

uintptr_t args_user_end;

/*
 * 4-level paging ends user space at 2^47 - 4096, 5-level at 2^56 - 4096.
 * Only a 5-level kernel honours a mapping hint above 2^47: ask once.
 */
uintptr_t args_user_end_probe(void)
{
	void *p = mmap((void *)(1UL << 48), PAGE, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uintptr_t end = (1UL << 47) - PAGE;

	if (p != MAP_FAILED) {
		if ((uintptr_t)p >= 1UL << 47)
			end = (1UL << 56) - PAGE;
		munmap(p, PAGE);
	}
	WR(args_user_end, end);
	return end;
}

ssize_t args_iov_import(const struct iovec *uiov, unsigned long nr,
		   struct iovec fast[SHIM_UIO_FASTIOV], struct iovec **kiov)
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
	if (!args_range_ok(uiov, nr * sizeof(*uiov)))
		return -EFAULT;
	/* Entry by entry only when the whole array faults: the order. */
	whole = args_get(v, uiov, nr * sizeof(*uiov));
	for (i = 0; i < nr; i++) {
		if (!whole && !args_get(&v[i], &uiov[i], sizeof(v[i])))
			return -EFAULT;
		if ((ssize_t)v[i].iov_len < 0)
			return -EINVAL;
	}
	if (nr == 1) {
		/* import_ubuf: clamped first, then the range. */
		if (args_ubuf(v[0].iov_base, &v[0].iov_len))
			return -EFAULT;
		return v[0].iov_len;
	}
	for (i = 0; i < nr; i++) {
		ssize_t len = v[i].iov_len;

		if (!args_range_ok(v[i].iov_base, len))
			return -EFAULT;
		if (len > SHIM_MAX_RW_COUNT - total) {
			len = SHIM_MAX_RW_COUNT - total;
			v[i].iov_len = len;
		}
		total += len;
	}
	return total;
}

int args_msghdr(const struct msghdr *umsg, struct msghdr *kmsg)
{
	if (!args_get(kmsg, umsg, sizeof(*kmsg)))
		return -EFAULT;
	if (!kmsg->msg_name)
		kmsg->msg_namelen = 0;
	if ((int)kmsg->msg_namelen < 0)
		return -EINVAL;
	if (kmsg->msg_iovlen > SHIM_UIO_MAXIOV)
		return -EMSGSIZE;
	return 0;
}

int args_timespec(const struct timespec *uts, struct timespec *ts)
{
	if (!args_get(ts, uts, sizeof(*ts)))
		return -EFAULT;
	if (ts->tv_sec < 0 || ts->tv_nsec < 0 || ts->tv_nsec >= 1000000000L)
		return -EINVAL;
	return 0;
}

int args_sigset(const sigset_t *umask, sigset_t *mask)
{
	memset(mask, 0, sizeof(*mask));
	return args_get(mask, umask, _NSIG / 8) ? 0 : -EFAULT;
}
