/*
 * loop_threads - worker threads, each with an epoll loop of its own, fed
 * connections by the main thread (the memcached pattern).
 *
 * The main thread accepts every connection and hands it to a worker over
 * that worker's pipe; the worker adds it to its own epoll set and answers
 * pipelined requests in order, naming itself in each answer, so a
 * connection served by the wrong thread or an answer out of order shows.
 * Then worker 0 is handed one more socket, streams 4 MiB into it (its peer
 * slow to start reading, so bytes are still queued when it ends) and ends
 * its thread without closing the socket: the peer must still get every
 * byte, and EOF once the main thread closes it after the join.  Worker 1
 * fills a socket whose peer reads nothing until the worker has ended (the
 * writes it was told succeeded must all arrive all the same).  Under the
 * shim every worker runs a ring of its own; shim_ops.bats counts them.
 */
#include "conform.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define WORKERS		3
#define CONNS		6
#define REQS		40
#define REQ_LEN		8	/* "Q000017\n" */
#define ANS_LEN		10	/* "A1:000017\n" */
#define STREAM		(4 << 20)
#define STREAM_SEED	0x5157
#define FILL_SEED	0xf111

enum job_kind { JOB_SERVE, JOB_STREAM, JOB_FILL };

struct job {
	int fd;
	int kind;
};

struct worker {
	int idx;
	int pipe[2];		/* main -> worker: struct job */
	uint64_t filled;	/* JOB_FILL: bytes the writes accepted */
	pthread_t thread;
};

/* Bytes of a request not yet complete, per connection fd. */
struct partial {
	char buf[REQ_LEN];
	size_t len;
};

static void answer(struct worker *w, int fd, struct partial *p)
{
	char in[512], out[sizeof(in) / REQ_LEN * ANS_LEN + ANS_LEN];
	size_t used = 0;
	ssize_t n = read(fd, in, sizeof(in));

	if (n <= 0) {
		expect(n == 0 || errno == EAGAIN);
		if (n == 0)
			close(fd);
		return;
	}
	for (ssize_t i = 0; i < n; i++) {
		p->buf[p->len++] = in[i];
		if (p->len < REQ_LEN)
			continue;
		p->len = 0;
		expect(p->buf[0] == 'Q' && p->buf[REQ_LEN - 1] == '\n');
		used += snprintf(out + used, sizeof(out) - used, "A%d:%.6s\n",
				 w->idx, p->buf + 1);
	}
	if (used)
		write_all(fd, out, used);
}

/* Stream the pattern, waiting for room in the worker's own set. */
static void stream(int epfd, int fd)
{
	uint8_t buf[16 * 1024];
	struct epoll_event ev;
	size_t off = 0;

	epoll_add(epfd, fd, EPOLLOUT | EPOLLET, (uint64_t)fd);
	while (off < STREAM) {
		size_t len = STREAM - off < sizeof(buf) ? STREAM - off
							: sizeof(buf);
		ssize_t n;

		pattern_fill(buf, len, STREAM_SEED, off);
		n = write(fd, buf, len);
		if (n > 0) {
			off += n;
			continue;
		}
		if (n < 0 && errno == EAGAIN &&
		    epoll_wait(epfd, &ev, 1, WAIT_MS) == 1)
			continue;
		expect(!"stream write");
		return;
	}
}

