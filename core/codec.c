/*
 * GRT1 wire codec (doc/protocol.md 1-3). Every frame type is described once, in
 * the table below, as the list of its fields; the parser and the encoder
 * both walk that list, so what we send is exactly what we accept.
 */
#include "codec.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "handshake.h"

/* The bounds fit the length prefixes that carry them (doc/protocol.md 1, 3). */
_Static_assert(MGROK_NAME_MAX <= UINT8_MAX, "names travel as str8");
_Static_assert(MGROK_IDENTITY_MAX <= MGROK_NAME_MAX, "an identity is logged as a name");
_Static_assert(MGROK_MESSAGE_MAX <= UINT16_MAX && MGROK_INFO_MAX <= UINT16_MAX,
               "messages and info travel as str16");
_Static_assert(MGROK_OPTIONS_MAX <= UINT16_MAX && MGROK_HS_PAYLOAD_MAX <= UINT16_MAX,
               "options and handshake payloads travel as str16");
_Static_assert(MGROK_DATA_MAX == UINT16_MAX, "DATA's length is a u16");
_Static_assert(MGROK_DATA_HEADER == 1 + 4 + 2, "DATA: type, streamID, length");
_Static_assert(MGROK_WINDOW_INITIAL <= MGROK_WINDOW_MAX, "windows start within their bound");

enum field_kind {
	F_END = 0,
	F_U8,
	F_U16,
	F_U32,
	F_SID,   /* uint32 streamID, 0 is the control stream (doc/protocol.md 3.2) */
	F_STR8,  /* struct mgrok_bytes, uint8 length on the wire */
	F_STR16, /* struct mgrok_bytes, uint16 length on the wire */
	F_ADDR,  /* struct mgrok_wire_addr */
};

struct field {
	uint8_t kind;
	bool nonempty; /* strings: length 0 is a protocol error */
	uint16_t max;  /* strings: longest accepted length */
	size_t off;    /* where the value lives in struct mgrok_frame */
	const char *what;
};

#define FROM_CLIENT (1u << MGROK_ROLE_CLIENT)
#define FROM_SERVER (1u << MGROK_ROLE_SERVER)
#define FROM_BOTH (FROM_CLIENT | FROM_SERVER)

struct frame_desc {
	const char *name;
	unsigned from; /* FROM_* bits: who may send it */
	struct field fields[6];
};

#define AT(member) offsetof(struct mgrok_frame, member)
/* clang-format off: it takes these braces for blocks */
#define U8(member)                                                                                 \
	{                                                                                          \
		F_U8, false, 0, AT(member), #member                                                \
	}
#define U16(member)                                                                                \
	{                                                                                          \
		F_U16, false, 0, AT(member), #member                                               \
	}
#define U32(member)                                                                                \
	{                                                                                          \
		F_U32, false, 0, AT(member), #member                                               \
	}
#define SID                                                                                        \
	{                                                                                          \
		F_SID, false, 0, AT(stream_id), "stream ID"                                        \
	}
#define STR8(member, nonempty, max, what)                                                          \
	{                                                                                          \
		F_STR8, nonempty, max, AT(member), what                                            \
	}
#define STR16(member, nonempty, max, what)                                                         \
	{                                                                                          \
		F_STR16, nonempty, max, AT(member), what                                           \
	}
#define ADDR(member)                                                                               \
	{                                                                                          \
		F_ADDR, false, 0, AT(member), "address"                                            \
	}
/* clang-format on */

/*
 * doc/protocol.md 3, field for field. REGISTER's name and options take any
 * length the wire allows: bad ones get REGISTER_ACK INVALID from the
 * server (3.1), which cannot answer a frame it refused to decode.
 */
