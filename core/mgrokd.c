/* mgrokd: the tunnel server. Parses arguments and wires the parts. */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "notify.h"
#include "run.h"
#include "server.h"
#include "status.h"
#include "tls.h"

/* One exit status per class of error (usage() lists them). */
enum { EXIT_RUNTIME = 1, EXIT_CONFIG = 2 };

static void usage(FILE *to)
{
	fputs("usage: mgrokd [-c FILE] [--check] [options]\n"
	      "       mgrokd status [-c FILE] [--admin-listen ADDR] [--json]\n"
	      "                                sessions and proxies, from the admin endpoint\n"
	      "  -c, --config FILE      JSON config (see mgrokd.json in the docs)\n"
	      "      --check            validate the configuration and exit\n"
	      "      --listen ADDR      control address, host:port (default 0.0.0.0:7000)\n"
	      "      --token TOKEN      require the token auth method with this secret\n"
	      "                         (or set MGROK_TOKEN; prefer a token_file in the config)\n"
	      "      --allow-ports LIST public ports clients may ask for, e.g. 20000-20100,8080\n"
	      "      --proxy-bind HOST  address public ports are bound on (default: the listen "
	      "host)\n"
	      "      --public-host HOST host name shown in public addresses\n"
	      "      --http-listen ADDR serve http proxies by Host on this shared address\n"
	      "      --tls-sni-listen ADDR\n"
	      "                         serve tls proxies by SNI on this shared address\n"
	      "      --domain NAME      clients get subdomains of NAME there\n"
	      "      --admin-listen ADDR\n"
	      "                         serve metrics and status over HTTP here (host:port)\n"
	      "      --tls-cert FILE    serve TLS with this certificate (chain), PEM\n"
	      "      --tls-key FILE     ... and this private key, PEM\n"
	      "      --gen-cert DIR     write a self-signed DIR/cert.pem and DIR/key.pem for the\n"
	      "                         --public-host name (default: localhost, 127.0.0.1\n"
	      "                         and ::1), print the fingerprint clients pin, exit\n"
	      "      --plugin-dir DIR   where plugins are loaded from (default " MGROK_PLUGIN_DIR
	      ")\n"
	      "  -v, --verbose          log debug messages\n"
	      "  -q, --quiet            log one level less (-qq: errors only)\n"
	      "      --version          print the version\n"
	      "  -h, --help             this text\n"
	      "\n"
	      "exit status, the same with and without --check:\n"
	      "  0  success (a clean shutdown on SIGTERM or SIGINT)\n"
	      "  1  a failure at run time: the control port cannot be bound, --gen-cert\n"
	      "     cannot write its files\n"
	      "  2  a usage or configuration error: a bad option or config file, a plugin\n"
	      "     that cannot be loaded or refuses its options, unreadable TLS files\n",
	      to);
}

enum {
	OPT_CHECK = 256,
	OPT_LISTEN,
	OPT_TOKEN,
	OPT_PORTS,
	OPT_BIND,
	OPT_PUBLIC,
	OPT_PLUGINS,
	OPT_VERSION,
	OPT_TLS_CERT,
	OPT_TLS_KEY,
	OPT_GEN_CERT,
	OPT_HTTP_LISTEN,
	OPT_TLS_SNI_LISTEN,
	OPT_DOMAIN,
	OPT_ADMIN_LISTEN,
};

static const struct option options[] = {
        {"config", required_argument, NULL, 'c'},
        {"check", no_argument, NULL, OPT_CHECK},
        {"listen", required_argument, NULL, OPT_LISTEN},
        {"token", required_argument, NULL, OPT_TOKEN},
        {"allow-ports", required_argument, NULL, OPT_PORTS},
        {"proxy-bind", required_argument, NULL, OPT_BIND},
        {"public-host", required_argument, NULL, OPT_PUBLIC},
        {"plugin-dir", required_argument, NULL, OPT_PLUGINS},
        {"tls-cert", required_argument, NULL, OPT_TLS_CERT},
        {"tls-key", required_argument, NULL, OPT_TLS_KEY},
        {"gen-cert", required_argument, NULL, OPT_GEN_CERT},
        {"http-listen", required_argument, NULL, OPT_HTTP_LISTEN},
        {"tls-sni-listen", required_argument, NULL, OPT_TLS_SNI_LISTEN},
        {"domain", required_argument, NULL, OPT_DOMAIN},
        {"admin-listen", required_argument, NULL, OPT_ADMIN_LISTEN},
        {"verbose", no_argument, NULL, 'v'},
        {"quiet", no_argument, NULL, 'q'},
        {"version", no_argument, NULL, OPT_VERSION},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
};

