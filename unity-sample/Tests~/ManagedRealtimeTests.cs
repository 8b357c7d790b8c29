using System;
using System.Collections.Generic;
using System.Linq;
using System.Text;
using CubeWalk;
using CubeWalk.Managed;
using NUnit.Framework;

namespace CubeWalk.Tests
{
    /// <summary>
    /// The managed realtime follower (WebGL's) against a hand-fed WebSocket: the bytes it sends
    /// are decoded and checked, the broker's bytes are written by the test, split across frames,
    /// merged into one, or garbage, and a test clock drives keepalive, reconcile, backoff and
    /// resends. Mirrors the native follower's rules (sdk/src/realtime.rs) and the change format
    /// (protocol/src/realtime.rs).
    /// </summary>
    [TestFixture]
    public class ManagedRealtimeTests
    {
        // ---- a scripted WebSocket and the follower around it ----

        sealed class ScriptedBridge : IWebSocketBridge
        {
            internal string Url;
            internal bool WasClosed;
            internal Exception ThrowOnRead;
            internal readonly List<byte[]> Sent = new List<byte[]>();
            readonly Queue<byte[]> frames = new Queue<byte[]>();
            int offset;

            public BridgeState State { get; internal set; }
            public int HandshakeStatus { get; internal set; }
            public string Error { get; internal set; }
            public void Open(string url) { Url = url; State = BridgeState.Connecting; }

            internal void Feed(params byte[][] each)
            {
                foreach (byte[] f in each) frames.Enqueue(f);
            }

            public int Read(byte[] buffer, int at, int count)
            {
                if (ThrowOnRead != null) throw ThrowOnRead;
                int n = 0;
                while (n < count && frames.Count > 0)
                {
                    byte[] f = frames.Peek();
                    int k = Math.Min(count - n, f.Length - offset);
                    Buffer.BlockCopy(f, offset, buffer, at + n, k);
                    n += k;
                    offset += k;
                    if (offset == f.Length) { frames.Dequeue(); offset = 0; }
                }
                return n;
            }

            public bool Send(byte[] data, int at, int count)
            {
                if (State != BridgeState.Open) return false;
                var copy = new byte[count];
                Buffer.BlockCopy(data, at, copy, 0, count);
                Sent.Add(copy);
                return true;
            }

            public void Close() { WasClosed = true; State = BridgeState.Closed; }
        }

        sealed class FakeExchange : IHttpExchange
        {
            internal string Url;
            public bool IsDone { get; internal set; }
            public int Status { get; internal set; }
            public string Text { get { return ""; } }
            public string Error { get { return null; } }
            public void Abort() { IsDone = true; }
        }

        sealed class FakeHttp : IHttpSender
        {
            internal readonly List<FakeExchange> Sent = new List<FakeExchange>();
            public IHttpExchange Send(string method, string url, string token, byte[] body, int timeoutMs)
            {
                var x = new FakeExchange { Url = url };
                Sent.Add(x);
                return x;
            }
        }

        // Always the top of the jitter range: the backoff's cap is then exactly when it retries.
        sealed class TopRandom : Random
        {
            public override double NextDouble() { return 1.0; }
        }

        const string Token = "tok+en/1=";
        const string World = "w1";

        double now = 1000;
        List<ScriptedBridge> bridges;
        ManagedTransport transport;
        ManagedRealtime follower;
        FakeHttp http;
        readonly ChunkChange[] changes = new ChunkChange[64];
        readonly CubeEdit[] edits = new CubeEdit[64 * 64];

        ScriptedBridge Bridge { get { return bridges[bridges.Count - 1]; } }

        [SetUp]
        public void Fresh()
        {
            now = 1000;
            bridges = new List<ScriptedBridge>();
            http = new FakeHttp();
            transport = new ManagedTransport("http://127.0.0.1:1/prod/cubewalkblocks", Token, new CubeWalkOptions(), http);
            follower = new ManagedRealtime(transport, "ws://127.0.0.1:1/mqtt", false, 5000, () =>
            {
                var b = new ScriptedBridge();
                bridges.Add(b);
                return b;
            }, http);
            follower.Clock = () => now;
            follower.Random = new TopRandom();
            transport.Follower = follower.Floors;
        }

        void Pump(double advanceMs = 0)
        {
            now += advanceMs;
            follower.Pump();
        }

        // Opens, answers CONNACK 0 (split over two frames) and takes the CONNECT off the sent list.
        void Connect()
        {
            if (bridges.Count == 0 || Bridge.WasClosed) Pump();
            Assert.IsFalse(Bridge.WasClosed, "no connection opened");
            Bridge.State = BridgeState.Open;
            Pump();
            Packet connect = Sent().Single();
            Assert.AreEqual(Mqtt.Connect, connect.Type);
            Bridge.Feed(new byte[] { 0x20 }, new byte[] { 0x02, 0x00, 0x00 });
            Pump();
            Assert.AreEqual(RealtimeState.Connected, follower.State, follower.LastError);
        }

        struct Packet
        {
            internal int Type, Flags;
            internal byte[] Body;
            internal int Id { get { return Body[0] << 8 | Body[1]; } }

            // SUBSCRIBE / UNSUBSCRIBE filters.
            internal List<string> Topics
            {
                get
                {
                    var list = new List<string>();
                    int at = 2;
                    while (at < Body.Length)
                    {
                        int n = Body[at] << 8 | Body[at + 1];
                        list.Add(Encoding.UTF8.GetString(Body, at + 2, n));
                        at += 2 + n;
                        if (Type == Mqtt.Subscribe)
                        {
                            Assert.AreEqual(0, Body[at], "QoS 0");
                            at++;
                        }
                    }
                    return list;
                }
            }
        }

