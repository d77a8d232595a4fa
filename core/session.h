/*
 * A session: one client connection with libev I/O around the handshake,
 * the frame codec and the mux. Role-specific behaviour (server, client)
 * comes in through struct mgrok_session_ops.
 */
#ifndef MGROK_SESSION_H
#define MGROK_SESSION_H

#include <ev.h>
#include <stdbool.h>

#include "addr.h"
#include "balancer.h"
#include "buf.h"
#include "codec.h"
#include "context.h"
#include "handshake.h"
#include "defaults.h"
#include "log.h"
#include "mux.h"
#include "stream.h"
#include "transport.h"

struct mgrok_tls;

struct mgrok_session;

/* Log lines the peer can trigger at will, limited per session and kind (log.h). */
enum mgrok_session_logk {
	MGROK_LOGK_REGISTER, /* server: REGISTER refused, UNREGISTER of an unknown name */
	MGROK_LOGK_PROXIES,  /* server: proxies up and down (the owner sets the burst) */
	MGROK_LOGK_VISITOR,  /* server: a visitor refused at the stream limit */
	MGROK_LOGK_FLOW,     /* a stream's window overrun */
	MGROK_LOGK_LOCAL,    /* client: the local service could not be reached, or refused */
	MGROK_LOGK_UNKNOWN,  /* client: NEW_STREAM or REGISTER_ACK for a proxy it does not have */
	MGROK_LOGK_COUNT,
};

#define MGROK_SESSION_LOG(s, k, level, ...)                                                        \
	mgrok_log_limited(&(s)->loglim[k], (s)->id, ev_now((s)->ctx->loop), level, __VA_ARGS__)

/* Why a session ended, as its owner needs to know. */
enum mgrok_close_why {
	MGROK_CLOSE_LOST = 0,     /* connection failed or lost, timeout, protocol error */
	MGROK_CLOSE_DENIED = 1,   /* the handshake was refused (the reason is the peer's text) */
	MGROK_CLOSE_GOAWAY = 2,   /* the peer sent GO_AWAY (code in s->peer_goaway) */
	MGROK_CLOSE_LOCAL = 3,    /* we closed it (shutdown, takeover) */
	MGROK_CLOSE_TLS_CERT = 4, /* the peer's certificate did not verify */
};

struct mgrok_session_ops {
	/* Handshake done: the session speaks frames now. */
	void (*on_open)(struct mgrok_session *s);
	/*
	 * A frame the session does not handle itself (REGISTER, REGISTER_ACK,
	 * UNREGISTER, HELLO, NEW_STREAM). Returns 0, or -1 after having
	 * closed the session.
	 */
	int (*on_frame)(struct mgrok_session *s, const struct mgrok_frame *f);
	/* Last call: s is freed when this returns. */
	void (*on_close)(struct mgrok_session *s, enum mgrok_close_why why, const char *reason);
	/* Server: a balancer's PROXY header named the connection's real
	 * source. Returns false after having closed the session. */
	bool (*on_proxied)(struct mgrok_session *s, const struct mgrok_pp *pp);
};

struct mgrok_session {
	struct mgrok_ctx *ctx;
	uint32_t id; /* for logs */
	enum mgrok_role role;
	struct mgrok_transport tr;
	struct mgrok_tls *tls_sniff; /* server: TLS port, first byte not seen yet */
	bool tls_failed;             /* client: the TLS state could not be made */
	ev_io rio, wio;
	ev_prepare flush;  /* writes everything queued in one loop iteration at once */
	ev_timer beat;     /* heartbeat send and timeout check */
	ev_timer hs_timer; /* server: handshake deadline */
	struct mgrok_hs hs;
	struct mgrok_buf hs_in; /* handshake bytes not yet taken */
	bool open;              /* handshake done */
	bool hs_failed;         /* refused, malformed or timed out: counts for rate limiting */
	bool closing;
	bool draining;  /* server shutting down: no new visitors, open streams finish */
	unsigned in_cb; /* callbacks on the stack: free is deferred while > 0 */
	struct mgrok_decoder dec;
	struct mgrok_buf out;
	struct mgrok_mux mux;
	struct mgrok_relay relay; /* its streams */
	uint64_t frames_in;       /* frames decoded so far (HELLO must be the first) */
	/* DATA payload bytes of its streams, toward the local service (from the
	 * visitors) and back: the same directions on both sides (traffic.h). */
	uint64_t bytes_in, bytes_out;
	double opened_at; /* ev_now when the handshake completed */
	double last_recv, last_send;
	double hb_interval, hb_timeout;
	struct mgrok_balancers balancers; /* server: who sends PROXY headers */
	bool expect_pp;                   /* server: the connection starts with one */
	double paused_since; /* reading stopped (a full output queue, peer_eof), else 0 */
	bool peer_eof;       /* the peer closed its side: writing out what is queued */
	bool refeed;         /* the decoder holds frames read before the pause */
	struct mgrok_log_limit loglim[MGROK_LOGK_COUNT];
	unsigned max_streams;
	int peer_goaway; /* code of a GO_AWAY received, or -1 */
	enum mgrok_close_why why;
	char reason[256];
	char peer[MGROK_ADDRSTRLEN];
	const struct mgrok_session_ops *ops;
	void *owner; /* the server's or client's state for this session */
	/* server: how to find auth methods */
	mgrok_auth_find_fn find_auth;
	void *find_arg;
};

/*
 * Takes ownership of fd (connected or connecting, non-blocking). With tls
 * the connection speaks TLS: a client starts its handshake at once, a
 * server first checks that the peer does (a plaintext GRT1 client gets a
 * DENIED it can read).
 */
struct mgrok_session *mgrok_session_new(struct mgrok_ctx *ctx, int fd, enum mgrok_role role,
                                        struct mgrok_tls *tls, const struct mgrok_session_ops *ops,
                                        void *owner);
void mgrok_session_start_server(struct mgrok_session *s, double handshake_timeout,
                                mgrok_auth_find_fn find, void *find_arg);
void mgrok_session_start_client(struct mgrok_session *s, const struct mgrok_auth_method *m);
/* Queues a frame; it goes out with the others of this loop iteration. */
void mgrok_session_send(struct mgrok_session *s, const struct mgrok_frame *f);
/* Room for a DATA frame of up to len payload bytes, written in place. */
uint8_t *mgrok_session_reserve(struct mgrok_session *s, size_t len);
void mgrok_session_commit(struct mgrok_session *s, size_t len);
/* Output is above its high-water mark: streams should stop reading. */
bool mgrok_session_congested(const struct mgrok_session *s);
/*
 * Ends the session: sends GO_AWAY(goaway) first when goaway >= 0 and the
 * session is open, closes every stream, closes the fd, calls on_close.
 */
void mgrok_session_close(struct mgrok_session *s, int goaway, enum mgrok_close_why why,
                         const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Call at the end of a callback that did s->in_cb++ first. */
void mgrok_session_leave(struct mgrok_session *s);

#endif
