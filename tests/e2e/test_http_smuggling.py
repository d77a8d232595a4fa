#!/usr/bin/env python3
"""Request smuggling against the http proxy: every request whose framing
two parsers could read differently is refused with 400 (501 or 400 for a
transfer coding other than chunked), the connection is closed, and not a
byte of it reaches the local service.

The local service is a Recorder (mgroktest.nginx) that keeps every byte of
every connection it gets; each refused request carries a marker in its
target and, where the attack hides one, a second request with a marker of
its own, and neither may show up there.  After each case a valid request
on a new connection must still get through.

Cases: Content-Length with Transfer-Encoding (both orders); Content-Length
twice (different and equal values), as a list, and invalid (-1, +5, 5a,
0x5, empty, "5 5", 5.0, 20 digits); obsolete line folding (also of
Transfer-Encoding, and white space before the first field); a bare CR or
bare LF in the head; invalid chunk sizes (zz, -1, 0x5, +5, empty, 17 hex
digits) and chunk data not followed by CRLF; transfer codings other than
chunked (gzip, identity, chunked then gzip, chunked twice, xchunked);
white space between a field name and its colon; a refused request after
a valid one on a keep-alive connection.  Controls: valid Content-Length
and chunked bodies reach the service whole, and a body that looks like a
request stays a body."""
import os
import socket
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mgroktest as t

TOKEN = "smuggle-Token-4b8e1f0c7a2d9635"
DOMAIN = "test.example"
HOST = "app." + DOMAIN

t.WATCHDOG = 300.0


class Setup:
    pass


def head(target, *fields, method="POST", version="HTTP/1.1"):
    """A request head with Host first, then fields as they are (bytes)."""
    return (b"%s %s %s\r\nHost: %s\r\n" % (method.encode(), target, version.encode(),
                                          HOST.encode()) + b"".join(f + b"\r\n" for f in fields)
            + b"\r\n")


def inner(n):
    """The request an attack hides in a body."""
    return b"GET /inner-%02d HTTP/1.1\r\nHost: %s\r\n\r\n" % (n, HOST.encode())


