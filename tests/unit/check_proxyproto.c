/*
 * Unit tests for core/proxyproto.c, the PROXY protocol codec (HAProxy's
 * proxy-protocol.txt: 2.1 the v1 line, 2.2 the v2 binary header): golden
 * headers read and written, encode-parse round trips, every header as each
 * of its prefixes and with bytes after it, and malformed headers field by
 * field. Every parse reads an exactly sized heap copy of its input, so that
 * a read past len shows under ASan (configure --enable-sanitizers).
 */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "proxyproto.h"

/* A literal's bytes and length, NULs inside included. */
#define B(s) (const uint8_t *)(s), sizeof(s) - 1
/* The v2 signature (2.2), then a header's bytes 12-15 and the addresses. */
#define SIG "\r\n\r\n\0\r\nQUIT\n"
#define INET_ADDRS                                                                                 \
	"\xc0\x00\x02\x01"                                                                         \
	"\xc6\x33\x64\x02"                                                                         \
	"\xdc\x04"                                                                                 \
	"\x01\xbb"
#define INET6_ADDRS                                                                                \
	"\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x01"                                               \
	"\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x02"                                               \
	"\xdc\x04"                                                                                 \
	"\x01\xbb"
#define Z8 "\0\0\0\0\0\0\0\0"
#define Z106 Z8 Z8 Z8 Z8 Z8 Z8 Z8 Z8 Z8 Z8 Z8 Z8 Z8 "\0\0"
/* Two sun_path fields of 108 bytes each. */
#define UNIX_ADDRS "/a" Z106 "/b" Z106
#define FFFF6 "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"

/* ---- helpers -------------------------------------------------------------- */

struct result {
	int rc;
	size_t used;
	struct mgrok_pp pp;
	char err[160];
};

/* mgrok_pp_parse on a heap copy of exactly len bytes (len 0: a pointer to
 * the end of a 1-byte block, so that even reading p[0] is caught). */
static struct result parse_copy(const uint8_t *p, size_t len)
{
	struct result r;
	uint8_t *b = malloc(len ? len : 1);
	ck_assert_ptr_nonnull(b);
	if (len)
		memcpy(b, p, len);
	memset(&r, 0, sizeof(r));
	r.used = 12345;
	r.rc = mgrok_pp_parse(len ? b : b + 1, len, &r.pp, &r.used, r.err, sizeof(r.err));
	free(b);
	ck_assert_msg(memchr(r.err, '\0', sizeof(r.err)) != NULL, "unterminated error text");
	return r;
}

/* A sockaddr for ip ("a.b.c.d", an IPv6 address, "unix", or NULL for none). */
static const struct sockaddr *sa(const char *ip, unsigned port, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (!ip)
		return NULL;
	if (strcmp(ip, "unix") == 0) {
		struct sockaddr_un *u = (struct sockaddr_un *)ss;
		u->sun_family = AF_UNIX;
		strcpy(u->sun_path, "/tmp/x.sock");
	} else if (strchr(ip, ':')) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
		a->sin6_family = AF_INET6;
		a->sin6_port = htons((uint16_t)port);
		ck_assert_int_eq(inet_pton(AF_INET6, ip, &a->sin6_addr), 1);
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)ss;
		a->sin_family = AF_INET;
		a->sin_port = htons((uint16_t)port);
		ck_assert_int_eq(inet_pton(AF_INET, ip, &a->sin_addr), 1);
	}
	return (const struct sockaddr *)ss;
}

/* ss is ip:port of family, nothing else set. */
static void addr_is(const char *what, const struct sockaddr_storage *ss, int family, const char *ip,
                    unsigned port)
{
	struct sockaddr_storage want;
	sa(ip, port, &want);
	ck_assert_msg(ss->ss_family == family, "%s: family %d, wanted %d", what, ss->ss_family,
	              family);
	size_t n = family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
	ck_assert_msg(memcmp(ss, &want, n) == 0, "%s: not %s port %u", what, ip, port);
}

/*
 * A valid header p[0..len): whole, it parses using all len bytes; every
 * shorter prefix needs more, with a hint past what it has and not past the
 * header (one byte short: exactly the header); with bytes after it, the same
 * header, those bytes not counted. Returns what it parsed to.
 */
static struct mgrok_pp check_valid(const char *what, const uint8_t *p, size_t len)
{
	struct result r = parse_copy(p, len);
	ck_assert_msg(r.rc == 1, "%s: rc %d (%s)", what, r.rc, r.err);
	ck_assert_msg(r.used == len, "%s: used %zu of %zu", what, r.used, len);
	ck_assert_msg(r.pp.version == 1 || r.pp.version == 2, "%s: version %d", what, r.pp.version);
	for (size_t k = 0; k < len; k++) {
		struct result q = parse_copy(p, k);
		ck_assert_msg(q.rc == 0, "%s: first %zu of %zu bytes: rc %d (%s)", what, k, len,
		              q.rc, q.err);
		ck_assert_msg(q.used > k && q.used <= len, "%s: first %zu of %zu bytes: hint %zu",
		              what, k, len, q.used);
		if (k == len - 1)
			ck_assert_msg(q.used == len, "%s: one byte short, hint %zu", what, q.used);
	}
	static const struct {
		const uint8_t *p;
		size_t len;
	} tails[] = {
	        {B("\r\n")},
	        {B("PROXY UNKNOWN\r\n")},
	        {B("\0\xff")},
	        {B("GET / HTTP/1.1\r\nHost: x\r\n\r\n")},
	        {B(SIG "\x21\x11\x00\x0c" INET_ADDRS)},
	        {B("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")},
	};
	for (size_t i = 0; i < sizeof(tails) / sizeof(tails[0]); i++) {
		size_t n = len + tails[i].len;
		uint8_t *b = malloc(n);
		memcpy(b, p, len);
		memcpy(b + len, tails[i].p, tails[i].len);
		struct result q = parse_copy(b, n);
		free(b);
		ck_assert_msg(q.rc == 1 && q.used == len, "%s + tail %zu: rc %d, used %zu", what, i,
		              q.rc, q.used);
		ck_assert_msg(memcmp(&q.pp, &r.pp, sizeof(r.pp)) == 0,
		              "%s + tail %zu: another header", what, i);
	}
	/* A long tail with no line end: a v1 line is found before the limit. */
	uint8_t *b = malloc(len + 300);
	memcpy(b, p, len);
	memset(b + len, 'x', 300);
	struct result q = parse_copy(b, len + 300);
	free(b);
	ck_assert_msg(q.rc == 1 && q.used == len, "%s + 300 x: rc %d, used %zu (%s)", what, q.rc,
	              q.used, q.err);
	return r.pp;
}

