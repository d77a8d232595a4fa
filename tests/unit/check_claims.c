/*
 * Claims in Redis (core/claims.c) against a real redis-server, started by
 * the test on a unix socket of its own (no port to collide on) and stopped
 * and started again to be unreachable. Every wait runs the loop until a
 * condition holds, for a bounded time.
 */
#include <check.h>
#include <ev.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "claims.h"

#define WAIT_MAX 10.0 /* s: a bound, never an expectation */

static char dir[] = "/tmp/mgrok-claims-XXXXXX";
static char sock[256], addr[280];
static pid_t redis_pid;
static struct ev_loop *loop;

static void redis_start(void)
{
	redis_pid = fork();
	ck_assert_int_ge(redis_pid, 0);
	if (redis_pid == 0) {
		execlp("redis-server", "redis-server", "--port", "0", "--unixsocket", sock,
		       "--save", "", "--appendonly", "no", "--dir", dir, "--loglevel", "warning",
		       (char *)NULL);
		_exit(127);
	}
	struct stat st;
	for (int i = 0; i < 200 && stat(sock, &st) != 0; i++)
		usleep(25000);
	ck_assert_msg(stat(sock, &st) == 0, "redis-server made no socket %s (is it installed?)",
	              sock);
}

static void redis_stop(void)
{
	kill(redis_pid, SIGKILL);
	waitpid(redis_pid, NULL, 0);
	unlink(sock);
}

/* The state of key, asked over a connection of the test's own. */
static char *get(const char *key)
{
	redisContext *rc = redisConnectUnix(sock);
	ck_assert_msg(rc && !rc->err, "cannot reach redis-server");
	redisReply *rep = redisCommand(rc, "GET %s", key);
	char *v = rep && rep->type == REDIS_REPLY_STRING ? strdup(rep->str) : NULL;
	freeReplyObject(rep);
	redisFree(rc);
	return v;
}

static void del(const char *key)
{
	redisContext *rc = redisConnectUnix(sock);
	ck_assert(rc && !rc->err);
	freeReplyObject(redisCommand(rc, "DEL %s", key));
	redisFree(rc);
}

static void set(const char *key, const char *value)
{
	redisContext *rc = redisConnectUnix(sock);
	ck_assert(rc && !rc->err);
	freeReplyObject(redisCommand(rc, "SET %s %s", key, value));
	redisFree(rc);
}

struct seen {
	int count;
	enum mgrok_claim_status last;
};

static void on_status(void *arg, struct mgrok_claim *c, enum mgrok_claim_status st)
{
	struct seen *s = arg;
	s->count++;
	s->last = st;
}

/* Runs the loop until *count reaches n or the bound passes. */
static void run_until_count(const int *count, int n)
{
	double end = ev_time() + WAIT_MAX;
	while (*count < n && ev_time() < end)
		ev_run(loop, EVRUN_ONCE);
}

/* Runs the loop for about s seconds (what the refresh timer needs). */
static void run_for(double s)
{
	double end = ev_time() + s;
	while (ev_time() < end)
		ev_run(loop, EVRUN_ONCE | EVRUN_NOWAIT), usleep(2000);
}

static struct mgrok_claims *claims_connected(double lease)
{
	char err[256];
	struct mgrok_claims *r = mgrok_claims_new(loop, addr, lease, err, sizeof(err));
	ck_assert_msg(r != NULL, "%s", err);
	run_for(0.2); /* the connection is made in the background */
	return r;
}

