/*
 * wrap_io.c - the data calls: read/write/recv/send families.
 *
 * Each wrapper is one line of dispatch: a fd the table does not hold goes
 * straight to real_<name>; an accelerated fd is served from its receive
 * buffer or queued on its send queue with no syscall.  Calls the shim
 * cannot serve on an accelerated fd (OOB, ancillary data, sendfile,
 * splice, mmsg) first hand the fd back to the kernel, so bytes never
 * reorder.
 */
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <sys/sendfile.h>
#include <sys/stat.h>

#include "args.h"

/* glibc declares these only under _FORTIFY_SOURCE. */
ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen);
ssize_t __recv_chk(int fd, void *buf, size_t n, size_t buflen, int flags);
ssize_t __recvfrom_chk(int fd, void *buf, size_t n, size_t buflen,
		       int flags, struct sockaddr *addr, socklen_t *alen);

#define REAL(name)	(likely(real_##name) ? real_##name :		\
			 (shim__resolve_real(), real_##name))

enum { IO_RECV, IO_SEND };

static __thread unsigned int eagain_streak;

/*
 * An app that spins on EAGAIN without ever reaching a wait point would
 * never let the ring move: after a streak, push and reap once.
 */
static void eagain_spin_guard(void)
{
	if (++eagain_streak < 32 || !shim__loop)
		return;
	eagain_streak = 0;
	shim_lock();
	shim__ring_turn(shim__loop, 0, NULL);
	shim_unlock();
}

/* Before a call that may block, pending sends must be on their way. */
void shim__flush_before_block(void)
{
	struct shim_loop *l = shim__loop;

	if (likely(!l || !__atomic_load_n(&l->dirty, __ATOMIC_RELAXED)) ||
	    shim__depth)
		return;
	shim_lock();
	shim__ring_turn(l, 0, NULL);
	shim_unlock();
}

#define DIRECT_IOV_MAX	16

/*
 * The direct path (URINGSHIM_SEND=direct, or adaptive with small
 * batches): one real send while the kernel has room; whatever it does not
 * take goes to the queue, so EAGAIN and EPOLLOUT keep their meaning.
 * Lock held, queue empty.
 */
static ssize_t send_direct(struct shim_fd *f, const struct iovec *iov,
			   int iovcnt, int flags)
{
	struct msghdr msg = { .msg_iov = (struct iovec *)iov,
			      .msg_iovlen = iovcnt };
	struct iovec rest[DIRECT_IOV_MAX];
	size_t total = 0, skip;
	ssize_t n, more;
	int i, cnt = 0;

	for (i = 0; i < iovcnt; i++)
		total += iov[i].iov_len;
	STAT_INC(shim_syscalls);
	n = real_sendmsg(f->fd, &msg, (flags & ~MSG_MORE) | MSG_DONTWAIT |
			 MSG_NOSIGNAL);
	if (n < 0 && errno != EAGAIN)
		return -errno;
	if (n < 0)
		n = 0;
	if ((size_t)n == total)
		return n;
	for (i = 0, skip = n; i < iovcnt; i++) {
		if (skip >= iov[i].iov_len) {
			skip -= iov[i].iov_len;
			continue;
		}
		rest[cnt].iov_base = (char *)iov[i].iov_base + skip;
		rest[cnt++].iov_len = iov[i].iov_len - skip;
		skip = 0;
	}
	more = shim__fd_send(f, rest, cnt, flags);
	if (more < 0)
		return n ? n : more;
	return n + more;
}

/* The socket's pending error, taken (recvmmsg reports it first). */
static int take_error(int fd)
{
	struct shim_fd *f;
	int e = 0;

	shim_lock();
	f = shim__fd_get_locked(fd);
	if (f && f->state != FD_ORPHAN && f->err) {
		e = f->err;
		f->err = 0;
	}
	shim_unlock();
	return e;
}

/* An error after some messages is kept for the next call (SO_ERROR). */
static void keep_error(int fd, int err)
{
	struct shim_fd *f;

	shim_lock();
	f = shim__fd_get_locked(fd);
	if (f && f->state != FD_ORPHAN)
		f->err = err;
	shim_unlock();
}

static ssize_t to_libc(ssize_t ret)
{
	if (ret < 0) {
		errno = -ret;
		return -1;
	}
	return ret;
}

/*
 * A send the kernel makes on a socket the shim owns (released, or handed
 * over for OOB, Fast Open, an address, control data).  The ring may have
 * taken a socket error from the kernel, which then answers EPIPE where it
 * would have answered that error: so the send is made with MSG_NOSIGNAL,
 * and EPIPE becomes the held error (taken), or EPIPE with the SIGPIPE the
 * caller's flags ask for.  ret: the kernel's answer, -errno.
 */
static ssize_t send_fixup(int fd, ssize_t ret, int flags)
{
	int e;

	if (ret != -EPIPE)
		return ret;
	e = take_error(fd);
	if (e)
		return -e;
	if (!(flags & MSG_NOSIGNAL)) {
		STAT_INC(shim_syscalls);
		raise(SIGPIPE);
	}
	return -EPIPE;
}

static ssize_t send_kernel(int fd, const struct iovec *iov, int iovcnt,
			   int flags)
{
	struct msghdr msg = { .msg_iov = (struct iovec *)iov,
			      .msg_iovlen = iovcnt };
	ssize_t n;

	STAT_INC(passthrough);
	n = REAL(sendmsg)(fd, &msg, (flags & ~SHIM_MSG_CMSG_COMPAT) |
			  MSG_NOSIGNAL);
	return send_fixup(fd, n < 0 ? -errno : n, flags);
}

/*
 * Can a queued send read all it may take?  Probed a page at a time, up
 * to IOV_PROBE_MAX: a send never queues more than the queue plus what
 * the kernel takes meanwhile.
 */
#define IOV_PROBE_MAX	(16UL << 20)

static bool iov_readable(const struct iovec *iov, int iovcnt)
{
	size_t left = IOV_PROBE_MAX, n;
	int i;

	for (i = 0; i < iovcnt && left; i++) {
		n = iov[i].iov_len < left ? iov[i].iov_len : left;
		if (!shim__range_readable(iov[i].iov_base, n))
			return false;
		left -= n;
	}
	return true;
}

/*
 * Serve an I/O call on fd if the shim owns it.  Returns true with *ret set
 * (>= 0 or -errno), or false when the caller must use the real call.
 */
static bool accel_io(int fd, int dir, const struct iovec *iov, int iovcnt,
		     int flags, ssize_t *ret)
{
	struct shim_fd *f;

	if (likely(!fd_lookup_racy(fd)) || shim__depth)
		return false;
	shim_lock();
	f = shim__fd_get_locked(fd);
	if (!f || f->state == FD_ORPHAN)
		goto out_real;
	if (dir == IO_SEND &&
	    (f->state == FD_DRAINING ||
	     (flags & (MSG_OOB | MSG_ERRQUEUE | MSG_FASTOPEN)))) {
		if (f->state == FD_ACCEL)
			shim__fd_release(f);
		shim_unlock();
		*ret = send_kernel(fd, iov, iovcnt, flags);
		return true;
	}
	if (flags & (MSG_OOB | MSG_ERRQUEUE)) {
		shim__fd_release(f);
		goto out_real;
	}
	if (dir == IO_RECV) {
		bool draining = f->state == FD_DRAINING;

		*ret = shim__fd_recv(f, iov, iovcnt, flags);
		if (*ret == -EAGAIN && draining)
			goto out_real;
		if (draining && *ret > 0 && iovcnt == 1 &&
		    (flags & MSG_WAITALL) && !(flags & MSG_PEEK) &&
		    (size_t)*ret < iov[0].iov_len) {
			/* Now blocking: the rest from the kernel. */
			ssize_t more;

			shim_unlock();
			more = REAL(recv)(fd, (char *)iov[0].iov_base + *ret,
					  iov[0].iov_len - *ret, flags);
			if (more > 0)
				*ret += more;
			return true;
		}
	} else if (shim.cfg.send_mode == MODE_SEND_SYNC) {
		*ret = shim__fd_send_sync(f, iov, iovcnt, flags);
	} else {
		/*
		 * Batching pays on the loop thread only; another thread's
		 * write goes straight out, so it never waits for that loop.
		 */
		bool foreign = !shim__on_loop(f->loop);

		if (foreign)
			shim__fd_push(f);
		else
			f->loop->iter_sends++;
		if ((shim.cfg.send_mode == MODE_SEND_DIRECT || foreign ||
		     f->loop->direct_sends) && !f->send_inflight &&
		    f->stail == f->shead && !f->err && !f->hup &&
		    !f->shut_wr && iovcnt <= DIRECT_IOV_MAX) {
			*ret = send_direct(f, iov, iovcnt, flags);
		} else if (!iov_readable(iov, iovcnt)) {
			/*
			 * Part of the buffer is bad: how much of it a send
			 * takes is the kernel's copy granularity (its page
			 * fragments), so the kernel decides; after the queue
			 * (handed back first if there is one).
			 */
			if (f->send_inflight || f->stail != f->shead)
				shim__fd_release(f);
			shim_unlock();
			*ret = send_kernel(fd, iov, iovcnt, flags);
			return true;
		} else {
			*ret = shim__fd_send(f, iov, iovcnt, flags);
		}
	}
	shim_unlock();
	if (*ret == -EAGAIN)
		eagain_spin_guard();
	else
		eagain_streak = 0;
	if (dir == IO_SEND && *ret == -EPIPE && !(flags & MSG_NOSIGNAL)) {
		STAT_INC(shim_syscalls);
		raise(SIGPIPE);
	}
	return true;

out_real:
	shim_unlock();
	return false;
}

/* Hand an accelerated fd back before a call the shim cannot serve. */
static void release_fd(int fd)
{
	struct shim_fd *f;

	if (likely(!fd_lookup_racy(fd)) || shim__depth)
		return;
	shim_lock();
	f = shim__fd_get_locked(fd);
	if (f)
		shim__fd_release(f);
	shim_unlock();
}

#define PASS(name, ...)							\
	do {								\
		STAT_INC(passthrough);					\
		return REAL(name)(__VA_ARGS__);				\
	} while (0)

/*
 * Might the shim serve fd?  A racy hint, re-checked under the lock by
 * accel_io; only then are the caller's arguments read and checked (args.h),
 * never for an fd the kernel answers for.
 */
static inline bool owned_hint(int fd)
{
	return unlikely(fd_lookup_racy(fd) != NULL) && !shim__depth;
}

/* read/write (vfs_read/vfs_write): the whole range first, then clamped. */
static int rw_check(struct iovec *iov)
{
	if (!shim__user_range_ok(iov->iov_base, iov->iov_len))
		return -EFAULT;
	if (iov->iov_len > (size_t)SHIM_MAX_RW_COUNT)
		iov->iov_len = SHIM_MAX_RW_COUNT;
	return 0;
}

/*
 * readv/writev/recvmsg/sendmsg: the iovec array imported as the kernel
 * does; *served false when the fd turned out not to be ours.  An empty
 * readv/writev moves nothing and answers 0 (vfs_readv), a msghdr call
 * still goes to the socket (empty).
 */
static ssize_t io_vec(int fd, int dir, const struct iovec *uiov,
		      unsigned long nr, int flags, bool empty_ok,
		      bool *served, ssize_t *total)
{
	struct iovec fast[SHIM_UIO_FASTIOV], *kiov;
	ssize_t ret;

	*served = true;
	ret = *total = shim__iov_import(uiov, nr, fast, &kiov);
	if (ret < 0 || (!ret && empty_ok)) {
		shim__iov_free(kiov, fast);
		return ret;
	}
	*served = accel_io(fd, dir, kiov, (int)(unsigned int)nr, flags,
			   &ret);
	shim__iov_free(kiov, fast);
	return ret;
}

SHIM_EXPORT ssize_t read(int fd, void *buf, size_t n)
{
	struct iovec iov = { buf, n };
	ssize_t ret;

	STAT_CALL(read);
	if (owned_hint(fd)) {
		/* A socket reads 0 bytes as 0 (sock_read_iter). */
		if ((ret = rw_check(&iov)) || !n)
			return to_libc(ret);
		if (accel_io(fd, IO_RECV, &iov, 1, 0, &ret))
			return to_libc(ret);
	}
	shim__flush_before_block();
	PASS(read, fd, buf, n);
}

SHIM_EXPORT ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen)
{
	struct iovec iov = { buf, n };
	ssize_t ret;

	STAT_CALL(__read_chk);
	if (n <= buflen && owned_hint(fd)) {
		if ((ret = rw_check(&iov)) || !n)
			return to_libc(ret);
		if (accel_io(fd, IO_RECV, &iov, 1, 0, &ret))
			return to_libc(ret);
	}
	shim__flush_before_block();
	PASS(__read_chk, fd, buf, n, buflen);
}

