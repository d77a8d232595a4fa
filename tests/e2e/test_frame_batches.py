#!/usr/bin/env python3
"""Many DATA frames in one read of mgrokd's session socket, with a
hand-written client.  mgrokd gathers the payloads of one read per stream and
writes them with one writev at the end of the read (at most 64 per read, the
rest written at once; a frame that straddles two reads is written at once; a
CLOSE first writes the stream's gathered bytes; a RESET drops them).  This
proves, byte for byte, that:

1. 300 small frames and a CLOSE in one batch reach the visitor whole and in
   order, then EOF (past the 64-payload limit);
2. frames of three streams interleaved in one batch, with 65535-byte frames
   that straddle the server's reads, each reach their own visitor whole and
   in order, then EOF;
3. a RESET behind DATA in the same batch ends the visitor's connection with
   nothing but a prefix of those bytes, mgrokd stays up, and the session
   serves the next visitor exactly;
4. a visitor that does not read at first gets all of a window-sized batch
   exactly once it reads, and mgrokd returns WINDOW_UPDATE credit only for
   bytes it has written to the visitor's socket (never for bytes waiting in
   its pending buffer), at least half a window once everything is read."""
import fcntl
import os
import select
import socket
import struct
import sys
import termios
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mgroktest as t
from mgroktest import f_close, f_data, f_hello, f_register, f_reset, RawSession

TOKEN = "frame-batches-token-93c1"
REPLY_DEADLINE = 20  # per frame or visitor read; only there so nothing hangs
SIZE_OF_ADDR = {0: 0, 4: 6, 6: 18}  # addr bytes after the family byte


# ---- frames, read without ever blocking mid-frame -----------------------------------


def frame_size(buf):
    """The size of the server frame at the start of buf, or None while its
    length fields are incomplete."""
    if not buf:
        return None
    kind = buf[0]

    def need(n):
        return n if len(buf) >= n else None

    if kind == t.HEARTBEAT:
        return 1
    if kind == t.WINDOW_UPDATE:
        return 9
    if kind == t.CLOSE:
        return 5
    if kind == t.RESET:
        return 6
    if kind == t.DATA:
        return need(7) and 7 + struct.unpack(">H", buf[5:7])[0]
    if kind == t.GO_AWAY:
        return need(4) and 4 + struct.unpack(">H", buf[2:4])[0]
    if kind == t.NEW_STREAM:
        if not need(6) or not need(6 + buf[5] + 1):
            return None
        family = buf[6 + buf[5]]
        t.check(family in SIZE_OF_ADDR, "NEW_STREAM with address family %d" % family)
        return 6 + buf[5] + 1 + SIZE_OF_ADDR[family]
    if kind == t.REGISTER_ACK:
        if not need(6) or not need(6 + buf[5] + 2):
            return None
        name_end = 6 + buf[5]
        return name_end + 2 + struct.unpack(">H", buf[name_end:name_end + 2])[0]
    raise t.TestFailure("the server sent a frame of unknown type 0x%02x (%r)" % (kind, buf[:32]))


class Session:
    """A RawSession whose frames are read with select, so that frames can be
    collected while visitors read.  Every WINDOW_UPDATE is added to
    .credit[stream ID]; HEARTBEAT is skipped."""

    def __init__(self, srv, port, client_id):
        self.raw = RawSession(srv.port, timeout=REPLY_DEADLINE).handshake(TOKEN)
        self.raw.send(f_hello(client_id))
        self.credit = {}
        self.frames = []
        self.eof = False
        self.raw.send(f_register("batch", port))
        ack = self.expect(t.REGISTER_ACK)
        t.check_eq(ack.status, t.ACK_OK, "REGISTER batch on port %d" % port, message=ack.message)
        t.check_eq(ack.port, port, "the port of REGISTER_ACK")

    def send(self, data):
        self.raw.send(data)

    def close(self):
        self.raw.close()

    def poll(self, timeout=0.0):
        """Waits up to timeout seconds for a frame other than WINDOW_UPDATE
        and HEARTBEAT (none: takes whatever has come); returns the number of
        such frames queued in .frames."""
        end = time.monotonic() + timeout
        while True:
            while True:
                n = frame_size(self.raw.buf)
                if n is None or len(self.raw.buf) < n:
                    break
                f = self.raw.read_frame()  # the whole frame is buffered: no recv
                if f.type == t.WINDOW_UPDATE:
                    self.credit[f.sid] = self.credit.get(f.sid, 0) + f.increment
                elif f.type != t.HEARTBEAT:
                    self.frames.append(f)
            if self.frames or self.eof:
                return len(self.frames)
            r, _, _ = select.select([self.raw.sock], [], [], max(0.0, end - time.monotonic()))
            if not r:
                return len(self.frames)
            try:
                b = self.raw.sock.recv(65536)
            except ConnectionResetError:
                b = b""
            if not b:
                self.eof = True
            self.raw.buf += b

    def expect(self, kind, sid=None, what=None):
        """The next frame other than WINDOW_UPDATE and HEARTBEAT, which must
        be of type kind (and of stream sid)."""
        what = what or t.FRAME_NAMES[kind]
        t.check(self.poll(REPLY_DEADLINE), "%s while waiting for %s" % (
            "connection closed" if self.eof else "timed out", what))
        f = self.frames.pop(0)
        t.check(f.type == kind and (sid is None or f.sid == sid),
                "expected %s, got %r" % (what, f))
        return f


