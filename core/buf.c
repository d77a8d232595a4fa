#include "buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void oom(void)
{
	fputs("mgrok: out of memory\n", stderr);
	abort();
}

void *mgrok_xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		oom();
	return p;
}

void *mgrok_xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	if (!p)
		oom();
	return p;
}

void *mgrok_xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (!p)
		oom();
	return p;
}

char *mgrok_xstrdup(const char *s)
{
	size_t n = strlen(s) + 1;
	return memcpy(mgrok_xmalloc(n), s, n);
}

void mgrok_buf_reserve(struct mgrok_buf *b, size_t n)
{
	if (mgrok_buf_room(b) >= n)
		return;
	/* Sliding the unread bytes down when that makes room is cheaper than a
	 * realloc, which would copy them too; and it keeps a buffer's block
	 * within about twice what it holds, so a bound on the bytes bounds
	 * the block. */
	if (b->off && b->cap - b->len >= n) {
		memmove(b->data, b->data + b->off, b->len);
		b->off = 0;
		return;
	}
	size_t need = b->off + b->len + n;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < need)
		cap *= 2;
	b->data = mgrok_xrealloc(b->data, cap);
	b->cap = cap;
}

void mgrok_buf_append(struct mgrok_buf *b, const void *p, size_t n)
{
	if (!n)
		return;
	mgrok_buf_reserve(b, n);
	memcpy(mgrok_buf_tail(b), p, n);
	b->len += n;
}

void mgrok_buf_consume(struct mgrok_buf *b, size_t n)
{
	if (n >= b->len) {
		b->off = 0;
		b->len = 0;
		return;
	}
	b->off += n;
	b->len -= n;
}

void mgrok_buf_free(struct mgrok_buf *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}

void mgrok_buf_put8(struct mgrok_buf *b, uint8_t v) { mgrok_buf_append(b, &v, 1); }

void mgrok_buf_put16(struct mgrok_buf *b, uint16_t v)
{
	uint8_t p[2];
	mgrok_put16(p, v);
	mgrok_buf_append(b, p, 2);
}

void mgrok_buf_put32(struct mgrok_buf *b, uint32_t v)
{
	uint8_t p[4];
	mgrok_put32(p, v);
	mgrok_buf_append(b, p, 4);
}

void mgrok_buf_printf(struct mgrok_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n <= 0)
		return;
	/* One more for the NUL vsnprintf writes; it is not counted. */
	mgrok_buf_reserve(b, (size_t)n + 1);
	va_start(ap, fmt);
	vsnprintf((char *)mgrok_buf_tail(b), (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}
