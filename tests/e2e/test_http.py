#!/usr/bin/env python3
"""http proxies: one shared listener on mgrokd routes each visitor by its
Host header to the session holding that name (doc/protocol.md 9), with a
real nginx as the local service and real curl as the visitor.

Names: two clients with two subdomains on one port each reach only their
own nginx (any case, with or without the port in Host); the mgrokd log
names each proxy with its http:// address; without a name the server picks
a random 10-character subdomain; a name held by another session (any case)
is NAME_IN_USE and is free again once its session ends; with token auth
only one-label subdomains of the domain may be claimed (FORBIDDEN, and
INVALID for names that are no host names); with users auth a user's
"domains" (exact names and *.suffix) say what it may claim, and a user
without them follows the token rule.
Pages: 404 naming the host, 400 for a malformed head or no Host, 502 when
the local port is closed, 421 and a close for a second request with
another Host on one connection, 431 for a head over 16 KiB or over 100
fields (and not below), 408 when the first head is not complete within
request_timeout, 503 at the session's stream limit.
Options: basic_auth (401 with WWW-Authenticate without the right
credentials; the password in no log), X-Forwarded-For (appended),
X-Forwarded-Proto, X-Forwarded-Host and Forwarded as nginx sees them, none
of them with forwarded false, host_header.
Traffic: a WebSocket echo through an Upgrade (several messages each way,
1 MiB, fragments, ping); 64 MiB down from nginx and 64 MiB up (after
100 kB), by SHA-256; keep-alive (curl's num_connects) and three pipelined
requests answered in order."""
import hashlib
import json
import os
import re
import select
import socket
import sys
import threading
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mgroktest as t

TOKEN = "http-Token-5c1e9a7b3d2f4086"
ALICE = "alice-Tok-93b0e6d1c4a7f258"
BOB = "bob-Tok-2e8f6a1c0d9b7354"
PASSWORD = "Pa55-w0rd-f3a9c1e7"
DOMAIN = "test.example"
PROXY_HTTP = 0x03
REQUEST_TIMEOUT = 3
FILES = {"one.txt": b"first file\n", "two.txt": b"second file\n", "three.txt": b"third file\n"}

t.WATCHDOG = 400.0
# Only the sub-cases whose name contains this (when iterating on one).
ONLY = os.environ.get("MGROK_TEST_CASE")


class Setup:
    pass


# ---- helpers --------------------------------------------------------------------------


def http_client(env, port, local, *opts, cname="mgrok-http", lines=1, token=TOKEN, kind="http"):
    """mgrok KIND LOCAL OPTS... against mgrokd's control port."""
    argv = env.client_argv(None, port, token) + [kind, str(local)] + list(opts)
    cl = env.spawn(cname, argv, t.Client)
    if lines:
        cl.wait_lines(lines)
    return cl


def expect_line(cl, host, hp, local_port):
    got = cl.public_lines()
    t.check_eq(got[:1], [("http", host, hp, "127.0.0.1:%d" % local_port)],
               "the public line of %s" % cl.name, stdout=cl.stdout_lines())


def refused(cl, status, what):
    """mgrok gives up by itself (exit 1) with a refusal of the given status."""
    code = cl.wait_exit()
    err = cl.stderr_text()
    t.check_eq(code, 1, "exit code of mgrok for %s" % what, stderr=err[-800:])
    t.check("registration refused (status %d)" % status in err,
            "no refusal with status %d for %s" % (status, what), stderr=err[-800:])
    t.check_eq(cl.public_lines(), [], "public lines of mgrok for %s" % what)
    return err


_n = [0]


def curl(env, s, host, path="/whoami", *args, port=None, max_time=30):
    """curl http://HOST:PORT/PATH through the shared listener (--resolve);
    returns (status, body bytes, response head text)."""
    port = port or s.hp
    _n[0] += 1
    body = os.path.join(env.dir, "curl-%d.body" % _n[0])
    head = os.path.join(env.dir, "curl-%d.head" % _n[0])
    argv = ["curl", "-sS", "--max-time", str(max_time), "--resolve",
            "%s:%d:127.0.0.1" % (host, port), "-o", body, "-D", head, "-w", "%{http_code}"]
    argv += list(args) + ["http://%s:%d%s" % (host, port, path)]
    code, out, err = env.run_program(argv, timeout=max_time + 15)
    t.check_eq(code, 0, "exit code of curl for http://%s:%d%s" % (host, port, path), stderr=err)
    with open(body, "rb") as f:
        data = f.read()
    with open(head, "rb") as f:
        headers = f.read().decode("latin-1")
    return int(out.strip()), data, headers


