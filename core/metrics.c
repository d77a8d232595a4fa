#include "metrics.h"

#include <dirent.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

void mgrok_metrics_family(struct mgrok_buf *out, const char *name, const char *type,
                          const char *help)
{
	mgrok_buf_printf(out, "# HELP %s ", name);
	for (const char *p = help; *p; p++) {
		if (*p == '\\')
			mgrok_buf_append(out, "\\\\", 2);
		else if (*p == '\n')
			mgrok_buf_append(out, "\\n", 2);
		else
			mgrok_buf_append(out, p, 1);
	}
	mgrok_buf_printf(out, "\n# TYPE %s %s\n", name, type);
}

static void label_value(struct mgrok_buf *out, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			mgrok_buf_printf(out, "\\%c", *v);
		else if (*v == '\n')
			mgrok_buf_append(out, "\\n", 2);
		else
			mgrok_buf_append(out, v, 1);
	}
}

static void sample_name(struct mgrok_buf *out, const char *name, va_list ap)
{
	mgrok_buf_printf(out, "%s", name);
	const char *k = va_arg(ap, const char *);
	if (!k)
		return;
	mgrok_buf_append(out, "{", 1);
	for (bool first = true; k; k = va_arg(ap, const char *), first = false) {
		mgrok_buf_printf(out, "%s%s=\"", first ? "" : ",", k);
		label_value(out, va_arg(ap, const char *));
		mgrok_buf_append(out, "\"", 1);
	}
	mgrok_buf_append(out, "}", 1);
}

void mgrok_metrics_u64(struct mgrok_buf *out, const char *name, uint64_t value, ...)
{
	va_list ap;
	va_start(ap, value);
	sample_name(out, name, ap);
	va_end(ap);
	mgrok_buf_printf(out, " %llu\n", (unsigned long long)value);
}

void mgrok_metrics_double(struct mgrok_buf *out, const char *name, double value, ...)
{
	va_list ap;
	va_start(ap, value);
	sample_name(out, name, ap);
	va_end(ap);
	mgrok_buf_printf(out, " %.17g\n", value);
}

/* Length of the valid UTF-8 sequence at p (with n bytes left), or 0. */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
	size_t len = p[0] < 0x80                    ? 1
	             : p[0] >= 0xc2 && p[0] <= 0xdf ? 2
	             : (p[0] & 0xf0) == 0xe0        ? 3
	             : p[0] >= 0xf0 && p[0] <= 0xf4 ? 4
	                                            : 0;
	if (!len || len > n)
		return 0;
	for (size_t i = 1; i < len; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	/* Overlong threes, surrogates, and past U+10FFFF. */
	if ((p[0] == 0xe0 && p[1] < 0xa0) || (p[0] == 0xed && p[1] >= 0xa0) ||
	    (p[0] == 0xf0 && p[1] < 0x90) || (p[0] == 0xf4 && p[1] >= 0x90))
		return 0;
	return len;
}

char *mgrok_text_utf8(const char *in, char *out, size_t outlen)
{
	const unsigned char *p = (const unsigned char *)in;
	size_t n = strlen(in), o = 0;
	while (n && outlen) {
		size_t len = utf8_seq(p, n);
		if (o + (len ? len : 1) >= outlen)
			break;
		if (len)
			memcpy(out + o, p, len);
		else
			out[o] = '?';
		o += len ? len : 1;
		p += len ? len : 1;
		n -= len ? len : 1;
	}
	if (outlen)
		out[o] = '\0';
	return out;
}

/* ---- the families both programs have ---------------------------------------- */

#define TRAFFIC_LABELS(t) "proxy", (t)->proxy, "type", (t)->type, "user", (t)->user

