/*
 * Configuration: JSON (jansson) into typed structs, strictly validated.
 * Every error names the file, line, column and key. Defaults are filled in
 * by the *_defaults functions; command-line flags are applied by the mains
 * on top of a loaded (or default) config.
 */
#ifndef MGROK_CONFIG_H
#define MGROK_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <jansson.h>

struct mgrok_conf_error {
	char file[256];
	int line; /* 0 when not known (e.g. a command-line value) */
	int column;
	char key[128]; /* path of the offending key: "proxies[1].remote_port" */
	char msg[256];
};

/* "FILE:LINE:COL: KEY: MSG" (parts that are unknown are left out). */
const char *mgrok_conf_error_format(const struct mgrok_conf_error *e, char *buf, size_t len);

struct mgrok_port_range {
	uint16_t lo, hi; /* inclusive */
};

/* An address block: "10.0.0.0/8", "::1/128", or a bare address. */
struct mgrok_cidr {
	uint8_t ip[16]; /* IPv4 as IPv4-mapped IPv6, as mgrok_addr_ip16 */
	unsigned bits;  /* of the 128 (IPv4's /n is 96 + n) */
};

/*
 * TLS of the control connection. Server: on when cert and key are set.
 * Client: on when enabled ("tls" present, or --tls); it verifies the server
 * against ca (NULL: the system store) and server_name (NULL: the host of
 * "server"), or only against the fingerprint pin, or not at all (insecure).
 */
struct mgrok_tls_conf {
	bool enabled;
	char *cert, *key;  /* server: PEM files */
	char *ca;          /* client */
	char *server_name; /* client */
	char *fingerprint; /* client: "sha256:<64 hex digits>" */
	bool insecure;     /* client */
};

/* One auth method: its name and its own options (the auth object without "method"). */
struct mgrok_auth_conf {
	char *method;
	json_t *options; /* owned reference, a JSON object */
};

/* The admin endpoint (admin.h): off while listen is NULL. At most one of
 * token, token_file and token_env. */
struct mgrok_admin_conf {
	bool given; /* the section or the flag is there: listen is required */
	char *listen;
	char *token, *token_file, *token_env;
};

/* A node of a cluster (doc/cluster.md): off while redis is NULL. */
struct mgrok_cluster_conf {
	bool given;   /* the section is there: redis is required */
	char *redis;  /* "host:port" or "unix:/path" */
	char *node;   /* this node's name in the registry; default: the host name */
	double lease; /* s a claim lives without its holder's refresh, default 6 */
	/* The nodes' shared secret (auth method "cluster"): one of the two. */
	char *secret, *secret_file;
	char *address; /* "host:port" the other nodes reach this one's control port at */
};

struct mgrok_server_conf {
	char *listen;      /* "host:port"; default "0.0.0.0:7000" */
	char *proxy_bind;  /* host to bind public ports on; NULL: the listen host */
	char *public_host; /* host shown in public addresses; NULL: the session's local address */
	char *plugin_dir;  /* NULL: the installed plugin directory */
	char **plugins;    /* file names to load; NULL: every *.so in plugin_dir */
	size_t n_plugins;
	struct mgrok_auth_conf *auth; /* allowed methods; none configured: "none" is allowed */
	size_t n_auth;
	struct mgrok_port_range *allow_ports; /* default 1024-65535 */
	size_t n_allow_ports;
	double heartbeat_interval; /* s, default 10 */
	double heartbeat_timeout;  /* s, default 30 */
	double handshake_timeout;  /* s, default 10 */
	double shutdown_timeout;   /* s open streams may take to finish on SIGTERM, default 10 */
	unsigned max_proxies;      /* per session, default 64 */
	unsigned max_streams;      /* per session, default 4096 */
	unsigned max_pending;      /* unauthenticated connections, default 256 */
	unsigned max_pending_per_address; /* ... of them from one source address, default 8 */
	unsigned auth_failures;           /* failed handshakes per address ... default 10 */
	double auth_interval;             /* ... within this many s block it as long; default 60 */
	int log_level;                    /* enum mgrok_log_level, default INFO */
	int log_format;                   /* enum mgrok_log_format, default TEXT */
	struct mgrok_tls_conf tls;
	/* Load balancers whose connections start with a PROXY protocol header
	 * (control port and public TCP ports); none by default. */
	struct mgrok_cidr *proxy_protocol_from;
	size_t n_proxy_protocol_from;
	/* Proxy plugins' own sections by plugin name ("http": {...}, "tls":
	 * the file's "tls_sni"), handed to their init; NULL when none. */
	json_t *proxy_sections;
	struct mgrok_admin_conf admin;
	struct mgrok_cluster_conf cluster;
};

