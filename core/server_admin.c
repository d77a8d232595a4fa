/*
 * The server's side of the admin endpoint (doc/admin.md): its metrics, its
 * sessions as JSON, and the kick (and ban) of one.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "claims.h"
#include "group.h"
#include "metrics.h"
#include "proxy.h"
#include "server_impl.h"
#include "session.h"

/* ---- bans ---------------------------------------------------------------------- */

double mgrok_server_banned(struct mgrok_server *srv, const char *client_id)
{
	double now = ev_now(srv->ctx->loop), left = 0;
	for (struct srv_ban **pp = &srv->bans; *pp;) {
		struct srv_ban *b = *pp;
		if (b->until <= now) { /* over: forgotten */
			*pp = b->next;
			free(b);
			continue;
		}
		if (strcmp(b->client_id, client_id) == 0)
			left = b->until - now;
		pp = &b->next;
	}
	return left;
}

static void ban(struct mgrok_server *srv, const char *client_id, double seconds)
{
	double until = ev_now(srv->ctx->loop) + seconds;
	mgrok_server_banned(srv, client_id); /* drops the expired ones */
	for (struct srv_ban *b = srv->bans; b; b = b->next)
		if (strcmp(b->client_id, client_id) == 0) {
			b->until = until;
			return;
		}
	struct srv_ban *b = mgrok_xcalloc(1, sizeof(*b));
	snprintf(b->client_id, sizeof(b->client_id), "%s", client_id);
	b->until = until;
	b->next = srv->bans;
	srv->bans = b;
}

/* ---- metrics ------------------------------------------------------------------- */

static const char *const hs_result_names[SRV_HS_RESULTS] = {"ok", "denied", "failed"};

static void handshake_family(struct mgrok_buf *out, const struct mgrok_server *srv)
{
	mgrok_metrics_family(out, "mgrok_handshakes_total", "counter",
	                     "Handshakes by auth method and result (ok, denied, failed).");
	for (int r = 0; r < SRV_HS_RESULTS; r++) {
		for (size_t i = 0; i < srv->n_methods; i++)
			mgrok_metrics_u64(out, "mgrok_handshakes_total",
			                  srv->methods[i].handshakes[r], "method",
			                  srv->methods[i].m.name, "result", hs_result_names[r],
			                  NULL);
		if (r != SRV_HS_OK) /* a session always has a method */
			mgrok_metrics_u64(out, "mgrok_handshakes_total",
			                  srv->counters.handshakes_nomethod[r], "method", "",
			                  "result", hs_result_names[r], NULL);
	}
}

/* Proxies per type: each proxy plugin's name, counted. */
static void proxies_family(struct mgrok_buf *out, const struct mgrok_server *srv)
{
	mgrok_metrics_family(out, "mgrok_proxies", "gauge", "Proxies registered now, by type.");
	for (size_t k = 0; k < srv->reg.n; k++) {
		const struct mgrok_plugin *p = srv->reg.v[k];
		if (p->desc->kind != MGROK_PLUGIN_PROXY)
			continue;
		uint64_t n = 0;
		for (const struct srv_session *ss = srv->sessions; ss; ss = ss->next)
			for (const struct mgrok_proxy *px = ss->proxies; px; px = px->next)
				n += px->plugin == p;
		mgrok_metrics_u64(out, "mgrok_proxies", n, "type", p->desc->name, NULL);
	}
}

/* A node of a cluster (doc/cluster.md): the registry, and the other nodes. */
static void cluster_families(struct mgrok_buf *out, const struct mgrok_server *srv)
{
	unsigned known, up;
	mgrok_relays_count(srv->relays, &known, &up);
	mgrok_metrics_family(out, "mgrok_cluster_registry_up", "gauge",
	                     "1 while the cluster's Redis is connected.");
	mgrok_metrics_u64(out, "mgrok_cluster_registry_up", mgrok_claims_connected(srv->claims),
	                  NULL);
	mgrok_metrics_family(out, "mgrok_cluster_claims", "gauge",
	                     "Ports and names this node holds in the registry.");
	mgrok_metrics_u64(out, "mgrok_cluster_claims", mgrok_server_claims_held(srv), NULL);
	mgrok_metrics_family(out, "mgrok_cluster_nodes", "gauge",
	                     "Other nodes known from the registry, by whether this node's relay "
	                     "session to them is up.");
	mgrok_metrics_u64(out, "mgrok_cluster_nodes", up, "relay", "up", NULL);
	mgrok_metrics_u64(out, "mgrok_cluster_nodes", known - up, "relay", "down", NULL);
}

static void server_metrics(void *arg, struct mgrok_buf *out)
{
	struct mgrok_server *srv = arg;
	uint64_t sessions = 0, queued = 0;
	for (const struct srv_session *ss = srv->sessions; ss; ss = ss->next) {
		sessions++;
		queued += ss->sess->out.len;
	}
	mgrok_metrics_common(out, srv->ctx, "server");
	mgrok_metrics_family(out, "mgrok_sessions", "gauge", "Authenticated sessions.");
	mgrok_metrics_u64(out, "mgrok_sessions", sessions, NULL);
	mgrok_metrics_family(out, "mgrok_sessions_pending", "gauge",
	                     "Connections still in the handshake.");
	mgrok_metrics_u64(out, "mgrok_sessions_pending", srv->pending, NULL);
	proxies_family(out, srv);
	handshake_family(out, srv);
	mgrok_metrics_family(out, "mgrok_rate_limited_total", "counter",
	                     "Connections refused by the handshake limits.");
	mgrok_metrics_u64(out, "mgrok_rate_limited_total", srv->counters.rate_limited, NULL);
	mgrok_metrics_family(out, "mgrok_session_queue_bytes", "gauge",
	                     "Bytes queued for the sessions' connections, not yet written.");
	mgrok_metrics_u64(out, "mgrok_session_queue_bytes", queued, NULL);
	if (srv->claims)
		cluster_families(out, srv);
}

