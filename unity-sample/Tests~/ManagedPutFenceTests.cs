using System;
using System.Collections.Generic;
using System.Text;
using System.Text.RegularExpressions;
using CubeWalk;
using CubeWalk.Managed;
using NUnit.Framework;

namespace CubeWalk.Tests
{
    /// <summary>
    /// The managed transport's put fence (WebGL's puts), against a scripted HTTP sender and a test
    /// clock: a put request whose answer never came (timeout, network error, 5xx, an answer that
    /// is not a put answer) is fenced with a cancel request before the put answers and before the
    /// next put of its chunks starts, with the native library's decisions (sdk/src/batching.rs
    /// <c>run_put_batches</c>, <c>fence</c>, <c>may_have_applied</c>; sdk/src/client.rs <c>InFlight</c>).
    /// </summary>
    [TestFixture]
    public class ManagedPutFenceTests
    {
        sealed class Exchange : IHttpExchange
        {
            internal string Method, Url, Body;
            internal int TimeoutMs;
            internal bool Aborted;
            public bool IsDone { get; private set; }
            public int Status { get; private set; }
            public string Text { get; private set; }
            public string Error { get; private set; }
            public void Abort() { Aborted = true; }

            internal void Answer(int status, string text) { Status = status; Text = text; IsDone = true; }
            internal void Fail(string error) { Error = error; IsDone = true; }
            internal bool IsCancel { get { return Body.Contains("\"cancel\":"); } }
        }

        sealed class Sender : IHttpSender
        {
            internal readonly List<Exchange> Sent = new List<Exchange>();
            public IHttpExchange Send(string method, string url, string token, byte[] body, int timeoutMs)
            {
                var x = new Exchange { Method = method, Url = url, Body = Encoding.UTF8.GetString(body), TimeoutMs = timeoutMs };
                Sent.Add(x);
                return x;
            }
            internal Exchange Last { get { return Sent[Sent.Count - 1]; } }
        }

        // Always the top of the jitter range: a retry goes exactly at the backoff's cap.
        sealed class TopRandom : Random
        {
            public override double NextDouble() { return 1.0; }
        }

        const string Url = "http://127.0.0.1:1/prod/cubewalkblocks";
        const string World = "w1";
        const int TimeoutMs = 1000;
        static readonly ChunkKey A = new ChunkKey(1, 2, 3), B = new ChunkKey(-4, 0, 5), C = new ChunkKey(7, 7, 7);

        DateTime now;
        Sender http;
        ManagedTransport transport;

        [SetUp]
        public void Fresh()
        {
            now = new DateTime(2030, 1, 1, 0, 0, 0, DateTimeKind.Utc);
            http = new Sender();
            transport = new ManagedTransport(Url, "tok", new CubeWalkOptions { TimeoutMs = TimeoutMs }, http);
            transport.Clock = () => now;
            transport.Random = new TopRandom();
        }

        sealed class Put
        {
            internal ulong Id;
            internal ChunkVersion[] Results;
            internal UIntPtr[] Count = new UIntPtr[1];
            internal string Error;
            internal int Written { get { return (int)Count[0].ToUInt32(); } }
        }

        Put Begin(params ChunkKey[] chunks)
        {
            var edits = new CubeEdit[chunks.Length];
            for (int i = 0; i < chunks.Length; i++) edits[i] = new CubeEdit { Chunk = chunks[i], Index = (uint)i, Value = 9 };
            var put = new Put { Results = new ChunkVersion[chunks.Length] };
            put.Id = transport.BeginPut(World, edits, put.Results, put.Count);
            return put;
        }

        CubeWalkStatus Poll(Put put)
        {
            return transport.Poll(put.Id, out put.Error);
        }

        void Advance(int ms) { now = now.AddMilliseconds(ms); }

        static string KeyOf(Exchange put)
        {
            Match m = Regex.Match(put.Body, "\"idempotency_key\":\"([0-9a-f]{32})\"");
            Assert.IsTrue(m.Success, put.Body);
            return m.Groups[1].Value;
        }

        static string Entry(ChunkKey k, ulong version)
        {
            return "{\"key\":[" + k.X + "," + k.Y + "," + k.Z + "],\"version\":" + version + "}";
        }

        static string Key(ChunkKey k) { return "[" + k.X + "," + k.Y + "," + k.Z + "]"; }