/* --gen-cert: a first deployment's certificate, and the pin for its clients. */
static int generate_cert(const char *dir, const char *name)
{
	char fp[MGROK_FINGERPRINT_LEN], err[512];
	if (mgrok_tls_gen_cert(dir, name, fp, sizeof(fp), err, sizeof(err)) < 0) {
		fprintf(stderr, "mgrokd: --gen-cert: %s\n", err);
		return 1;
	}
	printf("wrote %s/cert.pem and %s/key.pem (self-signed, for %s)\n"
	       "server:  mgrokd --tls-cert %s/cert.pem --tls-key %s/key.pem ...\n"
	       "clients: mgrok --tls-fingerprint %s ...   or in mgrok.json:\n"
	       "         \"tls\": {\"fingerprint\": \"%s\"}\n",
	       dir, dir, name, dir, dir, fp, fp);
	return 0;
}

struct args {
	const char *path, *gen_cert;
	bool check;
	int verbosity;
	struct mgrok_server_flags flags;
};

/* Returns -1 to go on, or the exit status. */
static int parse_args(int argc, char **argv, struct args *a)
{
	int opt;
	while ((opt = getopt_long(argc, argv, "c:vqh", options, NULL)) != -1) {
		switch (opt) {
		case 'c': a->path = optarg; break;
		case OPT_CHECK: a->check = true; break;
		case OPT_LISTEN: a->flags.listen = optarg; break;
		case OPT_TOKEN: a->flags.token = optarg; break;
		case OPT_PORTS: a->flags.allow_ports = optarg; break;
		case OPT_BIND: a->flags.proxy_bind = optarg; break;
		case OPT_PUBLIC: a->flags.public_host = optarg; break;
		case OPT_PLUGINS: a->flags.plugin_dir = optarg; break;
		case OPT_TLS_CERT: a->flags.tls_cert = optarg; break;
		case OPT_TLS_KEY: a->flags.tls_key = optarg; break;
		case OPT_GEN_CERT: a->gen_cert = optarg; break;
		case OPT_HTTP_LISTEN: a->flags.http_listen = optarg; break;
		case OPT_TLS_SNI_LISTEN: a->flags.tls_sni_listen = optarg; break;
		case OPT_DOMAIN: a->flags.domain = optarg; break;
		case OPT_ADMIN_LISTEN: a->flags.admin_listen = optarg; break;
		case 'v': a->verbosity++; break;
		case 'q': a->verbosity--; break;
		case OPT_VERSION:
			printf("mgrokd %s (plugin ABI %d.%d)\n", PACKAGE_VERSION,
			       MGROK_PLUGIN_ABI_MAJOR, MGROK_PLUGIN_ABI_MINOR);
			return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return EXIT_CONFIG;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "mgrokd: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return EXIT_CONFIG;
	}
	return -1;
}

/* The file, then the flags over it. Returns 0, or -1 having said why. */
static int configure(const struct args *a, struct mgrok_server_conf *conf)
{
	struct mgrok_conf_error cerr;
	char err[512];
	mgrok_server_conf_defaults(conf);
	if ((a->path && mgrok_server_conf_load(conf, a->path, &cerr) < 0) ||
	    mgrok_server_conf_apply_flags(conf, &a->flags, &cerr) < 0 ||
	    mgrok_server_conf_check(conf, &cerr) < 0) {
		fprintf(stderr, "mgrokd: %s\n", mgrok_conf_error_format(&cerr, err, sizeof(err)));
		return -1;
	}
	return 0;
}

struct daemon {
	struct mgrok_ctx *ctx;
	struct mgrok_server *server;
	const struct args *args;
};

static void on_stop(void *arg)
{
	struct daemon *d = arg;
	mgrok_server_shutdown(d->server);
}

static void on_drain(void *arg)
{
	struct daemon *d = arg;
	mgrok_server_drain(d->server);
}

/* SIGHUP: the TLS certificate and the auth plugins' files are read again;
 * the config file (with the same flags over it) gives allow_ports, and
 * what it changes that takes a restart is named. A broken file changes
 * nothing of the config. */
static void on_reload(void *arg)
{
	struct daemon *d = arg;
	struct mgrok_server_conf fresh;
	struct mgrok_conf_error cerr;
	char err[512];
	bool reread = d->args->path != NULL;
	mgrok_server_conf_defaults(&fresh);
	if (reread && (mgrok_server_conf_load(&fresh, d->args->path, &cerr) < 0 ||
	               mgrok_server_conf_apply_flags(&fresh, &d->args->flags, &cerr) < 0 ||
	               mgrok_server_conf_check(&fresh, &cerr) < 0)) {
		MGROK_ERROR("reload: %s (keeping the old configuration)",
		            mgrok_conf_error_format(&cerr, err, sizeof(err)));
		reread = false;
	}
	int rc = mgrok_server_reload(d->server, reread ? &fresh : NULL);
	if (rc == 0 && (reread || !d->args->path))
		d->ctx->reloads_ok++;
	else
		d->ctx->reloads_failed++;
	mgrok_server_conf_free(&fresh);
}

/* The service manager's STATUS= line. */
static void notify_status(void *arg, char *buf, size_t len)
{
	unsigned sessions, proxies;
	mgrok_server_counts(arg, &sessions, &proxies);
	snprintf(buf, len, "%u session%s, %u prox%s", sessions, sessions == 1 ? "" : "s", proxies,
	         proxies == 1 ? "y" : "ies");
}

/* Every listener is bound: a unit ordered after this one can connect. */
static void on_started(void *arg)
{
	struct daemon *d = arg;
	mgrok_notify_set_status(d->ctx->notify, notify_status, d->server);
	mgrok_notify_ready(d->ctx->notify);
}

static int serve(const struct args *a, struct mgrok_server_conf *conf)
{
	static const struct mgrok_run_ops ops = {
	        .stop = on_stop, .reload = on_reload, .started = on_started, .drain = on_drain};
	struct mgrok_ctx ctx;
	char err[512];
	int status = 0;
	mgrok_run_init(&ctx);
	struct daemon d = {
	        .ctx = &ctx, .server = mgrok_server_new(&ctx, conf, err, sizeof(err)), .args = a};
	if (!d.server) {
		/* Plugin options are checked by the plugins: name the file they came from. */
		fprintf(stderr, "mgrokd: %s%s%s\n", a->path ? a->path : "", a->path ? ": " : "",
		        err);
		status = EXIT_CONFIG;
	} else if (a->check) {
		printf("%s: configuration is valid\n", a->path ? a->path : "(command line)");
	} else if (mgrok_server_listen(d.server, err, sizeof(err)) < 0) {
		fprintf(stderr, "mgrokd: %s\n", err);
		status = EXIT_RUNTIME;
	} else {
		mgrok_run(&ctx, &ops, &d);
	}
	mgrok_server_free(d.server);
	mgrok_run_free(&ctx);
	return status;
}

/* mgrokd status: the config's admin section. */
static int load_admin(const char *path, struct mgrok_admin_conf *out, char *err, size_t errlen)
{
	struct mgrok_server_conf conf;
	struct mgrok_conf_error cerr;
	mgrok_server_conf_defaults(&conf);
	int rc = mgrok_server_conf_load(&conf, path, &cerr);
	if (rc < 0) {
		mgrok_conf_error_format(&cerr, err, errlen);
	} else {
		*out = conf.admin;
		memset(&conf.admin, 0, sizeof(conf.admin));
	}
	mgrok_server_conf_free(&conf);
	return rc;
}

int main(int argc, char **argv)
{
	struct args a = {0};
	if (argc > 1 && strcmp(argv[1], "status") == 0)
		return mgrok_status_main("mgrokd", argc - 1, argv + 1, load_admin,
		                         MGROK_SYSCONFDIR "/mgrok/mgrokd.json");
	struct mgrok_server_conf conf;
	int status = parse_args(argc, argv, &a);
	if (status >= 0)
		return status;
	if (a.gen_cert)
		return generate_cert(a.gen_cert,
		                     a.flags.public_host ? a.flags.public_host : "localhost");
	if (configure(&a, &conf) < 0) {
		mgrok_server_conf_free(&conf);
		return EXIT_CONFIG;
	}
	mgrok_log_setup(conf.log_level, a.verbosity, conf.log_format);
	if (!a.check && !a.path && !a.flags.listen)
		MGROK_INFO("no configuration given: using the defaults (listen %s)", conf.listen);
	status = serve(&a, &conf);
	mgrok_server_conf_free(&conf);
	return status;
}
