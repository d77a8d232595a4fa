#!/usr/bin/env python3
"""Faults in the middle of 200 MiB transfers (make soak).

Uploads (visitor -> service) and downloads (service -> visitor) of 200 MiB,
each streamed from its own seeded pattern, compared byte for byte and hashed
(SHA-256) as they arrive, go through one tunnel while a fault hits it:

  a. kill -9 of the client (mgrok), which is then started again;
  b. kill -9 of the server (mgrokd), which is started again on the same
     ports, and the client reconnects by itself;
  c. SIGSTOP of the client for longer than the server's heartbeat timeout,
     then SIGCONT: the client must find its session gone and reconnect;
  d. SIGSTOP of the server until the client has given its session up and
     then a reconnect attempt too (the server answers no handshake), then
     SIGCONT: the server finds a dead session and abandoned connections in
     its backlog, and the client gets back in.

Each fault comes three times, with 2 uploads and 2 downloads at about 36,
132 and 198 MiB of their 200.  Whatever the fault, no transfer may complete
with wrong bytes: each one
either completes (clean EOF at exactly 200 MiB, the SHA-256 of the sending
end) or is visibly cut (EOF short of 200 MiB, or a reset).  A wrong byte,
a byte too many or a transfer that hangs fails the test.  After each
recovery a fresh 200 MiB transfer each way must arrive byte for byte, and
the program that survived the fault must hold as many descriptors as it
did before the first transfer (no leak per killed peer or dropped session).

Senders stop at a gate part-way; once all of them are there they are let
go, and the fault comes when every receiver has got a few MiB past the
gate: so the fault always finds every transfer running."""
import hashlib
import os
import signal
import socket
import sys
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.join(HERE, "..", "e2e")]
import mgroktest as t
from soaklib import fd_count, rss, stop_clean, wait_fds

MiB = 1 << 20
SIZE = 200 * MiB
PARALLEL = 2          # uploads, and as many downloads, running when a fault comes
# Where the fault comes, once per fault: senders wait at the gate (a multiple
# of t.CHUNK), and the fault comes when every receiver is that much past it.
# At the last point some transfers may complete before the fault lands.
FAULT_POINTS = ((32 * MiB, 4 * MiB), (128 * MiB, 4 * MiB), (196 * MiB, 2 * MiB))
assert all(at % t.CHUNK == 0 for at, _ in FAULT_POINTS)
HEADER = 64           # "up|down SEED SIZE", padded: the first bytes of every connection
TOKEN = "soak-kill-transfers"
HB_INTERVAL, HB_TIMEOUT = 1, 3
IO_TIMEOUT = 30       # a transfer silent this long is hung: a failure, not a cut
t.WATCHDOG = 480.0    # the whole test; it takes about a minute


# ---- the two ends of a transfer -------------------------------------------------


class Checker:
    """The receiving end's view: compares the bytes with pattern(seed, total)
    as they come and hashes them."""

    def __init__(self, seed, total):
        self._gen = t.pattern(seed, total)
        self._buf, self._pos = b"", 0
        self.received = 0        # every byte, including any past total
        self.extra = 0           # bytes past total
        self.first_bad = None    # offset of the first byte that differs from the pattern
        self.sha = hashlib.sha256()

    def feed(self, data):
        self.sha.update(data)
        i = 0
        while i < len(data):
            if self._pos == len(self._buf):
                self._buf, self._pos = next(self._gen, b""), 0
                if not self._buf:
                    self.extra += len(data) - i
                    break
            k = min(len(data) - i, len(self._buf) - self._pos)
            if self.first_bad is None and \
                    data[i:i + k] != self._buf[self._pos:self._pos + k]:
                j = next(x for x in range(k) if data[i + x] != self._buf[self._pos + x])
                self.first_bad = self.received + i + j
            i += k
            self._pos += k
        self.received += len(data)


class Gate:
    """Senders wait at byte `at` until released (bounded)."""

    def __init__(self, at, senders):
        self.at, self.senders = at, senders
        self.arrived = 0
        self._lock = threading.Lock()
        self._go = threading.Event()

    def arrive(self):
        with self._lock:
            self.arrived += 1
        self._go.wait(t.DEADLINE)

    def release(self):
        self._go.set()


