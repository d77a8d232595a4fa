/*
 * Check suite "udp_plugin": the real udp proxy plugin ($MGROK_PLUGIN_DIR/
 * udp.so, doc/protocol.md 5) loaded with dlopen and driven through a mock host
 * table written here. The mock records what the plugin asks of the host
 * (watchers, timers, streams, datagrams sent) and lets the test play the
 * event loop: it invokes watcher and timer callbacks itself, moves a fake
 * clock, and answers stream_close with on_stream_end as the host would.
 * Sockets are real, on 127.0.0.1 with ephemeral ports.
 */
#include <arpa/inet.h>
#include <check.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "mgrok/plugin.h"

#define MAX_DGRAM 65507 /* the largest UDP payload over IPv4 */
#define MAX_WATCHES 64
#define MAX_TIMERS 64
#define MAX_STREAMS 64
#define MAX_SENT 256
#define RESET_CONNECT_FAILED 1
#define WAIT_SECONDS 3.0

/* ---- the mock host ---------------------------------------------------------- */

struct mock_watch {
	bool live;
	int fd;
	mgrok_watch_cb cb;
	void *arg;
	int events;
};

struct mock_timer {
	bool live;
	bool armed;
	mgrok_timer_cb cb;
	void *arg;
	double delay; /* the last timer_set */
	int sets;
};

/* What a struct mgrok_stream * handed to the plugin really is. */
struct mock_stream {
	int id;
	struct sockaddr_storage src; /* stream_open's source */
	socklen_t src_len;
	void *arg; /* stream_attach_datagram's */
	int attaches;
	int closes;
	int reset_code; /* -1: not reset */
	bool ended;     /* on_stream_end was called */
	int send_calls, refused;
};

struct sent {
	struct mock_stream *st;
	size_t len;
	uint8_t *data;
};

static struct {
	size_t live_allocs;
	double clock;
	bool no_window;          /* stream_send answers -1 */
	bool open_fails;         /* stream_open answers NULL */
	bool close_ends_at_once; /* stream_close ends the stream inside the call */
	int opens, open_nulls;
	int send_calls;
	int dropped_px; /* datagram_dropped calls naming the proxy */
	int dropped_st; /* ... naming a stream */
	int logs;
	struct mock_watch watches[MAX_WATCHES];
	int n_watches;
	struct mock_timer timers[MAX_TIMERS];
	int n_timers;
	struct mock_stream *streams[MAX_STREAMS];
	int n_streams;
	struct sent sent[MAX_SENT];
	int n_sent;
	struct mock_stream *closed[MAX_STREAMS]; /* in the order of stream_close */
	int n_closed;
} mock;

/* Opaque host objects the plugin only hands back. */
static char proxy_token, self_token;
#define PX ((struct mgrok_proxy *)&proxy_token)
#define SELF ((const struct mgrok_plugin *)&self_token)

union header {
	size_t len;
	max_align_t align;
};

static void *mock_alloc(size_t len)
{
	union header *h = malloc(sizeof(*h) + len);
	ck_assert_ptr_nonnull(h);
	h->len = len;
	memset(h + 1, 0xa5, len); /* the plugin must initialize what it uses */
	mock.live_allocs++;
	return h + 1;
}

static void mock_free(void *p)
{
	ck_assert_msg(p != NULL, "the plugin freed NULL");
	ck_assert_msg(mock.live_allocs > 0, "the plugin freed more than it allocated");
	mock.live_allocs--;
	free((union header *)p - 1);
}

static void mock_wipe(void *p, size_t len)
{
	volatile unsigned char *b = p;
	while (len--)
		*b++ = 0;
}

static int mock_random(void *buf, size_t len)
{
	unsigned char *b = buf;
	for (size_t i = 0; i < len; i++)
		b[i] = (unsigned char)rand();
	return 0;
}

static void mock_log(const struct mgrok_plugin *self, int level, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static void mock_log(const struct mgrok_plugin *self, int level, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	ck_assert_ptr_eq(self, SELF);
	ck_assert_int_ge(level, MGROK_LOG_ERROR);
	ck_assert_int_le(level, MGROK_LOG_DEBUG);
	mock.logs++;
	if (getenv("MGROK_TEST_VERBOSE"))
		fprintf(stderr, "udp: %s\n", line);
}

static struct mock_watch *as_watch(struct mgrok_watch *w)
{
	struct mock_watch *mw = (struct mock_watch *)w;
	ck_assert_msg(mw >= mock.watches && mw < mock.watches + mock.n_watches,
	              "not a watcher of this host");
	ck_assert_msg(mw->live, "a watcher used after watch_free");
	return mw;
}

static struct mgrok_watch *mock_watch_new(int fd, mgrok_watch_cb cb, void *arg)
{
	ck_assert_int_lt(mock.n_watches, MAX_WATCHES);
	ck_assert_int_ge(fd, 0);
	ck_assert(cb != NULL);
	struct mock_watch *w = &mock.watches[mock.n_watches++];
	*w = (struct mock_watch){.live = true, .fd = fd, .cb = cb, .arg = arg};
	return (struct mgrok_watch *)w;
}

static void mock_watch_set(struct mgrok_watch *w, int events)
{
	ck_assert_int_eq(events & ~(MGROK_EV_READ | MGROK_EV_WRITE), 0);
	as_watch(w)->events = events;
}

static void mock_watch_free(struct mgrok_watch *w)
{
	struct mock_watch *mw = as_watch(w);
	/* The watcher does not own the fd, so it must still be open here. */
	ck_assert_msg(fcntl(mw->fd, F_GETFD) >= 0, "watch_free after its fd was closed");
	mw->live = false;
	mw->events = 0;
}

static struct mock_timer *as_timer(struct mgrok_timer *t)
{
	struct mock_timer *mt = (struct mock_timer *)t;
	ck_assert_msg(mt >= mock.timers && mt < mock.timers + mock.n_timers,
	              "not a timer of this host");
	ck_assert_msg(mt->live, "a timer used after timer_free");
	return mt;
}

static struct mgrok_timer *mock_timer_new(mgrok_timer_cb cb, void *arg)
{
	ck_assert_int_lt(mock.n_timers, MAX_TIMERS);
	ck_assert(cb != NULL);
	struct mock_timer *t = &mock.timers[mock.n_timers++];
	*t = (struct mock_timer){.live = true, .cb = cb, .arg = arg};
	return (struct mgrok_timer *)t;
}

static void mock_timer_set(struct mgrok_timer *t, double after)
{
	struct mock_timer *mt = as_timer(t);
	ck_assert_msg(after >= 0, "timer_set(%g)", after);
	mt->delay = after;
	mt->armed = after > 0;
	mt->sets++;
}

static void mock_timer_free(struct mgrok_timer *t)
{
	struct mock_timer *mt = as_timer(t);
	mt->live = false;
	mt->armed = false;
}

static double mock_now(void) { return mock.clock; }

static struct mock_stream *stream_new(void)
{
	ck_assert_int_lt(mock.n_streams, MAX_STREAMS);
	struct mock_stream *s = calloc(1, sizeof(*s));
	ck_assert_ptr_nonnull(s);
	s->id = mock.n_streams;
	s->reset_code = -1;
	mock.streams[mock.n_streams++] = s;
	return s;
}

static struct mock_stream *as_stream(struct mgrok_stream *st)
{
	struct mock_stream *s = (struct mock_stream *)st;
	bool known = false;
	for (int i = 0; i < mock.n_streams; i++)
		known |= mock.streams[i] == s;
	ck_assert_msg(known, "not a stream of this host");
	ck_assert_msg(!s->ended, "stream %d used after on_stream_end", s->id);
	ck_assert_msg(s->reset_code < 0, "stream %d used after stream_reset", s->id);
	return s;
}

static struct mgrok_stream *mock_stream_open(struct mgrok_proxy *px, const struct sockaddr *source,
                                             socklen_t len)
{
	ck_assert_ptr_eq(px, PX);
	ck_assert_uint_gt(len, 0);
	ck_assert_uint_le(len, sizeof(struct sockaddr_storage));
	mock.opens++;
	if (mock.open_fails) {
		mock.open_nulls++;
		return NULL;
	}
	struct mock_stream *s = stream_new();
	memcpy(&s->src, source, len);
	s->src_len = len;
	return (struct mgrok_stream *)s;
}

static void mock_stream_attach_fd(struct mgrok_stream *st, int fd, int connecting)
{
	ck_abort_msg("a datagram plugin called stream_attach_fd");
}

static void mock_stream_reset(struct mgrok_stream *st, uint8_t code)
{
	as_stream(st)->reset_code = code;
}

static const char *mock_addr_format(const struct sockaddr *sa, char *buf, size_t len)
{
	char ip[INET6_ADDRSTRLEN] = "?";
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
		snprintf(buf, len, "%s:%u", ip, ntohs(in->sin_port));
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
		snprintf(buf, len, "[%s]:%u", ip, ntohs(in6->sin6_port));
	} else {
		snprintf(buf, len, "(family %d)", sa->sa_family);
	}
	return buf;
}

