/*
 * The PROXY protocol, versions 1 and 2 (HAProxy's proxy-protocol.txt), as
 * a pure codec: a load balancer's header in front of a connection tells
 * who connected; mgrok reads it from trusted balancers and writes it for
 * local services that ask. No I/O: bytes in, an address out, and back.
 */
#ifndef MGROK_PROXYPROTO_H
#define MGROK_PROXYPROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define MGROK_PP_V1_MAX 107   /* the longest v1 line, CRLF included */
#define MGROK_PP_V2_HEADER 16 /* signature, version and command, family, length */
#define MGROK_PP_V2_MAX (MGROK_PP_V2_HEADER + 65535)
/* What an encoder writes at most: a v1 line (a v2 header with IPv6
 * addresses is 52 bytes). */
#define MGROK_PP_ENCODED_MAX MGROK_PP_V1_MAX

struct mgrok_pp {
	int version; /* 1 or 2 */
	/* false: no address (v1 UNKNOWN, v2 LOCAL or an unspecified family):
	 * the connection is the balancer's own, keep its address. */
	bool proxied;
	bool dgram; /* v2 only: the original was UDP */
	struct sockaddr_storage src, dst;
	socklen_t len; /* of src and dst */
};

/*
 * Parses a header at the start of p[0..len). Returns 1 with *used set when a
 * whole valid header is there, 0 when more bytes are needed (*used: at
 * least how many), -1 with a reason in err when it is no valid header
 * (already at the first byte that cannot belong to one). TLVs of v2 are
 * checked for their lengths and skipped; a v2 LOCAL header's block is
 * skipped unread, as the protocol asks.
 */
int mgrok_pp_parse(const uint8_t *p, size_t len, struct mgrok_pp *pp, size_t *used, char *err,
                   size_t errlen);

/*
 * A header (version 1 or 2) for a connection from src to dst. IPv4-mapped
 * IPv6 counts as IPv4; IPv4 beside IPv6 is written as IPv6, mapped; src or
 * dst NULL or of another family: v1 UNKNOWN / v2 LOCAL. dgram: v2 marks the
 * original as UDP. Returns the length written to out, or 0 if cap is too
 * small (MGROK_PP_ENCODED_MAX always suffices) or version is neither.
 */
size_t mgrok_pp_encode(int version, const struct sockaddr *src, const struct sockaddr *dst,
                       bool dgram, uint8_t *out, size_t cap);

#endif
