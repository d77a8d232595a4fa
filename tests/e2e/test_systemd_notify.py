#!/usr/bin/env python3
"""The service manager's notifications (sd_notify without libsystemd): the
test plays systemd with its own AF_UNIX datagram socket in $NOTIFY_SOCKET.

mgrokd: READY=1 once its ports are bound (the control port accepts when it
arrives), STATUS= with the sessions and proxies (at most one a second),
RELOADING=1 with a MONOTONIC_USEC of the moment on SIGHUP then READY=1, and
STOPPING=1 on SIGTERM. mgrok: READY=1 once its proxy is registered,
STOPPING=1 on SIGTERM. Then the same through an abstract socket (@name), and
a NOTIFY_SOCKET that is neither (mgrokd runs on and says so)."""
import os
import signal
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mgroktest as t

TOKEN = "notify-token"


def monotonic_usec():
    return int(time.clock_gettime(time.CLOCK_MONOTONIC) * 1e6)


class Manager:
    """The service manager's end: a datagram socket; .messages are the
    (arrival time, {key: value}) received so far."""

    def __init__(self, address):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        # An abstract name is a NUL and the name, as systemd's '@' stands for.
        self.sock.bind("\0" + address[1:] if address.startswith("@") else address)
        self.address = address
        self.messages = []

    def next(self, what, timeout=10.0):
        """The next datagram, parsed; fails after timeout seconds."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(4096)
        except socket.timeout:
            raise t.TestFailure("no notification within %.0f s (waiting for %s); had %r" %
                                (timeout, what, self.messages))
        fields = {}
        for line in data.decode().split("\n"):
            t.check("=" in line, "a notification line is not KEY=VALUE", datagram=data)
            key, value = line.split("=", 1)
            fields[key] = value
        self.messages.append((time.monotonic(), fields))
        t.log("notification: %r" % fields)
        return fields

    def expect(self, key, value, what, timeout=10.0):
        """Reads datagrams until one has key=value; returns it. Only STATUS=
        updates may come before it."""
        while True:
            fields = self.next(what, timeout)
            if fields.get(key) == value:
                return fields
            t.check(set(fields) == {"STATUS"}, "unexpected notification before %s" % what,
                    got=fields)

    def none_within(self, seconds, what):
        self.sock.settimeout(seconds)
        try:
            data = self.sock.recv(4096)
        except socket.timeout:
            return
        raise t.TestFailure("notification %r after %s" % (data, what))

    def close(self):
        self.sock.close()


def start_server(env, manager, name="mgrokd"):
    port = env.ports.take()
    allow = env.ports.take_range(2)
    srv = env.spawn(name, env.server_argv(TOKEN, port, allow), t.Server,
                    env={"NOTIFY_SOCKET": manager.address})
    srv.port, srv.allow, srv.token, srv.listen_host = port, allow, TOKEN, "127.0.0.1"
    return srv


def ready_when_bound(manager, srv):
    """READY=1 comes first, and by then the control port accepts."""
    first = manager.next("READY=1 from %s" % srv.name)
    t.check_eq(first.get("READY"), "1", "mgrokd's first notification is READY=1", got=first)
    with socket.create_connection(("127.0.0.1", srv.port), timeout=2):
        pass
    t.check_eq(first.get("STATUS"), "0 sessions, 0 proxies", "the status sent with READY=1")


def server_and_client(env):
    srv_manager = Manager(os.path.join(env.dir, "notify.sock"))
    srv = start_server(env, srv_manager)
    ready_when_bound(srv_manager, srv)

    # The client: READY=1 once its proxy is registered.
    cl_manager = Manager(os.path.join(env.dir, "notify-client.sock"))
    echo = env.echo_service()
    cl = env.spawn("mgrok", env.client_argv(echo.port, srv.port, token=TOKEN), t.Client,
                   env={"NOTIFY_SOCKET": cl_manager.address})
    got = cl_manager.next("READY=1 from mgrok")
    t.check_eq(got, {"READY": "1"}, "mgrok's first notification")
    cl.wait_lines(1)
    t.echo_check(cl.public_port)

    # The server's status follows, one line a second at most.
    srv_manager.expect("STATUS", "1 session, 1 proxy", "the status of one session")
    statuses = [at for at, f in srv_manager.messages if "STATUS" in f]
    gaps = [b - a for a, b in zip(statuses, statuses[1:])]
    t.check(all(g > 0.8 for g in gaps), "STATUS= more than once a second", gaps=gaps)

    # SIGHUP: RELOADING=1 stamped with the moment, then READY=1.
    before = monotonic_usec()
    srv.send_signal(signal.SIGHUP)
    got = srv_manager.expect("RELOADING", "1", "RELOADING=1 after SIGHUP")
    after = monotonic_usec()
    t.check("MONOTONIC_USEC" in got, "RELOADING=1 without MONOTONIC_USEC", got=got)
    usec = int(got["MONOTONIC_USEC"])
    t.check(before <= usec <= after, "MONOTONIC_USEC is not CLOCK_MONOTONIC at the reload",
            before=before, usec=usec, after=after)
    got = srv_manager.next("READY=1 after the reload")
    t.check_eq(got.get("READY"), "1", "the notification after RELOADING=1", got=got)

    # The client goes: STOPPING=1 from it, and the server's status drops.
    cl.send_signal(signal.SIGTERM)
    t.check_eq(cl_manager.next("STOPPING=1 from mgrok"), {"STOPPING": "1"},
               "mgrok's notification on SIGTERM")
    t.check_eq(cl.wait_exit(), 0, "mgrok's exit code after SIGTERM")
    cl_manager.none_within(0.5, "mgrok's STOPPING=1")
    srv_manager.expect("STATUS", "0 sessions, 0 proxies", "the status once the client left")

    srv.send_signal(signal.SIGTERM)
    t.check_eq(srv_manager.next("STOPPING=1 from mgrokd"), {"STOPPING": "1"},
               "mgrokd's notification on SIGTERM")
    t.check_eq(srv.wait_exit(), 0, "mgrokd's exit code after SIGTERM")
    srv_manager.none_within(0.5, "mgrokd's STOPPING=1")
    srv_manager.close()
    cl_manager.close()


def abstract_socket(env):
    name = "@mgrok-test-notify-%d-%d" % (os.getpid(), int(time.time() * 1000) % 100000)
    manager = Manager(name)
    srv = start_server(env, manager, "mgrokd-abstract")
    ready_when_bound(manager, srv)
    srv.send_signal(signal.SIGHUP)
    manager.expect("RELOADING", "1", "RELOADING=1 through the abstract socket")
    t.check_eq(manager.next("READY=1 after the reload").get("READY"), "1", "after the reload")
    srv.send_signal(signal.SIGTERM)
    t.check_eq(manager.next("STOPPING=1"), {"STOPPING": "1"}, "STOPPING=1 through %s" % name)
    t.check_eq(srv.wait_exit(), 0, "mgrokd's exit code")
    manager.close()


def bad_socket(env):
    port = env.ports.take()
    srv = env.spawn("mgrokd-bad-socket", env.server_argv(TOKEN, port, None), t.Server,
                    env={"NOTIFY_SOCKET": "relative/notify.sock"})
    srv.wait_ready()
    t.check("NOTIFY_SOCKET" in srv.stderr_text(), "no word about a NOTIFY_SOCKET that is "
            "neither a path nor @name", log=srv.stderr_text())
    t.check_eq(srv.stop(), 0, "mgrokd's exit code with a bad NOTIFY_SOCKET")


def main(env):
    with env.case("a path"):
        server_and_client(env)
    with env.case("an abstract socket"):
        abstract_socket(env)
    with env.case("a bad NOTIFY_SOCKET"):
        bad_socket(env)


t.run(main)
