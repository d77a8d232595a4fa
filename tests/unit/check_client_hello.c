/*
 * Unit tests for plugins/tls/client_hello.c, the SNI reader of the TLS
 * passthrough plugin (RFC 8446 4.1.2 and 5.1, RFC 5246 7.4.1.2, RFC 6066
 * 3): ClientHellos captured from OpenSSL, each as every prefix, with bytes
 * after it and split over records at every point; built hellos with one
 * field wrong at a time, each refused at the first byte that shows it; the
 * names RFC 1123 allows and those it does not; TLS_HELLO_MAX and the
 * caller's buffer. Every call reads an exactly sized heap copy, so that a
 * read past len shows under ASan (configure --enable-sanitizers).
 */
#include <check.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client_hello.h"

/* A literal's bytes and length, NULs inside included. */
#define B(s) (const uint8_t *)(s), sizeof(s) - 1
#define COUNT(a) (sizeof(a) / sizeof((a)[0]))
#define CAP 254 /* the longest name and its NUL */
/* ck_assert_msg without the mark it leaves on success (a write to the
 * runner each time): for what runs thousands of times per test. */
#define CHECK(cond, ...)                                                                           \
	do {                                                                                       \
		if (!(cond))                                                                       \
			ck_abort_msg(__VA_ARGS__);                                                 \
	} while (0)

/* ---- captured hellos ------------------------------------------------------- */

/*
 * What python3's ssl module (OpenSSL 3.0.19) sends first, captured with
 *
 *     ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
 *     ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
 *     ctx.maximum_version = ssl.TLSVersion.TLSv1_3  # or TLSv1_2
 *     i, o = ssl.MemoryBIO(), ssl.MemoryBIO()
 *     s = ctx.wrap_bio(i, o, server_hostname="www.Example.com")  # or None
 *     try: s.do_handshake()
 *     except ssl.SSLWantReadError: o.read()
 *
 * One record each, version 0x0301. TLS 1.3 pads its hello to 517 bytes (the
 * padding extension, 21); the names: www.Example.com (uppercase kept as
 * given) and api.example.org.
 */
