#include "http_pages.h"

#include <http_parser.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* What a visitor reads under the status line. */
static const struct {
	int status;
	const char *why;
} explanations[] = {
        {400, "The request could not be understood."},
        {401, "This site needs a user name and a password."},
        {403, "This site may not be visited from here."},
        {404, "No tunnel serves this host name."},
        {408, "The request took too long to arrive."},
        {413, "The request is too large."},
        {421, "This connection serves another host name."},
        {429, "Too many requests: try again later."},
        {431, "The request's header fields are too large."},
        {500, "The tunnel server failed to handle the request."},
        {501, "The request uses something the tunnel does not support."},
        {502, "The local service behind the tunnel did not answer."},
        {503, "The tunnel for this host name is not available now."},
        {504, "The local service behind the tunnel took too long to answer."},
        {505, "This HTTP version is not supported."},
};

static const char *explanation(int status)
{
	for (size_t i = 0; i < sizeof(explanations) / sizeof(explanations[0]); i++)
		if (explanations[i].status == status)
			return explanations[i].why;
	return status >= 500 ? "The server could not complete the request."
	                     : "The request could not be completed.";
}

static const char *phrase(int status)
{
	const char *s = http_status_str((enum http_status)status);
	return strcmp(s, "<unknown>") == 0 ? "Error" : s;
}

/* Counts every byte, writes those that fit: a page is written only when its
 * count fits, so a partial write is never returned. */
struct writer {
	char *out;
	size_t cap, len;
};

static void put(struct writer *w, const char *s, size_t n)
{
	if (w->out && w->len <= w->cap && n <= w->cap - w->len)
		memcpy(w->out + w->len, s, n);
	w->len += n;
}

static void put_str(struct writer *w, const char *s) { put(w, s, strlen(s)); }

static void put_escaped(struct writer *w, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		switch (c) {
		case '&': put_str(w, "&amp;"); break;
		case '<': put_str(w, "&lt;"); break;
		case '>': put_str(w, "&gt;"); break;
		case '"': put_str(w, "&quot;"); break;
		case '\'': put_str(w, "&#39;"); break;
		default: put(w, c < 0x20 || c == 0x7f ? "?" : s + i, 1); break;
		}
	}
}

static void body(struct writer *w, int status, const char *detail, size_t dlen)
{
	char title[96];
	snprintf(title, sizeof(title), "%d %s", status, phrase(status));
	put_str(w, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>");
	put_str(w, title);
	put_str(w, "</title></head>\n<body><h1>");
	put_str(w, title);
	put_str(w, "</h1>\n<p>");
	put_str(w, explanation(status));
	put_str(w, "</p>\n");
	if (dlen) {
		put_str(w, "<p>");
		put_escaped(w, detail, dlen);
		put_str(w, "</p>\n");
	}
	put_str(w, "<hr><p>mgrok</p></body></html>\n");
}

/* The whole response with dlen bytes of detail; returns its length. */
static size_t page(int status, const char *detail, size_t dlen, char *out, size_t cap)
{
	struct writer count = {NULL, 0, 0}, w = {out, cap, 0};
	char head[256];
	body(&count, status, detail, dlen);
	snprintf(head, sizeof(head),
	         "HTTP/1.1 %d %s\r\n"
	         "Content-Type: text/html; charset=utf-8\r\n"
	         "Content-Length: %zu\r\n"
	         "Connection: close\r\n"
	         "Cache-Control: no-store\r\n"
	         "%s\r\n",
	         status, phrase(status), count.len,
	         status == 401 ? "WWW-Authenticate: Basic realm=\"mgrok\"\r\n" : "");
	put_str(&w, head);
	body(&w, status, detail, dlen);
	return w.len;
}

size_t http_page(int status, const char *detail, char *out, size_t cap)
{
	if (status < 100 || status > 599)
		status = 500;
	size_t dlen = detail ? strlen(detail) : 0;
	if (page(status, detail, dlen, NULL, 0) > cap) {
		/* The longest part of detail that fits (the page grows with
		 * it), cut before a UTF-8 sequence rather than inside it. */
		size_t lo = 0, hi = dlen;
		while (lo < hi) {
			size_t mid = lo + (hi - lo + 1) / 2;
			if (page(status, detail, mid, NULL, 0) <= cap)
				lo = mid;
			else
				hi = mid - 1;
		}
		dlen = lo;
		while (dlen > 0 && ((unsigned char)detail[dlen] & 0xC0) == 0x80)
			dlen--;
		if (page(status, detail, dlen, NULL, 0) > cap)
			return 0;
	}
	return page(status, detail, dlen, out, cap);
}
