/* Small value parsers shared by the config loader and the command line. */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "buf.h"
#include "codec.h"
#include "log.h"

/* Digits only, 1-65535. */
int mgrok_port_parse(const char *s, size_t n, long *port)
{
	long v = 0;
	if (n == 0 || n > 5)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	if (v < 1 || v > 65535)
		return -1;
	*port = v;
	return 0;
}

/* "host:port" or "[v6]:port". An unbracketed IPv6 address is refused:
 * "::1:80" could be read two ways. */
const char *mgrok_hostport_problem(const char *s)
{
	const char *colon;
	long port;
	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		if (!close || close == s + 1 || close[1] != ':')
			return "expected \"[v6 address]:port\"";
		colon = close + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon || colon == s)
			return "expected \"host:port\"";
		if (memchr(s, ':', (size_t)(colon - s)))
			return "an IPv6 address goes in brackets: \"[::1]:port\"";
	}
	if (mgrok_port_parse(colon + 1, strlen(colon + 1), &port))
		return "port must be 1-65535";
	return NULL;
}

/* A port at *p, spaces around it skipped; -1 if there is none in 1-65535. */
static long port_at(const char **p)
{
	const char *s = *p + strspn(*p, " \t");
	size_t n = strspn(s, "0123456789");
	long v;
	if (mgrok_port_parse(s, n, &v))
		return -1;
	*p = s + n + strspn(s + n, " \t");
	return v;
}

/* On error *out and *n are left as they were. */
int mgrok_port_ranges_parse(const char *s, struct mgrok_port_range **out, size_t *n, char *msg,
                            size_t msglen)
{
	struct mgrok_port_range *r = NULL;
	size_t count = 0;
	for (const char *p = s;; p++) {
		const char *item = p;
		long lo = port_at(&p), hi = lo;
		if (lo > 0 && *p == '-') {
			p++;
			hi = port_at(&p);
		}
		if (lo < 0 || hi < 0 || (*p && *p != ',') || lo > hi) {
			snprintf(msg, msglen, "bad port range \"%.*s\": %s",
			         (int)strcspn(item, ","), item,
			         lo > hi && hi > 0 ? "start is after end"
			                           : "expected PORT or LO-HI, ports 1-65535");
			free(r);
			return -1;
		}
		r = mgrok_xrealloc(r, (count + 1) * sizeof(*r));
		r[count++] = (struct mgrok_port_range){(uint16_t)lo, (uint16_t)hi};
		if (!*p)
			break;
	}
	*out = r;
	*n = count;
	return 0;
}

bool mgrok_port_allowed(const struct mgrok_port_range *r, size_t n, uint16_t port)
{
	for (size_t i = 0; i < n; i++) {
		if (port >= r[i].lo && port <= r[i].hi)
			return true;
	}
	return false;
}

int mgrok_log_level_parse(const char *s)
{
	for (int i = 0; s && i < 4; i++) {
		if (!strcmp(s, mgrok_log_level_names[i]))
			return i;
	}
	return -1;
}

bool mgrok_name_valid(const char *s, size_t len)
{
	if (!s || len < 1 || len > MGROK_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

/* A plugin is named by its file name inside plugin_dir: nothing that could
 * reach another directory is ever handed to dlopen. */
const char *mgrok_plugin_name_problem(const char *name)
{
	if (!name || !*name)
		return "must not be empty";
	if (strchr(name, '/') || strstr(name, ".."))
		return "must be a file name inside plugin_dir (no \"/\", no \"..\")";
	return NULL;
}

const char *mgrok_local_target(const char *s, char *out, size_t len)
{
	long port;
	if (*s && !s[strspn(s, "0123456789")]) {
		if (mgrok_port_parse(s, strlen(s), &port))
			return "expected a port 1-65535 or \"host:port\"";
		snprintf(out, len, "127.0.0.1:%ld", port);
		return NULL;
	}
	const char *why = mgrok_hostport_problem(s);
	if (!why && strlen(s) >= len)
		why = "too long";
	if (!why)
		snprintf(out, len, "%s", s);
	return why;
}

int mgrok_cidr_parse(const char *s, struct mgrok_cidr *out)
{
	char ip[INET6_ADDRSTRLEN + 1];
	const char *slash = strchr(s, '/');
	size_t n = slash ? (size_t)(slash - s) : strlen(s);
	if (n == 0 || n >= sizeof(ip))
		return -1;
	memcpy(ip, s, n);
	ip[n] = '\0';
	memset(out, 0, sizeof(*out));
	unsigned long bits, max = 128;
	struct in_addr a4;
	if (inet_pton(AF_INET, ip, &a4) == 1) {
		out->ip[10] = out->ip[11] = 0xff;
		memcpy(out->ip + 12, &a4, 4);
		max = 32;
	} else if (inet_pton(AF_INET6, ip, out->ip) != 1) {
		return -1;
	}
	bits = max;
	if (slash) {
		char *end;
		if (!isdigit((unsigned char)slash[1]))
			return -1;
		bits = strtoul(slash + 1, &end, 10);
		if (*end || bits > max)
			return -1;
	}
	out->bits = (unsigned)(max == 32 ? 96 + bits : bits);
	/* Host bits set ("10.1.2.3/8") would not match what they seem to: refuse. */
	for (unsigned b = out->bits; b < 128; b++)
		if (out->ip[b / 8] & (0x80 >> (b % 8)))
			return -1;
	return 0;
}

bool mgrok_cidr_match(const struct mgrok_cidr *list, size_t n, const struct sockaddr *sa)
{
	uint8_t ip[16];
	if (!n || !mgrok_addr_ip16(sa, ip))
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned whole = list[i].bits / 8, rest = list[i].bits % 8;
		if (memcmp(ip, list[i].ip, whole) != 0)
			continue;
		if (!rest || ((ip[whole] ^ list[i].ip[whole]) & (0xff00 >> rest)) == 0)
			return true;
	}
	return false;
}

int mgrok_pp_version_parse(const char *s)
{
	return !s ? -1 : !strcmp(s, "v1") ? 1 : !strcmp(s, "v2") ? 2 : -1;
}
