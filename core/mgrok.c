/* mgrok: the tunnel client. Parses arguments and wires the parts. */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "client.h"
#include "config.h"
#include "log.h"
#include "run.h"
#include "status.h"

/* One exit status per class of error (usage() lists them). */
enum { EXIT_CONFIG = 2 };

static void usage(FILE *to)
{
	fputs("usage: mgrok [options] TYPE LOCAL     expose one local service\n"
	      "                                       (TYPE: tcp, udp, http, tls)\n"
	      "       mgrok -c FILE [options]         expose the proxies of a config file\n"
	      "       mgrok status [-c FILE] [--admin-listen ADDR] [--json]\n"
	      "                                       the session and proxies, from the admin\n"
	      "                                       endpoint\n"
	      "  LOCAL is host:port, [v6]:port, or a port on 127.0.0.1\n"
	      "  -c, --config FILE       JSON config (see mgrok.json in the docs)\n"
	      "      --check             validate the configuration and exit\n"
	      "  -s, --server ADDR       mgrokd's address, host:port (default 127.0.0.1:7000)\n"
	      "  -t, --token TOKEN       authenticate with this token (or set MGROK_TOKEN)\n"
	      "  -r, --remote-port PORT  public port to ask for (default: the server picks)\n"
	      "  -n, --name NAME         proxy name (default TYPE-PORT)\n"
	      "      --proxy-protocol v1|v2\n"
	      "                          send the local service a PROXY protocol header with\n"
	      "                          the visitor's address (UDP: v2, on a flow's first "
	      "datagram)\n"
	      "      --subdomain NAME    http, tls: the public name NAME.DOMAIN of the server's\n"
	      "                          domain (default: one the server picks)\n"
	      "      --hostname NAME     http, tls: a public name of your own (if allowed)\n"
	      "      --host-header VALUE http: the Host header the local service gets\n"
	      "      --basic-auth USER:PASSWORD\n"
	      "                          http: visitors must log in (or a file of such lines)\n"
	      "      --tls               connect with TLS, verifying the server against the\n"
	      "                          system's CAs and its name\n"
	      "      --tls-ca FILE       ... against the CAs in FILE instead (implies --tls)\n"
	      "      --tls-fingerprint sha256:HEX\n"
	      "                          ... against this certificate only (implies --tls)\n"
	      "      --tls-insecure      ... without any verification (implies --tls; logged)\n"
	      "      --admin-listen ADDR serve metrics and status over HTTP here (host:port)\n"
	      "      --plugin-dir DIR    where plugins are loaded from (default " MGROK_PLUGIN_DIR
	      ")\n"
	      "  -v, --verbose           log debug messages\n"
	      "  -q, --quiet             log one level less (-qq: errors only)\n"
	      "      --version           print the version\n"
	      "  -h, --help              this text\n"
	      "\n"
	      "exit status, the same with and without --check:\n"
	      "  0  success (a clean shutdown on SIGTERM or SIGINT)\n"
	      "  1  the client gave up at run time: authentication or the server's\n"
	      "     certificate failed, another client took over, no proxy could be registered\n"
	      "  2  a usage or configuration error: a bad option or config file, a plugin\n"
	      "     that cannot be loaded or refuses its options, unreadable TLS files\n",
	      to);
}

enum {
	OPT_CHECK = 256,
	OPT_PLUGINS,
	OPT_VERSION,
	OPT_TLS,
	OPT_TLS_CA,
	OPT_TLS_PIN,
	OPT_TLS_INSECURE,
	OPT_PROXY_PROTOCOL,
	OPT_SUBDOMAIN,
	OPT_HOSTNAME,
	OPT_HOST_HEADER,
	OPT_BASIC_AUTH,
	OPT_ADMIN_LISTEN,
};

