/*
 * The tcp proxy type (0x01): the server listens on the public port and hands
 * each visitor's connection to the host; the client connects to the local
 * service for each stream. The host relays the bytes.
 */
#define _GNU_SOURCE /* SOCK_NONBLOCK, SOCK_CLOEXEC */
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "acceptor.h"
#include "local_connect.h"
#include "mgrok/plugin.h"

struct tcp_plugin {
	const struct mgrok_host *host;
	const struct mgrok_plugin *self;
};

struct tcp_listener {
	struct tcp_plugin *tp;
	struct mgrok_proxy *px;
	int fd;
	struct acceptor acc;
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

static void on_visitor(void *arg, int fd, const struct sockaddr_storage *src, socklen_t len)
{
	struct tcp_listener *l = arg;
	if (l->tp->host->visitor_accept(l->px, fd, (const struct sockaddr *)src, len) < 0)
		close(fd);
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
	char name[80];
	l->tp = tp;
	l->px = px;
	l->fd = fd;
	snprintf(name, sizeof(name), "proxy %s", spec->name);
	acceptor_start(&l->acc, tp->host, tp->self, fd, name, on_visitor, l);
	*state = l;
	return 0;
}

static void server_unbind(void *inst, void *state)
{
	struct tcp_listener *l = state;
	acceptor_stop(&l->acc);
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
