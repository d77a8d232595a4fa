#include "client.h"
#include "client_impl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "addr.h"
#include "admin.h"
#include "host.h"
#include "defaults.h"
#include "log.h"
#include "notify.h"
#include "plugin_loader.h"
#include "proxy.h"
#include "session.h"
#include "stream.h"
#include "tls.h"

static void connect_now(struct mgrok_client *cl);

static void stop(struct mgrok_client *cl, int code)
{
	cl->stopping = true;
	cl->exit_code = code;
	ev_timer_stop(cl->ctx->loop, &cl->retry);
	if (!cl->conf->embedded) /* the loop is the server's */
		ev_break(cl->ctx->loop, EVBREAK_ALL);
}

static void schedule_reconnect(struct mgrok_client *cl)
{
	/* Jitter keeps a fleet of clients from reconnecting in lockstep. */
	uint32_t r = 0;
	mgrok_host_table.random(&r, sizeof(r));
	double delay = cl->backoff * (0.75 + 0.5 * (r / 4294967295.0));
	MGROK_INFO("reconnecting in %.1f s", delay);
	ev_timer_set(&cl->retry, delay, 0.);
	ev_timer_start(cl->ctx->loop, &cl->retry);
	cl->backoff *= 2;
	if (cl->backoff > cl->conf->reconnect_max)
		cl->backoff = cl->conf->reconnect_max;
}

static struct mgrok_proxy *find_proxy(struct mgrok_client *cl, const uint8_t *name, size_t len)
{
	for (struct mgrok_proxy *px = cl->proxies; px; px = px->next)
		if (strlen(px->name) == len && memcmp(px->name, name, len) == 0)
			return px;
	return NULL;
}

/* ---- frames ---------------------------------------------------------------- */

static void send_register(struct mgrok_session *s, struct mgrok_proxy *px)
{
	char *opts =
	        json_dumps(px->register_options ? px->register_options : px->options, JSON_COMPACT);
	struct mgrok_frame f = {.type = MGROK_FRAME_REGISTER};
	f.u.reg.proxy_type = px->spec.type;
	f.u.reg.remote_port = px->spec.remote_port;
	f.u.reg.local_port = px->spec.local_port;
	f.u.reg.name.p = (const uint8_t *)px->name;
	f.u.reg.name.len = strlen(px->name);
	/* "{}" is the default: send it as empty. */
	if (opts && strcmp(opts, "{}") != 0) {
		f.u.reg.options.p = (const uint8_t *)opts;
		f.u.reg.options.len = strlen(opts);
	}
	mgrok_session_send(s, &f);
	free(opts);
}

static void ask_again_later(struct mgrok_client *cl)
{
	if (!ev_is_active(&cl->reregister)) {
		ev_timer_set(&cl->reregister, MGROK_RELAY_RETRY, 0.);
		ev_timer_start(cl->ctx->loop, &cl->reregister);
	}
}

/* A relay's answer: logged only; a refusal is tried again (the node that
 * held the port may not have let it go yet). */
static void embedded_ack(struct mgrok_client *cl, struct mgrok_proxy *px,
                         const struct mgrok_frame *f)
{
	if (!px->refused) {
		px->bound = true;
		px->public_port = f->u.ack.remote_port;
		MGROK_DEBUG("relay %s: proxy %s up", cl->conf->server, px->name);
		return;
	}
	MGROK_SESSION_LOG(cl->sess, MGROK_LOGK_REGISTER, MGROK_LOG_INFO,
	                  "relay %s: proxy %s refused (status %u): %.*s; trying again",
	                  cl->conf->server, px->name, f->u.ack.status, (int)f->u.ack.message.len,
	                  (const char *)f->u.ack.message.p);
	ask_again_later(cl);
}

static void on_reregister(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct mgrok_client *cl = MGROK_CONTAINER_OF(w, struct mgrok_client, reregister);
	if (!cl->sess || !cl->sess->open)
		return; /* the next session registers them all */
	for (struct mgrok_proxy *px = cl->proxies; px; px = px->next)
		if (px->refused && (cl->conf->embedded || px->was_up)) {
			px->refused = false;
			send_register(cl->sess, px);
			cl->acks_pending++;
		}
}

