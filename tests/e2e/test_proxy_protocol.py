#!/usr/bin/env python3
"""The PROXY protocol at both edges of a tunnel (doc/protocol.md 8).

1. Out over TCP: a proxy with "proxy_protocol" v1 or v2 (config file, and
   --proxy-protocol with the quick form) gives the local service a header
   before any visitor byte -- source the visitor's 127.0.0.x address and
   port, destination 127.0.0.1 and the public port (also one the server
   picked) -- then the visitor's bytes exactly, 4 MiB both ways; eight
   visitors at once from eight addresses each get their own header; IPv6
   visitors over [::1] get TCP6 / INET6 headers; against a FakeServer, a
   NEW_STREAM without an address gives UNKNOWN / LOCAL, an IPv6 one over an
   IPv4 tunnel TCP6 with the destination IPv4-mapped.
2. Out over UDP: a v2 DGRAM header (also when v1 is asked for) in front of
   the first datagram of each flow only; two visitors, two flows, one
   header each.
3. In on public TCP ports, from proxy_protocol_from 127.0.0.2: v1, v2 (with
   a TLV), and headers split over several sends name the visitor the
   service sees; UNKNOWN / LOCAL keep the balancer's address; a visitor
   from the balancer without a header, or silent, is closed with a warn
   line; a PROXY-looking line from an untrusted address is data; a real
   relay (Balancer) in front of the public port passes the visitor's
   address through two hops; a TCP6 header reaches the service through an
   IPv4 tunnel; UDP public ports pass a header-like datagram as data;
   visitors waiting for their header count against max_streams.
4. In on the control port: a header names the session's address in the
   log (v1, v2 with a 1000-byte TLV, TCP6, UNKNOWN); a trusted source with
   a garbage or no header and an untrusted source with one are closed with
   their log lines; rate limiting and max_pending_per_address count by the
   header's address; a real mgrok through a Balancer with TLS after the
   header; also a header in the same send as the TLS ClientHello.
5. Config errors: proxy_protocol_from with host bits, nonsense, not an
   array; proxy_protocol "v3"; --proxy-protocol v3 and without TYPE.
6. Three that failed when written: connections from the balancer that
   time out before their header, and its own health checks (LOCAL or
   UNKNOWN, then no mgrok handshake), must not block the balancer's
   address (and every client behind it); a flow whose first datagram has
   no room for the header in front must still give the service its
   visitor.
"""
import hashlib
import os
import re
import select
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mgroktest as t

TOKEN = "pp-Token-7f3e91c2a6b04d58"
WRONG = "pp-Wrong-0b5d27e8c1f94a36"
BALANCER = "127.0.0.2"
BIG = 4 * 1024 * 1024


def exchange(sock, seed, size):
    """Sends size bytes of pattern(seed) from a thread, half-closes, and
    reads the echo until EOF; checks it is the same bytes (by SHA-256)."""
    errors = []

    def send():
        try:
            for chunk in t.pattern(seed, size):
                sock.sendall(chunk)
            sock.shutdown(socket.SHUT_WR)
        except OSError as e:
            errors.append(e)
    th = threading.Thread(target=send, daemon=True)
    th.start()
    h, n = hashlib.sha256(), 0
    while True:
        b = sock.recv(t.CHUNK)
        if not b:
            break
        h.update(b)
        n += len(b)
    th.join(t.DEADLINE)
    t.check(not errors, "sending %d bytes failed" % size, errors=errors)
    t.check_eq(n, size, "bytes echoed after the header")
    t.check_eq(h.hexdigest(), t.pattern_digest(seed, size), "SHA-256 of the echo")


def check_report(rep, version, src, dst, what):
    want_t = {(1, "INET"): "TCP4", (1, "INET6"): "TCP6", (2, "INET"): "STREAM",
              (2, "INET6"): "STREAM"}[(version, "INET6" if ":" in src[0] else "INET")]
    got = (rep["version"], rep["command"], rep["transport"], tuple(rep["src"] or ()),
           tuple(rep["dst"] or ()), rep["tlvs"])
    t.check_eq(got, (version, "PROXY", want_t, tuple(src), tuple(dst), ""),
               "%s: (version, command, transport, src, dst, TLVs) of the header" % what,
               report=rep)


def visitor(port, host="127.0.0.1", source=None):
    s = t.connect(port, host, source=source)
    if source is None:
        return s
    t.check_eq(s.getsockname()[0], source, "a visitor's source address")
    return s


def is_closed(sock, timeout=15):
    """True once the peer has closed sock without sending a byte (EOF or
    reset); fails on bytes or if it stays open timeout seconds."""
    sock.settimeout(timeout)
    try:
        data = sock.recv(100)
    except ConnectionResetError:
        return True
    except socket.timeout:
        raise t.TestFailure("the connection stays open (waited %d s)" % timeout)
    t.check_eq(data, b"", "bytes on a connection that should have been closed")
    return True


def still_open(sock):
    r, _, _ = select.select([sock], [], [], 0)
    if not r:
        return True
    try:
        return sock.recv(1, socket.MSG_PEEK) != b""
    except OSError:
        return False


# ---- 1. out, TCP ----------------------------------------------------------------------