static const uint8_t tls13_sni[517] = {
        0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03, 0x1f, 0x85, 0xa3, 0x0a,
        0xd8, 0x43, 0xb9, 0x89, 0x2e, 0x7c, 0x7a, 0xb5, 0x42, 0xba, 0x8d, 0x1b, 0x0f, 0x4e, 0xf9,
        0xf7, 0x33, 0x3a, 0x07, 0xbf, 0x7c, 0xfb, 0x01, 0x71, 0xdd, 0x91, 0x00, 0x5e, 0x20, 0x4a,
        0xb1, 0x70, 0x84, 0xad, 0xfd, 0x79, 0x35, 0x90, 0x1a, 0xe0, 0x85, 0xce, 0xf4, 0xa4, 0x4e,
        0x27, 0x1d, 0xbf, 0x38, 0xe6, 0xc3, 0xca, 0xda, 0x97, 0x28, 0x1d, 0x46, 0x69, 0xa8, 0xf6,
        0x69, 0x00, 0x24, 0x13, 0x02, 0x13, 0x03, 0x13, 0x01, 0xc0, 0x2c, 0xc0, 0x30, 0xc0, 0x2b,
        0xc0, 0x2f, 0xcc, 0xa9, 0xcc, 0xa8, 0xc0, 0x24, 0xc0, 0x28, 0xc0, 0x23, 0xc0, 0x27, 0x00,
        0x9f, 0x00, 0x9e, 0x00, 0x6b, 0x00, 0x67, 0x00, 0xff, 0x01, 0x00, 0x01, 0x8f, 0x00, 0x00,
        0x00, 0x14, 0x00, 0x12, 0x00, 0x00, 0x0f, 0x77, 0x77, 0x77, 0x2e, 0x45, 0x78, 0x61, 0x6d,
        0x70, 0x6c, 0x65, 0x2e, 0x63, 0x6f, 0x6d, 0x00, 0x0b, 0x00, 0x04, 0x03, 0x00, 0x01, 0x02,
        0x00, 0x0a, 0x00, 0x16, 0x00, 0x14, 0x00, 0x1d, 0x00, 0x17, 0x00, 0x1e, 0x00, 0x19, 0x00,
        0x18, 0x01, 0x00, 0x01, 0x01, 0x01, 0x02, 0x01, 0x03, 0x01, 0x04, 0x00, 0x23, 0x00, 0x00,
        0x00, 0x16, 0x00, 0x00, 0x00, 0x17, 0x00, 0x00, 0x00, 0x0d, 0x00, 0x2a, 0x00, 0x28, 0x04,
        0x03, 0x05, 0x03, 0x06, 0x03, 0x08, 0x07, 0x08, 0x08, 0x08, 0x09, 0x08, 0x0a, 0x08, 0x0b,
        0x08, 0x04, 0x08, 0x05, 0x08, 0x06, 0x04, 0x01, 0x05, 0x01, 0x06, 0x01, 0x03, 0x03, 0x03,
        0x01, 0x03, 0x02, 0x04, 0x02, 0x05, 0x02, 0x06, 0x02, 0x00, 0x2b, 0x00, 0x05, 0x04, 0x03,
        0x04, 0x03, 0x03, 0x00, 0x2d, 0x00, 0x02, 0x01, 0x01, 0x00, 0x33, 0x00, 0x26, 0x00, 0x24,
        0x00, 0x1d, 0x00, 0x20, 0xdf, 0x4d, 0x8b, 0xfe, 0x24, 0x8b, 0x26, 0x26, 0x57, 0xc2, 0xc1,
        0x81, 0xbc, 0x63, 0xc4, 0x56, 0x38, 0x7e, 0xb9, 0xfd, 0x8c, 0x74, 0x6e, 0x02, 0xa4, 0x94,
        0x1c, 0xb1, 0x96, 0xd9, 0x1e, 0x22, 0x00, 0x15, 0x00, 0xde, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
};
static const uint8_t tls12_sni[186] = {
        0x16, 0x03, 0x01, 0x00, 0xb5, 0x01, 0x00, 0x00, 0xb1, 0x03, 0x03, 0xc9, 0xe8, 0x1e, 0x08,
        0x88, 0xde, 0x80, 0xe5, 0x3e, 0x54, 0xaa, 0x37, 0x7e, 0x3d, 0x7c, 0x3d, 0xe9, 0x92, 0x76,
        0x13, 0xbc, 0x9e, 0x0e, 0xfa, 0x89, 0x83, 0xb1, 0x50, 0xfb, 0x89, 0xe3, 0xe5, 0x00, 0x00,
        0x1e, 0xc0, 0x2c, 0xc0, 0x30, 0xc0, 0x2b, 0xc0, 0x2f, 0xcc, 0xa9, 0xcc, 0xa8, 0xc0, 0x24,
        0xc0, 0x28, 0xc0, 0x23, 0xc0, 0x27, 0x00, 0x9f, 0x00, 0x9e, 0x00, 0x6b, 0x00, 0x67, 0x00,
        0xff, 0x01, 0x00, 0x00, 0x6a, 0x00, 0x00, 0x00, 0x14, 0x00, 0x12, 0x00, 0x00, 0x0f, 0x61,
        0x70, 0x69, 0x2e, 0x65, 0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65, 0x2e, 0x6f, 0x72, 0x67, 0x00,
        0x0b, 0x00, 0x04, 0x03, 0x00, 0x01, 0x02, 0x00, 0x0a, 0x00, 0x0c, 0x00, 0x0a, 0x00, 0x1d,
        0x00, 0x17, 0x00, 0x1e, 0x00, 0x19, 0x00, 0x18, 0x00, 0x23, 0x00, 0x00, 0x00, 0x16, 0x00,
        0x00, 0x00, 0x17, 0x00, 0x00, 0x00, 0x0d, 0x00, 0x2a, 0x00, 0x28, 0x04, 0x03, 0x05, 0x03,
        0x06, 0x03, 0x08, 0x07, 0x08, 0x08, 0x08, 0x09, 0x08, 0x0a, 0x08, 0x0b, 0x08, 0x04, 0x08,
        0x05, 0x08, 0x06, 0x04, 0x01, 0x05, 0x01, 0x06, 0x01, 0x03, 0x03, 0x03, 0x01, 0x03, 0x02,
        0x04, 0x02, 0x05, 0x02, 0x06, 0x02,
};
static const uint8_t tls13_nosni[517] = {
        0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03, 0x61, 0xcc, 0x77, 0xc0,
        0x59, 0x31, 0x84, 0xbe, 0x41, 0x7b, 0x28, 0xe7, 0x4c, 0xa9, 0x5e, 0x5c, 0x76, 0xc2, 0x48,
        0xb5, 0xd0, 0xbd, 0x53, 0x2a, 0x19, 0x79, 0x93, 0xbb, 0xad, 0x08, 0x22, 0x2f, 0x20, 0xd7,
        0x85, 0xbf, 0x06, 0x5a, 0x75, 0x7a, 0x73, 0x50, 0x04, 0x01, 0xf1, 0xe4, 0xc5, 0x11, 0xfe,
        0xba, 0x09, 0xfd, 0x92, 0x9d, 0x25, 0xf3, 0xa5, 0xdd, 0x73, 0x22, 0xbd, 0x97, 0xac, 0x24,
        0x4b, 0x00, 0x24, 0x13, 0x02, 0x13, 0x03, 0x13, 0x01, 0xc0, 0x2c, 0xc0, 0x30, 0xc0, 0x2b,
        0xc0, 0x2f, 0xcc, 0xa9, 0xcc, 0xa8, 0xc0, 0x24, 0xc0, 0x28, 0xc0, 0x23, 0xc0, 0x27, 0x00,
        0x9f, 0x00, 0x9e, 0x00, 0x6b, 0x00, 0x67, 0x00, 0xff, 0x01, 0x00, 0x01, 0x8f, 0x00, 0x0b,
        0x00, 0x04, 0x03, 0x00, 0x01, 0x02, 0x00, 0x0a, 0x00, 0x16, 0x00, 0x14, 0x00, 0x1d, 0x00,
        0x17, 0x00, 0x1e, 0x00, 0x19, 0x00, 0x18, 0x01, 0x00, 0x01, 0x01, 0x01, 0x02, 0x01, 0x03,
        0x01, 0x04, 0x00, 0x23, 0x00, 0x00, 0x00, 0x16, 0x00, 0x00, 0x00, 0x17, 0x00, 0x00, 0x00,
        0x0d, 0x00, 0x2a, 0x00, 0x28, 0x04, 0x03, 0x05, 0x03, 0x06, 0x03, 0x08, 0x07, 0x08, 0x08,
        0x08, 0x09, 0x08, 0x0a, 0x08, 0x0b, 0x08, 0x04, 0x08, 0x05, 0x08, 0x06, 0x04, 0x01, 0x05,
        0x01, 0x06, 0x01, 0x03, 0x03, 0x03, 0x01, 0x03, 0x02, 0x04, 0x02, 0x05, 0x02, 0x06, 0x02,
        0x00, 0x2b, 0x00, 0x05, 0x04, 0x03, 0x04, 0x03, 0x03, 0x00, 0x2d, 0x00, 0x02, 0x01, 0x01,
        0x00, 0x33, 0x00, 0x26, 0x00, 0x24, 0x00, 0x1d, 0x00, 0x20, 0x1b, 0x64, 0x37, 0x9c, 0xed,
        0xfc, 0x38, 0x14, 0x30, 0x2b, 0xed, 0x83, 0xc1, 0x0a, 0x5e, 0x9e, 0xee, 0xaf, 0x72, 0xdc,
        0x17, 0x84, 0x75, 0x18, 0xc3, 0x0b, 0x04, 0x4a, 0x91, 0xcf, 0x1c, 0x0f, 0x00, 0x15, 0x00,
        0xf6, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
};
static const uint8_t tls12_nosni[162] = {
        0x16, 0x03, 0x01, 0x00, 0x9d, 0x01, 0x00, 0x00, 0x99, 0x03, 0x03, 0x62, 0x0e, 0xb3, 0x5b,
        0x98, 0xe5, 0xe7, 0x3e, 0x57, 0x75, 0x74, 0xd4, 0x1d, 0x98, 0xbf, 0x3e, 0x60, 0xa6, 0xfb,
        0x12, 0x74, 0x50, 0xe3, 0x42, 0x63, 0x08, 0xa7, 0x5a, 0x5c, 0xa8, 0x64, 0x7d, 0x00, 0x00,
        0x1e, 0xc0, 0x2c, 0xc0, 0x30, 0xc0, 0x2b, 0xc0, 0x2f, 0xcc, 0xa9, 0xcc, 0xa8, 0xc0, 0x24,
        0xc0, 0x28, 0xc0, 0x23, 0xc0, 0x27, 0x00, 0x9f, 0x00, 0x9e, 0x00, 0x6b, 0x00, 0x67, 0x00,
        0xff, 0x01, 0x00, 0x00, 0x52, 0x00, 0x0b, 0x00, 0x04, 0x03, 0x00, 0x01, 0x02, 0x00, 0x0a,
        0x00, 0x0c, 0x00, 0x0a, 0x00, 0x1d, 0x00, 0x17, 0x00, 0x1e, 0x00, 0x19, 0x00, 0x18, 0x00,
        0x23, 0x00, 0x00, 0x00, 0x16, 0x00, 0x00, 0x00, 0x17, 0x00, 0x00, 0x00, 0x0d, 0x00, 0x2a,
        0x00, 0x28, 0x04, 0x03, 0x05, 0x03, 0x06, 0x03, 0x08, 0x07, 0x08, 0x08, 0x08, 0x09, 0x08,
        0x0a, 0x08, 0x0b, 0x08, 0x04, 0x08, 0x05, 0x08, 0x06, 0x04, 0x01, 0x05, 0x01, 0x06, 0x01,
        0x03, 0x03, 0x03, 0x01, 0x03, 0x02, 0x04, 0x02, 0x05, 0x02, 0x06, 0x02,
};

