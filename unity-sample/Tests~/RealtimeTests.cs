using System;
using System.Threading;
using CubeWalk;
using NUnit.Framework;
using static CubeWalk.Tests.TestSupport;

namespace CubeWalk.Tests
{
    /// <summary>Following chunks over the realtime connection (MQTT over WebSocket, the local
    /// gateway's /mqtt gate) through the native plugin, and the polling fallback when realtime is
    /// unavailable. The managed follower (WebGL's): ManagedRealtimeTests, ManagedRealtimeServerTests.</summary>
    [TestFixture]
    public class RealtimeTests
    {
        CubeWalkClient client;
        string world;

        [SetUp]
        public void Start()
        {
            Assert.IsNotNull(Endpoint, "CUBEWALK_TEST_ENDPOINT not set: run Tests/run-tests.sh");
            client = new CubeWalkClient(Endpoint, Token);
            world = "mono-rt-" + Guid.NewGuid().ToString("N").Substring(0, 8);
        }

        [TearDown]
        public void Stop()
        {
            client.Dispose();
        }

        static double Now() { return DateTime.UtcNow.Ticks / 1e7; }

        /// <summary>Frames of Update + Tick until <paramref name="done"/> (20 s at most).</summary>
        void Frames(ChunkNeighbourhood hood, Func<bool> done, double pollInterval = 30)
        {
            var deadline = DateTime.UtcNow.AddSeconds(20);
            while (!done())
            {
                Assert.Less(DateTime.UtcNow, deadline, "condition not reached within 20 s");
                client.Update();
                hood.Tick(Now(), pollInterval);
                Thread.Sleep(2);
            }
        }

        ChunkNeighbourhood Following()
        {
            var hood = new ChunkNeighbourhood(client, world, 1);
            Assert.IsTrue(hood.Follow(RealtimeEndpoint), hood.RealtimeProblem);
            Frames(hood, () => hood.IsFollowing && !hood.Busy && hood.Refreshes > 0);
            return hood;
        }

        void Put(int index, int value)
        {
            var edits = new[] { new CubeEdit { Chunk = new ChunkKey(0, 0, 0), Index = (uint)index, Value = value } };
            client.PutBlocks(world, edits, new ChunkVersion[1]);
        }

        [Test]
        public void SmallEditsAreAppliedInPlaceBigOnesRefetchedAndTheCopyMatchesAFreshFetch()
        {
            var hood = Following();
            int refreshes = hood.Refreshes;
            int changedCalls = 0;
            hood.ChunkChanged = i => changedCalls++;
            // The server publishes what changed once per 100 ms tick, coalesced per chunk: two
            // ticks apart, two changes (one tick would carry both edits in one change).
            Put(5, 7);
            Thread.Sleep(150);
            Put(6, 8);
            Frames(hood, () => hood.Buffers[13][5] == 7 && hood.Buffers[13][6] == 8);
            Assert.AreEqual(refreshes, hood.Refreshes, "small edits cost no fetch");
            Assert.AreEqual(7, hood.Buffers[13][5]);
            Assert.AreEqual(8, hood.Buffers[13][6]);
            Assert.GreaterOrEqual(changedCalls, 1);

            // A big edit (more cubes than a message carries): the neighbourhood refetches.
            var big = new CubeEdit[200];
            for (int i = 0; i < big.Length; i++)
                big[i] = new CubeEdit { Chunk = new ChunkKey(1, 0, 0), Index = (uint)i, Value = i + 1 };
            var results = new ChunkVersion[1];
            client.PutBlocks(world, big, results);
            int east = Array.IndexOf(hood.Keys, new ChunkKey(1, 0, 0));
            Frames(hood, () => hood.Versions[east] == results[0].Version && !hood.Busy);
            Assert.AreEqual(refreshes + 1, hood.Refreshes, "one refetch for the big change");

            var versions = NoVersions(hood.Keys.Length);
            var fresh = Buffers(hood.Keys.Length);
            client.FetchBlocks(world, hood.Keys, versions, fresh);
            CollectionAssert.AreEqual(versions, hood.Versions);
            for (int i = 0; i < fresh.Length; i++)
                CollectionAssert.AreEqual(fresh[i], hood.Buffers[i], "chunk " + hood.Keys[i]);
        }