/* ---- golden headers ------------------------------------------------------- */

struct golden {
	const char *what;
	const uint8_t *p;
	size_t len;
	const char *src; /* when proxied */
	unsigned sport;
	const char *dst;
	unsigned dport;
	int version;
	int family; /* of src and dst, when proxied */
	bool proxied, dgram;
	bool encodes; /* mgrok_pp_encode writes exactly these bytes */
};

/* what, bytes, src, sport, dst, dport, version, family, proxied, dgram, encodes */
static const struct golden goldens[] = {
        {"v1 TCP4", B("PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n"), "192.0.2.1", 56324,
         "198.51.100.2", 443, 1, AF_INET, true, false, true},
        {"v1 TCP4 longest", B("PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n"),
         "255.255.255.255", 65535, "255.255.255.255", 65535, 1, AF_INET, true, false, true},
        {"v1 TCP4 port 0", B("PROXY TCP4 0.0.0.0 127.0.0.1 0 1\r\n"), "0.0.0.0", 0, "127.0.0.1", 1,
         1, AF_INET, true, false, true},
        {"v1 TCP6", B("PROXY TCP6 2001:db8::1 2001:db8::2 56324 443\r\n"), "2001:db8::1", 56324,
         "2001:db8::2", 443, 1, AF_INET6, true, false, true},
        {"v1 TCP6 longest (104 bytes)", B("PROXY TCP6 " FFFF6 " " FFFF6 " 65535 65535\r\n"), FFFF6,
         65535, FFFF6, 65535, 1, AF_INET6, true, false, true},
        {"v1 TCP6 uncompressed", B("PROXY TCP6 2001:0db8:0:0:0:0:0:0001 ::1 1 2\r\n"),
         "2001:db8::1", 1, "::1", 2, 1, AF_INET6, true, false, false},
        /* Read as written: a v4-mapped address in a TCP6 line stays IPv6. */
        {"v1 TCP6 v4-mapped", B("PROXY TCP6 ::ffff:192.0.2.1 ::1 1 2\r\n"), "::ffff:192.0.2.1", 1,
         "::1", 2, 1, AF_INET6, true, false, false},
        {"v1 UNKNOWN", B("PROXY UNKNOWN\r\n"), NULL, 0, NULL, 0, 1, 0, false, false, true},
        {"v1 UNKNOWN with fields (107 bytes, 2.1's longest)",
         B("PROXY UNKNOWN " FFFF6 " " FFFF6 " 65535 65535\r\n"), NULL, 0, NULL, 0, 1, 0, false,
         false, false},
        {"v1 UNKNOWN with nonsense", B("PROXY UNKNOWN not even addresses 99999 -1 x y z\r\n"), NULL,
         0, NULL, 0, 1, 0, false, false, false},
        {"v2 INET", B(SIG "\x21\x11\x00\x0c" INET_ADDRS), "192.0.2.1", 56324, "198.51.100.2", 443,
         2, AF_INET, true, false, true},
        {"v2 INET DGRAM", B(SIG "\x21\x12\x00\x0c" INET_ADDRS), "192.0.2.1", 56324, "198.51.100.2",
         443, 2, AF_INET, true, true, true},
        {"v2 INET transport UNSPEC", B(SIG "\x21\x10\x00\x0c" INET_ADDRS), "192.0.2.1", 56324,
         "198.51.100.2", 443, 2, AF_INET, true, false, false},
        {"v2 INET6", B(SIG "\x21\x21\x00\x24" INET6_ADDRS), "2001:db8::1", 56324, "2001:db8::2",
         443, 2, AF_INET6, true, false, true},
        {"v2 INET6 DGRAM", B(SIG "\x21\x22\x00\x24" INET6_ADDRS), "2001:db8::1", 56324,
         "2001:db8::2", 443, 2, AF_INET6, true, true, true},
        {"v2 LOCAL", B(SIG "\x20\x00\x00\x00"), NULL, 0, NULL, 0, 2, 0, false, false, true},
        /* LOCAL: the balancer's own connection, whatever addresses it names. */
        {"v2 LOCAL with INET addresses", B(SIG "\x20\x11\x00\x0c" INET_ADDRS), NULL, 0, NULL, 0, 2,
         0, false, false, false},
        {"v2 LOCAL with INET6 addresses", B(SIG "\x20\x21\x00\x24" INET6_ADDRS), NULL, 0, NULL, 0,
         2, 0, false, false, false},
        /* LOCAL: the block is to be ignored, family and all (2.2). */
        {"v2 LOCAL, a family it does not know", B(SIG "\x20\x40\x00\x00"), NULL, 0, NULL, 0, 2, 0,
         false, false, false},
        {"v2 LOCAL, INET in 4 bytes", B(SIG "\x20\x11\x00\x04\0\0\0\0"), NULL, 0, NULL, 0, 2, 0,
         false, false, false},
        {"v2 LOCAL, a TLV cut short", B(SIG "\x20\x00\x00\x02\x04\x00"), NULL, 0, NULL, 0, 2, 0,
         false, false, false},
        {"v2 PROXY UNSPEC", B(SIG "\x21\x00\x00\x00"), NULL, 0, NULL, 0, 2, 0, false, false, false},
        {"v2 PROXY UNSPEC with a TLV",
         B(SIG "\x21\x00\x00\x04"
               "\x04\x00\x01z"),
         NULL, 0, NULL, 0, 2, 0, false, false, false},
        {"v2 UNIX STREAM", B(SIG "\x21\x31\x00\xd8" UNIX_ADDRS), NULL, 0, NULL, 0, 2, 0, false,
         false, false},
        {"v2 UNIX DGRAM", B(SIG "\x21\x32\x00\xd8" UNIX_ADDRS), NULL, 0, NULL, 0, 2, 0, false, true,
         false},
        {"v2 INET with TLVs",
         B(SIG "\x21\x11\x00\x1a" INET_ADDRS "\x01\x00\x02h2"
               "\x04\x00\x03\0\0\0"
               "\x05\x00\x00"),
         "192.0.2.1", 56324, "198.51.100.2", 443, 2, AF_INET, true, false, false},
        {"v2 INET6 with a CRC32C TLV", B(SIG "\x21\x21\x00\x2b" INET6_ADDRS "\x03\x00\x04\1\2\3\4"),
         "2001:db8::1", 56324, "2001:db8::2", 443, 2, AF_INET6, true, false, false},
        {"v2 UNIX with a TLV", B(SIG "\x21\x31\x00\xdb" UNIX_ADDRS "\xe0\x00\x00"), NULL, 0, NULL,
         0, 2, 0, false, false, false},
};

