/*
 * The server_name (SNI, RFC 6066 3) of a TLS ClientHello, read from the
 * bytes a client sent first, for the TLS-passthrough plugin that routes a
 * connection by name without decrypting it. Pure: no I/O, no allocation, no
 * state between calls; the caller keeps the bytes and calls again with all
 * of them when more arrive.
 */
#ifndef MGROK_TLS_CLIENT_HELLO_H
#define MGROK_TLS_CLIENT_HELLO_H

#include <stddef.h>
#include <stdint.h>

#define TLS_HELLO_MAX 16384 /* bytes of records looked at, at most; more is TLS_HELLO_BAD */

enum tls_hello_result {
	TLS_HELLO_BAD = -1,   /* not a TLS ClientHello, malformed, or too long */
	TLS_HELLO_MORE = 0,   /* so far so good: need more bytes */
	TLS_HELLO_SNI = 1,    /* name holds the server_name (host_name type), lower-cased */
	TLS_HELLO_NO_SNI = 2, /* a complete ClientHello without a server_name extension */
};

/*
 * buf/len: all the bytes the client sent so far (from the first byte of the
 * connection). Returns a tls_hello_result:
 *
 * - MORE until the ClientHello (handshake type 1, in records of content
 *   type 22, possibly split over several records) is complete, then SNI or
 *   NO_SNI; bytes after the ClientHello are not looked at.
 * - BAD as soon as the bytes so far cannot begin a ClientHello: a record
 *   that is not a handshake record or whose length is 0 or over 2^14, a
 *   length that runs past its container, a second server_name extension
 *   or a second host_name in it, a name that is not 1-253 bytes of
 *   dot-separated labels of 1-63 letters, digits and hyphens (no trailing
 *   dot), a name that needs more than cap bytes with its NUL, or a
 *   ClientHello that would end past the first TLS_HELLO_MAX bytes.
 *
 * The outcome only ever goes from MORE to one of the others, and stays the
 * same for every longer buf. name receives a NUL-terminated string of at
 * most 253 characters on SNI, and "" on anything else (name may be NULL
 * when cap is 0). A server_name extension that holds no host_name entry
 * counts as none: NO_SNI.
 *
 * Uses about TLS_HELLO_MAX bytes of stack, to join the records' fragments.
 */
int tls_hello_sni(const uint8_t *buf, size_t len, char *name, size_t cap);

/* The 7 bytes of a fatal TLS alert unrecognized_name(112), record version
 * 0x0301: what to send a client whose name no route has, before closing. */
extern const uint8_t tls_alert_unrecognized_name[7];

#endif
