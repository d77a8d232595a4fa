/*
 * Command-line flags over a loaded (or default) config: the mains parse the
 * arguments, and the values go through the same rules as the file's.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "codec.h"

static void replace(char **slot, const char *value)
{
	if (!value)
		return;
	free(*slot);
	*slot = mgrok_xstrdup(value);
}

static int flag_error(struct mgrok_conf_error *err, const char *flag, const char *fmt,
                      const char *value)
{
	memset(err, 0, sizeof(*err));
	snprintf(err->key, sizeof(err->key), "%s", flag);
	snprintf(err->msg, sizeof(err->msg), fmt, value);
	return -1;
}

/* --admin-listen: the endpoint on, there. */
static int apply_admin_listen(struct mgrok_admin_conf *a, const char *listen,
                              struct mgrok_conf_error *err)
{
	if (!listen)
		return 0;
	const char *why = mgrok_hostport_problem(listen);
	if (why)
		return flag_error(err, "--admin-listen", "%s", why);
	replace(&a->listen, listen);
	a->given = true;
	return 0;
}

/* Sets key of the proxy plugin's section, made when missing. */
static void section_set(struct mgrok_server_conf *c, const char *plugin, const char *key,
                        const char *value)
{
	if (!value)
		return;
	if (!c->proxy_sections)
		c->proxy_sections = json_object();
	json_t *sec = json_object_get(c->proxy_sections, plugin);
	if (!sec) {
		sec = json_object();
		json_object_set_new(c->proxy_sections, plugin, sec);
	}
	json_object_set_new(sec, key, json_string(value));
}

/* --http-listen, --domain, --tls-sni-listen; tls names come from the http
 * domain unless its section has a domain of its own. */
static void apply_name_flags(struct mgrok_server_conf *c, const struct mgrok_server_flags *f)
{
	section_set(c, "http", "listen", f->http_listen);
	section_set(c, "tls", "listen", f->tls_sni_listen);
	/* --domain names the domain of the listeners there are. */
	if (json_object_get(c->proxy_sections, "http"))
		section_set(c, "http", "domain", f->domain);
	if (json_object_get(c->proxy_sections, "tls"))
		section_set(c, "tls", "domain", f->domain);
	json_t *http = json_object_get(c->proxy_sections, "http");
	json_t *tls = json_object_get(c->proxy_sections, "tls");
	json_t *domain = json_object_get(http, "domain");
	if (tls && domain && !json_object_get(tls, "domain"))
		json_object_set(tls, "domain", domain);
}

int mgrok_server_conf_apply_flags(struct mgrok_server_conf *c, const struct mgrok_server_flags *f,
                                  struct mgrok_conf_error *err)
{
	apply_name_flags(c, f);
	/* MGROK_TOKEN stands in for --token only where the config names no
	 * auth of its own: a users file must not vanish behind a stray variable
	 * (and "token_env": "MGROK_TOKEN" is how a config asks for it). */
	const char *token = f->token ? f->token : c->n_auth ? NULL : getenv("MGROK_TOKEN");
	if (token && *token)
		mgrok_server_conf_use_token(c, token);
	replace(&c->listen, f->listen);
	replace(&c->proxy_bind, f->proxy_bind);
	replace(&c->public_host, f->public_host);
	replace(&c->plugin_dir, f->plugin_dir);
	replace(&c->tls.cert, f->tls_cert);
	replace(&c->tls.key, f->tls_key);
	if (apply_admin_listen(&c->admin, f->admin_listen, err) < 0)
		return -1;
	if (f->allow_ports) {
		struct mgrok_port_range *r;
		size_t n;
		char msg[128];
		if (mgrok_port_ranges_parse(f->allow_ports, &r, &n, msg, sizeof(msg)) < 0)
			return flag_error(err, "--allow-ports", "%s", msg);
		free(c->allow_ports);
		c->allow_ports = r;
		c->n_allow_ports = n;
	}
	return 0;
}

