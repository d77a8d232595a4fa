/*
 * Auth method "token" (PROTOCOL.md 2.2, id 0x01): a shared secret proved
 * both ways with HMAC-SHA256 over fresh nonces from each side.
 *
 *   client -> cnonce (16)
 *   server -> CHALLENGE snonce (16)
 *   client -> HMAC(token, "mgrok-token-v1 client" || cnonce || snonce)
 *   server -> OK HMAC(token, "mgrok-token-v1 server" || snonce || cnonce)
 *
 * Options, exactly one of: "token" (the secret inline), "token_file" (a
 * file holding it; trailing whitespace is dropped), "token_env" (the name of
 * an environment variable holding it). No error text carries the secret.
 */
#define _POSIX_C_SOURCE 200809L /* fileno, fstat */
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "mgrok/plugin.h"

#define NONCE_LEN ((size_t)16)
#define MAC_LEN ((size_t)32)
#define TOKEN_FILE_MAX 4096

static const char label_client[] = "mgrok-token-v1 client";
static const char label_server[] = "mgrok-token-v1 server";

struct token {
	const struct mgrok_host *host;
	const struct mgrok_plugin *self;
	uint8_t *key; /* the secret, host->alloc'd, wiped on fini */
	size_t key_len;
};

/* One handshake, either side. */
struct token_hs {
	uint8_t cnonce[NONCE_LEN];
	uint8_t snonce[NONCE_LEN];
	bool have_snonce; /* server: challenge sent; client: challenge answered */
};

static void wipe(const struct token *t, void *p, size_t len)
{
	if (t->host->wipe)
		t->host->wipe(p, len);
	else
		OPENSSL_cleanse(p, len);
}

static int get_random(const struct token *t, uint8_t *p, size_t len)
{
	if (t->host->random)
		return t->host->random(p, len) == 0 ? 0 : -1;
	return RAND_bytes(p, (int)len) == 1 ? 0 : -1;
}

/* HMAC-SHA256(key, label || a || b): the two proofs of PROTOCOL.md 2.2. */
static int proof(const struct token *t, const char *label, const uint8_t a[NONCE_LEN],
                 const uint8_t b[NONCE_LEN], uint8_t mac[MAC_LEN])
{
	uint8_t msg[sizeof(label_client) - 1 + 2 * NONCE_LEN];
	size_t llen = strlen(label);
	unsigned mlen = 0;

	memcpy(msg, label, llen); /* NOLINT(bugprone-not-null-terminated-result): bytes */
	memcpy(msg + llen, a, NONCE_LEN);
	memcpy(msg + llen + NONCE_LEN, b, NONCE_LEN);
	const unsigned char *r =
	    HMAC(EVP_sha256(), t->key, (int)t->key_len, msg, llen + 2 * NONCE_LEN, mac, &mlen);
	return r && mlen == MAC_LEN ? 0 : -1;
}

static void set_text(struct mgrok_auth_msg *m, const char *s)
{
	snprintf(m->text, m->text_cap, "%s", s);
}

/* ---- options ------------------------------------------------------------ */

/* Takes len bytes of secret into t->key (the caller wipes its copy). */
static int set_key(struct token *t, const void *p, size_t len, const char *source, char *err,
                   size_t errlen)
{
	if (len == 0) {
		snprintf(err, errlen, "auth token: %s is empty", source);
		return -1;
	}
	t->key = t->host->alloc(len);
	memcpy(t->key, p, len);
	t->key_len = len;
	return 0;
}

