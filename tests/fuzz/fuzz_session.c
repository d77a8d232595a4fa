/*
 * Fuzz target: a session (core/session.c, stream.c, mux.c on libev) on one
 * end of a socket pair, this harness on the other end and around it.
 *
 * The harness plays the session's owner (a minimal server or client through
 * struct mgrok_session_ops), its peer (the bytes on the other end of the
 * pair), and the visitors or local services on its streams. The first input
 * byte sets up (bit 0: the session is the client; 1: write the handshake
 * first; 2: send HELLO first; 3: read the session's output; 4: small socket
 * buffers for it; 5: max_streams 3; 6: window auto-tuning; 7: read what the
 * session writes to local sockets). The rest is a list of commands, see
 * enum op: raw bytes or frames built from a few bytes (so that REGISTER,
 * streams, windows and the rest are reached, not only protocol errors),
 * visitors, socket writes and closes, datagrams, timers, loop runs.
 *
 * Properties, besides ASan, UBSan and LeakSanitizer: what the session writes
 * parses and keeps the protocol's rules (wire_check.c); on_close comes once,
 * with a reason, after every stream is gone; a datagram stream ends exactly
 * once; no stream outlives its proxy; and after the session is closed no
 * libev watcher is left active and no descriptor made for the input is open.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "codec.h"
#include "config.h"
#include "context.h"
#include "fuzz.h"
#include "host.h"
#include "log.h"
#include "proxy.h"
#include "session.h"
#include "stream.h"
#include "wire_check.h"

/* The context every input's session runs on (the loop is reused). */
static struct mgrok_ctx fuzz_ctx;

#define MAX_COMMANDS 512
#define MAX_WRITE (8u << 20) /* bytes the harness writes per input, on all sockets */
#define MAX_FRAMES 16384     /* frames it builds per input, repeats included */
#define MAX_LOCALS 16
#define MAX_DGRAMS 96 /* no descriptors: enough for the stream table to grow */
#define MAX_PROXIES 4
#define MAX_FDS (2 + 2 * MAX_LOCALS)

enum op {
	OP_RAW,         /* n, n bytes: written to the session as they are */
	OP_FRAME,       /* a frame built from the next bytes (build_frame) */
	OP_REPEAT,      /* n (16 bits): the next frame goes n + 1 times */
	OP_OPEN,        /* server: a visitor on proxy k; client: NEW_STREAM for a name */
	OP_LOCAL_WRITE, /* k, size: bytes on our end of visitor or local socket k */
	OP_LOCAL_CTRL,  /* k, what: shutdown(SHUT_WR), close, read it empty, auto-read on/off */
	OP_DGRAM,       /* k, what: a datagram stream's plugin sends, closes or resets */
	OP_PEER,        /* what: read on/off, shutdown(SHUT_WR), small buffer, close */
	OP_TIMER,       /* what: heartbeat due, heartbeat or output timeout, handshake timeout */
	OP_RUN,         /* n: loop iterations, each after writing and before reading */
	OP_CLOSE,       /* code: the owner closes the session */
	OP_COUNT,
};

/* A datagram stream as the proxy plugin sees it. */
struct dgram {
	struct mgrok_stream *st;
	bool ended; /* on_stream_end came */
};

struct harness {
	enum mgrok_role role;    /* the session's */
	struct mgrok_session *s; /* NULL once on_close came */
	unsigned closes;
	int peer;                    /* our end of the session's pair; -1 once closed */
	struct mgrok_buf to_session; /* written to peer as it takes it */
	bool reading, drain_locals;
	unsigned repeat;
	size_t written;   /* bytes written so far, towards MAX_WRITE */
	unsigned frames;  /* frames built so far, towards MAX_FRAMES */
	uint32_t next_id; /* client session: the id of our next NEW_STREAM */
	struct wire_streams streams;
	struct wire from_us, to_us;
	struct mgrok_proxy *proxies[MAX_PROXIES]; /* server session: registered */
	int locals[MAX_LOCALS]; /* our ends of visitor or local-service sockets, -1: closed */
	unsigned nlocals;
	struct dgram dgrams[MAX_DGRAMS];
	unsigned ndgrams;
	int fds[MAX_FDS]; /* every descriptor made for the input */
	unsigned nfds;
};

