/*
 * proto_frames - the framing helpers of demo_server/protocol.h.
 *
 * proto_read_frame, which the server and the load generator use, must cut
 * a stream into the same frames however it is split into reads: whole,
 * at every single boundary, a byte at a time, and at random points, in
 * both directions. Each read ends right before a PROT_NONE page, so a
 * read past its end faults. A malformed header (a type of the other
 * direction, an unknown type, a wrong or zero length) is reported as soon
 * as its 4 bytes are in, with the offending type byte, even when they
 * come one at a time. proto_next_frame (proto_client) and the reject
 * names are checked on their own.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../../demo_server/protocol.h"

static int failures;

#define CHECK(cond)							\
	do {								\
		if (!(cond)) {						\
			fprintf(stderr, "%s:%d: CHECK failed: %s\n",	\
				__FILE__, __LINE__, #cond);		\
			failures++;					\
		}							\
	} while (0)

static unsigned char *guard;	/* first byte of a PROT_NONE page */

#define STREAM_MAX	2048

struct stream {
	unsigned char bytes[STREAM_MAX];
	size_t len;
	unsigned frames;
};

static void add(struct stream *s, uint8_t type, unsigned char fill)
{
	unsigned size = proto_msg_size(type);
	struct msg_hdr h = { .len = (uint16_t)size, .type = type };

	memset(s->bytes + s->len, fill, size);
	memcpy(s->bytes + s->len, &h, sizeof(h));
	s->len += size;
	s->frames++;
}

/* Copy @len bytes so that they end where the guard page begins. */
static const unsigned char *at_guard(const unsigned char *data, size_t len)
{
	return memmove(guard - len, data, len);
}

/*
 * Feed @s to a fresh reader cut at @cuts; the frames it returns, laid end
 * to end, must be the stream itself, and as many as were added.
 */
static bool split_ok(const struct stream *s, enum proto_dir dir,
		     const size_t *cuts, unsigned nr_cuts)
{
	static unsigned char out[STREAM_MAX];
	struct proto_reader r = { .partial_len = 0 };
	size_t out_len = 0, from = 0;
	unsigned frames = 0;

	for (unsigned i = 0; i <= nr_cuts; i++) {
		size_t to = i < nr_cuts ? cuts[i] : s->len, len = to - from;
		const unsigned char *p = at_guard(s->bytes + from, len);
		const unsigned char *frame;
		int n;

		while ((n = proto_read_frame(&r, &p, &len, dir, &frame)) > 0) {
			memcpy(out + out_len, frame, (size_t)n);
			out_len += (size_t)n;
			frames++;
		}
		if (n < 0 || len)
			return false;
		from = to;
	}
	return !r.partial_len && frames == s->frames && out_len == s->len &&
	       !memcmp(out, s->bytes, s->len);
}

static void test_splits(const struct stream *s, enum proto_dir dir)
{
	size_t cuts[STREAM_MAX];
	unsigned nr;

	CHECK(split_ok(s, dir, NULL, 0));
	for (size_t k = 0; k <= s->len; k++)
		CHECK(split_ok(s, dir, &k, 1));
	for (nr = 0; nr + 1 < s->len; nr++)
		cuts[nr] = nr + 1;
	CHECK(split_ok(s, dir, cuts, nr));
	for (int round = 0; round < 500; round++) {
		size_t at = 0;

		nr = 0;
		while ((at += 1 + (size_t)random() % 60) < s->len)
			cuts[nr++] = at;
		CHECK(split_ok(s, dir, cuts, nr));
	}
}

/*
 * One good frame, then the header @bad: fed a byte at a time, the bad
 * header is reported exactly when its fourth byte comes in.
 */
static void test_malformed(enum proto_dir dir, uint8_t good_type,
			   const unsigned char bad[4])
{
	struct stream s = { .len = 0 };
	struct proto_reader r = { .partial_len = 0 };
	const unsigned char *frame = NULL;
	size_t at, len;
	int n = 0;

	add(&s, good_type, 0);
	memcpy(s.bytes + s.len, bad, 4);
	memset(s.bytes + s.len + 4, 0, MSG_MAX_SIZE);
	for (at = 0; at < s.len + 4; at++) {
		const unsigned char *p = at_guard(s.bytes + at, 1);

		len = 1;
		n = proto_read_frame(&r, &p, &len, dir, &frame);
		if (at + 1 == s.len)
			CHECK(n == (int)proto_msg_size(good_type));
		else if (at + 1 < s.len + 4)
			CHECK(n == 0);
	}
	CHECK(n == -1 && frame && frame[2] == bad[2]);

	/* Whole, in one read: the good frame, then -1 at the bad header. */
	{
		const unsigned char *p = s.bytes;
		struct proto_reader whole = { .partial_len = 0 };

		len = s.len + 4;
		n = proto_read_frame(&whole, &p, &len, dir, &frame);
		CHECK(n == (int)proto_msg_size(good_type));
		n = proto_read_frame(&whole, &p, &len, dir, &frame);
		CHECK(n == -1 && frame == s.bytes + s.len);
		CHECK(proto_next_frame(s.bytes + s.len, 4, dir) == -1);
	}
}

