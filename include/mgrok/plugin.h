/*
 * mgrok plugin ABI, version 1.
 *
 * What each minor version added:
 *   1.0  the descriptor, the host table up to addr_format, proxy ops up to
 *        check_options, auth ops up to end.
 *   1.1  datagram streams (host stream_attach_datagram, stream_send,
 *        stream_close; proxy on_datagram, on_stream_end); auth authorize,
 *        max_streams, reload.
 *   1.2  the wire's codes as named enums (mgrok_reset_code, mgrok_hs_status,
 *        mgrok_ack_status), with mgrok_authz_result defined from the last.
 *        Values and layouts are unchanged: a 1.1 plugin is a 1.2 plugin.
 *   1.3  host visitor_accept: a server plugin hands over a visitor's
 *        connection whole, and the host reads a load balancer's PROXY
 *        protocol header from it first when it comes through one.
 *   1.4  proxies routed by name on a listener the plugin shares among all
 *        sessions (doc/protocol.md 9): proxy server_start, public_address,
 *        client_options and the visitor filter hooks (on_visitor_data,
 *        on_peer_end, on_visitor_end); host name_claim, name_lookup,
 *        visitor_attach, stream_emit, from_balancer, proxy_header_parse;
 *        mgrok_authz hostname and domain.
 *   1.5  host datagram_dropped: the admin endpoint's per-proxy drop count.
 *
 * A plugin is a shared object that exports exactly one symbol,
 * MGROK_PLUGIN_ENTRY_SYMBOL, a function returning a descriptor. The host
 * checks the descriptor's ABI version and size before it touches anything
 * else, then calls init() with a table of host functions. Plugins reach the
 * host only through that table: they need not link against mgrok, and the
 * programs export nothing.
 *
 * Compatibility: the major version changes when a struct member moves or a
 * signature changes; the minor version grows when members are appended to the
 * end of a struct. A host accepts a plugin of the same major version whose
 * minor version is not newer than its own; a plugin may check host->abi_minor
 * before calling a host function appended later.
 *
 * Ownership: a pointer passed into a call is borrowed for that call only,
 * with these exceptions, on which plugins may rely:
 *   - self (init) and host live as long as the plugin is loaded;
 *   - a proxy spec and what it points to (name, options, addr) stay valid
 *     until server_unbind on the server, and as long as the plugin
 *     instance on the client (the client's proxies never go away);
 *   - a stream stays the plugin's until it hands it over with
 *     stream_attach_fd (the host owns it from then on) or ends it with
 *     stream_reset; a datagram stream, until on_stream_end.
 * Buffers handed across the boundary to be freed by the other side use
 * host->alloc / host->free.
 */
#ifndef MGROK_PLUGIN_H
#define MGROK_PLUGIN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <jansson.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MGROK_PLUGIN_ABI_MAJOR 1
#define MGROK_PLUGIN_ABI_MINOR 5
#define MGROK_PLUGIN_ENTRY_SYMBOL "mgrok_plugin_entry"

enum mgrok_plugin_kind {
	MGROK_PLUGIN_PROXY = 1, /* a proxy type: tcp, udp, ... (REGISTER proxyType) */
	MGROK_PLUGIN_AUTH = 2,  /* an auth method: none, token, ... (handshake method) */
};

enum mgrok_log_level {
	MGROK_LOG_ERROR = 0,
	MGROK_LOG_WARN = 1,
	MGROK_LOG_INFO = 2,
	MGROK_LOG_DEBUG = 3,
};

/* ---- the wire's codes (doc/protocol.md 2 and 3) ------------------------ */

/* The server's handshake reply status; client_step sees OK or CHALLENGE. */
enum mgrok_hs_status {
	MGROK_HS_STATUS_OK = 0x00,
	MGROK_HS_STATUS_CHALLENGE = 0x01,
	MGROK_HS_STATUS_DENIED = 0x02,
	MGROK_HS_STATUS_UNSUPPORTED = 0x03,
};