static void *worker_run(void *arg)
{
	static struct partial partials[1024];
	struct worker *w = arg;
	struct epoll_event evs[8];
	int epfd = epoll_new();

	epoll_add(epfd, w->pipe[0], EPOLLIN, UINT64_MAX);
	for (;;) {
		int n = epoll_wait(epfd, evs, 8, WAIT_MS * 5);

		if (n <= 0) {
			expect(!"worker wait");
			return NULL;
		}
		for (int i = 0; i < n; i++) {
			struct job job;
			ssize_t got;

			if (evs[i].data.u64 != UINT64_MAX) {
				int fd = (int)evs[i].data.u64;

				answer(w, fd, &partials[fd]);
				continue;
			}
			got = read(w->pipe[0], &job, sizeof(job));
			if (got == 0)
				return NULL;	/* no more jobs */
			expect(got == sizeof(job) && job.fd < 1024);
			/* These end the thread; the socket stays open. */
			if (job.kind == JOB_STREAM) {
				stream(epfd, job.fd);
				return NULL;
			}
			if (job.kind == JOB_FILL) {
				epoll_add(epfd, job.fd, EPOLLOUT, 0);
				w->filled = fill_until_eagain(job.fd,
							      FILL_SEED);
				return NULL;
			}
			partials[job.fd].len = 0;
			epoll_add(epfd, job.fd, EPOLLIN, (uint64_t)job.fd);
		}
	}
}

static void hand_over(struct worker *w, int fd, int kind)
{
	struct job job = { .fd = fd, .kind = kind };

	expect(write(w->pipe[1], &job, sizeof(job)) == sizeof(job));
}

/* Send REQS pipelined requests on client; check the answers from worker. */
static void check_conn(int i, int client, int worker)
{
	char req[REQS * REQ_LEN + 1], want[REQS * ANS_LEN + 1];
	char got[sizeof(want)];
	size_t n;
	bool eof;
	int err;

	for (int r = 0; r < REQS; r++) {
		snprintf(req + r * REQ_LEN, REQ_LEN + 1, "Q%06d\n",
			 i * 1000 + r);
		snprintf(want + r * ANS_LEN, ANS_LEN + 1, "A%d:%06d\n",
			 worker, i * 1000 + r);
	}
	write_all(client, req, REQS * REQ_LEN);
	n = read_stream(client, got, REQS * ANS_LEN, &eof, &err);
	say("conn %d: %zu answer bytes from worker %d, in order %s", i, n,
	    worker, n == REQS * ANS_LEN &&
	    !memcmp(got, want, n) ? "yes" : "NO");
	expect(n == REQS * ANS_LEN && !memcmp(got, want, n));
}

int main(void)
{
	struct worker workers[WORKERS];
	struct stream_check reader, fill_reader;
	int clients[CONNS], server, client, fill_server, fill_client;
	int listener;

	listener = tcp_listener(AF_INET);
	for (int w = 0; w < WORKERS; w++) {
		workers[w].idx = w;
		if (pipe(workers[w].pipe) < 0)
			die_errno("pipe");
		pthread_create(&workers[w].thread, NULL, worker_run,
			       &workers[w]);
	}
	for (int i = 0; i < CONNS; i++) {
		tcp_pair_from(listener, &clients[i], &server);
		hand_over(&workers[i % WORKERS], server, JOB_SERVE);
	}
	for (int i = 0; i < CONNS; i++)
		check_conn(i, clients[i], i % WORKERS);
	for (int i = 0; i < CONNS; i++)
		close(clients[i]);

	tcp_pair_from(listener, &client, &server);
	stream_check_start_late(&reader, client, STREAM_SEED, 300);
	hand_over(&workers[0], server, JOB_STREAM);
	tcp_pair_from(listener, &fill_client, &fill_server);
	hand_over(&workers[1], fill_server, JOB_FILL);
	for (int w = 0; w < WORKERS; w++) {
		close(workers[w].pipe[1]);
		pthread_join(workers[w].thread, NULL);
		close(workers[w].pipe[0]);
	}
	/* Worker 0 is gone; its socket is still open until now. */
	close(server);
	stream_check_expect_all(&reader, STREAM, "stream, thread ended");
	close(client);
	/* Only now does anyone read what worker 1 wrote. */
	stream_check_start(&fill_reader, fill_client, FILL_SEED);
	close(fill_server);
	stream_check_expect_all(&fill_reader, workers[1].filled,
				"fill, thread ended, read later");
	close(fill_client);
	close(listener);
	return conform_finish();
}
