/*
 * The shared secret of the "token" and "users" auth methods: where it is
 * configured, how it is read, and the proofs made with it (auth_secret.h).
 */
#define _POSIX_C_SOURCE 200809L /* fileno, fstat */
#include "auth_secret.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

static const char *const option_keys[] = {"token", "token_file", "token_env"};

/* A message into the caller's buffer; returns -1 to be returned on. */
__attribute__((format(printf, 3, 4))) static int fail(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, len, fmt, ap);
	va_end(ap);
	return -1;
}

void mgrok_auth_secret_set(const struct mgrok_host *host, struct mgrok_auth_secret *s,
                           const void *p, size_t len)
{
	s->p = host->alloc(len);
	memcpy(s->p, p, len);
	s->len = len;
}

void mgrok_auth_secret_free(const struct mgrok_host *host, struct mgrok_auth_secret *s)
{
	if (s->p) {
		host->wipe(s->p, s->len);
		host->free(s->p);
	}
	s->p = NULL;
	s->len = 0;
}

/* ---- files and the environment --------------------------------------------- */

int mgrok_auth_secret_read_file(const struct mgrok_host *host, const struct mgrok_plugin *self,
                                const char *path, struct mgrok_auth_secret *s, char *err,
                                size_t errlen)
{
	uint8_t buf[MGROK_AUTH_TOKEN_FILE_MAX + 1]; /* one more: a longer file is refused */
	struct stat st;

	FILE *f = fopen(path, "rb");
	if (!f)
		return fail(err, errlen, "cannot open token_file \"%s\": %s", path,
		            strerror(errno));
	/* Unbuffered: stdio's own buffer would keep a copy of the token in
	 * freed memory; ours is wiped. */
	setvbuf(f, NULL, _IONBF, 0);
	size_t n = fread(buf, 1, sizeof(buf), f);
	int rc = ferror(f) ? fail(err, errlen, "cannot read token_file \"%s\": %s", path,
	                          strerror(errno))
	                   : 0;
	if (rc == 0 && n > MGROK_AUTH_TOKEN_FILE_MAX)
		rc = fail(err, errlen, "token_file \"%s\" is larger than %d bytes", path,
		          MGROK_AUTH_TOKEN_FILE_MAX);
	while (n > 0 && isspace(buf[n - 1]))
		n--;
	if (rc == 0 && n == 0)
		rc = fail(err, errlen, "token_file \"%s\" is empty", path);
	if (rc == 0 && fstat(fileno(f), &st) == 0 && (st.st_mode & (S_IRWXG | S_IRWXO)))
		host->log(self, MGROK_LOG_WARN,
		          "token_file \"%s\" can be read by other users (chmod 600 it)", path);
	if (rc == 0)
		mgrok_auth_secret_set(host, s, buf, n);
	host->wipe(buf, sizeof(buf));
	fclose(f);
	return rc;
}

static int read_env(const struct mgrok_host *host, const char *name, struct mgrok_auth_secret *s,
                    char *err, size_t errlen)
{
	const char *v = getenv(name);
	if (!v)
		return fail(err, errlen, "environment variable %.64s (token_env) is not set", name);
	if (!*v)
		return fail(err, errlen, "environment variable %.64s (token_env) is empty", name);
	mgrok_auth_secret_set(host, s, v, strlen(v));
	return 0;
}

/* ---- options ------------------------------------------------------------------ */

bool mgrok_auth_secret_is_option(const char *key)
{
	for (size_t i = 0; i < sizeof(option_keys) / sizeof(option_keys[0]); i++)
		if (strcmp(key, option_keys[i]) == 0)
			return true;
	return false;
}

int mgrok_auth_secret_option_take(struct mgrok_auth_secret_option *o, const char *key,
                                  const json_t *value, char *err, size_t errlen)
{
	if (o->key)
		return fail(err, errlen,
		            "\"%s\" and \"%s\" both given; use exactly one of \"token\", "
		            "\"token_file\" or \"token_env\"",
		            o->key, key);
	o->key = key;
	o->value = value;
	return 0;
}

int mgrok_auth_secret_load(const struct mgrok_host *host, const struct mgrok_plugin *self,
                           const struct mgrok_auth_secret_option *o, struct mgrok_auth_secret *s,
                           char *err, size_t errlen)
{
	const char *v = json_string_value(o->value);
	size_t len = json_string_length(o->value);

	if (strcmp(o->key, "token_file") == 0)
		return mgrok_auth_secret_read_file(host, self, v, s, err, errlen);
	if (strcmp(o->key, "token_env") == 0)
		return read_env(host, v, s, err, errlen);
	if (len == 0)
		return fail(err, errlen, "\"%s\" is empty", o->key);
	mgrok_auth_secret_set(host, s, v, len);
	return 0;
}

/* ---- proofs ------------------------------------------------------------------- */

/* Copies len bytes (no NUL) to at; returns where the next bytes go. */
static uint8_t *append(uint8_t *at, const void *p, size_t len)
{
	memcpy(at, p, len); /* NOLINT(bugprone-not-null-terminated-result): bytes */
	return at + len;
}

int mgrok_auth_secret_proof(const struct mgrok_auth_secret *key, const char *label, bool server,
                            const char *name, const uint8_t cnonce[MGROK_AUTH_NONCE_LEN],
                            const uint8_t snonce[MGROK_AUTH_NONCE_LEN],
                            uint8_t mac[MGROK_AUTH_MAC_LEN])
{
	uint8_t msg[MGROK_AUTH_LABEL_MAX + MGROK_AUTH_NAME_MAX + 2 * MGROK_AUTH_NONCE_LEN];
	size_t l = strlen(label), n = strlen(name);
	unsigned mlen = 0;

	if (l > MGROK_AUTH_LABEL_MAX || n > MGROK_AUTH_NAME_MAX)
		return -1;
	uint8_t *end = append(msg, label, l);
	if (server) {
		end = append(end, snonce, MGROK_AUTH_NONCE_LEN);
		end = append(end, cnonce, MGROK_AUTH_NONCE_LEN);
		end = append(end, name, n);
	} else {
		end = append(end, name, n);
		end = append(end, cnonce, MGROK_AUTH_NONCE_LEN);
		end = append(end, snonce, MGROK_AUTH_NONCE_LEN);
	}
	const unsigned char *r =
	        HMAC(EVP_sha256(), key->p, (int)key->len, msg, (size_t)(end - msg), mac, &mlen);
	return r && mlen == MGROK_AUTH_MAC_LEN ? 0 : -1;
}