/* RESET codes, for host->stream_reset. */
enum mgrok_reset_code {
	MGROK_RESET_CANCEL = 0,
	MGROK_RESET_CONNECT_FAILED = 1,
	MGROK_RESET_REFUSED = 2,
	MGROK_RESET_FLOW_CONTROL = 3,
	MGROK_RESET_TIMEOUT = 4,
	MGROK_RESET_INTERNAL = 5,
};

/* REGISTER_ACK status. */
enum mgrok_ack_status {
	MGROK_ACK_OK = 0,
	MGROK_ACK_PORT_IN_USE = 1,
	MGROK_ACK_PORT_NOT_ALLOWED = 2,
	MGROK_ACK_NAME_IN_USE = 3,
	MGROK_ACK_UNKNOWN_PROXY_TYPE = 4,
	MGROK_ACK_INVALID = 5,
	MGROK_ACK_LIMIT = 6,
	MGROK_ACK_FORBIDDEN = 7,
};

/* fd watching: events for watch_set(); 0 stops the watcher. */
#define MGROK_EV_READ 0x01
#define MGROK_EV_WRITE 0x02

/* Opaque host objects. */
struct mgrok_plugin; /* the host's record of one loaded plugin */
struct mgrok_proxy;  /* one registered proxy (a REGISTER that succeeded) */
struct mgrok_stream; /* one multiplexed stream */
struct mgrok_watch;  /* an fd watcher on the host's event loop */
struct mgrok_timer;  /* a one-shot timer on the host's event loop */

typedef void (*mgrok_watch_cb)(void *arg, int fd, int events);
typedef void (*mgrok_timer_cb)(void *arg);

/*
 * Functions the host offers. Appended to only at the end (minor version).
 */
struct mgrok_host {
	uint16_t abi_major;
	uint16_t abi_minor;
	uint32_t size; /* sizeof(struct mgrok_host) of the host */

	/* One log line, prefixed with the plugin's name. */
	void (*log)(const struct mgrok_plugin *self, int level, const char *fmt, ...)
	        __attribute__((format(printf, 3, 4)));

	void *(*alloc)(size_t len); /* never returns NULL: the host aborts on OOM */
	void (*free)(void *p);
	void (*wipe)(void *p, size_t len);    /* erase secrets; not optimised away */
	int (*random)(void *buf, size_t len); /* CSPRNG; 0 or -1 */

	/* fd watching on the host's loop. The watcher does not own the fd. */
	struct mgrok_watch *(*watch_new)(int fd, mgrok_watch_cb cb, void *arg);
	void (*watch_set)(struct mgrok_watch *w, int events);
	void (*watch_free)(struct mgrok_watch *w); /* stops it first */

	/* One-shot timers; timer_set(t, 0) stops one that is pending. */
	struct mgrok_timer *(*timer_new)(mgrok_timer_cb cb, void *arg);
	void (*timer_set)(struct mgrok_timer *t, double after_seconds);
	void (*timer_free)(struct mgrok_timer *t);
	double (*now)(void); /* the loop's clock, seconds */

	/*
	 * Server side: a visitor arrived on a proxy. Opens a stream to the
	 * client (NEW_STREAM with this source address). Returns NULL when the
	 * session is over its stream limit; the caller then closes the visitor.
	 */
	struct mgrok_stream *(*stream_open)(struct mgrok_proxy *px, const struct sockaddr *source,
	                                    socklen_t source_len);
	/*
	 * Hand a connected (or, with connecting != 0, connecting) non-blocking
	 * socket to the host, which from then on owns it and relays its bytes
	 * over the stream with flow control and half-close. A connect that
	 * fails becomes RESET(CONNECT_FAILED). Create it with SOCK_NONBLOCK |
	 * SOCK_CLOEXEC: the host checks both and sets what is missing.
	 */
	void (*stream_attach_fd)(struct mgrok_stream *st, int fd, int connecting);
	/* RESET a stream (code: enum mgrok_reset_code) and release it. */
	void (*stream_reset)(struct mgrok_stream *st, uint8_t code);

