#!/bin/sh
# shellcheck disable=SC2154,SC2086,SC2015 # env from make; $CC/$cflags split on purpose
# make installcheck: an installed mgrok is usable by a third party.
#
#  1. doc/examples/auth-example builds with its own Makefile against the
#     INSTALLED header, found through the installed mgrok-plugin.pc only;
#  2. the installed mgrokd loads it and the installed mgrok authenticates with
#     it: the tunnel comes up and carries an echo round trip on 127.0.0.1;
#     a wrong secret and an unknown user exit 1 with "authentication failed";
#  3. the same plugin built with ABI major 2 (or a minor newer than the
#     host's) is refused with a message naming the file and both versions.
#
# Environment (set by installcheck-local in Makefile.am): bindir, libdir,
# includedir, plugindir, DESTDIR (may be empty), srcdir, builddir, CC, MAKE.
# Nothing is written outside a mktemp -d directory: srcdir may be read-only
# (make distcheck) and the installed tree must stay as installed.

me=installcheck
say() { printf '%s: %s\n' "$me" "$*"; }

tmp=
pids=
ok=no
failure="interrupted"
cleanup() {
	for p in $pids; do
		kill -9 "$p" 2>/dev/null && wait "$p" 2>/dev/null # quiet: no "Killed"
	done
	if [ "$ok" != yes ]; then
		if [ -n "$tmp" ] && [ -d "$tmp" ]; then
			for f in "$tmp"/*.err "$tmp"/*.out "$tmp"/*.log; do
				[ -s "$f" ] || continue
				say "---- last lines of ${f##*/} ----"
				tail -n 25 "$f"
			done
		fi
		say "FAIL: $failure"
	fi
	[ -n "$tmp" ] && rm -rf "$tmp"
} >&2
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

fail() {
	failure=$*
	exit 1
}

for v in bindir libdir includedir plugindir srcdir; do
	eval "val=\${$v:-}"
	[ -n "$val" ] || fail "\$$v is not set (run me through 'make installcheck')"
done
D=${DESTDIR:-}
CC=${CC:-cc}
MAKE=${MAKE:-make}
PKG_CONFIG=${PKG_CONFIG:-pkg-config}
command -v python3 >/dev/null 2>&1 || fail "python3 is needed"
command -v "$PKG_CONFIG" >/dev/null 2>&1 || fail "$PKG_CONFIG is needed"

mgrokd=$D$bindir/mgrokd
mgrok=$D$bindir/mgrok
inc=$D$includedir
pcdir=$D$libdir/pkgconfig
for f in "$mgrokd" "$mgrok"; do
	[ -x "$f" ] || fail "$f is not installed"
done
for f in "$inc/mgrok/plugin.h" "$pcdir/mgrok-plugin.pc" "$D$plugindir/tcp.so"; do
	[ -f "$f" ] || fail "$f is not installed"
done
abs_srcdir=$(cd "$srcdir" && pwd) || fail "srcdir $srcdir"
abs_builddir=$(cd "${builddir:-.}" && pwd) || fail "builddir $builddir"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/mgrok-installcheck.XXXXXX") || fail "mktemp -d"

# Runs "$@" for at most $1 seconds; returns its status, or 124 on timeout.
bounded() {
	secs=$1
	shift
	"$@" &
	bpid=$!
	pids="$pids $bpid"
	n=0
	while kill -0 "$bpid" 2>/dev/null; do
		n=$((n + 1))
		if [ "$n" -gt $((secs * 10)) ]; then
			kill -9 "$bpid" 2>/dev/null
			wait "$bpid" 2>/dev/null
			return 124
		fi
		sleep 0.1
	done
	wait "$bpid"
}

# ---- 1. build the example against the installed header ---------------------
# Only the installed .pc may say where mgrok's header is: no -I of ours, no
# compiler search path from the environment.
PKG_CONFIG_PATH=$pcdir${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
export PKG_CONFIG_PATH
if [ -n "$D" ]; then
	PKG_CONFIG_SYSROOT_DIR=$D
	export PKG_CONFIG_SYSROOT_DIR
fi
unset CPATH C_INCLUDE_PATH CPLUS_INCLUDE_PATH MAKEFLAGS MFLAGS MAKELEVEL

cflags=$("$PKG_CONFIG" --cflags mgrok-plugin 2>"$tmp/pkg-config.err") ||
	fail "pkg-config --cflags mgrok-plugin failed: $(cat "$tmp/pkg-config.err")"
say "pkg-config --cflags mgrok-plugin: $cflags"
case " $cflags " in
*" -I$inc "*) ;;
*) [ "$includedir" = /usr/include ] || fail "pkg-config --cflags lacks -I$inc: '$cflags'" ;;
esac
pdir=$("$PKG_CONFIG" --variable=plugindir mgrok-plugin) || fail "pkg-config --variable=plugindir failed"
# pkgconf puts the sysroot in front of a variable holding a path, pkg-config does not.
[ "$pdir" = "$plugindir" ] || [ "$pdir" = "$D$plugindir" ] ||
	fail "pkg-config --variable=plugindir is '$pdir', mgrok loads plugins from '$plugindir'"
