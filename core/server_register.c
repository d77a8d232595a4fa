/*
 * REGISTER and UNREGISTER on the server (doc/protocol.md 3.1): the checks,
 * in the protocol's order, the identity's rules, binding the public port
 * or claiming the name, and the answer; host functions name_claim and
 * name_lookup.
 */
#include "server_impl.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "addr.h"
#include "group.h"
#include "host.h"
#include "defaults.h"
#include "log.h"
#include "metrics.h"
#include "names.h"
#include "plugin_loader.h"
#include "proxy.h"
#include "session.h"
#include "stream.h"

static void send_ack(struct srv_session *ss, uint8_t proxy_type, struct mgrok_bytes name,
                     uint8_t status, uint16_t port, const char *message)
{
	struct mgrok_frame f = {.type = MGROK_FRAME_REGISTER_ACK};
	f.u.ack.status = status;
	f.u.ack.proxy_type = proxy_type;
	f.u.ack.remote_port = port;
	f.u.ack.name = name;
	if (f.u.ack.name.len > UINT8_MAX) /* a str8 echoes at most that much */
		f.u.ack.name.len = UINT8_MAX;
	f.u.ack.message.p = (const uint8_t *)message;
	f.u.ack.message.len = strnlen(message, MGROK_MESSAGE_MAX);
	mgrok_session_send(ss->sess, &f);
	if (status != MGROK_ACK_OK)
		MGROK_SESSION_LOG(ss->sess, MGROK_LOGK_REGISTER, MGROK_LOG_INFO,
		                  "session %u: REGISTER '%.*s' refused: %s", ss->sess->id,
		                  (int)f.u.ack.name.len, (const char *)f.u.ack.name.p, message);
}

static struct mgrok_proxy *find_proxy(struct srv_session *ss, const uint8_t *name, size_t len)
{
	for (struct mgrok_proxy *px = ss->proxies; px; px = px->next)
		if (strlen(px->name) == len && memcmp(px->name, name, len) == 0)
			return px;
	return NULL;
}

/* A REGISTER's group, from its options (empty name: none). */
struct reg_group {
	char name[MGROK_NAME_MAX + 1];
	char key[MGROK_GROUP_KEY_MAX + 1];
};

static void group_leave(struct mgrok_server *srv, struct mgrok_proxy *px);

void mgrok_server_proxy_free(struct srv_session *ss, struct mgrok_proxy *px)
{
	mgrok_server_unclaim(px); /* first: a group member asks its group who is left */
	if (ss->sess) {
		mgrok_visitor_drop_proxy(&ss->sess->relay, px);
		mgrok_stream_reset_proxy(&ss->sess->relay, px, MGROK_RESET_CANCEL);
	}
	mgrok_names_release(&ss->srv->names, &px->names);
	if (px->group)
		group_leave(ss->srv, px);
	if (px->bound)
		px->plugin->desc->proxy->server_unbind(px->plugin->inst, px->state);
	mgrok_traffic_put(&ss->srv->ctx->traffic, px->traffic);
	json_decref(px->options);
	free(px);
}

/* The host part of a public address: configured, the bind address, or the
 * address the client reached us on. */
static void public_host(struct srv_session *ss, char *buf, size_t len)
{
	const struct mgrok_server_conf *c = ss->srv->conf;
	struct mgrok_sockaddr local = ss->srv->bind_addr;
	if (c->public_host) {
		snprintf(buf, len, "%s", c->public_host);
		return;
	}
	bool wildcard = (local.ss.ss_family == AF_INET &&
	                 ((struct sockaddr_in *)&local.ss)->sin_addr.s_addr == htonl(INADDR_ANY)) ||
	                (local.ss.ss_family == AF_INET6 &&
	                 !memcmp(&((struct sockaddr_in6 *)&local.ss)->sin6_addr, &in6addr_any,
	                         sizeof(in6addr_any)));
	if (wildcard) {
		local.len = sizeof(local.ss);
		getsockname(ss->sess->tr.fd, (struct sockaddr *)&local.ss, &local.len);
	}
	char text[MGROK_ADDRSTRLEN];
	mgrok_addr_format((struct sockaddr *)&local.ss, text, sizeof(text));
	*strrchr(text, ':') = '\0'; /* drop the port */
	snprintf(buf, len, "%s", text);
}

