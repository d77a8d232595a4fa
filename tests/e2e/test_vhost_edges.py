#!/usr/bin/env python3
"""Edges of the shared http and tls listeners (doc/protocol.md 8 and 9).

1. PROXY protocol in on the shared listeners, from proxy_protocol_from
   127.0.0.2: a v1 header, a v2 header with a TLV, and headers split over
   several sends name the visitor in X-Forwarded-For and Forwarded as the
   local service sees them; a v2 LOCAL header keeps the balancer's address;
   a request from the balancer without a header is closed without an
   answer and a silent one after request_timeout, each with a warn line;
   from an untrusted address a PROXY line is no request line (400, nothing
   reaches the service) and a plain request carries its own address; on the
   tls listener a v1 header then a real ClientHello completes a handshake
   with the service's own certificate.
2. Default ports are left out of printed addresses: with the listeners on
   127.0.0.13:80 and :443, mgrok prints http://app.test.example (no :80)
   and tls://app.test.example:443, and a request to port 80 gets through.
3. A chunked request refused by a bad chunk: past the 64 KiB hold the
   request has partly reached the service, so the stream is aborted -- the
   visitor gets a 400 and EOF, the service a reset, never a clean EOF;
   below the hold not a byte reaches the service.
4. The name registry across types and case: an http and a tls proxy hold
   the same name from two clients at once; App.test.example and
   app.TEST.example are one name (NAME_IN_USE, status 3), in both types.
"""
import os
import socket
import ssl
import sys
import threading
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mgroktest as t

TOKEN = "vhe-Token-3a7c1e9f5b2d4806"
DOMAIN = "test.example"
HOST = "app." + DOMAIN
BALANCER = "127.0.0.2"
UNTRUSTED = "127.0.0.3"
VISITOR = "198.51.100.7"
REQUEST_TIMEOUT = 2
DEFAULT_ADDR = "127.0.0.13"  # case 2's listeners, off every other test's addresses

t.WATCHDOG = 240.0


class Setup:
    pass


# ---- helpers --------------------------------------------------------------------------


def client(env, s, kind, local, *opts, cname, lines=1):
    """mgrok KIND LOCAL OPTS... against the main mgrokd."""
    argv = env.client_argv(None, s.port, TOKEN) + [kind, str(local)] + list(opts)
    cl = env.spawn(cname, argv, t.Client)
    if lines:
        cl.wait_lines(lines)
    return cl


def refused(cl, status, what):
    """mgrok gives up by itself (exit 1) with a refusal of the given status."""
    code = cl.wait_exit()
    err = cl.stderr_text()
    t.check_eq(code, 1, "exit code of mgrok for %s" % what, stderr=err[-800:])
    t.check("registration refused (status %d)" % status in err,
            "no refusal with status %d for %s" % (status, what), stderr=err[-800:])
    t.check_eq(cl.stdout_lines(), [], "what mgrok printed for %s" % what)


def visitor(port, source=None, host="127.0.0.1", timeout=15):
    s = socket.create_connection((host, port), timeout=timeout,
                                 source_address=(source, 0) if source else None)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if source:
        t.check_eq(s.getsockname()[0], source, "a visitor's source address")
    return s


def send_pieces(sock, pieces, pause=0.05):
    for i, p in enumerate(pieces):
        if i:
            time.sleep(pause)
        sock.sendall(p)


def closed_silently(sock, what, timeout=15):
    """The peer closes sock (EOF or reset) without sending a byte; returns
    how long it took."""
    start = time.monotonic()
    sock.settimeout(timeout)
    try:
        data = sock.recv(4096)
    except ConnectionResetError:
        data = b""
    except socket.timeout:
        raise t.TestFailure("%s: the connection stays open (waited %d s)" % (what, timeout))
    t.check_eq(data, b"", "%s: bytes on a connection that should be closed without an answer"
               % what)
    return time.monotonic() - start


def fwd(value):
    """Forwarded's pairs as a dict, quotes removed."""
    out = {}
    for pair in (value or "").split(";"):
        k, _, v = pair.strip().partition("=")
        out[k.lower()] = v.strip('"')
    return out


