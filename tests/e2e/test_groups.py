#!/usr/bin/env python3
"""Client groups ("group" and "group_key" of a proxy in mgrok.json): several
clients whose tcp or udp proxies carry the same group, key and remote_port
share that public port; each new visitor (a TCP connection, a UDP visitor
address) goes to the next member in turn.

TCP: three members each get exactly three of nine visitors, in a fixed
rotation, every byte echoed; a member that leaves ends its own streams
only (a connection to another member stays usable) and the rotation goes
on over the others; the member whose REGISTER bound the port may leave
first; when the last leaves the port is closed and a plain proxy can take
it. Refusals: another key or another group on a held port (PORT_IN_USE,
with the reason in both logs), no group on a held port, a group on a port
a plain proxy holds, a tcp group without remote port and a group of tls
proxies with a remote port (INVALID). A group by name (tls, one SNI
name): two members share it in turn, another key is FORBIDDEN, the last
gives the name back. UDP: four visitors spread 2/2, each answered by the same
member every time; a member with other options is refused; a member's
departure moves its visitors to the other; the last takes the port with
it. Admin: /api/v1/sessions shows every member's proxy with the group's
public address, and mgrok_transmit_bytes_total per member is exactly what
that member carried, each way. Config: group without group_key and the
reverse, and group in options, exit 2 naming the key at FILE:LINE:COL.
The group keys appear in no program's output."""
import contextlib
import os
import re
import socket
import ssl
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mgroktest as t

A = t.admin

TOKEN = "groups-Token-7c3e91a05b2d4f68"
ADMIN_TOKEN = "groups-admin-Token-2f8a6c0e4d1b9573"
KEY = "group-Key-5e0b3a9d7c1f2468"
OTHER_KEY = "group-Other-Key-9a1c7e3f5b0d2864"
CONFIG_KEY = "config-group-Key-b4d2f0a8c6e13579"
DOMAIN = "groups.test"
TRANSMIT = "mgrok_transmit_bytes_total"
IO_TIMEOUT = 20


class Setup:
    pass


@contextlib.contextmanager
def case(env, what):
    """env.case, with a socket error (a refused or reset visitor) a failure
    of the sub-case too."""
    with env.case(what):
        try:
            yield
        except OSError as e:
            raise t.TestFailure("unexpected socket error: %r" % e) from None


# ---- the local side: services that say who they are ---------------------------------------


def id_service(env, ident):
    """A TCP service that first sends "IDENT\\n", then echoes until EOF."""
    line = ident.encode() + b"\n"

    def handler(conn):
        conn.sendall(line)
        t.echo_handler(conn)
    return env.service(handler, name=ident)


def udp_id_service(env, ident):
    """A UDP service that answers each datagram with "IDENT|" + the datagram."""
    prefix = ident.encode() + b"|"
    return env.udp_service(lambda data, addr: prefix + data, name=ident)


# ---- clients ------------------------------------------------------------------------------


def proxy_conf(name, ptype, local_port, remote_port, group=None, key=None, options=None):
    p = {"name": name, "type": ptype, "local": "127.0.0.1:%d" % local_port}
    if remote_port is not None:
        p["remote_port"] = remote_port
    if group is not None:
        p["group"] = group
    if key is not None:
        p["group_key"] = key
    if options is not None:
        p["options"] = options
    return p


def start_member(env, srv, proxy, lines=1):
    """mgrok with a config file holding the one proxy; waits for lines
    public-address lines (0: none)."""
    conf = env.client_config(srv, [proxy], token=TOKEN, name="%s.json" % proxy["name"])
    return env.start_client(None, None, token=None, config=conf, lines=lines,
                            cname="mgrok-%s" % proxy["name"])


def member(env, srv, name, ptype, svc, port, group, key):
    """A group member up on port; checks its public line."""
    cl = start_member(env, srv, proxy_conf(name, ptype, svc.port, port, group, key))
    t.check_eq(cl.public_lines(), [(ptype, "127.0.0.1", port, "127.0.0.1:%d" % svc.port)],
               "public line of group member %s (the group's port)" % name)
    return cl


