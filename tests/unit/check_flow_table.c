/*
 * Check suite "flow_table": plugins/udp/flow_table.c, the udp plugin's table
 * of visitor flows (doc/protocol.md 5), without sockets. The table is compiled
 * into this test; flows are the test's own objects, the bucket array comes
 * from a counting allocator so that every test can check it was freed.
 */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "flow_table.h"

#define MODEL_POOL 300 /* distinct visitor addresses in the model test */
#define MODEL_MAX 128  /* its bound: small enough to be reached often */
#define MODEL_OPS 20000
#define MANY 3000 /* flows sharing an address, or a port */
#define BIG 65536 /* the largest max_flows the plugin accepts */

/* ---- a counting allocator ------------------------------------------------- */

static size_t live_allocs, total_allocs, live_bytes;
static bool alloc_fails;

/* A header in front of each block keeps its size, to check frees exactly. */
union header {
	size_t len;
	max_align_t align;
};

static void *counting_alloc(size_t len)
{
	if (alloc_fails)
		return NULL;
	union header *h = malloc(sizeof(*h) + len);
	ck_assert_ptr_nonnull(h);
	h->len = len;
	live_allocs++;
	total_allocs++;
	live_bytes += len;
	return h + 1;
}

static void counting_free(void *p)
{
	ck_assert_msg(p != NULL, "the table freed NULL");
	union header *h = (union header *)p - 1;
	ck_assert_uint_gt(live_allocs, 0);
	ck_assert_uint_ge(live_bytes, h->len);
	live_allocs--;
	live_bytes -= h->len;
	free(h);
}

/*
 * For the hot loops: Check records a checkpoint on every passing ck_assert
 * (a write to its message file), which makes millions of them slow.
 */
#define REQUIRE(cond, fmt, ...)                                                                    \
	do {                                                                                       \
		if (!(cond))                                                                       \
			ck_abort_msg("'%s' failed: " fmt, #cond, __VA_ARGS__);                     \
	} while (0)

static void table_init(struct udp_flow_table *t, size_t max)
{
	ck_assert_int_eq(udp_flow_table_init(t, max, counting_alloc, counting_free), 0);
}

/* Frees the table and checks that it gave back all it took. */
static void table_free(struct udp_flow_table *t)
{
	udp_flow_table_free(t);
	ck_assert_uint_eq(live_allocs, 0);
	ck_assert_uint_eq(live_bytes, 0);
}

/* ---- flows and addresses -------------------------------------------------- */

struct tflow {
	struct udp_flow_entry e;
	int id;
};

#define FLOW(entry) ((struct tflow *)((char *)(entry)-offsetof(struct tflow, e)))

static int id_of(const struct udp_flow_entry *e) { return e ? FLOW(e)->id : -1; }

/*
 * Addresses are built on top of garbage: everything but family, address and
 * port is filled with the byte junk, as a kernel or a caller might leave it.
 */
static socklen_t make_v4(struct sockaddr_storage *ss, uint32_t addr, uint16_t port,
                         unsigned char junk)
{
	memset(ss, junk, sizeof(*ss));
	struct sockaddr_in *in = (struct sockaddr_in *)ss;
	in->sin_family = AF_INET;
	in->sin_port = htons(port);
	in->sin_addr.s_addr = htonl(addr);
	return sizeof(*in);
}

static socklen_t make_v6(struct sockaddr_storage *ss, uint32_t hi, uint32_t lo, uint16_t port,
                         uint32_t flowinfo, uint32_t scope, unsigned char junk)
{
	memset(ss, junk, sizeof(*ss));
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
	in6->sin6_family = AF_INET6;
	in6->sin6_port = htons(port);
	in6->sin6_flowinfo = htonl(flowinfo);
	in6->sin6_scope_id = scope;
	memset(&in6->sin6_addr, 0, sizeof(in6->sin6_addr));
	in6->sin6_addr.s6_addr[0] = 0x20; /* 2001:db8::/32, documentation */
	in6->sin6_addr.s6_addr[1] = 0x01;
	in6->sin6_addr.s6_addr[2] = 0x0d;
	in6->sin6_addr.s6_addr[3] = 0xb8;
	uint32_t h = htonl(hi), l = htonl(lo);
	memcpy(&in6->sin6_addr.s6_addr[8], &h, 4);
	memcpy(&in6->sin6_addr.s6_addr[12], &l, 4);
	return sizeof(*in6);
}

static void flow_v4(struct tflow *f, int id, uint32_t addr, uint16_t port)
{
	memset(f, 0, sizeof(*f));
	f->id = id;
	f->e.addr_len = make_v4(&f->e.addr, addr, port, 0);
}

static void flow_v6(struct tflow *f, int id, uint32_t hi, uint32_t lo, uint16_t port)
{
	memset(f, 0, sizeof(*f));
	f->id = id;
	f->e.addr_len = make_v6(&f->e.addr, hi, lo, port, 0, 0, 0);
}

static struct udp_flow_entry *lookup_v4(const struct udp_flow_table *t, uint32_t addr,
                                        uint16_t port, unsigned char junk)
{
	struct sockaddr_storage ss;
	socklen_t len = make_v4(&ss, addr, port, junk);
	return udp_flow_lookup(t, (struct sockaddr *)&ss, len);
}

static struct udp_flow_entry *lookup_v6(const struct udp_flow_table *t, uint32_t hi, uint32_t lo,
                                        uint16_t port, uint32_t flowinfo, uint32_t scope,
                                        unsigned char junk)
{
	struct sockaddr_storage ss;
	socklen_t len = make_v6(&ss, hi, lo, port, flowinfo, scope, junk);
	return udp_flow_lookup(t, (struct sockaddr *)&ss, len);
}

/* The entry's own address, copied onto different garbage first. */
static struct udp_flow_entry *lookup_same(const struct udp_flow_table *t,
                                          const struct udp_flow_entry *e, unsigned char junk)
{
	struct sockaddr_storage ss;
	memset(&ss, junk, sizeof(ss));
	if (e->addr.ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)&e->addr;
		struct sockaddr_in *out = (struct sockaddr_in *)&ss;
		out->sin_family = AF_INET;
		out->sin_port = in->sin_port;
		out->sin_addr = in->sin_addr;
	} else {
		const struct sockaddr_in6 *in = (const struct sockaddr_in6 *)&e->addr;
		struct sockaddr_in6 *out = (struct sockaddr_in6 *)&ss;
		out->sin6_family = AF_INET6;
		out->sin6_port = in->sin6_port;
		out->sin6_addr = in->sin6_addr;
	}
	return udp_flow_lookup(t, (struct sockaddr *)&ss, e->addr_len);
}