def out_tcp(env):
    srv = env.start_server(token=TOKEN, nports=3, name="mgrokd-out")
    lo, hi = srv.allow
    svc = env.service(t.pp_echo_handler, name="pp-echo")
    conf = env.client_config(srv, [
        {"name": "v1", "type": "tcp", "local": str(svc.port), "remote_port": lo,
         "proxy_protocol": "v1"},
        {"name": "v2", "type": "tcp", "local": "127.0.0.1:%d" % svc.port,
         "proxy_protocol": "v2"}], token=TOKEN, name="mgrok-out.json")
    cl = env.start_client(None, None, token=None, config=conf, lines=2, cname="mgrok-out")
    ports = sorted(line[2] for line in cl.public_lines())
    t.check_eq(ports[0], lo, "public port of proxy v1", lines=cl.stdout_lines())
    picked = ports[1]  # the server's choice for proxy v2
    left = ({lo + 1, hi} - {picked}).pop()
    quick = env.start_client(svc.port, srv, token=TOKEN, remote_port=left,
                             extra=("--proxy-protocol", "v2"), cname="mgrok-out-quick")
    t.check_eq(quick.public_port, left, "public port of the quick form")
    cases = [(1, lo, "config v1"), (2, picked, "config v2, port picked by the server"),
             (2, left, "quick form --proxy-protocol v2")]

    for version, port, what in cases:
        s = visitor(port, source="127.0.0.1")
        try:
            # The header comes first, before the visitor sends anything.
            rep = t.read_report(s, "%s: the service's report" % what)
            check_report(rep, version, s.getsockname(), ("127.0.0.1", port), what)
            exchange(s, seed=version * 100 + port % 100, size=BIG)
        finally:
            s.close()
        t.log("out %s: header %s then 4 MiB both ways intact" % (what, rep["transport"]))

    # Eight visitors at once, from eight addresses, on both proxies.
    results = [None] * 8

    def one(i):
        version, port, what = cases[i % 3]
        try:
            s = visitor(port, source="127.0.0.%d" % (3 + i))
            try:
                rep = t.read_report(s)
                check_report(rep, version, s.getsockname(), ("127.0.0.1", port),
                             "visitor %d (%s)" % (i, what))
                exchange(s, seed=1000 + i, size=256 * 1024 + 977 * i)
            finally:
                s.close()
            results[i] = "ok"
        except Exception as e:  # collected and reported below
            results[i] = repr(e)
    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(t.DEADLINE)
    t.check_eq(results, ["ok"] * 8, "eight concurrent visitors, each with its own header")
    t.log("out: 8 concurrent visitors from 127.0.0.3-10 each got their own header")
    for p in (cl, quick, srv):
        t.check(p.alive(), "%s died" % p.name)
    t.check_eq(quick.stop(), 0, "exit code of mgrok on SIGTERM")
    t.check_eq(cl.stop(), 0, "exit code of mgrok on SIGTERM")
    t.check_eq(srv.stop(), 0, "exit code of mgrokd on SIGTERM")


def out_tcp_ipv6(env):
    if not t.have_ipv6_loopback():
        t.log("out over IPv6: no ::1 on this machine, not tested")
        return
    srv = env.start_server(token=TOKEN, nports=2, listen_host="::1", name="mgrokd-out6")
    svc = env.service(t.pp_echo_handler, name="pp-echo6")
    lo, hi = srv.allow
    for version, port in ((1, lo), (2, hi)):
        cl = env.start_client(svc.port, srv, token=TOKEN, remote_port=port,
                              extra=("--proxy-protocol", "v%d" % version),
                              cname="mgrok-out6-v%d" % version)
        s = visitor(port, host="::1")
        try:
            rep = t.read_report(s)
            check_report(rep, version, s.getsockname()[:2], ("::1", port),
                         "IPv6 visitor, v%d" % version)
            t.check_eq(rep["family"], "INET6", "family of the header of an IPv6 visitor")
            exchange(s, seed=600 + version, size=512 * 1024)
        finally:
            s.close()
        t.check_eq(cl.stop(), 0, "exit code of mgrok on SIGTERM")
    t.log("out over IPv6: TCP6 and v2 INET6 headers naming [::1]")
    t.check_eq(srv.stop(), 0, "exit code of mgrokd on SIGTERM")


def stream_through_fake(sess, sid, name, family, addr, port, data):
    """A NEW_STREAM with the given source from a FakeServer, data and CLOSE
    after it; returns what the client sent back on the stream until CLOSE."""
    sess.send(t.f_new_stream(sid, name, family, addr, port) + t.f_data(sid, data) +
              t.f_close(sid))
    got = b""
    while True:
        f = sess.next_client_frame((t.DATA, t.CLOSE, t.RESET), "stream %d's data" % sid)
        t.check_eq(f.sid, sid, "stream of a frame from mgrok", frame=f)
        t.check(f.type != t.RESET, "mgrok reset stream %d" % sid, frame=f)
        if f.type == t.CLOSE:
            return got
        got += f.data


def out_new_stream_sources(env):
    """What the client writes for each kind of NEW_STREAM source: none
    (family 0: v1 UNKNOWN, v2 LOCAL), IPv4, and IPv6 while the client
    reached the server over IPv4 (the destination IPv4-mapped)."""
    port, public = env.ports.take(), env.ports.take()
    fake = t.FakeServer(port)
    svc = env.service(t.pp_echo_handler, name="pp-echo-fake")
    conf = env.client_config(port, [
        {"name": "v1", "type": "tcp", "local": str(svc.port), "proxy_protocol": "v1"},
        {"name": "v2", "type": "tcp", "local": str(svc.port), "proxy_protocol": "v2"}],
        token=TOKEN, name="mgrok-fake.json")
    cl = env.start_client(None, None, token=None, config=conf, lines=0, cname="mgrok-vs-fake")
    try:
        sess = fake.accept(30)
        sess.serve_handshake(TOKEN)
        sess.next_client_frame(t.HELLO)
        for name in (b"v1", b"v2"):
            reg = sess.next_client_frame(t.REGISTER)
            t.check_eq(reg.name, name, "the REGISTER's proxy")
            sess.send(t.f_register_ack(t.ACK_OK, name, public,
                                       b"tcp://127.0.0.1:%d" % public))
        cl.wait_lines(2)
        sid = 2
        for name in (b"v1", b"v2"):
            for family, addr, src, want in (
                    (0, b"", None, ("UNKNOWN" if name == b"v1" else "LOCAL", None, None)),
                    (4, socket.inet_pton(socket.AF_INET, "192.0.2.7"), ("192.0.2.7", 7),
                     ("TCP4" if name == b"v1" else "STREAM", ("192.0.2.7", 7),
                      ("127.0.0.1", public))),
                    (6, socket.inet_pton(socket.AF_INET6, "2001:db8::5"), ("2001:db8::5", 8),
                     ("TCP6" if name == b"v1" else "STREAM", ("2001:db8::5", 8),
                      ("::ffff:127.0.0.1", public)))):
                data = b"stream %d\n" % sid
                back = stream_through_fake(sess, sid, name, family, addr, src[1] if src else 0,
                                           data)
                line, _, rest = back.partition(b"\n")
                rep = t.read_report_line(line + b"\n")
                got = (rep["command"] if family == 0 and name == b"v2" else rep["transport"],
                       rep["src"] and tuple(rep["src"]), rep["dst"] and tuple(rep["dst"]))
                t.check_eq(got, want, "proxy %s, NEW_STREAM of family %d: the header"
                           % (name.decode(), family), report=rep)
                t.check_eq(rest, data, "the data after the header")
                sid += 2
        sess.close()
    finally:
        fake.close()
    t.log("out: NEW_STREAM without an address -> UNKNOWN / LOCAL; IPv6 source via IPv4 -> "
          "TCP6 with a mapped destination")
    t.check_eq(cl.stop(), 0, "exit code of mgrok on SIGTERM")


