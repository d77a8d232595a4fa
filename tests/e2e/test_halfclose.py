#!/usr/bin/env python3
"""Half-close in both directions: a FIN crosses the tunnel as a FIN, and the
other direction keeps flowing."""
import os
import queue
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mgroktest as t

ROUNDS = 5


def reply_for(request):
    return b"REPLY " + request[::-1] + request  # bigger than the request


def request_reply_handler(conn):
    """Reads the whole request (until the visitor's FIN), then replies and closes."""
    conn.sendall(reply_for(t.recv_all(conn)))


def visitor_closes_first(env, srv):
    svc = env.service(request_reply_handler, name="request-reply")
    cl = env.start_client(svc.port, srv, cname="mgrok-a")
    for i in range(ROUNDS):
        request = t.payload(i, 1000 + i * 150000)
        s = t.connect(cl.public_port)
        try:
            s.sendall(request)
            s.shutdown(socket.SHUT_WR)
            reply = t.recv_all(s)
        finally:
            s.close()
        expected = reply_for(request)
        t.check(reply == expected, "round %d: reply after the visitor's half-close differs" % i,
                expected_len=len(expected), got_len=len(reply), got_head=reply[:40])
    t.log("visitor half-closes first: %d rounds ok" % ROUNDS)


GREETING = b"hello, I will say nothing more\n"


def service_closes_first(env, srv):
    received = queue.Queue()

    def greeter(conn):
        conn.sendall(GREETING)
        conn.shutdown(socket.SHUT_WR)
        received.put(t.recv_all(conn))

    svc = env.service(greeter, name="greeter")
    cl = env.start_client(svc.port, srv, cname="mgrok-b")
    for i in range(ROUNDS):
        s = t.connect(cl.public_port)
        try:
            # The service's FIN arrives as EOF after its greeting...
            greeting = t.recv_all(s)
            t.check_eq(greeting, GREETING, "round %d: greeting before EOF" % i)
            # ...and the visitor can still send, well past one window.
            data = t.payload(100 + i, 5000 + i * 200000)
            for off in range(0, len(data), 65536):
                s.sendall(data[off:off + 65536])
            s.shutdown(socket.SHUT_WR)
            try:
                got = received.get(timeout=t.DEADLINE)
            except queue.Empty:
                raise t.TestFailure("round %d: the service never saw the visitor's EOF" % i)
            t.check(got == data, "round %d: the service got other bytes than the visitor "
                    "sent after the service's half-close" % i, sent=len(data), got=len(got))
            # Both sides have closed: the visitor sees the connection end.
            t.check_eq(t.recv_all(s), b"", "round %d: bytes after EOF" % i)
        finally:
            s.close()
    t.log("service half-closes first: %d rounds ok" % ROUNDS)


def main(env):
    srv = env.start_server(nports=4)
    visitor_closes_first(env, srv)
    service_closes_first(env, srv)
    env.check_services()
    for p in env.procs:
        t.check(p.alive(), "%s died" % p.name)


t.run(main)
