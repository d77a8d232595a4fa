/*
 * Check suite "handshake": core/handshake.c driven server against client in
 * memory, with the real auth-none and auth-token plugins loaded by dlopen
 * from $MGROK_PLUGIN_DIR (each plugin exports the same entry symbol, so they
 * cannot be linked in) and a few fake methods defined here.
 *
 * Wire bytes are written out by hand from doc/protocol.md 2 rather than through
 * the codec, so that these tests also pin the format.
 */
#include <check.h>
#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "handshake.h"
#include "hs_pair.h"
#include "test_host.h"

#define PAYLOAD_MAX 4096 /* doc/protocol.md 2: str16 payloads of at most 4096 bytes */
#define SECRET "hunter2-secret"

/* ---- loading the real plugins -------------------------------------------- */

struct method {
	struct mgrok_auth_method m;
	const struct mgrok_plugin_desc *desc; /* NULL for the fake methods */
};

static const struct mgrok_plugin_desc *plugin_desc(const char *file)
{
	const char *dir = getenv("MGROK_PLUGIN_DIR");
	char path[4096];

	ck_assert_msg(dir != NULL, "MGROK_PLUGIN_DIR is not set (the built plugins' directory)");
	snprintf(path, sizeof(path), "%s/%s", dir, file);
	/* Never closed: the process is short-lived and unloading would hide
	 * leak reports' stack frames. */
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	ck_assert_msg(h != NULL, "dlopen %s: %s", path, dlerror());
	mgrok_plugin_entry_fn entry = (mgrok_plugin_entry_fn)dlsym(h, MGROK_PLUGIN_ENTRY_SYMBOL);
	ck_assert_msg(entry != NULL, "%s: no %s", path, MGROK_PLUGIN_ENTRY_SYMBOL);
	const struct mgrok_plugin_desc *d = entry();
	ck_assert_uint_eq(d->abi_major, MGROK_PLUGIN_ABI_MAJOR);
	ck_assert_uint_ge(d->size, sizeof(struct mgrok_plugin_desc));
	ck_assert_uint_eq(d->kind, MGROK_PLUGIN_AUTH);
	ck_assert_ptr_nonnull(d->auth);
	ck_assert_ptr_nonnull(d->init);
	return d;
}

/* Returns init's result; err holds its message on failure. */
static int method_load(struct method *x, const char *file, const char *json, char *err,
                       size_t errlen)
{
	json_error_t je;
	json_t *conf = json_loads(json, JSON_REJECT_DUPLICATES, &je);
	ck_assert_msg(conf != NULL, "bad test JSON %s: %s", json, je.text);

	memset(x, 0, sizeof(*x));
	x->desc = plugin_desc(file);
	x->m.name = x->desc->name;
	x->m.id = x->desc->wire_id;
	x->m.ops = x->desc->auth;
	err[0] = '\0';
	int rc = x->desc->init(&test_host, NULL, conf, &x->m.inst, err, errlen);
	json_decref(conf);
	return rc;
}

static void method_must_load(struct method *x, const char *file, const char *json)
{
	char err[256];
	int rc = method_load(x, file, json, err, sizeof(err));
	ck_assert_msg(rc == 0, "%s with %s: %s", file, json, err);
}

static void method_unload(struct method *x)
{
	if (x->desc && x->desc->fini)
		x->desc->fini(x->m.inst);
	x->m.inst = NULL;
}

/* ---- fake methods -------------------------------------------------------- */

static struct {
	int starts, ends;
	bool deny;            /* counting: server denies */
	const char *identity; /* counting: identity on OK */
} fake;

#define STATE_MAGIC 0x5a5a1234u

struct fake_state {
	unsigned magic;
};

static void *fake_state_new(void)
{
	struct fake_state *s = test_host.alloc(sizeof(*s));
	s->magic = STATE_MAGIC;
	fake.starts++;
	return s;
}

static void fake_end(void *inst, void *state)
{
	(void)inst;
	if (state) {
		ck_assert_uint_eq(((struct fake_state *)state)->magic, STATE_MAGIC);
		free(state);
	}
	fake.ends++;
}

static int loop_client_start(void *inst, void **state, struct mgrok_auth_msg *m)
{
	(void)inst;
	*state = fake_state_new();
	m->out[0] = 'x';
	m->out_len = 1;
	return MGROK_AUTH_CONTINUE;
}

static int loop_client_step(void *inst, void *state, int status, struct mgrok_auth_msg *m)
{
	(void)inst;
	(void)state;
	if (status == 0)
		return MGROK_AUTH_OK;
	m->out[0] = 'a';
	m->out_len = 1;
	return MGROK_AUTH_CONTINUE;
}

/* Always wants one more round. */
static int loop_server_step(void *inst, void **state, unsigned round, struct mgrok_auth_msg *m)
{
	(void)inst;
	if (round == 0)
		*state = fake_state_new();
	m->out[0] = 'c';
	m->out_len = 1;
	return MGROK_AUTH_CONTINUE;
}

/* Two rounds, then OK with fake.identity, or DENIED when fake.deny. */
static int counting_server_step(void *inst, void **state, unsigned round, struct mgrok_auth_msg *m)
{
	(void)inst;
	if (round == 0) {
		*state = fake_state_new();
		m->out_len = 0;
		return MGROK_AUTH_CONTINUE;
	}
	if (fake.deny) {
		snprintf(m->text, m->text_cap, "go away");
		return MGROK_AUTH_DENIED;
	}
	snprintf(m->text, m->text_cap, "%s", fake.identity ? fake.identity : "");
	return MGROK_AUTH_OK;
}

static const struct mgrok_auth_ops loop_ops = {
        .client_start = loop_client_start,
        .client_step = loop_client_step,
        .server_step = loop_server_step,
        .end = fake_end,
};

