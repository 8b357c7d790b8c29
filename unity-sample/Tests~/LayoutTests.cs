using System;
using System.Collections.Generic;
using System.IO;
using System.Runtime.InteropServices;
using CubeWalk;
using CubeWalk.Native;
using NUnit.Framework;

namespace CubeWalk.Tests
{
    /// <summary>Every struct that crosses the native boundary has the C layout: sizes and field
    /// offsets compared with a C program compiled against include/cubewalk.h (tests/c/layout.c,
    /// run by run-tests.sh; its output in CUBEWALK_C_LAYOUT). The package's own structs
    /// (ChunkKey, CubeEdit, ChunkVersion) are passed to the library in place of the generated
    /// ones, so they are checked against the same C structs.</summary>
    [TestFixture]
    public class LayoutTests
    {
        static Dictionary<string, long> CLayout()
        {
            string path = Environment.GetEnvironmentVariable("CUBEWALK_C_LAYOUT");
            Assert.IsNotNull(path, "CUBEWALK_C_LAYOUT not set: run Tests~/run-tests.sh");
            var layout = new Dictionary<string, long>();
            foreach (string line in File.ReadAllLines(path))
            {
                string[] parts = line.Split(' ');
                if (parts.Length == 3 && parts[1] == "size") layout[parts[0]] = long.Parse(parts[2]);
                else if (parts.Length == 2) layout[parts[0]] = long.Parse(parts[1]);
            }
            Assert.Greater(layout.Count, 20, "the C program reported the layouts");
            return layout;
        }

        static void Same(Dictionary<string, long> c, string cStruct, Type t, params string[] fieldPairs)
        {
            Assert.AreEqual(c[cStruct], Marshal.SizeOf(t), "sizeof(" + cStruct + ") vs " + t.Name);
            for (int i = 0; i < fieldPairs.Length; i += 2)
                Assert.AreEqual(c[cStruct + "." + fieldPairs[i]], Marshal.OffsetOf(t, fieldPairs[i + 1]).ToInt64(),
                    cStruct + "." + fieldPairs[i] + " vs " + t.Name + "." + fieldPairs[i + 1]);
        }

        [Test]
        public void GeneratedStructsMatchTheHeader()
        {
            var c = CLayout();
            Same(c, "CwChunkKey", typeof(CwChunkKey), "x", "x", "y", "y", "z", "z");
            Same(c, "CwEdit", typeof(CwEdit), "chunk", "chunk", "index", "index", "value", "value");
            Same(c, "CwChunkVersion", typeof(CwChunkVersion), "key", "key", "reserved", "reserved", "version", "version");
            Same(c, "CwOptions", typeof(CwOptions),
                "struct_size", "struct_size", "timeout_ms", "timeout_ms", "connect_timeout_ms", "connect_timeout_ms",
                "max_retries", "max_retries", "retry_base_delay_ms", "retry_base_delay_ms",
                "retry_max_delay_ms", "retry_max_delay_ms", "max_in_flight", "max_in_flight",
                "allow_insecure_http", "allow_insecure_http", "reserved", "reserved", "ca_pem", "ca_pem",
                "ca_pem_len", "ca_pem_len");
            Same(c, "CwChange", typeof(CwChange), "chunk", "chunk", "kind", "kind", "previous", "previous",
                "version", "version", "first_edit", "first_edit", "edit_count", "edit_count");
            Same(c, "CwGuestSession", typeof(CwGuestSession), "expires_at", "expires_at", "expires_in", "expires_in",
                "player_len", "player_len", "player", "player");
        }

        [Test]
        public void PackageStructsPassedInPlaceOfTheNativeOnesMatchToo()
        {
            var c = CLayout();
            Same(c, "CwChunkKey", typeof(ChunkKey), "x", "X", "y", "Y", "z", "Z");
            Same(c, "CwEdit", typeof(CubeEdit), "chunk", "Chunk", "index", "Index", "value", "Value");
            Same(c, "CwChunkVersion", typeof(ChunkVersion), "key", "Key", "reserved", "Reserved", "version", "Version");
            Same(c, "CwChange", typeof(ChunkChange), "chunk", "Chunk", "kind", "Kind", "previous", "Previous",
                "version", "Version", "first_edit", "FirstEdit", "edit_count", "EditCount");
        }
    }
}