/* The quick form: one proxy from the command line, added to any of -c. */
static int add_quick_proxy(struct mgrok_client_conf *c, const struct mgrok_client_flags *f,
                           struct mgrok_conf_error *err)
{
	char *end, target[300], defname[80];
	long rport = f->remote_port ? strtol(f->remote_port, &end, 10) : 0;
	if (f->remote_port && (*end || !*f->remote_port || rport < 0 || rport > 65535))
		return flag_error(err, "--remote-port", "'%s' is not a port (0-65535)",
		                  f->remote_port);
	const char *why = mgrok_local_target(f->local, target, sizeof(target));
	if (why)
		return flag_error(err, f->local, "%s", why);
	snprintf(defname, sizeof(defname), "%s-%s", f->type, strrchr(target, ':') + 1);
	const char *name = f->name ? f->name : defname;
	if (!mgrok_name_valid(name, strlen(name)))
		return flag_error(err, "--name", "'%s' is not a valid name (" MGROK_NAME_RULE ")",
		                  name);
	for (size_t i = 0; i < c->n_proxies; i++)
		if (strcmp(c->proxies[i].name, name) == 0)
			return flag_error(err, "--name",
			                  "proxy name '%s' is also in the config file", name);
	c->proxies = mgrok_xrealloc(c->proxies, (c->n_proxies + 1) * sizeof(*c->proxies));
	struct mgrok_proxy_conf *p = &c->proxies[c->n_proxies++];
	memset(p, 0, sizeof(*p));
	p->name = mgrok_xstrdup(name);
	p->type = mgrok_xstrdup(f->type);
	p->local = mgrok_xstrdup(target);
	p->remote_port = (uint16_t)rport;
	p->options = json_object();
	const char *opts[][2] = {{"subdomain", f->subdomain},
	                         {"hostname", f->hostname},
	                         {"host_header", f->host_header},
	                         {"basic_auth", f->basic_auth}};
	for (size_t i = 0; i < sizeof(opts) / sizeof(*opts); i++)
		if (opts[i][1])
			json_object_set_new(p->options, opts[i][0], json_string(opts[i][1]));
	if (f->proxy_protocol &&
	    (p->proxy_protocol = mgrok_pp_version_parse(f->proxy_protocol)) < 0)
		return flag_error(err, "--proxy-protocol", "'%s': expected v1 or v2",
		                  f->proxy_protocol);
	return 0;
}

int mgrok_client_conf_apply_flags(struct mgrok_client_conf *c, const struct mgrok_client_flags *f,
                                  struct mgrok_conf_error *err)
{
	if (f->type && add_quick_proxy(c, f, err) < 0)
		return -1;
	if (f->proxy_protocol && !f->type)
		return flag_error(
		        err, "--proxy-protocol",
		        "goes with TYPE LOCAL (%s: set \"proxy_protocol\" per proxy in the "
		        "config)",
		        f->proxy_protocol);
	const char *named[][2] = {{"--subdomain", f->subdomain},
	                          {"--hostname", f->hostname},
	                          {"--host-header", f->host_header},
	                          {"--basic-auth", f->basic_auth}};
	for (size_t i = 0; !f->type && i < sizeof(named) / sizeof(*named); i++)
		if (named[i][1])
			return flag_error(err, named[i][0], "%s",
			                  "goes with TYPE LOCAL (set it in the proxy's \"options\" "
			                  "in the config)");
	bool own_auth = c->auth.method && strcmp(c->auth.method, "none") != 0;
	const char *token = f->token ? f->token : own_auth ? NULL : getenv("MGROK_TOKEN");
	if (token && *token)
		mgrok_client_conf_use_token(c, token);
	replace(&c->server, f->server);
	replace(&c->plugin_dir, f->plugin_dir);
	if (f->tls || f->tls_ca || f->tls_fingerprint || f->tls_insecure)
		c->tls.enabled = true;
	replace(&c->tls.ca, f->tls_ca);
	replace(&c->tls.fingerprint, f->tls_fingerprint);
	if (f->tls_insecure)
		c->tls.insecure = true;
	return apply_admin_listen(&c->admin, f->admin_listen, err);
}
