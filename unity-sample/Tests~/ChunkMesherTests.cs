using System;
using CubeWalk;
using NUnit.Framework;
using static CubeWalk.Tests.Fixtures;

namespace CubeWalk.Tests
{
    /// <summary>The mesher on the measurement fixtures, with face counts worked out independently
    /// (from column heights, not by walking cubes).</summary>
    [TestFixture]
    public class ChunkMesherTests
    {
        static int[] Filled(int value)
        {
            var c = new int[4096];
            for (int i = 0; i < c.Length; i++) c[i] = value;
            return c;
        }

        [Test]
        public void EmptySolidAndSingleCube()
        {
            var m = new ChunkMesher();
            m.Build(new int[4096]);
            Assert.AreEqual(0, m.FaceCount);
            m.Build(Filled(1));
            Assert.AreEqual(6 * 256, m.FaceCount, "a solid chunk alone shows its six 16x16 sides");
            Assert.AreEqual(m.FaceCount * 6, m.IndexCount);
            var one = new int[4096];
            one[ChunkMesher.Index(3, 4, 5)] = 9;
            m.Build(one);
            Assert.AreEqual(6, m.FaceCount);
            for (int v = 0; v < m.VertexCount; v++)
            {
                Assert.AreEqual(9, m.Values[v]);
                float px = m.Positions[v * 3], py = m.Positions[v * 3 + 1], pz = m.Positions[v * 3 + 2];
                Assert.IsTrue(px >= 3 && px <= 4 && py >= 4 && py <= 5 && pz >= 5 && pz <= 6, "corner on the cube");
            }
        }

        [Test]
        public void TerrainFacesMatchTheColumnHeights()
        {
            // Each column shows its top and bottom, and on each side as many faces as it stands
            // above its neighbour (the full height at the chunk's border, with air outside).
            int expected = 0;
            int[][] steps = { new[] { 1, 0 }, new[] { -1, 0 }, new[] { 0, 1 }, new[] { 0, -1 } };
            for (int x = 0; x < 16; x++)
                for (int z = 0; z < 16; z++)
                {
                    int h = Height(x, z);
                    expected += 2;
                    foreach (var s in steps)
                    {
                        int nx = x + s[0], nz = z + s[1];
                        int nh = nx < 0 || nx > 15 || nz < 0 || nz > 15 ? 0 : Height(nx, nz);
                        expected += Math.Max(0, h - nh);
                    }
                }
            var m = new ChunkMesher();
            m.Build(Terrain());
            Assert.AreEqual(expected, m.FaceCount);
        }

        [Test]
        public void NeighbouringChunksCullSharedFaces()
        {
            var m = new ChunkMesher();
            var solid = Filled(1);
            m.Build(solid, solid, solid, solid, solid, solid, solid);
            Assert.AreEqual(0, m.FaceCount, "buried on every side");
            m.Build(solid, posX: solid);
            Assert.AreEqual(5 * 256, m.FaceCount, "the +x side is hidden by the chunk beyond it");
            // A terrain chunk on a solid chunk: its bottom faces go, nothing else changes.
            m.Build(Terrain());
            int alone = m.FaceCount;
            m.Build(Terrain(), negY: solid);
            Assert.AreEqual(alone - 256, m.FaceCount);
        }

        [Test]
        public void RemeshingAllocatesNothingAfterWarmUp()
        {
            var m = new ChunkMesher();
            var terrain = Terrain();
            var solid = Filled(2);
            m.Build(solid);
            m.Build(terrain);
            long before = GC.GetAllocatedBytesForCurrentThread();
            for (int i = 0; i < 100; i++) m.Build(i % 2 == 0 ? terrain : solid);
            Assert.AreEqual(0, GC.GetAllocatedBytesForCurrentThread() - before);
        }

        [Test]
        public void BadChunksAreRefused()
        {
            var m = new ChunkMesher();
            Assert.Throws<ArgumentNullException>(() => m.Build(null));
            Assert.Throws<ArgumentException>(() => m.Build(new int[10]));
            Assert.Throws<ArgumentException>(() => m.Build(new int[4096], new int[5]));
        }
    }
}
