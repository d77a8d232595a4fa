/*
 * Unit tests for core/names.c, the registry of host names that proxies
 * routed by name claim (doc/protocol.md 9): the name rules (labels, IDNA
 * A-labels, case), the one-label subdomain rule, and claim / lookup /
 * release across plugins and proxies, through the table's growth.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "names.h"

/* Stand-ins: the registry only compares these pointers. */
static struct mgrok_proxy *const PX1 = (struct mgrok_proxy *)0x1000;
static struct mgrok_proxy *const PX2 = (struct mgrok_proxy *)0x2000;
static const struct mgrok_plugin *const HTTP = (const struct mgrok_plugin *)0x10;
static const struct mgrok_plugin *const TLS = (const struct mgrok_plugin *)0x20;

static const char *const good[] = {
        "app.tunnel.example.com", "a",           "x-1.example",
        "xn--bcher-kva.example",  "123.example", "a.b.c.d.e.f.g",
        "APP.Example.COM",
};
static const char *const bad[] = {
        "",
        ".",
        "app.",
        ".app",
        "a..b",
        "-app.example",
        "app-.example",
        "ap p.example",
        "app_x.example",
        "ab--cd.example",
        "b\xc3\xbc"
        "cher.example",
        "app.example:80",
        "*.example",
        "app/x",
};

START_TEST(test_good_names)
{
	char out[MGROK_HOSTNAME_MAX + 1];
	ck_assert_msg(mgrok_hostname_check(good[_i], out) == NULL, "%s refused", good[_i]);
	for (const char *c = out; *c; c++)
		ck_assert_msg(!(*c >= 'A' && *c <= 'Z'), "%s not folded: %s", good[_i], out);
	ck_assert_uint_eq(strlen(out), strlen(good[_i]));
}
END_TEST

START_TEST(test_bad_names)
{
	char out[MGROK_HOSTNAME_MAX + 1];
	ck_assert_msg(mgrok_hostname_check(bad[_i], out) != NULL, "'%s' accepted", bad[_i]);
}
END_TEST

START_TEST(test_lengths)
{
	char in[400], out[MGROK_HOSTNAME_MAX + 1];
	memset(in, 'a', 63);
	in[63] = '\0';
	ck_assert_ptr_null(mgrok_hostname_check(in, out)); /* a 63-byte label */
	memset(in, 'a', 64);
	in[64] = '\0';
	ck_assert_ptr_nonnull(mgrok_hostname_check(in, out)); /* 64: too long */
	/* 253 bytes of "aaa...a.": the longest name, then one more. */
	size_t n = 0;
	while (n < 253) {
		size_t label = 253 - n >= 64 ? 62 : 253 - n;
		memset(in + n, 'b', label);
		n += label;
		if (n < 253)
			in[n++] = '.';
	}
	in[n] = '\0';
	ck_assert_uint_eq(strlen(in), 253);
	ck_assert_ptr_null(mgrok_hostname_check(in, out));
	strcat(in, "b");
	ck_assert_ptr_nonnull(mgrok_hostname_check(in, out));
}
END_TEST

START_TEST(test_in_domain)
{
	ck_assert(mgrok_hostname_in_domain("app.tunnel.example.com", "tunnel.example.com"));
	ck_assert(mgrok_hostname_in_domain("APP.Tunnel.example.com", "tunnel.EXAMPLE.com"));
	ck_assert(!mgrok_hostname_in_domain("a.b.tunnel.example.com", "tunnel.example.com"));
	ck_assert(!mgrok_hostname_in_domain("tunnel.example.com", "tunnel.example.com"));
	ck_assert(!mgrok_hostname_in_domain("xtunnel.example.com", "tunnel.example.com"));
	ck_assert(!mgrok_hostname_in_domain(".tunnel.example.com", "tunnel.example.com"));
	ck_assert(!mgrok_hostname_in_domain("www.example.org", "tunnel.example.com"));
	ck_assert(!mgrok_hostname_in_domain("app.tunnel.example.com", NULL));
	ck_assert(!mgrok_hostname_in_domain("app.tunnel.example.com", ""));
}
END_TEST

