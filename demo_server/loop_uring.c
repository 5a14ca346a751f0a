/*
 * loop_uring.c - the native io_uring I/O backend (--io uring), the ceiling
 * the shim is measured against. Same engine and same server.h contract as
 * loop_epoll.c; only the way bytes move differs:
 *
 *   - one multishot accept on the listening socket (re-armed single-shot
 *     accepts where multishot is refused, before 5.19);
 *   - one multishot recv per connection into a provided-buffer ring; a
 *     buffer goes back to the ring as soon as conn_input() has consumed it
 *     (single-shot buffer-select recvs where multishot is refused, < 6.0);
 *   - after all completions of an iteration: the journal commit, then at
 *     most one IORING_OP_SEND per dirty connection. One send in flight per
 *     connection keeps the byte order; a short send is continued from what
 *     the completion says the kernel took.
 *   - one io_uring_submit_and_wait() per loop iteration: in steady state
 *     the only system call of an iteration.
 *
 * Output is consumed from the connection's queue when its send completes,
 * not when it is submitted, so the slow-consumer limit (--max-outbuf)
 * counts exactly what epoll's would. The bytes of an in-flight send are a
 * copy: server.h allows the queue to move under us.
 *
 * Every request's user_data packs (kind, generation, slot). A slot is
 * reused only after all of its requests completed, and its generation
 * changes then, so no completion can be taken for a later occupant.
 * Closing: the server's struct conn goes at once, as with epoll; the slot
 * cancels its recv and send and closes the fd after their last
 * completions, so the fd number cannot be reused while the kernel still
 * holds requests on it.
 *
 * --edge-triggered is an epoll mode and is ignored here.
 *
 * Environment (for measurements and tests; the defaults are the fastest):
 *   MATCHING_SERVER_TASKRUN=defer       IORING_SETUP_DEFER_TASKRUN instead
 *                                       of COOP_TASKRUN (see ring_init)
 *   MATCHING_SERVER_NO_MULTISHOT=1      single-shot accept and recv, the
 *                                       fallback of kernels before 5.19/6.0
 *   MATCHING_SERVER_RECV_BUFS=N         provided buffers (a power of two up
 *                                       to 32768; 1024 by default): few
 *                                       force the -ENOBUFS re-arm path
 */
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server.h"

#define SQ_ENTRIES		1024
#define CQ_ENTRIES		16384
/* Provided receive buffers: a power of two, recycled every iteration. */
#define RECV_BUF_COUNT		1024
#define RECV_BUF_COUNT_MAX	32768
#define RECV_BUF_SIZE		4096
#define RECV_BUF_GROUP		0
/* One send never copies more; the rest follows when it completes. */
#define SEND_MAX		(1u << 20)
#define SEND_BUF_INITIAL	4096
/* Shutdown waits at most this long for cancelled requests (hang guard). */
#define DRAIN_TIMEOUT_S		2

enum req_kind {
	REQ_ACCEPT = 1,
	REQ_STOP,
	REQ_RECV,
	REQ_SEND,
	REQ_CANCEL,
};

#define UD_KIND_SHIFT	56
#define UD_GEN_SHIFT	32
#define UD_GEN_MASK	0xffffffu

struct uring_conn {
	struct conn *conn;	/* NULL once the server has closed it */
	int fd;
	uint32_t slot;
	uint32_t gen;
	bool recv_armed;	/* a recv may still complete */
	bool recv_cancelled;	/* and it is being cancelled */
	bool send_inflight;
	unsigned char *send_buf;	/* the bytes of the in-flight send */
	size_t send_cap;
	struct uring_conn *next_free;
};

struct uring_loop {
	struct server *srv;
	const struct backend_config *cfg;
	struct io_uring ring;
	bool ring_ready;
	unsigned setup_flags;	/* what io_uring_setup accepted */

	struct io_uring_buf_ring *buf_ring;
	size_t buf_ring_size;
	unsigned nr_bufs;
	unsigned char *recv_bufs;
	unsigned bufs_returned;	/* in the ring, not yet published */

	struct uring_conn **slots;
	uint32_t nr_slots;
	uint32_t cap_slots;
	struct uring_conn *free_slots;