#define NGOLDEN (sizeof(goldens) / sizeof(goldens[0]))

START_TEST(test_golden)
{
	const struct golden *g = &goldens[_i];
	struct mgrok_pp pp = check_valid(g->what, g->p, g->len);
	ck_assert_int_eq(pp.version, g->version);
	ck_assert_msg(pp.proxied == g->proxied, "%s: proxied %d", g->what, pp.proxied);
	ck_assert_msg(pp.dgram == g->dgram, "%s: dgram %d", g->what, pp.dgram);
	if (g->proxied) {
		addr_is(g->what, &pp.src, g->family, g->src, g->sport);
		addr_is(g->what, &pp.dst, g->family, g->dst, g->dport);
		ck_assert_uint_eq(pp.len, g->family == AF_INET ? sizeof(struct sockaddr_in)
		                                               : sizeof(struct sockaddr_in6));
	} else {
		ck_assert_uint_eq(pp.len, 0);
		ck_assert_int_eq(pp.src.ss_family, AF_UNSPEC);
		ck_assert_int_eq(pp.dst.ss_family, AF_UNSPEC);
	}
	if (!g->encodes)
		return;
	struct sockaddr_storage s, d;
	uint8_t out[256];
	size_t n = mgrok_pp_encode(g->version, sa(g->src, g->sport, &s), sa(g->dst, g->dport, &d),
	                           g->dgram, out, sizeof(out));
	ck_assert_msg(n == g->len && memcmp(out, g->p, n) == 0, "%s: encoded as %zu other bytes",
	              g->what, n);
}
END_TEST

/* ---- round trips ---------------------------------------------------------- */

struct trip {
	const char *what;
	const char *src; /* NULL: none; "unix": AF_UNIX */
	unsigned sport;
	const char *dst;
	unsigned dport;
	int family;              /* what the header names; 0: UNKNOWN or LOCAL */
	const char *psrc, *pdst; /* as parsed back, when not as given */
};

static const struct trip trips[] = {
        {"v4", "192.0.2.1", 56324, "198.51.100.2", 443, AF_INET, NULL, NULL},
        {"v4 zero", "0.0.0.0", 0, "0.0.0.0", 0, AF_INET, NULL, NULL},
        {"v4 longest", "255.255.255.255", 65535, "255.255.255.255", 65535, AF_INET, NULL, NULL},
        {"v6", "2001:db8::1", 56324, "2001:db8::2", 443, AF_INET6, NULL, NULL},
        {"v6 any and loopback", "::", 0, "::1", 65535, AF_INET6, NULL, NULL},
        {"v6 longest", FFFF6, 65535, FFFF6, 65535, AF_INET6, NULL, NULL},
        {"v6 link-local", "fe80::1:2:3:4", 1, "2001:db8:0:0:1:0:0:1", 2, AF_INET6, NULL, NULL},
        {"v6 v4-compatible", "::102:304", 5, "::1.2.3.5", 6, AF_INET6, NULL, NULL},
        {"v4-mapped", "::ffff:192.0.2.1", 56324, "::ffff:198.51.100.2", 443, AF_INET, "192.0.2.1",
         "198.51.100.2"},
        {"v4-mapped and v4", "::ffff:10.0.0.1", 1, "10.0.0.2", 2, AF_INET, "10.0.0.1", NULL},
        {"v4 and v4-mapped", "10.0.0.1", 1, "::ffff:10.0.0.2", 2, AF_INET, NULL, "10.0.0.2"},
        /* IPv4 beside IPv6 goes as IPv6, the IPv4 one mapped: nothing lost. */
        {"v4 and v6", "192.0.2.1", 1, "2001:db8::2", 2, AF_INET6, "::ffff:192.0.2.1", NULL},
        {"v6 and v4", "2001:db8::1", 1, "192.0.2.2", 2, AF_INET6, NULL, "::ffff:192.0.2.2"},
        {"v4-mapped and v6", "::ffff:192.0.2.1", 1, "2001:db8::2", 2, AF_INET6, NULL, NULL},
        {"no source", NULL, 0, "192.0.2.2", 2, 0, NULL, NULL},
        {"no destination", "192.0.2.1", 1, NULL, 0, 0, NULL, NULL},
        {"neither", NULL, 0, NULL, 0, 0, NULL, NULL},
        {"unix", "unix", 0, "unix", 0, 0, NULL, NULL},
};

