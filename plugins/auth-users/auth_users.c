/*
 * Auth method "users" (id 0x02): a token per named user, proved both ways
 * with HMAC-SHA256 as in "token" (PROTOCOL.md 2.2) with the user name bound
 * into both proofs, and per-user authorization (plugin ABI 1.1).
 *
 *   client -> str8(user) || cnonce (16)
 *   server -> CHALLENGE snonce (16), to unknown users too: names cannot be probed
 *   client -> HMAC(token, "mgrok-users-v1 client" || user || cnonce || snonce)
 *   server -> OK HMAC(token, "mgrok-users-v1 server" || snonce || cnonce || user)
 *
 * Server options: {"file": PATH}, the users file (see parse_user). Client
 * options: {"user": NAME} and one of "token", "token_file", "token_env".
 * No error text carries a token.
 */
#define _POSIX_C_SOURCE 200809L /* stat */
#include <ctype.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <openssl/crypto.h>

#include "mgrok/plugin.h"

#include "../auth-common/auth_secret.h"

#define NONCE_LEN MGROK_AUTH_NONCE_LEN
#define MAC_LEN MGROK_AUTH_MAC_LEN
#define NAME_MAX_LEN 64
#define USER_LEN_BYTES ((size_t)1) /* str8(user): its length byte */
_Static_assert(NAME_MAX_LEN <= MGROK_AUTH_NAME_MAX, "proofs bind the whole user name");
_Static_assert(NAME_MAX_LEN <= UINT8_MAX, "a user name fits str8");

static const char label_client[] = "mgrok-users-v1 client";
static const char label_server[] = "mgrok-users-v1 server";

struct user {
	char name[NAME_MAX_LEN + 1];
	struct mgrok_auth_secret token;
	uint16_t (*ports)[2]; /* inclusive ranges; NULL: any port the server allows */
	size_t nports;
	json_t *types;        /* a reference to the file's array; NULL: all types */
	json_t *domains;      /* host names it may claim (ABI 1.4); NULL: the server's subdomains */
	unsigned max_proxies; /* 0: no limit of the user's own */
	unsigned max_streams; /* 0: no limit of the user's own */
};

struct userdb {
	size_t n;
	struct user v[];
};

struct users {
	const struct mgrok_host *host;
	const struct mgrok_plugin *self;
	char *file;                     /* server */
	struct userdb *db;              /* server: replaced whole by reload */
	char user[NAME_MAX_LEN + 1];    /* client */
	struct mgrok_auth_secret token; /* client */
};

/* One handshake, either side. The server holds a copy of the user's token,
 * so a reload during the handshake frees nothing it uses. */
struct users_hs {
	uint8_t cnonce[NONCE_LEN];
	uint8_t snonce[NONCE_LEN];
	char user[NAME_MAX_LEN + 1];
	struct mgrok_auth_secret key; /* server: the user's token, or a random one */
	bool known;                   /* server: the user exists */
	bool challenged;              /* server: challenge sent; client: challenge answered */
};

/* A message into the caller's buffer; returns -1 to be returned on. */
__attribute__((format(printf, 3, 4))) static int fail(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, len, fmt, ap);
	va_end(ap);
	return -1;
}

static int deny(struct mgrok_auth_msg *m, const char *reason)
{
	snprintf(m->text, m->text_cap, "%s", reason);
	return MGROK_AUTH_DENIED;
}

static bool name_ok(const char *s)
{
	size_t n = strlen(s);
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && !strchr("._-", s[i]))
			return false;
	return n >= 1 && n <= NAME_MAX_LEN;
}

/* The client's proof or the server's (PROTOCOL.md 2.3), the user name bound in. */
static int proof(const struct mgrok_auth_secret *key, bool server, const struct users_hs *h,
                 uint8_t mac[MAC_LEN])
{
	return mgrok_auth_secret_proof(key, server ? label_server : label_client, server, h->user,
	                               h->cnonce, h->snonce, mac);
}

/* ---- the users file ------------------------------------------------------- */

static void db_free(const struct users *u, struct userdb *db)
{
	for (size_t i = 0; db && i < db->n; i++) {
		mgrok_auth_secret_free(u->host, &db->v[i].token);
		u->host->free(db->v[i].ports);
		json_decref(db->v[i].types);
		json_decref(db->v[i].domains);
	}
	u->host->free(db);
}

