/*
 * Configuration files: JSON read by jansson, copied into typed structs.
 *
 * Each section is a table of its keys, each with the function that takes
 * that key's value into its field. conf_walk() visits an object's members in
 * file order, so the first error reported is the first in the file, and a
 * member no table names is an unknown key. A load writes straight into the
 * caller's struct, freeing what it replaces: after a failed load the struct
 * mixes old and new values, but every pointer in it is owned and valid, so
 * *_free is always safe.
 *
 * Errors never quote a value from the file (auth options carry secrets);
 * they name the key and its place in the file, which json_locate.c finds.
 */
#include "config.h"
#include "config_walk.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "codec.h"
#include "defaults.h"
#include "group.h"        /* MGROK_GROUP_KEY_MAX */
#include "log.h"          /* mgrok_log_format_parse */
#include "mgrok/plugin.h" /* enum mgrok_log_level */

/* ---- sections shared by both programs ---------------------------------- */

static void plugins_free(char **p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(p[i]);
	free(p);
}

static int parse_plugins(const struct ctx *x, const json_t *v, char ***plugins, size_t *n_plugins)
{
	char key[KEYLEN];
	if (!json_is_array(v))
		return conf_wrong_type(x, "plugins", "an array of file names", v);
	/* An empty list would load nothing; leaving the key out loads everything. */
	size_t n = json_array_size(v);
	if (!n)
		return conf_bad(x, "plugins",
		                "must not be empty (leave it out to load every plugin)");
	char **list = mgrok_xcalloc(n, sizeof(*list));
	for (size_t i = 0; i < n; i++) {
		conf_key_index(key, "plugins", i);
		const char *why = NULL;
		if (conf_take_string(x, key, json_array_get(v, i), &list[i]) ||
		    ((why = mgrok_plugin_name_problem(list[i])) && conf_bad(x, key, "%s", why))) {
			plugins_free(list, i + (why != NULL));
			return -1;
		}
	}
	plugins_free(*plugins, *n_plugins);
	*plugins = list;
	*n_plugins = n;
	return 0;
}

static int take_level(const struct ctx *x, const char *key, json_t *v, void *dst)
{
	if (!json_is_string(v))
		return conf_wrong_type(x, key, "a string", v);
	int level = mgrok_log_level_parse(json_string_value(v));
	if (level < 0)
		return conf_bad(x, key, "expected one of error, warn, info, debug");
	*(int *)dst = level;
	return 0;
}

static int take_log_format(const struct ctx *x, const char *key, json_t *v, void *dst)
{
	if (!json_is_string(v))
		return conf_wrong_type(x, key, "a string", v);
	int format = mgrok_log_format_parse(json_string_value(v));
	if (format < 0)
		return conf_bad(x, key, "expected text or json");
	*(int *)dst = format;
	return 0;
}

static void auth_free(struct mgrok_auth_conf *a)
{
	free(a->method);
	json_decref(a->options);
	a->method = NULL;
	a->options = NULL;
}

/* One auth method: "method" names the plugin, every other member is its
 * options, passed on unread (the plugin validates them, and they may hold
 * secrets, so no message here quotes them). Fills a only on success. */
static int parse_auth_one(const struct ctx *x, const char *at, const json_t *v,
                          struct mgrok_auth_conf *a)
{
	char key[KEYLEN];
	const char *name;
	json_t *m;
	if (!json_is_object(v))
		return conf_wrong_type(x, at, "an object with a \"method\"", v);
	conf_key_join(key, at, "method");
	const json_t *method = json_object_get(v, "method");
	if (!method)
		return conf_bad(x, key, "missing required key");
	if (!json_is_string(method) || !json_string_length(method))
		return conf_bad(x, key, "expected a non-empty string");
	a->method = mgrok_xstrdup(json_string_value(method));
	a->options = conf_xobject();
	json_object_foreach((json_t *)v, name, m) {
		if (strcmp(name, "method") != 0)
			json_object_set(a->options, name, m);
	}
	return 0;
}

/* ---- server ------------------------------------------------------------ */

static void server_auth_free(struct mgrok_auth_conf *a, size_t n)
{
	for (size_t i = 0; i < n; i++)
		auth_free(&a[i]);
	free(a);
}

