#include "tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"

static void ssl_error(char *err, size_t errlen, const char *what)
{
	unsigned long e = ERR_get_error();
	char buf[256] = "unknown error";
	if (e)
		ERR_error_string_n(e, buf, sizeof(buf));
	snprintf(err, errlen, "%s: %s", what, buf);
	ERR_clear_error();
}

static SSL_CTX *new_ctx(const SSL_METHOD *method)
{
	SSL_CTX *ctx = SSL_CTX_new(method);
	if (!ctx)
		return NULL;
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	/* The session's output buffer may move between a partial write and
	 * its retry, and a partial write is fine: frames are a byte stream. */
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	/* Bulk data: read many records per read(2) instead of two reads per
	 * record, and prefer AES-128-GCM (with AES-NI the cheapest AEAD). */
	SSL_CTX_set_read_ahead(ctx, 1);
	SSL_CTX_set_default_read_buffer_len(ctx, 256 * 1024);
	SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256:"
	                              "TLS_AES_256_GCM_SHA384");
	return ctx;
}

/* A server context with this certificate chain and key, or NULL with err. */
static SSL_CTX *server_ctx(const char *cert, const char *key, char *err, size_t errlen)
{
	char what[300];
	SSL_CTX *ctx = new_ctx(TLS_server_method());
	if (!ctx) {
		ssl_error(err, errlen, "TLS");
		return NULL;
	}
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		snprintf(what, sizeof(what), "tls.cert %s", cert);
		ssl_error(err, errlen, what);
	} else if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
		snprintf(what, sizeof(what), "tls.key %s", key);
		ssl_error(err, errlen, what);
	} else if (SSL_CTX_check_private_key(ctx) != 1) {
		snprintf(err, errlen, "tls: the key %s does not belong to the certificate %s", key,
		         cert);
	} else {
		return ctx;
	}
	SSL_CTX_free(ctx);
	return NULL;
}

struct mgrok_tls *mgrok_tls_server_new(const char *cert, const char *key, char *err, size_t errlen)
{
	SSL_CTX *ctx = server_ctx(cert, key, err, errlen);
	if (!ctx)
		return NULL;
	struct mgrok_tls *t = mgrok_xcalloc(1, sizeof(*t));
	t->server = true;
	t->ctx = ctx;
	return t;
}

int mgrok_tls_server_reload(struct mgrok_tls *t, const char *cert, const char *key, char *err,
                            size_t errlen)
{
	SSL_CTX *ctx = server_ctx(cert, key, err, errlen);
	if (!ctx)
		return -1;
	/* Connections already wrapped hold their own reference to the old one. */
	SSL_CTX_free(t->ctx);
	t->ctx = ctx;
	return 0;
}

static int parse_pin(const char *s, unsigned char pin[32])
{
	if (strncmp(s, "sha256:", 7) != 0)
		return -1;
	s += 7;
	for (int i = 0; i < 32; i++) {
		/* Accept "AB:CD:..." as openssl prints it, as well as plain hex. */
		if (*s == ':')
			s++;
		unsigned v;
		if (sscanf(s, "%2x", &v) != 1 || !s[0] || !s[1])
			return -1;
		pin[i] = (unsigned char)v;
		s += 2;
	}
	return *s ? -1 : 0;
}

static int leaf_sha256(X509 *cert, unsigned char out[32])
{
	unsigned int n = 0;
	return X509_digest(cert, EVP_sha256(), out, &n) == 1 && n == 32 ? 0 : -1;
}

/* The fingerprint of the last certificate refused by a pin, for the error
 * message: OpenSSL keeps no peer certificate after a failed verification.
 * One loop, one thread: a static is enough. */
static void format_fp(const unsigned char d[32], char *out, size_t len)
{
	snprintf(out, len, "sha256:");
	for (int i = 0; i < 32 && 7 + 2 * (size_t)i + 3 <= len; i++)
		snprintf(out + 7 + 2 * i, 3, "%02x", d[i]);
}