static void on_ack(struct mgrok_client *cl, const struct mgrok_frame *f)
{
	struct mgrok_proxy *px = find_proxy(cl, f->u.ack.name.p, f->u.ack.name.len);
	int mlen = (int)f->u.ack.message.len;
	const char *msg = (const char *)f->u.ack.message.p;
	/* Only an answer to a REGISTER still open counts: a server that sends
	 * more could otherwise print lines at will. */
	if (!px || !cl->acks_pending || px->bound) {
		MGROK_SESSION_LOG(cl->sess, MGROK_LOGK_UNKNOWN, MGROK_LOG_WARN,
		                  "session %u: REGISTER_ACK for %s proxy '%.*s'", cl->sess->id,
		                  px ? "registered" : "unknown", (int)f->u.ack.name.len,
		                  (const char *)f->u.ack.name.p);
		return;
	}
	cl->acks_pending--;
	px->refused = f->u.ack.status != MGROK_ACK_OK;
	if (cl->conf->embedded) {
		embedded_ack(cl, px, f);
		return;
	}
	if (f->u.ack.status == MGROK_ACK_OK) {
		px->bound = true;
		px->was_up = true;
		px->public_port = f->u.ack.remote_port;
		cl->acks_ok++;
		cl->ever_registered = true;
		snprintf(px->public_addr, sizeof(px->public_addr), "%.*s", mlen, msg);
		/* The one line a user waits for, on stdout for scripts. */
		printf("%s -> %s\n", px->public_addr, px->local);
		fflush(stdout);
		MGROK_INFO("proxy %s: up at %s -> %s", px->name, px->public_addr, px->local);
	} else {
		fprintf(stderr, "mgrok: proxy %s: registration refused (status %u): %.*s\n",
		        px->name, f->u.ack.status, mlen, msg);
		MGROK_ERROR("proxy %s: registration refused (status %u): %.*s%s", px->name,
		            f->u.ack.status, mlen, msg, px->was_up ? "; asking again" : "");
		/* It was up before this session: what holds it now (the session
		 * it had, on another node) is likely to let go soon. */
		if (px->was_up)
			ask_again_later(cl);
	}
	if (!cl->acks_pending && cl->acks_ok && !cl->ready) {
		cl->ready = true;
		mgrok_notify_send(cl->ctx->notify, "READY=1");
	}
	/* On the first session a refusal of every proxy leaves nothing to do. */
	if (!cl->acks_pending && !cl->acks_ok && !cl->ever_registered) {
		fprintf(stderr, "mgrok: no proxy could be registered, giving up\n");
		mgrok_session_close(cl->sess, MGROK_GOAWAY_NORMAL, MGROK_CLOSE_LOCAL,
		                    "no proxy registered");
		stop(cl, 1);
	}
}

/*
 * The local service gets a PROXY protocol header before the visitor's
 * bytes: the visitor's address from NEW_STREAM, and as destination the
 * public port on the server's address (as far as the client can tell, the
 * public host's).
 */
static void proxy_header(const struct mgrok_client *cl, const struct mgrok_proxy *px,
                         struct mgrok_stream *st, const struct mgrok_wire_addr *source)
{
	struct sockaddr_storage src;
	struct mgrok_sockaddr dst = cl->server_addr;
	unsigned srclen = mgrok_wire_addr_to_sockaddr(source, &src);
	mgrok_addr_set_port((struct sockaddr *)&dst.ss, px->public_port);
	mgrok_stream_proxy_header(st, px->proxy_protocol, srclen ? (struct sockaddr *)&src : NULL,
	                          (struct sockaddr *)&dst.ss);
}

