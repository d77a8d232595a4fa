/*
 * The udp proxy type (0x02, PROTOCOL.md 5). Server: one socket on the public
 * port; each visitor address is a flow and a stream, each datagram one DATA
 * frame. Client: one connected socket to the local service per stream. Idle
 * flows end on either side; the server bounds flows per proxy.
 */
#define _GNU_SOURCE /* SOCK_NONBLOCK, SOCK_CLOEXEC */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "flow_table.h"
#include "mgrok/plugin.h"

#define DEFAULT_IDLE_TIMEOUT 60.0 /* s */
#define MIN_IDLE_TIMEOUT 0.1      /* s; the sweep runs at a quarter of it */
#define DEFAULT_MAX_FLOWS 1024
#define MAX_FLOWS_LIMIT 65536
#define DATAGRAMS_PER_WAKEUP 64

/*
 * A client flow's local port is not reused by this process for a while, as
 * a TCP port waits in TIME_WAIT. The service sees one address for every
 * flow's socket, so a new flow whose socket got the port of one that just
 * ended would receive the service's late replies to the old flow and pass
 * them to its own visitor. A new socket that gets a port closed less than
 * PORT_QUARANTINE ago is replaced (up to PORT_TRIES times).
 */
#define PORT_QUARANTINE 5.0 /* s */
#define PORT_TRIES 16

struct udp_plugin {
	const struct mgrok_host *host;
	const struct mgrok_plugin *self;
	/* Per local port, when a flow's socket on it last closed: deciseconds
	 * since epoch, plus one (0: not lately). Allocated with the first flow. */
	uint32_t *port_closed;
	double epoch;
};

struct udp_options {
	double idle_timeout;
	size_t max_flows;
};

/* What the host hands back in on_datagram / on_stream_end. */
struct flow {
	void (*deliver)(struct flow *f, const uint8_t *p, size_t len);
	void (*end)(struct flow *f);
};

struct listener {
	struct udp_plugin *up;
	struct mgrok_proxy *px;
	const char *name; /* the proxy's, valid while it is bound */
	int fd;
	struct mgrok_watch *watch;
	struct mgrok_timer *sweep;
	struct udp_options opt;
	struct udp_flow_table table;
	unsigned long drops;
};

struct server_flow {
	struct flow base;
	struct udp_flow_entry e;
	struct listener *l;
	struct mgrok_stream *st;
	unsigned long in, out, drops;
	bool drop_logged;
};

struct client_flow {
	struct flow base;
	struct udp_plugin *up;
	struct mgrok_stream *st;
	const char *name;
	int fd;
	uint16_t port; /* fd's local port */
	struct mgrok_watch *watch;
	struct mgrok_timer *idle;
	double idle_timeout;
	double last_active;
	unsigned long in, out, drops;
	bool drop_logged;
};

/* For the host's counters, where it has them (ABI 1.5). */
static void count_drop(const struct mgrok_host *h, struct mgrok_proxy *px, struct mgrok_stream *st)
{
	if (h->abi_minor >= 5)
		h->datagram_dropped(px, st);
}

/* A flow's first drop, whichever way it goes, is worth one debug line;
 * the totals come when the flow ends. */
static void note_drop(const struct udp_plugin *up, const char *name, struct mgrok_proxy *px,
                      struct mgrok_stream *st, unsigned long *drops, bool *logged, const char *why)
{
	(*drops)++;
	count_drop(up->host, px, st);
	if (*logged)
		return;
	*logged = true;
	up->host->log(up->self, MGROK_LOG_DEBUG, "proxy %s: a flow starts dropping datagrams (%s)",
	              name, why);
}

/* One datagram of the largest size UDP carries, shared by every socket of
 * this single-threaded process. */
static uint8_t dgram[65536];

#define container_of(p, type, member) ((type *)((char *)(p)-offsetof(type, member)))

/* ---- options --------------------------------------------------------------- */

static int parse_options(const json_t *o, struct udp_options *opt, char *err, size_t errlen)
{
	const char *key;
	json_t *v;
	opt->idle_timeout = DEFAULT_IDLE_TIMEOUT;
	opt->max_flows = DEFAULT_MAX_FLOWS;
	json_object_foreach((json_t *)o, key, v) {
		if (strcmp(key, "idle_timeout") == 0) {
			if (!json_is_number(v) || json_number_value(v) < MIN_IDLE_TIMEOUT) {
				snprintf(err, errlen, "idle_timeout: expected seconds >= %g",
				         MIN_IDLE_TIMEOUT);
				return -1;
			}
			opt->idle_timeout = json_number_value(v);
		} else if (strcmp(key, "max_flows") == 0) {
			if (!json_is_integer(v) || json_integer_value(v) < 1 ||
			    json_integer_value(v) > MAX_FLOWS_LIMIT) {
				snprintf(err, errlen, "max_flows: expected an integer 1-%d",
				         MAX_FLOWS_LIMIT);
				return -1;
			}
			opt->max_flows = (size_t)json_integer_value(v);
		} else {
			snprintf(err, errlen,
			         "unknown option \"%s\" (udp takes idle_timeout, max_flows)", key);
			return -1;
		}
	}
	return 0;
}