def request_seen(rec, target, what):
    """The request the Recorder got for target (waits a moment for it)."""
    t.wait_for(lambda: target in rec.targets(), 10, "%s: the service to get %s" % (what, target))
    return [r for r in rec.requests if r.target == target][-1]


def expect_visitor(s, sock, target, want, what):
    """Sends a GET for target on sock (its header, if any, already sent);
    the response is the Recorder's, and the service saw want as the
    visitor in X-Forwarded-For and Forwarded."""
    sock.sendall(t.request_bytes(HOST, target, fields=[("Connection", "close")]))
    rd = t.Reader(sock)
    resp = t.read_response(rd)
    t.check(resp is not None, "%s: the connection closed without a response" % what)
    t.check_eq((resp.status, resp.body), (200, b"seen %s\n" % target.encode()),
               "%s: the response" % what)
    req = request_seen(s.rec, target, what)
    got = (req.header("x-forwarded-for"), fwd(req.header("forwarded")).get("for"))
    t.check_eq(got, (want, want), "%s: (X-Forwarded-For, Forwarded for=) the service saw"
               % what, fields=req.fields)


def tls_whoami(sock, sni, cafile, what):
    """A TLS handshake over sock (after whatever was sent on it) verifying
    the service's certificate for sni, then GET /whoami; returns the body."""
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.set_alpn_protocols(["http/1.1"])
    try:
        ss = ctx.wrap_socket(sock, server_hostname=sni)
    except ssl.SSLCertVerificationError as e:
        raise t.TestFailure("%s: the certificate that came through is not the service's: %s"
                            % (what, e))
    except (ssl.SSLError, ConnectionResetError) as e:
        raise t.TestFailure("%s: no TLS handshake: %r" % (what, e))
    try:
        ss.sendall(b"GET /whoami HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
                   % sni.encode())
        resp = t.read_response(t.Reader(ss))
    finally:
        ss.close()
    t.check(resp is not None, "%s: no response over TLS" % what)
    t.check_eq(resp.status, 200, "%s: status over TLS" % what, body=resp.body[:200])
    return resp.body