/* ---- helpers --------------------------------------------------------------- */

struct result {
	int rc;
	char name[CAP + 46]; /* room to see a write past cap */
};

/* tls_hello_sni on a heap copy of exactly len bytes (len 0: a pointer to
 * the end of a 1-byte block, so that even reading p[0] is caught), into a
 * name buffer of cap bytes (0: NULL) filled with 'x' beforehand. */
static struct result sni_cap(const uint8_t *p, size_t len, size_t cap)
{
	struct result r;
	uint8_t *b = malloc(len ? len : 1);
	CHECK(b && cap <= sizeof(r.name), "out of memory, or cap %zu", cap);
	if (len)
		memcpy(b, p, len);
	memset(r.name, 'x', sizeof(r.name));
	r.rc = tls_hello_sni(len ? b : b + 1, len, cap ? r.name : NULL, cap);
	free(b);
	for (size_t i = cap; i < sizeof(r.name); i++)
		CHECK(r.name[i] == 'x', "written past cap %zu, at %zu", cap, i);
	return r;
}

static struct result sni(const uint8_t *p, size_t len) { return sni_cap(p, len, CAP); }

/*
 * p[0..len), and each prefix of it: MORE for every prefix shorter than
 * decided, then rc for every longer one (on SNI with the name want, else
 * with name ""). Above 2 KiB, the prefixes around decided and a sample of
 * the others.
 */
static void expect(const char *what, const uint8_t *p, size_t len, size_t decided, int rc,
                   const char *want)
{
	ck_assert_msg(decided <= len, "%s: decided at %zu of %zu", what, decided, len);
	for (size_t k = 0; k <= len; k++) {
		bool near = k + 2 >= decided && k <= decided + 2;
		if (len > 2048 && k > 100 && !near && k != len && k % 37)
			continue;
		struct result r = sni(p, k);
		int wrc = k < decided ? TLS_HELLO_MORE : rc;
		const char *wname = wrc == TLS_HELLO_SNI ? want : "";
		CHECK(r.rc == wrc, "%s: first %zu of %zu bytes: rc %d, wanted %d", what, k, len,
		      r.rc, wrc);
		CHECK(strcmp(r.name, wname) == 0, "%s: first %zu bytes: name '%.*s'", what, k, CAP,
		      r.name);
	}
}

/* A growing byte string (a few records' worth). */
struct bytes {
	uint8_t p[3 * TLS_HELLO_MAX];
	size_t len;
};

static void put(struct bytes *b, const void *p, size_t n)
{
	CHECK(n <= sizeof(b->p) - b->len, "%zu bytes more than room for", n);
	if (n)
		memcpy(b->p + b->len, p, n);
	b->len += n;
}

/* v as n big-endian bytes. */
static void put_be(struct bytes *b, size_t v, size_t n)
{
	for (size_t i = n; i-- > 0;) {
		uint8_t c = (uint8_t)(v >> (8 * i));
		put(b, &c, 1);
	}
}

static void fill(struct bytes *b, uint8_t c, size_t n)
{
	CHECK(n <= sizeof(b->p) - b->len, "%zu bytes more than room for", n);
	memset(b->p + b->len, c, n);
	b->len += n;
}

/* hs[0..len) as handshake records of at most frag bytes each. */
static void records(struct bytes *out, const uint8_t *hs, size_t len, size_t frag)
{
	for (size_t i = 0; i < len; i += frag) {
		size_t n = len - i < frag ? len - i : frag;
		put_be(out, 0x16, 1);
		put_be(out, 0x0301, 2);
		put_be(out, n, 2);
		put(out, hs + i, n);
	}
}

