#!/usr/bin/env python3
"""SIGTERM drains mgrokd (README "Running the server"): the control port
closes and new visitors are refused at once, while the streams already open
go on carrying bytes both ways; once the last of them ends mgrokd sends
GO_AWAY to its clients and exits 0, and the client goes back to
reconnecting. A stream still open at shutdown_timeout is closed and mgrokd
exits 0 all the same; a second SIGTERM ends the drain at once."""
import os
import signal
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mgroktest as t

TOKEN = "drain-Token-4b7e19c2d05a3f68"


def server_with_timeout(env, name, timeout):
    port = env.ports.take()
    lo, hi = env.ports.take_range(1)
    conf = t.write_json(env, name + ".json", {
        "listen": "127.0.0.1:%d" % port,
        "auth": {"method": "token", "token": TOKEN},
        "allow_ports": ["%d-%d" % (lo, hi)],
        "shutdown_timeout": timeout})
    srv = env.start_server(token=None, config=conf, name=name)
    srv.port, srv.allow = port, (lo, hi)
    return srv


def visitor_echo(sock, data):
    sock.sendall(data)
    got = b""
    while len(got) < len(data):
        chunk = sock.recv(65536)
        t.check(chunk, "the open stream ended during the drain", got=got)
        got += chunk
    t.check_eq(got, data, "echo on the open stream")


def refused(port):
    """A visitor to the public port gets no byte of service."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
    except OSError:
        return True
    try:
        s.settimeout(5)
        s.sendall(b"anyone there?\n")
        return s.recv(100) == b""
    except OSError:
        return True
    finally:
        s.close()


def drained_when_streams_end(env, echo):
    srv = server_with_timeout(env, "mgrokd-drain", 60)
    port = srv.allow[0]
    cl = env.start_client(echo.port, srv, token=TOKEN, remote_port=port, cname="mgrok-drain")
    v = socket.create_connection(("127.0.0.1", port), timeout=10)
    visitor_echo(v, b"before the drain\n")
    srv.send_signal(signal.SIGTERM)
    t.wait_log(srv, "draining: 1 sessions, 1 streams open", timeout=10)
    t.wait_for(lambda: t.port_closed(srv.port), 10, "the control port to close")
    t.check(refused(port), "a new visitor was served during the drain")
    big = os.urandom(1024 * 1024)
    visitor_echo(v, big)  # both ways, well past one window
    t.check(srv.alive(), "mgrokd exited with a stream open")
    v.close()
    t.check_eq(srv.wait_exit(20), 0, "exit code of mgrokd after the drain")
    err = srv.stderr_text()
    t.check("drained: every stream has ended" in err, "no drained line", stderr=err[-800:])
    t.wait_log(cl, "peer sent GO_AWAY code 0: server shutting down", timeout=10)
    t.wait_log(cl, "reconnecting in", timeout=10)
    t.check(cl.alive(), "mgrok gave up after the server's GO_AWAY")
    t.check_eq(cl.stop(), 0, "exit code of mgrok on SIGTERM")


def drained_at_timeout(env, echo):
    srv = server_with_timeout(env, "mgrokd-timeout", 1)
    port = srv.allow[0]
    cl = env.start_client(echo.port, srv, token=TOKEN, remote_port=port, cname="mgrok-timeout")
    v = socket.create_connection(("127.0.0.1", port), timeout=10)
    visitor_echo(v, b"a stream that stays open\n")
    srv.send_signal(signal.SIGTERM)
    t.check_eq(srv.wait_exit(20), 0, "exit code of mgrokd at shutdown_timeout")
    err = srv.stderr_text()
    t.check("shutdown_timeout (1 s): closing 1 streams still open" in err,
            "no line about the streams closed at the timeout", stderr=err[-800:])
    v.settimeout(10)
    try:
        rest = v.recv(100)
    except ConnectionResetError:
        rest = b""
    t.check_eq(rest, b"", "bytes on a stream closed at shutdown_timeout")
    v.close()
    t.check_eq(cl.stop(), 0, "exit code of mgrok on SIGTERM")


def second_signal(env, echo):
    srv = server_with_timeout(env, "mgrokd-twice", 600)
    port = srv.allow[0]
    cl = env.start_client(echo.port, srv, token=TOKEN, remote_port=port, cname="mgrok-twice")
    v = socket.create_connection(("127.0.0.1", port), timeout=10)
    visitor_echo(v, b"open\n")
    srv.send_signal(signal.SIGTERM)
    t.wait_log(srv, "draining:", timeout=10)
    srv.send_signal(signal.SIGTERM)
    # Long before the 600 s of shutdown_timeout.
    t.check_eq(srv.wait_exit(20), 0, "exit code of mgrokd after a second SIGTERM")
    t.check("shutting down" in srv.stderr_text(), "no shutting-down line",
            stderr=srv.stderr_text()[-800:])
    v.close()
    t.check_eq(cl.stop(), 0, "exit code of mgrok on SIGTERM")


def cut_echo(conn):
    """Echoes until EOF, or until mgrok cuts the stream (an RST is what a
    stream closed at shutdown_timeout or by a second SIGTERM must give)."""
    try:
        t.echo_handler(conn)
    except ConnectionResetError:
        pass


def main(env):
    echo = env.echo_service()
    cut = env.service(cut_echo, name="echo-cut")
    for what, fn, svc in (("drained once the open streams end", drained_when_streams_end, echo),
                          ("drained at shutdown_timeout", drained_at_timeout, cut),
                          ("a second SIGTERM ends the drain", second_signal, cut)):
        t.log("---- %s" % what)
        with env.case(what):
            fn(env, svc)
    env.check_services()


t.run(main)
