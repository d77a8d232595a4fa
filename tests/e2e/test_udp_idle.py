#!/usr/bin/env python3
"""UDP flows end (doc/protocol.md 5): an idle flow is closed on both sides and
the same visitor gets a new flow afterwards; past max_flows the least
recently used flow is evicted; a session that ends closes all its UDP flows
and frees the public ports at once."""
import os
import re
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mgroktest as t

TOKEN = "udp-idle-token"
IDLE = 1          # the short-lived proxy's idle_timeout
LONG_IDLE = 30    # the bounded proxy's: no flow of it goes idle during the test
MAX_FLOWS = 3
LOG_WAIT = 20     # below LONG_IDLE: what ends within it was not ended by idleness


def server_flow_ended(proxy, addr):
    return r"proxy %s: flow %s ended: (\d+) datagrams in, (\d+) out, (\d+) dropped" % (
        re.escape(proxy), re.escape("%s:%d" % addr[:2]))


def client_flows_ended(proxy):
    return r"proxy %s: flow ended: \d+ datagrams in, \d+ out, \d+ dropped" % re.escape(proxy)


def visitor_streams(proxy, addr):
    return r"session \d+ proxy %s stream (\d+): visitor %s\b" % (
        re.escape(proxy), re.escape("%s:%d" % addr[:2]))


def idle_flow(env, srv, cl, port):
    sock = t.udp_socket()
    addr = sock.getsockname()
    try:
        first = b"before the idle timeout"
        t.check_eq(t.udp_exchange(sock, port, first), first, "echo through the short-lived proxy")
        # Both sides end the flow by themselves (no traffic, nothing else asked).
        counts = t.wait_log(srv, server_flow_ended("short", addr), timeout=LOG_WAIT,
                            what="mgrokd to end the idle flow of %s:%d" % addr)
        t.check(counts[0][0] == counts[0][1] and int(counts[0][0]) >= 1,
                "the idle flow's totals in mgrokd's log", totals=counts)
        t.wait_log(cl, client_flows_ended("short"), timeout=LOG_WAIT,
                   what="mgrok to end the idle flow")
        t.log("idle flow of %s:%d ended on both sides" % addr)
        streams = re.findall(visitor_streams("short", addr), srv.stderr_text())
        t.check_eq(len(streams), 1, "streams of the visitor before the timeout")

        # The same visitor address again: a new flow, a new stream, an answer.
        again = b"after the idle timeout"
        t.check_eq(t.udp_exchange(sock, port, again, ignore=[first]), again,
                   "echo after the flow went idle")
        streams = re.findall(visitor_streams("short", addr), srv.stderr_text())
        t.check(len(streams) == 2 and streams[0] != streams[1],
                "the visitor's datagram after the timeout did not open a new stream",
                streams=streams)
        # And that one ends too.
        t.wait_log(srv, server_flow_ended("short", addr), count=2, timeout=LOG_WAIT,
                   what="mgrokd to end the second idle flow")
        t.wait_log(cl, client_flows_ended("short"), count=2, timeout=LOG_WAIT,
                   what="mgrok to end the second idle flow")
        t.log("second flow of %s:%d ended too" % addr)
    finally:
        sock.close()


