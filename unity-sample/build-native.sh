#!/usr/bin/env bash
# Builds the native library (release) and copies it into Runtime/Plugins/ for the chosen
# platform. Default: the host (Linux x86_64, macOS, or Windows under Git Bash/MSYS).
#   ./build-native.sh            host platform
#   ./build-native.sh android    arm64-v8a .so (needs ANDROID_NDK_HOME); 16 KB page aligned
#   ./build-native.sh ios        static libcubewalk.a for device (run on macOS with Xcode)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
plugins="$here/Runtime/Plugins"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
cd "$root"

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
    : "${ANDROID_NDK_HOME:?set ANDROID_NDK_HOME to your NDK}"
    rustup target add aarch64-linux-android
    linker="$(ls "$ANDROID_NDK_HOME"/toolchains/llvm/prebuilt/*/bin/aarch64-linux-android24-clang | head -1)"
    CARGO_TARGET_AARCH64_LINUX_ANDROID_LINKER="$linker" \
    RUSTFLAGS="-C link-arg=-Wl,-z,max-page-size=16384" \
      cargo build --release --locked -p cubewalk --target aarch64-linux-android
    out="$plugins/Android/arm64-v8a/libcubewalk.so"
    cp "$target_dir/aarch64-linux-android/release/libcubewalk.so" "$out" ;;
  ios)
    rustup target add aarch64-apple-ios
    cargo build --release --locked -p cubewalk --target aarch64-apple-ios
    out="$plugins/iOS/libcubewalk.a"
    cp "$target_dir/aarch64-apple-ios/release/libcubewalk.a" "$out" ;;
  *) echo "usage: $0 [host|android|ios]"; exit 2 ;;
esac
echo "native library copied to $out"
