/*
 * engine_util.h - helpers shared by the engine unit tests: check macros, a
 * capturing send callback, and builders for inbound messages.
 */
#ifndef TESTS_ENGINE_UTIL_H
#define TESTS_ENGINE_UTIL_H

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../demo_server/engine.h"
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

#define CHECK_EQ(a, b)							\
	do {								\
		long long a_ = (long long)(a), b_ = (long long)(b);	\
		if (a_ != b_) {						\
			fprintf(stderr, "%s:%d: %s == %lld, want %s == "\
				"%lld\n", __FILE__, __LINE__, #a, a_,	\
				#b, b_);				\
			failures++;					\
		}							\
	} while (0)

/* Output captured for one session; messages stay 8-byte aligned. */
struct capture {
	unsigned char *buf;
	size_t len;
	size_t cap;
	size_t rd;
};

static inline void capture_send(void *owner, const void *msg,
				unsigned len)
{
	struct capture *c = owner;

	if (c->len + len > c->cap) {
		c->cap = c->cap ? c->cap * 2 : 4096;
		while (c->cap < c->len + len)
			c->cap *= 2;
		c->buf = realloc(c->buf, c->cap);
		if (!c->buf)
			abort();
	}
	memcpy(c->buf + c->len, msg, len);
	c->len += len;
}

static inline void capture_reset(struct capture *c)
{
	c->len = c->rd = 0;
}

static inline void capture_free(struct capture *c)
{
	free(c->buf);
	memset(c, 0, sizeof(*c));
}

/* next_msg - the next captured message of the given type, or NULL. */
static inline const void *next_msg_at(struct capture *c, uint8_t type,
				      const char *file, int line)
{
	const struct msg_hdr *h;

	if (c->rd >= c->len) {
		fprintf(stderr, "%s:%d: no message, want '%c'\n", file, line,
			type);
		failures++;
		return NULL;
	}
	h = (const void *)(c->buf + c->rd);
	c->rd += h->len;
	if (h->type != type || h->len != proto_msg_size(type)) {
		fprintf(stderr, "%s:%d: got message '%c', want '%c'\n", file,
			line, h->type, type);
		failures++;
		return NULL;
	}
	return h;
}

#define next_msg(c, type) next_msg_at((c), (type), __FILE__, __LINE__)
#define CHECK_DRAINED(c) CHECK((c)->rd == (c)->len)

static inline int send_frame(struct engine *eng, struct session *sess,
			     void *msg, uint8_t type)
{
	struct msg_hdr *h = msg;

	h->len = proto_msg_size(type);
	h->type = type;
	h->flags = 0;
	return engine_handle(eng, sess, msg, h->len);
}

static inline int hello(struct engine *eng, struct session *sess)
{
	struct msg_hello m = { .version = PROTO_VERSION };

	return send_frame(eng, sess, &m, MSG_HELLO);
}

static inline int new_order(struct engine *eng, struct session *sess,
			    uint32_t symbol, uint8_t side, uint8_t type,
			    uint8_t tif, int64_t price, uint32_t qty,
			    uint64_t cl)
{
	struct msg_new_order m = {
		.symbol = symbol, .cl_ord_id = cl, .price = price, .qty = qty,
		.side = side, .ord_type = type, .tif = tif,
	};

	return send_frame(eng, sess, &m, MSG_NEW_ORDER);
}

static inline int limit(struct engine *eng, struct session *sess,
			uint32_t symbol, uint8_t side, int64_t price,
			uint32_t qty, uint64_t cl)
{
	return new_order(eng, sess, symbol, side, ORD_LIMIT, TIF_GTC, price,
			 qty, cl);
}

static inline int cancel(struct engine *eng, struct session *sess,
			 uint64_t cl)
{
	struct msg_cancel m = { .cl_ord_id = cl };

	return send_frame(eng, sess, &m, MSG_CANCEL);
}

static inline int replace(struct engine *eng, struct session *sess,
			  uint64_t orig, uint64_t new_cl, uint32_t qty,
			  int64_t price)
{
	struct msg_replace m = {
		.new_qty = qty, .orig_cl_ord_id = orig,
		.new_cl_ord_id = new_cl, .new_price = price,
	};

	return send_frame(eng, sess, &m, MSG_REPLACE);
}

static inline int subscribe(struct engine *eng, struct session *sess,
			    uint32_t symbol)
{
	struct msg_subscribe m = { .symbol = symbol };

	return send_frame(eng, sess, &m, MSG_SUBSCRIBE);
}

static inline uint64_t oid(uint32_t symbol, uint32_t seq)
{
	return (uint64_t)symbol << 32 | seq;
}

static inline int finish(const char *name)
{
	if (failures) {
		fprintf(stderr, "%s: %d check(s) failed\n", name, failures);
		return 1;
	}
	printf("%s: all checks passed\n", name);
	return 0;
}

#endif
