/*
 * Where a key stands in JSON text. jansson keeps no positions for values, so
 * a config error found after parsing walks the raw text once more to name a
 * line and a column. The text is normally JSON that jansson has accepted,
 * but the scanner stays in bounds on anything: tests feed it directly.
 *
 * Columns count bytes from 1; lines count '\n' from 1.
 */
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "config.h"

struct scan {
	const char *p, *end;
	int line, col; /* of *p */
};

/* Longer keys never match: no config key or path component comes close. */
#define KEY_MAX 256

static bool at_end(const struct scan *s) { return s->p >= s->end; }

static void step(struct scan *s)
{
	if (*s->p == '\n') {
		s->line++;
		s->col = 1;
	} else {
		s->col++;
	}
	s->p++;
}

static void skip_ws(struct scan *s)
{
	while (!at_end(s) && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
		step(s);
}

/* Appends one byte; counts past cap so an overlong key is seen as such. */
static void put(char *out, size_t cap, size_t *n, unsigned char c)
{
	if (out && *n < cap)
		out[*n] = (char)c;
	(*n)++;
}

static void put_utf8(char *out, size_t cap, size_t *n, unsigned long cp)
{
	if (cp < 0x80) {
		put(out, cap, n, (unsigned char)cp);
	} else if (cp < 0x800) {
		put(out, cap, n, (unsigned char)(0xC0 | cp >> 6));
		put(out, cap, n, (unsigned char)(0x80 | (cp & 0x3F)));
	} else if (cp < 0x10000) {
		put(out, cap, n, (unsigned char)(0xE0 | cp >> 12));
		put(out, cap, n, (unsigned char)(0x80 | (cp >> 6 & 0x3F)));
		put(out, cap, n, (unsigned char)(0x80 | (cp & 0x3F)));
	} else {
		put(out, cap, n, (unsigned char)(0xF0 | cp >> 18));
		put(out, cap, n, (unsigned char)(0x80 | (cp >> 12 & 0x3F)));
		put(out, cap, n, (unsigned char)(0x80 | (cp >> 6 & 0x3F)));
		put(out, cap, n, (unsigned char)(0x80 | (cp & 0x3F)));
	}
}

/* Reads the 4 hex digits of a \u escape; -1 when they are not there. */
static long hex4(struct scan *s)
{
	long v = 0;
	for (int i = 0; i < 4; i++) {
		if (at_end(s))
			return -1;
		char c = *s->p;
		int d = c >= '0' && c <= '9'   ? c - '0'
		        : c >= 'a' && c <= 'f' ? c - 'a' + 10
		        : c >= 'A' && c <= 'F' ? c - 'A' + 10
		                               : -1;
		if (d < 0)
			return -1;
		v = v * 16 + d;
		step(s);
	}
	return v;
}

/* After "\u": one code point, joining a surrogate pair so that keys
 * written with escapes compare equal to the path's UTF-8. */
static long unicode_escape(struct scan *s)
{
	long hi = hex4(s);
	if (hi < 0xD800 || hi > 0xDBFF)
		return hi;
	if (s->end - s->p < 6 || s->p[0] != '\\' || s->p[1] != 'u')
		return hi;
	step(s);
	step(s);
	long lo = hex4(s);
	if (lo < 0xDC00 || lo > 0xDFFF)
		return -1;
	return 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
}

static int escape(struct scan *s, char *out, size_t cap, size_t *n)
{
	static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
	if (at_end(s))
		return -1;
	char c = *s->p;
	step(s);
	if (c == 'u') {
		long cp = unicode_escape(s);
		if (cp < 0)
			return -1;
		put_utf8(out, cap, n, (unsigned long)cp);
		return 0;
	}
	const char *f = c ? strchr(from, c) : NULL;
	if (!f)
		return -1;
	put(out, cap, n, (unsigned char)to[f - from]);
	return 0;
}

/* At an opening quote: decodes the string into out (may be NULL) and stops
 * after the closing quote. *n is the decoded length even past cap. */
static int read_string(struct scan *s, char *out, size_t cap, size_t *n)
{
	size_t dummy;
	if (!n)
		n = &dummy;
	*n = 0;
	step(s);
	while (!at_end(s)) {
		char c = *s->p;
		step(s);
		if (c == '"')
			return 0;
		if (c != '\\')
			put(out, cap, n, (unsigned char)c);
		else if (escape(s, out, cap, n))
			return -1;
	}
	return -1;
}

static bool scalar_char(char c) { return c && !strchr(",:]} \t\r\n", c); }

/* Skips one value of any kind; nesting is counted, not recursed, so deep
 * input cannot exhaust the stack. */
static int skip_value(struct scan *s)
{
	int depth = 0;
	do {
		if (at_end(s))
			return -1;
		char c = *s->p;
		if (c == '"') {
			if (read_string(s, NULL, 0, NULL))
				return -1;
		} else if (c == '{' || c == '[') {
			depth++;
			step(s);
		} else if (c == '}' || c == ']') {
			if (depth-- == 0)
				return -1;
			step(s);
		} else if (depth == 0) {
			if (!scalar_char(c))
				return -1;
			while (!at_end(s) && scalar_char(*s->p))
				step(s);
		} else {
			step(s);
		}
	} while (depth > 0);
	return 0;
}

/* Expects sep after a value; the end of the container means not found. */
static int next_member(struct scan *s)
{
	skip_ws(s);
	if (at_end(s) || *s->p != ',')
		return -1;
	step(s);
	skip_ws(s);
	return 0;
}

/* At an object: moves to the value of member `name`; *key gets the
 * position of its opening quote. The first of duplicate keys wins. */
static int enter_key(struct scan *s, const char *name, size_t len, struct scan *key)
{
	if (at_end(s) || *s->p != '{')
		return -1;
	step(s);
	skip_ws(s);
	for (;;) {
		char buf[KEY_MAX];
		size_t n;
		if (at_end(s) || *s->p != '"')
			return -1;
		*key = *s;
		if (read_string(s, buf, sizeof(buf), &n))
			return -1;
		skip_ws(s);
		if (at_end(s) || *s->p != ':')
			return -1;
		step(s);
		skip_ws(s);
		if (n == len && n <= sizeof(buf) && memcmp(buf, name, n) == 0)
			return 0;
		if (skip_value(s) || next_member(s))
			return -1;
	}
}

/* At an array: moves to element `index`. */
static int enter_index(struct scan *s, unsigned long index)
{
	if (at_end(s) || *s->p != '[')
		return -1;
	step(s);
	skip_ws(s);
	for (unsigned long i = 0; i < index; i++) {
		if (skip_value(s) || next_member(s))
			return -1;
	}
	return at_end(s) || *s->p == ']' ? -1 : 0;
}

/* "[N]" at *q: N into *index, *q past the bracket. */
static int path_index(const char **q, unsigned long *index)
{
	const char *p = *q + 1;
	unsigned long v = 0;
	if (*p < '0' || *p > '9')
		return -1;
	while (*p >= '0' && *p <= '9') {
		if (v > 100000000UL)
			return -1;
		v = v * 10 + (unsigned long)(*p++ - '0');
	}
	if (*p != ']')
		return -1;
	*q = p + 1;
	*index = v;
	return 0;
}

int mgrok_json_locate(const char *text, size_t len, const char *path, int *line, int *column)
{
	struct scan s = {text, text + len, 1, 1};
	struct scan found;
	const char *q = path;
	skip_ws(&s);
	found = s;
	while (*q) {
		if (*q == '[') {
			unsigned long index;
			if (path_index(&q, &index) || enter_index(&s, index))
				return -1;
			found = s;
			continue;
		}
		/* The leading dot is optional: "a.b" and ".a.b" are the same path. */
		if (*q == '.')
			q++;
		size_t n = strcspn(q, ".[");
		if (n == 0 || enter_key(&s, q, n, &found))
			return -1;
		q += n;
	}
	if (at_end(&found))
		return -1;
	*line = found.line;
	*column = found.col;
	return 0;
}

/* ---- the key path of a position ------------------------------------------ */

#define DEPTH_MAX 32

struct level {
	bool object;
	bool fresh; /* nothing read in it yet: it may close at once */
	unsigned long index;
	char key[KEY_MAX];
	size_t keylen; /* past KEY_MAX: too long to name */
};

static int path_of(const struct level *v, int depth, char *path, size_t cap)
{
	size_t n = 0;
	path[0] = '\0';
	for (int i = 0; i < depth; i++) {
		char part[KEY_MAX + 24];
		if (!v[i].object)
			snprintf(part, sizeof(part), "[%lu]", v[i].index);
		else if (v[i].keylen < KEY_MAX)
			snprintf(part, sizeof(part), "%s%.*s", i ? "." : "", (int)v[i].keylen,
			         v[i].key);
		else
			return -1;
		size_t k = strlen(part);
		if (n + k >= cap)
			return -1;
		memcpy(path + n, part, k + 1);
		n += k;
	}
	return 0;
}

/* At a member's key: reads it into top and steps past the colon. The key
 * may run past the scan's end (a value later ends there): it is read up to
 * whole, the end of the text. */
static int read_key(struct scan *s, struct level *top, const char *whole)
{
	const char *limit = s->end;
	s->end = whole;
	int rc = *s->p == '"' ? read_string(s, top->key, sizeof(top->key), &top->keylen) : -1;
	s->end = limit;
	skip_ws(s);
	if (rc || at_end(s) || *s->p != ':')
		return -1;
	step(s);
	top->fresh = false;
	return 0;
}

/* A string, number or literal, read whole: 1 if it ends at or past stop,
 * 0 if before, -1 if it is none. */
static int read_scalar(struct scan *s, const char *whole, const char *stop)
{
	const char *limit = s->end;
	char c = *s->p;
	s->end = whole;
	if (c == '"' ? read_string(s, NULL, 0, NULL) != 0 : !scalar_char(c))
		return -1;
	while (c != '"' && !at_end(s) && scalar_char(*s->p))
		step(s);
	s->end = limit;
	return s->p >= stop;
}

int mgrok_json_path_at(const char *text, size_t len, size_t end, char *path, size_t cap)
{
	enum { VALUE, KEY, AFTER } state = VALUE;
	struct level stack[DEPTH_MAX];
	int depth = 0;
	struct scan s = {text, text + (end < len ? end : len), 1, 1};

	for (;;) {
		skip_ws(&s);
		if (at_end(&s))
			return -1;
		struct level *top = depth ? &stack[depth - 1] : NULL;
		char c = *s.p;
		if (state == KEY) {
			if (c == '}' && top->fresh)
				state = AFTER;
			else if (read_key(&s, top, text + len) < 0)
				return -1;
			else
				state = VALUE;
		} else if (state == VALUE) {
			if (c == ']' && top && !top->object && top->fresh) {
				state = AFTER;
				continue;
			}
			if (top)
				top->fresh = false;
			if (c == '{' || c == '[') {
				if (depth == DEPTH_MAX)
					return -1;
				stack[depth++] = (struct level){.object = c == '{', .fresh = true};
				step(&s);
				state = c == '{' ? KEY : VALUE;
				continue;
			}
			int at = read_scalar(&s, text + len, text + end);
			if (at)
				return at > 0 ? path_of(stack, depth, path, cap) : -1;
			state = AFTER;
		} else {
			if (!top)
				return -1;
			step(&s);
			if (c == ',' && !top->fresh) {
				if (!top->object)
					top->index++;
				state = top->object ? KEY : VALUE;
			} else if (c == (top->object ? '}' : ']')) {
				depth--;
			} else {
				return -1;
			}
		}
	}
}