say "pkg-config --variable=plugindir mgrok-plugin: $pdir"

cp -R "$abs_srcdir/doc/examples/auth-example" "$tmp/example" || fail "cannot copy the example"
chmod -R u+w "$tmp/example"
rm -f "$tmp/example/example.so"
# A compiler wrapper records what the example's Makefile really ran.
cat >"$tmp/cc" <<EOF
#!/bin/sh
printf '%s\n' "\$*" >>"$tmp/cc.log"
exec $CC "\$@"
EOF
chmod +x "$tmp/cc"
(cd "$tmp/example" &&
	"$MAKE" CC="$tmp/cc" CFLAGS="-O2 -Wall -Wextra -Werror" PKG_CONFIG="$PKG_CONFIG") \
	>"$tmp/build.log" 2>&1 || fail "the example does not build with its Makefile"
[ -f "$tmp/example/example.so" ] || fail "the example's Makefile made no example.so"
line=$(cat "$tmp/cc.log")
say "compile line: $line"
for tree in "$abs_srcdir/include" "$abs_srcdir/core" "$abs_builddir/include" "$abs_builddir/core" \
	"$abs_srcdir/plugins" "$abs_builddir/plugins"; do
	case "$line" in
	*"$tree"*) fail "the example was compiled with a path into the source tree: $tree" ;;
	esac
done
# Where did <mgrok/plugin.h> come from? From the installed tree only.
(cd "$tmp/example" && $CC $cflags -M example.c) >"$tmp/deps.txt" 2>&1 ||
	fail "cannot list the example's headers"
used=$(tr ' ' '\n' <"$tmp/deps.txt" | grep 'mgrok/plugin\.h$')
[ "$used" = "$inc/mgrok/plugin.h" ] || [ "$used" = "$(cd "$inc" && pwd -P)/mgrok/plugin.h" ] ||
	fail "the example used $used, not the installed $inc/mgrok/plugin.h"
say "built example.so against $used"

mkdir "$tmp/plugins" && cp "$D$plugindir/tcp.so" "$tmp/example/example.so" "$tmp/plugins/" ||
	fail "cannot make the plugin directory"

# ---- 2. a real mgrokd and a real mgrok with the example method -------------
cat >"$tmp/users" <<'EOF'
# name secret -- one user a line
alice Alice-Secret-9f2c41e7

bob   Bob-Secret-5d08a3b6
EOF
chmod 600 "$tmp/users"

# Small python3 helpers: a free port, a JSON config, an echo service, a round trip.
free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
write_json() { # FILE PYTHON-EXPRESSION (with tmp, port, ... from the environment)
	python3 -c 'import json, os, sys; e = os.environ; json.dump(eval(sys.argv[2]), open(sys.argv[1], "w"))' "$@"
}

python3 -c '
import os, socket, socketserver, sys
class H(socketserver.BaseRequestHandler):
    def handle(self):
        while True:
            d = self.request.recv(65536)
            if not d:
                return
            self.request.sendall(d)
class S(socketserver.ThreadingTCPServer):
    daemon_threads = True
s = S(("127.0.0.1", 0), H)
open(sys.argv[1] + ".new", "w").write(str(s.server_address[1]))
os.rename(sys.argv[1] + ".new", sys.argv[1])
s.serve_forever()' "$tmp/echo.port" >"$tmp/echo.log" 2>&1 &
pids="$pids $!"

wait_for() { # SECONDS PID DESCRIPTION COMMAND...: COMMAND succeeds while PID lives
	secs=$1 pid=$2 what=$3
	shift 3
	n=0
	until "$@"; do
		kill -0 "$pid" 2>/dev/null || fail "$what: the process exited"
		n=$((n + 1))
		[ "$n" -le $((secs * 10)) ] || fail "$what: nothing after $secs s"
		sleep 0.1
	done
}
wait_for 10 "$!" "echo service" test -s "$tmp/echo.port"
echo_port=$(cat "$tmp/echo.port")