/* An extension: type, length, data. */
static void ext(struct bytes *b, unsigned type, const void *data, size_t n)
{
	put_be(b, type, 2);
	put_be(b, n, 2);
	put(b, data, n);
}

/* A server_name extension naming name[0..n) as a host_name. */
static void sni_ext(struct bytes *b, const void *name, size_t n)
{
	put_be(b, 0, 2);
	put_be(b, n + 5, 2);
	put_be(b, n + 3, 2);
	put_be(b, 0, 1);
	put_be(b, n, 2);
	put(b, name, n);
}

/* The fields of a built ClientHello; the lengths say how many bytes. */
struct hello {
	unsigned version;   /* legacy_version */
	size_t session_id;  /* legacy_session_id */
	size_t suites;      /* cipher_suites */
	size_t compression; /* legacy_compression_methods */
	bool no_extensions; /* no extensions block at all */
	const struct bytes *exts;
};

/* Where a built hello's parts are in its single record: the default one's
 * extensions block length at 84, its first extension at 86; in a first
 * server_name extension the list at 90, the host_name's type at 92, its
 * length at 93 and its bytes from 95 on. */
#define AT_EXTS 84
#define AT_EXT 86
#define AT_NAME 95

static const struct hello usual = {0x0303, 32, 4, 1, false, NULL};

/* The handshake message (header and body) h describes. */
static void hello_msg(struct bytes *out, const struct hello *h)
{
	static struct bytes body;
	body.len = 0;
	put_be(&body, h->version, 2);
	fill(&body, 0xaa, 32); /* random */
	put_be(&body, h->session_id, 1);
	fill(&body, 0x5e, h->session_id);
	put_be(&body, h->suites, 2);
	fill(&body, 0x13, h->suites);
	put_be(&body, h->compression, 1);
	fill(&body, 0, h->compression);
	if (!h->no_extensions) {
		size_t n = h->exts ? h->exts->len : 0;
		put_be(&body, n, 2);
		put(&body, h->exts ? h->exts->p : NULL, n);
	}
	put_be(out, 1, 1);
	put_be(out, body.len, 3);
	put(out, body.p, body.len);
}

/* h in one record (or several when over 2^14). */
static void hello_records(struct bytes *out, const struct hello *h)
{
	static struct bytes msg;
	msg.len = 0;
	hello_msg(&msg, h);
	records(out, msg.p, msg.len, 16384);
}

/* The usual hello with these extensions: a server_name extension first
 * (when name is not NULL), then supported_versions. */
static void hello_named(struct bytes *out, const void *name, size_t n)
{
	static struct bytes exts;
	struct hello h = usual;
	exts.len = 0;
	if (name)
		sni_ext(&exts, name, n);
	ext(&exts, 43, "\x02\x03\x04", 3);
	h.exts = &exts;
	hello_records(out, &h);
}

/* ---- captured hellos, whole, by prefixes, and in other records ------------ */

struct captured {
	const char *what;
	const uint8_t *p;
	size_t len;
	int rc;
	const char *name;
};

static const struct captured captures[] = {
        {"TLS 1.3 with SNI", tls13_sni, sizeof(tls13_sni), TLS_HELLO_SNI, "www.example.com"},
        {"TLS 1.2 with SNI", tls12_sni, sizeof(tls12_sni), TLS_HELLO_SNI, "api.example.org"},
        {"TLS 1.3 without SNI", tls13_nosni, sizeof(tls13_nosni), TLS_HELLO_NO_SNI, ""},
        {"TLS 1.2 without SNI", tls12_nosni, sizeof(tls12_nosni), TLS_HELLO_NO_SNI, ""},
};

/* Every prefix needs more, the whole decides; what follows the hello
 * (early data, a second hello, garbage, more than TLS_HELLO_MAX bytes) is
 * not looked at. */
START_TEST(test_captured)
{
	const struct captured *c = &captures[_i];
	expect(c->what, c->p, c->len, c->len, c->rc, c->name);
	static const struct {
		const uint8_t *p;
		size_t len;
	} tails[] = {
	        {B("\x17\x03\x03\x00\x03"
	           "abc")}, /* application data */
	        {B("\x15\x03\x03\x00\x02\x02\x28")},
	        {B("GET / HTTP/1.1\r\n\r\n")},
	        {B("\x16\x03\x01\x00\x00")},
	        {tls12_sni, sizeof(tls12_sni)},
	};
	static struct bytes b;
	for (size_t i = 0; i <= COUNT(tails); i++) {
		b.len = 0;
		put(&b, c->p, c->len);
		if (i < COUNT(tails))
			put(&b, tails[i].p, tails[i].len);
		else
			fill(&b, 0xff, 2 * TLS_HELLO_MAX);
		struct result r = sni(b.p, b.len);
		CHECK(r.rc == c->rc && strcmp(r.name, c->name) == 0,
		      "%s + tail %zu: rc %d, name '%s'", c->what, i, r.rc, r.name);
	}
}
END_TEST

/* The handshake message in two records, split at every byte. */
START_TEST(test_captured_two_records)
{
	const struct captured *c = &captures[_i];
	const uint8_t *hs = c->p + 5;
	size_t n = c->len - 5;
	static struct bytes b;
	for (size_t at = 1; at < n; at++) {
		b.len = 0;
		records(&b, hs, at, at);
		records(&b, hs + at, n - at, n);
		struct result r = sni(b.p, b.len);
		CHECK(r.rc == c->rc && strcmp(r.name, c->name) == 0,
		      "%s split at %zu: rc %d, name '%s'", c->what, at, r.rc, r.name);
		if (at == 3 || at == n / 2 || at == n - 1)
			expect(c->what, b.p, b.len, b.len, c->rc, c->name);
	}
}
END_TEST

