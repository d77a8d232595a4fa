#!/usr/bin/env python3
"""make bench: mgrok against direct, a socat relay chain and `ssh -R`.

Everything runs on 127.0.0.1 (the cluster's nodes on 127.0.0.11 and .12) and
is started here: the services (iperf3 -s, nginx, dnsmasq, an echo service),
the paths (socat relays, a private sshd and ssh -R, mgrokd and mgrok,
plaintext and TLS, two mgrokd nodes and a redis-server) and the load tools
(iperf3, wrk, dnsperf). Each measurement is bounded in time, every wait has
a timeout, and whatever happens, exactly the processes this script started
(and their children) are stopped at the end. Nothing is installed at run
time: a missing tool is reported ("run ./bootstrap") and its scenarios show
"n/a".

Paths ("a public address that reaches a local service"):
  direct     the service itself
  relay      two chained bare relays of our own (barerelay.c: blocking
             read/write, a thread per direction, no protocol); TCP only; the
             ceiling of any tunnel with two relays on this machine
  socat      two chained socat relays (TCP nodelay; UDP-LISTEN/UDP for UDP)
  ssh        ssh -R through a private sshd on loopback (aes128-gcm); no UDP
  mgrok      mgrokd + mgrok, plaintext
  mgrok-tls  mgrokd + mgrok with TLS (a certificate from mgrokd --gen-cert)
  mgrok-metrics         mgrok with the admin endpoints scraped every second
  mgrok-cluster-direct  a cluster of two mgrokd nodes (127.0.0.11 and .12, a
             redis-server of our own on a unix socket); mgrok on node a, the
             tools at node a's public port
  mgrok-cluster-relay   the same, the tools at node b's public port: node b
             relays to node a over their node-to-node session
The last three run only when asked for (--path).

Scenarios: iperf3, http, http-close, dns, idle, footprint, fairness, latency,
vhost, cluster-load (see SCENARIOS below). Usage:

  bench.py --build-dir BUILD [--scenario a,b] [--path x,y] [--duration S]
           [--json FILE] [--quick] [--conns N] [--keep]

Python 3 standard library only; the delay relay, the bare relay and the bulk
sender of the vhost scenario are small C programs (delayrelay.c, barerelay.c,
bulkpipe.c) compiled here with cc into BUILD/tests/bench/. The vhost
scenario counts syscalls with perf(1) where it is installed.
"""

import argparse
import datetime
import errno
import json
import os
import platform
import re
import resource
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRCDIR = os.path.normpath(os.path.join(HERE, "..", ".."))
NOFILE = 30000  # for this script and the programs that hold 10,000 connections
TOKEN = "bench-token-0123456789"
DNS_NAME = "mgrok.test"
DNS_ADDR = "10.9.8.7"
WEB_FILE = "1k.html"
VHOST_DOMAIN = "bench.test"  # the server's domain in the vhost scenario
BULK_OMIT_MS = 1000  # bulkpipe leaves out the first second, like iperf3 -O 1
# 256 KiB a round trip of 40 ms, times four (the latency target).
FIXED_WINDOW_MBIT = 256 * 1024 * 8 / 0.040 / 1e6

PATHS = ["direct", "relay", "socat", "ssh", "mgrok", "mgrok-tls", "mgrok-metrics",
         "mgrok-cluster-direct", "mgrok-cluster-relay"]
CLUSTER_PATHS = ("mgrok-cluster-direct", "mgrok-cluster-relay")
MGROK_PATHS = ("mgrok", "mgrok-tls", "mgrok-metrics") + CLUSTER_PATHS
# Run only when asked for (--path): the cost of the admin endpoint, and the
# cluster (its own redis-server and two nodes; a question of its own).
OPTIONAL_PATHS = ("mgrok-metrics",) + CLUSTER_PATHS
# The cluster's nodes, each on its own loopback address with the same ports
# (like tests/e2e/test_cluster_claims.py); the client's session is on a.
CLUSTER_NODES = (("a", "127.0.0.11"), ("b", "127.0.0.12"))
CLUSTER_SECRET = "bench-cluster-secret"
CLUSTER_LEASE = 6  # mgrokd's default: claims refreshed every 2 s
# cluster-load: tunnels registered on node a, each count in turn (added to
# those before), by clients of at most CLUSTER_LOAD_PER_CLIENT proxies; Redis
# and the nodes are sampled for CLUSTER_LOAD_SAMPLE seconds at each count.
CLUSTER_LOAD_TUNNELS = (0, 100, 500)
CLUSTER_LOAD_PER_CLIENT = 100
CLUSTER_LOAD_SAMPLE = 10


def log(*a):
    print("[%s]" % time.strftime("%H:%M:%S"), *a, flush=True)


class BenchError(Exception):
    pass


class NotApplicable(Exception):
    pass


# ---- processes ----------------------------------------------------------------


def raise_nofile(limit=NOFILE):
    """Raises RLIMIT_NOFILE to limit (root may raise the hard limit too)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, max(limit, hard) if hard != resource.RLIM_INFINITY else hard))
    except (ValueError, OSError):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass


def children_of():
    """pid -> list of child pids, from /proc."""
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(d))
    return kids


def descendants(pid):
    kids = children_of()
    out, stack = [], [pid]
    while stack:
        p = stack.pop()
        for c in kids.get(p, []):
            out.append(c)
            stack.append(c)
    return out


def rss_kib(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def fd_count(pid):
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return None


class Proc:
    """A program started in its own process group, logs in the work dir."""

    seq = 0

    def __init__(self, bench, name, argv, env=None, nofile=False):
        Proc.seq += 1
        self.bench = bench
        self.name = name
        self.argv = [str(a) for a in argv]
        base = os.path.join(bench.work, "%03d-%s" % (Proc.seq, name))
        self.out_path, self.err_path = base + ".out", base + ".err"
        full_env = dict(os.environ)
        if env:
            full_env.update(env)
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.popen = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=full_env,
                start_new_session=True, preexec_fn=raise_nofile if nofile else None)
        self.pid = self.popen.pid
        bench.procs.append(self)
        if bench.args.verbose:
            log("start %s (pid %d): %s" % (name, self.pid, " ".join(self.argv)))

    def alive(self):
        return self.popen.poll() is None

    def text(self, which="err"):
        try:
            with open(self.err_path if which == "err" else self.out_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def tail(self, n=15):
        lines = (self.text("out") + self.text("err")).splitlines()
        return "\n".join("    %s: %s" % (self.name, l) for l in lines[-n:])

    def check_alive(self):
        if not self.alive():
            raise BenchError("%s exited with code %s\n%s" % (self.name, self.popen.returncode,
                                                             self.tail()))

    def tree_rss_kib(self):
        """RSS of the process and its descendants (sshd's session children)."""
        total = 0
        for p in [self.pid] + descendants(self.pid):
            total += rss_kib(p) or 0
        return total

    def stop(self, timeout=5.0):
        if self in self.bench.procs:
            self.bench.procs.remove(self)
        # Children that left the group (sshd's per-connection processes call
        # setsid) are found through /proc before the parent goes away.
        strays = descendants(self.pid) if self.alive() else []
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if not self.alive():
                break
            try:
                os.killpg(self.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        # Children may outlive the leader (socat's forked relays finishing a
        # connection): those it had when we began stopping it go too.
        for sig in (signal.SIGTERM, signal.SIGKILL):
            left = [p for p in strays if os.path.exists("/proc/%d" % p)]
            for p in left:
                try:
                    os.kill(p, sig)
                except (ProcessLookupError, PermissionError):
                    pass
            end = time.monotonic() + 2
            while left and time.monotonic() < end:
                time.sleep(0.05)
                left = [p for p in left if os.path.exists("/proc/%d" % p)]
            if not left:
                break


def run_tool(bench, argv, timeout, env=None):
    """Runs a load tool to completion (bounded); returns (code, stdout, stderr)."""
    argv = [str(a) for a in argv]
    if bench.args.verbose:
        log("run: %s" % " ".join(argv))
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=full_env, start_new_session=True)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        raise BenchError("%s did not finish within %ds" % (os.path.basename(argv[0]), timeout))
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    return p.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


def wait_for(cond, timeout, what, interval=0.05):
    end = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > end:
            raise BenchError("timed out after %gs waiting for %s" % (timeout, what))
        time.sleep(interval)


# ---- ports ----------------------------------------------------------------------


def _proc_net_ports(kind, state):
    ports = set()
    for fn in ("/proc/net/%s" % kind, "/proc/net/%s6" % kind):
        try:
            with open(fn) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    if parts[3] == state:
                        ports.add(int(parts[1].rsplit(":", 1)[1], 16))
        except OSError:
            pass
    return ports


def tcp_listening(port):
    return port in _proc_net_ports("tcp", "0A")


def udp_bound(port):
    return port in _proc_net_ports("udp", "07")


def _proc_net_addrs(kind, state):
    """(IPv4 address, port) of the sockets in state: the cluster's nodes
    bind the same ports, each on its own address."""
    found = set()
    try:
        with open("/proc/net/%s" % kind) as f:
            next(f)
            for line in f:
                parts = line.split()
                if parts[3] == state:
                    addr, port = parts[1].split(":")
                    # The kernel prints the address as a u32 in host order.
                    found.add((socket.inet_ntoa(struct.pack("=I", int(addr, 16))), int(port, 16)))
    except OSError:
        pass
    return found


def tcp_listening_on(host, ports):
    """Whether all of ports listen on host (one look at /proc/net/tcp)."""
    have = _proc_net_addrs("tcp", "0A")
    return all((host, p) in have for p in ports)


def udp_bound_on(host, ports):
    have = _proc_net_addrs("udp", "07")
    return all((host, p) in have for p in ports)


def port_free(port):
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        s = socket.socket(socket.AF_INET, kind)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        finally:
            s.close()
    return True


class Ports:
    """Free ports outside the kernel's ephemeral range (above it where there
    is room, away from make check's area below it), handed out once each."""

    def __init__(self):
        lo, hi = 32768, 60999
        try:
            with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
                lo, hi = (int(x) for x in f.read().split())
        except (OSError, ValueError):
            pass
        if 65535 - hi >= 1000:
            self.lo, self.hi = hi + 1, 65535
        else:
            self.lo, self.hi = 10000, lo - 1
        self.next = self.lo + (os.getpid() * 37) % max(1, self.hi - self.lo - 500)

    def take(self, n=1):
        """n consecutive free ports; returns the first."""
        for _ in range(5000):
            if self.next + n > self.hi:
                self.next = self.lo
            start = self.next
            self.next += n
            if all(port_free(p) for p in range(start, start + n)):
                return start
        raise BenchError("no %d consecutive free ports" % n)


# ---- tools ------------------------------------------------------------------------

TOOLS = {
    "iperf3": ["iperf3"],
    "wrk": ["wrk"],
    "nginx": ["nginx", "/usr/sbin/nginx"],
    "dnsmasq": ["dnsmasq", "/usr/sbin/dnsmasq"],
    "dnsperf": ["dnsperf"],
    "socat": ["socat"],
    "sshd": ["/usr/sbin/sshd", "sshd"],
    "ssh": ["ssh"],
    "ssh-keygen": ["ssh-keygen"],
    "cc": [os.environ.get("CC", "cc").split()[0], "cc", "gcc"],
    "redis-server": ["redis-server"],
    "redis-cli": ["redis-cli"],
}
TOOL_PACKAGES = {"iperf3": "iperf3", "wrk": "wrk", "nginx": "nginx-light",
                 "dnsmasq": "dnsmasq-base", "dnsperf": "dnsperf", "socat": "socat",
                 "sshd": "openssh-server", "ssh": "openssh-client",
                 "ssh-keygen": "openssh-client", "cc": "gcc", "redis-server": "redis-server",
                 "redis-cli": "redis-tools"}


def find_tool(name):
    for c in TOOLS[name]:
        if os.path.isabs(c):
            if os.access(c, os.X_OK):
                return c
        else:
            w = shutil.which(c) or shutil.which(c, path="/usr/sbin:/sbin")
            if w:
                return w
    return None


# ---- services -----------------------------------------------------------------------


class Services:
    """The local services, started on first use and kept for the whole run."""

    def __init__(self, bench):
        self.bench = bench
        self.started = {}

    def get(self, name):
        if name not in self.started:
            self.started[name] = getattr(self, "_start_" + name)()
        return self.started[name]

    def _start_iperf3(self):
        b = self.bench
        port = b.ports.take()
        p = Proc(b, "iperf3-server", [b.tool("iperf3"), "-s", "-B", "127.0.0.1", "-p", port])
        wait_for(lambda: tcp_listening(port) or not p.alive(), 10, "iperf3 -s to listen")
        p.check_alive()
        return ("tcp", port)

    def _start_web(self):
        b = self.bench
        port = b.ports.take()
        d = os.path.join(b.work, "nginx")
        www = os.path.join(d, "www")
        os.makedirs(os.path.join(d, "tmp"), exist_ok=True)
        os.makedirs(www, exist_ok=True)
        with open(os.path.join(www, WEB_FILE), "wb") as f:
            f.write((b"mgrok bench " * 100)[:1023] + b"\n")
        # nginx's workers may run as another user (nobody when started as root).
        for x in (b.work, d, www, os.path.join(www, WEB_FILE)):
            os.chmod(x, 0o755)
        conf = os.path.join(d, "nginx.conf")
        tmp = os.path.join(d, "tmp")
        with open(conf, "w") as f:
            f.write("""worker_processes 1;
worker_rlimit_nofile %(nofile)d;
error_log %(d)s/error.log warn;
pid %(d)s/nginx.pid;
events { worker_connections 20000; }
http {
    access_log off;
    sendfile on;
    tcp_nodelay on;
    keepalive_requests 1000000;
    keepalive_timeout 60;
    client_body_temp_path %(tmp)s/body;
    proxy_temp_path %(tmp)s/proxy;
    fastcgi_temp_path %(tmp)s/fastcgi;
    uwsgi_temp_path %(tmp)s/uwsgi;
    scgi_temp_path %(tmp)s/scgi;
    server {
        listen 127.0.0.1:%(port)d backlog=4096;
        root %(www)s;
        location / { }
    }
}
""" % {"d": d, "tmp": tmp, "port": port, "www": www, "nofile": NOFILE})
        p = Proc(b, "nginx", [b.tool("nginx"), "-c", conf, "-p", d, "-e", os.path.join(d, "error.log"),
                              "-g", "daemon off;"], nofile=True)
        wait_for(lambda: tcp_listening(port) or not p.alive(), 10, "nginx to listen")
        if not p.alive():
            try:
                with open(os.path.join(d, "error.log")) as f:
                    raise BenchError("nginx exited: %s" % f.read()[-600:])
            except OSError:
                p.check_alive()
        return ("tcp", port)

    def _start_dns(self):
        b = self.bench
        port = b.ports.take()
        p = Proc(b, "dnsmasq", [
            b.tool("dnsmasq"), "--no-daemon", "--log-facility=-", "--conf-file=/dev/null",
            "--no-resolv", "--no-hosts", "--no-poll", "--port=%d" % port,
            "--listen-address=127.0.0.1", "--bind-interfaces",
            "--pid-file=%s" % os.path.join(b.work, "dnsmasq.pid"),
            "--address=/%s/%s" % (DNS_NAME, DNS_ADDR), "--local=/%s/" % DNS_NAME])
        wait_for(lambda: "started, version" in p.text() or not p.alive(), 10, "dnsmasq to start")
        p.check_alive()
        return ("udp", port)

    def _start_echo(self):
        b = self.bench
        port = b.ports.take()
        p = Proc(b, "echo", [sys.executable, os.path.abspath(__file__), "--echo-server", port],
                 nofile=True)
        wait_for(lambda: tcp_listening(port) or not p.alive(), 10, "the echo service to listen")
        p.check_alive()
        b.echo_proc = p
        return ("tcp", port)

    def _start_bulk(self):
        """bulkpipe serve: counts what a visitor sends, or streams to it."""
        b = self.bench
        port = b.ports.take()
        p = Proc(b, "bulkpipe-serve", [b.helper("bulkpipe", ["-pthread"]), "serve", port, BULK_OMIT_MS])
        wait_for(lambda: tcp_listening(port) or not p.alive(), 10, "bulkpipe to listen")
        p.check_alive()
        b.bulk_proc = p
        return ("tcp", port)


def echo_server(port):
    """A selectors-style echo service for the idle-connections scenario."""
    raise_nofile()
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port))
    ls.listen(4096)
    ls.setblocking(False)
    ep = select.epoll()
    ep.register(ls.fileno(), select.EPOLLIN)
    conns = {}
    while True:
        for fd, ev in ep.poll():
            if fd == ls.fileno():
                while True:
                    try:
                        c, _ = ls.accept()
                    except (BlockingIOError, InterruptedError):
                        break
                    except OSError:
                        break
                    c.setblocking(False)
                    conns[c.fileno()] = c
                    ep.register(c.fileno(), select.EPOLLIN)
                continue
            c = conns.get(fd)
            if c is None:
                continue
            try:
                data = c.recv(65536)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                data = b""
            if data:
                try:
                    c.sendall(data)  # a byte or two: never blocks in practice
                    continue
                except OSError:
                    pass
            ep.unregister(fd)
            del conns[fd]
            c.close()


