/*
 * The visitor-to-service direction of one HTTP/1.x connection of the "http"
 * plugin (virtual hosts), as a filter without I/O: the visitor's bytes in,
 * the bytes for the local service out (appended to a buffer the filter
 * owns), and verdicts for the plugin: route the connection by the first
 * request's host, switch to raw bytes, or refuse a request with an HTTP
 * status. Responses never pass here.
 *
 * Every request head is gathered whole and checked before a byte of it goes
 * out, so that the filter and the service cannot read the stream two ways
 * (request smuggling). Section numbers are RFC 9112's unless said:
 *  - the head is CRLF-delimited text (2.2): no bare CR or LF, no control
 *    bytes but HTAB, no obsolete line folding (5.2); at most max_head bytes
 *    and max_headers field lines (431); the request line is exactly
 *    "METHOD SP target SP HTTP/1.x" (3) and field names are tokens with no
 *    space before the colon (5.1). Empty lines before a request line are
 *    dropped (2.2).
 *  - body framing is unambiguous (6.1-6.3): at most one Content-Length, all
 *    digits; at most one Transfer-Encoding field, not with Content-Length,
 *    not in HTTP/1.0, chunked once and last (501 when the last coding is not
 *    chunked, 400 for the rest); chunked framing lines end in CRLF and chunk
 *    data is followed by CRLF (7.1). Debian's libhttp_parser is built
 *    without HTTP_PARSER_STRICT and lets all of these through, hence the
 *    checks here.
 *  - exactly one Host, a valid host[:port] (3.2); an absolute-form target's
 *    authority names the host instead (3.2.2); every later request on the
 *    connection names the routed host (421, RFC 9110 15.5.20).
 *  - optionally, HTTP Basic credentials on every request (401).
 *
 * The filter needs http_parser (libhttp-parser 2.9) and OpenSSL's libcrypto
 * (SHA-256, to compare credentials in constant time).
 */
#ifndef MGROK_HTTP_FILTER_H
#define MGROK_HTTP_FILTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct http_filter; /* opaque */

/* 0 in either field: its default. */
struct http_filter_limits {
	size_t max_head;      /* bytes of a request head, CRLF CRLF included; default 16384 */
	unsigned max_headers; /* field lines in a request head; default 100 */
};

/*
 * client_ip: the visitor's address as text ("192.0.2.1" or "2001:db8::1",
 * no port; NULL: "unknown"); proto: the scheme the visitor used ("http";
 * NULL: "http"). Both are copied. NULL when out of memory, or when
 * client_ip or proto holds a byte that has no place in a header.
 */
struct http_filter *http_filter_new(const struct http_filter_limits *lim, const char *client_ip,
                                    const char *proto);
void http_filter_free(struct http_filter *f);

/* What the tunnel asks of each request, set once the first head is routed. */
struct http_route {
	const char *host;        /* the name the connection is bound to (lower-case, no port) */
	const char *host_header; /* NULL, or the value that replaces Host towards the service */
	const char *const
	        *basic_auth; /* NULL, or a NULL-terminated list of "user:password" accepted */
	/* Adds X-Forwarded-For (appended to an existing one), X-Forwarded-Proto,
	 * X-Forwarded-Host (replaced: the Host value as received) and Forwarded
	 * (RFC 7239, appended to an existing one). */
	bool forwarded;
};

/*
 * Answers HTTP_FILTER_ROUTE: copies what it needs from r (the accepted
 * credentials only as SHA-256 digests). Ignored at any other time. Later
 * requests must name r->host or the host of the first request (else 421).
 * Nothing is emitted here: the next http_filter_feed() does it, so call it
 * even when no more bytes have come (len 0). A host_header that is no valid
 * field value, or no memory, makes that feed refuse with 500.
 */
void http_filter_route(struct http_filter *f, const struct http_route *r);

enum { HTTP_FILTER_MORE = 0, HTTP_FILTER_ROUTE = 1, HTTP_FILTER_RAW = 2 };

