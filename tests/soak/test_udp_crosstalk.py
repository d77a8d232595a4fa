#!/usr/bin/env python3
"""UDP replies reach only the visitor they belong to, even as flows end
while the local service still owes them an answer (make soak).

mgrok gives every flow its own socket to the local service and closes it
when the flow ends (evicted by max_flows on the server, or idle).  If the
kernel hands that socket's port to the socket of a new flow while the
service's reply to the old flow is still on its way, the new socket
accepts the reply (a connected UDP socket only checks the service's
address, the same for every flow) and mgrok forwards it to the new flow's
visitor: another visitor's datagram.

20,000 visitors, each from its own port, send one datagram in bursts of
400 through a proxy with max_flows 128, to an echo that answers 20 ms
late: most flows are evicted before their answer, and their sockets'
ports come back in new flows.  A reply that never comes is fine (its flow
was evicted: UDP); a reply to the wrong visitor fails the test, with the
port both datagrams left mgrok from."""
import os
import select
import socket
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.join(HERE, "..", "e2e")]
import mgroktest as t
from soaklib import fd_count, stop_clean, wait_fds

TOKEN = "soak-udp-crosstalk"
VISITORS = 20000
BURST = 400
MAX_FLOWS = 128
IDLE = 2           # s: the proxy's idle_timeout
LATE = 0.02        # s: how late the echo answers
t.WATCHDOG = 300.0


class LateEcho:
    """A UDP echo that answers each datagram LATE seconds after it came;
    .source[payload] is the port it came from (mgrok's socket of the flow)."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, t.UDP_SOCKBUF)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.source = {}
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        due = []
        while not self._stop.is_set():
            wait = max(0.0, min(0.01, due[0][0] - time.monotonic())) if due else 0.01
            r, _, _ = select.select([self.sock], [], [], wait)
            if r:
                data, addr = self.sock.recvfrom(65536)
                with self.lock:
                    self.source[data] = addr[1]
                due.append((time.monotonic() + LATE, data, addr))
            now = time.monotonic()
            while due and due[0][0] <= now:
                _, data, addr = due.pop(0)
                try:
                    self.sock.sendto(data, addr)
                except OSError:
                    pass

    def close(self):
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()


def burst(port, first, n):
    """n visitors send one datagram each and collect what comes back for a
    while; returns (answers, wrong) with wrong a list of (sent, got)."""
    socks = [t.udp_socket(bufsize=1 << 16) for _ in range(n)]
    try:
        want = {}
        for k, s in enumerate(socks):
            want[s] = b"visitor %d on port %d" % (first + k, s.getsockname()[1])
            s.sendto(want[s], ("127.0.0.1", port))
        answers, wrong = 0, []
        end = time.monotonic() + 3 * LATE + 0.3
        while time.monotonic() < end:
            r, _, _ = select.select(socks, [], [], 0.05)
            for s in r:
                try:
                    got, source = s.recvfrom(65536)
                except OSError:
                    continue
                if source[:2] != ("127.0.0.1", port):
                    # Not the proxy: another program's late datagram to the
                    # ephemeral port this visitor was given (tests run in
                    # parallel); not crosstalk of this tunnel.
                    continue
                answers += 1
                if got != want[s]:
                    wrong.append((want[s], got))
        return answers, wrong
    finally:
        for s in socks:
            s.close()


def main(env):
    echo = LateEcho()
    try:
        port = env.udp_ports(1)
        srv = env.start_server(token=TOKEN, allow=(port, port))
        conf = env.client_config(srv, [
            {"name": "late", "type": "udp", "local": "127.0.0.1:%d" % echo.port,
             "remote_port": port, "options": {"idle_timeout": IDLE, "max_flows": MAX_FLOWS}},
        ], token=TOKEN)
        cl = env.start_client(None, None, token=None, config=conf)
        base = {p.name: fd_count(p) for p in (srv, cl)}
        answers, wrong = 0, []
        started = time.monotonic()
        for first in range(0, VISITORS, BURST):
            a, w = burst(port, first, min(BURST, VISITORS - first))
            answers += a
            wrong += w
        t.log("%d visitors in bursts of %d (max_flows %d, answers %d ms late): %d answers, "
              "%d of them to the wrong visitor, in %.1f s" % (
                  VISITORS, BURST, MAX_FLOWS, LATE * 1000, answers, len(wrong),
                  time.monotonic() - started))
        with echo.lock:
            evidence = ["visitor sent %r, which left mgrok from port %s; it got %r, which "
                        "had left mgrok from port %s" % (sent, echo.source.get(sent), got,
                                                         echo.source.get(got))
                        for sent, got in wrong[:5]]
        for line in evidence:
            t.log(line)
        t.check(not wrong, "%d UDP replies went to another visitor than the one whose "
                "datagram they answer" % len(wrong), first=evidence)
        t.check(answers >= VISITORS // 20, "too few answers to say anything", answers=answers)
        wait_fds((srv, cl), base, "descriptors after the flows went idle")
        t.udp_echo_check(port, b"the last visitor")
        stop_clean((cl, srv))
    finally:
        echo.close()


t.run(main)
