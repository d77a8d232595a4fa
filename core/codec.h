/*
 * GRT1 wire codec (doc/protocol.md 2 and 3). Pure: bytes in, frames out, and
 * frames in, bytes appended to a caller's buffer. No I/O, no allocation on
 * the parse path except the decoder's buffer for one partial frame.
 */
#ifndef MGROK_CODEC_H
#define MGROK_CODEC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "buf.h"
#include "mgrok/plugin.h"

#define MGROK_MAGIC "GRT1"
#define MGROK_HS_PAYLOAD_MAX 4096
#define MGROK_NAME_MAX 64 /* proxy names, client ids */
#define MGROK_STR_(x) #x
#define MGROK_STR(x) MGROK_STR_(x)
/* What a valid proxy name is, for messages. */
#define MGROK_NAME_RULE "1-" MGROK_STR(MGROK_NAME_MAX) " characters of A-Z a-z 0-9 . _ -"
#define MGROK_OPTIONS_MAX 4096 /* REGISTER options; longer is REGISTER_ACK INVALID */
#define MGROK_INFO_MAX 1024    /* HELLO info */
#define MGROK_MESSAGE_MAX 1024 /* REGISTER_ACK and GO_AWAY messages */
#define MGROK_DATA_MAX 65535
#define MGROK_DATA_HEADER 7 /* type, streamID, length */
#define MGROK_WINDOW_INITIAL 262144u
#define MGROK_WINDOW_MAX 16777216u

enum mgrok_frame_type {
	MGROK_FRAME_REGISTER = 0x01,
	MGROK_FRAME_NEW_STREAM = 0x02,
	MGROK_FRAME_DATA = 0x03,
	MGROK_FRAME_CLOSE = 0x04,
	MGROK_FRAME_HEARTBEAT = 0x05,
	MGROK_FRAME_REGISTER_ACK = 0x06,
	MGROK_FRAME_WINDOW_UPDATE = 0x07,
	MGROK_FRAME_RESET = 0x08,
	MGROK_FRAME_GO_AWAY = 0x09,
	MGROK_FRAME_UNREGISTER = 0x0A,
	MGROK_FRAME_HELLO = 0x0B,
};

/* The handshake reply status, RESET codes and REGISTER_ACK status are in
 * mgrok/plugin.h: plugins speak them too. Results of the handshake state
 * machines are MGROK_HS_* in handshake.h. */

enum mgrok_goaway_code {
	MGROK_GOAWAY_NORMAL = 0,
	MGROK_GOAWAY_PROTOCOL_ERROR = 1,
	MGROK_GOAWAY_HEARTBEAT_TIMEOUT = 2,
	MGROK_GOAWAY_REPLACED = 3,
	MGROK_GOAWAY_INTERNAL = 4,
};

/* Who sent the bytes being decoded: frames are checked for direction. */
enum mgrok_role { MGROK_ROLE_CLIENT = 1, MGROK_ROLE_SERVER = 2 };

/* Borrowed bytes: valid only during the callback that receives them. */
struct mgrok_bytes {
	const uint8_t *p;
	size_t len;
};

/* doc/protocol.md 1 `addr`: family 0 (none), 4 or 6. */
struct mgrok_wire_addr {
	uint8_t family;
	uint8_t ip[16]; /* 4 or 16 bytes used */
	uint16_t port;
};

struct mgrok_frame {
	uint8_t type;
	uint32_t stream_id; /* NEW_STREAM, DATA, CLOSE, WINDOW_UPDATE, RESET */
	union {
		struct {
			uint8_t proxy_type;
			uint16_t remote_port;
			uint16_t local_port;
			struct mgrok_bytes name;
			struct mgrok_bytes options;
		} reg;
		struct {
			struct mgrok_bytes name;
			struct mgrok_wire_addr source;
		} new_stream;
		struct mgrok_bytes data;
		struct {
			uint8_t status;
			uint8_t proxy_type;
			uint16_t remote_port;
			struct mgrok_bytes name;
			struct mgrok_bytes message;
		} ack;
		uint32_t increment;
		uint8_t reset_code;
		struct {
			uint8_t code;
			struct mgrok_bytes message;
		} go_away;
		struct mgrok_bytes unreg_name;
		struct {
			struct mgrok_bytes client_id;
			struct mgrok_bytes info;
		} hello;
	} u;
};

