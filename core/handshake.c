/*
 * The GRT1 handshake (doc/protocol.md 2): the server and client state machines.
 * Bytes in, plugin ops called, replies appended to the caller's buffer.
 *
 * The caller keeps the bytes a feed did not take and feeds them again with
 * whatever arrives next, so a message split across reads costs nothing here
 * and nothing is buffered inside struct mgrok_hs.
 */
#include "handshake.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "codec.h"

#define MAGIC_LEN 4

/* Scratch for one call into the auth plugin. */
struct round {
	uint8_t out[MGROK_HS_PAYLOAD_MAX];
	char text[256];
	struct mgrok_auth_msg m;
};

static void round_init(struct round *r, const struct mgrok_bytes *in)
{
	r->text[0] = '\0';
	r->m = (struct mgrok_auth_msg){
	        .in = in ? in->p : NULL,
	        .in_len = in ? in->len : 0,
	        .out = r->out,
	        .out_cap = sizeof(r->out),
	        .out_len = 0,
	        .text = r->text,
	        .text_cap = sizeof(r->text),
	};
}

/* A plugin's answer after the call: text terminated, out_len within bounds. */
static bool round_sane(struct round *r)
{
	r->text[sizeof(r->text) - 1] = '\0';
	return r->m.out_len <= r->m.out_cap;
}

/*
 * Ends the handshake with a final result: the reason is kept, and the auth
 * state is released at once (per-handshake secrets should not outlive it).
 */
__attribute__((format(printf, 3, 4))) static int finish(struct mgrok_hs *hs, int result,
                                                        const char *fmt, ...)
{
	hs->finished = true;
	hs->reason[0] = '\0';
	if (fmt) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(hs->reason, sizeof(hs->reason), fmt, ap);
		va_end(ap);
	}
	mgrok_hs_end(hs);
	return result;
}

/* Peer text for logs: printable ASCII only, anything else becomes '?'. */
static void copy_printable(char *dst, size_t cap, const uint8_t *src, size_t len)
{
	size_t n = 0;
	for (size_t i = 0; i < len && n + 1 < cap; i++) {
		char c = '?';
		if (src[i] >= 0x20 && src[i] < 0x7f)
			c = (char)src[i];
		dst[n++] = c;
	}
	dst[n] = '\0';
}

/* "47 45 54" for the log line of a dropped connection; n <= MAGIC_LEN. */
static void hex_bytes(char dst[3 * MAGIC_LEN + 1], const uint8_t *p, size_t n)
{
	char *at = dst;
	*at = '\0';
	for (size_t i = 0; i < n; i++)
		at += snprintf(at, 4, "%s%02x", i ? " " : "", p[i]);
}

static const char *method_name(const struct mgrok_hs *hs)
{
	return hs->method && hs->method->name ? hs->method->name : "?";
}

void mgrok_hs_server_init(struct mgrok_hs *hs) { memset(hs, 0, sizeof(*hs)); }

/* Server: a reply that ends the handshake with DENIED (reply text = reason). */
static int server_deny(struct mgrok_hs *hs, struct mgrok_buf *out, uint8_t status, const char *text)
{
	mgrok_hs_encode_reply(out, status, text, strlen(text));
	return finish(hs, MGROK_HS_DENIED, "%s", text);
}

/*
 * Server: the auth method broke its contract. The client gets a generic
 * DENIED; the details are for the server's log only.
 */
static int server_plugin_fault(struct mgrok_hs *hs, struct mgrok_buf *out, const char *what)
{
	mgrok_hs_encode_reply(out, MGROK_HS_STATUS_DENIED, "server authentication error",
	                      strlen("server authentication error"));
	return finish(hs, MGROK_HS_DENIED, "auth method '%s' %s", method_name(hs), what);
}

/* Identity must be 1..64 bytes without control characters (it is logged). */
static bool identity_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > MGROK_IDENTITY_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return false;
	return true;
}

/* Server: one client message (hs->messages already counts it). */
static int server_round(struct mgrok_hs *hs, const struct mgrok_bytes *payload,
                        struct mgrok_buf *out)
{
	const struct mgrok_auth_method *m = hs->method;
	struct round r;

	round_init(&r, payload);
	hs->auth_started = true;
	int ar = m->ops->server_step(m->inst, &hs->auth_state, hs->messages - 1, &r.m);
	if (!round_sane(&r))
		return server_plugin_fault(hs, out, "overran its output buffer");

