#include "addr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int parse_port(const char *s, uint16_t *port)
{
	char *end;
	if (!*s)
		return -1;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || *end || v < 0 || v > 65535)
		return -1;
	*port = (uint16_t)v;
	return 0;
}

int mgrok_addr_split(const char *s, const char *default_host, char *host, size_t hostlen,
                     uint16_t *port, char *err, size_t errlen)
{
	const char *colon;
	size_t hlen;
	const char *hstart = s;

	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		if (!close || close[1] != ':') {
			snprintf(err, errlen, "bad address '%s': expected [IPv6]:port", s);
			return -1;
		}
		hstart = s + 1;
		hlen = (size_t)(close - hstart);
		colon = close + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon) {
			if (parse_port(s, port) < 0 || !default_host) {
				snprintf(err, errlen, "bad address '%s': expected host:port", s);
				return -1;
			}
			snprintf(host, hostlen, "%s", default_host);
			return 0;
		}
		if (memchr(s, ':', (size_t)(colon - s))) {
			snprintf(err, errlen, "bad address '%s': write IPv6 as [addr]:port", s);
			return -1;
		}
		hlen = (size_t)(colon - s);
	}
	if (hlen == 0 || hlen >= hostlen) {
		snprintf(err, errlen, "bad address '%s': bad host", s);
		return -1;
	}
	if (parse_port(colon + 1, port) < 0) {
		snprintf(err, errlen, "bad address '%s': bad port", s);
		return -1;
	}
	memcpy(host, hstart, hlen);
	host[hlen] = '\0';
	return 0;
}

int mgrok_addr_resolve_host(const char *host, uint16_t port, struct mgrok_sockaddr *a, char *err,
                            size_t errlen)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
	struct addrinfo *res = NULL;
	char portstr[8];
	snprintf(portstr, sizeof(portstr), "%u", port);
	int rc = getaddrinfo(host, portstr, &hints, &res);
	if (rc != 0 || !res) {
		snprintf(err, errlen, "cannot resolve '%s': %s", host, gai_strerror(rc));
		return -1;
	}
	memcpy(&a->ss, res->ai_addr, res->ai_addrlen);
	a->len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

int mgrok_addr_resolve(const char *s, const char *default_host, struct mgrok_sockaddr *a, char *err,
                       size_t errlen)
{
	char host[256];
	uint16_t port;
	if (mgrok_addr_split(s, default_host, host, sizeof(host), &port, err, errlen) < 0)
		return -1;
	return mgrok_addr_resolve_host(host, port, a, err, errlen);
}

const char *mgrok_addr_format(const struct sockaddr *sa, char *buf, size_t len)
{
	char ip[INET6_ADDRSTRLEN];
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
		snprintf(buf, len, "%s:%u", ip, ntohs(in->sin_port));
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
		snprintf(buf, len, "[%s]:%u", ip, ntohs(in6->sin6_port));
	} else {
		snprintf(buf, len, "-");
	}
	return buf;
}

uint16_t mgrok_addr_port(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)sa)->sin_port);
	if (sa->sa_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
	return 0;
}

void mgrok_addr_set_port(struct sockaddr *sa, uint16_t port)
{
	if (sa->sa_family == AF_INET)
		((struct sockaddr_in *)sa)->sin_port = htons(port);
	else if (sa->sa_family == AF_INET6)
		((struct sockaddr_in6 *)sa)->sin6_port = htons(port);
}

void mgrok_socket_tune(int fd)
{
	int one = 1;
	/* Sockets are made non-blocking and close-on-exec where they are
	 * created (plugin.h asks the same of plugins): these checks guard
	 * against a plugin that forgot, without two more calls when it did not. */
	int fl = fcntl(fd, F_GETFL);
	if (fl >= 0 && !(fl & O_NONBLOCK))
		fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	int fdfl = fcntl(fd, F_GETFD);
	if (fdfl >= 0 && !(fdfl & FD_CLOEXEC))
		fcntl(fd, F_SETFD, fdfl | FD_CLOEXEC);
	/* Fails harmlessly on non-TCP sockets. Without it request/response
	 * traffic stalls on Nagle and delayed ACKs. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

int mgrok_tcp_listen(const struct mgrok_sockaddr *a, int backlog)
{
	int one = 1;
	int fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)&a->ss, a->len) < 0 || listen(fd, backlog) < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	return fd;
}

bool mgrok_addr_ip16(const struct sockaddr *sa, uint8_t ip[16])
{
	if (sa->sa_family == AF_INET) {
		memset(ip, 0, 10);
		ip[10] = ip[11] = 0xff;
		memcpy(ip + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
		return true;
	}
	if (sa->sa_family == AF_INET6) {
		memcpy(ip, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
		return true;
	}
	return false;
}
