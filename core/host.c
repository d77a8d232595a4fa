#include "host.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "balancer.h"
#include "buf.h"
#include "context.h"
#include "log.h"
#include "plugin_loader.h"
#include "proxyproto.h"
#include "proxy.h"
#include "server.h"
#include "stream.h"
#include "stream_filter.h"

/* The one piece of state the table needs: its functions take no context. */
static struct mgrok_ctx *host_ctx;

void mgrok_host_bind(struct mgrok_ctx *ctx) { host_ctx = ctx; }

struct mgrok_ctx *mgrok_host_ctx(void) { return host_ctx; }

struct mgrok_watch {
	ev_io io;
	mgrok_watch_cb cb;
	void *arg;
};

struct mgrok_timer {
	ev_timer t;
	mgrok_timer_cb cb;
	void *arg;
};

/* The limit of one call site of a plugin; sites past the table share its last slot. */
static struct mgrok_log_limit *site_limit(struct mgrok_plugin *p, const char *fmt)
{
	size_t i = 0;
	while (i < MGROK_PLUGIN_LOG_SITES - 1 && p->log_site[i] && p->log_site[i] != fmt)
		i++;
	if (!p->log_site[i]) {
		p->log_site[i] = fmt;
		p->log_limit[i] = (struct mgrok_log_limit){.kind = fmt, .burst = 10};
	}
	return &p->log_limit[i];
}

static void host_log(const struct mgrok_plugin *self, int level, const char *fmt, ...)
{
	char prefix[80];
	va_list ap;
	snprintf(prefix, sizeof(prefix), "plugin %s", self ? self->desc->name : "?");
	va_start(ap, fmt);
	if (self && level <= MGROK_LOG_INFO && host_ctx)
		/* The loader's own record, handed to the plugin as const. */
		mgrok_vlog_limited(site_limit((struct mgrok_plugin *)self, fmt), 0, prefix,
		                   ev_now(host_ctx->loop), level, fmt, ap);
	else
		mgrok_vlog(level, prefix, fmt, ap);
	va_end(ap);
}

static void *host_alloc(size_t n) { return mgrok_xmalloc(n); }
static void host_free(void *p) { free(p); }
static void host_wipe(void *p, size_t n) { OPENSSL_cleanse(p, n); }
static int host_random(void *buf, size_t n) { return RAND_bytes(buf, (int)n) == 1 ? 0 : -1; }

static void watch_fire(struct ev_loop *loop, ev_io *io, int revents)
{
	struct mgrok_watch *w = (struct mgrok_watch *)io;
	int ev =
	        (revents & EV_READ ? MGROK_EV_READ : 0) | (revents & EV_WRITE ? MGROK_EV_WRITE : 0);
	w->cb(w->arg, io->fd, ev);
}

static struct mgrok_watch *watch_new(int fd, mgrok_watch_cb cb, void *arg)
{
	struct mgrok_watch *w = mgrok_xcalloc(1, sizeof(*w));
	ev_io_init(&w->io, watch_fire, fd, EV_READ);
	w->cb = cb;
	w->arg = arg;
	return w;
}

static void watch_set(struct mgrok_watch *w, int events)
{
	int ev = (events & MGROK_EV_READ ? EV_READ : 0) | (events & MGROK_EV_WRITE ? EV_WRITE : 0);
	ev_io_stop(host_ctx->loop, &w->io);
	if (!ev)
		return;
	ev_io_set(&w->io, w->io.fd, ev);
	ev_io_start(host_ctx->loop, &w->io);
}

static void watch_free(struct mgrok_watch *w)
{
	if (!w)
		return;
	ev_io_stop(host_ctx->loop, &w->io);
	free(w);
}

static void timer_fire(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct mgrok_timer *tm = (struct mgrok_timer *)t;
	tm->cb(tm->arg);
}

static struct mgrok_timer *timer_new(mgrok_timer_cb cb, void *arg)
{
	struct mgrok_timer *t = mgrok_xcalloc(1, sizeof(*t));
	ev_timer_init(&t->t, timer_fire, 0., 0.);
	t->cb = cb;
	t->arg = arg;
	return t;
}

static void timer_set(struct mgrok_timer *t, double after)
{
	ev_timer_stop(host_ctx->loop, &t->t);
	if (after <= 0)
		return;
	ev_timer_set(&t->t, after, 0.);
	ev_timer_start(host_ctx->loop, &t->t);
}

static void timer_free(struct mgrok_timer *t)
{
	if (!t)
		return;
	ev_timer_stop(host_ctx->loop, &t->t);
	free(t);
}

static double host_now(void) { return ev_now(host_ctx->loop); }

static struct mgrok_proxy *host_name_lookup(const struct mgrok_plugin *self, const char *name,
                                            void **state)
{
	struct mgrok_proxy *px =
	        host_ctx->server ? mgrok_server_name_lookup(host_ctx->server, self, name) : NULL;
	*state = px ? px->state : NULL;
	return px;
}

static int host_from_balancer(const struct sockaddr *source)
{
	const struct mgrok_server_conf *c =
	        host_ctx->server ? mgrok_server_conf(host_ctx->server) : NULL;
	return c && mgrok_cidr_match(c->proxy_protocol_from, c->n_proxy_protocol_from, source);
}

static int host_proxy_header_parse(const uint8_t *buf, size_t len, size_t *used,
                                   struct sockaddr_storage *src, socklen_t *src_len, char *err,
                                   size_t errlen)
{
	struct mgrok_pp pp;
	int rc = mgrok_pp_parse(buf, len, &pp, used, err, errlen);
	if (rc == 1 && pp.proxied) {
		memcpy(src, &pp.src, pp.len);
		*src_len = pp.len;
	}
	return rc;
}

static void host_datagram_dropped(struct mgrok_proxy *px, struct mgrok_stream *st)
{
	if (!px && st)
		px = st->proxy;
	if (px && px->traffic)
		px->traffic->datagrams_dropped++;
}

const struct mgrok_host mgrok_host_table = {
        .abi_major = MGROK_PLUGIN_ABI_MAJOR,
        .abi_minor = MGROK_PLUGIN_ABI_MINOR,
        .size = sizeof(struct mgrok_host),
        .log = host_log,
        .alloc = host_alloc,
        .free = host_free,
        .wipe = host_wipe,
        .random = host_random,
        .watch_new = watch_new,
        .watch_set = watch_set,
        .watch_free = watch_free,
        .timer_new = timer_new,
        .timer_set = timer_set,
        .timer_free = timer_free,
        .now = host_now,
        .stream_open = mgrok_stream_open_visitor,
        .stream_attach_fd = mgrok_stream_attach_fd,
        .stream_reset = mgrok_stream_reset,
        .addr_format = mgrok_addr_format,
        .stream_attach_datagram = mgrok_stream_attach_datagram,
        .stream_send = mgrok_stream_send,
        .stream_close = mgrok_stream_close,
        .visitor_accept = mgrok_visitor_accept,
        .name_claim = mgrok_server_name_claim,
        .name_lookup = host_name_lookup,
        .visitor_attach = mgrok_visitor_attach,
        .stream_emit = mgrok_stream_emit,
        .from_balancer = host_from_balancer,
        .proxy_header_parse = host_proxy_header_parse,
        .datagram_dropped = host_datagram_dropped,
};