/* An object is the one allowed method; an array lists several. */
static int take_server_auth(const struct ctx *x, const char *key, json_t *v, void *base)
{
	struct mgrok_server_conf *c = base;
	char at[KEYLEN], mkey[KEYLEN];
	bool array = json_is_array(v);
	size_t n = array ? json_array_size(v) : 1;
	if (!array && !json_is_object(v))
		return conf_wrong_type(x, key, "an object or an array of objects", v);
	if (!n)
		return conf_bad(x, key, "must not be empty (leave it out to allow \"none\")");
	struct mgrok_auth_conf *list = mgrok_xcalloc(n, sizeof(*list));
	for (size_t i = 0; i < n; i++) {
		if (array)
			conf_key_index(at, key, i);
		else
			snprintf(at, sizeof(at), "%s", key);
		int rc = parse_auth_one(x, at, array ? json_array_get(v, i) : v, &list[i]);
		for (size_t j = 0; rc == 0 && j < i; j++) {
			conf_key_join(mkey, at, "method");
			if (!strcmp(list[j].method, list[i].method))
				rc = conf_bad(x, mkey, "method \"%s\" is already listed",
				              list[i].method);
		}
		if (rc) {
			server_auth_free(list, n);
			return -1;
		}
	}
	server_auth_free(c->auth, c->n_auth);
	c->auth = list;
	c->n_auth = n;
	return 0;
}

/* One element of allow_ports, appended to *r: a port number, or a string
 * of ranges. */
static int allow_item(const struct ctx *x, const char *key, const json_t *e,
                      struct mgrok_port_range **r, size_t *n)
{
	char msg[128];
	struct mgrok_port_range *got, one;
	size_t n_got = 1;
	if (json_is_integer(e)) {
		if (json_integer_value(e) < 1 || json_integer_value(e) > 65535)
			return conf_bad(x, key, "port out of range 1-65535");
		one.lo = one.hi = (uint16_t)json_integer_value(e);
		got = &one;
	} else if (!json_is_string(e)) {
		return conf_wrong_type(x, key, "a port or a \"LO-HI\" string", e);
	} else if (mgrok_port_ranges_parse(json_string_value(e), &got, &n_got, msg, sizeof(msg))) {
		return conf_bad(x, key, "%s", msg);
	}
	*r = mgrok_xrealloc(*r, (*n + n_got) * sizeof(**r));
	memcpy(*r + *n, got, n_got * sizeof(*got));
	*n += n_got;
	if (got != &one)
		free(got);
	return 0;
}

static int take_allow_ports(const struct ctx *x, const char *key, json_t *v, void *base)
{
	struct mgrok_server_conf *c = base;
	char ikey[KEYLEN];
	struct mgrok_port_range *r = NULL;
	size_t n = 0;
	int rc = 0;
	if (json_is_string(v))
		rc = allow_item(x, key, v, &r, &n);
	else if (!json_is_array(v))
		return conf_wrong_type(x, key, "an array or a string", v);
	else if (!json_array_size(v))
		return conf_bad(x, key, "must not be empty");
	for (size_t i = 0; rc == 0 && i < json_array_size(v); i++) {
		conf_key_index(ikey, key, i);
		rc = allow_item(x, ikey, json_array_get(v, i), &r, &n);
	}
	if (rc) {
		free(r);
		return -1;
	}
	free(c->allow_ports);
	c->allow_ports = r;
	c->n_allow_ports = n;
	return 0;
}

static int take_proxy_protocol_from(const struct ctx *x, const char *key, json_t *v, void *base)
{
	struct mgrok_server_conf *c = base;
	char ikey[KEYLEN];
	if (!json_is_array(v))
		return conf_wrong_type(x, key, "an array of addresses or \"ADDR/BITS\" blocks", v);
	size_t n = json_array_size(v);
	struct mgrok_cidr *list = n ? mgrok_xcalloc(n, sizeof(*list)) : NULL;
	for (size_t i = 0; i < n; i++) {
		const json_t *e = json_array_get(v, i);
		conf_key_index(ikey, key, i);
		if (!json_is_string(e) || mgrok_cidr_parse(json_string_value(e), &list[i]) < 0) {
			free(list);
			return conf_bad(x, ikey,
			                "expected an address or \"ADDR/BITS\" (host bits clear)");
		}
	}
	free(c->proxy_protocol_from);
	c->proxy_protocol_from = list;
	c->n_proxy_protocol_from = n;
	return 0;
}