static void setup(void)
{
	strcpy(dir, "/tmp/mgrok-claims-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(sock, sizeof(sock), "%s/redis.sock", dir);
	snprintf(addr, sizeof(addr), "unix:%s", sock);
	loop = ev_loop_new(EVFLAG_AUTO);
	redis_start();
}

static void teardown(void)
{
	redis_stop();
	ev_loop_destroy(loop);
	rmdir(dir);
}

START_TEST(test_take_taken_release)
{
	struct mgrok_claims *r = claims_connected(2.0);
	struct seen a = {0}, b = {0}, c = {0};
	struct mgrok_claim *ca =
	        mgrok_claim_take(r, "mgrok:claim:tcp/20080", "node-a", on_status, &a);
	ck_assert_ptr_nonnull(ca);
	run_until_count(&a.count, 1);
	ck_assert_int_eq(a.count, 1);
	ck_assert_int_eq(a.last, MGROK_CLAIM_OK);
	char *v = get("mgrok:claim:tcp/20080");
	ck_assert_str_eq(v, "node-a");
	free(v);
	struct mgrok_claim *cb =
	        mgrok_claim_take(r, "mgrok:claim:tcp/20080", "node-b", on_status, &b);
	run_until_count(&b.count, 1);
	ck_assert_int_eq(b.last, MGROK_CLAIM_TAKEN);
	mgrok_claim_release(cb);
	mgrok_claim_release(ca);
	double end = ev_time() + WAIT_MAX;
	while ((v = get("mgrok:claim:tcp/20080")) && ev_time() < end) {
		free(v);
		run_for(0.02);
	}
	ck_assert_ptr_null(v);
	struct mgrok_claim *cc =
	        mgrok_claim_take(r, "mgrok:claim:tcp/20080", "node-b", on_status, &c);
	run_until_count(&c.count, 1);
	ck_assert_int_eq(c.last, MGROK_CLAIM_OK);
	ck_assert_int_eq(a.count, 1); /* released: never heard of again */
	mgrok_claim_release(cc);
	mgrok_claims_free(r);
}
END_TEST

/* The holder's refreshes keep a short lease alive; another's value is
 * never refreshed or deleted by it. */
START_TEST(test_refresh_and_lost)
{
	struct mgrok_claims *r = claims_connected(0.3);
	struct seen a = {0};
	struct mgrok_claim *ca = mgrok_claim_take(r, "k1", "node-a", on_status, &a);
	run_until_count(&a.count, 1);
	ck_assert_int_eq(a.last, MGROK_CLAIM_OK);
	run_for(1.0); /* more than three leases */
	char *v = get("k1");
	ck_assert_msg(v && strcmp(v, "node-a") == 0, "the lease was not refreshed");
	free(v);
	ck_assert_int_eq(a.count, 1);
	/* Gone from under it (Redis lost its data): written again. */
	del("k1");
	double end = ev_time() + WAIT_MAX;
	while (!(v = get("k1")) && ev_time() < end)
		run_for(0.02);
	ck_assert_msg(v && strcmp(v, "node-a") == 0, "k1 was not written again");
	free(v);
	ck_assert_int_eq(a.count, 1);
	/* Another's now: the next refresh says so. */
	set("k1", "node-b");
	run_until_count(&a.count, 2);
	ck_assert_int_eq(a.count, 2);
	ck_assert_int_eq(a.last, MGROK_CLAIM_LOST);
	mgrok_claim_release(ca);
	mgrok_claims_free(r);
}
END_TEST

/* Redis away: no new claims, held ones kept (nobody can take them then);
 * Redis back, empty: the held claim is written again, new claims work. */
START_TEST(test_unreachable)
{
	struct mgrok_claims *r = claims_connected(0.5);
	struct seen a = {0}, b = {0};
	struct mgrok_claim *ca = mgrok_claim_take(r, "k2", "node-a", on_status, &a);
	run_until_count(&a.count, 1);
	ck_assert_int_eq(a.last, MGROK_CLAIM_OK);
	redis_stop();
	run_for(1.5); /* three leases */
	ck_assert_int_eq(a.count, 1);
	ck_assert_ptr_null(mgrok_claim_take(r, "k3", "node-a", on_status, &b));
	redis_start();
	struct mgrok_claim *cb = NULL;
	double end = ev_time() + WAIT_MAX;
	while (!(cb = mgrok_claim_take(r, "k3", "node-a", on_status, &b)) && ev_time() < end)
		run_for(0.05);
	ck_assert_msg(cb != NULL, "no reconnection to redis-server");
	run_until_count(&b.count, 1);
	ck_assert_int_eq(b.last, MGROK_CLAIM_OK);
	char *v = NULL;
	end = ev_time() + WAIT_MAX;
	while (!(v = get("k2")) && ev_time() < end)
		run_for(0.05);
	ck_assert_msg(v && strcmp(v, "node-a") == 0, "the held claim was not written again");
	free(v);
	ck_assert_int_eq(a.count, 1);
	mgrok_claim_release(ca);
	mgrok_claim_release(cb);
	mgrok_claims_free(r);
}
END_TEST

/* The same OWNER takes a claim over from another holder, who hears it is
 * LOST at its next refresh; another OWNER, or none, does not. */
START_TEST(test_takeover)
{
	struct mgrok_claims *r = claims_connected(0.6);
	struct seen a = {0}, b = {0}, c = {0}, d = {0};
	struct mgrok_claim *ca = mgrok_claim_take(r, "k5", "c1|node-a", on_status, &a);
	run_until_count(&a.count, 1);
	ck_assert_int_eq(a.last, MGROK_CLAIM_OK);
	struct mgrok_claim *cc = mgrok_claim_take(r, "k5", "c2|node-c", on_status, &c);
	struct mgrok_claim *cd = mgrok_claim_take(r, "k5", "c|node-d", on_status, &d);
	run_until_count(&d.count, 1);
	ck_assert_int_eq(c.last, MGROK_CLAIM_TAKEN);
	ck_assert_int_eq(d.last, MGROK_CLAIM_TAKEN); /* "c|" is no prefix of "c1|" */
	struct mgrok_claim *cb = mgrok_claim_take(r, "k5", "c1|node-b", on_status, &b);
	run_until_count(&b.count, 1);
	ck_assert_int_eq(b.last, MGROK_CLAIM_OK);
	run_until_count(&a.count, 2);
	ck_assert_int_eq(a.last, MGROK_CLAIM_LOST);
	mgrok_claim_release(ca); /* not a's to delete any more */
	run_for(0.3);
	char *v = get("k5");
	ck_assert_msg(v && strcmp(v, "c1|node-b") == 0, "k5 is %s", v ? v : "gone");
	free(v);
	mgrok_claim_release(cb);
	mgrok_claim_release(cc);
	mgrok_claim_release(cd);
	mgrok_claims_free(r);
}
END_TEST

/* Released before the answer came: given back when it comes. */
START_TEST(test_release_while_asking)
{
	struct mgrok_claims *r = claims_connected(5.0);
	struct seen a = {0};
	struct mgrok_claim *ca = mgrok_claim_take(r, "k4", "node-a", on_status, &a);
	ck_assert_ptr_nonnull(ca);
	mgrok_claim_release(ca);
	char *v = NULL;
	double end = ev_time() + 1.0;
	bool seen_set = false;
	while (ev_time() < end) {
		run_for(0.02);
		v = get("k4");
		seen_set |= v != NULL;
		free(v);
		if (seen_set && !v)
			break;
	}
	ck_assert_ptr_null(get("k4"));
	ck_assert_int_eq(a.count, 0);
	mgrok_claims_free(r);
}
END_TEST

struct listing {
	int calls;
	size_t n;
	char seen[4][64];
};

static void on_listing(void *arg, size_t n, const char *const *keys, const char *const *values)
{
	struct listing *l = arg;
	l->calls++;
	l->n = n;
	for (size_t i = 0; i < n && i < 4; i++)
		snprintf(l->seen[i], sizeof(l->seen[i]), "%s=%s", keys[i], values[i]);
}

/* The nodes' keys, listed with their values; nothing else; no answer
 * while Redis is away. */
START_TEST(test_list)
{
	struct mgrok_claims *r = claims_connected(5.0);
	ck_assert(mgrok_claims_connected(r));
	struct seen a = {0}, b = {0}, c = {0};
	struct mgrok_claim *ca =
	        mgrok_claim_take(r, "mgrok:node:a", "a|10.0.0.1:7000", on_status, &a);
	struct mgrok_claim *cb =
	        mgrok_claim_take(r, "mgrok:node:b", "b|10.0.0.2:7000", on_status, &b);
	struct mgrok_claim *cc = mgrok_claim_take(r, "mgrok:claim:tcp/1", "x|y", on_status, &c);
	run_until_count(&c.count, 1);
	struct listing l = {0};
	mgrok_claims_list(r, "mgrok:node:", on_listing, &l);
	run_until_count(&l.calls, 1);
	ck_assert_int_eq(l.calls, 1);
	ck_assert_uint_eq(l.n, 2);
	bool one = !strcmp(l.seen[0], "mgrok:node:a=a|10.0.0.1:7000") &&
	           !strcmp(l.seen[1], "mgrok:node:b=b|10.0.0.2:7000");
	bool other = !strcmp(l.seen[1], "mgrok:node:a=a|10.0.0.1:7000") &&
	             !strcmp(l.seen[0], "mgrok:node:b=b|10.0.0.2:7000");
	ck_assert_msg(one || other, "listed %s, %s", l.seen[0], l.seen[1]);
	redis_stop();
	run_for(0.2);
	ck_assert(!mgrok_claims_connected(r));
	struct listing none = {0};
	mgrok_claims_list(r, "mgrok:node:", on_listing, &none);
	run_for(0.2);
	ck_assert_int_eq(none.calls, 0);
	mgrok_claim_release(ca);
	mgrok_claim_release(cb);
	mgrok_claim_release(cc);
	mgrok_claims_free(r);
	redis_start(); /* for the teardown */
}
END_TEST

START_TEST(test_bad_address)
{
	char err[256];
	ck_assert_ptr_null(mgrok_claims_new(loop, "no-port-here", 1.0, err, sizeof(err)));
	ck_assert_ptr_null(mgrok_claims_new(loop, addr, 0.01, err, sizeof(err)));
	ck_assert_ptr_nonnull(strstr(err, "lease"));
}
END_TEST

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	Suite *s = suite_create("claims");
	TCase *tc = tcase_create("claims");
	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_take_taken_release);
	tcase_add_test(tc, test_refresh_and_lost);
	tcase_add_test(tc, test_unreachable);
	tcase_add_test(tc, test_takeover);
	tcase_add_test(tc, test_release_while_asking);
	tcase_add_test(tc, test_bad_address);
	tcase_add_test(tc, test_list);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
