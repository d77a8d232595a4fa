#!/usr/bin/env python3
"""The admin endpoint against the real Prometheus tools: `promtool check
metrics` finds nothing to say about the /metrics of mgrokd and of mgrok
(after traffic through a proxy), and a real prometheus scraping mgrokd every
second with a bearer token stores mgrok_transmit_bytes_total equal to the
bytes that crossed the tunnel, with up == 1.

Skipped (exit code 77) only when /usr/bin/prometheus or /usr/bin/promtool
is missing (bootstrap installs both)."""
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

PROMETHEUS = "/usr/bin/prometheus"
PROMTOOL = "/usr/bin/promtool"

missing = [p for p in (PROMETHEUS, PROMTOOL) if not os.access(p, os.X_OK)]
if missing:
    print("SKIP: %s missing (bootstrap installs the prometheus package)" % " and ".join(missing),
          flush=True)
    sys.exit(77)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mgroktest as t

A = t.admin

TOKEN = "prom-tunnel-Token-4e81c07b2d9a5f36"
ADMIN_TOKEN = "prom-admin-Token-a37f0c5e19b2d648"
PROXY = "prom-web"
JOB = "mgrokd-admin"
PARTS = (876543, 12345, 1)  # N = 888,889 bytes over 3 connections
N = sum(PARTS)


def promtool_check(env, text, what):
    """promtool check metrics on text: (exit code, everything it printed)."""
    path = env.write_file("promtool-input.txt", text)
    t.log("run: %s check metrics < %s (%s)" % (PROMTOOL, path, what))
    try:
        with open(path, "rb") as f:
            p = subprocess.run([PROMTOOL, "check", "metrics"], stdin=f, capture_output=True,
                               timeout=t.DEADLINE)
    except subprocess.TimeoutExpired:
        raise t.TestFailure("promtool check metrics did not exit within %.0f s" % t.DEADLINE)
    return p.returncode, (p.stdout + p.stderr).decode("utf-8", "replace")


def http_json(url, what):
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return json.loads(r.read().decode("utf-8"))
    except (urllib.error.URLError, ConnectionError, OSError, ValueError) as e:
        raise t.TestFailure("%s: %s failed: %s" % (what, url, e))


def query(base, promql):
    url = "%s/api/v1/query?%s" % (base, urllib.parse.urlencode({"query": promql}))
    obj = http_json(url, "query %s" % promql)
    t.check(obj.get("status") == "success" and obj.get("data", {}).get("resultType") == "vector",
            "prometheus did not answer the query %s with a vector" % promql, answer=obj)
    return obj["data"]["result"]


def targets_report(base):
    try:
        obj = http_json("%s/api/v1/targets" % base, "targets")
        return [(x.get("scrapeUrl"), x.get("health"), x.get("lastError"))
                for x in obj.get("data", {}).get("activeTargets", [])]
    except t.TestFailure as e:
        return str(e)


