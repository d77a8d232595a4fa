#!/usr/bin/env python3
"""The command line of both programs: --help, --version, --check, config
errors, bad options, retrying without a server, SIGTERM, IPv6 and host names."""
import json
import os
import re
import signal
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mgroktest as t

TOKEN = "cli-token-Q8zX3v"
SECRET = "Config-Secret-d41d8cd98f"
PROGRAMS = (("mgrokd", t.MGROKD), ("mgrok", t.MGROK))
RETRYING = r"reconnecting in \d"  # mgrok's line before each retry


def help_and_version(env):
    for name, prog in PROGRAMS:
        code, out, err = env.run_program([prog, "--help"])
        t.check_eq(code, 0, "%s --help exit code" % name, stderr=err)
        t.check("usage: %s" % name in out, "%s --help prints its usage on stdout" % name,
                stdout=out[:300])
        code, out, err = env.run_program([prog, "--version"])
        t.check_eq(code, 0, "%s --version exit code" % name, stderr=err)
        t.check(re.match(r"%s \d+\.\d+" % name, out), "%s --version output" % name, stdout=out)
        code, out, err = env.run_program([prog, "--no-such-option"])
        t.check_eq(code, 2, "%s with an unknown option: exit code" % name, stderr=err)
        t.check("usage" in err, "%s with an unknown option prints its usage on stderr" % name,
                stderr=err[:300])
    t.log("--help, --version and unknown options ok")


def check_examples(env):
    for name, prog in PROGRAMS:
        path = os.path.join(t.SRCDIR, "etc", name + ".json")
        with open(path) as f:
            example = json.load(f)
        token = example.get("auth", {}).get("token")
        code, out, err = env.run_program([prog, "--plugin-dir", t.PLUGIN_DIR, "--check",
                                          "-c", path])
        t.check_eq(code, 0, "%s --check %s" % (name, path), stdout=out, stderr=err)
        t.check("valid" in out, "%s --check says the config is valid" % name, stdout=out)
        if token:
            t.check(token not in out + err, "%s --check prints the example's token" % name)
    t.log("--check on the example configs ok")


def write_lines(env, name, lines):
    return env.write_file(name, "\n".join(lines) + "\n")


