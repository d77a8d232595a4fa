#!/usr/bin/env python3
"""The admin endpoint against clients that misbehave, and the corners of its
HTTP (doc/admin.md, HTTP): regressions for what a review of core/admin.c
found.

- Pipelined requests never read: mgrokd stops reading while an answer is
  unread, so the client's sends block after a few MB and mgrokd's memory
  stays put; it serves others meanwhile, and the answers are all there
  when the client reads.
- A request trickled a byte a second is closed by the 10 s deadline
  (bytes received do not extend it).
- Pipelined requests and a half-close: every answer arrives before EOF.
- A clientId that is not UTF-8 (bytes shown as '?'): the session is listed,
  got and kicked like any other.
- Upgrade and CONNECT: 400, and the connection is closed.
- A query that is not UTF-8 quoted in an error: still a JSON body.
- A request target of exactly 2048 bytes is served whole (the ban is 600,
  not 60); one of 2049 bytes gets 414.
- A 1024-byte token works; one of 1025 bytes stops mgrokd from starting;
  trailing spaces after the token are ignored.
- HTTP/1.0 with and without keep-alive.
- A UDP proxy whose local port is dead: the datagrams it drops are counted
  on mgrok's endpoint.

Sub-cases go on after one fails (each is reported by name); they share one
mgrokd and its clients, in order."""
import os
import re
import select
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mgroktest as t

A = t.admin

TOKEN = "abuse-tunnel-Token-1b7e04c9d35a2f86"
ADMIN_TOKEN = "abuse-admin-Token-6c2d90f1a8e34b57"
LONG_TOKEN = ("abuse-long-Token-" + "0123456789abcdef" * 64)[:1024]
TOO_LONG_TOKEN = LONG_TOKEN + "X"
SECRETS = [TOKEN, ADMIN_TOKEN, LONG_TOKEN]

WEB = "web-abuse"
BANNED = "web-banned"
UDP_DEAD = "udp-dead"
TRANSMIT = "mgrok_transmit_bytes_total"
DROPPED = "mgrok_udp_datagrams_dropped_total"

FLOOD_REQUEST = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
FLOOD_LIMIT = 16 << 20     # bytes mgrokd may take from a client that never reads
RSS_LIMIT_KIB = 64 << 10   # what that may add to mgrokd's resident memory
PIPELINED = 200
UDP_COUNT = 20


class Setup:
    pass


# ---- helpers -------------------------------------------------------------------------


def req(method, path, token=ADMIN_TOKEN, fields=(), version="HTTP/1.1"):
    return t.request_bytes("127.0.0.1", path, method, A.auth_fields(token) + list(fields),
                           version=version)


def raw_target(method, target, token=ADMIN_TOKEN, extra=b"Connection: close\r\n"):
    """A request whose target is the bytes target, as they are."""
    auth = ("Authorization: Bearer %s\r\n" % token).encode() if token else b""
    return (method.encode() + b" " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n" + auth +
            extra + b"\r\n")


