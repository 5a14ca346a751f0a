/*
 * wrap_io.c - the data calls: read/write/recv/send families.
 *
 * Each wrapper validates what it must read, then one line of dispatch: a
 * socket the shim owns is served from its received bytes or queued on its
 * send queue with no syscall (fd.c); anything else goes to real_<name>.
 * Calls the shim cannot serve on an accelerated socket (OOB, ancillary
 * data, sendfile, splice, an address) first hand it back to the kernel,
 * so bytes never reorder.
 */
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <sys/sendfile.h>

#include "core.h"

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

/* A served send that failed with EPIPE raises SIGPIPE, as the kernel's. */
static ssize_t sent(ssize_t ret, int flags)
{
	if (ret == -EPIPE && !(flags & MSG_NOSIGNAL)) {
		STAT_INC(shim_syscalls);
		raise(SIGPIPE);
	}
	return to_libc(ret);
}

/* The one receive path of read, recv, recvfrom and the _chk variants. */
static bool recv_one(int fd, void *buf, size_t n, int flags, ssize_t *ret)
{
	struct iovec iov = { buf, n };

	return fd_io_recv(fd, &iov, 1, flags, ret);
}

static bool send_one(int fd, const void *buf, size_t n, int flags,
		     ssize_t *ret)
{
	struct iovec iov = { (void *)buf, n };

	return fd_io_send(fd, &iov, 1, flags, ret);
}

SHIM_EXPORT ssize_t read(int fd, void *buf, size_t n)
{
	ssize_t ret;

	STAT_CALL(read);
	if (recv_one(fd, buf, n, 0, &ret))
		return to_libc(ret);
	PASS(read, fd, buf, n);
}

SHIM_EXPORT ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen)
{
	ssize_t ret;

	STAT_CALL(__read_chk);
	if (n <= buflen && recv_one(fd, buf, n, 0, &ret))
		return to_libc(ret);
	PASS(__read_chk, fd, buf, n, buflen);
}

SHIM_EXPORT ssize_t recv(int fd, void *buf, size_t n, int flags)
{
	ssize_t ret;

	STAT_CALL(recv);
	if (recv_one(fd, buf, n, flags, &ret))
		return to_libc(ret);
	PASS(recv, fd, buf, n, flags);
}

SHIM_EXPORT ssize_t __recv_chk(int fd, void *buf, size_t n, size_t buflen,
			       int flags)
{
	ssize_t ret;

	STAT_CALL(__recv_chk);
	if (n <= buflen && recv_one(fd, buf, n, flags, &ret))
		return to_libc(ret);
	PASS(__recv_chk, fd, buf, n, buflen, flags);
}

SHIM_EXPORT ssize_t recvfrom(int fd, void *buf, size_t n, int flags,
			     struct sockaddr *addr, socklen_t *alen)
{
	ssize_t ret;

	STAT_CALL(recvfrom);
	if (recv_one(fd, buf, n, flags, &ret)) {
		/* Connected TCP reports no source address. */
		if (ret >= 0 && addr && alen)
			*alen = 0;
		return to_libc(ret);
	}
	PASS(recvfrom, fd, buf, n, flags, addr, alen);
}

SHIM_EXPORT ssize_t __recvfrom_chk(int fd, void *buf, size_t n, size_t buflen,
				   int flags, struct sockaddr *addr,
				   socklen_t *alen)
{
	STAT_CALL(__recvfrom_chk);
	if (n <= buflen && fdtab_fd(fd))
		return recvfrom(fd, buf, n, flags, addr, alen);
	PASS(__recvfrom_chk, fd, buf, n, buflen, flags, addr, alen);
}

SHIM_EXPORT ssize_t write(int fd, const void *buf, size_t n)
{
	ssize_t ret;

	STAT_CALL(write);
	if (send_one(fd, buf, n, 0, &ret))
		return sent(ret, 0);
	PASS(write, fd, buf, n);
}

SHIM_EXPORT ssize_t send(int fd, const void *buf, size_t n, int flags)
{
	ssize_t ret;

	STAT_CALL(send);
	if (send_one(fd, buf, n, flags, &ret))
		return sent(ret, flags);
	PASS(send, fd, buf, n, flags);
}

SHIM_EXPORT ssize_t sendto(int fd, const void *buf, size_t n, int flags,
			   const struct sockaddr *addr, socklen_t alen)
{
	ssize_t ret;

	STAT_CALL(sendto);
	if (!addr && send_one(fd, buf, n, flags, &ret))
		return sent(ret, flags);
	fd_release_fd(fd);
	PASS(sendto, fd, buf, n, flags, addr, alen);
}

SHIM_EXPORT ssize_t readv(int fd, const struct iovec *iov, int iovcnt)
{
	ssize_t ret;

	STAT_CALL(readv);
	if (iovcnt >= 0 && iovcnt <= IOV_MAX &&
	    fd_io_recv(fd, iov, iovcnt, 0, &ret))
		return to_libc(ret);
	PASS(readv, fd, iov, iovcnt);
}

SHIM_EXPORT ssize_t writev(int fd, const struct iovec *iov, int iovcnt)
{
	ssize_t ret;

	STAT_CALL(writev);
	if (iovcnt >= 0 && iovcnt <= IOV_MAX &&
	    fd_io_send(fd, iov, iovcnt, 0, &ret))
		return sent(ret, 0);
	PASS(writev, fd, iov, iovcnt);
}

