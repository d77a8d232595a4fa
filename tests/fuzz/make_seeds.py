#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets: tests/fuzz/corpus/<target>/.

Every seed is built here from doc/protocol.md and the targets' input formats
(see the comment at the top of each tests/fuzz/fuzz_*.c), so the corpus can
be reviewed and made again:

    python3 tests/fuzz/make_seeds.py           # (re)writes the seeds
    python3 tests/fuzz/make_seeds.py --check   # fails if a seed is missing or differs

Files in the corpus directories that this script does not make (crash
reproducers, crash-*) are left alone.
"""
import argparse
import hashlib
import hmac
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))

# ---- the wire (doc/protocol.md 2 and 3) ------------------------------------

REGISTER, NEW_STREAM, DATA, CLOSE, HEARTBEAT, REGISTER_ACK = 1, 2, 3, 4, 5, 6
WINDOW_UPDATE, RESET, GO_AWAY, UNREGISTER, HELLO = 7, 8, 9, 10, 11


def str8(b):
    return bytes([len(b)]) + b


def str16(b):
    return struct.pack(">H", len(b)) + b


def addr(family=4, ip=b"\xc0\x00\x02\x01", port=40000):
    return bytes([family]) + (ip + struct.pack(">H", port) if family else b"")


def register(name, ptype=1, remote=20080, local=8080, options=b""):
    return struct.pack(">BBHH", REGISTER, ptype, remote, local) + str8(name) + str16(options)


def new_stream(sid, name, source=None):
    return struct.pack(">BI", NEW_STREAM, sid) + str8(name) + (source or addr())


def data(sid, payload):
    return struct.pack(">BI", DATA, sid) + str16(payload)


def close(sid):
    return struct.pack(">BI", CLOSE, sid)


def heartbeat():
    return bytes([HEARTBEAT])


def register_ack(status, name, ptype=1, port=20080, message=b"tcp://tunnel:20080"):
    return struct.pack(">BBBH", REGISTER_ACK, status, ptype, port) + str8(name) + str16(message)


def window_update(sid, inc):
    return struct.pack(">BII", WINDOW_UPDATE, sid, inc)


def reset(sid, code=0):
    return struct.pack(">BIB", RESET, sid, code)


def go_away(code=0, message=b"bye"):
    return bytes([GO_AWAY, code]) + str16(message)


def unregister(name):
    return bytes([UNREGISTER]) + str8(name)


def hello(client_id=b"client-1", info=b'{"version":"0.1.0"}'):
    return bytes([HELLO]) + str8(client_id) + str16(info)


def hs_first(method, payload=b""):
    return b"GRT1" + bytes([method]) + str16(payload)


def hs_answer(payload):
    return str16(payload)


def hs_reply(status, payload=b""):
    return bytes([status]) + str16(payload)


OK, CHALLENGE, DENIED, UNSUPPORTED = 0, 1, 2, 3

# ---- auth proofs, with the harness's random bytes 0, 1, 2, ... (fuzz.h) -------

TOKEN = b"fuzz-token"
USERS = {b"alice": b"alice-token", b"bob": b"bob-token"}
COUNTING = bytes(range(16))  # the first 16 random bytes after a reset


def mac(key, *parts):
    return hmac.new(key, b"".join(parts), hashlib.sha256).digest()


def token_client_proof(cnonce, snonce, key=TOKEN):
    return mac(key, b"mgrok-token-v1 client", cnonce, snonce)


def token_server_proof(snonce, cnonce, key=TOKEN):
    return mac(key, b"mgrok-token-v1 server", snonce, cnonce)


def users_client_proof(user, cnonce, snonce, key):
    return mac(key, b"mgrok-users-v1 client", user, cnonce, snonce)


def users_server_proof(user, snonce, cnonce, key):
    return mac(key, b"mgrok-users-v1 server", snonce, cnonce, user)


# ---- fuzz_codec: split seed, pause seed, wire bytes ----------------------------

def codec_seeds():
    from_client = [register(b"web", options=b'{"x":1}'), data(1, b"hello"), close(3), heartbeat(),
                   window_update(5, 65536), reset(7, 2), go_away(0), unregister(b"web"), hello()]
    from_server = [new_stream(2, b"web"), new_stream(4, b"dns", addr(6, bytes(15) + b"\x01", 53)),
                   new_stream(6, b"x", addr(0)), register_ack(0, b"web"),
                   register_ack(5, b"bad", message=b"invalid name")]
    s = {}
    for i, f in enumerate(from_client + from_server):
        s["frame-%02d-type%02d" % (i, f[0])] = bytes([0, 0]) + f
    s["client-all-whole"] = bytes([0, 0]) + b"".join(from_client)
    s["client-all-split"] = bytes([3, 7]) + b"".join(from_client)
    s["server-all-split"] = bytes([0xc3, 1]) + b"".join(from_server)
    s["bytewise"] = bytes([1, 2]) + b"".join(from_client[:4])
    s["data-max-truncated"] = bytes([9, 5]) + data(2, bytes(65535))[:200]
    # near misses
    s["truncated"] = bytes([2, 0]) + register(b"web")[:-1]
    s["unknown-type"] = bytes([0, 0]) + heartbeat() + b"\x0c\x00"
    s["stream-id-0"] = bytes([0, 0]) + close(0)
    s["bad-family"] = bytes([0, 0]) + struct.pack(">BI", NEW_STREAM, 2) + str8(b"web") + b"\x05"
    s["name-too-long"] = bytes([0, 0]) + unregister(b"n" * 65)
    s["empty-name"] = bytes([0, 0]) + hello(b"")
    s["message-too-long"] = bytes([0, 0]) + go_away(1, b"m" * 1025)
    # handshake messages
    s["hs-first"] = bytes([0, 0]) + hs_first(1, bytes(16))
    s["hs-answer"] = bytes([0, 0]) + hs_answer(bytes(32))
    s["hs-reply"] = bytes([0, 0]) + hs_reply(CHALLENGE, bytes(16))
    s["hs-bad-magic"] = bytes([0, 0]) + b"GET / HTTP/1.1\r\n"
    s["hs-too-long"] = bytes([0, 0]) + b"GRT1\x00\x10\x01"
    return s


# ---- fuzz_handshake: mode (bit 0 client, bits 1-2 method), split seed, peer bytes --

def handshake_seeds():
    s = {}
    cnonce = bytes(range(0xc0, 0xd0))
    # server role: the client's messages
    s["server-none"] = bytes([0, 0]) + hs_first(0)
    s["server-none-split"] = bytes([0, 1]) + hs_first(0) + hello()
    s["server-token"] = bytes([0, 3]) + hs_first(1, cnonce) + hs_answer(
        token_client_proof(cnonce, COUNTING))
    s["server-token-wrong"] = bytes([0, 0]) + hs_first(1, cnonce) + hs_answer(bytes(32))
    user = b"alice"
    s["server-users"] = bytes([0, 5]) + hs_first(2, str8(user) + cnonce) + hs_answer(
        users_client_proof(user, cnonce, COUNTING, USERS[user]))
    s["server-users-unknown"] = bytes([0, 0]) + hs_first(2, str8(b"carol") + cnonce) + hs_answer(
        bytes(32))
    s["server-unsupported"] = bytes([0, 0]) + hs_first(9)
    s["server-bad-magic"] = bytes([0, 1]) + b"X"
    s["server-bad-magic-late"] = bytes([0, 3]) + b"GRT1" + bytes(3) + b"GRT1"
    s["server-too-long"] = bytes([0, 0]) + b"GRT1\x01\x10\x01" + bytes(8)
    s["server-too-many"] = bytes([0, 2]) + hs_first(1, cnonce) + hs_answer(bytes(32)) * 4
    # client role: the server's replies
    snonce = bytes(range(0x50, 0x60))
    s["client-none"] = bytes([1, 0]) + hs_reply(OK)
    s["client-none-challenged"] = bytes([1, 0]) + hs_reply(CHALLENGE)
    s["client-token"] = bytes([3, 2]) + hs_reply(CHALLENGE, snonce) + hs_reply(
        OK, token_server_proof(snonce, COUNTING))
    s["client-token-no-proof"] = bytes([3, 0]) + hs_reply(OK)
    s["client-users"] = bytes([5, 1]) + hs_reply(CHALLENGE, snonce) + hs_reply(
        OK, users_server_proof(b"alice", snonce, COUNTING, USERS[b"alice"]))
    s["client-users-bob"] = bytes([7, 0]) + hs_reply(CHALLENGE, snonce) + hs_reply(OK, bytes(32))
    s["client-denied"] = bytes([1, 0]) + hs_reply(DENIED, b"authentication failed")
    s["client-unsupported"] = bytes([3, 0]) + hs_reply(UNSUPPORTED, b"auth method 0x01 \x01")
    s["client-bad-status"] = bytes([1, 0]) + b"\x07\x00\x00"
    return s


# ---- the config loaders and the users file: the text itself -----------------------

def read(path):
    with open(os.path.join(TOP, path), "rb") as f:
        return f.read()


def server_config_seeds():
    return {
        "mgrokd.json": read("etc/mgrokd.json"),
        "empty-object": b"{}\n",
        "auth-array": b'{"auth": [{"method": "none"}, {"method": "token", "token_file": "/t"},\n'
                      b' {"method": "users", "file": "/u"}], "allow_ports": [8080, "20000-20100"]}\n',
        "tls": b'{"listen": "[::1]:7000", "tls": {"cert": "c.pem", "key": "k.pem"},\n'
               b' "rate_limit": {"failures": 3, "interval": 5}}\n',
        "limits": b'{"limits": {"max_proxies": 1, "max_streams": 2, "max_pending": 3,\n'
                  b' "max_pending_per_address": 1}, "log": {"level": "debug"}}\n',
        "unknown-key": b'{"listen": "127.0.0.1:7000",\n  "lissten": 1}\n',
        "wrong-type": b'{"heartbeat": {"interval": "10"}}\n',
        "duplicate-key": b'{"listen": "a:1", "listen": "b:2"}\n',
        "big-integer": b'{"limits": {"max_streams": 99999999999999999999999}}\n',
        "syntax-error": b'{"listen": "127.0.0.1:7000",,}\n',
        "bad-port-range": b'{"allow_ports": ["20100-20000", 0, 70000]}\n',
        "plugins": b'{"plugins": ["tcp.so", "../evil.so"]}\n',
        "not-object": b"[1, 2, 3]\n",
        "escapes": b'{"public_host": "h\\u00e9\\ud83d\\ude00", "\\u006cisten": "x:1"}\n',
    }


def client_config_seeds():
    return {
        "mgrok.json": read("etc/mgrok.json"),
        "minimal": b'{"proxies": [{"name": "web", "type": "tcp", "local": "127.0.0.1:80"}]}\n',
        "udp-users-tls": b'{"server": "[::1]:7000", "auth": {"method": "users", "user": "alice",\n'
                         b' "token_env": "T"}, "tls": {"ca": "ca.pem", "server_name": "h",\n'
                         b' "fingerprint": "sha256:' + b"ab" * 32 + b'"},\n'
                         b' "proxies": [{"name": "dns", "type": "udp", "local": "53",\n'
                         b'   "remote_port": 20053, "options": {"idle_timeout": 30}}]}\n',
        "no-proxies": b'{"server": "h:1"}\n',
        "duplicate-proxy": b'{"proxies": [{"name": "a", "type": "tcp", "local": "1"},\n'
                           b' {"name": "a", "type": "tcp", "local": "2"}]}\n',
        "bad-name": b'{"proxies": [{"name": "a b", "type": "tcp", "local": "1"}]}\n',
        "bad-port": b'{"proxies": [{"name": "a", "type": "tcp", "local": "1",\n'
                    b'  "remote_port": 65536}]}\n',
        "unknown-nested": b'{"reconnect": {"initial": 1, "max": 2, "jitter": 3}}\n',
        "big-integer": b'{"proxies": [{"name": "a", "type": "tcp", "local": "1",\n'
                       b'  "remote_port": 123456789012345678901234567890}]}\n',
        "truncated": read("etc/mgrok.json")[:100],
    }


def users_seeds():
    return {
        "two-users": b'{"users": {"alice": {"token": "alice-token"},\n'
                     b'  "bob": {"token": "bob-token", "ports": [20080, "20000-20010"],\n'
                     b'          "max_proxies": 2, "max_streams": 5, "types": ["tcp"]}}}\n',
        "one-user": b'{"users": {"a": {"token": "t"}}}',
        "token-file-missing": b'{"users": {"a": {"token_file": "/nonexistent/token"}}}',
        "both-tokens": b'{"users": {"a": {"token": "t", "token_file": "/f"}}}',
        "bad-name": b'{"users": {"a b": {"token": "t"}}}',
        "bad-ports": b'{"users": {"a": {"token": "t", "ports": ["2-1", 0, "x"]}}}',
        "bad-types": b'{"users": {"a": {"token": "t", "types": ["tcp", ""]}}}',
        "big-integer": b'{"users": {"a": {"token": "t", "max_streams": 1e400, '
                       b'"ports": [99999999999999999999]}}}',
        "no-users": b'{"users": {}}',
        "extra-key": b'{"users": {"a": {"token": "t"}}, "more": 1}',
        "unknown-key": b'{"users": {"a": {"token": "t", "admin": true}}}',
        "syntax-error": b'{"users": {"a": {"token": "secret-token-text"',
    }


# ---- fuzz_proxyproto: split seed, then the bytes (HAProxy's proxy-protocol.txt) ----

PP2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"
FFFF6 = b"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"


def pp2(cmd, fam, body):
    """A v2 header: version 2 and cmd, family and transport, the body's length."""
    return PP2_SIG + bytes([0x20 | cmd, fam]) + struct.pack(">H", len(body)) + body