static const struct mgrok_auth_ops counting_ops = {
        .client_start = loop_client_start,
        .client_step = loop_client_step,
        .server_step = counting_server_step,
        .end = fake_end,
};

static const struct mgrok_auth_method loop_method = {"loop", 0x90, &loop_ops, NULL};
static const struct mgrok_auth_method counting_method = {"counting", 0x91, &counting_ops, NULL};

/* ---- single-side helpers --------------------------------------------------- */

static int server_feed(struct mgrok_hs *hs, const void *p, size_t len, size_t *used,
                       struct mgrok_buf *out, struct hs_offer *o)
{
	return mgrok_hs_server_feed(hs, p, len, used, out, hs_offer_find, o);
}

/* status | str16 payload */
static void put_reply(struct mgrok_buf *b, uint8_t status, const void *p, size_t len)
{
	mgrok_buf_put8(b, status);
	mgrok_buf_put16(b, (uint16_t)len);
	mgrok_buf_append(b, p, len);
}

/* doc/protocol.md 2.2: HMAC-SHA256(SECRET, label || a || b), computed independently. */
static void spec_proof(const char *label, const uint8_t *a, const uint8_t *b, uint8_t mac[32])
{
	uint8_t msg[64];
	size_t n = strlen(label);
	unsigned mlen = 0;

	memcpy(msg, label, n);
	memcpy(msg + n, a, 16);
	memcpy(msg + n + 16, b, 16);
	ck_assert_ptr_nonnull(
	        HMAC(EVP_sha256(), SECRET, (int)strlen(SECRET), msg, n + 32, mac, &mlen));
	ck_assert_uint_eq(mlen, 32);
}

/* ---- none ---------------------------------------------------------------- */

START_TEST(none_ok)
{
	struct method none;
	struct hs_pair x = {.bytewise = _i};

	method_must_load(&none, "auth-none.so", "{}");
	x.cm = &none.m;
	x.offer = (struct hs_offer){{&none.m}, 1};
	hs_pair_run(&x);
	ck_assert_int_eq(x.s.rc, MGROK_HS_DONE);
	ck_assert_int_eq(x.c.rc, MGROK_HS_DONE);
	ck_assert_str_eq(x.s.hs.identity, "anonymous");
	ck_assert_uint_eq(x.s.hs.messages, 1);
	ck_assert_uint_eq(x.s.hs.method_id, 0x00);
	hs_pair_assert_drained(&x);
	hs_pair_free(&x);
	method_unload(&none);
}
END_TEST

START_TEST(none_not_offered)
{
	struct method none, token;
	struct hs_pair x = {.bytewise = _i};

	method_must_load(&none, "auth-none.so", "{}");
	method_must_load(&token, "auth-token.so", "{\"token\": \"" SECRET "\"}");
	x.cm = &none.m;
	x.offer = (struct hs_offer){{&token.m}, 1};
	hs_pair_run(&x);
	ck_assert_int_eq(x.s.rc, MGROK_HS_DENIED);
	ck_assert_str_eq(x.s.hs.reason, "auth method 0x00 not supported");
	ck_assert(!x.s.hs.auth_started);
	ck_assert_int_eq(x.c.rc, MGROK_HS_DENIED);
	ck_assert_str_eq(x.c.hs.reason, "auth method 0x00 not supported");
	hs_pair_assert_drained(&x);
	hs_pair_free(&x);
	method_unload(&none);
	method_unload(&token);
}
END_TEST

START_TEST(none_unsupported_reply_bytes)
{
	static const uint8_t first[] = {'G', 'R', 'T', '1', 0x05, 0x00, 0x00};
	static const char text[] = "auth method 0x05 not supported";
	struct hs_offer o = {{&loop_method}, 1};
	struct mgrok_hs hs;
	struct mgrok_buf out = {0}, want = {0};
	size_t used;

	mgrok_hs_server_init(&hs);
	ck_assert_int_eq(server_feed(&hs, first, sizeof(first), &used, &out, &o), MGROK_HS_DENIED);
	ck_assert_uint_eq(used, sizeof(first));
	put_reply(&want, 0x03, text, strlen(text));
	ck_assert_uint_eq(out.len, want.len);
	ck_assert_mem_eq(mgrok_buf_head(&out), mgrok_buf_head(&want), want.len);
	mgrok_hs_end(&hs);
	mgrok_buf_free(&out);
	mgrok_buf_free(&want);
}
END_TEST

START_TEST(none_payload_denied)
{
	static const uint8_t first[] = {'G', 'R', 'T', '1', 0x00, 0x00, 0x01, 'a'};
	struct method none;
	struct hs_offer o;
	struct mgrok_hs hs;
	struct mgrok_buf out = {0};
	size_t used;

	method_must_load(&none, "auth-none.so", "{}");
	o = (struct hs_offer){{&none.m}, 1};
	mgrok_hs_server_init(&hs);
	ck_assert_int_eq(server_feed(&hs, first, sizeof(first), &used, &out, &o), MGROK_HS_DENIED);
	ck_assert_uint_gt(out.len, 3);
	ck_assert_uint_eq(mgrok_buf_head(&out)[0], 0x02);
	ck_assert_str_eq(hs.identity, "");
	mgrok_hs_end(&hs);
	mgrok_buf_free(&out);
	method_unload(&none);
}
END_TEST

START_TEST(none_options)
{
	struct method none;
	char err[256];

	ck_assert_int_lt(method_load(&none, "auth-none.so", "{\"colour\": 1}", err, sizeof(err)),
	                 0);
	ck_assert_msg(strstr(err, "\"colour\"") != NULL, "error does not name the key: %s", err);
	ck_assert_int_lt(method_load(&none, "auth-none.so", "[]", err, sizeof(err)), 0);
	ck_assert_str_ne(err, "");
}
END_TEST

/* ---- token --------------------------------------------------------------- */

