/*
 * The service manager's notification protocol (sd_notify(3)) without
 * libsystemd: datagrams of "KEY=VALUE" lines on the AF_UNIX socket named by
 * $NOTIFY_SOCKET, a path or, with a leading '@', an abstract name. Without
 * the variable every call does nothing, so callers never check.
 */
#ifndef MGROK_NOTIFY_H
#define MGROK_NOTIFY_H

#include <ev.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>

/* Fills buf with the STATUS= text ("3 sessions, 5 proxies"), no newline. */
typedef void mgrok_notify_status_fn(void *arg, char *buf, size_t len);

struct mgrok_notify {
	int fd; /* -1: no notify socket */
	struct sockaddr_un addr;
	socklen_t addrlen;
	struct ev_loop *loop;
	ev_timer status_timer; /* holds back a STATUS= change ... */
	double last_status;    /* ... until a second after the last one (ev_now) */
	mgrok_notify_status_fn *status;
	void *status_arg;
};

/* Opens the socket when $NOTIFY_SOCKET (env, may be NULL) names a usable one;
 * otherwise (and on a malformed one, logged) n stays inert. */
void mgrok_notify_init(struct mgrok_notify *n, struct ev_loop *loop, const char *env);
void mgrok_notify_free(struct mgrok_notify *n);

/* msg: "READY=1", "STOPPING=1", ... one or more lines. Failures are logged
 * at debug level only: the manager may be gone, the service is not. */
void mgrok_notify_send(struct mgrok_notify *n, const char *msg);
/* READY=1, with the current STATUS= when there is a status function. */
void mgrok_notify_ready(struct mgrok_notify *n);
/* STOPPING=1; no STATUS= follows it. */
void mgrok_notify_stopping(struct mgrok_notify *n);
/* RELOADING=1 and MONOTONIC_USEC= now (systemd >= 253 wants both). */
void mgrok_notify_reloading(struct mgrok_notify *n);
/* Where the status comes from; NULL: no STATUS= lines. */
void mgrok_notify_set_status(struct mgrok_notify *n, mgrok_notify_status_fn *fn, void *arg);
/* The status changed: STATUS= now, or a second after the last one (at most
 * one a second however often it changes). n may be NULL. */
void mgrok_notify_status_changed(struct mgrok_notify *n);

/* Pure parts, for the tests. The socket address of a $NOTIFY_SOCKET value:
 * 0, or -1 if it is neither an absolute path nor "@name" or too long. */
int mgrok_notify_address(const char *env, struct sockaddr_un *sa, socklen_t *len);
/* "RELOADING=1\nMONOTONIC_USEC=<usec>"; snprintf's return value. */
int mgrok_notify_format_reloading(char *buf, size_t len, uint64_t usec);

#endif
