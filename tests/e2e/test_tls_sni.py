#!/usr/bin/env python3
"""tls proxies: one shared listener on mgrokd routes each TLS connection by
the server name (SNI) of its ClientHello, without decrypting
(doc/protocol.md 9); the TLS session is between the visitor and the local
service, a real nginx with its own certificate.

curl verifies nginx's own certificate through the tunnel (passthrough:
mgrokd has no key for it) over HTTP/1.1 and HTTP/2 (ALPN goes through too),
and nginx sees no forwarding fields; two tunnels on one port each serve
their own certificate and content; the mgrokd log names the tls://
address; 64 MiB down and 16 MiB up over HTTP/2 arrive intact (SHA-256);
a ClientHello sent one byte per TCP segment still routes; the
name's case does not matter; an unknown name, no SNI, and the name of a
session that has ended get exactly a fatal unrecognized_name alert
(15 03 01 00 02 02 70) and EOF; an HTTP request on the tls port is closed
without an answer from any service; a name in use is NAME_IN_USE and a
name outside the domain FORBIDDEN with token auth; in a config file,
tls_sni has a domain of its own, or else http's."""
import hashlib
import os
import re
import socket
import ssl
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mgroktest as t

TOKEN = "sni-Token-8d2a6f0b3e9c1754"
DOMAIN = "test.example"
ALERT = bytes.fromhex("15030100020270")  # fatal unrecognized_name (RFC 6066 3)


class Setup:
    pass


def tls_client(env, s, local, *opts, cname="mgrok-tls", lines=1):
    argv = env.client_argv(None, s.port, TOKEN) + ["tls", str(local)] + list(opts)
    cl = env.spawn(cname, argv, t.Client)
    if lines:
        cl.wait_lines(lines)
    return cl


def curl(env, s, host, cert, path="/whoami", *args):
    """curl https://HOST:TP/PATH verifying against cert; returns (curl's exit
    code, HTTP status, body, HTTP version, stderr)."""
    body = os.path.join(env.dir, "curl-%s-%d.body" % (host, time.monotonic_ns()))
    argv = ["curl", "-sS", "--max-time", "30", "--resolve", "%s:%d:127.0.0.1" % (host, s.tp),
            "--cacert", cert, "-o", body, "-w", "%{http_code} %{http_version}"] + list(args)
    argv.append("https://%s:%d%s" % (host, s.tp, path))
    code, out, err = env.run_program(argv, timeout=45)
    data = b""
    if os.path.exists(body):
        with open(body, "rb") as f:
            data = f.read()
    status, _, version = out.strip().partition(" ")
    return code, int(status or 0), data, version, err


def client_hello(sni, cafile=None, check_name=True):
    """An SSLObject over memory BIOs and its first flight (the ClientHello);
    verifying against cafile (and the name against sni with check_name),
    or without verification when None."""
    if cafile:
        ctx = ssl.create_default_context(cafile=cafile)
        ctx.check_hostname = check_name
    else:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    ctx.set_alpn_protocols(["http/1.1"])
    inb, outb = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inb, outb, server_hostname=sni)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    hello = outb.read()
    t.check(hello[:1] == b"\x16", "the first flight is no handshake record", got=hello[:16])
    return obj, inb, outb, hello