SHIM_EXPORT ssize_t write(int fd, const void *buf, size_t n)
{
	struct iovec iov = { (void *)buf, n };
	ssize_t ret;

	STAT_CALL(write);
	if (owned_hint(fd)) {
		if ((ret = rw_check(&iov)))
			return to_libc(ret);
		if (accel_io(fd, IO_SEND, &iov, 1, 0, &ret))
			return to_libc(ret);
	}
	shim__flush_before_block();
	PASS(write, fd, buf, n);
}

SHIM_EXPORT ssize_t readv(int fd, const struct iovec *iov, int iovcnt)
{
	ssize_t ret, total;
	bool served;

	STAT_CALL(readv);
	if (owned_hint(fd)) {
		ret = io_vec(fd, IO_RECV, iov, iovcnt, 0, true, &served,
			     &total);
		if (served)
			return to_libc(ret);
	}
	shim__flush_before_block();
	PASS(readv, fd, iov, iovcnt);
}

SHIM_EXPORT ssize_t writev(int fd, const struct iovec *iov, int iovcnt)
{
	ssize_t ret, total;
	bool served;

	STAT_CALL(writev);
	if (owned_hint(fd)) {
		ret = io_vec(fd, IO_SEND, iov, iovcnt, 0, true, &served,
			     &total);
		if (served)
			return to_libc(ret);
	}
	shim__flush_before_block();
	PASS(writev, fd, iov, iovcnt);
}

