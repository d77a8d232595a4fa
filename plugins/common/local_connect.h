/* Client side of the stream proxy types: connect to the local service. */
#ifndef MGROK_PLUGIN_LOCAL_CONNECT_H
#define MGROK_PLUGIN_LOCAL_CONNECT_H

#include "mgrok/plugin.h"

/* Connects to spec->addr and hands the socket to the host, or resets st
 * with CONNECT_FAILED. */
void local_connect(const struct mgrok_host *host, const struct mgrok_plugin *self,
                   const struct mgrok_proxy_spec *spec, struct mgrok_stream *st);

#endif