def tls_get(port, sni, cafile, path="/whoami", byte_by_byte=False, check_name=True):
    """GET path over TLS to 127.0.0.1:port with SNI sni, verifying the
    server against cafile (and its name against sni with check_name); the
    ClientHello goes out whole or one byte per TCP segment.  Returns the
    response body."""
    obj, inb, outb, hello = client_hello(sni, cafile, check_name)
    sock = socket.create_connection(("127.0.0.1", port), timeout=20)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        if byte_by_byte:
            for i in range(len(hello)):
                sock.sendall(hello[i:i + 1])
                time.sleep(0.003)
        else:
            sock.sendall(hello)

        def fill():
            data = sock.recv(65536)
            if not data:
                raise t.TestFailure("EOF during the TLS handshake through the tunnel")
            inb.write(data)
        for _ in range(20):
            try:
                obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                sock.sendall(outb.read())
                fill()
        else:
            raise t.TestFailure("no TLS handshake in 20 round trips")
        obj.write(b"GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
                  % (path.encode(), sni.encode()))
        sock.sendall(outb.read())
        got = b""
        while True:
            try:
                piece = obj.read(65536)
                if not piece:  # the service's close_notify
                    break
                got += piece
                continue
            except ssl.SSLWantReadError:
                pass
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                break
            data = sock.recv(65536)
            if not data:
                break
            inb.write(data)
        head, _, body = got.partition(b"\r\n\r\n")
        t.check(head.startswith(b"HTTP/1.1 200"), "the response through TLS", head=head[:200])
        return body
    except ssl.SSLCertVerificationError as e:
        raise t.TestFailure("the certificate that came through is not the service's: %s" % e)
    finally:
        sock.close()


