#!/usr/bin/env python3
"""Log lines a remote peer can trigger at will are rate-limited: at most a
few lines of one kind per session (or server-wide for refused connections)
in each 10 s window, and the lines left out are counted in a summary,
"suppressed N similar lines", written when the window has passed and the
next such line comes, or when the session ends.

a. 10 MiB of UNREGISTER frames for a name the session does not have, then
   the session ends: mgrokd's log grows by less than LOG_BUDGET, and the
   lines written plus the N of the summaries account for every frame.
b. The same with REGISTER frames with an empty name (each refused with
   REGISTER_ACK INVALID), the replies read as they come.
c. Connections refused because max_pending connections are in the handshake,
   2000 of them, from another address than the pending ones: no line per
   connection; after the window one more refusal brings the summary, and
   lines plus summary account for every refusal.
d. The same with the per-address limit (max_pending_per_address).
e. mgrok: a hand-written server sends 4 MiB of NEW_STREAM for a proxy mgrok
   does not have and 4 MiB of REGISTER_ACK for names it never registered,
   then closes: mgrok's log grows by less than LOG_BUDGET, and the lines and
   summaries account for every frame.

After each flood a real mgrok client must still echo through mgrokd."""
import os
import re
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mgroktest as t

TOKEN = "abuse-logs-token-2b9d"
LOG_BUDGET = 64 * 1024  # bytes a flood may add to a log
FLOOD_BYTES = 10 << 20
SUPPRESSED = re.compile(r"suppressed (\d+) similar lines?")
WINDOW = 10  # seconds of one log window (log.h)


def accounted(text, pattern):
    """(lines matching pattern, sum of the N of the summaries) in text."""
    lines = len(re.findall(pattern, text))
    return lines, sum(int(n) for n in SUPPRESSED.findall(text))


def check_log(proc, mark, pattern, frames, what, wait_for_summary=True):
    """proc's log since mark: under LOG_BUDGET, and the lines of pattern
    plus the suppressed counts equal frames (waiting a moment for the
    session's summary)."""
    def complete():
        lines, hidden = accounted(proc.stderr_since(mark), pattern)
        return lines + hidden >= frames
    if wait_for_summary:
        try:
            t.wait_for(complete, 15, "%s: lines and summaries to account for %d frames"
                       % (what, frames))
        except t.TestFailure:
            pass  # reported below, with the figures
    grown = proc.stderr_size() - mark
    text = proc.stderr_since(mark)
    lines, hidden = accounted(text, pattern)
    t.log("%s: %d frames -> %d lines and %d suppressed; the log grew by %d bytes"
          % (what, frames, lines, hidden, grown))
    t.check(grown < LOG_BUDGET, "%s: %s's log grew by %d bytes (budget %d)"
            % (what, proc.name, grown, LOG_BUDGET), lines=lines, suppressed=hidden)
    t.check(SUPPRESSED.search(text), "%s: no 'suppressed N similar lines' summary" % what,
            log=text[-600:])
    t.check_eq(lines + hidden, frames, "%s: lines written + lines suppressed vs frames sent"
               % what, lines=lines, suppressed=hidden)


def start_healthy(env, srv):
    echo = env.echo_service()
    cl = env.start_client(echo.port, srv, token=TOKEN, remote_port=srv.allow[0],
                          cname="mgrok-healthy")
    t.echo_check(srv.allow[0], b"before any flood\n")
    return cl


def still_works(srv, cl, after):
    t.check(srv.alive(), "mgrokd died after %s" % after)
    t.check(cl.alive(), "the healthy client died after %s" % after)
    t.echo_check(srv.allow[0], ("still working after %s\n" % after).encode(),
                 what="echo after %s" % after)
    t.check_eq(len(cl.public_lines()), 1, "the healthy client registered again after %s"
               % after)


def end_session(raw):
    """Half-closes and reads until mgrokd closes: every frame sent has been
    handled (an abortive close could drop what mgrokd has not read)."""
    raw.sock.shutdown(socket.SHUT_WR)
    raw.sock.settimeout(30)
    while True:
        try:
            b = raw.sock.recv(1 << 20)
        except ConnectionResetError:
            break
        if not b:
            break
    raw.close()


# ---- a, b: one session ------------------------------------------------------------------


