/*
 * Check suite "plugin_loader": core/plugin_loader.c with the real plugins
 * of the build tree ($MGROK_PLUGIN_DIR: tcp.so, udp.so, auth-none.so,
 * auth-token.so, auth-users.so, auth-cluster.so)
 * and two broken ones built by `make check` under
 * $MGROK_BUILDDIR/tests/unit/.libs/ (bad-abi.so, no-entry.so).
 *
 * Sanitizer builds keep modules mapped after mgrok_registry_free (see
 * plugin_loader.c), so a later dlopen of the same file may get the same
 * mapping back; every test therefore starts from its own registry and never
 * relies on a plugin's static state.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "log.h"
#include "plugin_loader.h"

#define SECRET "s3cret"
#define ERRLEN 512

/* ---- helpers -------------------------------------------------------------- */

static const char *env_dir(const char *name)
{
	const char *v = getenv(name);
	ck_assert_msg(v != NULL && *v != '\0', "%s is not set (run through `make check`)", name);
	return v;
}

static const char *plugin_dir(void) { return env_dir("MGROK_PLUGIN_DIR"); }

/* dir/file into a static buffer (one at a time). */
static const char *path_in(const char *dir, const char *file)
{
	static char path[4096];
	int n = snprintf(path, sizeof(path), "%s/%s", dir, file);
	ck_assert(n > 0 && (size_t)n < sizeof(path));
	return path;
}

static const char *real_plugin(const char *file) { return path_in(plugin_dir(), file); }

/* The broken test plugins: $MGROK_BUILDDIR/tests/unit/.libs/<file>. */
static const char *test_plugin(const char *file)
{
	static char path[4096];
	int n = snprintf(path, sizeof(path), "%s/tests/unit/.libs/%s", env_dir("MGROK_BUILDDIR"),
	                 file);
	ck_assert(n > 0 && (size_t)n < sizeof(path));
	ck_assert_msg(access(path, R_OK) == 0, "%s: %s (built by `make check`)", path,
	              strerror(errno));
	return path;
}

static void assert_mentions(const char *err, const char *what)
{
	ck_assert_msg(strstr(err, what) != NULL, "error \"%s\" does not mention \"%s\"", err, what);
}

static void assert_secret_free(const char *text)
{
	ck_assert_msg(strstr(text, SECRET) == NULL, "the secret leaked into \"%s\"", text);
}

/*
 * Every temporary file lives under one scratch directory that main makes
 * and removes, so that a test that crashes (tests run in child processes)
 * leaves nothing behind.
 */
static char scratch[512];

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)type;
	(void)ftw;
	return remove(path);
}

static void scratch_make(void)
{
	const char *base = getenv("TMPDIR");
	snprintf(scratch, sizeof(scratch), "%s/check_plugin_loader.XXXXXX",
	         base && *base ? base : "/tmp");
	if (!mkdtemp(scratch)) {
		perror("mkdtemp");
		exit(EXIT_FAILURE);
	}
}

static void scratch_remove(void) { nftw(scratch, rm_entry, 16, FTW_DEPTH | FTW_PHYS); }

/* A fresh private directory, removed by rm_tmpdir. */
static void make_tmpdir(char *dir, size_t len)
{
	int n = snprintf(dir, len, "%s/t.XXXXXX", scratch);
	ck_assert(n > 0 && (size_t)n < len);
	ck_assert_msg(mkdtemp(dir) != NULL, "mkdtemp: %s", strerror(errno));
}

static void write_file(const char *path, const void *p, size_t len)
{
	FILE *f = fopen(path, "wb");
	ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
	ck_assert_uint_eq(fwrite(p, 1, len, f), len);
	ck_assert_int_eq(fclose(f), 0);
}

static void copy_file(const char *from, const char *to)
{
	FILE *f = fopen(from, "rb");
	ck_assert_msg(f != NULL, "%s: %s", from, strerror(errno));
	char *data = NULL;
	size_t len = 0, cap = 0;
	for (;;) {
		if (len == cap) {
			cap = cap ? 2 * cap : 65536;
			char *more = realloc(data, cap);
			ck_assert_ptr_nonnull(more);
			data = more;
		}
		size_t n = fread(data + len, 1, cap - len, f);
		len += n;
		if (n == 0)
			break;
	}
	ck_assert(!ferror(f));
	fclose(f);
	write_file(to, data, len);
	free(data);
}

/* Removes the given files (names in dir), then dir itself. */
static void rm_tmpdir(const char *dir, const char *const *files, size_t n)
{
	for (size_t i = 0; i < n; i++)
		unlink(path_in(dir, files[i]));
	ck_assert_msg(rmdir(dir) == 0, "rmdir %s: %s", dir, strerror(errno));
}

static json_t *parse(const char *text)
{
	json_error_t je;
	json_t *j = json_loads(text, JSON_REJECT_DUPLICATES, &je);
	ck_assert_msg(j != NULL, "bad JSON in test: %s", je.text);
	return j;
}

static struct mgrok_plugin *load_one(struct mgrok_registry *r, const char *file)
{
	char err[ERRLEN] = "";
	const char *path = real_plugin(file);
	int rc = mgrok_registry_load_file(r, path, err, sizeof(err));
	ck_assert_msg(rc == 0, "loading %s: %s", path, err);
	return r->v[r->n - 1];
}

