"""The PROXY protocol (HAProxy's proxy-protocol.txt), versions 1 and 2, as
the tests need it: headers built by hand the way a load balancer sends
them, a strict parser for the headers mgrok writes to a local service,
services that report the header they got, and Balancer, a relay that puts
a header in front of every connection it forwards (doc/protocol.md 8)."""

import ipaddress
import json
import select
import socket
import struct
import threading

from .checks import DEADLINE, TestFailure
from .payloads import CHUNK

V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"
V1_MAX = 107  # the longest v1 line, CRLF included
V2_HEADER = 16
CMD_LOCAL, CMD_PROXY = 0, 1
AF_UNSPEC, AF_INET, AF_INET6, AF_UNIX = 0, 1, 2, 3
T_UNSPEC, T_STREAM, T_DGRAM = 0, 1, 2


# ---- building headers (what a balancer sends) ---------------------------------------


def _is6(host):
    return ":" in host


def v1_header(src, dst, proto=None):
    """"PROXY TCP4 SRC DST SPORT DPORT\\r\\n" for src, dst = (host, port);
    src None: "PROXY UNKNOWN\\r\\n"."""
    if src is None:
        return b"PROXY UNKNOWN\r\n"
    proto = proto or ("TCP6" if _is6(src[0]) else "TCP4")
    return ("PROXY %s %s %s %d %d\r\n" % (proto, src[0], dst[0], src[1], dst[1])).encode()


def tlv(kind, value):
    return struct.pack(">BH", kind, len(value)) + value


def v2_header(src, dst, dgram=False, local=False, tlvs=b"", version=2, command=None):
    """A v2 header for src -> dst ((host, port) each, the same family);
    local: the LOCAL command without addresses; tlvs: raw TLV bytes after
    the addresses. version and command may be set to wrong values."""
    if local or src is None:
        cmd = CMD_LOCAL if command is None else command
        return V2_SIG + bytes([version << 4 | cmd, 0]) + struct.pack(">H", len(tlvs)) + tlvs
    fam = AF_INET6 if _is6(src[0]) else AF_INET
    af = socket.AF_INET6 if fam == AF_INET6 else socket.AF_INET
    body = (socket.inet_pton(af, src[0]) + socket.inet_pton(af, dst[0]) +
            struct.pack(">HH", src[1], dst[1]) + tlvs)
    cmd = CMD_PROXY if command is None else command
    return (V2_SIG + bytes([version << 4 | cmd, fam << 4 | (T_DGRAM if dgram else T_STREAM)]) +
            struct.pack(">H", len(body)) + body)


# ---- parsing headers (what a local service gets) -------------------------------------


class Header:
    """A parsed header: version (1, 2), command ("PROXY", "LOCAL"), family
    ("INET", "INET6", None without addresses), transport ("TCP4", "TCP6",
    "UNKNOWN" for v1; "STREAM", "DGRAM", "UNSPEC" for v2), src and dst as
    (host, port) or None, tlvs (bytes), raw (the header's bytes)."""

    def __init__(self, version, command, transport, src, dst, tlvs, raw):
        self.version, self.command, self.transport = version, command, transport
        self.src, self.dst, self.tlvs, self.raw = src, dst, tlvs, raw
        self.family = None if src is None else "INET6" if _is6(src[0]) else "INET"

    def as_dict(self):
        return {"version": self.version, "command": self.command, "family": self.family,
                "transport": self.transport, "src": self.src and list(self.src),
                "dst": self.dst and list(self.dst), "tlvs": self.tlvs.hex(),
                "length": len(self.raw)}

    def __repr__(self):
        return "Header(%r)" % self.as_dict()


def _bad(msg, buf):
    raise TestFailure("not a valid PROXY header: %s (bytes: %r)" % (msg, bytes(buf[:120])))


def _v1_addr(proto, text, buf):
    try:
        a = (ipaddress.IPv4Address if proto == "TCP4" else ipaddress.IPv6Address)(text)
    except ValueError:
        _bad("v1: %r is no %s address" % (text, proto), buf)
    if proto == "TCP4" and str(a) != text:
        _bad("v1: %r is no dotted quad as inet_ntop writes it" % text, buf)
    if proto == "TCP6":  # as inet_ntop writes it, like the v2 addresses
        return socket.inet_ntop(socket.AF_INET6, socket.inet_pton(socket.AF_INET6, text))
    return str(a)


def _v1_port(text, buf):
    if not text.isdigit() or len(text) > 5 or (len(text) > 1 and text[0] == "0") or \
            int(text) > 65535:
        _bad("v1: %r is no port" % text, buf)
    return int(text)


