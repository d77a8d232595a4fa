#!/usr/bin/env python3
"""A real DNS server (dnsmasq) behind `mgrok udp`, asked by a real client
(dig) through the public port: answers, empty answers, NXDOMAIN, TXT, and a
response over 512 bytes, each byte of which must survive the tunnel."""
import os
import re
import shutil
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mgroktest as t

TOKEN = "udp-dns-token"
QUERIES = 20
ADDRESS = "10.9.8.7"
TXT = "hello mgrok"
# Four strings of 250 characters: an answer of about 1 kB (dig asks with
# EDNS, dnsmasq answers up to 1232 bytes over UDP).
BIG_TXT = [c * 250 for c in "wxyz"]


def find_program(name, paths):
    for p in paths:
        if os.access(p, os.X_OK):
            return p
    found = shutil.which(name)
    t.check(found, "%s is missing: run ./bootstrap (it installs dnsmasq-base and "
            "bind9-dnsutils)" % name)
    return found


def start_dnsmasq(env, dnsmasq, port):
    # --no-daemon: foreground, no pid file, no change of user (so it runs the
    # same as root or not); --log-facility=-: log to stderr only.
    argv = [dnsmasq, "--no-daemon", "--log-facility=-", "--log-queries",
            "--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--no-poll",
            "--port=%d" % port, "--listen-address=127.0.0.1", "--bind-interfaces",
            "--pid-file=%s" % os.path.join(env.dir, "dnsmasq.pid"),
            "--address=/mgrok.test/%s" % ADDRESS, "--local=/mgrok.test/",
            "--address=/nx.test/",
            "--txt-record=txt.mgrok.test,%s" % TXT,
            "--txt-record=big.mgrok.test,%s" % ",".join(BIG_TXT)]
    dm = env.spawn("dnsmasq", argv)
    t.wait_for(lambda: "started, version" in dm.stderr_text() or not dm.alive(),
               timeout=20, what="dnsmasq to start")
    t.check(dm.alive(), "dnsmasq exited with code %s" % dm.returncode,
            stderr=dm.stderr_text()[-500:])
    return dm


_dig_sources = set()


def fresh_source_port():
    """A UDP port the kernel just handed out and no earlier dig used: two
    digs from one address would be one flow, and the visitor count below
    could not tell them apart."""
    for _ in range(100):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        if port not in _dig_sources:
            _dig_sources.add(port)
            return port
    raise t.TestFailure("no fresh UDP source port for dig")


def dig(env, digprog, port, *query):
    code, out, err = env.run_program([digprog, "@127.0.0.1", "-p", str(port),
                                      "-b", "127.0.0.1#%d" % fresh_source_port()] +
                                     list(query) + ["+time=2", "+tries=3"], timeout=30)
    t.check_eq(code, 0, "exit code of dig %s" % " ".join(query), stdout=out, stderr=err)
    return out


def status_of(out):
    m = re.search(r"status: (\w+)", out)
    t.check(m, "no status in dig's output", output=out)
    return m.group(1)


def answers_of(out):
    m = re.search(r"ANSWER: (\d+)", out)
    t.check(m, "no answer count in dig's output", output=out)
    return int(m.group(1))


def main(env):
    dnsmasq = find_program("dnsmasq", ["/usr/sbin/dnsmasq"])
    digprog = find_program("dig", ["/usr/bin/dig"])
    dns_port = env.udp_ports(1)
    dm = start_dnsmasq(env, dnsmasq, dns_port)
    # dnsmasq answers directly: the setup works before the tunnel is in it.
    out = dig(env, digprog, dns_port, "mgrok.test", "A", "+short")
    t.check_eq(out.strip(), ADDRESS, "dnsmasq's own answer (no tunnel)")
    (first_source,) = _dig_sources

    lo = env.udp_ports(2)
    srv = env.start_server(token=TOKEN, allow=(lo, lo + 1), extra=("-v",))
    cl = env.start_client("127.0.0.1:%d" % dns_port, srv, token=TOKEN, proto="udp",
                          remote_port=lo, cname="mgrok-dns")
    t.check_eq(cl.public_lines()[0][:3], ("udp", "127.0.0.1", lo), "public address of mgrok udp")

    for i in range(QUERIES):
        out = dig(env, digprog, lo, "mgrok.test", "A", "+short")
        t.check_eq(out.strip(), ADDRESS, "dig mgrok.test A through the tunnel (query %d)" % i)
    t.log("%d A queries through the tunnel: %s" % (QUERIES, ADDRESS))

    out = dig(env, digprog, lo, "mgrok.test", "AAAA")
    t.check(status_of(out) == "NOERROR" and answers_of(out) == 0,
            "AAAA mgrok.test: expected NOERROR with no answer", output=out)
    out = dig(env, digprog, lo, "mgrok.test", "AAAA", "+short")
    t.check_eq(out.strip(), "", "dig +short AAAA mgrok.test (no IPv6 address)")
    out = dig(env, digprog, lo, "nx.test", "A")
    t.check(status_of(out) == "NXDOMAIN" and answers_of(out) == 0,
            "A nx.test: expected NXDOMAIN", output=out)
    out = dig(env, digprog, lo, "mgrok.test", "TXT")
    t.check(status_of(out) == "NOERROR" and answers_of(out) == 0,
            "TXT mgrok.test: expected NOERROR with no answer", output=out)
    out = dig(env, digprog, lo, "txt.mgrok.test", "TXT", "+short")
    t.check_eq(out.strip(), '"%s"' % TXT, "dig +short TXT txt.mgrok.test")
    # About 1 kB in one datagram; +ignore: a truncated answer is not asked
    # again over TCP (there is no TCP proxy), it shows as the tc flag.
    out = dig(env, digprog, lo, "big.mgrok.test", "TXT", "+ignore", "+bufsize=4096")
    flags = re.search(r";; flags: ([a-z ]*);", out)
    t.check(flags and "tc" not in flags.group(1).split(), "the big TXT answer was truncated",
            output=out)
    m = re.search(r"MSG SIZE\s+rcvd: (\d+)", out)
    t.check(m and int(m.group(1)) > 1000, "size of the big TXT answer", output=out[-300:])
    got = re.findall(r"big\.mgrok\.test\.\s+\d+\s+IN\s+TXT\s+(.*)", out)
    t.check_eq(got, [" ".join('"%s"' % s for s in BIG_TXT)], "the big TXT record")
    t.log("AAAA/TXT empty, NXDOMAIN, TXT and a %s-byte TXT answer: ok" % m.group(1))

    # Every dig (each from a source port of its own) was a visitor of its
    # own, and dnsmasq saw each query.
    log = srv.stderr_text()
    visitors = re.findall(r"proxy udp-%d stream \d+: visitor 127\.0\.0\.1:(\d+)" % dns_port, log)
    tunnelled = _dig_sources - {first_source}
    t.check_eq(sorted(int(v) for v in visitors), sorted(tunnelled),
               "visitors in mgrokd's log: the source ports of the digs through the tunnel")
    queries = re.findall(r"query\[A\] mgrok\.test from 127\.0\.0\.1", dm.stderr_text())
    t.check(len(queries) >= QUERIES + 1, "dnsmasq logged fewer A queries than were answered",
            queries=len(queries))
    for p in (srv, cl, dm):
        t.check(p.alive(), "%s died" % p.name)


t.run(main)
