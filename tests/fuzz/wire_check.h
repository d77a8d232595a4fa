/*
 * fuzz_session's view of the two byte streams of a session's connection:
 * what the harness writes to the session (read for the window credit it
 * grants and the streams it opens) and what the session writes back (which
 * must be well-formed and keep the rules of doc/protocol.md 2 and 3).
 */
#ifndef MGROK_FUZZ_WIRE_CHECK_H
#define MGROK_FUZZ_WIRE_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codec.h"

#define WIRE_TRACK 64 /* streams followed per session; later ones go unchecked */

struct wire_stream {
	uint32_t id;
	bool opened;    /* NEW_STREAM seen, from whichever side opens streams */
	bool closed;    /* the session sent CLOSE */
	bool reset;     /* the session sent RESET */
	uint64_t sent;  /* DATA bytes the session sent */
	uint64_t grant; /* WINDOW_UPDATE credit the harness sent */
};

/* Shared by the two directions of one connection. */
struct wire_streams {
	struct wire_stream v[WIRE_TRACK];
	unsigned n;
};

struct wire {
	bool from_session;      /* the session's output, else the harness's */
	enum mgrok_role sender; /* role of whoever writes these bytes */
	struct wire_streams *streams;
	struct mgrok_buf hs; /* handshake bytes not parsed yet */
	bool hs_done;        /* frames follow */
	bool over;           /* nothing more may come (session) or counts (harness) */
	struct mgrok_decoder dec;
};

void wire_init(struct wire *w, bool from_session, enum mgrok_role sender,
               struct wire_streams *streams);
/* Takes the next bytes of the direction; aborts on what the session may not send. */
void wire_feed(struct wire *w, const uint8_t *p, size_t len);
void wire_free(struct wire *w);

#endif