_Static_assert((int)MGROK_AUTHZ_OK == MGROK_ACK_OK && (int)MGROK_AUTHZ_LIMIT == MGROK_ACK_LIMIT &&
                       (int)MGROK_AUTHZ_FORBIDDEN == MGROK_ACK_FORBIDDEN &&
                       (int)MGROK_AUTHZ_PORT_NOT_ALLOWED == MGROK_ACK_PORT_NOT_ALLOWED,
               "an authorize() verdict is the REGISTER_ACK status it refuses with");

/* A refusing verdict as the ack status it names (enum mgrok_authz_result is
 * made of them); a value a plugin made up refuses as FORBIDDEN. */
static uint8_t refusal(int verdict)
{
	switch (verdict) {
	case MGROK_AUTHZ_PORT_NOT_ALLOWED:
	case MGROK_AUTHZ_LIMIT:
	case MGROK_AUTHZ_FORBIDDEN: return (uint8_t)verdict;
	default: return MGROK_ACK_FORBIDDEN;
	}
}

/* The auth plugin's verdict on a REGISTER (ABI 1.1), MGROK_AUTHZ_OK without one. */
static int authorize_as(struct srv_session *ss, const struct mgrok_proxy *px,
                        const struct mgrok_authz *a, char *reason, size_t len)
{
	int (*op)(void *, const struct mgrok_authz *, char *, size_t) =
	        ss->method ? MGROK_PLUGIN_OP(ss->method->plugin, auth, authorize) : NULL;
	reason[0] = '\0';
	if (op)
		return op(ss->method->m.inst, a, reason, len);
	/* No opinion of the method's own: the server's domain is for all. */
	if (a->hostname && !mgrok_hostname_in_domain(a->hostname, a->domain)) {
		snprintf(reason, len, "%s is not a subdomain of %s", a->hostname,
		         a->domain ? a->domain : "this server's domain (none is set)");
		return MGROK_AUTHZ_FORBIDDEN;
	}
	return MGROK_AUTHZ_OK;
}

static int authorize(struct srv_session *ss, const struct mgrok_proxy *px, uint16_t port,
                     char *reason, size_t len)
{
	struct mgrok_authz a = {
	        .identity = ss->identity,
	        .name = px->name,
	        .type = px->plugin->desc->name,
	        .remote_port = port,
	        .proxies = ss->nproxies,
	};
	return authorize_as(ss, px, &a, reason, len);
}

int mgrok_server_name_claim(struct mgrok_proxy *px, const char *name, const char *domain,
                            char *reason, size_t len)
{
	struct srv_session *ss = px->sess ? px->sess->owner : NULL;
	char folded[MGROK_HOSTNAME_MAX + 1];
	const char *why = mgrok_hostname_check(name, folded);
	if (!ss)
		return MGROK_ACK_INVALID;
	if (why) {
		snprintf(reason, len, "%s", why);
		return MGROK_ACK_INVALID;
	}
	struct mgrok_authz a = {
	        .identity = ss->identity,
	        .name = px->name,
	        .type = px->plugin->desc->name,
	        .proxies = ss->nproxies,
	        .hostname = folded,
	        .domain = domain,
	};
	int verdict = ss->node ? MGROK_AUTHZ_OK : authorize_as(ss, px, &a, reason, len);
	if (verdict != MGROK_AUTHZ_OK) {
		if (!reason[0])
			snprintf(reason, len, "'%s' may not use %s", ss->identity, folded);
		return refusal(verdict);
	}
	if (mgrok_names_claim(&ss->srv->names, px, px->plugin, folded, &px->names) < 0) {
		snprintf(reason, len, "%s is in use", folded);
		return MGROK_ACK_NAME_IN_USE;
	}
	return MGROK_ACK_OK;
}

const struct mgrok_server_conf *mgrok_server_conf(const struct mgrok_server *srv)
{
	return srv->conf;
}

