/*
 * The server's state, shared by server.c (sessions, registrations) and
 * server_admin.c (what the admin endpoint shows and does); nothing else
 * includes it.
 */
#ifndef MGROK_SERVER_IMPL_H
#define MGROK_SERVER_IMPL_H

#include <stdbool.h>
#include <stdint.h>

#include "addr.h"
#include "codec.h"
#include "config.h"
#include "handshake.h"
#include "log.h"
#include "names.h"
#include "plugin_loader.h"
#include "ratelimit.h"
#include "server.h"

/* How a handshake ended, for mgrok_handshakes_total. */
enum srv_hs_result { SRV_HS_OK, SRV_HS_DENIED, SRV_HS_FAILED, SRV_HS_RESULTS };

/* Server-wide counters of the admin endpoint (the per-method handshake
 * counts are in struct srv_method). */
struct srv_counters {
	uint64_t handshakes_nomethod[SRV_HS_RESULTS]; /* failed before a method was chosen */
	uint64_t rate_limited; /* connections refused by the handshake limits */
};

/* A clientId refused until a time (the loop's clock). */
struct srv_ban {
	struct srv_ban *next;
	double until;
	char client_id[MGROK_NAME_MAX + 1];
};

struct srv_session;

/* An auth method the server offers. */
struct srv_method {
	struct mgrok_auth_method m; /* first: the handshake gets &m */
	struct mgrok_plugin *plugin;
	uint64_t handshakes[SRV_HS_RESULTS];
};

/* Server-wide log lines about new connections, limited per kind (log.h). */
enum srv_logk {
	SRV_LOG_REFUSED,   /* connections refused for the handshake limits */
	SRV_LOG_HANDSHAKE, /* failed handshakes and the blocks they start */
	SRV_LOG_SESSIONS,  /* sessions authenticated, introduced, replaced, closed */
	SRV_LOG_ACCEPT,    /* accept(2) failures */
	SRV_LOG_COUNT,
};

struct mgrok_server {
	struct mgrok_ctx *ctx;
	/* main's, lent for the server's life; SIGHUP updates what it can apply
	 * (server_reload.c). */
	struct mgrok_server_conf *conf;
	/* The server's own copy: SIGHUP replaces it (mgrok_server_reload). */
	struct mgrok_port_range *allow_ports;
	size_t n_allow_ports;
	struct mgrok_registry reg;
	struct srv_method *methods;
	size_t n_methods;
	struct mgrok_ratelimit *failures; /* failed handshakes per source address */
	struct mgrok_sockaddr listen_addr;
	struct mgrok_sockaddr bind_addr; /* where public ports are bound (port 0) */
	struct mgrok_tls *tls;           /* NULL: plaintext control port */
	int lfd;
	ev_io lio;
	ev_timer accept_retry;
	ev_timer log_tick;               /* reports suppressed lines once their window is over */
	struct srv_session *sessions;    /* authenticated */
	struct srv_session *handshaking; /* still in the handshake */
	unsigned pending;                /* how many of those */
	struct mgrok_log_limit loglim[SRV_LOG_COUNT];
	struct mgrok_names names; /* host names of the proxies routed by name */
	ev_timer drain_tick;      /* SIGTERM: waits for open streams to end */
	double drain_deadline;
	struct srv_counters counters;
	struct srv_ban *bans; /* clientIds refused for a while (DELETE ...?ban=) */
	struct mgrok_admin *admin;
	struct mgrok_group *groups;     /* ports held for client groups (group.h) */
	struct mgrok_claims *claims;    /* a cluster's registry; NULL on a node alone */
	struct srv_method *node_method; /* "cluster": how the other nodes authenticate */
	struct mgrok_relays *relays;    /* to the other nodes; NULL on a node alone */
	char node[MGROK_NAME_MAX + 1];
};