/*
 * recv/send family: one buffer, clamped, then in range (import_ubuf).
 * MSG_CMSG_COMPAT means nothing to send(2) (sendmsg(2) refuses it), and
 * the shim's own sends are sendmsg: drop it.
 */
static bool accel_buf(int fd, int dir, void *buf, size_t n, int flags,
		      ssize_t *ret)
{
	struct iovec iov = { buf, n };

	*ret = shim__ubuf_import(buf, &iov.iov_len);
	return *ret || accel_io(fd, dir, &iov, 1,
				flags & ~SHIM_MSG_CMSG_COMPAT, ret);
}

SHIM_EXPORT ssize_t recv(int fd, void *buf, size_t n, int flags)
{
	ssize_t ret;

	STAT_CALL(recv);
	if (owned_hint(fd) && accel_buf(fd, IO_RECV, buf, n, flags, &ret))
		return to_libc(ret);
	shim__flush_before_block();
	PASS(recv, fd, buf, n, flags);
}

SHIM_EXPORT ssize_t __recv_chk(int fd, void *buf, size_t n, size_t buflen,
			       int flags)
{
	ssize_t ret;

	STAT_CALL(__recv_chk);
	if (n <= buflen && owned_hint(fd) &&
	    accel_buf(fd, IO_RECV, buf, n, flags, &ret))
		return to_libc(ret);
	shim__flush_before_block();
	PASS(__recv_chk, fd, buf, n, buflen, flags);
}

