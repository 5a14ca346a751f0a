/*
 * wrap_io.c - the data calls: read/write/recv/send families.
 *
 * Each wrapper first asks whether the shim may own the fd (a racy table
 * hint).  When it may not, nothing of the caller's is read and the real
 * call answers.  When it may, the wrapper checks the arguments as the
 * kernel does, in the kernel's order (args.c), hands layer 2 only its own
 * copies (fd.c serves the socket from its received bytes or queues on its
 * send queue, with no syscall), and writes back only what the kernel
 * writes, under the fault guard.  Calls the shim cannot serve on an
 * accelerated socket (OOB, ancillary data, an address, sendfile, splice)
 * first hand it back to the kernel, so bytes never reorder.
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

#define PASS(name, ...)							\
	do {								\
		loop_flush_before_block();				\
		STAT_INC(passthrough);					\
		return REAL(name)(__VA_ARGS__);				\
	} while (0)

/*
 * Might the shim serve fd?  A racy hint, re-checked under the lock by
 * fd.c; only then are the caller's arguments read and checked.
 */
static inline bool owned_hint(int fd)
{
	return unlikely(fdtab_fd(fd) != NULL) && !shim__depth;
}

/* A served send that failed with EPIPE raises SIGPIPE, as the kernel's. */
static ssize_t pipe_signal(ssize_t ret, int flags)
{
	if (ret == -EPIPE && !(flags & MSG_NOSIGNAL)) {
		STAT_INC(shim_syscalls);
		raise(SIGPIPE);
	}
	return ret;
}

/*
 * A send the kernel makes on a socket the shim owns (released, or handed
 * over for OOB, Fast Open, an address, control data, a bad buffer).  The
 * ring may have taken a socket error from the kernel, which then answers
 * EPIPE where it would have answered that error: so the send is made with
 * MSG_NOSIGNAL, and EPIPE becomes the held error (taken), or EPIPE with
 * the SIGPIPE the caller's flags ask for.  ret: the kernel's answer.
 */
static ssize_t kernel_sent(int fd, ssize_t ret, int flags)
{
	int e;

	if (ret >= 0)
		return ret;
	ret = -errno;
	if (ret == -EPIPE && fd_take_error(fd, &e))
		return -e;
	return pipe_signal(ret, flags);
}

static ssize_t send_kernel(int fd, const struct iovec *iov, int iovcnt,
			   int flags)
{
	struct msghdr msg = { .msg_iov = (struct iovec *)iov,
			      .msg_iovlen = iovcnt };

	loop_flush_before_block();
	STAT_INC(passthrough);
	return kernel_sent(fd, REAL(sendmsg)(fd, &msg, flags | MSG_NOSIGNAL),
			   flags);
}

/* A send on a socket the shim may own (iov: checked copies). */
static ssize_t send_owned(int fd, const struct iovec *iov, int iovcnt,
			  int flags)
{
	ssize_t ret;

	if (fd_io_send(fd, iov, iovcnt, flags, &ret))
		return pipe_signal(ret, flags);
	return send_kernel(fd, iov, iovcnt, flags);
}

/*
 * read/write (vfs_read/vfs_write): the whole range first, then clamped.
 * A socket reads 0 bytes as 0 (sock_read_iter).  false: the real call
 * answers (the fd is not ours after all).  Inline: the hot path.
 */
static inline bool read_one(int fd, void *buf, size_t n, ssize_t *ret)
{
	struct iovec iov = { buf, n };

	if (unlikely(!args_range_ok(buf, n) || !n)) {
		*ret = n ? -EFAULT : 0;
		return true;
	}
	if (unlikely(n > (size_t)SHIM_MAX_RW_COUNT))
		iov.iov_len = SHIM_MAX_RW_COUNT;
	return fd_io_recv(fd, &iov, 1, 0, ret);
}

SHIM_EXPORT ssize_t read(int fd, void *buf, size_t n)
{
	ssize_t ret;

	STAT_CALL(read);
	if (owned_hint(fd) && read_one(fd, buf, n, &ret))
		return to_libc(ret);
	PASS(read, fd, buf, n);
}