# ---- 2. out, UDP ----------------------------------------------------------------------


def out_udp(env):
    lo = env.udp_ports(1)
    srv = env.start_server(token=TOKEN, allow=(lo, lo), name="mgrokd-udp")
    handler = t.PpUdpHandler()
    svc = env.udp_service(handler, name="pp-udp")
    # v1 asked for: UDP gets v2 all the same (v1 has no UDP).
    cl = env.start_client(svc.port, srv, token=TOKEN, proto="udp", remote_port=lo,
                          extra=("--proxy-protocol", "v1"), cname="mgrok-udp")
    a, b = t.udp_socket("127.0.0.1"), t.udp_socket("127.0.0.3")
    try:
        seen = []
        for sock, n in ((a, 3), (b, 2), (a, 1)):
            first = not any(s is sock for s, _ in seen)
            for i in range(n):
                data = b"%s datagram %d " % (sock.getsockname()[0].encode(), len(seen)) + \
                    t.payload(len(seen), 100 + 37 * len(seen))
                hdr, back = t.split_udp_reply(t.udp_exchange(sock, lo, data))
                t.check_eq(back, data, "the datagram after the header, as the service got it")
                if first and i == 0:
                    t.check(hdr, "the first datagram of a flow came without a header")
                    got = (hdr["version"], hdr["command"], hdr["transport"],
                           tuple(hdr["src"]), tuple(hdr["dst"]), hdr["tlvs"])
                    t.check_eq(got, (2, "PROXY", "DGRAM", sock.getsockname(),
                                     ("127.0.0.1", lo), ""),
                               "the header of a flow's first datagram", header=hdr)
                else:
                    t.check(hdr is None, "a header on datagram %d of a flow" % (i + 1),
                            header=hdr)
                seen.append((sock, data))
    finally:
        a.close()
        b.close()
    flows = dict(handler.flows)
    t.check_eq(sorted(flows.values()), [["H", "B"], ["H", "B", "B", "B"]],
               "datagrams per flow as the service saw them (H: with a header)", flows=flows)
    t.check_eq(len(set(p for _, p in flows)), 2, "source ports of the two flows", flows=flows)
    t.log("out udp: one v2 DGRAM header per flow, on its first datagram; %d flows" % len(flows))
    t.check_eq(cl.stop(), 0, "exit code of mgrok on SIGTERM")
    t.check_eq(srv.stop(), 0, "exit code of mgrokd on SIGTERM")


# ---- 3. in, public TCP ports ----------------------------------------------------------


def via_balancer(port, chunks, pause=0.05):
    """A visitor from the balancer's address that sends chunks one by one,
    each in its own send (with a pause, so they arrive apart)."""
    s = visitor(port, source=BALANCER)
    for i, c in enumerate(chunks):
        if i:
            time.sleep(pause)
        s.sendall(c)
    return s


