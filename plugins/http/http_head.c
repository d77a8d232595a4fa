/*
 * A request head of the http filter (http_filter.h says what is checked and
 * why): gathered byte by byte with the checks on raw bytes that http_parser
 * does not make, then parsed by it, and its fields, request line, body
 * framing and host checked. Section numbers are RFC 9112's unless said.
 */
#define _POSIX_C_SOURCE 200809L /* inet_pton, inet_ntop */
#include "http_filter_impl.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

/* ---- gathering a head: the raw-byte checks ------------------------------- */

/* One byte of a head. Returns 0 for more, 1 when the head is complete, or
 * a refusal status. */
int http_head_byte(struct http_filter *f, uint8_t c)
{
	struct line_scan *s = &f->scan;
	/* CRLFs before the request line are dropped (9112 2.2). */
	bool leading = s->lines == 0 && s->line_len == 0 && (s->cr || c == '\r');
	if (f->head_len + f->skipped >= f->lim.max_head)
		return refuse(f, 431, "request head too large");
	if (leading)
		f->skipped++;
	else
		f->head[f->head_len++] = c;
	if (s->cr) {
		s->cr = false;
		if (c != '\n')
			return refuse(f, 400, "bare CR in the request head");
		if (leading)
			return 0;
		if (s->line_len == 0)
			return 1;
		s->lines++;
		s->line_len = 0;
		return s->lines - 1 > f->lim.max_headers ? refuse(f, 431, "too many header fields")
		                                         : 0;
	}
	if (c == '\r') {
		s->cr = true;
		return 0;
	}
	if (c == '\n')
		return refuse(f, 400, "bare LF in the request head");
	if (s->lines > 0 && s->line_len == 0 && is_ows(c))
		return refuse(f, 400, "obsolete line folding in the request head");
	if (is_ctl(c))
		return refuse(f, 400, "a control byte in the request head");
	s->line_len++;
	return 0;
}

void http_head_reset(struct http_filter *f)
{
	f->head_len = f->skipped = 0;
	memset(&f->scan, 0, sizeof(f->scan));
}

/* ---- http_parser's callbacks --------------------------------------------- */

static size_t head_offset(const struct http_filter *f, const char *at)
{
	return (size_t)((const uint8_t *)at - f->head);
}

static int on_url(http_parser *p, const char *at, size_t len)
{
	struct http_filter *f = p->data;
	if (f->url_len == 0)
		f->url = head_offset(f, at);
	f->url_len += len;
	return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
	struct http_filter *f = p->data;
	if (!f->parsing_head) /* a trailer field: it passes unread */
		return 0;
	if (!f->in_field) {
		if (f->nfields == f->fields_cap) {
			/* The raw scan already held the count to max_headers. */
			unsigned cap = f->fields_cap ? f->fields_cap * 2 : 16;
			struct field *b = realloc(f->fields, cap * sizeof(*b));
			if (!b) {
				f->oom = true;
				return -1;
			}
			f->fields = b;
			f->fields_cap = cap;
		}
		struct field *fl = &f->fields[f->nfields++];
		memset(fl, 0, sizeof(*fl));
		fl->name = fl->value = head_offset(f, at);
	}
	f->fields[f->nfields - 1].name_len += len;
	f->in_field = true;
	return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
	struct http_filter *f = p->data;
	if (!f->parsing_head || f->nfields == 0)
		return 0;
	struct field *fl = &f->fields[f->nfields - 1];
	if (f->in_field)
		fl->value = head_offset(f, at);
	fl->value_len += len;
	f->in_field = false;
	return 0;
}

static int on_headers_complete(http_parser *p)
{
	struct http_filter *f = p->data;
	f->headers_done = true;
	return 0;
}

static int on_message_complete(http_parser *p)
{
	struct http_filter *f = p->data;
	f->message_done = true;
	/* What follows is the next request, to be gathered as a head first. */
	http_parser_pause(p, 1);
	return 0;
}

const http_parser_settings http_head_callbacks = {
        .on_url = on_url,
        .on_header_field = on_header_field,
        .on_header_value = on_header_value,
        .on_headers_complete = on_headers_complete,
        .on_body = http_filter_on_body,
        .on_message_complete = on_message_complete,
};

/* ---- reading a head's fields ---------------------------------------------- */

static enum kind kind_of(const uint8_t *name, size_t len)
{
	static const struct {
		const char *name;
		enum kind kind;
	} known[] = {
	        {"host", KIND_HOST},
	        {"content-length", KIND_CONTENT_LENGTH},
	        {"transfer-encoding", KIND_TRANSFER_ENCODING},
	        {"authorization", KIND_AUTHORIZATION},
	        {"x-forwarded-for", KIND_XFF},
	        {"x-forwarded-proto", KIND_XFP},
	        {"x-forwarded-host", KIND_XFH},
	        {"forwarded", KIND_FORWARDED},
	};
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
		if (name_is(name, len, known[i].name, false))
			return known[i].kind;
		if (known[i].kind >= KIND_XFF && memchr(name, '_', len) &&
		    name_is(name, len, known[i].name, true))
			return KIND_XF_LOOKALIKE;
	}
	return KIND_OTHER;
}