SHIM_EXPORT ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen)
{
	ssize_t ret;

	STAT_CALL(__read_chk);
	if (n <= buflen && owned_hint(fd) && read_one(fd, buf, n, &ret))
		return to_libc(ret);
	PASS(__read_chk, fd, buf, n, buflen);
}

SHIM_EXPORT ssize_t write(int fd, const void *buf, size_t n)
{
	struct iovec iov = { (void *)buf, n };
	ssize_t ret;

	STAT_CALL(write);
	if (!owned_hint(fd))
		PASS(write, fd, buf, n);
	if (unlikely(!args_range_ok(buf, n)))
		return to_libc(-EFAULT);
	if (unlikely(n > (size_t)SHIM_MAX_RW_COUNT))
		iov.iov_len = SHIM_MAX_RW_COUNT;
	if (likely(fd_io_send(fd, &iov, 1, 0, &ret)))
		return to_libc(pipe_signal(ret, 0));
	return to_libc(send_kernel(fd, &iov, 1, 0));
}

/*
 * readv/writev/recvmsg/sendmsg: the iovec array imported as the kernel
 * does; *served false when the fd turned out not to be ours (receive
 * only: a send is then made by the kernel here).  An empty readv/writev
 * moves nothing and answers 0 (do_iter_read); a msghdr call still goes
 * to the socket.
 */
static ssize_t io_vec(int fd, bool rx, const struct iovec *uiov,
		      unsigned long nr, int flags, bool empty_ok,
		      bool *served, ssize_t *total)
{
	struct iovec fast[SHIM_UIO_FASTIOV], *kiov;
	ssize_t ret;

	*served = true;
	ret = *total = args_iov_import(uiov, nr, fast, &kiov);
	if (ret < 0 || (!ret && empty_ok)) {
		args_iov_free(kiov, fast);
		return ret;
	}
	if (rx)
		*served = fd_io_recv(fd, kiov, (int)(unsigned int)nr, flags,
				     &ret);
	else
		ret = send_owned(fd, kiov, (int)(unsigned int)nr, flags);
	args_iov_free(kiov, fast);
	return ret;
}

SHIM_EXPORT ssize_t readv(int fd, const struct iovec *iov, int iovcnt)
{
	ssize_t ret, total;
	bool served;

	STAT_CALL(readv);
	if (owned_hint(fd)) {
		ret = io_vec(fd, true, iov, iovcnt, 0, true, &served, &total);
		if (served)
			return to_libc(ret);
	}
	PASS(readv, fd, iov, iovcnt);
}

SHIM_EXPORT ssize_t writev(int fd, const struct iovec *iov, int iovcnt)
{
	ssize_t ret, total;
	bool served;

	STAT_CALL(writev);
	if (owned_hint(fd)) {
		ret = io_vec(fd, false, iov, iovcnt, 0, true, &served, &total);
		return to_libc(ret);
	}
	PASS(writev, fd, iov, iovcnt);
}

/*
 * recv/send family: one buffer, clamped, then in range (import_ubuf).
 * MSG_CMSG_COMPAT means nothing to recv(2)/send(2) (recvmsg/sendmsg
 * refuse it), and the shim's own sends are sendmsg: dropped.
 */
static bool buf_one(int fd, bool rx, void *buf, size_t n, int flags,
		    ssize_t *ret)
{
	struct iovec iov = { buf, n };

	flags &= ~SHIM_MSG_CMSG_COMPAT;
	*ret = args_ubuf(buf, &iov.iov_len);
	if (*ret)
		return true;
	if (rx)
		return fd_io_recv(fd, &iov, 1, flags, ret);
	*ret = send_owned(fd, &iov, 1, flags);
	return true;
}

SHIM_EXPORT ssize_t recv(int fd, void *buf, size_t n, int flags)
{
	ssize_t ret;

	STAT_CALL(recv);
	if (owned_hint(fd) && buf_one(fd, true, buf, n, flags, &ret))
		return to_libc(ret);
	PASS(recv, fd, buf, n, flags);
}

