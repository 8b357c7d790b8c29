#!/usr/bin/env bash
# Long load/soak of the local gateway with wrk: 256 keep-alive connections fetching a terrain
# chunk for DURATION seconds (default 60) against the release build, on the embedded store or
# on a real redis-server (`scripts/soak.sh 300 redis`). Prints wrk's figures, errors and the
# gateway's memory before and after.
set -euo pipefail
cd "$(dirname "$0")/.."
duration="${1:-60}"
store="${2:-memory}"
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)"; exit 1; }
cargo build --release --locked -p cubewalk-server >&2
target="${CARGO_TARGET_DIR:-target}/release"
work="$(mktemp -d)"
token="soak-token-$RANDOM$RANDOM"
args=(serve --bind 127.0.0.1:0 --tokens "$token")
if [ "$store" = redis ]; then
  port=$((20000 + RANDOM % 20000))
  redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --daemonize no > "$work/redis.log" 2>&1 &
  redis=$!
  args+=(--redis "redis://127.0.0.1:$port")
fi
RUST_LOG=warn "$target/cubewalk-server" "${args[@]}" > "$work/gw.out" 2> "$work/gw.err" &
gw=$!
trap 'kill $gw ${redis:-} 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 100); do grep -q "listening on" "$work/gw.out" 2>/dev/null && break; sleep 0.1; done
url="$(grep -o 'http://[^ ]*' "$work/gw.out" | head -1)"
python3 - "$url" "$token" <<'PY'
import json, sys, urllib.request
url, token = sys.argv[1], sys.argv[2]
edits = []
for x in range(16):
    for z in range(16):
        h = 6 + (x * 7 + z * 13) % 5
        for y in range(16):
            v = 1 if y < h - 3 else 2 if y < h - 1 else 3 if y == h - 1 else 0
            if v:
                edits.append({"chunk": [0, 0, 0], "index": x * 256 + z * 16 + y, "value": v})
req = urllib.request.Request(url, data=json.dumps({"edits": edits}).encode(), method="PUT", headers={"token": token})
urllib.request.urlopen(req).read()
PY
rss() { awk '/VmRSS/ {print $2}' "/proc/$gw/status"; }
before=$(rss)
wrk -t2 -c256 -d"${duration}s" --latency -H "token: $token" "$url?chunks=0,0,0" | tee "$work/wrk.txt"
after=$(rss)
errors=$(grep -E "Socket errors|Non-2xx" "$work/wrk.txt" || true)
echo "soak ($store, ${duration}s, 256 connections): ${errors:-no socket errors, no non-2xx answers}; gateway RSS $((before / 1024)) MiB -> $((after / 1024)) MiB"
[ -z "$errors" ]
