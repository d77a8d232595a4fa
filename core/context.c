#include "context.h"

#include <stdlib.h>
#include <time.h>

#include "buf.h"
#include "defaults.h"

void mgrok_ctx_init(struct mgrok_ctx *c, struct ev_loop *loop)
{
	c->loop = loop;
	c->autotune = true;
	c->next_session_id = 1;
	c->notify = NULL;
	c->read_buf = mgrok_xmalloc(MGROK_READ_CHUNK);
	mgrok_traffic_table_init(&c->traffic, MGROK_TRAFFIC_MAX);
	c->reloads_ok = c->reloads_failed = 0;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	c->started_at = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void mgrok_ctx_free(struct mgrok_ctx *c)
{
	free(c->read_buf);
	c->read_buf = NULL;
	mgrok_traffic_table_free(&c->traffic);
}
