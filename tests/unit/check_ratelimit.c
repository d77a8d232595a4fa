/* Failed-handshake rate limiting (core/ratelimit.c): pure, driven with a fake clock. */
#include <arpa/inet.h>
#include <check.h>
#include <stdio.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "ratelimit.h"

static struct sockaddr_storage v4(const char *ip, uint16_t port)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	struct sockaddr_in *in = (struct sockaddr_in *)&ss;
	in->sin_family = AF_INET;
	in->sin_port = htons(port);
	inet_pton(AF_INET, ip, &in->sin_addr);
	return ss;
}

static struct sockaddr_storage v6(const char *ip)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
	in6->sin6_family = AF_INET6;
	inet_pton(AF_INET6, ip, &in6->sin6_addr);
	return ss;
}

#define SA(x) ((struct sockaddr *)&(x))

static struct mgrok_ratelimit *rl;

static void setup(void) { rl = malloc(sizeof(*rl)); }
static void teardown(void) { free(rl); }

START_TEST(test_blocks_after_n_failures)
{
	mgrok_ratelimit_init(rl, 3, 60);
	struct sockaddr_storage a = v4("192.0.2.1", 1000);
	ck_assert(!mgrok_ratelimit_failure(rl, SA(a), 0));
	ck_assert(!mgrok_ratelimit_blocked(rl, SA(a), 1));
	ck_assert(!mgrok_ratelimit_failure(rl, SA(a), 1));
	ck_assert(!mgrok_ratelimit_blocked(rl, SA(a), 2));
	/* The third failure starts the block, and says so once. */
	ck_assert(mgrok_ratelimit_failure(rl, SA(a), 2));
	ck_assert(mgrok_ratelimit_blocked(rl, SA(a), 3));
	ck_assert(!mgrok_ratelimit_failure(rl, SA(a), 4));
	ck_assert(mgrok_ratelimit_blocked(rl, SA(a), 61));
	/* The block lasts the interval from its start. */
	ck_assert(!mgrok_ratelimit_blocked(rl, SA(a), 62.5));
}
END_TEST

START_TEST(test_port_does_not_matter)
{
	mgrok_ratelimit_init(rl, 2, 60);
	struct sockaddr_storage a = v4("192.0.2.1", 1000), b = v4("192.0.2.1", 2000);
	mgrok_ratelimit_failure(rl, SA(a), 0);
	ck_assert(mgrok_ratelimit_failure(rl, SA(b), 1));
	ck_assert(mgrok_ratelimit_blocked(rl, SA(a), 2));
}
END_TEST

START_TEST(test_addresses_are_separate)
{
	mgrok_ratelimit_init(rl, 2, 60);
	struct sockaddr_storage a = v4("192.0.2.1", 1), b = v4("192.0.2.2", 1);
	struct sockaddr_storage c = v6("2001:db8::1"), d = v6("2001:db8::2");
	mgrok_ratelimit_failure(rl, SA(a), 0);
	mgrok_ratelimit_failure(rl, SA(a), 0);
	mgrok_ratelimit_failure(rl, SA(c), 0);
	mgrok_ratelimit_failure(rl, SA(c), 0);
	ck_assert(mgrok_ratelimit_blocked(rl, SA(a), 1));
	ck_assert(!mgrok_ratelimit_blocked(rl, SA(b), 1));
	ck_assert(mgrok_ratelimit_blocked(rl, SA(c), 1));
	ck_assert(!mgrok_ratelimit_blocked(rl, SA(d), 1));
}
END_TEST

START_TEST(test_mapped_v4_is_v4)
{
	mgrok_ratelimit_init(rl, 2, 60);
	struct sockaddr_storage a = v4("192.0.2.7", 1), m = v6("::ffff:192.0.2.7");
	mgrok_ratelimit_failure(rl, SA(a), 0);
	ck_assert(mgrok_ratelimit_failure(rl, SA(m), 0));
	ck_assert(mgrok_ratelimit_blocked(rl, SA(a), 1));
}
END_TEST

START_TEST(test_window_resets)
{
	mgrok_ratelimit_init(rl, 3, 10);
	struct sockaddr_storage a = v4("198.51.100.1", 1);
	/* Failures spread wider than the interval never add up to a block. */
	for (int i = 0; i < 20; i++)
		ck_assert(!mgrok_ratelimit_failure(rl, SA(a), i * 6.0));
	ck_assert(!mgrok_ratelimit_blocked(rl, SA(a), 121));
}
END_TEST

START_TEST(test_disabled)
{
	mgrok_ratelimit_init(rl, 0, 10);
	struct sockaddr_storage a = v4("198.51.100.1", 1);
	for (int i = 0; i < 100; i++)
		ck_assert(!mgrok_ratelimit_failure(rl, SA(a), 0));
	ck_assert(!mgrok_ratelimit_blocked(rl, SA(a), 0));
}
END_TEST

START_TEST(test_bounded_table_keeps_working)
{
	mgrok_ratelimit_init(rl, 2, 60);
	char ip[32];
	/* Far more addresses than slots: the table stays bounded and the
	 * addresses seen last are still tracked. */
	for (int i = 0; i < 3 * MGROK_RATELIMIT_SLOTS; i++) {
		snprintf(ip, sizeof(ip), "10.%d.%d.%d", (i >> 16) & 255, (i >> 8) & 255, i & 255);
		struct sockaddr_storage a = v4(ip, 1);
		mgrok_ratelimit_failure(rl, SA(a), i * 0.001);
	}
	struct sockaddr_storage last = v4("10.0.47.255", 1);
	/* It failed at 12.287 s; a second failure inside the interval blocks it. */
	ck_assert(mgrok_ratelimit_failure(rl, SA(last), 13));
	ck_assert(mgrok_ratelimit_blocked(rl, SA(last), 13.5));
}
END_TEST

START_TEST(test_unknown_family)
{
	mgrok_ratelimit_init(rl, 1, 10);
	struct sockaddr_storage u;
	memset(&u, 0, sizeof(u));
	u.ss_family = AF_UNIX;
	ck_assert(!mgrok_ratelimit_failure(rl, SA(u), 0));
	ck_assert(!mgrok_ratelimit_blocked(rl, SA(u), 0));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("ratelimit");
	TCase *tc = tcase_create("ratelimit");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_blocks_after_n_failures);
	tcase_add_test(tc, test_port_does_not_matter);
	tcase_add_test(tc, test_addresses_are_separate);
	tcase_add_test(tc, test_mapped_v4_is_v4);
	tcase_add_test(tc, test_window_resets);
	tcase_add_test(tc, test_disabled);
	tcase_add_test(tc, test_bounded_table_keeps_working);
	tcase_add_test(tc, test_unknown_family);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
