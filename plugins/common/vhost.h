/*
 * What the proxy types routed by name (http, tls) share: one listener for
 * every session's proxies, visitors waiting for the bytes that name their
 * host (bounded in number, size and time), and proxies that claim a host
 * name from the host (subdomain, own hostname, or a random subdomain).
 * The protocol part -- finding the name in the first bytes, answering a
 * visitor that cannot be routed -- is the plugin's, through struct
 * vhost_proto.
 */
#ifndef MGROK_PLUGIN_VHOST_H
#define MGROK_PLUGIN_VHOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "mgrok/plugin.h"

struct vhost;

/* A visitor on the shared listener, before it is routed. */
struct vhost_conn {
	struct vhost *vh;
	int fd;
	struct sockaddr_storage src;
	socklen_t srclen;
	char src_ip[64]; /* the address without its port, for headers */
	struct mgrok_watch *watch;
	struct mgrok_timer *timer;
	uint8_t *buf; /* what the visitor sent so far */
	size_t len;
	void *proto;     /* the plugin's per-visitor state */
	bool pp_pending; /* from a load balancer: its PROXY header comes first */
	struct vhost_conn *prev, *next;
};

/* A proxy: the name it holds, and the plugin's own part of it. */
struct vhost_proxy {
	struct vhost *vh;
	char name[254];
	void *proto;
};

struct vhost_proto {
	const char *scheme;      /* "http", "tls" */
	const char *timeout_key; /* its config key for the first bytes' deadline */
	uint16_t default_port;   /* left out of public addresses (0: always shown) */
	size_t max_first_bytes;  /* a visitor that sends this much unrouted is answered */
	/* Bytes arrived (c->buf, c->len): route with vhost_attach or answer
	 * with vhost_answer and return false (c is gone), or return true to
	 * wait for more. */
	bool (*on_bytes)(struct vhost_conn *c);
	/* No route in time, or max_first_bytes without one. */
	void (*on_stuck)(struct vhost_conn *c, bool timeout);
	void (*conn_free)(void *proto);
	/* Per proxy: check options (NULL: no keys of its own besides the
	 * naming ones), make and free the proxy's part. */
	int (*check_option)(const char *key, const json_t *v, char *err, size_t errlen);
	void *(*proxy_new)(const struct vhost *vh, const json_t *options);
	void (*proxy_free)(const struct vhost *vh, void *proto);
};

/* The plugin's init and fini: an instance for proto, from its config
 * section (listen, domain, the timeout, max_pending). */
int vhost_init(const struct vhost_proto *proto, const struct mgrok_host *host,
               const struct mgrok_plugin *self, const json_t *conf, void **inst, char *err,
               size_t errlen);
void vhost_fini(void *inst);
const struct mgrok_host *vhost_host(const struct vhost *vh);
const struct mgrok_plugin *vhost_self(const struct vhost *vh);

/* The plugin's ops, shared (inst is the vhost): in its mgrok_proxy_ops,
 * VHOST_PROXY_OPS and what is its own. */
#define VHOST_PROXY_OPS                                                                            \
	.server_bind = vhost_server_bind, .server_unbind = vhost_server_unbind,                    \
	.client_open = vhost_client_open, .check_options = vhost_check_options,                    \
	.server_start = vhost_server_start, .public_address = vhost_public_address
int vhost_server_start(void *inst, char *err, size_t errlen);
int vhost_server_bind(void *inst, struct mgrok_proxy *px, const struct mgrok_proxy_spec *spec,
                      void **state, char *err, size_t errlen);
void vhost_server_unbind(void *inst, void *state);
uint16_t vhost_public_address(void *inst, void *state, char *buf, size_t len);
int vhost_check_options(void *inst, const json_t *options, char *err, size_t errlen);
void vhost_client_open(void *inst, const struct mgrok_proxy_spec *spec, struct mgrok_stream *st);

/* The proxy holding name, or NULL. */
struct mgrok_proxy *vhost_lookup(struct vhost_conn *c, const char *name, struct vhost_proxy **vp);
/* Hands c over to px with first as its first bytes; arg as for
 * host->visitor_attach. Returns 0 (c is gone), or -1 at the stream limit
 * (c is still the caller's). */
int vhost_attach(struct vhost_conn *c, struct mgrok_proxy *px, const void *first, size_t len,
                 void *arg);
/* Writes bytes to the visitor and closes it gently; c is gone. */
void vhost_answer(struct vhost_conn *c, const void *bytes, size_t len);
/* Writes a last word to a visitor fd about to be closed by the host, and
 * reads what it sent and nobody will. */
void vhost_last_word(int fd, const void *bytes, size_t len);

#endif