def session_of(srv, name, scheme, port):
    """The id of the session mgrokd registered proxy name on (one only)."""
    found = set(re.findall(r"session (\d+) proxy %s: %s://127\.0\.0\.1:%d\b"
                           % (re.escape(name), scheme, port), srv.stderr_text()))
    t.check_eq(len(found), 1, "sessions on which mgrokd logged proxy %s at %s://127.0.0.1:%d"
               % (name, scheme, port), found=found)
    return int(found.pop())


def leave(srv, cl, sid):
    """SIGTERM to a member's mgrok: exit 0, and mgrokd logs its session closed."""
    t.check_eq(cl.stop(), 0, "exit code of %s on SIGTERM" % cl.name)
    t.wait_log(srv, r"session %d: closed" % sid, timeout=IO_TIMEOUT,
               what="mgrokd to log session %d (%s) closed" % (sid, cl.name))
    t.log("%s (session %d) has left" % (cl.name, sid))


def refused(srv, cl, name, status, reason):
    """mgrok gives up by itself (exit 1) with the refusal of its one proxy,
    and mgrokd logs the same reason."""
    code = cl.wait_exit()
    err = cl.stderr_text()
    t.check_eq(code, 1, "exit code of %s, whose only proxy is refused" % cl.name,
               stderr=err[-800:])
    want = "mgrok: proxy %s: registration refused (status %d): %s" % (name, status, reason)
    t.check(want in err, "%s does not report the refusal: expected the line %r"
            % (cl.name, want), stderr=err[-800:])
    t.check("mgrok: no proxy could be registered, giving up" in err,
            "%s does not say that no proxy could be registered" % cl.name, stderr=err[-800:])
    t.check_eq(cl.public_lines(), [], "public lines of %s" % cl.name)
    line = "REGISTER '%s' refused: %s" % (name, reason)
    log = srv.stderr_text()
    t.check(line in log, "mgrokd's log lacks the refusal: expected %r" % line,
            log_tail=log[-1200:])


# ---- visitors -----------------------------------------------------------------------------


def open_visitor(port, what):
    """A visitor connection to port; returns (socket, the id line of the
    member's service that answered)."""
    s = t.connect(port, timeout=IO_TIMEOUT)
    buf = b""
    try:
        while not buf.endswith(b"\n"):
            chunk = s.recv(64)
            t.check(chunk, "%s: the connection ended before the service's id line" % what,
                    got=buf)
            buf += chunk
            t.check(len(buf) <= 64 and buf.count(b"\n") <= 1,
                    "%s: expected one id line, got more" % what, got=buf)
    except BaseException:
        s.close()
        raise
    return s, buf[:-1].decode("ascii", "replace")


def exchange(s, data, what, close=False):
    """Sends data (from a thread) while reading its echo back; fails unless
    exactly data comes back. With close, half-closes after sending and
    then expects EOF."""
    errors = []

    def send():
        try:
            s.sendall(data)
            if close:
                s.shutdown(socket.SHUT_WR)
        except OSError as e:
            errors.append(e)
    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    got = bytearray()
    try:
        while len(got) < len(data):
            chunk = s.recv(min(256 * 1024, len(data) - len(got)))
            if not chunk:
                break
            got += chunk
        rest = s.recv(65536) if close and len(got) == len(data) else b""
    finally:
        sender.join(IO_TIMEOUT)
    t.check(not errors, "%s: sending %d bytes failed" % (what, len(data)), errors=errors)
    if bytes(got) != data:
        first = next((i for i in range(min(len(got), len(data))) if got[i] != data[i]),
                     min(len(got), len(data)))
        raise t.TestFailure("%s: expected the %d bytes sent back, got %d, the first difference "
                            "at byte %d" % (what, len(data), len(got), first))
    t.check_eq(rest, b"", "%s: what came after the echo (expected EOF)" % what)


