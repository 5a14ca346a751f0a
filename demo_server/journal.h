/*
 * journal.h - append-only log of the inbound messages that changed state.
 *
 * Records are buffered in memory by journal_append() and written by
 * journal_commit(), which the server calls once per loop iteration before any
 * response of that iteration leaves: with --fsync batch the commit ends with
 * one fdatasync (group commit). Opening an existing journal replays it
 * through a callback; a torn or corrupt tail (a crash mid-append) is dropped
 * and the file truncated to its last whole record.
 *
 * File: an 8-byte magic, then records of a 12-byte header (session number,
 * kind, frame length, FNV-1a checksum of header and frame) and the frame.
 */
#ifndef DEMO_JOURNAL_H
#define DEMO_JOURNAL_H

#include <stdbool.h>
#include <stdint.h>

enum journal_kind {
	JOURNAL_FRAME = 1,	/* an inbound frame of the session */
	JOURNAL_CLOSE = 2,	/* the session ended (no frame) */
};

struct journal;

/* Called per replayed record; returns 0, or -errno to abort the replay. */
typedef int (*journal_replay_fn)(void *arg, uint32_t session,
				 enum journal_kind kind, const void *frame,
				 unsigned len);

/*
 * journal_open - open or create path, replay its records through fn and
 * position for appending. NULL with errno set on failure; *replayed gets the
 * number of records replayed, *dropped the bytes of torn tail removed.
 */
struct journal *journal_open(const char *path, bool fsync_batch,
			     journal_replay_fn fn, void *arg,
			     uint64_t *replayed, uint64_t *dropped);

/* journal_append - buffer one record; 0 or -ENOMEM. */
int journal_append(struct journal *j, uint32_t session,
		   enum journal_kind kind, const void *frame, unsigned len);

/* journal_commit - write the buffer (and fdatasync); 0 or -errno. */
int journal_commit(struct journal *j);

/* journal_close - commit and close; returns journal_commit()'s result. */
int journal_close(struct journal *j);

#endif
