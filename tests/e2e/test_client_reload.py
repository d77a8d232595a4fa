#!/usr/bin/env python3
"""mgrok SIGHUP (README "Running the client"): the config file is read
again and its proxies apply as a difference, on the same session: a proxy
added is registered (its public line printed), one removed is unregistered
(its port closes), one changed is registered again with its new settings,
and an unchanged one keeps its open streams. A broken file is logged and
changes nothing; a changed server address is named as taking a restart."""
import os
import signal
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mgroktest as t

TOKEN = "creload-Token-1d9e7b2a5c8f3064"


def client_conf(env, srv, echo, proxies, server=None):
    return t.write_json(env, "mgrok-reload.json", {
        "server": server or "127.0.0.1:%d" % srv.port,
        "auth": {"method": "token", "token": TOKEN},
        "proxies": [{"name": n, "type": "tcp", "local": str(echo.port), "remote_port": p}
                    for n, p in proxies]})


def echo_on(sock, data):
    sock.sendall(data)
    got = b""
    while len(got) < len(data):
        chunk = sock.recv(65536)
        t.check(chunk, "the open stream of the unchanged proxy ended", got=got)
        got += chunk
    t.check_eq(got, data, "echo on the open stream")


def sighup(cl, pattern, count):
    cl.send_signal(signal.SIGHUP)
    t.wait_log(cl, pattern, count=count, timeout=20)


def main(env):
    echo = env.echo_service()
    srv = env.start_server(token=TOKEN, nports=6, name="mgrokd")
    lo = srv.allow[0]
    conf = client_conf(env, srv, echo, [("keep", lo), ("gone", lo + 1), ("moves", lo + 2)])
    cl = env.start_client(None, None, token=None, config=conf, lines=3, cname="mgrok-reload")

    with env.case("added, removed, changed, kept"):
        v = socket.create_connection(("127.0.0.1", lo), timeout=10)
        echo_on(v, b"before the reload\n")
        client_conf(env, srv, echo, [("keep", lo), ("moves", lo + 3), ("new", lo + 4)])
        sighup(cl, r"reload: proxy new added", 1)
        cl.wait_lines(5)
        lines = [ln for ln in cl.stdout_lines()[3:]]
        t.check(any(":%d -> " % (lo + 3) in ln for ln in lines) and
                any(":%d -> " % (lo + 4) in ln for ln in lines),
                "no public lines for the changed and the added proxy", lines=lines)
        t.wait_for(lambda: t.port_closed(lo + 1), 10, "the removed proxy's port to close")
        t.wait_for(lambda: t.port_closed(lo + 2), 10, "the changed proxy's old port to close")
        t.echo_check(lo + 3, b"the changed proxy on its new port\n")
        t.echo_check(lo + 4, b"the added proxy\n")
        echo_on(v, b"after the reload, on the stream opened before it\n")
        v.close()
        t.echo_check(lo, b"the kept proxy, a new visitor\n")
        err = cl.stderr_text()
        t.check_eq(err.count("connected to"), 1, "connections of mgrok (it must not reconnect)",
                   stderr=err[-800:])
        t.check("proxy gone removed" in err and "proxy moves changed" in err,
                "no log lines for the removed and the changed proxy", stderr=err[-800:])

    with env.case("a broken file changes nothing"):
        with open(conf, "w") as f:
            f.write('{"server": "127.0.0.1:%d", "proxies": [}' % srv.port)
        sighup(cl, r"reload: .*keeping the old configuration", 1)
        for port in (lo, lo + 3, lo + 4):
            t.echo_check(port, b"still up after a broken reload\n")

    with env.case("a new server address is named"):
        client_conf(env, srv, echo, [("keep", lo), ("moves", lo + 3), ("new", lo + 4)],
                    server="127.0.0.1:1")
        sighup(cl, r"server changed to 127\.0\.0\.1:1: that takes a restart", 1)
        t.echo_check(lo, b"still on the first server\n")

    t.check_eq(cl.stop(), 0, "exit code of mgrok on SIGTERM")
    t.check_eq(srv.stop(), 0, "exit code of mgrokd on SIGTERM")
    env.check_services()


t.run(main)
