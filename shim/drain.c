/*
 * drain.c - finish sends the app can no longer wait for.
 *
 * A ring send waiting for socket space only moves when its loop thread
 * enters the kernel (COOP_TASKRUN) or the ring itself (DEFER_TASKRUN).
 * After close() (or shutdown(SHUT_WR)) the app may never wait on the ring
 * again (it joins a thread, sleeps, exits), while the kernel, without the
 * shim, would have kept sending in the background.  Those bytes are
 * handed to one shim-owned thread that sends them with plain blocking
 * calls on a private dup of the socket, then shuts down or closes it.
 * Lazily started; all signals blocked in it; only real_<name> calls,
 * never the wrappers.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct drain_job {
	int fd;
	char *buf;		/* malloc'd, owned by the job */
	size_t off, len;
	bool shut_wr;		/* shutdown(SHUT_WR) after the bytes */
	struct drain_job *next;
};

static pthread_mutex_t drain_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t drain_cond = PTHREAD_COND_INITIALIZER;
static struct drain_job *jobs, **jobs_tail = &jobs;
static int jobs_busy;		/* queued or being sent */
static bool started;

static void drain_one(struct drain_job *j)
{
	while (j->off < j->len) {
		struct pollfd p = { .fd = j->fd, .events = POLLOUT };
		ssize_t n = real_send(j->fd, j->buf + j->off, j->len - j->off,
				      MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n > 0) {
			j->off += n;
			STAT_ADD(bytes_sent, n);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != EAGAIN)
			break;		/* peer gone: nobody left to tell */
		real_poll(&p, 1, -1);
	}
	if (j->shut_wr)
		real_shutdown(j->fd, SHUT_WR);
	real_close(j->fd);
	free(j->buf);
	free(j);
}

static void *drain_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&drain_lock);
	for (;;) {
		struct drain_job *j;

		while (!jobs)
			pthread_cond_wait(&drain_cond, &drain_lock);
		j = jobs;
		jobs = j->next;
		if (!jobs)
			jobs_tail = &jobs;
		pthread_mutex_unlock(&drain_lock);
		drain_one(j);
		pthread_mutex_lock(&drain_lock);
		jobs_busy--;
		pthread_cond_broadcast(&drain_cond);
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

/*
 * Take over f's unsent bytes (no send of f may be in flight): they go out
 * on fd, a descriptor the job owns and closes.  Returns 0, or -errno and
 * nothing changed.  shim.lock held.
 */
int shim__drain_handoff(struct shim_fd *f, int fd, bool shut_wr)
{
	struct drain_job *j;
	size_t len = f->stail - f->shead;

	if (f->send_inflight)
		return -EBUSY;
	j = calloc(1, sizeof(*j));
	if (!j)
		return -ENOMEM;
	j->buf = malloc(len ? len : 1);
	if (!j->buf) {
		free(j);
		return -ENOMEM;
	}
	memcpy(j->buf, f->sbuf + f->shead, len);
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
	*jobs_tail = j;
	jobs_tail = &j->next;
	jobs_busy++;
	pthread_cond_signal(&drain_cond);
	pthread_mutex_unlock(&drain_lock);
	queued_add(f, -(int64_t)len);
	f->shead = f->stail = f->sinfl = 0;
	return 0;
}

/* Has the drainer nothing left to send?  Never blocks (crash.c). */
bool shim__drain_idle(void)
{
	bool idle;

	if (pthread_mutex_trylock(&drain_lock))
		return false;
	idle = !jobs_busy;
	pthread_mutex_unlock(&drain_lock);
	return idle;
}

/* At exit: give the drainer a bounded moment to finish. */
void shim__drain_wait(int seconds)
{
	struct timespec ts;

	pthread_mutex_lock(&drain_lock);
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += seconds;
	while (jobs_busy > 0 &&
	       pthread_cond_timedwait(&drain_cond, &drain_lock, &ts) == 0)
		;
	pthread_mutex_unlock(&drain_lock);
}

/* Fork child: the drainer thread did not come along. */
void shim__drain_child(void)
{
	pthread_mutex_init(&drain_lock, NULL);
	pthread_cond_init(&drain_cond, NULL);
	jobs = NULL;
	jobs_tail = &jobs;
	jobs_busy = 0;
	started = false;
}
