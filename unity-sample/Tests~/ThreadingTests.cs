using System;
using System.Collections.Generic;
using System.Threading;
using CubeWalk;
using NUnit.Framework;
using static CubeWalk.Tests.TestSupport;

namespace CubeWalk.Tests
{
    /// <summary>The wrapper used as a game uses it: a loading-screen worker thread and the main
    /// thread at once, several clients, failures and reloads. Real native library, real gateway.</summary>
    [TestFixture]
    public class ThreadingTests
    {

        static double ConcurrencySeconds
        {
            get
            {
                string s = Environment.GetEnvironmentVariable("CUBEWALK_THREAD_SECONDS");
                return string.IsNullOrEmpty(s) ? 5.0 : double.Parse(s);
            }
        }

        readonly List<CubeWalkClient> clients = new List<CubeWalkClient>();

        CubeWalkClient NewClient(string token = null)
        {
            var c = new CubeWalkClient(Endpoint, token ?? Token);
            clients.Add(c);
            return c;
        }

        [TearDown]
        public void Stop()
        {
            foreach (var c in clients) c.Dispose();
            clients.Clear();
        }

        /// <summary>Chunk i of a world tagged <paramref name="tag"/>: three cubes that name both, so a
        /// chunk landing in the wrong buffer (other index or other world) is seen.</summary>
        static CubeEdit[] Marks(int tag, ChunkKey[] keys)
        {
            var edits = new CubeEdit[keys.Length * 3];
            for (int i = 0; i < keys.Length; i++)
            {
                int mark = tag * 10000 + i;
                edits[3 * i] = new CubeEdit { Chunk = keys[i], Index = 0, Value = mark };
                edits[3 * i + 1] = new CubeEdit { Chunk = keys[i], Index = 2048, Value = -mark };
                edits[3 * i + 2] = new CubeEdit { Chunk = keys[i], Index = 4095, Value = mark + 7 };
            }
            return edits;
        }

        static int WrongCubes(int tag, int[][] buffers, int n)
        {
            int wrong = 0;
            for (int i = 0; i < n; i++)
            {
                int mark = tag * 10000 + i;
                int[] b = buffers[i];
                for (int j = 0; j < 4096; j++)
                {
                    int expected = j == 0 ? mark : j == 2048 ? -mark : j == 4095 ? mark + 7 : 0;
                    if (b[j] != expected) wrong++;
                }
            }
            return wrong;
        }

        static ChunkKey[] Keys(int n, int y)
        {
            var k = new ChunkKey[n];
            for (int i = 0; i < n; i++) k[i] = new ChunkKey(i, y, -i);
            return k;
        }

        static void Poison(int[][] buffers, int n)
        {
            for (int i = 0; i < n; i++)
            {
                int[] b = buffers[i];
                for (int j = 0; j < b.Length; j++) b[j] = 0x5eed;
            }
        }