# Starts the installed mgrokd on a free port (again if another process took
# it meanwhile) and waits until it listens.
start_server() {
	for _ in 1 2 3; do
		port=$(free_port) || fail "no free port"
		export port tmp
		write_json "$tmp/mgrokd.json" '{"listen": "127.0.0.1:" + e["port"],
			"proxy_bind": "127.0.0.1", "public_host": "127.0.0.1",
			"auth": {"method": "example", "users_file": e["tmp"] + "/users"},
			"handshake_timeout": 10, "log": {"level": "info"}}' || fail "cannot write mgrokd.json"
		"$mgrokd" -c "$tmp/mgrokd.json" --plugin-dir "$tmp/plugins" -v \
			>"$tmp/mgrokd.out" 2>"$tmp/mgrokd.err" &
		srv=$!
		pids="$pids $srv"
		n=0
		while kill -0 "$srv" 2>/dev/null && ! grep -q 'listening on' "$tmp/mgrokd.err"; do
			n=$((n + 1))
			[ "$n" -le 100 ] || fail "mgrokd did not listen within 10 s"
			sleep 0.1
		done
		grep -q 'listening on' "$tmp/mgrokd.err" && return 0
		grep -q 'cannot listen' "$tmp/mgrokd.err" || fail "mgrokd exited: $(cat "$tmp/mgrokd.err")"
	done
	fail "mgrokd found no free port in three attempts"
}
start_server
say "installed mgrokd listens on 127.0.0.1:$port with plugins from $tmp/plugins"

client_conf() { # FILE USER SECRET
	u=$2 s=$3
	export u s port
	write_json "$1" '{"server": "127.0.0.1:" + e["port"],
		"auth": {"method": "example", "user": e["u"], "secret": e["s"]},
		"reconnect": {"retry_on_deny": False}, "log": {"level": "info"}}' ||
		fail "cannot write $1"
}
client_conf "$tmp/good.json" alice Alice-Secret-9f2c41e7
"$mgrok" -c "$tmp/good.json" --plugin-dir "$tmp/plugins" tcp "$echo_port" \
	>"$tmp/mgrok.out" 2>"$tmp/mgrok.err" &
cli=$!
pids="$pids $cli"
wait_for 15 "$cli" "mgrok printing its public address" grep -q '^tcp://' "$tmp/mgrok.out"
public=$(sed -n 's|^tcp://\([^ ]*\) .*|\1|p' "$tmp/mgrok.out" | head -n 1)
say "installed mgrok is up: $(head -n 1 "$tmp/mgrok.out")"
case "$public" in
127.0.0.1:[0-9]*) ;;
*) fail "unexpected public address '$public'" ;;
esac
grep -q "authenticated as 'alice'" "$tmp/mgrokd.err" ||
	fail "mgrokd did not log the identity alice from the example method"

bounded 15 python3 -c '
import os, socket, sys
host, port = sys.argv[1].rsplit(":", 1)
data = os.urandom(100000)
with socket.create_connection((host, int(port)), timeout=10) as c:
    c.sendall(data)
    c.shutdown(socket.SHUT_WR)
    got = b""
    while len(got) < len(data):
        d = c.recv(65536)
        if not d:
            break
        got += d
sys.exit(0 if got == data else "echo round trip: sent %d bytes, got %d back%s" % (
    len(data), len(got), "" if data.startswith(got) else " (different)"))
' "$public" || fail "no echo round trip through the tunnel"
say "echo round trip of 100000 bytes through $public: ok"

refused() { # NAME USER SECRET: mgrok exits 1 with "authentication failed"
	client_conf "$tmp/$1.json" "$2" "$3"
	bounded 20 "$mgrok" -c "$tmp/$1.json" --plugin-dir "$tmp/plugins" tcp "$echo_port" \
		>"$tmp/$1.out" 2>"$tmp/$1.err"
	code=$?
	[ "$code" -eq 1 ] || fail "mgrok with $1 exited with $code, not 1"
	grep -q 'authentication failed' "$tmp/$1.err" ||
		fail "mgrok with $1 did not say \"authentication failed\""
	! grep -q '^tcp://' "$tmp/$1.out" || fail "mgrok with $1 got a tunnel"
	say "$1: exit 1, \"$(grep -m 1 'authentication failed' "$tmp/$1.err")\""
}
refused wrong-secret alice Bob-Secret-5d08a3b6
refused unknown-user mallory Alice-Secret-9f2c41e7
kill -0 "$srv" 2>/dev/null || fail "mgrokd died"
kill -0 "$cli" 2>/dev/null || fail "the good mgrok died"

