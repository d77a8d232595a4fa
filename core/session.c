#include "session.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "host.h"
#include "log.h"
#include "stream.h"
#include "tls.h"

static void finalize(struct mgrok_session *s);

bool mgrok_session_congested(const struct mgrok_session *s)
{
	return s->out.len >= MGROK_SESSION_OUT_HIGH || s->closing || s->peer_eof;
}

static void schedule_flush(struct mgrok_session *s)
{
	if (!ev_is_active(&s->flush) && !ev_is_active(&s->wio))
		ev_prepare_start(s->ctx->loop, &s->flush);
}

void mgrok_session_send(struct mgrok_session *s, const struct mgrok_frame *f)
{
	if (s->closing)
		return;
	if (mgrok_frame_encode(f, &s->out) < 0) {
		MGROK_ERROR("session %u: cannot encode %s frame", s->id,
		            mgrok_frame_type_name(f->type));
		return;
	}
	s->last_send = ev_now(s->ctx->loop);
	schedule_flush(s);
}

uint8_t *mgrok_session_reserve(struct mgrok_session *s, size_t len)
{
	mgrok_buf_reserve(&s->out, MGROK_DATA_HEADER + len);
	return mgrok_buf_tail(&s->out);
}

void mgrok_session_commit(struct mgrok_session *s, size_t len)
{
	s->out.len += len;
	s->last_send = ev_now(s->ctx->loop);
	schedule_flush(s);
}

/* Writes queued output. Returns -1 if the connection failed (session closed). */
static int flush_out(struct mgrok_session *s)
{
	while (s->out.len) {
		ssize_t n = mgrok_transport_write(&s->tr, mgrok_buf_head(&s->out), s->out.len);
		if (n > 0) {
			mgrok_buf_consume(&s->out, (size_t)n);
			continue;
		}
		if (n == MGROK_IO_AGAIN) {
			/* A TLS write waiting for input resumes from on_readable. */
			if (!s->tr.write_wants_read)
				ev_io_start(s->ctx->loop, &s->wio);
			return 0;
		}
		if (s->tr.cause == MGROK_IO_TLS_CERT)
			mgrok_session_close(s, -1, MGROK_CLOSE_TLS_CERT, "%s", s->tr.err);
		else if (s->peer_eof) /* it is gone after all */
			mgrok_session_close(s, -1, MGROK_CLOSE_LOST, "connection closed by peer");
		else
			mgrok_session_close(s, -1, MGROK_CLOSE_LOST, "%s%s",
			                    s->tr.cause == MGROK_IO_SOCKET ? "write failed: " : "",
			                    s->tr.err);
		return -1;
	}
	ev_io_stop(s->ctx->loop, &s->wio);
	/* A burst can grow the buffer large; an idle session should not keep it. */
	if (s->out.cap > 4 * MGROK_SESSION_OUT_HIGH)
		mgrok_buf_free(&s->out);
	return 0;
}

/* The peer does not take our output: stop taking its input, which is what
 * makes more. The decoder keeps the frames of the current read. */
static void pause_input(struct mgrok_session *s)
{
	ev_io_stop(s->ctx->loop, &s->rio);
	/* The flush goes by writability from now on: a pause inside the
	 * prepare phase (a resume's held frames) would otherwise leave the
	 * queue to the next poll, with nothing for that poll to wait on. */
	ev_io_start(s->ctx->loop, &s->wio);
	s->paused_since = ev_now(s->ctx->loop);
	s->refeed = true;
	MGROK_DEBUG("session %u: %zu bytes of output queued: not reading until the peer reads",
	            s->id, s->out.len);
}

static void resume_input(struct mgrok_session *s)
{
	s->paused_since = 0;
	ev_io_start(s->ctx->loop, &s->rio);
	/* The held frames have no readiness event of their own. */
	ev_feed_event(s->ctx->loop, &s->rio, EV_READ);
}

/* The peer sent its last byte. What we queued for it may still matter (the
 * replies to its last frames): it goes out first, then the session closes. */
static void peer_closed(struct mgrok_session *s)
{
	if (!s->out.len || !s->open) {
		mgrok_session_close(s, -1, MGROK_CLOSE_LOST, "connection closed by peer");
		return;
	}
	s->peer_eof = true;
	s->paused_since = ev_now(s->ctx->loop);
	ev_io_stop(s->ctx->loop, &s->rio);
	ev_io_start(s->ctx->loop, &s->wio);
}

