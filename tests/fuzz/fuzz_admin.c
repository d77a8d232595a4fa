/*
 * Fuzz target: the admin endpoint's requests (core/admin_request.c) and
 * paths (core/admin_api.c), driven through mgrok_admin_parse as admin.c
 * does, without sockets or a loop.
 *
 * Input: a set-up byte, a split seed, then the client's bytes. The set-up
 * byte's bits 0-1 choose the token: none, "fuzz-admin-token", "t", or one
 * of ADMIN_TOKEN_MAX bytes ('k' * 1024); bit 2 leaves out the kick op (as
 * mgrok, the client, does). Fake ops answer: metrics a fixed exposition,
 * sessions {"sessions": [{"id": 1, ...}, {"id": 7, ...}]}, kick 200 with a
 * reply for ids 1 and 7 and 404 otherwise. The bytes are appended to c.in
 * in the seed's chunks (fuzz_split); after each chunk mgrok_admin_parse
 * runs, and while it answers, the answer is checked and taken out of c.out
 * and it runs again, until it answers nothing or the connection closes.
 * Asserted beyond the sanitizers:
 *  - one call, at most one answer: c.out holds exactly one HTTP/1.1
 *    response: a status line with a known status and its reason, header
 *    lines "Name: value" with no bare CR or LF, one Content-Type, one
 *    Content-Length equal to the bytes after the head, and nothing more.
 *    The body is the exposition (text/plain, 200, GET /metrics), or JSON:
 *    a non-200 is {"error": "text"}, a 200 is what the op gave (the
 *    sessions, the one session the path names, the kick's reply).
 *    "Connection: close" is there iff c.closing is set after the call; 401
 *    carries WWW-Authenticate, 405 Allow, and nothing else does; 413, 414
 *    and 431 close.
 *  - c.in only loses bytes from its front, never changes what is left,
 *    and is emptied by a call that answers nothing (which never closes).
 *  - with a token, no op runs and no 200 goes out unless the request
 *    carried an Authorization field "Bearer <token>" (scheme in any case,
 *    blanks around the value dropped), as a fresh http-parser with
 *    callbacks of this file's own reads the bytes taken since the last
 *    answer, in one piece. The same reading gives the method and target
 *    the ops are checked against, and says whether the connection stays:
 *    closing iff http-parser says no keep-alive or it is an upgrade (or a
 *    limit was hit), and "Connection: keep-alive" iff HTTP/1.0 and not
 *    closing. A token in a chunked request's trailers does not count
 *    (RFC 9110 6.5.1): the core reads credentials from the head only.
 *  - each op at most once per call, and only on its own request: metrics
 *    for GET /metrics, sessions for GET /api/v1/sessions[/ID], kick for
 *    DELETE /api/v1/sessions/ID with that ID, ban 0 without a query and
 *    otherwise from 1 to 31536000 with a query "ban=...".
 *  - once closing, nothing more is parsed: another call, even with the
 *    rest of the input added to c.in, takes nothing, answers nothing and
 *    runs no op.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "admin_impl.h"
#include "buf.h"
#include "fuzz.h"

#define BAN_MAX 31536000.0

static const char EXPOSITION[] = "# HELP fuzz_up Always 1.\n# TYPE fuzz_up gauge\nfuzz_up 1\n";

/* What the ops were asked during one mgrok_admin_parse. */
struct fake {
	int metrics, sessions, kicks;
	uint32_t kick_id;
	double kick_ban;
};

static void fake_metrics(void *arg, struct mgrok_buf *out)
{
	struct fake *f = arg;
	f->metrics++;
	mgrok_buf_append(out, EXPOSITION, sizeof(EXPOSITION) - 1);
}

static json_t *session_json(json_int_t id)
{
	return json_pack("{sIsssssf}", "id", id, "identity", id == 1 ? "alice" : "bob", "state",
	                 "open", "connected_at", 1796224811.0);
}

