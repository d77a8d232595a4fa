/* The server role: the control listener, sessions, registrations. */
#ifndef MGROK_SERVER_H
#define MGROK_SERVER_H

#include <stdbool.h>

#include "config.h"
#include "context.h"

struct mgrok_server;

/*
 * conf and ctx must outlive the server (it reads conf's limits as sessions
 * come and go; allow_ports it copies). Loads and initialises the plugins
 * with their config, resolves the
 * addresses and reads the TLS files: everything --check checks. Returns
 * NULL with err filled in (a configuration error).
 */
struct mgrok_server *mgrok_server_new(struct mgrok_ctx *ctx, const struct mgrok_server_conf *conf,
                                      char *err, size_t errlen);
/* Binds the control port. Returns 0, or -1 with err filled in. */
int mgrok_server_listen(struct mgrok_server *srv, char *err, size_t errlen);
/*
 * SIGHUP: the auth plugins re-read their files, and with fresh (a config
 * just read again) its allow_ports apply to REGISTERs from now on. Sessions
 * and their proxies stay. Returns 0, or -1 if a plugin failed (it keeps its
 * old state).
 */
int mgrok_server_reload(struct mgrok_server *srv, const struct mgrok_server_conf *fresh);

/* Sends GO_AWAY(NORMAL) to every session and closes everything. */
/* SIGTERM, the first: no new sessions or visitors; the loop ends once every
 * open stream has ended, or after shutdown_timeout. GO_AWAY comes with
 * mgrok_server_shutdown after it: a peer ends its session, and the streams
 * in it, on GO_AWAY. */
void mgrok_server_drain(struct mgrok_server *srv);
void mgrok_server_shutdown(struct mgrok_server *srv);
void mgrok_server_free(struct mgrok_server *srv);

/* Authenticated sessions, and the proxies registered on them. */
void mgrok_server_counts(const struct mgrok_server *srv, unsigned *sessions, unsigned *proxies);

/* The configuration it runs with. */
const struct mgrok_server_conf *mgrok_server_conf(const struct mgrok_server *srv);

/* Host functions name_claim and name_lookup (ABI 1.4). */
struct mgrok_proxy;
struct mgrok_plugin;
int mgrok_server_name_claim(struct mgrok_proxy *px, const char *name, const char *domain,
                            char *reason, size_t len);
struct mgrok_proxy *mgrok_server_name_lookup(struct mgrok_server *srv, const struct mgrok_plugin *p,
                                             const char *name);

#endif