START_TEST(token_ok)
{
	struct method cs, ss;
	struct hs_pair x = {.bytewise = _i};

	method_must_load(&cs, "auth-token.so", "{\"token\": \"" SECRET "\"}");
	method_must_load(&ss, "auth-token.so", "{\"token\": \"" SECRET "\"}");
	x.cm = &cs.m;
	x.offer = (struct hs_offer){{&ss.m}, 1};
	hs_pair_run(&x);
	ck_assert_msg(x.s.rc == MGROK_HS_DONE, "server %d: %s", x.s.rc, x.s.hs.reason);
	ck_assert_msg(x.c.rc == MGROK_HS_DONE, "client %d: %s", x.c.rc, x.c.hs.reason);
	ck_assert_str_eq(x.s.hs.identity, "token");
	ck_assert_uint_eq(x.s.hs.messages, 2);
	ck_assert_uint_eq(x.c.hs.messages, 2);
	ck_assert_uint_eq(x.s.hs.method_id, 0x01);
	hs_pair_assert_drained(&x);
	hs_pair_free(&x);
	method_unload(&cs);
	method_unload(&ss);
}
END_TEST

START_TEST(token_wrong)
{
	struct method cs, ss;
	struct hs_pair x = {.bytewise = _i};

	method_must_load(&cs, "auth-token.so", "{\"token\": \"not-the-secret\"}");
	method_must_load(&ss, "auth-token.so", "{\"token\": \"" SECRET "\"}");
	x.cm = &cs.m;
	x.offer = (struct hs_offer){{&ss.m}, 1};
	hs_pair_run(&x);
	ck_assert_int_eq(x.s.rc, MGROK_HS_DENIED);
	ck_assert_str_eq(x.s.hs.reason, "authentication failed");
	ck_assert_str_eq(x.s.hs.identity, "");
	ck_assert_int_eq(x.c.rc, MGROK_HS_DENIED);
	ck_assert_str_eq(x.c.hs.reason, "authentication failed");
	hs_pair_assert_drained(&x);
	hs_pair_free(&x);
	method_unload(&cs);
	method_unload(&ss);
}
END_TEST

START_TEST(token_bad_server_proof)
{
	struct method cs, ss;
	struct hs_pair x = {.bytewise = _i, .tamper_ok = true};

	method_must_load(&cs, "auth-token.so", "{\"token\": \"" SECRET "\"}");
	method_must_load(&ss, "auth-token.so", "{\"token\": \"" SECRET "\"}");
	x.cm = &cs.m;
	x.offer = (struct hs_offer){{&ss.m}, 1};
	hs_pair_run(&x);
	ck_assert_int_eq(x.s.rc, MGROK_HS_DONE);
	ck_assert_int_eq(x.c.rc, MGROK_HS_ERROR);
	ck_assert_msg(strstr(x.c.hs.reason, "server proof invalid") != NULL, "reason: %s",
	              x.c.hs.reason);
	hs_pair_free(&x);
	method_unload(&cs);
	method_unload(&ss);
}
END_TEST

/* A server that says OK without ever challenging has proved nothing. */
START_TEST(token_ok_without_challenge)
{
	static const uint8_t zero[32];
	struct method cs;
	struct mgrok_hs hs;
	struct mgrok_buf out = {0}, in = {0};
	size_t used;

	method_must_load(&cs, "auth-token.so", "{\"token\": \"" SECRET "\"}");
	ck_assert_int_eq(mgrok_hs_client_start(&hs, &cs.m, &out), MGROK_HS_MORE);
	ck_assert_uint_eq(out.len, 4 + 1 + 2 + 16);
	ck_assert_mem_eq(mgrok_buf_head(&out), "GRT1\x01\x00\x10", 7);
	put_reply(&in, 0x00, zero, sizeof(zero));
	ck_assert_int_eq(mgrok_hs_client_feed(&hs, mgrok_buf_head(&in), in.len, &used, &out),
	                 MGROK_HS_ERROR);
	ck_assert_ptr_nonnull(strstr(hs.reason, "server proof invalid"));
	mgrok_hs_end(&hs);

	/* Not even with a proof over an all-zero snonce that was never sent. */
	uint8_t proof[32];
	mgrok_buf_consume(&out, out.len);
	mgrok_buf_consume(&in, in.len);
	ck_assert_int_eq(mgrok_hs_client_start(&hs, &cs.m, &out), MGROK_HS_MORE);
	spec_proof("mgrok-token-v1 server", zero, mgrok_buf_head(&out) + 7, proof);
	put_reply(&in, 0x00, proof, sizeof(proof));
	ck_assert_int_eq(mgrok_hs_client_feed(&hs, mgrok_buf_head(&in), in.len, &used, &out),
	                 MGROK_HS_ERROR);
	mgrok_hs_end(&hs);
	mgrok_buf_free(&out);
	mgrok_buf_free(&in);
	method_unload(&cs);
}
END_TEST

START_TEST(token_malformed_first)
{
	static const uint8_t first[] = {'G', 'R', 'T', '1', 0x01, 0x00, 0x03, 1, 2, 3};
	struct method ss;
	struct hs_offer o;
	struct mgrok_hs hs;
	struct mgrok_buf out = {0};
	size_t used;

	method_must_load(&ss, "auth-token.so", "{\"token\": \"" SECRET "\"}");
	o = (struct hs_offer){{&ss.m}, 1};
	mgrok_hs_server_init(&hs);
	ck_assert_int_eq(server_feed(&hs, first, sizeof(first), &used, &out, &o), MGROK_HS_DENIED);
	ck_assert_str_eq(hs.reason, "malformed token handshake");
	mgrok_hs_end(&hs);
	mgrok_buf_free(&out);
	method_unload(&ss);
}
END_TEST

