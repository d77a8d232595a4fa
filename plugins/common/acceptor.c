#define _GNU_SOURCE /* accept4 */
#include "acceptor.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define ACCEPTS_PER_WAKEUP 64
#define ACCEPT_PAUSE 0.25 /* s */

static void resume(void *arg)
{
	struct acceptor *a = arg;
	a->host->watch_set(a->watch, MGROK_EV_READ);
}

/* Returns whether to go on accepting now. */
static bool accept_failed(struct acceptor *a)
{
	int e = errno;
	if (e == EAGAIN || e == EWOULDBLOCK || e == EINTR)
		return false;
	if (e == ECONNABORTED || e == EPROTO || e == EPERM)
		return true; /* that visitor is gone; the next may be fine */
	a->host->log(a->self, MGROK_LOG_WARN, "%s: accept: %s: pausing accepts for %.2f s", a->name,
	             strerror(e), ACCEPT_PAUSE);
	a->host->watch_set(a->watch, 0);
	if (!a->retry)
		a->retry = a->host->timer_new(resume, a);
	a->host->timer_set(a->retry, ACCEPT_PAUSE);
	return false;
}

static void on_readable(void *arg, int lfd, int events)
{
	struct acceptor *a = arg;
	for (int i = 0; i < ACCEPTS_PER_WAKEUP; i++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		int fd = accept4(lfd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0)
			a->cb(a->arg, fd, &ss, len);
		else if (!accept_failed(a))
			return;
	}
}

void acceptor_start(struct acceptor *a, const struct mgrok_host *host,
                    const struct mgrok_plugin *self, int fd, const char *name, acceptor_cb cb,
                    void *arg)
{
	a->host = host;
	a->self = self;
	a->fd = fd;
	a->retry = NULL;
	a->cb = cb;
	a->arg = arg;
	snprintf(a->name, sizeof(a->name), "%s", name);
	a->watch = host->watch_new(fd, on_readable, a);
	host->watch_set(a->watch, MGROK_EV_READ);
}

void acceptor_stop(struct acceptor *a)
{
	if (!a->host)
		return;
	a->host->timer_free(a->retry);
	a->host->watch_free(a->watch);
	a->retry = NULL;
	a->watch = NULL;
}