	uint64_t inflight;	/* requests whose last completion is due */
	uint64_t nobufs;	/* recvs that found no buffer (re-armed) */
	bool accept_armed;
	bool multishot_accept;
	bool multishot_recv;
	bool accepted_any;	/* a multishot accept worked: no fallback */
	bool received_any;	/* a multishot recv worked: no fallback */
	bool stop;
	bool draining;		/* shutting down: no input to the server */
};

static uint64_t ud_make(enum req_kind kind, uint32_t gen, uint32_t slot)
{
	return (uint64_t)kind << UD_KIND_SHIFT |
	       (uint64_t)(gen & UD_GEN_MASK) << UD_GEN_SHIFT | slot;
}

static enum req_kind ud_kind(uint64_t ud)
{
	return ud >> UD_KIND_SHIFT;
}

/* The slot a completion names, or NULL if it is stale (a bug). */
static struct uring_conn *ud_conn(struct uring_loop *loop, uint64_t ud)
{
	uint32_t slot = (uint32_t)ud;
	uint32_t gen = (ud >> UD_GEN_SHIFT) & UD_GEN_MASK;
	struct uring_conn *uc;

	if (slot >= loop->nr_slots)
		return NULL;
	uc = loop->slots[slot];
	return (uc->gen & UD_GEN_MASK) == gen ? uc : NULL;
}

/* An SQE, submitting what is queued first if the SQ is full. */
static struct io_uring_sqe *get_sqe(struct uring_loop *loop)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&loop->ring);

	while (!sqe) {
		int ret = io_uring_submit(&loop->ring);

		if (ret < 0 && ret != -EINTR && ret != -EAGAIN &&
		    ret != -EBUSY) {
			fprintf(stderr, "matching_server: io_uring_submit: "
				"%s\n", strerror(-ret));
			exit(1);
		}
		sqe = io_uring_get_sqe(&loop->ring);
	}
	return sqe;
}

/* ===== setup ===== */

/*
 * The completion model. COOP_TASKRUN (5.19) runs completion work when we
 * next enter the kernel instead of interrupting us with an IPI;
 * SINGLE_ISSUER (6.0) lets the kernel skip the locking for other
 * submitters. DEFER_TASKRUN (6.1) runs it only inside io_uring_enter:
 * measured here (6.18, 256 connections, 1 request in flight each) it cost
 * 15-25% more server CPU per request than COOP_TASKRUN, with 2.5 times as
 * many io_uring_enter calls, so it is opt-in: MATCHING_SERVER_TASKRUN=defer.
 * Older kernels refuse unknown flags with -EINVAL: each set is tried in
 * turn down to none.
 */
static int ring_init(struct io_uring *ring, unsigned *flags_out)
{
	static const unsigned defer_flags =
		IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
		IORING_SETUP_SUBMIT_ALL;
	static const unsigned flag_sets[] = {
		IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN |
			IORING_SETUP_SUBMIT_ALL,
		IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SUBMIT_ALL,
		IORING_SETUP_CQSIZE,
		0,
	};
	const char *taskrun = getenv("MATCHING_SERVER_TASKRUN");
	bool defer = taskrun && !strcmp(taskrun, "defer");
	int ret = -EINVAL;

	for (int i = defer ? -1 : 0;
	     i < (int)(sizeof(flag_sets) / sizeof(*flag_sets)); i++) {
		struct io_uring_params p = { 0 };

		p.flags = i < 0 ? defer_flags : flag_sets[i];
		if (p.flags) {
			p.flags |= IORING_SETUP_CQSIZE;
			p.cq_entries = CQ_ENTRIES;
		}
		ret = io_uring_queue_init_params(SQ_ENTRIES, ring, &p);
		if (ret == 0) {
			*flags_out = p.flags;
			return 0;
		}
		if (ret != -EINVAL)
			return ret;
	}
	return ret;
}

