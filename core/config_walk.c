/* What every section of a configuration file is read with (config_walk.h). */
#include "config_walk.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

/* ---- errors ------------------------------------------------------------ */

/* A key that is absent (a missing required key) or that the path syntax
 * cannot name is placed at its nearest enclosing key instead. */
static void locate(const struct ctx *x, const char *key)
{
	char path[KEYLEN];
	snprintf(path, sizeof(path), "%s", key);
	while (mgrok_json_locate(x->text, x->len, path, &x->err->line, &x->err->column)) {
		char *cut = path + strlen(path);
		if (cut == path)
			return;
		while (cut > path && *cut != '.' && *cut != '[')
			cut--;
		*cut = '\0';
	}
}

/* Fills x->err and returns -1. Without x->text (whole-config checks) the
 * error has a key but no place in a file. */
int conf_bad(const struct ctx *x, const char *key, const char *fmt, ...)
{
	va_list ap;
	struct mgrok_conf_error *e = x->err;
	memset(e, 0, sizeof(*e));
	snprintf(e->file, sizeof(e->file), "%s", x->path ? x->path : "");
	snprintf(e->key, sizeof(e->key), "%s", key);
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	if (x->text)
		locate(x, key);
	return -1;
}

const char *mgrok_conf_error_format(const struct mgrok_conf_error *e, char *buf, size_t len)
{
	char where[300] = "";
	if (e->file[0] && e->line > 0 && e->column > 0)
		snprintf(where, sizeof(where), "%s:%d:%d: ", e->file, e->line, e->column);
	else if (e->file[0] && e->line > 0)
		snprintf(where, sizeof(where), "%s:%d: ", e->file, e->line);
	else if (e->file[0])
		snprintf(where, sizeof(where), "%s: ", e->file);
	snprintf(buf, len, "%s%s%s%s", where, e->key, e->key[0] ? ": " : "", e->msg);
	return buf;
}

static const char *type_name(const json_t *v)
{
	/* In the order of jansson's json_type. */
	static const char *const names[] = {"an object",     "an array",  "a string",  "an integer",
	                                    "a real number", "a boolean", "a boolean", "null"};
	return names[json_typeof(v)];
}

/* Names the type found, never the value. */
int conf_wrong_type(const struct ctx *x, const char *key, const char *want, const json_t *v)
{
	return conf_bad(x, key, "expected %s, got %s", want, type_name(v));
}

/* ---- walking sections -------------------------------------------------- */

/* Appends to a key path. A path too long for the key field is cut short:
 * the error still reads, and locate() places it at the nearest key that the
 * cut path names. */
static void key_cat(char *dst, const char *s)
{
	size_t n = strlen(dst);
	while (*s && n + 1 < KEYLEN)
		dst[n++] = *s++;
	dst[n] = '\0';
}

void conf_key_join(char *dst, const char *parent, const char *name)
{
	dst[0] = '\0';
	key_cat(dst, parent);
	key_cat(dst, *parent ? "." : "");
	key_cat(dst, name);
}

void conf_key_index(char *dst, const char *parent, size_t i)
{
	char index[32];
	snprintf(index, sizeof(index), "[%zu]", i);
	dst[0] = '\0';
	key_cat(dst, parent);
	key_cat(dst, index);
}

/* Hands each member of object v to the field of the same name in f (ended
 * by a NULL name); at is v's own path, "" for the top level. Recursion
 * follows the tables' nesting, two levels, not the input's. */
int conf_walk(const struct ctx *x, const char *at, const json_t *v, const struct field *f,
              void *base)
{
	const char *name;
	json_t *m;
	char key[KEYLEN];
	if (!json_is_object(v))
		return conf_wrong_type(x, at, *at ? "an object" : "a JSON object at the top level",
		                       v);
	json_object_foreach((json_t *)v, name, m) {
		const struct field *i = f;
		while (i->name && strcmp(i->name, name) != 0)
			i++;
		conf_key_join(key, at, name);
		if (!i->name)
			return conf_bad(x, key, "unknown key");
		if (i->sub ? conf_walk(x, key, m, i->sub, base)
		           : i->take(x, key, m, (char *)base + i->off))
			return -1;
	}
	return 0;
}

/* ---- values ------------------------------------------------------------ */

json_t *conf_xobject(void)
{
	json_t *o = json_object();
	if (!o)
		abort(); /* only out of memory; the x* allocators die the same way */
	return o;
}

void conf_replace_string(char **dst, const char *s)
{
	free(*dst);
	*dst = mgrok_xstrdup(s);
}

int conf_take_string(const struct ctx *x, const char *key, json_t *v, void *dst)
{
	if (!json_is_string(v))
		return conf_wrong_type(x, key, "a string", v);
	if (!json_string_length(v))
		return conf_bad(x, key, "must not be empty");
	conf_replace_string(dst, json_string_value(v));
	return 0;
}