def whoami(env, s, host, what, port=None):
    status, body, _ = curl(env, s, host, port=port)
    t.check_eq((status, body), (200, b"%s\n" % what.encode()), "GET /whoami on %s" % host)


def raw(s, host, target="/whoami", fields=(), port=None):
    """One request by hand on a new connection: (response, Reader)."""
    return t.http_exchange(port or s.hp, t.request_bytes(host, target, fields=fields))


def error_page(resp, status, what):
    t.check(resp is not None, "%s: the connection closed without a response" % what)
    t.check_eq(resp.status, status, "%s: status" % what, head=resp.first, body=resp.body[:300])
    t.check("text/html" in (resp.header("content-type") or ""),
            "%s: the page is not text/html" % what, fields=resp.fields)
    t.check(str(status).encode() in resp.body, "%s: the page does not name its status" % what,
            body=resp.body[:300])


def expect_ack(ack, status, what):
    t.check_eq(ack.status, status, "REGISTER_ACK status for %s" % what, message=ack.message)


def register_http(r, name, **options):
    """REGISTER of an http proxy by hand; its options are JSON, as mgrok sends them."""
    return r.register(name, 0, proxy_type=PROXY_HTTP, options=json.dumps(options).encode())


# ---- the cases -----------------------------------------------------------------------


def two_subdomains(env, s):
    expect_line(s.app, "app." + DOMAIN, s.hp, s.nginx_a.port)
    expect_line(s.blog, "blog." + DOMAIN, s.hp, s.nginx_b.port)
    whoami(env, s, "app." + DOMAIN, "nginx-a")
    whoami(env, s, "blog." + DOMAIN, "nginx-b")
    for host, who in (("APP.Test.Example:%d" % s.hp, "nginx-a"), ("Blog." + DOMAIN, "nginx-b"),
                      ("app.%s:%d" % (DOMAIN, s.hp), "nginx-a")):
        resp, rd = raw(s, host)
        rd.sock.close()
        t.check_eq((resp.status, resp.body), (200, b"%s\n" % who.encode()),
                   "a request with Host: %s" % host)
    t.log("two subdomains on port %d: each client gets its own nginx" % s.hp)


def server_log(env, s):
    for name in ("app", "blog"):
        t.wait_log(s.srv, r"proxy \S+: http://%s\.%s:%d\b" % (name, re.escape(DOMAIN), s.hp),
                   what="mgrokd's line for %s's http:// address" % name)


def random_subdomain(env, s):
    cl = http_client(env, s.port, s.nginx_a.port, cname="mgrok-random")
    scheme, host, port, local = cl.public_lines()[0]
    t.check(re.fullmatch(r"[a-z0-9]{10}\.%s" % re.escape(DOMAIN), host),
            "the server's pick is not 10 characters [a-z0-9] of the domain", host=host)
    t.check_eq((scheme, port, local), ("http", s.hp, "127.0.0.1:%d" % s.nginx_a.port),
               "the rest of the random subdomain's line")
    whoami(env, s, host, "nginx-a")
    t.check_eq(cl.stop(), 0, "exit code of mgrok on SIGTERM")
    t.log("random subdomain %s works" % host)


def name_in_use(env, s):
    cl = http_client(env, s.port, s.nginx_b.port, "--subdomain", "APP", cname="mgrok-dup",
                     lines=0)
    refused(cl, t.ACK_NAME_IN_USE, "a subdomain another session holds (other case)")
    r = t.RawSession(s.port).handshake(TOKEN)
    try:
        expect_ack(register_http(r, "dup", subdomain="blog"), t.ACK_NAME_IN_USE,
                   "subdomain blog (held)")
        expect_ack(register_http(r, "dup2", hostname="BLOG." + DOMAIN), t.ACK_NAME_IN_USE,
                   "hostname BLOG.test.example (held)")
    finally:
        r.close()
    whoami(env, s, "app." + DOMAIN, "nginx-a")
    # Once its session is gone the name is free again.
    t.check_eq(s.blog.stop(), 0, "exit code of mgrok on SIGTERM")
    status, _, _ = curl(env, s, "blog." + DOMAIN)
    t.check_eq(status, 404, "a request for blog once its session is gone")
    s.blog = http_client(env, s.port, s.nginx_b.port, "--subdomain", "blog", cname="mgrok-blog")
    whoami(env, s, "blog." + DOMAIN, "nginx-b")
    t.log("a name in use is refused (status 3) and free again after its session")