        [Test]
        public void WorkerBlockingFetchesWhileMainThreadStreamsGetOnlyTheirOwnChunks()
        {
            var client = NewClient();
            var workerKeys = Keys(8, 11);
            var mainKeys = Keys(27, 12);
            var putterKeys = Keys(3, 13);
            var results = new ChunkVersion[32];
            client.PutBlocks("mt-worker", Marks(1, workerKeys), results);
            client.PutBlocks("mt-main", Marks(2, mainKeys), results);

            var deadline = DateTime.UtcNow.AddSeconds(ConcurrencySeconds);
            int workerFetches = 0, workerWrong = 0, putterRounds = 0, putterWrong = 0;
            long workerAllocated = -1;
            Exception workerFailure = null, putterFailure = null;

            // A loading-screen worker: blocking fetches of its own world, every cube checked.
            var worker = new Thread(() =>
            {
                try
                {
                    var buffers = Buffers(workerKeys.Length);
                    var versions = new ulong[workerKeys.Length];
                    var changed = new byte[workerKeys.Length];
                    long before = 0;
                    while (DateTime.UtcNow < deadline)
                    {
                        for (int i = 0; i < versions.Length; i++) versions[i] = CubeWalkClient.NoVersion;
                        Poison(buffers, workerKeys.Length);
                        client.FetchBlocks("mt-worker", workerKeys, versions, buffers, changed);
                        workerWrong += WrongCubes(1, buffers, workerKeys.Length);
                        if (++workerFetches == 20) before = GC.GetAllocatedBytesForCurrentThread();
                    }
                    if (workerFetches > 20) workerAllocated = GC.GetAllocatedBytesForCurrentThread() - before;
                }
                catch (Exception e) { workerFailure = e; }
            });

            // A second thread editing and streaming another world with Begin*/Update of its own.
            var putter = new Thread(() =>
            {
                try
                {
                    var put = new PutRequest();
                    var fetch = new FetchRequest();
                    var edits = Marks(3, putterKeys);
                    var putResults = new ChunkVersion[putterKeys.Length];
                    var buffers = Buffers(putterKeys.Length);
                    var versions = new ulong[putterKeys.Length];
                    var changed = new byte[putterKeys.Length];
                    while (DateTime.UtcNow < deadline)
                    {
                        client.BeginPut("mt-putter", edits, putResults, null, put);
                        while (!put.IsDone) { client.Update(); Thread.Sleep(0); }
                        put.ThrowIfFailed();
                        for (int i = 0; i < put.Count; i++)
                            if (!put.Results[i].Key.Equals(putterKeys[i])) putterWrong++;
                        for (int i = 0; i < versions.Length; i++) versions[i] = CubeWalkClient.NoVersion;
                        Poison(buffers, putterKeys.Length);
                        client.BeginFetch("mt-putter", putterKeys, versions, buffers, changed, null, fetch);
                        while (!fetch.IsDone) { client.Update(); Thread.Sleep(0); }
                        fetch.ThrowIfFailed();
                        putterWrong += WrongCubes(3, buffers, putterKeys.Length);
                        putterRounds++;
                    }
                }
                catch (Exception e) { putterFailure = e; }
            });

            worker.Start();
            putter.Start();
            // The main thread: the game loop streaming its neighbourhood with Begin*/Update.
            var mainBuffers = Buffers(mainKeys.Length);
            var mainVersions = new ulong[mainKeys.Length];
            var mainChanged = new byte[mainKeys.Length];
            var request = new FetchRequest();
            int mainFetches = 0, mainWrong = 0;
            while (DateTime.UtcNow < deadline)
            {
                for (int i = 0; i < mainVersions.Length; i++) mainVersions[i] = CubeWalkClient.NoVersion;
                Poison(mainBuffers, mainKeys.Length);
                client.BeginFetch("mt-main", mainKeys, mainVersions, mainBuffers, mainChanged, null, request);
                while (!request.IsDone) { client.Update(); Thread.Sleep(0); }
                request.ThrowIfFailed();
                mainWrong += WrongCubes(2, mainBuffers, mainKeys.Length);
                mainFetches++;
            }
            worker.Join();
            putter.Join();
            Console.WriteLine("threads: worker " + workerFetches + " blocking fetches (" + workerWrong + " wrong cubes, "
                + workerAllocated + " managed bytes after warm-up), main " + mainFetches + " streamed fetches ("
                + mainWrong + " wrong), putter " + putterRounds + " put+fetch rounds (" + putterWrong + " wrong)");
            Assert.IsNull(workerFailure, "worker: " + workerFailure);
            Assert.IsNull(putterFailure, "putter: " + putterFailure);
            Assert.AreEqual(0, workerWrong, "wrong cubes in the worker's blocking fetches");
            Assert.AreEqual(0, mainWrong, "wrong cubes in the main thread's streamed fetches");
            Assert.AreEqual(0, putterWrong, "wrong cubes or keys on the putting thread");
            Assert.Greater(workerFetches, 20);
            Assert.Greater(mainFetches, 20);
            Assert.Greater(putterRounds, 5);
            Assert.AreEqual(0, workerAllocated, "managed bytes allocated by steady-state blocking fetches");
        }

        [Test]
        public void DisposingOneClientLeavesTheOtherWorking()
        {
            var first = NewClient();
            var second = NewClient();
            second.Dispose();
            Assert.IsFalse(second.IsInitialized);
            Assert.IsTrue(first.IsInitialized);
            var versions = NoVersions(1);
            first.FetchBlocks("mt-two", new[] { new ChunkKey(0, 0, 0) }, versions, Buffers(1));
            Assert.AreEqual(0UL, versions[0]);
            first.Dispose();
            var ex = Assert.Throws<CubeWalkException>(() => first.FetchBlocks("mt-two", new[] { new ChunkKey(0, 0, 0) }, NoVersions(1), Buffers(1)));
            Assert.AreEqual(CubeWalkStatus.NotInitialized, ex.Status, "the last one out shut the library down");
        }

        [Test]
        public void DisposingOneClientCancelsOnlyItsOwnRequests()
        {
            var first = NewClient();
            var second = NewClient();
            var mine = first.BeginFetch("mt-own", new[] { new ChunkKey(1, 1, 1) }, NoVersions(1), Buffers(1), new byte[1]);
            var theirs = second.BeginFetch("mt-own", new[] { new ChunkKey(1, 1, 1) }, NoVersions(1), Buffers(1), new byte[1]);
            first.Dispose();
            Assert.IsTrue(mine.IsDone);
            Assert.AreEqual(CubeWalkStatus.Cancelled, mine.Status);
            PumpUntil(second, () => theirs.IsDone);
            Assert.AreEqual(CubeWalkStatus.Ok, theirs.Status);
        }

        [Test]
        public void ASecondClientWithOtherSettingsIsRefusedNotApplied()
        {
            var first = NewClient();
            var ex = Assert.Throws<InvalidOperationException>(() => NewClient("some-other-token"));
            StringAssert.DoesNotContain("some-other-token", ex.Message);
            Assert.Throws<InvalidOperationException>(() =>
                new CubeWalkClient(Endpoint, Token, new CubeWalkOptions { TimeoutMs = 1234 }));
            // Options left unset are the library's defaults: naming a default explicitly is the
            // same settings, so this client may join.
            clients.Add(new CubeWalkClient(Endpoint, Token, new CubeWalkOptions { TimeoutMs = 10000, MaxInFlight = 16 }));
            var versions = NoVersions(1);
            first.FetchBlocks("mt-other", new[] { new ChunkKey(0, 0, 0) }, versions, Buffers(1));
            Assert.AreEqual(0UL, versions[0], "the first client still uses its own token");
        }