def in_public(env):
    port = env.ports.take()
    pub = (env.ports.take(), env.udp_ports(1))
    conf = t.write_json(env, "mgrokd-in-public.json", {
        "listen": "127.0.0.1:%d" % port,
        "auth": {"method": "token", "token": TOKEN},
        "allow_ports": list(pub),
        "handshake_timeout": 2,
        "proxy_protocol_from": [BALANCER + "/32"],
        "log": {"level": "debug"}})
    srv = env.start_server(token=None, config=conf, name="mgrokd-in-public")
    srv.port = port
    svc = env.service(t.pp_echo_handler, name="pp-echo-in")
    cl = env.start_client(svc.port, srv, token=TOKEN, remote_port=pub[0],
                          extra=("--proxy-protocol", "v1"), cname="mgrok-in-public")
    P = pub[0]
    dst = ("127.0.0.1", P)

    def served(s, src, what, data=b"after the header\n"):
        try:
            rep = t.read_report(s, "%s: the service's report" % what)
            t.check_eq((rep["transport"], tuple(rep["src"] or ()), tuple(rep["dst"] or ())),
                       ("TCP4", tuple(src), dst), "%s: the header the service got" % what,
                       report=rep)
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            t.check_eq(t.recv_all(s), data, "%s: the data after the header" % what)
        finally:
            s.close()
        if src[0] != BALANCER:
            t.wait_log(srv, r"stream \d+: visitor %s:%d\b" % (re.escape(src[0]), src[1]),
                       what="mgrokd's NEW_STREAM line for %s" % what)
        t.log("in public: %s: the service saw %s:%d" % (what, src[0], src[1]))

    with env.case("in public: v1 header and data in one send"):
        s = via_balancer(P, [t.v1_header(("203.0.113.7", 5555), dst) + b"early data\n"])
        rep = t.read_report(s)
        t.check_eq(tuple(rep["src"]), ("203.0.113.7", 5555), "source the service got",
                   report=rep)
        s.shutdown(socket.SHUT_WR)
        t.check_eq(t.recv_all(s), b"early data\n", "the bytes that followed the header")
        s.close()
    with env.case("in public: v2 header with a TLV"):
        h = t.v2_header(("203.0.113.8", 5556), dst, tlvs=t.tlv(0x01, b"h2") + t.tlv(0x04, b""))
        served(via_balancer(P, [h]), ("203.0.113.8", 5556), "v2 with TLVs")
    with env.case("in public: v1 split over four sends"):
        h = t.v1_header(("203.0.113.9", 5557), dst)
        served(via_balancer(P, [h[:3], h[3:17], h[17:-1], h[-1:]]), ("203.0.113.9", 5557),
               "v1 in four pieces")
    with env.case("in public: v2 split over three sends"):
        h = t.v2_header(("203.0.113.10", 5558), dst)
        served(via_balancer(P, [h[:5], h[5:15], h[15:]]), ("203.0.113.10", 5558),
               "v2 in three pieces")
    with env.case("in public: v1 UNKNOWN and v2 LOCAL keep the balancer's address"):
        for what, h in (("v1 UNKNOWN", t.v1_header(None, None)),
                        ("v2 LOCAL", t.v2_header(None, None, local=True))):
            s = via_balancer(P, [h])
            served(s, s.getsockname(), what)
    with env.case("in public: a TCP6 header from the balancer, an IPv4 tunnel"):
        s = via_balancer(P, [t.v1_header(("2001:db8::7", 5559), ("2001:db8::1", P))])
        rep = t.read_report(s)
        s.close()
        t.wait_log(srv, r"stream \d+: visitor \[2001:db8::7\]:5559\b",
                   what="mgrokd's NEW_STREAM line for an IPv6 visitor named by a header")
        # An IPv6 source and an IPv4 destination: the header names both in
        # IPv6, the destination IPv4-mapped.
        t.check_eq((rep["transport"], tuple(rep["src"] or ()), tuple(rep["dst"] or ())),
                   ("TCP6", ("2001:db8::7", 5559), ("::ffff:127.0.0.1", P)),
                   "the header for an IPv6 visitor through an IPv4 tunnel", report=rep)

    with env.case("in public: the balancer without a header"):
        before = svc.count
        mark = srv.stderr_size()
        s = via_balancer(P, [b"GET / HTTP/1.0\r\n\r\n"])
        me = s.getsockname()
        t.check(is_closed(s), "closed")
        s.close()
        t.wait_log(srv, r"warn .*visitor through balancer %s:%d: " % (BALANCER, me[1]),
                   what="the warn line for a visitor without a header")
        line = [x for x in srv.stderr_since(mark).splitlines() if "through balancer" in x]
        t.log("in public: no header: %s" % line[-1])
        t.check_eq(svc.count, before, "connections the service got from a headerless visitor")
    with env.case("in public: a silent visitor from the balancer"):
        s = visitor(P, source=BALANCER)
        me = s.getsockname()
        t.check(is_closed(s), "closed")
        s.close()
        t.wait_log(srv, r"warn .*visitor through balancer %s:%d: no PROXY header in 2 s"
                   % (BALANCER, me[1]), what="the warn line for a silent visitor")
    with env.case("in public: an untrusted visitor's PROXY line is data"):
        line = t.v1_header(("203.0.113.66", 6666), dst)
        s = visitor(P, source="127.0.0.3")
        me = s.getsockname()
        s.sendall(line + b"rest\n")
        rep = t.read_report(s)
        t.check_eq(tuple(rep["src"]), me, "source the service got for an untrusted visitor",
                   report=rep)
        s.shutdown(socket.SHUT_WR)
        t.check_eq(t.recv_all(s), line + b"rest\n", "an untrusted visitor's PROXY line, echoed")
        s.close()
        t.wait_log(srv, r"stream \d+: visitor 127\.0\.0\.3:%d\b" % me[1],
                   what="mgrokd's NEW_STREAM line for the untrusted visitor")

    with env.case("in public: a real relay in front of the public port"):
        bal = t.Balancer(("127.0.0.1", P), BALANCER,
                         lambda client, me: t.v2_header(client, me), name="balancer-public")
        env.services.append(bal)
        s = visitor(bal.port, source="127.0.0.5")
        try:
            rep = t.read_report(s)
            t.check_eq((tuple(rep["src"]), tuple(rep["dst"])), (s.getsockname(), dst),
                       "(src, dst) through a balancer and the tunnel", report=rep)
            exchange(s, seed=77, size=1024 * 1024)
        finally:
            s.close()
        t.log("in public: a visitor of 127.0.0.5 through a relay: the service saw it")

    with env.case("in public: UDP ports read no header, from the balancer either"):
        echo = env.udp_echo_service()
        ucl = env.start_client(echo.port, srv, token=TOKEN, proto="udp", remote_port=pub[1],
                               cname="mgrok-in-public-udp")
        s = t.udp_socket(BALANCER)
        try:
            data = t.v2_header(("203.0.113.99", 9999), ("127.0.0.1", pub[1]), dgram=True) + \
                b"a datagram from the balancer"
            t.check_eq(t.udp_exchange(s, pub[1], data), data,
                       "a datagram that starts like a header, from the balancer, echoed")
            me = s.getsockname()
        finally:
            s.close()
        t.wait_log(srv, r"stream \d+: visitor 127\.0\.0\.2:%d\b" % me[1],
                   what="mgrokd's NEW_STREAM line for the UDP visitor")
        t.check_eq(ucl.stop(), 0, "exit code of mgrok on SIGTERM")

    t.check(srv.alive() and cl.alive(), "mgrokd or mgrok died")
    t.check_eq(cl.stop(), 0, "exit code of mgrok on SIGTERM")
    t.check_eq(srv.stop(), 0, "exit code of mgrokd on SIGTERM")


