/* A growable byte buffer: data lives in [off, off + len) of a heap block. */
#ifndef MGROK_BUF_H
#define MGROK_BUF_H

#include <stddef.h>
#include <stdint.h>

struct mgrok_buf {
	uint8_t *data;
	size_t off; /* start of unread bytes */
	size_t len; /* number of unread bytes */
	size_t cap;
};

static inline uint8_t *mgrok_buf_head(const struct mgrok_buf *b) { return b->data + b->off; }
static inline uint8_t *mgrok_buf_tail(const struct mgrok_buf *b)
{
	return b->data + b->off + b->len;
}
static inline size_t mgrok_buf_room(const struct mgrok_buf *b) { return b->cap - b->off - b->len; }

/* Makes room for n more bytes at the tail (moving or growing). */
void mgrok_buf_reserve(struct mgrok_buf *b, size_t n);
void mgrok_buf_append(struct mgrok_buf *b, const void *p, size_t n);
/* Drops n bytes from the head; an emptied buffer rewinds to offset 0. */
void mgrok_buf_consume(struct mgrok_buf *b, size_t n);
/* Returns the block to the allocator; the buffer is then empty. */
void mgrok_buf_free(struct mgrok_buf *b);
/* Appends formatted text (no NUL). */
void mgrok_buf_printf(struct mgrok_buf *b, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

void mgrok_buf_put8(struct mgrok_buf *b, uint8_t v);
void mgrok_buf_put16(struct mgrok_buf *b, uint16_t v);
void mgrok_buf_put32(struct mgrok_buf *b, uint32_t v);

static inline void mgrok_put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}
static inline void mgrok_put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}
static inline uint16_t mgrok_get16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static inline uint32_t mgrok_get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The object that holds member at p (watchers live inside what they serve). */
/* clang-format off: it reads "(char *)(p) - x" as a cast of "-x" */
#define MGROK_CONTAINER_OF(p, type, member) ((type *)((char *)(p)-offsetof(type, member)))
/* clang-format on */

void *mgrok_xmalloc(size_t n);
void *mgrok_xcalloc(size_t n, size_t size);
void *mgrok_xrealloc(void *p, size_t n);
char *mgrok_xstrdup(const char *s);

#endif
