/*
 * Unit tests for what the admin endpoint and the status commands are made
 * of: the per-proxy counter table (core/traffic.c: one entry per key, most
 * recently used first, unheld entries forgotten oldest first past the
 * bound), the Prometheus text writer (core/metrics.c: HELP and label
 * escaping, samples under their TYPE), the status table and the HTTP
 * response reader (core/status.c, core/status_response.c), and
 * mgrok_buf_printf (core/buf.c).
 */
#define _POSIX_C_SOURCE 200809L /* open_memstream */
#include <check.h>
#include <dirent.h>
#include <ev.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "buf.h"
#include "context.h"
#include "metrics.h"
#include "status.h"
#include "traffic.h"

/* The buffer's bytes as a NUL-terminated string (the buffer holds none). */
static char *buf_str(const struct mgrok_buf *b)
{
	char *s = malloc(b->len + 1);
	ck_assert_ptr_nonnull(s);
	if (b->len)
		memcpy(s, mgrok_buf_head(b), b->len);
	s[b->len] = '\0';
	return s;
}

static void assert_buf_eq(const struct mgrok_buf *b, const char *want)
{
	char *got = buf_str(b);
	ck_assert_str_eq(got, want);
	ck_assert_uint_eq(b->len, strlen(want));
	free(got);
}

/* ---- mgrok_buf_printf ---------------------------------------------------- */

START_TEST(test_buf_printf_appends)
{
	struct mgrok_buf b = {0};
	mgrok_buf_printf(&b, "%s=%d", "a", 1);
	ck_assert_uint_eq(b.len, 3);
	mgrok_buf_printf(&b, ",%s=%u;", "bc", 22u);
	/* No NUL between the two pieces, none counted at the end. */
	ck_assert_uint_eq(b.len, 10);
	ck_assert_mem_eq(mgrok_buf_head(&b), "a=1,bc=22;", 10);
	ck_assert_ptr_null(memchr(mgrok_buf_head(&b), '\0', b.len));
	mgrok_buf_printf(&b, "%s", ""); /* nothing to add */
	ck_assert_uint_eq(b.len, 10);
	mgrok_buf_free(&b);
}
END_TEST

START_TEST(test_buf_printf_long)
{
	/* Longer than the first block (256 bytes), and a second time over. */
	enum { N = 1000 };
	char big[N + 1];
	for (int i = 0; i < N; i++)
		big[i] = (char)('a' + i % 26);
	big[N] = '\0';
	struct mgrok_buf b = {0};
	mgrok_buf_printf(&b, "<%s>", big);
	ck_assert_uint_eq(b.len, N + 2);
	ck_assert_uint_ge(b.cap, b.len);
	ck_assert_int_eq(mgrok_buf_head(&b)[0], '<');
	ck_assert_mem_eq(mgrok_buf_head(&b) + 1, big, N);
	ck_assert_int_eq(mgrok_buf_head(&b)[N + 1], '>');
	mgrok_buf_printf(&b, "%s|%d", big, -7);
	ck_assert_uint_eq(b.len, 2 * N + 2 + 3);
	ck_assert_mem_eq(mgrok_buf_head(&b) + N + 2, big, N);
	ck_assert_mem_eq(mgrok_buf_head(&b) + 2 * N + 2, "|-7", 3);
	ck_assert_ptr_null(memchr(mgrok_buf_head(&b), '\0', b.len));
	mgrok_buf_free(&b);
}
END_TEST

