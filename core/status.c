/*
 * `mgrokd status` and `mgrok status`: GET /api/v1/sessions from the admin
 * endpoint, printed as a table (or as the JSON itself).
 */
#define _POSIX_C_SOURCE 200809L
#include "status.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "addr.h"
#include "admin.h"
#include "buf.h"
#include "openssl/crypto.h"

#define STATUS_TIMEOUT 5 /* seconds, for connect, send and each read */
#define STATUS_BODY_MAX (64u << 20)

static void usage(FILE *to, const char *prog)
{
	fprintf(to,
	        "usage: %s status [-c FILE] [--admin-listen ADDR] [--json]\n"
	        "  -c, --config FILE       the config whose \"admin\" section names the endpoint\n"
	        "                          and its token (default %s, when it exists)\n"
	        "      --admin-listen ADDR the endpoint's address, host:port\n"
	        "      --json              print the JSON as received\n"
	        "  -h, --help              this text\n"
	        "exit status: 0 printed, 1 the endpoint could not be reached or refused,\n"
	        "2 a usage or configuration error\n",
	        prog,
	        prog[strlen(prog) - 1] == 'd' ? MGROK_SYSCONFDIR "/mgrok/mgrokd.json"
	                                      : MGROK_SYSCONFDIR "/mgrok/mgrok.json");
}

/* ---- the request ----------------------------------------------------------- */

