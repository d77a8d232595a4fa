#include "mux.h"

#include <stdio.h>
#include <stdlib.h>

#include "buf.h"

static size_t bucket_of(const struct mgrok_mux *m, uint32_t id)
{
	/* Fibonacci hashing: the top bits of the product mix every bit of the
	 * ID, so a peer choosing IDs with many trailing zeros cannot pile them
	 * into a few buckets. */
	return (size_t)((id * 2654435769u) >> (32 - m->shift));
}

void mgrok_mux_init(struct mgrok_mux *m, bool autotune)
{
	m->autotune = autotune;
	m->shift = 6;
	m->nbuckets = (size_t)1 << m->shift;
	m->buckets = mgrok_xcalloc(m->nbuckets, sizeof(*m->buckets));
	m->count = 0;
	m->last_id = 0;
	m->grown = 0;
	m->err[0] = '\0';
}

void mgrok_mux_free(struct mgrok_mux *m)
{
	free(m->buckets);
	m->buckets = NULL;
	m->nbuckets = 0;
	m->count = 0;
}

struct mgrok_mux_stream *mgrok_mux_find(const struct mgrok_mux *m, uint32_t id)
{
	struct mgrok_mux_stream *s = m->buckets[bucket_of(m, id)];
	while (s && s->id != id)
		s = s->hnext;
	return s;
}

static void grow(struct mgrok_mux *m)
{
	size_t old_n = m->nbuckets;
	struct mgrok_mux_stream **old = m->buckets;
	m->shift++;
	m->nbuckets = old_n * 2;
	m->buckets = mgrok_xcalloc(m->nbuckets, sizeof(*m->buckets));
	for (size_t i = 0; i < old_n; i++) {
		struct mgrok_mux_stream *s = old[i], *next;
		for (; s; s = next) {
			next = s->hnext;
			size_t b = bucket_of(m, s->id);
			s->hnext = m->buckets[b];
			m->buckets[b] = s;
		}
	}
	free(old);
}

uint32_t mgrok_mux_next_id(struct mgrok_mux *m)
{
	if (m->last_id >= UINT32_MAX - 1)
		return 0; /* the session has used up its IDs */
	return m->last_id < 2 ? 2 : (m->last_id + 2) & ~1u;
}

int mgrok_mux_check_new(struct mgrok_mux *m, uint32_t id)
{
	if (id == 0 || (id & 1)) {
		snprintf(m->err, sizeof(m->err), "NEW_STREAM with %s stream ID %u",
		         id ? "odd" : "zero", id);
		return MGROK_MUX_PROTOCOL;
	}
	if (id <= m->last_id) {
		snprintf(m->err, sizeof(m->err), "NEW_STREAM ID %u not above %u", id, m->last_id);
		return MGROK_MUX_PROTOCOL;
	}
	return MGROK_MUX_OK;
}

void mgrok_mux_insert(struct mgrok_mux *m, struct mgrok_mux_stream *s, uint32_t id)
{
	if (m->count >= m->nbuckets)
		grow(m);
	s->id = id;
	s->state = 0;
	s->send_window = MGROK_WINDOW_INITIAL;
	s->recv_window = MGROK_WINDOW_INITIAL;
	s->recv_size = MGROK_WINDOW_INITIAL;
	s->recv_unacked = 0;
	s->held = 0;
	s->debt = 0;
	s->starved = false;
	s->starved_rounds = 0;
	s->last_data = 0;
	s->recv_total = 0;
	s->prev_limit = MGROK_WINDOW_INITIAL;
	s->limit_hit_at = 0;
	size_t b = bucket_of(m, id);
	s->hnext = m->buckets[b];
	m->buckets[b] = s;
	m->count++;
	if (id > m->last_id)
		m->last_id = id;
}

void mgrok_mux_remove(struct mgrok_mux *m, struct mgrok_mux_stream *s)
{
	struct mgrok_mux_stream **pp = &m->buckets[bucket_of(m, s->id)];
	while (*pp && *pp != s)
		pp = &(*pp)->hnext;
	if (*pp) {
		*pp = s->hnext;
		m->count--;
		m->grown -= s->recv_size + s->debt - MGROK_WINDOW_INITIAL;
	}
	s->hnext = NULL;
}

/* A quiet stream gives up a grown window: what it already granted stays
 * granted, the credit it returns is held back until it is back to size. */
static void shrink_if_idle(struct mgrok_mux_stream *s, double now)
{
	if (s->recv_size > MGROK_WINDOW_INITIAL && s->last_data &&
	    now - s->last_data >= MGROK_WINDOW_IDLE) {
		s->debt += s->recv_size - MGROK_WINDOW_INITIAL;
		s->recv_size = MGROK_WINDOW_INITIAL;
	}
	s->last_data = now;
}

