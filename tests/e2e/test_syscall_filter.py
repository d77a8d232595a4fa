#!/usr/bin/env python3
"""The units' seccomp filter fits the programs: mgrokd and mgrok run under
`strace -f` through a whole session (start with a token_file, handshake,
tcp, udp and http traffic, both admin endpoints scraped (/metrics and the
sessions API, and the status command's request), SIGHUP, the client's SIGTERM, the server's
SIGTERM), and every system call either made is in the set the generated
unit's SystemCallFilter= lines allow, as `systemd-analyze syscall-filter`
expands the groups; every socket(2) family is in RestrictAddressFamilies=.
A container cannot run a unit, so this is the check that the filter would
not break them. strace and systemd-analyze are required (./bootstrap
installs strace and systemd)."""
import os
import re
import shutil
import signal
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mgroktest as t

TOKEN = "syscall-filter-token"
DOMAIN = "tunnel.test"
UNITS = {"mgrokd": "mgrokd.service", "mgrok": "mgrok.service"}


def syscall_groups(env):
    """{"@group": [members]} from systemd-analyze syscall-filter."""
    code, out, err = env.run_program(["systemd-analyze", "syscall-filter"])
    t.check_eq(code, 0, "systemd-analyze syscall-filter's exit code", stderr=err)
    groups, current = {}, None
    for line in out.splitlines():
        if line.startswith("@"):
            current = groups.setdefault(line.strip(), [])
        elif line.strip() and not line.strip().startswith("#") and current is not None:
            current.append(line.strip())
        elif not line.strip():
            current = None
    t.check("@system-service" in groups, "no @system-service in systemd-analyze's groups")
    return groups


def expand(groups, names, seen=None):
    seen = set() if seen is None else seen
    out = set()
    for n in names:
        if n.startswith("@"):
            if n in seen:
                continue
            seen.add(n)
            t.check(n in groups, "unknown syscall group %s" % n)
            out |= expand(groups, groups[n], seen)
        else:
            out.add(n)
    return out


def unit_filter(groups, unit):
    """The system calls and address families a generated unit allows."""
    text = open(os.path.join(t.BUILDDIR, "etc", unit)).read()
    allowed, deny_only = set(), True
    for value in re.findall(r"^SystemCallFilter=(.*)$", text, re.M):
        value = value.strip()
        if value.startswith("~"):
            allowed -= expand(groups, value[1:].split())
        else:
            deny_only = False
            allowed |= expand(groups, value.split())
    t.check(allowed and not deny_only, "%s has no SystemCallFilter= allow list" % unit)
    families = re.search(r"^RestrictAddressFamilies=(.*)$", text, re.M)
    t.check(families, "%s has no RestrictAddressFamilies=" % unit)
    return allowed, set(families.group(1).split())


CALL = re.compile(r"^\d+\s+(?:<\.\.\. ([a-z0-9_]+) resumed>|([a-z0-9_]+)\()")
SOCKET = re.compile(r"^\d+\s+socket\((AF_[A-Z0-9]+)")


def traced(path):
    calls, families = {}, set()
    with open(path, errors="replace") as f:
        for line in f:
            m = CALL.match(line)
            if m:
                name = m.group(1) or m.group(2)
                calls[name] = calls.get(name, 0) + 1
            m = SOCKET.match(line)
            if m:
                families.add(m.group(1))
    return calls, families


def traced_pid(proc):
    """The program strace (proc) runs: signals go to it, not to strace."""
    def child():
        try:
            with open("/proc/%d/task/%d/children" % (proc.pid, proc.pid)) as f:
                pids = f.read().split()
        except OSError:
            return None
        return int(pids[0]) if pids else None
    return t.wait_for(child, 10, "the program under %s's strace" % proc.name)


def http_service(conn):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            return
        data += chunk
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n")


