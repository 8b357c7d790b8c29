#!/usr/bin/env bash
# Runs the SDK's C ABI tests under valgrind memcheck: init/shutdown cycles, re-init with
# requests in flight, cancels, hostile arguments, poll and cancel racing on two threads. Fails on any invalid access or definite leak.
# Usage: scripts/memcheck.sh   (needs valgrind: apt-get install valgrind)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)"; exit 1; }
for t in ffi_mock ffi_hostile ffi_lifecycle; do
  exe=$(cargo test --locked -p cubewalk --test "$t" --no-run --message-format=json 2>/dev/null \
    | grep -o '"executable":"[^"]*"' | tail -1 | cut -d'"' -f4)
  echo "== valgrind memcheck: $t ($exe)"
  # One test thread keeps valgrind's serialised scheduler from timing the tests out.
  CUBEWALK_RACE_ROUNDS=20 PROPTEST_CASES=16 valgrind --quiet --error-exitcode=1 --leak-check=full --show-leak-kinds=definite \
    --errors-for-leak-kinds=definite --fair-sched=yes "$exe" --test-threads=1 2>&1 | tee "/tmp/memcheck-$t.log" | tail -5
  echo "memcheck $t: $(grep -c '^==[0-9]*== ' "/tmp/memcheck-$t.log" || true) valgrind report lines"
done
