#!/usr/bin/env python3
"""Server-side limits (doc/protocol.md 3.1, 3.5, 4).

- allow_ports: by default 1024-65535 and never the control port
  (PORT_NOT_ALLOWED "port N is not allowed on this server"), also when an
  explicit range covers the control port;
- limits.max_proxies: REGISTER_ACK LIMIT, a real client with one proxy too
  many keeps the others; UNREGISTER frees a slot;
- limits.max_streams: visitors beyond it are closed at once, the others keep
  working, a slot frees when a visitor leaves;
- rate_limit: N failed handshakes (wrong token, bad magic, handshake timeout)
  from one address block it at accept for the interval, with one warning per
  burst; a right token is refused meanwhile and works again after;
- takeover: a session of the same identity and clientId replaces the old
  one (GO_AWAY REPLACED), another clientId or no HELLO cannot; a real mgrok
  that is replaced exits non-zero and says so.
"""
import os
import re
import signal
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mgroktest as t

TOKEN = "limits-Token-93b2e6f0d1c47a58"
WRONG = "limits-Wrong-5e0c1a7d94f3b826"


def raw(srv, token=TOKEN):
    return t.RawSession(srv.port).handshake(token)


def expect_ack(ack, status, name, message=None, port=None):
    t.check_eq(ack.status, status, "REGISTER_ACK status for %s" % name, message=ack.message)
    t.check_eq(ack.name, name.split()[0].encode(), "REGISTER_ACK name")
    if message is not None:
        t.check(message in ack.message, "REGISTER_ACK message for %s lacks %r" % (name, message),
                message=ack.message)
    if port is not None:
        t.check_eq(ack.port, port, "REGISTER_ACK port for %s" % name)


# ---- allow_ports ----------------------------------------------------------------


def allow_ports_default(env, echo):
    """No --allow-ports: 1024-65535 minus the control port."""
    control = env.ports.take()
    free = env.ports.take()
    srv = env.start_server(token=TOKEN, port=control, nports=0, name="mgrokd-default-ports")
    s = raw(srv)
    try:
        for i, port in enumerate((1, 80, 443, 1023)):
            ack = s.register("low%d" % i, port)
            expect_ack(ack, t.ACK_PORT_NOT_ALLOWED, "low%d" % i,
                       "port %d is not allowed on this server" % port, port=0)
        ack = s.register("control", control)
        expect_ack(ack, t.ACK_PORT_NOT_ALLOWED, "control",
                   "port %d is not allowed on this server" % control, port=0)
        ack = s.register("ok", free)
        expect_ack(ack, t.ACK_OK, "ok", port=free)
        check_port_listens(free)
    finally:
        s.close()
    t.wait_for(lambda: t.port_closed(free), 10, "port %d to be closed after its session" % free)

    cl = env.start_client(echo.port, srv, token=TOKEN, remote_port=1000, lines=0,
                          cname="mgrok-port1000")
    code = cl.wait_exit()
    err = cl.stderr_text()
    t.check_eq(code, 1, "exit code of mgrok refused its only port", stderr=err[-800:])
    want = "registration refused (status 2): port 1000 is not allowed on this server"
    t.check(want in err, "no %r on stderr" % want, stderr=err[-800:])
    t.check_eq(srv.stop(), 0, "exit code of mgrokd on SIGTERM")


def allow_ports_cover_control(env):
    """An explicit range that covers the control port still excludes it."""
    lo, hi = env.ports.take_range(4)
    control = lo + 1
    conf = t.write_json(env, "mgrokd-cover.json", {
        "listen": "127.0.0.1:%d" % control,
        "auth": {"method": "token", "token": TOKEN},
        "allow_ports": ["%d-%d" % (lo, hi)]})
    srv = env.start_server(token=None, config=conf, name="mgrokd-cover")
    srv.port = control
    s = raw(srv)
    try:
        ack = s.register("control", control)
        expect_ack(ack, t.ACK_PORT_NOT_ALLOWED, "control",
                   "port %d is not allowed on this server" % control)
        ack = s.register("outside", hi + 1)
        expect_ack(ack, t.ACK_PORT_NOT_ALLOWED, "outside",
                   "port %d is not allowed on this server" % (hi + 1))
        # The server's own choice (port 0) never falls on the control port.
        got = set()
        for i in range(3):
            ack = s.register("pick%d" % i, 0)
            expect_ack(ack, t.ACK_OK, "pick%d" % i)
            got.add(ack.port)
        t.check_eq(got, {lo, lo + 2, lo + 3}, "ports the server picked in %d-%d" % (lo, hi))
        ack = s.register("pick3", 0)
        expect_ack(ack, t.ACK_PORT_IN_USE, "pick3")
    finally:
        s.close()
    t.check_eq(srv.stop(), 0, "exit code of mgrokd on SIGTERM")