        // What the follower sent since the last call, one packet per frame.
        List<Packet> Sent()
        {
            var list = new List<Packet>();
            foreach (byte[] f in Bridge.Sent)
            {
                int length = 0, shift = 0, at = 1;
                while (true)
                {
                    int b = f[at++];
                    length |= (b & 0x7f) << shift;
                    if ((b & 0x80) == 0) break;
                    shift += 7;
                }
                Assert.AreEqual(f.Length, at + length, "one whole packet per frame");
                var body = new byte[length];
                Buffer.BlockCopy(f, at, body, 0, length);
                list.Add(new Packet { Type = f[0] >> 4, Flags = f[0] & 15, Body = body });
            }
            Bridge.Sent.Clear();
            return list;
        }

        static byte[] Frame(int first, byte[] body)
        {
            var header = new List<byte> { (byte)first };
            int n = body.Length;
            do
            {
                int digit = n & 0x7f;
                n >>= 7;
                header.Add((byte)(n > 0 ? digit | 0x80 : digit));
            } while (n > 0);
            return header.Concat(body).ToArray();
        }

        static byte[] SubAck(int id, params byte[] codes)
        {
            return Frame(0x90, new[] { (byte)(id >> 8), (byte)id }.Concat(codes).ToArray());
        }

        static byte[] Publish(string topic, string payload, int qos = 0)
        {
            byte[] t = Encoding.UTF8.GetBytes(topic);
            var body = new List<byte> { (byte)(t.Length >> 8), (byte)t.Length };
            body.AddRange(t);
            if (qos > 0) body.AddRange(new byte[] { 0, 7 });
            body.AddRange(Encoding.UTF8.GetBytes(payload));
            return Frame(0x30 | qos << 1, body.ToArray());
        }

        static byte[] Join(params byte[][] parts)
        {
            return parts.SelectMany(p => p).ToArray();
        }

        /// <summary>A version as the server writes it: 11 characters of unpadded base64url of its
        /// 8 little-endian bytes.</summary>
        static string V(ulong v)
        {
            var b = new byte[8];
            for (int i = 0; i < 8; i++) b[i] = (byte)(v >> (8 * i));
            return Convert.ToBase64String(b).TrimEnd('=').Replace('+', '-').Replace('/', '_');
        }

        static string Change(ChunkKey k, ulong previous, ulong version, ulong from, ulong seq, params int[] indexValue)
        {
            string edits = indexValue == null ? ",null" : string.Concat(indexValue.Select(x => "," + x));
            return "[[" + k.X + "," + k.Y + "," + k.Z + "],\"" + V(previous) + "\",\"" + V(version) + "\"," + from + "," + seq + edits + "]";
        }

        List<ChunkChange> Events()
        {
            int e;
            int n = follower.Poll(changes, edits, out e);
            return changes.Take(n).ToList();
        }

        // Follows `keys`, connects, acknowledges every SUBSCRIBE: the Subscribed (or Gap) event.
        ChangeKind FollowAndSubscribe(params ChunkKey[] keys)
        {
            follower.Follow(World, keys, keys.Length);
            if (follower.State != RealtimeState.Connected) Connect();
            else Pump();
            foreach (Packet p in Sent())
                if (p.Type == Mqtt.Subscribe) Bridge.Feed(SubAck(p.Id, 0));
            Pump();
            List<ChunkChange> ev = Events();
            Assert.AreEqual(1, ev.Count, "one event once every SUBSCRIBE is acknowledged");
            return ev[0].Kind;
        }

        static readonly ChunkKey Origin = new ChunkKey(0, 0, 0);

        // ---- the tests ----

        [Test]
        public void ConnectsWithTheTokenInTheQueryAndACleanSessionOfItsOwn()
        {
            Pump();
            StringAssert.StartsWith("ws://127.0.0.1:1/mqtt?token=", Bridge.Url);
            Assert.AreEqual("ws://127.0.0.1:1/mqtt?token=" + Uri.EscapeDataString(Token), Bridge.Url, "percent-encoded");
            StringAssert.Contains("tok%2Ben%2F1%3D", Bridge.Url);
            Bridge.State = BridgeState.Open;
            Pump();
            Packet connect = Sent().Single();
            Assert.AreEqual(Mqtt.Connect, connect.Type);
            byte[] b = connect.Body;
            Assert.AreEqual(new byte[] { 0, 4, (byte)'M', (byte)'Q', (byte)'T', (byte)'T', 4, 0x02, 0, 60 }, b.Take(10).ToArray(),
                "MQTT 3.1.1, clean session, no user name or password, keepalive 60 s");
            int idLength = b[10] << 8 | b[11];
            Assert.AreEqual(12 + idLength, b.Length, "nothing after the client id");
            string id = Encoding.ASCII.GetString(b, 12, idLength);
            StringAssert.IsMatch("^cw-[0-9a-f]{32}$", id);
            Assert.AreEqual(RealtimeState.Connecting, follower.State);

            // A second connection uses a client id of its own.
            Bridge.State = BridgeState.Closed;
            Pump();
            Pump(600);
            Bridge.State = BridgeState.Open;
            Pump();
            byte[] again = Sent().Single().Body;
            Assert.AreNotEqual(id, Encoding.ASCII.GetString(again, 12, again[10] << 8 | again[11]));
        }

