/*
 * Unit tests for plugins/http/http_filter.c, the visitor-to-service filter
 * of the http plugin, and plugins/http/http_pages.c, its error pages. Heads
 * are routed and emitted (RFC 7239 and X-Forwarded-* added, Host replaced),
 * bodies pass byte-exact, pipelines and keep-alive are followed, and every
 * smuggling shape the header lists is refused with its status. Every feed
 * reads an exactly sized heap copy of its bytes, so that a read past len
 * shows under ASan; streams are fed whole, one byte at a time and split at
 * every boundary, and must give the same output.
 */
#include <check.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_filter.h"
#include "http_pages.h"

/* A literal's bytes and length, NULs inside included. */
#define B(s) (const uint8_t *)(s), sizeof(s) - 1
#define HOST "Host: example.com\r\n"
#define GET "GET / HTTP/1.1\r\n" HOST "\r\n"
#define POST_ "POST / HTTP/1.1\r\n" HOST
#define FWD_HEADERS(ip, fwd_ip, host)                                                              \
	"X-Forwarded-For: " ip "\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: " host            \
	"\r\nForwarded: for=" fwd_ip ";host=" host ";proto=http\r\n"
#define IP "192.0.2.1"

/* ---- helpers -------------------------------------------------------------- */

static const struct http_route plain = {"example.com", NULL, NULL, false};
static const struct http_route fwd = {"example.com", NULL, NULL, true};

struct run {
	struct http_filter *f;
	int rc;     /* the last verdict */
	int routes; /* ROUTE verdicts */
	uint8_t *out;
	size_t out_len;
};

/* One feed of in[0..len) from an exact-size heap copy; the output is
 * drained into r->out. Returns *used. */
static size_t feed(struct run *r, const uint8_t *in, size_t len)
{
	uint8_t *b = malloc(len ? len : 1);
	size_t used = 12345, n;
	ck_assert_ptr_nonnull(b);
	if (len)
		memcpy(b, in, len);
	r->rc = http_filter_feed(r->f, len ? b : b + 1, len, &used);
	free(b);
	ck_assert_msg(used <= len, "used %zu of %zu", used, len);
	if (r->rc == HTTP_FILTER_MORE)
		ck_assert_msg(used == len, "MORE with %zu of %zu bytes used", used, len);
	const uint8_t *o = http_filter_output(r->f, &n);
	r->out = realloc(r->out, r->out_len + n + 1);
	memcpy(r->out + r->out_len, o, n);
	r->out_len += n;
	r->out[r->out_len] = '\0';
	http_filter_drain(r->f, n);
	return used;
}

/*
 * Feeds in[0..len) as it would arrive: first bytes (0: a step), then step
 * bytes at a time (0: all the rest); what a call leaves is fed again with
 * the next bytes. Routes with route at ROUTE (which must come before any
 * output), relays on after RAW, stops at a refusal.
 */
static struct run run_arrivals(const struct http_route *route, const char *ip,
                               const struct http_filter_limits *lim, const uint8_t *in, size_t len,
                               size_t first, size_t step)
{
	struct run r = {http_filter_new(lim, ip, "http"), 0, 0, NULL, 0};
	size_t pos = 0, avail = 0;
	ck_assert_ptr_nonnull(r.f);
	for (;;) {
		if (avail == 0 && first)
			avail = first < len ? first : len;
		else
			avail = step == 0 || len - avail < step ? len : avail + step;
		pos += feed(&r, in + pos, avail - pos);
		if (r.rc == HTTP_FILTER_ROUTE) {
			ck_assert_msg(r.routes++ == 0 && r.out_len == 0, "ROUTE after output");
			ck_assert_ptr_nonnull(http_filter_host(r.f));
			http_filter_route(r.f, route);
			continue;
		}
		if (r.rc >= 400 || pos == len)
			break;
	}
	return r;
}

static struct run run_lim(const struct http_route *route, const char *ip,
                          const struct http_filter_limits *lim, const uint8_t *in, size_t len,
                          size_t step)
{
	return run_arrivals(route, ip, lim, in, len, 0, step);
}

static struct run run(const struct http_route *route, const uint8_t *in, size_t len, size_t step)
{
	return run_lim(route, IP, NULL, in, len, step);
}

static void run_free(struct run *r)
{
	http_filter_free(r->f);
	free(r->out);
}

/* in, fed whole, gives rc and exactly out[0..out_len). */
static void expect_n(const struct http_route *route, const uint8_t *in, size_t len, int rc,
                     const uint8_t *out, size_t out_len)
{
	struct run r = run(route, in, len, 0);
	ck_assert_msg(r.rc == rc, "rc %d, wanted %d (%s)", r.rc, rc, http_filter_reason(r.f));
	ck_assert_msg(r.out_len == out_len && memcmp(r.out, out, out_len) == 0,
	              "output\n%s\nwanted\n%s", (const char *)r.out, (const char *)out);
	run_free(&r);
}

/* out: a literal, NULs inside included. */
#define expect(route, in, rc, out) expect_n(route, in, rc, B(out))

/* Whole, one byte at a time and split in two at every boundary: the same
 * verdict and output. */
static void same_any_split(const struct http_route *route, const uint8_t *in, size_t len)
{
	struct run whole = run(route, in, len, 0);
	for (size_t k = 0; k < len; k++) {
		/* k == 0: one byte at a time */
		struct run r = run_arrivals(route, IP, NULL, in, len, k, k ? 0 : 1);
		ck_assert_msg(r.rc == whole.rc, "split at %zu: rc %d, whole %d", k, r.rc, whole.rc);
		ck_assert_msg(r.out_len == whole.out_len &&
		                      memcmp(r.out, whole.out, whole.out_len) == 0,
		              "split at %zu:\n%s\nwhole:\n%s", k, r.out, whole.out);
		run_free(&r);
	}
	run_free(&whole);
}

/* ---- routing and emitting ------------------------------------------------ */

START_TEST(get_routed_then_forwarded)
{
	struct http_filter *f = http_filter_new(NULL, IP, "http");
	size_t used, n;
	ck_assert_int_eq(http_filter_feed(f, B(GET "GET /b"), &used), HTTP_FILTER_ROUTE);
	ck_assert_uint_eq(used, sizeof(GET) - 1);
	ck_assert_str_eq(http_filter_host(f), "example.com");
	http_filter_output(f, &n);
	ck_assert_uint_eq(n, 0);
	ck_assert(!http_filter_idle(f));
	http_filter_route(f, &fwd);
	ck_assert_int_eq(http_filter_feed(f, NULL, 0, &used), HTTP_FILTER_MORE);
	const uint8_t *o = http_filter_output(f, &n);
	const char *want = "GET / HTTP/1.1\r\n" HOST FWD_HEADERS(IP, IP, "example.com") "\r\n";
	ck_assert_uint_eq(n, strlen(want));
	ck_assert_mem_eq(o, want, n);
	ck_assert(http_filter_idle(f));
	http_filter_free(f);
}
END_TEST

START_TEST(route_waits_for_the_caller)
{
	struct http_filter *f = http_filter_new(NULL, IP, "http");
	size_t used, n;
	ck_assert_ptr_null(http_filter_host(f));
	ck_assert(http_filter_idle(f));
	ck_assert_int_eq(http_filter_feed(f, B(GET), &used), HTTP_FILTER_ROUTE);
	ck_assert_int_eq(http_filter_feed(f, B("GET"), &used), HTTP_FILTER_ROUTE);
	ck_assert_uint_eq(used, 0);
	http_filter_output(f, &n);
	ck_assert_uint_eq(n, 0);
	http_filter_route(f, &plain);
	http_filter_route(f, &fwd); /* a second route is ignored */
	ck_assert_int_eq(http_filter_feed(f, B("GET"), &used), HTTP_FILTER_MORE);
	ck_assert_uint_eq(used, 3);
	http_filter_output(f, &n);
	ck_assert_uint_eq(n, sizeof(GET) - 1);
	ck_assert(!http_filter_idle(f));
	http_filter_free(f);
}
END_TEST

