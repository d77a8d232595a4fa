"""Shared helpers for mgrok's end-to-end tests (Python 3, stdlib only).

Every test is a script that calls ``run(main)``; ``main`` gets an ``Env``
that owns a temporary directory, a block of TCP ports reserved for this test
only, and every process and service the test starts.  Whatever happens, the
Env kills what it started; when the test fails it prints the tail of every
program's log so that CI output shows why.

Exit codes follow the automake convention: 0 pass, 1 fail (a missing program
is a failure too: the tests never skip).

Environment (set by ``make check``; defaults suit a run from the source tree):
  MGROK_BUILDDIR    the programs are $MGROK_BUILDDIR/core/mgrokd and core/mgrok
  MGROK_PLUGIN_DIR  plugins ($MGROK_BUILDDIR/plugins/.libs)
  MGROK_SRCDIR      the source tree (example configs in etc/)
"""

import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import random
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
SRCDIR = os.environ.get("MGROK_SRCDIR") or os.path.normpath(os.path.join(HERE, "..", ".."))
BUILDDIR = os.environ.get("MGROK_BUILDDIR") or SRCDIR
PLUGIN_DIR = os.environ.get("MGROK_PLUGIN_DIR") or os.path.join(BUILDDIR, "plugins", ".libs")
MGROKD = os.path.join(BUILDDIR, "core", "mgrokd")
MGROK = os.path.join(BUILDDIR, "core", "mgrok")

DEADLINE = 60.0  # generous: only there so that nothing hangs forever
WATCHDOG = 170.0  # the whole test, in case something blocks where no deadline reaches

PUBLIC_LINE = re.compile(r"^(\w+)://(.+):(\d+) -> (\S+)$")


# ---- failures ----------------------------------------------------------------


class TestFailure(AssertionError):
    pass


def log(*args):
    print("[%s]" % time.strftime("%H:%M:%S"), *args, flush=True)


def check(cond, msg, **context):
    """Fails the test with msg and the given context unless cond holds."""
    if not cond:
        details = "".join("\n    %s = %s" % (k, _short(v)) for k, v in context.items())
        raise TestFailure(msg + details)


def check_eq(actual, expected, msg, **context):
    check(actual == expected, "%s: expected %s, got %s" % (msg, _short(expected), _short(actual)),
          **context)


def _short(v, limit=300):
    text = repr(v)
    return text if len(text) <= limit else text[:limit] + "... (%d chars)" % len(text)


def wait_for(cond, timeout=DEADLINE, what="condition", interval=0.05):
    """Polls cond() until it returns something true, and returns that.
    Fails the test after timeout seconds."""
    end = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > end:
            raise TestFailure("timed out after %.0f s waiting for %s" % (timeout, what))
        time.sleep(interval)


# ---- ports -------------------------------------------------------------------


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


# ---- processes ---------------------------------------------------------------


