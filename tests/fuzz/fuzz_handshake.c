/*
 * Fuzz target: the handshake state machines (core/handshake.c) with the
 * real auth plugins none, token and users compiled in.
 *
 * Input: a mode byte (bit 0: we are the client; bits 1-2: the client's
 * method), a split seed, then the peer's bytes. As the server we read them
 * as the client's messages, offering all three methods; as the client we
 * start the chosen method and read them as the server's replies. The host's
 * random bytes are 0, 1, 2, ... (fuzz.h), so a seed can carry valid proofs.
 *
 * Each input runs twice, fed whole and fed in pieces as the caller of a
 * real socket would (keeping what a feed did not take): both must end the
 * same way with the same output. What we send must parse as the messages
 * of doc/protocol.md 2 in the order they may come, a final result must be final,
 * and the auth plugin's state must be released (LeakSanitizer).
 */
#include <string.h>

#include "codec.h"
#include "fuzz.h"
#include "handshake.h"

enum { M_NONE, M_TOKEN, M_USERS, M_USERS_BOB, M_COUNT };

static struct mgrok_auth_method server_methods[3];
static struct mgrok_auth_method client_methods[M_COUNT];

static void setup(void)
{
	static const char users_file[] =
	        "{\"users\": {\"alice\": {\"token\": \"alice-token\"},\n"
	        "  \"bob\": {\"token\": \"bob-token\", \"ports\": [20080, \"20000-20010\"],\n"
	        "          \"max_proxies\": 2, \"max_streams\": 5, \"types\": [\"tcp\"]}}}\n";
	const struct mgrok_plugin_desc *none = fuzz_auth_none_entry();
	const struct mgrok_plugin_desc *token = fuzz_auth_token_entry();
	const struct mgrok_plugin_desc *users = fuzz_auth_users_entry();
	const char *path = fuzz_write_file("users.json", users_file, strlen(users_file));
	char conf[600];

	FUZZ_ASSERT(path != NULL, "cannot write the users file");
	snprintf(conf, sizeof(conf), "{\"file\": \"%s\"}", path);
	void *none_inst = fuzz_plugin_init(none, "{}");
	void *token_inst = fuzz_plugin_init(token, "{\"token\": \"fuzz-token\"}");
	server_methods[0] = (struct mgrok_auth_method){"none", 0x00, none->auth, none_inst};
	server_methods[1] = (struct mgrok_auth_method){"token", 0x01, token->auth, token_inst};
	server_methods[2] = (struct mgrok_auth_method){"users", 0x02, users->auth,
	                                               fuzz_plugin_init(users, conf)};
	client_methods[M_NONE] = server_methods[0];
	client_methods[M_TOKEN] = server_methods[1];
	client_methods[M_USERS] = (struct mgrok_auth_method){
	        "users", 0x02, users->auth,
	        fuzz_plugin_init(users, "{\"user\": \"alice\", \"token\": \"alice-token\"}")};
	client_methods[M_USERS_BOB] = (struct mgrok_auth_method){
	        "users", 0x02, users->auth,
	        fuzz_plugin_init(users, "{\"user\": \"bob\", \"token\": \"wrong-token\"}")};
	/* The instances live as long as the process, as a server's do. */
}

static const struct mgrok_auth_method *find(void *arg, uint8_t id)
{
	(void)arg;
	return id < 3 ? &server_methods[id] : NULL;
}

struct result {
	int rc;
	size_t taken; /* peer bytes the handshake took */
	struct mgrok_buf out;
	struct mgrok_hs hs; /* as it ended */
};

/* The 1.1 ops as a server asks them after a users login. */
static void authorize(const struct mgrok_hs *hs, const uint8_t *rest, size_t len)
{
	static const char *const types[] = {"tcp", "udp"};
	static const uint16_t ports[] = {0, 20005, 20080, 30000};
	const struct mgrok_auth_ops *ops = hs->method->ops;
	char reason[256];
	if (!ops->authorize)
		return;
	for (size_t i = 0; i < 4; i++) {
		uint8_t b = i < len ? rest[i] : (uint8_t)i;
		struct mgrok_authz a = {.identity = hs->identity,
		                        .name = "web",
		                        .type = types[b & 1],
		                        .remote_port = ports[b >> 1 & 3],
		                        .proxies = b >> 3 & 3};
		reason[0] = '\0';
		int v = ops->authorize(hs->method->inst, &a, reason, sizeof(reason));
		FUZZ_ASSERT(v == MGROK_AUTHZ_OK || v == MGROK_AUTHZ_PORT_NOT_ALLOWED ||
		                    v == MGROK_AUTHZ_LIMIT || v == MGROK_AUTHZ_FORBIDDEN,
		            "authorize returned %d", v);
		FUZZ_ASSERT(v == MGROK_AUTHZ_OK || reason[0], "authorize refused without a reason");
	}
	if (ops->max_streams)
		ops->max_streams(hs->method->inst, hs->identity);
}