# ---- paths -------------------------------------------------------------------------


class Tunnel:
    """What a path's open() returns: public ports by service name, the
    processes it started (stopped by close), and the daemons to measure."""

    def __init__(self, bench):
        self.bench = bench
        self.ports = {}
        self.addr = "127.0.0.1"  # where the tools connect (the cluster relay: node b)
        self.hosts = {}  # service name -> public host name (http and tls proxies)
        self.procs = []
        self.daemons = {}  # label -> Proc, for RSS and fd counts

    def start(self, *a, **kw):
        p = Proc(self.bench, *a, **kw)
        self.procs.append(p)
        return p

    def close(self):
        for p in reversed(self.procs):
            try:
                p.stop()
            except Exception as e:  # noqa: BLE001 - keep stopping the others
                log("stopping %s: %s" % (p.name, e))
        self.procs = []

    def check_alive(self):
        for p in self.procs:
            p.check_alive()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None and issubclass(exc_type, BenchError):
            for p in self.procs:
                t = p.tail(8)
                if t:
                    print(t, flush=True)
        self.close()


class Path:
    name = ""
    udp = True
    tools = ()

    def __init__(self, bench):
        self.bench = bench

    def delay_relay(self, tun, target_port, target_host="127.0.0.1"):
        """A delay relay in front of target_port (20 ms each way); its port."""
        b = self.bench
        port = b.ports.take()
        p = tun.start("delayrelay", [b.delayrelay(), port, "%s:%d" % (target_host, target_port), 20])
        wait_for(lambda: tcp_listening(port) or not p.alive(), 10, "the delay relay")
        p.check_alive()
        return port

    def open(self, services, delay=False, env=None):
        """services: {name: (proto, port)}, or (type, port, options) for
        mgrok's http and tls proxies. Returns a Tunnel (a context manager)."""
        tun = Tunnel(self.bench)
        try:
            self._open(tun, services, delay, env or {})
        except BaseException:
            tun.close()
            raise
        return tun


class DirectPath(Path):
    name = "direct"

    def _open(self, tun, services, delay, env):
        for n, (proto, port) in services.items():
            tun.ports[n] = self.delay_relay(tun, port) if delay and proto == "tcp" else port


class SocatPath(Path):
    name = "socat"
    tools = ("socat",)

    def _open(self, tun, services, delay, env):
        b = self.bench
        socat = b.tool("socat")
        for n, (proto, port) in services.items():
            second, first = b.ports.take(), b.ports.take()
            if proto == "tcp":
                tun.start("socat2", [socat, "TCP-LISTEN:%d,bind=127.0.0.1,fork,reuseaddr,nodelay,backlog=4096"
                                     % second, "TCP:127.0.0.1:%d,nodelay" % port])
                wait_for(lambda: tcp_listening(second), 10, "socat to listen")
                hop = self.delay_relay(tun, second) if delay else second
                tun.start("socat1", [socat, "TCP-LISTEN:%d,bind=127.0.0.1,fork,reuseaddr,nodelay,backlog=4096"
                                     % first, "TCP:127.0.0.1:%d,nodelay" % hop])
                wait_for(lambda: tcp_listening(first), 10, "socat to listen")
            else:
                tun.start("socat2", [socat, "UDP-LISTEN:%d,bind=127.0.0.1,fork,reuseaddr" % second,
                                     "UDP:127.0.0.1:%d" % port])
                wait_for(lambda: udp_bound(second), 10, "socat to bind")
                tun.start("socat1", [socat, "UDP-LISTEN:%d,bind=127.0.0.1,fork,reuseaddr" % first,
                                     "UDP:127.0.0.1:%d" % second])
                wait_for(lambda: udp_bound(first), 10, "socat to bind")
            tun.ports[n] = first
        tun.check_alive()


class BareRelayPath(Path):
    """Two chained barerelay processes (barerelay.c): blocking read/write, a
    thread per direction, no protocol. The bulk-throughput ceiling of a
    two-relay tunnel here, not a competitor: bulk (iperf3) scenarios only."""
    name = "relay"
    udp = False
    tools = ("cc",)

    def _open(self, tun, services, delay, env):
        b = self.bench
        if set(services) != {"iperf3"} or delay:
            raise NotApplicable("bulk reference only")
        exe = b.helper("barerelay", ["-pthread"])
        for n, (proto, port) in services.items():
            second, first = b.ports.take(), b.ports.take()
            tun.start("relay2", [exe, second, port])
            wait_for(lambda: tcp_listening(second), 10, "barerelay to listen")
            hop = self.delay_relay(tun, second) if delay else second
            tun.start("relay1", [exe, first, hop])
            wait_for(lambda: tcp_listening(first), 10, "barerelay to listen")
            tun.ports[n] = first
        tun.check_alive()


class SshPath(Path):
    name = "ssh"
    udp = False
    tools = ("sshd", "ssh", "ssh-keygen")

    def keys(self):
        b = self.bench
        d = os.path.join(b.work, "ssh")
        if not os.path.isdir(d):
            os.makedirs(d, mode=0o700)
            for k in ("host", "user"):
                code, out, err = run_tool(b, [b.tool("ssh-keygen"), "-q", "-t", "ed25519", "-N", "",
                                              "-C", "mgrok-bench", "-f", os.path.join(d, k)], 30)
                if code:
                    raise BenchError("ssh-keygen failed: %s" % err)
            shutil.copy(os.path.join(d, "user.pub"), os.path.join(d, "authorized_keys"))
        return d

    def _open(self, tun, services, delay, env):
        b = self.bench
        if any(p == "udp" for p, _ in services.values()):
            raise NotApplicable("ssh -R has no UDP")
        d = self.keys()
        if os.geteuid() == 0 and not os.path.isdir("/run/sshd"):
            os.makedirs("/run/sshd", mode=0o755)  # sshd's privilege separation directory
        port = b.ports.take()
        conf = os.path.join(d, "sshd_config.%d" % port)
        with open(conf, "w") as f:
            f.write("""Port %(port)d
ListenAddress 127.0.0.1
HostKey %(d)s/host
PidFile %(d)s/sshd.%(port)d.pid
AuthorizedKeysFile %(d)s/authorized_keys
UsePAM no
StrictModes no
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
AllowTcpForwarding yes
GatewayPorts no
X11Forwarding no
PrintMotd no
UseDNS no
Ciphers aes128-gcm@openssh.com
MaxStartups 100
LogLevel ERROR
""" % {"port": port, "d": d})
        sshd = tun.start("sshd", [b.tool("sshd"), "-D", "-e", "-f", conf, "-p", port], nofile=True)
        wait_for(lambda: tcp_listening(port) or not sshd.alive(), 10, "sshd to listen")
        sshd.check_alive()
        hop = self.delay_relay(tun, port) if delay else port
        argv = [b.tool("ssh"), "-F", "/dev/null", "-N", "-T", "-p", hop, "-i", os.path.join(d, "user"),
                "-o", "Ciphers=aes128-gcm@openssh.com", "-o", "StrictHostKeyChecking=no",
                "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
                "-o", "IdentitiesOnly=yes", "-o", "ExitOnForwardFailure=yes",
                "-o", "LogLevel=ERROR", "-o", "Compression=no"]
        for n, (proto, sport) in services.items():
            pub = b.ports.take()
            argv += ["-R", "%d:127.0.0.1:%d" % (pub, sport)]
            tun.ports[n] = pub
        import pwd
        user = pwd.getpwuid(os.geteuid()).pw_name
        ssh = tun.start("ssh", argv + ["%s@127.0.0.1" % user], nofile=True)
        for n, pub in tun.ports.items():
            wait_for(lambda: tcp_listening(pub) or not ssh.alive(), 20, "ssh -R to bind %d" % pub)
            ssh.check_alive()
        tun.daemons = {"server": sshd, "client": ssh}