class EndRecorder:
    """A raw TCP service's handler that reads until its connection ends and
    notes, per connection, the bytes and how it ended: "eof", "reset" or
    "timeout" (it never answers)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.conns = []  # [bytearray, end or None]

    def __call__(self, conn):
        entry = [bytearray(), None]
        with self.lock:
            self.conns.append(entry)
        conn.settimeout(30)
        end = "timeout"
        try:
            while True:
                b = conn.recv(65536)
                if not b:
                    end = "eof"
                    break
                with self.lock:
                    entry[0].extend(b)
        except ConnectionResetError:
            end = "reset"
        except socket.timeout:
            end = "timeout"
        with self.lock:
            entry[1] = end

    def snapshot(self):
        with self.lock:
            return [(bytes(b), e) for b, e in self.conns]


# ---- 1. PROXY protocol in on the shared listeners -------------------------------------


def pp_http(env, s):
    dst = ("127.0.0.1", s.hp)
    me = (VISITOR, 40001)
    with env.case("pp http: a v1 header"):
        sock = visitor(s.hp, BALANCER)
        try:
            sock.sendall(t.v1_header(me, dst))
            expect_visitor(s, sock, "/pp-v1", VISITOR, "a v1 header")
        finally:
            sock.close()
    with env.case("pp http: a v1 header and the request in one send"):
        sock = visitor(s.hp, BALANCER)
        try:
            sock.sendall(t.v1_header(me, dst) + t.request_bytes(HOST, "/pp-v1-one"))
            rd = t.Reader(sock)
            resp = t.read_response(rd)
            t.check(resp is not None and resp.status == 200,
                    "a v1 header and a request in one send: no 200", resp=resp)
            req = request_seen(s.rec, "/pp-v1-one", "one send")
            t.check_eq(req.header("x-forwarded-for"), VISITOR, "X-Forwarded-For (one send)")
        finally:
            sock.close()
    with env.case("pp http: a v2 header with a TLV"):
        sock = visitor(s.hp, BALANCER)
        try:
            sock.sendall(t.v2_header(me, dst, tlvs=t.tlv(0x01, b"http/1.1") + t.tlv(0x04, b"")))
            expect_visitor(s, sock, "/pp-v2", VISITOR, "a v2 header with TLVs")
        finally:
            sock.close()
    with env.case("pp http: a v1 header split over four sends"):
        h = t.v1_header(me, dst)
        sock = visitor(s.hp, BALANCER)
        try:
            send_pieces(sock, [h[:3], h[3:17], h[17:-1], h[-1:]])
            expect_visitor(s, sock, "/pp-v1-split", VISITOR, "a v1 header in four pieces")
        finally:
            sock.close()
    with env.case("pp http: a v2 header with a TLV split over three sends"):
        h = t.v2_header(me, dst, tlvs=t.tlv(0x04, b"\0" * 300))
        sock = visitor(s.hp, BALANCER)
        try:
            send_pieces(sock, [h[:5], h[5:20], h[20:]])
            expect_visitor(s, sock, "/pp-v2-split", VISITOR, "a v2 header in three pieces")
        finally:
            sock.close()
    with env.case("pp http: a v2 LOCAL header keeps the balancer's address"):
        sock = visitor(s.hp, BALANCER)
        try:
            sock.sendall(t.v2_header(None, None, local=True))
            expect_visitor(s, sock, "/pp-local", BALANCER, "a v2 LOCAL header")
        finally:
            sock.close()
    with env.case("pp http: the balancer without a header"):
        target = "/pp-none"
        sock = visitor(s.hp, BALANCER)
        try:
            sock.sendall(t.request_bytes(HOST, target))
            closed_silently(sock, "a request from the balancer without a header")
        finally:
            sock.close()
        t.wait_log(s.srv, r"warn .*visitor through balancer 127\.0\.0\.2\b",
                   what="the warn line for a balancer's visitor without a header")
        time.sleep(0.2)
        t.check(target not in s.rec.targets(), "a request without a header reached the service")
    with env.case("pp http: a silent visitor from the balancer"):
        sock = visitor(s.hp, BALANCER)
        try:
            took = closed_silently(sock, "a silent visitor from the balancer",
                                   timeout=REQUEST_TIMEOUT + 10)
        finally:
            sock.close()
        t.check(REQUEST_TIMEOUT - 0.5 <= took <= REQUEST_TIMEOUT + 5,
                "a silent visitor from the balancer was closed after %.1f s, request_timeout "
                "is %d s" % (took, REQUEST_TIMEOUT))
        t.wait_log(s.srv, r"warn .*visitor through balancer 127\.0\.0\.2: no PROXY header in "
                   r"%d s" % REQUEST_TIMEOUT, what="the warn line for a silent visitor")
    with env.case("pp http: an untrusted visitor's PROXY line is no request line"):
        target = "/pp-untrusted-line"
        sock = visitor(s.hp, UNTRUSTED)
        rd = t.Reader(sock)
        try:
            sock.sendall(t.v1_header(me, dst) + t.request_bytes(HOST, target))
            resp = t.read_response(rd)
            t.check(resp is not None, "a PROXY line from %s: closed without a response"
                    % UNTRUSTED)
            t.check_eq(resp.status, 400, "status for a PROXY line from %s" % UNTRUSTED,
                       body=resp.body[:200])
            t.check(t.closes(rd), "the connection stays open after the 400")
        finally:
            sock.close()
        time.sleep(0.2)
        t.check(not s.rec.saw(target.encode()),
                "bytes of a refused request from %s reached the service" % UNTRUSTED)
    with env.case("pp http: an untrusted visitor's plain request"):
        sock = visitor(s.hp, UNTRUSTED)
        try:
            expect_visitor(s, sock, "/pp-untrusted", UNTRUSTED, "a plain request from %s"
                           % UNTRUSTED)
        finally:
            sock.close()
    t.log("pp http: v1, v2, split headers, LOCAL, missing, silent and untrusted: as expected")


def pp_tls(env, s):
    dst = ("127.0.0.1", s.tp)
    with env.case("pp tls: a v1 header then a ClientHello"):
        sock = visitor(s.tp, BALANCER)
        try:
            sock.sendall(t.v1_header((VISITOR, 40002), dst))
            body = tls_whoami(sock, HOST, s.cert, "a v1 header then TLS")
        finally:
            sock.close()
        t.check_eq(body, b"nginx-tls\n", "the body over TLS through a balancer")
    with env.case("pp tls: a v2 header split, then a ClientHello"):
        h = t.v2_header((VISITOR, 40003), dst, tlvs=t.tlv(0x01, b"h2"))
        sock = visitor(s.tp, BALANCER)
        try:
            send_pieces(sock, [h[:9], h[9:]])
            body = tls_whoami(sock, HOST, s.cert, "a v2 header then TLS")
        finally:
            sock.close()
        t.check_eq(body, b"nginx-tls\n", "the body over TLS through a balancer (v2)")
    with env.case("pp tls: a ClientHello from the balancer without a header"):
        sock = visitor(s.tp, BALANCER)
        mark = s.srv.stderr_size()
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        try:
            try:
                ctx.wrap_socket(sock, server_hostname=HOST).close()
                done = True
            except OSError:  # ssl.SSLError, a reset, EOF: refused
                done = False
            t.check(not done, "a TLS handshake from the balancer without a header completed")
        finally:
            sock.close()
        t.wait_for(lambda: "visitor through balancer 127.0.0.2" in s.srv.stderr_since(mark), 15,
                   "the warn line for a ClientHello without a header")
    t.log("pp tls: a header then a real handshake with the service's own certificate")


# ---- 2. default ports -----------------------------------------------------------------


def bind_check(port):
    """Fails clearly if DEFAULT_ADDR:port cannot be bound here."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((DEFAULT_ADDR, port))
    except OSError as e:
        raise t.TestFailure("cannot bind %s:%d for the default-port case (%s): something else "
                            "holds the port on that address (or a wildcard), or the test does "
                            "not run as root" % (DEFAULT_ADDR, port, e))
    finally:
        sock.close()


