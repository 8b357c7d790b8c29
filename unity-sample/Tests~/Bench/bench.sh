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
server="$target/cubewalk-server"
. "$root/scripts/start-gateway.sh" >&2
mcs -langversion:7.2 -unsafe -optimize+ -out:"$work/Bench.exe" -r:System.Net.Http -r:System.Runtime.Serialization \
  "$root"/unity-sample/Runtime/*.cs "$here"/Bench.cs "$here"/../Fixtures.cs >&2
LD_LIBRARY_PATH="$target" mono "$work/Bench.exe" "$endpoint" "$token" "${1:-6}"
