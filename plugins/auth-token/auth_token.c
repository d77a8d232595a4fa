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
 *
 * Built a second time as plugin auth-cluster: method "cluster" (id 0x03),
 * the same handshake under labels of its own, for the sessions between the
 * nodes of a cluster (doc/cluster.md); its identity is "cluster".
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>

#include "mgrok/plugin.h"

#include "../auth-common/auth_secret.h"

#define NONCE_LEN MGROK_AUTH_NONCE_LEN
#define MAC_LEN MGROK_AUTH_MAC_LEN

#ifndef TOKEN_METHOD
#define TOKEN_METHOD "token"
#define TOKEN_WIRE_ID 0x01
#define TOKEN_LABEL "mgrok-token-v1"
#endif

static const char label_client[] = TOKEN_LABEL " client";
static const char label_server[] = TOKEN_LABEL " server";

struct token {
	const struct mgrok_host *host;
	const struct mgrok_plugin *self;
	struct mgrok_auth_secret key;
};

/* One handshake, either side. */
struct token_hs {
	uint8_t cnonce[NONCE_LEN];
	uint8_t snonce[NONCE_LEN];
	bool have_snonce; /* server: challenge sent; client: challenge answered */
};

/* The client's proof or the server's (PROTOCOL.md 2.2). */
static int proof(const struct token *t, bool server, const struct token_hs *h, uint8_t mac[MAC_LEN])
{
	return mgrok_auth_secret_proof(&t->key, server ? label_server : label_client, server, "",
	                               h->cnonce, h->snonce, mac);
}

static void set_text(struct mgrok_auth_msg *m, const char *s)
{
	snprintf(m->text, m->text_cap, "%s", s);
}

/* A message into the caller's buffer; returns -1 to be returned on. */
__attribute__((format(printf, 3, 4))) static int fail(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, len, fmt, ap);
	va_end(ap);
	return -1;
}

/* ---- options ------------------------------------------------------------ */

static int parse_options(struct token *t, const json_t *conf, char *err, size_t errlen)
{
	struct mgrok_auth_secret_option src = {0};
	const char *key;
	json_t *value;

	if (!json_is_object(conf))
		return fail(err, errlen, "options must be a JSON object");
	json_object_foreach((json_t *)conf, key, value) {
		if (!mgrok_auth_secret_is_option(key))
			return fail(err, errlen,
			            "unknown option \"%.64s\" (expected \"token\", \"token_file\" "
			            "or \"token_env\")",
			            key);
		if (!json_is_string(value))
			return fail(err, errlen, "\"%s\" must be a string", key);
		if (mgrok_auth_secret_option_take(&src, key, value, err, errlen) < 0)
			return -1;
	}
	if (!src.key)
		return fail(err, errlen,
		            "no secret configured; give one of \"token\", \"token_file\" or "
		            "\"token_env\"");
	return mgrok_auth_secret_load(t->host, t->self, &src, &t->key, err, errlen);
}

static void token_fini(void *inst)
{
	struct token *t = inst;
	if (!t)
		return;
	mgrok_auth_secret_free(t->host, &t->key);
	t->host->free(t);
}

static int token_init(const struct mgrok_host *host, const struct mgrok_plugin *self,
                      const json_t *conf, void **inst, char *err, size_t errlen)
{
	struct token *t = host->alloc(sizeof(*t));
	char msg[1024];

	memset(t, 0, sizeof(*t));
	t->host = host;
	t->self = self;
	if (parse_options(t, conf, msg, sizeof(msg)) < 0) {
		token_fini(t);
		return fail(err, errlen, "auth " TOKEN_METHOD ": %s", msg);
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
	if (t->host->random(h->cnonce, NONCE_LEN) != 0) {
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
		if (proof(t, false, h, m->out) < 0) {
			set_text(m, "HMAC-SHA256 failed");
			return MGROK_AUTH_DENIED;
		}
		h->have_snonce = true;
		m->out_len = MAC_LEN;
		return MGROK_AUTH_CONTINUE;
	}

	/* OK: only after our answer, and only with the server's own proof. A
	 * server that says OK without challenging us has proved nothing. */
	if (h->have_snonce && m->in_len == MAC_LEN && proof(t, true, h, mac) == 0 &&
	    CRYPTO_memcmp(mac, m->in, MAC_LEN) == 0)
		rc = MGROK_AUTH_OK;
	else
		set_text(m, "server proof invalid (the server does not know the token)");
	t->host->wipe(mac, sizeof(mac));
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
		if (t->host->random(h->snonce, NONCE_LEN) != 0) {
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
	if (proof(t, false, h, mac) < 0) {
		set_text(m, "server error");
		return MGROK_AUTH_DENIED;
	}
	int match = CRYPTO_memcmp(mac, m->in, MAC_LEN) == 0;
	t->host->wipe(mac, sizeof(mac));
	if (!match) {
		set_text(m, "authentication failed");
		return MGROK_AUTH_DENIED;
	}
	if (proof(t, true, h, m->out) < 0) {
		set_text(m, "server error");
		return MGROK_AUTH_DENIED;
	}
	m->out_len = MAC_LEN;
	set_text(m, TOKEN_METHOD); /* the identity */
	return MGROK_AUTH_OK;
}

static void token_end(void *inst, void *state)
{
	struct token *t = inst;
	if (!state)
		return;
	t->host->wipe(state, sizeof(struct token_hs));
	t->host->free(state);
}

static const struct mgrok_auth_ops ops = {
        .client_start = token_client_start,
        .client_step = token_client_step,
        .server_step = token_server_step,
        .end = token_end,
};

MGROK_PLUGIN_DEFINE(.kind = MGROK_PLUGIN_AUTH, .name = TOKEN_METHOD, .wire_id = TOKEN_WIRE_ID,
                    .init = token_init, .fini = token_fini, .auth = &ops)
