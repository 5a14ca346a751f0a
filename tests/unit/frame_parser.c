/*
 * frame_parser - the server's framing (conn_input) under every split.
 *
 * A byte stream of many frames (login, orders that trade, cancel, replace,
 * subscribe) is fed to a connection whole, then split in two at every byte
 * boundary, then one byte at a time, then in random pieces; the output
 * queued for the connection must be identical each time. Input always ends
 * right before a PROT_NONE page, so any read past the data faults. Then
 * malformed frames: an unknown type, a wrong length for a known type, an
 * outbound type, a zero length, each also split inside its header: the
 * connection gets Rejected(REJ_MALFORMED), is marked closing, and nothing
 * after the bad frame is processed. Last, a large output backlog: its
 * buffer is given back once drained and output goes on normally.
 */
#include <sys/mman.h>
#include <unistd.h>

#include "engine_util.h"
#include "../../demo_server/server.h"

static unsigned char *guard_page_end;	/* first byte of the PROT_NONE page */

static unsigned char stream[4096];
static size_t stream_len;

static void add(void *msg, uint8_t type)
{
	struct msg_hdr *h = msg;

	h->len = proto_msg_size(type);
	h->type = type;
	h->flags = 0;
	memcpy(stream + stream_len, msg, h->len);
	stream_len += h->len;
}

static void build_stream(void)
{
	struct msg_hello hello = { .version = PROTO_VERSION };
	struct msg_subscribe sub = { .symbol = 3 };
	struct msg_cancel cxl = { .cl_ord_id = 2 };
	struct msg_replace rep = {
		.new_qty = 2, .orig_cl_ord_id = 1, .new_cl_ord_id = 9,
		.new_price = 101,
	};

	add(&hello, MSG_HELLO);
	add(&sub, MSG_SUBSCRIBE);
	for (int i = 1; i <= 6; i++) {
		struct msg_new_order o = {
			.symbol = 3, .cl_ord_id = i, .price = 100 + i % 2,
			.qty = 3, .side = i % 2 ? SIDE_SELL : SIDE_BUY,
			.ord_type = ORD_LIMIT, .tif = TIF_GTC,
		};

		add(&o, MSG_NEW_ORDER);
	}
	add(&cxl, MSG_CANCEL);
	add(&rep, MSG_REPLACE);
}

/* Copy data so that it ends where the guard page begins. */
static const unsigned char *at_guard(const unsigned char *data, size_t len)
{
	unsigned char *p = guard_page_end - len;

	memmove(p, data, len);
	return p;
}

/* A server for these tests (8 symbols, 4 connections, quiet). */
static struct server *test_server(size_t max_outbuf)
{
	struct server_config cfg = {
		.engine = { .symbols = 8, .max_orders = 1000 },
		.max_conns = 4,
		.max_outbuf = max_outbuf,
		.quiet = true,
	};

	return server_create(&cfg);
}

/*
 * Feed stream[0, len) cut at the given points to a fresh server's conn and
 * copy its queued output to out. Returns the output length.
 */
static size_t feed(const unsigned char *data, size_t len, const size_t *cuts,
		   int nr_cuts, unsigned char *out, size_t out_cap,
		   bool *closing)
{
	struct server *srv = test_server(1 << 20);
	struct conn *conn = server_conn_open(srv, -1);
	size_t from = 0, n;
	const void *queued;

	for (int i = 0; i <= nr_cuts; i++) {
		size_t to = i < nr_cuts ? cuts[i] : len;

		conn_input(conn, at_guard(data + from, to - from), to - from);
		from = to;
	}
	n = conn_out_peek(conn, &queued);
	CHECK(n <= out_cap);
	memcpy(out, queued, n < out_cap ? n : out_cap);
	*closing = conn->closing;
	server_conn_close(srv, conn);
	server_destroy(srv);
	return n;
}

static void test_splits(void)
{
	static unsigned char whole[65536], split[65536];
	size_t whole_len, len, cuts[4096];
	bool closing;

	whole_len = feed(stream, stream_len, NULL, 0, whole, sizeof(whole),
			 &closing);
	/* HelloAck, snapshot, 6 Accepted, trades..., at least 20 messages. */
	CHECK(whole_len >= 20 * 8);
	CHECK(!closing);

	for (size_t k = 1; k < stream_len; k++) {
		len = feed(stream, stream_len, &k, 1, split, sizeof(split),
			   &closing);
		if (len != whole_len || memcmp(split, whole, len)) {
			fprintf(stderr, "split at %zu differs\n", k);
			failures++;
		}
	}
	for (size_t k = 0; k + 1 < stream_len; k++)
		cuts[k] = k + 1;
	len = feed(stream, stream_len, cuts, stream_len - 1, split,
		   sizeof(split), &closing);
	CHECK(len == whole_len && !memcmp(split, whole, len));

	for (int round = 0; round < 200; round++) {
		int nr = 0;

		for (size_t k = 1; k < stream_len && nr < 40; k++)
			if (random() % 17 == 0)
				cuts[nr++] = k;
		len = feed(stream, stream_len, cuts, nr, split, sizeof(split),
			   &closing);
		CHECK(len == whole_len && !memcmp(split, whole, len));
	}
}

