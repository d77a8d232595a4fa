/*
 * Failed handshakes per source address (doc/protocol.md 4): after `failures`
 * within `interval` seconds an address is refused for `interval` seconds.
 * Pure: the caller passes the time. Bounded: the oldest entries give way.
 */
#ifndef MGROK_RATELIMIT_H
#define MGROK_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "defaults.h"

struct mgrok_ratelimit_entry {
	uint8_t ip[16]; /* IPv4 as IPv4-mapped IPv6 */
	bool used;
	unsigned failures;
	double window_start;
	double blocked_until;
	double last_seen;
};

struct mgrok_ratelimit {
	unsigned max_failures; /* 0: never block */
	double interval;
	struct mgrok_ratelimit_entry slots[MGROK_RATELIMIT_SLOTS];
};

void mgrok_ratelimit_init(struct mgrok_ratelimit *r, unsigned max_failures, double interval);
/* Is sa blocked at now? Counts the refusal if so. */
bool mgrok_ratelimit_blocked(struct mgrok_ratelimit *r, const struct sockaddr *sa, double now);
/* A failed handshake from sa. True when it starts a block (log it then, once). */
bool mgrok_ratelimit_failure(struct mgrok_ratelimit *r, const struct sockaddr *sa, double now);

#endif