        static string CancelAnswer(string applied, string cancelled)
        {
            return "{\"world\":\"" + World + "\",\"applied\":[" + applied + "],\"cancelled\":[" + cancelled + "]}";
        }

        // The put's only request times out: its fence goes out at once, with the put's key and
        // chunks (in request order), on the same URL with PUT, within one more timeout.
        Exchange TimeOut(Put put, Exchange request)
        {
            Assert.AreEqual(CubeWalkStatus.Pending, Poll(put));
            Advance(TimeoutMs);
            int before = http.Sent.Count;
            Assert.AreEqual(CubeWalkStatus.Pending, Poll(put), "the put answers only once fenced");
            Assert.IsTrue(request.Aborted, "the timed-out request is aborted");
            Assert.AreEqual(before + 1, http.Sent.Count, "one cancel request sent");
            Exchange fence = http.Last;
            Assert.AreEqual("PUT", fence.Method);
            Assert.AreEqual(Url, fence.Url);
            Assert.LessOrEqual(fence.TimeoutMs, TimeoutMs);
            return fence;
        }

        [Test]
        public void ATimedOutPutWhoseFenceSaysCancelledAnswersTheTimeoutWithNothingAppliedAndTheNextPutThenGoes()
        {
            Put first = Begin(A, B);
            Assert.AreEqual(1, http.Sent.Count);
            Exchange request = http.Sent[0];
            Put second = Begin(A);
            Assert.AreEqual(1, http.Sent.Count, "puts go one at a time");

            Exchange fence = TimeOut(first, request);
            Assert.AreEqual("{\"world\":\"w1\",\"cancel\":\"" + KeyOf(request) + "\",\"chunks\":[[1,2,3],[-4,0,5]]}", fence.Body);
            Assert.AreEqual(CubeWalkStatus.Pending, Poll(second));
            Assert.AreEqual(2, http.Sent.Count, "the next put of the chunk waits for the fence");

            fence.Answer(200, CancelAnswer("", Key(B) + "," + Key(A)));
            Assert.AreEqual(CubeWalkStatus.Timeout, Poll(first));
            Assert.AreEqual("timed out after 1000 ms", first.Error);
            Assert.AreEqual(0, first.Written, "nothing applied");

            Assert.AreEqual(3, http.Sent.Count, "the next put goes once the fence settled the first");
            Assert.IsFalse(http.Last.IsCancel);
            http.Last.Answer(200, "{\"world\":\"w1\",\"chunks\":[" + Entry(A, 5) + "]}");
            Assert.AreEqual(CubeWalkStatus.Ok, Poll(second), second.Error);
            Assert.AreEqual(1, second.Written);
        }

        [Test]
        public void AFenceThatFindsThePutAppliedEverywhereAnswersSuccessWithTheEntriesInRequestOrder()
        {
            Put put = Begin(A, B, C);
            Exchange request = http.Sent[0];
            request.Fail("connection reset");
            Assert.AreEqual(CubeWalkStatus.Pending, Poll(put), "a network error after sending is fenced");
            Exchange fence = http.Last;
            Assert.IsTrue(fence.IsCancel);
            // The server lists them in its own order; the put answers in the request's.
            fence.Answer(200, CancelAnswer(Entry(C, 30) + "," + Entry(A, 10) + "," + Entry(B, 20), ""));
            Assert.AreEqual(CubeWalkStatus.Ok, Poll(put), put.Error);
            Assert.IsNull(put.Error);
            Assert.AreEqual(3, put.Written);
            Assert.AreEqual(A, put.Results[0].Key);
            Assert.AreEqual(10UL, put.Results[0].Version);
            Assert.AreEqual(B, put.Results[1].Key);
            Assert.AreEqual(20UL, put.Results[1].Version);
            Assert.AreEqual(C, put.Results[2].Key);
            Assert.AreEqual(30UL, put.Results[2].Version);
        }