static int check_options(void *inst, const json_t *options, char *err, size_t errlen)
{
	struct udp_options opt;
	return parse_options(options, &opt, err, errlen);
}

/* ---- server side ----------------------------------------------------------- */

static void server_flow_deliver(struct flow *f, const uint8_t *p, size_t len)
{
	struct server_flow *sf = (struct server_flow *)f;
	struct listener *l = sf->l;
	if (sendto(l->fd, p, len, 0, (struct sockaddr *)&sf->e.addr, sf->e.addr_len) < 0) {
		note_drop(l->up, l->name, l->px, sf->st, &sf->drops, &sf->drop_logged,
		          strerror(errno));
		l->drops++;
		return;
	}
	sf->out++;
	if (sf->e.in_table)
		udp_flow_touch(&l->table, &sf->e, l->up->host->now());
}

static void server_flow_end(struct flow *f)
{
	struct server_flow *sf = (struct server_flow *)f;
	struct listener *l = sf->l;
	const struct mgrok_host *h = l->up->host;
	char a[64];
	h->log(l->up->self, MGROK_LOG_DEBUG,
	       "proxy %s: flow %s ended: %lu datagrams in, %lu out, %lu dropped", l->name,
	       h->addr_format((struct sockaddr *)&sf->e.addr, a, sizeof(a)), sf->in, sf->out,
	       sf->drops);
	udp_flow_remove(&l->table, &sf->e);
	h->free(sf);
}

/* Takes f out of the table and asks the host to end its stream; the memory
 * goes in server_flow_end, when the stream is over. */
static void retire(struct listener *l, struct server_flow *sf)
{
	udp_flow_remove(&l->table, &sf->e);
	l->up->host->stream_close(sf->st);
}

static struct server_flow *server_flow_new(struct listener *l, const struct sockaddr_storage *ss,
                                           socklen_t len, double now)
{
	const struct mgrok_host *h = l->up->host;
	/* Opened first: a refused stream (session at its limit) must not cost
	 * a live flow its place. */
	struct mgrok_stream *st = h->stream_open(l->px, (const struct sockaddr *)ss, len);
	if (!st)
		return NULL;
	if (udp_flow_full(&l->table)) {
		/* The least recently used flow makes room (PROTOCOL.md 5). */
		struct udp_flow_entry *old = udp_flow_oldest(&l->table);
		retire(l, container_of(old, struct server_flow, e));
	}
	struct server_flow *sf = h->alloc(sizeof(*sf));
	memset(sf, 0, sizeof(*sf));
	sf->base.deliver = server_flow_deliver;
	sf->base.end = server_flow_end;
	sf->l = l;
	sf->st = st;
	memcpy(&sf->e.addr, ss, len);
	sf->e.addr_len = len;
	udp_flow_insert(&l->table, &sf->e, now);
	h->stream_attach_datagram(st, &sf->base);
	return sf;
}

static void server_readable(void *arg, int fd, int events)
{
	struct listener *l = arg;
	const struct mgrok_host *h = l->up->host;
	double now = h->now();
	for (int i = 0; i < DATAGRAMS_PER_WAKEUP; i++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		ssize_t n = recvfrom(fd, dgram, sizeof(dgram), 0, (struct sockaddr *)&ss, &len);
		if (n < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
				h->log(l->up->self, MGROK_LOG_DEBUG, "proxy %s: recvfrom: %s",
				       l->name, strerror(errno));
			return;
		}
		struct udp_flow_entry *e = udp_flow_lookup(&l->table, (struct sockaddr *)&ss, len);
		struct server_flow *sf = e ? container_of(e, struct server_flow, e) : NULL;
		if (sf)
			udp_flow_touch(&l->table, e, now);
		else if (!(sf = server_flow_new(l, &ss, len, now))) {
			count_drop(h, l->px, NULL);
			l->drops++;
			continue;
		}
		sf->in++;
		if (h->stream_send(sf->st, dgram, (size_t)n) < 0) {
			note_drop(l->up, l->name, l->px, sf->st, &sf->drops, &sf->drop_logged,
			          "no window for a flow");
			l->drops++;
		}
	}
}

static void sweep(void *arg)
{
	struct listener *l = arg;
	const struct mgrok_host *h = l->up->host;
	struct udp_flow_entry *e;
	double now = h->now();
	while ((e = udp_flow_expired(&l->table, now, l->opt.idle_timeout)))
		retire(l, container_of(e, struct server_flow, e));
	/* A quarter of the timeout: a flow outlives it by at most that. */
	h->timer_set(l->sweep, l->opt.idle_timeout / 4);
}

