/*
 * Unit tests for core/codec.c: frames and handshake messages against the
 * byte layouts of doc/protocol.md 1-3, fed whole, byte by byte, in random
 * splits, truncated at every point, and malformed field by field.
 */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "codec.h"

/* The longest frame the wire allows: REGISTER with a 255-byte name and 65535 bytes of options. */
#define MAX_FRAME (1 + 1 + 2 + 2 + 1 + 255 + 2 + 65535)

/* ---- helpers -------------------------------------------------------------- */

static uint8_t pattern[70000];

static void fill_pattern(void)
{
	uint32_t x = 0x12345678;
	for (size_t i = 0; i < sizeof(pattern); i++) {
		x = x * 1103515245u + 12345u;
		pattern[i] = (uint8_t)(x >> 16);
	}
}

static struct mgrok_bytes bytes(const void *p, size_t len)
{
	struct mgrok_bytes b = {p, len};
	return b;
}

static struct mgrok_bytes str(const char *s) { return bytes(s, strlen(s)); }

/* n bytes of 'a', for strings of a chosen length. */
static struct mgrok_bytes as(size_t n)
{
	static char a[70000];
	if (!a[0])
		memset(a, 'a', sizeof(a));
	return bytes(a, n);
}

/* A deterministic generator, so that failures reproduce. */
static uint32_t rng_state;
static uint32_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 17;
	rng_state ^= rng_state << 5;
	return rng_state;
}

