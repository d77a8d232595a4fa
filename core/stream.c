#include "stream.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "addr.h"
#include "balancer.h"
#include "defaults.h"
#include "stream_filter.h"
#include "host.h"
#include "group.h"
#include "log.h"
#include "proxy.h"
#include "proxyproto.h"
#include "session.h"

static void on_readable(struct ev_loop *loop, ev_io *w, int revents);
static void on_writable(struct ev_loop *loop, ev_io *w, int revents);

static struct ev_loop *loop_of(const struct mgrok_stream *st) { return st->sess->ctx->loop; }

static const char *proxy_name(const struct mgrok_stream *st)
{
	return st->proxy ? st->proxy->name : "-";
}

static struct mgrok_relay *relay_of(const struct mgrok_stream *st) { return &st->sess->relay; }

static struct mgrok_stream *stream_new(struct mgrok_session *s, uint32_t id, struct mgrok_proxy *px)
{
	struct mgrok_relay *r = &s->relay;
	struct mgrok_stream *st = mgrok_xcalloc(1, sizeof(*st));
	st->sess = s;
	st->proxy = px;
	st->fd = -1;
	mgrok_mux_insert(&s->mux, &st->ms, id);
	st->next = r->streams;
	if (r->streams)
		r->streams->prev = st;
	r->streams = st;
	if (px) {
		px->nstreams++;
		if (px->traffic) {
			px->traffic->streams_opened++;
			px->traffic->streams_open++;
		}
	}
	return st;
}

void mgrok_stream_count(struct mgrok_stream *st, size_t n, bool sent)
{
	struct mgrok_session *s = st->sess;
	struct mgrok_traffic *t = st->proxy ? st->proxy->traffic : NULL;
	/* The server sends what visitors send; the client, what the service does. */
	if (sent == (s->role == MGROK_ROLE_SERVER)) {
		s->bytes_in += n;
		if (t)
			t->bytes_in += n;
	} else {
		s->bytes_out += n;
		if (t)
			t->bytes_out += n;
	}
}

static void unstall(struct mgrok_stream *st)
{
	struct mgrok_stream **pp = &relay_of(st)->stalled;
	while (*pp && *pp != st)
		pp = &(*pp)->stall_next;
	if (*pp)
		*pp = st->stall_next;
	st->stall_next = NULL;
	st->f.stalled = false;
}

/* The plugin's datagram hooks, when it has both. */
static const struct mgrok_proxy_ops *datagram_ops(const struct mgrok_stream *st)
{
	const struct mgrok_plugin *p = st->proxy ? st->proxy->plugin : NULL;
	return p && MGROK_PLUGIN_OP(p, proxy, on_datagram) &&
	                       MGROK_PLUGIN_OP(p, proxy, on_stream_end)
	               ? p->desc->proxy
	               : NULL;
}

/* Gathered payloads of a stream that ends with them are not written. */
static void drop_gathered(struct mgrok_stream *st)
{
	struct mgrok_relay *r = relay_of(st);
	for (unsigned i = 0; st->gathered && i < r->ngather; i++) {
		if (r->gather[i].st == st) {
			r->gather[i].st = NULL;
			st->gathered--;
		}
	}
}

/*
 * st goes: its partner is reset with it, or, at a clean end, hears it as
 * its CLOSE if that is still owed (as a socket's close sends a FIN). The
 * partner's session is another one, maybe not in a callback of its own:
 * what it sends here is flushed all the same (in_cb).
 */
static void unjoin(struct mgrok_stream *st, bool abortive)
{
	struct mgrok_stream *other = st->joined;
	struct mgrok_session *os = other->sess;
	other->joined = st->joined = NULL;
	os->in_cb++;
	if (abortive)
		mgrok_stream_reset(other, MGROK_RESET_CANCEL);
	else if (!(other->ms.state & MGROK_MUX_SENT_CLOSE))
		mgrok_stream_read_eof(other);
	mgrok_session_leave(os);
}

