/*
 * Check suite "mux": core/mux.c, the stream rules of doc/protocol.md 3.2 and the
 * flow control of 3.3, without I/O. The constants are written out from the
 * protocol text (262144, 16777216) rather than taken from codec.h, so that
 * these tests also pin the numbers.
 */
#include <check.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mux.h"

#define WINDOW 262144u       /* doc/protocol.md 3.3: initial window, each direction */
#define HALF_WINDOW 131072u  /* credit is returned once half a window is consumed */
#define WINDOW_MAX 16777216u /* 16 MiB: no window may grow above this */
#define DATA_MAX 65535u      /* a DATA frame's uint16 length */
#define MANY 5000            /* enough streams to make the table grow several times */

/* ---- helpers -------------------------------------------------------------- */

/* A deterministic generator, so that failures reproduce. */
static uint32_t rng_state;
static uint32_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 17;
	rng_state ^= rng_state << 5;
	return rng_state;
}

/* 1..max, inclusive. */
static uint32_t rng_range(uint32_t max) { return 1 + rng() % max; }

static struct mgrok_mux server_mux(void)
{
	struct mgrok_mux m;
	mgrok_mux_init(&m, false);
	return m;
}

static struct mgrok_mux client_mux(void)
{
	struct mgrok_mux m;
	mgrok_mux_init(&m, false);
	return m;
}

/* Number of streams reachable through the buckets, to cross-check count. */
static size_t walk_count(const struct mgrok_mux *m)
{
	size_t n = 0;
	for (size_t i = 0; i < m->nbuckets; i++)
		for (const struct mgrok_mux_stream *s = m->buckets[i]; s; s = s->hnext)
			n++;
	return n;
}

static void assert_err_mentions(const struct mgrok_mux *m, const char *what)
{
	ck_assert_msg(m->err[0] != '\0', "no reason given in m.err");
	ck_assert_msg(strstr(m->err, what) != NULL, "m.err \"%s\" does not mention \"%s\"", m->err,
	              what);
}

/* ---- stream table --------------------------------------------------------- */

START_TEST(test_init_empty)
{
	struct mgrok_mux m = server_mux();
	ck_assert(!m.autotune);
	ck_assert_uint_eq(m.count, 0);
	ck_assert_uint_eq(m.last_id, 0);
	ck_assert_ptr_nonnull(m.buckets);
	ck_assert_uint_gt(m.nbuckets, 0);
	ck_assert_uint_eq(m.nbuckets & (m.nbuckets - 1), 0); /* a power of two */
	ck_assert_str_eq(m.err, "");
	mgrok_mux_free(&m);
	ck_assert_ptr_null(m.buckets);
	ck_assert_uint_eq(m.count, 0);
}
END_TEST

START_TEST(test_find_unknown)
{
	struct mgrok_mux m = server_mux();
	const uint32_t probes[] = {0, 1, 2, 3, 4, 1000, 0x7fffffffu, 0xfffffffeu, UINT32_MAX};
	for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++)
		ck_assert_ptr_null(mgrok_mux_find(&m, probes[i]));

	struct mgrok_mux_stream a, b;
	mgrok_mux_insert(&m, &a, 2);
	mgrok_mux_insert(&m, &b, 4);
	for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++) {
		if (probes[i] == 2 || probes[i] == 4)
			continue;
		ck_assert_ptr_null(mgrok_mux_find(&m, probes[i]));
	}
	ck_assert_ptr_eq(mgrok_mux_find(&m, 2), &a);
	ck_assert_ptr_eq(mgrok_mux_find(&m, 4), &b);
	mgrok_mux_free(&m);
}
END_TEST

START_TEST(test_insert_sets_initial_state)
{
	struct mgrok_mux m = server_mux();
	struct mgrok_mux_stream s;
	memset(&s, 0xa5, sizeof(s)); /* insert must not rely on a zeroed stream */
	mgrok_mux_insert(&m, &s, 2);
	ck_assert_uint_eq(s.id, 2);
	ck_assert_uint_eq(s.state, 0);
	ck_assert_uint_eq(s.send_window, WINDOW);
	ck_assert_uint_eq(s.recv_window, WINDOW);
	ck_assert_uint_eq(s.recv_size, WINDOW);
	ck_assert_uint_eq(s.recv_unacked, 0);
	ck_assert_uint_eq(m.count, 1);
	ck_assert_uint_eq(m.last_id, 2);
	ck_assert(!mgrok_mux_done(&s));
	ck_assert_ptr_eq(mgrok_mux_find(&m, 2), &s);
	mgrok_mux_free(&m);
}
END_TEST

/* Thousands of sequential IDs: the table grows, every stream stays reachable. */
START_TEST(test_table_many_sequential)
{
	struct mgrok_mux m = server_mux();
	struct mgrok_mux_stream *v = calloc(MANY, sizeof(*v));
	ck_assert_ptr_nonnull(v);
	size_t initial_buckets = m.nbuckets;

	for (size_t i = 0; i < MANY; i++) {
		uint32_t id = (uint32_t)(2 * (i + 1));
		mgrok_mux_insert(&m, &v[i], id);
		ck_assert_uint_eq(m.count, i + 1);
		ck_assert_uint_eq(m.last_id, id);
		/* The newest and an early one stay findable across every growth. */
		ck_assert_ptr_eq(mgrok_mux_find(&m, id), &v[i]);
		ck_assert_ptr_eq(mgrok_mux_find(&m, 2), &v[0]);
	}
	ck_assert_uint_gt(m.nbuckets, initial_buckets);
	ck_assert_uint_eq(m.nbuckets & (m.nbuckets - 1), 0);
	ck_assert_uint_eq(walk_count(&m), MANY);

	for (size_t i = 0; i < MANY; i++) {
		uint32_t id = (uint32_t)(2 * (i + 1));
		ck_assert_ptr_eq(mgrok_mux_find(&m, id), &v[i]);
		ck_assert_ptr_null(mgrok_mux_find(&m, id + 1)); /* odd: never inserted */
	}
	ck_assert_ptr_null(mgrok_mux_find(&m, 0));
	ck_assert_ptr_null(mgrok_mux_find(&m, 2 * (MANY + 1)));
	ck_assert_ptr_null(mgrok_mux_find(&m, UINT32_MAX - 1));

	/* Remove every other stream, in reverse order. */
	for (size_t i = MANY; i-- > 0;)
		if (i % 2 == 0)
			mgrok_mux_remove(&m, &v[i]);
	ck_assert_uint_eq(m.count, MANY / 2);
	ck_assert_uint_eq(walk_count(&m), MANY / 2);
	for (size_t i = 0; i < MANY; i++) {
		uint32_t id = (uint32_t)(2 * (i + 1));
		if (i % 2 == 0)
			ck_assert_ptr_null(mgrok_mux_find(&m, id));
		else
			ck_assert_ptr_eq(mgrok_mux_find(&m, id), &v[i]);
	}
	/* Removing is not closing: last_id never goes back (IDs are not reused). */
	ck_assert_uint_eq(m.last_id, (uint32_t)(2 * MANY));

	for (size_t i = 0; i < MANY; i++)
		if (i % 2 == 1)
			mgrok_mux_remove(&m, &v[i]);
	ck_assert_uint_eq(m.count, 0);
	ck_assert_uint_eq(walk_count(&m), 0);
	for (size_t i = 0; i < MANY; i++)
		ck_assert_ptr_null(mgrok_mux_find(&m, (uint32_t)(2 * (i + 1))));

	mgrok_mux_free(&m);
	free(v);
}
END_TEST