def check_port_listens(port):
    c = socket.create_connection(("127.0.0.1", port), timeout=10)
    c.close()


# ---- limits.max_proxies / max_streams -----------------------------------------------


def limits_server(env, name, limits, nports):
    port = env.ports.take()
    allow = env.ports.take_range(nports)
    conf = t.write_json(env, name + ".json", {
        "listen": "127.0.0.1:%d" % port,
        "auth": {"method": "token", "token": TOKEN},
        "allow_ports": ["%d-%d" % allow],
        "limits": limits})
    srv = env.start_server(token=None, config=conf, name=name)
    srv.port, srv.allow = port, allow
    return srv


def max_proxies(env, echo):
    srv = limits_server(env, "mgrokd-maxproxies", {"max_proxies": 2}, 3)
    lo, hi = srv.allow
    s = raw(srv)
    try:
        expect_ack(s.register("a", lo), t.ACK_OK, "a", port=lo)
        expect_ack(s.register("b", lo + 1), t.ACK_OK, "b", port=lo + 1)
        expect_ack(s.register("c", lo + 2), t.ACK_LIMIT, "c", "at most 2 proxies per session",
                   port=0)
        # LIMIT comes before PORT_NOT_ALLOWED (doc/protocol.md 3.1's order).
        expect_ack(s.register("d", 80), t.ACK_LIMIT, "d")
        t.check(t.port_closed(lo + 2), "a port refused with LIMIT is bound")
        s.send(t.f_unregister("a"))
        expect_ack(s.register("c", lo + 2), t.ACK_OK, "c after an UNREGISTER", port=lo + 2)
        t.check(t.port_closed(lo), "port %d still open after UNREGISTER" % lo)
    finally:
        s.close()

    # A real client with three proxies: two come up, one is refused, it runs on.
    conf = t.write_json(env, "mgrok-3proxies.json", {
        "server": "127.0.0.1:%d" % srv.port,
        "auth": {"method": "token", "token": TOKEN},
        "proxies": [{"name": "p%d" % i, "type": "tcp", "local": str(echo.port),
                     "remote_port": lo + i} for i in range(3)]})
    cl = env.start_client(None, None, token=None, config=conf, lines=2, cname="mgrok-3proxies")
    t.wait_for(lambda: "registration refused" in cl.stderr_text(), 20,
               "mgrok to report the refused proxy")
    err = cl.stderr_text()
    t.check("registration refused (status 6): at most 2 proxies per session" in err,
            "no LIMIT refusal on mgrok's stderr", stderr=err[-800:])
    ports = sorted(x[2] for x in cl.public_lines())
    t.check_eq(len(ports), 2, "proxies up with max_proxies 2")
    for p in ports:
        t.echo_check(p, b"one of two proxies\n")
    t.check(cl.alive(), "mgrok exited although two proxies are up")
    t.check_eq(cl.stop(), 0, "exit code of mgrok on SIGTERM")
    t.check_eq(srv.stop(), 0, "exit code of mgrokd on SIGTERM")


def closed_at_once(sock, what):
    """The server closes the visitor without a byte (EOF or reset) within
    a bounded wait: it must not hang."""
    sock.settimeout(15)
    try:
        sock.sendall(b"anyone there?\n")
    except (BrokenPipeError, ConnectionResetError):
        return
    try:
        data = sock.recv(100)
    except ConnectionResetError:
        return
    except socket.timeout:
        raise t.TestFailure("%s: the connection hangs instead of being closed" % what)
    t.check_eq(data, b"", "bytes received by %s" % what)