static void after_flush(struct mgrok_session *s)
{
	if (s->peer_eof && !s->out.len) {
		mgrok_session_close(s, -1, MGROK_CLOSE_LOST, "connection closed by peer");
		return;
	}
	if (s->relay.stalled && s->out.len < MGROK_SESSION_OUT_LOW)
		mgrok_relay_resume_stalled(&s->relay);
	if (s->paused_since && !s->peer_eof && s->out.len < MGROK_SESSION_OUT_RESUME)
		resume_input(s);
}

static void on_prepare(struct ev_loop *loop, ev_prepare *w, int revents)
{
	struct mgrok_session *s = MGROK_CONTAINER_OF(w, struct mgrok_session, flush);
	ev_prepare_stop(loop, w);
	s->in_cb++;
	if (flush_out(s) == 0)
		after_flush(s);
	mgrok_session_leave(s);
}

static void read_input(struct mgrok_session *s);

static void on_writable(struct ev_loop *loop, ev_io *w, int revents)
{
	struct mgrok_session *s = MGROK_CONTAINER_OF(w, struct mgrok_session, wio);
	s->in_cb++;
	if (s->tr.read_wants_write) {
		ev_io_stop(loop, w);
		read_input(s);
	}
	if (!s->closing && flush_out(s) == 0)
		after_flush(s);
	mgrok_session_leave(s);
}

/* ---- frames in ------------------------------------------------------------ */

static int stream_frame(struct mgrok_session *s, const struct mgrok_frame *f)
{
	struct mgrok_stream *st = (struct mgrok_stream *)mgrok_mux_find(&s->mux, f->stream_id);
	if (!st) /* it may have crossed a RESET (doc/protocol.md 3.2) */
		return 0;
	switch (f->type) {
	case MGROK_FRAME_DATA: return mgrok_stream_on_data(st, f->u.data.p, f->u.data.len);
	case MGROK_FRAME_CLOSE: return mgrok_stream_on_close(st);
	case MGROK_FRAME_WINDOW_UPDATE: return mgrok_stream_on_window(st, f->u.increment);
	default: mgrok_stream_on_reset(st, f->u.reset_code); return 0;
	}
}

static int on_frame(void *arg, const struct mgrok_frame *f)
{
	struct mgrok_session *s = arg;
	int rc = 0;

	s->frames_in++;
	switch (f->type) {
	case MGROK_FRAME_DATA:
	case MGROK_FRAME_CLOSE:
	case MGROK_FRAME_WINDOW_UPDATE:
	case MGROK_FRAME_RESET:
		if (stream_frame(s, f) < 0)
			mgrok_session_close(s, MGROK_GOAWAY_PROTOCOL_ERROR, MGROK_CLOSE_LOST,
			                    "protocol error: %s", s->mux.err);
		break;
	case MGROK_FRAME_HEARTBEAT: break;
	case MGROK_FRAME_GO_AWAY:
		s->peer_goaway = f->u.go_away.code;
		mgrok_session_close(s, -1, MGROK_CLOSE_GOAWAY, "peer sent GO_AWAY code %u: %.*s",
		                    f->u.go_away.code, (int)f->u.go_away.message.len,
		                    (const char *)f->u.go_away.message.p);
		break;
	default: rc = s->ops->on_frame(s, f); break;
	}
	if (s->closing || rc < 0)
		return 1;
	return s->out.len >= MGROK_SESSION_OUT_MAX ? MGROK_DECODE_PAUSE : 0;
}

static void handshake_done(struct mgrok_session *s)
{
	s->open = true;
	s->opened_at = ev_now(s->ctx->loop);
	ev_timer_stop(s->ctx->loop, &s->hs_timer);
	mgrok_hs_end(&s->hs);
	s->ops->on_open(s);
}

/* What a server's first bytes are when they are no GRT1 handshake: worth a
 * clearer line than "bad magic". */
enum stranger { STRANGER_NONE, STRANGER_TLS, STRANGER_PROXY };

static enum stranger stranger_of(const uint8_t *p, size_t len)
{
	struct mgrok_pp pp;
	size_t used;
	char err[8];
	if (p[0] == 0x16) /* a TLS handshake record */
		return STRANGER_TLS;
	return mgrok_pp_parse(p, len, &pp, &used, err, sizeof(err)) >= 0 ? STRANGER_PROXY
	                                                                 : STRANGER_NONE;
}

