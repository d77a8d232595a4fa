/*
 * Log lines a remote peer can trigger at will (core/log.c): a burst per
 * window and kind, then one summary of the lines held back.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

static FILE *captured;

/* stderr goes to a temporary file that the tests read back. */
static void setup(void)
{
	fflush(stderr);
	captured = tmpfile();
	ck_assert_ptr_nonnull(captured);
	ck_assert_int_ge(dup2(fileno(captured), STDERR_FILENO), 0);
	mgrok_log_level = MGROK_LOG_INFO;
}

/* Everything logged since setup (or the last call), as one string. */
static const char *logged(void)
{
	static char text[16384];
	fflush(stderr);
	/* stderr and captured share one file offset. */
	ssize_t n = pread(fileno(captured), text, sizeof(text) - 1, 0);
	ck_assert_int_ge(n, 0);
	text[n] = '\0';
	ck_assert_int_eq(ftruncate(fileno(captured), 0), 0);
	ck_assert_int_eq(lseek(STDERR_FILENO, 0, SEEK_SET), 0);
	return text;
}

static unsigned count(const char *text, const char *what)
{
	unsigned n = 0;
	for (const char *p = text; (p = strstr(p, what)); p += strlen(what))
		n++;
	return n;
}

START_TEST(test_burst_then_summary)
{
	struct mgrok_log_limit l = {.kind = "REGISTER refused", .burst = 3};
	for (int i = 0; i < 1000; i++)
		mgrok_log_limited(&l, 7, 100.0 + i * 0.001, MGROK_LOG_INFO, "line %d", i);
	const char *text = logged();
	ck_assert_uint_eq(count(text, "\n"), 3);
	ck_assert_uint_eq(
	        count(text, "line 0\n") + count(text, "line 1\n") + count(text, "line 2\n"), 3);
	ck_assert_uint_eq(l.suppressed, 997);
	/* The first line of the next window comes after the summary of the last. */
	mgrok_log_limited(&l, 7, 100.0 + MGROK_LOG_WINDOW, MGROK_LOG_INFO, "line %d", 1000);
	text = logged();
	ck_assert_msg(
	        strstr(text,
	               "session 7: suppressed 997 similar lines (REGISTER refused) in 10 s\n"),
	        "%s", text);
	ck_assert_ptr_nonnull(strstr(strstr(text, "suppressed"), "line 1000\n"));
	ck_assert_uint_eq(l.suppressed, 0);
}
END_TEST

START_TEST(test_hidden_lines_cost_nothing)
{
	struct mgrok_log_limit l = {.kind = "k", .burst = 2};
	for (int i = 0; i < 100; i++)
		mgrok_log_limited(&l, 0, 1.0, MGROK_LOG_DEBUG, "hidden %d", i);
	ck_assert_str_eq(logged(), "");
	ck_assert_uint_eq(l.suppressed, 0);
	ck_assert_uint_eq(l.lines, 0);
	mgrok_log_limited(&l, 0, 1.0, MGROK_LOG_WARN, "shown");
	ck_assert_uint_eq(count(logged(), "shown\n"), 1);
}
END_TEST

START_TEST(test_tick_and_flush)
{
	struct mgrok_log_limit l = {.kind = "connections refused", .burst = 1};
	for (int i = 0; i < 5; i++)
		mgrok_log_limited(&l, 0, 50.0, MGROK_LOG_WARN, "refused %d", i);
	ck_assert_uint_eq(count(logged(), "refused"), 1);
	/* Within the window a tick says nothing; after it, the summary. */
	mgrok_log_limit_tick(&l, 0, 55.0);
	ck_assert_str_eq(logged(), "");
	mgrok_log_limit_tick(&l, 0, 61.0);
	const char *text = logged();
	ck_assert_msg(
	        strstr(text, "warn  suppressed 4 similar lines (connections refused) in 11 s\n"),
	        "%s", text);
	mgrok_log_limit_tick(&l, 0, 80.0);
	ck_assert_str_eq(logged(), "");
	/* A flush (the end of a session) reports at once, and only once. */
	for (int i = 0; i < 3; i++)
		mgrok_log_limited(&l, 3, 90.0, MGROK_LOG_INFO, "again %d", i);
	logged();
	mgrok_log_limit_flush(&l, 3, 91.0);
	ck_assert_uint_eq(count(logged(), "session 3: suppressed 2 similar lines"), 1);
	mgrok_log_limit_flush(&l, 3, 92.0);
	ck_assert_str_eq(logged(), "");
}
END_TEST

int main(void)
{
	Suite *suite = suite_create("log");
	TCase *tc = tcase_create("limits");
	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_add_test(tc, test_burst_then_summary);
	tcase_add_test(tc, test_hidden_lines_cost_nothing);
	tcase_add_test(tc, test_tick_and_flush);
	suite_add_tcase(suite, tc);
	SRunner *sr = srunner_create(suite);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
