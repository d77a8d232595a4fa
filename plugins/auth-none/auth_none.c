/*
 * Auth method "none" (PROTOCOL.md 2.1, id 0x00): empty payloads both ways,
 * every client is "anonymous". The server offers it only when configured to.
 */
#include <stdio.h>
#include <string.h>

#include "mgrok/plugin.h"

struct none {
	const struct mgrok_host *host;
	const struct mgrok_plugin *self;
};

static void set_text(struct mgrok_auth_msg *m, const char *s)
{
	snprintf(m->text, m->text_cap, "%s", s);
}

static int none_init(const struct mgrok_host *host, const struct mgrok_plugin *self,
                     const json_t *conf, void **inst, char *err, size_t errlen)
{
	if (!json_is_object(conf)) {
		snprintf(err, errlen, "auth none: options must be a JSON object");
		return -1;
	}
	const char *key;
	json_t *value;
	json_object_foreach((json_t *)conf, key, value) {
		(void)value;
		snprintf(err, errlen, "auth none: unknown option \"%s\" (none takes no options)",
		         key);
		return -1;
	}
	struct none *n = host->alloc(sizeof(*n));
	n->host = host;
	n->self = self;
	*inst = n;
	return 0;
}

static void none_fini(void *inst)
{
	struct none *n = inst;
	if (n)
		n->host->free(n);
}

static int none_client_start(void *inst, void **state, struct mgrok_auth_msg *m)
{
	(void)inst;
	*state = NULL;
	m->out_len = 0;
	return MGROK_AUTH_CONTINUE;
}

static int none_client_step(void *inst, void *state, int status, struct mgrok_auth_msg *m)
{
	(void)inst;
	(void)state;
	if (status != MGROK_HS_STATUS_OK) {
		set_text(m, "unexpected challenge for auth method none");
		return MGROK_AUTH_DENIED;
	}
	if (m->in_len != 0) {
		set_text(m, "unexpected payload in the server's OK for auth method none");
		return MGROK_AUTH_DENIED;
	}
	return MGROK_AUTH_OK;
}

static int none_server_step(void *inst, void **state, unsigned round, struct mgrok_auth_msg *m)
{
	(void)inst;
	(void)state;
	if (round != 0 || m->in_len != 0) {
		set_text(m, "malformed none handshake");
		return MGROK_AUTH_DENIED;
	}
	m->out_len = 0;
	set_text(m, "anonymous");
	return MGROK_AUTH_OK;
}

static void none_end(void *inst, void *state)
{
	(void)inst;
	(void)state;
}

static const struct mgrok_auth_ops ops = {
        .client_start = none_client_start,
        .client_step = none_client_step,
        .server_step = none_server_step,
        .end = none_end,
};

MGROK_PLUGIN_DEFINE(.kind = MGROK_PLUGIN_AUTH, .name = "none", .wire_id = 0x00, .init = none_init,
                    .fini = none_fini, .auth = &ops)
