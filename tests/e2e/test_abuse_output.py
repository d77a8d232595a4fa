#!/usr/bin/env python3
"""A peer that never reads cannot make mgrokd or mgrok queue output without
bound.

1. Server: a session that completed its handshake floods REGISTER frames
   with an empty name (each answered by a REGISTER_ACK INVALID, about four
   times its size) and never reads.  Once the session's queued output
   reaches 4 MiB, mgrokd stops reading it; after the heartbeat timeout
   without reading, it logs "has not read" and closes the session.  The
   flood goes on for FLOOD_SECONDS, from a new session each time one is
   closed, while a real mgrok keeps echoing through its tunnel.  mgrokd's
   VmRSS must stay below its baseline + RSS_MARGIN, every echo must come
   back byte for byte, and each flooding session must be closed with the
   log line.
2. Client: a hand-written server that completes the handshake, acks the
   registration, then floods NEW_STREAM for a proxy mgrok does not have
   (each answered by a RESET) and never reads.  mgrok's VmRSS must stay
   bounded the same way, and mgrok must close that session ("has not
   read"), reconnect and carry on.

Against a build without the bound, RSS grows by hundreds of MiB within
seconds; the flood stops as soon as it passes the margin, so that the test
fails fast without filling the machine."""
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mgroktest as t

TOKEN = "abuse-output-token-7f3e"

# In a sanitizer build ASan keeps freed blocks in a quarantine of 256 MiB
# before reusing them, and a flood frees a lot: RSS would measure that, not
# what the programs hold. A small quarantine keeps the bound meaningful
# there too (the option means nothing to a build without ASan).
os.environ["ASAN_OPTIONS"] = ":".join(
    o for o in (os.environ.get("ASAN_OPTIONS", ""), "quarantine_size_mb=4") if o)
HEARTBEAT = {"interval": 1, "timeout": 4}
FLOOD_SECONDS = 16
RSS_MARGIN = 40 * 1024  # KiB over the baseline
SMALL_RCVBUF = [(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)]
NOT_READ = "has not read"


class Flooder:
    """Sends one block of frames over and over on a socket that never reads,
    from a thread, until stop() or the peer closes the connection
    (.closed_by_peer)."""

    def __init__(self, sock, block, what):
        self.sock = sock
        self.block = memoryview(block)
        self.what = what
        self.sent = 0
        self.closed_by_peer = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        # Timed sends: once the peer stops reading, a send blocks; the
        # timeout keeps the thread responsive to stop().
        self.sock.settimeout(0.25)
        off = 0
        while not self._stop.is_set():
            try:
                n = self.sock.send(self.block[off:])
            except socket.timeout:
                continue
            except (ConnectionResetError, BrokenPipeError):
                self.closed_by_peer = True
                return
            self.sent += n
            off = (off + n) % len(self.block)

    def start(self):
        self._thread.start()
        return self

    def alive(self):
        return self._thread.is_alive()

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=5)


def watch(sampler, baseline, flooders_alive, seconds, what):
    """Waits while the flood goes on, for seconds or until no flooder is
    left; fails as soon as RSS passes baseline + RSS_MARGIN."""
    end = time.monotonic() + seconds
    while time.monotonic() < end and flooders_alive():
        rss = sampler.sample()
        if rss is not None and rss > baseline + RSS_MARGIN:
            raise t.TestFailure("%s: VmRSS grew from %d to %d KiB during the flood (more than "
                                "%d KiB over the baseline)" % (what, baseline, rss, RSS_MARGIN))
        time.sleep(0.1)


# ---- 1. mgrokd and a session that does not read ----------------------------------------


