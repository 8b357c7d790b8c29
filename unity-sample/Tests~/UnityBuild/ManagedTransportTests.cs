using System;
using System.Threading;
using System.Threading.Tasks;
using NUnit.Framework;
using UnityEngine;

namespace CubeWalk.UnityBuildTests
{
    /// <summary>
    /// The managed transport as Unity runs it: UnityWebRequest (the stand-in does real HTTP to the
    /// local gateway and, like Unity, throws when touched off the main thread), pumped by the
    /// system the package installs into the player loop. Clients are used from worker and
    /// thread-pool threads, as CubeWalkClient's docs allow, while the test thread plays Unity's
    /// main thread and runs frames; no UnityWebRequest may be left undisposed.
    /// </summary>
    [TestFixture]
    public class ManagedTransportTests
    {
        static string Endpoint { get { return Environment.GetEnvironmentVariable("CUBEWALK_TEST_ENDPOINT"); } }
        static string Token { get { return Environment.GetEnvironmentVariable("CUBEWALK_TEST_TOKEN"); } }

        CubeWalkClient client;

        static CubeWalkOptions Options()
        {
            // A short timeout: a request the pump never starts fails in seconds, not minutes.
            return new CubeWalkOptions { Transport = CubeWalkTransport.Managed, TimeoutMs = 8000 };
        }

        [SetUp]
        public void StartEngine()
        {
            Assert.IsNotNull(Endpoint, "CUBEWALK_TEST_ENDPOINT is not set (run run-tests.sh)");
            TestEngine.BecomeMainThread();
            TestEngine.RunInitializeOnLoadMethods(typeof(CubeWalkClient).Assembly);
            client = new CubeWalkClient(Endpoint, Token, Options());
        }

        [TearDown]
        public void StopClient()
        {
            TestEngine.HoldWebResponses = false;
            if (client != null) client.Dispose();
            // Requests cancelled by Dispose are aborted and disposed by the next frame's pump.
            TestEngine.RunPlayerLoopOnce();
        }

        /// <summary>Runs frames on the main thread (the player loop, then <paramref name="eachFrame"/>)
        /// until <paramref name="done"/>, 20 s at most.</summary>
        static void RunFramesUntil(Func<bool> done, Action eachFrame = null)
        {
            var deadline = DateTime.UtcNow.AddSeconds(20);
            while (!done())
            {
                Assert.Less(DateTime.UtcNow, deadline, "never finished");
                TestEngine.RunPlayerLoopOnce();
                if (eachFrame != null) eachFrame();
                Thread.Sleep(1);
            }
        }

        /// <summary>Work on a thread of its own; what it threw is kept for the test to assert on.</summary>
        sealed class Worker
        {
            readonly Thread thread;
            internal Exception Error;

            internal Worker(Action work)
            {
                thread = new Thread(() =>
                {
                    try { work(); }
                    catch (Exception e) { Error = e; }
                }) { IsBackground = true };
                thread.Start();
            }

            internal bool Done { get { return !thread.IsAlive; } }

            internal void AssertSucceeded()
            {
                Assert.IsTrue(Done, "worker still running");
                Assert.IsNull(Error, "the worker thread threw: " + Error);
            }
        }

        static string NewWorld()
        {
            return "unity-mt-" + Guid.NewGuid().ToString("N").Substring(0, 12);
        }

        static int[][] Buffers(int n)
        {
            var b = new int[n][];
            for (int i = 0; i < n; i++) b[i] = new int[4096];
            return b;
        }

        [Test]
        public void FetchBegunAndPolledOnAWorkerThreadCompletesWhileTheMainThreadRunsFrames()
        {
            FetchRequest request = null;
            var keys = new[] { new ChunkKey(0, 0, 0), new ChunkKey(1, 0, 0) };
            var versions = new[] { CubeWalkClient.NoVersion, CubeWalkClient.NoVersion };
            var changed = new byte[2];
            var worker = new Worker(() =>
            {
                // Begun and completed (Update) on the worker: the game's loading thread.
                request = client.BeginFetch(NewWorld(), keys, versions, Buffers(2), changed);
                var deadline = DateTime.UtcNow.AddSeconds(20);
                while (!request.IsDone && DateTime.UtcNow < deadline)
                {
                    client.Update();
                    Thread.Sleep(1);
                }
            });
            RunFramesUntil(() => worker.Done);
            worker.AssertSucceeded();
            Assert.IsTrue(request.IsDone, "the fetch never completed");
            Assert.AreEqual(CubeWalkStatus.Ok, request.Status, request.Error);
            Assert.AreNotEqual(CubeWalkClient.NoVersion, versions[0], "the versions came back");
            Assert.AreEqual(0, TestEngine.LiveWebRequests, "every UnityWebRequest disposed");
        }