        [Test]
        public void AFenceThatFindsSomeChunksAppliedAnswersAPartialPut()
        {
            Put put = Begin(A, B, C);
            http.Sent[0].Answer(500, "{\"error\":{\"code\":\"internal\",\"message\":\"store failed\"}}");
            Assert.AreEqual(CubeWalkStatus.Pending, Poll(put), "a 5xx is fenced");
            http.Last.Answer(200, CancelAnswer(Entry(C, 31) + "," + Entry(A, 11), Key(B)));
            Assert.AreEqual(CubeWalkStatus.ServerError, Poll(put), "the original error");
            StringAssert.StartsWith("server error (500): store failed", put.Error);
            StringAssert.EndsWith("(2 of 3 chunks confirmed applied)", put.Error);
            Assert.AreEqual(2, put.Written, "the applied chunks listed");
            Assert.AreEqual(A, put.Results[0].Key);
            Assert.AreEqual(11UL, put.Results[0].Version);
            Assert.AreEqual(C, put.Results[1].Key);
            Assert.AreEqual(31UL, put.Results[1].Version);
        }

        [Test]
        public void WhenTheFenceFailsTooTheChunksNextPutWaitsUntil45SecondsAfterThePutsDeadline()
        {
            DateTime begun = now;
            Put first = Begin(A);
            Put sameChunk = Begin(A, B);
            Exchange fence = TimeOut(first, http.Sent[0]);
            // The cancel never answers: the fence's budget (one timeout) runs out.
            Advance(TimeoutMs - 1);
            Assert.AreEqual(CubeWalkStatus.Pending, Poll(first));
            Advance(1);
            Assert.AreEqual(CubeWalkStatus.Timeout, Poll(first), "the original error");
            Assert.AreEqual("timed out after 1000 ms", first.Error);
            Assert.AreEqual(0, first.Written);
            Assert.IsTrue(fence.Aborted);
            int sent = http.Sent.Count;

            // A put of other chunks is not held.
            Put other = Begin(C);
            Assert.AreEqual(sent + 1, http.Sent.Count, "a put of other chunks goes");
            http.Last.Answer(200, "{\"world\":\"w1\",\"chunks\":[" + Entry(C, 1) + "]}");
            Assert.AreEqual(CubeWalkStatus.Ok, Poll(other), other.Error);
            sent++;

            // The same chunk's put waits until the first put's deadline + 45 s.
            DateTime until = begun.AddMilliseconds(TimeoutMs + ManagedTransport.FenceHorizonMs);
            Assert.AreEqual(45000, ManagedTransport.FenceHorizonMs);
            now = until.AddMilliseconds(-1);
            Assert.AreEqual(CubeWalkStatus.Pending, Poll(sameChunk));
            Assert.AreEqual(sent, http.Sent.Count, "held until the server can no longer apply the first put");
            now = until;
            Assert.AreEqual(CubeWalkStatus.Pending, Poll(sameChunk));
            Assert.AreEqual(sent + 1, http.Sent.Count, "sent once the hold has passed");
            StringAssert.Contains("\"edits\":", http.Last.Body);
            http.Last.Answer(200, "{\"world\":\"w1\",\"chunks\":[" + Entry(A, 2) + "," + Entry(B, 2) + "]}");
            Assert.AreEqual(CubeWalkStatus.Ok, Poll(sameChunk), sameChunk.Error);
        }

        [Test]
        public void APutBegunAfterAHeldOneOnOtherChunksOvertakesItButNotOnTheSameChunks()
        {
            Put first = Begin(A);
            TimeOut(first, http.Sent[0]);
            Advance(TimeoutMs);
            Assert.AreEqual(CubeWalkStatus.Timeout, Poll(first));
            int sent = http.Sent.Count;
            Put held = Begin(A, B);
            Put behindHeld = Begin(B);
            Put free = Begin(C);
            Assert.AreEqual(CubeWalkStatus.Pending, Poll(held));
            Assert.AreEqual(CubeWalkStatus.Pending, Poll(behindHeld));
            Assert.AreEqual(sent + 1, http.Sent.Count, "only the put of other chunks went");
            StringAssert.Contains("\"chunk\":[7,7,7]", http.Last.Body);
            http.Last.Answer(200, "{\"world\":\"w1\",\"chunks\":[" + Entry(C, 1) + "]}");
            Assert.AreEqual(CubeWalkStatus.Ok, Poll(free), free.Error);
            Assert.AreEqual(CubeWalkStatus.Pending, Poll(behindHeld));
            Assert.AreEqual(sent + 1, http.Sent.Count, "a put of B begun after the held put of A and B waits for it");
        }

