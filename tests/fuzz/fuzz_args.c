/*
 * fuzz_args - differential argument fuzzer for every call the shim
 * interposes (shim/syscalls.def).
 *
 * A case is one call with hostile or random arguments: NULL, low,
 * PROT_NONE, kernel-space, read-only, misaligned pointers and buffers that
 * run into a PROT_NONE page; negative, huge, closed, just-reused fds and
 * fds of the wrong kind; counts of 0, -1, INT_MAX and above
 * RLIMIT_NOFILE; structures (iovec, msghdr, mmsghdr, pollfd, fd_set,
 * epoll_event, timespec) holding more of the same.  Each case runs in a
 * fresh child that first builds the same world: a TCP connection whose
 * accepted end is non-blocking and registered in an epoll set, and handed
 * to the ring by a real epoll_wait (under the shim the child checks, from
 * its stats file, that it was accelerated); its peer in one of five
 * states (nothing sent, data, data and FIN, FIN, reset); a listener with a
 * connection pending, UDP, unix, pipe, memfd, eventfd and epoll fds, a
 * closed fd and an accelerated socket's number reused by a pipe.
 *
 * Every case is made once by an executor without the shim and once by an
 * executor under LD_PRELOAD, each case in a fork of it; both print one
 * line per case: the call with its arguments (by role, never by number),
 * then what came back: return value (fd numbers as "fd"), errno, a digest
 * of what the call wrote (received bytes, revents, fd_set bits by role,
 * epoll events as a sorted multiset, msghdr lengths and flags), or the
 * signal that ended the child.  The lines must be identical.
 *
 * Calls that cannot return normally are compared by how the child ends:
 * fork by the grandchild's exit status and what it saw of the accelerated
 * socket, exec* by the exit status of /bin/true or the error, _exit/_Exit
 * by the status.  A blocking call is interrupted by a repeating SIGALRM
 * (no SA_RESTART) and both sides must answer EINTR (or the same result);
 * a child still alive after 10 s is killed and reported as a hang.
 *
 *   fuzz_args                        the bounded pass (`make test`):
 *                                    seed 1, 1200 cases, settings default,
 *                                    adaptive0 and send_sync
 *   fuzz_args --seed S --count N     N cases from seed S
 *   fuzz_args --seconds T            cases until T seconds (`make fuzz`)
 *   fuzz_args --seed S --case I      one case, both lines printed
 *   --settings a,b                   shim settings to compare (default,
 *                                    adaptive0, recv_single, send_sync)
 *
 * Exit 0 when every case matched, 1 on a divergence (each printed with its
 * seed and index, and the command that replays it), 77 when the shim is
 * missing or io_uring is unavailable (passthrough).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/sockios.h>

#include "../../shim/stats.h"

/* ASan and TSan: their interceptors read the caller's structures too. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZER_BUILD 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SANITIZER_BUILD 1
#endif
#endif
#ifndef SANITIZER_BUILD
#define SANITIZER_BUILD 0
#endif
/*
 * TSan keeps every signal handler itself (it delivers signals deferred)
 * and answers sigaction() from its own table: in a TSan build the actions
 * a plain run reads back are TSan's, not the kernel's.
 */
#if defined(__SANITIZE_THREAD__)
#define TSAN_BUILD 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TSAN_BUILD 1
#endif
#endif
#ifndef TSAN_BUILD
#define TSAN_BUILD 0
#endif

/* glibc declares these only under _FORTIFY_SOURCE. */
ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen);
ssize_t __recv_chk(int fd, void *buf, size_t n, size_t buflen, int flags);
ssize_t __recvfrom_chk(int fd, void *buf, size_t n, size_t buflen,
		       int flags, struct sockaddr *addr, socklen_t *alen);
int __poll_chk(struct pollfd *fds, nfds_t n, int timeout, size_t fdslen);

#define PAGE		4096
#define DATA_LEN	(64 * PAGE)	/* buffers */
#define ST_LEN		(32 * PAGE)	/* structures */
#define RO_LEN		(4 * PAGE)
#define PAYLOAD		100		/* bytes the peer sends */
#define HANG_MS		10000
#define INTR_US		40000	/* SIGALRM period during a call */

/* ---- random numbers: splitmix64, one stream per case ---- */

struct rng {
	uint64_t s;
};