static void handshake_failed(struct mgrok_session *s, enum stranger who)
{
	s->hs_failed = true;
	if (who == STRANGER_TLS)
		mgrok_session_close(s, -1, MGROK_CLOSE_DENIED,
		                    "a TLS client on this plaintext port (give the server a "
		                    "certificate, or turn tls off in the client)");
	else if (who == STRANGER_PROXY)
		mgrok_session_close(s, -1, MGROK_CLOSE_DENIED,
		                    "a PROXY protocol header from %s, which is not in "
		                    "proxy_protocol_from",
		                    s->peer);
	else
		mgrok_session_close(s, -1, MGROK_CLOSE_LOST, "handshake failed: %s", s->hs.reason);
}

/* The first frames may come in the same read as the handshake's end. */
static void feed_rest(struct mgrok_session *s)
{
	struct mgrok_buf rest = s->hs_in;
	memset(&s->hs_in, 0, sizeof(s->hs_in));
	int fed = mgrok_decoder_feed(&s->dec, mgrok_buf_head(&rest), rest.len, on_frame, s);
	if (fed < 0)
		mgrok_session_close(s, MGROK_GOAWAY_PROTOCOL_ERROR, MGROK_CLOSE_LOST,
		                    "protocol error: %s", s->dec.err);
	else if (fed == MGROK_DECODE_PAUSE)
		pause_input(s);
	mgrok_buf_free(&rest);
}

/* Handshake bytes; what follows the handshake goes to the frame decoder. */
static void feed_handshake(struct mgrok_session *s, const uint8_t *p, size_t len)
{
	enum stranger who =
	        s->role == MGROK_ROLE_SERVER && !s->hs_in.len ? stranger_of(p, len) : STRANGER_NONE;
	mgrok_buf_append(&s->hs_in, p, len);
	size_t used = 0;
	int rc = s->role == MGROK_ROLE_SERVER
	                 ? mgrok_hs_server_feed(&s->hs, mgrok_buf_head(&s->hs_in), s->hs_in.len,
	                                        &used, &s->out, s->find_auth, s->find_arg)
	                 : mgrok_hs_client_feed(&s->hs, mgrok_buf_head(&s->hs_in), s->hs_in.len,
	                                        &used, &s->out);
	mgrok_buf_consume(&s->hs_in, used);
	if (s->out.len)
		schedule_flush(s);
	switch (rc) {
	case MGROK_HS_MORE:
		if (s->hs_in.len > 2 * MGROK_HS_PAYLOAD_MAX)
			mgrok_session_close(s, -1, MGROK_CLOSE_LOST, "handshake too large");
		return;
	case MGROK_HS_DONE:
		handshake_done(s);
		if (!s->closing && s->hs_in.len)
			feed_rest(s);
		mgrok_buf_free(&s->hs_in);
		return;
	case MGROK_HS_DENIED:
		s->hs_failed = true;
		/* The server's DENIED reply is in out: push it before closing. */
		if (s->role == MGROK_ROLE_SERVER)
			flush_out(s);
		if (!s->closing)
			mgrok_session_close(s, -1, MGROK_CLOSE_DENIED, "%s", s->hs.reason);
		return;
	default: handshake_failed(s, who); return;
	}
}

/*
 * Server on a TLS port: the first byte tells a TLS client (a handshake
 * record, 0x16) from a plaintext GRT1 one, who is told so in its own
 * protocol. Returns false while the session cannot go on yet.
 */
static bool sniff_tls(struct mgrok_session *s)
{
	uint8_t first;
	ssize_t n = recv(s->tr.fd, &first, 1, MSG_PEEK);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return false;
	if (n <= 0) {
		mgrok_session_close(s, -1, MGROK_CLOSE_LOST, "%s",
		                    n == 0 ? "connection closed by peer" : strerror(errno));
		return false;
	}
	if (first != 0x16) {
		static const char why[] = "this server requires TLS: enable tls in the client";
		mgrok_hs_encode_reply(&s->out, MGROK_HS_STATUS_DENIED, why, sizeof(why) - 1);
		flush_out(s);
		mgrok_session_close(s, -1, MGROK_CLOSE_DENIED,
		                    "a plaintext client on the TLS port");
		return false;
	}
	char err[256];
	s->tr.ssl = mgrok_tls_wrap(s->tls_sniff, s->tr.fd, err, sizeof(err));
	s->tls_sniff = NULL;
	if (!s->tr.ssl) {
		mgrok_session_close(s, -1, MGROK_CLOSE_LOST, "%s", err);
		return false;
	}
	return true;
}

