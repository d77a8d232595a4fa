"""Env: one test's directory, ports, programs and services, and what is
recorded of their output."""

import contextlib
import json
import os
import subprocess
import tempfile

from .checks import DEADLINE, TestFailure, check, log
from .ports import PortBlock, udp_port_free
from .procs import MGROK, MGROKD, PLUGIN_DIR, Client, Proc, Server
from .services import Service, UdpService, echo_handler, udp_echo_handler


class Env:
    def __init__(self, name):
        self.name = name
        self.dir = tempfile.mkdtemp(prefix="mgrok-e2e-%s-" % name)
        self.ports = PortBlock()
        self.procs = []
        self.services = []
        self.failures = []
        self._names = {}

    # programs

    def _unique(self, base):
        n = self._names.get(base, 0) + 1
        self._names[base] = n
        return base if n == 1 else "%s.%d" % (base, n)

    def spawn(self, name, argv, cls=Proc, env=None, preexec_fn=None):
        p = cls(self._unique(name), argv, self.dir, env=env, preexec_fn=preexec_fn)
        self.procs.append(p)
        return p

    def server_argv(self, token="server-secret", port=None, allow=None, extra=(),
                    listen_host="127.0.0.1", config=None):
        argv = [MGROKD, "--plugin-dir", PLUGIN_DIR]
        if config:
            argv += ["-c", config]
        if port is not None:
            host = "[%s]" % listen_host if ":" in listen_host else listen_host
            argv += ["--listen", "%s:%d" % (host, port)]
        if token is not None:
            argv += ["--token", token]
        if allow is not None:
            argv += ["--allow-ports", "%d-%d" % allow]
        return argv + list(extra)

    def start_server(self, token="server-secret", nports=4, port=None, allow=None, extra=(),
                     listen_host="127.0.0.1", config=None, name="mgrokd", wait=True):
        """Starts mgrokd on a reserved control port with nports reserved
        public ports (--allow-ports); waits until it listens.
        With a config, port and allow say what the file has (they are not
        given on the command line)."""
        if config:
            argv = self.server_argv(token, None, None, extra, listen_host, config)
        else:
            if port is None:
                port = self.ports.take()
            if allow is None and nports:
                allow = self.ports.take_range(nports)
            argv = self.server_argv(token, port, allow, extra, listen_host, config)
        srv = self.spawn(name, argv, Server)
        srv.port, srv.allow, srv.token = port, allow, token
        srv.listen_host = listen_host
        if wait:
            srv.wait_ready()
        return srv

    def client_argv(self, local, server, token="server-secret", remote_port=None, name=None,
                    extra=(), server_host="127.0.0.1", config=None, proto="tcp"):
        argv = [MGROK, "--plugin-dir", PLUGIN_DIR]
        if config:
            argv += ["-c", config]
        if server is not None:
            if isinstance(server, int):
                host = "[%s]" % server_host if ":" in server_host else server_host
                server = "%s:%d" % (host, server)
            argv += ["--server", server]
        if token is not None:
            argv += ["--token", token]
        if remote_port is not None:
            argv += ["--remote-port", str(remote_port)]
        if name is not None:
            argv += ["--name", name]
        argv += list(extra)
        if local is not None:
            argv += [proto, str(local)]
        return argv

    def start_client(self, local, server, token="server-secret", remote_port=None, name=None,
                     extra=(), server_host="127.0.0.1", config=None, lines=1, cname="mgrok",
                     proto="tcp", preexec_fn=None):
        """Starts mgrok and waits for `lines` public-address lines.
        server is mgrokd's port (or a Server, or "host:port"); proto is the
        quick form's TYPE (tcp or udp); preexec_fn runs in the child before
        mgrok (e.g. to set a resource limit)."""
        if isinstance(server, Server):
            server_host, server = server.listen_host, server.port
        argv = self.client_argv(local, server, token, remote_port, name, extra, server_host,
                                config, proto)
        cl = self.spawn(cname, argv, Client, preexec_fn=preexec_fn)
        if lines:
            cl.wait_lines(lines)
        return cl

    def run_program(self, argv, timeout=DEADLINE, env=None):
        """Runs a program to completion: (exit code, stdout, stderr)."""
        full_env = dict(os.environ)
        full_env.update(env or {})
        log("run: %s" % " ".join(str(a) for a in argv))
        try:
            r = subprocess.run([str(a) for a in argv], stdin=subprocess.DEVNULL,
                               capture_output=True, timeout=timeout, env=full_env,
                               start_new_session=True)
        except subprocess.TimeoutExpired:
            raise TestFailure("%s did not exit within %.0f s" % (argv[0], timeout))
        return r.returncode, r.stdout.decode("utf-8", "replace"), r.stderr.decode("utf-8",
                                                                                  "replace")

    # services

    def service(self, handler, host="127.0.0.1", port=0, name="service"):
        s = Service(handler, host, port, name)
        self.services.append(s)
        return s

    def echo_service(self, **kw):
        return self.service(echo_handler, name="echo", **kw)

    def udp_service(self, handler, host="127.0.0.1", port=0, name="udp-service"):
        s = UdpService(handler, host, port, name)
        self.services.append(s)
        return s

    def udp_echo_service(self, **kw):
        kw.setdefault("name", "udp-echo")
        return self.udp_service(udp_echo_handler, **kw)

    def udp_ports(self, n=1, host="127.0.0.1"):
        """n consecutive ports of the block that are free for UDP on host
        too (the block is only checked for TCP); returns the first."""
        lo = self.ports.take(n)
        busy = [p for p in range(lo, lo + n) if not udp_port_free(p, host)]
        check(not busy, "reserved ports busy for UDP on %s" % host, ports=busy)
        return lo

    def client_config(self, server, proxies, token="server-secret", name="mgrok.json",
                      server_host="127.0.0.1", **more):
        """Writes a JSON client config (server: mgrokd's port or a Server)."""
        if isinstance(server, Server):
            server_host, server = server.listen_host, server.port
        host = "[%s]" % server_host if ":" in server_host else server_host
        conf = {"server": "%s:%d" % (host, server), "proxies": proxies}
        if token is not None:
            conf["auth"] = {"method": "token", "token": token}
        conf.update(more)
        return self.write_file(name, json.dumps(conf, indent=2) + "\n")

    def write_file(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def check_services(self, allow_resets=0):
        """Fails if a service's handler raised; allow_resets connection
        resets are expected (e.g. streams of a session that died)."""
        for s in self.services:
            errors = list(s.errors)
            resets = [e for e in errors if isinstance(e, ConnectionResetError)]
            others = [e for e in errors if not isinstance(e, ConnectionResetError)]
            check(not others and len(resets) <= allow_resets,
                  "service %s had errors" % s.name, errors=[repr(e) for e in errors[:5]],
                  resets_allowed=allow_resets)

    # sub-cases that fail on their own

    @contextlib.contextmanager
    def case(self, what):
        """A sub-case whose failure is recorded (and fails the test at the
        end) while the test goes on with the next one."""
        try:
            yield
        except TestFailure as e:
            log("FAILED sub-case %s: %s" % (what, e))
            self.failures.append("%s: %s" % (what, e))

    def check_cases(self):
        check(not self.failures, "%d sub-case(s) failed:\n  %s" %
              (len(self.failures), "\n  ".join(self.failures)))

    # cleanup

    def dump_logs(self):
        for p in self.procs:
            print(p.tail(), flush=True)

    def cleanup(self):
        for s in self.services:
            s.close()
        for p in self.procs:
            p.stop(timeout=5)
            p.close_files()
        self.ports.release()


def write_json(env, name, obj):
    """Writes obj as JSON to the file name in the test's directory; returns
    its path."""
    return env.write_file(name, json.dumps(obj, indent=2) + "\n")


def run_recorded(env, argv, timeout=DEADLINE, env_vars=None):
    """env.run_program, and keeps the output for check_no_secrets."""
    code, out, err = env.run_program(argv, timeout, env_vars)
    env.__dict__.setdefault("recorded_outputs", []).append((" ".join(map(str, argv[:4])), out,
                                                           err))
    return code, out, err


def check_no_secrets(env, secrets, extra=()):
    """Fails if any of secrets occurs in the stderr or stdout of any program
    the test started (env.spawn), in any output kept by run_recorded, or in
    the (label, text) pairs of extra.  Stop the programs first, so that
    everything they would log is written."""
    sources = []
    for p in env.procs:
        for label, path in (("stderr", p.err_path), ("stdout", p.out_path)):
            try:
                with open(path, "rb") as f:
                    sources.append(("%s %s" % (p.name, label), f.read().decode("utf-8",
                                                                               "replace")))
            except OSError:
                pass
    for what, out, err in env.__dict__.get("recorded_outputs", []):
        sources += [("%s stdout" % what, out), ("%s stderr" % what, err)]
    sources += list(extra)
    found = []
    for label, text in sources:
        for secret in secrets:
            check(len(secret) >= 8, "a secret to look for must be at least 8 characters",
                  secret=secret)
            if secret in text:
                line = next(l for l in text.splitlines() if secret in l)
                found.append("%s contains secret %r: %s" % (label, secret, line[:300]))
    check(not found, "secrets in the output of the programs:\n    " + "\n    ".join(found))
    log("no secret in %d outputs (%d secrets looked for)" % (len(sources), len(secrets)))