def exchange(port, data, timeout=20):
    """Sends data on a new connection; returns (first response or None,
    Reader) with the connection still open (the caller closes rd.sock)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        sock.sendall(data)
        rd = t.Reader(sock)
        return t.read_response(rd), rd
    except BaseException:
        sock.close()
        raise


def one_answer(port, data, what):
    """The one response to data on a new connection (then closed)."""
    msg, rd = exchange(port, data)
    rd.sock.close()
    t.check(msg is not None, "the admin endpoint closed the connection without answering %s"
            % what)
    return msg


def check_fields(obj, want, what):
    """Every key of want is in obj with exactly that value (and JSON type)."""
    for k, v in want.items():
        t.check(isinstance(obj, dict) and k in obj, "%s has no \"%s\"" % (what, k), obj=obj)
        t.check(obj[k] == v and type(obj[k]) == type(v),
                "%s: \"%s\" is %r, expected %r" % (what, k, obj[k], v), obj=obj)


def session_with_proxy(port, token, name):
    found = [x for x in A.sessions(port, token)
             if any(p.get("name") == name for p in x.get("proxies") or [])]
    t.check_eq(len(found), 1, "sessions with proxy %s" % name, sessions=found)
    return found[0]


def read_eof(sock, timeout):
    """What sock receives until EOF (a reset counts as EOF), within timeout
    seconds; None if it is still open after that."""
    end = time.monotonic() + timeout
    got = b""
    while True:
        left = end - time.monotonic()
        if left <= 0:
            return None
        sock.settimeout(left)
        try:
            b = sock.recv(65536)
        except ConnectionResetError:
            return got
        except socket.timeout:
            return None
        if not b:
            return got
        got += b


# ---- 1. pipelining without reading ------------------------------------------------------


def flood(env, s):
    port = s.sadmin
    before = t.rss_kib(s.srv.pid)
    t.check(before, "no VmRSS for mgrokd (pid %d)" % s.srv.pid)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # Our own buffers small, so that what the kernels hold on our side is
    # no excuse for the bytes mgrokd took.
    for opt in (socket.SO_SNDBUF, socket.SO_RCVBUF):
        sock.setsockopt(socket.SOL_SOCKET, opt, 64 * 1024)
    try:
        sock.settimeout(20)
        sock.connect(("127.0.0.1", port))
        sock.setblocking(False)
        data = FLOOD_REQUEST * 1024
        pos = sent = 0
        blocked = False
        end = time.monotonic() + 30
        while sent < FLOOD_LIMIT and time.monotonic() < end:
            try:
                n = sock.send(data[pos:])
            except BlockingIOError:
                # Blocked: it must stay so (mgrokd no longer reads).
                _, w, _ = select.select([], [sock], [], 1.0)
                if not w:
                    blocked = True
                    break
                continue
            sent += n
            pos = (pos + n) % len(data)
        t.log("flood: %d bytes (%d requests) accepted before the socket %s" %
              (sent, sent // len(FLOOD_REQUEST), "blocked" if blocked else "never blocked"))
        t.check(blocked, "a client that sends pipelined requests and never reads: its sends "
                "never blocked (%d bytes accepted; expected mgrokd to stop reading and the "
                "socket to block before %d bytes)" % (sent, FLOOD_LIMIT))
        after = t.rss_kib(s.srv.pid)
        t.log("mgrokd's VmRSS: %d KiB before the flood, %d KiB after" % (before, after or -1))
        t.check(after is not None, "mgrokd is gone after the flood", code=s.srv.returncode)
        t.check(after - before < RSS_LIMIT_KIB, "mgrokd's VmRSS grew by %d KiB with one client "
                "that never reads (expected less than %d KiB)" % (after - before,
                                                                  RSS_LIMIT_KIB))

        # Others are served meanwhile: the endpoint, and the tunnel (well
        # within the 10 s mgrokd gives a reader that stalls).
        t.check_eq(len(A.sessions(port, ADMIN_TOKEN)), 1,
                   "sessions listed on a new admin connection during the flood")
        A.metrics(port, ADMIN_TOKEN, "GET /metrics on a new connection during the flood")
        A.echo_exact(s.lo, t.payload(11, 100003))
        _, w, _ = select.select([], [sock], [], 0)
        t.check(not w, "the flooded socket became writable while it read nothing (mgrokd "
                "read more of its requests)")

        # The answers are there when the client reads: complete 401s.
        sock.setblocking(True)
        sock.settimeout(20)
        rd = t.Reader(sock)
        for i in range(100):
            msg = t.read_response(rd)
            t.check(msg is not None, "the flooded connection closed after %d answers" % i)
            A.expect_error(msg, 401, "answer %d on the flooded connection" % (i + 1))
            t.check_eq(msg.header("www-authenticate"), 'Bearer realm="mgrok"',
                       "WWW-Authenticate of answer %d on the flooded connection" % (i + 1))
        t.check(t.rss_kib(s.srv.pid) is not None, "mgrokd is gone")
    finally:
        sock.close()


# ---- 2. a trickle ---------------------------------------------------------------------


def trickle(env, s):
    sock = socket.create_connection(("127.0.0.1", s.sadmin), timeout=20)
    opened = time.monotonic()
    try:
        sock.sendall(b"GET /metrics HTTP/1.1\r\n")
        header = b"X-Trickle: " + b"a" * 200
        end = opened + 25
        i = 0
        closed = None
        while closed is None:
            left = end - time.monotonic()
            t.check(left > 0, "a connection trickling a header byte a second is still open "
                    "after %.0f s (%d bytes trickled; expected mgrokd to close it at its "
                    "10 s request deadline)" % (time.monotonic() - opened, i))
            r, _, _ = select.select([sock], [], [], min(1.0, left))
            if r:
                try:
                    closed = sock.recv(4096)
                except ConnectionResetError:
                    closed = b""
                break
            try:
                sock.send(header[i % len(header):i % len(header) + 1])
                i += 1
            except (BrokenPipeError, ConnectionResetError):
                closed = read_eof(sock, 5)
                t.check(closed is not None, "a send on the trickling connection failed but "
                        "it does not read EOF")
        t.log("the trickling connection was closed %.1f s after it opened, after %d header "
              "bytes" % (time.monotonic() - opened, i))
        t.check_eq(closed, b"", "what mgrokd sent on the trickling connection before closing")
    finally:
        sock.close()
    A.metrics(s.sadmin, ADMIN_TOKEN, "GET /metrics after the trickle")


# ---- 3. pipelining and a half-close ----------------------------------------------------


def half_close(env, s):
    """The client writes all its requests and half-closes before it reads:
    its window small (a small receive buffer, small segments), so that
    mgrokd sees the EOF while most answers are still to be written."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    errors = []
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 536)
        sock.settimeout(20)
        sock.connect(("127.0.0.1", s.sadmin))
        data = req("GET", "/api/v1/sessions") * PIPELINED

        def send():
            try:
                sock.sendall(data)
                sock.shutdown(socket.SHUT_WR)
            except OSError as e:
                errors.append(e)
        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        sender.join(20)
        t.check(not sender.is_alive(), "%d pipelined requests (%d bytes) not sent within 20 s"
                % (PIPELINED, len(data)))
        t.check(not errors, "sending %d pipelined requests failed" % PIPELINED, errors=errors)
        # Not a measure of anything: time for mgrokd to read up to the
        # EOF before the first answer is read.
        time.sleep(0.5)
        rd = t.Reader(sock)
        answers = []
        while True:
            try:
                msg = t.read_response(rd)
            except t.TestFailure as e:
                raise t.TestFailure("answer %d of %d to pipelined GET /api/v1/sessions, the "
                                    "client having half-closed after them, is cut short: %s"
                                    % (len(answers) + 1, PIPELINED, e))
            if msg is None:
                break
            answers.append(msg)
            t.check(len(answers) <= PIPELINED, "more answers than the %d requests" % PIPELINED)
    finally:
        sock.close()
    t.check_eq(len(answers), PIPELINED, "answers to %d pipelined GET /api/v1/sessions before "
               "EOF, the client having half-closed after them" % PIPELINED)
    for i, msg in enumerate(answers):
        t.check_eq(msg.status, 200, "HTTP status of pipelined answer %d" % (i + 1),
                   body=msg.body[:200])
        obj = A.body_json(msg, "pipelined answer %d" % (i + 1))
        t.check(isinstance(obj, dict) and isinstance(obj.get("sessions"), list),
                "pipelined answer %d is not {\"sessions\": [...]}" % (i + 1), body=obj)