/* hello, then bad (a 4-byte header), then a valid order after it. */
static void test_malformed(const unsigned char bad_hdr[4], uint8_t ref)
{
	struct msg_new_order o = {
		.symbol = 1, .cl_ord_id = 1, .price = 5, .qty = 1,
		.side = SIDE_BUY, .ord_type = ORD_LIMIT, .tif = TIF_GTC,
	};
	struct msg_hello hello = { .version = PROTO_VERSION };
	unsigned char out[4096];
	struct capture c = { .buf = out };
	size_t hello_end, cut;
	bool closing;

	stream_len = 0;
	add(&hello, MSG_HELLO);
	hello_end = stream_len;
	memcpy(stream + stream_len, bad_hdr, 4);
	memset(stream + stream_len + 4, 0, 44);
	stream_len += 48;
	add(&o, MSG_NEW_ORDER);

	/* Whole, and cut inside the bad header at each of its bytes. */
	for (cut = hello_end; cut <= hello_end + 4; cut++) {
		const struct msg_rejected *rej;

		c.len = feed(stream, stream_len, &cut, 1, out, sizeof(out),
			     &closing);
		c.rd = 0;
		CHECK(closing);
		next_msg(&c, MSG_HELLO_ACK);
		rej = next_msg(&c, MSG_REJECTED);
		if (rej) {
			CHECK_EQ(rej->reason, REJ_MALFORMED);
			CHECK_EQ(rej->ref_type, ref);
			CHECK_EQ(rej->cl_ord_id, 0);
		}
		CHECK_DRAINED(&c);	/* the order after it: ignored */
	}
}

/*
 * A subscriber's backlog of ~2.9 MB grows its buffer; once drained the
 * buffer is given back, and the next message is queued as usual.
 */
static void test_outbuf_given_back(void)
{
	struct server *srv = test_server(64 << 20);
	struct conn *sub = server_conn_open(srv, -1);
	struct conn *trader = server_conn_open(srv, -1);
	struct msg_hello hello = { .version = PROTO_VERSION };
	struct msg_subscribe m = { .symbol = 2 };
	const void *data;
	size_t n;

	stream_len = 0;
	add(&hello, MSG_HELLO);
	add(&m, MSG_SUBSCRIBE);
	conn_input(sub, stream, stream_len);
	stream_len = 0;
	add(&hello, MSG_HELLO);
	conn_input(trader, stream, stream_len);
	for (uint64_t i = 1; i <= 60000; i++) {
		struct msg_new_order o = {
			.symbol = 2, .cl_ord_id = i, .price = 10, .qty = 1,
			.side = i % 2 ? SIDE_BUY : SIDE_SELL,
			.ord_type = ORD_LIMIT, .tif = TIF_GTC,
		};

		stream_len = 0;
		add(&o, MSG_NEW_ORDER);
		conn_input(trader, stream, stream_len);
	}
	/* HelloAck, snapshot, then 3 messages of 32 bytes per pair. */
	n = conn_out_peek(sub, &data);
	CHECK_EQ(n, 8 + 32 + 30000 * 96);
	CHECK(sub->out_cap > (1u << 20));
	conn_out_consume(sub, n - 100);
	CHECK_EQ(conn_out_peek(sub, &data), 100);
	conn_out_consume(sub, 100);
	CHECK_EQ(sub->out_cap, 0);
	CHECK_EQ(conn_out_peek(sub, &data), 0);
	CHECK(data == NULL);

	stream_len = 0;
	{
		struct msg_new_order o = {
			.symbol = 2, .cl_ord_id = 60001, .price = 10, .qty = 1,
			.side = SIDE_BUY, .ord_type = ORD_LIMIT, .tif = TIF_GTC,
		};

		add(&o, MSG_NEW_ORDER);
	}
	conn_input(trader, stream, stream_len);
	n = conn_out_peek(sub, &data);
	CHECK_EQ(n, sizeof(struct msg_top_of_book));
	if (n == sizeof(struct msg_top_of_book))
		CHECK_EQ(((const struct msg_hdr *)data)->type,
			 MSG_TOP_OF_BOOK);
	server_conn_close(srv, sub);
	server_conn_close(srv, trader);
	server_destroy(srv);
}

int main(void)
{
	static const unsigned char unknown_type[4] = { 16, 0, 'Z', 0 };
	static const unsigned char wrong_len[4] = { 16, 0, MSG_NEW_ORDER, 0 };
	static const unsigned char too_long[4] = { 0xff, 0xff, MSG_CANCEL, 0 };
	static const unsigned char zero_len[4] = { 0, 0, MSG_HELLO, 0 };
	static const unsigned char outbound[4] = { 8, 0, MSG_HELLO_ACK, 0 };
	long page = sysconf(_SC_PAGESIZE);
	unsigned char *pages;

	pages = mmap(NULL, 3 * page, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (pages == MAP_FAILED || mprotect(pages + 2 * page, page, PROT_NONE))
		return 1;
	guard_page_end = pages + 2 * page;
	srandom(1);

	build_stream();
	test_splits();
	test_malformed(unknown_type, 'Z');
	test_malformed(wrong_len, MSG_NEW_ORDER);
	test_malformed(too_long, MSG_CANCEL);
	test_malformed(zero_len, MSG_HELLO);
	test_malformed(outbound, MSG_HELLO_ACK);
	test_outbuf_given_back();

	munmap(pages, 3 * page);
	return finish("frame_parser");
}
