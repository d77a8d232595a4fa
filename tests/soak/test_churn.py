#!/usr/bin/env python3
"""Connection churn (make soak): nothing leaks per connection or per flow.

TCP: 20,000 short connections through the tunnel, 200 at a time; each
sends a small unique payload, half-closes, reads the echo until EOF, checks
it and closes.  Afterwards the number of open descriptors of mgrokd and
mgrok (/proc/PID/fd) must come back to what it was before any connection,
exactly, and their VmRSS must stay within RSS_SLACK of what it was after a
warm-up round of 1,000 connections.  Then 4,000 visitors that end
abruptly (a reset right after sending, a close without reading, a close
before sending, a reset half-way through the echo) and 1,000 to a proxy
whose local service is down: the descriptors must come back again.

UDP: 5,000 flows, each from its own source port, through a proxy with a
small max_flows and idle_timeout; each flow's datagram is echoed back to
it.  Once the flows have gone idle, the descriptors of both programs must
be back to their baseline (the client holds a socket per flow)."""
import hashlib
import os
import select
import socket
import sys
import struct
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.join(HERE, "..", "e2e")]
import mgroktest as t
from soaklib import FdPeak, fd_count, mib, rss, sanitized, stop_clean, wait_fds

TOKEN = "soak-churn"
WARMUP = 1000
CONNECTIONS = 20000
CONCURRENCY = 200
RSS_SLACK = 8 << 20         # bytes over the value after the warm-up

FLOWS = 5000
BATCH = 50                  # flows at once: fewer than MAX_FLOWS, so none is evicted mid-answer
MAX_FLOWS = 64
IDLE = 2                    # s: the udp proxy's idle_timeout
t.WATCHDOG = 480.0


# ---- TCP churn -----------------------------------------------------------------


def message(i):
    return b"connection %d %s\n" % (i, hashlib.sha256(b"%d" % i).hexdigest().encode())


def one_connection(port, i):
    data = message(i)
    s = socket.create_connection(("127.0.0.1", port), timeout=t.DEADLINE)
    try:
        s.settimeout(t.DEADLINE)
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        got = t.recv_all(s, limit=4096)
    finally:
        s.close()
    if got != data:
        raise t.TestFailure("echo of connection %d: expected %r, got %r" % (i, data, got[:200]))


def churn(port, first, count, what, fn=one_connection):
    """count connections (numbered from first), CONCURRENCY at a time, each
    fn(port, i); fails with the first errors if any connection failed."""
    lock = threading.Lock()
    state = {"next": first, "done": 0}
    errors = []
    end = first + count

    def worker():
        while True:
            with lock:
                i = state["next"]
                if i >= end:
                    return
                state["next"] += 1
            try:
                fn(port, i)
            except Exception as e:
                with lock:
                    errors.append("connection %d: %r" % (i, e))
            else:
                with lock:
                    state["done"] += 1

    started = time.monotonic()
    threads = [threading.Thread(target=worker, daemon=True) for _ in range(CONCURRENCY)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=t.WATCHDOG)
    elapsed = time.monotonic() - started
    t.check(not any(th.is_alive() for th in threads), "%s: connections still running" % what)
    t.check(not errors, "%s: %d of %d connections failed" % (what, len(errors), count),
            first_errors=errors[:10])
    t.check_eq(state["done"], count, "%s: connections echoed" % what)
    t.log("%s: %d connections done in %.1f s (%.0f/s), %d at a time"
          % (what, count, elapsed, count / elapsed, CONCURRENCY))


