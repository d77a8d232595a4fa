/*
 * Claims in Redis (doc/cluster.md 2): a key (`mgrok:claim:tcp/20080`) held
 * by this node with a lease, taken with SET NX PX, refreshed by its holder
 * only, given back with a compare-and-delete. Asynchronous on the loop
 * (hiredis with its libev adapter): nothing waits for Redis. When Redis
 * cannot be reached, new claims are refused (UNAVAILABLE) and held ones
 * stay held: no node can take them meanwhile. When it is back they are
 * written again, and one another node took meanwhile is LOST.
 *
 * A value is "OWNER|HOLDER": whoever asks with the same OWNER (at most
 * MGROK_CLAIM_OWNER_MAX bytes) takes the claim over from its holder; a
 * value without '|' is never taken over.
 */
#ifndef MGROK_CLAIMS_H
#define MGROK_CLAIMS_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>

struct mgrok_claims;
struct mgrok_claim;

#define MGROK_CLAIM_OWNER_MAX 64

/* false in a build without hiredis: nothing here works then. */
extern const bool mgrok_claims_available;

enum mgrok_claim_status {
	MGROK_CLAIM_OK,          /* held: ours until released or lost */
	MGROK_CLAIM_TAKEN,       /* another holder has it */
	MGROK_CLAIM_UNAVAILABLE, /* Redis could not be asked */
	MGROK_CLAIM_LOST,        /* was held; another holder has it now */
};

/* Once with OK, TAKEN or UNAVAILABLE; after OK, maybe later with LOST.
 * Never after mgrok_claim_release. After any status but OK the claim is
 * over: release it (from the callback too). */
typedef void (*mgrok_claim_cb)(void *arg, struct mgrok_claim *c, enum mgrok_claim_status st);

/* addr: "unix:/path" or "host:port". lease in seconds; refreshed every
 * third of it. Connects (and reconnects) in the background. Returns NULL
 * with err only for an address it cannot use. */
struct mgrok_claims *mgrok_claims_new(struct ev_loop *loop, const char *addr, double lease,
                                      char *err, size_t errlen);
/* Claims still held end with their leases; no callback comes any more. */
void mgrok_claims_free(struct mgrok_claims *r);

/* Asks for key with value (this node's, to compare on refresh and
 * release). NULL, and no callback, when Redis cannot be asked now: that is
 * UNAVAILABLE. */
struct mgrok_claim *mgrok_claim_take(struct mgrok_claims *r, const char *key, const char *value,
                                     mgrok_claim_cb cb, void *arg);
/* Done with it: a held claim is given back; one still asked for is given
 * back if the answer grants it. */
void mgrok_claim_release(struct mgrok_claim *c);
/* Connected to Redis now (for the metrics). */
bool mgrok_claims_connected(const struct mgrok_claims *r);
/* Every key that starts with prefix, and its value: n pairs, once, when
 * Redis answers (never when it cannot be asked, or the claims are freed
 * first). For a small set of keys: it walks them all. */
typedef void (*mgrok_claims_list_cb)(void *arg, size_t n, const char *const *keys,
                                     const char *const *values);
void mgrok_claims_list(struct mgrok_claims *r, const char *prefix, mgrok_claims_list_cb cb,
                       void *arg);
/* Done with it, but others hold it with the same value (a group's
 * members): no callback comes any more, the lease is left to them. */
void mgrok_claim_forget(struct mgrok_claim *c);

#endif
