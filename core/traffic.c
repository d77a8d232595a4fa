#include "traffic.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"

void mgrok_traffic_table_init(struct mgrok_traffic_table *t, size_t max)
{
	memset(t, 0, sizeof(*t));
	t->max = max;
}

static void unlink_entry(struct mgrok_traffic_table *t, struct mgrok_traffic *e)
{
	if (e->prev)
		e->prev->next = e->next;
	else
		t->head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		t->tail = e->prev;
	t->n--;
}

static void push_front(struct mgrok_traffic_table *t, struct mgrok_traffic *e)
{
	e->prev = NULL;
	e->next = t->head;
	if (t->head)
		t->head->prev = e;
	else
		t->tail = e;
	t->head = e;
	t->n++;
}

static void entry_free(struct mgrok_traffic *e)
{
	free(e->proxy);
	free(e->type);
	free(e->user);
	free(e);
}

void mgrok_traffic_table_free(struct mgrok_traffic_table *t)
{
	while (t->head) {
		struct mgrok_traffic *e = t->head;
		unlink_entry(t, e);
		entry_free(e);
	}
}

/* Over the bound: entries no proxy holds go, least recently used first.
 * Held ones stay whatever their number: the proxies are bounded already. */
static void trim(struct mgrok_traffic_table *t)
{
	for (struct mgrok_traffic *e = t->tail; e && t->n > t->max;) {
		struct mgrok_traffic *prev = e->prev;
		if (!e->refs) {
			unlink_entry(t, e);
			entry_free(e);
		}
		e = prev;
	}
}

struct mgrok_traffic *mgrok_traffic_get(struct mgrok_traffic_table *t, const char *proxy,
                                        const char *type, const char *user)
{
	struct mgrok_traffic *e = t->head;
	while (e && (strcmp(e->proxy, proxy) || strcmp(e->type, type) || strcmp(e->user, user)))
		e = e->next;
	if (e) {
		unlink_entry(t, e);
	} else {
		e = mgrok_xcalloc(1, sizeof(*e));
		e->proxy = mgrok_xstrdup(proxy);
		e->type = mgrok_xstrdup(type);
		e->user = mgrok_xstrdup(user);
	}
	push_front(t, e);
	e->refs++;
	trim(t);
	return e;
}

void mgrok_traffic_put(struct mgrok_traffic_table *t, struct mgrok_traffic *e)
{
	if (!e)
		return;
	e->refs--;
	trim(t);
}
