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
#include "host.h"
#include "session.h"

static int closes;
static enum mgrok_close_why closed_why;
static char closed_reason[256];

static void on_open(struct mgrok_session *s) { (void)s; }

static int on_frame(struct mgrok_session *s, const struct mgrok_frame *f)
{
	(void)s;
	(void)f;
	return 0;
}

static void on_close(struct mgrok_session *s, enum mgrok_close_why why, const char *reason)
{
	(void)s;
	closes++;
	closed_why = why;
	snprintf(closed_reason, sizeof(closed_reason), "%s", reason);
}

static const struct mgrok_session_ops ops = {on_open, on_frame, on_close};

/* A session on one end of a socket pair, past its handshake. */
static struct mgrok_session *open_session(int sv[2])
{
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	struct mgrok_session *s = mgrok_session_new(sv[0], MGROK_ROLE_SERVER, NULL, &ops, NULL);
	s->open = true;
	return s;
}

static void setup(void)
{
	mgrok_loop = ev_default_loop(0);
	signal(SIGPIPE, SIG_IGN);
	closes = 0;
	closed_reason[0] = 0;
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
	mgrok_session_close(s, MGROK_GOAWAY_REPLACED, MGROK_CLOSE_LOCAL, "replaced by a new session");
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

int main(void)
{
	Suite *suite = suite_create("session");
	TCase *tc = tcase_create("close");
	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_add_test(tc, test_close_sends_goaway);
	tcase_add_test(tc, test_close_with_peer_gone);
	tcase_add_test(tc, test_close_inside_callback_is_deferred);
	suite_add_tcase(suite, tc);
	SRunner *sr = srunner_create(suite);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
