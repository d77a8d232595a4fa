/*
 * The service manager's notifications (core/notify.c): $NOTIFY_SOCKET
 * values, the datagrams' text, and STATUS= held to one a second.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "notify.h"

START_TEST(test_address)
{
	struct sockaddr_un sa;
	socklen_t len = 0;
	ck_assert_int_eq(mgrok_notify_address("/run/systemd/notify", &sa, &len), 0);
	ck_assert_str_eq(sa.sun_path, "/run/systemd/notify");
	ck_assert_uint_eq(len, offsetof(struct sockaddr_un, sun_path) + 20); /* with its NUL */
	/* Abstract: a leading NUL, and the length ends the name (no NUL after). */
	ck_assert_int_eq(mgrok_notify_address("@name", &sa, &len), 0);
	ck_assert_int_eq(sa.sun_path[0], '\0');
	ck_assert_mem_eq(sa.sun_path + 1, "name", 4);
	ck_assert_uint_eq(len, offsetof(struct sockaddr_un, sun_path) + 5);
	/* Neither a path nor @name, or nothing after the @ or /. */
	const char *bad[] = {NULL, "", "@", "/", "relative/path", "vsock:2:1234"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_int_eq(mgrok_notify_address(bad[i], &sa, &len), -1);
	/* Too long: a path needs room for its NUL, a name does not. */
	char name[sizeof(sa.sun_path) + 2];
	memset(name, 'x', sizeof(name));
	name[0] = '/';
	name[sizeof(sa.sun_path)] = '\0';
	ck_assert_int_eq(mgrok_notify_address(name, &sa, &len), -1);
	name[sizeof(sa.sun_path) - 1] = '\0';
	ck_assert_int_eq(mgrok_notify_address(name, &sa, &len), 0);
	name[0] = '@';
	name[sizeof(sa.sun_path) - 1] = 'x';
	name[sizeof(sa.sun_path)] = '\0';
	ck_assert_int_eq(mgrok_notify_address(name, &sa, &len), 0);
	ck_assert_uint_eq(len, sizeof(sa));
}
END_TEST

START_TEST(test_format_reloading)
{
	char buf[64];
	mgrok_notify_format_reloading(buf, sizeof(buf), 18446744073709551615u);
	ck_assert_str_eq(buf, "RELOADING=1\nMONOTONIC_USEC=18446744073709551615");
	mgrok_notify_format_reloading(buf, sizeof(buf), 0);
	ck_assert_str_eq(buf, "RELOADING=1\nMONOTONIC_USEC=0");
}
END_TEST

static unsigned counter;

static void status(void *arg, char *buf, size_t len) { snprintf(buf, len, "%u things", counter); }

/* The next datagram on fd, or "" when none is waiting. */
static const char *received(int fd)
{
	static char text[512];
	ssize_t n = recv(fd, text, sizeof(text) - 1, MSG_DONTWAIT);
	text[n > 0 ? n : 0] = '\0';
	return text;
}

START_TEST(test_datagrams)
{
	char dir[] = "/tmp/check_notify.XXXXXX", path[64];
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/notify", dir);
	struct sockaddr_un sa;
	socklen_t len;
	ck_assert_int_eq(mgrok_notify_address(path, &sa, &len), 0);
	int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, len), 0);

	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct mgrok_notify n;
	mgrok_notify_init(&n, loop, path);
	ck_assert_int_ge(n.fd, 0);
	mgrok_notify_ready(&n);
	ck_assert_str_eq(received(fd), "READY=1");
	mgrok_notify_set_status(&n, status, NULL);
	mgrok_notify_ready(&n);
	ck_assert_str_eq(received(fd), "READY=1\nSTATUS=0 things");
	/* Within a second of that STATUS=, changes wait for the timer, which
	 * sends the state it finds then: one datagram for many changes. */
	for (counter = 1; counter <= 5; counter++)
		mgrok_notify_status_changed(&n);
	ck_assert_str_eq(received(fd), "");
	ck_assert(ev_is_active(&n.status_timer));
	ev_run(loop, EVRUN_ONCE);
	ck_assert_str_eq(received(fd), "STATUS=6 things");
	ck_assert_str_eq(received(fd), "");
	mgrok_notify_stopping(&n);
	ck_assert_str_eq(received(fd), "STOPPING=1");
	/* Nothing after STOPPING=1. */
	mgrok_notify_status_changed(&n);
	ck_assert(!ev_is_active(&n.status_timer));
	ck_assert_str_eq(received(fd), "");
	mgrok_notify_free(&n);
	ev_loop_destroy(loop);
	close(fd);
	unlink(path);
	rmdir(dir);
}
END_TEST

START_TEST(test_inert)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct mgrok_notify n;
	mgrok_notify_init(&n, loop, NULL);
	ck_assert_int_eq(n.fd, -1);
	mgrok_notify_set_status(&n, status, NULL);
	mgrok_notify_ready(&n);
	mgrok_notify_status_changed(&n);
	mgrok_notify_status_changed(NULL);
	mgrok_notify_reloading(&n);
	mgrok_notify_stopping(&n);
	ck_assert(!ev_is_active(&n.status_timer));
	mgrok_notify_free(&n);
	ev_loop_destroy(loop);
}
END_TEST

int main(void)
{
	Suite *suite = suite_create("notify");
	TCase *tc = tcase_create("notify");
	tcase_add_test(tc, test_address);
	tcase_add_test(tc, test_format_reloading);
	tcase_add_test(tc, test_datagrams);
	tcase_add_test(tc, test_inert);
	suite_add_tcase(suite, tc);
	SRunner *sr = srunner_create(suite);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