def tcp_churn(env, srv, cl, port):
    procs = (srv, cl)
    base_fds = {p.name: fd_count(p) for p in procs}
    base_rss = {p.name: rss(p) for p in procs}
    t.log("tcp: before: fds %s, rss %s" % (base_fds, {k: mib(v) for k, v in base_rss.items()}))

    churn(port, 0, WARMUP, "tcp warm-up")
    wait_fds(procs, base_fds, "tcp: descriptors after the warm-up")
    warm_rss = {p.name: rss(p) for p in procs}
    t.log("tcp: after the warm-up: fds back to %s, rss %s"
          % (base_fds, {k: mib(v) for k, v in warm_rss.items()}))

    peak = FdPeak(procs)
    try:
        churn(port, WARMUP, CONNECTIONS, "tcp churn")
    finally:
        peaks = peak.stop()
    settle_start = time.monotonic()
    wait_fds(procs, base_fds, "tcp: descriptors after the churn")
    settled = time.monotonic() - settle_start
    after_rss = {p.name: rss(p) for p in procs}
    for p in procs:
        t.log("tcp: %s: fds %d before, peak %d during the churn, %d after (%.1f s to settle); "
              "rss %s before, %s after the warm-up, %s after the churn (%+.1f MiB)"
              % (p.name, base_fds[p.name], peaks[p.name], fd_count(p), settled,
                 mib(base_rss[p.name]), mib(warm_rss[p.name]), mib(after_rss[p.name]),
                 (after_rss[p.name] - warm_rss[p.name]) / 2 ** 20))
    for p in procs:
        if sanitized(p):
            t.log("tcp: %s is an AddressSanitizer build: its VmRSS includes the quarantine "
                  "of freed memory, so it is not held to the bound (LeakSanitizer checks "
                  "leaks at exit)" % p.name)
            continue
        t.check(after_rss[p.name] <= warm_rss[p.name] + RSS_SLACK,
                "%s's VmRSS grew by more than %s over %d connections" % (
                    p.name, mib(RSS_SLACK), CONNECTIONS),
                after_warmup=mib(warm_rss[p.name]), after_churn=mib(after_rss[p.name]))
    t.log("the tunnel is still fine after the churn")
    t.echo_check(port, b"after %d connections\n" % (WARMUP + CONNECTIONS))


# ---- TCP: visitors that do not wait for the end, a service that is down ----------

RUDE = 4000          # connections that end abruptly, four kinds in turn
REFUSED = 1000       # connections to a proxy whose local service is down


def rude_connection(port, i):
    """Kind i % 4: reset right after sending; close after sending without
    reading; connect and close at once; reset half-way through reading."""
    data = message(i) * 64
    s = socket.create_connection(("127.0.0.1", port), timeout=t.DEADLINE)
    try:
        s.settimeout(t.DEADLINE)
        kind = i % 4
        if kind == 2:
            return
        s.sendall(data)
        if kind == 3:
            s.shutdown(socket.SHUT_WR)
            got = b""
            while len(got) < 100:
                b = s.recv(100)
                if not b:
                    break
                got += b
            t.check(data.startswith(got), "echo of rude connection %d" % i)
        if kind in (0, 3):
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    finally:
        s.close()


