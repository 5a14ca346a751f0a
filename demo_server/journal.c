/*
 * journal.c - the inbound journal: buffered appends, group commit, replay.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "journal.h"
#include "protocol.h"

static const char journal_magic[8] = "USJRNL1\n";

struct journal_rec {
	uint32_t session;
	uint8_t kind;		/* enum journal_kind */
	uint8_t len;		/* frame bytes that follow */
	uint16_t zero;
	uint32_t sum;		/* FNV-1a of the 8 bytes above and the frame */
};

_Static_assert(sizeof(struct journal_rec) == 12, "journal_rec");

struct journal {
	int fd;
	bool fsync_batch;
	unsigned char *buf;	/* records not yet written */
	size_t len;
	size_t cap;
};

static uint32_t fnv1a(uint32_t h, const void *data, size_t len)
{
	const unsigned char *p = data;

	while (len--) {
		h ^= *p++;
		h *= 16777619u;
	}
	return h;
}

static uint32_t rec_sum(const struct journal_rec *rec, const void *frame)
{
	return fnv1a(fnv1a(2166136261u, rec, 8), frame, rec->len);
}

static int write_all(int fd, const void *data, size_t len)
{
	const unsigned char *p = data;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= n;
	}
	return 0;
}

/* Replay data[0, size); returns the end of the last whole record. */
static int replay(const unsigned char *data, size_t size,
		  journal_replay_fn fn, void *arg, uint64_t *replayed,
		  size_t *good_end)
{
	size_t off = sizeof(journal_magic);

	*replayed = 0;
	while (size - off >= sizeof(struct journal_rec)) {
		struct journal_rec rec;
		const unsigned char *frame = data + off + sizeof(rec);
		int err;

		memcpy(&rec, data + off, sizeof(rec));
		if (size - off - sizeof(rec) < rec.len || rec.zero ||
		    rec_sum(&rec, frame) != rec.sum)
			break;
		err = fn(arg, rec.session, rec.kind, frame, rec.len);
		if (err)
			return err;
		off += sizeof(rec) + rec.len;
		++*replayed;
	}
	*good_end = off;
	return 0;
}

struct journal *journal_open(const char *path, bool fsync_batch,
			     journal_replay_fn fn, void *arg,
			     uint64_t *replayed, uint64_t *dropped)
{
	struct journal *j;
	struct stat st;
	size_t good_end = sizeof(journal_magic);
	void *map;
	int err;

	*replayed = *dropped = 0;
	j = calloc(1, sizeof(*j));
	if (!j)
		return NULL;
	j->fsync_batch = fsync_batch;
	j->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (j->fd < 0)
		goto out_free;
	if (fstat(j->fd, &st))
		goto out_close;

	if ((size_t)st.st_size >= sizeof(journal_magic)) {
		map = mmap(NULL, st.st_size, PROT_READ, MAP_PRIVATE, j->fd, 0);
		if (map == MAP_FAILED)
			goto out_close;
		if (memcmp(map, journal_magic, sizeof(journal_magic))) {
			munmap(map, st.st_size);
			errno = EINVAL;	/* not a journal: never truncate it */
			goto out_close;
		}
		err = replay(map, st.st_size, fn, arg, replayed, &good_end);
		munmap(map, st.st_size);
		if (err) {
			errno = -err;
			goto out_close;
		}
		*dropped = st.st_size - good_end;
		if (*dropped && ftruncate(j->fd, good_end))
			goto out_close;
	} else {
		/* New, or a crash tore the magic itself: start afresh. */
		if (ftruncate(j->fd, 0))
			goto out_close;
		err = write_all(j->fd, journal_magic, sizeof(journal_magic));
		if (err) {
			errno = -err;
			goto out_close;
		}
	}
	if (lseek(j->fd, good_end, SEEK_SET) < 0)
		goto out_close;
	if (fsync_batch && fdatasync(j->fd))
		goto out_close;
	return j;

out_close:
	err = errno;
	close(j->fd);
	errno = err;
out_free:
	free(j);
	return NULL;
}

int journal_append(struct journal *j, uint32_t session,
		   enum journal_kind kind, const void *frame, unsigned len)
{
	struct journal_rec rec = {
		.session = session,
		.kind = kind,
		.len = len,
	};
	size_t need = sizeof(rec) + len;

	if (len > MSG_MAX_SIZE)
		return -EINVAL;
	if (j->len + need > j->cap) {
		size_t cap = j->cap ? j->cap * 2 : 65536;
		unsigned char *buf;

		while (cap < j->len + need)
			cap *= 2;
		buf = realloc(j->buf, cap);
		if (!buf)
			return -ENOMEM;
		j->buf = buf;
		j->cap = cap;
	}
	rec.sum = rec_sum(&rec, frame);
	memcpy(j->buf + j->len, &rec, sizeof(rec));
	if (len)
		memcpy(j->buf + j->len + sizeof(rec), frame, len);
	j->len += need;
	return 0;
}

int journal_commit(struct journal *j)
{
	int err;

	if (!j->len)
		return 0;
	err = write_all(j->fd, j->buf, j->len);
	if (err)
		return err;
	j->len = 0;
	if (j->fsync_batch && fdatasync(j->fd))
		return -errno;
	return 0;
}

int journal_close(struct journal *j)
{
	int err;

	if (!j)
		return 0;
	err = journal_commit(j);
	close(j->fd);
	free(j->buf);
	free(j);
	return err;
}