static void mock_stream_attach_datagram(struct mgrok_stream *st, void *arg)
{
	struct mock_stream *s = as_stream(st);
	ck_assert_msg(s->attaches == 0, "stream %d attached twice", s->id);
	s->attaches++;
	s->arg = arg;
}

static int mock_stream_send(struct mgrok_stream *st, const void *data, size_t len)
{
	struct mock_stream *s = as_stream(st);
	ck_assert_msg(s->attaches == 1, "stream_send on stream %d before attach", s->id);
	s->send_calls++;
	mock.send_calls++;
	if (mock.no_window || s->closes || len > 65535) {
		s->refused++;
		return -1;
	}
	ck_assert_int_lt(mock.n_sent, MAX_SENT);
	struct sent *r = &mock.sent[mock.n_sent++];
	r->st = s;
	r->len = len;
	r->data = malloc(len ? len : 1);
	ck_assert_ptr_nonnull(r->data);
	if (len)
		memcpy(r->data, data, len);
	return 0;
}

static void end_stream(struct mock_stream *s);

static void mock_stream_close(struct mgrok_stream *st)
{
	struct mock_stream *s = as_stream(st);
	ck_assert_msg(s->closes == 0, "stream %d closed twice", s->id);
	s->closes++;
	mock.closed[mock.n_closed++] = s;
	/* The real host does this when the peer's CLOSE came first or the
	 * session is going away. */
	if (mock.close_ends_at_once)
		end_stream(s);
}

static void mock_datagram_dropped(struct mgrok_proxy *px, struct mgrok_stream *st)
{
	ck_assert_msg(px || st, "datagram_dropped names neither the proxy nor a stream");
	if (px)
		mock.dropped_px++;
	else
		mock.dropped_st++;
}

static struct mgrok_host host = {
        .abi_major = MGROK_PLUGIN_ABI_MAJOR,
        .abi_minor = MGROK_PLUGIN_ABI_MINOR,
        .size = sizeof(struct mgrok_host),
        .log = mock_log,
        .alloc = mock_alloc,
        .free = mock_free,
        .wipe = mock_wipe,
        .random = mock_random,
        .watch_new = mock_watch_new,
        .watch_set = mock_watch_set,
        .watch_free = mock_watch_free,
        .timer_new = mock_timer_new,
        .timer_set = mock_timer_set,
        .timer_free = mock_timer_free,
        .now = mock_now,
        .stream_open = mock_stream_open,
        .stream_attach_fd = mock_stream_attach_fd,
        .stream_reset = mock_stream_reset,
        .addr_format = mock_addr_format,
        .stream_attach_datagram = mock_stream_attach_datagram,
        .stream_send = mock_stream_send,
        .stream_close = mock_stream_close,
        .datagram_dropped = mock_datagram_dropped,
};

/* ---- the plugin ------------------------------------------------------------- */

static void *dl;
static const struct mgrok_plugin_desc *desc;
static const struct mgrok_proxy_ops *ops;
static void *inst;

static json_t *parse(const char *text)
{
	json_error_t je;
	json_t *j = json_loads(text, JSON_REJECT_DUPLICATES, &je);
	ck_assert_msg(j != NULL, "bad JSON in test: %s", je.text);
	return j;
}

static void load_plugin(void)
{
	const char *dir = getenv("MGROK_PLUGIN_DIR");
	ck_assert_msg(dir && *dir, "MGROK_PLUGIN_DIR is not set (run through `make check`)");
	char path[4096];
	snprintf(path, sizeof(path), "%s/udp.so", dir);
	dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	ck_assert_msg(dl != NULL, "dlopen %s: %s", path, dlerror());
	mgrok_plugin_entry_fn entry;
	*(void **)&entry = dlsym(dl, MGROK_PLUGIN_ENTRY_SYMBOL);
	ck_assert_msg(entry != NULL, "%s: no %s", path, MGROK_PLUGIN_ENTRY_SYMBOL);
	desc = entry();
	ck_assert_ptr_nonnull(desc);
	ops = desc->proxy;
}

static void unload_plugin(void)
{
	/* Sanitizer builds keep the module mapped so that reports name its frames. */
#if !defined(__SANITIZE_ADDRESS__)
	dlclose(dl);
#endif
	dl = NULL;
	desc = NULL;
	ops = NULL;
}

/* init with conf given as JSON text; returns its result, err filled. */
static int init_with(const struct mgrok_host *h, const char *conf, char *err, size_t errlen)
{
	json_t *j = parse(conf);
	err[0] = '\0';
	int rc = desc->init(h, SELF, j, &inst, err, errlen);
	json_decref(j);
	return rc;
}

/* The fixture of the server and client cases: the plugin initialized. */
static void setup(void)
{
	memset(&mock, 0, sizeof(mock));
	mock.clock = 1000;
	load_plugin();
	char err[256];
	ck_assert_msg(init_with(&host, "{}", err, sizeof(err)) == 0, "init: %s", err);
	ck_assert_ptr_nonnull(inst);
}

static void teardown(void)
{
	desc->fini(inst);
	inst = NULL;
	ck_assert_msg(mock.live_allocs == 0, "%zu allocations left after fini", mock.live_allocs);
	for (int i = 0; i < mock.n_watches; i++)
		ck_assert_msg(!mock.watches[i].live, "watcher %d left", i);
	for (int i = 0; i < mock.n_timers; i++)
		ck_assert_msg(!mock.timers[i].live, "timer %d left", i);
	for (int i = 0; i < mock.n_sent; i++)
		free(mock.sent[i].data);
	for (int i = 0; i < mock.n_streams; i++)
		free(mock.streams[i]);
	unload_plugin();
}

/* What the host does when the stream ends (CLOSE answered, session over). */
static void end_stream(struct mock_stream *s)
{
	ck_assert(!s->ended);
	ck_assert_int_eq(s->attaches, 1);
	s->ended = true;
	ops->on_stream_end(inst, s->arg);
}

/* The host delivers one DATA payload of the stream. */
static void to_plugin(struct mock_stream *s, const void *data, size_t len)
{
	ck_assert(!s->ended);
	ck_assert_int_eq(s->attaches, 1);
	ops->on_datagram(inst, s->arg, data, len);
}

static void fire(struct mock_timer *t)
{
	ck_assert(t->live);
	ck_assert_msg(t->armed, "firing a timer that is not armed");
	t->armed = false;
	t->cb(t->arg);
}

/* ---- sockets ---------------------------------------------------------------- */

static double mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static struct sockaddr_in loopback(uint16_t port)
{
	struct sockaddr_in a;
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = htons(port);
	return a;
}