static bool bytes_eq(struct mgrok_bytes a, struct mgrok_bytes b)
{
	return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

static bool addr_eq(const struct mgrok_wire_addr *a, const struct mgrok_wire_addr *b)
{
	if (a->family != b->family)
		return false;
	if (a->family == 0)
		return true;
	return a->port == b->port && memcmp(a->ip, b->ip, a->family == 4 ? 4 : 16) == 0;
}

/* Field-by-field equality, per type, of what the wire carries. */
static bool frame_eq(const struct mgrok_frame *a, const struct mgrok_frame *b)
{
	if (a->type != b->type)
		return false;
	switch (a->type) {
	case MGROK_FRAME_REGISTER:
		return a->u.reg.proxy_type == b->u.reg.proxy_type &&
		       a->u.reg.remote_port == b->u.reg.remote_port &&
		       a->u.reg.local_port == b->u.reg.local_port &&
		       bytes_eq(a->u.reg.name, b->u.reg.name) &&
		       bytes_eq(a->u.reg.options, b->u.reg.options);
	case MGROK_FRAME_NEW_STREAM:
		return a->stream_id == b->stream_id &&
		       bytes_eq(a->u.new_stream.name, b->u.new_stream.name) &&
		       addr_eq(&a->u.new_stream.source, &b->u.new_stream.source);
	case MGROK_FRAME_DATA:
		return a->stream_id == b->stream_id && bytes_eq(a->u.data, b->u.data);
	case MGROK_FRAME_CLOSE: return a->stream_id == b->stream_id;
	case MGROK_FRAME_HEARTBEAT: return true;
	case MGROK_FRAME_REGISTER_ACK:
		return a->u.ack.status == b->u.ack.status &&
		       a->u.ack.proxy_type == b->u.ack.proxy_type &&
		       a->u.ack.remote_port == b->u.ack.remote_port &&
		       bytes_eq(a->u.ack.name, b->u.ack.name) &&
		       bytes_eq(a->u.ack.message, b->u.ack.message);
	case MGROK_FRAME_WINDOW_UPDATE:
		return a->stream_id == b->stream_id && a->u.increment == b->u.increment;
	case MGROK_FRAME_RESET:
		return a->stream_id == b->stream_id && a->u.reset_code == b->u.reset_code;
	case MGROK_FRAME_GO_AWAY:
		return a->u.go_away.code == b->u.go_away.code &&
		       bytes_eq(a->u.go_away.message, b->u.go_away.message);
	case MGROK_FRAME_UNREGISTER: return bytes_eq(a->u.unreg_name, b->u.unreg_name);
	case MGROK_FRAME_HELLO:
		return bytes_eq(a->u.hello.client_id, b->u.hello.client_id) &&
		       bytes_eq(a->u.hello.info, b->u.hello.info);
	}
	return false;
}

/* ---- sample frames -------------------------------------------------------- */

#define FROM_C (1u << MGROK_ROLE_CLIENT)
#define FROM_S (1u << MGROK_ROLE_SERVER)

struct sample {
	const char *what;
	unsigned from; /* roles allowed to send it */
	struct mgrok_frame f;
};

static struct sample samples[40];
static size_t nsamples;

static struct mgrok_frame *add(const char *what, unsigned from, uint8_t type)
{
	ck_assert_uint_lt(nsamples, sizeof(samples) / sizeof(samples[0]));
	struct sample *s = &samples[nsamples++];
	memset(s, 0, sizeof(*s));
	s->what = what;
	s->from = from;
	s->f.type = type;
	return &s->f;
}

/* Every frame type, with its edge values; "big" adds frames of maximum size. */
static void make_samples(bool big)
{
	struct mgrok_frame *f;
	nsamples = 0;

	f = add("REGISTER tcp", FROM_C, MGROK_FRAME_REGISTER);
	f->u.reg.proxy_type = 1;
	f->u.reg.remote_port = 8080;
	f->u.reg.local_port = 3000;
	f->u.reg.name = str("web");
	f->u.reg.options = str("{\"a\":1}");
	f = add("REGISTER empty name and options", FROM_C, MGROK_FRAME_REGISTER);
	f->u.reg.proxy_type = 0xFE;
	f->u.reg.remote_port = 0;
	f->u.reg.local_port = 65535;
	f = add("REGISTER long name and options", FROM_C, MGROK_FRAME_REGISTER);
	f->u.reg.proxy_type = 2;
	f->u.reg.name = as(255);
	f->u.reg.options = as(MGROK_OPTIONS_MAX + 10);

	f = add("NEW_STREAM v4", FROM_S, MGROK_FRAME_NEW_STREAM);
	f->stream_id = 2;
	f->u.new_stream.name = str("web");
	f->u.new_stream.source.family = 4;
	memcpy(f->u.new_stream.source.ip, "\xc0\x00\x02\x01", 4);
	f->u.new_stream.source.port = 54321;
	f = add("NEW_STREAM v6", FROM_S, MGROK_FRAME_NEW_STREAM);
	f->stream_id = 0xFFFFFFFE;
	f->u.new_stream.name = as(MGROK_NAME_MAX);
	f->u.new_stream.source.family = 6;
	memcpy(f->u.new_stream.source.ip, pattern, 16);
	f->u.new_stream.source.port = 1;
	f = add("NEW_STREAM no address", FROM_S, MGROK_FRAME_NEW_STREAM);
	f->stream_id = 4;
	f->u.new_stream.name = str("x");

	f = add("DATA", FROM_C | FROM_S, MGROK_FRAME_DATA);
	f->stream_id = 2;
	f->u.data = str("hello");
	f = add("DATA empty", FROM_C | FROM_S, MGROK_FRAME_DATA);
	f->stream_id = 0x01020304;
	f = add("DATA 1000", FROM_C | FROM_S, MGROK_FRAME_DATA);
	f->stream_id = 6;
	f->u.data = bytes(pattern, 1000);

	f = add("CLOSE", FROM_C | FROM_S, MGROK_FRAME_CLOSE);
	f->stream_id = 0x80000000;
	add("HEARTBEAT", FROM_C | FROM_S, MGROK_FRAME_HEARTBEAT);

	f = add("REGISTER_ACK OK", FROM_S, MGROK_FRAME_REGISTER_ACK);
	f->u.ack.status = MGROK_ACK_OK;
	f->u.ack.proxy_type = 1;
	f->u.ack.remote_port = 41234;
	f->u.ack.name = str("web");
	f->u.ack.message = str("tcp://host:41234");
	f = add("REGISTER_ACK unknown status", FROM_S, MGROK_FRAME_REGISTER_ACK);
	f->u.ack.status = 200;
	f->u.ack.proxy_type = 9;
	f->u.ack.name = as(255);
	f->u.ack.message = as(MGROK_MESSAGE_MAX);

	f = add("WINDOW_UPDATE", FROM_C | FROM_S, MGROK_FRAME_WINDOW_UPDATE);
	f->stream_id = 2;
	f->u.increment = 131072;
	f = add("WINDOW_UPDATE 0", FROM_C | FROM_S, MGROK_FRAME_WINDOW_UPDATE);
	f->stream_id = 3;
	f->u.increment = 0;
	f = add("WINDOW_UPDATE max", FROM_C | FROM_S, MGROK_FRAME_WINDOW_UPDATE);
	f->stream_id = 8;
	f->u.increment = 0xFFFFFFFF;

	f = add("RESET", FROM_C | FROM_S, MGROK_FRAME_RESET);
	f->stream_id = 10;
	f->u.reset_code = MGROK_RESET_CONNECT_FAILED;
	f = add("RESET unknown code", FROM_C | FROM_S, MGROK_FRAME_RESET);
	f->stream_id = 12;
	f->u.reset_code = 0xEE;

	f = add("GO_AWAY", FROM_C | FROM_S, MGROK_FRAME_GO_AWAY);
	f->u.go_away.code = MGROK_GOAWAY_REPLACED;
	f->u.go_away.message = str("replaced");
	f = add("GO_AWAY unknown code, empty", FROM_C | FROM_S, MGROK_FRAME_GO_AWAY);
	f->u.go_away.code = 0x77;
	f = add("GO_AWAY long", FROM_C | FROM_S, MGROK_FRAME_GO_AWAY);
	f->u.go_away.code = MGROK_GOAWAY_PROTOCOL_ERROR;
	f->u.go_away.message = as(MGROK_MESSAGE_MAX);

	f = add("UNREGISTER", FROM_C, MGROK_FRAME_UNREGISTER);
	f->u.unreg_name = str("web");
	f = add("UNREGISTER 64", FROM_C, MGROK_FRAME_UNREGISTER);
	f->u.unreg_name = as(MGROK_NAME_MAX);

	f = add("HELLO", FROM_C, MGROK_FRAME_HELLO);
	f->u.hello.client_id = str("0123456789abcdef0123456789abcdef");
	f->u.hello.info = str("{\"version\":\"1.0\",\"host\":\"h\"}");
	f = add("HELLO no info", FROM_C, MGROK_FRAME_HELLO);
	f->u.hello.client_id = as(1);
	f = add("HELLO max", FROM_C, MGROK_FRAME_HELLO);
	f->u.hello.client_id = as(MGROK_NAME_MAX);
	f->u.hello.info = as(MGROK_INFO_MAX);

	if (!big)
		return;
	f = add("DATA 65535", FROM_C | FROM_S, MGROK_FRAME_DATA);
	f->stream_id = 0x7FFFFFFF;
	f->u.data = bytes(pattern + 7, MGROK_DATA_MAX);
	f = add("REGISTER max", FROM_C, MGROK_FRAME_REGISTER);
	f->u.reg.name = as(255);
	f->u.reg.options = bytes(pattern, 65535);
}

static void encode_ok(const struct mgrok_frame *f, struct mgrok_buf *out)
{
	ck_assert_int_eq(mgrok_frame_encode(f, out), 0);
}

/* Any role that may send the sample. */
static enum mgrok_role sender_of(const struct sample *s)
{
	return (s->from & FROM_C) ? MGROK_ROLE_CLIENT : MGROK_ROLE_SERVER;
}

/* Decoder callback that checks each delivered frame against an expected list. */
struct expect {
	const struct mgrok_frame *const *want;
	size_t n;
	size_t got;
	int stop_at; /* 1-based frame count at which to return stop_rc, 0: never */
	int stop_rc;
	unsigned pause_every;             /* pause after every this many frames, 0: never */
	const uint8_t *feed_lo, *feed_hi; /* the bytes of the current feed */
	size_t in_place;                  /* frames whose bytes lay in the feed */
};

static int expect_cb(void *arg, const struct mgrok_frame *f)
{
	struct expect *e = arg;
	ck_assert_msg(e->got < e->n, "frame %zu delivered, only %zu expected", e->got + 1, e->n);
	ck_assert_msg(frame_eq(f, e->want[e->got]), "frame %zu (%s) differs", e->got,
	              mgrok_frame_type_name(e->want[e->got]->type));
	const uint8_t *q = NULL;
	if (f->type == MGROK_FRAME_DATA)
		q = f->u.data.p;
	else if (f->type == MGROK_FRAME_GO_AWAY)
		q = f->u.go_away.message.p;
	if (q && e->feed_lo && q >= e->feed_lo && q < e->feed_hi)
		e->in_place++;
	e->got++;
	if (e->stop_at && (int)e->got == e->stop_at)
		return e->stop_rc;
	if (e->pause_every && e->got % e->pause_every == 0)
		return MGROK_DECODE_PAUSE;
	return 0;
}

static int feed(struct mgrok_decoder *d, struct expect *e, const uint8_t *p, size_t len)
{
	e->feed_lo = p;
	e->feed_hi = p + len;
	return mgrok_decoder_feed(d, p, len, expect_cb, e);
}

/* Encodes every sample role may send, back to back. */
static size_t encode_stream(enum mgrok_role role, struct mgrok_buf *out,
                            const struct mgrok_frame **want)
{
	size_t n = 0;
	for (size_t i = 0; i < nsamples; i++) {
		if (!(samples[i].from & (1u << role)))
			continue;
		encode_ok(&samples[i].f, out);
		want[n++] = &samples[i].f;
	}
	return n;
}

/* ---- golden vectors ------------------------------------------------------- */

static void assert_bytes(const struct mgrok_buf *b, const char *want, size_t n)
{
	ck_assert_uint_eq(b->len, n);
	ck_assert_mem_eq(mgrok_buf_head(b), want, n);
}

START_TEST(test_golden_frames)
{
	struct mgrok_buf b = {0};
	make_samples(false);
	encode_ok(&samples[0].f, &b);
	assert_bytes(&b, "\x01\x01\x1f\x90\x0b\xb8\x03web\x00\x07{\"a\":1}", 19);
	b.len = 0;
	encode_ok(&samples[3].f, &b);
	assert_bytes(&b, "\x02\x00\x00\x00\x02\x03web\x04\xc0\x00\x02\x01\xd4\x31", 16);
	b.len = 0;
	encode_ok(&samples[5].f, &b);
	assert_bytes(&b, "\x02\x00\x00\x00\x04\x01x\x00", 8);
	b.len = 0;
	encode_ok(&samples[6].f, &b);
	assert_bytes(&b, "\x03\x00\x00\x00\x02\x00\x05hello", 12);
	b.len = 0;
	encode_ok(&samples[9].f, &b);
	assert_bytes(&b, "\x04\x80\x00\x00\x00", 5);
	b.len = 0;
	encode_ok(&samples[10].f, &b);
	assert_bytes(&b, "\x05", 1);
	b.len = 0;
	encode_ok(&samples[11].f, &b);
	assert_bytes(&b, "\x06\x00\x01\xa1\x12\x03web\x00\x10tcp://host:41234", 27);
	b.len = 0;
	encode_ok(&samples[13].f, &b);
	assert_bytes(&b, "\x07\x00\x00\x00\x02\x00\x02\x00\x00", 9);
	b.len = 0;
	encode_ok(&samples[16].f, &b);
	assert_bytes(&b, "\x08\x00\x00\x00\x0a\x01", 6);
	b.len = 0;
	encode_ok(&samples[18].f, &b);
	assert_bytes(&b, "\x09\x03\x00\x08replaced", 12);
	b.len = 0;
	encode_ok(&samples[21].f, &b);
	assert_bytes(&b, "\x0a\x03web", 5);
	b.len = 0;
	struct mgrok_frame h = {.type = MGROK_FRAME_HELLO};
	h.u.hello.client_id = str("id");
	h.u.hello.info = str("{}");
	encode_ok(&h, &b);
	assert_bytes(&b, "\x0b\x02id\x00\x02{}", 8);
	mgrok_buf_free(&b);
}
END_TEST

START_TEST(test_golden_ipv6)
{
	struct mgrok_buf b = {0};
	struct mgrok_frame f = {.type = MGROK_FRAME_NEW_STREAM, .stream_id = 258};
	f.u.new_stream.name = str("a");
	f.u.new_stream.source.family = 6;
	memcpy(f.u.new_stream.source.ip, "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x01", 16);
	f.u.new_stream.source.port = 443;
	encode_ok(&f, &b);
	assert_bytes(&b,
	             "\x02\x00\x00\x01\x02\x01"
	             "a\x06\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x01\x01\xbb",
	             26);
	mgrok_buf_free(&b);
}
END_TEST

START_TEST(test_data_header)
{
	uint8_t hdr[MGROK_DATA_HEADER];
	mgrok_frame_data_header(hdr, 0xA1B2C3D4, 0xBEEF);
	ck_assert_mem_eq(hdr, "\x03\xa1\xb2\xc3\xd4\xbe\xef", 7);

	/* A header written in place plus the payload behind it parses as DATA. */
	uint8_t frame[MGROK_DATA_HEADER + 3];
	mgrok_frame_data_header(frame, 9, 3);
	memcpy(frame + MGROK_DATA_HEADER, "abc", 3);
	struct mgrok_frame f;
	size_t used = 0;
	char err[128];
	ck_assert_int_eq(mgrok_frame_parse(frame, sizeof(frame), MGROK_ROLE_SERVER, &f, &used, err,
	                                   sizeof(err)),
	                 1);
	ck_assert_uint_eq(used, sizeof(frame));
	ck_assert_uint_eq(f.stream_id, 9);
	ck_assert_uint_eq(f.u.data.len, 3);
	ck_assert_ptr_eq(f.u.data.p, frame + MGROK_DATA_HEADER);
}
END_TEST

/* ---- round trips ---------------------------------------------------------- */

START_TEST(test_round_trip_whole)
{
	make_samples(true);
	for (size_t i = 0; i < nsamples; i++) {
		struct mgrok_buf b = {0};
		encode_ok(&samples[i].f, &b);
		/* Trailing bytes belong to the next frame and must not be taken. */
		mgrok_buf_append(&b, "\x05\x05", 2);
		for (int role = MGROK_ROLE_CLIENT; role <= MGROK_ROLE_SERVER; role++) {
			if (!(samples[i].from & (1u << role)))
				continue;
			struct mgrok_frame f;
			size_t used = 0;
			char err[160] = "";
			int rc = mgrok_frame_parse(mgrok_buf_head(&b), b.len, (enum mgrok_role)role,
			                           &f, &used, err, sizeof(err));
			ck_assert_msg(rc == 1, "%s: rc %d (%s)", samples[i].what, rc, err);
			ck_assert_msg(used == b.len - 2, "%s: used %zu of %zu", samples[i].what,
			              used, b.len - 2);
			ck_assert_msg(frame_eq(&f, &samples[i].f), "%s differs", samples[i].what);
		}
		mgrok_buf_free(&b);
	}
}
END_TEST

START_TEST(test_round_trip_byte_by_byte)
{
	make_samples(false);
	for (int role = MGROK_ROLE_CLIENT; role <= MGROK_ROLE_SERVER; role++) {
		struct mgrok_buf b = {0};
		const struct mgrok_frame *want[40];
		struct expect e = {.want = want};
		e.n = encode_stream((enum mgrok_role)role, &b, want);
		ck_assert_uint_gt(e.n, 10);
		struct mgrok_decoder d;
		mgrok_decoder_init(&d, (enum mgrok_role)role);
		for (size_t i = 0; i < b.len; i++)
			ck_assert_int_eq(feed(&d, &e, mgrok_buf_head(&b) + i, 1), 0);
		ck_assert_uint_eq(e.got, e.n);
		ck_assert_uint_eq(d.partial.len, 0);
		mgrok_decoder_free(&d);
		mgrok_buf_free(&b);
	}
}
END_TEST

START_TEST(test_round_trip_random_splits)
{
	make_samples(true);
	rng_state = 20240601;
	for (int role = MGROK_ROLE_CLIENT; role <= MGROK_ROLE_SERVER; role++) {
		struct mgrok_buf b = {0};
		const struct mgrok_frame *want[40];
		size_t n = encode_stream((enum mgrok_role)role, &b, want);
		for (int round = 0; round < 50; round++) {
			struct expect e = {.want = want, .n = n};
			struct mgrok_decoder d;
			mgrok_decoder_init(&d, (enum mgrok_role)role);
			/* Mostly short chunks, sometimes long ones that hold several frames. */
			size_t maxchunk = round % 3 == 0 ? 70000 : round % 3 == 1 ? 300 : 16;
			for (size_t at = 0; at < b.len;) {
				size_t k = 1 + rng() % maxchunk;
				if (k > b.len - at)
					k = b.len - at;
				/* An exactly sized copy: ASan catches any read past the chunk. */
				uint8_t *chunk = malloc(k);
				memcpy(chunk, mgrok_buf_head(&b) + at, k);
				ck_assert_int_eq(feed(&d, &e, chunk, k), 0);
				free(chunk);
				ck_assert_uint_lt(d.partial.len, MAX_FRAME);
				at += k;
			}
			ck_assert_uint_eq(e.got, n);
			ck_assert_uint_eq(d.partial.len, 0);
			mgrok_decoder_free(&d);
		}
		mgrok_buf_free(&b);
	}
}
END_TEST

/* A pause (the session's output is full) keeps the rest of the feed in the
 * decoder: empty feeds later deliver it, frame by frame, nothing lost or
 * repeated, whatever the splits; then decoding goes on in place. */
START_TEST(test_round_trip_with_pauses)
{
	make_samples(true);
	rng_state = 20261202;
	for (int role = MGROK_ROLE_CLIENT; role <= MGROK_ROLE_SERVER; role++) {
		struct mgrok_buf b = {0};
		const struct mgrok_frame *want[40];
		size_t n = encode_stream((enum mgrok_role)role, &b, want);
		for (int round = 0; round < 60; round++) {
			struct expect e = {
			        .want = want, .n = n, .pause_every = 1 + (unsigned)round % 4};
			struct mgrok_decoder d;
			mgrok_decoder_init(&d, (enum mgrok_role)role);
			size_t maxchunk = round % 3 == 0 ? 300000 : round % 3 == 1 ? 300 : 16;
			for (size_t at = 0; at < b.len;) {
				size_t k = 1 + rng() % maxchunk;
				if (k > b.len - at)
					k = b.len - at;
				uint8_t *chunk = malloc(k);
				memcpy(chunk, mgrok_buf_head(&b) + at, k);
				int rc = feed(&d, &e, chunk, k);
				free(chunk);
				/* Resume until the held bytes are all delivered (bounded). */
				for (size_t i = 0; rc == MGROK_DECODE_PAUSE && i <= n; i++)
					rc = feed(&d, &e, NULL, 0);
				ck_assert_int_eq(rc, 0);
				ck_assert_uint_lt(d.partial.len, MAX_FRAME);
				at += k;
			}
			ck_assert_uint_eq(e.got, n);
			ck_assert_uint_eq(d.partial.len, 0);
			mgrok_decoder_free(&d);
		}
		mgrok_buf_free(&b);
	}
}
END_TEST

/* ---- truncation ----------------------------------------------------------- */

/* Parses the first k bytes of a frame from a buffer of exactly k bytes. */
static int parse_prefix(const uint8_t *frame, size_t k, enum mgrok_role role, size_t *used)
{
	uint8_t *p = k ? malloc(k) : NULL;
	if (k)
		memcpy(p, frame, k);
	struct mgrok_frame f;
	char err[160] = "";
	int rc = mgrok_frame_parse(p, k, role, &f, used, err, sizeof(err));
	free(p);
	return rc;
}

static void check_truncation(const struct sample *s, size_t k, const struct mgrok_buf *b,
                             size_t *last_hint)
{
	size_t used = 0;
	int rc = parse_prefix(mgrok_buf_head(b), k, sender_of(s), &used);
	ck_assert_msg(rc == 0, "%s cut at %zu of %zu: rc %d", s->what, k, b->len, rc);
	/* The hint promises more than we have, never more than the frame, and
	 * never shrinks as bytes arrive. */
	ck_assert_msg(used > k && used <= b->len, "%s cut at %zu: hint %zu of %zu", s->what, k,
	              used, b->len);
	ck_assert_msg(used >= *last_hint, "%s cut at %zu: hint went from %zu to %zu", s->what, k,
	              *last_hint, used);
	*last_hint = used;
}

START_TEST(test_truncation_every_point)
{
	make_samples(false);
	for (size_t i = 0; i < nsamples; i++) {
		struct mgrok_buf b = {0};
		encode_ok(&samples[i].f, &b);
		size_t hint = 0;
		for (size_t k = 0; k < b.len; k++)
			check_truncation(&samples[i], k, &b, &hint);
		mgrok_buf_free(&b);
	}
}
END_TEST

START_TEST(test_truncation_big_frames)
{
	make_samples(true);
	for (size_t i = 0; i < nsamples; i++) {
		struct mgrok_buf b = {0};
		encode_ok(&samples[i].f, &b);
		if (b.len < 5000) {
			mgrok_buf_free(&b);
			continue;
		}
		size_t hint = 0;
		/* Every point near both ends, a sparse walk through the middle. */
		for (size_t k = 0; k < b.len; k += (k < 300 || k > b.len - 300) ? 1 : 997)
			check_truncation(&samples[i], k, &b, &hint);
		mgrok_buf_free(&b);
	}
}
END_TEST

START_TEST(test_truncation_hints)
{
	size_t used = 0;
	/* Nothing yet: a type byte is the least. */
	ck_assert_int_eq(parse_prefix(NULL, 0, MGROK_ROLE_CLIENT, &used), 0);
	ck_assert_uint_eq(used, 1);
	/* DATA: the header, then the whole length it announces. */
	const uint8_t data[] = {0x03, 0, 0, 0, 2, 0x12, 0x34};
	ck_assert_int_eq(parse_prefix(data, 1, MGROK_ROLE_CLIENT, &used), 0);
	ck_assert_uint_eq(used, 7);
	ck_assert_int_eq(parse_prefix(data, 6, MGROK_ROLE_CLIENT, &used), 0);
	ck_assert_uint_eq(used, 7);
	ck_assert_int_eq(parse_prefix(data, 7, MGROK_ROLE_CLIENT, &used), 0);
	ck_assert_uint_eq(used, 7 + 0x1234);
	/* REGISTER: all fixed fields and both length prefixes. */
	const uint8_t reg[] = {0x01, 1, 0, 80, 0, 80, 3, 'w', 'e', 'b', 0, 2};
	ck_assert_int_eq(parse_prefix(reg, 1, MGROK_ROLE_CLIENT, &used), 0);
	ck_assert_uint_eq(used, 9);
	ck_assert_int_eq(parse_prefix(reg, 7, MGROK_ROLE_CLIENT, &used), 0);
	ck_assert_uint_eq(used, 12);
	ck_assert_int_eq(parse_prefix(reg, 12, MGROK_ROLE_CLIENT, &used), 0);
	ck_assert_uint_eq(used, 14);
	/* NEW_STREAM: an IPv6 family byte adds address and port. */
	const uint8_t ns[] = {0x02, 0, 0, 0, 2, 1, 'a', 6};
	ck_assert_int_eq(parse_prefix(ns, 7, MGROK_ROLE_SERVER, &used), 0);
	ck_assert_uint_eq(used, 8);
	ck_assert_int_eq(parse_prefix(ns, 8, MGROK_ROLE_SERVER, &used), 0);
	ck_assert_uint_eq(used, 8 + 16 + 2);
}
END_TEST

/* ---- malformed frames ----------------------------------------------------- */

/* prefix, then fill bytes of 'a', then suffix: long strings stay readable. */
struct bad {
	const char *what;
	enum mgrok_role sender;
	const char *prefix;
	size_t prefix_len;
	size_t fill;
	const char *suffix;
	size_t suffix_len;
	const char *err;
};

#define B(s) s, sizeof(s) - 1

static const struct bad bad_frames[] = {
        {"type 0x00", MGROK_ROLE_CLIENT, B("\x00"), 0, B(""), "unknown frame type 0x00"},
        {"type 0x0c", MGROK_ROLE_CLIENT, B("\x0c"), 0, B(""), "unknown frame type 0x0c"},
        {"type 0x0c from server", MGROK_ROLE_SERVER, B("\x0c\x00\x00"), 0, B(""),
         "unknown frame type 0x0c"},
        {"type 0x80", MGROK_ROLE_SERVER, B("\x80"), 0, B(""), "unknown frame type 0x80"},
        {"type 0xff", MGROK_ROLE_CLIENT, B("\xff"), 0, B(""), "unknown frame type 0xff"},
        {"NEW_STREAM from client", MGROK_ROLE_CLIENT, B("\x02\x00\x00\x00\x02\x01x\x00"), 0, B(""),
         "NEW_STREAM not allowed from the client"},
        {"REGISTER_ACK from client", MGROK_ROLE_CLIENT, B("\x06\x00\x01\x00\x50\x00\x00\x00"), 0,
         B(""), "REGISTER_ACK not allowed from the client"},
        {"REGISTER from server", MGROK_ROLE_SERVER, B("\x01\x01\x00\x50\x00\x50\x01x\x00\x00"), 0,
         B(""), "REGISTER not allowed from the server"},
        {"UNREGISTER from server", MGROK_ROLE_SERVER, B("\x0a\x01x"), 0, B(""),
         "UNREGISTER not allowed from the server"},
        {"HELLO from server", MGROK_ROLE_SERVER, B("\x0b\x01x\x00\x00"), 0, B(""),
         "HELLO not allowed from the server"},
        {"NEW_STREAM stream 0", MGROK_ROLE_SERVER, B("\x02\x00\x00\x00\x00\x01x\x00"), 0, B(""),
         "stream ID 0 on NEW_STREAM"},
        {"DATA stream 0 (client)", MGROK_ROLE_CLIENT, B("\x03\x00\x00\x00\x00\x00\x01z"), 0, B(""),
         "stream ID 0 on DATA"},
        {"DATA stream 0 (server)", MGROK_ROLE_SERVER, B("\x03\x00\x00\x00\x00\x00\x00"), 0, B(""),
         "stream ID 0 on DATA"},
        {"CLOSE stream 0", MGROK_ROLE_CLIENT, B("\x04\x00\x00\x00\x00"), 0, B(""),
         "stream ID 0 on CLOSE"},
        {"WINDOW_UPDATE stream 0", MGROK_ROLE_SERVER, B("\x07\x00\x00\x00\x00\x00\x00\x10\x00"), 0,
         B(""), "stream ID 0 on WINDOW_UPDATE"},
        {"RESET stream 0", MGROK_ROLE_CLIENT, B("\x08\x00\x00\x00\x00\x01"), 0, B(""),
         "stream ID 0 on RESET"},
        {"address family 5", MGROK_ROLE_SERVER, B("\x02\x00\x00\x00\x02\x01x\x05\x01\x02\x03\x04"),
         0, B("\x00\x50"), "bad address family 5"},
        {"address family 1", MGROK_ROLE_SERVER, B("\x02\x00\x00\x00\x02\x01x\x01"), 0, B(""),
         "bad address family 1"},
        {"address family 255", MGROK_ROLE_SERVER, B("\x02\x00\x00\x00\x02\x01x\xff"), 0, B(""),
         "bad address family 255"},
        {"NEW_STREAM empty name", MGROK_ROLE_SERVER, B("\x02\x00\x00\x00\x02\x00\x00"), 0, B(""),
         "NEW_STREAM name is empty"},
        {"NEW_STREAM name 65", MGROK_ROLE_SERVER, B("\x02\x00\x00\x00\x02\x41"), 65, B("\x00"),
         "NEW_STREAM name of 65 bytes exceeds 64"},
        {"NEW_STREAM name 70", MGROK_ROLE_SERVER, B("\x02\x00\x00\x00\x02\x46"), 70, B("\x00"),
         "NEW_STREAM name of 70 bytes exceeds 64"},
        {"NEW_STREAM name 255, cut short", MGROK_ROLE_SERVER, B("\x02\x00\x00\x00\x02\xff"), 0,
         B(""), "NEW_STREAM name of 255 bytes exceeds 64"},
        {"HELLO empty clientId", MGROK_ROLE_CLIENT, B("\x0b\x00\x00\x00"), 0, B(""),
         "HELLO clientId is empty"},
        {"HELLO clientId 65", MGROK_ROLE_CLIENT, B("\x0b\x41"), 65, B("\x00\x00"),
         "HELLO clientId of 65 bytes exceeds 64"},
        {"HELLO info 1025", MGROK_ROLE_CLIENT, B("\x0b\x01x\x04\x01"), 1025, B(""),
         "HELLO info of 1025 bytes exceeds 1024"},
        {"HELLO info 65535, cut short", MGROK_ROLE_CLIENT, B("\x0b\x01x\xff\xff"), 10, B(""),
         "HELLO info of 65535 bytes exceeds 1024"},
        {"REGISTER_ACK message 1025", MGROK_ROLE_SERVER, B("\x06\x00\x01\x00\x50\x01x\x04\x01"),
         1025, B(""), "REGISTER_ACK message of 1025 bytes exceeds 1024"},
        {"GO_AWAY message 1025 (client)", MGROK_ROLE_CLIENT, B("\x09\x01\x04\x01"), 1025, B(""),
         "GO_AWAY message of 1025 bytes exceeds 1024"},
        {"GO_AWAY message 2000 (server)", MGROK_ROLE_SERVER, B("\x09\x00\x07\xd0"), 2000, B(""),
         "GO_AWAY message of 2000 bytes exceeds 1024"},
        {"UNREGISTER empty name", MGROK_ROLE_CLIENT, B("\x0a\x00"), 0, B(""),
         "UNREGISTER name is empty"},
        {"UNREGISTER name 65", MGROK_ROLE_CLIENT, B("\x0a\x41"), 65, B(""),
         "UNREGISTER name of 65 bytes exceeds 64"},
};

#define NBAD (sizeof(bad_frames) / sizeof(bad_frames[0]))

struct counter {
	size_t frames;
};

static int count_cb(void *arg, const struct mgrok_frame *f)
{
	(void)f;
	((struct counter *)arg)->frames++;
	return 0;
}

START_TEST(test_bad_frame)
{
	const struct bad *t = &bad_frames[_i];
	size_t n = t->prefix_len + t->fill + t->suffix_len;
	uint8_t *p = malloc(n);
	memcpy(p, t->prefix, t->prefix_len);
	memset(p + t->prefix_len, 'a', t->fill);
	memcpy(p + t->prefix_len + t->fill, t->suffix, t->suffix_len);

	struct mgrok_frame f;
	size_t used = 0;
	char err[160] = "";
	int rc = mgrok_frame_parse(p, n, t->sender, &f, &used, err, sizeof(err));
	ck_assert_msg(rc == -1, "%s: rc %d", t->what, rc);
	ck_assert_msg(strstr(err, t->err), "%s: err \"%s\", wanted \"%s\"", t->what, err, t->err);

	/* The same bytes fed one at a time: the decoder fails with the same
	 * reason, delivers nothing, and stays failed. */
	struct mgrok_decoder d;
	struct counter c = {0};
	mgrok_decoder_init(&d, t->sender);
	rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++)
		rc = mgrok_decoder_feed(&d, p + i, 1, count_cb, &c);
	ck_assert_msg(rc == -1, "%s: decoder rc %d", t->what, rc);
	ck_assert_uint_eq(c.frames, 0);
	ck_assert_msg(strstr(d.err, t->err), "%s: decoder err \"%s\"", t->what, d.err);
	ck_assert_int_eq(mgrok_decoder_feed(&d, (const uint8_t *)"\x05", 1, count_cb, &c), -1);
	ck_assert_uint_eq(c.frames, 0);
	mgrok_decoder_free(&d);
	free(p);
}
END_TEST

