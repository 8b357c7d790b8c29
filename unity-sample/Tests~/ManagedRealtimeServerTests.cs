using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;
using System.Threading;
using CubeWalk;
using CubeWalk.Managed;
using NUnit.Framework;
using static CubeWalk.Tests.TestSupport;

namespace CubeWalk.Tests
{
    /// <summary>
    /// The managed realtime follower (what WebGL builds run) against a real <c>cubewalk-server
    /// serve</c>: MQTT over the WebSocket frames a browser sends (System.Net.WebSockets standing
    /// in for the browser's WebSocket, the token in the URL's query string, as a browser must),
    /// through the gate to the embedded broker. The run-tests.sh gateway, or a serve of the test's
    /// own where it must be killed or needs a signing key.
    /// </summary>
    [TestFixture]
    public class ManagedRealtimeServerTests
    {
        readonly List<CubeWalkClient> clients = new List<CubeWalkClient>();
        readonly List<LocalServe> serves = new List<LocalServe>();
        string world;

        static CubeWalkOptions Managed() { return new CubeWalkOptions { Transport = CubeWalkTransport.Managed }; }

        CubeWalkClient Client(string endpoint = null, string token = null)
        {
            var c = new CubeWalkClient(endpoint ?? Endpoint, token ?? Token, Managed());
            clients.Add(c);
            return c;
        }

        [SetUp]
        public void Start()
        {
            Assert.IsNotNull(Endpoint, "CUBEWALK_TEST_ENDPOINT not set: run Tests/run-tests.sh");
            world = "mono-mrt-" + Guid.NewGuid().ToString("N").Substring(0, 8);
        }

        [TearDown]
        public void Stop()
        {
            foreach (CubeWalkClient c in clients) c.Dispose();
            clients.Clear();
            foreach (LocalServe s in serves) s.Dispose();
            serves.Clear();
        }

        static double Now() { return DateTime.UtcNow.Ticks / 1e7; }

        /// <summary>Frames of Update + Tick until <paramref name="done"/> (<paramref name="seconds"/> at most).</summary>
        static void Frames(CubeWalkClient client, ChunkNeighbourhood hood, Func<bool> done, double pollInterval = 30, double seconds = 20)
        {
            var deadline = DateTime.UtcNow.AddSeconds(seconds);
            while (!done())
            {
                Assert.Less(DateTime.UtcNow, deadline, "condition not reached within " + seconds + " s (realtime: "
                    + client.RealtimeState + ", " + client.RealtimeProblem + ")");
                client.Update();
                if (hood != null) hood.Tick(Now(), pollInterval);
                Thread.Sleep(2);
            }
        }

        static string Realtime(string http)
        {
            return http.Replace("http://", "ws://").Replace("/prod/cubewalkblocks", "/mqtt");
        }

        ChunkNeighbourhood Following(CubeWalkClient client, string realtime, string inWorld = null, int radius = 1)
        {
            var hood = new ChunkNeighbourhood(client, inWorld ?? world, radius);
            Assert.IsTrue(hood.Follow(realtime), hood.RealtimeProblem);
            Frames(client, hood, () => hood.IsFollowing && !hood.Busy && hood.Refreshes > 0);
            return hood;
        }

        static void Put(CubeWalkClient by, string inWorld, ChunkKey chunk, int index, int value)
        {
            by.PutBlocks(inWorld, new[] { new CubeEdit { Chunk = chunk, Index = (uint)index, Value = value } }, new ChunkVersion[1]);
        }

