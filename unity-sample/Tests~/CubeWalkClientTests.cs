using System;
using System.Threading;
using CubeWalk;
using NUnit.Framework;
using static CubeWalk.Tests.TestSupport;

namespace CubeWalk.Tests
{
    /// <summary>The wrapper and generated bindings against the real native library and a local
    /// gateway (started by run-tests.sh; endpoint and token in CUBEWALK_TEST_ENDPOINT/TOKEN).</summary>
    [TestFixture(CubeWalkTransport.Native)]
    [TestFixture(CubeWalkTransport.Managed)]
    public class CubeWalkClientTests
    {
        readonly CubeWalkTransport transport;

        /// <summary>The same suite for the native plugin and for the managed (WebGL) transport,
        /// which speaks through HttpClient here, standing in for UnityWebRequest.</summary>
        public CubeWalkClientTests(CubeWalkTransport transport) { this.transport = transport; }

        CubeWalkOptions Options() { return new CubeWalkOptions { Transport = transport }; }


        CubeWalkClient client;

        [SetUp]
        public void Start()
        {
            Assert.IsNotNull(Endpoint, "CUBEWALK_TEST_ENDPOINT not set: run Tests/run-tests.sh");
            client = new CubeWalkClient(Endpoint, Token, Options());
        }

        [TearDown]
        public void Stop()
        {
            client.Dispose();
        }

        void PumpUntil(Func<bool> done) { TestSupport.PumpUntil(client, done); }

        [Test]
        public void PutThenFetchRoundTripsIntoIntArrays()
        {
            var chunk = new ChunkKey(2, -1, 3);
            var edits = new[] { new CubeEdit(chunk, 1, 2, 3, 7), new CubeEdit { Chunk = chunk, Index = 4095, Value = -9 } };
            var results = new ChunkVersion[1];
            Assert.AreEqual(1, client.PutBlocks("mono-roundtrip", edits, results));
            Assert.AreNotEqual(0UL, results[0].Version, "a chunk with cubes is not at the all-air version");
            Assert.AreEqual(chunk, results[0].Key);

            var buffers = Buffers(1);
            var versions = NoVersions(1);
            var changed = new byte[1];
            client.FetchBlocks("mono-roundtrip", new[] { chunk }, versions, buffers, changed);
            Assert.AreEqual(results[0].Version, versions[0], "the fetch reports the version the put answered");
            Assert.AreEqual(1, changed[0]);
            Assert.AreEqual(7, buffers[0][1 * 256 + 3 * 16 + 2]);
            Assert.AreEqual(-9, buffers[0][4095]);
            Assert.AreEqual(0, buffers[0][0]);
        }

        [Test]
        public void RefetchAtCurrentVersionIsNotModified()
        {
            var chunk = new ChunkKey(0, 0, 0);
            var put = new ChunkVersion[1];
            client.PutBlocks("mono-notmod", new[] { new CubeEdit { Chunk = chunk, Index = 5, Value = 3 } }, put);
            var buffers = Buffers(2);
            var keys = new[] { chunk, new ChunkKey(9, 9, 9) };
            var versions = NoVersions(2);
            var changed = new byte[2];
            client.FetchBlocks("mono-notmod", keys, versions, buffers, changed);
            CollectionAssert.AreEqual(new ulong[] { put[0].Version, 0 }, versions);
            buffers[0][5] = 1234;
            client.FetchBlocks("mono-notmod", keys, versions, buffers, changed);
            CollectionAssert.AreEqual(new byte[] { 0, 0 }, changed);
            Assert.AreEqual(1234, buffers[0][5], "unchanged chunk's buffer is left alone");
        }

        [Test]
        public void WrongTokenRaisesUnauthorized()
        {
            client.Init(Endpoint, "definitely-wrong-token", Options());
            var ex = Assert.Throws<CubeWalkException>(() =>
                client.FetchBlocks("w", new[] { new ChunkKey(0, 0, 0) }, NoVersions(1), Buffers(1)));
            Assert.AreEqual(CubeWalkStatus.Unauthorized, ex.Status);
            StringAssert.DoesNotContain("definitely-wrong-token", ex.Message);
        }