/* Pinning: the leaf must match; the chain and the name do not matter. */
static int pin_verify(int preverify_ok, X509_STORE_CTX *xs)
{
	if (X509_STORE_CTX_get_error_depth(xs) > 0)
		return 1;
	SSL *ssl = X509_STORE_CTX_get_ex_data(xs, SSL_get_ex_data_X509_STORE_CTX_idx());
	struct mgrok_tls *t = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
	unsigned char fp[32];
	X509 *cert = X509_STORE_CTX_get_current_cert(xs);
	if (!cert || leaf_sha256(cert, fp) < 0 || CRYPTO_memcmp(fp, t->pin, 32) != 0) {
		if (cert)
			format_fp(fp, t->refused_fp, sizeof(t->refused_fp));
		X509_STORE_CTX_set_error(xs, X509_V_ERR_APPLICATION_VERIFICATION);
		return 0;
	}
	X509_STORE_CTX_set_error(xs, X509_V_OK);
	return 1;
}

struct mgrok_tls *mgrok_tls_client_new(const struct mgrok_tls_conf *c, const char *host, char *err,
                                       size_t errlen)
{
	struct mgrok_tls *t = mgrok_xcalloc(1, sizeof(*t));
	t->ctx = new_ctx(TLS_client_method());
	if (!t->ctx) {
		ssl_error(err, errlen, "TLS");
		goto fail;
	}
	SSL_CTX_set_app_data(t->ctx, t);
	t->name = mgrok_xstrdup(c->server_name ? c->server_name : host);
	if (c->insecure) {
		t->insecure = true;
		SSL_CTX_set_verify(t->ctx, SSL_VERIFY_NONE, NULL);
	} else if (c->fingerprint) {
		if (parse_pin(c->fingerprint, t->pin) < 0) {
			snprintf(err, errlen,
			         "tls.fingerprint: expected \"sha256:\" and 64 hex digits");
			goto fail;
		}
		t->pinned = true;
		SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER, pin_verify);
	} else {
		int ok = c->ca ? SSL_CTX_load_verify_locations(t->ctx, c->ca, NULL)
		               : SSL_CTX_set_default_verify_paths(t->ctx);
		if (ok != 1) {
			char what[300];
			snprintf(what, sizeof(what), "tls.ca %s", c->ca ? c->ca : "(system store)");
			ssl_error(err, errlen, what);
			goto fail;
		}
		SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER, NULL);
	}
	return t;
fail:
	mgrok_tls_free(t);
	return NULL;
}

void mgrok_tls_free(struct mgrok_tls *t)
{
	if (!t)
		return;
	SSL_CTX_free(t->ctx);
	free(t->name);
	free(t);
}

SSL *mgrok_tls_wrap(struct mgrok_tls *t, int fd, char *err, size_t errlen)
{
	SSL *ssl = SSL_new(t->ctx);
	if (!ssl || SSL_set_fd(ssl, fd) != 1) {
		ssl_error(err, errlen, "TLS");
		SSL_free(ssl);
		return NULL;
	}
	if (t->server) {
		SSL_set_accept_state(ssl);
		return ssl;
	}
	SSL_set_connect_state(ssl);
	struct in6_addr ip;
	bool literal =
	        inet_pton(AF_INET, t->name, &ip) == 1 || inet_pton(AF_INET6, t->name, &ip) == 1;
	if (!literal)
		SSL_set_tlsext_host_name(ssl, t->name); /* SNI is for names only */
	if (!t->insecure && !t->pinned) {
		X509_VERIFY_PARAM *vp = SSL_get0_param(ssl);
		if (literal)
			X509_VERIFY_PARAM_set1_ip_asc(vp, t->name);
		else
			X509_VERIFY_PARAM_set1_host(vp, t->name, 0);
	}
	return ssl;
}

bool mgrok_tls_explain(SSL *ssl, unsigned long err_code, char *buf, size_t len)
{
	long v = SSL_get_verify_result(ssl);
	const struct mgrok_tls *t = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
	if (v == X509_V_ERR_APPLICATION_VERIFICATION && t && t->pinned) {
		snprintf(buf, len,
		         "TLS: the server's certificate %s does not match the pinned fingerprint",
		         t->refused_fp[0] ? t->refused_fp : "(none)");
		return true;
	}
	if (v != X509_V_OK && !SSL_is_server(ssl)) {
		snprintf(buf, len, "TLS: the server's certificate is not trusted: %s%s%s",
		         X509_verify_cert_error_string(v),
		         v == X509_V_ERR_HOSTNAME_MISMATCH || v == X509_V_ERR_IP_ADDRESS_MISMATCH
		                 ? " for "
		                 : "",
		         v == X509_V_ERR_HOSTNAME_MISMATCH || v == X509_V_ERR_IP_ADDRESS_MISMATCH
		                 ? (t ? t->name : "")
		                 : "");
		return true;
	}
	if (!err_code || ERR_GET_REASON(err_code) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
		snprintf(buf, len, "TLS handshake failed: the %s closed the connection%s",
		         SSL_is_server(ssl) ? "client" : "server",
		         SSL_is_server(ssl) ? ""
		                            : " (is it a plaintext mgrokd? then turn tls off)");
		return false;
	}
	char e[256];
	ERR_error_string_n(err_code, e, sizeof(e));
	snprintf(buf, len, "TLS handshake failed: %s", e);
	return false;
}