def alert_then_eof(port, data, what, byte_by_byte=False):
    """Sends data; returns everything up to EOF (failing if it stays open)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=15)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        try:
            if byte_by_byte:
                for i in range(len(data)):
                    sock.sendall(data[i:i + 1])
                    time.sleep(0.003)
            else:
                sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        got = b""
        while True:
            try:
                b = sock.recv(4096)
            except ConnectionResetError:
                break
            except socket.timeout:
                raise t.TestFailure("%s: the connection stays open after 15 s (got %r)"
                                    % (what, got[:64]))
            if not b:
                break
            got += b
        return got
    finally:
        sock.close()


# ---- the cases -----------------------------------------------------------------------


def passthrough(env, s):
    host = "app." + DOMAIN
    t.check_eq(s.app.public_lines()[:1],
               [("tls", host, s.tp, "127.0.0.1:%d" % s.nginx_app.tls_port)],
               "the public line of mgrok tls")
    code, status, body, version, err = curl(env, s, host, s.cert_app, "/whoami", "--http1.1")
    t.check_eq((code, status, body, version), (0, 200, b"nginx-app\n", "1.1"),
               "curl --http1.1 verifying nginx's own certificate", stderr=err)
    code, status, body, version, err = curl(env, s, host, s.cert_app, "/headers", "--http1.1")
    rep = t.headers_report(body)
    t.check_eq((rep["host"], rep["scheme"], rep["xff"], rep["forwarded"]),
               ("%s:%d" % (host, s.tp), "https", "", ""),
               "what nginx saw (nothing added inside TLS)", report=rep)
    # What came through is app's own certificate: blog's does not verify it.
    code, _, _, _, err = curl(env, s, host, s.cert_blog, "/whoami")
    t.check_eq(code, 60, "curl's exit code verifying app against blog's certificate",
               stderr=err)


def http2(env, s):
    host = "app." + DOMAIN
    code, status, body, version, err = curl(env, s, host, s.cert_app, "/whoami", "--http2")
    t.check_eq((code, status, body, version), (0, 200, b"nginx-app\n", "2"),
               "curl --http2 through the tunnel", stderr=err)
    code, status, body, version, err = curl(env, s, host, s.cert_app, "/headers", "--http2")
    t.check_eq(t.headers_report(body).get("http"), "HTTP/2.0", "the protocol nginx saw",
               body=body)


def two_tunnels(env, s):
    t.check_eq(s.blog.public_lines()[:1],
               [("tls", "blog." + DOMAIN, s.tp, "127.0.0.1:%d" % s.nginx_blog.tls_port)],
               "the public line of the second tunnel")
    for host, cert, who in (("app." + DOMAIN, s.cert_app, b"nginx-app\n"),
                            ("blog." + DOMAIN, s.cert_blog, b"nginx-blog\n"),
                            ("app." + DOMAIN, s.cert_app, b"nginx-app\n")):
        code, status, body, version, err = curl(env, s, host, cert, "/whoami", "--http2")
        t.check_eq((code, status, body, version), (0, 200, who, "2"), "curl %s" % host,
                   stderr=err)
    for name in ("app", "blog"):
        t.wait_log(s.srv, r"proxy \S+: tls://%s\.%s:%d\b" % (name, re.escape(DOMAIN), s.tp),
                   what="mgrokd's line for %s's tls:// address" % name)


def segments(env, s):
    start = time.monotonic()
    body = tls_get(s.tp, "app." + DOMAIN, s.cert_app, byte_by_byte=True)
    t.check_eq(body, b"nginx-app\n", "a ClientHello in 1-byte segments")
    t.log("ClientHello one byte at a time: routed, %.1f s" % (time.monotonic() - start))
    body = tls_get(s.tp, "BLOG.Test.Example", s.cert_blog)
    t.check_eq(body, b"nginx-blog\n", "an SNI in upper case")


def unknown(env, s):
    for what, sni in (("an unknown name", "nobody." + DOMAIN),
                      ("a name outside the domain", "www.example.org"),
                      ("no SNI", None)):
        _, _, _, hello = client_hello(sni)
        got = alert_then_eof(s.tp, hello, what)
        t.check_eq(got, ALERT, "what %s got" % what)
    _, _, _, hello = client_hello("nobody." + DOMAIN)
    t.check_eq(alert_then_eof(s.tp, hello, "an unknown name, byte by byte", True), ALERT,
               "what an unknown name sent byte by byte got")


def garbage(env, s):
    got = alert_then_eof(s.tp, b"GET / HTTP/1.1\r\nHost: app.%s\r\n\r\n" % DOMAIN.encode(),
                         "an HTTP request on the tls port")
    t.check(got in (b"", ALERT), "what an HTTP request on the tls port got", got=got[:200])
    got = alert_then_eof(s.tp, b"\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00",
                         "a ClientHello too short to hold anything")
    t.check(got in (b"", ALERT), "what a truncated ClientHello got", got=got[:200])
    t.check(s.srv.alive(), "mgrokd died")


def names(env, s):
    cl = tls_client(env, s, s.nginx_blog.tls_port, "--subdomain", "App", cname="mgrok-dup",
                    lines=0)
    code = cl.wait_exit()
    t.check_eq(code, 1, "exit code of mgrok tls for a name in use", stderr=cl.stderr_text())
    t.check("registration refused (status %d)" % t.ACK_NAME_IN_USE in cl.stderr_text(),
            "no NAME_IN_USE refusal", stderr=cl.stderr_text()[-800:])
    cl = tls_client(env, s, s.nginx_blog.tls_port, "--hostname", "www.example.org",
                    cname="mgrok-foreign", lines=0)
    code = cl.wait_exit()
    t.check_eq(code, 1, "exit code of mgrok tls for a foreign name", stderr=cl.stderr_text())
    t.check("registration refused (status %d)" % t.ACK_FORBIDDEN in cl.stderr_text(),
            "no FORBIDDEN refusal", stderr=cl.stderr_text()[-800:])
    # A name whose session ended is unknown again.
    t.check_eq(s.blog.stop(), 0, "exit code of mgrok on SIGTERM")
    _, _, _, hello = client_hello("blog." + DOMAIN)
    t.check_eq(alert_then_eof(s.tp, hello, "blog after its session ended"), ALERT,
               "what blog's name got after its session ended")
    code, status, body, version, err = curl(env, s, "app." + DOMAIN, s.cert_app)
    t.check_eq((code, status, body), (0, 200, b"nginx-app\n"), "app after blog left",
               stderr=err)


def bulk(env, s):
    """64 MiB down and 16 MiB up over HTTP/2 through the tunnel, by SHA-256."""
    host = "app." + DOMAIN
    code, status, body, version, err = curl(env, s, host, s.cert_app, "/big.bin", "--http2")
    t.check_eq((code, status, version, len(body)), (0, 200, "2", t.BIG),
               "curl --http2 /big.bin", stderr=err)
    t.check_eq(hashlib.sha256(body).hexdigest(), s.nginx_app.big_digest, "SHA-256 of /big.bin")
    del body
    size = 16 * 1024 * 1024
    up = os.path.join(env.dir, "upload.bin")
    with open(up, "wb") as f:
        for chunk in t.pattern(size, size):
            f.write(chunk)
    try:
        code, status, body, version, err = curl(env, s, host, s.cert_app, "/upload", "--http2",
                                                "--data-binary", "@" + up)
    finally:
        os.unlink(up)
    t.check_eq((code, status, version, body),
               (0, 200, "2", ("%s %d\n" % (t.pattern_digest(size, size), size)).encode()),
               "a 16 MiB upload over HTTP/2 as the service got it", stderr=err)


def config_domains(env, s):
    """A config file: tls_sni with a domain of its own, and without one
    (then http's)."""
    for name, tls_domain, http_domain in (("own", "tls.example", "web.example"),
                                          ("http's", None, "web.example")):
        port, hp, tp = env.ports.take(), env.ports.take(), env.ports.take()
        sni = {"listen": "127.0.0.1:%d" % tp}
        if tls_domain:
            sni["domain"] = tls_domain
        conf = t.write_json(env, "mgrokd-domains.json", {
            "listen": "127.0.0.1:%d" % port, "auth": {"method": "token", "token": TOKEN},
            "http": {"listen": "127.0.0.1:%d" % hp, "domain": http_domain}, "tls_sni": sni})
        srv = env.start_server(token=None, config=conf, name="mgrokd-domains")
        want = "app." + (tls_domain or http_domain)
        cfg = env.client_config(port, [
            {"name": "t", "type": "tls", "local": str(s.nginx_app.tls_port),
             "options": {"subdomain": "app"}}], token=TOKEN, name="mgrok-domains.json")
        cl = env.start_client(None, None, token=None, config=cfg, cname="mgrok-domains")
        t.check_eq(cl.public_lines()[:1], [("tls", want, tp, "127.0.0.1:%d"
                                            % s.nginx_app.tls_port)],
                   "the public line with tls_sni's domain %s" % name)
        # nginx's certificate is for app.test.example: the chain is checked, not the name.
        t.check_eq(tls_get(tp, want, s.cert_app, check_name=False), b"nginx-app\n",
                   "a request for %s" % want)
        _, _, _, hello = client_hello("app." + DOMAIN)
        t.check_eq(alert_then_eof(tp, hello, "app.%s on this server" % DOMAIN), ALERT,
                   "what app.%s got where the domain is %s" % (DOMAIN, want[4:]))
        t.check_eq(cl.stop(), 0, "exit code of mgrok on SIGTERM")
        t.check_eq(srv.stop(), 0, "exit code of mgrokd on SIGTERM")


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
    s.port, s.tp = env.ports.take(), env.ports.take()
    s.cert_app, key_app, _ = t.gen_cert(env, "cert-app", "app." + DOMAIN)
    s.cert_blog, key_blog, _ = t.gen_cert(env, "cert-blog", "blog." + DOMAIN)
    s.nginx_app = t.Nginx(env, env.ports.take(), "nginx-app", tls=(s.cert_app, key_app),
                          tls_port=env.ports.take())
    s.nginx_blog = t.Nginx(env, env.ports.take(), "nginx-blog", tls=(s.cert_blog, key_blog),
                           tls_port=env.ports.take(), big=False)
    s.srv = env.start_server(token=TOKEN, port=s.port, nports=0, name="mgrokd-sni",
                             extra=["--tls-sni-listen", "127.0.0.1:%d" % s.tp,
                                    "--domain", DOMAIN])
    s.app = tls_client(env, s, s.nginx_app.tls_port, "--subdomain", "app", cname="mgrok-app")
    s.blog = tls_client(env, s, s.nginx_blog.tls_port, "--subdomain", "blog",
                        cname="mgrok-blog")

    for what, fn in (("passthrough", passthrough), ("HTTP/2", http2),
                     ("two tunnels on one port", two_tunnels),
                     ("ClientHello in 1-byte segments", segments),
                     ("unknown name and no SNI", unknown), ("garbage", garbage),
                     ("64 MiB down, 16 MiB up", bulk), ("names", names),
                     ("config file: tls_sni's domain", config_domains)):
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