static void run(bool client, int method, const uint8_t *p, size_t len, uint8_t seed,
                struct result *r)
{
	struct mgrok_buf in = {0};
	struct fuzz_split split;
	size_t used = 0;

	memset(r, 0, sizeof(*r));
	fuzz_host_reset();
	fuzz_split_init(&split, seed);
	if (client) {
		r->rc = mgrok_hs_client_start(&r->hs, &client_methods[method], &r->out);
		FUZZ_ASSERT(r->rc == MGROK_HS_MORE, "client_start: %d (%s)", r->rc, r->hs.reason);
	} else {
		mgrok_hs_server_init(&r->hs);
		r->rc = MGROK_HS_MORE;
	}
	while (len && r->rc == MGROK_HS_MORE) {
		size_t n = fuzz_split_next(&split, len);
		mgrok_buf_append(&in, p, n);
		p += n;
		len -= n;
		r->rc = client ? mgrok_hs_client_feed(&r->hs, mgrok_buf_head(&in), in.len, &used,
		                                      &r->out)
		               : mgrok_hs_server_feed(&r->hs, mgrok_buf_head(&in), in.len, &used,
		                                      &r->out, find, NULL);
		FUZZ_ASSERT(used <= in.len, "took %zu of %zu bytes", used, in.len);
		mgrok_buf_consume(&in, used);
		r->taken += used;
	}
	mgrok_buf_free(&in);
	/* A finished handshake takes nothing more. */
	if (r->rc != MGROK_HS_MORE) {
		size_t before = r->out.len;
		int again = client ? mgrok_hs_client_feed(&r->hs, (const uint8_t *)"\0\0\0", 3,
		                                          &used, &r->out)
		                   : mgrok_hs_server_feed(&r->hs, (const uint8_t *)"GRT1\0\0\0", 7,
		                                          &used, &r->out, find, NULL);
		FUZZ_ASSERT(again == MGROK_HS_ERROR && used == 0 && r->out.len == before,
		            "a finished handshake fed again: %d, took %zu", again, used);
	}
	if (!client && r->rc == MGROK_HS_DONE)
		authorize(&r->hs, p, len);
	/* Twice: the second must be harmless. */
	mgrok_hs_end(&r->hs);
	mgrok_hs_end(&r->hs);
	FUZZ_ASSERT(!r->hs.auth_started && !r->hs.auth_state, "auth state kept after end");
}

/* Splits out into the messages one side sends; returns their number. The
 * last status, for replies, goes in *last (0xff: none). */
static unsigned messages(bool replies, const struct mgrok_buf *out, uint8_t *last)
{
	const uint8_t *p = out->len ? mgrok_buf_head(out) : NULL;
	size_t len = out->len, used = 0;
	unsigned n = 0;
	*last = 0xff;
	while (len) {
		struct mgrok_bytes payload;
		char err[160];
		uint8_t x;
		int rc = replies ? mgrok_hs_parse_reply(p, len, last, &payload, &used, err,
		                                        sizeof(err))
		         : n == 0
		                 ? mgrok_hs_parse_first(p, len, &x, &payload, &used, err,
		                                        sizeof(err))
		                 : mgrok_hs_parse_answer(p, len, &payload, &used, err, sizeof(err));
		FUZZ_ASSERT(rc == 1, "our message %u does not parse (%d: %s)", n, rc,
		            rc < 0 ? err : "short");
		p += used;
		len -= used;
		n++;
	}
	return n;
}