static const struct user *db_find(const struct userdb *db, const char *name)
{
	for (size_t i = 0; db && name && i < db->n; i++)
		if (strcmp(db->v[i].name, name) == 0)
			return &db->v[i];
	return NULL;
}

/* A port or an inclusive range: 20080, "20080" or "20000-20010", in 1..65535. */
static int parse_range(const json_t *v, uint16_t r[2])
{
	const char *s = json_string_value(v);
	json_int_t i = json_integer_value(v); /* 0 when v is no integer */
	unsigned long lo = i > 0 && i <= UINT16_MAX ? (unsigned long)i : 0, hi = lo;
	char *end = NULL;

	if (s && isdigit((unsigned char)s[0]))
		lo = hi = strtoul(s, &end, 10);
	if (end && *end == '-' && isdigit((unsigned char)end[1]))
		hi = strtoul(end + 1, &end, 10);
	if ((end && *end != '\0') || lo < 1 || hi > UINT16_MAX || lo > hi)
		return -1;
	r[0] = (uint16_t)lo;
	r[1] = (uint16_t)hi;
	return 0;
}

/* "domains": exact host names, or "*.suffix" for any name below suffix. */
static int parse_domains(json_t *v, struct user *usr, char *msg, size_t len)
{
	size_t i, n = json_array_size(v);
	for (i = 0; i < n; i++) {
		const char *d = json_string_value(json_array_get(v, i));
		if (!d || !*d || strlen(d) > 253 || strchr(d + (d[0] == '*'), '*') ||
		    (d[0] == '*' && d[1] != '.'))
			break;
	}
	if (!json_is_array(v) || n == 0 || i < n)
		return fail(msg, len,
		            "\"domains\" must be a non-empty array of host names or \"*.suffix\"");
	usr->domains = json_incref(v);
	return 0;
}

/*
 * One entry of "users": exactly one of "token" or "token_file" and optionally
 * "ports": [20080, "20000-20010"], "max_proxies": N, "max_streams": N,
 * "types": ["tcp", ...], "domains": ["www.example.org", "*.example.org"].
 * msg gets a reason without the file and user names.
 */
static int parse_user(const struct users *u, json_t *obj, struct user *usr, char *msg, size_t len)
{
	const char *key;
	json_t *v;
	size_t i;

	if (!json_is_object(obj))
		return fail(msg, len, "must be a JSON object");
	json_object_foreach(obj, key, v) {
		size_t n = json_array_size(v);
		json_int_t c = json_integer_value(v);
		if (strcmp(key, "token") == 0 || strcmp(key, "token_file") == 0) {
			const struct mgrok_auth_secret_option src = {key, v};
			if (usr->token.p)
				return fail(msg, len,
				            "give exactly one of \"token\" or \"token_file\"");
			if (json_string_length(v) == 0)
				return fail(msg, len, "\"%s\" must be a non-empty string", key);
			if (mgrok_auth_secret_load(u->host, u->self, &src, &usr->token, msg, len) <
			    0)
				return -1;
		} else if (strcmp(key, "ports") == 0) {
			if (n == 0)
				return fail(msg, len, "\"ports\" must be a non-empty array");
			usr->ports = u->host->alloc(n * sizeof(*usr->ports));
			for (usr->nports = n, i = 0; i < n; i++)
				if (parse_range(json_array_get(v, i), usr->ports[i]) < 0)
					return fail(msg, len,
					            "\"ports\" entry %zu is not a port (1-65535) "
					            "or a range \"LO-HI\"",
					            i + 1);
		} else if (strcmp(key, "max_proxies") == 0 || strcmp(key, "max_streams") == 0) {
			if (!json_is_integer(v) || c < 1 || c > UINT_MAX)
				return fail(msg, len, "\"%s\" must be an integer of at least 1",
				            key);
			if (strcmp(key, "max_proxies") == 0)
				usr->max_proxies = (unsigned)c;
			else
				usr->max_streams = (unsigned)c;
		} else if (strcmp(key, "domains") == 0) {
			if (parse_domains(v, usr, msg, len) < 0)
				return -1;
		} else if (strcmp(key, "types") == 0) {
			for (i = 0; i < n && json_string_length(json_array_get(v, i)) > 0; i++)
				;
			if (n == 0 || i < n)
				return fail(msg, len,
				            "\"types\" must be a non-empty array of type names");
			usr->types = json_incref(v);
		} else {
			return fail(msg, len,
			            "unknown key \"%.64s\" (expected token, token_file, "
			            "ports, max_proxies, max_streams, types or domains)",
			            key);
		}
	}
	return usr->token.p ? 0 : fail(msg, len, "no \"token\" or \"token_file\"");
}

