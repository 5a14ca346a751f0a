/*
 * crash_flush - what arrives of writes that returned success when the
 * writer dies of a fatal signal before its next wait point.
 *
 * Usage: crash_flush MODE.  A forked child registers its end of a TCP
 * pair in an epoll set and waits once (so the shim accelerates it),
 * writes, then dies the way MODE says:
 *
 *   abort      abort(), as a failed assert does
 *   segv       a store through a NULL pointer
 *   bus        a read of a mapped page past the end of its file
 *   fpe        an integer division by zero
 *   ill        an undefined instruction
 *   handler    SIGSEGV with a handler the app installs after the socket
 *              is accelerated: it checks that sigaction() shows it, sets
 *              SIG_DFL and returns, so the fault repeats and kills
 *   reraise    abort() with a handler that logs, sets SIG_DFL and raises
 *   resethand  SIGSEGV with an SA_RESETHAND handler that just returns
 *   exit       SIGSEGV with a handler that calls _exit(42)
 *   recover    a SIGSEGV handler that siglongjmps out of a fault the
 *              child survives (before it writes), then abort()
 *   full       the child writes until EAGAIN (the shim then has a ring
 *              send waiting for room and bytes queued behind it) and
 *              aborts; the parent starts reading only 300 ms later
 *   thread     as full, but a second thread dereferences NULL while the
 *              loop thread is blocked on a mutex that thread holds (its
 *              ring's completions are never reaped)
 *   stuck      as full, but the parent reads nothing until the child is
 *              dead: the flush must give up (bounded) rather than hang
 *
 * Every byte is a position-dependent pattern, so loss, reordering or
 * duplication shows.  The parent lets the child crash only once it has
 * written, reads to EOF and prints how the child ended and what arrived.
 * With URINGSHIM_STATS_DIR set it first reads the child's stats file and
 * says on stderr whether the socket was accelerated (stderr: the plain
 * run has no such file, and transcripts must match).  Exit 0 when every
 * written byte arrived and the child ended as MODE expects, 1 when bytes
 * were lost or damaged, 2 when the child ended otherwise.
 */
#include "conform.h"
#include "../../shim/stats.h"

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define WRITES		64
#define CHUNK		100
#define SEED		0xc4a5
#define WAIT_GO_MS	20000

/* Shared with the child (atomics): the child says when it has written. */
struct handshake {
	int written;		/* child: sent is final */
	uint64_t sent;		/* bytes the child's writes accepted */
	int go;			/* parent: crash now */
};

static struct handshake *hs;
static int report_fd = -1;	/* the app's handler reports here */
static pthread_mutex_t hold = PTHREAD_MUTEX_INITIALIZER;
static int held;		/* the crasher thread holds hold */

/*
 * Sanitizer builds: their own fatal-signal handlers would end the child
 * with a report and exit(1); what is under test is the kernel's default.
 */
#define NO_SAN_HANDLERS "handle_segv=0:handle_sigbus=0:handle_sigfpe=0:" \
			"handle_sigill=0:handle_abort=0"
__attribute__((used, visibility("default")))
const char *__asan_default_options(void)
{
	return NO_SAN_HANDLERS;
}

__attribute__((used, visibility("default")))
const char *__tsan_default_options(void)
{
	return NO_SAN_HANDLERS;
}

static void sleep_ms(int ms)
{
	nanosleep(&(struct timespec){ ms / 1000, (ms % 1000) * 1000000L },
		  NULL);
}

/* Spin (no interposed call: no flush point) until *flag is set. */
static bool wait_flag(int *flag)
{
	for (int i = 0; i < WAIT_GO_MS && !__atomic_load_n(flag,
							   __ATOMIC_ACQUIRE);
	     i++)
		sleep_ms(1);
	return __atomic_load_n(flag, __ATOMIC_ACQUIRE);
}

static void set_flag(int *flag)
{
	__atomic_store_n(flag, 1, __ATOMIC_RELEASE);
}

/*
 * A raw write: the shim's write() wrapper would push its queues first
 * (a flush point), hiding the very loss under test.
 */
static void report(char c)
{
	if (syscall(SYS_write, report_fd, &c, 1) != 1)
		_exit(5);
}

/* ---- the crashes (UBSan would stop them first: the CPU must) ---- */

#define NO_UBSAN __attribute__((no_sanitize("undefined")))

NO_UBSAN static void crash_segv(void)
{
	volatile int *volatile p = NULL;

	*p = 1;
}

static void crash_bus(void)
{
	int fd = memfd_create("crash_flush", 0);
	volatile char *p;

	if (fd < 0)
		_exit(4);
	p = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		_exit(4);
	(void)p[0];		/* the file is empty: SIGBUS */
}

NO_UBSAN static void crash_fpe(void)
{
	volatile int one = 1, zero = 0;
	volatile int x = one / zero;

	(void)x;
}