	switch (ar) {
	case MGROK_AUTH_OK:
		if (r.text[0] == '\0')
			snprintf(r.text, sizeof(r.text), "%s", method_name(hs));
		if (!identity_ok(r.text))
			return server_plugin_fault(hs, out, "returned an invalid identity");
		if (mgrok_hs_encode_reply(out, MGROK_HS_STATUS_OK, r.out, r.m.out_len) < 0)
			return server_plugin_fault(hs, out, "returned a final payload too long");
		memcpy(hs->identity, r.text, strlen(r.text) + 1); /* identity_ok: <= 64 */
		return finish(hs, MGROK_HS_DONE, NULL);
	case MGROK_AUTH_CONTINUE:
		if (hs->messages >= MGROK_HS_MAX_CLIENT_MESSAGES)
			return server_deny(hs, out, MGROK_HS_STATUS_DENIED,
			                   "too many handshake rounds");
		if (mgrok_hs_encode_reply(out, MGROK_HS_STATUS_CHALLENGE, r.out, r.m.out_len) < 0)
			return server_plugin_fault(hs, out, "returned a challenge too long");
		return MGROK_HS_MORE;
	case MGROK_AUTH_DENIED:
		return server_deny(hs, out, MGROK_HS_STATUS_DENIED,
		                   r.text[0] ? r.text : "authentication failed");
	default: return server_plugin_fault(hs, out, "returned an unknown result");
	}
}

/* Server: the first message picks the method (doc/protocol.md 2.1). */
static int server_first(struct mgrok_hs *hs, uint8_t method_id, const struct mgrok_bytes *payload,
                        struct mgrok_buf *out, mgrok_auth_find_fn find, void *find_arg)
{
	hs->method_id = method_id;
	hs->method = find ? find(find_arg, method_id) : NULL;
	if (!hs->method) {
		char text[64];
		snprintf(text, sizeof(text), "auth method 0x%02x not supported", method_id);
		return server_deny(hs, out, MGROK_HS_STATUS_UNSUPPORTED, text);
	}
	return server_round(hs, payload, out);
}

int mgrok_hs_server_feed(struct mgrok_hs *hs, const uint8_t *p, size_t len, size_t *used,
                         struct mgrok_buf *out, mgrok_auth_find_fn find, void *find_arg)
{
	*used = 0;
	if (hs->finished)
		return MGROK_HS_ERROR;

	/* The client waits for each reply, but a loop costs nothing and also
	 * takes an answer that arrived together with the previous message. */
	while (*used < len) {
		const uint8_t *q = p + *used;
		size_t n = len - *used, took = 0;
		struct mgrok_bytes payload = {0};
		uint8_t method_id = 0;
		char err[160] = "";
		int rc;

		if (hs->messages == 0) {
			/* Checked here, byte by byte, so that a scanner is dropped
			 * at its first wrong byte and never gets a reply. */
			size_t k = n < MAGIC_LEN ? n : MAGIC_LEN;
			if (memcmp(q, MGROK_MAGIC, k) != 0) {
				char hex[3 * MAGIC_LEN + 1];
				hex_bytes(hex, q, k);
				return finish(hs, MGROK_HS_DROP,
				              "bad magic (%s): not an mgrok client", hex);
			}
			rc = mgrok_hs_parse_first(q, n, &method_id, &payload, &took, err,
			                          sizeof(err));
		} else {
			rc = mgrok_hs_parse_answer(q, n, &payload, &took, err, sizeof(err));
		}
		if (rc == 0)
			return MGROK_HS_MORE;
		if (rc < 0)
			return finish(hs, MGROK_HS_ERROR, "bad handshake message: %s", err);

		*used += took;
		hs->messages++;
		rc = hs->messages == 1 ? server_first(hs, method_id, &payload, out, find, find_arg)
		                       : server_round(hs, &payload, out);
		if (rc != MGROK_HS_MORE)
			return rc;
	}
	return MGROK_HS_MORE;
}

int mgrok_hs_client_start(struct mgrok_hs *hs, const struct mgrok_auth_method *m,
                          struct mgrok_buf *out)
{
	struct round r;

	memset(hs, 0, sizeof(*hs));
	hs->method = m;
	hs->method_id = m->id;

