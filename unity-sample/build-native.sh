#!/usr/bin/env bash
# Builds the native library (release) and copies it into Runtime/Plugins/ for the chosen
# platform. Default: the host (Linux x86_64, macOS, or Windows under Git Bash/MSYS).
#   ./build-native.sh            host platform
#   ./build-native.sh android    arm64-v8a .so (needs ANDROID_NDK_HOME); 16 KB page aligned
#   ./build-native.sh ios        static libcubewalk.a for device, internal symbols hidden (macOS + Xcode)
#   ./build-native.sh ios-simulator   simulator library (arm64 + x86_64) in Plugins/iOS/Simulator/
# Windows, Linux (x64, arm64) and macOS are built on Linux by scripts/build-plugins.sh.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
plugins="$here/Runtime/Plugins"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
cd "$root"

# prelink <out.a> <triple:arch>...: for each slice, one object whose only global symbols are
# the cw_* functions (ld -r with an exported symbols list), archived, and the slices joined.
prelink() {
  local out="$1"; shift
  local work slices=() triple arch
  work="$(mktemp -d)"
  grep -o '^[A-Za-z].* \**cw_[a-z_]*(' "$root/include/cubewalk.h" | grep -o 'cw_[a-z_]*' | sort -u | sed 's/^/_/' > "$work/exports"
  for slice in "$@"; do
    triple="${slice%%:*}" arch="${slice##*:}"
    xcrun ld -r -arch "$arch" -exported_symbols_list "$work/exports" \
      -force_load "$target_dir/$triple/release/libcubewalk.a" -o "$work/$triple.o"
    xcrun ar rcs "$work/$triple.a" "$work/$triple.o"
    slices+=("$work/$triple.a")
  done
  mkdir -p "$(dirname "$out")"
  rm -f "$out"
  if [ ${#slices[@]} -eq 1 ]; then cp "${slices[0]}" "$out"; else xcrun lipo -create "${slices[@]}" -output "$out"; fi
  rm -rf "$work"
}

case "${1:-host}" in
  host)
    cargo build --release --locked -p cubewalk
    case "$(uname -s)" in
      Linux*)  cp "$target_dir/release/libcubewalk.so" "$plugins/x86_64/libcubewalk.so"; out="$plugins/x86_64/libcubewalk.so" ;;
      Darwin*) cp "$target_dir/release/libcubewalk.dylib" "$plugins/macOS/libcubewalk.dylib"; out="$plugins/macOS/libcubewalk.dylib" ;;
      MINGW*|MSYS*|CYGWIN*) cp "$target_dir/release/cubewalk.dll" "$plugins/x86_64/cubewalk.dll"; out="$plugins/x86_64/cubewalk.dll" ;;
      *) echo "unknown host $(uname -s)"; exit 1 ;;
    esac ;;
  android)
    # Needs the NDK (ANDROID_NDK_HOME). ring's C code is compiled by the cc crate, which finds
    # the NDK's clang only through CC_<target>/AR_<target>, not through the linker setting.
    : "${ANDROID_NDK_HOME:?set ANDROID_NDK_HOME to your NDK}"
    rustup target add aarch64-linux-android
    bin="$(ls -d "$ANDROID_NDK_HOME"/toolchains/llvm/prebuilt/*/bin | head -1)"
    CARGO_TARGET_AARCH64_LINUX_ANDROID_LINKER="$bin/aarch64-linux-android24-clang" \
    CC_aarch64_linux_android="$bin/aarch64-linux-android24-clang" \
    AR_aarch64_linux_android="$bin/llvm-ar" \
    CARGO_TARGET_AARCH64_LINUX_ANDROID_RUSTFLAGS="-C link-arg=-Wl,-z,max-page-size=16384" \
      cargo build --release --locked -p cubewalk --target aarch64-linux-android
    out="$plugins/Android/arm64-v8a/libcubewalk.so"
    mkdir -p "$(dirname "$out")"
    cp "$target_dir/aarch64-linux-android/release/libcubewalk.so" "$out"
    "$bin/llvm-strip" "$out" ;;
  ios)
    # Needs macOS with Xcode. The static library is prelinked into one object whose only
    # global symbols are the cw_* functions, so it cannot clash with another Rust library
    # (or a second copy of Rust's std) in the same app.
    rustup target add aarch64-apple-ios
    cargo build --release --locked -p cubewalk --target aarch64-apple-ios
    out="$plugins/iOS/libcubewalk.a"
    prelink "$out" aarch64-apple-ios:arm64 ;;
  ios-simulator)
    # Unity's "Simulator SDK" builds: arm64 (Apple silicon) and x86_64 simulator slices in one
    # library, its own plugin beside the device one (Plugins/iOS/Simulator, CPU X64 in its
    # .meta), prelinked the same way.
    rustup target add aarch64-apple-ios-sim x86_64-apple-ios
    cargo build --release --locked -p cubewalk --target aarch64-apple-ios-sim --target x86_64-apple-ios
    out="$plugins/iOS/Simulator/libcubewalk.a"
    prelink "$out" aarch64-apple-ios-sim:arm64 x86_64-apple-ios:x86_64 ;;
  *) echo "usage: $0 [host|android|ios|ios-simulator]"; exit 2 ;;
esac
echo "native library copied to $out"