SHIM_EXPORT ssize_t send(int fd, const void *buf, size_t n, int flags)
{
	ssize_t ret;

	STAT_CALL(send);
	if (owned_hint(fd) &&
	    accel_buf(fd, IO_SEND, (void *)buf, n, flags, &ret))
		return to_libc(ret);
	shim__flush_before_block();
	PASS(send, fd, buf, n, flags);
}

/*
 * The source address of a stream read (move_addr_to_user with none): the
 * length is read, must not be negative, and becomes 0.  The bytes are
 * consumed whatever this answers, as in the kernel.
 */
static ssize_t addr_none_out(socklen_t *ulen, ssize_t ret)
{
	int len;
	const int zero = 0;

	if (!shim__uget(&len, ulen, sizeof(len)))
		return -EFAULT;
	if (len < 0)
		return -EINVAL;
	if (!shim__uput(ulen, &zero, sizeof(zero)))
		return -EFAULT;
	return ret;
}

SHIM_EXPORT ssize_t recvfrom(int fd, void *buf, size_t n, int flags,
			     struct sockaddr *addr, socklen_t *alen)
{
	ssize_t ret;

	STAT_CALL(recvfrom);
	if (owned_hint(fd) && accel_buf(fd, IO_RECV, buf, n, flags, &ret)) {
		/* Connected TCP reports no source address. */
		if (ret >= 0 && addr)
			ret = addr_none_out(alen, ret);
		return to_libc(ret);
	}
	shim__flush_before_block();
	PASS(recvfrom, fd, buf, n, flags, addr, alen);
}

