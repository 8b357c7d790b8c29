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
# The stand-in UnityWebRequest does real HTTP (HttpClient) underneath.
mcs -langversion:7.2 -warnaserror+ -nowarn:1591,0067,0649 -target:library -r:System.Net.Http -out:"$work/UnityStubs.dll" "$here"/UnityStubs/*.cs
# The package as the Editor compiles it, with Unity's defines and only the assemblies a Unity
# project on the ".NET Framework" API level references (mscorlib, System, System.Core,
# System.Runtime.Serialization, System.Xml; System.Xml.Linq too, not installed here and not
# used): a use of System.Net.Http creeping back fails here (CS0234), as it would in Unity.
# Every public member documented (CS1591 is an error here), with its <param>s and <returns>.
unity_refs="-noconfig -r:System -r:System.Core -r:System.Runtime.Serialization -r:System.Xml"
unity_defines="-define:UNITY_5_3_OR_NEWER -define:UNITY_2018_1_OR_NEWER -define:UNITY_2021_3_OR_NEWER"
mcs -langversion:7.2 -unsafe -warnaserror+ $unity_refs $unity_defines -define:UNITY_EDITOR -target:library -r:"$work/UnityStubs.dll" \
  -doc:"$work/CubeWalk.Net.xml" -out:"$work/CubeWalk.Net.dll" "$root"/unity-sample/Runtime/*.cs "$root"/unity-sample/Runtime/Unity/*.cs
# Game code in a CubeWalk.* namespace still sees the root namespace `Unity` of Unity's packages
# (Unity.Mathematics, ...): the package declares no CubeWalk.Unity namespace that would hide it.
cat > "$work/NamespaceCheck.cs" <<'CS'
namespace CubeWalk.Game
{
    static class NamespaceCheck
    {
        static Unity.Mathematics.float3 Up() { return new Unity.Mathematics.float3(0, 1, 0); }
        static CubeWalkClient Client() { return CubeWalkClient.Current; }
    }
}
CS
mcs -langversion:7.2 -warnaserror+ -target:library -r:"$work/UnityStubs.dll" -r:"$work/CubeWalk.Net.dll" \
  -out:"$work/NamespaceCheck.dll" "$work/NamespaceCheck.cs"
mcs -out:"$work/DocCheck.exe" -r:System.Xml "$here"/DocCheck/DocCheck.cs
mono "$work/DocCheck.exe" "$work/CubeWalk.Net.dll" "$work/CubeWalk.Net.xml"
for input in "" "-define:ENABLE_INPUT_SYSTEM"; do
  mcs -langversion:7.2 -warnaserror+ -nowarn:1591 -define:UNITY_EDITOR $input -target:library \
    -r:"$work/UnityStubs.dll" -r:"$work/CubeWalk.Net.dll" -out:"$work/Sample.dll" \
    "$root"/unity-sample/Samples~/ChunkStreaming/*.cs
done

# A WebGL player build of the package (Unity's defines and references, UnityWebRequest from the
# stand-ins, no UNITY_EDITOR): no P/Invoke may remain but the jslib's own functions (the
# browser's WebSocket, each one defined in the jslib), a client must refuse blocking calls
# clearly, and realtime must start without throwing.
jslib="$root/unity-sample/Runtime/Plugins/WebGL/CubeWalkWebSocket.jslib"
mcs -langversion:7.2 -unsafe -warnaserror+ -nowarn:1591,0618 $unity_refs $unity_defines -define:UNITY_WEBGL -target:exe \
  -r:"$work/UnityStubs.dll" -out:"$work/WebGLCheck.exe" \
  "$root"/unity-sample/Runtime/*.cs "$root"/unity-sample/Runtime/Unity/*.cs "$here"/WebGL/WebGLCheck.cs
mono "$work/WebGLCheck.exe" "$jslib"
# The jslib itself, under node against a stand-in browser WebSocket (skipped without node).
if command -v node > /dev/null; then
  node "$here/WebGL/jslib-test.js" "$jslib"
else
  echo "jslib: not tested (node not installed)"
fi

# The C layout of every shared struct, as a C compiler sees the header, for LayoutTests.
cc -std=c99 -Wall -Werror -I "$root/include" "$root/tests/c/layout.c" -o "$work/layout"
"$work/layout" > "$work/layout.txt"

# Tests of the package as Unity builds it (the CubeWalk.Net assembly above, UnityWebRequest, the
# sample's scripts) against the stand-in engine in UnityStubs: its own NUnit run, in its own
# process, so its clients and the plain-C# tests' clients never share the native library.
mcs -langversion:7.2 -warnaserror+ -nowarn:1591 -define:UNITY_EDITOR -target:library \
  -r:"$nunit" -r:"$work/UnityStubs.dll" -r:"$work/CubeWalk.Net.dll" -out:"$work/CubeWalk.UnityTests.dll" \
  "$here"/UnityBuild/*.cs "$root"/unity-sample/Samples~/ChunkStreaming/*.cs

# Runs one test assembly; adds its counts to the totals.
status=0 total=0 failed=0
run_nunit() {
  local name="$1" rc
  set +e
  LD_LIBRARY_PATH="$target" CUBEWALK_TEST_ENDPOINT="$endpoint" CUBEWALK_TEST_TOKEN="$token" CUBEWALK_C_LAYOUT="$work/layout.txt" \
    CUBEWALK_TEST_SERVER="$server" nunit-console -nologo -labels -xml="$work/$name.xml" "$work/$name.dll" > "$work/$name.out" 2>&1
  rc=$?
  set -e
  cat "$work/$name.out"
  [ "$rc" = 0 ] || status=$rc
  local t f e
  t=$(grep -o 'total="[0-9]*"' "$work/$name.xml" | head -1 | grep -o '[0-9]*' || echo 0)
  f=$(grep -o 'failures="[0-9]*"' "$work/$name.xml" | head -1 | grep -o '[0-9]*' || echo 0)
  e=$(grep -o 'errors="[0-9]*"' "$work/$name.xml" | head -1 | grep -o '[0-9]*' || echo 0)
  [ "$t" -gt 0 ] || { echo "$name: no test ran"; status=1; }
  total=$((total + t))
  failed=$((failed + f + e))
}
run_nunit CubeWalk.Tests
run_nunit CubeWalk.UnityTests
passed=$((total - failed))
echo "C#: $passed passed, $failed failed"
[ "$status" = 0 ] && [ "$failed" = 0 ] && [ "$total" -gt 0 ]