/* In records of 1 (six bytes for each of the hello's), 2, 3, 7, 100 bytes. */
START_TEST(test_captured_fragments)
{
	const struct captured *c = &captures[_i];
	static const size_t frags[] = {1, 2, 3, 7, 100};
	static struct bytes b;
	for (size_t i = 0; i < COUNT(frags); i++) {
		b.len = 0;
		records(&b, c->p + 5, c->len - 5, frags[i]);
		char what[80];
		snprintf(what, sizeof(what), "%s in %zu-byte records", c->what, frags[i]);
		expect(what, b.p, b.len, b.len, c->rc, c->name);
	}
}
END_TEST

/* Record versions SSL 3.0, TLS 1.0 and TLS 1.2 all begin ClientHellos
 * (RFC 8446 5.1 allows 0x0301 and 0x0303; some clients still send 0x0300). */
START_TEST(test_record_versions)
{
	uint8_t p[sizeof(tls12_sni)];
	for (unsigned minor = 0; minor <= 4; minor++) {
		memcpy(p, tls12_sni, sizeof(p));
		p[2] = (uint8_t)minor;
		struct result r = sni(p, sizeof(p));
		ck_assert_msg(r.rc == TLS_HELLO_SNI && strcmp(r.name, "api.example.org") == 0,
		              "record version 3.%u: rc %d", minor, r.rc);
	}
}
END_TEST

/* ---- refused at the first byte that shows it -------------------------------- */

/* A built hello naming example.com, in one record or in two (the first
 * holding 50 handshake bytes: the second record's header at 55), with
 * bytes replaced at one place. */
struct refusal {
	const char *what;
	bool two_records;
	size_t at;
	const char *bytes; /* what goes there */
	size_t n;
	size_t decided; /* the shortest prefix refused */
};

#define R(what, two, at, s, decided)                                                               \
	{                                                                                          \
		what, two, at, s, sizeof(s) - 1, decided                                           \
	}
#define ONE false
#define TWO true

static const struct refusal refusals[] = {
        R("HTTP", ONE, 0, "GET / ", 1),
        R("content type alert", ONE, 0, "\x15", 1),
        R("content type application data", ONE, 0, "\x17", 1),
        R("SSLv2 hello", ONE, 0, "\x80\x2e\x01", 1),
        R("record version 2.0", ONE, 1, "\x02", 2),
        R("record version 4.1", ONE, 1, "\x04", 2),
        R("record length 0", ONE, 3, "\x00\x00", 5),
        R("record length 2^14 + 1", ONE, 3, "\x40\x01", 5),
        R("record length 65535", ONE, 3, "\xff\xff", 5),
        R("ServerHello", ONE, 5, "\x02", 6),
        R("handshake type 0", ONE, 5, "\x00", 6),
        R("hello of 40 bytes", ONE, 6, "\x00\x00\x28", 9),
        R("hello of 0 bytes", ONE, 6, "\x00\x00\x00", 9),
        /* 4 + 16376 bytes and the 5-byte record header: one past the limit */
        R("hello past TLS_HELLO_MAX", ONE, 6, "\x00\x3f\xf8", 9),
        R("hello of 2^24 - 1 bytes", ONE, 6, "\xff\xff\xff", 9),
        R("legacy_version 2.0", ONE, 9, "\x02", 10),
        R("legacy_version 0.0", ONE, 9, "\x00\x00", 10),
        R("session id of 33 bytes", ONE, 43, "\x21", 44),
        R("session id of 255 bytes", ONE, 43, "\xff", 44),
        R("cipher suites: 3 bytes", ONE, 76, "\x00\x03", 78),
        R("cipher suites: none", ONE, 76, "\x00\x00", 78),
        R("cipher suites past the hello", ONE, 76, "\x7f\xfe", 78),
        R("compression methods: none", ONE, 82, "\x00", 83),
        R("compression methods past the hello", ONE, 82, "\xf0", 83),
        R("extensions past the hello", ONE, AT_EXTS, "\x00\x1c", 86),
        R("a byte after the extensions", ONE, AT_EXTS, "\x00\x1a", 86),
        R("an extension past the block", ONE, AT_EXT + 2, "\x00\x18", 90),
        R("server_name empty", ONE, AT_EXT + 2, "\x00\x00", 90),
        R("server_name list empty", ONE, 90, "\x00\x00", 92),
        R("server_name list past the extension", ONE, 90, "\x00\x0f", 92),
        R("a byte after the server_name list", ONE, 90, "\x00\x0d", 92),
        R("host_name empty", ONE, 93, "\x00\x00", 95),
        R("host_name past the list", ONE, 93, "\x00\x0c", 95),
        R("host_name of 254 bytes", ONE, 93, "\x00\xfe", 95),
        R("name: a leading dot", ONE, AT_NAME, ".", AT_NAME + 1),
        R("name: an underscore", ONE, AT_NAME + 3, "_", AT_NAME + 4),
        R("name: a NUL", ONE, AT_NAME + 3, "\0", AT_NAME + 4),
        R("name: a space", ONE, AT_NAME + 3, " ", AT_NAME + 4),
        R("name: UTF-8", ONE, AT_NAME + 3, "\xc3\xa9", AT_NAME + 4),
        R("name: two dots", ONE, AT_NAME + 8, ".", AT_NAME + 9),
        R("name: a trailing dot", ONE, AT_NAME + 10, ".", AT_NAME + 11),
        /* The second record must go on with the hello. */
        R("an alert between the fragments", TWO, 55, "\x15", 56),
        R("application data between the fragments", TWO, 55, "\x17", 56),
        R("a ChangeCipherSpec between the fragments", TWO, 55, "\x14", 56),
        R("a second record's version 2.0", TWO, 56, "\x02", 57),
        R("a second record's length 0", TWO, 58, "\x00\x00", 60),
        R("a second record's length 2^14 + 1", TWO, 58, "\x40\x01", 60),
};