int mgrok_mux_recv_data(struct mgrok_mux *m, struct mgrok_mux_stream *s, size_t len, double now)
{
	if (s->state & MGROK_MUX_GOT_CLOSE) {
		snprintf(m->err, sizeof(m->err), "DATA on stream %u after its CLOSE", s->id);
		return MGROK_MUX_PROTOCOL;
	}
	if (len > s->recv_window) {
		snprintf(m->err, sizeof(m->err), "stream %u: %zu bytes of DATA with %u of window",
		         s->id, len, s->recv_window);
		return MGROK_MUX_RESET_FLOW;
	}
	shrink_if_idle(s, now);
	/* The peer sent exactly all it could before our last update reached it; a
	 * pause before the next bytes means it sat waiting for that update. */
	if (s->limit_hit_at && len) {
		if (now - s->limit_hit_at >= MGROK_WINDOW_STALL)
			s->starved = true;
		s->limit_hit_at = 0;
	}
	s->recv_window -= (uint32_t)len;
	s->held += (uint32_t)len;
	s->recv_total += len;
	if (s->prev_limit && s->recv_total == s->prev_limit) {
		s->limit_hit_at = now;
		s->prev_limit = 0;
	}
	return MGROK_MUX_OK;
}

int mgrok_mux_recv_close(struct mgrok_mux *m, struct mgrok_mux_stream *s)
{
	if (s->state & MGROK_MUX_GOT_CLOSE) {
		snprintf(m->err, sizeof(m->err), "second CLOSE on stream %u", s->id);
		return MGROK_MUX_PROTOCOL;
	}
	s->state |= MGROK_MUX_GOT_CLOSE;
	return MGROK_MUX_OK;
}

int mgrok_mux_recv_window(struct mgrok_mux *m, struct mgrok_mux_stream *s, uint32_t increment)
{
	if (increment == 0) {
		snprintf(m->err, sizeof(m->err), "WINDOW_UPDATE of 0 on stream %u", s->id);
		return MGROK_MUX_PROTOCOL;
	}
	if ((uint64_t)s->send_window + increment > MGROK_WINDOW_MAX) {
		snprintf(m->err, sizeof(m->err),
		         "WINDOW_UPDATE takes stream %u's window over 16 MiB", s->id);
		return MGROK_MUX_PROTOCOL;
	}
	s->send_window += increment;
	return MGROK_MUX_OK;
}

void mgrok_mux_sent_data(struct mgrok_mux_stream *s, size_t len)
{
	s->send_window -= (uint32_t)len;
}

void mgrok_mux_sent_close(struct mgrok_mux_stream *s) { s->state |= MGROK_MUX_SENT_CLOSE; }

/* A small window grows on one wait at its limit; beyond MGROK_WINDOW_EAGER
 * only a wait in every round (a long path) grows it: a descheduled process
 * makes the same pause now and then, and the bytes a window grown for it
 * lets in queue ahead of the session's other streams. */
static unsigned rounds_to_grow(const struct mgrok_mux_stream *s)
{
	return s->recv_size < MGROK_WINDOW_EAGER ? 1 : MGROK_WINDOW_STALL_ROUNDS;
}

/* The doubled window, as far as the session's growth budget reaches. */
static uint32_t grown_size(const struct mgrok_mux *m, const struct mgrok_mux_stream *s)
{
	uint32_t want = s->recv_size * 2 < MGROK_WINDOW_MAX ? s->recv_size * 2 : MGROK_WINDOW_MAX;
	uint64_t room =
	        m->grown < MGROK_SESSION_GROWTH_MAX ? MGROK_SESSION_GROWTH_MAX - m->grown : 0;
	return want - s->recv_size > room ? s->recv_size + (uint32_t)room : want;
}

uint32_t mgrok_mux_consumed(struct mgrok_mux *m, struct mgrok_mux_stream *s, size_t len)
{
	s->held -= (uint32_t)len < s->held ? (uint32_t)len : s->held;
	s->recv_unacked += (uint32_t)len;
	/* After the peer's CLOSE no more DATA comes: credit would be wasted. */
	if (s->state & MGROK_MUX_GOT_CLOSE)
		return 0;
	if (s->recv_unacked < s->recv_size / 2)
		return 0;
	uint32_t inc = s->recv_unacked;
	s->recv_unacked = 0;
	if (!s->starved)
		s->starved_rounds = 0;
	else if (s->starved_rounds < UINT8_MAX)
		s->starved_rounds++;
	if (s->debt) {
		uint32_t pay = s->debt < inc ? s->debt : inc;
		s->debt -= pay;
		m->grown -= pay;
		inc -= pay;
	} else if (m->autotune && s->starved_rounds >= rounds_to_grow(s) && !s->held &&
	           s->recv_size < MGROK_WINDOW_MAX) {
		uint32_t grown = grown_size(m, s);
		inc += grown - s->recv_size;
		m->grown += grown - s->recv_size;
		s->recv_size = grown;
	}
	s->starved = false;
	if (inc && !s->recv_window) {
		/* The peer is at its limit right now: it waits for this update. */
		s->limit_hit_at = s->last_data;
		s->prev_limit = 0;
	} else if (inc) {
		s->prev_limit = s->recv_total + s->recv_window;
	}
	s->recv_window += inc;
	return inc;
}