/* Sparse and awkward IDs (large strides, the top of the range) in a shuffled order. */
START_TEST(test_table_many_sparse)
{
	struct mgrok_mux m = client_mux();
	struct mgrok_mux_stream *v = calloc(MANY, sizeof(*v));
	uint32_t *ids = calloc(MANY, sizeof(*ids));
	ck_assert_ptr_nonnull(v);
	ck_assert_ptr_nonnull(ids);

	for (size_t i = 0; i < MANY; i++) {
		if (i % 3 == 0)
			ids[i] = (uint32_t)((i + 1) << 16); /* multiples of 65536 */
		else if (i % 3 == 1)
			ids[i] = UINT32_MAX - 1 - (uint32_t)(2 * i); /* near the top */
		else
			ids[i] = (uint32_t)(i * 1024u + 2); /* stride of 1024 */
	}
	uint32_t highest = 0;
	for (size_t i = 0; i < MANY; i++) {
		mgrok_mux_insert(&m, &v[i], ids[i]);
		if (ids[i] > highest)
			highest = ids[i];
		ck_assert_uint_eq(m.last_id, highest);
	}
	ck_assert_uint_eq(m.count, MANY);
	ck_assert_uint_eq(walk_count(&m), MANY);

	/* Find in a shuffled order. */
	size_t *order = calloc(MANY, sizeof(*order));
	ck_assert_ptr_nonnull(order);
	for (size_t i = 0; i < MANY; i++)
		order[i] = i;
	rng_state = 0x9e3779b9u;
	for (size_t i = MANY - 1; i > 0; i--) {
		size_t j = rng() % (i + 1);
		size_t t = order[i];
		order[i] = order[j];
		order[j] = t;
	}
	for (size_t k = 0; k < MANY; k++) {
		size_t i = order[k];
		ck_assert_ptr_eq(mgrok_mux_find(&m, ids[i]), &v[i]);
	}
	/* Remove in the shuffled order, checking the rest each 500 steps. */
	for (size_t k = 0; k < MANY; k++) {
		size_t i = order[k];
		mgrok_mux_remove(&m, &v[i]);
		ck_assert_ptr_null(mgrok_mux_find(&m, ids[i]));
		ck_assert_uint_eq(m.count, MANY - k - 1);
		if (k % 500 == 0)
			for (size_t r = k + 1; r < MANY; r++)
				ck_assert_ptr_eq(mgrok_mux_find(&m, ids[order[r]]), &v[order[r]]);
	}
	ck_assert_uint_eq(walk_count(&m), 0);
	mgrok_mux_free(&m);
	free(order);
	free(ids);
	free(v);
}
END_TEST

START_TEST(test_remove_unknown_is_harmless)
{
	struct mgrok_mux m = server_mux();
	struct mgrok_mux_stream a, b, stranger;
	mgrok_mux_insert(&m, &a, 2);
	mgrok_mux_insert(&m, &b, 4);
	memset(&stranger, 0, sizeof(stranger));
	stranger.id = 6;
	mgrok_mux_remove(&m, &stranger); /* never inserted */
	ck_assert_uint_eq(m.count, 2);
	mgrok_mux_remove(&m, &a);
	mgrok_mux_remove(&m, &a); /* twice */
	ck_assert_uint_eq(m.count, 1);
	ck_assert_ptr_eq(mgrok_mux_find(&m, 4), &b);
	ck_assert_ptr_null(mgrok_mux_find(&m, 2));
	/* A removed stream can be inserted again (the session reuses the object). */
	mgrok_mux_insert(&m, &a, 8);
	ck_assert_ptr_eq(mgrok_mux_find(&m, 8), &a);
	ck_assert_uint_eq(m.count, 2);
	mgrok_mux_free(&m);
}
END_TEST

/* ---- stream IDs ------------------------------------------------------------ */

START_TEST(test_next_id_sequence)
{
	struct mgrok_mux m = server_mux();
	struct mgrok_mux_stream *v = calloc(MANY, sizeof(*v));
	ck_assert_ptr_nonnull(v);
	uint32_t prev = 0;
	for (size_t i = 0; i < MANY; i++) {
		uint32_t id = mgrok_mux_next_id(&m);
		ck_assert_uint_eq(id, 2 * (i + 1)); /* 2, 4, 6, ... */
		ck_assert_uint_eq(id % 2, 0);
		ck_assert_uint_gt(id, prev);
		prev = id;
		mgrok_mux_insert(&m, &v[i], id);
		/* Streams closing does not make IDs reusable. */
		if (i % 3 == 0)
			mgrok_mux_remove(&m, &v[i]);
	}
	mgrok_mux_free(&m);
	free(v);
}
END_TEST

START_TEST(test_next_id_after_odd_last)
{
	/* Should the peer ever have opened an odd ID, ours stay even and above it. */
	struct mgrok_mux m = server_mux();
	m.last_id = 7;
	ck_assert_uint_eq(mgrok_mux_next_id(&m), 8);
	m.last_id = 1;
	ck_assert_uint_eq(mgrok_mux_next_id(&m), 2);
	mgrok_mux_free(&m);
}
END_TEST

START_TEST(test_next_id_exhaustion)
{
	struct mgrok_mux m = server_mux();
	struct mgrok_mux_stream a, b;

	m.last_id = UINT32_MAX - 5; /* 0xfffffffa */
	uint32_t id = mgrok_mux_next_id(&m);
	ck_assert_uint_eq(id, 0xfffffffcu);
	mgrok_mux_insert(&m, &a, id);
	id = mgrok_mux_next_id(&m);
	ck_assert_uint_eq(id, 0xfffffffeu); /* the last even ID */
	mgrok_mux_insert(&m, &b, id);
	ck_assert_uint_eq(mgrok_mux_next_id(&m), 0);
	ck_assert_uint_eq(mgrok_mux_next_id(&m), 0); /* stays exhausted */

	m.last_id = UINT32_MAX;
	ck_assert_uint_eq(mgrok_mux_next_id(&m), 0);
	m.last_id = UINT32_MAX - 1;
	ck_assert_uint_eq(mgrok_mux_next_id(&m), 0);
	m.last_id = UINT32_MAX - 2; /* odd: 0xfffffffe is still free */
	ck_assert_uint_eq(mgrok_mux_next_id(&m), 0xfffffffeu);
	mgrok_mux_free(&m);
}
END_TEST

START_TEST(test_check_new_zero)
{
	struct mgrok_mux m = client_mux();
	ck_assert_int_eq(mgrok_mux_check_new(&m, 0), MGROK_MUX_PROTOCOL);
	assert_err_mentions(&m, "zero");
	mgrok_mux_free(&m);
}
END_TEST

START_TEST(test_check_new_odd)
{
	struct mgrok_mux m = client_mux();
	const uint32_t odd[] = {1, 3, 5, 12345, UINT32_MAX};
	for (size_t i = 0; i < sizeof(odd) / sizeof(odd[0]); i++) {
		m.err[0] = '\0';
		ck_assert_int_eq(mgrok_mux_check_new(&m, odd[i]), MGROK_MUX_PROTOCOL);
		assert_err_mentions(&m, "odd");
		char num[16];
		snprintf(num, sizeof(num), "%u", odd[i]);
		assert_err_mentions(&m, num);
	}
	mgrok_mux_free(&m);
}
END_TEST

