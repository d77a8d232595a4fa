#define _GNU_SOURCE /* SOCK_NONBLOCK, SOCK_CLOEXEC, getaddrinfo */
#include "vhost.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "acceptor.h"
#include "local_connect.h"

#define DEFAULT_TIMEOUT 10.0
#define DEFAULT_MAX_PENDING 1024
#define RANDOM_NAME_LEN 10
#define RANDOM_NAME_TRIES 8

struct vhost {
	const struct mgrok_host *host;
	const struct mgrok_plugin *self;
	const struct vhost_proto *proto;
	char listen[300];
	char domain[254];
	double timeout;
	unsigned max_pending;
	int fd;
	uint16_t port; /* the listener's */
	struct acceptor acc;
	struct vhost_conn *conns; /* visitors not routed yet */
	unsigned nconns;
};

const struct mgrok_host *vhost_host(const struct vhost *vh) { return vh->host; }
const struct mgrok_plugin *vhost_self(const struct vhost *vh) { return vh->self; }

static int take_string(const json_t *v, const char *key, char *out, size_t cap, char *err,
                       size_t errlen)
{
	if (!json_is_string(v) || !json_string_length(v) || json_string_length(v) >= cap) {
		snprintf(err, errlen, "%s: expected a non-empty string of at most %zu bytes", key,
		         cap - 1);
		return -1;
	}
	snprintf(out, cap, "%s", json_string_value(v));
	return 0;
}

static int take_conf(struct vhost *vh, const char *key, const json_t *v, char *err, size_t errlen)
{
	if (!strcmp(key, "listen"))
		return take_string(v, key, vh->listen, sizeof(vh->listen), err, errlen);
	if (!strcmp(key, "domain"))
		return take_string(v, key, vh->domain, sizeof(vh->domain), err, errlen);
	if (!strcmp(key, vh->proto->timeout_key) || !strcmp(key, "max_pending")) {
		double d = json_number_value(v);
		bool count = key[0] == 'm';
		if (!json_is_number(v) || d <= 0 || d > 1e6 || (count && !json_is_integer(v))) {
			snprintf(err, errlen, "%s: expected a positive %s", key,
			         count ? "integer" : "number of seconds");
			return -1;
		}
		if (count)
			vh->max_pending = (unsigned)d;
		else
			vh->timeout = d;
		return 0;
	}
	snprintf(err, errlen, "unknown key '%s' (listen, domain, %s, max_pending)", key,
	         vh->proto->timeout_key);
	return -1;
}

static struct vhost *vhost_new(const struct mgrok_host *host, const struct mgrok_plugin *self,
                               const struct vhost_proto *proto, const json_t *conf, char *err,
                               size_t errlen)
{
	struct vhost *vh = host->alloc(sizeof(*vh));
	memset(vh, 0, sizeof(*vh));
	vh->host = host;
	vh->self = self;
	vh->proto = proto;
	vh->timeout = DEFAULT_TIMEOUT;
	vh->max_pending = DEFAULT_MAX_PENDING;
	vh->fd = -1;
	const char *key;
	const json_t *v;
	json_object_foreach((json_t *)conf, key, v) {
		if (take_conf(vh, key, v, err, errlen) < 0) {
			host->free(vh);
			return NULL;
		}
	}
	if (host->abi_minor < 4) {
		snprintf(err, errlen, "needs a host of plugin ABI 1.4 or later");
		host->free(vh);
		return NULL;
	}
	return vh;
}

static void conn_free(struct vhost_conn *c, bool close_fd)
{
	struct vhost *vh = c->vh;
	if (c->prev)
		c->prev->next = c->next;
	else
		vh->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	vh->nconns--;
	vh->host->watch_free(c->watch);
	vh->host->timer_free(c->timer);
	if (c->proto)
		vh->proto->conn_free(c->proto);
	if (close_fd)
		close(c->fd);
	vh->host->free(c->buf);
	vh->host->free(c);
}

int vhost_init(const struct vhost_proto *proto, const struct mgrok_host *host,
               const struct mgrok_plugin *self, const json_t *conf, void **inst, char *err,
               size_t errlen)
{
	*inst = vhost_new(host, self, proto, conf, err, errlen);
	return *inst ? 0 : -1;
}