/*
 * Walks the LRU list both ways and checks its links, the count, and, when
 * expected is not NULL, the order (ids, oldest first).
 */
static void check_lru(const struct udp_flow_table *t, const int *expected, size_t n)
{
	if (expected)
		ck_assert_uint_eq(t->count, n);
	size_t count = 0;
	const struct udp_flow_entry *prev = NULL;
	for (const struct udp_flow_entry *e = t->oldest; e; e = e->newer) {
		REQUIRE(count < t->count, "oldest-to-newest walk longer than count %zu", t->count);
		REQUIRE(e->older == prev, "LRU[%zu]: bad older link", count);
		REQUIRE(e->in_table, "LRU[%zu] not in_table", count);
		if (expected)
			REQUIRE(FLOW(e)->id == expected[count], "LRU[%zu] is %d, expected %d",
			        count, FLOW(e)->id, expected[count]);
		if (prev)
			REQUIRE(prev->last_active <= e->last_active, "LRU[%zu] older than LRU[%zu]",
			        count, count - 1);
		prev = e;
		count++;
	}
	ck_assert_ptr_eq(prev, t->newest);
	ck_assert_uint_eq(count, t->count);

	count = 0;
	prev = NULL;
	for (const struct udp_flow_entry *e = t->newest; e; e = e->older) {
		REQUIRE(count < t->count, "newest-to-oldest walk longer than count %zu", t->count);
		REQUIRE(e->newer == prev, "LRU[-%zu]: bad newer link", count);
		if (expected)
			REQUIRE(FLOW(e)->id == expected[t->count - 1 - count], "LRU[-%zu] is %d",
			        count, FLOW(e)->id);
		prev = e;
		count++;
	}
	ck_assert_ptr_eq(prev, t->oldest);
	ck_assert_uint_eq(count, t->count);

	/* The buckets hold exactly the flows of the list. */
	size_t in_buckets = 0;
	for (size_t i = 0; i < t->nbuckets; i++)
		for (const struct udp_flow_entry *e = t->buckets[i]; e; e = e->hnext) {
			REQUIRE(e->in_table, "a removed flow is still in bucket %zu", i);
			REQUIRE(in_buckets < t->count, "more flows in the buckets than count %zu",
			        t->count);
			in_buckets++;
		}
	ck_assert_uint_eq(in_buckets, t->count);
	ck_assert_ptr_eq(udp_flow_oldest(t), t->oldest);
	ck_assert(udp_flow_full(t) == (t->count >= t->max));
}

/* ---- init ----------------------------------------------------------------- */

static void check_empty(const struct udp_flow_table *t, size_t max)
{
	ck_assert_uint_eq(t->count, 0);
	ck_assert_uint_eq(t->max, max);
	ck_assert_ptr_null(t->oldest);
	ck_assert_ptr_null(t->newest);
	ck_assert_ptr_nonnull(t->buckets);
	/* A power of two, at least the bound: chains stay short when full. */
	ck_assert_uint_ge(t->nbuckets, max);
	ck_assert_uint_eq(t->nbuckets & (t->nbuckets - 1), 0);
	for (size_t i = 0; i < t->nbuckets; i++)
		REQUIRE(t->buckets[i] == NULL, "bucket %zu not empty", i);
	ck_assert(!udp_flow_full(t));
	ck_assert_ptr_null(udp_flow_oldest(t));
	ck_assert_ptr_null(udp_flow_expired(t, 1e9, 0));
	ck_assert_ptr_null(lookup_v4(t, 0x7f000001, 80, 0));
	check_lru(t, NULL, 0);
	ck_assert_uint_eq(live_allocs, 1);
	ck_assert_uint_ge(live_bytes, t->nbuckets * sizeof(*t->buckets));
}