        /// <summary>Whether the neighbourhood's copy equals what a fresh fetch (by another client,
        /// so the follower's write sequences are not touched) answers.</summary>
        static bool SameAsFresh(CubeWalkClient other, string inWorld, ChunkNeighbourhood hood, out string difference)
        {
            var versions = NoVersions(hood.Keys.Length);
            var fresh = Buffers(hood.Keys.Length);
            other.FetchBlocks(inWorld, hood.Keys, versions, fresh);
            for (int i = 0; i < fresh.Length; i++)
            {
                if (versions[i] != hood.Versions[i])
                {
                    difference = "chunk " + hood.Keys[i] + ": version " + hood.Versions[i] + ", fresh " + versions[i];
                    return false;
                }
                for (int j = 0; j < 4096; j++)
                    if (fresh[i][j] != hood.Buffers[i][j])
                    {
                        difference = "chunk " + hood.Keys[i] + " cube " + j + ": " + hood.Buffers[i][j] + ", fresh " + fresh[i][j];
                        return false;
                    }
            }
            difference = null;
            return true;
        }

        void AssertConverges(CubeWalkClient client, CubeWalkClient other, string inWorld, ChunkNeighbourhood hood)
        {
            string difference = null;
            var deadline = DateTime.UtcNow.AddSeconds(20);
            var nextCheck = DateTime.MinValue;
            while (true)
            {
                client.Update();
                hood.Tick(Now(), 30);
                if (DateTime.UtcNow >= nextCheck && !hood.Busy)
                {
                    if (SameAsFresh(other, inWorld, hood, out difference)) return;
                    nextCheck = DateTime.UtcNow.AddMilliseconds(300);
                }
                Assert.Less(DateTime.UtcNow, deadline, "the followed copy never matched a fresh fetch: " + difference);
                Thread.Sleep(2);
            }
        }

        [Test]
        public void TheNeighbourhoodOnTheManagedTransportFollowsInsteadOfPolling()
        {
            CubeWalkClient client = Client(), other = Client();
            ChunkNeighbourhood hood = Following(client, RealtimeEndpoint);
            Assert.AreEqual(RealtimeState.Connected, client.RealtimeState);
            Assert.IsNull(hood.RealtimeProblem);
            int refreshes = hood.Refreshes;
            Put(other, world, new ChunkKey(0, 0, 0), 5, 7);
            Thread.Sleep(150); // another publisher tick
            Put(other, world, new ChunkKey(0, 0, 0), 6, 8);
            Frames(client, hood, () => hood.Buffers[13][5] == 7 && hood.Buffers[13][6] == 8);
            Assert.GreaterOrEqual(hood.AppliedChanges, 1);
            Assert.AreEqual(refreshes, hood.Refreshes, "small edits cost no fetch: following, not polling");

            // A big edit (more cubes than a change carries): refetched.
            var big = new CubeEdit[200];
            for (int i = 0; i < big.Length; i++)
                big[i] = new CubeEdit { Chunk = new ChunkKey(1, 0, 0), Index = (uint)i, Value = i + 1 };
            var results = new ChunkVersion[1];
            other.PutBlocks(world, big, results);
            int east = Array.IndexOf(hood.Keys, new ChunkKey(1, 0, 0));
            Frames(client, hood, () => hood.Versions[east] == results[0].Version && !hood.Busy);
            Assert.AreEqual(refreshes + 1, hood.Refreshes, "one refetch for the big change");
            string difference;
            Assert.IsTrue(SameAsFresh(other, world, hood, out difference), difference);
        }