def inet(src=b"\xc0\x00\x02\x01", dst=b"\xc6\x33\x64\x02", sport=56324, dport=443):
    return src + dst + struct.pack(">HH", sport, dport)


def inet6(src, dst, sport=56324, dport=443):
    return src + dst + struct.pack(">HH", sport, dport)


def tlv(t, value):
    return bytes([t]) + struct.pack(">H", len(value)) + value


def proxyproto_seeds():
    doc1 = b"\x20\x01\x0d\xb8" + bytes(11) + b"\x01"
    doc2 = b"\x20\x01\x0d\xb8" + bytes(11) + b"\x02"
    mapped1 = bytes(10) + b"\xff\xff\xc0\x00\x02\x01"
    mapped2 = bytes(10) + b"\xff\xff\xc6\x33\x64\x02"
    unix = (b"/a" + bytes(106)) + (b"/b" + bytes(106))
    request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    s = {}
    # v1 (2.1)
    s["v1-tcp4"] = b"\x00PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n"
    s["v1-tcp4-split"] = b"\x03PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n" + request
    s["v1-tcp4-longest"] = b"\xc4PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n"
    s["v1-tcp6"] = b"\x01PROXY TCP6 2001:db8::1 2001:db8::2 56324 443\r\n"
    s["v1-tcp6-longest"] = b"\x07PROXY TCP6 " + FFFF6 + b" " + FFFF6 + b" 65535 65535\r\n"
    s["v1-tcp6-mapped"] = b"\x00PROXY TCP6 ::ffff:192.0.2.1 ::ffff:198.51.100.2 1 2\r\n"
    s["v1-tcp6-mapped-native"] = b"\x00PROXY TCP6 ::ffff:192.0.2.1 2001:db8::2 1 2\r\n"
    s["v1-unknown"] = b"\x00PROXY UNKNOWN\r\n"
    s["v1-unknown-fields"] = b"\x02PROXY UNKNOWN " + FFFF6 + b" " + FFFF6 + b" 65535 65535\r\n"
    s["v1-unknown-108"] = b"\x00PROXY UNKNOWN " + b"a" * 92 + b"\r\n"
    s["v1-no-line-end"] = b"\x05PROXY TCP4 " + b"1" * 120
    s["v1-bare-lf"] = b"\x00PROXY TCP4 192.0.2.1 198.51.100.2 1 2\n"
    s["v1-control"] = b"\x00PROXY TCP4 192.0.2.1\x00198.51.100.2 1 2\r\n"
    s["v1-two-spaces"] = b"\x00PROXY TCP4  192.0.2.1 198.51.100.2 1 2\r\n"
    s["v1-port-65536"] = b"\x00PROXY TCP4 192.0.2.1 198.51.100.2 65536 2\r\n"
    s["v1-port-leading-zero"] = b"\x00PROXY TCP6 ::1 ::2 01 2\r\n"
    s["v1-bad-ip"] = b"\x00PROXY TCP4 192.0.2.256 198.51.100.2 1 2\r\n"
    s["v1-seven-fields"] = b"\x00PROXY TCP4 192.0.2.1 198.51.100.2 1 2 3\r\n"
    s["v1-udp4"] = b"\x00PROXY UDP4 192.0.2.1 198.51.100.2 1 2\r\n"
    # v2 (2.2)
    s["v2-inet"] = b"\x00" + pp2(1, 0x11, inet())
    s["v2-inet-split"] = b"\x02" + pp2(1, 0x11, inet()) + request
    s["v2-inet-dgram"] = b"\x00" + pp2(1, 0x12, inet())
    s["v2-inet6"] = b"\x00" + pp2(1, 0x21, inet6(doc1, doc2))
    s["v2-inet6-dgram"] = b"\x09" + pp2(1, 0x22, inet6(doc1, doc2))
    s["v2-inet6-mapped"] = b"\x00" + pp2(1, 0x21, inet6(mapped1, mapped2))
    s["v2-inet6-mapped-native"] = b"\x00" + pp2(1, 0x21, inet6(mapped1, doc2))
    s["v2-local"] = b"\x00" + pp2(0, 0x00, b"")
    s["v2-local-inet"] = b"\x00" + pp2(0, 0x11, inet())
    s["v2-unspec"] = b"\x00" + pp2(1, 0x00, b"")
    s["v2-unix"] = b"\x00" + pp2(1, 0x31, unix)
    s["v2-unix-dgram"] = b"\x00" + pp2(1, 0x32, unix + tlv(0xe0, b"x"))
    s["v2-tlvs"] = b"\x01" + pp2(1, 0x11, inet() + tlv(0x01, b"h2") + tlv(0x02, b"example.com") +
                                 tlv(0x04, bytes(3)) + tlv(0x05, b""))
    s["v2-tlv-1000"] = b"\xc8" + pp2(1, 0x21, inet6(doc1, doc2) + tlv(0x04, bytes(1000)))
    s["v2-tlv-short"] = b"\x00" + pp2(1, 0x11, inet() + b"\x04\x00")
    s["v2-tlv-over"] = b"\x00" + pp2(1, 0x11, inet() + b"\x04\x00\x05zz")
    s["v2-version-1"] = b"\x00" + PP2_SIG + b"\x11\x11\x00\x0c" + inet()
    s["v2-command-2"] = b"\x00" + PP2_SIG + b"\x22\x11\x00\x0c" + inet()
    s["v2-family-4"] = b"\x00" + PP2_SIG + b"\x21\x41\x00\x0c" + inet()
    s["v2-transport-3"] = b"\x00" + PP2_SIG + b"\x21\x13\x00\x0c" + inet()
    s["v2-inet-in-11"] = b"\x00" + PP2_SIG + b"\x21\x11\x00\x0b" + inet()[:11]
    s["v2-cut-short"] = b"\x01" + pp2(1, 0x21, inet6(doc1, doc2))[:30]
    # neither
    s["http"] = b"\x00" + request
    s["tls"] = b"\x01\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"
    s["empty"] = b"\x00"
    return s


