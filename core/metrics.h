/*
 * The Prometheus text exposition format (0.0.4), written into a buffer:
 * what GET /metrics of the admin endpoint answers. A family is its HELP
 * and TYPE lines followed by all of its samples.
 */
#ifndef MGROK_METRICS_H
#define MGROK_METRICS_H

#include <stdint.h>

#include "buf.h"
#include "context.h"

/* type: "counter" or "gauge". help is plain text (a backslash or newline
 * in it is escaped). */
void mgrok_metrics_family(struct mgrok_buf *out, const char *name, const char *type,
                          const char *help);
/* One sample; after value come label name and value pairs, then NULL:
 * mgrok_metrics_u64(out, "mgrok_streams", n, "proxy", px->name, NULL).
 * Label values are escaped (backslash, double quote, newline). */
void mgrok_metrics_u64(struct mgrok_buf *out, const char *name, uint64_t value, ...);
void mgrok_metrics_double(struct mgrok_buf *out, const char *name, double value, ...);

/* in as UTF-8 into out (NUL-terminated, cut to outlen): a byte that does
 * not belong to a valid UTF-8 sequence becomes '?'. Names a peer chose
 * (clientId, an auth plugin's identity) may be any bytes; JSON and
 * Prometheus take only UTF-8. Returns out. */
char *mgrok_text_utf8(const char *in, char *out, size_t outlen);

/* Families both programs have: mgrok_build_info, the per-proxy counters
 * of ctx->traffic, and the standard process_* ones. role: "server" or
 * "client". */
void mgrok_metrics_common(struct mgrok_buf *out, const struct mgrok_ctx *ctx, const char *role);

#endif
