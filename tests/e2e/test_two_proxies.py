#!/usr/bin/env python3
"""One client, a JSON config with two proxies on one session, each reaching
its own service; and the quick form's default proxy name."""
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mgroktest as t

TOKEN = "two-proxies-token"


def client_config(env, server_port, proxies, name="mgrok.json"):
    return env.write_file(name, json.dumps({
        "server": "127.0.0.1:%d" % server_port,
        "auth": {"method": "token", "token": TOKEN},
        "proxies": proxies,
    }, indent=2) + "\n")


def two_proxies(env, srv):
    svc_a = env.service(t.prefix_handler(b"A:"), name="service-A")
    svc_b = env.service(t.prefix_handler(b"B:"), name="service-B")
    fixed = srv.allow[0]
    conf = client_config(env, srv.port, [
        {"name": "alpha", "type": "tcp", "local": "127.0.0.1:%d" % svc_a.port,
         "remote_port": fixed},
        {"name": "beta", "type": "tcp", "local": "127.0.0.1:%d" % svc_b.port},
    ])
    cl = env.start_client(None, None, token=None, config=conf, lines=2, cname="mgrok-two")
    lines = cl.public_lines()
    t.check_eq(len(lines), 2, "public address lines of a client with two proxies",
               lines=lines)
    by_local = {local: port for _, _, port, local in lines}
    port_a = by_local.get("127.0.0.1:%d" % svc_a.port)
    port_b = by_local.get("127.0.0.1:%d" % svc_b.port)
    t.check(port_a and port_b, "a line per proxy, naming its local address", lines=lines)
    t.check_eq(port_a, fixed, "alpha's public port (asked for)")
    t.check(port_b != port_a and srv.allow[0] <= port_b <= srv.allow[1],
            "beta's public port (server's choice) is another allowed port", port=port_b,
            allow=srv.allow)

    for i in range(3):
        msg = ("hello %d\n" % i).encode()
        t.check_eq(t.roundtrip(port_a, msg), b"A:" + msg, "reply through alpha")
        t.check_eq(t.roundtrip(port_b, msg), b"B:" + msg, "reply through beta")
    big = t.payload(3, 500000)
    t.check(t.roundtrip(port_b, big) == b"B:" + big, "500 kB through beta")
    t.check(t.roundtrip(port_a, big) == b"A:" + big, "500 kB through alpha")

    # Both proxies were registered on one session.
    log = srv.stderr_text()
    sessions = {name: set(re.findall(r"session (\d+) proxy %s: tcp://" % name, log))
                for name in ("alpha", "beta")}
    t.check(len(sessions["alpha"]) == 1 and sessions["alpha"] == sessions["beta"],
            "alpha and beta were not registered on one session", sessions=sessions)
    t.log("two proxies on session %s: ports %d and %d" % (sessions["alpha"], port_a, port_b))
    return cl


def default_name(env, srv):
    echo = env.echo_service()
    cl = env.start_client(echo.port, srv, token=TOKEN, cname="mgrok-quick")
    t.echo_check(cl.public_port)
    name = "tcp-%d" % echo.port
    log = srv.stderr_text()
    t.check(re.search(r"proxy %s: tcp://127\.0\.0\.1:%d\b" % (name, cl.public_port), log),
            "the quick form's proxy is not named %s in mgrokd's log" % name,
            log_tail=log[-800:])

    # --name overrides it.
    named = env.start_client(echo.port, srv, token=TOKEN, name="my.echo_1",
                             cname="mgrok-named")
    t.echo_check(named.public_port)
    t.check(re.search(r"proxy my\.echo_1: tcp://", srv.stderr_text()),
            "the proxy is not named my.echo_1 in mgrokd's log")

    # The default name clashes with the same name in a config file.
    conf = client_config(env, srv.port, [
        {"name": name, "type": "tcp", "local": "127.0.0.1:%d" % echo.port}], "clash.json")
    code, out, err = env.run_program(
        [t.MGROK, "--plugin-dir", t.PLUGIN_DIR, "-c", conf, "tcp", str(echo.port)])
    t.check_eq(code, 2, "exit code of a quick-form proxy whose default name is in the config",
               stderr=err)
    t.check(name in err, "the clash does not name %s" % name, stderr=err)
    t.log("quick form default name %s ok" % name)


def main(env):
    srv = env.start_server(token=TOKEN, nports=6)
    two = two_proxies(env, srv)
    default_name(env, srv)
    for p in env.procs:
        t.check(p.alive(), "%s died" % p.name)
    t.check_eq(len(two.public_lines()), 2, "lines of the two-proxy client at the end")
    env.check_services()


t.run(main)