# ---- fuzz_client_hello: split seed, record seed, then the bytes -------------------
# (RFC 8446 4.1.2 and 5.1, RFC 6066 3; plugins/tls/client_hello.c)

# What python3's ssl module (OpenSSL 3.0.19) sends first, captured once (the
# random bytes and key shares differ on every run, so they are kept here):
#
#     ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
#     ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
#     ctx.maximum_version = ssl.TLSVersion.TLSv1_3  # or TLSv1_2
#     i, o = ssl.MemoryBIO(), ssl.MemoryBIO()
#     s = ctx.wrap_bio(i, o, server_hostname="www.Example.com")  # or None
#     try: s.do_handshake()
#     except ssl.SSLWantReadError: hello = o.read()
#
# tests/unit/check_client_hello.c holds the same four.
TLS13_SNI = bytes.fromhex(
    "1603010200010001fc03031f85a30ad843b9892e7c7ab542ba8d1b0f4ef9f7333a07bf7cfb0171dd91005e20"
    "4ab17084adfd7935901ae085cef4a44e271dbf38e6c3cada97281d4669a8f6690024130213031301c02cc030"
    "c02bc02fcca9cca8c024c028c023c027009f009e006b006700ff0100018f00000014001200000f7777772e45"
    "78616d706c652e636f6d000b000403000102000a00160014001d0017001e0019001801000101010201030104"
    "002300000016000000170000000d002a0028040305030603080708080809080a080b08040805080604010501"
    "0601030303010302040205020602002b00050403040303002d00020101003300260024001d0020df4d8bfe24"
    "8b262657c2c181bc63c456387eb9fd8c746e02a4941cb196d91e22001500de00000000000000000000000000"
    "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
    "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
    "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
    "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
    "000000000000000000000000000000000000000000000000000000000000000000"
)
TLS12_SNI = bytes.fromhex(
    "16030100b5010000b10303c9e81e0888de80e53e54aa377e3d7c3de9927613bc9e0efa8983b150fb89e3e500"
    "001ec02cc030c02bc02fcca9cca8c024c028c023c027009f009e006b006700ff0100006a0000001400120000"
    "0f6170692e6578616d706c652e6f7267000b000403000102000a000c000a001d0017001e0019001800230000"
    "0016000000170000000d002a0028040305030603080708080809080a080b0804080508060401050106010303"
    "03010302040205020602"
)
TLS13_NOSNI = bytes.fromhex(
    "1603010200010001fc030361cc77c0593184be417b28e74ca95e5c76c248b5d0bd532a197993bbad08222f20"
    "d785bf065a757a73500401f1e4c511feba09fd929d25f3a5dd7322bd97ac244b0024130213031301c02cc030"
    "c02bc02fcca9cca8c024c028c023c027009f009e006b006700ff0100018f000b000403000102000a00160014"
    "001d0017001e0019001801000101010201030104002300000016000000170000000d002a0028040305030603"
    "080708080809080a080b080408050806040105010601030303010302040205020602002b0005040304030300"
    "2d00020101003300260024001d00201b64379cedfc3814302bed83c10a5e9eeeaf72dc17847518c30b044a91"
    "cf1c0f001500f600000000000000000000000000000000000000000000000000000000000000000000000000"
    "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
    "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
    "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
    "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
    "000000000000000000000000000000000000000000000000000000000000000000"
)
TLS12_NOSNI = bytes.fromhex(
    "160301009d010000990303620eb35b98e5e73e577574d41d98bf3e60a6fb127450e3426308a75a5ca8647d00"
    "001ec02cc030c02bc02fcca9cca8c024c028c023c027009f009e006b006700ff01000052000b000403000102"
    "000a000c000a001d0017001e00190018002300000016000000170000000d002a002804030503060308070808"
    "0809080a080b080408050806040105010601030303010302040205020602"
)
TLS_HELLO_MAX = 16384