def refused_connection(port, i):
    """The client cannot reach its local service: the visitor's connection
    ends (EOF or reset) without a byte.  The reset may come so soon that
    connect() reports it (Python's connect with a timeout reads SO_ERROR
    after the handshake)."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=t.DEADLINE)
    except ConnectionResetError:
        return
    try:
        s.settimeout(t.DEADLINE)
        try:
            s.sendall(message(i))
            got = t.recv_all(s, limit=4096)
        except (ConnectionResetError, BrokenPipeError):
            got = b""
        t.check_eq(got, b"", "bytes from a proxy whose service is down (connection %d)" % i)
    finally:
        s.close()


def tolerant_echo(conn):
    """The echo, for visitors that go away in the middle."""
    try:
        t.echo_handler(conn)
    except (ConnectionResetError, BrokenPipeError):
        pass


def tcp_rude(env, srv, cl, rude_port, dead_port):
    procs = (srv, cl)
    base_fds = {p.name: fd_count(p) for p in procs}
    base_rss = {p.name: rss(p) for p in procs}
    peak = FdPeak(procs)
    try:
        churn(rude_port, 0, RUDE, "tcp rude visitors", rude_connection)
        churn(dead_port, 0, REFUSED, "tcp to a service that is down", refused_connection)
    finally:
        peaks = peak.stop()
    wait_fds(procs, base_fds, "tcp: descriptors after the rude visitors")
    for p in procs:
        t.log("tcp rude: %s: fds %d before, peak %d, %d after; rss %s before, %s after" % (
            p.name, base_fds[p.name], peaks[p.name], fd_count(p), mib(base_rss[p.name]),
            mib(rss(p))))
    t.echo_check(rude_port, b"after the rude visitors\n")


# ---- UDP flows -----------------------------------------------------------------


def new_visitor_sockets(n, used):
    """n UDP sockets on 127.0.0.1, each on a port none of used had; adds them."""
    socks, spare = [], []
    try:
        while len(socks) < n:
            s = t.udp_socket(bufsize=1 << 16)
            port = s.getsockname()[1]
            if port in used:
                spare.append(s)  # held until the batch is built, so the kernel picks another
                t.check(len(spare) < 10000, "no fresh UDP source ports left")
                continue
            used.add(port)
            socks.append(s)
    finally:
        for s in spare:
            s.close()
    return socks


def udp_batch(port, socks, first, tries=5, wait=2.0):
    """Every socket sends its own datagram and must get exactly it back."""
    want = {s.fileno(): b"flow %d from port %d" % (first + k, s.getsockname()[1])
            for k, s in enumerate(socks)}
    by_fd = {s.fileno(): s for s in socks}
    missing = set(want)
    resent = 0
    for attempt in range(tries):
        for fd in missing:
            by_fd[fd].sendto(want[fd], ("127.0.0.1", port))
        resent += len(missing) if attempt else 0
        end = time.monotonic() + wait
        while missing and time.monotonic() < end:
            r, _, _ = select.select([by_fd[fd] for fd in missing], [], [],
                                    max(0.0, end - time.monotonic()))
            for s in r:
                try:
                    got = s.recv(t.UDP_MAX + 1)
                except ConnectionRefusedError:
                    continue
                t.check_eq(got, want[s.fileno()], "datagram echoed to flow port %d"
                           % s.getsockname()[1])
                missing.discard(s.fileno())
        if not missing:
            return resent
    raise t.TestFailure("%d of %d flows got no answer after %d tries" % (len(missing),
                                                                      len(socks), tries))


def udp_flows(env, srv, cl, port):
    procs = (srv, cl)
    base_fds = {p.name: fd_count(p) for p in procs}
    base_rss = {p.name: rss(p) for p in procs}
    used = set()
    resent = 0
    peak = FdPeak(procs, interval=0.05)
    started = time.monotonic()
    try:
        for first in range(0, FLOWS, BATCH):
            socks = new_visitor_sockets(min(BATCH, FLOWS - first), used)
            try:
                resent += udp_batch(port, socks, first)
            finally:
                for s in socks:
                    s.close()
    finally:
        peaks = peak.stop()
    elapsed = time.monotonic() - started
    t.check_eq(len(used), FLOWS, "distinct source ports")
    t.log("udp: %d flows from distinct source ports answered in %.1f s (%d datagrams resent)"
          % (FLOWS, elapsed, resent))
    settle_start = time.monotonic()
    wait_fds(procs, base_fds, "udp: descriptors after the flows went idle")
    settled = time.monotonic() - settle_start
    for p in procs:
        t.log("udp: %s: fds %d before, peak %d, %d after (%.1f s after the last flow, "
              "idle_timeout %d s); rss %s before, %s after" % (
                  p.name, base_fds[p.name], peaks[p.name], fd_count(p), settled, IDLE,
                  mib(base_rss[p.name]), mib(rss(p))))
    t.udp_echo_check(port, b"after %d flows" % FLOWS)


def main(env):
    tcp_port, rude_port, dead_port = env.ports.take(), env.ports.take(), env.ports.take()
    udp_port = env.udp_ports(1)
    echo = env.echo_service()
    rude_echo = env.service(tolerant_echo, name="tolerant-echo")
    uecho = env.udp_echo_service()
    down = env.ports.take()  # nothing listens there
    srv = env.start_server(token=TOKEN, allow=(tcp_port, udp_port))
    conf = env.client_config(srv, [
        {"name": "churn", "type": "tcp", "local": "127.0.0.1:%d" % echo.port,
         "remote_port": tcp_port},
        {"name": "rude", "type": "tcp", "local": "127.0.0.1:%d" % rude_echo.port,
         "remote_port": rude_port},
        {"name": "down", "type": "tcp", "local": "127.0.0.1:%d" % down,
         "remote_port": dead_port},
        {"name": "flows", "type": "udp", "local": "127.0.0.1:%d" % uecho.port,
         "remote_port": udp_port, "options": {"idle_timeout": IDLE, "max_flows": MAX_FLOWS}},
    ], token=TOKEN)
    cl = env.start_client(None, None, token=None, config=conf, lines=4)
    tcp_churn(env, srv, cl, tcp_port)
    tcp_rude(env, srv, cl, rude_port, dead_port)
    udp_flows(env, srv, cl, udp_port)
    t.check(uecho.received >= FLOWS + 1, "datagrams the UDP echo service got",
            received=uecho.received)
    t.log("udp: the echo service got %d datagrams from %d client sockets"
          % (uecho.received, len(uecho.sources)))
    env.check_services()
    t.check_eq(echo.count, WARMUP + CONNECTIONS + 1, "connections the echo service accepted")
    for p in (srv, cl):
        t.check(p.alive(), "%s died" % p.name)
    stop_clean((cl, srv))


t.run(main)