static uint64_t rnd(struct rng *r)
{
	uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static unsigned int below(struct rng *r, unsigned int n)
{
	return (unsigned int)(rnd(r) % n);
}

static bool chance(struct rng *r, unsigned int pct)
{
	return below(r, 100) < pct;
}

/* ---- the world a case runs in ---- */

enum role {
	R_ACCEL,	/* accelerated TCP socket */
	R_PEER,		/* its peer, blocking, plain */
	R_LISTEN,	/* listener, one connection pending */
	R_TCP,		/* unconnected TCP socket */
	R_UDP,
	R_UNIX,		/* one end of a unix stream pair */
	R_PIPE_R,
	R_PIPE_W,
	R_FILE,		/* memfd with bytes */
	R_EPFD,		/* the epoll set holding R_ACCEL */
	R_EPFD2,	/* an empty epoll set */
	R_EVENTFD,
	R_REUSED,	/* an accelerated socket's number, now a pipe */
	R_CLOSED,	/* just closed */
	R_NEG1,
	R_NEG2,
	R_INTMIN,
	R_INTMAX,
	R_RLIM,		/* RLIMIT_NOFILE: never valid */
	R_RLIM1,	/* RLIMIT_NOFILE - 1: valid number, closed */
	R_BIG,		/* 1 << 20 */
	R_COUNT
};

static const char *const role_name[R_COUNT] = {
	"ACCEL", "PEER", "LISTEN", "TCP", "UDP", "UNIX", "PIPE_R", "PIPE_W",
	"FILE", "EPFD", "EPFD2", "EVENTFD", "REUSED", "CLOSED", "-1", "-2",
	"INT_MIN", "INT_MAX", "RLIM", "RLIM-1", "1<<20",
};

enum peer_state { PS_EMPTY, PS_DATA, PS_EOF, PS_FIN, PS_RESET, PS_COUNT };
static const char *const ps_name[PS_COUNT] = {
	"empty", "data", "data+fin", "fin", "reset",
};

/* Pointer kinds. */
enum pk {
	PK_VALID, PK_MISALIGNED, PK_EDGE, PK_RO, PK_NULL, PK_LOW, PK_NONE,
	PK_KERNEL, PK_COUNT
};
static const char *const pk_name[PK_COUNT] = {
	"valid", "misaligned", "edge", "ro", "NULL", "low", "prot_none",
	"kernel",
};

#define MAX_REGIONS 8

struct region {
	const void *p;
	size_t len;
};

struct ctx {
	struct rng r;
	unsigned int index;
	int fd[R_COUNT];
	int ps;
	long rlim;
	char *data, *none, *st, *none2, *ro;
	size_t st_used, ro_used;
	bool edge_used;
	struct sockaddr_in listen_addr;
	char desc[900];
	size_t dlen;
	/* the result */
	long long ret;
	int err;
	bool fd_result;
	bool src_bad;		/* a send's source is not all readable */
	uint64_t digest;
	int nregions;
	struct region regions[MAX_REGIONS];
	void (*post)(struct ctx *c);
	const void *post_p;
	size_t post_n;
};

/* What the child reports through shared memory. */
struct record {
	char desc[900];
	char result[200];
	int stage;		/* 1: described, 2: finished */
	int accel_checked;	/* under the shim: 1 accelerated, -1 not */
	char note[160];
};

static struct record *rec;
static bool under_shim;

static void d(struct ctx *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void d(struct ctx *c, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (c->dlen >= sizeof(c->desc) - 1)
		return;
	va_start(ap, fmt);
	n = vsnprintf(c->desc + c->dlen, sizeof(c->desc) - c->dlen, fmt, ap);
	va_end(ap);
	if (n > 0)
		c->dlen += (size_t)n;
	if (c->dlen > sizeof(c->desc) - 1)
		c->dlen = sizeof(c->desc) - 1;
}

static void setup_fail(const char *what)
{
	snprintf(rec->result, sizeof(rec->result), "SETUP FAILED %s: %s",
		 what, strerror(errno));
	rec->stage = 2;
	_exit(0);
}

/* Keep the compiler from reasoning about NULL arguments. */
static void *opaque(void *p)
{
	__asm__ volatile("" : "+r"(p));
	return p;
}

/* ---- digests ---- */

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;

	while (n--)
		h = (h ^ *b++) * 0x100000001b3ULL;
	return h;
}

static void mix(struct ctx *c, uint64_t v)
{
	c->digest = fnv(c->digest, &v, sizeof(v));
}

/* The readable part of [p, p+len) inside the arena, or 0. */
static size_t readable(struct ctx *c, const void *p, size_t len)
{
	const char *q = p;
	const char *lo[3] = { c->data, c->st, c->ro };
	const char *hi[3] = { c->data + DATA_LEN, c->st + ST_LEN,
			      c->ro + RO_LEN };

	for (int i = 0; i < 3; i++)
		if (q >= lo[i] && q < hi[i])
			return len < (size_t)(hi[i] - q) ? len :
			       (size_t)(hi[i] - q);
	return 0;
}

static void out_region(struct ctx *c, const void *p, size_t len)
{
	if (c->nregions < MAX_REGIONS)
		c->regions[c->nregions++] = (struct region){ p, len };
}

/* An fd number as its role, so numbers never enter a transcript. */
static long long fd_sym(struct ctx *c, int fd)
{
	for (int i = 0; i < R_COUNT; i++)
		if (c->fd[i] == fd)
			return 1000000 + i;
	for (int i = 0; i < R_COUNT; i++)
		if (c->fd[i] >= 0 && ~c->fd[i] == fd)
			return 2000000 + i;
	return fd;
}

/* ---- the arena ---- */

static void arena_make(struct ctx *c)
{
	/* data | guard | structures | guard | read-only | guard */
	size_t total = DATA_LEN + PAGE + ST_LEN + PAGE + RO_LEN + PAGE;
	char *a = mmap(NULL, total, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (a == MAP_FAILED)
		setup_fail("mmap");
	c->data = a;
	c->none = a + DATA_LEN;
	c->st = c->none + PAGE;
	c->none2 = c->st + ST_LEN;
	c->ro = c->none2 + PAGE;
	for (size_t i = 0; i < DATA_LEN; i++)
		c->data[i] = (char)('a' + i % 26);
	memset(c->ro, 'r', RO_LEN);
	if (mprotect(c->none, PAGE, PROT_NONE) ||
	    mprotect(c->none2, PAGE, PROT_NONE) ||
	    mprotect(c->ro + RO_LEN, PAGE, PROT_NONE) ||
	    mprotect(c->ro, RO_LEN, PROT_READ))
		setup_fail("mprotect");
}

static void *bad_ptr(struct ctx *c, int kind)
{
	switch (kind) {
	case PK_NULL:
		return opaque(NULL);
	case PK_LOW:
		return opaque((void *)0x1000);
	case PK_NONE:
		return c->none;
	default:
		return opaque((void *)(uintptr_t)-PAGE);
	}
}

static int pick_pk(struct ctx *c)
{
	if (chance(&c->r, 45))
		return PK_VALID;
	return below(&c->r, PK_COUNT);
}

/* A buffer of need bytes of the given kind (data area). */
static void *buf_of(struct ctx *c, int kind, size_t need)
{
	size_t half;

	switch (kind) {
	case PK_VALID:
		return c->data;
	case PK_MISALIGNED:
		return c->data + 1 + below(&c->r, 7);
	case PK_EDGE:
		half = need / 2 < DATA_LEN ? need / 2 : DATA_LEN;
		if (half > 64 && chance(&c->r, 50))
			half = 1 + below(&c->r, 64);
		return c->none - half;
	case PK_RO:
		return c->ro;
	default:
		return bad_ptr(c, kind);
	}
}

static void *pick_buf(struct ctx *c, const char *name, size_t need)
{
	int kind = pick_pk(c);

	d(c, " %s=%s", name, pk_name[kind]);
	return buf_of(c, kind, need);
}

/*
 * Place len bytes of src as a structure of the given kind: in the
 * structure area (valid, misaligned, or running into PROT_NONE), in the
 * read-only area, or not at all (bad pointers).
 */
static void *place(struct ctx *c, int kind, const void *src, size_t len)
{
	char *p;

	if (kind == PK_EDGE && (c->edge_used || len < 2 || len > ST_LEN / 2))
		kind = PK_VALID;
	if (kind == PK_RO && c->ro_used + len > RO_LEN)
		kind = PK_VALID;
	switch (kind) {
	case PK_VALID:
	case PK_MISALIGNED:
		c->st_used = (c->st_used + 15) & ~(size_t)15;
		if (kind == PK_MISALIGNED)
			c->st_used += 1 + below(&c->r, 7);
		if (c->st_used + len > ST_LEN / 2)
			c->st_used = 0;
		p = c->st + c->st_used;
		c->st_used += len;
		memcpy(p, src, len);
		return p;
	case PK_EDGE:
		/* The first half readable, the rest in PROT_NONE. */
		c->edge_used = true;
		p = c->none2 - len / 2;
		memcpy(p, src, len / 2);
		return p;
	case PK_RO:
		p = c->ro + c->ro_used;
		c->ro_used += (len + 15) & ~(size_t)15;
		mprotect(c->ro, RO_LEN, PROT_READ | PROT_WRITE);
		memcpy(p, src, len);
		mprotect(c->ro, RO_LEN, PROT_READ);
		return p;
	default:
		return bad_ptr(c, kind);
	}
}

static void *pick_place(struct ctx *c, const char *name, const void *src,
			size_t len)
{
	int kind = pick_pk(c);

	d(c, " %s=%s", name, pk_name[kind]);
	return place(c, kind, src, len);
}

/* ---- picking values ---- */

static int pick_fd_role(struct ctx *c)
{
	if (chance(&c->r, 35))
		return R_ACCEL;
	return below(&c->r, R_COUNT);
}

static int pick_fd(struct ctx *c, const char *name)
{
	int role = pick_fd_role(c);

	d(c, " %s=%s", name, role_name[role]);
	return c->fd[role];
}

static size_t pick_size(struct ctx *c, const char *name)
{
	static const size_t sizes[] = {
		0, 1, 7, PAYLOAD, 4096, 65536, DATA_LEN, DATA_LEN + 1,
		1UL << 30, (size_t)INT_MAX, (size_t)INT_MAX + 1,
		(size_t)SSIZE_MAX, SIZE_MAX, SIZE_MAX - 4095,
	};
	size_t n;

	if (chance(&c->r, 20))
		n = below(&c->r, 600);
	else
		n = sizes[below(&c->r, sizeof(sizes) / sizeof(sizes[0]))];
	d(c, " %s=%zu", name, n);
	return n;
}

/* An int count: 0, -1, INT_MAX, above RLIMIT_NOFILE, small ones. */
static long long pick_count(struct ctx *c, const char *name, int small_max)
{
	long long v;

	switch (below(&c->r, 12)) {
	case 0: v = 0; break;
	case 1: v = -1; break;
	case 2: v = INT_MAX; break;
	case 3: v = INT_MIN; break;
	case 4: v = c->rlim + 1; break;
	case 5: v = c->rlim; break;
	case 6: v = 1 << 30; break;
	case 7: v = IOV_MAX + 1; break;
	default: v = 1 + below(&c->r, small_max); break;
	}
	d(c, " %s=%lld", name, v);
	return v;
}

static int pick_msg_flags(struct ctx *c, bool recv)
{
	static const int rflags[] = {
		MSG_PEEK, MSG_DONTWAIT, MSG_WAITALL, MSG_TRUNC, MSG_OOB,
		MSG_ERRQUEUE, MSG_CMSG_CLOEXEC, MSG_NOSIGNAL,
	};
	static const int sflags[] = {
		MSG_DONTWAIT, MSG_NOSIGNAL, MSG_MORE, MSG_OOB, MSG_EOR,
		MSG_CONFIRM, MSG_FASTOPEN, MSG_ZEROCOPY,
	};
	const int *set = recv ? rflags : sflags;
	int f = 0;

	if (chance(&c->r, 10)) {
		f = (int)rnd(&c->r);
	} else {
		for (int i = 0; i < 8; i++)
			if (chance(&c->r, 15))
				f |= set[i];
	}
	/* A blocking peer stays blocked: never block on EOF-less waits. */
	d(c, " flags=%#x", (unsigned int)f);
	return f;
}

/* The description reaches the record before a call that may kill. */
static void publish_desc(const struct ctx *c)
{
	memcpy(rec->desc, c->desc, sizeof(rec->desc));
	if (rec->stage < 1)
		rec->stage = 1;
}

/* ---- the timer that interrupts blocking calls ---- */

static void on_alarm(int sig)
{
	(void)sig;
}

static void arm(void)
{
	struct itimerval it = { { 0, INTR_US }, { 0, INTR_US } };

	setitimer(ITIMER_REAL, &it, NULL);
}

static void disarm(void)
{
	struct itimerval it = { { 0, 0 }, { 0, 0 } };

	setitimer(ITIMER_REAL, &it, NULL);
}

#define CALL(expr)							\
	do {								\
		long long r_;						\
		publish_desc(c);					\
		arm();							\
		errno = 0;						\
		r_ = (long long)(expr);					\
		c->err = errno;						\
		disarm();						\
		c->ret = r_;						\
		if (r_ >= 0)						\
			c->err = 0;					\
	} while (0)

/* ---- building the world ---- */

static int wait_cond(struct ctx *c, uint32_t need_ev, int need_bytes)
{
	struct epoll_event ev[8];
	uint32_t seen = 0;
	int avail = -1;

	for (int tries = 0; tries < 100; tries++) {
		int n = epoll_wait(c->fd[R_EPFD], ev, 8, tries ? 10 : 0);

		for (int i = 0; i < n; i++)
			if (ev[i].data.u64 == R_ACCEL)
				seen |= ev[i].events;
		if (ioctl(c->fd[R_ACCEL], FIONREAD, &avail))
			avail = -1;
		if ((seen & need_ev) == need_ev && avail == need_bytes)
			return 0;
	}
	return -1;
}

/* Is this child's socket really in the shim's hands? (stats file) */
static int accel_check(void)
{
	const char *dir = getenv("URINGSHIM_STATS_DIR");
	struct shim_stats_file *s;
	char path[PATH_MAX];
	int fd, ok;

	snprintf(path, sizeof(path), "%s/uringshim.%d",
		 dir ? dir : "/dev/shm", (int)getpid());
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(rec->note, sizeof(rec->note), "no stats file %.100s",
			 path);
		return -1;
	}
	s = mmap(NULL, sizeof(*s), PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	if (s == MAP_FAILED)
		return -1;
	ok = s->state == SHIM_STATE_ACTIVE && s->accel_now >= 2;
	if (!ok)
		snprintf(rec->note, sizeof(rec->note),
			 "state %u accel_now %lld: %s", s->state,
			 (long long)s->accel_now, s->reason);
	if (s->state == SHIM_STATE_PASSTHROUGH)
		ok = -2;
	munmap(s, sizeof(*s));
	return ok == 1 ? 1 : ok == -2 ? -2 : -1;
}

/*
 * Every TCP socket resets instead of lingering in TIME_WAIT when the
 * child exits: thousands of cases would use up the ephemeral ports.
 */
static void no_time_wait(int fd)
{
	struct linger hard = { 1, 0 };

	setsockopt(fd, SOL_SOCKET, SO_LINGER, &hard, sizeof(hard));
}

static int tcp_connect_to(struct ctx *c)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || connect(fd, (struct sockaddr *)&c->listen_addr,
			      sizeof(c->listen_addr)))
		setup_fail("connect");
	no_time_wait(fd);
	return fd;
}

static void world_make(struct ctx *c)
{
	struct epoll_event ev;
	socklen_t len = sizeof(c->listen_addr);
	struct rlimit rl;
	int sv[2], p[2], conn2, peer2, lst, one = 1;
	struct linger hard = { 1, 0 };

	for (int i = 0; i < R_COUNT; i++)
		c->fd[i] = -1;
	getrlimit(RLIMIT_NOFILE, &rl);
	c->rlim = rl.rlim_cur > INT_MAX ? INT_MAX : (long)rl.rlim_cur;
	arena_make(c);

	/* Every fd the shim never owns first, so numbers match plainly. */
	lst = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	c->listen_addr.sin_family = AF_INET;
	c->listen_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (lst < 0 || bind(lst, (struct sockaddr *)&c->listen_addr,
			    sizeof(c->listen_addr)) || listen(lst, 8) ||
	    getsockname(lst, (struct sockaddr *)&c->listen_addr, &len))
		setup_fail("listener");
	c->fd[R_LISTEN] = lst;
	c->fd[R_PEER] = tcp_connect_to(c);
	setsockopt(c->fd[R_PEER], IPPROTO_TCP, TCP_NODELAY, &one,
		   sizeof(one));
	c->fd[R_ACCEL] = accept4(lst, NULL, NULL, SOCK_NONBLOCK |
				 SOCK_CLOEXEC);
	no_time_wait(c->fd[R_ACCEL]);
	peer2 = tcp_connect_to(c);
	conn2 = accept4(lst, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	no_time_wait(conn2);
	/* Left pending: accept finds it. */
	tcp_connect_to(c);
	if (c->fd[R_ACCEL] < 0 || conn2 < 0)
		setup_fail("accept4");
	c->fd[R_TCP] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	c->fd[R_UDP] = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv))
		setup_fail("socketpair");
	c->fd[R_UNIX] = sv[0];
	write(sv[1], "unix", 4);
	if (pipe2(p, O_NONBLOCK))
		setup_fail("pipe");
	c->fd[R_PIPE_R] = p[0];
	c->fd[R_PIPE_W] = p[1];
	write(p[1], "pipe", 4);
	c->fd[R_FILE] = memfd_create("fuzz_args", MFD_CLOEXEC);
	write(c->fd[R_FILE], c->data, 8192);
	lseek(c->fd[R_FILE], 0, SEEK_SET);
	c->fd[R_EVENTFD] = eventfd(1, EFD_NONBLOCK);
	c->fd[R_EPFD2] = epoll_create1(EPOLL_CLOEXEC);
	c->fd[R_EPFD] = epoll_create1(EPOLL_CLOEXEC);

	/* The sockets the shim takes, handed to its ring by a real wait. */
	ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP;
	ev.data.u64 = R_ACCEL;
	if (epoll_ctl(c->fd[R_EPFD], EPOLL_CTL_ADD, c->fd[R_ACCEL], &ev))
		setup_fail("epoll_ctl");
	ev.data.u64 = R_REUSED;
	if (epoll_ctl(c->fd[R_EPFD], EPOLL_CTL_ADD, conn2, &ev))
		setup_fail("epoll_ctl 2");
	c->ps = below(&c->r, PS_COUNT);
	switch (c->ps) {
	case PS_DATA:
	case PS_EOF:
		if (write(c->fd[R_PEER], c->data, PAYLOAD) != PAYLOAD)
			setup_fail("peer write");
		if (c->ps == PS_EOF)
			shutdown(c->fd[R_PEER], SHUT_WR);
		break;
	case PS_FIN:
		shutdown(c->fd[R_PEER], SHUT_WR);
		break;
	case PS_RESET:
		setsockopt(c->fd[R_PEER], SOL_SOCKET, SO_LINGER, &hard,
			   sizeof(hard));
		close(c->fd[R_PEER]);
		c->fd[R_PEER] = socket(AF_INET, SOCK_STREAM, 0);
		break;
	}
	if (wait_cond(c, c->ps == PS_RESET ? EPOLLHUP :
			 c->ps >= PS_EOF ? EPOLLRDHUP : EPOLLOUT,
		      c->ps == PS_DATA || c->ps == PS_EOF ? PAYLOAD : 0))
		setup_fail("peer state never seen");
	if (under_shim) {
		rec->accel_checked = accel_check();
		if (rec->accel_checked == -2) {
			snprintf(rec->result, sizeof(rec->result),
				 "PASSTHROUGH %s", rec->note);
			rec->stage = 2;
			_exit(0);
		}
	}

	/* An accelerated socket closed, its number taken by a pipe. */
	close(conn2);
	if (pipe2(p, O_NONBLOCK))
		setup_fail("pipe 2");
	if (p[0] == conn2 || p[1] == conn2)
		c->fd[R_REUSED] = conn2;
	else
		c->fd[R_REUSED] = fcntl(p[0], F_DUPFD_CLOEXEC, conn2);
	if (c->fd[R_REUSED] != conn2)
		setup_fail("fd reuse");
	(void)peer2;
	c->fd[R_CLOSED] = socket(AF_INET, SOCK_STREAM, 0);
	close(c->fd[R_CLOSED]);
	c->fd[R_NEG1] = -1;
	c->fd[R_NEG2] = -2;
	c->fd[R_INTMIN] = INT_MIN;
	c->fd[R_INTMAX] = INT_MAX;
	c->fd[R_RLIM] = (int)c->rlim;
	c->fd[R_RLIM1] = (int)c->rlim - 1;
	c->fd[R_BIG] = 1 << 20;
	d(c, "[%s] ", ps_name[c->ps]);
}

