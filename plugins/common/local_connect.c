#include "local_connect.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

void local_connect(const struct mgrok_host *host, const struct mgrok_plugin *self,
                   const struct mgrok_proxy_spec *spec, struct mgrok_stream *st)
{
	int fd = socket(spec->addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		host->log(self, MGROK_LOG_WARN, "socket: %s", strerror(errno));
		host->stream_reset(st, MGROK_RESET_CONNECT_FAILED);
		return;
	}
	if (connect(fd, spec->addr, spec->addr_len) == 0) {
		host->stream_attach_fd(st, fd, 0);
		return;
	}
	if (errno == EINPROGRESS) {
		host->stream_attach_fd(st, fd, 1);
		return;
	}
	char a[64];
	host->log(self, MGROK_LOG_INFO, "proxy %s: cannot connect to %s: %s", spec->name,
	          host->addr_format(spec->addr, a, sizeof(a)), strerror(errno));
	close(fd);
	host->stream_reset(st, MGROK_RESET_CONNECT_FAILED);
}