void vhost_fini(void *inst)
{
	struct vhost *vh = inst;
	if (!vh)
		return;
	while (vh->conns)
		conn_free(vh->conns, true);
	acceptor_stop(&vh->acc);
	if (vh->fd >= 0)
		close(vh->fd);
	vh->host->free(vh);
}

void vhost_last_word(int fd, const void *bytes, size_t len)
{
	uint8_t sink[4096];
	if (len && write(fd, bytes, len) < 0)
		return;
	shutdown(fd, SHUT_WR);
	/* Unread bytes at close would send an RST, and the visitor might lose
	 * the answer before reading it. */
	for (int i = 0; i < 16 && read(fd, sink, sizeof(sink)) > 0; i++)
		;
}

void vhost_answer(struct vhost_conn *c, const void *bytes, size_t len)
{
	vhost_last_word(c->fd, bytes, len);
	conn_free(c, true);
}

static void on_conn_timeout(void *arg)
{
	struct vhost_conn *c = arg;
	if (c->pp_pending) {
		c->vh->host->log(c->vh->self, MGROK_LOG_WARN,
		                 "visitor through balancer %s: no PROXY header in %.0f s",
		                 c->src_ip, c->vh->timeout);
		conn_free(c, true);
		return;
	}
	c->vh->proto->on_stuck(c, true);
}

/* The visitor's address as text without its port, for headers and logs. */
static void set_source(struct vhost_conn *c)
{
	c->vh->host->addr_format((const struct sockaddr *)&c->src, c->src_ip, sizeof(c->src_ip));
	char *colon = strrchr(c->src_ip, ':'); /* "1.2.3.4:80" or "[::1]:80" */
	if (colon)
		*colon = '\0';
	if (c->src_ip[0] == '[') {
		memmove(c->src_ip, c->src_ip + 1, strlen(c->src_ip));
		c->src_ip[strlen(c->src_ip) - 1] = '\0';
	}
}

/* A balancer's connection: its PROXY header names the visitor. Returns
 * whether the bytes after it are the visitor's, to be looked at now (c
 * may be gone when not). */
static bool take_proxy_header(struct vhost_conn *c)
{
	const struct mgrok_host *h = c->vh->host;
	char err[160];
	size_t used = 0;
	int rc =
	        h->proxy_header_parse(c->buf, c->len, &used, &c->src, &c->srclen, err, sizeof(err));
	if (rc == 0 && c->len < c->vh->proto->max_first_bytes)
		return false;
	if (rc <= 0) {
		h->log(c->vh->self, MGROK_LOG_WARN, "visitor through balancer %s: %s", c->src_ip,
		       rc ? err : "no PROXY header");
		conn_free(c, true);
		return false;
	}
	c->pp_pending = false;
	memmove(c->buf, c->buf + used, c->len - used);
	c->len -= used;
	set_source(c);
	return c->len > 0;
}

static void on_conn_readable(void *arg, int fd, int events)
{
	struct vhost_conn *c = arg;
	struct vhost *vh = c->vh;
	size_t room = vh->proto->max_first_bytes - c->len;
	ssize_t n = read(fd, c->buf + c->len, room);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (n <= 0) {
		conn_free(c, true);
		return;
	}
	c->len += (size_t)n;
	if (c->pp_pending && !take_proxy_header(c))
		return;
	if (vh->proto->on_bytes(c) && c->len == vh->proto->max_first_bytes)
		vh->proto->on_stuck(c, false);
}

static void conn_new(struct vhost *vh, int fd, const struct sockaddr_storage *ss, socklen_t len)
{
	const struct mgrok_host *h = vh->host;
	struct vhost_conn *c = h->alloc(sizeof(*c));
	memset(c, 0, sizeof(*c));
	c->vh = vh;
	c->fd = fd;
	c->src = *ss;
	c->srclen = len;
	set_source(c);
	c->pp_pending = h->from_balancer((const struct sockaddr *)ss) != 0;
	c->buf = h->alloc(vh->proto->max_first_bytes);
	c->next = vh->conns;
	if (vh->conns)
		vh->conns->prev = c;
	vh->conns = c;
	vh->nconns++;
	c->watch = h->watch_new(fd, on_conn_readable, c);
	h->watch_set(c->watch, MGROK_EV_READ);
	c->timer = h->timer_new(on_conn_timeout, c);
	h->timer_set(c->timer, vh->timeout);
}

