/*
 * The client's state, shared by client.c (the session, its proxies) and
 * client_admin.c (what the admin endpoint shows); nothing else includes it.
 */
#ifndef MGROK_CLIENT_IMPL_H
#define MGROK_CLIENT_IMPL_H

#include <ev.h>
#include <stdbool.h>

#include "addr.h"
#include "client.h"
#include "handshake.h"
#include "plugin_loader.h"

struct mgrok_proxy;
struct mgrok_session;
struct mgrok_tls;
struct mgrok_admin;

struct mgrok_client {
	struct mgrok_ctx *ctx;
	const struct mgrok_client_conf *conf;
	struct mgrok_registry reg;
	struct mgrok_auth_method auth;
	struct mgrok_proxy *proxies;
	struct mgrok_session *sess;
	struct mgrok_tls *tls;             /* NULL: plaintext */
	struct mgrok_sockaddr server_addr; /* as last resolved: the public address's host */
	ev_timer retry;
	ev_timer reregister; /* embedded: refused proxies, asked again */
	double backoff;
	double opened_at;
	bool ever_registered; /* a proxy has been up once: refusals no longer end the client */
	bool ready;           /* READY=1 sent (once: the first session's proxies are answered) */
	unsigned acks_pending;
	unsigned acks_ok;
	bool stopping;
	bool failing; /* embedded: the last session failed, and that was logged */
	int exit_code;
	char client_id[33];
	struct mgrok_admin *admin; /* NULL: none configured */
};

/* client_admin.c: the endpoint, when configured. Returns 0, or -1 with err. */
int mgrok_client_admin_start(struct mgrok_client *cl, char *err, size_t errlen);

#endif
