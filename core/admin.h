/*
 * The admin endpoint: HTTP/1.1 on the process's loop (doc/admin.md).
 * GET /metrics, GET /api/v1/sessions[/ID], DELETE /api/v1/sessions/ID;
 * what they show comes from the role through struct mgrok_admin_ops.
 * Requests are parsed with http-parser, the http plugin's parser; a build
 * without it has no admin endpoint (mgrok_admin_new says so).
 */
#ifndef MGROK_ADMIN_H
#define MGROK_ADMIN_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "config.h"
#include "context.h"

struct mgrok_admin;

struct mgrok_admin_ops {
	/* The role's metric families, appended to out. */
	void (*metrics)(void *arg, struct mgrok_buf *out);
	/* A new reference to {"sessions": [...]}; each session has "id". */
	json_t *(*sessions)(void *arg);
	/* DELETE /api/v1/sessions/ID with ban seconds (0: none). Returns the
	 * HTTP status; *reply is the body (a new reference), or NULL with msg
	 * for an error. NULL op: the method is not allowed (405). */
	int (*kick)(void *arg, uint32_t id, double ban, json_t **reply, char *msg, size_t len);
};

/* Whether this build has the endpoint. */
extern const bool mgrok_admin_available;

/* Reads the token (token, token_file or token_env) and binds conf->listen.
 * Returns NULL with err filled in. */
struct mgrok_admin *mgrok_admin_new(struct mgrok_ctx *ctx, const struct mgrok_admin_conf *conf,
                                    const struct mgrok_admin_ops *ops, void *arg, char *err,
                                    size_t errlen);
/* Closes the listener and every connection. NULL is fine. */
void mgrok_admin_free(struct mgrok_admin *a);

/* The admin token conf names: the string, a file's first line or an
 * environment variable; NULL in *out when none is configured. Returns 0, or
 * -1 with err. Shared with the status commands. */
int mgrok_admin_token(const struct mgrok_admin_conf *conf, char **out, char *err, size_t errlen);

#endif
