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

#include "internal.h"

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
	} else if (f->state == FD_DRAINING) {
		goto out_real;
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
		    !f->shut_wr && iovcnt <= DIRECT_IOV_MAX)
			*ret = send_direct(f, iov, iovcnt, flags);
		else
			*ret = shim__fd_send(f, iov, iovcnt, flags);
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

static ssize_t to_libc(ssize_t ret)
{
	if (ret < 0) {
		errno = -ret;
		return -1;
	}
	return ret;
}

#define PASS(name, ...)							\
	do {								\
		STAT_INC(passthrough);					\
		return REAL(name)(__VA_ARGS__);				\
	} while (0)

SHIM_EXPORT ssize_t read(int fd, void *buf, size_t n)
{
	struct iovec iov = { buf, n };
	ssize_t ret;

	STAT_CALL(read);
	if (accel_io(fd, IO_RECV, &iov, 1, 0, &ret))
		return to_libc(ret);
	shim__flush_before_block();
	PASS(read, fd, buf, n);
}

SHIM_EXPORT ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen)
{
	struct iovec iov = { buf, n };
	ssize_t ret;

	STAT_CALL(__read_chk);
	if (n <= buflen && accel_io(fd, IO_RECV, &iov, 1, 0, &ret))
		return to_libc(ret);
	shim__flush_before_block();
	PASS(__read_chk, fd, buf, n, buflen);
}

SHIM_EXPORT ssize_t write(int fd, const void *buf, size_t n)
{
	struct iovec iov = { (void *)buf, n };
	ssize_t ret;

	STAT_CALL(write);
	if (accel_io(fd, IO_SEND, &iov, 1, 0, &ret))
		return to_libc(ret);
	shim__flush_before_block();
	PASS(write, fd, buf, n);
}

SHIM_EXPORT ssize_t readv(int fd, const struct iovec *iov, int iovcnt)
{
	ssize_t ret;

	STAT_CALL(readv);
	if (iovcnt >= 0 && iovcnt <= IOV_MAX &&
	    accel_io(fd, IO_RECV, iov, iovcnt, 0, &ret))
		return to_libc(ret);
	shim__flush_before_block();
	PASS(readv, fd, iov, iovcnt);
}

SHIM_EXPORT ssize_t writev(int fd, const struct iovec *iov, int iovcnt)
{
	ssize_t ret;

	STAT_CALL(writev);
	if (iovcnt >= 0 && iovcnt <= IOV_MAX &&
	    accel_io(fd, IO_SEND, iov, iovcnt, 0, &ret))
		return to_libc(ret);
	shim__flush_before_block();
	PASS(writev, fd, iov, iovcnt);
}

SHIM_EXPORT ssize_t recv(int fd, void *buf, size_t n, int flags)
{
	struct iovec iov = { buf, n };
	ssize_t ret;

	STAT_CALL(recv);
	if (accel_io(fd, IO_RECV, &iov, 1, flags, &ret))
		return to_libc(ret);
	shim__flush_before_block();
	PASS(recv, fd, buf, n, flags);
}

SHIM_EXPORT ssize_t __recv_chk(int fd, void *buf, size_t n, size_t buflen,
			       int flags)
{
	struct iovec iov = { buf, n };
	ssize_t ret;

	STAT_CALL(__recv_chk);
	if (n <= buflen && accel_io(fd, IO_RECV, &iov, 1, flags, &ret))
		return to_libc(ret);
	shim__flush_before_block();
	PASS(__recv_chk, fd, buf, n, buflen, flags);
}

SHIM_EXPORT ssize_t send(int fd, const void *buf, size_t n, int flags)
{
	struct iovec iov = { (void *)buf, n };
	ssize_t ret;

	STAT_CALL(send);
	if (accel_io(fd, IO_SEND, &iov, 1, flags, &ret))
		return to_libc(ret);
	shim__flush_before_block();
	PASS(send, fd, buf, n, flags);
}

SHIM_EXPORT ssize_t recvfrom(int fd, void *buf, size_t n, int flags,
			     struct sockaddr *addr, socklen_t *alen)
{
	struct iovec iov = { buf, n };
	ssize_t ret;

