/*
 * Check suite "auth_users": the "users" auth method (plugins/auth-users),
 * loaded by dlopen from $MGROK_PLUGIN_DIR/auth-users.so and driven through
 * core/handshake.c server against client in memory, with a small host table.
 * Users files are written to a scratch directory that main removes.
 *
 * The wire format is pinned by recomputing both proofs here from the labels
 * "mgrok-users-v1 client" / "mgrok-users-v1 server":
 *   client first payload  str8(user) || cnonce(16)
 *   server CHALLENGE      snonce(16)
 *   client answer         HMAC(token, "mgrok-users-v1 client" || user || cnonce || snonce)
 *   server OK             HMAC(token, "mgrok-users-v1 server" || snonce || cnonce || user)
 */
#define _POSIX_C_SOURCE 200809L /* mkdtemp, nftw, setenv */
#include <check.h>
#include <stdbool.h>
#include <dlfcn.h>
#include <errno.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "handshake.h"
#include "hs_pair.h"
#include "test_host.h"

#define ALICE "alice-s3cret-token"
#define ALICE2 "alice-n3w-token"
#define BOB "bob-s3cret-token"
#define CAROL "carol-s3cret-token"

/* Every test secret, for the "never in an error" checks. */
static const char *const secrets[] = {ALICE, ALICE2, BOB, CAROL, "s3cret"};

static void assert_secret_free(const char *text)
{
	for (size_t i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++)
		ck_assert_msg(strstr(text, secrets[i]) == NULL, "a token leaked into \"%s\"", text);
}

static void assert_mentions(const char *text, const char *what)
{
	ck_assert_msg(strstr(text, what) != NULL, "\"%s\" does not mention \"%s\"", text, what);
}

/* ---- scratch files -------------------------------------------------------- */

static char scratch[512];

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)type;
	(void)ftw;
	return remove(path);
}

/* scratch/name, written with text, mode 0600. Returns a static path. */
static const char *write_file(const char *name, const char *text)
{
	static char path[1024];
	snprintf(path, sizeof(path), "%s/%s", scratch, name);
	FILE *f = fopen(path, "wb");
	ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
	ck_assert_int_eq(fputs(text, f) >= 0, 1);
	ck_assert_int_eq(fclose(f), 0);
	ck_assert_int_eq(chmod(path, 0600), 0);
	return path;
}

/* ---- the plugin ------------------------------------------------------------ */

struct method {
	struct mgrok_auth_method m;
	const struct mgrok_plugin_desc *desc;
};

static const struct mgrok_plugin_desc *users_desc(void)
{
	const char *dir = getenv("MGROK_PLUGIN_DIR");
	char path[4096];

	ck_assert_msg(dir != NULL, "MGROK_PLUGIN_DIR is not set (the built plugins' directory)");
	snprintf(path, sizeof(path), "%s/auth-users.so", dir);
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL); /* never closed: see check_handshake.c */
	ck_assert_msg(h != NULL, "dlopen %s: %s", path, dlerror());
	mgrok_plugin_entry_fn entry = (mgrok_plugin_entry_fn)dlsym(h, MGROK_PLUGIN_ENTRY_SYMBOL);
	ck_assert_msg(entry != NULL, "%s: no %s", path, MGROK_PLUGIN_ENTRY_SYMBOL);
	const struct mgrok_plugin_desc *d = entry();
	ck_assert_uint_eq(d->abi_major, MGROK_PLUGIN_ABI_MAJOR);
	ck_assert_uint_eq(d->abi_minor, MGROK_PLUGIN_ABI_MINOR);
	ck_assert_uint_eq(d->kind, MGROK_PLUGIN_AUTH);
	ck_assert_str_eq(d->name, "users");
	ck_assert_uint_eq(d->wire_id, 0x02);
	ck_assert_ptr_nonnull(d->auth);
	ck_assert_ptr_nonnull(d->auth->authorize);
	ck_assert_ptr_nonnull(d->auth->max_streams);
	ck_assert_ptr_nonnull(d->auth->reload);
	return d;
}

/* init with conf (JSON text); returns its result, err its message. */
static int method_load(struct method *x, const char *conf, char *err, size_t errlen)
{
	json_error_t je;
	json_t *j = json_loads(conf, JSON_REJECT_DUPLICATES, &je);
	ck_assert_msg(j != NULL, "bad test JSON %s: %s", conf, je.text);
	memset(x, 0, sizeof(*x));
	x->desc = users_desc();
	x->m.name = x->desc->name;
	x->m.id = x->desc->wire_id;
	x->m.ops = x->desc->auth;
	err[0] = '\0';
	int rc = x->desc->init(&test_host, NULL, j, &x->m.inst, err, errlen);
	json_decref(j);
	return rc;
}

static void must_load(struct method *x, const char *conf)
{
	char err[1024];
	ck_assert_msg(method_load(x, conf, err, sizeof(err)) == 0, "init %s: %s", conf, err);
}

/* A server reading scratch/users.json with text. */
static void server_load(struct method *x, const char *text)
{
	char conf[2048];
	snprintf(conf, sizeof(conf), "{\"file\": \"%s\"}", write_file("users.json", text));
	must_load(x, conf);
}

static void client_load(struct method *x, const char *user, const char *token)
{
	char conf[512];
	snprintf(conf, sizeof(conf), "{\"user\": \"%s\", \"token\": \"%s\"}", user, token);
	must_load(x, conf);
}

static void unload(struct method *x)
{
	x->desc->fini(x->m.inst);
	x->m.inst = NULL;
}

/* A users file with text that init refuses, naming "domains". */
static bool server_load_fails(const char *text)
{
	struct method x;
	char conf[2048], err[1024];
	snprintf(conf, sizeof(conf), "{\"file\": \"%s\"}", write_file("users.json", text));
	if (method_load(&x, conf, err, sizeof(err)) == 0) {
		unload(&x);
		return false;
	}
	ck_assert_msg(strstr(err, "domains") != NULL, "error without the key: %s", err);
	return true;
}