        /// <summary>Review of issue 20: a refetch that fails while following (here refused, the
        /// server being unreachable is the usual case) is tried again, with backoff, rather than
        /// leaving the chunks stale until the next event.</summary>
        [Test]
        public void ARefetchThatFailsWhileFollowingIsRetried()
        {
            var hood = Following();
            int refreshes = hood.Refreshes;
            // Every HTTP request from now on is refused (the realtime connection stays up).
            client.SetToken("refused-" + Guid.NewGuid().ToString("N"));
            try
            {
                // New chunks: the server confirms the subscription and the neighbourhood refetches.
                Assert.IsTrue(hood.MoveTo(new ChunkKey(1, 0, 0)));
                Frames(hood, () => !hood.Busy && hood.LastError != null);
                Assert.IsTrue(hood.IsFollowing, "stopped following: " + hood.RealtimeProblem);
                // Retried with backoff (0.5 s, then 1 s, ...), not every frame: in 2 s, at most
                // the retries at 0.5 s and 1.5 s.
                int attempts = 0;
                bool wasBusy = false;
                var until = DateTime.UtcNow.AddSeconds(2);
                while (DateTime.UtcNow < until)
                {
                    client.Update();
                    hood.Tick(Now(), 30);
                    if (hood.Busy && !wasBusy) attempts++;
                    wasBusy = hood.Busy;
                    Thread.Sleep(2);
                }
                Assert.GreaterOrEqual(attempts, 1, "the failed refetch was not tried again");
                Assert.LessOrEqual(attempts, 3, "retried without backoff");
                Assert.IsNotNull(hood.LastError);
            }
            finally
            {
                client.SetToken(Token);
            }
            // The poll interval is 30 s and no event will come: only a retry brings the chunks.
            Frames(hood, () => hood.Refreshes > refreshes && !hood.Busy);
            Assert.IsNull(hood.LastError);
            Assert.IsTrue(hood.IsFollowing, "polled instead of following: " + hood.RealtimeProblem);
            Assert.AreNotEqual(CubeWalkClient.NoVersion, hood.Versions[Array.IndexOf(hood.Keys, new ChunkKey(2, 0, 0))],
                "a chunk that came into the neighbourhood was never loaded");
        }

        [Test]
        public void EventsAllocateNothingInTheSteadyState()
        {
            var hood = Following();
            // Warm up the event path (JIT) once.
            Put(1, 1);
            Frames(hood, () => hood.AppliedChanges >= 1);
            int applied = hood.AppliedChanges, refreshes = hood.Refreshes;
            // Another thread plays the other player: its allocations are its own.
            var go = new ManualResetEventSlim();
            var other = new Thread(() =>
            {
                go.Wait();
                for (int i = 0; i < 50; i++)
                {
                    Put(100 + i, i + 1);
                    Thread.Sleep(110); // one publisher tick each: 50 changes, not a few coalesced ones
                }
            });
            other.Start();
            long before = GC.GetAllocatedBytesForCurrentThread();
            go.Set();
            var deadline = DateTime.UtcNow.AddSeconds(30);
            while (hood.Buffers[13][149] != 50 && DateTime.UtcNow < deadline)
            {
                client.Update();
                hood.Tick(Now(), 30);
                Thread.Sleep(1);
            }
            long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
            other.Join();
            Console.WriteLine("realtime: " + (hood.AppliedChanges - applied) + " changes applied in place, " + allocated + " managed bytes");
            Assert.AreEqual(refreshes, hood.Refreshes, "every change applied in place (no refetch)");
            for (int i = 0; i < 50; i++) Assert.AreEqual(i + 1, hood.Buffers[13][100 + i]);
            Assert.GreaterOrEqual(hood.AppliedChanges - applied, 25, "changes, not a few coalesced ones");
            Assert.AreEqual(0, allocated, "managed bytes allocated while applying 50 events");
        }

