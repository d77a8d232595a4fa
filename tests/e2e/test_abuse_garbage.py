#!/usr/bin/env python3
"""Garbage and misbehaviour on mgrokd's control port, while a real mgrok
keeps echoing through its tunnel (a visitor every 0.2 s, byte for byte),
never noticing.  Each bad session must end the way the protocol says, with a
clear reason in mgrokd's log, and mgrokd lives on.  (test_bad_input.py has
the single-frame protocol errors and the REGISTER statuses; this adds what
it lacks.)

- Before the handshake: 64 KiB of random bytes, a TLS ClientHello on the
  plaintext port, a first message with an oversized payload, a malformed
  token message.
- Right after a good handshake: an HTTP request, 64 KiB of random bytes, a
  frame cut short by EOF, HELLO twice.
- Slowloris: handshakes trickled a byte at a time, several at once, each
  closed by the handshake timeout ("handshake not finished in time").
- WINDOW_UPDATE: increments that take a window to exactly 16 MiB are fine,
  to one byte more a protocol error; increments that would wrap a 32-bit window
  (0xFFFFFFFF, 2^32 - 256 KiB) are protocol errors too.
- DATA past the window: 1 MiB on a stream whose visitor does not read ->
  RESET(FLOW_CONTROL) for that stream only; the session serves the next
  visitor.
- DATA, CLOSE, WINDOW_UPDATE (even of 0) and RESET for stream IDs the server
  does not know (odd ones, IDs far above any opened, the largest, a stream
  already closed), 40,000 of them: ignored, the session lives, the log does
  not grow with them.
- mgrok against a server that sends NEW_STREAM with an odd ID, then one not
  above the last: GO_AWAY(PROTOCOL_ERROR) each time, mgrok reconnects."""
import os
import random
import re
import select
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mgroktest as t
from mgroktest import (u8, u16, str16, f_data, f_close, f_hello, f_reset,
                       f_window_update, RawSession)

TOKEN = "abuse-garbage-token-61b0"
CLIENT_ID = b"fedcba9876543210fedcba9876543210"
REPLY_DEADLINE = 15  # per reply; only there so that nothing hangs
HANDSHAKE_TIMEOUT = 2
STREAM_SKIP = (t.HEARTBEAT, t.WINDOW_UPDATE, t.DATA, t.CLOSE)


# ---- reasons in mgrokd's log ----------------------------------------------------------
#
# mgrokd writes at most 10 lines about failed handshakes in 10 s, server-wide
# (the rest are counted in a summary): this test makes 8 within that time, so
# that each has its own line to check.


def close_reason(srv, sock):
    """The reason mgrokd logged for closing the session of sock, found by
    the client's address:port, which mgrokd names when it accepts the
    connection (a debug line: the server runs with -v) and when it
    authenticates it."""
    host, port = sock.getsockname()[:2]
    peer = re.escape("%s:%d" % (host, port))

    def find():
        text = srv.stderr_text()
        m = re.search(r"session (\d+): (?:connection from %s|%s authenticated)\b" % (peer, peer),
                      text)
        m2 = m and re.search(r"session %s: (?:\S+: )?closed: (.*)" % m.group(1), text)
        return m2 and m2.group(1)
    return t.wait_for(find, REPLY_DEADLINE, "mgrokd to log why it closed %s:%d" % (host, port))


def check_reason(srv, sock, words, what):
    reason = close_reason(srv, sock)
    t.check(any(w in reason for w in words), "%s: mgrokd's reason does not say %s"
            % (what, " or ".join(repr(w) for w in words)), reason=reason)
    t.log("  %s: closed: %s" % (what, reason))
    return reason


def session(srv, hello=True, **kw):
    s = RawSession(srv.port, timeout=REPLY_DEADLINE, **kw).handshake(TOKEN)
    if hello:
        s.send(f_hello(CLIENT_ID))
    return s


