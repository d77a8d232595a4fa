/* mgrok: the tunnel client. Parses arguments and wires the parts. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "config.h"
#include "host.h"
#include "log.h"
#include "mux.h"

static void usage(FILE *to)
{
	fputs("usage: mgrok [options] TYPE LOCAL     expose one local service (TYPE: tcp, udp)\n"
	      "       mgrok -c FILE [options]         expose the proxies of a config file\n"
	      "  LOCAL is host:port, [v6]:port, or a port on 127.0.0.1\n"
	      "  -c, --config FILE       JSON config (see mgrok.json in the docs)\n"
	      "      --check             validate the configuration and exit\n"
	      "  -s, --server ADDR       mgrokd's address, host:port (default 127.0.0.1:7000)\n"
	      "  -t, --token TOKEN       authenticate with this token (or set MGROK_TOKEN)\n"
	      "  -r, --remote-port PORT  public port to ask for (default: the server picks)\n"
	      "  -n, --name NAME         proxy name (default TYPE-PORT)\n"
	      "      --tls               connect with TLS, verifying the server against the\n"
	      "                          system's CAs and its name\n"
	      "      --tls-ca FILE       ... against the CAs in FILE instead (implies --tls)\n"
	      "      --tls-fingerprint sha256:HEX\n"
	      "                          ... against this certificate only (implies --tls)\n"
	      "      --tls-insecure      ... without any verification (implies --tls; logged)\n"
	      "      --plugin-dir DIR    where plugins are loaded from (default " MGROK_PLUGIN_DIR ")\n"
	      "  -v, --verbose           log debug messages\n"
	      "  -q, --quiet             log errors only\n"
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

enum { OPT_CHECK = 256, OPT_PLUGINS, OPT_VERSION, OPT_TLS, OPT_TLS_CA, OPT_TLS_PIN, OPT_TLS_INSECURE };

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

/* The quick form: one proxy from the command line, added to any from -c. */
static int add_quick_proxy(struct mgrok_client_conf *c, const char *type, const char *local,
                           const char *name, const char *remote, char *err, size_t errlen)
{
	char *end;
	long rport = remote ? strtol(remote, &end, 10) : 0;
	if (remote && (*end || !*remote || rport < 0 || rport > 65535)) {
		snprintf(err, errlen, "--remote-port: '%s' is not a port (0-65535)", remote);
		return -1;
	}
	const char *port = strrchr(local, ':');
	char defname[80];
	snprintf(defname, sizeof(defname), "%s-%s", type, port ? port + 1 : local);
	if (!name)
		name = defname;
	if (!mgrok_name_valid(name, strlen(name))) {
		snprintf(err, errlen, "--name: '%s' is not a valid name (1-64 of [A-Za-z0-9._-])", name);
		return -1;
	}
	for (size_t i = 0; i < c->n_proxies; i++)
		if (strcmp(c->proxies[i].name, name) == 0) {
			snprintf(err, errlen, "proxy name '%s' is also in the config file", name);
			return -1;
		}
	c->proxies = realloc(c->proxies, (c->n_proxies + 1) * sizeof(*c->proxies));
	struct mgrok_proxy_conf *p = &c->proxies[c->n_proxies++];
	memset(p, 0, sizeof(*p));
	p->name = strdup(name);
	p->type = strdup(type);
	/* A bare port means a service on this host. */
	if (!strchr(local, ':')) {
		char buf[80];
		snprintf(buf, sizeof(buf), "127.0.0.1:%s", local);
		p->local = strdup(buf);
	} else {
		p->local = strdup(local);
	}
	p->remote_port = (uint16_t)rport;
	p->options = json_object();
	return 0;
}

static struct mgrok_client *client;

static void on_stop_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
	MGROK_INFO("signal %d: shutting down", w->signum);
	mgrok_client_shutdown(client);
	ev_break(loop, EVBREAK_ALL);
}