        [Test]
        public void PutAndFetchAsTasksBegunOnTheThreadPool()
        {
            string world = NewWorld();
            var chunk = new ChunkKey(3, 1, -2);
            var results = new ChunkVersion[1];
            Task<PutRequest> put = Task.Run(() => client.PutAsync(world, new[] { new CubeEdit { Chunk = chunk, Index = 77, Value = 42 } }, results));
            RunFramesUntil(() => put.IsCompleted, client.Update);
            Assert.AreEqual(TaskStatus.RanToCompletion, put.Status, put.Exception == null ? "" : put.Exception.ToString());
            Assert.AreEqual(1, put.Result.Count);
            Assert.AreEqual(chunk, results[0].Key);

            var buffers = Buffers(1);
            var versions = new[] { CubeWalkClient.NoVersion };
            Task<FetchRequest> fetch = Task.Run(() => client.FetchAsync(world, new[] { chunk }, versions, buffers, new byte[1]));
            RunFramesUntil(() => fetch.IsCompleted, client.Update);
            Assert.AreEqual(TaskStatus.RanToCompletion, fetch.Status, fetch.Exception == null ? "" : fetch.Exception.ToString());
            Assert.AreEqual(42, buffers[0][77], "the cube put from the thread pool");
            Assert.AreEqual(results[0].Version, versions[0]);
            Assert.AreEqual(0, TestEngine.LiveWebRequests, "every UnityWebRequest disposed");
        }

        static System.Net.HttpListener Listen(out string url)
        {
            var probe = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
            probe.Start();
            int port = ((System.Net.IPEndPoint)probe.LocalEndpoint).Port;
            probe.Stop();
            url = "http://127.0.0.1:" + port + "/";
            var listener = new System.Net.HttpListener();
            listener.Prefixes.Add(url);
            listener.Start();
            return listener;
        }

        [Test]
        public void ARedirectIsNeverFollowedSoTheTokenStaysWithOurServer()
        {
            // A server (or a proxy in its place) answers 302 to another host: the token header
            // must not go there, and the call fails clearly instead.
            string elsewhereUrl, redirectorUrl;
            var elsewhere = Listen(out elsewhereUrl);
            var redirector = Listen(out redirectorUrl);
            string leaked = null;
            try
            {
                elsewhere.BeginGetContext(r =>
                {
                    try
                    {
                        var c = elsewhere.EndGetContext(r);
                        leaked = c.Request.Headers["token"] ?? "";
                        c.Response.Close();
                    }
                    catch (Exception) { }
                }, null);
                redirector.BeginGetContext(r =>
                {
                    var c = redirector.EndGetContext(r);
                    c.Response.StatusCode = 302;
                    c.Response.RedirectLocation = elsewhereUrl + "prod/cubewalkblocks";
                    c.Response.Close();
                }, null);
                var redirected = new CubeWalkClient(redirectorUrl + "prod/cubewalkblocks", Token, Options());
                try
                {
                    var e = Assert.Throws<CubeWalkException>(() =>
                        redirected.FetchBlocks("default", new[] { new ChunkKey(0, 0, 0) }, new[] { CubeWalkClient.NoVersion }, Buffers(1)));
                    Assert.AreEqual(CubeWalkStatus.Protocol, e.Status, e.Message);
                    StringAssert.Contains("302", e.Message);
                }
                finally
                {
                    redirected.Dispose();
                }
                Thread.Sleep(200);
                Assert.IsNull(leaked, "the redirect was followed and the token sent elsewhere");
                Assert.AreEqual(0, TestEngine.LiveWebRequests, "every UnityWebRequest disposed");
            }
            finally
            {
                elsewhere.Close();
                redirector.Close();
            }
        }