def tls_records(hs, frag=16384, content=22, version=0x0301):
    """The bytes hs in records of at most frag bytes."""
    out = b""
    for i in range(0, len(hs), frag):
        part = hs[i:i + frag]
        out += struct.pack(">BHH", content, version, len(part)) + part
    return out


def tls_ext(etype, data):
    return struct.pack(">HH", etype, len(data)) + data


def sni_ext(*entries):
    """A server_name extension; entries are names (host_name) or (type, bytes)."""
    body = b""
    for e in entries:
        t, name = e if isinstance(e, tuple) else (0, e)
        body += bytes([t]) + str16(name)
    return tls_ext(0, str16(body))


def client_hello(exts=b"", version=0x0303, session_id=bytes(32), suites=b"\x13\x01\x13\x02",
                 compression=b"\x00", with_exts=True, exts_len=None):
    """A ClientHello handshake message (header included); exts_len: another
    length for the extensions block than its own."""
    exts_len = len(exts) if exts_len is None else exts_len
    body = struct.pack(">H", version) + bytes(range(32)) + str8(session_id) + str16(suites) + \
        str8(compression) + (struct.pack(">H", exts_len) + exts if with_exts else b"")
    return b"\x01" + struct.pack(">I", len(body))[1:] + body


def named_hello(name, more=b""):
    """The usual hello with a server_name first, then supported_versions."""
    return client_hello(sni_ext(name) + tls_ext(43, b"\x02\x03\x04") + more)