/* A proxy plugin's own section, kept for its init: the config key, and the
 * plugin it is for. */
static const struct {
	const char *key, *plugin;
} proxy_sections[] = {{"http", "http"}, {"tls_sni", "tls"}};

static int take_proxy_section(const struct ctx *x, const char *key, json_t *v, void *base)
{
	struct mgrok_server_conf *c = base;
	if (!json_is_object(v))
		return conf_wrong_type(x, key, "an object", v);
	for (size_t i = 0; i < sizeof(proxy_sections) / sizeof(*proxy_sections); i++) {
		if (strcmp(key, proxy_sections[i].key) != 0)
			continue;
		if (!c->proxy_sections)
			c->proxy_sections = json_object();
		json_object_set(c->proxy_sections, proxy_sections[i].plugin, v);
	}
	return 0;
}

static int take_server_plugins(const struct ctx *x, const char *key, json_t *v, void *base)
{
	struct mgrok_server_conf *c = base;
	(void)key;
	return parse_plugins(x, v, &c->plugins, &c->n_plugins);
}

#define S(f) offsetof(struct mgrok_server_conf, f), NULL
static const struct field server_heartbeat[] = {
        {"interval", conf_take_seconds, S(heartbeat_interval)},
        {"timeout", conf_take_seconds, S(heartbeat_timeout)},
        FIELDS_END,
};

static const struct field server_limits[] = {
        {"max_proxies", conf_take_count, S(max_proxies)},
        {"max_streams", conf_take_count, S(max_streams)},
        {"max_pending", conf_take_count, S(max_pending)},
        {"max_pending_per_address", conf_take_count, S(max_pending_per_address)},
        FIELDS_END,
};

static const struct field server_log[] = {{"level", take_level, S(log_level)},
                                          {"format", take_log_format, S(log_format)},
                                          FIELDS_END};

static const struct field server_rate_limit[] = {
        {"failures", conf_take_count, S(auth_failures)},
        {"interval", conf_take_seconds, S(auth_interval)},
        FIELDS_END,
};

static const struct field server_tls[] = {
        {"cert", conf_take_string, S(tls.cert)},
        {"key", conf_take_string, S(tls.key)},
        FIELDS_END,
};

/* Lists that need more than one field get the whole struct (offset 0). */
static const struct field server_fields[] = {
        {"listen", conf_take_hostport, S(listen)},
        {"proxy_bind", conf_take_string, S(proxy_bind)},
        {"public_host", conf_take_string, S(public_host)},
        {"plugin_dir", conf_take_string, S(plugin_dir)},
        {"plugins", take_server_plugins, 0, NULL},
        {"auth", take_server_auth, 0, NULL},
        {"allow_ports", take_allow_ports, 0, NULL},
        {"heartbeat", NULL, 0, server_heartbeat},
        {"handshake_timeout", conf_take_seconds, S(handshake_timeout)},
        {"shutdown_timeout", conf_take_seconds, S(shutdown_timeout)},
        {"limits", NULL, 0, server_limits},
        {"log", NULL, 0, server_log},
        {"tls", NULL, 0, server_tls},
        {"rate_limit", NULL, 0, server_rate_limit},
        {"proxy_protocol_from", take_proxy_protocol_from, 0, NULL},
        {"http", take_proxy_section, 0, NULL},
        {"tls_sni", take_proxy_section, 0, NULL},
        {"admin", conf_take_admin, S(admin)},
        {"cluster", conf_take_cluster, S(cluster)},
        FIELDS_END,
};
#undef S

/* ---- client ------------------------------------------------------------ */

static int take_client_auth(const struct ctx *x, const char *key, json_t *v, void *dst)
{
	struct mgrok_auth_conf a = {0};
	if (json_is_array(v))
		return conf_bad(x, key, "expected an object: a client proves one method");
	if (parse_auth_one(x, key, v, &a))
		return -1;
	auth_free(dst);
	*(struct mgrok_auth_conf *)dst = a;
	return 0;
}