# ---- visitors -----------------------------------------------------------------------


def open_visitors(sess, port, n, sockopts=()):
    """n visitors connected to port; returns [(socket, stream ID)] in
    connection order, matched to NEW_STREAM by source port."""
    socks = []
    for _ in range(n):
        v = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        for level, opt, value in sockopts:
            v.setsockopt(level, opt, value)
        v.settimeout(REPLY_DEADLINE)
        v.connect(("127.0.0.1", port))
        socks.append(v)
    by_port = {}
    for _ in range(n):
        ns = sess.expect(t.NEW_STREAM)
        t.check_eq(ns.name, b"batch", "NEW_STREAM's proxy name")
        by_port[ns.port] = ns.sid
    out = []
    for v in socks:
        sid = by_port.get(v.getsockname()[1])
        t.check(sid, "no NEW_STREAM for the visitor from port %d" % v.getsockname()[1],
                streams=by_port)
        out.append((v, sid))
    return out


def read_until_eof(visitors, limit):
    """Reads all visitors at once until each has reached EOF; returns their
    bytes.  Fails after REPLY_DEADLINE seconds without progress, or if a
    visitor gets more than limit bytes."""
    got = {v: [] for v in visitors}
    count = {v: 0 for v in visitors}
    open_ = set(visitors)
    while open_:
        r, _, _ = select.select(list(open_), [], [], REPLY_DEADLINE)
        t.check(r, "timed out: %d visitor(s) still without EOF" % len(open_),
                received=[count[v] for v in visitors])
        for v in r:
            b = v.recv(1 << 20)
            if not b:
                open_.discard(v)
                continue
            got[v].append(b)
            count[v] += len(b)
            t.check(count[v] <= limit, "a visitor got more bytes than were sent to it",
                    received=count[v], sent=limit)
    return [b"".join(got[v]) for v in visitors]


def check_bytes(got, expected, what):
    if got == expected:
        return
    diff = next((i for i, (a, b) in enumerate(zip(got, expected)) if a != b),
                min(len(got), len(expected)))
    raise t.TestFailure("%s: %d bytes received, %d sent, first difference at offset %d"
                        % (what, len(got), len(expected), diff))


def close_visitor(sess, v, sid):
    """The visitor closes: mgrokd passes its EOF on as CLOSE."""
    v.close()
    sess.expect(t.CLOSE, sid, "CLOSE for stream %d after its visitor closed" % sid)


def check_credit(sess, sent, what):
    """Credit never exceeds what a stream received (no window growth here:
    these streams never wait at their limit)."""
    for sid, n in sent.items():
        t.check(sess.credit.get(sid, 0) <= n, "%s: more WINDOW_UPDATE credit for stream %d "
                "than bytes sent on it" % (what, sid), credit=sess.credit.get(sid, 0), sent=n)


# ---- the cases ----------------------------------------------------------------------


def small_frames(srv, port):
    sess = Session(srv, port, "frame-batches-1")
    try:
        [(v, sid)] = open_visitors(sess, port, 1)
        payloads = [t.payload(10000 + i, 1 + (i * 7919) % 200) for i in range(300)]
        sess.send(b"".join(f_data(sid, p) for p in payloads) + f_close(sid))
        expected = b"".join(payloads)
        [got] = read_until_eof([v], len(expected))
        check_bytes(got, expected, "300 frames and CLOSE in one batch")
        close_visitor(sess, v, sid)
        check_credit(sess, {sid: len(expected)}, "300 small frames")
        t.log("1: 300 frames (%d bytes) + CLOSE in one sendall: exact, then EOF" % len(got))
    finally:
        sess.close()


BIG_AT = (40, 100, 160)  # frame indices that carry 65535 bytes


