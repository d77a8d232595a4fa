#include "server.h"
#include "server_impl.h"

#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "addr.h"
#include "host.h"
#include "defaults.h"
#include "log.h"
#include "metrics.h"
#include "names.h"
#include "plugin_loader.h"
#include "proxy.h"
#include "ratelimit.h"
#include "session.h"
#include "stream.h"
#include "notify.h"
#include "tls.h"

void mgrok_server_counts_changed(struct mgrok_server *srv)
{
	mgrok_notify_status_changed(srv->ctx->notify);
}

static void list_insert(struct srv_session **head, struct srv_session *ss)
{
	ss->prev = NULL;
	ss->next = *head;
	if (*head)
		(*head)->prev = ss;
	*head = ss;
}

static void list_remove(struct srv_session **head, struct srv_session *ss)
{
	if (ss->prev)
		ss->prev->next = ss->next;
	else
		*head = ss->next;
	if (ss->next)
		ss->next->prev = ss->prev;
	ss->prev = ss->next = NULL;
}

static const struct mgrok_auth_method *find_auth(void *arg, uint8_t id)
{
	struct mgrok_server *srv = arg;
	for (size_t i = 0; i < srv->n_methods; i++)
		if (srv->methods[i].m.id == id)
			return &srv->methods[i].m;
	return NULL;
}

/* doc/protocol.md 3.5: the same identity and clientId replaces a stale session. */
static void on_hello(struct srv_session *ss, const struct mgrok_frame *f)
{
	memcpy(ss->client_id, f->u.hello.client_id.p, f->u.hello.client_id.len);
	ss->client_id[f->u.hello.client_id.len] = '\0';
	ss->hello_seen = true;
	SRV_LOG(ss->srv, SRV_LOG_SESSIONS, MGROK_LOG_INFO, "session %u: client %s, %.*s",
	        ss->sess->id, ss->client_id, (int)f->u.hello.info.len,
	        (const char *)f->u.hello.info.p);
	ss->info = json_loadb((const char *)f->u.hello.info.p, f->u.hello.info.len, 0, NULL);
	if (!json_is_object(ss->info)) { /* for humans: anything else is not worth showing */
		json_decref(ss->info);
		ss->info = NULL;
	}
	double banned = mgrok_server_banned(ss->srv, ss->client_id);
	if (banned > 0) {
		mgrok_session_close(ss->sess, MGROK_GOAWAY_NORMAL, MGROK_CLOSE_LOCAL,
		                    "banned for %.0f more seconds",
		                    (double)(long long)(banned + 0.999));
		return;
	}
	for (struct srv_session *o = ss->srv->sessions; o; o = o->next) {
		if (o == ss || !o->hello_seen || strcmp(o->identity, ss->identity) != 0 ||
		    strcmp(o->client_id, ss->client_id) != 0)
			continue;
		SRV_LOG(ss->srv, SRV_LOG_SESSIONS, MGROK_LOG_INFO,
		        "session %u replaces session %u of client %s", ss->sess->id, o->sess->id,
		        ss->client_id);
		/* Closing it frees its ports before this session's REGISTERs. */
		mgrok_session_close(o->sess, MGROK_GOAWAY_REPLACED, MGROK_CLOSE_LOCAL,
		                    "replaced by a newer session of the same client");
		break;
	}
}

/* ---- session callbacks ----------------------------------------------------- */

static void srv_on_open(struct mgrok_session *s)
{
	struct srv_session *ss = s->owner;
	ss->authenticated = true;
	ss->srv->pending--;
	list_remove(&ss->srv->handshaking, ss);
	list_insert(&ss->srv->sessions, ss);
	snprintf(ss->identity, sizeof(ss->identity), "%s", s->hs.identity);
	ss->method = (struct srv_method *)s->hs.method;
	if (ss->method)
		ss->method->handshakes[SRV_HS_OK]++;
	ss->node = ss->method && ss->method == ss->srv->node_method;
	unsigned (*op)(void *, const char *) =
	        ss->method ? MGROK_PLUGIN_OP(ss->method->plugin, auth, max_streams) : NULL;
	unsigned own = op ? op(ss->method->m.inst, ss->identity) : 0;
	if (own && own < s->max_streams)
		s->max_streams = own;
	SRV_LOG(ss->srv, SRV_LOG_SESSIONS, MGROK_LOG_INFO, "session %u: %s authenticated as '%s'",
	        s->id, s->peer, ss->identity);
	mgrok_server_counts_changed(ss->srv);
}