static void proxies_free(struct mgrok_proxy_conf *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(p[i].name);
		free(p[i].type);
		free(p[i].local);
		free(p[i].group);
		free(p[i].group_key);
		json_decref(p[i].options);
	}
	free(p);
}

static int take_name(const struct ctx *x, const char *key, json_t *v, void *dst)
{
	if (!json_is_string(v))
		return conf_wrong_type(x, key, "a string", v);
	if (!mgrok_name_valid(json_string_value(v), json_string_length(v)))
		return conf_bad(x, key, NAME_RULE);
	conf_replace_string(dst, json_string_value(v));
	return 0;
}

/* A bare port (a number or digits) means a service on this host's loopback. */
static int take_local(const struct ctx *x, const char *key, json_t *v, void *dst)
{
	char given[32], target[300];
	const char *s = json_string_value(v);
	if (json_is_integer(v)) {
		json_int_t port = json_integer_value(v);
		snprintf(given, sizeof(given), "%lld", port < 0 ? 0LL : (long long)port);
		s = given;
	} else if (!s) {
		return conf_wrong_type(x, key, "a port or a \"host:port\" string", v);
	}
	const char *why = mgrok_local_target(s, target, sizeof(target));
	if (why)
		return conf_bad(x, key, "%s", why);
	conf_replace_string(dst, target);
	return 0;
}

static int take_remote_port(const struct ctx *x, const char *key, json_t *v, void *dst)
{
	if (!json_is_integer(v))
		return conf_wrong_type(x, key, "an integer", v);
	if (json_integer_value(v) < 0 || json_integer_value(v) > 65535)
		return conf_bad(x, key, "out of range 0-65535");
	*(uint16_t *)dst = (uint16_t)json_integer_value(v);
	return 0;
}

static int take_options(const struct ctx *x, const char *key, json_t *v, void *dst)
{
	if (!json_is_object(v))
		return conf_wrong_type(x, key, "an object", v);
	char *s = json_dumps(v, JSON_COMPACT);
	size_t n = s ? strlen(s) : 0;
	free(s);
	if (n > MGROK_OPTIONS_MAX)
		return conf_bad(x, key, "longer than %d bytes when encoded", MGROK_OPTIONS_MAX);
	json_decref(*(json_t **)dst);
	*(json_t **)dst = json_incref(v);
	return 0;
}

static int take_pp_version(const struct ctx *x, const char *key, json_t *v, void *dst)
{
	int version = mgrok_pp_version_parse(json_string_value(v));
	if (version < 0)
		return conf_bad(x, key, "expected \"v1\" or \"v2\"");
	*(int *)dst = version;
	return 0;
}

#define P(f) offsetof(struct mgrok_proxy_conf, f), NULL
static const struct field proxy_fields[] = {
        {"name", take_name, P(name)},
        {"type", conf_take_string, P(type)},
        {"local", take_local, P(local)},
        {"remote_port", take_remote_port, P(remote_port)},
        {"options", take_options, P(options)},
        {"proxy_protocol", take_pp_version, P(proxy_protocol)},
        {"group", take_name, P(group)},
        {"group_key", conf_take_string, P(group_key)},
        FIELDS_END,
};
#undef P

/* Fills p, which the caller frees whether this succeeds or not. */
static int parse_proxy(const struct ctx *x, const char *at, const json_t *v,
                       struct mgrok_proxy_conf *p)
{
	static const char *const required[] = {"name", "type", "local"};
	char key[KEYLEN];
	if (conf_walk(x, at, v, proxy_fields, p))
		return -1;
	for (size_t i = 0; i < sizeof(required) / sizeof(*required); i++) {
		conf_key_join(key, at, required[i]);
		if (!json_object_get(v, required[i]))
			return conf_bad(x, key, "missing required key");
	}
	if (!p->group != !p->group_key) {
		conf_key_join(key, at, p->group ? "group" : "group_key");
		return conf_bad(x, key, "group and group_key go together");
	}
	if (p->group_key && strlen(p->group_key) > MGROK_GROUP_KEY_MAX) {
		conf_key_join(key, at, "group_key");
		return conf_bad(x, key, "at most %d bytes", MGROK_GROUP_KEY_MAX);
	}
	if (json_object_get(p->options, "group") || json_object_get(p->options, "group_key")) {
		conf_key_join(key, at, "options");
		return conf_bad(x, key, "group and group_key belong to the proxy, not its options");
	}
	if (!p->options)
		p->options = conf_xobject();
	return 0;
}