def padded_hello(total, name=b"example.com"):
    """A hello padded (extension 21) to total bytes of handshake message."""
    short = len(named_hello(name, tls_ext(21, b"")))
    return named_hello(name, tls_ext(21, bytes(total - short)))


def client_hello_seeds():
    s = {}
    captured = {"tls13-sni": TLS13_SNI, "tls12-sni": TLS12_SNI, "tls13-no-sni": TLS13_NOSNI,
                "tls12-no-sni": TLS12_NOSNI}
    for name, hello in captured.items():
        s[name] = b"\x00\x00" + hello
        s[name + "-split"] = b"\x05\x07" + hello
        s[name + "-truncated"] = b"\x01\x00" + hello[:len(hello) * 2 // 3]
    hs13 = TLS13_SNI[5:]
    s["tls13-sni-two-records"] = b"\x00\xc1" + tls_records(hs13[:100]) + tls_records(hs13[100:])
    s["tls12-sni-byte-records"] = b"\x03\x00" + tls_records(TLS12_SNI[5:], 1)
    s["tls13-sni-early-data"] = b"\x00\x02" + TLS13_SNI + tls_records(b"GET /", content=23)
    s["tls12-sni-record-1.2"] = b"\x00\x00" + tls_records(TLS12_SNI[5:], version=0x0303)
    # built hellos
    s["uppercase"] = b"\x00\x03" + tls_records(named_hello(b"WWW.Example.COM"))
    s["no-extensions"] = b"\x00\x00" + tls_records(client_hello(with_exts=False))
    s["empty-extensions"] = b"\x02\x00" + tls_records(client_hello())
    s["shortest-fields"] = b"\x00\x00" + tls_records(client_hello(
        sni_ext(b"a"), version=0x0300, session_id=b"", suites=b"\x00\x2f"))
    s["other-name-type"] = b"\x00\x00" + tls_records(client_hello(sni_ext((1, b"x"))))
    s["name-types-mixed"] = b"\x00\x00" + tls_records(client_hello(
        sni_ext((1, b""), b"example.com", (255, b"zz"))))
    s["host-name-twice"] = b"\x00\x00" + tls_records(client_hello(sni_ext(b"a.example",
                                                                          b"b.example")))
    s["server-name-twice"] = b"\x00\x00" + tls_records(client_hello(
        sni_ext(b"a.example") + tls_ext(23, b"") + sni_ext(b"a.example")))
    s["server-name-empty"] = b"\x00\x00" + tls_records(client_hello(tls_ext(0, b"")))
    s["byte-after-name-list"] = b"\x00\x00" + tls_records(client_hello(
        tls_ext(0, str16(b"\x00" + str16(b"example.com")) + b"\x00")))
    s["name-253"] = b"\x04\x00" + tls_records(named_hello(b".".join([b"a" * 63] * 3 + [b"b" * 61])))
    s["name-254"] = b"\x00\x00" + tls_records(named_hello(b".".join([b"a" * 63] * 3 + [b"b" * 62])))
    s["label-64"] = b"\x00\x00" + tls_records(named_hello(b"a" * 64 + b".com"))
    s["name-trailing-dot"] = b"\x00\x00" + tls_records(named_hello(b"example.com."))
    s["name-underscore"] = b"\x01\x00" + tls_records(named_hello(b"my_host.example"))
    s["name-ip"] = b"\x00\x00" + tls_records(named_hello(b"192.0.2.1"))
    s["bytes-after-hello"] = b"\x00\x00" + tls_records(named_hello(b"example.com") + b"\xee" * 20)
    sni = sni_ext(b"example.com")
    s["extensions-past-hello"] = b"\x00\x00" + tls_records(client_hello(sni, exts_len=len(sni) + 1))
    s["byte-after-extensions"] = b"\x00\x00" + tls_records(client_hello(sni, exts_len=len(sni) - 1))
    # TLS_HELLO_MAX: exactly, in two records, then one byte over; and a
    # 3000-byte hello that one-byte records make 18000 bytes long.
    at_max = padded_hello(TLS_HELLO_MAX - 10)
    s["max"] = b"\x00\x09" + tls_records(at_max[:100]) + tls_records(at_max[100:])
    over = padded_hello(TLS_HELLO_MAX - 9)
    s["max-plus-one"] = b"\x00\x00" + tls_records(over[:100]) + tls_records(over[100:])
    s["byte-records-too-long"] = b"\x00\x00" + tls_records(padded_hello(3000), 1)
    # refused at the record layer
    hs = named_hello(b"example.com")
    s["alert-between"] = b"\x00\x00" + tls_records(hs[:50]) + b"\x15\x03\x03\x00\x02\x02\x28" + \
        tls_records(hs[50:])
    s["record-length-0"] = b"\x00\x00" + b"\x16\x03\x01\x00\x00" + tls_records(hs)
    s["record-length-16385"] = b"\x00\x00" + b"\x16\x03\x01\x40\x01" + hs
    s["server-hello"] = b"\x00\x00" + tls_records(b"\x02" + hs[1:])
    s["http"] = b"\x00\x00" + b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"
    s["sslv2"] = b"\x00\x00" + b"\x80\x2e\x01\x03\x01\x00\x15\x00\x00\x00\x10"
    s["empty"] = b"\x00\x00"
    return s


# ---- fuzz_session: flags, then commands (enum op in fuzz_session.c) -------------

RAW, FRAME, REPEAT, OPEN, LOCAL_WRITE, LOCAL_CTRL, DGRAM, PEER, TIMER, RUN, CLOSE_OP = range(11)
F_CLIENT, F_HANDSHAKE, F_HELLO, F_READ, F_SMALL, F_MAXSTREAMS, F_AUTOTUNE, F_DRAIN = (
    1, 2, 4, 8, 16, 32, 64, 128)
# Names as fuzz_session.c numbers them.
P0, P1, U0, U1, P2_UPPER, X, EMPTY, LONGEST = range(8)
# build_frame's selectors: the frames a client may send, and a server.
C_REGISTER, C_DATA, C_CLOSE, C_HEARTBEAT, C_WINDOW, C_RESET, C_GOAWAY, C_UNREGISTER, C_HELLO = (
    range(9))
S_NEW_STREAM, S_DATA, S_CLOSE, S_HEARTBEAT, S_ACK, S_WINDOW, S_RESET, S_GOAWAY = range(8)


def sid(stream_id):
    """build_frame's selector for an even stream ID from 2 to 64."""
    return (stream_id - 2) // 2


def run(n=1):
    return bytes([RUN, n - 1])


def op(*b):
    return bytes(b)


def literal(payload):
    return bytes([len(payload)]) + payload


def kib(n):
    return bytes([0x7f + n])


def raw(b):
    return bytes([RAW, len(b)]) + b


def session_seeds():
    start = F_HANDSHAKE | F_HELLO | F_READ | F_DRAIN
    reg_p0 = op(FRAME, C_REGISTER, 1, 80, P0, 1)
    reg_u0 = op(FRAME, C_REGISTER, 2, 0, U0, 0)
    s = {}
    s["server-register-visitor-data"] = bytes([start]) + reg_p0 + run(2) + op(OPEN, 0) + run(2) + \
        op(LOCAL_WRITE, 0, 100) + run(2) + op(FRAME, C_DATA, sid(2)) + literal(b"hello") + run(2) + \
        op(FRAME, C_WINDOW, sid(2), 16) + op(LOCAL_CTRL, 0, 0) + run(2) + op(FRAME, C_CLOSE, sid(2)) + \
        run(3)
    s["server-datagrams"] = bytes([start]) + reg_u0 + run(2) + op(OPEN, 0) + run(1) + \
        op(DGRAM, 0, 0) + literal(b"query") + op(FRAME, C_DATA, sid(2)) + literal(b"Echo") + run(2) + \
        op(FRAME, C_DATA, sid(2)) + literal(b"R") + run(2) + op(OPEN, 0) + op(DGRAM, 1, 1) + run(1) + \
        op(FRAME, C_CLOSE, sid(4)) + run(2) + op(OPEN, 0) + op(DGRAM, 2, 3) + op(DGRAM, 2, 2) + run(1)
    s["server-window-overrun"] = bytes([start]) + reg_p0 + run(1) + op(OPEN, 0) + run(1) + \
        op(REPEAT, 0, 4) + op(FRAME, C_DATA, sid(2), 0xff) + run(4)
    s["server-window-overflow"] = bytes([start]) + reg_p0 + run(1) + op(OPEN, 0) + run(1) + \
        op(FRAME, C_WINDOW, sid(2), 0xff) + struct.pack(">I", 0xfffffff0) + run(2)
    s["server-close-twice"] = bytes([start]) + reg_p0 + run(1) + op(OPEN, 0) + run(1) + \
        op(REPEAT, 0, 1) + op(FRAME, C_CLOSE, sid(2)) + run(2)
    s["server-hello-twice"] = bytes([start]) + op(FRAME, C_HELLO, 0) + run(2)
    s["server-unregister"] = bytes([start]) + reg_p0 + op(FRAME, C_REGISTER, 1, 81, P1, 0) + run(1) + \
        op(OPEN, 0, OPEN, 1, OPEN, 0) + run(2) + op(FRAME, C_UNREGISTER, P0) + run(2) + \
        op(FRAME, C_REGISTER, 1, 0, P2_UPPER, 3) + op(FRAME, C_UNREGISTER, X) + run(2)
    s["server-goaway"] = bytes([start]) + reg_p0 + run(1) + op(OPEN, 0) + \
        op(FRAME, C_GOAWAY, 0) + run(2)
    s["server-reset-unknown"] = bytes([start]) + op(FRAME, C_RESET, sid(64), 1) + \
        op(FRAME, C_DATA, 0xf8) + struct.pack(">I", 12345) + literal(b"x") + \
        op(FRAME, C_CLOSE, 0xf1) + run(2)
    s["server-congested"] = bytes([start | F_SMALL]) + reg_p0 + run(1) + op(OPEN, 0, OPEN, 0) + \
        op(PEER, 0) + op(LOCAL_WRITE, 0, 0xff, LOCAL_WRITE, 1, 0xff) + run(4) + op(PEER, 0) + run(4)
    # Output over 1 MiB: the streams stall until the peer reads again.
    s["server-stall"] = bytes([start]) + reg_p0 + run(1) + op(OPEN, 0) + run(1) + \
        op(FRAME, C_WINDOW, sid(2), 0xff) + struct.pack(">I", 0x00f00000) + op(PEER, 0) + \
        (op(LOCAL_WRITE, 0, 0xff) + run(4)) * 8 + op(PEER, 0) + run(4) * 3
    # Output over 4 MiB (4096 refusals of the longest name, 1 KiB each):
    # the session stops reading, and drops the peer when told the pause is
    # old. (That it reads on when the peer does is, for now, the reproducer
    # crash-session-refeed-null-offset: op(PEER, 0) + run(4) * 12 instead.)
    flood = op(REPEAT, 0x0f, 0xff) + op(FRAME, C_REGISTER, 1, 0, LONGEST, 0)
    s["server-paused-timeout"] = bytes([start]) + op(PEER, 0) + flood + run(4) * 10 + \
        op(TIMER, 2) + run(2)
    s["server-max-streams"] = bytes([start | F_MAXSTREAMS]) + reg_p0 + run(1) + \
        op(OPEN, 0, OPEN, 0, OPEN, 0, OPEN, 0) + run(2)
    s["server-timers"] = bytes([F_READ]) + op(TIMER, 3) + run(1)
    s["server-heartbeat"] = bytes([start]) + op(TIMER, 0) + run(1) + op(TIMER, 1) + run(1)
    s["server-handshake-bytes"] = bytes([F_READ]) + raw(b"GRT1") + run(1) + raw(b"\x00\x00\x00") + \
        raw(hello()) + run(2)
    s["server-bad-magic"] = bytes([F_READ]) + raw(b"GET / HTTP/1.0\r\n\r\n") + run(2)
    s["server-peer-gone"] = bytes([start]) + reg_p0 + run(1) + op(OPEN, 0) + op(PEER, 3) + \
        op(LOCAL_WRITE, 0, 50) + run(2)
    s["server-peer-eof-mid-frame"] = bytes([start]) + raw(b"\x01\x01") + op(PEER, 1) + run(2)
    s["server-owner-close"] = bytes([start]) + reg_p0 + run(1) + op(OPEN, 0) + op(CLOSE_OP, 1)
    # the session as the client
    cstart = F_CLIENT | F_HANDSHAKE | F_READ | F_DRAIN
    s["client-streams"] = bytes([cstart]) + run(2) + op(OPEN, P0) + run(2) + \
        op(FRAME, S_DATA, sid(2)) + literal(b"GET / HTTP/1.0\r\n\r\n") + run(2) + \
        op(LOCAL_WRITE, 0, 0x81) + run(2) + op(FRAME, S_WINDOW, sid(2), 64) + \
        op(LOCAL_CTRL, 0, 1) + run(2) + op(FRAME, S_CLOSE, sid(2)) + run(2)
    s["client-connecting"] = bytes([cstart]) + op(FRAME, S_NEW_STREAM, sid(6), P1, 1) + run(3) + \
        op(FRAME, S_DATA, sid(6)) + literal(b"x") + run(2)
    s["client-datagrams"] = bytes([cstart]) + op(OPEN, U0) + op(FRAME, S_DATA, sid(2)) + \
        literal(b"Echo") + run(2) + op(DGRAM, 0, 0) + literal(b"answer") + op(DGRAM, 0, 1) + \
        op(FRAME, S_CLOSE, sid(2)) + run(2)
    s["client-unknown-proxy"] = bytes([cstart]) + op(OPEN, X) + op(FRAME, S_ACK, 0, P0) + \
        op(FRAME, S_ACK, 2, X) + run(2)
    s["client-stream-id-down"] = bytes([cstart]) + op(FRAME, S_NEW_STREAM, sid(8), P0, 0) + \
        op(FRAME, S_NEW_STREAM, sid(4), P0, 0) + run(2)
    s["client-odd-id"] = bytes([cstart]) + op(FRAME, S_NEW_STREAM, 0xf3, P0, 1) + run(2)
    s["client-challenged"] = bytes([F_CLIENT | F_READ]) + raw(hs_reply(CHALLENGE)) + run(2)
    s["client-goaway"] = bytes([cstart]) + op(FRAME, S_GOAWAY, 3) + run(2)
    # 70 datagram streams at once: the stream table grows.
    s["client-many-streams"] = bytes([cstart]) + op(OPEN, U0) * 70 + run(2) + \
        op(FRAME, S_DATA, sid(64)) + literal(b"Echo") + run(2)
    s["client-reset"] = bytes([cstart]) + op(OPEN, P0, OPEN, P1) + run(1) + \
        op(FRAME, S_RESET, sid(2), 1) + op(FRAME, S_RESET, sid(2), 1) + run(2)
    return s


# ---- fuzz_admin: set-up byte (bits 0-1 token, bit 2 no kick), split seed, bytes ----

ADMIN_TOKEN = b"fuzz-admin-token"
NO_TOKEN, WITH_TOKEN, SHORT_TOKEN, LONG_TOKEN, NO_KICK = 0, 1, 2, 3, 4


def admin_request(method, target, headers=(), body=b"", version=b"1.1"):
    head = method + b" " + target + b" HTTP/" + version + b"\r\n"
    for h in headers:
        head += h + b"\r\n"
    return head + b"\r\n" + body


def bearer(token=ADMIN_TOKEN):
    return b"Authorization: Bearer " + token


def admin_seeds():
    host = b"Host: 127.0.0.1:7001"
    auth = (host, bearer())
    get = admin_request(b"GET", b"/api/v1/sessions", auth)
    s = {}
    s["metrics"] = bytes([NO_TOKEN, 0]) + admin_request(b"GET", b"/metrics", (host,))
    s["metrics-token"] = bytes([WITH_TOKEN, 0]) + admin_request(b"GET", b"/metrics", auth)
    s["sessions-token-split"] = bytes([WITH_TOKEN, 3]) + get
    s["session-7"] = bytes([NO_TOKEN, 0]) + admin_request(b"GET", b"/api/v1/sessions/7", (host,))
    s["token-wrong"] = bytes([WITH_TOKEN, 0]) + admin_request(
        b"GET", b"/api/v1/sessions", (host, bearer(b"fuzz-admin-tokem")))
    s["token-case-trailing"] = bytes([SHORT_TOKEN, 5]) + admin_request(
        b"GET", b"/metrics", (b"authorization: bEARER t \t",))
    s["token-long"] = bytes([LONG_TOKEN, 0xc4]) + admin_request(
        b"GET", b"/metrics", (bearer(b"k" * 1024),))
    s["token-missing"] = bytes([WITH_TOKEN, 1]) + admin_request(b"GET", b"/metrics", (host,))
    s["pipelined"] = bytes([WITH_TOKEN, 0]) + get + admin_request(
        b"GET", b"/api/v1/sessions/1", auth) + admin_request(
        b"DELETE", b"/api/v1/sessions/7", auth) + admin_request(b"GET", b"/metrics", auth)
    s["pipelined-close"] = bytes([NO_TOKEN, 2]) + admin_request(
        b"GET", b"/metrics", (b"Connection: close",)) + admin_request(b"GET", b"/metrics")
    s["delete-ban"] = bytes([WITH_TOKEN, 0]) + admin_request(
        b"DELETE", b"/api/v1/sessions/1?ban=600", auth) + admin_request(
        b"DELETE", b"/api/v1/sessions/3?ban=31536000", auth) + admin_request(
        b"DELETE", b"/api/v1/sessions/7", auth)
    s["delete-bad-ban"] = bytes([NO_TOKEN, 0]) + admin_request(
        b"DELETE", b"/api/v1/sessions/1?ban=0.5") + admin_request(
        b"DELETE", b"/api/v1/sessions/1?ban=31536001") + admin_request(
        b"DELETE", b"/api/v1/sessions/1?ban=nan") + admin_request(
        b"DELETE", b"/api/v1/sessions/1?bam=60") + admin_request(
        b"DELETE", b"/api/v1/sessions/01")
    s["delete-no-kick"] = bytes([NO_KICK, 0]) + admin_request(
        b"DELETE", b"/api/v1/sessions/1") + admin_request(b"POST", b"/metrics") + admin_request(
        b"GET", b"/api/v1/sessions?x") + admin_request(b"GET", b"/nowhere")
    s["chunked-body"] = bytes([WITH_TOKEN, 7]) + admin_request(
        b"DELETE", b"/api/v1/sessions/7?ban=60",
        auth + (b"Transfer-Encoding: chunked",), b"5\r\nhello\r\n0\r\n\r\n") + get
    s["content-length-body"] = bytes([WITH_TOKEN, 0xff]) + admin_request(
        b"GET", b"/metrics", auth + (b"Content-Length: 3000",), b"x" * 3000) + get
    # The core takes Authorization from trailers too (fuzz_admin.c, TRAILER_AUTH).
    s["token-in-trailer"] = bytes([WITH_TOKEN, 0]) + admin_request(
        b"GET", b"/metrics", (b"Transfer-Encoding: chunked",), b"0\r\n" + bearer() + b"\r\n\r\n")
    s["token-folded"] = bytes([WITH_TOKEN, 0]) + admin_request(
        b"GET", b"/metrics", (b"Authorization: Bearer\r\n " + ADMIN_TOKEN,))
    # A head just under 8 KiB (8192 bytes as the callbacks see them: 8168), then over it.
    filler = b"X-Fill: " + b"f" * 8100
    s["head-8k"] = bytes([WITH_TOKEN, 0xc8]) + admin_request(b"GET", b"/metrics", auth + (filler,))
    s["head-over-8k"] = bytes([WITH_TOKEN, 0]) + admin_request(
        b"GET", b"/metrics", auth + (filler + b"f" * 100,))
    s["head-over-8k-name"] = bytes([NO_TOKEN, 0xd0]) + admin_request(
        b"GET", b"/metrics", (b"X-" + b"n" * 8200 + b": v",))
    s["uri-too-long"] = bytes([NO_TOKEN, 0]) + admin_request(b"GET", b"/metrics?" + b"q" * 2048)
    s["upgrade"] = bytes([NO_TOKEN, 0]) + admin_request(
        b"GET", b"/metrics", (b"Connection: Upgrade", b"Upgrade: websocket")) + b"\x81\x00"
    s["connect"] = bytes([NO_TOKEN, 0]) + admin_request(b"CONNECT", b"127.0.0.1:22") + b"SSH-2.0"
    s["http10-keep-alive"] = bytes([WITH_TOKEN, 0]) + admin_request(
        b"GET", b"/metrics", auth + (b"Connection: keep-alive",), version=b"1.0") + admin_request(
        b"GET", b"/api/v1/sessions/1", auth, version=b"1.0") + admin_request(b"GET", b"/metrics")
    s["empty-lines-first"] = bytes([NO_TOKEN, 1]) + b"\r\n\r\n" + admin_request(b"GET", b"/metrics")
    s["garbage"] = bytes([NO_TOKEN, 0]) + b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"
    s["garbage-after"] = bytes([NO_TOKEN, 0]) + admin_request(b"GET", b"/metrics") + \
        b"GET /metrics HTTP/1.1\r\nBad Header\r\n\r\n"
    s["error-quotes-bytes"] = bytes([NO_TOKEN, 0]) + admin_request(
        b"DELETE", b"/api/v1/sessions/1?" + b"\xc3\xa9" * 40)
    return s


TARGETS = {
    "fuzz_codec": codec_seeds,
    "fuzz_handshake": handshake_seeds,
    "fuzz_server_config": server_config_seeds,
    "fuzz_client_config": client_config_seeds,
    "fuzz_users": users_seeds,
    "fuzz_session": session_seeds,
    "fuzz_proxyproto": proxyproto_seeds,
    "fuzz_client_hello": client_hello_seeds,
    "fuzz_admin": admin_seeds,
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare instead of writing")
    ap.add_argument("--out", default=os.path.join(HERE, "corpus"), help="corpus root")
    args = ap.parse_args()
    bad = 0
    for target, make in TARGETS.items():
        d = os.path.join(args.out, target)
        os.makedirs(d, exist_ok=True)
        for name, content in sorted(make().items()):
            path = os.path.join(d, name)
            if args.check:
                try:
                    with open(path, "rb") as f:
                        same = f.read() == content
                except OSError:
                    same = False
                if not same:
                    print("differs or missing: %s" % os.path.relpath(path, TOP))
                    bad += 1
            else:
                with open(path, "wb") as f:
                    f.write(content)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