# ---- 4. a clientId that is not UTF-8 ---------------------------------------------------


def bad_client_id(env, s):
    port = s.sadmin
    before = {x["id"] for x in A.sessions(port, ADMIN_TOKEN)}
    raw = t.RawSession(s.ctrl).handshake(TOKEN).hello(b"\xff\xfehidden")
    try:
        def listed():
            new = [x for x in A.sessions(port, ADMIN_TOKEN)
                   if x["id"] not in before and x.get("client_id") is not None]
            return new or None
        try:
            new = t.wait_for(listed, 20, "the session with clientId ff fe 'hidden' to be listed "
                             "with its client id", interval=0.1)
        except t.TestFailure as e:
            m = A.metrics(port, ADMIN_TOKEN)
            raise t.TestFailure("%s (mgrok_sessions is %s; listed: %s)" % (
                e, A.fmt_num(m.value("mgrok_sessions")),
                [(x["id"], x.get("client_id")) for x in A.sessions(port, ADMIN_TOKEN)]))
        t.check_eq(len(new), 1, "new sessions after the hand-written HELLO", sessions=new)
        sess = new[0]
        check_fields(sess, {"client_id": "??hidden", "state": "open"},
                     "the session with clientId ff fe 'hidden' in the list")
        # Every session is listed: as many as mgrok_sessions counts.
        for attempt in range(20):
            first = sorted(x["id"] for x in A.sessions(port, ADMIN_TOKEN))
            count = A.metrics(port, ADMIN_TOKEN).value("mgrok_sessions")
            again = sorted(x["id"] for x in A.sessions(port, ADMIN_TOKEN))
            if first == again:
                break
            time.sleep(0.1)
        t.check_eq(first, again, "the session list, twice (it must be still to compare it)")
        t.check_eq(len(first), count, "sessions listed vs. mgrok_sessions in /metrics",
                   listed=first)
        one = A.get_json(port, "/api/v1/sessions/%d" % sess["id"], ADMIN_TOKEN)
        check_fields(one, {"id": sess["id"], "client_id": "??hidden"},
                     "GET /api/v1/sessions/%d" % sess["id"])
        msg = A.request(port, "DELETE", "/api/v1/sessions/%d" % sess["id"], ADMIN_TOKEN)
        t.check_eq(msg.status, 200, "HTTP status of DELETE /api/v1/sessions/%d" % sess["id"],
                   body=msg.body[:300])
        t.check_eq(A.body_json(msg, "DELETE"), {"id": sess["id"], "client_id": "??hidden",
                                                "banned_seconds": 0},
                   "the answer to DELETE /api/v1/sessions/%d" % sess["id"])
        f = raw.expect_go_away(t.GOAWAY_NORMAL, "the kick")
        t.check_eq(f.message, "closed by the administrator", "GO_AWAY message of the kick")
    finally:
        raw.close()
    A.expect_error(A.request(port, "GET", "/api/v1/sessions/%d" % sess["id"], ADMIN_TOKEN),
                   404, "GET of the kicked session %d" % sess["id"])


