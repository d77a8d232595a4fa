#!/usr/bin/env python3
"""200 concurrent connections through one tunnel to an echo service; each
gets exactly its own payload back. Plaintext, then TLS: many streams opening
at once over TLS once left some stalled (records read ahead by OpenSSL but
not yet decrypted got no readiness event)."""
import os
import selectors
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mgroktest as t

N = 200


def size_of(i):
    return 4096 + (i * 7919) % (60 * 1024 + 1)  # 4 KiB .. 64 KiB


class Visitor:
    def __init__(self, i, port):
        self.i = i
        self.data = t.payload(i, size_of(i))
        self.sent = 0
        self.got = bytearray()
        self.eof = False
        self.sock = t.connect(port)
        self.sock.setblocking(False)


def main(env):
    echo = env.echo_service()
    run(env, echo, tls=False)
    run(env, echo, tls=True)


def run(env, echo, tls):
    seen_before = echo.count
    server_extra, client_extra = (), ()
    if tls:
        cert, key, fp = t.gen_cert(env, "cert", public_host="127.0.0.1")
        server_extra = ("--tls-cert", cert, "--tls-key", key)
        client_extra = ("--tls-fingerprint", fp)
    srv = env.start_server(nports=2, extra=server_extra, name="mgrokd-tls" if tls else "mgrokd")
    cl = env.start_client(echo.port, srv, extra=client_extra, cname="mgrok-tls" if tls else "mgrok")
    port = cl.public_port
    t.check(srv.allow[0] <= port <= srv.allow[1], "public port outside --allow-ports",
            port=port, allow=srv.allow)

    # Open all of them first so that all 200 streams are open at once.
    visitors = [Visitor(i, port) for i in range(N)]
    sel = selectors.DefaultSelector()
    for v in visitors:
        sel.register(v.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, v)
    open_count = N
    deadline = time.monotonic() + t.DEADLINE
    try:
        while open_count:
            t.check(time.monotonic() < deadline, "timed out with %d connections unfinished"
                    % open_count, unfinished=[v.i for v in visitors if not v.eof][:20])
            for key, ev in sel.select(timeout=1.0):
                v = key.data
                if ev & selectors.EVENT_WRITE and v.sent < len(v.data):
                    try:
                        v.sent += v.sock.send(v.data[v.sent:v.sent + 65536])
                    except BlockingIOError:
                        pass
                    if v.sent == len(v.data):
                        v.sock.shutdown(socket.SHUT_WR)
                        sel.modify(v.sock, selectors.EVENT_READ, v)
                if ev & selectors.EVENT_READ:
                    try:
                        b = v.sock.recv(65536)
                    except BlockingIOError:
                        continue
                    if b:
                        v.got += b
                        t.check(len(v.got) <= len(v.data), "connection %d got more bytes "
                                "than it sent" % v.i, sent=len(v.data), got=len(v.got))
                    else:
                        t.check(v.sent == len(v.data), "connection %d: EOF before it had "
                                "sent everything" % v.i, sent=v.sent, size=len(v.data))
                        v.eof = True
                        sel.unregister(v.sock)
                        open_count -= 1
    finally:
        for v in visitors:
            v.sock.close()
        sel.close()

    bad = [v.i for v in visitors if bytes(v.got) != v.data]
    t.check(not bad, "%d of %d connections got back something other than their payload"
            % (len(bad), N), first_bad=bad[:10],
            detail=["#%d sent %d got %d" % (i, len(visitors[i].data), len(visitors[i].got))
                    for i in bad[:5]])
    total = sum(len(v.data) for v in visitors)
    t.log("%d connections, %d bytes each way, all echoed exactly" % (N, total))
    t.check(echo.count - seen_before == N, "the echo service saw %d connections, expected %d"
            % (echo.count - seen_before, N))
    env.check_services()
    many_small(port)
    # The tunnel still works afterwards.
    t.echo_check(port)
    t.check(srv.alive() and cl.alive(), "mgrokd or mgrok died")


def many_small(port, n=2000):
    """n connections opened together, one byte each way on every one: the
    pattern that found streams stalled behind TLS read-ahead."""
    socks = [t.connect(port) for _ in range(n)]
    try:
        for s in socks:
            s.sendall(b"x")
        deadline = time.monotonic() + t.DEADLINE
        stalled = 0
        for s in socks:
            s.settimeout(max(0.1, min(10.0, deadline - time.monotonic())))
            try:
                if s.recv(1) != b"x":
                    stalled += 1
            except socket.timeout:
                stalled += 1
        t.check(stalled == 0, "%d of %d one-byte connections got no echo" % (stalled, n))
    finally:
        for s in socks:
            s.close()


t.run(main)