/* init with conf given as JSON text ("" for the NULL conf). */
static int init_with(struct mgrok_plugin *p, const char *conf, char *err, size_t errlen)
{
	json_t *j = *conf ? parse(conf) : NULL;
	err[0] = '\0';
	int rc = mgrok_plugin_init(p, j, err, errlen);
	json_decref(j);
	return rc;
}

/* ---- loading -------------------------------------------------------------- */

/* tcp, udp, tls, none, token, users, cluster; http when configure found
 * http-parser. */
#ifdef HAVE_HTTP_PARSER
#define BUILT_PLUGINS 8
#else
#define BUILT_PLUGINS 7
#endif

START_TEST(test_load_dir_all)
{
	struct mgrok_registry r = {0};
	char err[ERRLEN] = "";
	ck_assert_msg(mgrok_registry_load_dir(&r, plugin_dir(), NULL, 0, err, sizeof(err)) == 0,
	              "load_dir: %s", err);
	ck_assert_uint_eq(r.n, BUILT_PLUGINS);

	struct mgrok_plugin *tcp = mgrok_registry_find(&r, MGROK_PLUGIN_PROXY, "tcp");
	struct mgrok_plugin *udp = mgrok_registry_find(&r, MGROK_PLUGIN_PROXY, "udp");
	struct mgrok_plugin *none = mgrok_registry_find(&r, MGROK_PLUGIN_AUTH, "none");
	struct mgrok_plugin *token = mgrok_registry_find(&r, MGROK_PLUGIN_AUTH, "token");
	struct mgrok_plugin *users = mgrok_registry_find(&r, MGROK_PLUGIN_AUTH, "users");
	ck_assert_ptr_nonnull(tcp);
	ck_assert_ptr_nonnull(udp);
	ck_assert_ptr_nonnull(none);
	ck_assert_ptr_nonnull(token);
	ck_assert_ptr_nonnull(users);
	ck_assert_ptr_ne(none, token);
	ck_assert_ptr_ne(token, users);
	ck_assert_ptr_ne(tcp, udp);

	ck_assert_uint_eq(tcp->desc->kind, MGROK_PLUGIN_PROXY);
	ck_assert_uint_eq(tcp->desc->wire_id, 0x01);
	ck_assert_ptr_nonnull(tcp->desc->proxy);
	ck_assert_uint_eq(udp->desc->kind, MGROK_PLUGIN_PROXY);
	ck_assert_uint_eq(udp->desc->wire_id, 0x02);
	ck_assert_ptr_nonnull(udp->desc->proxy);
	/* udp streams are datagram streams (ABI 1.1): both callbacks are set. */
	ck_assert_uint_ge(udp->desc->abi_minor, 1);
	ck_assert_ptr_nonnull(udp->desc->proxy->on_datagram);
	ck_assert_ptr_nonnull(udp->desc->proxy->on_stream_end);
	ck_assert_uint_eq(none->desc->kind, MGROK_PLUGIN_AUTH);
	ck_assert_uint_eq(none->desc->wire_id, 0x00);
	ck_assert_ptr_nonnull(none->desc->auth);
	ck_assert_uint_eq(token->desc->kind, MGROK_PLUGIN_AUTH);
	ck_assert_uint_eq(token->desc->wire_id, 0x01);
	ck_assert_ptr_nonnull(token->desc->auth);
	ck_assert_uint_eq(users->desc->kind, MGROK_PLUGIN_AUTH);
	ck_assert_uint_eq(users->desc->wire_id, 0x02);
	ck_assert_ptr_nonnull(users->desc->auth);
	/* users authorizes, limits streams and reloads (auth ops of ABI 1.1). */
	ck_assert_uint_ge(users->desc->abi_minor, 1);
	ck_assert_ptr_nonnull(users->desc->auth->authorize);
	ck_assert_ptr_nonnull(users->desc->auth->max_streams);
	ck_assert_ptr_nonnull(users->desc->auth->reload);

	/* Every record: its file, a handle, a descriptor of this ABI, not initialized. */
	const char *files[] = {"tcp.so", "udp.so", "auth-none.so", "auth-token.so",
	                       "auth-users.so"};
	const struct mgrok_plugin *by_file[] = {tcp, udp, none, token, users};
	for (size_t i = 0; i < 5; i++) {
		const struct mgrok_plugin *p = by_file[i];
		ck_assert_str_eq(p->path, path_in(plugin_dir(), files[i]));
		ck_assert_ptr_nonnull(p->dl);
		ck_assert_uint_eq(p->desc->abi_major, MGROK_PLUGIN_ABI_MAJOR);
		ck_assert_uint_le(p->desc->abi_minor, MGROK_PLUGIN_ABI_MINOR);
		ck_assert_uint_eq(p->desc->size, sizeof(struct mgrok_plugin_desc));
		ck_assert_ptr_nonnull(p->desc->init);
		ck_assert(!p->initialized);
	}
	mgrok_registry_free(&r);
	ck_assert_ptr_null(r.v);
	ck_assert_uint_eq(r.n, 0);
}
END_TEST

