"""A cluster for a test: a redis-server of its own on a unix socket (no
port to collide on) and mgrokd nodes on their own loopback addresses
(127.0.0.11, .12, ...) with the same ports."""

import os
import shutil
import socket
import subprocess

from .checks import DEADLINE, TestFailure, check, wait_for
from .env import write_json
from .procs import Proc


CLUSTER_SECRET = "cluster-Secret-8d2c6a0e4f1b3957"


class Redis:
    def __init__(self, env):
        self.env = env
        if not shutil.which("redis-server") or not shutil.which("redis-cli"):
            raise TestFailure("redis-server and redis-cli are needed (./bootstrap installs "
                              "them)")
        self.sock = os.path.join(env.dir, "redis.sock")
        self.proc = None

    @property
    def addr(self):
        return "unix:" + self.sock

    def start(self):
        """Starts it empty (no file is saved or read) and waits for its socket."""
        self.proc = self.env.spawn("redis", [
            "redis-server", "--port", "0", "--unixsocket", self.sock, "--save", "",
            "--appendonly", "no", "--dir", self.env.dir, "--loglevel", "warning"], Proc)
        wait_for(lambda: self.cli("PING") == "PONG", DEADLINE, "redis-server to answer")

    def stop(self):
        """Gone at once, like a crash: what it held is lost."""
        self.proc.stop(sig=9)
        if os.path.exists(self.sock):
            os.unlink(self.sock)

    def cli(self, *args):
        """One command's answer as text, or None when redis-server is not there."""
        if not os.path.exists(self.sock):
            return None
        try:
            r = subprocess.run(["redis-cli", "-s", self.sock, "--raw"] + list(args),
                               capture_output=True, timeout=DEADLINE, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            return None
        if r.returncode != 0:
            return None
        return r.stdout.decode("utf-8", "replace").rstrip("\n")

    def claims(self):
        """{key: value} of every claim."""
        keys = [k for k in (self.cli("KEYS", "mgrok:claim:*") or "").split("\n") if k]
        return {k: self.cli("GET", k) for k in keys}


def node_config(env, name, host, port, allow, redis, token, lease=1.5, extra=None):
    """A node's mgrokd.json; returns its path."""
    conf = {"listen": "%s:%d" % (host, port), "allow_ports": ["%d-%d" % allow],
            "auth": {"method": "token", "token": token},
            "heartbeat": {"interval": 1, "timeout": 5},
            "cluster": {"redis": redis.addr, "node": name, "lease": lease,
                        "secret": CLUSTER_SECRET, "address": "%s:%d" % (host, port)}}
    conf.update(extra or {})
    return write_json(env, "%s.json" % name, conf)


def echo_once(host, port, data, timeout=DEADLINE):
    """data to host:port and the same bytes back; the reply or an OSError."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        got = b""
        while True:
            b = s.recv(65536)
            if not b:
                return got
            got += b


def check_echo(host, port, data, what):
    got = echo_once(host, port, data)
    check(got == data, "%s: the echo differs" % what, sent=len(data), got=len(got))


# ---- HAProxy in front -------------------------------------------------------------------

HAPROXY_CFG = """global
    maxconn 4000
defaults
    mode tcp
    source {front}
    timeout connect 2s
    timeout client 120s
    timeout server 120s
    retries 3
    option redispatch
frontend control
    bind {front}:{control}
    default_backend control
backend control
    balance roundrobin
{control_servers}
frontend public
    bind {front}:{lo}-{hi}
    default_backend public
backend public
    balance roundrobin
{public_servers}
frontend http
    bind {front}:{http}
    default_backend http
backend http
    balance roundrobin
{http_servers}
"""


def haproxy_config(env, front, nodes, control, allow, http):
    """etc/haproxy-cluster.cfg's shape, on loopback: the control port, the
    public ports and the http port of every node (name -> host), PROXY v2
    to each, each node checked on its control port every 0.3 s."""
    def servers(port):
        line = ("    server {n} {h}{p} check port {c} inter 300 fall 2 rise 2 "
                "send-proxy-v2 check-send-proxy")
        return "\n".join(line.format(n=n, h=h, p=":%d" % port if port else "", c=control)
                         for n, h in sorted(nodes.items()))
    return env.write_file("haproxy.cfg", HAPROXY_CFG.format(
        front=front, control=control, lo=allow[0], hi=allow[1], http=http,
        control_servers=servers(control), public_servers=servers(None),
        http_servers=servers(http)))


def start_haproxy(env, cfg, front, control):
    if not shutil.which("haproxy"):
        raise TestFailure("haproxy is needed (./bootstrap installs it)")
    p = env.spawn("haproxy", ["haproxy", "-db", "-f", cfg], Proc)

    def up():
        if not p.alive():
            raise TestFailure("haproxy exited: %s" % p.stderr_text()[-2000:])
        try:
            socket.create_connection((front, control), timeout=2).close()
            return True
        except OSError:
            return False
    wait_for(up, DEADLINE, "haproxy to listen")
    return p
