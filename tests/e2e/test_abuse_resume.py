#!/usr/bin/env python3
"""The bound on a session's queued output must not stall a peer that reads.

mgrokd and mgrok stop reading a session whose queued output reaches 4 MiB
and read again once it falls below 1 MiB (test_abuse_output.py).  A peer
that reads every reply as fast as it comes must then get all of them
without delay, however many frames it sends: output queued when reading
resumes must be written at once, not when a timer next wakes the loop.
With a heartbeat interval of an hour the only timers left are mgrokd's
10 s log window: a stall would add about 10 s per 4 MiB of replies, and
the deadline below (60 times what the exchange takes; there so that the
test ends) turns it into a failure.

1. mgrokd: 16 MiB of REGISTER frames with an empty name, every REGISTER_ACK
   INVALID read as it comes (about 80 MiB of them).
2. mgrok: a hand-written server sends 16 MiB of NEW_STREAM frames for a
   proxy mgrok does not have and reads every RESET (about 8.7 MiB)."""
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mgroktest as t

TOKEN = "abuse-resume-token-93aa"
HEARTBEAT = {"interval": 3600, "timeout": 7200}  # no timer wakes the loop in the test
DEADLINE = 60  # each exchange takes about a second; only there so the test ends


class Exchange:
    """Sends data on sock from one thread and reads until want bytes have
    come back (or EOF) in another."""

    def __init__(self, sock, data, want):
        self.sock = sock
        self.want = want
        self.sent = 0
        self.got = 0
        self.done = threading.Event()
        self.started = time.monotonic()
        self._data = data
        for target in (self._send, self._recv):
            threading.Thread(target=target, daemon=True).start()

    def _send(self):
        view = memoryview(self._data)
        try:
            while self.sent < len(view):
                self.sent += self.sock.send(view[self.sent:self.sent + (1 << 20)])
        except OSError:
            pass

    def _recv(self):
        try:
            while self.got < self.want:
                b = self.sock.recv(1 << 20)
                if not b:
                    break
                self.got += len(b)
        except OSError:
            pass
        self.done.set()

    def wait(self, what):
        """Fails if the exchange has not ended DEADLINE seconds after it
        started; returns how long it took."""
        while not self.done.wait(0.5):
            t.check(time.monotonic() - self.started < DEADLINE,
                    "%s: after %d s, %d of %d bytes sent and %d of %d bytes of replies "
                    "received: the replies are stalled" % (what, DEADLINE, self.sent,
                                                           len(self._data), self.got, self.want))
        t.check_eq(self.got, self.want, "%s: bytes of replies" % what)
        return time.monotonic() - self.started


def server_side(env):
    port = env.ports.take()
    allow = env.ports.take_range(1)
    conf = t.write_json(env, "mgrokd.json", {
        "listen": "127.0.0.1:%d" % port,
        "auth": {"method": "token", "token": TOKEN},
        "allow_ports": ["%d-%d" % allow],
        "heartbeat": HEARTBEAT})
    srv = env.start_server(token=None, config=conf)
    raw = t.RawSession(port, timeout=DEADLINE).handshake(TOKEN)
    try:
        frame = t.f_register(b"")
        raw.send(frame)
        first = raw.next_frame(t.REGISTER_ACK)
        t.check_eq(first.status, t.ACK_INVALID, "REGISTER_ACK to an empty name")
        ack = t.f_register_ack(first.status, b"", 0, first.message.encode())
        n = (16 << 20) // len(frame)
        raw.sock.settimeout(None)  # the Exchange's deadline applies
        took = Exchange(raw.sock, frame * n, n * len(ack)).wait("1: mgrokd")
    finally:
        raw.close()
    t.log("1: %d REGISTER frames, %d MiB of REGISTER_ACK read in %.1f s"
          % (n, (n * len(ack)) >> 20, took))
    t.check(srv.alive(), "mgrokd died")
    t.check_eq(srv.stop(), 0, "exit code of mgrokd on SIGTERM")


def client_side(env):
    port = env.ports.take()
    public = env.ports.take()
    fake = t.FakeServer(port)
    cconf = env.client_config(port, [{"name": "web", "type": "tcp", "local": "127.0.0.1:9"}],
                              token=TOKEN, heartbeat=HEARTBEAT, log={"level": "error"})
    cl = env.start_client(None, None, token=None, config=cconf, lines=0, cname="mgrok")
    try:
        sess = fake.accept(20)
        sess.serve_registration(TOKEN, public)
        cl.wait_lines(1)
        sample = t.f_new_stream(2, b"nope")
        n = (16 << 20) // len(sample)
        sess.sock.settimeout(None)  # the Exchange's deadline applies
        took = Exchange(sess.sock, t.f_new_streams(2, n), n * len(t.f_reset(2, t.RESET_REFUSED))
                        ).wait("2: mgrok")
        sess.close()
    finally:
        fake.close()
    t.log("2: %d NEW_STREAM frames, %d RESETs read in %.1f s" % (n, n, took))
    t.check(cl.alive(), "mgrok died")
    t.check_eq(cl.stop(), 0, "exit code of mgrok on SIGTERM")


def main(env):
    with env.case("1: mgrokd and a REGISTER flood whose replies are read"):
        server_side(env)
    with env.case("2: mgrok and a NEW_STREAM flood whose RESETs are read"):
        client_side(env)


t.run(main)