def printed_line(cl, what):
    """The first line mgrok prints (its public address)."""
    def one():
        lines = cl.stdout_lines()
        if lines:
            return lines[0]
        if not cl.alive():
            raise t.TestFailure("%s exited with code %s before printing its address"
                                % (cl.name, cl.returncode), stderr=cl.stderr_text()[-800:])
        return None
    return t.wait_for(one, 30, "the public address line of %s" % what)


def default_ports(env, s):
    for p in (80, 443):
        bind_check(p)
    port = env.ports.take()
    conf = t.write_json(env, "mgrokd-default-ports.json", {
        "listen": "127.0.0.1:%d" % port, "auth": {"method": "token", "token": TOKEN},
        "http": {"listen": "%s:80" % DEFAULT_ADDR, "domain": DOMAIN},
        "tls_sni": {"listen": "%s:443" % DEFAULT_ADDR}})
    srv = env.start_server(token=None, config=conf, name="mgrokd-default-ports")
    svc = env.service(t.Recorder(), name="recorder-default")
    argv = env.client_argv(None, port, TOKEN)
    hcl = env.spawn("mgrok-http-80", argv + ["http", str(svc.port), "--subdomain", "app"])
    tcl = env.spawn("mgrok-tls-443", argv + ["tls", str(s.nginx.tls_port), "--subdomain", "app"])
    try:
        t.check_eq(printed_line(hcl, "mgrok http"), "http://%s -> 127.0.0.1:%d" % (HOST, svc.port),
                   "what mgrok http prints with the listener on port 80")
        t.check_eq(printed_line(tcl, "mgrok tls"),
                   "tls://%s:443 -> 127.0.0.1:%d" % (HOST, s.nginx.tls_port),
                   "what mgrok tls prints with the listener on port 443")
        t.wait_log(srv, r"proxy \S+: http://app\.test\.example(?![:\w.])",
                   what="mgrokd's line for the http:// address without :80")
        sock = visitor(80, host=DEFAULT_ADDR)
        rd = t.Reader(sock)
        try:
            sock.sendall(t.request_bytes(HOST, "/on-80"))
            resp = t.read_response(rd)
        finally:
            sock.close()
        t.check(resp is not None, "a request to %s:80: closed without a response" % DEFAULT_ADDR)
        t.check_eq((resp.status, resp.body), (200, b"seen /on-80\n"),
                   "a request to %s:80 with Host %s" % (DEFAULT_ADDR, HOST))
        sock = visitor(443, host=DEFAULT_ADDR)
        try:
            body = tls_whoami(sock, HOST, s.cert, "TLS to %s:443" % DEFAULT_ADDR)
        finally:
            sock.close()
        t.check_eq(body, b"nginx-tls\n", "the body over TLS on %s:443" % DEFAULT_ADDR)
    finally:
        for p in (hcl, tcl, srv):
            p.stop()
    t.log("default ports: http://%s, tls://%s:443" % (HOST, HOST))


