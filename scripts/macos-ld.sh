#!/usr/bin/env bash
# Links a macOS dylib on Linux with LLVM's ld64.lld and the libSystem stubs that zig ships,
# taking the clang-style arguments rustc gives its linker. zig's own Mach-O linker ignores
# `-exported_symbols_list`, so a plugin linked by it exports every Rust symbol; ld64.lld
# honours it (only cw_* stay global) as Apple's ld does. Used by scripts/build-plugins.sh.
set -euo pipefail
lld="$(command -v ld64.lld || command -v ld64.lld-14 || true)"
[ -n "$lld" ] || { echo "macos-ld.sh: ld64.lld not found (apt-get install lld)" >&2; exit 1; }
zig_lib="$(python3 -c 'import ziglang, os; print(os.path.dirname(ziglang.__file__))')/lib/libc/darwin"
[ -f "$zig_lib/libSystem.tbd" ] || { echo "macos-ld.sh: no libSystem.tbd in $zig_lib (pip install ziglang)" >&2; exit 1; }

# zig's stubs name only arm64e (and an arm64e.x1 that ld64.lld 14 cannot parse): make a copy
# that also names arm64, with the libc/libm aliases the SDK has, once per zig install.
stubs="${TMPDIR:-/tmp}/cubewalk-macos-stubs-$(stat -c %Y "$zig_lib/libSystem.tbd")"
if [ ! -f "$stubs/libSystem.tbd" ]; then
  mkdir -p "$stubs.tmp"
  python3 - "$zig_lib/libSystem.tbd" "$stubs.tmp/libSystem.tbd" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
text = re.sub(r",\s*arm64e\.x1-\w+", "", text)
text = re.sub(r"arm64e\.x1-\w+\s*,\s*", "", text)
text = text.replace("arm64e-macos", "arm64-macos, arm64e-macos")
open(sys.argv[2], "w").write(text)
PY
  # Rust's std asks for -liconv; it is a system library (/usr/lib/libiconv.2.dylib) that zig
  # ships no stub for. A stub naming its entry points lets the link resolve them there.
  cat > "$stubs.tmp/libiconv.tbd" <<'TBD'
--- !tapi-tbd
tbd-version:     4
targets:         [ x86_64-macos, arm64-macos, arm64e-macos ]
install-name:    '/usr/lib/libiconv.2.dylib'
current-version: 7
compatibility-version: 7
exports:
  - targets:         [ x86_64-macos, arm64-macos, arm64e-macos ]
    symbols:         [ _iconv, _iconv_close, _iconv_open, _iconvctl, _libiconv, _libiconv_close,
                       _libiconv_open, _libiconvctl, _locale_charset ]
...
TBD
  ln -sf libSystem.tbd "$stubs.tmp/libc.tbd"
  ln -sf libSystem.tbd "$stubs.tmp/libm.tbd"
  rm -rf "$stubs" && mv "$stubs.tmp" "$stubs"
fi

args=()
min_version=11.0
while [ $# -gt 0 ]; do
  a="$1"
  shift
  case "$a" in
    -Wl,*) IFS=',' read -r -a parts <<< "${a#-Wl,}"; args+=("${parts[@]}") ;;
    -mmacosx-version-min=*) min_version="${a#-mmacosx-version-min=}" ;;
    -dynamiclib) args+=(-dylib) ;;
    -nodefaultlibs|-m64|-fuse-ld=*) ;;
    -arch) args+=(-arch "$1"); shift ;;
    *) args+=("$a") ;;
  esac
done
# rustc passes ld64-style arguments (with -platform_version) when it sees an ld-like linker
# name, clang-style ones otherwise; both end here.
case " ${args[*]} " in
  *" -platform_version "*) ;;
  *) args+=(-platform_version macos "$min_version" 14.0) ;;
esac
# -dead_strip_dylibs: a library nothing is taken from (iconv) is not loaded at all.
exec "$lld" "${args[@]}" -L "$stubs" -S -dead_strip_dylibs