static const struct frame_desc frames[] = {
        [MGROK_FRAME_REGISTER] = {"REGISTER",
                                  FROM_CLIENT,
                                  {U8(u.reg.proxy_type), U16(u.reg.remote_port),
                                   U16(u.reg.local_port),
                                   STR8(u.reg.name, false, UINT8_MAX, "name"),
                                   STR16(u.reg.options, false, UINT16_MAX, "options")}},
        [MGROK_FRAME_NEW_STREAM] = {"NEW_STREAM",
                                    FROM_SERVER,
                                    {SID, STR8(u.new_stream.name, true, MGROK_NAME_MAX, "name"),
                                     ADDR(u.new_stream.source)}},
        [MGROK_FRAME_DATA] = {"DATA",
                              FROM_BOTH,
                              {SID, STR16(u.data, false, MGROK_DATA_MAX, "payload")}},
        [MGROK_FRAME_CLOSE] = {"CLOSE", FROM_BOTH, {SID}},
        [MGROK_FRAME_HEARTBEAT] = {"HEARTBEAT", FROM_BOTH, {{F_END, false, 0, 0, NULL}}},
        [MGROK_FRAME_REGISTER_ACK] = {"REGISTER_ACK",
                                      FROM_SERVER,
                                      {U8(u.ack.status), U8(u.ack.proxy_type),
                                       U16(u.ack.remote_port),
                                       STR8(u.ack.name, false, UINT8_MAX, "name"),
                                       STR16(u.ack.message, false, MGROK_MESSAGE_MAX, "message")}},
        [MGROK_FRAME_WINDOW_UPDATE] = {"WINDOW_UPDATE", FROM_BOTH, {SID, U32(u.increment)}},
        [MGROK_FRAME_RESET] = {"RESET", FROM_BOTH, {SID, U8(u.reset_code)}},
        [MGROK_FRAME_GO_AWAY] = {"GO_AWAY",
                                 FROM_BOTH,
                                 {U8(u.go_away.code),
                                  STR16(u.go_away.message, false, MGROK_MESSAGE_MAX, "message")}},
        [MGROK_FRAME_UNREGISTER] = {"UNREGISTER",
                                    FROM_CLIENT,
                                    {STR8(u.unreg_name, true, MGROK_NAME_MAX, "name")}},
        [MGROK_FRAME_HELLO] = {"HELLO",
                               FROM_CLIENT,
                               {STR8(u.hello.client_id, true, MGROK_NAME_MAX, "clientId"),
                                STR16(u.hello.info, false, MGROK_INFO_MAX, "info")}},
};

static const struct frame_desc *frame_desc(uint8_t type)
{
	if (type >= sizeof(frames) / sizeof(frames[0]) || !frames[type].name)
		return NULL;
	return &frames[type];
}

const char *mgrok_frame_type_name(uint8_t type)
{
	const struct frame_desc *d = frame_desc(type);
	return d ? d->name : "unknown";
}

static void *field_ptr(struct mgrok_frame *f, const struct field *fd)
{
	return (char *)f + fd->off;
}

static const void *field_cptr(const struct mgrok_frame *f, const struct field *fd)
{
	return (const char *)f + fd->off;
}

/* ---- reading ------------------------------------------------------------ */

/*
 * A bounds-checked reader. Once a read runs past the end, pos keeps
 * counting the least bytes each remaining field needs (an unseen length is
 * taken as 0, an unseen family as "none"), so that at the end pos is the
 * least total length that could complete the message: the *used hint.
 */
struct reader {
	const uint8_t *p;
	size_t len;
	size_t pos;
	char *err;
	size_t errlen;
};

/* Returns the n bytes at pos, or NULL when they are not all there yet. */
static const uint8_t *take(struct reader *r, size_t n)
{
	const uint8_t *q = r->pos + n <= r->len ? r->p + r->pos : NULL;
	r->pos += n;
	return q;
}