static void on_visitor(void *arg, int fd, const struct sockaddr_storage *ss, socklen_t len)
{
	struct vhost *vh = arg;
	if (vh->nconns >= vh->max_pending) {
		/* The oldest waits longest for nothing: it makes room. */
		struct vhost_conn *old = vh->conns;
		while (old->next)
			old = old->next;
		conn_free(old, true);
	}
	conn_new(vh, fd, ss, len);
}

static int listen_on(struct vhost *vh, char *err, size_t errlen)
{
	char host[300], *port = strrchr(vh->listen, ':');
	if (!port) {
		snprintf(err, errlen, "listen: expected host:port, got '%s'", vh->listen);
		return -1;
	}
	snprintf(host, sizeof(host), "%.*s", (int)(port - vh->listen), vh->listen);
	char *h = host;
	if (h[0] == '[' && h[strlen(h) - 1] == ']') {
		h[strlen(h) - 1] = '\0';
		h++;
	}
	struct addrinfo hints = {.ai_flags = AI_PASSIVE | AI_NUMERICSERV,
	                         .ai_socktype = SOCK_STREAM};
	struct addrinfo *ai;
	int rc = getaddrinfo(*h ? h : NULL, port + 1, &hints, &ai);
	if (rc) {
		snprintf(err, errlen, "listen: %s: %s", vh->listen, gai_strerror(rc));
		return -1;
	}
	int one = 1, fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd >= 0)
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 1024) < 0) {
		snprintf(err, errlen, "cannot listen on %s: %s", vh->listen, strerror(errno));
		if (fd >= 0)
			close(fd);
		freeaddrinfo(ai);
		return -1;
	}
	freeaddrinfo(ai);
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	getsockname(fd, (struct sockaddr *)&ss, &len);
	vh->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
	                                          : ((struct sockaddr_in *)&ss)->sin_port);
	vh->fd = fd;
	return 0;
}

int vhost_server_start(void *inst, char *err, size_t errlen)
{
	struct vhost *vh = inst;
	if (!vh->listen[0])
		return 0; /* not configured: its proxies are refused */
	if (listen_on(vh, err, errlen) < 0)
		return -1;
	acceptor_start(&vh->acc, vh->host, vh->self, vh->fd, vh->listen, on_visitor, vh);
	vh->host->log(vh->self, MGROK_LOG_INFO, "%s proxies by name on %s%s%s", vh->proto->scheme,
	              vh->listen, vh->domain[0] ? ", subdomains of " : "", vh->domain);
	return 0;
}

int vhost_check_options(void *inst, const json_t *options, char *err, size_t errlen)
{
	struct vhost *vh = inst;
	const char *key;
	const json_t *v;
	json_object_foreach((json_t *)options, key, v) {
		if (!strcmp(key, "subdomain") || !strcmp(key, "hostname")) {
			if (!json_is_string(v) || !json_string_length(v) ||
			    json_string_length(v) > 253) {
				snprintf(err, errlen, "%s: expected a host name", key);
				return -1;
			}
			continue;
		}
		if (vh->proto->check_option && vh->proto->check_option(key, v, err, errlen) == 0)
			continue;
		if (!vh->proto->check_option || !err[0])
			snprintf(err, errlen, "%s proxies have no option '%s'", vh->proto->scheme,
			         key);
		return -1;
	}
	if (json_object_get(options, "subdomain") && json_object_get(options, "hostname")) {
		snprintf(err, errlen, "subdomain and hostname: one or the other");
		return -1;
	}
	return 0;
}

static void random_label(struct vhost *vh, char *out)
{
	static const char set[] = "abcdefghijklmnopqrstuvwxyz0123456789";
	uint8_t r[RANDOM_NAME_LEN];
	vh->host->random(r, sizeof(r));
	for (int i = 0; i < RANDOM_NAME_LEN; i++)
		out[i] = set[r[i] % (sizeof(set) - 1)];
	out[RANDOM_NAME_LEN] = '\0';
}