static int srv_on_frame(struct mgrok_session *s, const struct mgrok_frame *f)
{
	struct srv_session *ss = s->owner;
	switch (f->type) {
	case MGROK_FRAME_HELLO:
		if (s->frames_in != 1) {
			mgrok_session_close(s, MGROK_GOAWAY_PROTOCOL_ERROR, MGROK_CLOSE_LOST,
			                    "protocol error: HELLO %s",
			                    ss->hello_seen ? "twice" : "not first");
			return -1;
		}
		on_hello(ss, f);
		return 0;
	case MGROK_FRAME_REGISTER: mgrok_server_on_register(ss, f); return 0;
	case MGROK_FRAME_UNREGISTER: mgrok_server_on_unregister(ss, f); return 0;
	default:
		/* The decoder already refused frames of the wrong direction. */
		mgrok_session_close(s, MGROK_GOAWAY_PROTOCOL_ERROR, MGROK_CLOSE_LOST,
		                    "protocol error: unexpected %s",
		                    mgrok_frame_type_name(f->type));
		return -1;
	}
}

static bool from_balancer(const struct mgrok_server *srv, const struct mgrok_sockaddr *peer)
{
	return mgrok_cidr_match(srv->conf->proxy_protocol_from, srv->conf->n_proxy_protocol_from,
	                        (const struct sockaddr *)&peer->ss);
}

/* A handshake that ended without a session: refused by its method (or for
 * naming none the server offers), or failed (malformed, too slow, a
 * stranger). A connection that closed before trying is neither. */
static void count_handshake(struct mgrok_server *srv, const struct mgrok_session *s,
                            enum mgrok_close_why why)
{
	if (!s->hs_failed)
		return;
	enum srv_hs_result r =
	        why == MGROK_CLOSE_DENIED && s->hs.messages ? SRV_HS_DENIED : SRV_HS_FAILED;
	struct srv_method *m = (struct srv_method *)s->hs.method;
	if (m)
		m->handshakes[r]++;
	else
		srv->counters.handshakes_nomethod[r]++;
}

static void srv_on_close(struct mgrok_session *s, enum mgrok_close_why why, const char *reason)
{
	struct srv_session *ss = s->owner;
	struct mgrok_server *srv = ss->srv;
	if (!ss->authenticated) {
		srv->pending--;
		count_handshake(srv, s, why);
	}
	/* A balancer's own address stands for every client behind it: its
	 * silent connections and health checks must not block them all. */
	if (!ss->authenticated && s->hs_failed && !from_balancer(srv, &ss->peer) &&
	    mgrok_ratelimit_failure(srv->failures, (struct sockaddr *)&ss->peer.ss,
	                            ev_now(srv->ctx->loop)))
		SRV_LOG(srv, SRV_LOG_HANDSHAKE, MGROK_LOG_WARN,
		        "%s: %u failed handshakes within %.0f s: refusing it for %.0f s", s->peer,
		        srv->conf->auth_failures, srv->conf->auth_interval,
		        srv->conf->auth_interval);
	if (ss->authenticated)
		SRV_LOG(srv, SRV_LOG_SESSIONS, MGROK_LOG_INFO, "session %u: closed: %s", s->id,
		        reason);
	else if (why != MGROK_CLOSE_LOST || s->hs_failed)
		SRV_LOG(srv, SRV_LOG_HANDSHAKE, MGROK_LOG_INFO, "session %u: %s: closed: %s", s->id,
		        s->peer, reason);
	else
		MGROK_DEBUG("session %u: %s: closed before authentication: %s", s->id, s->peer,
		            reason);
	/* Streams are gone already; close the listeners now so the ports are free at once. */
	while (ss->proxies) {
		struct mgrok_proxy *px = ss->proxies;
		ss->proxies = px->next;
		mgrok_server_proxy_free(ss, px);
	}
	list_remove(ss->authenticated ? &srv->sessions : &srv->handshaking, ss);
	if (ss->authenticated)
		mgrok_server_counts_changed(srv);
	json_decref(ss->info);
	free(ss);
}

