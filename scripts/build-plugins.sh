#!/usr/bin/env bash
# Builds every native plugin that can be built on this (Linux x86_64) machine, release profile,
# stripped, into target/plugins/Runtime/Plugins/ in the Unity package's layout:
#   x86_64/cubewalk.dll           Windows x64 (mingw-w64; no DLL beyond what Windows ships)
#   x86_64/libcubewalk.so         Linux x64 (linked against glibc 2.17: loads on every distribution
#                                 Unity supports, Ubuntu 20.04 and RHEL 8 included)
#   arm64/libcubewalk.so          Linux arm64 (glibc 2.17; 16 KB aligned LOAD segments)
#   macOS/libcubewalk.dylib       macOS universal (x86_64 + arm64; zig compiles C, ld64.lld links)
# Android and iOS need the NDK and Xcode: .github/workflows/native-plugins.yml builds them.
# Each target is built once; a second run only relinks what changed.
#   scripts/build-plugins.sh [windows|linux-x64|linux-arm64|macos ...]   (default: all four)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
# A target folder of its own: the Lambda build (zig, arm64) and the tests use other flags for
# the same triples, and would otherwise rebuild each other's dependencies.
export CARGO_TARGET_DIR="$root/target/plugin-build"
out="$root/target/plugins/Runtime/Plugins"
mkdir -p "$out"

want=("$@")
[ ${#want[@]} -gt 0 ] || want=(windows linux-x64 linux-arm64 macos)

need_target() { rustup target list --installed | grep -qx "$1" || rustup target add "$1"; }
# Google Play requires 16 KB aligned segments on Android; Linux builds are aligned the same way.
page16k="-C link-arg=-Wl,-z,max-page-size=16384"

# cross_build <triple> <gcc prefix, empty for the host's> <rustflags> <file> <plugin folder>:
# builds the cdylib for <triple> with that GNU toolchain as linker and C compiler (ring's C
# code), and copies <file> into the plugin folder.
cross_build() {
  local triple="$1" prefix="$2" flags="$3" file="$4" folder="$5"
  local var="${triple//-/_}"
  need_target "$triple"
  if [ -n "$prefix" ]; then
    export "CARGO_TARGET_${var^^}_LINKER=$prefix-gcc" "CC_$var=$prefix-gcc" "AR_$var=$prefix-ar"
  fi
  env "CARGO_TARGET_${var^^}_RUSTFLAGS=$flags" cargo build --release --locked -p cubewalk --target "$triple"
  mkdir -p "$out/$folder"
  cp "$CARGO_TARGET_DIR/$triple/release/$file" "$out/$folder/$file"
}

# The oldest glibc the Linux plugins link against (cargo-zigbuild's `<triple>.<glibc>` suffix);
# scripts/check-plugins.sh refuses any newer symbol version.
glibc_floor=2.17

# zig_linux_build <triple> <plugin folder>: builds the cdylib with zig as C compiler and linker
# against glibc $glibc_floor's symbol versions (the host's gcc would link against whatever glibc
# this machine has: 2.34+ today), 16 KB aligned, and copies it into the plugin folder.
zig_linux_build() {
  local triple="$1" folder="$2"
  local var="${triple//-/_}"
  need_target "$triple"
  env "CARGO_TARGET_${var^^}_RUSTFLAGS=$page16k" \
    cargo zigbuild --release --locked -p cubewalk --target "$triple.$glibc_floor"
  mkdir -p "$out/$folder"
  cp "$CARGO_TARGET_DIR/$triple/release/libcubewalk.so" "$out/$folder/libcubewalk.so"
}

for platform in "${want[@]}"; do
  echo "== plugin: $platform"
  case "$platform" in
    windows)
      # Static libgcc/winpthread: the DLL must load with nothing but Windows beside it.
      cross_build x86_64-pc-windows-gnu x86_64-w64-mingw32 "-C link-arg=-static-libgcc" cubewalk.dll x86_64
      x86_64-w64-mingw32-strip "$out/x86_64/cubewalk.dll" ;;
    linux-x64)
      zig_linux_build x86_64-unknown-linux-gnu x86_64 ;;
    linux-arm64)
      zig_linux_build aarch64-unknown-linux-gnu arm64 ;;
    macos)
      need_target x86_64-apple-darwin
      need_target aarch64-apple-darwin
      command -v cargo-zigbuild >/dev/null || python3 -m pip install --quiet cargo-zigbuild \
        || python3 -m pip install --quiet --break-system-packages cargo-zigbuild
      # zig compiles ring's C code; ld64.lld links (scripts/macos-ld.sh), because zig's Mach-O
      # linker ignores rustc's exported-symbols list. The install name is @rpath, not the
      # build folder.
      macflags="-C link-arg=-Wl,-install_name,@rpath/libcubewalk.dylib"
      CARGO_TARGET_X86_64_APPLE_DARWIN_LINKER="$root/scripts/macos-ld.sh" \
      CARGO_TARGET_AARCH64_APPLE_DARWIN_LINKER="$root/scripts/macos-ld.sh" \
      CARGO_TARGET_X86_64_APPLE_DARWIN_RUSTFLAGS="$macflags" \
      CARGO_TARGET_AARCH64_APPLE_DARWIN_RUSTFLAGS="$macflags" \
        cargo zigbuild --release --locked -p cubewalk --target universal2-apple-darwin
      mkdir -p "$out/macOS"
      cp "$CARGO_TARGET_DIR/universal2-apple-darwin/release/libcubewalk.dylib" "$out/macOS/libcubewalk.dylib" ;;
    *) echo "unknown platform $platform (windows, linux-x64, linux-arm64, macos)"; exit 2 ;;
  esac
done
echo "plugins in $out:"
(cd "$out" && find . -type f | sort | while read -r f; do echo "  $f $(stat -c %s "$f") bytes"; done)
