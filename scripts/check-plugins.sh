#!/usr/bin/env bash
# Static checks on the native plugins scripts/build-plugins.sh wrote (or those in the folder
# given): each exports exactly the cw_* functions of include/cubewalk.h; ELF files have every
# LOAD segment 16 KB aligned, need only system libraries and no glibc symbol version newer than
# 2.17 (so they load on every Linux Unity supports: Ubuntu 20.04 has 2.31, RHEL 8 2.28); the
# Windows DLL imports only system DLLs and asks for no Windows newer than 10 in its PE header;
# the macOS dylib holds x86_64 and arm64, has an @rpath install name, links only system
# libraries and loads on macOS 10.13 (x86_64) and 11.0 (arm64, the first for Apple silicon), as
# its LC_BUILD_VERSION says. Prints each artifact's size. Needs llvm (llvm-nm, llvm-objdump),
# readelf (binutils).
#   scripts/check-plugins.sh [plugins-folder]     default: target/plugins/Runtime/Plugins
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dir="${1:-$root/target/plugins/Runtime/Plugins}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
failures=0
# The oldest systems the plugins must load on (Unity 2021.3's and Unity 6's floors or lower).
glibc_floor=2.17
macos_floor_x86_64=10.13
macos_floor_arm64=11.0
windows_floor=10.0
# Whether version $1 is at most $2 (dotted numbers).
at_most() { [ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | tail -1)" = "$2" ]; }
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

grep -o '^[A-Za-z].* \**cw_[a-z_]*(' "$root/include/cubewalk.h" | grep -o 'cw_[a-z_]*' | sort -u > "$work/header"
[ "$(wc -l < "$work/header")" -gt 10 ] || { echo "could not read the exports of include/cubewalk.h"; exit 1; }

# Compares the symbols in $2 (one per line) with the header's list, for artifact $1.
same_exports() {
  sort -u "$2" > "$work/got"
  if ! diff -q "$work/header" "$work/got" >/dev/null; then
    fail "$1 exports differ from include/cubewalk.h:"
    diff "$work/header" "$work/got" | sed "s/^/    /" | head -20 || true
  fi
}

check_elf() {
  local f="$1" name="$2"
  llvm-nm -D --defined-only "$f" | awk '$2 ~ /^[TtWwDdBbRrVviIu]$/ && $2 ~ /[A-Z]/ {print $3}' > "$work/syms"
  same_exports "$name" "$work/syms"
  local bad
  bad=$(readelf -lW "$f" | awk '$1 == "LOAD" && $NF != "0x4000" {print $NF}' | sort -u | tr '\n' ' ')
  [ -z "$bad" ] || fail "$name: LOAD segment alignment $bad, not 0x4000 (16 KB)"
  # Only the C runtime and the loader: nothing a player's system would lack.
  readelf -dW "$f" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p' | while read -r lib; do
    case "$lib" in
      libc.so.6|libm.so.6|libdl.so.2|libpthread.so.0|librt.so.1|libgcc_s.so.1|ld-linux-*.so.*) ;;
      *) echo "FAIL: $name needs $lib"; exit 1 ;;
    esac
  done || failures=$((failures + 1))
  # Android's bionic has no symbol versions; a glibc build must not need a newer glibc. Every
  # version the file needs is in its version-needs table, including those tied to no symbol
  # (GLIBC_ABI_DT_RELR, from glibc 2.36, for packed relocations).
  readelf -VW "$f" | grep -o 'Name: GLIBC_[^ ]*' | sed 's/Name: //' | sort -u | while read -r v; do
    case "$v" in
      GLIBC_[0-9]*) at_most "${v#GLIBC_}" "$glibc_floor" || { echo "FAIL: $name needs $v; the floor is glibc $glibc_floor"; exit 1; } ;;
      *) echo "FAIL: $name needs $v, which no glibc before 2.36 (or no released glibc) has"; exit 1 ;;
    esac
  done || failures=$((failures + 1))
}