static json_t *sessions_json(void)
{
	return json_pack("{s[oo]}", "sessions", session_json(1), session_json(7));
}

static json_t *fake_sessions(void *arg)
{
	struct fake *f = arg;
	f->sessions++;
	return sessions_json();
}

static json_t *kick_reply(uint32_t id, double ban)
{
	return json_pack("{sIsssI}", "id", (json_int_t)id, "client_id",
	                 "9f2c41d0a7b3e6110c5d2e8a4b7f9a13", "banned_seconds", (json_int_t)ban);
}

static int fake_kick(void *arg, uint32_t id, double ban, json_t **reply, char *msg, size_t len)
{
	struct fake *f = arg;
	f->kicks++;
	f->kick_id = id;
	f->kick_ban = ban;
	if (id != 1 && id != 7) {
		snprintf(msg, len, "no session %u", id);
		return 404;
	}
	*reply = kick_reply(id, ban);
	return 200;
}

static const struct mgrok_admin_ops server_ops = {fake_metrics, fake_sessions, fake_kick};
static const struct mgrok_admin_ops client_ops = {fake_metrics, fake_sessions, NULL};

/* ---- the request, as a parser of this file's own reads it ----------------------- */

/*
 * The bytes taken since the last answer through a fresh http-parser with
 * callbacks of this file's own (in one piece, where the core got them in
 * the seed's chunks), pausing where the request ends as the core's does:
 * what the request carried, independent of the core's gathering.
 */
struct request {
	bool complete; /* the parser reached the request's end */
	const char *method;
	char url[ADMIN_URL_MAX + 2];
	size_t url_len;
	/* The field being read; and whether an Authorization field in the
	 * head, or in the trailers, was "Bearer <token>". */
	char name[16], value[7 + ADMIN_TOKEN_MAX + 64];
	size_t name_len, value_len;
	bool in_value, in_trailers, token_in_head;
	const char *token;
	/* At its end: the version, and what http-parser says of the connection. */
	int http_major, http_minor;
	bool keep_alive, upgrade;
};

static bool span_is(const uint8_t *p, size_t len, const char *s)
{
	return p && len == strlen(s) && memcmp(p, s, len) == 0;
}

static void append(char *buf, size_t cap, size_t *len, const char *at, size_t n)
{
	if (*len < cap)
		memcpy(buf + *len, at, n < cap - *len ? n : cap - *len);
	*len += n; /* past cap: too long to matter */
}

/* The field read so far is complete. */
static void field_done(struct request *q)
{
	if (q->in_value && q->token && q->name_len == 13 &&
	    strncasecmp(q->name, "authorization", 13) == 0 && q->value_len <= sizeof(q->value)) {
		/* Blanks around the value are not part of it (obs-fold pieces
		 * come with theirs). */
		const char *v = q->value;
		size_t len = q->value_len, n = strlen(q->token);
		while (len && (*v == ' ' || *v == '\t'))
			v++, len--;
		while (len && (v[len - 1] == ' ' || v[len - 1] == '\t'))
			len--;
		if (len == 7 + n && strncasecmp(v, "Bearer ", 7) == 0 &&
		    memcmp(v + 7, q->token, n) == 0)
			q->token_in_head |= !q->in_trailers; /* trailers do not count */
	}
	q->name_len = q->value_len = 0;
	q->in_value = false;
}

static int q_url(http_parser *p, const char *at, size_t n)
{
	struct request *q = p->data;
	append(q->url, sizeof(q->url) - 1, &q->url_len, at, n);
	return 0;
}

static int q_field(http_parser *p, const char *at, size_t n)
{
	struct request *q = p->data;
	if (q->in_value)
		field_done(q);
	append(q->name, sizeof(q->name), &q->name_len, at, n);
	return 0;
}

static int q_value(http_parser *p, const char *at, size_t n)
{
	struct request *q = p->data;
	q->in_value = true;
	append(q->value, sizeof(q->value), &q->value_len, at, n);
	return 0;
}

