#!/usr/bin/env python3
"""The admin endpoint of both programs ("admin" in mgrokd.json and
mgrok.json, --admin-listen): Prometheus metrics that count exactly what
crossed each proxy (both ways, TCP and UDP, across a reconnect of the
client), handshakes ok and denied, reloads; the sessions API of both
programs (identity, client id, remote, proxies and their public addresses,
bytes per session and per proxy); kicking a session with DELETE and banning
its client id for a while; the bearer token (token and token_file);
bad requests (garbage, unknown path, wrong method, a head too large, a body
too large), keep-alive and pipelining, the limit of 64 connections, idle
connections closed; `mgrokd status` and `mgrok status` (table and --json,
exit 1 when the endpoint cannot be reached or refuses); config errors
naming the key. No token appears in any output.

Sub-cases go on after one fails (each is reported by name); they share
one mgrokd and its clients, in order."""
import json
import os
import re
import signal
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mgroktest as t

A = t.admin

TOKEN = "admin-tunnel-Token-5c1e9a70b3d4f286"
ADMIN_TOKEN = "admin-Bearer-Token-93b0d7e41a6c2f58"
CLIENT_ADMIN_TOKEN = "client-admin-Token-2f7a64c1e09d3b85"
WRONG = "admin-Wrong-Token-e6b1f03a9d27c485"
CONFIG_SECRET = "admin-Config-Secret-7d20c5b8e1f94a36"
SECRETS = [TOKEN, ADMIN_TOKEN, CLIENT_ADMIN_TOKEN, WRONG, CONFIG_SECRET]

WEB = "web-admin"
DNS = "dns-admin"
QUICK = "quick-web"
N_PARTS = (1000003, 234001, 563)  # N = 1,234,567 bytes over 3 connections
N = sum(N_PARTS)
M_PARTS = (300007, 45672)  # M = 345,679 bytes over 2 more, after a reconnect
M = sum(M_PARTS)
UDP_SIZES = (1, 1400, 9000, 0, 777, 31337)
BAN = 4  # seconds

TRANSMIT = "mgrok_transmit_bytes_total"

# Families of both programs, and of the server only (spec: GET /metrics).
FAMILIES = {
    "mgrok_build_info": "gauge", "mgrok_sessions": "gauge", "mgrok_proxies": "gauge",
    "mgrok_streams": "gauge", "mgrok_streams_total": "counter", TRANSMIT: "counter",
    "mgrok_udp_datagrams_dropped_total": "counter", "mgrok_session_queue_bytes": "gauge",
    "mgrok_reloads_total": "counter", "process_open_fds": "gauge", "process_max_fds": "gauge",
    "process_resident_memory_bytes": "gauge", "process_virtual_memory_bytes": "gauge",
    "process_cpu_seconds_total": "counter", "process_start_time_seconds": "gauge",
}
SERVER_FAMILIES = dict(FAMILIES, mgrok_sessions_pending="gauge",
                       mgrok_handshakes_total="counter", mgrok_rate_limited_total="counter")


class Setup:
    pass


def version_of(env):
    code, out, err = env.run_program([t.MGROKD, "--version"])
    t.check_eq(code, 0, "exit code of mgrokd --version", stderr=err)
    m = re.match(r"mgrokd (\d+\.\d+\.\d+\S*)", out)
    t.check(m, "mgrokd --version does not print a version", stdout=out)
    return m.group(1)


def server_log_sessions(s):
    """{session id: (peer, identity)} from mgrokd's "authenticated as" lines,
    and {session id: (client id, info text)} from its HELLO lines."""
    log = s.srv.stderr_text()
    auth = {int(i): (peer, ident) for i, peer, ident in
            re.findall(r"session (\d+): (\S+) authenticated as '([^']*)'", log)}
    hello = {int(i): (cid, info) for i, cid, info in
             re.findall(r"session (\d+): client (\S+), (.*)$", log, re.M)}
    return auth, hello


def session_with_proxy(sessions, name, what):
    found = [x for x in sessions if any(p.get("name") == name for p in x.get("proxies") or [])]
    t.check_eq(len(found), 1, "sessions with proxy %s in %s" % (name, what), sessions=sessions)
    return found[0]


def one_proxy(session, name, what):
    pxs = [p for p in session.get("proxies") or [] if p.get("name") == name]
    t.check_eq(len(pxs), 1, "proxies named %s in %s" % (name, what), session=session)
    return pxs[0]


def check_fields(obj, want, what):
    """Every key of want is in obj with exactly that value."""
    for k, v in want.items():
        t.check(k in obj, "%s has no \"%s\"" % (what, k), obj=obj)
        t.check(obj[k] == v and type(obj[k]) == type(v),
                "%s: \"%s\" is %r, expected %r" % (what, k, obj[k], v), obj=obj)


def check_int(obj, key, what):
    t.check(isinstance(obj.get(key), int) and not isinstance(obj.get(key), bool)
            and obj[key] >= 0, "%s: \"%s\" is not a count" % (what, key), obj=obj)


def without(obj, *keys):
    return {k: v for k, v in obj.items() if k not in keys}


def check_families(env, m, families, what):
    """Recorded as a sub-case of its own: the checks after it still run."""
    with env.case("%s: HELP and TYPE of every family" % what):
        check_families_now(m, families, what)


def check_families_now(m, families, what):
    bad = ["%s: TYPE %s, HELP %s (expected TYPE %s and a HELP)"
           % (name, m.types.get(name), "yes" if m.helps.get(name) else "none", typ)
           for name, typ in sorted(families.items())
           if m.types.get(name) != typ or not m.helps.get(name)]
    t.check(not bad, "%s: families missing or of the wrong type:\n      %s"
            % (what, "\n      ".join(bad)))


def move(s, port, sizes, seed):
    """Echoes payloads of these sizes through port, one connection each."""
    for i, size in enumerate(sizes):
        A.echo_exact(port, t.payload(seed + i, size))
    t.log("moved %d bytes both ways over %d connection(s) on port %d"
          % (sum(sizes), len(sizes), port))


def echo_small(s, data):
    """An echo through WEB on the current session of mgrok, counted."""
    A.echo_exact(s.lo, data)
    s.web_total += len(data)
    s.web_session += len(data)
    s.web_client += len(data)


def counter_is(port, token, want, what, **labels):
    A.wait_counter(port, token, TRANSMIT if "direction" in labels else "mgrok_streams_total",
                   want, labels, what)


def gauge_becomes(port, token, name, want, labels, what):
    def ok():
        return A.metrics(port, token).value_or(name, None, **labels) == want
    try:
        t.wait_for(ok, 20, what, interval=0.1)
    except t.TestFailure:
        got = A.metrics(port, token).value_or(name, None, **labels)
        raise t.TestFailure("%s: %s%s is %s, expected %s" % (what, name, A.fmt_labels(labels),
                                                             got, want))


# ---- the cases -------------------------------------------------------------------------


