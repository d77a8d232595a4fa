/*
 * Fuzz target: the GRT1 frame decoder and the handshake message parsers
 * (core/codec.c).
 *
 * Input: a split seed, a second seed (pauses, prefixes), then wire bytes.
 * The wire bytes are decoded as sent by the client and as sent by the
 * server, each time once whole and once in the pieces the seed gives, with
 * the callback pausing the decoder now and then. Both decodes must yield the
 * same frames, field for field and byte for byte, and end the same way (the
 * same error text, or the same partial frame left over). Every frame must
 * re-encode to exactly the bytes it came from, and every proper prefix of
 * it must parse as "need more" with a hint no larger than the frame.
 */
#include <string.h>

#include "codec.h"
#include "fuzz.h"

/* A decoded frame, its byte fields copied out of the decoder's buffers. */
struct rec {
	struct mgrok_frame f; /* byte fields' pointers cleared */
	uint8_t *bytes;       /* the byte fields' contents, one after another */
	size_t nbytes;
};

struct log {
	struct rec *v;
	size_t n, cap;
	struct fuzz_split pauses; /* split run: when the callback pauses */
};

/* The byte fields of f's type, in wire order. */
static size_t byte_fields(struct mgrok_frame *f, struct mgrok_bytes *v[2])
{
	switch (f->type) {
	case MGROK_FRAME_REGISTER:
		v[0] = &f->u.reg.name;
		v[1] = &f->u.reg.options;
		return 2;
	case MGROK_FRAME_NEW_STREAM: v[0] = &f->u.new_stream.name; return 1;
	case MGROK_FRAME_DATA: v[0] = &f->u.data; return 1;
	case MGROK_FRAME_REGISTER_ACK:
		v[0] = &f->u.ack.name;
		v[1] = &f->u.ack.message;
		return 2;
	case MGROK_FRAME_GO_AWAY: v[0] = &f->u.go_away.message; return 1;
	case MGROK_FRAME_UNREGISTER: v[0] = &f->u.unreg_name; return 1;
	case MGROK_FRAME_HELLO:
		v[0] = &f->u.hello.client_id;
		v[1] = &f->u.hello.info;
		return 2;
	default: return 0;
	}
}

static int record(void *arg, const struct mgrok_frame *f)
{
	struct log *l = arg;
	struct mgrok_bytes *v[2];
	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 16;
		l->v = realloc(l->v, l->cap * sizeof(*l->v));
		FUZZ_ASSERT(l->v != NULL, "out of memory");
	}
	struct rec *r = &l->v[l->n++];
	memcpy(&r->f, f, sizeof(*f)); /* padding too: parse zeroes the whole struct */
	size_t k = byte_fields(&r->f, v), total = 0;
	for (size_t i = 0; i < k; i++) {
		FUZZ_ASSERT(v[i]->p != NULL || v[i]->len == 0, "a %s field with no bytes",
		            mgrok_frame_type_name(f->type));
		total += v[i]->len;
	}
	r->bytes = malloc(total ? total : 1);
	r->nbytes = total;
	total = 0;
	for (size_t i = 0; i < k; i++) {
		if (v[i]->len)
			memcpy(r->bytes + total, v[i]->p, v[i]->len); /* ASan checks the span */
		total += v[i]->len;
		v[i]->p = NULL;
	}
#ifdef MGROK_DECODE_PAUSE
	if (l->pauses.max && fuzz_split_next(&l->pauses, 4) == 1)
		return MGROK_DECODE_PAUSE;
#endif
	return 0;
}

static void log_free(struct log *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i].bytes);
	free(l->v);
}

static bool rec_equal(const struct rec *a, const struct rec *b)
{
	return memcmp(&a->f, &b->f, sizeof(a->f)) == 0 && a->nbytes == b->nbytes &&
	       memcmp(a->bytes, b->bytes, a->nbytes) == 0;
}

struct outcome {
	int rc; /* 0, or -1 with err */
	char err[sizeof(((struct mgrok_decoder *)0)->err)];
	size_t partial; /* bytes left in the decoder after rc 0 */
};