START_TEST(test_refused)
{
	const struct refusal *t = &refusals[_i];
	static struct bytes one, b;
	one.len = b.len = 0;
	hello_named(&one, "example.com", 11);
	ck_assert_uint_eq(one.len, AT_NAME + 11 + 7); /* the layout AT_* expects */
	if (t->two_records) {
		records(&b, one.p + 5, 50, 50);
		records(&b, one.p + 55, one.len - 55, 16384);
	} else {
		put(&b, one.p, one.len);
	}
	ck_assert_uint_le(t->at + t->n, b.len);
	memcpy(b.p + t->at, t->bytes, t->n);
	expect(t->what, b.p, b.len, t->decided, TLS_HELLO_BAD, "");
}
END_TEST

/* Any first byte but 22 (handshake) is refused alone. */
START_TEST(test_first_byte)
{
	for (unsigned c = 0; c < 256; c++) {
		uint8_t p = (uint8_t)c;
		struct result r = sni(&p, 1);
		ck_assert_msg(r.rc == (c == 22 ? TLS_HELLO_MORE : TLS_HELLO_BAD), "0x%02x: rc %d",
		              c, r.rc);
	}
}
END_TEST

/* Another protocol's first bytes, each refused at its first byte. */
START_TEST(test_other_protocols)
{
	static const struct {
		const uint8_t *p;
		size_t len;
	} v[] = {
	        {B("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")},
	        {B("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")},
	        {B("SSH-2.0-OpenSSH_9.6\r\n")},
	        {B("PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n")},
	        {B("\r\n\r\n\0\r\nQUIT\n")},
	        {B("\0\0\0\0\0\0\0\0")},
	        {B("\xff\xff\xff\xff")},
	};
	for (size_t i = 0; i < COUNT(v); i++)
		expect("another protocol", v[i].p, v[i].len, 1, TLS_HELLO_BAD, "");
}
END_TEST

/* ---- names ------------------------------------------------------------------- */

struct name_case {
	const char *name;
	size_t n;
	const char *want; /* lower-cased; NULL: refused */
	size_t bad_at;    /* refused with this many of its bytes in (0: by its length) */
};

#define L63 "abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0"
#define L61 "abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxy"
#define N(s, want, bad_at)                                                                         \
	{                                                                                          \
		s, sizeof(s) - 1, want, bad_at                                                     \
	}

static const struct name_case names[] = {
        N("example.com", "example.com", 0),
        N("a", "a", 0),
        N("0", "0", 0),
        N("localhost", "localhost", 0),
        N("EXAMPLE.COM", "example.com", 0),
        N("Mixed-Case.Example.ORG", "mixed-case.example.org", 0),
        N("xn--bcher-kva.example", "xn--bcher-kva.example", 0),
        N("123.example", "123.example", 0),
        /* An IP literal is a valid label sequence; the routes will not match it. */
        N("192.0.2.1", "192.0.2.1", 0),
        /* Letters, digits and hyphens, wherever the hyphens are. */
        N("-a-.b-", "-a-.b-", 0),
        N(L63 ".com", L63 ".com", 0),
        N(L63 "." L63 "." L63 "." L61, L63 "." L63 "." L63 "." L61, 0), /* 253 bytes */
        N("", NULL, 0),
        N(L63 "." L63 "." L63 "." L61 "a", NULL, 0), /* 254 bytes */
        N(L63 "a.com", NULL, 64),
        N(".example", NULL, 1),
        N("example.", NULL, 8),
        N(".", NULL, 1),
        N("a..b", NULL, 3),
        N("a_b", NULL, 2),
        N("a b", NULL, 2),
        N("a\0b", NULL, 2),
        N("b\xc3\xbc"
          "cher.example",
          NULL, 2),
        N("*.example.com", NULL, 1),
        N("a/b", NULL, 2),
        N("example.com:443", NULL, 12),
        N("example.com\n", NULL, 12),
        N("\x7f", NULL, 1),
};

START_TEST(test_name)
{
	const struct name_case *t = &names[_i];
	static struct bytes b;
	b.len = 0;
	hello_named(&b, t->name, t->n);
	if (t->want)
		expect(t->name, b.p, b.len, b.len, TLS_HELLO_SNI, t->want);
	else
		expect(t->name, b.p, b.len, AT_NAME + t->bad_at, TLS_HELLO_BAD, "");
}
END_TEST

/* ---- the hello's structure -------------------------------------------------- */

/* One entry of a ServerNameList. */
static void entry(struct bytes *list, unsigned type, const void *name, size_t n)
{
	put_be(list, type, 1);
	put_be(list, n, 2);
	put(list, name, n);
}

/* A server_name extension holding list. */
static void list_ext(struct bytes *exts, const struct bytes *list)
{
	put_be(exts, 0, 2);
	put_be(exts, list->len + 2, 2);
	put_be(exts, list->len, 2);
	put(exts, list->p, list->len);
}

/* The usual hello with exts, in one record, into b. */
static void hello_with(struct bytes *b, const struct bytes *exts)
{
	struct hello h = usual;
	h.exts = exts;
	b->len = 0;
	hello_records(b, &h);
}

/* A hello from before extensions (RFC 5246 7.4.1.2 allows one), and one
 * with an empty block: complete, without a name. */
START_TEST(test_no_extensions)
{
	static struct bytes b, none;
	struct hello h = usual;
	h.no_extensions = true;
	hello_records(&b, &h);
	expect("no extensions", b.p, b.len, b.len, TLS_HELLO_NO_SNI, "");
	none.len = 0;
	hello_with(&b, &none);
	expect("an empty extensions block", b.p, b.len, b.len, TLS_HELLO_NO_SNI, "");
}
END_TEST

/* The shortest and longest fields a hello may have. */
START_TEST(test_field_extremes)
{
	static struct bytes b, exts;
	exts.len = 0;
	sni_ext(&exts, "example.com", 11);
	struct hello shortest = {0x0300, 0, 2, 1, false, &exts};
	hello_records(&b, &shortest);
	expect("shortest fields", b.p, b.len, b.len, TLS_HELLO_SNI, "example.com");
	struct hello longest = {0x03ff, 32, 8000, 255, false, &exts};
	b.len = 0;
	hello_records(&b, &longest);
	expect("longest fields", b.p, b.len, b.len, TLS_HELLO_SNI, "example.com");
}
END_TEST