def interleaved_streams(srv, port):
    sess = Session(srv, port, "frame-batches-2")
    try:
        visitors = open_visitors(sess, port, 3)
        payloads = []
        for k in range(3):
            sizes = [65535 if i in BIG_AT else 1 + (i * 53 + k * 17) % 300 for i in range(200)]
            payloads.append([t.payload(100000 * (k + 1) + i, n) for i, n in enumerate(sizes)])
            total = sum(sizes)
            t.check(total < t.WINDOW, "the batch of a stream must fit its initial window",
                    total=total)
        batch = []
        for i in range(200):
            for k, (_, sid) in enumerate(visitors):
                batch.append(f_data(sid, payloads[k][i]))
        batch += [f_close(sid) for _, sid in visitors]
        batch = b"".join(batch)
        sess.send(batch)
        expected = [b"".join(p) for p in payloads]
        got = read_until_eof([v for v, _ in visitors], max(len(e) for e in expected))
        for k, (v, sid) in enumerate(visitors):
            check_bytes(got[k], expected[k], "visitor %s (stream %d) of three interleaved"
                        % ("ABC"[k], sid))
        for v, sid in visitors:
            close_visitor(sess, v, sid)
        check_credit(sess, {sid: len(expected[k]) for k, (_, sid) in enumerate(visitors)},
                     "three interleaved streams")
        t.log("2: 3 x 200 interleaved frames (%s bytes, one batch of %d bytes): each exact, "
              "then EOF" % ("/".join(str(len(e)) for e in expected), len(batch)))
    finally:
        sess.close()


def visitor_end(v, expected):
    """What a visitor whose stream was reset receives, until its connection
    ends (RST or FIN); only a prefix of expected is allowed."""
    got = b""
    ended = None
    while ended is None:
        r, _, _ = select.select([v], [], [], REPLY_DEADLINE)
        t.check(r, "timed out: the visitor of a reset stream is still connected",
                received=len(got))
        try:
            b = v.recv(65536)
        except ConnectionResetError:
            ended = "reset"
            break
        if not b:
            ended = "EOF"
        got += b
    t.check(expected.startswith(got), "the visitor of a reset stream got bytes that are not "
            "a prefix of those sent", received=len(got), sent=len(expected))
    return ended, len(got)


def reset_in_batch(srv, port):
    sess = Session(srv, port, "frame-batches-3")
    try:
        for nframes in (10, 100):  # gathered only; past the 64-payload limit
            [(v, sid)] = open_visitors(sess, port, 1)
            payloads = [t.payload(20000 + nframes + i, 1 + (i * 31) % 500)
                        for i in range(nframes)]
            sess.send(b"".join(f_data(sid, p) for p in payloads) +
                      f_reset(sid, t.RESET_CANCEL))
            ended, n = visitor_end(v, b"".join(payloads))
            v.close()
            t.check(srv.alive(), "mgrokd died after DATA and RESET in one batch")
            t.log("3: %d frames + RESET in one sendall: the visitor saw %s after %d of %d "
                  "bytes" % (nframes, ended, n, sum(map(len, payloads))))

            # The same session serves the next visitor exactly.
            [(v2, sid2)] = open_visitors(sess, port, 1)
            t.check(sid2 > sid, "a new stream after the reset one", reset=sid, new=sid2)
            data = t.payload(30000 + nframes, 5000)
            sess.send(f_data(sid2, data[:1000]) + f_data(sid2, data[1000:]) + f_close(sid2))
            [got] = read_until_eof([v2], len(data))
            check_bytes(got, data, "the visitor after a reset stream")
            close_visitor(sess, v2, sid2)
        t.log("3: after each reset the session served a new visitor exactly")
    finally:
        sess.close()


def proc_tcp_tx_queue(local_port, remote_port):
    """Bytes mgrokd has written to its socket local_port -> remote_port that
    the visitor has not acknowledged (write_seq - snd_una)."""
    queues = t.tcp_queues(local_port, remote_port)
    t.check(queues is not None, "mgrokd's socket %d -> %d is not in /proc/net/tcp"
            % (local_port, remote_port))
    return queues[0]


def barrier(sess, what):
    """A REGISTER with an empty name, and its REGISTER_ACK INVALID.  mgrokd
    handles a session's frames in order, writes the payloads of a read to
    the visitors' sockets before its output goes out, and sends WINDOW_UPDATE
    as it writes, in order with its other frames: once the answer is here,
    every DATA frame sent before has been written as far as the sockets take
    it, and all the credit for what was written is counted in sess.credit."""
    sess.send(f_register(b""))
    ack = sess.expect(t.REGISTER_ACK, what="REGISTER_ACK to the barrier " + what)
    t.check_eq(ack.status, t.ACK_INVALID, "the status of the barrier's REGISTER_ACK")