static void crash_ill(void)
{
	__builtin_trap();
}

/* ---- the application's handlers ---- */

static void on_segv_dfl(int sig, siginfo_t *si, void *uc)
{
	struct sigaction cur;

	(void)si;
	(void)uc;
	sigaction(sig, NULL, &cur);
	report((cur.sa_flags & SA_SIGINFO) && cur.sa_sigaction == on_segv_dfl ?
	       'H' : 'h');
	signal(sig, SIG_DFL);
}

static void on_abrt_reraise(int sig)
{
	report('H');
	signal(sig, SIG_DFL);
	raise(sig);
}

static void on_segv_return(int sig)
{
	struct sigaction cur;

	sigaction(sig, NULL, &cur);
	/* SA_RESETHAND: the action is already the default in here. */
	report(cur.sa_handler == SIG_DFL ? 'H' : 'h');
}

static sigjmp_buf recover_jmp;

static void on_segv_recover(int sig)
{
	(void)sig;
	report('H');
	siglongjmp(recover_jmp, 1);
}

/* A fault the handler takes the child out of. */
__attribute__((noinline)) static void survive_fault(void)
{
	if (!sigsetjmp(recover_jmp, 1))
		crash_segv();
}

static void on_segv_exit(int sig)
{
	(void)sig;
	report('H');
	_exit(42);
}

static void install(int sig, void (*fn)(int), int flags)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = fn;
	sa.sa_flags = flags;
	sigemptyset(&sa.sa_mask);
	if (sigaction(sig, &sa, NULL))
		_exit(4);
}

/* ---- the child ---- */

static bool fills(const char *mode)
{
	return !strcmp(mode, "full") || !strcmp(mode, "thread") ||
	       !strcmp(mode, "stuck");
}

static void *crasher(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&hold);
	set_flag(&held);
	if (!wait_flag(&hs->go))
		_exit(3);
	sleep_ms(50);	/* the loop thread is blocked on hold by now */
	crash_segv();
	return NULL;
}

static void child(int fd, const char *mode)
{
	struct epoll_event ev;
	char buf[CHUNK];
	uint64_t sent = 0;
	int epfd = epoll_new();
	pthread_t t;

	epoll_add(epfd, fd, EPOLLIN, 1);
	epoll_wait(epfd, &ev, 1, 0);
	if (!strcmp(mode, "thread") &&
	    (pthread_create(&t, NULL, crasher, NULL) || !wait_flag(&held)))
		_exit(4);
	if (!strcmp(mode, "handler")) {
		struct sigaction sa;

		memset(&sa, 0, sizeof(sa));
		sa.sa_sigaction = on_segv_dfl;
		sa.sa_flags = SA_SIGINFO;
		sigemptyset(&sa.sa_mask);
		if (sigaction(SIGSEGV, &sa, NULL))
			_exit(4);
	} else if (!strcmp(mode, "reraise")) {
		install(SIGABRT, on_abrt_reraise, 0);
	} else if (!strcmp(mode, "resethand")) {
		install(SIGSEGV, on_segv_return, SA_RESETHAND);
	} else if (!strcmp(mode, "exit")) {
		install(SIGSEGV, on_segv_exit, 0);
	} else if (!strcmp(mode, "recover")) {
		install(SIGSEGV, on_segv_recover, 0);
		survive_fault();
	}
	if (fills(mode)) {
		sent = fill_until_eagain(fd, SEED);
	} else {
		for (int i = 0; i < WRITES; i++) {
			pattern_fill(buf, sizeof(buf), SEED, sent);
			if (write(fd, buf, sizeof(buf)) != sizeof(buf))
				_exit(2);
			sent += sizeof(buf);
		}
	}
	hs->sent = sent;
	set_flag(&hs->written);
	if (!strcmp(mode, "thread")) {
		pthread_mutex_lock(&hold);	/* the crasher holds it */
		_exit(3);
	}
	if (!wait_flag(&hs->go))
		_exit(3);
	if (!strcmp(mode, "abort") || !strcmp(mode, "reraise") ||
	    !strcmp(mode, "recover") || fills(mode))
		abort();
	else if (!strcmp(mode, "bus"))
		crash_bus();
	else if (!strcmp(mode, "fpe"))
		crash_fpe();
	else if (!strcmp(mode, "ill"))
		crash_ill();
	else
		crash_segv();
	_exit(3);
}

/* ---- the parent ---- */