static void traffic_families(struct mgrok_buf *out, const struct mgrok_traffic_table *tt)
{
	const struct mgrok_traffic *t;
	mgrok_metrics_family(out, "mgrok_transmit_bytes_total", "counter",
	                     "Bytes carried for a proxy: direction in is from visitors toward the "
	                     "local service, out is back.");
	for (t = tt->head; t; t = t->next) {
		mgrok_metrics_u64(out, "mgrok_transmit_bytes_total", t->bytes_in, TRAFFIC_LABELS(t),
		                  "direction", "in", NULL);
		mgrok_metrics_u64(out, "mgrok_transmit_bytes_total", t->bytes_out,
		                  TRAFFIC_LABELS(t), "direction", "out", NULL);
	}
	mgrok_metrics_family(out, "mgrok_streams", "gauge", "Streams (visitors) open now.");
	for (t = tt->head; t; t = t->next)
		mgrok_metrics_u64(out, "mgrok_streams", t->streams_open, TRAFFIC_LABELS(t), NULL);
	mgrok_metrics_family(out, "mgrok_streams_total", "counter", "Streams (visitors) opened.");
	for (t = tt->head; t; t = t->next)
		mgrok_metrics_u64(out, "mgrok_streams_total", t->streams_opened, TRAFFIC_LABELS(t),
		                  NULL);
	mgrok_metrics_family(out, "mgrok_udp_datagrams_dropped_total", "counter",
	                     "Datagrams dropped: no window, a full socket, no stream to be had.");
	for (t = tt->head; t; t = t->next)
		if (t->datagrams_dropped || strcmp(t->type, "udp") == 0)
			mgrok_metrics_u64(out, "mgrok_udp_datagrams_dropped_total",
			                  t->datagrams_dropped, TRAFFIC_LABELS(t), NULL);
}

static unsigned count_fds(void)
{
	unsigned n = 0;
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return 0;
	for (struct dirent *e; (e = readdir(d));)
		n += e->d_name[0] != '.';
	closedir(d);
	return n - 1; /* the directory's own */
}

static void process_families(struct mgrok_buf *out, const struct mgrok_ctx *ctx)
{
	struct rlimit rl;
	struct rusage ru;
	unsigned long vsz = 0, rss = 0;
	FILE *f = fopen("/proc/self/statm", "r");
	if (f) {
		if (fscanf(f, "%lu %lu", &vsz, &rss) != 2)
			vsz = rss = 0;
		fclose(f);
	}
	unsigned long page = (unsigned long)sysconf(_SC_PAGESIZE);
	getrusage(RUSAGE_SELF, &ru);
	double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
	             ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6;
	mgrok_metrics_family(out, "process_cpu_seconds_total", "counter",
	                     "User and system CPU time spent, in seconds.");
	mgrok_metrics_double(out, "process_cpu_seconds_total", cpu, NULL);
	mgrok_metrics_family(out, "process_open_fds", "gauge", "Open file descriptors.");
	mgrok_metrics_u64(out, "process_open_fds", count_fds(), NULL);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		mgrok_metrics_family(out, "process_max_fds", "gauge",
		                     "The limit on open file descriptors.");
		mgrok_metrics_u64(out, "process_max_fds", (uint64_t)rl.rlim_cur, NULL);
	}
	mgrok_metrics_family(out, "process_resident_memory_bytes", "gauge",
	                     "Resident memory size in bytes.");
	mgrok_metrics_u64(out, "process_resident_memory_bytes", (uint64_t)rss * page, NULL);
	mgrok_metrics_family(out, "process_virtual_memory_bytes", "gauge",
	                     "Virtual memory size in bytes.");
	mgrok_metrics_u64(out, "process_virtual_memory_bytes", (uint64_t)vsz * page, NULL);
	mgrok_metrics_family(out, "process_start_time_seconds", "gauge",
	                     "Start time of the process since the Unix epoch, in seconds.");
	mgrok_metrics_double(out, "process_start_time_seconds", ctx->started_at, NULL);
}

void mgrok_metrics_common(struct mgrok_buf *out, const struct mgrok_ctx *ctx, const char *role)
{
	mgrok_metrics_family(out, "mgrok_build_info", "gauge",
	                     "Always 1: the version and role of this program.");
	mgrok_metrics_u64(out, "mgrok_build_info", 1, "version", PACKAGE_VERSION, "role", role,
	                  NULL);
	traffic_families(out, &ctx->traffic);
	mgrok_metrics_family(out, "mgrok_reloads_total", "counter", "SIGHUP reloads by result.");
	mgrok_metrics_u64(out, "mgrok_reloads_total", ctx->reloads_ok, "result", "ok", NULL);
	mgrok_metrics_u64(out, "mgrok_reloads_total", ctx->reloads_failed, "result", "failed",
	                  NULL);
	process_families(out, ctx);
}
