/*
 * Every default and every fixed bound of the implementation, in one place
 * (doc/limits.md explains each). The protocol's own sizes (names, options,
 * messages, windows) are in codec.h; plugins, which see only
 * mgrok/plugin.h, keep their own.
 */
#ifndef MGROK_DEFAULTS_H
#define MGROK_DEFAULTS_H

/* ---- defaults of what the config files can set ---------------------------- */

#define MGROK_DEFAULT_LISTEN "0.0.0.0:7000"
#define MGROK_DEFAULT_SERVER "127.0.0.1:7000"
#define MGROK_DEFAULT_HEARTBEAT_INTERVAL 10.0 /* s */
#define MGROK_DEFAULT_HEARTBEAT_TIMEOUT 30.0  /* s */
#define MGROK_DEFAULT_HANDSHAKE_TIMEOUT 10.0  /* s */
#define MGROK_DEFAULT_SHUTDOWN_TIMEOUT 10.0   /* s open streams get to finish on SIGTERM */
#define MGROK_DEFAULT_CLUSTER_LEASE 6.0       /* s a claim outlives its node */
#define MGROK_CLUSTER_LEASE_MIN 0.5
#define MGROK_RELAY_RETRY 1.0 /* s: a refused proxy that was up before (or a relay) asks again */
#define MGROK_DEFAULT_MAX_PROXIES 64   /* per session */
#define MGROK_DEFAULT_MAX_STREAMS 4096 /* per session; the client's fixed bound too */
#define MGROK_DEFAULT_MAX_PENDING 256  /* connections in the handshake */
#define MGROK_DEFAULT_MAX_PENDING_PER_ADDRESS 8
#define MGROK_DEFAULT_AUTH_FAILURES 10   /* failed handshakes per address ... */
#define MGROK_DEFAULT_AUTH_INTERVAL 60.0 /* ... within this many s block it as long */
#define MGROK_DEFAULT_PORT_LO 1024       /* allow_ports */
#define MGROK_DEFAULT_PORT_HI 65535
#define MGROK_DEFAULT_RECONNECT_INITIAL 0.5 /* s, doubling ... */
#define MGROK_DEFAULT_RECONNECT_MAX 30.0    /* ... up to this */

/* ---- fixed bounds ---------------------------------------------------------- */

#define MGROK_ACCEPTS_PER_WAKEUP 64     /* the control port's */
#define MGROK_LISTEN_BACKLOG 1024       /* the control port's; the tcp plugin uses the same */
#define MGROK_ACCEPT_PAUSE 0.25         /* s without accepting once descriptors run out */
#define MGROK_PORT_PICK_TRIES 4096      /* ports tried for a REGISTER of port 0 */
#define MGROK_SESSION_STABLE_AFTER 60.0 /* s; a session this old resets the backoff */

/* A session's queued output: streams stop reading at HIGH and resume below
 * LOW; the session stops reading its peer at MAX and resumes below RESUME. */
#define MGROK_SESSION_OUT_HIGH (1024u * 1024)
#define MGROK_SESSION_OUT_LOW (256u * 1024)
#define MGROK_SESSION_OUT_MAX (4u * 1024 * 1024)
#define MGROK_SESSION_OUT_RESUME (1024u * 1024)

/* One read of a session's socket, and what one wakeup may read in all. */
#define MGROK_READ_CHUNK (256u * 1024)
#define MGROK_READ_BUDGET (4 * MGROK_READ_CHUNK)

/* Window growth of all streams of a session together, beyond their initial
 * windows: a session holds at most max_streams initial windows plus this. */
#define MGROK_SESSION_GROWTH_MAX (32u * 1024u * 1024u)

/* The largest UDP payload over IPv4 (65535 less the IP and UDP headers). */
#define MGROK_UDP_PAYLOAD_MAX 65507u

/* Addresses the failed-handshake table keeps; the stalest give way. */
#define MGROK_RATELIMIT_SLOTS 4096

#endif
