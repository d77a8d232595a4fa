#!/usr/bin/env python3
"""Three mgrokd nodes on 127.0.0.11, .12 and .13 (the same ports), a
redis-server and HAProxy on 127.0.0.10, all started and stopped here
(doc/cluster.md).

1. Tunnels: a client through HAProxy registers a tcp proxy (PROXY v2 to
   its service), a udp and an http one (with a login); visitors from
   127.0.0.77 to each node and through HAProxy reach the service byte for
   byte, and the tcp service sees 127.0.0.77 as the visitor every time; udp
   through each node, http by name through each node and HAProxy, refused
   (401) without the login on every node; tls by name (the service's own
   certificate, verified) through each node; each node's cluster metrics.
2. Twenty clients, seven or six on each node, each a tcp proxy on port 0
   and an http proxy on a random name, started at once: forty different
   ports and names, each reachable through HAProxy.
3. A group of three clients, one on each node: visitors through HAProxy
   and each node reach all three; one killed (SIGKILL), the other two
   carry every visitor.
4. Redis stopped for 10 s: the tunnels work throughout (through every
   node), a new client is refused ("registry"); Redis back: claims are
   written again, a new client registers; no port or name is held by the
   proxies of two nodes.
5. kill -9 of the node holding the first client: visitors through
   HAProxy work again after a gap (logged, with the lease and health
   check times it depends on); a tunnel on another node never failed.
6. SIGTERM of the node holding a client that came through HAProxy: the
   client moves and its visitors work again; a connection in flight
   through another node keeps echoing throughout.
"""
import base64
import os
import ssl
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mgroktest as t
from mgroktest.cluster import (CLUSTER_SECRET, Redis, check_echo, haproxy_config, node_config,
                               start_haproxy)

A = t.admin
TOKEN = "cluster-e2e-Token-6f1a9c3e5b7d2048"
ADMIN_TOKEN = "cluster-e2e-admin-Token-0b9d7f5e3c1a8264"
GROUP_KEY = "cluster-group-Key-3e5c7a9b1d0f2468"
WEB_LOGIN = "web:cluster-Basic-Pass-5a7c9e1b3d"
FRONT = "127.0.0.10"
HOSTS = {"a": "127.0.0.11", "b": "127.0.0.12", "c": "127.0.0.13"}
VISITOR = "127.0.0.77"
DOMAIN = "cluster.test"
LEASE = 2.0
IO = 10


class Setup:
    pass


# ---- services and visitors ------------------------------------------------------------

def http_handler(tag):
    def handler(conn):
        head = b""
        while b"\r\n\r\n" not in head:
            b = conn.recv(4096)
            if not b:
                return
            head += b
        body = b"served by " + tag.encode()
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
                     % len(body) + body)
    return handler


