/*
 * Every node serves every claim (doc/cluster.md 3 and 4): this node is a
 * client, method "cluster", of each other node, and registers there every
 * port and name it has claimed. A visitor that reaches another node is a
 * NEW_STREAM on that relay session; here it becomes a stream on the proxy
 * that holds the claim, with the visitor's address, and the two streams
 * are joined (stream.h): DATA in one goes out as DATA of the other, with
 * the credit passed back. UDP is relayed to this node's own public port
 * instead (the visitor's address is not carried there).
 *
 * The nodes find each other in Redis: each holds the claim
 * "mgrok:node:NAME" = "NAME|ADDRESS" and lists the others every third of a
 * lease; a node whose claim ended is let go.
 */
#include "server_impl.h"

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <openssl/evp.h>

#include "claims.h"
#include "client.h"
#include "group.h"
#include "log.h"
#include "plugin_loader.h"
#include "proxy.h"
#include "stream.h"
#include "tls.h"

#define NODE_PREFIX "mgrok:node:"
#define RELAY_ADDR_MAX 280 /* "host:port", a host name of 253 at most */

/* Another node, and our client of it. */
struct relay_peer {
	struct relay_peer *next;
	char name[MGROK_NAME_MAX + 1];
	char address[RELAY_ADDR_MAX];
	struct mgrok_client_conf conf;
	struct mgrok_client *cl;
	bool seen; /* in the last listing */
};

/* A claim this node holds, registered on every peer as one proxy. */
struct relay_binding {
	struct relay_binding *next;
	struct mgrok_relays *rs;
	char *key;
	struct mgrok_proxy *target; /* the proxy, or its group's anchor */
	unsigned refs;              /* a group's members on this node */
	char name[20];              /* "c" and 16 hex digits of the key's hash */
	char local[RELAY_ADDR_MAX];
	struct mgrok_proxy_conf pc;
};

struct mgrok_relays {
	struct mgrok_server *srv;
	/* With TLS on the control port: this node's certificate, which every
	 * node serves (one public name behind one balancer), pinned. */
	char pin[MGROK_FINGERPRINT_LEN];
	struct mgrok_ctx ctx; /* the relays' own: session ids and counters apart */
	struct mgrok_claim *self;
	ev_timer tick;
	struct relay_peer *peers;
	struct relay_binding *bindings;
};

/* ---- bindings ------------------------------------------------------------------ */

static void hashed_name(const char *key, char out[20])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned n = 0;
	if (!EVP_Digest(key, strlen(key), md, &n, EVP_sha256(), NULL) || n < 8)
		memset(md, 0, 8);
	out[0] = 'c';
	for (int i = 0; i < 8; i++)
		snprintf(out + 1 + 2 * i, 3, "%02x", md[i]);
}

/* A relayed visitor: a stream on the claim's proxy, joined to the relay's. */
static void open_here(void *arg, struct mgrok_stream *st, const struct sockaddr *source)
{
	struct relay_binding *b = arg;
	struct sockaddr_in none = {.sin_family = AF_INET};
	const struct sockaddr *src = source ? source : (const struct sockaddr *)&none;
	socklen_t len = src->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
	                                           : sizeof(struct sockaddr_in);
	struct mgrok_proxy *to = b->target;
	if (to->group && to->group->anchor == to)
		to = mgrok_group_pick_local(to->group);
	struct mgrok_stream *in = to ? mgrok_stream_open_visitor(to, src, len) : NULL;
	if (!in) {
		mgrok_stream_reset(st, MGROK_RESET_REFUSED);
		return;
	}
	mgrok_stream_join(st, in);
}

/* Where this node serves b itself: UDP is relayed there. */
static void own_address(const struct mgrok_server *srv, uint16_t port, char *out, size_t len)
{
	struct mgrok_sockaddr a = srv->bind_addr;
	if (a.ss.ss_family == AF_INET &&
	    ((struct sockaddr_in *)&a.ss)->sin_addr.s_addr == htonl(INADDR_ANY))
		((struct sockaddr_in *)&a.ss)->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (a.ss.ss_family == AF_INET6 &&
	    !memcmp(&((struct sockaddr_in6 *)&a.ss)->sin6_addr, &in6addr_any, sizeof(in6addr_any)))
		((struct sockaddr_in6 *)&a.ss)->sin6_addr = in6addr_loopback;
	mgrok_addr_set_port((struct sockaddr *)&a.ss, port);
	mgrok_addr_format((struct sockaddr *)&a.ss, out, len);
}