SHIM_EXPORT ssize_t __recvfrom_chk(int fd, void *buf, size_t n, size_t buflen,
				   int flags, struct sockaddr *addr,
				   socklen_t *alen)
{
	STAT_CALL(__recvfrom_chk);
	if (n <= buflen && owned_hint(fd))
		return recvfrom(fd, buf, n, flags, addr, alen);
	shim__flush_before_block();
	PASS(__recvfrom_chk, fd, buf, n, buflen, flags, addr, alen);
}

SHIM_EXPORT ssize_t sendto(int fd, const void *buf, size_t n, int flags,
			   const struct sockaddr *addr, socklen_t alen)
{
	ssize_t ret;

	STAT_CALL(sendto);
	if (!addr && owned_hint(fd) &&
	    accel_buf(fd, IO_SEND, (void *)buf, n, flags, &ret))
		return to_libc(ret);
	if (owned_hint(fd)) {
		/* An address: the kernel's send (it checks the address). */
		release_fd(fd);
		ret = REAL(sendto)(fd, buf, n, flags | MSG_NOSIGNAL, addr,
				   alen);
		return to_libc(send_fixup(fd, ret < 0 ? -errno : ret, flags));
	}
	shim__flush_before_block();
	PASS(sendto, fd, buf, n, flags, addr, alen);
}

/*
 * recvmsg on a socket the shim serves (___sys_recvmsg): the msghdr and its
 * iovecs checked and read, the bytes served, then what the kernel writes
 * back: the name length (0: no source address), the flags, the control
 * length (0).  Control data hands the socket back first (its bytes already
 * pulled are still served first).  false: the real call answers, with the
 * caller's msghdr.
 */
static bool accel_recvmsg(int fd, struct msghdr *umsg, int flags,
			  ssize_t *ret)
{
	const size_t zero = 0;
	struct msghdr m;
	ssize_t total;
	bool served;
	int out;

	*ret = shim__msghdr_get(umsg, &m);
	if (*ret == -EFAULT)
		return true;
	/*
	 * Ancillary data is the kernel's to give: the socket goes back, but
	 * the bytes the ring already pulled are still served first.
	 */
	if (m.msg_controllen)
		release_fd(fd);
	if (*ret)
		return true;
	*ret = io_vec(fd, IO_RECV, m.msg_iov, m.msg_iovlen, flags, false,
		      &served, &total);
	if (!served)
		return false;
	if (*ret < 0)
		return true;
	out = flags & MSG_CMSG_CLOEXEC;
	if (m.msg_name)
		*ret = addr_none_out(UFIELD(umsg, struct msghdr, msg_namelen),
				     *ret);
	if (*ret >= 0 &&
	    (!shim__uput(UFIELD(umsg, struct msghdr, msg_flags), &out,
			 sizeof(out)) ||
	     !shim__uput(UFIELD(umsg, struct msghdr, msg_controllen), &zero,
			 sizeof(zero))))
		*ret = -EFAULT;
	return true;
}

SHIM_EXPORT ssize_t recvmsg(int fd, struct msghdr *msg, int flags)
{
	ssize_t ret;

	STAT_CALL(recvmsg);
	if (owned_hint(fd)) {
		if (flags & SHIM_MSG_CMSG_COMPAT)
			return to_libc(-EINVAL);
		if (accel_recvmsg(fd, msg, flags, &ret))
			return to_libc(ret);
	}
	shim__flush_before_block();
	PASS(recvmsg, fd, msg, flags);
}

/*
 * sendmsg likewise (___sys_sendmsg): a destination address or control
 * data hand the socket back first, and the kernel checks them.
 */
