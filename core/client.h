/* The client role: connect, authenticate, register proxies, reconnect. */
#ifndef MGROK_CLIENT_H
#define MGROK_CLIENT_H

#include <stdbool.h>

#include "config.h"
#include "context.h"

struct mgrok_client;

/*
 * conf and ctx must outlive the client. Loads and initialises the plugins,
 * resolves the proxies' local targets,
 * then (unless check_only) starts connecting. Returns NULL with err filled in.
 */
struct mgrok_client *mgrok_client_new(struct mgrok_ctx *ctx, const struct mgrok_client_conf *conf,
                                      bool check_only, char *err, size_t errlen);
/* GO_AWAY(NORMAL) and stop: the loop then ends. */
void mgrok_client_shutdown(struct mgrok_client *cl);
/* SIGHUP: the proxies of fresh (the config read again) apply as a
 * difference: new ones are registered, removed ones unregistered, changed
 * ones registered again; the session and the streams of the others stay.
 * What takes a restart (the server) is named in the log. */
void mgrok_client_reload(struct mgrok_client *cl, const struct mgrok_client_conf *fresh);
/* A proxy more, registered at once when a session is up; one less, its
 * streams reset and UNREGISTER sent (mgrokd's relays, doc/cluster.md). */
int mgrok_client_add_proxy(struct mgrok_client *cl, const struct mgrok_proxy_conf *pc, char *err,
                           size_t errlen);
void mgrok_client_remove_proxy(struct mgrok_client *cl, const char *name);
/* A session is up (authenticated). */
bool mgrok_client_connected(const struct mgrok_client *cl);
/* 0 after a clean shutdown, 1 when the client gave up (auth failed, replaced, refused). */
int mgrok_client_exit_code(const struct mgrok_client *cl);
void mgrok_client_free(struct mgrok_client *cl);

#endif