        [Test]
        public void SubscribesToTheRegionsOfTheFollowedChunksEightFiltersAPacketThenReportsSubscribed()
        {
            // Chunks -1..1 on x and z, 0, 4 and 8 on y: regions -1..0 x -1..0 x 0..2 = 12 topics.
            const int R = ManagedRealtime.RegionChunks;
            var keys = new List<ChunkKey>();
            for (int x = -1; x <= 1; x++)
                for (int z = -1; z <= 1; z++)
                    for (int y = 0; y <= 2 * R; y += R)
                        keys.Add(new ChunkKey(x, y, z));
            follower.Follow(World, keys.ToArray(), keys.Count);
            Connect();
            List<Packet> subs = Sent();
            Assert.AreEqual(2, subs.Count);
            Assert.IsTrue(subs.All(p => p.Type == Mqtt.Subscribe && p.Flags == 2), "SUBSCRIBE with its reserved flags 0010");
            Assert.AreEqual(8, subs[0].Topics.Count);
            Assert.AreEqual(4, subs[1].Topics.Count);
            var topics = subs.SelectMany(p => p.Topics).ToList();
            CollectionAssert.AllItemsAreUnique(topics);
            CollectionAssert.Contains(topics, "cw/w1/-1/0/-1");
            CollectionAssert.Contains(topics, "cw/w1/0/2/0");
            Assert.AreEqual(12, topics.Count);
            Assert.AreNotEqual(subs[0].Id, subs[1].Id);

            // One SUBACK: nothing yet. Both, merged in one frame with a change: Subscribed first.
            Bridge.Feed(SubAck(subs[0].Id, 0, 0, 0, 0, 0, 0, 0, 0));
            Pump();
            Assert.AreEqual(0, Events().Count, "not all acknowledged");
            Bridge.Feed(Join(SubAck(subs[1].Id, 0, 0, 0, 0),
                Publish("cw/w1/0/0/0", "[" + Change(Origin, 1, 2, 0, 1, 5, 7) + "]")));
            Pump();
            List<ChunkChange> ev = Events();
            Assert.AreEqual(ChangeKind.Subscribed, ev[0].Kind);
            Assert.AreEqual(ChangeKind.Edits, ev[1].Kind);
            Assert.AreEqual(1UL, ev[1].Previous);
            Assert.AreEqual(2UL, ev[1].Version);
            Assert.AreEqual(1U, ev[1].EditCount);
            Assert.AreEqual(5U, edits[ev[1].FirstEdit].Index);
            Assert.AreEqual(7, edits[ev[1].FirstEdit].Value);
            Assert.AreEqual(Origin, edits[ev[1].FirstEdit].Chunk);
            Assert.IsNull(follower.Problem);
        }

        [Test]
        public void ANineByNineByNineNeighbourhoodSubscribesTo27RegionsInFourPackets()
        {
            Assert.AreEqual(4, ManagedRealtime.RegionChunks, "the numbers below are for 4x4x4 regions");
            // Centred on chunk (3, -5, 0): chunks -1..7, -9..-1, -4..4: regions -1..1, -3..-1, -1..1.
            var keys = new List<ChunkKey>();
            for (int x = -4; x <= 4; x++)
                for (int y = -4; y <= 4; y++)
                    for (int z = -4; z <= 4; z++)
                        keys.Add(new ChunkKey(3 + x, -5 + y, z));
            follower.Follow(World, keys.ToArray(), keys.Count);
            Connect();
            List<Packet> subs = Sent();
            CollectionAssert.AreEqual(new[] { 8, 8, 8, 3 }, subs.Select(p => p.Topics.Count).ToArray(),
                "27 topics, at most 8 filters a SUBSCRIBE (IoT Core's limit)");
            var topics = subs.SelectMany(p => p.Topics).ToList();
            CollectionAssert.AllItemsAreUnique(topics);
            CollectionAssert.Contains(topics, "cw/w1/-1/-3/-1");
            CollectionAssert.Contains(topics, "cw/w1/1/-1/1");
            CollectionAssert.DoesNotContain(topics, "cw/w1/2/-1/1");
            CollectionAssert.DoesNotContain(topics, "cw/w1/1/0/1");
        }

        [Test]
        public void RegionsRoundDownForNegativeChunks()
        {
            int r = ManagedRealtime.RegionChunks;
            Assert.AreEqual(0, ManagedRealtime.RegionOf(0));
            Assert.AreEqual(0, ManagedRealtime.RegionOf(r - 1));
            Assert.AreEqual(1, ManagedRealtime.RegionOf(r));
            Assert.AreEqual(-1, ManagedRealtime.RegionOf(-1));
            Assert.AreEqual(-1, ManagedRealtime.RegionOf(-r));
            Assert.AreEqual(-2, ManagedRealtime.RegionOf(-r - 1));
            Assert.AreEqual(int.MinValue / r, ManagedRealtime.RegionOf(int.MinValue));
            Assert.AreEqual(int.MaxValue / r, ManagedRealtime.RegionOf(int.MaxValue));
            for (int c = -100; c <= 100; c++)
                Assert.AreEqual((int)Math.Floor(c / (double)r), ManagedRealtime.RegionOf(c), "chunk " + c);
        }