/*
 * Server, a connection from a balancer: its PROXY header comes first, even
 * before TLS, and is taken off the socket byte-exactly. Returns false while
 * the session cannot go on yet.
 */
static bool read_balancer_header(struct mgrok_session *s)
{
	struct mgrok_pp pp;
	char err[160];
	int rc = mgrok_balancer_read(s->tr.fd, &s->hs_in, &pp, err, sizeof(err));
	if (rc == 0)
		return false;
	mgrok_buf_free(&s->hs_in);
	if (rc < 0) {
		mgrok_session_close(s, -1, MGROK_CLOSE_DENIED, "from balancer %s: %s", s->peer,
		                    err);
		return false;
	}
	s->expect_pp = false;
	return !pp.proxied || s->ops->on_proxied(s, &pp);
}

/* rbuf is the shared read buffer: payloads gathered from it are written
 * before it is read into again. */
static void feed_frames(struct mgrok_session *s, const uint8_t *rbuf, size_t n)
{
	mgrok_relay_feed_begin(&s->relay, rbuf, n);
	int rc = mgrok_decoder_feed(&s->dec, rbuf, n, on_frame, s);
	mgrok_relay_feed_end(&s->relay);
	if (rc < 0)
		mgrok_session_close(s, MGROK_GOAWAY_PROTOCOL_ERROR, MGROK_CLOSE_LOST,
		                    "protocol error: %s", s->dec.err);
	else if (rc == MGROK_DECODE_PAUSE)
		pause_input(s);
}

/* A read returned 0 (the end) or an error. */
static void read_ended(struct mgrok_session *s, ssize_t n)
{
	if (n == 0 && s->dec.partial.len)
		mgrok_session_close(s, MGROK_GOAWAY_PROTOCOL_ERROR, MGROK_CLOSE_LOST,
		                    "protocol error: connection closed in the middle of a frame");
	else if (n == 0)
		peer_closed(s);
	else
		mgrok_session_close(s, -1,
		                    s->tr.cause == MGROK_IO_TLS_CERT ? MGROK_CLOSE_TLS_CERT
		                                                     : MGROK_CLOSE_LOST,
		                    "%s", s->tr.err);
}

static void read_input(struct mgrok_session *s)
{
	uint8_t *rbuf = s->ctx->read_buf;

	if (s->expect_pp && !read_balancer_header(s))
		return;
	if (s->tls_sniff && !sniff_tls(s))
		return;
	if (s->refeed) {
		s->refeed = false;
		feed_frames(s, NULL, 0);
	}
	/* Up to MGROK_READ_BUDGET per wakeup drains a busy connection without
	 * starving the other sessions and streams of this loop. */
	bool waiting = false; /* the transport needs more bytes from the socket */
	for (size_t budget = MGROK_READ_BUDGET; budget && !s->closing && !s->paused_since;) {
		/* A TLS read returns one record: collect several, so that frames
		 * are decoded (and written on) in place rather than reassembled. */
		size_t want = budget < MGROK_READ_CHUNK ? budget : MGROK_READ_CHUNK;
		size_t got = 0;
		ssize_t n;
		do {
			n = mgrok_transport_read(&s->tr, rbuf + got, want - got);
			if (n > 0)
				got += (size_t)n;
		} while (n > 0 && s->tr.ssl && got < want);
		budget -= got;
		if (got) {
			s->last_recv = ev_now(s->ctx->loop);
			if (!s->open)
				feed_handshake(s, rbuf, got);
			else
				feed_frames(s, rbuf, got);
			if (s->closing)
				break;
		}
		if (n > 0) {
			if (!s->tr.ssl && got < want)
				break;
			continue;
		}
		if (n == MGROK_IO_AGAIN) {
			waiting = true;
			if (s->tr.read_wants_write)
				ev_io_start(s->ctx->loop, &s->wio);
			break;
		}
		read_ended(s, n);
	}
	/* Records the TLS layer already holds get no readiness event of their
	 * own: come back for them, unless it is waiting for the rest of one
	 * (then the socket will say so, and feeding would spin). */
	if (!s->closing && !s->paused_since && !waiting && mgrok_transport_pending(&s->tr))
		ev_feed_event(s->ctx->loop, &s->rio, EV_READ);
}

static void on_readable(struct ev_loop *loop, ev_io *w, int revents)
{
	struct mgrok_session *s = MGROK_CONTAINER_OF(w, struct mgrok_session, rio);
	s->in_cb++;
	if (s->tr.write_wants_read && s->out.len && flush_out(s) == 0)
		after_flush(s);
	if (!s->closing)
		read_input(s);
	mgrok_session_leave(s);
}