static int on_new_stream(struct mgrok_client *cl, struct mgrok_session *s,
                         const struct mgrok_frame *f)
{
	if (mgrok_mux_check_new(&s->mux, f->stream_id) < 0) {
		mgrok_session_close(s, MGROK_GOAWAY_PROTOCOL_ERROR, MGROK_CLOSE_LOST,
		                    "protocol error: %s", s->mux.err);
		return -1;
	}
	struct mgrok_proxy *px = find_proxy(cl, f->u.new_stream.name.p, f->u.new_stream.name.len);
	struct mgrok_stream *st = mgrok_stream_accept(s, f->stream_id, px);
	if (!px || !px->bound) {
		MGROK_SESSION_LOG(s, MGROK_LOGK_UNKNOWN, MGROK_LOG_WARN,
		                  "session %u stream %u: NEW_STREAM for unknown proxy '%.*s'",
		                  s->id, f->stream_id, (int)f->u.new_stream.name.len,
		                  (const char *)f->u.new_stream.name.p);
		mgrok_stream_reset(st, MGROK_RESET_REFUSED);
		return 0;
	}
	/* The server opens streams; each costs us a socket: bound them as it does. */
	if (s->mux.count > s->max_streams) {
		MGROK_SESSION_LOG(s, MGROK_LOGK_LOCAL, MGROK_LOG_WARN,
		                  "session %u proxy %s: %u streams open, refusing stream %u", s->id,
		                  px->name, s->max_streams, f->stream_id);
		mgrok_stream_reset(st, MGROK_RESET_REFUSED);
		return 0;
	}
	if (mgrok_log_level >= MGROK_LOG_DEBUG) {
		struct sockaddr_storage ss;
		char src[MGROK_ADDRSTRLEN] = "-";
		if (mgrok_wire_addr_to_sockaddr(&f->u.new_stream.source, &ss))
			mgrok_addr_format((struct sockaddr *)&ss, src, sizeof(src));
		MGROK_DEBUG("session %u proxy %s stream %u: visitor %s", s->id, px->name,
		            f->stream_id, src);
	}
	if (px->open_here) {
		struct sockaddr_storage src;
		bool known = mgrok_wire_addr_to_sockaddr(&f->u.new_stream.source, &src) != 0;
		px->open_here(px->open_arg, st, known ? (struct sockaddr *)&src : NULL);
		return 0;
	}
	if (px->proxy_protocol)
		proxy_header(cl, px, st, &f->u.new_stream.source);
	px->plugin->desc->proxy->client_open(px->plugin->inst, &px->spec, st);
	return 0;
}

/* ---- session callbacks ----------------------------------------------------- */

static void cl_on_open(struct mgrok_session *s)
{
	struct mgrok_client *cl = s->owner;
	cl->opened_at = ev_now(cl->ctx->loop);
	cl->failing = false;
	MGROK_INFO("session %u: connected to %s", s->id, cl->conf->server);

	struct mgrok_frame hello = {.type = MGROK_FRAME_HELLO};
	char info[128];
	snprintf(info, sizeof(info), "{\"version\":\"%s\"}", PACKAGE_VERSION);
	hello.u.hello.client_id.p = (const uint8_t *)cl->client_id;
	hello.u.hello.client_id.len = strlen(cl->client_id);
	hello.u.hello.info.p = (const uint8_t *)info;
	hello.u.hello.info.len = strlen(info);
	mgrok_session_send(s, &hello);

	cl->acks_pending = 0;
	cl->acks_ok = 0;
	for (struct mgrok_proxy *px = cl->proxies; px; px = px->next) {
		px->sess = s;
		px->bound = false;
		px->refused = false;
		send_register(s, px);
		cl->acks_pending++;
	}
}

static int cl_on_frame(struct mgrok_session *s, const struct mgrok_frame *f)
{
	struct mgrok_client *cl = s->owner;
	switch (f->type) {
	case MGROK_FRAME_REGISTER_ACK: on_ack(cl, f); return 0;
	case MGROK_FRAME_NEW_STREAM: return on_new_stream(cl, s, f);
	default:
		mgrok_session_close(s, MGROK_GOAWAY_PROTOCOL_ERROR, MGROK_CLOSE_LOST,
		                    "protocol error: unexpected %s",
		                    mgrok_frame_type_name(f->type));
		return -1;
	}
}