START_TEST(test_buf_printf_after_consume)
{
	/* Unread bytes not at offset 0: the text goes after them. */
	struct mgrok_buf b = {0};
	mgrok_buf_append(&b, "xxxxhello", 9);
	mgrok_buf_consume(&b, 4);
	mgrok_buf_printf(&b, " %s %03d", "world", 5);
	assert_buf_eq(&b, "hello world 005");
	char big[300];
	memset(big, 'z', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	mgrok_buf_printf(&b, "%s", big);
	ck_assert_uint_eq(b.len, 15 + 299);
	ck_assert_mem_eq(mgrok_buf_head(&b), "hello world 005", 15);
	ck_assert_mem_eq(mgrok_buf_head(&b) + 15, big, 299);
	mgrok_buf_free(&b);
}
END_TEST

/* ---- the traffic table ----------------------------------------------------- */

static struct mgrok_traffic_table tt;

static void traffic_setup(void) { mgrok_traffic_table_init(&tt, 3); }
static void traffic_teardown(void) { mgrok_traffic_table_free(&tt); }

/* The table's proxy names, head to tail, joined with ','. Also checks the
 * list's links and count agree. */
static const char *order(void)
{
	static char s[256];
	size_t n = 0;
	s[0] = '\0';
	const struct mgrok_traffic *prev = NULL;
	for (const struct mgrok_traffic *e = tt.head; e; prev = e, e = e->next) {
		ck_assert_ptr_eq(e->prev, prev);
		if (n)
			strcat(s, ",");
		strcat(s, e->proxy);
		n++;
	}
	ck_assert_ptr_eq(tt.tail, prev);
	ck_assert_uint_eq(tt.n, n);
	return s;
}

START_TEST(test_traffic_new_entry)
{
	char proxy[] = "web", type[] = "tcp", user[] = "alice";
	struct mgrok_traffic *e = mgrok_traffic_get(&tt, proxy, type, user);
	ck_assert_ptr_nonnull(e);
	/* Copies, not the caller's strings. */
	ck_assert_ptr_ne(e->proxy, proxy);
	strcpy(proxy, "xxx");
	strcpy(type, "yyy");
	strcpy(user, "zzzzz");
	ck_assert_str_eq(e->proxy, "web");
	ck_assert_str_eq(e->type, "tcp");
	ck_assert_str_eq(e->user, "alice");
	ck_assert_uint_eq(e->bytes_in, 0);
	ck_assert_uint_eq(e->bytes_out, 0);
	ck_assert_uint_eq(e->streams_opened, 0);
	ck_assert_uint_eq(e->streams_open, 0);
	ck_assert_uint_eq(e->datagrams_dropped, 0);
	ck_assert_uint_eq(e->refs, 1);
	ck_assert_str_eq(order(), "web");
	mgrok_traffic_put(&tt, e);
	ck_assert_uint_eq(e->refs, 0);
	/* Within the bound: an unheld entry stays. */
	ck_assert_str_eq(order(), "web");
	mgrok_traffic_put(&tt, NULL); /* fine */
	ck_assert_str_eq(order(), "web");
}
END_TEST

START_TEST(test_traffic_same_key)
{
	struct mgrok_traffic *a = mgrok_traffic_get(&tt, "a", "tcp", "u");
	a->bytes_in = 100;
	a->bytes_out = 200;
	a->streams_opened = 3;
	a->datagrams_dropped = 4;
	struct mgrok_traffic *b = mgrok_traffic_get(&tt, "b", "tcp", "u");
	ck_assert_ptr_ne(a, b);
	ck_assert_str_eq(order(), "b,a");
	/* The same key again: the same entry, its counts kept, now first. */
	struct mgrok_traffic *a2 = mgrok_traffic_get(&tt, "a", "tcp", "u");
	ck_assert_ptr_eq(a2, a);
	ck_assert_uint_eq(a2->bytes_in, 100);
	ck_assert_uint_eq(a2->bytes_out, 200);
	ck_assert_uint_eq(a2->streams_opened, 3);
	ck_assert_uint_eq(a2->datagrams_dropped, 4);
	ck_assert_uint_eq(a2->refs, 2);
	ck_assert_str_eq(order(), "a,b");
	mgrok_traffic_put(&tt, a2);
	ck_assert_uint_eq(a->refs, 1);
	mgrok_traffic_put(&tt, a);
	mgrok_traffic_put(&tt, b);
	/* Unheld and within the bound: found again, counts and all. */
	struct mgrok_traffic *a3 = mgrok_traffic_get(&tt, "a", "tcp", "u");
	ck_assert_ptr_eq(a3, a);
	ck_assert_uint_eq(a3->bytes_in, 100);
	ck_assert_uint_eq(a3->refs, 1);
	mgrok_traffic_put(&tt, a3);
}
END_TEST

START_TEST(test_traffic_key_parts)
{
	/* Proxy, type and user each make a different entry. */
	struct mgrok_traffic *e1 = mgrok_traffic_get(&tt, "p", "tcp", "u");
	struct mgrok_traffic *e2 = mgrok_traffic_get(&tt, "p", "udp", "u");
	struct mgrok_traffic *e3 = mgrok_traffic_get(&tt, "p", "tcp", "v");
	ck_assert_ptr_ne(e1, e2);
	ck_assert_ptr_ne(e1, e3);
	ck_assert_ptr_ne(e2, e3);
	ck_assert_uint_eq(tt.n, 3);
	ck_assert_str_eq(tt.head->user, "v");
	ck_assert_str_eq(tt.tail->type, "tcp");
	ck_assert_str_eq(tt.tail->user, "u");
	ck_assert_ptr_eq(mgrok_traffic_get(&tt, "p", "udp", "u"), e2);
	ck_assert_ptr_eq(tt.head, e2);
	mgrok_traffic_put(&tt, e2);
	mgrok_traffic_put(&tt, e1);
	mgrok_traffic_put(&tt, e2);
	mgrok_traffic_put(&tt, e3);
	ck_assert_uint_eq(tt.n, 3);
}
END_TEST

START_TEST(test_traffic_evicts_lru)
{
	const char *names[] = {"a", "b", "c"};
	for (int i = 0; i < 3; i++) {
		struct mgrok_traffic *e = mgrok_traffic_get(&tt, names[i], "tcp", "");
		e->bytes_in = (uint64_t)(i + 1) * 10;
		mgrok_traffic_put(&tt, e);
	}
	ck_assert_str_eq(order(), "c,b,a");
	/* Using a makes b the least recently used. */
	mgrok_traffic_put(&tt, mgrok_traffic_get(&tt, "a", "tcp", ""));
	ck_assert_str_eq(order(), "a,c,b");
	struct mgrok_traffic *d = mgrok_traffic_get(&tt, "d", "tcp", "");
	ck_assert_str_eq(order(), "d,a,c");
	ck_assert_uint_eq(tt.n, 3);
	/* a kept its counts; b, forgotten, starts again from zero. */
	struct mgrok_traffic *a = mgrok_traffic_get(&tt, "a", "tcp", "");
	ck_assert_uint_eq(a->bytes_in, 10);
	ck_assert_str_eq(order(), "a,d,c");
	struct mgrok_traffic *b = mgrok_traffic_get(&tt, "b", "tcp", "");
	ck_assert_uint_eq(b->bytes_in, 0);
	ck_assert_str_eq(order(), "b,a,d");
	mgrok_traffic_put(&tt, a);
	mgrok_traffic_put(&tt, b);
	mgrok_traffic_put(&tt, d);
	ck_assert_str_eq(order(), "b,a,d");
}
END_TEST

START_TEST(test_traffic_held_kept)
{
	/* Held entries stay whatever their number. */
	struct mgrok_traffic *e[5];
	const char *names[] = {"a", "b", "c", "d", "e"};
	for (int i = 0; i < 5; i++) {
		e[i] = mgrok_traffic_get(&tt, names[i], "udp", "u");
		e[i]->streams_opened = (uint64_t)i + 1;
	}
	ck_assert_str_eq(order(), "e,d,c,b,a");
	ck_assert_uint_eq(tt.n, 5);
	/* Let go of b (in the middle): over the bound, it goes at once. */
	mgrok_traffic_put(&tt, e[1]);
	ck_assert_str_eq(order(), "e,d,c,a");
	/* Of the most recent one too: the oldest unheld goes, not the oldest. */
	mgrok_traffic_put(&tt, e[4]);
	ck_assert_str_eq(order(), "d,c,a");
	for (int i = 0; i < 5; i++)
		if (i != 1 && i != 4)
			ck_assert_uint_eq(e[i]->streams_opened, (uint64_t)i + 1);
	/* Back within the bound: unheld entries stay. */
	mgrok_traffic_put(&tt, e[0]);
	mgrok_traffic_put(&tt, e[2]);
	mgrok_traffic_put(&tt, e[3]);
	ck_assert_str_eq(order(), "d,c,a");
	/* A new one pushes out the least recently used unheld one while the
	 * held tail stays. */
	struct mgrok_traffic *a = mgrok_traffic_get(&tt, "a", "udp", "u");
	ck_assert_uint_eq(a->streams_opened, 1);
	ck_assert_str_eq(order(), "a,d,c");
	struct mgrok_traffic *f = mgrok_traffic_get(&tt, "f", "udp", "u");
	ck_assert_str_eq(order(), "f,a,d");
	mgrok_traffic_put(&tt, f);
	mgrok_traffic_put(&tt, a);
}
END_TEST

START_TEST(test_traffic_held_tail)
{
	/* The held tail is stepped over: the unheld one before it goes. */
	struct mgrok_traffic *a = mgrok_traffic_get(&tt, "a", "tcp", "u");
	mgrok_traffic_put(&tt, mgrok_traffic_get(&tt, "b", "tcp", "u"));
	mgrok_traffic_put(&tt, mgrok_traffic_get(&tt, "c", "tcp", "u"));
	ck_assert_str_eq(order(), "c,b,a");
	struct mgrok_traffic *d = mgrok_traffic_get(&tt, "d", "tcp", "u");
	ck_assert_str_eq(order(), "d,c,a");
	ck_assert_ptr_eq(tt.tail, a);
	ck_assert_uint_eq(a->refs, 1);
	mgrok_traffic_put(&tt, d);
	mgrok_traffic_put(&tt, a);
	ck_assert_str_eq(order(), "d,c,a");
}
END_TEST

START_TEST(test_traffic_bound_zero)
{
	struct mgrok_traffic_table z;
	mgrok_traffic_table_init(&z, 0);
	struct mgrok_traffic *e = mgrok_traffic_get(&z, "a", "tcp", "u");
	ck_assert_ptr_nonnull(e);
	ck_assert_uint_eq(z.n, 1); /* held */
	e->bytes_out = 9;
	ck_assert_ptr_eq(mgrok_traffic_get(&z, "a", "tcp", "u"), e);
	mgrok_traffic_put(&z, e);
	ck_assert_uint_eq(z.n, 1);
	mgrok_traffic_put(&z, e);
	ck_assert_uint_eq(z.n, 0);
	ck_assert_ptr_null(z.head);
	ck_assert_ptr_null(z.tail);
	mgrok_traffic_table_free(&z);
}
END_TEST

START_TEST(test_traffic_free_held)
{
	/* Freeing the table frees held entries too (checked by ASan/valgrind). */
	struct mgrok_traffic_table t2;
	mgrok_traffic_table_init(&t2, 2);
	mgrok_traffic_get(&t2, "a", "tcp", "u");
	mgrok_traffic_get(&t2, "b", "tcp", "u");
	mgrok_traffic_get(&t2, "c", "tcp", "u");
	ck_assert_uint_eq(t2.n, 3);
	mgrok_traffic_table_free(&t2);
	ck_assert_uint_eq(t2.n, 0);
	ck_assert_ptr_null(t2.head);
	ck_assert_ptr_null(t2.tail);
}
END_TEST

/* ---- the Prometheus writer ----------------------------------------------- */

START_TEST(test_metrics_family)
{
	struct mgrok_buf b = {0};
	mgrok_metrics_family(&b, "mgrok_x_total", "counter", "Plain help.");
	assert_buf_eq(&b, "# HELP mgrok_x_total Plain help.\n# TYPE mgrok_x_total counter\n");
	mgrok_buf_free(&b);
	mgrok_metrics_family(&b, "g", "gauge", "a\\b\nc \"q\"\n");
	/* Backslash and newline escaped; a double quote is not (HELP rules). */
	assert_buf_eq(&b, "# HELP g a\\\\b\\nc \"q\"\\n\n# TYPE g gauge\n");
	mgrok_buf_free(&b);
	mgrok_metrics_family(&b, "e", "gauge", "");
	assert_buf_eq(&b, "# HELP e \n# TYPE e gauge\n");
	mgrok_buf_free(&b);
}
END_TEST

START_TEST(test_metrics_u64)
{
	struct mgrok_buf b = {0};
	mgrok_metrics_u64(&b, "plain", 0, NULL);
	mgrok_metrics_u64(&b, "one", 42, "k", "v", NULL);
	mgrok_metrics_u64(&b, "max", UINT64_MAX, "a", "x", "b", "", "c", "z z", NULL);
	assert_buf_eq(&b, "plain 0\n"
	                  "one{k=\"v\"} 42\n"
	                  "max{a=\"x\",b=\"\",c=\"z z\"} 18446744073709551615\n");
	mgrok_buf_free(&b);
}
END_TEST

START_TEST(test_metrics_label_escaping)
{
	struct mgrok_buf b = {0};
	mgrok_metrics_u64(&b, "m", 1, "proxy", "a\"b\\c\nd", "user", "\"", NULL);
	assert_buf_eq(&b, "m{proxy=\"a\\\"b\\\\c\\nd\",user=\"\\\"\"} 1\n");
	mgrok_buf_free(&b);
	mgrok_metrics_double(&b, "d", 2, "x", "\n\n\\", NULL);
	assert_buf_eq(&b, "d{x=\"\\n\\n\\\\\"} 2\n");
	mgrok_buf_free(&b);
}
END_TEST

START_TEST(test_metrics_double)
{
	struct mgrok_buf b = {0};
	mgrok_metrics_double(&b, "a", 0.0, NULL);
	mgrok_metrics_double(&b, "b", 1.5, "k", "v", NULL);
	mgrok_metrics_double(&b, "c", 1700000000.25, NULL);
	mgrok_metrics_double(&b, "d", -3.0, NULL);
	mgrok_metrics_double(&b, "e", 1e21, NULL);
	assert_buf_eq(&b, "a 0\n"
	                  "b{k=\"v\"} 1.5\n"
	                  "c 1700000000.25\n"
	                  "d -3\n"
	                  "e 1e+21\n");
	/* Enough digits to read back the same double. */
	mgrok_buf_free(&b);
	mgrok_metrics_double(&b, "f", 0.1, NULL);
	char *s = buf_str(&b);
	ck_assert_int_eq(strncmp(s, "f ", 2), 0);
	ck_assert(strtod(s + 2, NULL) == 0.1);
	free(s);
	mgrok_buf_free(&b);
}
END_TEST

/* ---- mgrok_metrics_common ------------------------------------------------- */

static struct mgrok_ctx ctx;

static void ctx_setup(void) { mgrok_ctx_init(&ctx, EV_DEFAULT); }
static void ctx_teardown(void) { mgrok_ctx_free(&ctx); }

static char *common_text(const char *role)
{
	struct mgrok_buf b = {0};
	mgrok_metrics_common(&b, &ctx, role);
	ck_assert_uint_gt(b.len, 0);
	ck_assert_ptr_null(memchr(mgrok_buf_head(&b), '\0', b.len));
	char *s = buf_str(&b);
	mgrok_buf_free(&b);
	return s;
}

/* Every line is a HELP, a TYPE or a sample; a TYPE comes right after its
 * family's HELP; a family is announced once; every sample belongs to the
 * family of the last TYPE line; label values are quoted to the end. Returns
 * the number of samples. */
static int check_exposition(const char *text)
{
	char family[128] = "", help[128] = "";
	char seen[64][128];
	int nseen = 0, samples = 0;
	size_t len = strlen(text);
	ck_assert_uint_gt(len, 0);
	ck_assert_msg(text[len - 1] == '\n', "no newline at the end");
	for (const char *line = text; *line;) {
		const char *nl = strchr(line, '\n');
		size_t n = (size_t)(nl - line);
		char l[1024];
		ck_assert_uint_lt(n, sizeof(l));
		memcpy(l, line, n);
		l[n] = '\0';
		line = nl + 1;
		ck_assert_msg(n > 0, "an empty line");
		if (strncmp(l, "# HELP ", 7) == 0) {
			ck_assert_msg(help[0] == '\0', "two HELP lines in a row: %s", l);
			ck_assert_int_eq(sscanf(l + 7, "%127s", help), 1);
			continue;
		}
		if (strncmp(l, "# TYPE ", 7) == 0) {
			char type[32];
			ck_assert_int_eq(sscanf(l + 7, "%127s %31s", family, type), 2);
			ck_assert_msg(strcmp(type, "counter") == 0 || strcmp(type, "gauge") == 0,
			              "type %s", type);
			ck_assert_msg(strcmp(help, family) == 0, "TYPE %s after HELP '%s'", family,
			              help);
			help[0] = '\0';
			for (int i = 0; i < nseen; i++)
				ck_assert_msg(strcmp(seen[i], family) != 0, "%s announced twice",
				              family);
			ck_assert_int_lt(nseen, 64);
			strcpy(seen[nseen++], family);
			continue;
		}
		ck_assert_msg(l[0] != '#', "an unknown comment: %s", l);
		ck_assert_msg(help[0] == '\0', "HELP %s without TYPE", help);
		/* The sample's metric name, then labels, then " value". */
		size_t name_len = strcspn(l, "{ ");
		ck_assert_msg(family[0] != '\0', "sample before any TYPE: %s", l);
		ck_assert_msg(name_len == strlen(family) && strncmp(l, family, name_len) == 0,
		              "sample '%s' not of family %s", l, family);
		const char *p = l + name_len;
		if (*p == '{') {
			p++;
			for (;;) {
				size_t k = strspn(p, "abcdefghijklmnopqrstuvwxyz_");
				ck_assert_msg(k > 0 && p[k] == '=' && p[k + 1] == '"',
				              "label in %s", l);
				p += k + 2;
				while (*p && *p != '"') {
					if (*p == '\\') {
						ck_assert_msg(p[1] == '\\' || p[1] == '"' ||
						                      p[1] == 'n',
						              "bad escape in %s", l);
						p++;
					}
					p++;
				}
				ck_assert_msg(*p == '"', "unterminated label value in %s", l);
				p++;
				if (*p == ',') {
					p++;
					continue;
				}
				ck_assert_msg(*p == '}', "labels not closed in %s", l);
				p++;
				break;
			}
		}
		ck_assert_msg(*p == ' ' && p[1], "no value in %s", l);
		char *end;
		strtod(p + 1, &end);
		ck_assert_msg(*end == '\0' && end != p + 1, "bad value in %s", l);
		samples++;
	}
	ck_assert_msg(help[0] == '\0', "HELP %s at the end without TYPE", help);
	return samples;
}

/* The value of the first sample line that starts with prefix (name and
 * labels), as text. */
static const char *sample_value(const char *text, const char *prefix, char *out, size_t len)
{
	size_t pl = strlen(prefix);
	for (const char *line = text; *line; line = strchr(line, '\n') + 1) {
		if (strncmp(line, prefix, pl) == 0 && line[pl] == ' ') {
			size_t n = strcspn(line + pl + 1, "\n");
			ck_assert_uint_lt(n, len);
			memcpy(out, line + pl + 1, n);
			out[n] = '\0';
			return out;
		}
	}
	return NULL;
}

static int count_lines_starting(const char *text, const char *prefix)
{
	int n = 0;
	size_t pl = strlen(prefix);
	for (const char *line = text; *line; line = strchr(line, '\n') + 1)
		n += strncmp(line, prefix, pl) == 0;
	return n;
}

START_TEST(test_common_empty)
{
	ctx.started_at = 1700000000.5;
	ctx.reloads_ok = 3;
	ctx.reloads_failed = 1;
	char *s = common_text("server");
	char v[64];
	/* build info, the reloads by result, then the process families: no
	 * traffic samples. */
	ck_assert_int_eq(check_exposition(s), 9);
	ck_assert_str_eq(sample_value(s, "mgrok_reloads_total{result=\"ok\"}", v, sizeof(v)), "3");
	ck_assert_str_eq(sample_value(s, "mgrok_reloads_total{result=\"failed\"}", v, sizeof(v)),
	                 "1");
	ck_assert_str_eq(
	        sample_value(s, "mgrok_build_info{version=\"" PACKAGE_VERSION "\",role=\"server\"}",
	                     v, sizeof(v)),
	        "1");
	const char *want_head = "# HELP mgrok_build_info Always 1: the version and role of this "
	                        "program.\n# TYPE mgrok_build_info gauge\n";
	ck_assert_int_eq(strncmp(s, want_head, strlen(want_head)), 0);
	/* The traffic families are announced even without samples. */
	ck_assert_ptr_nonnull(strstr(s, "# TYPE mgrok_transmit_bytes_total counter\n"));
	ck_assert_ptr_nonnull(strstr(s, "# TYPE mgrok_streams gauge\n"));
	ck_assert_ptr_nonnull(strstr(s, "# TYPE mgrok_streams_total counter\n"));
	ck_assert_ptr_nonnull(strstr(s, "# TYPE mgrok_udp_datagrams_dropped_total counter\n"));
	ck_assert_ptr_nonnull(strstr(s, "# TYPE process_cpu_seconds_total counter\n"));
	ck_assert_ptr_nonnull(strstr(s, "# TYPE process_open_fds gauge\n"));
	ck_assert_ptr_nonnull(strstr(s, "# TYPE process_max_fds gauge\n"));
	ck_assert_ptr_nonnull(strstr(s, "# TYPE process_resident_memory_bytes gauge\n"));
	ck_assert_ptr_nonnull(strstr(s, "# TYPE process_virtual_memory_bytes gauge\n"));
	ck_assert_ptr_nonnull(strstr(s, "# TYPE process_start_time_seconds gauge\n"));
	ck_assert_str_eq(sample_value(s, "process_start_time_seconds", v, sizeof(v)),
	                 "1700000000.5");
	free(s);
}
END_TEST

START_TEST(test_common_role)
{
	char *s = common_text("client");
	char v[64];
	ck_assert_str_eq(
	        sample_value(s, "mgrok_build_info{version=\"" PACKAGE_VERSION "\",role=\"client\"}",
	                     v, sizeof(v)),
	        "1");
	ck_assert_int_eq(count_lines_starting(s, "mgrok_build_info"), 1);
	free(s);
}
END_TEST

START_TEST(test_common_traffic_exact)
{
	/* Added first, so listed last (most recently used first). */
	struct mgrok_traffic *u = mgrok_traffic_get(&ctx.traffic, "dns", "udp", "bob");
	u->bytes_in = 7;
	u->bytes_out = 8;
	u->streams_open = 0;
	u->streams_opened = 2;
	struct mgrok_traffic *t = mgrok_traffic_get(&ctx.traffic, "web", "tcp", "alice");
	t->bytes_in = 100;
	t->bytes_out = 2000;
	t->streams_open = 3;
	t->streams_opened = 5;
	char *s = common_text("server");
	ck_assert_int_eq(check_exposition(s), 9 + 2 * 2 + 2 + 2 + 1);
	const char *want =
	        "# HELP mgrok_transmit_bytes_total Bytes carried for a proxy: direction in is "
	        "from visitors toward the local service, out is back.\n"
	        "# TYPE mgrok_transmit_bytes_total counter\n"
	        "mgrok_transmit_bytes_total{proxy=\"web\",type=\"tcp\",user=\"alice\","
	        "direction=\"in\"} 100\n"
	        "mgrok_transmit_bytes_total{proxy=\"web\",type=\"tcp\",user=\"alice\","
	        "direction=\"out\"} 2000\n"
	        "mgrok_transmit_bytes_total{proxy=\"dns\",type=\"udp\",user=\"bob\","
	        "direction=\"in\"} 7\n"
	        "mgrok_transmit_bytes_total{proxy=\"dns\",type=\"udp\",user=\"bob\","
	        "direction=\"out\"} 8\n"
	        "# HELP mgrok_streams Streams (visitors) open now.\n"
	        "# TYPE mgrok_streams gauge\n"
	        "mgrok_streams{proxy=\"web\",type=\"tcp\",user=\"alice\"} 3\n"
	        "mgrok_streams{proxy=\"dns\",type=\"udp\",user=\"bob\"} 0\n"
	        "# HELP mgrok_streams_total Streams (visitors) opened.\n"
	        "# TYPE mgrok_streams_total counter\n"
	        "mgrok_streams_total{proxy=\"web\",type=\"tcp\",user=\"alice\"} 5\n"
	        "mgrok_streams_total{proxy=\"dns\",type=\"udp\",user=\"bob\"} 2\n"
	        "# HELP mgrok_udp_datagrams_dropped_total Datagrams dropped: no window, a full "
	        "socket, no stream to be had.\n"
	        "# TYPE mgrok_udp_datagrams_dropped_total counter\n"
	        "mgrok_udp_datagrams_dropped_total{proxy=\"dns\",type=\"udp\",user=\"bob\"} 0\n"
	        "# HELP mgrok_reloads_total ";
	const char *from = strstr(s, "# HELP mgrok_transmit_bytes_total");
	ck_assert_ptr_nonnull(from);
	char *got = strndup(from, strlen(want));
	ck_assert_str_eq(got, want);
	free(got);
	mgrok_traffic_put(&ctx.traffic, t);
	mgrok_traffic_put(&ctx.traffic, u);
	free(s);
}
END_TEST

START_TEST(test_common_dropped_non_udp)
{
	/* A tcp proxy has a dropped sample only when something was dropped. */
	struct mgrok_traffic *a = mgrok_traffic_get(&ctx.traffic, "a", "tcp", "u");
	struct mgrok_traffic *b = mgrok_traffic_get(&ctx.traffic, "b", "tcp", "u");
	b->datagrams_dropped = 12;
	char *s = common_text("server");
	char v[64];
	check_exposition(s);
	ck_assert_int_eq(count_lines_starting(s, "mgrok_udp_datagrams_dropped_total{"), 1);
	ck_assert_str_eq(sample_value(s,
	                              "mgrok_udp_datagrams_dropped_total{proxy=\"b\",type=\"tcp\","
	                              "user=\"u\"}",
	                              v, sizeof(v)),
	                 "12");
	free(s);
	mgrok_traffic_put(&ctx.traffic, a);
	mgrok_traffic_put(&ctx.traffic, b);
}
END_TEST

START_TEST(test_common_escaped_labels)
{
	/* Names a client chose: quotes, backslashes and newlines stay inside
	 * one line. */
	struct mgrok_traffic *e =
	        mgrok_traffic_get(&ctx.traffic, "we\"b\nx} 99\n# TYPE", "udp", "a\\\"\nb");
	e->bytes_in = 5;
	e->datagrams_dropped = 6;
	char *s = common_text("ser\"ver\n");
	char v[64];
	/* build info 1, in/out 2, streams 1, streams_total 1, dropped 1, process 6 */
	ck_assert_int_eq(check_exposition(s), 14);
	ck_assert_str_eq(
	        sample_value(s,
	                     "mgrok_transmit_bytes_total{proxy=\"we\\\"b\\nx} 99\\n# "
	                     "TYPE\",type=\"udp\",user=\"a\\\\\\\"\\nb\",direction=\"in\"}",
	                     v, sizeof(v)),
	        "5");
	ck_assert_str_eq(sample_value(s,
	                              "mgrok_udp_datagrams_dropped_total{proxy=\"we\\\"b\\nx} "
	                              "99\\n# TYPE\",type=\"udp\",user=\"a\\\\\\\"\\nb\"}",
	                              v, sizeof(v)),
	                 "6");
	ck_assert_str_eq(sample_value(s,
	                              "mgrok_build_info{version=\"" PACKAGE_VERSION
	                              "\",role=\"ser\\\"ver\\n\"}",
	                              v, sizeof(v)),
	                 "1");
	/* The TYPE line in the name did not become one. */
	ck_assert_int_eq(count_lines_starting(s, "# TYPE"), 12);
	free(s);
	mgrok_traffic_put(&ctx.traffic, e);
}
END_TEST

/* The descriptors open now, counted the way /proc lists them. */
static unsigned long fds_now(void)
{
	unsigned long n = 0;
	DIR *d = opendir("/proc/self/fd");
	ck_assert_ptr_nonnull(d);
	for (struct dirent *e; (e = readdir(d));)
		n += e->d_name[0] != '.';
	closedir(d);
	return n - 1;
}

START_TEST(test_common_process)
{
	struct rlimit rl;
	char want[64], v[64];
	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	unsigned long fds = fds_now();
	char *s = common_text("server");
	snprintf(want, sizeof(want), "%llu", (unsigned long long)rl.rlim_cur);
	ck_assert_str_eq(sample_value(s, "process_max_fds", v, sizeof(v)), want);
	snprintf(want, sizeof(want), "%lu", fds);
	ck_assert_str_eq(sample_value(s, "process_open_fds", v, sizeof(v)), want);
	ck_assert_ptr_nonnull(sample_value(s, "process_resident_memory_bytes", v, sizeof(v)));
	ck_assert_uint_gt(strtoull(v, NULL, 10), 0);
	unsigned long long rss = strtoull(v, NULL, 10);
	ck_assert_ptr_nonnull(sample_value(s, "process_virtual_memory_bytes", v, sizeof(v)));
	ck_assert_uint_ge(strtoull(v, NULL, 10), rss);
	ck_assert_ptr_nonnull(sample_value(s, "process_cpu_seconds_total", v, sizeof(v)));
	ck_assert_double_ge(strtod(v, NULL), 0);
	free(s);
}
END_TEST

/* ---- mgrok_status_print ---------------------------------------------------- */

static char *print_doc(const char *json)
{
	json_error_t jerr;
	json_t *doc = json_loads(json, 0, &jerr);
	ck_assert_msg(doc != NULL, "bad test JSON: %s", jerr.text);
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	ck_assert_ptr_nonnull(f);
	mgrok_status_print(f, doc);
	ck_assert_int_eq(fclose(f), 0);
	json_decref(doc);
	ck_assert_uint_eq(strlen(text), len);
	return text;
}

#define SESSION_HEAD                                                                               \
	"SESSION  IDENTITY         CLIENT                           REMOTE                 SINCE " \
	"   "                                                                                      \
	"STATE      STREAMS         IN        OUT\n"
#define PROXY_HEAD                                                                                 \
	"  PROXY            TYPE  PUBLIC                                   STREAMS         IN    " \
	"  "                                                                                       \
	"  OUT\n"

START_TEST(test_status_no_sessions)
{
	char *s = print_doc("{}");
	ck_assert_str_eq(s, "no sessions\n");
	free(s);
	s = print_doc("{\"sessions\": []}");
	ck_assert_str_eq(s, "no sessions\n");
	free(s);
}
END_TEST

START_TEST(test_status_table)
{
	char *s = print_doc(
	        "{\"sessions\": [{\"id\": 7, \"identity\": \"alice\", \"client_id\": \"laptop-1\","
	        " \"remote\": \"203.0.113.5:40000\", \"state\": \"active\", \"streams\": 3,"
	        " \"bytes_in\": 1536, \"bytes_out\": 512, \"proxies\": ["
	        "{\"name\": \"web\", \"type\": \"http\", \"public_address\": "
	        "\"http://web.example.com\", \"streams\": 2, \"bytes_in\": 0, \"bytes_out\": "
	        "5242880},"
	        "{\"name\": \"\", \"type\": \"tcp\"}]},"
	        "{\"id\": 8, \"state\": \"pending\"}]}");
	ck_assert_str_eq(s,
	                 SESSION_HEAD "7        alice            laptop-1                        "
	                              " 203.0.113.5:40000      -        active           3    "
	                              "1.5 KiB      512 B\n" PROXY_HEAD
	                              "  web              http  http://web.example.com         "
	                              "                2        0 B    5.0 MiB\n"
	                              "  -                tcp   -                              "
	                              "                0        0 B        0 B\n"
	                              "\n" SESSION_HEAD
	                              "8        -                -                               "
	                              " -                      -        pending          0     "
	                              "   0 B        0 B\n");
	free(s);
}
END_TEST

/* The SINCE column of a one-session table connected secs ago. */
static void since(long secs, const char *want)
{
	char json[128];
	snprintf(json, sizeof(json), "{\"sessions\": [{\"id\": 1, \"connected_at\": %lld}]}",
	         (long long)time(NULL) - secs);
	char *s = print_doc(json);
	const char *row = strchr(s, '\n') + 1;
	char col[16];
	/* id, identity, client, remote: 8 + 1 + 16 + 1 + 32 + 1 + 22 + 1 bytes */
	ck_assert_int_eq(sscanf(row + 82, "%15s", col), 1);
	ck_assert_str_eq(col, want);
	free(s);
}

START_TEST(test_status_since)
{
	/* Each in the middle of its unit, so a second's tick changes nothing. */
	since(-3600, "0s"); /* a clock behind */
	since(5 * 3600 + 7 * 60 + 30, "5h07m");
	since(2 * 86400 + 3 * 3600 + 30 * 60, "2d03h");
}
END_TEST

START_TEST(test_status_bytes)
{
	char *s = print_doc("{\"sessions\": [{\"id\": 1, \"bytes_in\": 1023, \"bytes_out\": "
	                    "3298534883328}]}");
	/* 3 TiB */
	ck_assert_ptr_nonnull(strstr(s, "   1023 B    3.0 TiB\n"));
	free(s);
	s = print_doc("{\"sessions\": [{\"id\": 1, \"bytes_in\": 1024, \"bytes_out\": "
	              "1152921504606846976}]}");
	/* 2^60: no unit past TiB */
	ck_assert_ptr_nonnull(strstr(s, "    1.0 KiB 1048576.0 TiB\n"));
	free(s);
}
END_TEST

/* ---- mgrok_status_parse_response ------------------------------------------ */

static int parse(const char *resp, int *status, char **body)
{
	struct mgrok_buf b = {0};
	*status = -12345;
	int rc = mgrok_status_parse_response((const uint8_t *)resp, strlen(resp), status, &b);
	*body = buf_str(&b);
	mgrok_buf_free(&b);
	return rc;
}

START_TEST(test_parse_content_length)
{
	int status;
	char *body;
	ck_assert_int_eq(parse("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
	                       "Content-Length: 16\r\nConnection: close\r\n\r\n"
	                       "{\"sessions\": []}",
	                       &status, &body),
	                 0);
	ck_assert_int_eq(status, 200);
	ck_assert_str_eq(body, "{\"sessions\": []}");
	free(body);
	/* What follows the body is not part of it. */
	ck_assert_int_eq(parse("HTTP/1.1 401 Unauthorized\r\nContent-Length: 3\r\n\r\nabcXYZ",
	                       &status, &body),
	                 0);
	ck_assert_int_eq(status, 401);
	ck_assert_str_eq(body, "abc");
	free(body);
	/* No body at all. */
	ck_assert_int_eq(parse("HTTP/1.1 204 No Content\r\n\r\n", &status, &body), 0);
	ck_assert_int_eq(status, 204);
	ck_assert_str_eq(body, "");
	free(body);
	ck_assert_int_eq(
	        parse("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n", &status, &body), 0);
	ck_assert_int_eq(status, 403);
	ck_assert_str_eq(body, "");
	free(body);
}
END_TEST

START_TEST(test_parse_chunked)
{
	int status;
	char *body;
	ck_assert_int_eq(parse("HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n"
	                       "5\r\nhello\r\n6\r\n world\r\na\r\n0123456789\r\n0\r\n\r\n",
	                       &status, &body),
	                 0);
	ck_assert_int_eq(status, 404);
	ck_assert_str_eq(body, "hello world0123456789");
	free(body);
}
END_TEST

START_TEST(test_parse_close_delimited)
{
	int status;
	char *body;
	ck_assert_int_eq(parse("HTTP/1.1 500 Internal Server Error\r\nConnection: close\r\n\r\n"
	                       "{\"error\": \"x\"}",
	                       &status, &body),
	                 0);
	ck_assert_int_eq(status, 500);
	ck_assert_str_eq(body, "{\"error\": \"x\"}");
	free(body);
	ck_assert_int_eq(parse("HTTP/1.0 200 OK\r\n\r\nline1\nline2\n", &status, &body), 0);
	ck_assert_int_eq(status, 200);
	ck_assert_str_eq(body, "line1\nline2\n");
	free(body);
}
END_TEST

static const char *const not_responses[] = {
        "garbage\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\n\r\n", /* a request */
        "HTTP/1.1 abc OK\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",   /* truncated body */
        "HTTP/1.1 200 OK\r\nContent-Le",                        /* truncated head */
        "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",         /* bad length */
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" /* truncated chunks */
        "5\r\nhel",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", /* bad chunk size */
        "", /* nothing: the endpoint closed without answering */
};

START_TEST(test_parse_garbage)
{
	int status;
	char *body;
	int rc = parse(not_responses[_i], &status, &body);
	ck_assert_msg(rc == -1, "'%s' parsed (%d), status %d", not_responses[_i], rc, status);
	free(body);
}
END_TEST

/* Names a peer chose, made UTF-8 for JSON and labels. */
START_TEST(test_text_utf8)
{
	static const struct {
		const char *in, *want;
	} cases[] = {
	        {"alice", "alice"},
	        {"\xff\xfehidden", "??hidden"},
	        {"caf\xc3\xa9", "caf\xc3\xa9"}, /* é kept */
	        {"\xe2\x82\xac"
	         "5",
	         "\xe2\x82\xac"
	         "5"},                                    /* € kept */
	        {"\xf0\x9f\x98\x80", "\xf0\x9f\x98\x80"}, /* U+1F600 kept */
	        {"x\xc3", "x?"},                          /* cut at the end */
	        {"\xc0\xaf", "??"},                       /* overlong */
	        {"\xe0\x80\xaf", "???"},                  /* overlong three */
	        {"\xed\xa0\x80", "???"},                  /* a surrogate */
	        {"\xf4\x90\x80\x80", "????"},             /* past U+10FFFF */
	        {"\xc3(", "?("},                          /* a lead without its tail */
	        {"", ""},
	};
	char out[32];
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++)
		ck_assert_msg(
		        strcmp(mgrok_text_utf8(cases[i].in, out, sizeof(out)), cases[i].want) == 0,
		        "case %zu: got \"%s\"", i, out);
	/* Cut to the room: a sequence is never split. */
	ck_assert_str_eq(mgrok_text_utf8("ab\xc3\xa9", out, 4), "ab");
	ck_assert_str_eq(mgrok_text_utf8("abc", out, 3), "ab");
	ck_assert_str_eq(mgrok_text_utf8("abc", out, 1), "");
}
END_TEST