/* ---- timers ---------------------------------------------------------------- */

/* After a pause of the whole process (a suspended VM, SIGSTOP), the timer
 * can fire before the read of what arrived meanwhile: that counts too. */
static bool bytes_waiting(const struct mgrok_session *s)
{
	uint8_t b;
	return recv(s->tr.fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) > 0;
}

static void on_beat(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct mgrok_session *s = MGROK_CONTAINER_OF(w, struct mgrok_session, beat);
	double now = ev_now(loop);
	s->in_cb++;
	for (int k = 0; k < MGROK_LOGK_COUNT; k++)
		mgrok_log_limit_tick(&s->loglim[k], s->id, now);
	if (s->peer_eof && now - s->paused_since >= s->hb_timeout) {
		mgrok_session_close(
		        s, -1, MGROK_CLOSE_LOST,
		        "connection closed by peer, %zu bytes for it not read in %.3g s",
		        s->out.len, now - s->paused_since);
	} else if (s->paused_since && now - s->paused_since >= s->hb_timeout) {
		/* Not reading, we cannot tell a live peer: its not reading is what counts. */
		MGROK_WARN("session %u: %s has not read %zu KiB of queued output for %.3g s: "
		           "closing it",
		           s->id, s->peer, s->out.len / 1024, now - s->paused_since);
		mgrok_session_close(s, MGROK_GOAWAY_HEARTBEAT_TIMEOUT, MGROK_CLOSE_LOST,
		                    "output not read for %.3g s", now - s->paused_since);
	} else if (!s->paused_since && now - s->last_recv >= s->hb_timeout && !bytes_waiting(s)) {
		mgrok_session_close(s, MGROK_GOAWAY_HEARTBEAT_TIMEOUT, MGROK_CLOSE_LOST,
		                    "nothing received for %.0f s", now - s->last_recv);
	} else if (s->open && now - s->last_send >= s->hb_interval) {
		struct mgrok_frame f = {.type = MGROK_FRAME_HEARTBEAT};
		mgrok_session_send(s, &f);
	}
	mgrok_session_leave(s);
}

static void on_hs_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct mgrok_session *s = MGROK_CONTAINER_OF(w, struct mgrok_session, hs_timer);
	s->in_cb++;
	s->hs_failed = true;
	mgrok_session_close(s, -1, MGROK_CLOSE_LOST, "handshake not finished in time");
	mgrok_session_leave(s);
}

/* ---- life cycle ------------------------------------------------------------ */

struct mgrok_session *mgrok_session_new(struct mgrok_ctx *ctx, int fd, enum mgrok_role role,
                                        struct mgrok_tls *tls, const struct mgrok_session_ops *ops,
                                        void *owner)
{
	struct mgrok_session *s = mgrok_xcalloc(1, sizeof(*s));
	s->ctx = ctx;
	s->id = ctx->next_session_id++;
	s->role = role;
	s->tr.fd = fd;
	if (tls && role == MGROK_ROLE_SERVER)
		s->tls_sniff = tls;
	else if (tls && !(s->tr.ssl = mgrok_tls_wrap(tls, fd, s->reason, sizeof(s->reason))))
		s->tls_failed = true;
	s->ops = ops;
	s->owner = owner;
	s->peer_goaway = -1;
	s->hb_interval = MGROK_DEFAULT_HEARTBEAT_INTERVAL;
	s->hb_timeout = MGROK_DEFAULT_HEARTBEAT_TIMEOUT;
	s->max_streams = MGROK_DEFAULT_MAX_STREAMS;
	s->last_recv = s->last_send = ev_now(s->ctx->loop);
	static const struct {
		const char *kind;
		unsigned burst;
	} limits[MGROK_LOGK_COUNT] = {
	        [MGROK_LOGK_REGISTER] = {"REGISTER refused, UNREGISTER unknown", 10},
	        [MGROK_LOGK_PROXIES] = {"proxies up and down", 128},
	        [MGROK_LOGK_VISITOR] = {"visitors refused", 5},
	        [MGROK_LOGK_FLOW] = {"windows overrun", 5},
	        [MGROK_LOGK_LOCAL] = {"local service unreachable", 5},
	        [MGROK_LOGK_UNKNOWN] = {"unknown proxy", 5},
	};
	for (int k = 0; k < MGROK_LOGK_COUNT; k++) {
		s->loglim[k].kind = limits[k].kind;
		s->loglim[k].burst = limits[k].burst;
	}
	strcpy(s->peer, "-");
	/* Frames arriving here were sent by the other role. */
	mgrok_decoder_init(&s->dec,
	                   role == MGROK_ROLE_SERVER ? MGROK_ROLE_CLIENT : MGROK_ROLE_SERVER);
	mgrok_mux_init(&s->mux, ctx->autotune);
	ev_io_init(&s->rio, on_readable, fd, EV_READ);
	ev_io_init(&s->wio, on_writable, fd, EV_WRITE);
	ev_prepare_init(&s->flush, on_prepare);
	ev_timer_init(&s->beat, on_beat, 1., 1.);
	ev_timer_init(&s->hs_timer, on_hs_timeout, MGROK_DEFAULT_HANDSHAKE_TIMEOUT, 0.);
	return s;
}