static const struct option options[] = {
        {"config", required_argument, NULL, 'c'},
        {"check", no_argument, NULL, OPT_CHECK},
        {"server", required_argument, NULL, 's'},
        {"token", required_argument, NULL, 't'},
        {"remote-port", required_argument, NULL, 'r'},
        {"name", required_argument, NULL, 'n'},
        {"plugin-dir", required_argument, NULL, OPT_PLUGINS},
        {"tls", no_argument, NULL, OPT_TLS},
        {"tls-ca", required_argument, NULL, OPT_TLS_CA},
        {"tls-fingerprint", required_argument, NULL, OPT_TLS_PIN},
        {"tls-insecure", no_argument, NULL, OPT_TLS_INSECURE},
        {"proxy-protocol", required_argument, NULL, OPT_PROXY_PROTOCOL},
        {"subdomain", required_argument, NULL, OPT_SUBDOMAIN},
        {"hostname", required_argument, NULL, OPT_HOSTNAME},
        {"host-header", required_argument, NULL, OPT_HOST_HEADER},
        {"basic-auth", required_argument, NULL, OPT_BASIC_AUTH},
        {"admin-listen", required_argument, NULL, OPT_ADMIN_LISTEN},
        {"verbose", no_argument, NULL, 'v'},
        {"quiet", no_argument, NULL, 'q'},
        {"version", no_argument, NULL, OPT_VERSION},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
};

struct args {
	const char *path;
	bool check;
	int verbosity;
	struct mgrok_client_flags flags;
};

/* Returns -1 to go on, or the exit status. */
static int parse_args(int argc, char **argv, struct args *a)
{
	int opt;
	while ((opt = getopt_long(argc, argv, "c:s:t:r:n:vqh", options, NULL)) != -1) {
		switch (opt) {
		case 'c': a->path = optarg; break;
		case OPT_CHECK: a->check = true; break;
		case 's': a->flags.server = optarg; break;
		case 't': a->flags.token = optarg; break;
		case 'r': a->flags.remote_port = optarg; break;
		case 'n': a->flags.name = optarg; break;
		case OPT_PLUGINS: a->flags.plugin_dir = optarg; break;
		case OPT_TLS: a->flags.tls = true; break;
		case OPT_TLS_CA: a->flags.tls_ca = optarg; break;
		case OPT_TLS_PIN: a->flags.tls_fingerprint = optarg; break;
		case OPT_TLS_INSECURE: a->flags.tls_insecure = true; break;
		case OPT_PROXY_PROTOCOL: a->flags.proxy_protocol = optarg; break;
		case OPT_SUBDOMAIN: a->flags.subdomain = optarg; break;
		case OPT_HOSTNAME: a->flags.hostname = optarg; break;
		case OPT_HOST_HEADER: a->flags.host_header = optarg; break;
		case OPT_BASIC_AUTH: a->flags.basic_auth = optarg; break;
		case OPT_ADMIN_LISTEN: a->flags.admin_listen = optarg; break;
		case 'v': a->verbosity++; break;
		case 'q': a->verbosity--; break;
		case OPT_VERSION:
			printf("mgrok %s (plugin ABI %d.%d)\n", PACKAGE_VERSION,
			       MGROK_PLUGIN_ABI_MAJOR, MGROK_PLUGIN_ABI_MINOR);
			return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return EXIT_CONFIG;
		}
	}
	int rest = argc - optind;
	if (rest != 0 && rest != 2) {
		usage(stderr);
		return EXIT_CONFIG;
	}
	if (rest == 2) {
		a->flags.type = argv[optind];
		a->flags.local = argv[optind + 1];
	}
	return -1;
}

/* The file, then the flags over it. Returns 0, or -1 having said why. */
static int configure(const struct args *a, struct mgrok_client_conf *conf)
{
	struct mgrok_conf_error cerr;
	char err[512];
	mgrok_client_conf_defaults(conf);
	if ((a->path && mgrok_client_conf_load(conf, a->path, &cerr) < 0) ||
	    mgrok_client_conf_apply_flags(conf, &a->flags, &cerr) < 0 ||
	    mgrok_client_conf_check(conf, &cerr) < 0) {
		fprintf(stderr, "mgrok: %s\n", mgrok_conf_error_format(&cerr, err, sizeof(err)));
		return -1;
	}
	return 0;
}