        [Test]
        public void TheFenceIsRetriedLikeARepeatableRequestWithinItsBudget()
        {
            Put put = Begin(A);
            http.Sent[0].Answer(503, "{\"message\":\"Service Unavailable\"}");
            Assert.AreEqual(CubeWalkStatus.Pending, Poll(put));
            Exchange fence = http.Last;
            fence.Answer(503, "{\"message\":\"Service Unavailable\"}");
            Assert.AreEqual(CubeWalkStatus.Pending, Poll(put));
            int sent = http.Sent.Count;
            Advance(99);
            Assert.AreEqual(CubeWalkStatus.Pending, Poll(put));
            Assert.AreEqual(sent, http.Sent.Count, "waits out its backoff");
            Advance(1);
            Assert.AreEqual(CubeWalkStatus.Pending, Poll(put));
            Assert.AreEqual(sent + 1, http.Sent.Count, "sent again");
            Assert.AreEqual(fence.Body, http.Last.Body, "the same cancel");
            http.Last.Answer(200, CancelAnswer("", Key(A)));
            Assert.AreEqual(CubeWalkStatus.ServerError, Poll(put));
            Assert.AreEqual(0, put.Written);
            // Settled: the next put of A goes at once.
            Begin(A);
            Assert.IsFalse(http.Last.IsCancel);
        }

        [Test]
        public void AFenceRefusedWith4xxFailsAndHoldsTheChunk()
        {
            Put put = Begin(A);
            http.Sent[0].Fail("connection reset");
            Assert.AreEqual(CubeWalkStatus.Pending, Poll(put));
            http.Last.Answer(400, "{\"error\":{\"code\":\"invalid\",\"message\":\"no\"}}");
            Assert.AreEqual(CubeWalkStatus.Network, Poll(put));
            StringAssert.StartsWith("network error: connection reset", put.Error);
            int sent = http.Sent.Count;
            Put next = Begin(A);
            Assert.AreEqual(CubeWalkStatus.Pending, Poll(next));
            Assert.AreEqual(sent, http.Sent.Count, "held");
        }

        [Test]
        public void AFenceAnswerThatDoesNotListTheChunksSentIsAFailedFence()
        {
            Put put = Begin(A, B);
            http.Sent[0].Answer(502, "");
            Assert.AreEqual(CubeWalkStatus.Pending, Poll(put));
            http.Last.Answer(200, CancelAnswer(Entry(A, 1) + "," + Entry(A, 1), ""));
            Assert.AreEqual(CubeWalkStatus.ServerError, Poll(put));
            Assert.AreEqual(0, put.Written, "nothing confirmed");
            int sent = http.Sent.Count;
            Begin(B);
            Assert.AreEqual(sent, http.Sent.Count, "its chunks held");
        }

        [Test]
        public void RefusalsAreNotFenced()
        {
            // 409 `cancelled` is what a put's late arrival is answered once fenced.
            var expected = new Dictionary<int, CubeWalkStatus>
            {
                { 400, CubeWalkStatus.BadRequest }, { 403, CubeWalkStatus.Forbidden },
                { 409, CubeWalkStatus.BadRequest }, { 429, CubeWalkStatus.RateLimited },
            };
            foreach (KeyValuePair<int, CubeWalkStatus> e in expected)
            {
                int status = e.Key;
                Fresh();
                Put put = Begin(A);
                string code = status == 409 ? "cancelled" : status == 429 ? "rate_limited" : "refused";
                http.Sent[0].Answer(status, "{\"error\":{\"code\":\"" + code + "\",\"message\":\"m\"}}");
                Assert.AreEqual(e.Value, Poll(put), status + ": " + put.Error);
                Assert.AreEqual(0, put.Written);
                Assert.AreEqual(1, http.Sent.Count, status + ": no fence");
                Begin(A);
                Assert.AreEqual(2, http.Sent.Count, status + ": the next put goes at once");
                Assert.IsFalse(http.Last.IsCancel);
            }
        }