/* The server's side of one session. */
struct srv_session {
	struct mgrok_server *srv;
	struct mgrok_session *sess;
	struct srv_session *prev, *next;
	bool authenticated;
	bool hello_seen;
	struct mgrok_sockaddr peer;
	uint8_t ip[16];            /* of peer: the key of the per-address handshake limit */
	struct srv_method *method; /* how it authenticated */
	char identity[MGROK_IDENTITY_MAX + 1];
	char client_id[MGROK_NAME_MAX + 1];
	json_t *info; /* HELLO's, when a JSON object */
	/* Another node of the cluster (method "cluster"): its REGISTERs relay
	 * what that node has claimed, and are taken as they come. */
	bool node;
	struct mgrok_proxy *proxies;
	unsigned nproxies;
};

#define SRV_LOG(srv, k, level, ...)                                                                \
	mgrok_log_limited(&(srv)->loglim[k], 0, ev_now((srv)->ctx->loop), level, __VA_ARGS__)

/* Sessions or proxies came or went: the service manager's STATUS= line. */
void mgrok_server_counts_changed(struct mgrok_server *srv);

/* server_register.c: the frames, and a proxy's end (its streams reset,
 * its port or names given back, its counters let go). */
struct mgrok_frame;
struct mgrok_proxy;
void mgrok_server_on_register(struct srv_session *ss, const struct mgrok_frame *f);
void mgrok_server_on_unregister(struct srv_session *ss, const struct mgrok_frame *f);
void mgrok_server_proxy_free(struct srv_session *ss, struct mgrok_proxy *px);

/* A REGISTER's answer once what it binds is bound (and, in a cluster,
 * claimed): OK, or refused (px unlinked from its session and freed). */
void mgrok_server_register_ok(struct srv_session *ss, struct mgrok_proxy *px);
void mgrok_server_register_refused(struct srv_session *ss, struct mgrok_proxy *px, uint8_t status,
                                   const char *msg);
/* Port 0 again: px's port given back and another one bound. */
uint8_t mgrok_server_rebind_port(struct srv_session *ss, struct mgrok_proxy *px, char *msg,
                                 size_t len);

/* server_cluster.c: the registry, started with the control port; claims
 * for a REGISTER whose proxy is bound and linked to its session: the
 * answer comes from there (at once on a node alone). pick_port: the client
 * asked for port 0. */
int mgrok_server_cluster_start(struct mgrok_server *srv, char *err, size_t errlen);
/* Method "cluster"'s options: the secret, or its file (a new reference). */
json_t *mgrok_cluster_auth_options(const struct mgrok_cluster_conf *c);
void mgrok_server_cluster_free(struct mgrok_server *srv);
void mgrok_server_claim(struct srv_session *ss, struct mgrok_proxy *px, bool pick_port);
/* The ports and names this node's proxies hold (a group's members each). */
size_t mgrok_server_claims_held(const struct mgrok_server *srv);
/* The REGISTER is still waiting for its claims. */
bool mgrok_server_claim_pending(const struct mgrok_proxy *px);
void mgrok_server_unclaim(struct mgrok_proxy *px);

/* server_relay.c: this node's claims registered on every other node
 * (doc/cluster.md 3, 4). bind and unbind: one of px's claims, by key; a
 * name's claim with its hostname. */
struct mgrok_relays;
struct mgrok_relays *mgrok_relays_new(struct mgrok_server *srv, char *err, size_t errlen);
void mgrok_relays_free(struct mgrok_relays *rs);
void mgrok_relays_bind(struct mgrok_relays *rs, const struct mgrok_proxy *px, const char *key,
                       const char *hostname);
void mgrok_relays_unbind(struct mgrok_relays *rs, const char *key);
/* The other nodes known, and how many of our relay sessions to them are up. */
void mgrok_relays_count(const struct mgrok_relays *rs, unsigned *known, unsigned *up);

/* server_reload.c. allow_ports into the server's own copy. */
void mgrok_server_copy_allow_ports(struct mgrok_server *srv, const struct mgrok_server_conf *c);

/* server_admin.c. The admin endpoint, when configured (started with the
 * control port), and its end with the server. */
int mgrok_server_admin_start(struct mgrok_server *srv, char *err, size_t errlen);
void mgrok_server_admin_free(struct mgrok_server *srv);
/* Seconds the clientId is banned for still, or 0. */
double mgrok_server_banned(struct mgrok_server *srv, const char *client_id);

#endif