SHIM_EXPORT ssize_t recvmsg(int fd, struct msghdr *msg, int flags)
{
	ssize_t ret;

	STAT_CALL(recvmsg);
	if (msg && !msg->msg_controllen && msg->msg_iovlen <= IOV_MAX &&
	    fd_io_recv(fd, msg->msg_iov, msg->msg_iovlen, flags, &ret)) {
		if (ret >= 0) {
			msg->msg_namelen = 0;
			msg->msg_flags = 0;
		}
		return to_libc(ret);
	}
	if (msg && msg->msg_controllen)
		fd_release_fd(fd);
	PASS(recvmsg, fd, msg, flags);
}

SHIM_EXPORT ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
	ssize_t ret;

	STAT_CALL(sendmsg);
	if (msg && !msg->msg_controllen && !msg->msg_name &&
	    msg->msg_iovlen <= IOV_MAX &&
	    fd_io_send(fd, msg->msg_iov, msg->msg_iovlen, flags, &ret))
		return sent(ret, flags);
	fd_release_fd(fd);
	PASS(sendmsg, fd, msg, flags);
}

/*
 * mmsg on an accelerated socket: message after message through the same
 * path as recvmsg/sendmsg, stopping at the first that cannot go.  Returns
 * the count, or -1 with the first message's errno.  false: not ours.
 */
static bool accel_mmsg(int fd, bool rx, struct mmsghdr *v, unsigned int n,
		       int flags, int *count)
{
	unsigned int i;
	ssize_t ret = 0;

	*count = 0;
	for (i = 0; i < n; i++) {
		struct msghdr *m = &v[i].msg_hdr;
		bool ours;

		if (m->msg_controllen || m->msg_iovlen > IOV_MAX ||
		    (!rx && m->msg_name))
			return i > 0;
		ours = rx ? fd_io_recv(fd, m->msg_iov, m->msg_iovlen,
				       flags & ~MSG_WAITFORONE, &ret) :
			    fd_io_send(fd, m->msg_iov, m->msg_iovlen, flags,
				       &ret);
		if (!ours)
			return i > 0;
		if (!rx && ret == -EPIPE)
			sent(ret, flags);	/* SIGPIPE, once per failure */
		if (ret < 0)
			break;
		v[i].msg_len = ret;
		if (rx) {
			m->msg_namelen = 0;
			m->msg_flags = 0;
		}
		(*count)++;
		if (rx && ret == 0)
			break;
	}
	if (!*count && ret < 0) {
		errno = -ret;
		*count = -1;
	}
	return true;
}

SHIM_EXPORT int recvmmsg(int fd, struct mmsghdr *v, unsigned int n, int flags,
			 struct timespec *timeout)
{
	int count;

	STAT_CALL(recvmmsg);
	if (v && n && accel_mmsg(fd, true, v, n, flags, &count))
		return count;
	fd_release_fd(fd);
	PASS(recvmmsg, fd, v, n, flags, timeout);
}

SHIM_EXPORT int sendmmsg(int fd, struct mmsghdr *v, unsigned int n, int flags)
{
	int count;

	STAT_CALL(sendmmsg);
	if (v && n && accel_mmsg(fd, false, v, n, flags, &count))
		return count;
	fd_release_fd(fd);
	PASS(sendmmsg, fd, v, n, flags);
}

SHIM_EXPORT ssize_t sendfile(int out_fd, int in_fd, off_t *off, size_t n)
{
	STAT_CALL(sendfile);
	fd_release_fd(out_fd);
	fd_release_fd(in_fd);
	PASS(sendfile, out_fd, in_fd, off, n);
}

/* Programs built with _FILE_OFFSET_BITS=64 (nginx) call this name. */
SHIM_EXPORT ssize_t sendfile64(int out_fd, int in_fd, off64_t *off, size_t n)
{
	STAT_CALL(sendfile64);
	fd_release_fd(out_fd);
	fd_release_fd(in_fd);
	PASS(sendfile64, out_fd, in_fd, off, n);
}

/*
 * splice out of a socket the shim has pulled bytes from: those bytes
 * first (a short splice is allowed), written from a stack copy so no lock
 * is held across a pipe that may block.  Returns -2 when nothing is held.
 */
static ssize_t splice_held(int fd_in, int fd_out, size_t n)
{
	struct iovec iov;
	char chunk[4096];
	ssize_t got, wrote;

	if (likely(!fdtab_fd(fd_in)) || shim__depth || !n)
		return -2;
	iov.iov_base = chunk;
	iov.iov_len = n < sizeof(chunk) ? n : sizeof(chunk);
	if (!fd_io_recv(fd_in, &iov, 1, MSG_PEEK, &got) || got <= 0)
		return -2;
	wrote = REAL(write)(fd_out, chunk, got);
	if (wrote > 0) {
		iov.iov_len = wrote;
		fd_io_recv(fd_in, &iov, 1, MSG_TRUNC, &got);
	}
	return wrote;
}

SHIM_EXPORT ssize_t splice(int fd_in, off_t *off_in, int fd_out,
			   off_t *off_out, size_t n, unsigned int flags)
{
	ssize_t held;

	STAT_CALL(splice);
	if (!off_out && (held = splice_held(fd_in, fd_out, n)) != -2)
		return held;
	fd_release_fd(fd_in);
	fd_release_fd(fd_out);
	PASS(splice, fd_in, off_in, fd_out, off_out, n, flags);
}
