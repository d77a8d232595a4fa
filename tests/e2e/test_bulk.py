#!/usr/bin/env python3
"""64 MiB each way through a tunnel, verified by SHA-256, then 32 MiB both
ways at once on one connection."""
import hashlib
import os
import select
import socket
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mgroktest as t

SIZE = 64 * 1024 * 1024


def upload(env, srv):
    """visitor -> service: the service hashes what it gets until EOF."""
    svc = env.service(t.hash_handler, name="hash")
    cl = env.start_client(svc.port, srv, cname="mgrok-up")
    sent = hashlib.sha256()
    s = t.connect(cl.public_port)
    try:
        n = 0
        for chunk in t.pattern(seed=1, total=SIZE):
            s.sendall(chunk)
            sent.update(chunk)
            n += len(chunk)
        t.check_eq(n, SIZE, "bytes sent")
        s.shutdown(socket.SHUT_WR)
        reply = t.recv_all(s, limit=1024).decode("ascii", "replace")
    finally:
        s.close()
    t.check_eq(reply, sent.hexdigest(), "digest of 64 MiB as the service saw them")
    t.log("upload: 64 MiB arrived intact")


# With flow control, a visitor that stops reading holds the service back once
# the stream's window (at most 16 MiB) and the socket buffers on the way are
# full: 8-30 MiB on Linux loopback, with the visitor's and the service's own
# buffers kept small.  Without it, the service would push all 64 MiB (60 MiB
# more than the visitor read).
MAX_IN_FLIGHT = 48 * 1024 * 1024
SMALL_BUF = 128 * 1024


def download(env, srv):
    """service -> visitor: the service sends a known stream and closes.
    The visitor stops reading for a while on the way: back-pressure."""
    progress = {"sent": 0, "conn": None}

    def source(conn):
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SMALL_BUF)
        progress["conn"] = conn
        for chunk in t.pattern(seed=2, total=SIZE):
            conn.sendall(chunk)
            progress["sent"] += len(chunk)

    svc = env.service(source, name="source")
    cl = env.start_client(svc.port, srv, cname="mgrok-down")
    got = hashlib.sha256()
    n = 0
    paused = False
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_BUF)
    s.settimeout(t.DEADLINE)
    s.connect(("127.0.0.1", cl.public_port))
    try:
        while True:
            if n >= 4 * 1024 * 1024 and not paused:
                paused = True
                in_flight = wait_until_held_back(progress, n) - n
                t.log("download: visitor paused after %d MiB, %.1f MiB in flight"
                      % (n >> 20, in_flight / 2 ** 20))
            b = s.recv(t.CHUNK)
            if not b:
                break
            got.update(b)
            n += len(b)
            t.check(n <= SIZE, "more bytes than the service sent", received=n)
    finally:
        s.close()
    t.check_eq(n, SIZE, "bytes received")
    t.check_eq(got.hexdigest(), t.pattern_digest(2, SIZE), "digest of the 64 MiB received")
    t.log("download: 64 MiB arrived intact")


def wait_until_held_back(progress, read):
    """Waits while the visitor has read `read` bytes and reads no more, until
    the service is held back: its socket takes nothing more (the tunnel no
    longer reads it) and it has sent nothing since the previous look, which
    saw the same.  Fails as soon as the service has sent more than
    MAX_IN_FLIGHT beyond what the visitor read.  Returns what it sent."""
    seen = {"blocked_at": None}

    def held_back():
        sent = progress["sent"]
        t.check(sent - read <= MAX_IN_FLIGHT, "no back-pressure: the service sent %.1f MiB more "
                "than the visitor read" % ((sent - read) / 2 ** 20))
        conn = progress["conn"]
        blocked = conn is not None and not select.select([], [conn], [], 0)[1]
        if blocked and seen["blocked_at"] == sent:
            return sent
        seen["blocked_at"] = sent if blocked else None
        return None
    return t.wait_for(held_back, what="the service to be held back by the paused visitor",
                      interval=0.1)


def both_ways(env, srv):
    """Full duplex on one connection: an echo, sending and reading at once."""
    size = SIZE // 2
    echo = env.echo_service()
    cl = env.start_client(echo.port, srv, cname="mgrok-echo")
    s = t.connect(cl.public_port)
    result = {}

    def reader():
        h, n = hashlib.sha256(), 0
        try:
            while True:
                b = s.recv(t.CHUNK)
                if not b:
                    break
                h.update(b)
                n += len(b)
        except OSError as e:
            result["error"] = e
        result["n"], result["digest"] = n, h.hexdigest()

    th = threading.Thread(target=reader, daemon=True)
    th.start()
    try:
        for chunk in t.pattern(seed=3, total=size):
            s.sendall(chunk)
        s.shutdown(socket.SHUT_WR)
        th.join(timeout=t.DEADLINE)
        t.check(not th.is_alive(), "the echo did not end within %.0f s" % t.DEADLINE)
    finally:
        s.close()
    t.check("error" not in result, "reading the echo failed", error=result.get("error"))
    t.check_eq(result["n"], size, "bytes echoed")
    t.check_eq(result["digest"], t.pattern_digest(3, size), "digest of the echoed bytes")
    t.log("both ways: 32 MiB echoed intact while sending")


def main(env):
    srv = env.start_server(nports=4)
    upload(env, srv)
    download(env, srv)
    both_ways(env, srv)
    env.check_services()
    for p in env.procs:
        t.check(p.alive(), "%s died" % p.name)


t.run(main)