class MgrokPath(Path):
    name = "mgrok"
    tls = False
    host = "127.0.0.1"  # mgrokd's control port and public ports

    def cert(self):
        b = self.bench
        d = os.path.join(b.work, "cert")
        if not os.path.exists(os.path.join(d, "cert.pem")):
            os.makedirs(d, exist_ok=True)
            code, out, err = run_tool(b, [b.mgrokd, "--gen-cert", d, "--public-host", "127.0.0.1"], 30)
            if code:
                raise BenchError("mgrokd --gen-cert failed: %s" % err)
        return d

    def server_conf(self, ctl, allow):
        """mgrokd's configuration: control port ctl, public ports allow (lo, hi)."""
        return {
            "listen": "%s:%d" % (self.host, ctl),
            "auth": {"method": "token", "token": TOKEN},
            "allow_ports": ["%d-%d" % allow],
            "limits": {"max_proxies": 64, "max_streams": 20000, "max_pending": 256},
            "log": {"level": "warn"},
        }

    def start_server(self, tun, sconf, env, name="mgrokd"):
        """Starts mgrokd with sconf and waits for its control port; its Proc."""
        b = self.bench
        host, ctl = sconf["listen"].rsplit(":", 1)
        spath = os.path.join(b.work, "%s.%s.json" % (name, ctl))
        with open(spath, "w") as f:
            json.dump(sconf, f, indent=1)
        srv = tun.start(name, [b.mgrokd, "-c", spath, "--plugin-dir", b.plugin_dir],
                        env=env, nofile=True)
        wait_for(lambda: tcp_listening_on(host, [int(ctl)]) or not srv.alive(), 10,
                 "%s to listen" % name)
        srv.check_alive()
        return srv

    def _open(self, tun, services, delay, env):
        b = self.bench
        ctl = b.ports.take()
        # http and tls proxies share one listener per type, routed by name.
        named = {n: s for n, s in services.items() if len(s) == 3}
        ported = {n: s for n, s in services.items() if len(s) == 2}
        pub = b.ports.take(max(1, len(ported)))
        sconf = self.server_conf(ctl, (pub, pub + max(1, len(ported)) - 1))
        shared = {}
        for kind, section in (("http", "http"), ("tls", "tls_sni")):
            if any(s[0] == kind for s in named.values()):
                shared[kind] = b.ports.take()
                sconf[section] = {"listen": "%s:%d" % (self.host, shared[kind]), "domain": VHOST_DOMAIN}
        cconf = {
            "server": "%s:%d" % (self.host, ctl),
            "auth": {"method": "token", "token": TOKEN},
            "log": {"level": "warn"},
            "proxies": [],
        }
        if self.tls:
            d = self.cert()
            sconf["tls"] = {"cert": os.path.join(d, "cert.pem"), "key": os.path.join(d, "key.pem")}
            cconf["tls"] = {"ca": os.path.join(d, "cert.pem")}
        for i, (n, (proto, port)) in enumerate(sorted(ported.items())):
            cconf["proxies"].append({"name": n, "type": proto, "local": "127.0.0.1:%d" % port,
                                     "remote_port": pub + i})
            tun.ports[n] = pub + i
        for n, (kind, port, options) in sorted(named.items()):
            cconf["proxies"].append({"name": n, "type": kind, "local": "127.0.0.1:%d" % port,
                                     "options": options})
            tun.ports[n] = shared[kind]
            tun.hosts[n] = "%s.%s" % (options["subdomain"], VHOST_DOMAIN)
        admin = [b.ports.take(), b.ports.take()] if getattr(self, "admin", False) else []
        if admin:
            sconf["admin"] = {"listen": "127.0.0.1:%d" % admin[0]}
            cconf["admin"] = {"listen": "127.0.0.1:%d" % admin[1]}
        cpath = os.path.join(b.work, "mgrok.%d.json" % ctl)
        srv = self.start_server(tun, sconf, env)
        if delay:
            cconf["server"] = "127.0.0.1:%d" % self.delay_relay(tun, ctl, self.host)
        with open(cpath, "w") as f:
            json.dump(cconf, f, indent=1)
        cl = tun.start("mgrok", [b.mgrok, "-c", cpath, "--plugin-dir", b.plugin_dir],
                       env=env, nofile=True)
        want = len(services)
        wait_for(lambda: len(re.findall(r"^\w+://", cl.text("out"), re.M)) >= want or not cl.alive()
                 or not srv.alive(), 20, "mgrok to register %d proxies" % want)
        tun.check_alive()
        if admin:
            self.scrape(tun, env, admin)
        tun.daemons.update({"server": srv, "client": cl})


class MgrokTlsPath(MgrokPath):
    name = "mgrok-tls"
    tls = True


class MgrokMetricsPath(MgrokPath):
    """mgrok with both admin endpoints on and scraped every second, ten
    times as often as Prometheus' default: what metrics cost."""
    name = "mgrok-metrics"
    admin = True

    def scrape(self, tun, env, ports):
        urls = ["http://127.0.0.1:%d%s" % (p, path) for p in ports
                for path in ("/metrics", "/api/v1/sessions")]
        code = ("import sys, time, urllib.request\n"
                "for _ in range(7200):\n"
                "    for u in sys.argv[1:]:\n"
                "        urllib.request.urlopen(u, timeout=5).read()\n"
                "    time.sleep(1)\n")
        tun.start("scraper", [sys.executable, "-c", code] + urls, env=env)


def redis_cli(b, sock, *args):
    """One command's answer as text (--raw), or None when it failed."""
    code, out, err = run_tool(b, [b.tool("redis-cli"), "-s", sock, "--raw"] + list(args), 10)
    return out.rstrip("\n") if code == 0 else None


class MgrokClusterPath(MgrokPath):
    """Two mgrokd nodes sharing a redis-server of their own; mgrok on node a.
    The tools go to node a (the tunnel's own node) here, and to node b (a
    relay to node a over the node-to-node session) in the relay path: the
    difference is what a visitor pays for reaching the other node."""
    name = "mgrok-cluster-direct"
    tools = ("redis-server", "redis-cli")
    host = CLUSTER_NODES[0][1]  # the client's node
    target = CLUSTER_NODES[0][1]  # where the tools connect

    def start_server(self, tun, sconf, env, name="mgrokd"):
        """redis-server, then every node with sconf at its own address (the
        same ports) and a "cluster" section; node a's Proc, the first."""
        b = self.bench
        ctl = int(sconf["listen"].rsplit(":", 1)[1])
        sock = os.path.join(b.work, "redis.%d.sock" % ctl)
        # Its own, per tunnel: an empty registry each time, so that no claim
        # or node of an earlier tunnel (alive for a lease) is in the way.
        redis = tun.start("redis", [b.tool("redis-server"), "--port", "0", "--unixsocket", sock,
                                    "--save", "", "--appendonly", "no", "--dir", b.work,
                                    "--loglevel", "warning"])
        wait_for(lambda: not redis.alive() or (os.path.exists(sock) and redis_cli(b, sock, "PING") == "PONG"),
                 10, "redis-server to answer", interval=0.1)
        redis.check_alive()
        tun.redis_sock = sock
        tun.daemons["redis"] = redis
        nodes = []
        for node, host in CLUSTER_NODES:
            conf = json.loads(json.dumps(sconf))  # a copy for each node
            conf["listen"] = "%s:%d" % (host, ctl)
            for section in ("http", "tls_sni"):
                if section in conf:  # each node's own listener, the same port
                    conf[section]["listen"] = "%s:%s" % (host, conf[section]["listen"].rsplit(":", 1)[1])
            conf["cluster"] = {"redis": "unix:" + sock, "node": node, "lease": CLUSTER_LEASE,
                               "secret": CLUSTER_SECRET, "address": "%s:%d" % (host, ctl)}
            p = MgrokPath.start_server(self, tun, conf, env, name="mgrokd-" + node)
            tun.daemons["node-" + node] = p
            nodes.append(p)
        return nodes[0]

    def _open(self, tun, services, delay, env):
        MgrokPath._open(self, tun, services, delay, env)
        # Node b binds node a's ports once node a has registered them there,
        # in the background after the client's REGISTER: both paths wait for
        # it, so that they measure the same cluster at rest. (An http or tls
        # proxy's name is not seen from here; vhost runs on mgrok only.)
        relay = CLUSTER_NODES[1][1]
        tcp = [tun.ports[n] for n, s in services.items() if len(s) == 2 and s[0] == "tcp"]
        udp = [tun.ports[n] for n, s in services.items() if len(s) == 2 and s[0] == "udp"]
        wait_for(lambda: (tcp_listening_on(relay, tcp) and udp_bound_on(relay, udp))
                 or not all(p.alive() for p in tun.procs), 20,
                 "node b to bind the relayed ports", interval=0.1)
        tun.check_alive()
        tun.addr = self.target


class MgrokClusterRelayPath(MgrokClusterPath):
    name = "mgrok-cluster-relay"
    target = CLUSTER_NODES[1][1]


PATH_CLASSES = {c.name: c for c in (DirectPath, BareRelayPath, SocatPath, SshPath, MgrokPath,
                                     MgrokTlsPath, MgrokMetricsPath, MgrokClusterPath,
                                     MgrokClusterRelayPath)}


# ---- parsing --------------------------------------------------------------------------


def parse_iperf3(out):
    try:
        j = json.loads(out)
    except ValueError:
        raise BenchError("iperf3 printed no JSON: %s" % out[-300:])
    if j.get("error"):
        raise BenchError("iperf3: %s" % j["error"])
    return j["end"]["sum_received"]["bits_per_second"]


