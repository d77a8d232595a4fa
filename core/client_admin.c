/*
 * The client's side of the admin endpoint (doc/admin.md): its metrics and
 * its one session, in the server's format, with its proxies. Sessions are
 * not closed from here.
 */
#include <stdio.h>

#include "admin.h"
#include "client_impl.h"
#include "metrics.h"
#include "proxy.h"
#include "session.h"

static void client_metrics(void *arg, struct mgrok_buf *out)
{
	struct mgrok_client *cl = arg;
	bool open = cl->sess && cl->sess->open;
	mgrok_metrics_common(out, cl->ctx, "client");
	mgrok_metrics_family(out, "mgrok_sessions", "gauge",
	                     "1 while the session with the server is up.");
	mgrok_metrics_u64(out, "mgrok_sessions", open, NULL);
	mgrok_metrics_family(out, "mgrok_proxies", "gauge", "Proxies registered now, by type.");
	for (size_t k = 0; k < cl->reg.n; k++) {
		const struct mgrok_plugin *p = cl->reg.v[k];
		uint64_t n = 0;
		if (p->desc->kind != MGROK_PLUGIN_PROXY)
			continue;
		for (const struct mgrok_proxy *px = cl->proxies; px; px = px->next)
			n += px->plugin == p && px->bound;
		mgrok_metrics_u64(out, "mgrok_proxies", n, "type", p->desc->name, NULL);
	}
	mgrok_metrics_family(out, "mgrok_session_queue_bytes", "gauge",
	                     "Bytes queued for the server, not yet written.");
	mgrok_metrics_u64(out, "mgrok_session_queue_bytes", cl->sess ? cl->sess->out.len : 0, NULL);
}

static json_t *proxy_json(const struct mgrok_proxy *px)
{
	const struct mgrok_traffic *t = px->traffic;
	return json_pack("{ss ss ss ss? sI sI sI}", "name", px->name, "type",
	                 px->plugin->desc->name, "local", px->local, "public_address",
	                 px->bound ? px->public_addr : NULL, "streams", (json_int_t)px->nstreams,
	                 "bytes_in", (json_int_t)(t ? t->bytes_in : 0), "bytes_out",
	                 (json_int_t)(t ? t->bytes_out : 0));
}

static json_t *client_sessions(void *arg)
{
	struct mgrok_client *cl = arg;
	const struct mgrok_session *s = cl->sess;
	bool open = s && s->open;
	json_t *proxies = json_array();
	json_int_t streams = 0;
	for (const struct mgrok_proxy *px = cl->proxies; px; px = px->next) {
		json_array_append_new(proxies, proxy_json(px));
		streams += px->nstreams;
	}
	json_t *session = json_pack(
	        "{sI sn ss ss ss sn ss so ss sI sI sI sI so}", "id", (json_int_t)(s ? s->id : 0),
	        "identity", "method", cl->auth.name, "client_id", cl->client_id, "remote",
	        s ? s->peer : cl->conf->server, "info", "version", PACKAGE_VERSION, "connected_at",
	        open ? json_real(s->opened_at) : json_null(), "state", open ? "open" : "connecting",
	        "streams", streams, "bytes_in", (json_int_t)(s ? s->bytes_in : 0), "bytes_out",
	        (json_int_t)(s ? s->bytes_out : 0), "queue_bytes", (json_int_t)(s ? s->out.len : 0),
	        "proxies", proxies);
	return json_pack("{s[o]}", "sessions", session);
}

static const struct mgrok_admin_ops client_admin_ops = {
        .metrics = client_metrics,
        .sessions = client_sessions,
};

int mgrok_client_admin_start(struct mgrok_client *cl, char *err, size_t errlen)
{
	if (!cl->conf->admin.listen)
		return 0;
	cl->admin = mgrok_admin_new(cl->ctx, &cl->conf->admin, &client_admin_ops, cl, err, errlen);
	return cl->admin ? 0 : -1;
}
