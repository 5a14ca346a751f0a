/*
 * bad_args - bad pointers and counts get the kernel's EFAULT and EINVAL,
 * never a signal (issue 10, item 1).
 *
 * An accelerated socket (its epoll set waited on, so the ring has it,
 * checked from the stats file under the shim) with input pending, and a
 * pipe the shim never owns, get calls whose pointers are NULL or point at
 * a PROT_NONE page, and whose counts are 0, -1 or too large: poll with a
 * NULL array and with nfds above RLIMIT_NOFILE, select with an unreadable
 * set, recvmsg/sendmsg with a bad msghdr, a bad iovec array, a bad buffer,
 * too many segments and a negative name length, recvmmsg/sendmmsg with a
 * bad vector, readv/writev with bad counts, epoll_ctl with a bad event,
 * epoll_wait with a bad array (events ready) and bad counts, epoll_pwait2
 * with a bad timeout, ioctl FIONREAD/FIONBIO and SO_PEEK_OFF/SO_ERROR
 * with a bad int, zero-length calls with a bad buffer.  Each prints the
 * result.  Afterwards the socket still carries every byte both ways, and
 * is still accelerated.
 */
#include "conform.h"
#include "accel_probe.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

/* ASan and TSan: their interceptors read the caller's structures too. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZER_BUILD 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SANITIZER_BUILD 1
#endif
#endif

/* Valgrind rightly flags the bad pointers: quiet it around them only. */
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define BAD_BEGIN() VALGRIND_DISABLE_ERROR_REPORTING
#define BAD_END() VALGRIND_ENABLE_ERROR_REPORTING
#else
#define BAD_BEGIN() do { } while (0)
#define BAD_END() do { } while (0)
#endif

/* Hidden from the compiler, which rightly refuses to see these passed. */
static void *hide(void *p)
{
	__asm__ volatile("" : "+r"(p));
	return p;
}

static long hide_n(long n)
{
	__asm__ volatile("" : "+r"(n));
	return n;
}

static void show(const char *what, long ret)
{
	say("%s: %s", what, result_text(ret));
	fflush(stdout);
}