/* The bytes on the wire are exactly doc/protocol.md 2.2. */
START_TEST(token_wire_format)
{
	struct method cs, ss;
	struct hs_offer o;
	struct mgrok_hs c, s;
	struct mgrok_buf c2s = {0}, s2c = {0};
	uint8_t cnonce[16], snonce[16], mac[32];
	size_t used;

	method_must_load(&cs, "auth-token.so", "{\"token\": \"" SECRET "\"}");
	method_must_load(&ss, "auth-token.so", "{\"token\": \"" SECRET "\"}");
	o = (struct hs_offer){{&ss.m}, 1};
	mgrok_hs_server_init(&s);

	ck_assert_int_eq(mgrok_hs_client_start(&c, &cs.m, &c2s), MGROK_HS_MORE);
	ck_assert_uint_eq(c2s.len, 7 + 16);
	ck_assert_mem_eq(mgrok_buf_head(&c2s), "GRT1\x01\x00\x10", 7);
	memcpy(cnonce, mgrok_buf_head(&c2s) + 7, 16);
	ck_assert_int_eq(server_feed(&s, mgrok_buf_head(&c2s), c2s.len, &used, &s2c, &o),
	                 MGROK_HS_MORE);
	mgrok_buf_consume(&c2s, used);

	ck_assert_uint_eq(s2c.len, 3 + 16);
	ck_assert_mem_eq(mgrok_buf_head(&s2c), "\x01\x00\x10", 3);
	memcpy(snonce, mgrok_buf_head(&s2c) + 3, 16);
	ck_assert_int_ne(memcmp(cnonce, snonce, 16), 0);
	ck_assert_int_eq(mgrok_hs_client_feed(&c, mgrok_buf_head(&s2c), s2c.len, &used, &c2s),
	                 MGROK_HS_MORE);
	mgrok_buf_consume(&s2c, used);

	ck_assert_uint_eq(c2s.len, 2 + 32);
	ck_assert_mem_eq(mgrok_buf_head(&c2s), "\x00\x20", 2);
	spec_proof("mgrok-token-v1 client", cnonce, snonce, mac);
	ck_assert_mem_eq(mgrok_buf_head(&c2s) + 2, mac, 32);
	ck_assert_int_eq(server_feed(&s, mgrok_buf_head(&c2s), c2s.len, &used, &s2c, &o),
	                 MGROK_HS_DONE);

	ck_assert_uint_eq(s2c.len, 3 + 32);
	ck_assert_mem_eq(mgrok_buf_head(&s2c), "\x00\x00\x20", 3);
	spec_proof("mgrok-token-v1 server", snonce, cnonce, mac);
	ck_assert_mem_eq(mgrok_buf_head(&s2c) + 3, mac, 32);
	ck_assert_int_eq(mgrok_hs_client_feed(&c, mgrok_buf_head(&s2c), s2c.len, &used, &c2s),
	                 MGROK_HS_DONE);

	mgrok_hs_end(&c);
	mgrok_hs_end(&s);
	mgrok_buf_free(&c2s);
	mgrok_buf_free(&s2c);
	method_unload(&cs);
	method_unload(&ss);
}
END_TEST

/* A captured answer is worthless against a new server: its snonce differs. */
START_TEST(token_replay)
{
	struct method cs, ss;
	struct hs_offer o;
	struct mgrok_hs client, a, b;
	struct mgrok_buf first = {0}, answer = {0}, ra = {0}, rb = {0};
	size_t used;

	method_must_load(&cs, "auth-token.so", "{\"token\": \"" SECRET "\"}");
	method_must_load(&ss, "auth-token.so", "{\"token\": \"" SECRET "\"}");
	o = (struct hs_offer){{&ss.m}, 1};

	ck_assert_int_eq(mgrok_hs_client_start(&client, &cs.m, &first), MGROK_HS_MORE);
	mgrok_hs_server_init(&a);
	ck_assert_int_eq(server_feed(&a, mgrok_buf_head(&first), first.len, &used, &ra, &o),
	                 MGROK_HS_MORE);
	ck_assert_uint_eq(used, first.len);
	ck_assert_uint_eq(ra.len, 1 + 2 + 16);
	ck_assert_uint_eq(mgrok_buf_head(&ra)[0], 0x01);
	ck_assert_int_eq(mgrok_hs_client_feed(&client, mgrok_buf_head(&ra), ra.len, &used, &answer),
	                 MGROK_HS_MORE);
	ck_assert_uint_eq(answer.len, 2 + 32);

	/* The same first message and answer against a fresh server. */
	mgrok_hs_server_init(&b);
	ck_assert_int_eq(server_feed(&b, mgrok_buf_head(&first), first.len, &used, &rb, &o),
	                 MGROK_HS_MORE);
	ck_assert_uint_eq(rb.len, ra.len);
	ck_assert_int_ne(memcmp(mgrok_buf_head(&ra), mgrok_buf_head(&rb), ra.len), 0);
	mgrok_buf_consume(&rb, rb.len);
	ck_assert_int_eq(server_feed(&b, mgrok_buf_head(&answer), answer.len, &used, &rb, &o),
	                 MGROK_HS_DENIED);
	ck_assert_str_eq(b.reason, "authentication failed");

	/* ... while the server it was made for accepts it. */
	mgrok_buf_consume(&ra, ra.len);
	ck_assert_int_eq(server_feed(&a, mgrok_buf_head(&answer), answer.len, &used, &ra, &o),
	                 MGROK_HS_DONE);
	ck_assert_int_eq(mgrok_hs_client_feed(&client, mgrok_buf_head(&ra), ra.len, &used, &answer),
	                 MGROK_HS_DONE);

	mgrok_hs_end(&client);
	mgrok_hs_end(&a);
	mgrok_hs_end(&b);
	mgrok_buf_free(&first);
	mgrok_buf_free(&answer);
	mgrok_buf_free(&ra);
	mgrok_buf_free(&rb);
	method_unload(&cs);
	method_unload(&ss);
}
END_TEST