/* An integer too large for jansson ends the parse before any key sees it.
 * Read as reals, the values keep their keys: name the first such one. */
static void big_integer_key(const char *file, char *key, size_t len)
{
	const char *name, *k;
	json_t *obj, *v;
	json_t *root = json_load_file(file, JSON_REJECT_DUPLICATES | JSON_DECODE_INT_AS_REAL, NULL);
	json_object_foreach(json_object_get(root, "users"), name, obj) {
		json_object_foreach(obj, k, v) {
			for (size_t i = 0; i < (json_is_array(v) ? json_array_size(v) : 1); i++) {
				json_t *e = json_is_array(v) ? json_array_get(v, i) : v;
				double d = json_real_value(e); /* 0 when e is no real */
				if (!key[0] &&
				    (d >= 9223372036854775807.0 || d <= -9223372036854775808.0)) {
					snprintf(key, len, "users.%.64s.%.32s", name, k);
					for (char *c = key; *c; c++) /* a name may hold anything */
						*c = isprint((unsigned char)*c) ? *c : '?';
				}
			}
		}
		/* This copy holds the tokens too: erase them before it is freed. */
		json_t *t = json_object_get(obj, "token");
		if (json_is_string(t))
			OPENSSL_cleanse((char *)json_string_value(t), json_string_length(t));
	}
	json_decref(root);
}

/* Why jansson could not load the users file. jansson quotes the text near
 * the error, which may be a token: that is cut, and je wiped. */
static int load_error(const struct users *u, json_error_t *je, char *err, size_t errlen)
{
	static const char too_big[] = "too big ";
	char *near = strstr(je->text, " near ");
	char key[160] = "";

	if (near)
		*near = '\0';
	if (strncmp(je->text, too_big, sizeof(too_big) - 1) == 0 && strstr(je->text, "integer"))
		big_integer_key(u->file, key, sizeof(key));
	if (je->line < 1) /* the file could not be read: the text names it */
		fail(err, errlen, "users file: %s", je->text);
	else
		fail(err, errlen, "%s:%d:%d: %s%s%s", u->file, je->line, je->column, key,
		     key[0] ? ": " : "", key[0] ? "integer too large" : je->text);
	u->host->wipe(je, sizeof(*je));
	return -1;
}

/*
 * Reads the users file into a new db: {"users": {NAME: {...}, ...}}. The
 * tokens in jansson's copy are erased in place (its own heap strings, hence
 * the cast) before it is freed.
 */
static int db_load(const struct users *u, struct userdb **out, char *err, size_t errlen)
{
	json_error_t je;
	struct stat st;
	const char *name;
	json_t *obj;
	char msg[512];
	int rc = 0;

	err[0] = '\0';
	/* jansson reads a directory as an empty file: say what it is. */
	if (stat(u->file, &st) == 0 && S_ISDIR(st.st_mode))
		return fail(err, errlen, "users file \"%s\" is a directory", u->file);
	json_t *root = json_load_file(u->file, JSON_REJECT_DUPLICATES, &je);
	if (!root)
		return load_error(u, &je, err, errlen);
	if (stat(u->file, &st) == 0 && (st.st_mode & (S_IRWXG | S_IRWXO)))
		u->host->log(u->self, MGROK_LOG_WARN,
		             "users file \"%s\" can be read by other users (chmod 600 it)",
		             u->file);
	json_t *users = json_object_get(root, "users");
	size_t size = sizeof(struct userdb) + json_object_size(users) * sizeof(struct user);
	struct userdb *db = memset(u->host->alloc(size), 0, size);
	if (!json_is_object(users) || json_object_size(root) != 1 || json_object_size(users) == 0)
		rc = fail(err, errlen,
		          "%s: expected {\"users\": {NAME: {...}, ...}} with at least "
		          "one user and nothing else",
		          u->file);
	json_object_foreach(users, name, obj) {
		struct user *usr = &db->v[db->n++];
		json_t *t = json_object_get(obj, "token");
		snprintf(usr->name, sizeof(usr->name), "%s", name);
		if (rc == 0 && !name_ok(name))
			rc = fail(msg, sizeof(msg),
			          "invalid name (1-64 characters of A-Z a-z 0-9 . _ -)");
		else if (rc == 0)
			rc = parse_user(u, obj, usr, msg, sizeof(msg));
		if (rc < 0 && !*err) {
			fail(err, errlen, "%s: user \"%.64s\": %s", u->file, name, msg);
			for (char *c = err; *c; c++) /* a bad name may hold anything */
				*c = isprint((unsigned char)*c) ? *c : '?';
		}
		if (json_is_string(t))
			u->host->wipe((char *)json_string_value(t), json_string_length(t));
	}
	json_decref(root);
	if (rc == 0)
		*out = db;
	else
		db_free(u, db);
	return rc;
}

