"""Visitors: what connects to a tunnel's public port, over TCP and over UDP
(doc/protocol.md 5), and a visitor that keeps echoing in the background."""

import select
import socket
import threading
import time

from .checks import DEADLINE, TestFailure, check, check_eq, log, short_repr
from .payloads import payload
from .services import UDP_MAX, UDP_SOCKBUF, recv_all


def connect(port, host="127.0.0.1", timeout=DEADLINE, source=None):
    """A visitor connection, retried for a moment if refused (the port is
    bound before the client prints its line, so that is only a safety net).
    source: the local address to connect from (e.g. "127.0.0.2")."""
    end = time.monotonic() + 10
    while True:
        try:
            s = socket.create_connection((host, port), timeout=timeout,
                                         source_address=(source, 0) if source else None)
            s.settimeout(timeout)
            return s
        except ConnectionRefusedError:
            if time.monotonic() > end:
                raise
            time.sleep(0.1)


def roundtrip(port, data, host="127.0.0.1", timeout=DEADLINE):
    """Sends data, half-closes, returns everything received until EOF."""
    s = connect(port, host, timeout)
    try:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        return recv_all(s)
    finally:
        s.close()


def echo_check(port, data=b"hello through the tunnel\n", host="127.0.0.1", what="echo"):
    got = roundtrip(port, data, host)
    check_eq(got, data, "%s round trip on port %d" % (what, port))


# ---- UDP (doc/protocol.md 5) -------------------------------------------------