static bool srv_on_proxied(struct mgrok_session *s, const struct mgrok_pp *pp);

static const struct mgrok_session_ops srv_ops = {
        .on_open = srv_on_open,
        .on_frame = srv_on_frame,
        .on_close = srv_on_close,
        .on_proxied = srv_on_proxied,
};

/* Connections from address ip still in the handshake. */
static unsigned pending_from(const struct mgrok_server *srv, const uint8_t ip[16])
{
	unsigned n = 0;
	for (const struct srv_session *o = srv->handshaking; o; o = o->next)
		n += memcmp(o->ip, ip, sizeof(o->ip)) == 0;
	return n;
}

static bool refused(struct mgrok_server *srv)
{
	srv->counters.rate_limited++;
	return false;
}

/* Whether a new connection may start a handshake (doc/protocol.md 4). */
static bool admit(struct mgrok_server *srv, const struct mgrok_sockaddr *peer, uint8_t ip[16])
{
	char text[MGROK_ADDRSTRLEN];
	if (mgrok_ratelimit_blocked(srv->failures, (const struct sockaddr *)&peer->ss,
	                            ev_now(srv->ctx->loop)))
		return refused(srv);
	if (srv->pending >= srv->conf->max_pending) {
		/* The newest pending connection is the one to drop. */
		SRV_LOG(srv, SRV_LOG_REFUSED, MGROK_LOG_WARN,
		        "%u connections still in the handshake: refusing one from %s", srv->pending,
		        mgrok_addr_format((const struct sockaddr *)&peer->ss, text, sizeof(text)));
		return refused(srv);
	}
	/* One host must not hold every handshake slot (a slow trickle would).
	 * A balancer's clients are counted by their own address, once its
	 * header is in (srv_on_proxied). */
	if (mgrok_addr_ip16((const struct sockaddr *)&peer->ss, ip) && !from_balancer(srv, peer) &&
	    pending_from(srv, ip) >= srv->conf->max_pending_per_address) {
		SRV_LOG(srv, SRV_LOG_REFUSED, MGROK_LOG_WARN,
		        "%s has %u connections in the handshake: refusing another",
		        mgrok_addr_format((const struct sockaddr *)&peer->ss, text, sizeof(text)),
		        srv->conf->max_pending_per_address);
		return refused(srv);
	}
	return true;
}

/* The balancer's header named the real source: from now on it is the
 * session's address everywhere, and what it is admitted by. */
static bool srv_on_proxied(struct mgrok_session *s, const struct mgrok_pp *pp)
{
	struct srv_session *ss = s->owner;
	struct mgrok_server *srv = ss->srv;
	char balancer[MGROK_ADDRSTRLEN];
	snprintf(balancer, sizeof(balancer), "%s", s->peer);
	memcpy(&ss->peer.ss, &pp->src, pp->len);
	ss->peer.len = pp->len;
	mgrok_addr_format((struct sockaddr *)&ss->peer.ss, s->peer, sizeof(s->peer));
	mgrok_addr_ip16((struct sockaddr *)&ss->peer.ss, ss->ip);
	MGROK_DEBUG("session %u: %s through balancer %s", s->id, s->peer, balancer);
	if (mgrok_ratelimit_blocked(srv->failures, (struct sockaddr *)&ss->peer.ss,
	                            ev_now(srv->ctx->loop))) {
		mgrok_session_close(s, -1, MGROK_CLOSE_LOCAL, "%s is blocked for failed handshakes",
		                    s->peer);
		return refused(srv);
	}
	if (pending_from(srv, ss->ip) > srv->conf->max_pending_per_address) {
		SRV_LOG(srv, SRV_LOG_REFUSED, MGROK_LOG_WARN,
		        "%s has %u connections in the handshake: refusing another", s->peer,
		        srv->conf->max_pending_per_address);
		mgrok_session_close(s, -1, MGROK_CLOSE_LOCAL, "too many handshakes from %s",
		                    s->peer);
		return refused(srv);
	}
	return true;
}

