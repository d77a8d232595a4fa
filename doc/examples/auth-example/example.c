/*
 * "example": an out-of-tree mgrok auth method, built against the installed
 * <mgrok/plugin.h> and libcrypto only. The server reads a users_file of
 * "name secret" lines; a client knows its own name and secret.
 *
 *   client -> user name
 *   server -> CHALLENGE: 16 fresh random bytes (for unknown users too, so
 *             that the reply does not tell who exists)
 *   client -> HMAC-SHA256(secret, "example-v1" || nonce || user)
 *   server -> OK (identity = user) or DENIED "authentication failed"
 *
 * The fresh nonce makes a recorded answer worthless later. The client proves
 * itself, but the server proves nothing back (the in-tree "token" method
 * does): use this method over TLS with a verified server certificate.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <mgrok/plugin.h>

#define NONCE_LEN 16
#define MAC_LEN 32
#define NAME_MAX_LEN 64 /* the host takes identities of at most 64 bytes */
#define NAME_CHARS "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._@-"
#define LABEL "example-v1" /* ties a MAC to this method and version */

struct user {
	struct user *next;
	char name[NAME_MAX_LEN + 1];
	char secret[256];
};

/* One instance per process: a server has users, a client is one user. */
struct example {
	const struct mgrok_host *host;
	const struct mgrok_plugin *self;
	struct user *users; /* server */
	struct user me;     /* client */
};

/* Server state of one handshake, between the CHALLENGE and the answer. */
struct hs {
	char user[NAME_MAX_LEN + 1];
	uint8_t nonce[NONCE_LEN];
};

/* Identities end up in logs and in authorization: keep them plain. */
static bool name_ok(const char *s)
{
	size_t n = strlen(s);
	return n >= 1 && n <= NAME_MAX_LEN && strspn(s, NAME_CHARS) == n;
}

static const struct user *find(const struct user *u, const char *name)
{
	while (u && strcmp(u->name, name) != 0)
		u = u->next;
	return u;
}

/* Read once at start, never per handshake (no disk I/O on the event loop).
 * A bad line fails init, naming file and line: a typo must not silently
 * lock somebody out. On failure the caller frees what was read. */
static int load_users(struct example *x, const char *path, char *err, size_t errlen)
{
	char line[512];
	unsigned lineno = 0;
	int rc = -1;
	FILE *f = fopen(path, "r");
	if (!f) {
		snprintf(err, errlen, "users_file %s: %s", path, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), f)) {
		char *p = line + strspn(line, " \t\r\n");
		int end = -1;
		lineno++;
		if (*p == '\0' || *p == '#')
			continue; /* blank line or comment */
		struct user *u = x->host->alloc(sizeof(*u));
		memset(u, 0, sizeof(*u));
		u->next = x->users;
		x->users = u;
		/* A name or secret too long for its %s spills into the next
		 * field, so p[end] is not the end and the line is refused. */
		if ((!strchr(line, '\n') && !feof(f)) ||
		    sscanf(p, "%64s %255s %n", u->name, u->secret, &end) != 2 || end < 0 ||
		    p[end] || !name_ok(u->name) || find(u->next, u->name)) {
			snprintf(err, errlen,
			         "%s:%u: expected \"name secret\": a new name of 1-64 "
			         "[A-Za-z0-9._@-], a secret of 1-255 bytes",
			         path, lineno);
			goto out;
		}
	}
	if (ferror(f))
		snprintf(err, errlen, "users_file %s: read error", path);
	else
		rc = 0;
out:
	x->host->wipe(line, sizeof(line)); /* it held a secret */
	fclose(f);
	return rc;
}

static void example_fini(void *inst)
{
	struct example *x = inst;
	const struct mgrok_host *host = x->host;
	while (x->users) {
		struct user *u = x->users;
		x->users = u->next;
		host->wipe(u, sizeof(*u)); /* no secrets left in freed memory */
		host->free(u);
	}
	host->wipe(x, sizeof(*x)); /* a client's secret */
	host->free(x);
}

/* Both sides run the same init; the keys say which side this is. Other
 * keys are errors, so that a misspelt option is never silently ignored. */
static int example_init(const struct mgrok_host *host, const struct mgrok_plugin *self,
                        const json_t *conf, void **inst, char *err, size_t errlen)
{
	const char *file = json_string_value(json_object_get(conf, "users_file")); /* NULL: none */
	const char *user = json_string_value(json_object_get(conf, "user"));
	const char *secret = json_string_value(json_object_get(conf, "secret"));
	struct example *x = host->alloc(sizeof(*x));
	memset(x, 0, sizeof(*x));
	x->host = host;
	x->self = self;
	if (file && json_object_size(conf) == 1) {
		if (load_users(x, file, err, errlen) < 0)
			goto fail;
	} else if (user && secret && json_object_size(conf) == 2 && name_ok(user) && *secret &&
	           strlen(secret) < sizeof(x->me.secret)) {
		strcpy(x->me.name, user);
		strcpy(x->me.secret, secret);
	} else {
		snprintf(
		        err, errlen,
		        "options: expected only \"users_file\" (server), or only "
		        "\"user\" (1-64 of [A-Za-z0-9._@-]) and \"secret\" (1-255 bytes) (client)");
		goto fail;
	}
	*inst = x;
	return 0;
fail:
	example_fini(x);
	return -1;
}

