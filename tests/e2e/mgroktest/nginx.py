"""HTTP behind and in front of a tunnel: a real nginx on 127.0.0.1 as the
local service, the small Python HTTP services beside it (one that hashes
uploads, one that records every request), and HTTP/1.1 spoken by hand
(a request parser for those services, a response reader for raw visitors)."""

import hashlib
import os
import re
import shutil
import socket
import threading

from .checks import DEADLINE, TestFailure, check, wait_for
from .payloads import pattern, pattern_digest
from .services import Service

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
BIG = 64 * 1024 * 1024  # the static file nginx serves, and the upload's size
HEAD_MAX = 64 * 1024  # what the services here accept as one request head


# ---- HTTP/1.1 by hand ------------------------------------------------------------------


class Reader:
    """Buffered reads from a socket: lines, exact counts, everything to EOF."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""
        self.eof = False

    def _more(self):
        if self.eof:
            return False
        try:
            b = self.sock.recv(256 * 1024)
        except ConnectionResetError:
            b = b""
        if not b:
            self.eof = True
            return False
        self.buf += b
        return True

    def line(self, limit=HEAD_MAX):
        """One line through its LF (included); b"" at EOF before any byte."""
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                out, self.buf = self.buf[:i + 1], self.buf[i + 1:]
                return out
            if len(self.buf) > limit:
                raise TestFailure("a line longer than %d bytes" % limit)
            if not self._more():
                out, self.buf = self.buf, b""
                return out

    def exact(self, n):
        while len(self.buf) < n:
            if not self._more():
                raise TestFailure("EOF after %d of %d bytes" % (len(self.buf), n))
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def rest(self):
        while self._more():
            pass
        out, self.buf = self.buf, b""
        return out

    def at_eof(self):
        """True if the peer closes without sending another byte (waits for it)."""
        if self.buf:
            return False
        return not self._more()


def read_head(rd):
    """Start line and header fields, up to the empty line; None at EOF."""
    first = rd.line()
    if not first:
        return None
    lines = []
    while True:
        line = rd.line()
        if not line:
            raise TestFailure("EOF inside a message head (start line %r)" % first)
        if line in (b"\r\n", b"\n"):
            return first, lines
        lines.append(line)


def parse_fields(lines):
    out = []
    for line in lines:
        name, _, value = line.rstrip(b"\r\n").partition(b":")
        out.append((name.decode("latin-1").lower(), value.strip().decode("latin-1")))
    return out


CHUNK_LINE = re.compile(rb"([0-9A-Fa-f]{1,15})(;[^\r\n]*)?\r\n")


def _chunked(rd):
    """A chunked body (RFC 9112 7.1), strictly: anything else fails."""
    body = []
    while True:
        line = rd.line()
        m = CHUNK_LINE.fullmatch(line)
        if not m:
            raise TestFailure("a bad chunk-size line %r" % line[:40])
        size = int(m.group(1), 16)
        if size == 0:
            while True:
                line = rd.line()
                if line == b"\r\n":
                    return b"".join(body)
                if not line.endswith(b"\r\n"):
                    raise TestFailure("a bad trailer line %r" % line[:40])
        body.append(rd.exact(size))
        if rd.exact(2) != b"\r\n":
            raise TestFailure("chunk data not followed by CRLF")


def _length(msg):
    """Content-Length, strictly (digits only); 0 when absent."""
    value = msg.header("content-length")
    if value is None:
        return None
    if not re.fullmatch(r"[0-9]{1,15}", value):
        raise TestFailure("a bad Content-Length %r" % value[:40])
    return int(value)


class Message:
    """A parsed request or response: start line parts, fields (lower-case
    names, in order) and body."""

    def __init__(self, first, fields, body=b""):
        self.first = first
        self.fields = fields
        self.body = body

    def header(self, name, default=None):
        """The value of field name (joined with ", " if repeated)."""
        vals = [v for k, v in self.fields if k == name.lower()]
        return ", ".join(vals) if vals else default

    def headers(self, name):
        return [v for k, v in self.fields if k == name.lower()]

    def __repr__(self):
        return "Message(%r, %d fields, %d body bytes)" % (self.first, len(self.fields),
                                                           len(self.body))


def read_request(rd, body_sink=None):
    """The next request from a Reader: a Message with .method, .target,
    .version (body by Content-Length or chunked); None at EOF.  With
    body_sink(bytes), the body goes there in pieces instead of .body."""
    head = read_head(rd)
    if head is None:
        return None
    first, lines = head
    parts = first.decode("latin-1").split()
    msg = Message(first, parse_fields(lines))
    msg.method, msg.target, msg.version = (parts + ["", "", ""])[:3]
    if "chunked" in (msg.header("transfer-encoding") or "").lower():
        msg.body = _chunked(rd)
        if body_sink:
            body_sink(msg.body)
            msg.body = b""
    else:
        left = _length(msg) or 0
        parts = []
        while left:
            piece = rd.exact(min(left, 256 * 1024))
            left -= len(piece)
            if body_sink:
                body_sink(piece)
            else:
                parts.append(piece)
        msg.body = b"".join(parts)
    return msg


def read_response(rd, method="GET"):
    """The next final response from a Reader (1xx ones are skipped): a
    Message with .status (int), .reason, .version; the body by
    Content-Length, chunked, or up to EOF.  None at EOF before a byte."""
    while True:
        head = read_head(rd)
        if head is None:
            return None
        first, lines = head
        version, _, rest = first.decode("latin-1").rstrip("\r\n").partition(" ")
        code, _, reason = rest.partition(" ")
        check(version.startswith("HTTP/1.") and code.isdigit(), "not an HTTP/1 status line",
              line=first)
        msg = Message(first, parse_fields(lines))
        msg.version, msg.status, msg.reason = version, int(code), reason
        if msg.status >= 200 or msg.status == 101:
            break
    if method == "HEAD" or msg.status in (101, 204, 304):
        return msg
    if "chunked" in (msg.header("transfer-encoding") or "").lower():
        msg.body = _chunked(rd)
    elif msg.header("content-length") is not None:
        msg.body = rd.exact(_length(msg))
    else:
        msg.body = rd.rest()
    return msg


def request_bytes(host, target="/", method="GET", fields=(), body=b"", version="HTTP/1.1"):
    """A well-formed request (Content-Length when there is a body)."""
    out = ["%s %s %s" % (method, target, version)]
    if host is not None:
        out.append("Host: %s" % host)
    out += ["%s: %s" % kv for kv in fields]
    if body:
        out.append("Content-Length: %d" % len(body))
    return ("\r\n".join(out) + "\r\n\r\n").encode("latin-1") + body


def http_exchange(port, data, method="GET", timeout=20):
    """Connects to 127.0.0.1:port, sends data, reads one response; returns
    (response or None at EOF, Reader) with the connection still open."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(data)
    rd = Reader(s)
    try:
        return read_response(rd, method), rd
    except (socket.timeout, TestFailure):
        s.close()
        raise


