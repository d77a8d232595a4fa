#include "proxyproto.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const uint8_t v2_sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                   0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
static const char v1_sig[] = "PROXY ";

__attribute__((format(printf, 3, 4))) static int fail(char *err, size_t errlen, const char *fmt,
                                                      ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

/* ---- version 1: one line of text ------------------------------------------ */

/* A decimal port: 1-5 digits, at most 65535, no sign. */
static int v1_port(const char *s, uint16_t *port)
{
	unsigned long v = 0;
	size_t n = strlen(s);
	if (n == 0 || n > 5 || strspn(s, "0123456789") != n || (n > 1 && s[0] == '0'))
		return -1;
	for (size_t i = 0; i < n; i++)
		v = v * 10 + (unsigned long)(s[i] - '0');
	if (v > 65535)
		return -1;
	*port = (uint16_t)v;
	return 0;
}

static int v1_addr(int family, const char *ip, const char *port, struct sockaddr_storage *ss)
{
	uint16_t p;
	memset(ss, 0, sizeof(*ss));
	if (v1_port(port, &p) < 0)
		return -1;
	if (family == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)ss;
		a->sin_family = AF_INET;
		a->sin_port = htons(p);
		return inet_pton(AF_INET, ip, &a->sin_addr) == 1 ? 0 : -1;
	}
	struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
	a->sin6_family = AF_INET6;
	a->sin6_port = htons(p);
	return inet_pton(AF_INET6, ip, &a->sin6_addr) == 1 ? 0 : -1;
}

/* Splits line at single spaces into f (at most max; the count goes on past
 * it); *empty tells of an empty field (two spaces, or one at an end). */
static int split(char *line, char **f, int max, bool *empty)
{
	int n = 0;
	*empty = false;
	for (char *p = line;;) {
		char *sp = strchr(p, ' ');
		if (sp == p || *p == '\0')
			*empty = true;
		if (n < max)
			f[n] = p;
		n++;
		if (!sp)
			return n;
		*sp = '\0';
		p = sp + 1;
	}
}

/* "PROXY TCP4 SRC DST SPORT DPORT" (CRLF already cut). */
static int v1_fields(char *line, struct mgrok_pp *pp, char *err, size_t errlen)
{
	char *f[6];
	bool empty;
	/* An UNKNOWN line's rest is to be ignored, whatever it holds. */
	if (strncmp(line, "PROXY UNKNOWN", 13) == 0 && (line[13] == '\0' || line[13] == ' '))
		return 0;
	int n = split(line, f, 6, &empty);
	int family = n >= 2 && !strcmp(f[1], "TCP4")   ? AF_INET
	             : n >= 2 && !strcmp(f[1], "TCP6") ? AF_INET6
	                                               : 0;
	if (!family)
		return fail(err, errlen, "PROXY v1: protocol is not TCP4, TCP6 or UNKNOWN");
	if (empty)
		return fail(err, errlen, "PROXY v1: fields are one space apart");
	if (n != 6)
		return fail(err, errlen, "PROXY v1: expected 6 fields, got %d", n);
	if (v1_addr(family, f[2], f[4], &pp->src) < 0 || v1_addr(family, f[3], f[5], &pp->dst) < 0)
		return fail(err, errlen, "PROXY v1: a bad %s address or port", f[1]);
	pp->proxied = true;
	pp->len = family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
	return 0;
}

/* Every byte so far may belong to a line: printable ASCII, and CR only
 * right before LF. Checked as the bytes come, so a bad one fails at once. */
static int v1_bytes_ok(const uint8_t *p, size_t len, char *err, size_t errlen)
{
	for (size_t i = 0; i < len && p[i] != '\n'; i++) {
		if (p[i] == '\r' && (i + 1 == len || p[i + 1] == '\n'))
			continue;
		if (p[i] < 0x20 || p[i] > 0x7e)
			return fail(err, errlen, "PROXY v1: a control byte in the line");
	}
	return 0;
}

static int parse_v1(const uint8_t *p, size_t len, struct mgrok_pp *pp, size_t *used, char *err,
                    size_t errlen)
{
	size_t window = len < MGROK_PP_V1_MAX ? len : MGROK_PP_V1_MAX;
	if (v1_bytes_ok(p, window, err, errlen) < 0)
		return -1;
	const uint8_t *lf = memchr(p, '\n', window);
	if (!lf) {
		if (len >= MGROK_PP_V1_MAX)
			return fail(err, errlen, "PROXY v1: no line end within %d bytes",
			            MGROK_PP_V1_MAX);
		*used = len + 1;
		return 0;
	}
	size_t n = (size_t)(lf - p) + 1;
	if (n < 2 || lf[-1] != '\r')
		return fail(err, errlen, "PROXY v1: the line does not end in CRLF");
	char line[MGROK_PP_V1_MAX + 1];
	memcpy(line, p, n - 2);
	line[n - 2] = '\0';
	pp->version = 1;
	if (v1_fields(line, pp, err, errlen) < 0)
		return -1;
	*used = n;
	return 1;
}

/* ---- version 2: binary ----------------------------------------------------- */

