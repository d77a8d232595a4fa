/*
 * The GRT1 handshake (doc/protocol.md 2) as two pure state machines. They take
 * the peer's bytes, call the auth plugin's ops, and append what is to be
 * sent to a caller's buffer. No I/O, no timers: the session adds those.
 */
#ifndef MGROK_HANDSHAKE_H
#define MGROK_HANDSHAKE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "mgrok/plugin.h"

#define MGROK_HS_MAX_CLIENT_MESSAGES 4
#define MGROK_IDENTITY_MAX 64

/* An auth method as the handshake sees it: a loaded auth plugin instance. */
struct mgrok_auth_method {
	const char *name;
	uint8_t id;
	const struct mgrok_auth_ops *ops;
	void *inst;
};

/* Server side: which configured method answers to a wire id (NULL: unsupported). */
typedef const struct mgrok_auth_method *(*mgrok_auth_find_fn)(void *arg, uint8_t method_id);

enum mgrok_hs_result {
	MGROK_HS_MORE = 0,   /* waiting for more bytes from the peer */
	MGROK_HS_DONE = 1,   /* authenticated; frames follow */
	MGROK_HS_DENIED = 2, /* refused (server: reply in out; client: server's reason) */
	MGROK_HS_ERROR = -1, /* malformed message or failed verification: close */
	MGROK_HS_DROP = -2,  /* server: wrong magic, close without a reply */
};

struct mgrok_hs {
	bool finished;     /* DONE, DENIED, ERROR or DROP was returned */
	unsigned messages; /* client messages sent (client) or received (server) */
	const struct mgrok_auth_method *method;
	void *auth_state;
	bool auth_started; /* ops->end is owed */
	uint8_t method_id;
	char identity[MGROK_IDENTITY_MAX + 1]; /* server, after DONE */
	char reason[256];                      /* after DENIED / ERROR / DROP */
};

void mgrok_hs_server_init(struct mgrok_hs *hs);
/*
 * Feeds the client's bytes. *used is set to the bytes taken (after DONE the
 * rest are frames). Replies are appended to out; on DENIED out holds the
 * DENIED or UNSUPPORTED_METHOD reply, to be flushed before closing.
 */
int mgrok_hs_server_feed(struct mgrok_hs *hs, const uint8_t *p, size_t len, size_t *used,
                         struct mgrok_buf *out, mgrok_auth_find_fn find, void *find_arg);

/* Client: writes the first message into out. Returns MORE or ERROR. */
int mgrok_hs_client_start(struct mgrok_hs *hs, const struct mgrok_auth_method *m,
                          struct mgrok_buf *out);
int mgrok_hs_client_feed(struct mgrok_hs *hs, const uint8_t *p, size_t len, size_t *used,
                         struct mgrok_buf *out);

/* Releases the auth plugin's state. Safe to call twice. */
void mgrok_hs_end(struct mgrok_hs *hs);

#endif