/* server_name last, after others; the others may repeat (not this
 * parser's to judge) and be empty. */
START_TEST(test_server_name_among_others)
{
	static struct bytes b, exts;
	exts.len = 0;
	ext(&exts, 43, "\x02\x03\x04", 3);
	ext(&exts, 23, NULL, 0);
	ext(&exts, 23, NULL, 0);
	ext(&exts, 0xfe0d, "\x00\x01\x02\x03", 4); /* an unknown type */
	sni_ext(&exts, "Last.Example", 12);
	hello_with(&b, &exts);
	expect("server_name last", b.p, b.len, b.len, TLS_HELLO_SNI, "last.example");
}
END_TEST

/* Two server_name extensions would be two names to route by: refused
 * when the second one's type is in, whatever lies between them. */
START_TEST(test_server_name_twice)
{
	static struct bytes b, exts;
	exts.len = 0;
	sni_ext(&exts, "a.example", 9);
	sni_ext(&exts, "a.example", 9);
	hello_with(&b, &exts);
	expect("server_name twice", b.p, b.len, AT_EXT + 18 + 2, TLS_HELLO_BAD, "");
	exts.len = 0;
	sni_ext(&exts, "a.example", 9);
	ext(&exts, 43, "\x02\x03\x04", 3);
	sni_ext(&exts, "b.example", 9);
	hello_with(&b, &exts);
	expect("server_name twice, apart", b.p, b.len, AT_EXT + 18 + 7 + 2, TLS_HELLO_BAD, "");
}
END_TEST

/* RFC 6066 3: "MUST NOT contain more than one name of the same
 * name_type": refused at the second host_name's type. */
START_TEST(test_host_name_twice)
{
	static struct bytes b, list, exts;
	list.len = exts.len = 0;
	entry(&list, 0, "a.example", 9);
	entry(&list, 0, "b.example", 9);
	list_ext(&exts, &list);
	hello_with(&b, &exts);
	expect("host_name twice", b.p, b.len, AT_NAME + 9 + 1, TLS_HELLO_BAD, "");
}
END_TEST

/* Entries of other name types (none is defined) are stepped over: a list
 * with no host_name is no name. */
START_TEST(test_other_name_types)
{
	static struct bytes b, list, exts;
	list.len = exts.len = 0;
	entry(&list, 1, "x", 1);
	list_ext(&exts, &list);
	hello_with(&b, &exts);
	expect("only name type 1", b.p, b.len, b.len, TLS_HELLO_NO_SNI, "");

	list.len = exts.len = 0;
	entry(&list, 1, NULL, 0);
	entry(&list, 0, "Example.com", 11);
	entry(&list, 255, "zz", 2);
	list_ext(&exts, &list);
	hello_with(&b, &exts);
	expect("host_name among others", b.p, b.len, b.len, TLS_HELLO_SNI, "example.com");

	list.len = exts.len = 0;
	entry(&list, 1, "x", 1);
	list.p[2] = 2; /* its length past the list */
	list_ext(&exts, &list);
	hello_with(&b, &exts);
	expect("name type 1 past the list", b.p, b.len, AT_NAME, TLS_HELLO_BAD, "");
}
END_TEST

/* Bytes after the hello in its own record: decided at the hello's end,
 * the rest not looked at. */
START_TEST(test_bytes_after_in_record)
{
	static struct bytes b, msg;
	msg.len = 0;
	hello_msg(&msg, &usual);
	size_t end = 5 + msg.len;
	fill(&msg, 0xee, 20);
	records(&b, msg.p, msg.len, 16384);
	expect("20 bytes after the hello", b.p, b.len, end, TLS_HELLO_NO_SNI, "");
}
END_TEST

/* ---- limits ------------------------------------------------------------------ */

/* A hello padded (extension 21) to hs bytes of handshake message, naming
 * example.com, in records of first bytes and then the rest. */
static void padded(struct bytes *b, size_t hs, size_t first)
{
	static struct bytes exts, msg;
	exts.len = msg.len = 0;
	sni_ext(&exts, "example.com", 11);
	struct hello h = usual;
	h.exts = &exts;
	hello_msg(&msg, &h);
	ck_assert_uint_ge(hs, msg.len + 4);
	size_t pad = hs - msg.len - 4;
	static struct bytes zeros;
	zeros.len = 0;
	fill(&zeros, 0, pad);
	ext(&exts, 21, zeros.p, pad);
	msg.len = 0;
	hello_msg(&msg, &h);
	ck_assert_uint_eq(msg.len, hs);
	b->len = 0;
	records(b, msg.p, first, first);
	records(b, msg.p + first, hs - first, 16384);
}

/* A hello that ends exactly at TLS_HELLO_MAX, in one record or two, is
 * read; one byte longer is refused as soon as its length is in (byte 9),
 * before any of the rest is sent. */
START_TEST(test_max)
{
	static struct bytes b;
	padded(&b, TLS_HELLO_MAX - 5, 100);
	ck_assert_uint_eq(b.len, TLS_HELLO_MAX + 5); /* split after 100 bytes: two headers */
	padded(&b, TLS_HELLO_MAX - 10, 100);
	ck_assert_uint_eq(b.len, TLS_HELLO_MAX);
	expect("TLS_HELLO_MAX in two records", b.p, b.len, b.len, TLS_HELLO_SNI, "example.com");
	padded(&b, TLS_HELLO_MAX - 9, 100);
	expect("one past TLS_HELLO_MAX in two records", b.p, b.len, 9, TLS_HELLO_BAD, "");
	padded(&b, TLS_HELLO_MAX - 5, TLS_HELLO_MAX - 5);
	ck_assert_uint_eq(b.len, TLS_HELLO_MAX);
	expect("TLS_HELLO_MAX in one record", b.p, b.len, b.len, TLS_HELLO_SNI, "example.com");
	padded(&b, TLS_HELLO_MAX - 4, TLS_HELLO_MAX - 4);
	expect("one past TLS_HELLO_MAX in one record", b.p, b.len, 9, TLS_HELLO_BAD, "");
}
END_TEST