START_TEST(test_bad_frame_detected_early)
{
	/* A bound is enforced as soon as its length prefix is in, long before
	 * the (possibly huge) field would arrive. */
	struct mgrok_frame f;
	size_t used = 0;
	char err[160] = "";
	ck_assert_int_eq(mgrok_frame_parse((const uint8_t *)"\x09\x01\xff\xff", 4,
	                                   MGROK_ROLE_CLIENT, &f, &used, err, sizeof(err)),
	                 -1);
	ck_assert_str_eq(err, "GO_AWAY message of 65535 bytes exceeds 1024");
	ck_assert_int_eq(mgrok_frame_parse((const uint8_t *)"\x0c", 1, MGROK_ROLE_SERVER, &f, &used,
	                                   err, sizeof(err)),
	                 -1);
	ck_assert_str_eq(err, "unknown frame type 0x0c");
	ck_assert_int_eq(mgrok_frame_parse((const uint8_t *)"\x03\x00\x00\x00\x00", 5,
	                                   MGROK_ROLE_CLIENT, &f, &used, err, sizeof(err)),
	                 -1);
	ck_assert_str_eq(err, "stream ID 0 on DATA");
	/* A stream ID that is not all there yet is not judged. */
	ck_assert_int_eq(mgrok_frame_parse((const uint8_t *)"\x03\x00\x00\x00", 4,
	                                   MGROK_ROLE_CLIENT, &f, &used, err, sizeof(err)),
	                 0);
	/* A short error buffer is cut, not overrun. */
	char small[8];
	ck_assert_int_eq(mgrok_frame_parse((const uint8_t *)"\x0c", 1, MGROK_ROLE_SERVER, &f, &used,
	                                   small, sizeof(small)),
	                 -1);
	ck_assert_str_eq(small, "unknown");
}
END_TEST

