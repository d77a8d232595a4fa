"""Helpers of the soak tests (make soak): what a program holds, from /proc."""
import os
import re
import threading

import mgroktest as t

SETTLE = 30  # s: bound on the wait for descriptors to come back


def fd_count(proc):
    """Descriptors proc holds open."""
    return len(os.listdir("/proc/%d/fd" % proc.pid))


def fd_targets(proc):
    out = []
    for fd in sorted(os.listdir("/proc/%d/fd" % proc.pid), key=int):
        try:
            out.append("%s -> %s" % (fd, os.readlink("/proc/%d/fd/%s" % (proc.pid, fd))))
        except OSError:
            pass
    return out


def rss(proc):
    """VmRSS in bytes."""
    with open("/proc/%d/status" % proc.pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise t.TestFailure("no VmRSS in /proc/%d/status" % proc.pid)


def mib(n):
    return "%.1f MiB" % (n / 2 ** 20)


def wait_fds(procs, baseline, what):
    """Polls until every program has exactly its baseline of descriptors
    (bounded); fails naming the descriptors that differ."""
    def back():
        return all(fd_count(p) == baseline[p.name] for p in procs)
    try:
        t.wait_for(back, SETTLE, what, interval=0.1)
    except t.TestFailure:
        now = {p.name: fd_count(p) for p in procs}
        raise t.TestFailure("%s: descriptors did not come back to the baseline within %d s: "
                            "baseline %s, now %s; open now:\n    %s" % (
                                what, SETTLE, baseline, now,
                                "\n    ".join("%s: %s" % (p.name, "; ".join(fd_targets(p)))
                                              for p in procs)))


class FdPeak:
    """Samples the descriptor counts of procs in the background."""

    def __init__(self, procs, interval=0.1):
        self.procs, self.interval = procs, interval
        self.peak = {p.name: fd_count(p) for p in procs}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.wait(self.interval):
            for p in self.procs:
                try:
                    self.peak[p.name] = max(self.peak[p.name], fd_count(p))
                except OSError:
                    pass

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=5)
        return dict(self.peak)


def sanitized(proc):
    """True if proc runs an AddressSanitizer build: its VmRSS then holds
    ASan's quarantine of freed memory and says nothing about leaks
    (LeakSanitizer at exit does; see stop_clean)."""
    try:
        with open("/proc/%d/exe" % proc.pid, "rb") as f:
            return b"__asan_init" in f.read()
    except OSError:
        return False


SANITIZER_REPORT = re.compile(r"ERROR: (Address|Leak)Sanitizer|runtime error:")


def stop_clean(procs, everyone=()):
    """Stops procs with SIGTERM, in order: each must exit 0.  Then no log
    of procs or of everyone (programs killed earlier) may hold a sanitizer
    report."""
    for p in procs:
        t.check_eq(p.stop(), 0, "%s's exit code on SIGTERM" % p.name)
    for p in list(procs) + [p for p in everyone if p not in procs]:
        text = p.stderr_text()
        m = SANITIZER_REPORT.search(text)
        t.check(not m, "%s's log has a sanitizer report" % p.name,
                report=text[max(0, m.start() - 200):m.start() + 3000] if m else "")
