/*
 * The TLS passthrough plugin's SNI reader (plugins/tls/client_hello.c).
 * Input: a split seed, a record seed, then the bytes a client sent first.
 *
 * Every call reads an exact-size copy. Beyond what the sanitizers catch,
 * asserted: the outcome is one of the four; the name is written only on
 * SNI ("" otherwise), NUL-terminated within cap, 1-253 bytes of lower-case
 * letters, digits and hyphens in labels of 1-63 between single dots;
 * prefixes that grow by the split seed's steps need more until the outcome
 * is decided, and from then on give the whole input's outcome and name;
 * TLS_HELLO_MAX bytes or more never need more. On SNI a buffer of exactly the name's size suffices and
 * one byte less is BAD; a smaller buffer never turns BAD into anything
 * else. Valid handshake records that hold a whole hello within the first
 * TLS_HELLO_MAX bytes (joined here without the parser) must be decided, as
 * a plain whole-message reading of RFC 8446 4.1.2 and RFC 6066 3 written
 * here decides them, name included; and a decided hello must be in such
 * records, and gives the same outcome in records of the record seed's
 * sizes (up to 2^14) and in one-byte records when those fit in
 * TLS_HELLO_MAX bytes, BAD when they do not.
 */
#include <string.h>

#include "../../plugins/tls/client_hello.h"
#include "fuzz.h"

#define NAME_CAP 300 /* more than a name can take, to see a write past its NUL */

struct outcome {
	int rc;
	char name[NAME_CAP];
};

/* The handshake bytes of the records in front of a decided ClientHello. */
struct joined {
	uint8_t hs[TLS_HELLO_MAX];
	size_t len;
};

static bool name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}

/* A name as the header promises it. */
static void check_name(const char *name)
{
	size_t n = strlen(name), label = 0;
	FUZZ_ASSERT(n >= 1 && n <= 253, "a name of %zu bytes", n);
	for (size_t i = 0; i < n; i++) {
		if (name[i] == '.') {
			FUZZ_ASSERT(label > 0, "an empty label in '%s'", name);
			label = 0;
			continue;
		}
		FUZZ_ASSERT(name_char(name[i]), "byte 0x%02x in '%s'", (unsigned char)name[i],
		            name);
		label++;
		FUZZ_ASSERT(label <= 63, "a label of 64 bytes in '%s'", name);
	}
	FUZZ_ASSERT(label > 0, "'%s' ends in a dot", name);
}

/* tls_hello_sni on an exact-size copy of p[0..len) (len 0: a pointer to
 * the end of a block), and what must hold of any single result. */
static void sni(const uint8_t *p, size_t len, size_t cap, struct outcome *o)
{
	uint8_t *b = calloc(len ? len : 1, 1);
	FUZZ_ASSERT(b != NULL && cap <= NAME_CAP, "out of memory, or cap %zu", cap);
	if (len)
		memcpy(b, p, len);
	memset(o->name, 'x', sizeof(o->name));
	o->rc = tls_hello_sni(len ? b : b + 1, len, cap ? o->name : NULL, cap);
	free(b);
	FUZZ_ASSERT(o->rc >= TLS_HELLO_BAD && o->rc <= TLS_HELLO_NO_SNI, "rc %d", o->rc);
	FUZZ_ASSERT(o->rc != TLS_HELLO_MORE || len < TLS_HELLO_MAX, "%zu bytes need more", len);
	for (size_t i = cap; i < sizeof(o->name); i++)
		FUZZ_ASSERT(o->name[i] == 'x', "written at %zu, past cap %zu", i, cap);
	if (!cap)
		return;
	FUZZ_ASSERT(memchr(o->name, '\0', cap) != NULL, "no NUL within cap %zu", cap);
	if (o->rc == TLS_HELLO_SNI)
		check_name(o->name);
	else
		FUZZ_ASSERT(o->name[0] == '\0', "rc %d with the name '%s'", o->rc, o->name);
}

static bool same(const struct outcome *a, const struct outcome *b)
{
	return a->rc == b->rc && strcmp(a->name, b->name) == 0;
}

/* Growing prefixes: more needed until decided, then the whole's outcome. */
static void prefixes(const uint8_t *p, size_t len, uint8_t seed, const struct outcome *whole)
{
	struct fuzz_split split;
	struct outcome o;
	bool decided = false;
	fuzz_split_init(&split, seed);
	for (size_t k = 0;;) {
		sni(p, k, NAME_CAP, &o);
		if (o.rc == TLS_HELLO_MORE) {
			FUZZ_ASSERT(!decided, "decided earlier, needs more at %zu bytes", k);
		} else {
			decided = true;
			FUZZ_ASSERT(same(&o, whole),
			            "first %zu bytes: rc %d '%s'; all %zu: rc %d '%s'", k, o.rc,
			            o.name, len, whole->rc, whole->name);
		}
		if (k == len)
			break;
		size_t step = k < 40 ? 1 : fuzz_split_next(&split, len - k);
		if (step < len / 256) /* a few hundred calls, however long the input */
			step = len / 256;
		k = step > len - k ? len : k + step;
	}
}