        [Test]
        public void AMoveUnsubscribesWhatIsGoneAndSubscribesWhatIsNew()
        {
            Assert.AreEqual(ChangeKind.Subscribed, FollowAndSubscribe(new ChunkKey(-1, 0, 0), Origin));
            follower.Follow(World, new[] { Origin, new ChunkKey(ManagedRealtime.RegionChunks, 0, 0) }, 2);
            Pump();
            List<Packet> sent = Sent();
            Assert.AreEqual(2, sent.Count);
            Assert.AreEqual(Mqtt.Unsubscribe, sent[0].Type);
            Assert.AreEqual(2, sent[0].Flags);
            CollectionAssert.AreEqual(new[] { "cw/w1/-1/0/0" }, sent[0].Topics);
            Assert.AreEqual(Mqtt.Subscribe, sent[1].Type);
            CollectionAssert.AreEqual(new[] { "cw/w1/1/0/0" }, sent[1].Topics);
            Bridge.Feed(Join(Frame(0xB0, new[] { (byte)(sent[0].Id >> 8), (byte)sent[0].Id }), SubAck(sent[1].Id, 0)));
            Pump();
            Assert.AreEqual(ChangeKind.Subscribed, Events().Single().Kind, "the new set is in place: fetch it");
            // A change of a chunk no longer followed, or of another world, is not reported.
            Bridge.Feed(Publish("cw/w1/-1/0/0", "[" + Change(new ChunkKey(-1, 0, 0), 1, 2, 0, 1, 1, 1) + "]"),
                Publish("cw/w2/0/0/0", "[" + Change(Origin, 1, 2, 0, 1, 1, 1) + "]"),
                Publish("cw/w1/0/0/0", "[" + Change(new ChunkKey(1, 0, 0), 1, 2, 0, 1, 1, 1) + "]"));
            Pump();
            Assert.AreEqual(0, Events().Count);
        }

        [Test]
        public void PacketsSplitByteByByteOrMergedAreReadWhole()
        {
            FollowAndSubscribe(Origin);
            // A change with 64 edits: a PUBLISH over 128 bytes (two bytes of remaining length),
            // delivered one byte per frame.
            var pairs = new List<int>();
            for (int i = 0; i < 64; i++) { pairs.Add(i * 3); pairs.Add(-i); }
            byte[] big = Publish("cw/w1/0/0/0", "[" + Change(Origin, 10, 11, 0, 1, pairs.ToArray()) + "]");
            Assert.Greater(big.Length, 300);
            foreach (byte b in big) Bridge.Feed(new[] { b });
            // Three changes in one frame, the last split into the next.
            byte[] merged = Join(Publish("cw/w1/0/0/0", "[" + Change(Origin, 11, 12, 1, 2, 1, 1) + "]"),
                Publish("cw/w1/0/0/0", " [ " + Change(Origin, 12, 13, 2, 3, 2, 2) + " , " + Change(Origin, 13, 14, 3, 4, null) + " ] "));
            Bridge.Feed(merged.Take(merged.Length - 5).ToArray(), merged.Skip(merged.Length - 5).ToArray());
            Pump();
            List<ChunkChange> ev = Events();
            Assert.AreEqual(4, ev.Count);
            Assert.AreEqual(64U, ev[0].EditCount);
            for (int i = 0; i < 64; i++)
            {
                Assert.AreEqual((uint)(i * 3), edits[ev[0].FirstEdit + i].Index);
                Assert.AreEqual(-i, edits[ev[0].FirstEdit + i].Value);
            }
            Assert.AreEqual(ChangeKind.Edits, ev[1].Kind);
            Assert.AreEqual(ChangeKind.Edits, ev[2].Kind);
            Assert.AreEqual(ChangeKind.Refetch, ev[3].Kind, "null instead of edits: refetch");
            Assert.AreEqual(14UL, ev[3].Version);
            Assert.AreEqual(RealtimeState.Connected, follower.State);
            Assert.IsNull(follower.LastError);
        }

        [Test]
        public void AnUnreadableMessageIsReportedAndTheConnectionStays()
        {
            FollowAndSubscribe(Origin);
            foreach (string bad in new[] { "not json", "[[[0,0,0],\"AAAAAAAAAAA\"]]", "[" + Change(Origin, 1, 2, 0, 1, 4096, 1) + "]", "" })
            {
                Bridge.Feed(Publish("cw/w1/0/0/0", bad));
                Pump();
                Assert.AreEqual(0, Events().Count, bad);
                StringAssert.StartsWith("unreadable change message", follower.LastError, bad);
                Assert.AreEqual(RealtimeState.Connected, follower.State, "an unreadable message is not a broken stream");
            }
            // A message with one bad change is refused whole; the next good one goes through.
            Bridge.Feed(Publish("cw/w1/0/0/0", "[" + Change(Origin, 1, 2, 0, 1, 1, 1) + ",[[0,0,0],1]]"),
                Publish("cw/w1/0/0/0", "[" + Change(Origin, 1, 2, 0, 1, 1, 1) + "]"));
            Pump();
            List<ChunkChange> ev = Events();
            Assert.AreEqual(1, ev.Count);
            Assert.AreEqual(2UL, ev[0].Version);
        }

        static IEnumerable<TestCaseData> Garbage()
        {
            yield return new TestCaseData((object)new byte[] { 0xF0, 0x00 }).SetName("a reserved packet type");
            yield return new TestCaseData((object)new byte[] { 0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01 }).SetName("a remaining length of five bytes");
            // 300 KB declared: refused from its header, before its bytes arrive.
            yield return new TestCaseData((object)new byte[] { 0x30, 0x80, 0xC9, 0x12 }).SetName("a packet over 256 KB");
            yield return new TestCaseData((object)new byte[] { 0x30, 0x01, 0x00 }).SetName("a PUBLISH shorter than its topic length");
            yield return new TestCaseData((object)new byte[] { 0x90, 0x03, 0x00, 0x01, 0x07 }).SetName("a SUBACK with an unknown return code");
            yield return new TestCaseData((object)new byte[] { 0xD0, 0x01, 0x00 }).SetName("a PINGRESP with a body");
            yield return new TestCaseData((object)new byte[] { 0x36, 0x00 }).SetName("a PUBLISH of QoS 3");
        }