static struct relay_binding *binding_new(struct mgrok_relays *rs, const char *key,
                                         const struct mgrok_proxy *px, const char *hostname)
{
	struct relay_binding *b = mgrok_xcalloc(1, sizeof(*b));
	b->rs = rs;
	b->key = mgrok_xstrdup(key);
	b->target = px->group ? px->group->anchor : (struct mgrok_proxy *)px;
	hashed_name(key, b->name);
	b->pc.name = b->name;
	b->pc.type = (char *)px->plugin->desc->name;
	b->pc.options = json_deep_copy(b->target->options);
	/* A name the options do not say (a random one) is said outright. */
	if (hostname && !json_object_get(b->pc.options, "subdomain") &&
	    !json_object_get(b->pc.options, "hostname"))
		json_object_set_new(b->pc.options, "hostname", json_string(hostname));
	/* A group's relay joins the group on the other node: its visitors
	 * are spread over this node's members and that node's alike. */
	if (px->group) {
		b->pc.group = px->group->name;
		b->pc.group_key = px->group->key;
	}
	/* A datagram proxy's streams are not byte streams to join. */
	bool datagrams = MGROK_PLUGIN_OP(px->plugin, proxy, on_datagram) != NULL;
	if (!hostname)
		b->pc.remote_port = b->target->spec.remote_port;
	own_address(rs->srv, hostname ? 1 : b->pc.remote_port, b->local, sizeof(b->local));
	b->pc.local = b->local;
	if (!datagrams) {
		b->pc.open_here = open_here;
		b->pc.open_arg = b;
	}
	return b;
}

static void binding_free(struct relay_binding *b)
{
	json_decref(b->pc.options);
	free(b->key);
	free(b);
}

static void peer_add_binding(struct relay_peer *p, struct relay_binding *b)
{
	char err[256];
	if (p->cl && mgrok_client_add_proxy(p->cl, &b->pc, err, sizeof(err)) < 0)
		MGROK_WARN("relay to %s: %s", p->name, err);
}

void mgrok_relays_bind(struct mgrok_relays *rs, const struct mgrok_proxy *px, const char *key,
                       const char *hostname)
{
	if (!rs)
		return;
	for (struct relay_binding *b = rs->bindings; b; b = b->next)
		if (strcmp(b->key, key) == 0) {
			b->refs++;
			return;
		}
	struct relay_binding *b = binding_new(rs, key, px, hostname);
	b->refs = 1;
	b->next = rs->bindings;
	rs->bindings = b;
	for (struct relay_peer *p = rs->peers; p; p = p->next)
		peer_add_binding(p, b);
}

void mgrok_relays_unbind(struct mgrok_relays *rs, const char *key)
{
	if (!rs)
		return;
	for (struct relay_binding **pp = &rs->bindings, *b; (b = *pp); pp = &b->next) {
		if (strcmp(b->key, key) != 0)
			continue;
		if (--b->refs)
			return;
		*pp = b->next;
		for (struct relay_peer *p = rs->peers; p; p = p->next)
			if (p->cl)
				mgrok_client_remove_proxy(p->cl, b->name);
		binding_free(b);
		return;
	}
}

/* ---- peers ----------------------------------------------------------------------- */

static struct relay_peer *peer_new(struct mgrok_relays *rs, const char *name, const char *address)
{
	const struct mgrok_server_conf *sc = rs->srv->conf;
	struct relay_peer *p = mgrok_xcalloc(1, sizeof(*p));
	snprintf(p->name, sizeof(p->name), "%s", name);
	snprintf(p->address, sizeof(p->address), "%s", address);
	struct mgrok_client_conf *c = &p->conf;
	c->server = p->address;
	c->auth.method = "cluster";
	c->auth.options = mgrok_cluster_auth_options(&sc->cluster);
	c->plugin_dir = sc->plugin_dir;
	c->plugins = sc->plugins;
	c->n_plugins = sc->n_plugins;
	c->heartbeat_interval = sc->heartbeat_interval;
	c->heartbeat_timeout = sc->heartbeat_timeout;
	c->reconnect_initial = MGROK_RELAY_RETRY / 2;
	c->reconnect_max = MGROK_RELAY_RETRY * 2;
	c->retry_on_deny = true;
	c->tls.enabled = rs->pin[0] != '\0';
	c->tls.fingerprint = rs->pin;
	c->embedded = true;
	char err[512];
	p->cl = mgrok_client_new(&rs->ctx, c, false, err, sizeof(err));
	if (!p->cl)
		MGROK_ERROR("relay to node %s at %s: %s", name, address, err);
	else
		MGROK_INFO("relay to node %s at %s", name, address);
	for (struct relay_binding *b = rs->bindings; b; b = b->next)
		peer_add_binding(p, b);
	return p;
}

