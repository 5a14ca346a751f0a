/*
 * deny_uring - run a command with io_uring forbidden by seccomp.
 *
 *   deny_uring [--errno EPERM|ENOSYS] -- CMD ARGS...
 *
 * Installs a seccomp filter under which io_uring_setup, io_uring_enter and
 * io_uring_register fail with the given errno (EPERM by default, as a
 * container runtime's profile does; ENOSYS as a kernel built without
 * io_uring does), then execs CMD. The filter is inherited by every child,
 * so the shim's fallback to passthrough can be proven on whole process
 * trees. Exit status: CMD's, or 2 for a usage error, 1 when the filter
 * cannot be installed.
 */
#include <errno.h>
#include <seccomp.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

static const char usage[] =
	"usage: deny_uring [--errno EPERM|ENOSYS] -- CMD ARGS...\n";

static int parse_errno(const char *name)
{
	if (!strcmp(name, "EPERM"))
		return EPERM;
	if (!strcmp(name, "ENOSYS"))
		return ENOSYS;
	return -1;
}

static int deny_io_uring(int err)
{
	static const char *const calls[] = {
		"io_uring_setup", "io_uring_enter", "io_uring_register",
	};
	scmp_filter_ctx ctx;
	int ret = 0;

	ctx = seccomp_init(SCMP_ACT_ALLOW);
	if (!ctx)
		return -ENOMEM;
	for (size_t i = 0; i < sizeof(calls) / sizeof(calls[0]); i++) {
		int nr = seccomp_syscall_resolve_name(calls[i]);

		if (nr == __NR_SCMP_ERROR) {
			ret = -ENOENT;
			goto out_release;
		}
		ret = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(err), nr, 0);
		if (ret < 0)
			goto out_release;
	}
	/* seccomp_load sets no_new_privs itself; exec keeps the filter. */
	ret = seccomp_load(ctx);
out_release:
	seccomp_release(ctx);
	return ret;
}

int main(int argc, char **argv)
{
	int err = EPERM, argi = 1, ret;

	if (argi + 1 < argc && !strcmp(argv[argi], "--errno")) {
		err = parse_errno(argv[argi + 1]);
		if (err < 0) {
			fputs(usage, stderr);
			return 2;
		}
		argi += 2;
	}
	if (argi < argc && !strcmp(argv[argi], "--"))
		argi++;
	if (argi >= argc) {
		fputs(usage, stderr);
		return 2;
	}
	ret = deny_io_uring(err);
	if (ret < 0) {
		fprintf(stderr, "deny_uring: cannot install filter: %s\n",
			strerror(-ret));
		return 1;
	}
	execvp(argv[argi], argv + argi);
	fprintf(stderr, "deny_uring: %s: %s\n", argv[argi], strerror(errno));
	return 127;
}