/* ---- options, init, reload ------------------------------------------------ */

/* Server {"file"} or client {"user", one of "token" / "token_file" / "token_env"}. */
static int parse_options(struct users *u, const json_t *conf, char *err, size_t errlen)
{
	struct mgrok_auth_secret_option src = {0};
	const char *key, *var;
	json_t *v;

	if (!json_is_object(conf))
		return fail(err, errlen, "options must be a JSON object");
	json_object_foreach((json_t *)conf, key, v) {
		bool secret = mgrok_auth_secret_is_option(key);
		if (!secret && strcmp(key, "file") != 0 && strcmp(key, "user") != 0)
			return fail(err, errlen,
			            "unknown option \"%.64s\" (server: \"file\"; client: "
			            "\"user\" and a token)",
			            key);
		if (json_string_length(v) == 0)
			return fail(err, errlen, "\"%s\" must be a non-empty string", key);
		if (secret && mgrok_auth_secret_option_take(&src, key, v, err, errlen) < 0)
			return -1;
	}
	const char *file = json_string_value(json_object_get(conf, "file"));
	const char *user = json_string_value(json_object_get(conf, "user"));
	if (file && json_object_size(conf) != 1)
		return fail(err, errlen,
		            "the server takes only \"file\" (a users file); \"user\" "
		            "and tokens are client options");
	if (file) {
		u->file = memcpy(u->host->alloc(strlen(file) + 1), file, strlen(file) + 1);
		return db_load(u, &u->db, err, errlen);
	}
	if (!user || !name_ok(user))
		return fail(err, errlen,
		            "give \"file\" (server) or \"user\" (client: 1-64 "
		            "characters of A-Z a-z 0-9 . _ -) and a token");
	snprintf(u->user, sizeof(u->user), "%s", user);
	if (!src.key)
		return fail(err, errlen,
		            "no token; give \"token\", \"token_file\" or \"token_env\"");
	/* This plugin's own words for a token_env that gives nothing. */
	if (strcmp(src.key, "token_env") == 0 &&
	    (!(var = getenv(json_string_value(src.value))) || !*var))
		return fail(err, errlen, "the variable named in \"token_env\" is unset or empty");
	return mgrok_auth_secret_load(u->host, u->self, &src, &u->token, err, errlen);
}

static void users_fini(void *inst)
{
	struct users *u = inst;
	if (!u)
		return;
	db_free(u, u->db);
	mgrok_auth_secret_free(u->host, &u->token);
	u->host->free(u->file);
	u->host->free(u);
}

static int users_init(const struct mgrok_host *host, const struct mgrok_plugin *self,
                      const json_t *conf, void **inst, char *err, size_t errlen)
{
	struct users *u = memset(host->alloc(sizeof(*u)), 0, sizeof(*u));
	char msg[1024];

	u->host = host;
	u->self = self;
	if (parse_options(u, conf, msg, sizeof(msg)) < 0) {
		users_fini(u);
		return fail(err, errlen, "auth users: %s", msg);
	}
	*inst = u;
	return 0;
}

/* The new users replace the old only when the whole file is good. */
static int users_reload(void *inst, char *err, size_t errlen)
{
	struct users *u = inst;
	struct userdb *db = NULL;
	char msg[1024];

	if (!u->file)
		return 0; /* a client has nothing to read again */
	if (db_load(u, &db, msg, sizeof(msg)) < 0)
		return fail(err, errlen, "auth users: %s", msg);
	db_free(u, u->db);
	u->db = db;
	return 0;
}

/* ---- authorization -------------------------------------------------------- */