def visit(port, data, what):
    """One visitor: the member's id line, then data echoed byte for byte,
    then EOF. Returns the id."""
    s, ident = open_visitor(port, what)
    try:
        exchange(s, data, "%s (%s)" % (what, ident), close=True)
    finally:
        s.close()
    return ident


def expect_end(s, what):
    """The member behind s has left: the connection ends (EOF or reset)
    without a byte."""
    s.settimeout(IO_TIMEOUT)
    try:
        got = s.recv(4096)
    except ConnectionResetError:
        got = b""
    except socket.timeout:
        raise t.TestFailure("%s: expected the connection to end, it is still open after "
                            "%d s" % (what, IO_TIMEOUT)) from None
    finally:
        s.close()
    t.check_eq(got, b"", "%s: what the visitor got when its member left (expected EOF)" % what)


def check_rotation(seq, members, per_member, what):
    """seq (the members of consecutive visitors) is a rotation over
    members: each exactly per_member times, periodic with period
    len(members)."""
    counts = {m: seq.count(m) for m in members}
    t.check_eq(counts, {m: per_member for m in members},
               "%s: visitors per member" % what, sequence=seq)
    n = len(members)
    t.check(all(seq[i] == seq[i % n] for i in range(len(seq))),
            "%s: expected a fixed rotation of period %d" % (what, n), sequence=seq)


# ---- 6. config errors ---------------------------------------------------------------------


def config_errors(env):
    head = ['{', '  "server": "127.0.0.1:7000",', '  "proxies": [',
            '    {"name": "first", "type": "tcp", "local": "8080", "remote_port": 20000},',
            '    {"name": "second", "type": "tcp", "local": "8081",']
    tail = ['  ]', '}']
    # (file, the second proxy's last lines, key named, line of the error, message)
    cases = [
        ("group-alone.json", ['     "remote_port": 20001,', '     "group": "web"}'],
         "proxies[1].group", 7, "group and group_key go together"),
        ("key-alone.json", ['     "remote_port": 20001,',
                            '     "group_key": "%s"}' % CONFIG_KEY],
         "proxies[1].group_key", 7, "group and group_key go together"),
        ("group-in-options.json", ['     "remote_port": 20001,',
                                   '     "options": {"group": "web"}}'],
         "proxies[1].options", 7, "group and group_key belong to the proxy, not its options"),
        ("key-in-options.json", ['     "group": "web", "remote_port": 20001,',
                                 '     "options": {"group_key": "%s"},' % CONFIG_KEY,
                                 '     "group_key": "%s"}' % CONFIG_KEY],
         "proxies[1].options", 7, "group and group_key belong to the proxy, not its options"),
        ("key-too-long.json", ['     "remote_port": 20001, "group": "web",',
                               '     "group_key": "%s"}' % ("k" * 257)],
         "proxies[1].group_key", 7, "at most 256 bytes"),
    ]
    for fname, lines, key, line, msg in cases:
        with case(env, "config: %s" % fname):
            text = head + lines + tail
            path = env.write_file(fname, "\n".join(text) + "\n")
            code, out, err = t.run_recorded(env, [t.MGROK, "--plugin-dir", t.PLUGIN_DIR,
                                                  "--check", "-c", path])
            t.check_eq(code, 2, "exit code of mgrok --check -c %s" % fname, stderr=err)
            m = re.search(r"%s:(\d+):(\d+): (\S+): (.*)" % re.escape(path), err)
            t.check(m, "mgrok --check -c %s: expected FILE:LINE:COL: KEY: in the message"
                    % fname, stderr=err)
            t.check_eq((int(m.group(1)), m.group(3)), (line, key),
                       "(line, key) named by the error in %s" % fname, stderr=err)
            t.check(msg in m.group(4), "the error for %s: expected %r in it" % (fname, msg),
                    message=m.group(4))
            # The column points at the key in that line.
            name = key.rsplit(".", 1)[1]
            col = int(m.group(2))
            at = text[line - 1][col - 1:]
            t.check(at.startswith('"%s"' % name) or at.startswith(name),
                    "the column of the error in %s: expected it at the key %s" % (fname, name),
                    line=text[line - 1], column=col)
    with case(env, "config: a valid group"):
        text = head + ['     "remote_port": 20001, "group": "web",',
                       '     "group_key": "%s"}' % CONFIG_KEY] + tail
        path = env.write_file("valid-group.json", "\n".join(text) + "\n")
        code, out, err = t.run_recorded(env, [t.MGROK, "--plugin-dir", t.PLUGIN_DIR, "--check",
                                              "-c", path])
        t.check_eq(code, 0, "exit code of mgrok --check on a valid group", stderr=err)
        t.check("valid" in out, "mgrok --check on a valid group: expected it to say valid",
                stdout=out)
    t.log("config errors: done")