class Proc:
    """A program under test in its own process group.

    stderr goes to NAME.err in the test's directory; stdout to NAME.out, and
    its lines are also collected in .lines as they come (mgrok prints its
    public address there)."""

    def __init__(self, name, argv, workdir, env=None, preexec_fn=None):
        self.name = name
        self.argv = [str(a) for a in argv]
        self.err_path = os.path.join(workdir, name + ".err")
        self.out_path = os.path.join(workdir, name + ".out")
        self.lines = []
        self._lines_lock = threading.Lock()
        self._err = open(self.err_path, "wb")
        self._out = open(self.out_path, "wb")
        full_env = dict(os.environ)
        full_env.update(env or {})
        log("start %s: %s" % (name, " ".join(self.argv)))
        self.popen = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                      stderr=self._err, env=full_env, start_new_session=True,
                                      preexec_fn=preexec_fn)
        self.pid = self.popen.pid
        self._reader = threading.Thread(target=self._read_stdout, daemon=True)
        self._reader.start()

    def _read_stdout(self):
        for raw in iter(self.popen.stdout.readline, b""):
            self._out.write(raw)
            self._out.flush()
            with self._lines_lock:
                self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
        self.popen.stdout.close()

    def stdout_lines(self):
        with self._lines_lock:
            return list(self.lines)

    def alive(self):
        return self.popen.poll() is None

    @property
    def returncode(self):
        return self.popen.poll()

    def stderr_text(self):
        self._err.flush()
        with open(self.err_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stderr_size(self):
        """Bytes in the stderr log so far (a mark for stderr_since)."""
        self._err.flush()
        return os.path.getsize(self.err_path)

    def stderr_since(self, mark):
        """The stderr log from byte offset mark on."""
        self._err.flush()
        with open(self.err_path, "rb") as f:
            f.seek(mark)
            return f.read().decode("utf-8", "replace")

    def stdout_text(self):
        self._reader.join(timeout=5)
        return "\n".join(self.stdout_lines())

    def wait_exit(self, timeout=DEADLINE):
        """Waits for the program to exit by itself; returns its exit code."""
        try:
            code = self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise TestFailure("%s did not exit within %.0f s" % (self.name, timeout))
        self._reader.join(timeout=5)
        return code

    def send_signal(self, sig):
        if self.alive():
            os.kill(self.pid, sig)

    def stop(self, sig=signal.SIGTERM, timeout=15):
        """Sends sig to the process group, waits up to timeout, then SIGKILLs
        the group.  Returns the exit code (negative: killed by that signal)."""
        if self.alive():
            try:
                os.killpg(self.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                log("%s ignored signal %d for %.0f s: SIGKILL" % (self.name, sig, timeout))
                self.kill_group()
        self._reader.join(timeout=5)
        return self.popen.returncode

    def kill_group(self):
        # Only while the leader is not reaped: afterwards its pid (the group
        # id) may belong to somebody else.
        if self.popen.poll() is None:
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        try:
            self.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass

    def tail(self, n=60):
        out = []
        for label, path in (("stderr", self.err_path), ("stdout", self.out_path)):
            try:
                with open(path, "rb") as f:
                    lines = f.read().decode("utf-8", "replace").splitlines()
            except OSError:
                continue
            if lines:
                out.append("----- %s %s (last %d of %d lines) -----" %
                           (self.name, label, min(n, len(lines)), len(lines)))
                out.extend(lines[-n:])
        status = "running" if self.alive() else "exit code %s" % self.popen.returncode
        out.insert(0, "===== %s (pid %d, %s): %s" % (self.name, self.pid, status,
                                                      " ".join(self.argv)))
        return "\n".join(out)

    def close_files(self):
        self._err.close()
        self._out.close()


class Server(Proc):
    """mgrokd; .port is its control port, .ports its allowed (lo, hi)."""

    def wait_ready(self, timeout=DEADLINE):
        def ready():
            if not self.alive():
                raise TestFailure("%s exited with code %s while starting" %
                                  (self.name, self.popen.returncode))
            return "listening on" in self.stderr_text()
        wait_for(ready, timeout, "%s to listen" % self.name)


class Client(Proc):
    """mgrok; .public_ports are the ports of its "tcp://" lines so far."""

    def wait_lines(self, count, timeout=DEADLINE):
        """Waits until stdout has count public-address lines; returns them
        parsed as (scheme, host, port, local).  Fails if mgrok exits."""
        def enough():
            got = self.public_lines()
            if len(got) >= count:
                return got
            if not self.alive():
                raise TestFailure("%s exited with code %s before printing %d public address "
                                  "line(s); stdout so far: %r" %
                                  (self.name, self.popen.returncode, count, self.stdout_lines()))
            return None
        return wait_for(enough, timeout, "%d public address line(s) from %s" % (count, self.name))

    def public_lines(self):
        out = []
        for line in self.stdout_lines():
            m = PUBLIC_LINE.match(line)
            check(m, "unexpected line on %s's stdout" % self.name, line=line)
            out.append((m.group(1), m.group(2), int(m.group(3)), m.group(4)))
        return out

    @property
    def public_port(self):
        lines = self.public_lines()
        check(lines, "%s has printed no public address" % self.name)
        return lines[-1][2]


# ---- services (the "local" side behind the tunnel) ---------------------------


CHUNK = 256 * 1024


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


def pattern(seed, total, chunk=CHUNK):
    """Deterministic pseudo-random bytes, in chunks."""
    rng = random.Random(seed)
    left = total
    while left > 0:
        n = min(chunk, left)
        yield rng.randbytes(n)
        left -= n


def pattern_digest(seed, total):
    h = hashlib.sha256()
    for chunk in pattern(seed, total):
        h.update(chunk)
    return h.hexdigest()


def payload(index, size):
    """A payload that differs for every index (and is not all one byte)."""
    return random.Random(index * 1000003 + size).randbytes(size)


# ---- visitors ------------------------------------------------------------------


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


# ---- UDP (PROTOCOL.md 5) -------------------------------------------------------

UDP_MAX = 65507  # the largest datagram a UDP proxy carries (IPv4's limit)
UDP_SOCKBUF = 4 << 20


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
                                                              _short(got[:48])))
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


def wait_log(proc, pattern, count=1, timeout=DEADLINE, what=None):
    """Polls proc's stderr until the regular expression pattern matches
    count times; returns the matches (re.findall).  Fails if proc exits
    first or after timeout seconds."""
    rx = re.compile(pattern)

    def enough():
        found = rx.findall(proc.stderr_text())
        if len(found) >= count:
            return found
        if not proc.alive():
            raise TestFailure("%s exited with code %s while waiting for %s" %
                              (proc.name, proc.returncode, what or repr(pattern)))
        return None
    return wait_for(enough, timeout, what or "%d x %r in %s's log" % (count, pattern, proc.name),
                    interval=0.1)


# ---- the wire protocol, by hand (PROTOCOL.md) ---------------------------------

MAGIC = b"GRT1"
AUTH_NONE, AUTH_TOKEN = 0x00, 0x01
HS_OK, HS_CHALLENGE, HS_DENIED, HS_UNSUPPORTED = 0, 1, 2, 3