def tls_echo_handler(cert, key):
    """A TLS service of its own certificate (the tls proxy passes TLS
    through): echoes until EOF."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)

    def handler(conn):
        with ctx.wrap_socket(conn, server_side=True) as tls:
            while True:
                b = tls.recv(65536)
                if not b:
                    break
                tls.sendall(b)
    return handler


def tls_echo(host, port, name, cafile, data):
    ctx = ssl.create_default_context(cafile=cafile)
    with socket.create_connection((host, port), timeout=IO) as raw:
        with ctx.wrap_socket(raw, server_hostname=name) as tls:
            tls.sendall(data)
            got = b""
            while len(got) < len(data):
                b = tls.recv(65536)
                if not b:
                    break
                got += b
            return got


def tag_handler(tag):
    """Answers its tag, then echoes: which member a visitor reached."""
    def handler(conn):
        conn.sendall(tag.encode() + b"\n")
        while True:
            b = conn.recv(65536)
            if not b:
                break
            conn.sendall(b)
        conn.shutdown(socket.SHUT_WR)
    return handler


def visit_pp(host, port, data):
    """A visitor from VISITOR: the service's report of its PROXY header,
    then data echoed."""
    s = socket.socket()
    s.settimeout(IO)
    try:
        s.bind((VISITOR, 0))
        s.connect((host, port))
        report = t.read_report(s)
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        got = t.recv_all(s)
    finally:
        s.close()
    return report, got


def http_get(host, port, name, auth=None):
    fields = b"Authorization: Basic %s\r\n" % base64.b64encode(auth.encode()) if auth else b""
    with socket.create_connection((host, port), timeout=IO) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: %s\r\n%sConnection: close\r\n\r\n"
                  % (name.encode(), fields))
        return t.recv_all(s)


def recv_exact(conn, n):
    got = b""
    while len(got) < n:
        b = conn.recv(n - len(got))
        if not b:
            raise t.TestFailure("EOF after %d of %d bytes" % (len(got), n))
        got += b
    return got


def udp_roundtrip(host, port, data):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2)
        for _ in range(5):  # a datagram may be lost while a flow is set up
            s.sendto(data, (host, port))
            try:
                return s.recv(65536)
            except socket.timeout:
                continue
    raise t.TestFailure("no UDP answer from %s:%d" % (host, port))


def tag_of(host, port):
    with socket.create_connection((host, port), timeout=IO) as s:
        line = b""
        while not line.endswith(b"\n"):
            b = s.recv(1)
            if not b:
                raise t.TestFailure("no tag from %s:%d" % (host, port))
            line += b
        return line.decode().strip()


# ---- the cluster --------------------------------------------------------------------------

def start(env, s):
    s.redis = Redis(env)
    s.redis.start()
    s.control = env.ports.take()
    s.http = env.ports.take()
    s.tls = env.ports.take()
    s.public_block = t.PortBlock()  # a second block: every port of it public
    s.allow = s.public_block.take_range(t.PortBlock.SIZE)
    s.admin = {n: env.ports.take() for n in HOSTS}
    s.nodes = {}
    for n, host in HOSTS.items():
        extra = {"proxy_protocol_from": [FRONT],
                 "http": {"listen": "%s:%d" % (host, s.http), "domain": DOMAIN},
                 "tls_sni": {"listen": "%s:%d" % (host, s.tls), "domain": DOMAIN},
                 "admin": {"listen": "127.0.0.1:%d" % s.admin[n], "token": ADMIN_TOKEN},
                 "shutdown_timeout": 3,
                 "heartbeat": {"interval": 1, "timeout": 3}}
        conf = node_config(env, n, host, s.control, s.allow, s.redis, TOKEN, LEASE, extra)
        s.nodes[n] = env.start_server(config=conf, name="mgrokd-" + n, port=s.control,
                                      listen_host=host, allow=s.allow, token=None)
    cfg = haproxy_config(env, FRONT, HOSTS, s.control, s.allow, s.http)
    s.haproxy = start_haproxy(env, cfg, FRONT, s.control)
    s.front = "%s:%d" % (FRONT, s.control)


def client_config(env, server, proxies, name):
    """server: "host:port"."""
    return t.write_json(env, name, {"server": server, "proxies": proxies,
                                    "auth": {"method": "token", "token": TOKEN},
                                    "reconnect": {"initial": 0.5, "max": 2}})


def client(env, s, server, proxies, name):
    conf = client_config(env, server, proxies, name + ".json")
    return env.start_client(None, None, token=None, config=conf, lines=len(proxies),
                            cname=name)


def holder(s, proxy_name, nodes=None):
    """The node whose own (not relayed) sessions have proxy_name."""
    found = []
    for n in nodes or HOSTS:
        for sess in A.sessions(s.admin[n], ADMIN_TOKEN):
            if sess.get("identity") == "cluster":
                continue
            if any(p.get("name") == proxy_name for p in sess.get("proxies") or []):
                found.append(n)
    t.check_eq(len(found), 1, "nodes holding proxy %s" % proxy_name, nodes=found)
    return found[0]


def wait_bound(host, port):
    """Relays register in the background: until host:port takes connections."""
    def bound():
        try:
            socket.create_connection((host, port), timeout=2).close()
            return True
        except OSError:
            return False
    t.wait_for(bound, t.DEADLINE, "%s:%d to be served" % (host, port), interval=0.1)


# ---- cases -----------------------------------------------------------------------------------

def tunnels(env, s):
    s.pp = env.service(t.pp_echo_handler, name="pp-echo")
    s.udp = env.udp_echo_service()
    s.web = env.service(http_handler("web"), name="web")
    s.sec_cert, sec_key, _ = t.gen_cert(env, "sec", "sec." + DOMAIN)
    sec = env.service(tls_echo_handler(s.sec_cert, sec_key), name="sec")
    s.tcp_port, s.udp_port = s.allow[0], s.allow[0] + 1
    s.first = client(env, s, s.front, [
        {"name": "svc", "type": "tcp", "local": str(s.pp.port), "remote_port": s.tcp_port,
         "proxy_protocol": "v2"},
        {"name": "dns", "type": "udp", "local": str(s.udp.port), "remote_port": s.udp_port},
        {"name": "web", "type": "http", "local": str(s.web.port),
         "options": {"subdomain": "app", "basic_auth": WEB_LOGIN}},
        {"name": "sec", "type": "tls", "local": str(sec.port),
         "options": {"subdomain": "sec"}}], "first")
    hosts = list(HOSTS.values()) + [FRONT]
    for i, host in enumerate(hosts):
        wait_bound(host, s.tcp_port)
        data = t.payload(10 + i, 200000)
        report, got = visit_pp(host, s.tcp_port, data)
        t.check_eq(report["src"][0], VISITOR, "the visitor's address via %s" % host,
                   report=report)
        t.check(got == data, "tcp via %s: the echo differs" % host, sent=len(data),
                got=len(got))
        reply = http_get(host, s.http, "app." + DOMAIN, WEB_LOGIN)
        t.check(reply.startswith(b"HTTP/1.1 200") and reply.endswith(b"served by web"),
                "http via %s" % host, reply=reply[:200])
        reply = http_get(host, s.http, "app." + DOMAIN)
        t.check(reply.startswith(b"HTTP/1.1 401"), "http via %s without the login" % host,
                reply=reply[:200])
    for host in HOSTS.values():
        data = t.payload(30, 1200)
        t.check_eq(udp_roundtrip(host, s.udp_port, data), data, "udp via %s" % host)
        data = t.payload(31, 100000)
        got = tls_echo(host, s.tls, "sec." + DOMAIN, s.sec_cert, data)
        t.check(got == data, "tls by name via %s: the echo differs" % host, sent=len(data),
                got=len(got))
    home = holder(s, "svc")
    for n in HOSTS:
        m = A.metrics(s.admin[n], ADMIN_TOKEN, what="node %s's metrics" % n)
        t.check_eq(m.value("mgrok_cluster_registry_up"), 1, "registry up on node %s" % n)
        t.check_eq(m.value("mgrok_cluster_nodes", relay="up"), 2, "relays up from node %s" % n)
        t.check_eq(m.value("mgrok_cluster_nodes", relay="down"), 0,
                   "relays down from node %s" % n)
        t.check_eq(m.value("mgrok_cluster_claims"), 4 if n == home else 0,
                   "claims of node %s (the client is on %s)" % (n, home))
    t.log("tcp, udp, http and tls through every node (tcp, http through HAProxy too); "
          "tcp visitor address %s kept"
          % VISITOR)


def twenty(env, s):
    web = env.service(http_handler("many"), name="many-web")
    echo = env.echo_service()
    names = list(HOSTS)
    procs = []
    for i in range(20):
        n = names[i % 3]
        conf = client_config(env, "%s:%d" % (HOSTS[n], s.control), [
            {"name": "t", "type": "tcp", "local": str(echo.port)},
            {"name": "h", "type": "http", "local": str(web.port)}], "many%d.json" % i)
        procs.append(env.start_client(None, None, token=None, config=conf, lines=0,
                                      cname="many%d" % i))
    ports, hostnames = [], []
    for p in procs:
        for scheme, host, port, _ in p.wait_lines(2):
            if scheme == "tcp":
                ports.append(port)
            else:
                hostnames.append(host)
    t.check_eq(len(set(ports)), 20, "different ports of 20 clients", ports=sorted(ports))
    t.check_eq(len(set(hostnames)), 20, "different names of 20 clients", names=hostnames)
    for port in ports[:5]:
        wait_bound(FRONT, port)
        check_echo(FRONT, port, t.payload(port, 5000), "port %d through HAProxy" % port)
    for name in hostnames[:5]:
        reply = http_get(FRONT, s.http, name)
        t.check(reply.endswith(b"served by many"), "%s through HAProxy" % name,
                reply=reply[:200])
    for p in procs:
        p.stop()
    t.log("20 clients: ports %d-%d, 20 names, no collision" % (min(ports), max(ports)))


def group(env, s):
    port = s.allow[0] + 2
    members = {}
    for n in HOSTS:
        svc = env.service(tag_handler("member-" + n), name="member-" + n)
        members[n] = client(env, s, "%s:%d" % (HOSTS[n], s.control), [
            {"name": "g-" + n, "type": "tcp", "local": str(svc.port), "remote_port": port,
             "group": "g", "group_key": GROUP_KEY}], "member-" + n)
    seen = {}
    hosts = [FRONT] * 6 + list(HOSTS.values()) * 4
    for host in hosts:
        wait_bound(host, port)
    for _ in range(3):
        for host in hosts:
            tag = tag_of(host, port)
            seen[tag] = seen.get(tag, 0) + 1
    t.check_eq(sorted(seen), ["member-a", "member-b", "member-c"],
               "members reached by visitors", seen=seen)
    t.log("group of 3: %s" % seen)
    members["b"].stop(sig=9)

    def all_through():
        got = {}
        for host in [FRONT] * 3 + list(HOSTS.values()) * 2:
            try:
                tag = tag_of(host, port)
            except (OSError, t.TestFailure):
                return None
            got[tag] = got.get(tag, 0) + 1
        return got
    got = t.wait_for(all_through, t.DEADLINE, "every visitor to reach a member", interval=0.3)
    t.check_eq(sorted(got), ["member-a", "member-c"], "members after member-b died", seen=got)
    s.group_port = port
    s.group_members = members
    t.log("member b killed: the others carry on (%s)" % got)


def proxies_by_node(s):
    """{(type, port or name): [nodes]} of the proxies of clients (not of
    node relays, not group members) on each node."""
    held = {}
    for n in s.alive:
        for sess in A.sessions(s.admin[n], ADMIN_TOKEN):
            if sess.get("identity") == "cluster":
                continue
            for p in sess.get("proxies") or []:
                if p.get("group"):
                    continue
                held.setdefault(p.get("public_address"), []).append(n)
    return held


def redis_away(env, s):
    stop = threading.Event()
    errors, rounds = [], [0]

    def visit():
        i = 0
        while not stop.is_set():
            for host in list(HOSTS.values()) + [FRONT]:
                i += 1
                data = t.payload(5000 + i, 3000)
                try:
                    report, got = visit_pp(host, s.tcp_port, data)
                    if got != data or report["src"][0] != VISITOR:
                        errors.append("via %s: bad echo or address %r" % (host, report))
                    else:
                        rounds[0] += 1
                except (OSError, t.TestFailure) as e:
                    errors.append("via %s: %r" % (host, e))
            time.sleep(0.2)
    th = threading.Thread(target=visit, daemon=True)
    th.start()
    s.redis.stop()
    time.sleep(1)
    late = client_refused(env, s)
    for n in HOSTS:
        m = A.metrics(s.admin[n], ADMIN_TOKEN, what="node %s's metrics" % n)
        t.check_eq(m.value("mgrok_cluster_registry_up"), 0,
                   "registry up on node %s while Redis is away" % n)
    time.sleep(9)
    s.redis.start()
    t.wait_for(lambda: "mgrok:claim:tcp/%d" % s.tcp_port in s.redis.claims(), t.DEADLINE,
               "the first client's claim to be written again")
    stop.set()
    th.join(t.DEADLINE)
    t.check(not errors, "visitors while Redis was away", errors=errors[:5], rounds=rounds[0])
    t.check(rounds[0] >= 20, "too few visits while Redis was away", rounds=rounds[0])
    echo = env.echo_service()
    later = client(env, s, s.front, [{"name": "later", "type": "tcp",
                                      "local": str(echo.port)}], "later")
    port = later.public_lines()[0][2]
    wait_bound(FRONT, port)
    check_echo(FRONT, port, t.payload(77, 9000), "a client registered after Redis came back")
    later.stop()
    s.alive = list(HOSTS)
    held = proxies_by_node(s)
    dup = {k: v for k, v in held.items() if len(v) > 1}
    t.check(not dup, "a port or name held on two nodes", dup=dup)
    claims = s.redis.claims()
    t.check("mgrok:claim:http/app.%s" % DOMAIN in claims, "the name's claim is back",
            claims=sorted(claims))
    t.log("Redis away 10 s: %d visits, none failed; refused meanwhile: %s" % (rounds[0], late))


def client_refused(env, s):
    echo = env.echo_service()
    p = client_proc(env, s, echo)
    code = p.wait_exit(t.DEADLINE)
    err = p.stderr_text()
    t.check(code != 0 and "registry" in err, "a client while Redis is away", code=code,
            stderr=err[-500:])
    return [line for line in err.splitlines() if "registry" in line][0]


def client_proc(env, s, echo):
    conf = client_config(env, s.front, [{"name": "new", "type": "tcp",
                                         "local": str(echo.port)}], "refused.json")
    return env.start_client(None, None, token=None, config=conf, lines=0, cname="refused")


def node_killed(env, s):
    victim = holder(s, "svc")
    others = [n for n in HOSTS if n != victim]
    echo = env.echo_service()
    bystander_port = s.allow[0] + 3
    by = client(env, s, "%s:%d" % (HOSTS[others[0]], s.control), [
        {"name": "by", "type": "tcp", "local": str(echo.port), "remote_port": bystander_port}],
        "bystander")
    for n in others:
        wait_bound(HOSTS[n], bystander_port)
    loops = [t.EchoLoop(bystander_port, host=HOSTS[n], interval=0.2) for n in others]
    for lp in loops:
        lp.start()
    time.sleep(0.5)
    t0 = time.monotonic()
    s.nodes[victim].stop(sig=9)

    def back():
        try:
            report, got = visit_pp(FRONT, s.tcp_port, b"back?")
            return got == b"back?"
        except (OSError, t.TestFailure):
            return False
    t.wait_for(back, t.DEADLINE, "visitors through HAProxy to work again", interval=0.05)
    gap = time.monotonic() - t0
    time.sleep(1)
    for lp in loops:
        lp.stop()
    for lp in loops:
        t.check(not lp.errors and lp.rounds > 0, "the bystander tunnel during the kill",
                errors=lp.errors[:3], rounds=lp.rounds)
    s.alive = others
    now = holder(s, "svc", others)
    t.log("kill -9 of node %s: visitors through HAProxy back after %.2f s (client moved to "
          "%s; lease %.1f s, HAProxy check every 0.3 s, client retry from 0.5 s); bystander "
          "tunnel: %s rounds, no error" % (victim, gap, now, LEASE,
                                           "+".join(str(lp.rounds) for lp in loops)))
    s.kill_gap = gap
    by.stop()


def node_drained(env, s):
    victim = holder(s, "svc", s.alive)
    other = [n for n in s.alive if n != victim][0]
    echo = env.echo_service()
    port = s.allow[0] + 4
    stay = client(env, s, "%s:%d" % (HOSTS[other], s.control), [
        {"name": "stay", "type": "tcp", "local": str(echo.port), "remote_port": port}],
        "stay")
    wait_bound(HOSTS[other], port)
    conn = socket.create_connection((HOSTS[other], port), timeout=IO)
    conn.sendall(b"before")
    t.check_eq(recv_exact(conn, 6), b"before", "in-flight connection before the drain")
    t0 = time.monotonic()
    s.nodes[victim].send_signal(15)

    def back():
        try:
            report, got = visit_pp(FRONT, s.tcp_port, b"moved?")
            return got == b"moved?" and holder(s, "svc", [other]) == other
        except (OSError, t.TestFailure):
            return False
    t.wait_for(back, t.DEADLINE, "the drained node's client to move", interval=0.1)
    gap = time.monotonic() - t0
    for i in range(5):
        msg = b"during %d" % i
        conn.sendall(msg)
        t.check_eq(recv_exact(conn, len(msg)), msg, "in-flight connection after the drain")
    conn.close()
    t.check_eq(s.nodes[victim].wait_exit(t.DEADLINE), 0, "exit code of the drained node")
    t.log("SIGTERM of node %s: its client served through HAProxy again after %.2f s; a "
          "connection through node %s echoed throughout" % (victim, gap, other))
    stay.stop()


def main(env):
    s = Setup()
    start(env, s)
    s.alive = list(HOSTS)
    for what, fn in (("1. tunnels through every node", tunnels),
                     ("2. twenty clients at once", twenty),
                     ("3. a group of three", group),
                     ("4. Redis away for 10 s", redis_away),
                     ("5. kill -9 of a node", node_killed),
                     ("6. SIGTERM of a node", node_drained)):
        t.log("---- %s" % what)
        with env.case(what):
            fn(env, s)
    for p in env.procs:
        p.stop()
    t.check_no_secrets(env, [TOKEN, ADMIN_TOKEN, GROUP_KEY, CLUSTER_SECRET, WEB_LOGIN])


t.WATCHDOG = 300.0
t.run(main)