struct mgrok_stream;
struct sockaddr;

struct mgrok_proxy_conf {
	char *name;
	char *type;              /* proxy plugin name: "tcp" */
	char *local;             /* "host:port" of the local service */
	uint16_t remote_port;    /* 0: the server picks */
	json_t *options;         /* owned reference, a JSON object (empty when absent) */
	int proxy_protocol;      /* 0, or the PROXY protocol version written to the local service */
	char *group, *group_key; /* a client group on the server (group.h); both or neither */
	/* Not keys: set by mgrokd for its relays to the other nodes of a
	 * cluster. A visitor's stream goes to open_here instead of the plugin's
	 * client_open (which then never connects to local). */
	void (*open_here)(void *arg, struct mgrok_stream *st, const struct sockaddr *source);
	void *open_arg;
};

struct mgrok_client_conf {
	char *server;                /* "host:port" of mgrokd; default "127.0.0.1:7000" */
	struct mgrok_auth_conf auth; /* default method "none" */
	char *plugin_dir;
	char **plugins;
	size_t n_plugins;
	double heartbeat_interval; /* default 10 */
	double heartbeat_timeout;  /* default 30 */
	double reconnect_initial;  /* s, default 0.5 */
	double reconnect_max;      /* s, default 30 */
	bool retry_on_deny;        /* default false: a wrong token stops the client */
	struct mgrok_proxy_conf *proxies;
	size_t n_proxies;
	int log_level;
	int log_format;
	struct mgrok_tls_conf tls;
	struct mgrok_admin_conf admin;
	/* Not a key: a client inside mgrokd (a relay to another node), which
	 * prints nothing, tells no service manager, never ends the loop, and
	 * registers a refused proxy again every second. */
	bool embedded;
};

void mgrok_tls_conf_free(struct mgrok_tls_conf *t);
void mgrok_admin_conf_free(struct mgrok_admin_conf *a);

void mgrok_server_conf_defaults(struct mgrok_server_conf *c);
void mgrok_client_conf_defaults(struct mgrok_client_conf *c);

/* Load FILE over the defaults already in c. Returns 0, or -1 with err filled in. */
int mgrok_server_conf_load(struct mgrok_server_conf *c, const char *path,
                           struct mgrok_conf_error *err);
int mgrok_client_conf_load(struct mgrok_client_conf *c, const char *path,
                           struct mgrok_conf_error *err);
/* The same from text already in memory; name stands for the file in errors. */
int mgrok_server_conf_load_text(struct mgrok_server_conf *c, const char *name, const char *text,
                                size_t len, struct mgrok_conf_error *err);
int mgrok_client_conf_load_text(struct mgrok_client_conf *c, const char *name, const char *text,
                                size_t len, struct mgrok_conf_error *err);

/* Checks that need the whole config (after flags): e.g. a client with no proxy. */
int mgrok_server_conf_check(const struct mgrok_server_conf *c, struct mgrok_conf_error *err);
int mgrok_client_conf_check(const struct mgrok_client_conf *c, struct mgrok_conf_error *err);

void mgrok_server_conf_free(struct mgrok_server_conf *c);
void mgrok_client_conf_free(struct mgrok_client_conf *c);