        [TestCaseSource("Garbage")]
        public void GarbageIsReportedAndTheConnectionMadeAgainWithAGap(byte[] garbage)
        {
            Assert.AreEqual(ChangeKind.Subscribed, FollowAndSubscribe(Origin));
            ScriptedBridge first = Bridge;
            Bridge.Feed(Join(Publish("cw/w1/0/0/0", "[" + Change(Origin, 1, 2, 0, 1, 1, 1) + "]"), garbage));
            Assert.DoesNotThrow(() => Pump());
            StringAssert.Contains("unreadable packet", follower.LastError);
            Assert.IsTrue(first.WasClosed, "the connection is dropped");
            Assert.AreEqual(RealtimeState.Connecting, follower.State);
            Assert.AreEqual(ChangeKind.Edits, Events().Single().Kind, "what came before the garbage is kept");
            // Reconnected after the backoff, subscribed again: a gap, as changes may have been missed.
            Pump(600);
            Assert.AreNotSame(first, Bridge);
            Assert.AreEqual(ChangeKind.Gap, FollowAndSubscribe(Origin));
        }

        [Test]
        public void ABridgeThatThrowsNeverReachesTheGame()
        {
            FollowAndSubscribe(Origin);
            Bridge.ThrowOnRead = new InvalidOperationException("the runtime broke");
            Assert.DoesNotThrow(() => Pump());
            StringAssert.Contains("the runtime broke", follower.LastError);
            Assert.AreEqual(RealtimeState.Connecting, follower.State);
            Pump(600);
            Assert.AreEqual(2, bridges.Count, "connected again");
            // A bridge that throws while opening, too.
            Bridge.ThrowOnRead = new Exception("again");
            Bridge.State = BridgeState.Open;
            Assert.DoesNotThrow(() => Pump());
            Assert.DoesNotThrow(() => Pump(2000));
            Assert.AreEqual(RealtimeState.Connecting, follower.State);
        }

        [Test]
        public void KeepaliveSendsPingreqEveryMinuteAndGivesASilentConnectionUpAfterOneAndAHalf()
        {
            FollowAndSubscribe(Origin);
            Pump(59000);
            Assert.AreEqual(0, Sent().Count);
            Pump(1000);
            Packet ping = Sent().Single();
            Assert.AreEqual(Mqtt.PingReq, ping.Type);
            Assert.AreEqual(0, ping.Body.Length);
            Bridge.Feed(new byte[] { 0xD0, 0x00 });
            Pump(1000);
            // Heard at 61 s: silent past 151 s (1.5 keepalives) is too long.
            Pump(59000);
            Assert.AreEqual(Mqtt.PingReq, Sent().Single().Type);
            Pump(29000);
            Assert.AreEqual(RealtimeState.Connected, follower.State, "88 s of silence is still alive");
            ScriptedBridge silent = Bridge;
            Pump(3000);
            Assert.IsTrue(silent.WasClosed);
            StringAssert.Contains("stopped answering", follower.LastError);
            Assert.AreEqual(RealtimeState.Connecting, follower.State);
        }

        [Test]
        public void AGapEveryMinuteWhileSubscribedSoTheCallerReconciles()
        {
            FollowAndSubscribe(Origin);
            for (int minute = 0; minute < 3; minute++)
            {
                Pump(30000);
                Bridge.Feed(new byte[] { 0xD0, 0x00 });
                Pump(30000);
                Assert.AreEqual(ChangeKind.Gap, Events().Single().Kind, "minute " + minute);
                Sent();
            }
        }

        [Test]
        public void ReconnectsWithExponentialBackoffAndFullJitterUpTo30Seconds()
        {
            double[] caps = { 500, 1000, 2000, 4000, 8000, 16000, 30000, 30000 };
            Pump();
            foreach (double cap in caps)
            {
                Bridge.State = BridgeState.Closed; // unreachable
                Pump();
                Assert.AreEqual(RealtimeState.Connecting, follower.State);
                int opened = bridges.Count;
                Pump(cap - 1);
                Assert.AreEqual(opened, bridges.Count, "retried before " + cap + " ms (the jitter is at its top here)");
                Pump(1);
                Assert.AreEqual(opened + 1, bridges.Count, "not retried after " + cap + " ms");
            }
            StringAssert.StartsWith("cannot reach 127.0.0.1:1", follower.Problem);
            // A connection that lived more than 30 s starts backing off afresh.
            Connect();
            Pump(31000);
            Bridge.Feed(new byte[] { 0xD0, 0x00 });
            Pump();
            Bridge.State = BridgeState.Closed;
            Pump();
            int n = bridges.Count;
            Pump(500);
            Assert.AreEqual(n + 1, bridges.Count);
        }

        [Test]
        public void ARefusedSubscriptionIsReportedAndSentAgainAfterABackoff()
        {
            follower.Follow(World, new[] { Origin }, 1);
            Connect();
            Packet sub = Sent().Single();
            Bridge.Feed(SubAck(sub.Id, 0x80));
            Pump();
            Assert.AreEqual(0, Events().Count, "no event until it is in place");
            StringAssert.Contains("refused the subscription", follower.Problem, "reported while connected");
            Assert.AreEqual(RealtimeState.Connected, follower.State);
            Pump(499);
            Assert.AreEqual(0, Sent().Count);
            Pump(1);
            Packet again = Sent().Single();
            Assert.AreEqual(Mqtt.Subscribe, again.Type);
            CollectionAssert.AreEqual(new[] { "cw/w1/0/0/0" }, again.Topics);
            // Refused again: twice as long.
            Bridge.Feed(SubAck(again.Id, 0x80));
            Pump();
            Pump(999);
            Assert.AreEqual(0, Sent().Count);
            Pump(1);
            Packet third = Sent().Single();
            Bridge.Feed(SubAck(third.Id, 0x00));
            Pump();
            Assert.AreEqual(ChangeKind.Subscribed, Events().Single().Kind);
            Assert.IsNull(follower.Problem);
        }