def build_cases():
    """(what, request bytes, statuses allowed), each with markers
    /smuggle-NN and /inner-NN."""
    cases = []

    def add(what, make, statuses=(400,)):
        n = len(cases)
        cases.append((what, make(b"/smuggle-%02d" % n, n), statuses))

    def chunk_body(n):
        return b"0\r\n\r\n" + inner(n)

    # Content-Length beside Transfer-Encoding.
    add("Content-Length then Transfer-Encoding", lambda m, n: head(
        m, b"Content-Length: %d" % len(chunk_body(n)), b"Transfer-Encoding: chunked")
        + chunk_body(n))
    add("Transfer-Encoding then Content-Length", lambda m, n: head(
        m, b"Transfer-Encoding: chunked", b"Content-Length: %d" % len(chunk_body(n)))
        + chunk_body(n))
    add("Transfer-Encoding with Content-Length: 0", lambda m, n: head(
        m, b"Content-Length: 0", b"Transfer-Encoding: chunked") + chunk_body(n))
    add("Content-Length with an odd Transfer-Encoding", lambda m, n: head(
        m, b"Content-Length: 5", b"Transfer-Encoding: gzip") + b"hello" + inner(n), (400, 501))

    # Content-Length twice, as a list, invalid.
    def hello_inner(n):
        return b"hello" + inner(n)
    add("Content-Length twice, different", lambda m, n: head(
        m, b"Content-Length: 5", b"Content-Length: %d" % len(hello_inner(n))) + hello_inner(n))
    add("Content-Length twice, different (long first)", lambda m, n: head(
        m, b"Content-Length: %d" % len(hello_inner(n)), b"Content-Length: 5") + hello_inner(n))
    add("Content-Length twice, equal", lambda m, n: head(
        m, b"Content-Length: 5", b"Content-Length: 5") + b"hello")
    add("Content-Length as a list", lambda m, n: head(
        m, b"Content-Length: 5, %d" % len(hello_inner(n))) + hello_inner(n))
    for bad in (b"-1", b"+5", b"5a", b"0x5", b"", b"5 5", b"5.0", b"99999999999999999999",
                b"\x0b5"):
        add("Content-Length: %r" % bad, lambda m, n, bad=bad: head(
            m, b"Content-Length: " + bad) + hello_inner(n))

    # Obsolete line folding, and white space before the first field.
    add("a folded field", lambda m, n: head(m, b"X-Folded: one", b" two", b"Content-Length: 0"))
    add("a folded field (tab)", lambda m, n: head(m, b"X-Folded: one", b"\ttwo"))
    add("a folded Transfer-Encoding", lambda m, n: head(
        m, b"Transfer-Encoding:", b" chunked") + chunk_body(n))
    add("white space before the first field", lambda m, n: b"POST %s HTTP/1.1\r\n"
        b" X-Lead: x\r\nHost: %s\r\nContent-Length: 0\r\n\r\n" % (m, HOST.encode()))

    # Bare CR and bare LF.
    add("a bare CR in a field", lambda m, n: head(m, b"X-A: 1\rTransfer-Encoding: chunked",
                                                 b"Content-Length: 0") + chunk_body(n))
    add("a bare CR ending the request line", lambda m, n: b"GET %s HTTP/1.1\rHost: %s\r\n\r\n"
        % (m, HOST.encode()))
    add("a bare LF ending a field", lambda m, n: head(
        m, b"X-A: 1\nTransfer-Encoding: chunked", b"Content-Length: 0") + chunk_body(n))
    add("bare LFs only", lambda m, n: b"GET %s HTTP/1.1\nHost: %s\n\n" % (m, HOST.encode()))
    add("a bare LF ending the head", lambda m, n: b"GET %s HTTP/1.1\r\nHost: %s\r\n\n"
        % (m, HOST.encode()))

    # Invalid chunks.
    for size in (b"zz", b"-1", b"0x5", b"+5", b"", b"10000000000000000"):
        add("chunk size %r" % size, lambda m, n, size=size: head(
            m, b"Transfer-Encoding: chunked") + size + b"\r\nhello\r\n" + chunk_body(n))
    add("chunk data without its CRLF", lambda m, n: head(
        m, b"Transfer-Encoding: chunked") + b"5\r\nhelloXX" + chunk_body(n))

    # Transfer codings other than chunked.
    for te in (b"gzip", b"identity", b"chunked, gzip", b"chunked, chunked", b"xchunked"):
        add("Transfer-Encoding: %s" % te.decode(), lambda m, n, te=te: head(
            m, b"Transfer-Encoding: " + te) + chunk_body(n), (400, 501))
    add("Transfer-Encoding twice", lambda m, n: head(
        m, b"Transfer-Encoding: chunked", b"Transfer-Encoding: chunked") + chunk_body(n),
        (400, 501))

    # RFC 9112 5.1: no white space between a field name and its colon.
    add("white space before a colon", lambda m, n: head(
        m, b"Transfer-Encoding : chunked", b"Content-Length: 0") + chunk_body(n))
    add("white space before the Host colon", lambda m, n: b"GET %s HTTP/1.1\r\nHost : %s\r\n\r\n"
        % (m, HOST.encode()))
    return cases


def response(port, data, what):
    """Sends data on a new connection; (response, Reader).  A response that
    does not come is a failure of the case, not an error of the test."""
    try:
        return t.http_exchange(port, data, timeout=15)
    except socket.timeout:
        raise t.TestFailure("%s: no response within 15 s" % what)
    except (ConnectionResetError, BrokenPipeError) as e:
        raise t.TestFailure("%s: %r instead of a response" % (what, e))


def valid_after(s, n, what):
    target = "/valid-%02d" % n
    resp, rd = response(s.hp, t.request_bytes(HOST, target), "a valid request after " + what)
    rd.sock.close()
    t.check(resp is not None, "a valid request after %s: closed without a response" % what)
    t.check_eq((resp.status, resp.body), (200, b"seen %s\n" % target.encode()),
               "a valid request on a new connection after %s" % what)


def never_reached(s, n, what):
    for marker in (b"/smuggle-%02d" % n, b"/inner-%02d" % n):
        seen = s.rec.saw(marker)
        t.check(not seen, "%s: %s reached the service" % (what, marker.decode()),
                connection=seen[:1])


def refused(env, s, n, what, data, statuses):
    resp, rd = response(s.hp, data, what)
    try:
        t.check(resp is not None, "%s: the connection closed without a response" % what)
        t.check(resp.status in statuses, "%s: status %d, expected %s" % (
            what, resp.status, " or ".join(map(str, statuses))), body=resp.body[:200])
        t.check(t.closes(rd), "%s: the connection stays open after the %d" % (what, resp.status))
    finally:
        rd.sock.close()
    valid_after(s, n, what)
    time.sleep(0.1)  # anything forwarded late would be there by now
    never_reached(s, n, what)