void mgrok_stream_destroy(struct mgrok_stream *st, bool abortive)
{
	struct mgrok_session *s = st->sess;
	struct mgrok_relay *r = relay_of(st);
	if (st->f.stalled)
		unstall(st);
	if (st->gathered)
		drop_gathered(st);
	ev_io_stop(loop_of(st), &st->rio);
	ev_io_stop(loop_of(st), &st->wio);
	mgrok_mux_remove(&s->mux, &st->ms);
	if (st->prev)
		st->prev->next = st->next;
	else
		r->streams = st->next;
	if (st->next)
		st->next->prev = st->prev;
	if (st->filter)
		mgrok_filter_free(st, abortive);
	if (st->joined)
		unjoin(st, abortive);
	if (st->fd >= 0) {
		if (abortive) {
			/* An RST tells the visitor or service the stream failed,
			 * where a FIN would look like a clean end. */
			struct linger lg = {.l_onoff = 1, .l_linger = 0};
			setsockopt(st->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		}
		close(st->fd);
	}
	if (st->datagram)
		datagram_ops(st)->on_stream_end(st->proxy->plugin->inst, st->dgram_arg);
	if (st->proxy) {
		st->proxy->nstreams--;
		if (st->proxy->traffic)
			st->proxy->traffic->streams_open--;
	}
	MGROK_DEBUG("session %u proxy %s stream %u: closed%s", s->id, proxy_name(st), st->ms.id,
	            abortive ? " (reset)" : "");
	mgrok_buf_free(&st->pending);
	free(st->pp);
	free(st);
}

void mgrok_stream_reset(struct mgrok_stream *st, uint8_t code)
{
	struct mgrok_frame f = {.type = MGROK_FRAME_RESET, .stream_id = st->ms.id};
	f.u.reset_code = code;
	mgrok_session_send(st->sess, &f);
	mgrok_stream_destroy(st, true);
}

static void push_joined(struct mgrok_stream *from, const uint8_t *p, size_t len);

static void update_read(struct mgrok_stream *st)
{
	if (st->joined) { /* our window or session has room: the partner's bytes may go */
		push_joined(st->joined, NULL, 0);
		return;
	}
	if (mgrok_stream_may_read(&st->ms, &st->f))
		ev_io_start(loop_of(st), &st->rio);
	else
		ev_io_stop(loop_of(st), &st->rio);
}

/* Once the peer's bytes are out: pass its CLOSE on as a FIN, or end the
 * stream. Returns true if the stream was destroyed. */
static bool advance(struct mgrok_stream *st)
{
	enum mgrok_stream_next next = mgrok_stream_next(&st->ms, &st->f, st->pending.len);
	if (next != MGROK_STREAM_WAIT && st->filter && (st->ms.state & MGROK_MUX_GOT_CLOSE))
		mgrok_filter_peer_end(st, 0);
	switch (next) {
	case MGROK_STREAM_SHUT_WR:
		st->f.shut_wr = true;
		if (st->joined) /* the partner's peer hears the end as its CLOSE */
		{
			mgrok_stream_read_eof(st->joined);
			return false;
		}
		shutdown(st->fd, SHUT_WR);
		return false;
	case MGROK_STREAM_DONE: mgrok_stream_destroy(st, false); return true;
	default: return false;
	}
}

static void send_credit(struct mgrok_stream *st, size_t written)
{
	/* A PROXY header we put in front is no byte of the peer's. */
	size_t ours = written < st->uncredited ? written : st->uncredited;
	st->uncredited -= ours;
	written -= ours;
	if (!written)
		return;
	uint32_t inc = mgrok_mux_consumed(&st->sess->mux, &st->ms, written);
	if (!inc)
		return;
	struct mgrok_frame f = {.type = MGROK_FRAME_WINDOW_UPDATE, .stream_id = st->ms.id};
	f.u.increment = inc;
	mgrok_session_send(st->sess, &f);
}

/*
 * Writes pending bytes to the fd. Returns -1 if the stream was destroyed.
 */
static int drain_pending(struct mgrok_stream *st)
{
	size_t written = 0;
	while (st->pending.len) {
		ssize_t n = write(st->fd, mgrok_buf_head(&st->pending), st->pending.len);
		if (n > 0) {
			mgrok_buf_consume(&st->pending, (size_t)n);
			written += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		MGROK_DEBUG("session %u proxy %s stream %u: write: %s", st->sess->id,
		            proxy_name(st), st->ms.id, strerror(errno));
		mgrok_stream_reset(st, MGROK_RESET_CANCEL);
		return -1;
	}
	if (written)
		send_credit(st, written);
	if (st->pending.len) {
		ev_io_start(loop_of(st), &st->wio);
		return 0;
	}
	ev_io_stop(loop_of(st), &st->wio);
	/* Idle streams hold no buffer. */
	mgrok_buf_free(&st->pending);
	return advance(st) ? -1 : 0;
}

static bool can_write_now(const struct mgrok_stream *st)
{
	return st->f.attached && !st->f.connecting && !st->pending.len;
}

/*
 * Writes the peer's bytes to the socket with one writev; what it does not
 * take waits in pending. Returns -1 if the stream was reset.
 */
static int write_iov(struct mgrok_stream *st, const struct iovec *iov, int n)
{
	size_t total = 0;
	for (int i = 0; i < n; i++)
		total += iov[i].iov_len;
	ssize_t w;
	do
		w = writev(st->fd, iov, n);
	while (w < 0 && errno == EINTR);
	if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
		MGROK_DEBUG("session %u proxy %s stream %u: write: %s", st->sess->id,
		            proxy_name(st), st->ms.id, strerror(errno));
		mgrok_stream_reset(st, MGROK_RESET_CANCEL);
		return -1;
	}
	size_t done = w > 0 ? (size_t)w : 0;
	if (done)
		send_credit(st, done);
	if (done == total)
		return 0;
	for (int i = 0; i < n; i++) {
		if (done >= iov[i].iov_len) {
			done -= iov[i].iov_len;
			continue;
		}
		/* Bounded by the window we granted. */
		mgrok_buf_append(&st->pending, (const uint8_t *)iov[i].iov_base + done,
		                 iov[i].iov_len - done);
		done = 0;
	}
	ev_io_start(loop_of(st), &st->wio);
	return 0;
}

/* Writes st's gathered payloads, in order. Returns -1 if st was reset. */
static int write_gathered(struct mgrok_stream *st)
{
	struct mgrok_relay *r = relay_of(st);
	struct iovec iov[MGROK_GATHER_MAX];
	int n = 0;
	for (unsigned i = 0; i < r->ngather && st->gathered; i++) {
		struct mgrok_gather *g = &r->gather[i];
		if (g->st != st)
			continue;
		iov[n].iov_base = (void *)g->p;
		iov[n++].iov_len = g->len;
		g->st = NULL;
		st->gathered--;
	}
	return write_iov(st, iov, n);
}

void mgrok_relay_feed_begin(struct mgrok_relay *r, const uint8_t *buf, size_t len)
{
	r->feed_lo = buf;
	r->feed_hi = buf ? buf + len : NULL;
}

void mgrok_relay_feed_end(struct mgrok_relay *r)
{
	r->feed_lo = r->feed_hi = NULL;
	for (unsigned i = 0; i < r->ngather; i++)
		if (r->gather[i].st)
			write_gathered(r->gather[i].st);
	r->ngather = 0;
}

/*
 * A payload still in the session's read buffer waits there for the end of
 * the read: consecutive frames of a stream then cost the reader one wakeup
 * instead of one each. Frames completed in the decoder's own buffer do not
 * live that long and are written at once.
 */
static bool gather(struct mgrok_stream *st, const uint8_t *p, size_t len)
{
	struct mgrok_relay *r = relay_of(st);
	if (!r->feed_lo || p < r->feed_lo || p + len > r->feed_hi || r->ngather == MGROK_GATHER_MAX)
		return false;
	r->gather[r->ngather++] = (struct mgrok_gather){st, p, len};
	st->gathered++;
	return true;
}

/* ---- the PROXY protocol header for the local end (client) ---------------- */

struct mgrok_pp_out {
	int version;
	bool has_src;
	struct sockaddr_storage src, dst;
};

void mgrok_stream_proxy_header(struct mgrok_stream *st, int version, const struct sockaddr *src,
                               const struct sockaddr *dst)
{
	st->pp = mgrok_xcalloc(1, sizeof(*st->pp));
	st->pp->version = version;
	st->pp->has_src = src != NULL;
	if (src)
		memcpy(&st->pp->src, src,
		       src->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
		                                  : sizeof(struct sockaddr_in));
	memcpy(&st->pp->dst, dst,
	       dst->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
	                                  : sizeof(struct sockaddr_in));
}

static size_t encode_pp(struct mgrok_stream *st, bool dgram, uint8_t *out, size_t cap)
{
	const struct mgrok_pp_out *pp = st->pp;
	size_t n = mgrok_pp_encode(dgram ? 2 : pp->version,
	                           pp->has_src ? (const struct sockaddr *)&pp->src : NULL,
	                           (const struct sockaddr *)&pp->dst, dgram, out, cap);
	free(st->pp);
	st->pp = NULL;
	return n;
}

/* On an fd: the header goes first, ahead of anything the peer sent. */
static void put_pp_header(struct mgrok_stream *st)
{
	uint8_t h[MGROK_PP_ENCODED_MAX];
	size_t n = encode_pp(st, false, h, sizeof(h));
	struct mgrok_buf b = {0};
	mgrok_buf_append(&b, h, n);
	mgrok_buf_append(&b, mgrok_buf_head(&st->pending), st->pending.len);
	mgrok_buf_free(&st->pending);
	st->pending = b;
	st->uncredited += n;
}

/* A datagram stream's first datagram carries the header in front. One too
 * big for a header beside it (up to 65507 bytes) comes after a datagram of
 * the header alone, so the service still learns the visitor first. */
static void first_datagram(struct mgrok_stream *st, const uint8_t *p, size_t len)
{
	const struct mgrok_proxy_ops *ops = datagram_ops(st);
	uint8_t h[MGROK_PP_ENCODED_MAX];
	size_t n = encode_pp(st, true, h, sizeof(h));
	if (n + len > MGROK_UDP_PAYLOAD_MAX) {
		ops->on_datagram(st->proxy->plugin->inst, st->dgram_arg, h, n);
		ops->on_datagram(st->proxy->plugin->inst, st->dgram_arg, p, len);
		return;
	}
	struct mgrok_buf b = {0};
	mgrok_buf_append(&b, h, n);
	mgrok_buf_append(&b, p, len);
	ops->on_datagram(st->proxy->plugin->inst, st->dgram_arg, mgrok_buf_head(&b), b.len);
	mgrok_buf_free(&b);
}

int mgrok_stream_on_data(struct mgrok_stream *st, const uint8_t *p, size_t len)
{
	struct mgrok_session *s = st->sess;
	int v = mgrok_mux_recv_data(&s->mux, &st->ms, len, ev_now(loop_of(st)));
	if (v == MGROK_MUX_PROTOCOL)
		return -1;
	if (v == MGROK_MUX_RESET_FLOW) {
		MGROK_SESSION_LOG(s, MGROK_LOGK_FLOW, MGROK_LOG_WARN, "session %u proxy %s: %s",
		                  s->id, proxy_name(st), s->mux.err);
		mgrok_stream_reset(st, MGROK_RESET_FLOW_CONTROL);
		return 0;
	}
	mgrok_stream_count(st, len, false);
	if (st->datagram) {
		/* Delivered at once: the credit goes back before the plugin,
		 * which may end the stream, sees the datagram. */
		send_credit(st, len);
		if (st->pp) {
			first_datagram(st, p, len);
			return 0;
		}
		datagram_ops(st)->on_datagram(st->proxy->plugin->inst, st->dgram_arg, p, len);
		return 0;
	}
	if (!len)
		return 0;
	if (st->joined) {
		push_joined(st, p, len);
		return 0;
	}
	if (can_write_now(st) && gather(st, p, len))
		return 0;
	if (st->gathered && write_gathered(st) < 0)
		return 0;
	if (can_write_now(st)) {
		struct iovec iov = {(void *)p, len};
		write_iov(st, &iov, 1);
		return 0;
	}
	/* Bounded by the window we granted. */
	mgrok_buf_append(&st->pending, p, len);
	return 0;
}

int mgrok_stream_on_close(struct mgrok_stream *st)
{
	if (mgrok_mux_recv_close(&st->sess->mux, &st->ms) < 0)
		return -1;
	if (st->gathered && write_gathered(st) < 0)
		return 0;
	if (st->datagram) {
		/* UDP has no half-close: a CLOSE ends the flow, answered in kind (doc/protocol.md 5). */
		mgrok_stream_close(st);
		return 0;
	}
	advance(st);
	return 0;
}

int mgrok_stream_on_window(struct mgrok_stream *st, uint32_t increment)
{
	if (mgrok_mux_recv_window(&st->sess->mux, &st->ms, increment) < 0)
		return -1;
	if (st->filter && mgrok_filter_flush(st) < 0)
		return 0;
	update_read(st);
	return 0;
}

void mgrok_stream_on_reset(struct mgrok_stream *st, uint8_t code)
{
	MGROK_DEBUG("session %u proxy %s stream %u: peer reset (code %u)", st->sess->id,
	            proxy_name(st), st->ms.id, code);
	/* A filtering plugin may answer the visitor (a 502 page): then a FIN. */
	bool answered = st->filter && mgrok_filter_peer_end(st, code);
	mgrok_stream_destroy(st, !answered);
}

static void stall(struct mgrok_stream *st)
{
	struct mgrok_relay *r = relay_of(st);
	ev_io_stop(loop_of(st), &st->rio);
	st->f.stalled = true;
	st->stall_next = r->stalled;
	r->stalled = st;
}

/* Up to len bytes of p out as DATA of from's partner, as far as its window
 * and session take them; returns how many went. */
static size_t forward(struct mgrok_stream *from, const uint8_t *p, size_t len)
{
	struct mgrok_stream *to = from->joined;
	size_t sent = 0;
	while (sent < len && to->ms.send_window && !(to->ms.state & MGROK_MUX_SENT_CLOSE)) {
		if (mgrok_session_congested(to->sess)) {
			if (!to->f.stalled)
				stall(to);
			break;
		}
		size_t k = len - sent;
		if (k > to->ms.send_window)
			k = to->ms.send_window;
		if (k > MGROK_DATA_MAX)
			k = MGROK_DATA_MAX;
		uint8_t *frame = mgrok_session_reserve(to->sess, k);
		memcpy(frame + MGROK_DATA_HEADER, p + sent, k);
		mgrok_frame_data_header(frame, to->ms.id, (uint16_t)k);
		mgrok_session_commit(to->sess, MGROK_DATA_HEADER + k);
		mgrok_mux_sent_data(&to->ms, k);
		mgrok_stream_count(to, k, true);
		sent += k;
	}
	return sent;
}

/*
 * A joined stream's peer bytes -- what waits in from->pending, then p --
 * out as DATA of its partner; what does not go waits (bounded by the
 * window we granted). The peer is credited for what went, so back-pressure
 * crosses the join. Then, all out, what the peer's CLOSE calls for.
 */
static void push_joined(struct mgrok_stream *from, const uint8_t *p, size_t len)
{
	struct mgrok_session *fs = from->sess, *ts = from->joined ? from->joined->sess : NULL;
	if (!ts)
		return;
	/* Either session may not be in a callback of its own now. */
	fs->in_cb++;
	ts->in_cb++;
	size_t sent = 0;
	if (from->pending.len) {
		size_t n = forward(from, mgrok_buf_head(&from->pending), from->pending.len);
		mgrok_buf_consume(&from->pending, n);
		sent += n;
	}
	if (len && !from->pending.len) {
		size_t n = forward(from, p, len);
		p += n;
		len -= n;
		sent += n;
	}
	if (len)
		mgrok_buf_append(&from->pending, p, len);
	if (sent)
		send_credit(from, sent);
	if (!from->pending.len) {
		mgrok_buf_free(&from->pending);
		advance(from);
	}
	mgrok_session_leave(ts);
	mgrok_session_leave(fs);
}

void mgrok_stream_join(struct mgrok_stream *a, struct mgrok_stream *b)
{
	a->joined = b;
	b->joined = a;
	a->f.attached = b->f.attached = true;
}

void mgrok_relay_resume_stalled(struct mgrok_relay *r)
{
	struct mgrok_stream *st = r->stalled;
	r->stalled = NULL;
	while (st) {
		struct mgrok_stream *next = st->stall_next;
		st->stall_next = NULL;
		st->f.stalled = false;
		if (!st->filter || mgrok_filter_flush(st) == 0)
			update_read(st);
		st = next;
	}
}

void mgrok_stream_pause_read(struct mgrok_stream *st) { ev_io_stop(loop_of(st), &st->rio); }

bool mgrok_stream_read_eof(struct mgrok_stream *st)
{
	struct mgrok_frame f = {.type = MGROK_FRAME_CLOSE, .stream_id = st->ms.id};
	mgrok_session_send(st->sess, &f);
	mgrok_mux_sent_close(&st->ms);
	ev_io_stop(loop_of(st), &st->rio);
	return advance(st);
}

/* One readv fills up to this many DATA frames in place: a bulk stream costs
 * one read(2) per 256 KiB, and every other stream still gets its turn. */
#define FRAMES_PER_READ 4

static void read_frames(struct mgrok_stream *st)
{
	struct mgrok_session *s = st->sess;
	size_t window = st->ms.send_window;
	if (st->filter) {
		mgrok_filter_read(st);
		return;
	}
	if (!window) {
		ev_io_stop(loop_of(st), &st->rio);
		return;
	}
	struct iovec iov[FRAMES_PER_READ];
	size_t want = 0;
	int k = 0;
	while (k < FRAMES_PER_READ && want < window) {
		size_t len = window - want < MGROK_DATA_MAX ? window - want : MGROK_DATA_MAX;
		iov[k++].iov_len = len;
		want += len;
	}
	/* Every slot but the last is a full frame, and readv fills each slot
	 * before the next: the frames come out back to back. */
	uint8_t *frames = mgrok_session_reserve(s, want + (size_t)(k - 1) * MGROK_DATA_HEADER);
	for (int i = 0; i < k; i++)
		iov[i].iov_base = frames + (size_t)i * (MGROK_DATA_HEADER + MGROK_DATA_MAX) +
		                  MGROK_DATA_HEADER;
	ssize_t n = readv(st->fd, iov, k);
	if (n > 0) {
		uint8_t *f = frames;
		for (size_t left = (size_t)n; left;) {
			size_t len = left < MGROK_DATA_MAX ? left : MGROK_DATA_MAX;
			/* The payload is in place: only the header is written here. */
			mgrok_frame_data_header(f, st->ms.id, (uint16_t)len);
			f += MGROK_DATA_HEADER + len;
			left -= len;
		}
		mgrok_session_commit(s, (size_t)(f - frames));
		mgrok_mux_sent_data(&st->ms, (size_t)n);
		mgrok_stream_count(st, (size_t)n, true);
	} else if (n == 0) {
		mgrok_stream_read_eof(st);
	} else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
		MGROK_DEBUG("session %u proxy %s stream %u: read: %s", s->id, proxy_name(st),
		            st->ms.id, strerror(errno));
		mgrok_stream_reset(st, MGROK_RESET_CANCEL);
	}
}

