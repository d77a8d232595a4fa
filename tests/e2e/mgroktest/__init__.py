"""Shared helpers for mgrok's end-to-end tests (Python 3, stdlib only).

Every test is a script that calls ``run(main)``; ``main`` gets an ``Env``
that owns a temporary directory, a block of TCP ports reserved for this test
only, and every process and service the test starts.  Whatever happens, the
Env kills what it started; when the test fails it prints the tail of every
program's log so that CI output shows why.

Exit codes follow the automake convention: 0 pass, 1 fail (a missing program
is a failure too: the tests never skip).

Environment (set by ``make check``; defaults suit a run from the source tree):
  MGROK_BUILDDIR    the programs are $MGROK_BUILDDIR/core/mgrokd and core/mgrok
  MGROK_PLUGIN_DIR  plugins ($MGROK_BUILDDIR/plugins/.libs)
  MGROK_SRCDIR      the source tree (example configs in etc/)

Tests import the package whole (``import mgroktest as t``); its modules,
by concern:
  checks      TestFailure, check, check_eq, wait_for, log, DEADLINE
  ports       the test's block of ports; port_free, port_closed, tcp_queues
  procs       where the programs are; Proc, Server, Client, wait_log, RSS
  services    the local side: Service, UdpService and their handlers
  payloads    pattern, pattern_digest, payload
  visitors    connect, roundtrip, the UDP visitors, EchoLoop
  wire        the protocol's constants, frame builders and auth proofs
  rawsession  RawSession (a hand-written peer) and FakeServer
  proxyproto  PROXY protocol headers built and parsed, services that report
              theirs, Balancer (a relay that sends one)
  env         Env, and what it records of the programs' output
  tls         gen_cert, cert_fingerprint
  nginx       Nginx (a real nginx as the local service), Recorder and
              hash_upload_handler (Python HTTP services), HTTP/1.1 by hand:
              Reader, read_request, read_response, request_bytes, http_exchange
  websocket   (as t.websocket) an RFC 6455 echo_handler and Client
  admin       (as t.admin) the admin endpoint: HTTP requests by hand, its JSON,
              the Prometheus text format parsed (Metrics), echo_exact
"""

import os
import shutil
import sys
import threading
import time
import traceback

# Everything a test uses, as t.NAME.
from .checks import DEADLINE, TestFailure, check, check_eq, guarded, log, wait_for
from .env import Env, check_no_secrets, run_recorded, write_json
from .nginx import (BIG, Nginx, Reader, Recorder, closes, hash_upload_handler, headers_report,
                    http_exchange, read_request, read_response, request_bytes)
from .payloads import CHUNK, pattern, pattern_digest, payload
from .ports import (PortBlock, accept_backlog, have_ipv6_loopback, port_closed, port_free,
                    tcp_queues, udp_port_free)
from .procs import (BUILDDIR, MGROK, MGROKD, PLUGIN_DIR, PUBLIC_LINE, SRCDIR, Client, Proc,
                    RssSampler, Server, rss_kib, wait_log)
from .proxyproto import (V2_SIG, Balancer, Header, PpUdpHandler, parse_header, pp_echo_handler,
                         read_header, read_report, read_report_line, split_udp_reply, tlv,
                         v1_header, v2_header)
from .rawsession import FakeServer, RawSession
from .services import (UDP_MAX, UDP_SOCKBUF, Service, UdpService, echo_handler, hash_handler,
                       prefix_handler, recv_all, source_handler, udp_echo_handler)
from .tls import FINGERPRINT_RE, cert_fingerprint, gen_cert
from . import websocket
from . import admin
from .visitors import (EchoLoop, connect, echo_check, roundtrip, udp_echo_check, udp_exchange,
                       udp_roundtrip, udp_socket, udp_visitors)
from .wire import (ACK_FORBIDDEN, ACK_INVALID, ACK_LIMIT, ACK_NAME_IN_USE, ACK_OK, ACK_PORT_IN_USE,
                   ACK_PORT_NOT_ALLOWED, ACK_UNKNOWN_PROXY_TYPE, AUTH_NONE, AUTH_TOKEN, AUTH_USERS,
                   CLOSE, DATA, FRAME_NAMES, GO_AWAY, GOAWAY_HEARTBEAT_TIMEOUT, GOAWAY_INTERNAL,
                   GOAWAY_NORMAL, GOAWAY_PROTOCOL_ERROR, GOAWAY_REPLACED, HEARTBEAT, HELLO,
                   HS_CHALLENGE, HS_DENIED, HS_OK, HS_UNSUPPORTED, MAGIC, NEW_STREAM, PROXY_TCP,
                   PROXY_UDP, REGISTER, REGISTER_ACK, RESET, RESET_CANCEL, RESET_CONNECT_FAILED,
                   RESET_FLOW_CONTROL, RESET_REFUSED, UNREGISTER, WINDOW, WINDOW_UPDATE, Frame,
                   f_close, f_data, f_hello, f_new_stream, f_new_streams, f_register,
                   f_register_ack, f_reset, f_unregister, f_window_update, str8, str16, token_proof,
                   u8, u16, u32, users_proof)

# The whole test's limit, in case something blocks where no deadline reaches.
# run() reads it when it starts: a test may set t.WATCHDOG before.
WATCHDOG = 170.0


def _watchdog(env_box, limit):
    def fire():
        print("WATCHDOG: the test is still running after %.0f s: aborting" % limit, flush=True)
        env = env_box[0]
        if env:
            env.dump_logs()
            for p in env.procs:
                p.kill_group()
        os._exit(1)
    t = threading.Timer(limit, fire)
    t.daemon = True
    t.start()
    return t


def run(main, name=None):
    """Runs main(env) as a test and exits with the test's status."""
    name = name or os.path.splitext(os.path.basename(sys.argv[0]))[0]
    for prog in (MGROKD, MGROK):
        if not os.access(prog, os.X_OK):
            print("FAIL: %s is missing (build first; MGROK_BUILDDIR=%s)" % (prog, BUILDDIR))
            sys.exit(1)
    box = [None]
    dog = _watchdog(box, WATCHDOG)
    started = time.monotonic()
    status = 1
    env = None
    try:
        env = box[0] = Env(name)
        main(env)
        env.check_cases()
        status = 0
    except Exception:
        print("FAIL: %s" % name, flush=True)
        traceback.print_exc()
        sys.stdout.flush()
        if env:
            env.dump_logs()
    finally:
        if env:
            env.cleanup()
        dog.cancel()
    if status == 0:
        if env and os.environ.get("MGROK_KEEP_LOGS") is None:
            shutil.rmtree(env.dir, ignore_errors=True)
        print("PASS: %s (%.1f s)" % (name, time.monotonic() - started), flush=True)
    elif env:
        print("logs kept in %s" % env.dir, flush=True)
    sys.exit(status)