def _ms(num, unit):
    return float(num) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def parse_wrk(out):
    r = {}
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not m:
        raise BenchError("wrk printed no Requests/sec: %s" % out[-400:])
    r["rps"] = float(m.group(1))
    for pct in ("50", "99"):
        m = re.search(r"^\s+%s(?:\.000)?%%\s+([\d.]+)(us|ms|s|m)\s*$" % pct, out, re.M)
        r["p" + pct] = _ms(*m.groups()) if m else None
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    r["errors"] = sum(int(x) for x in m.groups()) if m else 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    r["non2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"(\d+) requests in", out)
    r["requests"] = int(m.group(1)) if m else None
    return r


def parse_dnsperf(out):
    r = {}
    for key, pat in (("sent", r"Queries sent:\s+(\d+)"), ("completed", r"Queries completed:\s+(\d+)"),
                     ("lost", r"Queries lost:\s+(\d+)"), ("qps", r"Queries per second:\s+([\d.]+)")):
        m = re.search(pat, out)
        if not m:
            raise BenchError("dnsperf printed no '%s': %s" % (key, out[-400:]))
        r[key] = float(m.group(1))
    return r


# ---- the bench ------------------------------------------------------------------------


class Bench:
    def __init__(self, args):
        self.args = args
        self.build = os.path.abspath(args.build_dir)
        self.mgrokd = os.path.join(self.build, "core", "mgrokd")
        self.mgrok = os.path.join(self.build, "core", "mgrok")
        self.plugin_dir = os.environ.get("MGROK_PLUGIN_DIR") or os.path.join(self.build, "plugins", ".libs")
        self.work = tempfile.mkdtemp(prefix="mgrok-bench-")
        self.snapshot_programs()
        self.procs = []
        self.ports = Ports()
        self.services = Services(self)
        self.results = {}  # key -> {path: value}
        self.notes = {}  # key -> {path: "n/a ..."}
        self.missing = {}
        self._helpers = {}
        self.echo_proc = None
        self.bulk_proc = None
        self._hellos = {}
        self.duration = args.duration
        self.paths = {n: PATH_CLASSES[n](self) for n in args.paths}

    def snapshot_programs(self):
        """Copies the programs and plugins into the work directory, so that a
        rebuild during the run cannot change them under the measurements."""
        if not (os.access(self.mgrokd, os.X_OK) and os.access(self.mgrok, os.X_OK)):
            return
        bindir = os.path.join(self.work, "bin")
        plugdir = os.path.join(self.work, "plugins")
        os.makedirs(bindir)
        os.makedirs(plugdir)
        for f in (self.mgrokd, self.mgrok):
            shutil.copy2(f, bindir)
        for so in os.listdir(self.plugin_dir):
            if so.endswith(".so") and os.path.isfile(os.path.join(self.plugin_dir, so)):
                shutil.copy2(os.path.join(self.plugin_dir, so), plugdir)
        self.mgrokd = os.path.join(bindir, "mgrokd")
        self.mgrok = os.path.join(bindir, "mgrok")
        self.plugin_dir = plugdir

    def tool(self, name):
        t = find_tool(name)
        if not t:
            raise ToolMissing(name)
        return t

    def helper(self, name, flags=()):
        """The bench's own C helper tests/bench/NAME.c, compiled here with cc."""
        if name in self._helpers:
            return self._helpers[name]
        src = os.path.join(HERE, name + ".c")
        out_dir = os.path.join(self.build, "tests", "bench")
        os.makedirs(out_dir, exist_ok=True)
        exe = os.path.join(out_dir, name)
        if not os.path.exists(exe) or os.path.getmtime(exe) < os.path.getmtime(src):
            cc = os.environ.get("CC", "cc").split()
            if not find_tool("cc"):
                raise ToolMissing("cc")
            code, out, err = run_tool(self, cc + ["-O2", "-Wall", "-o", exe, src] + list(flags), 120)
            if code:
                raise BenchError("compiling %s.c failed:\n%s" % (name, err))
        self._helpers[name] = exe
        return exe

    def delayrelay(self):
        return self.helper("delayrelay")

    def client_hello(self, server_name):
        """A file holding a real TLS ClientHello with SNI server_name, made by
        Python's ssl module in memory (no connection)."""
        if server_name not in self._hellos:
            import ssl
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            out = ssl.MemoryBIO()
            obj = ctx.wrap_bio(ssl.MemoryBIO(), out, server_hostname=server_name)
            try:
                obj.do_handshake()
            except ssl.SSLWantReadError:
                pass  # the ClientHello is out; the answer would come next
            hello = out.read()
            # bulkpipe's service reads one record: header, then its length.
            if len(hello) < 5 or hello[0] != 0x16 or len(hello) != 5 + (hello[3] << 8 | hello[4]):
                raise BenchError("the ClientHello is not one TLS record (%d bytes)" % len(hello))
            fn = os.path.join(self.work, "client-hello.%s.bin" % server_name)
            with open(fn, "wb") as f:
                f.write(hello)
            self._hellos[server_name] = fn
        return self._hellos[server_name]

    def record(self, key, path, value):
        self.results.setdefault(key, {})[path] = value

    def note(self, key, path, text):
        self.notes.setdefault(key, {})[path] = text

    def stop_all(self):
        for p in list(reversed(self.procs)):
            try:
                p.stop()
            except Exception as e:  # noqa: BLE001
                log("stopping %s: %s" % (p.name, e))


class ToolMissing(Exception):
    pass


# ---- scenarios -------------------------------------------------------------------------


def iperf3_run(b, port, extra, duration, env=None, addr="127.0.0.1"):
    argv = [b.tool("iperf3"), "-c", addr, "-p", port, "-t", duration, "-O", "1", "-J",
            "--connect-timeout", "5000"] + extra
    end = time.monotonic() + 15
    while True:
        code, out, err = run_tool(b, argv, duration + 30, env=env)
        if "server is busy" in out + err and time.monotonic() < end:
            time.sleep(0.5)  # the server is still finishing the previous test
            continue
        try:
            return parse_iperf3(out)
        except BenchError as e:
            raise BenchError("%s (exit %d) %s" % (e, code, err[-300:]))


def sc_iperf3(b, path):
    svc = {"iperf3": b.services.get("iperf3")}
    d = b.duration
    with path.open(svc) as tun:
        for key, extra in (("iperf3.single.up", []), ("iperf3.single.down", ["-R"]),
                           ("iperf3.p8.up", ["-P", "8"]), ("iperf3.p8.down", ["-R", "-P", "8"])):
            bps = iperf3_run(b, tun.ports["iperf3"], extra, d, addr=tun.addr)
            b.record(key, path.name, bps / 1e9)
            log("  %-10s %-20s %.2f Gbit/s" % (path.name, key, bps / 1e9))
            tun.check_alive()


def wrk_run(b, port, conns, duration, close=False, host=None, addr="127.0.0.1"):
    argv = [b.tool("wrk"), "-t", "2", "-c", conns, "-d", "%ds" % duration, "--latency",
            "--timeout", "5s"]
    if close:
        argv += ["-H", "Connection: close"]
    if host:
        argv += ["-H", "Host: %s" % host]
    argv.append("http://%s:%d/%s" % (addr, port, WEB_FILE))
    code, out, err = run_tool(b, argv, duration + 30)
    if code:
        raise BenchError("wrk exited %d: %s" % (code, (out + err)[-400:]))
    return parse_wrk(out)


def _http(b, path, close):
    svc = {"web": b.services.get("web")}
    base = "http.close" if close else "http.ka"
    with path.open(svc) as tun:
        for c in (10, 100):
            r = wrk_run(b, tun.ports["web"], c, b.duration, close=close, addr=tun.addr)
            k = "%s.c%d" % (base, c)
            b.record(k + ".rps", path.name, r["rps"])
            b.record(k + ".p50", path.name, r["p50"])
            b.record(k + ".p99", path.name, r["p99"])
            b.record(k + ".errors", path.name, r["errors"] + r["non2xx"])
            log("  %-10s %-16s %8.0f req/s  p50 %.2f ms  p99 %.2f ms  errors %d" % (
                path.name, k, r["rps"], r["p50"] or -1, r["p99"] or -1, r["errors"] + r["non2xx"]))
            tun.check_alive()


def sc_http(b, path):
    _http(b, path, close=False)


def sc_http_close(b, path):
    _http(b, path, close=True)


def sc_dns(b, path):
    if not path.udp:
        raise NotApplicable("no UDP")
    b.tool("dnsperf")
    svc = {"dns": b.services.get("dns")}
    qfile = os.path.join(b.work, "queries.txt")
    if not os.path.exists(qfile):
        with open(qfile, "w") as f:
            f.write("%s A\n" % DNS_NAME)
    with path.open(svc) as tun:
        code, out, err = run_tool(b, [b.tool("dnsperf"), "-s", tun.addr, "-p", tun.ports["dns"],
                                      "-d", qfile, "-l", b.duration, "-c", "10"], b.duration + 30)
        if code:
            raise BenchError("dnsperf exited %d: %s" % (code, (out + err)[-400:]))
        r = parse_dnsperf(out)
        b.record("dns.qps", path.name, r["qps"])
        b.record("dns.lost", path.name, r["lost"])
        b.record("dns.lost_pct", path.name, 100.0 * r["lost"] / max(1.0, r["sent"]))
        log("  %-10s dns %8.0f q/s  lost %d of %d" % (path.name, r["qps"], r["lost"], r["sent"]))
        tun.check_alive()


def _echo_round(socks, payload, timeout):
    """Sends payload on every socket and reads it back; returns how many echoed."""
    ep = select.epoll()
    pending = {}
    for s in socks:
        try:
            s.send(payload)
        except OSError:
            continue
        pending[s.fileno()] = (s, bytearray())
        ep.register(s.fileno(), select.EPOLLIN)
    ok = 0
    end = time.monotonic() + timeout
    while pending and time.monotonic() < end:
        for fd, ev in ep.poll(0.2):
            s, got = pending[fd]
            try:
                data = s.recv(64)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                data = b""
            got += data
            if not data or len(got) >= len(payload):
                if bytes(got) == payload:
                    ok += 1
                ep.unregister(fd)
                del pending[fd]
    ep.close()
    return ok


def _connect_batch(port, n, timeout, addr="127.0.0.1"):
    """n non-blocking connects to addr:port; returns the connected sockets."""
    socks = []
    ep = select.epoll()
    waiting = {}
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        e = s.connect_ex((addr, port))
        if e not in (0, errno.EINPROGRESS):
            s.close()
            continue
        waiting[s.fileno()] = s
        ep.register(s.fileno(), select.EPOLLOUT)
    end = time.monotonic() + timeout
    while waiting and time.monotonic() < end:
        for fd, ev in ep.poll(0.2):
            s = waiting.pop(fd)
            ep.unregister(fd)
            if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                socks.append(s)
            else:
                s.close()
    for s in waiting.values():
        s.close()
    ep.close()
    return socks


def sc_idle(b, path):
    if path.name not in MGROK_PATHS:
        raise NotApplicable("mgrok paths only")
    n = b.args.conns
    svc = {"echo": b.services.get("echo")}
    socks = []
    with path.open(svc) as tun:
        srv, cl = tun.daemons["server"], tun.daemons["client"]
        port = tun.ports["echo"]
        # Warm up (first-use allocations), then the baseline.
        warm = _connect_batch(port, 50, 10, tun.addr)
        _echo_round(warm, b"w", 10)
        for s in warm:
            s.close()
        time.sleep(1.0)
        base_fd = {"server": fd_count(srv.pid), "client": fd_count(cl.pid)}
        wait_for(lambda: fd_count(srv.pid) <= base_fd["server"] and fd_count(cl.pid) <= base_fd["client"],
                 10, "fds to settle after the warm-up", interval=0.2)
        base_fd = {"server": fd_count(srv.pid), "client": fd_count(cl.pid)}
        base_rss = {"server": rss_kib(srv.pid), "client": rss_kib(cl.pid)}
        t0 = time.monotonic()
        opened = 0
        echoed = 0
        try:
            while len(socks) < n:
                batch = _connect_batch(port, min(500, n - len(socks)), 20, tun.addr)
                opened += len(batch)
                echoed += _echo_round(batch, b"a", 10)
                socks += batch
                if not batch:
                    break
            log("  %-10s idle: %d connections open, %d echoed (%.1fs)" % (
                path.name, opened, echoed, time.monotonic() - t0))
            time.sleep(1.0)
            tun.check_alive()
            rss = {"server": rss_kib(srv.pid), "client": rss_kib(cl.pid)}
            fds = {"server": fd_count(srv.pid), "client": fd_count(cl.pid)}
            again = _echo_round(socks, b"b", 30)
            log("  %-10s idle: %d of %d still echo; RSS mgrokd %d -> %d KiB, mgrok %d -> %d KiB" % (
                path.name, again, len(socks), base_rss["server"], rss["server"],
                base_rss["client"], rss["client"]))
        finally:
            for s in socks:
                s.close()
        per = {k: (rss[k] - base_rss[k]) * 1024.0 / max(1, n) for k in rss}
        back = True
        try:
            wait_for(lambda: fd_count(srv.pid) <= base_fd["server"] and fd_count(cl.pid) <= base_fd["client"],
                     20, "fds back to baseline", interval=0.2)
        except BenchError:
            back = False
        after_fds = {"server": fd_count(srv.pid), "client": fd_count(cl.pid)}
        log("  %-10s idle: fds mgrokd %d -> %d -> %d, mgrok %d -> %d -> %d" % (
            path.name, base_fd["server"], fds["server"], after_fds["server"],
            base_fd["client"], fds["client"], after_fds["client"]))
        b.record("idle.per_conn", path.name, per["server"] + per["client"])
        b.record("idle.per_conn.mgrokd", path.name, per["server"])
        b.record("idle.per_conn.mgrok", path.name, per["client"])
        b.record("idle.working", path.name, {"target": n, "opened": opened, "echoed": echoed,
                                             "echoed_after": again})
        b.record("idle.fds_back", path.name, {"back": back, "baseline": base_fd, "open": fds,
                                              "after": after_fds})
        b.record("idle.rss", path.name, {"before_kib": base_rss, "after_kib": rss})


def file_sizes(b):
    files = [("mgrokd", b.mgrokd), ("mgrok", b.mgrok)]
    try:
        for so in sorted(os.listdir(b.plugin_dir)):
            if so.endswith(".so"):
                files.append((so, os.path.join(b.plugin_dir, so)))
    except OSError:
        pass
    strip = shutil.which("strip")
    out = {}
    for name, fn in files:
        size = os.path.getsize(fn)
        stripped = None
        if strip:
            tmp = os.path.join(b.work, "stripped-" + name)
            if subprocess.call([strip, "-o", tmp, fn], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL) == 0:
                stripped = os.path.getsize(tmp)
                os.unlink(tmp)
        out[name] = {"bytes": size, "stripped": stripped}
    return out


def sc_footprint(b, path):
    if path.name == "direct":
        raise NotApplicable("no daemon")
    if path.name == "socat":
        raise NotApplicable("a process per connection")
    if path.name == "relay":
        raise NotApplicable("a reference, not a daemon")
    svc = {"web": b.services.get("web")}
    with path.open(svc) as tun:
        # One request through the session, then let it settle.
        code, out, err = run_tool(b, [b.tool("wrk"), "-t", "1", "-c", "1", "-d", "1s",
                                      "http://%s:%d/%s" % (tun.addr, tun.ports["web"], WEB_FILE)], 30)
        time.sleep(1.0)
        tun.check_alive()
        srv, cl = tun.daemons["server"], tun.daemons["client"]
        s_rss, c_rss = srv.tree_rss_kib(), cl.tree_rss_kib()
        b.record("footprint.rss.server", path.name, s_rss)
        b.record("footprint.rss.client", path.name, c_rss)
        log("  %-10s idle RSS: server %d KiB, client %d KiB" % (path.name, s_rss, c_rss))
    if path.name in MGROK_PATHS and "sizes" not in b.results:
        b.results["sizes"] = file_sizes(b)


def sc_fairness(b, path):
    svc = {"iperf3": b.services.get("iperf3"), "web": b.services.get("web")}
    d = b.duration
    with path.open(svc) as tun:
        bulk = Proc(b, "iperf3-bulk", [b.tool("iperf3"), "-c", tun.addr, "-p", tun.ports["iperf3"],
                                       "-t", d + 3, "-J", "--connect-timeout", "5000"])
        tun.procs.append(bulk)
        try:
            time.sleep(1.0)
            bulk.check_alive()
            r = wrk_run(b, tun.ports["web"], 10, d, addr=tun.addr)
            try:
                bulk.popen.wait(timeout=d + 30)
            except subprocess.TimeoutExpired:
                raise BenchError("the bulk iperf3 did not finish")
            bps = parse_iperf3(bulk.text("out"))
        finally:
            bulk.stop()
            tun.procs.remove(bulk)
        b.record("fairness.p99", path.name, r["p99"])
        b.record("fairness.p50", path.name, r["p50"])
        b.record("fairness.rps", path.name, r["rps"])
        b.record("fairness.bulk", path.name, bps / 1e9)
        log("  %-10s fairness: wrk %.0f req/s p99 %.2f ms beside %.2f Gbit/s bulk" % (
            path.name, r["rps"], r["p99"] or -1, bps / 1e9))


def sc_latency(b, path):
    if path.name in ("direct", "relay", "socat"):
        # The relay terminates TCP on both sides and buffers without limit, so
        # only a protocol with its own end-to-end window (ssh's channels,
        # mgrok's streams) sees the 40 ms; kernel TCP alone would not.
        raise NotApplicable("no end-to-end window for the delay relay to act on")
    svc = {"iperf3": b.services.get("iperf3")}
    d = b.duration
    runs = [("on", {})]
    if path.name in MGROK_PATHS:
        runs.append(("off", {"MGROK_NO_AUTOTUNE": "1"}))
    for label, env in runs:
        with path.open(svc, delay=True, env=env) as tun:
            # The delay is really there: a TCP connect through it takes a round trip.
            for key, extra in (("up", []), ("down", ["-R"])):
                bps = iperf3_run(b, tun.ports["iperf3"], extra, d, addr=tun.addr)
                b.record("latency.%s.%s" % (label, key), path.name, bps / 1e6)
                log("  %-10s rtt 40 ms, autotune %-3s %-4s %.1f Mbit/s" % (path.name, label, key, bps / 1e6))
            tun.check_alive()
    if path.name not in MGROK_PATHS:
        for key in ("up", "down"):
            b.note("latency.off.%s" % key, path.name, "n/a")


def cpu_times(pid):
    """(seconds on a CPU, all threads, from schedstat; user s; system s) of a
    process. schedstat counts nanoseconds; user and system are clock ticks."""
    run = 0
    for t in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/schedstat" % (pid, t)) as f:
                run += int(f.read().split()[0])
        except OSError:
            pass
    with open("/proc/%d/stat" % pid) as f:
        st = f.read()
    fields = st[st.rindex(")") + 2:].split()
    tck = float(os.sysconf("SC_CLK_TCK"))
    return run / 1e9, int(fields[11]) / tck, int(fields[12]) / tck


# Counted one by one; the rest of raw_syscalls:sys_enter is "other". (All 360
# syscalls:sys_enter_* would do, but perf then takes some 15 s to set up.)
SYSCALLS = ("read", "readv", "write", "writev", "recvfrom", "sendto", "recvmsg", "sendmsg",
            "epoll_wait", "epoll_pwait", "epoll_ctl", "accept4", "connect", "close", "shutdown",
            "setsockopt", "getsockopt", "fcntl", "ioctl")


def syscalls_during(b, procs, run):
    """Runs run() while perf stat counts the syscalls (tracepoints) of each of
    procs; returns run()'s result and, per process, a {syscall: count} of
    those it made."""
    perf = shutil.which("perf")
    if not perf:
        raise NotApplicable("perf missing (linux-perf)")
    events = ["raw_syscalls:sys_enter"] + ["syscalls:sys_enter_" + n for n in SYSCALLS
                                           if os.path.isdir("/sys/kernel/tracing/events/syscalls/sys_enter_" + n)]
    counters = [Proc(b, "perf-" + p.name, [perf, "stat", "-x", ",", "-e", ",".join(events), "-p", p.pid])
                for p in procs]
    try:
        time.sleep(0.5)  # perf opening its events
        for c in counters:
            if not c.alive():
                raise NotApplicable("perf stat: %s" % c.text().strip()[-200:])
        result = run()
        for c in counters:
            os.kill(c.pid, signal.SIGINT)  # perf stat prints its counts on SIGINT
        for c in counters:
            try:
                c.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                raise BenchError("perf stat did not stop")
    finally:
        for c in counters:
            c.stop()
    counts = []
    for c in counters:
        got, total = {}, None
        for line in c.text().splitlines():
            parts = line.split(",")
            if len(parts) < 3 or not parts[0].isdigit():
                continue
            if parts[2] == "raw_syscalls:sys_enter":
                total = int(parts[0])
            elif parts[2].startswith("syscalls:sys_enter_") and int(parts[0]):
                got[parts[2][len("syscalls:sys_enter_"):]] = int(parts[0])
        if not total:
            raise NotApplicable("perf stat counted nothing: %s" % c.text().strip()[-200:])
        if total > sum(got.values()):
            got["other"] = total - sum(got.values())
        counts.append(got)
    return result, counts


def bulk_run(b, port, direction, duration, hello):
    """One bulkpipe stream through port: Gbit/s received after the omitted
    first second, measured by the receiving side, and all bytes received."""
    exe = b.helper("bulkpipe", ["-pthread"])
    if direction == "up":
        srv = b.bulk_proc
        seen = len(srv.text("out").splitlines())
        code, out, err = run_tool(b, [exe, "up", port, duration + BULK_OMIT_MS / 1000.0, hello],
                                  duration + 30)
        if code:
            raise BenchError("bulkpipe up exited %d: %s" % (code, err[-300:]))
        line = wait_for(lambda: srv.text("out").splitlines()[seen:], 10, "bulkpipe's count")[0]
    else:
        code, out, err = run_tool(b, [exe, "down", port, duration, BULK_OMIT_MS, hello], duration + 30)
        if code:
            raise BenchError("bulkpipe down exited %d: %s" % (code, err[-300:]))
        line = out.strip()
    nbytes, ns, total = (int(x) for x in line.split())
    if ns <= 0:
        raise BenchError("bulkpipe measured nothing (%s)" % line)
    return nbytes * 8.0 / ns, total


def abba(kinds, fn):
    """fn(kind) for the two kinds in the order A B B A: {kind: [results]}."""
    out = {k: [] for k in kinds}
    for k in (kinds[0], kinds[1], kinds[1], kinds[0]):
        out[k].append(fn(k))
    return out


def sc_vhost(b, path):
    """The same nginx behind an http and a tcp proxy, the same bulkpipe
    service behind a tls and a tcp proxy, all of one mgrok session."""
    if path.name != "mgrok":
        raise NotApplicable("the plaintext mgrok path only")
    for so in ("http.so", "tls.so"):
        if not os.path.exists(os.path.join(b.plugin_dir, so)):
            raise NotApplicable("%s not built (configure without http-parser?)" % so)
    web, bulk = b.services.get("web"), b.services.get("bulk")
    svc = {"web-tcp": web, "web": ("http", web[1], {"subdomain": "web"}),
           "bulk-tcp": bulk, "bulk": ("tls", bulk[1], {"subdomain": "bulk"})}
    d = b.duration
    pn = path.name
    with path.open(svc) as tun:
        srv, cl = tun.daemons["server"], tun.daemons["client"]
        host = tun.hosts["web"]
        wport = {"http": tun.ports["web"], "tcp": tun.ports["web-tcp"]}
        runs = []  # every measurement, for the JSON

        # wrk sends the same Host on both (nginx ignores it). Each figure is
        # the mean of two runs in the order A B B A, so that a drift of the
        # machine's speed during the four runs weighs on both alike.
        def wrk_once(kind, c):
            before = {p.name: cpu_times(p.pid) for p in (srv, cl)}
            r = wrk_run(b, wport[kind], c, d, host=host)
            after = {p.name: cpu_times(p.pid) for p in (srv, cl)}
            tun.check_alive()
            if r["errors"] or r["non2xx"] or not r["requests"]:
                raise BenchError("wrk through the %s proxy: %d socket errors, %d non-2xx of %s"
                                 % (kind, r["errors"], r["non2xx"], r["requests"]))
            r["cpu"] = {name: [a - z for a, z in zip(after[name], before[name])] for name in after}
            runs.append(dict(r, what="wrk", proxy=kind, conns=c))
            log("  %-10s wrk -c %-3d through %-4s %8.0f req/s  p50 %.2f ms  p99 %.2f ms" % (
                pn, c, kind, r["rps"], r["p50"] or -1, r["p99"] or -1))
            return r

        for c in (10, 100):
            got = abba(("tcp", "http"), lambda kind: wrk_once(kind, c))
            for kind, rs in got.items():
                k = "vhost.%s.c%d" % (kind, c)
                for m in ("rps", "p50", "p99"):
                    b.record("%s.%s" % (k, m), pn, sum(r[m] or 0 for r in rs) / len(rs))
                n = sum(r["requests"] for r in rs)
                for name in (srv.name, cl.name):
                    # seconds on a CPU, user, system: per request, in µs
                    t = [sum(r["cpu"][name][i] for r in rs) / n * 1e6 for i in range(3)]
                    b.record("%s.cpu.%s" % (k, name), pn, t[0])
                    b.record("%s.user_time.%s" % (k, name), pn, t[1])
                    b.record("%s.sys_time.%s" % (k, name), pn, t[2])
            ratio = b.results["vhost.http.c%d.rps" % c][pn] / b.results["vhost.tcp.c%d.rps" % c][pn]
            b.record("vhost.c%d.ratio" % c, pn, ratio)
            log("  %-10s keep-alive -c %d: http / tcp = %.3f; CPU per request mgrokd %.1f / %.1f us, "
                "mgrok %.1f / %.1f us (tcp / http)" % (
                    pn, c, ratio, b.results["vhost.tcp.c%d.cpu.mgrokd" % c][pn],
                    b.results["vhost.http.c%d.cpu.mgrokd" % c][pn],
                    b.results["vhost.tcp.c%d.cpu.mgrok" % c][pn],
                    b.results["vhost.http.c%d.cpu.mgrok" % c][pn]))

        # The same bytes both ways: a ClientHello for bulk.bench.test, a mode
        # byte, then the stream; on the tcp proxy the hello is just data.
        hello = b.client_hello(tun.hosts["bulk"])
        bport = {"tls": tun.ports["bulk"], "tcp": tun.ports["bulk-tcp"]}

        def bulk_once(kind, direction):
            before = [cpu_times(p.pid)[0] for p in (srv, cl)]
            g, total = bulk_run(b, bport[kind], direction, d, hello)
            cpu = sum(cpu_times(p.pid)[0] for p in (srv, cl)) - sum(before)
            tun.check_alive()
            runs.append({"what": "bulk", "proxy": kind, "direction": direction, "gbps": g,
                         "bytes": total, "cpu_s": cpu})
            log("  %-10s bulk %-4s through %-3s %.2f Gbit/s" % (pn, direction, kind, g))
            return g, total, cpu

        for direction in ("up", "down"):
            got = abba(("tcp", "tls"), lambda kind: bulk_once(kind, direction))
            for kind, gs in got.items():
                b.record("vhost.bulk.%s.%s" % (direction, kind), pn, sum(g[0] for g in gs) / len(gs))
                # CPU seconds of mgrokd and mgrok together per GB moved: what
                # the proxy type costs, less shaken by a busy machine than a rate.
                b.record("vhost.bulk.%s.%s.cpu_per_gb" % (direction, kind), pn,
                         sum(g[2] for g in gs) / (sum(g[1] for g in gs) / 1e9))
            ratio = b.results["vhost.bulk.%s.tls" % direction][pn] / b.results["vhost.bulk.%s.tcp" % direction][pn]
            b.record("vhost.bulk.%s.ratio" % direction, pn, ratio)
            log("  %-10s bulk %s: tls / tcp = %.3f; CPU per GB (mgrokd + mgrok) %.3f s tcp, %.3f s tls" % (
                pn, direction, ratio, b.results["vhost.bulk.%s.tcp.cpu_per_gb" % direction][pn],
                b.results["vhost.bulk.%s.tls.cpu_per_gb" % direction][pn]))
        b.record("vhost.runs", pn, runs)

        # Syscalls per request, in runs of their own (perf's counting costs a
        # little), A B B A again: how many requests share one session read or
        # write, and so the count, changes with the load. CPU per request
        # comes from the runs above.
        try:
            detail = {"tcp": [], "http": []}

            def counted(kind):
                r, counts = syscalls_during(b, (srv, cl), lambda: wrk_run(b, wport[kind], 100, d, host=host))
                tun.check_alive()
                n = r["requests"]
                if not n or r["errors"] or r["non2xx"]:
                    raise BenchError("wrk through the %s proxy under perf: %d socket errors, %d non-2xx "
                                     "of %s" % (kind, r["errors"], r["non2xx"], n))
                detail[kind].append(dict(zip((srv.name, cl.name), counts), requests=n))
                for p, got in zip((srv, cl), counts):
                    top = sorted(got.items(), key=lambda kv: -kv[1])[:6]
                    log("  %-10s syscalls through %-4s %-6s %.2f per request (%s)" % (
                        pn, kind, p.name, sum(got.values()) / float(n),
                        ", ".join("%s %.2f" % (sc, v / float(n)) for sc, v in top)))

            abba(("tcp", "http"), counted)
            for kind, rs in detail.items():
                n = float(sum(r["requests"] for r in rs))
                for name in (srv.name, cl.name):
                    b.record("vhost.%s.sys_per_req.%s" % (kind, name), pn,
                             sum(sum(r[name].values()) for r in rs) / n)
                # System time per syscall: the kernel's share of the CPU time
                # per request of the -c 100 runs, over its syscalls.
                b.record("vhost.%s.us_per_syscall" % kind, pn,
                         b.results["vhost.%s.c100.sys_time.mgrokd" % kind][pn] /
                         b.results["vhost.%s.sys_per_req.mgrokd" % kind][pn])
            b.record("vhost.syscalls", pn, detail)
        except NotApplicable as e:
            for key in SYSCALL_KEYS:
                b.note(key, pn, "n/a (%s)" % str(e).splitlines()[0][:60])
            log("  %-10s syscall counts n/a: %s" % (pn, e))


def redis_counts(b, sock):
    """Redis's total_commands_processed and its calls by command (INFO)."""
    info = redis_cli(b, sock, "INFO", "all")
    if info is None:
        raise BenchError("redis-cli INFO failed")
    m = re.search(r"^total_commands_processed:(\d+)", info, re.M)
    if not m:
        raise BenchError("no total_commands_processed in INFO: %s" % info[-300:])
    calls = {c: int(n) for c, n in re.findall(r"^cmdstat_(\S+?):calls=(\d+)", info, re.M)}
    return int(m.group(1)), calls


def sc_cluster_load(b, path):
    """What the cluster costs at rest with many tunnels: T tcp proxies (port
    0) on node a, relayed from node b, and for each T the commands Redis
    processes per second (the claims' lease refreshes) and each node's RSS."""
    if path.name not in CLUSTER_PATHS:
        raise NotApplicable("cluster paths only")
    first = next(p for p in CLUSTER_PATHS if p in b.paths)
    if path.name != first:
        raise NotApplicable("measured once, on %s" % first)  # the same nodes either way
    echo = b.services.get("echo")
    pn = path.name
    most = max(CLUSTER_LOAD_TUNNELS)
    t_begin = time.monotonic()
    with Tunnel(b) as tun:
        ctl = b.ports.take()
        pub = b.ports.take(most + 10)  # room to spare for port 0's picks
        sconf = path.server_conf(ctl, (pub, pub + most + 9))
        sconf["limits"]["max_proxies"] = CLUSTER_LOAD_PER_CLIENT
        path.start_server(tun, sconf, {})
        sock = tun.redis_sock
        nodes = {n: tun.daemons["node-" + n] for n, _ in CLUSTER_NODES}
        relay = CLUSTER_NODES[1][1]
        ports = []  # the public ports granted so far, all clients
        for t in CLUSTER_LOAD_TUNNELS:
            # Added to those before, by clients of up to CLUSTER_LOAD_PER_CLIENT.
            while len(ports) < t:
                k = min(CLUSTER_LOAD_PER_CLIENT, t - len(ports))
                i = len(ports)
                cconf = {"server": "%s:%d" % (path.host, ctl),
                         "auth": {"method": "token", "token": TOKEN}, "log": {"level": "warn"},
                         "proxies": [{"name": "load%d" % (i + j), "type": "tcp",
                                      "local": "127.0.0.1:%d" % echo[1], "remote_port": 0}
                                     for j in range(k)]}
                cpath = os.path.join(b.work, "mgrok.load%d.json" % i)
                with open(cpath, "w") as f:
                    json.dump(cconf, f, indent=1)
                cl = tun.start("mgrok-load%d" % i, [b.mgrok, "-c", cpath, "--plugin-dir", b.plugin_dir],
                               nofile=True)

                def granted():
                    return [int(x) for x in re.findall(r"tcp://[^\s:]+:(\d+)", cl.text("out"))]
                wait_for(lambda: len(granted()) >= k or not cl.alive(), 30,
                         "mgrok to register %d proxies" % k, interval=0.1)
                tun.check_alive()
                ports += granted()[:k]
            # Then node b's relays (registered in the background), and a
            # second for the burst of registering to pass.
            t0 = time.monotonic()
            wait_for(lambda: tcp_listening_on(relay, ports) or not all(p.alive() for p in tun.procs),
                     30, "node b to bind %d relayed ports" % len(ports), interval=0.2)
            tun.check_alive()
            settle = time.monotonic() - t0
            time.sleep(1.0)
            n0, calls0 = redis_counts(b, sock)
            s0 = time.monotonic()
            time.sleep(CLUSTER_LOAD_SAMPLE)
            n1, calls1 = redis_counts(b, sock)
            secs = time.monotonic() - s0
            tun.check_alive()
            # The first INFO is counted in the second's total: left out. The
            # total counts the commands a script runs too (the claims' EVALs
            # run GET and PEXPIRE): the calls by command are kept beside it.
            cps = (n1 - n0 - 1) / secs
            per_cmd = {c: (v - calls0.get(c, 0)) / secs for c, v in calls1.items()
                       if v > calls0.get(c, 0) and c != "info"}
            rss = {n: rss_kib(p.pid) for n, p in nodes.items()}
            b.record("cluster.t%d.redis_cps" % t, pn, cps)
            b.record("cluster.t%d.redis_calls" % t, pn, per_cmd)
            for n, v in rss.items():
                b.record("cluster.t%d.rss.%s" % (t, n), pn, v)
            b.record("cluster.t%d.relays_after" % t, pn, settle)
            log("  %-10s %3d tunnels: Redis %.1f commands/s (%s); RSS %s; node b's relays %.1f s" % (
                pn, t, cps, ", ".join("%s %.1f" % kv for kv in sorted(per_cmd.items(), key=lambda kv: -kv[1])),
                ", ".join("node %s %d KiB" % (n, v or 0) for n, v in sorted(rss.items())), settle))
    log("  %-10s cluster-load: %.0f s" % (pn, time.monotonic() - t_begin))


def check_delay(b):
    """The relay's added round trip, measured once (reported in the JSON)."""
    b.tool("cc")
    port = b.ports.take()
    srv = socket.socket()
    srv.bind(("127.0.0.1", port))
    srv.listen(4)
    tun = Tunnel(b)
    try:
        rport = Path(b).delay_relay(tun, port)
        c = socket.create_connection(("127.0.0.1", rport), timeout=5)
        a, _ = srv.accept()
        a.settimeout(5)
        rtts = []
        for _ in range(5):
            t = time.monotonic()
            c.sendall(b"x")
            a.recv(1)
            a.sendall(b"y")
            c.recv(1)
            rtts.append((time.monotonic() - t) * 1000)
        c.close()
        a.close()
        return min(rtts)
    finally:
        srv.close()
        tun.close()


SCENARIOS = {
    "iperf3": (sc_iperf3, ("iperf3",)),
    "http": (sc_http, ("wrk", "nginx")),
    "http-close": (sc_http_close, ("wrk", "nginx")),
    "dns": (sc_dns, ("dnsperf", "dnsmasq")),
    "idle": (sc_idle, ()),
    "footprint": (sc_footprint, ("wrk", "nginx")),
    "fairness": (sc_fairness, ("iperf3", "wrk", "nginx")),
    "latency": (sc_latency, ("iperf3", "cc")),
    "vhost": (sc_vhost, ("wrk", "nginx", "cc")),
    "cluster-load": (sc_cluster_load, ()),
}

# ---- the table --------------------------------------------------------------------------

# key, label, unit, format, ratio to direct?, target (text, predicate on (value, ratio, results))
ROWS = [
    ("iperf3.single.up", "iperf3 1 stream, up", "Gbit/s", "%.2f", True),
    ("iperf3.single.up.vs_relay", "  ÷ relay chain", "x", "%.2f", False),
    ("iperf3.single.up.vs_node", "  cluster relay ÷ direct node", "x", "%.2f", False),
    ("iperf3.single.down", "iperf3 1 stream, down (-R)", "Gbit/s", "%.2f", True),
    ("iperf3.single.down.vs_relay", "  ÷ relay chain", "x", "%.2f", False),
    ("iperf3.single.down.vs_node", "  cluster relay ÷ direct node", "x", "%.2f", False),
    ("iperf3.p8.up", "iperf3 -P 8, up", "Gbit/s", "%.2f", True),
    ("iperf3.p8.up.vs_relay", "  ÷ relay chain", "x", "%.2f", False),
    ("iperf3.p8.up.vs_node", "  cluster relay ÷ direct node", "x", "%.2f", False),
    ("iperf3.p8.down", "iperf3 -P 8, down (-R)", "Gbit/s", "%.2f", True),
    ("iperf3.p8.down.vs_relay", "  ÷ relay chain", "x", "%.2f", False),
    ("iperf3.p8.down.vs_node", "  cluster relay ÷ direct node", "x", "%.2f", False),
    ("http.ka.c10.rps", "wrk keep-alive -c 10", "req/s", "%.0f", True),
    ("http.ka.c10.rps.vs_node", "  cluster relay ÷ direct node", "x", "%.2f", False),
    ("http.ka.c10.p50", "  p50", "ms", "%.2f", False),
    ("http.ka.c10.p50.vs_node", "  p50 relay ÷ direct node", "x", "%.2f", False),
    ("http.ka.c10.p99", "  p99", "ms", "%.2f", False),
    ("http.ka.c10.p99.vs_node", "  p99 relay ÷ direct node", "x", "%.2f", False),
    ("http.ka.c100.rps", "wrk keep-alive -c 100", "req/s", "%.0f", True),
    ("http.ka.c100.rps.vs_node", "  cluster relay ÷ direct node", "x", "%.2f", False),
    ("http.ka.c100.p50", "  p50", "ms", "%.2f", False),
    ("http.ka.c100.p50.vs_node", "  p50 relay ÷ direct node", "x", "%.2f", False),
    ("http.ka.c100.p99", "  p99", "ms", "%.2f", False),
    ("http.ka.c100.p99.vs_node", "  p99 relay ÷ direct node", "x", "%.2f", False),
    ("http.close.c10.rps", "wrk Connection: close -c 10", "req/s", "%.0f", True),
    ("http.close.c10.rps.vs_node", "  cluster relay ÷ direct node", "x", "%.2f", False),
    ("http.close.c10.p99", "  p99", "ms", "%.2f", False),
    ("http.close.c10.p99.vs_node", "  p99 relay ÷ direct node", "x", "%.2f", False),
    ("http.close.c100.rps", "wrk Connection: close -c 100", "req/s", "%.0f", True),
    ("http.close.c100.rps.vs_node", "  cluster relay ÷ direct node", "x", "%.2f", False),
    ("http.close.c100.p99", "  p99", "ms", "%.2f", False),
    ("http.close.c100.p99.vs_node", "  p99 relay ÷ direct node", "x", "%.2f", False),
    ("dns.qps", "dnsperf -c 10 (UDP)", "q/s", "%.0f", True),
    ("dns.lost", "  lost queries", "", "%.0f", False),
    ("idle.per_conn", "idle conns: RSS per conn (mgrokd+mgrok)", "B", "%.0f", False),
    ("idle.per_conn.mgrokd", "  mgrokd per conn", "B", "%.0f", False),
    ("idle.per_conn.mgrok", "  mgrok per conn", "B", "%.0f", False),
    ("idle.working", "  echoing (open / after)", "", None, False),
    ("idle.fds_back", "  fds back to baseline", "", None, False),
    ("footprint.rss.server", "idle RSS, server side, 1 session", "KiB", "%.0f", False),
    ("footprint.rss.client", "idle RSS, client side, 1 session", "KiB", "%.0f", False),
    ("fairness.p99", "fairness: HTTP p99 beside bulk", "ms", "%.2f", False),
    ("fairness.rps", "  wrk -c 10 beside bulk", "req/s", "%.0f", True),
    ("fairness.bulk", "  bulk iperf3 meanwhile", "Gbit/s", "%.2f", True),
    ("latency.on.up", "RTT 40 ms, 1 stream up", "Mbit/s", "%.0f", False),
    ("latency.on.down", "RTT 40 ms, 1 stream down", "Mbit/s", "%.0f", False),
    ("latency.off.up", "  autotune off, up", "Mbit/s", "%.0f", False),
    ("latency.off.down", "  autotune off, down", "Mbit/s", "%.0f", False),
    ("tls.ratio", "TLS / plaintext, 1 stream up", "x", "%.2f", False),
    ("vhost.tcp.c10.rps", "vhost: wrk -c 10, tcp proxy", "req/s", "%.0f", False),
    ("vhost.http.c10.rps", "  same nginx, http proxy (Host)", "req/s", "%.0f", False),
    ("vhost.c10.ratio", "  http ÷ tcp, -c 10", "x", "%.3f", False),
    ("vhost.tcp.c10.p99", "  p99 tcp", "ms", "%.2f", False),
    ("vhost.http.c10.p99", "  p99 http", "ms", "%.2f", False),
    ("vhost.tcp.c100.rps", "vhost: wrk -c 100, tcp proxy", "req/s", "%.0f", False),
    ("vhost.http.c100.rps", "  same nginx, http proxy (Host)", "req/s", "%.0f", False),
    ("vhost.c100.ratio", "  http ÷ tcp, -c 100", "x", "%.3f", False),
    ("vhost.tcp.c100.p99", "  p99 tcp", "ms", "%.2f", False),
    ("vhost.http.c100.p99", "  p99 http", "ms", "%.2f", False),
    ("vhost.tcp.c100.cpu.mgrokd", "  mgrokd CPU per request, tcp", "µs", "%.2f", False),
    ("vhost.http.c100.cpu.mgrokd", "  mgrokd CPU per request, http", "µs", "%.2f", False),
    ("vhost.tcp.c100.user_time.mgrokd", "    of it user space, tcp", "µs", "%.2f", False),
    ("vhost.http.c100.user_time.mgrokd", "    of it user space, http", "µs", "%.2f", False),
    ("vhost.tcp.c100.cpu.mgrok", "  mgrok CPU per request, tcp", "µs", "%.2f", False),
    ("vhost.http.c100.cpu.mgrok", "  mgrok CPU per request, http", "µs", "%.2f", False),
    ("vhost.tcp.sys_per_req.mgrokd", "vhost: mgrokd syscalls per request, tcp", "", "%.2f", False),
    ("vhost.http.sys_per_req.mgrokd", "  mgrokd, http", "", "%.2f", False),
    ("vhost.tcp.sys_per_req.mgrok", "  mgrok, tcp", "", "%.2f", False),
    ("vhost.http.sys_per_req.mgrok", "  mgrok, http", "", "%.2f", False),
    ("vhost.tcp.us_per_syscall", "  mgrokd system time per syscall, tcp", "µs", "%.2f", False),
    ("vhost.http.us_per_syscall", "  mgrokd system time per syscall, http", "µs", "%.2f", False),
    ("vhost.bulk.up.tcp", "vhost: bulk 1 stream up, tcp proxy", "Gbit/s", "%.2f", False),
    ("vhost.bulk.up.tls", "  tls proxy (SNI)", "Gbit/s", "%.2f", False),
    ("vhost.bulk.up.ratio", "  tls ÷ tcp, up", "x", "%.3f", False),
    ("vhost.bulk.up.tcp.cpu_per_gb", "  CPU s per GB (mgrokd+mgrok), tcp", "s", "%.3f", False),
    ("vhost.bulk.up.tls.cpu_per_gb", "  CPU s per GB (mgrokd+mgrok), tls", "s", "%.3f", False),
    ("vhost.bulk.down.tcp", "vhost: bulk 1 stream down, tcp proxy", "Gbit/s", "%.2f", False),
    ("vhost.bulk.down.tls", "  tls proxy (SNI)", "Gbit/s", "%.2f", False),
    ("vhost.bulk.down.ratio", "  tls ÷ tcp, down", "x", "%.3f", False),
    ("vhost.bulk.down.tcp.cpu_per_gb", "  CPU s per GB (mgrokd+mgrok), tcp", "s", "%.3f", False),
    ("vhost.bulk.down.tls.cpu_per_gb", "  CPU s per GB (mgrokd+mgrok), tls", "s", "%.3f", False),
]
for _t in CLUSTER_LOAD_TUNNELS:
    ROWS += [("cluster.t%d.redis_cps" % _t, "cluster, %d tunnels: Redis commands/s" % _t, "cmd/s", "%.1f", False),
             ("cluster.t%d.rss.a" % _t, "  RSS node a (the client's)", "KiB", "%.0f", False),
             ("cluster.t%d.rss.b" % _t, "  RSS node b (relays)", "KiB", "%.0f", False)]
# Cluster relay ÷ direct node: the figures where both cluster paths ran.
VS_NODE_KEYS = [r[0][:-len(".vs_node")] for r in ROWS if r[0].endswith(".vs_node")]


def _val(res, key, path):
    v = res.get(key, {}).get(path)
    return v if isinstance(v, (int, float)) else None


def _ratio(res, key, path):
    v, d = _val(res, key, path), _val(res, key, "direct")
    return v / d if v is not None and d else None


def _idle_ok(res, path):
    w = res.get("idle.working", {}).get(path)
    f = res.get("idle.fds_back", {}).get(path)
    per = _val(res, "idle.per_conn", path)
    if not isinstance(w, dict) or not isinstance(f, dict) or per is None:
        return None
    return (per <= 1024 and w["echoed"] == w["target"] and w["echoed_after"] == w["target"]
            and f["back"])


def _ge(key, r):
    return lambda res, p: None if _ratio(res, key, p) is None else _ratio(res, key, p) >= r


def _le(key, lim):
    return lambda res, p: None if _val(res, key, p) is None else _val(res, key, p) <= lim


def _at_least(key, lim):
    return lambda res, p: None if _val(res, key, p) is None else _val(res, key, p) >= lim


TARGETS = {
    "iperf3.single.up": ("≥ 0.6× direct", _ge("iperf3.single.up", 0.6)),
    "iperf3.single.down": ("≥ 0.6× direct", _ge("iperf3.single.down", 0.6)),
    "iperf3.p8.up": ("≥ 0.6× direct", _ge("iperf3.p8.up", 0.6)),
    "iperf3.p8.down": ("≥ 0.6× direct", _ge("iperf3.p8.down", 0.6)),
    "http.ka.c10.rps": ("≥ 0.45× direct", _ge("http.ka.c10.rps", 0.45)),
    "http.ka.c10.p99": ("≤ 2 ms", _le("http.ka.c10.p99", 2.0)),
    "http.ka.c100.rps": ("≥ 0.6× direct", _ge("http.ka.c100.rps", 0.6)),
    "http.close.c100.rps": ("≥ 0.5× direct", _ge("http.close.c100.rps", 0.5)),
    "dns.qps": ("≥ 0.5× direct", _ge("dns.qps", 0.5)),
    "dns.lost": ("0", _le("dns.lost", 0)),
    "idle.per_conn": ("≤ 1024 B, all echo, fds back", _idle_ok),
    "fairness.p99": ("≤ 5 ms", _le("fairness.p99", 5.0)),
    "latency.on.up": ("≥ %.0f Mbit/s" % (4 * FIXED_WINDOW_MBIT), lambda res, p: None if _val(res, "latency.on.up", p) is None else _val(res, "latency.on.up", p) >= 4 * FIXED_WINDOW_MBIT),
    "latency.on.down": ("≥ %.0f Mbit/s" % (4 * FIXED_WINDOW_MBIT), lambda res, p: None if _val(res, "latency.on.down", p) is None else _val(res, "latency.on.down", p) >= 4 * FIXED_WINDOW_MBIT),
    "vhost.c10.ratio": ("≥ 0.8", _at_least("vhost.c10.ratio", 0.8)),
    "vhost.c100.ratio": ("≥ 0.8", _at_least("vhost.c100.ratio", 0.8)),
    "vhost.bulk.up.ratio": ("≥ 0.95", _at_least("vhost.bulk.up.ratio", 0.95)),
    "vhost.bulk.down.ratio": ("≥ 0.95", _at_least("vhost.bulk.down.ratio", 0.95)),
    "tls.ratio": ("≥ 0.8 (TLS path)", lambda res, p: None if _val(res, "tls.ratio", "mgrok-tls") is None else _val(res, "tls.ratio", "mgrok-tls") >= 0.8),
}


def cell(b, key, path, fmt, ratio):
    res = b.results
    note = b.notes.get(key, {}).get(path)
    if note:
        return note
    v = res.get(key, {}).get(path)
    if v is None:
        return ""
    if key == "idle.working" and isinstance(v, dict):
        return "%d / %d of %d" % (v["echoed"], v["echoed_after"], v["target"])
    if key == "idle.fds_back" and isinstance(v, dict):
        return "yes" if v["back"] else "no (%d, %d)" % (v["after"]["server"], v["after"]["client"])
    if not isinstance(v, (int, float)):
        return str(v)
    text = fmt % v
    if ratio and path != "direct":
        r = _ratio(res, key, path)
        if r is not None:
            text += " (%.2f)" % r
    return text


def table(b):
    res = b.results
    paths = [p for p in PATHS if p in b.paths]
    # Derived: TLS against plaintext.
    t, p = _val(res, "iperf3.single.up", "mgrok-tls"), _val(res, "iperf3.single.up", "mgrok")
    if t is not None and p:
        res.setdefault("tls.ratio", {})["mgrok-tls"] = t / p
    # Derived: the tunnels against the bare relay chain (the two-relay ceiling).
    for key in ("iperf3.single.up", "iperf3.single.down", "iperf3.p8.up", "iperf3.p8.down"):
        ceiling = _val(res, key, "relay")
        for pth in MGROK_PATHS + ("socat", "ssh"):
            v = _val(res, key, pth)
            if v is not None and ceiling:
                res.setdefault(key + ".vs_relay", {})[pth] = v / ceiling
    # Derived: a visitor relayed by node b against one at node a, the same
    # tunnel (for latencies above 1 the relay is slower, as for rates below).
    for key in VS_NODE_KEYS:
        v, node = _val(res, key, "mgrok-cluster-relay"), _val(res, key, "mgrok-cluster-direct")
        if v is not None and node:
            res.setdefault(key + ".vs_node", {})["mgrok-cluster-relay"] = v / node
    marks_for = [p for p in MGROK_PATHS if p in b.paths]
    head = ["scenario", "unit"] + paths + ["target"] + ["✓ " + p for p in marks_for]
    rows = []
    for key, label, unit, fmt, ratio in ROWS:
        if key not in res and key not in b.notes:
            continue
        row = [label, unit] + [cell(b, key, pth, fmt, ratio) for pth in paths]
        tgt = TARGETS.get(key)
        if tgt:
            text, pred = tgt
            marks = []
            for pth in marks_for:
                ok = pred(res, pth) if key != "tls.ratio" or pth == "mgrok-tls" else None
                marks.append("" if ok is None else ("✓" if ok else "✗"))
            row += [text] + marks
        else:
            row += [""] * (1 + len(marks_for))
        rows.append(row)
    if not rows:
        return "(no results)"
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(head, widths)) + " |",
             "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |")
    return "\n".join(lines)


