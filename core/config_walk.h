/*
 * Between config.c (the two programs' sections: their tables of keys) and
 * config_walk.c (what every section is read with: walking a JSON object
 * against a table, taking values, placing errors, loading a file). Nothing
 * else includes it.
 */
#ifndef MGROK_CONFIG_WALK_H
#define MGROK_CONFIG_WALK_H

#include <jansson.h>
#include <stddef.h>

#include "codec.h"
#include "config.h"

#define KEYLEN sizeof(((struct mgrok_conf_error *)0)->key)
#define NAME_RULE "must be " MGROK_NAME_RULE

/* One file being loaded. */
struct ctx {
	const char *path;
	const char *text; /* the raw file, for mgrok_json_locate() */
	size_t len;
	struct mgrok_conf_error *err;
};

/* Takes one member's value into *dst, a field of the section's struct. */
typedef int take_fn(const struct ctx *x, const char *key, json_t *v, void *dst);

/* A key of a section: its value is taken into the field at off, or it is a
 * subsection whose own keys (sub) have offsets in the same struct. */
struct field {
	const char *name;
	take_fn *take;
	size_t off;
	const struct field *sub;
};
/* clang-format off: it takes these braces for a block */
#define FIELDS_END                                                                                 \
	{                                                                                          \
		NULL, NULL, 0, NULL                                                                \
	}
/* clang-format on */

/* Fills x->err and returns -1. Without x->text (whole-config checks) the
 * error has a key but no place in a file. */
int conf_bad(const struct ctx *x, const char *key, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
/* Names the type found, never the value. */
int conf_wrong_type(const struct ctx *x, const char *key, const char *want, const json_t *v);
/* Key paths: parent.name and parent[i]. */
void conf_key_join(char *dst, const char *parent, const char *name);
void conf_key_index(char *dst, const char *parent, size_t i);
/* Hands each member of object v to the field of the same name in f (ended
 * by a NULL name); at is v's own path, "" for the top level. */
int conf_walk(const struct ctx *x, const char *at, const json_t *v, const struct field *f,
              void *base);

json_t *conf_xobject(void);
void conf_replace_string(char **dst, const char *s);
/* The value types every section has. */
take_fn conf_take_string, conf_take_seconds, conf_take_count, conf_take_bool, conf_take_hostport;

/* config_sections.c: the "admin" and "cluster" sections, and their checks
 * once the whole file is read (listen: the server's, for cluster). */
take_fn conf_take_admin, conf_take_cluster;
int conf_admin_check(const struct ctx *x, const struct mgrok_admin_conf *a);
int conf_cluster_check(const struct ctx *x, const struct mgrok_cluster_conf *c, const char *listen);

/* Whole-config checks, after the walk. */
typedef int after_fn(const struct ctx *x, const void *conf);
/* Parses text (name stands for the file), walks it against f into conf,
 * then runs after. Returns 0, or -1 with err filled in. */
int conf_load_text(const char *name, const char *text, size_t len, struct mgrok_conf_error *err,
                   const struct field *f, void *conf, after_fn *after);
/* The same from a file. */
int conf_load(const char *path, struct mgrok_conf_error *err, const struct field *f, void *conf,
              after_fn *after);

#endif