def in_public_max_streams(env):
    """Visitors waiting for their header count against max_streams."""
    port = env.ports.take()
    pub = env.ports.take()
    conf = t.write_json(env, "mgrokd-in-streams.json", {
        "listen": "127.0.0.1:%d" % port,
        "auth": {"method": "token", "token": TOKEN},
        "allow_ports": [pub], "limits": {"max_streams": 2},
        "proxy_protocol_from": [BALANCER]})
    srv = env.start_server(token=None, config=conf, name="mgrokd-in-streams")
    srv.port = port
    svc = env.service(t.pp_echo_handler, name="pp-echo-streams")
    cl = env.start_client(svc.port, srv, token=TOKEN, remote_port=pub,
                          extra=("--proxy-protocol", "v2"), cname="mgrok-in-streams")
    waiting = [visitor(pub, source=BALANCER) for _ in range(2)]
    try:
        third = visitor(pub, source=BALANCER)
        t.check(is_closed(third), "closed")
        third.close()
        t.wait_log(srv, r"2 streams open or coming, refusing a visitor through balancer",
                   what="the refusal of a visitor beyond max_streams")
        for i, s in enumerate(waiting):
            s.sendall(t.v1_header(("203.0.113.%d" % (20 + i), 4000 + i), ("127.0.0.1", pub)))
            rep = t.read_report(s)
            t.check_eq(tuple(rep["src"]), ("203.0.113.%d" % (20 + i), 4000 + i),
                       "source of waiting visitor %d" % i, report=rep)
            s.sendall(b"x%d" % i)
            s.shutdown(socket.SHUT_WR)
            t.check_eq(t.recv_all(s), b"x%d" % i, "echo of waiting visitor %d" % i)
    finally:
        for s in waiting:
            s.close()
    t.log("in public: visitors waiting for a header count against max_streams")
    t.check_eq(cl.stop(), 0, "exit code of mgrok on SIGTERM")
    t.check_eq(srv.stop(), 0, "exit code of mgrokd on SIGTERM")


# ---- 4. in, control port --------------------------------------------------------------

FIRST = t.MAGIC + t.u8(t.AUTH_TOKEN)  # a token handshake's first message, without its nonce


def through(port, header, source=BALANCER, timeout=15):
    """A RawSession from source that has sent header."""
    r = t.RawSession(port, timeout=timeout, source=source)
    if header:
        r.send(header)
    return r


def authenticated(srv, addr_re, what):
    return t.wait_log(srv, r"session \d+: %s authenticated as" % addr_re,
                      what="mgrokd's line: %s authenticated" % what)


def wrong_token(r):
    """A token handshake with the wrong token: DENIED, then EOF."""
    cnonce = os.urandom(16)
    r.hs_send(t.AUTH_TOKEN, cnonce)
    status, snonce = r.hs_reply()
    t.check_eq(status, t.HS_CHALLENGE, "reply to the token method")
    r.send(t.str16(t.token_proof(WRONG, b"mgrok-token-v1 client", cnonce, snonce)))
    status, reason = r.hs_reply()
    t.check_eq(status, t.HS_DENIED, "reply to a wrong token", reason=reason)
    t.check_eq(r.read_eof(), b"", "bytes after DENIED")


def refused_at_once(r, what):
    """The connection is closed without a reply to a right-token first message."""
    try:
        r.hs_send(t.AUTH_TOKEN, os.urandom(16))
        rest = r.read_eof("mgrokd to close %s" % what)
    except (BrokenPipeError, ConnectionResetError):
        rest = b""
    t.check_eq(rest, b"", "bytes sent to %s" % what)


