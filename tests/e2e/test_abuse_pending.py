#!/usr/bin/env python3
"""One host cannot hold every handshake slot of mgrokd.

limits.max_pending bounds the connections still in the handshake; a host
that opens that many and trickles their first message a byte a second
would keep every other client out until the handshake timeout.
limits.max_pending_per_address (default 8) closes at once a connection
from an address that already has that many in the handshake.

a. "max_pending": 64, a handshake timeout of 60 s: 80 connections from
   127.0.0.1 trickle the magic a byte at a time; a session from 127.0.0.2
   still completes its handshake and registers a proxy that serves a
   visitor, and mgrokd closed all but 8 of the 80 at once.
b. The default config (no limits key): with 8 connections from 127.0.0.1 in
   the handshake, a 9th from there is closed at once while the 8 stay
   pending; when one of them finishes its handshake, a new one from
   127.0.0.1 is let in again."""
import os
import select
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mgroktest as t

TOKEN = "abuse-pending-token-c41a"
PER_ADDRESS = 8  # the default of limits.max_pending_per_address
FIRST = t.MAGIC + t.u8(t.AUTH_TOKEN) + t.str16(os.urandom(16))  # a token handshake's first message


def is_closed(sock):
    """True if the peer has closed sock (EOF or reset); never blocks."""
    r, _, _ = select.select([sock], [], [], 0)
    if not r:
        return False
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True


class Trickler:
    """Connections from one address that send FIRST a byte at a time."""

    def __init__(self, port, n, source):
        self.socks = [t.RawSession(port, timeout=15, source=source).sock for _ in range(n)]
        self.sent = 0

    def step(self):
        """Sends the next byte on every connection still open."""
        if self.sent >= len(FIRST) - 1:  # never complete the message
            return
        for s in self.socks:
            try:
                s.send(FIRST[self.sent:self.sent + 1])
            except (ConnectionResetError, BrokenPipeError):
                pass
        self.sent += 1

    def open(self):
        return [s for s in self.socks if not is_closed(s)]

    def close(self):
        for s in self.socks:
            s.close()


def accepted(srv):
    """Waits until mgrokd has accepted every connection made so far: it
    counts a connection in the handshake as it accepts it, so from then on
    each new connection meets the limits with all of those counted."""
    t.wait_for(lambda: t.accept_backlog(srv.port) == 0,
               what="mgrokd to accept the trickling connections")


def server(env, name, limits=None):
    port = env.ports.take()
    allow = env.ports.take_range(1)
    conf = {"listen": "127.0.0.1:%d" % port,
            "auth": {"method": "token", "token": TOKEN},
            "allow_ports": ["%d-%d" % allow],
            "handshake_timeout": 60}
    if limits:
        conf["limits"] = limits
    srv = env.start_server(token=None, config=t.write_json(env, name + ".json", conf),
                           name=name)
    srv.port, srv.allow = port, allow
    return srv


def trickle_flood(env):
    srv = server(env, "mgrokd-64", {"max_pending": 64})
    slow = Trickler(srv.port, 80, "127.0.0.1")
    try:
        slow.step()
        accepted(srv)
        # A client from another address gets in, and its proxy works.
        raw = t.RawSession(srv.port, timeout=15, source="127.0.0.2")
        try:
            try:
                raw.handshake(TOKEN)
            except (ConnectionResetError, BrokenPipeError) as e:
                raise t.TestFailure("a handshake from 127.0.0.2 was refused while 127.0.0.1 "
                                    "trickles 80 handshakes (%r)" % e)
            ack = raw.register("web", srv.allow[0])
            t.check_eq(ack.status, t.ACK_OK, "REGISTER from 127.0.0.2", message=ack.message)
            got = raw.serve_visitor(srv.allow[0], b"visitor\n", b"served from 127.0.0.2\n")
            t.check_eq(got, b"served from 127.0.0.2\n", "the visitor of 127.0.0.2's proxy")
        finally:
            raw.close()
        slow.step()
        still = t.wait_for(lambda: len(slow.open()) <= PER_ADDRESS and slow.open(), 10,
                           "mgrokd to close all but %d of 80 trickling connections"
                           % PER_ADDRESS)
        t.check_eq(len(still), PER_ADDRESS, "trickling connections from 127.0.0.1 left pending")
        t.log("a: 80 trickling from 127.0.0.1 -> %d pending; 127.0.0.2 got in and served a "
              "visitor" % len(still))
        lines = t.wait_log(srv, r"127\.0\.0\.1(?::\d+)? has %d connections in the handshake"
                           % PER_ADDRESS, 1, 10, "the refusal line")
    finally:
        slow.close()
    t.check(srv.alive(), "mgrokd died")
    t.check_eq(srv.stop(), 0, "exit code of mgrokd on SIGTERM")


def default_limit(env):
    srv = server(env, "mgrokd-default")
    slow = Trickler(srv.port, PER_ADDRESS, "127.0.0.1")
    try:
        slow.step()
        accepted(srv)
        ninth = t.RawSession(srv.port, timeout=15)
        try:
            try:
                ninth.send(FIRST[:1])
                rest = ninth.read_eof("mgrokd to close the 9th pending connection from "
                                      "127.0.0.1")
            except (ConnectionResetError, BrokenPipeError):
                rest = b""
            except t.TestFailure as e:
                raise t.TestFailure("the %dth connection in the handshake from 127.0.0.1 was "
                                    "not closed: %s" % (PER_ADDRESS + 1, e))
        finally:
            ninth.close()
        t.check_eq(rest, b"", "bytes to the refused connection")
        slow.step()
        t.check_eq(len(slow.open()), PER_ADDRESS, "pending connections from 127.0.0.1 after "
                   "the 9th was refused")
        # One of the 8 finishes its handshake: there is room for one more.
        first = t.RawSession.from_socket(slow.socks[0], 15)
        first.send(FIRST[slow.sent:-16])  # all but the nonce: a fresh nonce follows
        cnonce = os.urandom(16)
        first.send(cnonce)
        status, snonce = first.hs_reply()
        t.check_eq(status, t.HS_CHALLENGE, "reply to a trickled token method")
        first.send(t.str16(t.token_proof(TOKEN, b"mgrok-token-v1 client", cnonce, snonce)))
        status, _ = first.hs_reply()
        t.check_eq(status, t.HS_OK, "a trickled handshake completed")
        again = t.RawSession(srv.port, timeout=15).handshake(TOKEN)
        ack = again.register("again", srv.allow[0])
        t.check_eq(ack.status, t.ACK_OK, "REGISTER once a slot of 127.0.0.1 is free",
                   message=ack.message)
        again.close()
        t.log("b: default: the 9th from 127.0.0.1 was refused, 8 stayed pending; a slot freed "
              "lets the next in")
    finally:
        slow.close()
    t.check(srv.alive(), "mgrokd died")
    t.check_eq(srv.stop(), 0, "exit code of mgrokd on SIGTERM")


def main(env):
    with env.case("a: max_pending 64 and 80 trickling connections from one address"):
        trickle_flood(env)
    with env.case("b: the default per-address limit"):
        default_limit(env)


t.run(main)