START_TEST(xff_appended_to_existing)
{
	expect(&fwd, B("GET / HTTP/1.1\r\nX-Forwarded-For: 203.0.113.9\r\n" HOST "\r\n"), 0,
	       "GET / HTTP/1.1\r\nX-Forwarded-For: 203.0.113.9, " IP "\r\n" HOST
	       "X-Forwarded-Proto: http\r\nX-Forwarded-Host: example.com\r\n"
	       "Forwarded: for=" IP ";host=example.com;proto=http\r\n\r\n");
}
END_TEST

START_TEST(xff_lines_merged_into_one)
{
	expect(&fwd,
	       B("GET / HTTP/1.1\r\nx-forwarded-for: 10.0.0.1 \r\n" HOST
	         "X-Forwarded-For:\r\nX-Forwarded-For: 10.0.0.2, 10.0.0.3\r\n\r\n"),
	       0,
	       "GET / HTTP/1.1\r\nX-Forwarded-For: 10.0.0.1, 10.0.0.2, 10.0.0.3, " IP "\r\n" HOST
	       "X-Forwarded-Proto: http\r\nX-Forwarded-Host: example.com\r\n"
	       "Forwarded: for=" IP ";host=example.com;proto=http\r\n\r\n");
}
END_TEST

START_TEST(xfp_and_xfh_replaced)
{
	expect(&fwd,
	       B("GET / HTTP/1.1\r\nX-Forwarded-Proto: https\r\n" HOST
	         "X-Forwarded-Host: evil.example\r\nX-Forwarded-Proto: gopher\r\n\r\n"),
	       0,
	       "GET / HTTP/1.1\r\nX-Forwarded-Proto: http\r\n" HOST
	       "X-Forwarded-Host: example.com\r\nX-Forwarded-For: " IP "\r\n"
	       "Forwarded: for=" IP ";host=example.com;proto=http\r\n\r\n");
}
END_TEST

START_TEST(xf_lookalikes_dropped)
{
	expect(&fwd,
	       B("GET / HTTP/1.1\r\nX_Forwarded_For: 6.6.6.6\r\n" HOST
	         "X-Forwarded_Host: x\r\n\r\n"),
	       0, "GET / HTTP/1.1\r\n" HOST FWD_HEADERS(IP, IP, "example.com") "\r\n");
	/* Without forwarding they are none of the filter's business. */
	expect(&plain, B("GET / HTTP/1.1\r\nX_Forwarded_For: 6.6.6.6\r\n" HOST "\r\n"), 0,
	       "GET / HTTP/1.1\r\nX_Forwarded_For: 6.6.6.6\r\n" HOST "\r\n");
}
END_TEST

START_TEST(forwarded_ipv6_quoted)
{
	struct run r = run_lim(&fwd, "2001:db8::1", NULL, B(GET), 0);
	const char *want = "GET / HTTP/1.1\r\n" HOST FWD_HEADERS("2001:db8::1", "\"[2001:db8::1]\"",
	                                                         "example.com") "\r\n";
	ck_assert_int_eq(r.rc, HTTP_FILTER_MORE);
	ck_assert_str_eq((const char *)r.out, want);
	run_free(&r);
}
END_TEST

START_TEST(forwarded_appended_to_existing)
{
	expect(&fwd,
	       B("GET / HTTP/1.1\r\nForwarded: for=198.51.100.7;proto=https\r\n" HOST
	         "Forwarded: for=\"[2001:db8::9]\"\r\n\r\n"),
	       0,
	       "GET / HTTP/1.1\r\nForwarded: for=198.51.100.7;proto=https, for=\"[2001:db8::9]\", "
	       "for=" IP ";host=example.com;proto=http\r\n" HOST "X-Forwarded-For: " IP
	       "\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: example.com\r\n\r\n");
}
END_TEST

START_TEST(forwarded_host_with_port_quoted)
{
	expect(&fwd, B("GET / HTTP/1.1\r\nHost: Example.com:8080\r\n\r\n"), 0,
	       "GET / HTTP/1.1\r\nHost: Example.com:8080\r\nX-Forwarded-For: " IP
	       "\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: Example.com:8080\r\n"
	       "Forwarded: for=" IP ";host=\"Example.com:8080\";proto=http\r\n\r\n");
}
END_TEST

START_TEST(proto_and_unknown_client)
{
	struct http_filter *f = http_filter_new(NULL, NULL, "https");
	size_t used, n;
	ck_assert_int_eq(http_filter_feed(f, B(GET), &used), HTTP_FILTER_ROUTE);
	http_filter_route(f, &fwd);
	ck_assert_int_eq(http_filter_feed(f, NULL, 0, &used), HTTP_FILTER_MORE);
	const uint8_t *o = http_filter_output(f, &n);
	const char *want = "GET / HTTP/1.1\r\n" HOST "X-Forwarded-For: unknown\r\n"
	                   "X-Forwarded-Proto: https\r\nX-Forwarded-Host: example.com\r\n"
	                   "Forwarded: for=unknown;host=example.com;proto=https\r\n\r\n";
	ck_assert_uint_eq(n, strlen(want));
	ck_assert_mem_eq(o, want, n);
	http_filter_free(f);
}
END_TEST