static uint16_t local_port(int fd)
{
	struct sockaddr_in a = {0};
	socklen_t len = sizeof(a);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	ck_assert_int_eq(a.sin_family, AF_INET);
	return ntohs(a.sin_port);
}

/* A UDP socket on 127.0.0.1 with an ephemeral port. */
static int udp_socket(void)
{
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(fd, 0);
	struct sockaddr_in a = loopback(0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	return fd;
}

static uint16_t free_port(void)
{
	int fd = udp_socket();
	uint16_t port = local_port(fd);
	close(fd);
	return port;
}

static bool port_bindable(uint16_t port)
{
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	ck_assert_int_ge(fd, 0);
	struct sockaddr_in a = loopback(port);
	bool ok = bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
	close(fd);
	return ok;
}

/* The lowest free descriptor: the same before and after means no fd leaked. */
static int next_fd(void)
{
	int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	close(fd);
	return fd;
}

static void send_to(int fd, uint16_t port, const void *data, size_t len)
{
	struct sockaddr_in a = loopback(port);
	ck_assert_int_eq(sendto(fd, data, len, 0, (struct sockaddr *)&a, sizeof(a)), (ssize_t)len);
}

static void send_str(int fd, uint16_t port, const char *s) { send_to(fd, port, s, strlen(s)); }

/* Receives one datagram on fd (waiting for it) and checks it and its source port. */
static void expect_datagram(int fd, const void *data, size_t len, uint16_t from_port)
{
	static uint8_t buf[65536];
	struct pollfd p = {.fd = fd, .events = POLLIN};
	ck_assert_msg(poll(&p, 1, (int)(WAIT_SECONDS * 1000)) == 1, "no datagram came");
	struct sockaddr_in from = {0};
	socklen_t flen = sizeof(from);
	ssize_t n = recvfrom(fd, buf, sizeof(buf), MSG_DONTWAIT | MSG_TRUNC,
	                     (struct sockaddr *)&from, &flen);
	ck_assert_int_eq(n, (ssize_t)len);
	ck_assert(len == 0 || memcmp(buf, data, len) == 0);
	ck_assert_int_eq(from.sin_family, AF_INET);
	ck_assert_uint_eq(ntohl(from.sin_addr.s_addr), INADDR_LOOPBACK);
	ck_assert_uint_eq(ntohs(from.sin_port), from_port);
}

static void expect_nothing(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	ck_assert_msg(poll(&p, 1, 50) == 0, "an unexpected datagram came");
}

/* Datagrams the plugin has taken from a socket: handed to the host or refused a stream. */
static int handled(void) { return mock.send_calls + mock.open_nulls; }

/*
 * Plays the event loop for w until handled() reaches target: invokes the
 * watcher's callback whenever its socket is readable. Then checks that
 * nothing more is waiting.
 */
static void pump(const struct mock_watch *w, int target)
{
	double deadline = mono() + WAIT_SECONDS;
	while (handled() < target) {
		ck_assert_msg(mono() < deadline, "timed out: %d of %d datagrams handled", handled(),
		              target);
		ck_assert(w->live);
		ck_assert(w->events & MGROK_EV_READ);
		struct pollfd p = {.fd = w->fd, .events = POLLIN};
		if (poll(&p, 1, 100) > 0)
			w->cb(w->arg, w->fd, MGROK_EV_READ);
	}
	ck_assert_int_eq(handled(), target);
	struct pollfd p = {.fd = w->fd, .events = POLLIN};
	ck_assert_int_eq(poll(&p, 1, 0), 0);
}

static bool same_inet(const struct sockaddr_storage *a, const struct sockaddr_in *b)
{
	const struct sockaddr_in *x = (const struct sockaddr_in *)a;
	return x->sin_family == AF_INET && x->sin_port == b->sin_port &&
	       x->sin_addr.s_addr == b->sin_addr.s_addr;
}

static struct sockaddr_in name_of(int fd)
{
	struct sockaddr_in a = {0};
	socklen_t len = sizeof(a);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	return a;
}

/* The stream opened for the visitor socket fd, or NULL. */
static struct mock_stream *stream_of(int fd)
{
	struct sockaddr_in a = name_of(fd);
	struct mock_stream *found = NULL;
	for (int i = 0; i < mock.n_streams; i++) {
		struct mock_stream *s = mock.streams[i];
		if (!s->ended && !s->closes && same_inet(&s->src, &a)) {
			ck_assert_msg(found == NULL, "two live streams for one visitor");
			found = s;
		}
	}
	return found;
}

/* The i-th datagram handed to the host for stream s. */
static const struct sent *sent_on(const struct mock_stream *s, int i)
{
	for (int k = 0; k < mock.n_sent; k++)
		if (mock.sent[k].st == s && i-- == 0)
			return &mock.sent[k];
	return NULL;
}

static int count_sent(const struct mock_stream *s)
{
	int n = 0;
	for (int k = 0; k < mock.n_sent; k++)
		n += mock.sent[k].st == s;
	return n;
}

static void expect_sent(const struct mock_stream *s, int i, const void *data, size_t len)
{
	const struct sent *r = sent_on(s, i);
	ck_assert_msg(r != NULL, "stream %d: no datagram %d", s->id, i);
	ck_assert_uint_eq(r->len, len);
	ck_assert(len == 0 || memcmp(r->data, data, len) == 0);
}

static void expect_sent_str(const struct mock_stream *s, int i, const char *str)
{
	expect_sent(s, i, str, strlen(str));
}

static uint8_t *pattern(size_t len, unsigned seed)
{
	uint8_t *p = malloc(len);
	ck_assert_ptr_nonnull(p);
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(i * 31 + seed + (i >> 8));
	return p;
}

/* ---- server helpers --------------------------------------------------------- */

struct server {
	void *state;
	uint16_t port;
	struct mock_watch *w;
	struct mock_timer *sweep;
	size_t allocs_unbound; /* before server_bind */
	size_t allocs_bound;   /* right after it, with no flow */
};

static int bind_at(const char *options, uint16_t port, void **state, char *err, size_t errlen)
{
	struct sockaddr_in a = loopback(port);
	json_t *o = parse(options);
	struct mgrok_proxy_spec spec = {
	        .name = "visitors",
	        .type = 0x02,
	        .remote_port = port,
	        .options = o,
	        .addr = (struct sockaddr *)&a,
	        .addr_len = sizeof(a),
	};
	err[0] = '\0';
	int rc = ops->server_bind(inst, PX, &spec, state, err, errlen);
	json_decref(o);
	return rc;
}

static struct server server_start(const char *options, double sweep_every)
{
	struct server s = {.allocs_unbound = mock.live_allocs};
	int watches = mock.n_watches, timers = mock.n_timers;
	char err[256];
	int rc = -EADDRINUSE;
	/* Another test may take the free port first: try a few. */
	for (int tries = 0; tries < 20 && rc == -EADDRINUSE; tries++) {
		s.port = free_port();
		rc = bind_at(options, s.port, &s.state, err, sizeof(err));
	}
	ck_assert_msg(rc == 0, "server_bind: %d %s", rc, err);
	ck_assert_ptr_nonnull(s.state);
	ck_assert_int_eq(mock.n_watches, watches + 1);
	ck_assert_int_eq(mock.n_timers, timers + 1);
	s.w = &mock.watches[watches];
	s.sweep = &mock.timers[timers];
	ck_assert(s.w->live);
	ck_assert_int_eq(s.w->events, MGROK_EV_READ);
	ck_assert_uint_eq(local_port(s.w->fd), s.port);
	ck_assert(!port_bindable(s.port));
	/* The sweep runs every quarter of the idle timeout. */
	ck_assert(s.sweep->armed);
	ck_assert_double_eq_tol(s.sweep->delay, sweep_every, 1e-9);
	ck_assert_int_eq(mock.opens, 0);
	s.allocs_bound = mock.live_allocs;
	ck_assert_uint_gt(s.allocs_bound, s.allocs_unbound);
	return s;
}

/* The host ends every stream still open, then unbinds (plugin.h's order). */
static void server_stop(struct server *s)
{
	for (int i = 0; i < mock.n_streams; i++)
		if (!mock.streams[i]->ended && mock.streams[i]->attaches)
			end_stream(mock.streams[i]);
	ck_assert_msg(mock.live_allocs == s->allocs_bound,
	              "%zu allocations with every flow ended, %zu after bind", mock.live_allocs,
	              s->allocs_bound);
	ops->server_unbind(inst, s->state);
	ck_assert(!s->w->live);
	ck_assert(!s->sweep->live);
	ck_assert_msg(port_bindable(s->port), "port %u still bound after server_unbind", s->port);
	ck_assert_uint_eq(mock.live_allocs, s->allocs_unbound);
}

/* ---- init and options ------------------------------------------------------- */

START_TEST(test_descriptor)
{
	memset(&mock, 0, sizeof(mock));
	load_plugin();
	ck_assert_uint_eq(desc->abi_major, MGROK_PLUGIN_ABI_MAJOR);
	ck_assert_uint_ge(desc->abi_minor, 1); /* datagram streams */
	ck_assert_uint_le(desc->abi_minor, MGROK_PLUGIN_ABI_MINOR);
	ck_assert_uint_eq(desc->size, sizeof(struct mgrok_plugin_desc));
	ck_assert_uint_eq(desc->kind, MGROK_PLUGIN_PROXY);
	ck_assert_str_eq(desc->name, "udp");
	ck_assert_uint_eq(desc->wire_id, 0x02);
	ck_assert(desc->init != NULL);
	ck_assert(desc->fini != NULL);
	ck_assert_ptr_null(desc->auth);
	ck_assert_ptr_nonnull(ops);
	ck_assert(ops->server_bind != NULL);
	ck_assert(ops->server_unbind != NULL);
	ck_assert(ops->client_open != NULL);
	ck_assert(ops->check_options != NULL);
	ck_assert(ops->on_datagram != NULL);
	ck_assert(ops->on_stream_end != NULL);
	unload_plugin();
}
END_TEST

START_TEST(test_init_needs_abi_1_1)
{
	memset(&mock, 0, sizeof(mock));
	load_plugin();
	struct mgrok_host old = host;
	old.abi_minor = 0;
	/* A 1.0 host table ends before the datagram functions. */
	old.size = (uint32_t)offsetof(struct mgrok_host, stream_attach_datagram);
	old.stream_attach_datagram = NULL;
	old.stream_send = NULL;
	old.stream_close = NULL;
	char err[256];
	inst = NULL;
	ck_assert_int_eq(init_with(&old, "{}", err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "1.1") != NULL, "error \"%s\" does not name ABI 1.1", err);
	ck_assert_ptr_null(inst);
	ck_assert_uint_eq(mock.live_allocs, 0);

	ck_assert_msg(init_with(&host, "{}", err, sizeof(err)) == 0, "init: %s", err);
	ck_assert_ptr_nonnull(inst);
	desc->fini(inst);
	ck_assert_uint_eq(mock.live_allocs, 0);
	unload_plugin();
}
END_TEST

START_TEST(test_init_refuses_options)
{
	static const char *const bad[] = {
	        "{\"idle_timeout\": 5}",
	        "{\"max_flows\": 10}",
	        "{\"x\": 1}",
	};
	memset(&mock, 0, sizeof(mock));
	load_plugin();
	char err[256];
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		inst = NULL;
		ck_assert_msg(init_with(&host, bad[i], err, sizeof(err)) == -1, "%s accepted",
		              bad[i]);
		ck_assert_msg(strlen(err) > 0, "%s: no reason", bad[i]);
		ck_assert_ptr_null(inst);
		ck_assert_uint_eq(mock.live_allocs, 0);
	}
	unload_plugin();
}
END_TEST

