"""Failures, checks and waits: what every test and helper reports with."""

import time
import traceback

DEADLINE = 60.0  # generous: only there so that nothing hangs forever


class TestFailure(AssertionError):
    pass


def log(*args):
    print("[%s]" % time.strftime("%H:%M:%S"), *args, flush=True)


def check(cond, msg, **context):
    """Fails the test with msg and the given context unless cond holds."""
    if not cond:
        details = "".join("\n    %s = %s" % (k, short_repr(v)) for k, v in context.items())
        raise TestFailure(msg + details)


def check_eq(actual, expected, msg, **context):
    check(actual == expected,
          "%s: expected %s, got %s" % (msg, short_repr(expected), short_repr(actual)), **context)


def short_repr(v, limit=300):
    text = repr(v)
    return text if len(text) <= limit else text[:limit] + "... (%d chars)" % len(text)


def wait_for(cond, timeout=DEADLINE, what="condition", interval=0.05):
    """Polls cond() until it returns something true, and returns that.
    Fails the test after timeout seconds."""
    end = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > end:
            raise TestFailure("timed out after %.0f s waiting for %s" % (timeout, what))
        time.sleep(interval)


def guarded(fn, *args):
    """fn(*args), with any error but a failed check (an unexpected shape
    of JSON, a socket error) turned into a failed check with its traceback,
    so that a sub-case fails with a message instead of ending the test."""
    try:
        return fn(*args)
    except TestFailure:
        raise
    except Exception as e:
        raise TestFailure("%s: %s\n%s" % (type(e).__name__, e, traceback.format_exc()))