START_TEST(test_direction)
{
	/* Each type parsed from each side: allowed exactly where doc/protocol.md 3 says. */
	static const struct {
		uint8_t type;
		bool from_client, from_server;
	} dirs[] = {
	        {MGROK_FRAME_REGISTER, true, false},     {MGROK_FRAME_NEW_STREAM, false, true},
	        {MGROK_FRAME_DATA, true, true},          {MGROK_FRAME_CLOSE, true, true},
	        {MGROK_FRAME_HEARTBEAT, true, true},     {MGROK_FRAME_REGISTER_ACK, false, true},
	        {MGROK_FRAME_WINDOW_UPDATE, true, true}, {MGROK_FRAME_RESET, true, true},
	        {MGROK_FRAME_GO_AWAY, true, true},       {MGROK_FRAME_UNREGISTER, true, false},
	        {MGROK_FRAME_HELLO, true, false},
	};
	make_samples(false);
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		const struct sample *s = NULL;
		for (size_t j = 0; j < nsamples && !s; j++)
			if (samples[j].f.type == dirs[i].type)
				s = &samples[j];
		ck_assert_ptr_nonnull(s);
		struct mgrok_buf b = {0};
		encode_ok(&s->f, &b);
		struct mgrok_frame f;
		size_t used;
		char err[160] = "";
		int rc = mgrok_frame_parse(mgrok_buf_head(&b), b.len, MGROK_ROLE_CLIENT, &f, &used,
		                           err, sizeof(err));
		ck_assert_msg(rc == (dirs[i].from_client ? 1 : -1), "%s from client: %d", s->what,
		              rc);
		if (rc < 0)
			ck_assert_ptr_nonnull(strstr(err, "not allowed from the client"));
		rc = mgrok_frame_parse(mgrok_buf_head(&b), b.len, MGROK_ROLE_SERVER, &f, &used, err,
		                       sizeof(err));
		ck_assert_msg(rc == (dirs[i].from_server ? 1 : -1), "%s from server: %d", s->what,
		              rc);
		if (rc < 0)
			ck_assert_ptr_nonnull(strstr(err, "not allowed from the server"));
		/* The direction is judged from the type byte alone. */
		if (!dirs[i].from_client)
			ck_assert_int_eq(mgrok_frame_parse(mgrok_buf_head(&b), 1, MGROK_ROLE_CLIENT,
			                                   &f, &used, err, sizeof(err)),
			                 -1);
		mgrok_buf_free(&b);
	}
}
END_TEST