START_TEST(test_check_options)
{
	static const char *const good[] = {
	        "{}",
	        "{\"idle_timeout\": 1.5, \"max_flows\": 10}",
	        "{\"idle_timeout\": 2}",
	        "{\"idle_timeout\": 0.1}",
	        "{\"max_flows\": 1}",
	        "{\"max_flows\": 65536}",
	};
	static const struct {
		const char *json, *mentions;
	} bad[] = {
	        {"{\"bogus\": 1}", "bogus"},
	        {"{\"idle_timeout\": 5, \"idle\": 5}", "\"idle\""},
	        {"{\"Idle_timeout\": 5}", "Idle_timeout"},
	        {"{\"idle_timeout\": 0}", "idle_timeout"},
	        {"{\"idle_timeout\": 0.001}", "idle_timeout"},
	        {"{\"idle_timeout\": 0.0}", "idle_timeout"},
	        {"{\"idle_timeout\": -1}", "idle_timeout"},
	        {"{\"idle_timeout\": \"5\"}", "idle_timeout"},
	        {"{\"idle_timeout\": null}", "idle_timeout"},
	        {"{\"idle_timeout\": [5]}", "idle_timeout"},
	        {"{\"max_flows\": 0}", "max_flows"},
	        {"{\"max_flows\": -1}", "max_flows"},
	        {"{\"max_flows\": 65537}", "max_flows"},
	        {"{\"max_flows\": 1.5}", "max_flows"},
	        {"{\"max_flows\": 10.0}", "max_flows"},
	        {"{\"max_flows\": \"10\"}", "max_flows"},
	        {"{\"max_flows\": true}", "max_flows"},
	        {"{\"max_flows\": 10, \"idle_timeout\": -2}", "idle_timeout"},
	};
	char err[256];
	size_t allocs = mock.live_allocs;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		json_t *o = parse(good[i]);
		err[0] = '\0';
		ck_assert_msg(ops->check_options(inst, o, err, sizeof(err)) == 0, "%s refused: %s",
		              good[i], err);
		json_decref(o);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		json_t *o = parse(bad[i].json);
		err[0] = '\0';
		ck_assert_msg(ops->check_options(inst, o, err, sizeof(err)) == -1, "%s accepted",
		              bad[i].json);
		ck_assert_msg(strstr(err, bad[i].mentions) != NULL,
		              "%s: \"%s\" does not mention %s", bad[i].json, err, bad[i].mentions);
		json_decref(o);
	}
	/* A short error buffer is not overrun. */
	char small[8];
	memset(small, 'x', sizeof(small));
	json_t *o = parse("{\"bogus_option_with_a_long_name\": 1}");
	ck_assert_int_eq(ops->check_options(inst, o, small, 4), -1);
	ck_assert_uint_le(strlen(small), 3);
	ck_assert_int_eq(small[4], 'x');
	json_decref(o);
	ck_assert_uint_eq(mock.live_allocs, allocs);
}
END_TEST

/* ---- server ----------------------------------------------------------------- */

START_TEST(test_server_bind_errors)
{
	char err[256];
	void *state = NULL;
	size_t allocs = mock.live_allocs;
	int fd0 = next_fd();

	/* Bad options: refused before any socket. */
	ck_assert_int_eq(bind_at("{\"max_flows\": 0}", free_port(), &state, err, sizeof(err)),
	                 -EINVAL);
	ck_assert_msg(strstr(err, "max_flows") != NULL, "\"%s\"", err);

	/* A port in use: -EADDRINUSE, so that the host can try another. */
	int taken = udp_socket();
	uint16_t port = local_port(taken);
	ck_assert_int_eq(bind_at("{}", port, &state, err, sizeof(err)), -EADDRINUSE);
	char portstr[16];
	snprintf(portstr, sizeof(portstr), "%u", port);
	ck_assert_msg(strstr(err, portstr) != NULL, "\"%s\" does not name the port", err);
	close(taken);

	ck_assert_ptr_null(state);
	ck_assert_int_eq(mock.n_watches, 0);
	ck_assert_int_eq(mock.n_timers, 0);
	ck_assert_uint_eq(mock.live_allocs, allocs);
	ck_assert_int_eq(next_fd(), fd0);
}
END_TEST

