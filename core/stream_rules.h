/*
 * The decisions of a stream's relay, without I/O: when its socket may be
 * read, and what comes once the peer's bytes are written out (pass the
 * peer's CLOSE on as a FIN, or end the stream). stream.c asks these after
 * every change; tests/unit/check_stream.c checks them case by case and
 * along whole half-close sequences. Credit (WINDOW_UPDATE) is the mux's
 * decision: mgrok_mux_consumed.
 */
#ifndef MGROK_STREAM_RULES_H
#define MGROK_STREAM_RULES_H

#include <stdbool.h>
#include <stddef.h>

#include "mux.h"

/* What stream.c knows of its side of a stream. */
struct mgrok_stream_flags {
	bool attached;   /* a socket is attached (not for datagram streams) */
	bool connecting; /* its connect() has not finished */
	bool stalled;    /* waiting for the session's output to drain */
	bool shut_wr;    /* the peer's CLOSE was passed on (or made moot) */
};

/* May the socket be read into DATA frames now? */
bool mgrok_stream_may_read(const struct mgrok_mux_stream *ms, const struct mgrok_stream_flags *f);

enum mgrok_stream_next {
	MGROK_STREAM_WAIT,    /* nothing to do yet */
	MGROK_STREAM_SHUT_WR, /* shutdown(SHUT_WR): the peer's CLOSE, after its last byte */
	MGROK_STREAM_DONE,    /* both ways closed, all delivered: close the socket (its
	                         close sends the FIN) and forget the stream */
};

/* What the stream's socket side needs next; pending is how many of the
 * peer's bytes still wait to be written to the socket. */
enum mgrok_stream_next mgrok_stream_next(const struct mgrok_mux_stream *ms,
                                         const struct mgrok_stream_flags *f, size_t pending);

#endif
