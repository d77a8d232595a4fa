/*
 * The plugin registry: dlopen, ABI checks, init/fini. The core looks
 * plugins up by kind and name or wire id and never names one itself.
 */
#ifndef MGROK_PLUGIN_LOADER_H
#define MGROK_PLUGIN_LOADER_H

#include <stdbool.h>
#include <stddef.h>

#include "log.h"
#include "mgrok/plugin.h"

/* A plugin's log lines at info and above are limited per call site (the
 * format string): a remote peer may drive them (log.h). */
#define MGROK_PLUGIN_LOG_SITES 16

struct mgrok_plugin {
	char *path;
	void *dl;
	const struct mgrok_plugin_desc *desc;
	void *inst;       /* set by desc->init */
	bool initialized; /* desc->fini is owed */
	const char *log_site[MGROK_PLUGIN_LOG_SITES];
	struct mgrok_log_limit log_limit[MGROK_PLUGIN_LOG_SITES];
};

struct mgrok_registry {
	struct mgrok_plugin **v;
	size_t n;
};

/*
 * Loads one .so. Refuses (with the file named in err) a missing entry
 * symbol, another ABI major version, a newer minor version, a descriptor
 * that is too small, an unknown kind, or a kind and name already loaded.
 */
int mgrok_registry_load_file(struct mgrok_registry *r, const char *path, char *err, size_t errlen);
/* Loads names (file names in dir: a name with "/" or ".." is refused before
 * anything is opened), or every *.so in dir when names is NULL. */
int mgrok_registry_load_dir(struct mgrok_registry *r, const char *dir, char *const *names,
                            size_t n_names, char *err, size_t errlen);
struct mgrok_plugin *mgrok_registry_find(const struct mgrok_registry *r, int kind,
                                         const char *name);
struct mgrok_plugin *mgrok_registry_find_id(const struct mgrok_registry *r, int kind, uint8_t id);
/* Calls the plugin's init once with its config (an empty object when conf is NULL). */
int mgrok_plugin_init(struct mgrok_plugin *p, const json_t *conf, char *err, size_t errlen);
/* fini for every initialized plugin, then dlclose all. */
void mgrok_registry_free(struct mgrok_registry *r);

/*
 * An op of a plugin, or NULL when the plugin does not provide it: members
 * appended to an ops table in ABI 1.N exist only in plugins built for 1.N
 * or later (their tables are shorter). The one place that knows which
 * minor version brought which op (plugin.h's changelog says the same):
 */
#define MGROK_OP_SINCE_proxy_on_datagram 1
#define MGROK_OP_SINCE_proxy_on_stream_end 1
#define MGROK_OP_SINCE_auth_authorize 1
#define MGROK_OP_SINCE_auth_max_streams 1
#define MGROK_OP_SINCE_auth_reload 1
#define MGROK_OP_SINCE_proxy_server_start 4
#define MGROK_OP_SINCE_proxy_public_address 4
#define MGROK_OP_SINCE_proxy_client_options 4
#define MGROK_OP_SINCE_proxy_on_visitor_data 4
#define MGROK_OP_SINCE_proxy_on_peer_end 4
#define MGROK_OP_SINCE_proxy_on_visitor_end 4
#define MGROK_PLUGIN_OP(p, kind, op)                                                               \
	((p)->desc->abi_minor >= MGROK_OP_SINCE_##kind##_##op ? (p)->desc->kind->op : NULL)

/* The plugin directory: $MGROK_PLUGIN_DIR, else the installed one. */
const char *mgrok_default_plugin_dir(void);

#endif