static const char users_json[] =
        "{\"users\": {\n"
        "  \"alice\": {\"token\": \"" ALICE "\", \"ports\": [\"20000-20010\", 20080],\n"
        "             \"max_proxies\": 4, \"max_streams\": 100, \"types\": [\"tcp\"]},\n"
        "  \"bob\": {\"token_file\": \"%s\"}\n"
        "}}\n";

/* The server of most tests: alice inline, bob from a token file. */
static void server_standard(struct method *x)
{
	char text[2048], bobfile[1024];
	snprintf(bobfile, sizeof(bobfile), "%s", write_file("bob.token", BOB " \n\n"));
	snprintf(text, sizeof(text), users_json, bobfile);
	server_load(x, text);
}

/* ---- a server and a client talking in memory -------------------------------- */

/* For the tests that feed the server by hand: arg is the one method it offers. */
static const struct mgrok_auth_method *find(void *arg, uint8_t id)
{
	const struct mgrok_auth_method *m = arg;
	return m->id == id ? m : NULL;
}

/* A whole handshake of client cm against server sm. */
static void run_handshake(struct hs_pair *x, struct method *cm, struct method *sm)
{
	x->cm = &cm->m;
	x->offer = (struct hs_offer){{&sm->m}, 1};
	hs_pair_run(x);
}

/* A whole handshake of user/token against server sm: the server's result. */
static int login(struct method *sm, const char *user, const char *token, char *identity)
{
	struct method cm;
	struct hs_pair x = {0};
	client_load(&cm, user, token);
	run_handshake(&x, &cm, sm);
	int rc = x.s.rc;
	if (identity)
		snprintf(identity, MGROK_IDENTITY_MAX + 1, "%s", x.s.hs.identity);
	if (rc == MGROK_HS_DONE)
		ck_assert_msg(x.c.rc == MGROK_HS_DONE, "client: %d %s", x.c.rc, x.c.hs.reason);
	else
		ck_assert_str_eq(x.s.hs.reason, "authentication failed");
	hs_pair_free(&x);
	unload(&cm);
	return rc;
}

/* HMAC-SHA256(key, label || a || b || c), computed independently. */
static void spec_mac(const char *key, const char *label, const void *a, size_t alen, const void *b,
                     size_t blen, const void *c, size_t clen, uint8_t mac[32])
{
	uint8_t msg[256];
	size_t n = strlen(label);
	unsigned mlen = 0;
	memcpy(msg, label, n); /* NOLINT(bugprone-not-null-terminated-result): bytes */
	memcpy(msg + n, a, alen);
	memcpy(msg + n + alen, b, blen);
	memcpy(msg + n + alen + blen, c, clen);
	ck_assert_ptr_nonnull(
	        HMAC(EVP_sha256(), key, (int)strlen(key), msg, n + alen + blen + clen, mac, &mlen));
	ck_assert_uint_eq(mlen, 32);
}

/* ---- handshake ------------------------------------------------------------- */

START_TEST(hs_ok)
{
	struct method sm, cm;
	struct hs_pair x = {.bytewise = _i};

	server_standard(&sm);
	client_load(&cm, "alice", ALICE);
	run_handshake(&x, &cm, &sm);
	ck_assert_msg(x.s.rc == MGROK_HS_DONE, "server %d: %s", x.s.rc, x.s.hs.reason);
	ck_assert_msg(x.c.rc == MGROK_HS_DONE, "client %d: %s", x.c.rc, x.c.hs.reason);
	ck_assert_str_eq(x.s.hs.identity, "alice");
	ck_assert_uint_eq(x.s.hs.method_id, 0x02);
	ck_assert_uint_eq(x.s.hs.messages, 2);
	hs_pair_assert_drained(&x);
	hs_pair_free(&x);
	unload(&cm);

	/* bob's token came from a file, its trailing whitespace dropped. */
	char id[MGROK_IDENTITY_MAX + 1];
	ck_assert_int_eq(login(&sm, "bob", BOB, id), MGROK_HS_DONE);
	ck_assert_str_eq(id, "bob");
	ck_assert_int_eq(login(&sm, "bob", BOB " ", NULL), MGROK_HS_DENIED);
	unload(&sm);
}
END_TEST

START_TEST(hs_wrong_token)
{
	struct method sm, cm;
	struct hs_pair x = {.bytewise = _i};

	server_standard(&sm);
	client_load(&cm, "alice", BOB); /* another user's token */
	run_handshake(&x, &cm, &sm);
	ck_assert_int_eq(x.s.rc, MGROK_HS_DENIED);
	ck_assert_str_eq(x.s.hs.reason, "authentication failed");
	ck_assert_str_eq(x.s.hs.identity, "");
	ck_assert_int_eq(x.c.rc, MGROK_HS_DENIED);
	ck_assert_str_eq(x.c.hs.reason, "authentication failed");
	hs_pair_free(&x);
	unload(&cm);
	unload(&sm);
}
END_TEST

/* An unknown user is challenged like a known one, then refused the same way. */
START_TEST(hs_unknown_user)
{
	struct method sm, cm;
	struct hs_pair x = {.bytewise = _i};
	struct mgrok_hs s;
	struct mgrok_buf out = {0}, first = {0};
	size_t used;

	server_standard(&sm);
	client_load(&cm, "mallory", ALICE);
	ck_assert_int_eq(mgrok_hs_client_start(&x.c.hs, &cm.m, &first), MGROK_HS_MORE);
	mgrok_hs_server_init(&s);
	ck_assert_int_eq(mgrok_hs_server_feed(&s, mgrok_buf_head(&first), first.len, &used, &out,
	                                      find, &sm.m),
	                 MGROK_HS_MORE);
	ck_assert_uint_eq(out.len, 3 + 16);
	ck_assert_mem_eq(mgrok_buf_head(&out), "\x01\x00\x10", 3);
	mgrok_hs_end(&s);
	mgrok_hs_end(&x.c.hs);
	mgrok_buf_free(&out);
	mgrok_buf_free(&first);

	run_handshake(&x, &cm, &sm);
	ck_assert_uint_eq(x.s.hs.messages, 2); /* the answer was awaited */
	ck_assert_int_eq(x.s.rc, MGROK_HS_DENIED);
	ck_assert_str_eq(x.s.hs.reason, "authentication failed");
	ck_assert_int_eq(x.c.rc, MGROK_HS_DENIED);
	ck_assert_str_eq(x.c.hs.reason, "authentication failed");
	hs_pair_free(&x);
	unload(&cm);
	unload(&sm);
}
END_TEST