static struct harness H;

/* "p": relays a socket, "u": datagrams; an upper-case first letter is
 * refused. The longest name a REGISTER can carry (255 bytes) is refused at
 * length: the most output per frame, for filling the session's queue. */
static char longest[256];
static const char *const names[] = {"p0", "p1", "u0", "u1", "P2", "x", "", longest};
#define NNAMES (sizeof(names) / sizeof(names[0]))

static uint8_t pattern[MGROK_DATA_MAX];
static char verbose[MGROK_MESSAGE_MAX + 1];
static struct mgrok_auth_method none;
static struct mgrok_proxy client_proxies[4]; /* p0 p1 u0 u1 */

/* ---- the proxy plugin of every proxy: datagram hooks only ------------------- */

static void on_datagram(void *inst, void *arg, const uint8_t *data, size_t len)
{
	struct dgram *d = arg;
	FUZZ_ASSERT(!d->ended && d->st, "a datagram after the stream ended");
	/* The peer's first byte tells the plugin what to do, as a real one might. */
	if (len && data[0] == 'R')
		mgrok_host_table.stream_reset(d->st, MGROK_RESET_CANCEL);
	else if (len && data[0] == 'C')
		mgrok_host_table.stream_close(d->st);
	else if (len && data[0] == 'E')
		mgrok_host_table.stream_send(d->st, data, len);
}

static void on_stream_end(void *inst, void *arg)
{
	struct dgram *d = arg;
	FUZZ_ASSERT(!d->ended, "on_stream_end twice");
	d->ended = true;
	d->st = NULL;
}

static const struct mgrok_proxy_ops proxy_ops = {.on_datagram = on_datagram,
                                                 .on_stream_end = on_stream_end};
static const struct mgrok_plugin_desc proxy_desc = {
        .abi_major = MGROK_PLUGIN_ABI_MAJOR,
        .abi_minor = MGROK_PLUGIN_ABI_MINOR,
        .size = sizeof(struct mgrok_plugin_desc),
        .kind = MGROK_PLUGIN_PROXY,
        .name = "fuzz",
        .wire_id = 0x7f,
        .proxy = &proxy_ops,
};
static struct mgrok_plugin proxy_plugin = {.path = "fuzz", .desc = &proxy_desc};

/* ---- sockets ----------------------------------------------------------------- */

