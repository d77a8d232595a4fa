/*
 * The udp plugin's table of visitor flows on the server side: lookup by
 * visitor address, least-recently-used order, idle expiry and a bound. Pure:
 * no sockets, no clock (callers pass the time), no allocation of flows.
 */
#ifndef MGROK_UDP_FLOW_TABLE_H
#define MGROK_UDP_FLOW_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

/* Embedded in the caller's flow object. */
struct udp_flow_entry {
	struct sockaddr_storage addr;
	socklen_t addr_len;
	double last_active;
	struct udp_flow_entry *hnext;
	struct udp_flow_entry *older, *newer; /* LRU list */
	bool in_table;
};

struct udp_flow_table {
	struct udp_flow_entry **buckets;
	size_t nbuckets; /* a power of two */
	size_t count;
	size_t max; /* the bound on count */
	struct udp_flow_entry *oldest, *newest;
	void *(*alloc)(size_t);
	void (*free)(void *);
};

/* Returns 0, or -1 if the allocator failed. */
int udp_flow_table_init(struct udp_flow_table *t, size_t max, void *(*alloc)(size_t),
                        void (*free_fn)(void *));
void udp_flow_table_free(struct udp_flow_table *t); /* the table, not the flows */

struct udp_flow_entry *udp_flow_lookup(const struct udp_flow_table *t, const struct sockaddr *addr,
                                       socklen_t len);
/* Adds e (its addr set) as the newest flow. The caller checks udp_flow_full first. */
void udp_flow_insert(struct udp_flow_table *t, struct udp_flow_entry *e, double now);
void udp_flow_remove(struct udp_flow_table *t, struct udp_flow_entry *e);
/* e had traffic at now: it becomes the newest. */
void udp_flow_touch(struct udp_flow_table *t, struct udp_flow_entry *e, double now);

static inline bool udp_flow_full(const struct udp_flow_table *t) { return t->count >= t->max; }
/* The least recently used flow, or NULL. */
static inline struct udp_flow_entry *udp_flow_oldest(const struct udp_flow_table *t)
{
	return t->oldest;
}
/* The oldest flow if it has been idle for at least idle seconds at now, else NULL. */
struct udp_flow_entry *udp_flow_expired(const struct udp_flow_table *t, double now, double idle);

#endif
