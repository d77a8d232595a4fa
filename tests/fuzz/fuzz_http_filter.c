/*
 * Fuzz target: the http plugin's visitor-to-service filter
 * (plugins/http/http_filter.c).
 *
 * Input: a split seed, then the visitor's bytes. They go through a filter
 * with small limits (1024-byte heads, 16 field lines), routed at ROUTE to
 * the first request's host with X-Forwarded-* and Forwarded added and Host
 * rewritten. Each feed reads an exact-size heap copy. Asserted beyond the
 * sanitizers:
 *  - the protocol: ROUTE comes once and before any output, with a host;
 *    MORE takes every byte; a refusal (>= 400) has a reason, takes nothing
 *    more and stays; only refusals have a reason; only MORE may leave the
 *    filter idle.
 *  - the bytes may arrive any way: whole, split in two at a point the seed
 *    gives, and in the seed's chunks (fuzz_split, the output drained by
 *    halves meanwhile) give the same verdict and output.
 *  - no head goes out that a filter would refuse: the output through a
 *    second filter (no forwarding, room for the added fields) is taken
 *    without a refusal and comes out byte for byte the same; and the first
 *    head of the output has no bare CR or LF (checked here, without the
 *    filter).
 *  - without forwarding and Host rewriting, the output is the input with
 *    only empty lines before requests left out.
 *  - with Basic auth required, the output is a prefix of the output
 *    without, and the verdict the same or 401 (or 400: two Authorization
 *    fields).
 */
#include <string.h>

#include "fuzz.h"
#include "http_filter.h"

#define MAX_HEAD 1024
#define MAX_HEADERS 16

struct outcome {
	int rc;
	uint8_t *out;
	size_t len;
};

struct setup {
	struct http_filter_limits lim;
	bool forwarded, rewrite_host;
	const char *const *basic_auth;
};

struct session {
	const struct setup *setup;
	struct http_filter *f;
	struct outcome o;
	int routes;
	bool drain_half; /* like a service that takes part of what is sent */
	char host_header[MAX_HEAD + 3];
};

/* Takes the filter's output (half of it when drain_half, all when all). */
static void collect(struct session *s, bool all)
{
	size_t n;
	const uint8_t *p = http_filter_output(s->f, &n);
	if (s->drain_half && !all)
		n -= n / 2;
	if (!n)
		return;
	s->o.out = realloc(s->o.out, s->o.len + n);
	FUZZ_ASSERT(s->o.out != NULL, "out of memory");
	memcpy(s->o.out + s->o.len, p, n);
	s->o.len += n;
	http_filter_drain(s->f, n);
}

/* The route: the first request's host, as a Host value when rewriting. */
static void route(struct session *s)
{
	const char *host = http_filter_host(s->f);
	size_t pending;
	http_filter_output(s->f, &pending);
	FUZZ_ASSERT(pending == 0, "ROUTE with %zu bytes of output", pending);
	FUZZ_ASSERT(host != NULL && host[0] != '\0', "ROUTE without a host");
	FUZZ_ASSERT(s->routes++ == 0 && s->o.len == 0, "ROUTE %d, after %zu bytes of output",
	            s->routes, s->o.len);
	bool v6 = strchr(host, ':') != NULL;
	snprintf(s->host_header, sizeof(s->host_header), "%s%s%s", v6 ? "[" : "", host,
	         v6 ? "]" : "");
	const struct http_route r = {host, s->setup->rewrite_host ? s->host_header : NULL,
	                             s->setup->basic_auth, s->setup->forwarded};
	http_filter_route(s->f, &r);
}

/* One feed of p[0..len) from an exact-size copy; returns the bytes taken. */
static size_t feed_once(struct session *s, const uint8_t *p, size_t len)
{
	uint8_t *b = malloc(len ? len : 1);
	size_t used = (size_t)-1;
	FUZZ_ASSERT(b != NULL, "out of memory");
	if (len)
		memcpy(b, p, len);
	int rc = http_filter_feed(s->f, len ? b : b + 1, len, &used);
	free(b);
	FUZZ_ASSERT(used <= len, "used %zu of %zu", used, len);
	FUZZ_ASSERT(rc == HTTP_FILTER_MORE || rc == HTTP_FILTER_ROUTE || rc == HTTP_FILTER_RAW ||
	                    (rc >= 400 && rc <= 599),
	            "rc %d", rc);
	FUZZ_ASSERT(rc != HTTP_FILTER_MORE || used == len, "MORE with %zu of %zu taken", used, len);
	FUZZ_ASSERT((rc >= 400) == (http_filter_reason(s->f)[0] != '\0'), "rc %d, reason '%s'", rc,
	            http_filter_reason(s->f));
	FUZZ_ASSERT(rc == HTTP_FILTER_MORE || !http_filter_idle(s->f), "idle at rc %d", rc);
	s->o.rc = rc;
	collect(s, false);
	return used;
}

/* Bytes p[0..len) arrive (after what is left of earlier ones, *pos..).
 * Feeds until all are taken, the filter refuses, or it routes. */
static void arrive(struct session *s, const uint8_t *in, size_t *pos, size_t avail)
{
	for (;;) {
		*pos += feed_once(s, in + *pos, avail - *pos);
		if (s->o.rc == HTTP_FILTER_ROUTE) {
			route(s);
			continue;
		}
		if (s->o.rc >= 400 || *pos == avail)
			return;
	}
}

