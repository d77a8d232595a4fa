/*
 * TLS for the control connection (doc/protocol.md 7), with OpenSSL: contexts
 * for both roles, certificate pinning, and a self-signed certificate for a
 * first deployment.
 */
#ifndef MGROK_TLS_H
#define MGROK_TLS_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>

#include "config.h"

#define MGROK_FINGERPRINT_LEN 72 /* "sha256:" + 64 hex digits + NUL */

struct mgrok_tls {
	SSL_CTX *ctx;
	bool server;
	bool insecure;
	unsigned char pin[32]; /* SHA-256 of the server certificate (DER) */
	bool pinned;
	char refused_fp[MGROK_FINGERPRINT_LEN]; /* the last certificate the pin refused */
	char *name; /* the name (or IP) the server certificate must carry */
};

/* Server: TLS 1.2 or newer with this certificate chain and key. */
struct mgrok_tls *mgrok_tls_server_new(const char *cert, const char *key, char *err, size_t errlen);
/* Server, SIGHUP: new connections get this pair from now on, those in
 * progress keep theirs. Returns 0, or -1 with err (the old pair stays). */
int mgrok_tls_server_reload(struct mgrok_tls *t, const char *cert, const char *key, char *err,
                            size_t errlen);
/*
 * Client: verifies against c->ca (or the system store) and the server name
 * (c->server_name, else host), or only against c->fingerprint, or nothing
 * when c->insecure.
 */
struct mgrok_tls *mgrok_tls_client_new(const struct mgrok_tls_conf *c, const char *host, char *err,
                                       size_t errlen);
void mgrok_tls_free(struct mgrok_tls *t);

/* A new SSL for fd, in the context's role. NULL with err filled in. */
SSL *mgrok_tls_wrap(struct mgrok_tls *t, int fd, char *err, size_t errlen);
/* Why the handshake of ssl failed, for humans; true if it was the peer's
 * certificate (a configuration problem that retrying does not fix). */
bool mgrok_tls_explain(SSL *ssl, unsigned long err_code, char *buf, size_t len);

/* "sha256:<hex>" of a PEM certificate file. Returns 0 or -1 with err. */
int mgrok_tls_fingerprint_file(const char *path, char *out, size_t outlen, char *err,
                               size_t errlen);
/*
 * Writes DIR/cert.pem and DIR/key.pem (key mode 0600): a self-signed
 * certificate for name (valid 10 years, EC P-256, name as CN and SAN).
 */
int mgrok_tls_gen_cert(const char *dir, const char *name, char *fingerprint, size_t fplen,
                       char *err, size_t errlen);

#endif
