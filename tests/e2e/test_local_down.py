#!/usr/bin/env python3
"""A proxy whose local service is down: every visitor is closed promptly
(a RESET, not a hang), the tunnel stays up, and works once the service is up."""
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mgroktest as t

TRIES = 20
PROMPT = 10.0  # "promptly": generous, only there to tell a close from a hang


def visitor_is_closed(port, i):
    try:
        s = t.connect(port, timeout=PROMPT)
    except ConnectionResetError:  # the reset came before connect() returned
        return "reset on connect"
    try:
        if i % 2:
            try:
                s.sendall(b"anyone there?\n")
            except (BrokenPipeError, ConnectionResetError):
                return "reset on send"
        try:
            b = s.recv(4096)
        except ConnectionResetError:
            return "reset"
        except socket.timeout:
            raise t.TestFailure("visitor %d: not closed within %.0f s although nothing "
                                "listens on the local port" % (i, PROMPT))
        t.check_eq(b, b"", "visitor %d: bytes from a service that is down" % i)
        return "eof"
    finally:
        s.close()


def main(env):
    srv = env.start_server(nports=2)
    local_port = env.ports.take()  # reserved for this test, nothing listens on it
    t.check(t.port_free(local_port), "the local port is unexpectedly in use")
    cl = env.start_client(local_port, srv)
    port = cl.public_port

    outcomes = {}
    for i in range(TRIES):
        how = visitor_is_closed(port, i)
        outcomes[how] = outcomes.get(how, 0) + 1
    t.log("%d visitors closed: %s" % (TRIES, outcomes))
    t.check(srv.alive(), "mgrokd died")
    t.check(cl.alive(), "mgrok died")

    # The service comes up on that very port: the same tunnel now works.
    env.service(t.echo_handler, port=local_port, name="late-echo")
    t.echo_check(port, b"now somebody is home\n")
    t.echo_check(port, t.payload(7, 300000))
    env.check_services()
    t.check(srv.alive() and cl.alive(), "mgrokd or mgrok died")
    t.check_eq(len(cl.public_lines()), 1, "the client registered once")


t.run(main)
