#include "notify.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"

#define STATUS_INTERVAL 1.0 /* s between two STATUS= lines at most */

int mgrok_notify_address(const char *env, struct sockaddr_un *sa, socklen_t *len)
{
	size_t n = env ? strlen(env) : 0;
	/* The path needs its terminating NUL; an abstract name has none. */
	if (n < 2 || (env[0] != '/' && env[0] != '@') || n > sizeof(sa->sun_path) - (env[0] == '/'))
		return -1;
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	memcpy(sa->sun_path, env, n);
	if (env[0] == '@')
		sa->sun_path[0] = '\0';
	*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (env[0] == '/'));
	return 0;
}

int mgrok_notify_format_reloading(char *buf, size_t len, uint64_t usec)
{
	return snprintf(buf, len, "RELOADING=1\nMONOTONIC_USEC=%" PRIu64, usec);
}

static void on_status_timer(struct ev_loop *loop, ev_timer *w, int revents);

void mgrok_notify_init(struct mgrok_notify *n, struct ev_loop *loop, const char *env)
{
	memset(n, 0, sizeof(*n));
	n->fd = -1;
	n->loop = loop;
	ev_timer_init(&n->status_timer, on_status_timer, 0., 0.);
	if (!env || !*env)
		return;
	if (mgrok_notify_address(env, &n->addr, &n->addrlen) < 0) {
		MGROK_WARN("NOTIFY_SOCKET is neither an absolute path nor @name: not notifying");
		return;
	}
	n->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (n->fd < 0)
		MGROK_WARN("NOTIFY_SOCKET: socket: %s: not notifying", strerror(errno));
}

void mgrok_notify_free(struct mgrok_notify *n)
{
	if (n->loop)
		ev_timer_stop(n->loop, &n->status_timer);
	if (n->fd >= 0)
		close(n->fd);
	n->fd = -1;
}

void mgrok_notify_send(struct mgrok_notify *n, const char *msg)
{
	if (!n || n->fd < 0)
		return;
	if (sendto(n->fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&n->addr, n->addrlen) <
	    0)
		MGROK_DEBUG("NOTIFY_SOCKET: sendto: %s", strerror(errno));
}

/* "STATUS=..." into buf; "" without a status function. */
static void format_status(struct mgrok_notify *n, char *buf, size_t len)
{
	buf[0] = '\0';
	if (!n->status)
		return;
	char text[200] = "";
	n->status(n->status_arg, text, sizeof(text));
	snprintf(buf, len, "STATUS=%s", text);
}

static void send_status(struct mgrok_notify *n)
{
	char msg[256];
	format_status(n, msg, sizeof(msg));
	if (msg[0]) {
		mgrok_notify_send(n, msg);
		n->last_status = ev_now(n->loop);
	}
}

static void on_status_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	send_status(MGROK_CONTAINER_OF(w, struct mgrok_notify, status_timer));
}

void mgrok_notify_ready(struct mgrok_notify *n)
{
	if (n->fd < 0)
		return;
	char status[256], msg[300];
	format_status(n, status, sizeof(status));
	snprintf(msg, sizeof(msg), "READY=1%s%s", status[0] ? "\n" : "", status);
	mgrok_notify_send(n, msg);
	if (status[0])
		n->last_status = ev_now(n->loop);
}

void mgrok_notify_stopping(struct mgrok_notify *n)
{
	if (n->fd < 0)
		return;
	mgrok_notify_send(n, "STOPPING=1");
	n->status = NULL;
	ev_timer_stop(n->loop, &n->status_timer);
}

void mgrok_notify_reloading(struct mgrok_notify *n)
{
	if (n->fd < 0)
		return;
	struct timespec ts;
	char msg[64];
	clock_gettime(CLOCK_MONOTONIC, &ts);
	mgrok_notify_format_reloading(
	        msg, sizeof(msg), (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u);
	mgrok_notify_send(n, msg);
}

void mgrok_notify_set_status(struct mgrok_notify *n, mgrok_notify_status_fn *fn, void *arg)
{
	n->status = fn;
	n->status_arg = arg;
}

void mgrok_notify_status_changed(struct mgrok_notify *n)
{
	if (!n || n->fd < 0 || !n->status || ev_is_active(&n->status_timer))
		return;
	double wait = n->last_status + STATUS_INTERVAL - ev_now(n->loop);
	if (wait <= 0) {
		send_status(n);
		return;
	}
	ev_timer_set(&n->status_timer, wait, 0.);
	ev_timer_start(n->loop, &n->status_timer);
}