def metrics_exactness(env, s):
    s.t_connect = time.time()
    s.cl = env.start_client(None, None, token=None, config=s.client_conf, cname="mgrok-admin")
    scheme, host, port, local = s.cl.public_lines()[0]
    t.check_eq((scheme, port, local), ("tcp", s.lo, "127.0.0.1:%d" % s.echo.port),
               "mgrok's public address line")
    s.public = "tcp://%s:%d" % (host, port)
    A.wait_up(s.cadmin, CLIENT_ADMIN_TOKEN, "mgrok's admin endpoint")
    move(s, s.lo, N_PARTS, 100)

    auth, _ = server_log_sessions(s)
    t.check(auth, "mgrokd logged no authenticated session")
    s.identity = list(auth.values())[-1][1]
    for direction in ("in", "out"):
        counter_is(s.sadmin, ADMIN_TOKEN, N, "mgrokd: bytes %s of %s" % (direction, WEB),
                   proxy=WEB, direction=direction)
        counter_is(s.cadmin, CLIENT_ADMIN_TOKEN, N, "mgrok: bytes %s of %s" % (direction, WEB),
                   proxy=WEB, direction=direction)
    counter_is(s.sadmin, ADMIN_TOKEN, len(N_PARTS), "mgrokd: streams of %s" % WEB, proxy=WEB)
    counter_is(s.cadmin, CLIENT_ADMIN_TOKEN, len(N_PARTS), "mgrok: streams of %s" % WEB,
               proxy=WEB)
    gauge_becomes(s.sadmin, ADMIN_TOKEN, "mgrok_streams", 0, {"proxy": WEB},
                  "mgrokd: open streams of %s once the visitors are done" % WEB)

    m = A.metrics(s.sadmin, ADMIN_TOKEN, "mgrokd's /metrics")
    check_families(env, m, SERVER_FAMILIES, "mgrokd's /metrics")
    for direction in ("in", "out"):
        t.check_eq(m.value(TRANSMIT, proxy=WEB, type="tcp", user=s.identity,
                           direction=direction), N,
                   "mgrokd: %s{proxy=%s,type=tcp,user=%s,direction=%s}"
                   % (TRANSMIT, WEB, s.identity, direction))
    t.check_eq(sorted(l["direction"] for l, _ in m.find(TRANSMIT, proxy=WEB)), ["in", "out"],
               "mgrokd: the directions of %s" % WEB)
    t.check_eq(m.value("mgrok_sessions"), 1, "mgrokd: mgrok_sessions")
    t.check_eq(m.value("mgrok_sessions_pending"), 0, "mgrokd: mgrok_sessions_pending")
    t.check_eq(m.value("mgrok_proxies", type="tcp"), 1, "mgrokd: mgrok_proxies{type=tcp}")
    t.check_eq(m.value("mgrok_build_info", role="server", version=s.version), 1,
               "mgrokd: mgrok_build_info{role=server,version=%s}" % s.version)
    t.check(m.value("mgrok_handshakes_total", method="token", result="ok") >= 1,
            "mgrokd: mgrok_handshakes_total{method=token,result=ok} is not at least 1")
    check_process(m, "mgrokd")

    m = A.metrics(s.cadmin, CLIENT_ADMIN_TOKEN, "mgrok's /metrics")
    check_families(env, m, FAMILIES, "mgrok's /metrics")
    for direction in ("in", "out"):
        t.check_eq(m.value(TRANSMIT, proxy=WEB, type="tcp", user="", direction=direction), N,
                   "mgrok: %s{proxy=%s,type=tcp,user=\"\",direction=%s}"
                   % (TRANSMIT, WEB, direction))
    t.check_eq(m.value("mgrok_sessions"), 1, "mgrok: mgrok_sessions (connected)")
    t.check_eq(m.value("mgrok_proxies", type="tcp"), 1, "mgrok: mgrok_proxies{type=tcp}")
    t.check_eq(m.value("mgrok_streams", proxy=WEB), 0, "mgrok: mgrok_streams{proxy=%s}" % WEB)
    t.check_eq(m.value("mgrok_build_info", role="client", version=s.version), 1,
               "mgrok: mgrok_build_info{role=client,version=%s}" % s.version)
    for name in ("mgrok_sessions_pending", "mgrok_handshakes_total", "mgrok_rate_limited_total"):
        t.check_eq(m.find(name), [], "mgrok: samples of the server-only %s" % name)
    check_process(m, "mgrok")


def check_process(m, what):
    fds, max_fds = m.value("process_open_fds"), m.value("process_max_fds")
    t.check(0 < fds <= max_fds, "%s: process_open_fds %s, process_max_fds %s" %
            (what, fds, max_fds))
    t.check(m.value("process_resident_memory_bytes") > 0, "%s: no resident memory" % what)
    t.check(m.value("process_virtual_memory_bytes") >= m.value("process_resident_memory_bytes"),
            "%s: virtual memory below resident memory" % what)
    t.check(m.value("process_cpu_seconds_total") >= 0, "%s: negative cpu seconds" % what)
    start = m.value("process_start_time_seconds")
    t.check(1e9 < start <= time.time() + 5, "%s: process_start_time_seconds %s is not a unix "
            "time of the past" % (what, start))


def counter_across_reconnect(env, s):
    t.check_eq(s.cl.stop(), 0, "exit code of mgrok on SIGTERM")
    gauge_becomes(s.sadmin, ADMIN_TOKEN, "mgrok_sessions", 0, {},
                  "mgrokd: no session once mgrok is gone")
    gauge_becomes(s.sadmin, ADMIN_TOKEN, "mgrok_proxies", 0, {"type": "tcp"},
                  "mgrokd: no tcp proxy once mgrok is gone")
    t.check_eq(A.sessions(s.sadmin, ADMIN_TOKEN), [], "mgrokd's sessions once mgrok is gone")
    m = A.metrics(s.sadmin, ADMIN_TOKEN)
    t.check_eq(m.value(TRANSMIT, proxy=WEB, direction="in"), N,
               "mgrokd: bytes in of %s while no client has it" % WEB)
    s.t_connect = time.time()
    s.cl = env.start_client(None, None, token=None, config=s.client_conf, cname="mgrok-admin")
    t.check_eq(s.cl.public_port, s.lo, "public port after the restart of mgrok")
    A.wait_up(s.cadmin, CLIENT_ADMIN_TOKEN, "the restarted mgrok's admin endpoint")
    move(s, s.lo, M_PARTS, 200)
    for direction in ("in", "out"):
        counter_is(s.sadmin, ADMIN_TOKEN, N + M, "mgrokd: bytes %s of %s across the reconnect"
                   % (direction, WEB), proxy=WEB, direction=direction)
        counter_is(s.cadmin, CLIENT_ADMIN_TOKEN, M, "the new mgrok: bytes %s of %s"
                   % (direction, WEB), proxy=WEB, direction=direction)
    counter_is(s.sadmin, ADMIN_TOKEN, len(N_PARTS) + len(M_PARTS),
               "mgrokd: streams of %s across the reconnect" % WEB, proxy=WEB)
    counter_is(s.cadmin, CLIENT_ADMIN_TOKEN, len(M_PARTS), "the new mgrok: streams of %s" % WEB,
               proxy=WEB)
    s.web_total, s.web_session, s.web_client = N + M, M, M
    m = A.metrics(s.sadmin, ADMIN_TOKEN)
    t.check_eq(len(m.find(TRANSMIT, proxy=WEB)), 2,
               "mgrokd: series of %s after the reconnect (one per direction)" % WEB,
               series=m.find(TRANSMIT, proxy=WEB))
    t.check_eq(m.value("mgrok_sessions"), 1, "mgrokd: mgrok_sessions after the reconnect")


