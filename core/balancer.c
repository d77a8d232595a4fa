#include "balancer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "addr.h"
#include "group.h"
#include "log.h"
#include "proxy.h"
#include "session.h"
#include "stream.h"

int mgrok_balancer_read(int fd, struct mgrok_buf *got, struct mgrok_pp *pp, char *err,
                        size_t errlen)
{
	for (;;) {
		uint8_t peek[512];
		ssize_t n = recv(fd, peek, sizeof(peek), MSG_PEEK);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (n <= 0) {
			snprintf(err, errlen, "%s before its PROXY header was complete",
			         n == 0 ? "closed" : strerror(errno));
			return -1;
		}
		/* Of what is there, the header's bytes: all of them while it is
		 * incomplete (a v1 line without its end, a v2 body not all in),
		 * up to its end once it is whole. */
		size_t before = got->len, used;
		mgrok_buf_append(got, peek, (size_t)n);
		int rc = mgrok_pp_parse(mgrok_buf_head(got), got->len, pp, &used, err, errlen);
		if (rc < 0)
			return -1;
		size_t take = rc > 0 ? used - before : (size_t)n;
		got->len = before + take;
		if (recv(fd, peek, take, 0) != (ssize_t)take) {
			snprintf(err, errlen, "reading its PROXY header: %s", strerror(errno));
			return -1;
		}
		if (rc > 0)
			return 1;
		if ((size_t)n < sizeof(peek))
			return 0;
	}
}

/* ---- visitors waiting for their header ----------------------------------- */

static void visitor_free(struct mgrok_visitor *v, bool close_fd)
{
	struct mgrok_visitor **pp = &v->relay->waiting;
	while (*pp && *pp != v)
		pp = &(*pp)->next;
	if (*pp)
		*pp = v->next;
	v->relay->nwaiting--;
	ev_io_stop(v->loop, &v->io);
	ev_timer_stop(v->loop, &v->deadline);
	if (close_fd)
		close(v->fd);
	mgrok_buf_free(&v->got);
	free(v);
}

static void on_readable(struct ev_loop *loop, ev_io *w, int revents)
{
	struct mgrok_visitor *v = MGROK_CONTAINER_OF(w, struct mgrok_visitor, io);
	struct mgrok_proxy *px = v->px;
	struct mgrok_pp pp;
	char err[160];
	int rc = mgrok_balancer_read(v->fd, &v->got, &pp, err, sizeof(err));
	if (rc == 0)
		return;
	if (rc < 0) {
		MGROK_SESSION_LOG(px->sess, MGROK_LOGK_VISITOR, MGROK_LOG_WARN,
		                  "session %u proxy %s: visitor through balancer %s: %s",
		                  px->sess->id, px->name, v->from, err);
		visitor_free(v, true);
		return;
	}
	int fd = v->fd;
	struct sockaddr_storage src = v->source;
	socklen_t len = v->source_len;
	if (pp.proxied) {
		src = pp.src;
		len = pp.len;
	}
	visitor_free(v, false);
	struct mgrok_stream *st = mgrok_stream_open_visitor(px, (struct sockaddr *)&src, len);
	if (!st) {
		close(fd);
		return;
	}
	mgrok_stream_attach_fd(st, fd, 0);
}

static void on_deadline(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct mgrok_visitor *v = MGROK_CONTAINER_OF(w, struct mgrok_visitor, deadline);
	MGROK_SESSION_LOG(v->px->sess, MGROK_LOGK_VISITOR, MGROK_LOG_WARN,
	                  "session %u proxy %s: visitor through balancer %s: no PROXY header in "
	                  "%.3g s",
	                  v->px->sess->id, v->px->name, v->from, v->px->sess->balancers.timeout);
	visitor_free(v, true);
}

int mgrok_visitor_accept(struct mgrok_proxy *px, int fd, const struct sockaddr *source,
                         socklen_t source_len)
{
	if (!(px = mgrok_group_route(px)))
		return -1;
	struct mgrok_session *s = px->sess;
	if (!s || s->closing)
		return -1;
	if (!mgrok_cidr_match(s->balancers.from, s->balancers.n, source)) {
		struct mgrok_stream *st = mgrok_stream_open_visitor(px, source, source_len);
		if (!st)
			return -1;
		mgrok_stream_attach_fd(st, fd, 0);
		return 0;
	}
	/* Those waiting count against the stream limit: they will be streams. */
	if (s->mux.count + s->relay.nwaiting >= s->max_streams) {
		MGROK_SESSION_LOG(
		        s, MGROK_LOGK_VISITOR, MGROK_LOG_WARN,
		        "session %u proxy %s: %u streams open or coming, refusing a visitor "
		        "through balancer",
		        s->id, px->name, s->max_streams);
		return -1;
	}
	struct mgrok_visitor *v = mgrok_xcalloc(1, sizeof(*v));
	v->relay = &s->relay;
	v->loop = s->ctx->loop;
	v->px = px;
	v->fd = fd;
	memcpy(&v->source, source, source_len);
	v->source_len = source_len;
	mgrok_addr_format(source, v->from, sizeof(v->from));
	mgrok_socket_tune(fd);
	ev_io_init(&v->io, on_readable, fd, EV_READ);
	ev_timer_init(&v->deadline, on_deadline, s->balancers.timeout, 0.);
	ev_io_start(v->loop, &v->io);
	ev_timer_start(v->loop, &v->deadline);
	v->next = s->relay.waiting;
	s->relay.waiting = v;
	s->relay.nwaiting++;
	return 0;
}

void mgrok_visitor_drop_proxy(struct mgrok_relay *r, struct mgrok_proxy *px)
{
	struct mgrok_visitor *v = r->waiting;
	while (v) {
		struct mgrok_visitor *next = v->next;
		if (v->px == px)
			visitor_free(v, true);
		v = next;
	}
}

void mgrok_visitor_drop_all(struct mgrok_relay *r)
{
	while (r->waiting)
		visitor_free(r->waiting, true);
}
