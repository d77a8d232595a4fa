/* mgrokd: the tunnel server. Parses arguments and wires the parts. */
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "host.h"
#include "log.h"
#include "mux.h"
#include "server.h"
#include "tls.h"

/* One exit status per class of error (usage() lists them). */
enum { EXIT_RUNTIME = 1, EXIT_CONFIG = 2 };

static void usage(FILE *to)
{
	fputs("usage: mgrokd [-c FILE] [--check] [options]\n"
	      "  -c, --config FILE      JSON config (see mgrokd.json in the docs)\n"
	      "      --check            validate the configuration and exit\n"
	      "      --listen ADDR      control address, host:port (default 0.0.0.0:7000)\n"
	      "      --token TOKEN      require the token auth method with this secret\n"
	      "                         (or set MGROK_TOKEN; prefer a token_file in the config)\n"
	      "      --allow-ports LIST public ports clients may ask for, e.g. 20000-20100,8080\n"
	      "      --proxy-bind HOST  address public ports are bound on (default: the listen host)\n"
	      "      --public-host HOST host name shown in public addresses\n"
	      "      --tls-cert FILE    serve TLS with this certificate (chain), PEM\n"
	      "      --tls-key FILE     ... and this private key, PEM\n"
	      "      --gen-cert DIR     write a self-signed DIR/cert.pem and DIR/key.pem for the\n"
	      "                         --public-host name (default localhost), print the\n"
	      "                         fingerprint clients pin, and exit\n"
	      "      --plugin-dir DIR   where plugins are loaded from (default " MGROK_PLUGIN_DIR ")\n"
	      "  -v, --verbose          log debug messages\n"
	      "  -q, --quiet            log errors only\n"
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
    {"verbose", no_argument, NULL, 'v'},
    {"quiet", no_argument, NULL, 'q'},
    {"version", no_argument, NULL, OPT_VERSION},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static void replace(char **slot, const char *value)
{
	free(*slot);
	*slot = strdup(value);
}

static void use_token(struct mgrok_server_conf *c, const char *token)
{
	for (size_t i = 0; i < c->n_auth; i++) {
		free(c->auth[i].method);
		json_decref(c->auth[i].options);
	}
	free(c->auth);
	c->auth = calloc(1, sizeof(*c->auth));
	c->n_auth = 1;
	c->auth[0].method = strdup("token");
	c->auth[0].options = json_pack("{ss}", "token", token);
}

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

static struct mgrok_server *server;
static struct mgrok_server_conf conf;
static const char *conf_path;
static bool ports_from_flag;

/*
 * SIGHUP: the auth plugins re-read their files (users), and the config's
 * allow_ports apply to REGISTERs from now on. Sessions and their proxies stay.
 */
static void on_reload_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
	MGROK_INFO("SIGHUP: reloading");
	if (conf_path && !ports_from_flag) {
		struct mgrok_server_conf fresh;
		struct mgrok_conf_error cerr;
		char err[512];
		mgrok_server_conf_defaults(&fresh);
		if (mgrok_server_conf_load(&fresh, conf_path, &cerr) < 0) {
			MGROK_ERROR("reload: %s (keeping the old configuration)",
			            mgrok_conf_error_format(&cerr, err, sizeof(err)));
		} else {
			struct mgrok_port_range *old = conf.allow_ports;
			conf.allow_ports = fresh.allow_ports;
			conf.n_allow_ports = fresh.n_allow_ports;
			fresh.allow_ports = old;
		}
		mgrok_server_conf_free(&fresh);
	}
	mgrok_server_reload(server);
}

static void on_stop_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
	MGROK_INFO("signal %d: shutting down", w->signum);
	mgrok_server_shutdown(server);
	ev_break(loop, EVBREAK_ALL);
}

