#!/usr/bin/env python3
"""The server goes away (SIGKILL, then SIGTERM) and comes back on the same
control port: the client reconnects, re-registers, and the same public port
works again."""
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mgroktest as t


def main(env):
    control = env.ports.take()
    allow = env.ports.take_range(3)
    remote = allow[0] + 1
    echo = env.echo_service()

    srv = env.start_server(port=control, allow=allow)
    cl = env.start_client(echo.port, srv, remote_port=remote)
    t.check_eq(cl.public_port, remote, "public port")
    t.echo_check(remote, b"before any restart\n")

    for round_no, sig in enumerate((signal.SIGKILL, signal.SIGTERM), start=2):
        # A visitor connection that is open while the server goes away.
        held = t.connect(remote)
        held.sendall(b"ping\n")
        t.check_eq(held.recv(64), b"ping\n", "echo on the held connection")

        code = srv.stop(sig)
        if sig == signal.SIGTERM:
            t.check_eq(code, 0, "mgrokd's exit code on SIGTERM")
        else:
            t.check_eq(code, -signal.SIGKILL, "mgrokd's exit status after SIGKILL")
        t.log("mgrokd stopped with signal %d" % sig)

        # The held connection ends (EOF or reset), it does not hang.
        try:
            rest = t.recv_all(held)
        except ConnectionResetError:
            rest = b""
        held.close()
        t.check_eq(rest, b"", "bytes on a connection whose server died")
        t.check(cl.alive(), "mgrok exited when the server went away (code %s)" % cl.returncode)

        srv = env.start_server(port=control, allow=allow)
        lines = cl.wait_lines(round_no)
        t.check_eq(len(lines), round_no, "public address lines after restart %d" % (round_no - 1))
        t.check_eq(lines[-1][2], remote, "re-registered public port")
        t.echo_check(remote, ("after restart %d\n" % (round_no - 1)).encode())
        t.echo_check(remote, t.payload(round_no, 400000))
        t.log("reconnected and re-registered after signal %d" % sig)

    err = cl.stderr_text()
    t.check("reconnecting" in err, "the client did not log its reconnect attempts",
            stderr_tail=err[-1000:])
    t.check(cl.alive(), "mgrok died")
    t.check_eq(cl.stop(), 0, "mgrok's exit code on SIGTERM")
    # The two connections held open while the server went away were reset.
    env.check_services(allow_resets=2)


t.run(main)