# ---- the server -----------------------------------------------------------------------------


def start_server(env, s):
    """mgrokd with tls_sni and the admin endpoint (which needs http-parser:
    a build without it has none, and the admin sub-case is skipped)."""
    ctrl, sadmin, tp = env.ports.take(), env.ports.take(), env.ports.take()
    lo = env.udp_ports(6)
    conf = {"listen": "127.0.0.1:%d" % ctrl,
            "auth": {"method": "token", "token": TOKEN},
            "allow_ports": ["%d-%d" % (lo, lo + 5)],
            "admin": {"listen": "127.0.0.1:%d" % sadmin, "token": ADMIN_TOKEN},
            "tls_sni": {"listen": "127.0.0.1:%d" % tp, "domain": DOMAIN}}
    path = t.write_json(env, "mgrokd-groups.json", conf)
    code, out, err = env.run_program([t.MGROKD, "--plugin-dir", t.PLUGIN_DIR, "--check",
                                      "-c", path])
    s.admin = None
    if code != 0 and "no admin endpoint" in err:
        t.log("this build has no admin endpoint: the admin sub-case is skipped")
        del conf["admin"]
        path = t.write_json(env, "mgrokd-groups.json", conf)
    else:
        t.check_eq(code, 0, "exit code of mgrokd --check on the test's config", stderr=err)
        s.admin = sadmin
    srv = env.start_server(token=None, config=path, name="mgrokd-groups")
    srv.port, srv.allow = ctrl, (lo, lo + 5)
    s.srv, s.lo, s.tp = srv, lo, tp


# ---- 1. tcp round robin ---------------------------------------------------------------------


def tcp_round_robin(env, s):
    srv, port = s.srv, s.lo
    s.ids = ["member-1", "member-2", "member-3"]
    svcs = [id_service(env, i) for i in s.ids]
    s.members = []
    for k, svc in enumerate(svcs):
        cl = member(env, srv, "rr-%d" % (k + 1), "tcp", svc, port, "rr", KEY)
        s.members.append((cl, session_of(srv, "rr-%d" % (k + 1), "tcp", port)))
    sids = [sid for _, sid in s.members]
    t.check_eq(len(set(sids)), 3, "distinct sessions of the three members", sessions=sids)
    seq = []
    for i in range(9):
        data = t.payload(100 + i, 1 + (i * 48611) % 200000)
        seq.append(visit(port, data, "visitor %d of 9 (%d bytes)" % (i + 1, len(data))))
    check_rotation(seq, s.ids, 3, "9 visitors over 3 members")
    t.check_eq([svc.count for svc in svcs], [3, 3, 3],
               "connections each member's service got")
    t.log("tcp round robin: %s" % seq)


# ---- 2. members leave -----------------------------------------------------------------------