def ended(s, what):
    """What the server sent until it closed the connection."""
    try:
        return s.read_eof(what)
    except (ConnectionResetError, BrokenPipeError):
        return b""


# ---- before the handshake ---------------------------------------------------------------


def seeded_garbage(seed, n, first_not=None):
    data = bytearray(random.Random(seed).randbytes(n))
    if first_not is not None and data[0] in first_not:
        data[0] = 0x00
    return bytes(data)


def before_handshake(env, srv, alive):
    cases = [
        ("64 KiB of random bytes", seeded_garbage(1, 65536, b"G\x16"), ["bad magic"]),
        ("a TLS ClientHello", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(64),
         ["TLS"]),
        ("a first message of 65535 bytes", t.MAGIC + u8(t.AUTH_TOKEN) + u16(0xFFFF) +
         seeded_garbage(2, 65535), ["too large", "too long", "exceeds"]),
        ("a malformed token message", t.MAGIC + u8(t.AUTH_TOKEN) + str16(b"short"),
         ["malformed"]),
    ]
    for what, data, words in cases:
        with env.case("before the handshake: " + what):
            s = RawSession(srv.port, timeout=REPLY_DEADLINE)
            try:
                try:
                    s.send(data)
                except (ConnectionResetError, BrokenPipeError):
                    pass  # closed at the first bad byte, while more was sent
                rest = ended(s, "mgrokd to close after %s" % what)
                t.check(rest[:1] in (b"", bytes([t.HS_DENIED])),
                        "%s: mgrokd answered something other than DENIED" % what,
                        reply=rest[:64])
                check_reason(srv, s.sock, words, what)
            finally:
                s.close()
        alive(what)


# ---- right after the handshake ----------------------------------------------------------


def after_handshake(env, srv, alive):
    cases = [
        ("an HTTP request", b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n", False,
         ["unknown frame type 0x47"]),
        ("64 KiB of random bytes", seeded_garbage(3, 65536), False, ["protocol error"]),
        ("a DATA frame cut short by EOF", f_data(2, b"x" * 1000)[:100], True,
         ["in the middle of a frame"]),
        ("HELLO twice", f_hello(CLIENT_ID), False, ["HELLO"]),
    ]
    for what, data, eof, words in cases:
        with env.case("after the handshake: " + what):
            s = session(srv, hello=True)
            try:
                try:
                    s.send(data)
                    if eof:
                        s.sock.shutdown(socket.SHUT_WR)
                except (ConnectionResetError, BrokenPipeError):
                    pass
                f = s.next_frame(t.GO_AWAY, "GO_AWAY after %s" % what,
                                 skip=(t.HEARTBEAT, t.WINDOW_UPDATE, t.REGISTER_ACK))
                t.check_eq(f.code, t.GOAWAY_PROTOCOL_ERROR, "GO_AWAY code after %s" % what,
                           message=f.message)
                ended(s, "mgrokd to close after %s" % what)
                check_reason(srv, s.sock, words, what)
            finally:
                s.close()
        alive(what)


# ---- slowloris -----------------------------------------------------------------------------


def slowloris(env, srv, alive):
    """Handshakes trickled a byte every 0.25 s: the first message alone takes
    longer than the handshake timeout (and the answer would follow)."""
    first = t.MAGIC + u8(t.AUTH_TOKEN) + str16(os.urandom(16))
    with env.case("slowloris"):
        socks = [RawSession(srv.port, timeout=REPLY_DEADLINE, source="127.0.0.%d" % (10 + i))
                 for i in range(4)]
        try:
            closed = {}
            sent = 0
            end = time.monotonic() + HANDSHAKE_TIMEOUT + REPLY_DEADLINE
            while len(closed) < len(socks):
                t.check(sent < len(first), "a handshake trickled in whole was not cut off by "
                        "the %d s handshake timeout" % HANDSHAKE_TIMEOUT)
                t.check(time.monotonic() < end, "slowloris connections still open")
                for i, s in enumerate(socks):
                    if i in closed:
                        continue
                    try:
                        s.send(first[sent:sent + 1])
                    except (ConnectionResetError, BrokenPipeError):
                        closed[i] = sent
                        continue
                    r, _, _ = select.select([s.sock], [], [], 0)
                    if r and ended(s, "EOF") == b"":
                        closed[i] = sent
                sent += 1
                alive(None)
                time.sleep(0.25)
            for s in socks:
                check_reason(srv, s.sock, ["handshake not finished in time"], "slowloris")
            t.log("  slowloris: %d trickling connections closed after %s bytes"
                  % (len(socks), sorted(set(closed.values()))))
        finally:
            for s in socks:
                s.close()
    alive("slowloris")


