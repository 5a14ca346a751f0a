/*
 * stats.c - the live counters, one shared-memory file per process.
 *
 * $URINGSHIM_STATS_DIR/uringshim.<pid> is created O_EXCL|O_NOFOLLOW mode
 * 0600, sized to struct shim_stats_file and mmap'd MAP_SHARED so
 * uringshim-stat can read it while we run.  Each thread takes its own slot
 * on first use (no shared atomic on the hot path); threads beyond
 * SHIM_STATS_SLOTS - 1 share slot 0 with atomic adds.  When the file cannot
 * be made, counters go to a private copy so STAT_ADD never has to check.
 * The pid survives exec, so the exec wrappers take the file down first and
 * put it back when the exec fails (shim__stats_exec_begin/_failed).
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "base.h"

static struct shim_stats_file private_stats;
struct shim_stats_file *shim__stats = &private_stats;
__thread struct shim_stats_slot *shim__slot;
static char stats_path[300];
static pid_t stats_owner;
static unsigned int slots_taken;
static pthread_mutex_t exec_lock = PTHREAD_MUTEX_INITIALIZER;
static int execs_pending;		/* execs in flight, file unlinked */

struct shim_stats_slot *shim__stats_slot_slow(void)
{
	unsigned int idx = __atomic_add_fetch(&slots_taken, 1,
					      __ATOMIC_RELAXED);

	if (idx >= SHIM_STATS_SLOTS)
		idx = 0;
	else
		__atomic_store_n(&shim__stats->nslots, idx + 1,
				 __ATOMIC_RELAXED);
	shim__slot = &shim__stats->slot[idx];
	return shim__slot;
}

static void fill_header(struct shim_stats_file *s)
{
	int i;

	s->version = SHIM_STATS_VERSION;
	s->size = sizeof(*s);
	s->pid = getpid();
	s->ncalls = SHIM_NCALLS;
	s->nslots = 1;
	for (i = 0; i < SHIM_NCALLS && i < SHIM_STATS_CALLS; i++)
		snprintf(s->call_names[i], sizeof(s->call_names[i]), "%s",
			 shim__call_names[i]);
	__atomic_store_n(&s->magic, SHIM_STATS_MAGIC, __ATOMIC_RELEASE);
}

static int open_exclusive(const char *path)
{
	struct stat st;
	int fd, tries;

	for (tries = 0; tries < 2; tries++) {
		fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW |
			  O_CLOEXEC, 0600);
		if (fd >= 0 || errno != EEXIST)
			return fd;
		/* A stale file of a dead process with our pid: ours to drop. */
		if (lstat(path, &st) || !S_ISREG(st.st_mode) ||
		    st.st_uid != geteuid())
			return -1;
		unlink(path);
	}
	return -1;
}

void shim__stats_open(void)
{
	struct shim_stats_file *map;
	int fd;

	memset(&private_stats, 0, sizeof(private_stats));
	shim__stats = &private_stats;
	slots_taken = 0;
	shim__slot = NULL;
	fill_header(&private_stats);
	if (!shim__cfg.stats)
		return;
	snprintf(stats_path, sizeof(stats_path), "%s/uringshim.%d",
		 shim__cfg.stats_dir, (int)getpid());
	fd = open_exclusive(stats_path);
	if (fd < 0)
		goto out_warn;
	if (ftruncate(fd, sizeof(*map)))
		goto out_unlink;
	map = mmap(NULL, sizeof(*map), PROT_READ | PROT_WRITE, MAP_SHARED,
		   fd, 0);
	if (map == MAP_FAILED)
		goto out_unlink;
	real_close(fd);
	map->state = private_stats.state;
	memcpy(map->reason, private_stats.reason, sizeof(map->reason));
	fill_header(map);
	shim__stats = map;
	stats_owner = getpid();
	return;

out_unlink:
	unlink(stats_path);
	real_close(fd);
out_warn:
	shim__log(LOG_WARN, "uringshim: no stats file %s (%s)\n", stats_path,
		  strerror(errno));
	stats_path[0] = 0;
}