static bool make_pair(int sv[2])
{
	if (H.nfds + 2 > MAX_FDS ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
		return false;
	H.fds[H.nfds++] = sv[0];
	H.fds[H.nfds++] = sv[1];
	return true;
}

static void send_bytes(const uint8_t *p, size_t n)
{
	if (H.peer < 0 || H.written + n > MAX_WRITE)
		return;
	H.written += n;
	wire_feed(&H.from_us, p, n);
	mgrok_buf_append(&H.to_session, p, n);
}

static void pump(void)
{
	while (H.peer >= 0 && H.to_session.len) {
		ssize_t n = write(H.peer, mgrok_buf_head(&H.to_session), H.to_session.len);
		if (n > 0)
			mgrok_buf_consume(&H.to_session, (size_t)n);
		else if (n < 0 && errno == EAGAIN)
			return;
		else if (!(n < 0 && errno == EINTR)) /* the session is gone */
			mgrok_buf_consume(&H.to_session, H.to_session.len);
	}
}

static void drain_peer(void)
{
	static uint8_t buf[65536];
	ssize_t n;
	while (H.peer >= 0 &&
	       ((n = read(H.peer, buf, sizeof(buf))) > 0 || (n < 0 && errno == EINTR)))
		if (n > 0)
			wire_feed(&H.to_us, buf, (size_t)n);
}

static void drain_local(int fd)
{
	static uint8_t buf[65536];
	ssize_t n;
	while (fd >= 0 && ((n = read(fd, buf, sizeof(buf))) > 0 || (n < 0 && errno == EINTR)))
		;
}

static void run(unsigned rounds)
{
	for (unsigned i = 0; i < rounds; i++) {
		pump();
		ev_run(fuzz_ctx.loop, EVRUN_NOWAIT);
		if (H.reading)
			drain_peer();
		for (unsigned k = 0; H.drain_locals && k < H.nlocals; k++)
			drain_local(H.locals[k]);
	}
}

/* ---- the owner: a minimal server or client ------------------------------------ */

static int find_name(struct mgrok_proxy *const *v, size_t n, const uint8_t *name, size_t len)
{
	for (size_t i = 0; i < n; i++)
		if (v[i] && strlen(v[i]->name) == len && memcmp(v[i]->name, name, len) == 0)
			return (int)i;
	return -1;
}

/* A stream of proxy px gets its local end: a socket, or datagram hooks. */
static void attach(struct mgrok_stream *st, const struct mgrok_proxy *px, int connecting)
{
	int sv[2];
	if (px->name[0] == 'u' && H.ndgrams < MAX_DGRAMS) {
		struct dgram *d = &H.dgrams[H.ndgrams++];
		d->st = st;
		d->ended = false;
		mgrok_host_table.stream_attach_datagram(st, d);
	} else if (px->name[0] != 'u' && H.nlocals < MAX_LOCALS && make_pair(sv)) {
		H.locals[H.nlocals++] = sv[1];
		mgrok_host_table.stream_attach_fd(st, sv[0], connecting);
	} else {
		mgrok_host_table.stream_reset(st, MGROK_RESET_REFUSED);
	}
}

static void on_register(struct mgrok_session *s, const struct mgrok_frame *f)
{
	const struct mgrok_bytes *name = &f->u.reg.name;
	struct mgrok_frame ack = {.type = MGROK_FRAME_REGISTER_ACK};
	int slot;
	const char *msg = "tcp://fuzz";

	ack.u.ack.status = MGROK_ACK_OK;
	if (name->len > MGROK_NAME_MAX)
		ack.u.ack.status = MGROK_ACK_INVALID, msg = verbose;
	else if (!mgrok_name_valid((const char *)name->p, name->len) || name->p[0] < 'a' ||
	         name->p[0] > 'z')
		ack.u.ack.status = MGROK_ACK_INVALID, msg = "refused by the harness";
	else if (find_name(H.proxies, MAX_PROXIES, name->p, name->len) >= 0)
		ack.u.ack.status = MGROK_ACK_NAME_IN_USE, msg = "in use";
	for (slot = 0; slot < MAX_PROXIES && H.proxies[slot]; slot++)
		;
	if (ack.u.ack.status == MGROK_ACK_OK && slot == MAX_PROXIES)
		ack.u.ack.status = MGROK_ACK_LIMIT, msg = "limit";
	if (ack.u.ack.status == MGROK_ACK_OK) {
		struct mgrok_proxy *px = mgrok_xcalloc(1, sizeof(*px));
		px->sess = s;
		px->plugin = &proxy_plugin;
		memcpy(px->name, name->p, name->len);
		px->spec.name = px->name;
		px->spec.type = f->u.reg.proxy_type;
		px->spec.remote_port =
		        f->u.reg.remote_port ? f->u.reg.remote_port : (uint16_t)(20000 + slot);
		px->bound = true;
		H.proxies[slot] = px;
		ack.u.ack.remote_port = px->spec.remote_port;
	}
	ack.u.ack.proxy_type = f->u.reg.proxy_type;
	ack.u.ack.name = *name;
	ack.u.ack.message.p = (const uint8_t *)msg;
	ack.u.ack.message.len = strlen(msg);
	mgrok_session_send(s, &ack);
}

static void free_proxy(int slot)
{
	struct mgrok_proxy *px = H.proxies[slot];
	FUZZ_ASSERT(px->nstreams == 0, "proxy %s freed with %u streams", px->name, px->nstreams);
	free(px);
	H.proxies[slot] = NULL;
}

static int server_frame(struct mgrok_session *s, const struct mgrok_frame *f)
{
	int k;
	switch (f->type) {
	case MGROK_FRAME_HELLO:
		if (s->frames_in == 1)
			return 0;
		mgrok_session_close(s, MGROK_GOAWAY_PROTOCOL_ERROR, MGROK_CLOSE_LOST,
		                    "protocol error: HELLO not first");
		return -1;
	case MGROK_FRAME_REGISTER: on_register(s, f); return 0;
	case MGROK_FRAME_UNREGISTER:
		k = find_name(H.proxies, MAX_PROXIES, f->u.unreg_name.p, f->u.unreg_name.len);
		if (k >= 0) {
			mgrok_stream_reset_proxy(&s->relay, H.proxies[k], MGROK_RESET_CANCEL);
			free_proxy(k);
		}
		return 0;
	default:
		mgrok_session_close(s, MGROK_GOAWAY_PROTOCOL_ERROR, MGROK_CLOSE_LOST,
		                    "protocol error: unexpected %s",
		                    mgrok_frame_type_name(f->type));
		return -1;
	}
}

static int client_frame(struct mgrok_session *s, const struct mgrok_frame *f)
{
	switch (f->type) {
	case MGROK_FRAME_REGISTER_ACK: return 0;
	case MGROK_FRAME_NEW_STREAM: {
		struct mgrok_proxy *v[4] = {&client_proxies[0], &client_proxies[1],
		                            &client_proxies[2], &client_proxies[3]};
		if (mgrok_mux_check_new(&s->mux, f->stream_id) < 0) {
			mgrok_session_close(s, MGROK_GOAWAY_PROTOCOL_ERROR, MGROK_CLOSE_LOST,
			                    "protocol error: %s", s->mux.err);
			return -1;
		}
		int k = find_name(v, 4, f->u.new_stream.name.p, f->u.new_stream.name.len);
		struct mgrok_stream *st =
		        mgrok_stream_accept(s, f->stream_id, k >= 0 ? v[k] : NULL);
		if (k < 0)
			mgrok_stream_reset(st, MGROK_RESET_REFUSED);
		else
			attach(st, v[k], (int)(f->stream_id >> 1 & 1));
		return 0;
	}
	default:
		mgrok_session_close(s, MGROK_GOAWAY_PROTOCOL_ERROR, MGROK_CLOSE_LOST,
		                    "protocol error: unexpected %s",
		                    mgrok_frame_type_name(f->type));
		return -1;
	}
}

static void on_open(struct mgrok_session *s)
{
	if (s->role != MGROK_ROLE_CLIENT)
		return;
	struct mgrok_frame f = {.type = MGROK_FRAME_HELLO};
	f.u.hello.client_id = (struct mgrok_bytes){(const uint8_t *)"fuzz", 4};
	mgrok_session_send(s, &f);
	for (int i = 0; i < 4; i += 2) {
		f = (struct mgrok_frame){.type = MGROK_FRAME_REGISTER};
		f.u.reg.name = (struct mgrok_bytes){(const uint8_t *)names[i], strlen(names[i])};
		mgrok_session_send(s, &f);
	}
}

static int on_frame(struct mgrok_session *s, const struct mgrok_frame *f)
{
	return s->role == MGROK_ROLE_SERVER ? server_frame(s, f) : client_frame(s, f);
}

static void on_close(struct mgrok_session *s, enum mgrok_close_why why, const char *reason)
{
	FUZZ_ASSERT(s == H.s && H.closes == 0, "on_close %u times", H.closes + 1);
	FUZZ_ASSERT(reason && reason[0], "closed (%d) without a reason", why);
	FUZZ_ASSERT(!s->relay.streams && s->mux.count == 0, "streams left at on_close");
	MGROK_DEBUG("fuzz: session %u closed (why %d): %s", s->id, why, reason);
	H.closes++;
	H.s = NULL;
	for (int k = 0; k < MAX_PROXIES; k++)
		if (H.proxies[k])
			free_proxy(k);
}

static const struct mgrok_session_ops ops = {
        .on_open = on_open, .on_frame = on_frame, .on_close = on_close};

static const struct mgrok_auth_method *find_auth(void *arg, uint8_t id)
{
	return id == none.id ? &none : NULL;
}

/* ---- building frames ----------------------------------------------------------- */

/* Mostly the small even IDs streams get, now and then an odd or any one. */
static uint32_t pick_id(struct fuzz_in *in)
{
	uint8_t b = fuzz_u8(in);
	return b < 0xf0 ? 2 + 2u * (b % 32) : b < 0xf8 ? 1 + 2u * (b & 7) : fuzz_u32(in);
}

static struct mgrok_bytes pick_name(struct fuzz_in *in)
{
	const char *s = names[fuzz_u8(in) % NNAMES];
	return (struct mgrok_bytes){(const uint8_t *)s, strlen(s)};
}

static struct mgrok_bytes text(const char *s)
{
	return (struct mgrok_bytes){(const uint8_t *)s, strlen(s)};
}

/* Below 0x80, that many bytes of the input; above, 1 KiB steps of pattern up to 64 KiB. */
static struct mgrok_bytes payload(struct fuzz_in *in)
{
	uint8_t c = fuzz_u8(in);
	size_t n;
	if (c < 0x80) {
		const uint8_t *p = fuzz_take(in, c, &n);
		return (struct mgrok_bytes){p, n};
	}
	n = (size_t)(c - 0x7f) * 1024;
	return (struct mgrok_bytes){pattern, n < MGROK_DATA_MAX ? n : MGROK_DATA_MAX};
}

static void build_frame(struct fuzz_in *in)
{
	/* What the session's peer may send. */
	static const uint8_t from_client[] = {
	        MGROK_FRAME_REGISTER,  MGROK_FRAME_DATA,          MGROK_FRAME_CLOSE,
	        MGROK_FRAME_HEARTBEAT, MGROK_FRAME_WINDOW_UPDATE, MGROK_FRAME_RESET,
	        MGROK_FRAME_GO_AWAY,   MGROK_FRAME_UNREGISTER,    MGROK_FRAME_HELLO};
	static const uint8_t from_server[] = {MGROK_FRAME_NEW_STREAM,   MGROK_FRAME_DATA,
	                                      MGROK_FRAME_CLOSE,        MGROK_FRAME_HEARTBEAT,
	                                      MGROK_FRAME_REGISTER_ACK, MGROK_FRAME_WINDOW_UPDATE,
	                                      MGROK_FRAME_RESET,        MGROK_FRAME_GO_AWAY};
	static const char *const options[] = {"", "{}", "{\"x\": 1}", "[]"};
	bool server = H.role == MGROK_ROLE_SERVER;
	uint8_t b = fuzz_u8(in);
	struct mgrok_frame f = {.type = server ? from_client[b % sizeof(from_client)]
	                                       : from_server[b % sizeof(from_server)]};
	switch (f.type) {
	case MGROK_FRAME_REGISTER:
		f.u.reg.proxy_type = fuzz_u8(in);
		b = fuzz_u8(in);
		f.u.reg.remote_port = b ? (uint16_t)(20000 + b) : 0;
		f.u.reg.local_port = 80;
		f.u.reg.name = pick_name(in);
		f.u.reg.options = text(options[fuzz_u8(in) % 4]);
		break;
	case MGROK_FRAME_NEW_STREAM:
		f.stream_id = pick_id(in);
		f.u.new_stream.name = pick_name(in);
		b = fuzz_u8(in);
		f.u.new_stream.source.family = (uint8_t[]){0, 4, 6}[b % 3];
		memset(f.u.new_stream.source.ip, b, sizeof(f.u.new_stream.source.ip));
		f.u.new_stream.source.port = b;
		break;
	case MGROK_FRAME_DATA:
		f.stream_id = pick_id(in);
		f.u.data = payload(in);
		break;
	case MGROK_FRAME_CLOSE: f.stream_id = pick_id(in); break;
	case MGROK_FRAME_REGISTER_ACK:
		f.u.ack.status = fuzz_u8(in) % 8;
		f.u.ack.remote_port = 20000;
		f.u.ack.name = pick_name(in);
		f.u.ack.message = text("fuzz");
		break;
	case MGROK_FRAME_WINDOW_UPDATE:
		f.stream_id = pick_id(in);
		b = fuzz_u8(in);
		f.u.increment = b == 0xff ? fuzz_u32(in) : b * 4096u;
		break;
	case MGROK_FRAME_RESET:
		f.stream_id = pick_id(in);
		f.u.reset_code = fuzz_u8(in);
		break;
	case MGROK_FRAME_GO_AWAY:
		f.u.go_away.code = fuzz_u8(in) % 6;
		f.u.go_away.message = text("bye");
		break;
	case MGROK_FRAME_UNREGISTER: f.u.unreg_name = pick_name(in); break;
	case MGROK_FRAME_HELLO:
		f.u.hello.client_id = text(fuzz_u8(in) & 1 ? "client-1" : "c2");
		f.u.hello.info = text("{}");
		break;
	default: break;
	}
	struct mgrok_buf enc = {0};
	if (mgrok_frame_encode(&f, &enc) == 0) {
		size_t n = H.repeat + 1u, room = H.written < MAX_WRITE ? MAX_WRITE - H.written : 0;
		if (n > MAX_FRAMES - H.frames)
			n = MAX_FRAMES - H.frames;
		if (n > room / enc.len)
			n = room / enc.len;
		mgrok_buf_reserve(&H.to_session, n * enc.len);
		for (size_t i = 0; i < n; i++)
			send_bytes(mgrok_buf_head(&enc), enc.len);
		H.frames += (unsigned)n;
	}
	H.repeat = 0;
	mgrok_buf_free(&enc);
}

/* ---- the other commands ----------------------------------------------------------- */

static void open_stream(struct fuzz_in *in)
{
	uint8_t k = fuzz_u8(in);
	if (H.role == MGROK_ROLE_CLIENT) {
		struct mgrok_frame f = {.type = MGROK_FRAME_NEW_STREAM, .stream_id = H.next_id};
		f.u.new_stream.name = text(names[k % NNAMES]);
		f.u.new_stream.source =
		        (struct mgrok_wire_addr){.family = 4, .ip = {192, 0, 2, 1}, .port = k};
		H.next_id += 2;
		struct mgrok_buf enc = {0};
		if (mgrok_frame_encode(&f, &enc) == 0)
			send_bytes(mgrok_buf_head(&enc), enc.len);
		mgrok_buf_free(&enc);
		return;
	}
	struct mgrok_proxy *px = H.proxies[k % MAX_PROXIES];
	if (!H.s || !px)
		return;
	struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_port = htons(k)};
	struct sockaddr_in a4 = {
	        .sin_family = AF_INET, .sin_port = htons(k), .sin_addr = {htonl(0xc0000201)}};
	struct mgrok_stream *st =
	        k & 0x80 ? mgrok_host_table.stream_open(px, (struct sockaddr *)&a6, sizeof(a6))
	                 : mgrok_host_table.stream_open(px, (struct sockaddr *)&a4, sizeof(a4));
	if (st)
		attach(st, px, 0);
}

