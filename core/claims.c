#include "claims.h"
#include <stdio.h>

#if HAVE_HIREDIS

const bool mgrok_claims_available = true;

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wmissing-prototypes"
#include <hiredis/adapters/libev.h>
#pragma GCC diagnostic pop

#include "addr.h"
#include "buf.h"
#include "log.h"

#define RECONNECT_DELAY 1.0 /* s */

/*
 * A value is "OWNER|HOLDER". Taking: the key is free, or held under the
 * same OWNER (the same client come back through another node: it takes
 * its claims over). 1 taken, 0 not.
 */
static const char TAKE[] =
        "local v = redis.call('get', KEYS[1]) "
        "if v and (ARGV[3] == '' or string.sub(v, 1, #ARGV[3]) ~= ARGV[3]) then return 0 end "
        "redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1";
/* Only the holder may refresh or delete: the whole value says who holds
 * it. A lease that ran out (Redis was away, or lost its data) is written
 * again: 1 extended, 2 written again, 0 another's now. */
static const char REFRESH[] =
        "local v = redis.call('get', KEYS[1]) "
        "if v == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end "
        "if v then return 0 end "
        "redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 2";
static const char RELEASE[] = "if redis.call('get', KEYS[1]) == ARGV[1] then "
                              "return redis.call('del', KEYS[1]) end return 0";

enum claim_state { ASKING, HELD, OVER };

struct mgrok_claim {
	struct mgrok_claims *r;
	struct mgrok_claim *prev, *next;
	char *key, *value;
	mgrok_claim_cb cb;
	void *arg;
	enum claim_state state;
	bool released;     /* the owner is done: no more callbacks */
	unsigned inflight; /* commands whose answers will name it */
};

struct mgrok_claims {
	struct ev_loop *loop;
	char *host; /* or the unix socket's path */
	int port;   /* 0: unix socket */
	long long lease_ms;
	redisAsyncContext *ac; /* NULL while not connected */
	bool connected;
	bool failing; /* the last attempt failed, and was logged */
	ev_timer reconnect, refresh;
	struct mgrok_claim *claims;
};

static void claim_unlink_free(struct mgrok_claim *c)
{
	struct mgrok_claims *r = c->r;
	if (c->prev)
		c->prev->next = c->next;
	else
		r->claims = c->next;
	if (c->next)
		c->next->prev = c->prev;
	free(c->key);
	free(c->value);
	free(c);
}

/* A claim goes when its owner is done with it and no answer names it. */
static void claim_maybe_free(struct mgrok_claim *c)
{
	if (c->released && !c->inflight)
		claim_unlink_free(c);
}

static void report(struct mgrok_claim *c, enum mgrok_claim_status st)
{
	if (st != MGROK_CLAIM_OK)
		c->state = OVER;
	if (!c->released)
		c->cb(c->arg, c, st);
}

/* ---- the connection -------------------------------------------------------- */

static void connect_now(struct mgrok_claims *r);

/* A failed attempt: said once, until it is connected again (an outage
 * must not fill the log with a line a second). */
static void connect_failed(struct mgrok_claims *r, const char *why)
{
	if (!r->failing)
		MGROK_WARN("registry %s: cannot connect: %s (trying again every %.0f s)", r->host,
		           why, RECONNECT_DELAY);
	else
		MGROK_DEBUG("registry %s: cannot connect: %s", r->host, why);
	r->failing = true;
}

/* Set each time: a timer that ran keeps no delay of its own. */
static void reconnect_later(struct mgrok_claims *r)
{
	ev_timer_set(&r->reconnect, RECONNECT_DELAY, 0.);
	ev_timer_start(r->loop, &r->reconnect);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
	struct mgrok_claims *r = ac->data;
	if (status != REDIS_OK) {
		connect_failed(r, ac->errstr);
		r->ac = NULL; /* hiredis frees it */
		reconnect_later(r);
		return;
	}
	r->connected = true;
	r->failing = false;
	MGROK_INFO("registry %s: connected", r->host);
	/* Claims held while it was away are written again now, not a third of
	 * a lease later: Redis may have come back empty. */
	ev_feed_event(r->loop, &r->refresh, EV_TIMER);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
	struct mgrok_claims *r = ac->data;
	if (r->connected)
		MGROK_WARN("registry %s: connection lost: %s", r->host,
		           status == REDIS_OK ? "closed" : ac->errstr);
	r->connected = false;
	r->ac = NULL;
	reconnect_later(r);
}

static void connect_now(struct mgrok_claims *r)
{
	redisAsyncContext *ac =
	        r->port ? redisAsyncConnect(r->host, r->port) : redisAsyncConnectUnix(r->host);
	if (!ac || ac->err) {
		connect_failed(r, ac ? ac->errstr : "out of memory");
		if (ac)
			redisAsyncFree(ac);
		reconnect_later(r);
		return;
	}
	ac->data = r;
	redisLibevAttach(r->loop, ac);
	redisAsyncSetConnectCallback(ac, on_connect);
	redisAsyncSetDisconnectCallback(ac, on_disconnect);
	r->ac = ac;
}