START_TEST(test_find)
{
	struct mgrok_registry r = {0};
	char err[ERRLEN] = "";

	/* An empty registry finds nothing. */
	ck_assert_ptr_null(mgrok_registry_find(&r, MGROK_PLUGIN_PROXY, "tcp"));
	ck_assert_ptr_null(mgrok_registry_find_id(&r, MGROK_PLUGIN_PROXY, 0x01));

	ck_assert_msg(mgrok_registry_load_dir(&r, plugin_dir(), NULL, 0, err, sizeof(err)) == 0,
	              "load_dir: %s", err);
	struct mgrok_plugin *tcp = mgrok_registry_find(&r, MGROK_PLUGIN_PROXY, "tcp");
	struct mgrok_plugin *none = mgrok_registry_find(&r, MGROK_PLUGIN_AUTH, "none");
	struct mgrok_plugin *token = mgrok_registry_find(&r, MGROK_PLUGIN_AUTH, "token");
	struct mgrok_plugin *udp = mgrok_registry_find(&r, MGROK_PLUGIN_PROXY, "udp");
	struct mgrok_plugin *users = mgrok_registry_find(&r, MGROK_PLUGIN_AUTH, "users");
	ck_assert_ptr_nonnull(tcp);
	ck_assert_ptr_nonnull(none);
	ck_assert_ptr_nonnull(token);
	ck_assert_ptr_nonnull(udp);
	ck_assert_ptr_nonnull(users);

	/* By wire id: the same id means different things for different kinds. */
	ck_assert_ptr_eq(mgrok_registry_find_id(&r, MGROK_PLUGIN_PROXY, 0x01), tcp);
	ck_assert_ptr_eq(mgrok_registry_find_id(&r, MGROK_PLUGIN_AUTH, 0x00), none);
	ck_assert_ptr_eq(mgrok_registry_find_id(&r, MGROK_PLUGIN_AUTH, 0x01), token);
	ck_assert_ptr_null(mgrok_registry_find_id(&r, MGROK_PLUGIN_PROXY, 0x00));
	ck_assert_ptr_eq(mgrok_registry_find_id(&r, MGROK_PLUGIN_PROXY, 0x02), udp);
#ifdef HAVE_HTTP_PARSER
	struct mgrok_plugin *http = mgrok_registry_find(&r, MGROK_PLUGIN_PROXY, "http");
	ck_assert_ptr_nonnull(http);
	ck_assert_ptr_eq(mgrok_registry_find_id(&r, MGROK_PLUGIN_PROXY, 0x03), http);
	ck_assert_uint_ge(http->desc->abi_minor, 4); /* routed by name */
#else
	ck_assert_ptr_null(mgrok_registry_find_id(&r, MGROK_PLUGIN_PROXY, 0x03));
#endif
	struct mgrok_plugin *tls = mgrok_registry_find(&r, MGROK_PLUGIN_PROXY, "tls");
	ck_assert_ptr_nonnull(tls);
	ck_assert_ptr_eq(mgrok_registry_find_id(&r, MGROK_PLUGIN_PROXY, 0x04), tls);
	ck_assert_uint_ge(tls->desc->abi_minor, 4);
	ck_assert_ptr_null(mgrok_registry_find_id(&r, MGROK_PLUGIN_PROXY, 0x05));
	ck_assert_ptr_eq(mgrok_registry_find_id(&r, MGROK_PLUGIN_AUTH, 0x02), users);
	struct mgrok_plugin *cluster = mgrok_registry_find(&r, MGROK_PLUGIN_AUTH, "cluster");
	ck_assert_ptr_nonnull(cluster);
	ck_assert_ptr_eq(mgrok_registry_find_id(&r, MGROK_PLUGIN_AUTH, 0x03), cluster);
	ck_assert_ptr_null(mgrok_registry_find_id(&r, MGROK_PLUGIN_AUTH, 0x04));
	ck_assert_ptr_null(mgrok_registry_find_id(&r, MGROK_PLUGIN_AUTH, 0xff));
	ck_assert_ptr_null(mgrok_registry_find_id(&r, 0, 0x01));
	ck_assert_ptr_null(mgrok_registry_find_id(&r, 3, 0x01));

	/* By name: the kind must match too, and names match exactly. */
	ck_assert_ptr_null(mgrok_registry_find(&r, MGROK_PLUGIN_AUTH, "tcp"));
	ck_assert_ptr_null(mgrok_registry_find(&r, MGROK_PLUGIN_PROXY, "token"));
	ck_assert_ptr_null(mgrok_registry_find(&r, MGROK_PLUGIN_AUTH, "udp"));
	ck_assert_ptr_null(mgrok_registry_find(&r, MGROK_PLUGIN_PROXY, "users"));
	ck_assert_ptr_null(mgrok_registry_find(&r, MGROK_PLUGIN_AUTH, "auth-users"));
	ck_assert_ptr_null(mgrok_registry_find(&r, MGROK_PLUGIN_PROXY, "sctp"));
	ck_assert_ptr_null(mgrok_registry_find(&r, MGROK_PLUGIN_PROXY, "TCP"));
	ck_assert_ptr_null(mgrok_registry_find(&r, MGROK_PLUGIN_PROXY, "UDP"));
	ck_assert_ptr_null(mgrok_registry_find(&r, MGROK_PLUGIN_PROXY, "tc"));
	ck_assert_ptr_null(mgrok_registry_find(&r, MGROK_PLUGIN_PROXY, "tcp.so"));
	ck_assert_ptr_null(mgrok_registry_find(&r, MGROK_PLUGIN_AUTH, ""));
	mgrok_registry_free(&r);
}
END_TEST