/* The caller's buffer: exactly the name's size suffices, one byte less
 * does not; a smaller buffer never makes a refused hello acceptable. */
static void caps(const uint8_t *p, size_t len, const struct outcome *whole)
{
	struct outcome o;
	if (whole->rc == TLS_HELLO_SNI) {
		size_t n = strlen(whole->name);
		sni(p, len, n + 1, &o);
		FUZZ_ASSERT(same(&o, whole), "cap %zu for '%s': rc %d", n + 1, whole->name, o.rc);
		sni(p, len, n, &o);
		FUZZ_ASSERT(o.rc == TLS_HELLO_BAD, "cap %zu for '%s': rc %d", n, whole->name, o.rc);
	}
	sni(p, len, 0, &o);
	if (whole->rc == TLS_HELLO_BAD || whole->rc == TLS_HELLO_SNI)
		FUZZ_ASSERT(o.rc == TLS_HELLO_BAD, "cap 0: rc %d, was %d", o.rc, whole->rc);
	if (whole->rc == TLS_HELLO_NO_SNI)
		FUZZ_ASSERT(o.rc == TLS_HELLO_NO_SNI, "cap 0: rc %d without a name", o.rc);
}

static size_t be(const uint8_t *p, size_t n)
{
	size_t v = 0;
	for (size_t i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

static size_t hello_len(const struct joined *j)
{
	return j->len < 4 ? SIZE_MAX : 4 + be(j->hs + 1, 3);
}

/* The handshake bytes of a hello, read from p's records here without the
 * parser: false unless valid handshake records hold a whole ClientHello-
 * sized message (the last one may be cut short after it) that ends within
 * the first TLS_HELLO_MAX bytes. */
static bool join(const uint8_t *p, size_t len, struct joined *j)
{
	size_t pos = 0, copied_to = 0;
	j->len = 0;
	while (j->len < hello_len(j)) {
		if (pos + 5 > len || p[pos] != 22 || p[pos + 1] != 3)
			return false;
		size_t rlen = be(p + pos + 3, 2), n = rlen;
		if (rlen < 1 || rlen > 16384)
			return false;
		n = n < len - pos - 5 ? n : len - pos - 5;
		n = n < sizeof(j->hs) - j->len ? n : sizeof(j->hs) - j->len;
		if (n == 0)
			return false;
		memcpy(j->hs + j->len, p + pos + 5, n);
		j->len += n;
		copied_to = pos + 5 + n;
		pos += 5 + rlen;
	}
	/* Where the hello ends: the last record may hold bytes after it. */
	size_t end = copied_to - (j->len - hello_len(j));
	j->len = hello_len(j);
	return end <= TLS_HELLO_MAX;
}

static uint8_t lower(uint8_t c) { return c >= 'A' && c <= 'Z' ? (uint8_t)(c + 32) : c; }

/* ---- the same judgement, written plainly for a whole hello ---------------- */

static bool ldh(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-';
}

/* Labels of 1-63 letters, digits and hyphens between dots; 1-253 bytes. */
static bool plain_name(const uint8_t *s, size_t n)
{
	if (n < 1 || n > 253)
		return false;
	for (size_t i = 0, start = 0; i <= n; i++) {
		if (i == n || s[i] == '.') {
			if (i == start || i - start > 63)
				return false;
			start = i + 1;
		} else if (!ldh(s[i])) {
			return false;
		}
	}
	return true;
}

/* A server_name extension's data d[0..n): false if malformed; *at and
 * *len: its host_name, relative to d (len 0: none). */
static bool plain_server_name(const uint8_t *d, size_t n, size_t *at, size_t *len)
{
	if (n < 2 || be(d, 2) != n - 2 || n == 2)
		return false;
	for (size_t p = 2; p < n;) {
		if (p + 3 > n || p + 3 + be(d + p + 1, 2) > n)
			return false;
		size_t l = be(d + p + 1, 2);
		if (d[p] == 0) {
			if (*len || !plain_name(d + p + 3, l))
				return false;
			*at = p + 3;
			*len = l;
		}
		p += 3 + l;
	}
	return true;
}

/* The extensions block h[p..n), which must end the hello. */
static int plain_extensions(const uint8_t *h, size_t p, size_t n, size_t *at, size_t *len)
{
	bool seen = false;
	if (p + 2 > n || p + 2 + be(h + p, 2) != n)
		return TLS_HELLO_BAD;
	for (p += 2; p < n;) {
		if (p + 4 > n || p + 4 + be(h + p + 2, 2) > n)
			return TLS_HELLO_BAD;
		size_t type = be(h + p, 2), l = be(h + p + 2, 2);
		if (type == 0) {
			if (seen || !plain_server_name(h + p + 4, l, at, len))
				return TLS_HELLO_BAD;
			seen = true;
			*at += p + 4;
		}
		p += 4 + l;
	}
	return *len ? TLS_HELLO_SNI : TLS_HELLO_NO_SNI;
}

/* The ClientHello h[0..n) (n: its whole length), all at once. */
static int plain_hello(const uint8_t *h, size_t n, size_t *at, size_t *len)
{
	size_t p = 4 + 2 + 32, l;
	*len = 0;
	if (h[0] != 1 || p > n || h[4] != 3)
		return TLS_HELLO_BAD;
	if (p + 1 > n || (l = h[p]) > 32 || (p += 1 + l) > n) /* session id */
		return TLS_HELLO_BAD;
	if (p + 2 > n || (l = be(h + p, 2)) < 2 || l % 2 || (p += 2 + l) > n) /* suites */
		return TLS_HELLO_BAD;
	if (p + 1 > n || (l = h[p]) < 1 || (p += 1 + l) > n) /* compression */
		return TLS_HELLO_BAD;
	return p == n ? TLS_HELLO_NO_SNI : plain_extensions(h, p, n, at, len);
}

/* The parser's outcome on a hello it could read whole is the plain one. */
static void compare(const struct joined *j, const struct outcome *whole)
{
	size_t at = 0, len = 0;
	int rc = plain_hello(j->hs, j->len, &at, &len);
	FUZZ_ASSERT(rc == whole->rc, "rc %d, plainly %d", whole->rc, rc);
	if (rc != TLS_HELLO_SNI)
		return;
	FUZZ_ASSERT(strlen(whole->name) == len, "'%s', plainly %zu bytes", whole->name, len);
	for (size_t i = 0; i < len; i++)
		FUZZ_ASSERT((uint8_t)whole->name[i] == lower(j->hs[at + i]), "'%s', plainly '%.*s'",
		            whole->name, (int)len, (const char *)j->hs + at);
}

/* ---- the same hello in other records ---------------------------------------- */

/* j's bytes in records of the split's sizes (none: a byte each), none
 * over 2^14. */
static size_t rewrap(const struct joined *j, struct fuzz_split *split, uint8_t *out, size_t cap)
{
	size_t n = 0;
	for (size_t i = 0; i < j->len;) {
		size_t frag = split ? fuzz_split_next(split, j->len - i) : 1;
		if (frag > 16384)
			frag = 16384;
		FUZZ_ASSERT(n + 5 + frag <= cap, "records past %zu bytes", cap);
		out[n] = 22;
		out[n + 1] = 3;
		out[n + 2] = 1;
		out[n + 3] = (uint8_t)(frag >> 8);
		out[n + 4] = (uint8_t)frag;
		memcpy(out + n + 5, j->hs + i, frag);
		n += 5 + frag;
		i += frag;
	}
	return n;
}

/* The same outcome in other records when they fit, else BAD. */
static void records(const struct joined *j, uint8_t seed, const struct outcome *whole)
{
	static uint8_t out[6 * TLS_HELLO_MAX];
	struct fuzz_split split;
	struct outcome o;
	fuzz_split_init(&split, seed);
	for (int pass = 0; pass < 2; pass++) {
		/* pass 1: a byte a record, the most headers the hello can have */
		size_t n = rewrap(j, pass ? NULL : &split, out, sizeof(out));
		sni(out, n, NAME_CAP, &o);
		if (n <= TLS_HELLO_MAX)
			FUZZ_ASSERT(same(&o, whole),
			            "in %zu bytes of other records: rc %d '%s', was %d", n, o.rc,
			            o.name, whole->rc);
		else
			FUZZ_ASSERT(o.rc == TLS_HELLO_BAD, "in %zu bytes of records: rc %d", n,
			            o.rc);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct joined j;
	struct fuzz_in in = {data, size};
	uint8_t split_seed = fuzz_u8(&in), record_seed = fuzz_u8(&in);
	struct outcome whole;
	sni(in.p, in.len, NAME_CAP, &whole);
	prefixes(in.p, in.len, split_seed, &whole);
	caps(in.p, in.len, &whole);
	bool decided = whole.rc == TLS_HELLO_SNI || whole.rc == TLS_HELLO_NO_SNI;
	bool joined = join(in.p, in.len, &j);
	FUZZ_ASSERT(joined || !decided, "rc %d, yet no hello in valid records", whole.rc);
	FUZZ_ASSERT(!joined || whole.rc != TLS_HELLO_MORE, "a whole hello, yet more needed");
	if (joined)
		compare(&j, &whole);
	if (decided)
		records(&j, record_seed, &whole);
	return 0;
}