# ---- 5. Upgrade and CONNECT ------------------------------------------------------------


def upgrade_connect(env, s):
    auth = ("Authorization: Bearer %s\r\n" % ADMIN_TOKEN).encode()
    follow = req("GET", "/metrics")
    upgrade = b"Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
    for what, data in (
            ("GET with Upgrade: websocket",
             b"GET /metrics HTTP/1.1\r\nHost: x\r\n" + upgrade),
            ("GET with Upgrade: websocket and the token",
             b"GET /metrics HTTP/1.1\r\nHost: x\r\n" + auth + upgrade),
            ("CONNECT", b"CONNECT 127.0.0.1:1 HTTP/1.1\r\n\r\n"),
            ("CONNECT with the token", b"CONNECT 127.0.0.1:1 HTTP/1.1\r\n" + auth + b"\r\n")):
        msg, rd = exchange(s.sadmin, data + follow)
        try:
            t.check(msg is not None, "no answer to %s (and a GET after it)" % what)
            A.expect_error(msg, 400, "%s (and a GET after it in the same segment)" % what)
            rest = read_eof(rd.sock, 10)
            t.check(rest is not None, "the connection stays open 10 s after the 400 to %s" % what)
            rest = rd.buf + rest
            t.check_eq(rest, b"", "bytes after the 400 to %s (the GET after it must not be "
                       "answered)" % what)
        finally:
            rd.sock.close()