def token_rules(env, s):
    cl = http_client(env, s.port, s.nginx_a.port, "--hostname", "www.example.org",
                     cname="mgrok-foreign", lines=0)
    refused(cl, t.ACK_FORBIDDEN, "a hostname outside the domain with token auth")
    cl = http_client(env, s.port, s.nginx_a.port, "--hostname", "a.b." + DOMAIN,
                     cname="mgrok-deep", lines=0)
    refused(cl, t.ACK_FORBIDDEN, "a two-label subdomain with token auth")
    r = t.RawSession(s.port).handshake(TOKEN)
    try:
        for i, (what, opts, status) in enumerate((
                ("hostname www.example.org", {"hostname": "www.example.org"}, t.ACK_FORBIDDEN),
                ("hostname a.b.test.example", {"hostname": "a.b." + DOMAIN}, t.ACK_FORBIDDEN),
                ("hostname test.example", {"hostname": DOMAIN}, t.ACK_FORBIDDEN),
                ("subdomain -bad", {"subdomain": "-bad"}, t.ACK_INVALID),
                ("subdomain bad_name", {"subdomain": "bad_name"}, t.ACK_INVALID),
                ("subdomain a..b", {"subdomain": "a..b"}, t.ACK_INVALID),
                ("subdomain of 64 characters", {"subdomain": "a" * 64}, t.ACK_INVALID),
                ("subdomain ab--cd (not an A-label)", {"subdomain": "ab--cd"}, t.ACK_INVALID),
                ("subdomain \u00fcber (not ASCII)", {"subdomain": "\u00fcber"}, t.ACK_INVALID),
                ("hostname one.test.example", {"hostname": "one." + DOMAIN}, t.ACK_OK),
                ("subdomain xn--bcher-kva", {"subdomain": "xn--bcher-kva"}, t.ACK_OK))):
            expect_ack(register_http(r, "p%d" % i, **opts), status, what)
    finally:
        r.close()
    code, _, err = env.run_program(env.client_argv(None, s.port, TOKEN) + [
        "http", str(s.nginx_a.port), "--subdomain", "x", "--hostname", "x." + DOMAIN])
    t.check_eq(code, 2, "exit code of mgrok with both --subdomain and --hostname", stderr=err)
    t.log("token auth: only one-label subdomains of %s; bad names INVALID" % DOMAIN)


def users_rules(env, s):
    u = s.users
    conf = t.write_json(env, "mgrok-alice.json", {
        "server": "127.0.0.1:%d" % u.port,
        "auth": {"method": "users", "user": "alice", "token": ALICE},
        "proxies": [
            {"name": "www", "type": "http", "local": str(s.nginx_a.port),
             "options": {"hostname": "www.example.org"}},
            {"name": "shop", "type": "http", "local": str(s.nginx_b.port),
             "options": {"hostname": "shop.alice.example"}},
            {"name": "deep", "type": "http", "local": str(s.nginx_a.port),
             "options": {"hostname": "a.b.alice.example"}},
            {"name": "apex", "type": "http", "local": str(s.nginx_a.port),
             "options": {"hostname": "alice.example"}},
            {"name": "other", "type": "http", "local": str(s.nginx_a.port),
             "options": {"hostname": "www.example.com"}},
            {"name": "sub", "type": "http", "local": str(s.nginx_a.port),
             "options": {"subdomain": "alicesub"}}]})
    alice = env.start_client(None, None, token=None, config=conf, lines=3, cname="mgrok-alice")
    hosts = sorted(line[1] for line in alice.public_lines())
    t.check_eq(hosts, ["a.b.alice.example", "shop.alice.example", "www.example.org"],
               "the names alice got")
    t.wait_for(lambda: alice.stderr_text().count("registration refused") >= 3, 20,
               "mgrok to report alice's three refused names")
    err = alice.stderr_text()
    for name in ("apex", "other", "sub"):
        t.check(re.search(r"proxy %s: registration refused \(status %d\)" % (name, t.ACK_FORBIDDEN),
                          err), "alice's proxy %s is not refused with FORBIDDEN" % name,
                stderr=err[-1200:])
    whoami(env, s, "www.example.org", "nginx-a", port=u.hp)
    whoami(env, s, "shop.alice.example", "nginx-b", port=u.hp)
    whoami(env, s, "a.b.alice.example", "nginx-a", port=u.hp)

    conf = t.write_json(env, "mgrok-bob.json", {
        "server": "127.0.0.1:%d" % u.port,
        "auth": {"method": "users", "user": "bob", "token": BOB},
        "proxies": [
            {"name": "mine", "type": "http", "local": str(s.nginx_b.port),
             "options": {"subdomain": "bobsub"}},
            {"name": "theirs", "type": "http", "local": str(s.nginx_b.port),
             "options": {"hostname": "www2.example.org"}},
            {"name": "alices", "type": "http", "local": str(s.nginx_b.port),
             "options": {"hostname": "x.alice.example"}}]})
    bob = env.start_client(None, None, token=None, config=conf, lines=1, cname="mgrok-bob")
    t.check_eq([line[1] for line in bob.public_lines()], ["bobsub." + DOMAIN],
               "the names bob (no domains) got")
    t.wait_for(lambda: bob.stderr_text().count("registration refused") >= 2, 20,
               "mgrok to report bob's two refused names")
    whoami(env, s, "bobsub." + DOMAIN, "nginx-b", port=u.hp)
    # alice's name is not bob's to take, even where his rules would allow it.
    r = t.RawSession(u.port).handshake_users("bob", BOB)
    try:
        expect_ack(register_http(r, "steal", hostname="www.example.org"), t.ACK_FORBIDDEN,
                   "bob claiming www.example.org")
    finally:
        r.close()
    for cl in (alice, bob):
        t.check_eq(cl.stop(), 0, "exit code of %s on SIGTERM" % cl.name)
    t.log("users auth: alice's domains (exact and *.alice.example), bob the token rule")