static struct mgrok_names reg;
static struct mgrok_name *list1, *list2;

static void setup(void)
{
	mgrok_names_init(&reg);
	list1 = list2 = NULL;
}

static void teardown(void) { mgrok_names_free(&reg); }

START_TEST(test_claim_lookup_release)
{
	ck_assert_int_eq(mgrok_names_claim(&reg, PX1, HTTP, "app.example", &list1), 0);
	ck_assert_ptr_eq(mgrok_names_lookup(&reg, HTTP, "app.example"), PX1);
	ck_assert_ptr_eq(mgrok_names_lookup(&reg, HTTP, "APP.EXAMPLE"), PX1);
	ck_assert_ptr_null(mgrok_names_lookup(&reg, HTTP, "other.example"));
	/* Another plugin is another namespace. */
	ck_assert_ptr_null(mgrok_names_lookup(&reg, TLS, "app.example"));
	ck_assert_int_eq(mgrok_names_claim(&reg, PX2, TLS, "app.example", &list2), 0);
	ck_assert_ptr_eq(mgrok_names_lookup(&reg, TLS, "app.example"), PX2);
	/* Held by another proxy of the plugin: refused; by the same: fine. */
	ck_assert_int_eq(mgrok_names_claim(&reg, PX2, HTTP, "app.example", &list2), -1);
	ck_assert_int_eq(mgrok_names_claim(&reg, PX1, HTTP, "app.example", &list1), 0);
	ck_assert_uint_eq(reg.count, 2);
	mgrok_names_release(&reg, &list1);
	ck_assert_ptr_null(list1);
	ck_assert_ptr_null(mgrok_names_lookup(&reg, HTTP, "app.example"));
	ck_assert_ptr_eq(mgrok_names_lookup(&reg, TLS, "app.example"), PX2);
	ck_assert_int_eq(mgrok_names_claim(&reg, PX2, HTTP, "app.example", &list2), 0);
	ck_assert_uint_eq(reg.count, 2);
}
END_TEST

START_TEST(test_many_names)
{
	char name[64];
	for (int i = 0; i < 5000; i++) {
		snprintf(name, sizeof(name), "n%d.example", i);
		ck_assert_int_eq(mgrok_names_claim(&reg, i % 2 ? PX1 : PX2, HTTP, name,
		                                   i % 2 ? &list1 : &list2),
		                 0);
	}
	ck_assert_uint_eq(reg.count, 5000);
	ck_assert_uint_ge(reg.nbuckets, 2500); /* grown: chains stay short */
	for (int i = 0; i < 5000; i++) {
		snprintf(name, sizeof(name), "N%d.EXAMPLE", i);
		ck_assert_ptr_eq(mgrok_names_lookup(&reg, HTTP, name), i % 2 ? PX1 : PX2);
	}
	mgrok_names_release(&reg, &list1);
	ck_assert_uint_eq(reg.count, 2500);
	ck_assert_ptr_null(mgrok_names_lookup(&reg, HTTP, "n1.example"));
	ck_assert_ptr_eq(mgrok_names_lookup(&reg, HTTP, "n2.example"), PX2);
	mgrok_names_release(&reg, &list2);
	ck_assert_uint_eq(reg.count, 0);
}
END_TEST

START_TEST(test_lookup_too_long)
{
	char name[600];
	memset(name, 'a', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	ck_assert_ptr_null(mgrok_names_lookup(&reg, HTTP, name));
}
END_TEST

static Suite *names_suite(void)
{
	Suite *s = suite_create("names");
	TCase *tc = tcase_create("rules");
	tcase_add_loop_test(tc, test_good_names, 0, (int)(sizeof(good) / sizeof(*good)));
	tcase_add_loop_test(tc, test_bad_names, 0, (int)(sizeof(bad) / sizeof(*bad)));
	tcase_add_test(tc, test_lengths);
	tcase_add_test(tc, test_in_domain);
	suite_add_tcase(s, tc);
	tc = tcase_create("registry");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_claim_lookup_release);
	tcase_add_test(tc, test_many_names);
	tcase_add_test(tc, test_lookup_too_long);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(names_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