def in_control(env):
    port = env.ports.take()
    allow = env.ports.take_range(1)
    conf = t.write_json(env, "mgrokd-in-control.json", {
        "listen": "127.0.0.1:%d" % port,
        "auth": {"method": "token", "token": TOKEN},
        "allow_ports": ["%d-%d" % allow],
        "handshake_timeout": 30,
        "rate_limit": {"failures": 2, "interval": 30},
        "proxy_protocol_from": ["127.0.0.2/32", "10.0.0.0/8"],
        "log": {"level": "debug"}})
    srv = env.start_server(token=None, config=conf, name="mgrokd-in-control")
    srv.port = port
    me = ("127.0.0.1", port)

    with env.case("in control: v1 header, then a session that works"):
        r = through(port, t.v1_header(("198.51.100.9", 4242), me)).handshake(TOKEN)
        try:
            authenticated(srv, r"198\.51\.100\.9:4242", "the v1 header's address")
            ack = r.register("web", allow[0])
            t.check_eq(ack.status, t.ACK_OK, "REGISTER through a balancer", message=ack.message)
            t.check_eq(r.serve_visitor(allow[0], b"hi\n", b"served\n"), b"served\n",
                       "a visitor of a session that came through a balancer")
        finally:
            r.close()
    with env.case("in control: v2 header with a 1000-byte TLV, the handshake in the same send"):
        r = t.RawSession(port, timeout=15, source=BALANCER)
        cnonce = os.urandom(16)
        r.send(t.v2_header(("198.51.100.10", 4243), me, tlvs=t.tlv(0x04, b"\0" * 1000)) +
               FIRST + t.str16(cnonce))
        status, snonce = r.hs_reply()
        t.check_eq(status, t.HS_CHALLENGE, "reply to a token method right after a v2 header")
        r.send(t.str16(t.token_proof(TOKEN, b"mgrok-token-v1 client", cnonce, snonce)))
        status, _ = r.hs_reply()
        t.check_eq(status, t.HS_OK, "a handshake right after a v2 header")
        r.close()
        authenticated(srv, r"198\.51\.100\.10:4243", "the v2 header's address")
    with env.case("in control: v2 with a TLV, split over three sends"):
        h = t.v2_header(("198.51.100.11", 4245), me, tlvs=t.tlv(0x04, b"\0" * 1500))
        r = t.RawSession(port, timeout=15, source=BALANCER)
        for i, piece in enumerate((h[:7], h[7:700], h[700:])):
            if i:
                time.sleep(0.05)
            r.send(piece)
        r.handshake(TOKEN).close()
        authenticated(srv, r"198\.51\.100\.11:4245", "a header in three pieces")
    with env.case("in control: a TCP6 header"):
        r = through(port, t.v1_header(("2001:db8::9", 4244), ("2001:db8::1", port)))
        r.handshake(TOKEN).close()
        authenticated(srv, r"\[2001:db8::9\]:4244", "an IPv6 address from a header")
    with env.case("in control: v1 UNKNOWN keeps the balancer's address"):
        r = through(port, t.v1_header(None, None))
        src = r.sock.getsockname()
        r.handshake(TOKEN).close()
        authenticated(srv, r"127\.0\.0\.2:%d" % src[1], "the balancer's own address")

    with env.case("in control: a garbage header from the balancer"):
        r = through(port, b"PROXY TCP4 999.1.1.1 127.0.0.1 1 2\r\n")
        src = r.sock.getsockname()
        t.check_eq(r.read_eof(), b"", "bytes to a balancer with a bad header")
        r.close()
        t.wait_log(srv, r"from balancer 127\.0\.0\.2:%d: PROXY v1" % src[1],
                   what="the log line for a bad header")
    with env.case("in control: no header from the balancer"):
        r = through(port, None)
        src = r.sock.getsockname()
        r.hs_send(t.AUTH_TOKEN, os.urandom(16))
        t.check_eq(r.read_eof(), b"", "bytes to a balancer without a header")
        r.close()
        t.wait_log(srv, r"from balancer 127\.0\.0\.2:%d: " % src[1],
                   what="the log line for a missing header")
    with env.case("in control: a header from an address not in proxy_protocol_from"):
        r = through(port, t.v1_header(("198.51.100.50", 1), me), source="127.0.0.1")
        src = r.sock.getsockname()
        t.check_eq(r.read_eof(), b"", "bytes to an untrusted source with a header")
        r.close()
        t.wait_log(srv, r"a PROXY protocol header from 127\.0\.0\.1:%d, which is not in "
                   r"proxy_protocol_from" % src[1], what="the untrusted-header line")
        r = through(port, None, source="127.0.0.1").handshake(TOKEN)
        r.close()  # and without one, 127.0.0.1 is an ordinary client

    with env.case("in control: rate limiting by the header's address"):
        for i in range(2):
            r = through(port, t.v1_header(("198.51.100.1", 5000 + i), me))
            wrong_token(r)
            r.close()
        t.wait_log(srv, r"198\.51\.100\.1:\d+: 2 failed handshakes within 30 s: refusing it "
                   r"for 30 s", what="the rate-limit line for 198.51.100.1")
        r = through(port, t.v1_header(("198.51.100.1", 5002), me))
        refused_at_once(r, "a blocked address through the balancer")
        r.close()
        r = through(port, t.v1_header(("198.51.100.2", 5003), me)).handshake(TOKEN)
        r.close()
        authenticated(srv, r"198\.51\.100\.2:5003", "another address through the balancer")
        t.check(not re.search(r"127\.0\.0\.2:\d+: 2 failed", srv.stderr_text()),
                "the balancer itself was blocked")
        t.log("in control: 198.51.100.1 blocked after 2 failures, 198.51.100.2 still gets in")

    with env.case("in control: max_pending_per_address by the header's address"):
        slow = []
        try:
            for i in range(8):
                r = through(port, t.v1_header(("198.51.100.20", 6000 + i), me) + FIRST[:2])
                slow.append(r)
            t.wait_log(srv, r"198\.51\.100\.20:\d+ through balancer", 8,
                       what="mgrokd to read the 8 slow headers")
            r = through(port, t.v1_header(("198.51.100.20", 6008), me) + FIRST[:2])
            t.check_eq(r.read_eof("mgrokd to close the 9th from 198.51.100.20"), b"",
                       "bytes to the 9th handshake of one address")
            r.close()
            t.wait_log(srv, r"198\.51\.100\.20:6008 has 8 connections in the handshake",
                       what="the per-address refusal of the header's address")
            t.check_eq(sum(still_open(x.sock) for x in slow), 8, "the 8 slow handshakes open")
            r = through(port, t.v1_header(("198.51.100.21", 6009), me)).handshake(TOKEN)
            r.close()
            authenticated(srv, r"198\.51\.100\.21:6009", "another address while one is full")
        finally:
            for x in slow:
                x.close()
        t.log("in control: the 9th slow handshake naming one address refused, another got in")

    t.check(srv.alive(), "mgrokd died")
    t.check_eq(srv.stop(), 0, "exit code of mgrokd on SIGTERM")


