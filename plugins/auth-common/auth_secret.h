/*
 * What the auth methods built on a shared secret ("token", doc/protocol.md 2.2;
 * "users", 2.3) have in common: the secret in host memory, the options that
 * configure it ("token", "token_file", "token_env"), and the HMAC-SHA256
 * proofs over both sides' nonces.
 *
 * Each plugin compiles this in; with -fvisibility=hidden and the plugins'
 * export list, none of it is exported. Messages written to err name no
 * plugin (the caller adds "auth <name>: ") and never carry a secret.
 */
#ifndef MGROK_AUTH_SECRET_H
#define MGROK_AUTH_SECRET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mgrok/plugin.h"

#define MGROK_AUTH_NONCE_LEN ((size_t)16)
#define MGROK_AUTH_MAC_LEN ((size_t)32) /* HMAC-SHA256 */
#define MGROK_AUTH_TOKEN_FILE_MAX 4096  /* bytes, trailing whitespace included */
/* The longest label and the longest name mgrok_auth_secret_proof binds. */
#define MGROK_AUTH_LABEL_MAX 32
#define MGROK_AUTH_NAME_MAX 64

struct mgrok_auth_secret {
	uint8_t *p; /* host->alloc'd, wiped when freed; NULL: none */
	size_t len;
};

/* s takes a host->alloc'd copy of len bytes (the caller wipes its own). */
void mgrok_auth_secret_set(const struct mgrok_host *host, struct mgrok_auth_secret *s,
                           const void *p, size_t len);
/* Wipes and frees s->p, if any; s can be set again. */
void mgrok_auth_secret_free(const struct mgrok_host *host, struct mgrok_auth_secret *s);

/*
 * Reads a token file into s: at most MGROK_AUTH_TOKEN_FILE_MAX bytes, its
 * trailing whitespace dropped, not empty. Logs a warning through self when
 * other users may read the file. Returns 0, or -1 with err filled in.
 */
int mgrok_auth_secret_read_file(const struct mgrok_host *host, const struct mgrok_plugin *self,
                                const char *path, struct mgrok_auth_secret *s, char *err,
                                size_t errlen);

/* Which one of "token", "token_file" and "token_env" an options object gives. */
struct mgrok_auth_secret_option {
	const char *key;     /* NULL until one is taken */
	const json_t *value; /* its value, borrowed from the options */
};

/* Whether key is one of "token", "token_file" and "token_env". */
bool mgrok_auth_secret_is_option(const char *key);
/* Takes one of them (key, a string value) into o. Returns 0, or -1 with err
 * filled in when o holds one already: exactly one may be given. */
int mgrok_auth_secret_option_take(struct mgrok_auth_secret_option *o, const char *key,
                                  const json_t *value, char *err, size_t errlen);
/*
 * Reads the secret o names into s: the string itself, the file it names, or
 * the environment variable it names. None may be empty. Returns 0, or -1
 * with err filled in.
 */
int mgrok_auth_secret_load(const struct mgrok_host *host, const struct mgrok_plugin *self,
                           const struct mgrok_auth_secret_option *o, struct mgrok_auth_secret *s,
                           char *err, size_t errlen);

/*
 * A proof: HMAC-SHA256 with key over, for the client's,
 *   label || name || cnonce || snonce
 * and for the server's (server true),
 *   label || snonce || cnonce || name
 * label is ASCII, taken without its NUL; name is "" ("token") or the user
 * name ("users"). Returns 0, or -1 when HMAC fails or label or name is too
 * long.
 */
int mgrok_auth_secret_proof(const struct mgrok_auth_secret *key, const char *label, bool server,
                            const char *name, const uint8_t cnonce[MGROK_AUTH_NONCE_LEN],
                            const uint8_t snonce[MGROK_AUTH_NONCE_LEN],
                            uint8_t mac[MGROK_AUTH_MAC_LEN]);

#endif
