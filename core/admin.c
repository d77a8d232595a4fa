/*
 * The admin endpoint's HTTP side: the listener, its connections, requests
 * (http-parser) and responses. What the requests are for is admin_api.c.
 */
#define _POSIX_C_SOURCE 200809L /* strncasecmp, getline */
#include "admin.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "addr.h"
#include "admin_impl.h"
#include "log.h"

/* A token file's first line, without trailing whitespace. */
static char *read_token_file(const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		snprintf(err, errlen, "admin.token_file %s: %s", path, strerror(errno));
		return NULL;
	}
	char *line = NULL;
	size_t cap = 0;
	ssize_t n = getline(&line, &cap, f);
	fclose(f);
	while (n > 0 && isspace((unsigned char)line[n - 1]))
		line[--n] = '\0';
	if (n <= 0) {
		snprintf(err, errlen, "admin.token_file %s: empty", path);
		free(line);
		return NULL;
	}
	return line;
}

int mgrok_admin_token(const struct mgrok_admin_conf *conf, char **out, char *err, size_t errlen)
{
	*out = NULL;
	if (conf->token) {
		*out = mgrok_xstrdup(conf->token);
	} else if (conf->token_file) {
		*out = read_token_file(conf->token_file, err, errlen);
	} else if (conf->token_env) {
		const char *v = getenv(conf->token_env);
		if (!v || !*v) {
			snprintf(err, errlen, "admin.token_env: %s is not set or empty",
			         conf->token_env);
			return -1;
		}
		*out = mgrok_xstrdup(v);
	} else {
		return 0;
	}
	return *out ? 0 : -1;
}

#if HAVE_HTTP_PARSER

#include <http_parser.h>
#include <openssl/crypto.h>
#include <sys/socket.h>

#define ADMIN_MAX_CONNS 64
#define ADMIN_IDLE_TIMEOUT 10.0
#define ADMIN_HEAD_MAX 8192
#define ADMIN_URL_MAX 2048
#define ADMIN_BODY_MAX 65536
#define ADMIN_READ 4096

const bool mgrok_admin_available = true;

struct mgrok_admin {
	struct mgrok_ctx *ctx;
	const struct mgrok_admin_ops *ops;
	void *arg;
	char *token; /* NULL: no authentication */
	int lfd;
	ev_io lio;
	struct admin_conn *conns;
	unsigned nconns;
};

/* One client connection and the request being parsed on it. */
struct admin_conn {
	struct mgrok_admin *a;
	struct admin_conn *prev, *next;
	int fd;
	ev_io rio, wio;
	ev_timer idle;
	http_parser parser;
	struct mgrok_buf out;
	bool closing; /* close once out is written */
	/* The request so far. */
	size_t head_len;
	size_t body_len;
	char url[ADMIN_URL_MAX + 1];
	size_t url_len;
	bool url_long;
	bool in_value;    /* the last header piece was a value */
	bool in_auth;     /* ... of Authorization */
	char field[16];   /* the start of the field name being read */
	size_t field_len; /* its full length */
	char auth[256 + 1];
	size_t auth_len;
	int error; /* an HTTP status to answer with instead, then close */
};

static void conn_free(struct admin_conn *c)
{
	struct mgrok_admin *a = c->a;
	ev_io_stop(a->ctx->loop, &c->rio);
	ev_io_stop(a->ctx->loop, &c->wio);
	ev_timer_stop(a->ctx->loop, &c->idle);
	close(c->fd);
	mgrok_buf_free(&c->out);
	if (c->prev)
		c->prev->next = c->next;
	else
		a->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	a->nconns--;
	free(c);
}

static void request_reset(struct admin_conn *c)
{
	c->head_len = c->body_len = c->url_len = c->field_len = c->auth_len = 0;
	c->url_long = c->in_auth = c->in_value = false;
	c->error = 0;
}

/* ---- responses --------------------------------------------------------------- */

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
	mgrok_buf_printf(&c->out,
	                 "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
	                 "Cache-Control: no-store\r\n%s%s\r\n",
	                 status, status_text(status), type, len, extra ? extra : "",
	                 keep ? "" : "Connection: close\r\n");
	mgrok_buf_append(&c->out, body, len);
	if (!keep)
		c->closing = true;
}

void mgrok_admin_respond_json(struct admin_conn *c, int status, json_t *body, const char *extra)
{
	char *text = json_dumps(body, JSON_INDENT(2) | JSON_SORT_KEYS);
	size_t len = text ? strlen(text) : 0;
	/* A final newline, for curl at a terminal. */
	mgrok_buf_reserve(&c->out, 0);
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
	char msg[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	mgrok_admin_respond_json(c, status, json_pack("{ss}", "error", msg), extra);
}

/* ---- requests ----------------------------------------------------------------- */

static bool authorized(const struct admin_conn *c)
{
	const char *t = c->a->token;
	if (!t)
		return true;
	size_t n = strlen(t);
	return c->auth_len == 7 + n && strncasecmp(c->auth, "Bearer ", 7) == 0 &&
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
	mgrok_admin_route(c->a->ops, c->a->arg, c,
	                  http_method_str((enum http_method)c->parser.method), c->url);
}

static struct admin_conn *conn_of(http_parser *p) { return p->data; }

static int on_message_begin(http_parser *p)
{
	request_reset(conn_of(p));
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
	}
	return 0;
}

