#!/usr/bin/env python3
"""200 concurrent connections through one tunnel to an echo service; each
gets exactly its own payload back."""
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
    srv = env.start_server(nports=2)
    echo = env.echo_service()
    cl = env.start_client(echo.port, srv)
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
    t.check(echo.count == N, "the echo service saw %d connections, expected %d"
            % (echo.count, N))
    env.check_services()
    # The tunnel still works afterwards.
    t.echo_check(port)
    t.check(srv.alive() and cl.alive(), "mgrokd or mgrok died")


t.run(main)