def members_leave(env, s):
    t.check(getattr(s, "members", None) and len(s.members) == 3,
            "the group of sub-case 1 is not there")
    srv, port = s.srv, s.lo
    (first, sid1), (second, sid2), (third, sid3) = s.members
    held = {}
    try:
        # One connection to each member, opened before anyone leaves.
        for i in range(3):
            sock, ident = open_visitor(port, "held connection %d" % (i + 1))
            held[ident] = sock
        t.check_eq(sorted(held), s.ids, "members behind three consecutive visitors")
        for ident, sock in sorted(held.items()):
            exchange(sock, t.payload(200, 30000), "held connection to %s, before" % ident)

        # rr-2 leaves: its own stream ends, the others' go on.
        leave(srv, second, sid2)
        expect_end(held.pop("member-2"), "the held connection to member-2")
        for ident, sock in sorted(held.items()):
            exchange(sock, t.payload(201, 40000),
                     "held connection to %s, after member-2 left" % ident)
        seq = [visit(port, t.payload(210 + i, 1000 + 999 * i), "visitor %d of 6 after member-2 "
                     "left" % (i + 1)) for i in range(6)]
        check_rotation(seq, ["member-1", "member-3"], 3, "6 visitors after member-2 left")
        t.log("after member-2 left: %s" % seq)

        # rr-1, whose REGISTER bound the port, leaves: the port stays.
        log = srv.stderr_text()
        t.check(log.find("session %d proxy rr-1:" % sid1) < log.find("session %d proxy rr-2:"
                                                                      % sid2),
                "rr-1 was not the first member registered")
        leave(srv, first, sid1)
        expect_end(held.pop("member-1"), "the held connection to member-1")
        exchange(held["member-3"], t.payload(220, 50000),
                 "held connection to member-3, after member-1 left")
        seq = [visit(port, t.payload(230 + i, 7777 * (i + 1)), "visitor %d of 3 after member-1 "
                     "left" % (i + 1)) for i in range(3)]
        t.check_eq(seq, ["member-3"] * 3, "members behind 3 visitors with member-3 alone")

        # The last one leaves: the port closes, and anyone may have it.
        leave(srv, third, sid3)
        expect_end(held.pop("member-3"), "the held connection to member-3")
    finally:
        for sock in held.values():
            sock.close()
    t.wait_for(lambda: t.port_closed(port), IO_TIMEOUT,
               "port %d to refuse connections once the last member left" % port)
    echo = env.echo_service()
    plain = env.start_client(echo.port, srv, token=TOKEN, remote_port=port, cname="mgrok-plain")
    t.check_eq(plain.public_port, port, "public port of a plain proxy on the group's old port")
    big = t.payload(240, 300000)
    got = t.roundtrip(port, big)
    t.check(got == big, "the plain proxy on port %d: expected the %d bytes sent back"
            % (port, len(big)), got_len=len(got), same_prefix=got[:64] == big[:64])
    t.check_eq(plain.stop(), 0, "exit code of mgrok-plain on SIGTERM")
    t.log("members left one by one; the port went to a plain proxy")


# ---- 3. refusals ----------------------------------------------------------------------------