#define NTRIPS (sizeof(trips) / sizeof(trips[0]))

/* Every pair in both versions, as TCP and as UDP: encoded, parsed back
 * whole and by prefixes, and refused by every smaller buffer. */
START_TEST(test_round_trip)
{
	const struct trip *t = &trips[_i];
	struct sockaddr_storage s, d;
	const struct sockaddr *src = sa(t->src, t->sport, &s), *dst = sa(t->dst, t->dport, &d);
	for (int version = 1; version <= 2; version++) {
		for (int dgram = 0; dgram <= 1; dgram++) {
			char what[160];
			snprintf(what, sizeof(what), "%s, v%d%s", t->what, version,
			         dgram ? ", dgram" : "");
			uint8_t out[256];
			size_t n = mgrok_pp_encode(version, src, dst, dgram, out, sizeof(out));
			ck_assert_msg(n > 0, "%s: not encoded", what);
			ck_assert_msg(version == 2 || n <= MGROK_PP_V1_MAX, "%s: %zu bytes", what,
			              n);
			struct mgrok_pp pp = check_valid(what, out, n);
			ck_assert_int_eq(pp.version, version);
			ck_assert_msg(pp.proxied == (t->family != 0), "%s: proxied %d", what,
			              pp.proxied);
			ck_assert_msg(pp.dgram == (version == 2 && t->family && dgram),
			              "%s: dgram %d", what, pp.dgram);
			if (t->family) {
				addr_is(what, &pp.src, t->family, t->psrc ? t->psrc : t->src,
				        t->sport);
				addr_is(what, &pp.dst, t->family, t->pdst ? t->pdst : t->dst,
				        t->dport);
			}
			/* Too small a buffer: nothing, and no byte written past it. */
			for (size_t cap = 0; cap < n; cap++) {
				uint8_t *b = malloc(cap ? cap : 1);
				ck_assert_msg(mgrok_pp_encode(version, src, dst, dgram, b, cap) ==
				                      0,
				              "%s: encoded into %zu bytes", what, cap);
				free(b);
			}
			/* v1 is written with snprintf and needs room for its NUL
			 * (test_bug_v1_exact_buffer); v2 fits exactly. */
			size_t cap = version == 1 ? n + 1 : n;
			uint8_t *b = malloc(cap);
			ck_assert_uint_eq(mgrok_pp_encode(version, src, dst, dgram, b, cap), n);
			ck_assert_msg(memcmp(b, out, n) == 0, "%s: other bytes", what);
			free(b);
		}
	}
}
END_TEST

START_TEST(test_encode_no_buffer)
{
	struct sockaddr_storage s;
	const struct sockaddr *a = sa("192.0.2.1", 1, &s);
	ck_assert_uint_eq(mgrok_pp_encode(1, a, a, false, NULL, 0), 0);
	ck_assert_uint_eq(mgrok_pp_encode(2, a, a, false, NULL, 0), 0);
	ck_assert_uint_eq(mgrok_pp_encode(1, NULL, NULL, false, NULL, 0), 0);
	ck_assert_uint_eq(mgrok_pp_encode(2, NULL, NULL, false, NULL, 0), 0);
}
END_TEST

/* ---- refusals ------------------------------------------------------------- */

/* prefix, then fill bytes of 'a', then suffix: long lines stay readable. */
struct refusal {
	const char *what;
	const uint8_t *prefix;
	size_t prefix_len;
	size_t fill;
	const uint8_t *suffix;
	size_t suffix_len;
	size_t at;       /* refused once this many bytes are in, if not before; 0: all */
	const char *why; /* in the error text; NULL: any reason */
};

#define TCP4 "PROXY TCP4 "
#define V1_AGAIN "no PROXY protocol header"
#define BAD4 "a bad TCP4 address or port"
#define BAD6 "a bad TCP6 address or port"
#define V2_INET SIG "\x21\x11\x00\x0c"

