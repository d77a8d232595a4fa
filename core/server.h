/* The server role: the control listener, sessions, registrations. */
#ifndef MGROK_SERVER_H
#define MGROK_SERVER_H

#include <stdbool.h>

#include "config.h"

struct mgrok_server;

/*
 * Loads and initialises the plugins with their config, resolves the
 * addresses and reads the TLS files: everything --check checks. Returns
 * NULL with err filled in (a configuration error).
 */
struct mgrok_server *mgrok_server_new(const struct mgrok_server_conf *conf, char *err,
                                      size_t errlen);
/* Binds the control port. Returns 0, or -1 with err filled in. */
int mgrok_server_listen(struct mgrok_server *srv, char *err, size_t errlen);
/*
 * SIGHUP: the auth plugins re-read their files; sessions stay. Returns 0,
 * or -1 if one failed (it keeps its old state).
 */
int mgrok_server_reload(struct mgrok_server *srv);
/* Sends GO_AWAY(NORMAL) to every session and closes everything. */
void mgrok_server_shutdown(struct mgrok_server *srv);
void mgrok_server_free(struct mgrok_server *srv);

#endif
