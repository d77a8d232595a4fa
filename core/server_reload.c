/*
 * SIGHUP on the server: what a config read again can change without a
 * restart is applied (for new connections, sessions and REGISTERs), what
 * it cannot is named in the log.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host.h"
#include "server_impl.h"
#include "session.h"
#include "tls.h"

void mgrok_server_copy_allow_ports(struct mgrok_server *srv, const struct mgrok_server_conf *c)
{
	free(srv->allow_ports);
	srv->allow_ports = mgrok_xmalloc(c->n_allow_ports * sizeof(*c->allow_ports));
	memcpy(srv->allow_ports, c->allow_ports, c->n_allow_ports * sizeof(*c->allow_ports));
	srv->n_allow_ports = c->n_allow_ports;
}

static bool same_str(const char *a, const char *b)
{
	return a == b || (a && b && strcmp(a, b) == 0);
}

/* The methods by name, in order ("none" when none is configured). */
static bool same_methods(const struct mgrok_server_conf *a, const struct mgrok_server_conf *b)
{
	if (a->n_auth != b->n_auth)
		return false;
	for (size_t i = 0; i < a->n_auth; i++)
		if (strcmp(a->auth[i].method, b->auth[i].method) != 0)
			return false;
	return true;
}

/* What a reload cannot apply is named, not silently ignored. */
static void restart_needed(const struct mgrok_server *srv, const struct mgrok_server_conf *fresh)
{
	const struct mgrok_server_conf *c = srv->conf;
	if (strcmp(fresh->listen, c->listen) != 0)
		MGROK_WARN("reload: listen changed to %s: that takes a restart (still on %s)",
		           fresh->listen, c->listen);
	if (!fresh->tls.cert != !c->tls.cert)
		MGROK_WARN("reload: tls turned %s: that takes a restart",
		           fresh->tls.cert ? "on" : "off");
	if (!same_methods(fresh, c))
		MGROK_WARN("reload: the auth methods changed: that takes a restart (their "
		           "options alone can change)");
	if (!same_str(fresh->proxy_bind, c->proxy_bind) ||
	    !same_str(fresh->public_host, c->public_host) ||
	    (!fresh->proxy_sections != !c->proxy_sections) ||
	    (c->proxy_sections && !json_equal(fresh->proxy_sections, c->proxy_sections)))
		MGROK_WARN("reload: proxy_bind, public_host, \"http\" or \"tls_sni\" changed: that "
		           "takes a restart");
	if (!same_str(fresh->admin.listen, c->admin.listen) ||
	    !same_str(fresh->admin.token, c->admin.token) ||
	    !same_str(fresh->admin.token_file, c->admin.token_file) ||
	    !same_str(fresh->admin.token_env, c->admin.token_env))
		MGROK_WARN("reload: \"admin\" changed: that takes a restart");
	const struct mgrok_cluster_conf *a = &c->cluster, *b = &fresh->cluster;
	if (a->given != b->given || !same_str(a->redis, b->redis) || !same_str(a->node, b->node) ||
	    a->lease != b->lease || !same_str(a->secret, b->secret) ||
	    !same_str(a->secret_file, b->secret_file) || !same_str(a->address, b->address))
		MGROK_WARN("reload: \"cluster\" changed: that takes a restart");
}

/* Numbers read as they are needed (new sessions take theirs at the start). */
static void apply_limits(struct mgrok_server *srv, const struct mgrok_server_conf *f)
{
	struct mgrok_server_conf *c = srv->conf;
	bool changed = c->max_proxies != f->max_proxies || c->max_streams != f->max_streams ||
	               c->max_pending != f->max_pending ||
	               c->max_pending_per_address != f->max_pending_per_address ||
	               c->heartbeat_interval != f->heartbeat_interval ||
	               c->heartbeat_timeout != f->heartbeat_timeout ||
	               c->handshake_timeout != f->handshake_timeout ||
	               c->shutdown_timeout != f->shutdown_timeout;
	c->max_proxies = f->max_proxies;
	c->max_streams = f->max_streams;
	c->max_pending = f->max_pending;
	c->max_pending_per_address = f->max_pending_per_address;
	c->heartbeat_interval = f->heartbeat_interval;
	c->heartbeat_timeout = f->heartbeat_timeout;
	c->handshake_timeout = f->handshake_timeout;
	c->shutdown_timeout = f->shutdown_timeout;
	if (changed)
		MGROK_INFO("reload: limits, heartbeat and timeouts applied (sessions open now "
		           "keep their stream limit and heartbeat)");
	if (c->auth_failures != f->auth_failures || c->auth_interval != f->auth_interval) {
		/* Blocks in force end with the old table: the new rule starts clean. */
		c->auth_failures = f->auth_failures;
		c->auth_interval = f->auth_interval;
		mgrok_ratelimit_init(srv->failures, c->auth_failures, c->auth_interval);
		MGROK_INFO("reload: rate_limit applied (blocks in force were lifted)");
	}
}