static const struct refusal refusals[] = {
        /* Neither signature: refused at the first byte. */
        {"X", B("X"), 0, B(""), 1, V1_AGAIN},
        {"lowercase proxy", B("proxy TCP4 192.0.2.1 198.51.100.2 1 2\r\n"), 0, B(""), 1, V1_AGAIN},
        {"HTTP request", B("GET / HTTP/1.1\r\n\r\n"), 0, B(""), 1, V1_AGAIN},
        {"TLS ClientHello", B("\x16\x03\x01\x02\x00\x01"), 0, B(""), 1, V1_AGAIN},
        {"NUL", B("\0PROXY "), 0, B(""), 1, V1_AGAIN},
        {"LF", B("\n\r\n\r\n"), 0, B(""), 1, V1_AGAIN},
        {"space before PROXY", B(" PROXY UNKNOWN\r\n"), 0, B(""), 1, V1_AGAIN},
        /* A signature going wrong: refused at that byte. */
        {"PROXX", B("PROXX UNKNOWN\r\n"), 0, B(""), 5, V1_AGAIN},
        {"PROXY without its space", B("PROXY\r\n"), 0, B(""), 6, V1_AGAIN},
        {"PROXY then a tab", B("PROXY\tUNKNOWN\r\n"), 0, B(""), 6, V1_AGAIN},
        {"v2 signature, QUIT\\r", B("\r\n\r\n\0\r\nQUIT\r\x21\x11\x00\x0c"), 0, B(""), 12,
         V1_AGAIN},
        {"v2 signature, CRLF CRLF CR", B("\r\n\r\n\r\n"), 0, B(""), 5, V1_AGAIN},
        /* v1: the line end. */
        {"v1 no line end in 107 bytes", B("PROXY UNKNOWN "), 120, B(""), MGROK_PP_V1_MAX,
         "no line end within 107 bytes"},
        {"v1 a 108-byte UNKNOWN line", B("PROXY UNKNOWN "), 92, B("\r\n"), MGROK_PP_V1_MAX,
         "no line end within 107 bytes"},
        {"v1 a 108-byte TCP6 line", B("PROXY TCP6 " FFFF6 " " FFFF6 " 65535 65535"), 4, B("\r\n"),
         MGROK_PP_V1_MAX, "no line end"},
        {"v1 bare LF", B(TCP4 "192.0.2.1 198.51.100.2 1 2\n"), 0, B(""), 0, "CRLF"},
        {"v1 UNKNOWN, bare LF", B("PROXY UNKNOWN\n"), 0, B(""), 0, "CRLF"},
        {"v1 only a LF", B("PROXY \n"), 0, B(""), 0, "CRLF"},
        {"v1 LF CR", B("PROXY UNKNOWN\n\r"), 0, B(""), 14, "CRLF"},
        /* v1: control and non-ASCII bytes. */
        {"v1 NUL",
         B(TCP4 "192.0.2.1\0"
                "198.51.100.2 1 2\r\n"),
         0, B(""), 0, "control byte"},
        {"v1 NUL in UNKNOWN", B("PROXY UNKNOWN\0\r\n"), 0, B(""), 0, "control byte"},
        {"v1 tab", B(TCP4 "192.0.2.1\t198.51.100.2 1 2\r\n"), 0, B(""), 0, "control byte"},
        {"v1 bare CR", B(TCP4 "192.0.2.1 198.51.100.2 1 2\r\r\n"), 0, B(""), 0, "control byte"},
        {"v1 CR inside", B("PROXY UNKNOWN\r x\r\n"), 0, B(""), 0, "control byte"},
        {"v1 DEL", B(TCP4 "192.0.2.1 198.51.100.2 1 2\x7f\r\n"), 0, B(""), 0, "control byte"},
        {"v1 0x80", B(TCP4 "192.0.2.1 198.51.100.2 1 \x80\r\n"), 0, B(""), 0, "control byte"},
        {"v1 0xff", B("PROXY UNKNOWN \xff\r\n"), 0, B(""), 0, "control byte"},
        /* v1: ports. */
        {"v1 port 65536", B(TCP4 "192.0.2.1 198.51.100.2 65536 443\r\n"), 0, B(""), 0, BAD4},
        {"v1 port 99999", B(TCP4 "192.0.2.1 198.51.100.2 1 99999\r\n"), 0, B(""), 0, BAD4},
        {"v1 port of 6 digits", B(TCP4 "192.0.2.1 198.51.100.2 100000 1\r\n"), 0, B(""), 0, BAD4},
        {"v1 port 065535", B(TCP4 "192.0.2.1 198.51.100.2 065535 1\r\n"), 0, B(""), 0, BAD4},
        {"v1 port 01", B(TCP4 "192.0.2.1 198.51.100.2 1 01\r\n"), 0, B(""), 0, BAD4},
        {"v1 port 00", B("PROXY TCP6 ::1 ::2 00 1\r\n"), 0, B(""), 0, BAD6},
        {"v1 port +1", B(TCP4 "192.0.2.1 198.51.100.2 +1 2\r\n"), 0, B(""), 0, BAD4},
        {"v1 port -1", B(TCP4 "192.0.2.1 198.51.100.2 1 -1\r\n"), 0, B(""), 0, BAD4},
        {"v1 port 0x50", B(TCP4 "192.0.2.1 198.51.100.2 0x50 1\r\n"), 0, B(""), 0, BAD4},
        {"v1 port 1a", B(TCP4 "192.0.2.1 198.51.100.2 1a 1\r\n"), 0, B(""), 0, BAD4},
        {"v1 port 1.0", B(TCP4 "192.0.2.1 198.51.100.2 1.0 1\r\n"), 0, B(""), 0, BAD4},
        {"v1 port empty", B(TCP4 "192.0.2.1 198.51.100.2  443\r\n"), 0, B(""), 0, NULL},
        {"v1 ports missing", B(TCP4 "192.0.2.1 198.51.100.2\r\n"), 0, B(""), 0, NULL},
        /* v1: addresses. */
        {"v1 IPv4 of 3 parts", B(TCP4 "192.0.2 198.51.100.2 1 2\r\n"), 0, B(""), 0, BAD4},
        {"v1 IPv4 of 5 parts", B(TCP4 "192.0.2.1.5 198.51.100.2 1 2\r\n"), 0, B(""), 0, BAD4},
        {"v1 IPv4 part 256", B(TCP4 "192.0.2.1 198.51.100.256 1 2\r\n"), 0, B(""), 0, BAD4},
        {"v1 IPv4 leading zero", B(TCP4 "192.0.2.01 198.51.100.2 1 2\r\n"), 0, B(""), 0, BAD4},
        {"v1 IPv4 as a number", B(TCP4 "3221225985 198.51.100.2 1 2\r\n"), 0, B(""), 0, BAD4},
        {"v1 IPv4 with a prefix", B(TCP4 "192.0.2.1/24 198.51.100.2 1 2\r\n"), 0, B(""), 0, BAD4},
        {"v1 IPv4 a name", B(TCP4 "localhost 198.51.100.2 1 2\r\n"), 0, B(""), 0, BAD4},
        {"v1 IPv6 in TCP4", B(TCP4 "::1 198.51.100.2 1 2\r\n"), 0, B(""), 0, BAD4},
        {"v1 IPv4 in TCP6", B("PROXY TCP6 2001:db8::1 192.0.2.1 1 2\r\n"), 0, B(""), 0, BAD6},
        {"v1 IPv6 bad digit", B("PROXY TCP6 2001:db8::g ::1 1 2\r\n"), 0, B(""), 0, BAD6},
        {"v1 IPv6 two ::", B("PROXY TCP6 2001::db8::1 ::1 1 2\r\n"), 0, B(""), 0, BAD6},
        {"v1 IPv6 9 groups", B("PROXY TCP6 1:2:3:4:5:6:7:8:9 ::1 1 2\r\n"), 0, B(""), 0, BAD6},
        {"v1 IPv6 zone", B("PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n"), 0, B(""), 0, BAD6},
        {"v1 IPv6 in brackets", B("PROXY TCP6 [::1] ::1 1 2\r\n"), 0, B(""), 0, BAD6},
        /* v1: fields. */
        {"v1 no protocol", B("PROXY \r\n"), 0, B(""), 0, "protocol"},
        {"v1 TCP4 alone", B("PROXY TCP4\r\n"), 0, B(""), 0, "expected 6 fields, got 2"},
        {"v1 5 fields", B(TCP4 "192.0.2.1 198.51.100.2 443\r\n"), 0, B(""), 0,
         "expected 6 fields, got 5"},
        {"v1 7 fields", B(TCP4 "192.0.2.1 198.51.100.2 1 2 3\r\n"), 0, B(""), 0,
         "expected 6 fields, got 7"},
        {"v1 many fields", B(TCP4 "1 2 3 4 5 6 7 8 9 10\r\n"), 0, B(""), 0, "expected 6 fields"},
        {"v1 TCP5", B("PROXY TCP5 192.0.2.1 198.51.100.2 1 2\r\n"), 0, B(""), 0,
         "protocol is not TCP4, TCP6 or UNKNOWN"},
        {"v1 UDP4", B("PROXY UDP4 192.0.2.1 198.51.100.2 1 2\r\n"), 0, B(""), 0, "protocol"},
        {"v1 tcp4", B("PROXY tcp4 192.0.2.1 198.51.100.2 1 2\r\n"), 0, B(""), 0, "protocol"},
        {"v1 UNKNOWNX", B("PROXY UNKNOWNX\r\n"), 0, B(""), 0, "protocol"},
        {"v1 unknown", B("PROXY unknown\r\n"), 0, B(""), 0, "protocol"},
        /* v2: the version and command byte, at byte 13. */
        {"v2 version 1", B(SIG "\x11\x11\x00\x0c" INET_ADDRS), 0, B(""), 13, "version 1"},
        {"v2 version 0", B(SIG "\x01\x11\x00\x0c" INET_ADDRS), 0, B(""), 13, "version 0"},
        {"v2 version 3", B(SIG "\x31\x11\x00\x0c" INET_ADDRS), 0, B(""), 13, "version 3"},
        {"v2 version 15", B(SIG "\xf1\x11\x00\x0c" INET_ADDRS), 0, B(""), 13, "version 15"},
        {"v2 command 2", B(SIG "\x22\x11\x00\x0c" INET_ADDRS), 0, B(""), 13, "command 2"},
        {"v2 command 15", B(SIG "\x2f\x11\x00\x0c" INET_ADDRS), 0, B(""), 13, "command 15"},
        /* v2: the family and transport byte, at byte 14. */
        {"v2 family 4", B(SIG "\x21\x41\x00\x0c" INET_ADDRS), 0, B(""), 14,
         "family and transport 0x41"},
        {"v2 family 15", B(SIG "\x21\xf1\x00\x0c" INET_ADDRS), 0, B(""), 14, "0xf1"},
        {"v2 transport 3", B(SIG "\x21\x13\x00\x0c" INET_ADDRS), 0, B(""), 14, "0x13"},
        {"v2 transport 15", B(SIG "\x21\x2f\x00\x24" INET6_ADDRS), 0, B(""), 14, "0x2f"},
        /* v2: a length too short for the family, at byte 16. */
        {"v2 INET in 11 bytes", B(SIG "\x21\x11\x00\x0b" INET_ADDRS), 0, B(""), 16,
         "11 bytes cannot hold the addresses"},
        {"v2 INET in 0 bytes", B(SIG "\x21\x11\x00\x00"), 0, B(""), 16, "0 bytes cannot"},
        {"v2 INET6 in 35 bytes", B(SIG "\x21\x21\x00\x23" INET6_ADDRS), 0, B(""), 16,
         "35 bytes cannot"},
        {"v2 INET6 in INET's 12", B(SIG "\x21\x21\x00\x0c" INET_ADDRS), 0, B(""), 16,
         "12 bytes cannot"},
        {"v2 UNIX in 215 bytes", B(SIG "\x21\x31\x00\xd7" UNIX_ADDRS), 0, B(""), 16,
         "215 bytes cannot"},
        /* v2: TLVs that do not fill the rest exactly. */
        {"v2 a TLV of 1 byte", B(SIG "\x21\x11\x00\x0d" INET_ADDRS "\x04"), 0, B(""), 0,
         "a TLV cut short"},
        {"v2 a TLV of 2 bytes", B(SIG "\x21\x11\x00\x0e" INET_ADDRS "\x04\x00"), 0, B(""), 0,
         "a TLV cut short"},
        {"v2 a TLV one byte over", B(SIG "\x21\x11\x00\x11" INET_ADDRS "\x04\x00\x03zz"), 0, B(""),
         0, "a TLV longer than the header"},
        {"v2 a TLV of 65535", B(SIG "\x21\x11\x00\x10" INET_ADDRS "\x04\xff\xffz"), 0, B(""), 0,
         "a TLV longer"},
        {"v2 the second TLV over",
         B(SIG "\x21\x11\x00\x14" INET_ADDRS "\x04\x00\x01z\x04\x00\x02z"), 0, B(""), 0,
         "a TLV longer"},
        {"v2 the second TLV short", B(SIG "\x21\x11\x00\x11" INET_ADDRS "\x04\x00\x01z\x04"), 0,
         B(""), 0, "a TLV cut short"},
        {"v2 UNSPEC, addresses as TLVs", B(SIG "\x21\x00\x00\x0c" INET_ADDRS), 0, B(""), 0,
         "a TLV longer"},
        {"v2 UNIX, a TLV over", B(SIG "\x21\x31\x00\xdb" UNIX_ADDRS "\xe0\x00\x01"), 0, B(""), 0,
         "a TLV longer"},
};