static bool accel_sendmsg(int fd, const struct msghdr *umsg, int flags,
			  ssize_t *ret, ssize_t *total)
{
	struct msghdr m;
	bool served;

	*ret = shim__msghdr_get(umsg, &m);
	if (*ret == -EFAULT)
		return true;
	if ((m.msg_name && m.msg_namelen) || m.msg_controllen) {
		/* The kernel sends: it checks the address, the control. */
		release_fd(fd);
		*ret = REAL(sendmsg)(fd, umsg, flags | MSG_NOSIGNAL);
		*ret = send_fixup(fd, *ret < 0 ? -errno : *ret, flags);
		*total = 0;	/* not known here: never a short send */
		return true;
	}
	if (*ret)
		return true;
	*ret = io_vec(fd, IO_SEND, m.msg_iov, m.msg_iovlen, flags, false,
		      &served, total);
	return served;
}

SHIM_EXPORT ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
	ssize_t ret, total;

	STAT_CALL(sendmsg);
	if (owned_hint(fd)) {
		if (flags & SHIM_MSG_CMSG_COMPAT)
			return to_libc(-EINVAL);
		if (accel_sendmsg(fd, msg, flags, &ret, &total))
			return to_libc(ret);
	}
	shim__flush_before_block();
	PASS(sendmsg, fd, msg, flags);
}

static long ts_ns(const struct timespec *t)
{
	return t->tv_sec * 1000000000L + t->tv_nsec;
}

/*
 * recvmmsg/sendmmsg on a socket the shim serves: message after message
 * through accel_recvmsg/accel_sendmsg, as the kernel loops (do_recvmmsg,
 * __sys_sendmmsg), each length stored as it goes.  A message the shim
 * cannot serve hands the socket back and the rest goes to the real call.
 * Returns true with the count or -errno in *count; false: not ours.
 */
static bool accel_mmsg(int fd, int dir, struct mmsghdr *v, unsigned int n,
		       int flags, const struct timespec *timeout,
		       long deadline, int *count)
{
	unsigned int i, len;
	ssize_t ret = 0, total = 0;
	struct timespec now;
	int rest;

	if (dir == IO_SEND && n > SHIM_UIO_MAXIOV)
		n = SHIM_UIO_MAXIOV;
	for (i = 0; i < n; i++) {
		/* The vector may be misaligned: addresses by arithmetic. */
		struct mmsghdr *e = UELEM(v, struct mmsghdr, i);
		bool served;

		if (dir == IO_RECV)
			served = accel_recvmsg(fd, UFIELD(e, struct mmsghdr,
							  msg_hdr),
					       flags & ~MSG_WAITFORONE, &ret);
		else
			served = accel_sendmsg(fd, UFIELD(e, struct mmsghdr,
							  msg_hdr),
					       flags, &ret, &total);
		if (!served && !i)
			return false;
		if (!served) {
			if (dir == IO_RECV && (flags & MSG_WAITFORONE))
				flags |= MSG_DONTWAIT;
			rest = dir == IO_RECV ?
			       REAL(recvmmsg)(fd, e, n - i, flags,
					      (struct timespec *)timeout) :
			       REAL(sendmmsg)(fd, e, n - i, flags);
			*count = rest >= 0 ? (int)(i + rest) : (int)i;
			return true;
		}
		if (ret < 0)
			break;
		len = ret;
		if (!shim__uput(UFIELD(e, struct mmsghdr, msg_len), &len,
				sizeof(len))) {
			ret = -EFAULT;
			break;
		}
		if (dir == IO_SEND && ret < total) {
			i++;
			break;
		}
		if (dir == IO_RECV && timeout) {
			clock_gettime(CLOCK_MONOTONIC, &now);
			if (ts_ns(&now) >= deadline) {
				i++;
				break;
			}
		}
	}
	if (!i) {
		*count = ret;
		return true;
	}
	/* An error after some messages is reported next time. */
	if (dir == IO_RECV && ret < 0 && ret != -EAGAIN)
		keep_error(fd, (int)-ret);
	*count = i;
	return true;
}

SHIM_EXPORT int recvmmsg(int fd, struct mmsghdr *v, unsigned int n, int flags,
			 struct timespec *timeout)
{
	struct timespec ts, now;
	long deadline = 0;
	int count, e;