def not_found(env, s):
    for host in ("nobody." + DOMAIN, "nobody.%s:%d" % (DOMAIN, s.hp), "www.elsewhere.org"):
        resp, rd = raw(s, host)
        rd.sock.close()
        error_page(resp, 404, "Host: %s" % host)
        t.check(host.split(":")[0].encode() in resp.body.lower(),
                "the 404 page does not name the host %s" % host, body=resp.body[:300])
    status, body, _ = curl(env, s, "nobody." + DOMAIN)
    t.check_eq(status, 404, "curl for a host nobody holds")


def bad_request(env, s):
    for what, data in (("a request line of garbage", b"GARBAGE\r\n\r\n"),
                       ("HTTP/1.1 without Host", b"GET / HTTP/1.1\r\nAccept: */*\r\n\r\n"),
                       ("two Host fields", t.request_bytes("app." + DOMAIN, fields=[
                           ("Host", "blog." + DOMAIN)])),
                       ("a field without a colon", b"GET / HTTP/1.1\r\nHost: app.%s\r\n"
                        b"nocolon\r\n\r\n" % DOMAIN.encode()),
                       ("binary in the request line", b"GET /\x00 HTTP/1.1\r\nHost: app.%s\r\n\r\n"
                        % DOMAIN.encode())):
        resp, rd = t.http_exchange(s.hp, data)
        error_page(resp, 400, what)
        t.check(t.closes(rd), "%s: the connection stays open after the 400" % what)
        rd.sock.close()


def bad_gateway(env, s):
    closed = env.ports.take()
    t.check(t.port_closed(closed), "port %d is not closed" % closed)
    cl = http_client(env, s.port, closed, "--subdomain", "down", cname="mgrok-down")
    resp, rd = raw(s, "down." + DOMAIN)
    rd.sock.close()
    error_page(resp, 502, "a tunnel whose local port is closed")
    status, _, _ = curl(env, s, "down." + DOMAIN)
    t.check_eq(status, 502, "curl through a tunnel whose local port is closed")
    t.check(cl.alive(), "mgrok exited after its local service refused")
    t.check_eq(cl.stop(), 0, "exit code of mgrok on SIGTERM")


def misdirected(env, s):
    sock = socket.create_connection(("127.0.0.1", s.hp), timeout=20)
    rd = t.Reader(sock)
    try:
        sock.sendall(t.request_bytes("app." + DOMAIN, "/whoami?first"))
        resp = t.read_response(rd)
        t.check_eq((resp.status, resp.body), (200, b"nginx-a\n"), "the first request")
        sock.sendall(t.request_bytes("blog." + DOMAIN, "/whoami?misdirected"))
        resp = t.read_response(rd)
        t.check(resp is not None, "the connection closed without a 421")
        t.check_eq(resp.status, 421, "a second request with another Host", body=resp.body[:300])
        t.check(t.closes(rd), "the connection stays open after the 421")
    finally:
        sock.close()
    for n in (s.nginx_a, s.nginx_b):
        t.check("misdirected" not in n.access_log(), "%s got the misdirected request" % n.name)