def session(env):
    """mgrokd and mgrok under strace through everything they do; the traces."""
    token_file = env.write_file("token", TOKEN + "\n")
    os.chmod(token_file, 0o600)
    port = env.ports.take()
    allow = env.ports.take_range(3)
    http_port = env.ports.take()
    admin = {"mgrokd": env.ports.take(), "mgrok": env.ports.take()}
    sconf = t.write_json(env, "mgrokd.json", {
        "listen": "127.0.0.1:%d" % port, "allow_ports": ["%d-%d" % allow],
        "auth": {"method": "token", "token_file": token_file},
        "http": {"listen": "127.0.0.1:%d" % http_port, "domain": DOMAIN},
        "admin": {"listen": "127.0.0.1:%d" % admin["mgrokd"], "token_file": token_file}})
    straces = {p: os.path.join(env.dir, p + ".strace") for p in UNITS}
    # As under systemd: notifications (the notify socket is AF_UNIX).
    manager = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    manager.bind(os.path.join(env.dir, "notify.sock"))
    # LeakSanitizer cannot run under ptrace (the sanitizer build in CI):
    # without this it fails at exit, after the session this test is about.
    asan = os.environ.get("ASAN_OPTIONS", "")
    notify = {"NOTIFY_SOCKET": manager.getsockname(),
              "ASAN_OPTIONS": (asan + ":" if asan else "") + "detect_leaks=0"}
    srv = env.spawn("mgrokd", ["strace", "-f", "-qq", "-o", straces["mgrokd"], t.MGROKD,
                               "--plugin-dir", t.PLUGIN_DIR, "-c", sconf], t.Server, env=notify)
    srv.wait_ready()

    echo = env.echo_service()
    uecho = env.udp_echo_service()
    web = env.service(http_service, name="http")
    cconf = t.write_json(env, "mgrok.json", {
        "server": "127.0.0.1:%d" % port,
        "auth": {"method": "token", "token_file": token_file},
        "admin": {"listen": "127.0.0.1:%d" % admin["mgrok"]},
        "proxies": [
            {"name": "tcp", "type": "tcp", "local": "127.0.0.1:%d" % echo.port},
            {"name": "udp", "type": "udp", "local": "127.0.0.1:%d" % uecho.port},
            {"name": "web", "type": "http", "local": "127.0.0.1:%d" % web.port,
             "options": {"subdomain": "app"}}]})
    cl = env.spawn("mgrok", ["strace", "-f", "-qq", "-o", straces["mgrok"], t.MGROK,
                             "--plugin-dir", t.PLUGIN_DIR, "-c", cconf], t.Client, env=notify)
    lines = {scheme: p for scheme, _, p, _ in cl.wait_lines(3)}
    t.check_eq(sorted(lines), ["http", "tcp", "udp"], "the client's public addresses")

    for i in range(3):
        t.echo_check(lines["tcp"], b"tcp %d\n" % i)
        t.udp_echo_check(lines["udp"], b"udp %d\n" % i)
        got, rd = t.http_exchange(http_port, t.request_bytes("app.%s:%d" % (DOMAIN, http_port)))
        t.check(got and got.status == 200 and got.body == b"ok\n", "http through the tunnel",
                response=got and (got.status, got.body))
        rd.sock.close()
    big = t.payload(5, 2 << 20)
    t.check(t.roundtrip(lines["tcp"], big) == big, "2 MiB through the tcp proxy")
    for program, prog_conf in (("mgrokd", sconf), ("mgrok", cconf)):
        code, out, err = env.run_program([t.MGROKD if program == "mgrokd" else t.MGROK,
                                          "status", "-c", prog_conf])
        t.check(code == 0 and "tcp" in out, "%s status under strace" % program, code=code,
                stdout=out, stderr=err)
        for path in ("/metrics", "/api/v1/sessions"):
            code, out, err = env.run_program(
                    ["curl", "-sf", "-H", "Authorization: Bearer %s" % TOKEN,
                     "http://127.0.0.1:%d%s" % (admin[program], path)])
            t.check(code == 0 and out, "GET %s from %s under strace" % (path, program),
                    code=code, stderr=err)

    os.kill(traced_pid(srv), signal.SIGHUP)
    t.wait_log(srv, r"SIGHUP: reloading")
    t.echo_check(lines["tcp"], b"after the reload\n")
    # strace exits with its program's status.
    os.kill(traced_pid(cl), signal.SIGTERM)
    t.check_eq(cl.wait_exit(), 0, "mgrok's exit code after SIGTERM (under strace)")
    t.wait_log(srv, r"session \d+: closed")
    os.kill(traced_pid(srv), signal.SIGTERM)
    t.check_eq(srv.wait_exit(), 0, "mgrokd's exit code after SIGTERM (under strace)")
    manager.settimeout(0)
    got = []
    try:
        while True:
            got.append(manager.recv(4096))
    except BlockingIOError:
        pass
    manager.close()
    t.check(any(m.startswith(b"RELOADING=1") for m in got) and b"STOPPING=1" in got,
            "the notifications did not come (their system calls are not in the trace)",
            got=got)
    return straces


def main(env):
    for tool, package in (("strace", "strace"), ("systemd-analyze", "systemd")):
        t.check(shutil.which(tool), "%s is missing: install %s (./bootstrap does)" % (tool,
                                                                                       package))
    groups = syscall_groups(env)
    straces = session(env)
    for program, unit in sorted(UNITS.items()):
        with env.case(program):
            allowed, families = unit_filter(groups, unit)
            # The expansion itself: the basics in, what no service needs out.
            t.check({"read", "epoll_wait", "execve"} <= allowed and "ptrace" not in allowed,
                    "the filter of %s, as expanded here, is not believable" % unit)
            calls, used = traced(straces[program])
            t.check(calls.get("epoll_wait") or calls.get("epoll_pwait"),
                    "the trace of %s looks empty" % program, calls=sorted(calls))
            outside = sorted(c for c in calls if c not in allowed)
            t.check(not outside, "%s made system calls that %s's SystemCallFilter= refuses" %
                    (program, unit), calls=outside,
                    counts={c: calls[c] for c in outside})
            t.check(used <= families, "%s opened sockets of families %s does not allow" %
                    (program, unit), used=sorted(used), allowed=sorted(families))
            t.log("%s: %d distinct system calls, all in %s's filter; socket families %s" %
                  (program, len(calls), unit, ", ".join(sorted(used))))


t.run(main)
