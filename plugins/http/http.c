/*
 * The http proxy type (0x03): HTTP/1.x virtual hosts. One listener, shared
 * by every session's http proxies, reads each visitor's first request head,
 * routes it by its Host to the proxy that holds that name, and from then
 * on passes the visitor's requests through http_filter.c (per-request Host
 * check, X-Forwarded-*, basic auth, request smuggling defences) on their
 * way to the client. Responses pass untouched. Errors a visitor sees are
 * small pages of http_pages.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_filter.h"
#include "http_pages.h"
#include "mgrok/plugin.h"
#include "vhost.h"

#define HEAD_MAX 16384
#define HEADERS_MAX 100
/* What an unrouted visitor's buffer holds: a whole head fits, with room
 * for what came after it in the same read; past HEAD_MAX the filter has
 * answered 431 already. */
#define FIRST_BYTES_MAX (HEAD_MAX + 4096)
#define BASIC_AUTH_MAX 64 /* accepted user:password pairs per proxy */

/* Per proxy: what each of its requests is checked and rewritten with. */
struct http_proxy {
	struct http_route route;
	char *host_header;
	char **basic_auth; /* NULL-terminated, or NULL */
};

/* Per visitor, from its first byte until its stream is gone. */
struct http_visitor {
	const struct vhost *vh;
	struct http_filter *f;
	size_t fed;  /* of the unrouted visitor's buffer */
	bool raw;    /* after an upgrade: bytes pass as they are */
	int refused; /* the status a refused request gets once earlier answers are out */
};

static const struct mgrok_host *host_of(const struct vhost *vh) { return vhost_host(vh); }

static void visitor_free(void *arg)
{
	struct http_visitor *v = arg;
	http_filter_free(v->f);
	host_of(v->vh)->free(v);
}

/* Answers an unrouted visitor with a page, and closes it. */
static void answer(struct vhost_conn *c, int status, const char *detail)
{
	char page[2048];
	size_t n = http_page(status, detail, page, sizeof(page));
	host_of(c->vh)->log(vhost_self(c->vh), MGROK_LOG_DEBUG, "%s: %d %s", c->src_ip, status,
	                    detail);
	vhost_answer(c, page, n);
}

/* The head is routed: the rest of what the visitor sent goes through the
 * proxy's rules, and the visitor to its tunnel. Returns false (c is gone). */
static bool route(struct vhost_conn *c, struct http_visitor *v)
{
	char detail[320];
	const char *name = http_filter_host(v->f);
	struct vhost_proxy *vp;
	struct mgrok_proxy *px = vhost_lookup(c, name, &vp);
	if (!px) {
		snprintf(detail, sizeof(detail), "No tunnel is open for %s.", name);
		answer(c, 404, detail);
		return false;
	}
	struct http_route r = ((struct http_proxy *)vp->proto)->route;
	r.host = vp->name;
	http_filter_route(v->f, &r);
	size_t used = 0;
	int rc = http_filter_feed(v->f, c->buf + v->fed, c->len - v->fed, &used);
	v->fed += used;
	size_t n;
	http_filter_output(v->f, &n);
	if (rc >= 400 && !n) {
		answer(c, rc, http_filter_reason(v->f));
		return false;
	}
	/* Requests before a refused one go first; the refusal follows their
	 * answers (on_visitor_data ends the visitor's side at once). */
	v->refused = rc >= 400 ? rc : 0;
	/* After an upgrade the rest is no HTTP of ours: the filter, raw from
	 * now on, passes it into the output as it came. */
	v->raw = rc == HTTP_FILTER_RAW;
	if (v->raw)
		http_filter_feed(v->f, c->buf + v->fed, c->len - v->fed, &used);
	const uint8_t *out = http_filter_output(v->f, &n);
	if (vhost_attach(c, px, out, n, v) < 0) {
		snprintf(detail, sizeof(detail),
		         "The tunnel for %s is at its limit of open "
		         "connections; try again shortly.",
		         name);
		answer(c, 503, detail);
		return false;
	}
	http_filter_drain(v->f, n);
	return false;
}