# ---- streams ------------------------------------------------------------------------------


def open_stream(s, port, sockopts=()):
    """A visitor connects to port; returns (visitor socket, stream ID)."""
    v = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    for level, opt, value in sockopts:
        v.setsockopt(level, opt, value)
    v.settimeout(REPLY_DEADLINE)
    v.connect(("127.0.0.1", port))
    ns = s.next_frame(t.NEW_STREAM, skip=(t.HEARTBEAT, t.WINDOW_UPDATE, t.CLOSE, t.RESET))
    t.check_eq(ns.port, v.getsockname()[1], "NEW_STREAM source port")
    return v, ns.sid


def serve_one(s, port, what):
    """The session still serves a visitor: proof it lives."""
    v, sid = open_stream(s, port)
    try:
        v.sendall(b"ping")
        f = s.next_frame(t.DATA, "the visitor's ping (%s)" % what,
                         skip=(t.HEARTBEAT, t.WINDOW_UPDATE, t.CLOSE, t.RESET))
        t.check_eq((f.sid, f.data), (sid, b"ping"), "the visitor's ping as DATA (%s)" % what)
        s.send(f_data(sid, b"pong") + f_close(sid))
        t.check_eq(v.recv(16), b"pong", "the reply to the visitor (%s)" % what)
    finally:
        v.close()


def window_updates(env, srv, alive):
    port = srv.allow[1]
    with env.case("WINDOW_UPDATE to exactly 16 MiB, then one byte more"):
        s = session(srv)
        try:
            t.check_eq(s.register("win", port).status, t.ACK_OK, "REGISTER win")
            v, sid = open_stream(s, port)
            s.send(f_window_update(sid, t.WINDOW) * 63)  # 64 x 256 KiB = 16 MiB
            v.sendall(b"still fine")  # mgrokd's window for the stream: 16 MiB - 10
            f = s.next_frame(t.DATA, "DATA after the window reached 16 MiB")
            t.check_eq(f.data, b"still fine", "DATA after the window reached 16 MiB")
            s.send(f_window_update(sid, 10))  # 16 MiB again: allowed
            v.sendall(b"!")  # 16 MiB - 1
            f = s.next_frame(t.DATA, "DATA after the window reached 16 MiB again")
            t.check_eq(f.data, b"!", "DATA after the window reached 16 MiB again")
            s.send(f_window_update(sid, 2))  # 16 MiB + 1
            f = s.next_frame(t.GO_AWAY, "GO_AWAY after a window past 16 MiB", skip=STREAM_SKIP)
            t.check_eq(f.code, t.GOAWAY_PROTOCOL_ERROR, "GO_AWAY code", message=f.message)
            ended(s, "the close")
            check_reason(srv, s.sock, ["over 16 MiB"], "a window of 16 MiB + 1")
            v.close()
        finally:
            s.close()
    alive("a window of 16 MiB + 1")
    for inc in (0xFFFFFFFF, (1 << 32) - t.WINDOW, (1 << 31)):
        what = "WINDOW_UPDATE of 0x%08x" % inc
        with env.case(what):
            s = session(srv)
            try:
                t.check_eq(s.register("win", port).status, t.ACK_OK, "REGISTER win")
                v, sid = open_stream(s, port)
                s.send(f_window_update(sid, inc))
                f = s.next_frame(t.GO_AWAY, "GO_AWAY after %s" % what, skip=STREAM_SKIP)
                t.check_eq(f.code, t.GOAWAY_PROTOCOL_ERROR, "GO_AWAY code after %s" % what,
                           message=f.message)
                ended(s, "the close")
                check_reason(srv, s.sock, ["over 16 MiB"], what)
                v.close()
            finally:
                s.close()
        alive(what)