class TlsAfterHeader:
    """A TLS client (no verification) over sock whose ClientHello goes out
    in the same send as prefix (a PROXY header), so that mgrokd must take
    the header and not a byte more; sendall/recv/settimeout/close, enough
    for RawSession.from_socket."""

    def __init__(self, sock, prefix):
        import ssl
        self.ssl = ssl
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        self.sock, self.inb, self.outb = sock, ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.inb, self.outb)
        for _ in range(20):  # a TLS handshake is a few round trips
            try:
                self.obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                sock.sendall(prefix + self.outb.read())
                prefix = b""
                self._fill()
        else:
            raise t.TestFailure("no TLS handshake after a PROXY header in 20 round trips")
        sock.sendall(self.outb.read())

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionResetError("EOF in TLS")
        self.inb.write(data)

    def settimeout(self, timeout):
        self.sock.settimeout(timeout)

    def sendall(self, data):
        self.obj.write(data)
        self.sock.sendall(self.outb.read())

    def recv(self, n):
        while True:
            try:
                return self.obj.read(n)
            except self.ssl.SSLWantReadError:
                try:
                    self._fill()
                except ConnectionResetError:
                    return b""
            except self.ssl.SSLZeroReturnError:
                return b""

    def close(self):
        self.sock.close()


def in_control_tls(env):
    """A header before TLS: by hand (also in the same send as the
    ClientHello), and a real mgrok through a Balancer."""
    import ssl
    cert, key, fp = t.gen_cert(env, "cert", "127.0.0.1")
    port = env.ports.take()
    pub = env.ports.take()
    conf = t.write_json(env, "mgrokd-in-tls.json", {
        "listen": "127.0.0.1:%d" % port,
        "auth": {"method": "token", "token": TOKEN},
        "allow_ports": [pub], "tls": {"cert": cert, "key": key},
        "proxy_protocol_from": [BALANCER]})
    srv = env.start_server(token=None, config=conf, name="mgrokd-in-tls")
    srv.port = port

    sock = socket.create_connection(("127.0.0.1", port), timeout=15,
                                    source_address=(BALANCER, 0))
    sock.sendall(t.v2_header(("192.0.2.33", 3333), ("127.0.0.1", port)))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    tls = ctx.wrap_socket(sock)
    t.RawSession.from_socket(tls, 15).handshake(TOKEN).close()
    authenticated(srv, r"192\.0\.2\.33:3333", "TLS after a v2 header")
    for n, h in enumerate((t.v1_header(("192.0.2.34", 3334), ("127.0.0.1", port)),
                           t.v2_header(("192.0.2.35", 3335), ("127.0.0.1", port),
                                       tlvs=t.tlv(0x04, b"\0" * 3000)))):
        sock = socket.create_connection(("127.0.0.1", port), timeout=15,
                                        source_address=(BALANCER, 0))
        t.RawSession.from_socket(TlsAfterHeader(sock, h), 15).handshake(TOKEN).close()
        authenticated(srv, r"192\.0\.2\.3%d:333%d" % (4 + n, 4 + n),
                      "a header and the ClientHello in one send")

    bal = t.Balancer(("127.0.0.1", port), BALANCER,
                     lambda client, me: t.v1_header(("192.0.2.44", client[1]), me),
                     name="balancer-control")
    env.services.append(bal)
    echo = env.echo_service()
    cl = env.start_client(echo.port, "127.0.0.1:%d" % bal.port, token=TOKEN, remote_port=pub,
                          extra=("--tls-fingerprint", fp), cname="mgrok-via-balancer")
    authenticated(srv, r"192\.0\.2\.44:\d+", "a real mgrok through a balancer, with TLS")
    t.echo_check(pub, b"through a balancer and TLS\n")
    t.log("in control: TLS after the header, by hand and from a real mgrok through a relay")
    t.check_eq(cl.stop(), 0, "exit code of mgrok on SIGTERM")
    t.check_eq(srv.stop(), 0, "exit code of mgrokd on SIGTERM")


# ---- 5. config errors -----------------------------------------------------------------


def config_errors(env):
    def server_conf(name, value):
        return env.write_file(name, '{\n  "listen": "127.0.0.1:7000",\n'
                              '  "proxy_protocol_from": %s\n}\n' % value)
    cases = [
        (t.MGROKD, server_conf("pp-hostbits.json", '["127.0.0.2", "10.1.2.3/8"]'),
         "proxy_protocol_from[1]"),
        (t.MGROKD, server_conf("pp-nonsense.json", '["nonsense"]'), "proxy_protocol_from[0]"),
        (t.MGROKD, server_conf("pp-bits.json", '["::1/129"]'), "proxy_protocol_from[0]"),
        (t.MGROKD, server_conf("pp-string.json", '"127.0.0.2"'), "proxy_protocol_from"),
    ]
    for version in ('"v3"', '2', '"V1"'):
        path = env.write_file("pp-version-%s.json" % version.strip('"'),
                              '{\n  "server": "127.0.0.1:7000",\n  "proxies": [\n'
                              '    {"name": "a", "type": "tcp", "local": "80",\n'
                              '     "proxy_protocol": %s}\n  ]\n}\n' % version)
        cases.append((t.MGROK, path, "proxies[0].proxy_protocol"))
    for prog, path, key in cases:
        code, out, err = env.run_program([prog, "--plugin-dir", t.PLUGIN_DIR, "--check",
                                          "-c", path])
        what = "%s --check %s" % (os.path.basename(prog), os.path.basename(path))
        t.check_eq(code, 2, "exit code of %s" % what, stderr=err)
        m = re.search(r"%s:\d+:\d+: (\S+): " % re.escape(path), err)
        t.check(m and m.group(1) == key, "%s: the error names %s" % (what, key), stderr=err)
    good = server_conf("pp-good.json", '["127.0.0.2", "10.0.0.0/8", "0.0.0.0/0", "::1", '
                       '"fd00::/8", "::/0"]')
    code, out, err = env.run_program([t.MGROKD, "--plugin-dir", t.PLUGIN_DIR, "--check", "-c",
                                      good])
    t.check_eq(code, 0, "exit code of mgrokd --check with good proxy_protocol_from", stderr=err)
    for extra in (["tcp", "80", "--proxy-protocol", "v3"], ["--proxy-protocol", "v1"]):
        code, out, err = env.run_program([t.MGROK, "--plugin-dir", t.PLUGIN_DIR, "--server",
                                          "127.0.0.1:7000", "--check"] + extra)
        t.check_eq(code, 2, "exit code of mgrok %s" % " ".join(extra), stderr=err)
        t.check("--proxy-protocol" in err, "the error names --proxy-protocol", stderr=err)
    t.log("config errors: exit 2 naming the key")