#define NREFUSALS (sizeof(refusals) / sizeof(refusals[0]))

/* Refused whole, and as the bytes come in: needing more until it is
 * refused, no later than at, and then refused for the same reason however
 * many bytes follow. Never accepted. */
START_TEST(test_refused)
{
	const struct refusal *t = &refusals[_i];
	size_t n = t->prefix_len + t->fill + t->suffix_len;
	uint8_t *p = malloc(n);
	memcpy(p, t->prefix, t->prefix_len);
	memset(p + t->prefix_len, 'a', t->fill);
	memcpy(p + t->prefix_len + t->fill, t->suffix, t->suffix_len);
	size_t at = t->at ? t->at : n, first = 0;
	char err[sizeof(((struct result *)0)->err)] = "";
	for (size_t k = 0; k <= n; k++) {
		struct result r = parse_copy(p, k);
		ck_assert_msg(r.rc == 0 || r.rc == -1, "%s: first %zu of %zu bytes: rc %d", t->what,
		              k, n, r.rc);
		if (r.rc == 0) {
			ck_assert_msg(!err[0], "%s: refused at %zu bytes, not at %zu", t->what,
			              first, k);
			ck_assert_msg(r.used > k, "%s: first %zu bytes: hint %zu", t->what, k,
			              r.used);
			continue;
		}
		ck_assert_msg(r.err[0], "%s: refused at %zu bytes with no reason", t->what, k);
		if (!err[0]) {
			first = k;
			memcpy(err, r.err, sizeof(err));
		}
		ck_assert_msg(strcmp(r.err, err) == 0, "%s: \"%s\" at %zu bytes, \"%s\" at %zu",
		              t->what, err, first, r.err, k);
	}
	free(p);
	ck_assert_msg(err[0], "%s: never refused", t->what);
	ck_assert_msg(first <= at, "%s: refused only at %zu bytes, wanted %zu", t->what, first, at);
	ck_assert_msg(!t->why || strstr(err, t->why), "%s: \"%s\", wanted \"%s\"", t->what, err,
	              t->why);
}
END_TEST

