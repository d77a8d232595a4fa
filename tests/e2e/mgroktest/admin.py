"""The admin endpoint of both programs (HTTP on 127.0.0.1): requests by
hand, its JSON, and the Prometheus text exposition format (version 0.0.4)
parsed strictly; and a visitor that echoes a large payload both ways at
once, checking every byte.

Used as t.admin.NAME (test_admin, test_prometheus)."""

import json
import math
import re
import socket
import threading

from .checks import DEADLINE, TestFailure, check, check_eq, short_repr, wait_for
from .nginx import Reader, read_response, request_bytes
from .visitors import connect

METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# ---- HTTP -------------------------------------------------------------------------------


def auth_fields(token):
    return [("Authorization", "Bearer %s" % token)] if token is not None else []


def request(port, method="GET", path="/", token=None, fields=(), body=b"", timeout=20,
            keep_alive=False):
    """One request on a new connection to 127.0.0.1:port (with
    "Connection: close" unless keep_alive); returns the response (a
    nginx.Message with .status, .header(), .body).  Fails if the server
    closes the connection without answering."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        extra = [] if keep_alive else [("Connection", "close")]
        s.sendall(request_bytes("127.0.0.1:%d" % port, path, method,
                                extra + auth_fields(token) + list(fields), body))
        msg = read_response(Reader(s), method)
    finally:
        s.close()
    check(msg is not None, "the admin endpoint on port %d closed the connection without an "
          "answer to %s %s" % (port, method, path))
    return msg


def body_json(msg, what):
    """The response's body as JSON; fails naming what if it is not."""
    try:
        return json.loads(msg.body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise TestFailure("%s: the body is not JSON (%s): %s" % (what, e, short_repr(msg.body)))


def expect_error(msg, status, what):
    """An error response: that status and a JSON body {"error": "text"}."""
    check_eq(msg.status, status, "HTTP status of %s" % what, body=msg.body[:300])
    obj = body_json(msg, what)
    check(isinstance(obj, dict) and isinstance(obj.get("error"), str) and obj["error"],
          "%s: the body is not {\"error\": \"text\"}" % what, body=obj)
    return obj


def wait_up(port, token, what):
    """Polls until the admin endpoint on port answers GET /metrics."""
    def up():
        try:
            return request(port, "GET", "/metrics", token, timeout=5).status == 200
        except (ConnectionRefusedError, ConnectionResetError):
            return False
    wait_for(up, 20, "%s (127.0.0.1:%d) to answer" % (what, port), interval=0.1)


def get_json(port, path, token=None, what=None):
    """GET path: checks 200 and returns the JSON body."""
    what = what or "GET %s on port %d" % (path, port)
    msg = request(port, "GET", path, token)
    check_eq(msg.status, 200, "HTTP status of %s" % what, body=msg.body[:300])
    return body_json(msg, what)


def sessions(port, token=None):
    """GET /api/v1/sessions: the list of sessions (checked to be one)."""
    obj = get_json(port, "/api/v1/sessions", token)
    check(isinstance(obj, dict) and isinstance(obj.get("sessions"), list),
          "GET /api/v1/sessions: not {\"sessions\": [...]}", body=obj)
    return obj["sessions"]


# ---- the Prometheus text format, version 0.0.4 ---------------------------------------------

NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")


def _unescape(text, escapes, what):
    out, i = [], 0
    while i < len(text):
        c = text[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        check(i + 1 < len(text) and text[i + 1] in escapes,
              "a bad escape in %s" % what, text=text)
        out.append(escapes[text[i + 1]])
        i += 2
    return "".join(out)


def _parse_value(text, line):
    if text in ("+Inf", "Inf"):
        return math.inf
    if text == "-Inf":
        return -math.inf
    if text == "NaN":
        return math.nan
    check(re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", text),
          "a sample value that is not a number", line=line)
    return float(text)


def _parse_labels(line, i):
    """Labels from line[i] (just after "{") to the closing "}": (dict, index
    after the "}")."""
    labels = {}
    while True:
        if line[i:i + 1] == "}":
            return labels, i + 1
        m = LABEL_RE.match(line, i)
        check(m, "a bad label name", line=line, at=i)
        name = m.group(0)
        i = m.end()
        check(line[i:i + 2] == '="', "a label without =\"", line=line, at=i)
        i += 2
        value = []
        while True:
            check(i < len(line), "a label value without its closing quote", line=line)
            c = line[i]
            if c == "\\":
                check(i + 1 < len(line) and line[i + 1] in '\\"n', "a bad escape in a label value",
                      line=line, at=i)
                value.append({"\\": "\\", '"': '"', "n": "\n"}[line[i + 1]])
                i += 2
                continue
            if c == '"':
                i += 1
                break
            check(c != "\n", "a raw newline in a label value", line=line)
            value.append(c)
            i += 1
        check(name not in labels, "label %s twice in one sample" % name, line=line)
        labels[name] = "".join(value)
        if line[i:i + 1] == ",":
            i += 1
            continue
        check(line[i:i + 1] == "}", "labels not followed by , or }", line=line, at=i)


class Metrics:
    """A scrape: .samples [(name, labels, value)], .types {family: type},
    .helps {family: text}.  Parsing is strict: any line that is not a
    comment, HELP, TYPE or a well-formed sample fails the test, and so does
    a series given twice, a TYPE after the family's samples or given twice,
    and an unknown type."""

    def __init__(self, text, what="metrics"):
        self.text = text
        self.what = what
        self.samples = []
        self.types = {}
        self.helps = {}
        seen = set()
        families_with_samples = set()
        check(text.endswith("\n"), "%s: the exposition does not end with a newline" % what,
              tail=text[-80:])
        for line in text.split("\n")[:-1]:
            if not line.strip():
                continue
            if line.startswith("#"):
                parts = line.split(None, 3)
                if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                    name = parts[2]
                    check(NAME_RE.fullmatch(name), "%s: a bad metric name in %s" % (what, parts[1]),
                          line=line)
                    rest = parts[3] if len(parts) > 3 else ""
                    if parts[1] == "HELP":
                        check(name not in self.helps, "%s: HELP twice for %s" % (what, name))
                        self.helps[name] = _unescape(rest, {"\\": "\\", "n": "\n"},
                                                     "HELP of %s" % name)
                    else:
                        check(rest in TYPES, "%s: an unknown type" % what, line=line)
                        check(name not in self.types, "%s: TYPE twice for %s" % (what, name))
                        check(name not in families_with_samples,
                              "%s: TYPE of %s after its samples" % (what, name))
                        self.types[name] = rest
                continue
            m = NAME_RE.match(line)
            check(m, "%s: a line that is no sample" % what, line=line)
            name, i = m.group(0), m.end()
            labels = {}
            if line[i:i + 1] == "{":
                labels, i = _parse_labels(line, i + 1)
            rest = line[i:]
            check(rest.startswith(" "), "%s: no space before a sample's value" % what, line=line)
            fields = rest.split()
            check(1 <= len(fields) <= 2, "%s: a sample with junk after its value" % what,
                  line=line)
            value = _parse_value(fields[0], line)
            if len(fields) == 2:
                check(re.fullmatch(r"-?\d+", fields[1]), "%s: a bad timestamp" % what, line=line)
            key = (name, tuple(sorted(labels.items())))
            check(key not in seen, "%s: the same series twice" % what, line=line)
            seen.add(key)
            for fam in (name, re.sub(r"_(sum|count|bucket)$", "", name)):
                families_with_samples.add(fam)
            self.samples.append((name, labels, value))

    def find(self, name, **labels):
        """[(labels, value)] of the samples of name whose labels include
        the given ones."""
        return [(l, v) for n, l, v in self.samples
                if n == name and all(l.get(k) == want for k, want in labels.items())]

    def value(self, name, **labels):
        """The value of the one sample of name with those labels; fails if
        there is none or more than one."""
        found = self.find(name, **labels)
        check(found, "%s: no sample %s%s" % (self.what, name, fmt_labels(labels)),
              samples_of_that_name=self.find(name))
        check(len(found) == 1, "%s: %d samples %s%s where one was expected" %
              (self.what, len(found), name, fmt_labels(labels)), found=found)
        return found[0][1]

    def value_or(self, name, default, **labels):
        """Like value, but default when there is no such sample."""
        return self.value(name, **labels) if self.find(name, **labels) else default


def fmt_labels(labels):
    return "{%s}" % ",".join('%s="%s"' % kv for kv in sorted(labels.items())) if labels else ""


def metrics(port, token=None, what=None):
    """GET /metrics: checks 200 and the Content-Type; returns the parse."""
    what = what or "GET /metrics on port %d" % port
    msg = request(port, "GET", "/metrics", token)
    check_eq(msg.status, 200, "HTTP status of %s" % what, body=msg.body[:300])
    check_eq(msg.header("content-type"), METRICS_TYPE, "Content-Type of %s" % what)
    try:
        text = msg.body.decode("utf-8")
    except UnicodeDecodeError:
        raise TestFailure("%s: the body is not UTF-8" % what)
    return Metrics(text, what)


def wait_counter(port, token, name, want, labels, what=None, timeout=DEADLINE):
    """Polls /metrics until the counter name{labels} is exactly want; fails
    at once if it goes past want (a counter never comes back), or after
    timeout.  Returns the last scrape."""
    what = what or "%s%s on port %d" % (name, fmt_labels(labels), port)
    last = [None]

    def reached():
        m = metrics(port, token)
        last[0] = m
        v = m.value_or(name, None, **labels)
        if v is None:
            return None
        check(v <= want, "%s is %s: more than the expected %s" % (what, fmt_num(v), want))
        return m if v == want else None
    try:
        return wait_for(reached, timeout, "%s to reach %s" % (what, want), interval=0.1)
    except TestFailure as e:
        v = last[0].value_or(name, None, **labels) if last[0] else None
        raise TestFailure("%s (last value: %s)" % (e, "no such sample" if v is None
                                                       else fmt_num(v))) from None


def fmt_num(v):
    return "%d" % v if v == int(v) else repr(v)


# ---- a visitor: a large echo, both ways at once ------------------------------------------


def echo_exact(port, data, host="127.0.0.1", timeout=DEADLINE):
    """Sends data over a new visitor connection to port (from a thread,
    then half-closes) while reading the echo back; fails unless exactly
    data came back before EOF, naming the first byte that differs."""
    s = connect(port, host, timeout)
    errors = []

    def send():
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
        except OSError as e:
            errors.append(e)
    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    parts, n = [], 0
    try:
        while True:
            b = s.recv(256 * 1024)
            if not b:
                break
            parts.append(b)
            n += len(b)
            check(n <= len(data), "the echo on port %d has more bytes than the %d sent"
                  % (port, len(data)))
    finally:
        sender.join(timeout)
        s.close()
    check(not errors, "sending %d bytes to port %d failed" % (len(data), port), errors=errors)
    got = b"".join(parts)
    if got != data:
        first = next((i for i in range(min(len(got), len(data))) if got[i] != data[i]),
                     min(len(got), len(data)))
        raise TestFailure("the echo of %d bytes on port %d: got %d bytes back, the first "
                          "difference at byte %d" % (len(data), port, len(got), first))
