using System;
using System.IO;
using System.Net.Http;
using CubeWalk;
using CubeWalk.Managed;
using NUnit.Framework;
using static CubeWalk.Tests.Fixtures;
using static CubeWalk.Tests.TestSupport;

namespace CubeWalk.Tests
{
    /// <summary>The C# wire format (for WebGL) against the Rust one: blobs the server encoded
    /// (terrain, solid, one cube, random, empty), fetched with the C# query and parsed by the C#
    /// answer reader, decode to exactly what the native library decodes.</summary>
    [TestFixture]
    public class ManagedProtocolTests
    {
        CubeWalkClient client;

        [SetUp]
        public void Start() { client = new CubeWalkClient(Endpoint, Token); }

        [TearDown]
        public void Stop() { client.Dispose(); }

        void Put(string world, ChunkKey key, int[] cubes)
        {
            var edits = new CubeEdit[4096];
            for (int i = 0; i < 4096; i++) edits[i] = new CubeEdit { Chunk = key, Index = (uint)i, Value = cubes[i] };
            client.PutBlocks(world, edits, new ChunkVersion[1]);
        }

        [Test]
        public void ServerBlobsDecodeInCSharpExactlyAsNatively()
        {
            const string world = "mono-codec";
            var single = new int[4096];
            single[1234] = -77;
            var solid = new int[4096];
            for (int i = 0; i < 4096; i++) solid[i] = 7;
            int[][] contents = { Terrain(), solid, single, Random(42), Random(7), new int[4096] };
            var keys = new ChunkKey[contents.Length];
            for (int i = 0; i < contents.Length; i++)
            {
                keys[i] = new ChunkKey(i, -3, 9);
                if (i < contents.Length - 1) Put(world, keys[i], contents[i]);
            }
            var native = Buffers(keys.Length);
            var nativeVersions = NoVersions(keys.Length);
            client.FetchBlocks(world, keys, nativeVersions, native);

            var http = new HttpClient();
            var request = new HttpRequestMessage(HttpMethod.Get, Endpoint + "?" + FetchProtocol.Query(world, keys, NoVersions(keys.Length), keys.Length));
            request.Headers.Add("token", Token);
            string answer = http.SendAsync(request).Result.Content.ReadAsStringAsync().Result;
            var entries = FetchProtocol.ParseAnswer(answer);
            Assert.AreEqual(keys.Length, entries.Count);
            var managed = new int[4096];
            for (int i = 0; i < keys.Length; i++)
            {
                Assert.AreEqual(keys[i], entries[i].Key);
                Assert.AreEqual(nativeVersions[i], entries[i].Version, "the same version both ways");
                if (entries[i].Blob == null) Array.Clear(managed, 0, 4096);
                else ChunkCodec.Decode(entries[i].Blob, managed);
                CollectionAssert.AreEqual(contents[i], managed, "chunk " + i + " decoded in C#");
                CollectionAssert.AreEqual(native[i], managed, "chunk " + i + " C# and native agree");
            }

            // Held at the current version: no data, the same version.
            var held = FetchProtocol.Query(world, keys, nativeVersions, keys.Length);
            request = new HttpRequestMessage(HttpMethod.Get, Endpoint + "?" + held);
            request.Headers.Add("token", Token);
            entries = FetchProtocol.ParseAnswer(http.SendAsync(request).Result.Content.ReadAsStringAsync().Result);
            for (int i = 0; i < keys.Length; i++)
            {
                Assert.IsNull(entries[i].Blob);
                Assert.AreEqual(nativeVersions[i], entries[i].Version);
            }
        }

        [Test]
        public void CorruptBlobsAreRefused()
        {
            var output = new int[4096];
            Assert.Throws<InvalidDataException>(() => ChunkCodec.Decode(new byte[] { 9, 1, 2 }, output), "unknown tag");
            Assert.Throws<InvalidDataException>(() => ChunkCodec.Decode(new byte[] { 2, 1, 2, 3 }, output), "short raw");
            Assert.Throws<InvalidDataException>(() => ChunkCodec.Decode(new byte[] { 1, 0xff, 0xff, 0xff }, output), "bad deflate");
            Assert.Throws<InvalidDataException>(() => FetchProtocol.ParseAnswer("{\"chunks\":[{\"version\":1}]}"), "no key");
            Assert.Throws<InvalidDataException>(() => FetchProtocol.ParseAnswer("{\"chunks\":[{\"key\":[1,2"), "truncated");
        }

        [Test]
        public void QueryMatchesTheProtocol()
        {
            var keys = new[] { new ChunkKey(0, 0, 0), new ChunkKey(-1, 2, -3) };
            Assert.AreEqual("world=w-1&chunks=0,0,0;-1,2,-3@18446744073709551614",
                FetchProtocol.Query("w-1", keys, new[] { CubeWalkClient.NoVersion, ulong.MaxValue - 1 }, 2));
        }
    }
}