static int key_from_file(struct token *t, const char *path, char *err, size_t errlen)
{
	uint8_t buf[TOKEN_FILE_MAX + 1];
	char source[64 + 4096];
	struct stat st;
	int rc = -1;

	FILE *f = fopen(path, "rb");
	if (!f) {
		snprintf(err, errlen, "auth token: cannot open token_file \"%s\": %s", path,
		         strerror(errno));
		return -1;
	}
	size_t n = fread(buf, 1, sizeof(buf), f);
	if (ferror(f)) {
		snprintf(err, errlen, "auth token: cannot read token_file \"%s\": %s", path,
		         strerror(errno));
		goto out;
	}
	if (n > TOKEN_FILE_MAX) {
		snprintf(err, errlen, "auth token: token_file \"%s\" is larger than %d bytes",
		         path, TOKEN_FILE_MAX);
		goto out;
	}
	while (n > 0 && isspace(buf[n - 1]))
		n--;
	snprintf(source, sizeof(source), "token_file \"%s\"", path);
	rc = set_key(t, buf, n, source, err, errlen);
	if (rc == 0 && t->host->log && fstat(fileno(f), &st) == 0 && (st.st_mode & 077))
		t->host->log(t->self, MGROK_LOG_WARN,
		             "token_file \"%s\" can be read by other users (chmod 600 it)", path);
out:
	wipe(t, buf, sizeof(buf));
	fclose(f);
	return rc;
}

static int key_from_env(struct token *t, const char *name, char *err, size_t errlen)
{
	char source[128];
	const char *v = getenv(name);
	if (!v) {
		snprintf(err, errlen, "auth token: environment variable %.64s (token_env) is not set",
		         name);
		return -1;
	}
	snprintf(source, sizeof(source), "environment variable %.64s (token_env)", name);
	return set_key(t, v, strlen(v), source, err, errlen);
}

static int parse_options(struct token *t, const json_t *conf, char *err, size_t errlen)
{
	const json_t *which = NULL;
	const char *which_key = NULL;
	const char *key;
	json_t *value;

	if (!json_is_object(conf)) {
		snprintf(err, errlen, "auth token: options must be a JSON object");
		return -1;
	}
	json_object_foreach((json_t *)conf, key, value)
	{
		if (strcmp(key, "token") != 0 && strcmp(key, "token_file") != 0 &&
		    strcmp(key, "token_env") != 0) {
			snprintf(err, errlen,
			         "auth token: unknown option \"%.64s\" (expected \"token\", "
			         "\"token_file\" or \"token_env\")",
			         key);
			return -1;
		}
		if (!json_is_string(value)) {
			snprintf(err, errlen, "auth token: \"%s\" must be a string", key);
			return -1;
		}
		if (which) {
			snprintf(err, errlen,
			         "auth token: \"%s\" and \"%s\" both given; use exactly one of "
			         "\"token\", \"token_file\" or \"token_env\"",
			         which_key, key);
			return -1;
		}
		which = value;
		which_key = key;
	}
	if (!which) {
		snprintf(err, errlen,
		         "auth token: no secret configured; give one of \"token\", "
		         "\"token_file\" or \"token_env\"");
		return -1;
	}
	if (strcmp(which_key, "token") == 0)
		return set_key(t, json_string_value(which), json_string_length(which),
		               "\"token\"", err, errlen);
	if (strcmp(which_key, "token_file") == 0)
		return key_from_file(t, json_string_value(which), err, errlen);
	return key_from_env(t, json_string_value(which), err, errlen);
}

static void token_fini(void *inst)
{
	struct token *t = inst;
	if (!t)
		return;
	if (t->key) {
		wipe(t, t->key, t->key_len);
		t->host->free(t->key);
	}
	t->host->free(t);
}

static int token_init(const struct mgrok_host *host, const struct mgrok_plugin *self,
                      const json_t *conf, void **inst, char *err, size_t errlen)
{
	struct token *t = host->alloc(sizeof(*t));
	memset(t, 0, sizeof(*t));
	t->host = host;
	t->self = self;
	if (parse_options(t, conf, err, errlen) < 0) {
		token_fini(t);
		return -1;
	}
	*inst = t;
	return 0;
}

/* ---- handshake ---------------------------------------------------------- */

static struct token_hs *hs_new(const struct token *t)
{
	struct token_hs *h = t->host->alloc(sizeof(*h));
	memset(h, 0, sizeof(*h));
	return h;
}

