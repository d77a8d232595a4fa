/*
 * Client groups: several clients register the same public port with the
 * same group name and group key, and its visitors are spread over them in
 * turn. The port is bound once, by an anchor proxy the server owns (no
 * session); the host functions that open a visitor's stream on a proxy
 * hand it to a member instead (mgrok_group_pick). A member that goes away
 * leaves the others alone; the last one takes the port with it.
 */
#ifndef MGROK_GROUP_H
#define MGROK_GROUP_H

#include <stddef.h>

#include "codec.h"

struct mgrok_proxy;

#define MGROK_GROUP_KEY_MAX 256

struct mgrok_group {
	struct mgrok_group *next; /* the server's list */
	char name[MGROK_NAME_MAX + 1];
	char key[MGROK_GROUP_KEY_MAX + 1];
	struct mgrok_proxy *anchor; /* bound to the port; ->group is this */
	struct mgrok_proxy **members;
	size_t n, cap;
	size_t turn; /* the member the next visitor goes to */
};

/* The member the next visitor goes to (one whose session takes streams),
 * or NULL when none does. */
struct mgrok_proxy *mgrok_group_pick(struct mgrok_group *g);
/* The same among the members of this node's own sessions: a visitor
 * another node relayed here never goes back to a node. */
struct mgrok_proxy *mgrok_group_pick_local(struct mgrok_group *g);
void mgrok_group_add(struct mgrok_group *g, struct mgrok_proxy *px);
/* Returns the members left. */
size_t mgrok_group_remove(struct mgrok_group *g, struct mgrok_proxy *px);

/* A visitor for px: px itself, or when px anchors a group, the member
 * whose turn it is (NULL: none can take it). */
struct mgrok_proxy *mgrok_group_route(struct mgrok_proxy *px);

#endif
