using System;

namespace CubeWalk
{
    /// <summary>
    /// Turns a chunk's cubes into the faces a renderer draws: one quad wherever a solid cube
    /// (value not 0) touches air, inside the chunk or across a face of a neighbouring chunk.
    /// Plain C# (no UnityEngine types): the output is flat arrays that the Unity glue copies into
    /// a Mesh. The arrays are reused and grow only when a chunk needs more faces than any before,
    /// so remeshing allocates nothing after warm-up.
    /// </summary>
    public sealed class ChunkMesher
    {
        const int Side = 16;
        // Reused each build, so a build allocates nothing.
        readonly int[][] neighbours = new int[6][];

        /// <summary>Vertex positions, x, y, z per vertex, in cube units relative to the chunk's
        /// corner; <see cref="VertexCount"/> vertices are valid.</summary>
        public float[] Positions = new float[0];
        /// <summary>Face normals, x, y, z per vertex (one of the six axis directions).</summary>
        public float[] Normals = new float[0];
        /// <summary>The cube value of each vertex's face, for a colour or texture lookup.</summary>
        public int[] Values = new int[0];
        /// <summary>Triangle vertex indices, three per triangle, two triangles per face;
        /// <see cref="IndexCount"/> are valid.</summary>
        public int[] Indices = new int[0];
        /// <summary>Vertices written by the last <see cref="Build"/>.</summary>
        public int VertexCount { get; private set; }
        /// <summary>Indices written by the last <see cref="Build"/>.</summary>
        public int IndexCount { get; private set; }
        /// <summary>Faces written by the last <see cref="Build"/>.</summary>
        public int FaceCount { get { return VertexCount / 4; } }

        // The six directions: normal, and the two in-face axes that, with the normal, give the
        // four corners in counter-clockwise order seen from outside.
        static readonly int[][] Directions =
        {
            new[] { 1, 0, 0 }, new[] { -1, 0, 0 },
            new[] { 0, 1, 0 }, new[] { 0, -1, 0 },
            new[] { 0, 0, 1 }, new[] { 0, 0, -1 },
        };

        // Corner offsets of each direction's face (4 corners x 3 coordinates), wound so the
        // face is front-facing from outside the cube in a left-handed (Unity) frame.
        static readonly float[][] Corners =
        {
            new float[] { 1, 0, 0, 1, 1, 0, 1, 1, 1, 1, 0, 1 },
            new float[] { 0, 0, 1, 0, 1, 1, 0, 1, 0, 0, 0, 0 },
            new float[] { 0, 1, 0, 0, 1, 1, 1, 1, 1, 1, 1, 0 },
            new float[] { 0, 0, 1, 0, 0, 0, 1, 0, 0, 1, 0, 1 },
            new float[] { 1, 0, 1, 1, 1, 1, 0, 1, 1, 0, 0, 1 },
            new float[] { 0, 0, 0, 0, 1, 0, 1, 1, 0, 1, 0, 0 },
        };

        /// <summary>A mesher with empty output arrays (they grow on the first builds).</summary>
        public ChunkMesher() { }

        /// <summary>Cube index in the game's order: x * 256 + z * 16 + y.</summary>
        /// <param name="x">Local x, 0..15.</param>
        /// <param name="y">Local y, 0..15.</param>
        /// <param name="z">Local z, 0..15.</param>
        /// <returns>The index into a chunk's int[4096].</returns>
        public static int Index(int x, int y, int z) { return x * 256 + z * 16 + y; }

