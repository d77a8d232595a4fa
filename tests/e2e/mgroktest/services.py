"""Test services: the "local" side behind the tunnel, TCP and UDP."""

import hashlib
import select
import socket
import threading

from .checks import DEADLINE, TestFailure
from .payloads import CHUNK, pattern

UDP_MAX = 65507  # the largest datagram a UDP proxy carries (IPv4's limit)
UDP_SOCKBUF = 4 << 20


def recv_all(sock, limit=1 << 30):
    """Reads until EOF; returns the bytes."""
    parts, n = [], 0
    while True:
        b = sock.recv(CHUNK)
        if not b:
            return b"".join(parts)
        parts.append(b)
        n += len(b)
        if n > limit:
            raise TestFailure("more than %d bytes received" % limit)


class Service:
    """A threaded TCP server on 127.0.0.1 (or ::1) that runs handler(conn)
    for each connection, in its own thread, and closes the connection after.
    Errors of handlers are collected in .errors; .count counts connections."""

    def __init__(self, handler, host="127.0.0.1", port=0, name="service"):
        self.handler = handler
        self.name = name
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(512)
        self.host = host
        self.port = self.sock.getsockname()[1]
        self.errors = []
        self.count = 0
        self._lock = threading.Lock()
        self._stop = False
        self._conns = set()
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()

    def _accept_loop(self):
        while not self._stop:
            try:
                r, _, _ = select.select([self.sock], [], [], 0.2)
            except (OSError, ValueError):
                return
            if not r:
                continue
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            conn.settimeout(DEADLINE)
            with self._lock:
                self.count += 1
                self._conns.add(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        try:
            self.handler(conn)
        except Exception as e:  # reported by the test through .errors
            with self._lock:
                self.errors.append(e)
        finally:
            with self._lock:
                self._conns.discard(conn)
            conn.close()

    def close(self):
        self._stop = True
        self._thread.join(timeout=5)
        self.sock.close()
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def echo_handler(conn):
    """Echoes until EOF, then closes."""
    while True:
        b = conn.recv(CHUNK)
        if not b:
            break
        conn.sendall(b)
    conn.shutdown(socket.SHUT_WR)


def hash_handler(conn):
    """Reads until EOF, replies with the hex SHA-256 of what it got, closes."""
    h = hashlib.sha256()
    while True:
        b = conn.recv(CHUNK)
        if not b:
            break
        h.update(b)
    conn.sendall(h.hexdigest().encode())


def prefix_handler(prefix):
    """Reads until EOF, replies prefix + everything it got, closes."""
    def handler(conn):
        conn.sendall(prefix + recv_all(conn))
    return handler


def source_handler(total, seed):
    """Sends total bytes of pattern(seed), then closes."""
    def handler(conn):
        for chunk in pattern(seed, total):
            conn.sendall(chunk)
    return handler


class UdpService:
    """A UDP server on host:port (0: the kernel's choice) that answers each
    datagram with handler(data, addr) (None: no answer), from one thread.
    .received counts datagrams, .sources holds the sender addresses,
    .errors the handler's exceptions."""

    def __init__(self, handler, host="127.0.0.1", port=0, name="udp-service"):
        self.handler = handler
        self.name = name
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, opt, UDP_SOCKBUF)
            except OSError:
                pass
        self.sock.bind((host, port))
        self.host = host
        self.port = self.sock.getsockname()[1]
        self.received = 0
        self.sources = set()
        self.errors = []
        self._lock = threading.Lock()
        self._stop = False
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self):
        while not self._stop:
            try:
                r, _, _ = select.select([self.sock], [], [], 0.2)
            except (OSError, ValueError):
                return
            if not r:
                continue
            try:
                data, addr = self.sock.recvfrom(65536)
            except OSError:
                continue
            with self._lock:
                self.received += 1
                self.sources.add(addr[:2])
            try:
                reply = self.handler(data, addr)
                if reply is not None:
                    self.sock.sendto(reply, addr)
            except Exception as e:  # reported by the test through .errors
                with self._lock:
                    self.errors.append(e)

    def close(self):
        self._stop = True
        self._thread.join(timeout=5)
        self.sock.close()


def udp_echo_handler(data, addr):
    return data