START_TEST(test_not_protocol_errors)
{
	/* Left to the server or the mux, so the parser must decode them. */
	static const struct {
		const char *what;
		enum mgrok_role sender;
		const char *p;
		size_t len;
	} ok[] = {
	        {"REGISTER empty name", MGROK_ROLE_CLIENT,
	         B("\x01\x01\x00\x00\x00\x00\x00\x00\x00")},
	        {"REGISTER bad name chars", MGROK_ROLE_CLIENT,
	         B("\x01\x01\x00\x00\x00\x00\x03/!?\x00\x02[]")},
	        {"REGISTER unknown proxy type", MGROK_ROLE_CLIENT,
	         B("\x01\x99\x00\x00\x00\x00\x01x\x00\x00")},
	        {"REGISTER_ACK status 8", MGROK_ROLE_SERVER, B("\x06\x08\x01\x00\x00\x00\x00\x00")},
	        {"RESET code 6", MGROK_ROLE_CLIENT, B("\x08\x00\x00\x00\x02\x06")},
	        {"GO_AWAY code 5", MGROK_ROLE_SERVER, B("\x09\x05\x00\x00")},
	        {"WINDOW_UPDATE 0", MGROK_ROLE_CLIENT, B("\x07\x00\x00\x00\x02\x00\x00\x00\x00")},
	        {"DATA empty", MGROK_ROLE_SERVER, B("\x03\x00\x00\x00\x02\x00\x00")},
	        {"NEW_STREAM odd stream", MGROK_ROLE_SERVER, B("\x02\x00\x00\x00\x03\x01x\x00")},
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		struct mgrok_frame f;
		size_t used = 0;
		char err[160] = "";
		int rc = mgrok_frame_parse((const uint8_t *)ok[i].p, ok[i].len, ok[i].sender, &f,
		                           &used, err, sizeof(err));
		ck_assert_msg(rc == 1, "%s: rc %d (%s)", ok[i].what, rc, err);
		ck_assert_uint_eq(used, ok[i].len);
	}
	/* The values survive decoding for the receiver to judge. */
	struct mgrok_frame f;
	size_t used;
	char err[160];
	ck_assert_int_eq(mgrok_frame_parse((const uint8_t *)"\x06\xc8\x01\x00\x00\x00\x00\x00", 8,
	                                   MGROK_ROLE_SERVER, &f, &used, err, sizeof(err)),
	                 1);
	ck_assert_uint_eq(f.u.ack.status, 200);
	ck_assert_int_eq(mgrok_frame_parse((const uint8_t *)"\x07\x00\x00\x00\x02\x00\x00\x00\x00",
	                                   9, MGROK_ROLE_SERVER, &f, &used, err, sizeof(err)),
	                 1);
	ck_assert_uint_eq(f.u.increment, 0);
	ck_assert_uint_eq(f.stream_id, 2);
}
END_TEST

/* ---- encoder refusals ----------------------------------------------------- */

START_TEST(test_encode_refuses)
{
	struct mgrok_frame bad[24];
	size_t n = 0;
	memset(bad, 0, sizeof(bad));
#define BAD(t) (&bad[n++])->type = (t)
	/* unknown types */
	BAD(0);
	BAD(0x0C);
	/* wire widths */
	BAD(MGROK_FRAME_REGISTER);
	bad[n - 1].u.reg.name = as(256);
	BAD(MGROK_FRAME_REGISTER);
	bad[n - 1].u.reg.options = as(65536);
	BAD(MGROK_FRAME_DATA);
	bad[n - 1].stream_id = 2;
	bad[n - 1].u.data = as(MGROK_DATA_MAX + 1);
	BAD(MGROK_FRAME_REGISTER_ACK);
	bad[n - 1].u.ack.name = as(256);
	/* what our parser rejects */
	BAD(MGROK_FRAME_NEW_STREAM);
	bad[n - 1].u.new_stream.name = str("x"); /* stream 0 */
	BAD(MGROK_FRAME_NEW_STREAM);
	bad[n - 1].stream_id = 2; /* empty name */
	BAD(MGROK_FRAME_NEW_STREAM);
	bad[n - 1].stream_id = 2;
	bad[n - 1].u.new_stream.name = as(65);
	BAD(MGROK_FRAME_NEW_STREAM);
	bad[n - 1].stream_id = 2;
	bad[n - 1].u.new_stream.name = str("x");
	bad[n - 1].u.new_stream.source.family = 5;
	BAD(MGROK_FRAME_DATA); /* stream 0 */
	BAD(MGROK_FRAME_CLOSE);
	BAD(MGROK_FRAME_WINDOW_UPDATE);
	bad[n - 1].u.increment = 1;
	BAD(MGROK_FRAME_RESET);
	BAD(MGROK_FRAME_REGISTER_ACK);
	bad[n - 1].u.ack.message = as(MGROK_MESSAGE_MAX + 1);
	BAD(MGROK_FRAME_GO_AWAY);
	bad[n - 1].u.go_away.message = as(MGROK_MESSAGE_MAX + 1);
	BAD(MGROK_FRAME_UNREGISTER); /* empty */
	BAD(MGROK_FRAME_UNREGISTER);
	bad[n - 1].u.unreg_name = as(65);
	BAD(MGROK_FRAME_HELLO); /* empty clientId */
	BAD(MGROK_FRAME_HELLO);
	bad[n - 1].u.hello.client_id = as(65);
	BAD(MGROK_FRAME_HELLO);
	bad[n - 1].u.hello.client_id = str("id");
	bad[n - 1].u.hello.info = as(MGROK_INFO_MAX + 1);
	BAD(MGROK_FRAME_DATA); /* length without bytes */
	bad[n - 1].stream_id = 2;
	bad[n - 1].u.data.len = 3;
#undef BAD
	struct mgrok_buf b = {0};
	mgrok_buf_append(&b, "keep", 4);
	for (size_t i = 0; i < n; i++) {
		ck_assert_msg(mgrok_frame_encode(&bad[i], &b) == -1, "bad[%zu] (%s) encoded", i,
		              mgrok_frame_type_name(bad[i].type));
		ck_assert_msg(b.len == 4, "bad[%zu] appended %zu bytes", i, b.len - 4);
	}
	ck_assert_mem_eq(mgrok_buf_head(&b), "keep", 4);
	mgrok_buf_free(&b);
}
END_TEST

