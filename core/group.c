#include "group.h"

#include <stdlib.h>

#include "buf.h"
#include "proxy.h"
#include "session.h"

static bool takes_streams(const struct mgrok_proxy *px)
{
	const struct mgrok_session *s = px->sess;
	return s && s->open && !s->closing && !s->draining;
}

static struct mgrok_proxy *pick(struct mgrok_group *g, bool local)
{
	for (size_t i = 0; i < g->n; i++) {
		size_t k = (g->turn + i) % g->n;
		if (takes_streams(g->members[k]) && !(local && g->members[k]->relayed)) {
			g->turn = k + 1;
			return g->members[k];
		}
	}
	return NULL;
}

struct mgrok_proxy *mgrok_group_pick(struct mgrok_group *g) { return pick(g, false); }

struct mgrok_proxy *mgrok_group_pick_local(struct mgrok_group *g) { return pick(g, true); }

void mgrok_group_add(struct mgrok_group *g, struct mgrok_proxy *px)
{
	if (g->n == g->cap) {
		g->cap = g->cap ? 2 * g->cap : 4;
		g->members = mgrok_xrealloc(g->members, g->cap * sizeof(*g->members));
	}
	g->members[g->n++] = px;
	px->group = g;
}

size_t mgrok_group_remove(struct mgrok_group *g, struct mgrok_proxy *px)
{
	for (size_t i = 0; i < g->n; i++) {
		if (g->members[i] != px)
			continue;
		/* Order kept: the turn moves on as it would have. */
		for (size_t j = i + 1; j < g->n; j++)
			g->members[j - 1] = g->members[j];
		g->n--;
		if (g->turn > i)
			g->turn--;
		break;
	}
	px->group = NULL;
	return g->n;
}

struct mgrok_proxy *mgrok_group_route(struct mgrok_proxy *px)
{
	if (!px->group || px->group->anchor != px)
		return px;
	return mgrok_group_pick(px->group);
}