/* Cuts trailing OWS (http_parser keeps it) and names each field. */
static void classify_fields(struct http_filter *f)
{
	for (unsigned i = 0; i < f->nfields; i++) {
		struct field *fl = &f->fields[i];
		while (fl->value_len && is_ows(f->head[fl->value + fl->value_len - 1]))
			fl->value_len--;
		fl->kind = kind_of(f->head + fl->name, fl->name_len);
	}
}

/* The only field of kind k, NULL if none; *count says how many there are. */
const struct field *http_head_field(const struct http_filter *f, enum kind k, unsigned *count)
{
	const struct field *found = NULL;
	*count = 0;
	for (unsigned i = 0; i < f->nfields; i++) {
		if (f->fields[i].kind == k) {
			found = found ? found : &f->fields[i];
			(*count)++;
		}
	}
	return found;
}

/* ---- checking a head ------------------------------------------------------- */

/* Transfer-Encoding: a list of codings of which chunked is the last, once
 * (9112 6.1, 6.3). */
static int check_transfer_encoding(struct http_filter *f, const struct field *te, bool parsed)
{
	const uint8_t *p = f->head + te->value, *end = p + te->value_len;
	unsigned chunked = 0;
	bool last_chunked = false;
	if (f->parser.http_minor == 0)
		return refuse(f, 400, "Transfer-Encoding in an HTTP/1.0 request");
	while (p <= end) {
		const uint8_t *comma = memchr(p, ',', (size_t)(end - p));
		const uint8_t *e = comma ? comma : end, *s = p;
		while (s < e && is_ows(*s))
			s++;
		while (e > s && is_ows(e[-1]))
			e--;
		if (s == e)
			return refuse(f, 400, "an empty Transfer-Encoding element");
		last_chunked = name_is(s, (size_t)(e - s), "chunked", false);
		chunked += last_chunked;
		p = (comma ? comma : end) + 1;
	}
	if (!last_chunked)
		return refuse(f, 501, "a transfer coding other than a final chunked");
	if (chunked > 1)
		return refuse(f, 400, "chunked applied more than once");
	if (parsed && !(f->parser.flags & F_CHUNKED))
		return refuse(f, 400, "Transfer-Encoding read two ways");
	return 0;
}

/* Body framing: Content-Length and Transfer-Encoding (9112 6.1-6.3). Runs
 * also after some http_parser errors, to say precisely what was wrong. */
static int check_framing_fields(struct http_filter *f, bool parsed)
{
	unsigned ncl, nte;
	const struct field *cl = http_head_field(f, KIND_CONTENT_LENGTH, &ncl);
	const struct field *te = http_head_field(f, KIND_TRANSFER_ENCODING, &nte);
	if (ncl > 1)
		return refuse(f, 400, "more than one Content-Length");
	if (nte > 1)
		return refuse(f, 400, "more than one Transfer-Encoding field");
	if (cl && te)
		return refuse(f, 400, "Content-Length with Transfer-Encoding");
	if (cl && parsed) { /* else http_parser refused it, maybe before its value */
		size_t n = cl->value_len;
		const uint8_t *v = f->head + cl->value;
		if (n == 0 || strspn((const char *)v, "0123456789") < n)
			return refuse(f, 400, "Content-Length is not a number");
	}
	return te ? check_transfer_encoding(f, te, parsed) : 0;
}

/* "METHOD SP request-target SP HTTP/1.x" exactly (9112 3); the lenient
 * parser lets more spaces and other versions through. */
static int check_request_line(struct http_filter *f)
{
	const char *method = http_method_str((enum http_method)f->parser.method);
	size_t mlen = strlen(method);
	const uint8_t *cr = memchr(f->head, '\r', f->head_len);
	size_t line = (size_t)(cr - f->head), url_end = f->url + f->url_len;
	if (f->url_len == 0 || f->url != mlen + 1 || f->head[mlen] != ' ' || line != url_end + 9 ||
	    f->head[url_end] != ' ' || memcmp(f->head + url_end + 1, "HTTP/", 5) != 0)
		return refuse(f, 400, "the request line is not METHOD SP target SP HTTP/1.x");
	if (f->parser.http_major != 1 || f->parser.http_minor > 1)
		return refuse(f, 505, "an HTTP version other than 1.0 and 1.1");
	return 0;
}

/* Field names are tokens (9112 5.1): the lenient parser takes spaces, and
 * "Transfer-Encoding :" would then be some other field to it. */
static int check_field_names(struct http_filter *f)
{
	for (unsigned i = 0; i < f->nfields; i++)
		if (!all_tchar(f->head + f->fields[i].name, f->fields[i].name_len))
			return refuse(f, 400, "a field name that is not a token");
	return 0;
}

/* An IP literal (RFC 3986 3.2.2) as inet_ntop writes it, so that every
 * spelling of an address is one host. http_parser takes any hex digits, dots,
 * colons and a zone there; a zone means nothing from afar. */
