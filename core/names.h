/*
 * Host names claimed by proxies routed by name (http, tls): one registry per
 * server, each proxy plugin a namespace of its own. A proxy keeps its names
 * until it is freed; a name is case-insensitive and stored folded.
 */
#ifndef MGROK_NAMES_H
#define MGROK_NAMES_H

#include <stdbool.h>
#include <stddef.h>

struct mgrok_proxy;
struct mgrok_plugin;

#define MGROK_HOSTNAME_MAX 253

struct mgrok_name {
	struct mgrok_name *next;    /* the bucket's chain */
	struct mgrok_name *px_next; /* the proxy's other names */
	const struct mgrok_plugin *plugin;
	struct mgrok_proxy *px;
	char name[MGROK_HOSTNAME_MAX + 1];
};

struct mgrok_names {
	struct mgrok_name **buckets;
	size_t nbuckets, count;
};

void mgrok_names_init(struct mgrok_names *n);
void mgrok_names_free(struct mgrok_names *n);

/*
 * Folds in into out (MGROK_HOSTNAME_MAX + 1 bytes) and checks it: 1-253
 * bytes, dot-separated labels of 1-63 [a-z0-9-] not starting or ending
 * with '-', "--" in the third and fourth place only for an A-label
 * ("xn--"). Returns NULL, or why not.
 */
const char *mgrok_hostname_check(const char *in, char *out);
/* name is a one-label subdomain of domain ("app" + "." + domain). */
bool mgrok_hostname_in_domain(const char *name, const char *domain);

/* Adds name (checked and folded) for px. Returns 0, or -1 when another
 * proxy of the plugin holds it. */
int mgrok_names_claim(struct mgrok_names *n, struct mgrok_proxy *px, const struct mgrok_plugin *p,
                      const char *name, struct mgrok_name **px_list);
/* The proxy of plugin p holding name (any case), or NULL. */
struct mgrok_proxy *mgrok_names_lookup(const struct mgrok_names *n, const struct mgrok_plugin *p,
                                       const char *name);
/* Releases every name on *px_list. */
void mgrok_names_release(struct mgrok_names *n, struct mgrok_name **px_list);

#endif