	/* Formats "1.2.3.4:80" or "[::1]:80". Returns buf. */
	const char *(*addr_format)(const struct sockaddr *sa, char *buf, size_t len);

	/* ---- 1.1: datagram streams (doc/protocol.md 5) ---- */

	/*
	 * Makes st a datagram stream: each DATA frame the peer sends is handed
	 * to ops->on_datagram(inst, arg, ...) as one datagram, and when the
	 * stream ends for any reason (peer CLOSE or RESET, stream_reset,
	 * stream_close answered, session end) ops->on_stream_end(inst, arg) is
	 * called exactly once; the plugin may free arg there and must not
	 * use st afterwards.
	 */
	void (*stream_attach_datagram)(struct mgrok_stream *st, void *arg);
	/*
	 * Sends one datagram as one DATA frame. Returns 0, or -1 when it was
	 * dropped: no window left, the session's output is congested, the
	 * stream is closing, or len exceeds 65535. Datagrams are never queued.
	 */
	int (*stream_send)(struct mgrok_stream *st, const void *data, size_t len);
	/*
	 * Ends a datagram stream (idle, evicted): sends CLOSE; on_stream_end
	 * follows when the peer answers with its CLOSE, or the session ends.
	 */
	void (*stream_close)(struct mgrok_stream *st);

	/* ---- 1.3 ---- */

	/*
	 * Server: a visitor's accepted connection (non-blocking), handed over
	 * whole: stream_open and stream_attach_fd in one, except that when
	 * source is a load balancer of the server's proxy_protocol_from, the
	 * host first reads its PROXY protocol header and opens the stream with
	 * the address in it. Returns 0 (the host owns fd), or -1 when the
	 * session is over its stream limit (the caller closes fd).
	 */
	int (*visitor_accept)(struct mgrok_proxy *px, int fd, const struct sockaddr *source,
	                      socklen_t source_len);

	/* ---- 1.4: proxies routed by name ---- */

	/*
	 * Server, from server_bind: claims a host name for px, which keeps it
	 * until server_unbind (the host releases it). The host checks the
	 * name (1-253 bytes, labels of [a-z0-9-], IDNA A-labels only; case is
	 * folded), asks the auth plugin (authorize with hostname and domain
	 * set; without an opinion of its own, a one-label subdomain of domain
	 * is allowed) and its registry, one per proxy plugin. Returns
	 * MGROK_ACK_OK, or the REGISTER_ACK status to refuse with
	 * (MGROK_ACK_INVALID, MGROK_ACK_FORBIDDEN, MGROK_ACK_NAME_IN_USE) with
	 * reason filled in.
	 */
	int (*name_claim)(struct mgrok_proxy *px, const char *name, const char *domain,
	                  char *reason, size_t len);
	/* Server: the proxy that holds name among self's names (any case), and
	 * its server_bind state in *state; NULL when none does. */
	struct mgrok_proxy *(*name_lookup)(const struct mgrok_plugin *self, const char *name,
	                                   void **state);
	/*
	 * Server: a visitor the plugin accepted and has read from already is
	 * handed over to px: the host opens a stream (NEW_STREAM with source),
	 * sends first (first_len bytes, copied) as its first DATA, and owns fd
	 * from then on. With arg NULL the visitor's later bytes are relayed as
	 * they are; otherwise each read goes to ops->on_visitor_data(inst, arg,
	 * ...), and on_peer_end and on_visitor_end are called. Returns 0, or
	 * -1 when the session is over its stream limit (fd stays the caller's,
	 * arg is not used).
	 */
	int (*visitor_attach)(struct mgrok_proxy *px, int fd, const struct sockaddr *source,
	                      socklen_t source_len, const void *first, size_t first_len, void *arg);
	/* Server, inside on_visitor_data only: bytes for the peer, in order.
	 * The host sends them as the window allows and reads the visitor
	 * again once they are out. */
	void (*stream_emit)(struct mgrok_stream *st, const void *data, size_t len);
	/*
	 * Server, for a plugin's own listener: is source a load balancer of
	 * the server's proxy_protocol_from? Its connections then begin with a
	 * PROXY protocol header, which the plugin takes off with
	 * proxy_header_parse before anything else.
	 */
	int (*from_balancer)(const struct sockaddr *source);
	/*
	 * Parses a PROXY protocol header (v1 or v2) at the start of
	 * buf[0..len). Returns 1 when it is whole: *used is its length, and
	 * src/src_len the address it names (left alone for a v1 UNKNOWN or v2
	 * LOCAL header: the balancer's own connection); 0 when more bytes are
	 * needed; -1 with err when it is no valid header.
	 */
	int (*proxy_header_parse)(const uint8_t *buf, size_t len, size_t *used,
	                          struct sockaddr_storage *src, socklen_t *src_len, char *err,
	                          size_t errlen);

