/*
 * Fuzz target: the PROXY protocol codec (core/proxyproto.c).
 *
 * Input: a split seed, then the bytes a connection starts with. They are
 * parsed whole, then as growing prefixes (every one up to 40 bytes, then at
 * the lengths the seed gives, one byte short of the header and the header
 * exactly), each from a heap copy of exactly its size. The header must come
 * out the same however the bytes arrive: each prefix needs more, with a
 * hint past it that never shrinks and never passes the header, until the
 * outcome is decided, and from then on every longer prefix gives the whole
 * input's outcome (the same header and *used, or the same error text). On
 * success *used <= len and the result is self-consistent; one byte short of
 * *used needs exactly *used. A proxied header re-encoded in its version
 * parses back to the same addresses (IPv4-mapped IPv6 as IPv4, and a mapped
 * address beside a native IPv6 one as no address, as proxyproto.h says); an
 * unproxied one re-encodes as UNKNOWN or LOCAL; and the re-encoding, parsed
 * and encoded again, gives the same bytes.
 */
#include <netinet/in.h>
#include <string.h>

#include "fuzz.h"
#include "proxyproto.h"

struct outcome {
	int rc;
	size_t used;
	struct mgrok_pp pp;
	char err[160];
};

static bool is_ip(int family) { return family == AF_INET || family == AF_INET6; }

/* mgrok_pp_parse on an exact-size copy of p[0..len) (len 0: a pointer to
 * the end of a block), and what must hold of any single result. */
static void parse(const uint8_t *p, size_t len, struct outcome *o)
{
	uint8_t *b = malloc(len ? len : 1);
	FUZZ_ASSERT(b != NULL, "out of memory");
	if (len)
		memcpy(b, p, len);
	memset(o, 0, sizeof(*o));
	o->rc = mgrok_pp_parse(len ? b : b + 1, len, &o->pp, &o->used, o->err, sizeof(o->err));
	free(b);
	FUZZ_ASSERT(o->rc >= -1 && o->rc <= 1, "rc %d", o->rc);
	FUZZ_ASSERT(memchr(o->err, '\0', sizeof(o->err)) != NULL, "unterminated error text");
	FUZZ_ASSERT((o->rc == -1) == (o->err[0] != '\0'), "rc %d with error text '%s'", o->rc,
	            o->err);
	if (o->rc == 0)
		FUZZ_ASSERT(o->used > len, "%zu bytes need more, hint %zu", len, o->used);
	if (o->rc != 1)
		return;
	const struct mgrok_pp *pp = &o->pp;
	FUZZ_ASSERT(o->used >= 1 && o->used <= len, "used %zu of %zu", o->used, len);
	FUZZ_ASSERT(pp->version == 1 || pp->version == 2, "version %d", pp->version);
	if (pp->version == 1)
		FUZZ_ASSERT(o->used <= MGROK_PP_V1_MAX && !pp->dgram, "v1: used %zu, dgram %d",
		            o->used, pp->dgram);
	else
		FUZZ_ASSERT(o->used >= MGROK_PP_V2_HEADER && o->used <= MGROK_PP_V2_MAX,
		            "v2: used %zu", o->used);
	if (pp->proxied) {
		FUZZ_ASSERT(is_ip(pp->src.ss_family) && pp->src.ss_family == pp->dst.ss_family,
		            "families %d and %d", pp->src.ss_family, pp->dst.ss_family);
		FUZZ_ASSERT(pp->len == (pp->src.ss_family == AF_INET ? sizeof(struct sockaddr_in)
		                                                     : sizeof(struct sockaddr_in6)),
		            "len %u for family %d", (unsigned)pp->len, pp->src.ss_family);
	} else {
		FUZZ_ASSERT(pp->len == 0 && pp->src.ss_family == 0 && pp->dst.ss_family == 0,
		            "no address, yet len %u, families %d and %d", (unsigned)pp->len,
		            pp->src.ss_family, pp->dst.ss_family);
	}
}

static bool same(const struct outcome *a, const struct outcome *b)
{
	if (a->rc != b->rc)
		return false;
	if (a->rc == -1)
		return strcmp(a->err, b->err) == 0;
	/* The whole struct, padding too: parse zeroes it first. */
	return a->rc == 0 || (a->used == b->used && memcmp(&a->pp, &b->pp, sizeof(a->pp)) == 0);
}

/* The first len bytes, against the whole input's outcome. */
static void prefix(const uint8_t *p, size_t len, const struct outcome *whole, size_t *hint,
                   bool *decided)
{
	struct outcome o;
	parse(p, len, &o);
	if (o.rc == 0) {
		FUZZ_ASSERT(!*decided, "decided earlier, needs more at %zu bytes", len);
		FUZZ_ASSERT(o.used >= *hint, "at %zu bytes the hint fell from %zu to %zu", len,
		            *hint, o.used);
		FUZZ_ASSERT(whole->rc != 1 || o.used <= whole->used,
		            "at %zu bytes, hint %zu past the %zu-byte header", len, o.used,
		            whole->used);
		*hint = o.used;
		return;
	}
	*decided = true;
	FUZZ_ASSERT(same(&o, whole),
	            "first %zu bytes: rc %d used %zu '%s'; whole: rc %d used %zu '%s'", len, o.rc,
	            o.used, o.err, whole->rc, whole->used, whole->err);
}