/* Only 'P' and CR can start a header; anything else fails at once. */
START_TEST(test_first_byte)
{
	for (int c = 0; c < 256; c++) {
		uint8_t b = (uint8_t)c;
		struct result r = parse_copy(&b, 1);
		if (c == 'P' || c == '\r') {
			ck_assert_msg(r.rc == 0, "0x%02x: rc %d", c, r.rc);
			ck_assert_uint_eq(r.used, c == 'P' ? 6 : 12);
		} else {
			ck_assert_msg(r.rc == -1, "0x%02x: rc %d", c, r.rc);
			ck_assert_str_eq(r.err, "no PROXY protocol header");
		}
	}
	struct result r = parse_copy(NULL, 0);
	ck_assert_int_eq(r.rc, 0);
	ck_assert_uint_ge(r.used, 1);
}
END_TEST

/* Either signature with any one byte changed fails at that byte. */
START_TEST(test_signature_each_byte)
{
	static const uint8_t v1[] = "PROXY UNKNOWN\r\n";
	static const uint8_t v2[] = SIG "\x20\x00\x00\x00";
	for (int version = 1; version <= 2; version++) {
		const uint8_t *h = version == 1 ? v1 : v2;
		size_t len = version == 1 ? 15 : 16, sig = version == 1 ? 6 : 12;
		uint8_t b[16];
		for (size_t i = 0; i < sig; i++) {
			memcpy(b, h, len);
			b[i] ^= 0x80;
			for (size_t k = 0; k <= len; k++) {
				struct result r = parse_copy(b, k);
				ck_assert_msg(r.rc == (k <= i ? 0 : -1),
				              "v%d, byte %zu, %zu bytes: rc %d", version, i, k,
				              r.rc);
			}
		}
	}
}
END_TEST