        [Test]
        public void BadArgumentsRaiseInsteadOfCrashing()
        {
            Assert.Throws<ArgumentException>(() => client.FetchBlocks("w", new ChunkKey[0], new ulong[0], new int[0][]));
            Assert.Throws<ArgumentException>(() => client.FetchBlocks("w", new[] { new ChunkKey() }, NoVersions(1), new[] { new int[10] }));
            var ex = Assert.Throws<CubeWalkException>(() =>
                client.FetchBlocks("bad world id!", new[] { new ChunkKey() }, NoVersions(1), Buffers(1)));
            Assert.AreEqual(CubeWalkStatus.InvalidArgument, ex.Status);
            ex = Assert.Throws<CubeWalkException>(() =>
                client.PutBlocks("w", new[] { new CubeEdit { Index = 4096 } }, new ChunkVersion[1]));
            Assert.AreEqual(CubeWalkStatus.InvalidArgument, ex.Status);
            ex = Assert.Throws<CubeWalkException>(() => client.Init("http://example.com/prod/cubewalkblocks", Token, Options()));
            Assert.AreEqual(CubeWalkStatus.InvalidArgument, ex.Status);
            client.Init(Endpoint, Token, Options());
        }

        [Test]
        public void NonBlockingRequestPolledToCompletion()
        {
            var chunk = new ChunkKey(4, 4, 4);
            PutRequest put = client.BeginPut("mono-async", new[] { new CubeEdit { Chunk = chunk, Index = 0, Value = 11 } }, new ChunkVersion[1]);
            PumpUntil(() => put.IsDone);
            put.ThrowIfFailed();
            Assert.AreEqual(1, put.Count);
            Assert.AreNotEqual(0UL, put.Results[0].Version);

            int completedOnThread = -1;
            var buffers = Buffers(1);
            FetchRequest fetch = client.BeginFetch("mono-async", new[] { chunk }, NoVersions(1), buffers, new byte[1],
                r => completedOnThread = Thread.CurrentThread.ManagedThreadId);
            Assert.AreEqual(0, buffers[0][0], "not written before Update");
            PumpUntil(() => fetch.IsDone);
            Assert.AreEqual(CubeWalkStatus.Ok, fetch.Status);
            Assert.AreEqual(11, buffers[0][0]);
            Assert.AreEqual(Thread.CurrentThread.ManagedThreadId, completedOnThread, "completion on the polling thread");
        }

        [Test]
        public void TaskHelpersCompleteFromUpdate()
        {
            var chunk = new ChunkKey(5, 5, 5);
            var putTask = client.PutAsync("mono-task", new[] { new CubeEdit { Chunk = chunk, Index = 1, Value = 2 } }, new ChunkVersion[1]);
            PumpUntil(() => putTask.IsCompleted);
            Assert.AreNotEqual(0UL, putTask.Result.Results[0].Version);
            var buffers = Buffers(1);
            var fetchTask = client.FetchAsync("mono-task", new[] { chunk }, NoVersions(1), buffers, new byte[1]);
            PumpUntil(() => fetchTask.IsCompleted);
            Assert.AreEqual(2, buffers[0][1]);

            client.Init(Endpoint, "another-wrong-token", Options());
            var failing = client.FetchAsync("mono-task", new[] { chunk }, NoVersions(1), buffers, new byte[1]);
            PumpUntil(() => failing.IsCompleted);
            Assert.IsTrue(failing.IsFaulted);
            Assert.AreEqual(CubeWalkStatus.Unauthorized, ((CubeWalkException)failing.Exception.InnerException).Status);
        }