def max_streams(env, echo):
    srv = limits_server(env, "mgrokd-maxstreams", {"max_streams": 3}, 1)
    cl = env.start_client(echo.port, srv, token=TOKEN, remote_port=srv.allow[0],
                          cname="mgrok-streams")
    port = srv.allow[0]
    held = []
    try:
        for i in range(3):
            c = t.connect(port)
            c.sendall(b"held %d\n" % i)
            t.check_eq(c.recv(64), b"held %d\n" % i, "echo on held visitor %d" % i)
            held.append(c)
        for k in range(2):
            extra = t.connect(port)
            try:
                closed_at_once(extra, "visitor %d beyond max_streams 3" % (k + 4))
            finally:
                extra.close()
        t.check("3 streams open, refusing visitor" in srv.stderr_text(),
                "mgrokd did not log the refused visitor", stderr=srv.stderr_text()[-800:])
        # The held ones still work.
        for i, c in enumerate(held):
            c.sendall(b"still %d\n" % i)
            t.check_eq(c.recv(64), b"still %d\n" % i, "echo on held visitor %d after the "
                       "refusals" % i)
        # One leaves: a new visitor gets in (once both sides have closed the stream).
        c = held.pop(0)
        c.shutdown(socket.SHUT_WR)
        t.check_eq(t.recv_all(c), b"", "the rest of a held visitor's echo")
        c.close()

        def new_visitor_works():
            try:
                return t.roundtrip(port, b"a free slot\n") == b"a free slot\n"
            except ConnectionResetError:
                return False
        t.wait_for(new_visitor_works, 20, "a visitor to get in after one left")
        for c in held:
            c.sendall(b"last\n")
            t.check_eq(c.recv(64), b"last\n", "echo on a held visitor at the end")
        # Both ways closed before mgrok stops (or the service sees resets).
        for c in held:
            c.shutdown(socket.SHUT_WR)
            t.check_eq(t.recv_all(c), b"", "the rest of a held visitor's echo")
    finally:
        for c in held:
            c.close()
    t.check(cl.alive() and srv.alive(), "mgrok or mgrokd died")
    t.check_eq(cl.stop(), 0, "exit code of mgrok on SIGTERM")
    t.check_eq(srv.stop(), 0, "exit code of mgrokd on SIGTERM")


def max_pending(env, echo):
    """limits.max_pending: connections beyond it, still in the handshake,
    are closed at once; a slot frees when one finishes its handshake."""
    port = env.ports.take()
    conf = t.write_json(env, "mgrokd-maxpending.json", {
        "listen": "127.0.0.1:%d" % port,
        "auth": {"method": "token", "token": TOKEN},
        "allow_ports": ["%d-%d" % env.ports.take_range(1)],
        "handshake_timeout": 30,
        "limits": {"max_pending": 2}})
    srv = env.start_server(token=None, config=conf, name="mgrokd-maxpending")
    srv.port = port
    pending = [t.RawSession(port, timeout=15) for _ in range(2)]
    try:
        def logged():
            return srv.stderr_text().count("connections still in the handshake: refusing one "
                                           "from 127.0.0.1:")
        third = t.RawSession(port, timeout=15)
        try:
            t.check_eq(third.read_eof("mgrokd to close a connection over max_pending"), b"",
                       "bytes to a connection over max_pending")
        finally:
            third.close()
        t.wait_for(lambda: logged() >= 1, 10, "mgrokd to log the refused connection")
        # One of the two finishes its handshake: there is room again.
        pending[0].handshake(TOKEN)
        fourth = t.RawSession(port, timeout=15).handshake(TOKEN)
        fourth.close()
        pending[1].handshake(TOKEN)
        t.check_eq(logged(), 1, "connections refused for max_pending")
    finally:
        for r in pending:
            r.close()
    t.check_eq(srv.stop(), 0, "exit code of mgrokd on SIGTERM")


