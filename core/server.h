/* The server role: the control listener, sessions, registrations. */
#ifndef MGROK_SERVER_H
#define MGROK_SERVER_H

#include <stdbool.h>

#include "config.h"
#include "context.h"

struct mgrok_server;

/*
 * conf and ctx must outlive the server (it reads conf's limits as sessions
 * come and go, and a reload updates them there; allow_ports it copies). Loads and initialises the plugins
 * with their config, resolves the
 * addresses and reads the TLS files: everything --check checks. Returns
 * NULL with err filled in (a configuration error).
 */
struct mgrok_server *mgrok_server_new(struct mgrok_ctx *ctx, struct mgrok_server_conf *conf,
                                      char *err, size_t errlen);
/* Binds the control port. Returns 0, or -1 with err filled in. */
int mgrok_server_listen(struct mgrok_server *srv, char *err, size_t errlen);
/*
 * SIGHUP: the TLS certificate and the auth plugins' files are read again.
 * With fresh (the config just read again, checked) what can change without
 * a restart is taken from it for new connections and REGISTERs: limits,
 * heartbeat, timeouts, rate_limit, allow_ports, proxy_protocol_from, the
 * TLS files' paths, and the auth methods' options (a method whose options
 * changed gets a new instance; its handshakes in progress are closed, the
 * clients retry). What takes a restart is named in the log. Sessions and
 * their proxies stay. Returns 0, or -1 if a part failed (it keeps its old
 * state).
 */
int mgrok_server_reload(struct mgrok_server *srv, struct mgrok_server_conf *fresh);

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