def target_summary(b):
    out = []
    res = b.results
    for key, (text, pred) in TARGETS.items():
        label = next((r[1].strip() for r in ROWS if r[0] == key), key)
        # The targets are the plaintext mgrok path's, except TLS against plaintext.
        for pth in ("mgrok-tls",) if key == "tls.ratio" else ("mgrok",):
            if pth not in b.paths:
                continue
            ok = pred(res, pth)
            if ok is None:
                continue
            out.append({"target": key, "label": label, "path": pth, "want": text, "met": bool(ok)})
    return out


# ---- machine ------------------------------------------------------------------------


def machine_info(b):
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            mem = "%.1f GiB" % (int(f.readline().split()[1]) / 1024 / 1024)
    except OSError:
        pass
    version = ""
    try:
        version = subprocess.run([b.mgrokd, "--version"], capture_output=True, text=True,
                                 timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    commit = ""
    try:  # read-only; the source tree may be no git checkout (a tarball)
        r = subprocess.run(["git", "-C", SRCDIR, "rev-parse", "--short", "HEAD"],
                           capture_output=True, text=True, timeout=10)
        commit = r.stdout.strip() if r.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        pass
    return {"nproc": os.cpu_count(), "cpu": cpu, "commit": commit, "memory": mem, "kernel": platform.release(),
            "os": _os_release(), "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "mgrok": version}


def _os_release():
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return platform.system()


# ---- main -------------------------------------------------------------------------------


def parse_args(argv):
    ap = argparse.ArgumentParser(description="mgrok benchmark: direct, socat, ssh -R, mgrok, mgrok TLS")
    ap.add_argument("--build-dir", default=os.environ.get("MGROK_BUILDDIR") or SRCDIR,
                    help="where core/mgrokd, core/mgrok and plugins/.libs are (default: the source tree)")
    ap.add_argument("--scenario",
                    help="comma-separated scenarios: %s (default: all; cluster-load only with "
                    "a cluster path)" % ", ".join(SCENARIOS))
    ap.add_argument("--path", default=",".join(p for p in PATHS if p not in OPTIONAL_PATHS),
                    help="comma-separated paths: %s (default: all but %s; direct is always "
                    "added for the ratios unless --no-direct)"
                    % (", ".join(PATHS), ", ".join(OPTIONAL_PATHS)))
    ap.add_argument("--no-direct", action="store_true", help="do not add the direct path")
    ap.add_argument("--duration", type=int, default=5, help="seconds per measurement (default 5)")
    ap.add_argument("--conns", type=int, default=10000, help="idle connections (default 10000)")
    ap.add_argument("--json", help="results file (default BUILD/tests/bench/results.json)")
    ap.add_argument("--quick", action="store_true", help="2 s measurements, 1000 idle connections")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs, configs)")
    ap.add_argument("-v", "--verbose", action="store_true", help="show every command")
    ap.add_argument("--echo-server", type=int, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.echo_server:
        return a
    a.paths = [p.strip() for p in a.path.split(",") if p.strip()]
    if a.scenario is None:  # cluster-load would be n/a everywhere else
        a.scenario = ",".join(s for s in SCENARIOS if s != "cluster-load" or
                              any(p in CLUSTER_PATHS for p in a.paths))
    a.scenarios = [s.strip() for s in a.scenario.split(",") if s.strip()]
    for s in a.scenarios:
        if s not in SCENARIOS:
            ap.error("unknown scenario %r (have: %s)" % (s, ", ".join(SCENARIOS)))
    for p in a.paths:
        if p not in PATHS:
            ap.error("unknown path %r (have: %s)" % (p, ", ".join(PATHS)))
    if "direct" not in a.paths and not a.no_direct:
        a.paths.insert(0, "direct")
    a.paths = [p for p in PATHS if p in a.paths]
    if a.quick:
        a.duration = min(a.duration, 2)
        a.conns = min(a.conns, 1000)
    if a.duration < 1:
        ap.error("--duration must be at least 1")
    if not a.json:
        a.json = os.path.join(os.path.abspath(a.build_dir), "tests", "bench", "results.json")
    return a


def main(argv):
    args = parse_args(argv)
    if args.echo_server:
        echo_server(args.echo_server)
        return 0
    raise_nofile()
    for f in ("mgrokd", "mgrok"):
        f = os.path.join(os.path.abspath(args.build_dir), "core", f)
        if any(p in MGROK_PATHS for p in args.paths) and not os.access(f, os.X_OK):
            print("bench: %s is missing: build first (make)" % f, file=sys.stderr)
            return 2
    b = Bench(args)

    def on_term(signum, frame):
        raise KeyboardInterrupt("signal %d" % signum)
    signal.signal(signal.SIGINT, on_term)  # even where a shell started us ignoring it
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)

    missing = sorted({t for t in TOOLS if not find_tool(t)})
    if missing:
        print("bench: missing tools: %s (packages: %s); run ./bootstrap as root to install them. "
              "Their scenarios show n/a." % (", ".join(missing),
                                             " ".join(sorted({TOOL_PACKAGES[t] for t in missing}))),
              flush=True)
    info = machine_info(b)
    log("mgrok bench: %s; %d CPUs (%s); scenarios %s; paths %s; %d s each" % (
        info["mgrok"], info["nproc"] or 0, info["cpu"], ",".join(args.scenarios),
        ",".join(args.paths), args.duration))
    t_start = time.monotonic()
    errors = []
    interrupted = False
    try:
        if "latency" in args.scenarios:
            try:
                rtt = check_delay(b)
                b.results["delay_relay_rtt_ms"] = rtt
                log("delay relay: %.1f ms round trip through two 20 ms holds" % rtt)
            except (ToolMissing, BenchError) as e:
                log("delay relay check: %s" % e)
        for sname in args.scenarios:
            fn, tools = SCENARIOS[sname]
            log("== %s" % sname)
            for pname in args.paths:
                path = b.paths[pname]
                try:
                    need = [t for t in tools + path.tools if not find_tool(t)]
                    if need:
                        raise ToolMissing(",".join(need))
                    fn(b, path)
                except ToolMissing as e:
                    _mark(b, sname, pname, "n/a (tool missing: %s)" % e)
                    log("  %-10s n/a: tool missing: %s" % (pname, e))
                except NotApplicable as e:
                    _mark(b, sname, pname, "n/a")
                    log("  %-10s n/a: %s" % (pname, e))
                except (BenchError, OSError, ValueError, KeyError, TypeError) as e:
                    if not isinstance(e, BenchError):
                        e = BenchError("%s: %s" % (type(e).__name__, e))
                    _mark(b, sname, pname, "error")
                    errors.append("%s/%s: %s" % (sname, pname, e))
                    log("  %-10s ERROR: %s" % (pname, e))
                    _dump_logs(b)
    except KeyboardInterrupt as e:
        interrupted = True
        log("interrupted (%s): stopping everything" % (e or "^C"))
    finally:
        b.stop_all()
        if args.keep:
            log("work directory kept: %s" % b.work)
        else:
            shutil.rmtree(b.work, ignore_errors=True)
    elapsed = time.monotonic() - t_start

    tbl = table(b)
    print()
    print("mgrok bench, %s, %s CPUs (%s), %s, %d s per measurement; cells: value (ratio to direct)"
          % (info["date"], info["nproc"], info["cpu"], info["os"], args.duration))
    print(tbl)
    sizes = b.results.get("sizes")
    if sizes:
        print()
        print("sizes: " + ", ".join("%s %.0f KiB (stripped %s)" % (
            n, v["bytes"] / 1024, "%.0f KiB" % (v["stripped"] / 1024) if v["stripped"] else "?")
            for n, v in sizes.items()))
    summary = target_summary(b)
    met = sum(1 for s in summary if s["met"])
    print()
    print("targets met: %d of %d%s" % (met, len(summary), "" if met == len(summary) else "; not met: " +
                                       ", ".join("%s on %s (%s)" % (s["label"], s["path"], s["want"])
                                                 for s in summary if not s["met"])))
    if errors:
        print("errors:")
        for e in errors:
            print("  " + e.splitlines()[0])
    print("runtime: %.0f s" % elapsed)
    out = {"machine": info, "args": {k: v for k, v in vars(args).items() if k != "echo_server"},
           "results": b.results, "notes": b.notes, "targets": summary, "errors": errors,
           "runtime_s": round(elapsed, 1), "table": tbl}
    try:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1, ensure_ascii=False)
        print("results: %s" % args.json)
    except OSError as e:
        print("bench: cannot write %s: %s" % (args.json, e), file=sys.stderr)
    return 130 if interrupted else (1 if errors else 0)