/* Three visitors: three streams, each datagram once, replies to the right one. */
START_TEST(test_server_visitors)
{
	int fd0 = next_fd();
	struct server srv = server_start("{}", 15);
	int v[3];
	for (int i = 0; i < 3; i++)
		v[i] = udp_socket();

	send_str(v[0], srv.port, "hello from 0");
	send_str(v[1], srv.port, "hello from 1");
	send_str(v[2], srv.port, "hello from 2");
	pump(srv.w, 3);
	ck_assert_int_eq(mock.opens, 3);
	ck_assert_int_eq(mock.n_streams, 3);
	ck_assert_uint_eq(mock.live_allocs, srv.allocs_bound + 3);
	struct mock_stream *st[3];
	for (int i = 0; i < 3; i++) {
		st[i] = stream_of(v[i]);
		ck_assert_msg(st[i] != NULL, "no stream for visitor %d", i);
		ck_assert_uint_eq(st[i]->src_len, sizeof(struct sockaddr_in));
		ck_assert_int_eq(st[i]->attaches, 1);
		ck_assert_ptr_nonnull(st[i]->arg);
		char text[32];
		snprintf(text, sizeof(text), "hello from %d", i);
		ck_assert_int_eq(count_sent(st[i]), 1);
		expect_sent_str(st[i], 0, text);
	}
	ck_assert_ptr_ne(st[0]->arg, st[1]->arg);
	ck_assert_ptr_ne(st[1]->arg, st[2]->arg);
	ck_assert_ptr_ne(st[0]->arg, st[2]->arg);

	/* Known visitors: no new stream; an empty and a largest datagram pass whole. */
	uint8_t *big = pattern(MAX_DGRAM, 7);
	send_to(v[1], srv.port, "", 0);
	pump(srv.w, 4);
	send_to(v[2], srv.port, big, MAX_DGRAM);
	pump(srv.w, 5);
	send_str(v[0], srv.port, "again");
	send_str(v[0], srv.port, "and again");
	pump(srv.w, 7);
	ck_assert_int_eq(mock.opens, 3);
	ck_assert_int_eq(count_sent(st[0]), 3);
	expect_sent_str(st[0], 1, "again");
	expect_sent_str(st[0], 2, "and again");
	ck_assert_int_eq(count_sent(st[1]), 2);
	expect_sent(st[1], 1, "", 0);
	ck_assert_int_eq(count_sent(st[2]), 2);
	expect_sent(st[2], 1, big, MAX_DGRAM);
	ck_assert_int_eq(mock.n_closed, 0);

	/* Replies go to the visitor of the stream, from the public port. */
	to_plugin(st[1], "reply 1", 7);
	expect_datagram(v[1], "reply 1", 7, srv.port);
	to_plugin(st[0], "reply 0", 7);
	expect_datagram(v[0], "reply 0", 7, srv.port);
	to_plugin(st[2], big, MAX_DGRAM);
	expect_datagram(v[2], big, MAX_DGRAM, srv.port);
	to_plugin(st[2], "", 0);
	expect_datagram(v[2], "", 0, srv.port);
	for (int i = 0; i < 3; i++)
		expect_nothing(v[i]);
	free(big);

	server_stop(&srv);
	ck_assert_int_eq(mock.n_closed, 0); /* ended by the host, not closed by the plugin */
	for (int i = 0; i < 3; i++)
		close(v[i]);
	ck_assert_int_eq(next_fd(), fd0);
}
END_TEST

/* max_flows: the least recently used flow makes room (doc/protocol.md 5). */
START_TEST(test_server_max_flows)
{
	struct server srv = server_start("{\"max_flows\": 2}", 15);
	int a = udp_socket(), b = udp_socket(), c = udp_socket(), d = udp_socket();
	int n = 0;

	send_str(a, srv.port, "a1");
	pump(srv.w, ++n);
	mock.clock += 1;
	send_str(b, srv.port, "b1");
	pump(srv.w, ++n);
	struct mock_stream *sa = stream_of(a), *sb = stream_of(b);
	ck_assert_ptr_nonnull(sa);
	ck_assert_ptr_nonnull(sb);
	mock.clock += 1;
	send_str(a, srv.port, "a2"); /* a is now more recent than b */
	pump(srv.w, ++n);
	ck_assert_int_eq(mock.n_closed, 0);

	mock.clock += 1;
	send_str(c, srv.port, "c1");
	pump(srv.w, ++n);
	ck_assert_int_eq(mock.n_closed, 1);
	ck_assert_ptr_eq(mock.closed[0], sb);
	ck_assert_int_eq(sa->closes, 0);
	struct mock_stream *sc = stream_of(c);
	ck_assert_ptr_nonnull(sc);
	expect_sent_str(sc, 0, "c1");
	ck_assert_int_eq(mock.opens, 3);
	/* b's flow is out of the table but its memory waits for on_stream_end. */
	ck_assert_uint_eq(mock.live_allocs, srv.allocs_bound + 3);
	end_stream(sb);
	ck_assert_uint_eq(mock.live_allocs, srv.allocs_bound + 2);

	/* A reply counts as traffic too: after one to a, c is the oldest. */
	mock.clock += 1;
	to_plugin(sa, "to a", 4);
	expect_datagram(a, "to a", 4, srv.port);
	mock.clock += 1;
	send_str(d, srv.port, "d1");
	pump(srv.w, ++n);
	ck_assert_int_eq(mock.n_closed, 2);
	ck_assert_ptr_eq(mock.closed[1], sc);
	ck_assert_int_eq(sa->closes, 0);
	struct mock_stream *sd = stream_of(d);
	ck_assert_ptr_nonnull(sd);
	expect_sent_str(sd, 0, "d1");

	/* b comes back: a new stream, and a (now the oldest) makes room. */
	mock.clock += 1;
	send_str(b, srv.port, "b2");
	pump(srv.w, ++n);
	ck_assert_int_eq(mock.n_closed, 3);
	ck_assert_ptr_eq(mock.closed[2], sa);
	struct mock_stream *sb2 = stream_of(b);
	ck_assert_ptr_nonnull(sb2);
	ck_assert_ptr_ne(sb2, sb);
	ck_assert_int_eq(count_sent(sb2), 1);
	expect_sent_str(sb2, 0, "b2");
	ck_assert_int_eq(count_sent(sb), 1); /* nothing more went to the old stream */
	ck_assert_int_eq(mock.opens, 5);

	/* The evicted flows end when the host says so; memory follows. */
	ck_assert_uint_eq(mock.live_allocs, srv.allocs_bound + 4);
	end_stream(sa);
	end_stream(sc);
	ck_assert_uint_eq(mock.live_allocs, srv.allocs_bound + 2);
	server_stop(&srv);
	close(a);
	close(b);
	close(c);
	close(d);
}
END_TEST

