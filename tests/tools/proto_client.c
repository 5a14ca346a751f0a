/*
 * proto_client - scripted order-entry client for the matching server tests.
 *
 * Script mode (default): reads commands from FILE or stdin, one per line,
 * sends them and prints every response decoded, one per line, prefixed by
 * the connection name. After each command it synchronises every open
 * connection: it sends a Cancel with cl_ord_id 2^64-1 (reserved for this)
 * and prints what arrives until that Cancel's Rejected, so the output is
 * deterministic even across connections. Commands:
 *
 *   conn NAME                     switch to connection NAME (opened on
 *                                 first use; the first one is "a")
 *   hello [VERSION]
 *   new SYM SIDE TYPE TIF PRICE QTY cl=ID    e.g. new 7 B L G 100 10 cl=1
 *   cancel cl=ID
 *   replace cl=ORIG new=NEW QTY PRICE
 *   sub SYM
 *   raw HEX...                    bytes as they are, e.g. raw 0400 5a00
 *   stall MS                      sleep without reading or syncing
 *   drain                         read until the server closes; print
 *                                 "eof after N bytes"
 *   count                         sync, but tally this connection's
 *                                 responses by type and print one line
 *                                 "counted hello_ack=N accepted=N ..."
 *   # comment
 *
 * Flood mode (--flood N): one connection, Hello, then N GTC limit orders
 * pipelined (--window outstanding) on --symbol: by default buys of qty 1 at
 * the unique prices 1000+i with cl_ord_id i (i = 1..N), so each resting
 * order can be recognised later; with --cross alternately buys and sells
 * at 1000, each pair trading. The cl_ord_id of every Accepted is appended
 * to --acked FILE as it arrives. Prints "flood: sent=S accepted=A
 * rejected=R eof=0|1"; exits 0 only if all N were accepted.
 *
 * Many mode (--many N): N concurrent connections, each sends Hello and one
 * order on symbol (index mod --symbols); prints "many: conns=N
 * hello_acks=H accepted=A"; exits 0 only if H and A equal N.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../../demo_server/protocol.h"

#define SYNC_ID		UINT64_MAX
#define MAX_CONNS	16
#define IO_TIMEOUT_S	10

struct client_conn {
	char name[16];
	int fd;
	bool closed;
	bool counting;		/* tally responses instead of printing them */
	int skip_syncs;		/* sync replies of barriers, not printed */
	uint64_t counts[256];	/* by message type */
	size_t len;
	_Alignas(8) unsigned char buf[4096];	/* frames start at buf[0] */
};

static const char *host = "127.0.0.1";
static int port = -1;
static int chunk;		/* split every send into chunks of this size */
static int chunk_delay_us = 1000;
static int rcvbuf;		/* SO_RCVBUF of script conns; 0: default */

static struct client_conn conns[MAX_CONNS];
static int nr_conns;
static struct client_conn *cur;

static void __attribute__((noreturn)) fail(const char *what)
{
	fprintf(stderr, "proto_client: %s\n", what);
	exit(2);
}

static int connect_to_server(int rcvbuf_size)
{
	struct sockaddr_storage ss = { 0 };
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
	struct timeval tv = { .tv_sec = IO_TIMEOUT_S };
	socklen_t len;
	int fd, one = 1;

	if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		len = sizeof(*sin);
	} else if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		len = sizeof(*sin6);
	} else {
		fail("--host: not an IP literal");
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		fail("socket failed");
	if (rcvbuf_size)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf_size,
			   sizeof(rcvbuf_size));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&ss, len)) {
		perror("proto_client: connect");
		exit(2);
	}
	return fd;
}

/* Send all of data; a failure is left for the next read to report. */
static void send_bytes(int fd, const void *data, size_t len)
{
	const unsigned char *p = data;

	while (len) {
		size_t n = chunk && (size_t)chunk < len ? (size_t)chunk : len;
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		p += w;
		len -= w;
		if (chunk && len)
			usleep(chunk_delay_us);
	}
}

static void send_msg(int fd, void *msg, uint8_t type)
{
	struct msg_hdr *h = msg;

	h->len = proto_msg_size(type);
	h->type = type;
	h->flags = 0;
	send_bytes(fd, msg, h->len);
}

