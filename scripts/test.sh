#!/usr/bin/env bash
# The README's test command: installs what the tests need, then runs every check CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-test-deps.sh

echo "== format"
cargo fmt --all -- --check
echo "== clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
scripts/check-deploy.sh
echo "== Unity plugin importer model (what each editor version does with each plugin .meta)"
python3 -m unittest scripts/test_unity_plugins.py

echo "== build (libraries and binaries the tests run)"
cargo build --workspace --locked
echo "== tests"
cargo test --workspace --locked

echo "== fuzzing (small fixed budget; scripts/fuzz.sh 600 for a long run)"
scripts/fuzz.sh 15

echo "== C ABI under valgrind memcheck"
scripts/memcheck.sh

echo "== C# tests under Mono"
"unity-sample/Tests~/run-tests.sh"

echo "== native plugins: build (Windows, Linux x64/arm64, macOS), check, run under Wine and qemu, package"
scripts/build-plugins.sh
scripts/check-plugins.sh
scripts/run-plugins.sh
scripts/package-unity.sh