class Transfer:
    def __init__(self, kind, seed, total=SIZE, gate=None):
        self.kind, self.seed, self.total, self.gate = kind, seed, total, gate
        self.sent = 0
        self.sent_sha = hashlib.sha256()
        self.send_end = None    # "all", or why sending stopped
        self.checker = None     # the receiving end, once it has the header
        self.recv_end = None    # "eof", "reset", "hung" or another error
        self.reply = None       # uploads: the service's "DIGEST LENGTH" as the visitor got it
        self.visitor_done = threading.Event()

    def name(self):
        return "%s#%d" % (self.kind, self.seed)

    def header(self):
        return (b"%s %d %d" % (self.kind.encode(), self.seed, self.total)).ljust(HEADER - 1) + b"\n"


def why(e):
    if isinstance(e, ConnectionResetError):
        return "reset"
    if isinstance(e, BrokenPipeError):
        return "broken pipe"
    if isinstance(e, socket.timeout):
        return "hung"
    return "error: %s" % e


def send_pattern(sock, tr):
    try:
        for chunk in t.pattern(tr.seed, tr.total):
            if tr.gate and tr.sent == tr.gate.at:
                tr.gate.arrive()
            sock.sendall(chunk)
            tr.sent_sha.update(chunk)
            tr.sent += len(chunk)
        tr.send_end = "all"
    except OSError as e:
        tr.send_end = why(e)


def receive_pattern(sock, tr):
    tr.checker = Checker(tr.seed, tr.total)
    try:
        while True:
            b = sock.recv(t.CHUNK)
            if not b:
                tr.recv_end = "eof"
                return
            tr.checker.feed(b)
    except OSError as e:
        tr.recv_end = why(e)


def recv_exact(sock, n):
    data = b""
    while len(data) < n:
        b = sock.recv(n - len(data))
        if not b:
            break
        data += b
    return data


class Transfers:
    """The service behind the tunnel and the visitors in front of it."""

    def __init__(self, env):
        self.by_key = {}
        self.lock = threading.Lock()
        self.started = 0      # service handlers started
        self.active = 0       # and not yet returned
        self.strays = []      # connections without a valid header
        self.svc = env.service(self._handler, name="transfers")
        self.next_seed = 1

    def new(self, kind, gate=None):
        tr = Transfer(kind, self.next_seed, gate=gate)
        self.next_seed += 1
        self.by_key[(kind, tr.seed)] = tr
        return tr

    def _handler(self, conn):
        with self.lock:
            self.started += 1
            self.active += 1
        try:
            conn.settimeout(IO_TIMEOUT)
            try:
                head = recv_exact(conn, HEADER)
            except OSError as e:
                head = b"(%s)" % why(e).encode()
            fields = head.split()
            tr = None
            if len(head) == HEADER and len(fields) == 3:
                tr = self.by_key.get((fields[0].decode("ascii", "replace"), int(fields[1])))
            if tr is None:
                with self.lock:
                    self.strays.append(head[:HEADER])
                return
            if tr.kind == "up":
                receive_pattern(conn, tr)
                if tr.recv_end == "eof":
                    c = tr.checker
                    conn.sendall(b"%s %d\n" % (c.sha.hexdigest().encode(), c.received))
            else:
                send_pattern(conn, tr)
        except OSError:
            pass  # the reply of an upload that was cut: nobody reads it
        finally:
            with self.lock:
                self.active -= 1

    def settled(self):
        with self.lock:
            return self.active == 0 and self.started == self.svc.count

    def start(self, port, trs):
        threads = []
        for tr in trs:
            fn = self._visit_up if tr.kind == "up" else self._visit_down
            th = threading.Thread(target=fn, args=(port, tr), daemon=True)
            th.start()
            threads.append(th)
        return threads

    def _visit_up(self, port, tr):
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT)
        except OSError as e:
            tr.send_end = "connect: %s" % why(e)
            tr.visitor_done.set()
            return
        try:
            s.settimeout(IO_TIMEOUT)
            s.sendall(tr.header())
            send_pattern(s, tr)
            if tr.send_end == "all":
                s.shutdown(socket.SHUT_WR)
                tr.reply = t.recv_all(s, limit=1024)
        except OSError as e:
            tr.send_end = tr.send_end or why(e)
        finally:
            s.close()
            tr.visitor_done.set()

    def _visit_down(self, port, tr):
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT)
        except OSError as e:
            tr.recv_end = "connect: %s" % why(e)
            tr.visitor_done.set()
            return
        try:
            s.settimeout(IO_TIMEOUT)
            s.sendall(tr.header())
            receive_pattern(s, tr)
        except OSError as e:
            tr.recv_end = tr.recv_end or why(e)
        finally:
            s.close()
            tr.visitor_done.set()

    def wait_visitors(self, trs):
        for tr in trs:
            t.wait_for(tr.visitor_done.is_set, IO_TIMEOUT + 30,
                       "the visitor of %s to finish" % tr.name(), interval=0.1)

    def wait_settled(self):
        t.wait_for(self.settled, IO_TIMEOUT + 30, "the service's connections to end",
                   interval=0.1)


