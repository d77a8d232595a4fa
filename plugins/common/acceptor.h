/*
 * A listening socket's accept loop for proxy plugins: up to 64 accepts per
 * wakeup, and when descriptors run out a pause of 0.25 s (the refused
 * connection stays queued: retrying at once would spin) with a warn line.
 * tcp's per-proxy listeners and the shared http/tls listener use it.
 */
#ifndef MGROK_PLUGIN_ACCEPTOR_H
#define MGROK_PLUGIN_ACCEPTOR_H

#include <sys/socket.h>

#include "mgrok/plugin.h"

/* A connection: fd is non-blocking and close-on-exec, and the callee's. */
typedef void (*acceptor_cb)(void *arg, int fd, const struct sockaddr_storage *src,
                            socklen_t srclen);

struct acceptor {
	const struct mgrok_host *host;
	const struct mgrok_plugin *self;
	int fd;
	struct mgrok_watch *watch;
	struct mgrok_timer *retry;
	acceptor_cb cb;
	void *arg;
	char name[80]; /* for the log line */
};

/* Starts accepting on the listening fd, which stays the caller's. */
void acceptor_start(struct acceptor *a, const struct mgrok_host *host,
                    const struct mgrok_plugin *self, int fd, const char *name, acceptor_cb cb,
                    void *arg);
void acceptor_stop(struct acceptor *a);

#endif