static int server_bind(void *inst, struct mgrok_proxy *px, const struct mgrok_proxy_spec *spec,
                       void **state, char *err, size_t errlen)
{
	struct udp_plugin *up = inst;
	const struct mgrok_host *h = up->host;
	struct udp_options opt;
	if (parse_options(spec->options, &opt, err, errlen) < 0)
		return -EINVAL;
	int fd = socket(spec->addr->sa_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		int e = errno;
		snprintf(err, errlen, "socket: %s", strerror(e));
		return -e;
	}
	/* One socket takes every visitor's burst: the default buffer (about
	 * 200 KiB) overflows at a few hundred datagrams. The kernel caps this
	 * at net.core.rmem_max. */
	int rcvbuf = 4 * 1024 * 1024;
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	if (bind(fd, spec->addr, spec->addr_len) < 0) {
		int e = errno;
		char a[64];
		snprintf(err, errlen, "cannot bind %s: %s",
		         h->addr_format(spec->addr, a, sizeof(a)), strerror(e));
		close(fd);
		return -e;
	}
	struct listener *l = h->alloc(sizeof(*l));
	memset(l, 0, sizeof(*l));
	l->up = up;
	l->px = px;
	l->name = spec->name;
	l->fd = fd;
	l->opt = opt;
	udp_flow_table_init(&l->table, opt.max_flows, h->alloc, h->free);
	l->watch = h->watch_new(fd, server_readable, l);
	h->watch_set(l->watch, MGROK_EV_READ);
	l->sweep = h->timer_new(sweep, l);
	h->timer_set(l->sweep, opt.idle_timeout / 4);
	*state = l;
	return 0;
}

/* The host has ended every stream of the proxy by now, so no flow is left. */
static void server_unbind(void *inst, void *state)
{
	struct listener *l = state;
	const struct mgrok_host *h = l->up->host;
	if (l->drops)
		h->log(l->up->self, MGROK_LOG_DEBUG, "proxy %s: %lu datagrams dropped in all",
		       l->name, l->drops);
	h->watch_free(l->watch);
	h->timer_free(l->sweep);
	close(l->fd);
	udp_flow_table_free(&l->table);
	h->free(l);
}

/* ---- client side ----------------------------------------------------------- */

static void client_flow_deliver(struct flow *f, const uint8_t *p, size_t len)
{
	struct client_flow *cf = (struct client_flow *)f;
	if (cf->fd < 0 || send(cf->fd, p, len, 0) < 0) {
		/* ECONNREFUSED: nothing listens on the local port (yet). */
		note_drop(cf->up, cf->name, NULL, cf->st, &cf->drops, &cf->drop_logged,
		          cf->fd < 0 ? "flow closing" : strerror(errno));
		return;
	}
	cf->in++;
	cf->last_active = cf->up->host->now();
}

static uint32_t decis(const struct udp_plugin *up)
{
	return (uint32_t)((up->host->now() - up->epoch) * 10) + 1;
}

static void close_socket(struct client_flow *cf)
{
	if (cf->fd < 0)
		return;
	cf->up->host->watch_free(cf->watch);
	cf->watch = NULL;
	close(cf->fd);
	cf->fd = -1;
	cf->up->port_closed[cf->port] = decis(cf->up);
}

static uint16_t local_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return 0;
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

/* A socket connected to the local service, on a port no flow has closed
 * lately. Returns the fd (its port in *port) or -1 with errno. */