def too_large(env, s):
    host = "app." + DOMAIN
    # Below both limits: ~15 KiB in fields of 3 KiB (nginx's own limit is 8 KiB a line).
    fields = [("X-Fill-%d" % i, "f" * 3000) for i in range(5)]
    resp, rd = raw(s, host, fields=fields)
    rd.sock.close()
    t.check_eq(resp.status, 200, "a head of %d bytes" % len(t.request_bytes(host, "/whoami",
                                                                              fields=fields)))
    fields = [("X-Fill-%d" % i, "f" * 3000) for i in range(6)]
    resp, rd = raw(s, host, fields=fields)
    error_page(resp, 431, "a head of %d bytes" % len(t.request_bytes(host, "/whoami",
                                                                    fields=fields)))
    t.check(t.closes(rd), "the connection stays open after the 431")
    rd.sock.close()
    resp, rd = raw(s, host, fields=[("X-Big", "b" * 20000)])
    rd.sock.close()
    error_page(resp, 431, "one field of 20000 bytes")
    # 100 fields (Host and 99 more) pass, 101 do not.
    resp, rd = raw(s, host, fields=[("X-N%d" % i, "v") for i in range(99)])
    rd.sock.close()
    t.check_eq(resp.status, 200, "a head with 100 fields")
    resp, rd = raw(s, host, fields=[("X-N%d" % i, "v") for i in range(100)])
    rd.sock.close()
    error_page(resp, 431, "a head with 101 fields")
    # A head that never ends.
    sock = socket.create_connection(("127.0.0.1", s.hp), timeout=20)
    rd = t.Reader(sock)
    try:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: app.%s\r\n" % DOMAIN.encode())
        # A field at a time, until mgrokd answers (past what it must take).
        for _ in range(64):
            if select.select([sock], [], [], 0.01)[0]:
                break
            try:
                sock.sendall(b"X-More: " + b"m" * 1000 + b"\r\n")
            except (BrokenPipeError, ConnectionResetError):
                break
        resp = t.read_response(rd)
        t.check(resp is not None, "an endless head: closed without a 431")
        error_page(resp, 431, "an endless head")
    finally:
        sock.close()


def request_timeout(env, s):
    sock = socket.create_connection(("127.0.0.1", s.hp), timeout=20)
    rd = t.Reader(sock)
    try:
        start = time.monotonic()
        sock.sendall(b"GET /whoami HTTP/1.1\r\nHost: app.%s\r\n" % DOMAIN.encode())
        resp = t.read_response(rd)
        took = time.monotonic() - start
        error_page(resp, 408, "a head not complete after request_timeout")
        t.check(REQUEST_TIMEOUT - 0.5 <= took <= REQUEST_TIMEOUT + 5,
                "the 408 came after %.1f s, request_timeout is %d s" % (took, REQUEST_TIMEOUT))
        t.check(t.closes(rd), "the connection stays open after the 408")
    finally:
        sock.close()
    # A visitor that sends nothing is closed as well (with or without a page).
    sock = socket.create_connection(("127.0.0.1", s.hp), timeout=20)
    rd = t.Reader(sock)
    try:
        start = time.monotonic()
        rd.sock.settimeout(REQUEST_TIMEOUT + 10)
        try:
            rest = rd.rest()
        except socket.timeout:
            raise t.TestFailure("a silent visitor is still open after %d s"
                                % (REQUEST_TIMEOUT + 10))
        took = time.monotonic() - start
        t.check(took >= REQUEST_TIMEOUT - 0.5, "a silent visitor closed after %.1f s" % took)
        t.check(rest == b"" or rest.startswith(b"HTTP/1.1 408"),
                "what a silent visitor got", got=rest[:200])
    finally:
        sock.close()


