#!/usr/bin/env python3
"""Log formats. When stderr is the journal ($JOURNAL_STREAM names its
device and inode, as systemd sets it) every line starts with its syslog
priority (<3> error, <4> warn, <6> info, <7> debug) and has no time of its
own; a JOURNAL_STREAM naming another file changes nothing. With "log":
{"format": "json"} (both programs) every line is one JSON object: time,
level, msg, and session for lines about one; bytes a peer sends (quotes,
control characters, invalid UTF-8) come out escaped."""
import json
import os
import re
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mgroktest as t

TOKEN = "log-format-token"
CLIENT_ID = b"0123456789abcdef0123456789abcdef"
TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
TEXT_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (error|warn |info |debug) ")
PRIORITY = {"error": "3", "warn": "4", "info": "6", "debug": "7"}


def journal_env(env, name, other=False):
    """JOURNAL_STREAM for the stderr file env.spawn(name) will write (Proc
    opens NAME.err with O_TRUNC: the inode stays); other: a file's that is
    not it."""
    path = os.path.join(env.dir, name + ".err")
    open(path, "wb").close()
    st = os.stat(path)
    ino = st.st_ino + 1 if other else st.st_ino
    return {"JOURNAL_STREAM": "%d:%d" % (st.st_dev, ino)}


def server_config(env, name, **log):
    port = env.ports.take()
    allow = env.ports.take_range(2)
    conf = {"listen": "127.0.0.1:%d" % port, "allow_ports": ["%d-%d" % allow],
            "auth": {"method": "token", "token": TOKEN}}
    if log:
        conf["log"] = log
    return t.write_json(env, name, conf), port, allow


def spawn_server(env, name, conf, port, allow, extra=(), env_vars=None):
    srv = env.spawn(name, [t.MGROKD, "--plugin-dir", t.PLUGIN_DIR, "-c", conf] + list(extra),
                    t.Server, env=env_vars)
    srv.port, srv.allow, srv.token, srv.listen_host = port, allow, TOKEN, "127.0.0.1"
    return srv


def wait_for_line(srv, pattern):
    t.wait_log(srv, pattern, what="%r in %s's log" % (pattern, srv.name))


def journal(env):
    name = "mgrokd-journal"
    conf, port, allow = server_config(env, "journal.json", level="debug")
    srv = spawn_server(env, name, conf, port, allow, env_vars=journal_env(env, name))
    wait_for_line(srv, r"<6>listening on")
    echo = env.echo_service()
    cl = env.start_client(echo.port, srv, token=TOKEN)
    t.echo_check(cl.public_port)
    # An error and a warning: a reload of a broken file, an unknown proxy name.
    with open(conf, "w") as f:
        f.write("{ broken")
    srv.send_signal(signal.SIGHUP)
    wait_for_line(srv, r"<3>reload: ")
    s = t.RawSession(port).handshake(TOKEN).hello(CLIENT_ID)
    s.send(t.f_unregister("no-such-proxy"))
    wait_for_line(srv, r"<6>session \d+: UNREGISTER of unknown proxy")
    s.close()
    cl.stop()
    t.check_eq(srv.stop(), 0, "mgrokd's exit code")
    lines = srv.stderr_text().splitlines()
    t.check(lines, "mgrokd logged nothing")
    for line in lines:
        t.check(re.match(r"^<[3467]>\S", line), "a line to the journal without its priority",
                line=line)
        t.check(not TIME.match(line[3:27]) and "info " not in line[:10],
                "a line to the journal carries its own time or level", line=line)
    seen = {line[1] for line in lines}
    t.check_eq(seen, {"3", "6", "7"} | ({"4"} & seen), "priorities seen", lines=lines[:20])
    t.log("journal: %d lines, priorities %s" % (len(lines), sorted(seen)))

    # The client too, with its warning about an insecure connection... any
    # line: the quick form's info lines.
    cname = "mgrok-journal"
    srv2 = spawn_server(env, "mgrokd-plain", *server_config(env, "plain.json"))
    srv2.wait_ready()
    cl = env.spawn(cname, env.client_argv(echo.port, srv2.port, token=TOKEN, extra=["-v"]),
                   t.Client, env=journal_env(env, cname))
    cl.wait_lines(1)
    cl.stop()
    lines = cl.stderr_text().splitlines()
    t.check(lines and all(re.match(r"^<[3467]>\S", l) for l in lines),
            "mgrok's lines to the journal", lines=lines)
    t.check(any(l.startswith("<7>") for l in lines), "no debug line (<7>) from mgrok -v",
            lines=lines)


def not_journal(env):
    """JOURNAL_STREAM inherited but naming another file: plain lines."""
    name = "mgrokd-not-journal"
    conf, port, allow = server_config(env, "not-journal.json")
    srv = spawn_server(env, name, conf, port, allow,
                       env_vars=journal_env(env, name, other=True))
    srv.wait_ready()
    bad = {"JOURNAL_STREAM": "garbage"}
    srv2 = spawn_server(env, "mgrokd-bad-stream", *server_config(env, "bad-stream.json"),
                        env_vars=bad)
    srv2.wait_ready()
    for p in (srv, srv2):
        p.stop()
        lines = p.stderr_text().splitlines()
        t.check(lines and all(TEXT_LINE.match(l) for l in lines),
                "lines of %s are not the usual ones" % p.name, lines=lines)