        [Test]
        public void FollowingResumesAfterTheNativeSessionRestarts()
        {
            var hood = Following();
            client.Shutdown();
            client.Reinitialize();
            // The realtime connection went with the session: polling until it follows again.
            double clock = Now();
            var deadline = DateTime.UtcNow.AddSeconds(20);
            while (!hood.IsFollowing)
            {
                Assert.Less(DateTime.UtcNow, deadline, "never followed again: " + hood.RealtimeProblem);
                clock += 1; // a fast clock: the retry interval passes in a few frames
                client.Update();
                hood.Tick(clock, 0.05);
                Thread.Sleep(5);
            }
            int applied = hood.AppliedChanges;
            Frames(hood, () => !hood.Busy);
            Put(9, 99);
            Frames(hood, () => hood.AppliedChanges > applied);
            Assert.AreEqual(99, hood.Buffers[13][9]);
        }

        [Test]
        public void AnUnreachableRealtimeEndpointFallsBackToPolling()
        {
            var hood = new ChunkNeighbourhood(client, world, 0);
            Assert.IsTrue(hood.Follow("ws://127.0.0.1:9/mqtt"), "starts connecting in the background");
            Frames(hood, () => hood.Refreshes >= 3, 0.05);
            Assert.IsFalse(hood.IsFollowing);
            Assert.AreNotEqual(RealtimeState.Connected, client.RealtimeState);
            Frames(hood, () => client.RealtimeProblem != null, 0.05);
            StringAssert.Contains("127.0.0.1:9", client.RealtimeProblem);
        }

        [Test]
        public void AWrongTokenIsRefusedAndTheNeighbourhoodSaysWhy()
        {
            client.Dispose();
            client = new CubeWalkClient(Endpoint, "wrong-token-0000");
            var hood = new ChunkNeighbourhood(client, world, 0);
            Assert.IsTrue(hood.Follow(RealtimeEndpoint));
            Frames(hood, () => client.RealtimeState == RealtimeState.Refused && hood.RealtimeProblem != null
                && hood.LastStatus == CubeWalkStatus.Unauthorized, 0.05);
            Assert.IsFalse(hood.IsFollowing);
            StringAssert.Contains("401", hood.RealtimeProblem);
            // Refused for good: no more attempts to follow, polling goes on (and says why).
            int refreshFailures = 0;
            for (int i = 0; i < 20; i++)
            {
                client.Update();
                hood.Tick(Now() + 100 * i, 0.05);
                if (hood.LastStatus == CubeWalkStatus.Unauthorized) refreshFailures++;
                Thread.Sleep(5);
            }
            Assert.AreEqual(RealtimeState.Refused, client.RealtimeState, "not restarted after a refusal");
            Assert.Greater(refreshFailures, 0);
        }

        [Test]
        public void PollChangesChecksItsArguments()
        {
            int edits;
            Assert.Throws<ArgumentNullException>(() => client.PollChanges(null, new CubeEdit[64], out edits));
            var e = Assert.Throws<CubeWalkException>(() => client.PollChanges(new ChunkChange[4], new CubeEdit[64], out edits));
            StringAssert.Contains("not started", e.Message);
            client.StartRealtime(RealtimeEndpoint);
            e = Assert.Throws<CubeWalkException>(() => client.PollChanges(new ChunkChange[4], new CubeEdit[63], out edits));
            Assert.AreEqual(CubeWalkStatus.InvalidArgument, e.Status);
            Assert.AreEqual(0, client.PollChanges(new ChunkChange[4], new CubeEdit[64], out edits));
            Assert.Throws<ArgumentOutOfRangeException>(() => client.Follow(world, new ChunkKey[1], 2));
            client.StopRealtime();
        }
    }
}
