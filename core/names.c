#include "names.h"

#include <stdint.h>
#include <strings.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

void mgrok_names_init(struct mgrok_names *n)
{
	n->nbuckets = 64;
	n->count = 0;
	n->buckets = mgrok_xcalloc(n->nbuckets, sizeof(*n->buckets));
}

void mgrok_names_free(struct mgrok_names *n)
{
	for (size_t i = 0; i < n->nbuckets; i++) {
		while (n->buckets[i]) {
			struct mgrok_name *e = n->buckets[i];
			n->buckets[i] = e->next;
			free(e);
		}
	}
	free(n->buckets);
	n->buckets = NULL;
	n->nbuckets = n->count = 0;
}

static bool label_ok(const char *l, size_t len)
{
	if (len < 1 || len > 63 || l[0] == '-' || l[len - 1] == '-')
		return false;
	/* RFC 5891 4.2.3.1: "--" there is reserved for A-labels. */
	if (len >= 4 && l[2] == '-' && l[3] == '-' && !(l[0] == 'x' && l[1] == 'n'))
		return false;
	for (size_t i = 0; i < len; i++)
		if (!((l[i] >= 'a' && l[i] <= 'z') || (l[i] >= '0' && l[i] <= '9') || l[i] == '-'))
			return false;
	return true;
}

const char *mgrok_hostname_check(const char *in, char *out)
{
	size_t len = strlen(in);
	if (!len || len > MGROK_HOSTNAME_MAX)
		return "a host name is 1-253 bytes";
	for (size_t i = 0; i <= len; i++)
		out[i] = (char)(in[i] >= 'A' && in[i] <= 'Z' ? in[i] - 'A' + 'a' : in[i]);
	for (const char *l = out;;) {
		const char *dot = strchr(l, '.');
		size_t n = dot ? (size_t)(dot - l) : strlen(l);
		if (!label_ok(l, n))
			return "a host name is dot-separated labels of 1-63 letters, digits and "
			       "hyphens (IDNA A-labels for other scripts)";
		if (!dot)
			return NULL;
		l = dot + 1;
	}
}

bool mgrok_hostname_in_domain(const char *name, const char *domain)
{
	size_t n = strlen(name), d = domain ? strlen(domain) : 0;
	if (!d || n < d + 2 || name[n - d - 1] != '.' || strcasecmp(name + n - d, domain) != 0)
		return false;
	return memchr(name, '.', n - d - 1) == NULL;
}

static size_t bucket_of(const struct mgrok_names *n, const struct mgrok_plugin *p, const char *name)
{
	uint64_t h = 1469598103934665603ull ^ (uintptr_t)p;
	for (const char *c = name; *c; c++)
		h = (h ^ (uint8_t)*c) * 1099511628211ull;
	return (size_t)(h % n->nbuckets);
}

static struct mgrok_name *find(const struct mgrok_names *n, const struct mgrok_plugin *p,
                               const char *folded)
{
	for (struct mgrok_name *e = n->buckets[bucket_of(n, p, folded)]; e; e = e->next)
		if (e->plugin == p && strcmp(e->name, folded) == 0)
			return e;
	return NULL;
}

/* Twice the buckets once the chains average two: lookups stay short. */
static void grow(struct mgrok_names *n)
{
	struct mgrok_names bigger = {mgrok_xcalloc(n->nbuckets * 2, sizeof(*n->buckets)),
	                             n->nbuckets * 2, n->count};
	for (size_t i = 0; i < n->nbuckets; i++) {
		while (n->buckets[i]) {
			struct mgrok_name *e = n->buckets[i];
			n->buckets[i] = e->next;
			size_t b = bucket_of(&bigger, e->plugin, e->name);
			e->next = bigger.buckets[b];
			bigger.buckets[b] = e;
		}
	}
	free(n->buckets);
	*n = bigger;
}

int mgrok_names_claim(struct mgrok_names *n, struct mgrok_proxy *px, const struct mgrok_plugin *p,
                      const char *name, struct mgrok_name **px_list)
{
	struct mgrok_name *e = find(n, p, name);
	if (e)
		return e->px == px ? 0 : -1;
	if (n->count >= 2 * n->nbuckets)
		grow(n);
	e = mgrok_xcalloc(1, sizeof(*e));
	e->plugin = p;
	e->px = px;
	strcpy(e->name, name); /* checked: at most MGROK_HOSTNAME_MAX */
	size_t b = bucket_of(n, p, e->name);
	e->next = n->buckets[b];
	n->buckets[b] = e;
	e->px_next = *px_list;
	*px_list = e;
	n->count++;
	return 0;
}

struct mgrok_proxy *mgrok_names_lookup(const struct mgrok_names *n, const struct mgrok_plugin *p,
                                       const char *name)
{
	char folded[MGROK_HOSTNAME_MAX + 1];
	size_t len = strlen(name);
	if (!n->buckets || len > MGROK_HOSTNAME_MAX)
		return NULL;
	for (size_t i = 0; i <= len; i++)
		folded[i] =
		        (char)(name[i] >= 'A' && name[i] <= 'Z' ? name[i] - 'A' + 'a' : name[i]);
	struct mgrok_name *e = find(n, p, folded);
	return e ? e->px : NULL;
}

void mgrok_names_release(struct mgrok_names *n, struct mgrok_name **px_list)
{
	while (*px_list) {
		struct mgrok_name *e = *px_list;
		*px_list = e->px_next;
		struct mgrok_name **pp = &n->buckets[bucket_of(n, e->plugin, e->name)];
		while (*pp != e)
			pp = &(*pp)->next;
		*pp = e->next;
		n->count--;
		free(e);
	}
}