int mgrok_tls_fingerprint_file(const char *path, char *out, size_t outlen, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	X509 *cert = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	unsigned char d[32];
	if (!cert || leaf_sha256(cert, d) < 0) {
		X509_free(cert);
		snprintf(err, errlen, "%s: not a PEM certificate", path);
		return -1;
	}
	X509_free(cert);
	format_fp(d, out, outlen);
	return 0;
}

static int write_pem(const char *path, int mode, EVP_PKEY *key, X509 *cert, char *err,
                     size_t errlen)
{
	/* O_NOFOLLOW and fchmod: an existing file (or a planted link) must not
	 * leave a new private key readable by others. */
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
	if (fd >= 0 && fchmod(fd, (mode_t)mode) < 0) {
		close(fd);
		fd = -1;
	}
	FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
	if (!f) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	int ok = key ? PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL)
	             : PEM_write_X509(f, cert);
	if (fclose(f) != 0 || ok != 1) {
		snprintf(err, errlen, "%s: write failed", path);
		return -1;
	}
	return 0;
}

/* The names a generated certificate is good for: name, and for the default
 * "localhost" the loopback addresses too, so that clients that reach a
 * local server by address verify it as well. */
static void subject_alt_names(const char *name, char *san, size_t len)
{
	struct in6_addr ip;
	bool literal = inet_pton(AF_INET, name, &ip) == 1 || inet_pton(AF_INET6, name, &ip) == 1;
	if (strcmp(name, "localhost") == 0)
		snprintf(san, len, "DNS:localhost,IP:127.0.0.1,IP:::1");
	else
		snprintf(san, len, "%s:%s", literal ? "IP" : "DNS", name);
}

int mgrok_tls_gen_cert(const char *dir, const char *name, char *fingerprint, size_t fplen,
                       char *err, size_t errlen)
{
	char cert_path[4096], key_path[4096], san[300];
	int rc = -1;
	X509 *cert = NULL;
	X509_EXTENSION *ext = NULL;
	EVP_PKEY *key = EVP_EC_gen("P-256");
	if (!key) {
		ssl_error(err, errlen, "key generation");
		return -1;
	}
	cert = X509_new();
	X509_set_version(cert, 2);
	unsigned char serial[16];
	RAND_bytes(serial, sizeof(serial));
	serial[0] &= 0x7f;
	BIGNUM *bn = BN_bin2bn(serial, sizeof(serial), NULL);
	BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert));
	BN_free(bn);
	X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
	X509_gmtime_adj(X509_getm_notAfter(cert), 10L * 365 * 24 * 3600);
	X509_set_pubkey(cert, key);
	X509_NAME *subject = X509_get_subject_name(cert);
	X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC, (const unsigned char *)name, -1, -1,
	                           0);
	X509_set_issuer_name(cert, subject);
	subject_alt_names(name, san, sizeof(san));
	ext = X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name, san);
	if (!ext || X509_add_ext(cert, ext, -1) != 1 || X509_sign(cert, key, EVP_sha256()) == 0) {
		ssl_error(err, errlen, "certificate");
		goto out;
	}
	if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
		snprintf(err, errlen, "%s: %s", dir, strerror(errno));
		goto out;
	}
	snprintf(cert_path, sizeof(cert_path), "%s/cert.pem", dir);
	snprintf(key_path, sizeof(key_path), "%s/key.pem", dir);
	if (write_pem(key_path, 0600, key, NULL, err, errlen) < 0 ||
	    write_pem(cert_path, 0644, NULL, cert, err, errlen) < 0)
		goto out;
	rc = mgrok_tls_fingerprint_file(cert_path, fingerprint, fplen, err, errlen);
out:
	X509_EXTENSION_free(ext);
	X509_free(cert);
	EVP_PKEY_free(key);
	return rc;
}