/* Error text: cut to errlen and terminated; no buffer at all is fine. */
START_TEST(test_error_buffer)
{
	struct mgrok_pp pp;
	size_t used;
	char err[8];
	memset(err, 'z', sizeof(err));
	ck_assert_int_eq(mgrok_pp_parse(B("XY"), &pp, &used, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "no PROX");
	ck_assert_int_eq(mgrok_pp_parse(B("XY"), &pp, &used, NULL, 0), -1);
	ck_assert_int_eq(mgrok_pp_parse(B("PROXY \r\n"), &pp, &used, NULL, 0), -1);
	ck_assert_int_eq(mgrok_pp_parse(B(SIG "\x31"), &pp, &used, NULL, 0), -1);
}
END_TEST

/* A header followed at once by another: the first is read alone. */
START_TEST(test_back_to_back)
{
	static const uint8_t two[] = "PROXY UNKNOWN\r\n" SIG "\x20\x00\x00\x00";
	struct result r = parse_copy(two, sizeof(two) - 1);
	ck_assert_int_eq(r.rc, 1);
	ck_assert_uint_eq(r.used, 15);
	ck_assert_int_eq(r.pp.version, 1);
	r = parse_copy(two + 15, sizeof(two) - 1 - 15);
	ck_assert_int_eq(r.rc, 1);
	ck_assert_uint_eq(r.used, 16);
	ck_assert_int_eq(r.pp.version, 2);
}
END_TEST

/* The largest v2 header: 65535 bytes after the fixed 16, all one TLV. */
START_TEST(test_v2_largest)
{
	size_t n = MGROK_PP_V2_MAX;
	uint8_t *p = calloc(1, n);
	memcpy(p, SIG "\x21\x11\xff\xff" INET_ADDRS, 28);
	p[28] = 0xe0;
	p[29] = (65535 - 12 - 3) >> 8;
	p[30] = (65535 - 12 - 3) & 0xff;
	struct result r = parse_copy(p, n);
	ck_assert_int_eq(r.rc, 1);
	ck_assert_uint_eq(r.used, n);
	addr_is("largest", &r.pp.src, AF_INET, "192.0.2.1", 56324);
	for (size_t k = 16; k < n; k += 4099) {
		r = parse_copy(p, k);
		ck_assert_int_eq(r.rc, 0);
		ck_assert_uint_eq(r.used, n);
	}
	free(p);
}
END_TEST

/* ---- edge cases (each was a bug once) -------------------------------------- */

/* MGROK_PP_ENCODED_MAX is enough for any header: a v1 line is up to 104
 * bytes (56 for TCP4), more than a v2 header with IPv6 (52). */
START_TEST(test_bug_encoded_max_too_small)
{
	struct sockaddr_storage a, b;
	uint8_t out[MGROK_PP_ENCODED_MAX];
	/* An everyday visitor: 53 bytes. */
	ck_assert_uint_eq(mgrok_pp_encode(1, sa("203.0.113.200", 54321, &a),
	                                  sa("198.51.100.200", 20080, &b), false, out, sizeof(out)),
	                  53);
	ck_assert_uint_eq(mgrok_pp_encode(1, sa("255.255.255.255", 65535, &a),
	                                  sa("255.255.255.255", 65535, &b), false, out,
	                                  sizeof(out)),
	                  56);
	ck_assert_uint_eq(mgrok_pp_encode(1, sa(FFFF6, 65535, &a), sa(FFFF6, 65535, &b), false, out,
	                                  sizeof(out)),
	                  104);
}
END_TEST

/* "0 if cap is too small": a v1 line that fits its buffer exactly is
 * refused all the same (snprintf wants room for a NUL); v2 fits. */
START_TEST(test_bug_v1_exact_buffer)
{
	static const char line[] = "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n";
	struct sockaddr_storage a, b;
	uint8_t *out = malloc(sizeof(line) - 1);
	size_t n = mgrok_pp_encode(1, sa("192.0.2.1", 56324, &a), sa("198.51.100.2", 443, &b),
	                           false, out, sizeof(line) - 1);
	ck_assert_uint_eq(n, sizeof(line) - 1);
	ck_assert(memcmp(out, line, n) == 0);
	free(out);
	out = malloc(15);
	ck_assert_uint_eq(mgrok_pp_encode(1, NULL, NULL, false, out, 15), 15);
	free(out);
}
END_TEST

/* 2.1: the fields are separated by exactly one space; strtok_r in
 * v1_fields merges runs of spaces and drops a trailing one. */
START_TEST(test_bug_v1_one_space)
{
	static const char *const lines[] = {
	        "PROXY TCP4  192.0.2.1 198.51.100.2 56324 443\r\n",
	        "PROXY TCP4 192.0.2.1 198.51.100.2  56324 443\r\n",
	        "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443 \r\n",
	        "PROXY  TCP4 192.0.2.1 198.51.100.2 56324 443\r\n",
	        "PROXY  UNKNOWN\r\n",
	};
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		struct result r = parse_copy((const uint8_t *)lines[i], strlen(lines[i]));
		ck_assert_msg(r.rc == -1, "\"%.*s\" accepted (rc %d)", (int)strlen(lines[i]) - 2,
		              lines[i], r.rc);
	}
}
END_TEST

/* proxyproto.h: -1 "already at the first byte that cannot belong to one".
 * A NUL, a bare CR or a high byte in a v1 line is only refused when the
 * line end or the 107th byte comes in. */
START_TEST(test_bug_v1_control_byte_late)
{
	static const struct {
		const uint8_t *p;
		size_t len;
	} v[] = {{B("PROXY \0")}, {B("PROXY UNKNOWN\r ")}, {B("PROXY TCP4 \xff")}};
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		struct result r = parse_copy(v[i].p, v[i].len);
		ck_assert_msg(r.rc == -1, "case %zu: rc %d, hint %zu", i, r.rc, r.used);
	}
}
END_TEST

/* mgrok_pp_parse(NULL, 0, ...) passes NULL to memcmp before it looks at
 * len: undefined, and an abort under UBSan (passes without sanitizers). */
START_TEST(test_bug_parse_null_empty)
{
	struct mgrok_pp pp;
	size_t used;
	char err[64];
	ck_assert_int_eq(mgrok_pp_parse(NULL, 0, &pp, &used, err, sizeof(err)), 0);
	ck_assert_uint_ge(used, 1);
}
END_TEST

/* ---- suite ---------------------------------------------------------------- */

static Suite *proxyproto_suite(void)
{
	Suite *s = suite_create("proxyproto");
	TCase *tc;

	tc = tcase_create("golden");
	tcase_add_loop_test(tc, test_golden, 0, (int)NGOLDEN);
	tcase_add_test(tc, test_back_to_back);
	tcase_add_test(tc, test_v2_largest);
	suite_add_tcase(s, tc);

	tc = tcase_create("round trip");
	tcase_add_loop_test(tc, test_round_trip, 0, (int)NTRIPS);
	tcase_add_test(tc, test_encode_no_buffer);
	suite_add_tcase(s, tc);

	tc = tcase_create("refused");
	tcase_add_loop_test(tc, test_refused, 0, (int)NREFUSALS);
	tcase_add_test(tc, test_first_byte);
	tcase_add_test(tc, test_signature_each_byte);
	tcase_add_test(tc, test_error_buffer);
	suite_add_tcase(s, tc);

	tc = tcase_create("edge cases");
	tcase_add_test(tc, test_bug_encoded_max_too_small);
	tcase_add_test(tc, test_bug_v1_exact_buffer);
	tcase_add_test(tc, test_bug_v1_one_space);
	tcase_add_test(tc, test_bug_v1_control_byte_late);
	tcase_add_test(tc, test_bug_parse_null_empty);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(proxyproto_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
