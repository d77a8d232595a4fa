/*
 * The admin endpoint's connections: the listener, reading, one request at
 * a time (admin_request.c parses and answers it), writing, and closing.
 * Every connection is bounded: one answer queued at a time, the request's
 * head and body (admin_request.c), and a deadline that only an answer or
 * the peer reading one moves, so a trickle of bytes does not hold a slot.
 */
#define _POSIX_C_SOURCE 200809L /* getline */
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
	if (*out && strlen(*out) > ADMIN_TOKEN_MAX) {
		snprintf(err, errlen, "the admin token is longer than %d bytes", ADMIN_TOKEN_MAX);
		free(*out);
		*out = NULL;
	}
	return *out ? 0 : -1;
}

#if HAVE_HTTP_PARSER

#include <openssl/crypto.h>
#include <sys/socket.h>

#define ADMIN_MAX_CONNS 64
#define ADMIN_TIMEOUT 10.0 /* s: a request, an idle connection, a stalled reader */
#define ADMIN_LINGER 2.0   /* s: reading what a client still sends after our close */
#define ADMIN_READ 4096

const bool mgrok_admin_available = true;

struct mgrok_admin {
	struct mgrok_ctx *ctx;
	const struct mgrok_admin_ops *ops;
	void *arg;
	char *token; /* NULL: no authentication */
	int lfd;
	ev_io lio;
	ev_timer accept_retry; /* descriptors ran out: the listener rests */
	struct admin_conn *conns;
	unsigned nconns;
};

static void conn_free(struct admin_conn *c)
{
	struct mgrok_admin *a = c->a;
	ev_io_stop(a->ctx->loop, &c->rio);
	ev_io_stop(a->ctx->loop, &c->wio);
	ev_timer_stop(a->ctx->loop, &c->timer);
	close(c->fd);
	mgrok_buf_free(&c->in);
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

/* Writes what is queued. Returns false when that freed c. */
static bool send_out(struct admin_conn *c)
{
	while (c->out.len) {
		ssize_t n = send(c->fd, mgrok_buf_head(&c->out), c->out.len, MSG_NOSIGNAL);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			return true;
		if (n <= 0) {
			conn_free(c);
			return false;
		}
		mgrok_buf_consume(&c->out, (size_t)n);
		ev_timer_again(c->a->ctx->loop, &c->timer); /* the reader is reading */
	}
	return true;
}

/* Our side is done: a close with unread input would send an RST, which
 * may destroy the answer in flight; so shut ours and read to the end. */
static void linger(struct admin_conn *c)
{
	struct ev_loop *loop = c->a->ctx->loop;
	shutdown(c->fd, SHUT_WR);
	c->lingering = true;
	mgrok_buf_free(&c->in);
	ev_io_stop(loop, &c->wio);
	ev_io_start(loop, &c->rio);
	c->timer.repeat = ADMIN_LINGER;
	ev_timer_again(loop, &c->timer);
}

/* After any event: answers what can be answered, writes, and watches for
 * what comes next. */
static void conn_run(struct admin_conn *c)
{
	struct ev_loop *loop = c->a->ctx->loop;
	for (;;) {
		mgrok_admin_parse(c);
		if (!send_out(c))
			return;
		if (c->out.len) { /* the peer reads slowly: nothing more is read meanwhile */
			ev_io_stop(loop, &c->rio);
			ev_io_start(loop, &c->wio);
			return;
		}
		ev_io_stop(loop, &c->wio);
		if (c->closing) {
			linger(c);
			return;
		}
		if (c->eof) { /* what is left is half a request at most */
			conn_free(c);
			return;
		}
		if (!c->in.len) {
			ev_io_start(loop, &c->rio);
			return;
		}
	}
}

static void on_readable(struct ev_loop *loop, ev_io *w, int revents)
{
	struct admin_conn *c = MGROK_CONTAINER_OF(w, struct admin_conn, rio);
	if (c->lingering) {
		char junk[ADMIN_READ];
		ssize_t n = recv(c->fd, junk, sizeof(junk), 0);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
			conn_free(c);
		return;
	}
	mgrok_buf_reserve(&c->in, ADMIN_READ);
	ssize_t n = recv(c->fd, mgrok_buf_tail(&c->in), ADMIN_READ, 0);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (n < 0) {
		conn_free(c);
		return;
	}
	if (n == 0) {
		c->eof = true;
		ev_io_stop(loop, &c->rio);
	}
	c->in.len += (size_t)n;
	conn_run(c);
}

static void on_writable(struct ev_loop *loop, ev_io *w, int revents)
{
	conn_run(MGROK_CONTAINER_OF(w, struct admin_conn, wio));
}

static void on_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
	conn_free(MGROK_CONTAINER_OF(w, struct admin_conn, timer));
}

static void conn_new(struct mgrok_admin *a, int fd)
{
	struct admin_conn *c = mgrok_xcalloc(1, sizeof(*c));
	c->a = a;
	c->fd = fd;
	c->ops = a->ops;
	c->arg = a->arg;
	c->token = a->token;
	http_parser_init(&c->parser, HTTP_REQUEST);
	c->parser.data = c;
	ev_io_init(&c->rio, on_readable, fd, EV_READ);
	ev_io_init(&c->wio, on_writable, fd, EV_WRITE);
	ev_init(&c->timer, on_timeout);
	c->timer.repeat = ADMIN_TIMEOUT;
	ev_timer_again(a->ctx->loop, &c->timer);
	ev_io_start(a->ctx->loop, &c->rio);
	c->next = a->conns;
	if (a->conns)
		a->conns->prev = c;
	a->conns = c;
	a->nconns++;
}

static void on_accept_retry(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct mgrok_admin *a = MGROK_CONTAINER_OF(w, struct mgrok_admin, accept_retry);
	ev_io_start(loop, &a->lio);
}

static void on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
	struct mgrok_admin *a = MGROK_CONTAINER_OF(w, struct mgrok_admin, lio);
	for (int i = 0; i < 16; i++) {
		int fd = accept4(a->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0 &&
		    (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)) {
			/* Level-triggered: left armed, the listener would spin. */
			ev_io_stop(loop, &a->lio);
			ev_timer_start(loop, &a->accept_retry);
			return;
		}
		if (fd < 0)
			return; /* EAGAIN, or that one connection is gone */
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
	ev_timer_init(&a->accept_retry, on_accept_retry, 0.5, 0.);
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
	ev_timer_stop(a->ctx->loop, &a->accept_retry);
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
