/*
 * protocol.h - the order-entry wire format of the demo matching server.
 *
 * Shared by the server, its native io_uring backend, the load generator and
 * the tests. Every field is little-endian; every message starts with the same
 * 4-byte header and has a fixed size per type, so a frame is valid only when
 * its length equals the size of its type. See PROTOCOL.md for the semantics.
 */
#ifndef DEMO_PROTOCOL_H
#define DEMO_PROTOCOL_H

#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define PROTO_VERSION 1

/* Inbound (client -> server) message types. */
enum {
	MSG_HELLO	= 'L',
	MSG_NEW_ORDER	= 'O',
	MSG_CANCEL	= 'X',
	MSG_REPLACE	= 'U',
	MSG_SUBSCRIBE	= 'M',
};

/* Outbound (server -> client) message types. */
enum {
	MSG_HELLO_ACK	= 'l',
	MSG_ACCEPTED	= 'A',
	MSG_REJECTED	= 'J',
	MSG_EXECUTED	= 'E',
	MSG_CANCELED	= 'C',
	MSG_REPLACED	= 'R',
	MSG_TRADE	= 'T',
	MSG_TOP_OF_BOOK	= 'Q',
};

enum { SIDE_BUY = 'B', SIDE_SELL = 'S' };
enum { ORD_LIMIT = 'L', ORD_MARKET = 'M' };
enum { TIF_GTC = 'G', TIF_IOC = 'I' };
enum { LIQ_ADDED = 'A', LIQ_REMOVED = 'R' };

/* Reject reason codes carried by MSG_REJECTED. */
enum {
	REJ_UNKNOWN_SYMBOL	= 1,
	REJ_BAD_PRICE		= 2,
	REJ_BAD_QTY		= 3,
	REJ_DUPLICATE_ID	= 4,
	REJ_UNKNOWN_ORDER	= 5,
	REJ_MALFORMED		= 6,	/* the connection is closed after it */
	REJ_NOT_LOGGED_IN	= 7,
	REJ_BAD_SIDE		= 8,
	REJ_BAD_TYPE		= 9,
	REJ_CAPACITY		= 10,	/* order pool exhausted */
};

/* Reason codes carried by MSG_CANCELED. */
enum {
	CXL_USER		= 1,	/* a Cancel message */
	CXL_IOC_REMAINDER	= 2,	/* IOC / market remainder not filled */
};

/* Price bounds in ticks (inclusive); a limit price outside is REJ_BAD_PRICE. */
#define PRICE_MIN	1
#define PRICE_MAX	1000000000LL
/* Quantity bounds (inclusive); outside is REJ_BAD_QTY. */
#define QTY_MIN		1
#define QTY_MAX		1000000000U

struct msg_hdr {
	uint16_t len;		/* whole frame, header included */
	uint8_t type;
	uint8_t flags;		/* 0; reserved */
};

/* ---- inbound ---- */

struct msg_hello {		/* must be the first message of a session */
	struct msg_hdr h;
	uint32_t version;	/* PROTO_VERSION */
	char user[8];		/* free text, not interpreted */
};

struct msg_new_order {
	struct msg_hdr h;
	uint32_t symbol;
	uint64_t cl_ord_id;	/* unique within the session, nonzero */
	int64_t price;		/* ticks; ignored (must be 0) for ORD_MARKET */
	uint32_t qty;
	uint8_t side;		/* SIDE_* */
	uint8_t ord_type;	/* ORD_* */
	uint8_t tif;		/* TIF_*; market orders behave as IOC */
	uint8_t pad;
};

struct msg_cancel {
	struct msg_hdr h;
	uint32_t pad;
	uint64_t cl_ord_id;	/* of a live order of this session */
};

struct msg_replace {
	struct msg_hdr h;
	uint32_t new_qty;
	uint64_t orig_cl_ord_id;
	uint64_t new_cl_ord_id;	/* unique within the session */
	int64_t new_price;
};

struct msg_subscribe {		/* market data (Trade, TopOfBook) for a symbol */
	struct msg_hdr h;
	uint32_t symbol;
};

/* ---- outbound ---- */

struct msg_hello_ack {
	struct msg_hdr h;
	uint32_t version;
};

struct msg_accepted {
	struct msg_hdr h;
	uint32_t symbol;
	uint64_t cl_ord_id;
	uint64_t order_id;	/* ((uint64_t)symbol << 32) | per-symbol sequence */
	int64_t price;
	uint32_t qty;
	uint8_t side;
	uint8_t ord_type;
	uint8_t tif;
	uint8_t pad;
};

struct msg_rejected {
	struct msg_hdr h;
	uint16_t reason;	/* REJ_* */
	uint8_t ref_type;	/* type of the rejected inbound message */
	uint8_t pad;
	uint64_t cl_ord_id;	/* of the rejected message, 0 when none */
};