def stream_limit(env, s):
    cport, hp = env.ports.take(), env.ports.take()
    conf = t.write_json(env, "mgrokd-limit.json", {
        "listen": "127.0.0.1:%d" % cport, "auth": {"method": "token", "token": TOKEN},
        "http": {"listen": "127.0.0.1:%d" % hp, "domain": DOMAIN},
        "limits": {"max_streams": 1}})
    srv = env.start_server(token=None, config=conf, name="mgrokd-limit")
    release = threading.Event()

    def slow(conn):
        rd = t.Reader(conn)
        while True:
            req = t.read_request(rd)
            if req is None:
                return
            release.wait(30)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nslow\n")
    svc = env.service(slow, name="slow")
    cl = http_client(env, cport, svc.port, "--subdomain", "slow", cname="mgrok-limit")
    host = "slow." + DOMAIN
    first = socket.create_connection(("127.0.0.1", hp), timeout=20)
    try:
        first.sendall(t.request_bytes(host, "/held"))
        t.wait_for(lambda: svc.count >= 1, 20, "the held request to reach the service")
        resp, rd = t.http_exchange(hp, t.request_bytes(host, "/second"))
        rd.sock.close()
        error_page(resp, 503, "a request while the session is at max_streams 1")
        release.set()
        resp = t.read_response(t.Reader(first))
        t.check_eq((resp.status, resp.body), (200, b"slow\n"), "the held request")
    finally:
        release.set()
        first.close()

    def works():
        resp, rd = t.http_exchange(hp, t.request_bytes(host, "/again"))
        rd.sock.close()
        return resp is not None and resp.status == 200
    t.wait_for(works, 20, "the tunnel to take a request again")
    t.check_eq(cl.stop(), 0, "exit code of mgrok on SIGTERM")
    t.check_eq(srv.stop(), 0, "exit code of mgrokd on SIGTERM")


def basic_auth(env, s):
    cl = http_client(env, s.port, s.nginx_a.port, "--subdomain", "secret", "--basic-auth",
                     "user:" + PASSWORD, cname="mgrok-auth")
    host = "secret." + DOMAIN
    for i, (what, args) in enumerate((
            ("no credentials", ()), ("a wrong password", ("-u", "user:wrong-one")),
            ("a wrong user", ("-u", "resu:" + PASSWORD)),
            ("garbage credentials", ("-H", "Authorization: Basic !!notbase64!!")),
            ("another scheme", ("-H", "Authorization: Bearer " + PASSWORD)))):
        status, body, head = curl(env, s, host, "/whoami?unauthorized-%d" % i, *args)
        t.check_eq(status, 401, "status with %s" % what, body=body[:200])
        t.check(re.search(r'(?im)^WWW-Authenticate: Basic realm="mgrok"\r?$', head),
                "no WWW-Authenticate: Basic realm=\"mgrok\" with %s" % what, head=head)
        t.check(b"nginx-a" not in body, "nginx's page with %s" % what)
    status, body, _ = curl(env, s, host, "/whoami", "-u", "user:" + PASSWORD)
    t.check_eq((status, body), (200, b"nginx-a\n"), "the right credentials")
    t.check("unauthorized-" not in s.nginx_a.access_log(),
            "nginx got a request without the right credentials")
    t.check_eq(cl.stop(), 0, "exit code of mgrok on SIGTERM")


def forwarded(env, s):
    host = "app." + DOMAIN
    hostport = "%s:%d" % (host, s.hp)

    def fwd(value):
        """Forwarded's pairs as a dict, quotes removed."""
        out = {}
        for pair in value.split(";"):
            k, _, v = pair.strip().partition("=")
            out[k.lower()] = v.strip('"')
        return out

    status, body, _ = curl(env, s, host, "/headers")
    rep = t.headers_report(body)
    t.check_eq(status, 200, "GET /headers")
    t.check_eq((rep["host"], rep["xff"], rep["proto"], rep["xfh"]),
               (hostport, "127.0.0.1", "http", hostport),
               "Host, X-Forwarded-For, -Proto, -Host as nginx saw them", report=rep)
    t.check_eq(fwd(rep["forwarded"]), {"for": "127.0.0.1", "host": hostport, "proto": "http"},
               "Forwarded as nginx saw it", forwarded=rep["forwarded"])
    status, body, _ = curl(env, s, host, "/headers", "-H", "X-Forwarded-For: 203.0.113.7")
    rep = t.headers_report(body)
    t.check_eq(rep["xff"].replace(" ", ""), "203.0.113.7,127.0.0.1",
               "X-Forwarded-For appended to the visitor's", report=rep)

    conf = env.client_config(s.port, [
        {"name": "plain", "type": "http", "local": str(s.nginx_a.port),
         "options": {"subdomain": "plain", "forwarded": False}},
        {"name": "rewrite", "type": "http", "local": str(s.nginx_a.port),
         "options": {"subdomain": "rewrite", "host_header": "internal.local"}}],
        token=TOKEN, name="mgrok-fwd.json")
    cl = env.start_client(None, None, token=None, config=conf, lines=2, cname="mgrok-fwd")
    status, body, _ = curl(env, s, "plain." + DOMAIN, "/headers")
    rep = t.headers_report(body)
    t.check_eq((rep["host"], rep["xff"], rep["proto"], rep["xfh"], rep["forwarded"]),
               ("plain.%s:%d" % (DOMAIN, s.hp), "", "", "", ""),
               "Host and the forwarding fields with forwarded false", report=rep)
    status, body, _ = curl(env, s, "rewrite." + DOMAIN, "/headers")
    rep = t.headers_report(body)
    t.check_eq((rep["host"], rep["xfh"]), ("internal.local", "rewrite.%s:%d" % (DOMAIN, s.hp)),
               "Host and X-Forwarded-Host with host_header", report=rep)
    # The quick form's --host-header.
    q = http_client(env, s.port, s.nginx_a.port, "--subdomain", "quick", "--host-header",
                    "other.local:8080", cname="mgrok-hh")
    status, body, _ = curl(env, s, "quick." + DOMAIN, "/headers")
    t.check_eq(t.headers_report(body)["host"], "other.local:8080", "Host with --host-header")
    for p in (cl, q):
        t.check_eq(p.stop(), 0, "exit code of %s on SIGTERM" % p.name)