static int fail(struct reader *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(struct reader *r, const char *fmt, ...)
{
	if (r->err && r->errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(r->err, r->errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

/* The result every parser returns once all its fields have been taken. */
static int done(const struct reader *r, size_t *used)
{
	*used = r->pos;
	return r->pos <= r->len;
}

/* Length-prefixed bytes. An out-of-bounds length fails as soon as it is seen. */
static int read_str(struct reader *r, const char *frame, const struct field *fd, unsigned width,
                    struct mgrok_bytes *b)
{
	const uint8_t *lp = take(r, width);
	if (!lp)
		return 0;
	size_t n = width == 1 ? lp[0] : mgrok_get16(lp);
	if (n > fd->max)
		return fail(r, "%s %s of %zu bytes exceeds %u", frame, fd->what, n,
		            (unsigned)fd->max);
	if (n == 0 && fd->nonempty)
		return fail(r, "%s %s is empty", frame, fd->what);
	b->p = take(r, n);
	b->len = n;
	return 0;
}

static int read_addr(struct reader *r, struct mgrok_wire_addr *a)
{
	const uint8_t *fp = take(r, 1);
	if (!fp)
		return 0;
	size_t iplen;
	switch (fp[0]) {
	case 0: a->family = 0; return 0;
	case 4: iplen = 4; break;
	case 6: iplen = 16; break;
	default: return fail(r, "bad address family %u", fp[0]);
	}
	a->family = fp[0];
	const uint8_t *ip = take(r, iplen);
	if (ip)
		memcpy(a->ip, ip, iplen);
	const uint8_t *pp = take(r, 2);
	if (pp)
		a->port = mgrok_get16(pp);
	return 0;
}

static int read_field(struct reader *r, const char *frame, const struct field *fd,
                      struct mgrok_frame *f)
{
	void *v = field_ptr(f, fd);
	const uint8_t *q;
	switch (fd->kind) {
	case F_U8:
		if ((q = take(r, 1)))
			*(uint8_t *)v = q[0];
		return 0;
	case F_U16:
		if ((q = take(r, 2)))
			*(uint16_t *)v = mgrok_get16(q);
		return 0;
	case F_U32:
	case F_SID:
		if (!(q = take(r, 4)))
			return 0;
		*(uint32_t *)v = mgrok_get32(q);
		if (fd->kind == F_SID && f->stream_id == 0)
			return fail(r, "stream ID 0 on %s", frame);
		return 0;
	case F_STR8: return read_str(r, frame, fd, 1, v);
	case F_STR16: return read_str(r, frame, fd, 2, v);
	case F_ADDR: return read_addr(r, v);
	}
	return fail(r, "internal: bad field kind %u", fd->kind);
}

int mgrok_frame_parse(const uint8_t *p, size_t len, enum mgrok_role sender, struct mgrok_frame *f,
                      size_t *used, char *err, size_t errlen)
{
	struct reader r = {p, len, 0, err, errlen};
	memset(f, 0, sizeof(*f));
	const uint8_t *tp = take(&r, 1);
	if (!tp)
		return done(&r, used);
	const struct frame_desc *d = frame_desc(tp[0]);
	if (!d)
		return fail(&r, "unknown frame type 0x%02x", tp[0]);
	bool known_sender = sender == MGROK_ROLE_CLIENT || sender == MGROK_ROLE_SERVER;
	if (!known_sender || !(d->from & (1u << sender)))
		return fail(&r, "%s not allowed from the %s", d->name,
		            !known_sender                 ? "unknown sender"
		            : sender == MGROK_ROLE_SERVER ? "server"
		                                          : "client");
	f->type = tp[0];
	for (const struct field *fd = d->fields; fd->kind != F_END; fd++)
		if (read_field(&r, d->name, fd, f) < 0)
			return -1;
	return done(&r, used);
}

/* ---- writing ------------------------------------------------------------ */

static bool field_ok(const struct mgrok_frame *f, const struct field *fd)
{
	const void *v = field_cptr(f, fd);
	switch (fd->kind) {
	case F_SID: return f->stream_id != 0;
	case F_STR8:
	case F_STR16: {
		const struct mgrok_bytes *b = v;
		return b->len <= fd->max && (b->len || !fd->nonempty) && (b->p || !b->len);
	}
	case F_ADDR: {
		const struct mgrok_wire_addr *a = v;
		return a->family == 0 || a->family == 4 || a->family == 6;
	}
	default: return true;
	}
}

static void write_field(const struct mgrok_frame *f, const struct field *fd, struct mgrok_buf *out)
{
	const void *v = field_cptr(f, fd);
	switch (fd->kind) {
	case F_U8: mgrok_buf_put8(out, *(const uint8_t *)v); break;
	case F_U16: mgrok_buf_put16(out, *(const uint16_t *)v); break;
	case F_U32:
	case F_SID: mgrok_buf_put32(out, *(const uint32_t *)v); break;
	case F_STR8:
	case F_STR16: {
		const struct mgrok_bytes *b = v;
		if (fd->kind == F_STR8)
			mgrok_buf_put8(out, (uint8_t)b->len);
		else
			mgrok_buf_put16(out, (uint16_t)b->len);
		mgrok_buf_append(out, b->p, b->len);
		break;
	}
	case F_ADDR: {
		const struct mgrok_wire_addr *a = v;
		mgrok_buf_put8(out, a->family);
		if (a->family) {
			mgrok_buf_append(out, a->ip, a->family == 4 ? 4 : 16);
			mgrok_buf_put16(out, a->port);
		}
		break;
	}
	}
}

int mgrok_frame_encode(const struct mgrok_frame *f, struct mgrok_buf *out)
{
	const struct frame_desc *d = frame_desc(f->type);
	if (!d)
		return -1;
	/* Check every field first so that a refused frame appends nothing. */
	for (const struct field *fd = d->fields; fd->kind != F_END; fd++)
		if (!field_ok(f, fd))
			return -1;
	mgrok_buf_put8(out, f->type);
	for (const struct field *fd = d->fields; fd->kind != F_END; fd++)
		write_field(f, fd, out);
	return 0;
}

void mgrok_frame_data_header(uint8_t hdr[MGROK_DATA_HEADER], uint32_t stream_id, uint16_t len)
{
	hdr[0] = MGROK_FRAME_DATA;
	mgrok_put32(hdr + 1, stream_id);
	mgrok_put16(hdr + 5, len);
}

/* ---- incremental decoder -------------------------------------------------- */

/*
 * d->err doubles as the failed flag: it is empty until the first protocol
 * error and never cleared, so a desynchronised stream is never read again.
 */
static int decoder_fail(struct mgrok_decoder *d)
{
	if (!d->err[0])
		snprintf(d->err, sizeof(d->err), "protocol error");
	mgrok_buf_free(&d->partial);
	return -1;
}

void mgrok_decoder_init(struct mgrok_decoder *d, enum mgrok_role sender)
{
	memset(d, 0, sizeof(*d));
	d->sender = sender;
}

void mgrok_decoder_free(struct mgrok_decoder *d) { mgrok_buf_free(&d->partial); }

/* The callback paused: what is left of this feed waits in partial. */
static int pause_with(struct mgrok_decoder *d, const uint8_t *p, size_t len)
{
	mgrok_buf_append(&d->partial, p, len);
	return MGROK_DECODE_PAUSE;
}

int mgrok_decoder_feed(struct mgrok_decoder *d, const uint8_t *p, size_t len, mgrok_frame_cb cb,
                       void *arg)
{
	struct mgrok_frame f;
	size_t used;
	int rc;

	if (d->err[0])
		return -1;
	/*
	 * Bytes kept from before come first: whole frames left by a pause, then
	 * at most one straddling frame. Copying only up to parse's hint keeps
	 * that within one frame and leaves every later frame of this feed to be
	 * delivered in place.
	 */
	while (d->partial.len) {
		rc = mgrok_frame_parse(mgrok_buf_head(&d->partial), d->partial.len, d->sender, &f,
		                       &used, d->err, sizeof(d->err));
		if (rc < 0)
			return decoder_fail(d);
		if (rc > 0) {
			rc = cb(arg, &f);
			mgrok_buf_consume(&d->partial, used);
			if (rc == MGROK_DECODE_PAUSE)
				return pause_with(d, p, len);
			if (rc)
				return rc;
			continue;
		}
		if (!len)
			return 0;
		size_t n = used - d->partial.len;
		if (n > len)
			n = len;
		mgrok_buf_append(&d->partial, p, n);
		p += n;
		len -= n;
	}
	/* A pause may have grown the buffer well past one frame. */
	if (d->partial.cap > 2 * (MGROK_DATA_HEADER + MGROK_DATA_MAX))
		mgrok_buf_free(&d->partial);
	while (len) {
		rc = mgrok_frame_parse(p, len, d->sender, &f, &used, d->err, sizeof(d->err));
		if (rc < 0)
			return decoder_fail(d);
		if (rc == 0) {
			mgrok_buf_append(&d->partial, p, len);
			return 0;
		}
		rc = cb(arg, &f);
		p += used;
		len -= used;
		if (rc == MGROK_DECODE_PAUSE)
			return pause_with(d, p, len);
		if (rc)
			return rc;
	}
	return 0;
}

/* ---- handshake messages (doc/protocol.md 2) ---------------------------------- */

static int read_hs_payload(struct reader *r, struct mgrok_bytes *payload)
{
	static const struct field fd = {F_STR16, false, MGROK_HS_PAYLOAD_MAX, 0, "payload"};
	payload->p = NULL;
	payload->len = 0;
	return read_str(r, "handshake", &fd, 2, payload);
}

int mgrok_hs_parse_first(const uint8_t *p, size_t len, uint8_t *method, struct mgrok_bytes *payload,
                         size_t *used, char *err, size_t errlen)
{
	struct reader r = {p, len, 0, err, errlen};
	size_t seen = len < 4 ? len : 4;
	/* Fail on the first wrong byte: a port scanner may never send four. */
	if (seen && memcmp(p, MGROK_MAGIC, seen) != 0)
		return fail(&r, "bad magic");
	take(&r, 4);
	const uint8_t *mp = take(&r, 1);
	*method = mp ? mp[0] : 0;
	if (read_hs_payload(&r, payload) < 0)
		return -1;
	return done(&r, used);
}

int mgrok_hs_parse_answer(const uint8_t *p, size_t len, struct mgrok_bytes *payload, size_t *used,
                          char *err, size_t errlen)
{
	struct reader r = {p, len, 0, err, errlen};
	if (read_hs_payload(&r, payload) < 0)
		return -1;
	return done(&r, used);
}

int mgrok_hs_parse_reply(const uint8_t *p, size_t len, uint8_t *status, struct mgrok_bytes *payload,
                         size_t *used, char *err, size_t errlen)
{
	struct reader r = {p, len, 0, err, errlen};
	const uint8_t *sp = take(&r, 1);
	*status = sp ? sp[0] : 0;
	if (sp && sp[0] > MGROK_HS_STATUS_UNSUPPORTED)
		return fail(&r, "unknown handshake status %u", sp[0]);
	if (read_hs_payload(&r, payload) < 0)
		return -1;
	return done(&r, used);
}

static int put_hs_payload(struct mgrok_buf *out, const void *payload, size_t len)
{
	mgrok_buf_put16(out, (uint16_t)len);
	mgrok_buf_append(out, payload, len);
	return 0;
}

int mgrok_hs_encode_first(struct mgrok_buf *out, uint8_t method, const void *payload, size_t len)
{
	if (len > MGROK_HS_PAYLOAD_MAX)
		return -1;
	mgrok_buf_append(out, MGROK_MAGIC, 4);
	mgrok_buf_put8(out, method);
	return put_hs_payload(out, payload, len);
}

int mgrok_hs_encode_answer(struct mgrok_buf *out, const void *payload, size_t len)
{
	if (len > MGROK_HS_PAYLOAD_MAX)
		return -1;
	return put_hs_payload(out, payload, len);
}

int mgrok_hs_encode_reply(struct mgrok_buf *out, uint8_t status, const void *payload, size_t len)
{
	if (len > MGROK_HS_PAYLOAD_MAX || status > MGROK_HS_STATUS_UNSUPPORTED)
		return -1;
	mgrok_buf_put8(out, status);
	return put_hs_payload(out, payload, len);
}

/* ---- addresses ------------------------------------------------------------ */

void mgrok_wire_addr_from_sockaddr(struct mgrok_wire_addr *w, const struct sockaddr *sa)
{
	memset(w, 0, sizeof(*w));
	if (!sa)
		return;
	/* memcpy, not a cast: sa may point into a byte buffer of any alignment. */
	if (sa->sa_family == AF_INET) {
		struct sockaddr_in in;
		memcpy(&in, sa, sizeof(in));
		w->family = 4;
		memcpy(w->ip, &in.sin_addr, 4);
		w->port = ntohs(in.sin_port);
	} else if (sa->sa_family == AF_INET6) {
		struct sockaddr_in6 in6;
		memcpy(&in6, sa, sizeof(in6));
		w->port = ntohs(in6.sin6_port);
		/* A dual-stack socket reports IPv4 peers this way (doc/protocol.md 1). */
		if (IN6_IS_ADDR_V4MAPPED(&in6.sin6_addr)) {
			w->family = 4;
			memcpy(w->ip, in6.sin6_addr.s6_addr + 12, 4);
		} else {
			w->family = 6;
			memcpy(w->ip, in6.sin6_addr.s6_addr, 16);
		}
	}
}

unsigned mgrok_wire_addr_to_sockaddr(const struct mgrok_wire_addr *w, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (w->family == 4) {
		struct sockaddr_in in = {.sin_family = AF_INET, .sin_port = htons(w->port)};
		memcpy(&in.sin_addr, w->ip, 4);
		memcpy(ss, &in, sizeof(in));
		return sizeof(in);
	}
	if (w->family == 6) {
		struct sockaddr_in6 in6 = {.sin6_family = AF_INET6, .sin6_port = htons(w->port)};
		memcpy(&in6.sin6_addr, w->ip, 16);
		memcpy(ss, &in6, sizeof(in6));
		return sizeof(in6);
	}
	return 0;
}