        [Test]
        public void CancellingTheTokenCancelsTheNativeRequest()
        {
            var buffers = Buffers(27);
            for (int i = 0; i < 27; i++) buffers[i][0] = -7;
            var keys = new ChunkKey[27];
            for (int i = 0; i < 27; i++) keys[i] = new ChunkKey(i, 101, 0);
            client.PutBlocks("mono-token", new[] { new CubeEdit { Chunk = keys[0], Index = 0, Value = 1 } }, new ChunkVersion[1]);
            var cts = new CancellationTokenSource();
            var task = client.FetchAsync("mono-token", keys, NoVersions(27), buffers, new byte[27], cts.Token);
            cts.Cancel();
            Assert.IsTrue(task.IsCanceled, "cancelled at once, from the cancelling thread");
            Assert.AreEqual(0, client.PendingCount);
            Thread.Sleep(200);
            client.Update();
            for (int i = 0; i < 27; i++) Assert.AreEqual(-7, buffers[i][0], "nothing written after cancellation");

            var already = client.PutAsync("mono-token", new[] { new CubeEdit { Chunk = keys[1], Index = 0, Value = 2 } },
                new ChunkVersion[1], cts.Token);
            Assert.IsTrue(already.IsCanceled, "a token cancelled before the call starts nothing");
            Assert.AreEqual(0, client.PendingCount);
        }

        [Test]
        public void CancelCompletesAtOnceAndLeavesBuffersAlone()
        {
            var buffers = Buffers(27);
            for (int i = 0; i < 27; i++) buffers[i][0] = -5;
            var keys = new ChunkKey[27];
            for (int i = 0; i < 27; i++) keys[i] = new ChunkKey(i, 100, 0);
            client.PutBlocks("mono-cancel", new[] { new CubeEdit { Chunk = keys[0], Index = 0, Value = 1 } }, new ChunkVersion[1]);
            FetchRequest r = client.BeginFetch("mono-cancel", keys, NoVersions(27), buffers, new byte[27]);
            client.Cancel(r);
            Assert.IsTrue(r.IsDone);
            Assert.AreEqual(CubeWalkStatus.Cancelled, r.Status);
            Thread.Sleep(200);
            client.Update();
            for (int i = 0; i < 27; i++) Assert.AreEqual(-5, buffers[i][0]);
        }

        [Test]
        public void ShutdownThenInitAgainLikeTwoPlaySessions()
        {
            for (int session = 0; session < 2; session++)
            {
                var buffers = Buffers(1);
                FetchRequest inFlight = client.BeginFetch("mono-play", new[] { new ChunkKey(session, 0, 0) }, NoVersions(1), buffers, new byte[1]);
                client.Shutdown();
                Assert.IsTrue(inFlight.IsDone);
                Assert.AreEqual(CubeWalkStatus.Cancelled, inFlight.Status);
                Assert.IsFalse(client.IsInitialized);
                client.Reinitialize();
                Assert.IsTrue(client.IsInitialized);
                var versions = NoVersions(1);
                client.FetchBlocks("mono-play", new[] { new ChunkKey(session, 0, 0) }, versions, buffers);
                Assert.AreEqual(0UL, versions[0]);
            }
        }

        [Test]
        public void ManyRequestsInFlight()
        {
            const int n = 64;
            var requests = new PutRequest[n];
            for (int i = 0; i < n; i++)
                requests[i] = client.BeginPut("mono-many", new[] { new CubeEdit { Chunk = new ChunkKey(i, 0, 0), Index = 7, Value = i } }, new ChunkVersion[1]);
            Assert.AreEqual(n, client.PendingCount);
            PumpUntil(() => client.PendingCount == 0);
            foreach (var r in requests) r.ThrowIfFailed();
            var keys = new ChunkKey[n];
            for (int i = 0; i < n; i++) keys[i] = new ChunkKey(i, 0, 0);
            var buffers = Buffers(n);
            client.FetchBlocks("mono-many", keys, NoVersions(n), buffers);
            for (int i = 0; i < n; i++) Assert.AreEqual(i, buffers[i][7]);
        }