/* ===== decoding ===== */

static void print_id(const char *key, uint64_t id)
{
	printf(" %s=%" PRIu64 ":%" PRIu64, key, id >> 32, id & 0xffffffffu);
}

static char printable(uint8_t c)
{
	return isprint(c) ? c : '?';
}

static bool is_sync_reply(const unsigned char *frame)
{
	struct msg_rejected j;

	memcpy(&j, frame, sizeof(j));
	return j.cl_ord_id == SYNC_ID && j.ref_type == MSG_CANCEL;
}

/* Print one response; returns true if it was the sync marker's reply. */
static bool decode(const char *name, const unsigned char *frame)
{
	union {
		struct msg_hdr h;
		struct msg_hello_ack ack;
		struct msg_accepted a;
		struct msg_rejected j;
		struct msg_executed e;
		struct msg_canceled c;
		struct msg_replaced r;
		struct msg_trade t;
		struct msg_top_of_book q;
	} m;

	memcpy(&m.h, frame, sizeof(m.h));
	memcpy(&m, frame, m.h.len);
	if (m.h.type == MSG_REJECTED && m.j.cl_ord_id == SYNC_ID &&
	    m.j.ref_type == MSG_CANCEL)
		return true;
	printf("%s: ", name);
	switch (m.h.type) {
	case MSG_HELLO_ACK:
		printf("hello_ack version=%u", m.ack.version);
		break;
	case MSG_ACCEPTED:
		printf("accepted sym=%u cl=%" PRIu64, m.a.symbol,
		       m.a.cl_ord_id);
		print_id("oid", m.a.order_id);
		printf(" px=%" PRId64 " qty=%u side=%c type=%c tif=%c",
		       m.a.price, m.a.qty, printable(m.a.side),
		       printable(m.a.ord_type), printable(m.a.tif));
		break;
	case MSG_REJECTED:
		printf("rejected reason=%s ref=%c cl=%" PRIu64,
		       proto_reject_name(m.j.reason), printable(m.j.ref_type),
		       m.j.cl_ord_id);
		break;
	case MSG_EXECUTED:
		printf("executed sym=%u cl=%" PRIu64, m.e.symbol,
		       m.e.cl_ord_id);
		print_id("mid", m.e.match_id);
		printf(" px=%" PRId64 " qty=%u leaves=%u side=%c liq=%c",
		       m.e.price, m.e.qty, m.e.leaves_qty,
		       printable(m.e.side), printable(m.e.liquidity));
		break;
	case MSG_CANCELED:
		printf("canceled cl=%" PRIu64 " qty=%u reason=%s",
		       m.c.cl_ord_id, m.c.canceled_qty,
		       m.c.reason == CXL_USER ? "USER" :
		       m.c.reason == CXL_IOC_REMAINDER ? "IOC_REMAINDER" : "?");
		break;
	case MSG_REPLACED:
		printf("replaced orig=%" PRIu64 " new=%" PRIu64,
		       m.r.orig_cl_ord_id, m.r.new_cl_ord_id);
		print_id("oid", m.r.order_id);
		printf(" px=%" PRId64 " qty=%u", m.r.price, m.r.qty);
		break;
	case MSG_TRADE:
		printf("trade sym=%u", m.t.symbol);
		print_id("mid", m.t.match_id);
		printf(" px=%" PRId64 " qty=%u aggr=%c", m.t.price, m.t.qty,
		       printable(m.t.aggressor_side));
		break;
	case MSG_TOP_OF_BOOK:
		printf("tob sym=%u bid=%" PRId64 "x%u ask=%" PRId64 "x%u",
		       m.q.symbol, m.q.bid_price, m.q.bid_qty, m.q.ask_price,
		       m.q.ask_qty);
		break;
	}
	printf("\n");
	return false;
}

/*
 * recv_or_exit - recv on c, retried after EINTR; returns the byte count,
 * 0 at EOF or -1 on an error. When the receive timeout expires it prints
 * "<name>: timeout" and exits 1: the server never answered.
 */
static ssize_t recv_or_exit(struct client_conn *c, void *buf, size_t len)
{
	ssize_t n;

	do
		n = recv(c->fd, buf, len, 0);
	while (n < 0 && errno == EINTR);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
		printf("%s: timeout\n", c->name);
		exit(1);
	}
	return n;
}