int main(int argc, char **argv)
{
	struct mgrok_client_conf conf;
	struct mgrok_conf_error cerr;
	char err[512];
	const char *path = NULL, *server = NULL, *token = NULL, *remote = NULL, *name = NULL,
	           *plugin_dir = NULL, *tls_ca = NULL, *tls_pin = NULL;
	int check = 0, verbosity = 0, opt, tls = 0, tls_insecure = 0;

	while ((opt = getopt_long(argc, argv, "c:s:t:r:n:vqh", options, NULL)) != -1) {
		switch (opt) {
		case 'c': path = optarg; break;
		case OPT_CHECK: check = 1; break;
		case 's': server = optarg; break;
		case 't': token = optarg; break;
		case 'r': remote = optarg; break;
		case 'n': name = optarg; break;
		case OPT_PLUGINS: plugin_dir = optarg; break;
		case OPT_TLS: tls = 1; break;
		case OPT_TLS_CA: tls_ca = optarg; break;
		case OPT_TLS_PIN: tls_pin = optarg; break;
		case OPT_TLS_INSECURE: tls_insecure = 1; break;
		case 'v': verbosity++; break;
		case 'q': verbosity--; break;
		case OPT_VERSION: printf("mgrok %s (plugin ABI %d.%d)\n", PACKAGE_VERSION,
		                         MGROK_PLUGIN_ABI_MAJOR, MGROK_PLUGIN_ABI_MINOR); return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	int rest = argc - optind;
	if (rest != 0 && rest != 2) {
		usage(stderr);
		return 2;
	}

	mgrok_client_conf_defaults(&conf);
	if (path && mgrok_client_conf_load(&conf, path, &cerr) < 0) {
		fprintf(stderr, "mgrok: %s\n", mgrok_conf_error_format(&cerr, err, sizeof(err)));
		mgrok_client_conf_free(&conf);
		return 2;
	}
	if (rest == 2 && add_quick_proxy(&conf, argv[optind], argv[optind + 1], name, remote, err,
	                                 sizeof(err)) < 0) {
		fprintf(stderr, "mgrok: %s\n", err);
		mgrok_client_conf_free(&conf);
		return 2;
	}
	if (!token)
		token = getenv("MGROK_TOKEN");
	if (token && *token) {
		replace(&conf.auth.method, "token");
		json_decref(conf.auth.options);
		conf.auth.options = json_pack("{ss}", "token", token);
	}
	if (server)
		replace(&conf.server, server);
	if (plugin_dir)
		replace(&conf.plugin_dir, plugin_dir);
	if (tls || tls_ca || tls_pin || tls_insecure)
		conf.tls.enabled = true;
	if (tls_ca)
		replace(&conf.tls.ca, tls_ca);
	if (tls_pin)
		replace(&conf.tls.fingerprint, tls_pin);
	if (tls_insecure)
		conf.tls.insecure = true;
	if (mgrok_client_conf_check(&conf, &cerr) < 0) {
		fprintf(stderr, "mgrok: %s\n", mgrok_conf_error_format(&cerr, err, sizeof(err)));
		mgrok_client_conf_free(&conf);
		return 2;
	}
	mgrok_log_level = conf.log_level + verbosity;
	if (mgrok_log_level < MGROK_LOG_ERROR)
		mgrok_log_level = MGROK_LOG_ERROR;
	mgrok_loop = ev_default_loop(EVFLAG_AUTO);
	client = mgrok_client_new(&conf, check, err, sizeof(err));
	if (!client) {
		/* Plugin options are checked by the plugins: name the file they came from. */
		fprintf(stderr, "mgrok: %s%s%s\n", path ? path : "", path ? ": " : "", err);
		mgrok_client_conf_free(&conf);
		return 2;
	}
	if (check) {
		printf("%s: configuration is valid\n", path ? path : "(command line)");
		mgrok_client_free(client);
		mgrok_client_conf_free(&conf);
		return 0;
	}
	signal(SIGPIPE, SIG_IGN);
	/* For benchmarks: the fixed 256 KiB window of PROTOCOL.md 3.3. */
	if (getenv("MGROK_NO_AUTOTUNE"))
		mgrok_mux_autotune = false;
	ev_signal sigterm, sigint;
	ev_signal_init(&sigterm, on_stop_signal, SIGTERM);
	ev_signal_init(&sigint, on_stop_signal, SIGINT);
	ev_signal_start(mgrok_loop, &sigterm);
	ev_signal_start(mgrok_loop, &sigint);
	ev_run(mgrok_loop, 0);
	int code = mgrok_client_exit_code(client);
	mgrok_client_free(client);
	mgrok_client_conf_free(&conf);
	ev_loop_destroy(mgrok_loop);
	return code;
}