# ---- verdicts --------------------------------------------------------------------


def mib(n):
    return "%.1f MiB" % (n / MiB)


def verdict(tr):
    """("completed" | "cut" | "BAD", text)."""
    c = tr.checker
    sender = "sender: %s after %s" % (tr.send_end, mib(tr.sent))
    if c is None:
        if tr.recv_end == "hung":
            return "BAD", "the receiver hung before the first byte; " + sender
        return "cut", "never reached the receiving end (%s); %s" % (
            tr.recv_end or "no connection to the service", sender)
    bad = []
    if c.first_bad is not None:
        bad.append("wrong byte at offset %d" % c.first_bad)
    if c.extra:
        bad.append("%d bytes past the end" % c.extra)
    if tr.recv_end == "hung":
        bad.append("neither completed nor cut within %d s" % IO_TIMEOUT)
    full = tr.recv_end == "eof" and c.received == tr.total
    if full and tr.send_end != "all":
        bad.append("clean EOF at full length, but the sender did not send it all")
    if full and c.sha.hexdigest() != tr.sent_sha.hexdigest():
        bad.append("clean EOF at full length with a wrong SHA-256 (%s, sender %s)"
                   % (c.sha.hexdigest(), tr.sent_sha.hexdigest()))
    if bad:
        return "BAD", "; ".join(bad) + " (received %d bytes, end %s; %s)" % (
            c.received, tr.recv_end, sender)
    if full:
        return "completed", "%s, sha256 %s…; %s" % (mib(c.received), c.sha.hexdigest()[:16],
                                                   sender)
    return "cut", "%s at %s; %s" % ("EOF" if tr.recv_end == "eof" else tr.recv_end,
                                     mib(c.received), sender)


def judge(label, trs, xfers):
    """Logs every transfer's verdict; fails on a BAD one; returns the counts."""
    counts = {"completed": 0, "cut": 0, "BAD": 0}
    bad = []
    for tr in trs:
        v, text = verdict(tr)
        counts[v] += 1
        t.log("%s: %-8s %-9s %s" % (label, tr.name(), v, text))
        if v == "BAD":
            bad.append("%s: %s" % (tr.name(), text))
    t.check(not bad, "%s: transfers with wrong bytes, extra bytes or no end:\n    %s"
            % (label, "\n    ".join(bad)))
    t.check(not xfers.strays, "%s: connections to the service without a valid header"
            % label, heads=xfers.strays[:5])
    return counts


# ---- the setup --------------------------------------------------------------------


