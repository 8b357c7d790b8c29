using System;

namespace CubeWalk
{
    /// <summary>
    /// The (2r+1)^3 chunks around a centre chunk, kept up to date with non-blocking fetches that
    /// send the versions already held, so only changed chunks travel. Plain C#: the sample's
    /// MonoBehaviour only feeds it the player's chunk and calls <see cref="CubeWalkClient.Update"/>
    /// and <see cref="Tick"/>. Steady-state refreshes allocate no managed memory. Its methods may
    /// be called from any thread; its arrays are rewritten by the <see cref="CubeWalkClient.Update"/>
    /// that completes a refresh and by <see cref="Tick"/>, so read them on the thread that calls
    /// those.
    ///
    /// With <see cref="Follow"/> it follows its chunks over realtime (MQTT over WebSocket: the
    /// native plugin's connection, or on the managed transport, WebGL builds included, the
    /// package's C# follower): other players' small edits are applied in place as they arrive,
    /// and it refetches only when the server says so (a big change, a new set of chunks, a gap
    /// after a lost connection, the periodic reconcile). When realtime is unavailable (not
    /// configured, unreachable, refused) it polls
    /// every <c>pollInterval</c> seconds instead, and goes back to following once the connection
    /// is up again. A refresh that fails while following (the server unreachable for a moment) is
    /// tried again after <see cref="RefetchRetryFirstSeconds"/>, then after twice as long each
    /// time up to <see cref="RefetchRetryMaxSeconds"/>, until one succeeds, so the chunks never
    /// stay stale without a refresh on the way.
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
        // The chunks the last MoveTo dropped, for ChunkLeft (reused: no allocation per move).
        readonly ChunkKey[] leftKeys;
        int leftCount;
        ulong[] spareVersions;
        int[][] spareBuffers;
        // Realtime: events land here (no allocation per event), chunks changed in place are
        // collected for ChunkChanged, called outside the lock.
        readonly ChunkChange[] changes = new ChunkChange[64];
        readonly CubeEdit[] changeEdits = new CubeEdit[64 * 64];
        readonly int[] appliedNow;
        int appliedCount;
        bool following, subscribed, refetchNeeded;
        double nextPoll;
        // After a failed refresh: the next refetch while following waits until refetchAt; the
        // wait doubles with each failure (0 after a success). refreshFailed: a failure that Tick
        // has not scheduled yet (OnFetched does not know the time).
        bool refreshFailed;
        double refetchAt, refetchBackoff;
        // Following again after the realtime connection stopped (the native session restarted in
        // Play mode, a re-init of the client): the endpoint given to Follow, and when to try
        // next; never after a refusal or a bad URL.
        string realtimeEndpoint;
        bool followGivenUp;
        double retryFollowAt;
        /// <summary>Seconds between attempts to follow again once realtime stopped (the native
        /// session, or a managed-transport client, was shut down and initialized again).</summary>
        public const double FollowRetrySeconds = 5;
        /// <summary>Seconds before refetching after a refresh failed while following; doubled
        /// after each further failure, up to <see cref="RefetchRetryMaxSeconds"/>.</summary>
        public const double RefetchRetryFirstSeconds = 0.5;
        /// <summary>The longest wait between refetches after failed refreshes while following.</summary>
        public const double RefetchRetryMaxSeconds = 30;

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
        /// <summary>Called with the index of each chunk whose cubes changed (on the thread of the
        /// Update or Tick that changed it).</summary>
        public Action<int> ChunkChanged;
        /// <summary>Called by <see cref="MoveTo"/>, on its thread and after it re-centred, with
        /// each chunk that left the neighbourhood, so whatever shows that chunk (a mesh, a
        /// collider) can be released; a chunk that comes back is loaded again and reported by
        /// <see cref="ChunkChanged"/>. Call MoveTo from one thread when this is set.</summary>
        public Action<ChunkKey> ChunkLeft;
        /// <summary>Other players' changes applied in place from realtime events (no fetch).</summary>
        public int AppliedChanges { get; private set; }
        /// <summary>Gaps the realtime connection reported (each closed by a refetch).</summary>
        public int Gaps { get; private set; }
        /// <summary>Why it polls instead of following (null while following or never asked to).</summary>
        public string RealtimeProblem { get; private set; }

