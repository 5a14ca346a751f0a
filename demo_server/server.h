/*
 * server.h - connections and sessions of the matching server, independent
 * of the I/O backend.
 *
 * How a backend plugs in (loop_epoll.c is the reference):
 *
 *   1. server_create() builds the engine and replays the journal; the
 *      backend then owns the listening socket and every connection fd.
 *   2. For each accepted fd, server_conn_open() returns a struct conn (NULL:
 *      over --max-conns, close the fd). conn->backend is the backend's own.
 *   3. Bytes read from a connection go to conn_input(), in any chunking:
 *      it reassembles frames, runs the engine and queues the responses on
 *      the connections they are for (possibly others than this one).
 *      Input of a connection that must close is ignored.
 *   4. Once per loop iteration, after all input of that iteration:
 *      server_commit() (journal write + group fsync: responses must not
 *      leave before the journal holds what they acknowledge), then
 *      server_next_dirty() until NULL. For each dirty connection: if
 *      conn_must_close(), close it; otherwise send what conn_out_peek()
 *      shows (one write per connection) and conn_out_consume() what the
 *      kernel took, then close it if conn_must_close() became true.
 *      Output that did not fit waits for writability; the backend marks
 *      the connection dirty again with conn_mark_dirty() when it can write.
 *   5. Closing: close the fd (and forget backend state), then
 *      server_conn_close(), which frees the conn.
 *
 * Data returned by conn_out_peek() stays valid and unmoved until the next
 * conn_out_consume() or conn_input() on ANY connection (appending may
 * compact or grow the buffer): a backend with sends in flight across those
 * calls must copy it first.
 */
#ifndef DEMO_SERVER_H
#define DEMO_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine.h"
#include "protocol.h"

enum fsync_mode { FSYNC_NONE, FSYNC_BATCH };

struct server_config {
	struct engine_config engine;
	uint32_t max_conns;
	size_t max_outbuf;	/* a backlog beyond it disconnects the client */
	const char *journal_path;	/* NULL: no journal */
	enum fsync_mode fsync;
	bool quiet;
};

struct server;

struct conn {
	struct server *srv;
	struct session *sess;
	int fd;
	uint32_t id;		/* 1, 2, ... in accept order, for logs */
	void *backend;		/* the I/O backend's per-connection state */
	uint32_t backend_flags;	/* and some bits of it, free for its use */

	struct proto_reader reader;	/* keeps a frame cut by a read */

	unsigned char *out;	/* queued output: out[out_head, out_tail) */
	size_t out_head;
	size_t out_tail;
	size_t out_cap;

	bool closing;		/* send what is queued, then close */
	bool dead;		/* close without sending more */
	bool dirty;		/* on the server's dirty list */
	struct conn *dirty_next;
	struct conn *prev;	/* all connections */
	struct conn *next;
};

struct server_stats {
	uint64_t msgs_in;
	uint64_t msgs_out;
	uint64_t trades;
	uint64_t connections;	/* accepted since start */
	uint64_t replayed;	/* journal records replayed at start */
	uint32_t open_conns;
};

/* server_create - engine + journal replay; NULL with a message on stderr. */
struct server *server_create(const struct server_config *cfg);
/* server_destroy - closes nothing: the backend closes its fds first. */
void server_destroy(struct server *srv);

struct conn *server_conn_open(struct server *srv, int fd);
void server_conn_close(struct server *srv, struct conn *conn);

/* conn_input - feed received bytes; see the top of this file. */
void conn_input(struct conn *conn, const void *data, size_t len);

/* conn_eof - the peer closed or the socket failed: close without output. */
void conn_eof(struct conn *conn);

/* server_commit - make journaled input durable; 0 or -errno (fatal). */
int server_commit(struct server *srv);

/* server_next_dirty - pop a connection with output or a pending close. */
struct conn *server_next_dirty(struct server *srv);
void conn_mark_dirty(struct conn *conn);

static inline size_t conn_out_peek(const struct conn *conn, const void **data)
{
	if (!conn->out) {	/* nothing queued yet, or buffer given back */
		*data = NULL;
		return 0;
	}
	*data = conn->out + conn->out_head;
	return conn->out_tail - conn->out_head;
}

void conn_out_consume(struct conn *conn, size_t n);

static inline bool conn_must_close(const struct conn *conn)
{
	return conn->dead ||
	       (conn->closing && conn->out_head == conn->out_tail);
}

/* server_first_conn - walk every open connection (shutdown). */
struct conn *server_first_conn(struct server *srv);

void server_get_stats(const struct server *srv, struct server_stats *st);
bool server_quiet(const struct server *srv);

/* ===== I/O backends ===== */

struct backend_config {
	int listen_fd;		/* bound, listening, non-blocking */
	int stop_fd;		/* becomes readable on SIGINT/SIGTERM */
	bool edge_triggered;
};

/*
 * loop_epoll_run - serve until stop_fd is readable, then close every
 * connection. Returns 0, or -errno on a fatal error (message on stderr).
 */
int loop_epoll_run(struct server *srv, const struct backend_config *cfg);

/*
 * loop_uring_probe - can this kernel run the io_uring backend? 0, or
 * -errno with the reason on stderr. Call it before listening.
 * loop_uring_run - as loop_epoll_run, natively on io_uring (loop_uring.c);
 * edge_triggered is ignored.
 */
int loop_uring_probe(void);
int loop_uring_run(struct server *srv, const struct backend_config *cfg);

#endif
