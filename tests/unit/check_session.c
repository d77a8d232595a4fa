/*
 * Closing a session (core/session.c) from outside its callbacks, as a
 * takeover or a shutdown does: the GO_AWAY goes out when the peer is there,
 * and a peer that is gone costs one failed write, never a second close.
 */
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "codec.h"
#include "context.h"
#include "session.h"

/* Each test runs in a process of its own (Check forks): one context each. */
static struct mgrok_ctx ctx;
static int closes;
static enum mgrok_close_why closed_why;
static char closed_reason[256];

static void on_open(struct mgrok_session *s) { (void)s; }

static unsigned registers; /* REGISTERs seen, each answered with a long REGISTER_ACK */

static int on_frame(struct mgrok_session *s, const struct mgrok_frame *f)
{
	if (f->type != MGROK_FRAME_REGISTER)
		return 0;
	static const char why[1000] = "a reply much longer than the request";
	struct mgrok_frame ack = {.type = MGROK_FRAME_REGISTER_ACK};
	ack.u.ack.status = MGROK_ACK_INVALID;
	ack.u.ack.message.p = (const uint8_t *)why;
	ack.u.ack.message.len = sizeof(why);
	registers++;
	mgrok_session_send(s, &ack);
	return 0;
}

static void on_close(struct mgrok_session *s, enum mgrok_close_why why, const char *reason)
{
	(void)s;
	closes++;
	closed_why = why;
	snprintf(closed_reason, sizeof(closed_reason), "%s", reason);
}

static const struct mgrok_session_ops ops = {
        .on_open = on_open, .on_frame = on_frame, .on_close = on_close};

/* A session on one end of a socket pair, past its handshake. */
static struct mgrok_session *open_session(int sv[2])
{
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	struct mgrok_session *s =
	        mgrok_session_new(&ctx, sv[0], MGROK_ROLE_SERVER, NULL, &ops, NULL);
	s->open = true;
	return s;
}

static void setup(void)
{
	mgrok_ctx_init(&ctx, ev_default_loop(0));
	signal(SIGPIPE, SIG_IGN);
	closes = 0;
	closed_reason[0] = 0;
	registers = 0;
}

static int got_goaway_code = -1;
static char got_goaway_message[256];

static int on_peer_frame(void *arg, const struct mgrok_frame *f)
{
	(void)arg;
	if (f->type == MGROK_FRAME_GO_AWAY) {
		got_goaway_code = f->u.go_away.code;
		snprintf(got_goaway_message, sizeof(got_goaway_message), "%.*s",
		         (int)f->u.go_away.message.len, (const char *)f->u.go_away.message.p);
	}
	return 0;
}

START_TEST(test_close_sends_goaway)
{
	int sv[2];
	struct mgrok_session *s = open_session(sv);
	mgrok_session_close(s, MGROK_GOAWAY_NORMAL, MGROK_CLOSE_LOCAL, "server shutting down");
	ck_assert_int_eq(closes, 1);
	ck_assert_int_eq(closed_why, MGROK_CLOSE_LOCAL);
	ck_assert_str_eq(closed_reason, "server shutting down");

	/* What the peer reads: one GO_AWAY with the code and the reason, then EOF. */
	uint8_t buf[1024];
	ssize_t n = read(sv[1], buf, sizeof(buf));
	ck_assert_int_gt(n, 0);
	struct mgrok_decoder dec;
	mgrok_decoder_init(&dec, MGROK_ROLE_SERVER);
	got_goaway_code = -1;
	ck_assert_int_eq(mgrok_decoder_feed(&dec, buf, (size_t)n, on_peer_frame, NULL), 0);
	ck_assert_int_eq(dec.partial.len, 0);
	mgrok_decoder_free(&dec);
	ck_assert_int_eq(got_goaway_code, MGROK_GOAWAY_NORMAL);
	ck_assert_str_eq(got_goaway_message, "server shutting down");
	ck_assert_int_eq(read(sv[1], buf, sizeof(buf)), 0);
	close(sv[1]);
}
END_TEST

/* The peer is gone: the GO_AWAY write fails. That failure used to close the
 * session again from inside the close, free it, and the outer close then
 * wrote to the freed session (caught by ASan in the sanitizer build); the
 * owner heard "write failed" instead of its own reason. */
START_TEST(test_close_with_peer_gone)
{
	int sv[2];
	struct mgrok_session *s = open_session(sv);
	close(sv[1]);
	mgrok_session_close(s, MGROK_GOAWAY_REPLACED, MGROK_CLOSE_LOCAL,
	                    "replaced by a new session");
	ck_assert_int_eq(closes, 1);
	ck_assert_int_eq(closed_why, MGROK_CLOSE_LOCAL);
	ck_assert_str_eq(closed_reason, "replaced by a new session");
}
END_TEST

/* A second close of a closing session changes nothing. */
START_TEST(test_close_inside_callback_is_deferred)
{
	int sv[2];
	struct mgrok_session *s = open_session(sv);
	s->in_cb++; /* as inside one of its watchers */
	mgrok_session_close(s, MGROK_GOAWAY_NORMAL, MGROK_CLOSE_LOCAL, "first");
	mgrok_session_close(s, -1, MGROK_CLOSE_LOST, "second");
	ck_assert_int_eq(closes, 0); /* freed only when the callback leaves */
	mgrok_session_leave(s);
	ck_assert_int_eq(closes, 1);
	ck_assert_str_eq(closed_reason, "first");
	close(sv[1]);
}
END_TEST

static unsigned acks_read;