	/* ---- 1.5 ---- */
	/* A datagram of a proxy was dropped (no window, a full socket buffer,
	 * no stream to be had): counted for the admin endpoint. px names the
	 * proxy, or with px NULL, st's proxy does. */
	void (*datagram_dropped)(struct mgrok_proxy *px, struct mgrok_stream *st);
};

/* ---- proxy plugins ----------------------------------------------------- */

/* What one proxy is: from a REGISTER (server) or the client's config. */
struct mgrok_proxy_spec {
	const char *name;
	uint8_t type;
	uint16_t remote_port; /* server: the concrete port to bind */
	uint16_t local_port;
	const json_t *options; /* a JSON object, never NULL */
	/* server: where to bind (port already set); client: the local target */
	const struct sockaddr *addr;
	socklen_t addr_len;
};

struct mgrok_proxy_ops {
	/*
	 * Server: bind the public port for a registration. Returns 0, or
	 * -EADDRINUSE (the host then tries another port or answers
	 * PORT_IN_USE), or another negative errno with err filled in.
	 * *state is the plugin's per-proxy state, handed back to unbind.
	 */
	int (*server_bind)(void *inst, struct mgrok_proxy *px, const struct mgrok_proxy_spec *spec,
	                   void **state, char *err, size_t errlen);
	/* Server: close the listener. The host has ended every stream of the
	 * proxy (on_stream_end included) before it calls this. */
	void (*server_unbind)(void *inst, void *state);
	/*
	 * Client: a NEW_STREAM arrived for this proxy. Open the local end and
	 * hand it over with host->stream_attach_fd(), or call
	 * host->stream_reset(st, MGROK_RESET_CONNECT_FAILED). Called once per
	 * stream.
	 */
	void (*client_open)(void *inst, const struct mgrok_proxy_spec *spec,
	                    struct mgrok_stream *st);
	/*
	 * Optional: check a REGISTER's options object. Returns 0, or -1 with
	 * err filled in (REGISTER_ACK INVALID).
	 */
	int (*check_options)(void *inst, const json_t *options, char *err, size_t errlen);

	/* ---- 1.1: datagram streams, see host->stream_attach_datagram ---- */
	void (*on_datagram)(void *inst, void *arg, const uint8_t *data, size_t len);
	void (*on_stream_end)(void *inst, void *arg);

	/* ---- 1.4: proxies routed by name, all optional ---- */