/* Frames may follow the last handshake message in the same read. */
START_TEST(frames_after_ok)
{
	static const uint8_t frames[] = {0x05, 0x0B, 0x01, 'c', 0x00, 0x00};
	struct method cs, ss;
	struct hs_offer o;
	struct mgrok_hs c, s;
	struct mgrok_buf c2s = {0}, s2c = {0};
	size_t used, len;

	method_must_load(&cs, "auth-token.so", "{\"token\": \"" SECRET "\"}");
	method_must_load(&ss, "auth-token.so", "{\"token\": \"" SECRET "\"}");
	o = (struct hs_offer){{&ss.m}, 1};
	mgrok_hs_server_init(&s);

	ck_assert_int_eq(mgrok_hs_client_start(&c, &cs.m, &c2s), MGROK_HS_MORE);
	ck_assert_int_eq(server_feed(&s, mgrok_buf_head(&c2s), c2s.len, &used, &s2c, &o),
	                 MGROK_HS_MORE);
	mgrok_buf_consume(&c2s, used);
	ck_assert_int_eq(mgrok_hs_client_feed(&c, mgrok_buf_head(&s2c), s2c.len, &used, &c2s),
	                 MGROK_HS_MORE);
	mgrok_buf_consume(&s2c, used);

	len = c2s.len;
	mgrok_buf_append(&c2s, frames, sizeof(frames));
	ck_assert_int_eq(server_feed(&s, mgrok_buf_head(&c2s), c2s.len, &used, &s2c, &o),
	                 MGROK_HS_DONE);
	ck_assert_uint_eq(used, len);

	len = s2c.len;
	ck_assert_uint_eq(len, 1 + 2 + 32);
	mgrok_buf_append(&s2c, frames, sizeof(frames));
	ck_assert_int_eq(mgrok_hs_client_feed(&c, mgrok_buf_head(&s2c), s2c.len, &used, &c2s),
	                 MGROK_HS_DONE);
	ck_assert_uint_eq(used, len);

	mgrok_hs_end(&c);
	mgrok_hs_end(&s);
	mgrok_buf_free(&c2s);
	mgrok_buf_free(&s2c);
	method_unload(&cs);
	method_unload(&ss);
}
END_TEST

START_TEST(frames_after_ok_none)
{
	static const uint8_t frames[] = {0x05, 0x05};
	struct method none;
	struct hs_offer o;
	struct mgrok_hs c, s;
	struct mgrok_buf c2s = {0}, s2c = {0};
	size_t used;

	method_must_load(&none, "auth-none.so", "{}");
	o = (struct hs_offer){{&none.m}, 1};
	mgrok_hs_server_init(&s);
	ck_assert_int_eq(mgrok_hs_client_start(&c, &none.m, &c2s), MGROK_HS_MORE);
	ck_assert_uint_eq(c2s.len, 7);
	mgrok_buf_append(&c2s, frames, sizeof(frames));
	ck_assert_int_eq(server_feed(&s, mgrok_buf_head(&c2s), c2s.len, &used, &s2c, &o),
	                 MGROK_HS_DONE);
	ck_assert_uint_eq(used, 7);
	ck_assert_uint_eq(s2c.len, 3);
	mgrok_buf_append(&s2c, frames, sizeof(frames));
	ck_assert_int_eq(mgrok_hs_client_feed(&c, mgrok_buf_head(&s2c), s2c.len, &used, &c2s),
	                 MGROK_HS_DONE);
	ck_assert_uint_eq(used, 3);
	mgrok_hs_end(&c);
	mgrok_hs_end(&s);
	mgrok_buf_free(&c2s);
	mgrok_buf_free(&s2c);
	method_unload(&none);
}
END_TEST

/* ---- framing faults ------------------------------------------------------ */

START_TEST(bad_magic)
{
	static const char http[] = "GET / HTTP/1.1\r\n\r\n";
	struct hs_offer o = {{&loop_method}, 1};
	struct mgrok_hs hs;
	struct mgrok_buf out = {0};
	size_t used;

	memset(&fake, 0, sizeof(fake));
	mgrok_hs_server_init(&hs);
	ck_assert_int_eq(server_feed(&hs, http, strlen(http), &used, &out, &o), MGROK_HS_DROP);
	ck_assert_uint_eq(out.len, 0);
	ck_assert(hs.finished);
	/* The log line shows the bytes seen, every one of them. */
	ck_assert_str_eq(hs.reason, "bad magic (47 45 54 20): not an mgrok client");

	/* Dropped at the first wrong byte, before a whole header arrived. */
	mgrok_hs_server_init(&hs);
	ck_assert_int_eq(server_feed(&hs, "G", 1, &used, &out, &o), MGROK_HS_MORE);
	ck_assert_int_eq(server_feed(&hs, "GE", 2, &used, &out, &o), MGROK_HS_DROP);
	ck_assert_uint_eq(out.len, 0);
	mgrok_hs_server_init(&hs);
	ck_assert_int_eq(server_feed(&hs, "\x16", 1, &used, &out, &o), MGROK_HS_DROP);
	ck_assert_uint_eq(out.len, 0);

	mgrok_hs_server_init(&hs);
	ck_assert_int_eq(server_feed(&hs, "GRT", 3, &used, &out, &o), MGROK_HS_MORE);
	ck_assert_uint_eq(used, 0);
	ck_assert_int_eq(server_feed(&hs, "GRT2\x90\x00\x00", 7, &used, &out, &o), MGROK_HS_DROP);
	ck_assert_uint_eq(out.len, 0);
	ck_assert(!hs.auth_started);
	ck_assert_int_eq(fake.starts, 0);
	mgrok_buf_free(&out);
}
END_TEST