static void finish(struct mgrok_decoder *d, int rc, struct outcome *o)
{
	FUZZ_ASSERT(rc == 0 || rc == -1, "feed returned %d", rc);
	FUZZ_ASSERT(memchr(d->err, '\0', sizeof(d->err)) != NULL, "unterminated error text");
	FUZZ_ASSERT((rc < 0) == (d->err[0] != '\0'), "rc %d with error text '%s'", rc, d->err);
	o->rc = rc;
	memcpy(o->err, d->err, sizeof(o->err));
	o->partial = d->partial.len;
	/* A failed decoder stays failed. */
	if (rc < 0)
		FUZZ_ASSERT(mgrok_decoder_feed(d, (const uint8_t *)"\x05", 1, record, NULL) == -1,
		            "a failed decoder read again");
	mgrok_decoder_free(d);
}

static void decode_whole(enum mgrok_role sender, const uint8_t *p, size_t len, struct log *l,
                         struct outcome *o)
{
	struct mgrok_decoder d;
	mgrok_decoder_init(&d, sender);
	finish(&d, mgrok_decoder_feed(&d, p, len, record, l), o);
}

/* Empty feeds deliver what a pause kept, pausing again maybe; each
 * delivers a frame, so there are no more feeds than frames. */
static int drain(struct mgrok_decoder *d, int rc, struct log *l)
{
#ifdef MGROK_DECODE_PAUSE
	for (size_t k = 0; rc == MGROK_DECODE_PAUSE; k++) {
		FUZZ_ASSERT(k <= l->n, "%zu empty feeds after a pause for %zu frames", k, l->n);
		rc = mgrok_decoder_feed(d, NULL, 0, record, l);
	}
#endif
	return rc;
}

/* Each piece in a buffer of its own size, freed after the feed: a frame
 * that points past its piece, or outlives it, is caught by ASan. After a
 * pause the next piece is fed at once or after empty feeds, as the split
 * PRNG says. */
static void decode_split(enum mgrok_role sender, const uint8_t *p, size_t len, uint8_t seed,
                         struct log *l, struct outcome *o)
{
	struct mgrok_decoder d;
	struct fuzz_split split;
	int rc = 0;
	mgrok_decoder_init(&d, sender);
	fuzz_split_init(&split, seed);
	while (len && rc != -1) {
		size_t n = fuzz_split_next(&split, len);
		uint8_t *piece = malloc(n);
		memcpy(piece, p, n);
		rc = mgrok_decoder_feed(&d, piece, n, record, l);
		free(piece);
		p += n;
		len -= n;
		if (!len || (split.state & 1))
			rc = drain(&d, rc, l);
	}
	finish(&d, drain(&d, rc, l), o);
}

/* Every frame of a whole decode, at its place in the input. */
static void check_frames(enum mgrok_role sender, const uint8_t *p, size_t len, const struct log *l,
                         uint8_t seed)
{
	struct mgrok_buf enc = {0};
	size_t off = 0;
	for (size_t i = 0; i < l->n; i++) {
		/* The record lost its pointers: decode the frame again in place. */
		struct mgrok_frame f;
		size_t used = 0, hint = 0;
		char err[160];
		int rc = mgrok_frame_parse(p + off, len - off, sender, &f, &used, err, sizeof(err));
		FUZZ_ASSERT(rc == 1, "frame %zu does not parse in place", i);
		FUZZ_ASSERT(used >= 1 && used <= len - off, "frame %zu: used %zu", i, used);
		enc.len = enc.off = 0;
		FUZZ_ASSERT(mgrok_frame_encode(&f, &enc) == 0,
		            "decoded %s frame %zu refused by the encoder",
		            mgrok_frame_type_name(f.type), i);
		FUZZ_ASSERT(enc.len == used && memcmp(mgrok_buf_head(&enc), p + off, used) == 0,
		            "%s frame %zu re-encodes to %zu bytes, not its %zu",
		            mgrok_frame_type_name(f.type), i, enc.len, used);
		/* The last byte missing: need more, exactly one more. Any shorter
		 * prefix: need more, never more than the whole frame. */
		rc = mgrok_frame_parse(p + off, used - 1, sender, &f, &hint, err, sizeof(err));
		FUZZ_ASSERT(rc == 0 && hint == used,
		            "frame %zu without its last byte: rc %d, hint %zu, frame %zu", i, rc,
		            hint, used);
		size_t k = (seed + i * 37) % used;
		rc = mgrok_frame_parse(p + off, k, sender, &f, &hint, err, sizeof(err));
		FUZZ_ASSERT(rc == 0 && hint > k && hint <= used,
		            "frame %zu, first %zu of %zu bytes: rc %d, hint %zu", i, k, used, rc,
		            hint);
		off += used;
	}
	mgrok_buf_free(&enc);
}

