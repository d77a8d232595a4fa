#!/usr/bin/env python3
"""Raw bytes against mgrokd's control port: wrong magic, failed handshakes,
protocol errors after a good handshake, every REGISTER_ACK status, and the
handshake timeout.  A real mgrok client on the same server keeps working
after each bad session."""
import json
import os
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mgroktest as t
from mgroktest import (u8, u16, u32, str8, str16, f_hello, f_register, f_data, f_close,
                       f_window_update, f_reset, f_unregister, RawSession)

TOKEN = "bad-input-token-5e1f"
CLIENT_ID = b"0123456789abcdef0123456789abcdef"


class Witness:
    """A real client and its echo tunnel, checked after every bad session."""

    def __init__(self, env, srv):
        self.srv = srv
        self.echo = env.echo_service()
        self.cl = env.start_client(self.echo.port, srv, token=TOKEN, remote_port=srv.allow[0],
                                   cname="mgrok-witness")
        self.port = self.cl.public_port
        t.check_eq(self.port, srv.allow[0], "the witness's public port")
        self.checks = 0

    def __call__(self, after):
        t.check(self.srv.alive(), "mgrokd died after %s" % after)
        t.check(self.cl.alive(), "the witness client died after %s" % after)
        self.checks += 1
        t.echo_check(self.port, ("still working after %s\n" % after).encode(),
                     what="witness echo after %s" % after)
        t.check_eq(len(self.cl.public_lines()), 1,
                   "the witness's session was disturbed by %s (it registered again)" % after)


# The server answers each frame at once; this only turns a missing answer
# into a failure before the server's own heartbeat timeout (30 s) hides it.
REPLY_DEADLINE = 10


def session(srv, hello=True):
    s = RawSession(srv.port, timeout=REPLY_DEADLINE).handshake(TOKEN)
    if hello:
        s.send(f_hello(CLIENT_ID))
    return s


# ---- (a) before and during the handshake ----------------------------------------