/* ---- the calls ---- */

static void post_fill(struct ctx *c, const void *p, size_t n)
{
	out_region(c, p, n < 512 ? n : 512);
}

static void c_read(struct ctx *c)
{
	int fd = pick_fd(c, "fd");
	size_t n = pick_size(c, "n");
	void *buf = pick_buf(c, "buf", n);

	post_fill(c, buf, n);
	CALL(read(fd, buf, n));
}

static void c_read_chk(struct ctx *c)
{
	int fd = pick_fd(c, "fd");
	size_t n = pick_size(c, "n");
	size_t buflen = chance(&c->r, 80) ? n : pick_size(c, "buflen");
	void *buf = pick_buf(c, "buf", n);

	post_fill(c, buf, n);
	CALL(__read_chk(fd, buf, n, buflen));
}

static void c_write(struct ctx *c)
{
	int fd = pick_fd(c, "fd");
	size_t n = pick_size(c, "n");
	void *buf = pick_buf(c, "buf", n);

	c->src_bad = readable(c, buf, n) < n;
	CALL(write(fd, buf, n));
}

/* An iovec array of cnt entries (content), placed by kind. */
static struct iovec *pick_iov(struct ctx *c, int *cnt_out, bool out)
{
	struct iovec v[8] = { 0 };
	int n = below(&c->r, 5);

	for (int i = 0; i < n; i++) {
		int kind = pick_pk(c);
		size_t len;

		switch (below(&c->r, 6)) {
		case 0: len = 0; break;
		case 1: len = SIZE_MAX; break;
		case 2: len = (size_t)SSIZE_MAX + 1; break;
		case 3: len = 1 + below(&c->r, 200); break;
		default: len = 1 + below(&c->r, 64); break;
		}
		v[i].iov_base = buf_of(c, kind, len);
		if (kind == PK_VALID || kind == PK_MISALIGNED)
			v[i].iov_base = (char *)v[i].iov_base + i * 256;
		v[i].iov_len = len;
		if (!out && readable(c, v[i].iov_base, len) < len)
			c->src_bad = true;
		d(c, " iov%d={%s,%zu}", i, pk_name[kind], len);
		if (out && (kind == PK_VALID || kind == PK_MISALIGNED))
			post_fill(c, v[i].iov_base, len);
	}
	*cnt_out = n;
	return pick_place(c, "iov", v, n ? n * sizeof(v[0]) : 16);
}

static int iov_count(struct ctx *c, int built)
{
	if (chance(&c->r, 70)) {
		d(c, " cnt=%d", built);
		return built;
	}
	return (int)pick_count(c, "cnt", 8);
}

static void c_readv(struct ctx *c)
{
	int fd = pick_fd(c, "fd"), n;
	struct iovec *iov = pick_iov(c, &n, true);

	n = iov_count(c, n);
	CALL(readv(fd, iov, n));
}

static void c_writev(struct ctx *c)
{
	int fd = pick_fd(c, "fd"), n;
	struct iovec *iov = pick_iov(c, &n, false);

	n = iov_count(c, n);
	CALL(writev(fd, iov, n));
}

static void c_recv(struct ctx *c)
{
	int fd = pick_fd(c, "fd");
	size_t n = pick_size(c, "n");
	void *buf = pick_buf(c, "buf", n);
	int flags = pick_msg_flags(c, true);

	post_fill(c, buf, n);
	CALL(recv(fd, buf, n, flags));
}

static void c_recv_chk(struct ctx *c)
{
	int fd = pick_fd(c, "fd");
	size_t n = pick_size(c, "n");
	size_t buflen = chance(&c->r, 80) ? n : pick_size(c, "buflen");
	void *buf = pick_buf(c, "buf", n);
	int flags = pick_msg_flags(c, true);

	post_fill(c, buf, n);
	CALL(__recv_chk(fd, buf, n, buflen, flags));
}

static void c_send(struct ctx *c)
{
	int fd = pick_fd(c, "fd");
	size_t n = pick_size(c, "n");
	void *buf = pick_buf(c, "buf", n);
	int flags = pick_msg_flags(c, false);

	c->src_bad = readable(c, buf, n) < n;
	CALL(send(fd, buf, n, flags));
}

/* A socklen_t in memory: NULL, bad, or a value. */
static socklen_t *pick_len_ptr(struct ctx *c, const char *name)
{
	static const socklen_t vals[] = { 0, 1, 4, 16, 28, 128, 1000,
					  (socklen_t)-1, INT_MAX };
	socklen_t v = vals[below(&c->r, sizeof(vals) / sizeof(vals[0]))];
	socklen_t *p;

	d(c, " %s=%u", name, v);
	p = pick_place(c, name, &v, sizeof(v));
	if (readable(c, p, sizeof(v)) == sizeof(v))
		out_region(c, p, sizeof(v));
	return p;
}

static void c_recvfrom_common(struct ctx *c, bool chk)
{
	int fd = pick_fd(c, "fd");
	size_t n = pick_size(c, "n");
	size_t buflen = chk && chance(&c->r, 20) ? pick_size(c, "buflen") : n;
	void *buf = pick_buf(c, "buf", n);
	int flags = pick_msg_flags(c, true);
	struct sockaddr_storage ss;
	void *addr = NULL;
	socklen_t *alen = NULL;

	memset(&ss, 0x5a, sizeof(ss));
	if (chance(&c->r, 60)) {
		addr = pick_place(c, "addr", &ss, sizeof(ss));
		if (readable(c, addr, 16) == 16)
			out_region(c, addr, 16);
	}
	if (chance(&c->r, 60))
		alen = pick_len_ptr(c, "alen");
	post_fill(c, buf, n);
	if (chk)
		CALL(__recvfrom_chk(fd, buf, n, buflen, flags, addr, alen));
	else
		CALL(recvfrom(fd, buf, n, flags, addr, alen));
}

static void c_recvfrom(struct ctx *c)
{
	c_recvfrom_common(c, false);
}

static void c_recvfrom_chk(struct ctx *c)
{
	c_recvfrom_common(c, true);
}

static struct sockaddr *pick_addr(struct ctx *c, socklen_t *len)
{
	struct sockaddr_in sin = c->listen_addr;
	static const socklen_t lens[] = { 0, 1, 2, 16, 28, 128, 1000,
					  (socklen_t)-1 };

	switch (below(&c->r, 4)) {
	case 0:
		d(c, " addr=listener");
		break;
	case 1:
		sin.sin_port = htons(1);
		d(c, " addr=port1");
		break;
	case 2:
		sin.sin_family = AF_UNSPEC;
		d(c, " addr=unspec");
		break;
	default:
		sin.sin_family = (sa_family_t)rnd(&c->r);
		d(c, " addr=family%u", sin.sin_family);
		break;
	}
	*len = chance(&c->r, 60) ? sizeof(sin) :
	       lens[below(&c->r, sizeof(lens) / sizeof(lens[0]))];
	d(c, " alen=%u", *len);
	return pick_place(c, "addrp", &sin, sizeof(sin));
}

static void c_sendto(struct ctx *c)
{
	int fd = pick_fd(c, "fd");
	size_t n = pick_size(c, "n");
	void *buf = pick_buf(c, "buf", n);
	int flags = pick_msg_flags(c, false);
	struct sockaddr *addr = NULL;
	socklen_t alen = 0;

	if (chance(&c->r, 50))
		addr = pick_addr(c, &alen);
	else if (chance(&c->r, 30))
		d(c, " addr=NULL alen=%u", alen = (socklen_t)rnd(&c->r));
	c->src_bad = readable(c, buf, n) < n;
	CALL(sendto(fd, buf, n, flags, addr, alen));
}

/* A msghdr with hostile fields, placed by kind. */
static struct msghdr *pick_msghdr(struct ctx *c, bool out)
{
	struct msghdr m;
	int n;

	memset(&m, 0, sizeof(m));
	m.msg_iov = pick_iov(c, &n, out);
	m.msg_iovlen = n;
	if (chance(&c->r, 20)) {
		static const size_t lens[] = { 0, 1, 8, 1024, 1025,
					       (size_t)-1, INT_MAX };

		m.msg_iovlen = lens[below(&c->r, 7)];
		d(c, " iovlen=%zu", m.msg_iovlen);
	}
	if (chance(&c->r, 25)) {
		int kind = pick_pk(c);

		m.msg_name = buf_of(c, kind, 16);
		m.msg_namelen = chance(&c->r, 50) ? 16 : (socklen_t)rnd(&c->r);
		d(c, " name={%s,%u}", pk_name[kind], m.msg_namelen);
	}
	if (chance(&c->r, 20)) {
		int kind = pick_pk(c);

		m.msg_control = buf_of(c, kind, 64);
		m.msg_controllen = chance(&c->r, 50) ? 64 : rnd(&c->r) % 100;
		d(c, " control={%s,%zu}", pk_name[kind], m.msg_controllen);
	}
	if (chance(&c->r, 10))
		m.msg_flags = (int)rnd(&c->r);
	return pick_place(c, "msg", &m, sizeof(m));
}

/* Structures may be misaligned: they are read through copies. */
static void post_msghdr(struct ctx *c)
{
	struct msghdr m;

	if (readable(c, c->post_p, sizeof(m)) < sizeof(m))
		return;
	memcpy(&m, c->post_p, sizeof(m));
	mix(c, m.msg_namelen);
	mix(c, m.msg_controllen);
	mix(c, (unsigned int)m.msg_flags);
	mix(c, m.msg_iovlen);
}

