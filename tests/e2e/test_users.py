#!/usr/bin/env python3
"""The `users` auth method (auth-users plugin): one token per named user and
per-user rules, from a users file the server re-reads on SIGHUP.

A right user tunnels; a wrong token and an unknown user get the same
"authentication failed" (and both a challenge first: names cannot be
probed); a token from token_file works; a port outside the user's ports is
PORT_NOT_ALLOWED naming the user, and a server-picked port stays among
them; max_proxies is LIMIT; a type outside types is FORBIDDEN; max_streams
closes extra visitors at once; another user with the same clientId cannot
take a session over, the same user can; SIGHUP adds a user, changes a
token, removes a user, keeps the old state when the file is broken, and
drops no session. No token appears in any output."""
import os
import re
import signal
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mgroktest as t

ALICE = "alice-Tok-6a0f3b19d2c84e75"
BOB1 = "bob-Tok-old-1d7e52a9c0b3f468"
BOB2 = "bob-Tok-new-8c3a0e6f2b9d1745"
CAROL = "carol-Tok-3f9b7d21a5e0c684"
ERIN = "erin-Tok-0b5c8e3a7f1d2964"
DAVE = "dave-Tok-e41a96c07d3b5f28"
WRONG = "wrong-Tok-72d0c5e19b8a3f64"
MALLORY = "mallory-Tok-a59e2c7b04d1f836"
SECRETS = [ALICE, BOB1, BOB2, CAROL, ERIN, DAVE, WRONG, MALLORY]

AUTH_FAILED = "authentication failed"


class Setup:
    pass


def users_file(env, s, users):
    t.write_json(env, "users.json", {"users": users})


def initial_users(s):
    lo = s.lo
    return {
        "alice": {"token": ALICE, "ports": ["%d-%d" % (lo, lo + 2), lo + 3], "max_proxies": 2,
                  "max_streams": 2, "types": ["tcp"]},
        "bob": {"token_file": s.bob_token_file},
        "carol": {"token": CAROL, "types": ["udp"]},
        "erin": {"token": ERIN},
    }


def user_client(env, s, user, token, ports, cname, lines=1, token_key="token"):
    conf = t.write_json(env, cname + ".json", {
        "server": "127.0.0.1:%d" % s.port,
        "auth": {"method": "users", "user": user, token_key: token},
        "proxies": [{"name": "p%d" % p, "type": "tcp", "local": str(s.echo.port),
                     "remote_port": p} for p in ports]})
    return env.start_client(None, None, token=None, config=conf, lines=lines, cname=cname)


def raw_user(s, user, token):
    return t.RawSession(s.port).handshake_users(user, token)


def denied(s, user, token):
    """The handshake of user with token: (status, reason) after the proof."""
    r = t.RawSession(s.port)
    try:
        status, reply = r.handshake_users(user, token, expect_ok=False)
        if status != t.HS_OK:
            t.check_eq(r.read_eof(), b"", "bytes after DENIED")
        return status, reply
    finally:
        r.close()


def expect_ack(ack, status, name, message=None):
    t.check_eq(ack.status, status, "REGISTER_ACK status for %s" % name, message=ack.message)
    if message is not None:
        t.check(message in ack.message, "REGISTER_ACK message for %s lacks %r" % (name, message),
                message=ack.message)


def refused_client(env, s, user, token, ports, cname, what):
    """mgrok must give up by itself with exit code 1; returns its stderr."""
    cl = user_client(env, s, user, token, ports, cname, lines=0)
    code = cl.wait_exit()
    err = cl.stderr_text()
    t.check_eq(code, 1, "exit code of mgrok for %s" % what, stderr=err[-800:])
    t.check_eq(cl.public_lines(), [], "public lines of mgrok for %s" % what)
    t.check(s.srv.alive(), "mgrokd died after %s" % what)
    return err


