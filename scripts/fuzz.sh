#!/usr/bin/env bash
# Fuzzes the request parsers and the chunk decoder with cargo-fuzz (libFuzzer + AddressSanitizer)
# for a fixed budget per target, starting from the committed corpus in fuzz/corpus/.
# Usage: scripts/fuzz.sh [seconds per target, default 60]
# Needs cargo-fuzz (`cargo install cargo-fuzz`). cargo-fuzz wants nightly flags; this toolchain is
# stable, so RUSTC_BOOTSTRAP=1 lets it pass them (the fuzz crate is separate from the workspace).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
export RUSTC_BOOTSTRAP=1
for target in chunk_decode put_request fetch_query realtime_message; do
  # New finds go to a scratch corpus so a run never dirties the committed seeds.
  scratch="$(mktemp -d)"
  echo "== fuzz $target for ${seconds}s"
  cargo fuzz run --fuzz-dir fuzz "$target" "$scratch" fuzz/corpus/"$target" -- \
    -max_total_time="$seconds" -rss_limit_mb=1024 -max_len=65536 -print_final_stats=1 2>&1 \
    | grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb|#[0-9]+ +DONE)|ERROR|panicked|SUMMARY" || true
  if [ -d fuzz/artifacts/"$target" ] && [ -n "$(ls -A fuzz/artifacts/"$target" 2>/dev/null)" ]; then
    echo "fuzz $target found a crash: see fuzz/artifacts/$target"; exit 1
  fi
  rm -rf "$scratch"
done
