/*
 * log.c - the shim's own log, never through stdio.
 *
 * Messages are formatted into a stack buffer and written with real_write,
 * so logging cannot recurse into the wrappers or allocate.  URINGSHIM_LOG
 * is "stderr" or a path: a path is created O_EXCL|O_NOFOLLOW mode 0600, or
 * appended to only when it already is a regular file owned by us, so a
 * planted symlink or someone else's file is never clobbered.
 */
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "base.h"

static int log_fd = -1;

void shim__log_open(const char *spec)
{
	struct stat st;
	int fd;

	if (!spec || !*spec)
		return;
	if (!strcmp(spec, "stderr")) {
		log_fd = STDERR_FILENO;
		return;
	}
	fd = open(spec, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC |
		  O_APPEND, 0600);
	if (fd < 0 && errno == EEXIST) {
		fd = open(spec, O_WRONLY | O_NOFOLLOW | O_CLOEXEC | O_APPEND);
		if (fd >= 0 && (fstat(fd, &st) || !S_ISREG(st.st_mode) ||
				st.st_uid != geteuid())) {
			real_close(fd);
			fd = -1;
			errno = EPERM;
		}
	}
	if (fd < 0) {
		shim__say("uringshim: cannot open log %s (%s): logging off\n",
			  spec, strerror(errno));
		return;
	}
	log_fd = fd;
}

static void write_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = real_write ? real_write(fd, buf, len) : -1;

		if (n <= 0)
			return;
		buf += n;
		len -= n;
	}
}

static void vsay(int fd, const char *fmt, va_list ap)
{
	char buf[512];
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);

	if (n < 0)
		return;
	if ((size_t)n >= sizeof(buf))
		n = sizeof(buf) - 1;
	write_all(fd, buf, n);
}

void shim__log(int level, const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	if (log_fd < 0 || level > shim__cfg.log_level)
		return;
	va_start(ap, fmt);
	vsay(log_fd, fmt, ap);
	va_end(ap);
	errno = saved;
}

/* Always reaches a human: the log when set, else stderr. */
void shim__say(const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	va_start(ap, fmt);
	vsay(log_fd >= 0 ? log_fd : STDERR_FILENO, fmt, ap);
	va_end(ap);
	errno = saved;
}