static void cl_on_close(struct mgrok_session *s, enum mgrok_close_why why, const char *reason)
{
	struct mgrok_client *cl = s->owner;
	cl->sess = NULL;
	for (struct mgrok_proxy *px = cl->proxies; px; px = px->next) {
		px->sess = NULL;
		px->bound = false;
	}
	if (cl->stopping)
		return;
	if (cl->conf->embedded) {
		/* Said once until a session opens again: a node that stays away
		 * (or refuses the secret) must not fill the log. */
		if (!cl->failing)
			MGROK_WARN("relay %s: session %u: %s (trying again)", cl->conf->server,
			           s->id, reason);
		else
			MGROK_DEBUG("relay %s: session %u: %s", cl->conf->server, s->id, reason);
		cl->failing = true;
	} else if (why == MGROK_CLOSE_DENIED || why == MGROK_CLOSE_TLS_CERT) {
		/* The server said no, or is not who it should be: retrying cannot
		 * change that (unless asked to). The reason is its text or TLS's. */
		if (why == MGROK_CLOSE_DENIED)
			fprintf(stderr, "mgrok: the server refused the connection: %s\n", reason);
		else
			fprintf(stderr, "mgrok: %s\n", reason);
		MGROK_ERROR("session %u: %s: %s", s->id,
		            why == MGROK_CLOSE_DENIED ? "refused by the server"
		                                      : "server not verified",
		            reason);
		if (!cl->conf->retry_on_deny) {
			stop(cl, 1);
			return;
		}
	} else if (why == MGROK_CLOSE_GOAWAY && s->peer_goaway == MGROK_GOAWAY_REPLACED) {
		fprintf(stderr, "mgrok: another client with the same identity took over: %s\n",
		        reason);
		MGROK_ERROR("session %u: replaced by another session of this client", s->id);
		stop(cl, 1);
		return;
	} else {
		MGROK_WARN("session %u: %s", s->id, reason);
	}
	if (s->open && ev_now(cl->ctx->loop) - cl->opened_at > MGROK_SESSION_STABLE_AFTER)
		cl->backoff = cl->conf->reconnect_initial;
	schedule_reconnect(cl);
}

static const struct mgrok_session_ops cl_ops = {
        .on_open = cl_on_open,
        .on_frame = cl_on_frame,
        .on_close = cl_on_close,
};

/* ---- connecting ------------------------------------------------------------ */

static void on_retry(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct mgrok_client *cl = MGROK_CONTAINER_OF(w, struct mgrok_client, retry);
	connect_now(cl);
}

static void connect_now(struct mgrok_client *cl)
{
	char err[256];
	struct mgrok_sockaddr sa;
	/* Resolved at each attempt: the server may have moved. */
	if (mgrok_addr_resolve(cl->conf->server, NULL, &sa, err, sizeof(err)) < 0) {
		MGROK_WARN("%s", err);
		schedule_reconnect(cl);
		return;
	}
	int fd = socket(sa.ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		MGROK_ERROR("socket: %s", strerror(errno));
		schedule_reconnect(cl);
		return;
	}
	mgrok_socket_tune(fd);
	if (connect(fd, (struct sockaddr *)&sa.ss, sa.len) < 0 && errno != EINPROGRESS) {
		MGROK_WARN("cannot connect to %s: %s", cl->conf->server, strerror(errno));
		close(fd);
		schedule_reconnect(cl);
		return;
	}
	if (cl->tls && cl->tls->insecure)
		MGROK_WARN("TLS certificate verification is off (tls.insecure): anyone on the path "
		           "can pose as %s",
		           cl->conf->server);
	/* A failed connect shows up as the session's first read or write error. */
	cl->server_addr = sa;
	cl->sess = mgrok_session_new(cl->ctx, fd, MGROK_ROLE_CLIENT, cl->tls, &cl_ops, cl);
	mgrok_addr_format((struct sockaddr *)&sa.ss, cl->sess->peer, sizeof(cl->sess->peer));
	cl->sess->hb_interval = cl->conf->heartbeat_interval;
	cl->sess->hb_timeout = cl->conf->heartbeat_timeout;
	mgrok_session_start_client(cl->sess, &cl->auth);
}

