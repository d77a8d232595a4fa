/*
 * The small HTTP responses the "http" plugin answers with itself: a refused
 * request, no tunnel for the host, a local service that is down. No I/O.
 */
#ifndef MGROK_HTTP_PAGES_H
#define MGROK_HTTP_PAGES_H

#include <stddef.h>

/*
 * Writes to out a complete HTTP/1.1 response for status (100-599; anything
 * else is written as 500): text/html with Content-Length, Connection: close
 * and Cache-Control: no-store; 401 adds WWW-Authenticate: Basic
 * realm="mgrok". The body names the status, explains it in one line and,
 * when detail is neither NULL nor "", shows detail HTML-escaped (control
 * bytes as '?'). Returns the bytes written, at most cap, with no NUL added.
 * When the response does not fit, detail is cut (never inside an entity or
 * a UTF-8 sequence) so that what is written stays a whole response; 0 when
 * even the response without detail does not fit.
 */
size_t http_page(int status, const char *detail, char *out, size_t cap);

#endif
