#define _POSIX_C_SOURCE 200809L /* strdup */
#include "http_filter.h"

#include <arpa/inet.h>
#include <http_parser.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_MAX_HEAD 16384
#define DEFAULT_MAX_HEADERS 100
#define DIGEST_LEN 32 /* SHA-256 */
#define NO_ERROR SIZE_MAX

enum phase {
	PHASE_HEAD,  /* gathering a request head */
	PHASE_ROUTE, /* the first head is complete: waiting for http_filter_route() */
	PHASE_BODY,  /* a request's body is passing */
	PHASE_RAW,   /* after a protocol switch: bytes pass as they are */
	PHASE_REFUSED,
};

/* The fields this filter reads or rewrites. */
enum kind {
	KIND_OTHER,
	KIND_HOST,
	KIND_CONTENT_LENGTH,
	KIND_TRANSFER_ENCODING,
	KIND_AUTHORIZATION,
	KIND_XFF,
	KIND_XFP,
	KIND_XFH,
	KIND_FORWARDED,
	/* X_Forwarded_For and the like: CGI-style services read them as the
	 * real thing, so they are dropped where the real ones are set. */
	KIND_XF_LOOKALIKE,
	KIND_COUNT
};

/* A field line of the head being parsed: offsets into head[]. */
struct field {
	size_t name, name_len, value, value_len; /* value_len: trailing OWS cut */
	enum kind kind;
};

/* The state of a scan of CRLF-delimited lines (a head, chunked framing). */
struct line_scan {
	size_t line_len; /* bytes of the current line before its CR */
	unsigned lines;  /* complete lines so far */
	bool cr;         /* the last byte was a CR */
};

struct http_filter {
	struct http_filter_limits lim;
	char *client_ip, *proto;
	enum phase phase;
	int status; /* of the refusal */
	char reason[80];

	/* The head being gathered: head_len bytes of max_head, and the empty
	 * lines skipped before it (counted against max_head too). */
	uint8_t *head;
	size_t head_len, skipped;
	struct line_scan scan;

	/* The head's parse; the parser then goes on through the body. */
	http_parser parser;
	struct field *fields;
	unsigned nfields, fields_cap;
	size_t url, url_len;
	bool parsing_head, in_field, headers_done, message_done, oom;
	char *req_host; /* this request's host, as http_filter_host() has it */
	char *scratch;  /* max_head + 16 bytes for Host parsing and credentials */

	/* Chunked framing, checked between the data http_parser hands over. */
	bool chunked, after_data;
	struct line_scan framing;
	const uint8_t *feed;  /* the bytes of the http_parser_execute() under way */
	size_t feed_checked;  /* framing checked up to here in feed[] */
	size_t framing_error; /* offset in feed[] of a bad framing byte, or NO_ERROR */

	char *host;  /* of the first head */
	char *bound; /* the route's host */
	char *host_header;
	uint8_t (*accepted)[DIGEST_LEN];
	size_t naccepted;
	bool auth, forwarded, routed;

	uint8_t *out; /* the output is out[out_start..out_len - held) */
	size_t out_start, out_len, out_cap;
	/* A chunked request is held back (the last held bytes of out) until it
	 * is complete or HOLD_MAX: a bad chunk then takes it all back, and the
	 * service never sees a request that is refused. */
	bool holding;
	size_t held;
	bool cut; /* refused after part of the request went out */
};

static int on_url(http_parser *p, const char *at, size_t len);
static int on_header_field(http_parser *p, const char *at, size_t len);
static int on_header_value(http_parser *p, const char *at, size_t len);
static int on_headers_complete(http_parser *p);
static int on_body(http_parser *p, const char *at, size_t len);
static int on_message_complete(http_parser *p);

static const http_parser_settings parser_settings = {
        .on_url = on_url,
        .on_header_field = on_header_field,
        .on_header_value = on_header_value,
        .on_headers_complete = on_headers_complete,
        .on_body = on_body,
        .on_message_complete = on_message_complete,
};

static int refuse(struct http_filter *f, int status, const char *reason)
{
	f->phase = PHASE_REFUSED;
	f->status = status;
	snprintf(f->reason, sizeof(f->reason), "%s", reason);
	return status;
}

/* ---- bytes and text ------------------------------------------------------- */

/* tchar (RFC 9110 5.6.2). */
static bool is_tchar(uint8_t c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

static bool all_tchar(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!is_tchar(p[i]))
			return false;
	return n > 0;
}

/* A byte that may not stand in a head or a framing line: CTLs but HTAB. */
static bool is_ctl(uint8_t c) { return (c < 0x20 && c != '\t') || c == 0x7f; }

static bool is_ows(uint8_t c) { return c == ' ' || c == '\t'; }

static char *copy_lower(char *dst, const uint8_t *src, size_t n)
{
	for (size_t i = 0; i < n; i++)
		dst[i] = (char)(src[i] >= 'A' && src[i] <= 'Z' ? src[i] + 32 : src[i]);
	dst[n] = '\0';
	return dst;
}

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

/* ---- gathering a head: the raw-byte checks ------------------------------- */

/* One byte of a head. Returns 0 for more, 1 when the head is complete, or
 * a refusal status. */
static int head_byte(struct http_filter *f, uint8_t c)
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

static void head_reset(struct http_filter *f)
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

static int on_body(http_parser *p, const char *at, size_t len)
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

static int on_message_complete(http_parser *p)
{
	struct http_filter *f = p->data;
	f->message_done = true;
	/* What follows is the next request, to be gathered as a head first. */
	http_parser_pause(p, 1);
	return 0;
}