def server_flood(env):
    port = env.ports.take()
    allow = env.ports.take_range(2)
    conf = t.write_json(env, "mgrokd.json", {
        "listen": "127.0.0.1:%d" % port,
        "auth": {"method": "token", "token": TOKEN},
        "allow_ports": ["%d-%d" % allow],
        "heartbeat": HEARTBEAT})
    srv = env.start_server(token=None, config=conf)
    srv.port = port
    echo = env.echo_service()
    cconf = env.client_config(srv, [{"name": "healthy", "type": "tcp",
                                     "local": "127.0.0.1:%d" % echo.port,
                                     "remote_port": allow[0]}],
                              token=TOKEN, heartbeat=HEARTBEAT)
    cl = env.start_client(None, None, token=None, config=cconf, cname="mgrok-healthy")
    # The baseline: mgrokd with a session that has carried a stream.
    t.echo_check(allow[0], b"before the flood\n")
    baseline = t.rss_kib(srv.pid)
    t.log("1: mgrokd VmRSS before the flood: %d KiB" % baseline)

    sampler = t.RssSampler(srv.pid).start()
    healthy = t.EchoLoop(allow[0]).start()
    block = t.f_register(b"") * 65536  # 9 bytes each; REGISTER_ACK INVALID is ~45
    flooders = []
    end = time.monotonic() + FLOOD_SECONDS
    try:
        while time.monotonic() < end:
            raw = t.RawSession(port, timeout=15, sockopts=SMALL_RCVBUF).handshake(TOKEN)
            fl = Flooder(raw.sock, block, "REGISTER flood").start()
            flooders.append(fl)
            watch(sampler, baseline, fl.alive, end - time.monotonic(), "1: mgrokd")
            if not fl.alive():
                t.check(fl.closed_by_peer, "a flooder stopped by itself")
                t.log("1: flooding session %d closed by mgrokd after %d bytes sent"
                      % (len(flooders), fl.sent))
        # The last flooder may still be paused: it too is closed within the
        # heartbeat timeout (and more: deadlines here only prevent hangs).
        last = flooders[-1]
        if last.alive():
            watch(sampler, baseline, last.alive, 30, "1: mgrokd after the flood")
            t.check(not last.alive() and last.closed_by_peer,
                    "mgrokd did not close a session that has not read for 30 s "
                    "(heartbeat timeout %d s)" % HEARTBEAT["timeout"], sent=last.sent)
    finally:
        for fl in flooders:
            fl.stop()
            fl.sock.close()
        rounds = healthy.check("the REGISTER flood")
        sampler.stop()
    closed = sum(fl.closed_by_peer for fl in flooders)
    lines = t.wait_log(srv, NOT_READ, closed, 10, "a %r line for each of the %d flooding "
                       "sessions mgrokd closed" % (NOT_READ, closed))
    t.check(srv.alive() and cl.alive(), "mgrokd or the healthy mgrok died")
    t.check_eq(len(cl.public_lines()), 1, "public lines of the healthy client (it registered "
               "again: its session was dropped)")
    t.echo_check(allow[0], b"after the flood\n")
    t.log("1: %d flooding sessions (%d MiB sent), all closed by mgrokd with %r; VmRSS "
          "baseline %d KiB, max %d KiB (+%d); %d exact echoes meanwhile"
          % (len(flooders), sum(fl.sent for fl in flooders) >> 20, NOT_READ, baseline,
             sampler.max, sampler.max - baseline, rounds))
    t.check_eq(srv.stop(), 0, "exit code of mgrokd on SIGTERM")
    t.check_eq(cl.stop(), 0, "exit code of mgrok on SIGTERM")


# ---- 2. mgrok and a server that does not read ---------------------------------------------


class NewStreamFlooder(Flooder):
    """A Flooder whose blocks carry ever higher stream IDs (doc/protocol.md 3.2:
    they must increase)."""

    PER_BLOCK = 32768

    def __init__(self, sock, first_sid):
        self.next_sid = first_sid
        Flooder.__init__(self, sock, b"", "NEW_STREAM flood")

    def _run(self):
        self.sock.settimeout(0.25)
        while not self._stop.is_set():
            block = memoryview(t.f_new_streams(self.next_sid, self.PER_BLOCK))
            self.next_sid += 2 * self.PER_BLOCK
            off = 0
            while off < len(block) and not self._stop.is_set():
                try:
                    n = self.sock.send(block[off:])
                except socket.timeout:
                    continue
                except (ConnectionResetError, BrokenPipeError):
                    self.closed_by_peer = True
                    return
                self.sent += n
                off += n


def client_flood(env):
    port = env.ports.take()
    public = env.ports.take()  # never bound: the fake server only names it
    fake = t.FakeServer(port, sockopts=SMALL_RCVBUF)
    echo = env.echo_service()
    cconf = env.client_config(port, [{"name": "web", "type": "tcp",
                                      "local": "127.0.0.1:%d" % echo.port}],
                              token=TOKEN, heartbeat=HEARTBEAT)
    cl = env.start_client(None, None, token=None, config=cconf, lines=0, cname="mgrok")
    try:
        sess = fake.accept(20)
        sess.serve_registration(TOKEN, public)
        cl.wait_lines(1)  # the baseline: mgrok with its proxy registered
        baseline = t.rss_kib(cl.pid)
        t.log("2: mgrok VmRSS before the flood: %d KiB" % baseline)
        sampler = t.RssSampler(cl.pid).start()
        fl = NewStreamFlooder(sess.sock, 2).start()
        try:
            watch(sampler, baseline, fl.alive, FLOOD_SECONDS + 30, "2: mgrok")
        finally:
            fl.stop()
            sampler.stop()
        t.check(fl.closed_by_peer, "mgrok did not close a session to a server that has not "
                "read for %d s (heartbeat timeout %d s)" % (FLOOD_SECONDS + 30,
                                                             HEARTBEAT["timeout"]),
                sent=fl.sent)
        sess.close()
        t.wait_log(cl, NOT_READ, 1, 10, "mgrok to log %r" % NOT_READ)
        t.log("2: mgrok closed the session after %d MiB of NEW_STREAM; VmRSS baseline %d KiB, "
              "max %d KiB (+%d)" % (fl.sent >> 20, baseline, sampler.max,
                                    sampler.max - baseline))
        # It reconnects and registers again with a server that behaves.
        again = fake.accept(30)
        again.serve_registration(TOKEN, public)
        cl.wait_lines(2)
        t.check(cl.alive(), "mgrok died after the flood")
        again.close()
    finally:
        fake.close()
    t.check_eq(cl.stop(), 0, "exit code of mgrok on SIGTERM")


def main(env):
    with env.case("1: mgrokd and a REGISTER flood that never reads"):
        server_flood(env)
    with env.case("2: mgrok and a NEW_STREAM flood that never reads"):
        client_flood(env)


t.run(main)