/* Claims the name the options ask for, or a random subdomain. */
static int claim(struct vhost *vh, struct mgrok_proxy *px, const json_t *options, char *name,
                 char *err, size_t errlen)
{
	const char *sub = json_string_value(json_object_get(options, "subdomain"));
	const char *own = json_string_value(json_object_get(options, "hostname"));
	if (!own && !vh->domain[0]) {
		snprintf(err, errlen,
		         "this server has no domain to give subdomains of: ask for "
		         "a hostname");
		return MGROK_ACK_INVALID;
	}
	for (int tries = 0; tries < RANDOM_NAME_TRIES; tries++) {
		char label[RANDOM_NAME_LEN + 1];
		if (!sub && !own)
			random_label(vh, label);
		int n = own ? snprintf(name, 254, "%s", own)
		            : snprintf(name, 254, "%s.%s", sub ? sub : label, vh->domain);
		if (n >= 254) {
			snprintf(err, errlen, "the host name is longer than 253 bytes");
			return MGROK_ACK_INVALID;
		}
		int rc = vh->host->name_claim(px, name, vh->domain[0] ? vh->domain : NULL, err,
		                              errlen);
		if (rc != MGROK_ACK_NAME_IN_USE || sub || own)
			return rc;
	}
	return MGROK_ACK_NAME_IN_USE;
}

int vhost_server_bind(void *inst, struct mgrok_proxy *px, const struct mgrok_proxy_spec *spec,
                      void **state, char *err, size_t errlen)
{
	struct vhost *vh = inst;
	char name[254];
	if (vh->fd < 0) {
		snprintf(err, errlen,
		         "this server takes no %s proxies (its config has no %s listener)",
		         vh->proto->scheme, vh->proto->scheme);
		return MGROK_ACK_UNKNOWN_PROXY_TYPE;
	}
	int rc = claim(vh, px, spec->options, name, err, errlen);
	if (rc != MGROK_ACK_OK)
		return rc;
	struct vhost_proxy *vp = vh->host->alloc(sizeof(*vp));
	vp->vh = vh;
	for (size_t i = 0; i <= strlen(name); i++)
		vp->name[i] = (char)(name[i] >= 'A' && name[i] <= 'Z' ? name[i] + 32 : name[i]);
	vp->proto = vh->proto->proxy_new ? vh->proto->proxy_new(vh, spec->options) : NULL;
	*state = vp;
	return 0;
}

void vhost_server_unbind(void *inst, void *state)
{
	struct vhost *vh = inst;
	struct vhost_proxy *vp = state;
	if (vh->proto->proxy_free && vp->proto)
		vh->proto->proxy_free(vh, vp->proto);
	vh->host->free(vp);
}

uint16_t vhost_public_address(void *inst, void *state, char *buf, size_t len)
{
	struct vhost *vh = inst;
	struct vhost_proxy *vp = state;
	if (vh->port == vh->proto->default_port)
		snprintf(buf, len, "%s://%s", vh->proto->scheme, vp->name);
	else
		snprintf(buf, len, "%s://%s:%u", vh->proto->scheme, vp->name, vh->port);
	return vh->port;
}

struct mgrok_proxy *vhost_lookup(struct vhost_conn *c, const char *name, struct vhost_proxy **vp)
{
	void *state = NULL;
	struct mgrok_proxy *px = c->vh->host->name_lookup(c->vh->self, name, &state);
	*vp = state;
	return px;
}

int vhost_attach(struct vhost_conn *c, struct mgrok_proxy *px, const void *first, size_t len,
                 void *arg)
{
	if (c->vh->host->visitor_attach(px, c->fd, (struct sockaddr *)&c->src, c->srclen, first,
	                                len, arg) < 0)
		return -1;
	c->proto = NULL; /* arg, if it was, is the stream's now */
	conn_free(c, false);
	return 0;
}

void vhost_client_open(void *inst, const struct mgrok_proxy_spec *spec, struct mgrok_stream *st)
{
	struct vhost *vh = inst;
	local_connect(vh->host, vh->self, spec, st);
}
