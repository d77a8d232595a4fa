#include "fuzz.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

/* Present only in a sanitizer build. */
void __sanitizer_report_error_summary(const char *summary) __attribute__((weak));

static void remove_tmpdir(void);

void fuzz_fail(const char *file, int line, const char *cond, const char *fmt, ...)
{
	char msg[1024];
	int n = snprintf(msg, sizeof(msg), "%s:%d: property violated: %s: ", file, line, cond);
	va_list ap;
	va_start(ap, fmt);
	if (n > 0 && (size_t)n < sizeof(msg))
		vsnprintf(msg + n, sizeof(msg) - (size_t)n, fmt, ap);
	va_end(ap);
	if (__sanitizer_report_error_summary)
		__sanitizer_report_error_summary(msg);
	else
		fprintf(stderr, "%s\n", msg);
	remove_tmpdir(); /* abort() skips atexit */
	abort();
}

void fuzz_split_init(struct fuzz_split *s, uint8_t seed)
{
	s->state = 0x9e3779b9u ^ seed;
	/* 1, 2, 3 ... 16, then a few larger ones: small pieces find the edges. */
	s->max = seed == 0 ? 0 : seed < 0xc0 ? (size_t)(seed % 16) + 1 : (size_t)(seed - 0xbf) * 8;
}

size_t fuzz_split_next(struct fuzz_split *s, size_t left)
{
	if (!s->max || left == 0)
		return left;
	/* xorshift32 */
	s->state ^= s->state << 13;
	s->state ^= s->state >> 17;
	s->state ^= s->state << 5;
	size_t n = 1 + s->state % s->max;
	return n < left ? n : left;
}

/* ---- the host table ------------------------------------------------------ */

static uint8_t random_next;

void fuzz_host_reset(void) { random_next = 0; }

static void host_log(const struct mgrok_plugin *self, int level, const char *fmt, ...)
{
	/* Formatted all the same: a bad format or argument shows under the sanitizers. */
	char line[512];
	va_list ap;
	(void)self;
	(void)level;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
}

static void *host_alloc(size_t len)
{
	void *p = malloc(len ? len : 1);
	if (!p)
		abort();
	return p;
}

static void host_free(void *p) { free(p); }
static void host_wipe(void *p, size_t len) { OPENSSL_cleanse(p, len); }

static int host_random(void *buf, size_t len)
{
	uint8_t *b = buf;
	for (size_t i = 0; i < len; i++)
		b[i] = random_next++;
	return 0;
}

const struct mgrok_host fuzz_host = {
        .abi_major = MGROK_PLUGIN_ABI_MAJOR,
        .abi_minor = MGROK_PLUGIN_ABI_MINOR,
        .size = sizeof(struct mgrok_host),
        .log = host_log,
        .alloc = host_alloc,
        .free = host_free,
        .wipe = host_wipe,
        .random = host_random,
};

void *fuzz_plugin_init(const struct mgrok_plugin_desc *desc, const char *conf_json)
{
	json_error_t je;
	char err[1024] = "";
	void *inst = NULL;
	json_t *conf = json_loads(conf_json, 0, &je);
	if (!conf || desc->init(&fuzz_host, NULL, conf, &inst, err, sizeof(err)) != 0) {
		fprintf(stderr, "fuzz: plugin %s: init with %s failed: %s\n", desc->name, conf_json,
		        conf ? err : je.text);
		abort();
	}
	json_decref(conf);
	return inst;
}

/* ---- scratch files ------------------------------------------------------- */

static char tmpdir[256];

static void remove_tmpdir(void)
{
	if (!tmpdir[0])
		return;
	DIR *d = opendir(tmpdir);
	struct dirent *e;
	char path[512];
	while (d && (e = readdir(d))) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", tmpdir, e->d_name);
		unlink(path);
	}
	if (d)
		closedir(d);
	rmdir(tmpdir);
	tmpdir[0] = '\0';
}

const char *fuzz_tmpdir(void)
{
	if (tmpdir[0])
		return tmpdir;
	/* $TMPDIR first: run.sh points it at a directory it removes itself,
	 * which also catches what a crashed process leaves behind. */
	const char *bases[] = {getenv("TMPDIR"), "/dev/shm", "/tmp"};
	for (size_t i = 0; i < sizeof(bases) / sizeof(bases[0]); i++) {
		if (!bases[i] || !bases[i][0])
			continue;
		snprintf(tmpdir, sizeof(tmpdir), "%s/mgrok-fuzz-XXXXXX", bases[i]);
		if (mkdtemp(tmpdir)) {
			atexit(remove_tmpdir);
			return tmpdir;
		}
	}
	fprintf(stderr, "fuzz: cannot make a temporary directory: %s\n", strerror(errno));
	abort();
}

const char *fuzz_write_file(const char *name, const void *data, size_t len)
{
	static char path[512];
	snprintf(path, sizeof(path), "%s/%s", fuzz_tmpdir(), name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return NULL;
	const uint8_t *p = data;
	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			close(fd);
			return NULL;
		}
		p += n;
		len -= (size_t)n;
	}
	close(fd);
	return path;
}