struct msg_executed {		/* sent to both sides of every trade */
	struct msg_hdr h;
	uint32_t symbol;
	uint64_t cl_ord_id;
	uint64_t match_id;	/* ((uint64_t)symbol << 32) | per-symbol sequence */
	int64_t price;
	uint32_t qty;		/* executed now */
	uint32_t leaves_qty;	/* still open after this fill */
	uint8_t side;
	uint8_t liquidity;	/* LIQ_ADDED (resting) or LIQ_REMOVED (aggressor) */
	uint8_t pad[6];
};

struct msg_canceled {
	struct msg_hdr h;
	uint32_t canceled_qty;
	uint64_t cl_ord_id;
	uint8_t reason;		/* CXL_* */
	uint8_t pad[7];
};

struct msg_replaced {
	struct msg_hdr h;
	uint32_t qty;		/* new open quantity */
	uint64_t orig_cl_ord_id;
	uint64_t new_cl_ord_id;
	uint64_t order_id;	/* unchanged when priority kept, new otherwise */
	int64_t price;
};

struct msg_trade {		/* market data: one per match */
	struct msg_hdr h;
	uint32_t symbol;
	uint64_t match_id;
	int64_t price;
	uint32_t qty;
	uint8_t aggressor_side;
	uint8_t pad[3];
};

struct msg_top_of_book {	/* market data: after each change of the top */
	struct msg_hdr h;
	uint32_t symbol;
	int64_t bid_price;	/* 0 when no bid */
	uint32_t bid_qty;	/* aggregate at the best bid */
	uint32_t ask_qty;
	int64_t ask_price;	/* 0 when no ask */
};

static_assert(sizeof(struct msg_hdr) == 4, "msg_hdr");
static_assert(sizeof(struct msg_hello) == 16, "hello");
static_assert(sizeof(struct msg_new_order) == 32, "new_order");
static_assert(sizeof(struct msg_cancel) == 16, "cancel");
static_assert(sizeof(struct msg_replace) == 32, "replace");
static_assert(sizeof(struct msg_subscribe) == 8, "subscribe");
static_assert(sizeof(struct msg_hello_ack) == 8, "hello_ack");
static_assert(sizeof(struct msg_accepted) == 40, "accepted");
static_assert(sizeof(struct msg_rejected) == 16, "rejected");
static_assert(sizeof(struct msg_executed) == 48, "executed");
static_assert(sizeof(struct msg_canceled) == 24, "canceled");
static_assert(sizeof(struct msg_replaced) == 40, "replaced");
static_assert(sizeof(struct msg_trade) == 32, "trade");
static_assert(sizeof(struct msg_top_of_book) == 32, "top_of_book");

/* The largest message of either direction; frames never exceed it. */
#define MSG_MAX_SIZE 48

/*
 * proto_msg_size - the fixed size of a message type, or 0 for an unknown
 * type. Used by both sides to validate msg_hdr.len.
 */
static inline unsigned proto_msg_size(uint8_t type)
{
	switch (type) {
	case MSG_HELLO:		return sizeof(struct msg_hello);
	case MSG_NEW_ORDER:	return sizeof(struct msg_new_order);
	case MSG_CANCEL:	return sizeof(struct msg_cancel);
	case MSG_REPLACE:	return sizeof(struct msg_replace);
	case MSG_SUBSCRIBE:	return sizeof(struct msg_subscribe);
	case MSG_HELLO_ACK:	return sizeof(struct msg_hello_ack);
	case MSG_ACCEPTED:	return sizeof(struct msg_accepted);
	case MSG_REJECTED:	return sizeof(struct msg_rejected);
	case MSG_EXECUTED:	return sizeof(struct msg_executed);
	case MSG_CANCELED:	return sizeof(struct msg_canceled);
	case MSG_REPLACED:	return sizeof(struct msg_replaced);
	case MSG_TRADE:		return sizeof(struct msg_trade);
	case MSG_TOP_OF_BOOK:	return sizeof(struct msg_top_of_book);
	}
	return 0;
}

/* proto_inbound_type - whether a client may send this message type. */
static inline int proto_inbound_type(uint8_t type)
{
	return type == MSG_HELLO || type == MSG_NEW_ORDER ||
	       type == MSG_CANCEL || type == MSG_REPLACE ||
	       type == MSG_SUBSCRIBE;
}