static void proxy_free(struct mgrok_client *cl, struct mgrok_proxy *px)
{
	mgrok_traffic_put(&cl->ctx->traffic, px->traffic);
	json_decref(px->register_options);
	json_decref(px->options);
	free(px);
}

/* A proxy of the client from its config entry, not linked anywhere yet;
 * NULL with err. */
static struct mgrok_proxy *proxy_make(struct mgrok_client *cl, const struct mgrok_proxy_conf *pc,
                                      char *err, size_t errlen)
{
	char perr[256];
	struct mgrok_plugin *p = mgrok_registry_find(&cl->reg, MGROK_PLUGIN_PROXY, pc->type);
	if (!p) {
		snprintf(err, errlen, "proxy %s: unknown type '%s' (no such plugin)", pc->name,
		         pc->type);
		return NULL;
	}
	if (mgrok_plugin_init(p, NULL, err, errlen) < 0)
		return NULL;
	struct mgrok_proxy *px = mgrok_xcalloc(1, sizeof(*px));
	px->plugin = p;
	snprintf(px->name, sizeof(px->name), "%s", pc->name);
	snprintf(px->local, sizeof(px->local), "%s", pc->local);
	px->proxy_protocol = pc->proxy_protocol;
	px->open_here = pc->open_here;
	px->open_arg = pc->open_arg;
	px->options = json_deep_copy(pc->options);
	int (*prepare)(void *, json_t *, char *, size_t) =
	        MGROK_PLUGIN_OP(p, proxy, client_options);
	/* Resolved once here, never on the data path. */
	if ((prepare && prepare(p->inst, px->options, perr, sizeof(perr)) < 0) ||
	    (p->desc->proxy->check_options &&
	     p->desc->proxy->check_options(p->inst, px->options, perr, sizeof(perr)) < 0) ||
	    mgrok_addr_resolve(pc->local, "127.0.0.1", &px->addr, perr, sizeof(perr)) < 0) {
		snprintf(err, errlen, "proxy %s: %s", pc->name, perr);
		proxy_free(cl, px);
		return NULL;
	}
	px->spec.name = px->name;
	px->spec.type = p->desc->wire_id;
	px->spec.remote_port = pc->remote_port;
	px->spec.local_port = mgrok_addr_port((struct sockaddr *)&px->addr.ss);
	px->spec.options = px->options;
	px->traffic = mgrok_traffic_get(&cl->ctx->traffic, px->name, p->desc->name, "");
	if (pc->group) { /* the server's keys, not the plugin's: only in the REGISTER */
		px->register_options = json_deep_copy(px->options);
		json_object_set_new(px->register_options, "group", json_string(pc->group));
		json_object_set_new(px->register_options, "group_key", json_string(pc->group_key));
	}
	px->spec.addr = (struct sockaddr *)&px->addr.ss;
	px->spec.addr_len = px->addr.len;
	return px;
}

static int setup_proxies(struct mgrok_client *cl, char *err, size_t errlen)
{
	struct mgrok_proxy **tail = &cl->proxies;
	for (size_t i = 0; i < cl->conf->n_proxies; i++) {
		struct mgrok_proxy *px = proxy_make(cl, &cl->conf->proxies[i], err, errlen);
		if (!px)
			return -1;
		*tail = px;
		tail = &px->next;
	}
	return 0;
}

/* ---- SIGHUP: the config's proxies again, applied as a difference ---------- */