static void c_recvmsg(struct ctx *c)
{
	int fd = pick_fd(c, "fd");
	struct msghdr *m = pick_msghdr(c, true);
	int flags = pick_msg_flags(c, true);

	c->post = post_msghdr;
	c->post_p = m;
	CALL(recvmsg(fd, m, flags));
}

static void c_sendmsg(struct ctx *c)
{
	int fd = pick_fd(c, "fd");
	struct msghdr *m = pick_msghdr(c, false);
	int flags = pick_msg_flags(c, false);

	CALL(sendmsg(fd, m, flags));
}

static struct mmsghdr *pick_mmsg(struct ctx *c, unsigned int *vlen,
				 bool out)
{
	struct mmsghdr v[4];
	int n = below(&c->r, 4);

	memset(v, 0, sizeof(v));
	for (int i = 0; i < n; i++) {
		struct msghdr *m;

		d(c, " [%d:", i);
		m = pick_msghdr(c, out);
		if (readable(c, m, sizeof(*m)) == sizeof(*m))
			memcpy(&v[i].msg_hdr, m, sizeof(*m));	/* misaligned */
		else
			v[i].msg_hdr.msg_iov = (struct iovec *)m;
		v[i].msg_len = (unsigned int)rnd(&c->r);
		d(c, "]");
	}
	*vlen = n;
	/*
	 * Only the entries built are compared: past them the kernel walks
	 * whatever follows, such as the timeout it writes the time left to.
	 */
	c->post_n = n;
	if (chance(&c->r, 30)) {
		static const unsigned int vl[] = { 0, 1, 5, 1024, 1025,
						   INT_MAX, UINT_MAX };

		*vlen = vl[below(&c->r, 7)];
	}
	d(c, " vlen=%u", *vlen);
	return pick_place(c, "vec", v, n ? n * sizeof(v[0]) : 16);
}

static void post_mmsg(struct ctx *c)
{
	const struct mmsghdr *v = c->post_p;
	struct mmsghdr e;

	for (size_t i = 0; i < c->post_n; i++) {
		if (readable(c, &v[i], sizeof(e)) < sizeof(e))
			return;
		memcpy(&e, &v[i], sizeof(e));
		if (getenv("FUZZ_ARGS_VERBOSE"))
			dprintf(2, "  mmsg %zu: len %u namelen %u controllen "
				"%zu flags %#x\n", i, e.msg_len,
				e.msg_hdr.msg_namelen, e.msg_hdr.msg_controllen,
				(unsigned int)e.msg_hdr.msg_flags);
		mix(c, e.msg_len);
		mix(c, e.msg_hdr.msg_namelen);
		mix(c, e.msg_hdr.msg_controllen);
		mix(c, (unsigned int)e.msg_hdr.msg_flags);
	}
}

/*
 * A timespec argument.  short_ok: a 1 ms timeout may end the call; not
 * for recvmmsg, whose count would then depend on how fast it loops.
 */
static struct timespec *pick_ts_of(struct ctx *c, const char *name,
				   bool short_ok)
{
	struct timespec ts = { 0, 0 };

	switch (below(&c->r, 9)) {
	case 0:
		d(c, " %s=NULL", name);
		return NULL;
	case 1: ts.tv_nsec = short_ok ? 1000000 : 0; break;
	case 2: ts.tv_sec = -1; break;
	case 3: ts.tv_nsec = 1000000000; break;
	case 4: ts.tv_nsec = -1; break;
	case 5: ts.tv_sec = 100000; break;
	default: break;
	}
	d(c, " %s={%lld,%ld}", name, (long long)ts.tv_sec, ts.tv_nsec);
	if (SANITIZER_BUILD && !short_ok) {
		/*
		 * A sanitizer's recvmmsg reads the timeout first, and a
		 * pointer out of its reach crashes it without the shim only.
		 */
		int kind = pick_pk(c);

		if (kind == PK_KERNEL || kind == PK_LOW)
			kind = PK_NONE;
		d(c, " %s=%s", name, pk_name[kind]);
		return place(c, kind, &ts, sizeof(ts));
	}
	return pick_place(c, name, &ts, sizeof(ts));
}

static struct timespec *pick_ts(struct ctx *c, const char *name)
{
	return pick_ts_of(c, name, true);
}

static void c_recvmmsg(struct ctx *c)
{
	int fd = pick_fd(c, "fd");
	unsigned int vlen;
	struct mmsghdr *v = pick_mmsg(c, &vlen, true);
	int flags = pick_msg_flags(c, true);
	struct timespec *ts = pick_ts_of(c, "timeout", false);

	if (chance(&c->r, 30)) {
		flags |= MSG_WAITFORONE;
		d(c, "|WAITFORONE");
	}
	c->post = post_mmsg;
	c->post_p = v;
	c->post_n = vlen < c->post_n ? vlen : c->post_n;
	CALL(recvmmsg(fd, v, vlen, flags, ts));
}

static void c_sendmmsg(struct ctx *c)
{
	int fd = pick_fd(c, "fd");
	unsigned int vlen;
	struct mmsghdr *v = pick_mmsg(c, &vlen, false);
	int flags = pick_msg_flags(c, false);

	c->post = post_mmsg;
	c->post_p = v;
	c->post_n = vlen < c->post_n ? vlen : c->post_n;
	CALL(sendmmsg(fd, v, vlen, flags));
}

static off_t *pick_off(struct ctx *c, const char *name)
{
	static const off_t vals[] = { 0, 1, -1, 4096, LLONG_MAX };
	off_t v = vals[below(&c->r, 5)];
	off_t *p;

	if (chance(&c->r, 50)) {
		d(c, " %s=NULL", name);
		return NULL;
	}
	d(c, " %s=%lld", name, (long long)v);
	p = pick_place(c, name, &v, sizeof(v));
	if (readable(c, p, sizeof(v)) == sizeof(v))
		out_region(c, p, sizeof(v));
	return p;
}

static void c_sendfile_common(struct ctx *c, bool is64)
{
	int out = pick_fd(c, "out");
	int in = chance(&c->r, 50) ? c->fd[R_FILE] : pick_fd(c, "in");
	off_t *off = pick_off(c, "off");
	size_t n = pick_size(c, "n");

	if (in == c->fd[R_FILE])
		d(c, " in=FILE");
	if (is64)
		CALL(sendfile64(out, in, (off64_t *)off, n));
	else
		CALL(sendfile(out, in, off, n));
}

static void c_sendfile(struct ctx *c)
{
	c_sendfile_common(c, false);
}

static void c_sendfile64(struct ctx *c)
{
	c_sendfile_common(c, true);
}

static void c_splice(struct ctx *c)
{
	int in = pick_fd(c, "in");
	off_t *offin = pick_off(c, "offin");
	int out = chance(&c->r, 50) ? c->fd[R_PIPE_W] : pick_fd(c, "out");
	off_t *offout = pick_off(c, "offout");
	size_t n = pick_size(c, "n");
	unsigned int flags = chance(&c->r, 70) ? SPLICE_F_NONBLOCK :
			     (unsigned int)rnd(&c->r);

	if (out == c->fd[R_PIPE_W])
		d(c, " out=PIPE_W");
	d(c, " flags=%#x", flags);
	CALL(splice(in, offin, out, offout, n, flags));
}

static void c_epoll_create(struct ctx *c)
{
	int size = (int)pick_count(c, "size", 100);

	c->fd_result = true;
	CALL(epoll_create(size));
}

static void c_epoll_create1(struct ctx *c)
{
	int flags = chance(&c->r, 50) ? EPOLL_CLOEXEC : (int)rnd(&c->r);

	if (chance(&c->r, 20))
		flags = 0;
	d(c, " flags=%#x", (unsigned int)flags);
	c->fd_result = true;
	CALL(epoll_create1(flags));
}

static uint32_t pick_events(struct ctx *c)
{
	static const uint32_t sets[] = {
		EPOLLIN, EPOLLIN | EPOLLET, EPOLLOUT, EPOLLIN | EPOLLONESHOT,
		EPOLLIN | EPOLLEXCLUSIVE, EPOLLIN | EPOLLOUT | EPOLLRDHUP, 0,
		EPOLLEXCLUSIVE | EPOLLONESHOT, EPOLLWAKEUP | EPOLLIN,
	};
	uint32_t e = chance(&c->r, 15) ? (uint32_t)rnd(&c->r) :
		     sets[below(&c->r, sizeof(sets) / sizeof(sets[0]))];

	d(c, " events=%#x", e);
	return e;
}

static void c_epoll_ctl(struct ctx *c)
{
	static const int ops[] = { EPOLL_CTL_ADD, EPOLL_CTL_MOD,
				   EPOLL_CTL_DEL, 0, 4, -1 };
	int ep = chance(&c->r, 70) ? c->fd[R_EPFD] : pick_fd(c, "ep");
	int op = chance(&c->r, 90) ? ops[below(&c->r, 3)] :
		 ops[below(&c->r, 6)];
	int fd = pick_fd(c, "fd");
	struct epoll_event ev = { 0 };
	struct epoll_event *evp = NULL;

	if (ep == c->fd[R_EPFD])
		d(c, " ep=EPFD");
	d(c, " op=%d", op);
	ev.events = pick_events(c);
	ev.data.u64 = 77;
	if (chance(&c->r, 85))
		evp = pick_place(c, "ev", &ev, sizeof(ev));
	else
		d(c, " ev=NULL");
	CALL(epoll_ctl(ep, op, fd, evp));
}

static int cmp_ev(const void *a, const void *b)
{
	const struct epoll_event *x = a, *y = b;

	if (x->data.u64 != y->data.u64)
		return x->data.u64 < y->data.u64 ? -1 : 1;
	return x->events < y->events ? -1 : x->events > y->events;
}

/* Returned events as a multiset: the order is the ready list's. */
static void post_events(struct ctx *c)
{
	struct epoll_event ev[16];
	size_t n = c->ret > 0 ? (size_t)c->ret : 0;

	if (n > 16)
		n = 16;
	if (readable(c, c->post_p, n * sizeof(ev[0])) < n * sizeof(ev[0]))
		return;
	memcpy(ev, c->post_p, n * sizeof(ev[0]));
	qsort(ev, n, sizeof(ev[0]), cmp_ev);
	for (size_t i = 0; i < n; i++) {
		mix(c, ev[i].data.u64);
		mix(c, ev[i].events);
	}
}

static int pick_timeout_ms(struct ctx *c)
{
	static const int vals[] = { 0, 0, 0, 1, 5, -1, INT_MAX, INT_MIN };
	int t = vals[below(&c->r, sizeof(vals) / sizeof(vals[0]))];

	d(c, " timeout=%d", t);
	return t;
}

static struct epoll_event *pick_events_out(struct ctx *c, int *maxev)
{
	static const int vals[] = { 0, 1, 2, 8, -1, INT_MAX, INT_MIN,
				    INT_MAX / 12, INT_MAX / 12 + 1 };
	struct epoll_event blank[8];
	struct epoll_event *p;

	memset(blank, 0xee, sizeof(blank));
	*maxev = chance(&c->r, 60) ? 1 + (int)below(&c->r, 8) :
		 vals[below(&c->r, sizeof(vals) / sizeof(vals[0]))];
	d(c, " maxev=%d", *maxev);
	p = pick_place(c, "events", blank, sizeof(blank));
	c->post = post_events;
	c->post_p = p;
	return p;
}

static sigset_t *pick_sigmask(struct ctx *c)
{
	sigset_t s;

	/* glibc clears only the kernel's 64 bits; the rest would be stack. */
	memset(&s, 0, sizeof(s));
	sigemptyset(&s);
	if (chance(&c->r, 40)) {
		d(c, " sigmask=NULL");
		return NULL;
	}
	return pick_place(c, "sigmask", &s, sizeof(s));
}

