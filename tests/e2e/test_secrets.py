#!/usr/bin/env python3
"""No secret ever appears in any output.

Tokens reach mgrokd and mgrok every way there is (--token, MGROK_TOKEN, a
config's token / token_file / token_env, a users file's token / token_file,
a users client's token), over TLS and plaintext, with debug logging on; a
wrong token, an unknown user, --check of every config, and config files
whose syntax errors sit right next to a secret (a control character inside
the token string, a token left unquoted), at start and on SIGHUP. Then every
line any program wrote is searched for every secret."""
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mgroktest as t

SRV_TOKEN = "srvTok-8e1f4a7c2b9d0536"
WRONG = "wrongTok-3c9a5d10e7f2b864"
ALICE = "aliceTok-d2b7e0f41a9c3865"
BOB = "bobTok-5f0a3e8d1c6b9274"
UNKNOWN = "ghostTok-94e1c7a2d05b3f68"
# Pieces of tokens that sit next to syntax errors in broken configs.
CUT_A, CUT_B = "cutTokA-7b2e9f04", "cutTokB-1d8c6a35"
BARE = "bareTok0a4f8e2c6d1b"
SECRETS = [SRV_TOKEN, WRONG, ALICE, BOB, UNKNOWN, CUT_A, CUT_B, BARE]


def check_fails(env, argv, what, env_vars=None):
    code, out, err = t.run_recorded(env, argv, timeout=20, env_vars=env_vars)
    t.check(code != 0, "%s was accepted" % what, stdout=out, stderr=err)
    t.check(err.strip(), "%s: no error message" % what)
    t.log("%s: %s" % (what, err.strip().splitlines()[-1]))
    return err


def check_ok(env, argv, what, env_vars=None):
    code, out, err = t.run_recorded(env, argv, timeout=20, env_vars=env_vars)
    t.check_eq(code, 0, "exit code of %s" % what, stdout=out, stderr=err)
    return out + err


def token_server(env, echo):
    """A TLS server with the token inline in its config; clients bring the
    token by flag, environment, token_file and token_env."""
    cert, key, fp = t.gen_cert(env, "cert", "127.0.0.1")
    port = env.ports.take()
    lo, hi = env.ports.take_range(5)
    conf = t.write_json(env, "mgrokd-token.json", {
        "listen": "127.0.0.1:%d" % port,
        "auth": {"method": "token", "token": SRV_TOKEN},
        "allow_ports": ["%d-%d" % (lo, hi)],
        "tls": {"cert": cert, "key": key}})
    check_ok(env, [t.MGROKD, "--plugin-dir", t.PLUGIN_DIR, "-c", conf, "--check", "-v"],
             "mgrokd --check")
    srv = env.start_server(token=None, config=conf, extra=["-v"], name="mgrokd-token")
    server = "127.0.0.1:%d" % port
    tls = ["--tls-fingerprint", fp]

    cl = env.start_client(echo.port, server, token=SRV_TOKEN, remote_port=lo,
                          extra=["-v"] + tls, cname="mgrok-flag")
    t.echo_check(lo, b"token by flag\n")
    # start_client takes no environment: spawned by hand with MGROK_TOKEN set.
    cl2 = env.spawn("mgrok-env", env.client_argv(echo.port, server, None, lo + 1, None,
                                                  ["-v"] + tls), t.Client,
                    env={"MGROK_TOKEN": SRV_TOKEN})
    cl2.wait_lines(1)
    t.echo_check(lo + 1, b"token from MGROK_TOKEN\n")

    tok_file = env.write_file("client.token", SRV_TOKEN + "\n")
    for i, (auth, env_vars) in enumerate(
            (({"method": "token", "token_file": tok_file}, None),
             ({"method": "token", "token_env": "MY_TUNNEL_TOKEN"}, {"MY_TUNNEL_TOKEN": SRV_TOKEN}),
             ({"method": "token", "token": SRV_TOKEN}, None))):
        conf = t.write_json(env, "mgrok-token-%d.json" % i, {
            "server": server, "auth": auth, "tls": {"fingerprint": fp},
            "proxies": [{"name": "web", "type": "tcp", "local": str(echo.port),
                         "remote_port": lo + 2 + i}]})
        argv = [t.MGROK, "--plugin-dir", t.PLUGIN_DIR, "-c", conf, "-v"]
        check_ok(env, argv + ["--check"], "mgrok --check (%s)" % list(auth)[1], env_vars)
        c = env.spawn("mgrok-conf-%d" % i, argv, t.Client, env=env_vars)
        c.wait_lines(1)
        t.echo_check(lo + 2 + i, b"token from a config\n")
    check_ok(env, [t.MGROK, "--plugin-dir", t.PLUGIN_DIR, "--server", server, "--token",
                   SRV_TOKEN, "--check", "tcp", str(echo.port)], "mgrok --token --check")
    check_ok(env, [t.MGROKD, "--plugin-dir", t.PLUGIN_DIR, "--token", SRV_TOKEN, "--listen",
                   "127.0.0.1:%d" % env.ports.take(), "--check", "-v"], "mgrokd --token --check")

    bad = env.start_client(echo.port, server, token=WRONG, lines=0, extra=["-v"] + tls,
                           cname="mgrok-wrong")
    t.check_eq(bad.wait_exit(), 1, "exit code of mgrok with a wrong token")
    t.check("authentication failed" in bad.stderr_text(), "no \"authentication failed\"")
    t.check(srv.alive() and cl.alive(), "mgrokd or mgrok died")