def allow_ports_reload(env, echo):
    """SIGHUP applies the config's new allow_ports to new REGISTERs; proxies
    already up stay; a broken config keeps the old ports."""
    port = env.ports.take()
    lo, hi = env.ports.take_range(3)

    def write(allow, broken=False):
        text = '{"listen": "127.0.0.1:%d", "auth": {"method": "token", "token": "%s"}, ' \
               '"allow_ports": ["%s"]}\n' % (port, TOKEN, allow)
        return env.write_file("mgrokd-reload.json", text[:-3] if broken else text)

    conf = write("%d-%d" % (lo, lo + 1))
    srv = env.start_server(token=None, config=conf, name="mgrokd-reload")
    srv.port = port

    def hup(n):
        srv.send_signal(signal.SIGHUP)
        t.wait_for(lambda: srv.stderr_text().count("SIGHUP: reloading") >= n, 10,
                   "mgrokd to reload (%d)" % n)
    s = raw(srv)
    try:
        expect_ack(s.register("a", lo), t.ACK_OK, "a", port=lo)
        expect_ack(s.register("c", lo + 2), t.ACK_PORT_NOT_ALLOWED, "c (before reload)")
        write("%d-%d" % (lo + 1, lo + 2))
        hup(1)
        expect_ack(s.register("c", lo + 2), t.ACK_OK, "c (after reload)", port=lo + 2)
        s.send(t.f_unregister("c"))
        expect_ack(s.register("a2", lo), t.ACK_PORT_NOT_ALLOWED,
                   "a2 (a port no longer allowed)")
        t.check_eq(s.serve_visitor(lo, b"old port\n", b"still up\n"), b"still up\n",
                   "a proxy on a port the reload disallowed")
        write("%d-%d" % (lo, hi), broken=True)
        hup(2)
        t.wait_for(lambda: "keeping the old configuration" in srv.stderr_text(), 10,
                   "mgrokd to report the broken config")
        expect_ack(s.register("c", lo + 2), t.ACK_OK, "c (after a failed reload)", port=lo + 2)
    finally:
        s.close()
    t.check(srv.alive(), "mgrokd died over reloads")
    t.check_eq(srv.stop(), 0, "exit code of mgrokd on SIGTERM")


# ---- rate limit -----------------------------------------------------------------------

FAILURES, INTERVAL = 3, 3


def refused_at_accept(port, token=TOKEN):
    """True if a connection with the right token is closed before any reply
    (the address is blocked); False if the handshake goes through."""
    s = t.RawSession(port, timeout=15)
    try:
        try:
            s.hs_send(t.AUTH_TOKEN, os.urandom(16))
        except (BrokenPipeError, ConnectionResetError):
            return True
        return s.read_eof("mgrokd to close or answer") == b""
    finally:
        s.close()


def handshake_works(port):
    """A complete right-token handshake, or False if the connection is closed."""
    try:
        s = t.RawSession(port, timeout=15)
    except ConnectionRefusedError:
        return False
    try:
        cnonce = os.urandom(16)
        s.hs_send(t.AUTH_TOKEN, cnonce)
        if not s._fill(1):
            return False
        status, snonce = s.hs_reply()
        t.check_eq(status, t.HS_CHALLENGE, "reply to the token method")
        s.send(t.str16(t.token_proof(TOKEN, b"mgrok-token-v1 client", cnonce, snonce)))
        status, _ = s.hs_reply()
        t.check_eq(status, t.HS_OK, "reply to the right token")
        return True
    except (BrokenPipeError, ConnectionResetError):
        return False
    finally:
        s.close()


def wrong_token_prepare(port):
    """A connection that got its CHALLENGE; returns (session, cnonce, snonce)."""
    s = t.RawSession(port, timeout=15)
    cnonce = os.urandom(16)
    s.hs_send(t.AUTH_TOKEN, cnonce)
    status, snonce = s.hs_reply()
    t.check_eq(status, t.HS_CHALLENGE, "reply to the token method")
    return s, cnonce, snonce


def wrong_token_finish(prep, timeout_ok=False):
    """Sends a wrong proof: DENIED, then EOF. With timeout_ok, the server may
    have closed the connection already for its handshake timeout (a failed
    handshake all the same)."""
    s, cnonce, snonce = prep
    try:
        s.send(t.str16(t.token_proof(WRONG, b"mgrok-token-v1 client", cnonce, snonce)))
        if timeout_ok and not s._fill(1):
            s.close()
            return
    except (BrokenPipeError, ConnectionResetError):
        t.check(timeout_ok, "mgrokd closed a connection in the handshake at once")
        s.close()
        return
    status, reason = s.hs_reply()
    t.check_eq(status, t.HS_DENIED, "reply to a wrong token", reason=reason)
    t.check_eq(s.read_eof(), b"", "bytes after DENIED")
    s.close()


def warn_count(srv):
    pat = re.compile(r"127\.0\.0\.1(:\d+)?: %d failed handshakes within %d s: refusing it for "
                     r"%d s" % (FAILURES, INTERVAL, INTERVAL))
    return len(pat.findall(srv.stderr_text()))


