/*
 * fdtab.c - fd number -> the shim's state for it, and the pools.
 *
 * A directory of chunks of FDTAB_CHUNK slots, sized at init from
 * fs.nr_open (no RLIMIT_NOFILE can exceed it, so a server that raises its
 * limit after start is covered).  A chunk is made the first time a slot
 * in it is written and never freed: a NULL slot or a missing chunk means
 * "pure passthrough", one or two loads for every fd the shim never saw.
 *
 * struct sfd and struct sep come from pools and go back to them, never to
 * malloc, so a pointer read from the table without a lock may be stale
 * but always points at a struct of that type whose loop can be locked
 * and the slot re-checked (core.h, "Locks").
 */
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"

#define FDTAB_DEFAULT_MAX	(1u << 20)
#define FDTAB_HARD_MAX		(1u << 26)

struct shim_core shim = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
};
struct fdslot **shim__fdtab;
unsigned int shim__fdtab_max;

static unsigned int nr_open(void)
{
	unsigned long v = FDTAB_DEFAULT_MAX;
	char buf[32];
	ssize_t n;
	int fd;

	fd = open("/proc/sys/fs/nr_open", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		n = real_read(fd, buf, sizeof(buf) - 1);
		if (n > 0) {
			buf[n] = 0;
			v = strtoul(buf, NULL, 10);
		}
		real_close(fd);
	}
	if (v < FDTAB_CHUNK || v > FDTAB_HARD_MAX)
		v = v < FDTAB_CHUNK ? FDTAB_CHUNK : FDTAB_HARD_MAX;
	return v;
}

/*
 * True once init has run and acceleration is allowed at all.  Wrappers
 * that run before the constructor (another library's constructor) see
 * false and pass through.
 */
bool shim__ready(void)
{
	int state;

	if (unlikely(!real_read))
		shim__resolve_real();
	state = RD(shim.state);
	return RD(shim__fdtab) && (state == SHIM_STATE_INIT ||
				   state == SHIM_STATE_ACTIVE);
}

int fdtab_init(void)
{
	unsigned int max = nr_open();
	size_t chunks = (max + FDTAB_CHUNK - 1) >> FDTAB_CHUNK_SHIFT;
	struct fdslot **dir = calloc(chunks, sizeof(*dir));

	if (!dir)
		return -ENOMEM;
	WR(shim__fdtab, dir);
	__atomic_store_n(&shim__fdtab_max, chunks << FDTAB_CHUNK_SHIFT,
			 __ATOMIC_RELEASE);
	return 0;
}

struct fdslot *fdtab_slot(int fd, bool make)
{
	struct fdslot *s = fdtab_peek(fd), *c;

	if (s || !make || (unsigned int)fd >= shim__fdtab_max)
		return s;
	c = calloc(FDTAB_CHUNK, sizeof(*c));
	if (!c)
		return NULL;
	__atomic_store_n(&shim__fdtab[fd >> FDTAB_CHUNK_SHIFT], c,
			 __ATOMIC_RELEASE);
	return &c[fd & (FDTAB_CHUNK - 1)];
}

/* The chunk exists: fdtab_slot(fd, true) ran first, under shim.lock. */
void fdtab_set_fd(int fd, struct sfd *f)
{
	struct fdslot *s = fdtab_peek(fd);

	if (s)
		__atomic_store_n(&s->f, f, __ATOMIC_RELEASE);
}

void fdtab_set_ep(int fd, struct sep *ep)
{
	struct fdslot *s = fdtab_slot(fd, ep != NULL);	/* shim.lock held */

	if (s)
		__atomic_store_n(&s->ep, ep, __ATOMIC_RELEASE);
}

/* ---- pools ---- */

#define POOL_BATCH	64

_Static_assert(offsetof(struct sfd, loop) == 0, "sfd_alloc keeps loop");

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static struct sfd *sfd_pool;
static struct sep *sep_pool;

struct sfd *sfd_alloc(void)
{
	struct sfd *f;
	int i;

	shim_mutex_lock(&pool_lock);
	if (!sfd_pool) {
		/* Never freed: the pool's chunks stay reachable from here. */
		struct sfd *batch = calloc(POOL_BATCH, sizeof(*batch));

		for (i = 0; batch && i < POOL_BATCH; i++) {
			batch[i].free_next = sfd_pool;
			sfd_pool = &batch[i];
		}
	}
	f = sfd_pool;
	if (f)
		sfd_pool = f->free_next;
	shim_mutex_unlock(&pool_lock);
	/* Not the loop pointer: a stale reader may be locking it. */
	if (f)
		memset((char *)f + sizeof(f->loop), 0,
		       sizeof(*f) - sizeof(f->loop));
	return f;
}

void sfd_free(struct sfd *f)
{
	shim_mutex_lock(&pool_lock);
	f->free_next = sfd_pool;
	sfd_pool = f;
	shim_mutex_unlock(&pool_lock);
}

struct sep *sep_alloc(void)
{
	struct sep *ep;
	int i;

	shim_mutex_lock(&pool_lock);
	if (!sep_pool) {
		struct sep *batch = calloc(POOL_BATCH, sizeof(*batch));

		for (i = 0; batch && i < POOL_BATCH; i++) {
			batch[i].free_next = sep_pool;
			sep_pool = &batch[i];
		}
	}
	ep = sep_pool;
	if (ep)
		sep_pool = ep->free_next;
	shim_mutex_unlock(&pool_lock);
	if (ep) {
		memset(ep, 0, sizeof(*ep));
		pthread_mutex_init(&ep->kick_lock, NULL);
	}
	return ep;
}

void sep_free(struct sep *ep)
{
	shim_mutex_lock(&pool_lock);
	ep->free_next = sep_pool;
	sep_pool = ep;
	shim_mutex_unlock(&pool_lock);
}
