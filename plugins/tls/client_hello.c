#include "client_hello.h"

#include <stdbool.h>
#include <string.h>

/* The TLS record layer (RFC 8446 5.1, RFC 5246 6.2.1). */
#define RECORD_HEADER 5  /* content type, version, length */
#define RECORD_MAX 16384 /* a plaintext fragment, which a ClientHello always is */
#define CONTENT_HANDSHAKE 22
#define HS_HEADER 4 /* handshake type, 3-byte length (RFC 8446 4) */
#define HS_CLIENT_HELLO 1
#define RANDOM_LEN 32
/* legacy_version, random, the three vectors at their shortest: 1 + 2 + 1
 * bytes of lengths, a cipher suite and a compression method. A shorter
 * body is refused with its length, before the fields run past it. */
#define HELLO_BODY_MIN (2 + RANDOM_LEN + 1 + 2 + 2 + 1 + 1)
#define EXT_SERVER_NAME 0 /* RFC 6066 3 */
#define NAME_TYPE_HOST 0
#define NAME_MAX_LEN 253 /* RFC 1035 2.3.4's 255 bytes on the wire, as text without a final dot */
#define LABEL_MAX_LEN 63

const uint8_t tls_alert_unrecognized_name[7] = {
        0x15,       /* content type alert */
        0x03, 0x01, /* record version TLS 1.0: any client accepts it */
        0x00, 0x02, /* length */
        0x02,       /* fatal */
        0x70,       /* unrecognized_name(112) */
};

/* A step of the parse that went through; the others stop it with
 * TLS_HELLO_BAD or TLS_HELLO_MORE. */
enum { OK = 3 };

#define TRY(step)                                                                                  \
	do {                                                                                       \
		int rc_ = (step);                                                                  \
		if (rc_ != OK)                                                                     \
			return rc_;                                                                \
	} while (0)

