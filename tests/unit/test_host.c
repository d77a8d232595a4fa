#include "test_host.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char test_host_log[8192];
char test_host_last_log[512];

static void host_log(const struct mgrok_plugin *self, int level, const char *fmt, ...)
{
	va_list ap;
	(void)self;
	(void)level;
	va_start(ap, fmt);
	vsnprintf(test_host_last_log, sizeof(test_host_last_log), fmt, ap);
	va_end(ap);
	size_t n = strlen(test_host_log);
	snprintf(test_host_log + n, sizeof(test_host_log) - n, "%s\n", test_host_last_log);
}

static void *host_alloc(size_t len)
{
	void *p = malloc(len ? len : 1);
	if (!p)
		abort();
	return p;
}

static void host_free(void *p) { free(p); }
static void host_wipe(void *p, size_t len) { OPENSSL_cleanse(p, len); }
static int host_random(void *buf, size_t len) { return RAND_bytes(buf, (int)len) == 1 ? 0 : -1; }

const struct mgrok_host test_host = {
        .abi_major = MGROK_PLUGIN_ABI_MAJOR,
        .abi_minor = MGROK_PLUGIN_ABI_MINOR,
        .size = sizeof(struct mgrok_host),
        .log = host_log,
        .alloc = host_alloc,
        .free = host_free,
        .wipe = host_wipe,
        .random = host_random,
};