static Suite *admin_suite(void)
{
	Suite *s = suite_create("admin");
	TCase *tc = tcase_create("buf");
	tcase_add_test(tc, test_buf_printf_appends);
	tcase_add_test(tc, test_buf_printf_long);
	tcase_add_test(tc, test_buf_printf_after_consume);
	suite_add_tcase(s, tc);
	tc = tcase_create("traffic");
	tcase_add_checked_fixture(tc, traffic_setup, traffic_teardown);
	tcase_add_test(tc, test_traffic_new_entry);
	tcase_add_test(tc, test_traffic_same_key);
	tcase_add_test(tc, test_traffic_key_parts);
	tcase_add_test(tc, test_traffic_evicts_lru);
	tcase_add_test(tc, test_traffic_held_kept);
	tcase_add_test(tc, test_traffic_held_tail);
	tcase_add_test(tc, test_traffic_bound_zero);
	tcase_add_test(tc, test_traffic_free_held);
	suite_add_tcase(s, tc);
	tc = tcase_create("metrics");
	tcase_add_test(tc, test_metrics_family);
	tcase_add_test(tc, test_metrics_u64);
	tcase_add_test(tc, test_metrics_label_escaping);
	tcase_add_test(tc, test_metrics_double);
	tcase_add_test(tc, test_text_utf8);
	suite_add_tcase(s, tc);
	tc = tcase_create("metrics_common");
	tcase_add_checked_fixture(tc, ctx_setup, ctx_teardown);
	tcase_add_test(tc, test_common_empty);
	tcase_add_test(tc, test_common_role);
	tcase_add_test(tc, test_common_traffic_exact);
	tcase_add_test(tc, test_common_dropped_non_udp);
	tcase_add_test(tc, test_common_escaped_labels);
	tcase_add_test(tc, test_common_process);
	suite_add_tcase(s, tc);
	tc = tcase_create("status");
	tcase_add_test(tc, test_status_no_sessions);
	tcase_add_test(tc, test_status_table);
	tcase_add_test(tc, test_status_since);
	tcase_add_test(tc, test_status_bytes);
	tcase_add_test(tc, test_parse_content_length);
	tcase_add_test(tc, test_parse_chunked);
	tcase_add_test(tc, test_parse_close_delimited);
	tcase_add_loop_test(tc, test_parse_garbage, 0,
	                    (int)(sizeof(not_responses) / sizeof(*not_responses)));
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(admin_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