def parse_json_lines(proc):
    out = []
    raw = open(proc.err_path, "rb").read()
    for line in raw.split(b"\n")[:-1]:
        try:
            text = line.decode("utf-8")  # strict: invalid UTF-8 must not get through
            obj = json.loads(text)
        except (UnicodeDecodeError, ValueError) as e:
            raise t.TestFailure("%s: a line that is not a JSON object in UTF-8: %r (%s)" %
                                (proc.name, line, e))
        t.check(isinstance(obj, dict), "a JSON line is not an object", line=line)
        keys = set(obj)
        t.check({"time", "level", "msg"} <= keys <= {"time", "level", "msg", "session"},
                "keys of a JSON line", line=line)
        t.check(TIME.match(obj["time"]), "the time of a JSON line", line=line)
        t.check(obj["level"] in PRIORITY, "the level of a JSON line", line=line)
        t.check("session" not in obj or (isinstance(obj["session"], int) and obj["session"] > 0),
                "the session of a JSON line", line=line)
        out.append(obj)
    t.check(raw.endswith(b"\n") or not raw, "%s's log does not end with a newline" % proc.name)
    return out


def json_format(env):
    conf, port, allow = server_config(env, "json.json", format="json", level="debug")
    srv = spawn_server(env, "mgrokd-json", conf, port, allow)
    wait_for_line(srv, r'"msg":"listening on ')
    echo = env.echo_service()
    cconf = env.client_config(srv, [{"name": "web", "type": "tcp",
                                     "local": "127.0.0.1:%d" % echo.port}], token=TOKEN,
                              name="client-json.json", log={"format": "json"})
    cl = env.start_client(None, None, token=None, config=cconf, cname="mgrok-json")
    t.echo_check(cl.public_port)
    # A peer's bytes in a line: HELLO's info is logged as sent.
    info = b'{"v":"q\\"uote\\\\ \x01\x1f\x7f tab\t nl\n \xff\xc0\xaf \xed\xa0\x80 ok:\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"}'
    s = t.RawSession(port).handshake(TOKEN).hello(CLIENT_ID, info)
    wait_for_line(srv, r'"msg":"session \d+: client 0123456789abcdef')
    s.close()
    srv.send_signal(signal.SIGHUP)
    wait_for_line(srv, r'"msg":"SIGHUP: reloading"')
    cl.stop()
    t.check_eq(srv.stop(), 0, "mgrokd's exit code")

    objs = parse_json_lines(srv)
    msgs = [o["msg"] for o in objs]
    hello = [m for m in msgs if "client 0123456789abcdef" in m]
    t.check_eq(len(hello), 1, "lines about the raw session's HELLO", msgs=msgs)
    want = ('{"v":"q\\"uote\\\\ \x01\x1f\x7f tab\t nl\n \ufffd\ufffd\ufffd \ufffd\ufffd\ufffd '
            'ok:\u00e9\u20ac\U0001F600"}')
    t.check(hello[0].endswith(", " + want), "the peer's bytes are not escaped as expected",
            got=hello[0], want=want)
    t.check(any(o["level"] == "debug" for o in objs), "no debug line at level debug")
    proxy = [o for o in objs if re.match(r"session \d+ proxy web: tcp://", o["msg"])]
    t.check(proxy and all(o.get("session") == int(o["msg"].split()[1]) for o in proxy),
            "the proxy line does not carry its session", lines=proxy)
    cobjs = parse_json_lines(cl)
    t.check(any(o["msg"].startswith("proxy web: up at") for o in cobjs),
            "mgrok's JSON log has no 'proxy web: up' line", lines=cobjs)
    t.log("json: %d mgrokd lines, %d mgrok lines" % (len(objs), len(cobjs)))

    # Through the journal: the priority, then the object.
    name = "mgrokd-json-journal"
    conf, port, allow = server_config(env, "json-journal.json", format="json")
    srv = spawn_server(env, name, conf, port, allow, env_vars=journal_env(env, name))
    srv.wait_ready()
    srv.stop()
    for line in srv.stderr_text().splitlines():
        m = re.match(r"^<([3467])>(\{.*\})$", line)
        t.check(m, "a JSON line to the journal", line=line)
        t.check_eq(PRIORITY[json.loads(m.group(2))["level"]], m.group(1),
                   "the priority of a JSON line", line=line)


def bad_format(env):
    conf, _, _ = server_config(env, "bad-format.json", format="xml")
    code, out, err = env.run_program([t.MGROKD, "--plugin-dir", t.PLUGIN_DIR, "-c", conf,
                                      "--check"])
    t.check_eq(code, 2, "mgrokd --check's exit code for log.format xml", stderr=err)
    t.check("log.format" in err and "text or json" in err, "the error names log.format",
            stderr=err)


def main(env):
    with env.case("journal"):
        journal(env)
    with env.case("JOURNAL_STREAM of another file"):
        not_journal(env)
    with env.case("json"):
        json_format(env)
    with env.case("a bad format"):
        bad_format(env)


t.run(main)