/*
 * Feeds len bytes; *used is set to the bytes taken (the caller keeps the
 * rest and feeds them again later). What goes to the service is appended to
 * the output (http_filter_output, http_filter_drain). Returns:
 *
 * HTTP_FILTER_MORE: all taken; every complete request in them went out (a
 *   pipeline is handled in one call).
 * HTTP_FILTER_ROUTE: the first request head is complete and checked;
 *   *used stops right after it and the output is still empty. Look up
 *   http_filter_host(), call http_filter_route(), then feed the rest (even
 *   none). Until then every feed answers ROUTE again and takes nothing.
 * HTTP_FILTER_RAW: the request just emitted switches protocols (http_parser's
 *   upgrade flag: "Upgrade" with "Connection: upgrade" in HTTP/1.1 (RFC 9110
 *   7.8: not in 1.0, nor without the Connection option), or CONNECT); the
 *   request, its body included, is in the output, and *used stops right after
 *   it: the bytes after it in this call are NOT taken. From then on every
 *   feed takes all its bytes into the output unchanged and answers RAW, so
 *   the caller may relay raw instead. (The filter cannot see whether the
 *   service accepted the switch: a service that answers the Upgrade with a
 *   non-101 and keeps reading HTTP would get unchecked requests. The plugin
 *   should close the connection after a non-101 response to such a request.)
 * a status >= 400: this request is refused; the requests before it are in
 *   the output whole, and nothing of its head. 400: malformed, or framed
 *   ambiguously (smuggling); 401: Basic credentials missing or wrong; 421:
 *   another host than the routed one; 431: head too large or too many field
 *   lines; 501: a Transfer-Encoding whose last coding is not chunked; 505:
 *   not HTTP/1.0 or 1.1; 500: out of memory or a bad route. An error in a
 *   chunked body (a bad chunk size, chunk data not followed by CRLF) takes
 *   the request back from the output when it was held back whole (see
 *   http_filter_cut); past that, the service has part of it and must be
 *   aborted. http_filter_reason() says why in a few words of ASCII. From then
 *   on every feed answers the same status and takes nothing.
 *
 * The output holds what has not been drained: each call adds at most len
 * bytes plus, per head it emits, the fields it adds or rewrites (at most
 * twice the Host value, client_ip and proto, host_header and some 120
 * bytes). Apart from it the filter holds about 3 * max_head bytes and the
 * field table of one head.
 */
int http_filter_feed(struct http_filter *f, const uint8_t *in, size_t len, size_t *used);

/* The first request's host: the Host value, or the authority of an
 * absolute-form target (which then wins), lower-cased, port stripped, an
 * IPv6 literal without its brackets and as inet_ntop() writes it (one
 * without a valid address, or with a zone, is refused). NULL before
 * HTTP_FILTER_ROUTE. */
const char *http_filter_host(const struct http_filter *f);
/*
 * After a refusal: whether part of the refused request went out. A chunked
 * request is held back until it is complete, up to HTTP_FILTER_HOLD_MAX
 * bytes, so a bad chunk in it takes the whole request back; only a longer
 * one, bad past that, is cut: the caller must then abort the service's
 * connection (never close it cleanly), or the service may take the part
 * for a whole request.
 */
#define HTTP_FILTER_HOLD_MAX (64u * 1024)
bool http_filter_cut(const struct http_filter *f);
/* Why the filter refused, "" if it has not. */
const char *http_filter_reason(const struct http_filter *f);
/* The bytes for the service not yet drained; valid until the next call on f. */
const uint8_t *http_filter_output(const struct http_filter *f, size_t *len);
/* The caller sent n bytes of the output (more than there are: all). */
void http_filter_drain(struct http_filter *f, size_t n);
/* Between requests: no part of a head or body taken (for idle timeouts; a
 * protocol switch or refusal is never idle). */
bool http_filter_idle(const struct http_filter *f);

#endif