def mgrok_lines(err):
    return [l for l in err.splitlines() if l.startswith("mgrok:")]


def closed_at_once(sock, what):
    sock.settimeout(15)
    try:
        sock.sendall(b"anyone there?\n")
        data = sock.recv(100)
    except (BrokenPipeError, ConnectionResetError):
        return
    except socket.timeout:
        raise t.TestFailure("%s: the connection hangs instead of being closed" % what)
    t.check_eq(data, b"", "bytes received by %s" % what)


def hold(port, n, tag):
    held = []
    for i in range(n):
        c = t.connect(port)
        c.sendall(b"%s %d\n" % (tag, i))
        t.check_eq(c.recv(64), b"%s %d\n" % (tag, i), "echo on held visitor %d of port %d"
                   % (i, port))
        held.append(c)
    return held


def release(held):
    for c in held:
        c.shutdown(socket.SHUT_WR)
        t.check_eq(t.recv_all(c), b"", "the end of a held visitor's echo")
        c.close()


def reloads(s):
    return s.srv.stderr_text().count("auth method 'users' reloaded")


def sighup(s, expect_ok=True):
    before_ok = reloads(s)
    before_fail = s.srv.stderr_text().count("reload of auth method 'users' failed")
    s.srv.send_signal(signal.SIGHUP)
    if expect_ok:
        t.wait_for(lambda: reloads(s) > before_ok, 20, "mgrokd to reload the users file")
    else:
        t.wait_for(lambda: s.srv.stderr_text().count("reload of auth method 'users' failed")
                   > before_fail, 20, "mgrokd to report the broken users file")


# ---- the cases -----------------------------------------------------------------------


def right_user(env, s):
    s.alice = user_client(env, s, "alice", ALICE, [s.lo], "mgrok-alice")
    t.echo_check(s.lo, b"alice's tunnel\n")
    t.echo_check(s.lo, t.payload(1, 200000), what="200 kB echo")
    t.check(re.search(r"authenticated as 'alice'", s.srv.stderr_text()),
            "mgrokd did not log the identity 'alice'", stderr=s.srv.stderr_text()[-800:])


def wrong_token_unknown_user(env, s):
    e1 = refused_client(env, s, "alice", WRONG, [s.lo + 1], "mgrok-alice-wrong", "a wrong token")
    e2 = refused_client(env, s, "mallory", MALLORY, [s.lo + 1], "mgrok-mallory",
                        "an unknown user")
    for err in (e1, e2):
        t.check(AUTH_FAILED in err, "no %r on stderr" % AUTH_FAILED, stderr=err[-800:])
        t.check("reconnecting" not in err, "mgrok retried after DENIED", stderr=err[-800:])
    t.check_eq(mgrok_lines(e2), mgrok_lines(e1), "messages for an unknown user vs. a wrong "
               "token (they must not tell one from the other)")
    # On the wire: both got a challenge (inside handshake_users), then the same DENIED.
    r1 = denied(s, "alice", WRONG)
    r2 = denied(s, "mallory", MALLORY)
    t.check_eq(r1, (t.HS_DENIED, AUTH_FAILED.encode()), "reply to alice with a wrong token")
    t.check_eq(r2, r1, "reply to an unknown user vs. a wrong token")
    # The token method is not offered by this server.
    r = t.RawSession(s.port)
    try:
        r.hs_send(t.AUTH_TOKEN, os.urandom(16))
        status, reason = r.hs_reply()
        t.check_eq(status, t.HS_UNSUPPORTED, "reply to the token method on a users server",
                   reason=reason)
    finally:
        r.close()


def token_file(env, s):
    s.bob = user_client(env, s, "bob", BOB1, [s.lo + 4], "mgrok-bob")
    t.echo_check(s.lo + 4, b"bob's tunnel (token from token_file)\n")
    # token_file on the client side as well.
    path = env.write_file("erin.token", ERIN + "\n")
    erin = user_client(env, s, "erin", path, [s.lo + 7], "mgrok-erin", token_key="token_file")
    t.echo_check(s.lo + 7, b"erin's tunnel\n")
    t.check_eq(erin.stop(), 0, "exit code of erin's mgrok on SIGTERM")