def handshake_denied(env, s):
    m = A.metrics(s.sadmin, ADMIN_TOKEN)
    denied = m.value_or("mgrok_handshakes_total", 0, method="token", result="denied")
    ok = m.value("mgrok_handshakes_total", method="token", result="ok")
    bad = env.start_client(s.echo.port, s.srv, token=WRONG, lines=0, cname="mgrok-wrong")
    code = bad.wait_exit()
    err = bad.stderr_text()
    t.check_eq(code, 1, "exit code of mgrok with a wrong token", stderr=err[-600:])
    t.check("authentication failed" in err, "no \"authentication failed\" from mgrok with a "
            "wrong token", stderr=err[-600:])
    m = A.wait_counter(s.sadmin, ADMIN_TOKEN, "mgrok_handshakes_total", denied + 1,
                       {"method": "token", "result": "denied"},
                       "mgrokd: handshakes_total{method=token,result=denied} after a wrong token")
    t.check_eq(m.value("mgrok_handshakes_total", method="token", result="ok"), ok,
               "mgrokd: handshakes_total{method=token,result=ok} after a wrong token")
    # Not even a handshake (no method chosen): failed, method "".
    failed = m.value_or("mgrok_handshakes_total", 0, method="", result="failed")
    sock = socket.create_connection(("127.0.0.1", s.ctrl), timeout=20)
    try:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            rest = t.recv_all(sock)
        except ConnectionResetError:
            rest = b""
    finally:
        sock.close()
    t.check_eq(rest, b"", "mgrokd's answer to HTTP on its control port")
    A.wait_counter(s.sadmin, ADMIN_TOKEN, "mgrok_handshakes_total", failed + 1,
                   {"method": "", "result": "failed"},
                   "mgrokd: handshakes_total{method=\"\",result=failed} after HTTP on the "
                   "control port")


def udp(env, s):
    port = s.lo + 1
    s.ucl = env.start_client(s.udp_echo.port, s.srv, token=TOKEN, remote_port=port, name=DNS,
                             proto="udp", cname="mgrok-udp",
                             extra=("--admin-listen", "127.0.0.1:%d" % s.uadmin))
    scheme, host, got_port, _ = s.ucl.public_lines()[0]
    t.check_eq((scheme, got_port), ("udp", port), "public address of the udp proxy")
    s.udp_public = "udp://%s:%d" % (host, port)
    A.wait_up(s.uadmin, None, "the udp mgrok's admin endpoint (--admin-listen)")
    sock = t.udp_socket()
    sent = []
    try:
        for i, size in enumerate(UDP_SIZES):
            data = t.payload(300 + i, size)
            got = t.udp_exchange(sock, port, data, tries=1, wait=20, ignore=sent)
            t.check(got == data, "a %d-byte datagram did not come back as sent" % size,
                    got_len=len(got))
            sent.append(data)
    finally:
        sock.close()
    s.udp_bytes = sum(UDP_SIZES)
    t.check_eq(s.udp_echo.received, len(UDP_SIZES), "datagrams the udp echo service got")
    for port_, token, who in ((s.sadmin, ADMIN_TOKEN, "mgrokd"), (s.uadmin, None, "mgrok udp")):
        for direction in ("in", "out"):
            counter_is(port_, token, s.udp_bytes, "%s: datagram bytes %s of %s"
                       % (who, direction, DNS), proxy=DNS, direction=direction)
        counter_is(port_, token, 1, "%s: streams of %s (one visitor address)" % (who, DNS),
                   proxy=DNS)
        m = A.metrics(port_, token)
        t.check_eq(m.value("mgrok_udp_datagrams_dropped_total", proxy=DNS), 0,
                   "%s: mgrok_udp_datagrams_dropped_total{proxy=%s}" % (who, DNS))
        t.check_eq([l["type"] for l, _ in m.find(TRANSMIT, proxy=DNS)], ["udp", "udp"],
                   "%s: the type label of %s's two series" % (who, DNS))
        t.check_eq(m.value("mgrok_proxies", type="udp"), 1, "%s: mgrok_proxies{type=udp}" % who)
    m = A.metrics(s.sadmin, ADMIN_TOKEN)
    t.check_eq(m.value("mgrok_proxies", type="tcp"), 1, "mgrokd: mgrok_proxies{type=tcp}")
    t.check_eq(m.value("mgrok_sessions"), 2, "mgrokd: mgrok_sessions with two clients")


def server_sessions(env, s):
    lst = A.sessions(s.sadmin, ADMIN_TOKEN)
    t.check_eq(len(lst), 2, "sessions listed by mgrokd", sessions=lst)
    web = session_with_proxy(lst, WEB, "mgrokd's sessions")
    what = "mgrokd's session of %s" % WEB
    auth, hello = server_log_sessions(s)
    t.check(isinstance(web.get("id"), int) and web["id"] in auth,
            "%s: \"id\" is not a session mgrokd logged" % what, session=web,
            logged=sorted(auth))
    peer, identity = auth[web["id"]]
    t.check(web["id"] in hello, "%s: mgrokd logged no HELLO for it" % what, session=web)
    cid = hello[web["id"]][0]
    check_fields(web, {"identity": identity, "method": "token", "client_id": cid,
                       "remote": peer, "version": s.version,
                       "state": "open", "streams": 0, "bytes_in": s.web_session,
                       "bytes_out": s.web_session}, what)
    t.check_eq(web["info"], {"version": s.version}, "%s: info (mgrok's HELLO)" % what)
    t.check(re.fullmatch(r"127\.0\.0\.1:\d+", web["remote"]), "%s: remote" % what,
            remote=web["remote"])
    ca = web.get("connected_at")
    t.check(isinstance(ca, (int, float)) and s.t_connect - 2 <= ca <= time.time() + 2,
            "%s: connected_at %r is not the unix time mgrok connected (~%.1f)" %
            (what, ca, s.t_connect))
    check_int(web, "queue_bytes", what)
    t.check_eq(len(web["proxies"]), 1, "%s: proxies" % what, proxies=web["proxies"])
    check_fields(web["proxies"][0], {"name": WEB, "type": "tcp", "public_address": s.public,
                                     "streams": 0, "bytes_in": s.web_total,
                                     "bytes_out": s.web_total}, what + ", proxy " + WEB)
    s.client_id = cid

    u = session_with_proxy(lst, DNS, "mgrokd's sessions")
    t.check(u["id"] != web["id"] and u["client_id"] != cid, "the udp client's session is not "
            "its own", sessions=lst)
    check_fields(u, {"bytes_in": s.udp_bytes, "bytes_out": s.udp_bytes, "state": "open"},
                 "mgrokd's session of %s" % DNS)
    check_fields(one_proxy(u, DNS, "the udp session"),
                 {"type": "udp", "public_address": s.udp_public, "bytes_in": s.udp_bytes,
                  "bytes_out": s.udp_bytes}, "mgrokd's proxy %s" % DNS)

    one = A.get_json(s.sadmin, "/api/v1/sessions/%d" % web["id"], ADMIN_TOKEN)
    t.check_eq(without(one, "queue_bytes"), without(web, "queue_bytes"),
               "GET /api/v1/sessions/%d vs. its element of the list" % web["id"])
    check_int(one, "queue_bytes", "GET /api/v1/sessions/%d" % web["id"])
    unknown = max(x["id"] for x in lst) + 1000
    A.expect_error(A.request(s.sadmin, "GET", "/api/v1/sessions/%d" % unknown, ADMIN_TOKEN),
                   404, "GET /api/v1/sessions/%d (no such session)" % unknown)
    s.web_id = web["id"]