static void check(bool client, const struct result *r)
{
	const struct mgrok_hs *hs = &r->hs;
	uint8_t last;
	unsigned n = messages(!client, &r->out, &last);

	FUZZ_ASSERT(r->rc >= MGROK_HS_DROP && r->rc <= MGROK_HS_DENIED, "result %d", r->rc);
	FUZZ_ASSERT(hs->finished == (r->rc != MGROK_HS_MORE), "result %d, finished %d", r->rc,
	            hs->finished);
	FUZZ_ASSERT(memchr(hs->reason, '\0', sizeof(hs->reason)) != NULL, "unterminated reason");
	FUZZ_ASSERT(r->rc == MGROK_HS_MORE || r->rc == MGROK_HS_DONE || hs->reason[0],
	            "result %d without a reason", r->rc);
	FUZZ_ASSERT(hs->messages <= MGROK_HS_MAX_CLIENT_MESSAGES, "%u client messages",
	            hs->messages);
	/* Client: the first message, then one answer per challenge. Server:
	 * one reply per message taken (a malformed one is not taken). */
	FUZZ_ASSERT(n == hs->messages, "%u messages sent, %u counted", n, hs->messages);
	if (client)
		return;
	FUZZ_ASSERT(r->rc != MGROK_HS_DROP || n == 0, "a dropped client got %u replies", n);
	if (r->rc == MGROK_HS_DONE) {
		size_t k = strlen(hs->identity);
		FUZZ_ASSERT(last == MGROK_HS_STATUS_OK, "DONE after reply status %u", last);
		FUZZ_ASSERT(k >= 1 && k <= MGROK_IDENTITY_MAX, "identity of %zu bytes", k);
		for (size_t i = 0; i < k; i++)
			FUZZ_ASSERT((unsigned char)hs->identity[i] >= 0x20 &&
			                    hs->identity[i] != 0x7f,
			            "control character in the identity");
	} else if (r->rc == MGROK_HS_DENIED) {
		FUZZ_ASSERT(last == MGROK_HS_STATUS_DENIED || last == MGROK_HS_STATUS_UNSUPPORTED,
		            "DENIED after reply status %u", last);
	} else {
		/* Still going, or given up without a word: challenges only. */
		FUZZ_ASSERT(last == 0xff || last == MGROK_HS_STATUS_CHALLENGE,
		            "result %d after status %u", r->rc, last);
	}
}

/* Fed whole, a scanner is quoted by its first bytes in hex, at most four
 * (handshake.c: "47 45 54"). */
static void check_drop(const struct result *r, const uint8_t *p, size_t len)
{
	char want[32] = "bad magic (";
	for (size_t i = 0; i < len && i < 4; i++)
		snprintf(want + strlen(want), sizeof(want) - strlen(want), "%s%02x", i ? " " : "",
		         p[i]);
	strcat(want, ")");
	FUZZ_ASSERT(strncmp(r->hs.reason, want, strlen(want)) == 0,
	            "dropped with '%s', not '%s...'", r->hs.reason, want);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready;
	struct result whole, split;

	if (!ready) {
		setup();
		ready = true;
	}
	if (size < 2)
		return 0;
	bool client = data[0] & 1;
	int method = (data[0] >> 1) & 3;
	uint8_t seed = data[1];
	data += 2;
	size -= 2;

	run(client, method, data, size, 0, &whole);
	check(client, &whole);
	if (whole.rc == MGROK_HS_DROP)
		check_drop(&whole, data, size);
	run(client, method, data, size, seed, &split);
	check(client, &split);

	FUZZ_ASSERT(whole.rc == split.rc, "whole %d (%s), split %d (%s)", whole.rc, whole.hs.reason,
	            split.rc, split.hs.reason);
	FUZZ_ASSERT(whole.taken == split.taken, "took %zu whole, %zu split", whole.taken,
	            split.taken);
	FUZZ_ASSERT(
	        whole.out.len == split.out.len &&
	                (!whole.out.len || memcmp(mgrok_buf_head(&whole.out),
	                                          mgrok_buf_head(&split.out), whole.out.len) == 0),
	        "different output whole and split");
	FUZZ_ASSERT(strcmp(whole.hs.identity, split.hs.identity) == 0,
	            "identity '%s' whole, '%s' split", whole.hs.identity, split.hs.identity);
	/* A scanner's bytes are quoted as far as they came. */
	FUZZ_ASSERT(whole.rc == MGROK_HS_DROP || strcmp(whole.hs.reason, split.hs.reason) == 0,
	            "reason '%s' whole, '%s' split", whole.hs.reason, split.hs.reason);
	mgrok_buf_free(&whole.out);
	mgrok_buf_free(&split.out);
	return 0;
}