START_TEST(test_load_dir_names)
{
	struct mgrok_registry r = {0};
	char err[ERRLEN] = "";
	char *names[] = {"tcp.so", "auth-token.so"};
	ck_assert_msg(mgrok_registry_load_dir(&r, plugin_dir(), names, 2, err, sizeof(err)) == 0,
	              "load_dir: %s", err);
	ck_assert_uint_eq(r.n, 2);
	ck_assert_ptr_nonnull(mgrok_registry_find(&r, MGROK_PLUGIN_PROXY, "tcp"));
	ck_assert_ptr_nonnull(mgrok_registry_find(&r, MGROK_PLUGIN_AUTH, "token"));
	ck_assert_ptr_null(mgrok_registry_find(&r, MGROK_PLUGIN_AUTH, "none"));

	/* A name is a file inside dir: a path, absolute or climbing out, is
	 * refused before dlopen could run anything of it. */
	char full[4096];
	snprintf(full, sizeof(full), "%s", real_plugin("auth-none.so"));
	char up[] = "../.libs/auth-none.so", dots[] = "..", sub[] = "x/auth-none.so";
	char *bad[] = {full, up, dots, sub};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		err[0] = '\0';
		ck_assert_int_eq(
		        mgrok_registry_load_dir(&r, plugin_dir(), &bad[i], 1, err, sizeof(err)),
		        -1);
		assert_mentions(err, "inside plugin_dir");
		ck_assert_uint_eq(r.n, 2);
	}
	ck_assert_ptr_null(mgrok_registry_find(&r, MGROK_PLUGIN_AUTH, "none"));

	/* No names at all (but a list): nothing to do, not an error. */
	ck_assert_int_eq(mgrok_registry_load_dir(&r, plugin_dir(), names, 0, err, sizeof(err)), 0);
	ck_assert_uint_eq(r.n, 2);
	mgrok_registry_free(&r);
}
END_TEST

START_TEST(test_load_dir_names_missing)
{
	struct mgrok_registry r = {0};
	char err[ERRLEN] = "";
	char *names[] = {"tcp.so", "sctp.so"};
	ck_assert_int_eq(mgrok_registry_load_dir(&r, plugin_dir(), names, 2, err, sizeof(err)), -1);
	assert_mentions(err, "sctp.so");
	mgrok_registry_free(&r);
}
END_TEST

START_TEST(test_same_file_twice)
{
	struct mgrok_registry r = {0};
	char err[ERRLEN] = "";
	char path[4096];
	snprintf(path, sizeof(path), "%s", real_plugin("tcp.so"));

	ck_assert_int_eq(mgrok_registry_load_file(&r, path, err, sizeof(err)), 0);
	ck_assert_int_eq(mgrok_registry_load_file(&r, path, err, sizeof(err)), -1);
	assert_mentions(err, path);
	assert_mentions(err, "already loaded");
	ck_assert_uint_eq(r.n, 1);
	/* The first one is untouched and still usable. */
	struct mgrok_plugin *tcp = mgrok_registry_find(&r, MGROK_PLUGIN_PROXY, "tcp");
	ck_assert_ptr_nonnull(tcp);
	ck_assert_int_eq(init_with(tcp, "{}", err, sizeof(err)), 0);

	/* Loading the whole directory now trips over the same plugin. */
	err[0] = '\0';
	ck_assert_int_eq(mgrok_registry_load_dir(&r, plugin_dir(), NULL, 0, err, sizeof(err)), -1);
	assert_mentions(err, "tcp.so");
	assert_mentions(err, "already loaded");
	mgrok_registry_free(&r);
}
END_TEST

/* A copy of a plugin under another file name is a duplicate by its name. */
START_TEST(test_same_plugin_other_file)
{
	struct mgrok_registry r = {0};
	char err[ERRLEN] = "";
	char dir[512], copy[4096], orig[4096];
	make_tmpdir(dir, sizeof(dir));
	snprintf(orig, sizeof(orig), "%s", real_plugin("auth-token.so"));
	snprintf(copy, sizeof(copy), "%s", path_in(dir, "token-copy.so"));
	copy_file(orig, copy);

	ck_assert_int_eq(mgrok_registry_load_file(&r, orig, err, sizeof(err)), 0);
	ck_assert_int_eq(mgrok_registry_load_file(&r, copy, err, sizeof(err)), -1);
	assert_mentions(err, copy);
	assert_mentions(err, "already loaded");
	assert_mentions(err, orig); /* and where from */
	assert_mentions(err, "token");
	ck_assert_uint_eq(r.n, 1);
	mgrok_registry_free(&r);

	const char *files[] = {"token-copy.so"};
	rm_tmpdir(dir, files, 1);
}
END_TEST