static void prefixes(const uint8_t *p, size_t len, uint8_t seed, const struct outcome *whole)
{
	struct fuzz_split split;
	size_t hint = 0;
	bool decided = false;
	fuzz_split_init(&split, seed);
	for (size_t k = 0;;) {
		prefix(p, k, whole, &hint, &decided);
		if (k == len)
			break;
		size_t step = k < 40 ? 1 : fuzz_split_next(&split, len - k);
		if (step < len / 256) /* a few hundred copies, however long the input */
			step = len / 256;
		k = step > len - k ? len : k + step;
	}
	if (whole->rc != 1)
		return;
	/* One byte short of the header: exactly the header's length needed. */
	struct outcome o;
	parse(p, whole->used - 1, &o);
	FUZZ_ASSERT(o.rc == 0 && o.used == whole->used,
	            "one byte short of %zu: rc %d, hint %zu ('%s')", whole->used, o.rc, o.used,
	            o.err);
	parse(p, whole->used, &o);
	FUZZ_ASSERT(same(&o, whole), "the header alone: rc %d, used %zu", o.rc, o.used);
}

/* ss as the encoder names it: IPv4-mapped IPv6 as IPv4. Returns its family. */
static int normalize(const struct sockaddr_storage *ss, struct sockaddr_storage *out)
{
	memset(out, 0, sizeof(*out));
	if (ss->ss_family == AF_INET) {
		memcpy(out, ss, sizeof(struct sockaddr_in));
		return AF_INET;
	}
	const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)ss;
	if (!IN6_IS_ADDR_V4MAPPED(&a6->sin6_addr)) {
		memcpy(out, ss, sizeof(struct sockaddr_in6));
		return AF_INET6;
	}
	struct sockaddr_in *a = (struct sockaddr_in *)out;
	a->sin_family = AF_INET;
	a->sin_port = a6->sin6_port;
	memcpy(&a->sin_addr, a6->sin6_addr.s6_addr + 12, 4);
	return AF_INET;
}

static size_t encode(const struct mgrok_pp *pp, uint8_t *out, size_t cap)
{
	const struct sockaddr *s = pp->proxied ? (const struct sockaddr *)&pp->src : NULL;
	const struct sockaddr *d = pp->proxied ? (const struct sockaddr *)&pp->dst : NULL;
	return mgrok_pp_encode(pp->version, s, d, pp->dgram, out, cap);
}

/* What the encoder promises always suffices. */
#define ENCODE_CAP MGROK_PP_ENCODED_MAX

/* An IPv4 address as IPv4-mapped IPv6, in place (IPv4 beside IPv6 is
 * encoded so). */
static void to_mapped(struct sockaddr_storage *ss)
{
	struct sockaddr_in a = *(struct sockaddr_in *)ss;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
	memset(a6, 0, sizeof(*a6));
	a6->sin6_family = AF_INET6;
	a6->sin6_port = a.sin_port;
	a6->sin6_addr.s6_addr[10] = a6->sin6_addr.s6_addr[11] = 0xff;
	memcpy(a6->sin6_addr.s6_addr + 12, &a.sin_addr, 4);
}

static void reencode(const struct mgrok_pp *pp)
{
	uint8_t out[ENCODE_CAP], again[ENCODE_CAP];
	size_t n = encode(pp, out, sizeof(out));
	FUZZ_ASSERT(n > 0 && (pp->version == 2 || n <= MGROK_PP_V1_MAX),
	            "v%d header re-encoded in %zu bytes", pp->version, n);
	struct outcome r;
	parse(out, n, &r);
	FUZZ_ASSERT(r.rc == 1 && r.used == n, "re-encoded v%d: rc %d, used %zu of %zu ('%s')",
	            pp->version, r.rc, r.used, n, r.err);
	FUZZ_ASSERT(r.pp.version == pp->version, "re-encoded v%d read as v%d", pp->version,
	            r.pp.version);
	struct sockaddr_storage s, d;
	int fs = pp->proxied ? normalize(&pp->src, &s) : 0;
	int fd = pp->proxied ? normalize(&pp->dst, &d) : 0;
	if (fs && fd && fs != fd)
		to_mapped(fs == AF_INET ? &s : &d);
	bool proxied = fs && fd;
	FUZZ_ASSERT(r.pp.proxied == proxied, "re-encoded: proxied %d, wanted %d", r.pp.proxied,
	            proxied);
	FUZZ_ASSERT(r.pp.dgram == (proxied && pp->dgram), "re-encoded: dgram %d, was %d",
	            r.pp.dgram, pp->dgram);
	if (proxied) {
		size_t alen = s.ss_family == AF_INET ? sizeof(struct sockaddr_in)
		                                     : sizeof(struct sockaddr_in6);
		FUZZ_ASSERT(memcmp(&r.pp.src, &s, alen) == 0 && memcmp(&r.pp.dst, &d, alen) == 0,
		            "re-encoded v%d header has other addresses", pp->version);
	}
	size_t m = encode(&r.pp, again, sizeof(again));
	FUZZ_ASSERT(m == n && memcmp(again, out, n) == 0,
	            "encoded again: %zu other bytes (first time %zu)", m, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = {data, size};
	uint8_t seed = fuzz_u8(&in);
	struct outcome whole;
	parse(in.p, in.len, &whole);
	prefixes(in.p, in.len, seed, &whole);
	if (whole.rc == -1) {
		/* A short error buffer: the same text, cut and terminated. */
		struct mgrok_pp pp;
		size_t used;
		char err[8];
		FUZZ_ASSERT(mgrok_pp_parse(in.p, in.len, &pp, &used, err, sizeof(err)) == -1 &&
		                    strncmp(err, whole.err, sizeof(err) - 1) == 0 &&
		                    strlen(err) < sizeof(err),
		            "with 8 bytes for '%s': '%s'", whole.err, err);
	}
	if (whole.rc == 1)
		reencode(&whole.pp);
	return 0;
}