        /// <summary>Builds the faces of <paramref name="cubes"/> (int[4096], game order). The
        /// neighbours (each int[4096] or null for air) hide the faces they touch: +x, -x, +y, -y,
        /// +z, -z.</summary>
        /// <param name="cubes">The chunk, int[4096] in game order.</param>
        /// <param name="posX">The chunk on the +x side, or null.</param>
        /// <param name="negX">The chunk on the -x side, or null.</param>
        /// <param name="posY">The chunk above, or null.</param>
        /// <param name="negY">The chunk below, or null.</param>
        /// <param name="posZ">The chunk on the +z side, or null.</param>
        /// <param name="negZ">The chunk on the -z side, or null.</param>
        /// <exception cref="ArgumentNullException"><paramref name="cubes"/> is null.</exception>
        /// <exception cref="ArgumentException">A chunk array is not 4096 cubes long.</exception>
        public void Build(int[] cubes, int[] posX = null, int[] negX = null, int[] posY = null, int[] negY = null,
            int[] posZ = null, int[] negZ = null)
        {
            Check(cubes, "cubes");
            neighbours[0] = posX; neighbours[1] = negX; neighbours[2] = posY;
            neighbours[3] = negY; neighbours[4] = posZ; neighbours[5] = negZ;
            for (int d = 0; d < 6; d++) if (neighbours[d] != null) Check(neighbours[d], "neighbour");
            VertexCount = 0;
            IndexCount = 0;
            for (int x = 0; x < Side; x++)
                for (int z = 0; z < Side; z++)
                    for (int y = 0; y < Side; y++)
                    {
                        int value = cubes[Index(x, y, z)];
                        if (value == 0) continue;
                        for (int d = 0; d < 6; d++)
                        {
                            int[] dir = Directions[d];
                            if (Solid(cubes, neighbours[d], x + dir[0], y + dir[1], z + dir[2])) continue;
                            AddFace(d, x, y, z, value);
                        }
                    }
            // Hold no reference to the caller's arrays between builds.
            Array.Clear(neighbours, 0, 6);
        }

        static void Check(int[] chunk, string name)
        {
            if (chunk == null) throw new ArgumentNullException(name);
            if (chunk.Length != 4096) throw new ArgumentException("a chunk is 4096 cubes", name);
        }

        // Whether the cube at (x, y, z) is solid; one step outside the chunk reads the neighbour
        // across that face (only ever the face's own neighbour, as a step changes one axis).
        static bool Solid(int[] cubes, int[] neighbour, int x, int y, int z)
        {
            if (x >= 0 && x < Side && y >= 0 && y < Side && z >= 0 && z < Side) return cubes[Index(x, y, z)] != 0;
            if (neighbour == null) return false;
            return neighbour[Index((x + Side) % Side, (y + Side) % Side, (z + Side) % Side)] != 0;
        }

        void AddFace(int d, int x, int y, int z, int value)
        {
            Reserve(VertexCount + 4, IndexCount + 6);
            float[] corner = Corners[d];
            int[] dir = Directions[d];
            int v = VertexCount;
            for (int c = 0; c < 4; c++)
            {
                int p = (v + c) * 3;
                Positions[p] = x + corner[c * 3];
                Positions[p + 1] = y + corner[c * 3 + 1];
                Positions[p + 2] = z + corner[c * 3 + 2];
                Normals[p] = dir[0];
                Normals[p + 1] = dir[1];
                Normals[p + 2] = dir[2];
                Values[v + c] = value;
            }
            int i = IndexCount;
            Indices[i] = v; Indices[i + 1] = v + 1; Indices[i + 2] = v + 2;
            Indices[i + 3] = v; Indices[i + 4] = v + 2; Indices[i + 5] = v + 3;
            VertexCount += 4;
            IndexCount += 6;
        }

        void Reserve(int vertices, int indices)
        {
            if (Values.Length < vertices)
            {
                int n = Math.Max(vertices, Math.Max(256, Values.Length * 2));
                Array.Resize(ref Positions, n * 3);
                Array.Resize(ref Normals, n * 3);
                Array.Resize(ref Values, n);
            }
            if (Indices.Length < indices) Array.Resize(ref Indices, Math.Max(indices, Math.Max(384, Indices.Length * 2)));
        }
    }
}
