/*
 * conform.h - helpers shared by the shim conformance programs.
 *
 * Every program in tests/shim/ proves one semantic corner of the shim's
 * contract. It prints a transcript of what the application observed (return
 * values, errno names, bytes, epoll events with their data) on stdout and
 * exits 0 when its own checks pass, 1 when one fails, 77 to skip. The bats
 * suite runs each program plainly and under LD_PRELOAD=liburingshim.so and
 * requires byte-identical transcripts, so nothing printed may depend on
 * timing: values that do are checked with expect() and not printed.
 */
#ifndef CONFORM_H
#define CONFORM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <poll.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/types.h>
#include <time.h>

/* Generous wait for anything that must happen: a hang guard, not a budget. */
#define WAIT_MS 2000

void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void expect_at(bool ok, const char *what, const char *file, int line);
#define expect(cond) expect_at((cond), #cond, __FILE__, __LINE__)
/* Print the verdict and return the exit status for main(). */
int conform_finish(void);
__attribute__((noreturn)) void die_errno(const char *what);
__attribute__((noreturn)) void skip(const char *why);

/* "EAGAIN" for EAGAIN, "0" for 0: stable names for transcripts. */
const char *errno_name(int err);
/* "IN|OUT|RDHUP": an epoll event mask as text (per-thread buffers). */
const char *epoll_event_names(uint32_t events);
/* "ret=5" or "ret=-1 EAGAIN" for a call's result, using the current errno. */
const char *result_text(ssize_t ret);

int tcp_listener(int family);
/*
 * tcp_pair - a connected loopback TCP pair: *client is connected with a
 * blocking connect() and left blocking, *server is accepted with
 * SOCK_NONBLOCK. Skips (77) when ::1 is missing, dies on other failures.
 */
void tcp_pair(int family, int *client, int *server);
void tcp_pair_from(int listener, int *client, int *server);
/* A blocking socket connected to listener's address; dies on failure. */
int tcp_connect_to(int listener);
void set_nonblock(int fd, bool on);
/* close_all(fd, ...) - close every fd given, in order. */
void close_fds(const int *fds, size_t count);
#define close_all(...)							\
	close_fds((const int[]){ __VA_ARGS__ },				\
		  sizeof((const int[]){ __VA_ARGS__ }) / sizeof(int))

/*
 * serve_fd - register fd (EPOLLIN|EPOLLOUT|EPOLLET) in a process-wide epoll
 * set nobody waits on, as an epoll server registers each connection. The
 * shim accelerates only sockets that join an epoll set, so programs that
 * otherwise use no epoll call this to put the shim's paths under test.
 */
void serve_fd(int fd);
int epoll_new(void);
void epoll_add(int epfd, int fd, uint32_t events, uint64_t data);
/*
 * tcp_pair_epoll - tcp_pair(AF_INET, ...), then a new epoll set with
 * *server registered for events with data; returns the set.
 */
int tcp_pair_epoll(int *client, int *server, uint32_t events, uint64_t data);
void epoll_mod(int epfd, int fd, uint32_t events, uint64_t data);
/*
 * epoll_report - epoll_wait once and print "<label>: n=<n> [<data> <events>]
 * ..." with the events sorted by data so the kernel's ready-list order does
 * not matter. Returns n; the events are copied to out[] when out is non-NULL.
 */
int epoll_report(int epfd, int timeout_ms, const char *label,
		 struct epoll_event *out, int max);

/*
 * expect_no_report - epoll_report that must find nothing ready (a failure
 * names the caller's line).
 */
void expect_no_report_at(int epfd, int timeout_ms, const char *label,
			 const char *file, int line);
#define expect_no_report(epfd, timeout_ms, label) \
	expect_no_report_at((epfd), (timeout_ms), (label), __FILE__, __LINE__)

/*
 * epoll_wait_for - wait (up to WAIT_MS in all) until a report carries one of
 * bits; *ev gets that report (or the last one seen). Level-triggered sets
 * may return at once with other bits, so the bound is time, not tries, with
 * short pauses between early returns. Returns true when the bits came.
 */
bool epoll_wait_for(int epfd, uint32_t bits, struct epoll_event *ev);
/* The same for poll on one fd: revents of the last poll in *revents. */
bool poll_wait_for(int fd, short events, short bits, short *revents);