# ---- 3. a chunked request refused past and below the hold ------------------------------


def chunked_refused(env, s):
    rec = EndRecorder()
    svc = env.service(rec, name="end-recorder")
    cl = client(env, s, "http", svc.port, "--subdomain", "chunks", cname="mgrok-chunks")
    host = "chunks." + DOMAIN

    def post(target, size, piece):
        """A chunked POST: the head, then one chunk of size bytes in pieces,
        then a bad chunk-size line; returns (response, Reader)."""
        sock = visitor(s.hp)
        rd = t.Reader(sock)
        head = (b"POST %s HTTP/1.1\r\nHost: %s\r\nTransfer-Encoding: chunked\r\n\r\n"
                % (target.encode(), host.encode()))
        data = t.payload(size, size)
        try:
            sock.sendall(head)
            time.sleep(0.1)
            sock.sendall(b"%x\r\n" % size)
            for i in range(0, size, piece):
                sock.sendall(data[i:i + piece])
                time.sleep(0.01)
            sock.sendall(b"\r\nzz\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        return t.read_response(rd, "POST"), rd

    def conns_since(n):
        return rec.snapshot()[n:]

    with env.case("chunked: a bad chunk past the 64 KiB hold"):
        before = len(rec.snapshot())
        resp, rd = post("/past-hold", 100 * 1024, 8192)
        try:
            t.check(resp is not None, "past the hold: closed without a response")
            t.check_eq(resp.status, 400, "past the hold: status", body=resp.body[:200])
            t.check(t.closes(rd), "past the hold: the connection stays open after the 400")
        finally:
            rd.sock.close()
        t.wait_for(lambda: conns_since(before) and all(e for _, e in conns_since(before)), 20,
                   "the service's connection to end")
        got = conns_since(before)
        t.check_eq(len(got), 1, "connections the service got", ends=[e for _, e in got])
        data, end = got[0]
        t.check(data.startswith(b"POST /past-hold HTTP/1.1\r\n"),
                "past the hold: the service did not get the request's head",
                got=data[:120])
        t.check(len(data) > 64 * 1024, "past the hold: the service got only %d bytes" % len(data))
        t.check_eq(end, "reset", "how the service's connection ended past the hold "
                   "(%d bytes got)" % len(data))
        t.log("chunked: past the hold the service got %d bytes, then a reset" % len(data))
    with env.case("chunked: a bad chunk below the hold"):
        before = len(rec.snapshot())
        resp, rd = post("/below-hold", 10 * 1024, 2048)
        try:
            t.check(resp is not None, "below the hold: closed without a response")
            t.check_eq(resp.status, 400, "below the hold: status", body=resp.body[:200])
            t.check(t.closes(rd), "below the hold: the connection stays open after the 400")
        finally:
            rd.sock.close()
        time.sleep(0.5)
        t.wait_for(lambda: all(e for _, e in conns_since(before)), 20,
                   "the service's connections to end")
        got = conns_since(before)
        t.check_eq(sum(len(d) for d, _ in got), 0, "bytes the service got below the hold",
                   got=[(d[:80], e) for d, e in got])
        t.log("chunked: below the hold the service got %d connection(s) and no byte"
              % len(got))
    t.check(cl.alive(), "mgrok died")
    t.check_eq(cl.stop(), 0, "exit code of mgrok on SIGTERM")


# ---- 4. names across types and case ---------------------------------------------------


def names(env, s):
    rec = t.Recorder()
    svc = env.service(rec, name="recorder-names")
    web = client(env, s, "http", svc.port, "--hostname", "App.test.example", cname="mgrok-web")
    sni = client(env, s, "tls", s.nginx.tls_port, "--hostname", "app.TEST.example",
                 cname="mgrok-sni")
    try:
        t.check_eq(web.public_lines()[:1], [("http", HOST, s.hp, "127.0.0.1:%d" % svc.port)],
                   "the http proxy's line (the name folded)")
        t.check_eq(sni.public_lines()[:1],
                   [("tls", HOST, s.tp, "127.0.0.1:%d" % s.nginx.tls_port)],
                   "the tls proxy's line for the same name (the name folded)")
        resp, rd = t.http_exchange(s.hp, t.request_bytes("APP.test.EXAMPLE", "/names"))
        rd.sock.close()
        t.check(resp is not None and (resp.status, resp.body) == (200, b"seen /names\n"),
                "a request for the name held by http and tls", resp=resp)
        sock = visitor(s.tp)
        try:
            body = tls_whoami(sock, HOST, s.cert, "TLS to the name held by http and tls")
        finally:
            sock.close()
        t.check_eq(body, b"nginx-tls\n", "the tls proxy's service")
        dup = client(env, s, "http", svc.port, "--hostname", "app.TEST.example",
                     cname="mgrok-web-dup", lines=0)
        refused(dup, t.ACK_NAME_IN_USE, "http app.TEST.example while App.test.example is held")
        dup = client(env, s, "tls", s.nginx.tls_port, "--subdomain", "APP",
                     cname="mgrok-sni-dup", lines=0)
        refused(dup, t.ACK_NAME_IN_USE, "tls APP while app.TEST.example is held")
        t.check(web.alive() and sni.alive(), "a holder died after the refusals")
    finally:
        for p in (web, sni):
            t.check_eq(p.stop(), 0, "exit code of %s on SIGTERM" % p.name)
    t.log("names: http and tls share a name from two clients; case folds to NAME_IN_USE")


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
    s.port, s.hp, s.tp = env.ports.take(), env.ports.take(), env.ports.take()
    s.cert, key, _ = t.gen_cert(env, "cert-app", HOST)
    s.nginx = t.Nginx(env, env.ports.take(), "nginx-tls", tls=(s.cert, key),
                      tls_port=env.ports.take(), big=False)
    s.rec = t.Recorder()
    s.svc = env.service(s.rec, name="recorder")
    conf = t.write_json(env, "mgrokd-vhe.json", {
        "listen": "127.0.0.1:%d" % s.port,
        "auth": {"method": "token", "token": TOKEN},
        "proxy_protocol_from": [BALANCER],
        "http": {"listen": "127.0.0.1:%d" % s.hp, "domain": DOMAIN,
                 "request_timeout": REQUEST_TIMEOUT},
        "tls_sni": {"listen": "127.0.0.1:%d" % s.tp},
        "log": {"level": "debug"}})
    s.srv = env.start_server(token=None, config=conf, name="mgrokd-vhe")
    s.app = client(env, s, "http", s.svc.port, "--subdomain", "app", cname="mgrok-app")
    s.tls = client(env, s, "tls", s.nginx.tls_port, "--subdomain", "app", cname="mgrok-tls")

    for what, fn in (("PROXY protocol in: http", pp_http),
                     ("PROXY protocol in: tls", pp_tls)):
        t.log("---- %s" % what)
        with env.case(what):
            as_failure(fn, env, s)
    for p in (s.app, s.tls):
        t.check_eq(p.stop(), 0, "exit code of %s on SIGTERM" % p.name)

    def released():
        resp, rd = t.http_exchange(s.hp, t.request_bytes(HOST, "/released"))
        rd.sock.close()
        return resp is not None and resp.status == 404
    t.wait_for(released, 20, "the name %s to be free again" % HOST)

    for what, fn in (("default ports", default_ports),
                     ("chunked refused past and below the hold", chunked_refused),
                     ("names across types and case", names)):
        t.log("---- %s" % what)
        with env.case(what):
            as_failure(fn, env, s)

    t.check(s.srv.alive(), "mgrokd died")
    for p in env.procs:
        if p.alive() and not p.name.startswith("nginx"):
            t.check_eq(p.stop(), 0, "exit code of %s on SIGTERM" % p.name)
    t.check_no_secrets(env, [TOKEN])
    env.check_services()


t.run(main)