static void on_accept_retry(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct mgrok_server *srv = MGROK_CONTAINER_OF(w, struct mgrok_server, accept_retry);
	ev_io_start(loop, &srv->lio);
}

/* accept(2) failed with errno: returns whether to go on accepting now. */
static bool accept_failed(struct mgrok_server *srv)
{
	int e = errno;
	if (e == EAGAIN || e == EWOULDBLOCK || e == EINTR)
		return false;
	if (e == ECONNABORTED || e == EPROTO || e == EPERM)
		return true; /* that one connection is gone; the next may be fine */
	SRV_LOG(srv, SRV_LOG_ACCEPT, MGROK_LOG_WARN, "accept: %s: pausing accepts for %.2f s",
	        strerror(e), MGROK_ACCEPT_PAUSE);
	ev_io_stop(srv->ctx->loop, &srv->lio);
	ev_timer_set(&srv->accept_retry, MGROK_ACCEPT_PAUSE, 0.);
	ev_timer_start(srv->ctx->loop, &srv->accept_retry);
	return false;
}

static void start_session(struct mgrok_server *srv, int fd, const struct mgrok_sockaddr *peer,
                          const uint8_t ip[16])
{
	mgrok_socket_tune(fd);
	struct srv_session *ss = mgrok_xcalloc(1, sizeof(*ss));
	ss->srv = srv;
	ss->peer = *peer;
	memcpy(ss->ip, ip, sizeof(ss->ip));
	ss->sess = mgrok_session_new(srv->ctx, fd, MGROK_ROLE_SERVER, srv->tls, &srv_ops, ss);
	mgrok_addr_format((const struct sockaddr *)&peer->ss, ss->sess->peer,
	                  sizeof(ss->sess->peer));
	ss->sess->hb_interval = srv->conf->heartbeat_interval;
	ss->sess->hb_timeout = srv->conf->heartbeat_timeout;
	ss->sess->max_streams = srv->conf->max_streams;
	ss->sess->balancers = (struct mgrok_balancers){srv->conf->proxy_protocol_from,
	                                               srv->conf->n_proxy_protocol_from,
	                                               srv->conf->handshake_timeout};
	ss->sess->expect_pp =
	        mgrok_cidr_match(srv->conf->proxy_protocol_from, srv->conf->n_proxy_protocol_from,
	                         (const struct sockaddr *)&peer->ss);
	/* Each proxy of a full session can come up and go down once per window. */
	unsigned proxies = srv->conf->max_proxies;
	ss->sess->loglim[MGROK_LOGK_PROXIES].burst =
	        proxies > UINT_MAX / 2 ? UINT_MAX : 2 * proxies;
	list_insert(&srv->handshaking, ss);
	srv->pending++;
	MGROK_DEBUG("session %u: connection from %s", ss->sess->id, ss->sess->peer);
	mgrok_session_start_server(ss->sess, srv->conf->handshake_timeout, find_auth, srv);
}

static void on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
	struct mgrok_server *srv = MGROK_CONTAINER_OF(w, struct mgrok_server, lio);
	for (int i = 0; i < MGROK_ACCEPTS_PER_WAKEUP; i++) {
		struct mgrok_sockaddr peer = {.len = sizeof(peer.ss)};
		int fd = accept4(srv->lfd, (struct sockaddr *)&peer.ss, &peer.len,
		                 SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (accept_failed(srv))
				continue;
			return;
		}
		uint8_t ip[16] = {0};
		if (admit(srv, &peer, ip))
			start_session(srv, fd, &peer, ip);
		else
			close(fd);
	}
}