START_TEST(hs_bad_server_proof)
{
	struct method sm, cm;
	struct hs_pair x = {.bytewise = _i, .tamper_ok = true};

	server_standard(&sm);
	client_load(&cm, "alice", ALICE);
	run_handshake(&x, &cm, &sm);
	ck_assert_int_eq(x.s.rc, MGROK_HS_DONE);
	ck_assert_int_eq(x.c.rc, MGROK_HS_ERROR);
	ck_assert_str_eq(x.c.hs.reason,
	                 "server proof invalid (the server does not know this user's token)");
	hs_pair_free(&x);
	unload(&cm);
	unload(&sm);
}
END_TEST

/* A server that says OK without a challenge has proved nothing. */
START_TEST(hs_ok_without_challenge)
{
	static const uint8_t reply[3 + 32] = {0x00, 0x00, 0x20};
	struct method cm;
	struct mgrok_hs c;
	struct mgrok_buf out = {0};
	size_t used;

	client_load(&cm, "alice", ALICE);
	ck_assert_int_eq(mgrok_hs_client_start(&c, &cm.m, &out), MGROK_HS_MORE);
	ck_assert_int_eq(mgrok_hs_client_feed(&c, reply, sizeof(reply), &used, &out),
	                 MGROK_HS_ERROR);
	assert_mentions(c.reason, "server proof invalid");
	mgrok_hs_end(&c);
	mgrok_buf_free(&out);
	unload(&cm);
}
END_TEST

/* The bytes on the wire, with both proofs recomputed here. */
START_TEST(hs_wire_format)
{
	struct method sm, cm;
	struct mgrok_hs c, s;
	struct mgrok_buf c2s = {0}, s2c = {0};
	uint8_t cnonce[16], snonce[16], mac[32];
	size_t used;

	server_standard(&sm);
	client_load(&cm, "alice", ALICE);
	mgrok_hs_server_init(&s);

	/* GRT1 | 0x02 | str16(str8("alice") || cnonce) */
	ck_assert_int_eq(mgrok_hs_client_start(&c, &cm.m, &c2s), MGROK_HS_MORE);
	ck_assert_uint_eq(c2s.len, 7 + 1 + 5 + 16);
	ck_assert_mem_eq(mgrok_buf_head(&c2s),
	                 "GRT1\x02\x00\x16\x05"
	                 "alice",
	                 13);
	memcpy(cnonce, mgrok_buf_head(&c2s) + 13, 16);
	ck_assert_int_eq(
	        mgrok_hs_server_feed(&s, mgrok_buf_head(&c2s), c2s.len, &used, &s2c, find, &sm.m),
	        MGROK_HS_MORE);
	ck_assert_uint_eq(used, c2s.len);
	mgrok_buf_consume(&c2s, used);

	/* CHALLENGE | str16(snonce) */
	ck_assert_uint_eq(s2c.len, 3 + 16);
	ck_assert_mem_eq(mgrok_buf_head(&s2c), "\x01\x00\x10", 3);
	memcpy(snonce, mgrok_buf_head(&s2c) + 3, 16);
	ck_assert_int_ne(memcmp(cnonce, snonce, 16), 0);
	ck_assert_int_eq(mgrok_hs_client_feed(&c, mgrok_buf_head(&s2c), s2c.len, &used, &c2s),
	                 MGROK_HS_MORE);
	mgrok_buf_consume(&s2c, used);

	/* str16(HMAC(token, "mgrok-users-v1 client" || user || cnonce || snonce)) */
	ck_assert_uint_eq(c2s.len, 2 + 32);
	ck_assert_mem_eq(mgrok_buf_head(&c2s), "\x00\x20", 2);
	spec_mac(ALICE, "mgrok-users-v1 client", "alice", 5, cnonce, 16, snonce, 16, mac);
	ck_assert_mem_eq(mgrok_buf_head(&c2s) + 2, mac, 32);
	ck_assert_int_eq(
	        mgrok_hs_server_feed(&s, mgrok_buf_head(&c2s), c2s.len, &used, &s2c, find, &sm.m),
	        MGROK_HS_DONE);

	/* OK | str16(HMAC(token, "mgrok-users-v1 server" || snonce || cnonce || user)) */
	ck_assert_uint_eq(s2c.len, 3 + 32);
	ck_assert_mem_eq(mgrok_buf_head(&s2c), "\x00\x00\x20", 3);
	spec_mac(ALICE, "mgrok-users-v1 server", snonce, 16, cnonce, 16, "alice", 5, mac);
	ck_assert_mem_eq(mgrok_buf_head(&s2c) + 3, mac, 32);
	ck_assert_int_eq(mgrok_hs_client_feed(&c, mgrok_buf_head(&s2c), s2c.len, &used, &c2s),
	                 MGROK_HS_DONE);
	ck_assert_str_eq(s.identity, "alice");

	mgrok_hs_end(&c);
	mgrok_hs_end(&s);
	mgrok_buf_free(&c2s);
	mgrok_buf_free(&s2c);
	unload(&cm);
	unload(&sm);
}
END_TEST