SHIM_EXPORT ssize_t __recv_chk(int fd, void *buf, size_t n, size_t buflen,
			       int flags)
{
	ssize_t ret;

	STAT_CALL(__recv_chk);
	if (n <= buflen && owned_hint(fd) &&
	    buf_one(fd, true, buf, n, flags, &ret))
		return to_libc(ret);
	PASS(__recv_chk, fd, buf, n, buflen, flags);
}

SHIM_EXPORT ssize_t send(int fd, const void *buf, size_t n, int flags)
{
	ssize_t ret;

	STAT_CALL(send);
	if (owned_hint(fd) && buf_one(fd, false, (void *)buf, n, flags, &ret))
		return to_libc(ret);
	PASS(send, fd, buf, n, flags);
}

/*
 * The source address of a stream read (move_addr_to_user with none): the
 * length is read, must not be negative, and becomes 0.  The bytes are
 * consumed whatever this answers, as in the kernel.
 */
static ssize_t addr_none_out(socklen_t *ulen, ssize_t ret)
{
	const int zero = 0;
	int len;

	if (!args_get(&len, ulen, sizeof(len)))
		return -EFAULT;
	if (len < 0)
		return -EINVAL;
	if (!args_put(ulen, &zero, sizeof(zero)))
		return -EFAULT;
	return ret;
}

SHIM_EXPORT ssize_t recvfrom(int fd, void *buf, size_t n, int flags,
			     struct sockaddr *addr, socklen_t *alen)
{
	ssize_t ret;

	STAT_CALL(recvfrom);
	if (owned_hint(fd) && buf_one(fd, true, buf, n, flags, &ret)) {
		/* Connected TCP reports no source address. */
		if (ret >= 0 && addr)
			ret = addr_none_out(alen, ret);
		return to_libc(ret);
	}
	PASS(recvfrom, fd, buf, n, flags, addr, alen);
}

SHIM_EXPORT ssize_t __recvfrom_chk(int fd, void *buf, size_t n, size_t buflen,
				   int flags, struct sockaddr *addr,
				   socklen_t *alen)
{
	STAT_CALL(__recvfrom_chk);
	if (n <= buflen && owned_hint(fd))
		return recvfrom(fd, buf, n, flags, addr, alen);
	PASS(__recvfrom_chk, fd, buf, n, buflen, flags, addr, alen);
}

