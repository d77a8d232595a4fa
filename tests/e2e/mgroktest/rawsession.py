"""A hand-written peer: RawSession speaks the handshake and frames byte by
byte, as a client (or, over an accepted socket, as a server); FakeServer
stands in for mgrokd."""

import hmac
import os
import select
import socket
import struct
import time

from .checks import DEADLINE, TestFailure, check, check_eq
from .services import recv_all
from .visitors import connect
from .wire import (ACK_OK, AUTH_TOKEN, AUTH_USERS, CLOSE, DATA, FRAME_NAMES, GO_AWAY, HEARTBEAT,
                   HELLO, HS_CHALLENGE, HS_OK, MAGIC, NEW_STREAM, REGISTER, REGISTER_ACK, RESET,
                   UNREGISTER, WINDOW_UPDATE, Frame, f_close, f_data, f_hello, f_register,
                   f_register_ack, str8, str16, token_proof, u8, users_proof)


class RawSession:
    """A hand-written client: speaks the handshake and frames byte by byte,
    so tests can send what the real client never would."""

    def __init__(self, port, host="127.0.0.1", timeout=DEADLINE, source=None, sockopts=()):
        """source: the local address to connect from (any of 127.0.0.0/8
        on loopback); sockopts: (level, option, value) set before connect
        (e.g. a small SO_RCVBUF, which only takes full effect then)."""
        self.timeout = timeout
        if source is None and not sockopts:
            self.sock = socket.create_connection((host, port), timeout=timeout)
        else:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            self.sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                for level, opt, value in sockopts:
                    self.sock.setsockopt(level, opt, value)
                if source is not None:
                    self.sock.bind((source, 0))
                self.sock.settimeout(timeout)
                self.sock.connect((host, port))
            except BaseException:
                self.sock.close()
                raise
        self.sock.settimeout(timeout)
        self.buf = b""

    @classmethod
    def from_socket(cls, sock, timeout=DEADLINE):
        """A RawSession over a connected socket (one a FakeServer accepted)."""
        self = cls.__new__(cls)
        self.timeout = timeout
        self.sock = sock
        self.sock.settimeout(timeout)
        self.buf = b""
        return self

    def close(self):
        self.sock.close()

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self, n):
        """At least n bytes in the buffer, or False at EOF."""
        while len(self.buf) < n:
            b = self.sock.recv(65536)
            if not b:
                return False
            self.buf += b
        return True

    def read_exact(self, n, what="bytes"):
        if not self._fill(n):
            raise TestFailure("connection closed while reading %s (have %d of %d bytes: %r)"
                              % (what, len(self.buf), n, self.buf[:64]))
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _u8(self, what):
        return self.read_exact(1, what)[0]

    def _u16(self, what):
        return struct.unpack(">H", self.read_exact(2, what))[0]

    def _u32(self, what):
        return struct.unpack(">I", self.read_exact(4, what))[0]

    def _str8(self, what):
        return self.read_exact(self._u8(what + " length"), what)

    def _str16(self, what):
        return self.read_exact(self._u16(what + " length"), what)

    def read_eof(self, what="the server to close the connection"):
        """Everything until EOF (a reset counts as EOF)."""
        try:
            while self._fill(len(self.buf) + 1):
                pass
        except ConnectionResetError:
            pass
        except socket.timeout:
            raise TestFailure("timed out waiting for %s (received %r)" % (what, self.buf[:64]))
        out, self.buf = self.buf, b""
        return out

    # handshake

    def hs_send(self, method, payload):
        self.send(MAGIC + u8(method) + str16(payload))

    def hs_reply(self):
        status = self._u8("handshake status")
        return status, self._str16("handshake payload")

    def handshake(self, token):
        """The token method (doc/protocol.md 2.2); checks the server's proof."""
        cnonce = os.urandom(16)
        self.hs_send(AUTH_TOKEN, cnonce)
        status, snonce = self.hs_reply()
        check_eq(status, HS_CHALLENGE, "handshake reply to the token method", payload=snonce)
        check_eq(len(snonce), 16, "length of the server nonce")
        self.send(str16(token_proof(token, b"mgrok-token-v1 client", cnonce, snonce)))
        status, proof = self.hs_reply()
        check_eq(status, HS_OK, "handshake reply to the right proof", payload=proof)
        expected = token_proof(token, b"mgrok-token-v1 server", snonce, cnonce)
        check(hmac.compare_digest(proof, expected), "wrong server proof", proof=proof.hex(),
              expected=expected.hex())
        return self

    def handshake_users(self, user, token, expect_ok=True):
        """The `users` method (auth-users plugin). With expect_ok, checks for OK
        and the server's proof and returns self; otherwise returns the
        server's (status, payload) after the proof."""
        cnonce = os.urandom(16)
        name = user.encode()
        self.hs_send(AUTH_USERS, str8(name) + cnonce)
        status, snonce = self.hs_reply()
        check_eq(status, HS_CHALLENGE, "handshake reply to the users method (user %s)" % user,
                 payload=snonce)
        check_eq(len(snonce), 16, "length of the server nonce")
        self.send(str16(users_proof(token, b"mgrok-users-v1 client", name, cnonce, snonce)))
        status, reply = self.hs_reply()
        if not expect_ok:
            return status, reply
        check_eq(status, HS_OK, "handshake reply to user %s's right proof" % user, payload=reply)
        expected = users_proof(token, b"mgrok-users-v1 server", snonce, cnonce, name)
        check(hmac.compare_digest(reply, expected), "wrong server proof (users)",
              proof=reply.hex(), expected=expected.hex())
        return self

    def hello(self, client_id, info=b""):
        """HELLO (doc/protocol.md 3.5): the first frame after the handshake."""
        self.send(f_hello(client_id, info))
        return self

    def serve_visitor(self, port, request, reply, host="127.0.0.1"):
        """Plays the client's side of one visitor connection: a visitor
        connects to the public port and sends request; this session gets
        NEW_STREAM and the request's DATA, answers reply and CLOSE; returns
        what the visitor received until EOF."""
        v = connect(port, host)
        try:
            v.sendall(request)
            v.shutdown(socket.SHUT_WR)
            ns = self.next_frame(NEW_STREAM, "NEW_STREAM for a visitor of port %d" % port)
            got = b""
            while True:
                f = self.next_frame((DATA, CLOSE, RESET), "the visitor's data on stream %d"
                                    % ns.sid)
                check_eq(f.sid, ns.sid, "stream ID of a frame for the visitor", frame=f)
                check(f.type != RESET, "the server reset the visitor's stream", frame=f)
                if f.type == CLOSE:
                    break
                got += f.data
            check_eq(got, request, "the visitor's bytes as the session got them")
            for off in range(0, len(reply), 16384):
                self.send(f_data(ns.sid, reply[off:off + 16384]))
            self.send(f_close(ns.sid))
            return recv_all(v)
        finally:
            v.close()

    # frames

    def read_frame(self):
        """The next frame from the server, or None at EOF."""
        try:
            if not self._fill(1):
                return None
        except ConnectionResetError:
            return None
        t = self._u8("frame type")
        if t == REGISTER_ACK:
            return Frame(t, status=self._u8("status"), proxy_type=self._u8("proxy type"),
                         port=self._u16("port"), name=self._str8("name"),
                         message=self._str16("message").decode("utf-8", "replace"))
        if t == GO_AWAY:
            return Frame(t, code=self._u8("code"),
                         message=self._str16("message").decode("utf-8", "replace"))
        if t == HEARTBEAT:
            return Frame(t)
        if t == NEW_STREAM:
            sid, name = self._u32("stream ID"), self._str8("name")
            family = self._u8("address family")
            size = {0: 0, 4: 4, 6: 16}.get(family)
            check(size is not None, "NEW_STREAM with address family %d" % family)
            addr = self.read_exact(size, "address") if size else b""
            port = self._u16("port") if size else 0
            return Frame(t, sid=sid, name=name, family=family, addr=addr, port=port)
        if t == DATA:
            return Frame(t, sid=self._u32("stream ID"), data=self._str16("payload"))
        if t == CLOSE:
            return Frame(t, sid=self._u32("stream ID"))
        if t == WINDOW_UPDATE:
            return Frame(t, sid=self._u32("stream ID"), increment=self._u32("increment"))
        if t == RESET:
            return Frame(t, sid=self._u32("stream ID"), code=self._u8("code"))
        raise TestFailure("the server sent a frame of unknown type 0x%02x (then %r)"
                          % (t, self.buf[:32]))

    # the server's side, for a FakeServer

    def serve_registration(self, token, port):
        """The server's side up to the REGISTER_ACK OK (on port) of the
        client's first proxy. Returns that REGISTER."""
        self.serve_handshake(token)
        self.next_client_frame(HELLO)
        reg = self.next_client_frame(REGISTER)
        self.send(f_register_ack(ACK_OK, reg.name, port, ("tcp://127.0.0.1:%d" % port).encode()))
        return reg

    def serve_handshake(self, token):
        """The server's side of the token method (doc/protocol.md 2.2): checks
        the client's proof and answers OK with the server's."""
        magic = self.read_exact(4, "the client's magic")
        check_eq(magic, MAGIC, "the client's magic")
        method = self._u8("auth method")
        check_eq(method, AUTH_TOKEN, "the client's auth method")
        cnonce = self._str16("client nonce")
        snonce = os.urandom(16)
        self.send(u8(HS_CHALLENGE) + str16(snonce))
        proof = self._str16("client proof")
        check(hmac.compare_digest(proof, token_proof(token, b"mgrok-token-v1 client", cnonce,
                                                     snonce)), "wrong client proof")
        self.send(u8(HS_OK) + str16(token_proof(token, b"mgrok-token-v1 server", snonce,
                                                cnonce)))
        return self

    def read_client_frame(self):
        """The next frame from a client, or None at EOF."""
        try:
            if not self._fill(1):
                return None
        except ConnectionResetError:
            return None
        t = self._u8("frame type")
        if t == REGISTER:
            return Frame(t, proxy_type=self._u8("proxy type"), port=self._u16("remote port"),
                         local_port=self._u16("local port"), name=self._str8("name"),
                         options=self._str16("options"))
        if t == HELLO:
            return Frame(t, client_id=self._str8("client ID"), info=self._str16("info"))
        if t == UNREGISTER:
            return Frame(t, name=self._str8("name"))
        if t in (HEARTBEAT, GO_AWAY, DATA, CLOSE, WINDOW_UPDATE, RESET):
            self.buf = u8(t) + self.buf
            return self.read_frame()
        raise TestFailure("the client sent a frame of unknown type 0x%02x (then %r)"
                          % (t, self.buf[:32]))

    def next_client_frame(self, types, what=None, skip=(HEARTBEAT, WINDOW_UPDATE)):
        """next_frame for the frames of a client."""
        types = (types,) if isinstance(types, int) else tuple(types)
        what = what or "/".join(FRAME_NAMES.get(x, hex(x)) for x in types)
        while True:
            try:
                f = self.read_client_frame()
            except socket.timeout:
                raise TestFailure("timed out while waiting for %s from the client" % what)
            check(f is not None, "connection closed while waiting for %s" % what)
            if f.type in types:
                return f
            if f.type not in skip:
                raise TestFailure("expected %s from the client, got %r" % (what, f))

    def next_frame(self, types, what=None, skip=(HEARTBEAT, WINDOW_UPDATE)):
        """The next frame of one of types, skipping those of the types in skip;
        fails at EOF or on any other frame."""
        types = (types,) if isinstance(types, int) else tuple(types)
        end = time.monotonic() + self.timeout
        while True:
            self.sock.settimeout(max(0.1, end - time.monotonic()))
            try:
                f = self.read_frame()
            except socket.timeout:
                f = "timeout"
            finally:
                self.sock.settimeout(self.timeout)
            check(f is not None and f != "timeout", "%s while waiting for %s" % (
                "timed out" if f else "connection closed",
                what or "/".join(FRAME_NAMES.get(x, hex(x)) for x in types)))
            if f.type in types:
                return f
            if f.type in skip:
                continue
            raise TestFailure("expected %s, got %r" % (
                what or "/".join(FRAME_NAMES.get(x, hex(x)) for x in types), f))

    def register(self, name, remote_port=0, **kw):
        self.send(f_register(name, remote_port, **kw))
        return self.next_frame(REGISTER_ACK)

    def expect_go_away(self, code, what, skip=(HEARTBEAT, WINDOW_UPDATE)):
        """The server answers with GO_AWAY(code) and closes the connection."""
        f = self.next_frame(GO_AWAY, "GO_AWAY after %s" % what, skip)
        check_eq(f.code, code, "GO_AWAY code after %s" % what, message=f.message)
        rest = self.read_eof()
        check_eq(rest, b"", "bytes after GO_AWAY (%s)" % what)
        return f


class FakeServer:
    """A stand-in for mgrokd on 127.0.0.1:port, written by hand, for tests of
    mgrok against a server that misbehaves.  accept() returns a RawSession
    over the next connection; the test plays the server's side with
    serve_handshake, next_client_frame and send.  sockopts are set on the
    listening socket, so accepted connections inherit them (a small
    SO_RCVBUF makes a server that does not read)."""

    def __init__(self, port, host="127.0.0.1", sockopts=()):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        for level, opt, value in sockopts:
            self.sock.setsockopt(level, opt, value)
        self.sock.bind((host, port))
        self.sock.listen(16)
        self.port = port

    def accept(self, timeout=DEADLINE):
        r, _, _ = select.select([self.sock], [], [], timeout)
        check(r, "nobody connected to the fake server within %.0f s" % timeout)
        conn, _ = self.sock.accept()
        return RawSession.from_socket(conn, timeout)

    def close(self):
        self.sock.close()
