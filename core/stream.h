/*
 * A stream's byte plumbing: the local socket (visitor or local service) on
 * one side, DATA frames of the session on the other, with flow control,
 * half-close and back-pressure (PROTOCOL.md 3.2, 3.3).
 */
#ifndef MGROK_STREAM_H
#define MGROK_STREAM_H

#include <ev.h>
#include <stdbool.h>

#include "buf.h"
#include "codec.h"
#include "mux.h"

struct mgrok_session;
struct mgrok_proxy;

struct mgrok_stream {
	struct mgrok_mux_stream ms; /* first: the mux hands these back */
	struct mgrok_session *sess;
	struct mgrok_proxy *proxy;
	struct mgrok_stream *prev, *next; /* the session's list */
	struct mgrok_stream *stall_next;
	bool stalled;    /* on the session's stalled list */
	bool connecting; /* fd's connect() has not finished */
	bool shut_wr;    /* shutdown(SHUT_WR) done after the peer's CLOSE */
	bool datagram;   /* DATA goes to the proxy plugin, one datagram each (no fd) */
	uint8_t gathered; /* entries in the session's gather list */
	void *dgram_arg; /* the plugin's argument for on_datagram / on_stream_end */
	int fd;          /* -1 until attached */
	ev_io rio, wio;
	struct mgrok_buf pending; /* the peer's bytes not yet written to fd; allocated only while in flight */
};

/* Host functions (struct mgrok_host). */
struct mgrok_stream *mgrok_stream_open_visitor(struct mgrok_proxy *px, const struct sockaddr *source,
                                               socklen_t source_len);
void mgrok_stream_attach_fd(struct mgrok_stream *st, int fd, int connecting);
void mgrok_stream_reset(struct mgrok_stream *st, uint8_t code);
void mgrok_stream_attach_datagram(struct mgrok_stream *st, void *arg);
int mgrok_stream_send(struct mgrok_stream *st, const void *data, size_t len);
void mgrok_stream_close(struct mgrok_stream *st);

/* Client: the peer opened stream id (already checked) for proxy px. */
struct mgrok_stream *mgrok_stream_accept(struct mgrok_session *s, uint32_t id,
                                         struct mgrok_proxy *px);

/* Frames for a stream, from the session's dispatch. Return 0, or -1 on a
 * protocol error (reason in s->mux.err). */
int mgrok_stream_on_data(struct mgrok_stream *st, const uint8_t *p, size_t len);
int mgrok_stream_on_close(struct mgrok_stream *st);
int mgrok_stream_on_window(struct mgrok_stream *st, uint32_t increment);
void mgrok_stream_on_reset(struct mgrok_stream *st, uint8_t code);

/* Releases a stream without telling the peer (session teardown, peer RESET). */
void mgrok_stream_destroy(struct mgrok_stream *st, bool abortive);
/* End of a read: the gathered payloads go to their sockets. */
void mgrok_stream_flush_gathered(struct mgrok_session *s);
/* The session's output drained: streams that stalled on it read again. */
void mgrok_stream_resume_stalled(struct mgrok_session *s);
/* RESET every stream of one proxy (UNREGISTER). */
void mgrok_stream_reset_proxy(struct mgrok_session *s, struct mgrok_proxy *px, uint8_t code);

#endif