/* The sweep closes flows idle for idle_timeout, and only those. */
START_TEST(test_server_idle)
{
	struct server srv = server_start("{\"idle_timeout\": 10}", 2.5);
	int a = udp_socket(), b = udp_socket(), c = udp_socket();
	int n = 0;
	mock.clock = 1000;
	send_str(a, srv.port, "a");
	send_str(b, srv.port, "b");
	pump(srv.w, n += 2);
	struct mock_stream *sa = stream_of(a), *sb = stream_of(b);
	ck_assert_ptr_nonnull(sa);
	ck_assert_ptr_nonnull(sb);

	mock.clock = 1002.5;
	int sets = srv.sweep->sets;
	fire(srv.sweep);
	ck_assert_int_eq(mock.n_closed, 0);
	ck_assert(srv.sweep->armed);
	ck_assert_double_eq_tol(srv.sweep->delay, 2.5, 1e-9);
	ck_assert_int_eq(srv.sweep->sets, sets + 1);

	mock.clock = 1006;
	send_str(a, srv.port, "a again");
	pump(srv.w, ++n);

	mock.clock = 1009.99;
	fire(srv.sweep);
	ck_assert_int_eq(mock.n_closed, 0);

	mock.clock = 1011; /* b idle 11 s, a 5 s */
	fire(srv.sweep);
	ck_assert_int_eq(mock.n_closed, 1);
	ck_assert_ptr_eq(mock.closed[0], sb);
	ck_assert_int_eq(sa->closes, 0);
	ck_assert(srv.sweep->armed);
	ck_assert_uint_eq(mock.live_allocs, srv.allocs_bound + 2);
	end_stream(sb);
	ck_assert_uint_eq(mock.live_allocs, srv.allocs_bound + 1);

	/* c arrives; a reply to c at 1020 keeps it alive past a. */
	send_str(c, srv.port, "c");
	pump(srv.w, ++n);
	struct mock_stream *sc = stream_of(c);
	ck_assert_ptr_nonnull(sc);
	mock.clock = 1015.9;
	fire(srv.sweep);
	ck_assert_int_eq(mock.n_closed, 1);
	mock.clock = 1016; /* a idle exactly 10 s */
	fire(srv.sweep);
	ck_assert_int_eq(mock.n_closed, 2);
	ck_assert_ptr_eq(mock.closed[1], sa);
	ck_assert_int_eq(sc->closes, 0);

	mock.clock = 1020;
	to_plugin(sc, "to c", 4);
	expect_datagram(c, "to c", 4, srv.port);
	mock.clock = 1029;
	fire(srv.sweep);
	ck_assert_int_eq(mock.n_closed, 2);
	mock.clock = 1030;
	fire(srv.sweep);
	ck_assert_int_eq(mock.n_closed, 3);
	ck_assert_ptr_eq(mock.closed[2], sc);

	/* Nothing left: the sweep does nothing and keeps running. */
	mock.clock = 2000;
	fire(srv.sweep);
	ck_assert_int_eq(mock.n_closed, 3);
	ck_assert(srv.sweep->armed);
	ck_assert_int_eq(mock.opens, 3);

	server_stop(&srv); /* ends sa and sc, still waiting for their CLOSE */
	close(a);
	close(b);
	close(c);
}
END_TEST

/* No window: the datagram is dropped, the flow stays and later ones pass. */
START_TEST(test_server_no_window)
{
	struct server srv = server_start("{}", 15);
	int a = udp_socket();
	mock.no_window = true;
	send_str(a, srv.port, "one");
	pump(srv.w, 1);
	struct mock_stream *sa = stream_of(a);
	ck_assert_ptr_nonnull(sa);
	ck_assert_int_eq(sa->refused, 1);
	send_str(a, srv.port, "two");
	send_str(a, srv.port, "three");
	pump(srv.w, 3);
	ck_assert_int_eq(sa->refused, 3);
	ck_assert_int_eq(count_sent(sa), 0);
	ck_assert_int_eq(mock.dropped_px, 3); /* the server's flows know their proxy */
	ck_assert_int_eq(mock.dropped_st, 0);

	mock.no_window = false;
	send_str(a, srv.port, "four");
	pump(srv.w, 4);
	ck_assert_int_eq(mock.opens, 1);
	ck_assert_int_eq(count_sent(sa), 1);
	expect_sent_str(sa, 0, "four");
	ck_assert_int_eq(mock.n_closed, 0);
	server_stop(&srv);
	close(a);
}
END_TEST

/* stream_open fails (session at its stream limit): the datagram is dropped, no flow. */
START_TEST(test_server_open_fails)
{
	struct server srv = server_start("{}", 15);
	int a = udp_socket();
	mock.open_fails = true;
	send_str(a, srv.port, "lost");
	pump(srv.w, 1);
	ck_assert_int_eq(mock.opens, 1);
	ck_assert_int_eq(mock.n_streams, 0);
	ck_assert_int_eq(mock.send_calls, 0);
	ck_assert_uint_eq(mock.live_allocs, srv.allocs_bound);
	send_str(a, srv.port, "lost too");
	pump(srv.w, 2);
	ck_assert_int_eq(mock.opens, 2); /* tried again: nothing stale was kept */
	ck_assert_int_eq(mock.dropped_px, 2);

	mock.open_fails = false;
	send_str(a, srv.port, "kept");
	pump(srv.w, 3);
	ck_assert_int_eq(mock.opens, 3);
	struct mock_stream *sa = stream_of(a);
	ck_assert_ptr_nonnull(sa);
	ck_assert_int_eq(count_sent(sa), 1);
	expect_sent_str(sa, 0, "kept");
	ck_assert_uint_eq(mock.live_allocs, srv.allocs_bound + 1);
	server_stop(&srv);
	close(a);
}
END_TEST

/* stream_close may end the stream before it returns: eviction and sweep survive it. */
START_TEST(test_server_close_at_once)
{
	struct server srv = server_start("{\"max_flows\": 2, \"idle_timeout\": 10}", 2.5);
	int a = udp_socket(), b = udp_socket(), c = udp_socket();
	mock.close_ends_at_once = true;
	send_str(a, srv.port, "a");
	pump(srv.w, 1);
	send_str(b, srv.port, "b");
	pump(srv.w, 2);
	struct mock_stream *sa = stream_of(a), *sb = stream_of(b);
	ck_assert_ptr_nonnull(sa);
	ck_assert_ptr_nonnull(sb);
	mock.clock = 1001;
	send_str(c, srv.port, "c"); /* evicts a, which ends at once */
	pump(srv.w, 3);
	ck_assert_int_eq(mock.n_closed, 1);
	ck_assert_ptr_eq(mock.closed[0], sa);
	ck_assert(sa->ended);
	ck_assert_uint_eq(mock.live_allocs, srv.allocs_bound + 2);
	struct mock_stream *sc = stream_of(c);
	ck_assert_ptr_nonnull(sc);
	expect_sent_str(sc, 0, "c");

	mock.clock = 1020; /* both idle: the sweep ends them one after the other */
	fire(srv.sweep);
	ck_assert_int_eq(mock.n_closed, 3);
	ck_assert_ptr_eq(mock.closed[1], sb);
	ck_assert_ptr_eq(mock.closed[2], sc);
	ck_assert(sb->ended && sc->ended);
	ck_assert_uint_eq(mock.live_allocs, srv.allocs_bound);
	ck_assert(srv.sweep->armed);

	/* The table is consistent afterwards: a comes back as a new flow. */
	send_str(a, srv.port, "a again");
	pump(srv.w, 4);
	struct mock_stream *sa2 = stream_of(a);
	ck_assert_ptr_nonnull(sa2);
	ck_assert_ptr_ne(sa2, sa);
	expect_sent_str(sa2, 0, "a again");
	to_plugin(sa2, "back", 4);
	expect_datagram(a, "back", 4, srv.port);
	server_stop(&srv);
	close(a);
	close(b);
	close(c);
}
END_TEST