static void on_readable(struct ev_loop *loop, ev_io *w, int revents)
{
	struct mgrok_stream *st = MGROK_CONTAINER_OF(w, struct mgrok_stream, rio);
	struct mgrok_session *s = st->sess;

	s->in_cb++;
	if (mgrok_session_congested(s))
		stall(st);
	else
		read_frames(st);
	mgrok_session_leave(s);
}

static void connect_done(struct mgrok_stream *st)
{
	int err = 0;
	socklen_t len = sizeof(err);
	if (getsockopt(st->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err) {
		MGROK_SESSION_LOG(st->sess, MGROK_LOGK_LOCAL, MGROK_LOG_INFO,
		                  "session %u proxy %s stream %u: cannot connect to %s: %s",
		                  st->sess->id, proxy_name(st), st->ms.id,
		                  st->proxy ? st->proxy->local : "-", strerror(err));
		mgrok_stream_reset(st, MGROK_RESET_CONNECT_FAILED);
		return;
	}
	st->f.connecting = false;
	update_read(st);
	drain_pending(st); /* then advance(), whatever it had */
}

static void on_writable(struct ev_loop *loop, ev_io *w, int revents)
{
	struct mgrok_stream *st = MGROK_CONTAINER_OF(w, struct mgrok_stream, wio);
	struct mgrok_session *s = st->sess;
	s->in_cb++;
	if (st->f.connecting)
		connect_done(st);
	else
		drain_pending(st);
	mgrok_session_leave(s);
}

void mgrok_stream_attach_fd(struct mgrok_stream *st, int fd, int connecting)
{
	mgrok_socket_tune(fd);
	st->fd = fd;
	st->f.attached = true;
	if (st->pp)
		put_pp_header(st);
	st->f.connecting = connecting != 0;
	ev_io_init(&st->rio, on_readable, fd, EV_READ);
	ev_io_init(&st->wio, on_writable, fd, EV_WRITE);
	if (st->f.connecting) {
		ev_io_start(loop_of(st), &st->wio);
		return;
	}
	update_read(st);
	if (st->pending.len)
		ev_io_start(loop_of(st), &st->wio);
}

struct mgrok_stream *mgrok_stream_open_visitor(struct mgrok_proxy *px,
                                               const struct sockaddr *source, socklen_t source_len)
{
	if (!(px = mgrok_group_route(px)))
		return NULL;
	struct mgrok_session *s = px->sess;
	char src[MGROK_ADDRSTRLEN];
	if (!s || s->closing || s->draining)
		return NULL;
	mgrok_addr_format(source, src, sizeof(src));
	if (s->mux.count >= s->max_streams) {
		MGROK_SESSION_LOG(s, MGROK_LOGK_VISITOR, MGROK_LOG_WARN,
		                  "session %u proxy %s: %u streams open, refusing visitor %s",
		                  s->id, px->name, s->max_streams, src);
		return NULL;
	}
	uint32_t id = mgrok_mux_next_id(&s->mux);
	if (!id) {
		MGROK_SESSION_LOG(s, MGROK_LOGK_VISITOR, MGROK_LOG_WARN,
		                  "session %u: stream IDs used up, refusing visitor %s", s->id,
		                  src);
		return NULL;
	}
	struct mgrok_stream *st = stream_new(s, id, px);
	struct mgrok_frame f = {.type = MGROK_FRAME_NEW_STREAM, .stream_id = id};
	f.u.new_stream.name.p = (const uint8_t *)px->name;
	f.u.new_stream.name.len = strlen(px->name);
	mgrok_wire_addr_from_sockaddr(&f.u.new_stream.source, source);
	mgrok_session_send(s, &f);
	MGROK_DEBUG("session %u proxy %s stream %u: visitor %s", s->id, px->name, id, src);
	return st;
}

struct mgrok_stream *mgrok_stream_accept(struct mgrok_session *s, uint32_t id,
                                         struct mgrok_proxy *px)
{
	return stream_new(s, id, px);
}

void mgrok_stream_reset_proxy(struct mgrok_relay *r, struct mgrok_proxy *px, uint8_t code)
{
	struct mgrok_stream *st = r->streams;
	while (st) {
		struct mgrok_stream *next = st->next;
		if (st->proxy == px)
			mgrok_stream_reset(st, code);
		st = next;
	}
}

void mgrok_stream_attach_datagram(struct mgrok_stream *st, void *arg)
{
	if (!datagram_ops(st)) {
		MGROK_ERROR("session %u proxy %s: plugin has no datagram hooks", st->sess->id,
		            proxy_name(st));
		mgrok_stream_reset(st, MGROK_RESET_INTERNAL);
		return;
	}
	st->datagram = true;
	st->dgram_arg = arg;
}

int mgrok_stream_send(struct mgrok_stream *st, const void *data, size_t len)
{
	struct mgrok_session *s = st->sess;
	/* A datagram that cannot go now is dropped, never queued: a late
	 * datagram is worth less than the memory it would hold. */
	if (len > MGROK_DATA_MAX || len > st->ms.send_window ||
	    (st->ms.state & MGROK_MUX_SENT_CLOSE) || mgrok_session_congested(s))
		return -1;
	uint8_t *frame = mgrok_session_reserve(s, len);
	mgrok_frame_data_header(frame, st->ms.id, (uint16_t)len);
	if (len)
		memcpy(frame + MGROK_DATA_HEADER, data, len);
	mgrok_session_commit(s, MGROK_DATA_HEADER + len);
	mgrok_mux_sent_data(&st->ms, len);
	mgrok_stream_count(st, len, true);
	return 0;
}

void mgrok_stream_close(struct mgrok_stream *st)
{
	if (!(st->ms.state & MGROK_MUX_SENT_CLOSE)) {
		struct mgrok_frame f = {.type = MGROK_FRAME_CLOSE, .stream_id = st->ms.id};
		mgrok_session_send(st->sess, &f);
		mgrok_mux_sent_close(&st->ms);
	}
	if (st->ms.state & MGROK_MUX_GOT_CLOSE)
		mgrok_stream_destroy(st, false);
}

void mgrok_relay_destroy_all(struct mgrok_relay *r)
{
	mgrok_visitor_drop_all(r);
	while (r->streams)
		mgrok_stream_destroy(r->streams, true);
}