static int q_headers_complete(http_parser *p)
{
	struct request *q = p->data;
	field_done(q);
	q->in_trailers = true;
	return 0;
}

static int q_message_complete(http_parser *p)
{
	struct request *q = p->data;
	field_done(q);
	q->complete = true;
	http_parser_pause(p, 1);
	return 0;
}

static const http_parser_settings request_callbacks = {
        .on_url = q_url,
        .on_header_field = q_field,
        .on_header_value = q_value,
        .on_headers_complete = q_headers_complete,
        .on_message_complete = q_message_complete,
};

static void read_request(const uint8_t *p, size_t len, const char *token, struct request *q)
{
	http_parser parser;
	memset(q, 0, sizeof(*q));
	q->token = token;
	http_parser_init(&parser, HTTP_REQUEST);
	parser.data = q;
	size_t used = http_parser_execute(&parser, &request_callbacks, (const char *)p, len);
	if (q->complete)
		FUZZ_ASSERT(used == len, "the request ends %zu bytes before what the core took",
		            len - used);
	q->method = http_method_str((enum http_method)parser.method);
	q->http_major = parser.http_major;
	q->http_minor = parser.http_minor;
	q->keep_alive = q->complete && http_should_keep_alive(&parser);
	q->upgrade = q->complete && parser.upgrade;
	q->url[q->url_len < sizeof(q->url) - 1 ? q->url_len : sizeof(q->url) - 1] = '\0';
}

/* Whether the request carried the token (in its head: trailers do not count). */
static bool carries_token(const struct request *q) { return q->token_in_head; }

/* The target's path (before '?') and its query (after it, or NULL). */
static void split_target(const struct request *q, char *path, size_t pathlen, const char **query)
{
	snprintf(path, pathlen, "%s", q->url);
	char *mark = strchr(path, '?');
	*query = mark ? q->url + (mark - path) + 1 : NULL;
	if (mark)
		*mark = '\0';
}

/* ---- the answer --------------------------------------------------------------- */

static const char *reason(int status)
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
	default: return NULL;
	}
}

struct answer {
	int status;
	bool close, keep_alive, www_auth, allow, json;
	const uint8_t *body;
	size_t body_len;
};