START_TEST(test_check_new_not_increasing)
{
	struct mgrok_mux m = client_mux();
	struct mgrok_mux_stream a, b;

	ck_assert_int_eq(mgrok_mux_check_new(&m, 2), MGROK_MUX_OK);
	mgrok_mux_insert(&m, &a, 2);
	/* The same ID again. */
	m.err[0] = '\0';
	ck_assert_int_eq(mgrok_mux_check_new(&m, 2), MGROK_MUX_PROTOCOL);
	assert_err_mentions(&m, "2");

	ck_assert_int_eq(mgrok_mux_check_new(&m, 10), MGROK_MUX_OK);
	mgrok_mux_insert(&m, &b, 10);
	/* Lower than the last, even after that stream is gone. */
	mgrok_mux_remove(&m, &b);
	m.err[0] = '\0';
	ck_assert_int_eq(mgrok_mux_check_new(&m, 8), MGROK_MUX_PROTOCOL);
	assert_err_mentions(&m, "8");
	m.err[0] = '\0';
	ck_assert_int_eq(mgrok_mux_check_new(&m, 10), MGROK_MUX_PROTOCOL);
	assert_err_mentions(&m, "10");
	/* Skipping IDs is fine: only increasing is required. */
	ck_assert_int_eq(mgrok_mux_check_new(&m, 12), MGROK_MUX_OK);
	ck_assert_int_eq(mgrok_mux_check_new(&m, 1000000), MGROK_MUX_OK);
	ck_assert_int_eq(mgrok_mux_check_new(&m, 0xfffffffeu), MGROK_MUX_OK);
	mgrok_mux_free(&m);
}
END_TEST

START_TEST(test_check_new_valid_sequence)
{
	struct mgrok_mux m = client_mux();
	struct mgrok_mux_stream *v = calloc(MANY, sizeof(*v));
	ck_assert_ptr_nonnull(v);
	for (size_t i = 0; i < MANY; i++) {
		uint32_t id = (uint32_t)(2 * (i + 1));
		ck_assert_int_eq(mgrok_mux_check_new(&m, id), MGROK_MUX_OK);
		mgrok_mux_insert(&m, &v[i], id);
	}
	ck_assert_uint_eq(m.count, MANY);
	mgrok_mux_free(&m);
	free(v);
}
END_TEST

/* The server's IDs are what the client accepts. */
START_TEST(test_server_ids_accepted_by_client)
{
	struct mgrok_mux srv = server_mux(), cli = client_mux();
	struct mgrok_mux_stream *sv = calloc(MANY, sizeof(*sv));
	struct mgrok_mux_stream *cv = calloc(MANY, sizeof(*cv));
	ck_assert_ptr_nonnull(sv);
	ck_assert_ptr_nonnull(cv);
	for (size_t i = 0; i < MANY; i++) {
		uint32_t id = mgrok_mux_next_id(&srv);
		ck_assert_uint_ne(id, 0);
		mgrok_mux_insert(&srv, &sv[i], id);
		ck_assert_int_eq(mgrok_mux_check_new(&cli, id), MGROK_MUX_OK);
		mgrok_mux_insert(&cli, &cv[i], id);
	}
	mgrok_mux_free(&srv);
	mgrok_mux_free(&cli);
	free(sv);
	free(cv);
}
END_TEST

/* ---- receiving DATA and returning credit ---------------------------------- */

START_TEST(test_recv_within_window)
{
	struct mgrok_mux m = client_mux();
	struct mgrok_mux_stream s;
	mgrok_mux_insert(&m, &s, 2);
	ck_assert_int_eq(mgrok_mux_recv_data(&m, &s, 1000, 0.0), MGROK_MUX_OK);
	ck_assert_uint_eq(s.recv_window, WINDOW - 1000);
	ck_assert_int_eq(mgrok_mux_recv_data(&m, &s, DATA_MAX, 0.0), MGROK_MUX_OK);
	ck_assert_uint_eq(s.recv_window, WINDOW - 1000 - DATA_MAX);
	ck_assert_int_eq(mgrok_mux_recv_data(&m, &s, 0, 0.0), MGROK_MUX_OK); /* empty DATA */
	ck_assert_uint_eq(s.recv_window, WINDOW - 1000 - DATA_MAX);
	/* Receiving does not touch the other direction. */
	ck_assert_uint_eq(s.send_window, WINDOW);
	mgrok_mux_free(&m);
}
END_TEST

START_TEST(test_recv_exactly_window)
{
	struct mgrok_mux m = client_mux();
	struct mgrok_mux_stream s;
	mgrok_mux_insert(&m, &s, 2);
	/* Four full frames and the rest: 262144 = 4 * 65535 + 4. */
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(mgrok_mux_recv_data(&m, &s, DATA_MAX, 0.0), MGROK_MUX_OK);
	ck_assert_int_eq(mgrok_mux_recv_data(&m, &s, WINDOW - 4 * DATA_MAX, 0.0), MGROK_MUX_OK);
	ck_assert_uint_eq(s.recv_window, 0);
	/* Even an empty DATA fits in no window. */
	ck_assert_int_eq(mgrok_mux_recv_data(&m, &s, 0, 0.0), MGROK_MUX_OK);
	mgrok_mux_free(&m);
}
END_TEST

START_TEST(test_recv_one_byte_over)
{
	struct mgrok_mux m = client_mux();
	struct mgrok_mux_stream s;
	mgrok_mux_insert(&m, &s, 2);
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(mgrok_mux_recv_data(&m, &s, DATA_MAX, 0.0), MGROK_MUX_OK);
	ck_assert_uint_eq(s.recv_window, 4);
	ck_assert_int_eq(mgrok_mux_recv_data(&m, &s, 5, 0.0), MGROK_MUX_RESET_FLOW);
	assert_err_mentions(&m, "window");
	/* A refused frame uses no window. */
	ck_assert_uint_eq(s.recv_window, 4);

	/* On a fresh stream, one frame of window + 1 bytes. */
	struct mgrok_mux_stream t;
	mgrok_mux_insert(&m, &t, 4);
	ck_assert_int_eq(mgrok_mux_recv_data(&m, &t, (size_t)WINDOW + 1, 0.0),
	                 MGROK_MUX_RESET_FLOW);
	ck_assert_uint_eq(t.recv_window, WINDOW);
	/* Sizes beyond 32 bits must not wrap into the window. */
	ck_assert_int_eq(mgrok_mux_recv_data(&m, &t, (size_t)UINT32_MAX + 2, 0.0),
	                 MGROK_MUX_RESET_FLOW);
	mgrok_mux_free(&m);
}
END_TEST

START_TEST(test_consumed_below_half)
{
	struct mgrok_mux m = client_mux();
	struct mgrok_mux_stream s;
	mgrok_mux_insert(&m, &s, 2);
	ck_assert_int_eq(mgrok_mux_recv_data(&m, &s, WINDOW, 0.0), MGROK_MUX_OK);
	ck_assert_uint_eq(mgrok_mux_consumed(&m, &s, 1), 0);
	ck_assert_uint_eq(mgrok_mux_consumed(&m, &s, 50000), 0);
	ck_assert_uint_eq(mgrok_mux_consumed(&m, &s, HALF_WINDOW - 50001 - 1), 0); /* one short */
	ck_assert_uint_eq(s.recv_unacked, HALF_WINDOW - 1);
	ck_assert_uint_eq(s.recv_window, 0); /* no credit yet */
	mgrok_mux_free(&m);
}
END_TEST