static int pick_ep(struct ctx *c)
{
	if (chance(&c->r, 70)) {
		d(c, " ep=EPFD");
		return c->fd[R_EPFD];
	}
	return pick_fd(c, "ep");
}

static void c_epoll_wait(struct ctx *c)
{
	int ep = pick_ep(c), maxev;
	struct epoll_event *ev = pick_events_out(c, &maxev);
	int t = pick_timeout_ms(c);

	CALL(epoll_wait(ep, ev, maxev, t));
}

static void c_epoll_pwait(struct ctx *c)
{
	int ep = pick_ep(c), maxev;
	struct epoll_event *ev = pick_events_out(c, &maxev);
	int t = pick_timeout_ms(c);
	sigset_t *sm = pick_sigmask(c);

	CALL(epoll_pwait(ep, ev, maxev, t, sm));
}

static void c_epoll_pwait2(struct ctx *c)
{
	int ep = pick_ep(c), maxev;
	struct epoll_event *ev = pick_events_out(c, &maxev);
	struct timespec *ts = pick_ts(c, "timeout");
	sigset_t *sm = pick_sigmask(c);

	CALL(epoll_pwait2(ep, ev, maxev, ts, sm));
}

/* ---- poll and select ---- */

static void post_pollfds(struct ctx *c)
{
	const struct pollfd *v = c->post_p;
	struct pollfd p;

	for (size_t i = 0; i < c->post_n; i++) {
		if (readable(c, &v[i], sizeof(p)) < sizeof(p))
			return;
		memcpy(&p, &v[i], sizeof(p));
		if (getenv("FUZZ_ARGS_VERBOSE"))
			dprintf(2, "  pollfd %zu: fd %lld events %#x revents "
				"%#x\n", i, fd_sym(c, p.fd),
				(unsigned short)p.events,
				(unsigned short)p.revents);
		mix(c, (uint64_t)fd_sym(c, p.fd));
		mix(c, (uint16_t)p.events);
		mix(c, (uint16_t)p.revents);
	}
}

static struct pollfd *pick_pollfds(struct ctx *c, nfds_t *n)
{
	struct pollfd v[8] = { 0 };
	int built = below(&c->r, 7);

	for (int i = 0; i < built; i++) {
		int role = pick_fd_role(c);

		v[i].fd = c->fd[role];
		if (role == R_ACCEL && chance(&c->r, 20)) {
			v[i].fd = ~v[i].fd;
			d(c, " {~ACCEL");
		} else {
			d(c, " {%s", role_name[role]);
		}
		v[i].events = chance(&c->r, 80) ?
			(short)(POLLIN | (chance(&c->r, 50) ? POLLOUT : 0) |
				(chance(&c->r, 20) ? POLLRDHUP : 0)) :
			(short)rnd(&c->r);
		v[i].revents = (short)rnd(&c->r);
		d(c, ",%#x}", (unsigned short)v[i].events);
	}
	if (chance(&c->r, 75) || SANITIZER_BUILD) {
		/*
		 * A sanitizer's own poll reads every entry first, and its
		 * check of a range past the arena faults or not depending
		 * on the layout: that would make the two runs differ.
		 */
		*n = built;
	} else {
		static const nfds_t vals[] = { 0, 9, (nfds_t)-1, INT_MAX,
					       1 << 30 };

		if (chance(&c->r, 50))
			*n = chance(&c->r, 50) ? (nfds_t)c->rlim + 1 :
			     (nfds_t)c->rlim;
		else
			*n = vals[below(&c->r, 5)];
	}
	d(c, " nfds=%lu", (unsigned long)*n);
	c->post = post_pollfds;
	c->post_n = *n < 16 ? *n : (nfds_t)built;
	c->post_p = pick_place(c, "fds", v, built ? built * sizeof(v[0]) : 8);
	return (struct pollfd *)c->post_p;
}

static void c_poll(struct ctx *c)
{
	nfds_t n;
	struct pollfd *p = pick_pollfds(c, &n);
	int t = pick_timeout_ms(c);

	CALL(poll(p, n, t));
}

static void c_poll_chk(struct ctx *c)
{
	nfds_t n;
	struct pollfd *p = pick_pollfds(c, &n);
	int t = pick_timeout_ms(c);
	size_t len = chance(&c->r, 80) ? n * sizeof(*p) :
		     (size_t)below(&c->r, 64);

	d(c, " fdslen=%zu", len);
	CALL(__poll_chk(p, n, t, len));
}

static void c_ppoll(struct ctx *c)
{
	nfds_t n;
	struct pollfd *p = pick_pollfds(c, &n);
	struct timespec *ts = pick_ts(c, "ts");
	sigset_t *sm = pick_sigmask(c);

	CALL(ppoll(p, n, ts, sm));
}

#define SET_BYTES	(ST_LEN / 8)	/* room for 1<<16 bits per set */

struct sel {
	unsigned long *set[3];
	size_t bytes;
};

static void post_sets(struct ctx *c)
{
	const struct sel *s = c->post_p;

	for (int k = 0; k < 3; k++) {
		const unsigned long *b = s->set[k];
		size_t n = readable(c, b, s->bytes) / sizeof(long);
		uint64_t others = 0;

		for (int r = 0; r < R_COUNT; r++) {
			int fd = c->fd[r];
			unsigned long w;

			if (fd < 0 || (size_t)fd / 64 >= n)
				continue;
			memcpy(&w, &b[fd / 64], sizeof(w));	/* misaligned */
			mix(c, (w >> (fd % 64)) & 1);
		}
		for (size_t i = 0; i < n; i++) {
			unsigned long w;

			memcpy(&w, &b[i], sizeof(w));
			others += __builtin_popcountl(w);
		}
		mix(c, others);
	}
}

static struct sel sel_state;

static void pick_sets(struct ctx *c, int *nfds, fd_set **r, fd_set **w,
		      fd_set **e)
{
	static const char *const names[3] = { "rd", "wr", "ex" };
	static unsigned long bits[SET_BYTES / sizeof(long)];
	size_t bytes;
	int top = 0;

	switch (below(&c->r, 8)) {
	case 0: *nfds = 0; break;
	case 1: *nfds = -1; break;
	case 2: *nfds = INT_MAX; break;
	case 3: *nfds = FD_SETSIZE + 64 + (int)below(&c->r, 2000); break;
	case 4: *nfds = (int)c->rlim + 1; break;
	default: *nfds = -2; break;	/* highest chosen fd + 1 */
	}
	bytes = FD_SETSIZE / 8;
	if (*nfds > FD_SETSIZE)
		bytes = *nfds / 8 + 8 < SET_BYTES / 4 ? *nfds / 8 + 8 :
			SET_BYTES / 4;
	memset(&sel_state, 0, sizeof(sel_state));
	sel_state.bytes = bytes;
	for (int k = 0; k < 3; k++) {
		fd_set **out = k == 0 ? r : k == 1 ? w : e;
		int n = chance(&c->r, 30) ? 0 : (int)below(&c->r, 4);

		memset(bits, 0, bytes);
		if (chance(&c->r, 25)) {
			*out = NULL;
			d(c, " %s=NULL", names[k]);
			continue;
		}
		d(c, " %s={", names[k]);
		for (int i = 0; i < n; i++) {
			int role = pick_fd_role(c), fd = c->fd[role];

			if (fd < 0 || (size_t)fd >= bytes * 8)
				continue;
			bits[fd / 64] |= 1UL << (fd % 64);
			top = fd + 1 > top ? fd + 1 : top;
			d(c, "%s,", role_name[role]);
		}
		d(c, "}");
		*out = pick_place(c, names[k], bits, bytes);
		sel_state.set[k] = (unsigned long *)*out;
	}
	if (*nfds == -2)
		*nfds = top;
	d(c, " nfds=%s", *nfds == top ? "top" : "");
	if (*nfds != top)
		d(c, "%d", *nfds);
	c->post = post_sets;
	c->post_p = &sel_state;
}

static void c_select(struct ctx *c)
{
	fd_set *r, *w, *e;
	struct timeval tv = { 0, 0 }, *tvp = NULL;
	int nfds;

	pick_sets(c, &nfds, &r, &w, &e);
	switch (below(&c->r, 7)) {
	case 0: d(c, " tv=NULL"); break;
	case 1: tv.tv_usec = 1000; goto place;
	case 2: tv.tv_sec = -1; goto place;
	case 3: tv.tv_usec = 1000000; goto place;
	case 4: tv.tv_usec = -1; goto place;
	default:
place:
		d(c, " tv={%ld,%ld}", (long)tv.tv_sec, (long)tv.tv_usec);
		tvp = pick_place(c, "tvp", &tv, sizeof(tv));
	}
	CALL(select(nfds, r, w, e, tvp));
}

static void c_pselect(struct ctx *c)
{
	fd_set *r, *w, *e;
	struct timespec *ts;
	sigset_t *sm;
	int nfds;

	pick_sets(c, &nfds, &r, &w, &e);
	ts = pick_ts(c, "ts");
	sm = pick_sigmask(c);
	CALL(pselect(nfds, r, w, e, ts, sm));
}

/* ---- sockets and fds ---- */

static void c_accept_common(struct ctx *c, bool four)
{
	int fd = chance(&c->r, 40) ? c->fd[R_LISTEN] : pick_fd(c, "fd");
	struct sockaddr_storage ss;
	void *addr = NULL;
	socklen_t *len = NULL;
	int flags = 0;

	if (fd == c->fd[R_LISTEN])
		d(c, " fd=LISTEN");
	memset(&ss, 0, sizeof(ss));
	if (chance(&c->r, 60))
		addr = pick_place(c, "addr", &ss, sizeof(ss));
	if (chance(&c->r, 60))
		len = pick_len_ptr(c, "len");
	if (four) {
		flags = chance(&c->r, 70) ? SOCK_NONBLOCK | SOCK_CLOEXEC :
			(int)rnd(&c->r);
		d(c, " flags=%#x", (unsigned int)flags);
	}
	c->fd_result = true;
	if (four)
		CALL(accept4(fd, addr, len, flags));
	else
		CALL(accept(fd, addr, len));
}

static void c_accept(struct ctx *c)
{
	c_accept_common(c, false);
}

static void c_accept4(struct ctx *c)
{
	c_accept_common(c, true);
}

static void c_connect(struct ctx *c)
{
	int fd = pick_fd(c, "fd");
	socklen_t len;
	struct sockaddr *addr = pick_addr(c, &len);

	CALL(connect(fd, addr, len));
}

static void c_socket(struct ctx *c)
{
	static const int doms[] = { AF_INET, AF_INET6, AF_UNIX, -1, 9999 };
	static const int types[] = { SOCK_STREAM, SOCK_DGRAM,
				     SOCK_STREAM | SOCK_NONBLOCK, -1,
				     SOCK_RAW, 77 };
	static const int protos[] = { 0, IPPROTO_TCP, IPPROTO_UDP, -1, 9999 };
	int dom = doms[below(&c->r, 5)], type = types[below(&c->r, 6)];
	int proto = protos[below(&c->r, 5)];

	d(c, " domain=%d type=%#x proto=%d", dom, (unsigned int)type, proto);
	c->fd_result = true;
	CALL(socket(dom, type, proto));
}

static void c_close(struct ctx *c)
{
	int fd = pick_fd(c, "fd");

	CALL(close(fd));
}

static void c_shutdown(struct ctx *c)
{
	int fd = pick_fd(c, "fd");
	int how = chance(&c->r, 80) ? (int)below(&c->r, 3) :
		  (int)pick_count(c, "how*", 4);

	d(c, " how=%d", how);
	CALL(shutdown(fd, how));
}