def websocket(env, s):
    svc = env.service(t.websocket.echo_handler, name="ws-echo")
    cl = http_client(env, s.port, svc.port, "--subdomain", "ws", cname="mgrok-ws")
    ws = t.websocket.Client(s.hp, "ws.%s:%d" % (DOMAIN, s.hp), "/chat")
    try:
        ws.send(b"hello through the tunnel", binary=False)
        t.check_eq(ws.recv("the first echo"), (t.websocket.OP_TEXT, b"hello through the tunnel"),
                   "the first text message")
        msgs = [t.payload(i, 10 + 997 * i) for i in range(10)]
        for m in msgs:  # all before reading any echo: both directions at once
            ws.send(m)
        for i, m in enumerate(msgs):
            t.check_eq(ws.recv("echo %d" % i), (t.websocket.OP_BINARY, m), "echo of message %d" % i)
        big = t.payload(99, 1 << 20)
        ws.send(big)
        op, got = ws.recv("the echo of 1 MiB")
        t.check_eq((op, len(got), got == big), (t.websocket.OP_BINARY, len(big), True),
                   "echo of 1 MiB")
        ws.send_fragmented(b"in three pieces!", 3)
        t.check_eq(ws.recv("the echo of fragments"), (t.websocket.OP_BINARY, b"in three pieces!"),
                   "fragments")
        ws.ping(b"are you there")
        t.check_eq(ws.recv("a pong"), (t.websocket.OP_PONG, b"are you there"), "pong")
        ws.close()
    finally:
        ws.sock.close()
    t.check_eq(cl.stop(), 0, "exit code of mgrok on SIGTERM")


def download(env, s):
    start = time.monotonic()
    status, body, _ = curl(env, s, "app." + DOMAIN, "/big.bin", max_time=120)
    took = time.monotonic() - start
    t.check_eq(status, 200, "GET /big.bin")
    t.check_eq(len(body), t.BIG, "bytes of /big.bin")
    t.check_eq(hashlib.sha256(body).hexdigest(), s.nginx_a.big_digest, "SHA-256 of /big.bin")
    t.log("64 MiB down in %.1f s" % took)


def upload(env, s):
    up = os.path.join(env.dir, "upload.bin")
    try:
        for size in (100000, t.BIG):
            with open(up, "wb") as f:
                for chunk in t.pattern(size, size):
                    f.write(chunk)
            start = time.monotonic()
            status, body, _ = curl(env, s, "app." + DOMAIN, "/upload", "--data-binary", "@" + up,
                                   "-H", "Content-Type: application/octet-stream", max_time=120)
            took = time.monotonic() - start
            t.check_eq((status, body),
                       (200, ("%s %d\n" % (t.pattern_digest(size, size), size)).encode()),
                       "the SHA-256 and length of a %d-byte upload as the service got them" % size)
            t.log("%d bytes up in %.1f s" % (size, took))
    finally:
        if os.path.exists(up):
            os.unlink(up)