SCENARIO_KEYS = {
    "iperf3": ["iperf3.single.up", "iperf3.single.down", "iperf3.p8.up", "iperf3.p8.down"],
    "http": ["http.ka.c10.rps", "http.ka.c10.p50", "http.ka.c10.p99", "http.ka.c100.rps",
             "http.ka.c100.p50", "http.ka.c100.p99"],
    "http-close": ["http.close.c10.rps", "http.close.c10.p99", "http.close.c100.rps",
                   "http.close.c100.p99"],
    "dns": ["dns.qps", "dns.lost"],
    "idle": ["idle.per_conn", "idle.per_conn.mgrokd", "idle.per_conn.mgrok", "idle.working",
             "idle.fds_back"],
    "footprint": ["footprint.rss.server", "footprint.rss.client"],
    "fairness": ["fairness.p99", "fairness.rps", "fairness.bulk"],
    "latency": ["latency.on.up", "latency.on.down", "latency.off.up", "latency.off.down"],
    "vhost": [r[0] for r in ROWS if r[0].startswith("vhost.")],
    "cluster-load": [r[0] for r in ROWS if r[0].startswith("cluster.")],
}
SYSCALL_KEYS = [r[0] for r in ROWS if r[0].startswith("vhost.") and
                (".sys_per_req." in r[0] or r[0].endswith(".us_per_syscall"))]


def _mark(b, sname, pname, text):
    for key in SCENARIO_KEYS[sname]:
        if not isinstance(b.results.get(key, {}).get(pname), (int, float, dict)):
            b.note(key, pname, text)


def _dump_logs(b):
    for p in b.procs:
        t = p.tail(8)
        if t:
            print(t, flush=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