/* The user name is bound in: alice's proof does not log bob in. */
START_TEST(hs_name_bound)
{
	struct method sm;
	char text[1024], id[MGROK_IDENTITY_MAX + 1];

	snprintf(text, sizeof(text),
	         "{\"users\": {\"alice\": {\"token\": \"%s\"}, "
	         "\"bob\": {\"token\": \"%s\"}}}",
	         ALICE, ALICE);
	server_load(&sm, text); /* the same token for both */
	ck_assert_int_eq(login(&sm, "bob", ALICE, id), MGROK_HS_DONE);
	ck_assert_str_eq(id, "bob");

	/* A captured answer for alice, replayed under the name bob: refused. */
	uint8_t first[7 + 1 + 3 + 16] = "GRT1\x02\x00\x14\x03"
	                                "bob";
	uint8_t cnonce[16] = {1, 2, 3}, snonce[16], answer[2 + 32] = {0x00, 0x20};
	struct mgrok_hs s;
	struct mgrok_buf out = {0};
	size_t used;
	memcpy(first + 11, cnonce, 16);
	mgrok_hs_server_init(&s);
	ck_assert_int_eq(mgrok_hs_server_feed(&s, first, sizeof(first), &used, &out, find, &sm.m),
	                 MGROK_HS_MORE);
	ck_assert_uint_eq(out.len, 19);
	memcpy(snonce, mgrok_buf_head(&out) + 3, 16);
	spec_mac(ALICE, "mgrok-users-v1 client", "alice", 5, cnonce, 16, snonce, 16, answer + 2);
	ck_assert_int_eq(mgrok_hs_server_feed(&s, answer, sizeof(answer), &used, &out, find, &sm.m),
	                 MGROK_HS_DENIED);
	ck_assert_str_eq(s.reason, "authentication failed");
	mgrok_hs_end(&s);
	mgrok_buf_free(&out);
	unload(&sm);
}
END_TEST

START_TEST(hs_malformed)
{
	static const struct {
		const char *what;
		const char *bytes;
		size_t len;
	} bad[] = {
	        {"empty", "", 0},
	        {"no name",
	         "\x00"
	         "0123456789abcdef",
	         17},
	        {"name too long",
	         "\x41"
	         "0123456789abcdef",
	         17},
	        {"short nonce",
	         "\x05"
	         "alice"
	         "0123456789abcde",
	         21},
	        {"long nonce",
	         "\x05"
	         "alice"
	         "0123456789abcdefg",
	         23},
	        {"bad name char",
	         "\x05"
	         "al ce"
	         "0123456789abcdef",
	         22},
	        {"NUL in name",
	         "\x05"
	         "al\0ce"
	         "0123456789abcdef",
	         22},
	};
	struct method sm;

	server_standard(&sm);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct mgrok_hs s;
		struct mgrok_buf in = {0}, out = {0};
		size_t used;
		mgrok_buf_append(&in, "GRT1\x02", 5);
		mgrok_buf_put16(&in, (uint16_t)bad[i].len);
		mgrok_buf_append(&in, bad[i].bytes, bad[i].len);
		mgrok_hs_server_init(&s);
		int rc = mgrok_hs_server_feed(&s, mgrok_buf_head(&in), in.len, &used, &out, find,
		                              &sm.m);
		ck_assert_msg(rc == MGROK_HS_DENIED, "%s: %d", bad[i].what, rc);
		ck_assert_str_eq(s.reason, "malformed users handshake");
		ck_assert_uint_eq(mgrok_buf_head(&out)[0], 0x02);
		mgrok_hs_end(&s);

		/* A well-formed start, then an answer of the wrong length. */
		if (i == 0) {
			mgrok_buf_consume(&in, in.len);
			mgrok_buf_consume(&out, out.len);
			mgrok_buf_append(&in,
			                 "GRT1\x02\x00\x16\x05"
			                 "alice"
			                 "0123456789abcdef",
			                 29);
			mgrok_buf_append(&in,
			                 "\x00\x1f"
			                 "0123456789abcdef0123456789abcde",
			                 33);
			mgrok_hs_server_init(&s);
			ck_assert_int_eq(mgrok_hs_server_feed(&s, mgrok_buf_head(&in), in.len,
			                                      &used, &out, find, &sm.m),
			                 MGROK_HS_DENIED);
			ck_assert_str_eq(s.reason, "malformed users handshake");
			mgrok_hs_end(&s);
		}
		mgrok_buf_free(&in);
		mgrok_buf_free(&out);
	}
	unload(&sm);
}
END_TEST

/* The user's token is copied at the challenge: a reload mid-handshake frees
 * nothing the handshake uses, and the token it started with still counts. */
START_TEST(hs_reload_midway)
{
	struct method sm, cm;
	struct mgrok_hs c, s;
	struct mgrok_buf c2s = {0}, s2c = {0};
	char err[512];
	size_t used;

	server_standard(&sm);
	client_load(&cm, "alice", ALICE);
	mgrok_hs_server_init(&s);
	ck_assert_int_eq(mgrok_hs_client_start(&c, &cm.m, &c2s), MGROK_HS_MORE);
	ck_assert_int_eq(
	        mgrok_hs_server_feed(&s, mgrok_buf_head(&c2s), c2s.len, &used, &s2c, find, &sm.m),
	        MGROK_HS_MORE);
	mgrok_buf_consume(&c2s, used);
	write_file("users.json", "{\"users\": {\"alice\": {\"token\": \"" ALICE2 "\"}}}");
	ck_assert_msg(sm.desc->auth->reload(sm.m.inst, err, sizeof(err)) == 0, "%s", err);
	ck_assert_int_eq(mgrok_hs_client_feed(&c, mgrok_buf_head(&s2c), s2c.len, &used, &c2s),
	                 MGROK_HS_MORE);
	mgrok_buf_consume(&s2c, used);
	ck_assert_int_eq(
	        mgrok_hs_server_feed(&s, mgrok_buf_head(&c2s), c2s.len, &used, &s2c, find, &sm.m),
	        MGROK_HS_DONE);
	ck_assert_int_eq(mgrok_hs_client_feed(&c, mgrok_buf_head(&s2c), s2c.len, &used, &c2s),
	                 MGROK_HS_DONE);
	mgrok_hs_end(&c);
	mgrok_hs_end(&s);
	mgrok_buf_free(&c2s);
	mgrok_buf_free(&s2c);
	unload(&cm);
	unload(&sm);
}
END_TEST

