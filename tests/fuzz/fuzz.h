/*
 * What the fuzz targets share: a reader over the input, split points drawn
 * from it, a deterministic plugin host table, a scratch directory, and the
 * real auth plugins compiled in under their own entry names.
 *
 * Every target exports LLVMFuzzerTestOneInput and is built twice: with
 * libFuzzer (make fuzz) and with driver.c, which replays the checked-in
 * corpus in make check. A violated property aborts, so that either reports
 * it with the input that did it.
 */
#ifndef MGROK_FUZZ_H
#define MGROK_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "mgrok/plugin.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Reports a violated property (also to the sanitizers' report, which
 * libFuzzer keeps when it silences the target's stderr) and aborts. */
_Noreturn void fuzz_fail(const char *file, int line, const char *cond, const char *fmt, ...)
        __attribute__((noreturn, format(printf, 4, 5)));

#define FUZZ_ASSERT(cond, ...)                                                                     \
	do {                                                                                       \
		if (!(cond))                                                                       \
			fuzz_fail(__FILE__, __LINE__, #cond, __VA_ARGS__);                         \
	} while (0)

/* The input read front to back; reads past its end give zeros and empty spans. */
struct fuzz_in {
	const uint8_t *p;
	size_t len;
};

static inline bool fuzz_more(const struct fuzz_in *in) { return in->len > 0; }

static inline uint8_t fuzz_u8(struct fuzz_in *in)
{
	if (!in->len)
		return 0;
	in->len--;
	return *in->p++;
}

static inline uint16_t fuzz_u16(struct fuzz_in *in)
{
	uint16_t hi = fuzz_u8(in);
	return (uint16_t)(hi << 8 | fuzz_u8(in));
}

static inline uint32_t fuzz_u32(struct fuzz_in *in)
{
	uint32_t hi = fuzz_u16(in);
	return hi << 16 | fuzz_u16(in);
}

/* Up to n bytes (fewer at the end of the input); *got says how many. */
static inline const uint8_t *fuzz_take(struct fuzz_in *in, size_t n, size_t *got)
{
	const uint8_t *p = in->p;
	*got = n < in->len ? n : in->len;
	in->p += *got;
	in->len -= *got;
	return p;
}

/*
 * Chunk lengths for feeding bytes in pieces, from one seed byte: seed 0 is
 * "all at once", any other seed gives lengths of 1 to a seed-chosen maximum
 * from a small PRNG, so that one byte of the input reproduces the split.
 */
struct fuzz_split {
	uint32_t state;
	size_t max; /* 0: no split */
};

void fuzz_split_init(struct fuzz_split *s, uint8_t seed);
/* The next chunk length, at most left and at least 1 when left > 0. */
size_t fuzz_split_next(struct fuzz_split *s, size_t left);

/*
 * A plugin host table for the auth plugins, deterministic so that inputs
 * replay exactly and seeds can carry valid proofs: random() returns the
 * bytes 0, 1, 2, ... (mod 256), counting on across calls until
 * fuzz_host_reset(). Log lines are formatted and dropped.
 */
extern const struct mgrok_host fuzz_host;
void fuzz_host_reset(void);

/* A directory of this process's own, on /dev/shm when it can be (removed at exit). */
const char *fuzz_tmpdir(void);
/* Writes len bytes to dir/name (mode 0600); returns the path in a static buffer, or NULL. */
const char *fuzz_write_file(const char *name, const void *data, size_t len);

/* The auth plugins, each compiled in with its entry renamed (plugin_*.c). */
const struct mgrok_plugin_desc *fuzz_auth_none_entry(void);
const struct mgrok_plugin_desc *fuzz_auth_token_entry(void);
const struct mgrok_plugin_desc *fuzz_auth_users_entry(void);

/* desc->init with conf given as JSON text; aborts when it fails. */
void *fuzz_plugin_init(const struct mgrok_plugin_desc *desc, const char *conf_json);

/* ---- the config targets (fuzz_config.c) ---- */

struct mgrok_conf_error;

/* A load's error must say something and place it inside text (or nowhere). */
void fuzz_conf_error_check(const struct mgrok_conf_error *e, int rc, const char *text, size_t len);
/* Runs mgrok_json_path_at and mgrok_json_locate on text at a place and with
 * paths derived from it and from key; their results must stay inside text. */
void fuzz_json_locators(const char *text, size_t len, const char *key);

#endif