def config_errors(env):
    # (program, file name, lines, line of the error, key named in the message)
    cases = [
        ("mgrokd", "unknown-key.json", [
            '{',
            '  "listen": "127.0.0.1:7000",',
            '  "auth": {"method": "token", "token": "%s"},' % SECRET,
            '     "bogus_key": 1,',
            '  "allow_ports": ["20000-20100"]',
            '}'], 4, "bogus_key"),
        ("mgrokd", "nested-key.json", [
            '{',
            '  "listen": "127.0.0.1:7000",',
            '  "auth": {"method": "token", "token": "%s"},' % SECRET,
            '  "heartbeat": {',
            '    "interval": 10,',
            '    "timout": 30',
            '  }',
            '}'], 6, "heartbeat.timout"),
        ("mgrokd", "wrong-type.json", [
            '{',
            '  "auth": {"method": "token", "token": "%s"},' % SECRET,
            '  "listen": 7000',
            '}'], 3, "listen"),
        ("mgrok", "proxy-key.json", [
            '{',
            '  "server": "127.0.0.1:7000",',
            '  "auth": {"method": "token", "token": "%s"},' % SECRET,
            '  "proxies": [',
            '    {"name": "a", "type": "tcp", "local": "127.0.0.1:80"},',
            '    {"name": "b", "type": "tcp", "local": "127.0.0.1:81", "remote": 5}',
            '  ]',
            '}'], 6, "proxies[1].remote"),
        ("mgrok", "bad-port.json", [
            '{',
            '  "server": "127.0.0.1:7000",',
            '  "auth": {"method": "token", "token": "%s"},' % SECRET,
            '  "proxies": [',
            '    {"name": "a", "type": "tcp", "local": "127.0.0.1:80",',
            '     "remote_port": 70000}',
            '  ]',
            '}'], 6, "proxies[0].remote_port"),
    ]
    for name, fname, lines, line, key in cases:
        path = write_lines(env, fname, lines)
        prog = dict(PROGRAMS)[name]
        for check_only in (True, False):
            argv = [prog, "--plugin-dir", t.PLUGIN_DIR, "-c", path]
            if check_only:
                argv.append("--check")
            code, out, err = env.run_program(argv)
            what = "%s %s%s" % (name, fname, " --check" if check_only else "")
            t.check_eq(code, 2, "exit code of %s" % what, stderr=err)
            m = re.search(r"%s:(\d+):(\d+): (\S+): " % re.escape(path), err)
            t.check(m, "%s: no FILE:LINE:COL: KEY: in the message" % what, stderr=err)
            t.check_eq(int(m.group(1)), line, "line of the error in %s" % what, stderr=err)
            t.check_eq(m.group(3), key, "key named by the error in %s" % what, stderr=err)
            t.check(SECRET not in out + err, "the error message of %s shows the token" % what)
    t.log("config errors: exit 2 with FILE:LINE:COL: KEY")

    # --check passes only what the program would accept: the auth plugin's
    # options and the plugins named are part of the configuration.
    server_auth = ['{', '  "listen": "127.0.0.1:7000",', '  "auth": %s', '}']
    client_auth = ['{', '  "server": "127.0.0.1:7000",', '  "auth": %s,',
                   '  "proxies": [{"name": "a", "type": "tcp", "local": "8080"}]', '}']
    for name, fname, template, auth in (
            ("mgrokd", "auth-unknown-option.json", server_auth,
             '{"method": "token", "token": "%s", "tokne": 1}' % SECRET),
            ("mgrokd", "auth-no-secret.json", server_auth, '{"method": "token"}'),
            ("mgrokd", "auth-no-plugin.json", server_auth, '{"method": "kerberos"}'),
            ("mgrok", "client-auth-unknown-option.json", client_auth,
             '{"method": "token", "token": "%s", "tokne": 1}' % SECRET)):
        path = write_lines(env, fname, [line.replace("%s", auth) for line in template])
        with env.case("%s --check %s" % (name, fname)):
            code, out, err = env.run_program([dict(PROGRAMS)[name], "--plugin-dir",
                                              t.PLUGIN_DIR, "--check", "-c", path])
            t.check_eq(code, 2, "%s --check on a config whose auth %s refuses at start"
                       % (name, name), stdout=out, stderr=err)
            t.check(path in err and "auth" in err, "the error names the file and key",
                    stderr=err)
            t.check(SECRET not in out + err, "the error message shows the token")

    # --check on a valid config does not print the token.
    path = write_lines(env, "valid.json", [
        '{',
        '  "listen": "127.0.0.1:7000",',
        '  "auth": {"method": "token", "token": "%s"},' % SECRET,
        '  "allow_ports": ["20000-20100"]',
        '}'])
    code, out, err = env.run_program([t.MGROKD, "--plugin-dir", t.PLUGIN_DIR, "-v", "--check",
                                      "-c", path])
    t.check_eq(code, 0, "mgrokd --check on a valid config", stderr=err)
    t.check(SECRET not in out + err, "mgrokd --check prints the token")
    code, out, err = env.run_program([t.MGROK, "--plugin-dir", t.PLUGIN_DIR, "-v", "--check",
                                      "--token", SECRET, "--server", "127.0.0.1:7000",
                                      "tcp", "8080"])
    t.check_eq(code, 0, "mgrok --check on a valid command line", stderr=err)
    t.check(SECRET not in out + err, "mgrok --check prints the token")


def bad_options(env):
    for value in ("20100-20000", "abc", "70000", "0-10", "", "100-", "1-2-3"):
        code, out, err = env.run_program([t.MGROKD, "--plugin-dir", t.PLUGIN_DIR,
                                          "--allow-ports", value, "--check"])
        t.check_eq(code, 2, "mgrokd --allow-ports %r: exit code" % value, stderr=err)
        t.check("--allow-ports" in err and value in err,
                "the error names --allow-ports and the value %r" % value, stderr=err)
    for argv, what in ((["--remote-port", "70000", "tcp", "8080"], "--remote-port 70000"),
                       (["--remote-port", "x", "tcp", "8080"], "--remote-port x"),
                       (["--name", "bad name", "tcp", "8080"], "--name 'bad name'"),
                       (["tcp"], "a missing LOCAL")):
        code, out, err = env.run_program([t.MGROK, "--plugin-dir", t.PLUGIN_DIR, "--server",
                                          "127.0.0.1:7000"] + argv)
        t.check_eq(code, 2, "mgrok with %s: exit code" % what, stderr=err)
        t.check(err.strip(), "mgrok with %s says nothing" % what)
    t.log("bad option values: exit 2 with a message")