/* ---- options and the users file -------------------------------------------- */

/* Every refused users file: init fails naming the file and the cause. */
START_TEST(file_errors)
{
	static const struct {
		const char *text;
		const char *want1, *want2;
	} bad[] = {
	        {"{\"users\": {\n \"alice\": {\n  \"token\" \"" ALICE "\"}}}", ":3:", "expected"},
	        {"{\"users\": {\"alice\": {\"token\": \"" ALICE "\",}}}", ":1:", "users.json"},
	        {"{\"users\": {\"alice\": {\"token\": \"" ALICE "\", \"tokn\": \"" BOB "\"}}}",
	         "user \"alice\"", "unknown key \"tokn\""},
	        {"{\"users\": {\"alice\": {\"ports\": [20000]}}}", "user \"alice\"",
	         "no \"token\""},
	        {"{\"users\": {\"alice\": {\"token\": \"" ALICE "\", \"token_file\": \"/x\"}}}",
	         "user \"alice\"", "exactly one of \"token\" or \"token_file\""},
	        {"{\"users\": {\"alice\": {\"token\": \"" ALICE
	         "\", \"ports\": [\"20010-20000\"]}}}",
	         "user \"alice\"", "\"ports\" entry 1"},
	        {"{\"users\": {\"alice\": {\"token\": \"" ALICE "\", \"ports\": [1, 0]}}}", "alice",
	         "\"ports\" entry 2"},
	        {"{\"users\": {\"alice\": {\"token\": \"" ALICE "\", \"ports\": [65536]}}}",
	         "alice", "\"ports\" entry 1"},
	        {"{\"users\": {\"alice\": {\"token\": \"" ALICE "\", \"ports\": [\"1-\"]}}}",
	         "alice", "\"ports\" entry 1"},
	        {"{\"users\": {\"alice\": {\"token\": \"" ALICE "\", \"ports\": [\"1-70000\"]}}}",
	         "alice", "\"ports\" entry 1"},
	        {"{\"users\": {\"alice\": {\"token\": \"" ALICE "\", \"ports\": [\" 5\"]}}}",
	         "alice", "\"ports\" entry 1"},
	        {"{\"users\": {\"alice\": {\"token\": \"" ALICE "\", \"ports\": []}}}", "alice",
	         "\"ports\""},
	        {"{\"users\": {\"alice\": {\"token\": \"" ALICE "\", \"ports\": 20000}}}", "alice",
	         "\"ports\""},
	        {"{\"users\": {\"bad name\": {\"token\": \"" ALICE "\"}}}", "user \"bad name\"",
	         "invalid name"},
	        {"{\"users\": {\"\": {\"token\": \"" ALICE "\"}}}", "user \"\"", "invalid name"},
	        {"{\"users\": {\"a\\u001b[2J\": {\"token\": \"" ALICE "\"}}}", "user \"a?[2J\"",
	         "invalid name"},
	        {"{\"users\": "
	         "{\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\": "
	         "{\"token\": \"" ALICE "\"}}}",
	         "invalid name", "users.json"},
	        {"{\"users\": {\"alice\": {\"token\": \"" ALICE "\", \"max_proxies\": 0}}}",
	         "alice", "\"max_proxies\" must be an integer"},
	        {"{\"users\": {\"alice\": {\"token\": \"" ALICE "\", \"max_streams\": \"9\"}}}",
	         "alice", "\"max_streams\" must be an integer"},
	        {"{\"users\": {\"alice\": {\"token\": \"" ALICE "\", \"types\": []}}}", "alice",
	         "\"types\""},
	        {"{\"users\": {\"alice\": {\"token\": \"" ALICE "\", \"types\": [\"tcp\", 1]}}}",
	         "alice", "\"types\""},
	        {"{\"users\": {\"alice\": {\"token\": \"\"}}}", "alice", "non-empty"},
	        {"{\"users\": {\"alice\": {\"token\": 5}}}", "alice", "non-empty string"},
	        {"{\"users\": {\"alice\": {\"token_file\": \"/nonexistent/t\"}}}", "alice",
	         "/nonexistent/t"},
	        {"{\"users\": {\"alice\": {\"token\": \"" ALICE "\"}, \"alice\": {}}}", "duplicate",
	         ":1:"},
	        {"{\"users\": {\"alice\": \"" ALICE "\"}}", "alice", "must be a JSON object"},
	        {"{\"users\": {}}", "at least one user", "users.json"},
	        {"{\"users\": {\"alice\": {\"token\": \"" ALICE "\"}}, \"x\": 1}", "nothing else",
	         "users.json"},
	        {"[\"" ALICE "\"]", "expected {\"users\"", "users.json"},
	        {"", ":1:", "users.json"},
	        {"{\"users\": {\"alice\": {\"token\": \"" ALICE "\",\n \"max_streams\": "
	         "123456789012345678901234}}}",
	         ":2:", "users.alice.max_streams: integer too large"},
	        {"{\"users\": {\"alice\": {\"token\": \"" ALICE "\", \"ports\": [20000, "
	         "-99999999999999999999]}}}",
	         ":1:", "users.alice.ports: integer too large"},
	};
	struct method x;
	char err[1024], conf[1024];

	snprintf(conf, sizeof(conf), "{\"file\": \"%s/users.json\"}", scratch);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		write_file("users.json", bad[i].text);
		ck_assert_msg(method_load(&x, conf, err, sizeof(err)) == -1, "accepted: %s",
		              bad[i].text);
		assert_mentions(err, "auth users: ");
		assert_mentions(err, "/users.json");
		assert_mentions(err, bad[i].want1);
		assert_mentions(err, bad[i].want2);
		assert_secret_free(err);
	}
	/* No file at all. */
	unlink(write_file("users.json", ""));
	ck_assert_int_eq(method_load(&x, conf, err, sizeof(err)), -1);
	assert_mentions(err, "/users.json");
	/* A directory where the file should be says so. */
	char dir[sizeof(scratch) + 16];
	snprintf(dir, sizeof(dir), "%s/users.json", scratch);
	ck_assert_int_eq(mkdir(dir, 0700), 0);
	ck_assert_int_eq(method_load(&x, conf, err, sizeof(err)), -1);
	assert_mentions(err, "/users.json\" is a directory");
	ck_assert_int_eq(rmdir(dir), 0);
	assert_secret_free(test_host_log);
}
END_TEST