def controls(env, s):
    # A Content-Length body and a chunked body reach the service whole.
    for what, data, body in (
            ("Content-Length", t.request_bytes(HOST, "/ctl-cl", "POST", body=b"hello world"),
             b"hello world"),
            ("chunked", head(b"/ctl-chunked", b"Transfer-Encoding: chunked")
             + b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n", b"hello world")):
        resp, rd = response(s.hp, data, what)
        rd.sock.close()
        t.check_eq(resp.status if resp else None, 200, "a valid %s POST" % what)
        got = [r for r in s.rec.requests if r.target.startswith("/ctl-")]
        t.check(got and got[-1].body == body, "the body of a valid %s POST as the service got "
                "it" % what, got=[(r.target, r.body) for r in got])
    # A body that looks like a request stays a body, and the next request is the next one.
    body = inner(99)
    sock = socket.create_connection(("127.0.0.1", s.hp), timeout=15)
    rd = t.Reader(sock)
    try:
        sock.sendall(t.request_bytes(HOST, "/ctl-body", "POST", body=body)
                     + t.request_bytes(HOST, "/ctl-next"))
        for target in ("/ctl-body", "/ctl-next"):
            resp = t.read_response(rd)
            t.check_eq((resp.status, resp.body) if resp else None,
                       (200, b"seen %s\n" % target.encode()), "pipelined %s" % target)
    finally:
        sock.close()
    targets = s.rec.targets()
    t.check("/inner-99" not in targets, "a body that looks like a request became one",
            targets=targets[-5:])
    t.check([x for x in targets if x in ("/ctl-body", "/ctl-next")] == ["/ctl-body", "/ctl-next"],
            "the requests the service got", targets=targets[-5:])


def after_valid(env, s):
    """A refused request after a valid one on one connection: the valid one
    is answered, the other refused, the connection closed."""
    n = 90
    sock = socket.create_connection(("127.0.0.1", s.hp), timeout=15)
    rd = t.Reader(sock)
    try:
        sock.sendall(t.request_bytes(HOST, "/first-%02d" % n))
        resp = t.read_response(rd)
        t.check_eq((resp.status, resp.body) if resp else None,
                   (200, b"seen /first-%02d\n" % n), "the valid first request")
        body = b"0\r\n\r\n" + inner(n)
        sock.sendall(head(b"/smuggle-%02d" % n, b"Content-Length: %d" % len(body),
                          b"Transfer-Encoding: chunked") + body)
        try:
            resp = t.read_response(rd)
        except socket.timeout:
            raise t.TestFailure("no response to the second request within 15 s")
        t.check(resp is not None, "closed without a response to the second request")
        t.check_eq(resp.status, 400, "the second request, with Content-Length and "
                   "Transfer-Encoding", body=resp.body[:200])
        t.check(t.closes(rd), "the connection stays open after the 400")
    finally:
        sock.close()
    valid_after(s, n, "a refused second request")
    never_reached(s, n, "a refused second request")


def as_failure(fn, *args):
    """fn(*args), with a socket error (a timeout, a reset) a failure of the
    sub-case rather than an error that ends the test."""
    try:
        fn(*args)
    except OSError as e:
        tb = traceback.extract_tb(e.__traceback__)
        where = ["%s:%d" % (os.path.basename(f.filename), f.lineno) for f in tb[-3:]]
        raise t.TestFailure("%r at %s" % (e, " < ".join(reversed(where))))


def main(env):
    s = Setup()
    s.port, s.hp = env.ports.take(), env.ports.take()
    s.rec = t.Recorder()
    svc = env.service(s.rec, name="recorder")
    conf = t.write_json(env, "mgrokd-smuggling.json", {
        "listen": "127.0.0.1:%d" % s.port,
        "auth": {"method": "token", "token": TOKEN},
        "http": {"listen": "127.0.0.1:%d" % s.hp, "domain": DOMAIN}})
    s.srv = env.start_server(token=None, config=conf, name="mgrokd-smuggling")
    argv = env.client_argv(None, s.port, TOKEN) + ["http", str(svc.port), "--subdomain", "app"]
    cl = env.spawn("mgrok-app", argv, t.Client)
    cl.wait_lines(1)

    with env.case("controls"):
        as_failure(controls, env, s)
    for n, (what, data, statuses) in enumerate(build_cases()):
        with env.case(what):
            as_failure(refused, env, s, n, what, data, statuses)
            t.log("refused: %s" % what)
    with env.case("after a valid request on one connection"):
        as_failure(after_valid, env, s)

    with env.case("what the service got"):
        t.check_eq(s.rec.bad, [], "errors of the service parsing what it got")
    t.check(s.srv.alive(), "mgrokd died")
    t.check_eq(cl.stop(), 0, "exit code of mgrok on SIGTERM")
    t.check_eq(s.srv.stop(), 0, "exit code of mgrokd on SIGTERM")
    env.check_services()


t.run(main)
