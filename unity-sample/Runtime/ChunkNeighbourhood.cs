using System;

namespace CubeWalk
{
    /// <summary>
    /// The (2r+1)^3 chunks around a centre chunk, kept up to date with non-blocking fetches that
    /// send the versions already held, so only changed chunks travel. Plain C#: the sample's
    /// MonoBehaviour only feeds it the player's chunk and calls <see cref="CubeWalkClient.Update"/>.
    /// Steady-state refreshes allocate no managed memory. Its methods may be called from any
    /// thread; its arrays are rewritten by the <see cref="CubeWalkClient.Update"/> that completes
    /// a refresh, so read them on the thread that calls Update.
    /// </summary>
    public sealed class ChunkNeighbourhood
    {
        readonly CubeWalkClient client;
        readonly string world;
        readonly int radius;
        readonly FetchRequest request = new FetchRequest();
        readonly Action<FetchRequest> onFetched;
        readonly object gate = new object();
        ChunkKey[] spareKeys;
        ulong[] spareVersions;
        int[][] spareBuffers;

        /// <summary>The chunks, x major, then z, then y (the game's order).</summary>
        public ChunkKey[] Keys { get; private set; }
        /// <summary>The version held for each chunk (<see cref="CubeWalkClient.NoVersion"/> until loaded).</summary>
        public ulong[] Versions { get; private set; }
        /// <summary>Each chunk's cubes, int[4096] in the game's order.</summary>
        public int[][] Buffers { get; private set; }
        /// <summary>After a refresh, 1 where the chunk changed.</summary>
        public byte[] Changed { get; private set; }
        /// <summary>The centre chunk.</summary>
        public ChunkKey Center { get; private set; }
        /// <summary>True while a refresh is in flight.</summary>
        public bool Busy { get; private set; }
        /// <summary>Refreshes completed successfully.</summary>
        public int Refreshes { get; private set; }
        /// <summary>Status of the last refresh (or of the last refresh that could not start).</summary>
        public CubeWalkStatus LastStatus { get; private set; }
        /// <summary>The error message of the last refresh when it failed; null after a success.</summary>
        public string LastError { get; private set; }
        /// <summary>Called with the index of each chunk whose cubes changed (on the Update thread).</summary>
        public Action<int> ChunkChanged;

        /// <summary>A neighbourhood of radius <paramref name="radius"/> chunks around (0,0,0).</summary>
        /// <param name="client">The client that fetches it.</param>
        /// <param name="world">The world.</param>
        /// <param name="radius">Chunks on each side of the centre, 0..8.</param>
        /// <exception cref="ArgumentNullException"><paramref name="client"/> is null.</exception>
        /// <exception cref="ArgumentOutOfRangeException"><paramref name="radius"/> is outside 0..8.</exception>
        public ChunkNeighbourhood(CubeWalkClient client, string world, int radius)
        {
            if (client == null) throw new ArgumentNullException("client");
            if (radius < 0 || radius > 8) throw new ArgumentOutOfRangeException("radius", "0..8");
            this.client = client;
            this.world = world;
            this.radius = radius;
            int side = 2 * radius + 1, n = side * side * side;
            Keys = new ChunkKey[n];
            Versions = new ulong[n];
            Buffers = new int[n][];
            Changed = new byte[n];
            spareKeys = new ChunkKey[n];
            spareVersions = new ulong[n];
            spareBuffers = new int[n][];
            for (int i = 0; i < n; i++)
            {
                Buffers[i] = new int[CubeWalkClient.ChunkCubes];
                Versions[i] = CubeWalkClient.NoVersion;
            }
            onFetched = OnFetched;
            Layout(new ChunkKey(0, 0, 0), Keys);
            Center = new ChunkKey(0, 0, 0);
        }

        void Layout(ChunkKey c, ChunkKey[] into)
        {
            int i = 0;
            for (int x = -radius; x <= radius; x++)
                for (int z = -radius; z <= radius; z++)
                    for (int y = -radius; y <= radius; y++)
                        into[i++] = new ChunkKey(c.X + x, c.Y + y, c.Z + z);
        }

        /// <summary>Re-centres on <paramref name="center"/>: chunks still in range keep their data and
        /// version; new ones will be loaded by the next <see cref="Refresh"/>. Ignored while busy.</summary>
        /// <param name="center">The new centre chunk.</param>
        /// <returns>Whether it moved (false while busy or when already there).</returns>
        public bool MoveTo(ChunkKey center)
        {
            lock (gate) return MoveToLocked(center);
        }

        bool MoveToLocked(ChunkKey center)
        {
            if (Busy || center.Equals(Center)) return false;
            Layout(center, spareKeys);
            int side = 2 * radius + 1;
            var recycled = 0;
            for (int i = 0; i < spareKeys.Length; i++) spareBuffers[i] = null;
            for (int i = 0; i < Keys.Length; i++)
            {
                ChunkKey k = Keys[i];
                int dx = k.X - center.X + radius, dy = k.Y - center.Y + radius, dz = k.Z - center.Z + radius;
                if (dx >= 0 && dx < side && dy >= 0 && dy < side && dz >= 0 && dz < side)
                {
                    int j = (dx * side + dz) * side + dy;
                    spareBuffers[j] = Buffers[i];
                    spareVersions[j] = Versions[i];
                    Buffers[i] = null;
                }
            }
            for (int j = 0; j < spareKeys.Length; j++)
            {
                if (spareBuffers[j] != null) continue;
                while (Buffers[recycled] == null) recycled++;
                spareBuffers[j] = Buffers[recycled];
                Buffers[recycled] = null;
                spareVersions[j] = CubeWalkClient.NoVersion;
            }
            Swap();
            Center = center;
            return true;
        }

        void Swap()
        {
            var k = Keys; Keys = spareKeys; spareKeys = k;
            var v = Versions; Versions = spareVersions; spareVersions = v;
            var b = Buffers; Buffers = spareBuffers; spareBuffers = b;
        }

        /// <summary>Starts a refresh unless one is in flight: a non-blocking fetch of every chunk with
        /// the version held. Returns whether one was started; when the fetch cannot start (the
        /// client shut down, for one) it returns false with the reason in
        /// <see cref="LastStatus"/> and <see cref="LastError"/>, and the next call tries again.</summary>
        /// <returns>Whether a refresh was started.</returns>
        public bool Refresh()
        {
            lock (gate)
            {
                if (Busy) return false;
                Busy = true;
                try
                {
                    client.BeginFetch(world, Keys, Versions, Buffers, Changed, onFetched, request);
                    return true;
                }
                catch (CubeWalkException e)
                {
                    Busy = false;
                    LastStatus = e.Status;
                    LastError = e.Message;
                    return false;
                }
                catch
                {
                    Busy = false;
                    throw;
                }
            }
        }

        void OnFetched(FetchRequest r)
        {
            lock (gate)
            {
                Busy = false;
                LastStatus = r.Status;
                LastError = r.Error;
                if (r.Status != CubeWalkStatus.Ok) return;
                Refreshes++;
            }
            if (ChunkChanged == null) return;
            for (int i = 0; i < Changed.Length; i++)
                if (Changed[i] != 0) ChunkChanged(i);
        }
    }
}