START_TEST(option_errors)
{
	static const struct {
		const char *conf;
		const char *want;
	} bad[] = {
	        {"[]", "JSON object"},
	        {"{}", "\"file\""},
	        {"{\"colour\": 1}", "unknown option \"colour\""},
	        {"{\"file\": \"/x\", \"user\": \"alice\"}", "only \"file\""},
	        {"{\"file\": \"\"}", "non-empty"},
	        {"{\"file\": 5}", "non-empty string"},
	        {"{\"user\": \"alice\"}", "no token"},
	        {"{\"token\": \"" ALICE "\"}", "\"user\""},
	        {"{\"user\": \"al ice\", \"token\": \"" ALICE "\"}", "\"user\""},
	        {"{\"user\": \"alice\", \"token\": \"" ALICE "\", \"token_env\": \"X\"}",
	         "both given"},
	        {"{\"user\": \"alice\", \"token\": \"" ALICE "\", \"tokn\": \"" BOB "\"}",
	         "unknown option \"tokn\""},
	        {"{\"user\": \"alice\", \"token_env\": \"MGROK_TEST_NO_SUCH_VAR\"}", "token_env"},
	        {"{\"user\": \"alice\", \"token_file\": \"/nonexistent/t\"}", "/nonexistent/t"},
	        {"{\"file\": \"/nonexistent/users.json\"}", "/nonexistent/users.json"},
	};
	struct method x;
	char err[1024];

	unsetenv("MGROK_TEST_NO_SUCH_VAR");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_msg(method_load(&x, bad[i].conf, err, sizeof(err)) == -1, "accepted: %s",
		              bad[i].conf);
		assert_mentions(err, "auth users: ");
		assert_mentions(err, bad[i].want);
		assert_secret_free(err);
	}
}
END_TEST

/* Client tokens from a file and from the environment. */
START_TEST(client_token_sources)
{
	struct method sm, cm;
	struct hs_pair x = {0};
	char conf[1024];

	server_standard(&sm);
	snprintf(conf, sizeof(conf), "{\"user\": \"alice\", \"token_file\": \"%s\"}",
	         write_file("alice.token", ALICE "\r\n"));
	must_load(&cm, conf);
	run_handshake(&x, &cm, &sm);
	ck_assert_msg(x.s.rc == MGROK_HS_DONE, "token_file: %s", x.s.hs.reason);
	hs_pair_free(&x);
	unload(&cm);

	memset(&x, 0, sizeof(x));
	setenv("MGROK_TEST_USERS_TOKEN", ALICE, 1);
	must_load(&cm, "{\"user\": \"alice\", \"token_env\": \"MGROK_TEST_USERS_TOKEN\"}");
	unsetenv("MGROK_TEST_USERS_TOKEN");
	run_handshake(&x, &cm, &sm);
	ck_assert_msg(x.s.rc == MGROK_HS_DONE, "token_env: %s", x.s.hs.reason);
	ck_assert_int_eq(x.c.rc, MGROK_HS_DONE);
	hs_pair_free(&x);
	unload(&cm);
	unload(&sm);
}
END_TEST

/* A users file others can read is accepted, with a warning (no token in it). */
START_TEST(file_mode_warning)
{
	struct method sm;
	char conf[1024];
	const char *path =
	        write_file("users.json", "{\"users\": {\"alice\": {\"token\": \"" ALICE "\"}}}");
	ck_assert_int_eq(chmod(path, 0644), 0);
	snprintf(conf, sizeof(conf), "{\"file\": \"%s\"}", path);
	test_host_log[0] = '\0';
	must_load(&sm, conf);
	assert_mentions(test_host_log, "chmod 600");
	assert_secret_free(test_host_log);
	unload(&sm);
}
END_TEST

/* ---- authorization ---------------------------------------------------------- */

static int authz(struct method *sm, const char *who, const char *type, uint16_t port,
                 unsigned proxies, char *reason)
{
	struct mgrok_authz a = {.identity = who,
	                        .name = "p1",
	                        .type = type,
	                        .remote_port = port,
	                        .proxies = proxies};
	reason[0] = '\0';
	return sm->desc->auth->authorize(sm->m.inst, &a, reason, 256);
}

/* A host name for a proxy routed by name (ABI 1.4), in domain. */
static int authz_name(struct method *sm, const char *who, const char *hostname, char *reason)
{
	struct mgrok_authz a = {.identity = who,
	                        .name = "p1",
	                        .type = "http",
	                        .hostname = hostname,
	                        .domain = "tunnel.example.com"};
	reason[0] = '\0';
	return sm->desc->auth->authorize(sm->m.inst, &a, reason, 256);
}

/* "domains": exact names and *.suffix; without it, one-label subdomains of
 * the server's domain only, as with a shared token. */
