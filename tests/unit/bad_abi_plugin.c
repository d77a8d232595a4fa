/*
 * A test plugin from a future mgrok: its descriptor claims ABI major 99, so
 * the loader must refuse it before touching anything past the version and
 * name both versions in its message. The descriptor is written by hand on
 * purpose: MGROK_PLUGIN_DEFINE would fill in the ABI this host supports.
 * Everything else is valid, so that the ABI check is the only reason to
 * refuse it.
 */
#include <stddef.h>

#include "mgrok/plugin.h"

static int bad_init(const struct mgrok_host *host, const struct mgrok_plugin *self,
                    const json_t *conf, void **inst, char *err, size_t errlen)
{
	(void)host;
	(void)self;
	(void)conf;
	(void)err;
	(void)errlen;
	*inst = NULL;
	return 0;
}

static int bad_server_step(void *inst, void **state, unsigned round, struct mgrok_auth_msg *m)
{
	(void)inst;
	(void)state;
	(void)round;
	(void)m;
	return MGROK_AUTH_DENIED;
}

static void bad_end(void *inst, void *state)
{
	(void)inst;
	(void)state;
}

static const struct mgrok_auth_ops bad_ops = {
        .server_step = bad_server_step,
        .end = bad_end,
};

MGROK_PLUGIN_EXPORT const struct mgrok_plugin_desc *mgrok_plugin_entry(void);

const struct mgrok_plugin_desc *mgrok_plugin_entry(void)
{
	static const struct mgrok_plugin_desc desc = {
	        .abi_major = 99,
	        .abi_minor = 0,
	        .size = sizeof(struct mgrok_plugin_desc),
	        .kind = MGROK_PLUGIN_AUTH,
	        .name = "bad-abi",
	        .wire_id = 0x7e,
	        .init = bad_init,
	        .auth = &bad_ops,
	};
	return &desc;
}
