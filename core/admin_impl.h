/* Between admin.c (HTTP) and admin_api.c (what each path does). */
#ifndef MGROK_ADMIN_IMPL_H
#define MGROK_ADMIN_IMPL_H

#include <jansson.h>

#include "admin.h"

struct admin_conn;

/* A response on c; extra is more header lines ("Name: value\r\n"...), or
 * NULL. The JSON forms take the reference to body. */
void mgrok_admin_respond(struct admin_conn *c, int status, const char *type, const void *body,
                         size_t len, const char *extra);
void mgrok_admin_respond_json(struct admin_conn *c, int status, json_t *body, const char *extra);
void mgrok_admin_error(struct admin_conn *c, int status, const char *extra, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

/* One authorized request: method ("GET"...) and the request target. */
void mgrok_admin_route(const struct mgrok_admin_ops *ops, void *arg, struct admin_conn *c,
                       const char *method, const char *target);

#endif
