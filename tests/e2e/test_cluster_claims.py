#!/usr/bin/env python3
"""Claims across the nodes of a cluster (doc/cluster.md): a redis-server of
the test's own and two mgrokd nodes on 127.0.0.11 and 127.0.0.12 with the
same control port and public ports.

1. A port a client holds through node a is PORT_IN_USE on node b, with the
   reason; the claim in Redis names node a.
2. Port 0: twelve sessions, six on each node, registering at once, get
   twelve different ports, each with its own claim.
3. A client with the same identity and clientId registering its port
   through node b takes it over; node a ends the old session (GO_AWAY)
   when its refresh finds the claim is node b's.
4. Redis stopped for more than three leases: the tunnel through node a
   echoes throughout, a new REGISTER is refused (LIMIT, "registry"); Redis
   back, empty: node a writes its claim again, node b is still refused
   that port, and a new port is granted.
5. Names: an http name held through node b is NAME_IN_USE through node a.
6. Redis stopped (SIGSTOP): a REGISTER waits for its claim while the
   node goes on serving (a tunnel through it echoes); an UNREGISTER of it
   meanwhile gets the REGISTER answered (INVALID) first; another REGISTER
   is answered OK once Redis continues.
7. Node a killed (SIGKILL): its claims end with their lease, and node b
   grants the port then (the time it took is logged).
"""
import os
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mgroktest as t
from mgroktest.cluster import Redis, check_echo, node_config

TOKEN = "cluster-Token-4b8e2f6a0c1d3957"
HOSTS = {"a": "127.0.0.11", "b": "127.0.0.12"}
LEASE = 1.5
DOMAIN = "cluster.test"
PROXY_HTTP = 0x03


class Setup:
    pass


def start(env, s):
    s.redis = Redis(env)
    s.redis.start()
    s.port = env.ports.take()
    s.allow = env.ports.take_range(16)
    s.http_port = env.ports.take()
    s.nodes = {}
    for name, host in HOSTS.items():
        http = {"listen": "%s:%d" % (host, s.http_port), "domain": DOMAIN}
        conf = node_config(env, name, host, s.port, s.allow, s.redis, TOKEN, LEASE,
                           {"http": http})
        srv = env.start_server(config=conf, name="mgrokd-" + name, port=s.port,
                               listen_host=host, allow=s.allow, token=None)
        s.nodes[name] = srv
    s.echo = env.echo_service()


def session(s, node, client_id=None):
    r = t.RawSession(s.port, host=HOSTS[node]).handshake(TOKEN)
    if client_id:
        r.hello(client_id)
    return r


def one_port_two_nodes(env, s):
    s.held = s.allow[0]
    s.client = env.start_client(s.echo.port, "%s:%d" % (HOSTS["a"], s.port), token=TOKEN,
                                remote_port=s.held)
    check_echo(HOSTS["a"], s.held, t.payload(1, 50000), "through node a")
    r = session(s, "b")
    ack = r.register("other", s.held)
    t.check_eq(ack.status, t.ACK_PORT_IN_USE, "REGISTER of a port node a holds, on node b",
               message=ack.message)
    t.check("another node" in ack.message, "the refusal says why", message=ack.message)
    r.close()
    v = s.redis.claims().get("mgrok:claim:tcp/%d" % s.held)
    t.check(v is not None and "|a " in v, "the claim names node a", value=v)


