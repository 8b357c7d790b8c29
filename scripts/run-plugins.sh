#!/usr/bin/env bash
# Runs the C test program (tests/c/roundtrip.c: init, put, blocking fetch, begin/poll, realtime
# over the WebSocket API, wrong token, shutdown, init again) against the local gateway on loopback through the plugins that
# can run here besides the host's: the Windows DLL under Wine and the Linux arm64 library under
# qemu-user. macOS, Android and iOS cannot run here (checked statically only).
#   scripts/run-plugins.sh [plugins-folder]     default: target/plugins/Runtime/Plugins
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dir="${1:-$root/target/plugins/Runtime/Plugins}"
cd "$root"
work="$(mktemp -d)"
token="cross-test-token-$RANDOM$RANDOM"

cargo build --locked -p cubewalk-server --bin cubewalk-server
server="${CARGO_TARGET_DIR:-$root/target}/debug/cubewalk-server"
. "$root/scripts/start-gateway.sh"

cflags=(-std=c99 -Wall -Wextra -Werror -pedantic -I "$root/include")

echo "== Windows x64 under Wine"
mkdir -p "$work/win"
cp "$dir/x86_64/cubewalk.dll" "$work/win/"
# Linked straight to the DLL, with libgcc static: the program needs nothing but msvcrt and
# cubewalk.dll, so only the plugin itself is tested.
x86_64-w64-mingw32-gcc "${cflags[@]}" -static-libgcc tests/c/roundtrip.c "$work/win/cubewalk.dll" -o "$work/win/roundtrip.exe"
if ! ls /usr/lib/x86_64-linux-gnu/wine/x86_64-windows/bcryptprimitives.dll >/dev/null 2>&1; then
  x86_64-w64-mingw32-gcc -shared -O2 tests/c/processprng_shim.c -lbcrypt -o "$work/win/bcryptprimitives.dll"
fi
export WINEPREFIX="${WINEPREFIX:-$root/target/wineprefix}" WINEDEBUG=-all
# The first start creates the prefix (about 20 s); later runs reuse it.
"$(command -v wine64 || echo /usr/lib/wine/wine64)" "$work/win/roundtrip.exe" "$endpoint" "$token" > "$work/win.out" 2>&1 || true
cat "$work/win.out"
grep -q "^ok" "$work/win.out" || { echo "FAIL: Windows plugin under Wine"; exit 1; }

echo "== Linux arm64 under qemu-user"
mkdir -p "$work/arm64"
aarch64-linux-gnu-gcc "${cflags[@]}" tests/c/roundtrip.c -L "$dir/arm64" -lcubewalk -o "$work/arm64/roundtrip"
QEMU_LD_PREFIX=/usr/aarch64-linux-gnu LD_LIBRARY_PATH="$dir/arm64" \
  qemu-aarch64 "$work/arm64/roundtrip" "$endpoint" "$token" > "$work/arm64.out" 2>&1 || true
cat "$work/arm64.out"
grep -q "^ok" "$work/arm64.out" || { echo "FAIL: Linux arm64 plugin under qemu"; exit 1; }
echo "cross runs: Windows (Wine) and Linux arm64 (qemu) passed against $endpoint"