        [Test]
        public void AFollowedCopyEqualsAFreshFetchAfterRandomEditsBySeveralClients()
        {
            CubeWalkClient client = Client(), check = Client();
            ChunkNeighbourhood hood = Following(client, RealtimeEndpoint);
            int errors = 0;
            string firstError = null;
            // Three players edit at random, small edits mostly, now and then one too big to carry.
            Action<int, int, int> play = (seed, edits, xShift) =>
            {
                var random = new Random(seed);
                using (var editor = new CubeWalkClient(Endpoint, Token, Managed()))
                    for (int n = 0; n < edits; n++)
                    {
                        var chunk = new ChunkKey(random.Next(-1, 2) + xShift, random.Next(-1, 2), random.Next(-1, 2));
                        int count = random.Next(10) == 0 ? 70 + random.Next(50) : 1 + random.Next(3);
                        var batch = new CubeEdit[count];
                        for (int i = 0; i < count; i++)
                            batch[i] = new CubeEdit { Chunk = chunk, Index = (uint)random.Next(4096), Value = random.Next(-5, 50) };
                        try
                        {
                            editor.PutBlocks(world, batch, new ChunkVersion[1]);
                        }
                        catch (CubeWalkException e)
                        {
                            if (Interlocked.Increment(ref errors) == 1) firstError = e.Message;
                        }
                        Thread.Sleep(random.Next(30));
                    }
            };
            for (int round = 0; round < 2; round++)
            {
                int shift = round;
                var players = new List<Thread>();
                for (int p = 0; p < 3; p++)
                {
                    int seed = 100 * round + p;
                    var t = new Thread(() => play(seed, 40, shift)) { IsBackground = true };
                    players.Add(t);
                    t.Start();
                }
                Frames(client, hood, () => players.TrueForAll(t => !t.IsAlive), 30, 60);
                Assert.AreEqual(0, errors, firstError);
                AssertConverges(client, check, world, hood);
                if (round == 0)
                {
                    // Walk east: the follower unsubscribes the regions left behind and subscribes
                    // the new ones, and the second round edits chunks only the new set holds.
                    Frames(client, hood, () => hood.MoveTo(new ChunkKey(1, 0, 0)));
                    Frames(client, hood, () => hood.IsFollowing && !hood.Busy);
                }
            }
            Console.WriteLine("managed realtime: " + hood.AppliedChanges + " changes applied in place, " + hood.Refreshes
                + " refreshes, " + hood.Gaps + " gaps for 240 random puts by 3 clients");
            Assert.Greater(hood.AppliedChanges, 20, "followed: most edits applied in place");
        }

        [Test]
        public void AWrongTokenIsRefusedAndNotTriedAgainUntilANewOne()
        {
            CubeWalkClient client = Client(Endpoint, "mono-wrong-token-" + Guid.NewGuid().ToString("N"));
            client.StartRealtime(RealtimeEndpoint);
            client.Follow(world, new[] { new ChunkKey(0, 0, 0) }, 1);
            Frames(client, null, () => client.RealtimeState == RealtimeState.Refused);
            StringAssert.Contains("401", client.RealtimeProblem);
            ManagedRealtime follower = client.ManagedRealtimeForTests;
            int connects = follower.Connects;
            var until = DateTime.UtcNow.AddSeconds(3);
            while (DateTime.UtcNow < until)
            {
                client.Update();
                Thread.Sleep(5);
            }
            Assert.AreEqual(RealtimeState.Refused, client.RealtimeState);
            Assert.AreEqual(connects, follower.Connects, "tried again with the refused token");
            // A new token: it connects with it.
            client.SetToken(Token);
            Frames(client, null, () => client.RealtimeState == RealtimeState.Connected);
            Assert.Greater(follower.Connects, connects);

            // Through the neighbourhood: it says why, gives following up and polls.
            CubeWalkClient refused = Client(Endpoint, "mono-wrong-token-" + Guid.NewGuid().ToString("N"));
            var hood = new ChunkNeighbourhood(refused, world, 0);
            Assert.IsTrue(hood.Follow(RealtimeEndpoint));
            Frames(refused, hood, () => refused.RealtimeState == RealtimeState.Refused && hood.RealtimeProblem != null, 0.05);
            Assert.IsFalse(hood.IsFollowing);
            StringAssert.Contains("401", hood.RealtimeProblem);
            StringAssert.DoesNotContain("mono-wrong-token", hood.RealtimeProblem);
        }