# SIGTERM: both say goodbye and exit 0.
stop_proc() { # PID NAME
	kill -TERM "$1" 2>/dev/null
	n=0
	while kill -0 "$1" 2>/dev/null; do
		n=$((n + 1))
		[ "$n" -le 100 ] || fail "$2 did not exit within 10 s of SIGTERM"
		sleep 0.1
	done
	wait "$1"
	code=$?
	[ "$code" -eq 0 ] || fail "$2 exited with $code on SIGTERM"
}
stop_proc "$cli" mgrok
stop_proc "$srv" mgrokd

# ---- 3. plugins of another ABI are refused ---------------------------------
abi_major=$(sed -n 's/^#define MGROK_PLUGIN_ABI_MAJOR \([0-9]*\).*/\1/p' "$inc/mgrok/plugin.h")
abi_minor=$(sed -n 's/^#define MGROK_PLUGIN_ABI_MINOR \([0-9]*\).*/\1/p' "$inc/mgrok/plugin.h")
[ -n "$abi_major" ] && [ -n "$abi_minor" ] || fail "no ABI version in $inc/mgrok/plugin.h"
host_abi=$abi_major.$abi_minor

# build_abi NAME MAJOR MINOR: the example, compiled with a copy of the
# installed header that claims MAJOR.MINOR, in $tmp/NAME/ with tcp.so.
build_abi() {
	mkdir -p "$tmp/$1/include/mgrok" "$tmp/$1/plugins" || fail "mkdir"
	sed -e "s/^#define MGROK_PLUGIN_ABI_MAJOR .*/#define MGROK_PLUGIN_ABI_MAJOR $2/" \
		-e "s/^#define MGROK_PLUGIN_ABI_MINOR .*/#define MGROK_PLUGIN_ABI_MINOR $3/" \
		"$inc/mgrok/plugin.h" >"$tmp/$1/include/mgrok/plugin.h"
	grep -q "^#define MGROK_PLUGIN_ABI_MAJOR $2\$" "$tmp/$1/include/mgrok/plugin.h" &&
		grep -q "^#define MGROK_PLUGIN_ABI_MINOR $3\$" "$tmp/$1/include/mgrok/plugin.h" ||
		fail "could not make a header for ABI $2.$3"
	$CC -shared -fPIC -I"$tmp/$1/include" $cflags "$tmp/example/example.c" \
		-o "$tmp/$1/plugins/example-$1.so" -lcrypto >"$tmp/$1.log" 2>&1 ||
		fail "the example does not build for ABI $2.$3"
	cp "$D$plugindir/tcp.so" "$tmp/$1/plugins/" || fail "cp tcp.so"
}

# refused_abi NAME MAJOR MINOR PROGRAM ARGS...: PROGRAM exits non-zero and
# names the file, the plugin's ABI and the host's.
refused_abi() {
	name=$1 want="ABI $2.$3"
	shift 3
	so=$tmp/$name/plugins/example-$name.so
	bounded 15 "$@" >"$tmp/$name.out" 2>"$tmp/$name.err"
	code=$?
	[ "$code" -ne 0 ] && [ "$code" -ne 124 ] || fail "${1##*/} with $so: exit code $code"
	msg=$(grep -F "$so" "$tmp/$name.err" | head -n 1)
	[ -n "$msg" ] || fail "${1##*/} did not name $so: $(cat "$tmp/$name.err")"
	case "$msg" in
	*"$want"*"$host_abi"*) ;;
	*) fail "${1##*/}'s message lacks '$want' or the host's $host_abi: $msg" ;;
	esac
	say "${1##*/} refuses $name (exit $code): $msg"
}

build_abi abi2 $((abi_major + 1)) "$abi_minor"
port=$(free_port) && export port
write_json "$tmp/abi.json" '{"listen": "127.0.0.1:" + e["port"],
	"auth": {"method": "example", "users_file": e["tmp"] + "/users"}}' || fail "write abi.json"
refused_abi abi2 $((abi_major + 1)) "$abi_minor" \
	"$mgrokd" -c "$tmp/abi.json" --plugin-dir "$tmp/abi2/plugins"
refused_abi abi2 $((abi_major + 1)) "$abi_minor" \
	"$mgrok" -c "$tmp/good.json" --plugin-dir "$tmp/abi2/plugins" --check tcp "$echo_port"

build_abi newer "$abi_major" $((abi_minor + 1))
refused_abi newer "$abi_major" $((abi_minor + 1)) \
	"$mgrokd" -c "$tmp/abi.json" --plugin-dir "$tmp/newer/plugins"

ok=yes
say "PASS: example plugin built against the installed header, loaded, authenticated; other ABIs refused"
