"""Ports: a block reserved for each test, and what the kernel says about a
port (free, closed, its queues)."""

import fcntl
import os
import socket
import tempfile

from .checks import TestFailure


def _port_area():
    """Ports outside the kernel's ephemeral range, so that no outgoing
    connection of a parallel test lands on a port reserved here."""
    lo, hi = 32768, 60999
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split())
    except (OSError, ValueError):
        pass
    if lo - 12000 >= 4000:
        return 12000, lo - 1
    return hi + 1, 65535


def port_free(port, family=socket.AF_INET, host="127.0.0.1"):
    s = socket.socket(family, socket.SOCK_STREAM)
    try:
        s.bind((host, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


class PortBlock:
    """A block of consecutive TCP ports reserved for this process.

    The reservation is a flock() on a file named after the block in a shared
    temporary directory, held until the process ends, so parallel tests never
    get the same block; each port is also checked to be free right now.
    The starting block is derived from the pid, so tests rarely even try the
    same block."""

    SIZE = 24

    def __init__(self, size=SIZE):
        self.size = size
        lockdir = os.path.join(tempfile.gettempdir(), "mgrok-e2e-ports")
        os.makedirs(lockdir, exist_ok=True)
        area_lo, area_hi = _port_area()
        nblocks = (area_hi - area_lo + 1) // size
        first = (os.getpid() * 7919) % nblocks
        for i in range(nblocks):
            base = area_lo + ((first + i) % nblocks) * size
            lock = open(os.path.join(lockdir, "%d.lock" % base), "w")
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                lock.close()
                continue
            if all(port_free(p) for p in range(base, base + size)):
                self.base, self._lock, self._next = base, lock, base
                return
            lock.close()
        raise TestFailure("no free block of %d ports" % size)

    def take(self, n=1):
        """n consecutive ports of the block; returns the first."""
        if self._next + n > self.base + self.size:
            raise TestFailure("port block exhausted (%d ports)" % self.size)
        p = self._next
        self._next += n
        return p

    def take_range(self, n):
        """(lo, hi) of n consecutive ports, for --allow-ports LO-HI."""
        lo = self.take(n)
        return lo, lo + n - 1

    def release(self):
        if self._lock:
            self._lock.close()
            self._lock = None


def port_closed(port, host="127.0.0.1"):
    """True if nothing accepts connections on port."""
    try:
        socket.create_connection((host, port), timeout=5).close()
        return False
    except ConnectionRefusedError:
        return True
    except ConnectionResetError:
        # Accepted by a listener that is going away (its session is
        # closing): not closed yet, ask again.
        return False


def have_ipv6_loopback():
    if not socket.has_ipv6:
        return False
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    except OSError:
        return False
    try:
        s.bind(("::1", 0))
        return True
    except OSError:
        return False
    finally:
        s.close()


def udp_port_free(port, host="127.0.0.1"):
    """True if a UDP socket can be bound to host:port right now."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_DGRAM)
    try:
        s.bind((host, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


# ---- the kernel's queues of a TCP socket ------------------------------------

TCP_LISTEN, TCP_TIME_WAIT = 0x0A, 0x06  # states as /proc/net/tcp writes them


def tcp_queues(local_port, remote_port=0):
    """(send queue, receive queue) of the TCP socket on local_port connected
    to remote_port, as the kernel counts them in /proc/net/tcp{,6}: bytes
    not yet acknowledged by the peer, and bytes received that the program
    has not read.  remote_port 0 means the listening socket on local_port,
    whose receive queue is the connections it has not accepted yet.  None
    if there is no such socket (sockets in TIME_WAIT do not count)."""
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            local, remote, state = fields[1], fields[2], int(fields[3], 16)
            if int(local.rsplit(":", 1)[1], 16) != local_port or \
                    int(remote.rsplit(":", 1)[1], 16) != remote_port:
                continue
            if state == TCP_TIME_WAIT or (state == TCP_LISTEN) != (remote_port == 0):
                continue
            tx, rx = fields[4].split(":")
            return int(tx, 16), int(rx, 16)
    return None


def accept_backlog(port):
    """Connections that have reached the listening socket on port and that
    its program has not accepted yet; None if nothing listens on port."""
    queues = tcp_queues(port)
    return None if queues is None else queues[1]
