#!/usr/bin/env python3
"""UDP under adverse conditions: (a) the client cannot open sockets for new
flows (file-descriptor limit): those flows fail (RESET CONNECT_FAILED, "cannot
open a socket"), nothing else does, and the session's TCP proxy and later
UDP flows work; (b) garbage datagrams of random sizes from many source ports
crash nothing, and the proxy goes on answering a real visitor."""
import os
import random
import re
import resource
import select
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mgroktest as t

TOKEN = "udp-bad-token"
VISITORS = 10
SPARE_FDS = 2


def open_fds(pid):
    """(count, highest + 1) of the open file descriptors of pid."""
    fds = [int(x) for x in os.listdir("/proc/%d/fd" % pid)]
    return len(fds), max(fds) + 1


def no_errors(proc):
    bad = re.findall(r"^\S+ error .*$", proc.stderr_text(), re.M)
    t.check(not bad, "%s logged errors" % proc.name, lines=bad[:5])


def fd_limit(env, srv):
    echo = env.udp_echo_service()
    tcp_echo = env.echo_service()
    conf = env.client_config(srv, [
        {"name": "flaky", "type": "udp", "local": "127.0.0.1:%d" % echo.port,
         "options": {"idle_timeout": 1}},
        {"name": "web", "type": "tcp", "local": "127.0.0.1:%d" % tcp_echo.port},
    ], token=TOKEN, name="limited.json")

    # What mgrok holds once it is up, before any flow.
    probe = env.start_client(None, None, token=None, config=conf, lines=2,
                             cname="mgrok-probe", extra=("-v",))
    count, top = open_fds(probe.pid)
    probe.stop()
    limit = max(count, top) + SPARE_FDS
    t.log("mgrok holds %d descriptors (highest %d) when up: limit %d" % (count, top - 1, limit))

    def low_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    cl = env.start_client(None, None, token=None, config=conf, lines=2, cname="mgrok-limited",
                          extra=("-v",), preexec_fn=low_limit)
    t.check_eq(open_fds(cl.pid)[0], count, "descriptors of the limited mgrok when up")
    ports = {s: p for s, _, p, _ in cl.public_lines()}
    udp_port, tcp_port = ports.get("udp"), ports.get("tcp")
    t.check(udp_port and tcp_port, "a udp and a tcp public line", lines=cl.public_lines())

    socks = [t.udp_socket() for _ in range(VISITORS)]
    msgs = [b"limited visitor %d" % i for i in range(VISITORS)]
    answered = set()
    try:
        for s, m in zip(socks, msgs):
            s.sendto(m, ("127.0.0.1", udp_port))
        # Collect what comes within a bounded time (no resend: a failed flow
        # would be opened again and fail again).
        end = time.monotonic() + 3
        while len(answered) < VISITORS and time.monotonic() < end:
            r, _, _ = select.select(socks, [], [], max(0.0, end - time.monotonic()))
            for s in r:
                i = socks.index(s)
                got = s.recv(65536)
                t.check_eq(got, msgs[i], "answer to limited visitor %d" % i)
                answered.add(i)
    finally:
        for s in socks:
            s.close()
    failed = VISITORS - len(answered)
    t.log("%d of %d visitors answered under a limit of %d descriptors"
          % (len(answered), VISITORS, limit))
    t.check(0 < len(answered) < VISITORS, "with %d spare descriptors, some flows but not all "
            "should work" % SPARE_FDS, answered=sorted(answered))
    t.wait_log(cl, r"proxy flaky: cannot open a socket to 127\.0\.0\.1:%d: " % echo.port,
               count=failed, timeout=20, what="mgrok to log the flows it could not open")
    t.wait_log(srv, r"proxy flaky stream \d+: peer reset \(code 1\)", count=failed, timeout=20,
               what="mgrokd to log the streams reset with CONNECT_FAILED")
    t.check(cl.alive() and srv.alive(), "mgrok or mgrokd died when sockets ran out")

    # The flows that worked go idle and give their sockets back; then the
    # session's TCP proxy works, and so does a new UDP flow.
    t.wait_log(cl, r"proxy flaky: flow ended", count=len(answered), timeout=20,
               what="the working flows to end when idle")
    t.wait_for(lambda: open_fds(cl.pid)[0] <= count, timeout=20,
               what="mgrok to close the sockets of ended flows")
    t.echo_check(tcp_port, b"tcp on the session that ran out of sockets\n")
    t.udp_echo_check(udp_port, b"a new flow after the sockets came back\n")
    t.check(cl.alive() and srv.alive(), "mgrok or mgrokd died")
    no_errors(srv)
    t.log("fd limit: %d flows failed cleanly, TCP and a new UDP flow work" % failed)