static int take_proxies(const struct ctx *x, const char *key, json_t *v, void *base)
{
	struct mgrok_client_conf *c = base;
	char at[KEYLEN], nkey[KEYLEN];
	if (!json_is_array(v))
		return conf_wrong_type(x, key, "an array", v);
	size_t n = json_array_size(v);
	struct mgrok_proxy_conf *list = mgrok_xcalloc(n, sizeof(*list));
	for (size_t i = 0; i < n; i++) {
		conf_key_index(at, key, i);
		int rc = parse_proxy(x, at, json_array_get(v, i), &list[i]);
		for (size_t j = 0; rc == 0 && j < i; j++) {
			conf_key_join(nkey, at, "name");
			if (!strcmp(list[j].name, list[i].name))
				rc = conf_bad(x, nkey, "duplicate proxy name (also proxies[%zu])",
				              j);
		}
		if (rc) {
			proxies_free(list, n);
			return -1;
		}
	}
	proxies_free(c->proxies, c->n_proxies);
	c->proxies = list;
	c->n_proxies = n;
	return 0;
}

static int take_client_plugins(const struct ctx *x, const char *key, json_t *v, void *base)
{
	struct mgrok_client_conf *c = base;
	(void)key;
	return parse_plugins(x, v, &c->plugins, &c->n_plugins);
}

#define C(f) offsetof(struct mgrok_client_conf, f), NULL
static const struct field client_heartbeat[] = {
        {"interval", conf_take_seconds, C(heartbeat_interval)},
        {"timeout", conf_take_seconds, C(heartbeat_timeout)},
        FIELDS_END,
};

static const struct field client_reconnect[] = {
        {"initial", conf_take_seconds, C(reconnect_initial)},
        {"max", conf_take_seconds, C(reconnect_max)},
        {"retry_on_deny", conf_take_bool, C(retry_on_deny)},
        FIELDS_END,
};

static const struct field client_log[] = {{"level", take_level, C(log_level)},
                                          {"format", take_log_format, C(log_format)},
                                          FIELDS_END};

static const struct field client_tls[] = {
        {"ca", conf_take_string, C(tls.ca)},
        {"server_name", conf_take_string, C(tls.server_name)},
        {"fingerprint", conf_take_string, C(tls.fingerprint)},
        {"insecure", conf_take_bool, C(tls.insecure)},
        FIELDS_END,
};

/* "tls" present turns TLS on, even as an empty object (the system CAs). */
static int take_client_tls(const struct ctx *x, const char *key, json_t *v, void *base)
{
	if (!json_is_object(v))
		return conf_wrong_type(x, key, "an object", v);
	((struct mgrok_client_conf *)base)->tls.enabled = true;
	return conf_walk(x, key, v, client_tls, base);
}

static const struct field client_fields[] = {
        {"server", conf_take_hostport, C(server)},
        {"auth", take_client_auth, C(auth)},
        {"plugin_dir", conf_take_string, C(plugin_dir)},
        {"plugins", take_client_plugins, 0, NULL},
        {"heartbeat", NULL, 0, client_heartbeat},
        {"reconnect", NULL, 0, client_reconnect},
        {"log", NULL, 0, client_log},
        {"proxies", take_proxies, 0, NULL},
        {"tls", take_client_tls, 0, NULL},
        {"admin", conf_take_admin, C(admin)},
        FIELDS_END,
};
#undef C

/* ---- loading ----------------------------------------------------------- */

/* Checks between keys, made once the whole file is read (a value the file
 * leaves out keeps its default) and again by *_conf_check after flags. */
static int heartbeat_check(const struct ctx *x, double interval, double timeout)
{
	if (!(interval > 0))
		return conf_bad(x, "heartbeat.interval", "must be greater than 0");
	if (!(timeout > interval))
		return conf_bad(x, "heartbeat.timeout", "must be greater than the interval (%g s)",
		                interval);
	return 0;
}

