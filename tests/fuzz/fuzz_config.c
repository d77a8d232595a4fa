/* What the two config targets check alike. Lines count '\n' from 1 and
 * columns count bytes from 1 (jansson counts characters: never more). */
#include <string.h>

#include "config.h"
#include "fuzz.h"

/* The number of lines in text, and the length of line `line` in *line_len. */
static int lines(const char *text, size_t len, int line, size_t *line_len)
{
	int n = 1;
	size_t start = 0;
	*line_len = 0;
	for (size_t i = 0; i <= len; i++) {
		if (i < len && text[i] != '\n')
			continue;
		if (n == line)
			*line_len = i - start;
		if (i < len) {
			n++;
			start = i + 1;
		}
	}
	return n;
}

/* A place in text: line 0 is "no place"; else a line of text, and a column
 * within it or just past its end. */
static void check_place(const char *what, int line, int column, const char *text, size_t len)
{
	size_t line_len;
	int n = lines(text, len, line, &line_len);
	FUZZ_ASSERT(line >= 0 && line <= n, "%s: line %d of %d", what, line, n);
	FUZZ_ASSERT(line > 0 || column == 0, "%s: column %d without a line", what, column);
	FUZZ_ASSERT(column >= 0 && (size_t)column <= line_len + 1,
	            "%s: line %d of %zu bytes, column %d", what, line, line_len, column);
}

void fuzz_conf_error_check(const struct mgrok_conf_error *e, int rc, const char *text, size_t len)
{
	char buf[1024];
	FUZZ_ASSERT(rc == 0 || rc == -1, "rc %d", rc);
	if (rc == 0)
		return;
	FUZZ_ASSERT(memchr(e->file, '\0', sizeof(e->file)) &&
	                    memchr(e->key, '\0', sizeof(e->key)) &&
	                    memchr(e->msg, '\0', sizeof(e->msg)),
	            "unterminated error field");
	FUZZ_ASSERT(e->msg[0] != '\0', "an error without a message (key '%s')", e->key);
	if (text)
		check_place("error", e->line, e->column, text, len);
	else
		FUZZ_ASSERT(e->line == 0 && e->column == 0, "a whole-config check placed at %d:%d",
		            e->line, e->column);
	const char *s = mgrok_conf_error_format(e, buf, sizeof(buf));
	FUZZ_ASSERT(s == buf && strstr(buf, e->msg) != NULL, "formatted error '%s' lost '%s'", buf,
	            e->msg);
}

static void locate(const char *text, size_t len, const char *path)
{
	int line = -1, column = -1;
	if (mgrok_json_locate(text, len, path, &line, &column) == 0) {
		FUZZ_ASSERT(line >= 1, "'%s' located on line %d", path, line);
		check_place("located", line, column, text, len);
		FUZZ_ASSERT(column >= 1, "'%s' located at column %d", path, column);
	}
}

void fuzz_json_locators(const char *text, size_t len, const char *key)
{
	unsigned h = 0;
	for (size_t i = 0; i < len; i++)
		h = h * 31 + (unsigned char)text[i];

	/* An exact-size buffer, from 1 byte up: an overrun shows at once. */
	size_t cap = 1 + h % 200, end = len ? (h >> 8) % (len + 2) : 0;
	char *path = malloc(cap);
	if (mgrok_json_path_at(text, len, end, path, cap) == 0) {
		FUZZ_ASSERT(memchr(path, '\0', cap) != NULL, "path_at: unterminated path");
		locate(text, len, path);
	}
	free(path);
	if (key)
		locate(text, len, key);
	/* The text's last bytes as a path: anything may come in one. */
	char raw[33];
	size_t n = len < 32 ? len : 32;
	if (n)
		memcpy(raw, text + len - n, n);
	raw[n] = '\0';
	locate(text, len, raw);
}