START_TEST(test_bad_abi)
{
	struct mgrok_registry r = {0};
	char err[ERRLEN] = "";
	char ours[32];
	snprintf(ours, sizeof(ours), "%d.%d", MGROK_PLUGIN_ABI_MAJOR, MGROK_PLUGIN_ABI_MINOR);

	ck_assert_int_eq(mgrok_registry_load_file(&r, test_plugin("bad-abi.so"), err, sizeof(err)),
	                 -1);
	assert_mentions(err, test_plugin("bad-abi.so"));
	assert_mentions(err, "ABI 99.");
	assert_mentions(err, ours);
	ck_assert_uint_eq(r.n, 0);
	ck_assert_ptr_null(mgrok_registry_find(&r, MGROK_PLUGIN_AUTH, "bad-abi"));
	mgrok_registry_free(&r);
}
END_TEST

START_TEST(test_no_entry)
{
	struct mgrok_registry r = {0};
	char err[ERRLEN] = "";
	ck_assert_int_eq(mgrok_registry_load_file(&r, test_plugin("no-entry.so"), err, sizeof(err)),
	                 -1);
	assert_mentions(err, test_plugin("no-entry.so"));
	assert_mentions(err, "mgrok_plugin_entry");
	ck_assert_uint_eq(r.n, 0);
	mgrok_registry_free(&r);
}
END_TEST

/* A refused plugin leaves the registry as it was, and the next load still works. */
START_TEST(test_refusal_keeps_registry)
{
	struct mgrok_registry r = {0};
	char err[ERRLEN] = "";
	load_one(&r, "auth-none.so");
	ck_assert_int_eq(mgrok_registry_load_file(&r, test_plugin("bad-abi.so"), err, sizeof(err)),
	                 -1);
	ck_assert_int_eq(mgrok_registry_load_file(&r, test_plugin("no-entry.so"), err, sizeof(err)),
	                 -1);
	ck_assert_uint_eq(r.n, 1);
	load_one(&r, "tcp.so");
	ck_assert_uint_eq(r.n, 2);
	ck_assert_ptr_nonnull(mgrok_registry_find(&r, MGROK_PLUGIN_AUTH, "none"));
	ck_assert_ptr_nonnull(mgrok_registry_find(&r, MGROK_PLUGIN_PROXY, "tcp"));
	mgrok_registry_free(&r);
}
END_TEST

