/*
 * wrap_fd.c - calls that create, duplicate, close or reconfigure fds, and
 * the process-level flush points (fork, exec, _exit).
 *
 * close/shutdown/dup2/dup3 over an accelerated socket, fork, exec and
 * exit all flush first: a write that returned success is delivered while
 * the process lives.  dup of an accelerated socket and clearing
 * O_NONBLOCK (fcntl or FIONBIO) hand it back to the kernel ("release").
 */
#include <alloca.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>

#include "args.h"

/* Forget what the shim knew about a closed (or replaced) fd number. */
static void forget(int fd)
{
	struct loop *l = shim__loop;

	if (shim__depth || !fdtab_peek(fd))
		return;
	ep_forget_fd(fd);
	if (l && l->ring.pending) {
		/* A closed epfd's poll: cancel it now, not later. */
		loop_lock(l);
		loop_turn(l, 0, NULL, NULL);
		loop_unlock(l);
	}
}

SHIM_EXPORT int close(int fd)
{
	STAT_CALL(close);
	forget(fd);
	STAT_INC(passthrough);
	return REAL(close)(fd);
}

SHIM_EXPORT int shutdown(int fd, int how)
{
	bool handled;
	int ret;

	STAT_CALL(shutdown);
	ret = fd_shutdown(fd, how, &handled);
	if (handled)
		return to_libc(ret);
	STAT_INC(passthrough);
	return REAL(shutdown)(fd, how);
}

/*
 * SO_ERROR of an accelerated socket: the error our ring op consumed,
 * handed over as sock_getsockopt does (length read and checked, the value
 * truncated to it, the length written back).
 */
SHIM_EXPORT int getsockopt(int fd, int level, int name, void *val,
			   socklen_t *len)
{
	int ulen, err;

	STAT_CALL(getsockopt);
	if (likely(!fdtab_fd(fd)) || shim__depth || level != SOL_SOCKET ||
	    name != SO_ERROR || !args_get(&ulen, len, sizeof(ulen)) ||
	    ulen < 0 || !fd_take_error(fd, &err))
		return REAL(getsockopt)(fd, level, name, val, len);
	if (ulen > (int)sizeof(err))
		ulen = sizeof(err);
	if ((ulen && !args_put(val, &err, ulen)) ||
	    !args_put(len, &ulen, sizeof(ulen)))
		return to_libc(-EFAULT);
	return 0;
}

/*
 * SO_PEEK_OFF on an accelerated socket: our buffer honours it too.  The
 * kernel checks the value (and reads it) first.
 */
SHIM_EXPORT int setsockopt(int fd, int level, int name, const void *val,
			   socklen_t len)
{
	int ret, off;

	STAT_CALL(setsockopt);
	ret = REAL(setsockopt)(fd, level, name, val, len);
	if (!ret && level == SOL_SOCKET && name == SO_PEEK_OFF &&
	    fdtab_fd(fd) && !shim__depth && args_get(&off, val, sizeof(off)))
		fd_set_peek_off(fd, off);
	return ret;
}

/* Two numbers for one file: the shim can no longer track it alone. */
static void mark_shared(int fd)
{
	struct fdslot *s = fdtab_peek(fd);

	if (s)
		WR(s->kreg, UINT8_MAX);
}

static void dup_done(int oldfd, int newfd)
{
	mark_shared(oldfd);
	mark_shared(newfd);
	fd_alias_dup(oldfd, newfd);
}

SHIM_EXPORT int dup(int fd)
{
	int ret;

	STAT_CALL(dup);
	fd_release_fd(fd);
	ret = REAL(dup)(fd);
	if (ret >= 0)
		dup_done(fd, ret);
	return ret;
}