struct mgrok_proxy *mgrok_server_name_lookup(struct mgrok_server *srv, const struct mgrok_plugin *p,
                                             const char *name)
{
	return mgrok_names_lookup(&srv->names, p, name);
}

/* The index of port in the allowed ranges, walked in order. */
static uint32_t port_index(const struct mgrok_server *srv, uint16_t port)
{
	uint32_t k = 0;
	for (size_t i = 0; i < srv->n_allow_ports; i++) {
		const struct mgrok_port_range *r = &srv->allow_ports[i];
		if (port >= r->lo && port <= r->hi)
			return k + (uint32_t)(port - r->lo);
		k += (uint32_t)(r->hi - r->lo) + 1;
	}
	return 0;
}

/* Binds px on port, or on a free allowed port when port is 0: from a
 * random one, or (after, a port another node had) from the next. */
static int bind_port_after(struct srv_session *ss, struct mgrok_proxy *px, uint16_t port,
                           uint16_t after, char *err, size_t errlen)
{
	const struct mgrok_server *srv = ss->srv;
	const struct mgrok_proxy_ops *ops = px->plugin->desc->proxy;
	uint16_t control = mgrok_addr_port((struct sockaddr *)&srv->listen_addr.ss);

	uint32_t span = 0;
	for (size_t i = 0; i < srv->n_allow_ports; i++)
		span += (uint32_t)(srv->allow_ports[i].hi - srv->allow_ports[i].lo) + 1;
	/* Port 0: walk the allowed ranges from a random point so that
	 * sessions do not all collide on the first port. */
	uint32_t start = 0;
	if (!port && span && after) {
		start = (port_index(srv, after) + 1) % span;
	} else if (!port && span) {
		mgrok_host_table.random(&start, sizeof(start));
		start %= span;
	}
	uint32_t tries = port ? 1 : (span < MGROK_PORT_PICK_TRIES ? span : MGROK_PORT_PICK_TRIES);
	for (uint32_t t = 0; t < tries; t++) {
		uint16_t p = port;
		if (!port) {
			uint32_t k = (start + t) % span;
			for (size_t i = 0; i < srv->n_allow_ports; i++) {
				uint32_t n = (uint32_t)(srv->allow_ports[i].hi -
				                        srv->allow_ports[i].lo) +
				             1;
				if (k < n) {
					p = (uint16_t)(srv->allow_ports[i].lo + k);
					break;
				}
				k -= n;
			}
			char why[128];
			if (p == control ||
			    authorize(ss, px, p, why, sizeof(why)) != MGROK_AUTHZ_OK)
				continue;
		}
		px->addr = ss->srv->bind_addr;
		mgrok_addr_set_port((struct sockaddr *)&px->addr.ss, p);
		px->spec.remote_port = p;
		px->spec.addr = (struct sockaddr *)&px->addr.ss;
		px->spec.addr_len = px->addr.len;
		err[0] = '\0';
		int rc = ops->server_bind(px->plugin->inst, px, &px->spec, &px->state, err, errlen);
		if (rc == 0)
			return 0;
		if (rc != -EADDRINUSE)
			return rc;
	}
	snprintf(err, errlen, port ? "port %u is in use" : "no free port among those you may use",
	         port);
	return -EADDRINUSE;
}

static int bind_port(struct srv_session *ss, struct mgrok_proxy *px, uint16_t port, char *err,
                     size_t errlen)
{
	return bind_port_after(ss, px, port, 0, err, errlen);
}

/*
 * What a REGISTER can be refused for before anything is made for it, in the
 * order of doc/protocol.md 3.1 (the identity's own rules come after).
 * Returns MGROK_ACK_OK with *plugin set, or the status to refuse with and
 * msg. *options is the caller's to release either way (it may be NULL).
 */
/* The host's own options, "group" and "group_key", taken out of the
 * plugin's (doc/protocol.md 3.1). */
