/* The function table handed to plugins, and the loop it runs on. */
#ifndef MGROK_HOST_H
#define MGROK_HOST_H

#include <ev.h>

#include "mgrok/plugin.h"

extern const struct mgrok_host mgrok_host_table;
/* The process's event loop; set by main before any plugin is initialised. */
extern struct ev_loop *mgrok_loop;

#endif