static void on_log_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct mgrok_server *srv = MGROK_CONTAINER_OF(w, struct mgrok_server, log_tick);
	for (int k = 0; k < SRV_LOG_COUNT; k++)
		mgrok_log_limit_tick(&srv->loglim[k], 0, ev_now(loop));
}

/* ---- set-up ---------------------------------------------------------------- */

/* One more method the server offers: its plugin, initialised with options. */
static struct srv_method *add_method(struct mgrok_server *srv, const char *name,
                                     const json_t *options, char *err, size_t errlen)
{
	struct mgrok_plugin *p = mgrok_registry_find(&srv->reg, MGROK_PLUGIN_AUTH, name);
	if (!p) {
		snprintf(err, errlen, "auth method '%s': no such plugin in %s", name,
		         srv->conf->plugin_dir ? srv->conf->plugin_dir
		                               : mgrok_default_plugin_dir());
		return NULL;
	}
	if (mgrok_plugin_init(p, options, err, errlen) < 0)
		return NULL;
	struct srv_method *m = &srv->methods[srv->n_methods++];
	m->m = (struct mgrok_auth_method){.name = p->desc->name,
	                                  .id = p->desc->wire_id,
	                                  .ops = p->desc->auth,
	                                  .inst = p->inst};
	m->plugin = p;
	return m;
}

static int setup_auth(struct mgrok_server *srv, char *err, size_t errlen)
{
	const struct mgrok_server_conf *c = srv->conf;
	size_t n = c->n_auth ? c->n_auth : 1;
	srv->methods = mgrok_xcalloc(n + 1, sizeof(*srv->methods)); /* + "cluster", last */
	for (size_t i = 0; i < n; i++)
		if (!add_method(srv, c->n_auth ? c->auth[i].method : "none",
		                c->n_auth ? c->auth[i].options : NULL, err, errlen))
			return -1;
	/* The other nodes of a cluster, with the cluster's secret. */
	if (c->cluster.given) {
		json_t *opts = mgrok_cluster_auth_options(&c->cluster);
		srv->node_method = add_method(srv, "cluster", opts, err, errlen);
		json_decref(opts);
		if (!srv->node_method)
			return -1;
	}
	if (!c->n_auth)
		MGROK_WARN("no auth configured: anyone who reaches this server may use it "
		           "(set \"auth\" or --token)");
	return 0;
}

static void on_drain_tick(struct ev_loop *loop, ev_timer *w, int revents);

/* Proxy plugins get their section of the config ("http", "tls_sni"). */
static int init_proxy_plugins(struct mgrok_server *srv, char *err, size_t errlen)
{
	const json_t *sections = srv->conf->proxy_sections;
	const char *type;
	json_t *v;
	json_object_foreach((json_t *)sections, type, v) {
		if (!mgrok_registry_find(&srv->reg, MGROK_PLUGIN_PROXY, type)) {
			snprintf(
			        err, errlen,
			        "the config configures proxy type '%s', but no plugin of that name "
			        "is loaded (is it built and in the plugin directory?)",
			        type);
			return -1;
		}
	}
	for (size_t i = 0; i < srv->reg.n; i++) {
		struct mgrok_plugin *p = srv->reg.v[i];
		if (p->desc->kind == MGROK_PLUGIN_PROXY &&
		    mgrok_plugin_init(p, json_object_get(sections, p->desc->name), err, errlen) < 0)
			return -1;
	}
	return 0;
}

/* After the control port: plugins with listeners of their own open them. */
static int start_proxy_plugins(struct mgrok_server *srv, char *err, size_t errlen)
{
	for (size_t i = 0; i < srv->reg.n; i++) {
		struct mgrok_plugin *p = srv->reg.v[i];
		int (*op)(void *, char *, size_t) =
		        p->desc->kind == MGROK_PLUGIN_PROXY
		                ? MGROK_PLUGIN_OP(p, proxy, server_start)
		                : NULL;
		char perr[256] = "";
		if (op && op(p->inst, perr, sizeof(perr)) < 0) {
			snprintf(err, errlen, "plugin %s: %s", p->desc->name, perr);
			return -1;
		}
	}
	return 0;
}