def forbidden_port(env, s):
    bad = s.lo + 5
    err = refused_client(env, s, "alice", ALICE, [bad], "mgrok-alice-port", "a port not alice's")
    want = "registration refused (status 2): "
    t.check(want in err and "alice" in err.split(want, 1)[1].splitlines()[0],
            "no refusal with status 2 naming alice", stderr=err[-800:])
    t.check(t.port_closed(bad), "a refused port is bound")
    r = raw_user(s, "alice", ALICE)
    try:
        expect_ack(r.register("notmine", bad), t.ACK_PORT_NOT_ALLOWED, "notmine", "alice")
        expect_ack(r.register("low", 80), t.ACK_PORT_NOT_ALLOWED, "low",
                   "port 80 is not allowed on this server")
        ack = r.register("pick", 0)
        expect_ack(ack, t.ACK_OK, "pick (port 0)")
        t.check(s.lo <= ack.port <= s.lo + 3, "the server picked port %d, not one of alice's "
                "(%d-%d)" % (ack.port, s.lo, s.lo + 3))
    finally:
        r.close()


def max_proxies(env, s):
    for p in (s.lo + 1, s.lo + 2):
        t.wait_for(lambda: t.port_closed(p), 10, "port %d to be free" % p)
    r = raw_user(s, "alice", ALICE)
    try:
        expect_ack(r.register("a1", s.lo + 1), t.ACK_OK, "a1")
        expect_ack(r.register("a2", s.lo + 2), t.ACK_OK, "a2")
        expect_ack(r.register("a3", s.lo + 3), t.ACK_LIMIT, "a3",
                   "user alice may have at most 2 proxies")
    finally:
        r.close()
    # bob has no limit of his own: three in one session.
    r = raw_user(s, "bob", BOB1)
    try:
        for i, p in enumerate((s.lo + 1, s.lo + 2, s.lo + 3)):
            t.wait_for(lambda: t.port_closed(p), 10, "port %d to be free" % p)
            expect_ack(r.register("b%d" % i, p), t.ACK_OK, "b%d" % i)
    finally:
        r.close()
    for p in (s.lo + 1, s.lo + 2, s.lo + 3):
        t.wait_for(lambda: t.port_closed(p), 10, "port %d to be free" % p)
    cl = user_client(env, s, "alice", ALICE, [s.lo + 1, s.lo + 2, s.lo + 3], "mgrok-alice-3",
                     lines=2)
    t.wait_for(lambda: "registration refused" in cl.stderr_text(), 20,
               "mgrok to report its refused proxy")
    err = cl.stderr_text()
    t.check("registration refused (status 6): user alice may have at most 2 proxies" in err,
            "no LIMIT refusal naming alice", stderr=err[-800:])
    for _, _, port, _ in cl.public_lines():
        t.echo_check(port, b"alice, one of two\n")
    t.check(cl.alive(), "mgrok exited although two proxies are up")
    t.check_eq(cl.stop(), 0, "exit code of mgrok on SIGTERM")


def types(env, s):
    err = refused_client(env, s, "carol", CAROL, [s.lo + 6], "mgrok-carol", "a forbidden type")
    t.check("registration refused (status 7): user carol may not register tcp proxies" in err,
            "no FORBIDDEN refusal naming carol and tcp", stderr=err[-800:])
    r = raw_user(s, "carol", CAROL)
    try:
        expect_ack(r.register("t", s.lo + 6), t.ACK_FORBIDDEN, "t (tcp)", "carol")
        expect_ack(r.register("u", s.lo + 6, proxy_type=t.PROXY_UDP, options=b"{}"), t.ACK_OK,
                   "u (udp)")
    finally:
        r.close()