/*
 * Parses one frame from the start of p[0..len). Returns 1 and sets *used
 * when a whole frame is there, 0 when more bytes are needed (*used then
 * holds the least total length that could complete it), or -1 with a
 * reason in err on a protocol error. sender is who sent the bytes.
 * The frame's byte fields point into p.
 */
int mgrok_frame_parse(const uint8_t *p, size_t len, enum mgrok_role sender, struct mgrok_frame *f,
                      size_t *used, char *err, size_t errlen);

/*
 * Incremental decoder: feed it bytes in any split. Whole frames found in
 * the fed bytes are handed to cb without copying; only the tail of a frame
 * that straddles two feeds is copied into the decoder.
 */
struct mgrok_decoder {
	enum mgrok_role sender;
	struct mgrok_buf partial;
	char err[160];
};

/*
 * cb returns 0 to go on; MGROK_DECODE_PAUSE to stop after this frame and
 * keep the rest of the fed bytes in the decoder (the next feed, which may be
 * empty, delivers them first); anything else to stop feeding: that value is
 * returned and the fed bytes after that frame are dropped (a callback stops
 * so only when the session is closing). cb must not feed the same decoder.
 */
typedef int (*mgrok_frame_cb)(void *arg, const struct mgrok_frame *f);
#define MGROK_DECODE_PAUSE 2

void mgrok_decoder_init(struct mgrok_decoder *d, enum mgrok_role sender);
void mgrok_decoder_free(struct mgrok_decoder *d);
/* Returns 0 when all bytes were taken, -1 on a protocol error (reason in
 * d->err), or the callback's non-zero value. After -1 the decoder stays
 * failed: every later feed returns -1 without reading. A pause keeps at
 * most the bytes of that one feed (plus one partial frame). */
int mgrok_decoder_feed(struct mgrok_decoder *d, const uint8_t *p, size_t len, mgrok_frame_cb cb,
                       void *arg);

/* Appends the encoding of f to out. Returns 0, or -1 if a field is too long. */
int mgrok_frame_encode(const struct mgrok_frame *f, struct mgrok_buf *out);
/* DATA header in place, for payload read straight behind it. */
void mgrok_frame_data_header(uint8_t hdr[MGROK_DATA_HEADER], uint32_t stream_id, uint16_t len);

/* Handshake messages (doc/protocol.md 2). Parsers return 1 / 0 / -1 as above. */
int mgrok_hs_parse_first(const uint8_t *p, size_t len, uint8_t *method, struct mgrok_bytes *payload,
                         size_t *used, char *err, size_t errlen);
int mgrok_hs_parse_answer(const uint8_t *p, size_t len, struct mgrok_bytes *payload, size_t *used,
                          char *err, size_t errlen);
int mgrok_hs_parse_reply(const uint8_t *p, size_t len, uint8_t *status, struct mgrok_bytes *payload,
                         size_t *used, char *err, size_t errlen);
int mgrok_hs_encode_first(struct mgrok_buf *out, uint8_t method, const void *payload, size_t len);
int mgrok_hs_encode_answer(struct mgrok_buf *out, const void *payload, size_t len);
int mgrok_hs_encode_reply(struct mgrok_buf *out, uint8_t status, const void *payload, size_t len);

/* Wire address <-> sockaddr. IPv4-mapped IPv6 becomes family 4. */
void mgrok_wire_addr_from_sockaddr(struct mgrok_wire_addr *w, const struct sockaddr *sa);
/* Returns the sockaddr length, or 0 for family 0. */
unsigned mgrok_wire_addr_to_sockaddr(const struct mgrok_wire_addr *w, struct sockaddr_storage *ss);

const char *mgrok_frame_type_name(uint8_t type);

#endif