struct mgrok_server *mgrok_server_new(struct mgrok_ctx *ctx, struct mgrok_server_conf *c, char *err,
                                      size_t errlen)
{
	static const struct {
		const char *kind;
		unsigned burst;
	} limits[SRV_LOG_COUNT] = {
	        [SRV_LOG_REFUSED] = {"connections refused", 5},
	        [SRV_LOG_HANDSHAKE] = {"failed handshakes", 10},
	        [SRV_LOG_SESSIONS] = {"sessions opened and closed", 100},
	        [SRV_LOG_ACCEPT] = {"accept failures", 5},
	};
	struct mgrok_server *srv = mgrok_xcalloc(1, sizeof(*srv));
	srv->ctx = ctx;
	ctx->server = srv;
	mgrok_names_init(&srv->names);
	srv->conf = c;
	mgrok_server_copy_allow_ports(srv, c);
	srv->lfd = -1;
	for (int k = 0; k < SRV_LOG_COUNT; k++) {
		srv->loglim[k].kind = limits[k].kind;
		srv->loglim[k].burst = limits[k].burst;
	}
	ev_timer_init(&srv->accept_retry, on_accept_retry, 0., 0.);
	ev_timer_init(&srv->drain_tick, on_drain_tick, 0., 0.1);
	ev_timer_init(&srv->log_tick, on_log_tick, MGROK_LOG_WINDOW, MGROK_LOG_WINDOW);
	srv->failures = mgrok_xmalloc(sizeof(*srv->failures));
	mgrok_ratelimit_init(srv->failures, c->auth_failures, c->auth_interval);
	const char *dir = c->plugin_dir ? c->plugin_dir : mgrok_default_plugin_dir();
	if (mgrok_registry_load_dir(&srv->reg, dir, c->plugins, c->n_plugins, err, errlen) < 0)
		goto fail;
	if (init_proxy_plugins(srv, err, errlen) < 0)
		goto fail;
	if (setup_auth(srv, err, errlen) < 0)
		goto fail;
	if (mgrok_addr_resolve(c->listen, NULL, &srv->listen_addr, err, errlen) < 0)
		goto fail;
	char host[256];
	uint16_t port;
	mgrok_addr_split(c->listen, NULL, host, sizeof(host), &port, err, errlen);
	if (mgrok_addr_resolve_host(c->proxy_bind ? c->proxy_bind : host, 0, &srv->bind_addr, err,
	                            errlen) < 0)
		goto fail;
	if (c->tls.cert && !(srv->tls = mgrok_tls_server_new(c->tls.cert, c->tls.key, err, errlen)))
		goto fail;
	return srv;
fail:
	mgrok_server_free(srv);
	return NULL;
}

int mgrok_server_listen(struct mgrok_server *srv, char *err, size_t errlen)
{
	srv->lfd = mgrok_tcp_listen(&srv->listen_addr, MGROK_LISTEN_BACKLOG);
	if (srv->lfd < 0) {
		snprintf(err, errlen, "cannot listen on %s: %s", srv->conf->listen,
		         strerror(-srv->lfd));
		srv->lfd = -1;
		return -1;
	}
	ev_io_init(&srv->lio, on_accept, srv->lfd, EV_READ);
	ev_io_start(srv->ctx->loop, &srv->lio);
	ev_timer_start(srv->ctx->loop, &srv->log_tick);
	char text[MGROK_ADDRSTRLEN];
	MGROK_INFO("listening on %s%s",
	           mgrok_addr_format((struct sockaddr *)&srv->listen_addr.ss, text, sizeof(text)),
	           srv->tls ? " (TLS)" : "");
	if (mgrok_server_admin_start(srv, err, errlen) < 0 ||
	    mgrok_server_cluster_start(srv, err, errlen) < 0)
		return -1;
	return start_proxy_plugins(srv, err, errlen);
}