START_TEST(test_consumed_at_half)
{
	struct mgrok_mux m = client_mux();
	struct mgrok_mux_stream s;
	mgrok_mux_insert(&m, &s, 2);
	ck_assert_int_eq(mgrok_mux_recv_data(&m, &s, WINDOW, 0.0), MGROK_MUX_OK);
	ck_assert_uint_eq(mgrok_mux_consumed(&m, &s, HALF_WINDOW - 1), 0);
	/* The byte that reaches half a window releases everything accumulated. */
	ck_assert_uint_eq(mgrok_mux_consumed(&m, &s, 1), HALF_WINDOW);
	ck_assert_uint_eq(s.recv_window, HALF_WINDOW);
	ck_assert_uint_eq(s.recv_unacked, 0);
	/* The second half, in one go. */
	ck_assert_uint_eq(mgrok_mux_consumed(&m, &s, HALF_WINDOW), HALF_WINDOW);
	ck_assert_uint_eq(s.recv_window, WINDOW); /* restored */
	ck_assert_uint_eq(s.recv_unacked, 0);
	mgrok_mux_free(&m);
}
END_TEST

START_TEST(test_consumed_over_half_in_one_step)
{
	struct mgrok_mux m = client_mux();
	struct mgrok_mux_stream s;
	mgrok_mux_insert(&m, &s, 2);
	ck_assert_int_eq(mgrok_mux_recv_data(&m, &s, 200000, 0.0), MGROK_MUX_OK);
	ck_assert_uint_eq(mgrok_mux_consumed(&m, &s, 100), 0);
	ck_assert_uint_eq(mgrok_mux_consumed(&m, &s, 199900), 200000);
	ck_assert_uint_eq(s.recv_window, WINDOW);
	/* The restored window takes a full window again, and no more. */
	ck_assert_int_eq(mgrok_mux_recv_data(&m, &s, WINDOW, 0.0), MGROK_MUX_OK);
	ck_assert_int_eq(mgrok_mux_recv_data(&m, &s, 1, 0.0), MGROK_MUX_RESET_FLOW);
	mgrok_mux_free(&m);
}
END_TEST

START_TEST(test_no_credit_after_got_close)
{
	struct mgrok_mux m = client_mux();
	struct mgrok_mux_stream s;
	mgrok_mux_insert(&m, &s, 2);
	ck_assert_int_eq(mgrok_mux_recv_data(&m, &s, WINDOW, 0.0), MGROK_MUX_OK);
	ck_assert_int_eq(mgrok_mux_recv_close(&m, &s), MGROK_MUX_OK);
	ck_assert_uint_eq(mgrok_mux_consumed(&m, &s, HALF_WINDOW), 0);
	ck_assert_uint_eq(mgrok_mux_consumed(&m, &s, HALF_WINDOW), 0);
	ck_assert_uint_eq(s.recv_window, 0);
	mgrok_mux_free(&m);
}
END_TEST

/* ---- WINDOW_UPDATE and sending --------------------------------------------- */

START_TEST(test_window_update_zero)
{
	struct mgrok_mux m = server_mux();
	struct mgrok_mux_stream s;
	mgrok_mux_insert(&m, &s, 2);
	ck_assert_int_eq(mgrok_mux_recv_window(&m, &s, 0), MGROK_MUX_PROTOCOL);
	assert_err_mentions(&m, "0");
	ck_assert_uint_eq(s.send_window, WINDOW);
	mgrok_mux_free(&m);
}
END_TEST

START_TEST(test_window_update_grows)
{
	struct mgrok_mux m = server_mux();
	struct mgrok_mux_stream s;
	mgrok_mux_insert(&m, &s, 2);
	ck_assert_int_eq(mgrok_mux_recv_window(&m, &s, 1), MGROK_MUX_OK);
	ck_assert_uint_eq(s.send_window, WINDOW + 1);
	ck_assert_int_eq(mgrok_mux_recv_window(&m, &s, 1000000), MGROK_MUX_OK);
	ck_assert_uint_eq(s.send_window, WINDOW + 1 + 1000000);
	/* WINDOW_UPDATE is about the other direction. */
	ck_assert_uint_eq(s.recv_window, WINDOW);
	mgrok_mux_free(&m);
}
END_TEST

START_TEST(test_window_update_exactly_max)
{
	struct mgrok_mux m = server_mux();
	struct mgrok_mux_stream s;
	mgrok_mux_insert(&m, &s, 2);
	ck_assert_int_eq(mgrok_mux_recv_window(&m, &s, WINDOW_MAX - WINDOW), MGROK_MUX_OK);
	ck_assert_uint_eq(s.send_window, WINDOW_MAX);
	/* At the limit, even one more byte is an error. */
	ck_assert_int_eq(mgrok_mux_recv_window(&m, &s, 1), MGROK_MUX_PROTOCOL);
	assert_err_mentions(&m, "16 MiB");
	ck_assert_uint_eq(s.send_window, WINDOW_MAX);
	mgrok_mux_free(&m);
}
END_TEST

START_TEST(test_window_update_over_max)
{
	struct mgrok_mux m = server_mux();
	struct mgrok_mux_stream s;
	mgrok_mux_insert(&m, &s, 2);
	ck_assert_int_eq(mgrok_mux_recv_window(&m, &s, WINDOW_MAX - WINDOW + 1),
	                 MGROK_MUX_PROTOCOL);
	ck_assert_uint_eq(s.send_window, WINDOW);
	/* Increments that would wrap 32 bits. */
	ck_assert_int_eq(mgrok_mux_recv_window(&m, &s, UINT32_MAX), MGROK_MUX_PROTOCOL);
	ck_assert_int_eq(mgrok_mux_recv_window(&m, &s, UINT32_MAX - WINDOW + 1),
	                 MGROK_MUX_PROTOCOL);
	ck_assert_uint_eq(s.send_window, WINDOW);

	/* The limit is on the window, not on the sum of increments. */
	mgrok_mux_sent_data(&s, WINDOW);
	ck_assert_uint_eq(s.send_window, 0);
	ck_assert_int_eq(mgrok_mux_recv_window(&m, &s, WINDOW_MAX), MGROK_MUX_OK);
	ck_assert_uint_eq(s.send_window, WINDOW_MAX);
	mgrok_mux_free(&m);
}
END_TEST

START_TEST(test_sent_data_decrements)
{
	struct mgrok_mux m = server_mux();
	struct mgrok_mux_stream s;
	mgrok_mux_insert(&m, &s, 2);
	mgrok_mux_sent_data(&s, 1);
	ck_assert_uint_eq(s.send_window, WINDOW - 1);
	mgrok_mux_sent_data(&s, DATA_MAX);
	ck_assert_uint_eq(s.send_window, WINDOW - 1 - DATA_MAX);
	mgrok_mux_sent_data(&s, 0);
	ck_assert_uint_eq(s.send_window, WINDOW - 1 - DATA_MAX);
	mgrok_mux_sent_data(&s, WINDOW - 1 - DATA_MAX);
	ck_assert_uint_eq(s.send_window, 0);
	/* Sending does not touch the receive side. */
	ck_assert_uint_eq(s.recv_window, WINDOW);
	ck_assert_uint_eq(s.recv_unacked, 0);
	mgrok_mux_free(&m);
}
END_TEST

