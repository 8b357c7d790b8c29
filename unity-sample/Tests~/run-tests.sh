#!/usr/bin/env bash
# Runs the C# tests under Mono against the real native library and a local gateway:
# builds libcubewalk and cubewalk-server, starts the gateway on a free loopback port (embedded
# store), compiles the bindings, wrapper and tests with mcs, runs NUnit, and ends with
# "N passed, N failed".
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"

cargo build --locked --workspace
target="${CARGO_TARGET_DIR:-$root/target}/debug"
work="$(mktemp -d)"
token="mono-test-token-$RANDOM$RANDOM"

server="$target/cubewalk-server"
. "$root/scripts/start-gateway.sh"

nunit="$(ls /usr/lib/cli/nunit.framework-2.6*/nunit.framework.dll | head -1)"
[ -n "$nunit" ] || { echo "NUnit 2.6 not found (apt-get install libnunit-cil-dev)"; exit 1; }
mcs -langversion:7.2 -unsafe -warnaserror+ -nowarn:1591,0618 -target:library -out:"$work/CubeWalk.Tests.dll" \
  -r:"$nunit" -r:System.Net.Http \
  "$root"/unity-sample/Runtime/*.cs "$here"/*.cs
cp "$nunit" "$work/"
# The Unity glue against stand-in Unity types, compile-checked only (Unity itself is not
# available here), in the assemblies Unity builds: the package (CubeWalk.Net, with its Editor
# hooks) and the sample on top of it, which may use only the package's public API. The sample
# twice: with the legacy Input Manager and with the Input System package.
mcs -langversion:7.2 -warnaserror+ -nowarn:1591,0067,0649 -target:library -out:"$work/UnityStubs.dll" "$here"/UnityStubs/*.cs
# Every public member documented (CS1591 is an error here), with its <param>s and <returns>.
mcs -langversion:7.2 -unsafe -warnaserror+ -define:UNITY_EDITOR -define:UNITY_2018_1_OR_NEWER -target:library -r:"$work/UnityStubs.dll" -r:System.Net.Http \
  -doc:"$work/CubeWalk.Net.xml" -out:"$work/CubeWalk.Net.dll" "$root"/unity-sample/Runtime/*.cs "$root"/unity-sample/Runtime/Unity/*.cs
mcs -out:"$work/DocCheck.exe" -r:System.Xml "$here"/DocCheck/DocCheck.cs
mono "$work/DocCheck.exe" "$work/CubeWalk.Net.dll" "$work/CubeWalk.Net.xml"
for input in "" "-define:ENABLE_INPUT_SYSTEM"; do
  mcs -langversion:7.2 -warnaserror+ -nowarn:1591 -define:UNITY_EDITOR $input -target:library \
    -r:"$work/UnityStubs.dll" -r:"$work/CubeWalk.Net.dll" -out:"$work/Sample.dll" \
    "$root"/unity-sample/Samples~/ChunkStreaming/*.cs
done

# A WebGL player build of the package: no P/Invoke may remain, and a client must refuse clearly.
mcs -langversion:7.2 -unsafe -warnaserror+ -nowarn:1591,0618 -define:UNITY_WEBGL -target:exe -r:System.Net.Http \
  -out:"$work/WebGLCheck.exe" "$root"/unity-sample/Runtime/*.cs "$here"/WebGL/WebGLCheck.cs
mono "$work/WebGLCheck.exe"

# The C layout of every shared struct, as a C compiler sees the header, for LayoutTests.
cc -std=c99 -Wall -Werror -I "$root/include" "$root/tests/c/layout.c" -o "$work/layout"
"$work/layout" > "$work/layout.txt"

set +e
LD_LIBRARY_PATH="$target" CUBEWALK_TEST_ENDPOINT="$endpoint" CUBEWALK_TEST_TOKEN="$token" CUBEWALK_C_LAYOUT="$work/layout.txt" \
  nunit-console -nologo -labels -xml="$work/result.xml" "$work/CubeWalk.Tests.dll" > "$work/nunit.out" 2>&1
status=$?
set -e
cat "$work/nunit.out"
total=$(grep -o 'total="[0-9]*"' "$work/result.xml" | head -1 | grep -o '[0-9]*' || echo 0)
failures=$(grep -o 'failures="[0-9]*"' "$work/result.xml" | head -1 | grep -o '[0-9]*' || echo 0)
errors=$(grep -o 'errors="[0-9]*"' "$work/result.xml" | head -1 | grep -o '[0-9]*' || echo 0)
failed=$((failures + errors))
passed=$((total - failed))
echo "C#: $passed passed, $failed failed"
[ "$status" = 0 ] && [ "$failed" = 0 ] && [ "$total" -gt 0 ]