/*
 * Read from c, handing each frame to fn, until fn returns true for one (then
 * true) or the connection ends (then false, c->closed set). A malformed
 * frame prints "<name>: garbage ..." and exits 1.
 */
static bool read_frames(struct client_conn *c,
			bool (*fn)(struct client_conn *, const unsigned char *,
				   void *), void *arg)
{
	for (;;) {
		int len;

		while ((len = proto_next_frame(c->buf, c->len,
					       PROTO_TO_CLIENT))) {
			size_t off = (size_t)len;

			if (len < 0) {
				struct msg_hdr h;

				memcpy(&h, c->buf, sizeof(h));
				printf("%s: garbage type=0x%02x len=%u\n",
				       c->name, h.type, h.len);
				exit(1);
			}
			if (fn(c, c->buf, arg)) {
				memmove(c->buf, c->buf + off, c->len - off);
				c->len -= off;
				return true;
			}
			memmove(c->buf, c->buf + off, c->len - off);
			c->len -= off;
		}
		ssize_t n = recv_or_exit(c, c->buf + c->len,
					 sizeof(c->buf) - c->len);
		if (n > 0) {
			c->len += n;
			continue;
		}
		c->closed = true;
		return false;
	}
}

static bool print_until_sync(struct client_conn *c, const unsigned char *f,
			     void *arg)
{
	(void)arg;
	if (c->skip_syncs && f[2] == MSG_REJECTED && is_sync_reply(f)) {
		c->skip_syncs--;
		return false;
	}
	if (c->counting && !(f[2] == MSG_REJECTED && is_sync_reply(f))) {
		c->counts[f[2]]++;
		return false;
	}
	return decode(c->name, f);
}

/* Does c's buffer hold a sync reply (or a frame that ends the scan)? */
static bool sync_buffered(const struct client_conn *c)
{
	size_t off = 0;
	int len;

	while ((len = proto_next_frame(c->buf + off, c->len - off,
				       PROTO_TO_CLIENT))) {
		if (len < 0 || (c->buf[off + 2] == MSG_REJECTED &&
				is_sync_reply(c->buf + off)))
			return true;
		off += (size_t)len;
	}
	return false;
}

/*
 * Wait until the server has handled everything sent on c, reading its
 * answers into c's buffer without printing them yet. The command's
 * effects on other connections (a maker's executions) are then queued
 * before their sync markers are even sent, whatever order the server
 * serves its ready sockets in.
 */
static void barrier(struct client_conn *c)
{
	struct msg_cancel marker = { .cl_ord_id = SYNC_ID };

	send_msg(c->fd, &marker, MSG_CANCEL);
	c->skip_syncs++;
	while (!sync_buffered(c) && c->len < sizeof(c->buf)) {
		ssize_t n = recv_or_exit(c, c->buf + c->len,
					 sizeof(c->buf) - c->len);

		if (n <= 0)
			return;	/* read_frames sees the end again */
		c->len += n;
	}
}

static void sync_all(void)
{
	struct msg_cancel marker = { .cl_ord_id = SYNC_ID };

	if (cur && !cur->closed && nr_conns > 1)
		barrier(cur);
	for (int i = 0; i < nr_conns; i++) {
		struct client_conn *c = &conns[i];

		if (c->closed)
			continue;
		send_msg(c->fd, &marker, MSG_CANCEL);
		if (!read_frames(c, print_until_sync, NULL))
			printf("%s: closed\n", c->name);
	}
	fflush(stdout);
}

static struct client_conn *open_conn(const char *name)
{
	struct client_conn *c;

	for (int i = 0; i < nr_conns; i++)
		if (!strcmp(conns[i].name, name))
			return &conns[i];
	if (nr_conns == MAX_CONNS)
		fail("too many connections in script");
	c = &conns[nr_conns++];
	snprintf(c->name, sizeof(c->name), "%s", name);
	c->fd = connect_to_server(rcvbuf);
	return c;
}

/* ===== script commands ===== */

