/* Addresses: "host:port" text, name resolution (never on the data path), sockets. */
#ifndef MGROK_ADDR_H
#define MGROK_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define MGROK_ADDRSTRLEN 64 /* "[ffff:...:ffff]:65535" and a NUL fit */

struct mgrok_sockaddr {
	struct sockaddr_storage ss;
	socklen_t len;
};

/*
 * Splits "host:port", "[v6]:port" or a bare "port" (host then defaults to
 * default_host). Returns 0 or -1 with a message in err.
 */
int mgrok_addr_split(const char *s, const char *default_host, char *host, size_t hostlen,
                     uint16_t *port, char *err, size_t errlen);
/* Resolves host (literal or name, blocking) and port into a. Returns 0 or -1. */
int mgrok_addr_resolve_host(const char *host, uint16_t port, struct mgrok_sockaddr *a, char *err,
                            size_t errlen);
/* mgrok_addr_split then mgrok_addr_resolve_host. */
int mgrok_addr_resolve(const char *s, const char *default_host, struct mgrok_sockaddr *a, char *err,
                       size_t errlen);
const char *mgrok_addr_format(const struct sockaddr *sa, char *buf, size_t len);
uint16_t mgrok_addr_port(const struct sockaddr *sa);
/* The IP of sa as 16 bytes (IPv4 as IPv4-mapped IPv6), the key of per-host
 * limits. Returns false for a family without one. */
bool mgrok_addr_ip16(const struct sockaddr *sa, uint8_t ip[16]);
void mgrok_addr_set_port(struct sockaddr *sa, uint16_t port);

/* Socket options every tunnel socket gets: non-blocking, close-on-exec, TCP_NODELAY. */
void mgrok_socket_tune(int fd);
/* A listening TCP socket on a. Returns the fd or -errno. */
int mgrok_tcp_listen(const struct mgrok_sockaddr *a, int backlog);

#endif
