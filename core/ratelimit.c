#include "ratelimit.h"

#include <string.h>

#include "addr.h"

static size_t home_of(const uint8_t ip[16])
{
	uint32_t h = 2166136261u;
	for (int i = 0; i < 16; i++)
		h = (h ^ ip[i]) * 16777619u;
	return h % MGROK_RATELIMIT_SLOTS;
}

/* Open addressing over a short probe: an address lives in one of the 8
 * slots from its home; a new one takes a free slot there or the stalest. */
#define PROBE 8

static struct mgrok_ratelimit_entry *find(struct mgrok_ratelimit *r, const uint8_t ip[16], bool add,
                                          double now)
{
	size_t home = home_of(ip);
	struct mgrok_ratelimit_entry *free_slot = NULL, *stalest = NULL;
	for (size_t i = 0; i < PROBE; i++) {
		struct mgrok_ratelimit_entry *e = &r->slots[(home + i) % MGROK_RATELIMIT_SLOTS];
		if (!e->used) {
			if (!free_slot)
				free_slot = e;
		} else if (memcmp(e->ip, ip, 16) == 0) {
			return e;
		} else if (!stalest || e->last_seen < stalest->last_seen) {
			stalest = e;
		}
	}
	struct mgrok_ratelimit_entry *victim = free_slot ? free_slot : stalest;
	if (!add)
		return NULL;
	memset(victim, 0, sizeof(*victim));
	memcpy(victim->ip, ip, 16);
	victim->used = true;
	victim->window_start = now;
	return victim;
}

void mgrok_ratelimit_init(struct mgrok_ratelimit *r, unsigned max_failures, double interval)
{
	memset(r, 0, sizeof(*r));
	r->max_failures = max_failures;
	r->interval = interval;
}

bool mgrok_ratelimit_blocked(struct mgrok_ratelimit *r, const struct sockaddr *sa, double now)
{
	uint8_t ip[16];
	if (!r->max_failures || !mgrok_addr_ip16(sa, ip))
		return false;
	struct mgrok_ratelimit_entry *e = find(r, ip, false, now);
	if (!e || now >= e->blocked_until)
		return false;
	e->last_seen = now;
	return true;
}

bool mgrok_ratelimit_failure(struct mgrok_ratelimit *r, const struct sockaddr *sa, double now)
{
	uint8_t ip[16];
	if (!r->max_failures || !mgrok_addr_ip16(sa, ip))
		return false;
	struct mgrok_ratelimit_entry *e = find(r, ip, true, now);
	e->last_seen = now;
	if (now - e->window_start > r->interval) {
		e->window_start = now;
		e->failures = 0;
	}
	if (++e->failures < r->max_failures || now < e->blocked_until)
		return false;
	e->blocked_until = now + r->interval;
	e->failures = 0;
	e->window_start = now;
	return true;
}