	STAT_CALL(recvmmsg);
	if (owned_hint(fd)) {
		if (flags & SHIM_MSG_CMSG_COMPAT)
			return to_libc(-EINVAL);
		if (timeout) {
			if ((e = shim__timespec_get(timeout, &ts)))
				return to_libc(e);
			clock_gettime(CLOCK_MONOTONIC, &now);
			deadline = ts_ns(&now) + ts_ns(&ts);
		}
		if (!(flags & MSG_ERRQUEUE) && (e = take_error(fd)))
			return to_libc(-e);
		if (accel_mmsg(fd, IO_RECV, v, n, flags, timeout ? &ts : NULL,
			       deadline, &count)) {
			if (count > 0 && timeout) {
				/* The time left goes back, as the kernel's. */
				long left;

				clock_gettime(CLOCK_MONOTONIC, &now);
				left = deadline - ts_ns(&now);
				left = left > 0 ? left : 0;
				ts.tv_sec = left / 1000000000L;
				ts.tv_nsec = left % 1000000000L;
				if (!shim__uput(timeout, &ts, sizeof(ts)))
					count = -EFAULT;
			}
			return to_libc(count);
		}
	}
	release_fd(fd);
	shim__flush_before_block();
	PASS(recvmmsg, fd, v, n, flags, timeout);
}

SHIM_EXPORT int sendmmsg(int fd, struct mmsghdr *v, unsigned int n, int flags)
{
	int count;

	STAT_CALL(sendmmsg);
	if (owned_hint(fd)) {
		if (flags & SHIM_MSG_CMSG_COMPAT)
			return to_libc(-EINVAL);
		if (accel_mmsg(fd, IO_SEND, v, n, flags, NULL, 0, &count))
			return to_libc(count);
	}
	release_fd(fd);
	shim__flush_before_block();
	PASS(sendmmsg, fd, v, n, flags);
}

#define NOT_HELD	((ssize_t)INT_MIN)

/*
 * splice or sendfile out of a socket the shim has pulled bytes from (the
 * kernel moves a socket's bytes only into a pipe): those bytes first (a
 * short transfer is allowed), from a stack copy with vmsplice, so no lock
 * is held across a pipe that may block, and a full one answers as splice
 * would.  Only the plain case is served here (no offsets, known flags, a
 * pipe open for writing); a pending error or EOF is the answer too
 * (tcp_splice_read).  Everything else, and nothing held, is NOT_HELD: the
 * real call answers.
 */
static ssize_t held_out(int fd_in, int fd_out, size_t n, unsigned int flags)
{
	struct iovec iov;
	struct stat st;
	char chunk[4096];
	ssize_t got, wrote;
	int fl;

	if (likely(!fd_lookup_racy(fd_in)) || shim__depth || !n ||
	    (ssize_t)n < 0 ||
	    (flags & ~(unsigned int)(SPLICE_F_MOVE | SPLICE_F_NONBLOCK |
				     SPLICE_F_MORE | SPLICE_F_GIFT)))
		return NOT_HELD;
	fl = REAL(fcntl)(fd_out, F_GETFL);
	if (fl < 0 || (fl & O_ACCMODE) == O_RDONLY || fstat(fd_out, &st) ||
	    !S_ISFIFO(st.st_mode))
		return NOT_HELD;
	if (fl & O_NONBLOCK)
		flags |= SPLICE_F_NONBLOCK;
	iov.iov_base = chunk;
	iov.iov_len = n < sizeof(chunk) ? n : sizeof(chunk);
	if (!accel_io(fd_in, IO_RECV, &iov, 1, MSG_PEEK, &got) ||
	    got == -EAGAIN)
		return NOT_HELD;
	if (got <= 0)
		return got;
	iov.iov_len = got;
	wrote = vmsplice(fd_out, &iov, 1, flags & SPLICE_F_NONBLOCK);
	if (wrote < 0)
		return -errno;
	iov.iov_len = wrote;
	accel_io(fd_in, IO_RECV, &iov, 1, MSG_TRUNC, &got);
	return wrote;
}

