/*
 * drain.c - finish sends the application can no longer wait for.
 *
 * A ring send waiting for socket space only moves when its loop thread
 * enters the kernel.  After close() (or shutdown(SHUT_WR)) the app may
 * never wait on the ring again, while the kernel, without the shim, would
 * keep sending in the background.  Those bytes are handed to one shim
 * thread, on a private dup of the socket, then it shuts down or closes
 * it.  The thread serves every job at once (one poll over all of them),
 * so one peer that stops reading delays nobody else.  Lazily started, all
 * signals blocked in it, only real_<name> calls.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>

#include "core.h"

struct drain_job {
	int fd;
	char *buf;		/* malloc'd, owned by the job */
	size_t off, len;
	bool shut_wr;		/* shutdown(SHUT_WR) after the bytes */
	struct drain_job *next;
};

static pthread_mutex_t drain_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t drain_done = PTHREAD_COND_INITIALIZER;
static struct drain_job *incoming;	/* handed over, not yet taken */
static struct drain_job *active;	/* the drainer's (list: drain_lock) */
static int jobs_busy;			/* handed over, not yet finished */
static int wake_fd = -1;
static bool started;

static void job_free(struct drain_job *j)
{
	real_close(j->fd);
	free(j->buf);
	free(j);
}

/* Send what the socket takes now; true when the job is over. */
static bool job_push(struct drain_job *j)
{
	while (j->off < j->len) {
		ssize_t n = real_send(j->fd, j->buf + j->off, j->len - j->off,
				      MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n > 0) {
			j->off += n;
			STAT_ADD(bytes_sent, n);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		/* EAGAIN: wait for room; anything else: the peer is gone. */
		return !(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
	}
	return true;
}

static void *drain_main(void *arg)
{
	struct pollfd *pfd = NULL;
	size_t cap = 0;

	(void)arg;
	for (;;) {
		struct drain_job **pp, *j;
		size_t n = 0;
		uint64_t v;

		pthread_mutex_lock(&drain_lock);
		while (incoming) {
			j = incoming;
			incoming = j->next;
			j->next = active;
			active = j;
		}
		pthread_mutex_unlock(&drain_lock);
		for (pp = &active; (j = *pp);) {
			if (!job_push(j)) {
				pp = &j->next;
				n++;
				continue;
			}
			if (j->shut_wr)
				real_shutdown(j->fd, SHUT_WR);
			pthread_mutex_lock(&drain_lock);
			*pp = j->next;
			jobs_busy--;
			pthread_cond_broadcast(&drain_done);
			pthread_mutex_unlock(&drain_lock);
			job_free(j);
		}
		if (n + 1 > cap) {
			struct pollfd *p = realloc(pfd, (n + 1) * sizeof(*p));

			if (p) {
				pfd = p;
				cap = n + 1;
			}
		}
		pfd[0].fd = wake_fd;
		pfd[0].events = POLLIN;
		n = 1;
		for (j = active; j && n < cap; j = j->next) {
			pfd[n].fd = j->fd;
			pfd[n++].events = POLLOUT;
		}
		real_poll(pfd, n, -1);
		if (pfd[0].revents)
			real_read(wake_fd, &v, sizeof(v));
	}
	return NULL;
}

static bool start_locked(void)
{
	sigset_t all, old;
	pthread_attr_t attr;
	pthread_t t;
	int ret;

	if (started)
		return true;
	if (wake_fd < 0)
		wake_fd = shim__fd_high(eventfd(0, EFD_CLOEXEC));
	if (wake_fd < 0)
		return false;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 64 * 1024);
	ret = pthread_create(&t, &attr, drain_main, NULL);
	pthread_attr_destroy(&attr);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	started = !ret;
	return started;
}

int drain_handoff(int fd, const char *buf, size_t len, bool shut_wr)
{
	struct drain_job *j;
	uint64_t one = 1;

	j = calloc(1, sizeof(*j));
	if (!j)
		return -ENOMEM;
	j->buf = malloc(len ? len : 1);
	if (!j->buf) {
		free(j);
		return -ENOMEM;
	}
	memcpy(j->buf, buf, len);
	j->len = len;
	j->fd = fd;
	j->shut_wr = shut_wr;
	pthread_mutex_lock(&drain_lock);
	if (!start_locked()) {
		pthread_mutex_unlock(&drain_lock);
		free(j->buf);
		free(j);
		return -EAGAIN;
	}
	j->next = incoming;
	incoming = j;
	jobs_busy++;
	pthread_mutex_unlock(&drain_lock);
	if (real_write(wake_fd, &one, sizeof(one)) < 0)
		shim__log(LOG_DEBUG, "uringshim: drainer wake failed\n");
	return 0;
}

bool drain_idle(void)
{
	bool idle;

	if (pthread_mutex_trylock(&drain_lock))
		return false;
	idle = !jobs_busy;
	pthread_mutex_unlock(&drain_lock);
	return idle;
}

void drain_wait(int seconds)
{
	struct timespec ts;

	pthread_mutex_lock(&drain_lock);
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += seconds;
	while (jobs_busy > 0 &&
	       pthread_cond_timedwait(&drain_done, &drain_lock, &ts) == 0)
		;
	pthread_mutex_unlock(&drain_lock);
}

/* Around fork: the lists are consistent while the parent holds it. */
void drain_atfork_prepare(void)
{
	pthread_mutex_lock(&drain_lock);
}

void drain_atfork_parent(void)
{
	pthread_mutex_unlock(&drain_lock);
}

/*
 * Fork child: the parent's drainer sends those bytes; our copies of its
 * descriptors would keep the connections open (no FIN) until we exit.
 */
void drain_forget_child(void)
{
	struct drain_job *j;

	/* Taken in prepare by this thread: released, not re-initialised
	 * (TSan would still see the parent's owner holding it). */
	pthread_mutex_unlock(&drain_lock);
	pthread_cond_init(&drain_done, NULL);
	while ((j = incoming)) {
		incoming = j->next;
		job_free(j);
	}
	while ((j = active)) {
		active = j->next;
		job_free(j);
	}
	jobs_busy = 0;
	started = false;
	if (wake_fd >= 0)
		real_close(wake_fd);
	wake_fd = -1;
}