/*
 * Only the owner removes the file and forgets its path: a vfork child
 * shares our memory, and its _exit must leave the parent's file alone.
 */
void shim__stats_close(void)
{
	if (!stats_path[0] || stats_owner != getpid())
		return;
	unlink(stats_path);
	stats_path[0] = 0;
}

/* Write all of buf at offset 0; returns 0 or -errno. */
static int write_whole(int fd, const void *buf, size_t len)
{
	size_t done = 0;
	ssize_t n;

	while (done < len) {
		n = pwrite(fd, (const char *)buf + done, len - done, done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		done += n;
	}
	return 0;
}

/*
 * The exec failed: make the file again with the counters as they are and
 * map it over the old mapping at the same address (MAP_FIXED), so every
 * thread's slot pointer stays valid.  Counts added between the copy and
 * the remap are lost; exec failing is rare.  exec_lock held.
 */
static void stats_relink(void)
{
	struct shim_stats_file *map = shim__stats;
	int fd, err;

	fd = open_exclusive(stats_path);
	if (fd < 0)
		goto out_forget;
	err = write_whole(fd, map, sizeof(*map));
	if (err) {
		errno = -err;
		goto out_unlink;
	}
	if (mmap(map, sizeof(*map), PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_FIXED, fd, 0) == MAP_FAILED)
		goto out_unlink;
	real_close(fd);
	return;

out_unlink:
	unlink(stats_path);
	real_close(fd);
out_forget:
	/* Counting goes on in the unlinked mapping; nothing to remove. */
	shim__log(LOG_WARN, "uringshim: stats file %s not restored after a "
		  "failed exec (%s)\n", stats_path, strerror(errno));
	stats_path[0] = 0;
}

/*
 * Just before a real exec: unlink our file, since a new image without the
 * shim would never remove it (the pid survives exec) and one with the
 * shim makes a fresh one.  Only the owning process: a vfork child shares
 * our memory and must leave the parent's file alone.  Returns true when
 * the caller must call shim__stats_exec_failed if the exec returns.
 */
bool shim__stats_exec_begin(void)
{
	if (!stats_path[0] || stats_owner != getpid() || shim__depth)
		return false;
	shim__depth++;		/* a signal handler's exec skips all this */
	pthread_mutex_lock(&exec_lock);
	if (!execs_pending++ && stats_path[0])
		unlink(stats_path);
	pthread_mutex_unlock(&exec_lock);
	shim__depth--;
	return true;
}

/* The exec returned: this image lives on and keeps its file. */
void shim__stats_exec_failed(void)
{
	shim__depth++;
	pthread_mutex_lock(&exec_lock);
	if (!--execs_pending && stats_path[0])
		stats_relink();
	pthread_mutex_unlock(&exec_lock);
	shim__depth--;
}

/* Around fork: no exec is between unlink and relink in the child. */
void shim__stats_atfork_prepare(void)
{
	pthread_mutex_lock(&exec_lock);
}

void shim__stats_atfork_parent(void)
{
	pthread_mutex_unlock(&exec_lock);
}

/* After fork: the child gets a file of its own, never the parent's map. */
void shim__stats_reopen_child(void)
{
	struct shim_stats_file *old = shim__stats;

	pthread_mutex_unlock(&exec_lock);	/* taken in prepare */
	execs_pending = 0;
	stats_path[0] = 0;
	if (old != &private_stats)
		munmap(old, sizeof(*old));
	shim__stats_open();
}

void shim__stats_set_state(int state, const char *reason)
{
	struct shim_stats_file *s = shim__stats;

	snprintf(s->reason, sizeof(s->reason), "%s", reason ? reason : "");
	__atomic_store_n(&s->state, state, __ATOMIC_RELEASE);
}

void shim__stats_batch(unsigned int n)
{
	unsigned int b = 0;

	if (!n)
		return;
	while ((n >>= 1) && b < SHIM_STATS_BATCH_BUCKETS - 1)
		b++;
	STAT_INC(batch_hist[b]);
}