        [Test]
        public void WhichFailuresMayHaveApplied()
        {
            Assert.IsTrue(ManagedTransport.MayHaveApplied(CubeWalkStatus.Timeout, 0));
            Assert.IsTrue(ManagedTransport.MayHaveApplied(CubeWalkStatus.Network, 0));
            Assert.IsTrue(ManagedTransport.MayHaveApplied(CubeWalkStatus.Protocol, 200));
            Assert.IsTrue(ManagedTransport.MayHaveApplied(CubeWalkStatus.Cancelled, 0));
            Assert.IsTrue(ManagedTransport.MayHaveApplied(CubeWalkStatus.ServerError, 500));
            Assert.IsTrue(ManagedTransport.MayHaveApplied(CubeWalkStatus.ServerError, 507));
            Assert.IsFalse(ManagedTransport.MayHaveApplied(CubeWalkStatus.ServerError, 429), "a 429 that is not rate_limited");
            Assert.IsFalse(ManagedTransport.MayHaveApplied(CubeWalkStatus.RateLimited, 429));
            Assert.IsFalse(ManagedTransport.MayHaveApplied(CubeWalkStatus.BadRequest, 409));
            Assert.IsFalse(ManagedTransport.MayHaveApplied(CubeWalkStatus.Unauthorized, 401));
            Assert.IsFalse(ManagedTransport.MayHaveApplied(CubeWalkStatus.Forbidden, 403));
        }

        [Test]
        public void APutAnswerThatIsNotAPutAnswerIsFenced()
        {
            Put put = Begin(A);
            http.Sent[0].Answer(200, "{\"world\":\"w1\",\"chunks\":[" + Entry(B, 1) + "]}");
            Assert.AreEqual(CubeWalkStatus.Pending, Poll(put));
            Assert.IsTrue(http.Last.IsCancel);
            http.Last.Answer(200, CancelAnswer(Entry(A, 4), ""));
            Assert.AreEqual(CubeWalkStatus.Ok, Poll(put), put.Error);
            Assert.AreEqual(4UL, put.Results[0].Version);
        }

        [Test]
        public void ACancelledPutInFlightIsFencedInTheBackgroundAndHoldsTheLineUntilThen()
        {
            Put first = Begin(A);
            Put second = Begin(A);
            transport.Cancel(first.Id);
            Assert.IsTrue(http.Sent[0].Aborted);
            Assert.AreEqual(2, http.Sent.Count, "fenced at once");
            Exchange fence = http.Last;
            Assert.IsTrue(fence.IsCancel);
            Assert.AreEqual(CubeWalkStatus.Pending, Poll(second));
            Assert.AreEqual(2, http.Sent.Count, "the next put waits for the fence");
            fence.Answer(200, CancelAnswer("", Key(A)));
            Assert.AreEqual(CubeWalkStatus.Pending, Poll(second));
            Assert.AreEqual(3, http.Sent.Count, "then goes");
            Assert.IsFalse(http.Last.IsCancel);
            string ignored;
            Assert.AreEqual(CubeWalkStatus.InvalidArgument, transport.Poll(first.Id, out ignored), "the cancelled put is forgotten");
            Assert.AreEqual(0, first.Written, "its outputs never written");
        }

        [Test]
        public void APutSplitOverRequestsFencesEachFailedOneAndListsWhatApplied()
        {
            // More chunks than one request carries: two requests, sent together.
            int n = NativeDefaults.MaxChunksPerPut + 1;
            var chunks = new ChunkKey[n];
            for (int i = 0; i < n; i++) chunks[i] = new ChunkKey(i, 0, 0);
            Put put = Begin(chunks);
            Assert.AreEqual(2, http.Sent.Count);
            var sb = new StringBuilder();
            for (int i = 0; i < n - 1; i++) sb.Append(i > 0 ? "," : "").Append(Entry(chunks[i], 1));
            http.Sent[0].Answer(200, "{\"world\":\"w1\",\"chunks\":[" + sb + "]}");
            http.Sent[1].Answer(504, "");
            Assert.AreEqual(CubeWalkStatus.Pending, Poll(put));
            Assert.AreEqual(3, http.Sent.Count, "only the failed request is fenced");
            StringAssert.Contains("\"chunks\":[[256,0,0]]", http.Last.Body);
            http.Last.Answer(200, CancelAnswer("", Key(chunks[n - 1])));
            Assert.AreEqual(CubeWalkStatus.ServerError, Poll(put));
            Assert.AreEqual(n - 1, put.Written);
            StringAssert.EndsWith("(256 of 257 chunks confirmed applied)", put.Error);
        }

        // ---- against the local gateway (run-tests.sh): the fence's wire format ----

        /// <summary>Real HTTP, but the first put's answer is lost (its request went, or was never
        /// sent): what a broken connection looks like to the client.</summary>
        sealed class LosingSender : IHttpSender
        {
            readonly IHttpSender real = new HttpClientSender();
            internal bool SendThePut;
            internal byte[] LostBody;
            internal int Fences;