static void peer_free(struct relay_peer *p)
{
	mgrok_client_free(p->cl);
	json_decref(p->conf.auth.options);
	free(p);
}

/* The nodes in Redis: new ones get a relay, gone ones lose theirs. */
static void on_nodes(void *arg, size_t n, const char *const *keys, const char *const *values)
{
	struct mgrok_relays *rs = arg;
	for (struct relay_peer *p = rs->peers; p; p = p->next)
		p->seen = false;
	for (size_t i = 0; i < n; i++) {
		const char *name = keys[i] + strlen(NODE_PREFIX), *bar = strchr(values[i], '|');
		if (!bar || !strcmp(name, rs->srv->node) || !mgrok_name_valid(name, strlen(name)))
			continue;
		struct relay_peer **pp = &rs->peers;
		while (*pp && strcmp((*pp)->name, name) != 0)
			pp = &(*pp)->next;
		if (*pp && strcmp((*pp)->address, bar + 1) != 0) { /* moved: a new relay */
			struct relay_peer *gone = *pp;
			*pp = gone->next;
			peer_free(gone);
		}
		if (!*pp) {
			struct relay_peer *p = peer_new(rs, name, bar + 1);
			p->next = rs->peers;
			rs->peers = p;
		}
		for (struct relay_peer *p = rs->peers; p; p = p->next)
			if (!strcmp(p->name, name))
				p->seen = true;
	}
	for (struct relay_peer **pp = &rs->peers, *p; (p = *pp);) {
		if (p->seen) {
			pp = &p->next;
			continue;
		}
		MGROK_INFO("relay to node %s: the node is gone", p->name);
		*pp = p->next;
		peer_free(p);
	}
}

static void on_self(void *arg, struct mgrok_claim *c, enum mgrok_claim_status st)
{
	struct mgrok_relays *rs = arg;
	if (st == MGROK_CLAIM_OK)
		return;
	if (st == MGROK_CLAIM_TAKEN)
		MGROK_ERROR("cluster: another node is named %s: give each node its own "
		            "cluster.node",
		            rs->srv->node);
	mgrok_claim_release(c);
	rs->self = NULL; /* taken again at the next tick */
}

static void on_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct mgrok_relays *rs = MGROK_CONTAINER_OF(w, struct mgrok_relays, tick);
	const struct mgrok_server *srv = rs->srv;
	if (!rs->self) {
		char key[sizeof(NODE_PREFIX) + MGROK_NAME_MAX],
		        value[MGROK_NAME_MAX + RELAY_ADDR_MAX + 2];
		snprintf(key, sizeof(key), NODE_PREFIX "%s", srv->node);
		snprintf(value, sizeof(value), "%s|%s", srv->node,
		         srv->conf->cluster.address ? srv->conf->cluster.address
		                                    : srv->conf->listen);
		rs->self = mgrok_claim_take(srv->claims, key, value, on_self, rs);
	}
	mgrok_claims_list(srv->claims, NODE_PREFIX, on_nodes, rs);
}

void mgrok_relays_count(const struct mgrok_relays *rs, unsigned *known, unsigned *up)
{
	*known = *up = 0;
	for (const struct relay_peer *p = rs->peers; p; p = p->next) {
		(*known)++;
		*up += p->cl && mgrok_client_connected(p->cl);
	}
}

struct mgrok_relays *mgrok_relays_new(struct mgrok_server *srv, char *err, size_t errlen)
{
	struct mgrok_relays *rs = mgrok_xcalloc(1, sizeof(*rs));
	rs->srv = srv;
	if (srv->conf->tls.cert && mgrok_tls_fingerprint_file(srv->conf->tls.cert, rs->pin,
	                                                      sizeof(rs->pin), err, errlen) < 0) {
		free(rs);
		return NULL;
	}
	mgrok_ctx_init(&rs->ctx, srv->ctx->loop);
	/* Far from the server's own, so that a log line tells them apart. */
	rs->ctx.next_session_id = 1000000;
	double every = srv->conf->cluster.lease / 3;
	ev_timer_init(&rs->tick, on_tick, every / 10, every);
	ev_timer_start(srv->ctx->loop, &rs->tick);
	return rs;
}

void mgrok_relays_free(struct mgrok_relays *rs)
{
	if (!rs)
		return;
	ev_timer_stop(rs->srv->ctx->loop, &rs->tick);
	while (rs->peers) {
		struct relay_peer *p = rs->peers;
		rs->peers = p->next;
		peer_free(p);
	}
	while (rs->bindings) {
		struct relay_binding *b = rs->bindings;
		rs->bindings = b->next;
		binding_free(b);
	}
	mgrok_claim_release(rs->self);
	mgrok_ctx_free(&rs->ctx);
	free(rs);
}
