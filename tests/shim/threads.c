/*
 * threads - sockets accepted on one thread, served by another's epoll loop.
 *
 * An acceptor thread accepts connections and hands each fd over a pipe to
 * a server thread, which registers it in its own epoll set and answers each
 * request with the upper-cased text. The main thread is the clients. A
 * thread blocked in epoll_wait is woken by another thread's EPOLL_CTL_ADD
 * of a ready socket. A write followed by a condition-variable wait goes out
 * while another thread's epoll loop waits for the answer. Then a few
 * threads each stream 1 MiB to their own socket and close it; every
 * stream must arrive whole and in order.
 */
#include "conform.h"

#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CLIENTS	4
#define WRITERS	3
#define STREAM	(1 << 20)

struct server {
	int listener;
	int handoff[2];		/* acceptor -> server: accepted fds */
};

static void *acceptor_run(void *arg)
{
	struct server *srv = arg;

	for (int i = 0; i < CLIENTS; i++) {
		int fd;

		if (!wait_fd(srv->listener, POLLIN))
			break;
		fd = accept4(srv->listener, NULL, NULL, SOCK_NONBLOCK);
		if (fd < 0)
			break;
		if (write(srv->handoff[1], &fd, sizeof(fd)) != sizeof(fd))
			break;
	}
	close(srv->handoff[1]);
	return NULL;
}

/* Answer one request per connection, then close it. */
static void *server_run(void *arg)
{
	struct server *srv = arg;
	struct epoll_event ev;
	int epfd = epoll_new(), served = 0;
	char buf[64];

	epoll_add(epfd, srv->handoff[0], EPOLLIN, UINT64_MAX);
	while (served < CLIENTS && epoll_wait(epfd, &ev, 1, WAIT_MS * 5) == 1) {
		int fd;
		ssize_t n;

		if (ev.data.u64 == UINT64_MAX) {
			if (read(srv->handoff[0], &fd, sizeof(fd)) !=
			    sizeof(fd)) {
				epoll_ctl(epfd, EPOLL_CTL_DEL,
					  srv->handoff[0], NULL);
				continue;
			}
			epoll_add(epfd, fd, EPOLLIN | EPOLLET, fd);
			continue;
		}
		fd = ev.data.u64;
		n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EAGAIN)
			continue;
		for (ssize_t i = 0; i < n; i++)
			buf[i] = toupper((unsigned char)buf[i]);
		if (n > 0 && write(fd, buf, n) != n)
			expect(!"server write");
		close(fd);
		served++;
	}
	close(epfd);
	return NULL;
}

struct writer {
	int fd;
	uint32_t seed;
	bool ok;
	pthread_t thread;
};

static void *writer_run(void *arg)
{
	struct writer *w = arg;
	uint8_t buf[8192];

	for (size_t off = 0; off < STREAM; off += sizeof(buf)) {
		pattern_fill(buf, sizeof(buf), w->seed, off);
		write_all(w->fd, buf, sizeof(buf));
	}
	w->ok = close(w->fd) == 0;
	return NULL;
}

struct waiter {
	int epfd;
	int n;
	struct epoll_event ev;
};

static void *waiter_run(void *arg)
{
	struct waiter *w = arg;

	w->n = epoll_wait(w->epfd, &w->ev, 1, WAIT_MS * 5);
	return NULL;
}

/* Usually lets the waiter block first; correctness never depends on it. */
static void let_waiter_block(void)
{
	struct timespec pause = { 0, 50 * 1000 * 1000 };

	nanosleep(&pause, NULL);
}

/*
 * A thread blocked in epoll_wait is woken when another thread makes its set
 * ready: first by adding a socket that already has input, then by data
 * arriving for a socket that thread registered. Whether the waiter had
 * already blocked is timing; the outcome is the same either way.
 */
static void cross_thread_wakeup(void)
{
	struct waiter w = { .epfd = epoll_new() };
	pthread_t thread;
	int peer, conn, peer2, conn2;
	char buf[16];

	tcp_pair(AF_INET, &peer, &conn);
	tcp_pair(AF_INET, &peer2, &conn2);
	write_all(peer, "ready", 5);
	wait_fd(conn, POLLIN);
	pthread_create(&thread, NULL, waiter_run, &w);
	let_waiter_block();
	epoll_add(w.epfd, conn, EPOLLIN, 21);
	pthread_join(thread, NULL);
	say("waiter woken by another thread's ADD: n=%d [0x%llx %s]", w.n,
	    (unsigned long long)w.ev.data.u64, epoll_event_names(w.ev.events));
	expect(w.n == 1 && w.ev.data.u64 == 21);
	expect(read(conn, buf, sizeof(buf)) == 5);

	epoll_add(w.epfd, conn2, EPOLLIN | EPOLLET, 22);
	pthread_create(&thread, NULL, waiter_run, &w);
	let_waiter_block();
	write_all(peer2, "later", 5);
	pthread_join(thread, NULL);
	say("waiter woken by arrival: n=%d [0x%llx %s]", w.n,
	    (unsigned long long)w.ev.data.u64, epoll_event_names(w.ev.events));
	expect(w.n == 1 && w.ev.data.u64 == 22);

	close(w.epfd);
	close(conn);
	close(conn2);
	close(peer);
	close(peer2);
}