static void on_reconnect(struct ev_loop *loop, ev_timer *w, int revents)
{
	connect_now(MGROK_CONTAINER_OF(w, struct mgrok_claims, reconnect));
}

/* A command about c; false (and nothing sent) when Redis is not there. */
static bool command(struct mgrok_claim *c, redisCallbackFn *fn, const char *fmt, ...)
{
	struct mgrok_claims *r = c->r;
	if (!r->ac || !r->connected)
		return false;
	va_list ap;
	va_start(ap, fmt);
	int rc = redisvAsyncCommand(r->ac, fn, c, fmt, ap);
	va_end(ap);
	if (rc != REDIS_OK)
		return false;
	c->inflight++;
	return true;
}

/* ---- claims ------------------------------------------------------------------ */

static void on_release(redisAsyncContext *ac, void *reply, void *privdata);

/* Callbacks run with the answer still counted in inflight, so that an
 * owner releasing its claim from one does not free it under us. */
static void on_set(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct mgrok_claim *c = privdata;
	redisReply *rep = reply;
	if (rep && rep->type == REDIS_REPLY_INTEGER && rep->integer == 1) {
		c->state = HELD;
		if (c->released) /* the owner went meanwhile: give it back */
			command(c, on_release, "EVAL %s 1 %s %s", RELEASE, c->key, c->value);
		else
			report(c, MGROK_CLAIM_OK);
	} else {
		report(c, rep && rep->type == REDIS_REPLY_INTEGER ? MGROK_CLAIM_TAKEN
		                                                  : MGROK_CLAIM_UNAVAILABLE);
	}
	c->inflight--;
	claim_maybe_free(c);
}

struct mgrok_claim *mgrok_claim_take(struct mgrok_claims *r, const char *key, const char *value,
                                     mgrok_claim_cb cb, void *arg)
{
	struct mgrok_claim *c = mgrok_xcalloc(1, sizeof(*c));
	c->r = r;
	c->key = mgrok_xstrdup(key);
	c->value = mgrok_xstrdup(value);
	c->cb = cb;
	c->arg = arg;
	c->next = r->claims;
	if (r->claims)
		r->claims->prev = c;
	r->claims = c;
	const char *bar = strchr(value, '|');
	char owner[MGROK_CLAIM_OWNER_MAX + 2] = "";
	if (bar && (size_t)(bar - value) <= MGROK_CLAIM_OWNER_MAX)
		snprintf(owner, sizeof(owner), "%.*s", (int)(bar - value + 1), value);
	if (!command(c, on_set, "EVAL %s 1 %s %s %lld %s", TAKE, key, value, r->lease_ms, owner)) {
		claim_unlink_free(c);
		return NULL;
	}
	return c;
}

/* The answer frees a claim released meanwhile; the release itself needs
 * no answer of its own. */
static void on_release(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct mgrok_claim *c = privdata;
	c->inflight--;
	claim_maybe_free(c);
}

void mgrok_claim_release(struct mgrok_claim *c)
{
	if (!c)
		return;
	c->released = true;
	if (c->state == HELD)
		command(c, on_release, "EVAL %s 1 %s %s", RELEASE, c->key, c->value);
	c->state = OVER;
	claim_maybe_free(c);
}

void mgrok_claim_forget(struct mgrok_claim *c)
{
	if (!c)
		return;
	c->released = true;
	c->state = OVER;
	claim_maybe_free(c);
}

static void on_refreshed(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct mgrok_claim *c = privdata;
	redisReply *rep = reply;
	if (c->state == HELD && rep && rep->type == REDIS_REPLY_INTEGER) {
		if (rep->integer == 0)
			report(c, MGROK_CLAIM_LOST); /* another's now */
		else if (rep->integer == 2)
			MGROK_INFO("registry %s: claim %s written again", c->r->host, c->key);
	}
	c->inflight--;
	claim_maybe_free(c);
}

/*
 * Each held claim's lease extended. While Redis is away nothing is lost:
 * no node can take a claim then, so its holder goes on serving it, and
 * writes it again when Redis is back (a claim taken meanwhile by another
 * node is LOST then).
 */
static void on_refresh_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct mgrok_claims *r = MGROK_CONTAINER_OF(w, struct mgrok_claims, refresh);
	for (struct mgrok_claim *c = r->claims; c; c = c->next)
		if (c->state == HELD && !c->released)
			command(c, on_refreshed, "EVAL %s 1 %s %s %lld", REFRESH, c->key, c->value,
			        r->lease_ms);
}

