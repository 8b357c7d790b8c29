#!/usr/bin/env bash
# Writes target/unity/com.cubewalk.net-<version>.tgz, the file Unity's Package Manager installs
# with "Add package from tarball": the package under package/, every plugin built by
# scripts/build-plugins.sh (or found in the folder given) in Runtime/Plugins/ next to its
# committed .meta, and the version taken from the native crate (sdk/Cargo.toml), so the package,
# the library and cw_version() always agree. Then checks the tarball
# (scripts/check_unity_package.py).
#   scripts/package-unity.sh [plugins-folder]     default: target/plugins/Runtime/Plugins
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
plugins="${1:-$root/target/plugins/Runtime/Plugins}"
cd "$root"
version="$(cargo metadata --no-deps --format-version 1 --locked \
  | python3 -c 'import json,sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"] == "cubewalk"))')"
name="$(python3 -c 'import json; print(json.load(open("unity-sample/package.json"))["name"])')"
out="$root/target/unity"
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
mkdir -p "$out" "$stage/package"

# Everything Unity imports plus the samples; not the test folder, not binaries lying in the
# working tree (only freshly built ones go in).
tar -C unity-sample --exclude='./Tests~' --exclude='*.so' --exclude='*.dll' --exclude='*.dylib' \
  --exclude='*.a' -cf - . | tar -C "$stage/package" -xf -
(cd "$plugins" && find . -type f \( -name '*.so' -o -name '*.dll' -o -name '*.dylib' -o -name '*.a' \)) \
  | while read -r f; do
      meta="$stage/package/Runtime/Plugins/$f.meta"
      [ -f "$meta" ] || { echo "no committed .meta for plugin $f (add unity-sample/Runtime/Plugins/$f.meta)"; exit 1; }
      cp "$plugins/$f" "$stage/package/Runtime/Plugins/$f"
    done
# A .meta whose plugin was not built here (Android, iOS) would make Unity warn; leave it out.
find "$stage/package/Runtime/Plugins" -name '*.meta' | while read -r meta; do
  asset="${meta%.meta}"
  [ -e "$asset" ] || rm "$meta"
done
# Folders left empty (and their .meta) go too.
find "$stage/package/Runtime/Plugins" -mindepth 1 -type d -empty | while read -r d; do rm -rf "$d" "$d.meta"; done
python3 - "$stage/package/package.json" "$version" <<'EOF'
import json, sys
path, version = sys.argv[1], sys.argv[2]
manifest = json.load(open(path))
manifest["version"] = version
open(path, "w").write(json.dumps(manifest, indent=2) + "\n")
EOF
tarball="$out/$name-$version.tgz"
# Fixed owner and order, so the same inputs give the same archive listing.
tar -C "$stage" --owner=0 --group=0 --numeric-owner --sort=name -czf "$tarball" package
echo "wrote $tarball ($(stat -c %s "$tarball") bytes)"
python3 scripts/check_unity_package.py "$tarball"