SHIM_EXPORT ssize_t sendto(int fd, const void *buf, size_t n, int flags,
			   const struct sockaddr *addr, socklen_t alen)
{
	ssize_t ret;

	STAT_CALL(sendto);
	if (!owned_hint(fd))
		PASS(sendto, fd, buf, n, flags, addr, alen);
	if (!addr && buf_one(fd, false, (void *)buf, n, flags, &ret))
		return to_libc(ret);
	/* An address: the kernel's send (it checks the address). */
	fd_release_fd(fd);
	loop_flush_before_block();
	STAT_INC(passthrough);
	ret = REAL(sendto)(fd, buf, n, flags | MSG_NOSIGNAL, addr, alen);
	return to_libc(kernel_sent(fd, ret, flags));
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

	*ret = args_msghdr(umsg, &m);
	if (*ret == -EFAULT)
		return true;
	/*
	 * Ancillary data is the kernel's to give: the socket goes back, but
	 * the bytes the ring already pulled are still served first.
	 */
	if (m.msg_controllen)
		fd_release_fd(fd);
	if (*ret)
		return true;
	*ret = io_vec(fd, true, m.msg_iov, m.msg_iovlen, flags, false,
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
	    (!args_put(UFIELD(umsg, struct msghdr, msg_flags), &out,
		       sizeof(out)) ||
	     !args_put(UFIELD(umsg, struct msghdr, msg_controllen), &zero,
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
	PASS(recvmsg, fd, msg, flags);
}

/*
 * sendmsg likewise (___sys_sendmsg): a destination address or control
 * data hand the socket back first, and the kernel checks them.  *total:
 * the bytes asked for (0 when the kernel was handed the msghdr).
 */
static ssize_t accel_sendmsg(int fd, const struct msghdr *umsg, int flags,
			     ssize_t *total)
{
	struct msghdr m;
	ssize_t ret;
	bool served;

	*total = 0;
	ret = args_msghdr(umsg, &m);
	if (ret == -EFAULT)
		return ret;
	if ((m.msg_name && m.msg_namelen) || m.msg_controllen) {
		/* The kernel sends: it checks the address, the control. */
		fd_release_fd(fd);
		loop_flush_before_block();
		STAT_INC(passthrough);
		ret = REAL(sendmsg)(fd, umsg, flags | MSG_NOSIGNAL);
		return kernel_sent(fd, ret, flags);
	}
	if (ret)
		return ret;
	return io_vec(fd, false, m.msg_iov, m.msg_iovlen, flags, false,
		      &served, total);
}

SHIM_EXPORT ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
	ssize_t total;

	STAT_CALL(sendmsg);
	if (owned_hint(fd)) {
		if (flags & SHIM_MSG_CMSG_COMPAT)
			return to_libc(-EINVAL);
		return to_libc(accel_sendmsg(fd, msg, flags, &total));
	}
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
 * cannot receive hands the socket back and the rest goes to the real
 * call.  Returns true with the count or -errno in *count; false: not
 * ours.
 */
static bool accel_mmsg(int fd, bool rx, struct mmsghdr *v, unsigned int n,
		       int flags, const struct timespec *timeout,
		       long deadline, int *count)
{
	unsigned int i, len;
	ssize_t ret = 0, total = 0;
	struct timespec now;
	int rest;

	if (!rx && n > SHIM_UIO_MAXIOV)
		n = SHIM_UIO_MAXIOV;
	for (i = 0; i < n; i++) {
		/* The vector may be misaligned: addresses by arithmetic. */
		struct mmsghdr *e = UELEM(v, struct mmsghdr, i);
		struct msghdr *hdr = UFIELD(e, struct mmsghdr, msg_hdr);

		if (!rx) {
			ret = accel_sendmsg(fd, hdr, flags, &total);
		} else if (!accel_recvmsg(fd, hdr, flags & ~MSG_WAITFORONE,
					  &ret)) {
			if (!i)
				return false;
			if (flags & MSG_WAITFORONE)
				flags |= MSG_DONTWAIT;
			loop_flush_before_block();
			rest = REAL(recvmmsg)(fd, e, n - i, flags,
					      (struct timespec *)timeout);
			*count = rest >= 0 ? (int)(i + rest) : (int)i;
			return true;
		}
		if (ret < 0)
			break;
		len = ret;
		if (!args_put(UFIELD(e, struct mmsghdr, msg_len), &len,
			      sizeof(len))) {
			ret = -EFAULT;
			break;
		}
		if (!rx && ret < total) {
			i++;
			break;
		}
		if (rx && timeout) {
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
	if (rx && ret < 0 && ret != -EAGAIN)
		fd_keep_error(fd, (int)-ret);
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
			if ((e = args_timespec(timeout, &ts)))
				return to_libc(e);
			clock_gettime(CLOCK_MONOTONIC, &now);
			deadline = ts_ns(&now) + ts_ns(&ts);
		}
		if (!(flags & MSG_ERRQUEUE) && fd_take_error(fd, &e))
			return to_libc(-e);
		if (accel_mmsg(fd, true, v, n, flags, timeout ? &ts : NULL,
			       deadline, &count)) {
			if (count > 0 && timeout) {
				/* The time left goes back, as the kernel's. */
				long left;

				clock_gettime(CLOCK_MONOTONIC, &now);
				left = deadline - ts_ns(&now);
				left = left > 0 ? left : 0;
				ts.tv_sec = left / 1000000000L;
				ts.tv_nsec = left % 1000000000L;
				if (!args_put(timeout, &ts, sizeof(ts)))
					count = -EFAULT;
			}
			return to_libc(count);
		}
	}
	fd_release_fd(fd);
	PASS(recvmmsg, fd, v, n, flags, timeout);
}

SHIM_EXPORT int sendmmsg(int fd, struct mmsghdr *v, unsigned int n, int flags)
{
	int count;

	STAT_CALL(sendmmsg);
	if (owned_hint(fd)) {
		if (flags & SHIM_MSG_CMSG_COMPAT)
			return to_libc(-EINVAL);
		if (accel_mmsg(fd, false, v, n, flags, NULL, 0, &count))
			return to_libc(count);
	}
	fd_release_fd(fd);
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

	if (!owned_hint(fd_in) || !n || (ssize_t)n < 0 ||
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
	if (!fd_io_recv(fd_in, &iov, 1, MSG_PEEK, &got) || got == -EAGAIN)
		return NOT_HELD;
	if (got <= 0)
		return got;
	iov.iov_len = got;
	wrote = vmsplice(fd_out, &iov, 1, flags & SPLICE_F_NONBLOCK);
	if (wrote < 0)
		return -errno;
	iov.iov_len = wrote;
	fd_io_recv(fd_in, &iov, 1, MSG_TRUNC, &got);
	return wrote;
}

/*
 * sendfile/splice into a socket whose error the ring took: the kernel,
 * which would have answered that error, answers EPIPE and raises SIGPIPE.
 * The call is made with SIGPIPE blocked; on EPIPE the held error is the
 * answer and the signal is taken back, otherwise it is delivered when the
 * mask is restored.
 */
static void pipe_block(sigset_t *old, bool *was)
{
	sigset_t pipe, pend;

	sigemptyset(&pipe);
	sigaddset(&pipe, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe, old);
	*was = !sigpending(&pend) && sigismember(&pend, SIGPIPE);
}

/* ret/err: the call's result and errno. */
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
		if (fd_take_error(fd, &held) && ret < 0 && err == EPIPE)
			err = held;
	}
	pthread_sigmask(SIG_SETMASK, old, NULL);
	errno = err;
	return ret;
}

/* Into a socket holding an error: the call with SIGPIPE blocked. */
#define PIPE_GUARDED(fd, call)						\
	do {								\
		ssize_t ret_;						\
		sigset_t old_;						\
		bool was_;						\
									\
		loop_flush_before_block();				\
		STAT_INC(passthrough);					\
		if (!owned_hint(fd) || !fd_holds_error(fd))		\
			return call;					\
		pipe_block(&old_, &was_);				\
		ret_ = call;						\
		return pipe_unblock(fd, &old_, was_, ret_, errno);	\
	} while (0)

SHIM_EXPORT ssize_t sendfile(int out_fd, int in_fd, off_t *off, size_t n)
{
	ssize_t ret;

	STAT_CALL(sendfile);
	fd_release_fd(out_fd);
	if (!off && (ret = held_out(in_fd, out_fd, n, 0)) != NOT_HELD)
		return to_libc(ret);
	fd_release_fd(in_fd);
	PIPE_GUARDED(out_fd, REAL(sendfile)(out_fd, in_fd, off, n));
}

/* Programs built with _FILE_OFFSET_BITS=64 (nginx) call this name. */
SHIM_EXPORT ssize_t sendfile64(int out_fd, int in_fd, off64_t *off, size_t n)
{
	ssize_t ret;

	STAT_CALL(sendfile64);
	fd_release_fd(out_fd);
	if (!off && (ret = held_out(in_fd, out_fd, n, 0)) != NOT_HELD)
		return to_libc(ret);
	fd_release_fd(in_fd);
	PIPE_GUARDED(out_fd, REAL(sendfile64)(out_fd, in_fd, off, n));
}

SHIM_EXPORT ssize_t splice(int fd_in, off_t *off_in, int fd_out,
			   off_t *off_out, size_t n, unsigned int flags)
{
	ssize_t ret;

	STAT_CALL(splice);
	if (!off_in && !off_out &&
	    (ret = held_out(fd_in, fd_out, n, flags)) != NOT_HELD)
		return to_libc(ret);
	fd_release_fd(fd_in);
	fd_release_fd(fd_out);
	PIPE_GUARDED(fd_out, REAL(splice)(fd_in, off_in, fd_out, off_out, n,
					  flags));
}
