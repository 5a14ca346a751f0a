/*
 * engine.h - the matching engine: sessions, validation, matching, market data.
 *
 * The engine consumes whole, validated-length inbound frames (see
 * protocol.h) one at a time and produces outbound messages through a send
 * callback, addressed by the opaque owner pointer given when the session was
 * created (the server passes its connection). It does no I/O, never blocks
 * and, in steady state, never allocates: it is deterministic, so the same
 * inbound sequence always yields the same outbound sequence.
 *
 * A session lives from the connection's accept to its close; it is logged in
 * by a Hello, which also gives it the next session number. Session numbers
 * are deterministic (the order of Hellos), which is what lets a journal
 * replay rebuild the exact same state.
 */
#ifndef DEMO_ENGINE_H
#define DEMO_ENGINE_H

#include <stdint.h>

struct engine;
struct session;

/* Delivers one outbound message to a session's owner; never NULL owner. */
typedef void (*engine_send_fn)(void *owner, const void *msg, unsigned len);

struct engine_config {
	uint32_t symbols;	/* valid symbol ids are 0..symbols-1 */
	uint32_t max_orders;	/* live orders at once; REJ_CAPACITY beyond */
};

#define ENGINE_DEFAULT_SYMBOLS		65536u
#define ENGINE_DEFAULT_MAX_ORDERS	(1u << 24)

/* What engine_handle() asks of its caller (bit flags). */
enum {
	ENGINE_JOURNAL	= 1,	/* state changed: journal the frame */
	ENGINE_CLOSE	= 2,	/* protocol violation: close the session */
};

struct engine_stats {
	uint64_t trades;	/* matches since creation */
	uint64_t live_orders;	/* orders resting in books */
	uint64_t sessions;	/* sessions logged in since creation */
};

/* engine_create - a new engine, or NULL with errno set. */
struct engine *engine_create(const struct engine_config *cfg,
			     engine_send_fn send);
void engine_destroy(struct engine *eng);

/*
 * engine_session_create - a new, not yet logged in session whose output
 * goes to owner (NULL: output discarded, as in journal replay). Returns NULL
 * on allocation failure.
 */
struct session *engine_session_create(struct engine *eng, void *owner);

/*
 * engine_session_destroy - end a session: its subscriptions go, its resting
 * orders stay in the books (their fills are then reported to nobody).
 */
void engine_session_destroy(struct engine *eng, struct session *sess);

/* engine_session_no - the session number, 0 until logged in. */
uint32_t engine_session_no(const struct session *sess);

/*
 * engine_handle - process one inbound frame whose length already equals
 * proto_msg_size() of its type. frame need not be aligned. Returns a mask
 * of ENGINE_* flags.
 */
int engine_handle(struct engine *eng, struct session *sess,
		  const void *frame, unsigned len);

void engine_get_stats(const struct engine *eng, struct engine_stats *st);

#endif