static int mac(const char *secret, const uint8_t *nonce, const char *user, uint8_t out[MAC_LEN])
{
	uint8_t msg[sizeof(LABEL) - 1 + NONCE_LEN + NAME_MAX_LEN];
	size_t llen = sizeof(LABEL) - 1, ulen = strlen(user);
	unsigned len = 0;
	memcpy(msg, LABEL, llen);
	memcpy(msg + llen, nonce, NONCE_LEN);
	memcpy(msg + llen + NONCE_LEN, user, ulen);
	return HMAC(EVP_sha256(), secret, (int)strlen(secret), msg, llen + NONCE_LEN + ulen, out,
	            &len) && len == MAC_LEN
	               ? 0
	               : -1;
}

/* One reason for every failure: a client learns nothing about why. */
static int deny(struct mgrok_auth_msg *m)
{
	snprintf(m->text, m->text_cap, "authentication failed");
	return MGROK_AUTH_DENIED;
}

static int example_client_start(void *inst, void **state, struct mgrok_auth_msg *m)
{
	struct example *x = inst;
	*state = NULL; /* a client keeps nothing between rounds */
	if (!x->me.name[0]) {
		snprintf(m->text, m->text_cap, "no \"user\" and \"secret\" configured");
		return MGROK_AUTH_DENIED;
	}
	m->out_len = strlen(x->me.name);
	memcpy(m->out, x->me.name, m->out_len);
	return MGROK_AUTH_CONTINUE;
}

static int example_client_step(void *inst, void *state, int status, struct mgrok_auth_msg *m)
{
	struct example *x = inst;
	(void)state;
	if (status == MGROK_HS_STATUS_OK)
		return MGROK_AUTH_OK; /* nothing to check: the server proves nothing */
	if (m->in_len != NONCE_LEN || mac(x->me.secret, m->in, x->me.name, m->out) < 0) {
		snprintf(m->text, m->text_cap, "malformed challenge from the server");
		return MGROK_AUTH_DENIED;
	}
	m->out_len = MAC_LEN;
	return MGROK_AUTH_CONTINUE;
}

static int example_server_step(void *inst, void **state, unsigned round, struct mgrok_auth_msg *m)
{
	struct example *x = inst;
	struct hs *h = *state;
	if (round == 0) {
		if (m->in_len > NAME_MAX_LEN) /* m->in is network input: bound it first */
			return deny(m);
		*state = h = x->host->alloc(sizeof(*h)); /* end() frees it, even on deny */
		memset(h, 0, sizeof(*h));
		memcpy(h->user, m->in, m->in_len);
		if (strlen(h->user) != m->in_len || !name_ok(h->user) ||
		    x->host->random(h->nonce, NONCE_LEN) < 0)
			return deny(m);
		memcpy(m->out, h->nonce, NONCE_LEN);
		m->out_len = NONCE_LEN;
		return MGROK_AUTH_CONTINUE;
	}
	if (round != 1 || !h || m->in_len != MAC_LEN)
		return deny(m);
	/* Unknown users cost the same HMAC as known ones; CRYPTO_memcmp takes
	 * the same time wherever the MACs differ. */
	const struct user *u = find(x->users, h->user);
	uint8_t want[MAC_LEN];
	bool ok = mac(u ? u->secret : "", h->nonce, h->user, want) == 0 &&
	          CRYPTO_memcmp(want, m->in, MAC_LEN) == 0 && u;
	x->host->wipe(want, sizeof(want));
	if (!ok) {
		x->host->log(x->self, MGROK_LOG_INFO, "user %s: authentication failed", h->user);
		return deny(m);
	}
	snprintf(m->text, m->text_cap, "%s", h->user); /* the identity for authorization */
	m->out_len = 0;
	return MGROK_AUTH_OK;
}

/* Called once per handshake on either side, however it ended. */
static void example_end(void *inst, void *state)
{
	struct example *x = inst;
	if (state) {
		x->host->wipe(state, sizeof(struct hs));
		x->host->free(state);
	}
}

static const struct mgrok_auth_ops ops = {
        .client_start = example_client_start,
        .client_step = example_client_step,
        .server_step = example_server_step,
        .end = example_end, /* ABI 1.1 adds optional authorize, max_streams, reload */
};

/* Wire ids 0x80-0xFE are for third-party methods; both sides must agree. */
MGROK_PLUGIN_DEFINE(.kind = MGROK_PLUGIN_AUTH, .name = "example", .wire_id = 0x80,
                    .init = example_init, .fini = example_fini, .auth = &ops)