# ---- 6. a query that is not UTF-8 ------------------------------------------------------


def bad_query(env, s):
    cut = "x" * 63 + "\u20ac"  # the euro sign's 3 bytes are cut at the 64th byte
    long_query = (cut + "y" * 300).encode("utf-8")[:300]
    for what, query in (("a raw 0xff byte", b"\xff%FF"),
                        ("a 300-byte query with a 3-byte character at byte 64",
                         long_query)):
        target = b"/api/v1/sessions/1?" + query
        msg = one_answer(s.sadmin, raw_target("DELETE", target), "DELETE with " + what)
        obj = A.expect_error(msg, 400, "DELETE /api/v1/sessions/1?... with %s in the query"
                             % what)
        t.check("query" in obj["error"], "the 400 to a query with %s does not say what is "
                "wrong with it" % what, error=obj["error"])
    session_with_proxy(s.sadmin, ADMIN_TOKEN, WEB)


# ---- 7. a target of 2048 bytes ---------------------------------------------------------


def long_target(env, s):
    conf = t.write_json(env, "mgrok-banned.json", {
        "server": "127.0.0.1:%d" % s.ctrl,
        "plugin_dir": t.PLUGIN_DIR,
        "auth": {"method": "token", "token": TOKEN},
        "reconnect": {"initial": 0.2, "max": 0.5},
        "proxies": [{"name": BANNED, "type": "tcp", "local": "127.0.0.1:%d" % s.echo.port,
                     "remote_port": s.lo + 1}]})
    cl = s.banned = env.start_client(None, None, token=None, config=conf, cname="mgrok-banned")
    t.echo_check(s.lo + 1, b"the client to ban\n")
    sess = session_with_proxy(s.sadmin, ADMIN_TOKEN, BANNED)
    sid, cid = sess["id"], sess["client_id"]
    t.check(isinstance(cid, str) and cid, "the session to ban has no client id", session=sess)

    def target(size):
        head = "/api/v1/sessions/%d?ban=" % sid
        return (head + "0" * (size - len(head) - 3) + "600").encode()
    t.check_eq(len(target(2048)), 2048, "length of the 2048-byte target")
    msg = one_answer(s.sadmin, raw_target("DELETE", target(2049)), "a 2049-byte target")
    A.expect_error(msg, 414, "DELETE with a 2049-byte target")
    t.check_eq(session_with_proxy(s.sadmin, ADMIN_TOKEN, BANNED)["id"], sid,
               "the session after the 414 (nothing kicked)")

    mark = cl.stderr_size()
    msg = one_answer(s.sadmin, raw_target("DELETE", target(2048)), "a 2048-byte target")
    t.check_eq(msg.status, 200, "HTTP status of DELETE with a 2048-byte target ending in "
               "ban=000...0600", body=msg.body[:300])
    t.check_eq(A.body_json(msg, "the ban"), {"id": sid, "client_id": cid, "banned_seconds": 600},
               "the answer to DELETE with a 2048-byte target ending in ban=000...0600")
    # mgrok's next HELLO is refused for what is left of 600 s.
    found = t.wait_for(lambda: re.findall(r"GO_AWAY code 0: banned for (\d+) more seconds",
                                          cl.stderr_since(mark)), 20,
                       "mgrok to be refused as banned after the 2048-byte DELETE", interval=0.1)
    left = int(found[0])
    t.check(60 < left <= 600, "mgrok was told it is banned for %d more seconds (expected "
            "nearly 600)" % left)
    gone = [x for x in A.sessions(s.sadmin, ADMIN_TOKEN) if x.get("client_id") == cid]
    t.check_eq(gone, [], "sessions of the banned client id")
    t.check_eq(cl.stop(), 0, "exit code of the banned mgrok on SIGTERM")


