#!/usr/bin/env bash
# Installs what the test suite needs on Debian/Ubuntu: redis-server (real Redis for store and
# end-to-end tests), Mono and NUnit (C# binding tests), cfn-lint and cargo-lambda (deployment
# checks). Idempotent: installs only what is missing. Needs root or sudo for apt-get.
set -euo pipefail

SUDO=""
if [ "$(id -u)" != 0 ]; then
  SUDO="sudo"
fi

need_apt=()
command -v redis-server >/dev/null || need_apt+=(redis-server)
command -v redis-cli >/dev/null || need_apt+=(redis-tools)
command -v mcs >/dev/null || need_apt+=(mono-mcs)
command -v mono >/dev/null || need_apt+=(mono-runtime)
command -v nunit-console >/dev/null || need_apt+=(nunit-console libnunit-cil-dev)
# The Mono benchmark's hand-written comparison client uses HttpClient, DataContractJsonSerializer
# and DeflateStream.
[ -e /usr/lib/mono/4.5/System.Net.Http.dll ] || need_apt+=(libmono-system-net-http4.0-cil)
[ -e /usr/lib/mono/4.5/System.Runtime.Serialization.dll ] || need_apt+=(libmono-system-runtime-serialization4.0-cil)
[ -e /usr/lib/mono/4.5/System.IO.Compression.dll ] || need_apt+=(libmono-system-io-compression4.0-cil)
command -v cc >/dev/null || need_apt+=(gcc)
# A broker we did not write: the realtime tests run the publisher, the gate and the SDK's
# follower against Mosquitto as well as against the embedded rumqttd.
command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || need_apt+=(mosquitto)
command -v valgrind >/dev/null || need_apt+=(valgrind)
command -v wrk >/dev/null || need_apt+=(wrk)
command -v python3 >/dev/null || need_apt+=(python3)
python3 -m pip --version >/dev/null 2>&1 || need_apt+=(python3-pip)
# Cross-built plugins (scripts/build-plugins.sh) and running them (scripts/run-plugins.sh):
# mingw-w64 for Windows, the aarch64 cross toolchain and qemu-user for Linux arm64, Wine for the
# DLL, llvm/binutils/file to inspect every artifact.
command -v x86_64-w64-mingw32-gcc >/dev/null || need_apt+=(gcc-mingw-w64-x86-64)
command -v aarch64-linux-gnu-gcc >/dev/null || need_apt+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
command -v qemu-aarch64 >/dev/null || need_apt+=(qemu-user)
[ -x /usr/lib/wine/wine64 ] || command -v wine64 >/dev/null || need_apt+=(wine64)
command -v llvm-nm >/dev/null || need_apt+=(llvm)
command -v ld64.lld >/dev/null || command -v ld64.lld-14 >/dev/null || need_apt+=(lld)
command -v readelf >/dev/null || need_apt+=(binutils)
command -v file >/dev/null || need_apt+=(file)
# The benchmark's plots are drawn with DejaVu Sans.
[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need_apt+=(fonts-dejavu-core)

if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing Debian packages: ${need_apt[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

need_pip=()
command -v cfn-lint >/dev/null || need_pip+=(cfn-lint)
command -v cargo-lambda >/dev/null || need_pip+=(cargo-lambda)
# Links the macOS plugin with zig (which cargo-lambda's ziglang package provides).
command -v cargo-zigbuild >/dev/null || need_pip+=(cargo-zigbuild)
# The seed design's Python handler (bench/python), run by Amazon's runtime interface client in
# a test and in the cost benchmark.
python3 -c 'import awslambdaric' 2>/dev/null || need_pip+=(awslambdaric)
python3 -c 'import redis' 2>/dev/null || need_pip+=(redis)
if [ ${#need_pip[@]} -gt 0 ]; then
  echo "installing PyPI packages: ${need_pip[*]}"
  python3 -m pip install --quiet "${need_pip[@]}" || python3 -m pip install --quiet --break-system-packages "${need_pip[@]}"
  hash -r
fi

# Rust standard libraries for the plugin targets.
installed_targets="$(rustup target list --installed)"
for t in x86_64-pc-windows-gnu aarch64-unknown-linux-gnu x86_64-apple-darwin aarch64-apple-darwin; do
  echo "$installed_targets" | grep -qx "$t" || rustup target add "$t"
done

# cargo-fuzz runs the fuzz targets for a fixed budget in CI (scripts/fuzz.sh).
command -v cargo-fuzz >/dev/null || cargo install --locked --quiet cargo-fuzz

echo "test dependencies: redis-server $(redis-server --version | awk '{print $3}'), mono $(mono --version | head -1 | awk '{print $5}'), $(cfn-lint --version), $(cargo-lambda --version 2>/dev/null || cargo lambda --version)"
