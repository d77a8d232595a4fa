#include "wire_check.h"

#include <string.h>

#include "fuzz.h"

void wire_init(struct wire *w, bool from_session, enum mgrok_role sender,
               struct wire_streams *streams)
{
	memset(w, 0, sizeof(*w));
	w->from_session = from_session;
	w->sender = sender;
	w->streams = streams;
	mgrok_decoder_init(&w->dec, sender);
}

void wire_free(struct wire *w)
{
	mgrok_buf_free(&w->hs);
	mgrok_decoder_free(&w->dec);
}

/* Stream id's record, made on first sight while there is room; NULL: not
 * followed. A stream first seen in other frames than NEW_STREAM was never
 * opened, as the checks then say. */
static struct wire_stream *stream(struct wire *w, uint32_t id)
{
	struct wire_streams *t = w->streams;
	for (unsigned i = 0; i < t->n; i++)
		if (t->v[i].id == id)
			return &t->v[i];
	if (t->n == WIRE_TRACK)
		return NULL;
	struct wire_stream *st = &t->v[t->n++];
	memset(st, 0, sizeof(*st));
	st->id = id;
	return st;
}

/* The harness's frames: what the session may do in return. */
static void harness_frame(struct wire *w, const struct mgrok_frame *f)
{
	struct wire_stream *st;
	if (f->type == MGROK_FRAME_NEW_STREAM && (st = stream(w, f->stream_id)))
		st->opened = true;
	else if (f->type == MGROK_FRAME_WINDOW_UPDATE && (st = stream(w, f->stream_id)))
		st->grant += f->u.increment;
}

/* The session's frames: doc/protocol.md 3.2 and 3.3 from the sender's side. */
static void session_frame(struct wire *w, const struct mgrok_frame *f)
{
	const char *type = mgrok_frame_type_name(f->type);
	struct wire_stream *st = NULL;

	FUZZ_ASSERT(!w->over, "the session sent %s after GO_AWAY", type);
	switch (f->type) {
	case MGROK_FRAME_NEW_STREAM:
		if ((st = stream(w, f->stream_id))) {
			FUZZ_ASSERT(!st->opened, "NEW_STREAM %u twice", f->stream_id);
			st->opened = true;
		}
		return;
	case MGROK_FRAME_GO_AWAY: w->over = true; return;
	case MGROK_FRAME_DATA:
	case MGROK_FRAME_CLOSE:
	case MGROK_FRAME_WINDOW_UPDATE:
	case MGROK_FRAME_RESET: break;
	default: return;
	}
	if (!(st = stream(w, f->stream_id)))
		return;
	FUZZ_ASSERT(st->opened, "%s on stream %u, never opened", type, f->stream_id);
	FUZZ_ASSERT(!st->reset, "%s on stream %u after our RESET", type, f->stream_id);
	switch (f->type) {
	case MGROK_FRAME_DATA:
		FUZZ_ASSERT(!st->closed, "DATA on stream %u after our CLOSE", f->stream_id);
		st->sent += f->u.data.len;
		FUZZ_ASSERT(st->sent <= MGROK_WINDOW_INITIAL + st->grant,
		            "stream %u: %llu bytes sent with %llu of credit", f->stream_id,
		            (unsigned long long)st->sent,
		            (unsigned long long)(MGROK_WINDOW_INITIAL + st->grant));
		break;
	case MGROK_FRAME_CLOSE:
		FUZZ_ASSERT(!st->closed, "a second CLOSE on stream %u", f->stream_id);
		st->closed = true;
		break;
	case MGROK_FRAME_WINDOW_UPDATE:
		FUZZ_ASSERT(f->u.increment > 0, "WINDOW_UPDATE of 0 on stream %u", f->stream_id);
		break;
	default: st->reset = true; break;
	}
}

static int on_frame(void *arg, const struct mgrok_frame *f)
{
	struct wire *w = arg;
	if (w->from_session)
		session_frame(w, f);
	else
		harness_frame(w, f);
	return 0;
}

/*
 * The handshake messages in front of the frames (auth none: one each way).
 * Returns the bytes they took from hs, or 0 while one is incomplete.
 */
static size_t handshake(struct wire *w)
{
	const uint8_t *p = mgrok_buf_head(&w->hs);
	struct mgrok_bytes payload;
	size_t used = 0;
	uint8_t x = 0;
	char err[160] = "";
	/* The server speaks in replies; the client's first message has the magic. */
	int rc =
	        w->sender == MGROK_ROLE_SERVER
	                ? mgrok_hs_parse_reply(p, w->hs.len, &x, &payload, &used, err, sizeof(err))
	                : mgrok_hs_parse_first(p, w->hs.len, &x, &payload, &used, err, sizeof(err));
	if (rc == 0)
		return 0;
	if (w->from_session) {
		FUZZ_ASSERT(rc == 1, "the session's handshake message does not parse: %s", err);
		/* A refusal is the last thing said; a challenge is followed by more. */
		if (w->sender == MGROK_ROLE_SERVER && x != MGROK_HS_STATUS_OK)
			w->over = x != MGROK_HS_STATUS_CHALLENGE;
		w->hs_done = w->sender == MGROK_ROLE_CLIENT || x == MGROK_HS_STATUS_OK;
		return used;
	}
	/* Ours: only "none, nothing to say" and "OK, nothing to add" open the
	 * session; after anything else the session reads no frames. */
	w->hs_done = rc == 1 && x == 0 && payload.len == 0;
	w->over = !w->hs_done;
	return rc == 1 ? used : w->hs.len;
}

void wire_feed(struct wire *w, const uint8_t *p, size_t len)
{
	if (!len || (!w->from_session && w->over))
		return;
	if (!w->hs_done) {
		FUZZ_ASSERT(!w->over || !len, "the session sent %zu bytes after refusing", len);
		mgrok_buf_append(&w->hs, p, len);
		size_t used;
		while (!w->hs_done && !w->over && w->hs.len && (used = handshake(w)) > 0)
			mgrok_buf_consume(&w->hs, used);
		if (!w->hs_done)
			return;
		/* The rest are frames. */
		struct mgrok_buf rest = w->hs;
		memset(&w->hs, 0, sizeof(w->hs));
		if (rest.len)
			wire_feed(w, mgrok_buf_head(&rest), rest.len);
		mgrok_buf_free(&rest);
		return;
	}
	int rc = mgrok_decoder_feed(&w->dec, p, len, on_frame, w);
	if (w->from_session)
		FUZZ_ASSERT(rc == 0, "the session sent a bad frame: %s", w->dec.err);
	else if (rc < 0)
		w->over = true; /* the session stops reading here too */
}
