#!/usr/bin/env bash
# Deployment checks that need no AWS: lint the SAM template and build both Lambda artifacts
# exactly as `sam build` would (cargo lambda, arm64), then report their zip sizes.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cfn-lint server/template.yaml"
cfn-lint server/template.yaml
echo "cfn-lint: 0 errors"

echo "== cargo lambda build --release --arm64"
rustup target list --installed | grep -q aarch64-unknown-linux-gnu || rustup target add aarch64-unknown-linux-gnu
cargo lambda build --release --arm64 -p cubewalk-lambda --output-format zip
for f in authorizer blocks realtime; do
  zip="${CARGO_TARGET_DIR:-target}/lambda/$f/bootstrap.zip"
  [ -s "$zip" ] || { echo "missing $zip"; exit 1; }
  size=$(stat -c %s "$zip")
  echo "lambda $f: $size bytes zipped ($zip)"
  # Small artifacts load faster on a cold start; BENCHMARKS.md records how this was reached.
  [ "$size" -le 2000000 ] || { echo "lambda $f: over the 2 MB goal"; exit 1; }
done