	STAT_CALL(recvfrom);
	if (accel_io(fd, IO_RECV, &iov, 1, flags, &ret)) {
		/* Connected TCP reports no source address. */
		if (ret >= 0 && addr && alen)
			*alen = 0;
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
	if (n <= buflen && fd_lookup_racy(fd))
		return recvfrom(fd, buf, n, flags, addr, alen);
	shim__flush_before_block();
	PASS(__recvfrom_chk, fd, buf, n, buflen, flags, addr, alen);
}

SHIM_EXPORT ssize_t sendto(int fd, const void *buf, size_t n, int flags,
			   const struct sockaddr *addr, socklen_t alen)
{
	struct iovec iov = { (void *)buf, n };
	ssize_t ret;

	STAT_CALL(sendto);
	if (!addr && accel_io(fd, IO_SEND, &iov, 1, flags, &ret))
		return to_libc(ret);
	release_fd(fd);
	shim__flush_before_block();
	PASS(sendto, fd, buf, n, flags, addr, alen);
}

SHIM_EXPORT ssize_t recvmsg(int fd, struct msghdr *msg, int flags)
{
	ssize_t ret;

	STAT_CALL(recvmsg);
	if (msg && !msg->msg_controllen && msg->msg_iovlen <= IOV_MAX &&
	    accel_io(fd, IO_RECV, msg->msg_iov, msg->msg_iovlen, flags,
		     &ret)) {
		if (ret >= 0) {
			msg->msg_namelen = 0;
			msg->msg_flags = 0;
		}
		return to_libc(ret);
	}
	if (msg && msg->msg_controllen)
		release_fd(fd);
	shim__flush_before_block();
	PASS(recvmsg, fd, msg, flags);
}

SHIM_EXPORT ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
	ssize_t ret;

	STAT_CALL(sendmsg);
	if (msg && !msg->msg_controllen && !msg->msg_name &&
	    msg->msg_iovlen <= IOV_MAX &&
	    accel_io(fd, IO_SEND, msg->msg_iov, msg->msg_iovlen, flags, &ret))
		return to_libc(ret);
	release_fd(fd);
	shim__flush_before_block();
	PASS(sendmsg, fd, msg, flags);
}

/*
 * mmsg on an accelerated socket: message after message through the same
 * path as recvmsg/sendmsg, stopping at the first that cannot go.  Returns
 * the count, or -1 with the first message's errno.  false: not ours.
 */
static bool accel_mmsg(int fd, int dir, struct mmsghdr *v, unsigned int n,
		       int flags, int *count)
{
	unsigned int i;
	ssize_t ret = 0;

	*count = 0;
	for (i = 0; i < n; i++) {
		struct msghdr *m = &v[i].msg_hdr;

		if (m->msg_controllen || m->msg_iovlen > IOV_MAX ||
		    (dir == IO_SEND && m->msg_name) ||
		    !accel_io(fd, dir, m->msg_iov, m->msg_iovlen,
			      flags & ~MSG_WAITFORONE, &ret))
			return i > 0;
		if (ret < 0)
			break;
		v[i].msg_len = ret;
		if (dir == IO_RECV) {
			m->msg_namelen = 0;
			m->msg_flags = 0;
		}
		(*count)++;
		if (dir == IO_RECV && ret == 0)
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
	if (v && n && accel_mmsg(fd, IO_RECV, v, n, flags, &count))
		return count;
	release_fd(fd);
	shim__flush_before_block();
	PASS(recvmmsg, fd, v, n, flags, timeout);
}

SHIM_EXPORT int sendmmsg(int fd, struct mmsghdr *v, unsigned int n, int flags)
{
	int count;

	STAT_CALL(sendmmsg);
	if (v && n && accel_mmsg(fd, IO_SEND, v, n, flags, &count))
		return count;
	release_fd(fd);
	shim__flush_before_block();
	PASS(sendmmsg, fd, v, n, flags);
}

SHIM_EXPORT ssize_t sendfile(int out_fd, int in_fd, off_t *off, size_t n)
{
	STAT_CALL(sendfile);
	release_fd(out_fd);
	release_fd(in_fd);
	shim__flush_before_block();
	PASS(sendfile, out_fd, in_fd, off, n);
}

/* Programs built with _FILE_OFFSET_BITS=64 (nginx) call this name. */
SHIM_EXPORT ssize_t sendfile64(int out_fd, int in_fd, off64_t *off, size_t n)
{
	STAT_CALL(sendfile64);
	release_fd(out_fd);
	release_fd(in_fd);
	shim__flush_before_block();
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

	if (likely(!fd_lookup_racy(fd_in)) || shim__depth || !n)
		return -2;
	iov.iov_base = chunk;
	iov.iov_len = n < sizeof(chunk) ? n : sizeof(chunk);
	if (!accel_io(fd_in, IO_RECV, &iov, 1, MSG_PEEK, &got) || got <= 0)
		return -2;
	wrote = REAL(write)(fd_out, chunk, got);
	if (wrote > 0) {
		iov.iov_len = wrote;
		accel_io(fd_in, IO_RECV, &iov, 1, MSG_TRUNC, &got);
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
	release_fd(fd_in);
	release_fd(fd_out);
	shim__flush_before_block();
	PASS(splice, fd_in, off_in, fd_out, off_out, n, flags);
}