static bool on_bytes(struct vhost_conn *c)
{
	struct http_visitor *v = c->proto;
	if (!v) {
		const struct http_filter_limits lim = {HEAD_MAX, HEADERS_MAX};
		v = host_of(c->vh)->alloc(sizeof(*v));
		memset(v, 0, sizeof(*v));
		v->vh = c->vh;
		v->f = http_filter_new(&lim, c->src_ip, "http");
		c->proto = v;
	}
	size_t used = 0;
	int rc = http_filter_feed(v->f, c->buf + v->fed, c->len - v->fed, &used);
	v->fed += used;
	if (rc == HTTP_FILTER_MORE)
		return true;
	if (rc == HTTP_FILTER_ROUTE)
		return route(c, v);
	answer(c, rc >= 400 ? rc : 400, http_filter_reason(v->f));
	return false;
}

static void on_stuck(struct vhost_conn *c, bool timeout)
{
	if (timeout)
		answer(c, 408, "The request head did not arrive in time.");
	else
		answer(c, 431, "The request head is too large.");
}

/* ---- routed visitors: each read of theirs, and the end ----------------- */

static int on_visitor_data(void *inst, void *arg, struct mgrok_stream *st, const uint8_t *data,
                           size_t len)
{
	struct http_visitor *v = arg;
	const struct mgrok_host *h = host_of(v->vh);
	size_t off = 0;
	if (v->refused)
		return 1;
	while (!v->raw && off < len) {
		size_t used = 0, n;
		int rc = http_filter_feed(v->f, data + off, len - off, &used);
		off += used;
		const uint8_t *out = http_filter_output(v->f, &n);
		if (n) {
			h->stream_emit(st, out, n);
			http_filter_drain(v->f, n);
		}
		if (rc >= 400) {
			v->refused = rc; /* answered once the service's answers are out */
			return http_filter_cut(v->f) ? 2 : 1;
		}
		v->raw = rc == HTTP_FILTER_RAW;
		if (!used && !v->raw)
			break; /* cannot happen with MORE: all of it was taken */
	}
	if (v->raw && off < len)
		h->stream_emit(st, data + off, len - off);
	return 0;
}

static int on_peer_end(void *inst, void *arg, int fd, int code)
{
	struct http_visitor *v = arg;
	int status = v->refused ? v->refused : code == MGROK_RESET_CONNECT_FAILED ? 502 : 0;
	if (!status)
		return 0;
	char page[2048];
	size_t n = http_page(status,
	                     status == 502 ? "The tunnel's client could not reach its local "
	                                     "service."
	                                   : http_filter_reason(v->f),
	                     page, sizeof(page));
	vhost_last_word(fd, page, n);
	return 1;
}

static void on_visitor_end(void *inst, void *arg) { visitor_free(arg); }

/* ---- per-proxy options ------------------------------------------------- */

static bool header_value_ok(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 && *s != '\t')
			return false;
	return true;
}

static bool credential_ok(const json_t *v)
{
	const char *s = json_string_value(v);
	return s && strchr(s, ':') && s[0] != ':' && strlen(s) <= 256 && header_value_ok(s);
}

static int check_option(const char *key, const json_t *v, char *err, size_t errlen)
{
	if (!strcmp(key, "host_header")) {
		if (json_is_string(v) && json_string_length(v) && json_string_length(v) <= 253 &&
		    header_value_ok(json_string_value(v)))
			return 0;
		snprintf(err, errlen, "host_header: expected a host name (and :port)");
		return -1;
	}
	if (!strcmp(key, "forwarded")) {
		if (json_is_boolean(v))
			return 0;
		snprintf(err, errlen, "forwarded: expected true or false");
		return -1;
	}
	if (!strcmp(key, "basic_auth")) {
		size_t i, n = json_array_size(v);
		const json_t *e;
		bool ok = json_is_array(v) ? n > 0 && n <= BASIC_AUTH_MAX : credential_ok(v);
		json_array_foreach(v, i, e)
			ok = ok && credential_ok(e);
		if (ok)
			return 0;
		snprintf(err, errlen,
		         "basic_auth: expected \"user:password\" (or a file of such "
		         "lines, on the client)");
		return -1;
	}
	err[0] = '\0';
	return -1;
}

