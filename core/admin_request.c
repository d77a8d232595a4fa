/*
 * The admin endpoint's requests: http-parser's callbacks gather one request
 * into its struct admin_conn, check its token and hand it to admin_api.c;
 * the responses are queued on the connection for admin.c to write.
 */
#define _POSIX_C_SOURCE 200809L /* strncasecmp */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "admin_impl.h"
#include "metrics.h"

#if HAVE_HTTP_PARSER

static const char *status_text(int status)
{
	switch (status) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 409: return "Conflict";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 431: return "Request Header Fields Too Large";
	default: return "Internal Server Error";
	}
}

void mgrok_admin_respond(struct admin_conn *c, int status, const char *type, const void *body,
                         size_t len, const char *extra)
{
	bool keep = !c->error && http_should_keep_alive(&c->parser);
	/* HTTP/1.0 closes unless told otherwise. */
	bool old = c->parser.http_major == 1 && c->parser.http_minor == 0;
	mgrok_buf_printf(&c->out,
	                 "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
	                 "Cache-Control: no-store\r\n%s%s\r\n",
	                 status, status_text(status), type, len, extra ? extra : "",
	                 !keep ? "Connection: close\r\n"
	                 : old ? "Connection: keep-alive\r\n"
	                       : "");
	mgrok_buf_append(&c->out, body, len);
	if (!keep)
		c->closing = true;
}

void mgrok_admin_respond_json(struct admin_conn *c, int status, json_t *body, const char *extra)
{
	char *text = json_dumps(body, JSON_INDENT(2) | JSON_SORT_KEYS);
	size_t len = text ? strlen(text) : 0;
	/* A final newline, for curl at a terminal. */
	if (text) {
		text = mgrok_xrealloc(text, len + 2);
		text[len++] = '\n';
		text[len] = '\0';
	}
	mgrok_admin_respond(c, status, "application/json", text ? text : "", len, extra);
	free(text);
	json_decref(body);
}

void mgrok_admin_error(struct admin_conn *c, int status, const char *extra, const char *fmt, ...)
{
	char msg[256], text[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* It may quote the request's own bytes: JSON wants UTF-8. */
	mgrok_text_utf8(msg, text, sizeof(text));
	mgrok_admin_respond_json(c, status, json_pack("{ss}", "error", text), extra);
}

/* ---- requests ----------------------------------------------------------------- */

static bool authorized(const struct admin_conn *c)
{
	const char *t = c->token;
	if (!t)
		return true;
	size_t n = strlen(t), len = c->auth_len;
	while (len > 7 && (c->auth[len - 1] == ' ' || c->auth[len - 1] == '\t'))
		len--; /* trailing whitespace is not part of the value */
	return !c->auth_long && len == 7 + n && strncasecmp(c->auth, "Bearer ", 7) == 0 &&
	       CRYPTO_memcmp(c->auth + 7, t, n) == 0;
}

static void answer(struct admin_conn *c)
{
	if (c->error) {
		mgrok_admin_error(c, c->error, NULL, "%s", status_text(c->error));
		return;
	}
	if (!authorized(c)) {
		mgrok_admin_error(c, 401, "WWW-Authenticate: Bearer realm=\"mgrok\"\r\n",
		                  "a bearer token is required");
		return;
	}
	c->url[c->url_len] = '\0';
	mgrok_admin_route(c->ops, c->arg, c, http_method_str((enum http_method)c->parser.method),
	                  c->url);
}

static struct admin_conn *conn_of(http_parser *p) { return p->data; }

static int on_message_begin(http_parser *p)
{
	struct admin_conn *c = conn_of(p);
	c->head_len = c->body_len = c->url_len = c->field_len = c->auth_len = 0;
	c->url_long = c->in_auth = c->in_value = c->auth_long = c->head_done = false;
	c->error = 0;
	return 0;
}

/* Counts head bytes (those the callbacks see): past the limit, 431. */
static bool head_over(struct admin_conn *c, size_t len)
{
	c->head_len += len;
	if (c->head_len <= ADMIN_HEAD_MAX)
		return false;
	c->error = 431;
	return true;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
	struct admin_conn *c = conn_of(p);
	if (head_over(c, len))
		return 1;
	if (c->url_len + len > ADMIN_URL_MAX) {
		c->url_long = true;
		return 0;
	}
	memcpy(c->url + c->url_len, at, len);
	c->url_len += len;
	return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
	struct admin_conn *c = conn_of(p);
	if (head_over(c, len))
		return 1;
	if (c->head_done) /* a chunked body's trailers: no credentials there (RFC 9110 6.5.1) */
		return 0;
	if (c->in_value) { /* a new field starts */
		c->field_len = 0;
		c->in_value = false;
	}
	for (size_t i = 0; i < len && c->field_len + i < sizeof(c->field); i++)
		c->field[c->field_len + i] = at[i];
	c->field_len += len;
	return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
	struct admin_conn *c = conn_of(p);
	if (head_over(c, len))
		return 1;
	if (c->head_done)
		return 0;
	if (!c->in_value) { /* the value's first piece */
		c->in_value = true;
		c->in_auth = c->field_len == 13 && strncasecmp(c->field, "authorization", 13) == 0;
		if (c->in_auth)
			c->auth_len = 0;
	}
	if (c->in_auth) {
		size_t room = sizeof(c->auth) - 1 - c->auth_len;
		size_t n = len < room ? len : room;
		memcpy(c->auth + c->auth_len, at, n);
		c->auth_len += n;
		c->auth_long |= n < len;
	}
	return 0;
}

static int on_headers_complete(http_parser *p)
{
	struct admin_conn *c = conn_of(p);
	c->head_done = true;
	if (c->url_long)
		c->error = 414;
	else if (p->upgrade) /* neither Upgrade nor CONNECT is served here */
		c->error = 400;
	return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
	struct admin_conn *c = conn_of(p);
	c->body_len += len;
	if (c->body_len > ADMIN_BODY_MAX) {
		c->error = 413;
		return 1; /* stops the parser: answered below, then closed */
	}
	return 0;
}

/* One request at a time: the parser stops here until the answer is out. */
static int on_message_complete(http_parser *p)
{
	answer(conn_of(p));
	http_parser_pause(p, 1);
	return 0;
}

static const http_parser_settings callbacks = {
        .on_message_begin = on_message_begin,
        .on_url = on_url,
        .on_header_field = on_header_field,
        .on_header_value = on_header_value,
        .on_headers_complete = on_headers_complete,
        .on_body = on_body,
        .on_message_complete = on_message_complete,
};

/* Parses what was read until a request is answered (the parser pauses
 * there) or the bytes run out. */
void mgrok_admin_parse(struct admin_conn *c)
{
	while (!c->closing && !c->out.len && c->in.len) {
		size_t used = http_parser_execute(&c->parser, &callbacks,
		                                  (const char *)mgrok_buf_head(&c->in), c->in.len);
		mgrok_buf_consume(&c->in, used);
		enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
		if (e == HPE_PAUSED) {
			http_parser_pause(&c->parser, 0);
		} else if (e != HPE_OK) {
			if (!c->error)
				c->error = 400;
			answer(c); /* with c->error: then closed */
			c->closing = true;
		}
	}
}

#endif