static int check_opcodes(struct io_uring *ring)
{
	static const int needed[] = {
		IORING_OP_ACCEPT, IORING_OP_RECV, IORING_OP_SEND,
		IORING_OP_ASYNC_CANCEL, IORING_OP_POLL_ADD,
	};
	struct io_uring_probe *probe = io_uring_get_probe_ring(ring);
	int ret = 0;

	if (!probe)
		return -ENOSYS;	/* no IORING_REGISTER_PROBE (5.6) */
	for (size_t i = 0; i < sizeof(needed) / sizeof(*needed); i++)
		if (!io_uring_opcode_supported(probe, needed[i]))
			ret = -EOPNOTSUPP;
	io_uring_free_probe(probe);
	return ret;
}

/* MATCHING_SERVER_RECV_BUFS if it is valid, else the default. */
static unsigned recv_buf_count(void)
{
	const char *text = getenv("MATCHING_SERVER_RECV_BUFS");
	unsigned long n;
	char *end;

	if (!text)
		return RECV_BUF_COUNT;
	n = strtoul(text, &end, 10);
	if (*end || n == 0 || n > RECV_BUF_COUNT_MAX || (n & (n - 1))) {
		fprintf(stderr, "matching_server: MATCHING_SERVER_RECV_BUFS="
			"%s ignored: not a power of two up to %u\n", text,
			RECV_BUF_COUNT_MAX);
		return RECV_BUF_COUNT;
	}
	return n;
}