/* The whole input through a filter, arriving in pieces: at cut, or in the
 * seed's chunks when chunks is set. */
static struct outcome run(const struct setup *setup, const uint8_t *in, size_t len, size_t cut,
                          struct fuzz_split *chunks)
{
	struct session s = {.setup = setup,
	                    .f = http_filter_new(&setup->lim, "2001:db8::7", "http"),
	                    .drain_half = chunks != NULL};
	size_t pos = 0, avail = 0;
	FUZZ_ASSERT(s.f != NULL, "http_filter_new failed");
	do {
		avail = chunks        ? avail + fuzz_split_next(chunks, len - avail)
		        : avail < cut ? cut
		                      : len;
		arrive(&s, in, &pos, avail);
	} while (avail < len && s.o.rc < 400);
	collect(&s, true);
	if (s.o.rc >= 400) {
		size_t used = 1, before = s.o.len;
		int again = http_filter_feed(s.f, in, len, &used);
		FUZZ_ASSERT(again == s.o.rc && used == 0, "refused %d, then %d taking %zu", s.o.rc,
		            again, used);
		collect(&s, true);
		FUZZ_ASSERT(s.o.len == before, "output after a refusal");
	}
	http_filter_free(s.f);
	return s.o;
}

static void same(const char *what, const struct outcome *a, const struct outcome *b)
{
	FUZZ_ASSERT(a->rc == b->rc, "%s: rc %d, whole %d", what, a->rc, b->rc);
	FUZZ_ASSERT(a->len == b->len && (a->len == 0 || memcmp(a->out, b->out, a->len) == 0),
	            "%s: %zu bytes of output, whole %zu, or other bytes", what, a->len, b->len);
}

/* The first head of the output (it starts it) has no bare CR or LF. */
static void first_head_crlf(const struct outcome *o)
{
	for (size_t i = 0; i + 3 < o->len; i++) {
		const uint8_t *p = o->out + i;
		FUZZ_ASSERT(p[0] != '\r' || p[1] == '\n', "bare CR at %zu of the first head", i);
		FUZZ_ASSERT(p[0] != '\n' || (i > 0 && p[-1] == '\r'),
		            "bare LF at %zu of the first head", i);
		if (memcmp(p, "\r\n\r\n", 4) == 0)
			return;
	}
}

/* The output again through a filter: it must take it as it is. */
static void output_refiltered(const struct outcome *o)
{
	/* Room for what forwarding adds: Host twice more, the rest is small. */
	const struct setup again = {{(size_t)8 * MAX_HEAD, 2 * MAX_HEADERS}, false, false, NULL};
	if (o->len == 0)
		return;
	struct outcome r = run(&again, o->out, o->len, 0, NULL);
	FUZZ_ASSERT(r.rc < 400, "the output refused with %d", r.rc);
	FUZZ_ASSERT(r.len == o->len && (r.len == 0 || memcmp(r.out, o->out, r.len) == 0),
	            "the output refiltered: %zu bytes of %zu, or other bytes", r.len, o->len);
	free(r.out);
}

/* out is in with some CRLF pairs (empty lines before requests) left out. */
static void input_less_empty_lines(const uint8_t *in, size_t len, const struct outcome *o)
{
	size_t i = 0, j = 0;
	while (j < o->len) {
		FUZZ_ASSERT(i < len, "%zu bytes of output past the input", o->len - j);
		if (in[i] == o->out[j]) {
			i++, j++;
			continue;
		}
		FUZZ_ASSERT(i + 1 < len && in[i] == '\r' && in[i + 1] == '\n',
		            "output byte %zu is not input byte %zu", j, i);
		i += 2;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const users[] = {"user:pass", NULL};
	const struct setup forwarding = {{MAX_HEAD, MAX_HEADERS}, true, true, NULL};
	const struct setup transparent = {{MAX_HEAD, MAX_HEADERS}, false, false, NULL};
	const struct setup authed = {{MAX_HEAD, MAX_HEADERS}, true, true, users};
	struct fuzz_in in = {data, size};
	uint8_t seed = fuzz_u8(&in);
	struct fuzz_split chunks;
	fuzz_split_init(&chunks, seed);

	struct outcome whole = run(&forwarding, in.p, in.len, 0, NULL);
	struct outcome cut = run(&forwarding, in.p, in.len, in.len * seed / 256, NULL);
	struct outcome pieces = run(&forwarding, in.p, in.len, 0, &chunks);
	same("split in two", &cut, &whole);
	same("in chunks", &pieces, &whole);
	first_head_crlf(&whole);
	output_refiltered(&whole);

	struct outcome plain = run(&transparent, in.p, in.len, 0, NULL);
	input_less_empty_lines(in.p, in.len, &plain);

	struct outcome auth = run(&authed, in.p, in.len, 0, NULL);
	FUZZ_ASSERT(auth.len <= whole.len &&
	                    (auth.len == 0 || memcmp(auth.out, whole.out, auth.len) == 0),
	            "with auth, not a prefix of the output without");
	FUZZ_ASSERT(auth.rc == whole.rc || auth.rc == 401 || auth.rc == 400,
	            "with auth rc %d, without %d", auth.rc, whole.rc);
	free(whole.out);
	free(cut.out);
	free(pieces.out);
	free(plain.out);
	free(auth.out);
	return 0;
}