/* Unbind with flows evicted but not yet ended: the host ends them first. */
START_TEST(test_server_unbind)
{
	int fd0 = next_fd();
	struct server srv = server_start("{\"max_flows\": 1, \"idle_timeout\": 4}", 1);
	int a = udp_socket(), b = udp_socket();
	send_str(a, srv.port, "a");
	pump(srv.w, 1);
	send_str(b, srv.port, "b"); /* evicts a */
	pump(srv.w, 2);
	ck_assert_int_eq(mock.n_closed, 1);
	ck_assert_ptr_eq(mock.closed[0], mock.streams[0]);
	server_stop(&srv);

	/* Bound again on the same port, and still working. */
	size_t before = mock.live_allocs;
	void *state = NULL;
	char err[256];
	ck_assert_msg(bind_at("{}", srv.port, &state, err, sizeof(err)) == 0, "rebind: %s", err);
	struct mock_watch *w = &mock.watches[mock.n_watches - 1];
	send_str(a, srv.port, "a again");
	pump(w, 3);
	ck_assert_int_eq(mock.n_streams, 3);
	end_stream(mock.streams[2]);
	ops->server_unbind(inst, state);
	ck_assert_uint_eq(mock.live_allocs, before);
	close(a);
	close(b);
	ck_assert_int_eq(next_fd(), fd0);
}
END_TEST

/* ---- client ----------------------------------------------------------------- */

struct client {
	struct mock_stream *st;
	int echo; /* the local service: a test socket */
	uint16_t echo_port;
	struct mock_watch *w;
	struct mock_timer *idle;
	uint16_t port; /* the plugin socket's own port */
	size_t allocs_before;
};

static void client_open_with(const char *options, const struct sockaddr *addr, socklen_t len,
                             struct mock_stream *st)
{
	json_t *o = parse(options);
	struct mgrok_proxy_spec spec = {
	        .name = "local",
	        .type = 0x02,
	        .remote_port = 9000,
	        .local_port = 0,
	        .options = o,
	        .addr = addr,
	        .addr_len = len,
	};
	if (addr && addr->sa_family == AF_INET)
		spec.local_port = ntohs(((const struct sockaddr_in *)addr)->sin_port);
	ops->client_open(inst, &spec, (struct mgrok_stream *)st);
	json_decref(o);
}