/* No new sessions: the control port is closed, handshakes in progress end. */
static void stop_accepting(struct mgrok_server *srv)
{
	if (srv->lfd >= 0) {
		ev_io_stop(srv->ctx->loop, &srv->lio);
		ev_timer_stop(srv->ctx->loop, &srv->accept_retry);
		close(srv->lfd);
		srv->lfd = -1;
	}
	while (srv->handshaking)
		mgrok_session_close(srv->handshaking->sess, -1, MGROK_CLOSE_LOCAL,
		                    "server shutting down");
}

/* Byte streams still open in every session; datagram flows do not end by
 * themselves and are not waited for. */
static unsigned open_streams(const struct mgrok_server *srv)
{
	unsigned n = 0;
	for (const struct srv_session *ss = srv->sessions; ss; ss = ss->next)
		for (const struct mgrok_stream *st = ss->sess->relay.streams; st; st = st->next)
			n += !st->datagram;
	return n;
}

static void on_drain_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct mgrok_server *srv = MGROK_CONTAINER_OF(w, struct mgrok_server, drain_tick);
	unsigned left = open_streams(srv);
	bool late = ev_now(loop) >= srv->drain_deadline;
	if (left && !late)
		return;
	if (left)
		MGROK_WARN("shutdown_timeout (%.0f s): closing %u streams still open",
		           srv->conf->shutdown_timeout, left);
	else
		MGROK_INFO("drained: every stream has ended");
	ev_timer_stop(loop, w);
	ev_break(loop, EVBREAK_ALL);
}

void mgrok_server_drain(struct mgrok_server *srv)
{
	stop_accepting(srv);
	unsigned sessions = 0;
	for (struct srv_session *ss = srv->sessions; ss; ss = ss->next, sessions++)
		ss->sess->draining = true;
	MGROK_INFO("draining: %u sessions, %u streams open; they get up to %.0f s "
	           "(shutdown_timeout), then every client gets GO_AWAY",
	           sessions, open_streams(srv), srv->conf->shutdown_timeout);
	srv->drain_deadline = ev_now(srv->ctx->loop) + srv->conf->shutdown_timeout;
	/* A poll, not a hook on every stream's end: ten times a second costs
	 * nothing, and the drain happens once. */
	ev_timer_init(&srv->drain_tick, on_drain_tick, 0., 0.1);
	ev_timer_again(srv->ctx->loop, &srv->drain_tick);
	on_drain_tick(srv->ctx->loop, &srv->drain_tick, 0);
}

void mgrok_server_shutdown(struct mgrok_server *srv)
{
	ev_timer_stop(srv->ctx->loop, &srv->drain_tick);
	stop_accepting(srv);
	while (srv->sessions)
		mgrok_session_close(srv->sessions->sess, MGROK_GOAWAY_NORMAL, MGROK_CLOSE_LOCAL,
		                    "server shutting down");
	ev_timer_stop(srv->ctx->loop, &srv->log_tick);
	for (int k = 0; srv->ctx->loop && k < SRV_LOG_COUNT; k++)
		mgrok_log_limit_flush(&srv->loglim[k], 0, ev_now(srv->ctx->loop));
}

void mgrok_server_free(struct mgrok_server *srv)
{
	if (!srv)
		return;
	mgrok_server_shutdown(srv);
	mgrok_server_admin_free(srv);
	mgrok_server_cluster_free(srv);
	mgrok_registry_free(&srv->reg);
	mgrok_names_free(&srv->names);
	if (srv->ctx->server == srv)
		srv->ctx->server = NULL;
	mgrok_tls_free(srv->tls);
	free(srv->methods);
	free(srv->failures);
	free(srv->allow_ports);
	free(srv);
}

void mgrok_server_counts(const struct mgrok_server *srv, unsigned *sessions, unsigned *proxies)
{
	*sessions = *proxies = 0;
	for (const struct srv_session *ss = srv->sessions; ss; ss = ss->next) {
		(*sessions)++;
		*proxies += ss->nproxies;
	}
}