/* proto_reject_name - the REJ_* name without its prefix, or "?". */
static inline const char *proto_reject_name(unsigned reason)
{
	static const char *const names[] = {
		[REJ_UNKNOWN_SYMBOL]	= "UNKNOWN_SYMBOL",
		[REJ_BAD_PRICE]		= "BAD_PRICE",
		[REJ_BAD_QTY]		= "BAD_QTY",
		[REJ_DUPLICATE_ID]	= "DUPLICATE_ID",
		[REJ_UNKNOWN_ORDER]	= "UNKNOWN_ORDER",
		[REJ_MALFORMED]		= "MALFORMED",
		[REJ_NOT_LOGGED_IN]	= "NOT_LOGGED_IN",
		[REJ_BAD_SIDE]		= "BAD_SIDE",
		[REJ_BAD_TYPE]		= "BAD_TYPE",
		[REJ_CAPACITY]		= "CAPACITY",
	};

	if (reason < sizeof(names) / sizeof(names[0]) && names[reason])
		return names[reason];
	return "?";
}

/* ===== framing ===== */

/* Which way a stream flows: it decides which types are valid in it. */
enum proto_dir { PROTO_TO_SERVER, PROTO_TO_CLIENT };

/*
 * proto_frame_len - judge the 4-byte header at @hdr (any alignment) of a
 * stream flowing @dir. Returns the length of its frame, or 0 when the
 * frame is malformed: a type that does not flow that way, or a length
 * other than its type's size. The flags byte is not judged here.
 */
static inline unsigned proto_frame_len(const void *hdr, enum proto_dir dir)
{
	struct msg_hdr h;

	memcpy(&h, hdr, sizeof(h));
	if (proto_inbound_type(h.type) != (dir == PROTO_TO_SERVER))
		return 0;
	return h.len == proto_msg_size(h.type) ? h.len : 0;
}

/*
 * proto_next_frame - the frame at the start of the contiguous bytes
 * [@buf, @buf + @len). Returns its length when it is all there, 0 when
 * more bytes are needed (not even a header, or only part of the frame),
 * -1 when its header is malformed. A bad header is reported as soon as
 * its 4 bytes are in, without waiting for the rest of the frame.
 */
static inline int proto_next_frame(const void *buf, size_t len,
				   enum proto_dir dir)
{
	unsigned need;

	if (len < sizeof(struct msg_hdr))
		return 0;
	need = proto_frame_len(buf, dir);
	if (!need)
		return -1;
	return len >= need ? (int)need : 0;
}

/* A frame cut by a read boundary, kept until the next read completes it. */
struct proto_reader {
	unsigned char partial[MSG_MAX_SIZE];
	unsigned partial_len;
};

/*
 * proto_read_frame - cut a stream that arrives in reads of any size into
 * whole frames, without copying those that lie inside one read.
 *
 * *@data and *@len are the unread rest of the current read; each call
 * advances them past what it consumes. Returns the length of the next
 * whole frame, with *@frame pointing at it: into the read, or into @r
 * for a frame that straddled two reads (valid until the next call).
 * Returns 0 when the read is used up, with any incomplete frame kept in
 * @r, and -1 for a malformed header, with *@frame at that header (its
 * type byte is (*@frame)[2]); after -1 the stream cannot be resumed.
 */
static inline int proto_read_frame(struct proto_reader *r,
				   const unsigned char **data, size_t *len,
				   enum proto_dir dir,
				   const unsigned char **frame)
{
	const unsigned char *p = *data;
	size_t n = *len, take;
	unsigned need;
	int res;

	if (r->partial_len) {
		/* The header first, to judge it before the body comes. */
		if (r->partial_len < sizeof(struct msg_hdr)) {
			take = sizeof(struct msg_hdr) - r->partial_len;
			take = take < n ? take : n;
			memcpy(r->partial + r->partial_len, p, take);
			r->partial_len += take;
			p += take;
			n -= take;
		}
		need = r->partial_len < sizeof(struct msg_hdr) ? 0 :
		       proto_frame_len(r->partial, dir);
		if (r->partial_len >= sizeof(struct msg_hdr) && !need) {
			*data = p;
			*len = n;
			*frame = r->partial;
			return -1;
		}
		if (need) {
			take = need - r->partial_len;
			take = take < n ? take : n;
			memcpy(r->partial + r->partial_len, p, take);
			r->partial_len += take;
			p += take;
			n -= take;
		}
		*data = p;
		*len = n;
		if (!need || r->partial_len < need)
			return 0;
		r->partial_len = 0;
		*frame = r->partial;
		return (int)need;
	}
	res = proto_next_frame(p, n, dir);
	if (res) {
		*frame = p;
		if (res > 0) {
			*data = p + res;
			*len = n - (size_t)res;
		}
		return res;
	}
	/* Less than a frame left: keep it for the next read. */
	memcpy(r->partial, p, n);
	r->partial_len = (unsigned)n;
	*data = p + n;
	*len = 0;
	return 0;
}

#endif
