/*
 * The http filter's object and its phases (http_filter.h): heads gathered
 * and checked (http_head.c) go out with the forwarding fields, bodies pass
 * with their chunked framing checked and, while short enough, held back
 * whole; then raw bytes after a protocol switch, or a refusal.
 */
#define _POSIX_C_SOURCE 200809L /* strdup */
#include "http_filter_impl.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_MAX_HEAD 16384
#define DEFAULT_MAX_HEADERS 100
#define NO_ERROR SIZE_MAX

/* ---- the output ------------------------------------------------------------ */

static void put(struct http_filter *f, const void *p, size_t n)
{
	if (f->oom || n == 0)
		return;
	size_t left = f->out_len - f->out_start;
	/* Drained bytes make room when there are at least as many as are left:
	 * then what moves costs no more than what was sent. Else it grows, so
	 * that a slow service with much left does not make each put move it. */
	if (n > f->out_cap - f->out_len && f->out_start > 0 && f->out_start >= left) {
		memmove(f->out, f->out + f->out_start, left);
		f->out_len = left;
		f->out_start = 0;
	}
	if (n > f->out_cap - f->out_len) {
		size_t cap = f->out_cap ? f->out_cap : 4096;
		while (cap - f->out_len < n)
			cap *= 2;
		uint8_t *b = realloc(f->out, cap);
		if (!b) {
			f->oom = true;
			return;
		}
		f->out = b;
		f->out_cap = cap;
	}
	memcpy(f->out + f->out_len, p, n);
	f->out_len += n;
	if (f->holding)
		f->held += n;
}

static void put_str(struct http_filter *f, const char *s) { put(f, s, strlen(s)); }

/* ---- emitting a head ------------------------------------------------------- */

/* A field line as received, CRLF included. */
static void put_line(struct http_filter *f, const struct field *fl)
{
	const uint8_t *cr = memchr(f->head + fl->name, '\r', f->head_len - fl->name);
	put(f, f->head + fl->name, (size_t)(cr - f->head) - fl->name + 2);
}

static void put_field(struct http_filter *f, const char *name, const void *value, size_t n)
{
	put_str(f, name);
	put(f, ": ", 2);
	put(f, value, n);
	put(f, "\r\n", 2);
}

/* The values of every field of kind k, joined as one list (RFC 9110 5.3). */
static void put_values(struct http_filter *f, enum kind k)
{
	bool any = false;
	for (unsigned i = 0; i < f->nfields; i++) {
		const struct field *fl = &f->fields[i];
		if (fl->kind != k || fl->value_len == 0)
			continue;
		if (any)
			put(f, ", ", 2);
		put(f, f->head + fl->value, fl->value_len);
		any = true;
	}
	if (any)
		put(f, ", ", 2);
}

/* A Forwarded value (RFC 7239 4): a token as is, anything else quoted. */
static void put_forwarded_value(struct http_filter *f, const uint8_t *v, size_t n, bool brackets)
{
	if (!brackets && all_tchar(v, n)) {
		put(f, v, n);
		return;
	}
	put_str(f, brackets ? "\"[" : "\"");
	for (size_t i = 0; i < n; i++) {
		if (v[i] == '"' || v[i] == '\\')
			put(f, "\\", 1);
		put(f, v + i, 1);
	}
	put_str(f, brackets ? "]\"" : "\"");
}

static void put_forwarded(struct http_filter *f, const struct field *host)
{
	const uint8_t *ip = (const uint8_t *)f->client_ip;
	put_str(f, "Forwarded: ");
	put_values(f, KIND_FORWARDED);
	put_str(f, "for=");
	put_forwarded_value(f, ip, strlen(f->client_ip), strchr(f->client_ip, ':') != NULL);
	put_str(f, ";host=");
	put_forwarded_value(f, f->head + host->value, host->value_len, false);
	put_str(f, ";proto=");
	put_str(f, f->proto);
	put(f, "\r\n", 2);
}