def main(env):
    echo = env.echo_service()
    ctrl, lo, sadmin, cadmin, prom_port = (env.ports.take() for _ in range(5))
    srv_conf = t.write_json(env, "mgrokd-prom.json", {
        "listen": "127.0.0.1:%d" % ctrl,
        "auth": {"method": "token", "token": TOKEN},
        "allow_ports": ["%d" % lo],
        "admin": {"listen": "127.0.0.1:%d" % sadmin, "token": ADMIN_TOKEN}})
    srv = env.start_server(token=None, config=srv_conf, name="mgrokd-prom")
    srv.port, srv.allow = ctrl, (lo, lo)
    cl_conf = env.client_config(srv, [{"name": PROXY, "type": "tcp",
                                       "local": "127.0.0.1:%d" % echo.port, "remote_port": lo}],
                                token=TOKEN, name="mgrok-prom.json",
                                admin={"listen": "127.0.0.1:%d" % cadmin})
    cl = env.start_client(None, None, token=None, config=cl_conf, cname="mgrok-prom")
    t.check_eq(cl.public_port, lo, "public port")
    for i, size in enumerate(PARTS):
        A.echo_exact(lo, t.payload(70 + i, size))
    for direction in ("in", "out"):
        A.wait_counter(sadmin, ADMIN_TOKEN, "mgrok_transmit_bytes_total", N,
                       {"proxy": PROXY, "direction": direction})
        A.wait_counter(cadmin, None, "mgrok_transmit_bytes_total", N,
                       {"proxy": PROXY, "direction": direction})

    # promtool: first that it does complain about a bad exposition, then
    # that it has nothing to say about ours.
    code, out = promtool_check(env, "no_help_counter 1\n", "a known-bad sample")
    t.check(code != 0 and out.strip(), "promtool check metrics found nothing wrong with a "
            "metric without HELP: it cannot be trusted here", code=code, output=out)
    for port, token, who in ((sadmin, ADMIN_TOKEN, "mgrokd"), (cadmin, None, "mgrok")):
        msg = A.request(port, "GET", "/metrics", token)
        t.check_eq(msg.status, 200, "GET /metrics on %s" % who)
        code, out = promtool_check(env, msg.body.decode("utf-8"), who)
        t.check_eq((code, out.strip()), (0, ""), "promtool check metrics on %s's /metrics "
                   "(exit code, output)" % who)
        t.log("promtool check metrics: %s's /metrics is clean" % who)

    # A real prometheus, scraping mgrokd every second with the token.
    data = os.path.join(env.dir, "prometheus-data")
    os.makedirs(data)
    conf = env.write_file("prometheus.yml", "\n".join([
        "global:",
        "  scrape_interval: 1s",
        "  scrape_timeout: 1s",
        "  evaluation_interval: 1s",
        "scrape_configs:",
        "  - job_name: %s" % JOB,
        "    scrape_interval: 1s",
        "    scrape_timeout: 1s",
        "    metrics_path: /metrics",
        "    authorization:",
        "      credentials: %s" % ADMIN_TOKEN,
        "    static_configs:",
        "      - targets: ['127.0.0.1:%d']" % sadmin,
        ""]))
    prom = env.spawn("prometheus", [PROMETHEUS, "--config.file", conf,
                                    "--storage.tsdb.path", data,
                                    "--web.listen-address", "127.0.0.1:%d" % prom_port,
                                    "--log.level", "warn"])
    base = "http://127.0.0.1:%d" % prom_port
    try:
        def ready():
            t.check(prom.alive(), "prometheus exited (code %s)" % prom.returncode)
            try:
                with urllib.request.urlopen(base + "/-/ready", timeout=5) as r:
                    return r.status == 200
            except (urllib.error.URLError, ConnectionError, OSError):
                return False
        t.wait_for(ready, 60, "prometheus to be ready", interval=0.2)

        promql = 'mgrok_transmit_bytes_total{job="%s",proxy="%s",direction="in"}' % (JOB, PROXY)
        last = [None]

        def stored():
            res = query(base, promql)
            last[0] = res
            return res if res and float(res[0]["value"][1]) == N else None
        try:
            res = t.wait_for(stored, 60, "prometheus to store %s == %d" % (promql, N),
                             interval=0.5)
        except t.TestFailure as e:
            raise t.TestFailure("%s; last answer: %s; targets: %s"
                                % (e, last[0], targets_report(base))) from None
        t.check_eq(len(res), 1, "series of %s in prometheus" % promql, result=res)
        labels = res[0]["metric"]
        t.check_eq((labels.get("type"), labels.get("instance")),
                   ("tcp", "127.0.0.1:%d" % sadmin), "labels of the stored series",
                   labels=labels)
        t.log("prometheus: %s = %s" % (promql, res[0]["value"][1]))
        out_q = promql.replace('direction="in"', 'direction="out"')
        res = query(base, out_q)
        t.check(len(res) == 1 and float(res[0]["value"][1]) == N,
                "prometheus: %s is not %d" % (out_q, N), result=res)
        up = query(base, 'up{job="%s"}' % JOB)
        t.check(len(up) == 1 and float(up[0]["value"][1]) == 1,
                "prometheus: up{job=\"%s\"} is not 1" % JOB, result=up,
                targets=targets_report(base))
    finally:
        prom.stop(timeout=10)

    for p in (cl, srv):
        t.check_eq(p.stop(), 0, "exit code of %s on SIGTERM" % p.name)
    t.check_no_secrets(env, [TOKEN, ADMIN_TOKEN])
    env.check_services()


t.run(main)