START_TEST(test_init_max_1)
{
	struct udp_flow_table t;
	memset(&t, 0xa5, sizeof(t)); /* init must not rely on a zeroed struct */
	table_init(&t, 1);
	check_empty(&t, 1);

	struct tflow a, b;
	flow_v4(&a, 1, 0x0a000001, 1000);
	udp_flow_insert(&t, &a.e, 1.0);
	ck_assert(udp_flow_full(&t));
	ck_assert_ptr_eq(udp_flow_lookup(&t, (struct sockaddr *)&a.e.addr, a.e.addr_len), &a.e);
	int one[] = {1};
	check_lru(&t, one, 1);

	/* What the plugin does at the bound: the oldest makes room. */
	udp_flow_remove(&t, udp_flow_oldest(&t));
	ck_assert(!udp_flow_full(&t));
	flow_v4(&b, 2, 0x0a000001, 1001);
	udp_flow_insert(&t, &b.e, 2.0);
	int two[] = {2};
	check_lru(&t, two, 1);
	ck_assert_ptr_null(lookup_v4(&t, 0x0a000001, 1000, 0));
	ck_assert_ptr_eq(lookup_v4(&t, 0x0a000001, 1001, 0), &b.e);

	table_free(&t);
	ck_assert_ptr_null(t.buckets);
	ck_assert_uint_eq(t.count, 0);
	ck_assert_ptr_null(t.oldest);
	ck_assert_ptr_null(t.newest);
}
END_TEST

START_TEST(test_init_max_65536)
{
	struct udp_flow_table t;
	table_init(&t, BIG);
	check_empty(&t, BIG);
	table_free(&t);

	/* Not a power of two: rounded up. */
	table_init(&t, 1000);
	check_empty(&t, 1000);
	ck_assert_uint_ge(t.nbuckets, 1024);
	table_free(&t);
}
END_TEST

START_TEST(test_init_alloc_fails)
{
	struct udp_flow_table t;
	total_allocs = 0;
	alloc_fails = true;
	ck_assert_int_eq(udp_flow_table_init(&t, 16, counting_alloc, counting_free), -1);
	alloc_fails = false;
	ck_assert_uint_eq(live_allocs, 0);
	ck_assert_uint_eq(total_allocs, 0);
}
END_TEST

/* ---- lookup --------------------------------------------------------------- */

START_TEST(test_lookup_v4)
{
	struct udp_flow_table t;
	table_init(&t, 16);
	struct tflow f[4];
	flow_v4(&f[0], 0, 0x0a000001, 1000);
	flow_v4(&f[1], 1, 0x0a000001, 1001); /* same address, next port */
	flow_v4(&f[2], 2, 0x0a000002, 1000); /* next address, same port */
	flow_v4(&f[3], 3, 0xc0a80001, 53);
	/* Padding in the stored address must not matter either. */
	memset(((struct sockaddr_in *)&f[3].e.addr)->sin_zero, 0x5a, 8);
	for (int i = 0; i < 4; i++)
		udp_flow_insert(&t, &f[i].e, i);
	check_lru(&t, (int[]){0, 1, 2, 3}, 4);

	static const unsigned char junks[] = {0x00, 0xff, 0x5a, 0x01};
	for (size_t j = 0; j < sizeof(junks); j++) {
		ck_assert_int_eq(id_of(lookup_v4(&t, 0x0a000001, 1000, junks[j])), 0);
		ck_assert_int_eq(id_of(lookup_v4(&t, 0x0a000001, 1001, junks[j])), 1);
		ck_assert_int_eq(id_of(lookup_v4(&t, 0x0a000002, 1000, junks[j])), 2);
		ck_assert_int_eq(id_of(lookup_v4(&t, 0xc0a80001, 53, junks[j])), 3);
		for (int i = 0; i < 4; i++)
			ck_assert_ptr_eq(lookup_same(&t, &f[i].e, junks[j]), &f[i].e);
	}
	/* A length of the whole storage is accepted as well (recvfrom's len is in-out). */
	struct sockaddr_storage ss;
	make_v4(&ss, 0x0a000002, 1000, 0x77);
	ck_assert_ptr_eq(udp_flow_lookup(&t, (struct sockaddr *)&ss, sizeof(ss)), &f[2].e);

	/* Unknown: other port, other address, byte-swapped port, port 0. */
	ck_assert_ptr_null(lookup_v4(&t, 0x0a000001, 1002, 0));
	ck_assert_ptr_null(lookup_v4(&t, 0x0a000003, 1000, 0));
	ck_assert_ptr_null(lookup_v4(&t, 0x0a000001, 0xe803, 0)); /* 1000 byte-swapped */
	ck_assert_ptr_null(lookup_v4(&t, 0x0a000001, 0, 0));
	ck_assert_ptr_null(lookup_v4(&t, 0x0100000a, 1000, 0)); /* address byte-swapped */
	ck_assert_ptr_null(lookup_v4(&t, 0, 0, 0));
	/* Lookups change nothing. */
	check_lru(&t, (int[]){0, 1, 2, 3}, 4);
	table_free(&t);
}
END_TEST