def refusals(env, s):
    srv, port, plain_port = s.srv, s.lo + 1, s.lo + 2
    holder_svc = id_service(env, "holder")
    holder = member(env, srv, "held-1", "tcp", holder_svc, port, "held", KEY)
    held_reason = "port %d is held by another group, or the group key differs" % port
    for name, group, key, status, reason in (
            ("intruder-key", "held", OTHER_KEY, t.ACK_PORT_IN_USE, held_reason),
            ("intruder-group", "other", KEY, t.ACK_PORT_IN_USE, held_reason),
            ("intruder-plain", None, None, t.ACK_PORT_IN_USE, "port %d is in use" % port)):
        cl = start_member(env, srv, proxy_conf(name, "tcp", holder_svc.port, port, group, key),
                          lines=0)
        refused(srv, cl, name, status, reason)
        t.log("refused: %s (%s)" % (name, reason))
    seq = [visit(port, t.payload(300 + i, 5000), "visitor %d after the refusals" % (i + 1))
           for i in range(2)]
    t.check_eq(seq, ["holder"] * 2, "members behind visitors after three refusals")

    # A right key still joins.
    joiner_svc = id_service(env, "joiner")
    joiner = member(env, srv, "held-2", "tcp", joiner_svc, port, "held", KEY)
    seq = [visit(port, t.payload(310 + i, 6000), "visitor %d with held-2" % (i + 1))
           for i in range(4)]
    check_rotation(seq, ["holder", "joiner"], 2, "4 visitors over held-1 and held-2")

    # A group on a port a plain proxy holds.
    echo = env.echo_service()
    plain = env.start_client(echo.port, srv, token=TOKEN, remote_port=plain_port,
                             cname="mgrok-plain-holder")
    cl = start_member(env, srv, proxy_conf("group-on-plain", "tcp", echo.port, plain_port,
                                           "late", KEY), lines=0)
    refused(srv, cl, "group-on-plain", t.ACK_PORT_IN_USE, "port %d is in use" % plain_port)
    t.echo_check(plain_port, b"the plain proxy is still there\n")

    # A group on a port needs that port; a group routed by name takes none.
    cl = start_member(env, srv, proxy_conf("no-port", "tcp", echo.port, None, "np", KEY),
                      lines=0)
    refused(srv, cl, "no-port", t.ACK_INVALID, "a group needs its remote port")
    cl = start_member(env, srv, proxy_conf("tls-port", "tls", echo.port, s.lo + 5, "tg", KEY,
                                           {"subdomain": "grp"}), lines=0)
    refused(srv, cl, "tls-port", t.ACK_INVALID,
            "a group of proxies routed by name takes no remote port")
    # (Members with other options: tcp proxies take no options at all, so
    # that is checked with udp proxies, in the udp sub-case.)

    for cl in (holder, joiner, plain):
        t.check_eq(cl.stop(), 0, "exit code of %s on SIGTERM" % cl.name)
    t.wait_for(lambda: t.port_closed(port), IO_TIMEOUT,
               "port %d to refuse connections once the group is gone" % port)


# ---- 3b. a group by name (tls) ----------------------------------------------------------------