/*
 * A worker writes a request and sleeps on a condition variable (not a wait
 * point the shim sees) while the loop thread waits in epoll for the answer:
 * the request must go out without the worker waiting anywhere else.
 */
struct rendezvous {
	int conn, peer, epfd;
	pthread_mutex_t lock;
	pthread_cond_t done;
	int state;		/* 0 waiting, 1 answered, -1 timed out */
	char answer[16];
};

static void *loop_thread_run(void *arg)
{
	struct rendezvous *rv = arg;
	struct epoll_event ev;
	int n = epoll_wait(rv->epfd, &ev, 1, WAIT_MS * 2);

	pthread_mutex_lock(&rv->lock);
	rv->state = -1;
	if (n == 1) {
		ssize_t got = read(rv->conn, rv->answer,
				   sizeof(rv->answer) - 1);

		if (got > 0) {
			rv->answer[got] = '\0';
			rv->state = 1;
		}
	}
	pthread_cond_signal(&rv->done);
	pthread_mutex_unlock(&rv->lock);
	return NULL;
}

static void *echo_thread_run(void *arg)
{
	struct rendezvous *rv = arg;
	char buf[16];
	ssize_t n;

	if (!wait_fd_ms(rv->peer, POLLIN, WAIT_MS * 2))
		return NULL;
	n = read(rv->peer, buf, sizeof(buf));
	if (n > 0 && write(rv->peer, buf, n) != n)
		expect(!"echo write");
	return NULL;
}

static void write_then_condvar(void)
{
	struct rendezvous rv = { .lock = PTHREAD_MUTEX_INITIALIZER,
				 .done = PTHREAD_COND_INITIALIZER };
	pthread_t loop, echo;

	tcp_pair(AF_INET, &rv.peer, &rv.conn);
	rv.epfd = epoll_new();
	epoll_add(rv.epfd, rv.conn, EPOLLIN, 1);
	pthread_create(&echo, NULL, echo_thread_run, &rv);
	pthread_create(&loop, NULL, loop_thread_run, &rv);
	let_waiter_block();
	expect(write(rv.conn, "request", 7) == 7);
	pthread_mutex_lock(&rv.lock);
	while (!rv.state)
		pthread_cond_wait(&rv.done, &rv.lock);
	pthread_mutex_unlock(&rv.lock);
	say("write, then condition variable: answer %s",
	    rv.state > 0 ? rv.answer : "TIMED OUT");
	expect(rv.state > 0 && !strcmp(rv.answer, "request"));
	pthread_join(loop, NULL);
	pthread_join(echo, NULL);
	close(rv.epfd);
	close(rv.conn);
	close(rv.peer);
}

int main(void)
{
	struct server srv;
	struct writer writers[WRITERS];
	struct stream_check readers[WRITERS];
	pthread_t acceptor, server;
	int clients[CLIENTS];

	srv.listener = tcp_listener(AF_INET);
	if (pipe(srv.handoff) < 0)
		die_errno("pipe");
	pthread_create(&server, NULL, server_run, &srv);
	pthread_create(&acceptor, NULL, acceptor_run, &srv);

	for (int i = 0; i < CLIENTS; i++) {
		struct sockaddr_storage addr;
		socklen_t len = sizeof(addr);
		char req[32], resp[32];
		bool eof;
		int err;
		size_t got;

		/* Accepted by the acceptor thread, not by tcp_pair_from. */
		if (getsockname(srv.listener, (struct sockaddr *)&addr,
				&len) < 0)
			die_errno("getsockname");
		clients[i] = socket(addr.ss_family, SOCK_STREAM, 0);
		if (clients[i] < 0 ||
		    connect(clients[i], (struct sockaddr *)&addr, len) < 0)
			die_errno("connect");
		snprintf(req, sizeof(req), "hello %d", i);
		write_all(clients[i], req, strlen(req));
		got = read_stream(clients[i], resp, sizeof(resp) - 1, &eof,
				  &err);
		resp[got] = '\0';
		say("client %d: '%s' eof=%d %s", i, resp, eof,
		    errno_name(err));
		expect(got == strlen(req) && eof);
		close(clients[i]);
	}
	pthread_join(acceptor, NULL);
	pthread_join(server, NULL);
	close(srv.handoff[0]);
	close(srv.listener);

	cross_thread_wakeup();
	write_then_condvar();

	for (int i = 0; i < WRITERS; i++) {
		int peer;

		tcp_pair(AF_INET, &peer, &writers[i].fd);
		serve_fd(writers[i].fd);
		writers[i].seed = 0x7000 + i;
		stream_check_start(&readers[i], peer, writers[i].seed);
	}
	for (int i = 0; i < WRITERS; i++)
		pthread_create(&writers[i].thread, NULL, writer_run,
			       &writers[i]);
	for (int i = 0; i < WRITERS; i++) {
		pthread_join(writers[i].thread, NULL);
		stream_check_join(&readers[i]);
		say("writer %d: close ok %d, peer got %llu bytes, bad byte %s, "
		    "eof %d", i, writers[i].ok,
		    (unsigned long long)readers[i].got,
		    readers[i].bad_at == UINT64_MAX ? "none" : "FOUND",
		    readers[i].eof);
		expect(writers[i].ok && readers[i].got == STREAM);
		expect(readers[i].bad_at == UINT64_MAX && readers[i].eof);
		close(readers[i].fd);
	}
	return conform_finish();
}
