/*
 * Connections that come through a load balancer (proxy_protocol_from):
 * their PROXY protocol header is read off the socket before anything else,
 * and its address stands for the connection from then on. The control
 * port's sessions read it in session.c; a public port's visitors wait here,
 * each in a struct mgrok_visitor, until theirs is in, and only then get a
 * stream (and the client a NEW_STREAM with the real address).
 */
#ifndef MGROK_BALANCER_H
#define MGROK_BALANCER_H

#include <ev.h>
#include <stdbool.h>
#include <sys/socket.h>

#include "buf.h"
#include "config.h"
#include "proxyproto.h"

struct mgrok_proxy;
struct mgrok_relay;

/* Who the balancers are, and how long one may take for a header. */
struct mgrok_balancers {
	const struct mgrok_cidr *from;
	size_t n;
	double timeout; /* s */
};

/*
 * Reads the header from fd without taking a byte past it (what follows may
 * be TLS): got keeps what was taken so far. Returns 1 with pp filled, 0 when
 * the socket has no more for now, -1 with err (a bad header, or the peer
 * closed or failed).
 */
int mgrok_balancer_read(int fd, struct mgrok_buf *got, struct mgrok_pp *pp, char *err,
                        size_t errlen);

/* A public port's visitor from a balancer, waiting for its header. */
struct mgrok_visitor {
	struct mgrok_relay *relay;
	struct ev_loop *loop;
	struct mgrok_proxy *px;
	int fd;
	struct sockaddr_storage source; /* the balancer's */
	socklen_t source_len;
	ev_io io;
	ev_timer deadline;
	struct mgrok_buf got;
	char from[64]; /* the balancer, for logs */
	struct mgrok_visitor *next;
};

/* Host function (ABI 1.3): see visitor_accept in plugin.h. */
int mgrok_visitor_accept(struct mgrok_proxy *px, int fd, const struct sockaddr *source,
                         socklen_t source_len);
/* The proxy goes away: its waiting visitors are closed. */
void mgrok_visitor_drop_proxy(struct mgrok_relay *r, struct mgrok_proxy *px);
/* The session goes away: every waiting visitor is closed. */
void mgrok_visitor_drop_all(struct mgrok_relay *r);

#endif