def max_streams(env, s):
    held = hold(s.lo, 2, b"alice")
    try:
        for k in range(2):
            extra = t.connect(s.lo)
            try:
                closed_at_once(extra, "alice's visitor %d beyond her max_streams 2" % (k + 3))
            finally:
                extra.close()
        t.check("2 streams open, refusing visitor" in s.srv.stderr_text(),
                "mgrokd did not log the refused visitor", stderr=s.srv.stderr_text()[-800:])
        for i, c in enumerate(held):
            c.sendall(b"still %d\n" % i)
            t.check_eq(c.recv(64), b"still %d\n" % i, "echo on alice's held visitor %d" % i)
        # bob has no stream limit of his own: three at once.
        release(hold(s.lo + 4, 3, b"bob"))
    finally:
        release(held)

    def alice_works():
        try:
            return t.roundtrip(s.lo, b"free again\n") == b"free again\n"
        except ConnectionResetError:
            return False
    t.wait_for(alice_works, 20, "alice's tunnel to take visitors again")


def takeover(env, s):
    cid = "shared-" + os.urandom(6).hex()
    p = s.lo + 1
    t.wait_for(lambda: t.port_closed(p), 10, "port %d to be free" % p)
    a1 = raw_user(s, "alice", ALICE).hello(cid)
    expect_ack(a1.register("web", p), t.ACK_OK, "web (alice)")
    b = raw_user(s, "bob", BOB1).hello(cid)
    expect_ack(b.register("web", p), t.ACK_PORT_IN_USE, "web (bob, alice's clientId)")
    t.check_eq(a1.serve_visitor(p, b"to alice\n", b"alice 1\n"), b"alice 1\n",
               "alice's session after bob showed her clientId")
    a2 = raw_user(s, "alice", ALICE).hello(cid)
    expect_ack(a2.register("web", p), t.ACK_OK, "web (alice again: takeover)")
    a1.expect_go_away(t.GOAWAY_REPLACED, "a takeover by alice's own clientId")
    t.check_eq(a2.serve_visitor(p, b"to alice\n", b"alice 2\n"), b"alice 2\n",
               "the new session of alice")
    for x in (a1, a2, b):
        x.close()


def reload(env, s):
    refused_client(env, s, "dave", DAVE, [s.lo + 5], "mgrok-dave-early", "dave before reload")
    t.check_eq(denied(s, "erin", ERIN)[0], t.HS_OK, "erin's handshake before the reload")
    t.check_eq(denied(s, "bob", BOB1)[0], t.HS_OK, "bob's old token before the reload")

    # erin has a session open over the reload that removes her.
    erin = raw_user(s, "erin", ERIN).hello("erin-" + os.urandom(4).hex())
    expect_ack(erin.register("e", s.lo + 7), t.ACK_OK, "e (erin, before the reload)")

    users = initial_users(s)
    del users["erin"]
    users["dave"] = {"token": DAVE, "ports": [s.lo + 5]}
    users_file(env, s, users)
    with open(s.bob_token_file, "w") as f:
        f.write(BOB2 + "\n")
    sighup(s)

    t.check_eq(denied(s, "erin", ERIN), (t.HS_DENIED, AUTH_FAILED.encode()),
               "erin's handshake after she was removed")
    # Her open session is not dropped, but registers nothing more.
    t.check_eq(erin.serve_visitor(s.lo + 7, b"to erin\n", b"erin's still here\n"),
               b"erin's still here\n", "erin's proxy after the reload that removed her")
    expect_ack(erin.register("e2", 0), t.ACK_FORBIDDEN, "e2 (erin, after removal)",
               "user erin no longer exists")
    erin.close()
    t.check_eq(denied(s, "bob", BOB1), (t.HS_DENIED, AUTH_FAILED.encode()),
               "bob's old token after the reload")
    t.check_eq(denied(s, "bob", BOB2)[0], t.HS_OK, "bob's new token after the reload")
    dave = user_client(env, s, "dave", DAVE, [s.lo + 5], "mgrok-dave")
    t.echo_check(s.lo + 5, b"dave, added by SIGHUP\n")
    bob2 = user_client(env, s, "bob", BOB2, [s.lo + 6], "mgrok-bob-new")
    t.echo_check(s.lo + 6, b"bob's new token\n")
    # The sessions of before are still up, on their first connection.
    for cl, port in ((s.alice, s.lo), (s.bob, s.lo + 4)):
        t.echo_check(port, b"survived the reload\n")
        t.check(cl.alive(), "%s exited over the reload" % cl.name)
        t.check_eq(cl.stderr_text().count("connected to"), 1,
                   "connections of %s (it must not have reconnected)" % cl.name,
                   stderr=cl.stderr_text()[-800:])

    # A broken file: the old state stays.
    env.write_file("users.json", '{"users": {"alice": {"token": "%s" "ports": []}}' % ALICE)
    sighup(s, expect_ok=False)
    t.check_eq(denied(s, "dave", DAVE)[0], t.HS_OK, "dave after a failed reload")
    t.echo_check(s.lo, b"alice after a failed reload\n")
    t.check(dave.alive() and bob2.alive(), "a client exited over a failed reload")


