/*
 * A server and a client of core/handshake.c talking in memory, for the unit
 * tests that drive whole handshakes (check_handshake, check_auth_users).
 * Nothing here does I/O: each side's output is delivered to the other's
 * inbox, whole or a byte at a time, until neither can move. Failures are
 * Check assertions.
 */
#ifndef MGROK_TEST_HS_PAIR_H
#define MGROK_TEST_HS_PAIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "handshake.h"

/* The methods a server offers; the methods are borrowed, not owned. */
struct hs_offer {
	const struct mgrok_auth_method *m[4];
	size_t n;
};

/* A mgrok_auth_find_fn over a struct hs_offer (arg). */
const struct mgrok_auth_method *hs_offer_find(void *arg, uint8_t id);

struct hs_side {
	struct mgrok_hs hs;
	struct mgrok_buf inbox; /* delivered, not yet taken by feed */
	int rc;                 /* the last MGROK_HS_* result */
};

/*
 * Zero it, set cm, offer and the switches, then hs_pair_run; read the
 * results in s and c; hs_pair_free releases both sides and every buffer.
 */
struct hs_pair {
	struct hs_side s, c;
	struct mgrok_buf c2s, s2c;          /* sent, not yet delivered */
	const struct mgrok_auth_method *cm; /* the client's method */
	struct hs_offer offer;              /* the server's */
	bool bytewise;                      /* deliver one byte per feed */
	bool tamper_ok;                     /* flip the last byte of the server's OK reply */
};

/* Runs the whole handshake: until both sides are done or neither can move. */
void hs_pair_run(struct hs_pair *x);

/* Both sides finished, nothing left over anywhere. */
void hs_pair_assert_drained(const struct hs_pair *x);

void hs_pair_free(struct hs_pair *x);

#endif