static uint64_t parse_num(const char *s, const char *prefix)
{
	size_t plen = strlen(prefix);
	char *end;
	uint64_t v;

	if (!s || strncmp(s, prefix, plen))
		fail("bad script argument");
	errno = 0;
	if (s[plen] == '-')
		v = (uint64_t)strtoll(s + plen, &end, 0);
	else
		v = strtoull(s + plen, &end, 0);
	if (errno || *end || end == s + plen)
		fail("bad number in script");
	return v;
}

static uint8_t parse_char(const char *s)
{
	if (!s || strlen(s) != 1)
		fail("expected a one-letter code");
	return (uint8_t)s[0];
}

static void send_raw(char *hex)
{
	unsigned char bytes[1024];
	size_t n = 0;
	int nibble = -1;

	for (char *p = hex; *p; p++) {
		int v;

		if (isspace((unsigned char)*p))
			continue;
		if (!isxdigit((unsigned char)*p) || n == sizeof(bytes))
			fail("bad raw hex");
		v = isdigit((unsigned char)*p) ? *p - '0'
					       : tolower(*p) - 'a' + 10;
		if (nibble < 0) {
			nibble = v;
		} else {
			bytes[n++] = nibble << 4 | v;
			nibble = -1;
		}
	}
	if (nibble >= 0)
		fail("odd number of hex digits");
	send_bytes(cur->fd, bytes, n);
}

static void drain(void)
{
	unsigned char buf[65536];
	uint64_t total = 0;

	for (;;) {
		ssize_t n = recv_or_exit(cur, buf, sizeof(buf));

		if (n <= 0)
			break;
		total += n;
	}
	cur->closed = true;
	cur->len = 0;
	printf("%s: eof after %" PRIu64 " bytes\n", cur->name, total);
	fflush(stdout);
}

