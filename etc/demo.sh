#!/bin/sh
# make demo: mgrokd and mgrok on loopback with the example configs in etc/,
# a small web service behind the tunnel, one request through it, and then
# everything this script started is stopped again.
set -eu

src=${MGROK_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
build=${MGROK_BUILDDIR:-$src}
plugins=${MGROK_PLUGIN_DIR:-$build/plugins/.libs}
work=$(mktemp -d)
pids=""

cleanup() {
	for p in $pids; do kill "$p" 2>/dev/null || true; done
	for p in $pids; do wait "$p" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

# The service to expose: a static page on 127.0.0.1:8080 (etc/mgrok.json's "local").
mkdir -p "$work/site"
echo "Hello from the service behind the tunnel ($(hostname), $(date -u +%H:%M:%S))" >"$work/site/index.html"
python3 -m http.server 8080 --bind 127.0.0.1 --directory "$work/site" >"$work/web.log" 2>&1 &
pids="$pids $!"

echo "== mgrokd -c etc/mgrokd.json"
"$build/core/mgrokd" -c "$src/etc/mgrokd.json" --plugin-dir "$plugins" 2>"$work/mgrokd.log" &
pids="$pids $!"
sleep 0.5

echo "== mgrok -c etc/mgrok.json"
"$build/core/mgrok" -c "$src/etc/mgrok.json" --plugin-dir "$plugins" >"$work/mgrok.out" 2>"$work/mgrok.log" &
pids="$pids $!"

# Wait (bounded) for the client to print its public address.
i=0
while ! grep -q '://' "$work/mgrok.out" 2>/dev/null; do
	i=$((i + 1))
	if [ $i -gt 100 ]; then
		echo "demo: the tunnel did not come up; logs:" >&2
		cat "$work/mgrokd.log" "$work/mgrok.log" >&2
		exit 1
	fi
	sleep 0.1
done
line=$(head -n 1 "$work/mgrok.out")
echo "   $line"
public=$(echo "$line" | sed -n 's|^tcp://\([^ ]*\) .*|\1|p')

echo "== GET http://$public/ (through mgrokd and mgrok to 127.0.0.1:8080)"
python3 - "$public" <<'PY'
import sys, urllib.request
body = urllib.request.urlopen("http://%s/" % sys.argv[1], timeout=10).read().decode()
print("   " + body.strip())
PY

echo "== server log"
sed 's/^/   /' "$work/mgrokd.log"
echo "== demo done: stopping mgrok, mgrokd and the web service"
