/*
 * The insides of the http plugin's filter (http_filter.h): its state and
 * what its files share. Only those files include this:
 *  - http_head.c: a request head, gathered byte by byte with the raw-byte
 *    checks, then parsed by http_parser and checked for what the lenient
 *    parser lets through (fields, Host, body framing);
 *  - http_auth.c: HTTP Basic credentials, kept and compared as SHA-256
 *    digests;
 *  - http_filter.c: the object, its phases and output, bodies (the chunked
 *    framing checks and the hold-back), and the heads as they go out with
 *    the forwarding fields.
 */
#ifndef MGROK_HTTP_FILTER_IMPL_H
#define MGROK_HTTP_FILTER_IMPL_H

#include "http_filter.h"

#include <http_parser.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define DIGEST_LEN 32 /* SHA-256 */

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

/* Every refusal goes through here: the filter answers status from then on. */
static inline int refuse(struct http_filter *f, int status, const char *reason)
{
	f->phase = PHASE_REFUSED;
	f->status = status;
	snprintf(f->reason, sizeof(f->reason), "%s", reason);
	return status;
}

/* ---- bytes and text ------------------------------------------------------- */

/* tchar (RFC 9110 5.6.2). */
static inline bool is_tchar(uint8_t c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

static inline bool all_tchar(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!is_tchar(p[i]))
			return false;
	return n > 0;
}

/* A byte that may not stand in a head or a framing line: CTLs but HTAB. */
static inline bool is_ctl(uint8_t c) { return (c < 0x20 && c != '\t') || c == 0x7f; }

static inline bool is_ows(uint8_t c) { return c == ' ' || c == '\t'; }

static inline char *copy_lower(char *dst, const uint8_t *src, size_t n)
{
	for (size_t i = 0; i < n; i++)
		dst[i] = (char)(src[i] >= 'A' && src[i] <= 'Z' ? src[i] + 32 : src[i]);
	dst[n] = '\0';
	return dst;
}

static inline bool name_is(const uint8_t *name, size_t len, const char *want, bool underscores)
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

/* ---- http_head.c ----------------------------------------------------------- */

/* http_parser's callbacks for a whole request: one parser reads its head
 * (http_head_parse) and then goes on through its body (http_filter.c), whose
 * chunked framing http_filter_on_body checks. */
extern const http_parser_settings http_head_callbacks;

/* One byte of a head. Returns 0 for more, 1 when the head is complete, or
 * a refusal status. */
int http_head_byte(struct http_filter *f, uint8_t c);
/* Ready to gather the next head. */
void http_head_reset(struct http_filter *f);
/* The gathered head through http_parser, then the checks it does not do;
 * sets the fields and req_host. Returns 0 or a refusal status. */
int http_head_parse(struct http_filter *f);
/* The only field of kind k, NULL if none; *count says how many there are. */
const struct field *http_head_field(const struct http_filter *f, enum kind k, unsigned *count);

/* ---- http_auth.c ----------------------------------------------------------- */

/* Keeps the digests of a NULL-terminated list of "user:password"; false
 * when out of memory or digests fail. */
bool http_auth_set(struct http_filter *f, const char *const *list);
/* The head's Basic credentials against those kept: 0 or a refusal status. */
int http_auth_check(struct http_filter *f);
/* Wipes what credentials went through (the digests, the scratch buffer they
 * are decoded in) before the filter frees it. */
void http_auth_wipe(struct http_filter *f);

/* ---- http_filter.c --------------------------------------------------------- */

/* http_parser's on_body: checks the chunked framing around the data. */
int http_filter_on_body(http_parser *p, const char *at, size_t len);

#endif