/* Does the shim hold a socket error the kernel no longer has? */
static bool held_error(int fd)
{
	struct shim_fd *f;
	bool held;

	if (likely(!fd_lookup_racy(fd)) || shim__depth)
		return false;
	shim_lock();
	f = shim__fd_get_locked(fd);
	held = f && f->state != FD_ORPHAN && f->err;
	shim_unlock();
	return held;
}

/*
 * sendfile/splice into a socket whose error the ring took: the kernel,
 * which would have answered that error, answers EPIPE and raises SIGPIPE.
 * The call is made with SIGPIPE blocked; on EPIPE the held error is the
 * answer and the signal is taken back, otherwise it is delivered when the
 * mask is restored.  ret/err: the call's result and errno.
 */
static void pipe_block(sigset_t *old, bool *was)
{
	sigset_t pipe, pend;

	sigemptyset(&pipe);
	sigaddset(&pipe, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe, old);
	*was = !sigpending(&pend) && sigismember(&pend, SIGPIPE);
}

static ssize_t pipe_unblock(int fd, const sigset_t *old, bool was,
			    ssize_t ret, int err)
{
	struct timespec zero = { 0, 0 };
	sigset_t pipe, pend;
	int held;

	sigemptyset(&pipe);
	sigaddset(&pipe, SIGPIPE);
	/*
	 * A SIGPIPE raised by this call means the kernel tried the send:
	 * it would have answered the held error instead, without a signal
	 * (and a later failure, an offset it cannot write back, still wins).
	 */
	if (!was && !sigpending(&pend) && sigismember(&pend, SIGPIPE)) {
		sigtimedwait(&pipe, NULL, &zero);
		held = take_error(fd);
		if (ret < 0 && err == EPIPE && held)
			err = held;
	}
	pthread_sigmask(SIG_SETMASK, old, NULL);
	errno = err;
	return ret;
}

SHIM_EXPORT ssize_t sendfile(int out_fd, int in_fd, off_t *off, size_t n)
{
	ssize_t ret;
	sigset_t old;
	bool was;

	STAT_CALL(sendfile);
	release_fd(out_fd);
	if (!off && (ret = held_out(in_fd, out_fd, n, 0)) !=
		    NOT_HELD)
		return to_libc(ret);
	release_fd(in_fd);
	shim__flush_before_block();
	STAT_INC(passthrough);
	if (!held_error(out_fd))
		return REAL(sendfile)(out_fd, in_fd, off, n);
	pipe_block(&old, &was);
	ret = REAL(sendfile)(out_fd, in_fd, off, n);
	return pipe_unblock(out_fd, &old, was, ret, errno);
}

/* Programs built with _FILE_OFFSET_BITS=64 (nginx) call this name. */
SHIM_EXPORT ssize_t sendfile64(int out_fd, int in_fd, off64_t *off, size_t n)
{
	ssize_t ret;
	sigset_t old;
	bool was;

	STAT_CALL(sendfile64);
	release_fd(out_fd);
	if (!off && (ret = held_out(in_fd, out_fd, n, 0)) !=
		    NOT_HELD)
		return to_libc(ret);
	release_fd(in_fd);
	shim__flush_before_block();
	STAT_INC(passthrough);
	if (!held_error(out_fd))
		return REAL(sendfile64)(out_fd, in_fd, off, n);
	pipe_block(&old, &was);
	ret = REAL(sendfile64)(out_fd, in_fd, off, n);
	return pipe_unblock(out_fd, &old, was, ret, errno);
}

SHIM_EXPORT ssize_t splice(int fd_in, off_t *off_in, int fd_out,
			   off_t *off_out, size_t n, unsigned int flags)
{
	ssize_t ret;
	sigset_t old;
	bool was;

	STAT_CALL(splice);
	if (!off_in && !off_out &&
	    (ret = held_out(fd_in, fd_out, n, flags)) != NOT_HELD)
		return to_libc(ret);
	release_fd(fd_in);
	release_fd(fd_out);
	shim__flush_before_block();
	STAT_INC(passthrough);
	if (!held_error(fd_out))
		return REAL(splice)(fd_in, off_in, fd_out, off_out, n, flags);
	pipe_block(&old, &was);
	ret = REAL(splice)(fd_in, off_in, fd_out, off_out, n, flags);
	return pipe_unblock(fd_out, &old, was, ret, errno);
}