START_TEST(test_lookup_v6)
{
	struct udp_flow_table t;
	table_init(&t, 16);
	struct tflow f[4];
	flow_v6(&f[0], 0, 0, 1, 1000);
	flow_v6(&f[1], 1, 0, 1, 1001);
	flow_v6(&f[2], 2, 0, 2, 1000);
	flow_v6(&f[3], 3, 0x12345678, 1, 1000); /* differs in the upper half only */
	/* Stored with a flow label and a scope: they must not matter. */
	((struct sockaddr_in6 *)&f[3].e.addr)->sin6_flowinfo = htonl(0xabcde);
	((struct sockaddr_in6 *)&f[3].e.addr)->sin6_scope_id = 7;
	for (int i = 0; i < 4; i++)
		udp_flow_insert(&t, &f[i].e, i);

	static const unsigned char junks[] = {0x00, 0xff, 0x33};
	for (size_t j = 0; j < sizeof(junks); j++) {
		ck_assert_int_eq(id_of(lookup_v6(&t, 0, 1, 1000, 0, 0, junks[j])), 0);
		ck_assert_int_eq(id_of(lookup_v6(&t, 0, 1, 1000, 0x12345, 3, junks[j])), 0);
		ck_assert_int_eq(id_of(lookup_v6(&t, 0, 1, 1001, 1, 1, junks[j])), 1);
		ck_assert_int_eq(id_of(lookup_v6(&t, 0, 2, 1000, 0, 0, junks[j])), 2);
		ck_assert_int_eq(id_of(lookup_v6(&t, 0x12345678, 1, 1000, 0, 0, junks[j])), 3);
		ck_assert_int_eq(id_of(lookup_v6(&t, 0x12345678, 1, 1000, 0xfffff, 99, junks[j])),
		                 3);
		for (int i = 0; i < 4; i++)
			ck_assert_ptr_eq(lookup_same(&t, &f[i].e, junks[j]), &f[i].e);
	}
	ck_assert_ptr_null(lookup_v6(&t, 0, 1, 1002, 0, 0, 0));
	ck_assert_ptr_null(lookup_v6(&t, 0, 3, 1000, 0, 0, 0));
	ck_assert_ptr_null(lookup_v6(&t, 1, 1, 1000, 0, 0, 0));
	check_lru(&t, (int[]){0, 1, 2, 3}, 4);
	table_free(&t);
}
END_TEST

/* An IPv4 visitor and the same IPv4 address mapped into IPv6 are two flows. */
START_TEST(test_lookup_families_apart)
{
	struct udp_flow_table t;
	table_init(&t, 16);
	struct tflow v4, mapped;
	flow_v4(&v4, 4, 0x0a000001, 1000);
	memset(&mapped, 0, sizeof(mapped));
	mapped.id = 6;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&mapped.e.addr;
	in6->sin6_family = AF_INET6;
	in6->sin6_port = htons(1000);
	ck_assert_int_eq(inet_pton(AF_INET6, "::ffff:10.0.0.1", &in6->sin6_addr), 1);
	mapped.e.addr_len = sizeof(*in6);

	udp_flow_insert(&t, &v4.e, 1);
	struct sockaddr_storage ss = mapped.e.addr;
	ck_assert_ptr_null(udp_flow_lookup(&t, (struct sockaddr *)&ss, sizeof(*in6)));
	udp_flow_insert(&t, &mapped.e, 2);
	ck_assert_ptr_eq(udp_flow_lookup(&t, (struct sockaddr *)&ss, sizeof(*in6)), &mapped.e);
	ck_assert_int_eq(id_of(lookup_v4(&t, 0x0a000001, 1000, 0xee)), 4);
	udp_flow_remove(&t, &v4.e);
	ck_assert_ptr_null(lookup_v4(&t, 0x0a000001, 1000, 0));
	ck_assert_ptr_eq(udp_flow_lookup(&t, (struct sockaddr *)&ss, sizeof(*in6)), &mapped.e);
	check_lru(&t, (int[]){6}, 1);
	table_free(&t);
}
END_TEST

START_TEST(test_lookup_other_family)
{
	struct udp_flow_table t;
	table_init(&t, 16);
	struct tflow f;
	flow_v4(&f, 1, 0x7f000001, 9);
	udp_flow_insert(&t, &f.e, 0);

	/* The same bytes as the flow's address, but not an INET family. */
	static const sa_family_t others[] = {AF_UNSPEC, AF_UNIX, AF_PACKET, AF_NETLINK, 255};
	for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
		struct sockaddr_storage ss = f.e.addr;
		ss.ss_family = others[i];
		ck_assert_msg(udp_flow_lookup(&t, (struct sockaddr *)&ss, f.e.addr_len) == NULL,
		              "family %d found a flow", others[i]);
	}
	struct sockaddr_un un;
	memset(&un, 0, sizeof(un));
	un.sun_family = AF_UNIX;
	snprintf(un.sun_path, sizeof(un.sun_path), "/tmp/visitor");
	ck_assert_ptr_null(udp_flow_lookup(&t, (struct sockaddr *)&un, sizeof(un)));
	/* A bare struct sockaddr, shorter than an IPv6 one: not read past its end. */
	struct sockaddr *bare = malloc(sizeof(struct sockaddr));
	ck_assert_ptr_nonnull(bare);
	memset(bare, 0, sizeof(*bare));
	bare->sa_family = AF_UNSPEC;
	ck_assert_ptr_null(udp_flow_lookup(&t, bare, sizeof(*bare)));
	free(bare);
	ck_assert_ptr_eq(lookup_same(&t, &f.e, 0), &f.e);
	table_free(&t);
}
END_TEST

/* ---- remove --------------------------------------------------------------- */