START_TEST(test_nonexistent_file)
{
	struct mgrok_registry r = {0};
	char err[ERRLEN] = "";
	char dir[512], path[4096];
	make_tmpdir(dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s", path_in(dir, "does-not-exist.so"));
	ck_assert_int_eq(mgrok_registry_load_file(&r, path, err, sizeof(err)), -1);
	assert_mentions(err, path);
	ck_assert_uint_eq(r.n, 0);
	mgrok_registry_free(&r);
	rm_tmpdir(dir, NULL, 0);
}
END_TEST

START_TEST(test_junk_file)
{
	static const char junk[] = "this is not an ELF object, just text\n";
	struct mgrok_registry r = {0};
	char err[ERRLEN] = "";
	char dir[512], path[4096];
	make_tmpdir(dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s", path_in(dir, "junk.so"));
	write_file(path, junk, sizeof(junk) - 1);

	ck_assert_int_eq(mgrok_registry_load_file(&r, path, err, sizeof(err)), -1);
	assert_mentions(err, path);
	ck_assert_uint_eq(r.n, 0);

	/* Found by a directory scan, it is refused the same way. */
	err[0] = '\0';
	ck_assert_int_eq(mgrok_registry_load_dir(&r, dir, NULL, 0, err, sizeof(err)), -1);
	assert_mentions(err, "junk.so");
	ck_assert_uint_eq(r.n, 0);
	mgrok_registry_free(&r);

	const char *files[] = {"junk.so"};
	rm_tmpdir(dir, files, 1);
}
END_TEST

START_TEST(test_empty_dir)
{
	struct mgrok_registry r = {0};
	char err[ERRLEN] = "";
	char dir[512];
	make_tmpdir(dir, sizeof(dir));
	ck_assert_int_eq(mgrok_registry_load_dir(&r, dir, NULL, 0, err, sizeof(err)), -1);
	assert_mentions(err, "no plugins");
	assert_mentions(err, dir);
	ck_assert_uint_eq(r.n, 0);

	/* Files that are not *.so do not count. */
	const char *files[] = {"README", "tcp.so.bak", ".so", "x.sox"};
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		write_file(path_in(dir, files[i]), "x", 1);
	err[0] = '\0';
	ck_assert_int_eq(mgrok_registry_load_dir(&r, dir, NULL, 0, err, sizeof(err)), -1);
	assert_mentions(err, "no plugins");
	ck_assert_uint_eq(r.n, 0);
	mgrok_registry_free(&r);
	rm_tmpdir(dir, files, sizeof(files) / sizeof(files[0]));
}
END_TEST

START_TEST(test_missing_dir)
{
	struct mgrok_registry r = {0};
	char err[ERRLEN] = "";
	char dir[512], gone[1024];
	make_tmpdir(dir, sizeof(dir));
	snprintf(gone, sizeof(gone), "%s/not-here", dir);
	ck_assert_int_eq(mgrok_registry_load_dir(&r, gone, NULL, 0, err, sizeof(err)), -1);
	assert_mentions(err, gone);
	ck_assert_uint_eq(r.n, 0);
	mgrok_registry_free(&r);
	rm_tmpdir(dir, NULL, 0);
}
END_TEST

START_TEST(test_default_plugin_dir)
{
	const char *saved = getenv("MGROK_PLUGIN_DIR");
	char keep[4096] = "";
	if (saved)
		snprintf(keep, sizeof(keep), "%s", saved);

	ck_assert_int_eq(setenv("MGROK_PLUGIN_DIR", "/some/where", 1), 0);
	ck_assert_str_eq(mgrok_default_plugin_dir(), "/some/where");
	/* Empty means unset: the installed directory. */
	ck_assert_int_eq(setenv("MGROK_PLUGIN_DIR", "", 1), 0);
	const char *installed = mgrok_default_plugin_dir();
	ck_assert_ptr_nonnull(installed);
	ck_assert_uint_gt(strlen(installed), 0);
	ck_assert_str_ne(installed, "/some/where");
	ck_assert_int_eq(unsetenv("MGROK_PLUGIN_DIR"), 0);
	ck_assert_str_eq(mgrok_default_plugin_dir(), installed);

	if (saved)
		setenv("MGROK_PLUGIN_DIR", keep, 1);
}
END_TEST

/* ---- init ------------------------------------------------------------------ */

START_TEST(test_init_tcp)
{
	struct mgrok_registry r = {0};
	char err[ERRLEN];
	struct mgrok_plugin *tcp = load_one(&r, "tcp.so");

	ck_assert_int_eq(init_with(tcp, "{\"x\":1}", err, sizeof(err)), -1);
	ck_assert_uint_gt(strlen(err), 0);
	assert_mentions(err, "tcp");
	ck_assert(!tcp->initialized);

	ck_assert_int_eq(init_with(tcp, "{\"x\":1}", err, sizeof(err)), -1); /* still refused */
	ck_assert(!tcp->initialized);

	ck_assert_msg(init_with(tcp, "{}", err, sizeof(err)) == 0, "init: %s", err);
	ck_assert(tcp->initialized);
	ck_assert_ptr_nonnull(tcp->inst);
	/* Once initialized, init is not repeated. */
	void *inst = tcp->inst;
	ck_assert_int_eq(init_with(tcp, "{}", err, sizeof(err)), 0);
	ck_assert_ptr_eq(tcp->inst, inst);
	mgrok_registry_free(&r);
}
END_TEST

START_TEST(test_init_null_conf)
{
	/* No conf at all is the empty object. */
	struct mgrok_registry r = {0};
	char err[ERRLEN];
	struct mgrok_plugin *tcp = load_one(&r, "tcp.so");
	struct mgrok_plugin *none = load_one(&r, "auth-none.so");
	struct mgrok_plugin *token = load_one(&r, "auth-token.so");
	ck_assert_msg(init_with(tcp, "", err, sizeof(err)) == 0, "tcp: %s", err);
	ck_assert_msg(init_with(none, "", err, sizeof(err)) == 0, "none: %s", err);
	ck_assert(tcp->initialized);
	ck_assert(none->initialized);
	/* token needs a secret: NULL is {} and refused. */
	ck_assert_int_eq(init_with(token, "", err, sizeof(err)), -1);
	assert_mentions(err, "token");
	ck_assert(!token->initialized);
	mgrok_registry_free(&r);
}
END_TEST

/* udp takes its settings per proxy ("options"), none as plugin options. */
START_TEST(test_init_udp)
{
	struct mgrok_registry r = {0};
	char err[ERRLEN];
	struct mgrok_plugin *udp = load_one(&r, "udp.so");
	ck_assert_int_eq(init_with(udp, "{\"idle_timeout\":5}", err, sizeof(err)), -1);
	assert_mentions(err, "udp");
	assert_mentions(err, "options");
	ck_assert(!udp->initialized);
	ck_assert_ptr_null(udp->inst);
	ck_assert_msg(init_with(udp, "", err, sizeof(err)) == 0, "udp, no conf: %s", err);
	ck_assert(udp->initialized);
	ck_assert_ptr_nonnull(udp->inst);
	mgrok_registry_free(&r);

	udp = load_one(&r, "udp.so");
	ck_assert_msg(init_with(udp, "{}", err, sizeof(err)) == 0, "udp: %s", err);
	ck_assert(udp->initialized);
	mgrok_registry_free(&r);
}
END_TEST

START_TEST(test_init_none_refuses_options)
{
	struct mgrok_registry r = {0};
	char err[ERRLEN];
	struct mgrok_plugin *none = load_one(&r, "auth-none.so");
	ck_assert_int_eq(init_with(none, "{\"token\":\"" SECRET "\"}", err, sizeof(err)), -1);
	assert_mentions(err, "none");
	ck_assert(!none->initialized);
	ck_assert_int_eq(init_with(none, "{}", err, sizeof(err)), 0);
	ck_assert(none->initialized);
	mgrok_registry_free(&r);
}
END_TEST

/*
 * Every refused token configuration, most with the secret in it: the error
 * text names the option, never its value. The log is captured as well.
 */
START_TEST(test_init_token)
{
	static const char *const bad[] = {
	        "{}",
	        "{\"token\":\"\"}",
	        "{\"token\":5}",
	        "{\"token\":[\"" SECRET "\"]}",
	        "{\"token\":\"" SECRET "\",\"bogus\":1}",
	        "{\"bogus\":\"" SECRET "\"}",
	        "{\"token\":\"" SECRET "\",\"token_env\":\"MGROK_TEST_NO_SUCH_VAR\"}",
	        "{\"token\":\"" SECRET "\",\"token_file\":\"/nonexistent/token\"}",
	        "{\"token_env\":\"MGROK_TEST_NO_SUCH_VAR\"}",
	        "{\"token_file\":\"/nonexistent/token\"}",
	};
	struct mgrok_registry r = {0};
	char err[ERRLEN];
	char dir[512], logpath[1024];

	/* Capture stderr (where mgrok logs) with everything logged. */
	make_tmpdir(dir, sizeof(dir));
	snprintf(logpath, sizeof(logpath), "%s/log", dir);
	fflush(stderr);
	int saved_stderr = dup(2);
	ck_assert_int_ge(saved_stderr, 0);
	int logfd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(logfd, 0);
	ck_assert_int_ge(dup2(logfd, 2), 0);
	close(logfd);
	int saved_level = mgrok_log_level;
	mgrok_log_level = MGROK_LOG_DEBUG;

	struct mgrok_plugin *token = load_one(&r, "auth-token.so");
	unsetenv("MGROK_TEST_NO_SUCH_VAR");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = init_with(token, bad[i], err, sizeof(err));
		ck_assert_msg(rc == -1, "%s was accepted", bad[i]);
		ck_assert_msg(strlen(err) > 0, "%s: no reason given", bad[i]);
		assert_mentions(err, "token");
		assert_secret_free(err);
		ck_assert(!token->initialized);
		ck_assert_ptr_null(token->inst);
	}
	ck_assert_msg(init_with(token, "{\"token\":\"" SECRET "\"}", err, sizeof(err)) == 0,
	              "init: %s", err);
	ck_assert(token->initialized);
	ck_assert_ptr_nonnull(token->inst);
	assert_secret_free(err);
	mgrok_registry_free(&r);

	fflush(stderr);
	mgrok_log_level = saved_level;
	ck_assert_int_ge(dup2(saved_stderr, 2), 0);
	close(saved_stderr);

	FILE *f = fopen(logpath, "rb");
	ck_assert_ptr_nonnull(f);
	char logged[65536];
	size_t n = fread(logged, 1, sizeof(logged) - 1, f);
	fclose(f);
	logged[n] = '\0';
	ck_assert_msg(strstr(logged, "token") != NULL, "nothing logged at debug level: \"%s\"",
	              logged); /* the capture worked: the load was logged */
	assert_secret_free(logged);
	const char *files[] = {"log"};
	rm_tmpdir(dir, files, 1);
}
END_TEST

/* A token from a file and from the environment work too. */
START_TEST(test_init_token_sources)
{
	struct mgrok_registry r = {0};
	char err[ERRLEN];
	char dir[512], path[1024], conf[2048];
	make_tmpdir(dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/token", dir);
	write_file(path, SECRET "\n", sizeof(SECRET));
	chmod(path, 0600);

	struct mgrok_plugin *token = load_one(&r, "auth-token.so");
	snprintf(conf, sizeof(conf), "{\"token_file\":\"%s\"}", path);
	ck_assert_msg(init_with(token, conf, err, sizeof(err)) == 0, "token_file: %s", err);
	mgrok_registry_free(&r);

	token = load_one(&r, "auth-token.so");
	ck_assert_int_eq(setenv("MGROK_TEST_TOKEN", SECRET, 1), 0);
	ck_assert_msg(init_with(token, "{\"token_env\":\"MGROK_TEST_TOKEN\"}", err, sizeof(err)) ==
	                      0,
	              "token_env: %s", err);
	unsetenv("MGROK_TEST_TOKEN");
	mgrok_registry_free(&r);

	const char *files[] = {"token"};
	rm_tmpdir(dir, files, 1);
}
END_TEST

/* users: a server needs its users file, a client a user and a token; the
 * errors name what is wrong, never the token. */
START_TEST(test_init_users)
{
	static const char *const bad[] = {
	        "",
	        "{\"bogus\":\"" SECRET "\"}",
	        "{\"file\":\"/nonexistent/users.json\"}",
	        "{\"user\":\"alice\"}",
	        "{\"user\":\"alice\",\"token\":\"" SECRET "\",\"bogus\":1}",
	        "{\"file\":\"/nonexistent/users.json\",\"token\":\"" SECRET "\"}",
	};
	struct mgrok_registry r = {0};
	char err[ERRLEN];
	struct mgrok_plugin *users = load_one(&r, "auth-users.so");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_msg(init_with(users, bad[i], err, sizeof(err)) == -1, "%s accepted",
		              bad[i]);
		assert_mentions(err, "users");
		assert_secret_free(err);
		ck_assert(!users->initialized);
	}
	ck_assert_int_eq(init_with(users, bad[2], err, sizeof(err)), -1);
	assert_mentions(err, "/nonexistent/users.json");
	ck_assert_msg(init_with(users, "{\"user\":\"alice\",\"token\":\"" SECRET "\"}", err,
	                        sizeof(err)) == 0,
	              "client: %s", err);
	ck_assert(users->initialized);
	mgrok_registry_free(&r);
}
END_TEST

/* ---- teardown ------------------------------------------------------------- */

START_TEST(test_registry_free_all)
{
	struct mgrok_registry r = {0};
	char err[ERRLEN] = "";
	ck_assert_msg(mgrok_registry_load_dir(&r, plugin_dir(), NULL, 0, err, sizeof(err)) == 0,
	              "load_dir: %s", err);
	ck_assert_int_eq(init_with(mgrok_registry_find(&r, MGROK_PLUGIN_PROXY, "tcp"), "{}", err,
	                           sizeof(err)),
	                 0);
	ck_assert_int_eq(init_with(mgrok_registry_find(&r, MGROK_PLUGIN_PROXY, "udp"), "{}", err,
	                           sizeof(err)),
	                 0);
	ck_assert_int_eq(init_with(mgrok_registry_find(&r, MGROK_PLUGIN_AUTH, "none"), "{}", err,
	                           sizeof(err)),
	                 0);
	ck_assert_int_eq(init_with(mgrok_registry_find(&r, MGROK_PLUGIN_AUTH, "token"),
	                           "{\"token\":\"" SECRET "\"}", err, sizeof(err)),
	                 0);
	ck_assert_int_eq(init_with(mgrok_registry_find(&r, MGROK_PLUGIN_AUTH, "users"),
	                           "{\"user\":\"alice\",\"token\":\"" SECRET "\"}", err,
	                           sizeof(err)),
	                 0);
	/* fini runs for each (ASan/LSan report anything left behind). */
	mgrok_registry_free(&r);
	ck_assert_ptr_null(r.v);
	ck_assert_uint_eq(r.n, 0);
	/* Freeing an empty registry is harmless, and it can be used again. */
	mgrok_registry_free(&r);
	ck_assert_msg(mgrok_registry_load_dir(&r, plugin_dir(), NULL, 0, err, sizeof(err)) == 0,
	              "load_dir again: %s", err);
	ck_assert_uint_eq(r.n, BUILT_PLUGINS);
	mgrok_registry_free(&r);
}
END_TEST

START_TEST(test_registry_free_partly_initialized)
{
	/* A refused init owes no fini; the others still get theirs. */
	struct mgrok_registry r = {0};
	char err[ERRLEN] = "";
	ck_assert_int_eq(mgrok_registry_load_dir(&r, plugin_dir(), NULL, 0, err, sizeof(err)), 0);
	struct mgrok_plugin *token = mgrok_registry_find(&r, MGROK_PLUGIN_AUTH, "token");
	ck_assert_int_eq(init_with(token, "{}", err, sizeof(err)), -1);
	ck_assert_int_eq(init_with(mgrok_registry_find(&r, MGROK_PLUGIN_PROXY, "tcp"), "{}", err,
	                           sizeof(err)),
	                 0);
	mgrok_registry_free(&r);
	ck_assert_uint_eq(r.n, 0);
}
END_TEST

/* ---- suite ---------------------------------------------------------------- */

static Suite *plugin_loader_suite(void)
{
	Suite *s = suite_create("plugin_loader");
	TCase *tc;

	tc = tcase_create("load");
	tcase_add_test(tc, test_load_dir_all);
	tcase_add_test(tc, test_find);
	tcase_add_test(tc, test_load_dir_names);
	tcase_add_test(tc, test_load_dir_names_missing);
	tcase_add_test(tc, test_same_file_twice);
	tcase_add_test(tc, test_same_plugin_other_file);
	tcase_add_test(tc, test_default_plugin_dir);
	tcase_set_timeout(tc, 30);
	suite_add_tcase(s, tc);

	tc = tcase_create("refuse");
	tcase_add_test(tc, test_bad_abi);
	tcase_add_test(tc, test_no_entry);
	tcase_add_test(tc, test_refusal_keeps_registry);
	tcase_add_test(tc, test_nonexistent_file);
	tcase_add_test(tc, test_junk_file);
	tcase_add_test(tc, test_empty_dir);
	tcase_add_test(tc, test_missing_dir);
	tcase_set_timeout(tc, 30);
	suite_add_tcase(s, tc);

	tc = tcase_create("init");
	tcase_add_test(tc, test_init_tcp);
	tcase_add_test(tc, test_init_null_conf);
	tcase_add_test(tc, test_init_udp);
	tcase_add_test(tc, test_init_none_refuses_options);
	tcase_add_test(tc, test_init_token);
	tcase_add_test(tc, test_init_token_sources);
	tcase_add_test(tc, test_init_users);
	tcase_set_timeout(tc, 30);
	suite_add_tcase(s, tc);

	tc = tcase_create("free");
	tcase_add_test(tc, test_registry_free_all);
	tcase_add_test(tc, test_registry_free_partly_initialized);
	tcase_set_timeout(tc, 30);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	scratch_make();
	SRunner *sr = srunner_create(plugin_loader_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	scratch_remove();
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