def udp_socket(host="127.0.0.1", bufsize=UDP_SOCKBUF):
    """A visitor's UDP socket bound to host on a port of the kernel's choice
    (so every socket is a distinct visitor address)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_DGRAM)
    for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
        try:
            s.setsockopt(socket.SOL_SOCKET, opt, bufsize)
        except OSError:
            pass
    s.bind((host, 0))
    return s


def udp_exchange(sock, port, data, host="127.0.0.1", tries=5, wait=2.0, ignore=()):
    """Sends data from sock to host:port and returns the first datagram that
    comes back and is not in ignore (late answers to earlier requests).
    Sends again, up to tries times in all, when nothing came within wait
    seconds (UDP may lose a datagram); fails if nothing ever came."""
    ignore = set(ignore) - {data}
    for attempt in range(tries):
        sock.sendto(data, (host, port))
        end = time.monotonic() + wait
        while True:
            left = end - time.monotonic()
            if left <= 0:
                break
            r, _, _ = select.select([sock], [], [], left)
            if not r:
                break
            try:
                got = sock.recv(UDP_MAX + 1)
            except ConnectionRefusedError:  # an ICMP error from an earlier send
                continue
            if got in ignore:
                continue
            if attempt:
                log("udp: answer to %d-byte datagram after %d resend(s)" % (len(data), attempt))
            return got
    raise TestFailure("no UDP answer from %s:%d to a %d-byte datagram after %d tries of %.1f s"
                      % (host, port, len(data), tries, wait))


def udp_roundtrip(port, data, host="127.0.0.1", tries=5, wait=2.0):
    """udp_exchange from a new visitor socket."""
    s = udp_socket(host)
    try:
        return udp_exchange(s, port, data, host, tries, wait)
    finally:
        s.close()


def udp_echo_check(port, data=b"hello through the UDP tunnel\n", host="127.0.0.1", what="udp echo"):
    got = udp_roundtrip(port, data, host)
    check_eq(got, data, "%s round trip on port %d" % (what, port))


def udp_visitors(port, payloads, host="127.0.0.1", tries=5, wait=3.0):
    """Many visitors at once: payloads[i] is the list of datagrams (all
    distinct, across visitors too) of visitor i, each from its own socket.
    Every visitor sends all of its datagrams, then all answers are collected;
    an echo service behind port must send each back to its sender only.
    Datagrams still unanswered after wait seconds are sent again, up to tries
    rounds in all.  Fails at once on a datagram that is not one of the
    visitor's own (naming whose it is), and if any stays unanswered.
    Returns a dict of counts (sent, resent, received, duplicates)."""
    owner = {}
    for i, dgrams in enumerate(payloads):
        for d in dgrams:
            check(d not in owner, "udp_visitors: the same datagram for visitors %s and %d"
                  % (owner.get(d), i))
            owner[d] = i
    socks = [udp_socket(host) for _ in payloads]
    index = {s.fileno(): i for i, s in enumerate(socks)}
    missing = [set(d) for d in payloads]
    stats = {"sent": 0, "resent": 0, "received": 0, "duplicates": 0, "rounds": 0}
    try:
        for rnd in range(tries):
            stats["rounds"] = rnd + 1
            for i, s in enumerate(socks):
                for d in payloads[i]:
                    if d in missing[i]:
                        s.sendto(d, (host, port))
                        stats["sent"] += 1
                        stats["resent"] += rnd > 0
            end = time.monotonic() + wait
            while any(missing) and time.monotonic() < end:
                r, _, _ = select.select(socks, [], [], max(0.0, end - time.monotonic()))
                for s in r:
                    i = index[s.fileno()]
                    try:
                        got = s.recv(UDP_MAX + 1)
                    except ConnectionRefusedError:
                        continue
                    stats["received"] += 1
                    if got not in owner:
                        raise TestFailure("visitor %d (%s) received a datagram nobody sent "
                                          "(%d bytes: %s)" % (i, s.getsockname(), len(got),
                                                              short_repr(got[:48])))
                    check(owner[got] == i, "visitor %d received visitor %d's datagram"
                          % (i, owner.get(got)), length=len(got), start=got[:48])
                    if got in missing[i]:
                        missing[i].discard(got)
                    else:
                        stats["duplicates"] += 1
            if not any(missing):
                return stats
            log("udp_visitors: round %d: %d datagram(s) of %d visitor(s) unanswered" %
                (rnd + 1, sum(len(m) for m in missing), sum(1 for m in missing if m)))
        left = [(i, len(m)) for i, m in enumerate(missing) if m]
        raise TestFailure("%d visitor(s) still miss answers after %d rounds of %.1f s "
                          "(visitor, datagrams missing): %s" % (len(left), tries, wait, left[:20]))
    finally:
        for s in socks:
            s.close()


# ---- a healthy visitor, in the background ------------------------------------


class EchoLoop:
    """A healthy visitor that keeps echoing through a tunnel from a thread:
    every interval seconds a new connection to port sends a payload of a
    new size and must get exactly it back.  .rounds counts the good round
    trips; .errors holds what went wrong (the test checks it at the end)."""

    def __init__(self, port, interval=0.5, host="127.0.0.1", timeout=20):
        self.port = port
        self.interval = interval
        self.host = host
        self.timeout = timeout
        self.rounds = 0
        self.errors = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        i = 0
        while not self._stop.is_set():
            i += 1
            data = payload(900000 + i, 1 + (i * 7919) % 65536)
            try:
                got = roundtrip(self.port, data, self.host, self.timeout)
                if got != data:
                    self.errors.append("round %d: sent %d bytes, got %d back (%s)"
                                       % (i, len(data), len(got),
                                          "a prefix" if data.startswith(got) else "different"))
                else:
                    self.rounds += 1
            except (OSError, TestFailure) as e:
                self.errors.append("round %d: %r" % (i, e))
            self._stop.wait(self.interval)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=self.timeout + 5)

    def check(self, what):
        """Stops the loop; fails unless every round trip was exact and
        there was at least one."""
        self.stop()
        check(not self.errors, "the healthy tunnel failed during %s (%d good round trips)"
              % (what, self.rounds), errors=self.errors[:5])
        check(self.rounds > 0, "no round trip through the healthy tunnel during %s" % what)
        return self.rounds
