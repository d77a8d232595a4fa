/*
 * Config loading: every key of both files, defaults, each kind of error with
 * its file, line, column and key path, the key locator, port ranges, and
 * that no secret reaches an error message.
 */
#include <check.h>
#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "claims.h" /* mgrok_claims_available */
#include "config.h"
#include "mgrok/plugin.h"

static char tmpdir[200];

/* Writes text to a file in the test's temporary directory. */
static const char *fixture(const char *name, const char *text)
{
	static char path[300];
	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(fputs(text, f) >= 0, 1);
	ck_assert_int_eq(fclose(f), 0);
	return path;
}

/* Load text as a server (or client) config over the defaults, free it, and
 * return the loader's result; e holds the error. */
static int server_load(const char *text, struct mgrok_conf_error *e)
{
	struct mgrok_server_conf c;
	mgrok_server_conf_defaults(&c);
	int rc = mgrok_server_conf_load(&c, fixture("mgrokd.json", text), e);
	mgrok_server_conf_free(&c);
	return rc;
}

static int client_load(const char *text, struct mgrok_conf_error *e)
{
	struct mgrok_client_conf c;
	mgrok_client_conf_defaults(&c);
	int rc = mgrok_client_conf_load(&c, fixture("mgrok.json", text), e);
	mgrok_client_conf_free(&c);
	return rc;
}

/* A macro so that a failure names the test's own line. */
#define ck_error(e, k, l, col, part)                                                               \
	do {                                                                                       \
		ck_assert_str_eq((e).key, (k));                                                    \
		ck_assert_int_eq((e).line, (l));                                                   \
		ck_assert_int_eq((e).column, (col));                                               \
		ck_assert_msg(strstr((e).msg, (part)) != NULL, "message \"%s\" lacks \"%s\"",      \
		              (e).msg, (part));                                                    \
		ck_assert_msg(strstr((e).file, tmpdir) == (e).file, "file \"%s\"", (e).file);      \
	} while (0)