static size_t size_class(uint8_t c) { return c < 0x80 ? c : (size_t)(c & 0x7f) * 4096; }

static void local_write(struct fuzz_in *in)
{
	uint8_t k = fuzz_u8(in);
	size_t left = size_class(fuzz_u8(in));
	int fd = H.nlocals ? H.locals[k % H.nlocals] : -1;
	while (fd >= 0 && left && H.written < MAX_WRITE) {
		ssize_t n = write(fd, pattern, left < sizeof(pattern) ? left : sizeof(pattern));
		if (n <= 0)
			break; /* full, or the stream's end is gone */
		left -= (size_t)n;
		H.written += (size_t)n;
	}
}

static void local_ctrl(struct fuzz_in *in)
{
	uint8_t k = fuzz_u8(in), what = fuzz_u8(in) % 4;
	int *fd = H.nlocals ? &H.locals[k % H.nlocals] : NULL;
	if (what == 3) {
		H.drain_locals = !H.drain_locals;
	} else if (fd && *fd >= 0) {
		if (what == 0)
			shutdown(*fd, SHUT_WR);
		else if (what == 2)
			drain_local(*fd);
		else {
			close(*fd);
			*fd = -1;
		}
	}
}

static void dgram(struct fuzz_in *in)
{
	uint8_t k = fuzz_u8(in), what = fuzz_u8(in) % 4;
	struct dgram *d = H.ndgrams ? &H.dgrams[k % H.ndgrams] : NULL;
	if (!d || d->ended)
		return;
	if (what == 0) {
		struct mgrok_bytes p = payload(in);
		mgrok_host_table.stream_send(d->st, p.p, p.len);
	} else if (what == 1) {
		mgrok_host_table.stream_close(d->st);
	} else if (what == 2) {
		mgrok_host_table.stream_reset(d->st, MGROK_RESET_CANCEL);
	} else {
		/* One past the largest datagram: refused, never cut. */
		FUZZ_ASSERT(mgrok_host_table.stream_send(d->st, pattern, MGROK_DATA_MAX + 1) == -1,
		            "a datagram of %u bytes was sent", MGROK_DATA_MAX + 1);
	}
}

