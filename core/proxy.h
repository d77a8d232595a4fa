/* One proxy: a registered public port (server) or a configured local target (client). */
#ifndef MGROK_PROXY_H
#define MGROK_PROXY_H

#include <stdbool.h>

#include "addr.h"
#include "codec.h"
#include "mgrok/plugin.h"
#include "plugin_loader.h"

struct mgrok_session;

struct mgrok_proxy {
	struct mgrok_session *sess; /* the session it belongs to now; NULL while offline */
	struct mgrok_plugin *plugin;
	struct mgrok_proxy_spec spec; /* points into the members below */
	char name[MGROK_NAME_MAX + 1];
	json_t *options;          /* the plugin's */
	json_t *register_options; /* client: what REGISTER sends when more than options (a group) */
	struct mgrok_sockaddr addr; /* server: bound address; client: local target */
	void *state;                /* server: the plugin's per-proxy state */
	bool bound;                 /* server: state is valid; client: registered */
	unsigned nstreams;
	char public_addr[320];
	char local[128];          /* client: the local target as configured */
	int proxy_protocol;       /* client: 0, or the PROXY version written to the local end */
	uint16_t public_port;     /* client: the port the server bound, from REGISTER_ACK */
	struct mgrok_name *names; /* server: host names it holds (names.h) */
	struct mgrok_traffic *traffic; /* its counters (traffic.h); NULL until bound or set up */
	struct mgrok_group *group;     /* server: the group it anchors or belongs to (group.h) */
	struct srv_claims *claims;     /* server: its claims in a cluster (server_cluster.c) */
	bool refused;                  /* client: its last REGISTER was refused */
	bool was_up;                   /* client: registered once: a refusal is asked again */
	bool relayed;                  /* server: another node's, relaying what it holds */
	void (*open_here)(void *arg, struct mgrok_stream *st, const struct sockaddr *source);
	void *open_arg; /* client: mgrok_proxy_conf's */
	struct mgrok_proxy *next;
};

#endif