/* ---- sessions ------------------------------------------------------------------ */

static json_t *proxy_json(const struct mgrok_proxy *px)
{
	const struct mgrok_traffic *t = px->traffic;
	char addr[sizeof(px->public_addr)];
	return json_pack(
	        "{ss ss ss ss? sI sI sI}", "name", px->name, "type", px->plugin->desc->name,
	        "public_address", mgrok_text_utf8(px->public_addr, addr, sizeof(addr)), "group",
	        px->group ? px->group->name : NULL, "streams", (json_int_t)px->nstreams, "bytes_in",
	        (json_int_t)(t ? t->bytes_in : 0), "bytes_out", (json_int_t)(t ? t->bytes_out : 0));
}

static json_t *session_json(const struct srv_session *ss)
{
	const struct mgrok_session *s = ss->sess;
	json_t *proxies = json_array();
	json_int_t streams = 0;
	for (const struct mgrok_proxy *px = ss->proxies; px; px = px->next) {
		json_array_append_new(proxies, proxy_json(px));
		streams += px->nstreams;
	}
	const char *version = json_string_value(json_object_get(ss->info, "version"));
	char identity[sizeof(ss->identity)], client_id[sizeof(ss->client_id)];
	mgrok_text_utf8(ss->identity, identity, sizeof(identity));
	mgrok_text_utf8(ss->client_id, client_id, sizeof(client_id));
	return json_pack("{sI ss ss? ss? ss sO? ss? sf ss sI sI sI sI so}", "id", (json_int_t)s->id,
	                 "identity", identity, "method", ss->method ? ss->method->m.name : NULL,
	                 "client_id", ss->hello_seen ? client_id : NULL, "remote", s->peer, "info",
	                 ss->info, "version", version, "connected_at", s->opened_at, "state",
	                 s->draining ? "draining" : "open", "streams", streams, "bytes_in",
	                 (json_int_t)s->bytes_in, "bytes_out", (json_int_t)s->bytes_out,
	                 "queue_bytes", (json_int_t)s->out.len, "proxies", proxies);
}

static json_t *server_sessions(void *arg)
{
	struct mgrok_server *srv = arg;
	json_t *list = json_array();
	for (const struct srv_session *ss = srv->sessions; ss; ss = ss->next)
		json_array_insert_new(list, 0, session_json(ss)); /* the oldest first */
	return json_pack("{so}", "sessions", list);
}

static int server_kick(void *arg, uint32_t id, double seconds, json_t **reply, char *msg,
                       size_t len)
{
	struct mgrok_server *srv = arg;
	struct srv_session *ss = srv->sessions;
	while (ss && ss->sess->id != id)
		ss = ss->next;
	if (!ss) {
		snprintf(msg, len, "no session %u", id);
		return 404;
	}
	if (seconds > 0 && !ss->hello_seen) {
		snprintf(msg, len, "session %u sent no clientId: it can be closed, not banned", id);
		return 409;
	}
	if (seconds > 0)
		ban(srv, ss->client_id, seconds);
	char client_id[sizeof(ss->client_id)];
	mgrok_text_utf8(ss->client_id, client_id, sizeof(client_id));
	*reply = json_pack("{sI ss? sI}", "id", (json_int_t)id, "client_id",
	                   ss->hello_seen ? client_id : NULL, "banned_seconds",
	                   (json_int_t)(seconds + 0.999));
	MGROK_INFO("admin: closing session %u ('%s')%s", id, ss->identity,
	           seconds > 0 ? ", its clientId banned" : "");
	if (seconds > 0)
		mgrok_session_close(ss->sess, MGROK_GOAWAY_NORMAL, MGROK_CLOSE_LOCAL,
		                    "closed by the administrator, banned for %.0f seconds",
		                    (double)(long long)(seconds + 0.999));
	else
		mgrok_session_close(ss->sess, MGROK_GOAWAY_NORMAL, MGROK_CLOSE_LOCAL,
		                    "closed by the administrator");
	return 200;
}

/* ---- life cycle ---------------------------------------------------------------- */

static const struct mgrok_admin_ops server_admin_ops = {
        .metrics = server_metrics,
        .sessions = server_sessions,
        .kick = server_kick,
};

int mgrok_server_admin_start(struct mgrok_server *srv, char *err, size_t errlen)
{
	if (!srv->conf->admin.listen)
		return 0;
	srv->admin =
	        mgrok_admin_new(srv->ctx, &srv->conf->admin, &server_admin_ops, srv, err, errlen);
	return srv->admin ? 0 : -1;
}

void mgrok_server_admin_free(struct mgrok_server *srv)
{
	mgrok_admin_free(srv->admin);
	srv->admin = NULL;
	while (srv->bans) {
		struct srv_ban *b = srv->bans;
		srv->bans = b->next;
		free(b);
	}
}