def _parse_v1(buf):
    end = buf.find(b"\r\n", 0, V1_MAX)
    if end < 0:
        if b"\n" in buf[:V1_MAX]:
            _bad("v1: a line feed without a carriage return", buf)
        if len(buf) >= V1_MAX:
            _bad("v1: no CRLF within %d bytes" % V1_MAX, buf)
        return None
    raw = bytes(buf[:end + 2])
    try:
        line = raw[:-2].decode("ascii")
    except UnicodeDecodeError:
        _bad("v1: bytes that are not ASCII", buf)
    if any(not (0x20 <= ord(c) < 0x7f) for c in line):
        _bad("v1: a control character in the line", buf)
    fields = line.split(" ")
    if fields[:2] == ["PROXY", "UNKNOWN"]:
        return Header(1, "PROXY", "UNKNOWN", None, None, b"", raw)
    if len(fields) != 6 or fields[1] not in ("TCP4", "TCP6") or "" in fields:
        _bad("v1: expected PROXY TCP4|TCP6 SRC DST SPORT DPORT with single spaces", buf)
    proto = fields[1]
    src = (_v1_addr(proto, fields[2], buf), _v1_port(fields[4], buf))
    dst = (_v1_addr(proto, fields[3], buf), _v1_port(fields[5], buf))
    return Header(1, "PROXY", proto, src, dst, b"", raw)


def _parse_v2(buf):
    if len(buf) < V2_HEADER:
        return None
    ver, cmd = buf[12] >> 4, buf[12] & 0x0F
    fam, trans = buf[13] >> 4, buf[13] & 0x0F
    if ver != 2:
        _bad("v2: version %d" % ver, buf)
    if cmd not in (CMD_LOCAL, CMD_PROXY):
        _bad("v2: command %d" % cmd, buf)
    if cmd == CMD_PROXY and (fam > AF_UNIX or trans > T_DGRAM):
        _bad("v2: family/transport byte 0x%02x" % buf[13], buf)
    length = struct.unpack(">H", bytes(buf[14:16]))[0]
    if len(buf) < V2_HEADER + length:
        return None
    raw = bytes(buf[:V2_HEADER + length])
    body = raw[V2_HEADER:]
    if cmd == CMD_LOCAL:  # family and block to be ignored (the spec)
        return Header(2, "LOCAL", "UNSPEC", None, None, body, raw)
    transport = {T_UNSPEC: "UNSPEC", T_STREAM: "STREAM", T_DGRAM: "DGRAM"}[trans]
    need = {AF_UNSPEC: 0, AF_INET: 12, AF_INET6: 36, AF_UNIX: 216}[fam]
    if length < need:
        _bad("v2: %d bytes cannot hold the addresses of family %d" % (length, fam), buf)
    if fam in (AF_INET, AF_INET6):
        n, af = (4, socket.AF_INET) if fam == AF_INET else (16, socket.AF_INET6)
        sport, dport = struct.unpack(">HH", body[2 * n:2 * n + 4])
        src = (socket.inet_ntop(af, body[:n]), sport)
        dst = (socket.inet_ntop(af, body[n:2 * n]), dport)
    else:
        src = dst = None
    tlvs, rest = body[need:], body[need:]
    while rest:  # the TLVs must fill the rest exactly
        if len(rest) < 3 or 3 + struct.unpack(">H", rest[1:3])[0] > len(rest):
            _bad("v2: TLVs that do not fill the header exactly", buf)
        rest = rest[3 + struct.unpack(">H", rest[1:3])[0]:]
    return Header(2, "PROXY", transport, src, dst, tlvs, raw)


def parse_header(buf):
    """(Header, bytes used) for a whole header at the start of buf; None when
    buf is a valid beginning of one but not all of it; TestFailure when it is
    no header (strictly: v1 syntax as the spec writes it, v2 signature,
    version, command, family and lengths)."""
    buf = bytes(buf)
    if buf[:len(V2_SIG)] == V2_SIG[:len(buf)]:
        h = _parse_v2(buf) if len(buf) >= len(V2_SIG) else None
    elif buf[:6] == b"PROXY "[:len(buf)]:
        h = _parse_v1(buf) if len(buf) >= 6 else None
    else:
        _bad("neither the v1 nor the v2 signature", buf)
    return None if h is None else (h, len(h.raw))


def read_header(conn, limit=V2_HEADER + 65535):
    """Reads a header off a socket: (Header, the bytes after it that came
    in the same reads). Fails at EOF before a whole header."""
    buf = b""
    while True:
        got = parse_header(buf) if buf else None
        if got:
            return got[0], buf[got[1]:]
        b = conn.recv(CHUNK)
        if not b:
            raise TestFailure("EOF after %d bytes, before a whole PROXY header: %r"
                              % (len(buf), buf[:120]))
        buf += b
        if len(buf) > limit:
            _bad("longer than any header", buf)


# ---- services behind a tunnel with proxy_protocol ------------------------------------


def pp_echo_handler(conn):
    """A TCP service behind "proxy_protocol": reads the header, answers one
    JSON line describing it (Header.as_dict), then echoes everything after
    the header until EOF. A bad header is answered "ERROR reason\\n" (and
    raised, for the service's .errors)."""
    try:
        h, rest = read_header(conn)
    except TestFailure as e:
        conn.sendall(b"ERROR " + str(e).replace("\n", " ").encode() + b"\n")
        raise
    conn.sendall(json.dumps(h.as_dict()).encode() + b"\n")
    if rest:
        conn.sendall(rest)
    while True:
        b = conn.recv(CHUNK)
        if not b:
            break
        conn.sendall(b)
    conn.shutdown(socket.SHUT_WR)


