/*
 * Fuzz target: the users file of the auth-users plugin
 * (plugins/auth-users/auth_users.c, compiled in).
 *
 * The input is the file: written to this process's scratch directory and
 * handed to the plugin's init as {"file": PATH}. When it loads, every user
 * it names (and one name made up from the input) is put through the ABI 1.1
 * ops authorize and max_streams; then the file is reloaded unchanged (which
 * must work), reloaded cut in half (which may fail and must then keep the
 * old users), asked again, and the plugin finished (LeakSanitizer).
 */
#include <string.h>

#include "fuzz.h"

static const struct mgrok_plugin_desc *desc;

/* Questions a server asks about one REGISTER of user `name`; returns a
 * digest of the answers. */
static unsigned ask(void *inst, const char *name, unsigned h)
{
	static const char *const types[] = {"tcp", "udp", "x"};
	static const uint16_t ports[] = {0, 1, 20005, 20080, 65535};
	const struct mgrok_auth_ops *ops = desc->auth;
	char reason[128];
	unsigned digest = 0;

	for (unsigned i = 0; i < 3; i++, h /= 7) {
		struct mgrok_authz a = {.identity = name,
		                        .name = "web",
		                        .type = types[h % 3],
		                        .remote_port = ports[(h >> 2) % 5],
		                        .proxies = (h >> 4) % 4};
		/* Small on purpose: a reason is cut, never overrun. */
		size_t cap = 8 + i * 56;
		memset(reason, 0, sizeof(reason));
		int v = ops->authorize(inst, &a, reason, cap);
		FUZZ_ASSERT(v == MGROK_AUTHZ_OK || v == MGROK_AUTHZ_PORT_NOT_ALLOWED ||
		                    v == MGROK_AUTHZ_LIMIT || v == MGROK_AUTHZ_FORBIDDEN,
		            "authorize returned %d", v);
		FUZZ_ASSERT(v == MGROK_AUTHZ_OK || (reason[0] && strlen(reason) < cap),
		            "refused %d with reason '%s'", v, reason);
		digest = digest * 8 + (unsigned)v;
	}
	return digest * 31 + ops->max_streams(inst, name);
}

static unsigned ask_all(void *inst, const uint8_t *data, size_t size, unsigned h)
{
	unsigned digest = 0;
	json_t *root = json_loadb((const char *)data, size, 0, NULL);
	const char *name;
	json_t *v;
	json_object_foreach(json_object_get(root, "users"), name, v)
		digest = digest * 131 + ask(inst, name, h++);
	json_decref(root);
	/* A name the file may not have, from the input's last bytes. */
	char made_up[17];
	size_t n = size < 16 ? size : 16;
	if (n)
		memcpy(made_up, data + size - n, n);
	made_up[n] = '\0';
	return digest * 131 + ask(inst, made_up, h);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char conf_text[600], err[1024];
	void *inst = NULL;
	unsigned h = 0;

	if (!desc)
		desc = fuzz_auth_users_entry();
	for (size_t i = 0; i < size; i++)
		h = h * 31 + data[i];
	const char *path = fuzz_write_file("users.json", data, size);
	FUZZ_ASSERT(path != NULL, "cannot write the users file");
	snprintf(conf_text, sizeof(conf_text), "{\"file\": \"%s\"}", path);
	json_t *conf = json_loads(conf_text, 0, NULL);
	fuzz_host_reset();
	err[0] = '\0';
	int rc = desc->init(&fuzz_host, NULL, conf, &inst, err, sizeof(err));
	json_decref(conf);
	FUZZ_ASSERT(rc == 0 || rc == -1, "init returned %d", rc);
	FUZZ_ASSERT(memchr(err, '\0', sizeof(err)) != NULL, "unterminated error");
	if (rc < 0) {
		FUZZ_ASSERT(err[0] != '\0', "init failed without a reason");
		return 0;
	}
	FUZZ_ASSERT(inst != NULL, "init succeeded without an instance");
	unsigned answers = ask_all(inst, data, size, h);

	FUZZ_ASSERT(desc->auth->reload(inst, err, sizeof(err)) == 0, "reload of the same file: %s",
	            err);
	FUZZ_ASSERT(ask_all(inst, data, size, h) == answers, "other answers after a reload");
	fuzz_write_file("users.json", data, size / 2);
	err[0] = '\0';
	if (desc->auth->reload(inst, err, sizeof(err)) < 0) {
		FUZZ_ASSERT(err[0] != '\0', "reload failed without a reason");
		FUZZ_ASSERT(ask_all(inst, data, size, h) == answers,
		            "a failed reload changed the answers");
	} else {
		ask_all(inst, data, size, h + 1);
	}
	desc->fini(inst);
	return 0;
}