/* More than 4096 bytes of payload, in every place a str16 appears. */
START_TEST(payload_too_long)
{
	struct hs_offer o = {{&loop_method}, 1};
	struct mgrok_hs hs;
	struct mgrok_buf msg = {0}, out = {0};
	uint8_t *big = calloc(PAYLOAD_MAX + 1, 1);
	size_t used;

	memset(&fake, 0, sizeof(fake));
	/* First message. */
	mgrok_buf_append(&msg, "GRT1\x90", 5);
	mgrok_buf_put16(&msg, PAYLOAD_MAX + 1);
	mgrok_buf_append(&msg, big, PAYLOAD_MAX + 1);
	mgrok_hs_server_init(&hs);
	ck_assert_int_eq(server_feed(&hs, mgrok_buf_head(&msg), msg.len, &used, &out, &o),
	                 MGROK_HS_ERROR);
	ck_assert_uint_eq(out.len, 0);
	ck_assert_int_eq(fake.starts, 0);
	mgrok_hs_end(&hs);

	/* An answer after a CHALLENGE. */
	mgrok_buf_consume(&msg, msg.len);
	mgrok_buf_append(&msg, "GRT1\x90\x00\x00", 7);
	mgrok_hs_server_init(&hs);
	ck_assert_int_eq(server_feed(&hs, mgrok_buf_head(&msg), msg.len, &used, &out, &o),
	                 MGROK_HS_MORE);
	mgrok_buf_consume(&msg, msg.len);
	mgrok_buf_consume(&out, out.len);
	mgrok_buf_put16(&msg, PAYLOAD_MAX + 1);
	mgrok_buf_append(&msg, big, PAYLOAD_MAX + 1);
	ck_assert_int_eq(server_feed(&hs, mgrok_buf_head(&msg), msg.len, &used, &out, &o),
	                 MGROK_HS_ERROR);
	ck_assert_uint_eq(out.len, 0);
	mgrok_hs_end(&hs);
	ck_assert_int_eq(fake.ends, 1);

	/* A server reply. */
	mgrok_buf_consume(&msg, msg.len);
	ck_assert_int_eq(mgrok_hs_client_start(&hs, &loop_method, &out), MGROK_HS_MORE);
	put_reply(&msg, 0x01, big, PAYLOAD_MAX + 1);
	ck_assert_int_eq(mgrok_hs_client_feed(&hs, mgrok_buf_head(&msg), msg.len, &used, &out),
	                 MGROK_HS_ERROR);
	mgrok_hs_end(&hs);
	ck_assert_int_eq(fake.ends, 2);

	free(big);
	mgrok_buf_free(&msg);
	mgrok_buf_free(&out);
}
END_TEST

START_TEST(too_many_rounds)
{
	struct hs_pair x = {.bytewise = _i};

	memset(&fake, 0, sizeof(fake));
	x.cm = &loop_method;
	x.offer = (struct hs_offer){{&loop_method}, 1};
	hs_pair_run(&x);
	ck_assert_int_eq(x.s.rc, MGROK_HS_DENIED);
	ck_assert_str_eq(x.s.hs.reason, "too many handshake rounds");
	ck_assert_uint_eq(x.s.hs.messages, MGROK_HS_MAX_CLIENT_MESSAGES);
	ck_assert_int_eq(x.c.rc, MGROK_HS_DENIED);
	ck_assert_str_eq(x.c.hs.reason, "too many handshake rounds");
	ck_assert_uint_eq(x.c.hs.messages, MGROK_HS_MAX_CLIENT_MESSAGES);
	hs_pair_assert_drained(&x);
	hs_pair_free(&x);
	ck_assert_int_eq(fake.starts, 2);
	ck_assert_int_eq(fake.ends, 2);
}
END_TEST

/* The client, too, stops a server that never stops challenging. */
START_TEST(client_too_many_rounds)
{
	struct mgrok_hs hs;
	struct mgrok_buf out = {0}, in = {0};
	size_t used;

	memset(&fake, 0, sizeof(fake));
	ck_assert_int_eq(mgrok_hs_client_start(&hs, &loop_method, &out), MGROK_HS_MORE);
	for (int i = 0; i < MGROK_HS_MAX_CLIENT_MESSAGES; i++) {
		mgrok_buf_consume(&in, in.len);
		put_reply(&in, 0x01, "c", 1);
		int rc = mgrok_hs_client_feed(&hs, mgrok_buf_head(&in), in.len, &used, &out);
		if (i < MGROK_HS_MAX_CLIENT_MESSAGES - 1) {
			ck_assert_int_eq(rc, MGROK_HS_MORE);
		} else {
			ck_assert_int_eq(rc, MGROK_HS_ERROR);
			ck_assert_str_eq(hs.reason, "too many handshake rounds");
		}
	}
	/* First message plus three answers went out. */
	ck_assert_uint_eq(out.len, 8 + 3 * 3);
	mgrok_hs_end(&hs);
	mgrok_buf_free(&out);
	mgrok_buf_free(&in);
}
END_TEST

START_TEST(client_denied_text_sanitised)
{
	static const uint8_t text[] = {'n', 'o', '\x1b', '[', '2', 'J', 0xc3, 0xa9, '\n'};
	uint8_t longtext[600];
	struct mgrok_hs hs;
	struct mgrok_buf out = {0}, in = {0};
	size_t used;

	memset(&fake, 0, sizeof(fake));
	ck_assert_int_eq(mgrok_hs_client_start(&hs, &loop_method, &out), MGROK_HS_MORE);
	put_reply(&in, 0x02, text, sizeof(text));
	ck_assert_int_eq(mgrok_hs_client_feed(&hs, mgrok_buf_head(&in), in.len, &used, &out),
	                 MGROK_HS_DENIED);
	ck_assert_str_eq(hs.reason, "no?[2J???");
	ck_assert_int_eq(fake.ends, 1);

	memset(longtext, 'z', sizeof(longtext));
	mgrok_buf_consume(&in, in.len);
	ck_assert_int_eq(mgrok_hs_client_start(&hs, &loop_method, &out), MGROK_HS_MORE);
	put_reply(&in, 0x03, longtext, sizeof(longtext));
	ck_assert_int_eq(mgrok_hs_client_feed(&hs, mgrok_buf_head(&in), in.len, &used, &out),
	                 MGROK_HS_DENIED);
	ck_assert_uint_eq(strlen(hs.reason), sizeof(hs.reason) - 1);
	ck_assert_uint_eq(used, in.len);

	/* Fed again after the end: refused, nothing taken. */
	ck_assert_int_eq(mgrok_hs_client_feed(&hs, mgrok_buf_head(&in), in.len, &used, &out),
	                 MGROK_HS_ERROR);
	ck_assert_uint_eq(used, 0);
	mgrok_hs_end(&hs);
	mgrok_buf_free(&out);
	mgrok_buf_free(&in);
}
END_TEST