# ---- 8. tokens ------------------------------------------------------------------------


def tokens(env, s):
    path = env.write_file("long.token", LONG_TOKEN + "\n")
    conf = t.write_json(env, "mgrokd-long-token.json", {
        "listen": "127.0.0.1:%d" % s.ctrl2,
        "plugin_dir": t.PLUGIN_DIR,
        "auth": {"method": "token", "token": TOKEN},
        "admin": {"listen": "127.0.0.1:%d" % s.admin2, "token_file": path}})
    srv = env.start_server(token=None, config=conf, name="mgrokd-long-token")
    try:
        A.wait_up(s.admin2, LONG_TOKEN, "mgrokd with a 1024-byte admin token")
        t.check_eq(len(LONG_TOKEN), 1024, "length of the long token")
        for p in ("/metrics", "/api/v1/sessions"):
            t.check_eq(A.request(s.admin2, "GET", p, LONG_TOKEN).status, 200,
                       "GET %s with the 1024-byte token" % p)
            A.expect_error(A.request(s.admin2, "GET", p, None), 401,
                           "GET %s without the 1024-byte token" % p)
            A.expect_error(A.request(s.admin2, "GET", p, LONG_TOKEN[:-1]), 401,
                           "GET %s with the 1024-byte token's first 1023 bytes" % p)
            A.expect_error(A.request(s.admin2, "GET", p, LONG_TOKEN + "x"), 401,
                           "GET %s with the 1024-byte token and one byte more" % p)
            msg = A.request(s.admin2, "GET", p, None,
                            [("Authorization", "Bearer %s   " % LONG_TOKEN)])
            t.check_eq(msg.status, 200, "GET %s with the 1024-byte token and trailing spaces"
                       % p, body=msg.body[:200])
    finally:
        t.check_eq(srv.stop(), 0, "exit code of mgrokd with the long token on SIGTERM")
    # The raw bytes, so that no client library trims them.
    msg = one_answer(s.sadmin, b"GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
                     ADMIN_TOKEN.encode() + b"   \r\nConnection: close\r\n\r\n",
                     "a token followed by three spaces")
    t.check_eq(msg.status, 200, "GET /metrics with \"Authorization: Bearer TOKEN   \"",
               body=msg.body[:200])

    path = env.write_file("too-long.token", TOO_LONG_TOKEN + "\n")
    conf = t.write_json(env, "mgrokd-too-long-token.json", {
        "listen": "127.0.0.1:%d" % s.ctrl3,
        "plugin_dir": t.PLUGIN_DIR,
        "auth": {"method": "token", "token": TOKEN},
        "admin": {"listen": "127.0.0.1:%d" % s.admin3, "token_file": path}})
    code, out, err = t.run_recorded(env, [t.MGROKD, "--plugin-dir", t.PLUGIN_DIR, "-c", conf],
                                    timeout=15)
    t.log("mgrokd with a 1025-byte admin token: exit code %s, stderr: %s" % (code, err.strip()))
    t.check(code > 0, "mgrokd with a 1025-byte admin token: exit code %s (expected it to refuse "
            "to start, non-zero)" % code, stderr=err[-600:])
    t.check(re.search(r"admin token", err, re.I), "mgrokd with a 1025-byte admin token: no "
            "error naming the admin token on stderr", stderr=err[-600:])
    t.check(t.port_closed(s.admin3), "something listens on the admin port of the mgrokd that "
            "refused to start")


# ---- 9. HTTP/1.0 ----------------------------------------------------------------------


