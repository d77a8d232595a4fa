/*
 * A stream's relay decisions (core/stream_rules.c), without sockets: when
 * its socket may be read, and what comes once the peer's bytes are out —
 * the FIN for the peer's CLOSE, or the end of the stream. Case by case,
 * then along random half-close sequences driven through the real mux.
 */
#include <check.h>
#include <stdlib.h>

#include "mux.h"
#include "stream_rules.h"

static struct mgrok_mux mux;
static struct mgrok_mux_stream ms;

static void setup(void)
{
	mgrok_mux_init(&mux, false);
	mgrok_mux_insert(&mux, &ms, 2);
}

static void teardown(void) { mgrok_mux_free(&mux); }

static const struct mgrok_stream_flags open_flags = {.attached = true};

START_TEST(test_may_read)
{
	struct mgrok_stream_flags f = open_flags;
	ck_assert(mgrok_stream_may_read(&ms, &f));
	f.attached = false; /* no socket yet, or a datagram stream */
	ck_assert(!mgrok_stream_may_read(&ms, &f));
	f = open_flags;
	f.connecting = true;
	ck_assert(!mgrok_stream_may_read(&ms, &f));
	f = open_flags;
	f.stalled = true;
	ck_assert(!mgrok_stream_may_read(&ms, &f));
	f = open_flags;
	ms.send_window = 0; /* no credit: back-pressure to the socket */
	ck_assert(!mgrok_stream_may_read(&ms, &f));
	ms.send_window = 1;
	ck_assert(mgrok_stream_may_read(&ms, &f));
	mgrok_mux_sent_close(&ms); /* our side is finished: nothing more to read */
	ck_assert(!mgrok_stream_may_read(&ms, &f));
	/* The peer's CLOSE does not stop our reading: a half-close. */
	teardown();
	setup();
	ck_assert_int_eq(mgrok_mux_recv_close(&mux, &ms), MGROK_MUX_OK);
	ck_assert(mgrok_stream_may_read(&ms, &f));
}
END_TEST

START_TEST(test_next)
{
	struct mgrok_stream_flags f = open_flags;
	ck_assert_int_eq(mgrok_stream_next(&ms, &f, 0), MGROK_STREAM_WAIT);
	/* The peer's CLOSE: the FIN, but only after its last byte. */
	ck_assert_int_eq(mgrok_mux_recv_close(&mux, &ms), MGROK_MUX_OK);
	ck_assert_int_eq(mgrok_stream_next(&ms, &f, 10), MGROK_STREAM_WAIT);
	ck_assert_int_eq(mgrok_stream_next(&ms, &f, 0), MGROK_STREAM_SHUT_WR);
	f.shut_wr = true;
	ck_assert_int_eq(mgrok_stream_next(&ms, &f, 0), MGROK_STREAM_WAIT);
	/* Not while connecting: the socket cannot take it yet. */
	f = open_flags;
	f.connecting = true;
	ck_assert_int_eq(mgrok_stream_next(&ms, &f, 0), MGROK_STREAM_WAIT);
	/* No socket (a datagram stream): no FIN to pass on. */
	f = open_flags;
	f.attached = false;
	ck_assert_int_eq(mgrok_stream_next(&ms, &f, 0), MGROK_STREAM_WAIT);
	/* Both closed: the end, straight away (close() sends the FIN); with
	 * bytes still owed to the socket, not yet. */
	f = open_flags;
	mgrok_mux_sent_close(&ms);
	ck_assert_int_eq(mgrok_stream_next(&ms, &f, 1), MGROK_STREAM_WAIT);
	ck_assert_int_eq(mgrok_stream_next(&ms, &f, 0), MGROK_STREAM_DONE);
	f.connecting = true;
	ck_assert_int_eq(mgrok_stream_next(&ms, &f, 0), MGROK_STREAM_WAIT);
	/* Our CLOSE alone ends nothing: the peer may still send. */
	teardown();
	setup();
	mgrok_mux_sent_close(&ms);
	ck_assert_int_eq(mgrok_stream_next(&ms, &open_flags, 0), MGROK_STREAM_WAIT);
}
END_TEST

