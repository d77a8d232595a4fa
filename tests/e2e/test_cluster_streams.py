#!/usr/bin/env python3
"""Streams relayed through a second node (doc/cluster.md): the relay's
stream and the stream to the client are joined inside the client's node
(core/stream.c), so what a socket did for a visitor the join must do. A
redis-server, node a (127.0.0.11) holding the client, node b (127.0.0.12)
relaying; every visitor goes to node b.

1. Bulk both ways at once: 8 MiB sent while the echo comes back, byte for
   byte (credit crosses the join, or this stalls).
2. The visitor closes first: everything it sent arrives, then the
   service's answer and EOF.
3. The service closes first: its banner and EOF reach the visitor, whose
   own bytes still reach the service afterwards (counted there).
4. A visitor's RST: the service's connection is reset too.
5. A local service that is down: the visitor's connection ends at once.
6. Sixty visitors at once, each echoing 64 KiB.
Then no stream is left open on either node (the admin API's sessions),
and nothing a node logged is an error.
"""
import os
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mgroktest as t
from mgroktest.cluster import Redis, node_config

A = t.admin
TOKEN = "cluster-streams-Token-7b1d3f5a9c0e2468"
ADMIN_TOKEN = "cluster-streams-admin-0c2e4a6b8d1f3579"
HOSTS = {"a": "127.0.0.11", "b": "127.0.0.12"}
IO = 20


class Setup:
    pass


def banner_handler(record):
    """Sends a banner and half-closes at once; then counts what the
    visitor still sends, until its EOF."""
    def handler(conn):
        conn.sendall(b"banner\n")
        conn.shutdown(socket.SHUT_WR)
        n = 0
        while True:
            b = conn.recv(65536)
            if not b:
                break
            n += len(b)
        record.append(n)
    return handler


def reset_watch_handler(record):
    """Reads until EOF or a reset, and says which."""
    def handler(conn):
        try:
            while conn.recv(65536):
                pass
            record.append("eof")
        except ConnectionResetError:
            record.append("reset")
    return handler


def start(env, s):
    s.redis = Redis(env)
    s.redis.start()
    s.port = env.ports.take()
    s.allow = env.ports.take_range(8)
    s.admin = {n: env.ports.take() for n in HOSTS}
    s.nodes = {}
    for n, host in HOSTS.items():
        conf = node_config(env, n, host, s.port, s.allow, s.redis, TOKEN, 2.0, {
            "admin": {"listen": "127.0.0.1:%d" % s.admin[n], "token": ADMIN_TOKEN}})
        s.nodes[n] = env.start_server(config=conf, name="mgrokd-" + n, port=s.port,
                                      listen_host=host, allow=s.allow, token=None)
    s.echo = env.echo_service()
    s.banner_counts, s.resets = [], []
    banner = env.service(banner_handler(s.banner_counts), name="banner")
    watch = env.service(reset_watch_handler(s.resets), name="watch")
    dead = env.ports.take()  # nothing listens there
    s.ports = {"echo": s.allow[0], "banner": s.allow[0] + 1, "watch": s.allow[0] + 2,
               "dead": s.allow[0] + 3}
    locals_ = {"echo": s.echo.port, "banner": banner.port, "watch": watch.port, "dead": dead}
    conf = t.write_json(env, "mgrok.json", {
        "server": "%s:%d" % (HOSTS["a"], s.port),
        "auth": {"method": "token", "token": TOKEN},
        "proxies": [{"name": k, "type": "tcp", "local": str(locals_[k]),
                     "remote_port": s.ports[k]} for k in sorted(s.ports)]})
    s.client = env.start_client(None, None, token=None, config=conf, lines=4)
    for p in s.ports.values():
        t.wait_for(lambda: served(HOSTS["b"], p), t.DEADLINE, "node b to serve port %d" % p)
    # The probes were visitors too: what the services noted of them goes.
    t.wait_for(lambda: s.banner_counts and s.resets, t.DEADLINE, "the probes to end")
    del s.banner_counts[:], s.resets[:]