/* name matches rule: the same name, or below the suffix of "*.suffix". */
static bool domain_match(const char *name, const char *rule)
{
	size_t n = strlen(name), r = strlen(rule);
	if (rule[0] != '*')
		return strcasecmp(name, rule) == 0;
	return n > r - 1 && strcasecmp(name + n - (r - 1), rule + 1) == 0;
}

/* name is one label below domain ("app." + domain). */
static bool in_domain(const char *name, const char *domain)
{
	size_t n = strlen(name), d = domain ? strlen(domain) : 0;
	if (!d || n < d + 2 || name[n - d - 1] != '.' || strcasecmp(name + n - d, domain) != 0)
		return false;
	return memchr(name, '.', n - d - 1) == NULL;
}

/* Without rules of its own a user may have one-label subdomains of the
 * server's domain, as with a shared token. */
static int authorize_name(const struct user *usr, const struct mgrok_authz *a, char *reason,
                          size_t len)
{
	size_t i, n = json_array_size(usr->domains);
	for (i = 0; i < n; i++)
		if (domain_match(a->hostname, json_string_value(json_array_get(usr->domains, i))))
			return MGROK_AUTHZ_OK;
	if (!usr->domains && in_domain(a->hostname, a->domain))
		return MGROK_AUTHZ_OK;
	snprintf(reason, len, "user %s may not use the name %s", usr->name, a->hostname);
	return MGROK_AUTHZ_FORBIDDEN;
}

static int users_authorize(void *inst, const struct mgrok_authz *a, char *reason, size_t len)
{
	const struct users *u = inst;
	const struct user *usr = db_find(u->db, a->identity);
	size_t i, ntypes = json_array_size(usr ? usr->types : NULL);

	if (!usr) {
		snprintf(reason, len, "user %s no longer exists", a->identity ? a->identity : "?");
		return MGROK_AUTHZ_FORBIDDEN;
	}
	if (u->host->abi_minor >= 4 && a->hostname)
		return authorize_name(usr, a, reason, len);
	if (a->remote_port == 0) {
		for (i = 0; i < ntypes; i++)
			if (strcmp(json_string_value(json_array_get(usr->types, i)), a->type) == 0)
				break;
		if (usr->types && i == ntypes) {
			snprintf(reason, len, "user %s may not register %s proxies", usr->name,
			         a->type);
			return MGROK_AUTHZ_FORBIDDEN;
		}
		if (usr->max_proxies && a->proxies >= usr->max_proxies) {
			snprintf(reason, len, "user %s may have at most %u proxies", usr->name,
			         usr->max_proxies);
			return MGROK_AUTHZ_LIMIT;
		}
		return MGROK_AUTHZ_OK;
	}
	for (i = 0; i < usr->nports; i++)
		if (a->remote_port >= usr->ports[i][0] && a->remote_port <= usr->ports[i][1])
			return MGROK_AUTHZ_OK;
	if (!usr->ports)
		return MGROK_AUTHZ_OK;
	snprintf(reason, len, "user %s may not use port %u", usr->name, (unsigned)a->remote_port);
	return MGROK_AUTHZ_PORT_NOT_ALLOWED;
}

static unsigned users_max_streams(void *inst, const char *identity)
{
	const struct users *u = inst;
	const struct user *usr = db_find(u->db, identity);
	return usr ? usr->max_streams : 0;
}

/* ---- handshake ------------------------------------------------------------ */

static int users_client_start(void *inst, void **state, struct mgrok_auth_msg *m)
{
	struct users *u = inst;
	struct users_hs *h = memset(u->host->alloc(sizeof(*h)), 0, sizeof(*h));
	size_t n = strlen(u->user);

	*state = h;
	if (!u->token.p)
		return deny(m, "auth users: no client \"user\" configured");
	if (u->host->random(h->cnonce, NONCE_LEN) < 0)
		return deny(m, "random number generator failed");
	memcpy(h->user, u->user, n + 1);
	m->out[0] = (uint8_t)n;
	memcpy(m->out + USER_LEN_BYTES, u->user, n);
	memcpy(m->out + USER_LEN_BYTES + n, h->cnonce, NONCE_LEN);
	m->out_len = USER_LEN_BYTES + n + NONCE_LEN;
	return MGROK_AUTH_CONTINUE;
}