def read_report(sock, what="the service's report of its PROXY header"):
    """The JSON line a pp_echo_handler answers first, as a dict; fails on
    its ERROR line or EOF."""
    line = b""
    while not line.endswith(b"\n"):
        b = sock.recv(1)
        if not b:
            raise TestFailure("EOF while reading %s (got %r)" % (what, line))
        line += b
        if len(line) > 4096:
            raise TestFailure("%s: no line end in 4096 bytes" % what)
    return read_report_line(line, what)


def read_report_line(line, what="the service's report of its PROXY header"):
    """read_report for a line already read."""
    if line.startswith(b"ERROR "):
        raise TestFailure("%s: %s" % (what, line[6:].decode("utf-8", "replace").strip()))
    try:
        return json.loads(line)
    except ValueError:
        raise TestFailure("%s: not a report: %r" % (what, line[:200]))


class PpUdpHandler:
    """A UDP service's handler behind a UDP proxy with proxy_protocol:
    a datagram that starts with the v2 signature must be a whole header
    and then the data (answered b"H" + JSON of the header + b"\\n" + data);
    any other is bare (answered b"B" + data). Data of more than BIG bytes
    is answered as b"LEN n" instead. .flows[addr] lists, per
    source address, "H" or "B" for each datagram in order, and .headers[addr]
    the headers parsed."""

    BIG = 60000

    def __init__(self):
        self.flows = {}
        self.headers = {}
        self.lock = threading.Lock()

    def __call__(self, data, addr):
        addr = tuple(addr[:2])
        if data.startswith(V2_SIG):
            got = parse_header(data)
            if got is None:
                raise TestFailure("a datagram with a cut v2 header: %r" % data[:60])
            h, used = got
            with self.lock:
                self.flows.setdefault(addr, []).append("H")
                self.headers.setdefault(addr, []).append(h)
            return b"H" + json.dumps(h.as_dict()).encode() + b"\n" + self._data(data[used:])
        if data.startswith(b"PROXY "):
            raise TestFailure("a v1 header on a datagram: %r" % data[:60])
        with self.lock:
            self.flows.setdefault(addr, []).append("B")
        return b"B" + self._data(data)

    def _data(self, data):
        return data if len(data) <= self.BIG else b"LEN %d" % len(data)


def split_udp_reply(reply):
    """(header dict or None, data) of a PpUdpHandler's answer."""
    if reply[:1] == b"H":
        line, _, data = reply[1:].partition(b"\n")
        return json.loads(line), data
    if reply[:1] == b"B":
        return None, reply[1:]
    raise TestFailure("an answer of the PROXY UDP service that is neither H nor B: %r"
                      % reply[:60])


# ---- a load balancer ------------------------------------------------------------------


class Balancer:
    """A load balancer on host:port (0: any free one) in front of target
    (host, port): each connection it accepts it forwards from the address
    source (one of mgrokd's proxy_protocol_from), writing first
    header(client, listen) -- client and listen are (host, port) -- then
    relaying both ways, each direction until EOF. .count counts
    connections, .errors the relay's exceptions."""

    def __init__(self, target, source, header, host="127.0.0.1", port=0, name="balancer"):
        self.target, self.source, self.header, self.name = target, source, header, name
        self.sock = socket.socket(socket.AF_INET6 if _is6(host) else socket.AF_INET)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(64)
        self.host, self.port = host, self.sock.getsockname()[1]
        self.count = 0
        self.errors = []
        self._conns = []
        self._lock = threading.Lock()
        self._stop = False
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()

    def _accept_loop(self):
        while not self._stop:
            try:
                r, _, _ = select.select([self.sock], [], [], 0.2)
                if not r:
                    continue
                client, addr = self.sock.accept()
            except (OSError, ValueError):
                continue
            threading.Thread(target=self._serve, args=(client, addr[:2]), daemon=True).start()

    def _serve(self, client, addr):
        up = None
        try:
            up = socket.create_connection(self.target, timeout=DEADLINE,
                                          source_address=(self.source, 0))
            client.settimeout(DEADLINE)
            with self._lock:
                self.count += 1
                self._conns += [client, up]
            up.sendall(self.header(addr, (self.host, self.port)))
            back = threading.Thread(target=self._pipe, args=(up, client), daemon=True)
            back.start()
            self._pipe(client, up)
            back.join(DEADLINE)
        except Exception as e:  # reported by the test through .errors
            with self._lock:
                self.errors.append(e)
        finally:
            client.close()
            if up:
                up.close()

    @staticmethod
    def _pipe(src, dst):
        try:
            while True:
                b = src.recv(CHUNK)
                if not b:
                    break
                dst.sendall(b)
            dst.shutdown(socket.SHUT_WR)
        except (ConnectionResetError, BrokenPipeError, OSError):
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

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
