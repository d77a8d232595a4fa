/* Between admin.c (connections), admin_request.c (requests, responses)
 * and admin_api.c (what each path does). */
#ifndef MGROK_ADMIN_IMPL_H
#define MGROK_ADMIN_IMPL_H

#include <jansson.h>

#include "admin.h"

#define ADMIN_URL_MAX 2048   /* request target, bytes */
#define ADMIN_HEAD_MAX 8192  /* request line and fields, as the parser hands them over */
#define ADMIN_BODY_MAX 65536 /* no request has a use for one */
#define ADMIN_TOKEN_MAX 1024

struct admin_conn;

#if HAVE_HTTP_PARSER
#include <http_parser.h>

/* One client connection and the request being read on it. */
struct admin_conn {
	struct mgrok_admin *a;
	struct admin_conn *prev, *next;
	int fd;
	ev_io rio, wio;
	ev_timer timer; /* the request's or the idle deadline; the linger's */
	http_parser parser;
	struct mgrok_buf in;  /* read, not parsed yet (the parser waits for an answer) */
	struct mgrok_buf out; /* answers not written yet */
	bool closing;         /* no more requests: close once out is written */
	bool eof;             /* the peer has closed its side */
	bool lingering;       /* out written and our side shut: reading to the end */
	/* What the request needs of the endpoint. */
	const struct mgrok_admin_ops *ops;
	void *arg;
	const char *token;
	/* The request so far. */
	size_t head_len, body_len;
	char url[ADMIN_URL_MAX + 1];
	size_t url_len;
	bool url_long;
	bool head_done;   /* fields from now on are trailers: not read */
	bool in_value;    /* the last header piece was a value */
	bool in_auth;     /* ... of Authorization */
	char field[16];   /* the start of the field name being read */
	size_t field_len; /* its full length */
	char auth[7 + ADMIN_TOKEN_MAX + 64 + 1];
	size_t auth_len;
	bool auth_long;
	int error; /* an HTTP status to answer with instead, then close */
};

/* Parses c->in until a request is answered (into c->out, which must be
 * empty to begin with) or the bytes run out; a malformed request is
 * answered with its error and c->closing set. */
void mgrok_admin_parse(struct admin_conn *c);
#endif

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