/* Command-line flags, applied over a loaded (or default) config by
 * mgrok_*_conf_apply_flags; NULL (false) members leave the config alone. */
struct mgrok_server_flags {
	const char *listen, *token, *allow_ports, *proxy_bind, *public_host, *plugin_dir;
	const char *tls_cert, *tls_key;
	const char *http_listen, *domain, *tls_sni_listen;
	const char *admin_listen;
};

struct mgrok_client_flags {
	const char *server, *token, *plugin_dir, *tls_ca, *tls_fingerprint;
	const char *admin_listen;
	bool tls, tls_insecure;
	/* The quick form, one proxy: TYPE LOCAL [--name] [--remote-port]
	 * [--proxy-protocol]. */
	const char *type, *local, *name, *remote_port, *proxy_protocol;
	/* ... and for proxies routed by name, their options. */
	const char *subdomain, *hostname, *host_header, *basic_auth;
};

/* Returns 0, or -1 with err filled in (the key is the flag's name). */
int mgrok_server_conf_apply_flags(struct mgrok_server_conf *c, const struct mgrok_server_flags *f,
                                  struct mgrok_conf_error *err);
int mgrok_client_conf_apply_flags(struct mgrok_client_conf *c, const struct mgrok_client_flags *f,
                                  struct mgrok_conf_error *err);
/* The token method with this secret, in place of every configured method. */
void mgrok_server_conf_use_token(struct mgrok_server_conf *c, const char *token);
void mgrok_client_conf_use_token(struct mgrok_client_conf *c, const char *token);

/* "20000-20100,30000" (flags) into ranges. Returns 0 or -1 with msg. */
int mgrok_port_ranges_parse(const char *s, struct mgrok_port_range **out, size_t *n, char *msg,
                            size_t msglen);
bool mgrok_port_allowed(const struct mgrok_port_range *r, size_t n, uint16_t port);
/* "10.0.0.0/8", "::1/128" or a bare address. Returns 0, or -1. */
int mgrok_cidr_parse(const char *s, struct mgrok_cidr *out);
bool mgrok_cidr_match(const struct mgrok_cidr *list, size_t n, const struct sockaddr *sa);
/* "v1" / "v2" -> 1 / 2, or -1. */
int mgrok_pp_version_parse(const char *s);
/* "error" "warn" "info" "debug" -> level, or -1. */
int mgrok_log_level_parse(const char *s);
/* s[0..n) as a port: digits only, 1-65535. Returns 0 or -1. */
int mgrok_port_parse(const char *s, size_t n, long *port);
/* A proxy's local target: a bare port (digits) means "127.0.0.1:PORT",
 * anything else must be "host:port". Writes it to out. Returns NULL, or why
 * s is not one. */
const char *mgrok_local_target(const char *s, char *out, size_t len);
/* Why s is not a "host:port" or "[v6]:port" (NULL if it is one). An
 * unbracketed IPv6 address is refused: "::1:80" reads two ways. */
const char *mgrok_hostport_problem(const char *s);
/* Proxy names: 1-64 bytes of [A-Za-z0-9._-] (doc/protocol.md 3.1). */
bool mgrok_name_valid(const char *s, size_t len);
/* Why name is not a plugin file name inside plugin_dir (NULL if it is one). */
const char *mgrok_plugin_name_problem(const char *name);

/*
 * Finds where a key path ("proxies", 1, "remote_port" as ".proxies[1].remote_port")
 * stands in JSON text: line and column (1-based) of the key, or of the
 * array element. Returns 0, or -1 when not found. Exposed for tests.
 */
int mgrok_json_locate(const char *text, size_t len, const char *path, int *line, int *column);
/*
 * The key path (as above) of the value whose text ends at byte offset end
 * (jansson's error position for a bad value). Returns 0, or -1 when the
 * text up to there cannot be followed.
 */
int mgrok_json_path_at(const char *text, size_t len, size_t end, char *path, size_t cap);

#endif
