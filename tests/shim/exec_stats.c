/*
 * exec_stats - the shim's stats file across execs that do not replace
 * this process's image.
 *
 * Run under LD_PRELOAD=liburingshim.so by tests/bats/shim_ops.bats, with
 * URINGSHIM_STATS_DIR set. The shim takes its stats file down just before
 * an exec (a new image without the shim would leave it behind for ever)
 * and must put it back when the exec fails; a vfork child's exec and a
 * posix_spawn share or borrow our memory but are other processes, and must
 * leave our file alone. After each step this program checks that
 * $URINGSHIM_STATS_DIR/uringshim.<pid> exists and prints one line; then it
 * makes DUP_ROUNDS dup calls, so the suite can see that the counters of
 * the restored file are live, and runs uringshim-stat (argv[1]) on itself
 * without the shim, printing its output.
 * Exit 0 when every check passed, 1 otherwise.
 */
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define DUP_ROUNDS 5

extern char **environ;

static char stats_path[4096];
static int failures;

/* Print "<label>: file kept yes|NO" and count a missing file. */
static void check_file(const char *label)
{
	bool kept = access(stats_path, F_OK) == 0;

	printf("%s: file kept %s\n", label, kept ? "yes" : "NO");
	failures += !kept;
}

/* environ without LD_PRELOAD: what a child that skips the shim gets. */
static char **env_without_shim(void)
{
	static char *env[256];
	int i, n = 0;

	for (i = 0; environ[i] && n < 255; i++)
		if (strncmp(environ[i], "LD_PRELOAD=", 11))
			env[n++] = environ[i];
	env[n] = NULL;
	return env;
}

static void wait_child(pid_t pid, const char *label)
{
	int status;

	if (pid < 0 || waitpid(pid, &status, 0) != pid ||
	    !WIFEXITED(status) || WEXITSTATUS(status)) {
		printf("%s: child failed\n", label);
		failures++;
	}
}

/*
 * A vfork child that execs a program without the shim.  Whether the child
 * really shared our memory is printed: sanitizer runtimes (TSan) turn
 * vfork into fork, and then its execve is not counted in our file.
 */
static void vfork_exec(void)
{
	static volatile int child_wrote;
	char *argv[] = { "true", NULL };
	pid_t pid;

	pid = vfork();
	if (pid == 0) {
		child_wrote = 1;
		execve("/bin/true", argv, env_without_shim());
		_exit(127);
	}
	wait_child(pid, "vfork exec");
	printf("vfork shares memory: %s\n", child_wrote ? "yes" : "no");
	check_file("vfork child exec");
}

static void spawn(const char *path, char *const argv[], const char *label)
{
	pid_t pid;
	int err;

	fflush(stdout);
	err = posix_spawn(&pid, path, NULL, NULL, argv, env_without_shim());
	if (err) {
		printf("%s: posix_spawn: %s\n", label, strerror(err));
		failures++;
		return;
	}
	wait_child(pid, label);
}

/* Exec calls that fail: the process lives on and must keep its file. */
static void failed_execs(void)
{
	char *argv[] = { "nothing", NULL };
	int ret;

	errno = 0;
	ret = execve("/nonexistent/exec_stats", argv, environ);
	printf("execve of a missing path: ret=%d %s\n", ret,
	       errno == ENOENT ? "ENOENT" : strerror(errno));
	failures += ret != -1 || errno != ENOENT;
	check_file("failed execve");

	errno = 0;
	ret = execvp("exec-stats-no-such-command", argv);
	printf("execvp of a missing command: ret=%d %s\n", ret,
	       errno == ENOENT ? "ENOENT" : strerror(errno));
	failures += ret != -1 || errno != ENOENT;
	check_file("failed execvp");

	errno = 0;
	ret = execl("/nonexistent/exec_stats", "nothing", (char *)NULL);
	printf("execl of a missing path: ret=%d %s\n", ret,
	       errno == ENOENT ? "ENOENT" : strerror(errno));
	failures += ret != -1 || errno != ENOENT;
	check_file("failed execl");
}

int main(int argc, char **argv)
{
	const char *dir = getenv("URINGSHIM_STATS_DIR");
	char pid_text[16];
	char *stat_argv[] = { argv[1], pid_text, NULL };
	char *true_argv[] = { "true", NULL };
	int i;

	if (argc != 2 || !dir) {
		fprintf(stderr, "usage: URINGSHIM_STATS_DIR=DIR exec_stats "
			"URINGSHIM_STAT\n");
		return 2;
	}
	snprintf(stats_path, sizeof(stats_path), "%s/uringshim.%d", dir,
		 (int)getpid());
	snprintf(pid_text, sizeof(pid_text), "%d", (int)getpid());
	setvbuf(stdout, NULL, _IOLBF, 0);
	check_file("start");
	vfork_exec();
	spawn("/bin/true", true_argv, "posix_spawn");
	check_file("posix_spawn");
	failed_execs();
	for (i = 0; i < DUP_ROUNDS; i++)
		close(dup(1));
	spawn(argv[1], stat_argv, "uringshim-stat");
	printf("%s\n", failures ? "FAIL" : "PASS");
	return failures ? 1 : 0;
}