            public IHttpExchange Send(string method, string url, string token, byte[] body, int timeoutMs)
            {
                if (Encoding.UTF8.GetString(body).Contains("\"cancel\":")) Fences++;
                else if (LostBody == null)
                {
                    LostBody = body;
                    var lost = new Exchange { Method = method, Url = url, Body = "" };
                    if (SendThePut)
                    {
                        IHttpExchange x = real.Send(method, url, token, body, timeoutMs);
                        var deadline = DateTime.UtcNow.AddSeconds(10);
                        while (!x.IsDone && DateTime.UtcNow < deadline) System.Threading.Thread.Sleep(1);
                        Assert.AreEqual(200, x.Status, x.Text);
                    }
                    lost.Fail("connection reset");
                    return lost;
                }
                return real.Send(method, url, token, body, timeoutMs);
            }
        }

        CubeWalkStatus RunToEnd(ManagedTransport t, Put put)
        {
            var deadline = DateTime.UtcNow.AddSeconds(20);
            CubeWalkStatus s;
            while ((s = t.Poll(put.Id, out put.Error)) == CubeWalkStatus.Pending)
            {
                Assert.Less(DateTime.UtcNow, deadline, "never finished");
                System.Threading.Thread.Sleep(1);
            }
            return s;
        }

        [Test]
        public void AgainstTheGatewayAPutWhoseAnswerWasLostIsFoundAppliedOrCancelled()
        {
            Assert.IsNotNull(TestSupport.Endpoint, "CUBEWALK_TEST_ENDPOINT is not set (run run-tests.sh)");
            string world = "mono-fence-" + Guid.NewGuid().ToString("N").Substring(0, 8);
            var options = new CubeWalkOptions { Transport = CubeWalkTransport.Managed, TimeoutMs = 5000 };
            var keys = new[] { A, B };
            var edits = new[] { new CubeEdit { Chunk = A, Index = 5, Value = 55 }, new CubeEdit { Chunk = B, Index = 6, Value = 66 } };

            // It went: the fence finds it applied, and the put succeeds with its revisions.
            var went = new LosingSender { SendThePut = true };
            var t = new ManagedTransport(TestSupport.Endpoint, TestSupport.Token, options, went);
            var put = new Put { Results = new ChunkVersion[2] };
            put.Id = t.BeginPut(world, edits, put.Results, put.Count);
            Assert.AreEqual(CubeWalkStatus.Ok, RunToEnd(t, put), put.Error);
            Assert.AreEqual(1, went.Fences);
            Assert.AreEqual(2, put.Written);
            Assert.AreEqual(A, put.Results[0].Key);
            Assert.AreEqual(B, put.Results[1].Key);
            using (var client = new CubeWalkClient(TestSupport.Endpoint, TestSupport.Token, options))
            {
                var versions = TestSupport.NoVersions(2);
                var buffers = TestSupport.Buffers(2);
                client.FetchBlocks(world, keys, versions, buffers);
                Assert.AreEqual(put.Results[0].Version, versions[0]);
                Assert.AreEqual(put.Results[1].Version, versions[1]);
                Assert.AreEqual(55, buffers[0][5]);
            }

            // It never went: the fence cancels it, the put answers its error with nothing
            // applied, and the request arriving late is refused (409 cancelled).
            var lost = new LosingSender();
            t = new ManagedTransport(TestSupport.Endpoint, TestSupport.Token, options, lost);
            var edits2 = new[] { new CubeEdit { Chunk = A, Index = 5, Value = 77 } };
            put = new Put { Results = new ChunkVersion[1] };
            put.Id = t.BeginPut(world, edits2, put.Results, put.Count);
            Assert.AreEqual(CubeWalkStatus.Network, RunToEnd(t, put), put.Error);
            Assert.AreEqual(1, lost.Fences);
            Assert.AreEqual(0, put.Written);
            IHttpExchange late = new HttpClientSender().Send("PUT", TestSupport.Endpoint, TestSupport.Token, lost.LostBody, 5000);
            var until = DateTime.UtcNow.AddSeconds(10);
            while (!late.IsDone && DateTime.UtcNow < until) System.Threading.Thread.Sleep(1);
            Assert.AreEqual(409, late.Status, late.Text);
            Assert.AreEqual("cancelled", ManagedTransport.Code(late.Text), late.Text);
        }
    }
}