	/*
	 * Server: called once after the control port listens; a plugin with a
	 * listener of its own opens it here and closes it in fini. Its
	 * proxies have no port: REGISTER remotePort must be 0, and server_bind
	 * gets remote_port 0 and addr NULL. Returns 0, or -1 with err.
	 */
	int (*server_start)(void *inst, char *err, size_t errlen);
	/* Server: the public address of a bound proxy ("http://app.example.com")
	 * for REGISTER_ACK and logs; returns the port it is reached on. */
	uint16_t (*public_address)(void *inst, void *state, char *buf, size_t len);
	/* Client: check and complete a proxy's options before its REGISTER
	 * (read a file they name, ...). Returns 0, or -1 with err filled in. */
	int (*client_options)(void *inst, json_t *options, char *err, size_t errlen);
	/*
	 * Server, for visitors attached with an arg (host->visitor_attach):
	 * bytes the visitor sent, in order. The plugin passes on what the peer
	 * gets with host->stream_emit(st, ...). Returns 0; or 1 when the
	 * visitor's side ends here: the host sends CLOSE after what was
	 * emitted and reads the visitor no more; or 2 when what the peer got
	 * must not stand (a request cut short): the host RESETs the stream at
	 * once and calls on_peer_end with code -1. Called once with no data
	 * (len 0) right after visitor_attach. The plugin must not reset or
	 * close st from here.
	 */
	int (*on_visitor_data)(void *inst, void *arg, struct mgrok_stream *st, const uint8_t *data,
	                       size_t len);
	/*
	 * The peer's side ended: code 0 is its CLOSE, once all its bytes are
	 * written to the visitor; -1 the plugin's own abort (on_visitor_data
	 * returned 2); else the peer's RESET code (enum mgrok_reset_code).
	 * The plugin may write a last word to fd (a small error page): it then
	 * returns 1 and the host closes fd with a FIN, never an RST.
	 */
	int (*on_peer_end)(void *inst, void *arg, int fd, int code);
	/* The stream is gone (fd closed): release arg. Called exactly once. */
	void (*on_visitor_end)(void *inst, void *arg);
};

/* ---- auth plugins ------------------------------------------------------ */

/* What a server asks an auth plugin about one REGISTER (auth ops 1.1). */
struct mgrok_authz {
	const char *identity; /* as the plugin's server_step returned it */
	const char *name;     /* the proxy's name */
	const char *type;     /* the proxy type's plugin name: "tcp", "udp" */
	uint16_t remote_port; /* a port to check, or 0: the proxy as a whole */
	unsigned proxies;     /* proxies the session has registered already */
	/* 1.4 (read only when host->abi_minor >= 4): a host name claimed for
	 * the proxy (host->name_claim), or NULL; and the domain the server
	 * gives out subdomains of for this proxy type, or NULL. */
	const char *hostname;
	const char *domain;
};

/* authorize() answers: OK, or the REGISTER_ACK status to refuse with. */
enum mgrok_authz_result {
	MGROK_AUTHZ_OK = MGROK_ACK_OK,
	MGROK_AUTHZ_PORT_NOT_ALLOWED = MGROK_ACK_PORT_NOT_ALLOWED,
	MGROK_AUTHZ_LIMIT = MGROK_ACK_LIMIT,
	MGROK_AUTHZ_FORBIDDEN = MGROK_ACK_FORBIDDEN,
};

enum mgrok_auth_result {
	MGROK_AUTH_OK = 0,       /* done: server accepts / client verified the server */
	MGROK_AUTH_CONTINUE = 1, /* out holds the next message to send */
	MGROK_AUTH_DENIED = 2,   /* text holds the reason */
};

/*
 * One round of the handshake (doc/protocol.md 2). in/in_len is what the peer
 * sent (the first client payload, a CHALLENGE, a client answer, the final OK
 * payload); out is where the plugin writes what is sent next (at most
 * out_cap bytes, 4096). text is a reason on DENIED, and on the server's OK
 * the authenticated identity (at most 64 bytes) used for authorization.
 */
struct mgrok_auth_msg {
	const uint8_t *in;
	size_t in_len;
	uint8_t *out;
	size_t out_cap;
	size_t out_len;
	char *text;
	size_t text_cap;
};