def token_env(env, s):
    """"token_env": "MGROK_TOKEN" in a users config: the variable is the
    user's token, not a switch to the token method (it used to replace the
    file's auth whenever it was set)."""
    conf = t.write_json(env, "mgrok-alice-env.json", {
        "server": "127.0.0.1:%d" % s.port,
        "auth": {"method": "users", "user": "alice", "token_env": "MGROK_TOKEN"},
        "proxies": [{"name": "penv", "type": "tcp", "local": str(s.echo.port),
                     "remote_port": s.lo + 3}]})
    cl = env.spawn("mgrok-alice-env", env.client_argv(None, None, None, config=conf),
                   t.Client, env={"MGROK_TOKEN": ALICE})
    cl.wait_lines(1)
    t.echo_check(s.lo + 3, b"alice by token_env\n")
    t.check_eq(cl.stop(), 0, "exit code of mgrok on SIGTERM")


def main(env):
    s = Setup()
    s.port = env.ports.take()
    s.lo, s.hi = env.ports.take_range(8)
    s.echo = env.echo_service()
    s.bob_token_file = env.write_file("bob.token", BOB1 + "\n")
    users_file(env, s, initial_users(s))
    conf = t.write_json(env, "mgrokd-users.json", {
        "listen": "127.0.0.1:%d" % s.port,
        "auth": {"method": "users", "file": os.path.join(env.dir, "users.json")},
        "allow_ports": ["%d-%d" % (s.lo, s.hi)],
        # Many failed handshakes from 127.0.0.1 here are on purpose.
        "rate_limit": {"failures": 1000, "interval": 60}})
    s.srv = env.start_server(token=None, config=conf, extra=["-v"], name="mgrokd-users")

    for what, fn in (("right user", right_user),
                     ("wrong token, unknown user", wrong_token_unknown_user),
                     ("token_file", token_file),
                     ("forbidden port", forbidden_port),
                     ("max_proxies", max_proxies),
                     ("types", types),
                     ("max_streams", max_streams),
                     ("takeover across users", takeover),
                     ("token_env MGROK_TOKEN in a users config", token_env),
                     ("SIGHUP reload", reload)):
        t.log("---- %s" % what)
        with env.case(what):
            fn(env, s)

    t.check(s.srv.alive(), "mgrokd died")
    for p in env.procs:
        if p.alive():
            t.check_eq(p.stop(), 0, "exit code of %s on SIGTERM" % p.name)
    t.check_no_secrets(env, SECRETS)
    env.check_services()


t.run(main)
