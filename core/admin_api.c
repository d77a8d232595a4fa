/*
 * What the admin endpoint's paths do (doc/admin.md); admin.c has parsed
 * and authorized the request.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin_impl.h"

#define SESSIONS_PATH "/api/v1/sessions"
#define BAN_MAX 31536000.0 /* a year */

static void metrics(const struct mgrok_admin_ops *ops, void *arg, struct admin_conn *c)
{
	struct mgrok_buf out = {0};
	ops->metrics(arg, &out);
	mgrok_admin_respond(c, 200, "text/plain; version=0.0.4; charset=utf-8",
	                    mgrok_buf_head(&out), out.len, NULL);
	mgrok_buf_free(&out);
}

/* "123" as a session id; false for anything else. */
static bool parse_id(const char *s, uint32_t *id)
{
	char *end;
	if (*s < '1' || *s > '9')
		return false;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (*end || errno || v > UINT32_MAX)
		return false;
	*id = (uint32_t)v;
	return true;
}

static void one_session(const struct mgrok_admin_ops *ops, void *arg, struct admin_conn *c,
                        uint32_t id)
{
	json_t *all = ops->sessions(arg), *s;
	size_t i;
	json_array_foreach(json_object_get(all, "sessions"), i, s) {
		if (json_integer_value(json_object_get(s, "id")) == (json_int_t)id) {
			mgrok_admin_respond_json(c, 200, json_incref(s), NULL);
			json_decref(all);
			return;
		}
	}
	json_decref(all);
	mgrok_admin_error(c, 404, NULL, "no session %u", id);
}

/* The query of DELETE: "ban=SECONDS" or nothing. Returns false with msg. */
static bool parse_query(const char *q, double *ban, char *msg, size_t len)
{
	*ban = 0;
	if (!q || !*q)
		return true;
	if (strncmp(q, "ban=", 4) != 0) {
		snprintf(msg, len, "unknown query \"%.64s\": the only parameter is ban=SECONDS", q);
		return false;
	}
	char *end;
	double v = strtod(q + 4, &end);
	if (end == q + 4 || *end || !isfinite(v) || v < 1 || v > BAN_MAX) {
		snprintf(msg, len, "ban must be a number of seconds from 1 to %.0f", BAN_MAX);
		return false;
	}
	*ban = v;
	return true;
}

static void kick(const struct mgrok_admin_ops *ops, void *arg, struct admin_conn *c, uint32_t id,
                 const char *query)
{
	char msg[256] = "";
	double ban;
	json_t *reply = NULL;
	if (!parse_query(query, &ban, msg, sizeof(msg))) {
		mgrok_admin_error(c, 400, NULL, "%s", msg);
		return;
	}
	int status = ops->kick(arg, id, ban, &reply, msg, sizeof(msg));
	if (reply)
		mgrok_admin_respond_json(c, status, reply, NULL);
	else
		mgrok_admin_error(c, status, NULL, "%s", msg);
}

static void sessions_path(const struct mgrok_admin_ops *ops, void *arg, struct admin_conn *c,
                          const char *method, const char *rest, const char *query)
{
	uint32_t id = 0;
	bool get = strcmp(method, "GET") == 0, del = strcmp(method, "DELETE") == 0;
	if (!*rest) {
		if (!get)
			mgrok_admin_error(c, 405, "Allow: GET\r\n", "%s: GET only", SESSIONS_PATH);
		else if (query)
			mgrok_admin_error(c, 400, NULL, "%s takes no query", SESSIONS_PATH);
		else
			mgrok_admin_respond_json(c, 200, ops->sessions(arg), NULL);
		return;
	}
	if (*rest != '/' || !parse_id(rest + 1, &id)) {
		mgrok_admin_error(c, 404, NULL, "no such path (session ids are numbers)");
		return;
	}
	if (get && !query)
		one_session(ops, arg, c, id);
	else if (del && ops->kick)
		kick(ops, arg, c, id, query);
	else if (get)
		mgrok_admin_error(c, 400, NULL, "GET of a session takes no query");
	else
		mgrok_admin_error(c, 405, ops->kick ? "Allow: GET, DELETE\r\n" : "Allow: GET\r\n",
		                  "%s",
		                  ops->kick ? "GET or DELETE" : "sessions are not closed here");
}

void mgrok_admin_route(const struct mgrok_admin_ops *ops, void *arg, struct admin_conn *c,
                       const char *method, const char *target)
{
	char path[ADMIN_URL_MAX + 1];
	snprintf(path, sizeof(path), "%s", target);
	char *query = strchr(path, '?');
	if (query)
		*query++ = '\0';
	if (strcmp(path, "/metrics") == 0) {
		if (strcmp(method, "GET") != 0)
			mgrok_admin_error(c, 405, "Allow: GET\r\n", "/metrics: GET only");
		else
			metrics(ops, arg, c);
	} else if (strncmp(path, SESSIONS_PATH, strlen(SESSIONS_PATH)) == 0) {
		sessions_path(ops, arg, c, method, path + strlen(SESSIONS_PATH), query);
	} else {
		mgrok_admin_error(c, 404, NULL, "no such path: try /metrics or %s", SESSIONS_PATH);
	}
}