static int flow_socket(struct udp_plugin *up, const struct mgrok_proxy_spec *spec, uint16_t *port)
{
	if (!up->port_closed) {
		/* Private to the plugin, never handed across: libc's allocator. */
		up->port_closed = calloc(65536, sizeof(*up->port_closed));
		if (!up->port_closed)
			return -1;
		up->epoch = up->host->now();
	}
	for (int tries = 0;; tries++) {
		int fd =
		        socket(spec->addr->sa_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return -1;
		if (connect(fd, spec->addr, spec->addr_len) < 0) {
			int e = errno;
			close(fd);
			errno = e;
			return -1;
		}
		*port = local_port(fd);
		uint32_t closed = up->port_closed[*port];
		if (!closed || decis(up) - closed >= PORT_QUARANTINE * 10 || tries == PORT_TRIES)
			return fd;
		close(fd); /* still waiting out its last flow: try for another */
	}
}

static void client_flow_end(struct flow *f)
{
	struct client_flow *cf = (struct client_flow *)f;
	const struct mgrok_host *h = cf->up->host;
	h->log(cf->up->self, MGROK_LOG_DEBUG,
	       "proxy %s: flow ended: %lu datagrams in, %lu out, %lu dropped", cf->name, cf->in,
	       cf->out, cf->drops);
	close_socket(cf);
	h->timer_free(cf->idle);
	h->free(cf);
}

static void client_readable(void *arg, int fd, int events)
{
	struct client_flow *cf = arg;
	const struct mgrok_host *h = cf->up->host;
	for (int i = 0; i < DATAGRAMS_PER_WAKEUP; i++) {
		ssize_t n = recv(fd, dgram, sizeof(dgram), 0);
		if (n < 0 && errno == ECONNREFUSED) {
			/* An earlier datagram found no one at the local port. */
			note_drop(cf->up, cf->name, NULL, cf->st, &cf->drops, &cf->drop_logged,
			          "nothing listens on the local port");
			continue;
		}
		if (n < 0)
			return; /* EAGAIN */
		cf->last_active = h->now();
		if (h->stream_send(cf->st, dgram, (size_t)n) < 0) {
			note_drop(cf->up, cf->name, NULL, cf->st, &cf->drops, &cf->drop_logged,
			          "no window for a flow");
			continue;
		}
		cf->out++;
	}
}

static void client_idle(void *arg)
{
	struct client_flow *cf = arg;
	const struct mgrok_host *h = cf->up->host;
	double idle = h->now() - cf->last_active;
	if (idle < cf->idle_timeout) {
		/* Traffic since the timer was set: no timer work per datagram. */
		h->timer_set(cf->idle, cf->idle_timeout - idle);
		return;
	}
	close_socket(cf);
	h->stream_close(cf->st); /* may end the flow at once: cf is not used after */
}

static void client_open(void *inst, const struct mgrok_proxy_spec *spec, struct mgrok_stream *st)
{
	struct udp_plugin *up = inst;
	const struct mgrok_host *h = up->host;
	struct udp_options opt;
	char err[128], a[64];
	if (parse_options(spec->options, &opt, err, sizeof(err)) < 0) {
		h->stream_reset(st, MGROK_RESET_CONNECT_FAILED);
		return;
	}
	uint16_t port;
	int fd = flow_socket(up, spec, &port);
	if (fd < 0) {
		h->log(up->self, MGROK_LOG_INFO, "proxy %s: cannot open a socket to %s: %s",
		       spec->name, h->addr_format(spec->addr, a, sizeof(a)), strerror(errno));
		h->stream_reset(st, MGROK_RESET_CONNECT_FAILED);
		return;
	}
	struct client_flow *cf = h->alloc(sizeof(*cf));
	memset(cf, 0, sizeof(*cf));
	cf->base.deliver = client_flow_deliver;
	cf->base.end = client_flow_end;
	cf->up = up;
	cf->st = st;
	cf->name = spec->name;
	cf->fd = fd;
	cf->port = port;
	cf->idle_timeout = opt.idle_timeout;
	cf->last_active = h->now();
	cf->watch = h->watch_new(fd, client_readable, cf);
	h->watch_set(cf->watch, MGROK_EV_READ);
	cf->idle = h->timer_new(client_idle, cf);
	h->timer_set(cf->idle, opt.idle_timeout);
	h->stream_attach_datagram(st, &cf->base);
}

/* ---- both ------------------------------------------------------------------ */

static void on_datagram(void *inst, void *arg, const uint8_t *data, size_t len)
{
	struct flow *f = arg;
	f->deliver(f, data, len);
}

static void on_stream_end(void *inst, void *arg)
{
	struct flow *f = arg;
	f->end(f);
}

static int init(const struct mgrok_host *host, const struct mgrok_plugin *self, const json_t *conf,
                void **inst, char *err, size_t errlen)
{
	if (host->abi_minor < 1) {
		snprintf(err, errlen, "needs a host with plugin ABI 1.1 (datagram streams)");
		return -1;
	}
	if (json_object_size(conf)) {
		snprintf(err, errlen,
		         "takes no plugin options (set idle_timeout and max_flows "
		         "per proxy in \"options\")");
		return -1;
	}
	struct udp_plugin *up = host->alloc(sizeof(*up));
	memset(up, 0, sizeof(*up));
	up->host = host;
	up->self = self;
	*inst = up;
	return 0;
}

static void fini(void *inst)
{
	struct udp_plugin *up = inst;
	free(up->port_closed);
	up->host->free(up);
}

static const struct mgrok_proxy_ops ops = {
        .server_bind = server_bind,
        .server_unbind = server_unbind,
        .client_open = client_open,
        .check_options = check_options,
        .on_datagram = on_datagram,
        .on_stream_end = on_stream_end,
};

MGROK_PLUGIN_DEFINE(.kind = MGROK_PLUGIN_PROXY, .name = "udp", .wire_id = 0x02, .init = init,
                    .fini = fini, .proxy = &ops)
