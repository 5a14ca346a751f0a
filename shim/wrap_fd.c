/*
 * wrap_fd.c - calls that create, duplicate, close or reconfigure fds, and
 * the process-level flush points (fork, exec, _exit).
 *
 * close/shutdown/dup2/dup3 over an accelerated fd, fork, exec and exit
 * all flush first: a write that returned success is delivered while the
 * process lives.  exec also takes the stats file down (and back up when it
 * fails).  dup of an accelerated fd, clearing O_NONBLOCK (fcntl or
 * FIONBIO) hand the fd back to the kernel ("release").
 */
#include <fcntl.h>
#include <limits.h>
#include <alloca.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>

#include "args.h"

#define REAL(name)	(likely(real_##name) ? real_##name :		\
			 (shim__resolve_real(), real_##name))


/* Forget what the shim knew about a closed (or replaced) fd number. */
static void fd_forget(int fd)
{
	struct shim_ep *ep;
	struct shim_fd *f;
	int i;

	if (fd < 0 || fd >= shim.nfds || !shim.fds)
		return;
	shim__nest_forget(fd);
	WR(shim.kreg[fd], 0);
	f = shim.fds[fd];
	if (f)
		shim__fd_close(f, fd);
	ep = shim.eps[fd];
	if (!ep)
		return;
	WR(shim.eps[fd], NULL);
	/* Closing an epoll fd drops its emulated registrations too. */
	for (i = 0; i < shim.nfds && ep->nemul > 0; i++) {
		struct shim_fd *g = shim.fds[i];
		int r;

		if (!g)
			continue;
		for (r = g->nregs - 1; r >= 0; r--)
			if (g->regs[r].ep == ep)
				shim__reg_unlink(&g->regs[r]);
	}
	if (ep->kpoll) {
		struct shim_loop *l = ep->kpoll;

		ep->dead = true;	/* freed by its poll completion */
		if (shim__on_loop(l)) {
			shim__ring_prep_cancel_ep(l, ep);
		} else {
			ep->dead_next = l->dead_eps;
			l->dead_eps = ep;
			shim__ring_wake(l);
		}
	} else {
		free(ep);
	}
}

/* Lock and forget fd; returns with the lock held. */
static bool forget_locked(int fd)
{
	if (fd < 0 || fd >= shim.nfds || !shim.fds ||
	    (!fd_lookup_racy(fd) && !RD(shim.eps[fd]) && !RD(shim.kreg[fd])))
		return false;
	shim_lock();
	fd_forget(fd);
	return true;
}

SHIM_EXPORT int close(int fd)
{
	STAT_CALL(close);
	if (!shim__depth && forget_locked(fd)) {
		struct shim_loop *l = shim__loop;

		if (l && l->pending_sqes) {
			/* A closed epfd's poll: cancel it now, not later. */
			shim_unlock();
			shim__ring_submit_wait(l, 0, NULL, NULL);
			shim_lock();
			shim__ring_reap(l);
		}
		shim_unlock();
	}
	STAT_INC(passthrough);
	return REAL(close)(fd);
}

SHIM_EXPORT int shutdown(int fd, int how)
{
	struct shim_fd *f;
	int ret;

	STAT_CALL(shutdown);
	if (likely(!fd_lookup_racy(fd)) || shim__depth) {
		STAT_INC(passthrough);
		return REAL(shutdown)(fd, how);
	}
	shim_lock();
	f = shim__fd_get_locked(fd);
	if (!f || f->state != FD_ACCEL) {
		shim_unlock();
		return REAL(shutdown)(fd, how);
	}
	ret = shim__fd_shutdown(f, how);
	shim_unlock();
	if (ret < 0) {
		errno = -ret;
		return -1;
	}
	return 0;
}

/*
 * SO_ERROR of an accelerated socket: the error our ring op consumed,
 * handed over as sock_getsockopt does (length read and checked, the value
 * truncated to it, the length written back).
 */
SHIM_EXPORT int getsockopt(int fd, int level, int name, void *val,
			   socklen_t *len)
{
	struct shim_fd *f;
	int ulen, err = 0;

	STAT_CALL(getsockopt);
	if (likely(!fd_lookup_racy(fd)) || shim__depth ||
	    level != SOL_SOCKET || name != SO_ERROR)
		return REAL(getsockopt)(fd, level, name, val, len);
	if (!shim__uget(&ulen, len, sizeof(ulen)) || ulen < 0)
		return REAL(getsockopt)(fd, level, name, val, len);
	shim_lock();
	f = shim__fd_get_locked(fd);
	if (f && f->state != FD_ORPHAN) {
		err = f->err;
		f->err = 0;
	}
	shim_unlock();
	if (!err)
		return REAL(getsockopt)(fd, level, name, val, len);
	if (ulen > (int)sizeof(err))
		ulen = sizeof(err);
	if ((ulen && !shim__uput(val, &err, ulen)) ||
	    !shim__uput(len, &ulen, sizeof(ulen))) {
		errno = EFAULT;
		return -1;
	}
	return 0;
}

/*
 * SO_PEEK_OFF on an accelerated socket: our buffer honours it too.  The
 * kernel checks the value (and reads it) first.
 */
SHIM_EXPORT int setsockopt(int fd, int level, int name, const void *val,
			   socklen_t len)
{
	struct shim_fd *f;
	int ret, off;

	STAT_CALL(setsockopt);
	ret = REAL(setsockopt)(fd, level, name, val, len);
	if (likely(!fd_lookup_racy(fd)) || shim__depth || ret ||
	    level != SOL_SOCKET || name != SO_PEEK_OFF ||
	    !shim__uget(&off, val, sizeof(off)))
		return ret;
	shim_lock();
	f = shim__fd_get_locked(fd);
	if (f)
		f->peek_off = off < 0 ? -1 : off;
	shim_unlock();
	return 0;
}

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

/* Two numbers for one file: the shim can no longer track it alone. */
static void mark_shared(int fd)
{
	if (fd >= 0 && fd < shim.nfds && shim.kreg)
		WR(shim.kreg[fd], UINT8_MAX);
}

/* A dup of a released fd with held bytes sees those bytes too. */
static void alias_dup(int oldfd, int newfd)
{
	struct shim_fd *f;

	if (likely(!fd_lookup_racy(oldfd)) || shim__depth || newfd < 0)
		return;
	shim_lock();
	f = shim__fd_get_locked(oldfd);
	if (f)
		shim__fd_alias(f, newfd);
	shim_unlock();
}

SHIM_EXPORT int dup(int fd)
{
	int ret;

	STAT_CALL(dup);
	release_fd(fd);
	ret = REAL(dup)(fd);
	if (ret >= 0) {
		mark_shared(fd);
		mark_shared(ret);
		alias_dup(fd, ret);
	}
	return ret;
}

static int dup_over(int oldfd, int newfd, int flags, bool three)
{
	int ret;

	release_fd(oldfd);
	if (oldfd != newfd && !shim__depth && forget_locked(newfd))
		shim_unlock();
	ret = three ? REAL(dup3)(oldfd, newfd, flags) :
		      REAL(dup2)(oldfd, newfd);
	if (ret >= 0 && oldfd != newfd) {
		mark_shared(oldfd);
		mark_shared(newfd);
		alias_dup(oldfd, newfd);
	}
	return ret;
}

SHIM_EXPORT int dup2(int oldfd, int newfd)
{
	STAT_CALL(dup2);
	return dup_over(oldfd, newfd, 0, false);
}

SHIM_EXPORT int dup3(int oldfd, int newfd, int flags)
{
	STAT_CALL(dup3);
	return dup_over(oldfd, newfd, flags, true);
}

static int fcntl_common(int (*real)(int, int, ...), int fd, int cmd,
			va_list ap)
{
	void *arg = va_arg(ap, void *);
	long larg = (long)(intptr_t)arg;
	int ret;

	switch (cmd) {
	case F_DUPFD:
	case F_DUPFD_CLOEXEC:
		release_fd(fd);
		ret = real(fd, cmd, larg);
		if (ret >= 0) {
			mark_shared(fd);
			mark_shared(ret);
			alias_dup(fd, ret);
		}
		return ret;
	case F_SETFL:
		if (!(larg & O_NONBLOCK))
			release_fd(fd);
		return real(fd, cmd, larg);
	default:
		/* Every other command takes an int, a pointer or nothing. */
		return real(fd, cmd, arg);
	}
}

SHIM_EXPORT int fcntl(int fd, int cmd, ...)
{
	va_list ap;
	int ret;

	STAT_CALL(fcntl);
	va_start(ap, cmd);
	ret = fcntl_common(REAL(fcntl), fd, cmd, ap);
	va_end(ap);
	return ret;
}

SHIM_EXPORT int fcntl64(int fd, int cmd, ...)
{
	va_list ap;
	int ret;

	STAT_CALL(fcntl64);
	va_start(ap, cmd);
	ret = fcntl_common(REAL(fcntl64) ? real_fcntl64 : real_fcntl, fd,
			   cmd, ap);
	va_end(ap);
	return ret;
}

/*
 * FIONREAD of an accelerated socket is what its buffer holds; FIONBIO
 * clearing O_NONBLOCK hands it back first.  The int behind either is read
 * or written under the fault guard: a bad one is the kernel's EFAULT.
 */
SHIM_EXPORT int ioctl(int fd, unsigned long req, ...)
{
	struct shim_fd *f;
	va_list ap;
	void *arg;
	int v;

	STAT_CALL(ioctl);
	va_start(ap, req);
	arg = va_arg(ap, void *);
	va_end(ap);
	if (likely(!fd_lookup_racy(fd)) || shim__depth)
		return REAL(ioctl)(fd, req, arg);
	if (req == FIONBIO && shim__uget(&v, arg, sizeof(v)) && !v)
		release_fd(fd);
	if (req == FIONREAD) {
		shim_lock();
		f = shim__fd_get_locked(fd);
		if (f && f->state == FD_ACCEL) {
			v = f->rlen - f->roff;
			shim_unlock();
			if (!shim__uput(arg, &v, sizeof(v))) {
				errno = EFAULT;
				return -1;
			}
			return 0;
		}
		shim_unlock();
	}
	return REAL(ioctl)(fd, req, arg);
}

SHIM_EXPORT int socket(int domain, int type, int protocol)
{
	STAT_CALL(socket);
	STAT_INC(passthrough);
	return REAL(socket)(domain, type, protocol);
}

SHIM_EXPORT int connect(int fd, const struct sockaddr *addr, socklen_t len)
{
	STAT_CALL(connect);
	shim__flush_before_block();
	STAT_INC(passthrough);
	return REAL(connect)(fd, addr, len);
}

SHIM_EXPORT int accept(int fd, struct sockaddr *addr, socklen_t *len)
{
	STAT_CALL(accept);
	shim__flush_before_block();
	STAT_INC(passthrough);
	return REAL(accept)(fd, addr, len);
}

SHIM_EXPORT int accept4(int fd, struct sockaddr *addr, socklen_t *len,
			int flags)
{
	STAT_CALL(accept4);
	shim__flush_before_block();
	STAT_INC(passthrough);
	return REAL(accept4)(fd, addr, len, flags);
}

/* ---- process-level flush points ---- */

SHIM_EXPORT pid_t fork(void)
{
	STAT_CALL(fork);
	/* The pthread_atfork handlers (init.c) flush and drop the ring. */
	return REAL(fork)();
}

/*
 * Before exec: flush only from the loop thread itself; a vfork child
 * shares our memory but is another task and must not touch the ring.
 */
static void flush_for_exec(void)
{
	struct shim_loop *l = shim__loop;

	if (getpid() != shim.pid)
		return;
	if (l && syscall(SYS_gettid) == l->tid)
		shim__flush_all_sync(50);
	shim__flush_others();
}

/*
 * Before exec: flush, then take our stats file down, since a new image
 * without the shim would leave it behind.  Returns true when exec_returned
 * must put it back.
 */
static bool exec_begin(void)
{
	flush_for_exec();
	return shim__stats_exec_begin();
}

/* The exec failed: this image lives on and keeps its stats file. */
static int exec_returned(bool unlinked, int ret)
{
	int err = errno;

	if (unlinked)
		shim__stats_exec_failed();
	errno = err;
	return ret;
}

SHIM_EXPORT int execve(const char *path, char *const argv[],
		       char *const envp[])
{
	bool unlinked;

	STAT_CALL(execve);
	unlinked = exec_begin();
	return exec_returned(unlinked, REAL(execve)(path, argv, envp));
}

SHIM_EXPORT int execv(const char *path, char *const argv[])
{
	bool unlinked;

	STAT_CALL(execv);
	unlinked = exec_begin();
	return exec_returned(unlinked, REAL(execv)(path, argv));
}

SHIM_EXPORT int execvp(const char *file, char *const argv[])
{
	bool unlinked;

	STAT_CALL(execvp);
	unlinked = exec_begin();
	return exec_returned(unlinked, REAL(execvp)(file, argv));
}

SHIM_EXPORT int execvpe(const char *file, char *const argv[],
			char *const envp[])
{
	bool unlinked;

	STAT_CALL(execvpe);
	unlinked = exec_begin();
	return exec_returned(unlinked, REAL(execvpe)(file, argv, envp));
}

SHIM_EXPORT int fexecve(int fd, char *const argv[], char *const envp[])
{
	bool unlinked;

	STAT_CALL(fexecve);
	unlinked = exec_begin();
	return exec_returned(unlinked, REAL(fexecve)(fd, argv, envp));
}

/* Count the arguments of an execl-style list after arg (NULL excluded). */
static size_t execl_count(va_list ap)
{
	size_t n = 1;
	va_list c;

	va_copy(c, ap);
	while (va_arg(c, const char *))
		n++;
	va_end(c);
	return n;
}

/* Fill argv[0..n] (NULL-terminated) from arg and the list. */
static void execl_fill(char **argv, size_t n, const char *arg, va_list ap)
{
	size_t i;

	argv[0] = (char *)arg;
	for (i = 1; i <= n; i++)
		argv[i] = va_arg(ap, char *);
}

SHIM_EXPORT int execl(const char *path, const char *arg, ...)
{
	char **argv;
	bool unlinked;
	va_list ap;
	size_t n;

	STAT_CALL(execl);
	va_start(ap, arg);
	n = execl_count(ap);
	argv = alloca((n + 1) * sizeof(char *));
	execl_fill(argv, n, arg, ap);
	va_end(ap);
	unlinked = exec_begin();
	return exec_returned(unlinked, REAL(execv)(path, argv));
}

SHIM_EXPORT int execlp(const char *file, const char *arg, ...)
{
	char **argv;
	bool unlinked;
	va_list ap;
	size_t n;

	STAT_CALL(execlp);
	va_start(ap, arg);
	n = execl_count(ap);
	argv = alloca((n + 1) * sizeof(char *));
	execl_fill(argv, n, arg, ap);
	va_end(ap);
	unlinked = exec_begin();
	return exec_returned(unlinked, REAL(execvp)(file, argv));
}

SHIM_EXPORT int execle(const char *path, const char *arg, ...)
{
	char **argv, **envp;
	bool unlinked;
	va_list ap;
	size_t n;

	STAT_CALL(execle);
	va_start(ap, arg);
	n = execl_count(ap);
	argv = alloca((n + 1) * sizeof(char *));
	execl_fill(argv, n, arg, ap);
	envp = va_arg(ap, char **);
	va_end(ap);
	unlinked = exec_begin();
	return exec_returned(unlinked, REAL(execve)(path, argv, envp));
}

SHIM_EXPORT void _exit(int status)
{
	STAT_CALL(_exit);
	flush_for_exec();
	shim__stats_close();
	REAL(_exit)(status);
	__builtin_unreachable();
}

SHIM_EXPORT void _Exit(int status)
{
	STAT_CALL(_Exit);
	flush_for_exec();
	shim__stats_close();
	REAL(_Exit)(status);
	__builtin_unreachable();
}