# ---- 6. what failed when this test was written (each a sub-case of its own) -----------


def balancer_not_blocked_by_silence(env):
    """Connections from the balancer that time out before their header
    have no address of their own: they must not block the balancer (and
    with it every client behind it)."""
    port = env.ports.take()
    conf = t.write_json(env, "mgrokd-silent.json", {
        "listen": "127.0.0.1:%d" % port,
        "auth": {"method": "token", "token": TOKEN},
        "handshake_timeout": 1, "rate_limit": {"failures": 2, "interval": 30},
        "proxy_protocol_from": [BALANCER]})
    srv = env.start_server(token=None, config=conf, name="mgrokd-silent")
    srv.port = port
    for i in range(2):
        r = through(port, None)
        t.check_eq(r.read_eof("the handshake timeout"), b"", "bytes to a silent connection")
        r.close()
    r = through(port, t.v1_header(("198.51.100.30", 7000), ("127.0.0.1", port)))
    try:
        r.handshake(TOKEN)
    except (ConnectionResetError, BrokenPipeError, t.TestFailure) as e:
        raise t.TestFailure("two connections from the balancer that timed out before their "
                            "header blocked it: a client behind it is refused (%r); mgrokd: "
                            "%s" % (e, [x for x in srv.stderr_text().splitlines()
                                        if "failed handshakes" in x]))
    finally:
        r.close()
    t.check_eq(srv.stop(), 0, "exit code of mgrokd on SIGTERM")


def balancer_not_blocked_by_health_checks(env):
    """A balancer's own health checks (v2 LOCAL, v1 UNKNOWN) that are no
    mgrok handshake -- HAProxy's check-send-proxy with an HTTP check --
    keep the balancer's address; their failures must not block it."""
    port = env.ports.take()
    conf = t.write_json(env, "mgrokd-checks.json", {
        "listen": "127.0.0.1:%d" % port,
        "auth": {"method": "token", "token": TOKEN},
        "rate_limit": {"failures": 2, "interval": 30},
        "proxy_protocol_from": [BALANCER]})
    srv = env.start_server(token=None, config=conf, name="mgrokd-checks")
    srv.port = port
    for h in (t.v2_header(None, None, local=True), t.v1_header(None, None)):
        r = through(port, h + b"OPTIONS / HTTP/1.0\r\n\r\n")
        t.check_eq(r.read_eof(), b"", "bytes sent to a balancer's HTTP health check")
        r.close()
    r = through(port, t.v1_header(("198.51.100.31", 7001), ("127.0.0.1", port)))
    try:
        r.handshake(TOKEN)
    except (ConnectionResetError, BrokenPipeError, t.TestFailure) as e:
        raise t.TestFailure("two health checks of the balancer (LOCAL / UNKNOWN, then HTTP) "
                            "blocked it: a client behind it is refused (%r); mgrokd: %s"
                            % (e, [x for x in srv.stderr_text().splitlines()
                                   if "failed handshakes" in x]))
    finally:
        r.close()
    t.check_eq(srv.stop(), 0, "exit code of mgrokd on SIGTERM")


def udp_biggest_first_datagram(env):
    """A flow whose first datagram is the largest a UDP proxy carries: the
    header does not fit in front of it; the service must still learn the
    flow's visitor from the first datagram it gets."""
    lo = env.udp_ports(1)
    srv = env.start_server(token=TOKEN, allow=(lo, lo), name="mgrokd-udp-big")
    handler = t.PpUdpHandler()
    svc = env.udp_service(handler, name="pp-udp-big")
    cl = env.start_client(svc.port, srv, token=TOKEN, proto="udp", remote_port=lo,
                          extra=("--proxy-protocol", "v2"), cname="mgrok-udp-big")
    s = t.udp_socket()
    try:
        s.sendto(b"\xff" * t.UDP_MAX, ("127.0.0.1", lo))
        for _ in range(3):  # past the big one's answer, if it comes
            hdr, back = t.split_udp_reply(t.udp_exchange(s, lo, b"small"))
            if back == b"small":
                break
    finally:
        s.close()
    flows = dict(handler.flows)
    t.check(flows and all(v[0] == "H" for v in flows.values()),
            "a flow whose first datagram was %d bytes reached the service without a header "
            "(datagrams per flow, H: with a header)" % t.UDP_MAX, flows=flows,
            mgrok=[x for x in cl.stderr_text().splitlines() if "drop" in x])
    t.check_eq(cl.stop(), 0, "exit code of mgrok on SIGTERM")
    t.check_eq(srv.stop(), 0, "exit code of mgrokd on SIGTERM")


def main(env):
    for what, fn in (("1. out over TCP", out_tcp), ("1. out over TCP, IPv6", out_tcp_ipv6),
                     ("1. out: NEW_STREAM sources", out_new_stream_sources),
                     ("2. out over UDP", out_udp), ("3. in on public ports", in_public),
                     ("3. in on public ports: max_streams", in_public_max_streams),
                     ("4. in on the control port", in_control),
                     ("4. in on the control port: TLS", in_control_tls),
                     ("5. config errors", config_errors),
                     ("6. silent connections do not block the balancer",
                      balancer_not_blocked_by_silence),
                     ("6. health checks do not block the balancer",
                      balancer_not_blocked_by_health_checks),
                     ("6. udp: the largest first datagram", udp_biggest_first_datagram)):
        t.log("---- %s" % what)
        with env.case(what):
            fn(env)
    t.check_no_secrets(env, [TOKEN, WRONG])
    env.check_services()


t.run(main)
