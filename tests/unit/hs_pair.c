#include "hs_pair.h"

#include <check.h>

const struct mgrok_auth_method *hs_offer_find(void *arg, uint8_t id)
{
	const struct hs_offer *o = arg;
	for (size_t i = 0; i < o->n; i++)
		if (o->m[i]->id == id)
			return o->m[i];
	return NULL;
}

static void deliver(struct mgrok_buf *wire, struct mgrok_buf *inbox, bool bytewise)
{
	size_t n = bytewise ? 1 : wire->len;
	mgrok_buf_append(inbox, mgrok_buf_head(wire), n);
	mgrok_buf_consume(wire, n);
}

void hs_pair_run(struct hs_pair *x)
{
	mgrok_hs_server_init(&x->s.hs);
	x->s.rc = MGROK_HS_MORE;
	x->c.rc = mgrok_hs_client_start(&x->c.hs, x->cm, &x->c2s);

	for (int guard = 0; guard < 100000; guard++) {
		bool moved = false;
		size_t used;

		if (x->s.rc == MGROK_HS_MORE && x->c2s.len) {
			deliver(&x->c2s, &x->s.inbox, x->bytewise);
			x->s.rc = mgrok_hs_server_feed(&x->s.hs, mgrok_buf_head(&x->s.inbox),
			                               x->s.inbox.len, &used, &x->s2c,
			                               hs_offer_find, &x->offer);
			ck_assert_uint_le(used, x->s.inbox.len);
			mgrok_buf_consume(&x->s.inbox, used);
			if (x->s.rc == MGROK_HS_DONE && x->tamper_ok)
				mgrok_buf_tail(&x->s2c)[-1] ^= 0x01;
			moved = true;
		}
		if (x->c.rc == MGROK_HS_MORE && x->s2c.len) {
			deliver(&x->s2c, &x->c.inbox, x->bytewise);
			x->c.rc = mgrok_hs_client_feed(&x->c.hs, mgrok_buf_head(&x->c.inbox),
			                               x->c.inbox.len, &used, &x->c2s);
			ck_assert_uint_le(used, x->c.inbox.len);
			mgrok_buf_consume(&x->c.inbox, used);
			moved = true;
		}
		if (!moved)
			break;
	}
}

void hs_pair_assert_drained(const struct hs_pair *x)
{
	ck_assert_uint_eq(x->c2s.len, 0);
	ck_assert_uint_eq(x->s2c.len, 0);
	ck_assert_uint_eq(x->s.inbox.len, 0);
	ck_assert_uint_eq(x->c.inbox.len, 0);
	ck_assert(x->s.hs.finished);
	ck_assert(x->c.hs.finished);
}

void hs_pair_free(struct hs_pair *x)
{
	mgrok_hs_end(&x->s.hs);
	mgrok_hs_end(&x->c.hs);
	mgrok_buf_free(&x->s.inbox);
	mgrok_buf_free(&x->c.inbox);
	mgrok_buf_free(&x->c2s);
	mgrok_buf_free(&x->s2c);
}