def client_endpoint(env, s):
    lst = A.sessions(s.cadmin, CLIENT_ADMIN_TOKEN)
    t.check_eq(len(lst), 1, "sessions listed by mgrok", sessions=lst)
    c = lst[0]
    what = "mgrok's session"
    check_fields(c, {"identity": None, "method": "token", "client_id": s.client_id,
                     "remote": "127.0.0.1:%d" % s.ctrl, "info": None, "version": s.version,
                     "state": "open", "streams": 0, "bytes_in": s.web_session,
                     "bytes_out": s.web_session}, what)
    t.check(isinstance(c.get("id"), int), "%s: no numeric id" % what, session=c)
    ca = c.get("connected_at")
    t.check(isinstance(ca, (int, float)) and s.t_connect - 2 <= ca <= time.time() + 2,
            "%s: connected_at %r is not when it connected (~%.1f)" % (what, ca, s.t_connect))
    check_int(c, "queue_bytes", what)
    t.check_eq(len(c.get("proxies") or []), 1, "%s: proxies" % what, session=c)
    check_fields(c["proxies"][0], {"name": WEB, "type": "tcp",
                                   "local": "127.0.0.1:%d" % s.echo.port,
                                   "public_address": s.public, "streams": 0,
                                   "bytes_in": s.web_client, "bytes_out": s.web_client},
                 what + ", proxy " + WEB)
    one = A.get_json(s.cadmin, "/api/v1/sessions/%d" % c["id"], CLIENT_ADMIN_TOKEN)
    t.check_eq(without(one, "queue_bytes"), without(c, "queue_bytes"),
               "mgrok: GET /api/v1/sessions/%d vs. the list" % c["id"])
    A.expect_error(A.request(s.cadmin, "GET", "/api/v1/sessions/%d" % (c["id"] + 1000),
                             CLIENT_ADMIN_TOKEN), 404, "mgrok: GET of an unknown session")

    before = s.cl.stderr_text().count("GO_AWAY")
    msg = A.request(s.cadmin, "DELETE", "/api/v1/sessions/%d" % c["id"], CLIENT_ADMIN_TOKEN)
    A.expect_error(msg, 405, "DELETE /api/v1/sessions/%d on mgrok" % c["id"])
    allow = msg.header("allow")
    t.check(allow and "GET" in allow and "DELETE" not in allow,
            "mgrok's 405 to DELETE: Allow should name GET and not DELETE", allow=allow)
    echo_small(s, b"still connected after a DELETE on mgrok\n")
    t.check_eq(s.cl.stderr_text().count("GO_AWAY"), before, "GO_AWAY lines of mgrok after a "
               "DELETE on its own endpoint")
    t.check_eq(A.sessions(s.cadmin, CLIENT_ADMIN_TOKEN)[0]["id"], c["id"],
               "mgrok's session after the refused DELETE")

    u = A.sessions(s.uadmin)
    t.check_eq(len(u), 1, "sessions listed by the udp mgrok", sessions=u)
    check_fields(one_proxy(u[0], DNS, "the udp mgrok's session"),
                 {"type": "udp", "local": "127.0.0.1:%d" % s.udp_echo.port,
                  "public_address": s.udp_public, "bytes_in": s.udp_bytes,
                  "bytes_out": s.udp_bytes}, "the udp mgrok's proxy")


def token(env, s):
    for port, right, what in ((s.sadmin, ADMIN_TOKEN, "mgrokd (admin.token)"),
                              (s.cadmin, CLIENT_ADMIN_TOKEN, "mgrok (admin.token_file)")):
        for path in ("/metrics", "/api/v1/sessions"):
            for fields, case in (([], "no Authorization"),
                                 ([("Authorization", "Bearer %s" % WRONG)], "a wrong token"),
                                 ([("Authorization", "Bearer %sx" % right)], "the token + x"),
                                 ([("Authorization", "Bearer")], "Bearer and no token"),
                                 ([("Authorization", "Basic %s" % right)], "the Basic scheme")):
                label = "%s: GET %s with %s" % (what, path, case)
                msg = A.request(port, "GET", path, None, fields)
                A.expect_error(msg, 401, label)
                t.check_eq(msg.header("www-authenticate"), 'Bearer realm="mgrok"',
                           "WWW-Authenticate of %s" % label)
            msg = A.request(port, "GET", path, right)
            t.check_eq(msg.status, 200, "%s: GET %s with the right token" % (what, path),
                       body=msg.body[:300])
    # No token: no header needed.
    t.check_eq(A.request(s.uadmin, "GET", "/api/v1/sessions").status, 200,
               "GET on an admin endpoint without a token")