static char *dup_string(const struct mgrok_host *h, const char *s)
{
	char *d = h->alloc(strlen(s) + 1);
	strcpy(d, s);
	return d;
}

static void *proxy_new(const struct vhost *vh, const json_t *options)
{
	const struct mgrok_host *h = host_of(vh);
	struct http_proxy *hp = h->alloc(sizeof(*hp));
	memset(hp, 0, sizeof(*hp));
	const char *hh = json_string_value(json_object_get(options, "host_header"));
	hp->host_header = hh ? dup_string(h, hh) : NULL;
	const json_t *ba = json_object_get(options, "basic_auth");
	if (ba) {
		size_t n = json_is_array(ba) ? json_array_size(ba) : 1;
		hp->basic_auth = h->alloc((n + 1) * sizeof(char *));
		for (size_t i = 0; i < n; i++)
			hp->basic_auth[i] = dup_string(
			        h,
			        json_string_value(json_is_array(ba) ? json_array_get(ba, i) : ba));
		hp->basic_auth[n] = NULL;
	}
	const json_t *fw = json_object_get(options, "forwarded");
	hp->route.host_header = hp->host_header;
	hp->route.basic_auth = (const char *const *)hp->basic_auth;
	hp->route.forwarded = !fw || json_is_true(fw);
	return hp;
}

static void proxy_free(const struct vhost *vh, void *proto)
{
	const struct mgrok_host *h = host_of(vh);
	struct http_proxy *hp = proto;
	for (char **p = hp->basic_auth; p && *p; p++) {
		h->wipe(*p, strlen(*p));
		h->free(*p);
	}
	h->free(hp->basic_auth);
	h->free(hp->host_header);
	h->free(hp);
}

/* Client: "basic_auth" naming a file (a path: it starts with / or .) is
 * replaced by the user:password lines in it, so the server never reads
 * the client's files. */
static int client_options(void *inst, json_t *options, char *err, size_t errlen)
{
	const char *path = json_string_value(json_object_get(options, "basic_auth"));
	if (!path || (path[0] != '/' && path[0] != '.'))
		return 0;
	FILE *f = fopen(path, "r");
	if (!f) {
		snprintf(err, errlen, "basic_auth: cannot read %s", path);
		return -1;
	}
	json_t *list = json_array();
	char line[300];
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\r\n")] = '\0';
		if (line[0] && line[0] != '#')
			json_array_append_new(list, json_string(line));
	}
	fclose(f);
	json_object_set_new(options, "basic_auth", list);
	return 0;
}

static const struct vhost_proto proto = {
        .scheme = "http",
        .timeout_key = "request_timeout",
        .default_port = 80,
        .max_first_bytes = FIRST_BYTES_MAX,
        .on_bytes = on_bytes,
        .on_stuck = on_stuck,
        .conn_free = visitor_free,
        .check_option = check_option,
        .proxy_new = proxy_new,
        .proxy_free = proxy_free,
};

static int init(const struct mgrok_host *host, const struct mgrok_plugin *self, const json_t *conf,
                void **inst, char *err, size_t errlen)
{
	return vhost_init(&proto, host, self, conf, inst, err, errlen);
}

static const struct mgrok_proxy_ops ops = {
        VHOST_PROXY_OPS,
        .client_options = client_options,
        .on_visitor_data = on_visitor_data,
        .on_peer_end = on_peer_end,
        .on_visitor_end = on_visitor_end,
};

MGROK_PLUGIN_DEFINE(.kind = MGROK_PLUGIN_PROXY, .name = "http", .wire_id = 0x03, .init = init,
                    .fini = vhost_fini, .proxy = &ops)