def bounded_flows(env, srv, cl, port):
    socks = [t.udp_socket() for _ in range(5)]
    addrs = [s.getsockname() for s in socks]
    try:
        for i, s in enumerate(socks):
            msg = b"visitor %d of 5" % i
            t.check_eq(t.udp_exchange(s, port, msg), msg, "answer to visitor %d" % i)
        # Visitors 3 and 4 each evicted the least recently used flow: 0, then 1.
        for i in (0, 1):
            t.wait_log(srv, server_flow_ended("bounded", addrs[i]), timeout=LOG_WAIT,
                       what="mgrokd to evict the flow of visitor %d (%s:%d)"
                       % ((i,) + addrs[i][:2]))
        t.wait_log(cl, client_flows_ended("bounded"), count=2, timeout=LOG_WAIT,
                   what="mgrok to end the 2 evicted flows")
        log = srv.stderr_text()
        for i in (2, 3, 4):
            t.check(not re.search(server_flow_ended("bounded", addrs[i]), log),
                    "the flow of visitor %d ended, but it is among the %d most recent"
                    % (i, MAX_FLOWS))
        t.log("max_flows %d: flows of visitors 0 and 1 evicted, 2-4 kept" % MAX_FLOWS)

        # An evicted visitor comes back: a new flow, which evicts visitor 2's.
        msg = b"visitor 0 is back"
        t.check_eq(t.udp_exchange(socks[0], port, msg, ignore=[b"visitor 0 of 5"]), msg,
                   "answer to an evicted visitor")
        t.wait_log(srv, server_flow_ended("bounded", addrs[2]), timeout=LOG_WAIT,
                   what="mgrokd to evict visitor 2's flow")
        streams = re.findall(visitor_streams("bounded", addrs[0]), srv.stderr_text())
        t.check_eq(len(streams), 2, "streams of the evicted visitor that came back")
        # The survivors still have their flows and answers.
        for i in (3, 4):
            msg = b"visitor %d again" % i
            t.check_eq(t.udp_exchange(socks[i], port, msg, ignore=[b"visitor %d of 5" % i]),
                       msg, "answer to visitor %d on its old flow" % i)
            streams = re.findall(visitor_streams("bounded", addrs[i]), srv.stderr_text())
            t.check_eq(len(streams), 1, "streams of visitor %d (its flow was kept)" % i)
    finally:
        for s in socks:
            s.close()


def session_end(env, srv, cl, ports):
    before = len(re.findall(r"flow \S+ ended", srv.stderr_text()))
    cl.stop(signal.SIGTERM)
    t.check(not cl.alive(), "mgrok still runs after SIGTERM")
    for p in ports:
        t.wait_for(lambda: t.udp_port_free(p), timeout=10,
                   what="UDP port %d to be free after the session ended" % p)
    t.log("public UDP ports %s free after the session ended" % (ports,))
    # The flows still open (bounded: visitors 0, 3, 4) ended with the session.
    after = len(re.findall(r"flow \S+ ended", srv.stderr_text()))
    t.check(after - before >= MAX_FLOWS, "mgrokd did not end the flows of the session",
            ended_before=before, ended_after=after)
    t.check(srv.alive(), "mgrokd died after the session ended")


def main(env):
    lo = env.udp_ports(4)
    srv = env.start_server(token=TOKEN, allow=(lo, lo + 3), extra=("-v",))
    echo = env.udp_echo_service()
    conf = env.client_config(srv, [
        {"name": "short", "type": "udp", "local": "127.0.0.1:%d" % echo.port,
         "options": {"idle_timeout": IDLE}},
        {"name": "bounded", "type": "udp", "local": "127.0.0.1:%d" % echo.port,
         "options": {"idle_timeout": LONG_IDLE, "max_flows": MAX_FLOWS}},
    ], token=TOKEN)
    cl = env.start_client(None, None, token=None, config=conf, lines=2, cname="mgrok-udp",
                          extra=("-v",))
    ports = {}
    log = srv.stderr_text()
    for name in ("short", "bounded"):
        m = re.search(r"proxy %s: udp://127\.0\.0\.1:(\d+)" % name, log)
        t.check(m, "mgrokd did not log the public address of proxy %s" % name)
        ports[name] = int(m.group(1))
    t.check_eq(sorted(p for _, _, p, _ in cl.public_lines()), sorted(ports.values()),
               "public lines of mgrok")
    idle_flow(env, srv, cl, ports["short"])
    bounded_flows(env, srv, cl, ports["bounded"])
    session_end(env, srv, cl, sorted(ports.values()))
    env.check_services()


t.run(main)