static bool proxy_same(const struct mgrok_proxy *a, const struct mgrok_proxy *b)
{
	return a->plugin == b->plugin && strcmp(a->local, b->local) == 0 &&
	       a->spec.remote_port == b->spec.remote_port &&
	       a->proxy_protocol == b->proxy_protocol && json_equal(a->options, b->options) &&
	       !a->register_options == !b->register_options &&
	       (!a->register_options || json_equal(a->register_options, b->register_options));
}

/* Unlinks px, ends its streams and tells the server; px is gone. */
static void proxy_drop(struct mgrok_client *cl, struct mgrok_proxy *px)
{
	struct mgrok_proxy **pp = &cl->proxies;
	while (*pp != px)
		pp = &(*pp)->next;
	*pp = px->next;
	if (cl->sess) {
		mgrok_stream_reset_proxy(&cl->sess->relay, px, MGROK_RESET_CANCEL);
		struct mgrok_frame f = {.type = MGROK_FRAME_UNREGISTER};
		f.u.unreg_name.p = (const uint8_t *)px->name;
		f.u.unreg_name.len = strlen(px->name);
		/* A relay's REGISTER may be unanswered still: the server takes
		 * the UNREGISTER after it, and nothing waits for its answer. */
		if (px->bound || (cl->conf->embedded && cl->sess->open && !px->refused))
			mgrok_session_send(cl->sess, &f);
	}
	proxy_free(cl, px);
}

/* Links px last and registers it when a session is up. */
static void proxy_add(struct mgrok_client *cl, struct mgrok_proxy *px)
{
	struct mgrok_proxy **pp = &cl->proxies;
	while (*pp)
		pp = &(*pp)->next;
	*pp = px;
	if (cl->sess && cl->sess->open) {
		px->sess = cl->sess;
		send_register(cl->sess, px);
		cl->acks_pending++;
	}
}

static const struct mgrok_proxy_conf *conf_proxy(const struct mgrok_client_conf *c,
                                                 const char *name)
{
	for (size_t i = 0; i < c->n_proxies; i++)
		if (strcmp(c->proxies[i].name, name) == 0)
			return &c->proxies[i];
	return NULL;
}

/* One entry of the new config: kept, replaced, or added. */
static void apply_entry(struct mgrok_client *cl, const struct mgrok_proxy_conf *pc)
{
	char err[512];
	struct mgrok_proxy *now = find_proxy(cl, (const uint8_t *)pc->name, strlen(pc->name));
	struct mgrok_proxy *px = proxy_make(cl, pc, err, sizeof(err));
	if (!px) {
		MGROK_ERROR("reload: %s (%s)", err, now ? "keeping it as it was" : "not added");
		return;
	}
	if (now && proxy_same(now, px)) {
		proxy_free(cl, px);
		return;
	}
	MGROK_INFO("reload: proxy %s %s", pc->name,
	           now ? "changed: registering it again" : "added");
	if (now)
		proxy_drop(cl, now);
	proxy_add(cl, px);
}

int mgrok_client_add_proxy(struct mgrok_client *cl, const struct mgrok_proxy_conf *pc, char *err,
                           size_t errlen)
{
	if (find_proxy(cl, (const uint8_t *)pc->name, strlen(pc->name))) {
		snprintf(err, errlen, "proxy %s: already there", pc->name);
		return -1;
	}
	struct mgrok_proxy *px = proxy_make(cl, pc, err, errlen);
	if (!px)
		return -1;
	proxy_add(cl, px);
	return 0;
}

void mgrok_client_remove_proxy(struct mgrok_client *cl, const char *name)
{
	struct mgrok_proxy *px = find_proxy(cl, (const uint8_t *)name, strlen(name));
	if (px)
		proxy_drop(cl, px);
}