START_TEST(test_remove)
{
	struct udp_flow_table t;
	table_init(&t, 8);
	struct tflow a, b;
	flow_v4(&a, 1, 0x0a000001, 1000);
	flow_v6(&b, 2, 0, 1, 1000);
	ck_assert(!a.e.in_table);
	udp_flow_insert(&t, &a.e, 1);
	udp_flow_insert(&t, &b.e, 2);
	ck_assert(a.e.in_table);
	ck_assert(b.e.in_table);
	ck_assert_uint_eq(t.count, 2);

	udp_flow_remove(&t, &a.e);
	ck_assert(!a.e.in_table);
	ck_assert_uint_eq(t.count, 1);
	ck_assert_ptr_null(lookup_same(&t, &a.e, 0));
	ck_assert_ptr_eq(lookup_same(&t, &b.e, 0), &b.e);
	check_lru(&t, (int[]){2}, 1);

	/* Twice is harmless: nothing else changes. */
	udp_flow_remove(&t, &a.e);
	ck_assert(!a.e.in_table);
	ck_assert_uint_eq(t.count, 1);
	ck_assert_ptr_eq(t.oldest, &b.e);
	ck_assert_ptr_eq(t.newest, &b.e);
	check_lru(&t, (int[]){2}, 1);

	/* A removed flow can come back, as the newest. */
	udp_flow_insert(&t, &a.e, 3);
	ck_assert(a.e.in_table);
	check_lru(&t, (int[]){2, 1}, 2);
	ck_assert_ptr_eq(lookup_same(&t, &a.e, 0xff), &a.e);

	udp_flow_remove(&t, &a.e);
	udp_flow_remove(&t, &b.e);
	udp_flow_remove(&t, &b.e);
	ck_assert_uint_eq(t.count, 0);
	ck_assert_ptr_null(t.oldest);
	ck_assert_ptr_null(t.newest);
	check_lru(&t, NULL, 0);
	ck_assert_ptr_null(lookup_same(&t, &b.e, 0));

	/* Never inserted: harmless too. */
	struct tflow c;
	flow_v4(&c, 3, 0x0a000009, 9);
	udp_flow_remove(&t, &c.e);
	ck_assert_uint_eq(t.count, 0);
	table_free(&t);
}
END_TEST

/* ---- LRU order ------------------------------------------------------------ */

START_TEST(test_lru_touch)
{
	struct udp_flow_table t;
	table_init(&t, 8);
	struct tflow f[5];
	for (int i = 0; i < 5; i++) {
		flow_v4(&f[i], i, 0x0a000000 + (uint32_t)i, 1000);
		udp_flow_insert(&t, &f[i].e, 10.0 * i);
		ck_assert_double_eq(f[i].e.last_active, 10.0 * i);
	}
	check_lru(&t, (int[]){0, 1, 2, 3, 4}, 5);
	ck_assert_ptr_eq(udp_flow_oldest(&t), &f[0].e);

	udp_flow_touch(&t, &f[0].e, 50);
	ck_assert_double_eq(f[0].e.last_active, 50);
	check_lru(&t, (int[]){1, 2, 3, 4, 0}, 5);
	ck_assert_ptr_eq(udp_flow_oldest(&t), &f[1].e);

	/* The newest touched stays newest, with the new time. */
	udp_flow_touch(&t, &f[0].e, 55);
	ck_assert_double_eq(f[0].e.last_active, 55);
	check_lru(&t, (int[]){1, 2, 3, 4, 0}, 5);

	udp_flow_touch(&t, &f[3].e, 60); /* the middle */
	check_lru(&t, (int[]){1, 2, 4, 0, 3}, 5);
	udp_flow_touch(&t, &f[1].e, 70); /* the oldest */
	check_lru(&t, (int[]){2, 4, 0, 3, 1}, 5);

	/* Remove the oldest, the newest, a middle one, then the rest. */
	udp_flow_remove(&t, &f[2].e);
	check_lru(&t, (int[]){4, 0, 3, 1}, 4);
	udp_flow_remove(&t, &f[1].e);
	check_lru(&t, (int[]){4, 0, 3}, 3);
	udp_flow_remove(&t, &f[0].e);
	check_lru(&t, (int[]){4, 3}, 2);
	/* Inserting after removals links at the newest end. */
	udp_flow_insert(&t, &f[2].e, 80);
	check_lru(&t, (int[]){4, 3, 2}, 3);
	udp_flow_touch(&t, &f[4].e, 90);
	check_lru(&t, (int[]){3, 2, 4}, 3);
	udp_flow_remove(&t, &f[2].e);
	check_lru(&t, (int[]){3, 4}, 2);
	udp_flow_remove(&t, &f[4].e);
	check_lru(&t, (int[]){3}, 1);
	udp_flow_touch(&t, &f[3].e, 100); /* the only one */
	check_lru(&t, (int[]){3}, 1);
	udp_flow_remove(&t, &f[3].e);
	check_lru(&t, NULL, 0);
	ck_assert_ptr_null(t.oldest);
	ck_assert_ptr_null(t.newest);
	table_free(&t);
}
END_TEST