START_TEST(client_unknown_status)
{
	struct mgrok_hs hs;
	struct mgrok_buf out = {0}, in = {0};
	size_t used;

	ck_assert_int_eq(mgrok_hs_client_start(&hs, &loop_method, &out), MGROK_HS_MORE);
	put_reply(&in, 0x07, "", 0);
	ck_assert_int_eq(mgrok_hs_client_feed(&hs, mgrok_buf_head(&in), in.len, &used, &out),
	                 MGROK_HS_ERROR);
	mgrok_hs_end(&hs);
	mgrok_buf_free(&out);
	mgrok_buf_free(&in);
}
END_TEST

/* ---- end() and identities ------------------------------------------------ */

START_TEST(end_called_once)
{
	struct hs_pair x = {.bytewise = _i % 2};

	memset(&fake, 0, sizeof(fake));
	fake.deny = _i >= 2;
	x.cm = &counting_method;
	x.offer = (struct hs_offer){{&counting_method}, 1};
	hs_pair_run(&x);
	ck_assert_int_eq(fake.starts, 2);
	if (fake.deny) {
		ck_assert_int_eq(x.s.rc, MGROK_HS_DENIED);
		ck_assert_int_eq(x.c.rc, MGROK_HS_DENIED);
		ck_assert_str_eq(x.c.hs.reason, "go away");
	} else {
		ck_assert_int_eq(x.s.rc, MGROK_HS_DONE);
		ck_assert_int_eq(x.c.rc, MGROK_HS_DONE);
		/* The method gave no identity: its name stands in. */
		ck_assert_str_eq(x.s.hs.identity, "counting");
	}
	mgrok_hs_end(&x.s.hs);
	mgrok_hs_end(&x.s.hs);
	mgrok_hs_end(&x.c.hs);
	mgrok_hs_end(&x.c.hs);
	ck_assert_int_eq(fake.ends, 2);
	hs_pair_free(&x);
	ck_assert_int_eq(fake.ends, 2);
}
END_TEST

/* Owed even when the handshake is abandoned half way (a timeout). */
START_TEST(end_after_abandon)
{
	struct mgrok_hs c;
	struct mgrok_buf out = {0};

	memset(&fake, 0, sizeof(fake));
	ck_assert_int_eq(mgrok_hs_client_start(&c, &counting_method, &out), MGROK_HS_MORE);
	ck_assert(c.auth_started);
	ck_assert_int_eq(fake.ends, 0);
	mgrok_hs_end(&c);
	mgrok_hs_end(&c);
	ck_assert_int_eq(fake.ends, 1);
	mgrok_buf_free(&out);
}
END_TEST

START_TEST(identity_too_long)
{
	char id[MGROK_IDENTITY_MAX + 2];
	struct hs_pair x = {0};

	memset(id, 'i', sizeof(id) - 1);
	id[sizeof(id) - 1] = '\0';
	memset(&fake, 0, sizeof(fake));
	fake.identity = id;
	x.cm = &counting_method;
	x.offer = (struct hs_offer){{&counting_method}, 1};
	hs_pair_run(&x);
	ck_assert_int_eq(x.s.rc, MGROK_HS_DENIED);
	ck_assert_str_eq(x.s.hs.identity, "");
	ck_assert_int_eq(x.c.rc, MGROK_HS_DENIED);
	hs_pair_free(&x);

	id[MGROK_IDENTITY_MAX] = '\0'; /* exactly 64 bytes is fine */
	memset(&x, 0, sizeof(x));
	x.cm = &counting_method;
	x.offer = (struct hs_offer){{&counting_method}, 1};
	hs_pair_run(&x);
	ck_assert_int_eq(x.s.rc, MGROK_HS_DONE);
	ck_assert_str_eq(x.s.hs.identity, id);
	hs_pair_free(&x);
}
END_TEST

/* ---- token options ------------------------------------------------------- */

/* Removed at exit, which a failed assertion also reaches (Check's fork mode). */
static char *temps[8];
static size_t n_temps;

static void temps_remove(void)
{
	for (size_t i = 0; i < n_temps; i++) {
		unlink(temps[i]);
		free(temps[i]);
	}
	n_temps = 0;
}

static const char *temp_file(const char *content)
{
	char *path = strdup("/tmp/check_handshake_XXXXXX");
	ck_assert_uint_lt(n_temps, sizeof(temps) / sizeof(temps[0]));
	if (n_temps == 0)
		atexit(temps_remove);
	temps[n_temps++] = path;
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, content, strlen(content)), (ssize_t)strlen(content));
	close(fd);
	return path;
}

