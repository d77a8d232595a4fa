/* The function table handed to plugins, and the context it runs on. */
#ifndef MGROK_HOST_H
#define MGROK_HOST_H

#include <ev.h>

#include "mgrok/plugin.h"

struct mgrok_ctx;

extern const struct mgrok_host mgrok_host_table;
/* The context the table's functions run on (timers, watchers, the clock):
 * bound by main before any plugin is initialised. */
void mgrok_host_bind(struct mgrok_ctx *ctx);
/* The bound context, or NULL. */
struct mgrok_ctx *mgrok_host_ctx(void);

#endif