START_TEST(test_encode_appends)
{
	/* Encoding appends behind what the buffer holds, leaving it intact. */
	struct mgrok_buf b = {0};
	mgrok_buf_append(&b, "xy", 2);
	struct mgrok_frame f = {.type = MGROK_FRAME_CLOSE, .stream_id = 7};
	encode_ok(&f, &b);
	assert_bytes(&b, "xy\x04\x00\x00\x00\x07", 7);
	mgrok_buf_free(&b);
}
END_TEST

/* ---- handshake messages --------------------------------------------------- */

START_TEST(test_hs_first_round_trip)
{
	struct mgrok_buf b = {0};
	ck_assert_int_eq(mgrok_hs_encode_first(&b, 0x01, pattern, 16), 0);
	ck_assert_uint_eq(b.len, 23);
	ck_assert_mem_eq(mgrok_buf_head(&b), "GRT1\x01\x00\x10", 7);
	ck_assert_mem_eq(mgrok_buf_head(&b) + 7, pattern, 16);
	mgrok_buf_append(&b, "\x05", 1);

	uint8_t method = 0;
	struct mgrok_bytes pl;
	size_t used = 0;
	char err[160] = "";
	ck_assert_int_eq(mgrok_hs_parse_first(mgrok_buf_head(&b), b.len, &method, &pl, &used, err,
	                                      sizeof(err)),
	                 1);
	ck_assert_uint_eq(used, 23);
	ck_assert_uint_eq(method, 1);
	ck_assert_uint_eq(pl.len, 16);
	ck_assert_ptr_eq(pl.p, mgrok_buf_head(&b) + 7);
	ck_assert_mem_eq(pl.p, pattern, 16);

	/* Empty and largest payloads, a plugin method id. */
	size_t sizes[] = {0, MGROK_HS_PAYLOAD_MAX};
	for (size_t i = 0; i < 2; i++) {
		b.len = 0;
		ck_assert_int_eq(mgrok_hs_encode_first(&b, 0x80, pattern, sizes[i]), 0);
		ck_assert_int_eq(mgrok_hs_parse_first(mgrok_buf_head(&b), b.len, &method, &pl,
		                                      &used, err, sizeof(err)),
		                 1);
		ck_assert_uint_eq(used, 7 + sizes[i]);
		ck_assert_uint_eq(method, 0x80);
		ck_assert_uint_eq(pl.len, sizes[i]);
		if (sizes[i])
			ck_assert_mem_eq(pl.p, pattern, sizes[i]);
	}
	mgrok_buf_free(&b);
}
END_TEST

START_TEST(test_hs_first_truncation)
{
	struct mgrok_buf b = {0};
	ck_assert_int_eq(mgrok_hs_encode_first(&b, 0x01, pattern, 16), 0);
	for (size_t k = 0; k < b.len; k++) {
		uint8_t *p = k ? malloc(k) : NULL;
		if (k)
			memcpy(p, mgrok_buf_head(&b), k);
		uint8_t method;
		struct mgrok_bytes pl;
		size_t used = 0;
		char err[160] = "";
		ck_assert_msg(mgrok_hs_parse_first(p, k, &method, &pl, &used, err, sizeof(err)) ==
		                      0,
		              "cut at %zu: %s", k, err);
		ck_assert_uint_eq(used, k < 7 ? 7 : 23);
		free(p);
	}
	mgrok_buf_free(&b);
}
END_TEST

START_TEST(test_hs_bad_magic)
{
	/* Each position of the magic, wrong: fails on that byte, not before. */
	for (size_t pos = 0; pos < 4; pos++) {
		uint8_t msg[] = {'G', 'R', 'T', '1', 0x00, 0x00, 0x00};
		msg[pos] ^= 0x20;
		for (size_t k = 0; k <= sizeof(msg); k++) {
			uint8_t *p = k ? malloc(k) : NULL;
			if (k)
				memcpy(p, msg, k);
			uint8_t method;
			struct mgrok_bytes pl;
			size_t used = 0;
			char err[160] = "";
			int rc = mgrok_hs_parse_first(p, k, &method, &pl, &used, err, sizeof(err));
			if (k <= pos) {
				ck_assert_msg(rc == 0, "magic wrong at %zu, %zu bytes: rc %d", pos,
				              k, rc);
			} else {
				ck_assert_msg(rc == -1, "magic wrong at %zu, %zu bytes: rc %d", pos,
				              k, rc);
				ck_assert_str_eq(err, "bad magic");
			}
			free(p);
		}
	}
	/* An HTTP request, a TLS ClientHello. */
	uint8_t method;
	struct mgrok_bytes pl;
	size_t used;
	char err[160] = "";
	ck_assert_int_eq(mgrok_hs_parse_first((const uint8_t *)"GET /", 5, &method, &pl, &used, err,
	                                      sizeof(err)),
	                 -1);
	ck_assert_int_eq(mgrok_hs_parse_first((const uint8_t *)"\x16\x03\x01", 3, &method, &pl,
	                                      &used, err, sizeof(err)),
	                 -1);
	ck_assert_str_eq(err, "bad magic");
}
END_TEST

START_TEST(test_hs_payload_too_long)
{
	struct mgrok_buf b = {0};
	mgrok_buf_append(&b, "keep", 4);
	ck_assert_int_eq(mgrok_hs_encode_first(&b, 1, pattern, MGROK_HS_PAYLOAD_MAX + 1), -1);
	ck_assert_int_eq(mgrok_hs_encode_answer(&b, pattern, MGROK_HS_PAYLOAD_MAX + 1), -1);
	ck_assert_int_eq(
	        mgrok_hs_encode_reply(&b, MGROK_HS_STATUS_OK, pattern, MGROK_HS_PAYLOAD_MAX + 1),
	        -1);
	ck_assert_uint_eq(b.len, 4);
	mgrok_buf_free(&b);

	/* Refused from the length prefix alone. */
	uint8_t method, status;
	struct mgrok_bytes pl;
	size_t used;
	char err[160] = "";
	ck_assert_int_eq(mgrok_hs_parse_first((const uint8_t *)"GRT1\x01\x10\x01", 7, &method, &pl,
	                                      &used, err, sizeof(err)),
	                 -1);
	ck_assert_ptr_nonnull(strstr(err, "4097 bytes exceeds 4096"));
	err[0] = 0;
	ck_assert_int_eq(
	        mgrok_hs_parse_answer((const uint8_t *)"\xff\xff", 2, &pl, &used, err, sizeof(err)),
	        -1);
	ck_assert_ptr_nonnull(strstr(err, "65535 bytes exceeds 4096"));
	err[0] = 0;
	ck_assert_int_eq(mgrok_hs_parse_reply((const uint8_t *)"\x01\x10\x01", 3, &status, &pl,
	                                      &used, err, sizeof(err)),
	                 -1);
	ck_assert_ptr_nonnull(strstr(err, "4097 bytes exceeds 4096"));
}
END_TEST

START_TEST(test_hs_answer)
{
	struct mgrok_buf b = {0};
	ck_assert_int_eq(mgrok_hs_encode_answer(&b, pattern, 32), 0);
	ck_assert_uint_eq(b.len, 34);
	ck_assert_mem_eq(mgrok_buf_head(&b), "\x00\x20", 2);
	struct mgrok_bytes pl;
	size_t used = 0;
	char err[160] = "";
	ck_assert_int_eq(
	        mgrok_hs_parse_answer(mgrok_buf_head(&b), b.len, &pl, &used, err, sizeof(err)), 1);
	ck_assert_uint_eq(used, 34);
	ck_assert_uint_eq(pl.len, 32);
	ck_assert_mem_eq(pl.p, pattern, 32);
	for (size_t k = 0; k < b.len; k++) {
		uint8_t *p = k ? malloc(k) : NULL;
		if (k)
			memcpy(p, mgrok_buf_head(&b), k);
		ck_assert_int_eq(mgrok_hs_parse_answer(p, k, &pl, &used, err, sizeof(err)), 0);
		ck_assert_uint_eq(used, k < 2 ? 2 : 34);
		free(p);
	}
	b.len = 0;
	ck_assert_int_eq(mgrok_hs_encode_answer(&b, NULL, 0), 0);
	assert_bytes(&b, "\x00\x00", 2);
	ck_assert_int_eq(
	        mgrok_hs_parse_answer(mgrok_buf_head(&b), b.len, &pl, &used, err, sizeof(err)), 1);
	ck_assert_uint_eq(pl.len, 0);
	mgrok_buf_free(&b);
}
END_TEST