/* Records of a byte each make a 3000-byte hello 18000 bytes long: refused
 * by the time TLS_HELLO_MAX bytes are in, never left waiting. */
START_TEST(test_max_small_records)
{
	static struct bytes b, msg;
	padded(&msg, 3000, 3000);
	b.len = 0;
	records(&b, msg.p + 5, msg.len - 5, 1);
	ck_assert_uint_eq(b.len, 18000);
	ck_assert_int_eq(sni(b.p, 15000).rc, TLS_HELLO_MORE);
	ck_assert_int_eq(sni(b.p, TLS_HELLO_MAX).rc, TLS_HELLO_BAD);
	ck_assert_int_eq(sni(b.p, b.len).rc, TLS_HELLO_BAD);
	/* The same in records of 8 bytes (13 per 8) fits: 3000 / 8 * 13 = 4875. */
	b.len = 0;
	records(&b, msg.p + 5, msg.len - 5, 8);
	expect("in 8-byte records", b.p, b.len, b.len, TLS_HELLO_SNI, "example.com");
}
END_TEST

/* ---- the caller's buffer, and the rest of the API ----------------------------- */

/* cap must hold the name and its NUL; a name that does not fit is refused
 * as soon as its length is in; name is "" unless SNI. */
START_TEST(test_cap)
{
	struct result r = sni_cap(tls13_sni, sizeof(tls13_sni), 16);
	ck_assert_int_eq(r.rc, TLS_HELLO_SNI);
	ck_assert_str_eq(r.name, "www.example.com");
	static const size_t small[] = {15, 2, 1, 0};
	for (size_t i = 0; i < COUNT(small); i++) {
		r = sni_cap(tls13_sni, sizeof(tls13_sni), small[i]);
		ck_assert_msg(r.rc == TLS_HELLO_BAD, "cap %zu: rc %d", small[i], r.rc);
		if (small[i])
			ck_assert_str_eq(r.name, "");
	}
	r = sni_cap(tls13_nosni, sizeof(tls13_nosni), 0);
	ck_assert_int_eq(r.rc, TLS_HELLO_NO_SNI);
	r = sni_cap(tls13_nosni, sizeof(tls13_nosni), 1);
	ck_assert_int_eq(r.rc, TLS_HELLO_NO_SNI);
	ck_assert_str_eq(r.name, "");

	/* 254 bytes are too many for a name, however large the buffer. */
	static struct bytes b;
	hello_named(&b, L63 "." L63 "." L63 "." L61 "a", 254);
	ck_assert_int_eq(sni_cap(b.p, AT_NAME - 1, CAP + 46).rc, TLS_HELLO_MORE);
	ck_assert_int_eq(sni_cap(b.p, AT_NAME, CAP + 46).rc, TLS_HELLO_BAD);

	b.len = 0;
	hello_named(&b, "example.com", 11);
	ck_assert_int_eq(sni_cap(b.p, AT_NAME - 1, 11).rc, TLS_HELLO_MORE);
	ck_assert_int_eq(sni_cap(b.p, AT_NAME, 11).rc, TLS_HELLO_BAD);
	ck_assert_int_eq(sni_cap(b.p, b.len, 12).rc, TLS_HELLO_SNI);
}
END_TEST

START_TEST(test_empty)
{
	char name[4] = "xyz";
	ck_assert_int_eq(tls_hello_sni(NULL, 0, NULL, 0), TLS_HELLO_MORE);
	ck_assert_int_eq(tls_hello_sni(NULL, 0, name, sizeof(name)), TLS_HELLO_MORE);
	ck_assert_str_eq(name, "");
}
END_TEST

/* RFC 8446 6 and 6.2: alert(21), 0x0301, length 2, fatal(2), unrecognized_name(112). */
START_TEST(test_alert)
{
	static const uint8_t want[] = {21, 3, 1, 0, 2, 2, 112};
	ck_assert_uint_eq(sizeof(tls_alert_unrecognized_name), 7);
	ck_assert_mem_eq(tls_alert_unrecognized_name, want, sizeof(want));
}
END_TEST

/* ---- suite ------------------------------------------------------------------- */

static Suite *client_hello_suite(void)
{
	Suite *s = suite_create("client_hello");
	TCase *tc;

	tc = tcase_create("captured");
	tcase_add_loop_test(tc, test_captured, 0, (int)COUNT(captures));
	tcase_add_loop_test(tc, test_captured_two_records, 0, (int)COUNT(captures));
	tcase_add_loop_test(tc, test_captured_fragments, 0, (int)COUNT(captures));
	tcase_add_test(tc, test_record_versions);
	suite_add_tcase(s, tc);

	tc = tcase_create("refused");
	tcase_add_loop_test(tc, test_refused, 0, (int)COUNT(refusals));
	tcase_add_test(tc, test_first_byte);
	tcase_add_test(tc, test_other_protocols);
	suite_add_tcase(s, tc);

	tc = tcase_create("names");
	tcase_add_loop_test(tc, test_name, 0, (int)COUNT(names));
	suite_add_tcase(s, tc);

	tc = tcase_create("structure");
	tcase_add_test(tc, test_no_extensions);
	tcase_add_test(tc, test_field_extremes);
	tcase_add_test(tc, test_server_name_among_others);
	tcase_add_test(tc, test_server_name_twice);
	tcase_add_test(tc, test_host_name_twice);
	tcase_add_test(tc, test_other_name_types);
	tcase_add_test(tc, test_bytes_after_in_record);
	suite_add_tcase(s, tc);

	tc = tcase_create("limits");
	tcase_add_test(tc, test_max);
	tcase_add_test(tc, test_max_small_records);
	tcase_add_test(tc, test_cap);
	tcase_add_test(tc, test_empty);
	tcase_add_test(tc, test_alert);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(client_hello_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