def closes(rd, timeout=10):
    """True if the peer closes the connection of rd within timeout seconds
    without sending anything more; False if it is still open after it."""
    rd.sock.settimeout(timeout)
    try:
        return rd.at_eof()
    except socket.timeout:
        return False


# ---- Python services ------------------------------------------------------------------


def _reply(conn, status, body, fields=()):
    head = "HTTP/1.1 %s\r\nContent-Length: %d\r\n" % (status, len(body))
    head += "".join("%s: %s\r\n" % kv for kv in fields)
    conn.sendall(head.encode() + b"\r\n" + body)


def hash_upload_handler(conn):
    """Answers each request with the hex SHA-256 of its body and its length
    ("HEX LENGTH\\n"), keeping the connection open."""
    rd = Reader(conn)
    while True:
        h, n = hashlib.sha256(), [0]

        def sink(b):
            h.update(b)
            n[0] += len(b)
        req = read_request(rd, sink)
        if req is None:
            return
        _reply(conn, "200 OK", ("%s %d\n" % (h.hexdigest(), n[0])).encode(),
               [("Content-Type", "text/plain")])


class _Tap:
    """A socket whose received bytes are also appended to raw."""

    def __init__(self, sock, raw, lock):
        self.sock, self.raw, self.lock = sock, raw, lock

    def recv(self, n):
        b = self.sock.recv(n)
        with self.lock:
            self.raw.extend(b)
        return b


class Recorder:
    """A handler for Service that records every connection's raw bytes and
    every request head it parses (.requests: Message), and answers each
    request 200 with "seen TARGET\\n" (keep-alive).  A request it cannot
    parse ends the connection (recorded in .bad)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.raw = []  # one bytearray per connection
        self.requests = []
        self.bad = []

    def __call__(self, conn):
        raw = bytearray()
        with self.lock:
            self.raw.append(raw)
        rd = Reader(_Tap(conn, raw, self.lock))
        while True:
            try:
                req = read_request(rd)
            except (TestFailure, ValueError) as e:
                with self.lock:
                    self.bad.append(repr(e))
                return
            if req is None:
                return
            with self.lock:
                self.requests.append(req)
            _reply(conn, "200 OK", ("seen %s\n" % req.target).encode(),
                   [("Content-Type", "text/plain")])

    def saw(self, marker):
        """The connections whose raw bytes contain marker (bytes)."""
        with self.lock:
            return [bytes(r) for r in self.raw if marker in r]

    def targets(self):
        with self.lock:
            return [r.target for r in self.requests]


# ---- nginx ------------------------------------------------------------------------------

# One line per request field the tests look at; an absent field is empty.
ECHO_FORMAT = ("who: %(name)s\\n"
               "host: $http_host\\n"
               "xff: $http_x_forwarded_for\\n"
               "proto: $http_x_forwarded_proto\\n"
               "xfh: $http_x_forwarded_host\\n"
               "forwarded: $http_forwarded\\n"
               "authorization: $http_authorization\\n"
               "uri: $request_uri\\n"
               "scheme: $scheme\\n"
               "http: $server_protocol\\n")

LOCATIONS = """
        location = /whoami { default_type text/plain; return 200 "%(name)s\\n"; }
        location = /headers { default_type text/plain; return 200 "%(echo)s"; }
        location /upload {
            client_max_body_size 256m;
            proxy_pass http://127.0.0.1:%(upload_port)d;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_request_buffering off;
            proxy_buffering off;
        }
        location / { }
