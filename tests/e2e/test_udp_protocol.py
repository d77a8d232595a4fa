#!/usr/bin/env python3
"""UDP proxies frame by frame (doc/protocol.md 5), with a hand-written client:
option checks in REGISTER, one NEW_STREAM per visitor address, one DATA per
datagram both ways (empty ones too), a flow without window drops (never
queues), CLOSE ends a flow and is answered, RESET frees it, max_flows
closes the least recently used flow, and a session that ends frees the
port."""
import json
import os
import re
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mgroktest as t
from mgroktest import f_close, f_data, f_hello, f_reset, f_window_update, RawSession

TOKEN = "udp-protocol-token"
PROXY_UDP = 0x02
REPLY_DEADLINE = 10
SKIP = (t.HEARTBEAT, t.WINDOW_UPDATE)


def register(s, name, port, options):
    raw = options if isinstance(options, bytes) else json.dumps(options).encode()
    s.send(t.f_register(name, port, proxy_type=PROXY_UDP, options=raw))
    return s.next_frame(t.REGISTER_ACK)


def expect_new_stream(s, visitor, name):
    ns = s.next_frame(t.NEW_STREAM, "NEW_STREAM for visitor %s:%d" % visitor.getsockname())
    t.check_eq(ns.name, name.encode(), "NEW_STREAM's proxy name")
    t.check(ns.sid >= 2 and ns.sid % 2 == 0, "server stream IDs are even", sid=ns.sid)
    t.check_eq((ns.family, ns.addr, ns.port), (4, bytes([127, 0, 0, 1]),
                                               visitor.getsockname()[1]),
               "NEW_STREAM's source (the visitor's address)")
    return ns.sid


def expect_data(s, sid, data, what):
    f = s.next_frame(t.DATA, what)
    t.check_eq(f.sid, sid, "stream of %s" % what)
    t.check(f.data == data, "%s: payload differs" % what, got_len=len(f.data),
            expected_len=len(data))


def visitor_recv(v, expected, what):
    v.settimeout(REPLY_DEADLINE)
    try:
        got = v.recv(65536)
    except socket.timeout:
        raise t.TestFailure("the visitor got no datagram: %s" % what)
    t.check(got == expected, "%s: the visitor got other bytes" % what, got=got[:40],
            got_len=len(got), expected_len=len(expected))