static int buf_ring_init(struct uring_loop *loop)
{
	struct io_uring_buf_reg reg = { 0 };
	int mask;
	int ret;

	loop->nr_bufs = recv_buf_count();
	mask = io_uring_buf_ring_mask(loop->nr_bufs);

	/* The ring must be page aligned: mmap gives that. */
	loop->buf_ring_size = loop->nr_bufs * sizeof(struct io_uring_buf);
	loop->buf_ring = mmap(NULL, loop->buf_ring_size,
			      PROT_READ | PROT_WRITE,
			      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (loop->buf_ring == MAP_FAILED) {
		loop->buf_ring = NULL;
		return -errno;
	}
	/* Zeroed: valgrind cannot see the kernel fill them. */
	loop->recv_bufs = calloc(loop->nr_bufs, RECV_BUF_SIZE);
	if (!loop->recv_bufs) {
		ret = -ENOMEM;
		goto out_unmap_ring;
	}
	reg.ring_addr = (unsigned long)loop->buf_ring;
	reg.ring_entries = loop->nr_bufs;
	reg.bgid = RECV_BUF_GROUP;
	ret = io_uring_register_buf_ring(&loop->ring, &reg, 0);
	if (ret)
		goto out_free_bufs;
	io_uring_buf_ring_init(loop->buf_ring);
	for (unsigned i = 0; i < loop->nr_bufs; i++)
		io_uring_buf_ring_add(loop->buf_ring,
				      loop->recv_bufs + (size_t)i *
				      RECV_BUF_SIZE, RECV_BUF_SIZE, i, mask, i);
	io_uring_buf_ring_advance(loop->buf_ring, loop->nr_bufs);
	return 0;

out_free_bufs:
	free(loop->recv_bufs);
	loop->recv_bufs = NULL;
out_unmap_ring:
	munmap(loop->buf_ring, loop->buf_ring_size);
	loop->buf_ring = NULL;
	return ret;
}

/* Ring, opcodes, buffer ring; 0 or -errno with the reason on stderr. */
static int uring_open(struct uring_loop *loop)
{
	const char *what;
	int ret;

	ret = ring_init(&loop->ring, &loop->setup_flags);
	if (ret) {
		what = "io_uring_setup";
		goto out_report;
	}
	loop->ring_ready = true;
	ret = check_opcodes(&loop->ring);
	if (ret) {
		what = "accept, recv, send, cancel and poll opcodes";
		goto out_exit_ring;
	}
	ret = buf_ring_init(loop);
	if (ret) {
		what = "provided buffer ring (Linux 5.19 or later)";
		goto out_exit_ring;
	}
	/* Saves a file lookup per io_uring_enter; optional (5.18). */
	io_uring_register_ring_fd(&loop->ring);
	loop->multishot_accept = !getenv("MATCHING_SERVER_NO_MULTISHOT");
	loop->multishot_recv = loop->multishot_accept;
	return 0;

out_exit_ring:
	io_uring_queue_exit(&loop->ring);
	loop->ring_ready = false;
out_report:
	fprintf(stderr, "matching_server: --io uring: io_uring unavailable: "
		"%s: %s\n", what, strerror(-ret));
	return ret;
}

static void uring_close(struct uring_loop *loop)
{
	if (!loop->ring_ready)
		return;
	io_uring_unregister_buf_ring(&loop->ring, RECV_BUF_GROUP);
	io_uring_queue_exit(&loop->ring);
	loop->ring_ready = false;
	munmap(loop->buf_ring, loop->buf_ring_size);
	loop->buf_ring = NULL;
	free(loop->recv_bufs);
	loop->recv_bufs = NULL;
}

int loop_uring_probe(void)
{
	struct uring_loop loop = { 0 };
	int ret = uring_open(&loop);

	uring_close(&loop);
	return ret;
}

/* ===== slots ===== */

static struct uring_conn *slot_get(struct uring_loop *loop)
{
	struct uring_conn *uc = loop->free_slots;

	if (uc) {
		loop->free_slots = uc->next_free;
		uc->next_free = NULL;
		return uc;
	}
	if (loop->nr_slots == loop->cap_slots) {
		uint32_t cap = loop->cap_slots ? loop->cap_slots * 2 : 64;
		struct uring_conn **slots;

		slots = realloc(loop->slots, cap * sizeof(*slots));
		if (!slots)
			return NULL;
		loop->slots = slots;
		loop->cap_slots = cap;
	}
	uc = calloc(1, sizeof(*uc));
	if (!uc)
		return NULL;
	uc->fd = -1;
	uc->slot = loop->nr_slots;
	loop->slots[loop->nr_slots++] = uc;
	return uc;
}

/* Close the fd once the server and the kernel are both done with it. */
static void slot_maybe_release(struct uring_loop *loop, struct uring_conn *uc)
{
	if (uc->conn || uc->recv_armed || uc->send_inflight)
		return;
	close(uc->fd);
	uc->fd = -1;
	uc->gen++;
	uc->next_free = loop->free_slots;
	loop->free_slots = uc;
}

/* ===== requests ===== */

static void arm_accept(struct uring_loop *loop)
{
	struct io_uring_sqe *sqe = get_sqe(loop);

	if (loop->multishot_accept)
		io_uring_prep_multishot_accept(sqe, loop->cfg->listen_fd,
					       NULL, NULL,
					       SOCK_NONBLOCK | SOCK_CLOEXEC);
	else
		io_uring_prep_accept(sqe, loop->cfg->listen_fd, NULL, NULL,
				     SOCK_NONBLOCK | SOCK_CLOEXEC);
	io_uring_sqe_set_data64(sqe, ud_make(REQ_ACCEPT, 0, 0));
	loop->accept_armed = true;
	loop->inflight++;
}

static void arm_stop(struct uring_loop *loop)
{
	struct io_uring_sqe *sqe = get_sqe(loop);

	io_uring_prep_poll_add(sqe, loop->cfg->stop_fd, POLLIN);
	io_uring_sqe_set_data64(sqe, ud_make(REQ_STOP, 0, 0));
	loop->inflight++;
}

static void arm_recv(struct uring_loop *loop, struct uring_conn *uc)
{
	struct io_uring_sqe *sqe = get_sqe(loop);

	if (loop->multishot_recv)
		io_uring_prep_recv_multishot(sqe, uc->fd, NULL, 0, 0);
	else
		io_uring_prep_recv(sqe, uc->fd, NULL, RECV_BUF_SIZE, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = RECV_BUF_GROUP;
	io_uring_sqe_set_data64(sqe, ud_make(REQ_RECV, uc->gen, uc->slot));
	uc->recv_armed = true;
	uc->recv_cancelled = false;
	loop->inflight++;
}

static void cancel_recv(struct uring_loop *loop, struct uring_conn *uc)
{
	struct io_uring_sqe *sqe = get_sqe(loop);

	io_uring_prep_cancel64(sqe, ud_make(REQ_RECV, uc->gen, uc->slot), 0);
	io_uring_sqe_set_data64(sqe, ud_make(REQ_CANCEL, 0, 0));
	uc->recv_cancelled = true;
	loop->inflight++;
}

/* Cancel whatever is in flight on the slot's fd (5.19). */
static void cancel_slot(struct uring_loop *loop, struct uring_conn *uc)
{
	struct io_uring_sqe *sqe = get_sqe(loop);

	io_uring_prep_cancel_fd(sqe, uc->fd, IORING_ASYNC_CANCEL_ALL);
	io_uring_sqe_set_data64(sqe, ud_make(REQ_CANCEL, 0, 0));
	loop->inflight++;
}

/* Publish the buffers given back since the last call in one store. */
static void publish_bufs(struct uring_loop *loop)
{
	if (loop->bufs_returned) {
		io_uring_buf_ring_advance(loop->buf_ring, loop->bufs_returned);
		loop->bufs_returned = 0;
	}
}

static void return_buf(struct uring_loop *loop, unsigned bid)
{
	io_uring_buf_ring_add(loop->buf_ring,
			      loop->recv_bufs + (size_t)bid * RECV_BUF_SIZE,
			      RECV_BUF_SIZE, bid,
			      io_uring_buf_ring_mask(loop->nr_bufs),
			      loop->bufs_returned++);
}

/* ===== connections ===== */

static void close_conn(struct uring_loop *loop, struct conn *conn)
{
	struct uring_conn *uc = conn->backend;

	if (!server_quiet(loop->srv))
		fprintf(stderr, "matching_server: conn %u closed\n", conn->id);
	uc->conn = NULL;
	server_conn_close(loop->srv, conn);
	if (uc->recv_armed || uc->send_inflight)
		cancel_slot(loop, uc);
	slot_maybe_release(loop, uc);
}

static void open_conn(struct uring_loop *loop, int fd)
{
	struct uring_conn *uc;
	struct conn *conn;
	int one = 1;

	conn = server_conn_open(loop->srv, fd);
	if (!conn) {
		fprintf(stderr, "matching_server: connection refused: "
			"--max-conns reached\n");
		close(fd);
		return;
	}
	uc = slot_get(loop);
	if (!uc) {
		fprintf(stderr, "matching_server: conn %u: out of memory\n",
			conn->id);
		close(fd);
		server_conn_close(loop->srv, conn);
		return;
	}
	/* Responses are latency-critical and already batched. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	uc->conn = conn;
	uc->fd = fd;
	conn->backend = uc;
	arm_recv(loop, uc);
	if (!server_quiet(loop->srv))
		fprintf(stderr, "matching_server: conn %u open\n", conn->id);
}

/* One send per dirty connection, with at most one in flight. */
static void flush_conn(struct uring_loop *loop, struct conn *conn)
{
	struct uring_conn *uc = conn->backend;
	struct io_uring_sqe *sqe;
	const void *data;
	size_t pending;

	if (conn_must_close(conn)) {
		close_conn(loop, conn);
		return;
	}
	/* A closing connection reads nothing more, as with epoll: what the
	 * peer sends from now on stays in the socket. */
	if (conn->closing && uc->recv_armed && !uc->recv_cancelled)
		cancel_recv(loop, uc);
	if (uc->send_inflight)
		return;		/* its completion marks the conn dirty */
	pending = conn_out_peek(conn, &data);
	if (!pending)
		return;
	if (pending > SEND_MAX)
		pending = SEND_MAX;
	if (pending > uc->send_cap) {
		size_t cap = uc->send_cap ? uc->send_cap : SEND_BUF_INITIAL;
		unsigned char *buf;

		while (cap < pending)
			cap *= 2;
		buf = realloc(uc->send_buf, cap);
		if (!buf) {
			fprintf(stderr, "matching_server: conn %u: out of "
				"memory, disconnected\n", conn->id);
			close_conn(loop, conn);
			return;
		}
		uc->send_buf = buf;
		uc->send_cap = cap;
	}
	memcpy(uc->send_buf, data, pending);
	sqe = get_sqe(loop);
	io_uring_prep_send(sqe, uc->fd, uc->send_buf, pending, MSG_NOSIGNAL);
	io_uring_sqe_set_data64(sqe, ud_make(REQ_SEND, uc->gen, uc->slot));
	uc->send_inflight = true;
	loop->inflight++;
}

/* ===== completions ===== */

static void on_accept(struct uring_loop *loop, const struct io_uring_cqe *cqe)
{
	if (!(cqe->flags & IORING_CQE_F_MORE)) {
		loop->accept_armed = false;
		loop->inflight--;
	}
	if (cqe->res >= 0) {
		loop->accepted_any = true;
		if (loop->draining)
			close(cqe->res);
		else
			open_conn(loop, cqe->res);
		return;
	}
	if (cqe->res == -EINVAL && loop->multishot_accept &&
	    !loop->accepted_any) {
		loop->multishot_accept = false;	/* before 5.19 */
		fprintf(stderr, "matching_server: multishot accept refused, "
			"using single accepts\n");
		return;
	}
	/* EMFILE and friends: re-armed at the end of the iteration. */
	if (cqe->res != -EAGAIN && cqe->res != -EINTR &&
	    cqe->res != -ECONNABORTED && cqe->res != -ECANCELED)
		fprintf(stderr, "matching_server: accept: %s\n",
			strerror(-cqe->res));
}

static void on_recv(struct uring_loop *loop, const struct io_uring_cqe *cqe)
{
	struct uring_conn *uc = ud_conn(loop, cqe->user_data);
	struct conn *conn;
	int res = cqe->res;

	if (cqe->flags & IORING_CQE_F_BUFFER) {
		unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;

		if (res > 0 && uc && uc->conn && !loop->draining)
			conn_input(uc->conn, loop->recv_bufs +
				   (size_t)bid * RECV_BUF_SIZE, res);
		return_buf(loop, bid);
	}
	if (!uc) {
		fprintf(stderr, "matching_server: stale recv completion\n");
		return;
	}
	if (!(cqe->flags & IORING_CQE_F_MORE)) {
		uc->recv_armed = false;
		loop->inflight--;
	}
	conn = uc->conn;
	if (!conn) {
		slot_maybe_release(loop, uc);
		return;
	}
	if (res > 0 && loop->multishot_recv)
		loop->received_any = true;
	if (res == 0) {
		conn_eof(conn);
	} else if (res == -EINVAL && loop->multishot_recv &&
		   !loop->received_any) {
		loop->multishot_recv = false;	/* before 6.0 */
		fprintf(stderr, "matching_server: multishot recv refused, "
			"using single recvs\n");
	} else if (res == -ENOBUFS) {
		loop->nobufs++;
	} else if (res < 0 && res != -EINTR &&
		   res != -EAGAIN && res != -ECANCELED) {
		conn_eof(conn);
	}
	/* Multishot ended (no buffer, CQ overflow, fallback): re-arm. */
	if (!uc->recv_armed && !conn->dead && !conn->closing &&
	    !loop->draining)
		arm_recv(loop, uc);
}

static void on_send(struct uring_loop *loop, const struct io_uring_cqe *cqe)
{
	struct uring_conn *uc = ud_conn(loop, cqe->user_data);
	struct conn *conn;

	if (!uc) {
		fprintf(stderr, "matching_server: stale send completion\n");
		return;
	}
	uc->send_inflight = false;
	loop->inflight--;
	conn = uc->conn;
	if (!conn) {
		slot_maybe_release(loop, uc);
		return;
	}
	if (cqe->res > 0)
		conn_out_consume(conn, cqe->res);
	else if (cqe->res < 0 && cqe->res != -EINTR && cqe->res != -EAGAIN)
		conn_eof(conn);	/* as epoll closes on a failed write */
	/* Send the rest, or close if that was the last of a closing conn. */
	conn_mark_dirty(conn);
}

static void handle_cqe(struct uring_loop *loop,
		       const struct io_uring_cqe *cqe)
{
	switch (ud_kind(cqe->user_data)) {
	case REQ_ACCEPT:
		on_accept(loop, cqe);
		break;
	case REQ_STOP:
		loop->inflight--;
		loop->stop = true;
		break;
	case REQ_RECV:
		on_recv(loop, cqe);
		break;
	case REQ_SEND:
		on_send(loop, cqe);
		break;
	case REQ_CANCEL:
		loop->inflight--;
		break;
	}
}

static unsigned reap(struct uring_loop *loop)
{
	struct io_uring_cqe *cqe;
	unsigned head, seen = 0;

	io_uring_for_each_cqe(&loop->ring, head, cqe) {
		handle_cqe(loop, cqe);
		seen++;
	}
	io_uring_cq_advance(&loop->ring, seen);
	publish_bufs(loop);
	return seen;
}

/* ===== loop ===== */

/*
 * Sends queued by the last flush go out with the cancellation of
 * everything else (in SQ order: a send that fits completes at once, as
 * epoll's write would have); then wait for every last completion so no
 * request outlives the buffers it points to.
 */
static void drain(struct uring_loop *loop)
{
	struct __kernel_timespec ts = { .tv_sec = DRAIN_TIMEOUT_S };
	struct io_uring_sqe *sqe;
	struct io_uring_cqe *cqe;

	loop->draining = true;
	sqe = get_sqe(loop);
	io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY);
	io_uring_sqe_set_data64(sqe, ud_make(REQ_CANCEL, 0, 0));
	loop->inflight++;
	while (loop->inflight) {
		int ret = io_uring_submit_and_wait_timeout(&loop->ring, &cqe,
							   1, &ts, NULL);

		if (ret < 0 && ret != -EINTR && ret != -EAGAIN &&
		    ret != -EBUSY)
			break;	/* -ETIME too: the ring's exit cleans up */
		reap(loop);
	}
}

static void log_setup(const struct uring_loop *loop)
{
	unsigned f = loop->setup_flags;

	if (server_quiet(loop->srv))
		return;
	fprintf(stderr, "matching_server: io_uring backend:%s%s%s, "
		"%s accept and recv, provided buffers %ux%u\n",
		f & IORING_SETUP_SINGLE_ISSUER ? " single-issuer" : "",
		f & IORING_SETUP_DEFER_TASKRUN ? " defer-taskrun" : "",
		f & IORING_SETUP_COOP_TASKRUN ? " coop-taskrun" : "",
		loop->multishot_recv ? "multishot" : "single-shot",
		loop->nr_bufs, RECV_BUF_SIZE);
}

int loop_uring_run(struct server *srv, const struct backend_config *cfg)
{
	struct uring_loop loop = { .srv = srv, .cfg = cfg };
	struct conn *conn;
	int err;

	err = uring_open(&loop);
	if (err)
		return err;
	log_setup(&loop);
	arm_stop(&loop);
	arm_accept(&loop);

	while (!loop.stop) {
		int ret = io_uring_submit_and_wait(&loop.ring, 1);

		if (ret < 0 && ret != -EINTR && ret != -EAGAIN &&
		    ret != -EBUSY) {
			err = ret;
			fprintf(stderr, "matching_server: io_uring_enter: "
				"%s\n", strerror(-ret));
			break;
		}
		reap(&loop);
		/* Group commit: the journal first, then the responses. */
		err = server_commit(srv);
		if (err) {
			fprintf(stderr, "matching_server: journal: %s\n",
				strerror(-err));
			break;
		}
		while ((conn = server_next_dirty(srv)))
			flush_conn(&loop, conn);
		if (!loop.accept_armed && !loop.stop)
			arm_accept(&loop);
	}

	drain(&loop);
	if (!server_quiet(srv))
		fprintf(stderr, "matching_server: io_uring: %llu recvs found "
			"no provided buffer and were re-armed\n",
			(unsigned long long)loop.nobufs);
	while ((conn = server_first_conn(srv))) {
		struct uring_conn *uc = conn->backend;

		uc->conn = NULL;
		server_conn_close(srv, conn);
	}
	for (uint32_t i = 0; i < loop.nr_slots; i++) {
		struct uring_conn *uc = loop.slots[i];

		if (uc->fd >= 0)
			close(uc->fd);
		free(uc->send_buf);
		free(uc);
	}
	free(loop.slots);
	if (loop.inflight) {
		/* Requests the kernel still holds may write to the buffers. */
		fprintf(stderr, "matching_server: %llu io_uring requests did "
			"not finish at shutdown\n",
			(unsigned long long)loop.inflight);
		io_uring_queue_exit(&loop.ring);
		return err;
	}
	uring_close(&loop);
	return err;
}
