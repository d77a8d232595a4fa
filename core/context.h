/*
 * What one process's core runs on: its event loop and the choices made for
 * the whole process. main makes one and hands it to the server or client,
 * which hands it to every session; the plugin host table, whose functions
 * take no context of their own (the ABI), reaches it through
 * mgrok_host_bind. Tests make their own: nothing here is file-scope state.
 */
#ifndef MGROK_CONTEXT_H
#define MGROK_CONTEXT_H

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>

#include "traffic.h"

struct mgrok_server;
struct mgrok_notify;

struct mgrok_ctx {
	struct ev_loop *loop;
	bool autotune;               /* window auto-tuning for new sessions (mux.h) */
	uint32_t next_session_id;    /* session ids, for logs */
	uint8_t *read_buf;           /* MGROK_READ_CHUNK bytes: every session reads into it */
	struct mgrok_server *server; /* mgrokd: the server, for the host's name_lookup */
	struct mgrok_notify *notify; /* the service manager (notify.h); NULL in tests */
	struct mgrok_traffic_table traffic;  /* per-proxy counters (traffic.h) */
	double started_at;                   /* wall clock, Unix seconds */
	uint64_t reloads_ok, reloads_failed; /* SIGHUPs, by outcome (mgrok_reloads_total) */
};

/* autotune on, ids from 1, the read buffer allocated, no counters yet. */
void mgrok_ctx_init(struct mgrok_ctx *c, struct ev_loop *loop);
void mgrok_ctx_free(struct mgrok_ctx *c);

#endif