def fresh_visitor(used_ports):
    """A visitor socket on a port not in used_ports."""
    held = []
    try:
        for _ in range(1000):
            s = t.udp_socket()
            if s.getsockname()[1] not in used_ports:
                return s
            held.append(s)  # keep it bound, so the next one gets another port
        raise t.TestFailure("no fresh UDP port for a visitor")
    finally:
        for s in held:
            s.close()


def garbage(env, srv):
    echo = env.udp_echo_service(name="udp-echo-garbage")
    conf = env.client_config(srv, [
        {"name": "target", "type": "udp", "local": "127.0.0.1:%d" % echo.port,
         "options": {"idle_timeout": 2, "max_flows": 64}},
    ], token=TOKEN, name="garbage.json")
    cl = env.start_client(None, None, token=None, config=conf, cname="mgrok-garbage")
    port = cl.public_port
    t.udp_echo_check(port, b"before the garbage\n")

    rng = random.Random(4242)
    sent = 0
    garbage_ports = set()
    for round_ in range(4):
        socks = [t.udp_socket(bufsize=1 << 16) for _ in range(64)]
        garbage_ports.update(s.getsockname()[1] for s in socks)
        for s in socks:
            for _ in range(3):
                size = rng.choice((0, 1, 2, rng.randrange(65508), t.UDP_MAX))
                try:
                    s.sendto(rng.randbytes(size), ("127.0.0.1", port))
                    sent += 1
                except OSError:
                    pass  # a full send buffer: that datagram is not sent
        for s in socks:
            s.close()
    # One source floods datagrams of the largest size: its flow runs out of
    # window or the socket buffers fill; datagrams are dropped, never queued.
    flood = t.udp_socket()
    garbage_ports.add(flood.getsockname()[1])
    try:
        for _ in range(200):
            try:
                flood.sendto(rng.randbytes(t.UDP_MAX), ("127.0.0.1", port))
                sent += 1
            except OSError:
                pass
    finally:
        flood.close()
    t.log("%d garbage datagrams sent from %d source ports" % (sent, 4 * 64 + 1))

    t.check(cl.alive() and srv.alive(), "mgrok or mgrokd died of garbage")
    for i in range(3):
        # From a port no garbage came from: a socket that drew one of those
        # would be that flow still (its late echoes included), by design.
        v = fresh_visitor(garbage_ports)
        try:
            data = b"a real visitor after the garbage %d\n" % i
            t.check_eq(t.udp_exchange(v, port, data), data, "udp echo round trip on port %d" % port)
        finally:
            v.close()
    t.check(echo.received > 10, "the garbage never reached the service",
            received=echo.received)
    t.check(cl.alive() and srv.alive(), "mgrok or mgrokd died of garbage")
    no_errors(srv)
    no_errors(cl)
    t.log("garbage: service answered %d datagrams; still answering" % echo.received)


def main(env):
    lo = env.udp_ports(6)
    srv = env.start_server(token=TOKEN, allow=(lo, lo + 5), extra=("-v",))
    with env.case("file-descriptor limit"):
        fd_limit(env, srv)
    with env.case("garbage datagrams"):
        garbage(env, srv)
    t.check(srv.alive(), "mgrokd died")
    env.check_services()


t.run(main)