/* Our version of a forwarding field: in place of the first one received, or
 * after the others when none was. */
static void put_forwarding(struct http_filter *f, enum kind k, const struct field *host)
{
	switch (k) {
	case KIND_XFF:
		put_str(f, "X-Forwarded-For: ");
		put_values(f, KIND_XFF);
		put_str(f, f->client_ip);
		put(f, "\r\n", 2);
		break;
	case KIND_XFP: put_field(f, "X-Forwarded-Proto", f->proto, strlen(f->proto)); break;
	case KIND_XFH:
		put_field(f, "X-Forwarded-Host", f->head + host->value, host->value_len);
		break;
	case KIND_FORWARDED: put_forwarded(f, host); break;
	default: break;
	}
}

static bool emit_head(struct http_filter *f)
{
	unsigned nhost;
	const struct field *host = http_head_field(f, KIND_HOST, &nhost);
	const uint8_t *cr = memchr(f->head, '\r', f->head_len);
	bool done[KIND_COUNT] = {false};
	put(f, f->head, (size_t)(cr - f->head) + 2);
	for (unsigned i = 0; i < f->nfields; i++) {
		const struct field *fl = &f->fields[i];
		bool first = !done[fl->kind];
		done[fl->kind] = true;
		if (fl->kind == KIND_HOST && f->host_header)
			put_field(f, "Host", f->host_header, strlen(f->host_header));
		else if (!f->forwarded || fl->kind < KIND_XFF)
			put_line(f, fl);
		else if (first)
			put_forwarding(f, fl->kind, host);
	}
	for (enum kind k = KIND_XFF; f->forwarded && k <= KIND_FORWARDED; k++)
		if (!done[k])
			put_forwarding(f, k, host);
	put(f, "\r\n", 2);
	return !f->oom;
}

/* ---- a chunked body's framing --------------------------------------------- */

/* Framing bytes of a chunked body (size lines, the CRLF after data,
 * trailers) must be CRLF-delimited text, and the first one after chunk data
 * must begin the CRLF that ends it (9112 7.1). */
static void check_framing(struct http_filter *f, size_t from, size_t to)
{
	struct line_scan *s = &f->framing;
	for (size_t i = from; i < to && f->framing_error == NO_ERROR; i++) {
		uint8_t c = f->feed[i];
		bool ok;
		if (s->cr)
			ok = c == '\n';
		else if (f->after_data)
			ok = c == '\r';
		else
			ok = c == '\r' || !is_ctl(c);
		s->cr = !s->cr && c == '\r';
		f->after_data = false;
		if (!ok)
			f->framing_error = i;
	}
}

int http_filter_on_body(http_parser *p, const char *at, size_t len)
{
	struct http_filter *f = p->data;
	if (!f->chunked || !f->feed)
		return 0;
	size_t start = (size_t)((const uint8_t *)at - f->feed);
	check_framing(f, f->feed_checked, start);
	f->feed_checked = start + len;
	f->after_data = true;
	return 0;
}

/* ---- the phases ---------------------------------------------------------- */

/* A request is complete: the next one's head, or raw bytes after a switch.
 * http_parser flags Upgrade in HTTP/1.0 too, which a server must ignore
 * (RFC 9110 7.8): going raw there would pass the next requests unchecked. */
static int message_end(struct http_filter *f)
{
	f->holding = false;
	f->held = 0;
	bool upgrade = f->parser.upgrade && f->parser.http_minor == 1;
	if (upgrade || f->parser.method == HTTP_CONNECT) {
		f->phase = PHASE_RAW;
		return HTTP_FILTER_RAW;
	}
	f->phase = PHASE_HEAD;
	return HTTP_FILTER_MORE;
}

/* Every request names the route's host or the first request's, and carries
 * credentials when the route asks for them. */
static int check_route(struct http_filter *f)
{
	if (strcmp(f->req_host, f->bound) != 0 && strcmp(f->req_host, f->host) != 0)
		return refuse(f, 421, "a request for another host than the connection's");
	return f->auth ? http_auth_check(f) : 0;
}