static uint8_t take_group(json_t *options, struct reg_group *rg, char *msg, size_t len)
{
	const json_t *g = json_object_get(options, "group"),
	             *k = json_object_get(options, "group_key");
	rg->name[0] = rg->key[0] = '\0';
	if (!g && !k)
		return MGROK_ACK_OK;
	const char *name = json_string_value(g), *key = json_string_value(k);
	if (!name || !mgrok_name_valid(name, strlen(name)) || !key || !*key ||
	    strlen(key) > MGROK_GROUP_KEY_MAX) {
		snprintf(msg, len,
		         "group must be a name (" MGROK_NAME_RULE ") and group_key 1-%d bytes, "
		         "both given",
		         MGROK_GROUP_KEY_MAX);
		return MGROK_ACK_INVALID;
	}
	snprintf(rg->name, sizeof(rg->name), "%s", name);
	snprintf(rg->key, sizeof(rg->key), "%s", key);
	json_object_del(options, "group");
	json_object_del(options, "group_key");
	return MGROK_ACK_OK;
}

static uint8_t check_register(struct srv_session *ss, const struct mgrok_frame *f,
                              struct mgrok_plugin **plugin, json_t **options, struct reg_group *rg,
                              char *msg, size_t len)
{
	const struct mgrok_bytes *name = &f->u.reg.name, *opts = &f->u.reg.options;
	*options = NULL;
	if (!mgrok_name_valid((const char *)name->p, name->len)) {
		snprintf(msg, len, "invalid name: " MGROK_NAME_RULE);
		return MGROK_ACK_INVALID;
	}
	*options = !opts->len                       ? json_object()
	           : opts->len <= MGROK_OPTIONS_MAX ? json_loadb((const char *)opts->p, opts->len,
	                                                         JSON_REJECT_DUPLICATES, NULL)
	                                            : NULL;
	if (!json_is_object(*options)) {
		snprintf(msg, len,
		         "options must be a JSON object of at most " MGROK_STR(
		                 MGROK_OPTIONS_MAX) " bytes");
		return MGROK_ACK_INVALID;
	}
	uint8_t st = take_group(*options, rg, msg, len);
	if (st != MGROK_ACK_OK)
		return st;
	struct mgrok_plugin *p =
	        mgrok_registry_find_id(&ss->srv->reg, MGROK_PLUGIN_PROXY, f->u.reg.proxy_type);
	if (p && p->desc->proxy->check_options &&
	    p->desc->proxy->check_options(p->inst, *options, msg, len) < 0)
		return MGROK_ACK_INVALID;
	if (!p) {
		snprintf(msg, len, "proxy type 0x%02x is not supported by this server",
		         f->u.reg.proxy_type);
		return MGROK_ACK_UNKNOWN_PROXY_TYPE;
	}
	if (find_proxy(ss, name->p, name->len)) {
		snprintf(msg, len, "a proxy of that name is already registered");
		return MGROK_ACK_NAME_IN_USE;
	}
	if (ss->nproxies >= ss->srv->conf->max_proxies && !ss->node) {
		snprintf(msg, len, "at most %u proxies per session", ss->srv->conf->max_proxies);
		return MGROK_ACK_LIMIT;
	}
	*plugin = p;
	return MGROK_ACK_OK;
}

/* The identity's own rules (LIMIT and FORBIDDEN, then its ports) and the
 * server's allowed ports, for px on port (0: the server picks). */
static uint8_t check_identity(struct srv_session *ss, const struct mgrok_proxy *px, uint16_t port,
                              char *msg, size_t len)
{
	const struct mgrok_server *srv = ss->srv;
	uint16_t control = mgrok_addr_port((struct sockaddr *)&srv->listen_addr.ss);
	if (ss->node) /* what another node claimed was allowed there */
		return MGROK_ACK_OK;
	int verdict = authorize(ss, px, 0, msg, len);
	if (verdict == MGROK_AUTHZ_OK && port &&
	    (port == control || !mgrok_port_allowed(srv->allow_ports, srv->n_allow_ports, port))) {
		snprintf(msg, len, "port %u is not allowed on this server", port);
		verdict = MGROK_AUTHZ_PORT_NOT_ALLOWED;
	}
	if (verdict == MGROK_AUTHZ_OK && port)
		verdict = authorize(ss, px, port, msg, len);
	if (verdict == MGROK_AUTHZ_OK)
		return MGROK_ACK_OK;
	if (!msg[0])
		snprintf(msg, len, "not allowed for '%s'", ss->identity);
	return refusal(verdict);
}