static int count_ack(void *arg, const struct mgrok_frame *f)
{
	(void)arg;
	acks_read += f->type == MGROK_FRAME_REGISTER_ACK;
	return 0;
}

/* Reads what the session wrote to its peer (fd), counting REGISTER_ACKs. */
static size_t drain_peer(int fd, struct mgrok_decoder *dec)
{
	uint8_t buf[65536];
	size_t total = 0;
	ssize_t n;
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		ck_assert_int_eq(mgrok_decoder_feed(dec, buf, (size_t)n, count_ack, NULL), 0);
		total += (size_t)n;
	}
	return total;
}

/* Issue 9: a peer that sends REGISTERs (9 bytes, each answered with ~1 KiB)
 * and never reads. The session stops reading once 4 MiB are queued, holds
 * no more than that and the one read in progress, and loses nothing: when
 * the peer reads at last, every REGISTER gets its answer, in order. */
START_TEST(test_output_bound_pauses_reading)
{
	int sv[2];
	struct mgrok_session *s = open_session(sv);
	ev_io_start(ctx.loop, &s->rio);
	static const uint8_t reg[] = {MGROK_FRAME_REGISTER, 1, 0, 0, 0, 0, 0, 0, 0};
	uint8_t burst[sizeof(reg) * 1000];
	for (size_t i = 0; i < sizeof(burst); i += sizeof(reg))
		memcpy(burst + i, reg, sizeof(reg));
	unsigned sent = 0;
	for (int round = 0; round < 2000 && !s->paused_since; round++) {
		ssize_t n = write(sv[1], burst, sizeof(burst));
		if (n > 0) {
			ck_assert_int_eq(n % (ssize_t)sizeof(reg), 0);
			sent += (unsigned)n / sizeof(reg);
		}
		ev_run(ctx.loop, EVRUN_NOWAIT);
		ck_assert_uint_le(s->out.len, MGROK_SESSION_OUT_MAX + 1100);
	}
	ck_assert_msg(s->paused_since > 0, "reading never paused (%zu bytes queued)", s->out.len);
	ck_assert(!ev_is_active(&s->rio));
	/* Paused, it takes nothing more however long the peer keeps writing. */
	unsigned at_pause = registers;
	for (int round = 0; round < 50; round++) {
		ssize_t n = write(sv[1], burst, sizeof(burst));
		if (n > 0)
			sent += (unsigned)n / sizeof(reg);
		ev_run(ctx.loop, EVRUN_NOWAIT);
	}
	ck_assert_uint_eq(registers, at_pause);
	ck_assert_uint_le(s->out.len, MGROK_SESSION_OUT_MAX + 1100);
	ck_assert_uint_le(s->dec.partial.cap, 2 * 256 * 1024);

	/* The peer reads: reading resumes and every REGISTER is answered. */
	struct mgrok_decoder dec;
	mgrok_decoder_init(&dec, MGROK_ROLE_SERVER);
	acks_read = 0;
	for (int round = 0; round < 100000 && acks_read < sent; round++) {
		drain_peer(sv[1], &dec);
		ev_run(ctx.loop, EVRUN_NOWAIT);
	}
	ck_assert_uint_eq(registers, sent);
	ck_assert_uint_eq(acks_read, sent);
	ck_assert(s->paused_since == 0);
	mgrok_decoder_free(&dec);
	mgrok_session_close(s, -1, MGROK_CLOSE_LOCAL, "done");
	ck_assert_int_eq(closes, 1);
	close(sv[1]);
}
END_TEST

/* Paused for the heartbeat timeout: the peer is dropped, with that reason. */
START_TEST(test_output_bound_times_out)
{
	int sv[2];
	struct mgrok_session *s = open_session(sv);
	s->hb_interval = 0.05;
	s->hb_timeout = 0.2;
	ev_io_start(ctx.loop, &s->rio);
	ev_timer_set(&s->beat, 0.02, 0.02);
	ev_timer_start(ctx.loop, &s->beat);
	static const uint8_t reg[] = {MGROK_FRAME_REGISTER, 1, 0, 0, 0, 0, 0, 0, 0};
	uint8_t burst[sizeof(reg) * 1000];
	for (size_t i = 0; i < sizeof(burst); i += sizeof(reg))
		memcpy(burst + i, reg, sizeof(reg));
	/* Bounded: the session closes within hb_timeout of the pause. */
	for (int round = 0; round < 100000 && !closes; round++) {
		if (write(sv[1], burst, sizeof(burst)) < 0)
			ck_assert(errno == EAGAIN || errno == EWOULDBLOCK);
		ev_run(ctx.loop, closes ? EVRUN_NOWAIT : EVRUN_ONCE);
	}
	ck_assert_int_eq(closes, 1);
	ck_assert_int_eq(closed_why, MGROK_CLOSE_LOST);
	ck_assert_msg(strstr(closed_reason, "output not read for") != NULL, "%s", closed_reason);
	close(sv[1]);
}
END_TEST

int main(void)
{
	Suite *suite = suite_create("session");
	TCase *tc = tcase_create("close");
	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_add_test(tc, test_close_sends_goaway);
	tcase_add_test(tc, test_close_with_peer_gone);
	tcase_add_test(tc, test_close_inside_callback_is_deferred);
	suite_add_tcase(suite, tc);
	TCase *bound = tcase_create("output bound");
	tcase_add_checked_fixture(bound, setup, NULL);
	tcase_set_timeout(bound, 60);
	tcase_add_test(bound, test_output_bound_pauses_reading);
	tcase_add_test(bound, test_output_bound_times_out);
	suite_add_tcase(suite, bound);
	SRunner *sr = srunner_create(suite);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