/* ---- half-close ------------------------------------------------------------ */

START_TEST(test_half_close_we_first)
{
	struct mgrok_mux m = server_mux();
	struct mgrok_mux_stream s;
	mgrok_mux_insert(&m, &s, 2);
	mgrok_mux_sent_close(&s);
	ck_assert_uint_eq(s.state, MGROK_MUX_SENT_CLOSE);
	ck_assert(!mgrok_mux_done(&s));
	/* The peer may still send DATA and we still return credit. */
	ck_assert_int_eq(mgrok_mux_recv_data(&m, &s, WINDOW, 0.0), MGROK_MUX_OK);
	ck_assert_uint_eq(mgrok_mux_consumed(&m, &s, WINDOW), WINDOW);
	ck_assert_int_eq(mgrok_mux_recv_close(&m, &s), MGROK_MUX_OK);
	ck_assert_uint_eq(s.state, MGROK_MUX_SENT_CLOSE | MGROK_MUX_GOT_CLOSE);
	ck_assert(mgrok_mux_done(&s));
	mgrok_mux_free(&m);
}
END_TEST

START_TEST(test_half_close_peer_first)
{
	struct mgrok_mux m = client_mux();
	struct mgrok_mux_stream s;
	mgrok_mux_insert(&m, &s, 2);
	ck_assert_int_eq(mgrok_mux_recv_close(&m, &s), MGROK_MUX_OK);
	ck_assert_uint_eq(s.state, MGROK_MUX_GOT_CLOSE);
	ck_assert(!mgrok_mux_done(&s));
	/* We may still send, and the peer's credit still arrives. */
	mgrok_mux_sent_data(&s, WINDOW);
	ck_assert_int_eq(mgrok_mux_recv_window(&m, &s, WINDOW), MGROK_MUX_OK);
	ck_assert_uint_eq(s.send_window, WINDOW);
	mgrok_mux_sent_close(&s);
	ck_assert(mgrok_mux_done(&s));
	mgrok_mux_free(&m);
}
END_TEST

START_TEST(test_data_after_close)
{
	struct mgrok_mux m = client_mux();
	struct mgrok_mux_stream s;
	mgrok_mux_insert(&m, &s, 2);
	ck_assert_int_eq(mgrok_mux_recv_data(&m, &s, 10, 0.0), MGROK_MUX_OK);
	ck_assert_int_eq(mgrok_mux_recv_close(&m, &s), MGROK_MUX_OK);
	ck_assert_int_eq(mgrok_mux_recv_data(&m, &s, 1, 0.0), MGROK_MUX_PROTOCOL);
	assert_err_mentions(&m, "CLOSE");
	/* Even an empty DATA frame, and even with window left. */
	m.err[0] = '\0';
	ck_assert_int_eq(mgrok_mux_recv_data(&m, &s, 0, 0.0), MGROK_MUX_PROTOCOL);
	assert_err_mentions(&m, "CLOSE");
	ck_assert_uint_eq(s.recv_window, WINDOW - 10);
	mgrok_mux_free(&m);
}
END_TEST

START_TEST(test_second_close)
{
	struct mgrok_mux m = client_mux();
	struct mgrok_mux_stream s;
	mgrok_mux_insert(&m, &s, 2);
	ck_assert_int_eq(mgrok_mux_recv_close(&m, &s), MGROK_MUX_OK);
	ck_assert_int_eq(mgrok_mux_recv_close(&m, &s), MGROK_MUX_PROTOCOL);
	assert_err_mentions(&m, "second CLOSE");
	ck_assert_uint_eq(s.state, MGROK_MUX_GOT_CLOSE);

	/* Also once both sides are closed. */
	mgrok_mux_sent_close(&s);
	ck_assert(mgrok_mux_done(&s));
	m.err[0] = '\0';
	ck_assert_int_eq(mgrok_mux_recv_close(&m, &s), MGROK_MUX_PROTOCOL);
	assert_err_mentions(&m, "CLOSE");
	mgrok_mux_free(&m);
}
END_TEST

START_TEST(test_sent_close_keeps_receiving_open)
{
	/* Our CLOSE says nothing about the peer's direction: its CLOSE is still OK once. */
	struct mgrok_mux m = client_mux();
	struct mgrok_mux_stream s;
	mgrok_mux_insert(&m, &s, 2);
	mgrok_mux_sent_close(&s);
	mgrok_mux_sent_close(&s); /* idempotent on our side */
	ck_assert_uint_eq(s.state, MGROK_MUX_SENT_CLOSE);
	ck_assert_int_eq(mgrok_mux_recv_data(&m, &s, 5, 0.0), MGROK_MUX_OK);
	ck_assert_int_eq(mgrok_mux_recv_close(&m, &s), MGROK_MUX_OK);
	ck_assert(mgrok_mux_done(&s));
	mgrok_mux_free(&m);
}
END_TEST

/* ---- a long transfer between two muxes -------------------------------------- */

/*
 * One direction of the session connection: an ordered queue of DATA lengths
 * and WINDOW_UPDATE increments, as TCP keeps frames in order.
 */
enum sim_kind { SIM_DATA, SIM_WINDOW, SIM_CLOSE };

struct sim_frame {
	enum sim_kind kind;
	uint32_t n; /* DATA length or WINDOW_UPDATE increment */
};

struct sim_queue {
	struct sim_frame *v;
	size_t head, len, cap;
};

static void q_push(struct sim_queue *q, enum sim_kind kind, uint32_t n)
{
	if (q->head + q->len == q->cap) {
		if (q->head > 0) {
			memmove(q->v, q->v + q->head, q->len * sizeof(*q->v));
			q->head = 0;
		} else {
			q->cap = q->cap ? 2 * q->cap : 64;
			struct sim_frame *v = realloc(q->v, q->cap * sizeof(*q->v));
			ck_assert_ptr_nonnull(v);
			q->v = v;
		}
	}
	q->v[q->head + q->len].kind = kind;
	q->v[q->head + q->len].n = n;
	q->len++;
}

static struct sim_frame q_pop(struct sim_queue *q)
{
	struct sim_frame f = q->v[q->head++];
	q->len--;
	return f;
}

/* One side of the stream: what it still has to send, and what it has received. */
struct sim_end {
	const char *who;
	struct mgrok_mux mux;
	struct mgrok_mux_stream s;
	struct sim_queue *out; /* frames towards the peer */
	uint64_t to_send;      /* bytes not yet sent */
	uint64_t sent;
	uint64_t received;         /* DATA accepted */
	uint64_t buffered;         /* received, not yet written to the far socket */
	uint64_t consumed;         /* written out */
	uint64_t credit_in_flight; /* WINDOW_UPDATE increments we sent, not yet applied */
	uint64_t data_in_flight;   /* DATA we sent, not yet received */
	bool close_queued;
	unsigned updates_sent;
};