/* A checked, routed head: its own checks against the route, then out. */
static int release_head(struct http_filter *f)
{
	int rc = check_route(f);
	if (rc)
		return rc;
	f->holding = (f->parser.flags & F_CHUNKED) != 0;
	f->held = 0;
	if (!emit_head(f))
		return refuse(f, 500, "out of memory");
	http_head_reset(f);
	if (f->message_done)
		return message_end(f);
	f->phase = PHASE_BODY;
	f->chunked = (f->parser.flags & F_CHUNKED) != 0;
	f->after_data = false;
	memset(&f->framing, 0, sizeof(f->framing));
	return HTTP_FILTER_MORE;
}

static int feed_head(struct http_filter *f, const uint8_t *in, size_t len, size_t *took)
{
	int rc = 0;
	size_t i = 0;
	while (i < len && rc == 0)
		rc = http_head_byte(f, in[i++]);
	*took = i;
	if (rc != 1)
		return rc;
	rc = http_head_parse(f);
	if (rc)
		return rc;
	if (f->routed)
		return release_head(f);
	if (!(f->host = strdup(f->req_host)))
		return refuse(f, 500, "out of memory");
	f->phase = PHASE_ROUTE;
	return HTTP_FILTER_ROUTE;
}

/* A body was refused: the request vanishes from the output if it was held
 * back whole, else it was cut (the caller must abort the stream). */
static void take_back(struct http_filter *f)
{
	if (f->holding) {
		f->out_len -= f->held;
		f->held = 0;
		f->holding = false;
		return;
	}
	f->cut = true;
}

static int feed_body(struct http_filter *f, const uint8_t *in, size_t len, size_t *took)
{
	f->feed = in;
	f->feed_checked = 0;
	f->framing_error = NO_ERROR;
	f->message_done = false;
	size_t n = http_parser_execute(&f->parser, &http_head_callbacks, (const char *)in, len);
	enum http_errno e = HTTP_PARSER_ERRNO(&f->parser);
	if (f->chunked)
		check_framing(f, f->feed_checked, n);
	f->feed = NULL;
	/* What was good before a bad byte goes out (see http_filter_feed). */
	size_t good = f->framing_error < n ? f->framing_error : n;
	put(f, in, good);
	*took = good;
	if (f->oom)
		return refuse(f, 500, "out of memory");
	if (f->framing_error != NO_ERROR || (e != HPE_OK && e != HPE_PAUSED)) {
		take_back(f);
		return refuse(f, 400,
		              f->framing_error != NO_ERROR ? "chunked framing not delimited by CRLF"
		                                           : http_errno_description(e));
	}
	if (f->holding && f->held > HTTP_FILTER_HOLD_MAX) {
		f->holding = false; /* too long to hold: it streams from here */
		f->held = 0;
	}
	return f->message_done ? message_end(f) : HTTP_FILTER_MORE;
}

int http_filter_feed(struct http_filter *f, const uint8_t *in, size_t len, size_t *used)
{
	int rc = HTTP_FILTER_MORE;
	size_t pos = 0, took;
	*used = 0;
	switch (f->phase) {
	case PHASE_REFUSED: return f->status;
	case PHASE_RAW:
		put(f, in, len);
		if (f->oom)
			return refuse(f, 500, "out of memory");
		*used = len;
		return HTTP_FILTER_RAW;
	case PHASE_ROUTE:
		if (!f->routed)
			return HTTP_FILTER_ROUTE;
		rc = release_head(f);
		break;
	default: break;
	}
	while (rc == HTTP_FILTER_MORE && pos < len) {
		if (f->phase == PHASE_HEAD)
			rc = feed_head(f, in + pos, len - pos, &took);
		else
			rc = feed_body(f, in + pos, len - pos, &took);
		pos += took;
	}
	*used = pos;
	return rc;
}