REGISTER, NEW_STREAM, DATA, CLOSE, HEARTBEAT = 0x01, 0x02, 0x03, 0x04, 0x05
REGISTER_ACK, WINDOW_UPDATE, RESET, GO_AWAY, UNREGISTER, HELLO = 0x06, 0x07, 0x08, 0x09, 0x0A, 0x0B
FRAME_NAMES = {REGISTER: "REGISTER", NEW_STREAM: "NEW_STREAM", DATA: "DATA", CLOSE: "CLOSE",
               HEARTBEAT: "HEARTBEAT", REGISTER_ACK: "REGISTER_ACK",
               WINDOW_UPDATE: "WINDOW_UPDATE", RESET: "RESET", GO_AWAY: "GO_AWAY",
               UNREGISTER: "UNREGISTER", HELLO: "HELLO"}

ACK_OK, ACK_PORT_IN_USE, ACK_PORT_NOT_ALLOWED, ACK_NAME_IN_USE = 0, 1, 2, 3
ACK_UNKNOWN_PROXY_TYPE, ACK_INVALID, ACK_LIMIT, ACK_FORBIDDEN = 4, 5, 6, 7
GOAWAY_NORMAL, GOAWAY_PROTOCOL_ERROR, GOAWAY_HEARTBEAT_TIMEOUT = 0, 1, 2
GOAWAY_REPLACED, GOAWAY_INTERNAL = 3, 4
RESET_CANCEL, RESET_CONNECT_FAILED, RESET_REFUSED, RESET_FLOW_CONTROL = 0, 1, 2, 3
PROXY_TCP = 0x01
WINDOW = 262144


def u8(v):
    return struct.pack(">B", v)


def u16(v):
    return struct.pack(">H", v)


def u32(v):
    return struct.pack(">I", v)


def str8(b):
    b = b.encode() if isinstance(b, str) else b
    return u8(len(b)) + b


def str16(b):
    b = b.encode() if isinstance(b, str) else b
    return u16(len(b)) + b


def f_register(name, remote_port=0, proxy_type=PROXY_TCP, local_port=0, options=b""):
    return u8(REGISTER) + u8(proxy_type) + u16(remote_port) + u16(local_port) + str8(name) + \
        str16(options)


def f_hello(client_id, info=b""):
    return u8(HELLO) + str8(client_id) + str16(info)


def f_data(sid, data):
    return u8(DATA) + u32(sid) + str16(data)


def f_close(sid):
    return u8(CLOSE) + u32(sid)


def f_window_update(sid, inc):
    return u8(WINDOW_UPDATE) + u32(sid) + u32(inc)


def f_reset(sid, code):
    return u8(RESET) + u32(sid) + u8(code)


def f_unregister(name):
    return u8(UNREGISTER) + str8(name)


# Frames only a server sends, for a FakeServer.


def f_new_stream(sid, name, family=0, addr=b"", port=0):
    tail = u8(family) + (addr + u16(port) if family else b"")
    return u8(NEW_STREAM) + u32(sid) + str8(name) + tail


def f_new_streams(first_sid, count, name=b"nope"):
    """count NEW_STREAM frames for name with stream IDs first_sid, +2, ...
    (built by slicing, fast enough for floods of megabytes)."""
    size = len(f_new_stream(0, name))
    block = bytearray(f_new_stream(0, name) * count)
    ids = struct.pack(">%dI" % count, *range(first_sid, first_sid + 2 * count, 2))
    for k in range(4):
        block[1 + k::size] = ids[k::4]
    return bytes(block)


def f_register_ack(status, name, port=0, message=b"", proxy_type=PROXY_TCP):
    return u8(REGISTER_ACK) + u8(status) + u8(proxy_type) + u16(port) + str8(name) + \
        str16(message)


def token_proof(token, label, a, b):
    return hmac.new(token.encode(), label + a + b, hashlib.sha256).digest()


AUTH_USERS = 0x02
PROXY_UDP = 0x02


def users_proof(token, label, *parts):
    """The `users` method's HMAC: like token_proof, with the user name bound
    in (client: label || user || cnonce || snonce; server: label || snonce ||
    cnonce || user)."""
    return hmac.new(token.encode(), label + b"".join(parts), hashlib.sha256).digest()


class Frame:
    def __init__(self, type, **fields):
        self.type = type
        self.__dict__.update(fields)

    def __repr__(self):
        fields = ", ".join("%s=%r" % kv for kv in self.__dict__.items() if kv[0] != "type")
        return "%s(%s)" % (FRAME_NAMES.get(self.type, "0x%02x" % self.type), fields)