def bad_handshakes(srv, witness):
    for label, data in (
            ("wrong magic", b"XRT1" + u8(1) + str16(os.urandom(16))),
            ("an HTTP request", b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"),
            ("a future version's magic", b"GRT2" + u8(1) + str16(os.urandom(16)))):
        s = RawSession(srv.port)
        try:
            s.send(data)
            rest = s.read_eof("the server to close the connection after %s" % label)
        finally:
            s.close()
        t.check_eq(rest, b"", "reply bytes to %s" % label)
        witness(label)

    # A wrong proof: DENIED with a reason, then the connection is closed.
    s = RawSession(srv.port)
    try:
        s.hs_send(t.AUTH_TOKEN, os.urandom(16))
        status, snonce = s.hs_reply()
        t.check_eq(status, t.HS_CHALLENGE, "handshake reply to the token method")
        s.send(str16(os.urandom(32)))
        status, reason = s.hs_reply()
        t.check_eq(status, t.HS_DENIED, "handshake reply to a wrong proof", reason=reason)
        t.check(b"authentication failed" in reason, "DENIED reason", reason=reason)
        t.check_eq(s.read_eof(), b"", "bytes after DENIED")
    finally:
        s.close()
    witness("a wrong proof")

    # Auth methods this server does not offer: UNSUPPORTED_METHOD, then closed.
    for method in (t.AUTH_NONE, 0x99):
        s = RawSession(srv.port)
        try:
            s.hs_send(method, b"")
            status, reason = s.hs_reply()
            t.check_eq(status, t.HS_UNSUPPORTED, "handshake reply to method 0x%02x" % method,
                       reason=reason)
            t.check_eq(s.read_eof(), b"", "bytes after UNSUPPORTED_METHOD")
        finally:
            s.close()
        witness("auth method 0x%02x" % method)
    t.log("(a) wrong magic and failed handshakes: closed, server fine")


# ---- (b) protocol errors after a good handshake ---------------------------------


PROTOCOL_ERRORS = [
    # (what, bytes after the handshake, send HELLO first)
    ("an unknown frame type 0x0C", u8(0x0C) + b"\x00" * 8, True),
    ("frame type 0x00", u8(0x00) + b"\x00" * 8, True),
    ("frame type 0xFF", u8(0xFF) + b"\x00" * 8, True),
    ("DATA on stream 0", f_data(0, b"hello"), True),
    ("CLOSE on stream 0", f_close(0), True),
    ("WINDOW_UPDATE on stream 0", f_window_update(0, 4096), True),
    ("RESET on stream 0", f_reset(0, 0), True),
    ("NEW_STREAM from the client", u8(t.NEW_STREAM) + u32(1) + str8(b"x") + u8(0), True),
    ("REGISTER_ACK from the client",
     u8(t.REGISTER_ACK) + u8(0) + u8(1) + u16(0) + str8(b"x") + str16(b""), True),
    ("HELLO twice", f_hello(CLIENT_ID), True),
    ("HELLO after a HEARTBEAT", u8(t.HEARTBEAT) + f_hello(CLIENT_ID), False),
    ("HELLO with an empty clientId", f_hello(b""), False),
    ("HELLO with a 65-byte clientId", f_hello(b"x" * 65), False),
    ("HELLO with 1025 bytes of info", f_hello(CLIENT_ID, b"{" + b" " * 1023 + b"}"), False),
    ("UNREGISTER with an empty name", f_unregister(b""), True),
    ("NEW_STREAM with a bad address family",
     u8(t.NEW_STREAM) + u32(2) + str8(b"x") + u8(5), True),
]


def protocol_errors(env, srv, witness):
    for what, data, hello in PROTOCOL_ERRORS:
        with env.case(what):
            s = session(srv, hello)
            try:
                s.send(data)
                f = s.expect_go_away(t.GOAWAY_PROTOCOL_ERROR, what)
            finally:
                s.close()
            t.log("  %s: GO_AWAY(PROTOCOL_ERROR, %r)" % (what, f.message))
        witness(what)

    # HELLO after a REGISTER: the REGISTER is answered, the HELLO is an error.
    s = session(srv, hello=False)
    try:
        s.send(f_register("early") + f_hello(CLIENT_ID))
        ack = s.next_frame(t.REGISTER_ACK)
        t.check_eq(ack.status, t.ACK_OK, "REGISTER before HELLO", message=ack.message)
        s.expect_go_away(t.GOAWAY_PROTOCOL_ERROR, "HELLO after REGISTER")
    finally:
        s.close()
    # Its port was freed with the session: a new session may have it.
    s = session(srv)
    try:
        again = s.register("again", ack.port)
        t.check_eq(again.status, t.ACK_OK, "the port of a session that ended is free at once",
                   message=again.message)
    finally:
        s.close()
    witness("HELLO after REGISTER")

    # A truncated frame, then the client's FIN.
    with env.case("a truncated frame and EOF"):
        s = session(srv)
        try:
            s.send(f_register("cut", srv.allow[0])[:6])
            s.sock.shutdown(socket.SHUT_WR)
            s.expect_go_away(t.GOAWAY_PROTOCOL_ERROR, "a truncated frame and EOF")
        finally:
            s.close()
    witness("a truncated frame")
    t.log("(b) protocol errors: GO_AWAY(PROTOCOL_ERROR) and closed each time")


# ---- streams, by hand -----------------------------------------------------------


def open_stream(s, port, proxy):
    """A visitor connects to port; returns (visitor socket, NEW_STREAM frame)."""
    v = t.connect(port)
    ns = s.next_frame(t.NEW_STREAM)
    t.check_eq(ns.name, proxy.encode(), "NEW_STREAM's proxy name")
    t.check(ns.sid >= 2 and ns.sid % 2 == 0, "server stream IDs are even and >= 2", sid=ns.sid)
    t.check_eq(ns.family, 4, "NEW_STREAM source address family")
    t.check_eq(ns.addr, bytes([127, 0, 0, 1]), "NEW_STREAM source address")
    t.check_eq(ns.port, v.getsockname()[1], "NEW_STREAM source port")
    return v, ns


def stream_errors(srv, witness):
    port = srv.allow[1]  # allow[0] is the witness's
    s = session(srv)
    try:
        ack = s.register("raw", port)
        t.check_eq(ack.status, t.ACK_OK, "REGISTER raw", message=ack.message)
        # The hand-written client serves a visitor.
        v, ns = open_stream(s, port, "raw")
        v.sendall(b"hi from the visitor")
        v.shutdown(socket.SHUT_WR)
        got = b""
        while True:
            f = s.next_frame((t.DATA, t.CLOSE))
            t.check_eq(f.sid, ns.sid, "stream ID of the visitor's bytes")
            if f.type == t.CLOSE:
                break
            got += f.data
        t.check_eq(got, b"hi from the visitor", "the visitor's bytes as DATA frames")
        s.send(f_data(ns.sid, b"hello, visitor") + f_close(ns.sid))
        t.check_eq(t.recv_all(v), b"hello, visitor", "DATA and CLOSE as the visitor sees them")
        v.close()
        # DATA for a stream the server does not know is ignored.
        s.send(f_data(1000, b"stray") + f_window_update(1002, 10) + f_close(1004))
        v2, ns2 = open_stream(s, port, "raw")
        t.check(ns2.sid > ns.sid, "stream IDs strictly increase", first=ns.sid, second=ns2.sid)
        s.send(f_window_update(ns2.sid, 0))
        s.expect_go_away(t.GOAWAY_PROTOCOL_ERROR, "WINDOW_UPDATE with increment 0",
                         skip=(t.HEARTBEAT, t.WINDOW_UPDATE, t.DATA, t.CLOSE))
        try:
            rest = t.recv_all(v2)
        except ConnectionResetError:
            rest = b""
        t.check_eq(rest, b"", "bytes to a visitor whose session ended")
        v2.close()
    finally:
        s.close()
    witness("WINDOW_UPDATE with increment 0")

    for what, make in (
            ("a WINDOW_UPDATE past 16 MiB", lambda sid: f_window_update(sid, 16777216)),
            ("DATA after the client's own CLOSE", lambda sid: f_close(sid) + f_data(sid, b"x"))):
        s = session(srv)
        try:
            ack = s.register("raw", port)
            t.check_eq(ack.status, t.ACK_OK, "REGISTER raw again (the port is free at once)",
                       message=ack.message)
            v, ns = open_stream(s, port, "raw")
            s.send(make(ns.sid))
            s.expect_go_away(t.GOAWAY_PROTOCOL_ERROR, what,
                             skip=(t.HEARTBEAT, t.WINDOW_UPDATE, t.DATA, t.CLOSE))
            v.close()
        finally:
            s.close()
        witness(what)
    t.log("(b) stream-level protocol errors: GO_AWAY(PROTOCOL_ERROR) each time")


# ---- (c) REGISTER_ACK statuses --------------------------------------------------


def register_statuses(srv, witness):
    lo, hi = srv.allow
    s = session(srv)
    try:
        def expect(name, port, status, what, **kw):
            ack = s.register(name, port, **kw)
            t.check_eq(ack.status, status, "REGISTER_ACK status for %s" % what,
                       message=ack.message)
            t.check_eq(ack.name, name if isinstance(name, bytes) else name.encode(),
                       "REGISTER_ACK echoes the name (%s)" % what)
            t.check_eq(ack.proxy_type, kw.get("proxy_type", t.PROXY_TCP),
                       "REGISTER_ACK echoes the proxy type (%s)" % what)
            if status != t.ACK_OK:
                t.check(ack.message, "a refusal without a reason (%s)" % what)
            return ack

        expect("bad name!", 0, t.ACK_INVALID, "a name with ' ' and '!'")
        expect(b"", 0, t.ACK_INVALID, "an empty name")
        expect("n" * 65, 0, t.ACK_INVALID, "a 65-byte name")
        expect("opts", 0, t.ACK_INVALID, "options that are not JSON", options=b"{not json")
        expect("opts", 0, t.ACK_INVALID, "options that are a JSON array", options=b"[1]")
        expect("opts", 0, t.ACK_INVALID, "4097 bytes of options",
               options=b'{"k":"' + b"v" * 4089 + b'"}')
        # INVALID comes before UNKNOWN_PROXY_TYPE (doc/protocol.md 3.1).
        expect("bad name!", 0, t.ACK_INVALID, "a bad name and an unknown type",
               proxy_type=0x7E)

        ok = expect("good", 0, t.ACK_OK, "a valid REGISTER, port 0")
        t.check(lo <= ok.port <= hi, "the port the server chose is allowed", port=ok.port,
                allow=srv.allow)
        t.check(ok.message.startswith("tcp://") and ok.message.endswith(":%d" % ok.port),
                "the public address in REGISTER_ACK", message=ok.message)
        free = [p for p in range(lo, hi + 1) if p not in (witness.port, ok.port)]
        expect("n" * 64, free[0], t.ACK_OK, "a 64-byte name and a port", options=b'{}')

        expect("outside", lo - 1, t.ACK_PORT_NOT_ALLOWED, "a port below the allowed range")
        expect("outside", hi + 1, t.ACK_PORT_NOT_ALLOWED, "a port above the allowed range")
        expect("outside", srv.port, t.ACK_PORT_NOT_ALLOWED, "the control port")
        expect("good", 0, t.ACK_NAME_IN_USE, "the same name twice")
        expect("other", 0, t.ACK_UNKNOWN_PROXY_TYPE, "proxy type 0x7e", proxy_type=0x7E)
        expect("udp", 0, t.ACK_UNKNOWN_PROXY_TYPE, "proxy type 0x00", proxy_type=0x00)
        # Order: UNKNOWN_PROXY_TYPE before NAME_IN_USE before PORT_NOT_ALLOWED.
        expect("good", 0, t.ACK_UNKNOWN_PROXY_TYPE, "a taken name and an unknown type",
               proxy_type=0x7E)
        expect("good", hi + 1, t.ACK_NAME_IN_USE, "a taken name and a port not allowed")
        expect("taken", witness.port, t.ACK_PORT_IN_USE, "the witness's port")

        # The session is still usable: the first proxy serves a visitor.
        v, ns = open_stream(s, ok.port, "good")
        s.send(f_data(ns.sid, b"served after 17 REGISTERs") + f_close(ns.sid))
        t.check_eq(t.recv_all(v), b"served after 17 REGISTERs", "visitor of 'good'")
        v.close()
        t.check_eq(s.next_frame(t.CLOSE).sid, ns.sid, "the visitor's close as CLOSE")
        # UNREGISTER frees the port; the name can be registered again.
        s.send(f_unregister(b"good"))
        t.wait_for(lambda: t.port_closed(ok.port), what="port %d to be closed" % ok.port)
        # A probe that connected before the UNREGISTER landed opened a
        # stream, which the UNREGISTER then reset: skip those frames.
        s.send(f_register("good", ok.port))
        again = s.next_frame(t.REGISTER_ACK,
                             skip=(t.HEARTBEAT, t.WINDOW_UPDATE, t.NEW_STREAM, t.RESET))
        t.check_eq(again.status, t.ACK_OK, "REGISTER_ACK status after UNREGISTER",
                   message=again.message)
        t.check_eq(again.port, ok.port, "port after UNREGISTER")
    finally:
        s.close()
    witness("17 refused REGISTERs")
    t.log("(c) REGISTER_ACK statuses 0, 1, 2, 3, 4, 5 as expected")


# ---- (d) the handshake timeout --------------------------------------------------


def handshake_timeout(env):
    port = env.ports.take()
    allow = env.ports.take_range(2)
    conf = env.write_file("mgrokd-timeout.json", json.dumps({
        "listen": "127.0.0.1:%d" % port,
        "auth": {"method": "token", "token": TOKEN},
        "allow_ports": ["%d-%d" % allow],
        "handshake_timeout": 1,
    }, indent=2) + "\n")
    srv = env.start_server(token=None, port=port, allow=allow, config=conf,
                           name="mgrokd-timeout")
    silent = RawSession(port, timeout=REPLY_DEADLINE + 1)
    stalled = RawSession(port, timeout=REPLY_DEADLINE + 1)
    try:
        stalled.hs_send(t.AUTH_TOKEN, os.urandom(16))
        status, _ = stalled.hs_reply()
        t.check_eq(status, t.HS_CHALLENGE, "handshake reply to the token method")
        t.check_eq(silent.read_eof("the server to drop a connection that says nothing"), b"",
                   "bytes to a silent connection")
        t.check_eq(stalled.read_eof("the server to drop a handshake that stalls"), b"",
                   "bytes to a stalled handshake")
    finally:
        silent.close()
        stalled.close()
    # A real client is fast enough for it.
    witness = Witness(env, srv)
    witness("the handshake timeout")
    t.log("(d) silent and stalled connections closed after the handshake timeout")


def main(env):
    srv = env.start_server(token=TOKEN, nports=6, extra=["-v"])
    witness = Witness(env, srv)
    witness("nothing")
    bad_handshakes(srv, witness)
    protocol_errors(env, srv, witness)
    stream_errors(srv, witness)
    register_statuses(srv, witness)
    handshake_timeout(env)
    env.check_services()
    t.log("the witness tunnel worked after each of %d bad sessions" % witness.checks)


t.run(main)