def http10(env, s):
    sock = socket.create_connection(("127.0.0.1", s.sadmin), timeout=20)
    rd = t.Reader(sock)
    try:
        for i, p in enumerate(("/metrics", "/api/v1/sessions")):
            sock.sendall(req("GET", p, fields=[("Connection", "keep-alive")],
                             version="HTTP/1.0"))
            msg = t.read_response(rd)
            t.check(msg is not None, "an HTTP/1.0 keep-alive connection closed before the "
                    "answer to request %d" % (i + 1))
            t.check_eq(msg.status, 200, "HTTP/1.0 keep-alive request %d (%s)" % (i + 1, p))
            t.check_eq((msg.header("connection") or "").lower(), "keep-alive",
                       "the Connection header of the answer to HTTP/1.0 keep-alive request %d"
                       % (i + 1), fields=msg.fields)
    finally:
        sock.close()

    msg, rd = exchange(s.sadmin, req("GET", "/api/v1/sessions", version="HTTP/1.0"))
    try:
        t.check(msg is not None, "no answer to an HTTP/1.0 request without keep-alive")
        t.check_eq(msg.status, 200, "HTTP status of an HTTP/1.0 request without keep-alive")
        t.check((msg.header("connection") or "").lower() != "keep-alive",
                "the answer to an HTTP/1.0 request without keep-alive says keep-alive")
        A.body_json(msg, "the answer to an HTTP/1.0 request")
        rest = read_eof(rd.sock, 10)
        t.check(rest is not None, "an HTTP/1.0 connection without keep-alive is still open "
                "10 s after its answer")
        t.check_eq(rd.buf + rest, b"", "bytes after the answer to HTTP/1.0 without keep-alive")
    finally:
        rd.sock.close()


# ---- 10. UDP to a dead local port ------------------------------------------------------