        [Test]
        public void BlockingCallsOnTheMainThreadPumpTheirOwnRequests()
        {
            // No frame runs while the main thread blocks: the calls must not wait for one.
            string world = NewWorld();
            var chunk = new ChunkKey(-1, 2, 5);
            int frames = TestEngine.FrameCount;
            var results = new ChunkVersion[1];
            Assert.AreEqual(1, client.PutBlocks(world, new[] { new CubeEdit { Chunk = chunk, Index = 9, Value = 5 } }, results));
            var buffers = Buffers(1);
            var versions = new[] { CubeWalkClient.NoVersion };
            client.FetchBlocks(world, new[] { chunk }, versions, buffers);
            Assert.AreEqual(5, buffers[0][9]);
            Assert.AreEqual(results[0].Version, versions[0]);
            Assert.AreEqual(frames, TestEngine.FrameCount, "no frame ran");
            Assert.AreEqual(0, TestEngine.LiveWebRequests, "every UnityWebRequest disposed");
        }

        [Test]
        public void BlockingCallsOnAWorkerThreadWaitForTheMainThreadsFrames()
        {
            string world = NewWorld();
            var chunk = new ChunkKey(6, 0, 6);
            var buffers = Buffers(1);
            var versions = new[] { CubeWalkClient.NoVersion };
            int frames = TestEngine.FrameCount;
            var worker = new Worker(() =>
            {
                client.PutBlocks(world, new[] { new CubeEdit { Chunk = chunk, Index = 4095, Value = -3 } }, new ChunkVersion[1]);
                client.FetchBlocks(world, new[] { chunk }, versions, buffers);
            });
            RunFramesUntil(() => worker.Done);
            worker.AssertSucceeded();
            Assert.AreEqual(-3, buffers[0][4095]);
            Assert.Greater(TestEngine.FrameCount, frames, "the main thread's frames did the requests");
            Assert.AreEqual(0, TestEngine.LiveWebRequests, "every UnityWebRequest disposed");
        }

        [Test]
        public void GuestLoginThroughTheManagedTransport()
        {
            string secret = CubeWalkClient.NewDeviceSecret();
            // Begun on a worker thread, polled by the main thread's frames.
            GuestLoginRequest login = null;
            var worker = new Worker(() => login = CubeWalkClient.BeginLoginGuest(Endpoint, secret, Options()));
            RunFramesUntil(() => worker.Done);
            worker.AssertSucceeded();
            RunFramesUntil(() => login.Poll());
            Assert.AreEqual(CubeWalkStatus.Ok, login.Status, login.Error);
            StringAssert.StartsWith("guest-", login.Session.Player);

            // Blocking, on the main thread: the same guest again.
            GuestSession again = CubeWalkClient.LoginGuest(Endpoint, secret, Options());
            Assert.AreEqual(login.Session.Player, again.Player);

            // A managed client with the guest's token.
            client.Dispose();
            client = new CubeWalkClient(Endpoint, again.Token, Options());
            var versions = new[] { CubeWalkClient.NoVersion };
            client.FetchBlocks(NewWorld(), new[] { new ChunkKey(0, 0, 0) }, versions, Buffers(1));
            Assert.AreNotEqual(CubeWalkClient.NoVersion, versions[0]);
            Assert.AreEqual(0, TestEngine.LiveWebRequests, "every UnityWebRequest disposed");
        }

        [Test]
        public void RequestsStartOnTheNextFrameAndCancelledOnesAreDisposed()
        {
            string world = NewWorld();
            var keys = new[] { new ChunkKey(0, 0, 0) };
            int created = TestEngine.WebRequestsCreated;

            // Cancelled before any frame: no UnityWebRequest is ever made for it.
            FetchRequest early = client.BeginFetch(world, keys, new[] { CubeWalkClient.NoVersion }, Buffers(1), new byte[1]);
            Assert.AreEqual(created, TestEngine.WebRequestsCreated, "nothing is sent before the next frame");
            client.Cancel(early);
            TestEngine.RunPlayerLoopOnce();
            Assert.AreEqual(CubeWalkStatus.Cancelled, early.Status);
            Assert.AreEqual(created, TestEngine.WebRequestsCreated, "a request cancelled before it started is never made");

            // Cancelled while running: aborted and disposed by the next frame, which sends its
            // fence (the put may have reached the server), disposed in turn once answered. The
            // answers are held meanwhile, so neither the put nor its fence can end early.
            TestEngine.HoldWebResponses = true;
            PutRequest put = client.BeginPut(world, new[] { new CubeEdit { Chunk = keys[0], Index = 1, Value = 1 } }, new ChunkVersion[1]);
            TestEngine.RunPlayerLoopOnce();
            Assert.AreEqual(created + 1, TestEngine.WebRequestsCreated, "the frame sent it");
            client.Cancel(put);
            Assert.AreEqual(CubeWalkStatus.Cancelled, put.Status);
            TestEngine.RunPlayerLoopOnce();
            Assert.AreEqual(created + 2, TestEngine.WebRequestsCreated, "the frame sent the put's fence");
            Assert.AreEqual(1, TestEngine.LiveWebRequests, "the aborted request was disposed");
            TestEngine.HoldWebResponses = false;
            RunFramesUntil(() => TestEngine.LiveWebRequests == 0);

            // Still working afterwards.
            FetchRequest late = client.BeginFetch(world, keys, new[] { CubeWalkClient.NoVersion }, Buffers(1), new byte[1]);
            RunFramesUntil(() => late.IsDone, client.Update);
            Assert.AreEqual(CubeWalkStatus.Ok, late.Status, late.Error);
            Assert.AreEqual(0, TestEngine.LiveWebRequests, "every UnityWebRequest disposed");
        }