static void decode(enum mgrok_role sender, const uint8_t *p, size_t len, uint8_t split_seed,
                   uint8_t seed)
{
	struct log whole = {0}, split = {0};
	struct outcome ow, os;
	decode_whole(sender, p, len, &whole, &ow);
	fuzz_split_init(&split.pauses, seed);
	decode_split(sender, p, len, split_seed, &split, &os);

	FUZZ_ASSERT(whole.n == split.n, "%zu frames whole, %zu split", whole.n, split.n);
	for (size_t i = 0; i < whole.n; i++)
		FUZZ_ASSERT(rec_equal(&whole.v[i], &split.v[i]),
		            "frame %zu (%s) differs when split", i,
		            mgrok_frame_type_name(whole.v[i].f.type));
	FUZZ_ASSERT(ow.rc == os.rc, "whole %d ('%s'), split %d ('%s')", ow.rc, ow.err, os.rc,
	            os.err);
	FUZZ_ASSERT(strcmp(ow.err, os.err) == 0, "whole '%s', split '%s'", ow.err, os.err);
	FUZZ_ASSERT(ow.rc < 0 || ow.partial == os.partial, "%zu bytes left whole, %zu split",
	            ow.partial, os.partial);
	check_frames(sender, p, len, &whole, seed);
	log_free(&whole);
	log_free(&split);
}

/* ---- handshake messages ---------------------------------------------------- */

enum hs_kind { HS_FIRST, HS_ANSWER, HS_REPLY };

static int hs_parse(enum hs_kind kind, const uint8_t *p, size_t len, uint8_t *x,
                    struct mgrok_bytes *payload, size_t *used, char *err, size_t errlen)
{
	switch (kind) {
	case HS_FIRST: return mgrok_hs_parse_first(p, len, x, payload, used, err, errlen);
	case HS_ANSWER: *x = 0; return mgrok_hs_parse_answer(p, len, payload, used, err, errlen);
	default: return mgrok_hs_parse_reply(p, len, x, payload, used, err, errlen);
	}
}

static void hs_message(enum hs_kind kind, const uint8_t *p, size_t len)
{
	static const char *const names[] = {"first message", "answer", "reply"};
	struct mgrok_bytes payload;
	size_t used = 0, hint = 0;
	uint8_t x;
	char err[160] = "";

	int rc = hs_parse(kind, p, len, &x, &payload, &used, err, sizeof(err));
	FUZZ_ASSERT(rc >= -1 && rc <= 1, "%s: rc %d", names[kind], rc);
	if (rc < 0) {
		FUZZ_ASSERT(err[0] != '\0', "%s refused without a reason", names[kind]);
		return;
	}
	if (rc == 0) {
		FUZZ_ASSERT(used > len, "%s needs more, yet its hint %zu <= %zu", names[kind], used,
		            len);
		return;
	}
	FUZZ_ASSERT(used >= 1 && used <= len, "%s used %zu of %zu", names[kind], used, len);
	bool inside = payload.len == 0 || (payload.p >= p && payload.p + payload.len <= p + used);
	FUZZ_ASSERT(payload.len <= MGROK_HS_PAYLOAD_MAX && payload.len <= used && inside,
	            "%s payload outside the message", names[kind]);
	struct mgrok_buf enc = {0};
	rc = kind == HS_FIRST    ? mgrok_hs_encode_first(&enc, x, payload.p, payload.len)
	     : kind == HS_ANSWER ? mgrok_hs_encode_answer(&enc, payload.p, payload.len)
	                         : mgrok_hs_encode_reply(&enc, x, payload.p, payload.len);
	FUZZ_ASSERT(rc == 0 && enc.len == used && memcmp(mgrok_buf_head(&enc), p, used) == 0,
	            "%s does not re-encode to its %zu bytes", names[kind], used);
	mgrok_buf_free(&enc);
	FUZZ_ASSERT(hs_parse(kind, p, used - 1, &x, &payload, &hint, err, sizeof(err)) == 0 &&
	                    hint == used,
	            "%s without its last byte: hint %zu of %zu", names[kind], hint, used);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	uint8_t split_seed = data[0], seed = data[1];
	data += 2;
	size -= 2;
	decode(MGROK_ROLE_CLIENT, data, size, split_seed, seed);
	decode(MGROK_ROLE_SERVER, data, size, split_seed, seed);
	hs_message(HS_FIRST, data, size);
	hs_message(HS_ANSWER, data, size);
	hs_message(HS_REPLY, data, size);
	return 0;
}