check_pe() {
  local f="$1" name="$2"
  llvm-objdump -p "$f" > "$work/pe"
  # Export table rows: "ordinal RVA name".
  awk '/^Export Table:/ {on=1; next} on && /^[[:space:]]*$/ {on=0} on && $NF ~ /^cw_/ {print $NF}' "$work/pe" > "$work/syms"
  awk '/^Export Table:/ {on=1; next} on && /^[[:space:]]*$/ {on=0} on && NF >= 3 && $1 ~ /^[0-9]+$/ {print $NF}' "$work/pe" > "$work/all"
  same_exports "$name" "$work/all"
  sed -n 's/.*DLL Name: \(.*\)/\1/p' "$work/pe" | tr 'A-Z' 'a-z' | sort -u > "$work/dlls"
  while read -r dll; do
    case "$dll" in
      kernel32.dll|ntdll.dll|ws2_32.dll|advapi32.dll|bcrypt.dll|bcryptprimitives.dll|userenv.dll|msvcrt.dll|crypt32.dll|secur32.dll|ole32.dll|oleaut32.dll|shell32.dll|user32.dll|api-ms-win-*.dll) ;;
      *) fail "$name imports $dll, which Windows does not ship" ;;
    esac
  done < "$work/dlls"
  # The loader refuses an image whose OS or subsystem version is newer than the running Windows.
  local os sub
  os=$(awk '/^MajorOSystemVersion/ {a=$2} /^MinorOSystemVersion/ {b=$2} END {print a "." b}' "$work/pe")
  sub=$(awk '/^MajorSubsystemVersion/ {a=$2} /^MinorSubsystemVersion/ {b=$2} END {print a "." b}' "$work/pe")
  for v in "$os" "$sub"; do
    [ "$v" != "." ] || fail "$name: no OS version in its PE header"
    at_most "$v" "$windows_floor" || fail "$name asks for Windows $v; the floor is $windows_floor"
  done
}

check_macho() {
  local f="$1" name="$2"
  local archs
  archs=$(llvm-objdump --macho --universal-headers "$f" | sed -n 's/^ *cputype CPU_TYPE_\(.*\)/\1/p' | tr 'A-Z\n' 'a-z ')
  for want in x86_64 arm64; do
    echo " $archs " | grep -q " $want " || fail "$name lacks $want (has: $archs)"
  done
  for arch in x86_64 arm64; do
    llvm-nm -g --defined-only --arch="$arch" "$f" 2>/dev/null | awk 'NF >= 3 {print $3}' | sed 's/^_//' > "$work/syms"
    same_exports "$name ($arch)" "$work/syms"
    local id
    id=$(llvm-objdump --macho --arch="$arch" --dylib-id "$f" | tail -1)
    case "$id" in
      @rpath/*|@loader_path/*|@executable_path/*) ;;
      *) fail "$name ($arch): install name '$id' is not @rpath/@loader_path" ;;
    esac
    local minos floor
    minos=$(llvm-objdump --macho --arch="$arch" --private-headers "$f" \
      | awk '/cmd LC_BUILD_VERSION/ {b=1} b && $1 == "minos" {print $2; exit} /cmd LC_VERSION_MIN_MACOSX/ {m=1} m && $1 == "version" {print $2; exit}')
    floor="macos_floor_$arch"
    if [ -z "$minos" ]; then
      fail "$name ($arch): no minimum macOS version in its load commands"
    elif ! at_most "$minos" "${!floor}"; then
      fail "$name ($arch) needs macOS $minos; the floor is ${!floor}"
    fi
    llvm-objdump --macho --arch="$arch" --dylibs-used "$f" | tail -n +2 | awk '{print $1}' | while read -r lib; do
      case "$lib" in
        /usr/lib/*|/System/Library/Frameworks/*) ;;
        "$id") ;;
        *) echo "FAIL: $name ($arch) links $lib"; exit 1 ;;
      esac
    done || failures=$((failures + 1))
  done
}

found=0
printf '%-32s %12s\n' "plugin" "bytes"
while read -r f; do
  name="${f#"$dir"/}"
  found=$((found + 1))
  printf '%-32s %12s\n' "$name" "$(stat -c %s "$f")"
  case "$(file -b "$f")" in
    ELF*) check_elf "$f" "$name" ;;
    PE32+*) check_pe "$f" "$name" ;;
    Mach-O*) check_macho "$f" "$name" ;;
    *) fail "$name: unexpected format $(file -b "$f")" ;;
  esac
done < <(find "$dir" -type f \( -name '*.so' -o -name '*.dll' -o -name '*.dylib' \) | sort)
[ "$found" -gt 0 ] || { echo "no plugins in $dir (run scripts/build-plugins.sh)"; exit 1; }
if [ "$failures" -gt 0 ]; then
  echo "plugin checks: $failures failure(s)"
  exit 1
fi
echo "plugin checks: $found plugins, all exports, alignments and dependencies as required"