def data_past_window(env, srv, alive):
    port = srv.allow[1]
    with env.case("DATA past the window"):
        s = session(srv)
        try:
            t.check_eq(s.register("flow", port).status, t.ACK_OK, "REGISTER flow")
            # A visitor that does not read, with small buffers: mgrokd cannot
            # write (and return credit for) more than a fraction of a window.
            opts = [(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)]
            if hasattr(socket, "TCP_MAXSEG"):
                opts.append((socket.IPPROTO_TCP, socket.TCP_MAXSEG, 536))
            v, sid = open_stream(s, port, opts)
            chunk = t.payload(77, 65535)
            s.send(f_data(sid, chunk) * 16)  # 1 MiB, four windows
            f = s.next_frame(t.RESET, "RESET after DATA past the window",
                             skip=(t.HEARTBEAT, t.WINDOW_UPDATE))
            t.check_eq((f.sid, f.code), (sid, t.RESET_FLOW_CONTROL),
                       "RESET for DATA past the window")
            t.wait_log(srv, r"stream %d: \d+ bytes of DATA with \d+ of window" % sid, 1,
                       REPLY_DEADLINE, "mgrokd to log the flow control violation")
            v.close()
            serve_one(s, port, "after RESET(FLOW_CONTROL)")
        finally:
            s.close()
    alive("DATA past the window")


def unknown_streams(env, srv, alive):
    port = srv.allow[1]
    with env.case("frames for unknown stream IDs"):
        s = session(srv)
        try:
            t.check_eq(s.register("ghosts", port).status, t.ACK_OK, "REGISTER ghosts")
            v, sid = open_stream(s, port)
            s.send(f_data(sid, b"bye") + f_close(sid))
            t.check_eq(v.recv(16), b"bye", "the first visitor's bytes")
            v.close()  # its stream ends: its ID is one the server no longer knows
            s.next_frame(t.CLOSE, "the first visitor's CLOSE", skip=(t.HEARTBEAT,
                                                                    t.WINDOW_UPDATE))
            # mgrokd logs the stream's end before it sends CLOSE: not counted.
            mark = srv.stderr_size()
            # Not sid + 2: the next visitor's stream may open before mgrokd
            # has read them all.
            ids = [1, 3, 5, 0x7FFFFFFF, 0xFFFFFFFF, 0xFFFFFFFE, sid, sid + 1, sid + 3,
                   sid + 1000]
            frames = []
            for i in ids:
                frames += [f_data(i, b"stray"), f_data(i, b""), f_close(i),
                           f_window_update(i, 4096), f_window_update(i, 0),
                           f_window_update(i, 0xFFFFFFFF), f_reset(i, t.RESET_CANCEL),
                           f_reset(i, 0xEE)]
            batch = b"".join(frames)
            s.send(batch * 500)  # 40,000 frames
            serve_one(s, port, "after 40,000 frames for unknown streams")
            grown = srv.stderr_size() - mark
            t.check(grown < 16384, "frames for unknown streams made mgrokd's log grow by %d "
                    "bytes" % grown, log=srv.stderr_since(mark)[-600:])
            t.log("  %d frames for %d unknown stream IDs ignored; the log grew by %d bytes"
                  % (len(frames) * 500, len(ids), grown))
        finally:
            s.close()
    alive("frames for unknown streams")


