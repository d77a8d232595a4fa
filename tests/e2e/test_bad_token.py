#!/usr/bin/env python3
"""A wrong token: the client says "authentication failed" and exits without
retrying; the server keeps serving; no log ever contains a token."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mgroktest as t

RIGHT = "Right-Token-7f3a9c51e2d84b06"
WRONG = "Wrong-Token-0b6d48e215c9a3f7"


def main(env):
    srv = env.start_server(token=RIGHT, nports=2, extra=["-v"])
    echo = env.echo_service()

    for i in range(2):
        bad = env.start_client(echo.port, srv, token=WRONG, lines=0, extra=["-v"],
                               cname="mgrok-wrong")
        code = bad.wait_exit(timeout=t.DEADLINE)
        err = bad.stderr_text()
        t.check(code != 0, "a client with a wrong token exited with 0")
        t.check(code > 0, "a client with a wrong token died of signal %d" % -code)
        t.check("authentication failed" in err, "no \"authentication failed\" on stderr",
                stderr_tail=err[-800:])
        t.check("reconnecting" not in err, "the client with a wrong token scheduled a retry",
                stderr_tail=err[-800:])
        t.check_eq(bad.public_lines(), [], "public lines of a client that was refused")
        t.check(srv.alive(), "mgrokd died after a wrong token")
        t.log("wrong token, round %d: exit code %d" % (i, code))

    good = env.start_client(echo.port, srv, token=RIGHT, extra=["-v"], cname="mgrok-right")
    t.echo_check(good.public_port)
    t.echo_check(good.public_port, t.payload(1, 100000))
    t.check(srv.alive() and good.alive(), "mgrokd or mgrok died")

    # Stop them so that every log line is written, then look for the secrets.
    for p in (good, srv):
        code = p.stop()
        t.check_eq(code, 0, "exit code of %s on SIGTERM" % p.name)
    for p in env.procs:
        for text, what in ((p.stderr_text(), "stderr"), (open(p.out_path).read(), "stdout")):
            for secret in (RIGHT, WRONG):
                t.check(secret not in text, "%s's %s contains a token" % (p.name, what),
                        token=secret)
    env.check_services()


t.run(main)