def rate_limit(env, echo):
    port = env.ports.take()
    allow = env.ports.take_range(1)
    conf = t.write_json(env, "mgrokd-ratelimit.json", {
        "listen": "127.0.0.1:%d" % port,
        "auth": {"method": "token", "token": TOKEN},
        "allow_ports": ["%d-%d" % allow],
        "handshake_timeout": 1,
        "rate_limit": {"failures": FAILURES, "interval": INTERVAL}})
    srv = env.start_server(token=None, config=conf, name="mgrokd-ratelimit")
    srv.port, srv.allow = port, allow

    t.check(handshake_works(port), "a right token before any failure")
    # Burst 1: wrong token, bad magic, wrong token; two more wrong tokens
    # whose connections are already open finish while blocked: one warning.
    preps = [wrong_token_prepare(port) for _ in range(4)]
    wrong_token_finish(preps[0])
    bad = t.RawSession(port, timeout=15)
    bad.send(b"HTTP/1.0\r\n\r\n")
    t.check_eq(bad.read_eof(), b"", "reply to a bad magic")
    bad.close()
    t.check_eq(warn_count(srv), 0, "rate-limit warnings after 2 failures")
    started = time.monotonic()
    wrong_token_finish(preps[1])
    t.wait_for(lambda: warn_count(srv) >= 1, 10, "the rate-limit warning")
    t.check(refused_at_accept(port), "a right token was let in while the address is blocked")
    for p in preps[2:]:
        wrong_token_finish(p, timeout_ok=True)
    t.check(refused_at_accept(port), "a right token was let in while the address is blocked "
            "(2nd try)")
    # A real client meanwhile: refused, retries, gets in once the block ends.
    cl = env.start_client(echo.port, srv, token=TOKEN, remote_port=allow[0], lines=0,
                          cname="mgrok-blocked")
    client_started = time.monotonic()
    t.wait_for(lambda: handshake_works(port), 20, "the block to end")
    ended = time.monotonic()
    t.check(ended - started >= INTERVAL - 0.25, "the block ended %.2f s after the burst, before "
            "the %d s interval" % (ended - started, INTERVAL))
    cl.wait_lines(1)
    t.echo_check(allow[0], b"after the block\n")
    if client_started - started < INTERVAL - 1:  # else its first try may well be after the block
        t.check("reconnecting" in cl.stderr_text(), "the client was not refused while blocked",
                stderr=cl.stderr_text()[-800:])
    t.check_eq(warn_count(srv), 1, "rate-limit warnings for one burst",
               stderr=srv.stderr_text()[-1500:])

    # Burst 2: handshake timeouts (connections that say nothing).
    quiet = [t.RawSession(port, timeout=15) for _ in range(FAILURES)]
    for q in quiet:
        t.check_eq(q.read_eof("the handshake timeout"), b"", "bytes sent to a silent client")
        q.close()
    t.wait_for(lambda: warn_count(srv) >= 2, 10, "the warning of the second burst")
    t.check(refused_at_accept(port), "a right token was let in after handshake timeouts")
    t.wait_for(lambda: handshake_works(port), 20, "the second block to end")
    t.check_eq(warn_count(srv), 2, "rate-limit warnings for two bursts")
    # The tunnel of the session that got in survived both.
    t.echo_check(allow[0], b"the tunnel survived\n")
    t.check_eq(cl.stop(), 0, "exit code of mgrok on SIGTERM")
    t.check_eq(srv.stop(), 0, "exit code of mgrokd on SIGTERM")


# ---- takeover -------------------------------------------------------------------------