class Tunnel:
    def __init__(self, env):
        self.env = env
        self.control = env.ports.take()
        self.allow = env.ports.take_range(2)
        self.public = self.allow[0]
        self.xfers = Transfers(env)
        hb = {"interval": HB_INTERVAL, "timeout": HB_TIMEOUT}
        self.server_conf = t.write_json(env, "mgrokd.json", {
            "listen": "127.0.0.1:%d" % self.control,
            "allow_ports": ["%d-%d" % self.allow],
            "heartbeat": hb,
        })
        self.client_conf = env.client_config(self.control, [
            {"name": "bulk", "type": "tcp", "local": "127.0.0.1:%d" % self.xfers.svc.port,
             "remote_port": self.public}], token=TOKEN, heartbeat=hb,
            # The backoff doubles at each reconnect and is only reset by a
            # session that lived a minute: cap it, or the rounds would wait
            # longer and longer for the client.
            reconnect={"initial": 0.5, "max": 2})
        self.srv = self.cl = None
        self.fd_base = {}   # program name: descriptors when idle with a session up

    def note_idle(self):
        """Records the descriptors of programs seen for the first time: the
        tunnel is up and carries no stream."""
        for p in (self.srv, self.cl):
            self.fd_base.setdefault(p.name, fd_count(p))

    def check_fds(self, label):
        procs = (self.srv, self.cl)
        wait_fds(procs, {p.name: self.fd_base[p.name] for p in procs}, label)
        t.log("%s: %s" % (label, ", ".join("%s %d fds, rss %.1f MiB" % (
            p.name, fd_count(p), rss(p) / MiB) for p in procs)))

    def start_server(self):
        self.srv = self.env.start_server(token=TOKEN, config=self.server_conf, port=self.control,
                                         allow=self.allow)

    def start_client(self):
        self.cl = self.env.start_client(None, None, token=None, config=self.client_conf)
        t.check_eq(self.cl.public_port, self.public, "public port")

    def fresh(self, label):
        """One 200 MiB transfer each way, at once: both must arrive intact."""
        trs = [self.xfers.new("up"), self.xfers.new("down")]
        self.xfers.start(self.public, trs)
        self.xfers.wait_visitors(trs)
        self.xfers.wait_settled()
        counts = judge(label, trs, self.xfers)
        t.check_eq(counts["completed"], len(trs), "%s: transfers completed" % label)
        up = trs[0]
        t.check_eq(up.reply, b"%s %d\n" % (up.sent_sha.hexdigest().encode(), SIZE),
                   "%s: the service's digest and length of the upload, as the visitor got them"
                   % label)
        t.log("%s: 200 MiB each way arrived byte for byte" % label)
        self.check_fds(label)

    def faulted(self, label, point, inject, before_verdict=None):
        """Transfers in both directions; inject() once all are past the gate."""
        at, past_gate = point
        gate = Gate(at, 2 * PARALLEL)
        trs = [self.xfers.new(kind, gate) for kind in ("up", "down") for _ in range(PARALLEL)]
        try:
            self.xfers.start(self.public, trs)
            t.wait_for(lambda: gate.arrived == gate.senders, t.DEADLINE,
                       "all %d senders at the %s gate" % (gate.senders, mib(at)))
            gate.release()

            def past():
                return all(tr.checker and tr.checker.received >= at + past_gate
                           for tr in trs)
            t.wait_for(past, t.DEADLINE, "every receiver %s past the gate" % mib(past_gate),
                       interval=0.002)
            where = ", ".join("%s %s" % (tr.name(), mib(tr.checker.received)) for tr in trs)
            t.log("%s: fault at %s" % (label, where))
            inject()
        finally:
            gate.release()
        self.xfers.wait_visitors(trs)
        if before_verdict:
            before_verdict(trs)
        self.xfers.wait_settled()
        counts = judge(label, trs, self.xfers)
        t.log("%s: %d cut, %d completed (of %d)" % (label, counts["cut"], counts["completed"],
                                                   len(trs)))
        return counts


# ---- the rounds --------------------------------------------------------------------


def kill_client(tun, label, point):
    old = tun.cl

    def inject():
        t.check_eq(old.stop(signal.SIGKILL), -signal.SIGKILL, "mgrok's exit status")
        t.log("mgrok killed (SIGKILL)")
    counts = tun.faulted(label, point, inject)
    t.check(tun.srv.alive(), "mgrokd died when its client was killed")
    tun.start_client()
    tun.note_idle()
    tun.fresh(label + ", then mgrok restarted")
    return counts


def kill_server(tun, label, point):
    lines = len(tun.cl.public_lines())

    def inject():
        t.check_eq(tun.srv.stop(signal.SIGKILL), -signal.SIGKILL, "mgrokd's exit status")
        t.log("mgrokd killed (SIGKILL)")
    counts = tun.faulted(label, point, inject)
    t.check(tun.cl.alive(), "mgrok exited when its server was killed (code %s)"
            % tun.cl.returncode)
    tun.start_server()
    got = tun.cl.wait_lines(lines + 1)
    t.check_eq(got[-1][2], tun.public, "public port after the client reconnected")
    t.log("mgrok reconnected to the new mgrokd by itself")
    tun.note_idle()
    tun.fresh(label + ", then mgrokd restarted")
    return counts


