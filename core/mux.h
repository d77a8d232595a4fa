/*
 * Stream multiplexing rules (doc/protocol.md 3.2, 3.3) without I/O: the stream
 * table, stream-ID rules, the half-close state machine and window
 * accounting. The session layer embeds struct mgrok_mux_stream in its own
 * stream object and asks this module what each frame means.
 */
#ifndef MGROK_MUX_H
#define MGROK_MUX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codec.h"
#include "defaults.h"

enum mgrok_mux_verdict {
	MGROK_MUX_OK = 0,
	MGROK_MUX_IGNORE = 1,     /* unknown stream (may have crossed a RESET): drop the frame */
	MGROK_MUX_RESET_FLOW = 2, /* peer overran its window: RESET(FLOW_CONTROL) */
	MGROK_MUX_PROTOCOL = -1,  /* GO_AWAY(PROTOCOL_ERROR) */
};

#define MGROK_MUX_SENT_CLOSE 0x01 /* we sent CLOSE: no more DATA from us */
#define MGROK_MUX_GOT_CLOSE 0x02  /* peer sent CLOSE: no more DATA from it */

struct mgrok_mux_stream {
	uint32_t id;
	uint8_t state;          /* MGROK_MUX_SENT_CLOSE | MGROK_MUX_GOT_CLOSE */
	uint32_t send_window;   /* bytes we may still send */
	uint32_t recv_window;   /* bytes the peer may still send us */
	uint32_t recv_unacked;  /* bytes delivered since our last WINDOW_UPDATE */
	uint32_t recv_size;     /* the window we keep granting (grows with auto-tuning) */
	uint32_t held;          /* bytes received, not yet delivered */
	uint32_t debt;          /* credit to withhold after the window shrank */
	bool starved;           /* the peer waited for credit since the last update */
	uint8_t starved_rounds; /* updates in a row that found it so */
	double last_data;       /* when DATA last arrived (the caller's clock) */
	uint64_t recv_total;    /* bytes received on the stream so far */
	uint64_t prev_limit;    /* recv_total the peer could reach before our last update */
	double limit_hit_at;    /* when it reached prev_limit (0: not yet) */
	struct mgrok_mux_stream *hnext;
};

struct mgrok_mux {
	bool autotune; /* windows grow (below); off for benchmarks and some tests */
	struct mgrok_mux_stream **buckets;
	size_t nbuckets; /* 1 << shift */
	unsigned shift;
	size_t count;
	uint32_t last_id; /* highest stream ID opened so far (by us or the peer) */
	uint64_t grown;   /* credit the streams' windows grant beyond the initial, in all */
	char err[128];
};

void mgrok_mux_init(struct mgrok_mux *m, bool autotune);
/* Frees the table only; the streams belong to the caller. */
void mgrok_mux_free(struct mgrok_mux *m);

struct mgrok_mux_stream *mgrok_mux_find(const struct mgrok_mux *m, uint32_t id);
/* Server: the next stream ID (even, >= 2, above every ID inserted so far);
 * 0 when exhausted. Inserting it is what moves the counter on. */
uint32_t mgrok_mux_next_id(struct mgrok_mux *m);
/* Client: may the peer open this ID now? MGROK_MUX_OK or MGROK_MUX_PROTOCOL (reason in err). */
int mgrok_mux_check_new(struct mgrok_mux *m, uint32_t id);
/* Adds s (id set here, windows at their initial size). */
void mgrok_mux_insert(struct mgrok_mux *m, struct mgrok_mux_stream *s, uint32_t id);
void mgrok_mux_remove(struct mgrok_mux *m, struct mgrok_mux_stream *s);

/*
 * Window auto-tuning (doc/protocol.md 3.3): when the peer used up all the
 * credit it had before our last update and then went quiet for
 * MGROK_WINDOW_STALL seconds (it waited for the update to cross the
 * network), while everything it sent has been delivered (the network, not
 * the consumer, holds it back), the next WINDOW_UPDATE doubles the window,
 * up to 16 MiB. From MGROK_WINDOW_EAGER on, that takes such a wait in
 * MGROK_WINDOW_STALL_ROUNDS updates in a row. A stream idle for
 * MGROK_WINDOW_IDLE seconds goes back to the initial window. Off when the
 * mux's autotune is false.
 */
#define MGROK_WINDOW_IDLE 2.0
#define MGROK_WINDOW_STALL 0.002
#define MGROK_WINDOW_STALL_ROUNDS 2
#define MGROK_WINDOW_EAGER (1024u * 1024u)

/* Incoming DATA of len bytes at time now: checks direction state and window. */
int mgrok_mux_recv_data(struct mgrok_mux *m, struct mgrok_mux_stream *s, size_t len, double now);
/* Incoming CLOSE. Returns OK, or PROTOCOL for a second CLOSE. */
int mgrok_mux_recv_close(struct mgrok_mux *m, struct mgrok_mux_stream *s);
/* Incoming WINDOW_UPDATE: 0, or over 16 MiB in total, is a protocol error. */
int mgrok_mux_recv_window(struct mgrok_mux *m, struct mgrok_mux_stream *s, uint32_t increment);

/* We are sending len bytes of DATA (len <= send_window). */
void mgrok_mux_sent_data(struct mgrok_mux_stream *s, size_t len);
void mgrok_mux_sent_close(struct mgrok_mux_stream *s);
/*
 * len received bytes have left our buffers. Returns the WINDOW_UPDATE
 * increment to send now, or 0 (credit is returned in batches of at least
 * half a window so that updates stay rare).
 */
uint32_t mgrok_mux_consumed(struct mgrok_mux *m, struct mgrok_mux_stream *s, size_t len);

static inline bool mgrok_mux_done(const struct mgrok_mux_stream *s)
{
	return (s->state & (MGROK_MUX_SENT_CLOSE | MGROK_MUX_GOT_CLOSE)) ==
	       (MGROK_MUX_SENT_CLOSE | MGROK_MUX_GOT_CLOSE);
}

#endif