def no_server(env):
    nobody = env.ports.take()  # reserved, nothing listens
    cl = env.start_client(8080, nobody, lines=0, cname="mgrok-no-server")
    # Two announced retries: it failed, retried, failed again and goes on
    # (wait_log fails if mgrok exits instead).
    t.wait_log(cl, RETRYING, 2, what="mgrok to say twice that it retries")
    t.check(cl.alive(), "mgrok gave up without a server (exit code %s)" % cl.returncode,
            stderr=cl.stderr_text()[-500:])
    t.check_eq(cl.stop(), 0, "mgrok's exit code on SIGTERM while retrying")

    cl = env.start_client(8080, nobody, lines=0, cname="mgrok-no-server-int")
    t.wait_log(cl, RETRYING, 2, what="mgrok to say twice that it retries")
    t.check_eq(cl.stop(signal.SIGINT), 0, "mgrok's exit code on SIGINT while retrying")
    t.log("no server: mgrok keeps retrying, exits 0 on SIGTERM/SIGINT")


def refused_registration(env, srv):
    echo = env.echo_service()
    outside = srv.allow[1] + 1
    cl = env.start_client(echo.port, srv, token=TOKEN, remote_port=outside, lines=0,
                          cname="mgrok-refused")
    code = cl.wait_exit()
    err = cl.stderr_text()
    t.check_eq(code, 1, "exit code of a client whose only proxy was refused", stderr=err[-600:])
    t.check("not allowed" in err, "the server's reason on stderr", stderr=err[-600:])
    t.check_eq(cl.public_lines(), [], "public lines of a refused client")
    t.log("refused registration: exit 1 with the server's reason")


def sigterm_server(env, srv):
    echo = env.echo_service()
    cl = env.start_client(echo.port, srv, token=TOKEN, cname="mgrok-sigterm")
    t.echo_check(cl.public_port)
    code = srv.stop(signal.SIGTERM)
    t.check_eq(code, 0, "mgrokd's exit code on SIGTERM")

    def logged():
        err = cl.stderr_text()
        return "GO_AWAY" in err and "reconnecting" in err
    t.wait_for(logged, what="the client to log GO_AWAY and its reconnect")
    t.check(cl.alive(), "mgrok exited after the server's GO_AWAY(NORMAL)")
    t.check_eq(cl.stop(), 0, "mgrok's exit code on SIGTERM")
    t.log("SIGTERM: mgrokd exits 0, the client got GO_AWAY and retries")


def ipv6(env):
    if not t.have_ipv6_loopback():
        print("SKIP sub-case: ::1 is not configured on this machine: no IPv6 tunnel test",
              flush=True)
        return
    port = env.ports.take()
    allow = env.ports.take_range(2)
    t.check(t.port_free(port, socket.AF_INET6, "::1"), "control port busy on ::1")
    srv = env.start_server(token=TOKEN, port=port, allow=allow, listen_host="::1",
                           name="mgrokd-v6")
    echo = env.service(t.echo_handler, host="::1", name="echo-v6")
    cl = env.start_client("[::1]:%d" % echo.port, srv, token=TOKEN, cname="mgrok-v6")
    scheme, host, public, local = cl.public_lines()[0]
    t.check_eq(local, "[::1]:%d" % echo.port, "the local address in the public line")
    t.check(allow[0] <= public <= allow[1], "the public port is allowed", port=public)
    t.echo_check(public, b"over IPv6\n", host="::1", what="IPv6 echo")
    t.echo_check(public, t.payload(6, 300000), host="::1", what="IPv6 echo")
    t.check(echo.count == 2, "the IPv6 service got the connections", count=echo.count)
    t.log("IPv6 tunnel ok (%s)" % host)


def host_name(env, srv):
    echo = env.echo_service()
    cl = env.start_client(echo.port, "localhost:%d" % srv.port, token=TOKEN,
                          cname="mgrok-localhost")
    t.echo_check(cl.public_port, b"via localhost\n")
    t.check_eq(cl.stop(), 0, "mgrok's exit code on SIGTERM")
    t.log("--server localhost:PORT ok")


def main(env):
    help_and_version(env)
    check_examples(env)
    config_errors(env)
    bad_options(env)
    no_server(env)
    srv = env.start_server(token=TOKEN, nports=3)
    host_name(env, srv)
    refused_registration(env, srv)
    sigterm_server(env, srv)
    ipv6(env)
    env.check_services()


t.run(main)