static struct client client_start(const char *options, double idle)
{
	struct client c = {.allocs_before = mock.live_allocs};
	c.echo = udp_socket();
	c.echo_port = local_port(c.echo);
	struct sockaddr_in a = loopback(c.echo_port);
	int watches = mock.n_watches, timers = mock.n_timers;
	c.st = stream_new();
	client_open_with(options, (struct sockaddr *)&a, sizeof(a), c.st);
	ck_assert_int_eq(c.st->reset_code, -1);
	ck_assert_int_eq(c.st->attaches, 1);
	ck_assert_ptr_nonnull(c.st->arg);
	ck_assert_int_eq(mock.n_watches, watches + 1);
	ck_assert_int_eq(mock.n_timers, timers + 1);
	c.w = &mock.watches[watches];
	c.idle = &mock.timers[timers];
	ck_assert(c.w->live);
	ck_assert_int_eq(c.w->events, MGROK_EV_READ);
	ck_assert(c.idle->armed);
	ck_assert_double_eq_tol(c.idle->delay, idle, 1e-9);
	/* A socket connected to the local service. */
	struct sockaddr_in peer = {0};
	socklen_t plen = sizeof(peer);
	ck_assert_int_eq(getpeername(c.w->fd, (struct sockaddr *)&peer, &plen), 0);
	ck_assert(same_inet((struct sockaddr_storage *)&peer, &a));
	c.port = local_port(c.w->fd);
	ck_assert_int_eq(fcntl(c.w->fd, F_GETFL) & O_NONBLOCK, O_NONBLOCK);
	ck_assert_int_eq(fcntl(c.w->fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
	ck_assert_uint_gt(mock.live_allocs, c.allocs_before);
	return c;
}

/* Datagrams both ways through one client flow, then the session ends. */
START_TEST(test_client_relay)
{
	int fd0 = next_fd();
	struct client c = client_start("{}", 60);
	int fd = c.w->fd;

	to_plugin(c.st, "ping", 4);
	expect_datagram(c.echo, "ping", 4, c.port);
	to_plugin(c.st, "", 0);
	expect_datagram(c.echo, "", 0, c.port);
	uint8_t *big = pattern(MAX_DGRAM, 3);
	to_plugin(c.st, big, MAX_DGRAM);
	expect_datagram(c.echo, big, MAX_DGRAM, c.port);

	send_str(c.echo, c.port, "pong");
	pump(c.w, 1);
	send_to(c.echo, c.port, "", 0);
	send_to(c.echo, c.port, big, MAX_DGRAM);
	send_str(c.echo, c.port, "last");
	pump(c.w, 4);
	ck_assert_int_eq(count_sent(c.st), 4);
	expect_sent_str(c.st, 0, "pong");
	expect_sent(c.st, 1, "", 0);
	expect_sent(c.st, 2, big, MAX_DGRAM);
	expect_sent_str(c.st, 3, "last");
	free(big);

	/* No window: dropped, and the next one goes. */
	mock.no_window = true;
	send_str(c.echo, c.port, "dropped");
	pump(c.w, 5);
	mock.no_window = false;
	send_str(c.echo, c.port, "after");
	pump(c.w, 6);
	ck_assert_int_eq(count_sent(c.st), 5);
	expect_sent_str(c.st, 4, "after");
	ck_assert_int_eq(mock.dropped_st, 1); /* the client's name their stream */
	ck_assert_int_eq(mock.dropped_px, 0);
	ck_assert_int_eq(c.st->closes, 0);

	/* The session ends: socket, watcher, timer and memory go. */
	end_stream(c.st);
	ck_assert(!c.w->live);
	ck_assert(!c.idle->live);
	ck_assert_int_eq(fcntl(fd, F_GETFD), -1);
	ck_assert_int_eq(errno, EBADF);
	ck_assert_uint_eq(mock.live_allocs, c.allocs_before);
	close(c.echo);
	ck_assert_int_eq(next_fd(), fd0);
}
END_TEST

/* Several streams of one proxy: one socket each, no crosstalk. */
START_TEST(test_client_two_flows)
{
	struct client c1 = client_start("{}", 60);
	struct client c2 = client_start("{}", 60);
	ck_assert_int_ne(c1.w->fd, c2.w->fd);
	to_plugin(c1.st, "one", 3);
	to_plugin(c2.st, "two", 3);
	expect_datagram(c1.echo, "one", 3, c1.port);
	expect_datagram(c2.echo, "two", 3, c2.port);
	expect_nothing(c1.echo);
	expect_nothing(c2.echo);
	send_str(c2.echo, c2.port, "back 2");
	pump(c2.w, 1);
	send_str(c1.echo, c1.port, "back 1");
	pump(c1.w, 2);
	ck_assert_int_eq(count_sent(c1.st), 1);
	ck_assert_int_eq(count_sent(c2.st), 1);
	expect_sent_str(c1.st, 0, "back 1");
	expect_sent_str(c2.st, 0, "back 2");
	end_stream(c2.st);
	end_stream(c1.st);
	ck_assert_uint_eq(mock.live_allocs, c1.allocs_before);
	close(c1.echo);
	close(c2.echo);
}
END_TEST

/* The idle timer re-arms for the time left, and closes once idle long enough. */
START_TEST(test_client_idle)
{
	mock.clock = 100;
	struct client c = client_start("{\"idle_timeout\": 5}", 5);
	int fd = c.w->fd;

	mock.clock = 103;
	to_plugin(c.st, "x", 1); /* traffic towards the service */
	expect_datagram(c.echo, "x", 1, c.port);
	mock.clock = 105;
	fire(c.idle);
	ck_assert_int_eq(c.st->closes, 0);
	ck_assert(c.idle->armed);
	ck_assert_double_eq_tol(c.idle->delay, 3, 1e-9);
	ck_assert(c.w->live);

	mock.clock = 107;
	send_str(c.echo, c.port, "y"); /* traffic from the service */
	pump(c.w, 1);
	mock.clock = 108;
	fire(c.idle);
	ck_assert_int_eq(c.st->closes, 0);
	ck_assert(c.idle->armed);
	ck_assert_double_eq_tol(c.idle->delay, 4, 1e-9);

	mock.clock = 112; /* idle exactly 5 s */
	fire(c.idle);
	ck_assert_int_eq(c.st->closes, 1);
	ck_assert_int_eq(mock.n_closed, 1);
	ck_assert(!c.w->live);
	ck_assert_int_eq(fcntl(fd, F_GETFD), -1);
	ck_assert_int_eq(errno, EBADF);

	/* Until the peer's CLOSE ends it, a late datagram is dropped quietly. */
	to_plugin(c.st, "late", 4);
	expect_nothing(c.echo);
	ck_assert_uint_gt(mock.live_allocs, c.allocs_before);
	end_stream(c.st);
	ck_assert(!c.idle->live);
	ck_assert_uint_eq(mock.live_allocs, c.allocs_before);
	close(c.echo);
}
END_TEST

/*
 * In a network namespace of its own whose ephemeral ports are only 40000-
 * 40015, with loopback up. Needs CAP_SYS_ADMIN (make check runs as root);
 * false without it.
 */
static bool few_ephemeral_ports(void)
{
	if (unshare(CLONE_NEWNET) < 0)
		return false;
	int s = socket(AF_INET, SOCK_DGRAM, 0);
	struct ifreq ifr = {0};
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
	ck_assert_int_eq(ioctl(s, SIOCGIFFLAGS, &ifr), 0);
	ifr.ifr_flags |= IFF_UP;
	ck_assert_int_eq(ioctl(s, SIOCSIFFLAGS, &ifr), 0);
	close(s);
	FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "w");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_ge(fprintf(f, "40000 40015\n"), 0);
	ck_assert_int_eq(fclose(f), 0);
	return true;
}

/*
 * The port of a flow that just ended is not taken by the next flows: the
 * service would send its late replies to the old flow there, and they
 * would reach the new flow's visitor (tests/soak/test_udp_crosstalk.py).
 * With 16 ports, 8 flows one after the other all got distinct ports only
 * about 12% of the time before the quarantine. Without the rights for a
 * namespace, the same check runs over the machine's whole port range.
 */
START_TEST(test_client_ports_not_reused)
{
	bool few = few_ephemeral_ports();
	int echo = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
	struct sockaddr_in a = loopback(39999);
	ck_assert_int_eq(bind(echo, (struct sockaddr *)&a, sizeof(a)), 0);
	enum { FLOWS = 8 };
	uint16_t ports[FLOWS];
	for (int i = 0; i < FLOWS; i++) {
		int watches = mock.n_watches;
		struct mock_stream *st = stream_new();
		client_open_with("{}", (struct sockaddr *)&a, sizeof(a), st);
		ck_assert_int_eq(st->reset_code, -1);
		ports[i] = local_port(mock.watches[watches].fd);
		if (few)
			ck_assert(ports[i] >= 40000 && ports[i] <= 40015);
		for (int j = 0; j < i; j++)
			ck_assert_msg(ports[j] != ports[i], "flow %d got the port of flow %d (%u)",
			              i, j, ports[i]);
		end_stream(st);
		mock.clock += 0.5; /* all within the 5 s quarantine */
	}
	close(echo);
}
END_TEST

/* The idle close may end the flow inside stream_close (from the timer's callback). */
START_TEST(test_client_close_at_once)
{
	int fd0 = next_fd();
	mock.clock = 100;
	struct client c = client_start("{\"idle_timeout\": 5}", 5);
	mock.close_ends_at_once = true;
	mock.clock = 105;
	fire(c.idle);
	ck_assert_int_eq(c.st->closes, 1);
	ck_assert(c.st->ended);
	ck_assert(!c.w->live);
	ck_assert(!c.idle->live);
	ck_assert_uint_eq(mock.live_allocs, c.allocs_before);
	close(c.echo);
	ck_assert_int_eq(next_fd(), fd0);
}
END_TEST

/* Nothing listens on the local port: sends fail (ECONNREFUSED), nothing breaks. */
START_TEST(test_client_refused)
{
	struct client c = client_start("{}", 60);
	close(c.echo);
	for (int i = 0; i < 3; i++) {
		to_plugin(c.st, "anyone?", 7);
		struct pollfd p = {.fd = c.w->fd, .events = POLLIN};
		if (poll(&p, 1, 50) > 0)
			c.w->cb(c.w->arg, c.w->fd, MGROK_EV_READ);
	}
	ck_assert_int_eq(mock.send_calls, 0);
	ck_assert_int_eq(c.st->closes, 0);
	ck_assert(c.w->live);
	end_stream(c.st);
	ck_assert_uint_eq(mock.live_allocs, c.allocs_before);
}
END_TEST

/* The local end cannot be opened: RESET(CONNECT_FAILED), nothing attached or kept. */
START_TEST(test_client_open_fails)
{
	int fd0 = next_fd();
	size_t allocs = mock.live_allocs;
	struct sockaddr_in a = loopback(9);

	/* A zero-length address: connect() refuses it. */
	struct mock_stream *st = stream_new();
	client_open_with("{}", (struct sockaddr *)&a, 0, st);
	ck_assert_int_eq(st->reset_code, RESET_CONNECT_FAILED);
	ck_assert_int_eq(st->attaches, 0);

	/* A family the kernel has no datagram sockets for. */
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	ss.ss_family = AF_APPLETALK + 200;
	st = stream_new();
	client_open_with("{}", (struct sockaddr *)&ss, sizeof(ss), st);
	ck_assert_int_eq(st->reset_code, RESET_CONNECT_FAILED);
	ck_assert_int_eq(st->attaches, 0);

	/* Options a REGISTER could not have passed. */
	a = loopback(9);
	st = stream_new();
	client_open_with("{\"max_flows\": 0}", (struct sockaddr *)&a, sizeof(a), st);
	ck_assert_int_eq(st->reset_code, RESET_CONNECT_FAILED);
	ck_assert_int_eq(st->attaches, 0);

	ck_assert_int_eq(mock.n_watches, 0);
	ck_assert_int_eq(mock.n_timers, 0);
	ck_assert_int_eq(mock.n_closed, 0);
	ck_assert_uint_eq(mock.live_allocs, allocs);
	ck_assert_int_eq(next_fd(), fd0);
}
END_TEST

/* ---- suite ------------------------------------------------------------------ */

static Suite *udp_plugin_suite(void)
{
	Suite *s = suite_create("udp_plugin");
	TCase *tc;

	tc = tcase_create("init");
	tcase_add_test(tc, test_descriptor);
	tcase_add_test(tc, test_init_needs_abi_1_1);
	tcase_add_test(tc, test_init_refuses_options);
	suite_add_tcase(s, tc);

	tc = tcase_create("options");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_check_options);
	suite_add_tcase(s, tc);

	tc = tcase_create("server");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_server_bind_errors);
	tcase_add_test(tc, test_server_visitors);
	tcase_add_test(tc, test_server_max_flows);
	tcase_add_test(tc, test_server_idle);
	tcase_add_test(tc, test_server_no_window);
	tcase_add_test(tc, test_server_open_fails);
	tcase_add_test(tc, test_server_close_at_once);
	tcase_add_test(tc, test_server_unbind);
	tcase_set_timeout(tc, 30);
	suite_add_tcase(s, tc);

	tc = tcase_create("client");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_client_relay);
	tcase_add_test(tc, test_client_two_flows);
	tcase_add_test(tc, test_client_idle);
	tcase_add_test(tc, test_client_close_at_once);
	tcase_add_test(tc, test_client_ports_not_reused);
	tcase_add_test(tc, test_client_refused);
	tcase_add_test(tc, test_client_open_fails);
	tcase_set_timeout(tc, 30);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(udp_plugin_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
