#include "stream_filter.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "proxy.h"
#include "session.h"
#include "stream.h"

/* One read of a filtered visitor: requests are small, and the plugin sees
 * each read whole. */
#define FILTER_READ_MAX (64u * 1024)

static const struct mgrok_proxy_ops *ops_of(const struct mgrok_stream *st)
{
	return st->proxy->plugin->desc->proxy;
}

/* Sends p as DATA frames while window and the session's output allow;
 * returns how much went. */
static size_t send_frames(struct mgrok_stream *st, const uint8_t *p, size_t len)
{
	struct mgrok_session *s = st->sess;
	size_t sent = 0;
	while (sent < len && st->ms.send_window && !mgrok_session_congested(s)) {
		size_t n = len - sent;
		if (n > st->ms.send_window)
			n = st->ms.send_window;
		if (n > MGROK_DATA_MAX)
			n = MGROK_DATA_MAX;
		uint8_t *frame = mgrok_session_reserve(s, n);
		mgrok_frame_data_header(frame, st->ms.id, (uint16_t)n);
		memcpy(frame + MGROK_DATA_HEADER, p + sent, n);
		mgrok_session_commit(s, MGROK_DATA_HEADER + n);
		mgrok_mux_sent_data(&st->ms, n);
		mgrok_stream_count(st, n, true);
		sent += n;
	}
	return sent;
}

void mgrok_stream_emit(struct mgrok_stream *st, const void *data, size_t len)
{
	struct mgrok_stream_filter *fl = st->filter;
	if (!fl) {
		MGROK_ERROR("plugin %s: stream_emit on a stream it does not filter",
		            st->proxy->plugin->desc->name);
		return;
	}
	size_t sent = fl->out.len ? 0 : send_frames(st, data, len);
	if (sent < len)
		mgrok_buf_append(&fl->out, (const uint8_t *)data + sent, len - sent);
}

/* The visitor's side is over and everything emitted is out: CLOSE.
 * Returns -1 if that ended the stream. */
static int close_if_done(struct mgrok_stream *st)
{
	if (st->filter->ended && !st->filter->out.len && !(st->ms.state & MGROK_MUX_SENT_CLOSE) &&
	    mgrok_stream_read_eof(st))
		return -1;
	return 0;
}

int mgrok_filter_flush(struct mgrok_stream *st)
{
	struct mgrok_stream_filter *fl = st->filter;
	if (fl->out.len) {
		size_t n = send_frames(st, mgrok_buf_head(&fl->out), fl->out.len);
		mgrok_buf_consume(&fl->out, n);
		if (!fl->out.len)
			mgrok_buf_free(&fl->out);
	}
	if (!fl->arg && !fl->out.len) {
		/* An unfiltered visitor's first bytes are out: plain relay from here. */
		free(fl);
		st->filter = NULL;
		return 0;
	}
	return close_if_done(st);
}

/* The plugin found what the peer got so far unusable: RESET, so that it is
 * never taken for a whole request; the visitor hears why, gently. */
static void abort_stream(struct mgrok_stream *st)
{
	struct mgrok_frame f = {.type = MGROK_FRAME_RESET, .stream_id = st->ms.id};
	f.u.reset_code = MGROK_RESET_CANCEL;
	mgrok_session_send(st->sess, &f);
	bool answered = mgrok_filter_peer_end(st, -1);
	mgrok_stream_destroy(st, !answered);
}

void mgrok_filter_read(struct mgrok_stream *st)
{
	struct mgrok_stream_filter *fl = st->filter;
	uint8_t buf[FILTER_READ_MAX];
	if (mgrok_filter_flush(st) < 0)
		return;
	if (!st->filter)
		return; /* the next wakeup reads it as any other stream */
	if (fl->out.len || fl->ended || !fl->arg || !st->ms.send_window) {
		/* Nothing more is read until what the plugin emitted is out and
		 * the window is open: a read of 0 bytes would look like EOF. */
		mgrok_stream_pause_read(st);
		return;
	}
	size_t want = st->ms.send_window < sizeof(buf) ? st->ms.send_window : sizeof(buf);
	ssize_t n = read(st->fd, buf, want);
	if (n > 0) {
		int rc = ops_of(st)->on_visitor_data(st->proxy->plugin->inst, fl->arg, st, buf,
		                                     (size_t)n);
		if (rc == 2) {
			abort_stream(st);
			return;
		}
		fl->ended = rc == 1;
		if (close_if_done(st) == 0 && (fl->out.len || fl->ended))
			mgrok_stream_pause_read(st);
	} else if (n == 0) {
		fl->ended = true;
		if (close_if_done(st) == 0)
			mgrok_stream_pause_read(st);
	} else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
		MGROK_DEBUG("session %u stream %u: read: %s", st->sess->id, st->ms.id,
		            strerror(errno));
		mgrok_stream_reset(st, MGROK_RESET_CANCEL);
	}
}

bool mgrok_filter_peer_end(struct mgrok_stream *st, int code)
{
	struct mgrok_stream_filter *fl = st->filter;
	if (fl->peer_told || !fl->arg)
		return false;
	fl->peer_told = true;
	int (*op)(void *, void *, int, int) =
	        MGROK_PLUGIN_OP(st->proxy->plugin, proxy, on_peer_end);
	return op && op(st->proxy->plugin->inst, fl->arg, st->fd, code) == 1;
}

void mgrok_filter_free(struct mgrok_stream *st, bool abortive)
{
	struct mgrok_stream_filter *fl = st->filter;
	if (!abortive && st->fd >= 0) {
		uint8_t sink[4096];
		shutdown(st->fd, SHUT_WR);
		for (int i = 0; i < 16 && read(st->fd, sink, sizeof(sink)) > 0; i++)
			;
	}
	void (*op)(void *, void *) = MGROK_PLUGIN_OP(st->proxy->plugin, proxy, on_visitor_end);
	if (op && fl->arg)
		op(st->proxy->plugin->inst, fl->arg);
	mgrok_buf_free(&fl->out);
	free(fl);
	st->filter = NULL;
}

int mgrok_visitor_attach(struct mgrok_proxy *px, int fd, const struct sockaddr *source,
                         socklen_t source_len, const void *first, size_t first_len, void *arg)
{
	if (arg && !MGROK_PLUGIN_OP(px->plugin, proxy, on_visitor_data)) {
		MGROK_ERROR("plugin %s: visitor_attach with an arg, but no on_visitor_data",
		            px->plugin->desc->name);
		return -1;
	}
	struct mgrok_stream *st = mgrok_stream_open_visitor(px, source, source_len);
	if (!st)
		return -1;
	/* Even unfiltered, the first bytes may wait for window: they are
	 * emitted through a filter that goes away once they are out. */
	st->filter = mgrok_xcalloc(1, sizeof(*st->filter));
	st->filter->arg = arg;
	if (first_len)
		mgrok_stream_emit(st, first, first_len);
	if (!arg && !st->filter->out.len) {
		free(st->filter);
		st->filter = NULL;
	}
	mgrok_stream_attach_fd(st, fd, 0);
	if (arg) {
		/* A first call without data: the plugin may end the visitor's
		 * side at once (it refused a request among the first bytes). */
		struct mgrok_stream_filter *fl = st->filter;
		fl->ended = ops_of(st)->on_visitor_data(px->plugin->inst, arg, st, NULL, 0) == 1;
		if (close_if_done(st) == 0 && (fl->out.len || fl->ended))
			mgrok_stream_pause_read(st);
	}
	return 0;
}