        [Test]
        public void ARefusedConnectStopsUntilANewTokenIsSet()
        {
            Pump();
            Bridge.State = BridgeState.Open;
            Pump();
            Bridge.Feed(new byte[] { 0x20, 0x02, 0x00, 0x05 });
            Pump();
            Assert.AreEqual(RealtimeState.Refused, follower.State);
            StringAssert.Contains("did not authorize", follower.Problem);
            Pump(120000);
            Assert.AreEqual(1, bridges.Count, "never tried again with the same token");
            transport.SetToken("another-token");
            Pump();
            Assert.AreEqual(2, bridges.Count);
            StringAssert.EndsWith("token=another-token", Bridge.Url);
            // CONNACK 3 (server unavailable) is not a refusal: retried.
            Bridge.State = BridgeState.Open;
            Pump();
            Bridge.Feed(new byte[] { 0x20, 0x02, 0x00, 0x03 });
            Pump();
            Assert.AreEqual(RealtimeState.Connecting, follower.State);
            StringAssert.Contains("server unavailable", follower.Problem);
        }

        [Test]
        public void AHandshakeAnsweredWithAStatusIsReadAsTheNativeFollowerReadsIt()
        {
            Pump();
            Bridge.HandshakeStatus = 503;
            Bridge.State = BridgeState.Closed;
            Pump();
            Assert.AreEqual(RealtimeState.Connecting, follower.State, "503: retried");
            Pump(600);
            Bridge.HandshakeStatus = 401;
            Bridge.State = BridgeState.Closed;
            Pump();
            Assert.AreEqual(RealtimeState.Refused, follower.State);
            StringAssert.Contains("HTTP 401", follower.Problem);
            // A token that had worked: TokenRefused (log in again).
            transport.SetToken("worked-once");
            transport.Token.Worked = true;
            Pump();
            Bridge.HandshakeStatus = 401;
            Bridge.State = BridgeState.Closed;
            Pump();
            Assert.AreEqual(RealtimeState.TokenRefused, follower.State);
        }

        [Test]
        public void AHandshakeWhoseStatusIsHiddenIsAskedOverHttpOnce()
        {
            Pump();
            Bridge.HandshakeStatus = -1; // a browser, or Mono: "the server did not upgrade"
            Bridge.State = BridgeState.Closed;
            Pump();
            FakeExchange probe = http.Sent.Single();
            Assert.AreEqual("http://127.0.0.1:1/mqtt?token=" + Uri.EscapeDataString(Token), probe.Url);
            Assert.AreEqual(RealtimeState.Connecting, follower.State);
            probe.Status = 401;
            probe.IsDone = true;
            Pump();
            Assert.AreEqual(RealtimeState.Refused, follower.State);
            // Unreadable answer (a browser without CORS for it): an ordinary retry.
            transport.SetToken("t2");
            Pump();
            Bridge.HandshakeStatus = -1;
            Bridge.State = BridgeState.Closed;
            Pump();
            http.Sent[1].IsDone = true; // status 0
            Pump();
            Assert.AreEqual(RealtimeState.Connecting, follower.State);
            StringAssert.Contains("does not say why", follower.Problem);
            // The API refused this very token: no probe needed.
            transport.Token.Unauthorized = true;
            Pump(600);
            Bridge.HandshakeStatus = -1;
            Bridge.State = BridgeState.Closed;
            Pump();
            Assert.AreEqual(2, http.Sent.Count);
            Assert.AreEqual(RealtimeState.Refused, follower.State);
        }

        [Test]
        public void TheTokenIsInNoErrorMessage()
        {
            Pump();
            Bridge.Error = "could not open ws://127.0.0.1:1/mqtt?token=" + Uri.EscapeDataString(Token) + " (raw " + Token + ")";
            Bridge.State = BridgeState.Closed;
            Pump();
            StringAssert.DoesNotContain(Token, follower.Problem);
            StringAssert.DoesNotContain(Uri.EscapeDataString(Token), follower.Problem);
            StringAssert.Contains("[token]", follower.Problem);
        }

        [Test]
        public void ChangesAreOrderedByWriteSequenceAgainstFetchesAndEachOther()
        {
            FollowAndSubscribe(Origin);
            Func<ulong, ulong, ulong, ulong, string> change = (from, seq, previous, version) =>
                "[" + Change(Origin, previous, version, from, seq, 1, 1) + "]";
            // Nothing known: the change goes through as it is.
            Bridge.Feed(Publish("cw/w1/0/0/0", change(2, 3, 1, 2)));
            Pump();
            Assert.AreEqual(ChangeKind.Edits, Events().Single().Kind);
            // A (3) -> B (4) -> A (5), the B change arriving last: old news, dropped.
            Bridge.Feed(Publish("cw/w1/0/0/0", change(4, 5, 2, 1)), Publish("cw/w1/0/0/0", change(3, 4, 1, 2)));
            Pump();
            List<ChunkChange> ev = Events();
            Assert.AreEqual(1, ev.Count, "older than what is held: dropped");
            Assert.AreEqual(ChangeKind.Refetch, ev[0].Kind, "4 -> 5 after 3: a gap, refetch");
            // A fetch answering seq 9 makes everything up to 9 old news, queued or not.
            Bridge.Feed(Publish("cw/w1/0/0/0", change(6, 8, 1, 2)));
            Pump();
            follower.Floors.Record(World, new[] { Origin }, new ulong[] { 9 }, 1);
            Assert.AreEqual(0, Events().Count, "queued before the fetch answered, dropped when drained");
            Bridge.Feed(Publish("cw/w1/0/0/0", change(8, 9, 1, 7)), Publish("cw/w1/0/0/0", change(9, 10, 7, 8)));
            Pump();
            ev = Events();
            Assert.AreEqual(1, ev.Count);
            Assert.AreEqual(ChangeKind.Edits, ev[0].Kind);
            Assert.AreEqual(8UL, ev[0].Version);
            // A store that lost the chunk counts again from 1: the fetch says so exactly.
            follower.Floors.Record(World, new[] { Origin }, new ulong[] { 1 }, 1);
            Bridge.Feed(Publish("cw/w1/0/0/0", change(1, 2, 0, 5)));
            Pump();
            Assert.AreEqual(ChangeKind.Edits, Events().Single().Kind);
        }