int conf_take_seconds(const struct ctx *x, const char *key, json_t *v, void *dst)
{
	if (!json_is_number(v))
		return conf_wrong_type(x, key, "a number of seconds", v);
	if (!(json_number_value(v) > 0))
		return conf_bad(x, key, "must be greater than 0");
	*(double *)dst = json_number_value(v);
	return 0;
}

int conf_take_count(const struct ctx *x, const char *key, json_t *v, void *dst)
{
	if (!json_is_integer(v))
		return conf_wrong_type(x, key, "an integer", v);
	if (json_integer_value(v) < 1 || json_integer_value(v) > (json_int_t)UINT_MAX)
		return conf_bad(x, key, "out of range 1-%u", UINT_MAX);
	*(unsigned *)dst = (unsigned)json_integer_value(v);
	return 0;
}

int conf_take_bool(const struct ctx *x, const char *key, json_t *v, void *dst)
{
	if (!json_is_boolean(v))
		return conf_wrong_type(x, key, "true or false", v);
	*(bool *)dst = json_is_true(v);
	return 0;
}

int conf_take_hostport(const struct ctx *x, const char *key, json_t *v, void *dst)
{
	if (!json_is_string(v))
		return conf_wrong_type(x, key, "a \"host:port\" string", v);
	const char *why = mgrok_hostport_problem(json_string_value(v));
	if (why)
		return conf_bad(x, key, "%s", why);
	conf_replace_string(dst, json_string_value(v));
	return 0;
}

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	size_t cap = 4096, n = 0, got;
	char *text = mgrok_xmalloc(cap);
	while ((got = fread(text + n, 1, cap - n, f)) > 0) {
		n += got;
		if (n == cap)
			text = mgrok_xrealloc(text, cap *= 2);
	}
	int failed = ferror(f) ? (errno ? errno : EIO) : 0;
	fclose(f);
	if (failed) {
		free(text);
		errno = failed;
		return NULL;
	}
	*len = n;
	return text;
}

/* jansson quotes the token it stopped at, which can be (part of) a secret:
 * a string, or a value someone forgot to quote. Only punctuation and a
 * duplicate key's name are repeated; the line and column still point there. */
static void syntax_error(const struct ctx *x, const json_error_t *je)
{
	const char *near = strstr(je->text, " near '");
	const char *tok = near ? near + 7 : "";
	if (!near || strncmp(je->text, "duplicate object key", 20) == 0 ||
	    (tok[0] && strchr("{}[],:", tok[0]) && tok[1] == '\''))
		snprintf(x->err->msg, sizeof(x->err->msg), "%s", je->text);
	else
		snprintf(x->err->msg, sizeof(x->err->msg), "%.*s near %s", (int)(near - je->text),
		         je->text, tok[0] == '"' ? "a string" : "a bad value");
	x->err->line = je->line > 0 ? je->line : 0;
	x->err->column = je->line > 0 && je->column > 0 ? je->column : 0;
	/* A number is checked by the key that takes it, but one past what
	 * jansson can hold never gets there: name that key here. */
	if (strncmp(je->text, "too big ", 8) == 0 && strstr(je->text, "integer") &&
	    je->position > 0 &&
	    mgrok_json_path_at(x->text, x->len, (size_t)je->position, x->err->key,
	                       sizeof(x->err->key)) == 0 &&
	    x->err->key[0]) {
		snprintf(x->err->msg, sizeof(x->err->msg), "integer too large");
		locate(x, x->err->key);
	}
}

/* jansson parses the text, and json_locate scans the same bytes again to
 * place errors. */
int conf_load_text(const char *name, const char *text, size_t len, struct mgrok_conf_error *err,
                   const struct field *f, void *conf, after_fn *after)
{
	struct ctx x = {.path = name, .text = text, .len = len, .err = err};
	json_error_t je;
	memset(err, 0, sizeof(*err));
	snprintf(err->file, sizeof(err->file), "%s", name);
	json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
	int rc = -1;
	if (!root)
		syntax_error(&x, &je);
	else
		rc = conf_walk(&x, "", root, f, conf) ? -1 : after(&x, conf);
	json_decref(root);
	return rc;
}

int conf_load(const char *path, struct mgrok_conf_error *err, const struct field *f, void *conf,
              after_fn *after)
{
	size_t len;
	char *text = read_file(path, &len);
	if (!text) {
		memset(err, 0, sizeof(*err));
		snprintf(err->file, sizeof(err->file), "%s", path);
		snprintf(err->msg, sizeof(err->msg), "cannot read: %s", strerror(errno));
		return -1;
	}
	int rc = conf_load_text(path, text, len, err, f, conf, after);
	free(text);
	return rc;
}