/* stderr: was the child's socket accelerated, with batched sends? */
static void child_stats(pid_t pid)
{
	const char *dir = getenv("URINGSHIM_STATS_DIR");
	struct shim_stats_file s;
	char path[512];
	int fd;

	if (!dir)
		return;
	snprintf(path, sizeof(path), "%s/uringshim.%d", dir, (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || read(fd, &s, sizeof(s)) != sizeof(s) ||
	    s.magic != SHIM_STATS_MAGIC) {
		fprintf(stderr, "crash_flush: no stats for child %d\n",
			(int)pid);
	} else {
		fprintf(stderr, "crash_flush: child accel_now %lld "
			"send_batch %d\n", (long long)s.accel_now,
			!!(s.features & SHIM_FEAT_SEND_BATCH));
	}
	if (fd >= 0)
		close(fd);
}

/* Read to EOF; returns the bytes that match the pattern in order. */
static uint64_t drain(int fd, bool *damaged)
{
	static char buf[64 * 1024];
	uint64_t got = 0;

	*damaged = false;
	for (;;) {
		ssize_t n;

		if (!wait_fd_ms(fd, POLLIN, 10000))
			break;
		n = read(fd, buf, sizeof(buf));
		if (n <= 0)
			break;
		if (pattern_check(buf, n, SEED, got) != (size_t)n)
			*damaged = true;
		got += n;
	}
	return got;
}

static const char *sig_name(int sig)
{
	switch (sig) {
	case SIGSEGV: return "SEGV";
	case SIGBUS: return "BUS";
	case SIGFPE: return "FPE";
	case SIGILL: return "ILL";
	case SIGABRT: return "ABRT";
	default: return "other";
	}
}

static int expected_sig(const char *mode)
{
	if (!strcmp(mode, "bus"))
		return SIGBUS;
	if (!strcmp(mode, "fpe"))
		return SIGFPE;
	if (!strcmp(mode, "ill"))
		return SIGILL;
	if (!strcmp(mode, "abort") || !strcmp(mode, "reraise") ||
	    !strcmp(mode, "recover") || !strcmp(mode, "full") ||
	    !strcmp(mode, "stuck"))
		return SIGABRT;
	return SIGSEGV;
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "abort";
	const char *core_dir = getenv("CRASH_CORE_DIR");
	int client, server, status, pipefd[2];
	bool damaged, ended_ok;
	uint64_t received = 0;
	char marks[8];
	ssize_t nmarks;
	pid_t pid;

	hs = mmap(NULL, sizeof(*hs), PROT_READ | PROT_WRITE,
		  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (hs == MAP_FAILED || pipe2(pipefd, O_CLOEXEC))
		die_errno("setup");
	tcp_pair(AF_INET, &client, &server);
	pid = fork_flushed();
	if (!pid) {
		struct rlimit core = { 0, 0 };

		close(pipefd[0]);
		report_fd = pipefd[1];
		if (core_dir) {
			/* The hard limit of the test's shell, if it allows. */
			getrlimit(RLIMIT_CORE, &core);
			core.rlim_cur = core.rlim_max;
			if (chdir(core_dir))
				_exit(4);
		}
		setrlimit(RLIMIT_CORE, &core);
		close(client);
		child(server, mode);
	}
	close(server);
	close(pipefd[1]);
	if (!wait_flag(&hs->written)) {
		printf("child never wrote\n");
		kill(pid, SIGKILL);
		return 2;
	}
	child_stats(pid);
	set_flag(&hs->go);
	/* Let the crash find the ring send still waiting for room. */
	if (!strcmp(mode, "full") || !strcmp(mode, "thread"))
		sleep_ms(300);
	if (!strcmp(mode, "stuck") && waitpid(pid, &status, 0) != pid)
		die_errno("waitpid");
	received = drain(client, &damaged);
	if (strcmp(mode, "stuck") && waitpid(pid, &status, 0) != pid)
		die_errno("waitpid");
	nmarks = read(pipefd[0], marks, sizeof(marks));

	if (WIFSIGNALED(status)) {
		printf("child: signal %s core %s\n", sig_name(WTERMSIG(status)),
		       WCOREDUMP(status) ? "yes" : "no");
		ended_ok = WTERMSIG(status) == expected_sig(mode) &&
			   strcmp(mode, "exit");
	} else {
		printf("child: exit %d\n", WEXITSTATUS(status));
		ended_ok = !strcmp(mode, "exit") && WEXITSTATUS(status) == 42;
	}
	if (nmarks > 0)
		printf("app handler: %.*s\n", (int)nmarks, marks);
	fprintf(stderr, "crash_flush %s: written %llu received %llu\n", mode,
		(unsigned long long)hs->sent, (unsigned long long)received);
	if (fills(mode))
		printf("every written byte arrived: %s\n",
		       received == hs->sent && !damaged ? "yes" : "no");
	else
		printf("written %llu received %llu%s\n",
		       (unsigned long long)hs->sent,
		       (unsigned long long)received,
		       damaged ? " DAMAGED" : "");
	if (!ended_ok)
		return 2;
	return received == hs->sent && !damaged ? 0 : 1;
}