def unregister_flood(srv, cl):
    frame = t.f_unregister(b"ghost")
    n = FLOOD_BYTES // len(frame)
    mark = srv.stderr_size()
    raw = t.RawSession(srv.port, timeout=30).handshake(TOKEN)
    raw.send(frame * n)
    end_session(raw)
    check_log(srv, mark, r"UNREGISTER of unknown proxy 'ghost'", n, "a: UNREGISTER flood")
    still_works(srv, cl, "the UNREGISTER flood")


def register_flood(srv, cl):
    frame = t.f_register(b"")
    n = FLOOD_BYTES // len(frame)
    mark = srv.stderr_size()
    raw = t.RawSession(srv.port, timeout=30).handshake(TOKEN)
    got = [0]

    def reader():  # the replies, read as they come
        try:
            while True:
                b = raw.sock.recv(1 << 20)
                if not b:
                    return
                got[0] += len(b)
        except OSError:
            pass
    th = threading.Thread(target=reader, daemon=True)
    th.start()
    raw.sock.sendall(frame * n)
    raw.sock.shutdown(socket.SHUT_WR)
    th.join(60)
    t.check(not th.is_alive(), "mgrokd did not close the REGISTER flood's session")
    raw.close()
    t.log("b: %d REGISTER frames sent, %d bytes of replies read" % (n, got[0]))
    check_log(srv, mark, r"REGISTER '' refused", n, "b: REGISTER flood")
    still_works(srv, cl, "the REGISTER flood")


# ---- c, d: refused connections ------------------------------------------------------------


REFUSED = r"in the handshake: refusing"


def slow_handshakes(port, n, source):
    """n connections that start the magic and stay in the handshake."""
    held = []
    for _ in range(n):
        s = t.RawSession(port, timeout=15, source=source)
        s.send(t.MAGIC[:2])
        held.append(s)
    return held


def refused_flood(port, n, source):
    """n connections from source, each closed by mgrokd at once; returns how
    many were (all of them, or the test fails)."""
    refused = 0
    batch = 100
    for first in range(0, n, batch):
        socks = [t.connect(port, timeout=15, source=source) for _ in range(min(batch, n - first))]
        for s in socks:
            try:
                rest = s.recv(1)
            except ConnectionResetError:
                rest = b""
            except socket.timeout:
                rest = None
            finally:
                s.close()
            t.check_eq(rest, b"", "a connection beyond the limit was not closed at once")
            refused += 1
    return refused


def pending_flood(env, what, limits, hold_from, flood_from, port, allow):
    """mgrokd with limits on port; holds connections in the handshake from
    the addresses of hold_from (address, count), then floods refused ones
    from flood_from; waits out the window and makes one more refused
    connection for the summary."""
    conf = t.write_json(env, "mgrokd-%s.json" % what[0], {
        "listen": "127.0.0.1:%d" % port,
        "auth": {"method": "token", "token": TOKEN},
        "allow_ports": ["%d-%d" % allow],
        "handshake_timeout": 60,
        "limits": limits})
    srv = env.start_server(token=None, config=conf, name="mgrokd-" + what[0])
    srv.port, srv.allow = port, allow
    cl = start_healthy(env, srv)
    held = []
    try:
        for source, count in hold_from:
            held += slow_handshakes(port, count, source)
        # Accepted is counted: every later connection meets the limits.
        t.wait_for(lambda: t.accept_backlog(port) == 0,
                   what="mgrokd to accept the connections held in the handshake")
        mark = srv.stderr_size()
        started = time.monotonic()
        n = refused_flood(port, 2000, flood_from)
        grown = srv.stderr_size() - mark
        lines = len(re.findall(REFUSED, srv.stderr_since(mark)))
        t.log("%s: %d connections refused -> %d lines, %d bytes of log"
              % (what, n, lines, grown))
        t.check(grown < LOG_BUDGET, "%s: the log grew by %d bytes for %d refused connections"
                % (what, grown, n), lines=lines)
        # The summary comes with the first line of the next window.
        time.sleep(max(0.0, WINDOW + 0.5 - (time.monotonic() - started)))
        n += refused_flood(port, 1, flood_from)
        check_log(srv, mark, REFUSED, n, what)
        for s in held:  # still pending: they were never the ones refused
            s.send(t.MAGIC[2:] + t.u8(t.AUTH_TOKEN))
    finally:
        for s in held:
            s.close()
    # The healthy client's echo goes through a session that was accepted.
    t.echo_check(allow[0], b"after the refused connections\n")
    t.check(srv.alive() and cl.alive(), "mgrokd or the healthy client died")
    t.check_eq(cl.stop(), 0, "exit code of mgrok on SIGTERM")
    t.check_eq(srv.stop(), 0, "exit code of mgrokd on SIGTERM")