START_TEST(test_hs_reply)
{
	struct mgrok_buf b = {0};
	for (uint8_t st = MGROK_HS_STATUS_OK; st <= MGROK_HS_STATUS_UNSUPPORTED; st++) {
		b.len = 0;
		ck_assert_int_eq(mgrok_hs_encode_reply(&b, st, "why", 3), 0);
		const char want[] = {(char)st, 0, 3, 'w', 'h', 'y'};
		assert_bytes(&b, want, 6);
		uint8_t status = 0xAA;
		struct mgrok_bytes pl;
		size_t used = 0;
		char err[160] = "";
		ck_assert_int_eq(mgrok_hs_parse_reply(mgrok_buf_head(&b), b.len, &status, &pl,
		                                      &used, err, sizeof(err)),
		                 1);
		ck_assert_uint_eq(status, st);
		ck_assert_uint_eq(used, 6);
		ck_assert_uint_eq(pl.len, 3);
		ck_assert_mem_eq(pl.p, "why", 3);
		for (size_t k = 0; k < b.len; k++) {
			uint8_t *p = k ? malloc(k) : NULL;
			if (k)
				memcpy(p, mgrok_buf_head(&b), k);
			ck_assert_int_eq(
			        mgrok_hs_parse_reply(p, k, &status, &pl, &used, err, sizeof(err)),
			        0);
			ck_assert_uint_eq(used, k < 3 ? 3 : 6);
			free(p);
		}
	}
	mgrok_buf_free(&b);
}
END_TEST

START_TEST(test_hs_bad_status)
{
	uint8_t status;
	struct mgrok_bytes pl;
	size_t used;
	char err[160] = "";
	ck_assert_int_eq(mgrok_hs_parse_reply((const uint8_t *)"\x04", 1, &status, &pl, &used, err,
	                                      sizeof(err)),
	                 -1);
	ck_assert_str_eq(err, "unknown handshake status 4");
	ck_assert_int_eq(mgrok_hs_parse_reply((const uint8_t *)"\xff\x00\x00", 3, &status, &pl,
	                                      &used, err, sizeof(err)),
	                 -1);
	ck_assert_str_eq(err, "unknown handshake status 255");
	struct mgrok_buf b = {0};
	ck_assert_int_eq(mgrok_hs_encode_reply(&b, 4, NULL, 0), -1);
	ck_assert_uint_eq(b.len, 0);
	mgrok_buf_free(&b);
}
END_TEST

/* ---- wire addresses ------------------------------------------------------- */

START_TEST(test_addr_ipv4)
{
	struct sockaddr_in in = {.sin_family = AF_INET, .sin_port = htons(8080)};
	inet_pton(AF_INET, "192.0.2.1", &in.sin_addr);
	struct mgrok_wire_addr w;
	mgrok_wire_addr_from_sockaddr(&w, (const struct sockaddr *)&in);
	ck_assert_uint_eq(w.family, 4);
	ck_assert_mem_eq(w.ip, "\xc0\x00\x02\x01", 4);
	ck_assert_uint_eq(w.port, 8080);

	struct sockaddr_storage ss;
	ck_assert_uint_eq(mgrok_wire_addr_to_sockaddr(&w, &ss), sizeof(struct sockaddr_in));
	const struct sockaddr_in *back = (const struct sockaddr_in *)&ss;
	ck_assert_int_eq(back->sin_family, AF_INET);
	ck_assert_uint_eq(ntohs(back->sin_port), 8080);
	ck_assert_uint_eq(back->sin_addr.s_addr, in.sin_addr.s_addr);
}
END_TEST

START_TEST(test_addr_ipv6)
{
	struct sockaddr_in6 in6 = {.sin6_family = AF_INET6, .sin6_port = htons(443)};
	inet_pton(AF_INET6, "2001:db8::1", &in6.sin6_addr);
	struct mgrok_wire_addr w;
	mgrok_wire_addr_from_sockaddr(&w, (const struct sockaddr *)&in6);
	ck_assert_uint_eq(w.family, 6);
	ck_assert_mem_eq(w.ip, "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x01", 16);
	ck_assert_uint_eq(w.port, 443);

	struct sockaddr_storage ss;
	ck_assert_uint_eq(mgrok_wire_addr_to_sockaddr(&w, &ss), sizeof(struct sockaddr_in6));
	const struct sockaddr_in6 *back = (const struct sockaddr_in6 *)&ss;
	ck_assert_int_eq(back->sin6_family, AF_INET6);
	ck_assert_uint_eq(ntohs(back->sin6_port), 443);
	ck_assert_mem_eq(&back->sin6_addr, &in6.sin6_addr, 16);
}
END_TEST

START_TEST(test_addr_v4_mapped)
{
	struct sockaddr_in6 in6 = {.sin6_family = AF_INET6, .sin6_port = htons(5353)};
	inet_pton(AF_INET6, "::ffff:198.51.100.7", &in6.sin6_addr);
	struct mgrok_wire_addr w;
	mgrok_wire_addr_from_sockaddr(&w, (const struct sockaddr *)&in6);
	ck_assert_uint_eq(w.family, 4);
	ck_assert_mem_eq(w.ip, "\xc6\x33\x64\x07", 4);
	ck_assert_uint_eq(w.port, 5353);

	/* ::198.51.100.7 (IPv4-compatible, deprecated) is not mapped: stays 6. */
	inet_pton(AF_INET6, "::198.51.100.7", &in6.sin6_addr);
	mgrok_wire_addr_from_sockaddr(&w, (const struct sockaddr *)&in6);
	ck_assert_uint_eq(w.family, 6);
}
END_TEST

START_TEST(test_addr_none)
{
	struct mgrok_wire_addr w;
	memset(&w, 0xAB, sizeof(w));
	mgrok_wire_addr_from_sockaddr(&w, NULL);
	ck_assert_uint_eq(w.family, 0);

	struct sockaddr_un un = {.sun_family = AF_UNIX};
	strcpy(un.sun_path, "/tmp/x");
	memset(&w, 0xAB, sizeof(w));
	mgrok_wire_addr_from_sockaddr(&w, (const struct sockaddr *)&un);
	ck_assert_uint_eq(w.family, 0);

	struct sockaddr_storage ss;
	w.family = 0;
	ck_assert_uint_eq(mgrok_wire_addr_to_sockaddr(&w, &ss), 0);
	w.family = 5;
	ck_assert_uint_eq(mgrok_wire_addr_to_sockaddr(&w, &ss), 0);
}
END_TEST

START_TEST(test_type_names)
{
	static const char *const names[] = {NULL,    "REGISTER",  "NEW_STREAM",   "DATA",
	                                    "CLOSE", "HEARTBEAT", "REGISTER_ACK", "WINDOW_UPDATE",
	                                    "RESET", "GO_AWAY",   "UNREGISTER",   "HELLO"};
	for (uint8_t t = 1; t <= MGROK_FRAME_HELLO; t++)
		ck_assert_str_eq(mgrok_frame_type_name(t), names[t]);
	ck_assert_str_eq(mgrok_frame_type_name(0), "unknown");
	ck_assert_str_eq(mgrok_frame_type_name(0x0C), "unknown");
	ck_assert_str_eq(mgrok_frame_type_name(0xFF), "unknown");
}
END_TEST

/* ---- decoder -------------------------------------------------------------- */

/* CLOSE 2, DATA 2 "hello", GO_AWAY "bye": from either side. */
static const uint8_t three[] = {0x04, 0,   0,   0,   2,   0x03, 0, 0, 0, 2,   0,   5,
                                'h',  'e', 'l', 'l', 'o', 0x09, 0, 0, 3, 'b', 'y', 'e'};

static void three_frames(struct mgrok_frame want[3])
{
	memset(want, 0, 3 * sizeof(want[0]));
	want[0].type = MGROK_FRAME_CLOSE;
	want[0].stream_id = 2;
	want[1].type = MGROK_FRAME_DATA;
	want[1].stream_id = 2;
	want[1].u.data = str("hello");
	want[2].type = MGROK_FRAME_GO_AWAY;
	want[2].u.go_away.message = str("bye");
}

START_TEST(test_decoder_several_in_one_feed)
{
	struct mgrok_frame w[3];
	three_frames(w);
	const struct mgrok_frame *want[] = {&w[0], &w[1], &w[2]};
	struct expect e = {.want = want, .n = 3};
	struct mgrok_decoder d;
	mgrok_decoder_init(&d, MGROK_ROLE_SERVER);
	ck_assert_int_eq(feed(&d, &e, three, sizeof(three)), 0);
	ck_assert_uint_eq(e.got, 3);
	ck_assert_uint_eq(e.in_place, 2); /* DATA and GO_AWAY point into the fed bytes */
	ck_assert_uint_eq(d.partial.len, 0);
	mgrok_decoder_free(&d);
}
END_TEST

START_TEST(test_decoder_straddle)
{
	struct mgrok_frame w[3];
	three_frames(w);
	const struct mgrok_frame *want[] = {&w[0], &w[1], &w[2]};
	/* Cut inside DATA's payload: DATA is rebuilt from the copy, GO_AWAY
	 * behind it is delivered in place. Then every other cut. */
	for (size_t cut = 0; cut <= sizeof(three); cut++) {
		struct expect e = {.want = want, .n = 3};
		struct mgrok_decoder d;
		mgrok_decoder_init(&d, MGROK_ROLE_CLIENT);
		ck_assert_int_eq(feed(&d, &e, three, cut), 0);
		ck_assert_int_eq(feed(&d, &e, three + cut, sizeof(three) - cut), 0);
		ck_assert_uint_eq(e.got, 3);
		ck_assert_uint_eq(d.partial.len, 0);
		if (cut == 14) {
			/* DATA came out of the decoder's copy, GO_AWAY in place. */
			ck_assert_uint_eq(e.in_place, 1);
		}
		mgrok_decoder_free(&d);
	}
}
END_TEST