static bool ipv6_literal(char *host)
{
	struct in6_addr a;
	if (inet_pton(AF_INET6, host, &a) != 1)
		return false;
	return inet_ntop(AF_INET6, &a, host, INET6_ADDRSTRLEN) != NULL;
}

/* url names a host: sets req_host to it, lower-cased. */
static bool url_host(struct http_filter *f, const char *url, const struct http_parser_url *u)
{
	size_t off = u->field_data[UF_HOST].off, len = u->field_data[UF_HOST].len;
	if (!(u->field_set & (1 << UF_HOST)) || (u->field_set & (1 << UF_USERINFO)) || len == 0)
		return false;
	copy_lower(f->req_host, (const uint8_t *)url + off, len);
	return off == 0 || url[off - 1] != '[' ||
	       (len < INET6_ADDRSTRLEN && ipv6_literal(f->req_host));
}

/* The Host value as the authority of "http://VALUE/", so that http_parser's
 * URL grammar judges it: host or IP literal, optional port, nothing else. */
static bool host_value(struct http_filter *f, const struct field *host)
{
	struct http_parser_url u;
	size_t n = host->value_len;
	memcpy(f->scratch, "http://", 7);
	memcpy(f->scratch + 7, f->head + host->value, n);
	memcpy(f->scratch + 7 + n, "/", 2);
	http_parser_url_init(&u);
	if (n == 0 || http_parser_parse_url(f->scratch, n + 8, 0, &u) != 0)
		return false;
	if (u.field_set & ((1 << UF_QUERY) | (1 << UF_FRAGMENT)) ||
	    u.field_data[UF_PATH].off != n + 7 || u.field_data[UF_PATH].len != 1)
		return false;
	return url_host(f, f->scratch, &u);
}

/* An absolute-form target (9112 3.2.2): its authority wins over Host. */
static int target_host(struct http_filter *f)
{
	const char *url = (const char *)f->head + f->url;
	struct http_parser_url u;
	if (f->parser.method == HTTP_CONNECT || url[0] == '/' || url[0] == '*')
		return 0;
	http_parser_url_init(&u);
	if (http_parser_parse_url(url, f->url_len, 0, &u) != 0 || !(u.field_set & (1 << UF_SCHEMA)))
		return refuse(f, 400, "a request target that is no URL");
	const uint8_t *scheme = f->head + f->url + u.field_data[UF_SCHEMA].off;
	size_t slen = u.field_data[UF_SCHEMA].len;
	if (!name_is(scheme, slen, "http", false) && !name_is(scheme, slen, "https", false))
		return refuse(f, 400, "an absolute target whose scheme is not http or https");
	if (!url_host(f, url, &u))
		return refuse(f, 400, "an absolute target without a valid host");
	return 0;
}

/* Exactly one valid Host (9112 3.2), also in HTTP/1.0: it routes. */
static int request_host(struct http_filter *f)
{
	unsigned n;
	const struct field *host = http_head_field(f, KIND_HOST, &n);
	if (n == 0)
		return refuse(f, 400, "no Host field");
	if (n > 1)
		return refuse(f, 400, "more than one Host field");
	if (!host_value(f, host))
		return refuse(f, 400, "the Host field is not a valid host[:port]");
	return target_host(f);
}

static int parser_refusal(struct http_filter *f, enum http_errno e)
{
	if (f->oom)
		return refuse(f, 500, "out of memory");
	if (e == HPE_HEADER_OVERFLOW)
		return refuse(f, 431, "request head too large");
	/* Framing errors found at the end of the head: say which. */
	if (e == HPE_INVALID_TRANSFER_ENCODING || e == HPE_UNEXPECTED_CONTENT_LENGTH ||
	    e == HPE_INVALID_CONTENT_LENGTH) {
		classify_fields(f);
		int rc = check_framing_fields(f, false);
		if (rc)
			return rc;
	}
	return refuse(f, 400, http_errno_description(e));
}

/* The gathered head through http_parser, then the checks it does not do. */
int http_head_parse(struct http_filter *f)
{
	http_parser_init(&f->parser, HTTP_REQUEST);
	f->parser.data = f;
	f->nfields = 0;
	f->url = f->url_len = 0;
	f->in_field = f->headers_done = f->message_done = false;
	f->parsing_head = true;
	size_t n = http_parser_execute(&f->parser, &http_head_callbacks, (const char *)f->head,
	                               f->head_len);
	f->parsing_head = false;
	enum http_errno e = HTTP_PARSER_ERRNO(&f->parser);
	if (e != HPE_OK && e != HPE_PAUSED)
		return parser_refusal(f, e);
	if (!f->headers_done || n != f->head_len)
		return refuse(f, 400, "a request head http_parser did not end where it ends");
	classify_fields(f);
	int rc = check_request_line(f);
	if (!rc)
		rc = check_field_names(f);
	if (!rc)
		rc = check_framing_fields(f, true);
	return rc ? rc : request_host(f);
}