def slow_visitor(srv, port):
    sess = Session(srv, port, "frame-batches-4")
    try:
        # A 4 KiB receive buffer keeps the visitor's TCP window small; a small
        # MSS makes Linux size mgrokd's send buffer for this connection from
        # it (about 160 KiB instead of megabytes on loopback), so that part
        # of the window waits in mgrokd's pending buffer until the visitor
        # reads.
        opts = [(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)]
        if hasattr(socket, "TCP_MAXSEG"):
            opts.append((socket.IPPROTO_TCP, socket.TCP_MAXSEG, 536))
        [(v, sid)] = open_visitors(sess, port, 1, opts)
        vport = v.getsockname()[1]
        payloads = [t.payload(40000 + i, 16384) for i in range(t.WINDOW // 16384)]
        expected = b"".join(payloads)
        sess.send(b"".join(f_data(sid, p) for p in payloads))
        # mgrokd has handled every DATA frame: written what the visitor's
        # socket takes, kept the rest pending.
        barrier(sess, "after the window's DATA")

        got = bytearray()
        worst = {"credit_over_read": 0, "least_written": t.WINDOW}

        def check_written():
            # Credit first, then what mgrokd has written so far: written only
            # grows, so credit seen earlier can never exceed it.  tx_queue is
            # read before the visitor's queue, so a byte in transit between
            # the two is counted twice, never missed.
            t.check(not sess.poll(), "unexpected frame on the slow visitor's session",
                    frames=sess.frames)
            credit = sess.credit.get(sid, 0)
            tx = proc_tcp_tx_queue(port, vport)
            inq = struct.unpack("i", fcntl.ioctl(v.fileno(), termios.FIONREAD, b"\0" * 4))[0]
            written = len(got) + inq + tx
            t.check(credit <= written, "WINDOW_UPDATE credit for bytes mgrokd has not "
                    "written to the visitor's socket", credit=credit, written=written,
                    visitor_read=len(got), visitor_queue=inq, mgrokd_send_queue=tx)
            worst["credit_over_read"] = max(worst["credit_over_read"], credit - len(got))
            worst["least_written"] = min(worst["least_written"], written)
            return credit, written

        credit, written = check_written()
        t.log("4: before the visitor reads: %d bytes written to its socket, %d pending in "
              "mgrokd, credit %d" % (written, t.WINDOW - written, credit))
        end = time.monotonic() + REPLY_DEADLINE
        while len(got) < len(expected):
            r, _, _ = select.select([v], [], [], max(0.0, end - time.monotonic()))
            t.check(r, "timed out: the slow visitor has %d of %d bytes" %
                    (len(got), len(expected)))
            b = v.recv(65536)
            t.check(b, "EOF after %d of %d bytes" % (len(got), len(expected)))
            got += b
            t.check(len(got) <= len(expected), "the visitor got more bytes than were sent",
                    received=len(got))
            end = time.monotonic() + REPLY_DEADLINE
            check_written()
        check_bytes(bytes(got), expected, "the slow visitor's 256 KiB")

        # Everything is written now, and mgrokd sends credit as it writes: after
        # a barrier all of it has come (half a window at least), and never more
        # than what was sent.
        barrier(sess, "after the visitor read all")
        credit, _ = check_written()
        t.check(credit >= t.WINDOW // 2, "less than half a window of WINDOW_UPDATE credit after "
                "the visitor read all", credit=credit)
        t.check(credit <= t.WINDOW, "more credit than bytes sent", credit=credit)

        sess.send(f_close(sid))
        v.settimeout(REPLY_DEADLINE)
        t.check_eq(v.recv(1), b"", "after CLOSE the slow visitor gets EOF")
        close_visitor(sess, v, sid)
        t.log("4: slow visitor: 262144 bytes exact; credit %d (<= bytes written each time; "
              "at most %d pending at once; credit ran up to %d bytes ahead of what the "
              "visitor had read, held in kernel buffers)" %
              (credit, t.WINDOW - worst["least_written"], worst["credit_over_read"]))
    finally:
        sess.close()


def main(env):
    srv = env.start_server(token=TOKEN, nports=4, extra=["-v"])
    lo, _ = srv.allow
    cases = (("1: 300 small frames in one batch", small_frames),
             ("2: three interleaved streams with big frames", interleaved_streams),
             ("3: DATA then RESET in one batch", reset_in_batch),
             ("4: a slow visitor and its credit", slow_visitor))
    for i, (what, case) in enumerate(cases):
        with env.case(what):
            case(srv, lo + i)
        t.check(srv.alive(), "mgrokd died in case %s" % what)


t.run(main)