static void pick_sockopt(struct ctx *c, int *level, int *name)
{
	static const int names[][2] = {
		{ SOL_SOCKET, SO_ERROR }, { SOL_SOCKET, SO_PEEK_OFF },
		{ SOL_SOCKET, SO_TYPE }, { SOL_SOCKET, SO_RCVBUF },
		{ SOL_SOCKET, SO_LINGER }, { IPPROTO_TCP, TCP_NODELAY },
		{ IPPROTO_TCP, TCP_INFO }, { SOL_SOCKET, SO_RCVLOWAT },
		{ SOL_SOCKET, 9999 }, { 9999, 1 },
	};
	int i = below(&c->r, sizeof(names) / sizeof(names[0]));

	if (chance(&c->r, 40))
		i = below(&c->r, 2);
	*level = names[i][0];
	*name = names[i][1];
	d(c, " opt=%d/%d", *level, *name);
}

static void c_getsockopt(struct ctx *c)
{
	int fd = pick_fd(c, "fd"), level, name;
	char blank[256];
	void *val;
	socklen_t *len = NULL;

	pick_sockopt(c, &level, &name);
	memset(blank, 0x77, sizeof(blank));
	val = pick_place(c, "val", blank, sizeof(blank));
	/* TCP_INFO holds round-trip times and counters: not comparable. */
	if (readable(c, val, 16) == 16 && name != TCP_INFO)
		out_region(c, val, 16);
	if (chance(&c->r, 90))
		len = pick_len_ptr(c, "len");
	else
		d(c, " len=NULL");
	CALL(getsockopt(fd, level, name, val, len));
}

static void c_setsockopt(struct ctx *c)
{
	static const int vals[] = { 0, 1, -1, 5, 1000, INT_MAX, INT_MIN };
	static const socklen_t lens[] = { 0, 1, 2, 3, 4, 8, 100, (socklen_t)-1,
					  INT_MAX };
	int fd = pick_fd(c, "fd"), level, name;
	int v[4] = { vals[below(&c->r, 7)], 0, 0, 0 };
	socklen_t len = chance(&c->r, 60) ? sizeof(int) : lens[below(&c->r, 9)];
	void *val;

	pick_sockopt(c, &level, &name);
	d(c, " v=%d len=%u", v[0], len);
	val = pick_place(c, "val", v, sizeof(v));
	CALL(setsockopt(fd, level, name, val, len));
}

static void c_dup(struct ctx *c)
{
	int fd = pick_fd(c, "fd");

	c->fd_result = true;
	CALL(dup(fd));
}

static void c_dup2(struct ctx *c)
{
	int a = pick_fd(c, "old"), b = pick_fd(c, "new");

	c->fd_result = true;
	CALL(dup2(a, b));
}

static void c_dup3(struct ctx *c)
{
	int a = pick_fd(c, "old"), b = pick_fd(c, "new");
	int flags = chance(&c->r, 60) ? (chance(&c->r, 50) ? O_CLOEXEC : 0) :
		    (int)rnd(&c->r);

	d(c, " flags=%#x", (unsigned int)flags);
	c->fd_result = true;
	CALL(dup3(a, b, flags));
}

static void c_fcntl_common(struct ctx *c, bool is64)
{
	static const int cmds[] = {
		F_GETFL, F_SETFL, F_DUPFD, F_DUPFD_CLOEXEC, F_GETFD, F_SETFD,
		F_GETLK, F_SETOWN, F_GETOWN_EX, F_SETPIPE_SZ, F_GETPIPE_SZ,
		9999, -1,
	};
	int fd = pick_fd(c, "fd");
	int cmd = cmds[below(&c->r, sizeof(cmds) / sizeof(cmds[0]))];
	long arg;
	char blank[64];

	memset(blank, 0, sizeof(blank));
	switch (cmd) {
	case F_GETLK:
	case F_GETOWN_EX:
		arg = (long)pick_place(c, "argp", blank, sizeof(blank));
		break;
	case F_SETFL:
		arg = chance(&c->r, 50) ? O_NONBLOCK : chance(&c->r, 50) ? 0 :
		      (long)rnd(&c->r);
		break;
	default:
		arg = chance(&c->r, 50) ? (long)below(&c->r, 50) :
		      (long)pick_count(c, "arg*", 100);
		break;
	}
	if (cmd != F_GETLK && cmd != F_GETOWN_EX)
		d(c, " arg=%ld", arg);
	d(c, " cmd=%d", cmd);
	c->fd_result = cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC;
	if (is64)
		CALL(fcntl64(fd, cmd, arg));
	else
		CALL(fcntl(fd, cmd, arg));
}

static void c_fcntl(struct ctx *c)
{
	c_fcntl_common(c, false);
}

static void c_fcntl64(struct ctx *c)
{
	c_fcntl_common(c, true);
}

static void c_ioctl(struct ctx *c)
{
	static const unsigned long reqs[] = {
		FIONREAD, FIONBIO, SIOCOUTQ, FIOCLEX, FIONCLEX, FIOASYNC,
		SIOCATMARK, TIOCOUTQ, 0x1234,
	};
	int fd = pick_fd(c, "fd");
	unsigned long req = reqs[below(&c->r, sizeof(reqs) / sizeof(reqs[0]))];
	int v[2] = { chance(&c->r, 50) ? 0 : 1, 0 };
	void *arg;

	if (chance(&c->r, 50))
		req = chance(&c->r, 50) ? FIONREAD : FIONBIO;
	d(c, " req=%#lx v=%d", req, v[0]);
	arg = pick_place(c, "arg", v, sizeof(v));
	if (readable(c, arg, sizeof(int)) == sizeof(int))
		out_region(c, arg, sizeof(int));
	CALL(ioctl(fd, req, arg));
}

/* ---- process calls ---- */

static void c_fork(struct ctx *c)
{
	int status = 0;
	pid_t pid;

	CALL(fork());
	if (c->ret == 0) {
		/*
		 * The child answers through an inherited socket.  Not the
		 * accelerated one: the bytes the parent's ring pulled stay
		 * in the parent (a documented limit, not what this tests).
		 */
		char b[16];
		ssize_t n = recv(c->fd[R_UNIX], b, sizeof(b),
				 MSG_PEEK | MSG_DONTWAIT);

		_exit(n < 0 ? 100 + errno % 100 : (int)n);
	}
	pid = (pid_t)c->ret;
	if (pid > 0) {
		c->ret = 1;
		waitpid(pid, &status, 0);
		mix(c, (unsigned int)status);
	}
}

static const char *pick_path(struct ctx *c, bool search)
{
	static const char *const paths[] = {
		"/bin/true", "/nonexistent/x", "", "/", "/dev/null",
		"true", "no-such-program-zz",
	};
	int kind = chance(&c->r, 70) ? -1 : pick_pk(c);
	const char *p;

	if (kind >= 0 && kind != PK_VALID) {
		d(c, " path=%s", pk_name[kind]);
		if (kind == PK_EDGE || kind == PK_MISALIGNED || kind == PK_RO)
			return (char *)buf_of(c, PK_RO, 0);
		return bad_ptr(c, kind);
	}
	p = paths[below(&c->r, search ? 7 : 5)];
	d(c, " path=\"%s\"", p);
	return p;
}

static char **pick_argv(struct ctx *c, const char *name)
{
	static char *good[] = { "true", NULL };
	char *bad[3] = { "true", (char *)0x1000, NULL };
	int kind;

	switch (below(&c->r, 5)) {
	case 0:
		d(c, " %s=NULL", name);
		return opaque(NULL);
	case 1:
		d(c, " %s=badelem", name);
		return place(c, PK_VALID, bad, sizeof(bad));
	case 2:
		kind = pick_pk(c);
		d(c, " %s=%s", name, pk_name[kind]);
		return place(c, kind, good, sizeof(good));
	default:
		d(c, " %s=valid", name);
		return good;
	}
}

/* exec never blocks, and a timer would outlive it: no SIGALRM. */
#define CALL_EXEC(expr)							\
	do {								\
		snprintf(rec->result, sizeof(rec->result), "(exec'd)");	\
		publish_desc(c);					\
		errno = 0;						\
		c->ret = (long long)(expr);				\
		c->err = errno;						\
	} while (0)

static void c_execve(struct ctx *c)
{
	const char *p = pick_path(c, false);
	char **argv = pick_argv(c, "argv"), **envp = pick_argv(c, "envp");

	CALL_EXEC(execve(p, argv, envp));
}

static void c_execv(struct ctx *c)
{
	const char *p = pick_path(c, false);
	char **argv = pick_argv(c, "argv");

	CALL_EXEC(execv(p, argv));
}

static void c_execvp(struct ctx *c)
{
	const char *p = pick_path(c, true);
	char **argv = pick_argv(c, "argv");

	CALL_EXEC(execvp(p, argv));
}

static void c_execvpe(struct ctx *c)
{
	const char *p = pick_path(c, true);
	char **argv = pick_argv(c, "argv"), **envp = pick_argv(c, "envp");

	CALL_EXEC(execvpe(p, argv, envp));
}

static void c_execl(struct ctx *c)
{
	const char *p = pick_path(c, false);

	if (chance(&c->r, 50))
		CALL_EXEC(execl(p, "true", (char *)NULL));
	else
		CALL_EXEC(execl(p, (char *)opaque(NULL), (char *)NULL));
}

static void c_execlp(struct ctx *c)
{
	const char *p = pick_path(c, true);

	CALL_EXEC(execlp(p, "true", "x", (char *)NULL));
}

static void c_execle(struct ctx *c)
{
	const char *p = pick_path(c, false);
	char **envp = pick_argv(c, "envp");

	CALL_EXEC(execle(p, "true", (char *)NULL, envp));
}

static void c_fexecve(struct ctx *c)
{
	int fd = chance(&c->r, 40) ? open("/bin/true", O_RDONLY | O_CLOEXEC) :
		 pick_fd(c, "fd");
	char **argv = pick_argv(c, "argv"), **envp = pick_argv(c, "envp");

	CALL_EXEC(fexecve(fd, argv, envp));
}

static void c_exit_common(struct ctx *c, bool big)
{
	static const int vals[] = { 0, 1, 42, 255, 256, -1, INT_MAX };
	int status = vals[below(&c->r, 7)];

	d(c, " status=%d", status);
	snprintf(rec->result, sizeof(rec->result), "(exited)");
	publish_desc(c);
	if (big)
		_Exit(status);
	_exit(status);
}

static void c__exit(struct ctx *c)
{
	c_exit_common(c, false);
}

static void c__Exit(struct ctx *c)
{
	c_exit_common(c, true);
}

/* ---- signal actions ---- */

/*
 * The handler a case installs: it ends the child with a status of its
 * own, so a fault after SIGSEGV got it (an old action written to a
 * read-only page) ends both runs alike instead of faulting for ever.
 */
static void h_exit(int sig)
{
	_exit(60 + sig % 60);
}

/* A handler as its kind, so addresses never enter a transcript. */
static long long handler_sym(__sighandler_t h)
{
	if (h == SIG_DFL)
		return 0;
	if (h == SIG_IGN)
		return 1;
	if (h == SIG_ERR)
		return -1;
	return h == h_exit ? 2 : 3;
}

/* SIGALRM is the harness's (arm), never a case's. */
static int pick_signo(struct ctx *c)
{
	static const int sigs[] = {
		SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGUSR1, SIGPIPE,
		SIGCHLD, SIGTERM, SIGKILL, SIGSTOP, 0, -1, 32, 33, 64, 65,
	};
	int sig = sigs[below(&c->r, sizeof(sigs) / sizeof(sigs[0]))];

	d(c, " sig=%d", sig);
	return sig;
}