/* Wait up to WAIT_MS for poll events on fd; returns revents (0 on timeout). */
short wait_fd(int fd, short events);
short wait_fd_ms(int fd, short events, int timeout_ms);
/*
 * read_stream - read up to len bytes, waiting for readiness between reads,
 * until len bytes, EOF or an error. Returns the byte count; *eof is set when
 * EOF was seen, *err to the errno of a failed read (0 otherwise).
 */
size_t read_stream(int fd, void *buf, size_t len, bool *eof, int *err);
/* write_all - write len bytes, waiting for writability when short. */
void write_all(int fd, const void *buf, size_t len);
/*
 * put_text - one write() of text; expects it whole (a failure names the
 * caller's line), returns whether it was.
 */
bool put_text_at(int fd, const char *text, const char *file, int line);
#define put_text(fd, text) put_text_at((fd), (text), __FILE__, __LINE__)
/*
 * read_print - one read() of at most len (<= 64) bytes, printed as
 * "<label>: <result_text> '<bytes>'".
 */
void read_print(int fd, size_t len, const char *label);
/*
 * expect_stream - read fd (at most 255 bytes) until EOF or an error and
 * print "<label>: '<bytes>' eof=<0|1> <errno name>"; expects exactly want,
 * then EOF when want_err is 0, else the read error want_err.
 */
void expect_stream(int fd, const char *label, const char *want,
		   int want_err);

/*
 * fork_flushed - fork() after flushing stdout, so the child never prints
 * the parent's buffered transcript again; dies when fork fails.
 */
pid_t fork_flushed(void);
/*
 * child_accept - in a forked child: wait for a connection on listener and
 * accept it non-blocking; _exit(2) when none comes, _exit(3) when accept
 * fails (the parent sees the child's exit status).
 */
int child_accept(int listener);

/*
 * stream_check - a thread reading fd to EOF and checking every byte against
 * pattern seed; after stream_check_join, got is the byte count, bad_at the
 * offset of the first wrong byte (UINT64_MAX when none), eof whether EOF was
 * read, err the errno that ended the stream otherwise (ETIMEDOUT when idle
 * for STREAM_IDLE_MS).
 */
#define STREAM_IDLE_MS 5000
struct stream_check {
	int fd;
	uint32_t seed;
	int delay_ms;		/* before the first read */
	uint64_t got;
	uint64_t bad_at;
	bool eof;
	int err;
	pthread_t thread;
};
void stream_check_start(struct stream_check *sc, int fd, uint32_t seed);
/*
 * stream_check_start_late - the same, reading only after delay_ms: a peer
 * that is slow to read, so the writer meets full buffers. Nothing depends
 * on the delay being long enough; it only makes the case likely.
 */
void stream_check_start_late(struct stream_check *sc, int fd, uint32_t seed,
			     int delay_ms);
void stream_check_join(struct stream_check *sc);
/*
 * stream_check_expect_all - join sc, then expect the peer got exactly the
 * sent bytes, none wrong, then EOF; prints "<label>: peer got every
 * accepted byte yes|NO, bad byte none|FOUND, eof yes|no" (never the count:
 * how much fits in the buffers is kernel tuning).
 */
void stream_check_expect_all(struct stream_check *sc, uint64_t sent,
			     const char *label);

/*
 * late_write - a thread writing text to fd once, after delay_ms: input
 * that arrives while the caller is blocked in a read. A short write is a
 * failed check; late_write_join waits for the thread.
 */
struct late_write {
	int fd;
	const char *text;
	int delay_ms;
	pthread_t thread;
};
void late_write_start(struct late_write *lw, int fd, const char *text,
		      int delay_ms);
void late_write_join(struct late_write *lw);

/* Milliseconds since *start (CLOCK_MONOTONIC). */
long elapsed_ms(const struct timespec *start);

/*
 * fill_until_eagain - write pattern seed on non-blocking fd until a write
 * fails (normally EAGAIN: buffers full); returns the bytes accepted.
 */
uint64_t fill_until_eagain(int fd, uint32_t seed);

/* A position-dependent byte stream, so reordering or loss is detected. */
uint8_t pattern_byte(uint32_t seed, uint64_t offset);
void pattern_fill(void *buf, size_t len, uint32_t seed, uint64_t offset);
/* Offset of the first mismatch, or len when every byte matches. */
size_t pattern_check(const void *buf, size_t len, uint32_t seed,
		     uint64_t offset);

#endif