START_TEST(test_full)
{
	struct udp_flow_table t;
	table_init(&t, 3);
	struct tflow f[4];
	for (int i = 0; i < 3; i++) {
		ck_assert(!udp_flow_full(&t));
		flow_v4(&f[i], i, 0x0a000001, (uint16_t)(2000 + i));
		udp_flow_insert(&t, &f[i].e, i);
	}
	ck_assert(udp_flow_full(&t));
	ck_assert_uint_eq(t.count, 3);
	udp_flow_touch(&t, &f[1].e, 5); /* touching does not change fullness */
	ck_assert(udp_flow_full(&t));
	udp_flow_remove(&t, &f[1].e);
	ck_assert(!udp_flow_full(&t));
	flow_v4(&f[3], 3, 0x0a000001, 2003);
	udp_flow_insert(&t, &f[3].e, 6);
	ck_assert(udp_flow_full(&t));
	check_lru(&t, (int[]){0, 2, 3}, 3);
	table_free(&t);
}
END_TEST

/* ---- expiry --------------------------------------------------------------- */

START_TEST(test_expired)
{
	struct udp_flow_table t;
	table_init(&t, 16);
	ck_assert_ptr_null(udp_flow_expired(&t, 100, 1)); /* empty */

	struct tflow f[6];
	static const double at[] = {0, 10, 20, 30, 40, 50}; /* insertion times */
	for (int i = 0; i < 6; i++) {
		flow_v4(&f[i], i, 0x0a000001 + (uint32_t)i, 53);
		udp_flow_insert(&t, &f[i].e, at[i]);
	}
	/* Only the oldest is ever answered, and only once idle long enough. */
	ck_assert_ptr_null(udp_flow_expired(&t, 14.5, 15));
	ck_assert_ptr_eq(udp_flow_expired(&t, 15, 15), &f[0].e); /* exactly idle: expired */
	ck_assert_ptr_eq(udp_flow_expired(&t, 1000, 15), &f[0].e);
	ck_assert_ptr_null(udp_flow_expired(&t, 0, 0.5));
	ck_assert_ptr_eq(udp_flow_expired(&t, 0, 0), &f[0].e);
	/* Asking changes nothing. */
	check_lru(&t, (int[]){0, 1, 2, 3, 4, 5}, 6);

	/* Touched, the oldest is no longer a candidate: the next one is. */
	udp_flow_touch(&t, &f[0].e, 52);
	ck_assert_ptr_eq(udp_flow_expired(&t, 25, 15), &f[1].e);

	/* Expire at now = 55 with idle = 25: those last active at <= 30 go, oldest first. */
	int gone[6], n = 0;
	struct udp_flow_entry *e;
	while ((e = udp_flow_expired(&t, 55, 25))) {
		ck_assert_int_lt(n, 6);
		ck_assert_double_le(e->last_active, 30);
		gone[n++] = id_of(e);
		udp_flow_remove(&t, e);
		check_lru(&t, NULL, 0);
	}
	ck_assert_int_eq(n, 3);
	ck_assert_int_eq(gone[0], 1);
	ck_assert_int_eq(gone[1], 2);
	ck_assert_int_eq(gone[2], 3);
	check_lru(&t, (int[]){4, 5, 0}, 3);
	for (const struct udp_flow_entry *x = t.oldest; x; x = x->newer)
		ck_assert_double_lt(55 - x->last_active, 25);

	/* Later, everything goes. */
	n = 0;
	while ((e = udp_flow_expired(&t, 1000, 25))) {
		udp_flow_remove(&t, e);
		n++;
	}
	ck_assert_int_eq(n, 3);
	ck_assert_uint_eq(t.count, 0);
	check_lru(&t, NULL, 0);
	table_free(&t);
}
END_TEST

/* ---- collisions ----------------------------------------------------------- */

START_TEST(test_same_address_many_ports)
{
	struct udp_flow_table t;
	table_init(&t, 2 * MANY);
	struct tflow *f = calloc(2 * MANY, sizeof(*f));
	ck_assert_ptr_nonnull(f);
	/* Ports that differ only in their high bits, and consecutive ones. */
	for (int i = 0; i < MANY; i++) {
		uint16_t port = (uint16_t)(i < MANY / 2 ? (i << 5) + 7 : 50000 + i);
		flow_v4(&f[i], i, 0xc0000201, port);
		udp_flow_insert(&t, &f[i].e, 2 * i);
		flow_v6(&f[MANY + i], MANY + i, 0, 0x42, port);
		udp_flow_insert(&t, &f[MANY + i].e, 2 * i + 1);
	}
	ck_assert_uint_eq(t.count, 2 * MANY);
	check_lru(&t, NULL, 0);
	for (int i = 0; i < 2 * MANY; i++)
		REQUIRE(lookup_same(&t, &f[i].e, (unsigned char)i) == &f[i].e, "flow %d", i);

	/* Every other one out: the rest are still there, the others gone. */
	for (int i = 0; i < 2 * MANY; i += 2)
		udp_flow_remove(&t, &f[i].e);
	check_lru(&t, NULL, 0);
	for (int i = 0; i < 2 * MANY; i++)
		REQUIRE(lookup_same(&t, &f[i].e, 0) == (i % 2 ? &f[i].e : NULL), "flow %d", i);
	table_free(&t);
	free(f);
}
END_TEST