/* The TLVs after the addresses must fill the rest exactly. */
static int v2_tlvs(const uint8_t *p, size_t len, char *err, size_t errlen)
{
	while (len) {
		if (len < 3)
			return fail(err, errlen, "PROXY v2: a TLV cut short");
		size_t vlen = (size_t)p[1] << 8 | p[2];
		if (vlen > len - 3)
			return fail(err, errlen, "PROXY v2: a TLV longer than the header");
		p += 3 + vlen;
		len -= 3 + vlen;
	}
	return 0;
}

static void v2_inet(const uint8_t *a, struct mgrok_pp *pp)
{
	struct sockaddr_in *s = (struct sockaddr_in *)&pp->src, *d = (struct sockaddr_in *)&pp->dst;
	s->sin_family = d->sin_family = AF_INET;
	memcpy(&s->sin_addr, a, 4);
	memcpy(&d->sin_addr, a + 4, 4);
	memcpy(&s->sin_port, a + 8, 2);
	memcpy(&d->sin_port, a + 10, 2);
	pp->len = sizeof(struct sockaddr_in);
}

static void v2_inet6(const uint8_t *a, struct mgrok_pp *pp)
{
	struct sockaddr_in6 *s = (struct sockaddr_in6 *)&pp->src;
	struct sockaddr_in6 *d = (struct sockaddr_in6 *)&pp->dst;
	s->sin6_family = d->sin6_family = AF_INET6;
	memcpy(&s->sin6_addr, a, 16);
	memcpy(&d->sin6_addr, a + 16, 16);
	memcpy(&s->sin6_port, a + 32, 2);
	memcpy(&d->sin6_port, a + 34, 2);
	pp->len = sizeof(struct sockaddr_in6);
}

static int parse_v2(const uint8_t *p, size_t len, struct mgrok_pp *pp, size_t *used, char *err,
                    size_t errlen)
{
	if (len >= 13 && (p[12] >> 4) != 2)
		return fail(err, errlen, "PROXY v2: version %u", p[12] >> 4);
	if (len >= 13 && (p[12] & 0x0F) > 1)
		return fail(err, errlen, "PROXY v2: command %u", p[12] & 0x0F);
	/* LOCAL (a balancer's own health check): the block is to be ignored,
	 * family and all. */
	bool local = len >= 13 && (p[12] & 0x0F) == 0;
	if (!local && len >= 14 && ((p[13] >> 4) > 3 || (p[13] & 0x0F) > 2))
		return fail(err, errlen, "PROXY v2: family and transport 0x%02x", p[13]);
	if (len < MGROK_PP_V2_HEADER) {
		*used = MGROK_PP_V2_HEADER;
		return 0;
	}
	size_t body = (size_t)p[14] << 8 | p[15];
	unsigned family = local ? 0 : p[13] >> 4;
	static const size_t need[] = {0, 12, 36, 216}; /* UNSPEC, INET, INET6, UNIX */
	if (body < need[family])
		return fail(err, errlen, "PROXY v2: %zu bytes cannot hold the addresses", body);
	if (len < MGROK_PP_V2_HEADER + body) {
		*used = MGROK_PP_V2_HEADER + body;
		return 0;
	}
	const uint8_t *a = p + MGROK_PP_V2_HEADER;
	if (!local && v2_tlvs(a + need[family], body - need[family], err, errlen) < 0)
		return -1;
	pp->version = 2;
	pp->dgram = (p[13] & 0x0F) == 2;
	/* LOCAL (the balancer's own check), or a family without an IP address:
	 * the connection's own address stands. */
	pp->proxied = !local && (family == 1 || family == 2);
	if (pp->proxied && family == 1)
		v2_inet(a, pp);
	else if (pp->proxied)
		v2_inet6(a, pp);
	*used = MGROK_PP_V2_HEADER + body;
	return 1;
}

int mgrok_pp_parse(const uint8_t *p, size_t len, struct mgrok_pp *pp, size_t *used, char *err,
                   size_t errlen)
{
	memset(pp, 0, sizeof(*pp));
	*used = 0;
	if (!len) {
		*used = 1;
		return 0;
	}
	size_t seen1 = len < sizeof(v1_sig) - 1 ? len : sizeof(v1_sig) - 1;
	size_t seen2 = len < sizeof(v2_sig) ? len : sizeof(v2_sig);
	bool v1 = memcmp(p, v1_sig, seen1) == 0, v2 = memcmp(p, v2_sig, seen2) == 0;
	if (!v1 && !v2)
		return fail(err, errlen, "no PROXY protocol header");
	if (v1 && seen1 == sizeof(v1_sig) - 1)
		return parse_v1(p, len, pp, used, err, errlen);
	if (v2 && seen2 == sizeof(v2_sig))
		return parse_v2(p, len, pp, used, err, errlen);
	*used = v1 ? sizeof(v1_sig) - 1 : sizeof(v2_sig);
	return 0;
}

/* ---- encoding ---------------------------------------------------------------- */

/* sa as the address family the header will name: IPv4-mapped IPv6 becomes
 * IPv4. 0 for anything else. */