/* The sender's move: as much as the window and the frame size allow, in random chunks. */
static void sim_send(struct sim_end *e)
{
	unsigned frames = rng_range(8);
	while (frames-- && e->to_send && e->s.send_window) {
		uint64_t cap = e->to_send;
		if (cap > e->s.send_window)
			cap = e->s.send_window;
		if (cap > DATA_MAX)
			cap = DATA_MAX;
		uint32_t n = rng_range((uint32_t)cap);
		ck_assert_uint_le(n, e->s.send_window);
		mgrok_mux_sent_data(&e->s, n);
		q_push(e->out, SIM_DATA, n);
		e->to_send -= n;
		e->sent += n;
		e->data_in_flight += n;
	}
	if (!e->to_send && !e->close_queued) {
		mgrok_mux_sent_close(&e->s);
		q_push(e->out, SIM_CLOSE, 0);
		e->close_queued = true;
	}
}

/* The receiver's far socket drains some of its buffer. */
static void sim_drain(struct sim_end *e)
{
	if (!e->buffered)
		return;
	uint64_t n = rng_range(rng() % 4 == 0 ? (uint32_t)e->buffered : 70000);
	if (n > e->buffered)
		n = e->buffered;
	e->buffered -= n;
	e->consumed += n;
	uint32_t inc = mgrok_mux_consumed(&e->mux, &e->s, (size_t)n);
	if (inc) {
		ck_assert_uint_ge(inc, HALF_WINDOW);
		q_push(e->out, SIM_WINDOW, inc);
		e->credit_in_flight += inc;
		e->updates_sent++;
	}
}

/* Delivers up to a few frames from peer->out to e. */
static void sim_deliver(struct sim_end *e, struct sim_end *peer)
{
	unsigned frames = rng_range(6);
	while (frames-- && peer->out->len) {
		struct sim_frame f = q_pop(peer->out);
		int v;
		switch (f.kind) {
		case SIM_DATA:
			v = mgrok_mux_recv_data(&e->mux, &e->s, f.n, 0.0);
			ck_assert_msg(v == MGROK_MUX_OK, "%s: DATA of %u refused (%d): %s", e->who,
			              f.n, v, e->mux.err);
			peer->data_in_flight -= f.n;
			e->received += f.n;
			e->buffered += f.n;
			break;
		case SIM_WINDOW:
			v = mgrok_mux_recv_window(&e->mux, &e->s, f.n);
			ck_assert_msg(v == MGROK_MUX_OK, "%s: WINDOW_UPDATE of %u refused (%d): %s",
			              e->who, f.n, v, e->mux.err);
			peer->credit_in_flight -= f.n;
			break;
		case SIM_CLOSE:
			v = mgrok_mux_recv_close(&e->mux, &e->s);
			ck_assert_msg(v == MGROK_MUX_OK, "%s: CLOSE refused (%d): %s", e->who, v,
			              e->mux.err);
			break;
		}
	}
}

/*
 * Conservation of credit for the direction from a to b: every byte of the
 * initial window is in exactly one place.
 */
static void sim_check_direction(const struct sim_end *a, const struct sim_end *b)
{
	uint64_t total = (uint64_t)a->s.send_window + a->data_in_flight + b->buffered +
	                 b->s.recv_unacked + b->credit_in_flight;
	if (b->s.state & MGROK_MUX_GOT_CLOSE)
		return; /* credit is no longer returned: nothing to conserve */
	ck_assert_msg(total == WINDOW, "%s->%s: credit %llu, not %u", a->who, b->who,
	              (unsigned long long)total, WINDOW);
	ck_assert_uint_eq((uint64_t)b->s.recv_window,
	                  (uint64_t)WINDOW - b->buffered - b->s.recv_unacked);
	ck_assert_uint_le(b->s.recv_window, WINDOW);
	ck_assert_uint_le(a->s.send_window, WINDOW);
}

static void run_transfer(uint32_t seed, uint64_t s2c, uint64_t c2s)
{
	struct sim_queue to_client = {0}, to_server = {0};
	struct sim_end srv = {.who = "server", .out = &to_client, .to_send = s2c};
	struct sim_end cli = {.who = "client", .out = &to_server, .to_send = c2s};

	rng_state = seed;
	mgrok_mux_init(&srv.mux, false);
	mgrok_mux_init(&cli.mux, false);
	uint32_t id = mgrok_mux_next_id(&srv.mux);
	ck_assert_uint_eq(id, 2);
	mgrok_mux_insert(&srv.mux, &srv.s, id);
	ck_assert_int_eq(mgrok_mux_check_new(&cli.mux, id), MGROK_MUX_OK);
	mgrok_mux_insert(&cli.mux, &cli.s, id);

	/* A run takes a few thousand steps; far more means the credit got stuck. */
	const uint64_t max_steps = 1000 + (s2c + c2s) / 256;
	uint64_t steps = 0;
	while (!(mgrok_mux_done(&srv.s) && mgrok_mux_done(&cli.s))) {
		ck_assert_msg(++steps < max_steps, "transfer stalled (seed %u)", seed);
		switch (rng() % 6) {
		case 0: sim_send(&srv); break;
		case 1: sim_send(&cli); break;
		case 2: sim_deliver(&cli, &srv); break;
		case 3: sim_deliver(&srv, &cli); break;
		case 4: sim_drain(&cli); break;
		default: sim_drain(&srv); break;
		}
		sim_check_direction(&srv, &cli);
		sim_check_direction(&cli, &srv);
	}
	/* Whatever is still buffered is written out; no credit is owed any more. */
	while (srv.buffered || cli.buffered) {
		sim_drain(&srv);
		sim_drain(&cli);
	}

	ck_assert_uint_eq(srv.sent, s2c);
	ck_assert_uint_eq(cli.received, s2c);
	ck_assert_uint_eq(cli.consumed, s2c);
	ck_assert_uint_eq(cli.sent, c2s);
	ck_assert_uint_eq(srv.received, c2s);
	ck_assert_uint_eq(srv.consumed, c2s);
	/* The windows were used many times over: credit did flow back. */
	if (s2c > 4 * (uint64_t)WINDOW)
		ck_assert_uint_gt(cli.updates_sent, s2c / WINDOW);
	if (c2s > 4 * (uint64_t)WINDOW)
		ck_assert_uint_gt(srv.updates_sent, c2s / WINDOW);

	mgrok_mux_remove(&srv.mux, &srv.s);
	mgrok_mux_remove(&cli.mux, &cli.s);
	ck_assert_uint_eq(srv.mux.count, 0);
	ck_assert_uint_eq(cli.mux.count, 0);
	mgrok_mux_free(&srv.mux);
	mgrok_mux_free(&cli.mux);
	free(to_client.v);
	free(to_server.v);
}

START_TEST(test_transfer_10mib_one_way) { run_transfer(0x2545f491u, 10u << 20, 0); }
END_TEST

START_TEST(test_transfer_10mib_both_ways)
{
	run_transfer(0x1234567u + (uint32_t)_i, 10u << 20, (10u << 20) + 12345);
}
END_TEST

START_TEST(test_transfer_small)
{
	/* Less than a window: no WINDOW_UPDATE is ever needed. */
	run_transfer(77, 1000, 1);
}
END_TEST

/* ---- suite ---------------------------------------------------------------- */

