#include "plugin_loader.h"

#include <dirent.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "config.h"
#include "host.h"
#include "log.h"

#ifndef MGROK_PLUGIN_DIR
#define MGROK_PLUGIN_DIR "/usr/local/lib/mgrok"
#endif

const char *mgrok_default_plugin_dir(void)
{
	const char *env = getenv("MGROK_PLUGIN_DIR");
	return env && *env ? env : MGROK_PLUGIN_DIR;
}

static int check_desc(const struct mgrok_registry *r, const char *path,
                      const struct mgrok_plugin_desc *d, char *err, size_t errlen)
{
	if (d->abi_major != MGROK_PLUGIN_ABI_MAJOR || d->abi_minor > MGROK_PLUGIN_ABI_MINOR) {
		snprintf(err, errlen, "%s: plugin ABI %u.%u, this mgrok supports %d.0-%d.%d", path,
		         d->abi_major, d->abi_minor, MGROK_PLUGIN_ABI_MAJOR, MGROK_PLUGIN_ABI_MAJOR,
		         MGROK_PLUGIN_ABI_MINOR);
		return -1;
	}
	if (d->size < offsetof(struct mgrok_plugin_desc, reserved)) {
		snprintf(err, errlen, "%s: plugin descriptor of %u bytes is too small", path,
		         d->size);
		return -1;
	}
	if (!d->name || !*d->name || !d->init) {
		snprintf(err, errlen, "%s: plugin descriptor lacks a name or init", path);
		return -1;
	}
	if (!(d->kind == MGROK_PLUGIN_PROXY && d->proxy) &&
	    !(d->kind == MGROK_PLUGIN_AUTH && d->auth)) {
		snprintf(err, errlen, "%s: plugin '%s' has unknown kind %u or no ops", path,
		         d->name, d->kind);
		return -1;
	}
	const struct mgrok_plugin *dup = mgrok_registry_find(r, (int)d->kind, d->name);
	if (dup) {
		snprintf(err, errlen, "%s: plugin '%s' is already loaded from %s", path, d->name,
		         dup->path);
		return -1;
	}
	dup = mgrok_registry_find_id(r, (int)d->kind, d->wire_id);
	if (dup) {
		snprintf(err, errlen, "%s: plugin '%s' has wire id 0x%02x, as has '%s' from %s",
		         path, d->name, d->wire_id, dup->desc->name, dup->path);
		return -1;
	}
	return 0;
}

int mgrok_registry_load_file(struct mgrok_registry *r, const char *path, char *err, size_t errlen)
{
	void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!dl) {
		snprintf(err, errlen, "%s: cannot load plugin: %s", path, dlerror());
		return -1;
	}
	mgrok_plugin_entry_fn entry;
	/* POSIX blesses this conversion for dlsym's result. */
	*(void **)&entry = dlsym(dl, MGROK_PLUGIN_ENTRY_SYMBOL);
	if (!entry) {
		snprintf(err, errlen, "%s: not an mgrok plugin (no symbol %s)", path,
		         MGROK_PLUGIN_ENTRY_SYMBOL);
		dlclose(dl);
		return -1;
	}
	const struct mgrok_plugin_desc *d = entry();
	if (!d || check_desc(r, path, d, err, errlen) < 0) {
		if (!d)
			snprintf(err, errlen, "%s: plugin entry returned no descriptor", path);
		dlclose(dl);
		return -1;
	}
	struct mgrok_plugin *p = mgrok_xcalloc(1, sizeof(*p));
	p->path = mgrok_xstrdup(path);
	p->dl = dl;
	p->desc = d;
	r->v = mgrok_xrealloc(r->v, (r->n + 1) * sizeof(*r->v));
	r->v[r->n++] = p;
	MGROK_DEBUG("loaded %s plugin '%s' (id 0x%02x) from %s",
	            d->kind == MGROK_PLUGIN_AUTH ? "auth" : "proxy", d->name, d->wire_id, path);
	return 0;
}

static int is_module(const char *name)
{
	size_t n = strlen(name);
	return n > 3 && strcmp(name + n - 3, ".so") == 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int load_all(struct mgrok_registry *r, const char *dir, char *err, size_t errlen)
{
	DIR *d = opendir(dir);
	if (!d) {
		snprintf(err, errlen, "plugin directory %s: cannot open", dir);
		return -1;
	}
	char **names = NULL;
	size_t n = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (!is_module(e->d_name))
			continue;
		names = mgrok_xrealloc(names, (n + 1) * sizeof(*names));
		names[n++] = mgrok_xstrdup(e->d_name);
	}
	closedir(d);
	if (n == 0) {
		snprintf(err, errlen, "plugin directory %s: no plugins (*.so) in it", dir);
		return -1;
	}
	/* A stable order makes "already loaded from" messages reproducible. */
	qsort(names, n, sizeof(*names), cmp_str);
	int rc = mgrok_registry_load_dir(r, dir, names, n, err, errlen);
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return rc;
}

int mgrok_registry_load_dir(struct mgrok_registry *r, const char *dir, char *const *names,
                            size_t n_names, char *err, size_t errlen)
{
	if (!names)
		return load_all(r, dir, err, errlen);
	for (size_t i = 0; i < n_names; i++) {
		char path[4096];
		const char *why = mgrok_plugin_name_problem(names[i]);
		if (why) {
			snprintf(err, errlen, "plugin \"%s\": %s", names[i], why);
			return -1;
		}
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		if (mgrok_registry_load_file(r, path, err, errlen) < 0)
			return -1;
	}
	return 0;
}

struct mgrok_plugin *mgrok_registry_find(const struct mgrok_registry *r, int kind, const char *name)
{
	for (size_t i = 0; i < r->n; i++)
		if ((int)r->v[i]->desc->kind == kind && strcmp(r->v[i]->desc->name, name) == 0)
			return r->v[i];
	return NULL;
}

struct mgrok_plugin *mgrok_registry_find_id(const struct mgrok_registry *r, int kind, uint8_t id)
{
	for (size_t i = 0; i < r->n; i++)
		if ((int)r->v[i]->desc->kind == kind && r->v[i]->desc->wire_id == id)
			return r->v[i];
	return NULL;
}

int mgrok_plugin_init(struct mgrok_plugin *p, const json_t *conf, char *err, size_t errlen)
{
	if (p->initialized)
		return 0;
	json_t *empty = NULL;
	if (!conf)
		conf = empty = json_object();
	char perr[256] = "";
	int rc = p->desc->init(&mgrok_host_table, p, conf, &p->inst, perr, sizeof(perr));
	json_decref(empty);
	if (rc < 0) {
		snprintf(err, errlen, "plugin '%s': %s", p->desc->name,
		         perr[0] ? perr : "init failed");
		return -1;
	}
	p->initialized = true;
	return 0;
}

void mgrok_registry_free(struct mgrok_registry *r)
{
	for (size_t i = 0; i < r->n; i++) {
		struct mgrok_plugin *p = r->v[i];
		for (size_t k = 0; mgrok_host_ctx() && k < MGROK_PLUGIN_LOG_SITES; k++)
			mgrok_log_limit_flush(&p->log_limit[k], 0, mgrok_host_table.now());
		if (p->initialized && p->desc->fini)
			p->desc->fini(p->inst);
			/* Sanitizer builds keep modules mapped so that leak reports can
		 * still name the plugin's frames. */
#if !defined(__SANITIZE_ADDRESS__)
		dlclose(p->dl);
#endif
		free(p->path);
		free(p);
	}
	free(r->v);
	r->v = NULL;
	r->n = 0;
}