static bool is_tchar(uint8_t ch)
{
	return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	       (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

/* c.out: exactly one well-formed response. */
static void read_answer(const uint8_t *p, size_t len, struct answer *a)
{
	memset(a, 0, sizeof(*a));
	FUZZ_ASSERT(len >= 17 && memcmp(p, "HTTP/1.1 ", 9) == 0, "status line of %zu bytes", len);
	FUZZ_ASSERT(p[9] >= '1' && p[9] <= '5' && p[10] >= '0' && p[10] <= '9' && p[11] >= '0' &&
	                    p[11] <= '9' && p[12] == ' ',
	            "status '%.4s'", (const char *)p + 9);
	a->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
	const char *why = reason(a->status);
	FUZZ_ASSERT(why != NULL, "unknown status %d", a->status);
	size_t i = 13, n = strlen(why);
	FUZZ_ASSERT(len - i >= n + 2 && memcmp(p + i, why, n) == 0 && p[i + n] == '\r' &&
	                    p[i + n + 1] == '\n',
	            "status %d without its reason '%s'", a->status, why);
	i += n + 2;
	int types = 0, lengths = 0, connections = 0;
	size_t content_length = 0;
	for (;;) {
		const uint8_t *cr = memchr(p + i, '\r', len - i);
		FUZZ_ASSERT(cr != NULL && cr + 1 < p + len && cr[1] == '\n',
		            "a header line at %zu without CRLF", i);
		const uint8_t *line = p + i;
		size_t ll = (size_t)(cr - line);
		FUZZ_ASSERT(memchr(line, '\n', ll) == NULL, "bare LF in a header line at %zu", i);
		i += ll + 2;
		if (!ll)
			break;
		size_t k = 0;
		while (k < ll && is_tchar(line[k]))
			k++;
		FUZZ_ASSERT(k > 0 && k + 2 <= ll && line[k] == ':' && line[k + 1] == ' ',
		            "header line '%.*s'", (int)ll, (const char *)line);
		const char *name = (const char *)line, *value = (const char *)line + k + 2;
		size_t vl = ll - k - 2;
		if (k == 12 && strncasecmp(name, "Content-Type", k) == 0) {
			types++;
			if (vl == 16 && memcmp(value, "application/json", 16) == 0)
				a->json = true;
			else
				FUZZ_ASSERT(span_is((const uint8_t *)value, vl,
				                    "text/plain; version=0.0.4; charset=utf-8"),
				            "Content-Type '%.*s'", (int)vl, value);
		} else if (k == 14 && strncasecmp(name, "Content-Length", k) == 0) {
			lengths++;
			FUZZ_ASSERT(vl > 0 && vl < 10 && (vl == 1 || value[0] != '0'),
			            "Content-Length '%.*s'", (int)vl, value);
			for (size_t j = 0; j < vl; j++) {
				FUZZ_ASSERT(value[j] >= '0' && value[j] <= '9',
				            "Content-Length '%.*s'", (int)vl, value);
				content_length = content_length * 10 + (size_t)(value[j] - '0');
			}
		} else if (k == 10 && strncasecmp(name, "Connection", k) == 0) {
			connections++;
			a->close = span_is((const uint8_t *)value, vl, "close");
			a->keep_alive = span_is((const uint8_t *)value, vl, "keep-alive");
			FUZZ_ASSERT(a->close || a->keep_alive, "Connection '%.*s'", (int)vl, value);
		} else if (k == 16 && strncasecmp(name, "WWW-Authenticate", k) == 0) {
			a->www_auth = true;
		} else if (k == 5 && strncasecmp(name, "Allow", k) == 0) {
			a->allow = true;
		}
	}
	FUZZ_ASSERT(types == 1 && lengths == 1 && connections <= 1,
	            "%d Content-Type, %d Content-Length, %d Connection", types, lengths,
	            connections);
	a->body = p + i;
	a->body_len = len - i;
	FUZZ_ASSERT(a->body_len == content_length,
	            "Content-Length %zu, %zu bytes after the head (status %d)", content_length,
	            a->body_len, a->status);
	FUZZ_ASSERT(a->www_auth == (a->status == 401), "status %d, WWW-Authenticate %d", a->status,
	            a->www_auth);
	FUZZ_ASSERT(a->allow == (a->status == 405), "status %d, Allow %d", a->status, a->allow);
}

/* ---- one connection ------------------------------------------------------------- */

struct run {
	struct admin_conn c;
	struct fake fake;
	const char *token;
	const uint8_t *stream; /* every byte given to c.in, in order */
	size_t fed;            /* how many so far */
	size_t req_start;      /* where the request being read started */
};

static size_t taken(const struct run *r) { return r->fed - r->c.in.len; }

/* What the answer's JSON must be, for a 200 and for an error. */
static void check_json(const struct run *r, const struct answer *a, const struct request *q,
                       const char *path)
{
	json_error_t err;
	json_t *body = json_loadb((const char *)a->body, a->body_len, 0, &err);
	FUZZ_ASSERT(body != NULL, "status %d, body not JSON: %s", a->status, err.text);
	FUZZ_ASSERT(a->body_len && a->body[a->body_len - 1] == '\n', "no final newline");
	if (a->status != 200) {
		FUZZ_ASSERT(json_is_object(body) && json_object_size(body) == 1 &&
		                    json_is_string(json_object_get(body, "error")),
		            "status %d, body not {\"error\": text}", a->status);
		json_decref(body);
		return;
	}
	json_t *want = NULL;
	if (r->fake.kicks) {
		FUZZ_ASSERT(strcmp(q->method, "DELETE") == 0, "a kick's 200 for %s", q->method);
		want = kick_reply(r->fake.kick_id, r->fake.kick_ban);
	} else if (r->fake.sessions && strcmp(path, "/api/v1/sessions") == 0) {
		want = sessions_json();
	} else if (r->fake.sessions) {
		for (uint32_t id = 1; id <= 7 && !want; id += 6) {
			char one[32];
			snprintf(one, sizeof(one), "/api/v1/sessions/%u", id);
			if (strcmp(path, one) == 0)
				want = session_json(id);
		}
	}
	FUZZ_ASSERT(want != NULL, "a JSON 200 for %s with sessions %d, kicks %d", path,
	            r->fake.sessions, r->fake.kicks);
	FUZZ_ASSERT(json_equal(body, want), "a 200 for %s: not what the op gave", path);
	json_decref(want);
	json_decref(body);
}

/* What the ops were asked in the call, against the request. */
static void check_ops(const struct run *r, const struct request *q, const char *path,
                      const char *query)
{
	const struct fake *f = &r->fake;
	FUZZ_ASSERT(f->metrics + f->sessions + f->kicks <= 1, "metrics %d, sessions %d, kicks %d",
	            f->metrics, f->sessions, f->kicks);
	if (!f->metrics && !f->sessions && !f->kicks)
		return;
	FUZZ_ASSERT(q->complete, "an op ran before the request's end");
	FUZZ_ASSERT(!r->token || carries_token(q), "an op ran without the token");
	if (f->metrics)
		FUZZ_ASSERT(strcmp(q->method, "GET") == 0 && strcmp(path, "/metrics") == 0,
		            "metrics for %s %s", q->method, path);
	if (f->sessions)
		FUZZ_ASSERT(strcmp(q->method, "GET") == 0 &&
		                    strncmp(path, "/api/v1/sessions", 16) == 0,
		            "sessions for %s %s", q->method, path);
	if (!f->kicks)
		return;
	char want[64];
	snprintf(want, sizeof(want), "/api/v1/sessions/%u", f->kick_id);
	FUZZ_ASSERT(r->c.ops->kick != NULL && strcmp(q->method, "DELETE") == 0 &&
	                    strcmp(path, want) == 0,
	            "kick of %u for %s %s", f->kick_id, q->method, path);
	bool banned = f->kick_ban != 0;
	FUZZ_ASSERT(!banned || (f->kick_ban >= 1 && f->kick_ban <= BAN_MAX), "kick with ban %.17g",
	            f->kick_ban);
	FUZZ_ASSERT(banned ? query && strncmp(query, "ban=", 4) == 0 : !query || !*query,
	            "kick with ban %.17g for query '%s'", f->kick_ban, query ? query : "(none)");
}

/* The answer a call queued, against the request and the ops. */
static void check_answer(struct run *r)
{
	struct admin_conn *c = &r->c;
	struct answer a;
	struct request q;
	char path[ADMIN_URL_MAX + 2];
	const char *query;
	read_answer(mgrok_buf_head(&c->out), c->out.len, &a);
	read_request(r->stream + r->req_start, taken(r) - r->req_start, r->token, &q);
	split_target(&q, path, sizeof(path), &query);
	FUZZ_ASSERT(a.close == c->closing, "status %d: Connection: close %d, closing %d", a.status,
	            a.close, c->closing);
	bool limit = a.status == 413 || a.status == 414 || a.status == 431;
	FUZZ_ASSERT(!limit || c->closing, "status %d, not closing", a.status);
	if (q.complete && !limit)
		FUZZ_ASSERT(c->closing == (q.upgrade || !q.keep_alive),
		            "status %d, closing %d: upgrade %d, keep-alive %d", a.status,
		            c->closing, q.upgrade, q.keep_alive);
	bool old = q.complete && q.http_major == 1 && q.http_minor == 0;
	FUZZ_ASSERT(a.keep_alive == (old && !c->closing),
	            "Connection: keep-alive %d for HTTP/%d.%d, closing %d", a.keep_alive,
	            q.http_major, q.http_minor, c->closing);
	check_ops(r, &q, path, query);
	if (a.status == 200)
		FUZZ_ASSERT(!r->token || carries_token(&q), "a 200 without the token");
	if (!a.json) {
		FUZZ_ASSERT(a.status == 200 && r->fake.metrics == 1,
		            "text/plain: status %d, metrics %d", a.status, r->fake.metrics);
		FUZZ_ASSERT(span_is(a.body, a.body_len, EXPOSITION), "not the exposition");
		return;
	}
	FUZZ_ASSERT(!r->fake.metrics, "metrics asked, a JSON answer");
	check_json(r, &a, &q, path);
}

/* One mgrok_admin_parse and what must hold after it. Returns whether it
 * answered. */
static bool parse_once(struct run *r)
{
	struct admin_conn *c = &r->c;
	size_t before = c->in.len;
	bool closing = c->closing;
	memset(&r->fake, 0, sizeof(r->fake));
	FUZZ_ASSERT(c->out.len == 0, "parse with an answer queued");
	mgrok_admin_parse(c);
	FUZZ_ASSERT(c->in.len <= before, "c.in grew from %zu to %zu", before, c->in.len);
	FUZZ_ASSERT(c->in.len == 0 ||
	                    memcmp(mgrok_buf_head(&c->in), r->stream + taken(r), c->in.len) == 0,
	            "what is left in c.in changed");
	if (closing) {
		FUZZ_ASSERT(c->in.len == before && c->out.len == 0 && c->closing &&
		                    !r->fake.metrics && !r->fake.sessions && !r->fake.kicks,
		            "closing, yet %zu of %zu bytes taken, %zu answered, ops %d %d %d",
		            before - c->in.len, before, c->out.len, r->fake.metrics,
		            r->fake.sessions, r->fake.kicks);
		return false;
	}
	if (!c->out.len) {
		FUZZ_ASSERT(c->in.len == 0 && !c->closing,
		            "no answer, yet %zu bytes left, closing %d", c->in.len, c->closing);
		FUZZ_ASSERT(!r->fake.metrics && !r->fake.sessions && !r->fake.kicks,
		            "ops %d %d %d asked, no answer", r->fake.metrics, r->fake.sessions,
		            r->fake.kicks);
		return false;
	}
	check_answer(r);
	mgrok_buf_consume(&c->out, c->out.len);
	r->req_start = taken(r);
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char long_token[ADMIN_TOKEN_MAX + 1];
	if (!long_token[0])
		memset(long_token, 'k', ADMIN_TOKEN_MAX);
	const char *const tokens[] = {NULL, "fuzz-admin-token", "t", long_token};
	struct fuzz_in in = {data, size};
	uint8_t setup = fuzz_u8(&in);
	struct fuzz_split split;
	fuzz_split_init(&split, fuzz_u8(&in));

	struct run *r = calloc(1, sizeof(*r));
	FUZZ_ASSERT(r != NULL, "out of memory");
	struct admin_conn *c = &r->c;
	r->token = tokens[setup & 3];
	r->stream = in.p;
	http_parser_init(&c->parser, HTTP_REQUEST);
	c->parser.data = c;
	c->ops = setup & 4 ? &client_ops : &server_ops;
	c->arg = &r->fake;
	c->token = r->token;

	while (fuzz_more(&in) && !c->closing) {
		size_t n;
		const uint8_t *p = fuzz_take(&in, fuzz_split_next(&split, in.len), &n);
		mgrok_buf_append(&c->in, p, n);
		r->fed += n;
		while (parse_once(r) && !c->closing && c->in.len)
			;
	}
	if (c->closing) {
		/* The rest of the input too: none of it may be parsed. */
		size_t n;
		const uint8_t *p = fuzz_take(&in, in.len, &n);
		mgrok_buf_append(&c->in, p, n);
		r->fed += n;
		parse_once(r);
	}
	mgrok_buf_free(&c->in);
	mgrok_buf_free(&c->out);
	free(r);
	return 0;
}
