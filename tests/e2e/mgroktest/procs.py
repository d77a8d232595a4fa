"""The programs under test: where they are, each run in its own process
group with its output kept, and what a process holds."""

import os
import re
import signal
import subprocess
import threading

from .checks import DEADLINE, TestFailure, check, log, wait_for

HERE = os.path.dirname(os.path.abspath(__file__))
SRCDIR = os.environ.get("MGROK_SRCDIR") or os.path.normpath(os.path.join(HERE, "..", "..", ".."))
BUILDDIR = os.environ.get("MGROK_BUILDDIR") or SRCDIR
PLUGIN_DIR = os.environ.get("MGROK_PLUGIN_DIR") or os.path.join(BUILDDIR, "plugins", ".libs")
MGROKD = os.path.join(BUILDDIR, "core", "mgrokd")
MGROK = os.path.join(BUILDDIR, "core", "mgrok")

PUBLIC_LINE = re.compile(r"^(\w+)://(.+):(\d+) -> (\S+)$")


class Proc:
    """A program under test in its own process group.

    stderr goes to NAME.err in the test's directory; stdout to NAME.out, and
    its lines are also collected in .lines as they come (mgrok prints its
    public address there)."""

    def __init__(self, name, argv, workdir, env=None, preexec_fn=None):
        self.name = name
        self.argv = [str(a) for a in argv]
        self.err_path = os.path.join(workdir, name + ".err")
        self.out_path = os.path.join(workdir, name + ".out")
        self.lines = []
        self._lines_lock = threading.Lock()
        self._err = open(self.err_path, "wb")
        self._out = open(self.out_path, "wb")
        full_env = dict(os.environ)
        full_env.update(env or {})
        log("start %s: %s" % (name, " ".join(self.argv)))
        self.popen = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                      stderr=self._err, env=full_env, start_new_session=True,
                                      preexec_fn=preexec_fn)
        self.pid = self.popen.pid
        self._reader = threading.Thread(target=self._read_stdout, daemon=True)
        self._reader.start()

    def _read_stdout(self):
        for raw in iter(self.popen.stdout.readline, b""):
            self._out.write(raw)
            self._out.flush()
            with self._lines_lock:
                self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
        self.popen.stdout.close()

    def stdout_lines(self):
        with self._lines_lock:
            return list(self.lines)

    def alive(self):
        return self.popen.poll() is None

    @property
    def returncode(self):
        return self.popen.poll()

    def stderr_text(self):
        self._err.flush()
        with open(self.err_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stderr_size(self):
        """Bytes in the stderr log so far (a mark for stderr_since)."""
        self._err.flush()
        return os.path.getsize(self.err_path)

    def stderr_since(self, mark):
        """The stderr log from byte offset mark on."""
        self._err.flush()
        with open(self.err_path, "rb") as f:
            f.seek(mark)
            return f.read().decode("utf-8", "replace")

    def stdout_text(self):
        self._reader.join(timeout=5)
        return "\n".join(self.stdout_lines())

    def wait_exit(self, timeout=DEADLINE):
        """Waits for the program to exit by itself; returns its exit code."""
        try:
            code = self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise TestFailure("%s did not exit within %.0f s" % (self.name, timeout))
        self._reader.join(timeout=5)
        return code

    def send_signal(self, sig):
        if self.alive():
            os.kill(self.pid, sig)

    def stop(self, sig=signal.SIGTERM, timeout=15):
        """Sends sig to the process group, waits up to timeout, then SIGKILLs
        the group.  Returns the exit code (negative: killed by that signal)."""
        if self.alive():
            try:
                os.killpg(self.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                log("%s ignored signal %d for %.0f s: SIGKILL" % (self.name, sig, timeout))
                self.kill_group()
        self._reader.join(timeout=5)
        return self.popen.returncode

    def kill_group(self):
        # Only while the leader is not reaped: afterwards its pid (the group
        # id) may belong to somebody else.
        if self.popen.poll() is None:
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        try:
            self.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass

    def tail(self, n=60):
        out = []
        for label, path in (("stderr", self.err_path), ("stdout", self.out_path)):
            try:
                with open(path, "rb") as f:
                    lines = f.read().decode("utf-8", "replace").splitlines()
            except OSError:
                continue
            if lines:
                out.append("----- %s %s (last %d of %d lines) -----" %
                           (self.name, label, min(n, len(lines)), len(lines)))
                out.extend(lines[-n:])
        status = "running" if self.alive() else "exit code %s" % self.popen.returncode
        out.insert(0, "===== %s (pid %d, %s): %s" % (self.name, self.pid, status,
                                                      " ".join(self.argv)))
        return "\n".join(out)

    def close_files(self):
        self._err.close()
        self._out.close()


class Server(Proc):
    """mgrokd; .port is its control port, .ports its allowed (lo, hi)."""

    def wait_ready(self, timeout=DEADLINE):
        def ready():
            if not self.alive():
                raise TestFailure("%s exited with code %s while starting" %
                                  (self.name, self.popen.returncode))
            return "listening on" in self.stderr_text()
        wait_for(ready, timeout, "%s to listen" % self.name)


class Client(Proc):
    """mgrok; .public_ports are the ports of its "tcp://" lines so far."""

    def wait_lines(self, count, timeout=DEADLINE):
        """Waits until stdout has count public-address lines; returns them
        parsed as (scheme, host, port, local).  Fails if mgrok exits."""
        def enough():
            got = self.public_lines()
            if len(got) >= count:
                return got
            if not self.alive():
                raise TestFailure("%s exited with code %s before printing %d public address "
                                  "line(s); stdout so far: %r" %
                                  (self.name, self.popen.returncode, count, self.stdout_lines()))
            return None
        return wait_for(enough, timeout, "%d public address line(s) from %s" % (count, self.name))

    def public_lines(self):
        out = []
        for line in self.stdout_lines():
            m = PUBLIC_LINE.match(line)
            check(m, "unexpected line on %s's stdout" % self.name, line=line)
            out.append((m.group(1), m.group(2), int(m.group(3)), m.group(4)))
        return out

    @property
    def public_port(self):
        lines = self.public_lines()
        check(lines, "%s has printed no public address" % self.name)
        return lines[-1][2]


# ---- what a program says and holds ------------------------------------------


def wait_log(proc, pattern, count=1, timeout=DEADLINE, what=None):
    """Polls proc's stderr until the regular expression pattern matches
    count times; returns the matches (re.findall).  Fails if proc exits
    first or after timeout seconds."""
    rx = re.compile(pattern)

    def enough():
        found = rx.findall(proc.stderr_text())
        if len(found) >= count:
            return found
        if not proc.alive():
            raise TestFailure("%s exited with code %s while waiting for %s" %
                              (proc.name, proc.returncode, what or repr(pattern)))
        return None
    return wait_for(enough, timeout, what or "%d x %r in %s's log" % (count, pattern, proc.name),
                    interval=0.1)


def rss_kib(pid):
    """The resident set size of process pid in KiB (VmRSS), or None once it
    has exited."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


class RssSampler:
    """Samples a process's VmRSS every interval seconds in a thread, from
    start() until stop(); .max and .samples (KiB)."""

    def __init__(self, pid, interval=0.1):
        self.pid = pid
        self.interval = interval
        self.samples = []
        self.max = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def sample(self):
        v = rss_kib(self.pid)
        if v is not None:
            self.samples.append(v)
            self.max = max(self.max, v)
        return v

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=5)
        self.sample()
