/*
 * What each proxy has carried, for the admin endpoint's counters. An entry
 * is keyed by proxy name, type and user, and outlives the proxy: a client
 * that reconnects and registers the same proxy again counts on in the same
 * entry, so a counter never goes back (Prometheus reads a drop as a
 * restart). Entries no proxy holds are forgotten, oldest first, once there
 * are more than MGROK_TRAFFIC_MAX.
 */
#ifndef MGROK_TRAFFIC_H
#define MGROK_TRAFFIC_H

#include <stddef.h>
#include <stdint.h>

#define MGROK_TRAFFIC_MAX 4096

struct mgrok_traffic {
	struct mgrok_traffic *prev, *next; /* the table's list, most recently used first */
	char *proxy, *type, *user;
	uint64_t bytes_in;  /* DATA payload toward the local service (from visitors) */
	uint64_t bytes_out; /* ... from the service back toward visitors */
	uint64_t streams_opened;
	uint64_t streams_open; /* now */
	uint64_t datagrams_dropped;
	unsigned refs; /* proxies holding it */
};

struct mgrok_traffic_table {
	struct mgrok_traffic *head, *tail;
	size_t n, max;
};

void mgrok_traffic_table_init(struct mgrok_traffic_table *t, size_t max);
void mgrok_traffic_table_free(struct mgrok_traffic_table *t);
/* The entry for (proxy, type, user), made if there is none; held until
 * mgrok_traffic_put. */
struct mgrok_traffic *mgrok_traffic_get(struct mgrok_traffic_table *t, const char *proxy,
                                        const char *type, const char *user);
/* NULL is fine. */
void mgrok_traffic_put(struct mgrok_traffic_table *t, struct mgrok_traffic *e);

#endif
