#!/usr/bin/env python3
"""TLS on the control connection (doc/protocol.md 7).

`mgrokd --gen-cert` writes a certificate whose fingerprint it prints; a TLS
tunnel carries an echo and 16 MiB each way (checked by SHA-256) with the
certificate pinned, with it as the CA (IP and DNS names verified), from a
config file, over ::1, and for a UDP proxy. Every mismatch ends the client
with its own message and exit code 1 (a plaintext client on a TLS port, an
untrusted certificate, a wrong name or IP, a wrong pin); a TLS client on a
plaintext port is told so and keeps retrying; --tls-insecure works and warns
at each connect. No token appears in any output."""
import hashlib
import os
import re
import socket
import stat
import subprocess
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mgroktest as t

TOKEN = "tls-Token-4c1d9e07b2a85f36"
BIG = 16 << 20

NOT_TRUSTED = "TLS: the server's certificate is not trusted: "
SELF_SIGNED = re.compile(r"self[- ]signed certificate|unable to get local issuer certificate")
PLAIN_ON_TLS = ("the server refused the connection: this server requires TLS: enable tls in "
                "the client")
TLS_ON_PLAIN = ("TLS handshake failed: the server closed the connection (is it a plaintext "
                "mgrokd? then turn tls off)")
INSECURE_WARNING = "TLS certificate verification is off"


class UdpEcho:
    """A UDP echo service on 127.0.0.1."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self._stop = False
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self):
        while not self._stop:
            try:
                data, addr = self.sock.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            self.sock.sendto(data, addr)

    def close(self):
        self._stop = True
        self._thread.join(timeout=5)
        self.sock.close()


def udp_echo_check(port, data, tries=10, wait=1.0):
    """One datagram there and back through the UDP proxy (resent if lost)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind(("127.0.0.1", 0))
        s.settimeout(wait)
        for _ in range(tries):
            s.sendto(data, ("127.0.0.1", port))
            try:
                got = s.recv(65535)
            except (socket.timeout, ConnectionRefusedError):
                continue
            t.check_eq(got, data, "UDP datagram through the TLS tunnel")
            return
        raise t.TestFailure("no UDP echo through port %d after %d tries" % (port, tries))
    finally:
        s.close()


def big_transfer(port, seed):
    """Sends 16 MiB of pattern(seed) to a hash service behind port; returns
    the SHA-256 (hex) the service computed."""
    s = t.connect(port)
    try:
        for chunk in t.pattern(seed, BIG):
            s.sendall(chunk)
        s.shutdown(socket.SHUT_WR)
        return t.recv_all(s).decode()
    finally:
        s.close()


def download_digest(port):
    """(bytes, SHA-256 hex) of everything a source service behind port sends."""
    s = t.connect(port)
    h, n = hashlib.sha256(), 0
    try:
        s.shutdown(socket.SHUT_WR)
        while True:
            b = s.recv(t.CHUNK)
            if not b:
                break
            h.update(b)
            n += len(b)
    finally:
        s.close()
    return n, h.hexdigest()


def refused_client(env, srv, extra, what, cname, config=None):
    """Starts mgrok, which must give up by itself with exit code 1; returns
    its stderr."""
    if config:
        cl = env.start_client(None, None, token=None, config=config, lines=0, cname=cname)
    else:
        echo_port = env.services[0].port
        cl = env.start_client(echo_port, srv, token=TOKEN, lines=0, extra=extra, cname=cname)
    code = cl.wait_exit()
    err = cl.stderr_text()
    t.check_eq(code, 1, "exit code of mgrok for %s" % what, stderr_tail=err[-800:])
    t.check("reconnecting" not in err, "mgrok scheduled a retry after %s" % what,
            stderr_tail=err[-800:])
    t.check_eq(cl.public_lines(), [], "public lines of mgrok after %s" % what)
    t.check(srv.alive(), "mgrokd died after %s" % what)
    return err