/* A proxy of the session for this REGISTER, not bound yet; takes options. */
static struct mgrok_proxy *proxy_new(struct srv_session *ss, const struct mgrok_frame *f,
                                     struct mgrok_plugin *plugin, json_t *options)
{
	struct mgrok_proxy *px = mgrok_xcalloc(1, sizeof(*px));
	px->sess = ss->sess;
	px->plugin = plugin;
	px->relayed = ss->node;
	memcpy(px->name, f->u.reg.name.p, f->u.reg.name.len);
	px->options = options;
	px->spec.name = px->name;
	px->spec.type = f->u.reg.proxy_type;
	px->spec.local_port = f->u.reg.local_port;
	px->spec.options = options;
	return px;
}

/* A server_bind result as the REGISTER_ACK status: a negative errno, or
 * (ABI 1.4) the status itself. */
static uint8_t bind_ack(int rc)
{
	if (rc == 0)
		return MGROK_ACK_OK;
	if (rc == -EADDRINUSE)
		return MGROK_ACK_PORT_IN_USE;
	return rc > 0 && rc <= MGROK_ACK_FORBIDDEN ? (uint8_t)rc : MGROK_ACK_INVALID;
}

/* Proxies on a listener their plugin shares among all sessions (ABI 1.4). */
static bool routed_by_name(const struct mgrok_proxy *px)
{
	return MGROK_PLUGIN_OP(px->plugin, proxy, server_start) != NULL;
}

static uint8_t bind_named(struct srv_session *ss, struct mgrok_proxy *px, uint16_t port, char *err,
                          size_t errlen)
{
	if (port) {
		snprintf(err, errlen, "%s proxies are reached by name: remote port must be 0",
		         px->plugin->desc->name);
		return MGROK_ACK_INVALID;
	}
	err[0] = '\0';
	int rc = px->plugin->desc->proxy->server_bind(px->plugin->inst, px, &px->spec, &px->state,
	                                              err, errlen);
	return bind_ack(rc);
}

/* Fills px->public_addr; returns the port for REGISTER_ACK. */
static uint16_t public_address(struct srv_session *ss, struct mgrok_proxy *px)
{
	uint16_t (*op)(void *, void *, char *, size_t) =
	        MGROK_PLUGIN_OP(px->plugin, proxy, public_address);
	if (op)
		return op(px->plugin->inst, px->state, px->public_addr, sizeof(px->public_addr));
	char host[256];
	public_host(ss, host, sizeof(host));
	snprintf(px->public_addr, sizeof(px->public_addr), "%s://%s:%u", px->plugin->desc->name,
	         host, px->spec.remote_port);
	return px->spec.remote_port;
}

/* ---- groups (group.h) ---------------------------------------------------------- */

/* A port's group; for proxies routed by name, the group of that name. */
static struct mgrok_group *group_find(struct mgrok_server *srv, const struct mgrok_plugin *p,
                                      uint16_t port, const char *name)
{
	for (struct mgrok_group *g = srv->groups; g; g = g->next)
		if (g->anchor->plugin == p &&
		    (port ? g->anchor->spec.remote_port == port : strcmp(g->name, name) == 0))
			return g;
	return NULL;
}

static bool same_key(const char *a, const char *b)
{
	size_t n = strlen(a);
	return n == strlen(b) && CRYPTO_memcmp(a, b, n) == 0;
}