        [Test]
        public void ATokenWithoutTheWorldGetsTheSubscriptionRefused()
        {
            string dir = Path.Combine(Path.GetTempPath(), "cw-mrt-" + Guid.NewGuid().ToString("N"));
            Directory.CreateDirectory(dir);
            try
            {
                string key = Path.Combine(dir, "key.pem");
                LocalServe.Run("token keygen --out " + key);
                LocalServe serve = Serve("static-" + Guid.NewGuid().ToString("N"), 0, "--signing-key " + key);
                string token = LocalServe.Run("token issue --key " + key + " --player mono-mrt --world allowed-world").Trim();
                CubeWalkClient client = Client(serve.Http, token);
                client.StartRealtime(serve.Ws);
                client.Follow("forbidden-world", new[] { new ChunkKey(0, 0, 0) }, 1);
                Frames(client, null, () => client.RealtimeProblem != null && client.RealtimeProblem.Contains("refused the subscription"));
                Assert.AreEqual(RealtimeState.Connected, client.RealtimeState, "the connection stays; the subscription is refused");
                var changes = new ChunkChange[8];
                int edits;
                Assert.AreEqual(0, client.PollChanges(changes, new CubeEdit[64], out edits), "no Subscribed event");
                // Its own world is allowed on the same connection.
                client.Follow("allowed-world", new[] { new ChunkKey(0, 0, 0) }, 1);
                Frames(client, null, () => client.PollChanges(changes, new CubeEdit[64], out edits) > 0);
                Assert.AreEqual(ChangeKind.Subscribed, changes[0].Kind);
                Frames(client, null, () => client.RealtimeProblem == null);
            }
            finally
            {
                Directory.Delete(dir, true);
            }
        }

        [Test]
        public void TheServerKilledAndRestartedIsAGapThenACorrectCopy()
        {
            string token = "mono-restart-" + Guid.NewGuid().ToString("N");
            int port = LocalServe.FreePort();
            LocalServe serve = Serve(token, port);
            CubeWalkClient client = Client(serve.Http, token), other = Client(serve.Http, token);
            ChunkNeighbourhood hood = Following(client, serve.Ws);
            Put(other, world, new ChunkKey(0, 0, 0), 1, 11);
            Frames(client, hood, () => hood.Buffers[13][1] == 11);
            Assert.AreEqual(0, hood.Gaps);

            serve.Dispose();
            Frames(client, hood, () => client.RealtimeState != RealtimeState.Connected);
            Assert.IsFalse(hood.IsFollowing);
            // Back on the same port, with an empty store (the embedded one is in memory).
            serve = Serve(token, port);
            Frames(client, hood, () => hood.Gaps > 0 && hood.IsFollowing && !hood.Busy, 30, 40);
            string difference;
            Assert.IsTrue(SameAsFresh(other, world, hood, out difference), difference);
            Assert.AreEqual(0, hood.Buffers[13][1], "refetched from the new store");
            // And it follows again.
            int applied = hood.AppliedChanges;
            Put(other, world, new ChunkKey(0, 0, 0), 2, 22);
            Frames(client, hood, () => hood.AppliedChanges > applied);
            Assert.AreEqual(22, hood.Buffers[13][2]);
            Assert.IsTrue(SameAsFresh(other, world, hood, out difference), difference);
        }

