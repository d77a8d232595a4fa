#!/usr/bin/env python3
"""A cluster whose control ports speak TLS (doc/cluster.md): two nodes on
127.0.0.11 and .12 serving one certificate, a redis-server of the test's
own. A client with the certificate's fingerprint registers a tcp tunnel
on node a; a visitor through node b, relayed over a TLS session that pins
that same certificate, gets every byte back. A third node with another
certificate gets no relay from them: its visitors of that port are
refused, and node a logs the pin it refused."""
import os
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mgroktest as t
from mgroktest.cluster import Redis, check_echo, node_config

TOKEN = "cluster-tls-Token-2d4f6a8c0e1b3579"
HOSTS = {"a": "127.0.0.11", "b": "127.0.0.12", "c": "127.0.0.13"}


def main(env):
    redis = Redis(env)
    redis.start()
    port = env.ports.take()
    allow = env.ports.take_range(4)
    cert, key, fp = t.gen_cert(env, "shared", "tunnel.test")
    other_cert, other_key, _ = t.gen_cert(env, "other", "tunnel.test")
    nodes = {}
    for n, host in HOSTS.items():
        c, k = (other_cert, other_key) if n == "c" else (cert, key)
        conf = node_config(env, n, host, port, allow, redis, TOKEN, 2.0,
                           {"tls": {"cert": c, "key": k}})
        nodes[n] = env.start_server(config=conf, name="mgrokd-" + n, port=port,
                                    listen_host=host, allow=allow, token=None)
    echo = env.echo_service()
    conf = t.write_json(env, "mgrok.json", {
        "server": "%s:%d" % (HOSTS["a"], port),
        "auth": {"method": "token", "token": TOKEN},
        "tls": {"fingerprint": fp},
        "proxies": [{"name": "e", "type": "tcp", "local": str(echo.port),
                     "remote_port": allow[0]}]})
    cl = env.start_client(None, None, token=None, config=conf)
    check_echo(HOSTS["a"], allow[0], t.payload(1, 100000), "through node a")

    def served(host):
        try:
            socket.create_connection((host, allow[0]), timeout=2).close()
            return True
        except OSError:
            return False
    t.wait_for(lambda: served(HOSTS["b"]), t.DEADLINE, "node b to serve the port")
    check_echo(HOSTS["b"], allow[0], t.payload(2, 300000), "relayed by node b over TLS")
    t.wait_log(nodes["a"], r"relay to node c at .*")
    t.wait_log(nodes["a"], r"relay 127\.0\.0\.13:\d+: .*does not match the pinned fingerprint")
    t.check(not served(HOSTS["c"]), "node c, with another certificate, serves the port")
    t.log("relayed over TLS with the shared certificate pinned; node c refused")
    cl.stop()
    for p in env.procs:
        p.stop()
    t.check_no_secrets(env, [TOKEN])


t.run(main)
