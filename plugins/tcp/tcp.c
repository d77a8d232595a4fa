/*
 * The tcp proxy type (0x01): the server listens on the public port and hands
 * each visitor's connection to the host; the client connects to the local
 * service for each stream. The host relays the bytes.
 */
#define _GNU_SOURCE /* accept4 */
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "local_connect.h"
#include "mgrok/plugin.h"

#define ACCEPTS_PER_WAKEUP 64
/* accept(2) out of descriptors: the visitor stays queued, and trying again
 * at once would spin. */
#define ACCEPT_PAUSE 0.25

struct tcp_plugin {
	const struct mgrok_host *host;
	const struct mgrok_plugin *self;
};

struct tcp_listener {
	struct tcp_plugin *tp;
	struct mgrok_proxy *px;
	int fd;
	struct mgrok_watch *watch;
	struct mgrok_timer *retry; /* resumes accepting after ACCEPT_PAUSE */
	char name[65];             /* the proxy's, for logs */
};

static int init(const struct mgrok_host *host, const struct mgrok_plugin *self, const json_t *conf,
                void **inst, char *err, size_t errlen)
{
	if (json_object_size(conf)) {
		snprintf(err, errlen, "takes no options");
		return -1;
	}
	struct tcp_plugin *tp = host->alloc(sizeof(*tp));
	tp->host = host;
	tp->self = self;
	*inst = tp;
	return 0;
}

static void fini(void *inst)
{
	struct tcp_plugin *tp = inst;
	tp->host->free(tp);
}

static int check_options(void *inst, const json_t *options, char *err, size_t errlen)
{
	if (json_object_size(options)) {
		snprintf(err, errlen, "tcp proxies take no options");
		return -1;
	}
	return 0;
}

static void resume_accept(void *arg)
{
	struct tcp_listener *l = arg;
	l->tp->host->watch_set(l->watch, MGROK_EV_READ);
}

/* Returns whether to go on accepting now. */
static bool accept_failed(struct tcp_listener *l)
{
	const struct mgrok_host *h = l->tp->host;
	int e = errno;
	if (e == EAGAIN || e == EWOULDBLOCK || e == EINTR)
		return false;
	if (e == ECONNABORTED || e == EPROTO || e == EPERM)
		return true; /* that visitor is gone; the next may be fine */
	h->log(l->tp->self, MGROK_LOG_WARN, "proxy %s: accept: %s: pausing accepts for %.2f s",
	       l->name, strerror(e), ACCEPT_PAUSE);
	h->watch_set(l->watch, 0);
	if (!l->retry)
		l->retry = h->timer_new(resume_accept, l);
	h->timer_set(l->retry, ACCEPT_PAUSE);
	return false;
}

static void on_accept(void *arg, int fd, int events)
{
	struct tcp_listener *l = arg;
	const struct mgrok_host *h = l->tp->host;
	for (int i = 0; i < ACCEPTS_PER_WAKEUP; i++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		int c = accept4(fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (c < 0) {
			if (accept_failed(l))
				continue;
			return;
		}
		if (h->visitor_accept(l->px, c, (struct sockaddr *)&ss, len) < 0)
			close(c);
	}
}

static int server_bind(void *inst, struct mgrok_proxy *px, const struct mgrok_proxy_spec *spec,
                       void **state, char *err, size_t errlen)
{
	struct tcp_plugin *tp = inst;
	int one = 1;
	int fd = socket(spec->addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		int e = errno;
		snprintf(err, errlen, "socket: %s", strerror(e));
		return -e;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, spec->addr, spec->addr_len) < 0 || listen(fd, 1024) < 0) {
		int e = errno;
		char a[64];
		snprintf(err, errlen, "cannot listen on %s: %s",
		         tp->host->addr_format(spec->addr, a, sizeof(a)), strerror(e));
		close(fd);
		return -e;
	}
	struct tcp_listener *l = tp->host->alloc(sizeof(*l));
	l->tp = tp;
	l->px = px;
	l->fd = fd;
	l->retry = NULL;
	snprintf(l->name, sizeof(l->name), "%s", spec->name);
	l->watch = tp->host->watch_new(fd, on_accept, l);
	tp->host->watch_set(l->watch, MGROK_EV_READ);
	*state = l;
	return 0;
}

static void server_unbind(void *inst, void *state)
{
	struct tcp_listener *l = state;
	l->tp->host->timer_free(l->retry);
	l->tp->host->watch_free(l->watch);
	close(l->fd);
	l->tp->host->free(l);
}

static void client_open(void *inst, const struct mgrok_proxy_spec *spec, struct mgrok_stream *st)
{
	struct tcp_plugin *tp = inst;
	local_connect(tp->host, tp->self, spec, st);
}

static const struct mgrok_proxy_ops ops = {
        .server_bind = server_bind,
        .server_unbind = server_unbind,
        .client_open = client_open,
        .check_options = check_options,
};

MGROK_PLUGIN_DEFINE(.kind = MGROK_PLUGIN_PROXY, .name = "tcp", .wire_id = 0x01, .init = init,
                    .fini = fini, .proxy = &ops)