/* An action as the application reads it back (no addresses). */
static void mix_action(struct ctx *c, const struct sigaction *a)
{
	unsigned long long mask;

	if (TSAN_BUILD)
		return;
	memcpy(&mask, &a->sa_mask, sizeof(mask));
	mix(c, (uint64_t)handler_sym(a->sa_handler));
	mix(c, (unsigned int)a->sa_flags);
	mix(c, mask);
}

/* What the process holds for the signal afterwards, read back. */
static void post_action(struct ctx *c)
{
	struct sigaction now;
	int sig = (int)c->post_n;

	memset(&now, 0, sizeof(now));
	if (sigaction(sig, NULL, &now) == 0)
		mix_action(c, &now);
	else
		mix(c, (uint64_t)errno);
}

static void c_sigaction(struct ctx *c)
{
	static const int flags[] = {
		SA_SIGINFO, SA_RESTART, SA_NODEFER, SA_RESETHAND, SA_ONSTACK,
		SA_NOCLDSTOP,
	};
	static const __sighandler_t handlers[] = { SIG_DFL, SIG_IGN, h_exit };
	int sig = pick_signo(c);
	struct sigaction act, blank, *a = NULL, *old = NULL;

	memset(&act, 0, sizeof(act));
	act.sa_handler = handlers[below(&c->r, 3)];
	for (int i = 0; i < 6; i++)
		if (chance(&c->r, 25))
			act.sa_flags |= flags[i];
	if (chance(&c->r, 10))
		act.sa_flags = (int)rnd(&c->r);
	sigemptyset(&act.sa_mask);
	for (int i = 1; i < 65; i++)
		if (chance(&c->r, 5))
			sigaddset(&act.sa_mask, i);
	d(c, " handler=%lld flags=%#x", handler_sym(act.sa_handler),
	  (unsigned int)act.sa_flags);
	if (chance(&c->r, 80))
		a = pick_place(c, "act", &act, sizeof(act));
	else
		d(c, " act=NULL");
	memset(&blank, 0x5a, sizeof(blank));
	if (chance(&c->r, 70))
		old = pick_place(c, "old", &blank, sizeof(blank));
	else
		d(c, " old=NULL");
	c->post = post_action;
	c->post_n = (size_t)sig;
	CALL(sigaction(sig, a, old));
	if (c->ret == 0 && old &&
	    readable(c, old, sizeof(*old)) == sizeof(*old)) {
		struct sigaction o;

		memcpy(&o, old, sizeof(o));	/* it may be misaligned */
		mix_action(c, &o);
	}
}

static void c_signal(struct ctx *c)
{
	static const __sighandler_t handlers[] = {
		SIG_DFL, SIG_IGN, h_exit, SIG_ERR, (__sighandler_t)2,
	};
	int sig = pick_signo(c);
	__sighandler_t h = handlers[below(&c->r, 5)], prev;

	d(c, " handler=%lld", handler_sym(h));
	c->post = post_action;
	c->post_n = (size_t)sig;
	publish_desc(c);
	errno = 0;
	prev = signal(sig, h);
	c->err = prev == SIG_ERR ? errno : 0;
	c->ret = handler_sym(prev);
}

/* ---- the table: every name in syscalls.def must have a case ---- */

struct call {
	const char *name;
	void (*run)(struct ctx *c);
};

static const struct call calls[] = {
	{ "read", c_read }, { "write", c_write }, { "readv", c_readv },
	{ "writev", c_writev }, { "recv", c_recv }, { "send", c_send },
	{ "recvfrom", c_recvfrom }, { "sendto", c_sendto },
	{ "recvmsg", c_recvmsg }, { "sendmsg", c_sendmsg },
	{ "__read_chk", c_read_chk }, { "__recv_chk", c_recv_chk },
	{ "__recvfrom_chk", c_recvfrom_chk }, { "recvmmsg", c_recvmmsg },
	{ "sendmmsg", c_sendmmsg }, { "sendfile", c_sendfile },
	{ "sendfile64", c_sendfile64 }, { "splice", c_splice },
	{ "epoll_create", c_epoll_create },
	{ "epoll_create1", c_epoll_create1 }, { "epoll_ctl", c_epoll_ctl },
	{ "epoll_wait", c_epoll_wait }, { "epoll_pwait", c_epoll_pwait },
	{ "epoll_pwait2", c_epoll_pwait2 }, { "poll", c_poll },
	{ "__poll_chk", c_poll_chk }, { "ppoll", c_ppoll },
	{ "select", c_select }, { "pselect", c_pselect },
	{ "accept", c_accept }, { "accept4", c_accept4 },
	{ "connect", c_connect }, { "socket", c_socket },
	{ "close", c_close }, { "shutdown", c_shutdown },
	{ "getsockopt", c_getsockopt }, { "setsockopt", c_setsockopt },
	{ "dup", c_dup }, { "dup2", c_dup2 }, { "dup3", c_dup3 },
	{ "fcntl", c_fcntl }, { "fcntl64", c_fcntl64 }, { "ioctl", c_ioctl },
	{ "fork", c_fork }, { "execve", c_execve }, { "execv", c_execv },
	{ "execvp", c_execvp }, { "execvpe", c_execvpe },
	{ "execl", c_execl }, { "execlp", c_execlp }, { "execle", c_execle },
	{ "fexecve", c_fexecve }, { "_exit", c__exit }, { "_Exit", c__Exit },
	{ "sigaction", c_sigaction }, { "signal", c_signal },
};
#define NCALLS (sizeof(calls) / sizeof(calls[0]))

static const char *const interposed[] = {
#define SHIM_CALL(ret, name, params) #name,
#include "../../shim/syscalls.def"
#undef SHIM_CALL
};

static int coverage_check(void)
{
	int missing = 0;

	for (size_t i = 0; i < sizeof(interposed) / sizeof(interposed[0]);
	     i++) {
		size_t j;

		for (j = 0; j < NCALLS; j++)
			if (!strcmp(calls[j].name, interposed[i]))
				break;
		if (j == NCALLS) {
			fprintf(stderr, "fuzz_args: no case for %s "
				"(shim/syscalls.def)\n", interposed[i]);
			missing++;
		}
	}
	return missing;
}

/* ---- one case, in a fresh child ---- */

static void case_run(uint64_t seed, unsigned int index)
{
	static struct ctx c;
	const struct call *call;
	struct sigaction sa;
	char res[40];
	size_t n;

	memset(&c, 0, sizeof(c));
	c.index = index;
	c.r.s = seed * 0x2545f4914f6cdd1dULL + index;
	rnd(&c.r);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alarm;	/* no SA_RESTART: EINTR */
	sigaction(SIGALRM, &sa, NULL);
	call = &calls[below(&c.r, NCALLS)];
	d(&c, "%s", call->name);
	world_make(&c);
	c.digest = 0xcbf29ce484222325ULL;
	/* Arguments are drawn in run; the description is complete first. */
	call->run(&c);
	/* What a call wrote before it failed with EFAULT is unspecified. */
	for (int i = 0; c.err != EFAULT && i < c.nregions; i++) {
		n = readable(&c, c.regions[i].p, c.regions[i].len);
		c.digest = fnv(c.digest, c.regions[i].p, n);
	}
	if (c.post)
		c.post(&c);
	/*
	 * How much of a buffer that faults part way a send takes is the
	 * kernel's page-fragment state at that moment, which differs between
	 * the two runs: a partial send is compared as one, not by count.
	 */
	if (c.fd_result && c.ret >= 0)
		snprintf(res, sizeof(res), "ret=fd");
	else if (c.src_bad && c.ret > 0)
		snprintf(res, sizeof(res), "ret=partial");
	else
		snprintf(res, sizeof(res), "ret=%lld", c.ret);
	snprintf(rec->result, sizeof(rec->result), "%s errno=%s out=%016llx",
		 res, c.err ? strerrorname_np(c.err) : "0",
		 (unsigned long long)c.digest);
	memcpy(rec->desc, c.desc, sizeof(rec->desc));
	rec->stage = 2;
	_exit(0);
}

/* ---- the executor: every case of a range, one line each ---- */

static int pidfd_wait(pid_t pid, int ms)
{
	int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
	struct pollfd p;
	int n;

	if (pfd < 0)
		return 1;
	p.fd = pfd;
	p.events = POLLIN;
	do {
		n = poll(&p, 1, ms);
	} while (n < 0 && errno == EINTR);
	close(pfd);
	return n;
}

static int executor(uint64_t seed, unsigned int first, unsigned int count,
		    double seconds)
{
	struct timespec start, now;
	unsigned int i;

	rec = mmap(NULL, sizeof(*rec), PROT_READ | PROT_WRITE,
		   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (rec == MAP_FAILED)
		return 2;
	under_shim = getenv("FUZZ_ARGS_SHIM") != NULL;
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (i = first; count ? i < first + count : true; i++) {
		char line[1400];
		int status = 0;
		pid_t pid;

		if (seconds > 0) {
			clock_gettime(CLOCK_MONOTONIC, &now);
			if (now.tv_sec - start.tv_sec +
			    (now.tv_nsec - start.tv_nsec) / 1e9 > seconds)
				break;
		}
		memset(rec, 0, sizeof(*rec));
		pid = fork();
		if (pid < 0)
			return 2;
		if (pid == 0)
			case_run(seed, i);
		if (pidfd_wait(pid, HANG_MS) == 0) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			snprintf(rec->result, sizeof(rec->result), "HANG");
		} else {
			waitpid(pid, &status, 0);
			if (WIFSIGNALED(status))
				snprintf(rec->result, sizeof(rec->result),
					 "signal %s%s",
					 sigabbrev_np(WTERMSIG(status)),
					 rec->stage == 2 ? " after" : "");
			else if (rec->stage != 2)
				snprintf(rec->result + strlen(rec->result),
					 sizeof(rec->result) -
					 strlen(rec->result),
					 " exit %d", WEXITSTATUS(status));
		}
		if (under_shim && rec->accel_checked == -1)
			dprintf(2, "fuzz_args: case %u NOT ACCELERATED: %s\n",
				i, rec->note);
		snprintf(line, sizeof(line), "%u %.*s => %s\n", i,
			 (int)sizeof(rec->desc), rec->desc, rec->result);
		if (write(1, line, strlen(line)) < 0)
			return 2;
	}
	return 0;
}

/* ---- the driver: executors plain and under the shim, compared ---- */

static const char *const settings_known[][2] = {
	{ "default", "" },
	{ "adaptive0", "URINGSHIM_ADAPTIVE=0" },
	{ "recv_single", "URINGSHIM_ADAPTIVE=0 URINGSHIM_RECV=single" },
	{ "send_sync", "URINGSHIM_SEND=sync" },
};
#define NSETTINGS (sizeof(settings_known) / sizeof(settings_known[0]))

struct opts {
	uint64_t seed;
	unsigned int first, count;
	double seconds;
	bool one;
	char settings[128];
	const char *shim;
	char self[PATH_MAX];
	char tmp[64];
};