/* Balancers: their new connections are read by the new list. */
static void apply_proxy_protocol_from(struct mgrok_server *srv, struct mgrok_server_conf *f)
{
	struct mgrok_server_conf *c = srv->conf;
	if (f->n_proxy_protocol_from == c->n_proxy_protocol_from &&
	    (!c->n_proxy_protocol_from ||
	     memcmp(f->proxy_protocol_from, c->proxy_protocol_from,
	            c->n_proxy_protocol_from * sizeof(*c->proxy_protocol_from)) == 0))
		return;
	struct mgrok_cidr *old = c->proxy_protocol_from;
	c->proxy_protocol_from = f->proxy_protocol_from;
	c->n_proxy_protocol_from = f->n_proxy_protocol_from;
	f->proxy_protocol_from = old; /* freed with fresh */
	/* Sessions point at the list (their public ports' visitors are read by it). */
	struct srv_session *lists[] = {srv->sessions, srv->handshaking};
	for (size_t i = 0; i < 2; i++)
		for (struct srv_session *ss = lists[i]; ss; ss = ss->next) {
			ss->sess->balancers.from = c->proxy_protocol_from;
			ss->sess->balancers.n = c->n_proxy_protocol_from;
		}
	MGROK_INFO("reload: proxy_protocol_from applied (%zu entr%s)", c->n_proxy_protocol_from,
	           c->n_proxy_protocol_from == 1 ? "y" : "ies");
}

/* The certificate and key are read again from their files (a renewal
 * writes new ones in place), or from new paths. */
static int reload_tls(struct mgrok_server *srv, struct mgrok_server_conf *f)
{
	char err[512];
	struct mgrok_tls_conf *t = &srv->conf->tls;
	if (!srv->tls)
		return 0;
	const char *cert = f && f->tls.cert ? f->tls.cert : t->cert;
	const char *key = f && f->tls.key ? f->tls.key : t->key;
	if (mgrok_tls_server_reload(srv->tls, cert, key, err, sizeof(err)) < 0) {
		MGROK_ERROR("reload of the TLS certificate failed, keeping the old one: %s", err);
		return -1;
	}
	MGROK_INFO("TLS certificate %s reloaded: new connections get it", cert);
	if (cert != t->cert) { /* the paths that worked are the ones to keep */
		char *c = t->cert, *k = t->key;
		t->cert = f->tls.cert;
		t->key = f->tls.key;
		f->tls.cert = c;
		f->tls.key = k;
	}
	return 0;
}

/* Handshakes hold state of a method's instance: they cannot go on with
 * another one. Their clients retry. */
static void close_handshakes_of(struct mgrok_server *srv, const struct srv_method *m)
{
	for (struct srv_session *ss = srv->handshaking, *next; ss; ss = next) {
		next = ss->next;
		if (ss->sess->hs.method == &m->m)
			mgrok_session_close(ss->sess, -1, MGROK_CLOSE_LOCAL,
			                    "auth method %s reconfigured during the handshake",
			                    m->m.name);
	}
}

/* New options: a new instance of the method, which replaces the old one
 * only once it has taken them. */
static int reconfigure_method(struct mgrok_server *srv, struct srv_method *m,
                              struct mgrok_auth_conf *now, struct mgrok_auth_conf *fresh)
{
	struct mgrok_plugin *p = m->plugin;
	char err[256] = "";
	void *inst = NULL;
	if (p->desc->init(&mgrok_host_table, p, fresh->options, &inst, err, sizeof(err)) < 0) {
		MGROK_ERROR("reload: auth %s: %s (keeping its old options)", m->m.name,
		            err[0] ? err : "init failed");
		return -1;
	}
	close_handshakes_of(srv, m);
	if (p->desc->fini)
		p->desc->fini(m->m.inst);
	m->m.inst = p->inst = inst;
	json_t *old = now->options;
	now->options = fresh->options;
	fresh->options = old;
	MGROK_INFO("reload: auth method '%s' reconfigured", m->m.name);
	return 0;
}

/* Each method: new options, or else its own files read again. */
static int reload_auth(struct mgrok_server *srv, struct mgrok_server_conf *fresh)
{
	int rc = 0;
	bool options = fresh && same_methods(fresh, srv->conf);
	for (size_t i = 0; i < srv->n_methods; i++) {
		struct srv_method *m = &srv->methods[i];
		char err[512] = "";
		if (m == srv->node_method) /* not of "auth": the cluster's secret */
			continue;
		if (options && srv->conf->n_auth &&
		    !json_equal(srv->conf->auth[i].options, fresh->auth[i].options)) {
			rc |= reconfigure_method(srv, m, &srv->conf->auth[i], &fresh->auth[i]);
			continue;
		}
		int (*reload)(void *, char *, size_t) = MGROK_PLUGIN_OP(m->plugin, auth, reload);
		if (!reload)
			continue;
		if (reload(m->m.inst, err, sizeof(err)) < 0) {
			MGROK_ERROR("reload of auth method '%s' failed, keeping the old state: %s",
			            m->m.name, err);
			rc = -1;
		} else {
			MGROK_INFO("auth method '%s' reloaded", m->m.name);
		}
	}
	return rc;
}

int mgrok_server_reload(struct mgrok_server *srv, struct mgrok_server_conf *fresh)
{
	int rc = reload_tls(srv, fresh);
	if (fresh) {
		restart_needed(srv, fresh);
		apply_limits(srv, fresh);
		apply_proxy_protocol_from(srv, fresh);
		mgrok_server_copy_allow_ports(srv, fresh);
	}
	return reload_auth(srv, fresh) < 0 ? -1 : rc;
}