def users_server(env, echo):
    port = env.ports.take()
    lo, hi = env.ports.take_range(2)
    bob_file = env.write_file("bob.token", BOB + "\n")
    users = env.write_file("users.json", '{"users": {"alice": {"token": "%s"}, '
                                         '"bob": {"token_file": "%s"}}}\n' % (ALICE, bob_file))
    conf = t.write_json(env, "mgrokd-users.json", {
        "listen": "127.0.0.1:%d" % port,
        "auth": {"method": "users", "file": users},
        "allow_ports": ["%d-%d" % (lo, hi)]})
    check_ok(env, [t.MGROKD, "--plugin-dir", t.PLUGIN_DIR, "-c", conf, "--check", "-v"],
             "mgrokd --check (users)")
    srv = env.start_server(token=None, config=conf, extra=["-v"], name="mgrokd-users")
    server = "127.0.0.1:%d" % port
    for i, (user, token) in enumerate((("alice", ALICE), ("bob", BOB))):
        cconf = t.write_json(env, "mgrok-%s.json" % user, {
            "server": server, "auth": {"method": "users", "user": user, "token": token},
            "proxies": [{"name": "web", "type": "tcp", "local": str(echo.port),
                         "remote_port": lo + i}]})
        argv = [t.MGROK, "--plugin-dir", t.PLUGIN_DIR, "-c", cconf, "-v"]
        check_ok(env, argv + ["--check"], "mgrok --check (users, %s)" % user)
        env.spawn("mgrok-%s" % user, argv, t.Client).wait_lines(1)
        t.echo_check(lo + i, ("%s's tunnel\n" % user).encode())
    for user, token in (("alice", WRONG), ("ghost", UNKNOWN)):
        cconf = t.write_json(env, "mgrok-%s-bad.json" % user, {
            "server": server, "auth": {"method": "users", "user": user, "token": token},
            "proxies": [{"name": "web", "type": "tcp", "local": str(echo.port)}]})
        c = env.spawn("mgrok-%s-bad" % user, [t.MGROK, "--plugin-dir", t.PLUGIN_DIR, "-c",
                                                cconf, "-v"], t.Client)
        t.check_eq(c.wait_exit(), 1, "exit code of a refused users client")
    # A reload from a users file broken right next to a token.
    with open(users, "w") as f:
        f.write('{"users": {"alice": {"token": "%s\n%s"}}}\n' % (CUT_A, CUT_B))
    before = srv.stderr_text().count("reload of auth method 'users' failed")
    srv.send_signal(signal.SIGHUP)
    t.wait_for(lambda: srv.stderr_text().count("reload of auth method 'users' failed") > before,
               20, "mgrokd to report the broken users file")
    with open(users, "w") as f:
        f.write('{"users": {"alice": {"token": %s}}}\n' % BARE)
    srv.send_signal(signal.SIGHUP)
    t.wait_for(lambda: srv.stderr_text().count("reload of auth method 'users' failed")
               > before + 1, 20, "mgrokd to report the broken users file (2)")
    t.echo_check(lo, b"alice after failed reloads\n")
    return conf