static Suite *mux_suite(void)
{
	Suite *s = suite_create("mux");
	TCase *tc;

	tc = tcase_create("table");
	tcase_add_test(tc, test_init_empty);
	tcase_add_test(tc, test_find_unknown);
	tcase_add_test(tc, test_insert_sets_initial_state);
	tcase_add_test(tc, test_table_many_sequential);
	tcase_add_test(tc, test_table_many_sparse);
	tcase_add_test(tc, test_remove_unknown_is_harmless);
	tcase_set_timeout(tc, 60);
	suite_add_tcase(s, tc);

	tc = tcase_create("ids");
	tcase_add_test(tc, test_next_id_sequence);
	tcase_add_test(tc, test_next_id_after_odd_last);
	tcase_add_test(tc, test_next_id_exhaustion);
	tcase_add_test(tc, test_check_new_zero);
	tcase_add_test(tc, test_check_new_odd);
	tcase_add_test(tc, test_check_new_not_increasing);
	tcase_add_test(tc, test_check_new_valid_sequence);
	tcase_add_test(tc, test_server_ids_accepted_by_client);
	suite_add_tcase(s, tc);

	tc = tcase_create("window");
	tcase_add_test(tc, test_recv_within_window);
	tcase_add_test(tc, test_recv_exactly_window);
	tcase_add_test(tc, test_recv_one_byte_over);
	tcase_add_test(tc, test_consumed_below_half);
	tcase_add_test(tc, test_consumed_at_half);
	tcase_add_test(tc, test_consumed_over_half_in_one_step);
	tcase_add_test(tc, test_no_credit_after_got_close);
	tcase_add_test(tc, test_window_update_zero);
	tcase_add_test(tc, test_window_update_grows);
	tcase_add_test(tc, test_window_update_exactly_max);
	tcase_add_test(tc, test_window_update_over_max);
	tcase_add_test(tc, test_sent_data_decrements);
	suite_add_tcase(s, tc);

	tc = tcase_create("close");
	tcase_add_test(tc, test_half_close_we_first);
	tcase_add_test(tc, test_half_close_peer_first);
	tcase_add_test(tc, test_data_after_close);
	tcase_add_test(tc, test_second_close);
	tcase_add_test(tc, test_sent_close_keeps_receiving_open);
	suite_add_tcase(s, tc);

	tc = tcase_create("transfer");
	tcase_add_test(tc, test_transfer_10mib_one_way);
	tcase_add_loop_test(tc, test_transfer_10mib_both_ways, 0, 3);
	tcase_add_test(tc, test_transfer_small);
	tcase_set_timeout(tc, 120);
	suite_add_tcase(s, tc);
	return s;
}

/* ---- window auto-tuning ------------------------------------------------- */

static struct mgrok_mux_stream tuned_stream(struct mgrok_mux *m)
{
	static struct mgrok_mux_stream s;
	memset(&s, 0, sizeof(s));
	mgrok_mux_init(m, false);
	mgrok_mux_insert(m, &s, 2);
	return s;
}

/* One round at time t: the peer sends all its credit, we deliver all of it
 * (what we granted last round). Returns the WINDOW_UPDATE increment. */
static uint32_t full_window_round(struct mgrok_mux *m, struct mgrok_mux_stream *s, double t)
{
	uint32_t size = s->recv_size;
	ck_assert_int_eq(mgrok_mux_recv_data(m, s, s->recv_window, t), MGROK_MUX_OK);
	return mgrok_mux_consumed(m, s, size);
}

/* The peer sends the whole window, we deliver all of it: the window held
 * the sender back, so the update grows it. */
START_TEST(test_autotune_grows_when_window_limited)
{
	struct mgrok_mux m;
	struct mgrok_mux_stream s = tuned_stream(&m);
	m.autotune = true;
	/* The first window: the peer stops exactly at its credit... */
	double t = 1.0;
	ck_assert_uint_eq(full_window_round(&m, &s, t), MGROK_WINDOW_INITIAL);
	ck_assert_uint_eq(s.recv_size, MGROK_WINDOW_INITIAL);
	/* ...and its next bytes come one round trip (40 ms) later: it waited,
	 * every round, so every update doubles the window. */
	uint32_t size = MGROK_WINDOW_INITIAL;
	while (size < MGROK_WINDOW_MAX) {
		t += 0.04;
		uint32_t inc = full_window_round(&m, &s, t);
		uint32_t grown = size * 2 > MGROK_WINDOW_MAX ? MGROK_WINDOW_MAX : size * 2;
		ck_assert_uint_eq(inc, grown);
		ck_assert_uint_eq(s.recv_size, grown);
		ck_assert_uint_eq(s.recv_window, grown);
		ck_assert_uint_le(s.recv_window, MGROK_WINDOW_MAX);
		size = grown;
	}
	/* At 16 MiB it stops growing: credit is only what was delivered. */
	t += 0.04;
	ck_assert_uint_eq(full_window_round(&m, &s, t), MGROK_WINDOW_MAX);
	ck_assert_uint_eq(s.recv_size, MGROK_WINDOW_MAX);
	mgrok_mux_free(&m);
}
END_TEST

/* Back to back, no pause at the limit: the update came in time, the
 * window is not what limits the peer. */
START_TEST(test_autotune_not_without_a_pause)
{
	struct mgrok_mux m;
	struct mgrok_mux_stream s = tuned_stream(&m);
	m.autotune = true;
	for (int i = 0; i < 10; i++)
		full_window_round(&m, &s, 1.0 + i * 0.0001);
	ck_assert_uint_eq(s.recv_size, MGROK_WINDOW_INITIAL);
	mgrok_mux_free(&m);
}
END_TEST

/* Long pauses that are not every round (a busy machine that descheduled
 * one side now and then, not a long path): the window grows to
 * MGROK_WINDOW_EAGER and no further. */
START_TEST(test_autotune_not_for_sporadic_pauses)
{
	struct mgrok_mux m;
	struct mgrok_mux_stream s = tuned_stream(&m);
	m.autotune = true;
	double t = 1.0;
	for (int i = 0; i <= 40; i++) {
		t += i % 2 ? 0.005 : 0.0001; /* 5 ms waits, every other round; the last is short */
		uint32_t inc = full_window_round(&m, &s, t);
		ck_assert_uint_le(s.recv_size, MGROK_WINDOW_EAGER);
		ck_assert_uint_eq(inc, s.recv_size); /* delivered + growth, if any */
	}
	ck_assert_uint_eq(s.recv_size, MGROK_WINDOW_EAGER);
	/* Two in a row are a long path: the first leaves it, the second grows it. */
	for (int i = 0; i < 2; i++) {
		t += 0.005;
		full_window_round(&m, &s, t);
		ck_assert_uint_eq(s.recv_size, (i + 1) * MGROK_WINDOW_EAGER);
	}
	mgrok_mux_free(&m);
}
END_TEST

/* Growth comes out of one budget per session: three long-path streams
 * grow to 16 MiB only as far as 32 MiB beyond their initial windows reach
 * in all, and a stream that goes away gives its share back. */