def raw_http(port, data, timeout=20):
    """Sends data on a new connection; returns (first response or None,
    Reader)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.sendall(data)
    rd = t.Reader(sock)
    return t.read_response(rd), rd


def req(method, path, token=ADMIN_TOKEN, fields=(), body=b""):
    return t.request_bytes("127.0.0.1", path, method, A.auth_fields(token) + list(fields), body)


def bad_http(env, s):
    port = s.sadmin
    # Garbage: 400, and the connection is closed.
    msg, rd = raw_http(port, b"\x16\x03\x01\x02\x00\x01\xfc GARBAGE\x00\xff\r\n\r\n")
    try:
        t.check(msg is not None, "no answer to garbage on the admin port")
        A.expect_error(msg, 400, "garbage on the admin port")
        t.check(t.closes(rd), "the connection that sent garbage stays open after the 400")
    finally:
        rd.sock.close()
    echo_small(s, t.payload(401, 70001))
    t.check_eq(A.metrics(port, ADMIN_TOKEN).value("mgrok_sessions"), 2,
               "mgrokd's metrics after the garbage")

    A.expect_error(A.request(port, "GET", "/no/such/path", ADMIN_TOKEN), 404, "GET /no/such/path")
    A.expect_error(A.request(port, "GET", "/api/v1/sessionsX", ADMIN_TOKEN), 404,
                   "GET /api/v1/sessionsX")
    for method, path in (("POST", "/metrics"), ("DELETE", "/metrics"),
                         ("PUT", "/api/v1/sessions"), ("POST", "/api/v1/sessions/%d" % s.web_id)):
        msg = A.request(port, method, path, ADMIN_TOKEN, body=b"{}" if method != "DELETE" else b"")
        A.expect_error(msg, 405, "%s %s" % (method, path))
        t.check(msg.header("allow") and "GET" in msg.header("allow"),
                "the 405 to %s %s has no Allow naming GET" % (method, path),
                allow=msg.header("allow"))

    # A head over 8 KiB: 431.
    msg = A.request(port, "GET", "/metrics", ADMIN_TOKEN, [("X-Filler", "f" * 9000)])
    A.expect_error(msg, 431, "a request with a 9000-byte header")

    # A body over 64 KiB: 413 (sent from a thread: the server may answer
    # before it has read it all).
    sock = socket.create_connection(("127.0.0.1", port), timeout=20)
    try:
        big = t.payload(402, 70000)

        def send():
            try:
                sock.sendall(req("GET", "/metrics", fields=[("Connection", "close")], body=big))
            except OSError:
                pass
        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        msg = t.read_response(t.Reader(sock))
        sender.join(20)
        t.check(msg is not None, "no answer to a request with a 70000-byte body")
        A.expect_error(msg, 413, "a request with a 70000-byte body")
    finally:
        sock.close()

    # Keep-alive: requests in a row on one connection, then two pipelined.
    sock = socket.create_connection(("127.0.0.1", port), timeout=20)
    rd = t.Reader(sock)
    try:
        for i, path in enumerate(("/api/v1/sessions", "/metrics", "/api/v1/sessions")):
            sock.sendall(req("GET", path))
            msg = t.read_response(rd)
            t.check(msg is not None, "the keep-alive connection closed before request %d"
                    % (i + 1))
            t.check_eq(msg.status, 200, "request %d on a keep-alive connection (%s)"
                       % (i + 1, path))
        sock.sendall(req("GET", "/api/v1/sessions") + req("GET", "/metrics"))
        first, second = t.read_response(rd), t.read_response(rd)
        t.check(first is not None and second is not None,
                "the keep-alive connection closed before answering two pipelined requests")
        t.check_eq((first.status, second.status), (200, 200), "two pipelined requests")
        t.check("sessions" in A.body_json(first, "the first pipelined answer"),
                "the first pipelined answer is not the sessions", body=first.body[:200])
        A.Metrics(second.body.decode("utf-8"), "the second pipelined answer (/metrics)")
        sock.sendall(req("GET", "/metrics", fields=[("Connection", "close")]))
        last = t.read_response(rd)
        t.check(last is not None and last.status == 200, "the request with Connection: close")
        t.check(t.closes(rd), "the connection stays open after Connection: close")
    finally:
        sock.close()


def connection_limit(env, s):
    """At most 64 admin connections at once: the newest is closed."""
    port = s.sadmin
    held = []
    try:
        for i in range(64):
            sock = socket.create_connection(("127.0.0.1", port), timeout=20)
            held.append(sock)
            sock.sendall(req("GET", "/api/v1/sessions/999999"))
            rd = t.Reader(sock)
            msg = t.read_response(rd)
            t.check(msg is not None, "admin connection %d of 64 was closed without an answer"
                    % (i + 1))
            t.check_eq(msg.status, 404, "GET /api/v1/sessions/999999 on admin connection %d"
                       % (i + 1))
        extra = socket.create_connection(("127.0.0.1", port), timeout=20)
        try:
            try:
                extra.sendall(req("GET", "/api/v1/sessions"))
                got = t.Reader(extra).rest()
            except (BrokenPipeError, ConnectionResetError):
                got = b""
            t.check_eq(got, b"", "bytes to a 65th admin connection (it must be closed)")
        finally:
            extra.close()
        # The 64 are still served.
        sock = held[0]
        sock.sendall(req("GET", "/api/v1/sessions/999999"))
        msg = t.read_response(t.Reader(sock))
        t.check(msg is not None and msg.status == 404, "the first of 64 admin connections after "
                "the 65th was closed")
    finally:
        for sock in held:
            sock.close()

    def served():
        try:
            return A.request(port, "GET", "/metrics", ADMIN_TOKEN, timeout=5).status == 200
        except (ConnectionResetError, BrokenPipeError, t.TestFailure):
            return False
    t.wait_for(served, 20, "the admin endpoint to take connections again once the 64 closed")


def idle_open(env, s):
    """Two admin connections that never send a whole request: one says
    nothing, one half a request head.  idle_closed checks, at the end, that
    mgrokd closed both (idle connections are closed after 10 s)."""
    s.idle = []
    for data in (b"", b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n"):
        sock = socket.create_connection(("127.0.0.1", s.sadmin), timeout=20)
        if data:
            sock.sendall(data)
        s.idle.append((sock, data, time.monotonic()))


def idle_closed(env, s):
    try:
        for sock, data, opened in s.idle:
            what = "an idle admin connection (%s)" % ("half a head" if data else "nothing sent")
            sock.settimeout(max(1.0, opened + 40 - time.monotonic()))
            try:
                got = t.recv_all(sock)
            except ConnectionResetError:
                got = b""
            except socket.timeout:
                raise t.TestFailure("%s is still open %.0f s after it was opened"
                                    % (what, time.monotonic() - opened))
            # A 408 or nothing: either way it must end.
            t.check(got == b"" or got.startswith(b"HTTP/1.1 408"),
                    "%s: closed with unexpected bytes" % what, got=got[:200])
    finally:
        for sock, _, _ in s.idle:
            sock.close()


SESSION_HEAD = ["SESSION", "IDENTITY", "CLIENT", "REMOTE", "SINCE", "STATE", "STREAMS", "IN", "OUT"]
PROXY_HEAD = ["PROXY", "TYPE", "PUBLIC", "STREAMS", "IN", "OUT"]
HUMAN = r"\d+(?:\.\d+)? ?(?:B|KiB|MiB|GiB)"


def check_status_rows(env, out, what, sessions):
    """The table: its header (the spec's columns, a sub-case of its own),
    every session's line (not indented, starting with its id, with its
    identity) and every proxy's indented line with its name, type and
    public address.  Returns the lines."""
    lines = [l for l in out.splitlines() if l.strip()]
    with env.case("%s: the table's header" % what):
        # Once, or once per session: either reads the spec.
        heads = [l.split() for l in lines if l.split()[:1] == ["SESSION"]]
        t.check(heads and all(h == SESSION_HEAD for h in heads), "%s: the header line(s) are "
                "not %s" % (what, " ".join(SESSION_HEAD)), headers=heads)
        for h in [l for l in lines if l[:1].isspace() and l.split()[:1] == ["PROXY"]]:
            t.check_eq(h.split(), PROXY_HEAD, "%s: the proxies' header line" % what)
    t.check(lines and lines[0].split()[:1] == ["SESSION"], "%s: the table does not begin with "
            "its header" % what, stdout=out)
    for x in sessions:
        rows = [l for l in lines if not l[:1].isspace() and l.split()[:1] == [str(x["id"])]]
        t.check_eq(len(rows), 1, "%s: lines of session %d" % (what, x["id"]), stdout=out)
        if x.get("identity"):
            t.check(x["identity"] in rows[0].split(), "%s: session %d's line lacks its identity "
                    "%r" % (what, x["id"], x["identity"]), line=rows[0])
        for p in x["proxies"]:
            plines = [l for l in lines if l[:1].isspace() and p["name"] in l.split()]
            t.check_eq(len(plines), 1, "%s: indented lines of proxy %s" % (what, p["name"]),
                       stdout=out)
            t.check(re.fullmatch(r"\s+%s\s+%s\s+%s\s+\d+\s+%s\s+%s\s*" % (
                re.escape(p["name"]), re.escape(p["type"]), re.escape(p["public_address"]),
                HUMAN, HUMAN), plines[0]), "%s: proxy %s's line is not: NAME %s %s STREAMS IN "
                "OUT (byte counts as N B, KiB, MiB or GiB)" % (what, p["name"], p["type"],
                                                              p["public_address"]),
                line=plines[0])
    return lines


def status(env, s):
    # A second mgrokd with --admin-listen on its command line and no token.
    ctrl2, pub2, admin2 = env.ports.take(), env.ports.take(), env.ports.take()
    srv2 = env.start_server(token=TOKEN, port=ctrl2, allow=(pub2, pub2), name="mgrokd-plain",
                            extra=("--admin-listen", "127.0.0.1:%d" % admin2))
    cl2 = env.start_client(s.echo.port, srv2, token=TOKEN, remote_port=pub2, name=QUICK,
                           cname="mgrok-plain")
    t.echo_check(pub2, b"through the second server\n")
    A.wait_up(admin2, None, "mgrokd --admin-listen")
    lst2 = A.sessions(admin2)
    t.check_eq([p["name"] for x in lst2 for p in x["proxies"]], [QUICK],
               "proxies of the second mgrokd", sessions=lst2)
    t.check_eq(lst2[0]["proxies"][0]["public_address"], "tcp://%s:%d" % cl2.public_lines()[0][1:3],
               "public address of %s" % QUICK)

    def run(prog, *args):
        return t.run_recorded(env, [prog, "status"] + list(args))

    code, out, err = run(t.MGROKD, "--admin-listen", "127.0.0.1:%d" % admin2)
    t.check_eq(code, 0, "exit code of mgrokd status --admin-listen", stderr=err, stdout=out)
    check_status_rows(env, out, "mgrokd status --admin-listen", lst2)

    lst = A.sessions(s.sadmin, ADMIN_TOKEN)
    code, out, err = run(t.MGROKD, "-c", s.srv_conf)
    t.check_eq(code, 0, "exit code of mgrokd status -c (admin.token)", stderr=err, stdout=out)
    lines = check_status_rows(env, out, "mgrokd status -c", lst)
    web_line = [l for l in lines if l[:1].isspace() and WEB in l.split()][0]
    t.check(re.search(r"\b\d+(\.\d+)? ?MiB\b", web_line), "mgrokd status: the bytes of %s "
            "(%d) are not shown in MiB" % (WEB, s.web_total), line=web_line)

    code, out, err = run(t.MGROKD, "-c", s.srv_conf, "--json")
    t.check_eq(code, 0, "exit code of mgrokd status --json", stderr=err)
    try:
        obj = json.loads(out)
    except ValueError as e:
        raise t.TestFailure("mgrokd status --json does not print JSON (%s): %s" % (e, out[:300]))
    t.check(isinstance(obj, dict) and isinstance(obj.get("sessions"), list),
            "mgrokd status --json is not {\"sessions\": [...]}", out=out[:300])
    t.check_eq(sorted((x["id"], x["client_id"]) for x in obj["sessions"]),
               sorted((x["id"], x["client_id"]) for x in lst), "sessions of mgrokd status --json")

    # The admin token is needed: without it the endpoint answers 401.
    code, out, err = run(t.MGROKD, "--admin-listen", "127.0.0.1:%d" % s.sadmin)
    t.check_eq(code, 1, "exit code of mgrokd status without the admin token", stdout=out,
               stderr=err)
    t.check(err.strip(), "mgrokd status refused by the endpoint prints no error")
    t.check("SESSION" not in out, "mgrokd status prints a table after a 401", stdout=out)

    for prog in (t.MGROKD, t.MGROK):
        code, out, err = run(prog, "--admin-listen", "127.0.0.1:%d" % s.closed)
        name = os.path.basename(prog)
        t.check_eq(code, 1, "exit code of %s status against a closed port" % name, stdout=out,
                   stderr=err)
        t.check(err.strip(), "%s status against a closed port prints no error" % name)
        t.check_eq(out, "", "stdout of %s status against a closed port" % name)

    c = A.sessions(s.cadmin, CLIENT_ADMIN_TOKEN)
    code, out, err = run(t.MGROK, "-c", s.client_conf)
    t.check_eq(code, 0, "exit code of mgrok status -c (admin.token_file)", stderr=err, stdout=out)
    lines = check_status_rows(env, out, "mgrok status -c", c)
    web_line = [l for l in lines if l[:1].isspace() and WEB in l.split()][0]
    t.check(re.search(r"\b\d+(\.\d+)? ?KiB\b", web_line), "mgrok status: the bytes of %s "
            "(%d) are not shown in KiB" % (WEB, s.web_client), line=web_line)

    u = A.sessions(s.uadmin)
    code, out, err = run(t.MGROK, "--admin-listen", "127.0.0.1:%d" % s.uadmin)
    t.check_eq(code, 0, "exit code of mgrok status --admin-listen", stderr=err, stdout=out)
    check_status_rows(env, out, "mgrok status --admin-listen", u)
    code, out, err = run(t.MGROK, "--admin-listen", "127.0.0.1:%d" % s.uadmin, "--json")
    t.check_eq(code, 0, "exit code of mgrok status --json", stderr=err)
    try:
        obj = json.loads(out)
    except ValueError as e:
        raise t.TestFailure("mgrok status --json does not print JSON (%s): %s" % (e, out[:300]))
    t.check_eq([p["name"] for p in obj["sessions"][0]["proxies"]], [DNS],
               "proxies in mgrok status --json", out=out[:300])
    t.check_eq(cl2.stop(), 0, "exit code of the second mgrok on SIGTERM")
    t.check_eq(srv2.stop(), 0, "exit code of the second mgrokd on SIGTERM")


def reloads(env, s):
    def count(result):
        return A.metrics(s.sadmin, ADMIN_TOKEN).value_or("mgrok_reloads_total", 0,
                                                          result=result)
    ok, failed = count("ok"), count("failed")
    s.srv.send_signal(signal.SIGHUP)
    A.wait_counter(s.sadmin, ADMIN_TOKEN, "mgrok_reloads_total", ok + 1, {"result": "ok"},
                   "mgrokd: reloads_total{result=ok} after SIGHUP")
    with open(s.srv_conf) as f:
        good = f.read()
    with open(s.srv_conf, "w") as f:
        f.write("{ broken")
    s.srv.send_signal(signal.SIGHUP)
    A.wait_counter(s.sadmin, ADMIN_TOKEN, "mgrok_reloads_total", failed + 1,
                   {"result": "failed"}, "mgrokd: reloads_total{result=failed} after a "
                   "SIGHUP with a broken file")
    with open(s.srv_conf, "w") as f:
        f.write(good)
    t.check_eq(count("ok"), ok + 1, "mgrokd: reloads_total{result=ok} after the failed reload")
    echo_small(s, b"after the reloads\n")


def check_answer(obj, want, what):
    """obj is exactly want, JSON types included (600, not 600.0)."""
    t.check_eq(obj, want, what)
    check_fields(obj, want, what)


def session_of_client(port, token, cid):
    return [x for x in A.sessions(port, token) if x.get("client_id") == cid]


def kick_and_ban(env, s):
    cid = s.client_id
    mine = session_of_client(s.sadmin, ADMIN_TOKEN, cid)
    t.check_eq(len(mine), 1, "mgrokd's sessions of mgrok's client id %s" % cid)
    sid = mine[0]["id"]
    lines = len(s.cl.public_lines())

    # Bad ban values: 400, nothing kicked.
    for value in ("abc", "-1", "0", "31536001", ""):
        path = "/api/v1/sessions/%d?ban=%s" % (sid, value)
        A.expect_error(A.request(s.sadmin, "DELETE", path, ADMIN_TOKEN), 400, "DELETE " + path)
    unknown = sid + 1000
    A.expect_error(A.request(s.sadmin, "DELETE", "/api/v1/sessions/%d" % unknown, ADMIN_TOKEN),
                   404, "DELETE of an unknown session")
    t.check_eq([x["id"] for x in session_of_client(s.sadmin, ADMIN_TOKEN, cid)], [sid],
               "mgrok's session after the refused DELETEs")
    t.check("GO_AWAY" not in s.cl.stderr_text(), "mgrok got a GO_AWAY from a refused DELETE",
            stderr=s.cl.stderr_text()[-600:])

    # A kick: GO_AWAY, and mgrok comes back on a new session.
    msg = A.request(s.sadmin, "DELETE", "/api/v1/sessions/%d" % sid, ADMIN_TOKEN)
    t.check_eq(msg.status, 200, "HTTP status of DELETE /api/v1/sessions/%d" % sid,
               body=msg.body[:300])
    with env.case("kick: the answer"):
        check_answer(A.body_json(msg, "DELETE"), {"id": sid, "client_id": cid,
                                                  "banned_seconds": 0},
                     "the answer to DELETE /api/v1/sessions/%d" % sid)
    t.wait_log(s.cl, r"GO_AWAY code 0: closed by the administrator",
               what="mgrok to log the administrator's GO_AWAY")
    t.wait_log(s.cl, r"reconnecting in", what="mgrok to reconnect after the kick")
    s.cl.wait_lines(lines + 1)

    def back():
        got = session_of_client(s.sadmin, ADMIN_TOKEN, cid)
        return got if got and got[0]["id"] != sid and got[0]["proxies"] else None
    new = t.wait_for(back, 20, "a new session of mgrok after the kick")
    t.check_eq(len(new), 1, "sessions of mgrok's client id after the kick", sessions=new)
    sid2 = new[0]["id"]
    A.expect_error(A.request(s.sadmin, "GET", "/api/v1/sessions/%d" % sid, ADMIN_TOKEN), 404,
                   "GET of the kicked session %d" % sid)
    data = t.payload(600, 123457)
    A.echo_exact(s.lo, data)
    s.web_total += len(data)
    x = A.get_json(s.sadmin, "/api/v1/sessions/%d" % sid2, ADMIN_TOKEN)
    check_fields(x, {"state": "open", "bytes_in": len(data), "bytes_out": len(data)},
                 "mgrokd's new session of mgrok (only its own bytes)")
    check_fields(one_proxy(x, WEB, "the new session"),
                 {"bytes_in": s.web_total, "bytes_out": s.web_total}, "proxy %s's totals" % WEB)

    # A session that sent no HELLO cannot be banned (409, nothing kicked);
    # kicked it gets GO_AWAY(NORMAL).
    before = {x["id"] for x in A.sessions(s.sadmin, ADMIN_TOKEN)}
    raw = t.RawSession(s.ctrl).handshake(TOKEN)
    try:
        def raw_listed():
            ids = {x["id"] for x in A.sessions(s.sadmin, ADMIN_TOKEN)} - before
            return ids if ids else None
        ids = t.wait_for(raw_listed, 20, "the hand-written session to be listed")
        t.check_eq(len(ids), 1, "new sessions after the hand-written handshake", ids=ids)
        rid = ids.pop()
        A.expect_error(A.request(s.sadmin, "DELETE", "/api/v1/sessions/%d?ban=5" % rid,
                                 ADMIN_TOKEN), 409, "ban of a session that sent no HELLO")
        A.get_json(s.sadmin, "/api/v1/sessions/%d" % rid, ADMIN_TOKEN,
                   "GET of the session after its refused ban")
        msg = A.request(s.sadmin, "DELETE", "/api/v1/sessions/%d" % rid, ADMIN_TOKEN)
        t.check_eq(msg.status, 200, "kick of a session that sent no HELLO", body=msg.body[:300])
        with env.case("kick of a session with no HELLO: the answer"):
            check_fields(A.body_json(msg, "kick"), {"id": rid, "banned_seconds": 0},
                         "the answer to the kick of a session with no HELLO")
        f = raw.expect_go_away(t.GOAWAY_NORMAL, "the kick")
        t.check_eq(f.message, "closed by the administrator", "GO_AWAY message of a kick")
    finally:
        raw.close()

    # A ban: refused until it ends, then back by itself.
    lines = len(s.cl.public_lines())
    mark = s.cl.stderr_size()
    t0 = time.monotonic()
    msg = A.request(s.sadmin, "DELETE", "/api/v1/sessions/%d?ban=%d" % (sid2, BAN), ADMIN_TOKEN)
    t.check_eq(msg.status, 200, "HTTP status of the ban", body=msg.body[:300])
    with env.case("ban: the answer"):
        check_answer(A.body_json(msg, "ban"), {"id": sid2, "client_id": cid,
                                               "banned_seconds": BAN},
                     "the answer to DELETE /api/v1/sessions/%d?ban=%d" % (sid2, BAN))
    # A hand-written session with the banned client id, early in the ban.
    if time.monotonic() - t0 < BAN - 2:
        raw = t.RawSession(s.ctrl).handshake(TOKEN).hello(cid)
        try:
            f = raw.expect_go_away(t.GOAWAY_NORMAL, "HELLO with a banned client id")
            t.check(re.fullmatch(r"banned for \d+ more seconds", f.message)
                    and 1 <= int(f.message.split()[2]) <= BAN,
                    "GO_AWAY message to a banned client id", message=f.message)
        finally:
            raw.close()
    else:
        t.log("(the hand-written HELLO during the ban skipped: too late)")
    refusal = re.compile(r"GO_AWAY code 0: banned for \d+ more seconds")
    seen_refusal = False
    connecting = 0
    while True:
        got = [x for x in session_of_client(s.sadmin, ADMIN_TOKEN, cid)
               if x["id"] not in (sid, sid2)]
        printed = s.cl.public_lines()
        mine = A.sessions(s.cadmin, CLIENT_ADMIN_TOKEN)
        # Taken after the look: what was seen was so before now, and the
        # ban (that began after t0) lasts until t0 + BAN at the earliest.
        now = time.monotonic()
        if now < t0 + BAN:
            t.check_eq(got, [], "sessions of the banned client id at most %.1f s into a %d s "
                       "ban" % (now - t0, BAN))
            t.check_eq(len(printed), lines, "public address lines of mgrok during its ban",
                       lines=printed)
            # mgrok's own view: between its attempts it is connecting, and
            # its proxy has no public address.
            t.check(len(mine) == 1 and mine[0].get("state") in ("connecting", "open"),
                    "mgrok's session during its ban", sessions=mine)
            if mine[0]["state"] == "connecting":
                connecting += 1
                check_fields(mine[0], {"connected_at": None}, "mgrok's session while connecting")
                check_fields(one_proxy(mine[0], WEB, "mgrok's session while connecting"),
                             {"public_address": None}, "mgrok's proxy while connecting")
        seen_refusal = seen_refusal or bool(refusal.search(s.cl.stderr_since(mark)))
        if got and got[0]["proxies"] and seen_refusal:
            break
        t.check(now < t0 + BAN + 30, "mgrok is not back %.0f s after its %d s ban (refusal seen "
                "by mgrok: %s)" % (now - t0, BAN, seen_refusal),
                stderr=s.cl.stderr_since(mark)[-800:])
        t.check(s.cl.alive(), "mgrok exited during its ban", code=s.cl.returncode)
        time.sleep(0.1)
    t.check_eq(got[0]["state"], "open", "state of mgrok's session after the ban")
    t.check(connecting, "mgrok's endpoint never said \"connecting\" during its ban")
    s.cl.wait_lines(lines + 1)
    t.echo_check(s.lo, b"back after the ban\n")
    t.check(s.cl.alive(), "mgrok died")


def config_errors(env, s):
    cases = [
        (t.MGROKD, "no-listen.json", [
            '{',
            '  "listen": "127.0.0.1:7000",',
            '  "auth": {"method": "token", "token": "%s"},' % CONFIG_SECRET,
            '  "admin": {',
            '    "token": "%s"' % CONFIG_SECRET,
            '  }',
            '}'], (4, 6)),
        (t.MGROKD, "two-tokens.json", [
            '{',
            '  "listen": "127.0.0.1:7000",',
            '  "auth": {"method": "token", "token": "%s"},' % CONFIG_SECRET,
            '  "admin": {"listen": "127.0.0.1:7001",',
            '            "token": "%s",' % CONFIG_SECRET,
            '            "token_file": "/nonexistent/admin.token"}',
            '}'], (4, 6)),
        (t.MGROKD, "bad-listen.json", [
            '{',
            '  "listen": "127.0.0.1:7000",',
            '  "auth": {"method": "token", "token": "%s"},' % CONFIG_SECRET,
            '  "admin": {"listen": "no port here"}',
            '}'], (4, 4)),
        (t.MGROK, "client-two-tokens.json", [
            '{',
            '  "server": "127.0.0.1:7000",',
            '  "auth": {"method": "token", "token": "%s"},' % CONFIG_SECRET,
            '  "admin": {"listen": "127.0.0.1:7002", "token": "%s",' % CONFIG_SECRET,
            '            "token_env": "MGROK_ADMIN_TOKEN"},',
            '  "proxies": [{"name": "a", "type": "tcp", "local": "127.0.0.1:80"}]',
            '}'], (4, 5)),
        (t.MGROK, "client-no-listen.json", [
            '{',
            '  "server": "127.0.0.1:7000",',
            '  "auth": {"method": "token", "token": "%s"},' % CONFIG_SECRET,
            '  "admin": {"token_file": "/nonexistent/admin.token"},',
            '  "proxies": [{"name": "a", "type": "tcp", "local": "127.0.0.1:80"}]',
            '}'], (4, 4)),
    ]
    for prog, fname, lines, (first, last) in cases:
        path = env.write_file(fname, "\n".join(lines) + "\n")
        name = os.path.basename(prog)
        what = "%s --check %s" % (name, fname)
        code, out, err = t.run_recorded(env, [prog, "--plugin-dir", t.PLUGIN_DIR, "--check",
                                              "-c", path])
        t.check_eq(code, 2, "exit code of %s" % what, stdout=out, stderr=err)
        m = re.search(r"%s:(\d+):(\d+): (admin\S*): " % re.escape(path), err)
        t.check(m, "%s: no FILE:LINE:COL: admin...: in the message" % what, stderr=err)
        t.check(first <= int(m.group(1)) <= last, "%s: the error's line %s is not in the "
                "admin object (lines %d-%d)" % (what, m.group(1), first, last), stderr=err)


def main(env):
    s = Setup()
    s.version = version_of(env)
    s.echo = env.echo_service()
    s.udp_echo = env.udp_echo_service()
    s.lo = env.udp_ports(4)
    s.ctrl = env.ports.take()
    s.sadmin, s.cadmin, s.uadmin = env.ports.take(), env.ports.take(), env.ports.take()
    s.closed = env.ports.take()  # nothing ever listens there
    s.srv_conf = t.write_json(env, "mgrokd-admin.json", {
        "listen": "127.0.0.1:%d" % s.ctrl,
        "plugin_dir": t.PLUGIN_DIR,
        "auth": {"method": "token", "token": TOKEN},
        "allow_ports": ["%d-%d" % (s.lo, s.lo + 3)],
        # Failed handshakes from 127.0.0.1 here are on purpose.
        "rate_limit": {"failures": 1000, "interval": 60},
        "admin": {"listen": "127.0.0.1:%d" % s.sadmin, "token": ADMIN_TOKEN}})
    # token_file: the first line, trailing whitespace dropped.
    token_file = env.write_file("client-admin.token",
                                CLIENT_ADMIN_TOKEN + " \t\nnot-the-token-second-line\n")
    s.client_conf = t.write_json(env, "mgrok-admin.json", {
        "server": "127.0.0.1:%d" % s.ctrl,
        "plugin_dir": t.PLUGIN_DIR,
        "auth": {"method": "token", "token": TOKEN},
        "reconnect": {"initial": 0.2, "max": 0.5},
        "admin": {"listen": "127.0.0.1:%d" % s.cadmin, "token_file": token_file},
        "proxies": [{"name": WEB, "type": "tcp", "local": "127.0.0.1:%d" % s.echo.port,
                     "remote_port": s.lo}]})
    s.srv = env.start_server(token=None, config=s.srv_conf, name="mgrokd-admin")
    s.srv.port, s.srv.allow = s.ctrl, (s.lo, s.lo + 3)
    A.wait_up(s.sadmin, ADMIN_TOKEN, "mgrokd's admin endpoint")

    for what, fn in (("metrics exactness", metrics_exactness),
                     ("counters across a client reconnect", counter_across_reconnect),
                     ("a denied handshake counted", handshake_denied),
                     ("udp: drop counter and datagram bytes", udp),
                     ("GET /api/v1/sessions on mgrokd", server_sessions),
                     ("mgrok's endpoint", client_endpoint),
                     ("the admin token (token, token_file)", token),
                     ("bad HTTP, keep-alive", bad_http),
                     ("at most 64 admin connections", connection_limit),
                     ("idle admin connections: opened", idle_open),
                     ("status commands", status),
                     ("reload counters (SIGHUP)", reloads),
                     ("DELETE: kick and ban", kick_and_ban),
                     ("config errors", config_errors),
                     ("idle admin connections: closed", idle_closed)):
        t.log("---- %s" % what)
        with env.case(what):
            t.guarded(fn, env, s)

    for p in env.procs:
        if p.alive():
            t.check_eq(p.stop(), 0, "exit code of %s on SIGTERM" % p.name)
    t.check_no_secrets(env, SECRETS)
    env.check_services()


t.run(main)