/* The group's own proxy: it holds the port for as long as a member does. */
static uint8_t group_new(struct srv_session *ss, const struct mgrok_proxy *px,
                         const struct reg_group *rg, uint16_t port, char *msg, size_t len)
{
	struct mgrok_group *g = mgrok_xcalloc(1, sizeof(*g));
	struct mgrok_proxy *a = mgrok_xcalloc(1, sizeof(*a));
	a->plugin = px->plugin;
	snprintf(a->name, sizeof(a->name), "%s", rg->name);
	a->options = json_deep_copy(px->options);
	a->spec = px->spec;
	a->spec.name = a->name;
	a->spec.options = a->options;
	a->group = g;
	/* A name is claimed for the identity of the first member's session. */
	a->sess = px->sess;
	uint8_t st = routed_by_name(a) ? bind_named(ss, a, 0, msg, len)
	                               : bind_ack(bind_port(ss, a, port, msg, len));
	a->sess = NULL;
	if (st != MGROK_ACK_OK) {
		mgrok_names_release(&ss->srv->names, &a->names);
		json_decref(a->options);
		free(a);
		free(g);
		return st;
	}
	a->bound = true;
	public_address(ss, a);
	snprintf(g->name, sizeof(g->name), "%s", rg->name);
	snprintf(g->key, sizeof(g->key), "%s", rg->key);
	g->anchor = a;
	g->next = ss->srv->groups;
	ss->srv->groups = g;
	return MGROK_ACK_OK;
}

/* px joins the group of its port, made when it is the first. */
static uint8_t group_join(struct srv_session *ss, struct mgrok_proxy *px,
                          const struct reg_group *rg, uint16_t port, char *msg, size_t len)
{
	bool named = routed_by_name(px);
	if (named == (port != 0)) {
		snprintf(msg, len, "%s",
		         named ? "a group of proxies routed by name takes no remote port"
		               : "a group needs its remote port");
		return MGROK_ACK_INVALID;
	}
	struct mgrok_group *g = group_find(ss->srv, px->plugin, port, rg->name);
	if (g && (strcmp(g->name, rg->name) != 0 || !same_key(g->key, rg->key))) {
		if (named)
			snprintf(msg, len, "the group key of group %s differs", rg->name);
		else
			snprintf(msg, len,
			         "port %u is held by another group, or the group key differs",
			         port);
		return named ? MGROK_ACK_FORBIDDEN : MGROK_ACK_PORT_IN_USE;
	}
	if (g && !json_equal(g->anchor->options, px->options)) {
		snprintf(msg, len, "group %s's members have other options", rg->name);
		return MGROK_ACK_INVALID;
	}
	if (!g) {
		uint8_t st = group_new(ss, px, rg, port, msg, len);
		if (st != MGROK_ACK_OK)
			return st;
		g = ss->srv->groups;
	}
	mgrok_group_add(g, px);
	px->spec.remote_port = port;
	snprintf(px->public_addr, sizeof(px->public_addr), "%s", g->anchor->public_addr);
	return MGROK_ACK_OK;
}

/* The last member takes the port with it. */
static void group_leave(struct mgrok_server *srv, struct mgrok_proxy *px)
{
	struct mgrok_group *g = px->group, **pp = &srv->groups;
	if (mgrok_group_remove(g, px))
		return;
	while (*pp != g)
		pp = &(*pp)->next;
	*pp = g->next;
	struct mgrok_proxy *a = g->anchor;
	mgrok_names_release(&srv->names, &a->names);
	a->plugin->desc->proxy->server_unbind(a->plugin->inst, a->state);
	json_decref(a->options);
	free(a);
	free(g->members);
	free(g);
}

void mgrok_server_on_register(struct srv_session *ss, const struct mgrok_frame *f)
{
	char msg[MGROK_MESSAGE_MAX] = "";
	struct mgrok_plugin *plugin = NULL;
	struct mgrok_proxy *px = NULL;
	json_t *options;
	uint16_t port = f->u.reg.remote_port;
	struct reg_group rg;
	uint8_t status = check_register(ss, f, &plugin, &options, &rg, msg, sizeof(msg));
	if (status == MGROK_ACK_OK) {
		px = proxy_new(ss, f, plugin, options);
		options = NULL;
		status = check_identity(ss, px, routed_by_name(px) ? 0 : port, msg, sizeof(msg));
	}
	if (status == MGROK_ACK_OK)
		status = rg.name[0]           ? group_join(ss, px, &rg, port, msg, sizeof(msg))
		         : routed_by_name(px) ? bind_named(ss, px, port, msg, sizeof(msg))
		                              : bind_ack(bind_port(ss, px, port, msg, sizeof(msg)));
	if (status != MGROK_ACK_OK) {
		json_decref(options);
		if (px)
			mgrok_server_proxy_free(ss, px);
		send_ack(ss, f->u.reg.proxy_type, f->u.reg.name, status, 0, msg);
		return;
	}
	px->bound = !px->group;          /* a member's port is its group's anchor's */
	char user[sizeof(ss->identity)]; /* a Prometheus label: UTF-8 only */
	px->traffic = mgrok_traffic_get(&ss->srv->ctx->traffic, px->name, plugin->desc->name,
	                                mgrok_text_utf8(ss->identity, user, sizeof(user)));
	px->next = ss->proxies;
	ss->proxies = px;
	ss->nproxies++;
	mgrok_server_claim(ss, px, port == 0);
}