        /// <summary>True while changes arrive over the realtime connection (no polling).</summary>
        public bool IsFollowing
        {
            get { return following && subscribed && client.RealtimeState == RealtimeState.Connected; }
        }

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
            leftKeys = new ChunkKey[n];
            for (int i = 0; i < n; i++)
            {
                Buffers[i] = new int[CubeWalkClient.ChunkCubes];
                Versions[i] = CubeWalkClient.NoVersion;
            }
            onFetched = OnFetched;
            appliedNow = new int[n];
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
        /// version; new ones will be loaded by the next <see cref="Refresh"/>; the ones out of range
        /// are reported to <see cref="ChunkLeft"/>. Ignored while busy.</summary>
        /// <param name="center">The new centre chunk.</param>
        /// <returns>Whether it moved (false while busy or when already there).</returns>
        public bool MoveTo(ChunkKey center)
        {
            int left;
            lock (gate)
            {
                if (!MoveToLocked(center)) return false;
                left = leftCount;
            }
            // Outside the lock, like ChunkChanged: the callback may call back in.
            Action<ChunkKey> onLeft = ChunkLeft;
            if (onLeft != null)
                for (int i = 0; i < left; i++) onLeft(leftKeys[i]);
            return true;
        }

        bool MoveToLocked(ChunkKey center)
        {
            if (Busy || center.Equals(Center)) return false;
            Layout(center, spareKeys);
            int side = 2 * radius + 1;
            var recycled = 0;
            leftCount = 0;
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
                else leftKeys[leftCount++] = k;
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
            if (following) FollowKeys();
            return true;
        }

        /// <summary>Follows these chunks over realtime at <paramref name="realtimeEndpoint"/> (the
        /// broker's MQTT-over-WebSocket URL, <see cref="CubeWalkClient.StartRealtime"/>) instead of
        /// polling, on either transport. Returns false, with the reason in
        /// <see cref="RealtimeProblem"/>, when realtime cannot start (a bad URL, the client shut
        /// down); the neighbourhood then keeps polling.</summary>
        /// <param name="realtimeEndpoint">The realtime URL (<c>wss://.../mqtt</c>; locally
        /// <c>ws://127.0.0.1:3000/mqtt</c>).</param>
        /// <returns>Whether it started following.</returns>
        public bool Follow(string realtimeEndpoint)
        {
            lock (gate)
            {
                this.realtimeEndpoint = realtimeEndpoint;
                followGivenUp = false;
                return StartFollowing();
            }
        }

        bool StartFollowing()
        {
            try
            {
                client.StartRealtime(realtimeEndpoint);
                following = true;
                RealtimeProblem = null;
                FollowKeys();
                return following;
            }
            catch (Exception e)
            {
                if (!(e is CubeWalkException || e is PlatformNotSupportedException || e is ArgumentException)) throw;
                following = false;
                RealtimeProblem = e.Message;
                // A transport without realtime or a bad URL will not get better by retrying.
                if (!(e is CubeWalkException) || ((CubeWalkException)e).Status == CubeWalkStatus.InvalidArgument)
                    followGivenUp = true;
                return false;
            }
        }

        void FollowKeys()
        {
            subscribed = false;
            try
            {
                client.Follow(world, Keys, Keys.Length);
            }
            catch (CubeWalkException e)
            {
                StopFollowing(e.Message);
            }
        }

        void StopFollowing(string why)
        {
            following = false;
            subscribed = false;
            RealtimeProblem = why;
        }