def main(env):
    lo = env.udp_ports(2)
    srv = env.start_server(token=TOKEN, allow=(lo, lo + 1), extra=("-v",))
    s = RawSession(srv.port, timeout=REPLY_DEADLINE).handshake(TOKEN)
    s.send(f_hello("udp-protocol-test"))

    # Options the plugin refuses: REGISTER_ACK INVALID, the session goes on.
    for bad in ({"bogus": 1}, {"idle_timeout": 0}, {"idle_timeout": "1"}, {"max_flows": 0},
                {"max_flows": 65537}, {"max_flows": 1.5}, b"[1, 2]", b"{not json"):
        ack = register(s, "bad", lo, bad)
        t.check_eq(ack.status, t.ACK_INVALID, "REGISTER udp with options %r" % (bad,),
                   message=ack.message)
    ack = register(s, "raw", lo, {"idle_timeout": 30, "max_flows": 2})
    t.check_eq((ack.status, ack.proxy_type, ack.port), (t.ACK_OK, PROXY_UDP, lo),
               "REGISTER udp", message=ack.message)
    t.check_eq(ack.message, "udp://127.0.0.1:%d" % lo, "REGISTER_ACK message")

    a = t.udp_socket()
    b = t.udp_socket()
    c = t.udp_socket()
    a_addr = "127.0.0.1:%d" % a.getsockname()[1]
    try:
        # One visitor address: one NEW_STREAM, then one DATA per datagram.
        a.sendto(b"one", ("127.0.0.1", lo))
        sid = expect_new_stream(s, a, "raw")
        expect_data(s, sid, b"one", "the first datagram")
        a.sendto(b"", ("127.0.0.1", lo))
        expect_data(s, sid, b"", "an empty datagram")
        a.sendto(b"two", ("127.0.0.1", lo))
        expect_data(s, sid, b"two", "the third datagram (same stream, no NEW_STREAM)")

        # Back to the visitor: one datagram per DATA, empty ones too.
        s.send(f_data(sid, b"reply"))
        visitor_recv(a, b"reply", "DATA reply")
        s.send(f_data(sid, b""))
        visitor_recv(a, b"", "an empty DATA")

        # Flow control: the stream's window is 256 KiB and this client
        # sends no WINDOW_UPDATE; 6 bytes are used.  Four 65507-byte
        # datagrams fit, the fifth does not: dropped, not queued, and a
        # small one still fits after it.
        big = [t.payload(100 + i, t.UDP_MAX) for i in range(5)]
        for i in range(4):
            a.sendto(big[i], ("127.0.0.1", lo))
            expect_data(s, sid, big[i], "big datagram %d" % i)
        a.sendto(big[4], ("127.0.0.1", lo))
        a.sendto(b"small", ("127.0.0.1", lo))
        expect_data(s, sid, b"small", "the datagram after one with no window "
                    "(the one with no window must be dropped)")
        t.wait_log(srv, r"proxy raw: a flow starts dropping datagrams \(no window for a flow\)",
                   timeout=10)
        # Credit back: big datagrams go again.  The DATA after the
        # WINDOW_UPDATE reaching the visitor shows the server has read the
        # WINDOW_UPDATE (frames are handled in order) before the visitor sends.
        s.send(f_window_update(sid, 4 * t.UDP_MAX) + f_data(sid, b"sync"))
        visitor_recv(a, b"sync", "DATA after WINDOW_UPDATE")
        a.sendto(big[4], ("127.0.0.1", lo))
        expect_data(s, sid, big[4], "a big datagram after WINDOW_UPDATE")

        # A DATA too large for an IPv4 datagram is dropped (counted), and
        # the flow goes on.
        s.send(f_data(sid, t.payload(5, 65535)) + f_data(sid, b"after the big one"))
        visitor_recv(a, b"after the big one", "DATA after one too big for IPv4")

        # CLOSE from the client ends the flow; the server answers CLOSE.
        s.send(f_close(sid))
        f = s.next_frame(t.CLOSE, "the server's CLOSE answering ours")
        t.check_eq(f.sid, sid, "stream of the answering CLOSE")
        # in: one, "", two, 5 big, small, big again = 10; out: reply, "",
        # sync, after = 4; dropped: the big one without window and the
        # 65535-byte DATA.
        ended = t.wait_log(srv, r"proxy raw: flow %s ended: (\d+) datagrams in, (\d+) out, "
                           r"(\d+) dropped" % re.escape(a_addr), timeout=10)
        t.check_eq(ended[0], ("10", "4", "2"), "the flow's totals (in, out, dropped)")

        # The same address again: a new flow.
        a.sendto(b"three", ("127.0.0.1", lo))
        sid_a = expect_new_stream(s, a, "raw")
        t.check(sid_a != sid, "a new stream for the visitor after CLOSE", sid=sid_a)
        expect_data(s, sid_a, b"three", "the first datagram of the new flow")

        # RESET from the client frees the flow too (no answer expected).
        s.send(f_reset(sid_a, t.RESET_CANCEL))
        t.wait_log(srv, r"proxy raw: flow %s ended" % re.escape(a_addr), count=2, timeout=10)
        a.sendto(b"four", ("127.0.0.1", lo))
        sid_a = expect_new_stream(s, a, "raw")
        expect_data(s, sid_a, b"four", "the first datagram after RESET")

        # max_flows 2: b makes two; c evicts the least recently used (a).
        # The server opens c's stream first (a refused open must not cost a
        # live flow its place), then CLOSEs a's, then sends c's datagram.
        b.sendto(b"from b", ("127.0.0.1", lo))
        sid_b = expect_new_stream(s, b, "raw")
        expect_data(s, sid_b, b"from b", "b's datagram")
        c.sendto(b"from c", ("127.0.0.1", lo))
        sid_c = expect_new_stream(s, c, "raw")
        f = s.next_frame(t.CLOSE, "CLOSE of the least recently used flow")
        t.check_eq(f.sid, sid_a, "the evicted flow (a's, the least recently used)")
        expect_data(s, sid_c, b"from c", "c's datagram")
        s.send(f_close(sid_a))
        t.wait_log(srv, r"proxy raw: flow %s ended" % re.escape(a_addr), count=3, timeout=10)
        # b and c still have their flows.
        s.send(f_data(sid_b, b"to b") + f_data(sid_c, b"to c"))
        visitor_recv(b, b"to b", "DATA to b")
        visitor_recv(c, b"to c", "DATA to c")
        t.log("udp frames: NEW_STREAM/DATA/CLOSE/RESET/window/eviction ok")
    finally:
        for v in (a, b, c):
            v.close()

    # The session ends: the port is free at once.
    s.close()
    t.wait_for(lambda: t.udp_port_free(lo), timeout=10, what="UDP port %d free" % lo)
    t.wait_log(srv, r"proxy raw: flow \S+ ended", count=5, timeout=10,
               what="mgrokd to end b's and c's flows with the session")
    t.check(srv.alive(), "mgrokd died")


t.run(main)