# ---- e: mgrok and a hostile server ------------------------------------------------------------


def client_floods(env):
    port = env.ports.take()
    public = env.ports.take()
    fake = t.FakeServer(port)
    echo = env.echo_service()
    cconf = env.client_config(port, [{"name": "web", "type": "tcp",
                                      "local": "127.0.0.1:%d" % echo.port}], token=TOKEN)
    cl = env.start_client(None, None, token=None, config=cconf, lines=0, cname="mgrok")
    try:
        sess = fake.accept(20)
        sess.serve_registration(TOKEN, public)
        cl.wait_lines(1)
        mark = cl.stderr_size()
        got = [0]

        def reader():  # mgrok's RESETs, read as they come
            try:
                while True:
                    b = sess.sock.recv(1 << 20)
                    if not b:
                        return
                    got[0] += len(b)
            except OSError:
                pass
        th = threading.Thread(target=reader, daemon=True)
        th.start()
        sample = t.f_new_stream(2, b"nope")
        n_new = (FLOOD_BYTES // 2) // len(sample)
        block = bytearray()
        for sid in range(2, 2 + 2 * n_new, 2):
            block += t.u8(t.NEW_STREAM) + t.u32(sid) + sample[5:]
        sess.sock.sendall(bytes(block))
        ack = t.f_register_ack(t.ACK_OK, b"stranger", public, b"tcp://127.0.0.1:1")
        n_ack = (FLOOD_BYTES // 2) // len(ack)
        sess.sock.sendall(ack * n_ack)
        sess.sock.shutdown(socket.SHUT_WR)
        th.join(60)
        t.check(not th.is_alive(), "mgrok did not close the session of the hostile server")
        sess.close()
        t.log("e: %d NEW_STREAM and %d REGISTER_ACK sent, %d bytes of RESETs read"
              % (n_new, n_ack, got[0]))
        check_log(cl, mark, r"NEW_STREAM for unknown proxy 'nope'|REGISTER_ACK for unknown "
                  r"proxy 'stranger'", n_new + n_ack, "e: NEW_STREAM and REGISTER_ACK floods")
        # mgrok goes on: it reconnects and registers again.
        again = fake.accept(30)
        again.serve_registration(TOKEN, public)
        cl.wait_lines(2)
        again.close()
    finally:
        fake.close()
    t.check(cl.alive(), "mgrok died after the floods")
    t.check_eq(cl.stop(), 0, "exit code of mgrok on SIGTERM")


def main(env):
    srv = env.start_server(token=TOKEN, nports=2)
    cl = start_healthy(env, srv)
    with env.case("a: UNREGISTER flood"):
        unregister_flood(srv, cl)
    with env.case("b: REGISTER flood"):
        register_flood(srv, cl)
    # c and d wait out a log window each: side by side.
    cases = [
        ("c: refused for max_pending", {"max_pending": 4},
         [("127.0.0.2", 2), ("127.0.0.3", 2)], "127.0.0.1"),
        ("d: refused for max_pending_per_address",
         {"max_pending": 64, "max_pending_per_address": 4}, [("127.0.0.4", 4)], "127.0.0.4"),
    ]
    threads = []
    for what, limits, hold, flood in cases:
        ports = (env.ports.take(), env.ports.take_range(1))  # here: PortBlock has no lock

        def run_case(what=what, limits=limits, hold=hold, flood=flood, ports=ports):
            with env.case(what):
                pending_flood(env, what, limits, hold, flood, *ports)
        th = threading.Thread(target=run_case)
        th.start()
        threads.append(th)
    with env.case("e: mgrok and a hostile server"):
        client_floods(env)
    for th in threads:
        th.join()
    with env.case("the main server after every flood"):
        still_works(srv, cl, "every flood")


t.run(main)