static int token_client_start(void *inst, void **state, struct mgrok_auth_msg *m)
{
	struct token *t = inst;
	struct token_hs *h = hs_new(t);

	*state = h;
	if (get_random(t, h->cnonce, NONCE_LEN) < 0) {
		set_text(m, "random number generator failed");
		return MGROK_AUTH_DENIED;
	}
	memcpy(m->out, h->cnonce, NONCE_LEN);
	m->out_len = NONCE_LEN;
	return MGROK_AUTH_CONTINUE;
}

static int token_client_step(void *inst, void *state, int status, struct mgrok_auth_msg *m)
{
	struct token *t = inst;
	struct token_hs *h = state;
	uint8_t mac[MAC_LEN];
	int rc = MGROK_AUTH_DENIED;

	if (status == MGROK_HS_STATUS_CHALLENGE) {
		if (h->have_snonce || m->in_len != NONCE_LEN) {
			set_text(m, "malformed token challenge from the server");
			return MGROK_AUTH_DENIED;
		}
		memcpy(h->snonce, m->in, NONCE_LEN);
		if (proof(t, label_client, h->cnonce, h->snonce, m->out) < 0) {
			set_text(m, "HMAC-SHA256 failed");
			return MGROK_AUTH_DENIED;
		}
		h->have_snonce = true;
		m->out_len = MAC_LEN;
		return MGROK_AUTH_CONTINUE;
	}

	/* OK: only after our answer, and only with the server's own proof. A
	 * server that says OK without challenging us has proved nothing. */
	if (h->have_snonce && m->in_len == MAC_LEN &&
	    proof(t, label_server, h->snonce, h->cnonce, mac) == 0 &&
	    CRYPTO_memcmp(mac, m->in, MAC_LEN) == 0)
		rc = MGROK_AUTH_OK;
	else
		set_text(m, "server proof invalid (the server does not know the token)");
	wipe(t, mac, sizeof(mac));
	return rc;
}

static int token_server_step(void *inst, void **state, unsigned round, struct mgrok_auth_msg *m)
{
	struct token *t = inst;
	struct token_hs *h = *state;
	uint8_t mac[MAC_LEN];

	if (round == 0) {
		if (m->in_len != NONCE_LEN) {
			set_text(m, "malformed token handshake");
			return MGROK_AUTH_DENIED;
		}
		h = hs_new(t);
		*state = h;
		memcpy(h->cnonce, m->in, NONCE_LEN);
		if (get_random(t, h->snonce, NONCE_LEN) < 0) {
			set_text(m, "server error");
			return MGROK_AUTH_DENIED;
		}
		h->have_snonce = true;
		memcpy(m->out, h->snonce, NONCE_LEN);
		m->out_len = NONCE_LEN;
		return MGROK_AUTH_CONTINUE;
	}
	if (round != 1 || !h || !h->have_snonce || m->in_len != MAC_LEN) {
		set_text(m, "malformed token handshake");
		return MGROK_AUTH_DENIED;
	}
	if (proof(t, label_client, h->cnonce, h->snonce, mac) < 0) {
		set_text(m, "server error");
		return MGROK_AUTH_DENIED;
	}
	int match = CRYPTO_memcmp(mac, m->in, MAC_LEN) == 0;
	wipe(t, mac, sizeof(mac));
	if (!match) {
		set_text(m, "authentication failed");
		return MGROK_AUTH_DENIED;
	}
	if (proof(t, label_server, h->snonce, h->cnonce, m->out) < 0) {
		set_text(m, "server error");
		return MGROK_AUTH_DENIED;
	}
	m->out_len = MAC_LEN;
	set_text(m, "token");
	return MGROK_AUTH_OK;
}

static void token_end(void *inst, void *state)
{
	struct token *t = inst;
	if (!state)
		return;
	wipe(t, state, sizeof(struct token_hs));
	t->host->free(state);
}

static const struct mgrok_auth_ops ops = {
    .client_start = token_client_start,
    .client_step = token_client_step,
    .server_step = token_server_step,
    .end = token_end,
};

MGROK_PLUGIN_DEFINE(.kind = MGROK_PLUGIN_AUTH, .name = "token", .wire_id = 0x01,
                    .init = token_init, .fini = token_fini, .auth = &ops)