START_TEST(host_header_replaced)
{
	const struct http_route r = {"example.com", "localhost:3000", NULL, true};
	expect(&r, B("GET /x HTTP/1.1\r\nAccept: */*\r\nhost: Example.COM\r\n\r\n"), 0,
	       "GET /x HTTP/1.1\r\nAccept: */*\r\nHost: localhost:3000\r\n" FWD_HEADERS(
	               IP, IP, "Example.COM") "\r\n");
	const struct http_route quiet = {"example.com", "127.0.0.1", NULL, false};
	expect(&quiet, B(GET), 0, "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
}
END_TEST

START_TEST(host_header_with_crlf_refused)
{
	const struct http_route r = {"example.com", "a\r\nX-Evil: 1", NULL, false};
	struct run x = run(&r, B(GET), 0);
	ck_assert_int_eq(x.rc, 500);
	ck_assert_uint_eq(x.out_len, 0);
	run_free(&x);
}
END_TEST

#define ODD_HEAD                                                                                   \
	"PATCH /a%20b?c=d&e HTTP/1.1\r\nhOsT:example.com   \r\nX-Forwarded-For: 1.1.1.1\r\n"       \
	"Forwarded: for=x\r\nX-Empty:\r\nX-Tab:\tv\t \r\nX_Forwarded_For: y\r\n"                   \
	"Content-Length: 0\r\n\r\n"

START_TEST(not_forwarded_is_byte_identical)
{
	expect(&plain, B(ODD_HEAD), 0, ODD_HEAD);
	expect(&plain, B(ODD_HEAD GET ODD_HEAD), 0, ODD_HEAD GET ODD_HEAD);
}
END_TEST

START_TEST(absolute_form_names_the_host)
{
	struct run r =
	        run(&plain, B("GET http://WWW.Example.ORG:8080/p?q HTTP/1.1\r\n" HOST "\r\n"), 0);
	ck_assert_int_eq(r.rc, HTTP_FILTER_MORE);
	ck_assert_str_eq(http_filter_host(r.f), "www.example.org");
	run_free(&r);
	r = run(&plain, B("GET HTTPS://[2001:DB8:0::2]/ HTTP/1.1\r\n" HOST "\r\n"), 0);
	ck_assert_str_eq(http_filter_host(r.f), "2001:db8::2");
	run_free(&r);
}
END_TEST

START_TEST(host_port_stripped_and_lowered)
{
	static const struct {
		const char *head, *host;
	} cases[] = {
	        {"GET / HTTP/1.1\r\nHost: example.com:8080\r\n\r\n", "example.com"},
	        {"GET / HTTP/1.1\r\nHost: EXAMPLE.Com\r\n\r\n", "example.com"},
	        {"GET / HTTP/1.1\r\nHost:    Ex-1.example.com:80 \t\r\n\r\n", "ex-1.example.com"},
	        {"GET / HTTP/1.1\r\nHost: [2001:DB8::1]:443\r\n\r\n", "2001:db8::1"},
	        {"GET / HTTP/1.1\r\nHost: [2001:0db8:0:0::0:1]\r\n\r\n", "2001:db8::1"},
	        {"GET / HTTP/1.1\r\nHost: [::FFFF:192.0.2.1]\r\n\r\n", "::ffff:192.0.2.1"},
	        {"GET / HTTP/1.1\r\nHost: 192.0.2.7\r\n\r\n", "192.0.2.7"},
	        {"GET / HTTP/1.0\r\nHost: a_b.example\r\n\r\n", "a_b.example"},
	        {"CONNECT db.internal:5432 HTTP/1.1\r\nHost: Tunnel.example\r\n\r\n",
	         "tunnel.example"},
	        {"OPTIONS * HTTP/1.1\r\nHost: star.example\r\n\r\n", "star.example"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct http_filter *f = http_filter_new(NULL, IP, "http");
		size_t used;
		int rc = http_filter_feed(f, (const uint8_t *)cases[i].head, strlen(cases[i].head),
		                          &used);
		ck_assert_msg(rc == HTTP_FILTER_ROUTE, "%s: rc %d (%s)", cases[i].head, rc,
		              http_filter_reason(f));
		ck_assert_str_eq(http_filter_host(f), cases[i].host);
		http_filter_free(f);
	}
}
END_TEST

/* ---- keep-alive and pipelines ---------------------------------------------- */

START_TEST(keepalive_same_host)
{
	struct run r = run(&plain, B(GET "GET /2 HTTP/1.1\r\nHost: EXAMPLE.com:80\r\n\r\n"), 0);
	ck_assert_int_eq(r.rc, HTTP_FILTER_MORE);
	ck_assert_str_eq((const char *)r.out,
	                 GET "GET /2 HTTP/1.1\r\nHost: EXAMPLE.com:80\r\n\r\n");
	ck_assert(http_filter_idle(r.f));
	run_free(&r);
}
END_TEST

START_TEST(keepalive_other_host_421)
{
	struct run r = run(&fwd,
	                   B("POST /a HTTP/1.1\r\n" HOST "Content-Length: 3\r\n\r\nabc"
	                     "GET / HTTP/1.1\r\nHost: other.example\r\n\r\n"),
	                   0);
	ck_assert_int_eq(r.rc, 421);
	ck_assert_str_eq((const char *)r.out,
	                 "POST /a HTTP/1.1\r\n" HOST
	                 "Content-Length: 3\r\n" FWD_HEADERS(IP, IP, "example.com") "\r\nabc");
	ck_assert_str_ne(http_filter_reason(r.f), "");
	/* Refused for good: the same status, nothing taken. */
	size_t used = 9;
	ck_assert_int_eq(http_filter_feed(r.f, B(GET), &used), 421);
	ck_assert_uint_eq(used, 0);
	ck_assert(!http_filter_idle(r.f));
	run_free(&r);
}
END_TEST

START_TEST(keepalive_absolute_form_other_host_421)
{
	struct run r = run(&plain, B(GET "GET http://other.example/ HTTP/1.1\r\n" HOST "\r\n"), 0);
	ck_assert_int_eq(r.rc, 421);
	ck_assert_str_eq((const char *)r.out, GET);
	run_free(&r);
}
END_TEST

START_TEST(route_host_also_accepted)
{
	/* The tunnel was found under another spelling of the name. */
	const struct http_route r = {"App.example", NULL, NULL, false};
	struct run x = run(&r, B(GET "GET / HTTP/1.1\r\nHost: app.example\r\n\r\n" GET), 0);
	ck_assert_int_eq(x.rc, HTTP_FILTER_MORE);
	run_free(&x);
}
END_TEST

#define PIPE3                                                                                      \
	"GET /1 HTTP/1.1\r\n" HOST "\r\n"                                                          \
	"POST /2 HTTP/1.1\r\n" HOST "Content-Length: 5\r\n\r\nhello"                               \
	"PUT /3 HTTP/1.1\r\n" HOST "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"

START_TEST(pipelined_three_in_one_feed)
{
	struct http_filter *f = http_filter_new(NULL, IP, "http");
	size_t used, n;
	ck_assert_int_eq(http_filter_feed(f, B(PIPE3), &used), HTTP_FILTER_ROUTE);
	http_filter_route(f, &plain);
	ck_assert_int_eq(
	        http_filter_feed(f, (const uint8_t *)PIPE3 + used, sizeof(PIPE3) - 1 - used, &n),
	        HTTP_FILTER_MORE);
	const uint8_t *o = http_filter_output(f, &n);
	ck_assert_uint_eq(n, sizeof(PIPE3) - 1);
	ck_assert_mem_eq(o, PIPE3, n);
	ck_assert(http_filter_idle(f));
	http_filter_free(f);
}
END_TEST

START_TEST(pipelined_forwarded_each_head)
{
	struct run r = run(&fwd, B(PIPE3), 0);
	const char *x = FWD_HEADERS(IP, IP, "example.com");
	ck_assert_int_eq(r.rc, HTTP_FILTER_MORE);
	char want[1024];
	snprintf(want, sizeof(want),
	         "GET /1 HTTP/1.1\r\n" HOST "%s\r\nPOST /2 HTTP/1.1\r\n" HOST
	         "Content-Length: 5\r\n%s\r\nhelloPUT /3 HTTP/1.1\r\n" HOST
	         "Transfer-Encoding: chunked\r\n%s\r\n3\r\nabc\r\n0\r\n\r\n",
	         x, x, x);
	ck_assert_str_eq((const char *)r.out, want);
	run_free(&r);
}
END_TEST

START_TEST(leading_empty_lines_dropped)
{
	expect(&plain, B("\r\n\r\n" GET "\r\n" GET), 0, GET GET);
	struct run r = run(&plain, B("\n" GET), 0);
	ck_assert_int_eq(r.rc, 400);
	run_free(&r);
}
END_TEST

START_TEST(idle_follows_requests)
{
	struct http_filter *f = http_filter_new(NULL, IP, "http");
	size_t used;
	ck_assert_int_eq(http_filter_feed(f, B(GET), &used), HTTP_FILTER_ROUTE);
	http_filter_route(f, &plain);
	ck_assert_int_eq(http_filter_feed(f, B("\r"), &used), HTTP_FILTER_MORE);
	ck_assert(!http_filter_idle(f));
	ck_assert_int_eq(http_filter_feed(f, B("\n"), &used), HTTP_FILTER_MORE);
	ck_assert(http_filter_idle(f));
	ck_assert_int_eq(http_filter_feed(f, B("POST / HTTP/1.1\r\n" HOST), &used),
	                 HTTP_FILTER_MORE);
	ck_assert(!http_filter_idle(f));
	ck_assert_int_eq(http_filter_feed(f, B("Content-Length: 2\r\n\r\na"), &used),
	                 HTTP_FILTER_MORE);
	ck_assert(!http_filter_idle(f));
	ck_assert_int_eq(http_filter_feed(f, B("b"), &used), HTTP_FILTER_MORE);
	ck_assert(http_filter_idle(f));
	http_filter_free(f);
}
END_TEST

START_TEST(drain_in_parts)
{
	struct http_filter *f = http_filter_new(NULL, IP, "http");
	size_t used, n;
	http_filter_feed(f, B(GET), &used);
	http_filter_route(f, &plain);
	http_filter_feed(f, B(GET), &used);
	http_filter_output(f, &n);
	ck_assert_uint_eq(n, 2 * (sizeof(GET) - 1));
	http_filter_drain(f, 5);
	const uint8_t *o = http_filter_output(f, &n);
	ck_assert_uint_eq(n, 2 * (sizeof(GET) - 1) - 5);
	ck_assert_mem_eq(o, &GET[5], sizeof(GET) - 1 - 5);
	http_filter_feed(f, B(GET), &used); /* appended after what is left */
	o = http_filter_output(f, &n);
	ck_assert_uint_eq(n, 3 * (sizeof(GET) - 1) - 5);
	ck_assert_mem_eq(o + n - (sizeof(GET) - 1), GET, sizeof(GET) - 1);
	http_filter_drain(f, 1000);
	http_filter_output(f, &n);
	ck_assert_uint_eq(n, 0);
	http_filter_free(f);
}
END_TEST

/* ---- bodies ------------------------------------------------------------------ */

#define CHUNKED_POST                                                                               \
	"POST /up HTTP/1.1\r\n" HOST "Transfer-Encoding: gzip, chunked\r\nTrailer: X-Sum\r\n\r\n"  \
	"5;name=\"v a\";x\r\nhello\r\n"                                                            \
	"1A \r\nabcdefghijklmnopqrstuvwxyz\r\n"                                                    \
	"000\r\nX-Sum: 42\r\nX-More:\tyes \r\n\r\n"

START_TEST(chunked_extensions_trailers_exact)
{
	expect(&plain, B(CHUNKED_POST GET), 0, CHUNKED_POST GET);
	same_any_split(&fwd, B(CHUNKED_POST GET));
}
END_TEST

#define CL_POST "POST /f HTTP/1.1\r\n" HOST "Content-Length: 10\r\n\r\n0123\r\n\0\xff\nZ"

START_TEST(content_length_split_everywhere)
{
	expect(&plain, B(CL_POST GET), 0, CL_POST GET);
	same_any_split(&plain, B(CL_POST GET));
	same_any_split(&fwd, B(CL_POST CL_POST));
}
END_TEST

START_TEST(byte_at_a_time_same_output)
{
	same_any_split(&fwd, B("\r\n" PIPE3 ODD_HEAD GET));
	const struct http_route r = {"example.com", "svc", NULL, true};
	same_any_split(&r, B(PIPE3 "GET http://example.com/ HTTP/1.1\r\nHost: x\r\n\r\n"));
}
END_TEST

START_TEST(refusals_same_any_split)
{
	same_any_split(&fwd, B(GET "GET / HTTP/1.1\r\nHost: b\r\n\r\n"));
	same_any_split(&fwd, B(CL_POST "GET / HTTP/1.1\r\nHost: a\nb\r\n\r\n"));
	same_any_split(&plain, B(GET "POST / HTTP/1.1\r\n" HOST
	                             "Transfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n"));
}
END_TEST

START_TEST(invalid_chunk_size_400)
{
	struct run r = run(&plain,
	                   B("POST / HTTP/1.1\r\n" HOST "Transfer-Encoding: chunked\r\n\r\n"
	                     "3\r\nabc\r\nzz\r\n" GET),
	                   0);
	ck_assert_int_eq(r.rc, 400);
	/* A chunked request is held back until it is whole: the bad one is
	 * taken back, and nothing of it reaches the service. */
	ck_assert_uint_eq(r.out_len, 0);
	ck_assert(!http_filter_cut(r.f));
	run_free(&r);
}
END_TEST

/* Past HTTP_FILTER_HOLD_MAX a chunked body streams; a bad chunk after that
 * cuts the request, and the caller is told to abort the service's side. */
START_TEST(invalid_chunk_past_hold_cuts)
{
	size_t big = HTTP_FILTER_HOLD_MAX + 4096, head = 0;
	const char *pre = "POST / HTTP/1.1\r\n" HOST "Transfer-Encoding: chunked\r\n\r\n";
	char size_line[32];
	int k = snprintf(size_line, sizeof(size_line), "%zx\r\n", big);
	size_t len = strlen(pre) + (size_t)k + big + 2 + 4;
	uint8_t *in = malloc(len);
	memcpy(in, pre, strlen(pre));
	head = strlen(pre);
	memcpy(in + head, size_line, (size_t)k);
	memset(in + head + k, 'x', big);
	memcpy(in + head + k + big, "\r\nzz\r\n", 6);
	/* In reads of 4 KiB, as a socket gives it: what is past the hold went
	 * out before the bad chunk came. */
	struct run r = run(&plain, in, len, 4096);
	ck_assert_int_eq(r.rc, 400);
	ck_assert(http_filter_cut(r.f));
	ck_assert_uint_ge(r.out_len, HTTP_FILTER_HOLD_MAX);
	run_free(&r);
	free(in);
}
END_TEST

/* A good chunked request held back comes out whole once it ends. */
START_TEST(chunked_held_until_whole)
{
	struct run r = run(&plain,
	                   B("POST / HTTP/1.1\r\n" HOST "Transfer-Encoding: chunked\r\n\r\n"
	                     "3\r\nabc\r\n"),
	                   0);
	ck_assert_int_eq(r.rc, HTTP_FILTER_MORE);
	ck_assert_uint_eq(r.out_len, 0); /* held */
	size_t used = 0;
	int rc = http_filter_feed(r.f, B("0\r\n\r\n"), &used);
	ck_assert_int_eq(rc, HTTP_FILTER_MORE);
	size_t n;
	const uint8_t *out = http_filter_output(r.f, &n);
	const char *want = "POST / HTTP/1.1\r\n" HOST
	                   "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
	ck_assert_uint_eq(n, strlen(want));
	ck_assert(memcmp(out, want, n) == 0);
	run_free(&r);
}
END_TEST

#define CHUNKED_ "POST / HTTP/1.1\r\n" HOST "Transfer-Encoding: chunked\r\n\r\n"

START_TEST(chunk_framing_not_crlf_400)
{
	static const struct {
		const uint8_t *p;
		size_t len;
	} bad[] = {
	        /* the CRLF after data: the lenient http_parser takes any two bytes */
	        {B(CHUNKED_ "5\r\nhelloXX0\r\n\r\n")},
	        {B(CHUNKED_ "5\r\nhello\n0\r\n\r\n")},
	        {B(CHUNKED_ "5\rXhello\r\n0\r\n\r\n")},
	        {B(CHUNKED_ "5;a\nb\r\nhello\r\n0\r\n\r\n")}, /* a LF inside an extension */
	        {B(CHUNKED_ "5;a\0b\r\nhello\r\n0\r\n\r\n")},
	        {B(CHUNKED_ "0\r\nX: a\nb\r\n\r\n")}, /* in a trailer */
	        {B(CHUNKED_ "0\r\n\n")},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct run r = run(&plain, bad[i].p, bad[i].len, 0);
		ck_assert_msg(r.rc == 400, "body %zu: rc %d", i, r.rc);
		ck_assert_msg(r.out_len < bad[i].len, "body %zu: all of it went out", i);
		run_free(&r);
	}
}
END_TEST

START_TEST(content_length_with_ows)
{
	expect(&plain, B(POST_ "Content-Length:   3  \r\n\r\nabc" GET), 0,
	       POST_ "Content-Length:   3  \r\n\r\nabc" GET);
	expect(&plain, B(POST_ "Content-Length: 007\r\n\r\nabcdefg"), 0,
	       POST_ "Content-Length: 007\r\n\r\nabcdefg");
	expect(&plain, B(POST_ "Content-Length: 0\r\n\r\n" GET), 0,
	       POST_ "Content-Length: 0\r\n\r\n" GET);
}
END_TEST

START_TEST(http10_body_and_keepalive)
{
	expect(&plain,
	       B("POST / HTTP/1.0\r\nHost: example.com\r\nContent-Length: 2\r\n\r\nok"
	         "GET / HTTP/1.0\r\nHost: example.com\r\n\r\n"),
	       0,
	       "POST / HTTP/1.0\r\nHost: example.com\r\nContent-Length: 2\r\n\r\nok"
	       "GET / HTTP/1.0\r\nHost: example.com\r\n\r\n");
}
END_TEST

/* ---- protocol switches ------------------------------------------------------- */

#define WS_HEAD                                                                                    \
	"GET /chat HTTP/1.1\r\n" HOST "Upgrade: websocket\r\nConnection: Upgrade\r\n"              \
	"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
#define FRAMES "\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58\0\r\n\nGET / HTTP/1.1\n\n"

START_TEST(upgrade_websocket_raw)
{
	struct http_filter *f = http_filter_new(NULL, IP, "http");
	size_t used, n;
	ck_assert_int_eq(http_filter_feed(f, B(WS_HEAD FRAMES), &used), HTTP_FILTER_ROUTE);
	http_filter_route(f, &plain);
	/* The bytes after the head are not taken in the switching call. */
	ck_assert_int_eq(http_filter_feed(f, B(FRAMES), &used), HTTP_FILTER_RAW);
	ck_assert_uint_eq(used, 0);
	ck_assert_int_eq(http_filter_feed(f, B(FRAMES), &used), HTTP_FILTER_RAW);
	ck_assert_uint_eq(used, sizeof(FRAMES) - 1);
	const uint8_t *o = http_filter_output(f, &n);
	ck_assert_uint_eq(n, sizeof(WS_HEAD FRAMES) - 1);
	ck_assert_mem_eq(o, WS_HEAD FRAMES, n);
	ck_assert(!http_filter_idle(f));
	http_filter_free(f);
}
END_TEST

START_TEST(upgrade_after_keepalive_requests)
{
	struct http_filter *f = http_filter_new(NULL, IP, "http");
	size_t used, n;
	http_filter_feed(f, B(GET), &used);
	http_filter_route(f, &plain);
	ck_assert_int_eq(http_filter_feed(f, B(GET WS_HEAD FRAMES), &used), HTTP_FILTER_RAW);
	ck_assert_uint_eq(used, sizeof(GET WS_HEAD) - 1);
	http_filter_output(f, &n);
	ck_assert_uint_eq(n, sizeof(GET GET WS_HEAD) - 1);
	http_filter_free(f);
	same_any_split(&fwd, B(WS_HEAD FRAMES));
}
END_TEST

#define H2C_POST                                                                                   \
	"POST / HTTP/1.1\r\n" HOST "Connection: upgrade\r\nUpgrade: h2c\r\n"                       \
	"Content-Length: 3\r\n\r\nabc"

START_TEST(upgrade_with_body_switches_after_it)
{
	struct run r = run(&plain, B(H2C_POST FRAMES), 0);
	ck_assert_int_eq(r.rc, HTTP_FILTER_RAW);
	ck_assert_uint_eq(r.out_len, sizeof(H2C_POST FRAMES) - 1);
	ck_assert_mem_eq(r.out, H2C_POST FRAMES, r.out_len);
	run_free(&r);
	struct http_filter *f = http_filter_new(NULL, IP, "http");
	size_t used;
	http_filter_feed(f, B(H2C_POST FRAMES), &used);
	http_filter_route(f, &plain);
	ck_assert_int_eq(http_filter_feed(f, (const uint8_t *)H2C_POST FRAMES + used,
	                                  sizeof(H2C_POST FRAMES) - 1 - used, &used),
	                 HTTP_FILTER_RAW);
	ck_assert_uint_eq(used, 3); /* the body, not the bytes after it */
	http_filter_free(f);
}
END_TEST

START_TEST(upgrade_without_connection_stays_http)
{
	/* No "Connection: upgrade": the service must not switch, so the next
	 * bytes are still requests to check. */
	struct run r =
	        run(&plain, B("GET / HTTP/1.1\r\n" HOST "Upgrade: websocket\r\n\r\n" FRAMES), 0);
	ck_assert_int_eq(r.rc, 400);
	run_free(&r);
}
END_TEST

START_TEST(upgrade_in_http10_stays_http)
{
	/* A server ignores Upgrade in HTTP/1.0, so the next request is one to
	 * check (here one for another host). */
	const char *in = "GET / HTTP/1.0\r\n" HOST "Connection: upgrade, keep-alive\r\n"
	                 "Upgrade: websocket\r\n\r\nGET /admin HTTP/1.1\r\nHost: other\r\n\r\n";
	struct run r = run(&plain, (const uint8_t *)in, strlen(in), 0);
	ck_assert_int_eq(r.rc, 421);
	ck_assert_uint_eq(r.out_len,
	                  strlen(in) - strlen("GET /admin HTTP/1.1\r\nHost: other\r\n\r\n"));
	run_free(&r);
}
END_TEST

START_TEST(connect_raw)
{
	expect(&plain, B("CONNECT example.com:443 HTTP/1.1\r\n" HOST "\r\n\x16\x03\x01"),
	       HTTP_FILTER_RAW, "CONNECT example.com:443 HTTP/1.1\r\n" HOST "\r\n\x16\x03\x01");
}
END_TEST

/* ---- refusals -------------------------------------------------------------- */

struct refusal {
	const char *what;
	const uint8_t *in;
	size_t len;
	int status;
};

static const struct refusal refusals[] = {
        {"CL and TE", B(POST_ "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"), 400},
        {"TE and CL", B(POST_ "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"), 400},
        {"CL twice, same", B(POST_ "Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello"), 400},
        {"CL twice, other", B(POST_ "Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello"), 400},
        {"CL list", B(POST_ "Content-Length: 5, 5\r\n\r\nhello"), 400},
        {"CL plus", B(POST_ "Content-Length: +5\r\n\r\nhello"), 400},
        {"CL minus", B(POST_ "Content-Length: -1\r\n\r\n"), 400},
        {"CL inner space", B(POST_ "Content-Length: 1 0\r\n\r\n0123456789"), 400},
        {"CL garbage", B(POST_ "Content-Length: 5x\r\n\r\nhello"), 400},
        {"CL hex", B(POST_ "Content-Length: 0x5\r\n\r\nhello"), 400},
        {"CL empty", B(POST_ "Content-Length:\r\n\r\n"), 400},
        {"CL overflow", B(POST_ "Content-Length: 99999999999999999999999\r\n\r\n"), 400},
        {"TE gzip", B(POST_ "Transfer-Encoding: gzip\r\n\r\n"), 501},
        {"TE chunked, gzip", B(POST_ "Transfer-Encoding: chunked, gzip\r\n\r\n"), 501},
        {"TE identity", B(POST_ "Transfer-Encoding: identity\r\n\r\n"), 501},
        {"TE chunked;x", B(POST_ "Transfer-Encoding: chunked;q=1\r\n\r\n"), 501},
        {"TE chunked twice", B(POST_ "Transfer-Encoding: chunked, chunked\r\n\r\n"), 400},
        {"TE empty element", B(POST_ "Transfer-Encoding: gzip,,chunked\r\n\r\n"), 400},
        {"TE two fields", B(POST_ "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"),
         400},
        {"TE in HTTP/1.0", B("POST / HTTP/1.0\r\n" HOST "Transfer-Encoding: chunked\r\n\r\n"), 400},
        {"TE with space before colon",
         B(POST_ "Transfer-Encoding : chunked\r\nContent-Length: 3\r\n\r\n"), 400},
        {"obs-fold SP", B("GET / HTTP/1.1\r\n" HOST "X-A: a\r\n b\r\n\r\n"), 400},
        {"obs-fold HTAB", B("GET / HTTP/1.1\r\n" HOST "X-A: a\r\n\tb\r\n\r\n"), 400},
        {"space before the first field", B("GET / HTTP/1.1\r\n " HOST "\r\n"), 400},
        {"bare LF in a field", B("GET / HTTP/1.1\r\n" HOST "X-A: a\nX-B: b\r\n\r\n"), 400},
        {"bare LF ends the head", B("GET / HTTP/1.1\r\n" HOST "\n"), 400},
        {"LF-only head", B("GET / HTTP/1.1\nHost: example.com\n\n"), 400},
        {"bare CR", B("GET / HTTP/1.1\r\n" HOST "X-A: a\rb\r\n\r\n"), 400},
        {"NUL in a value", B("GET / HTTP/1.1\r\n" HOST "X-A: a\0b\r\n\r\n"), 400},
        {"NUL in the target", B("GET /\0 HTTP/1.1\r\n" HOST "\r\n"), 400},
        {"SOH", B("GET / HTTP/1.1\r\n" HOST "X-A: \x01\r\n\r\n"), 400},
        {"DEL", B("GET / HTTP/1.1\r\n" HOST "X-A: \x7f\r\n\r\n"), 400},
        {"ESC in a name", B("GET / HTTP/1.1\r\n" HOST "X\x1b: a\r\n\r\n"), 400},
        {"no Host", B("GET / HTTP/1.1\r\nAccept: */*\r\n\r\n"), 400},
        {"no Host in 1.0", B("GET / HTTP/1.0\r\n\r\n"), 400},
        {"two Hosts", B("GET / HTTP/1.1\r\n" HOST HOST "\r\n"), 400},
        {"two Hosts, other", B("GET / HTTP/1.1\r\n" HOST "Host: b.example\r\n\r\n"), 400},
        {"Host empty", B("GET / HTTP/1.1\r\nHost:\r\n\r\n"), 400},
        {"Host with space", B("GET / HTTP/1.1\r\nHost: exa mple.com\r\n\r\n"), 400},
        {"Host with path", B("GET / HTTP/1.1\r\nHost: example.com/x\r\n\r\n"), 400},
        {"Host with userinfo", B("GET / HTTP/1.1\r\nHost: u@example.com\r\n\r\n"), 400},
        {"Host with query", B("GET / HTTP/1.1\r\nHost: example.com?x\r\n\r\n"), 400},
        {"Host port too big", B("GET / HTTP/1.1\r\nHost: example.com:99999\r\n\r\n"), 400},
        {"Host empty port", B("GET / HTTP/1.1\r\nHost: example.com:\r\n\r\n"), 400},
        {"Host open bracket", B("GET / HTTP/1.1\r\nHost: [::1\r\n\r\n"), 400},
        {"Host IP literal without colons", B("GET / HTTP/1.1\r\nHost: [fe1]\r\n\r\n"), 400},
        {"Host IP literal with a zone", B("GET / HTTP/1.1\r\nHost: [fe80::1%25eth0]\r\n\r\n"), 400},
        {"Host IP literal too long",
         B("GET / HTTP/1.1\r\nHost: [0000:0000:0000:0000:0000:0000:0000:0000:0]\r\n\r\n"), 400},
        {"absolute-form bad IP literal", B("GET http://[1.2.3.4]/ HTTP/1.1\r\n" HOST "\r\n"), 400},
        {"Host quote", B("GET / HTTP/1.1\r\nHost: \"example.com\"\r\n\r\n"), 400},
        {"Host space before colon", B("GET / HTTP/1.1\r\nHost : example.com\r\n\r\n"), 400},
        {"absolute-form userinfo", B("GET http://u:p@example.com/ HTTP/1.1\r\n" HOST "\r\n"), 400},
        {"absolute-form ftp", B("GET ftp://example.com/ HTTP/1.1\r\n" HOST "\r\n"), 400},
        {"two spaces in the request line", B("GET  / HTTP/1.1\r\n" HOST "\r\n"), 400},
        {"HTTP/0.9", B("GET /\r\n" HOST "\r\n"), 400},
        {"HTTP/2.0", B("GET / HTTP/2.0\r\n" HOST "\r\n"), 505},
        {"HTTP/1.2", B("GET / HTTP/1.2\r\n" HOST "\r\n"), 505},
        {"unknown method", B("BREW / HTTP/1.1\r\n" HOST "\r\n"), 400},
        {"field without colon", B("GET / HTTP/1.1\r\n" HOST "X-A\r\n\r\n"), 400},
        {"empty field name", B("GET / HTTP/1.1\r\n" HOST ": a\r\n\r\n"), 400},
};

START_TEST(refused_first_request)
{
	const struct refusal *t = &refusals[_i];
	struct run r = run(&plain, t->in, t->len, 0);
	ck_assert_msg(r.rc == t->status, "%s: rc %d, wanted %d (%s)", t->what, r.rc, t->status,
	              http_filter_reason(r.f));
	ck_assert_msg(r.routes == 0 && r.out_len == 0, "%s: routed or emitted", t->what);
	ck_assert_msg(http_filter_reason(r.f)[0] != '\0', "%s: no reason", t->what);
	run_free(&r);
	/* After a good request, the same: the first is out whole. */
	size_t n = sizeof(GET) - 1 + t->len;
	uint8_t *both = malloc(n);
	memcpy(both, GET, sizeof(GET) - 1);
	memcpy(both + sizeof(GET) - 1, t->in, t->len);
	r = run(&plain, both, n, 0);
	ck_assert_msg(r.rc == t->status, "%s second: rc %d", t->what, r.rc);
	ck_assert_msg(r.out_len == sizeof(GET) - 1 && memcmp(r.out, GET, r.out_len) == 0,
	              "%s second: output %s", t->what, r.out);
	run_free(&r);
	free(both);
}
END_TEST

START_TEST(head_too_large_431)
{
	const struct http_filter_limits lim = {64, 0};
	char in[128];
	/* Exactly 64 bytes: taken. */
	int n = snprintf(in, sizeof(in), "GET /%s HTTP/1.1\r\n" HOST "\r\n",
	                 "aaaaaaaaaaaaaaaaaaaaaaaaaaa");
	ck_assert_int_eq(n, 64);
	struct run r = run_lim(&plain, IP, &lim, (const uint8_t *)in, (size_t)n, 0);
	ck_assert_int_eq(r.rc, HTTP_FILTER_MORE);
	run_free(&r);
	/* One more: refused at the 65th byte, before the head is complete. */
	n = snprintf(in, sizeof(in), "GET /%s HTTP/1.1\r\n" HOST "\r\n",
	             "aaaaaaaaaaaaaaaaaaaaaaaaaaaa");
	r = run_lim(&plain, IP, &lim, (const uint8_t *)in, 65, 0);
	ck_assert_int_eq(r.rc, 431);
	run_free(&r);
	/* Empty lines before the request count too. */
	memset(in, 0, sizeof(in));
	for (int i = 0; i < 33; i++)
		memcpy(in + 2 * i, "\r\n", 2);
	r = run_lim(&plain, IP, &lim, (const uint8_t *)in, 66, 0);
	ck_assert_int_eq(r.rc, 431);
	run_free(&r);
}
END_TEST

START_TEST(default_head_limit_431)
{
	size_t n = 16384 + 100;
	uint8_t *in = malloc(n);
	memset(in, 'a', n);
	memcpy(in, "GET / HTTP/1.1\r\n" HOST "X-Big: ",
	       sizeof("GET / HTTP/1.1\r\n" HOST "X-Big: ") - 1);
	struct run r = run(&plain, in, n, 0);
	ck_assert_int_eq(r.rc, 431);
	run_free(&r);
	free(in);
}
END_TEST

START_TEST(too_many_headers_431)
{
	const struct http_filter_limits lim = {0, 5};
	const char *five = "GET / HTTP/1.1\r\n" HOST "A: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n";
	const char *six = "GET / HTTP/1.1\r\n" HOST "A: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\n\r\n";
	struct run r = run_lim(&plain, IP, &lim, (const uint8_t *)five, strlen(five), 0);
	ck_assert_int_eq(r.rc, HTTP_FILTER_MORE);
	run_free(&r);
	r = run_lim(&plain, IP, &lim, (const uint8_t *)six, strlen(six), 0);
	ck_assert_int_eq(r.rc, 431);
	run_free(&r);
}
END_TEST

START_TEST(default_header_count_431)
{
	char *in = malloc(4096);
	size_t n = (size_t)sprintf(in, "GET / HTTP/1.1\r\n" HOST);
	for (int i = 0; i < 100; i++)
		n += (size_t)sprintf(in + n, "X-%d: v\r\n", i);
	memcpy(in + n, "\r\n", 2);
	struct run r = run(&plain, (const uint8_t *)in, n + 2, 0);
	ck_assert_int_eq(r.rc, 431); /* Host and 100 more */
	run_free(&r);
	free(in);
}
END_TEST

START_TEST(refusal_is_sticky)
{
	struct http_filter *f = http_filter_new(NULL, IP, "http");
	size_t used, n;
	ck_assert_int_eq(http_filter_feed(f, B("GET / HTTP/1.1\r\nHost: a\nb"), &used), 400);
	ck_assert_int_eq(http_filter_feed(f, B(GET), &used), 400);
	ck_assert_uint_eq(used, 0);
	http_filter_route(f, &plain); /* out of turn: ignored */
	ck_assert_int_eq(http_filter_feed(f, NULL, 0, &used), 400);
	http_filter_output(f, &n);
	ck_assert_uint_eq(n, 0);
	ck_assert_ptr_null(http_filter_host(f));
	http_filter_free(f);
}
END_TEST

START_TEST(new_rejects_bad_text)
{
	ck_assert_ptr_null(http_filter_new(NULL, "1.2.3.4\r\nX: y", "http"));
	ck_assert_ptr_null(http_filter_new(NULL, "", "http"));
	ck_assert_ptr_null(http_filter_new(NULL, IP, "ht tp"));
	struct http_filter *f = http_filter_new(NULL, "fe80::1%eth0", "https");
	ck_assert_ptr_nonnull(f);
	http_filter_free(f);
	http_filter_free(NULL);
}
END_TEST

/* ---- Basic auth ------------------------------------------------------------ */

static const char *const users[] = {"alice:wonder land", "bob:s3cret:x", NULL};
static const struct http_route authed = {"example.com", NULL, users, false};

/* GET with an Authorization value. */
static struct run auth_run(const char *value)
{
	char in[256];
	int n = snprintf(in, sizeof(in), "GET / HTTP/1.1\r\n" HOST "%s%s%s\r\n",
	                 value ? "Authorization: " : "", value ? value : "", value ? "\r\n" : "");
	return run(&authed, (const uint8_t *)in, (size_t)n, 0);
}

START_TEST(basic_auth_ok_and_kept)
{
	/* base64("alice:wonder land"), base64("bob:s3cret:x") */
	struct run r = auth_run("Basic YWxpY2U6d29uZGVyIGxhbmQ=");
	ck_assert_int_eq(r.rc, HTTP_FILTER_MORE);
	ck_assert_str_eq((const char *)r.out,
	                 "GET / HTTP/1.1\r\n" HOST
	                 "Authorization: Basic YWxpY2U6d29uZGVyIGxhbmQ=\r\n\r\n");
	run_free(&r);
	r = auth_run("bASIC   Ym9iOnMzY3JldDp4 ");
	ck_assert_int_eq(r.rc, HTTP_FILTER_MORE);
	run_free(&r);
}
END_TEST

START_TEST(basic_auth_missing_401)
{
	struct run r = auth_run(NULL);
	ck_assert_int_eq(r.rc, 401);
	ck_assert_uint_eq(r.out_len, 0);
	ck_assert_uint_eq(r.routes, 1);
	run_free(&r);
}
END_TEST

START_TEST(basic_auth_wrong_401)
{
	static const char *wrong[] = {
	        "Basic YWxpY2U6d29uZGVy",         /* alice:wonder */
	        "Basic YWxpY2U6d29uZGVyIGxhbmQh", /* alice:wonder land! */
	        "Basic Ym9iOnMzY3JldA==",         /* bob:s3cret */
	        "Basic ",
	        "Bearer YWxpY2U6d29uZGVyIGxhbmQ=",
	        "BasicYWxpY2U6d29uZGVyIGxhbmQ=",
	        "YWxpY2U6d29uZGVyIGxhbmQ=",
	};
	for (size_t i = 0; i < sizeof(wrong) / sizeof(wrong[0]); i++) {
		struct run r = auth_run(wrong[i]);
		ck_assert_msg(r.rc == 401, "%s: rc %d", wrong[i], r.rc);
		run_free(&r);
	}
}
END_TEST

START_TEST(basic_auth_malformed_base64_401)
{
	static const char *bad[] = {
	        "Basic YWxpY2U6d29uZGVyIGxhbmQ",   /* padding left out */
	        "Basic YWxpY2U6d29uZGVyIGxhbmR=",  /* bits past the data */
	        "Basic YWxpY2U6d29u ZGVyIGxhbmQ=", /* a space inside */
	        "Basic YWxpY2U6d29uZGVyIGxhbmQ=QQ==",
	        "Basic YWxp*2U6d29uZGVyIGxhbmQ=",
	        "Basic YWxpY2U6d29uZGVyIGxhbm==",
	        "Basic ====",
	        "Basic Y===",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct run r = auth_run(bad[i]);
		ck_assert_msg(r.rc == 401, "%s: rc %d", bad[i], r.rc);
		run_free(&r);
	}
}
END_TEST

START_TEST(basic_auth_every_request)
{
	struct run r =
	        run(&authed,
	            B("GET / HTTP/1.1\r\n" HOST "Authorization: Basic Ym9iOnMzY3JldDp4\r\n\r\n"
	              "GET /2 HTTP/1.1\r\n" HOST "\r\n"),
	            0);
	ck_assert_int_eq(r.rc, 401);
	ck_assert_str_eq((const char *)r.out,
	                 "GET / HTTP/1.1\r\n" HOST "Authorization: Basic Ym9iOnMzY3JldDp4\r\n\r\n");
	run_free(&r);
	r = auth_run("Basic Ym9iOnMzY3JldDp4\r\nAuthorization: Basic Ym9iOnMzY3JldDp4");
	ck_assert_int_eq(r.rc, 400); /* two Authorization fields */
	run_free(&r);
	static const char *const nobody[] = {NULL};
	const struct http_route closed = {"example.com", NULL, nobody, false};
	r = run(&closed,
	        B("GET / HTTP/1.1\r\n" HOST "Authorization: Basic Ym9iOnMzY3JldDp4\r\n\r\n"), 0);
	ck_assert_int_eq(r.rc, 401);
	run_free(&r);
}
END_TEST

/* ---- http_page ------------------------------------------------------------- */

/* A whole response: the status line, headers up to CRLF CRLF and a body of
 * exactly Content-Length bytes. Returns the body. */
static const char *page_ok(const char *p, size_t n, int status, const char *phrase)
{
	char line[64];
	snprintf(line, sizeof(line), "HTTP/1.1 %d %s\r\n", status, phrase);
	ck_assert_msg(strncmp(p, line, strlen(line)) == 0, "status line of %.*s", (int)n, p);
	const char *end = memmem(p, n, "\r\n\r\n", 4);
	ck_assert_ptr_nonnull(end);
	const char *cl = memmem(p, (size_t)(end - p), "\r\nContent-Length: ", 18);
	ck_assert_ptr_nonnull(cl);
	ck_assert_uint_eq(strtoul(cl + 18, NULL, 10), n - (size_t)(end + 4 - p));
	ck_assert_ptr_nonnull(memmem(p, (size_t)(end - p), "\r\nConnection: close\r\n", 21));
	ck_assert_ptr_nonnull(
	        memmem(p, (size_t)(end - p), "\r\nContent-Type: text/html; charset=utf-8\r\n", 41));
	for (const char *c = p; c < end; c++)
		ck_assert_msg(*c != '\n' || (c > p && c[-1] == '\r'), "bare LF in the page head");
	return end + 4;
}

static const struct {
	int status;
	const char *phrase;
} pages[] = {
        {400, "Bad Request"},         {401, "Unauthorized"},
        {404, "Not Found"},           {408, "Request Timeout"},
        {421, "Misdirected Request"}, {431, "Request Header Fields Too Large"},
        {502, "Bad Gateway"},         {503, "Service Unavailable"},
};

START_TEST(page_is_a_whole_response)
{
	char out[2048];
	size_t n = http_page(pages[_i].status, "no tunnel for example.com", out, sizeof(out));
	ck_assert_uint_gt(n, 0);
	ck_assert_uint_le(n, sizeof(out));
	const char *body = page_ok(out, n, pages[_i].status, pages[_i].phrase);
	ck_assert_ptr_nonnull(
	        memmem(body, n - (size_t)(body - out), "no tunnel for example.com", 25));
	bool www = memmem(out, (size_t)(body - out),
	                  "\r\nWWW-Authenticate: Basic realm=\"mgrok\"\r\n", 41) != NULL;
	ck_assert_int_eq(www, pages[_i].status == 401);
}
END_TEST

START_TEST(page_escapes_detail)
{
	char out[2048];
	size_t n = http_page(400, "<script>alert('x\")&</script>\r\n", out, sizeof(out));
	const char *body = page_ok(out, n, 400, "Bad Request");
	ck_assert_ptr_null(memmem(body, n - (size_t)(body - out), "<script", 7));
	const char *want = "&lt;script&gt;alert(&#39;x&quot;)&amp;&lt;/script&gt;??";
	ck_assert_ptr_nonnull(memmem(body, n - (size_t)(body - out), want, strlen(want)));
	n = http_page(404, NULL, out, sizeof(out));
	page_ok(out, n, 404, "Not Found");
	n = http_page(42, "", out, sizeof(out));
	page_ok(out, n, 500, "Internal Server Error");
	n = http_page(599, "x", out, sizeof(out));
	page_ok(out, n, 599, "Error");
}
END_TEST

START_TEST(page_truncates_whole)
{
	char full[4096], out[4096];
	char detail[600];
	memset(detail, '&', sizeof(detail) - 4);
	memcpy(detail + sizeof(detail) - 4, "\xc3\xa9", 3); /* ends in é */
	size_t whole = http_page(503, detail, full, sizeof(full));
	size_t bare = http_page(503, NULL, full, sizeof(full));
	ck_assert_uint_gt(whole, bare);
	for (size_t cap = 0; cap <= whole; cap++) {
		memset(out, 0x55, sizeof(out));
		size_t n = http_page(503, detail, out, cap);
		ck_assert_uint_le(n, cap);
		ck_assert_msg(out[cap] == 0x55, "wrote past %zu", cap);
		if (cap < bare) {
			ck_assert_uint_eq(n, 0);
			continue;
		}
		const char *body = page_ok(out, n, 503, "Service Unavailable");
		/* Never half an entity. */
		const char *amp = memmem(body, n - (size_t)(body - out), "&am</p>", 7);
		ck_assert_ptr_null(amp);
		/* As much detail as fits: one more byte would not. */
		ck_assert_msg(n + 16 >= cap, "cap %zu, only %zu written", cap, n);
	}
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("http_filter");
	TCase *t = tcase_create("routing");
	tcase_add_test(t, get_routed_then_forwarded);
	tcase_add_test(t, route_waits_for_the_caller);
	tcase_add_test(t, xff_appended_to_existing);
	tcase_add_test(t, xff_lines_merged_into_one);
	tcase_add_test(t, xfp_and_xfh_replaced);
	tcase_add_test(t, xf_lookalikes_dropped);
	tcase_add_test(t, forwarded_ipv6_quoted);
	tcase_add_test(t, forwarded_appended_to_existing);
	tcase_add_test(t, forwarded_host_with_port_quoted);
	tcase_add_test(t, proto_and_unknown_client);
	tcase_add_test(t, host_header_replaced);
	tcase_add_test(t, host_header_with_crlf_refused);
	tcase_add_test(t, not_forwarded_is_byte_identical);
	tcase_add_test(t, absolute_form_names_the_host);
	tcase_add_test(t, host_port_stripped_and_lowered);
	suite_add_tcase(s, t);

	t = tcase_create("connection");
	tcase_add_test(t, keepalive_same_host);
	tcase_add_test(t, keepalive_other_host_421);
	tcase_add_test(t, keepalive_absolute_form_other_host_421);
	tcase_add_test(t, route_host_also_accepted);
	tcase_add_test(t, pipelined_three_in_one_feed);
	tcase_add_test(t, pipelined_forwarded_each_head);
	tcase_add_test(t, leading_empty_lines_dropped);
	tcase_add_test(t, idle_follows_requests);
	tcase_add_test(t, drain_in_parts);
	suite_add_tcase(s, t);

	t = tcase_create("bodies");
	tcase_set_timeout(t, 60);
	tcase_add_test(t, chunked_extensions_trailers_exact);
	tcase_add_test(t, content_length_split_everywhere);
	tcase_add_test(t, byte_at_a_time_same_output);
	tcase_add_test(t, refusals_same_any_split);
	tcase_add_test(t, invalid_chunk_size_400);
	tcase_add_test(t, invalid_chunk_past_hold_cuts);
	tcase_add_test(t, chunked_held_until_whole);
	tcase_add_test(t, chunk_framing_not_crlf_400);
	tcase_add_test(t, content_length_with_ows);
	tcase_add_test(t, http10_body_and_keepalive);
	suite_add_tcase(s, t);

	t = tcase_create("switch");
	tcase_add_test(t, upgrade_websocket_raw);
	tcase_add_test(t, upgrade_after_keepalive_requests);
	tcase_add_test(t, upgrade_with_body_switches_after_it);
	tcase_add_test(t, upgrade_without_connection_stays_http);
	tcase_add_test(t, upgrade_in_http10_stays_http);
	tcase_add_test(t, connect_raw);
	suite_add_tcase(s, t);

	t = tcase_create("refusals");
	tcase_add_loop_test(t, refused_first_request, 0,
	                    (int)(sizeof(refusals) / sizeof(refusals[0])));
	tcase_add_test(t, head_too_large_431);
	tcase_add_test(t, default_head_limit_431);
	tcase_add_test(t, too_many_headers_431);
	tcase_add_test(t, default_header_count_431);
	tcase_add_test(t, refusal_is_sticky);
	tcase_add_test(t, new_rejects_bad_text);
	suite_add_tcase(s, t);

	t = tcase_create("basic auth");
	tcase_add_test(t, basic_auth_ok_and_kept);
	tcase_add_test(t, basic_auth_missing_401);
	tcase_add_test(t, basic_auth_wrong_401);
	tcase_add_test(t, basic_auth_malformed_base64_401);
	tcase_add_test(t, basic_auth_every_request);
	suite_add_tcase(s, t);

	t = tcase_create("pages");
	tcase_add_loop_test(t, page_is_a_whole_response, 0,
	                    (int)(sizeof(pages) / sizeof(pages[0])));
	tcase_add_test(t, page_escapes_detail);
	tcase_add_test(t, page_truncates_whole);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