        /// <summary>Call once per frame after <see cref="CubeWalkClient.Update"/>: applies the realtime
        /// events that arrived, then starts a refresh when one is needed (a gap, a new set of
        /// chunks, a big change), or, while not following, every <paramref name="pollInterval"/>
        /// seconds. Allocates nothing in the steady state.</summary>
        /// <param name="now">The current time in seconds (any monotonic clock).</param>
        /// <param name="pollInterval">Seconds between refreshes while not following.</param>
        public void Tick(double now, double pollInterval)
        {
            bool live, refetchDue;
            lock (gate)
            {
                appliedCount = 0;
                if (!following && realtimeEndpoint != null && !followGivenUp && now >= retryFollowAt)
                {
                    retryFollowAt = now + FollowRetrySeconds;
                    StartFollowing();
                }
                if (following) Drain();
                live = following && subscribed && client.RealtimeState == RealtimeState.Connected;
                if (following && client.RealtimeState == RealtimeState.Refused)
                {
                    StopFollowing(client.RealtimeProblem ?? "the realtime connection refused the token");
                    followGivenUp = true;
                }
                if (refreshFailed)
                {
                    // Back off: the server may be down for a while, and following asks nothing
                    // of it in the meantime.
                    refreshFailed = false;
                    refetchBackoff = refetchBackoff <= 0 ? RefetchRetryFirstSeconds : Math.Min(refetchBackoff * 2, RefetchRetryMaxSeconds);
                    refetchAt = now + refetchBackoff;
                }
                refetchDue = refetchNeeded && now >= refetchAt;
            }
            if (ChunkChanged != null)
                for (int i = 0; i < appliedCount; i++) ChunkChanged(appliedNow[i]);
            if (live)
            {
                if (refetchDue && Refresh()) refetchNeeded = false;
            }
            else if (now >= nextPoll && Refresh())
            {
                nextPoll = now + pollInterval;
                refetchNeeded = false;
            }
        }

        void Drain()
        {
            while (true)
            {
                int editCount, n;
                try
                {
                    n = client.PollChanges(changes, changeEdits, out editCount);
                }
                catch (CubeWalkException e)
                {
                    // The native session was re-initialized (which stops realtime): poll instead.
                    StopFollowing(e.Message);
                    return;
                }
                for (int c = 0; c < n; c++) Take(ref changes[c]);
                if (n < changes.Length) return;
            }
        }

        void Take(ref ChunkChange c)
        {
            if (c.Kind == ChangeKind.Subscribed || c.Kind == ChangeKind.Gap)
            {
                subscribed = true;
                refetchNeeded = true;
                if (c.Kind == ChangeKind.Gap) Gaps++;
                return;
            }
            int i = IndexOf(c.Chunk);
            if (i < 0 || Versions[i] == c.Version) return;
            // A fetch in flight will rewrite this chunk's buffer and version: fetch again after it
            // rather than edit underneath it.
            if (Busy || c.Kind != ChangeKind.Edits || Versions[i] != c.Previous)
            {
                refetchNeeded = true;
                return;
            }
            int[] cubes = Buffers[i];
            for (uint e = c.FirstEdit; e < c.FirstEdit + c.EditCount; e++)
                cubes[changeEdits[e].Index] = changeEdits[e].Value;
            Versions[i] = c.Version;
            Changed[i] = 1;
            AppliedChanges++;
            for (int j = 0; j < appliedCount; j++)
                if (appliedNow[j] == i) return;
            appliedNow[appliedCount++] = i;
        }

        int IndexOf(ChunkKey k)
        {
            int side = 2 * radius + 1;
            int dx = k.X - Center.X + radius, dy = k.Y - Center.Y + radius, dz = k.Z - Center.Z + radius;
            if (dx < 0 || dx >= side || dy < 0 || dy >= side || dz < 0 || dz >= side) return -1;
            int i = (dx * side + dz) * side + dy;
            return Keys[i].Equals(k) ? i : -1;
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
                    Failed();
                    return false;
                }
                catch
                {
                    Busy = false;
                    throw;
                }
            }
        }

        // A refresh failed (under the lock): what it was to bring may be missing, so refetch, after
        // a wait that Tick sets (while following; polling keeps its own pace).
        void Failed()
        {
            refetchNeeded = true;
            refreshFailed = true;
        }

        void OnFetched(FetchRequest r)
        {
            lock (gate)
            {
                Busy = false;
                LastStatus = r.Status;
                LastError = r.Error;
                if (r.Status != CubeWalkStatus.Ok)
                {
                    Failed();
                    return;
                }
                Refreshes++;
                refetchBackoff = 0;
                refetchAt = 0;
            }
            if (ChunkChanged == null) return;
            for (int i = 0; i < Changed.Length; i++)
                if (Changed[i] != 0) ChunkChanged(i);
        }
    }
}