START_TEST(test_decoder_copies_only_the_partial)
{
	/* 3 bytes of CLOSE, then the rest of it plus a whole DATA in one feed:
	 * partial takes 2 bytes, DATA must come straight from the feed. */
	struct mgrok_frame w[3];
	three_frames(w);
	const struct mgrok_frame *want[] = {&w[0], &w[1]};
	struct expect e = {.want = want, .n = 2};
	struct mgrok_decoder d;
	mgrok_decoder_init(&d, MGROK_ROLE_SERVER);
	ck_assert_int_eq(feed(&d, &e, three, 3), 0);
	ck_assert_uint_eq(d.partial.len, 3);
	ck_assert_uint_eq(e.got, 0);
	ck_assert_int_eq(feed(&d, &e, three + 3, 17 - 3), 0);
	ck_assert_uint_eq(e.got, 2);
	ck_assert_uint_eq(e.in_place, 1);
	ck_assert_uint_eq(d.partial.len, 0);
	mgrok_decoder_free(&d);
}
END_TEST

START_TEST(test_decoder_stop)
{
	struct mgrok_frame w[3];
	three_frames(w);
	const struct mgrok_frame *want[] = {&w[0], &w[1], &w[2]};
	/* Stop on the 2nd frame of a single feed: the 3rd is not delivered. */
	struct expect e = {.want = want, .n = 3, .stop_at = 2, .stop_rc = 7};
	struct mgrok_decoder d;
	mgrok_decoder_init(&d, MGROK_ROLE_SERVER);
	ck_assert_int_eq(feed(&d, &e, three, sizeof(three)), 7);
	ck_assert_uint_eq(e.got, 2);
	mgrok_decoder_free(&d);

	/* Stop on a frame completed from the partial copy. */
	struct expect e2 = {.want = want, .n = 3, .stop_at = 1, .stop_rc = -5};
	mgrok_decoder_init(&d, MGROK_ROLE_SERVER);
	ck_assert_int_eq(feed(&d, &e2, three, 2), 0);
	ck_assert_int_eq(feed(&d, &e2, three + 2, sizeof(three) - 2), -5);
	ck_assert_uint_eq(e2.got, 1);
	ck_assert_uint_eq(d.partial.len, 0);
	mgrok_decoder_free(&d);
}
END_TEST

START_TEST(test_decoder_failed_is_sticky)
{
	struct counter c = {0};
	struct mgrok_decoder d;
	mgrok_decoder_init(&d, MGROK_ROLE_SERVER);
	/* A good frame, then a bad type in the same feed. */
	ck_assert_int_eq(mgrok_decoder_feed(&d, (const uint8_t *)"\x05\x0d", 2, count_cb, &c), -1);
	ck_assert_uint_eq(c.frames, 1);
	ck_assert_str_eq(d.err, "unknown frame type 0x0d");
	ck_assert_int_eq(mgrok_decoder_feed(&d, (const uint8_t *)"\x05", 1, count_cb, &c), -1);
	ck_assert_int_eq(mgrok_decoder_feed(&d, three, sizeof(three), count_cb, &c), -1);
	ck_assert_int_eq(mgrok_decoder_feed(&d, NULL, 0, count_cb, &c), -1);
	ck_assert_uint_eq(c.frames, 1);
	ck_assert_str_eq(d.err, "unknown frame type 0x0d");
	mgrok_decoder_free(&d);

	/* A bad frame discovered while completing a partial one. */
	mgrok_decoder_init(&d, MGROK_ROLE_CLIENT);
	c.frames = 0;
	ck_assert_int_eq(mgrok_decoder_feed(&d, (const uint8_t *)"\x04\x00", 2, count_cb, &c), 0);
	ck_assert_int_eq(
	        mgrok_decoder_feed(&d, (const uint8_t *)"\x00\x00\x00\x05", 4, count_cb, &c), -1);
	ck_assert_str_eq(d.err, "stream ID 0 on CLOSE");
	ck_assert_int_eq(mgrok_decoder_feed(&d, (const uint8_t *)"\x05", 1, count_cb, &c), -1);
	ck_assert_uint_eq(c.frames, 0);
	mgrok_decoder_free(&d);
}
END_TEST

START_TEST(test_decoder_empty_feeds)
{
	struct counter c = {0};
	struct mgrok_decoder d;
	mgrok_decoder_init(&d, MGROK_ROLE_CLIENT);
	ck_assert_int_eq(mgrok_decoder_feed(&d, NULL, 0, count_cb, &c), 0);
	ck_assert_int_eq(mgrok_decoder_feed(&d, (const uint8_t *)"\x03\x00\x00", 3, count_cb, &c),
	                 0);
	ck_assert_int_eq(mgrok_decoder_feed(&d, NULL, 0, count_cb, &c), 0);
	ck_assert_uint_eq(d.partial.len, 3);
	ck_assert_int_eq(
	        mgrok_decoder_feed(&d, (const uint8_t *)"\x00\x01\x00\x00", 4, count_cb, &c), 0);
	ck_assert_uint_eq(c.frames, 1);
	ck_assert_uint_eq(d.partial.len, 0);
	mgrok_decoder_free(&d);
}
END_TEST

START_TEST(test_decoder_long_mixed_byte_by_byte)
{
	/* Every server-side sample, a 65535-byte DATA among them, three times
	 * over, one byte per feed; partial never holds more than a frame. */
	make_samples(true);
	struct mgrok_buf b = {0};
	const struct mgrok_frame *want[120];
	size_t n = 0;
	for (int rep = 0; rep < 3; rep++)
		n += encode_stream(MGROK_ROLE_SERVER, &b, want + n);
	ck_assert_uint_gt(b.len, 3 * 65542);
	struct expect e = {.want = want, .n = n};
	struct mgrok_decoder d;
	mgrok_decoder_init(&d, MGROK_ROLE_SERVER);
	size_t most = 0;
	const uint8_t *p = mgrok_buf_head(&b);
	for (size_t i = 0; i < b.len; i++) {
		ck_assert_int_eq(feed(&d, &e, p + i, 1), 0);
		if (d.partial.len > most)
			most = d.partial.len;
	}
	ck_assert_uint_eq(e.got, n);
	ck_assert_uint_eq(d.partial.len, 0);
	ck_assert_uint_eq(most, MGROK_DATA_HEADER + MGROK_DATA_MAX - 1);
	mgrok_decoder_free(&d);
	mgrok_buf_free(&b);
}
END_TEST

/* ---- suite ---------------------------------------------------------------- */

static Suite *codec_suite(void)
{
	Suite *s = suite_create("codec");
	TCase *tc;

	tc = tcase_create("frames");
	tcase_add_test(tc, test_golden_frames);
	tcase_add_test(tc, test_golden_ipv6);
	tcase_add_test(tc, test_data_header);
	tcase_add_test(tc, test_round_trip_whole);
	tcase_add_test(tc, test_round_trip_byte_by_byte);
	tcase_add_test(tc, test_round_trip_random_splits);
	tcase_add_test(tc, test_round_trip_with_pauses);
	tcase_add_test(tc, test_truncation_every_point);
	tcase_add_test(tc, test_truncation_big_frames);
	tcase_add_test(tc, test_truncation_hints);
	tcase_add_test(tc, test_encode_refuses);
	tcase_add_test(tc, test_encode_appends);
	tcase_add_test(tc, test_type_names);
	tcase_set_timeout(tc, 60);
	suite_add_tcase(s, tc);

	tc = tcase_create("malformed");
	tcase_add_loop_test(tc, test_bad_frame, 0, (int)NBAD);
	tcase_add_test(tc, test_bad_frame_detected_early);
	tcase_add_test(tc, test_direction);
	tcase_add_test(tc, test_not_protocol_errors);
	suite_add_tcase(s, tc);

	tc = tcase_create("handshake");
	tcase_add_test(tc, test_hs_first_round_trip);
	tcase_add_test(tc, test_hs_first_truncation);
	tcase_add_test(tc, test_hs_bad_magic);
	tcase_add_test(tc, test_hs_payload_too_long);
	tcase_add_test(tc, test_hs_answer);
	tcase_add_test(tc, test_hs_reply);
	tcase_add_test(tc, test_hs_bad_status);
	suite_add_tcase(s, tc);

	tc = tcase_create("addr");
	tcase_add_test(tc, test_addr_ipv4);
	tcase_add_test(tc, test_addr_ipv6);
	tcase_add_test(tc, test_addr_v4_mapped);
	tcase_add_test(tc, test_addr_none);
	suite_add_tcase(s, tc);

	tc = tcase_create("decoder");
	tcase_add_test(tc, test_decoder_several_in_one_feed);
	tcase_add_test(tc, test_decoder_straddle);
	tcase_add_test(tc, test_decoder_copies_only_the_partial);
	tcase_add_test(tc, test_decoder_stop);
	tcase_add_test(tc, test_decoder_failed_is_sticky);
	tcase_add_test(tc, test_decoder_empty_feeds);
	tcase_add_test(tc, test_decoder_long_mixed_byte_by_byte);
	tcase_set_timeout(tc, 60);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	fill_pattern();
	SRunner *sr = srunner_create(codec_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