static size_t big_endian(const uint8_t *p, size_t n)
{
	size_t v = 0;
	for (size_t i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

/* ---- the records: the handshake bytes, record headers taken out ------------ */

/* A ClientHello may be split over several records (RFC 8446 5.1), so its
 * bytes are joined here before they are read. */
struct fragments {
	uint8_t hs[TLS_HELLO_MAX];
	size_t have;     /* bytes in hs */
	size_t declared; /* handshake bytes the record headers seen announce */
	size_t records;  /* whole record headers seen */
};

static bool hello_complete(const struct fragments *f)
{
	return f->have >= HS_HEADER && f->have >= HS_HEADER + big_endian(f->hs + 1, 3);
}

/* The n bytes of a record header that have arrived (1 to 5), each judged
 * as it comes. Another content type here, even an alert, means no
 * ClientHello: handshake messages are not interleaved with other records. */
static int record_header(const uint8_t *p, size_t n, size_t *rlen)
{
	if (p[0] != CONTENT_HANDSHAKE)
		return TLS_HELLO_BAD;
	if (n >= 2 && p[1] != 3) /* the major version of SSL 3.0 and every TLS */
		return TLS_HELLO_BAD;
	if (n < RECORD_HEADER)
		return TLS_HELLO_MORE;
	*rlen = big_endian(p + 3, 2);
	/* Empty handshake fragments are forbidden (RFC 8446 5.1). */
	return *rlen == 0 || *rlen > RECORD_MAX ? TLS_HELLO_BAD : OK;
}

/* Joins the fragments of the records in buf[0..len) until the ClientHello
 * is complete (the records after it are not looked at). Returns
 * TLS_HELLO_BAD for a bad record header, otherwise OK or TLS_HELLO_MORE. */
static int gather(const uint8_t *buf, size_t len, struct fragments *f)
{
	size_t pos = 0;
	f->have = f->declared = f->records = 0;
	while (!hello_complete(f) && pos < len) {
		size_t rlen = 0;
		int rc = record_header(
		        buf + pos, len - pos < RECORD_HEADER ? len - pos : RECORD_HEADER, &rlen);
		if (rc != OK)
			return rc;
		pos += RECORD_HEADER;
		/* Fits: the fragments are shorter than the len <= TLS_HELLO_MAX
		 * bytes they came in. */
		size_t n = len - pos < rlen ? len - pos : rlen;
		memcpy(f->hs + f->have, buf + pos, n);
		f->have += n;
		f->declared += rlen;
		f->records++;
		pos += rlen;
	}
	return OK;
}

/* Whether the ClientHello can end within the first TLS_HELLO_MAX bytes: it
 * ends after its own bytes, the headers of the records seen, and one more
 * header at least if those records do not hold all of it. Known as soon as
 * its length is, so a hello too long is refused before the rest arrives. */
static bool hello_fits(const struct fragments *f)
{
	if (f->have < HS_HEADER)
		return true;
	size_t total = HS_HEADER + big_endian(f->hs + 1, 3);
	size_t headers = f->records + (total > f->declared ? 1 : 0);
	return headers * RECORD_HEADER + total <= TLS_HELLO_MAX;
}

/* ---- the ClientHello (RFC 8446 4.1.2, RFC 5246 7.4.1.2) ------------------- */

/* A vector inside the joined handshake bytes. A length is judged against
 * its container's declared end before the bytes it covers arrive, so that
 * a bad one is refused at once. */
struct span {
	const uint8_t *p; /* the handshake bytes, from the handshake header on */
	size_t pos, end;  /* the next byte; the end the container declares */
	size_t have;      /* bytes of p that have arrived: may be short of end */
};

/* Where the host_name is in the handshake bytes (len 0: none yet). */
struct found {
	size_t cap; /* the caller's buffer, for the name and its NUL */
	size_t at, len;
};

/* Claims the next n bytes of s, arrived or not. */
static int skip(struct span *s, size_t n, size_t *at)
{
	if (n > s->end - s->pos)
		return TLS_HELLO_BAD;
	*at = s->pos;
	s->pos += n;
	return OK;
}

/* An n-byte big-endian number (n <= 3). */
static int number(struct span *s, size_t n, size_t *v)
{
	size_t at;
	TRY(skip(s, n, &at));
	if (at + n > s->have)
		return TLS_HELLO_MORE;
	*v = big_endian(s->p + at, n);
	return OK;
}

/* A vector of lo to hi bytes after an n-byte length (TLS's <lo..hi>). */
static int vector(struct span *s, size_t n, size_t lo, size_t hi, struct span *inner)
{
	size_t len, at;
	TRY(number(s, n, &len));
	if (len < lo || len > hi)
		return TLS_HELLO_BAD;
	TRY(skip(s, len, &at));
	*inner = (struct span){s->p, at, at + len, s->have};
	return OK;
}

static bool letter_digit_hyphen(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-';
}

/* The first n bytes of a host name as RFC 1123 2.1 and RFC 6066 3 have it:
 * labels of 1 to 63 letters, digits and hyphens between single dots, no
 * trailing dot. whole: n is the entire name (a name cut short may still
 * end in a dot, its next label to come). */
static bool name_ok(const uint8_t *p, size_t n, bool whole)
{
	size_t label = 0;
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '.' && label > 0)
			label = 0;
		else if (letter_digit_hyphen(p[i]) && label < LABEL_MAX_LEN)
			label++;
		else
			return false;
	}
	return !whole || label > 0;
}

/* A HostName<1..2^16-1>, judged byte by byte as it arrives. */
static int host_name(const struct span *name, struct found *f)
{
	size_t n = name->end - name->pos;
	if (n > NAME_MAX_LEN || n >= f->cap)
		return TLS_HELLO_BAD;
	size_t arrived = name->have <= name->pos   ? 0
	                 : name->have >= name->end ? n
	                                           : name->have - name->pos;
	if (!name_ok(name->p + name->pos, arrived, arrived == n))
		return TLS_HELLO_BAD;
	if (arrived < n)
		return TLS_HELLO_MORE;
	f->at = name->pos;
	f->len = n;
	return OK;
}

/* The extension_data of server_name: a ServerNameList<1..2^16-1> and
 * nothing after it. Every entry is a type and a 2-byte length before its
 * bytes, so that a type other than host_name can be stepped over. */
