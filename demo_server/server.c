/*
 * server.c - connections, framing, output queues and the journal, between
 * an I/O backend and the engine (see server.h for the backend contract).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "journal.h"
#include "server.h"

/* First output buffer of a connection; it doubles as needed. */
#define OUTBUF_INITIAL	4096
/* A drained buffer larger than this is freed (bursts, slow readers). */
#define OUTBUF_KEEP	(1u << 20)

struct server {
	struct server_config cfg;
	struct engine *eng;
	struct journal *journal;
	struct conn *conns;	/* all open connections */
	struct conn *dirty;	/* LIFO of connections needing a flush */
	struct server_stats stats;
	uint64_t trades_before;	/* matched by the journal replay */
	uint32_t next_conn_id;

	/* Journal replay: sessions by number (numbers are dense from 1). */
	struct session **replay_sessions;
	uint32_t nr_replay_sessions;
};

void conn_mark_dirty(struct conn *conn)
{
	if (conn->dirty)
		return;
	conn->dirty = true;
	conn->dirty_next = conn->srv->dirty;
	conn->srv->dirty = conn;
}

struct conn *server_next_dirty(struct server *srv)
{
	struct conn *conn = srv->dirty;

	if (conn) {
		srv->dirty = conn->dirty_next;
		conn->dirty = false;
		conn->dirty_next = NULL;
	}
	return conn;
}

static void conn_kill(struct conn *conn)
{
	conn->dead = true;
	conn_mark_dirty(conn);
}

/* Queue one outbound message; a backlog over --max-outbuf kills the conn. */
static void conn_queue(struct conn *conn, const void *msg, unsigned len)
{
	size_t pending = conn->out_tail - conn->out_head;

	if (conn->dead)
		return;
	if (pending + len > conn->srv->cfg.max_outbuf) {
		fprintf(stderr,
			"matching_server: slow consumer: conn %u (fd %d) "
			"disconnected, output backlog %zu bytes exceeds "
			"--max-outbuf %zu\n", conn->id, conn->fd,
			pending + len, conn->srv->cfg.max_outbuf);
		conn_kill(conn);
		return;
	}
	if (conn->out_tail + len > conn->out_cap) {
		if (conn->out_head) {
			memmove(conn->out, conn->out + conn->out_head, pending);
			conn->out_head = 0;
			conn->out_tail = pending;
		}
		if (pending + len > conn->out_cap) {
			size_t cap = conn->out_cap ? conn->out_cap
						   : OUTBUF_INITIAL;
			unsigned char *out;

			while (cap < pending + len)
				cap *= 2;
			out = realloc(conn->out, cap);
			if (!out) {
				fprintf(stderr, "matching_server: conn %u: "
					"out of memory, disconnected\n",
					conn->id);
				conn_kill(conn);
				return;
			}
			conn->out = out;
			conn->out_cap = cap;
		}
	}
	memcpy(conn->out + conn->out_tail, msg, len);
	conn->out_tail += len;
	conn->srv->stats.msgs_out++;
	conn_mark_dirty(conn);
}

/* The engine's send callback: owner is the struct conn. */
static void engine_send(void *owner, const void *msg, unsigned len)
{
	conn_queue(owner, msg, len);
}

void conn_out_consume(struct conn *conn, size_t n)
{
	conn->out_head += n;
	if (conn->out_head != conn->out_tail)
		return;
	conn->out_head = conn->out_tail = 0;
	/* A backlog that grew the buffer past normal use is over: give the
	 * memory back rather than hold megabytes per idle connection. */
	if (conn->out_cap > OUTBUF_KEEP) {
		free(conn->out);
		conn->out = NULL;
		conn->out_cap = 0;
	}
}

/* Bad framing: say why, then close once the reply is out. */
static void conn_malformed(struct conn *conn, uint8_t type)
{
	struct msg_rejected rej = {
		.h = { .len = sizeof(rej), .type = MSG_REJECTED },
		.reason = REJ_MALFORMED,
		.ref_type = type,
	};

	conn_queue(conn, &rej, sizeof(rej));
	conn->closing = true;
	conn_mark_dirty(conn);
}

static void fatal_journal(int err)
{
	fprintf(stderr, "matching_server: journal write failed: %s\n",
		strerror(-err));
	exit(1);
}

/* Run one whole frame through the engine and journal it if it counted. */
static void conn_dispatch(struct conn *conn, const void *frame, unsigned len)
{
	struct server *srv = conn->srv;
	int res;

	srv->stats.msgs_in++;
	res = engine_handle(srv->eng, conn->sess, frame, len);
	if ((res & ENGINE_JOURNAL) && srv->journal) {
		int err = journal_append(srv->journal,
					 engine_session_no(conn->sess),
					 JOURNAL_FRAME, frame, len);
		if (err)
			fatal_journal(err);
	}
	if (res & ENGINE_CLOSE) {
		conn->closing = true;
		conn_mark_dirty(conn);
	}
}

void conn_input(struct conn *conn, const void *data, size_t len)
{
	const unsigned char *p = data, *frame;
	int n;

	if (conn->closing || conn->dead)
		return;
	while ((n = proto_read_frame(&conn->reader, &p, &len, PROTO_TO_SERVER,
				     &frame)) > 0) {
		conn_dispatch(conn, frame, (unsigned)n);
		if (conn->closing || conn->dead)
			return;
	}
	if (n < 0)
		conn_malformed(conn, frame[2]);
}

void conn_eof(struct conn *conn)
{
	conn_kill(conn);
}

struct conn *server_conn_open(struct server *srv, int fd)
{
	struct conn *conn;