/* dup2 and dup3: newfd is closed first, as the kernel does. */
static int dup_over(int oldfd, int newfd, int flags, bool three)
{
	int ret;

	fd_release_fd(oldfd);
	if (oldfd != newfd)
		forget(newfd);
	ret = three ? REAL(dup3)(oldfd, newfd, flags) :
		      REAL(dup2)(oldfd, newfd);
	if (ret >= 0 && oldfd != newfd)
		dup_done(oldfd, newfd);
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
		fd_release_fd(fd);
		ret = real(fd, cmd, larg);
		if (ret >= 0)
			dup_done(fd, ret);
		return ret;
	case F_SETFL:
		if (!(larg & O_NONBLOCK))
			fd_release_fd(fd);
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
 * FIONREAD of an accelerated socket is what it holds; FIONBIO clearing
 * O_NONBLOCK hands it back first.
 */
SHIM_EXPORT int ioctl(int fd, unsigned long req, ...)
{
	va_list ap;
	void *arg;
	int n;

	STAT_CALL(ioctl);
	va_start(ap, req);
	arg = va_arg(ap, void *);
	va_end(ap);
	if (likely(!fdtab_fd(fd)) || shim__depth)
		return REAL(ioctl)(fd, req, arg);
	/* The int behind either is read or written under the guard. */
	if (req == FIONBIO && args_get(&n, arg, sizeof(n)) && !n)
		fd_release_fd(fd);
	if (req == FIONREAD && fd_inq(fd, &n))
		return args_put(arg, &n, sizeof(n)) ? 0 : to_libc(-EFAULT);
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
	loop_flush_before_block();
	STAT_INC(passthrough);
	return REAL(connect)(fd, addr, len);
}

SHIM_EXPORT int accept(int fd, struct sockaddr *addr, socklen_t *len)
{
	STAT_CALL(accept);
	loop_flush_before_block();
	STAT_INC(passthrough);
	return REAL(accept)(fd, addr, len);
}

SHIM_EXPORT int accept4(int fd, struct sockaddr *addr, socklen_t *len,
			int flags)
{
	STAT_CALL(accept4);
	loop_flush_before_block();
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
 * Before exec or _exit: flush only from the loop thread itself; a vfork
 * child shares our memory but is another task and must not touch the
 * ring.
 */
static void flush_for_exit(void)
{
	struct loop *l = shim__loop;

	if (getpid() != shim.pid)
		return;
	if (shim__crash_in_handler()) {
		/* An app's fatal-signal handler exits: no ring machinery. */
		shim__crash_flush();
		return;
	}
	if (l && syscall(SYS_gettid) == l->tid)
		loop_flush_sync(50);
	loop_flush_others();
}

/*
 * Before exec: flush, then take our stats file down, since a new image
 * without the shim would leave it behind.  Returns true when
 * exec_returned must put it back.
 */
static bool exec_begin(void)
{
	flush_for_exit();
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

#define EXEC_WRAP(call)							\
	do {								\
		bool unlinked_ = exec_begin();				\
		return exec_returned(unlinked_, call);			\
	} while (0)

SHIM_EXPORT int execve(const char *path, char *const argv[],
		       char *const envp[])
{
	STAT_CALL(execve);
	EXEC_WRAP(REAL(execve)(path, argv, envp));
}

SHIM_EXPORT int execv(const char *path, char *const argv[])
{
	STAT_CALL(execv);
	EXEC_WRAP(REAL(execv)(path, argv));
}

SHIM_EXPORT int execvp(const char *file, char *const argv[])
{
	STAT_CALL(execvp);
	EXEC_WRAP(REAL(execvp)(file, argv));
}

SHIM_EXPORT int execvpe(const char *file, char *const argv[],
			char *const envp[])
{
	STAT_CALL(execvpe);
	EXEC_WRAP(REAL(execvpe)(file, argv, envp));
}

SHIM_EXPORT int fexecve(int fd, char *const argv[], char *const envp[])
{
	STAT_CALL(fexecve);
	EXEC_WRAP(REAL(fexecve)(fd, argv, envp));
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

/* argv of an execl-style call, on the caller's stack. */
#define EXECL_ARGV(argv, arg, ap)					\
	do {								\
		size_t n_;						\
		va_start(ap, arg);					\
		n_ = execl_count(ap);					\
		argv = alloca((n_ + 1) * sizeof(char *));		\
		execl_fill(argv, n_, arg, ap);				\
	} while (0)

SHIM_EXPORT int execl(const char *path, const char *arg, ...)
{
	char **argv;
	va_list ap;

	STAT_CALL(execl);
	EXECL_ARGV(argv, arg, ap);
	va_end(ap);
	EXEC_WRAP(REAL(execv)(path, argv));
}

SHIM_EXPORT int execlp(const char *file, const char *arg, ...)
{
	char **argv;
	va_list ap;

	STAT_CALL(execlp);
	EXECL_ARGV(argv, arg, ap);
	va_end(ap);
	EXEC_WRAP(REAL(execvp)(file, argv));
}

SHIM_EXPORT int execle(const char *path, const char *arg, ...)
{
	char **argv, **envp;
	va_list ap;

	STAT_CALL(execle);
	EXECL_ARGV(argv, arg, ap);
	envp = va_arg(ap, char **);
	va_end(ap);
	EXEC_WRAP(REAL(execve)(path, argv, envp));
}

SHIM_EXPORT void _exit(int status)
{
	STAT_CALL(_exit);
	flush_for_exit();
	shim__stats_close();
	REAL(_exit)(status);
	__builtin_unreachable();
}

SHIM_EXPORT void _Exit(int status)
{
	STAT_CALL(_Exit);
	flush_for_exit();
	shim__stats_close();
	REAL(_Exit)(status);
	__builtin_unreachable();
}