def stop_client(tun, label, point):
    cl, srv = tun.cl, tun.srv
    lines = len(cl.public_lines())
    before = len(heartbeat_drops(srv))
    stopped = [False]

    def inject():
        cl.send_signal(signal.SIGSTOP)
        stopped[0] = True
        t.log("mgrok stopped (SIGSTOP)")
        t.wait_for(lambda: len(heartbeat_drops(srv)) > before, HB_TIMEOUT + 30,
                   "mgrokd to drop the silent session", interval=0.1)
        t.log("mgrokd: %s" % heartbeat_drops(srv)[-1])

    def resume(trs):
        # Every visitor was cut while mgrok was still stopped: mgrokd ends the
        # streams of the session it dropped.
        t.check(stopped[0], "mgrok was not stopped")
        cl.send_signal(signal.SIGCONT)
        stopped[0] = False
        t.log("visitors all ended while mgrok was stopped; mgrok continued (SIGCONT)")

    try:
        counts = tun.faulted(label, point, inject, before_verdict=resume)
    finally:
        if stopped[0]:
            cl.send_signal(signal.SIGCONT)
    got = cl.wait_lines(lines + 1)
    t.check_eq(got[-1][2], tun.public, "public port after the client reconnected")
    t.check(srv.alive(), "mgrokd died")
    notice = [l for l in cl.stderr_text().splitlines()
              if "warn" in l and "session" in l][-1:]
    t.log("mgrok noticed its session was gone and reconnected: %s" % (notice or ["?"])[0])
    tun.fresh(label + ", then SIGCONT")
    return counts


def stop_server(tun, label, point):
    cl, srv = tun.cl, tun.srv
    lines = len(cl.public_lines())
    mark = len(cl.stderr_text())
    stopped = [False]

    def client_drops():
        return cl.stderr_text()[mark:].count("nothing received for")

    def inject():
        srv.send_signal(signal.SIGSTOP)
        stopped[0] = True
        t.log("mgrokd stopped (SIGSTOP)")
        # The session, then the handshake of a reconnect attempt: both time out.
        t.wait_for(lambda: client_drops() >= 2, 2 * HB_TIMEOUT + 30,
                   "mgrok to give up its session and a reconnect attempt", interval=0.1)
        srv.send_signal(signal.SIGCONT)
        stopped[0] = False
        t.log("mgrok gave up its session and a reconnect attempt; mgrokd continued (SIGCONT)")

    try:
        counts = tun.faulted(label, point, inject)
    finally:
        if stopped[0]:
            srv.send_signal(signal.SIGCONT)
    got = cl.wait_lines(lines + 1)
    t.check_eq(got[-1][2], tun.public, "public port after the client reconnected")
    t.check(srv.alive() and cl.alive(), "a program died")
    t.log("mgrok reconnected to the resumed mgrokd")
    tun.fresh(label + ", then SIGCONT")
    return counts


def heartbeat_drops(srv):
    return [l for l in srv.stderr_text().splitlines() if "nothing received for" in l]


def main(env):
    tun = Tunnel(env)
    tun.start_server()
    tun.start_client()
    tun.note_idle()
    tun.fresh("before any fault")
    results = []
    for fault, fn in (("a. kill -9 mgrok", kill_client), ("b. kill -9 mgrokd", kill_server),
                      ("c. SIGSTOP mgrok", stop_client), ("d. SIGSTOP mgrokd", stop_server)):
        for point in FAULT_POINTS:
            label = "%s at %s" % (fault, mib(point[0] + point[1]))
            results.append((label, fn(tun, label, point)))
    for label, counts in results:
        t.log("summary: %-32s %d cut, %d completed" % (label, counts["cut"],
                                                        counts["completed"]))
    env.check_services()
    for p in (tun.srv, tun.cl):
        t.check(p.alive(), "%s died" % p.name)
    stop_clean((tun.cl, tun.srv), env.procs)


t.run(main)