START_TEST(test_same_port_many_addresses)
{
	struct udp_flow_table t;
	table_init(&t, 2 * MANY);
	struct tflow *f = calloc(2 * MANY, sizeof(*f));
	ck_assert_ptr_nonnull(f);
	for (int i = 0; i < MANY; i++) {
		/* Addresses that differ in one byte at a time, and in spread-out bits. */
		uint32_t a = i < MANY / 2 ? 0x0a000000u | (uint32_t)i
		                          : 0x0a000000u ^ ((uint32_t)i << 11) ^ (uint32_t)i;
		flow_v4(&f[i], i, a, 443);
		udp_flow_insert(&t, &f[i].e, 2 * i);
		flow_v6(&f[MANY + i], MANY + i, (uint32_t)i << 16, (uint32_t)i * 2654435761u, 443);
		udp_flow_insert(&t, &f[MANY + i].e, 2 * i + 1);
	}
	check_lru(&t, NULL, 0);
	for (int i = 0; i < 2 * MANY; i++)
		REQUIRE(lookup_same(&t, &f[i].e, 0xff) == &f[i].e, "flow %d", i);
	ck_assert_ptr_null(lookup_v4(&t, 0x0a000000u | MANY, 443, 0));
	ck_assert_ptr_null(lookup_v4(&t, 0x0a000001, 444, 0));

	/* Remove from the end of each chain to the start and back. */
	for (int i = 2 * MANY - 1; i >= 0; i -= 3)
		udp_flow_remove(&t, &f[i].e);
	check_lru(&t, NULL, 0);
	for (int i = 0; i < 2 * MANY; i++) {
		bool removed = (2 * MANY - 1 - i) % 3 == 0;
		REQUIRE(lookup_same(&t, &f[i].e, 0) == (removed ? NULL : &f[i].e), "flow %d", i);
	}
	table_free(&t);
	free(f);
}
END_TEST

/* The largest bound, filled: every flow found, then all expire in age order. */
START_TEST(test_fill_65536)
{
	struct udp_flow_table t;
	table_init(&t, BIG);
	struct tflow *f = calloc(BIG, sizeof(*f));
	ck_assert_ptr_nonnull(f);
	for (int i = 0; i < BIG; i++) {
		REQUIRE(!udp_flow_full(&t), "full at %d", i);
		flow_v4(&f[i], i, 0x0a000000u + (uint32_t)(i / 256), (uint16_t)(40000 + i % 256));
		udp_flow_insert(&t, &f[i].e, i);
	}
	ck_assert(udp_flow_full(&t));
	check_lru(&t, NULL, 0);
	for (int i = 0; i < BIG; i++)
		REQUIRE(lookup_same(&t, &f[i].e, 0x11) == &f[i].e, "flow %d", i);
	int next = 0;
	struct udp_flow_entry *e;
	while ((e = udp_flow_expired(&t, BIG + 100.0, 100))) {
		REQUIRE(id_of(e) == next, "expired %d, expected %d", id_of(e), next);
		next++;
		udp_flow_remove(&t, e);
	}
	ck_assert_int_eq(next, BIG);
	ck_assert_uint_eq(t.count, 0);
	check_lru(&t, NULL, 0);
	table_free(&t);
	free(f);
}
END_TEST

/* ---- a randomized model --------------------------------------------------- */

static uint32_t rng_state;
static uint32_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 17;
	rng_state ^= rng_state << 5;
	return rng_state;
}

/* The reference: ids in LRU order (oldest first) and their times. */
struct model {
	int order[MODEL_POOL];
	size_t n;
	double when[MODEL_POOL];
};

static int model_find(const struct model *m, int id)
{
	for (size_t i = 0; i < m->n; i++)
		if (m->order[i] == id)
			return (int)i;
	return -1;
}

static void model_remove_at(struct model *m, size_t i)
{
	memmove(&m->order[i], &m->order[i + 1], (m->n - i - 1) * sizeof(m->order[0]));
	m->n--;
}

static void model_push(struct model *m, int id, double now)
{
	m->order[m->n++] = id;
	m->when[id] = now;
}

static void model_compare(const struct udp_flow_table *t, const struct model *m,
                          const struct tflow *pool)
{
	check_lru(t, m->order, m->n);
	size_t i = 0;
	for (const struct udp_flow_entry *e = t->oldest; e; e = e->newer, i++)
		REQUIRE(e->last_active == m->when[m->order[i]], "LRU[%zu]: time %g, model %g", i,
		        e->last_active, m->when[m->order[i]]);
	for (int id = 0; id < MODEL_POOL; id++) {
		bool in = model_find(m, id) >= 0;
		REQUIRE(pool[id].e.in_table == in, "flow %d", id);
		REQUIRE(lookup_same(t, &pool[id].e, (unsigned char)rng()) ==
		                (in ? &pool[id].e : NULL),
		        "flow %d", id);
	}
}

/*
 * The pool mixes IPv4 and IPv6 visitors that share addresses and ports, so
 * that chains form. The operations are what the plugin does: a datagram from
 * a new visitor (evicting the oldest at the bound), one from a known visitor
 * (touch), an evicted or ended flow (remove), the sweep (expire).
 */
