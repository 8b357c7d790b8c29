namespace CubeWalk.Tests
{
    /// <summary>The measurement fixtures of protocol/README.md in C#, shared by the tests and the
    /// Mono benchmark (no NUnit here, so the benchmark can compile it too).</summary>
    static class Fixtures
    {
        /// <summary>Typical terrain's ground height at column (x, z).</summary>
        public static int Height(int x, int z) { return 6 + (x * 7 + z * 13) % 5; }

        /// <summary>Typical terrain: stone, then two dirt, one grass, air above the height.</summary>
        public static int[] Terrain()
        {
            var c = new int[4096];
            for (int x = 0; x < 16; x++)
                for (int z = 0; z < 16; z++)
                {
                    int h = Height(x, z);
                    for (int y = 0; y < 16; y++)
                        c[x * 256 + z * 16 + y] = y + 3 < h ? 1 : y + 1 < h ? 2 : y + 1 == h ? 3 : 0;
                }
            return c;
        }

        /// <summary>Every cube an independent value from a seeded xorshift generator (as the Rust
        /// fixture), so the chunk is stored in the raw form.</summary>
        public static int[] Random(ulong seed)
        {
            var c = new int[4096];
            ulong s = seed | 1;
            for (int i = 0; i < c.Length; i++)
            {
                s ^= s << 13; s ^= s >> 7; s ^= s << 17;
                c[i] = (int)(s >> 16);
            }
            return c;
        }
    }
}
