"""The wire protocol by hand (doc/protocol.md): constants, frame builders
and the auth proofs, written independently of the C codec."""

import hashlib
import hmac
import struct

# The handshake (doc/protocol.md 2).
MAGIC = b"GRT1"
AUTH_NONE, AUTH_TOKEN, AUTH_USERS = 0x00, 0x01, 0x02
HS_OK, HS_CHALLENGE, HS_DENIED, HS_UNSUPPORTED = 0, 1, 2, 3

# Frames (doc/protocol.md 3).
REGISTER, NEW_STREAM, DATA, CLOSE, HEARTBEAT = 0x01, 0x02, 0x03, 0x04, 0x05
REGISTER_ACK, WINDOW_UPDATE, RESET, GO_AWAY, UNREGISTER, HELLO = 0x06, 0x07, 0x08, 0x09, 0x0A, 0x0B
FRAME_NAMES = {REGISTER: "REGISTER", NEW_STREAM: "NEW_STREAM", DATA: "DATA", CLOSE: "CLOSE",
               HEARTBEAT: "HEARTBEAT", REGISTER_ACK: "REGISTER_ACK",
               WINDOW_UPDATE: "WINDOW_UPDATE", RESET: "RESET", GO_AWAY: "GO_AWAY",
               UNREGISTER: "UNREGISTER", HELLO: "HELLO"}

ACK_OK, ACK_PORT_IN_USE, ACK_PORT_NOT_ALLOWED, ACK_NAME_IN_USE = 0, 1, 2, 3
ACK_UNKNOWN_PROXY_TYPE, ACK_INVALID, ACK_LIMIT, ACK_FORBIDDEN = 4, 5, 6, 7
GOAWAY_NORMAL, GOAWAY_PROTOCOL_ERROR, GOAWAY_HEARTBEAT_TIMEOUT = 0, 1, 2
GOAWAY_REPLACED, GOAWAY_INTERNAL = 3, 4
RESET_CANCEL, RESET_CONNECT_FAILED, RESET_REFUSED, RESET_FLOW_CONTROL = 0, 1, 2, 3
PROXY_TCP, PROXY_UDP = 0x01, 0x02
WINDOW = 262144  # a stream's initial window (doc/protocol.md 3.3)


def u8(v):
    return struct.pack(">B", v)


def u16(v):
    return struct.pack(">H", v)


def u32(v):
    return struct.pack(">I", v)


def str8(b):
    b = b.encode() if isinstance(b, str) else b
    return u8(len(b)) + b


def str16(b):
    b = b.encode() if isinstance(b, str) else b
    return u16(len(b)) + b


def f_register(name, remote_port=0, proxy_type=PROXY_TCP, local_port=0, options=b""):
    return u8(REGISTER) + u8(proxy_type) + u16(remote_port) + u16(local_port) + str8(name) + \
        str16(options)


def f_hello(client_id, info=b""):
    return u8(HELLO) + str8(client_id) + str16(info)


def f_data(sid, data):
    return u8(DATA) + u32(sid) + str16(data)


def f_close(sid):
    return u8(CLOSE) + u32(sid)


def f_window_update(sid, inc):
    return u8(WINDOW_UPDATE) + u32(sid) + u32(inc)


def f_reset(sid, code):
    return u8(RESET) + u32(sid) + u8(code)


def f_unregister(name):
    return u8(UNREGISTER) + str8(name)


# Frames only a server sends, for a FakeServer.


def f_new_stream(sid, name, family=0, addr=b"", port=0):
    tail = u8(family) + (addr + u16(port) if family else b"")
    return u8(NEW_STREAM) + u32(sid) + str8(name) + tail


def f_new_streams(first_sid, count, name=b"nope"):
    """count NEW_STREAM frames for name with stream IDs first_sid, +2, ...
    (built by slicing, fast enough for floods of megabytes)."""
    size = len(f_new_stream(0, name))
    block = bytearray(f_new_stream(0, name) * count)
    ids = struct.pack(">%dI" % count, *range(first_sid, first_sid + 2 * count, 2))
    for k in range(4):
        block[1 + k::size] = ids[k::4]
    return bytes(block)


def f_register_ack(status, name, port=0, message=b"", proxy_type=PROXY_TCP):
    return u8(REGISTER_ACK) + u8(status) + u8(proxy_type) + u16(port) + str8(name) + \
        str16(message)


def token_proof(token, label, a, b):
    """The `token` method's HMAC (doc/protocol.md 2.2)."""
    return hmac.new(token.encode(), label + a + b, hashlib.sha256).digest()


def users_proof(token, label, *parts):
    """The `users` method's HMAC: like token_proof, with the user name bound
    in (client: label || user || cnonce || snonce; server: label || snonce ||
    cnonce || user)."""
    return hmac.new(token.encode(), label + b"".join(parts), hashlib.sha256).digest()


class Frame:
    def __init__(self, type, **fields):
        self.type = type
        self.__dict__.update(fields)

    def __repr__(self):
        fields = ", ".join("%s=%r" % kv for kv in self.__dict__.items() if kv[0] != "type")
        return "%s(%s)" % (FRAME_NAMES.get(self.type, "0x%02x" % self.type), fields)