START_TEST(authorize_names)
{
	struct method sm;
	char r[256];
	server_load(&sm, "{\"users\": {\n"
	                 "  \"alice\": {\"token\": \"" ALICE "\",\n"
	                 "             \"domains\": [\"www.example.org\", \"*.alice.example\"]},\n"
	                 "  \"bob\": {\"token\": \"" BOB "\"}\n"
	                 "}}\n");
	ck_assert_int_eq(authz_name(&sm, "alice", "www.example.org", r), MGROK_AUTHZ_OK);
	ck_assert_int_eq(authz_name(&sm, "alice", "WWW.Example.ORG", r), MGROK_AUTHZ_OK);
	ck_assert_int_eq(authz_name(&sm, "alice", "a.alice.example", r), MGROK_AUTHZ_OK);
	ck_assert_int_eq(authz_name(&sm, "alice", "a.b.alice.example", r), MGROK_AUTHZ_OK);
	ck_assert_int_eq(authz_name(&sm, "alice", "alice.example", r), MGROK_AUTHZ_FORBIDDEN);
	ck_assert_int_eq(authz_name(&sm, "alice", "xalice.example", r), MGROK_AUTHZ_FORBIDDEN);
	ck_assert_msg(strstr(r, "alice") && strstr(r, "xalice.example"), "reason: %s", r);
	/* Rules of her own replace the default: not even the server's subdomains. */
	ck_assert_int_eq(authz_name(&sm, "alice", "app.tunnel.example.com", r),
	                 MGROK_AUTHZ_FORBIDDEN);
	ck_assert_int_eq(authz_name(&sm, "bob", "app.tunnel.example.com", r), MGROK_AUTHZ_OK);
	ck_assert_int_eq(authz_name(&sm, "bob", "a.b.tunnel.example.com", r),
	                 MGROK_AUTHZ_FORBIDDEN);
	ck_assert_int_eq(authz_name(&sm, "bob", "tunnel.example.com", r), MGROK_AUTHZ_FORBIDDEN);
	ck_assert_int_eq(authz_name(&sm, "bob", "www.example.org", r), MGROK_AUTHZ_FORBIDDEN);
	unload(&sm);
}
END_TEST

START_TEST(domains_refused)
{
	static const char *const bad[] = {
	        "[]", "\"x\"", "[\"\"]", "[\"*\"]", "[\"*x.example\"]", "[\"a.*.example\"]", "[1]"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		char text[512];
		snprintf(text, sizeof(text),
		         "{\"users\": {\"alice\": {\"token\": \"" ALICE "\", \"domains\": %s}}}",
		         bad[i]);
		ck_assert_msg(server_load_fails(text), "domains %s accepted", bad[i]);
	}
}
END_TEST

START_TEST(authorize_rules)
{
	struct method sm;
	char r[256];

	server_standard(&sm);
	/* types: alice only tcp; bob anything */
	ck_assert_int_eq(authz(&sm, "alice", "tcp", 0, 0, r), MGROK_AUTHZ_OK);
	ck_assert_int_eq(authz(&sm, "alice", "udp", 0, 0, r), MGROK_AUTHZ_FORBIDDEN);
	ck_assert_str_eq(r, "user alice may not register udp proxies");
	ck_assert_int_eq(authz(&sm, "bob", "udp", 0, 0, r), MGROK_AUTHZ_OK);
	ck_assert_int_eq(authz(&sm, "bob", "anything", 0, 0, r), MGROK_AUTHZ_OK);

	/* max_proxies 4: the 4th is fine, a 5th is over */
	ck_assert_int_eq(authz(&sm, "alice", "tcp", 0, 3, r), MGROK_AUTHZ_OK);
	ck_assert_int_eq(authz(&sm, "alice", "tcp", 0, 4, r), MGROK_AUTHZ_LIMIT);
	ck_assert_str_eq(r, "user alice may have at most 4 proxies");
	ck_assert_int_eq(authz(&sm, "bob", "tcp", 0, 100000, r), MGROK_AUTHZ_OK);

	/* ports: 20000-20010 and 20080 */
	static const uint16_t ok[] = {20000, 20005, 20010, 20080};
	static const uint16_t no[] = {1, 19999, 20011, 20079, 20081, 21000, 65535};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		ck_assert_msg(authz(&sm, "alice", "tcp", ok[i], 0, r) == MGROK_AUTHZ_OK, "%u: %s",
		              ok[i], r);
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		ck_assert_msg(authz(&sm, "alice", "tcp", no[i], 0, r) ==
		                      MGROK_AUTHZ_PORT_NOT_ALLOWED,
		              "%u allowed", no[i]);
	ck_assert_int_eq(authz(&sm, "alice", "tcp", 21000, 0, r), MGROK_AUTHZ_PORT_NOT_ALLOWED);
	ck_assert_str_eq(r, "user alice may not use port 21000");
	/* no "ports": whatever the server allows */
	ck_assert_int_eq(authz(&sm, "bob", "tcp", 21000, 0, r), MGROK_AUTHZ_OK);
	ck_assert_int_eq(authz(&sm, "bob", "tcp", 1, 0, r), MGROK_AUTHZ_OK);

	/* an identity the file does not hold */
	ck_assert_int_eq(authz(&sm, "mallory", "tcp", 0, 0, r), MGROK_AUTHZ_FORBIDDEN);
	ck_assert_str_eq(r, "user mallory no longer exists");
	ck_assert_int_eq(authz(&sm, "mallory", "tcp", 20000, 0, r), MGROK_AUTHZ_FORBIDDEN);
	unload(&sm);
}
END_TEST

START_TEST(max_streams)
{
	struct method sm;
	server_standard(&sm);
	ck_assert_uint_eq(sm.desc->auth->max_streams(sm.m.inst, "alice"), 100);
	ck_assert_uint_eq(sm.desc->auth->max_streams(sm.m.inst, "bob"), 0);
	ck_assert_uint_eq(sm.desc->auth->max_streams(sm.m.inst, "mallory"), 0);
	unload(&sm);
}
END_TEST