static void peer_ctrl(struct fuzz_in *in)
{
	uint8_t what = fuzz_u8(in) % 4;
	int size = 4096;
	pump(); /* what was written before goes first */
	if (what == 0)
		H.reading = !H.reading;
	else if (H.peer >= 0 && what == 1)
		shutdown(H.peer, SHUT_WR);
	else if (H.peer >= 0 && what == 2)
		setsockopt(H.peer, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
	else if (H.peer >= 0) {
		close(H.peer);
		H.peer = -1;
		mgrok_buf_consume(&H.to_session, H.to_session.len);
	}
}

/* Time passes as far as the session's timers can tell: their deadlines move
 * into the past, and the watcher fires. */
static void timer(struct fuzz_in *in)
{
	struct mgrok_session *s = H.s;
	uint8_t what = fuzz_u8(in) % 4;
	if (!s)
		return;
	if (what == 3) {
		if (ev_is_active(&s->hs_timer))
			ev_feed_event(fuzz_ctx.loop, &s->hs_timer, EV_TIMER);
	} else {
		if (what == 0)
			s->last_send -= s->hb_interval;
		else if (what == 1)
			s->last_recv -= s->hb_timeout;
		else if (s->paused_since)
			s->paused_since -= s->hb_timeout;
		ev_feed_event(fuzz_ctx.loop, &s->beat, EV_TIMER);
	}
	ev_run(fuzz_ctx.loop, EVRUN_NOWAIT);
}

static void command(struct fuzz_in *in)
{
	uint8_t n;
	size_t got;
	const uint8_t *p;
	switch (fuzz_u8(in) % OP_COUNT) {
	case OP_RAW:
		n = fuzz_u8(in);
		p = fuzz_take(in, n, &got);
		send_bytes(p, got);
		break;
	case OP_FRAME: build_frame(in); break;
	case OP_REPEAT: H.repeat = fuzz_u16(in); break;
	case OP_OPEN: open_stream(in); break;
	case OP_LOCAL_WRITE: local_write(in); break;
	case OP_LOCAL_CTRL: local_ctrl(in); break;
	case OP_DGRAM: dgram(in); break;
	case OP_PEER: peer_ctrl(in); break;
	case OP_TIMER: timer(in); break;
	case OP_RUN: run(1 + fuzz_u8(in) % 4); break;
	default:
		n = fuzz_u8(in);
		if (H.s)
			mgrok_session_close(H.s, (int)(n % 6) - 1, MGROK_CLOSE_LOCAL,
			                    "closed by the harness");
		break;
	}
}

/* ---- one input ----------------------------------------------------------------- */

static void setup(void)
{
	const char *level = getenv("MGROK_FUZZ_LOG");
	signal(SIGPIPE, SIG_IGN);
	mgrok_ctx_init(&fuzz_ctx, ev_default_loop(0));
	mgrok_host_bind(&fuzz_ctx);
	/* Debug by default: every log line's format and arguments are exercised. */
	mgrok_log_level = level ? mgrok_log_level_parse(level) : MGROK_LOG_DEBUG;
	for (size_t i = 0; i < sizeof(pattern); i++)
		pattern[i] = (uint8_t)(i * 7 + 3);
	memset(longest, 'x', sizeof(longest) - 1);
	longest[0] = 'P';
	memset(verbose, 'v', sizeof(verbose) - 1);
	const struct mgrok_plugin_desc *d = fuzz_auth_none_entry();
	none = (struct mgrok_auth_method){"none", d->wire_id, d->auth, fuzz_plugin_init(d, "{}")};
	for (int i = 0; i < 4; i++) {
		snprintf(client_proxies[i].name, sizeof(client_proxies[i].name), "%s", names[i]);
		client_proxies[i].plugin = &proxy_plugin;
		client_proxies[i].spec.name = client_proxies[i].name;
		client_proxies[i].bound = true;
	}
}

static bool start(uint8_t flags)
{
	int sv[2], small = 4096;
	/* The buffer stays from input to input: megabytes of fresh pages each
	 * time would cost more than the rest. */
	struct mgrok_buf keep = H.to_session;
	memset(&H, 0, sizeof(H));
	H.to_session = keep;
	H.to_session.off = H.to_session.len = 0;
	H.role = flags & 1 ? MGROK_ROLE_CLIENT : MGROK_ROLE_SERVER;
	H.reading = flags & 8;
	H.drain_locals = flags & 0x80;
	H.next_id = 2;
	fuzz_ctx.autotune = flags & 0x40;
	if (!make_pair(sv))
		return false;
	H.peer = sv[1];
	/* Small buffers on the way out of the session: its output queues. */
	if (flags & 0x10) {
		setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
		setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	}
	enum mgrok_role peer = H.role == MGROK_ROLE_SERVER ? MGROK_ROLE_CLIENT : MGROK_ROLE_SERVER;
	wire_init(&H.from_us, false, peer, &H.streams);
	wire_init(&H.to_us, true, H.role, &H.streams);
	H.s = mgrok_session_new(&fuzz_ctx, sv[0], H.role, NULL, &ops, &H);
	if (flags & 0x20)
		H.s->max_streams = 3;
	if (H.role == MGROK_ROLE_SERVER)
		mgrok_session_start_server(H.s, 10.0, find_auth, NULL);
	else
		mgrok_session_start_client(H.s, &none);
	if (flags & 2)
		send_bytes((const uint8_t *)(H.role == MGROK_ROLE_SERVER ? "GRT1\0\0\0" : "\0\0\0"),
		           H.role == MGROK_ROLE_SERVER ? 7 : 3);
	if ((flags & 4) && H.role == MGROK_ROLE_SERVER)
		send_bytes((const uint8_t *)"\x0b\x04"
		                            "fuzz\0\0",
		           8); /* HELLO "fuzz", no info */
	return true;
}

static void finish(void)
{
	if (H.s)
		mgrok_session_close(H.s, MGROK_GOAWAY_NORMAL, MGROK_CLOSE_LOCAL, "end of input");
	for (int i = 0; H.s && i < 8; i++)
		ev_run(fuzz_ctx.loop, EVRUN_NOWAIT);
	FUZZ_ASSERT(!H.s && H.closes == 1, "the session did not close (%u on_close)", H.closes);
	/* The last words (GO_AWAY) must parse too. */
	drain_peer();
	for (unsigned i = 0; i < H.ndgrams; i++)
		FUZZ_ASSERT(H.dgrams[i].ended, "datagram stream %u never ended", i);
	for (int i = 0; i < 4; i++)
		FUZZ_ASSERT(client_proxies[i].nstreams == 0, "proxy %s kept %u streams", names[i],
		            client_proxies[i].nstreams);
	if (H.peer >= 0)
		close(H.peer);
	for (unsigned i = 0; i < H.nlocals; i++)
		if (H.locals[i] >= 0)
			close(H.locals[i]);
	for (unsigned i = 0; i < H.nfds; i++)
		FUZZ_ASSERT(fcntl(H.fds[i], F_GETFD) < 0 && errno == EBADF,
		            "descriptor %d left open", H.fds[i]);
	FUZZ_ASSERT(ev_run(fuzz_ctx.loop, EVRUN_NOWAIT) == 0,
	            "watchers left active after the session");
	wire_free(&H.from_us);
	wire_free(&H.to_us);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready;
	struct fuzz_in in = {data, size};
	if (!ready) {
		setup();
		ready = true;
	}
	if (size < 1 || !start(fuzz_u8(&in)))
		return 0;
	for (unsigned i = 0; i < MAX_COMMANDS && fuzz_more(&in); i++)
		command(&in);
	finish();
	return 0;
}