bool mgrok_claims_connected(const struct mgrok_claims *r) { return r->ac && r->connected; }

/* ---- listing ---------------------------------------------------------------- */

static const char LIST[] = "local out = {} "
                           "for _, k in ipairs(redis.call('keys', ARGV[1] .. '*')) do "
                           "local v = redis.call('get', k) "
                           "if v then out[#out + 1] = k out[#out + 1] = v end end "
                           "return out";

struct list_req {
	mgrok_claims_list_cb cb;
	void *arg;
};

static void on_list(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct list_req *q = privdata;
	redisReply *rep = reply;
	if (rep && rep->type == REDIS_REPLY_ARRAY && rep->elements % 2 == 0) {
		size_t n = rep->elements / 2;
		const char **keys = mgrok_xcalloc(n + 1, sizeof(*keys));
		const char **values = mgrok_xcalloc(n + 1, sizeof(*values));
		size_t got = 0;
		for (size_t i = 0; i < n; i++) {
			redisReply *k = rep->element[2 * i], *v = rep->element[2 * i + 1];
			if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
				continue;
			keys[got] = k->str;
			values[got++] = v->str;
		}
		q->cb(q->arg, got, (const char *const *)keys, (const char *const *)values);
		free(keys);
		free(values);
	}
	free(q);
}

void mgrok_claims_list(struct mgrok_claims *r, const char *prefix, mgrok_claims_list_cb cb,
                       void *arg)
{
	if (!r->ac || !r->connected)
		return;
	struct list_req *q = mgrok_xmalloc(sizeof(*q));
	q->cb = cb;
	q->arg = arg;
	if (redisAsyncCommand(r->ac, on_list, q, "EVAL %s 0 %s", LIST, prefix) != REDIS_OK)
		free(q);
}

/* ---- life cycle ----------------------------------------------------------------- */

struct mgrok_claims *mgrok_claims_new(struct ev_loop *loop, const char *addr, double lease,
                                      char *err, size_t errlen)
{
	char host[256];
	uint16_t port = 0;
	bool unix_path = strncmp(addr, "unix:", 5) == 0;
	if (!unix_path && mgrok_addr_split(addr, NULL, host, sizeof(host), &port, err, errlen) < 0)
		return NULL;
	if (!(lease >= 0.1)) {
		snprintf(err, errlen, "the lease must be at least 0.1 s");
		return NULL;
	}
	struct mgrok_claims *r = mgrok_xcalloc(1, sizeof(*r));
	r->loop = loop;
	r->host = mgrok_xstrdup(unix_path ? addr + 5 : host);
	r->port = port;
	r->lease_ms = (long long)(lease * 1000.0);
	ev_timer_init(&r->reconnect, on_reconnect, RECONNECT_DELAY, 0.);
	ev_timer_init(&r->refresh, on_refresh_tick, lease / 3, lease / 3);
	ev_timer_start(loop, &r->refresh);
	connect_now(r);
	return r;
}

void mgrok_claims_free(struct mgrok_claims *r)
{
	if (!r)
		return;
	ev_timer_stop(r->loop, &r->reconnect);
	ev_timer_stop(r->loop, &r->refresh);
	/* The leases end by themselves; no owner hears of its claim again. */
	for (struct mgrok_claim *c = r->claims; c; c = c->next)
		c->released = true;
	if (r->ac) {
		/* Calls back every command in flight, with no reply, at once. */
		redisAsyncSetDisconnectCallback(r->ac, NULL);
		redisAsyncFree(r->ac);
	}
	while (r->claims)
		claim_unlink_free(r->claims);
	free(r->host);
	free(r);
}

#else /* a build without hiredis: a "cluster" section is refused */

const bool mgrok_claims_available = false;

struct mgrok_claims *mgrok_claims_new(struct ev_loop *loop, const char *addr, double lease,
                                      char *err, size_t errlen)
{
	(void)loop, (void)addr, (void)lease;
	snprintf(err, errlen, "this build has no cluster support (configure found no hiredis)");
	return NULL;
}

void mgrok_claims_free(struct mgrok_claims *r) { (void)r; }

struct mgrok_claim *mgrok_claim_take(struct mgrok_claims *r, const char *key, const char *value,
                                     mgrok_claim_cb cb, void *arg)
{
	(void)r, (void)key, (void)value, (void)cb, (void)arg;
	return NULL;
}

void mgrok_claim_release(struct mgrok_claim *c) { (void)c; }

void mgrok_claim_forget(struct mgrok_claim *c) { (void)c; }

void mgrok_claims_list(struct mgrok_claims *r, const char *prefix, mgrok_claims_list_cb cb,
                       void *arg)
{
	(void)r, (void)prefix, (void)cb, (void)arg;
}

bool mgrok_claims_connected(const struct mgrok_claims *r)
{
	(void)r;
	return false;
}

#endif