static void start_io(struct mgrok_session *s)
{
	/* Checking at a quarter of the interval keeps a late heartbeat late by
	 * at most that much. */
	double tick = s->hb_interval < s->hb_timeout ? s->hb_interval : s->hb_timeout;
	ev_timer_set(&s->beat, tick / 4, tick / 4);
	ev_timer_start(s->ctx->loop, &s->beat);
	ev_io_start(s->ctx->loop, &s->rio);
}

void mgrok_session_start_server(struct mgrok_session *s, double handshake_timeout,
                                mgrok_auth_find_fn find, void *find_arg)
{
	s->find_auth = find;
	s->find_arg = find_arg;
	mgrok_hs_server_init(&s->hs);
	ev_timer_set(&s->hs_timer, handshake_timeout, 0.);
	ev_timer_start(s->ctx->loop, &s->hs_timer);
	start_io(s);
}

void mgrok_session_start_client(struct mgrok_session *s, const struct mgrok_auth_method *m)
{
	start_io(s);
	if (s->tls_failed) {
		mgrok_session_close(s, -1, MGROK_CLOSE_LOST, "%s", s->reason);
		return;
	}
	if (mgrok_hs_client_start(&s->hs, m, &s->out) != MGROK_HS_MORE) {
		mgrok_session_close(s, -1, MGROK_CLOSE_LOST, "auth method '%s': %s", m->name,
		                    s->hs.reason);
		return;
	}
	schedule_flush(s);
}

void mgrok_session_close(struct mgrok_session *s, int goaway, enum mgrok_close_why why,
                         const char *fmt, ...)
{
	if (s->closing)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(s->reason, sizeof(s->reason), fmt, ap);
	va_end(ap);
	s->why = why;
	bool goodbye = goaway >= 0 && s->open;
	if (goodbye) {
		struct mgrok_frame f = {.type = MGROK_FRAME_GO_AWAY};
		f.u.go_away.code = (uint8_t)goaway;
		f.u.go_away.message.p = (const uint8_t *)s->reason;
		f.u.go_away.message.len = strnlen(s->reason, MGROK_MESSAGE_MAX);
		mgrok_session_send(s, &f);
	}
	/* Before the flush: a write that fails there must not close (and
	 * free) the session a second time under us. */
	s->closing = true;
	if (goodbye)
		flush_out(s); /* one non-blocking attempt: a peer that does not read gets no more */
	if (!s->in_cb)
		finalize(s);
}

void mgrok_session_leave(struct mgrok_session *s)
{
	if (--s->in_cb == 0 && s->closing)
		finalize(s);
}

static void finalize(struct mgrok_session *s)
{
	ev_io_stop(s->ctx->loop, &s->rio);
	ev_io_stop(s->ctx->loop, &s->wio);
	ev_prepare_stop(s->ctx->loop, &s->flush);
	ev_timer_stop(s->ctx->loop, &s->beat);
	ev_timer_stop(s->ctx->loop, &s->hs_timer);
	mgrok_relay_destroy_all(&s->relay);
	mgrok_hs_end(&s->hs);
	mgrok_transport_close(&s->tr);
	for (int k = 0; k < MGROK_LOGK_COUNT; k++)
		mgrok_log_limit_flush(&s->loglim[k], s->id, ev_now(s->ctx->loop));
	/* The owner still sees a whole session (proxies, ids) in on_close. */
	s->in_cb++;
	s->ops->on_close(s, s->why, s->reason);
	mgrok_decoder_free(&s->dec);
	mgrok_mux_free(&s->mux);
	mgrok_buf_free(&s->out);
	mgrok_buf_free(&s->hs_in);
	free(s);
}
