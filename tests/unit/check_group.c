/* Client groups' turn-taking (core/group.c). */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "group.h"
#include "proxy.h"
#include "session.h"

#define N 4

static struct mgrok_session sess[N];
static struct mgrok_proxy px[N], anchor;
static struct mgrok_group g;

static void setup(void)
{
	memset(sess, 0, sizeof(sess));
	memset(px, 0, sizeof(px));
	memset(&anchor, 0, sizeof(anchor));
	memset(&g, 0, sizeof(g));
	g.anchor = &anchor;
	anchor.group = &g;
	for (int i = 0; i < N; i++) {
		sess[i].open = true;
		px[i].sess = &sess[i];
	}
}

static void teardown(void) { free(g.members); }

static int index_of(const struct mgrok_proxy *p) { return p ? (int)(p - px) : -1; }

START_TEST(test_round_robin)
{
	for (int i = 0; i < 3; i++)
		mgrok_group_add(&g, &px[i]);
	ck_assert_ptr_eq(px[1].group, &g);
	for (int k = 0; k < 9; k++)
		ck_assert_int_eq(index_of(mgrok_group_route(&anchor)), k % 3);
	/* A member routes to itself: only the anchor hands visitors out. */
	ck_assert_ptr_eq(mgrok_group_route(&px[2]), &px[2]);
	struct mgrok_proxy lone = {0};
	ck_assert_ptr_eq(mgrok_group_route(&lone), &lone);
}
END_TEST

/* Members whose session takes no streams are passed over, in order. */
START_TEST(test_skips_unusable)
{
	for (int i = 0; i < 4; i++)
		mgrok_group_add(&g, &px[i]);
	sess[1].draining = true;
	sess[2].closing = true;
	ck_assert_int_eq(index_of(mgrok_group_pick(&g)), 0);
	ck_assert_int_eq(index_of(mgrok_group_pick(&g)), 3);
	ck_assert_int_eq(index_of(mgrok_group_pick(&g)), 0);
	sess[0].open = false; /* still in its handshake, or gone */
	px[3].sess = NULL;
	ck_assert_ptr_null(mgrok_group_pick(&g));
	ck_assert_ptr_null(mgrok_group_route(&anchor));
}
END_TEST

/* Leaving keeps the others' turns: the one after the leaver is next. */
START_TEST(test_remove_keeps_turn)
{
	for (int i = 0; i < 4; i++)
		mgrok_group_add(&g, &px[i]);
	ck_assert_int_eq(index_of(mgrok_group_pick(&g)), 0);
	ck_assert_int_eq(index_of(mgrok_group_pick(&g)), 1);
	/* Next is 2; 1 leaves (before the turn), 2 must still be next. */
	ck_assert_uint_eq(mgrok_group_remove(&g, &px[1]), 3);
	ck_assert_ptr_null(px[1].group);
	ck_assert_int_eq(index_of(mgrok_group_pick(&g)), 2);
	/* 3 is next; it leaves itself: the turn wraps to 0. */
	ck_assert_uint_eq(mgrok_group_remove(&g, &px[3]), 2);
	ck_assert_int_eq(index_of(mgrok_group_pick(&g)), 0);
	ck_assert_int_eq(index_of(mgrok_group_pick(&g)), 2);
	ck_assert_uint_eq(mgrok_group_remove(&g, &px[0]), 1);
	ck_assert_uint_eq(mgrok_group_remove(&g, &px[2]), 0);
	ck_assert_ptr_null(mgrok_group_pick(&g));
	/* Removing one that is not there changes nothing. */
	ck_assert_uint_eq(mgrok_group_remove(&g, &px[2]), 0);
}
END_TEST

/* Another node's relay is a member like the others for a visitor that
 * came here, but never for one another node relayed here (no ping-pong). */
START_TEST(test_local_skips_relays)
{
	for (int i = 0; i < 3; i++)
		mgrok_group_add(&g, &px[i]);
	px[1].relayed = true;
	for (int k = 0; k < 6; k++)
		ck_assert_int_eq(index_of(mgrok_group_route(&anchor)), k % 3);
	for (int k = 0; k < 6; k++)
		ck_assert_int_eq(index_of(mgrok_group_pick_local(&g)), (k % 2) * 2);
	px[0].relayed = px[2].relayed = true;
	ck_assert_ptr_null(mgrok_group_pick_local(&g));
	ck_assert_ptr_nonnull(mgrok_group_pick(&g));
}
END_TEST

START_TEST(test_grows)
{
	static struct mgrok_proxy many[40];
	static struct mgrok_session s = {.open = true};
	for (int i = 0; i < 40; i++) {
		many[i].sess = &s;
		mgrok_group_add(&g, &many[i]);
	}
	ck_assert_uint_eq(g.n, 40);
	for (int k = 0; k < 80; k++)
		ck_assert_ptr_eq(mgrok_group_pick(&g), &many[k % 40]);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("group");
	TCase *tc = tcase_create("group");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_round_robin);
	tcase_add_test(tc, test_skips_unusable);
	tcase_add_test(tc, test_remove_keeps_turn);
	tcase_add_test(tc, test_grows);
	tcase_add_test(tc, test_local_skips_relays);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