class RawSession:
    """A hand-written client: speaks the handshake and frames byte by byte,
    so tests can send what the real client never would."""

    def __init__(self, port, host="127.0.0.1", timeout=DEADLINE, source=None, sockopts=()):
        """source: the local address to connect from (any of 127.0.0.0/8
        on loopback); sockopts: (level, option, value) set before connect
        (e.g. a small SO_RCVBUF, which only takes full effect then)."""
        self.timeout = timeout
        if source is None and not sockopts:
            self.sock = socket.create_connection((host, port), timeout=timeout)
        else:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            self.sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                for level, opt, value in sockopts:
                    self.sock.setsockopt(level, opt, value)
                if source is not None:
                    self.sock.bind((source, 0))
                self.sock.settimeout(timeout)
                self.sock.connect((host, port))
            except BaseException:
                self.sock.close()
                raise
        self.sock.settimeout(timeout)
        self.buf = b""

    @classmethod
    def from_socket(cls, sock, timeout=DEADLINE):
        """A RawSession over a connected socket (one a FakeServer accepted)."""
        self = cls.__new__(cls)
        self.timeout = timeout
        self.sock = sock
        self.sock.settimeout(timeout)
        self.buf = b""
        return self

    def close(self):
        self.sock.close()

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self, n):
        """At least n bytes in the buffer, or False at EOF."""
        while len(self.buf) < n:
            b = self.sock.recv(65536)
            if not b:
                return False
            self.buf += b
        return True

    def read_exact(self, n, what="bytes"):
        if not self._fill(n):
            raise TestFailure("connection closed while reading %s (have %d of %d bytes: %r)"
                              % (what, len(self.buf), n, self.buf[:64]))
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _u8(self, what):
        return self.read_exact(1, what)[0]

    def _u16(self, what):
        return struct.unpack(">H", self.read_exact(2, what))[0]

    def _u32(self, what):
        return struct.unpack(">I", self.read_exact(4, what))[0]

    def _str8(self, what):
        return self.read_exact(self._u8(what + " length"), what)

    def _str16(self, what):
        return self.read_exact(self._u16(what + " length"), what)

    def read_eof(self, what="the server to close the connection"):
        """Everything until EOF (a reset counts as EOF)."""
        try:
            while self._fill(len(self.buf) + 1):
                pass
        except ConnectionResetError:
            pass
        except socket.timeout:
            raise TestFailure("timed out waiting for %s (received %r)" % (what, self.buf[:64]))
        out, self.buf = self.buf, b""
        return out

    # handshake

    def hs_send(self, method, payload):
        self.send(MAGIC + u8(method) + str16(payload))

    def hs_reply(self):
        status = self._u8("handshake status")
        return status, self._str16("handshake payload")

    def handshake(self, token):
        """The token method (PROTOCOL.md 2.2); checks the server's proof."""
        cnonce = os.urandom(16)
        self.hs_send(AUTH_TOKEN, cnonce)
        status, snonce = self.hs_reply()
        check_eq(status, HS_CHALLENGE, "handshake reply to the token method", payload=snonce)
        check_eq(len(snonce), 16, "length of the server nonce")
        self.send(str16(token_proof(token, b"mgrok-token-v1 client", cnonce, snonce)))
        status, proof = self.hs_reply()
        check_eq(status, HS_OK, "handshake reply to the right proof", payload=proof)
        expected = token_proof(token, b"mgrok-token-v1 server", snonce, cnonce)
        check(hmac.compare_digest(proof, expected), "wrong server proof", proof=proof.hex(),
              expected=expected.hex())
        return self

    def handshake_users(self, user, token, expect_ok=True):
        """The `users` method (auth-users plugin). With expect_ok, checks for OK
        and the server's proof and returns self; otherwise returns the
        server's (status, payload) after the proof."""
        cnonce = os.urandom(16)
        name = user.encode()
        self.hs_send(AUTH_USERS, str8(name) + cnonce)
        status, snonce = self.hs_reply()
        check_eq(status, HS_CHALLENGE, "handshake reply to the users method (user %s)" % user,
                 payload=snonce)
        check_eq(len(snonce), 16, "length of the server nonce")
        self.send(str16(users_proof(token, b"mgrok-users-v1 client", name, cnonce, snonce)))
        status, reply = self.hs_reply()
        if not expect_ok:
            return status, reply
        check_eq(status, HS_OK, "handshake reply to user %s's right proof" % user, payload=reply)
        expected = users_proof(token, b"mgrok-users-v1 server", snonce, cnonce, name)
        check(hmac.compare_digest(reply, expected), "wrong server proof (users)",
              proof=reply.hex(), expected=expected.hex())
        return self

    def hello(self, client_id, info=b""):
        """HELLO (PROTOCOL.md 3.5): the first frame after the handshake."""
        self.send(f_hello(client_id, info))
        return self

    def serve_visitor(self, port, request, reply, host="127.0.0.1"):
        """Plays the client's side of one visitor connection: a visitor
        connects to the public port and sends request; this session gets
        NEW_STREAM and the request's DATA, answers reply and CLOSE; returns
        what the visitor received until EOF."""
        v = connect(port, host)
        try:
            v.sendall(request)
            v.shutdown(socket.SHUT_WR)
            ns = self.next_frame(NEW_STREAM, "NEW_STREAM for a visitor of port %d" % port)
            got = b""
            while True:
                f = self.next_frame((DATA, CLOSE, RESET), "the visitor's data on stream %d"
                                    % ns.sid)
                check_eq(f.sid, ns.sid, "stream ID of a frame for the visitor", frame=f)
                check(f.type != RESET, "the server reset the visitor's stream", frame=f)
                if f.type == CLOSE:
                    break
                got += f.data
            check_eq(got, request, "the visitor's bytes as the session got them")
            for off in range(0, len(reply), 16384):
                self.send(f_data(ns.sid, reply[off:off + 16384]))
            self.send(f_close(ns.sid))
            return recv_all(v)
        finally:
            v.close()

    # frames

    def read_frame(self):
        """The next frame from the server, or None at EOF."""
        try:
            if not self._fill(1):
                return None
        except ConnectionResetError:
            return None
        t = self._u8("frame type")
        if t == REGISTER_ACK:
            return Frame(t, status=self._u8("status"), proxy_type=self._u8("proxy type"),
                         port=self._u16("port"), name=self._str8("name"),
                         message=self._str16("message").decode("utf-8", "replace"))
        if t == GO_AWAY:
            return Frame(t, code=self._u8("code"),
                         message=self._str16("message").decode("utf-8", "replace"))
        if t == HEARTBEAT:
            return Frame(t)
        if t == NEW_STREAM:
            sid, name = self._u32("stream ID"), self._str8("name")
            family = self._u8("address family")
            size = {0: 0, 4: 4, 6: 16}.get(family)
            check(size is not None, "NEW_STREAM with address family %d" % family)
            addr = self.read_exact(size, "address") if size else b""
            port = self._u16("port") if size else 0
            return Frame(t, sid=sid, name=name, family=family, addr=addr, port=port)
        if t == DATA:
            return Frame(t, sid=self._u32("stream ID"), data=self._str16("payload"))
        if t == CLOSE:
            return Frame(t, sid=self._u32("stream ID"))
        if t == WINDOW_UPDATE:
            return Frame(t, sid=self._u32("stream ID"), increment=self._u32("increment"))
        if t == RESET:
            return Frame(t, sid=self._u32("stream ID"), code=self._u8("code"))
        raise TestFailure("the server sent a frame of unknown type 0x%02x (then %r)"
                          % (t, self.buf[:32]))

    # the server's side, for a FakeServer

    def serve_registration(self, token, port):
        """The server's side up to the REGISTER_ACK OK (on port) of the
        client's first proxy. Returns that REGISTER."""
        self.serve_handshake(token)
        self.next_client_frame(HELLO)
        reg = self.next_client_frame(REGISTER)
        self.send(f_register_ack(ACK_OK, reg.name, port, ("tcp://127.0.0.1:%d" % port).encode()))
        return reg

    def serve_handshake(self, token):
        """The server's side of the token method (PROTOCOL.md 2.2): checks
        the client's proof and answers OK with the server's."""
        magic = self.read_exact(4, "the client's magic")
        check_eq(magic, MAGIC, "the client's magic")
        method = self._u8("auth method")
        check_eq(method, AUTH_TOKEN, "the client's auth method")
        cnonce = self._str16("client nonce")
        snonce = os.urandom(16)
        self.send(u8(HS_CHALLENGE) + str16(snonce))
        proof = self._str16("client proof")
        check(hmac.compare_digest(proof, token_proof(token, b"mgrok-token-v1 client", cnonce,
                                                     snonce)), "wrong client proof")
        self.send(u8(HS_OK) + str16(token_proof(token, b"mgrok-token-v1 server", snonce,
                                                cnonce)))
        return self

    def read_client_frame(self):
        """The next frame from a client, or None at EOF."""
        try:
            if not self._fill(1):
                return None
        except ConnectionResetError:
            return None
        t = self._u8("frame type")
        if t == REGISTER:
            return Frame(t, proxy_type=self._u8("proxy type"), port=self._u16("remote port"),
                         local_port=self._u16("local port"), name=self._str8("name"),
                         options=self._str16("options"))
        if t == HELLO:
            return Frame(t, client_id=self._str8("client ID"), info=self._str16("info"))
        if t == UNREGISTER:
            return Frame(t, name=self._str8("name"))
        if t in (HEARTBEAT, GO_AWAY, DATA, CLOSE, WINDOW_UPDATE, RESET):
            self.buf = u8(t) + self.buf
            return self.read_frame()
        raise TestFailure("the client sent a frame of unknown type 0x%02x (then %r)"
                          % (t, self.buf[:32]))

    def next_client_frame(self, types, what=None, skip=(HEARTBEAT, WINDOW_UPDATE)):
        """next_frame for the frames of a client."""
        types = (types,) if isinstance(types, int) else tuple(types)
        what = what or "/".join(FRAME_NAMES.get(x, hex(x)) for x in types)
        while True:
            try:
                f = self.read_client_frame()
            except socket.timeout:
                raise TestFailure("timed out while waiting for %s from the client" % what)
            check(f is not None, "connection closed while waiting for %s" % what)
            if f.type in types:
                return f
            if f.type not in skip:
                raise TestFailure("expected %s from the client, got %r" % (what, f))

    def next_frame(self, types, what=None, skip=(HEARTBEAT, WINDOW_UPDATE)):
        """The next frame of one of types, skipping those of the types in skip;
        fails at EOF or on any other frame."""
        types = (types,) if isinstance(types, int) else tuple(types)
        end = time.monotonic() + self.timeout
        while True:
            self.sock.settimeout(max(0.1, end - time.monotonic()))
            try:
                f = self.read_frame()
            except socket.timeout:
                f = "timeout"
            finally:
                self.sock.settimeout(self.timeout)
            check(f is not None and f != "timeout", "%s while waiting for %s" % (
                "timed out" if f else "connection closed",
                what or "/".join(FRAME_NAMES.get(x, hex(x)) for x in types)))
            if f.type in types:
                return f
            if f.type in skip:
                continue
            raise TestFailure("expected %s, got %r" % (
                what or "/".join(FRAME_NAMES.get(x, hex(x)) for x in types), f))

    def register(self, name, remote_port=0, **kw):
        self.send(f_register(name, remote_port, **kw))
        return self.next_frame(REGISTER_ACK)

    def expect_go_away(self, code, what, skip=(HEARTBEAT, WINDOW_UPDATE)):
        """The server answers with GO_AWAY(code) and closes the connection."""
        f = self.next_frame(GO_AWAY, "GO_AWAY after %s" % what, skip)
        check_eq(f.code, code, "GO_AWAY code after %s" % what, message=f.message)
        rest = self.read_eof()
        check_eq(rest, b"", "bytes after GO_AWAY (%s)" % what)
        return f