static char **env_build(const struct opts *o, int setting, char *store,
			size_t cap)
{
	extern char **environ;
	static char *envp[512];
	size_t used = 0, n = 0;
	const char *asan = getenv("ASAN_OPTIONS");

#define ENV_ADD(...)							\
	do {								\
		int k_ = snprintf(store + used, cap - used, __VA_ARGS__); \
		if (k_ < 0 || (size_t)k_ >= cap - used || n >= 500)	\
			break;						\
		envp[n++] = store + used;				\
		used += (size_t)k_ + 1;					\
	} while (0)

	for (char **e = environ; *e; e++)
		if (strncmp(*e, "LD_PRELOAD=", 11) &&
		    strncmp(*e, "URINGSHIM_", 10) &&
		    strncmp(*e, "ASAN_OPTIONS=", 13) && n < 480)
			envp[n++] = *e;
	ENV_ADD("LIBC_FATAL_STDERR_=1");
	ENV_ADD("ASAN_OPTIONS=%s%sverify_asan_link_order=0",
		asan ? asan : "", asan ? ":" : "");
	if (setting >= 0) {
		char words[128], *w, *save;

		ENV_ADD("LD_PRELOAD=%s", o->shim);
		ENV_ADD("URINGSHIM_STATS_DIR=%s", o->tmp);
		ENV_ADD("FUZZ_ARGS_SHIM=1");
		snprintf(words, sizeof(words), "%s",
			 settings_known[setting][1]);
		for (w = strtok_r(words, " ", &save); w;
		     w = strtok_r(NULL, " ", &save))
			ENV_ADD("%s", w);
	}
	envp[n] = NULL;
	return envp;
#undef ENV_ADD
}

/* Start an executor writing to <tmp>/<name>.out (and .err). */
static pid_t spawn(const struct opts *o, int setting, const char *name)
{
	static char store[65536];
	char out[PATH_MAX], err[PATH_MAX], a[4][32];
	char **envp = env_build(o, setting, store, sizeof(store));
	pid_t pid;

	snprintf(out, sizeof(out), "%s/%s.out", o->tmp, name);
	snprintf(err, sizeof(err), "%s/%s.err", o->tmp, name);
	snprintf(a[0], sizeof(a[0]), "%llu", (unsigned long long)o->seed);
	snprintf(a[1], sizeof(a[1]), "%u", o->first);
	snprintf(a[2], sizeof(a[2]), "%u", o->count);
	snprintf(a[3], sizeof(a[3]), "%g", o->seconds);
	pid = fork();
	if (pid == 0) {
		int fo = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		int fe = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		int fi = open("/dev/null", O_RDONLY);

		if (fo < 0 || fe < 0 || fi < 0)
			_exit(2);
		dup2(fi, 0);
		dup2(fo, 1);
		dup2(fe, 2);
		char *args[] = { (char *)o->self, "--exec", a[0], a[1], a[2],
				 a[3], NULL };

		execve(o->self, args, envp);
		_exit(2);
	}
	return pid;
}

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	size_t cap = 0, n = 0, k;

	if (!f)
		return NULL;
	do {
		if (cap - n < 65536) {
			char *nb = realloc(buf, cap = cap * 2 + 65536);

			if (!nb) {
				free(buf);
				fclose(f);
				return NULL;
			}
			buf = nb;
		}
		k = fread(buf + n, 1, cap - n - 1, f);
		n += k;
	} while (k);
	fclose(f);
	buf[n] = '\0';
	*len = n;
	return buf;
}

static void print_tail(const char *path, int lines)
{
	size_t len;
	char *s = slurp(path, &len), *p;
	int seen = 0;

	if (!s)
		return;
	for (p = s + len; p > s; p--)
		if (p[-1] == '\n' && ++seen > lines)
			break;
	fprintf(stderr, "%s", p);
	free(s);
}

/* Compare two transcripts line by line; returns the divergences. */
static int compare(const struct opts *o, const char *setting,
		   const char *plain_path, const char *shim_path,
		   unsigned int *cases, bool *passthrough)
{
	size_t la, lb;
	char *a = slurp(plain_path, &la), *b = slurp(shim_path, &lb);
	char *sa, *sb, *pa, *pb;
	int bad = 0;

	*cases = 0;
	if (!a || !b) {
		free(a);
		free(b);
		return 1;
	}
	pa = strtok_r(a, "\n", &sa);
	pb = strtok_r(b, "\n", &sb);
	for (; pa && pb; pa = strtok_r(NULL, "\n", &sa),
	     pb = strtok_r(NULL, "\n", &sb)) {
		(*cases)++;
		if (strstr(pb, "=> PASSTHROUGH")) {
			*passthrough = true;
			break;
		}
		if (strstr(pa, "SETUP FAILED") || strstr(pb, "SETUP FAILED"))
			bad++;
		if (o->one)
			printf("plain: %s\nshim:  %s\n", pa, pb);
		if (!strcmp(pa, pb))
			continue;
		if (++bad <= 40)
			printf("DIVERGENCE (settings %s)\n  plain: %s\n"
			       "  shim:  %s\n  replay: fuzz_args --seed %llu "
			       "--case %u --settings %s\n", setting, pa, pb,
			       (unsigned long long)o->seed,
			       (unsigned int)strtoul(pa, NULL, 10), setting);
	}
	free(a);
	free(b);
	return bad;
}

static int count_lines_with(const char *path, const char *needle)
{
	size_t len;
	char *s = slurp(path, &len), *p;
	int n = 0;

	if (!s)
		return 0;
	for (p = s; (p = strstr(p, needle)); p++)
		n++;
	free(s);
	return n;
}

static int driver(struct opts *o)
{
	int setting_ids[NSETTINGS], nset = 0, bad = 0, unaccel = 0;
	pid_t pids[NSETTINGS + 1];
	char words[128], *w, *save, path[PATH_MAX], ppath[PATH_MAX];
	bool passthrough = false;
	unsigned int cases = 0;
	int status, rc = 0, lock;

	snprintf(words, sizeof(words), "%s", o->settings);
	for (w = strtok_r(words, ",", &save); w;
	     w = strtok_r(NULL, ",", &save)) {
		size_t i;

		for (i = 0; i < NSETTINGS; i++)
			if (!strcmp(w, settings_known[i][0]))
				break;
		if (i == NSETTINGS) {
			fprintf(stderr, "fuzz_args: unknown settings %s\n", w);
			return 2;
		}
		setting_ids[nset++] = (int)i;
	}
	/*
	 * shim_fallback.bats turns io_uring off machine-wide for a moment
	 * under this lock; hold it shared, so the shim runs are never
	 * passthrough half way.
	 */
	lock = open("/tmp/uringshim-io_uring_disabled.lock",
		    O_RDONLY | O_CREAT | O_CLOEXEC, 0644);
	if (lock >= 0)
		flock(lock, LOCK_SH);
	snprintf(o->tmp, sizeof(o->tmp), "/tmp/fuzz_args.XXXXXX");
	if (!mkdtemp(o->tmp)) {
		perror("mkdtemp");
		return 2;
	}
	printf("fuzz_args: seed %llu, cases %u..%s, settings %s\n",
	       (unsigned long long)o->seed, o->first,
	       o->seconds > 0 ? "(time-bounded)" : "", o->settings);
	if (o->seconds <= 0)
		printf("fuzz_args: %u cases each\n", o->count);
	fflush(stdout);
	pids[0] = spawn(o, -1, "plain");
	for (int i = 0; i < nset; i++)
		pids[i + 1] = spawn(o, setting_ids[i],
				    settings_known[setting_ids[i]][0]);
	for (int i = 0; i <= nset; i++) {
		if (pids[i] < 0 || waitpid(pids[i], &status, 0) < 0 ||
		    !WIFEXITED(status) || WEXITSTATUS(status)) {
			fprintf(stderr, "fuzz_args: executor %d failed\n", i);
			rc = 2;
		}
	}
	snprintf(ppath, sizeof(ppath), "%s/plain.out", o->tmp);
	for (int i = 0; i < nset && rc != 2; i++) {
		const char *name = settings_known[setting_ids[i]][0];
		int nb, nu;

		snprintf(path, sizeof(path), "%s/%s.out", o->tmp, name);
		nb = compare(o, name, ppath, path, &cases, &passthrough);
		snprintf(path, sizeof(path), "%s/%s.err", o->tmp, name);
		nu = count_lines_with(path, "NOT ACCELERATED");
		if (nu) {
			fprintf(stderr, "fuzz_args: %s: %d cases whose socket "
				"was not accelerated:\n", name, nu);
			print_tail(path, 5);
		}
		printf("fuzz_args: %s: %u cases compared, %d divergences\n",
		       name, cases, nb);
		bad += nb;
		unaccel += nu;
		if (!cases)
			rc = 2;
	}
	if (rc == 2) {
		snprintf(path, sizeof(path), "%s/plain.err", o->tmp);
		print_tail(path, 10);
	}
	if (passthrough) {
		printf("skip: io_uring unavailable, the shim ran in "
		       "passthrough\n");
		rc = 77;
	} else if (rc != 2 && (bad || unaccel)) {
		rc = 1;
	}
	if (rc != 2 && !getenv("FUZZ_ARGS_KEEP")) {
		char cmd[PATH_MAX + 16];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", o->tmp);
		if (system(cmd))
			fprintf(stderr, "fuzz_args: %s left behind\n", o->tmp);
	} else {
		fprintf(stderr, "fuzz_args: transcripts in %s\n", o->tmp);
	}
	printf("fuzz_args: %s\n", rc == 0 ? "PASS" : rc == 77 ? "SKIP" :
	       "FAIL");
	return rc == 2 ? 1 : rc;
}

static void usage(void)
{
	fprintf(stderr, "usage: fuzz_args [--seed S] [--count N | --seconds "
		"T] [--first I] [--case I] [--settings a,b] [--shim LIB]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	struct opts o = { .seed = 1, .count = 1200 };
	struct rlimit core = { 0, 0 };
	char shim_path[PATH_MAX];
	ssize_t n;

	setrlimit(RLIMIT_CORE, &core);
	if (coverage_check())
		return 1;
	if (argc == 6 && !strcmp(argv[1], "--exec"))
		return executor(strtoull(argv[2], NULL, 0),
				(unsigned int)strtoul(argv[3], NULL, 0),
				(unsigned int)strtoul(argv[4], NULL, 0),
				strtod(argv[5], NULL));
	snprintf(o.settings, sizeof(o.settings), "default,adaptive0,send_sync");
	for (int i = 1; i < argc; i += 2) {
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!v)
			usage();
		if (!strcmp(argv[i], "--seed"))
			o.seed = strtoull(v, NULL, 0);
		else if (!strcmp(argv[i], "--count"))
			o.count = (unsigned int)strtoul(v, NULL, 0);
		else if (!strcmp(argv[i], "--first"))
			o.first = (unsigned int)strtoul(v, NULL, 0);
		else if (!strcmp(argv[i], "--seconds"))
			o.seconds = strtod(v, NULL);
		else if (!strcmp(argv[i], "--case")) {
			o.first = (unsigned int)strtoul(v, NULL, 0);
			o.count = 1;
			o.one = true;
		} else if (!strcmp(argv[i], "--settings"))
			snprintf(o.settings, sizeof(o.settings), "%s", v);
		else if (!strcmp(argv[i], "--shim"))
			o.shim = v;
		else
			usage();
	}
	if (o.seconds > 0)
		o.count = 0;
	n = readlink("/proc/self/exe", o.self, sizeof(o.self) - 1);
	if (n <= 0)
		return 2;
	o.self[n] = '\0';
	if (!o.shim)
		o.shim = getenv("FUZZ_SHIM_LIB");
	if (!o.shim) {
		/* $BUILD/tests/fuzz/fuzz_args -> $BUILD/liburingshim.so */
		snprintf(shim_path, sizeof(shim_path), "%s", o.self);
		*strrchr(shim_path, '/') = '\0';
		strncat(shim_path, "/../../liburingshim.so",
			sizeof(shim_path) - strlen(shim_path) - 1);
		o.shim = shim_path;
	}
	if (access(o.shim, R_OK)) {
		printf("skip: no shim at %s\n", o.shim);
		return 77;
	}
	return driver(&o);
}