/* ---- reading a head's fields ---------------------------------------------- */

static bool name_is(const uint8_t *name, size_t len, const char *want, bool underscores)
{
	if (len != strlen(want))
		return false;
	for (size_t i = 0; i < len; i++) {
		uint8_t c = name[i] == '_' && underscores ? '-' : name[i];
		if ((c >= 'A' && c <= 'Z' ? c + 32 : c) != (uint8_t)want[i])
			return false;
	}
	return true;
}

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
static const struct field *field_of(const struct http_filter *f, enum kind k, unsigned *count)
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
	const struct field *cl = field_of(f, KIND_CONTENT_LENGTH, &ncl);
	const struct field *te = field_of(f, KIND_TRANSFER_ENCODING, &nte);
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
	const struct field *host = field_of(f, KIND_HOST, &n);
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
static int parse_head(struct http_filter *f)
{
	http_parser_init(&f->parser, HTTP_REQUEST);
	f->parser.data = f;
	f->nfields = 0;
	f->url = f->url_len = 0;
	f->in_field = f->headers_done = f->message_done = false;
	f->parsing_head = true;
	size_t n = http_parser_execute(&f->parser, &parser_settings, (const char *)f->head,
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

/* ---- the route's checks: host and credentials ---------------------------- */

/* A strict base64 (RFC 4648 4: padded, no whitespace, canonical); returns
 * the length decoded into out, or -1. */
static long base64_decode(const uint8_t *in, size_t n, uint8_t *out)
{
	static const char alphabet[] =
	        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t len = 0;
	if (n == 0 || n % 4)
		return -1;
	for (size_t i = 0; i < n; i += 4) {
		uint32_t v = 0;
		int pad = 0;
		for (size_t j = 0; j < 4; j++) {
			const char *c = in[i + j] ? strchr(alphabet, in[i + j]) : NULL;
			bool padding = in[i + j] == '=' && i + 4 == n && j >= 2;
			if ((!c && !padding) || (c && pad))
				return -1;
			pad += padding;
			v = v << 6 | (c ? (uint32_t)(c - alphabet) : 0);
		}
		if ((pad == 1 && (v & 0xff)) || (pad == 2 && (v & 0xffff)))
			return -1; /* bits past the data: not canonical */
		uint8_t bytes[3] = {(uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
		memcpy(out + len, bytes, (size_t)(3 - pad));
		len += (size_t)(3 - pad);
	}
	return (long)len;
}

static bool sha256(const void *p, size_t n, uint8_t digest[DIGEST_LEN])
{
	unsigned int len = 0;
	return EVP_Digest(p, n, digest, &len, EVP_sha256(), NULL) == 1 && len == DIGEST_LEN;
}

/* Compares digests, so that the time taken tells nothing of where or how
 * long a wrong guess matched. */
static bool credentials_accepted(struct http_filter *f, const uint8_t *b64, size_t n)
{
	uint8_t *plain = (uint8_t *)f->scratch, digest[DIGEST_LEN];
	long len = base64_decode(b64, n, plain);
	if (len < 0)
		return false;
	bool hashed = sha256(plain, (size_t)len, digest);
	OPENSSL_cleanse(plain, (size_t)len);
	unsigned match = 0;
	for (size_t i = 0; hashed && i < f->naccepted; i++)
		match |= CRYPTO_memcmp(digest, f->accepted[i], DIGEST_LEN) == 0;
	OPENSSL_cleanse(digest, sizeof(digest));
	return match != 0;
}

/* "Authorization: Basic base64(user:password)" (RFC 7617 2). */
static int check_basic_auth(struct http_filter *f)
{
	unsigned n;
	const struct field *auth = field_of(f, KIND_AUTHORIZATION, &n);
	if (n > 1)
		return refuse(f, 400, "more than one Authorization field");
	if (!auth)
		return refuse(f, 401, "no credentials");
	const uint8_t *v = f->head + auth->value;
	size_t len = auth->value_len, i = 5;
	if (len <= i || !name_is(v, i, "basic", false) || v[i] != ' ')
		return refuse(f, 401, "credentials other than Basic");
	while (i < len && v[i] == ' ')
		i++;
	if (!credentials_accepted(f, v + i, len - i))
		return refuse(f, 401, "wrong credentials");
	return 0;
}

static int check_route(struct http_filter *f)
{
	if (strcmp(f->req_host, f->bound) != 0 && strcmp(f->req_host, f->host) != 0)
		return refuse(f, 421, "a request for another host than the connection's");
	return f->auth ? check_basic_auth(f) : 0;
}

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
	const struct field *host = field_of(f, KIND_HOST, &nhost);
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
	head_reset(f);
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
		rc = head_byte(f, in[i++]);
	*took = i;
	if (rc != 1)
		return rc;
	rc = parse_head(f);
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
	size_t n = http_parser_execute(&f->parser, &parser_settings, (const char *)in, len);
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

static bool route_credentials(struct http_filter *f, const char *const *list)
{
	size_t n = 0;
	while (list[n])
		n++;
	f->auth = true;
	f->accepted = calloc(n ? n : 1, DIGEST_LEN);
	if (!f->accepted)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!sha256(list[i], strlen(list[i]), f->accepted[i]))
			return false;
	f->naccepted = n;
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
	if (r->basic_auth && !route_credentials(f, r->basic_auth))
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
	if (f->accepted)
		OPENSSL_cleanse(f->accepted, f->naccepted * DIGEST_LEN);
	if (f->scratch)
		OPENSSL_cleanse(f->scratch, f->lim.max_head + 16);
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