        [Test]
        public void FetchesLargerThanOneRequestAreSplitAndComplete()
        {
            // 300 chunks with long coordinates (near the world's bounds: |x|, |z| up to 65536,
            // |y| up to 4096) and held versions: more than one request's 256 chunks and, with
            // the versions held, more than its URL budget, on both transports.
            const int n = 300;
            var keys = new ChunkKey[n];
            for (int i = 0; i < n; i++) keys[i] = new ChunkKey(-65536 + i, -4096 + i, 65536 - 7 * i);
            var edits = new CubeEdit[n / 10];
            for (int j = 0; j < edits.Length; j++) edits[j] = new CubeEdit { Chunk = keys[j * 10], Index = (uint)j, Value = 100 + j };
            client.PutBlocks("mono-split", edits, new ChunkVersion[edits.Length]);
            var buffers = Buffers(n);
            var versions = NoVersions(n);
            var changed = new byte[n];
            client.FetchBlocks("mono-split", keys, versions, buffers, changed);
            for (int i = 0; i < n; i++)
            {
                bool edited = i % 10 == 0;
                Assert.AreEqual(edited ? 100 + i / 10 : 0, buffers[i][edited ? i / 10 : 0], "chunk " + i);
                Assert.AreEqual((byte)1, changed[i], "no version held: every buffer written");
            }
            // Again holding every version: nothing changes, nothing is written.
            buffers[0][0] = 12345;
            client.FetchBlocks("mono-split", keys, versions, buffers, changed);
            for (int i = 0; i < n; i++) Assert.AreEqual(0, changed[i]);
            Assert.AreEqual(12345, buffers[0][0]);
        }

        [Test]
        public void SteadyStatePollingAllocatesNothing()
        {
            if (transport == CubeWalkTransport.Managed)
                Assert.Ignore("the managed (WebGL) transport allocates per request; zero allocation is the native plugin's");
            // The sample's loop: a neighbourhood refreshed again as soon as each refresh lands,
            // with Update called every "frame".
            client.PutBlocks("mono-alloc", new[] { new CubeEdit { Chunk = new ChunkKey(0, 0, 0), Index = 0, Value = 1 } }, new ChunkVersion[1]);
            var hood = new ChunkNeighbourhood(client, "mono-alloc", 1);
            hood.Refresh();
            PumpUntil(() => !hood.Busy);
            Assert.AreEqual(CubeWalkStatus.Ok, hood.LastStatus);
            Assert.AreEqual(1, hood.Buffers[13][0], "centre chunk loaded");
            // Warm up every path (JIT) once more before measuring.
            hood.Refresh();
            PumpUntil(() => !hood.Busy);

            long before = GC.GetAllocatedBytesForCurrentThread();
            int refreshesBefore = hood.Refreshes;
            for (int frame = 0; frame < 1000; frame++)
            {
                client.Update();
                if (!hood.Busy) hood.Refresh();
                Thread.Sleep(1); // a frame's worth of other work, so refreshes complete and restart
            }
            long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
            PumpUntil(() => !hood.Busy);
            Console.WriteLine("steady state: 1000 polls, " + (hood.Refreshes - refreshesBefore) + " refreshes, " + allocated + " managed bytes");
            Assert.AreEqual(0, allocated, "managed bytes allocated across 1000 steady-state polls");
            Assert.Greater(hood.Refreshes - refreshesBefore, 10, "refreshes completed and restarted during the loop");
        }

        [Test]
        public void NeighbourhoodMovesKeepingLoadedChunks()
        {
            var put = new ChunkVersion[1];
            client.PutBlocks("mono-move", new[] { new CubeEdit { Chunk = new ChunkKey(1, 0, 0), Index = 0, Value = 42 } }, put);
            var hood = new ChunkNeighbourhood(client, "mono-move", 1);
            hood.Refresh();
            PumpUntil(() => !hood.Busy);
            int[] chunk100 = hood.Buffers[Array.IndexOf(hood.Keys, new ChunkKey(1, 0, 0))];
            Assert.AreEqual(42, chunk100[0]);
            Assert.IsTrue(hood.MoveTo(new ChunkKey(1, 0, 0)));
            int i = Array.IndexOf(hood.Keys, new ChunkKey(1, 0, 0));
            Assert.AreSame(chunk100, hood.Buffers[i], "a chunk still in range keeps its buffer");
            Assert.AreEqual(put[0].Version, hood.Versions[i]);
            Assert.AreEqual(CubeWalkClient.NoVersion, hood.Versions[Array.IndexOf(hood.Keys, new ChunkKey(2, 1, 1))]);
            hood.Refresh();
            PumpUntil(() => !hood.Busy);
            Assert.AreEqual(CubeWalkStatus.Ok, hood.LastStatus);
        }
    }
}