struct mgrok_auth_ops {
	/* Client: the first payload, in out. Returns CONTINUE or DENIED. */
	int (*client_start)(void *inst, void **state, struct mgrok_auth_msg *m);
	/*
	 * Client: the server answered status MGROK_HS_STATUS_CHALLENGE or
	 * MGROK_HS_STATUS_OK.
	 * For CHALLENGE return CONTINUE with the answer in out; for OK check
	 * the server's final payload and return OK or DENIED.
	 */
	int (*client_step)(void *inst, void *state, int status, struct mgrok_auth_msg *m);
	/*
	 * Server: round 0 is the client's first payload, round n its n-th
	 * answer. Returns OK (final payload in out, identity in text),
	 * CONTINUE (challenge in out) or DENIED (reason in text).
	 */
	int (*server_step)(void *inst, void **state, unsigned round, struct mgrok_auth_msg *m);
	/* Either side: release *state. Called once per handshake, always. */
	void (*end)(void *inst, void *state);

	/* ---- 1.1, all optional (NULL) ---- */

	/*
	 * Server: may this identity register this proxy? Asked once with
	 * remote_port 0 for the proxy as a whole (LIMIT, FORBIDDEN), then for
	 * the port (PORT_NOT_ALLOWED): the requested one, or each candidate
	 * when the server picks. A reason for humans goes in reason.
	 */
	int (*authorize)(void *inst, const struct mgrok_authz *a, char *reason, size_t len);
	/* Server: streams one session of this identity may have open; 0: no own limit. */
	unsigned (*max_streams)(void *inst, const char *identity);
	/*
	 * Server, on SIGHUP: re-read what the plugin reads from files. Returns
	 * 0, or -1 with err filled in, keeping the old state. Sessions stay.
	 */
	int (*reload)(void *inst, char *err, size_t errlen);
};

/* ---- the descriptor ---------------------------------------------------- */

struct mgrok_plugin_desc {
	uint16_t abi_major;
	uint16_t abi_minor;
	uint32_t size;    /* sizeof(struct mgrok_plugin_desc) of the plugin */
	uint32_t kind;    /* enum mgrok_plugin_kind */
	const char *name; /* proxy type or auth method name: "tcp", "token" */
	uint8_t wire_id;  /* REGISTER proxyType or handshake method id */
	/*
	 * conf is the plugin's own JSON subtree (never NULL); the plugin
	 * rejects unknown keys with a clear message in err. *inst is its
	 * instance state, handed to every op and to fini.
	 */
	int (*init)(const struct mgrok_host *host, const struct mgrok_plugin *self,
	            const json_t *conf, void **inst, char *err, size_t errlen);
	void (*fini)(void *inst);
	const struct mgrok_proxy_ops *proxy; /* kind PROXY */
	const struct mgrok_auth_ops *auth;   /* kind AUTH */
	void *reserved[8];
};

typedef const struct mgrok_plugin_desc *(*mgrok_plugin_entry_fn)(void);

#if defined(__GNUC__)
#define MGROK_PLUGIN_EXPORT __attribute__((visibility("default")))
#else
#define MGROK_PLUGIN_EXPORT
#endif

/*
 * Defines the entry symbol; the ABI fields are filled in here so that no
 * plugin writes them by hand:
 *
 *   MGROK_PLUGIN_DEFINE(.kind = MGROK_PLUGIN_AUTH, .name = "token",
 *                       .wire_id = 0x01, .init = init, .auth = &ops)
 */
#define MGROK_PLUGIN_DEFINE(...)                                                                   \
	MGROK_PLUGIN_EXPORT const struct mgrok_plugin_desc *mgrok_plugin_entry(void);              \
	const struct mgrok_plugin_desc *mgrok_plugin_entry(void)                                   \
	{                                                                                          \
		static const struct mgrok_plugin_desc desc = {                                     \
		        .abi_major = MGROK_PLUGIN_ABI_MAJOR,                                       \
		        .abi_minor = MGROK_PLUGIN_ABI_MINOR,                                       \
		        .size = sizeof(struct mgrok_plugin_desc),                                  \
		        __VA_ARGS__};                                                              \
		return &desc;                                                                      \
	}

#ifdef __cplusplus
}
#endif

#endif
