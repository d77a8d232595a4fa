#!/usr/bin/env python3
"""mgrokd SIGHUP (README "Running the server"): a TLS certificate renewed
in place is read again, new connections get it and sessions in progress
keep theirs; a key that does not belong to the new certificate is refused
with an error line and the old pair stays in use; a config change that
takes a restart (listen) is named in the log, and the rest of the file
applies: allow_ports, limits, proxy_protocol_from (a balancer's header is
taken off from then on) and the auth method's options (a new token: the old
one is refused, the new one works, the session of before keeps going)."""
import os
import re
import shutil
import signal
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mgroktest as t

TOKEN = "reload-Token-8e2c5a1f9b0d7346"


def copy_pair(src_cert, src_key, cert, key):
    shutil.copyfile(src_cert, cert)
    shutil.copyfile(src_key, key)


def sighup(srv, pattern):
    before = len(re.findall(pattern, srv.stderr_text()))
    srv.send_signal(signal.SIGHUP)
    t.wait_log(srv, pattern, count=before + 1, timeout=20)


def pinned_client(env, srv, echo, port, fp, cname):
    return env.start_client(echo.port, srv, token=TOKEN, remote_port=port,
                            extra=("--tls-fingerprint", fp), cname=cname)


def refused_pin(env, srv, echo, fp, cname):
    cl = env.start_client(echo.port, srv, token=TOKEN, lines=0,
                          extra=("--tls-fingerprint", fp), cname=cname)
    t.check_eq(cl.wait_exit(), 1, "exit code of mgrok pinning the old certificate")
    err = cl.stderr_text()
    t.check("does not match the pinned fingerprint" in err,
            "no pin mismatch for the replaced certificate", stderr=err[-800:])


def main(env):
    echo = env.echo_service()
    a_cert, a_key, a_fp = t.gen_cert(env, "cert-a", "127.0.0.1")
    b_cert, b_key, b_fp = t.gen_cert(env, "cert-b", "127.0.0.1")
    cert, key = os.path.join(env.dir, "cert.pem"), os.path.join(env.dir, "key.pem")
    copy_pair(a_cert, a_key, cert, key)
    port = env.ports.take()
    lo, hi = env.ports.take_range(4)
    conf = {"listen": "127.0.0.1:%d" % port,
            "auth": {"method": "token", "token": TOKEN},
            "allow_ports": ["%d-%d" % (lo, hi)],
            "tls": {"cert": cert, "key": key}}
    path = t.write_json(env, "mgrokd-reload.json", conf)
    srv = env.start_server(token=None, config=path, name="mgrokd-reload")
    srv.port, srv.allow = port, (lo, hi)

    with env.case("a renewed certificate for new connections"):
        old = pinned_client(env, srv, echo, lo, a_fp, "mgrok-old")
        t.echo_check(lo, b"before the renewal\n")
        copy_pair(b_cert, b_key, cert, key)
        sighup(srv, r"TLS certificate .* reloaded")
        new = pinned_client(env, srv, echo, lo + 1, b_fp, "mgrok-new")
        t.echo_check(lo + 1, b"with the new certificate\n")
        refused_pin(env, srv, echo, a_fp, "mgrok-old-pin")
        # The session of before is still on its first connection.
        t.echo_check(lo, b"the old session after the renewal\n")
        t.check_eq(old.stderr_text().count("connected to"), 1,
                   "connections of the old client (it must not have reconnected)")
        t.check_eq(new.stop(), 0, "exit code of mgrok on SIGTERM")

    with env.case("a key of another certificate keeps the old pair"):
        shutil.copyfile(a_key, key)  # b's certificate with a's key
        sighup(srv, r"reload of the TLS certificate failed, keeping the old one: tls\.key")
        again = pinned_client(env, srv, echo, lo + 2, b_fp, "mgrok-again")
        t.echo_check(lo + 2, b"the old pair is still in use\n")
        t.check_eq(again.stop(), 0, "exit code of mgrok on SIGTERM")

    with env.case("listen changed: named, the rest applies"):
        shutil.copyfile(b_key, key)
        conf2 = dict(conf, listen="127.0.0.1:1", allow_ports=["%d" % lo],
                     limits={"max_streams": 7}, proxy_protocol_from=["127.0.0.2"])
        t.write_json(env, "mgrokd-reload.json", conf2)
        sighup(srv, r"listen changed to 127\.0\.0\.1:1: that takes a restart")
        for what in ("limits, heartbeat and timeouts applied",
                     "proxy_protocol_from applied (1 entry)"):
            t.check(what in srv.stderr_text(), "no line for what the reload applied",
                    want=what, stderr=srv.stderr_text()[-1200:])
        # 127.0.0.2 is a balancer now: its header is taken off, the rest relayed.
        s = t.connect(lo, source="127.0.0.2")
        try:
            s.sendall(b"PROXY TCP4 198.51.100.7 127.0.0.1 4242 %d\r\nvia the balancer\n" % lo)
            s.shutdown(socket.SHUT_WR)
            t.check_eq(t.recv_all(s), b"via the balancer\n",
                       "what the balancer's visitor got back (the header must be gone)")
        finally:
            s.close()
        # allow_ports from the same file did apply: only lo now.
        late = env.start_client(echo.port, srv, token=TOKEN, remote_port=lo + 3, lines=0,
                                extra=("--tls-fingerprint", b_fp), cname="mgrok-late")
        t.check_eq(late.wait_exit(), 1, "exit code of mgrok asking for a port no longer allowed")
        t.check("status 2" in late.stderr_text(), "no PORT_NOT_ALLOWED after the reload",
                stderr=late.stderr_text()[-800:])
        t.check(srv.alive(), "mgrokd died")

    with env.case("a new token and max_proxies: applied, the old session stays"):
        conf3 = dict(conf, allow_ports=["%d-%d" % (lo, hi)], limits={"max_proxies": 1},
                     auth={"method": "token", "token": TOKEN + "-new"})
        t.write_json(env, "mgrokd-reload.json", conf3)
        sighup(srv, r"auth method 'token' reconfigured")
        refused = env.start_client(echo.port, srv, token=TOKEN, remote_port=lo + 1, lines=0,
                                   extra=("--tls-fingerprint", b_fp), cname="mgrok-old-token")
        t.check_eq(refused.wait_exit(), 1, "exit code of mgrok with the token of before")
        t.check("authentication failed" in refused.stderr_text(),
                "the old token was not refused", stderr=refused.stderr_text()[-800:])
        two = t.write_json(env, "mgrok-two.json", {"proxies": [
            {"name": "first", "type": "tcp", "local": "127.0.0.1:%d" % echo.port,
             "remote_port": lo + 1},
            {"name": "second", "type": "tcp", "local": "127.0.0.1:%d" % echo.port,
             "remote_port": lo + 2}]})
        fresh = env.start_client(None, srv, token=TOKEN + "-new", config=two, lines=1,
                                 extra=("--tls-fingerprint", b_fp), cname="mgrok-new-token")
        t.echo_check(lo + 1, b"with the new token\n")
        t.wait_log(fresh, r"at most 1 proxies per session", timeout=20)
        t.echo_check(lo, b"the session of before, after both reloads\n")
        t.check_eq(old.stderr_text().count("connected to"), 1,
                   "connections of the old client (it must not have reconnected)")
        t.check_eq(fresh.stop(), 0, "exit code of mgrok on SIGTERM")

    t.check_eq(old.stop(), 0, "exit code of mgrok on SIGTERM")
    t.check_eq(srv.stop(), 0, "exit code of mgrokd on SIGTERM")
    env.check_services()


t.run(main)