static int on_headers_complete(http_parser *p)
{
	struct admin_conn *c = conn_of(p);
	if (c->url_long)
		c->error = 414;
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

static int on_message_complete(http_parser *p)
{
	answer(conn_of(p));
	return conn_of(p)->closing ? 1 : 0;
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

/* ---- I/O ------------------------------------------------------------------- */

static void flush(struct admin_conn *c)
{
	while (c->out.len) {
		ssize_t n = send(c->fd, mgrok_buf_head(&c->out), c->out.len, MSG_NOSIGNAL);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
			ev_io_start(c->a->ctx->loop, &c->wio);
			return;
		}
		if (n <= 0) {
			conn_free(c);
			return;
		}
		mgrok_buf_consume(&c->out, (size_t)n);
	}
	ev_io_stop(c->a->ctx->loop, &c->wio);
	if (c->closing)
		conn_free(c);
}

/* Bytes in: parsed; a malformed request is answered 400, then closed. */
static void feed(struct admin_conn *c, const char *buf, size_t n)
{
	http_parser_execute(&c->parser, &callbacks, buf, n);
	if (!c->closing && c->parser.http_errno != HPE_OK) {
		c->error = c->error ? c->error : 400;
		answer(c);
		c->closing = true;
	}
}

static void on_readable(struct ev_loop *loop, ev_io *w, int revents)
{
	struct admin_conn *c = MGROK_CONTAINER_OF(w, struct admin_conn, rio);
	char buf[ADMIN_READ];
	ssize_t n = recv(c->fd, buf, sizeof(buf), 0);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (n <= 0) {
		conn_free(c);
		return;
	}
	ev_timer_again(loop, &c->idle);
	feed(c, buf, (size_t)n);
	if (c->closing) /* nothing more is read: what is owed goes out, then close */
		ev_io_stop(loop, &c->rio);
	flush(c);
}

static void on_writable(struct ev_loop *loop, ev_io *w, int revents)
{
	flush(MGROK_CONTAINER_OF(w, struct admin_conn, wio));
}

static void on_idle(struct ev_loop *loop, ev_timer *w, int revents)
{
	conn_free(MGROK_CONTAINER_OF(w, struct admin_conn, idle));
}

static void conn_new(struct mgrok_admin *a, int fd)
{
	struct admin_conn *c = mgrok_xcalloc(1, sizeof(*c));
	c->a = a;
	c->fd = fd;
	http_parser_init(&c->parser, HTTP_REQUEST);
	c->parser.data = c;
	ev_io_init(&c->rio, on_readable, fd, EV_READ);
	ev_io_init(&c->wio, on_writable, fd, EV_WRITE);
	ev_init(&c->idle, on_idle);
	c->idle.repeat = ADMIN_IDLE_TIMEOUT;
	ev_timer_again(a->ctx->loop, &c->idle);
	ev_io_start(a->ctx->loop, &c->rio);
	c->next = a->conns;
	if (a->conns)
		a->conns->prev = c;
	a->conns = c;
	a->nconns++;
}

static void on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
	struct mgrok_admin *a = MGROK_CONTAINER_OF(w, struct mgrok_admin, lio);
	for (int i = 0; i < 16; i++) {
		int fd = accept4(a->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
				MGROK_DEBUG("admin: accept: %s", strerror(errno));
			return;
		}
		if (a->nconns >= ADMIN_MAX_CONNS) {
			close(fd); /* the newest goes: the ones in hand are half done */
			continue;
		}
		conn_new(a, fd);
	}
}

struct mgrok_admin *mgrok_admin_new(struct mgrok_ctx *ctx, const struct mgrok_admin_conf *conf,
                                    const struct mgrok_admin_ops *ops, void *arg, char *err,
                                    size_t errlen)
{
	struct mgrok_sockaddr addr;
	char *token = NULL, msg[256];
	if (mgrok_admin_token(conf, &token, err, errlen) < 0)
		return NULL;
	if (mgrok_addr_resolve(conf->listen, NULL, &addr, msg, sizeof(msg)) < 0) {
		snprintf(err, errlen, "admin.listen %s: %s", conf->listen, msg);
		free(token);
		return NULL;
	}
	int fd = mgrok_tcp_listen(&addr, 64);
	if (fd < 0) {
		snprintf(err, errlen, "admin.listen %s: %s", conf->listen, strerror(-fd));
		free(token);
		return NULL;
	}
	struct mgrok_admin *a = mgrok_xcalloc(1, sizeof(*a));
	a->ctx = ctx;
	a->ops = ops;
	a->arg = arg;
	a->token = token;
	a->lfd = fd;
	ev_io_init(&a->lio, on_accept, fd, EV_READ);
	ev_io_start(ctx->loop, &a->lio);
	MGROK_INFO("admin endpoint on http://%s/ (%s)", conf->listen,
	           token ? "bearer token required" : "no token: keep it on loopback");
	return a;
}

void mgrok_admin_free(struct mgrok_admin *a)
{
	if (!a)
		return;
	while (a->conns)
		conn_free(a->conns);
	ev_io_stop(a->ctx->loop, &a->lio);
	close(a->lfd);
	if (a->token) {
		OPENSSL_cleanse(a->token, strlen(a->token));
		free(a->token);
	}
	free(a);
}

#else /* no http-parser: no endpoint */

const bool mgrok_admin_available = false;

struct mgrok_admin *mgrok_admin_new(struct mgrok_ctx *ctx, const struct mgrok_admin_conf *conf,
                                    const struct mgrok_admin_ops *ops, void *arg, char *err,
                                    size_t errlen)
{
	snprintf(err, errlen, "this build has no admin endpoint (configure found no http-parser)");
	return NULL;
}

void mgrok_admin_free(struct mgrok_admin *a) {}

#endif