int main(int argc, char **argv)
{
	struct mgrok_conf_error cerr;
	char err[512];
	const char *path = NULL, *listen = NULL, *token = NULL, *ports = NULL, *bind = NULL,
	           *public_host = NULL, *plugin_dir = NULL, *tls_cert = NULL, *tls_key = NULL,
	           *gen_cert = NULL;
	int check = 0, verbosity = 0, opt;

	while ((opt = getopt_long(argc, argv, "c:vqh", options, NULL)) != -1) {
		switch (opt) {
		case 'c': path = optarg; break;
		case OPT_CHECK: check = 1; break;
		case OPT_LISTEN: listen = optarg; break;
		case OPT_TOKEN: token = optarg; break;
		case OPT_PORTS: ports = optarg; break;
		case OPT_BIND: bind = optarg; break;
		case OPT_PUBLIC: public_host = optarg; break;
		case OPT_PLUGINS: plugin_dir = optarg; break;
		case OPT_TLS_CERT: tls_cert = optarg; break;
		case OPT_TLS_KEY: tls_key = optarg; break;
		case OPT_GEN_CERT: gen_cert = optarg; break;
		case 'v': verbosity++; break;
		case 'q': verbosity--; break;
		case OPT_VERSION: printf("mgrokd %s (plugin ABI %d.%d)\n", PACKAGE_VERSION,
		                         MGROK_PLUGIN_ABI_MAJOR, MGROK_PLUGIN_ABI_MINOR); return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return EXIT_CONFIG;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "mgrokd: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return EXIT_CONFIG;
	}

	if (gen_cert)
		return generate_cert(gen_cert, public_host ? public_host : "localhost");

	mgrok_server_conf_defaults(&conf);
	if (path && mgrok_server_conf_load(&conf, path, &cerr) < 0) {
		fprintf(stderr, "mgrokd: %s\n", mgrok_conf_error_format(&cerr, err, sizeof(err)));
		mgrok_server_conf_free(&conf);
		return EXIT_CONFIG;
	}
	if (!token)
		token = getenv("MGROK_TOKEN");
	if (token && *token)
		use_token(&conf, token);
	if (listen)
		replace(&conf.listen, listen);
	if (bind)
		replace(&conf.proxy_bind, bind);
	if (public_host)
		replace(&conf.public_host, public_host);
	if (plugin_dir)
		replace(&conf.plugin_dir, plugin_dir);
	if (tls_cert)
		replace(&conf.tls.cert, tls_cert);
	if (tls_key)
		replace(&conf.tls.key, tls_key);
	conf_path = path;
	ports_from_flag = ports != NULL;
	if (ports) {
		struct mgrok_port_range *r;
		size_t n;
		if (mgrok_port_ranges_parse(ports, &r, &n, err, sizeof(err)) < 0) {
			fprintf(stderr, "mgrokd: --allow-ports: %s\n", err);
			mgrok_server_conf_free(&conf);
			return EXIT_CONFIG;
		}
		free(conf.allow_ports);
		conf.allow_ports = r;
		conf.n_allow_ports = n;
	}
	if (mgrok_server_conf_check(&conf, &cerr) < 0) {
		fprintf(stderr, "mgrokd: %s\n", mgrok_conf_error_format(&cerr, err, sizeof(err)));
		mgrok_server_conf_free(&conf);
		return EXIT_CONFIG;
	}
	mgrok_log_level = conf.log_level + verbosity;
	if (mgrok_log_level < MGROK_LOG_ERROR)
		mgrok_log_level = MGROK_LOG_ERROR;
	if (!check && !path && !listen)
		MGROK_INFO("no configuration given: using the defaults (listen %s)", conf.listen);
	mgrok_loop = ev_default_loop(EVFLAG_AUTO);
	server = mgrok_server_new(&conf, err, sizeof(err));
	if (!server) {
		/* Plugin options are checked by the plugins: name the file they came from. */
		fprintf(stderr, "mgrokd: %s%s%s\n", path ? path : "", path ? ": " : "", err);
		mgrok_server_conf_free(&conf);
		return EXIT_CONFIG;
	}
	if (check || mgrok_server_listen(server, err, sizeof(err)) < 0) {
		if (check)
			printf("%s: configuration is valid\n", path ? path : "(command line)");
		else
			fprintf(stderr, "mgrokd: %s\n", err);
		mgrok_server_free(server);
		mgrok_server_conf_free(&conf);
		return check ? 0 : EXIT_RUNTIME;
	}
	signal(SIGPIPE, SIG_IGN);
	/* For benchmarks: the fixed 256 KiB window of PROTOCOL.md 3.3. */
	if (getenv("MGROK_NO_AUTOTUNE"))
		mgrok_mux_autotune = false;
	ev_signal sigterm, sigint, sighup;
	ev_signal_init(&sigterm, on_stop_signal, SIGTERM);
	ev_signal_init(&sigint, on_stop_signal, SIGINT);
	ev_signal_init(&sighup, on_reload_signal, SIGHUP);
	ev_signal_start(mgrok_loop, &sigterm);
	ev_signal_start(mgrok_loop, &sigint);
	ev_signal_start(mgrok_loop, &sighup);
	ev_run(mgrok_loop, 0);
	mgrok_server_free(server);
	mgrok_server_conf_free(&conf);
	ev_loop_destroy(mgrok_loop);
	return 0;
}