def udp_dead(env, s):
    dead = s.dead  # free for UDP, reserved for this test: nothing ever listens there
    port = s.lo + 2
    cl = env.start_client(dead, s.srv, token=TOKEN, remote_port=port, name=UDP_DEAD,
                          proto="udp", cname="mgrok-udp-dead",
                          extra=("--admin-listen", "127.0.0.1:%d" % s.uadmin))
    scheme, _, got_port, _ = cl.public_lines()[0]
    t.check_eq((scheme, got_port), ("udp", port), "public address of the udp proxy")
    A.wait_up(s.uadmin, None, "the udp mgrok's admin endpoint")

    sizes = [1 + 37 * i for i in range(UDP_COUNT)]
    total = sum(sizes)
    sock = t.udp_socket()
    try:
        for i, size in enumerate(sizes):
            sock.sendto(t.payload(900 + i, size), ("127.0.0.1", port))
            time.sleep(0.05)
        end = time.monotonic() + 1.0
        while True:
            left = end - time.monotonic()
            if left <= 0:
                break
            r, _, _ = select.select([sock], [], [], left)
            if r:
                try:
                    got = sock.recv(65536)
                except ConnectionRefusedError:
                    continue
                raise t.TestFailure("a %d-byte datagram came back from a udp proxy whose "
                                    "local port nobody listens on" % len(got))
    finally:
        sock.close()

    labels = {"proxy": UDP_DEAD}
    for p, token, who in ((s.sadmin, ADMIN_TOKEN, "mgrokd"), (s.uadmin, None, "mgrok")):
        A.wait_counter(p, token, TRANSMIT, total, dict(labels, direction="in"),
                       "%s: bytes in of %s (every datagram reached mgrok)" % (who, UDP_DEAD))
        m = A.metrics(p, token)
        t.check_eq(m.value(TRANSMIT, direction="out", **labels), 0,
                   "%s: bytes out of %s (nothing answers)" % (who, UDP_DEAD))
        t.check_eq(m.value("mgrok_streams_total", **labels), 1,
                   "%s: streams of %s (one visitor address)" % (who, UDP_DEAD))
    t.check_eq(A.metrics(s.sadmin, ADMIN_TOKEN).value(DROPPED, **labels), 0,
               "mgrokd: %s{proxy=%s} (mgrokd forwarded every datagram)" % (DROPPED, UDP_DEAD))

    last = [None]

    def dropped(at_least):
        def enough():
            v = A.metrics(s.uadmin).value_or(DROPPED, None, **labels)
            last[0] = v
            t.check(v is None or v <= UDP_COUNT, "mgrok: %s{proxy=%s} is %s, more than the %d "
                    "datagrams sent" % (DROPPED, UDP_DEAD, v, UDP_COUNT))
            return v is not None and v >= at_least
        try:
            t.wait_for(enough, 20, "mgrok: %s{proxy=%s} to reach %d" % (DROPPED, UDP_DEAD,
                                                                        at_least), interval=0.1)
        except t.TestFailure as e:
            raise t.TestFailure("%s (last value: %s)" % (e, last[0]))
    dropped(1)
    # A datagram is lost either where its send() fails on the error an
    # earlier one left, or when the error is read: each count covers one
    # or two datagrams, so at least half of them are counted.
    dropped(UDP_COUNT // 2)
    t.log("mgrok counted %s of %d datagrams to a dead port as dropped" % (last[0], UDP_COUNT))
    t.check(cl.alive(), "the udp mgrok exited", code=cl.returncode)


# ---- main ---------------------------------------------------------------------------------


def main(env):
    s = Setup()
    s.echo = env.echo_service()
    s.lo = env.udp_ports(4)
    s.ctrl, s.sadmin, s.uadmin = env.ports.take(), env.ports.take(), env.ports.take()
    s.ctrl2, s.admin2, s.ctrl3, s.admin3 = (env.ports.take() for _ in range(4))
    s.dead = env.udp_ports(1)
    srv_conf = t.write_json(env, "mgrokd-abuse.json", {
        "listen": "127.0.0.1:%d" % s.ctrl,
        "plugin_dir": t.PLUGIN_DIR,
        "auth": {"method": "token", "token": TOKEN},
        "allow_ports": ["%d-%d" % (s.lo, s.lo + 3)],
        "admin": {"listen": "127.0.0.1:%d" % s.sadmin, "token": ADMIN_TOKEN}})
    s.srv = env.start_server(token=None, config=srv_conf, name="mgrokd-abuse")
    s.srv.port, s.srv.allow = s.ctrl, (s.lo, s.lo + 3)
    A.wait_up(s.sadmin, ADMIN_TOKEN, "mgrokd's admin endpoint")
    client_conf = t.write_json(env, "mgrok-abuse.json", {
        "server": "127.0.0.1:%d" % s.ctrl,
        "plugin_dir": t.PLUGIN_DIR,
        "auth": {"method": "token", "token": TOKEN},
        "proxies": [{"name": WEB, "type": "tcp", "local": "127.0.0.1:%d" % s.echo.port,
                     "remote_port": s.lo}]})
    s.cl = env.start_client(None, None, token=None, config=client_conf, cname="mgrok-abuse")
    t.echo_check(s.lo, b"before the abuse\n")

    for what, fn in (("1. pipelined requests never read: bounded", flood),
                     ("2. a trickle does not hold a connection", trickle),
                     ("3. a half-close keeps the answers", half_close),
                     ("4. a clientId that is not UTF-8", bad_client_id),
                     ("5. Upgrade and CONNECT: 400 and closed", upgrade_connect),
                     ("6. a query that is not UTF-8", bad_query),
                     ("7. a 2048-byte target, and 2049", long_target),
                     ("8. tokens: 1024 bytes, 1025, trailing spaces", tokens),
                     ("9. HTTP/1.0 with and without keep-alive", http10),
                     ("10. udp drops at a dead local port counted", udp_dead)):
        t.log("---- %s" % what)
        with env.case(what):
            t.guarded(fn, env, s)

    with env.case("after all: mgrokd and the tunnel"):
        t.check(s.srv.alive(), "mgrokd exited", code=s.srv.returncode)
        A.echo_exact(s.lo, t.payload(12, 54321))
        session_with_proxy(s.sadmin, ADMIN_TOKEN, WEB)
    for p in env.procs:
        if p.alive():
            t.check_eq(p.stop(), 0, "exit code of %s on SIGTERM" % p.name)
    t.check_no_secrets(env, SECRETS)
    env.check_services()


t.run(main)