def served(host, port):
    try:
        socket.create_connection((host, port), timeout=2).close()
        return True
    except OSError:
        return False


def visitor(s, name):
    return socket.create_connection((HOSTS["b"], s.ports[name]), timeout=IO)


def bulk_both_ways(env, s):
    data = t.payload(8, 8 << 20)
    conn = visitor(s, "echo")
    got = []

    def read():
        got.append(t.recv_all(conn))
    th = threading.Thread(target=read)
    th.start()
    conn.sendall(data)
    conn.shutdown(socket.SHUT_WR)
    th.join(IO * 2)
    conn.close()
    t.check(got and got[0] == data, "8 MiB echoed through the join",
            got=len(got[0]) if got else None)


def visitor_closes_first(env, s):
    conn = visitor(s, "echo")
    data = t.payload(9, 300000)
    conn.sendall(data)
    conn.shutdown(socket.SHUT_WR)
    got = t.recv_all(conn)
    conn.close()
    t.check(got == data, "the echo after the visitor's half-close", got=len(got))


def service_closes_first(env, s):
    conn = visitor(s, "banner")
    line = b""
    while not line.endswith(b"\n"):
        b = conn.recv(1)
        t.check(b, "EOF before the banner")
        line += b
    t.check_eq(line, b"banner\n", "the banner")
    t.check_eq(conn.recv(1), b"", "EOF after the service's half-close")
    conn.sendall(b"x" * 100000)  # the visitor's side is still open
    conn.shutdown(socket.SHUT_WR)
    t.wait_for(lambda: s.banner_counts, IO, "the service to see the visitor's EOF")
    conn.close()
    t.check_eq(s.banner_counts, [100000], "bytes the service got after its half-close")


def visitor_resets(env, s):
    conn = visitor(s, "watch")
    conn.sendall(b"hello")
    time.sleep(0.3)  # the stream is open on every hop
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()
    t.wait_for(lambda: s.resets, IO, "the service to see the visitor go")
    t.check_eq(s.resets, ["reset"], "how the service saw the visitor's RST")


def service_down(env, s):
    conn = visitor(s, "dead")
    t0 = time.monotonic()
    try:
        got = conn.recv(1)
    except ConnectionResetError:
        got = b""
    conn.close()
    t.check_eq(got, b"", "a visitor of a service that is down")
    t.check(time.monotonic() - t0 < IO, "the visitor's connection did not end")


def many(env, s):
    errors = []

    def one(i):
        try:
            data = t.payload(100 + i, 65536)
            got = t.roundtrip(s.ports["echo"], data, HOSTS["b"], IO)
            if got != data:
                errors.append("visitor %d: %d bytes back" % (i, len(got)))
        except OSError as e:
            errors.append("visitor %d: %r" % (i, e))
    threads = [threading.Thread(target=one, args=(i,)) for i in range(60)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(IO * 2)
    t.check(not errors, "sixty visitors at once", errors=errors[:5])


def open_streams(s, n):
    return sum(x.get("streams", 0) for x in A.sessions(s.admin[n], ADMIN_TOKEN))


def main(env):
    s = Setup()
    start(env, s)
    for what, fn in (("1. bulk both ways", bulk_both_ways),
                     ("2. the visitor closes first", visitor_closes_first),
                     ("3. the service closes first", service_closes_first),
                     ("4. a visitor's RST", visitor_resets),
                     ("5. a local service that is down", service_down),
                     ("6. sixty visitors", many)):
        t.log("---- %s" % what)
        with env.case(what):
            fn(env, s)
    for n in HOSTS:
        t.wait_for(lambda: open_streams(s, n) == 0, t.DEADLINE,
                   "every stream on node %s to end" % n)
    for n in HOSTS:
        t.check(" error " not in s.nodes[n].stderr_text(), "node %s logged an error" % n,
                log=s.nodes[n].tail(20))
    for p in env.procs:
        p.stop()
    t.check_no_secrets(env, [TOKEN, ADMIN_TOKEN])
    env.check_services(allow_resets=1)


t.run(main)
