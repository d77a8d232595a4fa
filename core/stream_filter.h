/*
 * Visitors a plugin filters (ABI 1.4, host->visitor_attach with an arg):
 * the visitor's bytes go through the plugin's on_visitor_data, and what it
 * emits goes out as DATA as the window allows. The plugin also hears when
 * the peer's side ends (to answer the visitor with a page of its own) and
 * when the stream is gone. stream.c calls these at the points named; a
 * stream without a filter never gets here, so plain relays pay nothing.
 */
#ifndef MGROK_STREAM_FILTER_H
#define MGROK_STREAM_FILTER_H

#include <stdbool.h>
#include <sys/socket.h>

#include "buf.h"

struct mgrok_stream;
struct mgrok_proxy;

struct mgrok_stream_filter {
	void *arg;            /* the plugin's */
	struct mgrok_buf out; /* emitted, waiting for window or for the session's output */
	bool ended;           /* the visitor's side is over: CLOSE once out is sent */
	bool peer_told;       /* on_peer_end was called */
};

/* Host visitor_attach and stream_emit. */
int mgrok_visitor_attach(struct mgrok_proxy *px, int fd, const struct sockaddr *source,
                         socklen_t source_len, const void *first, size_t first_len, void *arg);
void mgrok_stream_emit(struct mgrok_stream *st, const void *data, size_t len);

/* The visitor is readable (in place of read_frames). */
void mgrok_filter_read(struct mgrok_stream *st);
/* Window or session output came back: send what waits. Returns -1 when
 * that ended the stream (destroyed), else 0. */
int mgrok_filter_flush(struct mgrok_stream *st);
/* The peer's side ended (code 0: CLOSE, all written; else its RESET code).
 * Returns whether the plugin wrote to the visitor (close it gently). */
bool mgrok_filter_peer_end(struct mgrok_stream *st, int code);
/* The stream is being destroyed: the plugin releases its arg. Unless
 * abortive, what the visitor sent and nobody read is drained first: a close
 * with unread bytes would send an RST, and the visitor could lose the
 * answer it has not read yet. */
void mgrok_filter_free(struct mgrok_stream *st, bool abortive);

#endif
