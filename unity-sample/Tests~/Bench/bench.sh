#!/usr/bin/env bash
# Mono benchmark: CubeWalkClient vs a hand-written HttpClient client, same gateway, one run.
# Usage: unity-sample/Tests~/Bench/bench.sh [seconds-per-row, default 6]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
cd "$root"
cargo build --locked --release -p cubewalk -p cubewalk-server >&2
target="${CARGO_TARGET_DIR:-$root/target}/release"
work="$(mktemp -d)"
token="bench-token-$RANDOM$RANDOM"
"$target/cubewalk-server" serve --bind 127.0.0.1:0 --tokens "$token" > "$work/gw.out" 2> "$work/gw.err" &
gw=$!
trap 'kill $gw 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 100); do grep -q "listening on" "$work/gw.out" 2>/dev/null && break; sleep 0.1; done
endpoint="$(grep -o 'http://[^ ]*' "$work/gw.out" | head -1)"
mcs -langversion:7.2 -unsafe -optimize+ -out:"$work/Bench.exe" -r:System.Net.Http -r:System.Runtime.Serialization \
  "$root"/unity-sample/Runtime/*.cs "$here"/Bench.cs >&2
LD_LIBRARY_PATH="$target" mono "$work/Bench.exe" "$endpoint" "$token" "${1:-6}"