static struct mgrok_bytes name_bytes(const struct mgrok_proxy *px)
{
	return (struct mgrok_bytes){.p = (const uint8_t *)px->name, .len = strlen(px->name)};
}

void mgrok_server_register_ok(struct srv_session *ss, struct mgrok_proxy *px)
{
	uint16_t public_port = px->group ? px->spec.remote_port : public_address(ss, px);
	send_ack(ss, px->spec.type, name_bytes(px), MGROK_ACK_OK, public_port, px->public_addr);
	/* Another node's relays: as many as that node's tunnels, said there. */
	MGROK_SESSION_LOG(ss->sess, MGROK_LOGK_PROXIES, ss->node ? MGROK_LOG_DEBUG : MGROK_LOG_INFO,
	                  "session %u proxy %s: %s (client local port %u)", ss->sess->id, px->name,
	                  px->public_addr, px->spec.local_port);
	mgrok_server_counts_changed(ss->srv);
}

/* Unlinks px from its session. */
static void unlink_proxy(struct srv_session *ss, struct mgrok_proxy *px)
{
	struct mgrok_proxy **pp = &ss->proxies;
	while (*pp != px)
		pp = &(*pp)->next;
	*pp = px->next;
	ss->nproxies--;
}

void mgrok_server_register_refused(struct srv_session *ss, struct mgrok_proxy *px, uint8_t status,
                                   const char *msg)
{
	unlink_proxy(ss, px);
	send_ack(ss, px->spec.type, name_bytes(px), status, 0, msg);
	mgrok_server_proxy_free(ss, px);
}

uint8_t mgrok_server_rebind_port(struct srv_session *ss, struct mgrok_proxy *px, char *msg,
                                 size_t len)
{
	px->plugin->desc->proxy->server_unbind(px->plugin->inst, px->state);
	px->bound = false;
	uint16_t after = px->spec.remote_port;
	uint8_t st = bind_ack(bind_port_after(ss, px, 0, after, msg, len));
	px->bound = st == MGROK_ACK_OK;
	return st;
}

void mgrok_server_on_unregister(struct srv_session *ss, const struct mgrok_frame *f)
{
	struct mgrok_proxy **pp = &ss->proxies;
	while (*pp && !(strlen((*pp)->name) == f->u.unreg_name.len &&
	                memcmp((*pp)->name, f->u.unreg_name.p, f->u.unreg_name.len) == 0))
		pp = &(*pp)->next;
	if (!*pp) {
		MGROK_SESSION_LOG(ss->sess, MGROK_LOGK_REGISTER, MGROK_LOG_INFO,
		                  "session %u: UNREGISTER of unknown proxy '%.*s'", ss->sess->id,
		                  (int)f->u.unreg_name.len, (const char *)f->u.unreg_name.p);
		return;
	}
	struct mgrok_proxy *px = *pp;
	*pp = px->next;
	ss->nproxies--;
	/* Its REGISTER still waits for the cluster's registry: it is answered
	 * now, so that every REGISTER gets its answer. */
	if (mgrok_server_claim_pending(px))
		send_ack(ss, px->spec.type, name_bytes(px), MGROK_ACK_INVALID, 0,
		         "unregistered before the cluster's registry answered");
	MGROK_SESSION_LOG(ss->sess, MGROK_LOGK_PROXIES, MGROK_LOG_INFO,
	                  "session %u proxy %s: unregistered", ss->sess->id, px->name);
	mgrok_server_proxy_free(ss, px);
	mgrok_server_counts_changed(ss->srv);
}