        /// <summary>Two changes of one chunk queued between two drains (two publisher ticks, one
        /// frame) are both news: only a fetch answered since makes a queued change old. (The native
        /// follower compares with the sequence its latest change moved the floor to, so it drops
        /// the first and the caller refetches.)</summary>
        [Test]
        public void TwoChangesOfAChunkQueuedBetweenDrainsBothApply()
        {
            FollowAndSubscribe(Origin);
            follower.Floors.Record(World, new[] { Origin }, new ulong[] { 4 }, 1);
            Bridge.Feed(Publish("cw/w1/0/0/0", "[" + Change(Origin, 1, 2, 4, 5, 1, 1) + "]"),
                Publish("cw/w1/0/0/0", "[" + Change(Origin, 2, 3, 5, 6, 2, 2) + "]"));
            Pump();
            List<ChunkChange> ev = Events();
            Assert.AreEqual(2, ev.Count);
            Assert.IsTrue(ev.TrueForAll(c => c.Kind == ChangeKind.Edits));
            Assert.AreEqual(2UL, ev[0].Version);
            Assert.AreEqual(3UL, ev[1].Version);
        }

        [Test]
        public void AQueueNobodyDrainsKeepsOneGapInsteadOfGrowing()
        {
            FollowAndSubscribe(Origin);
            // 5,000 changes, each starting where the one before ended: every one is news.
            ulong seq = 0;
            for (int round = 0; round < 50; round++)
            {
                var message = new StringBuilder("[");
                for (int i = 0; i < 100; i++, seq++) message.Append(i > 0 ? "," : "").Append(Change(Origin, 1, 2, seq, seq + 1, 1, 1));
                message.Append(']');
                Bridge.Feed(Publish("cw/w1/0/0/0", message.ToString()));
                Pump();
            }
            int e;
            var all = new ChunkChange[8192];
            int n = follower.Poll(all, new CubeEdit[8192], out e);
            Assert.LessOrEqual(n, ManagedRealtime.MaxQueuedEvents);
            Assert.Less(n, 5000);
            Assert.AreEqual(ChangeKind.Gap, all[0].Kind, "the overflow is reported");
            Assert.AreEqual(ChangeKind.Edits, all[n - 1].Kind, "what came after it is kept");
        }

        [Test]
        public void PollTakesWhatFitsAndLeavesTheRest()
        {
            FollowAndSubscribe(Origin, new ChunkKey(1, 0, 0));
            var pairs = new int[128];
            for (int i = 0; i < 64; i++) { pairs[2 * i] = i; pairs[2 * i + 1] = i; }
            Bridge.Feed(Publish("cw/w1/0/0/0", "[" + Change(Origin, 1, 2, 0, 1, pairs) + "," + Change(new ChunkKey(1, 0, 0), 1, 2, 0, 1, pairs) + "]"));
            Pump();
            var few = new CubeEdit[100];
            int e;
            Assert.AreEqual(1, follower.Poll(changes, few, out e), "the second change's edits do not fit");
            Assert.AreEqual(64, e);
            Assert.AreEqual(1, follower.Poll(changes, few, out e));
            Assert.AreEqual(new ChunkKey(1, 0, 0), changes[0].Chunk);
            Assert.AreEqual(0U, changes[0].FirstEdit);
            var ex = Assert.Throws<CubeWalkException>(() => follower.Poll(changes, new CubeEdit[63], out e));
            Assert.AreEqual(CubeWalkStatus.InvalidArgument, ex.Status);
            Assert.Throws<CubeWalkException>(() => follower.Poll(new ChunkChange[0], few, out e));
        }

        [Test]
        public void FollowChecksItsArgumentsAsTheNativeLibrary()
        {
            Assert.Throws<CubeWalkException>(() => follower.Follow("bad world", new[] { Origin }, 1));
            Assert.Throws<CubeWalkException>(() => follower.Follow(World, new ChunkKey[1025], 1025));
            // 51 regions: too many.
            var spread = Enumerable.Range(0, 51).Select(i => new ChunkKey(i * ManagedRealtime.RegionChunks, 0, 0)).ToArray();
            var e = Assert.Throws<CubeWalkException>(() => follower.Follow(World, spread, spread.Length));
            StringAssert.Contains("51 regions", e.Message);
            follower.Follow(World, spread, 50);
            Assert.Throws<CubeWalkException>(() => ManagedRealtime.CheckEndpoint("ws://example.com/mqtt", false));
            Assert.AreEqual("ws://example.com/mqtt", ManagedRealtime.CheckEndpoint("ws://example.com/mqtt", true));
            Assert.Throws<CubeWalkException>(() => ManagedRealtime.CheckEndpoint("http://127.0.0.1/mqtt", false));
            Assert.Throws<CubeWalkException>(() => ManagedRealtime.CheckEndpoint("wss://u:p@example.com/mqtt", false));
            Assert.AreEqual("wss://example.com/mqtt?x=1", ManagedRealtime.CheckEndpoint("wss://example.com/mqtt?x=1", false));
        }