        [Test]
        public void UpdateCompletesFinishedRequestsInTheOrderBegun()
        {
            var client = NewClient();
            const int n = 8;
            var order = new List<int>();
            var requests = new FetchRequest[n];
            for (int i = 0; i < n; i++)
            {
                int index = i;
                requests[i] = client.BeginFetch("mt-order", new[] { new ChunkKey(i, 0, 0) }, NoVersions(1), Buffers(1), new byte[1],
                    r => order.Add(index));
            }
            // Give every request time to finish natively, so one Update completes several.
            Thread.Sleep(500);
            client.Update();
            Assert.GreaterOrEqual(order.Count, 2, "several requests finished within 500 ms on loopback");
            PumpUntil(client, () => client.PendingCount == 0);
            for (int i = 0; i < n; i++) Assert.AreEqual(i, order[i], "completion order " + string.Join(",", order));
        }

        [Test]
        public void NeighbourhoodIsNotLeftBusyWhenTheFetchCannotStart()
        {
            var client = NewClient();
            var hood = new ChunkNeighbourhood(client, "mt-hood", 1);
            client.Dispose();
            Assert.IsFalse(hood.Refresh(), "no refresh started");
            Assert.IsFalse(hood.Busy);
            Assert.AreEqual(CubeWalkStatus.NotInitialized, hood.LastStatus);
            StringAssert.Contains("not initialized", hood.LastError.ToLowerInvariant());
            client.Init(Endpoint, Token);
            Assert.IsTrue(hood.Refresh(), "a refresh starts once the client works again");
            PumpUntil(client, () => !hood.Busy);
            Assert.AreEqual(CubeWalkStatus.Ok, hood.LastStatus);
            Assert.IsNull(hood.LastError);
        }

        [Test]
        public void ReinitializingOrSwitchingTransportEndsRequestsCancelledNotLost()
        {
            var managedOptions = new CubeWalkOptions { Transport = CubeWalkTransport.Managed };
            var client = new CubeWalkClient(Endpoint, Token, managedOptions);
            clients.Add(client);
            var first = client.BeginFetch("mt-switch", new[] { new ChunkKey(0, 0, 0) }, NoVersions(1), Buffers(1), new byte[1]);
            client.Init(Endpoint, Token, managedOptions);
            Assert.AreEqual(CubeWalkStatus.Cancelled, first.Status, "managed re-init");
            var second = client.BeginFetch("mt-switch", new[] { new ChunkKey(0, 0, 0) }, NoVersions(1), Buffers(1), new byte[1]);
            client.Init(Endpoint, Token); // to the native plugin
            Assert.AreEqual(CubeWalkStatus.Cancelled, second.Status, "switched to native");
            var third = client.BeginFetch("mt-switch", new[] { new ChunkKey(0, 0, 0) }, NoVersions(1), Buffers(1), new byte[1]);
            client.Init(Endpoint, Token, managedOptions); // and back
            Assert.AreEqual(CubeWalkStatus.Cancelled, third.Status, "switched to managed");
            Assert.AreEqual(0, client.PendingCount);
            var versions = NoVersions(1);
            client.FetchBlocks("mt-switch", new[] { new ChunkKey(0, 0, 0) }, versions, Buffers(1));
            Assert.AreEqual(0UL, versions[0], "the client works after the switches");
        }

        [Test]
        public void ShutdownAllBeforeAReloadCancelsEveryClientsRequests()
        {
            // What the Editor hook runs before an assembly reload.
            var first = NewClient();
            var second = NewClient();
            var buffers = Buffers(2);
            buffers[0][0] = -5;
            buffers[1][0] = -5;
            first.PutBlocks("mt-reload", new[] { new CubeEdit { Chunk = new ChunkKey(0, 0, 0), Index = 0, Value = 9 } }, new ChunkVersion[1]);
            var a = first.BeginFetch("mt-reload", new[] { new ChunkKey(0, 0, 0) }, NoVersions(1), new[] { buffers[0] }, new byte[1]);
            var b = second.BeginFetch("mt-reload", new[] { new ChunkKey(0, 0, 0) }, NoVersions(1), new[] { buffers[1] }, new byte[1]);
            CubeWalkClient.ShutdownAll();
            Assert.AreEqual(CubeWalkStatus.Cancelled, a.Status);
            Assert.AreEqual(CubeWalkStatus.Cancelled, b.Status);
            Assert.IsFalse(first.IsInitialized);
            Assert.IsFalse(second.IsInitialized);
            Thread.Sleep(200);
            first.Update();
            second.Update();
            Assert.AreEqual(-5, buffers[0][0], "nothing written after ShutdownAll returned");
            Assert.AreEqual(-5, buffers[1][0], "nothing written after ShutdownAll returned");
        }
    }
}