        [Test]
        public void EventsAllocateNothingOnTheGameThreadInTheSteadyState()
        {
            CubeWalkClient client = Client(), other = Client();
            ChunkNeighbourhood hood = Following(client, RealtimeEndpoint);
            // Warm up the event path (JIT, arrays) once.
            Put(other, world, new ChunkKey(0, 0, 0), 1, 1);
            Frames(client, hood, () => hood.AppliedChanges >= 1);
            ManagedRealtime follower = client.ManagedRealtimeForTests;
            int applied = hood.AppliedChanges, messages = follower.Messages;
            // Another thread plays the other player: its allocations are its own.
            var go = new ManualResetEventSlim();
            var player = new Thread(() =>
            {
                go.Wait();
                for (int i = 0; i < 50; i++)
                {
                    Put(other, world, new ChunkKey(0, 0, 0), 100 + i, i + 1);
                    Thread.Sleep(110); // one publisher tick each: one message each
                }
            });
            player.Start();
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
            player.Join();
            int got = follower.Messages - messages;
            Console.WriteLine("managed realtime: " + got + " messages, " + (hood.AppliedChanges - applied)
                + " changes applied in place, " + allocated + " managed bytes on the game thread ("
                + (got > 0 ? (allocated / (double)got).ToString("0.0") : "-") + " per message)");
            Assert.AreEqual(50, hood.Buffers[13][149], "every change arrived");
            Assert.GreaterOrEqual(got, 25, "messages, not one coalesced change");
            Assert.AreEqual(0, allocated, "managed bytes allocated on the game thread while following");
        }

        LocalServe Serve(string token, int port, string extra = "")
        {
            var s = new LocalServe(token, port, extra);
            serves.Add(s);
            return s;
        }
    }

    /// <summary>A <c>cubewalk-server serve</c> of a test's own (CUBEWALK_TEST_SERVER), empty world,
    /// embedded store and broker, on <c>127.0.0.1:port</c> (0: any free port).</summary>
    sealed class LocalServe : IDisposable
    {
        readonly Process process;
        internal readonly string Http, Ws;

        static string Binary
        {
            get
            {
                string b = Environment.GetEnvironmentVariable("CUBEWALK_TEST_SERVER");
                Assert.IsFalse(string.IsNullOrEmpty(b), "CUBEWALK_TEST_SERVER (the cubewalk-server binary) is not set");
                return b;
            }
        }

        internal LocalServe(string token, int port, string extra)
        {
            var start = new ProcessStartInfo(Binary, "serve --bind 127.0.0.1:" + port + " --seed-radius 0 --tokens " + token + " " + extra)
            {
                UseShellExecute = false,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
            };
            process = Process.Start(start);
            process.ErrorDataReceived += (s, e) => { };
            process.BeginErrorReadLine();
            var deadline = DateTime.UtcNow.AddSeconds(30);
            while ((Http == null || Ws == null) && DateTime.UtcNow < deadline)
            {
                string line = process.StandardOutput.ReadLine();
                if (line == null) break;
                Match h = Regex.Match(line, @"listening on (http://\S+)");
                if (h.Success) Http = h.Groups[1].Value;
                Match w = Regex.Match(line, @"(ws://\S+)");
                if (w.Success) Ws = w.Groups[1].Value;
            }
            if (Http == null || Ws == null) Dispose();
            Assert.IsNotNull(Http, "serve printed no 'listening on http://...' line");
            Assert.IsNotNull(Ws, "serve printed no realtime ws:// line");
            StreamReader output = process.StandardOutput;
            new Thread(() => { while (output.ReadLine() != null) { } }) { IsBackground = true }.Start();
        }

        /// <summary>Runs the binary with <paramref name="arguments"/>; its standard output.</summary>
        internal static string Run(string arguments)
        {
            var start = new ProcessStartInfo(Binary, arguments)
            {
                UseShellExecute = false,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
            };
            using (Process p = Process.Start(start))
            {
                string output = p.StandardOutput.ReadToEnd();
                string errors = p.StandardError.ReadToEnd();
                p.WaitForExit();
                Assert.AreEqual(0, p.ExitCode, "cubewalk-server " + arguments + ": " + errors);
                return output;
            }
        }

        internal static int FreePort()
        {
            var l = new TcpListener(IPAddress.Loopback, 0);
            l.Start();
            int port = ((IPEndPoint)l.LocalEndpoint).Port;
            l.Stop();
            return port;
        }

        public void Dispose()
        {
            try
            {
                if (!process.HasExited) process.Kill();
                process.WaitForExit(5000);
            }
            catch (InvalidOperationException)
            {
                // Already gone.
            }
        }
    }
}