def broken_configs(env):
    """Syntax errors next to secrets, in every file that holds one."""
    control_char = '"token": "%s\n%s"' % (CUT_A, CUT_B)  # a raw newline inside the string
    bare = '"token": %s' % BARE                          # a token left unquoted
    for i, tok in enumerate((control_char, bare)):
        path = env.write_file("mgrokd-broken-%d.json" % i,
                              '{"listen": "127.0.0.1:1", "auth": {"method": "token", %s}}\n' % tok)
        check_fails(env, [t.MGROKD, "--plugin-dir", t.PLUGIN_DIR, "-c", path, "--check"],
                    "mgrokd --check of a config broken next to the token (%d)" % i)
        path = env.write_file("mgrok-broken-%d.json" % i,
                              '{"server": "127.0.0.1:1", "auth": {"method": "token", %s}, '
                              '"proxies": [{"name": "w", "type": "tcp", "local": "1"}]}\n' % tok)
        check_fails(env, [t.MGROK, "--plugin-dir", t.PLUGIN_DIR, "-c", path, "--check"],
                    "mgrok --check of a config broken next to the token (%d)" % i)
        path = env.write_file("mgrok-users-broken-%d.json" % i,
                              '{"server": "127.0.0.1:1", "auth": {"method": "users", '
                              '"user": "alice", %s}, "proxies": [{"name": "w", "type": "tcp", '
                              '"local": "1"}]}\n' % tok)
        check_fails(env, [t.MGROK, "--plugin-dir", t.PLUGIN_DIR, "-c", path, "--check"],
                    "mgrok --check of a users config broken next to the token (%d)" % i)
        users = env.write_file("users-broken-%d.json" % i,
                               '{"users": {"alice": {%s}}}\n' % tok)
        conf = t.write_json(env, "mgrokd-users-broken-%d.json" % i, {
            "listen": "127.0.0.1:%d" % env.ports.take(),
            "auth": {"method": "users", "file": users}})
        argv = [t.MGROKD, "--plugin-dir", t.PLUGIN_DIR, "-c", conf]
        check_fails(env, argv + ["--check"], "mgrokd --check with a users file broken next to "
                    "a token (%d)" % i)
        check_fails(env, argv, "mgrokd starting with a users file broken next to a token (%d)"
                    % i)
    # Valid JSON, wrong options around a token.
    for name, auth in (("extra-key", {"method": "token", "token": SRV_TOKEN, "tokn": SRV_TOKEN}),
                       ("two-sources", {"method": "token", "token": SRV_TOKEN,
                                        "token_file": "/nonexistent"})):
        path = t.write_json(env, "mgrokd-%s.json" % name, {"listen": "127.0.0.1:1",
                                                           "auth": auth})
        check_fails(env, [t.MGROKD, "--plugin-dir", t.PLUGIN_DIR, "-c", path, "--check"],
                    "mgrokd --check with auth options %s" % name)


def main(env):
    echo = env.echo_service()
    for what, fn in (("token server", lambda: token_server(env, echo)),
                     ("users server", lambda: users_server(env, echo)),
                     ("broken configs", lambda: broken_configs(env))):
        t.log("---- %s" % what)
        with env.case(what):
            fn()
    for p in env.procs:
        if p.alive():
            t.check_eq(p.stop(), 0, "exit code of %s on SIGTERM" % p.name)
    t.check_no_secrets(env, SECRETS)
    env.check_services()


t.run(main)
