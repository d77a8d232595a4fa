#include "flow_table.h"

#include <netinet/in.h>
#include <stdint.h>
#include <string.h>

#define MIN_BUCKETS 64

static uint32_t hash_bytes(const void *p, size_t n)
{
	/* FNV-1a: visitor addresses are attacker-chosen only in their port
	 * and address bits, and the table is bounded; this is enough. */
	const uint8_t *b = p;
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 16777619u;
	return h;
}

/* Only address and port count: sockaddr padding may differ between calls.
 * The port goes through the mixing too: visitors choose their ports. */
static uint32_t hash_addr(const struct sockaddr *sa)
{
	uint8_t key[18];
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		memcpy(key, &in->sin_addr, 4);
		memcpy(key + 4, &in->sin_port, 2);
		return hash_bytes(key, 6);
	}
	const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
	memcpy(key, &in6->sin6_addr, 16);
	memcpy(key + 16, &in6->sin6_port, 2);
	return hash_bytes(key, 18);
}

static bool same_addr(const struct sockaddr *a, const struct sockaddr *b)
{
	if (a->sa_family != b->sa_family)
		return false;
	if (a->sa_family == AF_INET) {
		const struct sockaddr_in *x = (const struct sockaddr_in *)a;
		const struct sockaddr_in *y = (const struct sockaddr_in *)b;
		return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)a;
	const struct sockaddr_in6 *y = (const struct sockaddr_in6 *)b;
	return x->sin6_port == y->sin6_port &&
	       memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
}

int udp_flow_table_init(struct udp_flow_table *t, size_t max, void *(*alloc)(size_t),
                        void (*free_fn)(void *))
{
	memset(t, 0, sizeof(*t));
	t->max = max;
	t->alloc = alloc;
	t->free = free_fn;
	/* Sized once for the bound: the table never grows. */
	t->nbuckets = MIN_BUCKETS;
	while (t->nbuckets < max)
		t->nbuckets *= 2;
	t->buckets = alloc(t->nbuckets * sizeof(*t->buckets));
	if (!t->buckets)
		return -1;
	memset(t->buckets, 0, t->nbuckets * sizeof(*t->buckets));
	return 0;
}

void udp_flow_table_free(struct udp_flow_table *t)
{
	t->free(t->buckets);
	t->buckets = NULL;
	t->count = 0;
	t->oldest = t->newest = NULL;
}

static struct udp_flow_entry **bucket(const struct udp_flow_table *t, const struct sockaddr *sa)
{
	return &t->buckets[hash_addr(sa) & (t->nbuckets - 1)];
}

struct udp_flow_entry *udp_flow_lookup(const struct udp_flow_table *t, const struct sockaddr *addr,
                                       socklen_t len)
{
	if (addr->sa_family != AF_INET && addr->sa_family != AF_INET6)
		return NULL;
	struct udp_flow_entry *e = *bucket(t, addr);
	while (e && !same_addr((const struct sockaddr *)&e->addr, addr))
		e = e->hnext;
	return e;
}

static void lru_unlink(struct udp_flow_table *t, struct udp_flow_entry *e)
{
	if (e->older)
		e->older->newer = e->newer;
	else
		t->oldest = e->newer;
	if (e->newer)
		e->newer->older = e->older;
	else
		t->newest = e->older;
	e->older = e->newer = NULL;
}

static void lru_push_newest(struct udp_flow_table *t, struct udp_flow_entry *e)
{
	e->older = t->newest;
	e->newer = NULL;
	if (t->newest)
		t->newest->newer = e;
	else
		t->oldest = e;
	t->newest = e;
}

void udp_flow_insert(struct udp_flow_table *t, struct udp_flow_entry *e, double now)
{
	struct udp_flow_entry **b = bucket(t, (const struct sockaddr *)&e->addr);
	e->hnext = *b;
	*b = e;
	e->last_active = now;
	e->in_table = true;
	lru_push_newest(t, e);
	t->count++;
}

void udp_flow_remove(struct udp_flow_table *t, struct udp_flow_entry *e)
{
	if (!e->in_table)
		return;
	struct udp_flow_entry **pp = bucket(t, (const struct sockaddr *)&e->addr);
	while (*pp && *pp != e)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = e->hnext;
	e->hnext = NULL;
	lru_unlink(t, e);
	e->in_table = false;
	t->count--;
}

void udp_flow_touch(struct udp_flow_table *t, struct udp_flow_entry *e, double now)
{
	e->last_active = now;
	if (t->newest == e)
		return;
	lru_unlink(t, e);
	lru_push_newest(t, e);
}

struct udp_flow_entry *udp_flow_expired(const struct udp_flow_table *t, double now, double idle)
{
	struct udp_flow_entry *e = t->oldest;
	return e && now - e->last_active >= idle ? e : NULL;
}