START_TEST(test_model_random)
{
	struct udp_flow_table t;
	table_init(&t, MODEL_MAX);
	static struct tflow pool[MODEL_POOL];
	for (int i = 0; i < MODEL_POOL; i++) {
		if (i % 3 == 2)
			flow_v6(&pool[i], i, (uint32_t)(i % 7), (uint32_t)(i % 11),
			        (uint16_t)(i % 13));
		else
			flow_v4(&pool[i], i, 0x0a000000u + (uint32_t)(i % 17),
			        (uint16_t)(5000 + i % 19));
	}
	/* The pool's addresses are distinct, or the model would be wrong. */
	for (int i = 0; i < MODEL_POOL; i++)
		for (int j = 0; j < i; j++)
			REQUIRE(pool[i].e.addr.ss_family != pool[j].e.addr.ss_family ||
			                memcmp(&pool[i].e.addr, &pool[j].e.addr,
			                       pool[i].e.addr_len) != 0,
			        "pool %d and %d", i, j);

	struct model m = {.n = 0};
	double now = 0;
	size_t inserts = 0, evictions = 0, touches = 0, removes = 0, expiries = 0;
	rng_state = 0x2545f491u;
	for (int op = 0; op < MODEL_OPS; op++) {
		now += (double)(rng() % 4) * 0.015625; /* sometimes the same instant */
		int id = (int)(rng() % MODEL_POOL);
		int at = model_find(&m, id);
		uint32_t what = rng() % 100;
		if (what < 45) {
			/* A datagram from id. */
			struct udp_flow_entry *e = lookup_same(&t, &pool[id].e, (unsigned char)op);
			if (at >= 0) {
				REQUIRE(e == &pool[id].e, "op %d: flow %d not found", op, id);
				udp_flow_touch(&t, e, now);
				model_remove_at(&m, (size_t)at);
				model_push(&m, id, now);
				touches++;
			} else {
				REQUIRE(e == NULL, "op %d: flow %d found", op, id);
				if (udp_flow_full(&t)) {
					REQUIRE(m.n == MODEL_MAX, "op %d: full at %zu", op, m.n);
					REQUIRE(id_of(udp_flow_oldest(&t)) == m.order[0], "op %d",
					        op);
					udp_flow_remove(&t, udp_flow_oldest(&t));
					model_remove_at(&m, 0);
					evictions++;
				}
				udp_flow_insert(&t, &pool[id].e, now);
				model_push(&m, id, now);
				inserts++;
			}
		} else if (what < 65) {
			/* The stream of id ended (a no-op if it has none). */
			udp_flow_remove(&t, &pool[id].e);
			if (at >= 0) {
				model_remove_at(&m, (size_t)at);
				removes++;
			}
		} else if (what < 68) {
			/* The sweep, with a random idle timeout (1 to 25 s). */
			double idle = 1 + (double)(rng() % 96) * 0.25;
			struct udp_flow_entry *e;
			while ((e = udp_flow_expired(&t, now, idle))) {
				REQUIRE(m.n > 0, "op %d", op);
				REQUIRE(id_of(e) == m.order[0], "op %d: expired %d, model %d", op,
				        id_of(e), m.order[0]);
				REQUIRE(now - m.when[m.order[0]] >= idle, "op %d", op);
				udp_flow_remove(&t, e);
				model_remove_at(&m, 0);
				expiries++;
			}
			REQUIRE(m.n == 0 || now - m.when[m.order[0]] < idle, "op %d", op);
		} else {
			/* A lookup only, for an address in or out of the table. */
			struct udp_flow_entry *e =
			        lookup_same(&t, &pool[id].e, (unsigned char)rng());
			REQUIRE(e == (at >= 0 ? &pool[id].e : NULL), "op %d: flow %d", op, id);
		}
		REQUIRE(t.count == m.n, "op %d: count %zu, model %zu", op, t.count, m.n);
		REQUIRE(id_of(udp_flow_oldest(&t)) == (m.n ? m.order[0] : -1), "op %d", op);
		if (op % 97 == 0 || op == MODEL_OPS - 1)
			model_compare(&t, &m, pool);
		else
			check_lru(&t, m.order, m.n);
	}
	if (getenv("MGROK_TEST_VERBOSE"))
		fprintf(stderr,
		        "model: %zu inserts, %zu evictions, %zu touches, %zu removes, "
		        "%zu expiries\n",
		        inserts, evictions, touches, removes, expiries);
	/* Every path was taken, many times. */
	ck_assert_uint_gt(inserts, 1000);
	ck_assert_uint_gt(evictions, 100);
	ck_assert_uint_gt(touches, 1000);
	ck_assert_uint_gt(removes, 1000);
	ck_assert_uint_gt(expiries, 100);
	table_free(&t);
}
END_TEST

/* ---- suite ---------------------------------------------------------------- */

static Suite *flow_table_suite(void)
{
	Suite *s = suite_create("flow_table");
	TCase *tc;

	tc = tcase_create("init");
	tcase_add_test(tc, test_init_max_1);
	tcase_add_test(tc, test_init_max_65536);
	tcase_add_test(tc, test_init_alloc_fails);
	suite_add_tcase(s, tc);

	tc = tcase_create("lookup");
	tcase_add_test(tc, test_lookup_v4);
	tcase_add_test(tc, test_lookup_v6);
	tcase_add_test(tc, test_lookup_families_apart);
	tcase_add_test(tc, test_lookup_other_family);
	tcase_add_test(tc, test_remove);
	suite_add_tcase(s, tc);

	tc = tcase_create("lru");
	tcase_add_test(tc, test_lru_touch);
	tcase_add_test(tc, test_full);
	tcase_add_test(tc, test_expired);
	suite_add_tcase(s, tc);

	tc = tcase_create("scale");
	tcase_add_test(tc, test_same_address_many_ports);
	tcase_add_test(tc, test_same_port_many_addresses);
	tcase_add_test(tc, test_fill_65536);
	tcase_add_test(tc, test_model_random);
	tcase_set_timeout(tc, 60);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(flow_table_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
