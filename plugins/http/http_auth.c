/*
 * HTTP Basic credentials for the http filter (RFC 7617): the accepted
 * "user:password" pairs are kept only as SHA-256 digests, and a request's
 * credentials are decoded strictly, hashed and compared in constant time.
 */
#include "http_filter_impl.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

/* A strict base64 (RFC 4648 4: padded, no whitespace, canonical); returns
 * the length decoded into out, or -1. */
static long base64_decode(const uint8_t *in, size_t n, uint8_t *out)
{
	static const char alphabet[] =
	        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t len = 0;
	if (n == 0 || n % 4)
		return -1;
	for (size_t i = 0; i < n; i += 4) {
		uint32_t v = 0;
		int pad = 0;
		for (size_t j = 0; j < 4; j++) {
			const char *c = in[i + j] ? strchr(alphabet, in[i + j]) : NULL;
			bool padding = in[i + j] == '=' && i + 4 == n && j >= 2;
			if ((!c && !padding) || (c && pad))
				return -1;
			pad += padding;
			v = v << 6 | (c ? (uint32_t)(c - alphabet) : 0);
		}
		if ((pad == 1 && (v & 0xff)) || (pad == 2 && (v & 0xffff)))
			return -1; /* bits past the data: not canonical */
		uint8_t bytes[3] = {(uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
		memcpy(out + len, bytes, (size_t)(3 - pad));
		len += (size_t)(3 - pad);
	}
	return (long)len;
}

static bool sha256(const void *p, size_t n, uint8_t digest[DIGEST_LEN])
{
	unsigned int len = 0;
	return EVP_Digest(p, n, digest, &len, EVP_sha256(), NULL) == 1 && len == DIGEST_LEN;
}

/* Compares digests, so that the time taken tells nothing of where or how
 * long a wrong guess matched. */
static bool credentials_accepted(struct http_filter *f, const uint8_t *b64, size_t n)
{
	uint8_t *plain = (uint8_t *)f->scratch, digest[DIGEST_LEN];
	long len = base64_decode(b64, n, plain);
	if (len < 0)
		return false;
	bool hashed = sha256(plain, (size_t)len, digest);
	OPENSSL_cleanse(plain, (size_t)len);
	unsigned match = 0;
	for (size_t i = 0; hashed && i < f->naccepted; i++)
		match |= CRYPTO_memcmp(digest, f->accepted[i], DIGEST_LEN) == 0;
	OPENSSL_cleanse(digest, sizeof(digest));
	return match != 0;
}

/* "Authorization: Basic base64(user:password)" (RFC 7617 2). */
int http_auth_check(struct http_filter *f)
{
	unsigned n;
	const struct field *auth = http_head_field(f, KIND_AUTHORIZATION, &n);
	if (n > 1)
		return refuse(f, 400, "more than one Authorization field");
	if (!auth)
		return refuse(f, 401, "no credentials");
	const uint8_t *v = f->head + auth->value;
	size_t len = auth->value_len, i = 5;
	if (len <= i || !name_is(v, i, "basic", false) || v[i] != ' ')
		return refuse(f, 401, "credentials other than Basic");
	while (i < len && v[i] == ' ')
		i++;
	if (!credentials_accepted(f, v + i, len - i))
		return refuse(f, 401, "wrong credentials");
	return 0;
}

bool http_auth_set(struct http_filter *f, const char *const *list)
{
	size_t n = 0;
	while (list[n])
		n++;
	f->auth = true;
	f->accepted = calloc(n ? n : 1, DIGEST_LEN);
	if (!f->accepted)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!sha256(list[i], strlen(list[i]), f->accepted[i]))
			return false;
	f->naccepted = n;
	return true;
}

void http_auth_wipe(struct http_filter *f)
{
	if (f->accepted)
		OPENSSL_cleanse(f->accepted, f->naccepted * DIGEST_LEN);
	if (f->scratch)
		OPENSSL_cleanse(f->scratch, f->lim.max_head + 16);
}