static int connect_to(const char *listen, char *err, size_t errlen)
{
	struct mgrok_sockaddr a;
	char msg[256];
	if (mgrok_addr_resolve(listen, "127.0.0.1", &a, msg, sizeof(msg)) < 0) {
		snprintf(err, errlen, "%s: %s", listen, msg);
		return -1;
	}
	int fd = socket(a.ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct timeval tv = {.tv_sec = STATUS_TIMEOUT};
	if (fd >= 0) {
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	}
	if (fd < 0 || connect(fd, (struct sockaddr *)&a.ss, a.len) < 0) {
		snprintf(err, errlen, "cannot connect to %s: %s", listen, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* The whole response (the server closes: Connection: close). */
static int exchange(int fd, const char *listen, const char *token, struct mgrok_buf *in, char *err,
                    size_t errlen)
{
	struct mgrok_buf req = {0};
	mgrok_buf_printf(&req,
	                 "GET /api/v1/sessions HTTP/1.1\r\nHost: %s\r\nAccept: application/json\r\n"
	                 "Connection: close\r\n",
	                 listen);
	if (token)
		mgrok_buf_printf(&req, "Authorization: Bearer %s\r\n", token);
	mgrok_buf_append(&req, "\r\n", 2);
	ssize_t n = send(fd, mgrok_buf_head(&req), req.len, MSG_NOSIGNAL);
	OPENSSL_cleanse(req.data, req.cap);
	mgrok_buf_free(&req);
	if (n < 0) {
		snprintf(err, errlen, "%s: send: %s", listen, strerror(errno));
		return -1;
	}
	for (;;) {
		mgrok_buf_reserve(in, 16384);
		n = recv(fd, mgrok_buf_tail(in), mgrok_buf_room(in), 0);
		if (n == 0)
			return 0;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 || in->len > STATUS_BODY_MAX) {
			snprintf(err, errlen, "%s: %s", listen,
			         n < 0 ? strerror(errno) : "the answer is too large");
			return -1;
		}
		in->len += (size_t)n;
	}
}

static int fetch(const char *listen, const char *token, int *status, struct mgrok_buf *body,
                 char *err, size_t errlen)
{
	struct mgrok_buf in = {0};
	int fd = connect_to(listen, err, errlen);
	if (fd < 0)
		return -1;
	int rc = exchange(fd, listen, token, &in, err, errlen);
	close(fd);
	if (rc == 0 && mgrok_status_parse_response(mgrok_buf_head(&in), in.len, status, body) < 0) {
		snprintf(err, errlen, "%s: not an HTTP response", listen);
		rc = -1;
	}
	mgrok_buf_free(&in);
	return rc;
}

/* ---- the table ----------------------------------------------------------------- */

static void human_bytes(char *buf, size_t len, json_int_t v)
{
	static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	double d = (double)v;
	int u = 0;
	while (d >= 1024 && u < 4) {
		d /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%" JSON_INTEGER_FORMAT " B", v);
	else
		snprintf(buf, len, "%.1f %s", d, units[u]);
}

static void human_age(char *buf, size_t len, const json_t *since)
{
	if (!json_is_number(since)) {
		snprintf(buf, len, "-");
		return;
	}
	long s = (long)(time(NULL) - (time_t)json_number_value(since));
	if (s < 0)
		s = 0;
	if (s < 60)
		snprintf(buf, len, "%lds", s);
	else if (s < 3600)
		snprintf(buf, len, "%ldm%02lds", s / 60, s % 60);
	else if (s < 86400)
		snprintf(buf, len, "%ldh%02ldm", s / 3600, s / 60 % 60);
	else
		snprintf(buf, len, "%ldd%02ldh", s / 86400, s / 3600 % 24);
}

static const char *str_or_dash(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s && *s ? s : "-";
}

static void print_proxies(FILE *out, const json_t *proxies)
{
	const json_t *p;
	size_t i;
	if (!json_array_size(proxies))
		return;
	fprintf(out, "  %-16s %-5s %-40s %7s %10s %10s\n", "PROXY", "TYPE", "PUBLIC", "STREAMS",
	        "IN", "OUT");
	json_array_foreach(proxies, i, p) {
		char in[32], outb[32];
		human_bytes(in, sizeof(in), json_integer_value(json_object_get(p, "bytes_in")));
		human_bytes(outb, sizeof(outb),
		            json_integer_value(json_object_get(p, "bytes_out")));
		fprintf(out, "  %-16s %-5s %-40s %7" JSON_INTEGER_FORMAT " %10s %10s\n",
		        str_or_dash(p, "name"), str_or_dash(p, "type"),
		        str_or_dash(p, "public_address"),
		        json_integer_value(json_object_get(p, "streams")), in, outb);
	}
}

void mgrok_status_print(FILE *out, const json_t *doc)
{
	const json_t *sessions = json_object_get(doc, "sessions"), *s;
	size_t i;
	if (!json_array_size(sessions)) {
		fprintf(out, "no sessions\n");
		return;
	}
	json_array_foreach(sessions, i, s) {
		char in[32], outb[32], age[32];
		human_bytes(in, sizeof(in), json_integer_value(json_object_get(s, "bytes_in")));
		human_bytes(outb, sizeof(outb),
		            json_integer_value(json_object_get(s, "bytes_out")));
		human_age(age, sizeof(age), json_object_get(s, "connected_at"));
		if (i)
			fputc('\n', out);
		fprintf(out, "%-8s %-16s %-32s %-22s %-8s %-10s %7s %10s %10s\n", "SESSION",
		        "IDENTITY", "CLIENT", "REMOTE", "SINCE", "STATE", "STREAMS", "IN", "OUT");
		fprintf(out,
		        "%-8" JSON_INTEGER_FORMAT
		        " %-16s %-32s %-22s %-8s %-10s %7" JSON_INTEGER_FORMAT " %10s %10s\n",
		        json_integer_value(json_object_get(s, "id")), str_or_dash(s, "identity"),
		        str_or_dash(s, "client_id"), str_or_dash(s, "remote"), age,
		        str_or_dash(s, "state"), json_integer_value(json_object_get(s, "streams")),
		        in, outb);
		print_proxies(out, json_object_get(s, "proxies"));
	}
}

/* ---- the command ------------------------------------------------------------------ */

struct status_args {
	const char *path, *listen;
	bool json;
};

/* Returns -1 to go on, or the exit status. */
static int parse_status_args(const char *prog, int argc, char **argv, struct status_args *a)
{
	static const struct option opts[] = {
	        {"config", required_argument, NULL, 'c'},
	        {"admin-listen", required_argument, NULL, 'a'},
	        {"json", no_argument, NULL, 'j'},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	int opt;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'c': a->path = optarg; break;
		case 'a': a->listen = optarg; break;
		case 'j': a->json = true; break;
		case 'h': usage(stdout, prog); return 0;
		default: usage(stderr, prog); return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "%s status: unexpected argument '%s'\n", prog, argv[optind]);
		return 2;
	}
	return -1;
}

static int show(const char *prog, const struct status_args *a, const char *listen,
                const char *token)
{
	struct mgrok_buf body = {0};
	char err[512];
	int status = 0, rc = 1;
	json_error_t jerr;
	if (fetch(listen, token, &status, &body, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s status: %s\n", prog, err);
		return 1;
	}
	json_t *doc = json_loadb((const char *)mgrok_buf_head(&body), body.len, 0, &jerr);
	if (status != 200) {
		const char *e = json_string_value(json_object_get(doc, "error"));
		fprintf(stderr, "%s status: %s answered %d: %s\n", prog, listen, status,
		        e ? e : "(no reason given)");
	} else if (!json_is_object(doc)) {
		fprintf(stderr, "%s status: %s: not JSON: %s\n", prog, listen, jerr.text);
	} else {
		if (a->json)
			fwrite(mgrok_buf_head(&body), 1, body.len, stdout);
		else
			mgrok_status_print(stdout, doc);
		rc = 0;
	}
	json_decref(doc);
	mgrok_buf_free(&body);
	return rc;
}

int mgrok_status_main(const char *prog, int argc, char **argv, mgrok_status_load_fn load,
                      const char *default_path)
{
	struct status_args a = {0};
	struct mgrok_admin_conf admin = {0};
	char err[512], *token = NULL;
	int rc = parse_status_args(prog, argc, argv, &a);
	if (rc >= 0)
		return rc;
	if (!mgrok_admin_available) {
		fprintf(stderr,
		        "%s status: this build has no admin endpoint (configure found no "
		        "http-parser)\n",
		        prog);
		return 2;
	}
	if (!a.path && access(default_path, R_OK) == 0)
		a.path = default_path;
	if (a.path && load(a.path, &admin, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s status: %s\n", prog, err);
		return 2;
	}
	const char *listen = a.listen ? a.listen : admin.listen;
	if (!listen) {
		fprintf(stderr,
		        "%s status: no admin endpoint: give --admin-listen, or -c with a config "
		        "that has \"admin\": {\"listen\": ...}\n",
		        prog);
		rc = 2;
	} else if (mgrok_admin_token(&admin, &token, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s status: %s\n", prog, err);
		rc = 2;
	} else {
		rc = show(prog, &a, listen, token);
	}
	if (token) {
		OPENSSL_cleanse(token, strlen(token));
		free(token);
	}
	mgrok_admin_conf_free(&admin);
	return rc;
}