def takeover(env, echo):
    srv = env.start_server(token=TOKEN, nports=3, name="mgrokd-takeover")
    p = srv.allow[0]
    cid = "client-" + os.urandom(8).hex()

    a = raw(srv).hello(cid, b'{"who":"A"}')
    expect_ack(a.register("web", p), t.ACK_OK, "web (A)", port=p)
    expect_ack(a.register("extra", p + 1), t.ACK_OK, "extra (A)", port=p + 1)
    t.check_eq(a.serve_visitor(p, b"to A\n", b"A here\n"), b"A here\n", "visitor through A")
    # A visitor whose stream is open on A when A is replaced.
    stuck = t.connect(p)
    ns = a.next_frame(t.NEW_STREAM, "NEW_STREAM of the visitor left open")

    b = raw(srv).hello(cid, b'{"who":"B"}')
    expect_ack(b.register("web", p), t.ACK_OK, "web (B, same clientId: takeover)", port=p)
    a.expect_go_away(t.GOAWAY_REPLACED, "a takeover by the same clientId")
    a.close()
    # The visitor of the old session is closed, not left hanging.
    stuck.settimeout(15)
    try:
        rest = stuck.recv(100)
    except ConnectionResetError:
        rest = b""
    except socket.timeout:
        raise t.TestFailure("a visitor of the replaced session (stream %d) hangs" % ns.sid)
    finally:
        stuck.close()
    t.check_eq(rest, b"", "bytes to a visitor of the replaced session")
    # A's other port is free: B did not register it.
    t.check(t.port_closed(p + 1), "port %d of the replaced session is still open" % (p + 1))
    t.check_eq(b.serve_visitor(p, b"to B\n", b"B here\n"), b"B here\n", "visitor through B")
    t.check(re.search(r"session \d+ replaces session \d+ of client %s" % cid, srv.stderr_text()),
            "mgrokd did not log the takeover", stderr=srv.stderr_text()[-800:])

    c = raw(srv).hello("client-" + os.urandom(8).hex())
    expect_ack(c.register("web", p), t.ACK_PORT_IN_USE, "web (C, another clientId)", port=0)
    d = raw(srv)  # no HELLO at all
    expect_ack(d.register("web", p), t.ACK_PORT_IN_USE, "web (D, no HELLO)", port=0)
    # B was not disturbed by C or D.
    t.check_eq(b.serve_visitor(p, b"to B again\n", b"still B\n"), b"still B\n",
               "visitor through B after C and D")
    # C and D still work themselves.
    expect_ack(c.register("other", p + 1), t.ACK_OK, "other (C)", port=p + 1)
    expect_ack(d.register("other", p + 2), t.ACK_OK, "other (D)", port=p + 2)
    for s in (b, c, d):
        s.close()

    # A real mgrok, replaced by a session that shows its identity and clientId.
    for q in range(3):
        t.wait_for(lambda: t.port_closed(p + q), 10, "port %d to close" % (p + q))
    cl = env.start_client(echo.port, srv, token=TOKEN, remote_port=p, cname="mgrok-replaced")
    t.echo_check(p, b"real client\n")
    ids = re.findall(r"session \d+: client (\S+), \{\"version\"", srv.stderr_text())
    t.check_eq(len(ids), 1, "HELLO lines of a real mgrok in mgrokd's log",
               stderr=srv.stderr_text()[-800:])
    e = raw(srv).hello(ids[0])
    code = cl.wait_exit()
    err = cl.stderr_text()
    t.check(code not in (0, None) and code > 0, "exit code of a replaced mgrok: %s" % code,
            stderr=err[-800:])
    t.check("another client with the same identity took over" in err,
            "a replaced mgrok did not say so", stderr=err[-800:])
    t.check("reconnecting" not in err, "a replaced mgrok tried to reconnect", stderr=err[-800:])
    expect_ack(e.register("web", p), t.ACK_OK, "web (the replacing session)", port=p)
    t.check_eq(e.serve_visitor(p, b"to E\n", b"E here\n"), b"E here\n", "visitor through E")
    e.close()
    t.check_eq(srv.stop(), 0, "exit code of mgrokd on SIGTERM")


def main(env):
    echo = env.echo_service()
    for what, fn in (("allow_ports default", lambda: allow_ports_default(env, echo)),
                     ("allow_ports covering the control port",
                      lambda: allow_ports_cover_control(env)),
                     ("max_proxies", lambda: max_proxies(env, echo)),
                     ("max_streams", lambda: max_streams(env, echo)),
                     ("max_pending", lambda: max_pending(env, echo)),
                     ("allow_ports reload", lambda: allow_ports_reload(env, echo)),
                     ("rate limit", lambda: rate_limit(env, echo)),
                     ("takeover", lambda: takeover(env, echo))):
        t.log("---- %s" % what)
        with env.case(what):
            echo = env.service(t.echo_handler, name="echo-" + what.replace(" ", "-"))
            fn()
    for p in env.procs:
        if p.alive():
            t.check_eq(p.stop(), 0, "exit code of %s on SIGTERM" % p.name)
    t.check_no_secrets(env, [TOKEN, WRONG])
    env.check_services()


t.run(main)