static int users_client_step(void *inst, void *state, int status, struct mgrok_auth_msg *m)
{
	struct users *u = inst;
	struct users_hs *h = state;
	uint8_t mac[MAC_LEN];
	int rc = MGROK_AUTH_OK;

	if (status == MGROK_HS_STATUS_CHALLENGE) {
		if (h->challenged || m->in_len != NONCE_LEN)
			return deny(m, "malformed users challenge from the server");
		memcpy(h->snonce, m->in, NONCE_LEN);
		h->challenged = true;
		m->out_len = MAC_LEN;
		return proof(&u->token, false, h, m->out) < 0 ? deny(m, "HMAC-SHA256 failed")
		                                              : MGROK_AUTH_CONTINUE;
	}
	/* OK counts only after our answer, and only with the server's own proof. */
	if (!h->challenged || m->in_len != MAC_LEN || proof(&u->token, true, h, mac) < 0 ||
	    CRYPTO_memcmp(mac, m->in, MAC_LEN) != 0)
		rc = deny(m, "server proof invalid (the server does not know this user's token)");
	u->host->wipe(mac, sizeof(mac));
	return rc;
}

/* Round 0: str8(user) || cnonce. An unknown user is challenged all the same
 * and checked against a random key, so that names cannot be probed. */
static int server_start(const struct users *u, struct users_hs *h, struct mgrok_auth_msg *m)
{
	size_t n = m->in_len ? m->in[0] : 0;
	uint8_t junk[MAC_LEN];

	if (n == 0 || n > NAME_MAX_LEN || m->in_len != USER_LEN_BYTES + n + NONCE_LEN)
		return deny(m, "malformed users handshake");
	memcpy(h->user, m->in + USER_LEN_BYTES, n);
	memcpy(h->cnonce, m->in + USER_LEN_BYTES + n, NONCE_LEN);
	if (strlen(h->user) != n || !name_ok(h->user))
		return deny(m, "malformed users handshake");
	const struct user *usr = db_find(u->db, h->user);
	if (u->host->random(h->snonce, NONCE_LEN) < 0 || u->host->random(junk, MAC_LEN) < 0)
		return deny(m, "server error");
	h->known = usr != NULL;
	mgrok_auth_secret_set(u->host, &h->key, usr ? usr->token.p : junk,
	                      usr ? usr->token.len : MAC_LEN);
	u->host->wipe(junk, MAC_LEN);
	h->challenged = true;
	memcpy(m->out, h->snonce, NONCE_LEN);
	m->out_len = NONCE_LEN;
	return MGROK_AUTH_CONTINUE;
}

static int users_server_step(void *inst, void **state, unsigned round, struct mgrok_auth_msg *m)
{
	struct users *u = inst;
	struct users_hs *h = *state;
	uint8_t mac[MAC_LEN];

	if (round == 0) {
		*state = h = memset(u->host->alloc(sizeof(*h)), 0, sizeof(*h));
		return server_start(u, h, m);
	}
	if (round != 1 || !h || !h->challenged || m->in_len != MAC_LEN)
		return deny(m, "malformed users handshake");
	int rc = proof(&h->key, false, h, mac);
	bool match = rc == 0 && CRYPTO_memcmp(mac, m->in, MAC_LEN) == 0 && h->known;
	u->host->wipe(mac, sizeof(mac));
	if (!match)
		return deny(m, rc == 0 ? "authentication failed" : "server error");
	if (proof(&h->key, true, h, m->out) < 0)
		return deny(m, "server error");
	m->out_len = MAC_LEN;
	snprintf(m->text, m->text_cap, "%s", h->user); /* the identity */
	return MGROK_AUTH_OK;
}

static void users_end(void *inst, void *state)
{
	struct users *u = inst;
	struct users_hs *h = state;
	if (!h)
		return;
	mgrok_auth_secret_free(u->host, &h->key);
	u->host->wipe(h, sizeof(*h));
	u->host->free(h);
}

static const struct mgrok_auth_ops ops = {
        .client_start = users_client_start,
        .client_step = users_client_step,
        .server_step = users_server_step,
        .end = users_end,
        .authorize = users_authorize,
        .max_streams = users_max_streams,
        .reload = users_reload,
};

MGROK_PLUGIN_DEFINE(.kind = MGROK_PLUGIN_AUTH, .name = "users", .wire_id = 0x02, .init = users_init,
                    .fini = users_fini, .auth = &ops)