static unsigned rng_state;

static unsigned rng(void)
{
	rng_state = rng_state * 1103515245u + 12345u;
	return rng_state >> 8;
}

/* One stream's life, event by event in a random order, as stream.c lives
 * it: the peer's DATA goes to pending, the socket takes some of it, credit
 * goes back; the peer CLOSEs; our socket reaches EOF and we CLOSE. After
 * each event the relay asks mgrok_stream_next, as stream.c does. */
struct life {
	size_t pending;         /* the peer's bytes not yet written to our socket */
	uint64_t sent, written; /* by the peer; to our socket */
	uint64_t credit;        /* WINDOW_UPDATE increments granted */
	bool peer_closed, we_closed, fin, done;
	unsigned fins;
	struct mgrok_stream_flags f;
};

static void relay_step(struct life *l)
{
	switch (mgrok_stream_next(&ms, &l->f, l->pending)) {
	case MGROK_STREAM_SHUT_WR:
		/* The FIN goes after the last byte the peer sent, and once. */
		ck_assert(l->peer_closed);
		ck_assert_uint_eq(l->written, l->sent);
		ck_assert(!l->fin);
		l->fin = true;
		l->fins++;
		l->f.shut_wr = true;
		break;
	case MGROK_STREAM_DONE:
		ck_assert(l->peer_closed && l->we_closed);
		ck_assert_uint_eq(l->written, l->sent);
		l->done = true;
		break;
	default: break;
	}
}

static void event(struct life *l)
{
	unsigned e = rng() % 5;
	if (e == 0 && !l->peer_closed && ms.recv_window) {
		size_t n = 1 + rng() % (ms.recv_window < 70000 ? ms.recv_window : 70000);
		ck_assert_int_eq(mgrok_mux_recv_data(&mux, &ms, n, 0.0), MGROK_MUX_OK);
		l->pending += n;
		l->sent += n;
	} else if (e == 1 && l->pending && !l->f.connecting) {
		size_t n = 1 + rng() % l->pending;
		l->pending -= n;
		l->written += n;
		l->credit += mgrok_mux_consumed(&mux, &ms, n);
	} else if (e == 2 && !l->peer_closed && rng() % 8 == 0) {
		ck_assert_int_eq(mgrok_mux_recv_close(&mux, &ms), MGROK_MUX_OK);
		l->peer_closed = true;
	} else if (e == 3 && !l->we_closed && rng() % 8 == 0) {
		mgrok_mux_sent_close(&ms);
		l->we_closed = true;
	} else if (e == 4 && l->f.connecting && rng() % 4 == 0) {
		l->f.connecting = false;
	}
	relay_step(l);
}

START_TEST(test_half_close_sequences)
{
	rng_state = 20261202;
	teardown(); /* each round makes its own */
	for (int round = 0; round < 2000; round++) {
		setup();
		struct life l = {.f = open_flags};
		l.f.connecting = round % 3 == 0; /* a client stream whose connect is under way */
		for (int i = 0; i < 10000 && !l.done; i++)
			event(&l);
		ck_assert_msg(l.done, "round %d never ended: pending %zu, closed %d/%d", round,
		              l.pending, l.peer_closed, l.we_closed);
		/* A FIN went out before the end exactly when the peer closed first
		 * and we still had a way to send it; never twice. */
		ck_assert_uint_le(l.fins, 1);
		/* Credit never exceeds what was delivered, and never lets the peer
		 * past its window. */
		ck_assert_uint_le(l.credit, l.written);
		ck_assert_uint_le(l.sent, MGROK_WINDOW_INITIAL + l.credit);
		teardown();
	}
}
END_TEST

int main(void)
{
	Suite *suite = suite_create("stream");
	TCase *tc = tcase_create("rules");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_may_read);
	tcase_add_test(tc, test_next);
	tcase_add_test(tc, test_half_close_sequences);
	suite_add_tcase(suite, tc);
	SRunner *sr = srunner_create(suite);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