        [Test]
        public void StopSaysGoodbyeAndLeavesNothingQueued()
        {
            FollowAndSubscribe(Origin);
            Bridge.Feed(Publish("cw/w1/0/0/0", "[" + Change(Origin, 1, 2, 0, 1, 1, 1) + "]"));
            Pump();
            ScriptedBridge b = Bridge;
            follower.Stop();
            Assert.AreEqual(Mqtt.Disconnect, Sent().Single().Type);
            Assert.IsTrue(b.WasClosed);
            Assert.AreEqual(RealtimeState.Off, follower.State);
            Assert.AreEqual(0, Events().Count);
            Pump(60000);
            Assert.AreEqual(1, bridges.Count);
        }

        // ---- the change format, against protocol/src/realtime.rs ----

        [Test]
        public void VersionsAreElevenCharactersOfBase64urlOfTheLittleEndianBytes()
        {
            var batch = new ChangeBatch();
            foreach (ulong v in new[] { 0UL, 1UL, 255UL, 256UL, ulong.MaxValue, ulong.MaxValue - 1, ulong.MaxValue / 3, 0x0123456789abcdefUL })
            {
                string text = "[" + Change(new ChunkKey(-312, 4, 977), v, ulong.MaxValue - v, 9999999998, 9999999999, 1234, 42) + "]";
                Assert.IsNull(batch.Parse(Encoding.UTF8.GetBytes(text), 0, text.Length), text);
                Assert.AreEqual(1, batch.Count);
                ParsedChange c = batch.Changes[0];
                Assert.AreEqual(v, c.Previous);
                Assert.AreEqual(ulong.MaxValue - v, c.Version);
                Assert.AreEqual(new ChunkKey(-312, 4, 977), c.Chunk);
                Assert.AreEqual(9999999998UL, c.FromSeq);
                Assert.AreEqual(9999999999UL, c.Seq);
                Assert.AreEqual(1, c.EditCount);
                Assert.AreEqual(1234, batch.EditIndex[c.FirstEdit]);
                Assert.AreEqual(42, batch.EditValue[c.FirstEdit]);
            }
        }

        [Test]
        public void MalformedChangesAreRefusedAsTheRustParserRefusesThem()
        {
            string v = "AAAAAAAAAAA";
            var batch = new ChangeBatch();
            foreach (string bad in new[]
            {
                // protocol/src/realtime.rs's own list:
                "[[0,0,0],\"" + v + "\",\"" + v + "\",0,1,4096,1]",
                "[[0,0,0],\"" + v + "\"]",
                "[[0,0,0],\"" + v + "\",\"" + v + "\",1]",
                "[[0,0,0],\"" + v + "\",\"" + v + "\",-1,1,null]",
                "[[0,0,0],\"" + v + "\",\"" + v + "\",0,1,1]",
                "[[0,0,0],\"" + v + "\",\"" + v + "\",3,3,null]",
                // and more:
                "[[0,0,0],\"" + v + "\",\"" + v + "\",0,1,1,null]",
                "[[0,0,0],\"" + v + "\",\"" + v + "\",0,1,null,1,1]",
                "[[0,0],\"" + v + "\",\"" + v + "\",0,1]",
                "[[0,0,0,0],\"" + v + "\",\"" + v + "\",0,1]",
                "[[0,0,2147483648],\"" + v + "\",\"" + v + "\",0,1]",
                "[[0,0,0],\"AAAAAAAAAAB\",\"" + v + "\",0,1]",   // trailing bits
                "[[0,0,0],\"AAAAAAAAAA\",\"" + v + "\",0,1]",    // 10 characters
                "[[0,0,0],\"AAAAAAAAAA+\",\"" + v + "\",0,1]",   // not base64url
                "[[0,0,0],\"" + v + "\",\"" + v + "\",0,1.5]",
                "[[0,0,0],\"" + v + "\",\"" + v + "\",0,1e3]",
                "[[0,0,0],\"" + v + "\",\"" + v + "\",01,2]",
                "[[0,0,0],\"" + v + "\",\"" + v + "\",0,18446744073709551616]",
                "[[0,0,0],\"" + v + "\",\"" + v + "\",0,1,1,2147483648]",
                "[[0,0,0],\"" + v + "\",\"" + v + "\",0,1,-1,1]",
                "[[0,0,0],\"" + v + "\",\"" + v + "\",0,1,\"1\",1]",
            })
            {
                string message = "[" + bad + "]";
                Assert.IsNotNull(batch.Parse(Encoding.UTF8.GetBytes(message), 0, message.Length), bad);
            }
            var many = new StringBuilder("[[[0,0,0],\"" + v + "\",\"" + v + "\",0,1");
            for (int i = 0; i < 65; i++) many.Append(",").Append(i).Append(",1");
            many.Append("]]");
            Assert.IsNotNull(batch.Parse(Encoding.UTF8.GetBytes(many.ToString()), 0, many.Length), "65 edits");
            foreach (string bad in new[] { "", "[", "[]x", "{}", "[1]", "[[[0,0,0],\"" + v + "\",\"" + v + "\",0,1]" })
                Assert.IsNotNull(batch.Parse(Encoding.UTF8.GetBytes(bad), 0, bad.Length), bad);
            foreach (string good in new[] { "[]", " [ ] ", "[[[0,0,0],\"" + v + "\",\"" + v + "\",0,1]]", "[[[-1,-2,-3],\"" + v + "\",\"" + v + "\",0,18446744073709551615,4095,-2147483648]]" })
                Assert.IsNull(batch.Parse(Encoding.UTF8.GetBytes(good), 0, good.Length), good);
        }
    }
}