/* Sync, tallying this connection's responses by type; print the tally. */
static void count_responses(void)
{
	static const struct { uint8_t type; const char *name; } names[] = {
		{ MSG_HELLO_ACK, "hello_ack" }, { MSG_ACCEPTED, "accepted" },
		{ MSG_REJECTED, "rejected" }, { MSG_EXECUTED, "executed" },
		{ MSG_CANCELED, "canceled" }, { MSG_REPLACED, "replaced" },
		{ MSG_TRADE, "trade" }, { MSG_TOP_OF_BOOK, "tob" },
	};

	memset(cur->counts, 0, sizeof(cur->counts));
	cur->counting = true;
	sync_all();
	cur->counting = false;
	printf("%s: counted", cur->name);
	for (unsigned i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		printf(" %s=%" PRIu64, names[i].name,
		       cur->counts[names[i].type]);
	printf("\n");
	fflush(stdout);
}

static void run_command(char *line)
{
	char *save, *cmd, *args[8] = { 0 };
	int nargs = 0;

	cmd = strtok_r(line, " \t\n", &save);
	if (!cmd || cmd[0] == '#')
		return;
	if (!strcmp(cmd, "raw")) {
		if (!cur)
			cur = open_conn("a");
		send_raw(save);
		sync_all();
		return;
	}
	while (nargs < 8 && (args[nargs] = strtok_r(NULL, " \t\n", &save)))
		nargs++;
	if (!strcmp(cmd, "conn")) {
		if (!args[0])
			fail("conn needs a name");
		cur = open_conn(args[0]);
		return;
	}
	if (!cur)
		cur = open_conn("a");
	if (cur->closed && strcmp(cmd, "stall"))
		fail("command on a closed connection");

	if (!strcmp(cmd, "hello")) {
		struct msg_hello m = { .version = PROTO_VERSION };

		if (args[0])
			m.version = parse_num(args[0], "");
		memcpy(m.user, "tester", 6);
		send_msg(cur->fd, &m, MSG_HELLO);
	} else if (!strcmp(cmd, "new")) {
		struct msg_new_order m = { 0 };

		if (nargs != 7)
			fail("new SYM SIDE TYPE TIF PRICE QTY cl=ID");
		m.symbol = parse_num(args[0], "");
		m.side = parse_char(args[1]);
		m.ord_type = parse_char(args[2]);
		m.tif = parse_char(args[3]);
		m.price = (int64_t)parse_num(args[4], "");
		m.qty = parse_num(args[5], "");
		m.cl_ord_id = parse_num(args[6], "cl=");
		send_msg(cur->fd, &m, MSG_NEW_ORDER);
	} else if (!strcmp(cmd, "cancel")) {
		struct msg_cancel m = {
			.cl_ord_id = parse_num(args[0], "cl="),
		};

		send_msg(cur->fd, &m, MSG_CANCEL);
	} else if (!strcmp(cmd, "replace")) {
		struct msg_replace m = { 0 };

		if (nargs != 4)
			fail("replace cl=ORIG new=NEW QTY PRICE");
		m.orig_cl_ord_id = parse_num(args[0], "cl=");
		m.new_cl_ord_id = parse_num(args[1], "new=");
		m.new_qty = parse_num(args[2], "");
		m.new_price = (int64_t)parse_num(args[3], "");
		send_msg(cur->fd, &m, MSG_REPLACE);
	} else if (!strcmp(cmd, "sub")) {
		struct msg_subscribe m = { .symbol = parse_num(args[0], "") };

		send_msg(cur->fd, &m, MSG_SUBSCRIBE);
	} else if (!strcmp(cmd, "stall")) {
		usleep(parse_num(args[0], "") * 1000);
		return;
	} else if (!strcmp(cmd, "drain")) {
		drain();
		return;
	} else if (!strcmp(cmd, "count")) {
		count_responses();
		return;
	} else {
		fail("unknown script command");
	}
	sync_all();
}

static int run_script(FILE *in)
{
	char line[4096];

	while (fgets(line, sizeof(line), in))
		run_command(line);
	for (int i = 0; i < nr_conns; i++)
		close(conns[i].fd);
	return 0;
}

/* ===== flood mode ===== */

struct flood {
	uint64_t sent, accepted, rejected;
	FILE *acked;
};

static bool count_ack(struct client_conn *c, const unsigned char *f,
		      void *arg)
{
	struct flood *fl = arg;
	struct msg_accepted a;

	(void)c;
	if (f[2] == MSG_ACCEPTED) {
		memcpy(&a, f, sizeof(a));
		fl->accepted++;
		if (fl->acked)
			fprintf(fl->acked, "%" PRIu64 "\n", a.cl_ord_id);
		return true;
	}
	if (f[2] == MSG_REJECTED) {
		fl->rejected++;
		return true;
	}
	return false;		/* executions and market data: not acks */
}

static bool is_hello_ack(struct client_conn *c, const unsigned char *f,
			 void *arg)
{
	(void)c;
	(void)arg;
	return f[2] == MSG_HELLO_ACK;
}

static int run_flood(uint64_t n, uint32_t symbol, bool cross,
		     unsigned window, const char *acked_path)
{
	struct client_conn *c = open_conn("flood");
	struct msg_hello hello = { .version = PROTO_VERSION };
	struct flood fl = { 0 };
	bool eof = false;

	if (acked_path) {
		fl.acked = fopen(acked_path, "w");
		if (!fl.acked)
			fail("cannot open --acked file");
	}
	send_msg(c->fd, &hello, MSG_HELLO);
	if (!read_frames(c, is_hello_ack, NULL))
		eof = true;
	while (!eof && fl.accepted + fl.rejected < n) {
		while (fl.sent < n &&
		       fl.sent - fl.accepted - fl.rejected < window) {
			uint64_t i = ++fl.sent;
			struct msg_new_order m = {
				.symbol = symbol,
				.cl_ord_id = i,
				.price = cross ? 1000 : 1000 + (int64_t)i,
				.qty = 1,
				.side = cross && !(i & 1) ? SIDE_SELL
							  : SIDE_BUY,
				.ord_type = ORD_LIMIT,
				.tif = TIF_GTC,
			};

			send_msg(c->fd, &m, MSG_NEW_ORDER);
		}
		if (!read_frames(c, count_ack, &fl))
			eof = true;
		if (fl.acked)
			fflush(fl.acked);
	}
	if (fl.acked)
		fclose(fl.acked);
	close(c->fd);
	printf("flood: sent=%" PRIu64 " accepted=%" PRIu64 " rejected=%" PRIu64
	       " eof=%d\n", fl.sent, fl.accepted, fl.rejected, eof);
	return fl.accepted == n ? 0 : 3;
}

/* ===== many mode ===== */

/* The order's answer: counts Accepted in *(unsigned *)arg. */
static bool is_order_answer(struct client_conn *c, const unsigned char *f,
			    void *arg)
{
	(void)c;
	*(unsigned *)arg += f[2] == MSG_ACCEPTED;
	return f[2] == MSG_ACCEPTED || f[2] == MSG_REJECTED;
}

static int run_many(unsigned n, unsigned symbols)
{
	struct client_conn *many = calloc(n, sizeof(*many));
	unsigned hello_acks = 0, accepted = 0;
	struct rlimit rl;

	if (!many)
		fail("out of memory");
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	/* All connections open at once, then each logs in and trades. */
	for (unsigned i = 0; i < n; i++) {
		snprintf(many[i].name, sizeof(many[i].name), "m%u", i);
		many[i].fd = connect_to_server(0);
	}
	for (unsigned i = 0; i < n; i++) {
		struct msg_hello m = { .version = PROTO_VERSION };

		send_msg(many[i].fd, &m, MSG_HELLO);
	}
	for (unsigned i = 0; i < n; i++)
		hello_acks += read_frames(&many[i], is_hello_ack, NULL);
	for (unsigned i = 0; i < n; i++) {
		struct msg_new_order m = {
			.symbol = i % symbols, .cl_ord_id = 1, .price = 100,
			.qty = 1, .side = SIDE_BUY, .ord_type = ORD_LIMIT,
			.tif = TIF_IOC,
		};

		send_msg(many[i].fd, &m, MSG_NEW_ORDER);
	}
	for (unsigned i = 0; i < n; i++)
		read_frames(&many[i], is_order_answer, &accepted);
	for (unsigned i = 0; i < n; i++)
		close(many[i].fd);
	free(many);
	printf("many: conns=%u hello_acks=%u accepted=%u\n", n, hello_acks,
	       accepted);
	return hello_acks == n && accepted == n ? 0 : 3;
}

static void usage(void)
{
	fprintf(stderr,
"usage: proto_client --port N [--host ADDR] [--chunk BYTES]\n"
"                    [--chunk-delay-us US] [--rcvbuf BYTES] [SCRIPT]\n"
"       proto_client --port N --flood N [--symbol S] [--cross]\n"
"                    [--window W] [--acked FILE]\n"
"       proto_client --port N --many N [--symbols S]\n"
"See the top of tests/tools/proto_client.c for the script language.\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "host", required_argument, NULL, 'H' },
		{ "port", required_argument, NULL, 'p' },
		{ "chunk", required_argument, NULL, 'c' },
		{ "chunk-delay-us", required_argument, NULL, 'd' },
		{ "rcvbuf", required_argument, NULL, 'r' },
		{ "flood", required_argument, NULL, 'f' },
		{ "symbol", required_argument, NULL, 's' },
		{ "cross", no_argument, NULL, 'x' },
		{ "window", required_argument, NULL, 'w' },
		{ "acked", required_argument, NULL, 'a' },
		{ "many", required_argument, NULL, 'm' },
		{ "symbols", required_argument, NULL, 'S' },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t flood = 0;
	unsigned many = 0, window = 64, symbols = 65536;
	uint32_t symbol = 0;
	bool cross = false;
	const char *acked = NULL;
	FILE *in = stdin;
	int opt;

	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'H': host = optarg; break;
		case 'p': port = atoi(optarg); break;
		case 'c': chunk = atoi(optarg); break;
		case 'd': chunk_delay_us = atoi(optarg); break;
		case 'r': rcvbuf = atoi(optarg); break;
		case 'f': flood = strtoull(optarg, NULL, 10); break;
		case 's': symbol = strtoul(optarg, NULL, 10); break;
		case 'x': cross = true; break;
		case 'w': window = atoi(optarg); break;
		case 'a': acked = optarg; break;
		case 'm': many = atoi(optarg); break;
		case 'S': symbols = atoi(optarg); break;
		default: usage();
		}
	}
	if (port < 0 || port > 65535 || window < 1 || symbols < 1)
		usage();
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (flood)
		return run_flood(flood, symbol, cross, window, acked);
	if (many)
		return run_many(many, symbols);
	if (optind < argc) {
		in = fopen(argv[optind], "r");
		if (!in)
			fail("cannot open script");
	}
	return run_script(in);
}