/* ---- reload ------------------------------------------------------------------ */

START_TEST(reload_changes)
{
	struct method sm;
	char err[1024], r[256], id[MGROK_IDENTITY_MAX + 1];

	server_standard(&sm);
	ck_assert_int_eq(login(&sm, "alice", ALICE, NULL), MGROK_HS_DONE);
	ck_assert_int_eq(login(&sm, "bob", BOB, NULL), MGROK_HS_DONE);
	ck_assert_int_eq(login(&sm, "carol", CAROL, NULL), MGROK_HS_DENIED);

	/* alice gets a new token and loses her limits, bob goes, carol comes. */
	write_file("users.json", "{\"users\": {\"alice\": {\"token\": \"" ALICE2 "\"},\n"
	                         "\"carol\": {\"token\": \"" CAROL "\", \"max_streams\": 7}}}");
	ck_assert_msg(sm.desc->auth->reload(sm.m.inst, err, sizeof(err)) == 0, "reload: %s", err);
	ck_assert_int_eq(login(&sm, "alice", ALICE2, id), MGROK_HS_DONE);
	ck_assert_str_eq(id, "alice");
	ck_assert_int_eq(login(&sm, "alice", ALICE, NULL), MGROK_HS_DENIED);
	ck_assert_int_eq(login(&sm, "carol", CAROL, id), MGROK_HS_DONE);
	ck_assert_str_eq(id, "carol");
	ck_assert_int_eq(login(&sm, "bob", BOB, NULL), MGROK_HS_DENIED);
	ck_assert_int_eq(authz(&sm, "bob", "tcp", 0, 0, r), MGROK_AUTHZ_FORBIDDEN);
	ck_assert_str_eq(r, "user bob no longer exists");
	ck_assert_int_eq(authz(&sm, "alice", "udp", 0, 50, r), MGROK_AUTHZ_OK);
	ck_assert_int_eq(authz(&sm, "alice", "udp", 30000, 0, r), MGROK_AUTHZ_OK);
	ck_assert_uint_eq(sm.desc->auth->max_streams(sm.m.inst, "alice"), 0);
	ck_assert_uint_eq(sm.desc->auth->max_streams(sm.m.inst, "carol"), 7);

	/* A broken file: -1 with the reason, and the users stay as they were. */
	write_file("users.json", "{\"users\": {\"alice\": {\"token\": \"" ALICE "\", \"x\": 1}}}");
	ck_assert_int_eq(sm.desc->auth->reload(sm.m.inst, err, sizeof(err)), -1);
	assert_mentions(err, "auth users: ");
	assert_mentions(err, "users.json");
	assert_mentions(err, "\"x\"");
	assert_secret_free(err);
	write_file("users.json", "{\"users\": {\"alice\": {\"token\": \"" ALICE "\",}}}");
	ck_assert_int_eq(sm.desc->auth->reload(sm.m.inst, err, sizeof(err)), -1);
	assert_mentions(err, "users.json:1:");
	assert_secret_free(err);
	unlink(write_file("users.json", ""));
	ck_assert_int_eq(sm.desc->auth->reload(sm.m.inst, err, sizeof(err)), -1);
	assert_mentions(err, "users.json");

	ck_assert_int_eq(login(&sm, "alice", ALICE2, NULL), MGROK_HS_DONE);
	ck_assert_int_eq(login(&sm, "alice", ALICE, NULL), MGROK_HS_DENIED);
	ck_assert_int_eq(login(&sm, "carol", CAROL, NULL), MGROK_HS_DONE);
	ck_assert_uint_eq(sm.desc->auth->max_streams(sm.m.inst, "carol"), 7);
	unload(&sm);
}
END_TEST

/* A client instance has nothing to reload. */
START_TEST(reload_client)
{
	struct method cm;
	char err[256] = "";
	client_load(&cm, "alice", ALICE);
	ck_assert_int_eq(cm.desc->auth->reload(cm.m.inst, err, sizeof(err)), 0);
	unload(&cm);
}
END_TEST

/* ---- suite -------------------------------------------------------------------- */

static Suite *auth_users_suite(void)
{
	Suite *s = suite_create("auth_users");
	TCase *tc = tcase_create("handshake");
	tcase_add_loop_test(tc, hs_ok, 0, 2); /* whole, then one byte at a time */
	tcase_add_loop_test(tc, hs_wrong_token, 0, 2);
	tcase_add_loop_test(tc, hs_unknown_user, 0, 2);
	tcase_add_loop_test(tc, hs_bad_server_proof, 0, 2);
	tcase_add_test(tc, hs_ok_without_challenge);
	tcase_add_test(tc, hs_wire_format);
	tcase_add_test(tc, hs_name_bound);
	tcase_add_test(tc, hs_malformed);
	tcase_add_test(tc, hs_reload_midway);
	suite_add_tcase(s, tc);

	tc = tcase_create("options");
	tcase_add_test(tc, file_errors);
	tcase_add_test(tc, option_errors);
	tcase_add_test(tc, client_token_sources);
	tcase_add_test(tc, file_mode_warning);
	suite_add_tcase(s, tc);

	tc = tcase_create("authorize");
	tcase_add_test(tc, authorize_rules);
	tcase_add_test(tc, authorize_names);
	tcase_add_test(tc, domains_refused);
	tcase_add_test(tc, max_streams);
	suite_add_tcase(s, tc);

	tc = tcase_create("reload");
	tcase_add_test(tc, reload_changes);
	tcase_add_test(tc, reload_client);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	const char *base = getenv("TMPDIR");
	snprintf(scratch, sizeof(scratch), "%s/check_auth_users.XXXXXX",
	         base && *base ? base : "/tmp");
	if (!mkdtemp(scratch)) {
		perror("mkdtemp");
		return EXIT_FAILURE;
	}
	SRunner *sr = srunner_create(auth_users_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	nftw(scratch, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