/* ---- the route ------------------------------------------------------------ */

/* A field value we may write: no CR, LF or other CTL (9110 5.5). */
static bool field_value_ok(const char *v)
{
	for (const uint8_t *p = (const uint8_t *)v; *p; p++)
		if (is_ctl(*p))
			return false;
	return true;
}

void http_filter_route(struct http_filter *f, const struct http_route *r)
{
	if (f->phase != PHASE_ROUTE || f->routed)
		return;
	f->routed = true;
	f->forwarded = r->forwarded;
	const char *bound = r->host ? r->host : f->host;
	size_t n = strlen(bound);
	if (!(f->bound = malloc(n + 1))) {
		refuse(f, 500, "out of memory");
		return;
	}
	copy_lower(f->bound, (const uint8_t *)bound, n);
	if (r->host_header && !field_value_ok(r->host_header)) {
		refuse(f, 500, "the route's Host value is no valid field value");
		return;
	}
	if (r->host_header && !(f->host_header = strdup(r->host_header))) {
		refuse(f, 500, "out of memory");
		return;
	}
	if (r->basic_auth && !http_auth_set(f, r->basic_auth))
		refuse(f, 500, "out of memory");
}

/* ---- the object ------------------------------------------------------------ */

/* Only what an address or a scheme is made of: these go into fields. */
static bool text_ok(const char *s, const char *extra)
{
	size_t n = strlen(s);
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= 'A' && s[i] <= 'Z') || strchr(extra, s[i])))
			return false;
	return n > 0 && n < 64;
}

struct http_filter *http_filter_new(const struct http_filter_limits *lim, const char *client_ip,
                                    const char *proto)
{
	client_ip = client_ip ? client_ip : "unknown";
	proto = proto ? proto : "http";
	if (!text_ok(client_ip, ".:%_-") || !text_ok(proto, "+-."))
		return NULL;
	struct http_filter *f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	f->lim.max_head = lim && lim->max_head ? lim->max_head : DEFAULT_MAX_HEAD;
	f->lim.max_headers = lim && lim->max_headers ? lim->max_headers : DEFAULT_MAX_HEADERS;
	f->client_ip = strdup(client_ip);
	f->proto = strdup(proto);
	f->head = malloc(f->lim.max_head);
	/* A host is a part of the head, or an address inet_ntop() writes. */
	f->req_host = malloc(f->lim.max_head + INET6_ADDRSTRLEN);
	f->scratch = malloc(f->lim.max_head + 16);
	f->reason[0] = '\0';
	if (!f->client_ip || !f->proto || !f->head || !f->req_host || !f->scratch) {
		http_filter_free(f);
		return NULL;
	}
	return f;
}

void http_filter_free(struct http_filter *f)
{
	if (!f)
		return;
	http_auth_wipe(f);
	free(f->accepted);
	free(f->client_ip);
	free(f->proto);
	free(f->head);
	free(f->fields);
	free(f->req_host);
	free(f->scratch);
	free(f->host);
	free(f->bound);
	free(f->host_header);
	free(f->out);
	free(f);
}

const char *http_filter_host(const struct http_filter *f) { return f->host; }

const char *http_filter_reason(const struct http_filter *f) { return f->reason; }

bool http_filter_cut(const struct http_filter *f) { return f->cut; }

const uint8_t *http_filter_output(const struct http_filter *f, size_t *len)
{
	*len = f->out_len - f->out_start - f->held;
	return f->out ? f->out + f->out_start : (const uint8_t *)"";
}

void http_filter_drain(struct http_filter *f, size_t n)
{
	size_t have = f->out_len - f->out_start - f->held;
	f->out_start += n < have ? n : have;
	if (f->out_start == f->out_len)
		f->out_start = f->out_len = 0;
}

bool http_filter_idle(const struct http_filter *f)
{
	return f->phase == PHASE_HEAD && f->head_len == 0 && !f->scan.cr;
}