START_TEST(token_file_and_env)
{
	const char *path = temp_file(SECRET " \r\n\n");
	char json[512];
	struct method cs, ss;
	struct hs_pair x = {0};

	setenv("MGROK_TEST_TOKEN", SECRET, 1);
	snprintf(json, sizeof(json), "{\"token_file\": \"%s\"}", path);
	method_must_load(&ss, "auth-token.so", json);
	method_must_load(&cs, "auth-token.so", "{\"token_env\": \"MGROK_TEST_TOKEN\"}");
	/* A secret read at init: the file and the variable may go now. */
	unlink(path);
	unsetenv("MGROK_TEST_TOKEN");

	x.cm = &cs.m;
	x.offer = (struct hs_offer){{&ss.m}, 1};
	hs_pair_run(&x);
	ck_assert_msg(x.s.rc == MGROK_HS_DONE, "server %d: %s", x.s.rc, x.s.hs.reason);
	ck_assert_msg(x.c.rc == MGROK_HS_DONE, "client %d: %s", x.c.rc, x.c.hs.reason);
	hs_pair_free(&x);
	method_unload(&cs);
	method_unload(&ss);
}
END_TEST

/* Trailing whitespace is stripped from a file, but not from the inline form. */
START_TEST(token_file_differs_from_padded_inline)
{
	const char *path = temp_file(SECRET "\n");
	char json[512];
	struct method cs, ss;
	struct hs_pair x = {0};

	snprintf(json, sizeof(json), "{\"token_file\": \"%s\"}", path);
	method_must_load(&ss, "auth-token.so", json);
	method_must_load(&cs, "auth-token.so", "{\"token\": \"" SECRET "\\n\"}");
	unlink(path);
	x.cm = &cs.m;
	x.offer = (struct hs_offer){{&ss.m}, 1};
	hs_pair_run(&x);
	ck_assert_int_eq(x.s.rc, MGROK_HS_DENIED);
	hs_pair_free(&x);
	method_unload(&cs);
	method_unload(&ss);
}
END_TEST

START_TEST(token_option_errors)
{
	const char *blank = temp_file(" \n\t\n");
	char *large = malloc(5000);
	char json[512];
	char err[256];
	struct method m;

	memset(large, 0, 5000);
	for (size_t i = 0; i + strlen(SECRET) < 4999; i += strlen(SECRET))
		memcpy(large + i, SECRET, strlen(SECRET));
	const char *bigfile = temp_file(large);
	setenv("MGROK_TEST_EMPTY", "", 1);
	unsetenv("MGROK_TEST_UNSET");

	struct {
		const char *json;
		const char *want; /* in the message */
	} cases[] = {
	        {"{}", "one of"},
	        {"[]", "object"},
	        {"{\"token\": \"" SECRET "\", \"token_file\": \"/etc/hostname\"}", "token_file"},
	        {"{\"token_env\": \"HOME\", \"token\": \"" SECRET "\"}", "token_env"},
	        {"{\"token\": \"\"}", "empty"},
	        {"{\"token\": 42}", "string"},
	        {"{\"token\": \"" SECRET "\", \"tokne\": \"" SECRET "\"}", "\"tokne\""},
	        {"{\"token_env\": \"MGROK_TEST_UNSET\"}", "MGROK_TEST_UNSET"},
	        {"{\"token_env\": \"MGROK_TEST_EMPTY\"}", "empty"},
	        {"{\"token_file\": \"/nonexistent/mgrok/token\"}", "/nonexistent/mgrok/token"},
	        {NULL, "empty"},  /* blank file */
	        {NULL, "larger"}, /* file over 4096 bytes of secret */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *j = cases[i].json;
		if (!j) {
			snprintf(json, sizeof(json), "{\"token_file\": \"%s\"}",
			         cases[i].want[0] == 'e' ? blank : bigfile);
			j = json;
		}
		ck_assert_msg(method_load(&m, "auth-token.so", j, err, sizeof(err)) < 0,
		              "accepted %s", j);
		ck_assert_msg(strstr(err, cases[i].want) != NULL, "%s: \"%s\" lacks \"%s\"", j, err,
		              cases[i].want);
		ck_assert_msg(strstr(err, "hunter2") == NULL, "%s: secret in \"%s\"", j, err);
	}
	free(large);
}
END_TEST

static Suite *handshake_suite(void)
{
	Suite *s = suite_create("handshake");
	TCase *tc;

	tc = tcase_create("none");
	tcase_add_loop_test(tc, none_ok, 0, 2);
	tcase_add_loop_test(tc, none_not_offered, 0, 2);
	tcase_add_test(tc, none_unsupported_reply_bytes);
	tcase_add_test(tc, none_payload_denied);
	tcase_add_test(tc, none_options);
	tcase_add_test(tc, frames_after_ok_none);
	suite_add_tcase(s, tc);

	tc = tcase_create("token");
	tcase_add_loop_test(tc, token_ok, 0, 2);
	tcase_add_loop_test(tc, token_wrong, 0, 2);
	tcase_add_loop_test(tc, token_bad_server_proof, 0, 2);
	tcase_add_test(tc, token_ok_without_challenge);
	tcase_add_test(tc, token_wire_format);
	tcase_add_test(tc, token_malformed_first);
	tcase_add_test(tc, token_replay);
	tcase_add_test(tc, frames_after_ok);
	tcase_add_test(tc, token_file_and_env);
	tcase_add_test(tc, token_file_differs_from_padded_inline);
	tcase_add_test(tc, token_option_errors);
	suite_add_tcase(s, tc);

	tc = tcase_create("framing");
	tcase_add_test(tc, bad_magic);
	tcase_add_test(tc, payload_too_long);
	tcase_add_loop_test(tc, too_many_rounds, 0, 2);
	tcase_add_test(tc, client_too_many_rounds);
	tcase_add_test(tc, client_denied_text_sanitised);
	tcase_add_test(tc, client_unknown_status);
	suite_add_tcase(s, tc);

	tc = tcase_create("lifecycle");
	tcase_add_loop_test(tc, end_called_once, 0, 4);
	tcase_add_test(tc, end_after_abandon);
	tcase_add_test(tc, identity_too_long);
	suite_add_tcase(s, tc);

	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(handshake_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
