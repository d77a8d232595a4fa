/*
 * A stream's byte plumbing: the local socket (visitor or local service) on
 * one side, DATA frames of the session on the other, with flow control,
 * half-close and back-pressure (doc/protocol.md 3.2, 3.3). The decisions
 * are stream_rules.c's; this file does the I/O they call for.
 *
 * The streams of a session share a struct mgrok_relay, which the session
 * embeds and drives through the mgrok_relay_* calls below. Streams reach
 * their session only through the mgrok_session_* calls of session.h.
 */
#ifndef MGROK_STREAM_H
#define MGROK_STREAM_H

#include <ev.h>
#include <stdbool.h>

#include "buf.h"
#include "codec.h"
#include "mux.h"
#include "stream_rules.h"

struct mgrok_session;
struct mgrok_proxy;
struct mgrok_visitor;

struct mgrok_stream {
	struct mgrok_mux_stream ms; /* first: the mux hands these back */
	struct mgrok_session *sess;
	struct mgrok_proxy *proxy;
	struct mgrok_stream *prev, *next; /* the relay's list */
	struct mgrok_stream *stall_next;
	struct mgrok_stream_flags f;
	bool datagram;    /* DATA goes to the proxy plugin, one datagram each (no fd) */
	uint8_t gathered; /* entries in the relay's gather list */
	void *dgram_arg;  /* the plugin's argument for on_datagram / on_stream_end */
	int fd;           /* -1 until attached */
	ev_io rio, wio;
	/* The peer's bytes not yet written to fd; allocated only while in flight. */
	struct mgrok_buf pending;
	size_t uncredited;       /* of pending, bytes that are not the peer's (a PROXY header) */
	struct mgrok_pp_out *pp; /* client: the PROXY header still to write, made on attach */
	struct mgrok_stream_filter *filter; /* server: a visitor a plugin filters, else NULL */
	/* A stream of another session this one is joined to, in place of a
	 * socket (a cluster's relayed visitor): the peer's bytes go out as
	 * that stream's DATA, its CLOSE as that stream's CLOSE, a reset of
	 * either resets both. */
	struct mgrok_stream *joined;
};

/* DATA payloads still in the session's read buffer, written per stream with
 * one writev at the end of the read. */
#define MGROK_GATHER_MAX 64
struct mgrok_gather {
	struct mgrok_stream *st; /* NULL once written or dropped */
	const uint8_t *p;
	size_t len;
};

/* What the streams of one session share. */
struct mgrok_relay {
	struct mgrok_stream *streams;     /* every open stream */
	struct mgrok_stream *stalled;     /* streams waiting for the session's output to drain */
	const uint8_t *feed_lo, *feed_hi; /* the read buffer being decoded, else NULL */
	struct mgrok_gather gather[MGROK_GATHER_MAX];
	unsigned ngather;
	struct mgrok_visitor *waiting; /* visitors through a balancer, before their stream */
	unsigned nwaiting;
};

/* The session is decoding frames from buf[0..len) (NULL: from the decoder's
 * own copy): DATA payloads in it may wait there until mgrok_relay_feed_end. */
void mgrok_relay_feed_begin(struct mgrok_relay *r, const uint8_t *buf, size_t len);
/* End of a read: the gathered payloads go to their sockets. */
void mgrok_relay_feed_end(struct mgrok_relay *r);
/* The session's output drained: streams that stalled on it read again. */
void mgrok_relay_resume_stalled(struct mgrok_relay *r);
/* Session teardown: every stream released, abortively. */
void mgrok_relay_destroy_all(struct mgrok_relay *r);

/* Host functions (struct mgrok_host). */
struct mgrok_stream *mgrok_stream_open_visitor(struct mgrok_proxy *px,
                                               const struct sockaddr *source, socklen_t source_len);
void mgrok_stream_attach_fd(struct mgrok_stream *st, int fd, int connecting);
/* Joins two streams of two sessions, neither attached to anything yet. */
void mgrok_stream_join(struct mgrok_stream *a, struct mgrok_stream *b);
void mgrok_stream_reset(struct mgrok_stream *st, uint8_t code);
void mgrok_stream_attach_datagram(struct mgrok_stream *st, void *arg);
int mgrok_stream_send(struct mgrok_stream *st, const void *data, size_t len);
void mgrok_stream_close(struct mgrok_stream *st);

/*
 * Client: the local end of st gets a PROXY protocol header (version 1 or 2)
 * from src (NULL: unknown) to dst before any of the peer's bytes: written
 * first on an fd; in front of the first datagram of a datagram stream,
 * where it is always version 2 (version 1 knows no UDP). Call before the
 * plugin's client_open.
 */
void mgrok_stream_proxy_header(struct mgrok_stream *st, int version, const struct sockaddr *src,
                               const struct sockaddr *dst);

/* Client: the peer opened stream id (already checked) for proxy px. */
struct mgrok_stream *mgrok_stream_accept(struct mgrok_session *s, uint32_t id,
                                         struct mgrok_proxy *px);

/* Frames for a stream, from the session's dispatch. Return 0, or -1 on a
 * protocol error (reason in the session's mux.err). */
int mgrok_stream_on_data(struct mgrok_stream *st, const uint8_t *p, size_t len);
int mgrok_stream_on_close(struct mgrok_stream *st);
int mgrok_stream_on_window(struct mgrok_stream *st, uint32_t increment);
void mgrok_stream_on_reset(struct mgrok_stream *st, uint8_t code);

/* For stream_filter.c: the visitor's side is over (CLOSE); returns true if
 * that ended the stream (destroyed). And: stop reading. */
bool mgrok_stream_read_eof(struct mgrok_stream *st);
void mgrok_stream_pause_read(struct mgrok_stream *st);

/* n DATA payload bytes st sent (sent) or received: the session's and the
 * proxy's counters (traffic.h). */
void mgrok_stream_count(struct mgrok_stream *st, size_t n, bool sent);

/* Releases a stream without telling the peer (peer RESET). */
void mgrok_stream_destroy(struct mgrok_stream *st, bool abortive);
/* RESET every stream of one proxy (UNREGISTER). */
void mgrok_stream_reset_proxy(struct mgrok_relay *r, struct mgrok_proxy *px, uint8_t code);

#endif