def main(env):
    echo = env.echo_service()
    hasher = env.service(t.hash_handler, name="sha256")
    source = env.service(t.source_handler(BIG, 77), name="source")

    # --gen-cert: for the IP we connect to, and for the default name (localhost).
    ip_cert, ip_key, ip_fp = t.gen_cert(env, "cert-ip", "127.0.0.1")
    lh_cert, lh_key, lh_fp = t.gen_cert(env, "cert-localhost")
    # A name only (no address in it), for the verification by name.
    tn_cert, tn_key, tn_fp = t.gen_cert(env, "cert-name", "tunnel.example")
    t.check(ip_fp != lh_fp, "two generated certificates have one fingerprint")
    sans = subprocess.run(["openssl", "x509", "-in", lh_cert, "-noout", "-ext",
                           "subjectAltName"], capture_output=True, text=True).stdout
    t.check("DNS:localhost" in sans and "IP Address:127.0.0.1" in sans and
            "IP Address:0:0:0:0:0:0:0:1" in sans,
            "the default --gen-cert is not for localhost, 127.0.0.1 and ::1", sans=sans)
    mode = stat.S_IMODE(os.stat(ip_key).st_mode)
    t.check(not mode & 0o077, "--gen-cert's key.pem is readable by others", mode=oct(mode))

    # The TLS server, certificate from the flags.
    srv = env.start_server(token=TOKEN, nports=10, extra=["--tls-cert", ip_cert,
                                                          "--tls-key", ip_key],
                           name="mgrokd-tls")
    lo, hi = srv.allow

    with env.case("pinned fingerprint: echo and 16 MiB each way"):
        cl = env.start_client(echo.port, srv, token=TOKEN, remote_port=lo,
                              extra=["--tls-fingerprint", ip_fp], cname="mgrok-pin")
        t.echo_check(lo, b"hello over TLS\n")
        t.echo_check(lo, t.payload(3, 300000), what="300 kB echo")
        up = env.start_client(hasher.port, srv, token=TOKEN, remote_port=lo + 1,
                              extra=["--tls-fingerprint", ip_fp], cname="mgrok-sha")
        got = big_transfer(lo + 1, 5)
        t.check_eq(got, t.pattern_digest(5, BIG), "SHA-256 of 16 MiB sent through TLS")
        down = env.start_client(source.port, srv, token=TOKEN, remote_port=lo + 2,
                                extra=["--tls-fingerprint", ip_fp], cname="mgrok-src")
        n, digest = download_digest(lo + 2)
        t.check_eq(n, BIG, "bytes received through TLS")
        t.check_eq(digest, t.pattern_digest(77, BIG), "SHA-256 of 16 MiB received through TLS")
        t.check(INSECURE_WARNING not in cl.stderr_text(), "a pinned client warned of insecure")
        for p in (cl, up, down):
            t.check_eq(p.stop(), 0, "exit code of %s on SIGTERM" % p.name)

    with env.case("one TLS session, 8 transfers both ways at once"):
        small = 4 << 20
        src4 = env.service(t.source_handler(small, 91), name="source-4M")
        conf = t.write_json(env, "mgrok-both.json", {
            "server": "127.0.0.1:%d" % srv.port,
            "auth": {"method": "token", "token": TOKEN},
            "tls": {"fingerprint": ip_fp},
            "proxies": [
                {"name": "up", "type": "tcp", "local": str(hasher.port), "remote_port": lo + 6},
                {"name": "down", "type": "tcp", "local": str(src4.port),
                 "remote_port": lo + 7}]})
        cl = env.start_client(None, None, token=None, config=conf, lines=2, cname="mgrok-both")
        results, errors = {}, []

        def up(i):
            s = t.connect(lo + 6)
            try:
                for chunk in t.pattern(100 + i, small):
                    s.sendall(chunk)
                s.shutdown(socket.SHUT_WR)
                results["up%d" % i] = t.recv_all(s).decode() == t.pattern_digest(100 + i, small)
            finally:
                s.close()

        def down(i):
            n, digest = download_digest(lo + 7)
            results["down%d" % i] = n == small and digest == t.pattern_digest(91, small)

        def guarded(fn, i):
            try:
                fn(i)
            except Exception as e:  # reported below
                errors.append(repr(e))
        threads = [threading.Thread(target=guarded, args=(fn, i), daemon=True)
                   for fn in (up, down) for i in range(4)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(timeout=t.DEADLINE)
        t.check(not any(th.is_alive() for th in threads), "transfers still running after %d s"
                % t.DEADLINE, results=results)
        t.check_eq(errors, [], "errors of the transfers")
        t.check_eq(sorted(k for k, ok in results.items() if ok),
                   sorted(["up%d" % i for i in range(4)] + ["down%d" % i for i in range(4)]),
                   "transfers that arrived intact")
        t.check_eq(cl.stderr_text().count("connected to"), 1, "sessions of mgrok-both")
        t.check_eq(cl.stop(), 0, "exit code of mgrok-both on SIGTERM")

    with env.case("CA file, IP literal verified"):
        cl = env.start_client(echo.port, srv, token=TOKEN, remote_port=lo + 3,
                              extra=["--tls-ca", ip_cert], cname="mgrok-ca")
        t.echo_check(lo + 3, b"verified by CA\n")
        t.check_eq(cl.stop(), 0, "exit code of mgrok --tls-ca on SIGTERM")

    with env.case("config file: tls.fingerprint and a UDP proxy"):
        udp = UdpEcho()
        try:
            conf = t.write_json(env, "mgrok-tls-udp.json", {
                "server": "127.0.0.1:%d" % srv.port,
                "auth": {"method": "token", "token": TOKEN},
                "tls": {"fingerprint": ip_fp},
                "proxies": [
                    {"name": "u", "type": "udp", "local": "127.0.0.1:%d" % udp.port,
                     "remote_port": lo + 4},
                    {"name": "e", "type": "tcp", "local": "127.0.0.1:%d" % echo.port,
                     "remote_port": lo + 4},
                ]})
            cl = env.start_client(None, None, token=None, config=conf, lines=2,
                                  cname="mgrok-udp")
            schemes = sorted(x[0] for x in cl.public_lines())
            t.check_eq(schemes, ["tcp", "udp"], "schemes of the public lines")
            for i in range(3):
                udp_echo_check(lo + 4, b"datagram %d over TLS " % i + t.payload(i, 1200))
            udp_echo_check(lo + 4, t.payload(9, 60000))
            t.echo_check(lo + 4, b"tcp next to udp over TLS\n")
            t.check_eq(cl.stop(), 0, "exit code of the UDP client on SIGTERM")
        finally:
            udp.close()

    with env.case("plaintext client on the TLS port"):
        err = refused_client(env, srv, [], "a plaintext client on a TLS port", "mgrok-plain")
        t.check(PLAIN_ON_TLS in err, "no \"%s\" on stderr" % PLAIN_ON_TLS, stderr=err[-800:])

    with env.case("certificate not trusted (other CA, system CAs)"):
        err = refused_client(env, srv, ["--tls-ca", lh_cert], "a certificate of another CA",
                             "mgrok-otherca")
        t.check(NOT_TRUSTED in err and SELF_SIGNED.search(err),
                "no \"%s\" + self-signed/unable to get issuer on stderr" % NOT_TRUSTED,
                stderr=err[-800:])
        err = refused_client(env, srv, ["--tls"], "a self-signed certificate and the system CAs",
                             "mgrok-systemca")
        t.check(NOT_TRUSTED in err and SELF_SIGNED.search(err),
                "no \"%s\" + self-signed/unable to get issuer on stderr" % NOT_TRUSTED,
                stderr=err[-800:])

    with env.case("wrong pinned fingerprint"):
        err = refused_client(env, srv, ["--tls-fingerprint", lh_fp], "a wrong pin", "mgrok-pin2")
        want = "TLS: the server's certificate %s does not match the pinned fingerprint" % ip_fp
        t.check(want in err, "no \"%s\" on stderr" % want, stderr=err[-800:])

    with env.case("insecure: works, warns at each connect"):
        cl = env.start_client(echo.port, srv, token=TOKEN, remote_port=lo + 5,
                              extra=["--tls-insecure"], cname="mgrok-insecure")
        t.echo_check(lo + 5, b"no verification\n")
        t.check_eq(cl.stderr_text().count(INSECURE_WARNING), 1,
                   "insecure warnings after one connect", stderr=cl.stderr_text()[-800:])

    # A second TLS server: the "localhost" certificate, from a config file.
    srv2_port = env.ports.take()
    allow2 = env.ports.take_range(3)
    sconf = t.write_json(env, "mgrokd-localhost.json", {
        "listen": "127.0.0.1:%d" % srv2_port,
        "auth": {"method": "token", "token": TOKEN},
        "allow_ports": ["%d-%d" % allow2],
        "handshake_timeout": 1,
        "tls": {"cert": tn_cert, "key": tn_key}})
    srv2 = env.start_server(token=None, config=sconf, name="mgrokd-localhost")
    srv2.port, srv2.allow = srv2_port, allow2

    def ca_conf(name, tls, remote):
        return t.write_json(env, name, {
            "server": "127.0.0.1:%d" % srv2_port,
            "auth": {"method": "token", "token": TOKEN},
            "tls": tls,
            "proxies": [{"name": "web", "type": "tcp", "local": str(echo.port),
                         "remote_port": remote}]})

    with env.case("CA file, host name verified (server_name)"):
        cl = env.start_client(None, None, token=None, cname="mgrok-name",
                              config=ca_conf("name-ok.json", {"ca": tn_cert,
                                                              "server_name": "tunnel.example"},
                                             allow2[0]))
        t.echo_check(allow2[0], b"verified by name\n")
        t.check_eq(cl.stop(), 0, "exit code of mgrok on SIGTERM")

    with env.case("IP address mismatch"):
        err = refused_client(env, srv2, ["--tls-ca", tn_cert], "a certificate for another IP",
                             "mgrok-ipmismatch")
        want = NOT_TRUSTED + "IP address mismatch for 127.0.0.1"
        t.check(want in err, "no \"%s\" on stderr" % want, stderr=err[-800:])

    with env.case("host name mismatch"):
        conf = ca_conf("name-bad.json", {"ca": tn_cert, "server_name": "wrong.example"},
                       allow2[0] + 1)
        err = refused_client(env, srv2, None, "a certificate for another name",
                             "mgrok-namemismatch", config=conf)
        want = NOT_TRUSTED + "hostname mismatch for wrong.example"
        t.check(want in err, "no \"%s\" on stderr" % want, stderr=err[-800:])

    with env.case("stalled TLS handshakes end at the handshake timeout"):
        # Silent, a partial TLS record, a whole ClientHello and no more: the
        # handshake timeout (1 s here) covers the TLS handshake too.
        import ssl
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        inb, outb = ssl.MemoryBIO(), ssl.MemoryBIO()
        obj = ctx.wrap_bio(inb, outb, server_hostname="localhost")
        try:
            obj.do_handshake()
        except ssl.SSLWantReadError:
            pass
        hello = outb.read()
        t.check(hello[:1] == b"\x16", "Python's ClientHello is not a TLS record")
        stalled = []
        for what, data in (("silent", b""), ("partial record", b"\x16\x03\x01"),
                           ("ClientHello only", hello)):
            r = t.RawSession(srv2_port, timeout=15)
            if data:
                r.send(data)
            stalled.append((what, r))
        for what, r in stalled:
            try:
                r.read_eof("mgrokd to close a stalled TLS handshake (%s)" % what)
            finally:
                r.close()
        t.check(srv2.alive(), "mgrokd died")
        # And the port still serves.
        cl = env.start_client(None, None, token=None, cname="mgrok-after-stall",
                              config=ca_conf("after-stall.json", {"ca": tn_cert,
                                                                  "server_name": "tunnel.example"},
                                             allow2[0] + 2))
        t.echo_check(allow2[0] + 2, b"after stalled handshakes\n")
        t.check_eq(cl.stop(), 0, "exit code of mgrok on SIGTERM")

    with env.case("the default --gen-cert verifies at 127.0.0.1 by address"):
        port3 = env.ports.take()
        allow3 = env.ports.take_range(1)
        conf3 = t.write_json(env, "mgrokd-default-cert.json", {
            "listen": "127.0.0.1:%d" % port3,
            "auth": {"method": "token", "token": TOKEN},
            "allow_ports": ["%d-%d" % allow3],
            "tls": {"cert": lh_cert, "key": lh_key}})
        srv3 = env.start_server(token=None, config=conf3, name="mgrokd-default-cert")
        srv3.port, srv3.allow = port3, allow3
        cl = env.start_client(echo.port, srv3, token=TOKEN, remote_port=allow3[0],
                              extra=("--tls-ca", lh_cert), cname="mgrok-default-cert")
        t.echo_check(allow3[0], b"verified by address\n")
        t.check_eq(cl.stop(), 0, "exit code of mgrok on SIGTERM")
        t.check_eq(srv3.stop(), 0, "exit code of mgrokd on SIGTERM")

    with env.case("TLS client on a plaintext port keeps retrying"):
        plain = env.start_server(token=TOKEN, nports=1, name="mgrokd-plain")
        cl = env.start_client(echo.port, plain, token=TOKEN, lines=0,
                              extra=["--tls-fingerprint", ip_fp], cname="mgrok-tls2plain")
        t.wait_for(lambda: cl.stderr_text().count(TLS_ON_PLAIN) >= 2 or not cl.alive(),
                   what="two \"%s\" lines from mgrok" % TLS_ON_PLAIN)
        err = cl.stderr_text()
        t.check(cl.alive(), "mgrok gave up on a plaintext server (exit code %s)" % cl.returncode,
                stderr=err[-800:])
        t.check(err.count(TLS_ON_PLAIN) >= 2, "no \"%s\" on stderr" % TLS_ON_PLAIN,
                stderr=err[-800:])
        t.check("a TLS client on this plaintext port" in plain.stderr_text(),
                "mgrokd did not log \"a TLS client on this plaintext port\"",
                stderr=plain.stderr_text()[-800:])
        t.check_eq(cl.public_lines(), [], "public lines of a TLS client on a plaintext server")
        t.check_eq(cl.stop(), 0, "exit code of the retrying client on SIGTERM")
        t.check_eq(plain.stop(), 0, "exit code of the plaintext mgrokd on SIGTERM")

    if t.have_ipv6_loopback():
        with env.case("TLS over ::1, certificate for ::1"):
            v6_cert, v6_key, v6_fp = t.gen_cert(env, "cert-v6", "::1")
            v6 = env.start_server(token=TOKEN, nports=1, listen_host="::1", name="mgrokd-v6",
                                  extra=["--tls-cert", v6_cert, "--tls-key", v6_key])
            cl = env.start_client(echo.port, v6, token=TOKEN, remote_port=v6.allow[0],
                                  extra=["--tls-ca", v6_cert], cname="mgrok-v6")
            t.echo_check(v6.allow[0], b"TLS over IPv6\n", host="::1")
            t.check_eq(cl.stop(), 0, "exit code of the ::1 client on SIGTERM")
            t.check_eq(v6.stop(), 0, "exit code of the ::1 mgrokd on SIGTERM")
    else:
        print("SKIP sub-case: ::1 is not configured on this machine", flush=True)

    with env.case("insecure client reconnects after a server restart, warning again"):
        ins = next(p for p in env.procs if p.name == "mgrok-insecure")
        t.check_eq(srv.stop(), 0, "exit code of the TLS mgrokd on SIGTERM")
        srv = env.start_server(token=TOKEN, port=srv.port, allow=srv.allow,
                               extra=["--tls-cert", ip_cert, "--tls-key", ip_key],
                               name="mgrokd-tls")
        ins.wait_lines(2)
        t.echo_check(lo + 5, b"no verification, again\n")
        n = ins.stderr_text().count(INSECURE_WARNING)
        t.check(n >= 2, "insecure warnings after a reconnect: %d" % n,
                stderr=ins.stderr_text()[-800:])
        t.check_eq(ins.stop(), 0, "exit code of the insecure client on SIGTERM")

    with env.case("--gen-cert over an existing, world-readable key.pem"):
        d = os.path.join(env.dir, "cert-again")
        os.makedirs(d)
        old_key = os.path.join(d, "key.pem")
        with open(old_key, "w") as f:
            f.write("not a key\n")
        os.chmod(old_key, 0o644)
        code, out, err = t.run_recorded(env, [t.MGROKD, "--plugin-dir", t.PLUGIN_DIR,
                                              "--gen-cert", d, "--public-host", "127.0.0.1"])
        mode = stat.S_IMODE(os.stat(old_key).st_mode)
        with open(old_key) as f:
            replaced = f.read() != "not a key\n"
        # Refusing to overwrite is fine; writing a private key others can read is not.
        t.check(not (replaced and mode & 0o077),
                "--gen-cert wrote a new private key into an existing file of mode %s (exit "
                "code %d): others can read it" % (oct(mode), code), stdout=out, stderr=err)
        if code != 0:
            t.check(not replaced, "--gen-cert failed but replaced key.pem", stderr=err)

    with env.case("server config checks"):
        bad = t.write_json(env, "mgrokd-halftls.json", {"tls": {"cert": ip_cert}})
        code, out, err = t.run_recorded(env, [t.MGROKD, "--plugin-dir", t.PLUGIN_DIR, "-c", bad,
                                              "--check"])
        t.check(code != 0, "--check accepted tls without a key", stderr=err)
        t.check("tls needs both cert and key" in err, "no \"tls needs both cert and key\"",
                stderr=err)
        missing = os.path.join(env.dir, "no-such-cert.pem")
        code, out, err = t.run_recorded(env, t.Env.server_argv(
            env, TOKEN, env.ports.take(), (lo, lo), ["--tls-cert", missing, "--tls-key", ip_key]),
            timeout=20)
        t.check(code != 0, "mgrokd started with a missing certificate file", stderr=err)
        t.check("no-such-cert.pem" in err, "the error does not name the missing certificate",
                stderr=err)

    for p in list(env.procs):
        if p.alive():
            t.check_eq(p.stop(), 0, "exit code of %s on SIGTERM" % p.name)
    t.check_no_secrets(env, [TOKEN])
    env.check_services()


t.run(main)