int main(void)
{
	struct epoll_event ev, evs[4];
	struct msghdr msg;
	struct mmsghdr mm;
	struct iovec iov[2];
	struct pollfd pfd;
	struct rlimit rl;
	struct timespec zero = { 0, 0 };
	struct timeval tv = { 0, 0 };
	int peer, conn, epfd, pipefd[2], v, err;
	socklen_t len;
	char buf[64], *bad;
	size_t got;
	bool eof;

	bad = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (bad == MAP_FAILED)
		die_errno("mmap");
	if (pipe(pipefd))
		die_errno("pipe");
	epfd = tcp_pair_epoll(&peer, &conn, EPOLLIN | EPOLLOUT, 7);
	put_text(peer, "0123456789");
	expect(epoll_wait_for(epfd, EPOLLIN, &ev));
	expect_accelerated(1);
	getrlimit(RLIMIT_NOFILE, &rl);

	BAD_BEGIN();
	/* poll/select: the array and the sets. */
	show("poll NULL array", poll(hide(NULL), 1, 0));
	pfd = (struct pollfd){ .fd = conn, .events = POLLIN };
#ifndef SANITIZER_BUILD
	/* A sanitizer's own poll reads every entry first: it faults. */
	show("poll nfds above RLIMIT_NOFILE",
	     poll(hide(&pfd), hide_n(rl.rlim_cur + 1), 0));
	show("poll 1<<30 entries", poll(hide(&pfd), hide_n(1L << 30), 0));
#endif
	show("poll array on PROT_NONE", poll((struct pollfd *)bad, 1, 0));
	show("ppoll negative timeout",
	     ppoll(&pfd, 1, &(struct timespec){ 0, -1 }, NULL));
	show("select unreadable set",
	     select(conn + 1, (fd_set *)bad, NULL, NULL, &tv));
	show("pselect nfds -1", pselect(-1, NULL, NULL, NULL, &zero, NULL));

	/* recvmsg/sendmsg: the msghdr, its iovecs, its buffers. */
	show("recvmsg NULL msghdr", recvmsg(conn, NULL, 0));
	show("recvmsg msghdr on PROT_NONE",
	     recvmsg(conn, (struct msghdr *)bad, 0));
	memset(&msg, 0, sizeof(msg));
	msg.msg_iov = (struct iovec *)bad;
	msg.msg_iovlen = 1;
	show("recvmsg iovec array on PROT_NONE", recvmsg(conn, &msg, 0));
	iov[0] = (struct iovec){ bad, 10 };
	msg.msg_iov = iov;
	show("recvmsg into PROT_NONE", recvmsg(conn, &msg, 0));
	msg.msg_iovlen = 1025;
	show("recvmsg 1025 segments", recvmsg(conn, &msg, 0));
	msg.msg_iovlen = 1;
	msg.msg_name = buf;
	msg.msg_namelen = (socklen_t)-1;
	show("recvmsg negative name length", recvmsg(conn, &msg, 0));
	show("sendmsg NULL msghdr", sendmsg(conn, NULL, MSG_NOSIGNAL));
	msg.msg_name = NULL;
	msg.msg_namelen = 0;
	msg.msg_iov = (struct iovec *)bad;
	show("sendmsg iovec array on PROT_NONE",
	     sendmsg(conn, &msg, MSG_NOSIGNAL));
	msg.msg_iov = iov;
	show("sendmsg from PROT_NONE", sendmsg(conn, &msg, MSG_NOSIGNAL));
	show("recvmmsg NULL vector", recvmmsg(conn, NULL, 1, 0, NULL));
	show("sendmmsg vector on PROT_NONE",
	     sendmmsg(conn, (struct mmsghdr *)bad, 1, MSG_NOSIGNAL));
	memset(&mm, 0, sizeof(mm));
	mm.msg_hdr.msg_iov = iov;
	mm.msg_hdr.msg_iovlen = 1;
	show("recvmmsg timeout on PROT_NONE",
	     recvmmsg(conn, &mm, 1, 0, (struct timespec *)bad));

	/* readv/writev: the counts. */
	show("readv NULL array", readv(conn, hide(NULL), 1));
	show("readv count -1", readv(conn, iov, hide_n(-1)));
	show("writev count 1025", writev(conn, iov, hide_n(1025)));
	iov[0] = (struct iovec){ buf, (size_t)-1 };
	show("readv negative length", readv(conn, iov, 1));

	/* epoll: the event, the array, the counts, the timeout. */
	show("epoll_ctl MOD event on PROT_NONE",
	     epoll_ctl(epfd, EPOLL_CTL_MOD, conn, (struct epoll_event *)bad));
	show("epoll_ctl MOD NULL event",
	     epoll_ctl(epfd, EPOLL_CTL_MOD, conn, NULL));
	show("epoll_wait NULL array, events ready",
	     epoll_wait(epfd, hide(NULL), 4, 0));
	show("epoll_wait array on PROT_NONE, events ready",
	     epoll_wait(epfd, (struct epoll_event *)bad, 4, 0));
	show("epoll_wait maxevents 0", epoll_wait(epfd, evs, 0, 0));
	show("epoll_wait maxevents -1, bad array",
	     epoll_wait(epfd, hide(bad), hide_n(-1), 0));
	show("epoll_wait maxevents INT_MAX",
	     epoll_wait(epfd, evs, hide_n(INT_MAX), 0));
	show("epoll_pwait2 timeout on PROT_NONE",
	     epoll_pwait2(epfd, evs, 4, (struct timespec *)bad, NULL));
	show("epoll_pwait sigmask on PROT_NONE",
	     epoll_pwait(epfd, evs, 4, 0, (sigset_t *)bad));

	/* The ints behind ioctl and socket options. */
	show("ioctl FIONREAD NULL", ioctl(conn, FIONREAD, NULL));
	show("ioctl FIONBIO on PROT_NONE", ioctl(conn, FIONBIO, bad));
	show("setsockopt SO_PEEK_OFF on PROT_NONE",
	     setsockopt(conn, SOL_SOCKET, SO_PEEK_OFF, bad, sizeof(int)));
	show("getsockopt SO_ERROR length on PROT_NONE",
	     getsockopt(conn, SOL_SOCKET, SO_ERROR, &v, (socklen_t *)bad));

	/* Nothing to move: a bad pointer with a zero length. */
	show("read 0 bytes into PROT_NONE", read(conn, bad, 0));
	show("write 0 bytes from PROT_NONE", write(conn, bad, 0));
	show("recv 0 bytes into NULL", recv(conn, NULL, 0, 0));

	/* The fd the shim does not own: the kernel's answers, unread. */
	show("pipe: recvmsg NULL msghdr", recvmsg(pipefd[0], NULL, 0));
	show("pipe: readv count -1", readv(pipefd[0], iov, hide_n(-1)));
	show("pipe: ioctl FIONREAD NULL", ioctl(pipefd[0], FIONREAD, NULL));
	BAD_END();

	/* Nothing lost: every byte both ways, still through the ring. */
	expect_accelerated(1);
	got = read_stream(conn, buf, 10, &eof, &err);
	say("input after: '%.*s'", (int)got, buf);
	expect(got == 10 && !memcmp(buf, "0123456789", 10));
	put_text(conn, "reply");
	len = sizeof(v);
	expect(getsockopt(conn, SOL_SOCKET, SO_ERROR, &v, &len) == 0 &&
	       v == 0);
	close(conn);
	got = read_stream(peer, buf, sizeof(buf), &eof, &err);
	say("peer got: '%.*s' eof=%d", (int)got, buf, eof);
	expect(got == 5 && !memcmp(buf, "reply", 5) && eof);
	close_all(peer, epfd, pipefd[0], pipefd[1]);
	munmap(bad, 4096);
	return conform_finish();
}