def client_hello(sni):
    """The first flight (a ClientHello) of a TLS client for sni."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    inb, outb = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inb, outb, server_hostname=sni)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    hello = outb.read()
    t.check(hello[:1] == b"\x16", "expected a handshake record as the first flight",
            got=hello[:16])
    return hello


def tls_visit(port, hello, ids, what):
    """A visitor on the tls_sni port sends a ClientHello and half-closes;
    the member's service answers its id line and echoes the hello. Returns
    the id."""
    s = t.connect(port, timeout=IO_TIMEOUT)
    try:
        s.sendall(hello)
        s.shutdown(socket.SHUT_WR)
        got = t.recv_all(s)
    finally:
        s.close()
    ident = got.split(b"\n", 1)[0].decode("ascii", "replace")
    t.check(ident in ids, "%s: expected the id line of one of %s" % (what, ids), got=got[:60])
    t.check(got == ident.encode() + b"\n" + hello,
            "%s: expected %s's id line and the %d-byte ClientHello back" % (what, ident,
                                                                           len(hello)),
            got_len=len(got), same_hello=got.endswith(hello))
    return ident


def tls_by_name(env, s):
    srv, tp = s.srv, s.tp
    host = "grp." + DOMAIN
    ids = ["tls-member-a", "tls-member-b"]
    svcs = [id_service(env, i) for i in ids]
    cls = []
    for ident, svc in zip(ids, svcs):
        name = ident.replace("-member", "")
        cl = start_member(env, srv, proxy_conf(name, "tls", svc.port, None, "tg", KEY,
                                               {"subdomain": "grp"}))
        t.check_eq(cl.public_lines(), [("tls", host, tp, "127.0.0.1:%d" % svc.port)],
                   "public line of tls group member %s (the group's name)" % name)
        cls.append(cl)
    cl = start_member(env, srv, proxy_conf("tls-c", "tls", svcs[0].port, None, "tg", OTHER_KEY,
                                           {"subdomain": "grp"}), lines=0)
    refused(srv, cl, "tls-c", t.ACK_FORBIDDEN, "the group key of group tg differs")
    hello = client_hello(host)
    seq = [tls_visit(tp, hello, ids, "tls visitor %d" % (i + 1)) for i in range(4)]
    check_rotation(seq, ids, 2, "4 tls visitors over 2 members")
    for cl in cls:
        t.check_eq(cl.stop(), 0, "exit code of %s on SIGTERM" % cl.name)
    # The name is free again: a plain tls proxy may claim it.
    echo = env.echo_service()
    plain = start_member(env, srv, proxy_conf("tls-plain", "tls", echo.port, None,
                                              options={"subdomain": "grp"}))
    t.check_eq(plain.public_lines(), [("tls", host, tp, "127.0.0.1:%d" % echo.port)],
               "public line of a plain tls proxy on the group's old name")
    t.check_eq(plain.stop(), 0, "exit code of %s on SIGTERM" % plain.name)
    t.log("tls group by name: %s" % seq)


# ---- 4. udp ---------------------------------------------------------------------------------


def udp_group(env, s):
    srv, port = s.srv, s.lo + 3
    svc = {"udp-a": udp_id_service(env, "udp-a"), "udp-b": udp_id_service(env, "udp-b")}
    cl_a = member(env, srv, "dns-a", "udp", svc["udp-a"], port, "dns", KEY)
    cl_b = member(env, srv, "dns-b", "udp", svc["udp-b"], port, "dns", KEY)
    sid_a = session_of(srv, "dns-a", "udp", port)
    sid_b = session_of(srv, "dns-b", "udp", port)

    # A member with other options is refused.
    cl = start_member(env, srv, proxy_conf("dns-c", "udp", svc["udp-a"].port, port, "dns", KEY,
                                           {"idle_timeout": 30}), lines=0)
    refused(srv, cl, "dns-c", t.ACK_INVALID, "group dns's members have other options")

    socks = [t.udp_socket() for _ in range(4)]
    answers = []  # every answer so far: a late copy of one is ignored

    def ask(v, rnd, what):
        data = b"visitor %d datagram %d|" % (v, rnd) + t.payload(400 + 10 * v + rnd, 500 + 97 * v)
        got = t.udp_exchange(socks[v], port, data, ignore=answers)
        ident = got.split(b"|", 1)[0].decode("ascii", "replace")
        t.check(ident in svc, "%s: expected an answer from udp-a or udp-b" % what,
                got=got[:60])
        t.check_eq(got, ident.encode() + b"|" + data,
                   "%s: the answer (%s's prefix and the datagram)" % (what, ident))
        answers.append(got)
        return ident

    try:
        owner = []
        for rnd in range(3):
            for v in range(4):
                ident = ask(v, rnd, "visitor %d, datagram %d" % (v, rnd))
                if rnd == 0:
                    owner.append(ident)
                else:
                    t.check_eq(ident, owner[v], "member answering visitor %d's datagram %d "
                               "(the one that answered its first)" % (v, rnd))
        check_rotation(owner, sorted(svc), 2, "4 udp visitors over 2 members")
        for name, u in sorted(svc.items()):
            t.check_eq(len(u.sources), 2, "distinct sources %s's service saw (a flow per "
                       "visitor)" % name, sources=sorted(u.sources))
        t.log("udp visitors -> members: %s" % owner)

        # dns-b leaves: its visitors go to dns-a, dns-a's stay there.
        leave(srv, cl_b, sid_b)
        for v in range(4):
            t.check_eq(ask(v, 3, "visitor %d after dns-b left" % v), "udp-a",
                       "member answering visitor %d after dns-b left (was %s)" % (v, owner[v]))
        leave(srv, cl_a, sid_a)
    finally:
        for sock in socks:
            sock.close()
    t.wait_for(lambda: t.udp_port_free(port), IO_TIMEOUT,
               "udp port %d to be free once the last member left" % port)


# ---- 5. admin and metrics -------------------------------------------------------------------


def admin_metrics(env, s):
    if s.admin is None:
        t.log("SKIP admin sub-case: this build has no admin endpoint")
        return
    srv, port = s.srv, s.lo + 4
    names = {"metrics-x": "gm-x", "metrics-y": "gm-y"}  # service id -> proxy name
    svcs = {i: id_service(env, i) for i in names}
    cls = [member(env, srv, names[i], "tcp", svcs[i], port, "gm", KEY) for i in sorted(names)]
    carried = {i: {"in": 0, "out": 0} for i in names}
    sizes = (70001, 123, 45678, 1, 250000, 9)
    for k, size in enumerate(sizes):
        ident = visit(port, t.payload(500 + k, size), "metrics visitor %d (%d bytes)" % (k, size))
        t.check(ident in names, "metrics visitor %d: expected a gm member" % k, ident=ident)
        carried[ident]["in"] += size                      # visitor -> service
        carried[ident]["out"] += size + len(ident) + 1    # the id line, then the echo
    t.check_eq(sorted(svcs[i].count for i in names), [3, 3], "visitors per gm member")

    public = "tcp://127.0.0.1:%d" % port
    for ident, name in sorted(names.items()):
        for direction in ("in", "out"):
            A.wait_counter(s.admin, ADMIN_TOKEN, TRANSMIT, carried[ident][direction],
                           {"proxy": name, "direction": direction},
                           timeout=IO_TIMEOUT)
    m = A.metrics(s.admin, ADMIN_TOKEN)
    for ident, name in sorted(names.items()):
        total = sum(v for _, v in m.find(TRANSMIT, proxy=name))
        t.check_eq(total, carried[ident]["in"] + carried[ident]["out"],
                   "%s{proxy=%s}, both directions" % (TRANSMIT, name))
    t.check_eq(m.find(TRANSMIT, proxy="gm"), [],
               "%s series of the group's own name (expected none)" % TRANSMIT)

    def settled():
        lst = A.sessions(s.admin, ADMIN_TOKEN)
        pxs = [p for x in lst for p in x.get("proxies") or [] if p.get("name") in names.values()]
        return lst if len(pxs) == 2 and all(p.get("streams") == 0 for p in pxs) else None
    sessions = t.wait_for(settled, IO_TIMEOUT, "both gm members listed with no stream open")
    seen = []
    for ident, name in sorted(names.items()):
        found = [x for x in sessions if any(p.get("name") == name for p in x.get("proxies") or [])]
        t.check_eq(len(found), 1, "sessions listing proxy %s" % name, sessions=sessions)
        seen.append(found[0].get("id"))
        pxs = found[0]["proxies"]
        t.check_eq(len(pxs), 1, "proxies of %s's session" % name, proxies=pxs)
        px = pxs[0]
        want = {"name": name, "type": "tcp", "public_address": public, "group": "gm",
                "streams": 0,
                "bytes_in": carried[ident]["in"], "bytes_out": carried[ident]["out"]}
        t.check_eq({k: px.get(k) for k in want}, want,
                   "GET /api/v1/sessions: proxy %s" % name, proxy=px)
    t.check(len(set(seen)) == 2, "the two members are not on two sessions", sessions=seen)
    for cl in cls:
        t.check_eq(cl.stop(), 0, "exit code of %s on SIGTERM" % cl.name)
    t.log("admin: both members listed at %s; transmit bytes %s" % (public, carried))


def main(env):
    s = Setup()
    config_errors(env)
    start_server(env, s)
    for what, fn in (("1. tcp round robin over three members", tcp_round_robin),
                     ("2. members leave one by one", members_leave),
                     ("3. refusals", refusals),
                     ("3b. a tls group by name", tls_by_name),
                     ("4. a udp group", udp_group),
                     ("5. admin sessions and metrics", admin_metrics)):
        t.log("---- %s" % what)
        with case(env, what):
            fn(env, s)
    t.check(s.srv.alive(), "mgrokd died")
    t.check_eq(s.srv.stop(), 0, "exit code of mgrokd on SIGTERM")
    for p in env.procs:
        p.stop()
    t.check_no_secrets(env, [TOKEN, ADMIN_TOKEN, KEY, OTHER_KEY, CONFIG_KEY])
    # Streams of members that left may end with a reset on the local side.
    env.check_services(allow_resets=6)


t.run(main)