START_TEST(test_autotune_session_budget)
{
	struct mgrok_mux m;
	struct mgrok_mux_stream s[3];
	mgrok_mux_init(&m, false);
	m.autotune = true;
	for (int i = 0; i < 3; i++)
		mgrok_mux_insert(&m, &s[i], (uint32_t)(2 + 2 * i));
	double t = 1.0;
	for (int round = 0; round < 12; round++) {
		t += 0.04;
		for (int i = 0; i < 3; i++)
			full_window_round(&m, &s[i], t);
		uint64_t extra = 0;
		for (int i = 0; i < 3; i++)
			extra += s[i].recv_size - MGROK_WINDOW_INITIAL;
		ck_assert_uint_eq(m.grown, extra);
		ck_assert_uint_le(m.grown, MGROK_SESSION_GROWTH_MAX);
	}
	ck_assert_uint_eq(m.grown, MGROK_SESSION_GROWTH_MAX);
	ck_assert_uint_eq(s[0].recv_size, MGROK_WINDOW_MAX); /* the first ones got theirs */
	ck_assert_uint_lt(s[2].recv_size, MGROK_WINDOW_MAX);
	/* The first goes: the third may grow on. */
	mgrok_mux_remove(&m, &s[0]);
	ck_assert_uint_eq(m.grown,
	                  MGROK_SESSION_GROWTH_MAX - (MGROK_WINDOW_MAX - MGROK_WINDOW_INITIAL));
	for (int round = 0; round < 4; round++) {
		t += 0.04;
		full_window_round(&m, &s[2], t);
	}
	ck_assert_uint_eq(s[2].recv_size, MGROK_WINDOW_MAX);
	/* A stream gone idle shrinks, but what it granted stays counted until
	 * the debt is paid back. */
	uint64_t before = m.grown;
	t += MGROK_WINDOW_IDLE + 1;
	ck_assert_int_eq(mgrok_mux_recv_data(&m, &s[2], 1000, t), MGROK_MUX_OK);
	ck_assert_uint_eq(s[2].recv_size, MGROK_WINDOW_INITIAL);
	ck_assert_uint_eq(m.grown, before);
	mgrok_mux_consumed(&m, &s[2], 1000);
	ck_assert_uint_eq(m.grown, before); /* below half a window: nothing paid yet */
	mgrok_mux_remove(&m, &s[1]);
	mgrok_mux_remove(&m, &s[2]);
	ck_assert_uint_eq(m.grown, 0);
	mgrok_mux_free(&m);
}
END_TEST

/* A slow consumer: bytes still held when the update goes out. No growth,
 * or a slow local socket would make the window (and memory) balloon. */
START_TEST(test_autotune_not_for_slow_consumer)
{
	struct mgrok_mux m;
	struct mgrok_mux_stream s = tuned_stream(&m);
	m.autotune = true;
	ck_assert_int_eq(mgrok_mux_recv_data(&m, &s, MGROK_WINDOW_INITIAL, 1.0), MGROK_MUX_OK);
	ck_assert_uint_eq(mgrok_mux_consumed(&m, &s, MGROK_WINDOW_INITIAL / 2),
	                  MGROK_WINDOW_INITIAL / 2);
	ck_assert_uint_eq(s.recv_size, MGROK_WINDOW_INITIAL);
	ck_assert_uint_eq(s.held, MGROK_WINDOW_INITIAL / 2);
	mgrok_mux_free(&m);
}
END_TEST

/* The peer never used up its credit (its chunks end short of the limit,
 * however long it pauses): nothing to grow for. */
START_TEST(test_autotune_not_when_window_to_spare)
{
	struct mgrok_mux m;
	struct mgrok_mux_stream s = tuned_stream(&m);
	m.autotune = true;
	for (int i = 0; i < 10; i++) {
		ck_assert_int_eq(mgrok_mux_recv_data(&m, &s, 100000, 1.0 + i), MGROK_MUX_OK);
		mgrok_mux_consumed(&m, &s, 100000);
	}
	ck_assert_uint_eq(s.recv_size, MGROK_WINDOW_INITIAL);
	mgrok_mux_free(&m);
}
END_TEST

/* Off: the fixed 256 KiB window of doc/protocol.md 3.3. */
START_TEST(test_autotune_off)
{
	struct mgrok_mux m;
	struct mgrok_mux_stream s = tuned_stream(&m);
	m.autotune = false;
	for (int i = 0; i < 5; i++) {
		ck_assert_int_eq(mgrok_mux_recv_data(&m, &s, s.recv_window, 1.0), MGROK_MUX_OK);
		ck_assert_uint_eq(mgrok_mux_consumed(&m, &s, MGROK_WINDOW_INITIAL),
		                  MGROK_WINDOW_INITIAL);
	}
	ck_assert_uint_eq(s.recv_size, MGROK_WINDOW_INITIAL);
	mgrok_mux_free(&m);
}
END_TEST

/* A grown window shrinks back after the stream was idle: the credit
 * returned is held back until what is outstanding fits the initial window. */
START_TEST(test_autotune_shrinks_when_idle)
{
	struct mgrok_mux m;
	struct mgrok_mux_stream s = tuned_stream(&m);
	m.autotune = true;
	double t = 1.0;
	for (int i = 0; i < 10 && s.recv_size < 8 * MGROK_WINDOW_INITIAL; i++, t += 0.04)
		full_window_round(&m, &s, t);
	ck_assert_uint_eq(s.recv_size, 8 * MGROK_WINDOW_INITIAL);
	/* Quiet for longer than MGROK_WINDOW_IDLE, then a little data. */
	t += MGROK_WINDOW_IDLE + 0.5;
	ck_assert_int_eq(mgrok_mux_recv_data(&m, &s, 1000, t), MGROK_MUX_OK);
	ck_assert_uint_eq(s.recv_size, MGROK_WINDOW_INITIAL);
	/* Credit for consumed bytes is withheld until the outstanding window
	 * is back within the initial size; the peer never overruns meanwhile. */
	uint64_t granted = 0;
	m.autotune = false; /* the peer keeps the window full: no regrowth here */
	granted += mgrok_mux_consumed(&m, &s, 1000);
	for (int i = 0; i < 200 && s.debt; i++) {
		/* What is outstanding, held or unacknowledged is the window plus
		 * the debt still to withhold; it never deadlocks (see mux.c). */
		ck_assert_uint_eq(s.recv_window + s.recv_unacked + s.held, s.recv_size + s.debt);
		ck_assert_uint_gt(s.recv_window, 0);
		uint32_t chunk = s.recv_window < 65535 ? s.recv_window : 65535;
		ck_assert_int_eq(mgrok_mux_recv_data(&m, &s, chunk, t), MGROK_MUX_OK);
		granted += mgrok_mux_consumed(&m, &s, chunk);
	}
	ck_assert_uint_eq(s.debt, 0);
	ck_assert_uint_eq(s.recv_window + s.recv_unacked + s.held, MGROK_WINDOW_INITIAL);
	ck_assert(granted > 0);
	mgrok_mux_free(&m);
}
END_TEST

int main(void)
{
	Suite *suite = mux_suite();
	TCase *tune = tcase_create("autotune");
	tcase_add_test(tune, test_autotune_grows_when_window_limited);
	tcase_add_test(tune, test_autotune_not_for_slow_consumer);
	tcase_add_test(tune, test_autotune_session_budget);
	tcase_add_test(tune, test_autotune_not_without_a_pause);
	tcase_add_test(tune, test_autotune_not_for_sporadic_pauses);
	tcase_add_test(tune, test_autotune_not_when_window_to_spare);
	tcase_add_test(tune, test_autotune_off);
	tcase_add_test(tune, test_autotune_shrinks_when_idle);
	suite_add_tcase(suite, tune);
	SRunner *sr = srunner_create(suite);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