# ---- a hostile server, and what a program costs -------------------------------


class FakeServer:
    """A stand-in for mgrokd on 127.0.0.1:port, written by hand, for tests of
    mgrok against a server that misbehaves.  accept() returns a RawSession
    over the next connection; the test plays the server's side with
    serve_handshake, next_client_frame and send.  sockopts are set on the
    listening socket, so accepted connections inherit them (a small
    SO_RCVBUF makes a server that does not read)."""

    def __init__(self, port, host="127.0.0.1", sockopts=()):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        for level, opt, value in sockopts:
            self.sock.setsockopt(level, opt, value)
        self.sock.bind((host, port))
        self.sock.listen(16)
        self.port = port

    def accept(self, timeout=DEADLINE):
        r, _, _ = select.select([self.sock], [], [], timeout)
        check(r, "nobody connected to the fake server within %.0f s" % timeout)
        conn, _ = self.sock.accept()
        return RawSession.from_socket(conn, timeout)

    def close(self):
        self.sock.close()


def rss_kib(pid):
    """The resident set size of process pid in KiB (VmRSS), or None once it
    has exited."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


class RssSampler:
    """Samples a process's VmRSS every interval seconds in a thread, from
    start() until stop(); .max and .samples (KiB)."""

    def __init__(self, pid, interval=0.1):
        self.pid = pid
        self.interval = interval
        self.samples = []
        self.max = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def sample(self):
        v = rss_kib(self.pid)
        if v is not None:
            self.samples.append(v)
            self.max = max(self.max, v)
        return v

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=5)
        self.sample()


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


# ---- the test environment ----------------------------------------------------


class Env:
    def __init__(self, name):
        self.name = name
        self.dir = tempfile.mkdtemp(prefix="mgrok-e2e-%s-" % name)
        self.ports = PortBlock()
        self.procs = []
        self.services = []
        self.failures = []
        self._names = {}

    # programs

    def _unique(self, base):
        n = self._names.get(base, 0) + 1
        self._names[base] = n
        return base if n == 1 else "%s.%d" % (base, n)

    def spawn(self, name, argv, cls=Proc, env=None, preexec_fn=None):
        p = cls(self._unique(name), argv, self.dir, env=env, preexec_fn=preexec_fn)
        self.procs.append(p)
        return p

    def server_argv(self, token="server-secret", port=None, allow=None, extra=(),
                    listen_host="127.0.0.1", config=None):
        argv = [MGROKD, "--plugin-dir", PLUGIN_DIR]
        if config:
            argv += ["-c", config]
        if port is not None:
            host = "[%s]" % listen_host if ":" in listen_host else listen_host
            argv += ["--listen", "%s:%d" % (host, port)]
        if token is not None:
            argv += ["--token", token]
        if allow is not None:
            argv += ["--allow-ports", "%d-%d" % allow]
        return argv + list(extra)

    def start_server(self, token="server-secret", nports=4, port=None, allow=None, extra=(),
                     listen_host="127.0.0.1", config=None, name="mgrokd", wait=True):
        """Starts mgrokd on a reserved control port with nports reserved
        public ports (--allow-ports); waits until it listens.
        With a config, port and allow say what the file has (they are not
        given on the command line)."""
        if config:
            argv = self.server_argv(token, None, None, extra, listen_host, config)
        else:
            if port is None:
                port = self.ports.take()
            if allow is None and nports:
                allow = self.ports.take_range(nports)
            argv = self.server_argv(token, port, allow, extra, listen_host, config)
        srv = self.spawn(name, argv, Server)
        srv.port, srv.allow, srv.token = port, allow, token
        srv.listen_host = listen_host
        if wait:
            srv.wait_ready()
        return srv

    def client_argv(self, local, server, token="server-secret", remote_port=None, name=None,
                    extra=(), server_host="127.0.0.1", config=None, proto="tcp"):
        argv = [MGROK, "--plugin-dir", PLUGIN_DIR]
        if config:
            argv += ["-c", config]
        if server is not None:
            if isinstance(server, int):
                host = "[%s]" % server_host if ":" in server_host else server_host
                server = "%s:%d" % (host, server)
            argv += ["--server", server]
        if token is not None:
            argv += ["--token", token]
        if remote_port is not None:
            argv += ["--remote-port", str(remote_port)]
        if name is not None:
            argv += ["--name", name]
        argv += list(extra)
        if local is not None:
            argv += [proto, str(local)]
        return argv

    def start_client(self, local, server, token="server-secret", remote_port=None, name=None,
                     extra=(), server_host="127.0.0.1", config=None, lines=1, cname="mgrok",
                     proto="tcp", preexec_fn=None):
        """Starts mgrok and waits for `lines` public-address lines.
        server is mgrokd's port (or a Server, or "host:port"); proto is the
        quick form's TYPE (tcp or udp); preexec_fn runs in the child before
        mgrok (e.g. to set a resource limit)."""
        if isinstance(server, Server):
            server_host, server = server.listen_host, server.port
        argv = self.client_argv(local, server, token, remote_port, name, extra, server_host,
                                config, proto)
        cl = self.spawn(cname, argv, Client, preexec_fn=preexec_fn)
        if lines:
            cl.wait_lines(lines)
        return cl

    def run_program(self, argv, timeout=DEADLINE, env=None):
        """Runs a program to completion: (exit code, stdout, stderr)."""
        full_env = dict(os.environ)
        full_env.update(env or {})
        log("run: %s" % " ".join(str(a) for a in argv))
        try:
            r = subprocess.run([str(a) for a in argv], stdin=subprocess.DEVNULL,
                               capture_output=True, timeout=timeout, env=full_env,
                               start_new_session=True)
        except subprocess.TimeoutExpired:
            raise TestFailure("%s did not exit within %.0f s" % (argv[0], timeout))
        return r.returncode, r.stdout.decode("utf-8", "replace"), r.stderr.decode("utf-8",
                                                                                  "replace")

    # services

    def service(self, handler, host="127.0.0.1", port=0, name="service"):
        s = Service(handler, host, port, name)
        self.services.append(s)
        return s

    def echo_service(self, **kw):
        return self.service(echo_handler, name="echo", **kw)

    def udp_service(self, handler, host="127.0.0.1", port=0, name="udp-service"):
        s = UdpService(handler, host, port, name)
        self.services.append(s)
        return s

    def udp_echo_service(self, **kw):
        kw.setdefault("name", "udp-echo")
        return self.udp_service(udp_echo_handler, **kw)

    def udp_ports(self, n=1, host="127.0.0.1"):
        """n consecutive ports of the block that are free for UDP on host
        too (the block is only checked for TCP); returns the first."""
        lo = self.ports.take(n)
        busy = [p for p in range(lo, lo + n) if not udp_port_free(p, host)]
        check(not busy, "reserved ports busy for UDP on %s" % host, ports=busy)
        return lo

    def client_config(self, server, proxies, token="server-secret", name="mgrok.json",
                      server_host="127.0.0.1", **more):
        """Writes a JSON client config (server: mgrokd's port or a Server)."""
        if isinstance(server, Server):
            server_host, server = server.listen_host, server.port
        host = "[%s]" % server_host if ":" in server_host else server_host
        conf = {"server": "%s:%d" % (host, server), "proxies": proxies}
        if token is not None:
            conf["auth"] = {"method": "token", "token": token}
        conf.update(more)
        return self.write_file(name, json.dumps(conf, indent=2) + "\n")

    def write_file(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def check_services(self, allow_resets=0):
        """Fails if a service's handler raised; allow_resets connection
        resets are expected (e.g. streams of a session that died)."""
        for s in self.services:
            errors = list(s.errors)
            resets = [e for e in errors if isinstance(e, ConnectionResetError)]
            others = [e for e in errors if not isinstance(e, ConnectionResetError)]
            check(not others and len(resets) <= allow_resets,
                  "service %s had errors" % s.name, errors=[repr(e) for e in errors[:5]],
                  resets_allowed=allow_resets)

    # sub-cases that fail on their own

    @contextlib.contextmanager
    def case(self, what):
        """A sub-case whose failure is recorded (and fails the test at the
        end) while the test goes on with the next one."""
        try:
            yield
        except TestFailure as e:
            log("FAILED sub-case %s: %s" % (what, e))
            self.failures.append("%s: %s" % (what, e))

    def check_cases(self):
        check(not self.failures, "%d sub-case(s) failed:\n  %s" %
              (len(self.failures), "\n  ".join(self.failures)))

    # cleanup

    def dump_logs(self):
        for p in self.procs:
            print(p.tail(), flush=True)

    def cleanup(self):
        for s in self.services:
            s.close()
        for p in self.procs:
            p.stop(timeout=5)
            p.close_files()
        self.ports.release()


# ---- TLS and secrets ---------------------------------------------------------

FINGERPRINT_RE = re.compile(r"sha256:[0-9a-f]{64}")


def cert_fingerprint(path):
    """sha256:HEX of the first certificate of a PEM file, computed here
    (independently of mgrokd)."""
    import ssl
    with open(path) as f:
        der = ssl.PEM_cert_to_DER_cert(f.read())
    return "sha256:" + hashlib.sha256(der).hexdigest()


def gen_cert(env, name, public_host=None):
    """Runs `mgrokd --gen-cert DIR [--public-host HOST]` in a new directory
    of the test; checks its output; returns (cert path, key path, fingerprint)."""
    d = os.path.join(env.dir, name)
    os.makedirs(d)
    argv = [MGROKD, "--plugin-dir", PLUGIN_DIR, "--gen-cert", d]
    if public_host:
        argv += ["--public-host", public_host]
    code, out, err = run_recorded(env, argv)
    check_eq(code, 0, "exit code of mgrokd --gen-cert", stdout=out, stderr=err)
    fps = sorted(set(FINGERPRINT_RE.findall(out + err)))
    check_eq(len(fps), 1, "distinct sha256 fingerprints printed by --gen-cert", stdout=out,
             stderr=err)
    cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
    for path in (cert, key):
        check(os.path.isfile(path), "--gen-cert did not write %s" % path, listing=os.listdir(d))
    check_eq(fps[0], cert_fingerprint(cert), "fingerprint printed by --gen-cert vs the "
             "certificate's own")
    return cert, key, fps[0]


def write_json(env, name, obj):
    import json
    return env.write_file(name, json.dumps(obj, indent=2) + "\n")


def run_recorded(env, argv, timeout=DEADLINE, env_vars=None):
    """env.run_program, and keeps the output for check_no_secrets."""
    code, out, err = env.run_program(argv, timeout, env_vars)
    env.__dict__.setdefault("recorded_outputs", []).append((" ".join(map(str, argv[:4])), out,
                                                           err))
    return code, out, err


def check_no_secrets(env, secrets, extra=()):
    """Fails if any of secrets occurs in the stderr or stdout of any program
    the test started (env.spawn), in any output kept by run_recorded, or in
    the (label, text) pairs of extra.  Stop the programs first, so that
    everything they would log is written."""
    sources = []
    for p in env.procs:
        for label, path in (("stderr", p.err_path), ("stdout", p.out_path)):
            try:
                with open(path, "rb") as f:
                    sources.append(("%s %s" % (p.name, label), f.read().decode("utf-8",
                                                                               "replace")))
            except OSError:
                pass
    for what, out, err in env.__dict__.get("recorded_outputs", []):
        sources += [("%s stdout" % what, out), ("%s stderr" % what, err)]
    sources += list(extra)
    found = []
    for label, text in sources:
        for secret in secrets:
            check(len(secret) >= 8, "a secret to look for must be at least 8 characters",
                  secret=secret)
            if secret in text:
                line = next(l for l in text.splitlines() if secret in l)
                found.append("%s contains secret %r: %s" % (label, secret, line[:300]))
    check(not found, "secrets in the output of the programs:\n    " + "\n    ".join(found))
    log("no secret in %d outputs (%d secrets looked for)" % (len(sources), len(secrets)))


def _watchdog(env_box, limit):
    def fire():
        print("WATCHDOG: the test is still running after %.0f s: aborting" % limit, flush=True)
        env = env_box[0]
        if env:
            env.dump_logs()
            for p in env.procs:
                p.kill_group()
        os._exit(1)
    t = threading.Timer(limit, fire)
    t.daemon = True
    t.start()
    return t


def run(main, name=None):
    """Runs main(env) as a test and exits with the test's status."""
    name = name or os.path.splitext(os.path.basename(sys.argv[0]))[0]
    for prog in (MGROKD, MGROK):
        if not os.access(prog, os.X_OK):
            print("FAIL: %s is missing (build first; MGROK_BUILDDIR=%s)" % (prog, BUILDDIR))
            sys.exit(1)
    box = [None]
    dog = _watchdog(box, WATCHDOG)
    started = time.monotonic()
    status = 1
    env = None
    try:
        env = box[0] = Env(name)
        main(env)
        env.check_cases()
        status = 0
    except Exception:
        print("FAIL: %s" % name, flush=True)
        traceback.print_exc()
        sys.stdout.flush()
        if env:
            env.dump_logs()
    finally:
        if env:
            env.cleanup()
        dog.cancel()
    if status == 0:
        if env and os.environ.get("MGROK_KEEP_LOGS") is None:
            shutil.rmtree(env.dir, ignore_errors=True)
        print("PASS: %s (%.1f s)" % (name, time.monotonic() - started), flush=True)
    elif env:
        print("logs kept in %s" % env.dir, flush=True)
    sys.exit(status)
