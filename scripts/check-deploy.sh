#!/usr/bin/env bash
# Deployment checks that need no AWS: lint the SAM template and build every Lambda artifact
# exactly as `sam build` would (cargo lambda, arm64), then report their zip sizes.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cfn-lint server/template.yaml"
cfn-lint server/template.yaml
# cfn-lint already checks every condition scenario; linting each store engine as a
# deployment would set it costs seconds and names the engine in any failure.
for engine in memorydb elasticache; do
  cfn-lint server/template.yaml --parameters StoreEngine=$engine
done
echo "cfn-lint: 0 errors (StoreEngine memorydb and elasticache)"

echo "== cargo lambda build --release --arm64 (authorizer, broker_authorizer, blocks, publisher, login)"
rustup target list --installed | grep -q aarch64-unknown-linux-gnu || rustup target add aarch64-unknown-linux-gnu
cargo lambda build --release --arm64 -p cubewalk-lambda --output-format zip
for f in authorizer broker_authorizer blocks publisher login; do
  zip="${CARGO_TARGET_DIR:-target}/lambda/$f/bootstrap.zip"
  [ -s "$zip" ] || { echo "missing $zip"; exit 1; }
  size=$(stat -c %s "$zip")
  echo "lambda $f: $size bytes zipped ($zip)"
  # Small artifacts load faster on a cold start; BENCHMARKS.md records how this was reached.
  # No AWS SDK client in any of them (SigV4 over the functions' own HTTPS client); every one,
  # blocks (store, admin, change feed) included, stays under the 2 MB goal.
  budget=2000000
  [ "$size" -le "$budget" ] || { echo "lambda $f: over its $budget-byte budget"; exit 1; }
done