struct running {
	struct mgrok_client *cl;
	const struct args *args;
	struct mgrok_ctx *ctx;
};

static void on_stop(void *arg)
{
	struct running *r = arg;
	mgrok_client_shutdown(r->cl);
}

/* SIGHUP: the config file again, with the same flags over it; a broken one
 * changes nothing. */
static void on_reload(void *arg)
{
	struct running *r = arg;
	struct mgrok_client_conf fresh;
	struct mgrok_conf_error cerr;
	char err[512];
	if (!r->args->path) {
		MGROK_INFO("SIGHUP: no config file to read again (-c)");
		return;
	}
	mgrok_client_conf_defaults(&fresh);
	if (mgrok_client_conf_load(&fresh, r->args->path, &cerr) < 0 ||
	    mgrok_client_conf_apply_flags(&fresh, &r->args->flags, &cerr) < 0 ||
	    mgrok_client_conf_check(&fresh, &cerr) < 0) {
		MGROK_ERROR("reload: %s (keeping the old configuration)",
		            mgrok_conf_error_format(&cerr, err, sizeof(err)));
		r->ctx->reloads_failed++;
	} else {
		mgrok_client_reload(r->cl, &fresh);
		r->ctx->reloads_ok++;
	}
	mgrok_client_conf_free(&fresh);
}

static int run(const struct args *a, const struct mgrok_client_conf *conf)
{
	static const struct mgrok_run_ops ops = {.stop = on_stop, .reload = on_reload};
	struct mgrok_ctx ctx;
	char err[512];
	int status = 0;
	mgrok_run_init(&ctx);
	struct mgrok_client *cl = mgrok_client_new(&ctx, conf, a->check, err, sizeof(err));
	if (!cl) {
		/* Plugin options are checked by the plugins: name the file they came from. */
		fprintf(stderr, "mgrok: %s%s%s\n", a->path ? a->path : "", a->path ? ": " : "",
		        err);
		status = EXIT_CONFIG;
	} else if (a->check) {
		printf("%s: configuration is valid\n", a->path ? a->path : "(command line)");
	} else {
		struct running r = {cl, a, &ctx};
		mgrok_run(&ctx, &ops, &r);
		status = mgrok_client_exit_code(cl);
	}
	mgrok_client_free(cl);
	mgrok_run_free(&ctx);
	return status;
}

/* mgrok status: the config's admin section. */
static int load_admin(const char *path, struct mgrok_admin_conf *out, char *err, size_t errlen)
{
	struct mgrok_client_conf conf;
	struct mgrok_conf_error cerr;
	mgrok_client_conf_defaults(&conf);
	int rc = mgrok_client_conf_load(&conf, path, &cerr);
	if (rc < 0) {
		mgrok_conf_error_format(&cerr, err, errlen);
	} else {
		*out = conf.admin;
		memset(&conf.admin, 0, sizeof(conf.admin));
	}
	mgrok_client_conf_free(&conf);
	return rc;
}

int main(int argc, char **argv)
{
	struct args a = {0};
	struct mgrok_client_conf conf;
	if (argc > 1 && strcmp(argv[1], "status") == 0)
		return mgrok_status_main("mgrok", argc - 1, argv + 1, load_admin,
		                         MGROK_SYSCONFDIR "/mgrok/mgrok.json");
	int status = parse_args(argc, argv, &a);
	if (status >= 0)
		return status;
	if (configure(&a, &conf) < 0) {
		mgrok_client_conf_free(&conf);
		return EXIT_CONFIG;
	}
	mgrok_log_setup(conf.log_level, a.verbosity, conf.log_format);
	status = run(&a, &conf);
	mgrok_client_conf_free(&conf);
	return status;
}