static int tls_check(const struct ctx *x, const struct mgrok_tls_conf *t)
{
	if (!t->cert != !t->key)
		return conf_bad(x, t->cert ? "tls.key" : "tls.cert", "tls needs both cert and key");
	if (t->fingerprint && t->insecure)
		return conf_bad(x, "tls.insecure",
		                "insecure turns off the fingerprint check as well: "
		                "use one of them");
	return 0;
}

static int server_after(const struct ctx *x, const void *conf)
{
	const struct mgrok_server_conf *c = conf;
	if (heartbeat_check(x, c->heartbeat_interval, c->heartbeat_timeout) ||
	    tls_check(x, &c->tls) || conf_admin_check(x, &c->admin) ||
	    conf_cluster_check(x, &c->cluster, c->listen))
		return -1;
	return 0;
}

static int client_after(const struct ctx *x, const void *conf)
{
	const struct mgrok_client_conf *c = conf;
	if (heartbeat_check(x, c->heartbeat_interval, c->heartbeat_timeout) ||
	    tls_check(x, &c->tls) || conf_admin_check(x, &c->admin))
		return -1;
	if (c->reconnect_max < c->reconnect_initial)
		return conf_bad(x, "reconnect.max",
		                "must not be less than the initial delay (%g s)",
		                c->reconnect_initial);
	return 0;
}

int mgrok_server_conf_load(struct mgrok_server_conf *c, const char *path,
                           struct mgrok_conf_error *err)
{
	return conf_load(path, err, server_fields, c, server_after);
}

int mgrok_client_conf_load(struct mgrok_client_conf *c, const char *path,
                           struct mgrok_conf_error *err)
{
	return conf_load(path, err, client_fields, c, client_after);
}

int mgrok_server_conf_load_text(struct mgrok_server_conf *c, const char *name, const char *text,
                                size_t len, struct mgrok_conf_error *err)
{
	return conf_load_text(name, text, len, err, server_fields, c, server_after);
}

int mgrok_client_conf_load_text(struct mgrok_client_conf *c, const char *name, const char *text,
                                size_t len, struct mgrok_conf_error *err)
{
	return conf_load_text(name, text, len, err, client_fields, c, client_after);
}

/* ---- defaults, checks, free --------------------------------------------- */

void mgrok_server_conf_defaults(struct mgrok_server_conf *c)
{
	memset(c, 0, sizeof(*c));
	c->listen = mgrok_xstrdup(MGROK_DEFAULT_LISTEN);
	c->allow_ports = mgrok_xcalloc(1, sizeof(*c->allow_ports));
	c->allow_ports[0] = (struct mgrok_port_range){MGROK_DEFAULT_PORT_LO, MGROK_DEFAULT_PORT_HI};
	c->n_allow_ports = 1;
	c->heartbeat_interval = MGROK_DEFAULT_HEARTBEAT_INTERVAL;
	c->heartbeat_timeout = MGROK_DEFAULT_HEARTBEAT_TIMEOUT;
	c->handshake_timeout = MGROK_DEFAULT_HANDSHAKE_TIMEOUT;
	c->shutdown_timeout = MGROK_DEFAULT_SHUTDOWN_TIMEOUT;
	c->max_proxies = MGROK_DEFAULT_MAX_PROXIES;
	c->max_streams = MGROK_DEFAULT_MAX_STREAMS;
	c->max_pending = MGROK_DEFAULT_MAX_PENDING;
	c->max_pending_per_address = MGROK_DEFAULT_MAX_PENDING_PER_ADDRESS;
	c->log_level = MGROK_LOG_INFO;
	c->auth_failures = MGROK_DEFAULT_AUTH_FAILURES;
	c->auth_interval = MGROK_DEFAULT_AUTH_INTERVAL;
	c->cluster.lease = MGROK_DEFAULT_CLUSTER_LEASE;
}

void mgrok_client_conf_defaults(struct mgrok_client_conf *c)
{
	memset(c, 0, sizeof(*c));
	c->server = mgrok_xstrdup(MGROK_DEFAULT_SERVER);
	c->auth.method = mgrok_xstrdup("none");
	c->auth.options = conf_xobject();
	c->heartbeat_interval = MGROK_DEFAULT_HEARTBEAT_INTERVAL;
	c->heartbeat_timeout = MGROK_DEFAULT_HEARTBEAT_TIMEOUT;
	c->reconnect_initial = MGROK_DEFAULT_RECONNECT_INITIAL;
	c->reconnect_max = MGROK_DEFAULT_RECONNECT_MAX;
	c->log_level = MGROK_LOG_INFO;
}

