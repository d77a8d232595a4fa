"""WebSocket (RFC 6455) with the standard library only: an echo server
(a handler for Service) and a client, enough to see that an Upgrade goes
through a tunnel and that both directions then carry raw frames."""

import base64
import hashlib
import os
import socket
import struct

from .checks import DEADLINE, TestFailure, check, check_eq
from .nginx import Message, Reader, parse_fields, read_head

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 1.3
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def accept_key(key):
    """Sec-WebSocket-Accept for a Sec-WebSocket-Key (RFC 6455 4.2.2)."""
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


def _mask(data, key):
    """data XOR the 4-byte key repeated (5.3), fast enough for megabytes."""
    n = len(data)
    if not n:
        return b""
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(k, "big")).to_bytes(n, "big")


def frame(opcode, payload, mask=False, fin=True):
    """One frame (5.2); a client's frames are masked."""
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    bit = 0x80 if mask else 0
    if n < 126:
        head += bytes([bit | n])
    elif n < 1 << 16:
        head += bytes([bit | 126]) + struct.pack(">H", n)
    else:
        head += bytes([bit | 127]) + struct.pack(">Q", n)
    if mask:
        key = os.urandom(4)
        return head + key + _mask(payload, key)
    return head + payload


def read_frame(rd):
    """(fin, opcode, payload, masked) of the next frame from a Reader;
    None at EOF before its first byte."""
    if rd.at_eof():
        return None
    b0, b1 = rd.exact(2)
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack(">H", rd.exact(2))[0]
    elif n == 127:
        n = struct.unpack(">Q", rd.exact(8))[0]
    masked = bool(b1 & 0x80)
    key = rd.exact(4) if masked else None
    payload = rd.exact(n)
    if masked:
        payload = _mask(payload, key)
    return bool(b0 & 0x80), b0 & 0x0F, payload, masked


def read_message(rd):
    """(opcode, payload) of the next message, fragments joined; control
    frames come back as they are.  None at EOF."""
    parts, first = [], None
    while True:
        f = read_frame(rd)
        if f is None:
            return None
        fin, op, payload, _ = f
        if op >= OP_CLOSE:
            return op, payload
        if first is None:
            first = op
        parts.append(payload)
        if fin:
            return first, b"".join(parts)


# ---- the server -------------------------------------------------------------------------


def echo_handler(conn):
    """A Service handler: answers the opening handshake (4.2), then echoes
    every message with its opcode, answers pings, and closes after a close
    (5.5.1).  Anything else than a valid handshake gets a 400."""
    rd = Reader(conn)
    head = read_head(rd)
    if head is None:
        return
    first, lines = head
    req = Message(first, parse_fields(lines))
    key = req.header("sec-websocket-key")
    if "websocket" not in (req.header("upgrade") or "").lower() or not key:
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        return
    conn.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                  "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n"
                  % accept_key(key)).encode())
    while True:
        msg = read_message(rd)
        if msg is None:
            return
        op, payload = msg
        if op == OP_PING:
            conn.sendall(frame(OP_PONG, payload))
        elif op == OP_CLOSE:
            conn.sendall(frame(OP_CLOSE, payload[:2]))
            return
        elif op in (OP_TEXT, OP_BINARY):
            conn.sendall(frame(op, payload))


# ---- the client -------------------------------------------------------------------------


class Client:
    """A WebSocket client on 127.0.0.1:port with Host host: the opening
    handshake is done (and Sec-WebSocket-Accept checked) in the
    constructor; .response is the 101."""

    def __init__(self, port, host, path="/", timeout=DEADLINE, extra_fields=()):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        fields = "".join("%s: %s\r\n" % kv for kv in extra_fields)
        self.sock.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
                           "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                           "Sec-WebSocket-Version: 13\r\n%s\r\n" % (path, host, key, fields))
                          .encode())
        self.rd = Reader(self.sock)
        head = read_head(self.rd)
        check(head is not None, "EOF instead of an answer to the WebSocket handshake")
        first, lines = head
        self.response = Message(first, parse_fields(lines))
        if not first.startswith(b"HTTP/1.1 101"):
            self.sock.close()
            raise TestFailure("the WebSocket handshake got %r" % first, fields=self.response.fields)
        check_eq(self.response.header("sec-websocket-accept"), accept_key(key),
                 "Sec-WebSocket-Accept")

    def send(self, payload, binary=True):
        self.sock.sendall(frame(OP_BINARY if binary else OP_TEXT, payload, mask=True))

    def send_fragmented(self, payload, pieces=3, binary=True):
        step = max(1, len(payload) // pieces)
        chunks = [payload[i:i + step] for i in range(0, len(payload), step)] or [b""]
        for i, c in enumerate(chunks):
            op = (OP_BINARY if binary else OP_TEXT) if i == 0 else OP_CONT
            self.sock.sendall(frame(op, c, mask=True, fin=i == len(chunks) - 1))

    def ping(self, payload=b"ping"):
        self.sock.sendall(frame(OP_PING, payload, mask=True))

    def recv(self, what="a message"):
        """(opcode, payload) of the next message; fails at EOF."""
        msg = read_message(self.rd)
        check(msg is not None, "the WebSocket connection was closed while waiting for %s" % what)
        return msg

    def close(self, code=1000):
        """The closing handshake: sends a close, expects the echo and EOF."""
        self.sock.sendall(frame(OP_CLOSE, struct.pack(">H", code), mask=True))
        try:
            op, payload = self.recv("the answer to a close")
            check_eq(op, OP_CLOSE, "opcode of the answer to a close")
            check_eq(payload[:2], struct.pack(">H", code), "status code of the close answer")
            check(self.rd.at_eof(), "bytes after the close handshake")
        finally:
            self.sock.close()