static const char *opt_str(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

/* ---- whole files -------------------------------------------------------- */

static const char server_full[] =
        "{\n"
        "  \"listen\": \"0.0.0.0:7443\",\n"
        "  \"proxy_bind\": \"10.0.0.1\",\n"
        "  \"public_host\": \"tunnel.example.com\",\n"
        "  \"plugin_dir\": \"/opt/mgrok/plugins\",\n"
        "  \"plugins\": [\"tcp.so\", \"auth-token.so\"],\n"
        "  \"auth\": [{\"method\": \"token\", \"token_file\": \"/etc/mgrok/token\"},\n"
        "           {\"method\": \"none\"}],\n"
        "  \"allow_ports\": [\"20000-20100\", 8080, \"30000, 30010-30020\"],\n"
        "  \"heartbeat\": {\"interval\": 5, \"timeout\": 15.5},\n"
        "  \"handshake_timeout\": 3,\n"
        "  \"limits\": {\"max_proxies\": 8, \"max_streams\": 100, \"max_pending\": 16},\n"
        "  \"log\": {\"level\": \"debug\"}\n"
        "}\n";

START_TEST(test_server_full)
{
	struct mgrok_server_conf c;
	struct mgrok_conf_error e;
	mgrok_server_conf_defaults(&c);
	ck_assert_int_eq(mgrok_server_conf_load(&c, fixture("full.json", server_full), &e), 0);
	ck_assert_str_eq(c.listen, "0.0.0.0:7443");
	ck_assert_str_eq(c.proxy_bind, "10.0.0.1");
	ck_assert_str_eq(c.public_host, "tunnel.example.com");
	ck_assert_str_eq(c.plugin_dir, "/opt/mgrok/plugins");
	ck_assert_uint_eq(c.n_plugins, 2);
	ck_assert_str_eq(c.plugins[0], "tcp.so");
	ck_assert_str_eq(c.plugins[1], "auth-token.so");
	ck_assert_uint_eq(c.n_auth, 2);
	ck_assert_str_eq(c.auth[0].method, "token");
	ck_assert_uint_eq(json_object_size(c.auth[0].options), 1);
	ck_assert_str_eq(opt_str(c.auth[0].options, "token_file"), "/etc/mgrok/token");
	ck_assert_str_eq(c.auth[1].method, "none");
	ck_assert(json_is_object(c.auth[1].options));
	ck_assert_uint_eq(json_object_size(c.auth[1].options), 0);
	ck_assert_uint_eq(c.n_allow_ports, 4);
	ck_assert_uint_eq(c.allow_ports[0].lo, 20000);
	ck_assert_uint_eq(c.allow_ports[0].hi, 20100);
	ck_assert_uint_eq(c.allow_ports[1].lo, 8080);
	ck_assert_uint_eq(c.allow_ports[1].hi, 8080);
	ck_assert_uint_eq(c.allow_ports[2].lo, 30000);
	ck_assert_uint_eq(c.allow_ports[2].hi, 30000);
	ck_assert_uint_eq(c.allow_ports[3].lo, 30010);
	ck_assert_uint_eq(c.allow_ports[3].hi, 30020);
	ck_assert_double_eq(c.heartbeat_interval, 5);
	ck_assert_double_eq(c.heartbeat_timeout, 15.5);
	ck_assert_double_eq(c.handshake_timeout, 3);
	ck_assert_uint_eq(c.max_proxies, 8);
	ck_assert_uint_eq(c.max_streams, 100);
	ck_assert_uint_eq(c.max_pending, 16);
	ck_assert_int_eq(c.log_level, MGROK_LOG_DEBUG);
	ck_assert_int_eq(mgrok_server_conf_check(&c, &e), 0);
	mgrok_server_conf_free(&c);
}
END_TEST

static const char client_full[] =
        "{\n"
        "  \"server\": \"tunnel.example.com:7000\",\n"
        "  \"auth\": {\"method\": \"token\", \"token\": \"abc\", \"extra\": [1, 2]},\n"
        "  \"plugin_dir\": \"/opt/mgrok\",\n"
        "  \"plugins\": [\"tcp.so\"],\n"
        "  \"heartbeat\": {\"interval\": 2.5, \"timeout\": 9},\n"
        "  \"reconnect\": {\"initial\": 1, \"max\": 60.5, \"retry_on_deny\": true},\n"
        "  \"log\": {\"level\": \"warn\"},\n"
        "  \"proxies\": [\n"
        "    {\"name\": \"web\", \"type\": \"tcp\", \"local\": \"127.0.0.1:8080\",\n"
        "     \"remote_port\": 20001, \"options\": {\"x\": 1}},\n"
        "    {\"name\": \"ssh_2.b-c\", \"type\": \"tcp\", \"local\": 22},\n"
        "    {\"name\": \"dns\", \"type\": \"udp\", \"local\": \"[::1]:53\", \"remote_port\": 0},\n"
        "    {\"name\": \"S\", \"type\": \"tcp\", \"local\": \"5353\"}\n"
        "  ]\n"
        "}\n";

START_TEST(test_client_full)
{
	struct mgrok_client_conf c;
	struct mgrok_conf_error e;
	mgrok_client_conf_defaults(&c);
	ck_assert_int_eq(mgrok_client_conf_load(&c, fixture("full.json", client_full), &e), 0);
	ck_assert_str_eq(c.server, "tunnel.example.com:7000");
	ck_assert_str_eq(c.auth.method, "token");
	ck_assert_uint_eq(json_object_size(c.auth.options), 2);
	ck_assert_str_eq(opt_str(c.auth.options, "token"), "abc");
	ck_assert_uint_eq(json_array_size(json_object_get(c.auth.options, "extra")), 2);
	ck_assert_ptr_null(json_object_get(c.auth.options, "method"));
	ck_assert_str_eq(c.plugin_dir, "/opt/mgrok");
	ck_assert_uint_eq(c.n_plugins, 1);
	ck_assert_str_eq(c.plugins[0], "tcp.so");
	ck_assert_double_eq(c.heartbeat_interval, 2.5);
	ck_assert_double_eq(c.heartbeat_timeout, 9);
	ck_assert_double_eq(c.reconnect_initial, 1);
	ck_assert_double_eq(c.reconnect_max, 60.5);
	ck_assert(c.retry_on_deny);
	ck_assert_int_eq(c.log_level, MGROK_LOG_WARN);
	ck_assert_uint_eq(c.n_proxies, 4);
	ck_assert_str_eq(c.proxies[0].name, "web");
	ck_assert_str_eq(c.proxies[0].type, "tcp");
	ck_assert_str_eq(c.proxies[0].local, "127.0.0.1:8080");
	ck_assert_uint_eq(c.proxies[0].remote_port, 20001);
	ck_assert_int_eq(json_integer_value(json_object_get(c.proxies[0].options, "x")), 1);
	ck_assert_str_eq(c.proxies[1].name, "ssh_2.b-c");
	ck_assert_str_eq(c.proxies[1].local, "127.0.0.1:22");
	ck_assert_uint_eq(c.proxies[1].remote_port, 0);
	ck_assert(json_is_object(c.proxies[1].options));
	ck_assert_uint_eq(json_object_size(c.proxies[1].options), 0);
	ck_assert_str_eq(c.proxies[2].type, "udp");
	ck_assert_str_eq(c.proxies[2].local, "[::1]:53");
	ck_assert_str_eq(c.proxies[3].local, "127.0.0.1:5353");
	ck_assert_int_eq(mgrok_client_conf_check(&c, &e), 0);
	mgrok_client_conf_free(&c);
}
END_TEST

START_TEST(test_defaults)
{
	struct mgrok_server_conf s;
	struct mgrok_client_conf c;
	mgrok_server_conf_defaults(&s);
	ck_assert_str_eq(s.listen, "0.0.0.0:7000");
	ck_assert_ptr_null(s.proxy_bind);
	ck_assert_ptr_null(s.public_host);
	ck_assert_ptr_null(s.plugin_dir);
	ck_assert_ptr_null(s.plugins);
	ck_assert_uint_eq(s.n_auth, 0);
	ck_assert_uint_eq(s.n_allow_ports, 1);
	ck_assert_uint_eq(s.allow_ports[0].lo, 1024);
	ck_assert_uint_eq(s.allow_ports[0].hi, 65535);
	ck_assert_double_eq(s.heartbeat_interval, 10);
	ck_assert_double_eq(s.heartbeat_timeout, 30);
	ck_assert_double_eq(s.handshake_timeout, 10);
	ck_assert_uint_eq(s.max_proxies, 64);
	ck_assert_uint_eq(s.max_streams, 4096);
	ck_assert_uint_eq(s.max_pending, 256);
	ck_assert_int_eq(s.log_level, MGROK_LOG_INFO);
	mgrok_server_conf_free(&s);
	mgrok_server_conf_free(&s); /* a freed struct is zeroed: freeing again is harmless */

	mgrok_client_conf_defaults(&c);
	ck_assert_str_eq(c.server, "127.0.0.1:7000");
	ck_assert_str_eq(c.auth.method, "none");
	ck_assert(json_is_object(c.auth.options));
	ck_assert_uint_eq(json_object_size(c.auth.options), 0);
	ck_assert_ptr_null(c.plugin_dir);
	ck_assert_uint_eq(c.n_plugins, 0);
	ck_assert_double_eq(c.heartbeat_interval, 10);
	ck_assert_double_eq(c.heartbeat_timeout, 30);
	ck_assert_double_eq(c.reconnect_initial, 0.5);
	ck_assert_double_eq(c.reconnect_max, 30);
	ck_assert(!c.retry_on_deny);
	ck_assert_uint_eq(c.n_proxies, 0);
	ck_assert_int_eq(c.log_level, MGROK_LOG_INFO);
	mgrok_client_conf_free(&c);
	mgrok_client_conf_free(&c);
}
END_TEST

/* Keys the file leaves out keep their defaults; keys it gives replace them
 * (the replaced strings are freed: LeakSanitizer watches). */
START_TEST(test_partial_over_defaults)
{
	struct mgrok_server_conf s;
	struct mgrok_client_conf c;
	struct mgrok_conf_error e;
	mgrok_server_conf_defaults(&s);
	ck_assert_int_eq(
	        mgrok_server_conf_load(
	                &s,
	                fixture("a.json",
	                        "{\"listen\": \"[::]:7001\", \"heartbeat\": {\"timeout\": 60}}"),
	                &e),
	        0);
	ck_assert_str_eq(s.listen, "[::]:7001");
	ck_assert_double_eq(s.heartbeat_interval, 10);
	ck_assert_double_eq(s.heartbeat_timeout, 60);
	ck_assert_uint_eq(s.n_allow_ports, 1);
	ck_assert_uint_eq(s.allow_ports[0].lo, 1024);
	/* A second file over the first: lists are replaced, not appended. */
	ck_assert_int_eq(
	        mgrok_server_conf_load(
	                &s,
	                fixture("b.json",
	                        "{\"allow_ports\": \"5000-5001\", \"auth\": {\"method\": \"x\"},"
	                        " \"plugins\": [\"a.so\"]}"),
	                &e),
	        0);
	ck_assert_int_eq(
	        mgrok_server_conf_load(
	                &s,
	                fixture("c.json", "{\"allow_ports\": [6000], \"auth\": {\"method\": \"y\"},"
	                                  " \"plugins\": [\"b.so\"], \"public_host\": \"h\", "
	                                  "\"public_host2\": 1}"),
	                &e),
	        -1);
	ck_assert_uint_eq(s.n_allow_ports, 1);
	ck_assert_uint_eq(s.allow_ports[0].lo, 6000);
	ck_assert_uint_eq(s.n_auth, 1);
	ck_assert_str_eq(s.auth[0].method, "y");
	ck_assert_str_eq(s.plugins[0], "b.so");
	ck_assert_str_eq(e.key, "public_host2");
	mgrok_server_conf_free(&s);

	mgrok_client_conf_defaults(&c);
	ck_assert_int_eq(mgrok_client_conf_load(&c,
	                                        fixture("d.json",
	                                                "{\"server\": \"h:1\", \"auth\": "
	                                                "{\"method\": \"token\", \"token\": \"t\"},"
	                                                " \"proxies\": [{\"name\": \"a\", "
	                                                "\"type\": \"tcp\", \"local\": 1}]}"),
	                                        &e),
	                 0);
	ck_assert_int_eq(
	        mgrok_client_conf_load(
	                &c,
	                fixture("e.json",
	                        "{\"proxies\": [{\"name\": \"b\", \"type\": \"tcp\", \"local\": 2},"
	                        " {\"name\": \"c\", \"type\": \"tcp\", \"local\": 3}]}"),
	                &e),
	        0);
	ck_assert_str_eq(c.server, "h:1");
	ck_assert_str_eq(c.auth.method, "token");
	ck_assert_uint_eq(c.n_proxies, 2);
	ck_assert_str_eq(c.proxies[0].name, "b");
	ck_assert_str_eq(c.proxies[1].local, "127.0.0.1:3");
	/* A failure half-way through a proxy list leaves the old list whole. */
	ck_assert_int_eq(
	        mgrok_client_conf_load(
	                &c,
	                fixture("f.json",
	                        "{\"proxies\": [{\"name\": \"d\", \"type\": \"tcp\", \"local\": 4,"
	                        " \"options\": {}}, {\"name\": \"d\"}]}"),
	                &e),
	        -1);
	ck_assert_uint_eq(c.n_proxies, 2);
	ck_assert_str_eq(c.proxies[0].name, "b");
	mgrok_client_conf_free(&c);
}
END_TEST

/* The example files shipped in etc/ load and pass the checks. */
START_TEST(test_example_configs)
{
	static const char *const tops[] = {NULL, ".", "..", "../.."};
	const char *top = NULL;
	char ps[512], pc[512];
	for (size_t i = 0; i < sizeof(tops) / sizeof(*tops) && !top; i++) {
		const char *t = i ? tops[i] : getenv("MGROK_SRCDIR");
		snprintf(ps, sizeof(ps), "%s/etc/mgrokd.json", t ? t : "");
		if (t && access(ps, R_OK) == 0)
			top = t;
	}
	ck_assert_msg(top != NULL, "etc/mgrokd.json not found: set MGROK_SRCDIR");
	snprintf(ps, sizeof(ps), "%s/etc/mgrokd.json", top);
	snprintf(pc, sizeof(pc), "%s/etc/mgrok.json", top);

	struct mgrok_server_conf s;
	struct mgrok_client_conf c;
	struct mgrok_conf_error e;
	char buf[512];
	mgrok_server_conf_defaults(&s);
	ck_assert_msg(mgrok_server_conf_load(&s, ps, &e) == 0, "%s",
	              mgrok_conf_error_format(&e, buf, sizeof(buf)));
	ck_assert_int_eq(mgrok_server_conf_check(&s, &e), 0);
	ck_assert_str_eq(s.listen, "127.0.0.1:7000");
	ck_assert_uint_eq(s.n_auth, 1);
	ck_assert_str_eq(s.auth[0].method, "token");
	ck_assert_str_eq(opt_str(s.auth[0].options, "token"), "change-me-demo-token");
	ck_assert_uint_eq(s.n_allow_ports, 1);
	ck_assert_uint_eq(s.allow_ports[0].lo, 20000);
	ck_assert_uint_eq(s.allow_ports[0].hi, 20100);

	mgrok_client_conf_defaults(&c);
	ck_assert_msg(mgrok_client_conf_load(&c, pc, &e) == 0, "%s",
	              mgrok_conf_error_format(&e, buf, sizeof(buf)));
	ck_assert_int_eq(mgrok_client_conf_check(&c, &e), 0);
	ck_assert_str_eq(c.server, "127.0.0.1:7000");
	ck_assert_str_eq(c.auth.method, "token");
	ck_assert_str_eq(opt_str(c.auth.options, "token"), opt_str(s.auth[0].options, "token"));
	ck_assert_uint_eq(c.n_proxies, 1);
	ck_assert_str_eq(c.proxies[0].name, "web");
	ck_assert_str_eq(c.proxies[0].type, "tcp");
	ck_assert_str_eq(c.proxies[0].local, "127.0.0.1:8080");
	ck_assert_uint_eq(c.proxies[0].remote_port, 20080);
	ck_assert(mgrok_port_allowed(s.allow_ports, s.n_allow_ports, c.proxies[0].remote_port));
	mgrok_server_conf_free(&s);
	mgrok_client_conf_free(&c);
}
END_TEST

/* ---- errors, each with its place ---------------------------------------- */

START_TEST(test_syntax_error)
{
	struct mgrok_conf_error e;
	ck_assert_int_eq(server_load("{\n"
	                             "  \"listen\": \"0.0.0.0:7000\",\n"
	                             "  \"log\": {\"level\": \"info\",}\n"
	                             "}\n",
	                             &e),
	                 -1);
	/* jansson's own place and words for it; no key. */
	ck_error(e, "", 3, 27, "string or '}' expected near '}'");

	ck_assert_int_eq(client_load("{\n  \"server\": \"h:1\"\n  \"log\": {}\n}\n", &e), -1);
	ck_error(e, "", 3, 7, "'}' expected near a string");

	ck_assert_int_eq(client_load("", &e), -1);
	ck_assert_int_eq(e.line, 1);
	ck_assert_int_eq(e.column, 0);
}
END_TEST

START_TEST(test_not_an_object)
{
	struct mgrok_conf_error e;
	ck_assert_int_eq(server_load("\n  [1, 2]\n", &e), -1);
	ck_error(e, "", 2, 3, "expected a JSON object at the top level, got an array");
}
END_TEST

START_TEST(test_missing_file)
{
	struct mgrok_server_conf s;
	struct mgrok_conf_error e;
	char path[300], buf[512];
	snprintf(path, sizeof(path), "%s/no-such.json", tmpdir);
	mgrok_server_conf_defaults(&s);
	ck_assert_int_eq(mgrok_server_conf_load(&s, path, &e), -1);
	ck_assert_str_eq(e.file, path);
	ck_assert_int_eq(e.line, 0);
	ck_assert_ptr_nonnull(strstr(e.msg, "No such file"));
	ck_assert_str_eq(s.listen, "0.0.0.0:7000");
	mgrok_conf_error_format(&e, buf, sizeof(buf));
	ck_assert_msg(strncmp(buf, path, strlen(path)) == 0 && !strstr(buf, ":0"), "%s", buf);
	mgrok_server_conf_free(&s);
}
END_TEST

START_TEST(test_tls_and_rate_limit)
{
	struct mgrok_conf_error e;
	struct mgrok_server_conf s;
	struct mgrok_client_conf c;

	mgrok_server_conf_defaults(&s);
	ck_assert_uint_eq(s.auth_failures, 10);
	ck_assert(s.auth_interval == 60);
	ck_assert_int_eq(mgrok_server_conf_load(
	                         &s,
	                         fixture("t.json", "{\"tls\": {\"cert\": \"c.pem\", \"key\": "
	                                           "\"k.pem\"}, \"rate_limit\": {\"failures\": 3, "
	                                           "\"interval\": 2.5}}"),
	                         &e),
	                 0);
	ck_assert_str_eq(s.tls.cert, "c.pem");
	ck_assert_str_eq(s.tls.key, "k.pem");
	ck_assert_uint_eq(s.auth_failures, 3);
	ck_assert(s.auth_interval == 2.5);
	mgrok_server_conf_free(&s);

	ck_assert_int_eq(server_load("{\"tls\": {\"cert\": \"c.pem\"}}", &e), -1);
	ck_assert_str_eq(e.key, "tls.key");
	ck_assert(strstr(e.msg, "both") != NULL);
	ck_assert_int_eq(server_load("{\"rate_limit\": {\"failures\": 0}}", &e), -1);
	ck_assert_str_eq(e.key, "rate_limit.failures");

	mgrok_client_conf_defaults(&c);
	ck_assert(!c.tls.enabled);
	ck_assert_int_eq(mgrok_client_conf_load(&c, fixture("t.json", "{\"tls\": {}}"), &e), 0);
	ck_assert(c.tls.enabled);
	ck_assert_ptr_null(c.tls.ca);
	mgrok_client_conf_free(&c);
	mgrok_client_conf_defaults(&c);
	ck_assert_int_eq(
	        mgrok_client_conf_load(&c,
	                               fixture("t.json", "{\"tls\": {\"ca\": \"ca.pem\", "
	                                                 "\"server_name\": \"t.example\"}}"),
	                               &e),
	        0);
	ck_assert_str_eq(c.tls.ca, "ca.pem");
	ck_assert_str_eq(c.tls.server_name, "t.example");
	mgrok_client_conf_free(&c);
	ck_assert_int_eq(
	        client_load("{\"tls\": {\"fingerprint\": \"sha256:00\", \"insecure\": true}}", &e),
	        -1);
	ck_assert_str_eq(e.key, "tls.insecure");
	ck_assert_int_eq(client_load("{\"tls\": true}", &e), -1);
	ck_assert_str_eq(e.key, "tls");
}
END_TEST

START_TEST(test_unknown_key)
{
	struct mgrok_conf_error e;
	ck_assert_int_eq(server_load("{\n"
	                             "  \"listen\": \"0.0.0.0:7000\",\n"
	                             "  \"heartbeat\": {\n"
	                             "    \"interval\": 5,\n"
	                             "    \"intervall\": 6\n"
	                             "  }\n"
	                             "}\n",
	                             &e),
	                 -1);
	ck_error(e, "heartbeat.intervall", 5, 5, "unknown key");

	ck_assert_int_eq(client_load("{\"server\": \"h:1\", \"tlss\": {}}", &e), -1);
	ck_error(e, "tlss", 1, 19, "unknown key");

	/* A key written with escapes is found by what it means. */
	ck_assert_int_eq(
	        client_load("{\n\t\"log\": {\"\\u006cevel\": \"info\", \"lev\\u00e9l\": 1}}", &e),
	        -1);
	ck_error(e, "log.lev\xc3\xa9l", 2, 32, "unknown key");

	ck_assert_int_eq(
	        client_load("{\"proxies\": [{\"name\": \"a\", \"type\": \"tcp\", \"local\": 1,"
	                    " \"remote\": 5}]}",
	                    &e),
	        -1);
	ck_error(e, "proxies[0].remote", 1, 55, "unknown key");

	/* A path too long for the key field is cut, and placed at its parent. */
	char text[512], name[301];
	memset(name, 'k', 300);
	name[300] = '\0';
	snprintf(text, sizeof(text), "{\n \"limits\": {\"%s\": 1}}", name);
	ck_assert_int_eq(server_load(text, &e), -1);
	ck_assert_uint_eq(strlen(e.key), sizeof(e.key) - 1);
	ck_assert_ptr_eq(strstr(e.key, "limits.kkk"), e.key);
	ck_assert_int_eq(e.line, 2);
	ck_assert_int_eq(e.column, 2);
}
END_TEST

START_TEST(test_wrong_type)
{
	struct mgrok_conf_error e;
	ck_assert_int_eq(server_load("{\n  \"handshake_timeout\": \"10\"\n}", &e), -1);
	ck_error(e, "handshake_timeout", 2, 3, "expected a number of seconds, got a string");

	ck_assert_int_eq(server_load("{\"limits\": {\"max_streams\": 1.5}}", &e), -1);
	ck_error(e, "limits.max_streams", 1, 13, "expected an integer, got a real number");

	ck_assert_int_eq(server_load("{\"plugins\": [\"a.so\", 3]}", &e), -1);
	ck_error(e, "plugins[1]", 1, 22, "expected a string, got an integer");

	ck_assert_int_eq(client_load("{\"reconnect\": {\"retry_on_deny\": \"yes\"}}", &e), -1);
	ck_error(e, "reconnect.retry_on_deny", 1, 16, "expected true or false, got a string");

	ck_assert_int_eq(client_load("{\"proxies\": {}}", &e), -1);
	ck_error(e, "proxies", 1, 2, "expected an array, got an object");

	ck_assert_int_eq(client_load("{\"proxies\": [null]}", &e), -1);
	ck_error(e, "proxies[0]", 1, 14, "expected an object, got null");

	ck_assert_int_eq(client_load("{\"heartbeat\": [10, 30]}", &e), -1);
	ck_error(e, "heartbeat", 1, 2, "expected an object, got an array");

	ck_assert_int_eq(server_load("{\"listen\": 7000}", &e), -1);
	ck_error(e, "listen", 1, 2, "got an integer");
}
END_TEST

START_TEST(test_impossible_values)
{
	struct mgrok_conf_error e;
	ck_assert_int_eq(client_load("{\n"
	                             "  \"proxies\": [\n"
	                             "    {\"name\": \"a\", \"type\": \"tcp\", \"local\": 80},\n"
	                             "    {\"name\": \"b\", \"type\": \"tcp\", \"local\": 81,\n"
	                             "     \"remote_port\": 70000}\n"
	                             "  ]\n"
	                             "}\n",
	                             &e),
	                 -1);
	ck_error(e, "proxies[1].remote_port", 5, 6, "out of range 0-65535");

	ck_assert_int_eq(
	        client_load("{\"proxies\": [{\"name\": \"a\", \"type\": \"tcp\", \"local\": 1,"
	                    " \"remote_port\": -1}]}",
	                    &e),
	        -1);
	ck_error(e, "proxies[0].remote_port", 1, 55, "out of range");

	ck_assert_int_eq(server_load("{\"heartbeat\": {\"interval\": 0}}", &e), -1);
	ck_error(e, "heartbeat.interval", 1, 16, "must be greater than 0");

	ck_assert_int_eq(server_load("{\"limits\": {\"max_pending\": 0}}", &e), -1);
	ck_error(e, "limits.max_pending", 1, 13, "out of range");

	ck_assert_int_eq(server_load("{\"log\": {\"level\": \"verbose\"}}", &e), -1);
	ck_error(e, "log.level", 1, 10, "expected one of error, warn, info, debug");

	ck_assert_int_eq(server_load("{\"listen\": \"::1:7000\"}", &e), -1);
	ck_error(e, "listen", 1, 2, "brackets");

	ck_assert_int_eq(client_load("{\"server\": \"host:0\"}", &e), -1);
	ck_error(e, "server", 1, 2, "port must be 1-65535");

	ck_assert_int_eq(server_load("{\"proxy_bind\": \"\"}", &e), -1);
	ck_error(e, "proxy_bind", 1, 2, "must not be empty");

	ck_assert_int_eq(server_load("{\"plugins\": []}", &e), -1);
	ck_error(e, "plugins", 1, 2, "must not be empty");
}
END_TEST

/* Issue 9: a plugin entry is a file name inside plugin_dir, never a path
 * that dlopen would follow elsewhere (its constructors would run). */
START_TEST(test_plugin_names)
{
	struct mgrok_conf_error e;
	static const char *const bad[] = {
	        "{\"plugins\": [\"tcp.so\", \"../../../../lib/x86_64-linux-gnu/libc.so.6\"]}",
	        "{\"plugins\": [\"tcp.so\", \"/usr/lib/x.so\"]}",
	        "{\"plugins\": [\"tcp.so\", \"sub/x.so\"]}",
	        "{\"plugins\": [\"tcp.so\", \"..\"]}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		ck_assert_int_eq(server_load(bad[i], &e), -1);
		ck_error(e, "plugins[1]", 1, 24, "must be a file name inside plugin_dir");
		ck_assert_int_eq(client_load(bad[i], &e), -1);
		ck_error(e, "plugins[1]", 1, 24, "must be a file name inside plugin_dir");
	}
	ck_assert_int_eq(server_load("{\"plugins\": [\"tcp.so\", \"my.plugin.so\"]}", &e), 0);
}
END_TEST

/* An integer jansson cannot hold fails the parse before any key sees it;
 * the error still names the key, wherever it sits. */
START_TEST(test_integer_too_large)
{
	struct mgrok_conf_error e;
	ck_assert_int_eq(server_load("{\n  \"limits\": {\"max_proxies\": 4,\n"
	                             "    \"max_streams\": 99999999999999999999}\n}",
	                             &e),
	                 -1);
	ck_error(e, "limits.max_streams", 3, 5, "integer too large");
	ck_assert_int_eq(server_load("{\"allow_ports\": [80, -99999999999999999999]}", &e), -1);
	ck_error(e, "allow_ports[1]", 1, 22, "integer too large");
	ck_assert_int_eq(client_load("{\"proxies\": [{\"name\": \"a\", \"type\": \"tcp\", "
	                             "\"local\": 1, \"remote_port\": 123456789012345678901234}]}",
	                             &e),
	                 -1);
	ck_error(e, "proxies[0].remote_port", 1, 55, "integer too large");
}
END_TEST

START_TEST(test_path_at)
{
	static const char text[] =
	        "{\"a\": [1, {\"b\": \"x\", \"c\": [[], {}, 12345]}], \"d\": true}";
	char path[128];
	const char *p12345 = strstr(text, "12345");
	ck_assert_int_eq(mgrok_json_path_at(text, sizeof(text) - 1, (size_t)(p12345 - text) + 5,
	                                    path, sizeof(path)),
	                 0);
	ck_assert_str_eq(path, "a[1].c[2]");
	const char *px = strstr(text, "\"x\"");
	ck_assert_int_eq(mgrok_json_path_at(text, sizeof(text) - 1, (size_t)(px - text) + 3, path,
	                                    sizeof(path)),
	                 0);
	ck_assert_str_eq(path, "a[1].b");
	const char *pt = strstr(text, "true");
	ck_assert_int_eq(mgrok_json_path_at(text, sizeof(text) - 1, (size_t)(pt - text) + 2, path,
	                                    sizeof(path)),
	                 0);
	ck_assert_str_eq(path, "d");
	/* Broken text, or a position past the end: no path, and no overrun. */
	ck_assert_int_eq(mgrok_json_path_at("{\"a\" 1}", 7, 6, path, sizeof(path)), -1);
	ck_assert_int_eq(mgrok_json_path_at("[1, 2", 5, 50, path, sizeof(path)), -1);
	ck_assert_int_eq(
	        mgrok_json_path_at(text, sizeof(text) - 1, (size_t)(p12345 - text) + 5, path, 4),
	        -1);
}
END_TEST

/* The loader reads text from memory as it reads a file (fuzzing uses it). */
START_TEST(test_load_text)
{
	struct mgrok_server_conf c;
	struct mgrok_conf_error e;
	static const char text[] = "{\"limits\": {\"max_pending_per_address\": 3}}";
	mgrok_server_conf_defaults(&c);
	ck_assert_uint_eq(c.max_pending_per_address, 8);
	ck_assert_int_eq(mgrok_server_conf_load_text(&c, "mem.json", text, sizeof(text) - 1, &e),
	                 0);
	ck_assert_uint_eq(c.max_pending_per_address, 3);
	ck_assert_int_eq(mgrok_server_conf_load_text(&c, "mem.json", "{\"limits\": 1}", 13, &e),
	                 -1);
	ck_assert_str_eq(e.file, "mem.json");
	ck_assert_str_eq(e.key, "limits");
	ck_assert_int_eq(e.line, 1);
	mgrok_server_conf_free(&c);
}
END_TEST

/* Checks between keys: the value left out keeps its default. */
START_TEST(test_cross_checks)
{
	struct mgrok_conf_error e;
	ck_assert_int_eq(server_load("{\n  \"heartbeat\": {\"interval\": 40}\n}", &e), -1);
	ck_error(e, "heartbeat.timeout", 2, 3, "must be greater than the interval (40 s)");

	ck_assert_int_eq(client_load("{\"heartbeat\": {\"interval\": 5, \"timeout\": 5}}", &e), -1);
	ck_error(e, "heartbeat.timeout", 1, 31, "must be greater than the interval");

	ck_assert_int_eq(client_load("{\"reconnect\": {\"initial\": 40}}", &e), -1);
	ck_error(e, "reconnect.max", 1, 2, "must not be less than the initial delay (40 s)");

	ck_assert_int_eq(client_load("{\"reconnect\": {\"initial\": 5, \"max\": 5}}", &e), 0);
}
END_TEST

/* The cluster section: its address, node name and lease, each checked
 * where it is written. */
START_TEST(test_cluster_section)
{
	struct mgrok_conf_error e;
	struct mgrok_server_conf c;
	mgrok_server_conf_defaults(&c);
	ck_assert_double_eq(c.cluster.lease, 6.0);
	ck_assert(!c.cluster.given);
	mgrok_server_conf_free(&c);
	if (!mgrok_claims_available) {
		ck_assert_int_eq(server_load("{\"cluster\": {\"redis\": \"r:6379\"}}", &e), -1);
		ck_error(e, "cluster", 1, 2, "no cluster support");
		return;
	}
	ck_assert_int_eq(server_load("{\"cluster\": {\"node\": \"n1\"}}", &e), -1);
	ck_error(e, "cluster.redis", 1, 2, "required");
	ck_assert_int_eq(server_load("{\"cluster\": {\"redis\": \"redis\"}}", &e), -1);
	ck_error(e, "cluster.redis", 1, 14, "\"unix:/path\"");
	ck_assert_int_eq(
	        server_load("{\n \"cluster\": {\"redis\": \"r:1\", \"node\": \"a|b\"}}", &e), -1);
	ck_error(e, "cluster.node", 2, 30, "expected a name");
	ck_assert_int_eq(server_load("{\"cluster\": {\"redis\": \"r:1\", \"lease\": 0.1}}", &e),
	                 -1);
	ck_error(e, "cluster.lease", 1, 30, "at least 0.5 s");
	ck_assert_int_eq(server_load("{\"cluster\": {\"redis\": \"r:1\", \"nodes\": 3}}", &e), -1);
	ck_error(e, "cluster.nodes", 1, 30, "unknown key");
	ck_assert_int_eq(server_load("{\"cluster\": {\"redis\": \"r:1\"}}", &e), -1);
	ck_error(e, "cluster.secret", 1, 2, "shared secret");
	ck_assert_int_eq(server_load("{\"cluster\": {\"redis\": \"r:1\", \"secret\": \"s\", "
	                             "\"secret_file\": \"/f\"}}",
	                             &e),
	                 -1);
	ck_error(e, "cluster.secret_file", 1, 45, "one of");
	ck_assert_int_eq(server_load("{\"listen\": \"0.0.0.0:7000\", \"cluster\": "
	                             "{\"redis\": \"r:1\", \"secret\": \"s\"}}",
	                             &e),
	                 -1);
	ck_error(e, "cluster.address", 1, 28, "wildcard");
	ck_assert_int_eq(server_load("{\"cluster\": {\"redis\": \"unix:/run/redis.sock\", "
	                             "\"node\": \"edge-1\", \"lease\": 2.5, \"secret\": \"s\", "
	                             "\"address\": \"10.0.0.11:7000\"}}",
	                             &e),
	                 0);
}
END_TEST

START_TEST(test_allow_ports_errors)
{
	struct mgrok_conf_error e;
	ck_assert_int_eq(server_load("{\n  \"allow_ports\": [\"20000-20100\", \"300-200\"]\n}", &e),
	                 -1);
	ck_error(e, "allow_ports[1]", 2, 34, "start is after end");

	ck_assert_int_eq(server_load("{\"allow_ports\": [\"1-2\", 0]}", &e), -1);
	ck_error(e, "allow_ports[1]", 1, 25, "port out of range 1-65535");

	ck_assert_int_eq(server_load("{\"allow_ports\": \"1-2,x\"}", &e), -1);
	ck_error(e, "allow_ports", 1, 2, "bad port range \"x\"");

	ck_assert_int_eq(server_load("{\"allow_ports\": []}", &e), -1);
	ck_error(e, "allow_ports", 1, 2, "must not be empty");

	ck_assert_int_eq(server_load("{\"allow_ports\": [true]}", &e), -1);
	ck_error(e, "allow_ports[0]", 1, 18, "got a boolean");

	ck_assert_int_eq(server_load("{\"allow_ports\": 8080}", &e), -1);
	ck_error(e, "allow_ports", 1, 2, "expected an array or a string");
}
END_TEST

START_TEST(test_duplicate_key)
{
	struct mgrok_conf_error e;
	ck_assert_int_eq(server_load("{\n"
	                             "  \"log\": {\"level\": \"info\"},\n"
	                             "  \"log\": {\"level\": \"debug\"}\n"
	                             "}\n",
	                             &e),
	                 -1);
	/* jansson places it at the end of the repeated key. */
	ck_error(e, "", 3, 7, "duplicate object key near '\"log\"'");
}
END_TEST

START_TEST(test_proxy_errors)
{
	struct mgrok_conf_error e;
	ck_assert_int_eq(client_load("{\n"
	                             "  \"proxies\": [\n"
	                             "    {\"name\": \"web\", \"type\": \"tcp\", \"local\": 80},\n"
	                             "    {\"name\": \"web\", \"type\": \"tcp\", \"local\": 81}\n"
	                             "  ]\n"
	                             "}\n",
	                             &e),
	                 -1);
	ck_error(e, "proxies[1].name", 4, 6, "duplicate proxy name (also proxies[0])");

	ck_assert_int_eq(client_load("{\n  \"proxies\": [\n    {\"name\": \"my web\"}]}", &e), -1);
	ck_error(e, "proxies[0].name", 3, 6, "must be 1-64 characters");

	ck_assert_int_eq(client_load("{\"proxies\": [{\"name\": \"\"}]}", &e), -1);
	ck_error(e, "proxies[0].name", 1, 15, "must be 1-64 characters");

	/* A missing key is placed at the object that lacks it. */
	ck_assert_int_eq(client_load("{\n"
	                             "  \"proxies\": [\n"
	                             "    {\"name\": \"a\", \"type\": \"tcp\", \"local\": 1},\n"
	                             "    {\"name\": \"web\", \"type\": \"tcp\"}\n"
	                             "  ]\n"
	                             "}\n",
	                             &e),
	                 -1);
	ck_error(e, "proxies[1].local", 4, 5, "missing required key");

	ck_assert_int_eq(client_load("{\"proxies\": [{\"local\": 1, \"name\": \"x\"}]}", &e), -1);
	ck_error(e, "proxies[0].type", 1, 14, "missing required key");

	ck_assert_int_eq(client_load("{\"proxies\": [{\"name\": \"x\", \"type\": \"\"}]}", &e), -1);
	ck_error(e, "proxies[0].type", 1, 28, "must not be empty");

	ck_assert_int_eq(client_load("{\"proxies\": [{\"name\": \"x\", \"options\": []}]}", &e),
	                 -1);
	ck_error(e, "proxies[0].options", 1, 28, "expected an object");
}
END_TEST

START_TEST(test_proxy_options_size)
{
	/* Protocol 3.1 caps encoded options at 4096 bytes. */
	struct mgrok_conf_error e;
	char text[5000];
	snprintf(text, sizeof(text),
	         "{\"proxies\": [{\"name\": \"x\", \"type\": \"tcp\", \"local\": 1,"
	         " \"options\": {\"k\": \"%4080s\"}}]}",
	         "");
	ck_assert_int_eq(client_load(text, &e), 0);
	snprintf(text, sizeof(text),
	         "{\"proxies\": [{\"name\": \"x\", \"type\": \"tcp\", \"local\": 1,"
	         " \"options\": {\"k\": \"%4090s\"}}]}",
	         "");
	ck_assert_int_eq(client_load(text, &e), -1);
	ck_error(e, "proxies[0].options", 1, 55, "longer than 4096 bytes");
}
END_TEST

START_TEST(test_local_forms)
{
	static const struct {
		const char *json, *want; /* want NULL: an error */
	} cases[] = {
	        {"80", "127.0.0.1:80"},
	        {"\"8080\"", "127.0.0.1:8080"},
	        {"65535", "127.0.0.1:65535"},
	        {"\"localhost:3000\"", "localhost:3000"},
	        {"\"[::1]:8080\"", "[::1]:8080"},
	        {"\"10.1.2.3:22\"", "10.1.2.3:22"},
	        {"0", NULL},
	        {"70000", NULL},
	        {"\"0\"", NULL},
	        {"\"99999\"", NULL},
	        {"\"\"", NULL},
	        {"\"::1:80\"", NULL},
	        {"\":80\"", NULL},
	        {"\"host:\"", NULL},
	        {"\"host:0\"", NULL},
	        {"\"host:8x\"", NULL},
	        {"\"[::1]8080\"", NULL},
	        {"\"[]:80\"", NULL},
	        {"true", NULL},
	        {"1.5", NULL},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		struct mgrok_client_conf c;
		struct mgrok_conf_error e;
		char text[256];
		snprintf(text, sizeof(text),
		         "{\"proxies\": [{\"name\": \"x\", \"type\": \"tcp\", \"local\": %s}]}",
		         cases[i].json);
		mgrok_client_conf_defaults(&c);
		int rc = mgrok_client_conf_load(&c, fixture("local.json", text), &e);
		if (cases[i].want) {
			ck_assert_msg(rc == 0, "local %s: %s", cases[i].json, e.msg);
			ck_assert_str_eq(c.proxies[0].local, cases[i].want);
		} else {
			ck_assert_msg(rc == -1, "local %s was accepted", cases[i].json);
			ck_assert_str_eq(e.key, "proxies[0].local");
			ck_assert_int_eq(e.column, 43);
		}
		mgrok_client_conf_free(&c);
	}
}
END_TEST

START_TEST(test_auth_errors)
{
	struct mgrok_conf_error e;
	ck_assert_int_eq(server_load("{\n  \"auth\": {\"token\": \"abc\"}\n}", &e), -1);
	ck_error(e, "auth.method", 2, 3, "missing required key");

	ck_assert_int_eq(server_load("{\n"
	                             "  \"auth\": [\n"
	                             "    {\"method\": \"token\", \"token\": \"abc\"},\n"
	                             "    {\"token_env\": \"MGROK_TOKEN\"}\n"
	                             "  ]\n"
	                             "}\n",
	                             &e),
	                 -1);
	ck_error(e, "auth[1].method", 4, 5, "missing required key");

	ck_assert_int_eq(server_load("{\"auth\": [{\"method\": \"a\"}, {\"method\": \"a\"}]}", &e),
	                 -1);
	ck_error(e, "auth[1].method", 1, 29, "already listed");

	ck_assert_int_eq(server_load("{\"auth\": [{\"method\": \"\"}]}", &e), -1);
	ck_error(e, "auth[0].method", 1, 12, "expected a non-empty string");

	ck_assert_int_eq(server_load("{\"auth\": []}", &e), -1);
	ck_error(e, "auth", 1, 2, "must not be empty");

	ck_assert_int_eq(server_load("{\"auth\": \"token\"}", &e), -1);
	ck_error(e, "auth", 1, 2, "expected an object or an array of objects, got a string");

	ck_assert_int_eq(server_load("{\"auth\": [{\"method\": \"a\"}, 5]}", &e), -1);
	ck_error(e, "auth[1]", 1, 28, "got an integer");

	/* A client proves one method: an array is refused. */
	ck_assert_int_eq(client_load("{\"auth\": [{\"method\": \"token\"}]}", &e), -1);
	ck_error(e, "auth", 1, 2, "expected an object");

	ck_assert_int_eq(client_load("{\"auth\": {\"method\": null}}", &e), -1);
	ck_error(e, "auth.method", 1, 11, "expected a non-empty string");
}
END_TEST

/* Array auth: several allowed methods, each with its own options. */
START_TEST(test_array_auth)
{
	struct mgrok_server_conf s;
	struct mgrok_conf_error e;
	mgrok_server_conf_defaults(&s);
	ck_assert_int_eq(
	        mgrok_server_conf_load(
	                &s,
	                fixture("auth.json",
	                        "{\"auth\": [{\"method\": \"token\", \"token_env\": \"T\"},"
	                        " {\"method\": \"hmac\", \"keys\": {\"a\": \"b\"}, \"n\": 2}]}"),
	                &e),
	        0);
	ck_assert_uint_eq(s.n_auth, 2);
	ck_assert_str_eq(s.auth[0].method, "token");
	ck_assert_str_eq(opt_str(s.auth[0].options, "token_env"), "T");
	ck_assert_str_eq(s.auth[1].method, "hmac");
	ck_assert_uint_eq(json_object_size(s.auth[1].options), 2);
	ck_assert_str_eq(opt_str(json_object_get(s.auth[1].options, "keys"), "a"), "b");
	ck_assert_int_eq(json_integer_value(json_object_get(s.auth[1].options, "n")), 2);
	mgrok_server_conf_free(&s);
}
END_TEST

/* Whether jansson's "near '...'" quotes more than punctuation or a key. */
static bool quotes_token(const char *msg)
{
	const char *near = strstr(msg, " near '");
	if (!near || strstr(msg, "duplicate object key"))
		return false;
	return !(near[7] && strchr("{}[],:", near[7]) && near[8] == '\'');
}

/* No error text may carry a secret, whatever is wrong around it. */
START_TEST(test_secret_not_in_error)
{
	static const char *const texts[] = {
	        "{\"auth\": {\"method\": 5, \"token\": \"s3cr3t-VALUE\"}}",
	        "{\"auth\": {\"token\": \"s3cr3t-VALUE\"}}",
	        "{\"auth\": {\"method\": \"token\", \"token\": \"s3cr3t-VALUE\\q\"}}",
	        "{\"auth\": {\"method\": \"token\", \"token\" \"s3cr3t-VALUE\"}}",
	        "{\"auth\": {\"method\": \"token\", \"token\": \"s3cr3t-VALUE\"} \"x\": 1}",
	        "{\"auth\": {\"method\": \"token\", \"token\": \"s3cr3t-VALUE",
	        "{\"auth\": {\"method\": \"token\", \"token\": \"s3cr3t-VALUE\n\"}}",
	        "{\"auth\": {\"method\": \"token\", \"token\": \"s3cr3t-VALUE\\u12\"}}",
	        "{\"auth\": {\"method\": \"token\", \"token\": \"s3cr3t-VALUE\"}, \"bogus\": 1}",
	        "{\"auth\": [{\"token\": \"s3cr3t-VALUE\"}]}",
	        "{\"auth\": {\"method\": [\"s3cr3t-VALUE\"]}}",
	        "{\"auth\": {\"method\": \"token\", \"token\": \"s3cr3t-VALUE\", \"token\": "
	        "\"s3cr3t-VALUE\"}}",
	        /* Forgotten quotes: jansson would quote the bare word. */
	        "{\"auth\": {\"method\": \"token\", \"token\": trues3cr3t}}",
	        "{\"auth\": {\"method\": \"token\", \"token\": 123s3cr3t}}",
	        "{\"auth\": {\"method\": \"token\", \"token\": s3cr3t}}",
	};
	for (size_t i = 0; i < sizeof(texts) / sizeof(*texts); i++) {
		struct mgrok_conf_error e;
		char buf[1024];
		ck_assert_int_eq(server_load(texts[i], &e), -1);
		mgrok_conf_error_format(&e, buf, sizeof(buf));
		ck_assert_msg(!strstr(buf, "s3cr3t"), "server, case %zu: %s", i, buf);
		ck_assert_int_eq(client_load(texts[i], &e), -1);
		mgrok_conf_error_format(&e, buf, sizeof(buf));
		ck_assert_msg(!strstr(buf, "s3cr3t"), "client, case %zu: %s", i, buf);
		ck_assert_msg(!quotes_token(buf), "client, case %zu: %s", i, buf);
		ck_assert_msg(e.line == 1 || e.line == 2, "case %zu: line %d", i, e.line);
	}
}
END_TEST

/* ---- whole-config checks ------------------------------------------------ */

START_TEST(test_conf_check)
{
	struct mgrok_client_conf c;
	struct mgrok_server_conf s;
	struct mgrok_conf_error e;
	char buf[512];
	mgrok_client_conf_defaults(&c);
	ck_assert_int_eq(mgrok_client_conf_check(&c, &e), -1);
	ck_assert_str_eq(e.file, "");
	ck_assert_int_eq(e.line, 0);
	ck_assert_str_eq(mgrok_conf_error_format(&e, buf, sizeof(buf)),
	                 "no proxies: give one on the command line or in \"proxies\"");

	/* As the command line adds them: */
	c.proxies = calloc(2, sizeof(*c.proxies));
	c.n_proxies = 2;
	for (int i = 0; i < 2; i++) {
		c.proxies[i].name = strdup("web");
		c.proxies[i].type = strdup("tcp");
		c.proxies[i].local = strdup("127.0.0.1:80");
		c.proxies[i].options = json_object();
	}
	ck_assert_int_eq(mgrok_client_conf_check(&c, &e), -1);
	ck_assert_str_eq(e.key, "proxies[1]");
	ck_assert_ptr_nonnull(strstr(e.msg, "duplicate"));
	c.proxies[1].name[0] = '!';
	ck_assert_int_eq(mgrok_client_conf_check(&c, &e), -1);
	ck_assert_ptr_nonnull(strstr(e.msg, "1-64"));
	c.proxies[1].name[0] = 'x';
	ck_assert_int_eq(mgrok_client_conf_check(&c, &e), 0);

	c.heartbeat_timeout = c.heartbeat_interval;
	ck_assert_int_eq(mgrok_client_conf_check(&c, &e), -1);
	ck_assert_str_eq(mgrok_conf_error_format(&e, buf, sizeof(buf)),
	                 "heartbeat.timeout: must be greater than the interval (10 s)");
	c.heartbeat_timeout = 30;
	c.reconnect_max = 0.25;
	ck_assert_int_eq(mgrok_client_conf_check(&c, &e), -1);
	ck_assert_str_eq(e.key, "reconnect.max");
	c.reconnect_max = 30;
	free(c.server);
	c.server = strdup("nowhere");
	ck_assert_int_eq(mgrok_client_conf_check(&c, &e), -1);
	ck_assert_str_eq(e.key, "server");
	mgrok_client_conf_free(&c);

	mgrok_server_conf_defaults(&s);
	ck_assert_int_eq(mgrok_server_conf_check(&s, &e), 0);
	s.n_allow_ports = 0;
	ck_assert_int_eq(mgrok_server_conf_check(&s, &e), -1);
	ck_assert_str_eq(e.key, "allow_ports");
	s.n_allow_ports = 1;
	s.heartbeat_interval = 0;
	ck_assert_int_eq(mgrok_server_conf_check(&s, &e), -1);
	ck_assert_str_eq(e.key, "heartbeat.interval");
	mgrok_server_conf_free(&s);
}
END_TEST

START_TEST(test_error_format)
{
	struct mgrok_conf_error e = {"a.json", 3, 7, "proxies[1].remote_port", "out of range"};
	char buf[512], small[12];
	ck_assert_str_eq(mgrok_conf_error_format(&e, buf, sizeof(buf)),
	                 "a.json:3:7: proxies[1].remote_port: out of range");
	e.column = 0;
	ck_assert_str_eq(mgrok_conf_error_format(&e, buf, sizeof(buf)),
	                 "a.json:3: proxies[1].remote_port: out of range");
	e.line = 0;
	ck_assert_str_eq(mgrok_conf_error_format(&e, buf, sizeof(buf)),
	                 "a.json: proxies[1].remote_port: out of range");
	e.key[0] = '\0';
	ck_assert_str_eq(mgrok_conf_error_format(&e, buf, sizeof(buf)), "a.json: out of range");
	e.file[0] = '\0';
	ck_assert_str_eq(mgrok_conf_error_format(&e, buf, sizeof(buf)), "out of range");
	ck_assert_str_eq(mgrok_conf_error_format(&e, small, sizeof(small)), "out of rang");
}
END_TEST

/* ---- the locator -------------------------------------------------------- */

static void ck_locate(const char *text, const char *path, int line, int column)
{
	int l = -1, c = -1;
	int rc = mgrok_json_locate(text, strlen(text), path, &l, &c);
	if (line == 0) {
		ck_assert_msg(rc == -1, "path %s found at %d:%d", path, l, c);
		return;
	}
	ck_assert_msg(rc == 0, "path %s not found", path);
	ck_assert_msg(l == line && c == column, "path %s at %d:%d, want %d:%d", path, l, c, line,
	              column);
}

static const char nested[] = "{\"a\": {\"b\": [1, {\"c\": 2}], \"d\": \"x\"},\n"
                             " \"e\": [[], {\"f\": null}, -1.5e3, true],\n"
                             "\t\"g\": {}}";

START_TEST(test_locate_nested)
{
	ck_locate(nested, "", 1, 1);
	ck_locate(nested, ".a", 1, 2);
	ck_locate(nested, "a", 1, 2);
	ck_locate(nested, ".a.b", 1, 8);
	ck_locate(nested, ".a.b[0]", 1, 14);
	ck_locate(nested, ".a.b[1]", 1, 17);
	ck_locate(nested, ".a.b[1].c", 1, 18);
	ck_locate(nested, ".a.d", 1, 28);
	ck_locate(nested, ".e", 2, 2);
	ck_locate(nested, "e[0]", 2, 8);
	ck_locate(nested, ".e[1]", 2, 12);
	ck_locate(nested, ".e[1].f", 2, 13);
	ck_locate(nested, ".e[2]", 2, 25);
	ck_locate(nested, ".e[3]", 2, 33);
	ck_locate(nested, ".g", 3, 2);
	ck_locate("\n\n   {\"x\": 1}", "", 3, 4);
	ck_locate("\r\n{\r\n  \"x\": 1}", ".x", 3, 3);
	/* Not there: */
	ck_locate(nested, ".z", 0, 0);
	ck_locate(nested, ".a.z", 0, 0);
	ck_locate(nested, ".a.b[2]", 0, 0);
	ck_locate(nested, ".e[0][0]", 0, 0);
	ck_locate(nested, ".a.b.c", 0, 0);
	ck_locate(nested, ".a[0]", 0, 0);
	ck_locate(nested, ".g.x", 0, 0);
	ck_locate(nested, ".a..b", 0, 0);
	ck_locate(nested, ".e[x]", 0, 0);
	ck_locate(nested, ".e[1", 0, 0);
	ck_locate(nested, ".e[]", 0, 0);
	ck_locate("", "", 0, 0);
	ck_locate("   ", "", 0, 0);
}
END_TEST

START_TEST(test_locate_strings)
{
	/* Braces, brackets, quotes and backslashes inside strings are text. */
	static const char text[] = "{\n"
	                           "  \"s\": \"{\\\"a\\\": [1, 2]} } ] \\\\\",\n"
	                           "  \"t\\\"q\": {\"x\": \"}}}\", \"y\\\\\": \"\\\\\\\"\"},\n"
	                           "  \"u\": [\"]\", \",\", \"\\u005d\"],\n"
	                           "  \"target\": 1\n"
	                           "}";
	ck_locate(text, ".s", 2, 3);
	ck_locate(text, ".t\"q", 3, 3);
	ck_locate(text, ".t\"q.x", 3, 12);
	ck_locate(text, ".t\"q.y\\", 3, 24);
	ck_locate(text, ".u[2]", 4, 19);
	ck_locate(text, ".target", 5, 3);
	ck_locate(text, ".x", 0, 0);

	/* Keys are compared by what they decode to; columns count bytes. */
	static const char esc[] = "{\"\\u0041b\": 1, \"caf\\u00e9\": 2, \"\\ud83d\\ude00\": 3,"
	                          " \"\xc3\xa9\": 4, \"k\": 5, \"a\\/b\\n\": 6}";
	ck_locate(esc, ".Ab", 1, 2);
	ck_locate(esc, ".caf\xc3\xa9", 1, 16);
	ck_locate(esc, ".\xf0\x9f\x98\x80", 1, 32);
	ck_locate(esc, ".\xc3\xa9", 1, 51);
	ck_locate(esc, ".k", 1, 60);
	ck_locate(esc, ".a/b\n", 1, 68);
	ck_locate(esc, ".\\u0041b", 0, 0);
}
END_TEST

/* Cut anywhere, the text is scanned without reading past its end (ASan
 * watches: each prefix sits in a block of exactly its size). */
START_TEST(test_locate_truncated)
{
	static const char *const paths[] = {".a.b[1].c", ".e[3]", ".g", ".zz", ""};
	size_t n = strlen(nested);
	for (size_t len = 0; len <= n; len++) {
		char *copy = malloc(len ? len : 1);
		memcpy(copy, nested, len);
		for (size_t i = 0; i < sizeof(paths) / sizeof(*paths); i++) {
			int l = 0, c = 0;
			if (mgrok_json_locate(copy, len, paths[i], &l, &c) == 0)
				ck_assert(l >= 1 && c >= 1);
		}
		free(copy);
	}
	int l = 0, c = 0;
	ck_assert_int_eq(mgrok_json_locate("{\"a\": \"\\u12", 11, ".b", &l, &c), -1);
	ck_assert_int_eq(mgrok_json_locate("{\"a\\", 4, ".a", &l, &c), -1);
	ck_assert_int_eq(mgrok_json_locate("[[[[[[[[", 8, "[0][0][0][0][0][0][0][1]", &l, &c), -1);
	ck_assert_int_eq(mgrok_json_locate("{\"a\": ]}", 8, ".b", &l, &c), -1);
}
END_TEST

/* ---- small parsers ------------------------------------------------------ */

START_TEST(test_port_ranges)
{
	static const struct {
		const char *in;
		size_t n; /* 0: an error */
		uint16_t lo0, hi0, lo1, hi1;
	} cases[] = {
	        {"20000-20100", 1, 20000, 20100, 0, 0},
	        {"8080", 1, 8080, 8080, 0, 0},
	        {"20000-20100,30000", 2, 20000, 20100, 30000, 30000},
	        {" 1 - 2 , 3 ", 2, 1, 2, 3, 3},
	        {"1-65535", 1, 1, 65535, 0, 0},
	        {"5-5", 1, 5, 5, 0, 0},
	        {"10,20,30", 3, 10, 10, 20, 20},
	        {"", 0, 0, 0, 0, 0},
	        {",", 0, 0, 0, 0, 0},
	        {"1,", 0, 0, 0, 0, 0},
	        {",1", 0, 0, 0, 0, 0},
	        {"0", 0, 0, 0, 0, 0},
	        {"0-10", 0, 0, 0, 0, 0},
	        {"65536", 0, 0, 0, 0, 0},
	        {"1-65536", 0, 0, 0, 0, 0},
	        {"200-100", 0, 0, 0, 0, 0},
	        {"abc", 0, 0, 0, 0, 0},
	        {"1-2-3", 0, 0, 0, 0, 0},
	        {"1 2", 0, 0, 0, 0, 0},
	        {"-5", 0, 0, 0, 0, 0},
	        {"5-", 0, 0, 0, 0, 0},
	        {"+5", 0, 0, 0, 0, 0},
	        {"1;2", 0, 0, 0, 0, 0},
	        {"99999999999999999999", 0, 0, 0, 0, 0},
	        {"0x10", 0, 0, 0, 0, 0},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		struct mgrok_port_range sentinel, *r = &sentinel; /* untouched on error */
		size_t n = 99;
		char msg[128] = "";
		int rc = mgrok_port_ranges_parse(cases[i].in, &r, &n, msg, sizeof(msg));
		if (!cases[i].n) {
			ck_assert_msg(rc == -1, "\"%s\" was accepted", cases[i].in);
			ck_assert_msg(r == &sentinel && n == 99, "\"%s\" changed out", cases[i].in);
			ck_assert_msg(strstr(msg, "bad port range"), "\"%s\": %s", cases[i].in,
			              msg);
			continue;
		}
		ck_assert_msg(rc == 0, "\"%s\": %s", cases[i].in, msg);
		ck_assert_uint_eq(n, cases[i].n);
		ck_assert_uint_eq(r[0].lo, cases[i].lo0);
		ck_assert_uint_eq(r[0].hi, cases[i].hi0);
		if (n > 1) {
			ck_assert_uint_eq(r[1].lo, cases[i].lo1);
			ck_assert_uint_eq(r[1].hi, cases[i].hi1);
		}
		free(r);
	}
}
END_TEST

START_TEST(test_port_range_messages)
{
	struct mgrok_port_range *r = NULL;
	size_t n = 0;
	char msg[128];
	ck_assert_int_eq(mgrok_port_ranges_parse("1-2,300-200", &r, &n, msg, sizeof(msg)), -1);
	ck_assert_str_eq(msg, "bad port range \"300-200\": start is after end");
	ck_assert_int_eq(mgrok_port_ranges_parse("70000", &r, &n, msg, sizeof(msg)), -1);
	ck_assert_str_eq(msg, "bad port range \"70000\": expected PORT or LO-HI, ports 1-65535");
	ck_assert_ptr_null(r);
}
END_TEST

START_TEST(test_port_allowed)
{
	const struct mgrok_port_range r[] = {{20000, 20100}, {8080, 8080}};
	ck_assert(mgrok_port_allowed(r, 2, 20000));
	ck_assert(mgrok_port_allowed(r, 2, 20100));
	ck_assert(mgrok_port_allowed(r, 2, 20050));
	ck_assert(mgrok_port_allowed(r, 2, 8080));
	ck_assert(!mgrok_port_allowed(r, 2, 19999));
	ck_assert(!mgrok_port_allowed(r, 2, 20101));
	ck_assert(!mgrok_port_allowed(r, 2, 8081));
	ck_assert(!mgrok_port_allowed(r, 2, 0));
	ck_assert(!mgrok_port_allowed(r, 0, 8080));
	ck_assert(!mgrok_port_allowed(r, 1, 8080));
}
END_TEST

START_TEST(test_log_level_parse)
{
	ck_assert_int_eq(mgrok_log_level_parse("error"), MGROK_LOG_ERROR);
	ck_assert_int_eq(mgrok_log_level_parse("warn"), MGROK_LOG_WARN);
	ck_assert_int_eq(mgrok_log_level_parse("info"), MGROK_LOG_INFO);
	ck_assert_int_eq(mgrok_log_level_parse("debug"), MGROK_LOG_DEBUG);
	ck_assert_int_eq(mgrok_log_level_parse("INFO"), -1);
	ck_assert_int_eq(mgrok_log_level_parse("warning"), -1);
	ck_assert_int_eq(mgrok_log_level_parse(""), -1);
	ck_assert_int_eq(mgrok_log_level_parse(NULL), -1);
}
END_TEST

START_TEST(test_name_valid)
{
	char longest[65];
	memset(longest, 'a', 64);
	longest[64] = '\0';
	ck_assert(mgrok_name_valid("web", 3));
	ck_assert(mgrok_name_valid("A-Z_a.z09", 9));
	ck_assert(mgrok_name_valid(longest, 64));
	ck_assert(!mgrok_name_valid(longest, 65));
	ck_assert(!mgrok_name_valid("", 0));
	ck_assert(!mgrok_name_valid(NULL, 3));
	ck_assert(!mgrok_name_valid("my web", 6));
	ck_assert(!mgrok_name_valid("a/b", 3));
	ck_assert(!mgrok_name_valid("caf\xc3\xa9", 5));
	ck_assert(!mgrok_name_valid("a\0b", 3)); /* the length counts, not the NUL */
	ck_assert(mgrok_name_valid("ab!", 2));
}
END_TEST

static Suite *config_suite(void)
{
	Suite *s = suite_create("config");
	TCase *files = tcase_create("files");
	tcase_add_test(files, test_server_full);
	tcase_add_test(files, test_client_full);
	tcase_add_test(files, test_defaults);
	tcase_add_test(files, test_partial_over_defaults);
	tcase_add_test(files, test_example_configs);
	tcase_add_test(files, test_array_auth);
	suite_add_tcase(s, files);

	TCase *errors = tcase_create("errors");
	tcase_add_test(errors, test_syntax_error);
	tcase_add_test(errors, test_not_an_object);
	tcase_add_test(errors, test_missing_file);
	tcase_add_test(errors, test_unknown_key);
	tcase_add_test(errors, test_tls_and_rate_limit);
	tcase_add_test(errors, test_wrong_type);
	tcase_add_test(errors, test_impossible_values);
	tcase_add_test(errors, test_cross_checks);
	tcase_add_test(errors, test_cluster_section);
	tcase_add_test(errors, test_plugin_names);
	tcase_add_test(errors, test_integer_too_large);
	tcase_add_test(errors, test_load_text);
	tcase_add_test(errors, test_allow_ports_errors);
	tcase_add_test(errors, test_duplicate_key);
	tcase_add_test(errors, test_proxy_errors);
	tcase_add_test(errors, test_proxy_options_size);
	tcase_add_test(errors, test_local_forms);
	tcase_add_test(errors, test_auth_errors);
	tcase_add_test(errors, test_secret_not_in_error);
	tcase_add_test(errors, test_conf_check);
	tcase_add_test(errors, test_error_format);
	suite_add_tcase(s, errors);

	TCase *locate = tcase_create("locate");
	tcase_add_test(locate, test_locate_nested);
	tcase_add_test(locate, test_locate_strings);
	tcase_add_test(locate, test_locate_truncated);
	tcase_add_test(locate, test_path_at);
	suite_add_tcase(s, locate);

	TCase *parsers = tcase_create("parsers");
	tcase_add_test(parsers, test_port_ranges);
	tcase_add_test(parsers, test_port_range_messages);
	tcase_add_test(parsers, test_port_allowed);
	tcase_add_test(parsers, test_log_level_parse);
	tcase_add_test(parsers, test_name_valid);
	suite_add_tcase(s, parsers);
	return s;
}

/* Removes the fixtures; the directory holds only files this program wrote. */
static void remove_tmpdir(void)
{
	DIR *d = opendir(tmpdir);
	struct dirent *ent;
	char path[512];
	while (d && (ent = readdir(d)) != NULL) {
		if (ent->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", tmpdir, ent->d_name);
		unlink(path);
	}
	if (d)
		closedir(d);
	rmdir(tmpdir);
}

int main(void)
{
	const char *base = getenv("TMPDIR");
	snprintf(tmpdir, sizeof(tmpdir), "%s/check_config.XXXXXX", base && *base ? base : "/tmp");
	if (strlen(tmpdir) >= sizeof(tmpdir) - 1 || !mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return EXIT_FAILURE;
	}
	SRunner *sr = srunner_create(config_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	remove_tmpdir();
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