def port_zero(env, s):
    results, lock = [], threading.Lock()
    sessions = [session(s, "ab"[i % 2]) for i in range(12)]

    def register(i, r):
        ack = r.register("p%d" % i, 0)
        with lock:
            results.append((i, ack))
    threads = [threading.Thread(target=register, args=(i, r)) for i, r in enumerate(sessions)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(t.DEADLINE)
    t.check_eq(len(results), 12, "answers to twelve REGISTERs")
    ports = sorted(ack.port for _, ack in results)
    for i, ack in results:
        t.check_eq(ack.status, t.ACK_OK, "REGISTER p%d with port 0" % i, message=ack.message)
    t.check_eq(len(set(ports)), 12, "twelve different ports", ports=ports)
    t.check(s.held not in ports, "a port held elsewhere was given again", ports=ports)
    claims = s.redis.claims()
    for p in ports:
        t.check("mgrok:claim:tcp/%d" % p in claims, "no claim for port %d" % p, claims=claims)
    t.log("port 0: %s" % ports)
    for r in sessions:
        r.close()
    # Their claims are given back with the sessions.
    t.wait_for(lambda: not any("mgrok:claim:tcp/%d" % p in s.redis.claims() for p in ports),
               t.DEADLINE, "the twelve claims to be given back")


def takeover(env, s):
    port = s.allow[0] + 1
    old = session(s, "a", "laptop-1")
    ack = old.register("web", port)
    t.check_eq(ack.status, t.ACK_OK, "REGISTER through node a", message=ack.message)
    new = session(s, "b", "laptop-1")
    ack = new.register("web", port)
    t.check_eq(ack.status, t.ACK_OK, "the same client's REGISTER through node b",
               message=ack.message)
    v = s.redis.claims().get("mgrok:claim:tcp/%d" % port)
    t.check(v is not None and "|b " in v, "the claim is node b's now", value=v)
    f = old.expect_go_away(t.GOAWAY_NORMAL, "the claim went to node b")
    t.check("another node" in f.message, "GO_AWAY says why", message=f.message)
    stranger = session(s, "a", "laptop-2")
    ack = stranger.register("web", port)
    t.check_eq(ack.status, t.ACK_PORT_IN_USE, "another clientId's REGISTER of that port",
               message=ack.message)
    for r in (new, stranger):
        r.close()


def redis_away(env, s):
    s.redis.stop()
    data = t.payload(2, 20000)
    end = time.monotonic() + 3 * LEASE
    rounds = 0
    while time.monotonic() < end or rounds < 3:
        check_echo(HOSTS["a"], s.held, data, "through node a while Redis is away")
        rounds += 1
        time.sleep(0.2)
    r = session(s, "b")
    ack = r.register("new", s.allow[0] + 2)
    t.check_eq(ack.status, t.ACK_LIMIT, "REGISTER while Redis is away", message=ack.message)
    t.check("registry" in ack.message, "the refusal names the registry", message=ack.message)
    s.redis.start()
    key = "mgrok:claim:tcp/%d" % s.held
    t.wait_for(lambda: "|a " in (s.redis.claims().get(key) or ""), t.DEADLINE,
               "node a to write its claim again")

    def answered():
        ack = r.register("new", s.allow[0] + 2)
        return ack if ack.status != t.ACK_LIMIT else None
    ack = t.wait_for(answered, t.DEADLINE, "node b to reach Redis again", interval=0.3)
    t.check_eq(ack.status, t.ACK_OK, "a new port once Redis is back", message=ack.message)
    ack = r.register("dup", s.held)
    t.check_eq(ack.status, t.ACK_PORT_IN_USE, "node a's port, through node b, after",
               message=ack.message)
    check_echo(HOSTS["a"], s.held, data, "through node a after Redis came back")
    r.close()
    t.log("rounds of echo while Redis was away: %d" % rounds)


def names(env, s):
    r = session(s, "b")
    opts = b'{"subdomain":"shop"}'
    ack = r.register("shop", 0, proxy_type=PROXY_HTTP, options=opts)
    t.check_eq(ack.status, t.ACK_OK, "http name through node b", message=ack.message)
    v = s.redis.claims().get("mgrok:claim:http/shop.%s" % DOMAIN)
    t.check(v is not None and " shop" in v, "the name's claim", claims=s.redis.claims())
    q = session(s, "a")
    ack = q.register("shop2", 0, proxy_type=PROXY_HTTP, options=opts)
    t.check_eq(ack.status, t.ACK_NAME_IN_USE, "the same name through node a",
               message=ack.message)
    q.close()
    r.close()


def redis_slow(env, s):
    r = session(s, "a")
    s.redis.proc.send_signal(signal.SIGSTOP)
    try:
        r.send(t.f_register("slow", s.allow[0] + 3))
        r.send(t.f_register("gone", s.allow[0] + 4))
        check_echo(HOSTS["a"], s.held, t.payload(3, 30000), "through node a, Redis stopped")
        r.send(t.f_unregister("gone"))
        ack = r.next_frame(t.REGISTER_ACK, "the answer to REGISTER gone")
        t.check_eq((ack.name, ack.status), (b"gone", t.ACK_INVALID),
                   "REGISTER answered at its UNREGISTER", message=ack.message)
    finally:
        s.redis.proc.send_signal(signal.SIGCONT)
    ack = r.next_frame(t.REGISTER_ACK, "the answer to REGISTER slow")
    t.check_eq((ack.name, ack.status), (b"slow", t.ACK_OK), "REGISTER once Redis continues",
               message=ack.message)
    r.close()


def node_dies(env, s):
    key = "mgrok:claim:tcp/%d" % s.held
    s.nodes["a"].stop(sig=9)
    t0 = time.monotonic()
    r = session(s, "b")

    def granted():
        ack = r.register("heir", s.held)
        if ack.status == t.ACK_OK:
            return ack
        t.check_eq(ack.status, t.ACK_PORT_IN_USE, "REGISTER while node a's lease runs",
                   message=ack.message)
        return None
    t.wait_for(granted, t.DEADLINE, "node a's claim to end", interval=0.2)
    took = time.monotonic() - t0
    v = s.redis.claims().get(key)
    t.check(v is not None and " heir" in v, "the claim is node b's", value=v)
    t.log("node a killed: its port granted on node b after %.2f s (lease %.1f s)" % (took,
                                                                                  LEASE))
    r.close()
    s.client.stop()


def main(env):
    s = Setup()
    start(env, s)
    for what, fn in (("1. one port, two nodes", one_port_two_nodes),
                     ("2. port 0 across nodes", port_zero),
                     ("3. the same client takes its port over", takeover),
                     ("4. Redis away and back", redis_away),
                     ("5. names", names),
                     ("6. Redis stopped, REGISTERs wait", redis_slow),
                     ("7. a node killed", node_dies)):
        t.log("---- %s" % what)
        with env.case(what):
            fn(env, s)
    t.check(s.nodes["b"].alive(), "node b died")
    t.check_eq(s.nodes["b"].stop(), 0, "exit code of node b on SIGTERM")
    for p in env.procs:
        p.stop()
    t.check_no_secrets(env, [TOKEN])
    env.check_services()


t.run(main)