static int server_name(struct span *ext, struct found *f)
{
	struct span list, name;
	TRY(vector(ext, 2, 1, 0xffff, &list));
	if (ext->pos != ext->end)
		return TLS_HELLO_BAD;
	while (list.pos < list.end) {
		size_t type;
		TRY(number(&list, 1, &type));
		/* "MUST NOT contain more than one name of the same name_type" */
		if (type == NAME_TYPE_HOST && f->len)
			return TLS_HELLO_BAD;
		/* A HostName is 1 byte at least; what other types hold is unknown. */
		TRY(vector(&list, 2, type == NAME_TYPE_HOST ? 1 : 0, 0xffff, &name));
		if (type == NAME_TYPE_HOST)
			TRY(host_name(&name, f));
	}
	return OK;
}

/* The extensions, which end the ClientHello: decided when all of it is in. */
static int extensions(struct span *exts, struct found *f)
{
	bool seen = false;
	while (exts->pos < exts->end) {
		size_t type;
		struct span data;
		TRY(number(exts, 2, &type));
		/* Two would be two names to route by (RFC 8446 4.2: not allowed). */
		if (type == EXT_SERVER_NAME && seen)
			return TLS_HELLO_BAD;
		TRY(vector(exts, 2, 0, 0xffff, &data));
		if (type != EXT_SERVER_NAME)
			continue;
		seen = true;
		TRY(server_name(&data, f));
	}
	if (exts->have < exts->end)
		return TLS_HELLO_MORE;
	return f->len ? TLS_HELLO_SNI : TLS_HELLO_NO_SNI;
}

/* The ClientHello in the joined handshake bytes, as far as they go. */
static int client_hello(const uint8_t *hs, size_t have, struct found *f)
{
	struct span msg = {hs, 0, SIZE_MAX, have}, body, v;
	size_t type, major, at;
	TRY(number(&msg, 1, &type));
	if (type != HS_CLIENT_HELLO)
		return TLS_HELLO_BAD;
	TRY(vector(&msg, 3, HELLO_BODY_MIN, 0xffffff, &body));
	TRY(number(&body, 1, &major)); /* legacy_version, judged by its first byte */
	if (major != 3)
		return TLS_HELLO_BAD;
	TRY(skip(&body, 1 + RANDOM_LEN, &at));
	TRY(vector(&body, 1, 0, 32, &v));     /* legacy_session_id */
	TRY(vector(&body, 2, 2, 0xfffe, &v)); /* cipher_suites, 2 bytes each */
	if ((v.end - v.pos) % 2)
		return TLS_HELLO_BAD;
	TRY(vector(&body, 1, 1, 0xff, &v)); /* legacy_compression_methods */
	if (body.pos == body.end)           /* a hello from before extensions (RFC 5246 7.4.1.2) */
		return body.have < body.end ? TLS_HELLO_MORE : TLS_HELLO_NO_SNI;
	TRY(vector(&body, 2, 0, 0xffff, &v));
	if (body.pos != body.end) /* bytes after the extensions */
		return TLS_HELLO_BAD;
	return extensions(&v, f);
}

int tls_hello_sni(const uint8_t *buf, size_t len, char *name, size_t cap)
{
	struct fragments frag;
	struct found f = {cap, 0, 0};
	if (cap)
		name[0] = '\0';
	/* Past TLS_HELLO_MAX nothing is looked at: a hello that needs those
	 * bytes is too long. */
	size_t window = len < TLS_HELLO_MAX ? len : TLS_HELLO_MAX;
	if (gather(buf, window, &frag) == TLS_HELLO_BAD)
		return TLS_HELLO_BAD;
	int rc = client_hello(frag.hs, frag.have, &f);
	if (rc == TLS_HELLO_MORE && (!hello_fits(&frag) || len >= TLS_HELLO_MAX))
		return TLS_HELLO_BAD;
	if (rc != TLS_HELLO_SNI)
		return rc;
	for (size_t i = 0; i < f.len; i++) {
		uint8_t c = frag.hs[f.at + i];
		name[i] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
	}
	name[f.len] = '\0';
	return TLS_HELLO_SNI;
}