# ---- mgrok and bad stream IDs from a server -----------------------------------------------


def client_bad_ids(env):
    port = env.ports.take()
    public = env.ports.take()
    fake = t.FakeServer(port)
    echo = env.echo_service()
    cconf = env.client_config(port, [{"name": "web", "type": "tcp",
                                      "local": "127.0.0.1:%d" % echo.port}], token=TOKEN)
    cl = env.start_client(None, None, token=None, config=cconf, lines=0, cname="mgrok-vs-fake")
    try:
        for n, (what, frames, words) in enumerate((
                ("an odd stream ID", t.f_new_stream(3, b"web"), "odd"),
                ("a stream ID not above the last",
                 t.f_new_stream(4, b"nope") + t.f_new_stream(4, b"nope"), "not above"))):
            sess = fake.accept(30)
            sess.serve_registration(TOKEN, public)
            cl.wait_lines(n + 1)
            sess.send(frames)
            f = sess.next_client_frame(t.GO_AWAY, "mgrok's GO_AWAY after %s" % what,
                                       skip=(t.HEARTBEAT, t.WINDOW_UPDATE, t.RESET))
            t.check_eq(f.code, t.GOAWAY_PROTOCOL_ERROR, "mgrok's GO_AWAY code after %s" % what,
                       message=f.message)
            t.check(words in f.message, "mgrok's GO_AWAY message after %s" % what,
                    message=f.message)
            sess.close()
            t.check(cl.alive(), "mgrok exited after %s" % what)
            t.log("  mgrok: %s -> GO_AWAY(PROTOCOL_ERROR, %r)" % (what, f.message))
        # It reconnects once more, to a server that behaves.
        sess = fake.accept(30)
        sess.serve_handshake(TOKEN)
        sess.close()
    finally:
        fake.close()
    t.check_eq(cl.stop(), 0, "exit code of mgrok on SIGTERM")


def main(env):
    port = env.ports.take()
    allow = env.ports.take_range(2)
    conf = t.write_json(env, "mgrokd.json", {
        "listen": "127.0.0.1:%d" % port,
        "auth": {"method": "token", "token": TOKEN},
        "allow_ports": ["%d-%d" % allow],
        "handshake_timeout": HANDSHAKE_TIMEOUT,
        # Every bad session here is a failed handshake or more from 127.0.0.1:
        # do not let the rate limit refuse the next one.
        "rate_limit": {"failures": 1000, "interval": 60}})
    srv = env.start_server(token=None, config=conf, extra=["-v"])
    srv.port, srv.allow = port, allow
    echo = env.echo_service()
    cl = env.start_client(echo.port, srv, token=TOKEN, remote_port=allow[0], cname="mgrok-healthy")
    healthy = t.EchoLoop(allow[0], interval=0.2).start()
    count = [0]

    def alive(after):
        t.check(srv.alive(), "mgrokd died after %s" % after)
        t.check(cl.alive(), "the healthy mgrok died after %s" % after)
        t.check(not healthy.errors, "the healthy tunnel failed (after %s)" % after,
                errors=healthy.errors[:3])
        count[0] += after is not None

    try:
        before_handshake(env, srv, alive)
        after_handshake(env, srv, alive)
        slowloris(env, srv, alive)
        window_updates(env, srv, alive)
        data_past_window(env, srv, alive)
        unknown_streams(env, srv, alive)
    finally:
        rounds = healthy.check("the bad sessions")
    t.check_eq(len(cl.public_lines()), 1, "the healthy client registered again: its session "
               "was disturbed")
    t.log("the healthy tunnel echoed %d times, exactly, across %d bad sessions"
          % (rounds, count[0]))
    with env.case("mgrok: NEW_STREAM with bad stream IDs"):
        client_bad_ids(env)
    env.check_services()


t.run(main)