int mgrok_server_conf_check(const struct mgrok_server_conf *c, struct mgrok_conf_error *err)
{
	const struct ctx x = {.err = err};
	memset(err, 0, sizeof(*err));
	if (!c->n_allow_ports)
		return conf_bad(&x, "allow_ports", "no port is allowed");
	return server_after(&x, c);
}

/* Flags add proxies and set the server after the file was read, so those
 * are checked again here. */
static int proxies_check(const struct ctx *x, const struct mgrok_client_conf *c)
{
	char key[KEYLEN];
	if (!c->n_proxies)
		return conf_bad(x, "",
		                "no proxies: give one on the command line or in \"proxies\"");
	for (size_t i = 0; i < c->n_proxies; i++) {
		const char *name = c->proxies[i].name;
		conf_key_index(key, "proxies", i);
		if (!name || !mgrok_name_valid(name, strlen(name)))
			return conf_bad(x, key, "name " NAME_RULE);
		for (size_t j = 0; j < i; j++) {
			if (!strcmp(c->proxies[j].name, name))
				return conf_bad(x, key, "duplicate proxy name \"%s\"", name);
		}
	}
	return 0;
}

int mgrok_client_conf_check(const struct mgrok_client_conf *c, struct mgrok_conf_error *err)
{
	const struct ctx x = {.err = err};
	memset(err, 0, sizeof(*err));
	if (!c->server || mgrok_hostport_problem(c->server))
		return conf_bad(&x, "server", "expected \"host:port\"");
	return client_after(&x, c) ? -1 : proxies_check(&x, c);
}

void mgrok_admin_conf_free(struct mgrok_admin_conf *a)
{
	free(a->listen);
	free(a->token);
	free(a->token_file);
	free(a->token_env);
	memset(a, 0, sizeof(*a));
}

void mgrok_server_conf_free(struct mgrok_server_conf *c)
{
	free(c->listen);
	free(c->proxy_bind);
	free(c->public_host);
	free(c->plugin_dir);
	plugins_free(c->plugins, c->n_plugins);
	server_auth_free(c->auth, c->n_auth);
	free(c->allow_ports);
	free(c->proxy_protocol_from);
	json_decref(c->proxy_sections);
	mgrok_tls_conf_free(&c->tls);
	mgrok_admin_conf_free(&c->admin);
	free(c->cluster.redis);
	free(c->cluster.node);
	free(c->cluster.secret);
	free(c->cluster.secret_file);
	free(c->cluster.address);
	memset(c, 0, sizeof(*c));
}

void mgrok_server_conf_use_token(struct mgrok_server_conf *c, const char *token)
{
	server_auth_free(c->auth, c->n_auth);
	c->auth = mgrok_xcalloc(1, sizeof(*c->auth));
	c->n_auth = 1;
	c->auth[0].method = mgrok_xstrdup("token");
	c->auth[0].options = json_pack("{ss}", "token", token);
}

void mgrok_client_conf_use_token(struct mgrok_client_conf *c, const char *token)
{
	auth_free(&c->auth);
	c->auth.method = mgrok_xstrdup("token");
	c->auth.options = json_pack("{ss}", "token", token);
}

void mgrok_tls_conf_free(struct mgrok_tls_conf *t)
{
	free(t->cert);
	free(t->key);
	free(t->ca);
	free(t->server_name);
	free(t->fingerprint);
	memset(t, 0, sizeof(*t));
}

void mgrok_client_conf_free(struct mgrok_client_conf *c)
{
	free(c->server);
	auth_free(&c->auth);
	free(c->plugin_dir);
	plugins_free(c->plugins, c->n_plugins);
	proxies_free(c->proxies, c->n_proxies);
	mgrok_tls_conf_free(&c->tls);
	mgrok_admin_conf_free(&c->admin);
	memset(c, 0, sizeof(*c));
}