static void test_next_frame(void)
{
	struct stream s = { .len = 0 };

	add(&s, MSG_EXECUTED, 7);
	for (size_t len = 0; len < 48; len++)
		CHECK(proto_next_frame(at_guard(s.bytes, len), len,
				       PROTO_TO_CLIENT) == 0);
	CHECK(proto_next_frame(at_guard(s.bytes, 48), 48,
			       PROTO_TO_CLIENT) == 48);
	/* The same bytes are not a frame a client may send. */
	CHECK(proto_next_frame(s.bytes, 48, PROTO_TO_SERVER) == -1);
}

/* Every type byte is valid in exactly one direction, or in none. */
static void test_directions(void)
{
	for (unsigned t = 0; t < 256; t++) {
		unsigned size = proto_msg_size((uint8_t)t);
		unsigned char hdr[4] = { (unsigned char)size, 0, (uint8_t)t, 0 };
		unsigned in = proto_frame_len(hdr, PROTO_TO_SERVER);
		unsigned out = proto_frame_len(hdr, PROTO_TO_CLIENT);

		if (!size) {
			CHECK(!in && !out);
			continue;
		}
		CHECK((in == size) != (out == size));
		CHECK(!in || proto_inbound_type((uint8_t)t));
		hdr[0]++;
		CHECK(!proto_frame_len(hdr, PROTO_TO_SERVER) &&
		      !proto_frame_len(hdr, PROTO_TO_CLIENT));
	}
}

static void test_reject_names(void)
{
	for (unsigned reason = REJ_UNKNOWN_SYMBOL; reason <= REJ_CAPACITY;
	     reason++)
		CHECK(strcmp(proto_reject_name(reason), "?") != 0);
	CHECK(!strcmp(proto_reject_name(REJ_DUPLICATE_ID), "DUPLICATE_ID"));
	CHECK(!strcmp(proto_reject_name(0), "?"));
	CHECK(!strcmp(proto_reject_name(REJ_CAPACITY + 1), "?"));
	CHECK(!strcmp(proto_reject_name(65535), "?"));
}

int main(void)
{
	static const uint8_t outbound[] = {
		MSG_HELLO_ACK, MSG_ACCEPTED, MSG_REJECTED, MSG_EXECUTED,
		MSG_CANCELED, MSG_REPLACED, MSG_TRADE, MSG_TOP_OF_BOOK,
	};
	static const uint8_t inbound[] = {
		MSG_HELLO, MSG_NEW_ORDER, MSG_CANCEL, MSG_REPLACE,
		MSG_SUBSCRIBE,
	};
	static const unsigned char other_way[4] = { 32, 0, MSG_NEW_ORDER, 0 };
	static const unsigned char unknown[4] = { 16, 0, 'Z', 0 };
	static const unsigned char wrong_len[4] = { 16, 0, MSG_EXECUTED, 0 };
	static const unsigned char zero_len[4] = { 0, 0, MSG_TRADE, 0 };
	static const unsigned char to_client[4] = { 8, 0, MSG_HELLO_ACK, 0 };
	static struct stream out, in;
	long page = sysconf(_SC_PAGESIZE);
	unsigned char *pages;

	pages = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (pages == MAP_FAILED || mprotect(pages + page, page, PROT_NONE)) {
		perror("proto_frames: mmap");
		return 1;
	}
	guard = pages + page;
	srandom(1);

	for (unsigned i = 0; i < 40; i++) {
		add(&out, outbound[i % sizeof(outbound)], (unsigned char)i);
		add(&in, inbound[i % sizeof(inbound)], (unsigned char)i);
	}
	test_splits(&out, PROTO_TO_CLIENT);
	test_splits(&in, PROTO_TO_SERVER);
	test_malformed(PROTO_TO_CLIENT, MSG_ACCEPTED, other_way);
	test_malformed(PROTO_TO_CLIENT, MSG_TRADE, unknown);
	test_malformed(PROTO_TO_CLIENT, MSG_TRADE, wrong_len);
	test_malformed(PROTO_TO_CLIENT, MSG_HELLO_ACK, zero_len);
	test_malformed(PROTO_TO_SERVER, MSG_CANCEL, to_client);
	test_malformed(PROTO_TO_SERVER, MSG_HELLO, unknown);
	test_next_frame();
	test_directions();
	test_reject_names();

	munmap(pages, 2 * page);
	printf("proto_frames: %s (%d failures)\n", failures ? "FAIL" : "PASS",
	       failures);
	return failures ? 1 : 0;
}