"""

CONF = """user root;
worker_processes 1;
events { worker_connections 1024; }
http {
    access_log %(dir)s/access.log;
    default_type application/octet-stream;
    sendfile on;
    keepalive_requests 10000;
    keepalive_timeout 60;
    client_body_temp_path %(dir)s/tmp/body;
    proxy_temp_path %(dir)s/tmp/proxy;
    fastcgi_temp_path %(dir)s/tmp/fastcgi;
    uwsgi_temp_path %(dir)s/tmp/uwsgi;
    scgi_temp_path %(dir)s/tmp/scgi;
    server {
        listen 127.0.0.1:%(port)d;
        root %(www)s;
%(locations)s
    }
%(tls)s
}
"""

TLS_SERVER = """    server {
        listen 127.0.0.1:%(tls_port)d ssl http2;
        ssl_certificate %(cert)s;
        ssl_certificate_key %(key)s;
        root %(www)s;
%(locations)s
    }
"""


def headers_report(body):
    """The /headers page as a dict (who, host, xff, proto, xfh, forwarded,
    authorization, uri, scheme, http); absent fields are ""."""
    out = {}
    for line in body.decode("utf-8", "replace").splitlines():
        k, _, v = line.partition(": ")
        out[k.rstrip(":")] = v
    return out


class Nginx:
    """A real nginx on 127.0.0.1:port serving, at
      /whoami     its name and a newline,
      /headers    the request fields the tests look at (headers_report),
      /big.bin    BIG bytes of pattern(seed, BIG) (.big_digest: their SHA-256),
      /upload     a proxy to a Python service that answers "SHA256HEX LENGTH\\n"
                  of the body (client_max_body_size 256m),
      /NAME       each of files (a dict NAME: bytes),
    and, with tls=(cert, key), the same over TLS with HTTP/2 on tls_port.
    Its config and files are in the test's directory; the process is one of
    env.procs, so the Env stops it whatever happens."""

    def __init__(self, env, port, name="nginx", files=None, tls=None, tls_port=None,
                 big=True, seed=64):
        check(os.access(NGINX, os.X_OK), "nginx is missing (./bootstrap installs it)",
              path=NGINX)
        self.name, self.port, self.tls_port = name, port, tls_port
        self.dir = os.path.join(env.dir, name)
        www = os.path.join(self.dir, "www")
        os.makedirs(os.path.join(self.dir, "tmp"), exist_ok=True)
        os.makedirs(www, exist_ok=True)
        for fname, data in (files or {}).items():
            with open(os.path.join(www, fname), "wb") as f:
                f.write(data)
        self.big_digest = None
        if big:
            with open(os.path.join(www, "big.bin"), "wb") as f:
                for chunk in pattern(seed, BIG):
                    f.write(chunk)
            self.big_digest = pattern_digest(seed, BIG)
        self.upload = env.service(hash_upload_handler, name=name + "-upload")
        subst = {"name": name, "dir": self.dir, "www": www, "port": port,
                 "upload_port": self.upload.port, "tls_port": tls_port or 0}
        subst["echo"] = ECHO_FORMAT % subst
        subst["locations"] = LOCATIONS % subst
        subst["tls"] = ""
        if tls:
            subst["cert"], subst["key"] = tls
            subst["tls"] = TLS_SERVER % subst
        self.conf = os.path.join(self.dir, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write(CONF % subst)
        self.proc = env.spawn(name, [
            NGINX, "-c", self.conf, "-p", self.dir, "-e", "stderr",
            "-g", "daemon off; pid %s/nginx.pid; error_log stderr warn;" % self.dir])
        for p in [port] + ([tls_port] if tls else []):
            wait_for(lambda: self._listening(p), DEADLINE, "%s to listen on %d" % (name, p))

    def _listening(self, port):
        if not self.proc.alive():
            raise TestFailure("%s exited with code %s: %s" % (
                self.name, self.proc.returncode, self.proc.stderr_text()[-800:]))
        try:
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
            return True
        except OSError:
            return False

    def access_log(self):
        try:
            with open(os.path.join(self.dir, "access.log"), "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""