void mgrok_client_reload(struct mgrok_client *cl, const struct mgrok_client_conf *fresh)
{
	if (strcmp(fresh->server, cl->conf->server) != 0)
		MGROK_WARN("reload: server changed to %s: that takes a restart", fresh->server);
	const char *was = cl->conf->admin.listen, *is = fresh->admin.listen;
	if (!was != !is || (was && strcmp(was, is) != 0))
		MGROK_WARN("reload: admin.listen changed: that takes a restart");
	for (struct mgrok_proxy *px = cl->proxies, *next; px; px = next) {
		next = px->next;
		if (!conf_proxy(fresh, px->name)) {
			MGROK_INFO("reload: proxy %s removed", px->name);
			proxy_drop(cl, px);
		}
	}
	for (size_t i = 0; i < fresh->n_proxies; i++)
		apply_entry(cl, &fresh->proxies[i]);
}

struct mgrok_client *mgrok_client_new(struct mgrok_ctx *ctx, const struct mgrok_client_conf *c,
                                      bool check_only, char *err, size_t errlen)
{
	struct mgrok_client *cl = mgrok_xcalloc(1, sizeof(*cl));
	cl->ctx = ctx;
	cl->conf = c;
	cl->backoff = c->reconnect_initial;
	ev_timer_init(&cl->retry, on_retry, 0., 0.);
	ev_timer_init(&cl->reregister, on_reregister, MGROK_RELAY_RETRY, 0.);
	const char *dir = c->plugin_dir ? c->plugin_dir : mgrok_default_plugin_dir();
	if (mgrok_registry_load_dir(&cl->reg, dir, c->plugins, c->n_plugins, err, errlen) < 0)
		goto fail;
	struct mgrok_plugin *ap = mgrok_registry_find(&cl->reg, MGROK_PLUGIN_AUTH, c->auth.method);
	if (!ap) {
		snprintf(err, errlen, "auth method '%s': no such plugin in %s", c->auth.method,
		         dir);
		goto fail;
	}
	if (mgrok_plugin_init(ap, c->auth.options, err, errlen) < 0)
		goto fail;
	cl->auth = (struct mgrok_auth_method){.name = ap->desc->name,
	                                      .id = ap->desc->wire_id,
	                                      .ops = ap->desc->auth,
	                                      .inst = ap->inst};
	if (setup_proxies(cl, err, errlen) < 0)
		goto fail;
	if (c->tls.enabled) {
		char host[256];
		uint16_t port;
		if (mgrok_addr_split(c->server, NULL, host, sizeof(host), &port, err, errlen) < 0 ||
		    !(cl->tls = mgrok_tls_client_new(&c->tls, host, err, errlen)))
			goto fail;
	}
	if (check_only)
		return cl;
	if (mgrok_client_admin_start(cl, err, errlen) < 0)
		goto fail;
	/* Kept across reconnects so that the server can tell a stale session
	 * of this very process from another client (doc/protocol.md 3.5). */
	uint8_t id[16];
	mgrok_host_table.random(id, sizeof(id));
	for (int i = 0; i < 16; i++)
		snprintf(cl->client_id + 2 * i, 3, "%02x", id[i]);
	connect_now(cl);
	return cl;
fail:
	mgrok_client_free(cl);
	return NULL;
}

void mgrok_client_shutdown(struct mgrok_client *cl)
{
	cl->stopping = true;
	ev_timer_stop(cl->ctx->loop, &cl->retry);
	ev_timer_stop(cl->ctx->loop, &cl->reregister);
	if (cl->sess)
		mgrok_session_close(cl->sess, MGROK_GOAWAY_NORMAL, MGROK_CLOSE_LOCAL,
		                    "client shutting down");
}

bool mgrok_client_connected(const struct mgrok_client *cl) { return cl->sess && cl->sess->open; }

int mgrok_client_exit_code(const struct mgrok_client *cl) { return cl->exit_code; }

void mgrok_client_free(struct mgrok_client *cl)
{
	if (!cl)
		return;
	mgrok_client_shutdown(cl);
	mgrok_admin_free(cl->admin);
	while (cl->proxies) {
		struct mgrok_proxy *px = cl->proxies;
		cl->proxies = px->next;
		proxy_free(cl, px);
	}
	mgrok_registry_free(&cl->reg);
	mgrok_tls_free(cl->tls);
	free(cl);
}