static int family_of(const struct sockaddr *sa, struct sockaddr_storage *out)
{
	if (!sa)
		return 0;
	if (sa->sa_family == AF_INET) {
		memcpy(out, sa, sizeof(struct sockaddr_in));
		return AF_INET;
	}
	if (sa->sa_family != AF_INET6)
		return 0;
	const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)sa;
	if (IN6_IS_ADDR_V4MAPPED(&a6->sin6_addr)) {
		struct sockaddr_in *a = (struct sockaddr_in *)out;
		memset(a, 0, sizeof(*a));
		a->sin_family = AF_INET;
		a->sin_port = a6->sin6_port;
		memcpy(&a->sin_addr, a6->sin6_addr.s6_addr + 12, 4);
		return AF_INET;
	}
	memcpy(out, sa, sizeof(struct sockaddr_in6));
	return AF_INET6;
}

/* An IPv4 address as IPv4-mapped IPv6, in place. */
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

static size_t encode_v1(int family, const struct sockaddr_storage *s,
                        const struct sockaddr_storage *d, uint8_t *out, size_t cap)
{
	char src[INET6_ADDRSTRLEN], dst[INET6_ADDRSTRLEN], line[MGROK_PP_V1_MAX + 1];
	int n;
	if (!family) {
		n = snprintf(line, sizeof(line), "PROXY UNKNOWN\r\n");
	} else {
		const void *sa =
		        family == AF_INET
		                ? (const void *)&((const struct sockaddr_in *)s)->sin_addr
		                : (const void *)&((const struct sockaddr_in6 *)s)->sin6_addr;
		const void *da =
		        family == AF_INET
		                ? (const void *)&((const struct sockaddr_in *)d)->sin_addr
		                : (const void *)&((const struct sockaddr_in6 *)d)->sin6_addr;
		uint16_t sp = family == AF_INET ? ((const struct sockaddr_in *)s)->sin_port
		                                : ((const struct sockaddr_in6 *)s)->sin6_port;
		uint16_t dp = family == AF_INET ? ((const struct sockaddr_in *)d)->sin_port
		                                : ((const struct sockaddr_in6 *)d)->sin6_port;
		inet_ntop(family, sa, src, sizeof(src));
		inet_ntop(family, da, dst, sizeof(dst));
		n = snprintf(line, sizeof(line), "PROXY %s %s %s %u %u\r\n",
		             family == AF_INET ? "TCP4" : "TCP6", src, dst, ntohs(sp), ntohs(dp));
	}
	if (n <= 0 || (size_t)n > cap)
		return 0;
	memcpy(out, line, (size_t)n);
	return (size_t)n;
}

static size_t encode_v2(int family, const struct sockaddr_storage *s,
                        const struct sockaddr_storage *d, bool dgram, uint8_t *out, size_t cap)
{
	size_t body = family == AF_INET ? 12 : family == AF_INET6 ? 36 : 0;
	if (cap < MGROK_PP_V2_HEADER + body)
		return 0;
	memcpy(out, v2_sig, sizeof(v2_sig));
	out[12] = family ? 0x21 : 0x20; /* version 2; PROXY, or LOCAL without an address */
	out[13] = (uint8_t)((family == AF_INET    ? 0x10
	                     : family == AF_INET6 ? 0x20
	                                          : 0) |
	                    (family ? (dgram ? 2 : 1) : 0));
	out[14] = 0;
	out[15] = (uint8_t)body;
	uint8_t *a = out + MGROK_PP_V2_HEADER;
	if (family == AF_INET) {
		const struct sockaddr_in *si = (const void *)s, *di = (const void *)d;
		memcpy(a, &si->sin_addr, 4);
		memcpy(a + 4, &di->sin_addr, 4);
		memcpy(a + 8, &si->sin_port, 2);
		memcpy(a + 10, &di->sin_port, 2);
	} else if (family == AF_INET6) {
		const struct sockaddr_in6 *si = (const void *)s, *di = (const void *)d;
		memcpy(a, &si->sin6_addr, 16);
		memcpy(a + 16, &di->sin6_addr, 16);
		memcpy(a + 32, &si->sin6_port, 2);
		memcpy(a + 34, &di->sin6_port, 2);
	}
	return MGROK_PP_V2_HEADER + body;
}

size_t mgrok_pp_encode(int version, const struct sockaddr *src, const struct sockaddr *dst,
                       bool dgram, uint8_t *out, size_t cap)
{
	struct sockaddr_storage s, d;
	int fs = family_of(src, &s), fd = family_of(dst, &d);
	/* IPv4 beside IPv6 (a visitor on IPv4, a server reached on IPv6):
	 * both as IPv6, the IPv4 one mapped, so no address is lost. */
	if (fs && fd && fs != fd) {
		to_mapped(fs == AF_INET ? &s : &d);
		fs = fd = AF_INET6;
	}
	int family = fs && fs == fd ? fs : 0;
	if (version != 1 && version != 2)
		return 0;
	return version == 1 ? encode_v1(family, &s, &d, out, cap)
	                    : encode_v2(family, &s, &d, dgram, out, cap);
}