	round_init(&r, NULL);
	hs->auth_started = true;
	int ar = m->ops->client_start(m->inst, &hs->auth_state, &r.m);
	if (!round_sane(&r))
		return finish(hs, MGROK_HS_ERROR, "auth method '%s' overran its output buffer",
		              method_name(hs));
	if (ar == MGROK_AUTH_DENIED)
		return finish(hs, MGROK_HS_ERROR, "%s",
		              r.text[0] ? r.text : "auth method refused to start");
	if (ar != MGROK_AUTH_CONTINUE)
		return finish(hs, MGROK_HS_ERROR, "auth method '%s' returned %d from client_start",
		              method_name(hs), ar);
	if (mgrok_hs_encode_first(out, m->id, r.out, r.m.out_len) < 0)
		return finish(hs, MGROK_HS_ERROR, "auth method '%s' first payload too long",
		              method_name(hs));
	hs->messages = 1;
	return MGROK_HS_MORE;
}

/* Client: the server's CHALLENGE (status 1) or OK (status 0) for the plugin. */
static int client_round(struct mgrok_hs *hs, uint8_t status, const struct mgrok_bytes *payload,
                        struct mgrok_buf *out)
{
	const struct mgrok_auth_method *m = hs->method;
	struct round r;

	if (status == MGROK_HS_STATUS_CHALLENGE && hs->messages >= MGROK_HS_MAX_CLIENT_MESSAGES)
		return finish(hs, MGROK_HS_ERROR, "too many handshake rounds");

	round_init(&r, payload);
	int ar = m->ops->client_step(m->inst, hs->auth_state, status, &r.m);
	if (!round_sane(&r))
		return finish(hs, MGROK_HS_ERROR, "auth method '%s' overran its output buffer",
		              method_name(hs));
	if (ar == MGROK_AUTH_DENIED)
		return finish(hs, MGROK_HS_ERROR, "%s",
		              r.text[0] ? r.text
		                        : (status == MGROK_HS_STATUS_OK
		                                   ? "server proof invalid"
		                                   : "server challenge refused"));

	if (status == MGROK_HS_STATUS_OK) {
		if (ar != MGROK_AUTH_OK)
			return finish(hs, MGROK_HS_ERROR, "auth method '%s' returned %d after OK",
			              method_name(hs), ar);
		return finish(hs, MGROK_HS_DONE, NULL);
	}
	if (ar != MGROK_AUTH_CONTINUE)
		return finish(hs, MGROK_HS_ERROR, "auth method '%s' returned %d after CHALLENGE",
		              method_name(hs), ar);
	if (mgrok_hs_encode_answer(out, r.out, r.m.out_len) < 0)
		return finish(hs, MGROK_HS_ERROR, "auth method '%s' answer too long",
		              method_name(hs));
	hs->messages++;
	return MGROK_HS_MORE;
}

int mgrok_hs_client_feed(struct mgrok_hs *hs, const uint8_t *p, size_t len, size_t *used,
                         struct mgrok_buf *out)
{
	*used = 0;
	if (hs->finished || !hs->method)
		return MGROK_HS_ERROR;

	while (*used < len) {
		struct mgrok_bytes payload = {0};
		uint8_t status = 0;
		size_t took = 0;
		char err[160] = "";

		int rc = mgrok_hs_parse_reply(p + *used, len - *used, &status, &payload, &took, err,
		                              sizeof(err));
		if (rc == 0)
			return MGROK_HS_MORE;
		if (rc < 0)
			return finish(hs, MGROK_HS_ERROR, "bad handshake reply: %s", err);
		*used += took;

		switch (status) {
		case MGROK_HS_STATUS_OK:
		case MGROK_HS_STATUS_CHALLENGE:
			rc = client_round(hs, status, &payload, out);
			if (rc != MGROK_HS_MORE)
				return rc;
			break;
		case MGROK_HS_STATUS_DENIED:
		case MGROK_HS_STATUS_UNSUPPORTED: {
			char text[sizeof(hs->reason)];
			copy_printable(text, sizeof(text), payload.p, payload.len);
			return finish(hs, MGROK_HS_DENIED, "%s",
			              text[0] ? text : "(no reason given)");
		}
		default:
			return finish(hs, MGROK_HS_ERROR, "unknown handshake status 0x%02x",
			              status);
		}
	}
	return MGROK_HS_MORE;
}

void mgrok_hs_end(struct mgrok_hs *hs)
{
	if (hs->auth_started && hs->method && hs->method->ops->end)
		hs->method->ops->end(hs->method->inst, hs->auth_state);
	hs->auth_started = false;
	hs->auth_state = NULL;
}
