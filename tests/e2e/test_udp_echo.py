#!/usr/bin/env python3
"""UDP proxies (doc/protocol.md 5): a UDP echo service behind `mgrok udp`
answers 100 visitors at once, each getting back only its own datagrams;
datagrams of 0 to 65507 bytes cross byte for byte; a TCP and a UDP proxy
share one public port number on one session."""
import os
import random
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mgroktest as t

TOKEN = "udp-echo-token"
VISITORS = 100
PER_VISITOR = 3
SIZES = (0, 1, 1400, 9000, t.UDP_MAX)


def visitor_payloads(seed):
    """PER_VISITOR distinct datagrams per visitor, tagged with the visitor
    and its index (so no two are equal), of assorted sizes up to 2 kB."""
    rng = random.Random(seed)
    out = []
    for v in range(VISITORS):
        dgrams = []
        for k in range(PER_VISITOR):
            tag = b"visitor %03d datagram %d|" % (v, k)
            dgrams.append(tag + rng.randbytes(rng.randrange(0, 2000)))
        out.append(dgrams)
    return out


def many_visitors(env, srv):
    echo = env.udp_echo_service()
    cl = env.start_client(echo.port, srv, token=TOKEN, proto="udp", cname="mgrok-udp",
                          extra=("-v",))
    scheme, host, port, local = cl.public_lines()[0]
    t.check_eq(scheme, "udp", "scheme of the public address of `mgrok udp`")
    t.check_eq(local, "127.0.0.1:%d" % echo.port, "local address in the public line")
    t.check(srv.allow[0] <= port <= srv.allow[1], "public port in the allowed range", port=port)

    stats = t.udp_visitors(port, visitor_payloads(1), tries=6, wait=3.0)
    t.log("100 visitors: %s" % stats)
    # Every visitor address was a flow of its own: one stream each (at
    # least; a resend after an eviction would open another).
    log = srv.stderr_text()
    visitors = set(re.findall(r"proxy udp-%d stream \d+: visitor (127\.0\.0\.1:\d+)"
                              % echo.port, log))
    t.check(len(visitors) >= VISITORS, "mgrokd did not open a stream per visitor address",
            distinct_visitors=len(visitors))
    # ... and the client a socket of its own for each: the service saw as
    # many distinct sources.
    t.check(len(echo.sources) >= VISITORS, "the echo service saw fewer distinct sources than "
            "visitors", sources=len(echo.sources))

    # Sizes, from one visitor, one at a time, byte for byte.
    sock = t.udp_socket()
    try:
        sent = []
        for size in SIZES:
            data = t.payload(size + 7, size)
            got = t.udp_exchange(sock, port, data, ignore=sent)
            t.check(got == data, "a %d-byte datagram did not come back as sent" % size,
                    got_len=len(got), same_prefix=got[:32] == data[:32])
            sent.append(data)
            t.log("udp datagram of %d bytes: ok" % size)
        # One visitor, many datagrams of mixed sizes in a row: each comes back whole.
        burst = [t.payload(1000 + i, n) for i, n in enumerate((5, 65000, 0, 3, 30000, 1))]
        got = [t.udp_exchange(sock, port, d, ignore=sent + burst[:i])
               for i, d in enumerate(burst)]
        t.check(got == burst, "mixed sizes in a row", sizes=[len(g) for g in got])
    finally:
        sock.close()
    t.check(cl.alive() and srv.alive(), "mgrok or mgrokd died")


def shared_port(env, srv):
    """A TCP and a UDP proxy on the same public port number, one session."""
    tcp_svc = env.service(t.prefix_handler(b"TCP:"), name="tcp-prefix")
    udp_svc = env.udp_service(lambda data, addr: b"UDP:" + data, name="udp-prefix")
    free = [p for p in range(srv.allow[0], srv.allow[1] + 1)
            if t.port_free(p) and t.udp_port_free(p)]
    t.check(free, "no allowed port is free for both TCP and UDP", allow=srv.allow)
    port = free[0]
    conf = env.client_config(srv, [
        {"name": "web", "type": "tcp", "local": "127.0.0.1:%d" % tcp_svc.port,
         "remote_port": port},
        {"name": "dns", "type": "udp", "local": "127.0.0.1:%d" % udp_svc.port,
         "remote_port": port, "options": {"idle_timeout": 30, "max_flows": 16}},
    ], token=TOKEN, name="shared.json")
    cl = env.start_client(None, None, token=None, config=conf, lines=2, cname="mgrok-shared")
    lines = sorted(cl.public_lines())
    t.check_eq([(s, p) for s, _, p, _ in lines], [("tcp", port), ("udp", port)],
               "public lines of a TCP and a UDP proxy on one port", lines=lines)
    for i in range(5):
        msg = b"shared port %d\n" % i
        t.check_eq(t.roundtrip(port, msg), b"TCP:" + msg, "TCP reply on the shared port")
        t.check_eq(t.udp_roundtrip(port, msg), b"UDP:" + msg, "UDP reply on the shared port")
    big = t.payload(77, 300000)
    t.check(t.roundtrip(port, big) == b"TCP:" + big, "300 kB over TCP on the shared port")
    dgram = t.payload(78, 60000)
    t.check(t.udp_roundtrip(port, dgram) == b"UDP:" + dgram,
            "60000-byte datagram on the shared port")
    log = srv.stderr_text()
    sessions = {name: set(re.findall(r"session (\d+) proxy %s: %s://127\.0\.0\.1:%d\b"
                                     % (name, scheme, port), log))
                for name, scheme in (("web", "tcp"), ("dns", "udp"))}
    t.check(len(sessions["web"]) == 1 and sessions["web"] == sessions["dns"],
            "web (tcp) and dns (udp) not registered on one session on port %d" % port,
            sessions=sessions)
    t.log("tcp and udp on port %d, session %s: ok" % (port, sessions["web"]))


def main(env):
    lo = env.udp_ports(4)
    srv = env.start_server(token=TOKEN, allow=(lo, lo + 3), extra=("-v",))
    many_visitors(env, srv)
    shared_port(env, srv)
    for p in env.procs:
        t.check(p.alive(), "%s died" % p.name)
    env.check_services()


t.run(main)