def keep_alive(env, s):
    host = "app." + DOMAIN
    urls = ["http://%s:%d/%s" % (host, s.hp, n) for n in ("one.txt", "two.txt", "three.txt")]
    argv = ["curl", "-sS", "--max-time", "30", "--resolve", "%s:%d:127.0.0.1" % (host, s.hp),
            "-w", "%{http_code} %{num_connects}\\n"]
    for u in urls:
        argv += ["-o", "/dev/null", u]
    code, out, err = env.run_program(argv)
    t.check_eq(code, 0, "exit code of curl with three URLs", stderr=err)
    t.check_eq(out.split("\n")[:3], ["200 1", "200 0", "200 0"],
               "status and new connections of three requests in one curl")
    # Pipelined: three requests in one send, three responses in order.
    sock = socket.create_connection(("127.0.0.1", s.hp), timeout=20)
    rd = t.Reader(sock)
    try:
        sock.sendall(b"".join(t.request_bytes(host, "/" + n)
                              for n in ("one.txt", "two.txt", "three.txt")))
        for n in ("one.txt", "two.txt", "three.txt"):
            resp = t.read_response(rd)
            t.check(resp is not None, "the connection closed before the response for %s" % n)
            t.check_eq((resp.status, resp.body), (200, FILES[n]), "pipelined response for %s" % n)
        sock.sendall(t.request_bytes(host, "/whoami"))
        resp = t.read_response(rd)
        t.check_eq((resp.status, resp.body), (200, b"nginx-a\n"), "a fourth request after them")
    finally:
        sock.close()


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
    s.nginx_a = t.Nginx(env, env.ports.take(), "nginx-a", files=FILES)
    s.nginx_b = t.Nginx(env, env.ports.take(), "nginx-b", big=False)
    conf = t.write_json(env, "mgrokd-http.json", {
        "listen": "127.0.0.1:%d" % s.port,
        "auth": {"method": "token", "token": TOKEN},
        "http": {"listen": "127.0.0.1:%d" % s.hp, "domain": DOMAIN,
                 "request_timeout": REQUEST_TIMEOUT},
        "rate_limit": {"failures": 1000, "interval": 60}})
    s.srv = env.start_server(token=None, config=conf, name="mgrokd-http")

    u = s.users = Setup()
    u.port, u.hp = env.ports.take(), env.ports.take()
    users = t.write_json(env, "users.json", {"users": {
        "alice": {"token": ALICE, "domains": ["www.example.org", "*.alice.example"]},
        "bob": {"token": BOB}}})
    os.chmod(users, 0o600)
    conf = t.write_json(env, "mgrokd-users.json", {
        "listen": "127.0.0.1:%d" % u.port,
        "auth": {"method": "users", "file": users}})
    # The quick form's flags, this time.
    u.srv = env.start_server(token=None, config=conf, name="mgrokd-users",
                             extra=["--http-listen", "127.0.0.1:%d" % u.hp, "--domain", DOMAIN])

    s.app = http_client(env, s.port, s.nginx_a.port, "--subdomain", "app", cname="mgrok-app")
    s.blog = http_client(env, s.port, s.nginx_b.port, "--subdomain", "blog", cname="mgrok-blog")

    for what, fn in (("two subdomains on one port", two_subdomains),
                     ("the mgrokd log", server_log),
                     ("random subdomain", random_subdomain),
                     ("name in use", name_in_use),
                     ("token auth: which names", token_rules),
                     ("users auth: domains", users_rules),
                     ("404", not_found),
                     ("400", bad_request),
                     ("502", bad_gateway),
                     ("421", misdirected),
                     ("431", too_large),
                     ("408", request_timeout),
                     ("503", stream_limit),
                     ("basic auth", basic_auth),
                     ("forwarding fields and host_header", forwarded),
                     ("WebSocket", websocket),
                     ("64 MiB down", download),
                     ("64 MiB up", upload),
                     ("keep-alive and pipelining", keep_alive)):
        if ONLY and ONLY not in what:
            continue
        t.log("---- %s" % what)
        with env.case(what):
            as_failure(fn, env, s)

    for p in (s.srv, u.srv):
        t.check(p.alive(), "%s died" % p.name)
    for p in env.procs:
        if p.alive() and not p.name.startswith("nginx"):
            t.check_eq(p.stop(), 0, "exit code of %s on SIGTERM" % p.name)
    t.check_no_secrets(env, [TOKEN, ALICE, BOB, PASSWORD])
    env.check_services()


t.run(main)