        [Test]
        public void TheEditorsUpdateDrivesRequestsOutsidePlayMode()
        {
            // Edit mode: no player loop runs, the Editor's update does ([InitializeOnLoad] hooks).
            TestEngine.RunInitializeOnLoadClasses(typeof(CubeWalkClient).Assembly);
            int frames = TestEngine.FrameCount;
            FetchRequest r = client.BeginFetch(NewWorld(), new[] { new ChunkKey(2, 2, 2) }, new[] { CubeWalkClient.NoVersion }, Buffers(1), new byte[1]);
            var deadline = DateTime.UtcNow.AddSeconds(20);
            while (!r.IsDone && DateTime.UtcNow < deadline)
            {
                TestEngine.RunEditorUpdateOnce();
                client.Update();
                Thread.Sleep(1);
            }
            Assert.AreEqual(CubeWalkStatus.Ok, r.Status, r.Error);
            Assert.AreEqual(frames, TestEngine.FrameCount, "no player loop frame ran");
            Assert.AreEqual(0, TestEngine.LiveWebRequests, "every UnityWebRequest disposed");
        }

        /// <summary>Realtime on the managed transport as Unity runs it (WebGL's follower, here over
        /// ClientWebSocket with the token in the URL's query): the package's player-loop system
        /// drives it on the main thread, and nothing else does (client.Update never pumps it in a
        /// Unity build), while a worker thread plays another player. Its edits arrive in place,
        /// without a fetch.</summary>
        [Test]
        public void RealtimeFollowsThroughThePlayerLoopOnTheMainThread()
        {
            string world = NewWorld();
            string realtime = Endpoint.Replace("http://", "ws://").Replace("/prod/cubewalkblocks", "/mqtt");
            var hood = new ChunkNeighbourhood(client, world, 0);
            Assert.IsTrue(hood.Follow(realtime), hood.RealtimeProblem);
            // Without frames nothing connects, however long it waits.
            for (int i = 0; i < 50; i++)
            {
                client.Update();
                Thread.Sleep(5);
            }
            Assert.AreEqual(RealtimeState.Connecting, client.RealtimeState, "connected without a frame");
            Action frame = () =>
            {
                client.Update();
                hood.Tick(DateTime.UtcNow.Ticks / 1e7, 30);
            };
            RunFramesUntil(() => hood.IsFollowing && !hood.Busy && hood.Refreshes > 0, frame);
            int refreshes = hood.Refreshes;
            var other = new CubeWalkClient(Endpoint, Token, Options());
            try
            {
                var worker = new Worker(() => other.PutBlocks(world, new[] { new CubeEdit { Chunk = new ChunkKey(0, 0, 0), Index = 5, Value = 7 } }, new ChunkVersion[1]));
                RunFramesUntil(() => worker.Done && hood.Buffers[0][5] == 7, frame);
                worker.AssertSucceeded();
            }
            finally
            {
                other.Dispose();
            }
            Assert.AreEqual(refreshes, hood.Refreshes, "applied in place, not fetched");
            Assert.GreaterOrEqual(hood.AppliedChanges, 1);
            Assert.AreEqual(0, TestEngine.LiveWebRequests, "every UnityWebRequest disposed");
        }
    }
}
