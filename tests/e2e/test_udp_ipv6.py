#!/usr/bin/env python3
"""UDP over IPv6: mgrokd listens on [::1] and binds public ports on ::1, the
UDP echo service listens on [::1] (the local target is an IPv6 literal), and
visitors come from ::1.  Exits 77 (skip) only if this machine has no ::1."""
import os
import re
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mgroktest as t

TOKEN = "udp-ipv6-token"
SIZES = (0, 1, 1400, 9000, t.UDP_MAX)


def have_udp6_loopback():
    if not t.have_ipv6_loopback():
        return False
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        s.bind(("::1", 0))
        s.close()
        return True
    except OSError:
        return False


def main(env):
    lo = env.udp_ports(2, host="::1")
    srv = env.start_server(token=TOKEN, allow=(lo, lo + 1), listen_host="::1",
                           extra=("-v", "--proxy-bind", "::1"))
    echo = env.udp_echo_service(host="::1")
    local = "[::1]:%d" % echo.port
    cl = env.start_client(local, srv, token=TOKEN, proto="udp", remote_port=lo,
                          cname="mgrok-udp6", extra=("-v",))
    scheme, host, port, shown = cl.public_lines()[0]
    t.check_eq((scheme, port, shown), ("udp", lo, local), "public line of mgrok udp %s" % local,
               line=cl.stdout_lines())
    t.check(re.search(r"proxy udp-%d: udp://\[::1\]:%d\b" % (echo.port, lo), srv.stderr_text()),
            "mgrokd did not log the proxy bound on [::1]:%d" % lo,
            log_tail=srv.stderr_text()[-600:])
    # The public port is bound on ::1 only (not on 127.0.0.1).
    t.check(t.udp_port_free(lo, "127.0.0.1"), "the public port is bound on IPv4 too")

    sock = t.udp_socket("::1")
    vaddr = sock.getsockname()
    try:
        sent = []
        for size in SIZES:
            data = t.payload(size + 61, size)
            got = t.udp_exchange(sock, port, data, host="::1", ignore=sent)
            t.check(got == data, "a %d-byte datagram over IPv6 did not come back as sent" % size,
                    got_len=len(got), same_prefix=got[:32] == data[:32])
            sent.append(data)
        t.log("IPv6 datagrams of %s bytes: ok" % (SIZES,))
    finally:
        sock.close()
    t.check(re.search(r"stream \d+: visitor \[::1\]:%d\b" % vaddr[1], srv.stderr_text()),
            "mgrokd did not log the IPv6 visitor [::1]:%d" % vaddr[1],
            log_tail=srv.stderr_text()[-600:])

    # Several IPv6 visitors at once, each getting only its own answers.
    payloads = [[b"v6 visitor %02d|" % v + t.payload(v, 300 + 17 * v)] for v in range(20)]
    stats = t.udp_visitors(port, payloads, host="::1", tries=6, wait=2.0)
    t.log("20 IPv6 visitors: %s" % stats)
    t.check(all(a[0] == "::1" for a in echo.sources),
            "the echo service got datagrams from somewhere else than ::1",
            sources=sorted(echo.sources)[:5])

    # Without --proxy-bind, public ports are bound on the listen host: [::1].
    lo2 = env.udp_ports(1, host="::1")
    srv2 = env.start_server(token=TOKEN, allow=(lo2, lo2), listen_host="::1",
                            name="mgrokd-default-bind")
    cl2 = env.start_client(local, srv2, token=TOKEN, proto="udp", cname="mgrok-udp6-default")
    t.check_eq(cl2.public_port, lo2, "public port of the second server")
    t.udp_echo_check(lo2, b"default bind on the listen host [::1]\n", host="::1")
    t.check(t.udp_port_free(lo2, "127.0.0.1"), "the default bind includes IPv4")
    t.log("default proxy bind of a server on [::1]: ok")

    for p in (srv, cl, srv2, cl2):
        t.check(p.alive(), "%s died" % p.name)
    env.check_services()


if not have_udp6_loopback():
    print("SKIP: ::1 is not available on this machine (no IPv6 loopback)")
    sys.exit(77)
t.run(main)