	if (srv->stats.open_conns >= srv->cfg.max_conns)
		return NULL;
	conn = calloc(1, sizeof(*conn));
	if (!conn)
		return NULL;
	conn->sess = engine_session_create(srv->eng, conn);
	if (!conn->sess) {
		free(conn);
		return NULL;
	}
	conn->srv = srv;
	conn->fd = fd;
	conn->id = ++srv->next_conn_id;
	conn->next = srv->conns;
	if (srv->conns)
		srv->conns->prev = conn;
	srv->conns = conn;
	srv->stats.connections++;
	srv->stats.open_conns++;
	return conn;
}

void server_conn_close(struct server *srv, struct conn *conn)
{
	uint32_t no = engine_session_no(conn->sess);

	/* Journal the end so a replay frees the session at the same point. */
	if (no && srv->journal) {
		int err = journal_append(srv->journal, no, JOURNAL_CLOSE,
					 NULL, 0);
		if (err)
			fatal_journal(err);
	}
	engine_session_destroy(srv->eng, conn->sess);
	if (conn->dirty) {
		struct conn **pp = &srv->dirty;

		while (*pp != conn)
			pp = &(*pp)->dirty_next;
		*pp = conn->dirty_next;
	}
	if (conn->prev)
		conn->prev->next = conn->next;
	else
		srv->conns = conn->next;
	if (conn->next)
		conn->next->prev = conn->prev;
	srv->stats.open_conns--;
	free(conn->out);
	free(conn);
}

struct conn *server_first_conn(struct server *srv)
{
	return srv->conns;
}

int server_commit(struct server *srv)
{
	return srv->journal ? journal_commit(srv->journal) : 0;
}

/* ===== journal replay ===== */

static int replay_record(void *arg, uint32_t no, enum journal_kind kind,
			 const void *frame, unsigned len)
{
	struct server *srv = arg;
	struct session *sess = NULL;

	if (!no)
		return -EINVAL;
	if (no <= srv->nr_replay_sessions)
		sess = srv->replay_sessions[no - 1];

	if (kind == JOURNAL_CLOSE) {
		if (!sess)
			return -EINVAL;
		engine_session_destroy(srv->eng, sess);
		srv->replay_sessions[no - 1] = NULL;
		return 0;
	}
	if (kind != JOURNAL_FRAME || len < sizeof(struct msg_hdr))
		return -EINVAL;
	if (!sess) {
		/* Only a Hello opens a session, numbered in Hello order. */
		struct session **grown;

		if (no != srv->nr_replay_sessions + 1 ||
		    ((const struct msg_hdr *)frame)->type != MSG_HELLO)
			return -EINVAL;
		grown = realloc(srv->replay_sessions, no * sizeof(*grown));
		if (!grown)
			return -ENOMEM;
		srv->replay_sessions = grown;
		sess = engine_session_create(srv->eng, NULL);
		if (!sess)
			return -ENOMEM;
		srv->replay_sessions[no - 1] = sess;
		srv->nr_replay_sessions = no;
	}
	engine_handle(srv->eng, sess, frame, len);
	return engine_session_no(sess) == no ? 0 : -EINVAL;
}

static int open_journal(struct server *srv)
{
	uint64_t dropped = 0;
	struct engine_stats st;

	srv->journal = journal_open(srv->cfg.journal_path,
				    srv->cfg.fsync == FSYNC_BATCH,
				    replay_record, srv, &srv->stats.replayed,
				    &dropped);
	/* After a restart no session is connected: end them all. */
	for (uint32_t i = 0; i < srv->nr_replay_sessions; i++)
		engine_session_destroy(srv->eng, srv->replay_sessions[i]);
	free(srv->replay_sessions);
	srv->replay_sessions = NULL;
	if (!srv->journal) {
		fprintf(stderr, "matching_server: journal %s: %s\n",
			srv->cfg.journal_path, strerror(errno));
		return -1;
	}
	engine_get_stats(srv->eng, &st);
	srv->trades_before = st.trades;
	if (!srv->cfg.quiet || dropped)
		fprintf(stderr, "matching_server: journal %s: replayed %llu "
			"records, %llu resting orders, dropped %llu bytes of "
			"torn tail\n", srv->cfg.journal_path,
			(unsigned long long)srv->stats.replayed,
			(unsigned long long)st.live_orders,
			(unsigned long long)dropped);
	return 0;
}

struct server *server_create(const struct server_config *cfg)
{
	struct server *srv = calloc(1, sizeof(*srv));

	if (!srv)
		return NULL;
	srv->cfg = *cfg;
	srv->eng = engine_create(&cfg->engine, engine_send);
	if (!srv->eng) {
		fprintf(stderr, "matching_server: engine: %s\n",
			strerror(errno));
		free(srv);
		return NULL;
	}
	if (cfg->journal_path && open_journal(srv)) {
		engine_destroy(srv->eng);
		free(srv);
		return NULL;
	}
	return srv;
}

void server_destroy(struct server *srv)
{
	int err;

	if (!srv)
		return;
	while (srv->conns)
		server_conn_close(srv, srv->conns);
	err = journal_close(srv->journal);
	if (err)
		fprintf(stderr, "matching_server: journal: %s\n",
			strerror(-err));
	engine_destroy(srv->eng);
	free(srv);
}

void server_get_stats(const struct server *srv, struct server_stats *st)
{
	struct engine_stats es;

	engine_get_stats(srv->eng, &es);
	*st = srv->stats;
	st->trades = es.trades - srv->trades_before;
}

bool server_quiet(const struct server *srv)
{
	return srv->cfg.quiet;
}
